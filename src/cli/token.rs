//! `token request|verify|renew|show`: getting the access token, keeping it
//! in `bakong.token_file`, and seeing which one is used and when it expires.
//! The token itself is printed only by `token show --reveal`.

use std::path::PathBuf;

use chrono::{DateTime, Utc};
use clap::Subcommand;
use serde::{Serialize, Serializer};

use super::{CliError, Context, Output, Report};
use crate::app;
use crate::bakong::{self, Token};
use crate::config::Settings;

/// `token` subcommands.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Register and have Bakong email a verification code.
    #[command(
        after_help = "Example:\n  bakong-poller token request --email shop@example.com --organization Shop --project checkout"
    )]
    Request {
        /// Email (at most 30 characters).
        #[arg(long)]
        email: String,
        /// Organization name.
        #[arg(long)]
        organization: String,
        /// Project name.
        #[arg(long)]
        project: String,
    },
    /// Exchange the emailed code for a token and save it to bakong.token_file.
    #[command(after_help = "Example:\n  bakong-poller token verify --code ABCDEFGHJKLMNPQRSTUV")]
    Verify {
        /// The 20-character code.
        #[arg(long)]
        code: String,
    },
    /// Renew the token now (needs bakong.email) and save it.
    #[command(after_help = "Example:\n  bakong-poller token renew")]
    Renew,
    /// Show the token's source, issue and expiry dates and days left.
    #[command(after_help = "Example:\n  bakong-poller token show")]
    Show {
        /// Print the token itself too.
        #[arg(long)]
        reveal: bool,
    },
}

/// Runs a `token` subcommand.
pub async fn run(ctx: &Context, c: &TokenCommand) -> Result<Output, CliError> {
    let settings = ctx.quiet_settings()?;
    Ok(match c {
        TokenCommand::Request {
            email,
            organization,
            project,
        } => {
            let body = bakong::RequestTokenBody {
                email: email.clone(),
                organization: organization.clone(),
                project: project.clone(),
            };
            request(&settings, body).await?.into()
        }
        TokenCommand::Verify { code } => verify(&settings, code).await?.into(),
        TokenCommand::Renew => renew(&settings).await?.into(),
        TokenCommand::Show { reveal } => show(&settings, *reveal).await?.into(),
    })
}

async fn request(
    settings: &Settings,
    body: bakong::RequestTokenBody,
) -> Result<Requested, CliError> {
    let client = app::build_client(settings, false)?;
    let message = client.request_token(&body).await?;
    Ok(Requested {
        message,
        email: body.email,
    })
}

async fn verify(settings: &Settings, code: &str) -> Result<Saved, CliError> {
    let client = app::build_client(settings, false)?;
    let token = client.verify(code).await?;
    bakong::token::save_token_file(&settings.bakong.token_file, &token)
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    // On PostgreSQL the daemons share the token in the database.
    let database = app::share_token(settings, &token).await?;
    Ok(Saved {
        token_file: settings.bakong.token_file.clone(),
        expires_at: token.claims().expires_at,
        renewed: false,
        database,
    })
}

async fn renew(settings: &Settings) -> Result<Saved, CliError> {
    if settings.bakong.email.is_none() {
        return Err(CliError::Usage(
            "config key bakong.email: needed to renew the token".into(),
        ));
    }
    // On PostgreSQL: under the daemons' lock, saved in the database.
    let (client, store) = app::build_renewing_client(settings).await?;
    let database = client.tokens().shared().is_some();
    let generation = client.tokens().generation();
    let renewed = client.renew_if_current(generation).await;
    if let Some(store) = store {
        store.close().await;
    }
    renewed?;
    let expires_at = client
        .tokens()
        .current()
        .and_then(|(t, _)| t.claims().expires_at);
    Ok(Saved {
        token_file: settings.bakong.token_file.clone(),
        expires_at,
        renewed: true,
        database,
    })
}

async fn show(settings: &Settings, reveal: bool) -> Result<Shown, CliError> {
    // On PostgreSQL the token the daemons share in the database is a
    // candidate too; a database out of reach is named among the tokens not
    // used, and the local ones are shown.
    let (picked, unread) = match app::token_choice(settings).await {
        Ok(p) => (p, None),
        Err(app::AppError::Database(e)) => (
            crate::tokens::choice(settings).map_err(|e| CliError::Usage(e.to_string()))?,
            Some(format!("the database: cannot be read ({e})")),
        ),
        Err(e) => return Err(e.into()),
    };
    let Some(mut choice) = picked else {
        return Err(CliError::Usage(format!(
            "no usable access token: set bakong.token or put one in bakong.token_file ({}) (a token whose JWT exp has passed is not used)",
            settings.bakong.token_file.display()
        )));
    };
    choice.dropped.extend(unread);
    let token = choice.token;
    let c = token.claims();
    Ok(Shown {
        source: choice.source.to_string(),
        why: choice.reason,
        dropped: choice.dropped,
        issued_at: c.issued_at,
        expires_at: c.expires_at,
        days_left: c
            .expires_at
            .map(|e| (e - Utc::now()).num_seconds() as f64 / 86400.0),
        token: reveal.then_some(token),
    })
}

/// `token request`'s result.
#[derive(Debug, Serialize)]
pub struct Requested {
    /// Bakong's answer.
    pub message: String,
    /// Where the code was sent.
    pub email: String,
}

impl Report for Requested {
    fn human(&self) -> String {
        format!(
            "{}: Bakong emailed a 20-character code to {}; run `bakong-poller token verify --code CODE`",
            self.message, self.email
        )
    }
}

/// `token verify` and `token renew`: where the new token went.
#[derive(Debug, Serialize)]
pub struct Saved {
    /// `bakong.token_file`.
    pub token_file: PathBuf,
    /// The new token's `exp`, if readable.
    pub expires_at: Option<DateTime<Utc>>,
    /// Renewed (`token renew`) rather than verified.
    #[serde(skip)]
    pub renewed: bool,
    /// Saved in the database too (PostgreSQL: shared by the daemons).
    #[serde(skip)]
    pub database: bool,
}

impl Report for Saved {
    fn human(&self) -> String {
        let db = if self.database {
            " and to the database (the daemons use it from their next look there)"
        } else {
            ""
        };
        if self.renewed {
            format!(
                "token renewed and saved to {}{db}",
                self.token_file.display()
            )
        } else {
            format!(
                "token saved to {}{db} (expires {})",
                self.token_file.display(),
                date_or_unknown(self.expires_at)
            )
        }
    }
}

/// `token show`'s result. Debug never shows the token.
#[derive(Debug, Serialize)]
pub struct Shown {
    /// Where the token in use comes from.
    pub source: String,
    /// Why it was picked (the contract's rule, "Which token is used").
    pub why: String,
    /// Tokens not used, each with why.
    pub dropped: Vec<String>,
    /// `iat`.
    pub issued_at: Option<DateTime<Utc>>,
    /// `exp`.
    pub expires_at: Option<DateTime<Utc>>,
    /// Days until `exp`.
    pub days_left: Option<f64>,
    /// The token itself, with `--reveal` only.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "reveal_token"
    )]
    pub token: Option<Token>,
}

// The one place a token is written to output, asked for with --reveal.
fn reveal_token<S: Serializer>(t: &Option<Token>, s: S) -> Result<S::Ok, S::Error> {
    match t {
        Some(t) => s.serialize_str(t.expose()),
        None => s.serialize_none(),
    }
}

impl Report for Shown {
    fn human(&self) -> String {
        let mut s = format!(
            "source     {}\nwhy        {}\nissued     {}\nexpires    {}\ndays left  {}",
            self.source,
            self.why,
            date_or_unknown(self.issued_at),
            date_or_unknown(self.expires_at),
            self.days_left
                .map(|d| format!("{d:.1}"))
                .unwrap_or_else(|| "unknown".into()),
        );
        for d in &self.dropped {
            s += &format!("\nnot used   {d}");
        }
        if let Some(t) = &self.token {
            s += &format!("\ntoken      {}", t.expose());
        }
        s
    }
}

fn date_or_unknown(d: Option<DateTime<Utc>>) -> String {
    d.map(|d| d.to_rfc3339())
        .unwrap_or_else(|| "unknown".into())
}

//! `api-key create|list|revoke`: the keys shops use with the HTTP API.
//! A key is printed once, at creation; only a hash of it is stored.
//! Revocation is effective at once on every daemon of the database.

use chrono::{DateTime, Utc};
use clap::{Args, Subcommand};
use serde::Serialize;

use super::{CliError, Context, Output, Report, Verdict};
use crate::api::keys;
use crate::app;
use crate::store::ApiKeyRow;

/// `api-key` subcommands.
#[derive(Debug, Subcommand)]
pub enum ApiKeyCommand {
    /// Make a key and print it once (`--json`: {"id", "name", "key", "scopes"}).
    #[command(
        after_help = "Examples:\n  bakong-poller api-key create --name woocommerce\n  bakong-poller api-key create --name reports --read-only --json"
    )]
    Create(CreateArgs),
    /// The keys (never the keys themselves): id, name, scopes, created, revoked.
    List,
    /// Revoke a key: refused at once by every daemon.
    #[command(after_help = "Example:\n  bakong-poller api-key revoke key_3fa94c0e1b2d7a65")]
    Revoke(RevokeArgs),
}

/// `api-key create` arguments.
#[derive(Debug, Args)]
pub struct CreateArgs {
    /// What the key is for (1 to 100 characters), shown by `api-key list`.
    #[arg(long, value_parser = name_arg)]
    pub name: String,
    /// The key may only read (GET); writing answers 403.
    #[arg(long)]
    pub read_only: bool,
}

/// `api-key revoke` arguments.
#[derive(Debug, Args)]
pub struct RevokeArgs {
    /// The key's id (`key_` + 16 hex), as `api-key list` shows it.
    pub id: String,
}

/// A name out of range.
#[derive(Debug, thiserror::Error)]
#[error("a key name has 1 to 100 characters without control characters")]
pub struct BadName;

fn name_arg(s: &str) -> Result<String, BadName> {
    let n = s.chars().count();
    if (1..=100).contains(&n) && !s.chars().any(char::is_control) {
        Ok(s.to_string())
    } else {
        Err(BadName)
    }
}

fn scopes(row: &ApiKeyRow) -> Vec<String> {
    row.scopes.split(' ').map(str::to_string).collect()
}

fn time(ms: i64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms)
        .map(crate::event::rfc3339)
        .unwrap_or_default()
}

/// `api-key create`'s result: the key, shown this once.
#[derive(Serialize)]
pub struct MadeKey {
    /// The key's id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// The key itself.
    pub key: String,
    /// `read`, or `read` and `write`.
    pub scopes: Vec<String>,
}

impl std::fmt::Debug for MadeKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MadeKey")
            .field("id", &self.id)
            .finish_non_exhaustive()
    }
}

impl Report for MadeKey {
    fn human(&self) -> String {
        format!(
            "{}\n\nkey {} ({}, {}): the key above is shown only now; store it in the shop's secrets. \
             Requests carry it as `Authorization: Bearer KEY`.",
            self.key,
            self.id,
            self.name,
            self.scopes.join(" + ")
        )
    }
}

/// One key as `api-key list` shows it.
#[derive(Debug, Serialize)]
pub struct KeyLine {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// Its scopes.
    pub scopes: Vec<String>,
    /// When made (RFC 3339).
    pub created_at: String,
    /// When revoked, if it was.
    pub revoked_at: Option<String>,
}

/// `api-key list`'s result.
#[derive(Debug, Serialize)]
#[serde(transparent)]
pub struct KeyList(pub Vec<KeyLine>);

impl Report for KeyList {
    fn human(&self) -> String {
        if self.0.is_empty() {
            return "no API keys (bakong-poller api-key create --name NAME)".into();
        }
        let mut out = vec![format!(
            "{:20}  {:24}  {:10}  {:24}  revoked",
            "id", "name", "scopes", "created"
        )];
        for k in &self.0 {
            out.push(format!(
                "{:20}  {:24}  {:10}  {:24}  {}",
                k.id,
                k.name,
                k.scopes.join("+"),
                k.created_at,
                k.revoked_at.as_deref().unwrap_or("-")
            ));
        }
        out.join("\n")
    }
}

/// `api-key revoke`'s result.
#[derive(Debug, Serialize)]
pub struct Revoked {
    /// The key's id.
    pub id: String,
    /// Whether it was revoked now (false: it already was).
    pub revoked: bool,
    #[serde(skip)]
    unknown: bool,
}

impl Report for Revoked {
    fn human(&self) -> String {
        match (self.unknown, self.revoked) {
            (true, _) => format!("no API key {}", self.id),
            (_, true) => format!("revoked {}: refused from now on, by every daemon", self.id),
            (_, false) => format!("{} was already revoked", self.id),
        }
    }

    fn verdict(&self) -> Verdict {
        if self.unknown {
            Verdict::NotFound(format!(
                "no API key {} (see `bakong-poller api-key list`)",
                self.id
            ))
        } else {
            Verdict::Done
        }
    }
}

/// Runs an `api-key` subcommand.
pub async fn run(ctx: &Context, c: &ApiKeyCommand) -> Result<Output, CliError> {
    let settings = ctx.quiet_settings()?;
    let store = app::open_store(&settings).await?;
    let out: Result<Output, CliError> = async {
        Ok(match c {
            ApiKeyCommand::Create(a) => {
                let k = keys::make(&a.name, a.read_only, Utc::now().timestamp_millis());
                store.api_key_insert(&k.row).await?;
                MadeKey {
                    scopes: scopes(&k.row),
                    id: k.row.id.clone(),
                    name: k.row.name.clone(),
                    key: k.key,
                }
                .into()
            }
            ApiKeyCommand::List => KeyList(
                store
                    .api_keys()
                    .await?
                    .into_iter()
                    .map(|r| KeyLine {
                        scopes: scopes(&r),
                        created_at: time(r.created_ms),
                        revoked_at: r.revoked_ms.map(time),
                        id: r.id,
                        name: r.name,
                    })
                    .collect(),
            )
            .into(),
            ApiKeyCommand::Revoke(a) => {
                let done = store
                    .api_key_revoke(&a.id, Utc::now().timestamp_millis())
                    .await?;
                Revoked {
                    id: a.id.clone(),
                    revoked: done == Some(true),
                    unknown: done.is_none(),
                }
                .into()
            }
        })
    }
    .await;
    store.close().await;
    out
}

//! `config check` and `print-config`.
//!
//! `config check` runs before the daemon (systemd's `ExecStartPre=`):
//! config, database, journal mode, token and email, one line per problem,
//! exit 2 if any. (Its checks are moving to `src/preflight.rs`; this is the
//! body as it was, to be replaced by a call there.)

use clap::Subcommand;
use serde::Serialize;

use super::{CliError, Context, Report};

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate config, database, journal mode and token; one line per problem.
    #[command(
        after_help = "Example:\n  bakong-poller --config /etc/bakong-poller/bakong-poller.toml config check"
    )]
    Check,
}

/// `config check`'s result when nothing is wrong.
#[derive(Debug, Serialize)]
pub struct ConfigOk {
    /// Always true; problems are an error ([`CliError::Problems`]).
    pub ok: bool,
}

impl Report for ConfigOk {
    fn human(&self) -> String {
        "config ok".into()
    }
}

/// Runs a `config` subcommand.
pub async fn run(ctx: &Context, c: &ConfigCommand) -> Result<ConfigOk, CliError> {
    match c {
        ConfigCommand::Check => check(ctx).await,
    }
}

async fn check(ctx: &Context) -> Result<ConfigOk, CliError> {
    let settings = ctx.settings()?;
    let mut problems = Vec::new();
    match crate::store::Store::connect(&settings.database.url, settings.database.busy_timeout).await
    {
        Ok(store) => {
            match store.setup_problems().await {
                Ok(p) => problems.extend(p),
                Err(e) => problems.push(format!("database.url: {e}")),
            }
            store.close().await;
        }
        Err(e) => problems.push(format!("database.url: {e}")),
    }
    match settings.token_choice() {
        Ok(Some(_)) => {}
        Ok(None) if !settings.token_candidates().unwrap_or_default().is_empty() => problems
            .push("bakong.token: every token found has expired (its JWT exp has passed); renew it".into()),
        Ok(None) => problems.push(format!(
            "bakong.token: no token in bakong.token, bakong.token_file ({}) or $CREDENTIALS_DIRECTORY/token",
            settings.bakong.token_file.display()
        )),
        Err(e) => problems.push(format!("bakong.token_file: {e}")),
    }
    if settings.bakong.email.is_none() {
        problems.push("bakong.email: not set, so an expired token cannot be renewed".into());
    }
    if problems.is_empty() {
        Ok(ConfigOk { ok: true })
    } else {
        Err(CliError::Problems(problems))
    }
}

/// `print-config`'s result: the commented example config.
#[derive(Debug, Serialize)]
pub struct ExampleConfig {
    /// The TOML text.
    pub config: &'static str,
}

impl Report for ExampleConfig {
    fn human(&self) -> String {
        self.config.trim_end().to_string()
    }
}

/// The commented default config.
pub fn print_config() -> ExampleConfig {
    ExampleConfig {
        config: crate::config::EXAMPLE,
    }
}

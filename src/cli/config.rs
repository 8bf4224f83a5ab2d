//! `config check`: whether `run` can start, or recover by itself, with
//! this config. The checks live in [`crate::preflight`]; this prints the
//! report. systemd runs it before the daemon (`ExecStartPre=`), so a state
//! that `run` mends is a warning (exit 0), not a problem (exit 2).

use clap::Subcommand;
use serde::Serialize;

use super::{CliError, Context, Report};

/// `config` subcommands.
#[derive(Debug, Subcommand)]
pub enum ConfigCommand {
    /// Validate config, database, migrations and token; one line per problem or warning.
    #[command(
        after_help = "Exit 2 when run could not start or recover by itself; warnings (things run mends) exit 0.\n\nExample:\n  bakong-poller --config /etc/bakong-poller/bakong-poller.toml config check --online"
    )]
    Check {
        /// Also ask Bakong whether bakong.account_id exists (check_bakong_account).
        #[arg(long)]
        online: bool,
    },
}

/// `config check`'s result when `run` can start: no problem, maybe warnings
/// (things `run` mends by itself), each naming its key.
#[derive(Debug, Serialize)]
pub struct ConfigOk {
    /// Always true; problems are an error ([`CliError::Problems`]).
    pub ok: bool,
    /// The report: `problems` (empty here) and `warnings`.
    #[serde(flatten)]
    pub report: crate::preflight::Report,
}

impl Report for ConfigOk {
    fn human(&self) -> String {
        "config ok".into()
    }
}

/// Runs a `config` subcommand.
pub async fn run(ctx: &Context, c: &ConfigCommand) -> Result<ConfigOk, CliError> {
    match c {
        ConfigCommand::Check { online } => check(ctx, *online).await,
    }
}

async fn check(ctx: &Context, online: bool) -> Result<ConfigOk, CliError> {
    let report = crate::preflight::check(ctx.config.as_deref(), online).await;
    if !ctx.json {
        for w in &report.warnings {
            eprintln!("warning: {w}");
        }
    }
    if report.is_ok() {
        Ok(ConfigOk { ok: true, report })
    } else {
        Err(CliError::Problems(
            report.problems.iter().map(ToString::to_string).collect(),
        ))
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

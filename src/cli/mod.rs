//! The command line: the daemon, the simulator, the demo, and operator
//! commands over the Bakong client and the payments table.
//!
//! One file per command group owns its clap arguments and its `run`
//! function, which returns a typed result ([`Report`]); [`output`] prints
//! it and [`error`] decides the exit code: 0 ok / found, 1 runtime error,
//! 2 usage or config error, 3 not found, 4 expired (`khqr verify`).

pub mod account;
pub mod api_key;
pub mod args;
pub mod cancel;
pub mod check;
pub mod completions;
pub mod config;
pub mod deeplink;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod error;
pub mod events;
pub mod import;
pub mod khqr;
pub mod new;
pub mod output;
pub mod payments;
pub mod report;
pub mod run;
#[cfg(feature = "simulator")]
pub mod simulate;
pub mod token;

use std::ffi::OsString;
use std::path::PathBuf;
use std::time::Duration;

use clap::error::ErrorKind;
use clap::{Parser, Subcommand};

use crate::config::Settings;

pub use error::{CliError, Verdict, EXIT_ERROR, EXIT_EXPIRED, EXIT_NOT_FOUND, EXIT_OK, EXIT_USAGE};
pub use output::{Output, Report};

#[cfg(feature = "simulator")]
const AFTER_HELP: &str = "\
Exit codes: 0 ok/found, 1 error, 2 usage or config, 3 not found, 4 expired (khqr verify).
With --json, results are JSON on stdout and an error is {\"error\": ..., \"exit_code\": N} on stderr.

Examples:
  bakong-poller demo                              # simulator + daemon on a temporary database
  bakong-poller --config /etc/bakong-poller/bakong-poller.toml run
  bakong-poller simulate --listen 127.0.0.1:8080
  bakong-poller check md5 b1c250304b8594e4c6b53dd44791b57a";

// Without the simulator (no default features): no demo, no simulate.
#[cfg(not(feature = "simulator"))]
const AFTER_HELP: &str = "\
Exit codes: 0 ok/found, 1 error, 2 usage or config, 3 not found, 4 expired (khqr verify).
With --json, results are JSON on stdout and an error is {\"error\": ..., \"exit_code\": N} on stderr.

Examples:
  bakong-poller --config /etc/bakong-poller/bakong-poller.toml run
  bakong-poller check md5 b1c250304b8594e4c6b53dd44791b57a";

/// bakong-poller: confirms Bakong (KHQR) payments for merchants.
#[derive(Debug, Parser)]
#[command(name = "bakong-poller", version, about, after_help = AFTER_HELP)]
pub struct Cli {
    /// Config file (TOML). Without it: built-in defaults and BAKONG_POLLER__* variables.
    #[arg(
        long,
        short,
        global = true,
        env = "BAKONG_POLLER_CONFIG",
        value_name = "PATH"
    )]
    pub config: Option<PathBuf>,
    /// Print results as JSON (for scripts); errors too, on stderr.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands; each variant's arguments live in the file that runs it.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: confirm pending payments until SIGTERM/SIGINT.
    #[command(
        after_help = "Example:\n  bakong-poller --config /etc/bakong-poller/bakong-poller.toml run"
    )]
    Run,
    /// Create or upgrade the database schema, then exit.
    #[command(after_help = "Example:\n  bakong-poller --config bakong-poller.toml migrate")]
    Migrate,
    /// Run the simulator and the daemon on a temporary database with simulated customers.
    #[cfg(feature = "simulator")]
    Demo(demo::DemoArgs),
    /// Serve a local Bakong Open API simulator until SIGINT/SIGTERM.
    #[cfg(feature = "simulator")]
    Simulate(simulate::SimulateArgs),
    /// Get, verify, renew and inspect the access token.
    #[command(subcommand)]
    Token(token::TokenCommand),
    /// Look up a transaction.
    #[command(subcommand)]
    Check(check::CheckCommand),
    /// Whether a Bakong account exists.
    Account(account::AccountArgs),
    /// Generate a deeplink for a dynamic KHQR.
    Deeplink(deeplink::DeeplinkArgs),
    /// Copy every row of a SQLite database into the PostgreSQL database.url (idempotent).
    Import(import::ImportArgs),
    /// Open a payment: build the KHQR from `[merchant]`, insert the pending row, show the QR.
    New(new::NewArgs),
    /// Decode or verify a KHQR string (offline).
    #[command(subcommand)]
    Khqr(khqr::KhqrCommand),
    /// Insert a pending payment, as a merchant's application would.
    Add(payments::AddArgs),
    /// List payments, newest first.
    List(payments::ListArgs),
    /// API keys for the HTTP API (`[api] listen`): create, list, revoke.
    #[command(subcommand, name = "api-key")]
    ApiKey(api_key::ApiKeyCommand),
    /// Cancel a pending payment (it stays watched for late money).
    Cancel(cancel::CancelArgs),
    /// Per day and currency: payments and money paid, paid late, mismatched, failed, expired, cancelled.
    Report(report::ReportArgs),
    /// Counts per status, oldest pending, next check, last answer, token expiry.
    #[command(after_help = "Example:\n  bakong-poller status --json")]
    Status,
    /// Notifications: list, show, redeliver and test events.
    #[command(subcommand)]
    Events(events::EventsCommand),
    /// Configuration commands.
    #[command(subcommand)]
    Config(config::ConfigCommand),
    /// Print the commented default config.
    #[command(
        after_help = "Example:\n  bakong-poller print-config > /etc/bakong-poller/bakong-poller.toml"
    )]
    PrintConfig,
    /// Print shell completions.
    Completions(completions::CompletionsArgs),
}

/// What every command gets: the global options.
#[derive(Debug, Clone)]
pub struct Context {
    /// `--config`.
    pub config: Option<PathBuf>,
    /// `--json`.
    pub json: bool,
}

impl Context {
    /// Loads and validates the settings (a problem is a config error, exit 2).
    pub fn settings(&self) -> Result<Settings, CliError> {
        Ok(Settings::load(self.config.as_deref())?)
    }

    /// Loads the settings and logs only warnings, for one-shot commands.
    pub fn quiet_settings(&self) -> Result<Settings, CliError> {
        let settings = self.settings()?;
        crate::telemetry::init(settings.log.format, "warn");
        Ok(settings)
    }

    /// Says something on stderr while the command runs.
    pub fn notice(&self, message: &str) {
        output::notice(self.json, message);
    }
}

/// Runs a parsed command and hands back its result, unprinted.
pub async fn dispatch(cli: Cli) -> Result<Output, CliError> {
    let ctx = Context {
        config: cli.config,
        json: cli.json,
    };
    Ok(match cli.command {
        Command::Run => run::run(&ctx).await?.into(),
        Command::Migrate => run::migrate(&ctx).await?.into(),
        #[cfg(feature = "simulator")]
        Command::Demo(a) => demo::run(&a).await?.into(),
        #[cfg(feature = "simulator")]
        Command::Simulate(a) => simulate::run(&ctx, &a).await?.into(),
        Command::Token(c) => token::run(&ctx, &c).await?,
        Command::Check(c) => check::run(&ctx, &c).await?,
        Command::Account(a) => account::run(&ctx, &a).await?.into(),
        Command::Deeplink(a) => deeplink::run(&ctx, &a).await?.into(),
        Command::Import(a) => import::run(&ctx, &a).await?.into(),
        Command::New(a) => new::run(&ctx, &a).await?.into(),
        Command::Khqr(c) => khqr::run(&ctx, &c)?.into(),
        Command::Add(a) => payments::add(&ctx, &a).await?.into(),
        Command::List(a) => payments::list(&ctx, &a).await?.into(),
        Command::Cancel(a) => cancel::run(&ctx, &a).await?.into(),
        Command::ApiKey(c) => api_key::run(&ctx, &c).await?,
        Command::Report(a) => report::run(&ctx, &a).await?.into(),
        Command::Status => payments::status(&ctx).await?.into(),
        Command::Events(c) => events::run(&ctx, &c).await?,
        Command::Config(c) => config::run(&ctx, &c).await?.into(),
        Command::PrintConfig => config::print_config().into(),
        Command::Completions(a) => completions::run(&a).into(),
    })
}

/// The whole program: parses the command line, runs the command, prints
/// its result or error; returns the exit code.
pub fn main() -> i32 {
    main_from(std::env::args_os())
}

/// [`main`] over the given arguments (the first one is the program's
/// name), for a program that embeds this one: the benchmark starts its
/// daemons as `bakong-poller-bench daemon ...`.
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    let json = json_requested(args.iter().cloned());
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => return parse_failure(e, json),
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            let e = CliError::Runtime(format!("cannot start the async runtime: {e}"));
            return output::emit_error(json, &e);
        }
    };
    let result = runtime.block_on(dispatch(cli));
    // Don't wait for stray blocking tasks (stdin readers, DNS) at exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(out) => out.emit(json),
        Err(e) => output::emit_error(json, &e),
    }
}

/// Help and version print as clap renders them; everything else is a
/// usage error of one line (a JSON object with `--json`).
fn parse_failure(e: clap::Error, json: bool) -> i32 {
    let shows_help = matches!(
        e.kind(),
        ErrorKind::DisplayHelp
            | ErrorKind::DisplayVersion
            | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
    );
    if shows_help && !(json && e.kind() == ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand) {
        let _ = e.print();
        return e.exit_code();
    }
    output::emit_error(json, &CliError::Args(e))
}

/// Whether `--json` is among the options, for errors raised before (or
/// instead of) a successful parse. Stops at `--`, after which nothing is
/// an option.
fn json_requested(args: impl IntoIterator<Item = OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_is_seen_anywhere_before_a_double_dash() {
        let args = |v: &[&str]| v.iter().map(OsString::from).collect::<Vec<_>>();
        assert!(json_requested(args(&["bp", "check", "md5", "x", "--json"])));
        assert!(!json_requested(args(&["bp", "check", "--", "--json"])));
        assert!(!json_requested(args(&["--json"])));
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

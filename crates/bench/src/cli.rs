//! The command line of `bakong-poller-bench`: the bench (the daemon
//! against the simulator under a rate limit, with a naive baseline), its
//! `webhooks` command, and the hidden `daemon` command that runs the
//! product's command line (the daemons the bench starts are this program).
//! The bench prints its figures as it goes.

use std::ffi::OsString;
use std::time::Duration;

use clap::{Args, Parser, Subcommand};

const EXAMPLES: &str = "\
Examples:
  cargo run -p bakong-poller-bench --release --locked
  bakong-poller-bench --duration 10s --bulk-levels 50 --single-levels 2 --baseline-levels 2
  bakong-poller-bench --sections backends,claim --database postgres
  bakong-poller-bench --sections backends,claim --database 'postgres://app@db/payments'
  bakong-poller-bench --sections api --api-window 5s --api-writers 4 --api-readers 4
  bakong-poller-bench webhooks --events 1000 --rate 100 --receiver-delay 20ms";

/// bakong-poller-bench: the bakong-poller daemon against the simulator.
#[derive(Debug, Parser)]
#[command(
    name = "bakong-poller-bench",
    version,
    about,
    after_help = EXAMPLES,
    args_conflicts_with_subcommands = true
)]
pub struct Cli {
    /// The bench's options (without a command).
    #[command(flatten)]
    pub bench: BenchArgs,
    /// Another benchmark.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// The commands beside the bench itself.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Measure webhook delivery: throughput and final status -> receiver latency (p50/p99).
    Webhooks(WebhookBenchArgs),
}

/// Why a command failed: a usage error (exit 2) or a runtime one (exit 1).
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// A bad option.
    #[error("{0}")]
    Usage(String),
    /// The bench could not run to its end.
    #[error("{0}")]
    Runtime(String),
}

impl CliError {
    /// The process's exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Usage(_) => 2,
            CliError::Runtime(_) => 1,
        }
    }
}

/// The whole program; returns the exit code. `daemon ARGS...` runs the
/// product's command line (`bakong-poller ARGS...`): the bench starts its
/// daemons as children of this very program, so `cargo run -p
/// bakong-poller-bench` needs no other binary and the daemon is always the
/// code this bench was built with.
pub fn main_from(args: impl IntoIterator<Item = OsString>) -> i32 {
    let args: Vec<OsString> = args.into_iter().collect();
    if args.get(1).is_some_and(|a| a == "daemon") {
        let product =
            std::iter::once(OsString::from("bakong-poller")).chain(args.into_iter().skip(2));
        return bakong_poller::cli::main_from(product);
    }
    let cli = match Cli::try_parse_from(args) {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return e.exit_code();
        }
    };
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bakong-poller-bench: cannot start the async runtime: {e}");
            return 1;
        }
    };
    let result = runtime.block_on(async {
        match &cli.command {
            None => run(&cli.bench).await,
            Some(Command::Webhooks(a)) => run_webhooks(a).await,
        }
    });
    runtime.shutdown_timeout(Duration::from_millis(100));
    match result {
        Ok(()) => 0,
        Err(e) => {
            eprintln!("bakong-poller-bench: {e}");
            e.exit_code()
        }
    }
}

/// The bench's options.
#[derive(Debug, Args)]
pub struct BenchArgs {
    /// How long payments are created at each load level.
    #[arg(long, default_value = "20s", value_parser = humantime::parse_duration)]
    pub duration: Duration,
    /// The simulator's request limit, requests per second.
    #[arg(long, default_value_t = 10.0, value_parser = positive_rate)]
    pub limit: f64,
    // `std::vec::Vec` keeps clap from reading these as repeated options:
    // each is one comma-separated value.
    /// New payments per second in bulk mode (comma-separated; empty for none).
    #[arg(long, default_value = "2,10,25,50,75", value_parser = crate::parse_levels)]
    pub bulk_levels: std::vec::Vec<f64>,
    /// New payments per second in single-lookup mode.
    #[arg(long, default_value = "1,2,4", value_parser = crate::parse_levels)]
    pub single_levels: std::vec::Vec<f64>,
    /// Levels at which the naive baseline runs too.
    #[arg(long, default_value = "2,10", value_parser = crate::parse_levels)]
    pub baseline_levels: std::vec::Vec<f64>,
    /// Pending payments for the RSS / CPU measurement.
    #[arg(long, default_value_t = 10_000)]
    pub pending: usize,
    /// Window of each Pareto cell (budgets 1, 2, 5, 10/s at 2, 10, 100
    /// payments/s), the naive loops and the quota scenario; 0s skips them.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub pareto_window: Duration,
    /// Directory for pareto.txt and pareto.svg.
    #[arg(long, default_value = ".")]
    pub out: std::path::PathBuf,
    /// Window of each of the two target cells (10 payments/s under a
    /// ceiling of 20, 100 payments/s under 10); 0s skips them.
    #[arg(long, default_value = "30s", value_parser = humantime::parse_duration)]
    pub targets_window: Duration,
    /// Sections to run, comma-separated: pareto, targets, bound, levels,
    /// resources, backends, claim, fleet, api (levels, the older load-level
    /// table, and fleet only when named; bound is computed, not run).
    #[arg(long, default_value = "pareto,targets,bound,resources,backends,claim,api", value_parser = crate::parse_sections)]
    pub sections: std::vec::Vec<crate::Section>,
    /// Databases of the backends, claim and api sections: `sqlite` (temporary
    /// files; PostgreSQL in a throwaway cluster if its binaries are
    /// installed, else those rows are skipped), `sqlite://PATH` (the SQLite
    /// file there; it must not exist), `postgres` (a throwaway cluster,
    /// required), or `postgres://USER@HOST/DB` (a schema per run, dropped
    /// after).
    // Checked in `run`, not by clap: clap's error would echo the value,
    // and a URL can carry a password.
    #[arg(long, default_value = "sqlite", value_parser = database_arg)]
    pub database: DatabaseArg,
    /// Traffic window of each backends row; 0s skips the section.
    #[arg(long, default_value = "10s", value_parser = humantime::parse_duration)]
    pub backends_window: Duration,
    /// New payments per second in the backends section (comma-separated).
    #[arg(long, default_value = "5,20", value_parser = crate::parse_levels)]
    pub backends_levels: std::vec::Vec<f64>,
    /// Pending rows among which a claim of 50 is timed (comma-separated;
    /// empty skips the section).
    #[arg(long, default_value = "100000,1000000", value_parser = crate::parse_sizes)]
    pub claim_sizes: std::vec::Vec<usize>,
    /// Arrival window of each fleet row (three daemons on PostgreSQL killed
    /// at random, one on SQLite); 0s skips the section.
    #[arg(long, default_value = "40s", value_parser = humantime::parse_duration)]
    pub fleet_window: Duration,
    /// Which fleet rows run (comma-separated): `sqlite` (one daemon),
    /// `postgres` (three, killed at random), `faults` (the issue's own
    /// scenario: three killed daemons and a hostile API).
    #[arg(long, default_value = "sqlite,postgres,faults", value_parser = crate::parse_fleet_rows)]
    pub fleet_rows: std::vec::Vec<crate::FleetRow>,
    /// Load window of each api row (SQLite, PostgreSQL): the HTTP API under
    /// load while the daemon confirms; 0s skips the section.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    pub api_window: Duration,
    /// Clients opening payments (POST /v1/payments) in the api section,
    /// one request at a time each.
    #[arg(long, default_value_t = 4)]
    pub api_writers: usize,
    /// Clients reading (GET /v1/payments/{id}, GET /v1/payments?limit=20)
    /// in the api section, one request at a time each.
    #[arg(long, default_value_t = 4)]
    pub api_readers: usize,
}

/// `--database` as given, checked in [`run`]; Debug hides a password.
#[derive(Clone)]
pub struct DatabaseArg(String);

impl std::fmt::Debug for DatabaseArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DatabaseArg")
            .field(&bakong_poller::redact::redact_url(&self.0))
            .finish()
    }
}

fn database_arg(s: &str) -> Result<DatabaseArg, std::convert::Infallible> {
    Ok(DatabaseArg(s.to_string()))
}

/// A rate that is not a positive finite number.
#[derive(Debug, thiserror::Error)]
#[error("{0:?} must be a positive number of requests per second")]
pub struct BadRate(String);

fn positive_rate(s: &str) -> Result<f64, BadRate> {
    s.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
        .ok_or_else(|| BadRate(s.to_string()))
}

/// Runs the benchmark.
pub async fn run(a: &BenchArgs) -> Result<(), CliError> {
    let database = crate::parse_database(&a.database.0)
        .map_err(|e| CliError::Usage(format!("--database: {}", e.reason())))?;
    crate::run(crate::BenchOptions {
        duration: a.duration,
        limit: a.limit,
        bulk_levels: a.bulk_levels.clone(),
        single_levels: a.single_levels.clone(),
        baseline_levels: a.baseline_levels.clone(),
        pending: a.pending,
        pareto_window: a.pareto_window,
        out_dir: a.out.clone(),
        sections: a.sections.clone(),
        targets_window: a.targets_window,
        database,
        backends_window: a.backends_window,
        backends_levels: a.backends_levels.clone(),
        claim_sizes: a.claim_sizes.clone(),
        fleet_window: a.fleet_window,
        fleet_rows: a.fleet_rows.clone(),
        api_window: a.api_window,
        api_writers: a.api_writers,
        api_readers: a.api_readers,
    })
    .await
    .map_err(|e| CliError::Runtime(e.to_string()))?;
    Ok(())
}

/// `webhooks` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cargo run -p bakong-poller-bench --release --locked -- webhooks --events 2000"
)]
pub struct WebhookBenchArgs {
    /// Payments that reach a final status (one event each).
    #[arg(long, default_value_t = 2000)]
    pub events: usize,
    /// New payments per second; 0 puts them all in the table before the daemon starts.
    #[arg(long, default_value_t = 0.0)]
    pub rate: f64,
    /// How long the receiver takes to answer.
    #[arg(long, default_value = "0ms", value_parser = humantime::parse_duration)]
    pub receiver_delay: Duration,
}

/// Runs the webhook benchmark.
pub async fn run_webhooks(a: &WebhookBenchArgs) -> Result<(), CliError> {
    if !(a.rate.is_finite() && a.rate >= 0.0) {
        return Err(CliError::Usage(format!(
            "--rate {}: must be 0 or a positive number of payments per second",
            a.rate
        )));
    }
    crate::webhooks::run(crate::webhooks::WebhookBenchOptions {
        events: a.events.max(1),
        rate: a.rate,
        receiver_delay: a.receiver_delay,
    })
    .await
    .map_err(|e| CliError::Runtime(e.to_string()))?;
    Ok(())
}

//! `bench`: the daemon against the simulator under a rate limit, with a
//! naive baseline. The bench prints its figures as it goes.

use std::time::Duration;

use clap::Args;

use super::output::Nothing;
use super::CliError;

/// `bench` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cargo run --release -- bench\n  bakong-poller bench --duration 10s --bulk-levels 50 --single-levels 2 --baseline-levels 2\n  bakong-poller bench --sections backends,claim --database postgres\n  bakong-poller bench --sections backends,claim --database 'postgres://app@db/payments'"
)]
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
    #[arg(long, default_value = "2,10,25,50,75", value_parser = crate::bench::parse_levels)]
    pub bulk_levels: std::vec::Vec<f64>,
    /// New payments per second in single-lookup mode.
    #[arg(long, default_value = "1,2,4", value_parser = crate::bench::parse_levels)]
    pub single_levels: std::vec::Vec<f64>,
    /// Levels at which the naive baseline runs too.
    #[arg(long, default_value = "2,10", value_parser = crate::bench::parse_levels)]
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
    /// resources, backends, claim, fleet (levels, the older load-level
    /// table, and fleet only when named; bound is computed, not run).
    #[arg(long, default_value = "pareto,targets,bound,resources,backends,claim", value_parser = crate::bench::parse_sections)]
    pub sections: std::vec::Vec<crate::bench::Section>,
    /// Databases of the backends and claim sections: `sqlite` (temporary
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
    #[arg(long, default_value = "5,20", value_parser = crate::bench::parse_levels)]
    pub backends_levels: std::vec::Vec<f64>,
    /// Pending rows among which a claim of 50 is timed (comma-separated;
    /// empty skips the section).
    #[arg(long, default_value = "100000,1000000", value_parser = crate::bench::parse_sizes)]
    pub claim_sizes: std::vec::Vec<usize>,
    /// Arrival window of each fleet row (three daemons on PostgreSQL killed
    /// at random, one on SQLite); 0s skips the section.
    #[arg(long, default_value = "40s", value_parser = humantime::parse_duration)]
    pub fleet_window: Duration,
}

/// `--database` as given, checked in [`run`]; Debug hides a password.
#[derive(Clone)]
pub struct DatabaseArg(String);

impl std::fmt::Debug for DatabaseArg {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_tuple("DatabaseArg")
            .field(&crate::redact::redact_url(&self.0))
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
pub async fn run(a: &BenchArgs) -> Result<Nothing, CliError> {
    let database = crate::bench::parse_database(&a.database.0)
        .map_err(|e| CliError::Usage(format!("--database: {}", e.reason())))?;
    crate::bench::run(crate::bench::BenchOptions {
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
    })
    .await
    .map_err(|e| CliError::Runtime(e.to_string()))?;
    Ok(Nothing {})
}

/// `bench-webhooks` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  cargo run --release -- bench-webhooks --events 2000\n  bakong-poller bench-webhooks --events 1000 --rate 100 --receiver-delay 20ms"
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
pub async fn run_webhooks(a: &WebhookBenchArgs) -> Result<Nothing, CliError> {
    if !(a.rate.is_finite() && a.rate >= 0.0) {
        return Err(CliError::Usage(format!(
            "--rate {}: must be 0 or a positive number of payments per second",
            a.rate
        )));
    }
    crate::notify::bench::run(crate::notify::bench::WebhookBenchOptions {
        events: a.events.max(1),
        rate: a.rate,
        receiver_delay: a.receiver_delay,
    })
    .await
    .map_err(|e| CliError::Runtime(e.to_string()))?;
    Ok(Nothing {})
}

//! `demo`: the simulator, the daemon and simulated customers in one
//! process, on a temporary database. The demo prints as it goes.

use clap::Args;

use super::output::Nothing;
use super::CliError;

/// `demo` options.
#[derive(Debug, Args)]
#[command(after_help = "Example:\n  bakong-poller demo --payments 24")]
pub struct DemoArgs {
    /// How many payments the simulated customers make.
    #[arg(long, default_value_t = 36, value_parser = clap::value_parser!(u32).range(1..=500))]
    pub payments: u32,
}

/// Runs the demo to its summary table.
pub async fn run(args: &DemoArgs) -> Result<Nothing, CliError> {
    crate::demo::run(args.payments as usize)
        .await
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    Ok(Nothing {})
}

//! `simulate`: serves the local Bakong Open API simulator until a signal.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

use super::output::{Nothing, Output};
use super::{CliError, Context, Report};

/// `simulate` options.
#[derive(Debug, Args)]
#[command(
    after_help = "Example:\n  bakong-poller simulate --listen 127.0.0.1:8080 --scenario scenario.toml"
)]
pub struct SimulateArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// Scenario file (TOML): settings, faults, registrations, accounts, transactions.
    #[arg(long, value_name = "FILE")]
    pub scenario: Option<PathBuf>,
}

/// Printed as soon as the simulator listens, so a script can read the URL.
#[derive(Debug, Serialize)]
pub struct Serving {
    /// The base URL to point `bakong.base_url` at.
    pub base_url: String,
}

impl Report for Serving {
    fn human(&self) -> String {
        self.base_url.clone()
    }
}

/// Serves until SIGINT/SIGTERM.
pub async fn run(ctx: &Context, a: &SimulateArgs) -> Result<Nothing, CliError> {
    crate::telemetry::init(crate::config::LogFormat::Text, "info");
    let scenario = match &a.scenario {
        Some(p) => {
            crate::simulator::Scenario::load(p).map_err(|e| CliError::Usage(e.to_string()))?
        }
        None => crate::simulator::Scenario::default(),
    };
    let shutdown = crate::shutdown::on_signal()
        .map_err(|e| CliError::Runtime(format!("cannot install signal handlers: {e}")))?;
    let handle = crate::simulator::spawn(a.listen, &scenario, shutdown.clone())
        .await
        .map_err(|e| CliError::Runtime(e.to_string()))?;
    Output::from(Serving {
        base_url: handle.base_url(),
    })
    .emit(ctx.json);
    tracing::info!(base_url = %handle.base_url(), "Bakong simulator serving; control API under /_sim");
    shutdown.cancelled().await;
    handle.stop().await;
    Ok(Nothing {})
}

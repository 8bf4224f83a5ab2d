//! `run` (the daemon) and `migrate`: the commands that own the database's
//! life rather than look at it.

use std::sync::Arc;

use serde::Serialize;

use super::output::Nothing;
use super::{CliError, Context, Report};
use crate::app;

/// `run`: the daemon, until SIGTERM/SIGINT. Refuses a scan interval that
/// would let systemd's watchdog fire between two pings.
pub async fn run(ctx: &Context) -> Result<Nothing, CliError> {
    let settings = ctx.settings()?;
    crate::telemetry::init(settings.log.format, &settings.log.level);
    let shutdown = crate::shutdown::on_signal()
        .map_err(|e| CliError::Runtime(format!("cannot install signal handlers: {e}")))?;
    let notify = crate::systemd::SdNotify::from_env();
    if let Some(w) = notify.watchdog() {
        if settings.poller.scan_interval > w / 2 {
            return Err(CliError::Usage(format!(
                "config key poller.scan_interval: {} is longer than half of systemd's WatchdogSec ({}); shorten it",
                humantime::format_duration(settings.poller.scan_interval),
                humantime::format_duration(w)
            )));
        }
    }
    crate::daemon::run(settings, shutdown, Arc::new(notify)).await?;
    Ok(Nothing {})
}

/// `migrate`'s result.
#[derive(Debug, Serialize)]
pub struct Migrated {
    /// `database.url`.
    pub database: String,
}

impl Report for Migrated {
    fn human(&self) -> String {
        format!("database {} is at the latest schema", self.database)
    }
}

/// `migrate`: create or upgrade the schema.
pub async fn migrate(ctx: &Context) -> Result<Migrated, CliError> {
    let settings = ctx.settings()?;
    crate::telemetry::init(settings.log.format, &settings.log.level);
    app::open_store(&settings).await?.close().await;
    Ok(Migrated {
        database: crate::redact::redact_url(&settings.database.url),
    })
}

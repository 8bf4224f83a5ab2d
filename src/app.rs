//! Builds the application from [`Settings`]: the payments store and the
//! Bakong client (with its token manager). The one place that wires them,
//! used by `run`, `demo`, `bench` and the operator commands.
//!
//! Errors here say what failed and name the key; the exit code each maps
//! to is decided by the command line alone.

use std::sync::Arc;

use tracing::{info, warn};

use crate::bakong::{Client, FileKeep, TokenManager};
use std::time::Duration;

use crate::config::Settings;
use crate::store::{Store, StoreError};

/// Why the application could not be built or stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Bad or missing configuration; the message names the key.
    #[error("{0}")]
    Config(String),
    /// The database could not be opened or migrated.
    #[error("{0} (check database.url and that the directory exists and is writable)")]
    Database(#[source] StoreError),
    /// Another runtime failure.
    #[error("{0}")]
    Runtime(String),
}

/// Opens the database named by `database.url` and applies pending migrations.
pub async fn open_store(settings: &Settings) -> Result<Store, AppError> {
    let store = Store::connect(&settings.database.url, settings.database.busy_timeout)
        .await
        .map_err(AppError::Database)?;
    store.migrate().await.map_err(AppError::Database)?;
    Ok(store)
}

/// Builds the API client with the token chosen by the contract's rule
/// ("Which token is used"). With `require_token`, no usable token is a
/// config error.
pub fn build_client(settings: &Settings, require_token: bool) -> Result<Client, AppError> {
    let candidates = settings
        .token_candidates()
        .map_err(|e| AppError::Config(format!("bakong.token_file: {e}")))?;
    let found_any = !candidates.is_empty();
    let choice = crate::bakong::token::choose(candidates, chrono::Utc::now());
    if let Some(c) = &choice {
        for d in &c.dropped {
            warn!(dropped = %d, "token not used");
        }
        info!(source = %c.source, why = %c.reason, expires_at = ?c.token.claims().expires_at, "access token chosen");
    } else if require_token && (!found_any || settings.bakong.email.is_none()) {
        // Every token found has expired and bakong.email can renew it: the
        // client renews before its first request. No token at all, or no
        // way to renew, is a config error.
        return Err(AppError::Config(format!(
            "no usable access token: set bakong.token, or put one in bakong.token_file ({}), or run `bakong-poller token verify` (a token whose JWT exp has passed is not used unless bakong.email can renew it)",
            settings.bakong.token_file.display()
        )));
    }
    let tokens = Arc::new(TokenManager::new(
        choice.map(|c| c.token),
        Arc::new(FileKeep(settings.bakong.token_file.clone())),
        settings.token_config(),
    ));
    Client::new(&settings.client_config(), tokens).map_err(|e| AppError::Config(e.to_string()))
}

/// The email registered with the simulator in local runs.
pub const LOCAL_EMAIL: &str = "demo@shop.example";
/// The merchant account of local runs.
pub const LOCAL_ACCOUNT: &str = "demo_shop@devb";

/// Settings for a daemon against a local simulator, with short intervals:
/// the one starting point of the demo, the benchmark and the tests (each
/// then sets what it measures). The database and token file go in `dir`.
pub fn local_settings(dir: &std::path::Path, base_url: &str, token: &str) -> Settings {
    let mut s = Settings::default();
    s.database.url = format!("sqlite://{}", dir.join("payments.db").display());
    s.bakong.base_url = base_url.to_string();
    s.bakong.email = Some(LOCAL_EMAIL.into());
    s.bakong.token = Some(token.to_string());
    s.bakong.token_file = dir.join("token");
    s.bakong.account_id = Some(LOCAL_ACCOUNT.into());
    s.bakong.timeout = Duration::from_secs(2);
    s.poller.max_requests_per_second = 20.0;
    s.poller.concurrency = 8;
    s.poller.scan_interval = Duration::from_millis(100);
    s.poller.fresh_interval = Duration::from_millis(500);
    s.poller.fresh_period = Duration::from_secs(30);
    s.poller.max_interval = Duration::from_secs(2);
    s.poller.lease = Duration::from_secs(5);
    s.poller.payment_ttl = Duration::from_secs(12);
    s.poller.expiry_grace = Duration::from_secs(1);
    s.poller.error_backoff_min = Duration::from_millis(200);
    s.poller.error_backoff_max = Duration::from_secs(2);
    s
}

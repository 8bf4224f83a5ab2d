//! Builds the application from [`Settings`]: the payments store and the
//! Bakong client (with its token manager). The one place that wires them,
//! used by `run`, `demo`, `bench` and the operator commands.
//!
//! Errors here say what failed and name the key; the exit code each maps
//! to is decided by the command line alone.

use std::sync::Arc;

use tracing::info;

use crate::bakong::{Client, TokenKeeper};
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

/// Builds the API client with the initial token (the contract's rule,
/// "Which token is used"). With `require_token`, no token is a config error.
pub fn build_client(settings: &Settings, require_token: bool) -> Result<Client, AppError> {
    let picked = settings
        .initial_token()
        .map_err(|e| AppError::Config(format!("bakong.token_file: {e}")))?;
    if picked.is_none() && require_token {
        return Err(AppError::Config(format!(
            "no access token: set bakong.token, or put one in bakong.token_file ({}), or run `bakong-poller token verify`",
            settings.bakong.token_file.display()
        )));
    }
    if let Some((t, src)) = &picked {
        let c = t.claims();
        info!(source = %src, expires_at = ?c.expires_at, "access token loaded");
    }
    let keeper = Arc::new(TokenKeeper::new(
        picked.map(|(t, _)| t),
        settings.bakong.token_file.clone(),
    ));
    Client::new(&settings.client_config(), Some(keeper)).map_err(AppError::Config)
}

//! Builds the application from [`Settings`]: the payments store and the
//! Bakong client (with its token manager). The one place that wires them,
//! used by `run`, `demo`, the benchmark (crates/bench) and the operator commands.
//!
//! Errors here say what failed and name the key; the exit code each maps
//! to is decided by the command line alone.

use std::sync::Arc;

use tracing::{info, warn};

use crate::bakong::token::{
    KeepFuture, RenewalLock, SharedKeep, SharedToken, TokenChoice, TokenError,
};
use crate::bakong::{Candidate, Client, FileKeep, Token, TokenManager, TokenSource};
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
    let candidates = crate::tokens::candidates(settings)
        .map_err(|e| AppError::Config(format!("bakong.token_file: {e}")))?;
    let choice = choose_token(settings, require_token, candidates)?;
    let tokens = Arc::new(TokenManager::new(
        choice.map(|c| c.token),
        Arc::new(FileKeep(settings.bakong.token_file.clone())),
        settings.token_config(),
    ));
    Client::new(&settings.client_config(), tokens).map_err(|e| AppError::Config(e.to_string()))
}

/// Chooses among `candidates` by the contract's rule, logging the choice
/// and each token dropped; with `require_token`, no usable token (and no
/// way to renew one) is a config error.
fn choose_token(
    settings: &Settings,
    require_token: bool,
    candidates: Vec<Candidate>,
) -> Result<Option<TokenChoice>, AppError> {
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
    Ok(choice)
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

// ---- The token shared through the database (PostgreSQL) ----

/// How long a renewal waits for another daemon's renewal to end (the lock).
fn renewal_wait(settings: &Settings) -> Duration {
    settings
        .bakong
        .timeout
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(10))
}

/// How long a renewal may hold the lock before the server ends its
/// session: a holder hung far beyond any renewal (the request, a
/// `Retry-After` wait at the gate) frees the lock for the others.
const RENEWAL_HOLD: Duration = Duration::from_secs(300);

/// The token shared by the daemons of a PostgreSQL database (the
/// `api_token` row and its advisory lock), behind the token manager's
/// [`SharedKeep`] so the client never sees the store.
#[derive(Debug, Clone)]
pub struct DbKeep {
    store: crate::store::postgres::PgStore,
    wait: Duration,
    by: String,
}

impl DbKeep {
    /// A keep in `store`, waiting at most `wait` for another renewal.
    pub fn new(store: crate::store::postgres::PgStore, wait: Duration) -> Self {
        // gethostname(2), not /proc/sys: the unit's ProcSubset=pid hides it.
        let host = nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_else(|| "unknown".into());
        DbKeep {
            store,
            wait,
            by: format!("{host} pid {}", std::process::id()),
        }
    }
}

fn shared_error(e: crate::store::StoreError) -> TokenError {
    TokenError::Shared(Box::new(e))
}

/// A row as the manager sees it; a row that holds no token reads as none
/// (the next renewal overwrites it).
fn shared_token(row: crate::store::pg_token::TokenRow) -> Option<SharedToken> {
    Some(SharedToken {
        token: Token::new(crate::store::pg_token::expose(&row))?,
        version: row.version,
        renewed: chrono::DateTime::from_timestamp_millis(row.renewed_ms),
        renewed_by: row.renewed_by,
    })
}

impl SharedKeep for DbKeep {
    fn load(&self) -> KeepFuture<'_, Result<Option<SharedToken>, TokenError>> {
        Box::pin(async move {
            let row = self.store.api_token().await.map_err(shared_error)?;
            Ok(row.and_then(shared_token))
        })
    }

    fn lock(&self) -> KeepFuture<'_, Result<Box<dyn RenewalLock>, TokenError>> {
        Box::pin(async move {
            let lock = self
                .store
                .lock_api_token(self.wait, RENEWAL_HOLD)
                .await
                .map_err(shared_error)?;
            Ok(Box::new(DbLock {
                lock,
                by: self.by.clone(),
            }) as Box<dyn RenewalLock>)
        })
    }

    fn describe(&self) -> String {
        "the database (table api_token)".into()
    }
}

struct DbLock {
    lock: crate::store::pg_token::TokenLock,
    by: String,
}

impl RenewalLock for DbLock {
    fn load(&mut self) -> KeepFuture<'_, Result<Option<SharedToken>, TokenError>> {
        Box::pin(async move {
            let row = self.lock.read().await.map_err(shared_error)?;
            Ok(row.and_then(shared_token))
        })
    }

    fn save(self: Box<Self>, token: Token) -> KeepFuture<'static, Result<i64, TokenError>> {
        Box::pin(async move {
            let now = chrono::Utc::now().timestamp_millis();
            self.lock
                .write(token.expose(), now, &self.by)
                .await
                .map_err(shared_error)
        })
    }

    fn release(self: Box<Self>) -> KeepFuture<'static, ()> {
        Box::pin(async move { self.lock.release().await })
    }
}

/// The shared token as a start-up candidate (dated by its write).
fn db_candidate(row: &SharedToken) -> Candidate {
    Candidate {
        token: row.token.clone(),
        source: TokenSource::Database,
        written: row.renewed,
    }
}

/// Builds the daemon's client. On PostgreSQL the token is shared with the
/// other daemons through the database: the database's token is one more
/// candidate (last, so a tie goes to it), the token chosen is written there
/// when the database has none or an older one, and renewals are made once
/// for all daemons under an advisory lock. On SQLite (one daemon per
/// database) this is [`build_client`].
pub async fn build_daemon_client(settings: &Settings, store: &Store) -> Result<Client, AppError> {
    shared_client(settings, store, true).await
}

async fn shared_client(
    settings: &Settings,
    store: &Store,
    require_token: bool,
) -> Result<Client, AppError> {
    let Some(pg) = store.as_postgres() else {
        return build_client(settings, require_token);
    };
    let keep = DbKeep::new(pg.clone(), renewal_wait(settings));
    let mut candidates = crate::tokens::candidates(settings)
        .map_err(|e| AppError::Config(format!("bakong.token_file: {e}")))?;
    // Under the lock, so daemons starting together with different tokens
    // agree on one. A lock not had in time (another daemon's renewal is
    // slow) does not stop the start: the database's token is read without
    // it, and nothing is written.
    let shared_err = |e: TokenError| AppError::Runtime(format!("{e}"));
    let mut lock = match keep.lock().await {
        Ok(lock) => Some(lock),
        Err(e) => {
            warn!(error = %e, "starting without the token renewal lock; the token chosen is not shared");
            None
        }
    };
    let row = match &mut lock {
        Some(lock) => lock.load().await,
        None => keep.load().await,
    };
    let row = match row {
        Ok(row) => row,
        Err(e) => {
            if let Some(lock) = lock {
                lock.release().await;
            }
            return Err(shared_err(e));
        }
    };
    if let Some(row) = &row {
        candidates.push(db_candidate(row));
    }
    let choice = match choose_token(settings, require_token, candidates) {
        Ok(c) => c,
        Err(e) => {
            if let Some(lock) = lock {
                lock.release().await;
            }
            return Err(e);
        }
    };
    let mut seen = row.as_ref().map(|r| r.version);
    let share = choice.as_ref().filter(|c| {
        c.source != TokenSource::Database
            && row
                .as_ref()
                .is_none_or(|r| r.token.expose() != c.token.expose())
    });
    match (lock, share) {
        (Some(lock), Some(c)) => {
            let version = lock.save(c.token.clone()).await.map_err(shared_err)?;
            info!(
                version,
                "the access token chosen is now the one shared in the database"
            );
            seen = Some(version);
        }
        (Some(lock), None) => lock.release().await,
        (None, _) => {}
    }
    let tokens = Arc::new(
        TokenManager::new(
            choice.map(|c| c.token),
            Arc::new(FileKeep(settings.bakong.token_file.clone())),
            settings.token_config(),
        )
        .with_shared(Arc::new(keep), seen),
    );
    Client::new(&settings.client_config(), tokens).map_err(|e| AppError::Config(e.to_string()))
}

/// The token used at start and why, as `run` would pick it: on PostgreSQL
/// the database's token is a candidate too (read without migrating; a
/// database without the table has none). For `token show` and `status`.
pub async fn token_choice(settings: &Settings) -> Result<Option<TokenChoice>, AppError> {
    let mut candidates = crate::tokens::candidates(settings)
        .map_err(|e| AppError::Config(format!("bakong.token_file: {e}")))?;
    if let Some(row) = database_token(settings).await? {
        candidates.push(db_candidate(&row));
    }
    Ok(crate::bakong::token::choose(candidates, chrono::Utc::now()))
}

/// The token in the database, on PostgreSQL (None on SQLite, or when no
/// daemon wrote one yet).
pub async fn database_token(settings: &Settings) -> Result<Option<SharedToken>, AppError> {
    if !crate::store::postgres::accepts(&settings.database.url) {
        return Ok(None);
    }
    let store = Store::connect(&settings.database.url, settings.database.busy_timeout)
        .await
        .map_err(AppError::Database)?;
    let row = match store.as_postgres() {
        Some(pg) => pg.api_token().await,
        None => Ok(None),
    };
    store.close().await;
    match row {
        Ok(row) => Ok(row.and_then(shared_token)),
        // Not migrated yet: no table, no token.
        Err(crate::store::StoreError::Sql {
            source: sqlx::Error::Database(e),
            ..
        }) if e.code().as_deref() == Some("42P01") => Ok(None),
        Err(e) => Err(AppError::Database(e)),
    }
}

/// Saves `token` as the shared one on PostgreSQL (under the renewal lock),
/// so the daemons use it from their next check of the database; returns
/// whether it did (false on SQLite, where the token file is all).
pub async fn share_token(settings: &Settings, token: &Token) -> Result<bool, AppError> {
    if !crate::store::postgres::accepts(&settings.database.url) {
        return Ok(false);
    }
    let store = open_store(settings).await?;
    let Some(pg) = store.as_postgres() else {
        return Ok(false);
    };
    let keep = DbKeep::new(pg.clone(), renewal_wait(settings));
    let result = match keep.lock().await {
        Ok(lock) => lock.save(token.clone()).await.map(drop),
        Err(e) => Err(e),
    };
    store.close().await;
    result
        .map(|()| true)
        .map_err(|e| AppError::Runtime(e.to_string()))
}

/// The client of `token renew`: on PostgreSQL the renewal is the daemons'
/// one (under their lock, saved in the database, used by every daemon),
/// through the store returned beside it (close it after the renewal);
/// elsewhere [`build_client`].
pub async fn build_renewing_client(
    settings: &Settings,
) -> Result<(Client, Option<Store>), AppError> {
    if !crate::store::postgres::accepts(&settings.database.url) {
        return Ok((build_client(settings, false)?, None));
    }
    let store = open_store(settings).await?;
    match shared_client(settings, &store, false).await {
        Ok(client) => Ok((client, Some(store))),
        Err(e) => {
            store.close().await;
            Err(e)
        }
    }
}

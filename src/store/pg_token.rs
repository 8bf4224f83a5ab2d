//! The access token shared by the daemons of one PostgreSQL database: the
//! one-row `api_token` table and the advisory lock a renewal is made under.
//!
//! A renewal takes the lock in a transaction (`pg_advisory_xact_lock`) and
//! keeps that transaction open across the HTTP renewal, so the server frees
//! the lock when the transaction ends, however it ends: a commit with the new
//! token, a rollback, or the holder's connection dying (a killed daemon). A
//! holder that hangs is cut off by `idle_in_transaction_session_timeout`.
//! A transaction-level lock (rather than `pg_advisory_lock` on a session)
//! also cannot leak into a pooled connection if the renewal is cancelled,
//! and works behind a pooler in transaction mode (PgBouncer).
//! The token travels as a [`SecretString`]: Debug output never shows it.

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use sqlx::{Postgres, Transaction};

use super::postgres::PgStore;
use super::{ctx, StoreError};

/// The advisory lock key of token renewals ("bakongtk" in ASCII). Advisory
/// locks are per database, so installations in other databases never wait
/// on each other.
const TOKEN_LOCK_KEY: i64 = 0x6261_6b6f_6e67_746b;

/// The token row.
#[derive(Debug, Clone)]
pub struct TokenRow {
    /// The token (redacted in Debug output).
    pub token: SecretString,
    /// Bumped by every write.
    pub version: i64,
    /// Unix ms of the write.
    pub renewed_ms: i64,
    /// Host and pid of the writer.
    pub renewed_by: String,
}

type RawRow = (String, i64, i64, String);

fn row_of(r: Option<RawRow>) -> Option<TokenRow> {
    r.map(|(token, version, renewed_ms, renewed_by)| TokenRow {
        token: SecretString::from(token),
        version,
        renewed_ms,
        renewed_by,
    })
}

const SELECT: &str = "SELECT token, version, renewed_ms, renewed_by FROM api_token WHERE id = 1";

/// Held while this process may renew the shared token: an open transaction
/// holding the advisory lock. Dropping it without [`TokenLock::write`] or
/// [`TokenLock::release`] rolls back (sqlx does when the connection goes
/// back to the pool), which frees the lock too.
pub struct TokenLock {
    tx: Transaction<'static, Postgres>,
}

impl std::fmt::Debug for TokenLock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenLock")
    }
}

impl TokenLock {
    /// Reads the token row under the lock.
    pub async fn read(&mut self) -> Result<Option<TokenRow>, StoreError> {
        let r: Option<RawRow> = sqlx::query_as(SELECT)
            .fetch_optional(&mut *self.tx)
            .await
            .map_err(ctx("read the shared token"))?;
        Ok(row_of(r))
    }

    /// Writes `token` as the shared one, commits (releasing the lock) and
    /// returns the row's new version.
    pub async fn write(
        mut self,
        token: &str,
        renewed_ms: i64,
        renewed_by: &str,
    ) -> Result<i64, StoreError> {
        let version: i64 = sqlx::query_scalar(
            "INSERT INTO api_token (id, token, version, renewed_ms, renewed_by)
             VALUES (1, $1, 1, $2, $3)
             ON CONFLICT (id) DO UPDATE SET token = $1, version = api_token.version + 1,
                 renewed_ms = $2, renewed_by = $3
             RETURNING version",
        )
        .bind(token)
        .bind(renewed_ms)
        .bind(renewed_by)
        .fetch_one(&mut *self.tx)
        .await
        .map_err(ctx("save the shared token"))?;
        self.tx
            .commit()
            .await
            .map_err(ctx("commit the shared token"))?;
        Ok(version)
    }

    /// Releases the lock without writing.
    pub async fn release(self) {
        // A failed rollback means the connection is gone, and with it the lock.
        let _ = self.tx.rollback().await;
    }
}

impl PgStore {
    /// The shared token row, if one was written; read without the lock.
    pub async fn api_token(&self) -> Result<Option<TokenRow>, StoreError> {
        let r: Option<RawRow> = sqlx::query_as(SELECT)
            .fetch_optional(self.pool())
            .await
            .map_err(ctx("read the shared token"))?;
        Ok(row_of(r))
    }

    /// Takes the renewal lock, waiting at most `wait` for another daemon's
    /// renewal to end. The server ends this session if it then sits idle in
    /// its transaction longer than `hold` (a hung holder), freeing the lock.
    pub async fn lock_api_token(
        &self,
        wait: Duration,
        hold: Duration,
    ) -> Result<TokenLock, StoreError> {
        let mut tx = self
            .pool()
            .begin()
            .await
            .map_err(ctx("begin a token renewal"))?;
        // SET cannot take parameters; the values are integers we format.
        let lock_timeout = format!("SET LOCAL lock_timeout = '{}ms'", wait.as_millis().max(1));
        let idle_timeout = format!(
            "SET LOCAL idle_in_transaction_session_timeout = '{}ms'",
            hold.as_millis().max(1)
        );
        for set in [lock_timeout, idle_timeout] {
            sqlx::query(&set)
                .execute(&mut *tx)
                .await
                .map_err(ctx("set the token renewal's timeouts"))?;
        }
        sqlx::query("SELECT pg_advisory_xact_lock($1)")
            .bind(TOKEN_LOCK_KEY)
            .execute(&mut *tx)
            .await
            .map_err(ctx(
                "take the token renewal lock (another daemon is renewing)",
            ))?;
        Ok(TokenLock { tx })
    }
}

/// The token's text, for the one caller that hands it to the token manager.
pub fn expose(row: &TokenRow) -> &str {
    row.token.expose_secret()
}

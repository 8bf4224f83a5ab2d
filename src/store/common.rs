//! The operations whose Rust and SQL are the same on both dialects
//! (placeholders are `$N`, which SQLite reads too), written once: the
//! traits [`Common`] and [`TxCommon`] (supertraits of [`super::Backend`]
//! and [`super::WriteTx`]), and the macros that implement them in each
//! backend, `common_ops!` and `common_tx_ops!`, expanded there so each
//! reads its own pools, `MIGRATOR` and `DUE_SQL`.

use super::{AttemptListRow, EventHead, GateState, StoreError};
use crate::payment::Status;

/// Store operations with one implementation for both dialects (see the
/// module). Reached like every other operation, through [`super::Store`].
#[async_trait::async_trait]
pub trait Common: Send + Sync {
    /// The schema version applied (the newest migration that succeeded),
    /// and the newest this build knows.
    async fn schema_version(&self) -> Result<(Option<i64>, i64), StoreError>;

    /// How many pending rows are due at `now_ms`, counting at most `cap`.
    async fn due(&self, now_ms: i64, cap: usize) -> Result<usize, StoreError>;

    /// The gate's state kept in the database (quota pause, day's spend).
    async fn gate_state(&self) -> Result<GateState, StoreError>;

    /// The live daemons' (host, pid, receivers as stored JSON).
    async fn live_receiver_rows(
        &self,
        now_ms: i64,
        live_ms: i64,
    ) -> Result<Vec<(String, i64, String)>, StoreError>;

    /// Removes this daemon from the live ones (on shutdown).
    async fn leave(&self, instance: &str) -> Result<(), StoreError>;

    /// Expired rows whose last answer said "static QR" (all of history:
    /// for `status`, not for periodic reports).
    async fn expired_static_qr(&self) -> Result<i64, StoreError>;

    /// One payment's status by md5, if the row exists.
    async fn status_of(&self, md5: &str) -> Result<Option<Status>, StoreError>;

    /// (status, count) of the deliveries.
    async fn delivery_status_counts(&self) -> Result<Vec<(String, i64)>, StoreError>;

    /// One event, with its payload.
    async fn event_head(&self, id: &str) -> Result<Option<EventHead>, StoreError>;

    /// The attempts of event `id`, in order.
    async fn attempts_of(&self, id: &str) -> Result<Vec<AttemptListRow>, StoreError>;

    /// Keeps a payment's deeplink (once: a deeplink kept stays).
    async fn set_deeplink(
        &self,
        id: crate::payment::PaymentId,
        link: &str,
    ) -> Result<(), StoreError>;

    /// Stores a new API key.
    async fn api_key_insert(&self, k: &super::ApiKeyRow) -> Result<(), StoreError>;

    /// Every API key, oldest first (never a secret).
    async fn api_keys(&self) -> Result<Vec<super::ApiKeyRow>, StoreError>;

    /// One API key by id.
    async fn api_key(&self, id: &str) -> Result<Option<super::ApiKeyRow>, StoreError>;

    /// Revokes a key; `None`: no such key, `Some(false)`: already revoked.
    async fn api_key_revoke(&self, id: &str, now_ms: i64) -> Result<Option<bool>, StoreError>;

    /// The rows `target` names, with their statuses, in id order.
    async fn target_statuses(
        &self,
        target: &super::Target,
    ) -> Result<Vec<(crate::payment::PaymentId, Status)>, StoreError>;
}

/// Write-transaction steps with one implementation for both dialects.
#[async_trait::async_trait]
pub trait TxCommon: Send {
    /// Runs one statement without arguments (`SAVEPOINT w`...).
    async fn exec(&mut self, sql: &'static str, what: &'static str) -> Result<(), StoreError>;

    /// The stored event key's bytes.
    async fn stored_event_key(&mut self) -> Result<Vec<u8>, StoreError>;

    /// Unsigned events with a pending delivery whose type matches their
    /// row's status: (id, type, md5, payload).
    async fn unsigned_events(
        &mut self,
    ) -> Result<Vec<(String, String, String, String)>, StoreError>;

    /// Sets an event's MAC.
    async fn sign_event(&mut self, id: &str, mac: &str) -> Result<(), StoreError>;

    /// An idempotency key's (request hash, payment id).
    async fn idem_get(
        &mut self,
        key_id: &str,
        idem: &str,
    ) -> Result<Option<(String, i64)>, StoreError>;

    /// Stores an idempotency key; a unique violation when another request
    /// stored it first.
    async fn idem_put(
        &mut self,
        key_id: &str,
        idem: &str,
        hash: &str,
        payment_id: i64,
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// Forgets idempotency keys made before `before_ms`.
    async fn idem_purge(&mut self, before_ms: i64) -> Result<(), StoreError>;

    /// A late-watched row's next late check (`None`: the watch ends),
    /// guarded like a final write: the same row, claim, status and md5.
    /// Whether the row was still the one claimed.
    async fn late_write(
        &mut self,
        row: &super::Held,
        next: Option<i64>,
    ) -> Result<bool, StoreError>;

    /// Commits.
    async fn commit(self: Box<Self>) -> Result<(), StoreError>;
}

/// Implements [`Common`] for a backend `$store` whose reads go to the pool
/// field `$read` and writes to `$write`; the backend's module defines
/// `MIGRATOR` and `DUE_SQL`.
macro_rules! common_ops {
    ($store:ty, read: $read:ident, write: $write:ident) => {
        #[async_trait::async_trait]
        impl $crate::store::Common for $store {
            async fn schema_version(
                &self,
            ) -> Result<(Option<i64>, i64), $crate::store::StoreError> {
                let applied: Option<i64> =
                    sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success")
                        .fetch_one(&self.$read)
                        .await
                        .map_err($crate::store::ctx("read the schema version"))?;
                let latest = MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0);
                Ok((applied, latest))
            }

            async fn due(
                &self,
                now_ms: i64,
                cap: usize,
            ) -> Result<usize, $crate::store::StoreError> {
                let n: i64 = sqlx::query_scalar(DUE_SQL)
                    .bind(now_ms)
                    .bind(cap as i64)
                    .fetch_one(&self.$read)
                    .await
                    .map_err($crate::store::ctx("count due payments"))?;
                Ok(usize::try_from(n).unwrap_or(0))
            }

            async fn gate_state(
                &self,
            ) -> Result<$crate::store::GateState, $crate::store::StoreError> {
                let row: Option<$crate::store::GateState> = sqlx::query_as(&format!(
                    "SELECT {} FROM gate_state WHERE id = 1",
                    $crate::store::GATE_COLUMNS
                ))
                .fetch_optional(&self.$read)
                .await
                .map_err($crate::store::ctx("read the gate state"))?;
                Ok(row.unwrap_or_default())
            }

            async fn live_receiver_rows(
                &self,
                now_ms: i64,
                live_ms: i64,
            ) -> Result<Vec<(String, i64, String)>, $crate::store::StoreError> {
                sqlx::query_as(
                    "SELECT host, pid, receivers FROM gate_members
                     WHERE seen_ms >= $1 AND seen_ms <= $2 ORDER BY host, pid",
                )
                .bind(now_ms - live_ms)
                .bind(now_ms.saturating_add(live_ms))
                .fetch_all(&self.$read)
                .await
                .map_err($crate::store::ctx("read the live daemons' receivers"))
            }

            async fn leave(&self, instance: &str) -> Result<(), $crate::store::StoreError> {
                sqlx::query("DELETE FROM gate_members WHERE instance = $1")
                    .bind(instance)
                    .execute(&self.$write)
                    .await
                    .map_err($crate::store::ctx("leave the live daemons"))?;
                Ok(())
            }

            async fn expired_static_qr(&self) -> Result<i64, $crate::store::StoreError> {
                sqlx::query_scalar(
                    "SELECT count(*) FROM payments
                     WHERE status = 'expired' AND last_answer = 'static_qr'",
                )
                .fetch_one(&self.$read)
                .await
                .map_err($crate::store::ctx("count static QRs"))
            }

            async fn status_of(
                &self,
                md5: &str,
            ) -> Result<Option<$crate::payment::Status>, $crate::store::StoreError> {
                let s: Option<String> =
                    sqlx::query_scalar("SELECT status FROM payments WHERE md5 = $1")
                        .bind(md5)
                        .fetch_optional(&self.$read)
                        .await
                        .map_err($crate::store::ctx(format!("read status of {md5}")))?;
                s.map(|s| $crate::store::status_from(&s, "read status"))
                    .transpose()
            }

            async fn delivery_status_counts(
                &self,
            ) -> Result<Vec<(String, i64)>, $crate::store::StoreError> {
                sqlx::query_as("SELECT status, count(*) FROM event_deliveries GROUP BY status")
                    .fetch_all(&self.$read)
                    .await
                    .map_err($crate::store::ctx("count deliveries"))
            }

            async fn event_head(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::EventHead>, $crate::store::StoreError> {
                sqlx::query_as(
                    "SELECT id, type, md5, created_at, payload FROM payment_events WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.$read)
                .await
                .map_err($crate::store::ctx(format!("read event {id}")))
            }

            async fn attempts_of(
                &self,
                id: &str,
            ) -> Result<Vec<$crate::store::AttemptListRow>, $crate::store::StoreError> {
                sqlx::query_as(&format!(
                    "SELECT {} FROM event_attempts WHERE event_id = $1 ORDER BY id",
                    $crate::store::ATTEMPT_COLUMNS
                ))
                .bind(id)
                .fetch_all(&self.$read)
                .await
                .map_err($crate::store::ctx("read attempts"))
            }

            async fn set_deeplink(
                &self,
                id: $crate::payment::PaymentId,
                link: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE payments SET deeplink = $1 WHERE id = $2 AND deeplink IS NULL")
                    .bind(link)
                    .bind(id.0)
                    .execute(&self.$write)
                    .await
                    .map_err($crate::store::ctx("keep the deeplink"))?;
                Ok(())
            }

            async fn api_key_insert(
                &self,
                k: &$crate::store::ApiKeyRow,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO api_keys (id, name, scopes, key_hash, created_ms)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(&k.id)
                .bind(&k.name)
                .bind(&k.scopes)
                .bind(&k.key_hash)
                .bind(k.created_ms)
                .execute(&self.$write)
                .await
                .map_err($crate::store::ctx("store the API key"))?;
                Ok(())
            }

            async fn api_keys(
                &self,
            ) -> Result<Vec<$crate::store::ApiKeyRow>, $crate::store::StoreError> {
                sqlx::query_as(
                    "SELECT id, name, scopes, key_hash, created_ms, revoked_ms
                     FROM api_keys ORDER BY created_ms, id",
                )
                .fetch_all(&self.$read)
                .await
                .map_err($crate::store::ctx("read the API keys"))
            }

            async fn api_key(
                &self,
                id: &str,
            ) -> Result<Option<$crate::store::ApiKeyRow>, $crate::store::StoreError> {
                sqlx::query_as(
                    "SELECT id, name, scopes, key_hash, created_ms, revoked_ms
                     FROM api_keys WHERE id = $1",
                )
                .bind(id)
                .fetch_optional(&self.$read)
                .await
                .map_err($crate::store::ctx("read an API key"))
            }

            async fn api_key_revoke(
                &self,
                id: &str,
                now_ms: i64,
            ) -> Result<Option<bool>, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE api_keys SET revoked_ms = $1 WHERE id = $2 AND revoked_ms IS NULL",
                )
                .bind(now_ms)
                .bind(id)
                .execute(&self.$write)
                .await
                .map_err($crate::store::ctx("revoke the API key"))?;
                if done.rows_affected() == 1 {
                    return Ok(Some(true));
                }
                Ok(self.api_key(id).await?.map(|_| false))
            }

            async fn target_statuses(
                &self,
                target: &$crate::store::Target,
            ) -> Result<Vec<($crate::payment::PaymentId, $crate::payment::Status)>, $crate::store::StoreError>
            {
                let (id, public_id, md5, order_id) = target.sql_parts();
                let rows: Vec<(i64, String)> = sqlx::query_as(
                    "SELECT id, status FROM payments
                     WHERE id = $1 OR public_id = $2 OR md5 = $3 OR order_id = $4 ORDER BY id",
                )
                .bind(id)
                .bind(public_id)
                .bind(md5)
                .bind(order_id)
                .fetch_all(&self.$read)
                .await
                .map_err($crate::store::ctx(format!("read {target}")))?;
                rows.into_iter()
                    .map(|(id, s)| {
                        Ok((
                            $crate::payment::PaymentId(id),
                            $crate::store::status_from(&s, "read status")?,
                        ))
                    })
                    .collect()
            }
        }
    };
}

/// Implements [`TxCommon`] for a backend's write transaction `$tx`, a
/// one-field tuple struct around an `sqlx::Transaction`.
macro_rules! common_tx_ops {
    ($tx:ty) => {
        #[async_trait::async_trait]
        impl $crate::store::TxCommon for $tx {
            async fn exec(
                &mut self,
                sql: &'static str,
                what: &'static str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(sql)
                    .execute(&mut *self.0)
                    .await
                    .map_err($crate::store::ctx(what))?;
                Ok(())
            }

            async fn stored_event_key(&mut self) -> Result<Vec<u8>, $crate::store::StoreError> {
                sqlx::query_scalar("SELECT event_key FROM daemon_secret WHERE id = 1")
                    .fetch_one(&mut *self.0)
                    .await
                    .map_err($crate::store::ctx("read the event key"))
            }

            async fn unsigned_events(
                &mut self,
            ) -> Result<Vec<(String, String, String, String)>, $crate::store::StoreError> {
                sqlx::query_as($crate::store::ADOPT_EVENTS_SQL)
                    .fetch_all(&mut *self.0)
                    .await
                    .map_err($crate::store::ctx(
                        "read the events written before the event key",
                    ))
            }

            async fn sign_event(
                &mut self,
                id: &str,
                mac: &str,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query("UPDATE payment_events SET mac = $1 WHERE id = $2")
                    .bind(mac)
                    .bind(id)
                    .execute(&mut *self.0)
                    .await
                    .map_err($crate::store::ctx(
                        "sign the events written before the event key",
                    ))?;
                Ok(())
            }

            async fn idem_get(
                &mut self,
                key_id: &str,
                idem: &str,
            ) -> Result<Option<(String, i64)>, $crate::store::StoreError> {
                sqlx::query_as(
                    "SELECT request_hash, payment_id FROM api_idempotency
                     WHERE key_id = $1 AND idem_key = $2",
                )
                .bind(key_id)
                .bind(idem)
                .fetch_optional(&mut *self.0)
                .await
                .map_err($crate::store::ctx("read an idempotency key"))
            }

            async fn idem_put(
                &mut self,
                key_id: &str,
                idem: &str,
                hash: &str,
                payment_id: i64,
                now_ms: i64,
            ) -> Result<(), $crate::store::StoreError> {
                sqlx::query(
                    "INSERT INTO api_idempotency (key_id, idem_key, request_hash, payment_id, created_ms)
                     VALUES ($1, $2, $3, $4, $5)",
                )
                .bind(key_id)
                .bind(idem)
                .bind(hash)
                .bind(payment_id)
                .bind(now_ms)
                .execute(&mut *self.0)
                .await
                .map_err($crate::store::ctx("store an idempotency key"))?;
                Ok(())
            }

            async fn idem_purge(&mut self, before_ms: i64) -> Result<(), $crate::store::StoreError> {
                sqlx::query("DELETE FROM api_idempotency WHERE created_ms < $1")
                    .bind(before_ms)
                    .execute(&mut *self.0)
                    .await
                    .map_err($crate::store::ctx("forget old idempotency keys"))?;
                Ok(())
            }

            async fn late_write(
                &mut self,
                row: &$crate::store::Held,
                next: Option<i64>,
            ) -> Result<bool, $crate::store::StoreError> {
                let done = sqlx::query(
                    "UPDATE payments SET late_check_at = $1, lease_id = NULL
                     WHERE id = $2 AND lease_id = $3 AND status = $4 AND md5 = $5",
                )
                .bind(next)
                .bind(row.id.0)
                .bind(row.lease_id)
                .bind(row.from.as_str())
                .bind(&row.md5)
                .execute(&mut *self.0)
                .await
                .map_err($crate::store::ctx("reschedule a late check"))?;
                Ok(done.rows_affected() == 1)
            }

            async fn commit(self: Box<Self>) -> Result<(), $crate::store::StoreError> {
                self.0.commit().await.map_err($crate::store::ctx("commit"))
            }
        }
    };
}

//! What every database backend offers, written once: [`Backend`] is the
//! store's interface. A backend ([`super::sqlite`], [`super::postgres`])
//! implements the primitives, each one statement or transaction in its own
//! SQL; the logic above them (the record loop with its savepoints and
//! batches, the event key and the adoption of older events, the checks on
//! claimed deliveries, folds of rows into the public types) is written here
//! once, as provided methods, over [`WriteTx`].

use std::time::Duration;

use chrono::{DateTime, Utc};

use super::{
    batch_json, member_receivers, own_failure, postgres, sqlite, time_text, Applied, AttemptRecord,
    AttemptRow, Bookkeeping, Claimed, ClaimedDelivery, Counts, DeliveryCounts, DeliveryOutcome,
    DeliveryRow, DeliveryStatus, EventKey, EventRow, GateMember, GateState, Held, InstanceGuard,
    LastAnswer, MemberReceivers, NewPayment, PaymentRow, PendingFacts, StatusSummary, Store,
    StoreError, Write, FORGED_EVENT,
};
use crate::event::{final_event, NewEvent};
use crate::payment::{Confirmation, FinalStatus, PaymentId, Status};

/// The three batched writes (one statement each for all their rows).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Batch {
    /// [`Write::Reschedule`].
    Reschedule,
    /// [`Write::Release`].
    Release,
    /// [`Write::Defer`].
    Defer,
}

impl Batch {
    const ALL: [Batch; 3] = [Batch::Reschedule, Batch::Release, Batch::Defer];

    fn of(w: &Write) -> Option<Batch> {
        match w {
            Write::Final { .. } | Write::Late { .. } => None,
            Write::Reschedule { .. } => Some(Batch::Reschedule),
            Write::Release { .. } => Some(Batch::Release),
            Write::Defer { .. } => Some(Batch::Defer),
        }
    }
}

/// The row a final write changed, as the database returned it.
#[derive(Debug, Clone, sqlx::FromRow)]
pub struct WrittenRow {
    /// Row id.
    #[sqlx(try_from = "i64")]
    pub id: PaymentId,
    /// md5 column.
    pub md5: String,
    /// amount column, as text.
    pub amount: String,
    /// currency column.
    pub currency: String,
    /// order_id column.
    pub order_id: Option<String>,
    /// metadata column, as JSON text.
    pub metadata: Option<String>,
}

impl WrittenRow {
    /// The row as its event describes it.
    pub fn event_row(&self) -> crate::event::EventRow<'_> {
        crate::event::EventRow {
            md5: &self.md5,
            amount: &self.amount,
            currency: &self.currency,
            order_id: self.order_id.as_deref(),
            metadata: self.metadata.as_deref(),
        }
    }
}

/// What [`Backend::create_payment`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Created {
    /// A new payment.
    New(PaymentId),
    /// The idempotency key's payment, made by an earlier request.
    Replayed(PaymentId),
    /// The idempotency key was used with another request.
    Conflict,
}

/// What `cancel` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CancelOutcome {
    /// These pending rows are now cancelled (ids).
    Cancelled(Vec<PaymentId>),
    /// No pending row: the target's rows are final, with these statuses.
    Final(Vec<(PaymentId, Status)>),
    /// No row is the target.
    Unknown,
}

/// An event as read, before its deliveries are added.
#[derive(Debug, sqlx::FromRow)]
pub struct EventHead {
    id: String,
    #[sqlx(rename = "type")]
    event_type: String,
    md5: String,
    created_at: DateTime<Utc>,
    #[sqlx(default)]
    payload: Option<String>,
}

impl EventHead {
    fn into_row(self, deliveries: Vec<DeliveryRow>, attempts: Vec<AttemptRow>) -> EventRow {
        EventRow {
            deliveries,
            attempts,
            // Stored by the daemon as JSON; shown as text if it is not.
            payload: self
                .payload
                .map(|p| serde_json::from_str(&p).unwrap_or(serde_json::Value::String(p))),
            id: self.id,
            event_type: self.event_type,
            md5: self.md5,
            created_at: time_text(self.created_at),
        }
    }
}

/// The columns of a [`DeliveryListRow`], in both dialects.
pub(crate) const DELIVERY_COLUMNS: &str =
    "event_id, receiver, status, attempts, next_attempt_at, last_error, delivered_at";

/// A delivery as read.
#[derive(Debug, sqlx::FromRow)]
pub struct DeliveryListRow {
    event_id: String,
    receiver: String,
    status: String,
    attempts: i64,
    next_attempt_at: i64,
    last_error: Option<String>,
    delivered_at: Option<DateTime<Utc>>,
}

impl DeliveryListRow {
    fn into_row(self) -> Result<(String, DeliveryRow), StoreError> {
        let status = delivery_status(&self.status)?;
        Ok((
            self.event_id,
            DeliveryRow {
                receiver: self.receiver,
                status,
                attempts: self.attempts,
                next_attempt_ms: (status == DeliveryStatus::Pending)
                    .then_some(self.next_attempt_at),
                last_error: self.last_error,
                delivered_at: self.delivered_at.map(time_text),
            },
        ))
    }
}

/// The columns of an [`AttemptListRow`], in both dialects.
pub(crate) const ATTEMPT_COLUMNS: &str =
    "receiver, attempt, at, latency_ms, http_status, error, answer";

/// A delivery attempt as read.
#[derive(Debug, sqlx::FromRow)]
pub struct AttemptListRow {
    receiver: String,
    attempt: i64,
    at: DateTime<Utc>,
    latency_ms: i64,
    http_status: Option<i64>,
    error: Option<String>,
    answer: Option<String>,
}

impl AttemptListRow {
    fn into_row(self) -> AttemptRow {
        AttemptRow {
            receiver: self.receiver,
            attempt: self.attempt,
            at: time_text(self.at),
            latency_ms: self.latency_ms,
            http_status: self.http_status,
            error: self.error,
            answer: self.answer,
        }
    }
}

fn delivery_status(text: &str) -> Result<DeliveryStatus, StoreError> {
    text.parse().map_err(|e| StoreError::Sql {
        what: "read delivery status".into(),
        source: sqlx::Error::Decode(Box::new(e)),
    })
}

/// An open write transaction of a backend (SQLite: `BEGIN IMMEDIATE`,
/// the one writer; PostgreSQL: `BEGIN`). Savepoints are plain SQL,
/// the same on both.
#[async_trait::async_trait]
pub trait WriteTx: super::TxCommon + Send {
    /// One final write, guarded by `row`; `None`: the row is no longer the
    /// one claimed.
    async fn final_write(
        &mut self,
        row: &Held,
        status: FinalStatus,
        c: Option<&Confirmation>,
        answer: &str,
        now: DateTime<Utc>,
    ) -> Result<Option<WrittenRow>, StoreError>;

    /// Inserts an event, signed with `key`, and a delivery per active
    /// receiver.
    async fn insert_event(
        &mut self,
        e: &NewEvent,
        payment_id: Option<PaymentId>,
        now: DateTime<Utc>,
        key: &EventKey,
    ) -> Result<(), StoreError>;

    /// The batched statement `kind` for `rows` (a JSON array of
    /// `batch_json` objects).
    async fn batch_write(
        &mut self,
        kind: Batch,
        rows: String,
        now: DateTime<Utc>,
    ) -> Result<(), StoreError>;

    /// Inserts a payment in this transaction.
    async fn insert_payment(&mut self, p: &NewPayment) -> Result<PaymentId, StoreError>;

    /// Cancels the pending rows of `target` (watched for late money from
    /// `now`), returning them.
    async fn cancel_rows(
        &mut self,
        target: &super::Target,
        now: DateTime<Utc>,
    ) -> Result<Vec<WrittenRow>, StoreError>;

    /// Stores `key` as the event key unless one is stored; whether it was.
    async fn offer_event_key(&mut self, key: &EventKey) -> Result<bool, StoreError>;

    /// Closes a claimed delivery's attempt, guarded by its lease: its new
    /// `status`, next attempt, error and delivery time. Whether the lease
    /// still held.
    async fn close_delivery(
        &mut self,
        d: &ClaimedDelivery,
        status: DeliveryStatus,
        next_attempt_at: i64,
        error: Option<&str>,
        delivered_at: Option<DateTime<Utc>>,
    ) -> Result<bool, StoreError>;

    /// Records one attempt of a delivery (its number: one more than made).
    async fn add_attempt(
        &mut self,
        d: &ClaimedDelivery,
        a: &AttemptRecord,
    ) -> Result<(), StoreError>;
}

/// After a write under savepoint `w` failed with `e`: when it failed on its
/// own values, rolls back to the savepoint (this write alone) and returns
/// the message to report for it; otherwise returns `e`, which fails the
/// whole transaction like any outage.
async fn savepoint_failed(tx: &mut dyn WriteTx, e: StoreError) -> Result<String, StoreError> {
    if !own_failure(&e) {
        // Not this row's fault: the batch waits for the database like any
        // outage (its rows stay leased).
        return Err(e);
    }
    tx.exec("ROLLBACK TO SAVEPOINT w", "roll back savepoint")
        .await?;
    tx.exec("RELEASE SAVEPOINT w", "release savepoint").await?;
    Ok(e.to_string())
}

/// One final write and, when it changed the row, its event (in the same
/// transaction: a crash never keeps one without the other; the event
/// describes the row written). `Ok(false)`: the row is no longer the one
/// claimed.
async fn final_write(
    tx: &mut dyn WriteTx,
    row: &Held,
    status: FinalStatus,
    c: Option<&Confirmation>,
    answer: &str,
    now: DateTime<Utc>,
    key: Option<&EventKey>,
) -> Result<bool, StoreError> {
    let Some(w) = tx.final_write(row, status, c, answer, now).await? else {
        return Ok(false);
    };
    let e = final_event(&w.event_row(), status.status(), c, now);
    let key = key.ok_or_else(|| StoreError::Sql {
        what: "record result".into(),
        source: sqlx::Error::Configuration("no event key was read for a final write".into()),
    })?;
    tx.insert_event(&e, Some(w.id), now, key).await?;
    Ok(true)
}

/// The batched statement `kind` for the writes at `idx`.
async fn batch_write(
    tx: &mut dyn WriteTx,
    kind: Batch,
    writes: &[Write],
    idx: &[usize],
    now: DateTime<Utc>,
) -> Result<(), StoreError> {
    let rows: Vec<serde_json::Value> = idx.iter().map(|&i| batch_json(&writes[i])).collect();
    tx.batch_write(kind, serde_json::Value::Array(rows).to_string(), now)
        .await
}

/// The store's interface; see the module's documentation. Callers hold a
/// [`Store`], which derefs to this.
#[async_trait::async_trait]
pub trait Backend: super::Common + Send + Sync + std::fmt::Debug {
    /// Which backend this is (`sqlite` or `postgres`), for logs and reports.
    fn backend_name(&self) -> &'static str;

    /// The PostgreSQL backend, when this is one (tests and tools that talk
    /// to the server directly, e.g. to LISTEN).
    fn as_postgres(&self) -> Option<&postgres::PgStore> {
        None
    }

    /// The SQLite backend, when this is one.
    fn as_sqlite(&self) -> Option<&sqlite::SqliteStore> {
        None
    }

    /// Begins a write transaction.
    async fn begin_write(&self) -> Result<Box<dyn WriteTx>, StoreError>;

    /// Where the event key is kept once read.
    fn event_key_cell(&self) -> &tokio::sync::OnceCell<EventKey>;

    /// Moves due pending rows of the fresh lane created before `cutoff_ms`
    /// to the older lane (see [`Backend::age_out`]).
    async fn age_out_before(&self, now_ms: i64, cutoff_ms: i64) -> Result<u64, StoreError>;

    /// Claims due pending deliveries (see [`Backend::claim_deliveries`]),
    /// unchecked.
    async fn claim_due_deliveries(
        &self,
        now_ms: i64,
        lease: Duration,
        limit: usize,
        receivers: &[&str],
    ) -> Result<Vec<ClaimedDelivery>, StoreError>;

    /// Applies pending migrations.
    async fn migrate(&self) -> Result<(), StoreError>;

    /// Becomes the one daemon of this database where the backend allows
    /// only one (SQLite: a second daemon would double the request ceiling),
    /// or fails naming the running one.
    fn lock_instance(&self) -> Result<InstanceGuard, StoreError>;

    /// Problems with how the database is set up (e.g. SQLite not in WAL
    /// mode), one line each; empty when all is well.
    async fn setup_problems(&self) -> Result<Vec<String>, StoreError>;

    /// Claims up to `limit` due pending rows for a lease: fresh ones first,
    /// then older ones, each by due time. Their next check moves past the
    /// lease, so a crash only delays them.
    async fn claim(
        &self,
        now_ms: i64,
        lease: Duration,
        limit: usize,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError> {
        self.claim_spare(now_ms, now_ms, lease, limit, ttl).await
    }

    /// Claims up to `limit` pending rows due by `ahead_ms` that no claim
    /// holds at `now_ms`, for a lease from `now_ms` ([`Self::claim`] is
    /// this with nothing ahead). A round's spare places take rows due soon
    /// (checked early at no cost); a row whose check is still in flight
    /// (here or in another daemon) is never taken again: its answer would
    /// be refused by the lease guard and the request wasted.
    async fn claim_spare(
        &self,
        now_ms: i64,
        ahead_ms: i64,
        lease: Duration,
        limit: usize,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// The late watch: ends it for rows that became final more than
    /// `watch` ago, then claims up to `limit` expired, failed or cancelled
    /// rows whose late check is due, for a lease.
    async fn claim_late(
        &self,
        now_ms: i64,
        lease: Duration,
        limit: usize,
        watch: Duration,
        ttl: Duration,
    ) -> Result<Vec<Claimed>, StoreError>;

    /// Late payments today and the newest one.
    async fn late_summary(&self) -> Result<super::LateSummary, StoreError>;

    /// The final rows whose day (paid_at, else confirmed_at; UTC) is from
    /// `from` to `to`, both included.
    async fn report_rows(
        &self,
        from: chrono::NaiveDate,
        to: chrono::NaiveDate,
    ) -> Result<Vec<super::ReportRow>, StoreError>;

    /// Counts per status, the oldest pending row and the next due check.
    async fn counts(&self) -> Result<Counts, StoreError>;

    /// Pending, overdue (past deadline + `grace` at `now_ms`, a row without
    /// `expires_at` living `ttl`) and the oldest pending row's age.
    async fn pending_facts(
        &self,
        now_ms: i64,
        ttl: Duration,
        grace: Duration,
    ) -> Result<PendingFacts, StoreError>;

    /// Payments confirmed paid since midnight UTC.
    async fn paid_today(&self) -> Result<i64, StoreError>;

    /// Saves the quota pause: `Some((since_ms, next_probe_ms))`, or `None`
    /// when it ended.
    async fn set_quota_pause(&self, pause: Option<(i64, i64)>) -> Result<(), StoreError>;

    /// Adds `n` requests to the spend of UTC day `day` (`YYYY-MM-DD`; a new
    /// day starts from zero) and returns that day's total.
    async fn add_spend(&self, day: &str, n: i64) -> Result<i64, StoreError>;

    /// Records a 429 for every daemon: no request before `not_before_ms`
    /// (kept if one later is in force), the rate cut to at most `rate`.
    /// Returns the record as it now stands.
    async fn gate_cut(
        &self,
        not_before_ms: i64,
        now_ms: i64,
        rate: Option<f64>,
    ) -> Result<GateState, StoreError>;

    /// Saves a rate climbed back since cut `epoch`; a cut made since (a
    /// newer epoch) wins.
    async fn gate_climb(&self, rate: f64, epoch: i64) -> Result<(), StoreError>;

    /// Reserves the fleet's next request slot: the later of `now_ms` and
    /// the next free slot (a slot more than `horizon_ms` ahead, left by a
    /// clock far ahead or a rate since raised, counts as free now); the
    /// next free slot moves on to `gap_ms` after it. Returns the slot (unix
    /// ms) and the 429 window in force.
    async fn gate_reserve(
        &self,
        now_ms: i64,
        gap_ms: i64,
        horizon_ms: i64,
    ) -> Result<(i64, Option<i64>), StoreError>;

    /// This daemon's heartbeat; returns how many daemons are live (seen
    /// within `live_ms`), itself included. Long-dead entries are removed.
    async fn heartbeat(
        &self,
        member: &GateMember,
        now_ms: i64,
        live_ms: i64,
    ) -> Result<i64, StoreError>;

    /// Inserts a pending payment as a merchant would; the table's CHECKs
    /// have the last word on what is valid.
    async fn insert_payment(&self, p: &NewPayment) -> Result<PaymentId, StoreError>;

    /// The newest rows the filter takes, newest first.
    async fn list_page(&self, f: &super::PageFilter) -> Result<Vec<PaymentRow>, StoreError>;

    /// The daemon's bookkeeping of the payment with this md5, if any.
    async fn bookkeeping(&self, md5: &str) -> Result<Option<Bookkeeping>, StoreError>;

    /// The newest answer recorded for any row.
    async fn last_answer(&self) -> Result<Option<LastAnswer>, StoreError>;

    /// When the daemon last got a readable answer (a row checked without a
    /// transient error).
    async fn last_answer_at(&self) -> Result<Option<String>, StoreError>;

    /// Per status: count and paid -> confirmed seconds.
    async fn status_summary(&self) -> Result<Vec<StatusSummary>, StoreError>;

    /// Makes `active` (`webhook`, `hook`) receivers new events get a
    /// delivery for. Others stay as they are: a receiver another live
    /// daemon has stays active, and one no live daemon has is turned off
    /// by the next heartbeat ([`Backend::heartbeat`]).
    async fn set_receivers(&self, active: &[&str]) -> Result<(), StoreError>;

    /// Gives claimed deliveries back unattempted (shutdown): due at `now_ms`.
    async fn release_deliveries(
        &self,
        claims: &[(String, String, i64)],
        now_ms: i64,
    ) -> Result<(), StoreError>;

    /// The newest events (payload left out), optionally only those with a
    /// delivery of `status`.
    async fn event_heads(
        &self,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<EventHead>, StoreError>;

    /// The deliveries of the events `ids`, by receiver.
    async fn deliveries_of(&self, ids: &[&str]) -> Result<Vec<DeliveryListRow>, StoreError>;

    /// Makes every delivery of event `id` pending and due now, with a
    /// fresh attempt count, adding one for each active receiver that had
    /// none. Returns how many deliveries are pending (0: no such event, or
    /// no receiver).
    async fn redeliver(&self, id: &str) -> Result<u64, StoreError>;

    /// Closes the connections.
    async fn close(&self);
    /// Moves due pending rows of the fresh lane that were created more
    /// than `fresh_period` before `now_ms` to the older lane: age decides
    /// what is fresh, not "never checked", so a backlog inserted while the
    /// daemon was down (or kept back by an outage, an import or a quota
    /// pause) never stands before a customer at the counter. Costs the due
    /// rows of the fresh lane, which are few in steady state. Returns how
    /// many moved.
    async fn age_out(&self, now_ms: i64, fresh_period: Duration) -> Result<u64, StoreError> {
        let cutoff =
            now_ms.saturating_sub(i64::try_from(fresh_period.as_millis()).unwrap_or(i64::MAX));
        self.age_out_before(now_ms, cutoff).await
    }

    /// The live daemons and their receivers (heartbeat within `live_ms`).
    async fn live_receivers(
        &self,
        now_ms: i64,
        live_ms: i64,
    ) -> Result<Vec<MemberReceivers>, StoreError> {
        Ok(member_receivers(
            self.live_receiver_rows(now_ms, live_ms).await?,
        ))
    }

    /// Applies writes in one short transaction. Returns, per write, what
    /// became of it: written, stale (the row is no longer the one claimed:
    /// results are written once, and only to the row that was checked) or
    /// failed alone (each final write runs under its own savepoint, so a
    /// value the database refuses sinks that write only). Each final write
    /// that changed a row writes its event (`payment_events`) and a
    /// delivery per active receiver in the same transaction. The batched
    /// kinds go as one statement each (a JSON array: on SQLite every
    /// statement is a round trip to its worker thread), under a savepoint;
    /// a batch that fails is retried one row at a time.
    async fn record(
        &self,
        writes: &[Write],
        now: DateTime<Utc>,
    ) -> Result<Vec<Applied>, StoreError> {
        // Read (or made) before the write begins: on SQLite both take the
        // one write connection.
        let key = if writes.iter().any(|w| matches!(w, Write::Final { .. })) {
            Some(self.event_key().await?)
        } else {
            None
        };
        let key = key.as_ref();
        let mut tx = self.begin_write().await?;
        let mut applied = vec![Applied::Written; writes.len()];
        let mut batches: [Vec<usize>; 3] = Default::default();
        // Final writes lock their rows in id order, so two daemons
        // finishing the same rows (one whose lease ran out) wait for each
        // other instead of deadlocking.
        let mut order: Vec<usize> = (0..writes.len()).collect();
        order.sort_by_key(|&i| (Batch::of(&writes[i]).is_some(), writes[i].row().id));
        for i in order {
            if let Write::Late { row, next } = &writes[i] {
                if !tx.late_write(row, *next).await? {
                    applied[i] = Applied::Stale;
                }
                continue;
            }
            let Write::Final {
                row,
                status,
                confirmation,
                answer,
            } = &writes[i]
            else {
                if let Some(kind) = Batch::of(&writes[i]) {
                    batches[kind as usize].push(i);
                }
                continue;
            };
            tx.exec("SAVEPOINT w", "begin savepoint").await?;
            let c = confirmation.as_deref();
            match final_write(&mut *tx, row, *status, c, answer, now, key).await {
                Ok(done) => {
                    tx.exec("RELEASE SAVEPOINT w", "release savepoint").await?;
                    if !done {
                        applied[i] = Applied::Stale;
                    }
                }
                Err(e) => applied[i] = Applied::Failed(savepoint_failed(&mut *tx, e).await?),
            }
        }
        for kind in Batch::ALL {
            let batch = &batches[kind as usize];
            if batch.is_empty() {
                continue;
            }
            tx.exec("SAVEPOINT w", "begin savepoint").await?;
            if batch_write(&mut *tx, kind, writes, batch, now)
                .await
                .is_ok()
            {
                tx.exec("RELEASE SAVEPOINT w", "release savepoint").await?;
                continue;
            }
            tx.exec("ROLLBACK TO SAVEPOINT w", "roll back savepoint")
                .await?;
            tx.exec("RELEASE SAVEPOINT w", "release savepoint").await?;
            // One row at a time, so one bad row sinks only itself.
            for &i in batch {
                tx.exec("SAVEPOINT w", "begin savepoint").await?;
                match batch_write(&mut *tx, kind, writes, &[i], now).await {
                    Ok(()) => tx.exec("RELEASE SAVEPOINT w", "release savepoint").await?,
                    Err(e) => applied[i] = Applied::Failed(savepoint_failed(&mut *tx, e).await?),
                }
            }
        }
        tx.commit().await?;
        Ok(applied)
    }

    /// The newest rows, optionally of one status.
    async fn list(
        &self,
        status: Option<Status>,
        limit: i64,
    ) -> Result<Vec<PaymentRow>, StoreError> {
        self.list_page(&super::PageFilter {
            status,
            limit,
            ..Default::default()
        })
        .await
    }

    /// The row with this public id.
    async fn payment_by_public_id(
        &self,
        public_id: &str,
    ) -> Result<Option<PaymentRow>, StoreError> {
        let mut rows = self
            .list_page(&super::PageFilter {
                public_id: Some(public_id.to_string()),
                limit: 1,
                ..Default::default()
            })
            .await?;
        Ok(rows.pop())
    }

    /// Inserts a payment for API key `key_id`. With an idempotency key
    /// (`Some((key, request_hash))`) a retry is safe: the same key with the
    /// same request answers the payment made first (`replayed`), with
    /// another request [`Created::Conflict`]. Concurrent creates with one
    /// key make one payment: SQLite has one writer; on PostgreSQL the
    /// second insert of the key waits for the first and fails, and its
    /// payment is rolled back.
    async fn create_payment(
        &self,
        key_id: &str,
        idem: Option<(&str, &str)>,
        p: &NewPayment,
        now_ms: i64,
    ) -> Result<Created, StoreError> {
        for attempt in 0..2 {
            let mut tx = self.begin_write().await?;
            if let Some((k, hash)) = idem {
                tx.idem_purge(now_ms - super::IDEMPOTENCY_KEEP_MS).await?;
                if let Some((h, id)) = tx.idem_get(key_id, k).await? {
                    return Ok(if h == hash {
                        Created::Replayed(PaymentId(id))
                    } else {
                        Created::Conflict
                    });
                }
            }
            let id = tx.insert_payment(p).await?;
            if let Some((k, hash)) = idem {
                match tx.idem_put(key_id, k, hash, id.0, now_ms).await {
                    Ok(()) => {}
                    // Another create with this key committed first: read it.
                    Err(e) if attempt == 0 && super::unique_violation(&e) => continue,
                    Err(e) => return Err(e),
                }
            }
            tx.commit().await?;
            return Ok(Created::New(id));
        }
        Err(StoreError::Sql {
            what: "create payment".into(),
            source: sqlx::Error::Protocol("idempotency key contended twice".into()),
        })
    }

    /// Cancels the pending rows of `target`: each becomes `cancelled`
    /// with its event (`payment.cancelled`, and on PostgreSQL the NOTIFY)
    /// in one transaction, and stays watched for late money.
    async fn cancel(
        &self,
        target: &super::Target,
        now: DateTime<Utc>,
    ) -> Result<CancelOutcome, StoreError> {
        let key = self.event_key().await?;
        let mut tx = self.begin_write().await?;
        let rows = tx.cancel_rows(target, now).await?;
        for w in &rows {
            let e = final_event(&w.event_row(), Status::Cancelled, None, now);
            tx.insert_event(&e, Some(w.id), now, &key).await?;
        }
        tx.commit().await?;
        if !rows.is_empty() {
            return Ok(CancelOutcome::Cancelled(
                rows.iter().map(|w| w.id).collect(),
            ));
        }
        let found = self.target_statuses(target).await?;
        Ok(if found.is_empty() {
            CancelOutcome::Unknown
        } else {
            CancelOutcome::Final(found)
        })
    }

    /// The daemon's event key: read from the database, or made there by
    /// the first daemon that needs it (which then signs the events written
    /// before the key existed whose type matches their row's status).
    /// Read once per store. Daemons starting together make one key: the
    /// first insert wins, the others read it.
    async fn event_key(&self) -> Result<EventKey, StoreError> {
        let cell = self.event_key_cell();
        cell.get_or_try_init(|| async {
            let mut tx = self.begin_write().await?;
            let candidate = EventKey::generate();
            let made = tx.offer_event_key(&candidate).await?;
            let key = EventKey::from_stored(tx.stored_event_key().await?)
                .ok_or_else(super::bad_event_key)?;
            if made {
                for (id, event_type, md5, payload) in tx.unsigned_events().await? {
                    if super::adoptable(&event_type, &md5, &payload) {
                        let mac = key.mac(&id, &event_type, &md5, &payload);
                        tx.sign_event(&id, &mac).await?;
                    }
                }
            }
            tx.commit().await?;
            Ok(key)
        })
        .await
        .cloned()
    }

    /// Claims up to `limit` due pending deliveries to `receivers` for a
    /// lease (their next attempt moves past it, so a crash only delays
    /// them), oldest due first. Only events the daemon wrote are handed
    /// out: a row put in the outbox by anyone else (its MAC missing or
    /// wrong) is marked dead, never signed and delivered.
    async fn claim_deliveries(
        &self,
        now_ms: i64,
        lease: Duration,
        limit: usize,
        receivers: &[&str],
    ) -> Result<Vec<ClaimedDelivery>, StoreError> {
        // The key first: made now (on the first use after an upgrade), it
        // signs the older events before they are read below.
        let key = self.event_key().await?;
        let claimed = self
            .claim_due_deliveries(now_ms, lease, limit, receivers)
            .await?;
        let mut out = Vec::with_capacity(claimed.len());
        for d in claimed {
            if key.verifies(
                &d.event_id,
                &d.event_type,
                &d.md5,
                &d.payload,
                d.mac.as_deref(),
            ) {
                out.push(d);
                continue;
            }
            tracing::error!(
                event = %d.event_id,
                md5 = %d.md5,
                receiver = %d.receiver,
                "an event the daemon did not write (its MAC does not verify) is in payment_events: \
                 not delivered; find who can write that table (see the grants in docs/src/operations/postgresql.md)"
            );
            let attempt = AttemptRecord {
                at: Utc::now(),
                latency_ms: 0,
                http_status: None,
                error: Some(FORGED_EVENT.into()),
                answer: None,
            };
            if let Err(e) = self
                .finish_delivery(&d, &attempt, DeliveryOutcome::Dead)
                .await
            {
                tracing::debug!(event = %d.event_id, error = %e, "could not close a forged delivery; its lease will pass");
            }
        }
        Ok(out)
    }

    /// Deliveries per status.
    async fn delivery_counts(&self) -> Result<DeliveryCounts, StoreError> {
        let mut c = DeliveryCounts::default();
        for (status, n) in self.delivery_status_counts().await? {
            match delivery_status(&status)? {
                DeliveryStatus::Pending => c.pending = n,
                DeliveryStatus::Delivered => c.delivered = n,
                DeliveryStatus::Dead => c.dead = n,
            }
        }
        Ok(c)
    }

    /// The newest events with their deliveries, optionally only those with
    /// a delivery of `status`.
    async fn list_events(
        &self,
        status: Option<DeliveryStatus>,
        limit: i64,
    ) -> Result<Vec<EventRow>, StoreError> {
        let events = self.event_heads(status, limit).await?;
        let ids: Vec<&str> = events.iter().map(|e| e.id.as_str()).collect();
        let mut by_event: std::collections::HashMap<String, Vec<DeliveryRow>> =
            std::collections::HashMap::new();
        for d in self.deliveries_of(&ids).await? {
            let (id, row) = d.into_row()?;
            by_event.entry(id).or_default().push(row);
        }
        Ok(events
            .into_iter()
            .map(|e| {
                let deliveries = by_event.remove(&e.id).unwrap_or_default();
                e.into_row(deliveries, Vec::new())
            })
            .collect())
    }

    /// One event with its payload, deliveries and attempts.
    async fn event(&self, id: &str) -> Result<Option<EventRow>, StoreError> {
        let Some(e) = self.event_head(id).await? else {
            return Ok(None);
        };
        let deliveries = self
            .deliveries_of(&[e.id.as_str()])
            .await?
            .into_iter()
            .map(|d| d.into_row().map(|(_, r)| r))
            .collect::<Result<_, _>>()?;
        let attempts = self
            .attempts_of(&e.id)
            .await?
            .into_iter()
            .map(AttemptListRow::into_row)
            .collect();
        Ok(Some(e.into_row(deliveries, attempts)))
    }

    /// Records an attempt and what becomes of the delivery, in one
    /// transaction, guarded by the lease. Returns whether the lease still
    /// held.
    async fn finish_delivery(
        &self,
        d: &ClaimedDelivery,
        attempt: &AttemptRecord,
        outcome: DeliveryOutcome,
    ) -> Result<bool, StoreError> {
        let now = Utc::now();
        let (status, next, delivered_at) = match outcome {
            DeliveryOutcome::Delivered => (DeliveryStatus::Delivered, 0, Some(now)),
            DeliveryOutcome::Retry(at) => (DeliveryStatus::Pending, at, None),
            DeliveryOutcome::Dead => (DeliveryStatus::Dead, 0, None),
        };
        let mut tx = self.begin_write().await?;
        let held = tx
            .close_delivery(d, status, next, attempt.error.as_deref(), delivered_at)
            .await?;
        tx.add_attempt(d, attempt).await?;
        tx.commit().await?;
        Ok(held)
    }

    /// Copies every row of the SQLite database `from` into this PostgreSQL
    /// one (`import --from`); idempotent on md5.
    async fn import_from(&self, from: &Store) -> Result<postgres::ImportReport, StoreError> {
        let to = self.as_postgres().ok_or(StoreError::ImportTarget)?;
        let from = from.as_sqlite().ok_or(StoreError::ImportSource)?;
        to.import_sqlite(from).await
    }
}

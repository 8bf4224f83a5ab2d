//! The daemon: claim due payments, ask Bakong through the shared gate,
//! classify, record, reschedule.
//!
//! One loop claims rows (a short write that leases them) and spawns a check
//! per row, at most `poller.concurrency` at once. Checks send their verdict
//! to one recorder task, which writes batches in short `BEGIN IMMEDIATE`
//! transactions; no transaction is open during an HTTP call. On shutdown
//! the loop stops claiming, in-flight checks give their rows back, and the
//! recorder finishes the writes in hand.

pub mod bulk;
pub mod classify;
pub mod gate_state;
pub mod late;
pub mod report;
pub mod schedule;

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use crate::bakong::{self, Client, Transaction};
use crate::config::Settings;
use crate::counters::{incident, Counters};
use crate::payment::{FinalStatus, Lane, Status};
use crate::store::{Applied, Claimed, Store, Write};
use classify::{classify, Decision, Payment, Verdict, Via};

/// A row whose checks failed this many times in a row is checked in a
/// request of its own, so it never holds healthy ones back.
const ISOLATE_AFTER_ERRORS: i64 = 2;

/// How long in-flight checks get to give their rows back on shutdown; the
/// rest of `poller.shutdown_timeout` (at most 9 s) is for the writes.
pub(crate) const CHECK_DRAIN: Duration = Duration::from_secs(1);

/// Hooks the daemon calls as it runs (sd_notify, tests).
pub trait Observer: Send + Sync + 'static {
    /// Config, database, migrations and token are ready.
    fn ready(&self) {}
    /// The scheduling loop went round once.
    fn tick(&self) {}
    /// Shutdown began.
    fn stopping(&self) {}
    /// A one-line summary of the daemon's state.
    fn status(&self, _line: &str) {}
    /// The watchdog interval the service manager asked for, if any
    /// (`/healthz` allows the loop half of it).
    fn watchdog(&self) -> Option<Duration> {
        None
    }
    /// The metrics listener is bound to `addr`.
    fn listening(&self, _addr: std::net::SocketAddr) {}
    /// The HTTP API listener is bound to `addr`.
    fn api_listening(&self, _addr: std::net::SocketAddr) {}
}

/// An observer that does nothing.
#[derive(Debug, Default)]
pub struct NoObserver;
impl Observer for NoObserver {}

/// What the checks share.
struct Ctx {
    client: Client,
    settings: Arc<Settings>,
    tx: mpsc::Sender<Verdict>,
    shutdown: CancellationToken,
    metrics: Arc<Counters>,
    bulk: bulk::Bulk,
    /// A late-watch batch is in flight (one at a time).
    late_busy: std::sync::atomic::AtomicBool,
}

#[allow(clippy::too_many_arguments)]
pub(crate) async fn schedule_loop(
    store: &Store,
    client: &Client,
    settings: &Arc<Settings>,
    tx: mpsc::Sender<Verdict>,
    shutdown: &CancellationToken,
    metrics: &Arc<Counters>,
    observer: &dyn Observer,
    mut gate_sync: gate_state::GateSync,
) {
    let cfg = &settings.poller;
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        settings: settings.clone(),
        tx,
        shutdown: shutdown.clone(),
        metrics: metrics.clone(),
        bulk: bulk::Bulk::new(cfg.bulk, cfg.bulk_retry),
        late_busy: std::sync::atomic::AtomicBool::new(false),
    });
    let mut last_late = tokio::time::Instant::now();
    let mut tick = tokio::time::interval(cfg.scan_interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let mut checks: JoinSet<()> = JoinSet::new();
    let mut db_errors = 0u32;
    let mut last_flush = tokio::time::Instant::now();
    loop {
        observer.tick();
        metrics.health.round();
        gate_sync.sync(store, client, false).await;
        let mut room = cfg.concurrency.saturating_sub(checks.len());
        // The daily quota's pause: nothing is claimed but the probe, one
        // request when it is due and nothing else is in flight.
        if let Some(p) = client.quota().pause() {
            let due = Utc::now().timestamp_millis() >= p.next_probe_ms;
            room = if due && checks.is_empty() { 1 } else { 0 };
        }
        // One request checks a batch: 50 md5s in bulk mode, else one.
        let bulk = ctx.bulk.active();
        let batch = if bulk { bakong::MAX_LIST } else { 1 };
        let mut full = false;
        // In bulk mode due rows are checked together once per cadence (a
        // full batch goes at once), so each request carries as many md5s as
        // the due set allows. A round also takes the rows falling due in
        // the next half cadence, which would otherwise wait a whole one.
        let lookahead = if bulk {
            cfg.cadence.as_millis() as i64 / 2
        } else {
            0
        };
        let gather = bulk
            && room > 0
            && last_flush.elapsed() < cfg.cadence
            && store
                .due(Utc::now().timestamp_millis(), batch)
                .await
                .is_ok_and(|n| n < batch);
        if room > 0 && !gather {
            last_flush = tokio::time::Instant::now();
            let now = Utc::now().timestamp_millis();
            // Age decides the lane: a due row older than the fresh period
            // that was never checked (a backlog) goes behind new ones.
            if let Err(e) = store.age_out(now + lookahead, cfg.fresh_period).await {
                debug!(error = %e, "could not move aged payments to the older lane");
            }
            metrics.health.query_started();
            let claimed = store
                .claim(now + lookahead, cfg.lease, room * batch, cfg.payment_ttl)
                .await;
            metrics
                .health
                .query_ended(claimed.as_ref().err().map(|e| e as _));
            match claimed {
                Ok(rows) => {
                    full = rows.len() == room * batch;
                    if db_errors > 0 {
                        info!(failed_claims = db_errors, "database reachable again");
                    }
                    db_errors = 0;
                    if !rows.is_empty() {
                        debug!(rows = rows.len(), batch, room, "claimed due payments");
                    }
                    // Rows whose own answers keep failing (an unreadable
                    // item, not a 429 or a timeout of the whole request) go
                    // alone, so one bad row never holds back the healthy ones
                    // it would share a request with; at most as many as
                    // there is room for beside the full batches.
                    let mut alone = Vec::new();
                    let mut healthy = Vec::with_capacity(rows.len());
                    for row in rows {
                        match Payment::from_claimed(&row, cfg.expiry_grace) {
                            Ok(p) if bulk && failing_alone(&row) => alone.push(p),
                            Ok(p) => healthy.push(p),
                            Err(why) => park_bad_row(&ctx, &row, why.0).await,
                        }
                    }
                    let mut alone = budget_filter(&ctx, alone, now).await;
                    let mut healthy = budget_filter(&ctx, healthy, now).await;
                    let room_alone = room.saturating_sub(healthy.len().div_ceil(batch)).max(1);
                    if alone.len() > room_alone {
                        healthy.extend(alone.split_off(room_alone));
                    }
                    if bulk {
                        healthy = bulk_round(&ctx, store, healthy, now).await;
                    } else {
                        // Fresh payments (the customer may be at the counter)
                        // take the first requests of the round; older ones
                        // keep their due order behind them.
                        let fresh_ms = cfg.fresh_period.as_millis() as i64;
                        healthy.sort_by_key(|p| now - p.created_ms >= fresh_ms);
                    }
                    for p in alone {
                        checks.spawn(check_batch(vec![p], ctx.clone()));
                    }
                    // Full batches: every request carries as many md5s as it can.
                    let mut rest = healthy.into_iter().peekable();
                    while rest.peek().is_some() {
                        let chunk: Vec<Payment> = rest.by_ref().take(batch).collect();
                        checks.spawn(check_batch(chunk, ctx.clone()));
                    }
                }
                Err(e) => {
                    db_errors += 1;
                    // One error per outage, not one per scan: a database
                    // server restarting must not flood the log.
                    if db_errors == 1 {
                        error!(error = %e, "claim failed; retrying every scan until the database answers");
                    } else {
                        debug!(error = %e, consecutive = db_errors, "claim failed again");
                    }
                }
            }
        }
        // The late watch takes what is left: only when the claim found no
        // more due payments, there is room, the quota and the budget are
        // free, and no late batch is in flight; at most once per
        // fresh_interval.
        if !full
            && checks.len() < cfg.concurrency
            && last_late.elapsed() >= cfg.fresh_interval
            && !ctx.late_busy.load(Ordering::Relaxed)
        {
            last_late = tokio::time::Instant::now();
            let now = Utc::now().timestamp_millis();
            let free = client.quota().free(now);
            let limit = match (free, ctx.bulk.active()) {
                (false, _) => 0,
                (true, true) => bakong::MAX_LIST,
                (true, false) => 1,
            };
            match store
                .claim_late(now, cfg.lease, limit, cfg.late_watch, cfg.payment_ttl)
                .await
            {
                Ok(rows) if !rows.is_empty() => {
                    debug!(rows = rows.len(), "claimed late-watched payments");
                    ctx.late_busy.store(true, Ordering::Relaxed);
                    checks.spawn(late::check(rows, ctx.clone()));
                }
                Ok(_) => {}
                Err(e) => debug!(error = %e, "could not claim late-watched payments"),
            }
        }
        // With a full claim and room left, go round again at once.
        if full && checks.len() < cfg.concurrency {
            tokio::task::yield_now().await;
            if shutdown.is_cancelled() {
                break;
            }
            continue;
        }
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick.tick() => {}
            Some(res) = checks.join_next(), if !checks.is_empty() => {
                if let Err(e) = res {
                    error!(task = "check", error = %e, "check task failed");
                }
            }
        }
    }
    // Checks see the token and give their rows back; wait for them briefly.
    let drain = async {
        while let Some(res) = checks.join_next().await {
            if let Err(e) = res {
                error!(task = "check", error = %e, "check task failed");
            }
        }
    };
    if tokio::time::timeout(CHECK_DRAIN, drain).await.is_err() {
        checks.abort_all();
    }
    gate_sync.sync(store, client, true).await;
    gate_sync.leave(store).await;
}

/// One cadence's requests in bulk mode, as few as the due set allows: the
/// urgent payments (hot, or at their deadline) first, the other due ones
/// behind them in due order; the spare places of the last request carry
/// the payments due soonest (checked early at no cost, they take fewer
/// requests of their own later). A trial that also held back due rows
/// that would not fill a request sent more requests, not fewer (the held
/// rows, due at once, kept the due set at a full batch).
async fn bulk_round(ctx: &Ctx, store: &Store, mut due: Vec<Payment>, now: i64) -> Vec<Payment> {
    let cfg = &ctx.settings.poller;
    let batch = bakong::MAX_LIST;
    let hot_ms = schedule::HOT_PERIOD.as_millis() as i64;
    let soon = now + cfg.cadence.as_millis() as i64;
    let urgent = |p: &Payment| now - p.created_ms < hot_ms || p.deadline_ms <= soon;
    // Stable: the others keep their due order.
    due.sort_by_key(|p| !urgent(p));
    let spare = (batch - due.len() % batch) % batch;
    let quota = ctx.client.quota();
    if spare > 0 && quota.free(now) {
        // Rows whose check is still in flight (here or in another daemon)
        // are not taken again (`claim_spare`): their answers would be
        // refused by the lease guard.
        let ahead = now + schedule::millis(cfg.max_interval);
        if let Ok(more) = store
            .claim_spare(now, ahead, cfg.lease, spare, cfg.payment_ttl)
            .await
        {
            for row in more {
                match Payment::from_claimed(&row, cfg.expiry_grace) {
                    Ok(p) => due.push(p),
                    Err(why) => park_bad_row(ctx, &row, why.0).await,
                }
            }
        }
    }
    due
}

/// Whether a row's own answers keep failing: consecutive errors of a kind
/// about the row (an unreadable item), not about the API or the set-up.
fn failing_alone(row: &Claimed) -> bool {
    row.errors >= ISOLATE_AFTER_ERRORS
        && !row
            .last_answer
            .as_deref()
            .is_some_and(incident::is_systemic)
}

/// The daily budget: while spending is ahead of its even spread or into
/// the reserve, only payments past their deadline are checked (their last
/// check) and the others are deferred, at the latest to just after their
/// deadline; once spent, all wait for midnight UTC. A
/// deferred payment is still checked once after its deadline before it can
/// expire.
async fn budget_filter(ctx: &Ctx, rows: Vec<Payment>, now: i64) -> Vec<Payment> {
    let mode = ctx.client.quota().spend_mode(now);
    if mode == bakong::Spend::Free || rows.is_empty() {
        return rows;
    }
    let midnight = (now.div_euclid(bakong::quota::DAY_MS) + 1) * bakong::quota::DAY_MS;
    let mut keep = Vec::with_capacity(rows.len());
    let mut deferred = 0usize;
    for p in rows {
        // A static QR needs no request.
        let next = match mode {
            // Past its deadline: the check that lets it expire (or finds it
            // paid after all) is what the reserve is for.
            bakong::Spend::ReserveOnly { .. } if p.deadline_ms <= now => None,
            bakong::Spend::ReserveOnly { defer } => {
                Some((now + defer.as_millis() as i64).min(p.deadline_ms + 1))
            }
            _ => Some(midnight),
        };
        let Some(next_check_at) = next else {
            keep.push(p);
            continue;
        };
        deferred += 1;
        let _ = ctx
            .tx
            .send(Verdict {
                write: Write::Defer {
                    row: p.held.clone(),
                    next_check_at,
                },
                reason: "deferred by poller.daily_request_budget".into(),
                payment: None,
                warn: false,
            })
            .await;
    }
    if deferred > 0 {
        debug!(
            deferred,
            checked = keep.len(),
            spent = ctx.client.quota().spent_today(now),
            "daily request budget: payments deferred"
        );
    }
    keep
}

async fn park_bad_row(ctx: &Ctx, row: &Claimed, why: String) {
    error!(id = row.id.0, md5 = %row.md5, error = %why, "bad payment row; parked for an hour (fix the row)");
    let _ = ctx
        .tx
        .send(Verdict {
            write: Write::Reschedule {
                row: row.held(),
                next_check_at: Utc::now().timestamp_millis() + 3_600_000,
                answer: "invalid_row",
                error: Some(why.clone()),
                transient: true,
                lane: Lane::Old,
            },
            reason: why,
            payment: None,
            warn: false,
        })
        .await;
}

fn release(p: &Payment) -> Verdict {
    Verdict {
        write: Write::Release {
            row: p.held.clone(),
        },
        reason: "released".into(),
        payment: None,
        warn: false,
    }
}

/// Checks a batch (one request in bulk mode, one per payment otherwise)
/// and sends a verdict per payment.
async fn check_batch(batch: Vec<Payment>, ctx: Arc<Ctx>) {
    // Taken before the request leaves, so "after the deadline" is never early.
    let checked_ms = Utc::now().timestamp_millis();
    let cfg = &ctx.settings.poller;
    let mut ask = Vec::with_capacity(batch.len());
    for p in batch {
        match classify::without_asking(&p, checked_ms, cfg) {
            Some(v) => send(&ctx, v).await,
            None => ask.push(p),
        }
    }
    if ask.is_empty() {
        return;
    }
    let answers = tokio::select! {
        biased;
        _ = ctx.shutdown.cancelled() => None,
        a = self::ask(&ask, &ctx) => a,
    };
    let Some(answers) = answers else {
        // Shutdown, or the bulk endpoint closed: give the rows back so they
        // are checked again at once.
        for p in &ask {
            let _ = ctx.tx.send(release(p)).await;
        }
        return;
    };
    // The daily quota or budget refused the request: nothing was learnt
    // about these payments, so they go back unchecked (never finalized).
    if answers
        .iter()
        .any(|(a, _)| matches!(a, Err(e) if e.is_quota()))
    {
        for p in &ask {
            let _ = ctx.tx.send(release(p)).await;
        }
        return;
    }
    let account = ctx.settings.receiver_account();
    for (p, (answer, via)) in ask.iter().zip(answers) {
        let mut decision = classify(p, answer, via, checked_ms, account, cfg);
        if let Decision::AskSingly = decision {
            let single = tokio::select! {
                biased;
                _ = ctx.shutdown.cancelled() => None,
                a = ctx.client.check_md5(&p.md5) => Some(a),
            };
            let Some(single) = single.filter(|a| !matches!(a, Err(e) if e.is_quota())) else {
                let _ = ctx.tx.send(release(p)).await;
                continue;
            };
            decision = classify(p, single, Via::Single, checked_ms, account, cfg);
        }
        let Decision::Record(v) = decision else {
            continue;
        };
        send(&ctx, v).await;
    }
}

/// Logs a verdict as it deserves and hands it to the recorder.
async fn send(ctx: &Ctx, v: Verdict) {
    if let (
        Write::Reschedule {
            transient: true,
            error,
            answer,
            ..
        },
        Some(p),
    ) = (&v.write, &v.payment)
    {
        ctx.metrics.errors.fetch_add(1, Ordering::Relaxed);
        let error = error.as_deref().unwrap_or(&v.reason);
        if incident::is_systemic(answer) {
            // Logged once as an incident; per row only at debug.
            debug!(md5 = %p.md5, errors = p.errors + 1, error, "check failed; payment stays pending");
        } else {
            warn!(md5 = %p.md5, errors = p.errors + 1, error, "check failed; payment stays pending");
        }
    } else if let (true, Some(p)) = (v.warn, &v.payment) {
        warn!(md5 = %p.md5, "Bakong says this md5 is a static QR (no amount), which cannot be confirmed by md5; it is checked on like a \"not found\" and expires at a check after its deadline");
    } else if let Some(p) = &v.payment {
        debug!(md5 = %p.md5, reason = %v.reason, "checked");
    }
    let _ = ctx.tx.send(v).await;
}

/// One answer per payment, in order, with how it was obtained; `None` when
/// the rows should be released unchecked (the list endpoint just closed).
/// A systemic failure is logged once (see [`Incidents`]), not per row.
async fn ask(
    batch: &[Payment],
    ctx: &Ctx,
) -> Option<Vec<(Result<Transaction, bakong::Error>, Via)>> {
    let answers: Vec<(Result<Transaction, bakong::Error>, Via)> =
        if batch.len() == 1 && !ctx.bulk.active() {
            vec![(ctx.client.check_md5(&batch[0].md5).await, Via::Single)]
        } else {
            let md5s: Vec<String> = batch.iter().map(|p| p.md5.clone()).collect();
            match ctx.client.check_md5_batch(&md5s).await {
                Ok(answers) => answers.into_iter().map(|a| (a, Via::List)).collect(),
                Err(e) if e.endpoint_closed() && ctx.bulk.close(&e) => return None,
                Err(e) => batch.iter().map(|_| (Err(e.clone()), Via::List)).collect(),
            }
        };
    for (a, _) in &answers {
        match a {
            Err(e) if !e.is_answer() => {
                ctx.metrics.incidents.failed(e);
            }
            _ => ctx.metrics.incidents.answered(),
        }
    }
    Some(answers)
}

/// Writes verdicts in batches, each in one short transaction (with the
/// events of final statuses), logs one line per final status actually
/// written, and wakes the sender.
pub(crate) async fn recorder(
    store: Store,
    mut rx: mpsc::Receiver<Verdict>,
    metrics: Arc<Counters>,
    wake: Arc<tokio::sync::Notify>,
    settings: crate::config::PollerSettings,
) {
    let mut batch: Vec<Verdict> = Vec::with_capacity(64);
    // Failed writes in a row: the first of an outage is an error, the rest
    // debug lines (one error per outage, not one per batch).
    let mut failing = 0u32;
    while rx.recv_many(&mut batch, 64).await > 0 {
        let writes: Vec<Write> = batch.iter().map(|v| v.write.clone()).collect();
        let now = Utc::now();
        metrics.health.query_started();
        let recorded = store.record(&writes, now).await;
        metrics
            .health
            .query_ended(recorded.as_ref().err().map(|e| e as _));
        match recorded {
            Ok(applied) => {
                if failing > 0 {
                    info!(failed_batches = failing, "results recorded again");
                    failing = 0;
                }
                let mut events = false;
                let mut retry = Vec::new();
                for (v, outcome) in batch.iter().zip(applied) {
                    match outcome {
                        Applied::Written => {
                            events |= matches!(v.write, Write::Final { .. });
                            log_final(v, now, &metrics);
                        }
                        Applied::Stale => {
                            if let Write::Final { row, status, .. } = &v.write {
                                info!(
                                    id = row.id.0,
                                    md5 = %row.md5,
                                    status = status.as_str(),
                                    "result not written: the row is no longer the one checked \
                                     (final, deleted, changed or claimed again)"
                                );
                            }
                        }
                        Applied::Failed(error) => {
                            let row = v.write.row();
                            warn!(id = row.id.0, md5 = %row.md5, error = %error,
                                "could not record this payment's result; it counts as an error \
                                 and is checked again");
                            // Counted against the row alone: its batch went
                            // through; a write that cannot be stored backs
                            // off like any error of its own.
                            if let (Write::Final { .. }, true) =
                                (&v.write, row.from != Status::Pending)
                            {
                                // A late-watched row: its watch goes on, an
                                // hour later (never a loop of re-claims).
                                retry.push(Write::Late {
                                    row: row.clone(),
                                    next: Some(now.timestamp_millis().saturating_add(3_600_000)),
                                });
                            } else if let Write::Final { .. } = v.write {
                                let errors = v.payment.as_ref().map_or(0, |p| p.errors);
                                retry.push(Write::Reschedule {
                                    row: row.clone(),
                                    next_check_at: now.timestamp_millis().saturating_add(
                                        i64::try_from(
                                            schedule::error_backoff(errors + 1, &settings)
                                                .as_millis(),
                                        )
                                        .unwrap_or(i64::MAX),
                                    ),
                                    answer: "write_failed",
                                    error: Some(error),
                                    transient: true,
                                    lane: Lane::Old,
                                });
                            }
                        }
                    }
                }
                if !retry.is_empty() {
                    if let Err(e) = store.record(&retry, now).await {
                        debug!(error = %e, rows = retry.len(), "could not count write failures");
                    }
                }
                if events {
                    // New events: the sender need not wait for its next look.
                    wake.notify_one();
                }
            }
            Err(e) => {
                // The rows stay leased and are checked again after the lease.
                failing += 1;
                if failing == 1 {
                    error!(error = %e, rows = batch.len(), "could not record results; they will be checked again");
                } else {
                    debug!(error = %e, rows = batch.len(), failing, "could not record results");
                }
            }
        }
        batch.clear();
    }
}

fn log_final(v: &Verdict, now: chrono::DateTime<Utc>, metrics: &Counters) {
    let Write::Final {
        row,
        status,
        confirmation,
        ..
    } = &v.write
    else {
        return;
    };
    let counter = match status {
        FinalStatus::Paid => &metrics.paid,
        FinalStatus::Mismatch => &metrics.mismatch,
        FinalStatus::Failed => &metrics.failed,
        FinalStatus::Expired => &metrics.expired,
        FinalStatus::PaidLate => &metrics.paid_late,
    };
    counter.fetch_add(1, Ordering::Relaxed);
    let tx = confirmation.as_deref();
    let p = v.payment.as_ref();
    if row.from != Status::Pending {
        if *status == FinalStatus::Mismatch {
            metrics.late_mismatch.fetch_add(1, Ordering::Relaxed);
        }
        warn!(
            id = row.id.0,
            md5 = %row.md5,
            was = row.from.as_str(),
            status = status.as_str(),
            amount = p.map(|p| p.amount.to_string()),
            currency = p.map(|p| p.currency.code()),
            hash = tx.map(|t| t.hash.as_str()),
            paid_amount = tx.map(|t| t.paid_amount.to_string()),
            paid_currency = tx.map(|t| t.paid_currency.code()),
            from_account = tx.and_then(|t| t.from_account_id.as_deref()),
            reason = %v.reason,
            "late money: a payment that was {} has been paid; now {} (reconcile the order: \
             it may need to be fulfilled or refunded)",
            row.from.as_str(),
            status.as_str()
        );
        return;
    }
    if let (Some(m), Some(p), Some(tx)) = (&metrics.confirmations, p, tx) {
        m.confirmed(
            now.timestamp_millis(),
            p.created_ms,
            tx.paid_at.map(|t| t.timestamp_millis()),
        );
    }
    info!(
        id = row.id.0,
        md5 = p.map(|p| p.md5.as_str()),
        amount = p.map(|p| p.amount.to_string()),
        currency = p.map(|p| p.currency.code()),
        seconds_to_confirm = p.map(|p| (now.timestamp_millis() - p.created_ms) as f64 / 1000.0),
        status = status.as_str(),
        hash = tx.map(|t| t.hash.as_str()),
        paid_amount = tx.map(|t| t.paid_amount.to_string()),
        paid_currency = tx.map(|t| t.paid_currency.code()),
        from_account = tx.and_then(|t| t.from_account_id.as_deref()),
        reason = %v.reason,
        "payment {}", status.as_str()
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::payment::PaymentId;

    fn row(errors: i64, last: &str) -> Claimed {
        Claimed {
            id: PaymentId(1),
            lease_id: 1,
            md5: "b1c250304b8594e4c6b53dd44791b57a".into(),
            amount: "1".into(),
            currency: "USD".into(),
            created_ms: Some(0),
            expires_ms: Some(1),
            checks: 0,
            errors,
            last_answer: Some(last.into()),
            qr: None,
            from: Status::Pending,
            final_ms: None,
        }
    }

    #[test]
    fn only_rows_whose_own_answers_fail_go_alone() {
        assert!(failing_alone(&row(2, "decode")));
        assert!(!failing_alone(&row(1, "decode")));
        // A 429, a timeout or a geo-block failed the whole request, not the row.
        for kind in ["rate_limited", "timeout", "geo_blocked", "http", "renewal"] {
            assert!(!failing_alone(&row(9, kind)), "{kind}");
        }
    }
}

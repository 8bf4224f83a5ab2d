//! The late watch: a row that became `expired`, `failed` or `cancelled`
//! is still checked for `poller.late_watch` (the customer may pay an old
//! QR, or a slow bank app may settle late). Money found moves it, once, to
//! `paid_late` (the expected amount, currency and receiver) or `mismatch`,
//! under the same guards as every final write; otherwise its next late
//! check comes later the older it is. The checks go 50 md5s a request
//! (single lookups while the list endpoint is off), only with capacity
//! the fresh payments leave, and count in the budget and the quota like
//! any request.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::Utc;
use tracing::{debug, error};

use super::classify::{compare, confirmation, Payment, Verdict};
use super::{ask, schedule, Ctx};
use crate::payment::FinalStatus;
use crate::store::{Claimed, Held, Write};

/// The longest wait between two late checks of a row.
pub const MAX_LATE_INTERVAL_MS: i64 = 3_600_000;

/// When a row that became final at `final_ms` is next checked: after a
/// quarter of its age as a final row, at least `min_ms` (the fresh
/// interval) and at most an hour. Over a 24 h watch that is about sixty
/// checks a row, fifty rows a request.
pub fn next_late_check(now_ms: i64, final_ms: Option<i64>, min_ms: i64) -> i64 {
    let age = now_ms.saturating_sub(final_ms.unwrap_or(now_ms)).max(0);
    now_ms.saturating_add((age / 4).clamp(min_ms.max(1), MAX_LATE_INTERVAL_MS))
}

fn later(held: Held, next: i64) -> Verdict {
    Verdict {
        write: Write::Late {
            row: held,
            next: Some(next),
        },
        reason: "late watch: nothing yet".into(),
        payment: None,
        warn: false,
    }
}

/// Checks one batch of late-watched rows and sends a verdict per row.
pub(super) async fn check(rows: Vec<Claimed>, ctx: Arc<Ctx>) {
    check_rows(rows, &ctx).await;
    ctx.late_busy.store(false, Ordering::Relaxed);
}

async fn check_rows(rows: Vec<Claimed>, ctx: &Ctx) {
    let cfg = &ctx.settings.poller;
    let min_ms = schedule::millis(cfg.fresh_interval);
    let now = Utc::now().timestamp_millis();
    let mut batch = Vec::with_capacity(rows.len());
    let mut finals = Vec::with_capacity(rows.len());
    for row in rows {
        match Payment::from_claimed(&row, cfg.expiry_grace) {
            Ok(p) => {
                finals.push(row.final_ms);
                batch.push(p);
            }
            Err(why) => {
                error!(id = row.id.0, md5 = %row.md5, error = %why, "bad payment row in the late watch; checked again in an hour (fix the row)");
                let _ = ctx.tx.send(later(row.held(), now + 3_600_000)).await;
            }
        }
    }
    if batch.is_empty() {
        return;
    }
    let answers = tokio::select! {
        biased;
        _ = ctx.shutdown.cancelled() => None,
        a = ask(&batch, ctx) => a,
    };
    let now = Utc::now().timestamp_millis();
    let Some(answers) = answers else {
        // Shutdown or the list endpoint closed: checked again soon.
        for p in &batch {
            let _ = ctx.tx.send(later(p.held.clone(), now + min_ms)).await;
        }
        return;
    };
    let account = ctx.settings.receiver_account();
    for ((p, (answer, _via)), final_ms) in batch.iter().zip(answers).zip(finals) {
        let v = match answer {
            Ok(tx) => {
                let (status, reason) = compare(p, &tx, account);
                let status = match status {
                    FinalStatus::Paid => FinalStatus::PaidLate,
                    other => other,
                };
                Verdict {
                    write: Write::Final {
                        row: p.held.clone(),
                        status,
                        confirmation: Some(Box::new(confirmation(&tx))),
                        answer: "late",
                    },
                    reason: format!("late watch: {reason}"),
                    payment: Some(p.clone()),
                    warn: false,
                }
            }
            Err(e) => {
                // Not found, failed, or an error: nothing learnt that
                // changes the row; a transport error is checked again at
                // the same widening pace (the watch is not urgent).
                debug!(md5 = %p.md5, answer = e.kind(), "late watch: no money yet");
                later(p.held.clone(), next_late_check(now, final_ms, min_ms))
            }
        };
        let _ = ctx.tx.send(v).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn late_checks_widen_with_age_within_their_bounds() {
        let min = 2_000;
        assert_eq!(next_late_check(10_000, Some(10_000), min), 12_000);
        assert_eq!(next_late_check(100_000, Some(0), min), 125_000);
        let day = 86_400_000;
        assert_eq!(
            next_late_check(day, Some(0), min),
            day + MAX_LATE_INTERVAL_MS
        );
        // A clock that went back never schedules into the past.
        assert_eq!(next_late_check(0, Some(5_000), min), 2_000);
        // Checks over a 24 h watch: about sixty.
        let (mut t, mut n) = (0i64, 0);
        while t < day {
            t = next_late_check(t, Some(0), min);
            n += 1;
        }
        assert!((40..=80).contains(&n), "{n} checks a day");
    }
}

//! The daily quota (errorCode 17) and the daily request budget.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bakong_poller::config::BulkMode;
use bakong_poller::poller::Observer;
use bakong_poller::simulator::{Faults, NewTransaction, OutcomeKind};
use sqlx::SqlitePool;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

fn never() -> NewTransaction {
    NewTransaction {
        outcome: OutcomeKind::Never,
        ..NewTransaction::default()
    }
}

/// The quota pause as the database keeps it (since_ms).
async fn pause_since(db: &SqlitePool) -> Option<i64> {
    sqlx::query_scalar("SELECT quota_since_ms FROM gate_state WHERE id = 1")
        .fetch_one(db)
        .await
        .unwrap()
}

async fn check_requests(e: &TestEnv) -> u64 {
    let st = e.sim.sim.stats();
    ["check_transaction_by_md5", "check_transaction_by_md5_list"]
        .iter()
        .filter_map(|n| st.requests.get(*n))
        .flat_map(|m| m.values())
        .sum()
}

/// Keeps the daemon's STATUS lines and counts the rounds of its scheduling
/// loop (each round claims, or holds back, what is due).
#[derive(Default)]
struct Lines(Mutex<Vec<String>>, AtomicU64);
impl Observer for Lines {
    fn status(&self, line: &str) {
        self.0.lock().unwrap().push(line.to_string());
    }
    fn tick(&self) {
        self.1.fetch_add(1, Ordering::SeqCst);
    }
}

impl Lines {
    fn ticks(&self) -> u64 {
        self.1.load(Ordering::SeqCst)
    }

    /// Waits until the loop has gone round `n` more times: the daemon is
    /// running and has passed the point where it would have sent.
    async fn rounds(&self, n: u64) {
        let from = self.ticks();
        wait_for(
            &format!("{n} rounds of the daemon's loop"),
            LIMIT,
            || async { (self.ticks() >= from + n).then_some(()) },
        )
        .await;
    }
}

/// An in-process daemon whose loop rounds and STATUS lines are watched.
struct Watched {
    lines: Arc<Lines>,
    stop: CancellationToken,
    join: tokio::task::JoinHandle<Result<(), bakong_poller::app::AppError>>,
}

fn start_watched(s: bakong_poller::config::Settings) -> Watched {
    let lines = Arc::new(Lines::default());
    let stop = CancellationToken::new();
    let join = tokio::spawn(bakong_poller::daemon::run(s, stop.clone(), lines.clone()));
    Watched { lines, stop, join }
}

impl Watched {
    async fn stop(self) {
        self.stop.cancel();
        self.join.await.unwrap().unwrap();
    }
}

#[tokio::test]
async fn the_daily_quota_pauses_every_request_probes_once_per_interval_and_resumes() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = BulkMode::Auto;
    s.poller.cadence = Duration::from_millis(50);
    s.poller.quota_probe = Duration::from_millis(400);
    s.poller.summary_interval = Duration::from_millis(100);
    let db = e.merchant(&s).await;
    let mut paid = Vec::new();
    for _ in 0..5 {
        paid.push(e.payment(&db, "1.00", "USD", paid_after(800)).await);
    }
    // Its deadline passes during the pause: it must not expire unchecked.
    let lapsing = e.payment(&db, "1.00", "USD", never()).await;
    sqlx::query("UPDATE payments SET expires_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '+0.5 seconds') WHERE md5 = ?1")
        .bind(&lapsing)
        .execute(&db)
        .await
        .unwrap();
    // The lapsing payment is due for its last check from here on (its
    // deadline and the 100 ms grace).
    let lapsed = std::time::Instant::now() + Duration::from_millis(600);
    e.sim.sim.set_faults(Faults {
        daily_limit: Some(3),
        day_length: Some(Duration::from_secs(3)),
        ..Faults::default()
    });
    let w = start_watched(s);
    let lines = &w.lines;

    wait_for("the quota pause in the database", LIMIT, || async {
        pause_since(&db).await
    })
    .await;
    let before = check_requests(&e).await;
    let paused = std::time::Instant::now();
    // Not a quiet window but the daemon's own signals: the lapsing
    // payment's deadline has passed, the loop has gone round 10 times
    // since, and a probe was sent during the pause (the daemon is alive and
    // still holding back).
    wait_for("the deadline to pass", LIMIT, || async {
        (std::time::Instant::now() >= lapsed).then_some(())
    })
    .await;
    lines.rounds(10).await;
    wait_for("a probe during the pause", LIMIT, || async {
        (check_requests(&e).await > before).then_some(())
    })
    .await;
    lines.rounds(2).await;
    let during = check_requests(&e).await - before;
    let window = paused.elapsed();
    let allowed = window.as_millis() as u64 / 400 + 1;
    assert!(
        during <= allowed,
        "{during} requests in {window:?} of pause with a probe every 400 ms"
    );
    assert_eq!(status(&db, &lapsing).await, "pending");
    for md5 in &paid {
        assert_eq!(
            status(&db, md5).await,
            "pending",
            "no payment is finalized by the quota"
        );
    }
    wait_for("STATUS= to say so", LIMIT, || async {
        lines
            .0
            .lock()
            .unwrap()
            .iter()
            .any(|l| l.contains("daily quota exhausted since"))
            .then_some(())
    })
    .await;

    // The simulated day ends at 3 s: a probe finds the quota reset.
    for md5 in &paid {
        assert_eq!(final_status(&db, md5, LIMIT).await, "paid");
    }
    assert_eq!(final_status(&db, &lapsing, LIMIT).await, "expired");
    w.stop().await;
    assert!(e.sim.sim.stats().quota_refused >= 1);
}

#[tokio::test]
async fn a_restart_honours_the_quota_pause_kept_in_the_database() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.quota_probe = Duration::from_secs(30);
    let db = e.merchant(&s).await;
    for _ in 0..3 {
        e.payment(&db, "1.00", "USD", never()).await;
    }
    e.sim.sim.set_faults(Faults {
        daily_limit: Some(2),
        day_length: Some(Duration::from_secs(3600)),
        ..Faults::default()
    });
    let d = start(s.clone());
    wait_for("the quota pause in the database", LIMIT, || async {
        pause_since(&db).await
    })
    .await;
    d.stop().await;
    e.sim.sim.reset_stats();

    let w = start_watched(s.clone());
    // 50 rounds of its loop (about 1 s): each would have sent what is due.
    w.lines.rounds(50).await;
    w.stop().await;
    assert_eq!(
        check_requests(&e).await,
        0,
        "the restarted daemon waits for the next probe"
    );
    assert!(pause_since(&db).await.is_some());
    assert_eq!(count(&db, "pending").await, 3);

    // `status` reads it from the database too.
    let cfg = e.config_file(&s, "");
    let out = bin!().config(&cfg).arg("status").run().await;
    let text = out.stdout.as_str();
    assert!(
        text.contains("quota            daily quota exhausted since "),
        "{text}"
    );
}

#[tokio::test]
async fn a_429_that_speaks_of_a_daily_limit_is_the_quota_too() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.quota_probe = Duration::from_secs(30);
    let db = e.merchant(&s).await;
    let md5 = e.payment(&db, "1.00", "USD", never()).await;
    e.sim.sim.set_faults(Faults {
        daily_limit: Some(0),
        daily_limit_429: true,
        ..Faults::default()
    });
    let d = start(s);
    wait_for("the quota pause in the database", LIMIT, || async {
        pause_since(&db).await
    })
    .await;
    d.stop().await;
    assert_eq!(status(&db, &md5).await, "pending");
    assert_eq!(check_requests(&e).await, 1, "one request found the quota");
}

#[tokio::test]
async fn the_daily_budget_is_respected_over_a_window_and_across_a_restart() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.daily_request_budget = Some(20);
    let db = e.merchant(&s).await;
    for _ in 0..30 {
        e.payment(&db, "1.00", "USD", never()).await;
    }
    let w = start_watched(s.clone());
    wait_for("some checks", LIMIT, || async {
        (check_requests(&e).await > 0).then_some(())
    })
    .await;
    // 50 more rounds of its loop (about 1 s), each offering what is due.
    w.lines.rounds(50).await;
    w.stop().await;
    let first = check_requests(&e).await;
    assert!(first <= 20, "{first} requests with a budget of 20");
    let saved: i64 = sqlx::query_scalar("SELECT spend FROM gate_state WHERE id = 1")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(saved as u64, first, "today's spend is kept in the database");

    let w = start_watched(s);
    w.lines.rounds(50).await;
    w.stop().await;
    let total = check_requests(&e).await;
    assert!(
        total <= 20,
        "{total} requests over two runs with a budget of 20"
    );
    assert_eq!(count(&db, "pending").await, 30);
}

#[tokio::test]
async fn the_budget_reserve_still_gives_a_lapsed_payment_its_check_after_the_deadline() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.daily_request_budget = Some(20);
    let db = e.merchant(&s).await;
    // 19 of 20 spent today: only the reserve is left.
    sqlx::query("UPDATE gate_state SET spend_day = strftime('%Y-%m-%d', 'now'), spend = 19")
        .execute(&db)
        .await
        .unwrap();
    for _ in 0..5 {
        e.payment(&db, "1.00", "USD", never()).await;
    }
    let lapsing = e.payment(&db, "1.00", "USD", never()).await;
    sqlx::query("UPDATE payments SET expires_at = strftime('%Y-%m-%d %H:%M:%f', 'now', '+0.3 seconds') WHERE md5 = ?1")
        .bind(&lapsing)
        .execute(&db)
        .await
        .unwrap();
    let d = start(s);
    assert_eq!(final_status(&db, &lapsing, LIMIT).await, "expired");
    d.stop().await;
    assert_eq!(check_requests(&e).await, 1, "one check, after the deadline");
    assert_eq!(count(&db, "pending").await, 5);
}

/// Issue 22 item 5: the quota's message with `"errorCode": null` (as one
/// client's fixtures show) is the quota too, in single and list answers:
/// one request finds it, then the shared pause, no per-row warnings.
#[tokio::test]
async fn the_daily_quota_message_without_its_error_code_is_the_quota_too() {
    for bulk in [BulkMode::Never, BulkMode::Always] {
        let e = env().await;
        let mut s = e.settings();
        s.poller.quota_probe = Duration::from_secs(30);
        s.poller.bulk = bulk;
        let db = e.merchant(&s).await;
        let md5 = e.payment(&db, "1.00", "USD", never()).await;
        e.sim.sim.set_faults(Faults {
            daily_limit: Some(0),
            daily_limit_without_code: true,
            ..Faults::default()
        });
        let d = start(s);
        wait_for("the quota pause in the database", LIMIT, || async {
            pause_since(&db).await
        })
        .await;
        d.stop().await;
        assert_eq!(status(&db, &md5).await, "pending", "{bulk:?}");
        assert_eq!(
            check_requests(&e).await,
            1,
            "{bulk:?}: one request found the quota"
        );
    }
}

/// The late watch (issue 23) waits out the quota pause like every other
/// request: an expired row whose money arrived is not looked for while the
/// daily quota is exhausted.
#[tokio::test]
async fn the_late_watch_sends_nothing_during_the_quota_pause() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.quota_probe = Duration::from_secs(30);
    let db = e.merchant(&s).await;
    let md5 = late_money_row(&e, &db).await;
    let now = chrono::Utc::now().timestamp_millis();
    sqlx::query("UPDATE gate_state SET quota_since_ms = ?1, quota_next_probe_ms = ?2 WHERE id = 1")
        .bind(now)
        .bind(now + 3_600_000)
        .execute(&db)
        .await
        .unwrap();
    let w = start_watched(s);
    // 50 rounds (about 1 s, twenty late-watch turns at fresh_interval).
    w.lines.rounds(50).await;
    w.stop().await;
    assert_eq!(check_requests(&e).await, 0, "nothing sent during the pause");
    assert_eq!(status(&db, &md5).await, "expired");
}

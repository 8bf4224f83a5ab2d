//! The gate kept in the database (issue 10): three daemon processes on one
//! PostgreSQL database hold back together inside a 429's `Retry-After`
//! window once one of them has recorded it, and keep the ceiling together;
//! on SQLite a restarted daemon honours the window the process before it
//! was given.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;
use test_support::cli::Child;

use bakong_poller::config::BulkMode;
use bakong_simulator::{Faults, NewTransaction, OutcomeKind, RateLimit, RetryAfterMode};

use crate::backends::{backend_env, both, Db};
use crate::helpers::*;
use crate::pg_daemon::{config_at, pg_env, signal, spawn_daemon, Lcg, PgEnv};

/// A request that passed the gate before the window was recorded may
/// still be on its way (the issue: "a request already on the wire does not
/// count"); on one machine that is well under this.
const ON_THE_WIRE_MS: i64 = 100;

/// Windows (recorded at, not before) seen in the database, polled every
/// 10 ms until `stop`.
fn watch_windows(p: &PgEnv, stop: Arc<AtomicBool>) -> Arc<Mutex<BTreeSet<(i64, i64)>>> {
    let seen = Arc::new(Mutex::new(BTreeSet::new()));
    let db = p.db.clone();
    let out = seen.clone();
    tokio::spawn(async move {
        while !stop.load(Ordering::Relaxed) {
            let row: Option<(Option<i64>, Option<i64>)> = sqlx::query_as(
                "SELECT not_before_set_ms, not_before_ms FROM gate_state WHERE id = 1",
            )
            .fetch_optional(&db)
            .await
            .unwrap_or(None);
            if let Some((Some(set), Some(nb))) = row {
                out.lock().unwrap().insert((set, nb));
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    });
    seen
}

fn spawn_three(p: &PgEnv, s: &bakong_poller::config::Settings) -> Vec<Child> {
    (0..3)
        .map(|i| {
            let cfg: PathBuf = config_at(p, s, &format!("gate{i}.toml"));
            spawn_daemon(&cfg, &p.e.dir.path().join(format!("gate{i}.log")))
        })
        .collect()
}

fn stop_all(children: &mut [Child]) {
    for c in children.iter() {
        signal(c, nix::sys::signal::Signal::SIGTERM);
    }
    for c in children.iter_mut() {
        assert_eq!(c.wait().unwrap().code(), Some(0));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_send_nothing_inside_a_retry_after_window_once_one_has_recorded_it() {
    let Some(p) = pg_env().await else {
        return;
    };
    // The API allows 8 requests a second and answers 2 s windows; the
    // daemons' ceiling (20 together) is above it, so they meet 429s.
    p.e.sim.sim.set_faults(Faults {
        rate_limit: Some(RateLimit {
            requests_per_second: 8.0,
            burst: 8,
            retry_after: RetryAfterMode::Seconds,
            retry_after_secs: Some(2),
        }),
        ..Faults::default()
    });
    let mut s = p.settings();
    s.bakong.account_id = Some(ACCOUNT.into());
    s.poller.max_requests_per_second = 20.0;
    s.poller.concurrency = 4;
    s.poller.bulk = BulkMode::Never;
    let seed = rand::random::<u64>() % 1_000_000;
    let mut rng = Lcg(seed);
    for _ in 0..40 {
        let md5 = p.register("1", "USD", paid_after(rng.next(4_000)));
        insert(&p, &md5, false).await;
    }
    for _ in 0..20 {
        let md5 = p.register(
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        );
        insert(&p, &md5, true).await;
    }
    let stop = Arc::new(AtomicBool::new(false));
    let windows = watch_windows(&p, stop.clone());
    let mut children = spawn_three(&p, &s);
    wait_for("every payment final", Duration::from_secs(60), || async {
        (p.count("pending").await == 0).then_some(())
    })
    .await;
    stop_all(&mut children);
    stop.store(true, Ordering::Relaxed);

    let windows: Vec<(i64, i64)> = windows.lock().unwrap().iter().copied().collect();
    let arrivals = p.e.sim.sim.arrivals();
    let st = p.e.sim.sim.stats();
    eprintln!(
        "seed {seed}: {} requests, {} answered 429, {} windows recorded, peak {} requests in one second",
        st.total,
        st.rate_limited,
        windows.len(),
        st.peak_rps
    );
    assert!(
        !windows.is_empty() && st.rate_limited > 0,
        "the test must meet a 429: {st:?}"
    );
    let mut inside = Vec::new();
    let mut on_the_wire = 0;
    for &(set, nb) in &windows {
        for &a in &arrivals {
            if a > set && a < nb {
                if a - set > ON_THE_WIRE_MS {
                    inside.push((set, nb, a));
                } else {
                    on_the_wire += 1;
                }
            }
        }
    }
    eprintln!("{on_the_wire} requests arrived within {ON_THE_WIRE_MS} ms of a window's record");
    assert!(
        inside.is_empty(),
        "requests sent inside a recorded window (recorded at, until, arrival): {inside:?}"
    );
    assert!(p.count("paid").await == 40 && p.count("expired").await == 20);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_keep_the_ceiling_together() {
    let Some(p) = pg_env().await else {
        return;
    };
    let mut s = p.settings();
    s.bakong.account_id = Some(ACCOUNT.into());
    s.poller.max_requests_per_second = 15.0;
    s.poller.concurrency = 8;
    s.poller.bulk = BulkMode::Never;
    // Demand far above the ceiling: 150 payments checked one by one.
    for i in 0..150u64 {
        let md5 = p.register("1", "USD", paid_after(2_000 + (i % 10) * 500));
        insert(&p, &md5, false).await;
    }
    let mut children = spawn_three(&p, &s);
    wait_for("every payment final", Duration::from_secs(60), || async {
        (p.count("pending").await == 0).then_some(())
    })
    .await;
    stop_all(&mut children);
    let st = p.e.sim.sim.stats();
    // Requests per one-second window, from the arrivals.
    let arrivals = p.e.sim.sim.arrivals();
    let mut peak = 0;
    let mut lo = 0;
    for hi in 0..arrivals.len() {
        while arrivals[hi] - arrivals[lo] >= 1_000 {
            lo += 1;
        }
        peak = peak.max(hi - lo + 1);
    }
    eprintln!(
        "{} requests, peak {} in one second (simulator: {}), ceiling 15 for the three together",
        st.total, peak, st.peak_rps
    );
    assert!(
        st.total > 60,
        "demand must exceed the ceiling for a while: {st:?}"
    );
    assert!(
        st.peak_rps <= 18,
        "more than 20% over the ceiling of 15 in one second: {}",
        st.peak_rps
    );
    assert_eq!(p.count("paid").await, 150);
}

async fn insert(p: &PgEnv, md5: &str, short: bool) {
    sqlx::query(
        "INSERT INTO payments (md5, amount, currency, expires_at)
         VALUES ($1, 1, 'USD', CASE WHEN $2 THEN now() + interval '5 seconds' END)",
    )
    .bind(md5)
    .bind(short)
    .execute(&p.db)
    .await
    .unwrap();
}

#[tokio::test]
async fn a_restarted_daemon_honours_the_retry_after_given_to_the_one_before_and_keeps_the_learned_rate(
) {
    let e = env().await;
    let mut s = e.settings();
    s.poller.max_requests_per_second = 20.0;
    e.sim.sim.set_faults(Faults {
        force_429: 1,
        force_429_retry_after: RetryAfterMode::Seconds,
        force_429_secs: Some(3),
        ..Faults::default()
    });
    let db = e.merchant(&s).await;
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let d = start(s.clone());
    let store = bakong_poller::app::open_store(&s).await.unwrap();
    let g = wait_for("the window recorded", Duration::from_secs(10), || async {
        let g = store.gate_state().await.unwrap();
        g.not_before_ms.is_some().then_some(g)
    })
    .await;
    d.stop().await;
    assert_eq!(g.rate, Some(10.0), "the 429 halved the rate: {g:?}");
    let restarted_at = chrono::Utc::now().timestamp_millis();
    let nb = g.not_before_ms.unwrap();
    assert!(nb - restarted_at > 1_000, "the window is still open: {g:?}");
    let d = start(s.clone());
    assert_eq!(
        final_status(&db, &md5, Duration::from_secs(10)).await,
        "paid"
    );
    d.stop().await;
    let st = e.sim.sim.stats();
    let arrivals = e.sim.sim.arrivals();
    assert_eq!(
        (st.rate_limited, st.inside_retry_after),
        (1, 0),
        "one 429, nothing sent inside its window (window recorded at {g:?}, \
         restarted at {restarted_at}, arrivals {arrivals:?})"
    );
    let early: Vec<i64> = e
        .sim
        .sim
        .arrivals()
        .into_iter()
        .filter(|a| *a >= restarted_at && *a < nb)
        .collect();
    assert!(early.is_empty(), "requests before {nb}: {early:?}");
    // The rate learned is still in the database (climbed back by the
    // answers since, never above the ceiling).
    let after = store.gate_state().await.unwrap();
    assert!(
        after.rate.is_some_and(|r| (10.0..=20.0).contains(&r)),
        "{after:?}"
    );
    store.close().await;
}

/// Arrivals (unix ms) in `[from, to)`.
fn arrivals_between(arrivals: &[i64], from: i64, to: i64) -> usize {
    arrivals.iter().filter(|a| **a >= from && **a < to).count()
}

/// Issue 22 item 1: three daemons sharing a ceiling of 20 requests a second
/// with payments due reach 85% of it together, and after a lone 429 (a
/// 1 s Retry-After, then answers as before) are back at 85% of it within
/// a few seconds, not after a minute's climb.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_are_back_near_the_ceiling_within_seconds_of_a_lone_429() {
    let Some(p) = pg_env().await else {
        return;
    };
    let mut s = p.settings();
    s.bakong.account_id = Some(ACCOUNT.into());
    s.poller.max_requests_per_second = 20.0;
    s.poller.concurrency = 8;
    s.poller.bulk = BulkMode::Never;
    s.poller.payment_ttl = Duration::from_secs(120);
    // Demand far above the ceiling for the whole test: never paid.
    for _ in 0..100 {
        let md5 = p.register(
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        );
        insert(&p, &md5, false).await;
    }
    let now = || chrono::Utc::now().timestamp_millis();
    let mut children = spawn_three(&p, &s);
    // All three have joined (each waits a heartbeat before it sends) and
    // pace at their share.
    wait_for("the daemons sending", Duration::from_secs(20), || async {
        (p.e.sim.sim.stats().total > 20).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let before = now();
    p.e.sim.sim.set_faults(Faults {
        force_429: 1,
        force_429_retry_after: RetryAfterMode::Seconds,
        force_429_secs: Some(1),
        ..Faults::default()
    });
    wait_for("the 429", Duration::from_secs(10), || async {
        (p.e.sim.sim.stats().rate_limited > 0).then_some(())
    })
    .await;
    let t0 = now();
    // Give it 6 s after the 429 (its window is 1 s).
    wait_for("6 s after the 429", Duration::from_secs(10), || async {
        (now() >= t0 + 6_000).then_some(())
    })
    .await;
    stop_all(&mut children);
    let arrivals = p.e.sim.sim.arrivals();
    let st = p.e.sim.sim.stats();
    let steady = arrivals_between(&arrivals, before - 2_000, before);
    let per_second: Vec<usize> = (0..6)
        .map(|i| arrivals_between(&arrivals, t0 + i * 1_000, t0 + (i + 1) * 1_000))
        .collect();
    let after = arrivals_between(&arrivals, t0 + 3_000, t0 + 5_000);
    eprintln!(
        "ceiling 20/s for the three: {steady} requests in the 2 s before the 429; \
         per second after it: {per_second:?}; {after} in 2-4 s after its window; {st:?}"
    );
    assert_eq!(st.rate_limited, 1, "{st:?}");
    assert!(
        steady >= 34,
        "85% of the ceiling before the 429: {steady} in 2 s"
    );
    assert!(
        after >= 34,
        "85% of the ceiling 2-4 s after the 429's window: {after} in 2 s ({per_second:?})"
    );
    assert!(
        per_second.iter().all(|n| *n <= 24),
        "over the ceiling: {per_second:?}"
    );
}

/// Issue 22 item 1: a daemon with nothing to send (here one that only
/// heartbeats) leaves the whole ceiling to the busy one, both while it
/// lives and once it died (no leave, its heartbeat row left behind): the
/// daemons share one schedule of request slots, not a static half each.
/// (Paced at a static share, the busy one sent half the ceiling while the
/// other heartbeated.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_with_nothing_to_send_or_dead_leaves_the_ceiling_to_a_busy_one() {
    let Some(p) = pg_env().await else {
        return;
    };
    let mut s = p.settings();
    s.bakong.account_id = Some(ACCOUNT.into());
    s.poller.max_requests_per_second = 20.0;
    s.poller.concurrency = 8;
    s.poller.bulk = BulkMode::Never;
    s.poller.payment_ttl = Duration::from_secs(120);
    for _ in 0..100 {
        let md5 = p.register(
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        );
        insert(&p, &md5, false).await;
    }
    let now = || chrono::Utc::now().timestamp_millis();
    // The other daemon: its heartbeat every 500 ms until it is "killed".
    let store = bakong_poller::app::open_store(&s).await.unwrap();
    let alive = Arc::new(AtomicBool::new(true));
    let ghost = {
        let (store, alive) = (store.clone(), alive.clone());
        tokio::spawn(async move {
            let me = bakong_poller::store::GateMember {
                instance: "ghost".into(),
                host: "elsewhere".into(),
                pid: 1,
                receivers: Vec::new(),
            };
            while alive.load(Ordering::Relaxed) {
                let _ = store
                    .heartbeat(&me, now(), bakong_poller::store::LIVE_MS)
                    .await;
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };
    let cfg = config_at(&p, &s, "alone.toml");
    let mut children = vec![spawn_daemon(&cfg, &p.e.dir.path().join("alone.log"))];
    wait_for("the daemon sending", Duration::from_secs(20), || async {
        (p.e.sim.sim.stats().total > 10).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    alive.store(false, Ordering::Relaxed);
    ghost.await.unwrap();
    let killed = now();
    wait_for("8 s after the kill", Duration::from_secs(12), || async {
        (now() >= killed + 8_000).then_some(())
    })
    .await;
    stop_all(&mut children);
    store.close().await;
    let arrivals = p.e.sim.sim.arrivals();
    let shared = arrivals_between(&arrivals, killed - 2_000, killed);
    let per_second: Vec<usize> = (0..8)
        .map(|i| arrivals_between(&arrivals, killed + i * 1_000, killed + (i + 1) * 1_000))
        .collect();
    let alone = arrivals_between(&arrivals, killed + 5_000, killed + 7_000);
    eprintln!(
        "ceiling 20/s: {shared} requests in the 2 s before the idle daemon died; \
         per second after: {per_second:?}; {alone} in 5-7 s after"
    );
    assert!(
        shared >= 34,
        "85% of the ceiling for the busy one while the idle one lives: {shared} in 2 s"
    );
    assert!(
        per_second.iter().all(|n| *n <= 24),
        "over the ceiling: {per_second:?}"
    );
    assert!(
        alone >= 34,
        "85% of the whole ceiling 5-7 s after the other died: {alone} in 2 s ({per_second:?})"
    );
}

/// Issue 22 item 1: of three daemons sharing a ceiling of 20 requests a
/// second, one is SIGKILLed (no leave): the two left are back at 85% of the
/// ceiling together within a few seconds (its heartbeat ages out of the
/// live window), not paced at two thirds of it for longer.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_take_the_share_of_a_third_that_was_killed_within_seconds() {
    let Some(p) = pg_env().await else {
        return;
    };
    let mut s = p.settings();
    s.bakong.account_id = Some(ACCOUNT.into());
    s.poller.max_requests_per_second = 20.0;
    s.poller.concurrency = 8;
    s.poller.bulk = BulkMode::Never;
    s.poller.payment_ttl = Duration::from_secs(120);
    for _ in 0..100 {
        let md5 = p.register(
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        );
        insert(&p, &md5, false).await;
    }
    let now = || chrono::Utc::now().timestamp_millis();
    let mut children = spawn_three(&p, &s);
    wait_for("the daemons sending", Duration::from_secs(20), || async {
        (p.e.sim.sim.stats().total > 20).then_some(())
    })
    .await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    let mut dead = children.pop().unwrap();
    signal(&dead, nix::sys::signal::Signal::SIGKILL);
    dead.wait().unwrap();
    let killed = now();
    wait_for("8 s after the kill", Duration::from_secs(12), || async {
        (now() >= killed + 8_000).then_some(())
    })
    .await;
    stop_all(&mut children);
    let arrivals = p.e.sim.sim.arrivals();
    let before = arrivals_between(&arrivals, killed - 2_000, killed);
    let per_second: Vec<usize> = (0..8)
        .map(|i| arrivals_between(&arrivals, killed + i * 1_000, killed + (i + 1) * 1_000))
        .collect();
    let after = arrivals_between(&arrivals, killed + 5_000, killed + 7_000);
    eprintln!(
        "ceiling 20/s: {before} requests in the 2 s before the kill; \
         per second after: {per_second:?}; {after} in 5-7 s after"
    );
    assert!(
        before >= 34,
        "85% of the ceiling with three: {before} in 2 s"
    );
    assert!(
        after >= 34,
        "85% of the ceiling with the two left 5-7 s after the kill: {after} in 2 s ({per_second:?})"
    );
}

/// Issue 22 item 1: with the API's limit (10 requests a second, 1 s
/// windows) under the ceiling of the three daemons (20 together), the
/// fast climb after a cut does not turn into a stream of 429s: the 429s
/// keep cutting, the climb slows near where they hit, and the three
/// together send at least 70% of the API's limit over 12 s. Measured: 116
/// requests in 12 s and five 429s in the whole run (with the climb by
/// answers before: 105 and two).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_daemons_stay_near_an_api_limit_under_their_ceiling() {
    let Some(p) = pg_env().await else {
        return;
    };
    let mut s = p.settings();
    s.bakong.account_id = Some(ACCOUNT.into());
    s.poller.max_requests_per_second = 20.0;
    s.poller.concurrency = 8;
    s.poller.bulk = BulkMode::Never;
    s.poller.payment_ttl = Duration::from_secs(120);
    for _ in 0..100 {
        let md5 = p.register(
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        );
        insert(&p, &md5, false).await;
    }
    p.e.sim.sim.set_faults(Faults {
        rate_limit: Some(RateLimit {
            requests_per_second: 10.0,
            burst: 10,
            retry_after: RetryAfterMode::Seconds,
            retry_after_secs: Some(1),
        }),
        ..Faults::default()
    });
    let now = || chrono::Utc::now().timestamp_millis();
    let mut children = spawn_three(&p, &s);
    wait_for("the first 429", Duration::from_secs(20), || async {
        (p.e.sim.sim.stats().rate_limited > 0).then_some(())
    })
    .await;
    let from = now() + 2_000;
    wait_for(
        "14 s after the first 429",
        Duration::from_secs(20),
        || async { (now() >= from + 12_000).then_some(()) },
    )
    .await;
    stop_all(&mut children);
    let st = p.e.sim.sim.stats();
    let arrivals = p.e.sim.sim.arrivals();
    let per_second: Vec<usize> = (0..12)
        .map(|i| arrivals_between(&arrivals, from + i * 1_000, from + (i + 1) * 1_000))
        .collect();
    let sent: usize = per_second.iter().sum();
    eprintln!(
        "API limit 10/s, ceiling 20/s: {sent} requests in 12 s, per second {per_second:?}; {} answered 429 in all",
        st.rate_limited
    );
    assert!(
        sent >= 84,
        "70% of the API's limit: {sent} in 12 s ({per_second:?})"
    );
    assert!(
        st.rate_limited <= 10,
        "at most a 429 every 1.5 s or so: {}",
        st.rate_limited
    );
}

/// Issue 22 item 1: the daemons take their requests from one shared
/// schedule, not a static third of the ceiling each, so when one of three
/// is SIGKILLed the two left spend the whole ceiling at once: already in
/// the 0.5-2.5 s after the kill, while the dead one still counts as live
/// (its heartbeat ages out after LIVE_MS), they reach 85% of it together
/// (a static share would give them two thirds of it until then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_daemons_spend_the_whole_ceiling_at_once_when_a_third_is_killed() {
    let Some(p) = pg_env().await else {
        return;
    };
    let mut s = p.settings();
    s.bakong.account_id = Some(ACCOUNT.into());
    s.poller.max_requests_per_second = 20.0;
    s.poller.concurrency = 8;
    s.poller.bulk = BulkMode::Never;
    s.poller.payment_ttl = Duration::from_secs(120);
    for _ in 0..100 {
        let md5 = p.register(
            "1",
            "USD",
            NewTransaction {
                outcome: OutcomeKind::Never,
                ..paid_after(0)
            },
        );
        insert(&p, &md5, false).await;
    }
    let now = || chrono::Utc::now().timestamp_millis();
    let mut children = spawn_three(&p, &s);
    wait_for("the daemons sending", Duration::from_secs(20), || async {
        (p.e.sim.sim.stats().total > 20).then_some(())
    })
    .await;
    let started = now();
    wait_for("3 s of the three", Duration::from_secs(5), || async {
        (now() >= started + 3_000).then_some(())
    })
    .await;
    let mut dead = children.pop().unwrap();
    signal(&dead, nix::sys::signal::Signal::SIGKILL);
    dead.wait().unwrap();
    let killed = now();
    wait_for("3 s after the kill", Duration::from_secs(5), || async {
        (now() >= killed + 3_000).then_some(())
    })
    .await;
    stop_all(&mut children);
    let arrivals = p.e.sim.sim.arrivals();
    let st = p.e.sim.sim.stats();
    let before = arrivals_between(&arrivals, killed - 2_000, killed);
    let at_once = arrivals_between(&arrivals, killed + 500, killed + 2_500);
    let per_second: Vec<usize> = (0..3)
        .map(|i| arrivals_between(&arrivals, killed + i * 1_000, killed + (i + 1) * 1_000))
        .collect();
    eprintln!(
        "ceiling 20/s: {before} requests in the 2 s before the kill; {at_once} in 0.5-2.5 s \
         after it (per second after: {per_second:?}); peak {} in one second",
        st.peak_rps
    );
    assert!(
        before >= 34,
        "85% of the ceiling with three: {before} in 2 s"
    );
    assert!(
        at_once >= 34,
        "85% of the ceiling with the two left 0.5-2.5 s after the kill: {at_once} in 2 s ({per_second:?})"
    );
    assert!(
        st.peak_rps <= 24,
        "more than 20% over the ceiling of 20 in one second: {}",
        st.peak_rps
    );
}

both!(reserved_request_slots_follow_one_another_a_gap_apart);

/// The shared schedule on either backend: slots reserved together come a
/// gap apart, a reservation after a quiet spell is due at once, a next
/// slot beyond the horizon (a clock far ahead) counts as free, and the
/// 429 window in force comes with the slot.
async fn reserved_request_slots_follow_one_another_a_gap_apart(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let store = bakong_poller::app::open_store(&b.settings()).await.unwrap();
    let t = 1_000_000;
    let mut got = Vec::new();
    for _ in 0..3 {
        got.push(store.gate_reserve(t, 101, 6_464).await.unwrap());
    }
    assert_eq!(got, [(t, None), (t + 101, None), (t + 202, None)]);
    // Quiet since: the next request may leave now.
    assert_eq!(
        store.gate_reserve(t + 5_000, 101, 6_464).await.unwrap().0,
        t + 5_000
    );
    // Left far ahead (by a clock an hour fast): free now.
    store.gate_reserve(t + 3_600_000, 101, 6_464).await.unwrap();
    assert_eq!(
        store.gate_reserve(t + 6_000, 101, 6_464).await.unwrap().0,
        t + 6_000
    );
    assert_eq!(
        store.gate_reserve(t + 6_000, 101, 6_464).await.unwrap().0,
        t + 6_101
    );
    store
        .gate_cut(t + 9_000, t + 6_000, Some(5.0))
        .await
        .unwrap();
    assert_eq!(
        store.gate_reserve(t + 6_500, 202, 12_928).await.unwrap(),
        (t + 6_500, Some(t + 9_000))
    );
    store.close().await;
}

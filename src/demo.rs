//! `bakong-poller demo`: the simulator and the daemon in one process, on a
//! temporary database, with simulated customers paying at random moments
//! (some the wrong amount, some failing, some never), a progress line per
//! second and a summary table at the end.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rand::Rng;
use rust_decimal::Decimal;
use tokio_util::sync::CancellationToken;

use crate::money::Currency;
use crate::simulator::{self, NewTransaction, OutcomeKind, Scenario};

use crate::app::{LOCAL_ACCOUNT as ACCOUNT, LOCAL_EMAIL as EMAIL};

/// Why the demo stopped.
#[derive(Debug, thiserror::Error)]
#[error("demo: {0}")]
pub struct DemoError(String);

impl From<String> for DemoError {
    fn from(s: String) -> Self {
        DemoError(s)
    }
}

impl From<crate::simulator::SimError> for DemoError {
    fn from(e: crate::simulator::SimError) -> Self {
        DemoError(e.to_string())
    }
}

/// Learns where the checkout page listens.
#[derive(Default)]
struct Bound(std::sync::Mutex<Option<std::net::SocketAddr>>);

impl crate::poller::Observer for Bound {
    fn api_listening(&self, addr: std::net::SocketAddr) {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(addr);
    }
}

/// Runs the demo with `n` payments.
pub async fn run(n: usize) -> Result<(), DemoError> {
    crate::telemetry::init(crate::config::LogFormat::Text, "warn");
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let shutdown =
        crate::shutdown::on_signal().map_err(|e| format!("cannot install signal handlers: {e}"))?;
    let sim = simulator::spawn(
        ([127, 0, 0, 1], 0).into(),
        &Scenario::default(),
        shutdown.clone(),
    )
    .await?;
    let token = sim.sim.issue_token(EMAIL);
    let mut settings = crate::app::local_settings(dir.path(), &sim.base_url(), &token);
    // The checkout page (and the API) on a free local port.
    settings.api.listen = Some("127.0.0.1:0".into());
    println!("bakong-poller demo");
    println!("  simulator  {}", sim.base_url());
    println!("  database   {}", settings.database.url);
    println!("  {n} payments; customers pay 1-8 s after their QR is shown; unpaid ones expire after 12 s");
    println!("  plus two told stories: order demo-late expires at 3 s and its customer pays at 6 s (paid_late);");
    println!("  order demo-cancel is cancelled by the shop at 2 s\n");

    let store = crate::app::open_store(&settings)
        .await
        .map_err(|e| e.to_string())?;
    let daemon_stop = CancellationToken::new();
    let bound = Arc::new(Bound::default());
    let daemon = tokio::spawn(crate::daemon::run(
        settings.clone(),
        daemon_stop.clone(),
        bound.clone(),
    ));
    let page = {
        let wait = Instant::now();
        loop {
            if let Some(a) = *bound.0.lock().unwrap_or_else(|e| e.into_inner()) {
                break Some(a);
            }
            if wait.elapsed() > Duration::from_secs(5) || daemon.is_finished() {
                break None;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    };
    let watch_id = crate::payment::new_public_id();
    let watch = story(
        &sim.sim,
        &store,
        "demo-watch",
        60,
        15_000,
        Some(watch_id.clone()),
    )
    .await?;
    if let Some(addr) = page {
        println!("  watch a customer pay: open http://{addr}/pay/{watch_id}");
        println!(
            "  (order demo-watch: its customer pays at 15 s; the page turns green, no reload)\n"
        );
    }

    let started = Instant::now();
    let deadline = started + Duration::from_secs(50);
    let mut inserted = 0usize;
    let spacing = Duration::from_millis((6000 / n.max(1)) as u64);
    let mut next_insert = started;
    let mut next_report = started + Duration::from_secs(1);
    let late = story(&sim.sim, &store, "demo-late", 3, 6000, None).await?;
    let cancel = story(&sim.sim, &store, "demo-cancel", 12, 30_000, None).await?;
    let mut cancelled = false;
    loop {
        if shutdown.is_cancelled() {
            break;
        }
        while inserted < n && Instant::now() >= next_insert {
            add_customer(&sim.sim, &store, inserted).await?;
            inserted += 1;
            next_insert += spacing;
        }
        if !cancelled && started.elapsed() >= Duration::from_secs(2) {
            cancelled = true;
            let target = crate::store::Target::Md5(cancel.clone());
            match store.cancel(&target, chrono::Utc::now()).await {
                Ok(crate::store::CancelOutcome::Cancelled(_)) => {
                    println!("  {:>4.1}s  the shop cancels order demo-cancel (`bakong-poller cancel --order-id demo-cancel`)", started.elapsed().as_secs_f64());
                }
                Ok(other) => println!("  could not cancel order demo-cancel: {other:?}"),
                Err(e) => return Err(e.to_string().into()),
            }
        }
        let counts = store.counts().await.map_err(|e| e.to_string())?;
        if Instant::now() >= next_report {
            println!(
                "  {:>4.1}s  inserted {:>3}  pending {:>3}  paid {:>3}  mismatch {:>2}  failed {:>2}  expired {:>2}  cancelled {}  paid_late {}",
                started.elapsed().as_secs_f64(), inserted, counts.pending, counts.paid, counts.mismatch, counts.failed, counts.expired, counts.cancelled, counts.paid_late
            );
            next_report += Duration::from_secs(1);
        }
        let late_done = store.status_of(&late).await.map_err(|e| e.to_string())?
            == Some(crate::payment::Status::PaidLate)
            && store.status_of(&watch).await.map_err(|e| e.to_string())?
                == Some(crate::payment::Status::Paid);
        if inserted == n && counts.pending == 0 && late_done {
            println!("  order demo-late: expired, then its customer paid: now paid_late (a WARN line, an event payment.paid_late)");
            break;
        }
        if Instant::now() >= deadline {
            println!(
                "  deadline reached with {} payments still pending",
                counts.pending
            );
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    daemon_stop.cancel();
    match daemon.await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => return Err(format!("daemon: {e}").into()),
        Err(e) => return Err(format!("daemon task: {e}").into()),
    }
    summary(&store, &sim.sim, started.elapsed()).await?;
    store.close().await;
    sim.stop().await;
    Ok(())
}

/// A told story: order `order` expires `expires_s` after now and its
/// customer pays `pays_ms` after now. Returns its md5.
async fn story(
    sim: &simulator::Sim,
    store: &crate::store::Store,
    order: &str,
    expires_s: i64,
    pays_ms: u64,
    public_id: Option<String>,
) -> Result<String, DemoError> {
    let amount = Decimal::new(500, 2);
    let qr = crate::khqr::build(ACCOUNT, "Demo Shop", amount, Currency::Usd, order)
        .map_err(|e| e.to_string())?;
    sim.add_transaction(NewTransaction {
        qr: Some(qr.clone()),
        after: Duration::from_millis(pays_ms),
        ..NewTransaction::default()
    })?;
    let md5 = crate::khqr::md5_hex(&qr);
    store
        .insert_payment(&crate::store::NewPayment {
            md5: md5.clone(),
            amount: "5.00".into(),
            currency: Currency::Usd,
            expires_at: Some(chrono::Utc::now() + chrono::TimeDelta::seconds(expires_s)),
            order_id: Some(order.into()),
            metadata: Some(r#"{"demo":true}"#.into()),
            qr: Some(qr),
            public_id,
            redirect_url: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(md5)
}

async fn add_customer(
    sim: &simulator::Sim,
    store: &crate::store::Store,
    i: usize,
) -> Result<(), DemoError> {
    let mut rng = rand::rng();
    let (amount, currency) = if rng.random_bool(0.5) {
        (Decimal::new(rng.random_range(50..2000), 2), Currency::Usd)
    } else {
        (Decimal::from(rng.random_range(1..40) * 1000), Currency::Khr)
    };
    let qr = crate::khqr::build(
        ACCOUNT,
        "Demo Shop",
        amount,
        currency,
        &format!("{i}-{}", rng.random::<u32>()),
    )
    .map_err(|e| e.to_string())?;
    let roll: f64 = rng.random();
    let mut t = NewTransaction {
        qr: Some(qr.clone()),
        after: Duration::from_millis(rng.random_range(1000..8000)),
        ..NewTransaction::default()
    };
    if roll < 0.08 {
        t.paid_amount = Some(amount / Decimal::from(2));
    } else if roll < 0.14 {
        t.outcome = OutcomeKind::Failed;
    } else if roll < 0.22 {
        t.outcome = OutcomeKind::Never;
    }
    sim.add_transaction(t)?;
    let md5 = crate::khqr::md5_hex(&qr);
    store
        .insert_payment(&crate::store::NewPayment {
            md5,
            amount: amount.to_string(),
            currency,
            expires_at: None,
            order_id: Some(format!("demo-{i}")),
            metadata: None,
            qr: Some(qr),
            public_id: None,
            redirect_url: None,
        })
        .await
        .map_err(|e| e.to_string())?;
    Ok(())
}

async fn summary(
    store: &crate::store::Store,
    sim: &simulator::Sim,
    elapsed: Duration,
) -> Result<(), DemoError> {
    let rows = store.status_summary().await.map_err(|e| e.to_string())?;
    println!("\n  status     count   paid -> confirmed (avg / max)");
    for r in rows {
        let lat = match (r.avg_confirm_s, r.max_confirm_s) {
            (Some(a), Some(m)) => format!("{a:.2} s / {m:.2} s"),
            _ => "-".into(),
        };
        println!("  {:<9} {:>6}   {lat}", r.status.as_str(), r.count);
    }
    let st = sim.stats();
    println!(
        "\n  {} API requests in {:.1} s; peak {} requests/s; 429s {}",
        st.total,
        elapsed.as_secs_f64(),
        st.peak_rps,
        st.rate_limited
    );
    Ok(())
}

//! What integrators met on the live service (issue 15 items 1, 2, 3, 4, 9,
//! 10), each as a class: list items that break, tokens refused in other
//! shapes than 401, the endpoints that need no token, relay tokens, static
//! QRs, two daemons on one database. Also: a request waiting at the gate
//! through a renewal leaves with the new token.
//!
//! Answers the simulator cannot give (a broken list item, a relay's opaque
//! token) come from a small in-process fake on 127.0.0.1.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bakong_poller::config::BulkMode;
use bakong_simulator::{Faults, SimSettings};
use serde_json::{json, Value};
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);
const HASH: &str = "8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9";

/// A fake Bakong: per md5 a list item (`status`, `data`); single lookups
/// answer in the same terms; every list request is recorded.
#[derive(Default)]
struct Fake {
    items: Mutex<HashMap<String, Value>>,
    lists: Mutex<Vec<Vec<String>>>,
    singles: Mutex<Vec<String>>,
    /// When set, requests must carry exactly this bearer token.
    token: Option<String>,
    refused: Mutex<u64>,
}

impl Fake {
    fn set(&self, md5: &str, status: &str, data: Value) {
        self.items.lock().unwrap().insert(
            md5.to_string(),
            json!({"md5": md5, "status": status, "message": status, "data": data}),
        );
    }
    fn lists(&self) -> Vec<Vec<String>> {
        self.lists.lock().unwrap().clone()
    }
}

fn tx(to: &str, amount: Value, from: Value) -> Value {
    json!({"hash": HASH, "fromAccountId": from, "toAccountId": to, "currency": "USD",
           "amount": amount, "description": null, "createdDateMs": 1_700_000_000_000_i64})
}

async fn fake_handler(
    State(f): State<Arc<Fake>>,
    Path(endpoint): Path<String>,
    headers: HeaderMap,
    body: axum::body::Bytes,
) -> Response {
    if let Some(t) = &f.token {
        let ok = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .is_some_and(|v| v == format!("Bearer {t}"));
        if !ok {
            *f.refused.lock().unwrap() += 1;
            return (
                StatusCode::UNAUTHORIZED,
                axum::Json(json!({"responseCode": 1, "responseMessage": "Unauthorized", "errorCode": 6, "data": null})),
            )
                .into_response();
        }
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let items = f.items.lock().unwrap().clone();
    match endpoint.as_str() {
        "check_transaction_by_md5_list" => {
            let asked: Vec<String> = body
                .as_array()
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(String::from))
                        .collect()
                })
                .unwrap_or_default();
            f.lists.lock().unwrap().push(asked.clone());
            let data: Vec<Value> = asked.iter().filter_map(|m| items.get(m).cloned()).collect();
            axum::Json(json!({"responseCode": 0, "responseMessage": "ok", "errorCode": null, "data": data}))
                .into_response()
        }
        "check_transaction_by_md5" => {
            let md5 = body["md5"].as_str().unwrap_or_default().to_string();
            f.singles.lock().unwrap().push(md5.clone());
            let item = items
                .get(&md5)
                .cloned()
                .unwrap_or(json!({"status": "NOT_FOUND"}));
            let envelope = match item["status"].as_str() {
                Some("SUCCESS") => {
                    json!({"responseCode": 0, "responseMessage": "ok", "errorCode": null, "data": item["data"]})
                }
                Some("STATIC_QR") => {
                    json!({"responseCode": 1, "responseMessage": "static", "errorCode": 2, "data": null})
                }
                _ => {
                    json!({"responseCode": 1, "responseMessage": "not found", "errorCode": 1, "data": null})
                }
            };
            axum::Json(envelope).into_response()
        }
        _ => StatusCode::NOT_FOUND.into_response(),
    }
}

/// Serves `fake` under `prefix` (e.g. "" or "/relay") on 127.0.0.1; returns
/// the base URL.
async fn serve(fake: Arc<Fake>, prefix: &str, stop: CancellationToken) -> String {
    let app = axum::Router::new()
        .route(
            &format!("{prefix}/v1/{{endpoint}}"),
            axum::routing::post(fake_handler),
        )
        .with_state(fake);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await;
    });
    format!("http://{addr}{prefix}")
}

async fn insert(db: &sqlx::SqlitePool, md5: &str, amount: &str) {
    sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES (?1, ?2, 'USD')")
        .bind(md5)
        .bind(amount)
        .execute(db)
        .await
        .unwrap();
}

async fn payer(db: &sqlx::SqlitePool, md5: &str) -> Option<String> {
    sqlx::query_scalar("SELECT from_account_id FROM payments WHERE md5 = ?1")
        .bind(md5)
        .fetch_one(db)
        .await
        .unwrap()
}

#[tokio::test]
async fn each_item_of_a_list_answer_stands_alone_and_a_failing_row_goes_alone() {
    let e = env().await;
    let fake = Arc::new(Fake::default());
    let stop = CancellationToken::new();
    let mut s = e.settings();
    s.bakong.base_url = serve(fake.clone(), "", stop.clone()).await;
    s.poller.bulk = BulkMode::Always;
    s.poller.cadence = Duration::from_millis(100);
    let db = e.merchant(&s).await;
    // A paid; B paid with a null payer; C not found yet; D and E unreadable
    // (amount, status): the class of per-item faults.
    let (a, b, c, d, f) = (new_md5(), new_md5(), new_md5(), new_md5(), new_md5());
    fake.set(&a, "SUCCESS", tx(ACCOUNT, json!(1.5), json!("payer@bank")));
    fake.set(&b, "SUCCESS", tx(ACCOUNT, json!("1.50"), json!(null)));
    fake.set(&c, "NOT_FOUND", json!(null));
    fake.set(
        &d,
        "SUCCESS",
        tx(ACCOUNT, json!("1,50"), json!("payer@bank")),
    );
    fake.set(&f, "PROCESSING", json!(null));
    for m in [&a, &b, &c, &d, &f] {
        insert(&db, m, "1.50").await;
    }
    let settings = s.clone();
    let daemon = start(s);
    assert_eq!(final_status(&db, &a, LIMIT).await, "paid");
    assert_eq!(final_status(&db, &b, LIMIT).await, "paid");
    assert_eq!(payer(&db, &b).await, None, "a null payer is stored as NULL");
    assert_eq!(payer(&db, &a).await.as_deref(), Some("payer@bank"));
    // A and B were confirmed by the first list request that asked for them.
    let first = fake.lists()[0].clone();
    assert!(first.contains(&a) && first.contains(&d), "{first:?}");
    // The rows that keep failing end up asked about alone.
    wait_for("D and E asked about alone", LIMIT, || async {
        let lists = fake.lists();
        let alone = |m: &String| lists.iter().any(|l| l.len() == 1 && &l[0] == m);
        (alone(&d) && alone(&f)).then_some(())
    })
    .await;
    daemon.stop().await;
    for m in [&c, &d, &f] {
        assert_eq!(status(&db, m).await, "pending");
    }
    for m in [&c, &d, &f] {
        let err = bookkeeping(&settings, m).await.last_error;
        if m == &c {
            assert_eq!(err, None, "C is simply not found yet");
        } else {
            let err = err.unwrap_or_default();
            assert!(err.contains(m.as_str()), "its own error names it: {err}");
        }
    }
    stop.cancel();
}

/// A token the server refuses though its JWT exp is far away; the list
/// answers a bare HTML 403, single lookups 401.
async fn refused_token_on_the_list(mode: BulkMode) {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = mode;
    s.poller.bulk_retry = Duration::from_secs(1800);
    let db = e.merchant(&s).await;
    e.sim.sim.set_faults(Faults {
        list_403_for_refused_token: true,
        ..Faults::default()
    });
    e.sim.sim.revoke_tokens(EMAIL);
    let a = e.payment(&db, "1.50", "USD", paid_after(0)).await;
    let d = start(s);
    assert_eq!(final_status(&db, &a, Duration::from_secs(5)).await, "paid");
    // The list is used again from the next batch after the renewal, in
    // both modes (no half-hour of single lookups in auto).
    let lists_before = list_ok(&e);
    let b = e.payment(&db, "2", "USD", paid_after(0)).await;
    assert_eq!(final_status(&db, &b, Duration::from_secs(5)).await, "paid");
    d.stop().await;
    let st = e.sim.sim.stats();
    assert_eq!(st.renewals, 1, "exactly one renewal ({mode:?})");
    assert!(
        list_ok(&e) > lists_before,
        "B went through the list ({mode:?})"
    );
    assert_eq!(
        st.requests["check_transaction_by_md5_list"]
            .get(&403)
            .copied(),
        Some(1),
        "one refused list request ({mode:?})"
    );
}

fn list_ok(e: &TestEnv) -> u64 {
    e.sim
        .sim
        .stats()
        .requests
        .get("check_transaction_by_md5_list")
        .and_then(|m| m.get(&200))
        .copied()
        .unwrap_or(0)
}

#[tokio::test]
async fn a_token_refused_with_a_403_on_the_list_is_renewed_once_in_auto_mode() {
    refused_token_on_the_list(BulkMode::Auto).await;
}

#[tokio::test]
async fn a_token_refused_with_a_403_on_the_list_is_renewed_once_in_always_mode() {
    refused_token_on_the_list(BulkMode::Always).await;
}

#[tokio::test]
async fn every_endpoint_refusing_with_403_is_a_geo_block_and_renews_nothing() {
    let e = env().await;
    let mut s = e.settings();
    s.poller.bulk = BulkMode::Always;
    let db = e.merchant(&s).await;
    e.sim.sim.set_faults(Faults {
        geo_block: true,
        ..Faults::default()
    });
    let a = e.payment(&db, "1", "USD", paid_after(0)).await;
    let d = start(s);
    wait_for("a few refused requests", LIMIT, || async {
        let st = e.sim.sim.stats();
        (st.total >= 4).then_some(())
    })
    .await;
    assert_eq!(status(&db, &a).await, "pending");
    assert_eq!(e.sim.sim.stats().renewals, 0);
    e.sim.sim.set_faults(Faults::default());
    assert_eq!(final_status(&db, &a, LIMIT).await, "paid");
    d.stop().await;
}

#[tokio::test]
async fn requests_queued_at_the_gate_during_a_renewal_leave_with_the_new_token() {
    let e = env().await;
    let mut s = e.settings();
    // Many checks, a slow gate: most wait in line while the first 401 is
    // being renewed.
    s.poller.concurrency = 16;
    s.poller.max_requests_per_second = 10.0;
    let db = e.merchant(&s).await;
    e.sim.sim.set_settings(SimSettings {
        revoke_on_renew: true,
        ..SimSettings::default()
    });
    let mut md5s = Vec::new();
    for _ in 0..16 {
        md5s.push(e.payment(&db, "1", "USD", paid_after(0)).await);
    }
    e.sim.sim.revoke_tokens(EMAIL);
    let d = start(s);
    for m in &md5s {
        assert_eq!(final_status(&db, m, LIMIT).await, "paid");
    }
    d.stop().await;
    let st = e.sim.sim.stats();
    assert_eq!(st.renewals, 1);
    assert_eq!(
        st.stale_token, 0,
        "a request used a token older than the renewal"
    );
    let refused = st.requests["check_transaction_by_md5"]
        .get(&401)
        .copied()
        .unwrap_or(0);
    assert!(refused <= 2, "{refused} requests were refused");
}

fn write_config(e: &TestEnv, extra: &str, token: Option<&str>) -> std::path::PathBuf {
    let mut s = e.settings();
    s.bakong.token = None;
    let path = e.config_file(&s, "");
    let text = std::fs::read_to_string(&path).unwrap();
    let text = text
        .lines()
        .filter(|l| !l.starts_with("token = "))
        .map(|l| match (l.starts_with("[bakong]"), token) {
            (true, Some(t)) => format!("{l}\ntoken = \"{t}\""),
            _ => l.to_string(),
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&path, format!("{text}\n{extra}")).unwrap();
    path
}

async fn run(cfg: &std::path::Path, args: &[&str]) -> Out {
    bin!().config(cfg).args(args).run().await
}

#[tokio::test]
async fn the_endpoints_that_need_no_token_go_out_without_one() {
    let e = env().await;
    let cfg = write_config(&e, "", None);
    e.sim.sim.add_account("demo_shop@aclb");
    let Out {
        code,
        stdout: out,
        stderr: err,
    } = run(&cfg, &["account", "demo_shop@aclb"]).await;
    assert_eq!(code, 0, "{out}{err}");
    let Out {
        code,
        stdout: _,
        stderr: err,
    } = run(&cfg, &["account", "nobody@aclb"]).await;
    assert_eq!(code, 3, "{err}");
    let qr = bakong_poller::khqr::build(
        "shop@devb",
        "Shop",
        rust_decimal::Decimal::ONE,
        bakong_poller::money::Currency::Usd,
        "1",
    )
    .unwrap();
    let Out {
        code,
        stdout: out,
        stderr: err,
    } = run(
        &cfg,
        &[
            "deeplink",
            "--qr",
            &qr,
            "--app-name",
            "Shop",
            "--app-icon-url",
            "https://shop.example/i.png",
            "--callback",
            "https://shop.example/paid",
        ],
    )
    .await;
    assert_eq!(code, 0, "{err}");
    assert!(out.trim().starts_with("http"), "{out}");
    // Nothing was refused: the requests went without a token.
    let st = e.sim.sim.stats();
    assert!(!st.requests["check_bakong_account"].contains_key(&401));
    assert!(!st.requests["generate_deeplink_by_qr"].contains_key(&401));
    // A token-only endpoint still says what is missing.
    let Out {
        code,
        stdout: _,
        stderr: err,
    } = run(&cfg, &["check", "md5", &new_md5()]).await;
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("token"), "{err}");
}

fn expired_jwt() -> String {
    use base64::Engine;
    let enc = |v: Value| base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(v.to_string());
    format!(
        "{}.{}.sig",
        enc(json!({"alg": "HS256", "typ": "JWT"})),
        enc(json!({"iat": 1_735_689_600, "exp": 1_743_465_600}))
    )
}

#[tokio::test]
async fn an_opaque_relay_token_beats_an_expired_jwt_in_the_token_file() {
    let e = env().await;
    let relay_token = "rbk_test_5f2c9a";
    let fake = Arc::new(Fake {
        token: Some(relay_token.into()),
        ..Fake::default()
    });
    let stop = CancellationToken::new();
    let base = serve(fake.clone(), "/relay/bakong", stop.clone()).await;
    let cfg = write_config(&e, "", Some(relay_token));
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .lines()
        .map(|l| {
            if l.starts_with("base_url = ") {
                format!("base_url = \"{base}\"")
            } else {
                l.to_string()
            }
        })
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&cfg, text).unwrap();
    std::fs::write(e.dir.path().join("token"), expired_jwt()).unwrap();
    let Out {
        code,
        stdout: out,
        stderr: err,
    } = run(&cfg, &["token", "show"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("source     bakong.token"), "{out}");
    assert!(out.contains("no readable dates"), "{out}");
    assert!(out.contains("expired"), "the dropped JWT is named: {out}");
    let paid = new_md5();
    fake.set(&paid, "SUCCESS", tx(ACCOUNT, json!(1), json!("p@b")));
    let Out {
        code,
        stdout: out,
        stderr: err,
    } = run(&cfg, &["check", "md5", &paid]).await;
    assert_eq!(code, 0, "{out}{err}");
    let Out {
        code,
        stdout: _,
        stderr: err,
    } = run(&cfg, &["check", "md5", &new_md5()]).await;
    assert_eq!(code, 3, "not found, not refused: {err}");
    assert_eq!(*fake.refused.lock().unwrap(), 0);
    // The same choice in the environment: the relay token counts from start-up.
    let Out {
        code, stdout: out, ..
    } = bin!()
        .config(&cfg)
        .args(["token", "show"])
        .env("BAKONG_POLLER__BAKONG__TOKEN", relay_token)
        .run()
        .await;
    assert_eq!(code, 0);
    assert!(out.contains("BAKONG_POLLER__BAKONG__TOKEN"), "{out}");
    stop.cancel();
}

#[tokio::test]
async fn a_static_qr_is_warned_about_once_and_expires_at_its_deadline_with_that_reason() {
    let e = env().await;
    let fake = Arc::new(Fake::default());
    let stop = CancellationToken::new();
    let mut s = e.settings();
    s.bakong.base_url = serve(fake.clone(), "", stop.clone()).await;
    s.poller.bulk = BulkMode::Always;
    s.poller.payment_ttl = Duration::from_millis(1500);
    let db = e.merchant(&s).await;
    let md5 = new_md5();
    fake.set(&md5, "STATIC_QR", json!(null));
    insert(&db, &md5, "1").await;
    let cfg = e.config_file(&s, "");
    let log = e.dir.path().join("daemon.log");
    let mut child = bin!()
        .config(&cfg)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn();
    assert_eq!(final_status(&db, &md5, LIMIT).await, "expired");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let warnings: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("\"WARN\"") && l.contains(&md5) && l.contains("static QR"))
        .collect();
    assert_eq!(warnings.len(), 1, "{text}");
    let expired: Vec<&str> = text
        .lines()
        .filter(|l| l.contains("payment expired") && l.contains(&md5))
        .collect();
    assert_eq!(expired.len(), 1, "{text}");
    assert!(expired[0].contains("static QR"), "{}", expired[0]);
    // Checked like a "not found" (issue 20 item 12): at least the check
    // after the deadline that expired it.
    let asked = fake.lists().iter().filter(|l| l.contains(&md5)).count()
        + fake
            .singles
            .lock()
            .unwrap()
            .iter()
            .filter(|m| **m == md5)
            .count();
    assert!(asked >= 1, "asked {asked} times");
    let Out {
        code,
        stdout: out,
        stderr: err,
    } = run(&cfg, &["status"]).await;
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("static QR"), "{out}");
    stop.cancel();
}

/// Starts `run` as a process logging to `log`; returns once it runs.
async fn running_daemon(cfg: &std::path::Path, log: &std::path::Path) -> test_support::cli::Child {
    let child = bin!()
        .config(cfg)
        .arg("run")
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(log).unwrap())
        .spawn();
    wait_for("the daemon to run", LIMIT, || async {
        std::fs::read_to_string(log)
            .unwrap_or_default()
            .contains("bakong-poller running")
            .then_some(())
    })
    .await;
    child
}

#[tokio::test]
async fn a_second_daemon_on_the_same_sqlite_database_refuses_to_start_naming_the_first() {
    let e = env().await;
    let s = e.settings();
    let _db = e.merchant(&s).await;
    let cfg = e.config_file(&s, "");
    let mut first = running_daemon(&cfg, &e.dir.path().join("first.log")).await;
    let Out {
        code,
        stdout: _,
        stderr: err,
    } = run(&cfg, &["run"]).await;
    assert_eq!(code, 1, "{err}");
    assert!(err.contains(&format!("pid {}", first.id())), "{err}");
    assert!(err.contains("host"), "{err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(first.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    );
    let _ = first.wait();
    // The OS lock died with it: a new daemon starts at once.
    let mut second = running_daemon(&cfg, &e.dir.path().join("second.log")).await;
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(second.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    assert!(second.wait().unwrap().success());
}

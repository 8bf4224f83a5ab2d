//! Notifications against a real HTTP receiver on 127.0.0.1: signatures a
//! receiver verifies on its own, retries with the same webhook-id, timeouts,
//! the command hook, a SIGKILL mid-delivery, 1,000 events none lost, checks
//! that never wait for a receiver, and logs without secrets.

use std::collections::{HashSet, VecDeque};
use std::net::SocketAddr;
use std::process::Stdio;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use bakong_poller::config::{BulkMode, Settings, WebhookSecrets};
use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use hmac::{Hmac, Mac};
use sha2::Sha256;
use sqlx::SqlitePool;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

fn secret(byte: u8) -> String {
    format!("whsec_{}", STANDARD.encode([byte; 32]))
}

#[derive(Debug, Clone, Copy)]
enum Reply {
    Status(u16),
    Hang,
}

#[derive(Debug, Clone)]
struct Got {
    id: String,
    body: String,
    valid: bool,
}

struct RecvState {
    script: Mutex<VecDeque<Reply>>,
    default: Mutex<Reply>,
    got: Mutex<Vec<Got>>,
    hanging: AtomicUsize,
    key: Vec<u8>,
}

/// A webhook receiver verifying signatures on its own (HMAC-SHA256 of
/// "id.timestamp.body" with the base64-decoded secret, as the Standard
/// Webhooks libraries do), answering from a script.
struct Receiver {
    addr: SocketAddr,
    state: Arc<RecvState>,
}

impl Receiver {
    async fn start(verify_with: &str, script: &[Reply], default: Reply) -> Receiver {
        let key = STANDARD
            .decode(verify_with.strip_prefix("whsec_").unwrap())
            .unwrap();
        let state = Arc::new(RecvState {
            script: Mutex::new(script.iter().copied().collect()),
            default: Mutex::new(default),
            got: Mutex::new(Vec::new()),
            hanging: AtomicUsize::new(0),
            key,
        });
        let app = Router::new()
            .route("/events", post(receive))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        Receiver { addr, state }
    }

    fn url(&self) -> String {
        format!("http://{}/events", self.addr)
    }

    fn got(&self) -> Vec<Got> {
        self.state.got.lock().unwrap().clone()
    }
}

async fn receive(State(st): State<Arc<RecvState>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let (id, ts, sig) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let now = chrono::Utc::now().timestamp();
    let fresh = ts.parse::<i64>().is_ok_and(|t| (now - t).abs() < 300);
    let valid = fresh
        && sig.split(' ').any(|entry| {
            let Some(given) = entry
                .strip_prefix("v1,")
                .and_then(|b| STANDARD.decode(b).ok())
            else {
                return false;
            };
            let mut mac = Hmac::<Sha256>::new_from_slice(&st.key).unwrap();
            mac.update(format!("{id}.{ts}.").as_bytes());
            mac.update(&body);
            mac.verify_slice(&given).is_ok()
        });
    st.got.lock().unwrap().push(Got {
        id,
        body: String::from_utf8_lossy(&body).into_owned(),
        valid,
    });
    let reply = st
        .script
        .lock()
        .unwrap()
        .pop_front()
        .unwrap_or(*st.default.lock().unwrap());
    match reply {
        Reply::Status(c) => StatusCode::from_u16(c).unwrap(),
        Reply::Hang => {
            st.hanging.fetch_add(1, Ordering::SeqCst);
            tokio::time::sleep(Duration::from_secs(120)).await;
            StatusCode::OK
        }
    }
}

/// Fast webhook settings towards `url`.
fn with_webhook(mut s: Settings, url: &str, secrets: Vec<String>) -> Settings {
    s.webhook.url = Some(url.to_string());
    s.webhook.secret = WebhookSecrets::Many(secrets);
    s.webhook.timeout = Duration::from_millis(300);
    s.webhook.retry_min = Duration::from_millis(50);
    s.webhook.retry_max = Duration::from_millis(200);
    s.webhook.max_attempts = 5;
    s
}

async fn delivery(db: &SqlitePool, event_id: &str, receiver: &str) -> Option<(String, i64)> {
    sqlx::query_as(
        "SELECT status, attempts FROM event_deliveries WHERE event_id = ?1 AND receiver = ?2",
    )
    .bind(event_id)
    .bind(receiver)
    .fetch_optional(db)
    .await
    .unwrap()
}

async fn event_of(db: &SqlitePool, md5: &str) -> String {
    wait_for("the payment's event", LIMIT, || async {
        sqlx::query_scalar("SELECT id FROM payment_events WHERE md5 = ?1")
            .bind(md5)
            .fetch_optional(db)
            .await
            .unwrap()
    })
    .await
}

async fn wait_delivery(db: &SqlitePool, id: &str, receiver: &str, status: &str) -> i64 {
    wait_for(&format!("{receiver} delivery {status}"), LIMIT, || async {
        delivery(db, id, receiver)
            .await
            .filter(|(s, _)| s == status)
            .map(|(_, n)| n)
    })
    .await
}

#[tokio::test]
async fn a_paid_payment_reaches_the_receiver_signed_and_verifiable_with_either_rotating_secret() {
    let e = env().await;
    let old = secret(1);
    // The receiver still holds the old secret while the daemon signs with both.
    let rx = Receiver::start(&old, &[], Reply::Status(200)).await;
    let s = with_webhook(e.settings(), &rx.url(), vec![secret(2), old.clone()]);
    let db = e.merchant(&s).await;
    let d = start(s);
    let md5 = e.payment(&db, "1.50", "USD", paid_after(0)).await;
    assert_eq!(final_status(&db, &md5, LIMIT).await, "paid");
    let id = event_of(&db, &md5).await;
    assert_eq!(wait_delivery(&db, &id, "webhook", "delivered").await, 1);
    d.stop().await;
    let got = rx.got();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].id, id, "the event id is the webhook-id");
    assert!(got[0].valid, "the receiver verified the signature");
    let body: serde_json::Value = serde_json::from_str(&got[0].body).unwrap();
    assert_eq!(body["type"], "payment.paid");
    assert_eq!(body["data"]["md5"], md5.as_str());
    assert_eq!(body["data"]["amount"], "1.50");
    assert_eq!(body["data"]["status"], "paid");
    let stored: String = sqlx::query_scalar("SELECT payload FROM payment_events WHERE id = ?1")
        .bind(&id)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(
        stored, got[0].body,
        "the stored payload is sent byte for byte"
    );
}

#[tokio::test]
async fn a_receiver_answering_500_twice_then_200_gets_the_same_webhook_id_each_time() {
    let e = env().await;
    let key = secret(3);
    let rx = Receiver::start(
        &key,
        &[Reply::Status(500), Reply::Status(500)],
        Reply::Status(200),
    )
    .await;
    let s = with_webhook(e.settings(), &rx.url(), vec![key]);
    let db = e.merchant(&s).await;
    let d = start(s);
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let id = event_of(&db, &md5).await;
    assert_eq!(wait_delivery(&db, &id, "webhook", "delivered").await, 3);
    d.stop().await;
    let got = rx.got();
    assert_eq!(got.len(), 3);
    assert!(got.iter().all(|g| g.id == id && g.valid), "{got:?}");
    let codes: Vec<Option<i64>> = sqlx::query_scalar(
        "SELECT http_status FROM event_attempts WHERE event_id = ?1 ORDER BY attempt",
    )
    .bind(&id)
    .fetch_all(&db)
    .await
    .unwrap();
    assert_eq!(codes, vec![Some(500), Some(500), Some(200)]);
}

#[tokio::test]
async fn a_hanging_receiver_is_timed_out_and_the_event_retried() {
    let e = env().await;
    let key = secret(4);
    let rx = Receiver::start(&key, &[Reply::Hang], Reply::Status(204)).await;
    let s = with_webhook(e.settings(), &rx.url(), vec![key]);
    let db = e.merchant(&s).await;
    let d = start(s);
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let id = event_of(&db, &md5).await;
    assert_eq!(wait_delivery(&db, &id, "webhook", "delivered").await, 2);
    d.stop().await;
    let (error, latency): (String, i64) = sqlx::query_as(
        "SELECT error, latency_ms FROM event_attempts WHERE event_id = ?1 AND attempt = 1",
    )
    .bind(&id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert!(error.contains("timed out"), "{error}");
    assert!(
        latency < 5_000,
        "the timeout (300 ms) cut it short: {latency} ms"
    );
}

#[tokio::test]
async fn a_receiver_that_keeps_failing_ends_dead_after_max_attempts() {
    let e = env().await;
    let key = secret(5);
    let rx = Receiver::start(&key, &[], Reply::Status(302)).await;
    let mut s = with_webhook(e.settings(), &rx.url(), vec![key]);
    s.webhook.max_attempts = 3;
    let db = e.merchant(&s).await;
    let d = start(s);
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let id = event_of(&db, &md5).await;
    assert_eq!(wait_delivery(&db, &id, "webhook", "dead").await, 3);
    d.stop().await;
    assert_eq!(
        rx.got().len(),
        3,
        "a redirect is not followed, nor delivered"
    );
}

#[tokio::test]
async fn confirmations_keep_flowing_while_every_delivery_hangs() {
    let e = env().await;
    let key = secret(6);
    let rx = Receiver::start(&key, &[], Reply::Hang).await;
    let mut s = with_webhook(e.settings(), &rx.url(), vec![key]);
    // Every attempt hangs for the whole timeout, far longer than the test.
    s.webhook.timeout = Duration::from_secs(60);
    let db = e.merchant(&s).await;
    let d = start(s);
    let mut md5s = Vec::new();
    for i in 0..40 {
        md5s.push(e.payment(&db, "1", "USD", paid_after(i * 20)).await);
    }
    for md5 in &md5s {
        assert_eq!(final_status(&db, md5, LIMIT).await, "paid");
    }
    let events: i64 = sqlx::query_scalar("SELECT count(*) FROM payment_events")
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(events, 40);
    assert!(
        rx.state.hanging.load(Ordering::SeqCst) >= 1,
        "deliveries were hanging meanwhile"
    );
    let delivered: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_deliveries WHERE status = 'delivered'")
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(
        delivered, 0,
        "no delivery finished, yet every payment was confirmed"
    );
    d.stop().await;
}

#[tokio::test]
async fn a_thousand_final_statuses_are_a_thousand_events_delivered_none_lost() {
    let e = env().await;
    let key = secret(7);
    // Some failures on the way, to exercise retries under load.
    let script: Vec<Reply> = (0..50).map(|_| Reply::Status(503)).collect();
    let rx = Receiver::start(&key, &script, Reply::Status(200)).await;
    let mut s = with_webhook(e.settings(), &rx.url(), vec![key]);
    s.poller.bulk = BulkMode::Always;
    s.poller.bulk_flush = Duration::from_millis(50);
    s.poller.max_requests_per_second = 500.0;
    s.webhook.max_attempts = 20;
    let db = e.merchant(&s).await;
    let mut md5s = HashSet::new();
    for _ in 0..1000 {
        md5s.insert(e.payment(&db, "1", "USD", paid_after(0)).await);
    }
    let d = start(s);
    wait_for("1,000 deliveries", Duration::from_secs(60), || async {
        let n: i64 =
            sqlx::query_scalar("SELECT count(*) FROM event_deliveries WHERE status = 'delivered'")
                .fetch_one(&db)
                .await
                .unwrap();
        (n == 1000).then_some(())
    })
    .await;
    d.stop().await;
    let got = rx.got();
    assert!(got.iter().all(|g| g.valid));
    let ids: HashSet<&str> = got.iter().map(|g| g.id.as_str()).collect();
    assert_eq!(ids.len(), 1000, "every event reached the receiver");
    let seen: HashSet<String> = got
        .iter()
        .map(|g| {
            let v: serde_json::Value = serde_json::from_str(&g.body).unwrap();
            v["data"]["md5"].as_str().unwrap().to_string()
        })
        .collect();
    assert_eq!(seen, md5s, "one event per payment");
}

fn script(dir: &std::path::Path, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{text}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_str().unwrap().to_string()
}

#[tokio::test]
async fn the_hook_gets_the_event_on_stdin_and_is_retried_until_it_exits_0() {
    let e = env().await;
    let dir = e.dir.path();
    // Fails (exit 3) on its first run, then saves the event and exits 0.
    let hook = script(
        dir,
        "hook.sh",
        &format!(
            "if [ ! -e {d}/ran ]; then touch {d}/ran; echo not yet >&2; exit 3; fi\ncat > {d}/event.json\necho \"$BAKONG_POLLER_EVENT_ID\" > {d}/id\nexit 0",
            d = dir.display()
        ),
    );
    let mut s = e.settings();
    s.hook.command = Some(vec![hook]);
    s.hook.timeout = Duration::from_secs(5);
    s.webhook.retry_min = Duration::from_millis(50);
    s.webhook.retry_max = Duration::from_millis(100);
    let db = e.merchant(&s).await;
    let d = start(s);
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let id = event_of(&db, &md5).await;
    assert_eq!(wait_delivery(&db, &id, "hook", "delivered").await, 2);
    d.stop().await;
    let event: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.join("event.json")).unwrap()).unwrap();
    assert_eq!(event["data"]["md5"], md5.as_str());
    assert_eq!(std::fs::read_to_string(dir.join("id")).unwrap().trim(), id);
    let first: (Option<i64>, String, String) = sqlx::query_as(
        "SELECT http_status, error, answer FROM event_attempts WHERE event_id = ?1 AND attempt = 1",
    )
    .bind(&id)
    .fetch_one(&db)
    .await
    .unwrap();
    assert_eq!(first, (Some(3), "exit code 3".into(), "not yet".into()));
}

#[tokio::test]
async fn a_hanging_hook_is_killed_with_what_it_started_after_its_timeout() {
    let e = env().await;
    let dir = e.dir.path();
    let hook = script(
        dir,
        "slow.sh",
        &format!(
            "sh -c 'echo $$ >> {d}/children; sleep 1; touch {d}/survived' &\nsleep 30",
            d = dir.display()
        ),
    );
    let mut s = e.settings();
    s.hook.command = Some(vec![hook]);
    s.hook.timeout = Duration::from_millis(200);
    s.webhook.max_attempts = 2;
    s.webhook.retry_min = Duration::from_millis(50);
    s.webhook.retry_max = Duration::from_millis(50);
    let db = e.merchant(&s).await;
    let d = start(s);
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let id = event_of(&db, &md5).await;
    assert_eq!(wait_delivery(&db, &id, "hook", "dead").await, 2);
    d.stop().await;
    let errors: Vec<String> =
        sqlx::query_scalar("SELECT error FROM event_attempts WHERE event_id = ?1")
            .bind(&id)
            .fetch_all(&db)
            .await
            .unwrap();
    assert!(errors.iter().all(|e| e.contains("timed out")), "{errors:?}");
    // Not a quiet window: each run's background child (it would touch the
    // file after 1 s) is seen gone, then the file is looked for.
    let children: Vec<i32> = wait_for("both runs' children", Duration::from_secs(20), || async {
        let text = std::fs::read_to_string(dir.join("children")).unwrap_or_default();
        let pids: Vec<i32> = text.lines().filter_map(|l| l.trim().parse().ok()).collect();
        (pids.len() == 2).then_some(pids)
    })
    .await;
    let gone = |pid: i32| {
        // A zombie no one has reaped yet counts as gone.
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(pid), None).is_err()
            || std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|st| {
                st.rsplit_once(')')
                    .is_some_and(|(_, r)| r.trim_start().starts_with('Z'))
            })
    };
    wait_for(
        "the hooks' children to be gone",
        Duration::from_secs(20),
        || async { children.iter().all(|p| gone(*p)).then_some(()) },
    )
    .await;
    assert!(
        !dir.join("survived").exists(),
        "the hook's process group was killed"
    );
}

fn webhook_toml(url: &str, secret: &str, timeout_ms: u64) -> String {
    format!(
        "\n[webhook]\nurl = \"{url}\"\nsecret = \"{secret}\"\ntimeout = \"{timeout_ms}ms\"\nretry_min = \"50ms\"\nretry_max = \"200ms\"\nmax_attempts = 5\n"
    )
}

// The receiver must answer while this thread waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_during_a_delivery_delivers_the_event_after_restart() {
    let e = env().await;
    let key = secret(8);
    let rx = Receiver::start(&key, &[Reply::Hang], Reply::Status(200)).await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    let cfg = e.config_file(&s, &webhook_toml(&rx.url(), &key, 1000));
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let mut child = bin!()
        .config(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(e.dir.path().join("run1.log")).unwrap())
        .spawn();
    wait_for("a delivery in flight", LIMIT, || async {
        (rx.state.hanging.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
    child.wait().unwrap();
    let id = event_of(&db, &md5).await;
    assert_eq!(delivery(&db, &id, "webhook").await.unwrap().0, "pending");
    let mut child = bin!()
        .config(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(e.dir.path().join("run2.log")).unwrap())
        .spawn();
    wait_delivery(&db, &id, "webhook", "delivered").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let got = rx.got();
    assert!(
        got.len() >= 2 && got.iter().all(|g| g.id == id && g.valid),
        "{got:?}"
    );
}

// The receiver must answer while this thread waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_show_one_line_per_attempt_and_never_the_secret_or_url_credentials() {
    let e = env().await;
    let key = secret(9);
    let rx = Receiver::start(&key, &[Reply::Status(500)], Reply::Status(200)).await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    let url = format!("http://merchant:hunter2-password@{}/events", rx.addr);
    let cfg = e.config_file(&s, &webhook_toml(&url, &key, 1000));
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let log = e.dir.path().join("daemon.log");
    let mut child = bin!()
        .config(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn();
    let id = event_of(&db, &md5).await;
    wait_delivery(&db, &id, "webhook", "delivered").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let text = std::fs::read_to_string(&log).unwrap();
    let b64 = key.trim_start_matches("whsec_");
    assert!(!text.contains(b64), "the secret leaked: {text}");
    assert!(!text.contains("hunter2"), "the URL password leaked: {text}");
    let attempts: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|v| v["event_id"] == id.as_str())
        .collect();
    assert_eq!(attempts.len(), 2, "one line per attempt: {text}");
    let first = &attempts[0];
    assert_eq!(first["attempt"], 1);
    assert_eq!(first["status"], 500);
    assert_eq!(first["event_type"], "payment.paid");
    assert_eq!(first["md5"], md5.as_str());
    assert_eq!(first["host"], rx.addr.to_string());
    assert!(first["latency_ms"].is_number());
    assert_eq!(attempts[1]["outcome"], "delivered");
}

// The receiver must answer while this thread waits for the binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_events_commands_list_show_redeliver_and_test() {
    let e = env().await;
    let key = secret(10);
    let rx = Receiver::start(&key, &[], Reply::Status(200)).await;
    let s = with_webhook(e.settings(), &rx.url(), vec![key.clone()]);
    let db = e.merchant(&s).await;
    let d = start(s.clone());
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let id = event_of(&db, &md5).await;
    wait_delivery(&db, &id, "webhook", "delivered").await;
    d.stop().await;
    let cfg = e.config_file(&s, &webhook_toml(&rx.url(), &key, 1000));
    let run = |args: &[&str]| {
        let mut full = vec!["--config", cfg.to_str().unwrap(), "--json", "events"];
        full.extend_from_slice(args);
        let out = bin!().args(&full).output();
        let v: serde_json::Value =
            serde_json::from_str(&out.stdout).unwrap_or(serde_json::Value::Null);
        (Some(out.code), v, out.stderr)
    };
    let (code, list, _) = run(&["list", "--status", "delivered"]);
    assert_eq!(code, Some(0));
    assert_eq!(list[0]["id"], id.as_str());
    assert_eq!(list[0]["deliveries"][0]["status"], "delivered");
    let (code, list, _) = run(&["list", "--status", "dead"]);
    assert_eq!((code, list), (Some(0), serde_json::json!([])));
    let (code, shown, _) = run(&["show", &id]);
    assert_eq!(code, Some(0));
    assert_eq!(shown["payload"]["data"]["md5"], md5.as_str());
    assert_eq!(shown["attempts"][0]["http_status"], 200);
    let (code, _, err) = run(&["show", "msg_01JDZ3K6C9V4Q8M2T7R5X1W0YB"]);
    assert_eq!(code, Some(3), "{err}");
    let (code, _, err) = run(&["show", "42"]);
    assert_eq!(code, Some(2), "{err}");
    let (code, r, _) = run(&["redeliver", &id]);
    assert_eq!(
        (code, r["pending"].clone()),
        (Some(0), serde_json::json!(1))
    );
    assert_eq!(
        delivery(&db, &id, "webhook").await.unwrap(),
        ("pending".into(), 0)
    );
    let before = rx.got().len();
    let (code, t, err) = run(&["test"]);
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(t["answers"][0]["status"], 200);
    let got = rx.got();
    assert_eq!(got.len(), before + 1);
    assert!(got[before].valid && got[before].body.contains("webhook.test"));
}

#[tokio::test]
async fn bad_webhook_and_hook_settings_exit_2_naming_the_key_without_echoing_the_secret() {
    let e = env().await;
    let s = e.settings();
    let leaked = "whsec_c2VjcmV0LWJ1dC10b28tc2hvcnQ=";
    for (extra, key) in [
        (
            format!(
                "[webhook]\nurl = \"ftp://shop.example/x\"\nsecret = \"{}\"\n",
                secret(1)
            ),
            "webhook.url",
        ),
        (
            "[webhook]\nurl = \"https://shop.example/x\"\n".to_string(),
            "webhook.secret",
        ),
        (
            format!("[webhook]\nurl = \"https://shop.example/x\"\nsecret = \"{leaked}\"\n"),
            "webhook.secret",
        ),
        (
            format!("[webhook]\nsecret = [\"{}\", \"nope\"]\n", secret(1)),
            "webhook.secret",
        ),
        (
            "[webhook]\nretry_min = \"1h\"\nretry_max = \"1m\"\n".to_string(),
            "webhook.retry_max",
        ),
        (
            "[webhook]\nmax_attempts = 0\n".to_string(),
            "webhook.max_attempts",
        ),
        ("[hook]\ncommand = []\n".to_string(), "hook.command"),
        (
            "[hook]\ncommand = [\"/bin/true\"]\nshell = true\n".to_string(),
            "shell",
        ),
    ] {
        let cfg = e.config_file(&s, &extra);
        let out = bin!().config(&cfg).arg("run").output();
        let err = out.stderr.as_str();
        assert_eq!(out.code, 2, "{extra}: {err}");
        assert!(err.contains(key), "{extra}: {err}");
        assert!(!err.contains("c2VjcmV0"), "the secret was echoed: {err}");
    }
}

/// Learns where the metrics listener was bound.
#[derive(Default)]
struct Bound(Mutex<Option<SocketAddr>>);

impl bakong_poller::poller::Observer for Bound {
    fn listening(&self, addr: SocketAddr) {
        *self.0.lock().unwrap() = Some(addr);
    }
}

fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find(|l| l.starts_with(series) && l[series.len()..].starts_with(' '))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

#[tokio::test]
async fn metrics_count_delivery_attempts_and_show_pending_and_dead_deliveries() {
    let e = env().await;
    let key = secret(11);
    let rx = Receiver::start(&key, &[Reply::Status(500)], Reply::Status(200)).await;
    let mut s = with_webhook(e.settings(), &rx.url(), vec![key]);
    s.metrics.listen = Some("127.0.0.1:0".into());
    let db = e.merchant(&s).await;
    let bound = Arc::new(Bound::default());
    let stop = tokio_util::sync::CancellationToken::new();
    let join = tokio::spawn(bakong_poller::daemon::run(s, stop.clone(), bound.clone()));
    let addr = wait_for("the metrics listener", LIMIT, || {
        let a = *bound.0.lock().unwrap();
        async move { a }
    })
    .await;
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let id = event_of(&db, &md5).await;
    wait_delivery(&db, &id, "webhook", "delivered").await;
    let text = reqwest::get(format!("http://{addr}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    stop.cancel();
    join.await.unwrap().unwrap();
    let attempts = "bakong_poller_event_delivery_attempts_total";
    assert_eq!(
        sample(&text, &format!("{attempts}{{outcome=\"delivered\"}}")),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, &format!("{attempts}{{outcome=\"retried\"}}")),
        Some(1.0)
    );
    assert_eq!(
        sample(&text, &format!("{attempts}{{outcome=\"dead\"}}")),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "bakong_poller_event_deliveries_pending"),
        Some(0.0)
    );
    assert_eq!(
        sample(&text, "bakong_poller_event_deliveries_dead"),
        Some(0.0)
    );
}

#[tokio::test]
async fn a_hook_never_sees_the_token_the_daemon_got_from_its_environment() {
    let e = env().await;
    let dir = e.dir.path();
    let hook = script(dir, "env.sh", &format!("env > {}/hook-env", dir.display()));
    let s = e.settings();
    let db = e.merchant(&s).await;
    let cfg = e.config_file(
        &s,
        &format!("\n[hook]\ncommand = [\"{hook}\"]\ntimeout = \"5s\"\n"),
    );
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let mut child = bin!()
        .config(&cfg)
        .arg("run")
        .env("BAKONG_POLLER__BAKONG__TOKEN", &e.token)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    let id = event_of(&db, &md5).await;
    wait_delivery(&db, &id, "hook", "delivered").await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().unwrap().code(), Some(0));
    let env = std::fs::read_to_string(dir.join("hook-env")).unwrap();
    assert!(
        env.contains(&format!("BAKONG_POLLER_EVENT_ID={id}")),
        "{env}"
    );
    assert!(!env.contains(&e.token), "the token reached the hook");
    assert!(!env.contains("BAKONG_POLLER__"), "{env}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_a_hanging_delivery_exits_0_in_time_and_gives_the_delivery_back() {
    let e = env().await;
    let key = secret(12);
    let rx = Receiver::start(&key, &[], Reply::Hang).await;
    let s = e.settings();
    let db = e.merchant(&s).await;
    // A 60 s timeout: only shutdown can end the attempt in time.
    let cfg = e.config_file(&s, &webhook_toml(&rx.url(), &key, 60_000));
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let mut child = bin!()
        .config(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn();
    wait_for("a delivery in flight", LIMIT, || async {
        (rx.state.hanging.load(Ordering::SeqCst) >= 1).then_some(())
    })
    .await;
    let sent = std::time::Instant::now();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let code = wait_for("the daemon to exit", Duration::from_secs(15), || {
        let r = child.try_wait().unwrap();
        async move { r }
    })
    .await;
    assert_eq!(code.code(), Some(0));
    assert!(
        sent.elapsed() < Duration::from_secs(10),
        "took {:?}",
        sent.elapsed()
    );
    let id = event_of(&db, &md5).await;
    let (status, next): (String, i64) =
        sqlx::query_as("SELECT status, next_attempt_at FROM event_deliveries WHERE event_id = ?1")
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(status, "pending");
    assert!(
        next <= chrono::Utc::now().timestamp_millis(),
        "given back, not left leased for two minutes"
    );
}

#[tokio::test]
async fn a_paid_payment_reaches_the_receiver_signed_with_postgres_as_the_database() {
    let Some(url) = crate::pg::database().await else {
        return;
    };
    let e = env().await;
    let key = secret(3);
    // The first attempt fails: the retry goes through the PostgreSQL lease.
    let rx = Receiver::start(&key, &[Reply::Status(500)], Reply::Status(200)).await;
    let mut s = with_webhook(e.settings(), &rx.url(), vec![key.clone()]);
    s.database.url = url.clone();
    bakong_poller::app::open_store(&s)
        .await
        .unwrap()
        .close()
        .await;
    let db = sqlx::PgPool::connect(&url).await.unwrap();
    let md5 = new_md5();
    let mut t = paid_after(0);
    t.md5 = Some(md5.clone());
    t.amount = Some("1.50".parse().unwrap());
    t.currency = Some("USD".parse().unwrap());
    t.to_account = Some(ACCOUNT.into());
    e.sim.sim.add_transaction(t).unwrap();
    let d = start(s);
    sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES ($1, $2::numeric, 'USD')")
        .bind(&md5)
        .bind("1.50")
        .execute(&db)
        .await
        .unwrap();
    let (id, payload): (String, String) = wait_for("the payment's event", LIMIT, || async {
        sqlx::query_as("SELECT id, payload FROM payment_events WHERE md5 = $1")
            .bind(&md5)
            .fetch_optional(&db)
            .await
            .unwrap()
    })
    .await;
    let attempts: i64 = wait_for("the webhook delivered", LIMIT, || async {
        sqlx::query_scalar(
            "SELECT attempts FROM event_deliveries
             WHERE event_id = $1 AND receiver = 'webhook' AND status = 'delivered'",
        )
        .bind(&id)
        .fetch_optional(&db)
        .await
        .unwrap()
    })
    .await;
    d.stop().await;
    assert_eq!(attempts, 2, "one 500, then delivered");
    let status: String = sqlx::query_scalar("SELECT status FROM payments WHERE md5 = $1")
        .bind(&md5)
        .fetch_one(&db)
        .await
        .unwrap();
    assert_eq!(status, "paid");
    let got = rx.got();
    assert_eq!(got.len(), 2);
    for g in &got {
        assert_eq!(g.id, id, "the same webhook-id on every attempt");
        assert!(g.valid, "the receiver verified the signature");
        assert_eq!(g.body, payload, "the stored payload is sent byte for byte");
    }
    let body: serde_json::Value = serde_json::from_str(&payload).unwrap();
    assert_eq!(body["type"], "payment.paid");
    assert_eq!(body["data"]["md5"], md5.as_str());
    assert_eq!(body["data"]["amount"], "1.50");
    let recorded: i64 =
        sqlx::query_scalar("SELECT count(*) FROM event_attempts WHERE event_id = $1")
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert_eq!(recorded, 2, "each attempt is recorded");
}

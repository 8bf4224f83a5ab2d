//! Issue 20 (input hardening): exact amounts, untrusted HTTP statuses,
//! redaction of odd input, static QRs checked at their deadline, and
//! duration arithmetic that cannot panic. A scripted fake Bakong on
//! 127.0.0.1 answers what the simulator cannot (raw amount texts, 3xx
//! statuses, a static QR that is paid later).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::Path;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::Router;
use bakong_poller::app;
use bakong_poller::bakong::{Client, Error};
use bakong_poller::config::{BulkMode, Settings};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::helpers::*;

const HASH: &str = "8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9";

/// One scripted answer: status, extra headers, body.
pub struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: String,
}

impl Reply {
    fn json(status: u16, body: String) -> Self {
        Reply {
            status,
            headers: Vec::new(),
            body,
        }
    }
}

type Script = dyn Fn(&str, &Value, usize) -> Reply + Send + Sync;

/// A fake Bakong: every `POST /v1/{endpoint}` is answered by the script,
/// which gets the endpoint, the JSON body and how many requests came
/// before this one.
pub struct Fake {
    pub base_url: String,
    pub hits: Arc<Mutex<Vec<String>>>,
    stop: CancellationToken,
}

impl Drop for Fake {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

pub async fn fake(script: impl Fn(&str, &Value, usize) -> Reply + Send + Sync + 'static) -> Fake {
    let script: Arc<Script> = Arc::new(script);
    let hits = Arc::new(Mutex::new(Vec::new()));
    let h = hits.clone();
    let app = Router::new().route(
        "/v1/{endpoint}",
        post(move |Path(endpoint): Path<String>, body: Bytes| {
            let script = script.clone();
            let hits = h.clone();
            async move {
                let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let n = {
                    let mut hits = hits.lock().unwrap();
                    hits.push(endpoint.clone());
                    hits.len() - 1
                };
                let r = script(&endpoint, &v, n);
                let mut resp: Response = r.body.into_response();
                *resp.status_mut() = axum::http::StatusCode::from_u16(r.status).unwrap();
                resp.headers_mut().insert(
                    "content-type",
                    axum::http::HeaderValue::from_static("application/json"),
                );
                for (k, v) in r.headers {
                    resp.headers_mut()
                        .insert(k, axum::http::HeaderValue::from_str(&v).unwrap());
                }
                resp
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { s.cancelled().await })
            .await
            .unwrap();
    });
    Fake {
        base_url: format!("http://{addr}"),
        hits,
        stop,
    }
}

/// A transaction's JSON with `amount` written verbatim (raw JSON text).
fn tx_json(amount: &str, currency: &str) -> String {
    format!(
        r#"{{"hash":"{HASH}","fromAccountId":"payer@bank","toAccountId":"{ACCOUNT}","currency":"{currency}","amount":{amount},"description":null,"createdDateMs":1700000000000}}"#
    )
}

fn found(amount: &str, currency: &str) -> String {
    format!(
        r#"{{"responseCode":0,"responseMessage":"Getting transaction successfully.","errorCode":null,"data":{}}}"#,
        tx_json(amount, currency)
    )
}

fn not_found() -> String {
    r#"{"responseCode":1,"responseMessage":"Transaction could not be found. Please try again.","errorCode":1,"data":null}"#.into()
}

/// A list answer: `SUCCESS` with `amount` (raw text) for every md5 asked.
fn list_found(asked: &Value, amount: &str, currency: &str) -> String {
    let items: Vec<String> = asked
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|m| {
            format!(
                r#"{{"md5":{m},"status":"SUCCESS","message":null,"data":{}}}"#,
                tx_json(amount, currency)
            )
        })
        .collect();
    format!(
        r#"{{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":[{}]}}"#,
        items.join(",")
    )
}

fn list_not_found(asked: &Value) -> String {
    let items: Vec<String> = asked
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|m| format!(r#"{{"md5":{m},"status":"NOT_FOUND","message":null,"data":null}}"#))
        .collect();
    format!(
        r#"{{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":[{}]}}"#,
        items.join(",")
    )
}

/// Test settings pointed at `base` (the simulator of `e` stays unused).
fn settings_for(e: &TestEnv, base: &str) -> Settings {
    let mut s = e.settings();
    s.bakong.base_url = base.to_string();
    s
}

fn client_for(e: &TestEnv, base: &str) -> Client {
    app::build_client(&settings_for(e, base), true).unwrap()
}

async fn insert(db: &sqlx::SqlitePool, md5: &str, amount: &str, currency: &str) {
    sqlx::query("INSERT INTO payments (md5, amount, currency) VALUES (?1, ?2, ?3)")
        .bind(md5)
        .bind(amount)
        .bind(currency)
        .execute(db)
        .await
        .unwrap();
}

// ---- Item 8: amounts read exactly ----

/// Amount texts that are not exactly 5.00 USD, some of which a float
/// rounds to 5.
const NOT_FIVE: [&str; 4] = [
    "4.9999999999999999999",
    "5.0000000000000000001",
    "\"4.9999999999999999999\"",
    "5.001",
];

#[tokio::test]
async fn an_amount_a_float_would_round_to_the_expected_one_is_never_read_as_it() {
    let e = env().await;
    for amount in NOT_FIVE {
        let f = fake(move |endpoint, body, _| match endpoint {
            "check_transaction_by_md5_list" => Reply::json(200, list_found(body, amount, "USD")),
            _ => Reply::json(200, found(amount, "USD")),
        })
        .await;
        let c = client_for(&e, &f.base_url);
        match c.check_md5(&new_md5()).await {
            Ok(tx) => assert_ne!(tx.amount, "5".parse().unwrap(), "{amount} read as 5"),
            Err(Error::Decode { .. }) => {}
            Err(other) => panic!("{amount}: {other}"),
        }
        let md5s = vec![new_md5()];
        let b = c.check_md5_batch(&md5s).await.unwrap();
        match &b[0] {
            Ok(tx) => assert_ne!(tx.amount, "5".parse().unwrap(), "list: {amount} read as 5"),
            Err(Error::Decode { .. }) => {}
            Err(other) => panic!("list {amount}: {other}"),
        }
    }
}

#[tokio::test]
async fn amounts_are_read_exactly_as_numbers_or_strings() {
    let e = env().await;
    for (amount, currency, want) in [
        ("1.0", "USD", "1"),
        ("1.50", "USD", "1.5"),
        ("\"1.50\"", "USD", "1.5"),
        ("9800", "KHR", "9800"),
        ("1e2", "KHR", "100"),
        ("1.5E+1", "USD", "15"),
        ("\"1e2\"", "KHR", "100"),
    ] {
        let body = found(amount, currency);
        let f = fake(move |_, _, _| Reply::json(200, body.clone())).await;
        let c = client_for(&e, &f.base_url);
        let tx = c
            .check_md5(&new_md5())
            .await
            .unwrap_or_else(|err| panic!("{amount}: {err}"));
        assert_eq!(tx.amount, want.parse().unwrap(), "{amount}");
    }
    // What cannot be read exactly is unreadable, never rounded.
    for amount in [
        "1e400",
        "0.00000000000000000000000000000001",
        "123456789012345678901234567890.5",
        "\"1,50\"",
        "\"1.5 \"",
        "\"0x10\"",
    ] {
        let body = found(amount, "USD");
        let f = fake(move |_, _, _| Reply::json(200, body.clone())).await;
        let c = client_for(&e, &f.base_url);
        let got = c.check_md5(&new_md5()).await;
        assert!(
            matches!(got, Err(Error::Decode { .. })),
            "{amount}: {got:?}"
        );
    }
}

/// The daemon end to end: a 5.00 USD row answered `amount_text` (single
/// lookups, then the md5 list) ends `mismatch`, never `paid`.
async fn daemon_records_a_mismatch_for(amount_text: &'static str, bulk: BulkMode) {
    let e = env().await;
    let f = fake(move |endpoint, body, _| match endpoint {
        "check_transaction_by_md5" => Reply::json(200, found(amount_text, "USD")),
        "check_transaction_by_md5_list" => Reply::json(200, list_found(body, amount_text, "USD")),
        _ => Reply::json(200, not_found()),
    })
    .await;
    let mut s = settings_for(&e, &f.base_url);
    s.poller.bulk = bulk;
    let db = e.merchant(&s).await;
    let md5 = new_md5();
    insert(&db, &md5, "5.00", "USD").await;
    let d = start(s);
    let st = final_status(&db, &md5, Duration::from_secs(10)).await;
    d.stop().await;
    assert_eq!(st, "mismatch", "{amount_text} via {bulk:?}");
}

#[tokio::test]
async fn a_row_of_5_usd_answered_4_9999999999999999999_ends_mismatch_single_and_list() {
    daemon_records_a_mismatch_for("4.9999999999999999999", BulkMode::Never).await;
    daemon_records_a_mismatch_for("4.9999999999999999999", BulkMode::Always).await;
}

#[tokio::test]
async fn a_row_of_5_usd_answered_5_001_ends_mismatch_single_and_list() {
    daemon_records_a_mismatch_for("5.001", BulkMode::Never).await;
    daemon_records_a_mismatch_for("5.001", BulkMode::Always).await;
}

// ---- Item 9: only documented statuses are trusted ----

const UNTRUSTED: [u16; 9] = [301, 302, 303, 307, 308, 418, 500, 502, 503];

#[tokio::test]
async fn a_success_or_not_found_envelope_under_an_untrusted_status_is_a_transient_error() {
    let e = env().await;
    for status in UNTRUSTED {
        for found_it in [true, false] {
            let f = fake(move |endpoint, body, _| {
                let body = match (endpoint, found_it) {
                    ("check_transaction_by_md5_list", true) => list_found(body, "1.50", "USD"),
                    ("check_transaction_by_md5_list", false) => list_not_found(body),
                    (_, true) => found("1.50", "USD"),
                    (_, false) => not_found(),
                };
                let mut r = Reply::json(status, body);
                // A redirect to a path of this same fake that answers 200.
                r.headers
                    .push(("location", "/v1/check_transaction_by_md5".into()));
                r
            })
            .await;
            let c = client_for(&e, &f.base_url);
            let single = c.check_md5(&new_md5()).await;
            assert!(
                matches!(single, Err(ref err) if !err.is_answer()),
                "single, HTTP {status}, found {found_it}: {single:?}"
            );
            let md5s = vec![new_md5(), new_md5()];
            match c.check_md5_batch(&md5s).await {
                Err(err) => assert!(!err.is_answer(), "list {status}: {err}"),
                Ok(answers) => {
                    for a in answers {
                        assert!(
                            matches!(a, Err(ref err) if !err.is_answer()),
                            "list, HTTP {status}, found {found_it}: {a:?}"
                        );
                    }
                }
            }
            // No redirect was followed: every request went to the one
            // endpoint asked.
            let hits = f.hits.lock().unwrap().clone();
            assert!(
                hits.len() <= 4,
                "HTTP {status}: redirects followed? {hits:?}"
            );
        }
    }
}

#[tokio::test]
async fn a_redirect_to_a_paid_answer_is_not_followed() {
    let e = env().await;
    // The first request gets a 302 to a URL whose answer says paid.
    let f = fake(move |endpoint, _, n| {
        if n == 0 {
            let mut r = Reply::json(302, String::new());
            r.headers.push(("location", format!("/v1/{endpoint}-paid")));
            r
        } else {
            Reply::json(200, found("1.50", "USD"))
        }
    })
    .await;
    let c = client_for(&e, &f.base_url);
    let got = c.check_md5(&new_md5()).await;
    assert!(matches!(got, Err(ref err) if !err.is_answer()), "{got:?}");
    assert_eq!(f.hits.lock().unwrap().len(), 1, "the redirect was followed");
}

#[tokio::test]
async fn documented_4xx_answers_keep_their_meaning() {
    let e = env().await;
    // 400 with an error code is Bakong's answer (missing fields).
    let f = fake(|_, _, _| {
        Reply::json(
            400,
            r#"{"responseCode":1,"responseMessage":"Missing required fields.","errorCode":5,"data":null}"#.into(),
        )
    })
    .await;
    let c = client_for(&e, &f.base_url);
    let got = c.check_md5(&new_md5()).await;
    assert!(matches!(got, Err(Error::Api { code: 5, .. })), "{got:?}");
    // 400 with "not found" is not trusted as not found.
    let f = fake(|_, _, _| Reply::json(400, not_found())).await;
    let c = client_for(&e, &f.base_url);
    let got = c.check_md5(&new_md5()).await;
    assert!(matches!(got, Err(ref err) if !err.is_answer()), "{got:?}");
}

#[tokio::test]
async fn the_daemon_never_finalizes_on_a_302_envelope() {
    let e = env().await;
    let f = fake(|endpoint, body, _| {
        let body = if endpoint == "check_transaction_by_md5_list" {
            list_found(body, "5.00", "USD")
        } else {
            found("5.00", "USD")
        };
        Reply::json(302, body)
    })
    .await;
    let mut s = settings_for(&e, &f.base_url);
    s.poller.expiry_grace = Duration::from_millis(1);
    let db = e.merchant(&s).await;
    let md5 = new_md5();
    insert(&db, &md5, "5.00", "USD").await;
    sqlx::query("UPDATE payments SET expires_at = datetime('now', '-1 minute') WHERE md5 = ?1")
        .bind(&md5)
        .execute(&db)
        .await
        .unwrap();
    let d = start(s);
    // Several checks answered 302: the row stays pending.
    wait_for(
        "three checks or a final status",
        Duration::from_secs(10),
        || async {
            (f.hits.lock().unwrap().len() >= 3 || status(&db, &md5).await != "pending")
                .then_some(())
        },
    )
    .await;
    d.stop().await;
    assert_eq!(status(&db, &md5).await, "pending");
}

// ---- Item 3: redaction never panics ----

/// A Bakong 5xx page in Khmer with a URL right after Khmer text.
const KHMER_PAGE: &str =
    "<html><body>សូមអភ័យទោសhttps://api-bakong.nbc.gov.kh/v1 មិនអាចភ្ជាប់បាន</body></html>";

fn cli(cfg: &std::path::Path, args: &[&str]) -> (Option<i32>, String) {
    let o = bin!().config(cfg).args(args).output();
    (Some(o.code).filter(|c| *c >= 0), o.text())
}

#[tokio::test]
async fn a_khmer_5xx_page_is_a_transient_error_for_the_daemon_and_the_cli() {
    let e = env().await;
    let f = fake(|_, _, _| Reply::json(500, KHMER_PAGE.into())).await;
    let s = settings_for(&e, &f.base_url);
    let c = client_for(&e, &f.base_url);
    let got = c.check_md5(&new_md5()).await;
    assert!(
        matches!(got, Err(Error::Http { status: 500, .. })),
        "{got:?}"
    );
    // The daemon records the error (the row is not left leased).
    let db = e.merchant(&s).await;
    let md5 = new_md5();
    insert(&db, &md5, "1.00", "USD").await;
    let d = start(s.clone());
    wait_for("an error recorded", Duration::from_secs(10), || async {
        let b = bookkeeping(&s, &md5).await;
        (b.errors >= 1).then_some(())
    })
    .await;
    d.stop().await;
    assert_eq!(status(&db, &md5).await, "pending");
    // `check md5` ends with an error, not a panic.
    let cfg = e.config_file(&s, "");
    let (code, out) = cli(&cfg, &["check", "md5", &new_md5()]);
    assert_ne!(code, Some(101), "{out}");
    assert!(!out.contains("panicked"), "{out}");
}

#[tokio::test]
async fn config_check_with_a_non_ascii_character_before_the_scheme_exits_2_cleanly() {
    let e = env().await;
    let s = e.settings();
    for (key, value) in [
        ("database.url", "ខ://app:Pa55word@127.0.0.1/payments"),
        (
            "database.url",
            "ខpostgres://app:Pa55word@127.0.0.1/payments",
        ),
        ("bakong.base_url", "ឃ://ops:Pa55word@relay.example"),
        ("bakong.proxy", "é://ops:Pa55word@127.0.0.1:3128"),
    ] {
        let (section, k) = key.split_once('.').unwrap();
        let cfg = e.config_file(&s, "");
        let text = std::fs::read_to_string(&cfg).unwrap();
        let line = format!("{k} = {}", toml::Value::String(value.into()));
        let text = match (section, k) {
            ("bakong", "proxy") => text.replacen("[bakong]\n", &format!("[bakong]\n{line}\n"), 1),
            ("database", _) => text.replace(&format!("url = \"{}\"", s.database.url), &line),
            _ => text.replace(&format!("base_url = \"{}\"", s.bakong.base_url), &line),
        };
        assert!(text.contains(&line), "{key}: {text}");
        std::fs::write(&cfg, text).unwrap();
        for args in [&["config", "check"][..], &["--json", "config", "check"][..]] {
            let (code, out) = cli(&cfg, args);
            assert_eq!(code, Some(2), "{key} {args:?}: {out}");
            assert!(!out.contains("panicked"), "{key}: {out}");
            assert!(!out.contains("Pa55word"), "{key}: {out}");
            assert!(out.contains(key), "{key} not named: {out}");
        }
    }
}

// ---- Item 4: passwords with URL delimiters ----

#[tokio::test]
async fn config_check_and_run_never_show_a_password_holding_url_delimiters() {
    let e = env().await;
    let s = e.settings();
    for c in ["/", "?", "#", "@", ":", "/?#@:"] {
        let pw = format!("Xk7q{c}Zr9w");
        for (key, value) in [
            (
                "database.url",
                format!("postgres://app:{pw}@127.0.0.1:5432/payments"),
            ),
            ("bakong.proxy", format!("http://ops:{pw}@127.0.0.1:3128")),
            (
                "webhook.url",
                format!("https://hook:{pw}@127.0.0.1:9/bakong/events"),
            ),
        ] {
            let line = |k: &str| format!("{k} = {}", toml::Value::String(value.clone()));
            // A webhook secret that is not one: every config here is refused at
            // validation, so `run` exits too.
            let cfg = e.config_file(&s, "\n[webhook]\nsecret = \"not-a-whsec-secret\"\n");
            let mut text = std::fs::read_to_string(&cfg).unwrap();
            text = match key {
                "database.url" => {
                    text.replace(&format!("url = \"{}\"", s.database.url), &line("url"))
                }
                "bakong.proxy" => {
                    text.replacen("[bakong]\n", &format!("[bakong]\n{}\n", line("proxy")), 1)
                }
                _ => text.replacen("[webhook]\n", &format!("[webhook]\n{}\n", line("url")), 1),
            };
            assert!(text.contains(&value), "{key}: {text}");
            std::fs::write(&cfg, text).unwrap();
            for args in [
                &["config", "check"][..],
                &["--json", "config", "check"][..],
                &["run"][..],
            ] {
                // A PostgreSQL URL that parses makes `run` wait for the
                // database (exit 1 after the pool's timeout): `config
                // check` covers it.
                if args == ["run"] && key == "database.url" && (c == "@" || c == ":") {
                    continue;
                }
                let (code, out) = cli(&cfg, args);
                assert_eq!(code, Some(2), "{key} {args:?}: {out}");
                assert!(
                    !out.contains("Xk7q") && !out.contains("Zr9w"),
                    "{key} = {value:?}, {args:?}: {out}"
                );
            }
        }
    }
}

// ---- Item 12: a static QR answer does not stop the checks ----

fn static_qr_single() -> String {
    r#"{"responseCode":1,"responseMessage":"Sorry, the system does not support static QR code.","errorCode":2,"data":null}"#.into()
}

fn list_static_qr(asked: &Value) -> String {
    let items: Vec<String> = asked
        .as_array()
        .map(|a| a.as_slice())
        .unwrap_or_default()
        .iter()
        .map(|m| format!(r#"{{"md5":{m},"status":"STATIC_QR","message":null,"data":null}}"#))
        .collect();
    format!(
        r#"{{"responseCode":0,"responseMessage":"ok","errorCode":null,"data":[{}]}}"#,
        items.join(",")
    )
}

/// A fake answering "static QR" to the first `static_answers` requests,
/// then (with `then_paid`) a 1.50 USD transaction; the unix ms of every
/// request are kept.
async fn static_then(static_answers: usize, then_paid: bool) -> (Fake, Arc<Mutex<Vec<i64>>>) {
    let times = Arc::new(Mutex::new(Vec::new()));
    let t = times.clone();
    let f = fake(move |endpoint, body, n| {
        t.lock()
            .unwrap()
            .push(chrono::Utc::now().timestamp_millis());
        let list = endpoint == "check_transaction_by_md5_list";
        let body = match (n < static_answers || !then_paid, list) {
            (true, true) => list_static_qr(body),
            (true, false) => static_qr_single(),
            (false, true) => list_found(body, "1.50", "USD"),
            (false, false) => found("1.50", "USD"),
        };
        Reply::json(200, body)
    })
    .await;
    (f, times)
}

#[tokio::test]
async fn a_payment_answered_static_qr_then_paid_before_its_deadline_ends_paid() {
    for bulk in [BulkMode::Never, BulkMode::Always] {
        let e = env().await;
        let (f, _) = static_then(3, true).await;
        let mut s = settings_for(&e, &f.base_url);
        s.poller.bulk = bulk;
        let db = e.merchant(&s).await;
        let md5 = new_md5();
        insert(&db, &md5, "1.50", "USD").await;
        let d = start(s);
        let st = final_status(&db, &md5, Duration::from_secs(10)).await;
        d.stop().await;
        assert_eq!(st, "paid", "{bulk:?}");
    }
}

#[tokio::test]
async fn a_static_qr_never_paid_expires_only_after_a_check_made_after_its_deadline() {
    for bulk in [BulkMode::Never, BulkMode::Always] {
        let e = env().await;
        let (f, times) = static_then(usize::MAX, false).await;
        let mut s = settings_for(&e, &f.base_url);
        s.poller.bulk = bulk;
        s.poller.expiry_grace = Duration::from_millis(300);
        let grace_ms = 300;
        let db = e.merchant(&s).await;
        let md5 = new_md5();
        sqlx::query(
            "INSERT INTO payments (md5, amount, currency, expires_at) VALUES (?1, '1.50', 'USD', datetime('now', '+2 seconds'))",
        )
        .bind(&md5)
        .execute(&db)
        .await
        .unwrap();
        let expires_s: i64 = sqlx::query_scalar(
            "SELECT CAST(strftime('%s', expires_at) AS INTEGER) FROM payments WHERE md5 = ?1",
        )
        .bind(&md5)
        .fetch_one(&db)
        .await
        .unwrap();
        let deadline_ms = expires_s * 1000 + grace_ms;
        let d = start(s);
        let st = final_status(&db, &md5, Duration::from_secs(15)).await;
        d.stop().await;
        assert_eq!(st, "expired", "{bulk:?}");
        let times = times.lock().unwrap().clone();
        assert!(
            times.iter().any(|&t| t >= deadline_ms),
            "{bulk:?}: no check after the deadline {deadline_ms}: {times:?}"
        );
        assert!(
            times.iter().filter(|&&t| t < deadline_ms).count() >= 2,
            "{bulk:?}: checks stopped after the first static QR answer: {times:?}"
        );
    }
}

// ---- Item 13: duration arithmetic that cannot panic ----

#[tokio::test]
async fn config_check_refuses_out_of_range_rates_and_durations_naming_the_key() {
    let e = env().await;
    let s = e.settings();
    for (key, from, to) in [
        (
            "poller.max_requests_per_second",
            "max_requests_per_second = 200.0",
            "max_requests_per_second = 1e-20",
        ),
        (
            "poller.max_requests_per_second",
            "max_requests_per_second = 200.0",
            "max_requests_per_second = 1000000.0",
        ),
        (
            "bakong.timeout",
            "timeout = \"500ms\"",
            "timeout = \"100000h\"",
        ),
        (
            "poller.payment_ttl",
            "payment_ttl = \"30000ms\"",
            "payment_ttl = \"500000000years\"",
        ),
        (
            "poller.max_interval",
            "max_interval = \"200ms\"",
            "max_interval = \"5000years\"",
        ),
    ] {
        let cfg = e.config_file(&s, "");
        let text = std::fs::read_to_string(&cfg).unwrap();
        assert!(text.contains(from), "{from}: {text}");
        std::fs::write(&cfg, text.replacen(from, to, 1)).unwrap();
        let (code, out) = cli(&cfg, &["config", "check"]);
        assert_eq!(code, Some(2), "{to}: {out}");
        assert!(out.contains(key), "{to}: {out}");
        assert!(!out.contains("panicked"), "{to}: {out}");
    }
}

/// A payment created in year 1 (or 1970) with a deadline ahead: it is
/// checked, rescheduled (its age is absurd) and confirmed when paid.
#[tokio::test]
async fn a_row_created_in_year_1_or_1970_is_checked_and_confirmed_without_a_panic() {
    for (created, bulk) in [
        ("0001-01-01 00:00:00", BulkMode::Always),
        ("0001-01-01 00:00:00", BulkMode::Never),
        ("1970-01-01 00:00:00", BulkMode::Always),
    ] {
        let e = env().await;
        let mut s = e.settings();
        s.poller.bulk = bulk;
        s.poller.cadence = Duration::from_secs(2);
        s.poller.max_interval = Duration::from_secs(2);
        // A check task that panics leaves its row leased: a long lease
        // keeps a panic from being hidden by the row's next claim.
        s.poller.lease = Duration::from_secs(60);
        let db = e.merchant(&s).await;
        // Paid 2.5 s after it is registered: the first check (within one
        // 2 s cadence) finds nothing and reschedules by the row's age.
        let md5 = e.payment(&db, "1.50", "USD", paid_after(2500)).await;
        sqlx::query(
            "UPDATE payments SET created_at = ?2, expires_at = datetime('now', '+1 minute') WHERE md5 = ?1",
        )
        .bind(&md5)
        .bind(created)
        .execute(&db)
        .await
        .unwrap();
        let d = start(s);
        let st = final_status(&db, &md5, Duration::from_secs(15)).await;
        d.stop().await;
        assert_eq!(st, "paid", "{created} {bulk:?}");
    }
}

#[tokio::test]
async fn huge_retry_after_values_do_not_panic() {
    let e = env().await;
    for ra in [
        "18446744073709551615",
        "99999999999999999999999999",
        "9223372036854775807",
        "Fri, 31 Dec 9999 23:59:59 GMT",
        "-1",
    ] {
        let f = fake(move |_, _, _| {
            let mut r = Reply::json(429, "{}".into());
            r.headers.push(("retry-after", ra.into()));
            r
        })
        .await;
        let c = client_for(&e, &f.base_url);
        let got = c.check_md5(&new_md5()).await;
        assert!(
            matches!(got, Err(Error::RateLimited { .. })),
            "{ra}: {got:?}"
        );
        // The error's text (logged, stored) is fine too.
        let _ = got.map_err(|e| e.to_string());
    }
}

//! The HTTP API (issue 24) with a real HTTP client, on SQLite and
//! PostgreSQL: every endpoint and error, keys and their revocation,
//! idempotency (sequential and concurrent), paging over 250 payments, a
//! payment created through the API confirmed by the daemon, the QR images
//! and the OpenAPI document.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bakong_poller::api::keys;
use bakong_poller::app::AppError;
use bakong_poller::poller::Observer;
use bakong_poller::store::Store;
use serde_json::{json, Value};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::backends::{backend_env, both, BackendEnv, Db};
use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

both!(
    the_api_opens_reads_and_cancels_a_payment_the_daemon_confirms,
    keys_are_checked_scoped_and_revoked_at_once,
    bad_requests_are_problems_naming_the_field_and_never_stored,
    an_idempotency_key_makes_one_payment_sequentially_and_concurrently,
    a_cursor_pages_through_250_payments_newest_first,
);

#[derive(Default)]
struct ApiBound(Mutex<Option<SocketAddr>>, Mutex<Option<SocketAddr>>);

impl Observer for ApiBound {
    fn api_listening(&self, addr: SocketAddr) {
        *self.0.lock().unwrap() = Some(addr);
    }
    fn listening(&self, addr: SocketAddr) {
        *self.1.lock().unwrap() = Some(addr);
    }
}

pub(crate) struct Api {
    stop: CancellationToken,
    join: JoinHandle<Result<(), AppError>>,
    pub(crate) base: String,
    pub(crate) metrics: String,
    pub(crate) http: reqwest::Client,
    pub(crate) store: Store,
    pub(crate) rw: String,
    pub(crate) ro: String,
}

pub(crate) async fn start_api(b: &BackendEnv) -> Api {
    let mut s = b.settings();
    s.api.listen = Some("127.0.0.1:0".into());
    s.metrics.listen = Some("127.0.0.1:0".into());
    s.api.public_url = Some("https://pay.example.com/".into());
    s.merchant.account_id = Some(ACCOUNT.into());
    s.merchant.name = Some("Sok Chea Shop".into());
    s.merchant.city = Some("Phnom Penh".into());
    let store = bakong_poller::app::open_store(&s).await.unwrap();
    let now = chrono::Utc::now().timestamp_millis();
    let rw = keys::make("shop", false, now);
    let ro = keys::make("reports", true, now);
    store.api_key_insert(&rw.row).await.unwrap();
    store.api_key_insert(&ro.row).await.unwrap();
    let bound = Arc::new(ApiBound::default());
    let stop = CancellationToken::new();
    let join = tokio::spawn(bakong_poller::daemon::run(s, stop.clone(), bound.clone()));
    let (addr, metrics) = wait_for("the API and metrics listeners", LIMIT, || {
        let a = (*bound.0.lock().unwrap()).zip(*bound.1.lock().unwrap());
        async move { a }
    })
    .await;
    Api {
        stop,
        join,
        base: format!("http://{addr}"),
        metrics: format!("http://{metrics}/metrics"),
        http: reqwest::Client::new(),
        store,
        rw: rw.key,
        ro: ro.key,
    }
}

impl Api {
    pub(crate) async fn stop(self) {
        self.stop.cancel();
        tokio::time::timeout(Duration::from_secs(10), self.join)
            .await
            .expect("daemon stops within 10 s")
            .expect("daemon task")
            .expect("daemon ends without error");
        self.store.close().await;
    }

    pub(crate) fn req(
        &self,
        method: reqwest::Method,
        path: &str,
        key: Option<&str>,
    ) -> reqwest::RequestBuilder {
        let r = self.http.request(method, format!("{}{path}", self.base));
        match key {
            Some(k) => r.bearer_auth(k),
            None => r,
        }
    }

    pub(crate) async fn create(&self, body: Value) -> (u16, reqwest::header::HeaderMap, Value) {
        let r = self
            .req(reqwest::Method::POST, "/v1/payments", Some(&self.rw))
            .json(&body)
            .send()
            .await
            .unwrap();
        let (code, headers) = (r.status().as_u16(), r.headers().clone());
        (code, headers, r.json().await.unwrap_or(Value::Null))
    }

    pub(crate) async fn get(&self, path: &str, key: Option<&str>) -> (u16, String, Value) {
        let r = self
            .req(reqwest::Method::GET, path, key)
            .send()
            .await
            .unwrap();
        let code = r.status().as_u16();
        let ct = r
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        (code, ct, r.json().await.unwrap_or(Value::Null))
    }
}

async fn the_api_opens_reads_and_cancels_a_payment_the_daemon_confirms(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let api = start_api(&b).await;
    let (code, headers, p) = api
        .create(json!({
            "amount": "5.00", "currency": "USD", "order_id": "order-1042",
            "metadata": {"table": 4}, "expires_in": "15m",
            "redirect_url": "https://shop.example.com/thanks"
        }))
        .await;
    assert_eq!(code, 201, "{p}");
    let id = p["id"].as_str().unwrap().to_string();
    assert_eq!(
        headers["location"].to_str().unwrap(),
        format!("https://pay.example.com/v1/payments/{id}")
    );
    assert_eq!(p["status"], "pending");
    assert_eq!(
        (p["amount"].as_str(), p["currency"].as_str()),
        (Some("5.00"), Some("USD"))
    );
    assert_eq!(p["order_id"], "order-1042");
    assert_eq!(p["metadata"]["table"], 4);
    let qr = p["qr"].as_str().unwrap().to_string();
    assert_eq!(p["md5"], bakong_poller::khqr::md5_hex(&qr).as_str());
    for t in ["created_at", "expires_at"] {
        assert!(p[t].as_str().unwrap().ends_with('Z'), "{t}: {p}");
    }
    // The customer pays; the daemon confirms; the API shows it.
    b.register(
        "5.00",
        "USD",
        bakong_simulator::NewTransaction {
            md5: p["md5"].as_str().map(String::from),
            from_account: Some("payer@abaa".into()),
            ..paid_after(0)
        },
    );
    let paid = wait_for("paid through the API", LIMIT, || async {
        let (_, _, v) = api.get(&format!("/v1/payments/{id}"), Some(&api.ro)).await;
        (v["status"] == "paid").then_some(v)
    })
    .await;
    assert_eq!(paid["from_account_id"], "payer@abaa");
    assert_eq!(paid["bakong_hash"].as_str().unwrap().len(), 64);
    assert!(paid["confirmed_at"].as_str().unwrap().ends_with('Z'));
    // A paid payment cannot be cancelled: 409.
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/v1/payments/{id}/cancel"),
            Some(&api.rw),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 409);
    assert_eq!(r.headers()["content-type"], "application/problem+json");
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "urn:bakong-poller:problem:already-final");
    assert!(v["detail"].as_str().unwrap().contains("paid"), "{v}");
    // A pending one can.
    let (_, _, p2) = api.create(json!({"amount": 4000, "currency": "KHR"})).await;
    assert_eq!(p2["amount"], "4000", "a number is accepted");
    let id2 = p2["id"].as_str().unwrap();
    let r = api
        .req(
            reqwest::Method::POST,
            &format!("/v1/payments/{id2}/cancel"),
            Some(&api.rw),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["status"], "cancelled");
    // The QR images: the PNG decodes to the payment's QR.
    let r = api
        .req(
            reqwest::Method::GET,
            &format!("/v1/payments/{id}/qr.png"),
            Some(&api.ro),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/png");
    let png = r.bytes().await.unwrap();
    assert_eq!(decode_png(&png), qr);
    let r = api
        .req(
            reqwest::Method::GET,
            &format!("/v1/payments/{id}/qr.svg"),
            Some(&api.ro),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(r.headers()["content-type"], "image/svg+xml");
    assert!(r.text().await.unwrap().contains("<svg"));
    // Unknown and malformed ids: 404 problems.
    for path in [
        format!("/v1/payments/{}", "0".repeat(32)),
        "/v1/payments/nope".into(),
        "/v2/nothing".into(),
    ] {
        let (code, ct, v) = api.get(&path, Some(&api.ro)).await;
        assert_eq!(
            (code, ct.as_str()),
            (404, "application/problem+json"),
            "{path}: {v}"
        );
        assert_eq!(v["status"], 404);
    }
    // /metrics counts the API's answers by route template and class.
    let text = api
        .http
        .get(&api.metrics)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for want in [
        r#"bakong_poller_http_requests_total{route="/v1/payments",class="2xx"}"#,
        r#"bakong_poller_http_requests_total{route="/v1/payments/{id}",class="4xx"}"#,
        r#"bakong_poller_http_request_seconds_count{route="/v1/payments/{id}/qr.png"}"#,
    ] {
        assert!(text.contains(want), "{want} in /metrics");
    }
    assert!(!text.contains(&id), "no payment id in a label");
    api.stop().await;
}

/// The QR a PNG shows (greyscale, or colour as a screenshot is), read as
/// a phone would.
pub(crate) fn decode_png(png_bytes: &[u8]) -> String {
    let mut dec = png::Decoder::new(std::io::Cursor::new(png_bytes.to_vec()));
    dec.set_transformations(png::Transformations::EXPAND | png::Transformations::STRIP_16);
    let mut r = dec.read_info().unwrap();
    let mut buf = vec![0; r.output_buffer_size().unwrap()];
    let info = r.next_frame(&mut buf).unwrap();
    let (w, h) = (info.width as usize, info.height as usize);
    let channels = buf.len() / (w * h);
    let mut img = rqrr::PreparedImage::prepare_from_greyscale(w, h, |x, y| {
        let i = (y * w + x) * channels;
        if channels < 3 {
            buf[i]
        } else {
            ((buf[i] as u32 + buf[i + 1] as u32 + buf[i + 2] as u32) / 3) as u8
        }
    });
    let grids = img.detect_grids();
    assert!(!grids.is_empty(), "a QR in the image");
    let mut bytes = Vec::new();
    grids[0].decode_to(&mut bytes).unwrap();
    String::from_utf8(bytes).unwrap()
}

async fn keys_are_checked_scoped_and_revoked_at_once(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let api = start_api(&b).await;
    let list = "/v1/payments";
    for (key, want) in [
        (None, 401),
        (Some("Bearer"), 401),
        (Some("bkp_0000000000000000_0000000000000000000000000000000000000000000000000000000000000000"), 401),
        (Some(api.rw.as_str()), 200),
        (Some(api.ro.as_str()), 200),
    ] {
        let (code, ct, v) = api.get(list, key).await;
        assert_eq!(code, want, "{key:?}: {v}");
        if want == 401 {
            assert_eq!(ct, "application/problem+json");
            assert_eq!(v["type"], "urn:bakong-poller:problem:unauthorized");
        }
    }
    // A wrong secret for a real key id is refused too.
    let mut wrong = api.rw.clone();
    wrong.pop();
    wrong.push(if api.rw.ends_with('0') { '1' } else { '0' });
    assert_eq!(api.get(list, Some(&wrong)).await.0, 401);
    // A read-only key cannot write.
    let r = api
        .req(reqwest::Method::POST, "/v1/payments", Some(&api.ro))
        .json(&json!({"amount": "1.00", "currency": "USD"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    let v: Value = r.json().await.unwrap();
    assert_eq!(v["type"], "urn:bakong-poller:problem:forbidden");
    // Revoked through the CLI: refused at the next request.
    let (id, _) = keys::parse(&api.rw).unwrap();
    let cfg = b.e.config_file(&b.settings(), "");
    let out = bin!()
        .config(&cfg)
        .args(["api-key", "revoke", id.as_str()])
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let (code, _, v) = api.get(list, Some(&api.rw)).await;
    assert_eq!(code, 401);
    assert!(v["detail"].as_str().unwrap().contains("revoked"), "{v}");
    // create --json prints the key once; list never shows it.
    let out = bin!()
        .config(&cfg)
        .args(["api-key", "create", "--name", "laravel", "--json"])
        .run()
        .await;
    assert_eq!(out.code, 0, "{}", out.stderr);
    let made: Value = serde_json::from_str(&out.stdout).unwrap();
    let key = made["key"].as_str().unwrap();
    assert_eq!(made["scopes"], json!(["read", "write"]));
    assert_eq!(api.get(list, Some(key)).await.0, 200);
    let out = bin!()
        .config(&cfg)
        .args(["api-key", "list", "--json"])
        .run()
        .await;
    assert!(!out.stdout.contains(key), "list never shows a key");
    assert!(out.stdout.contains("laravel"));
    let out = bin!()
        .config(&cfg)
        .args(["api-key", "revoke", "key_0000000000000000"])
        .run()
        .await;
    assert_eq!(out.code, 3, "unknown key: {}", out.stdout);
    api.stop().await;
}

async fn bad_requests_are_problems_naming_the_field_and_never_stored(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let api = start_api(&b).await;
    for (body, field) in [
        (json!({"amount": "1.001", "currency": "USD"}), "amount"),
        (json!({"amount": "-1", "currency": "USD"}), "amount"),
        (json!({"amount": "1", "currency": "EUR"}), "currency"),
        (
            json!({"amount": "1", "currency": "USD", "metadata": [1]}),
            "metadata",
        ),
        (
            json!({"amount": "1", "currency": "USD", "expires_in": "forever"}),
            "expires_in",
        ),
        (
            json!({"amount": "1", "currency": "USD", "expires_at": "2000-01-01T00:00:00Z"}),
            "expires_at",
        ),
        (
            json!({"amount": "1", "currency": "USD", "redirect_url": "javascript:alert(1)"}),
            "redirect_url",
        ),
        (
            json!({"amount": "1", "currency": "USD", "order_id": ""}),
            "order_id",
        ),
        (
            json!({"amount": "1", "currency": "USD", "colour": "red"}),
            "colour",
        ),
        (json!({"currency": "USD"}), "amount"),
        (json!([1, 2]), "body"),
    ] {
        let (code, _, v) = api.create(body.clone()).await;
        assert_eq!(code, 422, "{body}: {v}");
        assert_eq!(
            v["type"], "urn:bakong-poller:problem:invalid-request",
            "{v}"
        );
        assert_eq!(v["errors"][0]["field"], field, "{body}: {v}");
    }
    let big = json!({"amount": "1", "currency": "USD", "metadata": {"x": "y".repeat(70_000)}});
    let (code, headers, v) = api.create(big).await;
    assert_eq!(code, 413, "{v}");
    // The answer comes before the body is read (the connection may close
    // under the rest of it): its head says what it is.
    assert_eq!(headers["content-type"], "application/problem+json");
    let r = api
        .req(reqwest::Method::POST, "/v1/payments", Some(&api.rw))
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 422);
    let (code, _, v) = api
        .get("/v1/payments?limit=500&status=lost", Some(&api.ro))
        .await;
    assert_eq!(code, 422);
    assert_eq!(v["errors"].as_array().unwrap().len(), 2, "both named: {v}");
    assert!(
        api.store.list(None, 10).await.unwrap().is_empty(),
        "nothing was stored"
    );
    assert_eq!(b.e.sim.sim.stats().total, 0, "nothing reached Bakong");
    // Forms the parsers take but the table would not are stored as the
    // table reads them, never answered 503.
    let (code, _, v) = api
        .create(json!({"amount": "5.", "currency": "USD", "redirect_url": " HTTPS://Shop.Example.com/thanks"}))
        .await;
    assert!(code == 201 || code == 422, "{code}: {v}");
    if code == 201 {
        assert_eq!(v["redirect_url"], "https://shop.example.com/thanks");
        assert_eq!(v["amount"], "5");
    }
    api.stop().await;
}

async fn an_idempotency_key_makes_one_payment_sequentially_and_concurrently(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let api = Arc::new(start_api(&b).await);
    let post = |key: &'static str, body: Value| {
        let api = api.clone();
        async move {
            let r = api
                .req(reqwest::Method::POST, "/v1/payments", Some(&api.rw))
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap();
            let replayed = r.headers().contains_key("idempotent-replayed");
            (
                r.status().as_u16(),
                replayed,
                r.json::<Value>().await.unwrap(),
            )
        }
    };
    let body = json!({"amount": "2.50", "currency": "USD", "order_id": "o-1"});
    let (c1, r1, p1) = post("order-o-1-try", body.clone()).await;
    let (c2, r2, p2) = post("order-o-1-try", body.clone()).await;
    assert_eq!((c1, r1, c2, r2), (201, false, 201, true));
    assert_eq!(p1["id"], p2["id"]);
    assert_eq!(p1["qr"], p2["qr"], "the same payment, not a new QR");
    let (c3, _, v) = post(
        "order-o-1-try",
        json!({"amount": "3.00", "currency": "USD"}),
    )
    .await;
    assert_eq!(c3, 422);
    assert_eq!(
        v["type"],
        "urn:bakong-poller:problem:idempotency-key-reused"
    );
    // Eight at once with one new key: one payment.
    let mut set = tokio::task::JoinSet::new();
    for _ in 0..8 {
        set.spawn(post(
            "concurrent-key",
            json!({"amount": "9.00", "currency": "USD"}),
        ));
    }
    let mut ids = std::collections::HashSet::new();
    while let Some(r) = set.join_next().await {
        let (code, _, v) = r.unwrap();
        assert_eq!(code, 201, "{v}");
        ids.insert(v["id"].as_str().unwrap().to_string());
    }
    assert_eq!(ids.len(), 1, "{ids:?}");
    assert_eq!(api.store.list(None, 100).await.unwrap().len(), 2);
    match Arc::try_unwrap(api) {
        Ok(api) => api.stop().await,
        Err(_) => panic!("the API handle is still shared"),
    }
}

async fn a_cursor_pages_through_250_payments_newest_first(db: Db) {
    let Some(b) = backend_env(db).await else {
        return;
    };
    let api = start_api(&b).await;
    for i in 0..250 {
        b.insert(&new_md5(), &format!("{}", i + 1), "KHR").await;
    }
    b.exec(
        "UPDATE payments SET order_id = 'even' WHERE id % 2 = 0",
        "UPDATE payments SET order_id = 'even' WHERE id % 2 = 0",
    )
    .await;
    let mut seen = Vec::new();
    let mut after: Option<String> = None;
    let mut pages = 0;
    loop {
        let path = match &after {
            Some(a) => format!("/v1/payments?limit=100&starting_after={a}"),
            None => "/v1/payments?limit=100".into(),
        };
        let (code, _, v) = api.get(&path, Some(&api.ro)).await;
        assert_eq!(code, 200, "{v}");
        pages += 1;
        let data = v["data"].as_array().unwrap();
        for p in data {
            seen.push(p["amount"].as_str().unwrap().parse::<i64>().unwrap());
        }
        if !v["has_more"].as_bool().unwrap() {
            break;
        }
        after = data.last().and_then(|p| p["id"].as_str()).map(String::from);
    }
    assert_eq!(pages, 3);
    assert_eq!(
        seen,
        (1..=250).rev().collect::<Vec<_>>(),
        "newest first, none twice"
    );
    let (_, _, v) = api
        .get("/v1/payments?order_id=even&limit=100", Some(&api.ro))
        .await;
    assert_eq!(v["data"].as_array().unwrap().len(), 100);
    assert_eq!(v["has_more"], true);
    let (_, _, v) = api.get("/v1/payments?status=paid", Some(&api.ro)).await;
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    let future = (chrono::Utc::now() + chrono::TimeDelta::hours(1))
        .to_rfc3339_opts(chrono::SecondsFormat::Secs, true);
    let (code, _, v) = api
        .get(
            &format!("/v1/payments?created_after={future}"),
            Some(&api.ro),
        )
        .await;
    assert_eq!(code, 200, "{v}");
    assert_eq!(v["data"].as_array().unwrap().len(), 0);
    let (code, _, v) = api
        .get("/v1/payments?created_before={future}", Some(&api.ro))
        .await;
    assert_eq!(code, 422, "{v}");
    let (code, _, _) = api
        .get(
            &format!("/v1/payments?starting_after={}", "f".repeat(32)),
            Some(&api.ro),
        )
        .await;
    assert_eq!(code, 422);
    api.stop().await;
}

/// The OpenAPI document: 3.1, every route, and the payment example has
/// exactly the fields of a real answer.
#[tokio::test]
async fn the_openapi_document_names_every_route_and_its_examples_are_real_shapes() {
    let Some(b) = backend_env(Db::Sqlite).await else {
        return;
    };
    let api = start_api(&b).await;
    let (code, _, doc) = api.get("/v1/openapi.json", None).await;
    assert_eq!(code, 200);
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3.1"),
        "{}",
        doc["openapi"]
    );
    for path in [
        "/v1/payments",
        "/v1/payments/{id}",
        "/v1/payments/{id}/cancel",
        "/v1/payments/{id}/qr.svg",
        "/v1/payments/{id}/qr.png",
        "/v1/openapi.json",
    ] {
        assert!(doc["paths"][path].is_object(), "{path} in the document");
    }
    let (_, _, real) = api
        .create(json!({"amount": "5.00", "currency": "USD"}))
        .await;
    let keys = |v: &Value| {
        let mut k: Vec<String> = v.as_object().unwrap().keys().cloned().collect();
        k.sort();
        k
    };
    let schemas = &doc["components"]["schemas"];
    assert_eq!(keys(&schemas["PaymentObject"]["example"]), keys(&real));
    assert_eq!(keys(&schemas["PaymentObject"]["properties"]), keys(&real));
    let (_, _, problem) = api.get("/v1/payments/nope", Some(&api.ro)).await;
    let mut want = keys(&schemas["Problem"]["example"]);
    want.retain(|k| k != "errors");
    assert_eq!(want, keys(&problem));
    // Validated by a standard validator when one is installed (CI installs
    // openapi-spec-validator from PyPI).
    let file = b.e.db_path().with_file_name("openapi.json");
    std::fs::write(&file, serde_json::to_string(&doc).unwrap()).unwrap();
    match std::process::Command::new("openapi-spec-validator")
        .arg(&file)
        .output()
    {
        Ok(out) => assert!(
            out.status.success(),
            "openapi-spec-validator: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        ),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("openapi-spec-validator is missing under CI=true (.ci/run installs it)")
        }
        Err(_) => eprintln!(
            "SKIPPED: openapi-spec-validator not installed; the document was not validated"
        ),
    }
    api.stop().await;
}

/// Two daemons on one PostgreSQL database give the same answers: a payment
/// made through one is read through the other, and a key revoked is
/// refused by both at once.
#[tokio::test]
async fn two_daemons_of_a_fleet_answer_the_same() {
    let Some(b) = backend_env(Db::Postgres).await else {
        return;
    };
    let one = start_api(&b).await;
    let two = start_api(&b).await;
    let (code, _, p) = one
        .create(json!({"amount": "1.25", "currency": "USD"}))
        .await;
    assert_eq!(code, 201, "{p}");
    let path = format!("/v1/payments/{}", p["id"].as_str().unwrap());
    let (code, _, q) = two.get(&path, Some(&one.ro)).await;
    assert_eq!(
        code, 200,
        "the other daemon knows the key and the payment: {q}"
    );
    assert_eq!(q["md5"], p["md5"]);
    let (id, _) = keys::parse(&one.ro).unwrap();
    one.store.api_key_revoke(&id, 0).await.unwrap();
    assert_eq!(one.get(&path, Some(&one.ro)).await.0, 401);
    assert_eq!(two.get(&path, Some(&one.ro)).await.0, 401);
    two.stop().await;
    one.stop().await;
}

#[tokio::test]
async fn config_check_names_a_bad_api_key() {
    let e = env().await;
    let s = e.settings();
    for (extra, key) in [
        ("\n[api]\nlisten = \"localhost\"\n", "api.listen"),
        ("\n[api]\npublic_url = \"ftp://x\"\n", "api.public_url"),
        (
            "\n[api]\ndefault_language = \"fr\"\n",
            "api.default_language",
        ),
    ] {
        let out = bin!()
            .config(e.config_file(&s, extra))
            .args(["config", "check"])
            .run()
            .await;
        assert_eq!(out.code, 2, "{extra}");
        assert!(out.stderr.contains(key), "{key}: {}", out.stderr);
    }
}

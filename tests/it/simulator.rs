//! The simulator: every endpoint's success and error codes, the spec's
//! sample requests, each fault, and malformed bodies at every endpoint.

use std::time::{Duration, Instant};

use bakong_poller::bakong::{
    self, Client, ClientConfig, FileKeep, GateConfig, ListStatus, SourceInfo, TokenConfig,
    TokenManager,
};
use bakong_simulator::{
    Faults, NewTransaction, OutcomeKind, RateLimit, RetryAfterMode, SimSettings,
};
use rust_decimal::Decimal;
use serde_json::{json, Value};

use crate::helpers::*;

const REFERENCE_QR: &str = "00020101021229180014jonhsmith@nbcq52045999530311654035005802KH5910Jonh Smith6010PHNOM PENH99170013173949577872263046894";

struct Raw {
    status: u16,
    headers: reqwest::header::HeaderMap,
    text: String,
}

impl Raw {
    fn json(&self) -> Value {
        serde_json::from_str(&self.text)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {:?}", self.text))
    }
    fn error_code(&self) -> Option<i64> {
        self.json()["errorCode"].as_i64()
    }
}

async fn raw(base: &str, endpoint: &str, body: &[u8], token: Option<&str>) -> Raw {
    let mut r = reqwest::Client::new()
        .post(format!("{base}/v1/{endpoint}"))
        .header("content-type", "application/json")
        .body(body.to_vec());
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let resp = r.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    Raw {
        status,
        headers,
        text: resp.text().await.unwrap_or_default(),
    }
}

fn client(base: &str, token: Option<String>, dir: &std::path::Path) -> Client {
    let tokens = std::sync::Arc::new(TokenManager::new(
        token.as_deref().and_then(bakong::Token::new),
        std::sync::Arc::new(FileKeep(dir.join("client-token"))),
        TokenConfig {
            email: Some(EMAIL.into()),
            renew_before: Duration::from_secs(86400),
            renew_retry: Duration::from_millis(100),
        },
    ));
    Client::new(
        &ClientConfig {
            base_url: base.into(),
            timeout: Duration::from_millis(500),
            proxy: None,
            gate: GateConfig {
                max_requests_per_second: None,
                ..GateConfig::default()
            },
        },
        tokens,
    )
    .unwrap()
}

#[tokio::test]
async fn the_specs_sample_requests_are_accepted_verbatim() {
    let e = env().await;
    let base = e.sim.base_url();
    // The spec's sample transaction, so its lookups find something.
    e.sim
        .sim
        .add_transaction(NewTransaction {
            md5: Some("d60f3db96913029a2af979a1662c1e72".into()),
            hash: Some("8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9".into()),
            amount: Some(Decimal::ONE),
            currency: Some("USD".parse().unwrap()),
            to_account: Some("bridge_account@devb".into()),
            from_account: Some("rieu_dhqj_1984@devb".into()),
            description: Some("testing bakong generator".into()),
            ..NewTransaction::default()
        })
        .unwrap();
    e.sim.sim.add_account("user@bank");
    let t = Some(e.token.as_str());
    let r = raw(
        &base,
        "request_token",
        br#"{  "email": "string",  "organization": "string",  "project": "string"}"#,
        None,
    )
    .await;
    assert_eq!(
        (r.status, r.json()["responseCode"].as_i64()),
        (200, Some(0)),
        "{}",
        r.text
    );
    assert_eq!(r.json()["responseMessage"], "Email has been sent");
    let r = raw(&base, "renew_token", br#"{  "email": "string"}"#, None).await;
    assert!(r.json()["data"]["token"].is_string(), "{}", r.text);
    // The verify sample's "string" is shorter than the spec's own MinLen 20:
    // its shape is accepted and the length rule answers errorCode 5.
    let r = raw(&base, "verify", br#"{  "code": "string"}"#, None).await;
    assert_eq!(r.error_code(), Some(5), "{}", r.text);
    let r = raw(
        &base,
        "check_transaction_by_md5",
        br#"{"md5": "d60f3db96913029a2af979a1662c1e72"}"#,
        t,
    )
    .await;
    assert_eq!(r.json()["responseCode"], 0, "{}", r.text);
    assert_eq!(
        r.json()["data"]["hash"],
        "8465d722d7d5065f2886f0a474a4d34dc6a7855355b611836f7b6111228893e9"
    );
    assert_eq!(r.json()["data"]["amount"], json!(1));
    let r = raw(
        &base,
        "check_transaction_by_hash",
        br#"{"hash": "dcd53430d3b3005d9cda36f1fe8dedc3714ccf18f886cf5d090d36fee67ef956"}"#,
        t,
    )
    .await;
    assert_eq!(r.error_code(), Some(1), "{}", r.text);
    let r = raw(
        &base,
        "check_transaction_by_short_hash",
        br#"{"hash": "8465d722","amount": 1.0,"currency": "USD"}"#,
        t,
    )
    .await;
    assert_eq!(
        r.json()["data"]["fromAccountId"],
        "rieu_dhqj_1984@devb",
        "{}",
        r.text
    );
    let r = raw(
        &base,
        "check_bakong_account",
        br#"{"accountId": "user@bank"}"#,
        t,
    )
    .await;
    assert_eq!(
        r.json(),
        json!({"responseCode": 0, "responseMessage": "Account ID exists", "errorCode": null, "data": null})
    );
    // The deeplink sample's QR fails its own CRC (see bakong-api-facts.md):
    // the shape is accepted and the QR refused as the provider would.
    let r = raw(&base, "generate_deeplink_by_qr", br##"{"qr": "00020101021229190015gg_hh_1980@amkb52045999530384054031685802KH5905Gg+H h6010Phnom+Penh62100806#hello630498B8", "sourceInfo": {"appIconUrl": "https://bakong.nbc.org.kh/images/logo.svg", "appName": "Bakong", "appDeepLinkCallback": "https://bakong.nbc.org.kh/" }}"##, None).await;
    assert_eq!(r.error_code(), Some(4), "{}", r.text);
}

#[tokio::test]
async fn token_life_cycle_request_verify_renew() {
    let e = env().await;
    let c = client(&e.sim.base_url(), None, e.dir.path());
    let body = bakong::RequestTokenBody {
        email: "new@shop.example".into(),
        organization: "Shop".into(),
        project: "checkout".into(),
    };
    c.request_token(&body).await.unwrap();
    match c.request_token(&body).await {
        Err(bakong::Error::Api { code: 8, .. }) => {}
        other => panic!("expected errorCode 8, got {other:?}"),
    }
    let mail = e.sim.sim.mailbox();
    let code = &mail
        .iter()
        .find(|m| m.email == "new@shop.example")
        .unwrap()
        .code;
    assert_eq!(code.len(), 20);
    let token = c.verify(code).await.unwrap();
    let claims = token.claims();
    assert!(claims.expires_at.unwrap() > claims.issued_at.unwrap());
    // A used code is gone.
    assert!(matches!(
        c.verify(code).await,
        Err(bakong::Error::Api { code: 10, .. })
    ));
    // The verified token works.
    let authed = client(
        &e.sim.base_url(),
        Some(token.expose().to_string()),
        e.dir.path(),
    );
    assert!(matches!(
        authed.check_md5(&new_md5()).await,
        Err(bakong::Error::NotFound { .. })
    ));
    assert!(c.renew_token("new@shop.example").await.is_ok());
    assert!(matches!(
        c.renew_token("nobody@shop.example").await,
        Err(bakong::Error::Api { code: 10, .. })
    ));
    // Spec validation on the wire (the client refuses these before sending).
    let base = e.sim.base_url();
    let r = raw(
        &base,
        "request_token",
        br#"{"email":"a-very-long-address-over-30@example.com","organization":"o","project":"p"}"#,
        None,
    )
    .await;
    assert_eq!((r.status, r.error_code()), (400, Some(5)));
    let r = raw(
        &base,
        "request_token",
        br#"{"email":"x@y.z","project":"p"}"#,
        None,
    )
    .await;
    assert_eq!(r.error_code(), Some(5));
    let r = raw(
        &base,
        "request_token",
        br#"{"email":"x@y.z","organization":"","project":"p"}"#,
        None,
    )
    .await;
    assert_eq!(r.error_code(), Some(5));
    assert!(matches!(
        c.verify("short").await,
        Err(bakong::Error::InvalidArgument { field: "code", .. })
    ));
    e.sim.sim.set_faults(Faults {
        email_down: true,
        ..Faults::default()
    });
    let r = raw(
        &base,
        "request_token",
        br#"{"email":"other@y.z","organization":"o","project":"p"}"#,
        None,
    )
    .await;
    assert_eq!(r.error_code(), Some(7));
}

#[tokio::test]
async fn tokens_that_are_missing_bad_expired_or_revoked_get_401_with_error_code_6() {
    let e = env().await;
    let base = e.sim.base_url();
    let body = br#"{"md5":"d60f3db96913029a2af979a1662c1e72"}"#;
    for token in [
        None,
        Some("not-a-jwt"),
        Some("eyJhbGciOiJIUzI1NiJ9.eyJpYXQiOjF9.c2ln"),
    ] {
        let r = raw(&base, "check_transaction_by_md5", body, token).await;
        assert_eq!(
            (r.status, r.error_code()),
            (401, Some(6)),
            "{token:?}: {}",
            r.text
        );
    }
    e.sim.sim.set_settings(SimSettings {
        token_lifetime: Duration::from_millis(50),
        revoke_on_renew: false,
    });
    let short = e.sim.sim.issue_token("brief@shop.example");
    wait_for("the short token to expire", Duration::from_secs(5), || {
        let (base, short) = (base.clone(), short.clone());
        async move {
            (raw(&base, "check_transaction_by_md5", body, Some(&short))
                .await
                .status
                == 401)
                .then_some(())
        }
    })
    .await;
    // Renewal without revocation keeps the old token valid...
    e.sim.sim.set_settings(SimSettings::default());
    let c = client(&base, None, e.dir.path());
    c.renew_token(EMAIL).await.unwrap();
    assert_eq!(
        raw(&base, "check_transaction_by_md5", body, Some(&e.token))
            .await
            .status,
        200
    );
    assert_eq!(
        e.sim.sim.stats().stale_token,
        1,
        "the old token is counted as stale"
    );
    // ...and with revocation, refuses it.
    e.sim.sim.set_settings(SimSettings {
        revoke_on_renew: true,
        ..SimSettings::default()
    });
    let newer = c.renew_token(EMAIL).await.unwrap();
    assert_eq!(
        raw(&base, "check_transaction_by_md5", body, Some(&e.token))
            .await
            .status,
        401
    );
    assert_eq!(
        raw(
            &base,
            "check_transaction_by_md5",
            body,
            Some(newer.expose())
        )
        .await
        .status,
        200
    );
    // Some live endpoints answer 401 with no body at all.
    e.sim.sim.set_faults(Faults {
        bare_401: true,
        ..Faults::default()
    });
    let r = raw(&base, "check_transaction_by_md5", body, None).await;
    assert_eq!((r.status, r.text.as_str()), (401, ""));
}

#[tokio::test]
async fn transactions_answer_consistently_by_every_key() {
    let e = env().await;
    let c = client(&e.sim.base_url(), Some(e.token.clone()), e.dir.path());
    let qr = bakong_poller::khqr::build(
        "cafe@aclb",
        "Cafe",
        Decimal::new(250, 2),
        "USD".parse().unwrap(),
        "7",
    )
    .unwrap();
    let paid = e
        .sim
        .sim
        .add_transaction(NewTransaction {
            qr: Some(qr.clone()),
            ..NewTransaction::default()
        })
        .unwrap();
    assert_eq!(paid.md5, bakong_poller::khqr::md5_hex(&qr));
    let by_md5 = c.check_md5(&paid.md5).await.unwrap();
    assert_eq!(by_md5.amount, Decimal::new(25, 1));
    assert_eq!(by_md5.to_account_id, "cafe@aclb");
    assert!(by_md5.created_date_ms.is_some() && by_md5.acknowledged_date_ms.is_some());
    assert_eq!(
        by_md5.external_ref.as_deref(),
        Some(paid.external_ref.as_str())
    );
    assert_eq!(c.check_hash(&paid.hash).await.unwrap(), by_md5);
    assert_eq!(
        c.check_short_hash(
            &paid.short_hash,
            Decimal::new(25, 1),
            "USD".parse().unwrap()
        )
        .await
        .unwrap(),
        by_md5
    );
    assert!(matches!(
        c.check_short_hash(
            &paid.short_hash,
            Decimal::new(26, 1),
            "USD".parse().unwrap()
        )
        .await,
        Err(bakong::Error::NotFound { .. })
    ));
    assert_eq!(
        c.check_instruction_ref(&paid.instruction_ref)
            .await
            .unwrap(),
        by_md5
    );
    assert_eq!(
        c.check_external_ref(&paid.external_ref).await.unwrap(),
        by_md5
    );

    let failed = e
        .sim
        .sim
        .add_transaction(NewTransaction {
            md5: Some(new_md5()),
            amount: Some(Decimal::ONE),
            currency: Some("KHR".parse().unwrap()),
            outcome: OutcomeKind::Failed,
            ..NewTransaction::default()
        })
        .unwrap();
    assert!(matches!(
        c.check_md5(&failed.md5).await,
        Err(bakong::Error::TransactionFailed { .. })
    ));
    let later = e
        .sim
        .sim
        .add_transaction(NewTransaction {
            md5: Some(new_md5()),
            amount: Some(Decimal::ONE),
            currency: Some("KHR".parse().unwrap()),
            after: Duration::from_secs(3600),
            ..NewTransaction::default()
        })
        .unwrap();
    assert!(matches!(
        c.check_md5(&later.md5).await,
        Err(bakong::Error::NotFound { .. })
    ));
    let odd = e
        .sim
        .sim
        .add_transaction(NewTransaction {
            md5: Some(new_md5()),
            amount: Some(Decimal::ONE),
            currency: Some("USD".parse().unwrap()),
            paid_amount: Some(Decimal::TWO),
            paid_currency: Some("KHR".parse().unwrap()),
            paid_to: Some("other@bank".into()),
            ..NewTransaction::default()
        })
        .unwrap();
    let t = c.check_md5(&odd.md5).await.unwrap();
    assert_eq!(
        (t.amount, t.currency.code(), t.to_account_id.as_str()),
        (Decimal::TWO, "KHR", "other@bank")
    );

    let list = c
        .check_md5_list(&[paid.md5.clone(), failed.md5.clone(), later.md5.clone()])
        .await
        .unwrap();
    assert!(matches!(
        list.get(&paid.md5),
        Some(Ok(ListStatus::Success { .. }))
    ));
    assert!(matches!(
        list.get(&later.md5),
        Some(Ok(ListStatus::NotFound))
    ));
    let hashes = c
        .check_hash_list(&[paid.hash.clone(), failed.hash.clone()])
        .await
        .unwrap();
    assert!(matches!(
        hashes.get(&failed.hash),
        Some(Ok(ListStatus::Failed))
    ));
    assert!(matches!(
        hashes.get(&paid.hash),
        Some(Ok(ListStatus::Success { .. }))
    ));

    // Field validation on the wire: errorCode 5 with HTTP 400.
    let base = e.sim.base_url();
    let t = Some(e.token.as_str());
    for (endpoint, body) in [
        ("check_transaction_by_md5", r#"{}"#),
        ("check_transaction_by_md5", r#"{"md5": 5}"#),
        ("check_transaction_by_md5", r#"{"md5": ""}"#),
        ("check_transaction_by_hash", r#"{"hash": null}"#),
        (
            "check_transaction_by_short_hash",
            r#"{"hash": "1234567", "amount": 1, "currency": "USD"}"#,
        ),
        (
            "check_transaction_by_short_hash",
            r#"{"hash": "12345678", "amount": "1", "currency": "USD"}"#,
        ),
        (
            "check_transaction_by_short_hash",
            r#"{"hash": "12345678", "amount": 1, "currency": "EUR"}"#,
        ),
        (
            "check_transaction_by_short_hash",
            r#"{"hash": "12345678", "currency": "USD"}"#,
        ),
        (
            "check_transaction_by_external_ref",
            r#"{"externalRef": "123456789012345678901234567890123456"}"#,
        ),
        ("check_transaction_by_instruction_ref", r#"{}"#),
        ("check_bakong_account", r#"{}"#),
        ("check_transaction_by_md5_list", r#"{"md5": "x"}"#),
        ("check_transaction_by_md5_list", r#"[]"#),
        ("check_transaction_by_md5_list", r#"[1, 2]"#),
        ("check_transaction_by_hash_list", r#"[""]"#),
        ("generate_deeplink_by_qr", r#"{"sourceInfo": {}}"#),
        (
            "generate_deeplink_by_qr",
            r#"{"qr": "x", "sourceInfo": {"appName": "a"}}"#,
        ),
    ] {
        let r = raw(&base, endpoint, body.as_bytes(), t).await;
        assert_eq!(
            (r.status, r.error_code()),
            (400, Some(5)),
            "{endpoint} {body}: {}",
            r.text
        );
    }
    let fifty_one: Vec<String> = (0..51).map(|_| new_md5()).collect();
    let r = raw(
        &base,
        "check_transaction_by_md5_list",
        json!(fifty_one).to_string().as_bytes(),
        t,
    )
    .await;
    assert_eq!(r.error_code(), Some(5));
    assert!(matches!(
        c.check_md5_list(&fifty_one).await,
        Err(bakong::Error::InvalidArgument { field: "md5", .. })
    ));
}

#[tokio::test]
async fn accounts_and_deeplinks() {
    let e = env().await;
    let c = client(&e.sim.base_url(), Some(e.token.clone()), e.dir.path());
    e.sim.sim.add_account("known@aclb");
    assert!(c.check_account("known@aclb").await.unwrap());
    assert!(!c.check_account("unknown@aclb").await.unwrap());
    assert!(matches!(
        c.check_account("no at sign").await,
        Err(bakong::Error::Api { code: 12, .. })
    ));
    let info = SourceInfo {
        app_icon_url: "https://shop.example/icon.png".into(),
        app_name: "Shop".into(),
        app_deep_link_callback: "https://shop.example/paid".into(),
    };
    let link = c.generate_deeplink(REFERENCE_QR, &info).await.unwrap();
    assert!(link.starts_with("https://"), "{link}");
    let static_qr = {
        // Point of initiation 11 and no amount: a static QR.
        let payload = "00020101021129180014jonhsmith@nbcq52045999530311658O2KH5910Jonh Smith6010PHNOM PENH6304".replace("58O2", "5802");
        format!("{payload}{}", bakong_poller::khqr::crc_hex(&payload))
    };
    assert!(matches!(
        c.generate_deeplink(&static_qr, &info).await,
        Err(bakong::Error::StaticQr { .. })
    ));
    let bad_crc = REFERENCE_QR.replace("6894", "0000");
    assert!(matches!(
        c.generate_deeplink(&bad_crc, &info).await,
        Err(bakong::Error::Api { code: 4, .. })
    ));
}

#[tokio::test]
async fn each_fault_mode_happens() {
    let e = env().await;
    let base = e.sim.base_url();
    let t = Some(e.token.as_str());
    let body = br#"{"md5":"d60f3db96913029a2af979a1662c1e72"}"#;
    let set = |f: Faults| e.sim.sim.set_faults(f);

    // Rate limit with Retry-After in seconds; a request inside the window
    // is counted.
    set(Faults {
        rate_limit: Some(RateLimit {
            requests_per_second: 1.0,
            burst: 1,
            retry_after: RetryAfterMode::Seconds,
            retry_after_secs: Some(2),
        }),
        ..Faults::default()
    });
    assert_eq!(
        raw(&base, "check_transaction_by_md5", body, t).await.status,
        200
    );
    let r = raw(&base, "check_transaction_by_md5", body, t).await;
    assert_eq!(r.status, 429);
    assert_eq!(r.headers.get("retry-after").unwrap(), "2");
    assert_eq!(
        raw(&base, "check_transaction_by_md5", body, t).await.status,
        429
    );
    let st = e.sim.sim.stats();
    assert_eq!((st.rate_limited, st.inside_retry_after), (2, 1));

    // As an HTTP-date.
    set(Faults {
        force_429: 1,
        force_429_retry_after: RetryAfterMode::Date,
        force_429_secs: Some(1),
        ..Faults::default()
    });
    let r = raw(&base, "check_transaction_by_md5", body, t).await;
    let date = r.headers.get("retry-after").unwrap().to_str().unwrap();
    assert!(httpdate::parse_http_date(date).is_ok(), "{date}");
    // Absent.
    set(Faults {
        force_429: 1,
        force_429_retry_after: RetryAfterMode::None,
        ..Faults::default()
    });
    wait_for(
        "the date window to pass",
        Duration::from_secs(5),
        || async {
            let r = raw(&base, "check_transaction_by_md5", body, t).await;
            (r.status == 429 && r.headers.get("retry-after").is_none()).then_some(())
        },
    )
    .await;

    set(Faults {
        error_5xx_ratio: 1.0,
        ..Faults::default()
    });
    assert!(raw(&base, "check_transaction_by_md5", body, t).await.status >= 500);
    set(Faults {
        malformed_ratio: 1.0,
        ..Faults::default()
    });
    let r = raw(&base, "check_transaction_by_md5", body, t).await;
    assert_eq!(r.status, 200);
    assert!(
        serde_json::from_str::<Value>(&r.text).is_err(),
        "{}",
        r.text
    );
    set(Faults {
        latency: Duration::from_millis(150),
        ..Faults::default()
    });
    let start = Instant::now();
    raw(&base, "check_transaction_by_md5", body, t).await;
    assert!(start.elapsed() >= Duration::from_millis(150));
    set(Faults {
        hang_ratio: 1.0,
        ..Faults::default()
    });
    let c = client(&base, Some(e.token.clone()), e.dir.path());
    assert!(matches!(
        c.check_md5(&new_md5()).await,
        Err(bakong::Error::Timeout { .. })
    ));
    set(Faults {
        geo_block: true,
        ..Faults::default()
    });
    for endpoint in [
        "request_token",
        "check_transaction_by_md5",
        "check_bakong_account",
    ] {
        let r = raw(&base, endpoint, body, t).await;
        assert_eq!(r.status, 403);
        assert!(r.text.contains("<html>"));
    }
    assert!(matches!(
        c.check_md5(&new_md5()).await,
        Err(bakong::Error::Forbidden { .. })
    ));
    set(Faults {
        md5_list_closed: true,
        ..Faults::default()
    });
    let err = c.check_md5_list(&[new_md5()]).await.unwrap_err();
    assert!(err.endpoint_closed(), "{err}");
    assert!(err.to_string().contains("outside Cambodia"), "{err}");
    assert!(matches!(
        c.check_md5(&new_md5()).await,
        Err(bakong::Error::NotFound { .. })
    ));
}

#[tokio::test]
async fn stats_report_peak_concurrency_and_rate() {
    let e = env().await;
    e.sim.sim.set_faults(Faults {
        latency: Duration::from_millis(200),
        ..Faults::default()
    });
    let c = client(&e.sim.base_url(), Some(e.token.clone()), e.dir.path());
    let calls: Vec<_> = (0..10)
        .map(|_| {
            let c = c.clone();
            tokio::spawn(async move { c.check_md5(&new_md5()).await })
        })
        .collect();
    for call in calls {
        let _ = call.await.unwrap();
    }
    let st = e.sim.sim.stats();
    assert_eq!(st.peak_concurrent, 10);
    assert_eq!(st.peak_rps, 10);
    assert_eq!(st.requests["check_transaction_by_md5"][&200], 10);
}

#[tokio::test]
async fn the_simulator_never_panics_on_any_body() {
    let e = env().await;
    let base = e.sim.base_url();
    let bodies: Vec<Vec<u8>> = vec![
        b"".to_vec(),
        b"{".to_vec(),
        b"null".to_vec(),
        b"[]".to_vec(),
        b"{}".to_vec(),
        b"123".to_vec(),
        b"\"text\"".to_vec(),
        b"true".to_vec(),
        vec![0xff, 0xfe, 0x00, 0x80],
        "[".repeat(10_000).into_bytes(),
        format!("{{\"md5\": \"{}\"}}", "a".repeat(100_000)).into_bytes(),
        br#"{"md5": ["a"], "hash": {"x": 1}, "amount": "NaN", "currency": 840, "code": 12345678901234567890, "email": null, "qr": 1, "accountId": [], "sourceInfo": "x", "instructionRef": {}, "externalRef": false}"#.to_vec(),
        br#"{"hash": "12345678", "amount": 1e400, "currency": "USD"}"#.to_vec(),
        br#"{"hash": "12345678", "amount": -1, "currency": "USD"}"#.to_vec(),
        br#"{"qr": "000201"}"#.to_vec(),
        br#"{"qr": "63046894"}"#.to_vec(),
        "{\"qr\": \"ប្រាក់ 6304ABCD\"}".as_bytes().to_vec(),
        br#"[null, 1, {}, []]"#.to_vec(),
        format!("[{}]", vec!["\"a\""; 60].join(",")).into_bytes(),
    ];
    // The list is the simulator's own, so a new endpoint is covered too.
    assert_eq!(bakong_simulator::ENDPOINTS.len(), 12);
    for &endpoint in bakong_simulator::ENDPOINTS {
        for body in &bodies {
            let r = raw(&base, endpoint, body, Some(&e.token)).await;
            assert!(
                r.status < 500,
                "{endpoint} answered {} to {:?}",
                r.status,
                String::from_utf8_lossy(&body[..body.len().min(60)])
            );
            let v = r.json();
            assert!(v["responseCode"].is_i64(), "{endpoint}: {}", r.text);
        }
    }
    let r = raw(&base, "no_such_endpoint", b"{}", None).await;
    assert_eq!(r.status, 404);
    // Still serving.
    assert_eq!(
        raw(
            &base,
            "check_bakong_account",
            br#"{"accountId":"a@b"}"#,
            Some(&e.token)
        )
        .await
        .status,
        200
    );
}

#[tokio::test]
async fn the_readme_scenario_example_loads() {
    let readme = include_str!("../../docs/src/simulator.md");
    let start = readme
        .find("```toml\naccounts")
        .expect("scenario example in docs/src/simulator.md")
        + "```toml\n".len();
    let text = &readme[start..start + readme[start..].find("```").unwrap()];
    let dir = tempfile::tempdir().unwrap();
    let text = text.replace(
        "/tmp/bakong-token",
        dir.path().join("token").to_str().unwrap(),
    );
    let scenario: bakong_simulator::Scenario = toml::from_str(&text).unwrap();
    assert_eq!(scenario.transactions.len(), 2);
    let h = bakong_simulator::spawn(
        ([127, 0, 0, 1], 0).into(),
        &scenario,
        tokio_util::sync::CancellationToken::new(),
    )
    .await
    .unwrap();
    assert!(dir.path().join("token").exists());
    assert_eq!(h.sim.transactions().len(), 2);
    assert!(h.sim.faults().rate_limit.is_some());
    h.stop().await;
}

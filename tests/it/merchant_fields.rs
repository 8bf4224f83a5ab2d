//! `[merchant]` values with characters bank apps refuse (issue 23, item 5):
//! a mobile number written `+855 96 998 3479` made KHQRs banking apps
//! rejected as malformed. NBC's SDK (npm `bakong-khqr` 1.0.20) refuses no
//! character in any field, only lengths, so such values load, encode as
//! the SDK writes them and pass `khqr verify`, with a warning naming the
//! key and the characters; a value the SDK refuses stops the config
//! (exit 2).

use std::path::Path;

use bakong_poller::khqr::{self, FieldProblem, KhqrRequest};
use serde_json::Value;

use crate::helpers::*;

const PLUS: &str = "+855 96 998 3479";

fn merchant(mobile: &str) -> String {
    format!(
        "\n[merchant]\naccount_id = \"shop@devb\"\nname = \"Sok Chea Shop\"\nmobile_number = \"{mobile}\"\n"
    )
}

async fn run(cfg: &Path, args: &[&str]) -> Out {
    bin!().config(cfg).args(args).run().await
}

fn warnings(o: &Out) -> Vec<&str> {
    o.stderr
        .lines()
        .filter(|l| l.starts_with("warning: "))
        .collect()
}

/// The fixture cases made by tests/fixtures/khqr-sdk/gen.js.
fn sdk_cases() -> Vec<Value> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/khqr-sdk/sdk-vectors.json"
    );
    let v: Value = serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    assert_eq!(v["sdk"], "bakong-khqr@1.0.20");
    v["cases"].as_array().unwrap().clone()
}

fn sdk_qr(name: &str) -> String {
    sdk_cases()
        .into_iter()
        .find(|c| c["name"] == name)
        .and_then(|c| c["qr"].as_str().map(String::from))
        .unwrap_or_else(|| panic!("no SDK string {name:?}"))
}

#[tokio::test]
async fn config_check_warns_naming_merchant_mobile_number_and_its_characters_and_passes() {
    let e = env().await;
    let s = e.settings();
    e.merchant(&s).await.close().await;
    let cfg = e.config_file(&s, &merchant(PLUS));
    let o = run(&cfg, &["config", "check"]).await;
    assert_eq!(o.code, 0, "the SDK accepts it: {}", o.text());
    let w = warnings(&o);
    assert_eq!(w.len(), 1, "{w:?}");
    assert!(
        w[0].contains("merchant.mobile_number")
            && w[0].contains(PLUS)
            && w[0].contains("'+' and space")
            && w[0].contains("\"855969983479\""),
        "{w:?}"
    );

    let o = run(&cfg, &["--json", "config", "check"]).await;
    assert_eq!(o.code, 0, "{}", o.text());
    let j = o.json();
    let w = j["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{j}");
    assert_eq!(w[0]["key"], "merchant.mobile_number");
    assert!(
        w[0]["message"].as_str().unwrap().contains("'+' and space"),
        "{j}"
    );

    // Digits only: nothing to say.
    let cfg = e.config_file(&s, &merchant("855969983479"));
    let o = run(&cfg, &["config", "check"]).await;
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(warnings(&o).is_empty(), "{}", o.text());
}

#[tokio::test]
async fn a_mobile_number_the_sdk_refuses_stops_config_check_and_new_with_exit_2_naming_the_key() {
    let e = env().await;
    let s = e.settings();
    e.merchant(&s).await.close().await;
    // 26 characters: the SDK says "Mobile Number Length is invalid".
    let cfg = e.config_file(&s, &merchant("+855 96 998 3479 ext 12345"));
    for args in [
        vec!["config", "check"],
        vec!["new", "--amount", "1", "--currency", "USD"],
    ] {
        let o = run(&cfg, &args).await;
        assert_eq!(o.code, 2, "{args:?}: {}", o.text());
        assert!(
            o.stderr.contains("merchant.mobile_number") && o.stderr.contains("26 characters"),
            "{args:?}: {}",
            o.stderr
        );
    }
}

#[tokio::test]
async fn new_writes_a_mobile_number_the_sdk_accepts_as_the_sdk_does() {
    let e = env().await;
    let cfg = e.config_file(&e.settings(), &merchant(PLUS));
    let o = run(
        &cfg,
        &["new", "--amount", "100", "--currency", "KHR", "--json"],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.text());
    let qr = o.json()["qr"].as_str().unwrap().to_string();
    assert!(qr.contains("0216+855 96 998 3479"), "{qr}");
    let w = khqr::decode(&qr).unwrap().field_warnings();
    assert_eq!(w.len(), 1, "{w:?}");
    assert_eq!(w[0].field, "mobile_number");
}

#[tokio::test]
async fn khqr_verify_calls_an_sdk_string_valid_and_warns_about_its_mobile_number() {
    let e = env().await;
    let cfg = e.config_file(&e.settings(), "");
    let qr = sdk_qr("mobile number with a plus sign and spaces");
    let o = run(&cfg, &["khqr", "verify", &qr, "--json"]).await;
    assert_eq!(o.code, 0, "{}", o.text());
    let j = o.json();
    assert_eq!(j["valid"], true);
    let w = j["warnings"].as_array().unwrap();
    assert_eq!(w.len(), 1, "{j}");
    let w = w[0].as_str().unwrap();
    assert!(
        w.starts_with("mobile_number (tag 62.02)") && w.contains("'+' and space"),
        "{w}"
    );

    let o = run(&cfg, &["khqr", "verify", &qr]).await;
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(
        o.stdout.starts_with("valid\nwarning: mobile_number"),
        "{}",
        o.stdout
    );

    // A string without such values has no warnings key at all.
    let plain = sdk_qr("mobile number");
    let o = run(&cfg, &["khqr", "decode", &plain, "--json"]).await;
    assert_eq!(o.code, 0, "{}", o.text());
    assert!(o.json().get("warnings").is_none(), "{}", o.stdout);
}

#[test]
fn the_sdk_accepts_every_value_warned_about_here_and_nothing_else_it_accepts_is_warned_about() {
    let mut warned = 0;
    for c in sdk_cases() {
        let name = c["name"].as_str().unwrap();
        // The divergences are strings the SDK writes but cannot read back.
        let (Some(qr), None) = (c["qr"].as_str(), c.get("divergence")) else {
            continue;
        };
        assert_eq!(c["sdk_verify"], true, "{name}");
        let fields: Vec<_> = khqr::decode(qr)
            .unwrap()
            .field_warnings()
            .into_iter()
            .map(|w| w.field)
            .collect();
        match c["warning"].as_str() {
            Some(f) => {
                assert_eq!(c["expect"], "ok", "{name}");
                assert_eq!(fields, vec![f], "{name}");
                warned += 1;
            }
            None => assert!(fields.is_empty(), "{name}: {fields:?}"),
        }
    }
    assert!(warned >= 6, "only {warned} warning cases");
}

#[test]
fn a_mobile_number_the_sdk_refuses_is_a_refusal_and_its_characters_a_warning() {
    let case = sdk_cases()
        .into_iter()
        .find(|c| c["name"] == "mobile number with spaces of 26 characters")
        .unwrap();
    assert_eq!(case["sdk_error"], "Mobile Number Length is invalid");
    let mut r = KhqrRequest::individual("shop@devb", "Sok Chea Shop", "Phnom Penh");
    r.additional_data.mobile_number = case["input"]["mobile_number"].as_str().map(String::from);
    let p = khqr::field_problems(&r);
    assert!(
        matches!(&p[..], [FieldProblem::Refused(_), FieldProblem::Warning(_)]),
        "{p:?}"
    );
    assert!(
        p.iter().all(|p| p.field() == Some("mobile_number")),
        "{p:?}"
    );
    assert!(khqr::encode(&r, chrono::Utc::now()).is_err());
}

#[tokio::test]
async fn new_warns_naming_merchant_mobile_number_and_still_opens_the_payment() {
    let e = env().await;
    let s = e.settings();
    e.merchant(&s).await.close().await;
    let cfg = e.config_file(&s, &merchant(PLUS));
    let o = run(&cfg, &["new", "--amount", "100", "--currency", "KHR"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stderr.contains("merchant.mobile_number"), "{}", o.stderr);
    assert!(o.stderr.contains("'+' and space"), "{}", o.stderr);
}

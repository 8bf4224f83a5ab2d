//! The binary's operator commands against the simulator: success, error
//! cases and exit codes (0 ok/found, 1 error, 2 usage/config, 3 not found).

use std::path::Path;

use bakong_simulator::{Faults, NewTransaction, OutcomeKind};
use rust_decimal::Decimal;

use crate::helpers::*;

async fn run(cfg: &Path, args: &[&str]) -> Out {
    bin!().config(cfg).args(args).run().await
}

fn assert_usage_error(o: &Out, names: &str) {
    assert_eq!(o.code, 2, "stdout {} stderr {}", o.stdout, o.stderr);
    assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {}", o.stderr);
    assert!(
        o.stderr.contains(names),
        "{:?} does not name {names}",
        o.stderr
    );
}

#[tokio::test]
async fn token_commands_request_verify_renew_and_show() {
    let e = env().await;
    let mut s = e.settings();
    s.bakong.token = None;
    let cfg = e.config_file(&s, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&format!("token = \"{}\"\n", e.token), "");
    std::fs::write(&cfg, text).unwrap();
    let o = run(
        &cfg,
        &[
            "token",
            "request",
            "--email",
            "cli@shop.example",
            "--organization",
            "Shop",
            "--project",
            "pos",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let o = run(
        &cfg,
        &[
            "token",
            "request",
            "--email",
            "cli@shop.example",
            "--organization",
            "Shop",
            "--project",
            "pos",
        ],
    )
    .await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("registered already"), "{}", o.stderr);
    assert_usage_error(
        &run(
            &cfg,
            &[
                "token",
                "request",
                "--email",
                "far-too-long-an-address@shop.example",
                "--organization",
                "S",
                "--project",
                "p",
            ],
        )
        .await,
        "email",
    );
    assert_usage_error(
        &run(&cfg, &["token", "verify", "--code", "short"]).await,
        "code",
    );
    let code = e
        .sim
        .sim
        .mailbox()
        .into_iter()
        .find(|m| m.email == "cli@shop.example")
        .unwrap()
        .code;
    let o = run(&cfg, &["token", "verify", "--code", &code]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let saved = std::fs::read_to_string(&s.bakong.token_file).unwrap();
    assert!(!o.stdout.contains(saved.trim()), "verify printed the token");
    let o = run(&cfg, &["--json", "token", "show"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    let v = o.json();
    assert!(v["days_left"].as_f64().unwrap() > 89.0);
    assert!(v.get("token").is_none());
    assert!(!o.stdout.contains(saved.trim()));
    let o = run(&cfg, &["token", "show", "--reveal"]).await;
    assert!(o.stdout.contains(saved.trim()));
    let o = run(&cfg, &["token", "renew"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_ne!(
        std::fs::read_to_string(&s.bakong.token_file).unwrap(),
        saved
    );
    assert_eq!(e.sim.sim.stats().renewals, 1);
}

#[tokio::test]
async fn check_commands_find_report_not_found_and_refuse_bad_arguments() {
    let e = env().await;
    let s = e.settings();
    let cfg = e.config_file(&s, "");
    let paid = e
        .sim
        .sim
        .add_transaction(NewTransaction {
            md5: Some(new_md5()),
            amount: Some(Decimal::new(250, 2)),
            currency: Some("USD".parse().unwrap()),
            ..NewTransaction::default()
        })
        .unwrap();
    let failed = e
        .sim
        .sim
        .add_transaction(NewTransaction {
            md5: Some(new_md5()),
            amount: Some(Decimal::ONE),
            currency: Some("USD".parse().unwrap()),
            outcome: OutcomeKind::Failed,
            ..NewTransaction::default()
        })
        .unwrap();
    let o = run(&cfg, &["check", "md5", &paid.md5]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(
        o.stdout.contains(&paid.hash) && o.stdout.contains("2.5 USD"),
        "{}",
        o.stdout
    );
    let o = run(&cfg, &["--json", "check", "md5", &paid.md5]).await;
    assert_eq!(o.json()["hash"], paid.hash.as_str());
    assert_eq!(run(&cfg, &["check", "md5", &new_md5()]).await.code, 3);
    assert_eq!(run(&cfg, &["check", "md5", &failed.md5]).await.code, 1);
    assert_usage_error(&run(&cfg, &["check", "md5", &"a".repeat(256)]).await, "md5");
    assert_eq!(run(&cfg, &["check", "hash", &paid.hash]).await.code, 0);
    assert_eq!(
        run(
            &cfg,
            &[
                "check",
                "short-hash",
                &paid.short_hash,
                "--amount",
                "2.50",
                "--currency",
                "USD"
            ]
        )
        .await
        .code,
        0
    );
    assert_eq!(
        run(
            &cfg,
            &[
                "check",
                "short-hash",
                &paid.short_hash,
                "--amount",
                "3",
                "--currency",
                "USD"
            ]
        )
        .await
        .code,
        3
    );
    assert_usage_error(
        &run(
            &cfg,
            &[
                "check",
                "short-hash",
                "1234567",
                "--amount",
                "1",
                "--currency",
                "USD",
            ],
        )
        .await,
        "hash",
    );
    assert_usage_error(
        &run(
            &cfg,
            &[
                "check",
                "short-hash",
                "12345678",
                "--amount",
                "-1",
                "--currency",
                "USD",
            ],
        )
        .await,
        "amount",
    );
    assert_usage_error(
        &run(
            &cfg,
            &[
                "check",
                "short-hash",
                "12345678",
                "--amount",
                "1",
                "--currency",
                "EUR",
            ],
        )
        .await,
        "currency",
    );
    assert_eq!(
        run(&cfg, &["check", "instruction-ref", &paid.instruction_ref])
            .await
            .code,
        0
    );
    assert_eq!(
        run(&cfg, &["check", "external-ref", &paid.external_ref])
            .await
            .code,
        0
    );
    assert_usage_error(
        &run(&cfg, &["check", "external-ref", &"x".repeat(36)]).await,
        "externalRef",
    );

    // 60 md5s go out as two requests of at most 50.
    e.sim.sim.reset_stats();
    let mut args: Vec<String> = vec![
        "--json".into(),
        "check".into(),
        "md5-list".into(),
        paid.md5.clone(),
    ];
    args.extend((0..59).map(|_| new_md5()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let o = run(&cfg, &refs).await;
    assert_eq!(o.code, 3, "not all found: {}", o.stderr);
    assert_eq!(o.json()[&paid.md5]["status"], "SUCCESS");
    assert_eq!(
        e.sim.sim.stats().requests["check_transaction_by_md5_list"][&200],
        2
    );
}

#[tokio::test]
async fn account_and_deeplink_commands() {
    let e = env().await;
    let cfg = e.config_file(&e.settings(), "");
    e.sim.sim.add_account("known@aclb");
    assert_eq!(run(&cfg, &["account", "known@aclb"]).await.code, 0);
    assert_eq!(run(&cfg, &["account", "nobody@aclb"]).await.code, 3);
    assert_usage_error(&run(&cfg, &["account", "no-at-sign"]).await, "Account ID");
    let qr = bakong_poller::khqr::build(
        "shop@aclb",
        "Shop",
        Decimal::ONE,
        "USD".parse().unwrap(),
        "1",
    )
    .unwrap();
    let o = run(
        &cfg,
        &[
            "deeplink",
            "--qr",
            &qr,
            "--app-name",
            "Shop",
            "--app-icon-url",
            "https://s.example/i.png",
            "--callback",
            "https://s.example/ok",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert!(o.stdout.starts_with("https://"));
    let o = run(
        &cfg,
        &[
            "deeplink",
            "--qr",
            &qr.replace("6304", "6305"),
            "--app-name",
            "Shop",
            "--app-icon-url",
            "u",
            "--callback",
            "c",
        ],
    )
    .await;
    assert_eq!(o.code, 1);
    assert_usage_error(&run(&cfg, &["deeplink", "--qr", &qr]).await, "--app-name");
}

#[tokio::test]
async fn add_list_and_status_work_on_the_table() {
    let e = env().await;
    let cfg = e.config_file(&e.settings(), "");
    let md5 = new_md5();
    let o = run(
        &cfg,
        &[
            "add",
            "--md5",
            &md5,
            "--amount",
            "1.50",
            "--currency",
            "USD",
            "--expires-in",
            "10m",
        ],
    )
    .await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_usage_error(
        &run(
            &cfg,
            &["add", "--md5", "XYZ", "--amount", "1", "--currency", "USD"],
        )
        .await,
        "--md5",
    );
    assert_usage_error(
        &run(
            &cfg,
            &[
                "add",
                "--md5",
                &new_md5(),
                "--amount",
                "0",
                "--currency",
                "USD",
            ],
        )
        .await,
        "--amount",
    );
    assert_usage_error(
        &run(
            &cfg,
            &[
                "add",
                "--md5",
                &new_md5(),
                "--amount",
                "1",
                "--currency",
                "USD",
                "--expires-in",
                "soon",
            ],
        )
        .await,
        "--expires-in",
    );
    // A duplicate is refused by the table: a runtime error.
    assert_eq!(
        run(
            &cfg,
            &["add", "--md5", &md5, "--amount", "1", "--currency", "USD"]
        )
        .await
        .code,
        1
    );
    let o = run(&cfg, &["--json", "list", "--status", "pending"]).await;
    assert_eq!(o.json()[0]["md5"], md5.as_str());
    assert_eq!(o.json()[0]["amount"], "1.50");
    assert_usage_error(
        &run(&cfg, &["list", "--status", "unpaid"]).await,
        "--status",
    );
    let o = run(&cfg, &["--json", "status"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.json()["counts"]["pending"], 1);
    assert!(o.json()["token_expires_at"].is_string());
    let o = run(&cfg, &["status"]).await;
    assert!(o.stdout.contains("pending 1"), "{}", o.stdout);
}

#[tokio::test]
async fn errors_are_named_and_never_read_as_not_found() {
    let e = env().await;
    let cfg = e.config_file(&e.settings(), "");
    e.sim.sim.set_faults(Faults {
        geo_block: true,
        ..Faults::default()
    });
    let o = run(&cfg, &["check", "md5", &new_md5()]).await;
    assert_eq!(o.code, 1);
    assert!(
        o.stderr.contains("outside Cambodia") && o.stderr.contains("proxy"),
        "{}",
        o.stderr
    );
    e.sim.sim.set_faults(Faults {
        error_5xx_ratio: 1.0,
        ..Faults::default()
    });
    let o = run(&cfg, &["check", "md5", &new_md5()]).await;
    assert_eq!(o.code, 1);
    assert!(o.stderr.contains("HTTP 5"), "{}", o.stderr);
    e.sim.sim.set_faults(Faults::default());
    e.sim.sim.revoke_tokens(EMAIL);
    // The CLI renews on 401 too, then finds nothing: a real "not found".
    assert_eq!(run(&cfg, &["check", "md5", &new_md5()]).await.code, 3);
}

#[tokio::test]
async fn every_command_has_help_with_an_example_and_completions_print() {
    let e = env().await;
    let cfg = e.config_file(&e.settings(), "");
    for cmd in [
        vec!["run"],
        vec!["migrate"],
        vec!["demo"],
        vec!["simulate"],
        vec!["token", "request"],
        vec!["token", "verify"],
        vec!["token", "renew"],
        vec!["token", "show"],
        vec!["check", "md5"],
        vec!["check", "hash"],
        vec!["check", "short-hash"],
        vec!["check", "md5-list"],
        vec!["check", "instruction-ref"],
        vec!["check", "external-ref"],
        vec!["account"],
        vec!["deeplink"],
        vec!["add"],
        vec!["list"],
        vec!["status"],
        vec!["config", "check"],
        vec!["print-config"],
        vec!["completions"],
    ] {
        let mut args = cmd.clone();
        args.push("--help");
        let o = run(&cfg, &args).await;
        assert_eq!(o.code, 0, "{cmd:?}");
        assert!(o.stdout.contains("Example"), "{cmd:?} help has no example");
    }
    for shell in ["bash", "zsh", "fish"] {
        let o = run(&cfg, &["completions", shell]).await;
        assert_eq!(o.code, 0);
        assert!(o.stdout.contains("bakong-poller"));
    }
    assert_usage_error(&run(&cfg, &["completions", "tcsh"]).await, "tcsh");
    assert_usage_error(&run(&cfg, &["frobnicate"]).await, "frobnicate");
    let o = run(&cfg, &["print-config"]).await;
    assert_eq!(o.code, 0);
    assert!(o.stdout.contains("max_requests_per_second"));
}

/// The one JSON error object a `--json` failure prints on stderr.
fn error_object(o: &Out) -> serde_json::Value {
    assert_eq!(o.stderr.trim().lines().count(), 1, "one line: {}", o.stderr);
    let v: serde_json::Value = serde_json::from_str(o.stderr.trim())
        .unwrap_or_else(|e| panic!("stderr is not JSON ({e}): {}", o.stderr));
    assert_eq!(v["exit_code"], o.code, "{v}");
    assert!(v["error"].is_string(), "{v}");
    v
}

#[tokio::test]
async fn malformed_md5s_and_hashes_are_usage_errors_and_nothing_is_sent() {
    let e = env().await;
    let cfg = e.config_file(&e.settings(), "");
    e.sim.sim.reset_stats();
    assert_usage_error(
        &run(&cfg, &["check", "md5", "not-hex-at-all!"]).await,
        "md5",
    );
    assert_usage_error(&run(&cfg, &["check", "md5", &"g".repeat(32)]).await, "md5");
    assert_usage_error(
        &run(&cfg, &["check", "hash", &"a".repeat(63)]).await,
        "hash",
    );
    assert_usage_error(&run(&cfg, &["check", "hash", "zz"]).await, "hash");
    assert_usage_error(
        &run(
            &cfg,
            &[
                "check",
                "short-hash",
                "8465d72z",
                "--amount",
                "1",
                "--currency",
                "USD",
            ],
        )
        .await,
        "short hash",
    );
    let o = run(&cfg, &["check", "md5-list", &new_md5(), "nope"]).await;
    assert_usage_error(&o, "md5");
    assert!(o.stderr.contains("'nope'"), "{}", o.stderr);
    assert_eq!(e.sim.sim.stats().total, 0, "a malformed argument was sent");
    // Upper case is accepted and sent lower-cased.
    let o = run(&cfg, &["check", "md5", &new_md5().to_uppercase()]).await;
    assert_eq!(o.code, 3, "{}", o.stderr);
    assert_eq!(e.sim.sim.stats().total, 1);
}

#[tokio::test]
async fn md5_list_falls_back_to_single_lookups_when_the_list_endpoint_is_closed() {
    let e = env().await;
    let cfg = e.config_file(&e.settings(), "");
    let paid = e
        .sim
        .sim
        .add_transaction(NewTransaction {
            md5: Some(new_md5()),
            amount: Some(Decimal::ONE),
            currency: Some("USD".parse().unwrap()),
            ..NewTransaction::default()
        })
        .unwrap();
    e.sim.sim.set_faults(Faults {
        md5_list_closed: true,
        ..Faults::default()
    });
    e.sim.sim.reset_stats();
    let unknown = new_md5();
    let o = run(&cfg, &["check", "md5-list", &paid.md5, &unknown]).await;
    assert_eq!(o.code, 3, "not all found: {}", o.stderr);
    assert!(
        o.stdout.contains(&format!("{}  paid", paid.md5))
            && o.stdout.contains(&format!("{unknown}  not found")),
        "{}",
        o.stdout
    );
    assert!(
        o.stderr.contains("HTTP 403") && o.stderr.contains("one by one"),
        "the fallback is not announced: {}",
        o.stderr
    );
    let stats = e.sim.sim.stats();
    assert_eq!(stats.requests["check_transaction_by_md5_list"][&403], 1);
    // One single lookup tells a closed list from a refused token (the
    // token was not renewed, so the list is closed), then one per md5.
    assert_eq!(
        stats.requests["check_transaction_by_md5"]
            .values()
            .sum::<u64>(),
        3
    );
    // With --json: the same answers on stdout, each stderr line a JSON object.
    let o = run(&cfg, &["--json", "check", "md5-list", &paid.md5, &unknown]).await;
    assert_eq!(o.json()[&paid.md5]["status"], "SUCCESS");
    assert_eq!(o.json()[&unknown]["status"], "NOT_FOUND");
    for line in o.stderr.trim().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        assert!(v.get("notice").is_some() || v.get("error").is_some(), "{v}");
    }
}

#[tokio::test]
async fn with_json_every_failure_is_one_error_object_on_stderr() {
    let e = env().await;
    let cfg = e.config_file(&e.settings(), "");
    // A usage error, raised by clap before anything runs.
    let o = run(&cfg, &["--json", "check", "md5", "not-hex-at-all!"]).await;
    assert_eq!(o.code, 2);
    let v = error_object(&o);
    assert!(v["error"].as_str().unwrap().contains("md5"), "{v}");
    assert!(o.stdout.is_empty(), "{}", o.stdout);
    let o = run(&cfg, &["frobnicate", "--json"]).await;
    assert_eq!(o.code, 2);
    assert!(error_object(&o)["error"]
        .as_str()
        .unwrap()
        .contains("frobnicate"));
    // A config error names the key.
    let bad = e.dir.path().join("bad.toml");
    std::fs::write(&bad, "[poller]\nmax_requests_per_second = -1\n").unwrap();
    let o = run(&bad, &["--json", "status"]).await;
    assert_eq!(o.code, 2);
    let v = error_object(&o);
    assert!(
        v["error"]
            .as_str()
            .unwrap()
            .contains("poller.max_requests_per_second"),
        "{v}"
    );
    // A runtime error.
    e.sim.sim.set_faults(Faults {
        geo_block: true,
        ..Faults::default()
    });
    let o = run(&cfg, &["--json", "check", "md5", &new_md5()]).await;
    assert_eq!(o.code, 1);
    assert!(error_object(&o)["error"]
        .as_str()
        .unwrap()
        .contains("outside Cambodia"));
    e.sim.sim.set_faults(Faults::default());
    // Not found: the answer on stdout, and the error object on stderr.
    let o = run(&cfg, &["--json", "check", "md5", &new_md5()]).await;
    assert_eq!(o.code, 3);
    assert_eq!(o.json()["status"], "not_found");
    assert!(error_object(&o)["error"]
        .as_str()
        .unwrap()
        .contains("not found"));
    let o = run(&cfg, &["--json", "account", "nobody@aclb"]).await;
    assert_eq!(o.code, 3);
    assert_eq!(o.json()["exists"], false);
    error_object(&o);
    // A config check: ok on stdout; its problems are one object too.
    let o = run(&cfg, &["--json", "config", "check"]).await;
    assert_eq!(o.code, 0, "{}", o.stderr);
    assert_eq!(o.json()["ok"], true);
    // Without email a valid token is only a warning (run works until it
    // expires); with no token at all run cannot start: a problem.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&format!("email = \"{EMAIL}\"\n"), "")
        .lines()
        .filter(|l| !l.starts_with("token = "))
        .collect::<Vec<_>>()
        .join("\n");
    std::fs::write(&cfg, text).unwrap();
    let o = run(&cfg, &["--json", "config", "check"]).await;
    assert_eq!(o.code, 2, "{}", o.stderr);
    assert!(error_object(&o)["error"]
        .as_str()
        .unwrap()
        .contains("bakong.token"));
}

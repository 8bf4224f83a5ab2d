//! The binary's operator commands against the simulator: success, error
//! cases and exit codes (0 ok/found, 1 error, 2 usage/config, 3 not found).

use std::path::Path;

use bakong_poller::simulator::{Faults, NewTransaction, OutcomeKind};
use rust_decimal::Decimal;

use crate::helpers::*;

struct Out {
    code: i32,
    stdout: String,
    stderr: String,
}

impl Out {
    fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.stdout))
    }
}

async fn run(cfg: &Path, args: &[&str]) -> Out {
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_bakong-poller"))
        .arg("--config")
        .arg(cfg)
        .args(args)
        .output()
        .await
        .unwrap();
    Out {
        code: out.status.code().unwrap_or(-1),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
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

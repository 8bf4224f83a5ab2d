//! The bench's PostgreSQL sections (issue 10): `--database` is validated
//! where it enters, and the backends and claim sections print their rows.
#![allow(clippy::unwrap_used)]

use std::process::Output;

fn bench(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_bakong-poller-bench"))
        .args(args)
        .output()
        .unwrap()
}

fn text(o: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&o.stdout),
        String::from_utf8_lossy(&o.stderr)
    )
}

#[test]
fn a_bad_database_exits_2_naming_the_option_without_its_password() {
    let dir = tempfile::tempdir().unwrap();
    let existing = dir.path().join("there.db");
    std::fs::write(&existing, b"").unwrap();
    let existing = format!("sqlite://{}", existing.display());
    for bad in [
        "mysql://app@db/payments",
        "postgres://app:S3cretPass@db:notaport/payments",
        "sqlite://",
        existing.as_str(),
    ] {
        let o = bench(&["--database", bad, "--sections", "claim"]);
        let stderr = String::from_utf8_lossy(&o.stderr);
        assert_eq!(o.status.code(), Some(2), "{bad}: {}", text(&o));
        assert!(stderr.contains("--database"), "{bad}: {stderr}");
        assert_eq!(stderr.trim().lines().count(), 1, "{bad}: {stderr}");
        assert!(!stderr.contains("S3cretPass"), "{stderr}");
    }
    let o = bench(&["--sections", "claim,nonsense"]);
    assert_eq!(o.status.code(), Some(2), "{}", text(&o));
    assert!(String::from_utf8_lossy(&o.stderr).contains("--sections"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_backends_and_claim_sections_print_a_row_per_backend_and_drop_their_schemas() {
    // A server given by URL: the bench works in schemas of its own.
    let url = test_support::pg::database().await;
    let database = url.clone().unwrap_or_else(|| "sqlite".into());
    let o = tokio::task::spawn_blocking(move || {
        bench(&[
            "--sections",
            "backends,claim",
            "--database",
            &database,
            "--backends-window",
            "1s",
            "--backends-levels",
            "2",
            "--claim-sizes",
            "1000",
        ])
    })
    .await
    .unwrap();
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    let row = |starts: &str| {
        out.lines()
            .find(|l| l.starts_with(starts))
            .unwrap_or_else(|| panic!("no row {starts:?} in:\n{out}"))
            .to_string()
    };
    // SQLite, one daemon: 2 payments created, figures after.
    let lite = row("SQLite, 1 daemon");
    assert_eq!(lite.split_whitespace().nth(4), Some("2"), "{lite}");
    assert!(
        lite.split_whitespace().nth(5).unwrap().contains('/'),
        "{lite}"
    );
    let claim = row("SQLite      ");
    assert_eq!(claim.split_whitespace().nth(1), Some("1000"), "{claim}");
    let Some(url) = url else {
        return;
    };
    for label in ["PostgreSQL, 1 daemon ", "PostgreSQL, 3 daemons"] {
        let r = row(label);
        assert!(!r.contains("skipped"), "{r}");
    }
    let claim = row("PostgreSQL  ");
    assert_eq!(claim.split_whitespace().nth(1), Some("1000"), "{claim}");
    let pool = sqlx::PgPool::connect(&url).await.unwrap();
    let left: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM information_schema.schemata WHERE schema_name LIKE 'bakong_bench_%'",
    )
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(left, 0, "the bench's schemas are dropped after each run");
}

#[test]
fn the_api_section_prints_every_route_without_errors_and_the_confirmations() {
    let o = bench(&[
        "--sections",
        "api",
        "--api-window",
        "1s",
        "--api-writers",
        "1",
        "--api-readers",
        "1",
    ]);
    let out = text(&o);
    assert_eq!(o.status.code(), Some(0), "{out}");
    for route in [
        "POST /v1/payments ",
        "GET /v1/payments/{id} ",
        "GET /v1/payments?limit=20 ",
    ] {
        let row = out
            .lines()
            .find(|l| l.starts_with("SQLite ") && l.contains(route))
            .unwrap_or_else(|| panic!("no SQLite row {route:?} in:\n{out}"));
        let cols: Vec<&str> = row.split_whitespace().collect();
        let ok: u64 = cols[cols.len() - 6].parse().unwrap();
        assert!(ok > 0, "{row}");
        assert_eq!(cols.last(), Some(&"0"), "no errors: {row}");
    }
    // created, conf/paid, ..., paying, then: every paying customer of a
    // 1 s window is confirmed within the drain.
    let conf = out
        .lines()
        .find(|l| l.starts_with("SQLite ") && l.contains('/') && !l.contains("/v1/"))
        .unwrap_or_else(|| panic!("no SQLite confirmations row in:\n{out}"));
    let cols: Vec<&str> = conf.split_whitespace().collect();
    assert!(cols[1].parse::<u64>().unwrap() > 0, "{conf}");
    assert_eq!(cols[5], cols[6], "all confirmed: {conf}");
}

//! The daemon under a service manager: sd_notify messages on a
//! NOTIFY_SOCKET of the test's own, `config check`, and journald priorities.

use std::os::unix::fs::MetadataExt;
use std::process::Stdio;
use std::time::{Duration, Instant};

use tokio::net::UnixDatagram;

use crate::helpers::*;

async fn next_message(sock: &UnixDatagram, limit: Duration) -> String {
    let mut buf = vec![0u8; 4096];
    let n = tokio::time::timeout(limit, sock.recv(&mut buf))
        .await
        .expect("a notification in time")
        .unwrap();
    String::from_utf8_lossy(&buf[..n]).into_owned()
}

#[tokio::test]
async fn the_daemon_notifies_ready_after_migrations_pings_the_watchdog_and_says_stopping() {
    let e = env().await;
    let s = e.settings();
    let cfg = e.config_file(&s, "");
    let sock_path = e.dir.path().join("notify.sock");
    let sock = UnixDatagram::bind(&sock_path).unwrap();
    let mut child = bin!()
        .config(&cfg)
        .arg("run")
        .env("NOTIFY_SOCKET", &sock_path)
        .env("WATCHDOG_USEC", "1000000")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn_async();
    let first = next_message(&sock, Duration::from_secs(10)).await;
    assert!(first.lines().any(|l| l == "READY=1"), "{first:?}");
    // Migrations were applied before READY.
    let db = bakong_poller::store::Store::connect(&s.database.url, Duration::from_secs(5))
        .await
        .unwrap();
    let (version, latest) = db.schema_version().await.unwrap();
    assert_eq!(version, Some(latest));
    // WATCHDOG=1 every half of WATCHDOG_USEC (1 s), from the loop.
    let mut pings = Vec::new();
    let mut status_seen = false;
    while pings.len() < 4 {
        let m = next_message(&sock, Duration::from_secs(5)).await;
        if m.lines().any(|l| l == "WATCHDOG=1") {
            pings.push(Instant::now());
        }
        status_seen |= m.lines().any(|l| l.starts_with("STATUS=pending"));
    }
    for pair in pings.windows(2) {
        let gap = pair[1] - pair[0];
        assert!(
            gap >= Duration::from_millis(450) && gap < Duration::from_millis(1000),
            "watchdog gap {gap:?}"
        );
    }
    assert!(status_seen, "no STATUS= summary line");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    let stopping = loop {
        let m = next_message(&sock, Duration::from_secs(10)).await;
        if m.lines().any(|l| l == "STOPPING=1") {
            break m;
        }
    };
    assert!(stopping.contains("STOPPING=1"));
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(status.code(), Some(0));
}

#[tokio::test]
async fn config_check_reports_each_problem_on_its_own_line() {
    let e = env().await;
    let s = e.settings();
    // A database that does not exist yet is a warning of its own.
    e.merchant(&s).await.close().await;
    let cfg = e.config_file(&s, "");
    let ok = bin!()
        .args(["--config", cfg.to_str().unwrap(), "config", "check"])
        .output();
    assert_eq!(ok.code, 0, "{}", ok.stderr);
    // No token anywhere and no email: two problems, two lines.
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace(&format!("token = \"{}\"\n", e.token), "")
        .replace(&format!("email = \"{EMAIL}\"\n"), "");
    std::fs::write(&cfg, text).unwrap();
    let bad = bin!()
        .args(["--config", cfg.to_str().unwrap(), "config", "check"])
        .output();
    let err = bad.stderr.as_str();
    assert_eq!(bad.code, 2);
    assert_eq!(err.trim().lines().count(), 2, "{err}");
    assert!(
        err.contains("bakong.token") && err.contains("bakong.email"),
        "{err}"
    );
    // A token handed over as a systemd credential is found.
    let creds = e.dir.path().join("creds");
    std::fs::create_dir(&creds).unwrap();
    std::fs::write(creds.join("token"), &e.token).unwrap();
    let with_cred = bin!()
        .args(["--config", cfg.to_str().unwrap(), "config", "check"])
        .env("CREDENTIALS_DIRECTORY", &creds)
        .output();
    let err = with_cred.stderr.as_str();
    assert_eq!(with_cred.code, 0, "no email is a warning: {err}");
    assert_eq!(err.trim().lines().count(), 1, "{err}");
    assert!(err.contains("bakong.email"));
}

#[tokio::test]
async fn under_journald_each_line_carries_its_syslog_priority() {
    let e = env().await;
    let s = e.settings();
    let cfg = e.config_file(&s, "");
    let text = std::fs::read_to_string(&cfg)
        .unwrap()
        .replace("format = \"json\"", "format = \"text\"");
    std::fs::write(&cfg, text).unwrap();
    let log_path = e.dir.path().join("journal.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let meta = log.metadata().unwrap();
    let mut child = bin!()
        .config(&cfg)
        .arg("run")
        .env("JOURNAL_STREAM", format!("{}:{}", meta.dev(), meta.ino()))
        .stdout(Stdio::null())
        .stderr(log)
        .spawn_async();
    wait_for(
        "the daemon to log that it runs",
        Duration::from_secs(10),
        || async {
            std::fs::read_to_string(&log_path)
                .unwrap()
                .contains("running")
                .then_some(())
        },
    )
    .await;
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(child.id().unwrap() as i32),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(child.wait().await.unwrap().code(), Some(0));
    let text = std::fs::read_to_string(&log_path).unwrap();
    assert!(
        !text.contains('\u{1b}'),
        "ANSI colours in the journal: {text}"
    );
    for line in text.lines() {
        assert!(
            line.starts_with("<6>") || line.starts_with("<4>") || line.starts_with("<3>"),
            "{line}"
        );
    }
}

#[tokio::test]
async fn under_umask_0007_the_database_is_group_writable_for_the_merchant_app() {
    use std::os::unix::fs::PermissionsExt;
    let e = env().await;
    let s = e.settings();
    let cfg = e.config_file(&s, "");
    let out: Out = std::process::Command::new("sh")
        .arg("-c")
        .arg(format!(
            "umask 0007; exec '{}' --config '{}' migrate",
            env!("CARGO_BIN_EXE_bakong-poller"),
            cfg.display()
        ))
        .output()
        .unwrap()
        .into();
    assert_eq!(out.code, 0, "{}", out.stderr);
    for suffix in ["", "-wal", "-shm"] {
        let path = format!("{}{suffix}", e.db_path().display());
        if let Ok(m) = std::fs::metadata(&path) {
            assert_eq!(m.permissions().mode() & 0o777, 0o660, "{path}");
        } else {
            assert!(!suffix.is_empty(), "no database created");
        }
    }
}

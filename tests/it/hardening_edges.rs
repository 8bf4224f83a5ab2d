//! Issue 20, the daemon's edges: the HTTP listener's limits (half-sent
//! requests closed, a connection cap that holds the file descriptors,
//! shutdown not waiting on idle connections, 413 for a large body), the
//! instance lock and token directory against symlinks and the shop's
//! group, and the hook's output and environment.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Stdio;
use std::time::{Duration, Instant};
use test_support::cli::Child;

use crate::helpers::*;

const LIMIT: Duration = Duration::from_secs(20);

/// A daemon binary with `[metrics]` on 127.0.0.1, logging JSON to a file.
struct Served {
    child: Child,
    log: PathBuf,
    addr: SocketAddr,
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the binary with `[metrics]` holding `listen` on port 0 and the
/// `limits` lines; learns the port from its log line.
async fn serve_metrics(e: &TestEnv, limits: &str) -> Served {
    let s = e.settings();
    e.merchant(&s).await.close().await;
    let cfg = e.config_file(
        &s,
        &format!("\n[metrics]\nlisten = \"127.0.0.1:0\"\n{limits}\n"),
    );
    let log = e.dir.path().join("daemon.log");
    let child = bin!()
        .config(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn();
    let mut served = Served {
        child,
        log,
        addr: ([127, 0, 0, 1], 0).into(),
    };
    served.addr = wait_for("the metrics listener's log line", LIMIT, || {
        let text = std::fs::read_to_string(&served.log).unwrap_or_default();
        let addr = text
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| {
                v["message"]
                    .as_str()
                    .is_some_and(|m| m.starts_with("metrics: serving"))
            })
            .and_then(|v| v["addr"].as_str().and_then(|a| a.parse().ok()));
        async move { addr }
    })
    .await;
    served
}

impl Served {
    fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends SIGTERM and waits for the exit; returns how long it took.
    async fn terminate(&mut self) -> Duration {
        let sent = Instant::now();
        nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.pid() as i32),
            nix::sys::signal::Signal::SIGTERM,
        )
        .unwrap();
        let code = wait_for("the daemon to exit", LIMIT, || {
            let r = self.child.try_wait().unwrap();
            async move { r }
        })
        .await;
        assert_eq!(code.code(), Some(0), "{}", self.log_text());
        sent.elapsed()
    }

    fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// A blocking client socket with a short read timeout, so a test can
    /// poll whether the server closed it.
    fn connect(&self) -> TcpStream {
        let c = TcpStream::connect(self.addr).unwrap();
        c.set_read_timeout(Some(Duration::from_millis(10))).unwrap();
        c
    }
}

/// True when the server has closed `c` (EOF or reset); false while it is
/// open with nothing to read.
fn closed_by_server(mut c: &TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match c.read(&mut buf) {
            Ok(0) => return true,
            // An answer (a 408 or a refusal) before the close: read on.
            Ok(_) => continue,
            Err(e)
                if e.kind() == std::io::ErrorKind::WouldBlock
                    || e.kind() == std::io::ErrorKind::TimedOut =>
            {
                return false
            }
            Err(_) => return true,
        }
    }
}

/// Sockets among the open files of process `pid`.
fn sockets_of(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
        .filter(|fd| {
            std::fs::read_link(fd.path()).is_ok_and(|t| t.to_string_lossy().starts_with("socket:"))
        })
        .count()
}

const HALF_SENT: &[u8] = b"GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\n";

#[tokio::test]
async fn half_sent_requests_are_closed_after_the_header_read_timeout() {
    let e = env().await;
    let d = serve_metrics(&e, "header_read_timeout = \"300ms\"").await;
    let clients: Vec<TcpStream> = (0..20).map(|_| d.connect()).collect();
    for mut c in &clients {
        c.write_all(HALF_SENT).unwrap();
    }
    let opened = Instant::now();
    wait_for(
        "every half-sent request closed",
        Duration::from_secs(5),
        || {
            let open = clients.iter().filter(|c| !closed_by_server(c)).count();
            async move { (open == 0).then_some(()) }
        },
    )
    .await;
    assert!(
        opened.elapsed() >= Duration::from_millis(250),
        "closed before the timeout: {:?}",
        opened.elapsed()
    );
    // The listener still serves.
    let r = reqwest::get(format!("http://{}/healthz", d.addr))
        .await
        .unwrap();
    assert!(r.status().is_success() || r.status().as_u16() == 503);
}

#[tokio::test]
async fn connections_beyond_the_cap_are_closed_and_do_not_grow_the_daemons_open_files() {
    let e = env().await;
    let cap = 4;
    let d = serve_metrics(
        &e,
        &format!("header_read_timeout = \"60s\"\nmax_connections = {cap}"),
    )
    .await;
    let before = sockets_of(d.pid());
    let clients: Vec<TcpStream> = (0..60).map(|_| d.connect()).collect();
    for mut c in &clients {
        // A refused connection may already be closed: ignore a reset.
        let _ = c.write_all(HALF_SENT);
    }
    // Every connection beyond the cap is closed by the daemon; the cap's
    // own stay open (their header timeout is a minute away).
    let open = wait_for(
        "the connections beyond the cap closed",
        Duration::from_secs(5),
        || {
            let open = clients.iter().filter(|c| !closed_by_server(c)).count();
            async move { (open <= cap).then_some(open) }
        },
    )
    .await;
    assert_eq!(open, cap, "the cap's own connections stay open");
    let during = sockets_of(d.pid());
    assert!(
        during <= before + cap + 2,
        "the daemon holds {during} sockets, {before} before 60 connections with a cap of {cap}"
    );
    // Slots free again when their clients go.
    drop(clients);
    wait_for("a scrape after the clients left", LIMIT, || async {
        let r = reqwest::get(format!("http://{}/metrics", d.addr)).await;
        r.ok().filter(|r| r.status().is_success()).map(|_| ())
    })
    .await;
}

#[tokio::test]
async fn idle_connections_do_not_delay_shutdown_nor_log_an_error() {
    let e = env().await;
    // A header timeout far beyond poller.shutdown_timeout (8 s).
    let mut d = serve_metrics(&e, "header_read_timeout = \"60s\"").await;
    // One connection that never sent a byte, one kept alive after an
    // answer, one with half a request.
    let silent = d.connect();
    let mut kept = d.connect();
    kept.write_all(b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .unwrap();
    kept.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let mut buf = [0u8; 1024];
    let n = kept.read(&mut buf).unwrap();
    assert!(
        buf[..n].starts_with(b"HTTP/1.1 "),
        "{}",
        String::from_utf8_lossy(&buf[..n])
    );
    let mut half = d.connect();
    half.write_all(HALF_SENT).unwrap();
    let took = d.terminate().await;
    let log = d.log_text();
    assert!(
        took < Duration::from_secs(3),
        "SIGTERM took {took:?}: {log}"
    );
    assert!(!log.contains("\"level\":\"ERROR\""), "{log}");
    drop((silent, kept, half));
}

#[tokio::test]
async fn a_body_over_the_limit_is_answered_413() {
    let e = env().await;
    let d = serve_metrics(&e, "max_body_bytes = 4096").await;
    let client = reqwest::Client::new();
    let url = format!("http://{}/metrics", d.addr);
    let big = client
        .get(&url)
        .body(vec![b'x'; 4097])
        .send()
        .await
        .unwrap();
    assert_eq!(big.status().as_u16(), 413);
    let small = client.get(&url).body(vec![b'x'; 100]).send().await.unwrap();
    assert_eq!(small.status().as_u16(), 200);
}

/// A store on a fresh database in `e`'s directory.
async fn store_of(e: &TestEnv) -> bakong_poller::store::Store {
    let s = e.settings();
    e.merchant(&s).await.close().await;
    bakong_poller::store::Store::connect(&s.database.url, Duration::from_secs(5))
        .await
        .unwrap()
}

fn lock_path(e: &TestEnv) -> PathBuf {
    let real = std::fs::canonicalize(e.db_path()).unwrap();
    PathBuf::from(format!("{}.lock", real.display()))
}

#[tokio::test]
async fn a_lock_path_that_is_a_symlink_is_refused_naming_it_and_its_target_is_untouched() {
    let e = env().await;
    let store = store_of(&e).await;
    let token = e.dir.path().join("token");
    std::fs::write(&token, "the-token\n").unwrap();
    let lock = lock_path(&e);
    std::os::unix::fs::symlink(&token, &lock).unwrap();
    let err = match store.lock_instance() {
        Ok(_) => panic!("a symlinked lock file was accepted"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains(&lock.display().to_string()), "{err}");
    assert!(err.contains("symbolic link"), "{err}");
    assert_eq!(std::fs::read_to_string(&token).unwrap(), "the-token\n");
    // A dangling one creates nothing at its target either.
    std::fs::remove_file(&lock).unwrap();
    let elsewhere = e.dir.path().join("elsewhere");
    std::os::unix::fs::symlink(&elsewhere, &lock).unwrap();
    assert!(store.lock_instance().is_err());
    assert!(!elsewhere.exists());
}

#[tokio::test]
async fn an_existing_lock_files_contents_survive_a_refused_open() {
    let e = env().await;
    let store = store_of(&e).await;
    let lock = lock_path(&e);
    // Another name for the token (a hard link): refused, not truncated.
    let token = e.dir.path().join("token");
    std::fs::write(&token, "the-token\n").unwrap();
    std::fs::hard_link(&token, &lock).unwrap();
    let err = match store.lock_instance() {
        Ok(_) => panic!("a hard-linked lock file was accepted"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains(&lock.display().to_string()), "{err}");
    assert_eq!(std::fs::read_to_string(&token).unwrap(), "the-token\n");
    // A lock held by another daemon: its holder line stays.
    std::fs::remove_file(&lock).unwrap();
    let held = store.lock_instance().unwrap();
    let holder = std::fs::read_to_string(&lock).unwrap();
    assert!(holder.starts_with("pid "), "{holder}");
    let other = store_of(&e).await;
    let err = match other.lock_instance() {
        Ok(_) => panic!("a second daemon took the lock"),
        Err(err) => err.to_string(),
    };
    assert!(err.contains(holder.trim()), "{err}");
    assert_eq!(std::fs::read_to_string(&lock).unwrap(), holder);
    drop(held);
    // The lock file is the daemon's alone.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(&lock).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode & 0o077, 0, "lock file mode {mode:o}");
}

#[tokio::test]
async fn a_group_writable_token_directory_is_warned_about_at_start_naming_it_and_the_fix() {
    use std::os::unix::fs::PermissionsExt;
    let e = env().await;
    let mut s = e.settings();
    let dir = e.dir.path().join("state");
    std::fs::create_dir(&dir).unwrap();
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o770)).unwrap();
    s.bakong.token_file = dir.join("token");
    e.merchant(&s).await.close().await;
    let cfg = e.config_file(&s, "");
    let log = e.dir.path().join("daemon.log");
    let child = bin!()
        .config(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn();
    let mut d = Served {
        child,
        log,
        addr: ([127, 0, 0, 1], 0).into(),
    };
    let shown = dir.display().to_string();
    let line = wait_for("the token directory warning", LIMIT, || {
        let found = d
            .log_text()
            .lines()
            .find(|l| l.contains("group") && l.contains(&shown))
            .map(str::to_string);
        async move { found }
    })
    .await;
    assert!(line.contains("\"level\":\"WARN\""), "{line}");
    assert!(line.contains("chmod"), "{line}");
    assert!(line.contains("bakong.token_file"), "{line}");
    d.terminate().await;
    // A private directory: no warning.
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).unwrap();
    let log = e.dir.path().join("daemon2.log");
    let child = bin!()
        .config(&cfg)
        .arg("run")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn();
    let mut d = Served {
        child,
        log,
        addr: ([127, 0, 0, 1], 0).into(),
    };
    wait_for("the daemon running", LIMIT, || {
        let up = d.log_text().contains("bakong-poller running");
        async move { up.then_some(()) }
    })
    .await;
    d.terminate().await;
    assert!(
        !d.log_text().contains(&format!("{shown} is group")),
        "{}",
        d.log_text()
    );
}

fn script(dir: &std::path::Path, name: &str, text: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{text}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p.to_str().unwrap().to_string()
}

/// The hook's delivery of the payment's event, once it is `status`: its
/// attempts.
async fn hook_delivery(db: &sqlx::SqlitePool, md5: &str, status: &str) -> (String, i64) {
    wait_for(&format!("the hook delivery {status}"), LIMIT, || async {
        sqlx::query_as::<_, (String, String, i64)>(
            "SELECT d.event_id, d.status, d.attempts FROM event_deliveries d
             JOIN payment_events e ON e.id = d.event_id
             WHERE e.md5 = ?1 AND d.receiver = 'hook'",
        )
        .bind(md5)
        .fetch_optional(db)
        .await
        .unwrap()
        .filter(|(_, s, _)| s == status)
        .map(|(id, _, n)| (id, n))
    })
    .await
}

#[tokio::test]
async fn a_hook_printing_a_mebibyte_runs_once_and_is_recorded_delivered() {
    let e = env().await;
    let dir = e.dir.path();
    let hook = script(
        dir,
        "loud.sh",
        &format!(
            // A writer cut off by a closed pipe dies of SIGPIPE (exit 141)
            // and so does the hook: its status is the last pipeline's.
            "echo run >> {d}/runs\nhead -c 1048576 /dev/zero | tr '\\000' y >&2 || exit $?\nhead -c 1048576 /dev/zero | tr '\\000' x",
            d = dir.display()
        ),
    );
    let mut s = e.settings();
    s.hook.command = Some(vec![hook]);
    s.hook.timeout = Duration::from_secs(10);
    s.webhook.retry_min = Duration::from_millis(50);
    s.webhook.retry_max = Duration::from_millis(100);
    let db = e.merchant(&s).await;
    let d = start(s);
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let (id, attempts) = hook_delivery(&db, &md5, "delivered").await;
    d.stop().await;
    assert_eq!(attempts, 1);
    assert_eq!(
        std::fs::read_to_string(dir.join("runs")).unwrap(),
        "run\n",
        "the hook ran exactly once"
    );
    let answer: String =
        sqlx::query_scalar("SELECT answer FROM event_attempts WHERE event_id = ?1")
            .bind(&id)
            .fetch_one(&db)
            .await
            .unwrap();
    assert!(answer.starts_with("xxxx"), "{answer}");
    assert!(answer.len() <= 1024, "only the first bytes are kept");
}

#[tokio::test]
async fn a_hook_sees_only_the_documented_environment() {
    let e = env().await;
    let dir = e.dir.path();
    let hook = script(dir, "env.sh", &format!("env > {}/env.txt", dir.display()));
    let s = e.settings();
    let db = e.merchant(&s).await;
    let cfg = e.config_file(
        &s,
        &format!("\n[hook]\ncommand = [\"{hook}\"]\ntimeout = \"10s\"\n"),
    );
    let log = dir.join("daemon.log");
    let child = bin!()
        .config(&cfg)
        .arg("run")
        .env("PGPASSWORD", "pg-secret")
        .env("HTTPS_PROXY", "http://proxyuser:proxy-secret@127.0.0.1:9")
        .env("https_proxy", "http://proxyuser:proxy-secret@127.0.0.1:9")
        .env("HARDENING_TEST_VARIABLE", "daemon-only")
        .env("LANG", "C.UTF-8")
        .env("TZ", "UTC")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn();
    let mut d = Served {
        child,
        log,
        addr: ([127, 0, 0, 1], 0).into(),
    };
    let md5 = e.payment(&db, "1", "USD", paid_after(0)).await;
    let (id, _) = hook_delivery(&db, &md5, "delivered").await;
    d.terminate().await;
    let env = std::fs::read_to_string(dir.join("env.txt")).unwrap();
    for secret in ["pg-secret", "proxy-secret", "daemon-only"] {
        assert!(!env.contains(secret), "the hook saw {secret}: {env}");
    }
    let names: Vec<&str> = env.lines().filter_map(|l| l.split('=').next()).collect();
    for name in [
        "PGPASSWORD",
        "HTTPS_PROXY",
        "https_proxy",
        "HARDENING_TEST_VARIABLE",
    ] {
        assert!(!names.contains(&name), "the hook saw {name}: {env}");
    }
    assert!(
        env.contains(&format!("BAKONG_POLLER_EVENT_ID={id}")),
        "{env}"
    );
    assert!(
        env.contains("BAKONG_POLLER_EVENT_TYPE=payment.paid"),
        "{env}"
    );
    assert!(env.lines().any(|l| l.starts_with("PATH=")), "{env}");
    assert!(
        env.contains("LANG=C.UTF-8") && env.contains("TZ=UTC"),
        "{env}"
    );
}

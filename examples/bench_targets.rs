//! The scheduling targets of `bench` alone (issue 13): checkout traffic
//! at 10 payments/s under a ceiling of 20 and at 100 payments/s under a
//! ceiling of 10, against a simulator limited to 10 requests/s.
//!
//! ```sh
//! cargo run --release --example bench_targets          # 60 s windows
//! cargo run --release --example bench_targets -- 20s
//! ```
#![forbid(unsafe_code)]

use std::time::Duration;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    let window = match std::env::args().nth(1) {
        None => Duration::from_secs(60),
        Some(a) => match humantime::parse_duration(&a) {
            Ok(d) if d >= Duration::from_secs(4) => d,
            _ => {
                eprintln!("the window {a:?} must be a duration of at least 4s, e.g. 60s");
                return std::process::ExitCode::from(2);
            }
        },
    };
    // Examples live in target/<profile>/examples; the daemon beside them.
    let exe = std::env::current_exe()
        .ok()
        .and_then(|p| Some(p.parent()?.parent()?.join("bakong-poller")))
        .filter(|p| p.exists());
    let Some(exe) = exe else {
        eprintln!("bench_targets: build the daemon first: cargo build --release");
        return std::process::ExitCode::FAILURE;
    };
    bakong_poller::bench::set_daemon_exe(exe);
    match bakong_poller::bench::targets(window).await {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_targets: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

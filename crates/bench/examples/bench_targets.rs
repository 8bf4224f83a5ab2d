//! The scheduling targets of the bench alone (issue 13): checkout traffic
//! at 10 payments/s under a ceiling of 20 and at 100 payments/s under a
//! ceiling of 10, against a simulator limited to 10 requests/s.
//!
//! ```sh
//! cargo run -p bakong-poller-bench --release --example bench_targets          # 60 s windows
//! cargo run -p bakong-poller-bench --release --example bench_targets -- 20s
//! ```
#![forbid(unsafe_code)]

use std::time::Duration;

fn main() -> std::process::ExitCode {
    // The bench starts its daemons as `<this program> daemon ...`.
    if std::env::args_os().nth(1).is_some_and(|a| a == "daemon") {
        let code = bakong_poller_bench::cli::main_from(std::env::args_os());
        return std::process::ExitCode::from(u8::try_from(code).unwrap_or(1));
    }
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
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench_targets: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bakong_poller_bench::targets(window)) {
        Ok(_) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench_targets: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

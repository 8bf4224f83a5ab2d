//! The binary: parse, dispatch, map errors to exit codes.
#![forbid(unsafe_code)]

fn main() {
    let cli = bakong_poller::cli::parse();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            std::process::exit(bakong_poller::cli::EXIT_ERROR);
        }
    };
    let code = match runtime.block_on(bakong_poller::cli::dispatch(cli)) {
        Ok(code) => code,
        Err(f) => {
            // The last net: no credential in a URL, no token, ever on stderr.
            eprintln!("error: {}", bakong_poller::config::redact_text(&f.message));
            f.code
        }
    };
    // Don't wait for stray blocking tasks (stdin readers, DNS) at exit.
    runtime.shutdown_timeout(std::time::Duration::from_millis(100));
    std::process::exit(code);
}

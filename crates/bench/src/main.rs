//! The binary: everything, exit code included, is decided by
//! [`bakong_poller_bench::cli::main_from`].
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(bakong_poller_bench::cli::main_from(std::env::args_os()));
}

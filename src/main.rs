//! The binary: everything, exit code included, is decided by
//! [`bakong_poller::cli::main`].
#![forbid(unsafe_code)]

fn main() {
    std::process::exit(bakong_poller::cli::main());
}

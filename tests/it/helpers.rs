//! The spawn helpers (a simulator, fast settings, an in-process daemon,
//! waiting with a deadline) and the CLI runner, from the test-support crate.

pub use test_support::bakong_poller as bin;
pub use test_support::cli::Out;
pub use test_support::spawn::*;

//! bakong-poller: confirms Bakong (KHQR) payments for merchants.
//!
//! Merchants insert pending payments into a SQLite table; the daemon
//! ([`poller`]) asks the Bakong Open API ([`bakong`]) about each one until
//! it is paid, mismatched, failed or expired, and writes the answer back
//! ([`store`]). [`bakong`] (with [`redact`]) is the `bakong-client` crate;
//! [`khqr`] and [`money`] are the `bakong-khqr` crate; with the
//! default feature `simulator`, [`simulator`] is the `bakong-simulator`
//! crate, the local stand-in for the API that `simulate` serves and the
//! demo, the tests and the benchmark (crates/bench) use.
#![forbid(unsafe_code)]

pub mod api;
pub mod app;
pub mod cli;
pub mod config;
pub mod counters;
pub mod daemon;
#[cfg(feature = "simulator")]
pub mod demo;
pub mod event;
pub mod metrics;
pub mod notify;
pub mod open;
pub mod payment;
pub mod poller;
pub mod preflight;
pub mod shutdown;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod tokens;

pub use bakong_client as bakong;
pub use bakong_client::redact;
pub use bakong_khqr as khqr;
pub use bakong_khqr::money;
#[cfg(feature = "simulator")]
pub use bakong_simulator as simulator;

/// When this process started (UTC): the issue time of a token that came
/// from the environment and carries no readable dates.
pub fn process_start() -> chrono::DateTime<chrono::Utc> {
    static START: std::sync::OnceLock<chrono::DateTime<chrono::Utc>> = std::sync::OnceLock::new();
    *START.get_or_init(chrono::Utc::now)
}

/// The throwaway PostgreSQL cluster of the store's unit tests; it lives in
/// the `test-support` crate, out of the product.
#[cfg(test)]
pub(crate) mod pg_cluster {
    pub use test_support::pg_cluster::*;
}

//! bakong-poller: confirms Bakong (KHQR) payments for merchants.
//!
//! Merchants insert pending payments into a SQLite table; the daemon
//! ([`poller`]) asks the Bakong Open API ([`bakong`]) about each one until
//! it is paid, mismatched, failed or expired, and writes the answer back
//! ([`store`]). [`simulator`] is a local stand-in for the API used by the
//! tests, the demo and the benchmarks.
#![forbid(unsafe_code)]

pub mod app;
pub mod bakong;
pub mod bench;
pub mod cli;
pub mod config;
pub mod counters;
pub mod daemon;
pub mod demo;
pub mod event;
pub mod khqr;
pub mod metrics;
pub mod money;
pub mod notify;
pub mod payment;
pub mod pg_cluster;
pub mod poller;
pub mod preflight;
pub mod redact;
pub mod shutdown;
pub mod simulator;
pub mod store;
pub mod systemd;
pub mod telemetry;
pub mod tokens;

/// When this process started (UTC): the issue time of a token that came
/// from the environment and carries no readable dates.
pub fn process_start() -> chrono::DateTime<chrono::Utc> {
    static START: std::sync::OnceLock<chrono::DateTime<chrono::Utc>> = std::sync::OnceLock::new();
    *START.get_or_init(chrono::Utc::now)
}

//! Integration tests: the simulator, the daemon against it, and the CLI.
#![forbid(unsafe_code)]
#![allow(clippy::unwrap_used)]

mod api;
mod backends;
mod backlog;
mod bulk;
mod checkout;
mod cli;
mod config;
mod daemon;
mod field;
mod forbidden;
mod gate_shared;
mod hardening_answers;
mod hardening_edges;
mod hardening_input;
mod helpers;
mod integrity;
mod khqr;
mod lifecycle;
mod merchant_fields;
mod metrics;
mod pg;
mod pg_daemon;
mod pg_token;
mod postgres;
mod quota;
mod simulator;
mod systemd;
mod token_contest;
mod webhooks;

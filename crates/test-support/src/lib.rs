//! What the tests of the bakong-poller workspace share: a throwaway
//! PostgreSQL cluster ([`pg_cluster`], shared per test binary by [`pg`]),
//! the spawn helpers ([`spawn`]: a simulator, fast settings, an in-process
//! daemon) and the one runner of the product's binary ([`cli`]). Not
//! published: the harness lives beside the product.
#![forbid(unsafe_code)]
// Test support: a panic is how a helper reports a broken set-up.
#![allow(clippy::unwrap_used)]

pub mod cli;
pub mod pg;
pub mod pg_cluster;
pub mod spawn;

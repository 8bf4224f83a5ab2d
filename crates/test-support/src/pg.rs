//! One throwaway PostgreSQL cluster per test binary, started on first use
//! and stopped when the binary exits, with a fresh database per test.
//!
//! Outside CI a machine without the server binaries skips the PostgreSQL
//! tests with a loud line; in CI (`CI=true`) that is a failure, never a
//! silent skip.

use std::sync::OnceLock;

use crate::pg_cluster::{ClusterError, TempCluster};

static CLUSTER: OnceLock<Option<TempCluster>> = OnceLock::new();

/// Whether this is CI (`CI` set, and not to `false` or `0`).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The shared cluster, started on first use (None: skipped outside CI).
///
/// # Panics
///
/// When the cluster does not start, and in CI when the server binaries
/// are missing.
pub async fn cluster() -> Option<&'static TempCluster> {
    tokio::task::spawn_blocking(|| {
        CLUSTER
            .get_or_init(|| match TempCluster::start() {
                Ok(c) => Some(c),
                Err(ClusterError::NotFound) if !in_ci() => {
                    eprintln!("SKIPPED: PostgreSQL tests: {}", ClusterError::NotFound);
                    None
                }
                Err(e) => panic!("the PostgreSQL test cluster did not start: {e}"),
            })
            .as_ref()
    })
    .await
    .expect("the cluster's start-up task panicked")
}

/// The URL of a fresh, empty database (None: skipped outside CI).
///
/// # Panics
///
/// When the database cannot be created.
pub async fn database() -> Option<String> {
    let c = cluster().await?;
    Some(
        c.create_database()
            .await
            .expect("create a database in the test cluster"),
    )
}

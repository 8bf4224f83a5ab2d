//! One throwaway PostgreSQL cluster for this test binary, started on first
//! use and stopped when the binary exits, with a fresh database per test.
//!
//! Outside CI a machine without the server binaries skips the PostgreSQL
//! tests with a loud line; in CI (`CI=true`) that is a failure, never a
//! silent skip.

use std::sync::OnceLock;
use std::time::Duration;

use bakong_poller::pg_cluster::{ClusterError, TempCluster};
use bakong_poller::store::postgres::PgStore;
use bakong_poller::store::Backend as _;

static CLUSTER: OnceLock<Option<TempCluster>> = OnceLock::new();

fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// The shared cluster, started on first use (None: skipped outside CI).
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
    .unwrap()
}

/// The URL of a fresh, empty database (None: skipped outside CI).
pub async fn database() -> Option<String> {
    let c = cluster().await?;
    Some(c.create_database().await.unwrap())
}

/// A migrated store on a fresh database (None: skipped outside CI).
pub async fn store() -> Option<PgStore> {
    store_and_url().await.map(|(store, _)| store)
}

/// A migrated store on a fresh database, and that database's URL.
pub async fn store_and_url() -> Option<(PgStore, String)> {
    let url = database().await?;
    let store = PgStore::connect(&url, Duration::from_secs(5))
        .await
        .unwrap();
    store.migrate().await.unwrap();
    Some((store, url))
}

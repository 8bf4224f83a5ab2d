//! The PostgreSQL of the tests: the shared throwaway cluster and fresh
//! databases come from `test_support::pg`; here, migrated stores on them.

use std::time::Duration;

use bakong_poller::store::postgres::PgStore;
use bakong_poller::store::Backend as _;
pub use test_support::pg::{cluster, database};

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

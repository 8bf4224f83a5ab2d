//! Claim time on both backends among many pending rows: a benchmark
//! command that prints figures (issue 10: "the claim time among 100,000
//! and 1,000,000 pending rows").
//!
//! ```sh
//! cargo run --release --example claim_bench            # 100000 and 1000000
//! cargo run --release --example claim_bench -- 10000   # other sizes
//! ```
//!
//! PostgreSQL runs in a throwaway cluster (`pg_cluster::TempCluster`, the
//! server binaries of the Debian package, `fsync=off`); SQLite in a
//! temporary file. Each run: 50 random pending rows are made due, then one
//! claim of 50 is timed; the mean and the worst of 50 runs are printed.
#![forbid(unsafe_code)]

use std::time::{Duration, Instant};

use bakong_poller::store::Store;

const RUNS: u32 = 50;
const BATCH: usize = 50;

async fn seed(store: &Store, n: usize) -> Result<(), String> {
    // In chunks: one statement (PostgreSQL) or transaction (SQLite) each.
    let mut done = 0;
    while done < n {
        let chunk = (n - done).min(100_000);
        let md5s: Vec<String> = (done..done + chunk)
            .map(|i| bakong_poller::khqr::md5_hex(&format!("claim-bench-{i}")))
            .collect();
        store
            .seed_backlog(&md5s, Duration::ZERO, Some(Duration::from_secs(3600)))
            .await
            .map_err(|e| e.to_string())?;
        done += chunk;
    }
    Ok(())
}

/// Mean and worst claim time of `RUNS` claims of `BATCH` due rows.
async fn measure(store: &Store) -> Result<(Duration, Duration), String> {
    let mut total = Duration::ZERO;
    let mut worst = Duration::ZERO;
    for _ in 0..RUNS {
        store.make_due(BATCH).await.map_err(|e| e.to_string())?;
        let now = chrono::Utc::now().timestamp_millis();
        let t = Instant::now();
        let got = store
            .claim(
                now,
                Duration::from_secs(60),
                BATCH,
                Duration::from_secs(900),
            )
            .await
            .map_err(|e| e.to_string())?;
        let took = t.elapsed();
        if got.len() != BATCH {
            return Err(format!(
                "claim returned {} rows, expected {BATCH}",
                got.len()
            ));
        }
        total += took;
        worst = worst.max(took);
    }
    Ok((total / RUNS, worst))
}

async fn open(url: &str) -> Result<Store, String> {
    let store = Store::connect(url, Duration::from_secs(30))
        .await
        .map_err(|e| e.to_string())?;
    store.migrate().await.map_err(|e| e.to_string())?;
    Ok(store)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

#[tokio::main]
async fn main() -> Result<(), String> {
    let sizes: Vec<usize> = {
        let given: Vec<usize> = std::env::args()
            .skip(1)
            .map(|a| a.parse().map_err(|_| format!("{a:?} is not a row count")))
            .collect::<Result<_, _>>()?;
        if given.is_empty() {
            vec![100_000, 1_000_000]
        } else {
            given
        }
    };
    let cluster = tokio::task::spawn_blocking(bakong_poller::pg_cluster::TempCluster::start)
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| e.to_string())?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    println!("claim of {BATCH} due rows, {RUNS} runs each (mean / worst):");
    for n in sizes {
        let pg = open(&cluster.create_database().await.map_err(|e| e.to_string())?).await?;
        let t = Instant::now();
        seed(&pg, n).await?;
        let seeded = t.elapsed();
        let (mean, worst) = measure(&pg).await?;
        println!(
            "  PostgreSQL  {n:>9} pending: {:>7.2} ms / {:>7.2} ms   (seeded in {:.1} s)",
            ms(mean),
            ms(worst),
            seeded.as_secs_f64()
        );
        pg.close().await;
        let url = format!("sqlite://{}", dir.path().join(format!("c{n}.db")).display());
        let lite = open(&url).await?;
        let t = Instant::now();
        seed(&lite, n).await?;
        let seeded = t.elapsed();
        let (mean, worst) = measure(&lite).await?;
        println!(
            "  SQLite      {n:>9} pending: {:>7.2} ms / {:>7.2} ms   (seeded in {:.1} s)",
            ms(mean),
            ms(worst),
            seeded.as_secs_f64()
        );
        lite.close().await;
    }
    Ok(())
}

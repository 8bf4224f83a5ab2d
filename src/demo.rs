//! The demo.

/// Runs the demo.
pub async fn run(_payments: usize) -> Result<(), String> {
    Err("not yet".into())
}

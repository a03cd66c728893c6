//! Helpers the integration tests share.
#![allow(dead_code)]

use std::time::Duration;

use stagesql::{Session, SessionOptions};

/// A session with `settings`, the TPC-H tables at `scale_factor` registered.
pub async fn tpch_session(settings: &[(&str, &str)], scale_factor: f64) -> Session {
    let session = Session::with_options(SessionOptions {
        settings: settings
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect(),
        ..SessionOptions::default()
    })
    .unwrap();
    session.load_tpch(scale_factor).await.unwrap();
    session
}

/// Waits for `done` with a limit meant for the slowest machine, not for a measurement.
pub async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let patience = std::time::Instant::now();
    while !done() {
        assert!(
            patience.elapsed() < Duration::from_secs(120),
            "still not true after two minutes: {what}"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

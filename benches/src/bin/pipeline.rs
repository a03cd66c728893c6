//! The reference texts' pipeline — a filtered join used by three writes — with and without
//! CACHE TABLE (the scripts of docs/pipelines/), on TPC-H: the time of each script (median
//! of the runs, each in a fresh session), and what the recompute advisory estimated the
//! uncached script computed again.
//!
//! ```text
//! cargo run --release -p stagesql-benches --bin pipeline -- --sf 1 --runs 3 [--slots 2]
//! ```

use std::time::Instant;

use stagesql::{Session, SessionOptions};
use stagesql_benches::{Args, median};

const WITHOUT: &str = include_str!("../../../docs/pipelines/shared_without_cache.sql");
const WITH: &str = include_str!("../../../docs/pipelines/shared_with_cache.sql");

#[tokio::main]
async fn main() -> stagesql::Result<()> {
    let args = Args::from_env();
    let sf = args.scale_factor(1.0);
    let runs = args.runs(3);
    let slots = args.slots();
    // The writes go to a directory of their own.
    let out = tempfile_dir();
    std::env::set_current_dir(&out).expect("enter the output directory");
    let mut times = [Vec::new(), Vec::new()];
    let mut estimate_ms = 0.0;
    let mut recomputed_stages = 0;
    for run in 0..=runs {
        for (index, script) in [WITHOUT, WITH].into_iter().enumerate() {
            let session = Session::with_options(SessionOptions {
                settings: vec![("spark.executor.cores".into(), slots.to_string())],
                ..SessionOptions::default()
            })?;
            session.load_tpch(sf).await?;
            let _ = std::fs::remove_dir_all("pipeline-out");
            let started = Instant::now();
            session.sql(script).await?;
            let seconds = started.elapsed().as_secs_f64();
            // Run 0 warms the file cache and is not counted.
            if run > 0 {
                times[index].push(seconds);
            }
            if index == 0 && run == runs {
                let recomputed: Vec<_> = session
                    .jobs()
                    .iter()
                    .flat_map(|job| session.recomputed_by(job.job))
                    .collect();
                recomputed_stages = recomputed.len();
                estimate_ms = recomputed.iter().map(|r| r.earlier.ms).sum();
            }
        }
    }
    let without = median(times[0].clone());
    let with = median(times[1].clone());
    println!("TPC-H SF {sf}, {slots} slots, median of {runs} runs (after a warm-up)\n");
    println!("| script | time (s) |\n|---|---|");
    println!("| without CACHE TABLE (three jobs compute the join) | {without:.3} |");
    println!("| with CACHE TABLE (one job computes it, three read it) | {with:.3} |");
    println!(
        "| saved | {:.3} ({:.0}%) |",
        without - with,
        100.0 * (without - with) / without
    );
    println!(
        "\nrecompute advisory, uncached script: {recomputed_stages} stage(s) computed again, estimated {:.3} s (the span the first job took to compute them)",
        estimate_ms / 1000.0
    );
    let _ = std::fs::remove_dir_all(&out);
    Ok(())
}

/// A fresh directory under the system's temporary directory.
fn tempfile_dir() -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("stagesql-pipeline-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("create the output directory");
    dir
}

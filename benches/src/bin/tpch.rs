//! TPC-H: all 22 queries in stages mode against pipelined mode, in one run.
//!
//! ```text
//! cargo run --release -p stagesql-benches --bin tpch -- [--sf 1] [--runs 3] [--partitions N] [--slots N]
//! ```
//!
//! By default `spark.sql.shuffle.partitions` equals the slot count (the fair comparison:
//! pipelined DataFusion uses one partition per core). Prints a Markdown table of the median
//! time per query in each mode and their ratio, then the geometric mean of the ratios.

use std::time::Instant;

use stagesql::{Session, SessionOptions, tpch};

struct Options {
    scale_factor: f64,
    runs: usize,
    partitions: Option<usize>,
    slots: usize,
}

fn options() -> Options {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let value = |flag: &str| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .cloned()
    };
    Options {
        scale_factor: value("--sf").and_then(|v| v.parse().ok()).unwrap_or(1.0),
        runs: value("--runs")
            .and_then(|v| v.parse().ok())
            .unwrap_or(3)
            .max(1),
        partitions: value("--partitions").and_then(|v| v.parse().ok()),
        slots: value("--slots")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get())),
    }
}

async fn session(mode: &str, options: &Options) -> stagesql::Result<Session> {
    let partitions = options.partitions.unwrap_or(options.slots);
    let session = Session::with_options(SessionOptions {
        settings: vec![
            ("stagesql.execution.mode".into(), mode.into()),
            ("spark.executor.cores".into(), options.slots.to_string()),
            (
                "spark.sql.shuffle.partitions".into(),
                partitions.to_string(),
            ),
            (
                "datafusion.execution.target_partitions".into(),
                options.slots.to_string(),
            ),
        ],
        ..SessionOptions::default()
    })?;
    session.load_tpch(options.scale_factor).await?;
    Ok(session)
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> stagesql::Result<()> {
    let options = options();
    let stages = session("stages", &options).await?;
    let pipelined = session("pipelined", &options).await?;
    println!(
        "TPC-H SF {} — {} runs, median ms; {} slots, spark.sql.shuffle.partitions = {}\n",
        options.scale_factor,
        options.runs,
        options.slots,
        options.partitions.unwrap_or(options.slots)
    );
    println!("| query | pipelined ms | stages ms | stages / pipelined |");
    println!("|---|---:|---:|---:|");
    let mut log_sum = 0.0;
    let mut worst: (usize, f64) = (0, 0.0);
    for number in 1..=22 {
        let sql = tpch::query(number).expect("22 queries");
        let mut times = [Vec::new(), Vec::new()];
        // Alternate the modes run by run so drift affects both alike.
        for _ in 0..options.runs {
            for (index, session) in [&pipelined, &stages].into_iter().enumerate() {
                let started = Instant::now();
                session.sql(sql).await?;
                times[index].push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let [pipelined_ms, stages_ms] = times.map(median);
        let ratio = stages_ms / pipelined_ms;
        log_sum += ratio.ln();
        if ratio > worst.1 {
            worst = (number, ratio);
        }
        println!("| Q{number} | {pipelined_ms:.1} | {stages_ms:.1} | {ratio:.2} |");
    }
    println!(
        "\ngeometric mean of stages / pipelined: {:.3}; largest: Q{} at {:.2}",
        (log_sum / 22.0).exp(),
        worst.0,
        worst.1
    );
    Ok(())
}

//! TPC-H: all 22 queries in stages mode against pipelined mode, in one run.
//!
//! ```text
//! cargo run --release -p stagesql-benches --bin tpch -- [--sf 1] [--runs 3] [--partitions N]
//!     [--slots N] [--against pipelined|aqe-off] [--queries 1,7,16] [--conf key=value]...
//!     [--explain]
//! ```
//!
//! By default `spark.sql.shuffle.partitions` equals the slot count (the fair comparison:
//! pipelined DataFusion uses one partition per core). `--against aqe-off` compares stages
//! mode with adaptive execution on against the same with it off. `--conf` applies to both
//! sides. Prints a Markdown table of the median time per query on each side and their ratio,
//! then the geometric mean of the ratios.

use std::time::Instant;

use stagesql::{Session, SessionOptions, tpch};
use stagesql_benches::{Args, median, rows};

struct Options {
    scale_factor: f64,
    runs: usize,
    partitions: Option<usize>,
    slots: usize,
    against: Baseline,
    queries: Vec<usize>,
    /// Print EXPLAIN ANALYZE of the queries in stages mode instead of timing them.
    explain: bool,
    conf: Vec<(String, String)>,
}

/// What stages mode (adaptive execution on) is compared with.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Baseline {
    Pipelined,
    AqeOff,
}

fn options() -> Options {
    let args = Args::from_env();
    Options {
        scale_factor: args.scale_factor(1.0),
        runs: args.runs(3),
        partitions: args.value("--partitions").and_then(|v| v.parse().ok()),
        slots: args.slots(),
        against: match args.value("--against").as_deref() {
            None | Some("pipelined") => Baseline::Pipelined,
            Some("aqe-off") => Baseline::AqeOff,
            Some(other) => panic!("--against {other}: expected pipelined or aqe-off"),
        },
        explain: args.has("--explain"),
        queries: args.queries(),
        conf: args.conf(),
    }
}

async fn session(mode: &str, adaptive: bool, options: &Options) -> stagesql::Result<Session> {
    let partitions = options.partitions.unwrap_or(options.slots);
    let mut settings: Vec<(String, String)> = options.conf.clone();
    settings.extend([
        ("stagesql.execution.mode".into(), mode.into()),
        ("spark.sql.adaptive.enabled".into(), adaptive.to_string()),
        ("spark.executor.cores".into(), options.slots.to_string()),
        (
            "spark.sql.shuffle.partitions".into(),
            partitions.to_string(),
        ),
        (
            "datafusion.execution.target_partitions".into(),
            options.slots.to_string(),
        ),
    ]);
    let session = Session::with_options(SessionOptions {
        settings,
        ..SessionOptions::default()
    })?;
    session.load_tpch(options.scale_factor).await?;
    Ok(session)
}

#[tokio::main]
async fn main() -> stagesql::Result<()> {
    let options = options();
    let stages = session("stages", true, &options).await?;
    let (baseline, label) = match options.against {
        Baseline::Pipelined => (session("pipelined", true, &options).await?, "pipelined"),
        Baseline::AqeOff => (session("stages", false, &options).await?, "AQE off"),
    };
    println!(
        "TPC-H SF {} — {} runs, median ms; {} slots, spark.sql.shuffle.partitions = {}\n",
        options.scale_factor,
        options.runs,
        options.slots,
        options.partitions.unwrap_or(options.slots)
    );
    if options.explain {
        for &number in &options.queries {
            let sql = tpch::query(number).expect("22 queries");
            println!("Q{number}:");
            for row in rows(&stages, &format!("EXPLAIN ANALYZE {sql}")).await? {
                println!("{}", row[0]);
            }
            let tasks = rows(
                &stages,
                "SELECT stage_id, task, round(start_ms, 1), round(duration_ms, 1), shuffle_read_rows, \
                 shuffle_read_bytes, rows_out, peak_memory_bytes FROM system.tasks \
                 WHERE job_id = (SELECT max(job_id) FROM system.jobs) ORDER BY start_ms",
            )
            .await?;
            println!(
                "stage task start_ms duration_ms shuffle_read_rows shuffle_read_bytes rows_out peak_memory_bytes"
            );
            for row in tasks {
                println!("{}", row.join(" "));
            }
        }
        return Ok(());
    }
    println!("| query | {label} ms | stages ms | stages / {label} |");
    println!("|---|---:|---:|---:|");
    let mut log_sum = 0.0;
    let mut worst: (usize, f64) = (0, 0.0);
    for &number in &options.queries {
        let sql = tpch::query(number).expect("22 queries");
        let mut times = [Vec::new(), Vec::new()];
        // Alternate the modes run by run so drift affects both alike.
        for _ in 0..options.runs {
            for (index, session) in [&baseline, &stages].into_iter().enumerate() {
                let started = Instant::now();
                session.sql(sql).await?;
                times[index].push(started.elapsed().as_secs_f64() * 1000.0);
            }
        }
        let [baseline_ms, stages_ms] = times.map(median);
        let ratio = stages_ms / baseline_ms;
        log_sum += ratio.ln();
        if ratio > worst.1 {
            worst = (number, ratio);
        }
        println!("| Q{number} | {baseline_ms:.1} | {stages_ms:.1} | {ratio:.2} |");
    }
    println!(
        "\ngeometric mean of stages / {label}: {:.3}; largest: Q{} at {:.2}",
        (log_sum / options.queries.len() as f64).exp(),
        worst.0,
        worst.1
    );
    Ok(())
}

//! A skewed join: adaptive execution (skew join split) on against off, in one run.
//!
//! ```text
//! cargo run --release -p stagesql-benches --bin skew -- [--rows 4000000] [--runs 5] [--slots 2]
//! ```
//!
//! `facts` has `--rows` rows written by 8 map tasks; key 0 holds 95% of them, the rest spread
//! over 100,000 keys. `dims` has 20 rows for each of those keys, so the join multiplies the
//! skewed key's rows by 20: the stage that joins does most of the query's work, and without
//! adaptive execution one task does nearly all of it. The query is a partitioned join (no
//! broadcast at planning or at runtime) under a global aggregate.
//!
//! The skew thresholds are tuned here for the data's size — the skewed partition is about
//! 60 MiB, not Spark's default of 256 MiB — and the defaults stay as they are. Prints the
//! median times, their ratio, and the skew advisories of EXPLAIN ANALYZE on both sides.

use std::time::Instant;

use stagesql::{Session, SessionOptions};
use stagesql_benches::median;

const QUERY: &str = "SELECT count(*), sum(f.v + d.w) FROM facts f JOIN dims d ON f.k = d.k";

fn value(args: &[String], flag: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

async fn session(adaptive: bool, slots: usize, rows: usize) -> stagesql::Result<Session> {
    let settings = [
        ("spark.sql.adaptive.enabled", adaptive.to_string()),
        ("spark.executor.cores", slots.to_string()),
        ("spark.sql.autoBroadcastJoinThreshold", "-1".into()),
        ("spark.sql.adaptive.autoBroadcastJoinThreshold", "-1".into()),
        (
            "spark.sql.adaptive.skewJoin.skewedPartitionThresholdInBytes",
            "16m".into(),
        ),
        (
            "spark.sql.adaptive.advisoryPartitionSizeInBytes",
            "8m".into(),
        ),
    ];
    let session = Session::with_options(SessionOptions {
        settings: settings
            .into_iter()
            .map(|(k, v)| (k.to_string(), v))
            .collect(),
        ..SessionOptions::default()
    })?;
    let per_map = rows / 8;
    let parts: Vec<String> = (0..8)
        .map(|m| {
            format!(
                "SELECT CASE WHEN v % 20 <> 0 THEN 0 ELSE v % 100000 + 1 END AS k, v \
                 FROM generate_series({}, {}) t(v)",
                m * per_map,
                (m + 1) * per_map - 1
            )
        })
        .collect();
    session
        .sql(&format!(
            "CREATE VIEW facts AS {}",
            parts.join(" UNION ALL ")
        ))
        .await?;
    session
        .sql(
            "CREATE VIEW dims AS \
             SELECT v % 100001 AS k, v AS w FROM generate_series(0, 100001 * 20 - 1) t(v)",
        )
        .await?;
    Ok(session)
}

#[tokio::main]
async fn main() -> stagesql::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rows = value(&args, "--rows", 4_000_000);
    let runs = value(&args, "--runs", 5).max(1);
    let slots = value(&args, "--slots", 2);
    let on = session(true, slots, rows).await?;
    let off = session(false, slots, rows).await?;
    let mut times = [Vec::new(), Vec::new()];
    let mut answers = [String::new(), String::new()];
    for _ in 0..runs {
        for (index, session) in [&off, &on].into_iter().enumerate() {
            let started = Instant::now();
            let answer = stagesql_benches::rows(session, QUERY).await?;
            times[index].push(started.elapsed().as_secs_f64() * 1000.0);
            answers[index] = format!("{answer:?}");
        }
    }
    assert_eq!(answers[0], answers[1], "AQE on and off disagree");
    let [off_ms, on_ms] = times.map(median);
    println!(
        "Skewed join — {rows} fact rows (95% on one key), {slots} slots, {runs} runs, median ms\n"
    );
    println!("| AQE off ms | AQE on ms | off / on |");
    println!("|---:|---:|---:|");
    println!("| {off_ms:.1} | {on_ms:.1} | {:.2} |", off_ms / on_ms);
    for (label, session) in [("AQE off", &off), ("AQE on", &on)] {
        let lines: Vec<String> =
            stagesql_benches::rows(session, &format!("EXPLAIN ANALYZE {QUERY}"))
                .await?
                .into_iter()
                .map(|row| row[0].clone())
                .collect();
        println!("\nEXPLAIN ANALYZE, {label}: skew advisories and decisions");
        for line in lines
            .iter()
            .filter(|l| l.contains("skew") || l.contains("ran:") || l.starts_with("Stage"))
        {
            println!("    {line}");
        }
    }
    Ok(())
}

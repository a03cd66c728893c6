//! Memory: the peak resident memory and the spill of each TPC-H query at given
//! `spark.executor.memory` settings, each query in a process of its own (a process's peak RSS
//! only grows), against Spark's budget for an executor: its memory plus
//! `spark.executor.memoryOverhead` = max(384 MiB, 10%).
//!
//! ```text
//! cargo run --release -p stagesql-benches --bin memory -- [--sf 10] [--memory 1g,2g]
//!     [--slots N] [--queries 1,9,21] [--conf key=value]...
//! ```
//!
//! The data is generated once into the TPC-H cache directory. Prints a Markdown table per
//! memory setting: peak RSS, spill, time, and whether the peak stayed within the budget.

use std::process::Command;
use std::time::Instant;

use stagesql::config::human_bytes;
use stagesql::{Session, SessionOptions, tpch};
use stagesql_benches::Args;

struct Options {
    scale_factor: f64,
    memory: Vec<String>,
    slots: usize,
    queries: Vec<usize>,
    conf: Vec<(String, String)>,
    /// Set in the child process: the one query to run, at one memory setting.
    child: Option<(usize, String)>,
}

fn options() -> Options {
    let args = Args::from_env();
    Options {
        scale_factor: args.scale_factor(10.0),
        memory: args.value("--memory").map_or_else(
            || vec!["1g".into(), "2g".into()],
            |v| v.split(',').map(|s| s.trim().to_string()).collect(),
        ),
        slots: args.slots(),
        queries: args.queries(),
        conf: args.conf(),
        child: args
            .value("--child-query")
            .and_then(|q| q.parse().ok())
            .zip(args.value("--child-memory")),
    }
}

fn session(options: &Options, memory: &str) -> Session {
    let mut settings = vec![
        (
            "spark.executor.cores".to_string(),
            options.slots.to_string(),
        ),
        ("spark.executor.memory".to_string(), memory.to_string()),
    ];
    settings.extend(options.conf.iter().cloned());
    Session::with_options(SessionOptions {
        settings,
        ..SessionOptions::default()
    })
    .expect("valid settings")
}

/// Peak resident memory of this process so far (`VmHWM`).
fn peak_rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The child: runs one query, prints `peak_rss spill_bytes ms` (or `error …`).
fn run_child(options: &Options, query: usize, memory: &str) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a runtime");
    let session = session(options, memory);
    runtime.block_on(async {
        session
            .load_tpch(options.scale_factor)
            .await
            .expect("TPC-H data");
        let started = Instant::now();
        let sql = tpch::query(query).expect("a TPC-H query");
        match session.sql(sql).await {
            Ok(_) => {
                let spilled: u64 = session
                    .jobs()
                    .iter()
                    .flat_map(|j| j.stages.iter())
                    .map(|s| s.spill_bytes())
                    .sum();
                println!(
                    "{} {spilled} {:.0}",
                    peak_rss(),
                    started.elapsed().as_secs_f64() * 1000.0
                );
            }
            Err(error) => println!("error {}", error.message().replace('\n', " ")),
        }
    });
}

fn main() {
    // As the CLI does (see its `main`).
    stagesql::executor::limit_allocator_arenas();
    let options = options();
    if let Some((query, memory)) = &options.child {
        run_child(&options, *query, memory);
        return;
    }
    // Generate the data once, before any measured process.
    let runtime = tokio::runtime::Runtime::new().expect("a runtime");
    runtime
        .block_on(session(&options, "1g").load_tpch(options.scale_factor))
        .expect("TPC-H data");
    let me = std::env::current_exe().expect("the benchmark's path");
    for memory in &options.memory {
        let bytes = stagesql::config::keys::parse_bytes(memory).expect("--memory: sizes") as u64;
        let budget = bytes + (bytes / 10).max(384 << 20);
        println!(
            "\nTPC-H SF {} — spark.executor.memory = {memory}, {} slots; budget {} (memory + max(384 MiB, 10%))\n",
            options.scale_factor,
            options.slots,
            human_bytes(budget)
        );
        println!("| query | peak RSS | spill | ms | within budget |");
        println!("|---|---:|---:|---:|---|");
        let mut within = 0;
        for &query in &options.queries {
            let mut child = Command::new(&me);
            child.args([
                "--sf",
                &options.scale_factor.to_string(),
                "--slots",
                &options.slots.to_string(),
                "--child-query",
                &query.to_string(),
                "--child-memory",
                memory,
            ]);
            for (k, v) in &options.conf {
                child.args(["--conf", &format!("{k}={v}")]);
            }
            let output = child.output().expect("the child runs");
            let line = String::from_utf8_lossy(&output.stdout).trim().to_string();
            let fields: Vec<&str> = line.split_whitespace().collect();
            match fields.as_slice() {
                [rss, spill, ms] => {
                    let rss: u64 = rss.parse().unwrap_or(0);
                    let ok = rss <= budget;
                    within += usize::from(ok);
                    println!(
                        "| Q{query} | {} | {} | {ms} | {} |",
                        human_bytes(rss),
                        human_bytes(spill.parse().unwrap_or(0)),
                        if ok { "yes" } else { "**no**" }
                    );
                }
                _ => println!(
                    "| Q{query} | failed: {} {} | | | **no** |",
                    line,
                    String::from_utf8_lossy(&output.stderr)
                        .lines()
                        .last()
                        .unwrap_or_default()
                ),
            }
        }
        println!(
            "\n{within} of {} queries within budget",
            options.queries.len()
        );
    }
}

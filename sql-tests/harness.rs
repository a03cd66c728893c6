//! Runs every `sql-tests/**/*.slt` file through the engine, in stages mode (adaptive
//! execution on and off, with and without injected task failures) and in pipelined mode,
//! and fails on any failure.
//!
//! `cargo test -p stagesql-sql-tests` ends with the line `N passed, N failed`. Arguments
//! narrow the run: `cargo test -p stagesql-sql-tests -- explain` runs only files whose path
//! contains `explain`.

use std::path::PathBuf;
use std::process::ExitCode;

use stagesql::SessionOptions;
use stagesql::slt::{self, RunOptions};

fn main() -> ExitCode {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    // libtest-style flags (`--nocapture`, `--test-threads`) are accepted and ignored; the
    // remaining words filter files by path.
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let files = match slt::collect_files(std::slice::from_ref(&root)) {
        Ok(files) => files,
        Err(error) => {
            eprintln!("error: {}", error.message());
            return ExitCode::FAILURE;
        }
    };
    let files: Vec<PathBuf> = files
        .into_iter()
        .filter(|file| {
            let name = file
                .strip_prefix(&root)
                .unwrap_or(file)
                .to_string_lossy()
                .into_owned();
            filters.is_empty() || filters.iter().any(|filter| name.contains(filter.as_str()))
        })
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let mut stdout = std::io::stdout();
    // Every suite runs in both execution modes, and in stages mode with adaptive execution
    // on (the default) and off, and with task attempts failing at random (on many slots and
    // on one); results must be identical. Records whose output shows the failures
    // themselves (EXPLAIN ANALYZE, system.tasks) carry `skipif faults`.
    let mut total = slt::Summary::default();
    let faults = |seed: &'static str| {
        [
            ("stagesql.test.fault_seed", seed),
            ("stagesql.test.fault_probability", "0.3"),
        ]
    };
    let configurations: [(&str, Vec<(&str, &str)>); 5] = [
        ("stages", vec![]),
        (
            "stages, AQE off",
            vec![("spark.sql.adaptive.enabled", "false")],
        ),
        ("stages, task faults", faults("1").to_vec()),
        (
            "stages, AQE off, 1 slot, task faults",
            [
                ("spark.sql.adaptive.enabled", "false"),
                ("spark.executor.cores", "1"),
            ]
            .into_iter()
            .chain(faults("2"))
            .collect(),
        ),
        ("pipelined", vec![("stagesql.execution.mode", "pipelined")]),
    ];
    for (mode, settings) in configurations {
        let options = RunOptions {
            complete: false,
            float64_digits: 0,
            compat: slt::Compat::Stagesql,
            session: SessionOptions {
                settings: settings
                    .iter()
                    .map(|(key, value)| (key.to_string(), value.to_string()))
                    .collect(),
                ..SessionOptions::default()
            },
            // Records whose output shows injected failures, or stages and blocks that
            // pipelined mode does not have, are skipped there (`skipif faults`,
            // `skipif pipelined`).
            labels: [
                mode.contains("faults").then_some("faults"),
                (mode == "pipelined").then_some("pipelined"),
            ]
            .into_iter()
            .flatten()
            .map(str::to_string)
            .collect(),
        };
        match runtime.block_on(slt::run(&files, &options, &mut stdout)) {
            Ok(summary) => {
                println!(
                    "sqllogictest, {mode} mode: {} files, {}",
                    summary.files,
                    summary.line()
                );
                total.passed += summary.passed;
                total.failed += summary.failed;
                total.skipped += summary.skipped;
            }
            Err(error) => {
                eprintln!("error ({mode} mode): {}", error.message());
                return ExitCode::FAILURE;
            }
        }
    }
    println!("{}", total.line());
    if total.failed == 0 && total.passed > 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

//! Differential testing with generated queries: each query of a range of seeds runs in
//! pipelined mode (the reference) and in stages mode under several configurations — adaptive
//! execution off, on, with every rule forced, one slot, three slots with an odd number of
//! shuffle partitions, random task failures — and every answer must equal the reference
//! (as a multiset of rows, or in order where the query orders every column).
//!
//! ```text
//! cargo test -p stagesql-sql-tests --test generated                  # CI: the fixed seeds
//! STAGESQL_QGEN_SEEDS=0..20000 cargo test --release -p stagesql-sql-tests --test generated
//! STAGESQL_QGEN_SEEDS=4711 cargo test -p stagesql-sql-tests --test generated -- --verbose
//! ```
//!
//! `generated/regressions.txt` lists the seeds of differences found and fixed; they run
//! every time.

use std::process::ExitCode;
use std::time::Instant;

use stagesql::tpch::answers::rows;
use stagesql::{Session, SessionOptions};
use stagesql_sql_tests::qgen::{self, Query};

/// The seeds CI runs (besides the regressions).
const CI_SEEDS: std::ops::Range<u64> = 0..1000;

/// The configurations compared with the reference, by name.
fn configurations() -> Vec<(&'static str, Vec<(&'static str, &'static str)>)> {
    let forced = [
        // Joins planned as shuffles, then switched to broadcasts at run time.
        ("spark.sql.autoBroadcastJoinThreshold", "-1"),
        ("spark.sql.adaptive.autoBroadcastJoinThreshold", "100MB"),
        ("spark.sql.adaptive.advisoryPartitionSizeInBytes", "64"),
    ];
    let split = [
        // No broadcasts; every partition above the median is skewed and split; tiny
        // coalescing targets.
        ("spark.sql.autoBroadcastJoinThreshold", "-1"),
        ("spark.sql.adaptive.autoBroadcastJoinThreshold", "-1"),
        ("spark.sql.adaptive.skewJoin.skewedPartitionFactor", "1"),
        (
            "spark.sql.adaptive.skewJoin.skewedPartitionThresholdInBytes",
            "1",
        ),
        ("spark.sql.adaptive.advisoryPartitionSizeInBytes", "256"),
    ];
    vec![
        (
            "stages, AQE off",
            vec![("spark.sql.adaptive.enabled", "false")],
        ),
        ("stages", vec![]),
        ("stages, AQE forced to switch joins", forced.to_vec()),
        ("stages, AQE forced to split and coalesce", split.to_vec()),
        (
            "stages, 1 slot",
            vec![
                ("spark.executor.cores", "1"),
                ("spark.sql.shuffle.partitions", "5"),
            ],
        ),
        (
            "stages, 3 slots, 7 partitions, task faults",
            vec![
                ("spark.executor.cores", "3"),
                ("spark.sql.shuffle.partitions", "7"),
                ("stagesql.test.fault_seed", "3"),
                ("stagesql.test.fault_probability", "0.2"),
            ],
        ),
    ]
}

/// Seeds from `STAGESQL_QGEN_SEEDS` (`N`, `A..B` or a comma list), else [`CI_SEEDS`].
fn seeds() -> Vec<u64> {
    let parse = |text: &str| -> Option<Vec<u64>> {
        let mut seeds = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            match part.split_once("..") {
                Some((a, b)) => seeds.extend(a.trim().parse::<u64>().ok()?..b.trim().parse().ok()?),
                None => seeds.push(part.parse().ok()?),
            }
        }
        Some(seeds)
    };
    match std::env::var("STAGESQL_QGEN_SEEDS") {
        Ok(text) => parse(&text).unwrap_or_else(|| {
            eprintln!("STAGESQL_QGEN_SEEDS: expected N, A..B or a comma list, got '{text}'");
            std::process::exit(2);
        }),
        Err(_) => {
            let mut seeds: Vec<u64> = include_str!("generated/regressions.txt")
                .lines()
                .filter_map(|l| l.split('#').next()?.trim().parse().ok())
                .collect();
            seeds.extend(CI_SEEDS);
            seeds
        }
    }
}

async fn session(settings: &[(&str, &str)]) -> Session {
    let mut all = vec![("spark.executor.cores".to_string(), "2".to_string())];
    all.extend(settings.iter().map(|(k, v)| (k.to_string(), v.to_string())));
    let session = Session::with_options(SessionOptions {
        settings: all,
        ..SessionOptions::default()
    })
    .expect("a session starts");
    session.load_tpch(0.01).await.expect("TPC-H SF 0.01 loads");
    session
        .sql(qgen::SETUP)
        .await
        .expect("the edge tables are created");
    session
}

/// A query's answer: its rows as normalized cells, sorted unless the query orders them.
async fn answer(session: &Session, query: &Query) -> Result<Vec<String>, String> {
    let results = session.sql(&query.sql).await.map_err(|e| e.message())?;
    let batches = results
        .last()
        .and_then(|r| r.batches())
        .ok_or("the query returned no rows")?;
    let mut lines: Vec<String> = rows(batches)?
        .into_iter()
        .map(|row| {
            row.iter()
                .map(|cell| qgen::normalize(cell))
                .collect::<Vec<_>>()
                .join("|")
        })
        .collect();
    if !query.ordered {
        lines.sort();
    }
    Ok(lines)
}

fn main() -> ExitCode {
    let verbose = std::env::args().any(|a| a == "--verbose");
    // Panics in the engine (DataFusion's own assertions among them) come back as the
    // statement's error; their messages show with --verbose only.
    std::panic::set_hook(Box::new(move |info| {
        if verbose {
            eprintln!("panic: {info}");
        }
    }));
    let seeds = seeds();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime starts");
    let started = Instant::now();
    let configurations = configurations();
    let (reference, sessions) = runtime.block_on(async {
        let reference = session(&[("stagesql.execution.mode", "pipelined")]).await;
        let mut sessions = Vec::new();
        for (name, settings) in &configurations {
            sessions.push((*name, session(settings).await));
        }
        (reference, sessions)
    });
    let (mut compared, mut invalid, mut differences) = (0usize, 0usize, 0usize);
    for seed in &seeds {
        let query = qgen::generate(*seed);
        if verbose {
            println!("seed {seed}: {}", query.sql);
        }
        let expected = match runtime.block_on(answer(&reference, &query)) {
            Ok(rows) => rows,
            Err(error) => {
                // A query the reference cannot run (a scalar subquery of several rows, an
                // overflow): nothing to compare. Said with --verbose.
                invalid += 1;
                if verbose {
                    println!("  reference error: {error}");
                }
                continue;
            }
        };
        compared += 1;
        for (name, session) in &sessions {
            let actual = runtime.block_on(answer(session, &query));
            let problem = match actual {
                Ok(rows) if rows == expected => continue,
                Ok(rows) => {
                    let first = expected
                        .iter()
                        .zip(&rows)
                        .position(|(a, b)| a != b)
                        .unwrap_or(expected.len().min(rows.len()));
                    format!(
                        "{} rows against the reference's {}; first difference at row {first}: {:?} against {:?}",
                        rows.len(),
                        expected.len(),
                        rows.get(first),
                        expected.get(first)
                    )
                }
                Err(error) => format!("failed: {error}"),
            };
            differences += 1;
            println!(
                "DIFFERENCE seed {seed} ({name}): {problem}\n  {}",
                query.sql
            );
        }
    }
    println!(
        "generated queries: {} seeds, {compared} compared in {} configurations, {invalid} the reference could not run, {differences} differences ({:.0} s)",
        seeds.len(),
        configurations.len(),
        started.elapsed().as_secs_f64()
    );
    // A generator whose queries mostly fail would test nothing.
    if differences == 0 && compared * 10 >= seeds.len() * 7 {
        ExitCode::SUCCESS
    } else {
        if differences == 0 {
            println!("too few valid queries: {compared} of {}", seeds.len());
        }
        ExitCode::FAILURE
    }
}

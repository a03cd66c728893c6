//! TPC-H correctness: all 22 queries against the reference answers.
//!
//! Scale factor 1 is the scale the TPC publishes answers for. The queries run in stages mode
//! with 200 and 7 shuffle partitions, on 1 and 8 slots, and in pipelined mode. The data is generated once into
//! the TPC-H cache directory (`$STAGESQL_TPCH_DIR` or the user cache dir) and reused.

use stagesql::datafusion::arrow::array::RecordBatch;
use stagesql::{Session, StatementResult, tpch};

mod common;

async fn run_query(session: &Session, number: usize) -> Vec<RecordBatch> {
    let text = tpch::query(number).expect("22 queries");
    let results = session
        .sql(text)
        .await
        .unwrap_or_else(|e| panic!("Q{number} failed: {}", e.message()));
    // Q15 is create view; query; drop view: the rows are those of the one query.
    results
        .iter()
        .find_map(StatementResult::batches)
        .unwrap_or_else(|| panic!("Q{number} returned no rows"))
        .to_vec()
}

/// Runs all 22 queries in a session with `settings`; returns the mismatches.
async fn check_all(settings: &[(&str, &str)]) -> Vec<String> {
    check_all_in(settings).await.0
}

async fn check_all_in(settings: &[(&str, &str)]) -> (Vec<String>, Session) {
    let session = common::tpch_session(settings, 1.0).await;
    let mut failures = Vec::new();
    for number in 1..=22 {
        let batches = run_query(&session, number).await;
        if let Err(difference) = tpch::answers::check_sf1(number, &batches) {
            failures.push(format!("{settings:?} Q{number}: {difference}"));
        }
    }
    (failures, session)
}

/// Part of the test below, so it does not compete with the other configurations for cores.
async fn tpch_sf1_with_512m_of_executor_memory_spills_and_stays_correct() {
    let (failures, session) = check_all_in(&[
        ("spark.executor.memory", "512m"),
        ("spark.executor.cores", "8"),
    ])
    .await;
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    let spilled: u64 = session
        .jobs()
        .iter()
        .flat_map(|job| job.stages.iter())
        .map(|stage| stage.spill_bytes())
        .sum();
    assert!(spilled > 0, "no task spilled with 512m");
}

#[tokio::test(flavor = "multi_thread")]
async fn tpch_sf1_matches_the_reference_answers_in_every_mode() {
    let configurations: [&[(&str, &str)]; 7] = [
        &[("stagesql.execution.mode", "stages")],
        &[
            ("spark.sql.adaptive.enabled", "false"),
            ("spark.sql.shuffle.partitions", "32"),
        ],
        // Every adaptive rule made to fire wherever it can: partitions of a few KiB count
        // as skewed and are split, build sides up to 64 MiB switch to broadcast.
        &[
            (
                "spark.sql.adaptive.skewJoin.skewedPartitionThresholdInBytes",
                "4k",
            ),
            ("spark.sql.adaptive.skewJoin.skewedPartitionFactor", "1.2"),
            ("spark.sql.adaptive.advisoryPartitionSizeInBytes", "256k"),
            ("spark.sql.adaptive.autoBroadcastJoinThreshold", "64m"),
            ("spark.sql.shuffle.partitions", "16"),
        ],
        &[
            ("spark.sql.shuffle.partitions", "7"),
            ("spark.executor.cores", "1"),
        ],
        &[
            ("spark.sql.shuffle.partitions", "7"),
            ("spark.executor.cores", "8"),
        ],
        &[
            ("spark.sql.shuffle.partitions", "200"),
            ("spark.executor.cores", "1"),
        ],
        &[("stagesql.execution.mode", "pipelined")],
    ];
    let mut failures = Vec::new();
    for settings in configurations {
        failures.extend(check_all(settings).await);
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
    tpch_sf1_with_512m_of_executor_memory_spills_and_stays_correct().await;
}

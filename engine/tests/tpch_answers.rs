//! TPC-H correctness: all 22 queries against the reference answers.
//!
//! Scale factor 1 is the scale the TPC publishes answers for. The data is generated once into
//! the TPC-H cache directory (`$STAGESQL_TPCH_DIR` or the user cache dir) and reused.

use stagesql::datafusion::arrow::array::RecordBatch;
use stagesql::{Session, StatementResult, tpch};

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

#[tokio::test(flavor = "multi_thread")]
async fn tpch_sf1_matches_the_reference_answers() {
    let dir = tpch::ensure_data(&tpch::default_cache_dir(), 1.0).expect("TPC-H SF 1 data");
    let session = Session::new().unwrap();
    tpch::register(&session, &dir).await.unwrap();
    let mut failures = Vec::new();
    for number in 1..=22 {
        let batches = run_query(&session, number).await;
        if let Err(difference) = tpch::answers::check_sf1(number, &batches) {
            failures.push(format!("Q{number}: {difference}"));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

//! Helpers shared by the benchmark binaries.

use stagesql::{Session, StatementResult};

/// The median of `values` (the upper one of an even count).
pub fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Runs `sql` and returns the rows of its last statement as text, one vector per row.
pub async fn rows(session: &Session, sql: &str) -> stagesql::Result<Vec<Vec<String>>> {
    let results = session.sql(sql).await?;
    let batches = results
        .last()
        .and_then(StatementResult::batches)
        .unwrap_or_default();
    stagesql::tpch::answers::rows(batches).map_err(stagesql::Error::Internal)
}

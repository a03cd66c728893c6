//! `--summary`: the jobs a script run made, one row each, and what they computed again.

use std::sync::Arc;

use datafusion::arrow::array::{ArrayRef, RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema};
use stagesql::Session;
use stagesql::explain::human_count;
use stagesql::scheduler::JobReport;

/// One row per job of `jobs`: statement (file:line), job, status, stages, tasks,
/// time, rows read from sources, rows the job returned, cache hits and what it recomputed;
/// then one row per statement `--resume` skipped (`skipped`, with why, and no job).
pub fn jobs_table(
    session: &Session,
    jobs: &[JobReport],
    skipped: &[(String, String)],
) -> RecordBatch {
    let text = |values: Vec<String>| Arc::new(StringArray::from(values)) as ArrayRef;
    let read = |job: &JobReport| -> u64 {
        job.stages
            .iter()
            .flat_map(|stage| stage.kept_attempts())
            .map(|attempt| attempt.rows_in.saturating_sub(attempt.shuffle_read_rows))
            .sum()
    };
    let recomputed = |job: &JobReport| -> String {
        session
            .recomputed_by(job.job)
            .iter()
            .map(|r| {
                format!(
                    "stage {} = job {}'s stage {} ({:.0} ms)",
                    r.stage, r.earlier.job, r.earlier.stage, r.earlier.ms
                )
            })
            .collect::<Vec<_>>()
            .join("; ")
    };
    let fields = [
        ("statement", DataType::Utf8),
        ("job", DataType::UInt64),
        ("status", DataType::Utf8),
        ("stages", DataType::UInt64),
        ("tasks", DataType::UInt64),
        ("time_ms", DataType::UInt64),
        ("rows_read", DataType::UInt64),
        ("rows_out", DataType::UInt64),
        ("cache_hits", DataType::UInt64),
        // What a job computed again; for a skipped statement, why it was skipped.
        ("recomputes", DataType::Utf8),
    ];
    let skips = skipped.len();
    // The skipped statements come first (the run skipped them before it ran any job; no
    // job: NULL), then the jobs.
    let per_job = |values: Vec<u64>| {
        let values: Vec<Option<u64>> = std::iter::repeat_n(None, skips)
            .chain(values.into_iter().map(Some))
            .collect();
        Arc::new(UInt64Array::from(values)) as ArrayRef
    };
    let columns = vec![
        text(
            skipped
                .iter()
                .map(|(at, _)| at.clone())
                .chain(
                    jobs.iter()
                        .map(|j| j.at.clone().unwrap_or_else(|| first_line(&j.sql))),
                )
                .collect(),
        ),
        per_job(jobs.iter().map(|j| j.job as u64).collect()),
        text(
            std::iter::repeat_n("skipped".to_string(), skips)
                .chain(jobs.iter().map(|j| j.status.as_str().to_string()))
                .collect(),
        ),
        per_job(jobs.iter().map(|j| j.stages.len() as u64).collect()),
        per_job(
            jobs.iter()
                .map(|j| j.stages.iter().map(|s| s.tasks as u64).sum())
                .collect(),
        ),
        per_job(jobs.iter().map(|j| j.duration.as_millis() as u64).collect()),
        per_job(jobs.iter().map(read).collect()),
        per_job(
            jobs.iter()
                .map(|j| j.result.map_or(0, |r| r.rows))
                .collect(),
        ),
        per_job(jobs.iter().map(|j| j.cache_hits).collect()),
        text(
            skipped
                .iter()
                .map(|(_, why)| why.clone())
                .chain(jobs.iter().map(recomputed))
                .collect(),
        ),
    ];
    let schema = Schema::new(
        fields
            .into_iter()
            .map(|(name, data_type)| {
                Field::new(name, data_type.clone(), data_type != DataType::Utf8)
            })
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns).expect("columns match the schema")
}

/// What the jobs of a run computed again that earlier jobs had computed, in one line; `None`
/// when nothing was.
pub fn recomputation_line(session: &Session, jobs: &[JobReport]) -> Option<String> {
    let recomputed: Vec<_> = jobs
        .iter()
        .flat_map(|job| session.recomputed_by(job.job))
        .collect();
    if recomputed.is_empty() {
        return None;
    }
    let ms: f64 = recomputed.iter().map(|r| r.earlier.ms).sum();
    let rows: u64 = recomputed.iter().map(|r| r.earlier.rows).sum();
    Some(format!(
        "recomputation: {} stage(s) computed again what earlier jobs had computed ({:.0} ms, {} rows when first computed); CACHE TABLE the shared results to save it (see docs/pipelines.md)",
        recomputed.len(),
        ms,
        human_count(rows),
    ))
}

fn first_line(sql: &str) -> String {
    let line = sql.lines().next().unwrap_or_default();
    match line.chars().count() > 60 {
        true => format!("{}…", line.chars().take(60).collect::<String>()),
        false => line.to_string(),
    }
}

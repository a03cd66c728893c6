//! A Ballista job as one of the session's job reports, from the scheduler's REST API: what
//! `system.jobs`, `system.stages`, `system.tasks` and `--summary` show after a cluster run.

use std::time::Duration;

use datafusion::physical_plan::Partitioning;
use serde_json::Value;

use super::{Cluster, rest};
use crate::error::Result;
use crate::events::JobId;
use crate::explain::JobView;
use crate::scheduler::{JobReport, JobStatus, StageReport, TaskMetrics};
use crate::stages::Exchange;

/// What the session knows of a cluster job besides what the scheduler reports.
#[derive(Debug, Clone)]
pub struct JobContext {
    /// The session's id for the job.
    pub job: JobId,
    /// The Ballista job's name in the scheduler, unique ([`Cluster::run`]).
    pub name: String,
    pub sql: String,
    pub at: Option<String>,
    /// The job's stages as planned (for their exchanges and parents).
    pub planned: Option<JobView>,
    pub slots: usize,
}

impl Cluster {
    /// The report of Ballista job `ballista_job`, as the scheduler has it now.
    pub async fn job_report(&self, ballista_job: &str, context: JobContext) -> Result<JobReport> {
        let job = rest::get_json(&self.address, &format!("/api/job/{ballista_job}")).await?;
        let stages =
            rest::get_json(&self.address, &format!("/api/job/{ballista_job}/stages")).await?;
        Ok(report(&job, &stages, context))
    }
}

fn report(job: &Value, stages: &Value, context: JobContext) -> JobReport {
    let started = job["start_time"].as_u64().unwrap_or(0);
    let ended = job["end_time"].as_u64().unwrap_or(started);
    // `status` is Queued, Running, Successful or Failed; `job_status` adds the details.
    let status = job["status"]
        .as_str()
        .or_else(|| job["job_status"].as_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let status = if status.contains("success") || status.contains("complete") {
        JobStatus::Succeeded
    } else if status.contains("fail") {
        JobStatus::Failed
    } else if status.contains("cancel") {
        JobStatus::Cancelled
    } else {
        JobStatus::Running
    };
    let error = match status {
        JobStatus::Failed => job["job_status"]
            .as_str()
            .map(|text| text.strip_prefix("Failed: ").unwrap_or(text).to_string()),
        _ => None,
    };
    let stages = stages["stages"]
        .as_array()
        .map(|list| {
            list.iter()
                .filter_map(|stage| stage_report(stage, started, context.planned.as_ref()))
                .collect()
        })
        .unwrap_or_default();
    JobReport {
        job: context.job,
        sql: context.sql,
        at: context.at,
        status,
        error,
        slots: context.slots,
        duration: Duration::from_millis(ended.saturating_sub(started)),
        stages,
        subqueries: Vec::new(),
        result: None,
        cache_hits: 0,
        cache_misses: 0,
    }
}

fn stage_report(stage: &Value, job_start: u64, planned: Option<&JobView>) -> Option<StageReport> {
    let id = rest::stage_id(stage)?;
    let planned = planned.and_then(|view| view.stages.iter().find(|s| s.id == id));
    let tasks: Vec<&Value> = stage["tasks"]
        .as_array()
        .map(|tasks| tasks.iter().filter(|t| !t.is_null()).collect())
        .unwrap_or_default();
    let since_start = |t: u64| t.saturating_sub(job_start) as f64;
    let attempts: Vec<TaskMetrics> = tasks
        .iter()
        .enumerate()
        .map(|(index, task)| TaskMetrics {
            stage: id,
            stage_attempt: 1,
            task: rest::task_partition(task, index),
            attempt: 1,
            start_ms: since_start(task["start_exec_time"].as_u64().unwrap_or(job_start)),
            duration_ms: task["exec_duration"].as_u64().unwrap_or(0) as f64,
            rows_in: task["input_rows"].as_u64().unwrap_or(0),
            rows_out: task["output_rows"].as_u64().unwrap_or(0),
            error: rest::task_error(task),
            ..TaskMetrics::default()
        })
        .collect();
    let submitted = tasks
        .iter()
        .filter_map(|t| t["scheduled_time"].as_u64())
        .min()
        .map_or(0.0, since_start);
    let completed = tasks
        .iter()
        .filter_map(|t| t["finish_time"].as_u64())
        .max()
        .map_or(submitted, since_start);
    Some(StageReport {
        stage: id,
        exchange: planned.map_or(
            Exchange::Shuffle(Partitioning::UnknownPartitioning(0)),
            |p| p.exchange.clone(),
        ),
        parents: planned.map(|p| p.parents.clone()).unwrap_or_default(),
        initial_tasks: planned.map_or(tasks.len(), |p| p.tasks),
        tasks: tasks.len(),
        decisions: Vec::new(),
        submitted_ms: submitted,
        completed_ms: completed,
        attempts,
        resubmitted: Vec::new(),
        stage_attempts: 1,
        plans: Vec::new(),
    })
}

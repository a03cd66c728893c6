//! A running Ballista job followed through the scheduler's REST API, told to the session's
//! listeners as the job, stage and task events of a local job: the progress line follows the
//! job's stages, and an event log records it.

use std::collections::{HashMap, HashSet};
use std::sync::Weak;
use std::time::Duration;

use serde_json::Value;

use super::report::JobContext;
use super::{Cluster, JobHandle, rest};
use crate::events::{Event, JobId, JobStatus, Listeners, PlannedStage};
use crate::scheduler::TaskMetrics;

/// How often the scheduler is asked how the job is doing.
const POLL: Duration = Duration::from_millis(200);

/// Follows the job of `handle` until it ends, telling `listeners`; `alive` is gone once the
/// statement's result was dropped (the job is then cancelled).
pub async fn follow(
    cluster: Cluster,
    handle: JobHandle,
    context: JobContext,
    listeners: Listeners,
    alive: Weak<()>,
) {
    let JobContext {
        job,
        sql,
        at,
        planned,
        slots,
    } = context;
    let dropped = || alive.strong_count() == 0;
    // The scheduler names the job once it accepted it.
    let id = loop {
        match handle.id() {
            Some(id) => break id,
            None if dropped() => return,
            None => tokio::time::sleep(Duration::from_millis(20)).await,
        }
    };
    let stages = planned.as_ref().map(|view| {
        view.stages
            .iter()
            .map(|stage| PlannedStage {
                stage: stage.id,
                parents: stage.parents.clone(),
                exchange: stage.exchange.to_string(),
                tasks: stage.tasks,
                name: stage
                    .operators
                    .iter()
                    .filter(|op| op.depth <= 2)
                    .map(|op| op.name.clone())
                    .collect::<Vec<_>>()
                    .join(" ← "),
            })
            .collect::<Vec<_>>()
    });
    listeners.emit(Event::JobStart {
        job,
        stages: stages.as_ref().map_or(0, Vec::len),
        sql,
        at,
        slots,
        planned: stages.unwrap_or_default(),
    });
    let mut seen = Seen::default();
    let mut unanswered = 0;
    let (status, error) = loop {
        let state = rest::get_json(cluster.address(), &format!("/api/job/{id}")).await;
        unanswered = match &state {
            Ok(_) => 0,
            Err(_) => unanswered + 1,
        };
        let stages = rest::get_json(cluster.address(), &format!("/api/job/{id}/stages")).await;
        if let Ok(stages) = &stages {
            seen.update(job, stages, &listeners);
        }
        let status = state
            .as_ref()
            .ok()
            .and_then(|s| s["status"].as_str().map(str::to_string));
        match status.as_deref() {
            // `Completed` is what the REST API says of a job that succeeded.
            Some("Completed" | "Successful") => break (JobStatus::Succeeded, None),
            Some("Failed") => {
                let error = state.ok().and_then(|s| {
                    s["job_status"]
                        .as_str()
                        .map(|t| t.trim_start_matches("Failed: ").to_string())
                });
                break (JobStatus::Failed, error);
            }
            // Gone from the scheduler, or the client stopped reading: cancelled.
            None if dropped() => {
                break (
                    JobStatus::Cancelled,
                    Some("the statement was cancelled".into()),
                );
            }
            None if unanswered >= 25 => {
                let error = state.err().map(|e| e.to_string());
                break (JobStatus::Failed, error);
            }
            _ => tokio::time::sleep(POLL).await,
        }
    };
    listeners.emit(Event::JobEnd { job, status, error });
}

/// What the listeners were told so far.
#[derive(Default)]
struct Seen {
    submitted: HashSet<usize>,
    completed: HashSet<usize>,
    started: HashSet<(usize, usize)>,
    ended: HashSet<(usize, usize)>,
    /// When each stage's first task started (the job's clock: the scheduler's milliseconds).
    clock: HashMap<usize, u64>,
}

impl Seen {
    fn update(&mut self, job: JobId, response: &Value, listeners: &Listeners) {
        let Some(stages) = response["stages"].as_array() else {
            return;
        };
        for stage in stages {
            let Some(id) = stage["stage_id"]
                .as_str()
                .and_then(|id| id.parse::<usize>().ok())
            else {
                continue;
            };
            let tasks = stage["tasks"].as_array().cloned().unwrap_or_default();
            let status = stage["stage_status"].as_str().unwrap_or_default();
            if tasks.is_empty() && !matches!(status, "Running" | "Successful") {
                continue;
            }
            if self.submitted.insert(id) {
                listeners.emit(Event::StageSubmitted {
                    job,
                    stage: id,
                    attempt: 1,
                    tasks: tasks.len(),
                    stage_tasks: tasks.len(),
                    decisions: Vec::new(),
                });
            }
            for (index, task) in tasks.iter().enumerate().filter(|(_, t)| !t.is_null()) {
                let partition = task["partition_id"][0]
                    .as_u64()
                    .map_or(index, |p| p as usize);
                let key = (id, partition);
                let start = task["start_exec_time"].as_u64().unwrap_or(0);
                let origin = *self.clock.entry(id).or_insert(start);
                let start_ms = start.saturating_sub(origin) as f64;
                if self.started.insert(key) {
                    listeners.emit(Event::TaskStart {
                        job,
                        stage: id,
                        task: partition,
                        attempt: 1,
                        stage_attempt: 1,
                        executor: 0,
                        slot: 0,
                        start_ms,
                    });
                }
                let failed = task["status"].get("Failed");
                let ended = task["status"] == "Successful" || failed.is_some();
                if ended && self.ended.insert(key) {
                    let error = failed.map(|f| {
                        f["error"]
                            .as_str()
                            .or_else(|| f["reason"].as_str())
                            .unwrap_or("failed")
                            .to_string()
                    });
                    listeners.emit(Event::TaskEnd {
                        job,
                        stage: id,
                        task: partition,
                        attempt: 1,
                        error: error.clone(),
                        metrics: Box::new(TaskMetrics {
                            stage: id,
                            stage_attempt: 1,
                            task: partition,
                            attempt: 1,
                            start_ms,
                            duration_ms: task["exec_duration"].as_u64().unwrap_or(0) as f64,
                            rows_in: task["input_rows"].as_u64().unwrap_or(0),
                            rows_out: task["output_rows"].as_u64().unwrap_or(0),
                            error,
                            ..TaskMetrics::default()
                        }),
                    });
                }
            }
            if status == "Successful" && self.completed.insert(id) {
                listeners.emit(Event::StageCompleted {
                    job,
                    stage: id,
                    attempt: 1,
                });
            }
        }
    }
}

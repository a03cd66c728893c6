//! A running Ballista job followed through the scheduler's REST API, told to the session's
//! listeners as the job, stage and task events of a local job: the progress line follows the
//! job's stages, and an event log records it.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::report::JobContext;
use super::{Cluster, JobHandle, rest};
use crate::events::{Event, JobId, JobStatus, Listeners, PlannedStage};
use crate::scheduler::TaskMetrics;

/// How often the scheduler is asked how the job is doing.
const POLL: Duration = Duration::from_millis(200);

/// How often it is asked which executors are alive.
const EXECUTORS_POLL: Duration = Duration::from_secs(1);

/// What a statement and the follower of its job share: why the follower failed a job the
/// scheduler would have left waiting for ever (the statement's error, in place of the
/// scheduler's "cancelled"), and word that the statement's rows have all arrived (the job has
/// ended: the follower asks once more at once rather than at its next poll).
#[derive(Debug, Clone, Default)]
pub struct JobWatch {
    verdict: Arc<Mutex<Option<String>>>,
    ended: Arc<tokio::sync::Notify>,
}

impl JobWatch {
    pub fn verdict(&self) -> Option<String> {
        self.verdict
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    fn set_verdict(&self, why: String) {
        *self.verdict.lock().unwrap_or_else(|e| e.into_inner()) = Some(why);
    }

    /// The statement has all its rows (or failed).
    pub fn statement_ended(&self) {
        self.ended.notify_one();
    }

    /// Until the next poll, or the statement's end.
    async fn pause(&self) {
        tokio::select! {
            () = tokio::time::sleep(POLL) => {}
            () = self.ended.notified() => {}
        }
    }
}

/// Follows the job of `handle` until it ends, telling `listeners`; `alive` is gone once the
/// statement's result was dropped (the job is then cancelled). A job that stalls after the
/// cluster lost an executor (`stall`, [`Stall`]) is cancelled, with `watch` saying why.
pub async fn follow(
    cluster: Cluster,
    handle: JobHandle,
    context: JobContext,
    listeners: Listeners,
    alive: Weak<()>,
    stall: Option<Duration>,
    watch: JobWatch,
) {
    let JobContext {
        job,
        name,
        sql,
        at,
        planned,
        slots,
    } = context;
    let dropped = || alive.strong_count() == 0;
    // Ballista's client learns the job's id only with the job's first status change, which
    // can be its end: until then, the job is found by its (unique) name.
    let id = loop {
        if let Some(id) = handle.id() {
            break id;
        }
        if dropped() {
            return;
        }
        if let Some(id) = job_named(&cluster, &name).await {
            break id;
        }
        watch.pause().await;
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
    let mut stalled = stall.map(Stall::new);
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
            if let Some(stalled) = &mut stalled
                && let Some(why) = stalled.check(&cluster, &id, stages).await
            {
                watch.set_verdict(why.clone());
                // The scheduler fails the job, and its client's stream ends with an error.
                let _ = rest::cancel_job(cluster.address(), &id).await;
                break (JobStatus::Failed, Some(why));
            }
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
            _ => watch.pause().await,
        }
    };
    listeners.emit(Event::JobEnd { job, status, error });
}

/// The id of the scheduler's job named `name`, once the scheduler lists it.
async fn job_named(cluster: &Cluster, name: &str) -> Option<String> {
    let jobs = rest::get_json(cluster.address(), "/api/jobs").await.ok()?;
    jobs.as_array()?
        .iter()
        .find(|job| job["job_name"] == name)
        .and_then(|job| job["job_id"].as_str().map(str::to_string))
}

/// Watches a running job for the wait Ballista 55 can leave it in after losing an executor:
/// the stages whose input the lost executor held are rolled back, and, with the adaptive
/// planner (apache/datafusion-ballista#1986) or a task slot the scheduler counts as taken for
/// ever under push scheduling, never run again. A job stalls when, after an executor it
/// could have used was lost, none of its tasks runs and none changes for `timeout`.
struct Stall {
    timeout: Duration,
    /// The executors when the job started; `None` until the scheduler said.
    executors: Option<BTreeSet<String>>,
    lost: BTreeSet<String>,
    asked: Option<Instant>,
    /// The job's tasks as last seen, and since when.
    tasks: String,
    since: Instant,
}

impl Stall {
    fn new(timeout: Duration) -> Self {
        Self {
            timeout,
            executors: None,
            lost: BTreeSet::new(),
            asked: None,
            tasks: String::new(),
            since: Instant::now(),
        }
    }

    /// Why the job counts as stalled, once it does.
    async fn check(&mut self, cluster: &Cluster, job: &str, stages: &Value) -> Option<String> {
        if self.asked.is_none_or(|at| at.elapsed() >= EXECUTORS_POLL) {
            self.asked = Some(Instant::now());
            if let Ok(executors) = rest::get_json(cluster.address(), "/api/executors").await {
                let alive: BTreeSet<String> = executors
                    .as_array()
                    .into_iter()
                    .flatten()
                    .filter_map(|e| e["id"].as_str().map(str::to_string))
                    .collect();
                match &self.executors {
                    None => self.executors = Some(alive),
                    Some(before) => self.lost.extend(before.difference(&alive).cloned()),
                }
            }
        }
        let (tasks, running) = task_states(stages);
        if tasks != self.tasks || running || self.lost.is_empty() {
            self.tasks = tasks;
            self.since = Instant::now();
            return None;
        }
        if self.since.elapsed() < self.timeout {
            return None;
        }
        let lost = self.lost.iter().cloned().collect::<Vec<_>>().join(", ");
        Some(format!(
            "Ballista job {job} on the cluster at {} stopped making progress after the cluster lost executor {lost}: none of its tasks ran or changed for {} s, so it was cancelled (Ballista 55 does not always run a lost executor's work again; docs/cluster.md, Failures). Run the statement again; {} sets how long to wait",
            cluster.address(),
            self.timeout.as_secs(),
            crate::config::keys::CLUSTER_STALL_TIMEOUT,
        ))
    }
}

/// Every task's state in the REST API's stage list, as one text (in stage order: the API lists
/// stages in no fixed order), and whether any is running.
fn task_states(stages: &Value) -> (String, bool) {
    let mut running = false;
    let mut states: Vec<(Option<usize>, String)> = stages["stages"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|stage| {
            let mut text = format!("{} ", stage["stage_status"]);
            for task in stage["tasks"].as_array().into_iter().flatten() {
                running |= task["status"] == "Running";
                text += &task["status"].to_string();
            }
            (rest::stage_id(stage), text)
        })
        .collect();
    states.sort();
    let text = states
        .into_iter()
        .map(|(id, text)| format!("{id:?}: {text}\n"))
        .collect();
    (text, running)
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
            let Some(id) = rest::stage_id(stage) else {
                continue;
            };
            let tasks = stage["tasks"].as_array().map_or(&[][..], Vec::as_slice);
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
                let partition = rest::task_partition(task, index);
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
                let error = rest::task_error(task);
                let ended = task["status"] == "Successful" || error.is_some();
                if ended && self.ended.insert(key) {
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

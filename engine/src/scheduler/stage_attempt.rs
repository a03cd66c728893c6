//! One attempt of a stage: its tasks on the job's slots. A failed task is retried on a fresh
//! copy of the stage plan, up to `spark.task.maxFailures` failures, while its siblings go on.
//! Two kinds of failure end the attempt instead, for the scheduler to decide what runs again:
//! a task that could not read a parent's output ([`FetchFailed`]: the parent must run its
//! lost map tasks first), and any failure in a stage whose tasks share state
//! ([`Stage::tasks_share_state`]: the whole stage must run again).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use datafusion::common::tree_node::{Transformed, TreeNode};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::MemoryPool;
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::ExecutionPlan;
use tokio::task::JoinSet;

use super::metrics::{Measured, RanPlan, TaskMetrics};
use super::{JobSettings, TaskMemoryPool};
use crate::events::{Event, JobId, Listeners, StageId};
use crate::executor::{Executors, SlotGrant};
use crate::shuffle::{FetchFailed, ShuffleStore};
use crate::stages::{ShuffleWriteExec, Stage};

/// Builds task contexts: the session's functions and configuration, the job's shuffle store
/// and runtime, and (for a task) its own memory accounting.
#[derive(Clone)]
pub(super) struct TaskContexts {
    pub base: Arc<TaskContext>,
    pub runtime: Arc<RuntimeEnv>,
    pub store: Arc<ShuffleStore>,
}

impl TaskContexts {
    pub fn make(
        &self,
        task_id: Option<String>,
        pool: Option<Arc<dyn MemoryPool>>,
    ) -> Arc<TaskContext> {
        let runtime = match pool {
            Some(pool) => Arc::new(job_runtime(self.runtime.clone(), pool)),
            None => self.runtime.clone(),
        };
        let mut config = self
            .base
            .session_config()
            .clone()
            .with_extension(self.store.clone());
        // Tasks are independent: a scan partition reads only its own file splits.
        config
            .options_mut()
            .execution
            .enable_file_stream_work_stealing = false;
        Arc::new(TaskContext::new(
            task_id,
            self.base.session_id(),
            config,
            self.base.scalar_functions().clone(),
            self.base.higher_order_functions().clone(),
            self.base.aggregate_functions().clone(),
            self.base.window_functions().clone(),
            runtime,
        ))
    }
}

/// The session's runtime with another memory pool.
pub(super) fn job_runtime(base: Arc<RuntimeEnv>, pool: Arc<dyn MemoryPool>) -> RuntimeEnv {
    RuntimeEnv {
        memory_pool: pool,
        disk_manager: base.disk_manager.clone(),
        cache_manager: base.cache_manager.clone(),
        object_store_registry: base.object_store_registry.clone(),
    }
}

/// A new instance of every operator of `plan`, with its execution state reset.
pub(crate) fn fresh_copy(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| Ok(Transformed::yes(node.reset_state()?)))
        .map(|t| t.data)
}

/// The task attempts of a job running now. An attempt that is stopped before it finishes —
/// its stage attempt ended early, its job failed or was cancelled — never reports itself,
/// so it is ended here as killed, with the reason: listeners hear it before its slot is
/// free, and the job's report keeps it (Spark's `TaskKilled`).
#[derive(Clone)]
pub(super) struct InFlight {
    job: JobId,
    job_started: Instant,
    listeners: Listeners,
    state: Arc<Mutex<InFlightState>>,
}

#[derive(Default)]
struct InFlightState {
    running: BTreeMap<(StageId, usize, usize), TaskMetrics>,
    /// Attempts ended as killed, not yet taken into a report.
    killed: Vec<TaskMetrics>,
    /// Why the attempts of a stage (or, under `None`, of every stage) are being stopped.
    stopping: BTreeMap<Option<StageId>, String>,
}

impl InFlight {
    pub fn new(job: JobId, job_started: Instant, listeners: Listeners) -> Self {
        Self {
            job,
            job_started,
            listeners,
            state: Arc::default(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, InFlightState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// An attempt starts: listeners hear it. Dropping the returned guard before
    /// [`Attempt::finish`] ends it as killed.
    fn start(&self, started: TaskMetrics) -> Attempt {
        self.listeners.emit(Event::TaskStart {
            job: self.job,
            stage: started.stage,
            task: started.task,
            attempt: started.attempt,
            stage_attempt: started.stage_attempt,
            executor: started.executor,
            slot: started.slot,
            start_ms: started.start_ms,
        });
        let key = (started.stage, started.task, started.attempt);
        self.lock().running.insert(key, started);
        Attempt {
            in_flight: self.clone(),
            key,
        }
    }

    /// Why `stage`'s attempts are stopped from now on.
    pub fn stopping(&self, stage: Option<StageId>, reason: String) {
        self.lock().stopping.insert(stage, reason);
    }

    fn kill_one(&self, state: &mut InFlightState, key: (StageId, usize, usize)) {
        let Some(mut attempt) = state.running.remove(&key) else {
            return;
        };
        let reason = state
            .stopping
            .get(&Some(key.0))
            .or_else(|| state.stopping.get(&None))
            .map_or("its job ended", String::as_str);
        attempt.duration_ms = self.job_started.elapsed().as_secs_f64() * 1000.0 - attempt.start_ms;
        attempt.error = Some(format!("killed: {reason}"));
        attempt.killed = true;
        self.listeners.emit(Event::TaskEnd {
            job: self.job,
            stage: attempt.stage,
            task: attempt.task,
            attempt: attempt.attempt,
            error: attempt.error.clone(),
            metrics: Box::new(attempt.clone()),
        });
        state.killed.push(attempt);
    }

    /// Ends the attempts still running — of `stage`, or of every stage — as killed, and
    /// returns them with those killed before.
    pub fn kill(&self, stage: Option<StageId>) -> Vec<TaskMetrics> {
        let mut state = self.lock();
        let keys: Vec<_> = state
            .running
            .keys()
            .filter(|(s, _, _)| stage.is_none_or(|stage| *s == stage))
            .copied()
            .collect();
        for key in keys {
            self.kill_one(&mut state, key);
        }
        let (taken, kept) = std::mem::take(&mut state.killed)
            .into_iter()
            .partition(|a| stage.is_none_or(|stage| a.stage == stage));
        state.killed = kept;
        if stage.is_some() {
            state.stopping.remove(&stage);
        }
        taken
    }
}

/// One running task attempt; dropped before it finishes (its future was), it is killed.
struct Attempt {
    in_flight: InFlight,
    key: (StageId, usize, usize),
}

impl Attempt {
    /// The attempt ran to its end: listeners hear how.
    fn finish(self, metrics: &TaskMetrics) {
        if self.in_flight.lock().running.remove(&self.key).is_some() {
            self.in_flight.listeners.emit(Event::TaskEnd {
                job: self.in_flight.job,
                stage: metrics.stage,
                task: metrics.task,
                attempt: metrics.attempt,
                error: metrics.error.clone(),
                metrics: Box::new(metrics.clone()),
            });
        }
    }
}

impl Drop for Attempt {
    fn drop(&mut self) {
        let mut state = self.in_flight.lock();
        self.in_flight.kill_one(&mut state, self.key);
    }
}

/// What a task still to run brings to an attempt of its stage.
#[derive(Debug, Clone, Copy)]
pub(super) struct PendingTask {
    pub task: usize,
    /// The number its next attempt gets (attempts count over every stage attempt).
    pub attempt: usize,
    /// Failures so far (fetch failures do not count, as in Spark).
    pub failures: usize,
}

/// One attempt of one stage.
pub(super) struct StageAttempt {
    pub job: JobId,
    /// The stage's plan instance this attempt's tasks run on first.
    pub stage: Stage,
    pub attempt: usize,
    pub tasks: Vec<PendingTask>,
    pub shared_state: bool,
    pub settings: JobSettings,
    pub executors: Arc<Executors>,
    pub in_flight: InFlight,
    pub contexts: TaskContexts,
    pub job_started: Instant,
}

/// How a stage attempt ended.
#[derive(Debug)]
pub(super) enum AttemptOutcome {
    /// Every task of the attempt succeeded.
    Succeeded,
    /// A task could not read a parent's output.
    FetchFailed(FetchFailed),
    /// A task of a stage whose tasks share state failed (and may still be retried).
    TaskFailed {
        task: usize,
        attempt: usize,
        error: String,
    },
}

/// What a stage attempt did: its outcome (an error fails the job), every task attempt it
/// made, and the plan instances its successful attempts ran on.
pub(super) struct AttemptReport {
    pub outcome: Result<AttemptOutcome>,
    pub attempts: Vec<TaskMetrics>,
    pub plans: Vec<RanPlan>,
    /// Tasks whose output this attempt committed.
    pub succeeded: Vec<usize>,
}

/// One task's attempts within a stage attempt.
struct TaskRun {
    attempts: Vec<TaskMetrics>,
    /// A copy of the plan that ran the successful attempt, when it was not the shared one.
    copy: Option<Arc<dyn ExecutionPlan>>,
    result: std::result::Result<(), Stop>,
}

/// Why a task ended its stage attempt.
enum Stop {
    Outcome(AttemptOutcome),
    Job(DataFusionError),
}

impl StageAttempt {
    pub async fn run(self) -> AttemptReport {
        let this = Arc::new(self);
        let mut running = JoinSet::new();
        for pending in this.tasks.clone() {
            let run = this.clone();
            running.spawn(async move { run.run_task(pending).await });
        }
        let mut report = AttemptReport {
            outcome: Ok(AttemptOutcome::Succeeded),
            attempts: Vec::new(),
            plans: Vec::new(),
            succeeded: Vec::new(),
        };
        let mut stopped = false;
        // Ends the attempt: the tasks still running are stopped (killed, with `reason`), and
        // those that finish meanwhile are recorded as they are.
        let stop = |running: &mut JoinSet<TaskRun>, reason: String| {
            this.in_flight.stopping(Some(this.stage.id), reason);
            running.abort_all();
            true
        };
        while let Some(finished) = running.join_next().await {
            let run = match finished {
                Ok(run) => run,
                // Aborted after the attempt was stopped.
                Err(e) if e.is_cancelled() => continue,
                Err(e) => {
                    report.outcome = Err(DataFusionError::Execution(format!(
                        "a task of stage {} panicked: {e}",
                        this.stage.id
                    )));
                    stopped = stop(
                        &mut running,
                        format!("a task of stage {} panicked", this.stage.id),
                    );
                    continue;
                }
            };
            let task = run.attempts.last().map(|a| a.task);
            report.attempts.extend(run.attempts);
            match run.result {
                Ok(()) => {
                    let task = task.expect("a finished task made an attempt");
                    report.succeeded.push(task);
                    if let Some(copy) = run.copy {
                        report.plans.push(RanPlan {
                            plan: copy,
                            tasks: vec![task],
                        });
                    }
                }
                // The first reason to stop decides the attempt's outcome.
                Err(_) if stopped => {}
                Err(Stop::Outcome(outcome)) => {
                    let ended = format!("stage {} attempt {} ended", this.stage.id, this.attempt);
                    let reason = match &outcome {
                        AttemptOutcome::FetchFailed(failed) => format!("{ended}: {failed}"),
                        AttemptOutcome::TaskFailed { task, attempt, .. } => {
                            format!("{ended}: task {task} attempt {attempt} failed")
                        }
                        AttemptOutcome::Succeeded => ended,
                    };
                    stopped = stop(&mut running, reason);
                    report.outcome = Ok(outcome);
                }
                Err(Stop::Job(error)) => {
                    stopped = stop(&mut running, format!("job {} failed", this.job));
                    report.outcome = Err(error);
                }
            }
        }
        if stopped {
            report
                .attempts
                .extend(this.in_flight.kill(Some(this.stage.id)));
        }
        this.measure_shared_plan(&mut report);
        this.in_flight.listeners.emit(Event::TasksMeasured {
            job: this.job,
            stage: this.stage.id,
            attempt: this.attempt,
            tasks: report.attempts.clone(),
        });
        report
    }

    /// First tries ran on the attempt's own plan instance: read its metrics once for all
    /// of them (retries ran on copies and were measured on their own).
    fn measure_shared_plan(&self, report: &mut AttemptReport) {
        let plan: Arc<dyn ExecutionPlan> = self.stage.plan.clone();
        let measured = Measured::collect(&plan, self.stage.tasks());
        let first_tries: Vec<usize> = self.tasks.iter().map(|t| t.attempt).collect();
        let mut on_shared = Vec::new();
        for metrics in report.attempts.iter_mut() {
            let first = self
                .tasks
                .iter()
                .position(|t| t.task == metrics.task)
                .is_some_and(|i| first_tries[i] == metrics.attempt);
            if !first {
                continue;
            }
            if let Some(measured) = measured.get(metrics.task) {
                metrics.add(measured);
            }
            if metrics.error.is_none() {
                on_shared.push(metrics.task);
            }
        }
        on_shared.sort_unstable();
        report.plans.insert(
            0,
            RanPlan {
                plan,
                tasks: on_shared,
            },
        );
    }

    /// Runs one task until an attempt succeeds or the stage attempt must end.
    async fn run_task(&self, pending: PendingTask) -> TaskRun {
        let max_failures = self.settings.max_task_failures;
        let mut run = TaskRun {
            attempts: Vec::new(),
            copy: None,
            result: Ok(()),
        };
        let PendingTask {
            task,
            mut attempt,
            mut failures,
        } = pending;
        let mut out_of_memory = false;
        loop {
            // A retry within the attempt runs on a fresh copy of the plan: state of the
            // failed attempt (a join's build side, say) must not leak into it.
            let copy = match attempt == pending.attempt {
                true => None,
                false => match fresh_copy(self.stage.plan.clone() as _) {
                    Ok(copy) => Some(copy),
                    Err(error) => {
                        run.result = Err(Stop::Job(error));
                        return run;
                    }
                },
            };
            // A task that ran out of memory is retried with an executor to itself: it takes
            // every core of one, so no other task holds that executor's memory while it runs.
            let cores = match out_of_memory {
                true => self.executors.shape().cores,
                false => 1,
            };
            let grant = match self
                .executors
                .acquire(self.job, &self.settings.pool, cores)
                .await
            {
                Ok(grant) => grant,
                Err(error) => {
                    run.result = Err(Stop::Job(error));
                    return run;
                }
            };
            let started = TaskMetrics {
                stage: self.stage.id,
                stage_attempt: self.attempt,
                task,
                attempt,
                executor: grant.executor().id,
                slot: grant.slot(),
                start_ms: self.job_started.elapsed().as_secs_f64() * 1000.0,
                ..Default::default()
            };
            let running = self.in_flight.start(started.clone());
            let plan = copy.clone().unwrap_or_else(|| self.stage.plan.clone() as _);
            let (metrics, result) = self.attempt(started, plan, &grant).await;
            // The task ends, then its slot is free: listeners never see more tasks running
            // than there are slots.
            running.finish(&metrics);
            drop(grant);
            run.attempts.push(metrics);
            let error = match result {
                Ok(()) => {
                    run.copy = copy;
                    return run;
                }
                Err(error) => error,
            };
            if let Some(failed) = FetchFailed::find(&error) {
                run.result = Err(Stop::Outcome(AttemptOutcome::FetchFailed(failed.clone())));
                return run;
            }
            failures += 1;
            if failures >= max_failures {
                run.result = Err(Stop::Job(DataFusionError::Execution(format!(
                    "job {} failed: stage {} task {task} failed {failures} times (spark.task.maxFailures = {max_failures}); last error: {}",
                    self.job,
                    self.stage.id,
                    error.find_root()
                ))));
                return run;
            }
            if self.shared_state {
                run.result = Err(Stop::Outcome(AttemptOutcome::TaskFailed {
                    task,
                    attempt,
                    error: error.find_root().to_string(),
                }));
                return run;
            }
            out_of_memory = matches!(error.find_root(), DataFusionError::ResourcesExhausted(_));
            attempt += 1;
        }
    }

    /// Runs one attempt; `metrics` say which and when it started.
    async fn attempt(
        &self,
        mut metrics: TaskMetrics,
        plan: Arc<dyn ExecutionPlan>,
        slot: &SlotGrant,
    ) -> (TaskMetrics, Result<()>) {
        let (task, attempt) = (metrics.task, metrics.attempt);
        let clock = Instant::now();
        // The task's operators share its executor's memory with the other tasks running there.
        let pool = Arc::new(TaskMemoryPool::new(slot.executor().memory.clone()));
        let context = self.contexts.make(
            Some(format!("{}.{}.{task}.{attempt}", self.job, self.stage.id)),
            Some(pool.clone()),
        );
        let writer = plan
            .downcast_ref::<ShuffleWriteExec>()
            .expect("a stage plan and its fresh copies are rooted in a ShuffleWriteExec");
        let mut result = writer.write(task, context).await;
        if result.is_ok()
            && let Some(reason) = self.settings.faults.injected_failure(
                self.stage.id,
                task,
                attempt,
                self.settings.max_task_failures,
            )
        {
            result = Err(DataFusionError::Execution(reason));
        }
        if let Ok(status) = &result {
            metrics.rows_out = status.rows;
            metrics.bytes_out = status.bytes;
        }
        if attempt != self.first_attempt_of(task) {
            // A copy of the plan ran this attempt alone.
            if let Some(measured) = Measured::collect(&plan, task + 1).get(task) {
                metrics.add(measured);
            }
        }
        metrics.duration_ms = clock.elapsed().as_secs_f64() * 1000.0;
        metrics.peak_memory_bytes = pool.peak() as u64;
        if let Err(error) = &result {
            metrics.fetch_failed = FetchFailed::find(error).is_some();
            metrics.error = Some(match FetchFailed::find(error) {
                Some(failed) => failed.to_string(),
                None => error.find_root().to_string(),
            });
        }
        (metrics, result.map(|_| ()))
    }

    fn first_attempt_of(&self, task: usize) -> usize {
        self.tasks
            .iter()
            .find(|t| t.task == task)
            .map_or(0, |t| t.attempt)
    }
}

//! The scheduler: runs a job's [`StageGraph`] — stages whose parents have finished are
//! submitted, their tasks wait for a slot of the session's [`Executors`] (as many run at
//! once as there are slots, which is what makes waves; other jobs' tasks share them),
//! failed tasks are retried, lost shuffle output is computed again, and every attempt's
//! metrics are recorded. The job's shuffles live in the session's block store until the
//! job's result has been read, it failed, or it was cancelled.
//!
//! ```text
//!   stage 1 ─┐                         slots: ████ ████ (2)
//!            ├─▶ stage 3 ─▶ driver     tasks of ready stages queue for a slot;
//!   stage 2 ─┘                         stage 3 starts when 1 and 2 have finished (barrier)
//! ```
//!
//! Each stage goes through [`StageState`]: waiting → running → succeeded, and back to
//! waiting when an attempt of it ends early:
//! - a task failed → retried on a fresh copy of the plan (`spark.task.maxFailures`); in a
//!   stage whose tasks share state ([`Stage::tasks_share_state`]) the whole stage runs
//!   again instead;
//! - a task could not read a parent's output ([`FetchFailed`]) → the parent runs its lost
//!   map tasks again (a new stage attempt), then this stage runs the tasks it had not
//!   finished (`spark.stage.maxConsecutiveAttempts`).
//!
//! Nothing a task decides alone is shared: uncorrelated scalar subqueries are evaluated here,
//! once, between stages ([`SubqueryStep`]), and writes commit on the driver after the last
//! stage.

mod faults;
mod memory;
mod metrics;
mod stage_attempt;

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::common::ScalarValue;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::disk_manager::{DiskManagerBuilder, DiskManagerMode};
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use futures::StreamExt;
use tokio::task::JoinSet;

pub use faults::{Faults, RandomFaults};
pub use memory::TaskMemoryPool;
pub(crate) use metrics::partition_metrics;
pub use metrics::{JobReport, JobStatus, RanPlan, ResultSize, StageReport, TaskMetrics};
pub(crate) use stage_attempt::fresh_copy;
use stage_attempt::{
    AttemptOutcome, AttemptReport, InFlight, PendingTask, StageAttempt, TaskContexts, job_runtime,
};

use crate::adaptive::{self, AqeDecision, AqeSettings};
use crate::events::{Event, JobId, Listeners};
use crate::executor::Executors;
use crate::shuffle::{FetchFailed, ShuffleStore};
use crate::stages::{Stage, StageGraph, StageId, SubqueryStep, read_written_maps};

/// How a job runs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub slots: usize,
    pub max_task_failures: usize,
    /// Attempts of a stage that failed to read a parent's output before the job fails.
    pub max_stage_attempts: usize,
    /// Memory of the driver's part (subqueries, the merge of the result).
    pub driver_memory: usize,
    /// The largest result the driver accepts (`spark.driver.maxResultSize`); `None`: any.
    pub max_result_size: Option<u64>,
    /// Where the job's shuffle and operator spill files go (`spark.local.dir`).
    pub local_dir: std::path::PathBuf,
    /// The scheduler pool of the job's tasks (`spark.scheduler.pool`).
    pub pool: String,
    /// Faults injected by tests.
    pub faults: Faults,
    /// Adaptive execution between stages.
    pub aqe: AqeSettings,
}

/// Everything one job needs while it runs.
pub struct Job {
    pub id: JobId,
    /// The statement that started the job, for the job history.
    pub sql: String,
    /// Where the statement came from (`file:line`).
    pub at: Option<String>,
    pub graph: StageGraph,
    pub settings: JobSettings,
    /// The session's block store.
    pub store: Arc<ShuffleStore>,
    /// The session's executors, where the tasks run.
    pub executors: Arc<Executors>,
    /// Gets the report of the job if it is cancelled (dropped before it ends), for the
    /// session's history.
    pub on_cancel: Option<Box<dyn Fn(JobReport) + Send + Sync>>,
    /// The session's task context: functions, configuration, object stores.
    pub base: Arc<TaskContext>,
    pub listeners: Listeners,
}

/// Spark's error for a result above `spark.driver.maxResultSize`.
pub fn result_too_large(what: &str, bytes: u64, limit: u64) -> DataFusionError {
    DataFusionError::ResourcesExhausted(format!(
        "Total size of {what} ({}) is bigger than spark.driver.maxResultSize ({}): aggregate or \
         filter the result, write it with COPY … TO or INSERT, or start the session with a larger \
         spark.driver.maxResultSize (0: no limit)",
        crate::config::human_bytes(bytes),
        crate::config::human_bytes(limit)
    ))
}

/// What a job leaves for the driver once every stage has succeeded: the driver's plan over
/// the last stage's output, the context to run it in, and the job's shuffles, which live
/// until this (or what it is turned into) is dropped.
pub struct DriverOutput {
    pub plan: Arc<dyn ExecutionPlan>,
    pub context: Arc<TaskContext>,
    pub shuffles: JobShuffles,
}

impl DriverOutput {
    /// The result as one stream (the driver's plan has one partition); the job's shuffles
    /// are dropped with it.
    pub fn into_stream(self) -> Result<SendableRecordBatchStream> {
        let stream = self.plan.execute(0, self.context)?;
        let schema = stream.schema();
        let shuffles = self.shuffles;
        let stream = stream.inspect(move |_| {
            let _ = &shuffles;
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }
}

impl Job {
    /// Runs every stage, then returns the driver's stream over the result, and the report
    /// (also when the job failed).
    pub async fn run(self) -> (Result<SendableRecordBatchStream>, JobReport) {
        let (output, mut report) = self.run_to_driver().await;
        match output.and_then(DriverOutput::into_stream) {
            Ok(stream) => (Ok(stream), report),
            Err(error) => {
                report.status = JobStatus::Failed;
                report.error = Some(error.find_root().to_string());
                (Err(error), report)
            }
        }
    }

    /// Runs every stage, then returns what the driver reads (for a job whose driver plan
    /// has several partitions, each read on its own: caching a relation), and the report.
    pub async fn run_to_driver(self) -> (Result<DriverOutput>, JobReport) {
        let started = Instant::now();
        let runtime = match self.job_runtime() {
            Ok(runtime) => Arc::new(runtime),
            Err(error) => {
                let mut report = self.failed_report(started);
                report.error = Some(error.find_root().to_string());
                return (Err(error), report);
            }
        };
        self.listeners.emit(Event::JobStart {
            job: self.id,
            stages: self.graph.stages.len(),
            sql: self.sql.clone(),
            at: self.at.clone(),
            slots: self.settings.slots,
            planned: self
                .graph
                .stages
                .iter()
                .map(|stage| crate::events::PlannedStage {
                    stage: stage.id,
                    parents: stage.parents.clone(),
                    exchange: stage.exchange().to_string(),
                    tasks: stage.tasks(),
                    name: stage.name(),
                })
                .collect(),
        });
        // The job's shuffles are dropped when this guard is: with the result stream once it
        // has been read (or dropped), at once if the job fails, or when it is cancelled.
        self.store
            .begin_job(self.id, self.settings.local_dir.clone());
        let shuffles = JobShuffles {
            store: self.store.clone(),
            job: self.id,
        };
        let mut running = Running {
            job: &self,
            started,
            in_flight: InFlight::new(self.id, started, self.listeners.clone()),
            progress: self
                .graph
                .stages
                .iter()
                .map(|stage| (stage.id, StageProgress::new(stage.tasks())))
                .collect(),
            subqueries: vec![None; self.graph.subqueries.iter().map(|s| s.links.len()).sum()],
            ended: false,
        };
        let outcome = self
            .run_stages(
                &mut running.progress,
                &mut running.subqueries,
                &running.in_flight,
                &runtime,
                started,
            )
            .await
            .and_then(|()| self.check_result_size())
            .and_then(|result| {
                let plan = read_written_maps(self.graph.driver.clone(), &self.store)?;
                Ok((plan, result))
            });
        let mut report = match &outcome {
            Ok(_) => running.end(JobStatus::Succeeded, None),
            Err(error) => running.end(JobStatus::Failed, Some(error.find_root().to_string())),
        };
        match outcome {
            Ok((plan, result)) => {
                report.result = result;
                let output = DriverOutput {
                    plan,
                    context: self.task_context(&runtime, None),
                    shuffles,
                };
                (Ok(output), report)
            }
            Err(error) => {
                report.error = Some(error.find_root().to_string());
                (Err(error), report)
            }
        }
    }

    /// The size of what the last stage returns to the driver, checked against
    /// `spark.driver.maxResultSize` before the driver reads any of it (as Spark checks task
    /// results as they arrive). A write's rows go to its files, not to the user: no limit.
    fn check_result_size(&self) -> Result<Option<ResultSize>> {
        let Some(last) = self
            .graph
            .stages
            .iter()
            .find(|stage| *stage.exchange() == crate::stages::Exchange::Result)
        else {
            return Ok(None);
        };
        let statistics = self.store.statistics(last.id);
        let result = ResultSize {
            tasks: statistics.bytes.len(),
            rows: statistics.rows.iter().flatten().sum(),
            bytes: statistics.bytes.iter().flatten().sum(),
        };
        let writes = self
            .graph
            .driver
            .is::<datafusion::datasource::sink::DataSinkExec>();
        match self.settings.max_result_size {
            Some(limit) if !writes && result.bytes > limit => Err(result_too_large(
                &format!("results of {} tasks", result.tasks),
                result.bytes,
                limit,
            )),
            _ => Ok(Some(result)),
        }
    }

    /// The report of a job that failed before any stage ran.
    fn failed_report(&self, started: Instant) -> JobReport {
        JobReport {
            job: self.id,
            sql: self.sql.clone(),
            status: JobStatus::Failed,
            error: None,
            slots: self.settings.slots,
            duration: started.elapsed(),
            stages: Vec::new(),
            subqueries: Vec::new(),
            result: None,
            at: self.at.clone(),
            cache_hits: 0,
            cache_misses: 0,
        }
    }

    /// The job's runtime: the session's, with the driver's memory and a disk manager that
    /// spills operators into `spark.local.dir` (its files go when the job's last user does).
    fn job_runtime(&self) -> Result<RuntimeEnv> {
        let dir = &self.settings.local_dir;
        std::fs::create_dir_all(dir).map_err(|e| {
            DataFusionError::Execution(format!(
                "cannot create spill directory {} (spark.local.dir): {e}",
                dir.display()
            ))
        })?;
        let disk = DiskManagerBuilder::default()
            .with_mode(DiskManagerMode::Directories(vec![dir.clone()]))
            .build()?;
        let pool: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(self.settings.driver_memory));
        let mut runtime = job_runtime(self.base.runtime_env(), pool);
        runtime.disk_manager = Arc::new(disk);
        Ok(runtime)
    }

    /// Runs stages as their parents finish until every stage has succeeded or the job fails.
    async fn run_stages(
        &self,
        progress: &mut BTreeMap<StageId, StageProgress>,
        subqueries: &mut [Option<RanPlan>],
        in_flight: &InFlight,
        runtime: &Arc<RuntimeEnv>,
        started: Instant,
    ) -> Result<()> {
        let mut running: JoinSet<(StageId, AttemptReport)> = JoinSet::new();
        // Dropped before `running` (which stops the stages still running): says why their
        // attempts are killed. Dropped mid-way, the job was cancelled.
        let mut stop = StopReason {
            in_flight: in_flight.clone(),
            reason: Some(format!("job {} cancelled", self.id)),
        };
        let result = self
            .drive_stages(
                &mut running,
                progress,
                subqueries,
                in_flight,
                runtime,
                started,
            )
            .await;
        stop.reason = result.is_err().then(|| format!("job {} failed", self.id));
        result
    }

    async fn drive_stages(
        &self,
        running: &mut JoinSet<(StageId, AttemptReport)>,
        progress: &mut BTreeMap<StageId, StageProgress>,
        subqueries: &mut [Option<RanPlan>],
        in_flight: &InFlight,
        runtime: &Arc<RuntimeEnv>,
        started: Instant,
    ) -> Result<()> {
        let mut evaluated = vec![false; self.graph.subqueries.len()];
        let mut losses = self.settings.faults.lost_outputs.clone();
        loop {
            self.evaluate_subqueries(progress, &mut evaluated, subqueries, runtime)
                .await?;
            for stage in &self.graph.stages {
                let ready = progress[&stage.id].state == StageState::Waiting
                    && stage
                        .parents
                        .iter()
                        .all(|p| progress[p].state == StageState::Succeeded);
                if !ready {
                    continue;
                }
                self.lose_outputs(&stage.parents, progress, &mut losses);
                let attempt = self.submit(stage, progress, in_flight, runtime, started)?;
                running.spawn(async move { (attempt.stage.id, attempt.run().await) });
            }
            let Some(finished) = running.join_next().await else {
                if progress.values().all(|p| p.state == StageState::Succeeded) {
                    return Ok(());
                }
                return Err(DataFusionError::Internal(format!(
                    "job {}: no stage can run, but not every stage has succeeded",
                    self.id
                )));
            };
            let (id, report) = finished.map_err(|e| {
                DataFusionError::Execution(format!("job {}: a stage panicked: {e}", self.id))
            })?;
            // An error ends the job: the stages still running are stopped.
            self.finish_attempt(id, report, progress, started)?;
        }
    }

    /// Prepares the next attempt of `stage`: adaptive execution on its first, with the exact
    /// sizes of the shuffles it reads (the barrier is passed); the same plan, as a fresh
    /// copy, on later ones. It runs the tasks whose output is not committed — every task, if
    /// the tasks share state.
    fn submit(
        &self,
        stage: &Stage,
        progress: &mut BTreeMap<StageId, StageProgress>,
        in_flight: &InFlight,
        runtime: &Arc<RuntimeEnv>,
        started: Instant,
    ) -> Result<StageAttempt> {
        let state = progress
            .get_mut(&stage.id)
            .expect("every stage has progress");
        let prepared = match &state.prepared {
            Some(prepared) => prepared
                .stage
                .with_input(fresh_copy(prepared.stage.plan.input().clone())?),
            None => {
                let initial_tasks = stage.tasks();
                let planned =
                    stage.with_input(read_written_maps(stage.plan.input().clone(), &self.store)?);
                let (optimized, decisions) =
                    adaptive::optimize_stage(&planned, &self.store, &self.settings.aqe)?;
                self.store.register(
                    optimized.id,
                    self.id,
                    optimized.plan.input().schema(),
                    optimized.tasks(),
                );
                state.pending = optimized.tasks();
                state.prepared = Some(Prepared {
                    stage: optimized.clone(),
                    initial_tasks,
                    decisions,
                });
                state.submitted_ms = started.elapsed().as_secs_f64() * 1000.0;
                optimized
            }
        };
        let shared_state = prepared.tasks_share_state();
        if shared_state {
            state.committed.clear();
        }
        let tasks: Vec<PendingTask> = (0..prepared.tasks())
            .filter(|task| !state.committed.contains(task))
            .map(|task| state.pending_task(task))
            .collect();
        state.attempts_started += 1;
        state.state = StageState::Running;
        let decisions = match state.attempts_started {
            1 => state
                .prepared
                .as_ref()
                .map(|p| p.decisions.clone())
                .unwrap_or_default(),
            _ => Vec::new(),
        };
        self.listeners.emit(Event::StageSubmitted {
            job: self.id,
            stage: stage.id,
            attempt: state.attempts_started,
            tasks: tasks.len(),
            stage_tasks: prepared.tasks(),
            decisions,
        });
        Ok(StageAttempt {
            job: self.id,
            stage: prepared,
            attempt: state.attempts_started,
            tasks,
            shared_state,
            settings: self.settings.clone(),
            executors: self.executors.clone(),
            in_flight: in_flight.clone(),
            contexts: TaskContexts {
                base: self.base.clone(),
                runtime: runtime.clone(),
                store: self.store.clone(),
            },
            job_started: started,
        })
    }

    /// Records what a stage attempt did and decides what runs next.
    fn finish_attempt(
        &self,
        id: StageId,
        report: AttemptReport,
        progress: &mut BTreeMap<StageId, StageProgress>,
        started: Instant,
    ) -> Result<()> {
        let state = progress.get_mut(&id).expect("every stage has progress");
        let attempt = state.attempts_started;
        state.record(&report);
        state.completed_ms = started.elapsed().as_secs_f64() * 1000.0;
        let reason = match report.outcome? {
            AttemptOutcome::Succeeded => {
                state.state = StageState::Succeeded;
                state.fetch_failures = 0;
                self.listeners.emit(Event::StageCompleted {
                    job: self.id,
                    stage: id,
                    attempt,
                });
                return Ok(());
            }
            AttemptOutcome::TaskFailed {
                task,
                attempt: task_attempt,
                error,
            } => {
                format!(
                    "task {task} attempt {task_attempt} failed ({error}); the stage's tasks share state, so every task runs again"
                )
            }
            AttemptOutcome::FetchFailed(failed) => {
                state.fetch_failures += 1;
                if state.fetch_failures >= self.settings.max_stage_attempts {
                    return Err(DataFusionError::Execution(format!(
                        "job {} failed: stage {id} failed {} times because a parent's output was lost (spark.stage.maxConsecutiveAttempts = {}); last: {failed}",
                        self.id, state.fetch_failures, self.settings.max_stage_attempts
                    )));
                }
                self.rerun_lost_maps(&failed, id, progress);
                format!(
                    "{failed}; stage {} runs its lost map tasks again first",
                    failed.shuffle
                )
            }
        };
        let state = progress.get_mut(&id).expect("every stage has progress");
        state.state = StageState::Waiting;
        state
            .resubmitted
            .push(format!("attempt {}: {reason}", attempt + 1));
        self.listeners.emit(Event::StageFailed {
            job: self.id,
            stage: id,
            attempt,
            reason,
        });
        Ok(())
    }

    /// The parent whose output a reader failed to fetch goes back to waiting, to run the map
    /// tasks whose output is missing.
    fn rerun_lost_maps(
        &self,
        failed: &FetchFailed,
        reader: StageId,
        progress: &mut BTreeMap<StageId, StageProgress>,
    ) {
        let Some(parent) = progress.get_mut(&failed.shuffle) else {
            return;
        };
        let mut lost = self.store.missing_maps(failed.shuffle);
        if !lost.contains(&failed.map) {
            lost.push(failed.map);
        }
        for map in &lost {
            parent.committed.remove(map);
        }
        if parent.state == StageState::Succeeded {
            parent.state = StageState::Waiting;
            parent.resubmitted.push(format!(
                "attempt {}: the output of map tasks {lost:?} was lost when stage {reader} read it",
                parent.attempts_started + 1
            ));
        }
    }

    /// Test faults: loses the map outputs of `parents` named by
    /// `stagesql.test.lose_shuffle_output` for their latest attempt, once each.
    fn lose_outputs(
        &self,
        parents: &[StageId],
        progress: &BTreeMap<StageId, StageProgress>,
        losses: &mut HashSet<(StageId, usize, usize)>,
    ) {
        losses.retain(|&(stage, map, attempt)| {
            let due = parents.contains(&stage) && progress[&stage].attempts_started == attempt;
            if due {
                self.store.lose(stage, map);
            }
            !due
        });
    }

    /// Evaluates, on the driver, every scalar subquery whose stages have all succeeded; keeps
    /// the plans that ran in `ran` (one per subquery, in the graph's order) for the report.
    async fn evaluate_subqueries(
        &self,
        progress: &BTreeMap<StageId, StageProgress>,
        evaluated: &mut [bool],
        ran: &mut [Option<RanPlan>],
        runtime: &Arc<RuntimeEnv>,
    ) -> Result<()> {
        let mut first_link = 0;
        for (step, done) in self.graph.subqueries.iter().zip(evaluated.iter_mut()) {
            let links = first_link..first_link + step.links.len();
            first_link = links.end;
            let ready = step.reads.iter().all(|id| {
                progress
                    .get(id)
                    .is_none_or(|p| p.state == StageState::Succeeded)
            });
            if *done || !ready {
                continue;
            }
            self.evaluate_subquery(step, &mut ran[links], runtime)
                .await?;
            *done = true;
        }
        Ok(())
    }

    async fn evaluate_subquery(
        &self,
        step: &SubqueryStep,
        ran: &mut [Option<RanPlan>],
        runtime: &Arc<RuntimeEnv>,
    ) -> Result<()> {
        for (link, ran) in step.links.iter().zip(ran) {
            let plan = read_written_maps(link.plan.clone(), &self.store)?;
            let schema = plan.schema();
            *ran = Some(RanPlan {
                plan: plan.clone(),
                tasks: (0..plan.properties().partitioning.partition_count()).collect(),
            });
            let mut stream =
                datafusion::physical_plan::execute_stream(plan, self.task_context(runtime, None))?;
            let mut value = None;
            while let Some(batch) = stream.next().await.transpose()? {
                if batch.num_rows() == 0 {
                    continue;
                }
                if value.is_some() || batch.num_rows() > 1 {
                    return Err(DataFusionError::Execution(
                        "Scalar subquery returned more than one row".into(),
                    ));
                }
                value = Some(ScalarValue::try_from_array(batch.column(0), 0)?);
            }
            let value = match value {
                Some(value) => value,
                None => ScalarValue::try_from(schema.field(0).data_type())?,
            };
            step.results.set(link.index, value)?;
        }
        Ok(())
    }

    fn task_context(
        &self,
        runtime: &Arc<RuntimeEnv>,
        pool: Option<Arc<dyn MemoryPool>>,
    ) -> Arc<TaskContext> {
        TaskContexts {
            base: self.base.clone(),
            runtime: runtime.clone(),
            store: self.store.clone(),
        }
        .make(None, pool)
    }
}

/// A job while its stages run. If it is dropped before [`Running::end`] — the job was
/// cancelled — it ends the job as cancelled: listeners hear it (progress bars go away) and
/// [`Job::on_cancel`] gets the report of what ran so far.
struct Running<'a> {
    job: &'a Job,
    started: Instant,
    in_flight: InFlight,
    progress: BTreeMap<StageId, StageProgress>,
    subqueries: Vec<Option<RanPlan>>,
    ended: bool,
}

impl Running<'_> {
    /// Ends the job with `status`: tells the listeners, returns its report.
    fn end(&mut self, status: JobStatus, error: Option<String>) -> JobReport {
        self.ended = true;
        // Attempts of stages still running when the job failed or was cancelled (why, the
        // StopReason of `run_stages` said).
        for killed in self.in_flight.kill(None) {
            if let Some(stage) = self.progress.get_mut(&killed.stage) {
                stage.attempts.push(killed);
            }
        }
        self.job.listeners.emit(Event::JobEnd {
            job: self.job.id,
            status,
            error: error.clone(),
        });
        JobReport {
            job: self.job.id,
            sql: self.job.sql.clone(),
            status,
            error,
            slots: self.job.settings.slots,
            duration: self.started.elapsed(),
            stages: std::mem::take(&mut self.progress)
                .into_iter()
                .filter_map(|(id, stage)| stage.report(id))
                .collect(),
            subqueries: std::mem::take(&mut self.subqueries),
            result: None,
            at: self.job.at.clone(),
            cache_hits: 0,
            cache_misses: 0,
        }
    }
}

impl Drop for Running<'_> {
    fn drop(&mut self) {
        if self.ended {
            return;
        }
        let report = self.end(JobStatus::Cancelled, Some("cancelled".to_string()));
        if let Some(on_cancel) = &self.job.on_cancel {
            on_cancel(report);
        }
    }
}

/// When dropped, tells the job's attempts still running why they are being stopped.
struct StopReason {
    in_flight: InFlight,
    reason: Option<String>,
}

impl Drop for StopReason {
    fn drop(&mut self) {
        if let Some(reason) = self.reason.take() {
            self.in_flight.stopping(None, reason);
        }
    }
}

/// Drops a job's shuffles from the block store when dropped.
/// A job's shuffles in the block store: they are dropped (memory freed, spill files
/// removed) when this is.
pub struct JobShuffles {
    store: Arc<ShuffleStore>,
    job: JobId,
}

impl Drop for JobShuffles {
    fn drop(&mut self) {
        self.store.end_job(self.job);
    }
}

/// Where a stage is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StageState {
    /// Waiting for its parents; again after an attempt that ended early.
    Waiting,
    Running,
    /// Every task's output is committed.
    Succeeded,
}

/// The stage as adaptive execution left it when it was first submitted.
struct Prepared {
    stage: Stage,
    initial_tasks: usize,
    decisions: Vec<AqeDecision>,
}

/// One stage of the running job: its state and what its attempts did.
struct StageProgress {
    state: StageState,
    prepared: Option<Prepared>,
    /// Tasks of the prepared stage (planned ones before).
    pending: usize,
    attempts_started: usize,
    /// Consecutive attempts that failed to read a parent's output.
    fetch_failures: usize,
    /// Tasks whose output is in the store.
    committed: BTreeSet<usize>,
    attempts: Vec<TaskMetrics>,
    plans: Vec<RanPlan>,
    /// Why each attempt after the first ran.
    resubmitted: Vec<String>,
    submitted_ms: f64,
    completed_ms: f64,
}

impl StageProgress {
    fn new(tasks: usize) -> Self {
        Self {
            state: StageState::Waiting,
            prepared: None,
            pending: tasks,
            attempts_started: 0,
            fetch_failures: 0,
            committed: BTreeSet::new(),
            attempts: Vec::new(),
            plans: Vec::new(),
            resubmitted: Vec::new(),
            submitted_ms: 0.0,
            completed_ms: 0.0,
        }
    }

    /// What `task`'s next attempt starts from.
    fn pending_task(&self, task: usize) -> PendingTask {
        let made = self.attempts.iter().filter(|a| a.task == task);
        PendingTask {
            task,
            attempt: made.clone().map(|a| a.attempt).max().unwrap_or(0) + 1,
            failures: made
                .filter(|a| a.error.is_some() && !a.fetch_failed && !a.killed)
                .count(),
        }
    }

    fn record(&mut self, report: &AttemptReport) {
        self.attempts.extend(report.attempts.iter().cloned());
        self.committed.extend(report.succeeded.iter().copied());
        // A task's figures come from its latest successful attempt.
        for plan in &mut self.plans {
            plan.tasks.retain(|t| !report.succeeded.contains(t));
        }
        self.plans.retain(|p| !p.tasks.is_empty());
        self.plans.extend(report.plans.iter().cloned());
    }

    fn report(self, id: StageId) -> Option<StageReport> {
        let prepared = self.prepared?;
        let mut attempts = self.attempts;
        attempts.sort_by_key(|a| (a.task, a.attempt));
        let mut plans = self.plans;
        // The stage's own plan first: the one EXPLAIN ANALYZE renders.
        if let Some(first) = plans.iter().position(|p| {
            std::ptr::addr_eq(Arc::as_ptr(&p.plan), Arc::as_ptr(&prepared.stage.plan))
        }) {
            plans.swap(0, first);
        } else {
            plans.insert(
                0,
                RanPlan {
                    plan: prepared.stage.plan.clone(),
                    tasks: Vec::new(),
                },
            );
        }
        Some(StageReport {
            stage: id,
            exchange: prepared.stage.exchange().clone(),
            parents: prepared.stage.parents.clone(),
            initial_tasks: prepared.initial_tasks,
            tasks: self.pending,
            decisions: prepared.decisions,
            submitted_ms: self.submitted_ms,
            completed_ms: self.completed_ms,
            attempts,
            stage_attempts: self.attempts_started,
            resubmitted: self.resubmitted,
            plans,
        })
    }
}

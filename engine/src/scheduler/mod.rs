//! The scheduler: runs a job's [`StageGraph`] — stages whose parents have finished are
//! submitted, their tasks run at most `slots` at a time across the job (which is what makes
//! waves), failed tasks are retried, and every attempt's metrics are recorded.
//!
//! ```text
//!   stage 1 ─┐                         slots: ████ ████ (2)
//!            ├─▶ stage 3 ─▶ driver     tasks of ready stages queue for a slot;
//!   stage 2 ─┘                         stage 3 starts when 1 and 2 have finished (barrier)
//! ```

mod memory;
mod metrics;

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool};
use datafusion::execution::runtime_env::RuntimeEnv;
use datafusion::physical_plan::{ExecutionPlan, SendableRecordBatchStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

pub use memory::TaskMemoryPool;
use metrics::Measured;
pub use metrics::{JobReport, JobStatus, RanPlan, StageReport, TaskMetrics};

use crate::adaptive::{self, AqeDecision, AqeSettings};
use crate::events::{Event, JobId, Listeners};
use crate::shuffle::ShuffleStore;
use crate::stages::{ShuffleWriteExec, Stage, StageGraph, StageId, read_written_maps};
use datafusion::common::tree_node::{Transformed, TreeNode};

/// How a job runs.
#[derive(Debug, Clone)]
pub struct JobSettings {
    pub slots: usize,
    pub max_task_failures: usize,
    /// Memory for operators of all running tasks together.
    pub executor_memory: usize,
    /// Task attempts that fail on purpose (`stagesql.test.fail_tasks`): (stage, task, attempt).
    pub injected_failures: HashSet<(StageId, usize, usize)>,
    /// Adaptive execution between stages.
    pub aqe: AqeSettings,
}

/// Everything one job needs while it runs.
pub struct Job {
    pub id: JobId,
    /// The statement that started the job, for the job history.
    pub sql: String,
    pub graph: StageGraph,
    pub settings: JobSettings,
    pub store: Arc<ShuffleStore>,
    /// The session's task context: functions, configuration, object stores.
    pub base: Arc<TaskContext>,
    pub listeners: Listeners,
}

impl Job {
    /// Runs every stage, then returns the driver's stream over the result, and the report
    /// (also when the job failed).
    pub async fn run(self) -> (Result<SendableRecordBatchStream>, JobReport) {
        let started = Instant::now();
        self.listeners.emit(Event::JobStart {
            job: self.id,
            stages: self.graph.stages.len(),
        });
        let pool: Arc<dyn MemoryPool> = Arc::new(FairSpillPool::new(self.settings.executor_memory));
        let runtime = Arc::new(job_runtime(self.base.runtime_env(), pool));
        let slots = Arc::new(Semaphore::new(self.settings.slots.max(1)));
        let outcome = self.run_stages(&runtime, &slots, started).await;
        let succeeded = outcome.is_ok();
        self.listeners.emit(Event::JobEnd {
            job: self.id,
            succeeded,
        });
        let mut report = JobReport {
            job: self.id,
            sql: self.sql.clone(),
            status: JobStatus::Succeeded,
            error: None,
            slots: self.settings.slots,
            duration: started.elapsed(),
            stages: Vec::new(),
        };
        let stream = outcome.and_then(|stages| {
            report.stages = stages;
            read_written_maps(self.graph.driver.clone(), &self.store)?
                .execute(0, self.task_context(&runtime, None))
        });
        if let Err(error) = &stream {
            report.status = JobStatus::Failed;
            report.error = Some(error.find_root().to_string());
        }
        (stream, report)
    }

    async fn run_stages(
        &self,
        runtime: &Arc<RuntimeEnv>,
        slots: &Arc<Semaphore>,
        started: Instant,
    ) -> Result<Vec<StageReport>> {
        let mut done: HashMap<StageId, StageReport> = HashMap::new();
        let mut submitted: HashSet<StageId> = HashSet::new();
        let mut running: JoinSet<(StageId, Result<StageReport>)> = JoinSet::new();
        loop {
            for stage in &self.graph.stages {
                let ready = !submitted.contains(&stage.id)
                    && stage.parents.iter().all(|p| done.contains_key(p));
                if !ready {
                    continue;
                }
                submitted.insert(stage.id);
                // The barrier is passed: adaptive execution sees the exact sizes of the
                // shuffles this stage reads.
                let initial_tasks = stage.tasks();
                let stage =
                    stage.with_input(read_written_maps(stage.plan.input().clone(), &self.store)?);
                let (stage, decisions) =
                    adaptive::optimize_stage(&stage, &self.store, &self.settings.aqe)?;
                let stage = &stage;
                self.store
                    .register(stage.id, stage.plan.input().schema(), stage.tasks());
                self.listeners.emit(Event::StageSubmitted {
                    job: self.id,
                    stage: stage.id,
                    tasks: stage.tasks(),
                });
                let run = StageRun {
                    job: self.id,
                    stage: stage.clone(),
                    initial_tasks,
                    decisions,
                    settings: self.settings.clone(),
                    slots: slots.clone(),
                    listeners: self.listeners.clone(),
                    contexts: TaskContexts {
                        base: self.base.clone(),
                        runtime: runtime.clone(),
                        store: self.store.clone(),
                    },
                    job_started: started,
                };
                running.spawn(async move { (run.stage.id, run.run().await) });
            }
            let Some(finished) = running.join_next().await else {
                break;
            };
            let (id, report) = finished.map_err(|e| {
                DataFusionError::Execution(format!("job {}: a stage panicked: {e}", self.id))
            })?;
            // Dropping `running` on error cancels the stages still running.
            let report = report?;
            self.listeners.emit(Event::StageCompleted {
                job: self.id,
                stage: id,
            });
            done.insert(id, report);
        }
        let mut stages: Vec<StageReport> = done.into_values().collect();
        stages.sort_by_key(|s| s.stage);
        Ok(stages)
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

/// Builds task contexts: the session's functions and configuration, the job's shuffle store
/// and runtime, and (for a task) its own memory accounting.
#[derive(Clone)]
struct TaskContexts {
    base: Arc<TaskContext>,
    runtime: Arc<RuntimeEnv>,
    store: Arc<ShuffleStore>,
}

impl TaskContexts {
    fn make(&self, task_id: Option<String>, pool: Option<Arc<dyn MemoryPool>>) -> Arc<TaskContext> {
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

/// A new instance of every operator of `plan`, with its execution state reset.
fn fresh_copy(plan: Arc<dyn ExecutionPlan>) -> Result<Arc<dyn ExecutionPlan>> {
    plan.transform_up(|node| Ok(Transformed::yes(node.reset_state()?)))
        .map(|t| t.data)
}

/// The session's runtime with another memory pool.
fn job_runtime(base: Arc<RuntimeEnv>, pool: Arc<dyn MemoryPool>) -> RuntimeEnv {
    RuntimeEnv {
        memory_pool: pool,
        disk_manager: base.disk_manager.clone(),
        cache_manager: base.cache_manager.clone(),
        object_store_registry: base.object_store_registry.clone(),
    }
}

/// One submitted stage: its tasks, each retried up to `max_task_failures` attempts.
struct StageRun {
    job: JobId,
    stage: Stage,
    initial_tasks: usize,
    decisions: Vec<AqeDecision>,
    settings: JobSettings,
    slots: Arc<Semaphore>,
    listeners: Listeners,
    contexts: TaskContexts,
    job_started: Instant,
}

impl StageRun {
    async fn run(self) -> Result<StageReport> {
        let submitted = self.job_started.elapsed();
        let this = Arc::new(self);
        let mut tasks = JoinSet::new();
        for task in 0..this.stage.tasks() {
            let run = this.clone();
            tasks.spawn(async move { run.run_task(task).await });
        }
        let mut attempts = Vec::new();
        while let Some(finished) = tasks.join_next().await {
            let finished = finished
                .map_err(|e| DataFusionError::Execution(format!("a task panicked: {e}")))?;
            attempts.extend(finished?);
        }
        attempts.sort_by_key(|a: &TaskMetrics| (a.task, a.attempt));
        // First attempts ran on the stage's own plan: read its metrics once for all of them
        // (retries ran on copies and were measured on their own).
        let measured = Measured::collect(&(this.stage.plan.clone() as _), this.stage.tasks());
        for first in attempts.iter_mut().filter(|a| a.attempt == 1) {
            if let Some(measured) = measured.get(first.task) {
                first.add(measured);
            }
        }
        let first_plan = RanPlan {
            plan: this.stage.plan.clone(),
            tasks: attempts
                .iter()
                .filter(|a| a.attempt == 1 && a.error.is_none())
                .map(|a| a.task)
                .collect(),
        };
        Ok(StageReport {
            stage: this.stage.id,
            exchange: this.stage.exchange().to_string(),
            parents: this.stage.parents.clone(),
            initial_tasks: this.initial_tasks,
            tasks: this.stage.tasks(),
            decisions: this.decisions.clone(),
            submitted_ms: submitted.as_secs_f64() * 1000.0,
            completed_ms: this.job_started.elapsed().as_secs_f64() * 1000.0,
            attempts,
            stage_attempts: 1,
            plans: vec![first_plan],
        })
    }

    /// Runs one task until an attempt succeeds; returns every attempt's metrics.
    async fn run_task(&self, task: usize) -> Result<Vec<TaskMetrics>> {
        let mut attempts = Vec::new();
        let mut out_of_memory = false;
        for attempt in 1..=self.settings.max_task_failures {
            // A task that ran out of memory is retried with the executor to itself: it takes
            // every slot, so no other task holds memory while it runs.
            let slots = if out_of_memory {
                self.settings.slots.max(1) as u32
            } else {
                1
            };
            let permit = self
                .slots
                .clone()
                .acquire_many_owned(slots)
                .await
                .map_err(|e| DataFusionError::Internal(e.to_string()))?;
            self.listeners.emit(Event::TaskStart {
                job: self.job,
                stage: self.stage.id,
                task,
                attempt,
            });
            let (metrics, result) = self.attempt(task, attempt).await;
            drop(permit);
            self.listeners.emit(Event::TaskEnd {
                job: self.job,
                stage: self.stage.id,
                task,
                attempt,
                succeeded: result.is_ok(),
            });
            attempts.push(metrics);
            match result {
                Ok(()) => return Ok(attempts),
                Err(error) if attempt == self.settings.max_task_failures => {
                    return Err(DataFusionError::Execution(format!(
                        "job {} failed: stage {} task {} failed {attempt} times (spark.task.maxFailures = {}); last error: {}",
                        self.job,
                        self.stage.id,
                        task,
                        self.settings.max_task_failures,
                        error.find_root()
                    )));
                }
                Err(error) => {
                    out_of_memory =
                        matches!(error.find_root(), DataFusionError::ResourcesExhausted(_));
                    continue;
                }
            }
        }
        unreachable!("max_task_failures is at least 1")
    }

    async fn attempt(&self, task: usize, attempt: usize) -> (TaskMetrics, Result<()>) {
        let started = self.job_started.elapsed();
        let clock = Instant::now();
        let pool = Arc::new(TaskMemoryPool::new(
            self.contexts.runtime.memory_pool.clone(),
        ));
        let context = self.contexts.make(
            Some(format!("{}.{}.{task}.{attempt}", self.job, self.stage.id)),
            Some(pool.clone()),
        );
        // A retry runs on a fresh copy of the plan: shared state of the failed attempt (a
        // join's build side, say) must not leak into it.
        let plan: Arc<dyn ExecutionPlan> = match attempt {
            1 => self.stage.plan.clone(),
            _ => match fresh_copy(self.stage.plan.clone()) {
                Ok(plan) => plan,
                Err(error) => {
                    return (
                        TaskMetrics {
                            task,
                            ..Default::default()
                        },
                        Err(error),
                    );
                }
            },
        };
        let writer = plan
            .downcast_ref::<ShuffleWriteExec>()
            .expect("a fresh copy of a stage plan keeps its ShuffleWriteExec root");
        let mut result = writer.write(task, context).await;
        let injected = self
            .settings
            .injected_failures
            .contains(&(self.stage.id, task, attempt));
        if result.is_ok() && injected {
            // Fails after the attempt did all its work, input read and output committed: the
            // hardest case for a retry, which must read everything again and replace it.
            result = Err(DataFusionError::Execution(format!(
                "injected failure of stage {} task {task} attempt {attempt} (stagesql.test.fail_tasks)",
                self.stage.id
            )));
        }
        let mut metrics = TaskMetrics {
            task,
            ..Default::default()
        };
        if let Ok(status) = &result {
            metrics.rows_out = status.rows;
            metrics.bytes_out = status.bytes;
        }
        if attempt > 1 {
            // A copy of the plan ran this attempt alone.
            if let Some(measured) = Measured::collect(&plan, task + 1).get(task) {
                metrics.add(measured);
            }
        }
        metrics.stage = self.stage.id;
        metrics.attempt = attempt;
        metrics.start_ms = started.as_secs_f64() * 1000.0;
        metrics.duration_ms = clock.elapsed().as_secs_f64() * 1000.0;
        metrics.peak_memory_bytes = pool.peak() as u64;
        metrics.error = result.as_ref().err().map(|e| e.find_root().to_string());
        (metrics, result.map(|_| ()))
    }
}

//! Running a statement as a job in stages mode: plan with Spark's settings, split scans, cut
//! into stages, run on the slots, keep the report.

use std::collections::HashSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;

use super::Session;
use crate::adaptive::AqeSettings;
use crate::config::keys;
use crate::error::{Error, Result};
use datafusion::execution::SessionStateBuilder;
use datafusion::physical_optimizer::PhysicalOptimizerRule;

use crate::executor::{ExecutorShape, Executors, MemoryLayout, SchedulingMode};
use crate::lineage::JobLineage;
use crate::planner::{SplitScans, StagePlanning, cut_stages};
use crate::scheduler::{
    DriverOutput, Faults, Job, JobReport, JobSettings, JobStatus, RandomFaults,
};
use crate::shuffle::ShuffleStore;
use crate::stages::StageGraph;

/// A change to a job's physical plan before it is cut into stages: a write puts its
/// [`crate::warehouse::WriteFilesExec`] on top, so its tasks are the last stage's.
pub(crate) type PlanWrap =
    Arc<dyn Fn(Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> + Send + Sync>;

/// Whether a job's result is held to `spark.driver.maxResultSize`: rows returned to the
/// user are; rows that become a table's contents, or that EXPLAIN ANALYZE drops, are not.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ResultLimit {
    Checked,
    Unchecked,
}

/// Whether statements run as jobs of stages or as one DataFusion stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ExecutionMode {
    Stages,
    Pipelined,
}

impl Session {
    /// The execution mode in force (`stagesql.execution.mode`).
    pub fn execution_mode(&self) -> ExecutionMode {
        match self.setting(keys::EXECUTION_MODE).as_str() {
            "pipelined" => ExecutionMode::Pipelined,
            _ => ExecutionMode::Stages,
        }
    }

    /// Slots: `spark.executor.instances` × `spark.executor.cores` (0 cores = all cores).
    pub fn slots(&self) -> usize {
        self.executor_shape().slots().max(1)
    }

    /// What `spark.executor.instances`, `.cores` and `.memory` say.
    pub(super) fn executor_shape(&self) -> ExecutorShape {
        let instances: usize = self.setting(keys::EXECUTOR_INSTANCES).parse().unwrap_or(1);
        let cores: usize = match self.setting(keys::EXECUTOR_CORES).parse().unwrap_or(0) {
            0 => std::thread::available_parallelism().map_or(1, |n| n.get()),
            n => n,
        };
        let layout = self.memory_layout();
        ExecutorShape {
            instances: instances.max(1),
            cores: cores.max(1),
            task_memory: layout.execution,
            storage_memory: layout.storage,
            memory: self.executor_memory(),
        }
    }

    /// `spark.executor.memory` in bytes.
    fn executor_memory(&self) -> usize {
        keys::parse_bytes(&self.setting(keys::EXECUTOR_MEMORY)).unwrap_or(4 << 30) as usize
    }

    /// How each executor's `spark.executor.memory` divides (`spark.memory.*`).
    pub fn memory_layout(&self) -> MemoryLayout {
        self.layout_of(self.executor_memory())
    }

    /// How the driver's `spark.driver.memory` divides: its operators (the merge of a
    /// result, subqueries) get the execution share, as an executor's do.
    fn driver_layout(&self) -> MemoryLayout {
        self.layout_of(
            keys::parse_bytes(&self.setting(keys::DRIVER_MEMORY)).unwrap_or(1 << 30) as usize,
        )
    }

    fn layout_of(&self, memory: usize) -> MemoryLayout {
        let fraction = |key: &str, default: f64| self.setting(key).parse().unwrap_or(default);
        MemoryLayout::new(
            memory,
            fraction(keys::MEMORY_FRACTION, 0.6),
            fraction(keys::MEMORY_STORAGE_FRACTION, 0.5),
        )
    }

    /// The session's executors as the settings now describe them: the same ones while
    /// `spark.executor.*` stay the same; new ones (for the next jobs) when they change.
    pub fn executors(&self) -> Arc<Executors> {
        let shape = self.executor_shape();
        let mode = match self.setting(keys::SCHEDULER_MODE).as_str() {
            "fair" => SchedulingMode::Fair,
            _ => SchedulingMode::Fifo,
        };
        let mut executors = self.executors.lock().unwrap_or_else(|e| e.into_inner());
        match executors.as_ref() {
            Some(current) if current.shape() == shape => {
                current.set_mode(mode);
                current.clone()
            }
            _ => {
                let fresh = Executors::new(shape, mode);
                *executors = Some(fresh.clone());
                self.store
                    .set_memory_budget(shape.storage_memory * shape.instances);
                fresh
            }
        }
    }

    /// The session's block store.
    pub fn block_store(&self) -> &Arc<ShuffleStore> {
        &self.store
    }

    pub(crate) fn stage_planning(&self) -> StagePlanning {
        let bytes = |key: &str| keys::parse_bytes(&self.setting(key)).unwrap_or(0);
        StagePlanning {
            slots: self.slots(),
            shuffle_partitions: self
                .setting(keys::SHUFFLE_PARTITIONS)
                .parse()
                .unwrap_or(200),
            max_partition_bytes: bytes(keys::MAX_PARTITION_BYTES),
            open_cost_in_bytes: bytes(keys::OPEN_COST_IN_BYTES),
            broadcast_threshold: self.broadcast_threshold(),
        }
    }

    /// `spark.sql.autoBroadcastJoinThreshold` in bytes; `None` when broadcasts are off.
    fn broadcast_threshold(&self) -> Option<u64> {
        match self.setting(keys::AUTO_BROADCAST_JOIN_THRESHOLD).as_str() {
            "-1" => None,
            other => keys::parse_bytes(other),
        }
    }

    /// Adaptive execution settings (`spark.sql.adaptive.*`).
    pub(crate) fn aqe_settings(&self) -> AqeSettings {
        let on = |key: &str| self.setting(key) == "true";
        let bytes = |key: &str| keys::parse_bytes(&self.setting(key)).unwrap_or(0);
        AqeSettings {
            enabled: on(keys::ADAPTIVE_ENABLED),
            coalesce: on(keys::COALESCE_ENABLED),
            parallelism_first: on(keys::COALESCE_PARALLELISM_FIRST),
            min_partition_size: bytes(keys::COALESCE_MIN_PARTITION_SIZE),
            advisory_partition_size: bytes(keys::ADVISORY_PARTITION_SIZE),
            slots: self.slots(),
            broadcast_threshold: match self.setting(keys::ADAPTIVE_BROADCAST_THRESHOLD).trim() {
                "" => self.broadcast_threshold(),
                "-1" => None,
                other => keys::parse_bytes(other),
            },
            skew_join: on(keys::SKEW_JOIN_ENABLED),
            skew_factor: self.setting(keys::SKEW_JOIN_FACTOR).parse().unwrap_or(5.0),
            skew_threshold: bytes(keys::SKEW_JOIN_THRESHOLD),
        }
    }

    /// Plans `plan` for the stage model and cuts it into stages, without running anything.
    /// Stage ids start at the next id the session would give.
    pub async fn plan_stages(&self, plan: &LogicalPlan) -> Result<StageGraph> {
        self.plan_stages_from(plan, self.next_stage_id(), None)
            .await
    }

    async fn plan_stages_from(
        &self,
        plan: &LogicalPlan,
        first_id: usize,
        wrap: Option<&PlanWrap>,
    ) -> Result<StageGraph> {
        let planning = self.stage_planning();
        let mut state = self.ctx.state();
        planning.apply(state.config_mut().options_mut());
        // The job's state shares the session's catalogs: building it must not create a
        // default catalog the session lacks (after `SET datafusion.catalog.default_catalog`).
        state
            .config_mut()
            .options_mut()
            .catalog
            .create_default_catalog_and_schema = false;
        let mut rules: Vec<Arc<dyn PhysicalOptimizerRule + Send + Sync>> =
            vec![Arc::new(SplitScans(planning))];
        rules.extend(state.physical_optimizers().iter().cloned());
        let state = SessionStateBuilder::new_from_existing(state)
            .with_physical_optimizer_rules(rules)
            .build();
        let mut physical = state.create_physical_plan(plan).await?;
        if let Some(wrap) = wrap {
            physical = wrap(physical);
        }
        Ok(cut_stages(physical, first_id)?)
    }

    /// Runs `plan` as a job; returns the result rows once every stage has finished.
    pub(crate) async fn run_job(
        &self,
        plan: &LogicalPlan,
        limit: ResultLimit,
    ) -> Result<SendableRecordBatchStream> {
        Ok(self.run_job_with_graph(plan, limit).await?.1)
    }

    /// Runs `plan` as a job; returns its stages, the result rows and its report with the
    /// plans its tasks ran on (the history keeps the report without them).
    pub(crate) async fn run_job_with_graph(
        &self,
        plan: &LogicalPlan,
        limit: ResultLimit,
    ) -> Result<(StageGraph, SendableRecordBatchStream, JobReport)> {
        let (stages, job, lineage) = self.prepare_job(plan, limit, |driver| driver, None).await?;
        let (stream, mut report) = job.run().await;
        self.record_job_and_lineage(&stages, &lineage, &mut report);
        Ok((stages, stream?, report))
    }

    /// Runs `plan` as a job with `wrap` applied to its physical plan before it is cut (a
    /// write's tasks on top); returns what its driver returns.
    pub(crate) async fn run_job_wrapped(
        &self,
        plan: &LogicalPlan,
        wrap: PlanWrap,
    ) -> Result<(StageGraph, SendableRecordBatchStream, JobReport)> {
        let (stages, job, lineage) = self
            .prepare_job(plan, ResultLimit::Unchecked, |driver| driver, Some(&wrap))
            .await?;
        let (stream, mut report) = job.run().await;
        self.record_job_and_lineage(&stages, &lineage, &mut report);
        Ok((stages, stream?, report))
    }

    /// The stages of `plan` with `wrap` applied before the cut, without running anything.
    pub(crate) async fn plan_stages_wrapped(
        &self,
        plan: &LogicalPlan,
        wrap: PlanWrap,
    ) -> Result<StageGraph> {
        self.plan_stages_from(plan, self.next_stage_id(), Some(&wrap))
            .await
    }

    /// Runs `plan` as a job whose driver plan is `driver` of the planned one; returns its
    /// stages, what the driver reads (not read yet) and its report with plans.
    pub(crate) async fn run_job_to_driver(
        &self,
        plan: &LogicalPlan,
        limit: ResultLimit,
        driver: fn(Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan>,
    ) -> Result<(StageGraph, DriverOutput, JobReport)> {
        let (stages, job, lineage) = self.prepare_job(plan, limit, driver, None).await?;
        let (output, mut report) = job.run_to_driver().await;
        self.record_job_and_lineage(&stages, &lineage, &mut report);
        Ok((stages, output?, report))
    }

    /// Keeps the job's report, and what its stages computed if it succeeded (for the
    /// recompute advisory).
    fn record_job_and_lineage(
        &self,
        graph: &StageGraph,
        lineage: &JobLineage,
        report: &mut JobReport,
    ) {
        (report.cache_hits, report.cache_misses) = cache_reads(report);
        self.record_job(report.clone());
        if report.status == JobStatus::Succeeded {
            self.lineage.record(lineage, graph, report);
        }
        // After the lineage: it says what the job computed again.
        self.emit_job_findings(graph, report);
    }

    /// What the job that runs `plan` as `graph` computes, for the recompute advisory.
    pub(crate) fn job_lineage(&self, plan: &LogicalPlan, graph: &StageGraph) -> JobLineage {
        match self.analyze(plan.clone()) {
            Ok(analyzed) => {
                crate::lineage::job_lineage(&analyzed, graph, &|scan| self.table_identity(scan))
            }
            Err(_) => JobLineage::default(),
        }
    }

    /// Plans `plan` into stages (with the driver plan `driver` makes of the planned one)
    /// and makes the job that runs them, listed as running.
    async fn prepare_job(
        &self,
        plan: &LogicalPlan,
        limit: ResultLimit,
        driver: fn(Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan>,
        wrap: Option<&PlanWrap>,
    ) -> Result<(StageGraph, Job, JobLineage)> {
        let mut graph = {
            // Jobs planned at the same time take distinct stage ids.
            let _planning = self.planning.lock().await;
            let graph = self
                .plan_stages_from(plan, self.next_stage_id(), wrap)
                .await?;
            self.take_stage_ids(graph.stages.len());
            graph
        };
        graph.driver = driver(graph.driver);
        let stages = graph.clone();
        let lineage = self.job_lineage(plan, &stages);
        let executors = self.executors();
        let local_dir = self.local_dir();
        let settings = JobSettings {
            slots: executors.slots(),
            max_task_failures: self.setting(keys::TASK_MAX_FAILURES).parse().unwrap_or(4),
            max_stage_attempts: self
                .setting(keys::STAGE_MAX_CONSECUTIVE_ATTEMPTS)
                .parse()
                .unwrap_or(4),
            driver_memory: self.driver_layout().execution,
            max_result_size: match keys::parse_bytes(&self.setting(keys::DRIVER_MAX_RESULT_SIZE)) {
                Some(bytes) if bytes > 0 && limit == ResultLimit::Checked => Some(bytes),
                _ => None,
            },
            local_dir,
            pool: self.scheduler_pool(),
            faults: self.faults()?,
            aqe: self.aqe_settings(),
        };
        let id = self.next_job_id();
        let sql = self.current_statement();
        // Listed as running while it runs; replaced by its report when it ends.
        let at = self.current_statement_at();
        self.record_job(JobReport {
            job: id,
            sql: sql.clone(),
            at: at.clone(),
            cache_hits: 0,
            cache_misses: 0,
            status: JobStatus::Running,
            error: None,
            slots: settings.slots,
            duration: Duration::ZERO,
            stages: Vec::new(),
            subqueries: Vec::new(),
            result: None,
        });
        let job = Job {
            id,
            sql,
            at,
            graph,
            settings,
            store: self.store.clone(),
            executors,
            on_cancel: Some(self.job_recorder()),
            base: self.ctx.state().task_ctx(),
            listeners: self.listeners(),
        };
        Ok((stages, job, lineage))
    }

    /// `spark.local.dir`: where spill files go.
    pub(crate) fn local_dir(&self) -> PathBuf {
        match self.setting(keys::LOCAL_DIR) {
            dir if dir.is_empty() => std::env::temp_dir(),
            dir => PathBuf::from(dir),
        }
    }
}

impl Session {
    /// The faults tests ask for (`stagesql.test.*`).
    fn faults(&self) -> Result<Faults> {
        let seed = self.setting(keys::TEST_FAULT_SEED);
        let random = match seed.trim() {
            "" => None,
            seed => Some(RandomFaults {
                seed: seed.parse().map_err(|_| {
                    Error::Config(format!(
                        "invalid value '{seed}' for '{}': expected a whole number (or empty for no faults)",
                        keys::TEST_FAULT_SEED
                    ))
                })?,
                probability: match self.setting(keys::TEST_FAULT_PROBABILITY).parse::<f64>() {
                    Ok(p) if (0.0..=1.0).contains(&p) => p,
                    _ => {
                        return Err(Error::Config(format!(
                            "invalid value '{}' for '{}': expected a probability from 0 to 1",
                            self.setting(keys::TEST_FAULT_PROBABILITY),
                            keys::TEST_FAULT_PROBABILITY
                        )));
                    }
                },
            }),
        };
        Ok(Faults {
            failed_attempts: parse_triples(
                &self.setting(keys::TEST_FAIL_TASKS),
                keys::TEST_FAIL_TASKS,
                "stage.task.attempt, e.g. 1.0.1",
                None,
            )?,
            random,
            lost_outputs: parse_triples(
                &self.setting(keys::TEST_LOSE_SHUFFLE_OUTPUT),
                keys::TEST_LOSE_SHUFFLE_OUTPUT,
                "stage.map or stage.map.attempt, e.g. 1.0",
                Some(1),
            )?,
        })
    }
}

/// Cached blocks the job's tasks found and did not find, from the metrics of the cache
/// scans in the plans they ran.
fn cache_reads(report: &JobReport) -> (u64, u64) {
    use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
    use datafusion::physical_plan::metrics::MetricValue;
    let (mut hits, mut misses) = (0, 0);
    for ran in report.stages.iter().flat_map(|stage| &stage.plans) {
        let _ = ran.plan.apply(|node| {
            if node.is::<crate::cache::InMemoryScanExec>()
                && let Some(metrics) = node.metrics()
            {
                for metric in metrics.iter() {
                    if let MetricValue::Count { name, count } = metric.value() {
                        match name.as_ref() {
                            "cache_hits" => hits += count.value() as u64,
                            "cache_misses" => misses += count.value() as u64,
                            _ => {}
                        }
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }
    (hits, misses)
}

/// `a.b.c` triples, comma-separated; with `default_third`, `a.b` pairs too.
fn parse_triples(
    text: &str,
    key: &str,
    expected: &str,
    default_third: Option<usize>,
) -> Result<HashSet<(usize, usize, usize)>> {
    text.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|item| {
            let parts: Option<Vec<usize>> = item.split('.').map(|p| p.parse().ok()).collect();
            match (parts.as_deref(), default_third) {
                (Some(&[a, b, c]), _) => Ok((a, b, c)),
                (Some(&[a, b]), Some(c)) => Ok((a, b, c)),
                _ => Err(Error::Config(format!(
                    "invalid value '{item}' in '{key}': expected {expected}"
                ))),
            }
        })
        .collect()
}

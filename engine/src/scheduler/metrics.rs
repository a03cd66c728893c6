//! What a job, its stages and their task attempts measured.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::metrics::{Label, Metric};

use crate::events::JobId;
use crate::stages::{Exchange, ShuffleReadExec, StageId};

/// One attempt of one task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskMetrics {
    pub stage: StageId,
    /// The attempt of the stage this task attempt belonged to.
    pub stage_attempt: usize,
    pub task: usize,
    /// Attempts of a task are numbered from 1 over every attempt of its stage.
    pub attempt: usize,
    /// The executor that ran the attempt (from 0).
    pub executor: usize,
    /// The executor's slot (core) it ran in, from 0: its lane in a timeline of waves.
    pub slot: usize,
    /// Start, in milliseconds since the job started.
    pub start_ms: f64,
    pub duration_ms: f64,
    /// Rows the task's leaves produced: file rows scanned plus shuffle rows read.
    pub rows_in: u64,
    /// Bytes the task read: the bytes of its file splits plus shuffle bytes read.
    pub bytes_in: u64,
    pub shuffle_read_rows: u64,
    pub shuffle_read_bytes: u64,
    /// Rows and bytes the task wrote (to the next stage's shuffle or to the result).
    pub rows_out: u64,
    pub bytes_out: u64,
    /// Bytes spilled to disk by the task's operators and its shuffle writer.
    pub spill_bytes: u64,
    pub peak_memory_bytes: u64,
    /// Why the attempt failed, if it did.
    pub error: Option<String>,
    /// Whether it failed because a parent's output was lost (which is not the task's fault
    /// and does not count toward `spark.task.maxFailures`).
    pub fetch_failed: bool,
    /// Whether it was stopped before it finished: its stage attempt ended early, or its job
    /// failed or was cancelled (not the task's fault either).
    pub killed: bool,
}

impl TaskMetrics {
    /// Adds what the operators of the task's plan measured for it.
    pub(crate) fn add(&mut self, measured: &Measured) {
        self.rows_in += measured.rows_in;
        self.bytes_in += measured.bytes_in;
        self.shuffle_read_rows += measured.shuffle_read_rows;
        self.shuffle_read_bytes += measured.shuffle_read_bytes;
        self.spill_bytes += measured.spill_bytes;
    }
}

/// What the operators of a stage plan measured for one task.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Measured {
    rows_in: u64,
    bytes_in: u64,
    shuffle_read_rows: u64,
    shuffle_read_bytes: u64,
    spill_bytes: u64,
}

impl Measured {
    /// Reads the metrics of tasks `0..tasks` from every operator of a stage plan, in one walk
    /// (an operator's metric set holds every partition's metrics: reading it once per task
    /// would cost tasks² per stage).
    pub(crate) fn collect(plan: &Arc<dyn ExecutionPlan>, tasks: usize) -> Vec<Measured> {
        let mut measured = vec![Measured::default(); tasks];
        let _ = plan.apply(|node| {
            for (m, bytes) in measured.iter_mut().zip(split_bytes(node)) {
                m.bytes_in += bytes;
            }
            let leaf = node.children().is_empty();
            let is_reader = node.is::<ShuffleReadExec>();
            if let Some(metrics) = partition_metrics(node) {
                for metric in &metrics {
                    let Some(m) = metric.partition().and_then(|task| measured.get_mut(task)) else {
                        continue;
                    };
                    let value = metric.value().as_usize() as u64;
                    match metric.value().name() {
                        "output_rows" if leaf && !is_reader => m.rows_in += value,
                        "shuffle_read_rows" | "broadcast_read_rows" => {
                            m.shuffle_read_rows += value;
                            m.rows_in += value;
                        }
                        "shuffle_read_bytes" | "broadcast_read_bytes" => {
                            m.shuffle_read_bytes += value;
                            m.bytes_in += value;
                        }
                        "spilled_bytes" => m.spill_bytes += value,
                        _ => {}
                    }
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        measured
    }
}

/// The metrics of `node`, each partition counted once. A file scan's metrics live in its
/// file source, which every copy of the plan shares (DataFusion's `reset_state` keeps it):
/// each execution of a partition (a retry, a stage attempt) adds entries of its own, so a
/// scan keeps, per partition and metric, the largest entry: that of one complete read of
/// the partition's split, as the attempt whose output was kept made.
pub(crate) fn partition_metrics(node: &Arc<dyn ExecutionPlan>) -> Option<Vec<Arc<Metric>>> {
    let set = node.metrics()?;
    if !node.is::<DataSourceExec>() {
        return Some(set.iter().cloned().collect());
    }
    // Per partition, metric and labels: where its largest entry is in `kept`.
    let mut largest: HashMap<(Option<usize>, &str, &[Label]), usize> = HashMap::new();
    let mut kept: Vec<Arc<Metric>> = Vec::new();
    for metric in set.iter() {
        let key = (metric.partition(), metric.value().name(), metric.labels());
        match largest.get(&key) {
            Some(&i) if kept[i].value().as_usize() < metric.value().as_usize() => {
                kept[i] = metric.clone()
            }
            Some(_) => {}
            None => {
                largest.insert(key, kept.len());
                kept.push(metric.clone());
            }
        }
    }
    Some(kept)
}

/// The bytes of the file split each partition of a file scan reads (Spark's input size), by
/// partition; nothing for other operators.
fn split_bytes(node: &Arc<dyn ExecutionPlan>) -> Vec<u64> {
    node.downcast_ref::<DataSourceExec>()
        .and_then(|scan| scan.data_source().downcast_ref::<FileScanConfig>())
        .map(|files| {
            files
                .file_groups
                .iter()
                .map(|group| group.iter().map(|file| file.effective_size()).sum())
                .collect()
        })
        .unwrap_or_default()
}

/// A plan instance a stage's tasks ran on, and the tasks whose successful attempt it ran.
/// First attempts share the stage's plan (after adaptive execution); a retried task runs on
/// a fresh copy, and a stage attempt on a fresh copy of the whole plan. Every operator's
/// metrics for task `t` are read from the instance whose `tasks` holds `t`.
#[derive(Debug, Clone)]
pub struct RanPlan {
    pub plan: Arc<dyn ExecutionPlan>,
    pub tasks: Vec<usize>,
}

impl PartialEq for RanPlan {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.plan, &other.plan) && self.tasks == other.tasks
    }
}

/// One stage of a finished job.
#[derive(Debug, Clone, PartialEq)]
pub struct StageReport {
    pub stage: StageId,
    pub exchange: Exchange,
    pub parents: Vec<StageId>,
    /// Tasks as planned, and as launched after adaptive execution.
    pub initial_tasks: usize,
    pub tasks: usize,
    /// What adaptive execution did to the stage, or why not.
    pub decisions: Vec<crate::adaptive::AqeDecision>,
    pub submitted_ms: f64,
    pub completed_ms: f64,
    /// Every attempt of every task, in task order.
    pub attempts: Vec<TaskMetrics>,
    /// Why each stage attempt after the first ran, e.g. `attempt 2: lost output of stage 1
    /// map task 0 …`.
    pub resubmitted: Vec<String>,
    /// Attempts of the stage as a whole (Spark's stage attempts): 1, or more when lost shuffle
    /// output of its own made it run its lost tasks again, or when a task failure in a stage
    /// whose tasks share state made the whole stage run again.
    pub stage_attempts: usize,
    /// The plans the tasks ran on: the first is the stage's plan after adaptive execution,
    /// the one EXPLAIN ANALYZE renders. Empty in the session's history
    /// ([`JobReport::without_plans`]).
    pub plans: Vec<RanPlan>,
}

impl StageReport {
    /// Attempts beyond the first, over all tasks.
    pub fn retries(&self) -> usize {
        self.attempts.len() - self.tasks.min(self.attempts.len())
    }

    /// Each task's latest successful attempt: the output the job used (an earlier success
    /// whose output was lost was computed again), in task order.
    pub fn kept_attempts(&self) -> Vec<&TaskMetrics> {
        let mut kept: Vec<&TaskMetrics> = Vec::new();
        for attempt in self.attempts.iter().filter(|a| a.error.is_none()) {
            match kept.iter_mut().find(|k| k.task == attempt.task) {
                Some(k) if k.attempt < attempt.attempt => *k = attempt,
                Some(_) => {}
                None => kept.push(attempt),
            }
        }
        kept.sort_by_key(|a| a.task);
        kept
    }

    pub fn spill_bytes(&self) -> u64 {
        self.attempts.iter().map(|a| a.spill_bytes).sum()
    }
}

pub use crate::events::JobStatus;

/// A job: running (as far as it got), or ended.
#[derive(Debug, Clone, PartialEq)]
pub struct JobReport {
    pub job: JobId,
    pub sql: String,
    /// Where the statement came from (`file:line`), when it came from a file.
    pub at: Option<String>,
    pub status: JobStatus,
    /// Why the job failed, if it did.
    pub error: Option<String>,
    pub slots: usize,
    pub duration: Duration,
    pub stages: Vec<StageReport>,
    /// The plans of the job's uncorrelated scalar subqueries as they ran on the driver, in
    /// the order of the stage graph's subqueries; `None` for one that never ran.
    pub subqueries: Vec<Option<RanPlan>>,
    /// What the job's last stage returned to the driver, once every stage has succeeded.
    pub result: Option<ResultSize>,
    /// Cached blocks its tasks read, and cached blocks they did not find (and computed
    /// again).
    pub cache_hits: u64,
    pub cache_misses: u64,
}

/// The size of a job's result as its last stage's tasks returned it to the driver (what
/// `spark.driver.maxResultSize` bounds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResultSize {
    pub tasks: usize,
    pub rows: u64,
    pub bytes: u64,
}

impl JobReport {
    /// The report without the plans the job ran on. An executed plan holds what its
    /// operators built (a broadcast join's hash table, say): a history of reports must not
    /// keep those alive.
    pub fn without_plans(mut self) -> Self {
        for stage in &mut self.stages {
            stage.plans.clear();
        }
        self.subqueries.iter_mut().for_each(|ran| *ran = None);
        self
    }
}

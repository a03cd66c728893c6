//! EXPLAIN in cluster mode: Ballista's distributed plan in our format.
//!
//! Before a run, the query is planned as the scheduler plans it (the same DataFusion
//! physical planner and settings) and cut into stages by Ballista's distributed planner; each
//! stage's partitions are its tasks, in waves on the cluster's slots (executors × cores, from
//! the scheduler's REST API). Ballista's adaptive planner may change joins and partition
//! counts while the job runs, as Spark's AQE does; EXPLAIN ANALYZE shows what ran, from the
//! scheduler's record of the job's stages and tasks.

use std::sync::Arc;

use ballista_core::JobId;
use ballista_core::execution_plans::{ShuffleReaderExec, ShuffleWriter, UnresolvedShuffleExec};
use ballista_scheduler::planner::{DefaultDistributedPlanner, DistributedPlanner};
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::execution::SessionState;
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};
use serde_json::Value;

use super::{Cluster, rest};
use crate::error::{Error, Result};
use crate::explain::{
    JobView, OperatorView, StageActuals, StageView, TaskTimes, leaf_description, operators_named,
};
use crate::stages::Exchange;

impl Cluster {
    /// Task slots of the cluster: the cores its executors registered with.
    pub async fn slots(&self) -> Result<usize> {
        let executors = rest::get_json(&self.address, "/api/executors").await?;
        Ok(executors
            .as_array()
            .map(|list| {
                list.iter()
                    .map(|e| e["specification"]["vcores"].as_u64().unwrap_or(1) as usize)
                    .sum()
            })
            .unwrap_or(0))
    }

    /// The stages Ballista would run `plan` in, before it runs.
    pub async fn plan_stages(
        &self,
        state: &SessionState,
        plan: &LogicalPlan,
        keys: &[(impl AsRef<str>, String)],
        slots: usize,
    ) -> Result<JobView> {
        let config = super::cluster_config(state, keys)?;
        // The scheduler's session: DataFusion's planner with Ballista's rules and functions.
        let scheduler = ballista_core::utils::default_session_builder(config)?;
        let physical = scheduler.create_physical_plan(plan).await?;
        let stages = DefaultDistributedPlanner::new()
            .plan_query_stages(
                &JobId::new("explain"),
                physical,
                scheduler.config().options(),
            )
            .map_err(|e| Error::Cluster(format!("Ballista's distributed planner: {e}")))?;
        Ok(view(&stages, slots))
    }

    /// The stages of Ballista job `job` as they ran, from the scheduler's REST API, over the
    /// plan's stages before the run (`planned`).
    pub async fn ran_stages(&self, job: &str, mut planned: JobView) -> Result<JobView> {
        let response = rest::get_json(&self.address, &format!("/api/job/{job}/stages")).await?;
        let Some(stages) = response["stages"].as_array() else {
            return Err(Error::Cluster(format!(
                "the scheduler at {} has no stages for job {job}",
                self.address
            )));
        };
        for ran in stages {
            let Some(id) = rest::stage_id(ran) else {
                continue;
            };
            let actuals = actuals(ran, planned.slots);
            match planned.stages.iter_mut().find(|s| s.id == id) {
                Some(stage) => {
                    stage.actuals = Some(actuals);
                }
                // A stage Ballista's adaptive planner added while the job ran.
                None => planned.stages.push(StageView {
                    id,
                    parents: Vec::new(),
                    tasks: actuals.tasks_launched,
                    tasks_from: "a stage Ballista's adaptive planner added".into(),
                    exchange: Exchange::Shuffle(Partitioning::UnknownPartitioning(0)),
                    operators: Vec::new(),
                    waves: actuals.waves,
                    adaptive: true,
                    skew_split: false,
                    actuals: Some(actuals),
                }),
            }
        }
        Ok(planned)
    }
}

/// The model EXPLAIN renders, of Ballista's stages (the last is the job's result stage).
fn view(stages: &[Arc<dyn ShuffleWriter>], slots: usize) -> JobView {
    let last = stages.len().saturating_sub(1);
    let views = stages
        .iter()
        .enumerate()
        .map(|(index, writer)| {
            let input = writer.children()[0].clone();
            let tasks = writer.input_partition_count();
            let broadcast = stages
                .iter()
                .any(|reader| reads_broadcast(reader, writer.stage_id()));
            let exchange = match (index == last, writer.shuffle_output_partitioning()) {
                (true, _) => Exchange::Result,
                (false, _) if broadcast => Exchange::Broadcast,
                (false, Some(partitioning)) => Exchange::Shuffle(partitioning.clone()),
                (false, None) => Exchange::Gather,
            };
            StageView {
                id: writer.stage_id(),
                parents: parents(&input),
                tasks,
                tasks_from: tasks_from(&input),
                exchange,
                operators: operators_named(&input, &ballista_name),
                waves: tasks.div_ceil(slots.max(1)),
                adaptive: false,
                skew_split: false,
                actuals: None,
            }
        })
        .collect();
    JobView {
        job: None,
        slots,
        stages: views,
        subqueries: Vec::new(),
        driver: vec![OperatorView {
            depth: 0,
            name: "fetch of the result stage's partitions from the executors".into(),
            rows: None,
            time_ms: None,
            detail: None,
        }],
        result: None,
    }
}

/// Whether `reader`'s plan reads stage `stage` whole, as a broadcast.
fn reads_broadcast(reader: &Arc<dyn ShuffleWriter>, stage: usize) -> bool {
    let mut found = false;
    let plan: Arc<dyn ExecutionPlan> = reader.children()[0].clone();
    let _ = plan.apply(|node| {
        if let Some(read) = node.downcast_ref::<UnresolvedShuffleExec>()
            && read.stage_id == stage
            && read.broadcast
        {
            found = true;
            return Ok(TreeNodeRecursion::Stop);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// The stages a stage's plan reads.
fn parents(plan: &Arc<dyn ExecutionPlan>) -> Vec<usize> {
    let mut ids = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(read) = node.downcast_ref::<UnresolvedShuffleExec>() {
            ids.push(read.stage_id);
        } else if let Some(read) = node.downcast_ref::<ShuffleReaderExec>() {
            ids.push(read.stage_id);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    ids.sort_unstable();
    ids.dedup();
    ids
}

/// Where a stage's partitions come from: the shuffles it reads, or its files.
fn tasks_from(plan: &Arc<dyn ExecutionPlan>) -> String {
    let mut shuffles = Vec::new();
    let mut leaves = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(read) = node.downcast_ref::<UnresolvedShuffleExec>() {
            if !read.broadcast {
                shuffles.push((read.output_partition_count, read.stage_id));
            }
            return Ok(TreeNodeRecursion::Jump);
        }
        if node.children().is_empty() {
            leaves.push(leaf_description(node));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    let mut sources = Vec::new();
    if let Some((n, _)) = shuffles.first() {
        let ids: Vec<String> = shuffles.iter().map(|(_, id)| id.to_string()).collect();
        let noun = if ids.len() == 1 { "stage" } else { "stages" };
        sources.push(format!(
            "{n} shuffle partitions of {noun} {}",
            ids.join(", ")
        ));
    }
    sources.extend(leaves);
    sources.join(" + ")
}

/// Our short names for Ballista's exchange reads.
fn ballista_name(node: &Arc<dyn ExecutionPlan>) -> Option<String> {
    if let Some(read) = node.downcast_ref::<UnresolvedShuffleExec>() {
        return Some(match read.broadcast {
            true => format!("ShuffleRead(stage {}, whole, as broadcast)", read.stage_id),
            false => format!("ShuffleRead(stage {})", read.stage_id),
        });
    }
    node.downcast_ref::<ShuffleReaderExec>()
        .map(|read| format!("ShuffleRead(stage {})", read.stage_id))
}

/// What a stage did, from the scheduler's summary of it.
fn actuals(stage: &Value, slots: usize) -> StageActuals {
    let tasks: Vec<&Value> = stage["tasks"]
        .as_array()
        .map(|tasks| tasks.iter().filter(|t| !t.is_null()).collect())
        .unwrap_or_default();
    let durations: Vec<f64> = tasks
        .iter()
        .map(|t| t["exec_duration"].as_u64().unwrap_or(0) as f64)
        .collect();
    let failed = tasks
        .iter()
        .filter(|t| t["status"].get("Failed").is_some())
        .count();
    let started = tasks
        .iter()
        .filter_map(|t| t["start_exec_time"].as_u64())
        .min();
    let ended = tasks
        .iter()
        .filter_map(|t| t["end_exec_time"].as_u64())
        .max();
    let count = |key: &str| stage[key].as_u64().unwrap_or(0);
    StageActuals {
        tasks_launched: tasks.len(),
        waves: tasks.len().div_ceil(slots.max(1)),
        wall_ms: match (started, ended) {
            (Some(start), Some(end)) if end >= start => (end - start) as f64,
            _ => 0.0,
        },
        task_ms: TaskTimes::of(&durations),
        rows_in: count("input_rows"),
        rows_out: count("output_rows"),
        retries: failed,
        stage_attempts: 1,
        task_durations_ms: durations,
        ..StageActuals::default()
    }
}

//! Adaptive query execution: rules applied to a stage when its parents have finished, on
//! the exact sizes of the shuffles it reads. Every rule records an [`AqeDecision`] — also
//! when it was considered and not applied, with the reason.
//!
//! Implemented: switching a partitioned join to a broadcast join when its build side turned
//! out small, then coalescing shuffle partitions ([`coalesce`]).

pub mod coalesce;

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

use crate::shuffle::ShuffleStore;
use crate::stages::{PartitionSpec, ReadSpec, ShuffleReadExec, Stage, StageId};

/// Settings of adaptive execution (`spark.sql.adaptive.*`).
#[derive(Debug, Clone, Copy)]
pub struct AqeSettings {
    pub enabled: bool,
    pub coalesce: bool,
    /// `parallelismFirst`: at least `slots` partitions when the data allows.
    pub parallelism_first: bool,
    pub min_partition_size: u64,
    pub advisory_partition_size: u64,
    pub slots: usize,
    /// `spark.sql.adaptive.autoBroadcastJoinThreshold`; `None` when off (-1).
    pub broadcast_threshold: Option<u64>,
}

/// What a rule did to a stage, or why it did nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AqeDecision {
    pub stage: StageId,
    pub rule: &'static str,
    pub applied: bool,
    /// e.g. `200 → 6 partitions`.
    pub change: String,
    /// The statistics behind it, e.g. `41.2 MiB over 200 partitions, target 5.2 MiB`.
    pub reason: String,
}

impl AqeDecision {
    /// A rule that was considered and not applied, and why.
    fn not_applied(stage: StageId, rule: &'static str, reason: impl Into<String>) -> Self {
        Self {
            stage,
            rule,
            applied: false,
            change: String::new(),
            reason: reason.into(),
        }
    }
}

/// Applies the rules to `stage` before it is submitted; returns the stage to run.
pub fn optimize_stage(
    stage: &Stage,
    store: &ShuffleStore,
    settings: &AqeSettings,
) -> Result<(Stage, Vec<AqeDecision>)> {
    let mut decisions = Vec::new();
    if !settings.enabled {
        return Ok((stage.clone(), decisions));
    }
    let stage = &switch_to_broadcast(stage, store, settings, &mut decisions)?;
    let readers = shuffle_readers(stage.plan.input());
    if readers.is_empty() {
        return Ok((stage.clone(), decisions));
    }
    if !settings.coalesce {
        decisions.push(AqeDecision::not_applied(
            stage.id,
            "coalesce partitions",
            "spark.sql.adaptive.coalescePartitions.enabled is false",
        ));
        return Ok((stage.clone(), decisions));
    }
    let sizes: Vec<Vec<u64>> = readers
        .iter()
        .map(|id| store.statistics(*id).bytes_by_partition())
        .collect();
    let partitions = sizes[0].len();
    if sizes.iter().any(|s| s.len() != partitions) {
        decisions.push(AqeDecision::not_applied(
            stage.id,
            "coalesce partitions",
            "the shuffles it reads have different partition counts",
        ));
        return Ok((stage.clone(), decisions));
    }
    let total: u64 = sizes.iter().flatten().sum();
    let min_partitions = if settings.parallelism_first {
        settings.slots
    } else {
        1
    };
    let target = coalesce::target_size(
        total,
        min_partitions,
        settings.advisory_partition_size,
        settings.min_partition_size,
    );
    let groups = coalesce::coalesce(&sizes, target);
    let reason = format!(
        "{} over {partitions} partitions, target {} per partition",
        crate::explain::human_bytes(total),
        crate::explain::human_bytes(target)
    );
    if groups.len() >= partitions {
        decisions.push(AqeDecision {
            stage: stage.id,
            rule: "coalesce partitions",
            applied: false,
            change: format!("{partitions} partitions"),
            reason: format!("{reason}: no partitions to merge"),
        });
        return Ok((stage.clone(), decisions));
    }
    let specs: Vec<PartitionSpec> = groups
        .iter()
        .map(|(range, _)| PartitionSpec {
            reduce: range.clone(),
            maps: None,
        })
        .collect();
    let plan = stage.plan.input().clone().transform_up(|node| {
        let Some(reader) = node.downcast_ref::<ShuffleReadExec>() else {
            return Ok(Transformed::no(node));
        };
        if !matches!(reader.spec(), ReadSpec::ReducePartitions(_)) {
            return Ok(Transformed::no(node));
        }
        // Whole hash buckets are grouped the same way for every shuffle the stage reads, so
        // the read is still hash-partitioned by the same keys, into fewer partitions.
        let partitioning = match &reader.properties().partitioning {
            Partitioning::Hash(exprs, _) => Partitioning::Hash(exprs.clone(), specs.len()),
            _ => Partitioning::UnknownPartitioning(specs.len()),
        };
        Ok(Transformed::yes(Arc::new(ShuffleReadExec::new(
            reader.stage(),
            ReadSpec::Explicit(specs.clone()),
            reader.schema(),
            partitioning,
            None,
        )) as Arc<dyn ExecutionPlan>))
    })?;
    decisions.push(AqeDecision {
        stage: stage.id,
        rule: "coalesce partitions",
        applied: true,
        change: format!("{partitions} → {} partitions", specs.len()),
        reason,
    });
    Ok((stage.with_input(plan.data), decisions))
}

/// A partitioned hash join whose build side (a shuffle that has been written) is smaller
/// than the threshold becomes a broadcast join: the build shuffle is read whole, once per
/// stage, and the probe shuffle is read as it was written, without a new exchange. Only
/// join types whose result needs nothing from unmatched build rows switch, as every probe
/// task builds from the whole side.
fn switch_to_broadcast(
    stage: &Stage,
    store: &ShuffleStore,
    settings: &AqeSettings,
    decisions: &mut Vec<AqeDecision>,
) -> Result<Stage> {
    let rule = "switch join strategy";
    let mut changed = false;
    let plan = stage.plan.input().clone().transform_up(|node| {
        let Some(join) = node.downcast_ref::<HashJoinExec>() else {
            return Ok(Transformed::no(node));
        };
        let children = node.children();
        let Some(build) = children[0].downcast_ref::<ShuffleReadExec>() else {
            return Ok(Transformed::no(node));
        };
        if join.mode != PartitionMode::Partitioned || !matches!(build.spec(), ReadSpec::ReducePartitions(_)) {
            return Ok(Transformed::no(node));
        }
        let bytes: u64 = store.statistics(build.stage()).bytes_by_partition().iter().sum();
        let size = crate::explain::human_bytes(bytes);
        let Some(threshold) = settings.broadcast_threshold else {
            decisions.push(AqeDecision::not_applied(stage.id, rule, format!("build side {size}; spark.sql.adaptive.autoBroadcastJoinThreshold is -1")));
            return Ok(Transformed::no(node));
        };
        let limit = crate::explain::human_bytes(threshold);
        if bytes >= threshold {
            decisions.push(AqeDecision::not_applied(stage.id, rule, format!("build side {size} is not under spark.sql.adaptive.autoBroadcastJoinThreshold ({limit})")));
            return Ok(Transformed::no(node));
        }
        if !matches!(join.join_type(), JoinType::Inner | JoinType::Right | JoinType::RightSemi | JoinType::RightAnti) {
            decisions.push(AqeDecision::not_applied(stage.id, rule, format!("{} join needs its build side's unmatched rows: it stays partitioned", join.join_type())));
            return Ok(Transformed::no(node));
        }
        let partitions = match build.spec() {
            ReadSpec::ReducePartitions(n) => *n,
            _ => unreachable!("checked above"),
        };
        let whole: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReadExec::new(
            build.stage(),
            ReadSpec::Explicit(vec![PartitionSpec { reduce: 0..partitions, maps: None }]),
            build.schema(),
            Partitioning::UnknownPartitioning(1),
            None,
        ));
        let probe = children[1].clone();
        let switched = join
            .builder()
            .with_partition_mode(PartitionMode::CollectLeft)
            .with_new_children(vec![whole, probe])?
            .recompute_properties()
            .build_exec()?;
        decisions.push(AqeDecision {
            stage: stage.id,
            rule,
            applied: true,
            change: "partitioned → broadcast join".into(),
            reason: format!("build side (stage {}) {size} < spark.sql.adaptive.autoBroadcastJoinThreshold ({limit})", build.stage()),
        });
        changed = true;
        Ok(Transformed::yes(switched))
    })?;
    if !changed {
        return Ok(stage.clone());
    }
    Ok(stage.with_input(plan.data))
}

/// Stages whose shuffles `plan` reads partition by partition.
fn shuffle_readers(plan: &Arc<dyn ExecutionPlan>) -> Vec<StageId> {
    let mut stages = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(reader) = node.downcast_ref::<ShuffleReadExec>()
            && matches!(reader.spec(), ReadSpec::ReducePartitions(_))
        {
            stages.push(reader.stage());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    stages.sort_unstable();
    stages.dedup();
    stages
}

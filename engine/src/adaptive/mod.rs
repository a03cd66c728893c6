//! Adaptive query execution: rules applied to a stage when its parents have finished, on
//! the exact sizes of the shuffles it reads. Every rule records an [`AqeDecision`] — also
//! when it was considered and not applied, with the reason.
//!
//! Implemented: coalescing shuffle partitions ([`coalesce`]).

pub mod coalesce;

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

use crate::shuffle::ShuffleStore;
use crate::stages::{PartitionSpec, ReadSpec, ShuffleReadExec, ShuffleWriteExec, Stage, StageId};

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
    let readers = shuffle_readers(stage.plan.input());
    if readers.is_empty() {
        return Ok((stage.clone(), decisions));
    }
    if !settings.coalesce {
        decisions.push(AqeDecision {
            stage: stage.id,
            rule: "coalesce partitions",
            applied: false,
            change: String::new(),
            reason: "spark.sql.adaptive.coalescePartitions.enabled is false".into(),
        });
        return Ok((stage.clone(), decisions));
    }
    let sizes: Vec<Vec<u64>> = readers
        .iter()
        .map(|id| store.statistics(*id).bytes_by_partition())
        .collect();
    let partitions = sizes[0].len();
    if sizes.iter().any(|s| s.len() != partitions) {
        decisions.push(AqeDecision {
            stage: stage.id,
            rule: "coalesce partitions",
            applied: false,
            change: String::new(),
            reason: "the shuffles it reads have different partition counts".into(),
        });
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
    let rewritten = Stage {
        id: stage.id,
        plan: Arc::new(ShuffleWriteExec::new(
            plan.data,
            stage.id,
            stage.exchange().clone(),
        )),
        parents: stage.parents.clone(),
    };
    Ok((rewritten, decisions))
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

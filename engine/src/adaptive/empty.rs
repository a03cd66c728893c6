//! Empty relation propagation: a stage that produced no rows makes some of what reads it
//! empty — an inner join with it, a grouped aggregate over it. The topmost such join or
//! aggregate is replaced by an empty relation with the same schema and partition count, so
//! none of the work below it runs (Spark's `AQEPropagateEmptyRelation`).
//!
//! ```text
//!   HashJoinExec (inner)                        EmptyExec (the join's partitions)
//!     ShuffleReadExec stage 2  (0 rows)   ──▶
//!     ShuffleReadExec stage 3  (9 GiB)
//! ```

use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::execution::TaskContext;
use datafusion::physical_expr::PhysicalExpr;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, SortMergeJoinExec, SymmetricHashJoinExec,
};
use datafusion::physical_plan::limit::{GlobalLimitExec, LocalLimitExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::union::UnionExec;
use datafusion::physical_plan::windows::{BoundedWindowAggExec, WindowAggExec};
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, PlanProperties, SendableRecordBatchStream,
};

use super::AqeDecision;
use crate::shuffle::ShuffleStore;
use crate::stages::{BroadcastReadExec, ShuffleReadExec, Stage, StageId};

const RULE: &str = "propagate empty relation";

/// Replaces the joins and aggregates that the stage's empty inputs make empty.
pub(super) fn propagate(
    stage: &Stage,
    store: &ShuffleStore,
    decisions: &mut Vec<AqeDecision>,
) -> Result<Stage> {
    let empty_inputs = empty_inputs(stage.plan.input(), store);
    if empty_inputs.is_empty() {
        return Ok(stage.clone());
    }
    let inputs = empty_inputs
        .iter()
        .map(|id| format!("stage {id}"))
        .collect::<Vec<_>>()
        .join(", ");
    let check = Emptiness {
        empty: &empty_inputs,
    };
    let mut pruned = Vec::new();
    let plan = stage.plan.input().clone().transform_down(|node| {
        if !check.is_empty(&node) || !has_join_or_aggregate(&node) {
            return Ok(Transformed::no(node));
        }
        pruned.push(describe(&node));
        let empty = EmptyRelationExec::replacing(&node);
        Ok(Transformed::new(
            Arc::new(empty) as Arc<dyn ExecutionPlan>,
            true,
            TreeNodeRecursion::Jump,
        ))
    })?;
    if pruned.is_empty() {
        let kept = check
            .survivor(stage.plan.input())
            .unwrap_or_else(|| "nothing above it is a join or aggregate".into());
        decisions.push(AqeDecision::not_applied(
            stage.id,
            RULE,
            format!("{inputs} produced no rows, but {kept}"),
        ));
        return Ok(stage.clone());
    }
    for what in pruned {
        decisions.push(AqeDecision {
            stage: stage.id,
            rule: RULE,
            applied: true,
            change: format!("{what} → empty relation"),
            reason: format!("{inputs} produced no rows"),
        });
    }
    Ok(stage.with_input(plan.data))
}

/// No rows, in place of an operator that would produce none. It keeps every property the
/// operator declared — its partitioning, orderings, equivalences — since they all hold of
/// no rows, so the operators above it still get what they need: a `UNION ALL` planned as
/// an interleave of hash-partitioned inputs stays one (DataFusion's `EmptyExec` declares
/// an unknown partitioning, and rebuilding the interleave failed with "Can not create
/// InterleaveExec").
#[derive(Debug)]
pub struct EmptyRelationExec {
    properties: Arc<PlanProperties>,
}

impl EmptyRelationExec {
    pub fn replacing(node: &Arc<dyn ExecutionPlan>) -> Self {
        Self {
            properties: node.properties().clone(),
        }
    }
}

impl DisplayAs for EmptyRelationExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        write!(
            f,
            "EmptyExec: partitions={}",
            self.properties.output_partitioning().partition_count()
        )
    }
}

impl ExecutionPlan for EmptyRelationExec {
    fn name(&self) -> &str {
        "EmptyExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn execute(
        &self,
        _partition: usize,
        _context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let schema = self.schema();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::empty(),
        )))
    }
}

/// The stages `plan` reads that wrote no rows at all.
fn empty_inputs(plan: &Arc<dyn ExecutionPlan>, store: &ShuffleStore) -> Vec<StageId> {
    let mut stages = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(stage) = read_stage(node)
            && produced_nothing(store, stage)
        {
            stages.push(stage);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    stages.sort_unstable();
    stages.dedup();
    stages
}

fn read_stage(node: &Arc<dyn ExecutionPlan>) -> Option<StageId> {
    if let Some(reader) = node.downcast_ref::<ShuffleReadExec>() {
        return Some(reader.stage());
    }
    node.downcast_ref::<BroadcastReadExec>()
        .map(BroadcastReadExec::stage)
}

fn produced_nothing(store: &ShuffleStore, stage: StageId) -> bool {
    let statistics = store.statistics(stage);
    !statistics.rows.is_empty() && statistics.rows.iter().flatten().all(|&rows| rows == 0)
}

/// Which operators are certainly empty, given the input stages that wrote no rows.
struct Emptiness<'a> {
    empty: &'a [StageId],
}

impl Emptiness<'_> {
    /// Whether `node` certainly produces no rows, given which inputs are empty.
    fn is_empty(&self, node: &Arc<dyn ExecutionPlan>) -> bool {
        if node.is::<EmptyExec>() || node.is::<EmptyRelationExec>() {
            return true;
        }
        if let Some(stage) = read_stage(node) {
            return self.empty.contains(&stage);
        }
        let children = node.children();
        if let Some(join_type) = join_type(node) {
            let (left, right) = (self.is_empty(children[0]), self.is_empty(children[1]));
            return match join_type {
                JoinType::Inner | JoinType::LeftSemi | JoinType::RightSemi => left || right,
                JoinType::Left | JoinType::LeftAnti | JoinType::LeftMark => left,
                JoinType::Right | JoinType::RightAnti | JoinType::RightMark => right,
                JoinType::Full => left && right,
            };
        }
        if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
            return !returns_rows_over_nothing(aggregate) && self.is_empty(children[0]);
        }
        if node.is::<UnionExec>() {
            return children.iter().all(|c| self.is_empty(c));
        }
        row_by_row(node) && self.is_empty(children[0])
    }

    /// The first operator from the top that keeps rows although an input below it is
    /// empty, described for the decision.
    fn survivor(&self, node: &Arc<dyn ExecutionPlan>) -> Option<String> {
        if self.is_empty(node) {
            return None;
        }
        let children = node.children();
        if children.iter().any(|c| self.is_empty(c)) {
            if let Some(join_type) = join_type(node) {
                return Some(format!(
                    "a {join_type} join keeps the rows of its other side"
                ));
            }
            if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
                return Some(match aggregate.group_expr().is_empty() {
                    true => "an aggregate without GROUP BY still returns a row".into(),
                    false => "an aggregate whose grouping sets include the empty set (ROLLUP, CUBE, GROUPING SETS) still returns its grand total".into(),
                });
            }
            if node.is::<UnionExec>() {
                return Some("a union keeps the rows of its other inputs".into());
            }
            return Some(format!("{} still produces rows", node.name()));
        }
        children.into_iter().find_map(|c| self.survivor(c))
    }
}

/// Whether an aggregate returns rows over empty input: one without GROUP BY returns its one
/// row, and one whose grouping sets include the empty set (`ROLLUP`, `CUBE`, `GROUPING
/// SETS (…, ())`) returns that set's grand total.
fn returns_rows_over_nothing(aggregate: &AggregateExec) -> bool {
    let group_by = aggregate.group_expr();
    group_by.is_empty()
        || group_by
            .groups()
            .iter()
            .any(|nulls| nulls.iter().all(|&is_null| is_null))
}

fn join_type(node: &Arc<dyn ExecutionPlan>) -> Option<JoinType> {
    if let Some(join) = node.downcast_ref::<HashJoinExec>() {
        return Some(*join.join_type());
    }
    if let Some(join) = node.downcast_ref::<SortMergeJoinExec>() {
        return Some(join.join_type());
    }
    if let Some(join) = node.downcast_ref::<SymmetricHashJoinExec>() {
        return Some(*join.join_type());
    }
    if let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() {
        return Some(*join.join_type());
    }
    node.is::<CrossJoinExec>().then_some(JoinType::Inner)
}

/// Operators whose every output row comes from an input row.
fn row_by_row(node: &Arc<dyn ExecutionPlan>) -> bool {
    node.is::<FilterExec>()
        || node.is::<ProjectionExec>()
        || node.is::<SortExec>()
        || node.is::<SortPreservingMergeExec>()
        || node.is::<CoalescePartitionsExec>()
        || node.is::<RepartitionExec>()
        || node.is::<LocalLimitExec>()
        || node.is::<GlobalLimitExec>()
        || node.is::<BoundedWindowAggExec>()
        || node.is::<WindowAggExec>()
        || node.name() == "CoalesceBatchesExec"
}

fn has_join_or_aggregate(node: &Arc<dyn ExecutionPlan>) -> bool {
    let mut found = false;
    let _ = node.apply(|n| {
        found = join_type(n).is_some() || n.is::<AggregateExec>();
        Ok(match found {
            true => TreeNodeRecursion::Stop,
            false => TreeNodeRecursion::Continue,
        })
    });
    found
}

/// The topmost join or aggregate in `node`: `HashJoinExec (Inner)`, `AggregateExec
/// (Partial)`.
fn describe(node: &Arc<dyn ExecutionPlan>) -> String {
    let mut found = node.name().to_string();
    let _ = node.apply(|n| {
        if let Some(join_type) = join_type(n) {
            found = format!("{} ({join_type})", n.name());
        } else if let Some(aggregate) = n.downcast_ref::<AggregateExec>() {
            found = format!("{} ({:?})", n.name(), aggregate.mode());
        } else {
            return Ok(TreeNodeRecursion::Continue);
        }
        Ok(TreeNodeRecursion::Stop)
    });
    found
}

//! Cutting a physical plan into stages at its exchanges.
//!
//! One bottom-up transform over the plan ([`TreeNode::transform_up`]): when it meets an
//! exchange, the subtree below (already cut) becomes a stage rooted in a
//! [`ShuffleWriteExec`], and a reader of that stage takes its place:
//!
//! | DataFusion operator | exchange | the reader in the parent stage |
//! |---|---|---|
//! | `RepartitionExec` (hash, round-robin) | shuffle, R buckets | `ShuffleReadExec`, R tasks |
//! | `CoalescePartitionsExec`, `SortPreservingMergeExec` | gather | the merge over `ShuffleReadExec` of each map output: one task |
//! | build side of `HashJoinExec(CollectLeft)`, `CrossJoinExec`, `NestedLoopJoinExec` | broadcast | `BroadcastReadExec` |
//!
//! The merge at the very top of the plan (under a limit or projection at most) is not a
//! stage: the driver runs it over the last stage's output, as Spark's driver collects a
//! result. So a scan-only query is one stage and a GROUP BY two. A write (`DataSinkExec`)
//! runs on the driver too, over the last stage's output: it commits once, after every task
//! succeeded. Uncorrelated scalar subqueries are evaluated on the driver between stages
//! ([`SubqueryStep`]).

use std::sync::Arc;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::datasource::sink::DataSinkExec;
use datafusion::error::Result;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::replace_children_if_necessary;
use datafusion::physical_plan::joins::{
    CrossJoinExec, HashJoinExec, NestedLoopJoinExec, PartitionMode,
};
use datafusion::physical_plan::limit::GlobalLimitExec;
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::recursive_query::RecursiveQueryExec;
use datafusion::physical_plan::repartition::RepartitionExec;
use datafusion::physical_plan::scalar_subquery::ScalarSubqueryExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};

use crate::stages::{
    BroadcastReadExec, Exchange, ReadSpec, ShuffleReadExec, ShuffleWriteExec, Stage, StageGraph,
    StageId, SubqueryStep, read_stages, reads_subquery_results, restore_orderings, shuffled,
};

/// Cuts `plan` into stages numbered from `first_id` (stage ids are unique in a session);
/// see the module documentation.
pub fn cut_stages(plan: Arc<dyn ExecutionPlan>, first_id: StageId) -> Result<StageGraph> {
    let cutter = std::cell::RefCell::new(Cutter {
        first_id,
        stages: Vec::new(),
        subqueries: Vec::new(),
        subquery_readers: Vec::new(),
    });
    // A write commits on the driver once every stage has succeeded, as Spark's job commit
    // does: inside a task a retry would apply it twice.
    let (sink, plan) = match plan.downcast_ref::<DataSinkExec>() {
        Some(_) => (Some(plan.clone()), plan.children()[0].clone()),
        None => (None, plan),
    };
    let (driver_top, below) = split_driver(plan);
    let last_input = if contains::<RecursiveQueryExec>(&below) {
        // A recursive query re-runs its children per iteration: keep it in one stage.
        below
    } else {
        // Stage counts when each enclosing ScalarSubqueryExec was entered.
        let entered = std::cell::RefCell::new(Vec::new());
        below
            .transform_down_up(
                |node| {
                    if node.is::<ScalarSubqueryExec>() {
                        entered.borrow_mut().push(cutter.borrow().next_id());
                    }
                    Ok(Transformed::no(node))
                },
                |node| {
                    let mut cutter = cutter.borrow_mut();
                    if let Some(exec) = node.downcast_ref::<ScalarSubqueryExec>() {
                        let first_new = entered.borrow_mut().pop().unwrap_or(first_id);
                        cutter.evaluate_on_driver(exec, first_new);
                        return Ok(Transformed::yes(cutter.cut(exec.input().clone())?.data));
                    }
                    cutter.cut(node)
                },
            )?
            .data
    };
    let mut cutter = cutter.into_inner();
    let last = cutter.add_stage(last_input, Exchange::Result);
    let last_stage = cutter.stage(last);
    let reader: Arc<dyn ExecutionPlan> = Arc::new(gather_reader(last, last_stage.plan.input()));
    let driver = match driver_top {
        Some(top) => replace_leaf(top, reader)?,
        None if last_stage.tasks() > 1 => Arc::new(CoalescePartitionsExec::new(reader)),
        None => reader,
    };
    let driver = match sink {
        Some(sink) => replace_children_if_necessary(sink, vec![driver])?,
        None => driver,
    };
    let driver = restore_orderings(driver);
    cutter.wait_for_subqueries();
    Ok(StageGraph {
        stages: cutter.stages,
        driver,
        subqueries: cutter.subqueries,
    })
}

struct Cutter {
    first_id: StageId,
    stages: Vec<Stage>,
    subqueries: Vec<SubqueryStep>,
    /// Per subquery step, the stages cut out of its exec's main input: they may read the
    /// values in ways no expression walk sees (a predicate pushed into a scan).
    subquery_readers: Vec<Vec<StageId>>,
}

impl Cutter {
    fn next_id(&self) -> StageId {
        self.first_id + self.stages.len()
    }

    fn cut(&mut self, node: Arc<dyn ExecutionPlan>) -> Result<Transformed<Arc<dyn ExecutionPlan>>> {
        if let Some(repartition) = node.downcast_ref::<RepartitionExec>() {
            let partitioning = repartition.partitioning().clone();
            if !matches!(
                partitioning,
                Partitioning::Hash(..) | Partitioning::RoundRobinBatch(_)
            ) {
                return Ok(Transformed::no(node));
            }
            let input = repartition.input().clone();
            // The streaming plan counts on the order of the repartitioned rows when the
            // repartition keeps it: an order-preserving one, or one of a single input
            // partition (each output partition then holds its rows in input order).
            let ordering = repartition.maintains_input_order()[0]
                .then(|| input.output_ordering().cloned())
                .flatten();
            let schema = input.schema();
            let buckets = partitioning.partition_count();
            let id = self.add_stage(input, Exchange::Shuffle(partitioning.clone()));
            let read_partitioning = match partitioning {
                Partitioning::RoundRobinBatch(n) => Partitioning::UnknownPartitioning(n),
                hash => hash,
            };
            // What held of the repartitioned rows in the streaming plan holds of the read.
            let reader: Arc<dyn ExecutionPlan> = Arc::new(ShuffleReadExec::new(
                id,
                ReadSpec::ReducePartitions(buckets),
                schema,
                read_partitioning,
                Some(shuffled(&repartition.properties().eq_properties)),
            ));
            // A reduce partition's blocks come from different map tasks (and adaptive
            // execution may read several reduce partitions as one): sort each partition
            // again.
            return Ok(Transformed::yes(match ordering {
                Some(ordering) => {
                    Arc::new(SortExec::new(ordering, reader).with_preserve_partitioning(true))
                }
                None => reader,
            }));
        }
        if node.is::<CoalescePartitionsExec>() || node.is::<SortPreservingMergeExec>() {
            let input = node.children()[0].clone();
            if input.output_partitioning().partition_count() <= 1 {
                return Ok(Transformed::no(node));
            }
            let id = self.add_stage(input.clone(), Exchange::Gather);
            let reader = Arc::new(gather_reader(id, &input));
            return Ok(Transformed::yes(replace_children_if_necessary(
                node,
                vec![reader],
            )?));
        }
        let broadcast_build = node
            .downcast_ref::<HashJoinExec>()
            .is_some_and(|join| join.mode == PartitionMode::CollectLeft)
            || node.is::<CrossJoinExec>()
            || node.is::<NestedLoopJoinExec>();
        if broadcast_build {
            let mut children: Vec<Arc<dyn ExecutionPlan>> =
                node.children().into_iter().cloned().collect();
            let build = children[0].clone();
            let id = match self.gathered_stage(&build) {
                // The build side was just gathered for this join: that gather is the broadcast.
                Some(id) => {
                    self.set_exchange(id, Exchange::Broadcast);
                    id
                }
                None => self.add_stage(build.clone(), Exchange::Broadcast),
            };
            children[0] = Arc::new(BroadcastReadExec::new(
                id,
                shuffled(build.equivalence_properties()),
            ));
            return Ok(Transformed::yes(replace_children_if_necessary(
                node, children,
            )?));
        }
        Ok(Transformed::no(node))
    }

    /// Takes an uncorrelated scalar subquery out of the stages: its plans (already cut; they
    /// read stages of their own) become a [`SubqueryStep`] the scheduler evaluates once, on
    /// the driver, between stages. Inside a stage its values would be computed by whichever
    /// task came first and cleared by any task's retry; outside, no task can disturb them.
    fn evaluate_on_driver(&mut self, exec: &ScalarSubqueryExec, first_new: StageId) {
        let mut reads: Vec<StageId> = Vec::new();
        for link in exec.subqueries() {
            reads.extend(read_stages(&link.plan));
            // A nested subquery the link's plan reads must be evaluated before this one.
            for inner in &self.subqueries {
                if reads_subquery_results(&link.plan, &inner.results) {
                    reads.extend(inner.reads.iter().copied());
                }
            }
        }
        reads.sort_unstable();
        reads.dedup();
        let mut subquery_stages = reads.clone();
        let mut index = 0;
        while index < subquery_stages.len() {
            let parents = self.stage(subquery_stages[index]).parents.clone();
            subquery_stages.extend(parents);
            index += 1;
        }
        let readers = (first_new..self.next_id())
            .filter(|id| !subquery_stages.contains(id))
            .collect();
        self.subqueries.push(SubqueryStep {
            links: exec.subqueries().to_vec(),
            results: exec.results().clone(),
            reads,
        });
        self.subquery_readers.push(readers);
    }

    /// Every stage that reads a subquery's values waits for the stages its step reads.
    fn wait_for_subqueries(&mut self) {
        for (step, readers) in self.subqueries.iter().zip(&self.subquery_readers) {
            for stage in &mut self.stages {
                let plan: Arc<dyn ExecutionPlan> = stage.plan.clone();
                if !readers.contains(&stage.id) && !reads_subquery_results(&plan, &step.results) {
                    continue;
                }
                let parents = &mut stage.parents;
                parents.extend(step.reads.iter().filter(|id| **id != stage.id));
                parents.sort_unstable();
                parents.dedup();
            }
        }
    }

    fn add_stage(&mut self, input: Arc<dyn ExecutionPlan>, exchange: Exchange) -> StageId {
        let id = self.next_id();
        let plan = Arc::new(ShuffleWriteExec::new(
            restore_orderings(input),
            id,
            exchange,
        ));
        let parents = read_stages(plan.input());
        self.stages.push(Stage { id, plan, parents });
        id
    }

    fn stage(&self, id: StageId) -> &Stage {
        &self.stages[id - self.first_id]
    }

    fn stage_mut(&mut self, id: StageId) -> &mut Stage {
        let first = self.first_id;
        &mut self.stages[id - first]
    }

    fn set_exchange(&mut self, id: StageId, exchange: Exchange) {
        let stage = self.stage_mut(id);
        stage.plan = Arc::new(ShuffleWriteExec::new(
            stage.plan.input().clone(),
            id,
            exchange,
        ));
    }

    /// `CoalescePartitionsExec` directly over the reader of a gather stage: its stage id.
    fn gathered_stage(&self, build: &Arc<dyn ExecutionPlan>) -> Option<StageId> {
        if !build.is::<CoalescePartitionsExec>() {
            return None;
        }
        let reader = build.children()[0].downcast_ref::<ShuffleReadExec>()?;
        matches!(reader.spec(), ReadSpec::MapOutputs(_))
            .then_some(reader.stage())
            .filter(|id| matches!(self.stage(*id).exchange(), Exchange::Gather))
    }
}

/// A reader presenting each map task's output of stage `id` as one partition, with the
/// ordering each map output had.
fn gather_reader(id: StageId, input: &Arc<dyn ExecutionPlan>) -> ShuffleReadExec {
    let maps = input.output_partitioning().partition_count();
    ShuffleReadExec::new(
        id,
        ReadSpec::MapOutputs(maps),
        input.schema(),
        Partitioning::UnknownPartitioning(maps),
        Some(input.equivalence_properties().clone()),
    )
}

fn contains<T: ExecutionPlan>(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        found |= node.is::<T>();
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Splits off the driver's part of the plan: the top merge, under single-child limit and
/// projection operators. Returns that part (its merge still over the original input) and
/// the plan below the merge.
fn split_driver(
    plan: Arc<dyn ExecutionPlan>,
) -> (Option<Arc<dyn ExecutionPlan>>, Arc<dyn ExecutionPlan>) {
    let mut node = plan.clone();
    loop {
        if node.is::<CoalescePartitionsExec>() || node.is::<SortPreservingMergeExec>() {
            let below = node.children()[0].clone();
            if below.output_partitioning().partition_count() <= 1 {
                return (None, plan);
            }
            return (Some(plan), below);
        }
        let passes = node.is::<GlobalLimitExec>() || node.is::<ProjectionExec>();
        if !passes || node.children().len() != 1 {
            return (None, plan);
        }
        node = node.children()[0].clone();
    }
}

/// Replaces the input of the merge at the bottom of the driver's chain with `reader`.
fn replace_leaf(
    top: Arc<dyn ExecutionPlan>,
    reader: Arc<dyn ExecutionPlan>,
) -> Result<Arc<dyn ExecutionPlan>> {
    if top.is::<CoalescePartitionsExec>() || top.is::<SortPreservingMergeExec>() {
        return replace_children_if_necessary(top, vec![reader]);
    }
    let child = replace_leaf(top.children()[0].clone(), reader)?;
    replace_children_if_necessary(top, vec![child])
}

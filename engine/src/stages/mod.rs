//! Stages: the pieces of a physical plan between exchanges, and the operators at their edges.
//!
//! ```text
//!            driver: CoalescePartitionsExec ◀── ShuffleReadExec (result of stage 3)
//!   stage 3:  ShuffleWriteExec(result) ◀── HashJoinExec ◀── ShuffleReadExec(shuffle 1)
//!                                                      ◀── ShuffleReadExec(shuffle 2)
//!   stage 1:  ShuffleWriteExec(hash → 200) ◀── scan orders      (one task per file split)
//!   stage 2:  ShuffleWriteExec(hash → 200) ◀── scan lineitem
//! ```
//!
//! Every stage's plan is rooted in a [`ShuffleWriteExec`] that writes each task's output to
//! the job's shuffle store; the stages that consume it start with a [`ShuffleReadExec`] (or a
//! [`BroadcastReadExec`] for a broadcast build side). The graph is built by
//! the planner (`planner::cut_stages`).

mod broadcast_read;
mod shuffle_read;
pub mod shuffle_write;

use std::fmt;
use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::logical_expr::physical_planning_context::ScalarSubqueryResults;
use datafusion::physical_expr::scalar_subquery::ScalarSubqueryExpr;
use datafusion::physical_plan::joins::{HashJoinExec, NestedLoopJoinExec, PartitionMode};
use datafusion::physical_plan::scalar_subquery::{ScalarSubqueryExec, ScalarSubqueryLink};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties, Partitioning};

pub use broadcast_read::BroadcastReadExec;
pub use shuffle_read::{PartitionSpec, ReadSpec, ShuffleReadExec, read_written_maps, shuffled};
pub use shuffle_write::ShuffleWriteExec;

pub use crate::ids::StageId;

/// How a stage's output reaches the stages (or the driver) that read it.
#[derive(Debug, Clone, PartialEq)]
pub enum Exchange {
    /// Hash (or round-robin) partitioning into buckets: a shuffle.
    Shuffle(Partitioning),
    /// Each task's output kept whole, read by a single task (or merged in order).
    Gather,
    /// The output collected once and shared with every task of the reading stage.
    Broadcast,
    /// The job's last stage: the driver merges its tasks' outputs into the result.
    Result,
}

impl Exchange {
    pub fn is_shuffle(&self) -> bool {
        matches!(self, Exchange::Shuffle(_))
    }

    /// Buckets each map task writes.
    pub fn buckets(&self) -> usize {
        match self {
            Exchange::Shuffle(partitioning) => partitioning.partition_count(),
            Exchange::Gather | Exchange::Broadcast | Exchange::Result => 1,
        }
    }
}

impl fmt::Display for Exchange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Exchange::Shuffle(Partitioning::Hash(exprs, n)) => {
                let keys: Vec<String> = exprs.iter().map(|e| e.to_string()).collect();
                write!(f, "shuffle hash({}) → {n}", keys.join(", "))
            }
            Exchange::Shuffle(Partitioning::RoundRobinBatch(n)) => {
                write!(f, "shuffle round-robin → {n}")
            }
            Exchange::Shuffle(other) => write!(f, "shuffle {other}"),
            Exchange::Gather => f.write_str("gather → 1"),
            Exchange::Broadcast => f.write_str("broadcast"),
            Exchange::Result => f.write_str("result"),
        }
    }
}

/// One stage: its plan (rooted in a [`ShuffleWriteExec`]), the stages it reads, and how its
/// output leaves it.
#[derive(Debug, Clone)]
pub struct Stage {
    pub id: StageId,
    pub plan: Arc<ShuffleWriteExec>,
    pub parents: Vec<StageId>,
}

impl Stage {
    /// Tasks = output partitions of the stage's plan: one per file split, per reduce
    /// partition, or one.
    pub fn tasks(&self) -> usize {
        self.plan.input().output_partitioning().partition_count()
    }

    pub fn exchange(&self) -> &Exchange {
        self.plan.exchange()
    }

    /// Its main operators, top first and without the plumbing between them (batch
    /// coalescing, projections): `HashJoin ← ShuffleRead ← ShuffleRead`. What timelines and
    /// stage graphs call it.
    pub fn name(&self) -> String {
        const PLUMBING: &[&str] = &["CoalesceBatchesExec", "ProjectionExec", "CooperativeExec"];
        let mut names: Vec<String> = Vec::new();
        let _ = self.plan.input().apply(|node| {
            let name = node.name();
            if !PLUMBING.contains(&name) {
                let short = name.strip_suffix("Exec").unwrap_or(name);
                let short = match short {
                    "DataSource" => "Scan",
                    other => other,
                };
                if names.last().is_none_or(|last| last != short) {
                    names.push(short.to_string());
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
        if names.len() > 6 {
            names.truncate(5);
            names.push("…".to_string());
        }
        names.join(" ← ")
    }

    /// Whether the stage's tasks share state that one task's retry cannot rebuild alone: a
    /// broadcast join that emits the unmatched rows of its build side (left, full, semi,
    /// anti, mark joins; DataFusion's last probe task to finish emits them, counting the
    /// others), a null-aware anti join (every probe task must know whether any saw a NULL),
    /// or a scalar subquery evaluated inside the stage. When one of its tasks fails, the
    /// whole stage runs again, as Spark runs a barrier stage again.
    pub fn tasks_share_state(&self) -> bool {
        let plan: Arc<dyn ExecutionPlan> = self.plan.clone();
        let mut shared = false;
        let _ = plan.apply(|node| {
            shared = if let Some(join) = node.downcast_ref::<HashJoinExec>() {
                join.mode == PartitionMode::CollectLeft
                    && (emits_unmatched_build_rows(join.join_type) || join.null_aware)
            } else if let Some(join) = node.downcast_ref::<NestedLoopJoinExec>() {
                emits_unmatched_build_rows(*join.join_type())
            } else {
                node.is::<ScalarSubqueryExec>()
            };
            Ok(match shared {
                true => TreeNodeRecursion::Stop,
                false => TreeNodeRecursion::Continue,
            })
        });
        shared
    }

    /// The same stage running `input` instead (after a rewrite of its plan).
    pub fn with_input(&self, input: Arc<dyn ExecutionPlan>) -> Stage {
        Stage {
            id: self.id,
            plan: Arc::new(ShuffleWriteExec::new(
                input,
                self.id,
                self.exchange().clone(),
            )),
            parents: self.parents.clone(),
        }
    }
}

/// Sorts each partition again where an operator of a stage needs its input sorted and the
/// input, as cut, no longer is: the streaming plan may have counted on an order that held
/// across an exchange (rows of one input partition keep their order through a
/// repartition) or inside partitions that adaptive execution now reads together. Only
/// hard requirements count: an operator with a soft one works on any order.
pub fn restore_orderings(plan: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    use datafusion::common::tree_node::Transformed;
    use datafusion::physical_expr::{LexOrdering, OrderingRequirements};
    use datafusion::physical_plan::sorts::sort::SortExec;
    let restored = plan.clone().transform_up(|node| {
        let children: Vec<Arc<dyn ExecutionPlan>> = node.children().into_iter().cloned().collect();
        let mut changed = false;
        let mut sorted = Vec::with_capacity(children.len());
        for (child, requirement) in children.into_iter().zip(node.required_input_ordering()) {
            let Some(OrderingRequirements::Hard(alternatives)) = requirement else {
                sorted.push(child);
                continue;
            };
            let satisfied = alternatives.iter().any(|alternative| {
                child
                    .equivalence_properties()
                    .ordering_satisfy_requirement(alternative.clone())
                    .unwrap_or(false)
            });
            match (satisfied, alternatives.into_iter().next()) {
                (false, Some(first)) => {
                    changed = true;
                    let ordering: LexOrdering = first.into();
                    sorted.push(Arc::new(
                        SortExec::new(ordering, child).with_preserve_partitioning(true),
                    ));
                }
                _ => sorted.push(child),
            }
        }
        Ok(match changed {
            true => Transformed::yes(
                datafusion::physical_plan::execution_plan::replace_children_if_necessary(
                    node, sorted,
                )?,
            ),
            false => Transformed::no(node),
        })
    });
    restored.map_or(plan, |restored| restored.data)
}

/// Join types whose result depends on every probe row having been seen: they emit what
/// of the build side matched nothing, or only what matched (DataFusion's
/// `need_produce_result_in_final`).
fn emits_unmatched_build_rows(join_type: JoinType) -> bool {
    matches!(
        join_type,
        JoinType::Left
            | JoinType::LeftAnti
            | JoinType::LeftSemi
            | JoinType::LeftMark
            | JoinType::Full
    )
}

/// A job's stages in execution order, and the plan the driver runs over the last stage's
/// output to produce the result (a merge, possibly with a limit).
#[derive(Debug, Clone)]
pub struct StageGraph {
    pub stages: Vec<Stage>,
    pub driver: Arc<dyn ExecutionPlan>,
    /// Uncorrelated scalar subqueries, innermost first, evaluated on the driver.
    pub subqueries: Vec<SubqueryStep>,
}

/// Uncorrelated scalar subqueries that one `ScalarSubqueryExec` of DataFusion's plan
/// computed: the scheduler evaluates their plans once, on the driver, as soon as the stages
/// they read have finished, and fills `results`, which the expressions of later stages read.
/// Every stage reading the values has `reads` among its parents.
#[derive(Debug, Clone)]
pub struct SubqueryStep {
    pub links: Vec<ScalarSubqueryLink>,
    pub results: ScalarSubqueryResults,
    pub reads: Vec<StageId>,
}

/// The input of a stage plan (below its shuffle writer), e.g. of a plan a stage's tasks ran.
pub fn stage_input(plan: &Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    match plan.downcast_ref::<ShuffleWriteExec>() {
        Some(writer) => writer.input().clone(),
        None => plan.clone(),
    }
}

/// The stages whose output `plan` reads (its shuffle and broadcast reads), in order.
pub fn read_stages(plan: &Arc<dyn ExecutionPlan>) -> Vec<StageId> {
    let mut parents = Vec::new();
    let _ = plan.apply(|node| {
        if let Some(reader) = node.downcast_ref::<ShuffleReadExec>() {
            parents.push(reader.stage());
        } else if let Some(reader) = node.downcast_ref::<BroadcastReadExec>() {
            parents.push(reader.stage());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    parents.sort_unstable();
    parents.dedup();
    parents
}

/// Whether an expression of some operator of `plan` reads the values in `results`.
pub fn reads_subquery_results(
    plan: &Arc<dyn ExecutionPlan>,
    results: &ScalarSubqueryResults,
) -> bool {
    let mut found = false;
    let _ = plan.apply(|node| {
        node.apply_expressions(&mut |expr| {
            expr.apply(|e| {
                found |= e
                    .downcast_ref::<ScalarSubqueryExpr>()
                    .is_some_and(|s| ScalarSubqueryResults::ptr_eq(s.results(), results));
                Ok(match found {
                    true => TreeNodeRecursion::Stop,
                    false => TreeNodeRecursion::Continue,
                })
            })
        })
    });
    found
}

impl StageGraph {
    pub fn stage(&self, id: StageId) -> Option<&Stage> {
        self.stages.iter().find(|s| s.id == id)
    }
}

impl fmt::Display for StageGraph {
    /// Every stage with its plan, then the driver's part.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for stage in &self.stages {
            let parents: Vec<String> = stage.parents.iter().map(|p| p.to_string()).collect();
            writeln!(
                f,
                "Stage {} ({} tasks, parents [{}], {})",
                stage.id,
                stage.tasks(),
                parents.join(", "),
                stage.exchange()
            )?;
            let plan: Arc<dyn ExecutionPlan> = stage.plan.clone();
            write!(
                f,
                "{}",
                datafusion::physical_plan::displayable(plan.as_ref()).indent(false)
            )?;
        }
        writeln!(f, "Driver")?;
        write!(
            f,
            "{}",
            datafusion::physical_plan::displayable(self.driver.as_ref()).indent(false)
        )
    }
}

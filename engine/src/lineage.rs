//! What each job computes, as fingerprints of the parts of its plan worth keeping: every
//! subtree of the analyzed logical plan that joins, aggregates or computes a window,
//! together with the identity of the sources it reads (a table's version in the session
//! and, for files, their sizes and modification times). Two subtrees with the same
//! fingerprint compute the same rows — the unit Spark's cache matches on — so a session
//! that remembers what its jobs computed can say when a job computes again what an earlier
//! one did (the recompute advisory): every action recomputes its whole lineage unless a
//! shared result is cached.
//!
//! Each subtree is attributed to the stage that computes its topmost join, aggregate or
//! window: the k-th such operator of the logical plan is the k-th of the physical stages
//! (in execution order). When the two counts differ (the optimizer added or removed joins),
//! the job's last stage stands for it.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::{Arc, Mutex};

use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::logical_expr::{LogicalPlan, TableScan};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::aggregates::{AggregateExec, AggregateMode};

use crate::ids::JobId;
use crate::scheduler::{JobReport, StageReport};
use crate::stages::{StageGraph, StageId};

pub type Fingerprint = u64;

/// What kind of work a subtree's topmost substantial operator does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Kind {
    Join,
    Aggregate,
    Window,
}

impl Kind {
    fn of_logical(plan: &LogicalPlan) -> Option<Kind> {
        match plan {
            LogicalPlan::Join(_) => Some(Kind::Join),
            LogicalPlan::Aggregate(_) | LogicalPlan::Distinct(_) => Some(Kind::Aggregate),
            LogicalPlan::Window(_) => Some(Kind::Window),
            _ => None,
        }
    }

    fn of_physical(plan: &Arc<dyn ExecutionPlan>) -> Option<Kind> {
        if let Some(aggregate) = plan.downcast_ref::<AggregateExec>() {
            // One per logical aggregation: the partial half is not counted.
            return (*aggregate.mode() != AggregateMode::Partial).then_some(Kind::Aggregate);
        }
        let name = plan.name();
        if name.contains("Join") {
            Some(Kind::Join)
        } else if name.contains("Window") {
            Some(Kind::Window)
        } else {
            None
        }
    }
}

/// A subtree of a job's plan worth keeping, and where the job computes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Subtree {
    pub fingerprint: Fingerprint,
    /// The stage that computes its topmost join, aggregate or window.
    pub stage: StageId,
    /// That operator's place in the stage's plan (preorder), when known.
    pub operator: Option<usize>,
    /// Whether the job computed it whole: no filter or limit above it that the optimizer
    /// may have pushed into it (a later job's match of it is then a recomputation).
    pub whole: bool,
}

/// The subtrees of a job's plan worth keeping, outermost first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobLineage {
    pub subtrees: Vec<Subtree>,
    /// Per subtree, the indexes of the subtrees inside it.
    inside: Vec<BTreeSet<usize>>,
}

/// The lineage of the job that runs `plan` (analyzed) as `graph`; `identity` gives a
/// table's identity (its version, its files).
pub fn job_lineage(
    plan: &LogicalPlan,
    graph: &StageGraph,
    identity: &dyn Fn(&TableScan) -> u64,
) -> JobLineage {
    // The physical operators of each kind, in execution order: stages parents first, each
    // stage's plan children first.
    let mut physical: HashMap<Kind, Vec<(StageId, usize)>> = HashMap::new();
    for stage in &graph.stages {
        let mut index = 0;
        postorder_physical(stage.plan.input(), &mut index, &mut |kind, at| {
            physical.entry(kind).or_default().push((stage.id, at));
        });
    }
    // The logical ones, in the same order.
    let mut logical: HashMap<Kind, Vec<*const LogicalPlan>> = HashMap::new();
    postorder_logical(plan, &mut |node, kind| {
        logical.entry(kind).or_default().push(node as *const _);
    });
    let last = graph.stages.last().map_or(0, |s| s.id);
    let place = |node: &LogicalPlan, kind: Kind| -> (StageId, Option<usize>) {
        let nodes = logical.get(&kind).map(Vec::as_slice).unwrap_or_default();
        let operators = physical.get(&kind).map(Vec::as_slice).unwrap_or_default();
        match nodes.iter().position(|n| std::ptr::eq(*n, node)) {
            Some(k) if nodes.len() == operators.len() => {
                let (stage, at) = operators[k];
                (stage, Some(at))
            }
            _ => (last, None),
        }
    };
    let mut lineage = JobLineage::default();
    collect(plan, true, identity, &place, &mut lineage);
    lineage
}

/// Where the job computes a logical operator: its stage, and its place in the stage's plan.
type Place<'p> = dyn Fn(&LogicalPlan, Kind) -> (StageId, Option<usize>) + 'p;

/// Adds the subtrees of `node` worth keeping to `lineage` (outermost first); returns the
/// fingerprint of `node`'s subtree, its topmost substantial operator, and the indexes of
/// the kept subtrees inside it.
fn collect<'a>(
    node: &'a LogicalPlan,
    whole: bool,
    identity: &dyn Fn(&TableScan) -> u64,
    place: &Place,
    lineage: &mut JobLineage,
) -> (
    Fingerprint,
    Option<(&'a LogicalPlan, Kind)>,
    BTreeSet<usize>,
) {
    let slot = lineage.subtrees.len();
    lineage.subtrees.push(Subtree {
        fingerprint: 0,
        stage: 0,
        operator: None,
        whole,
    });
    lineage.inside.push(BTreeSet::new());
    let mut hasher = DefaultHasher::new();
    // The node itself, without its inputs (they are hashed below, by fingerprint).
    format!("{}", node.display()).hash(&mut hasher);
    format!("{:?}", node.schema().fields()).hash(&mut hasher);
    if let LogicalPlan::TableScan(scan) = node {
        identity(scan).hash(&mut hasher);
    }
    let mut topmost = Kind::of_logical(node).map(|kind| (node, kind));
    let mut inside = BTreeSet::new();
    // Below a filter or a limit the optimizer may compute only part of an input.
    let inputs_whole = whole
        && match node {
            LogicalPlan::Filter(_) | LogicalPlan::Limit(_) => false,
            LogicalPlan::Sort(sort) => sort.fetch.is_none(),
            LogicalPlan::Join(join) => join.filter.is_none(),
            _ => true,
        };
    for input in node.inputs() {
        let (fingerprint, top, kept) = collect(input, inputs_whole, identity, place, lineage);
        fingerprint.hash(&mut hasher);
        topmost = topmost.or(top);
        inside.extend(kept);
    }
    // Scalar subqueries and the like are part of what the node computes.
    let _ = node.apply_subqueries(|subquery| {
        format!("{}", subquery.display_indent()).hash(&mut hasher);
        Ok(TreeNodeRecursion::Continue)
    });
    let fingerprint = hasher.finish();
    match topmost {
        Some((operator, kind)) => {
            let (stage, at) = place(operator, kind);
            lineage.subtrees[slot] = Subtree {
                fingerprint,
                stage,
                operator: at,
                whole,
            };
            lineage.inside[slot] = inside.clone();
            inside.insert(slot);
        }
        None => {
            // Not worth keeping: its place is given up (and nothing inside it was kept).
            lineage.subtrees.truncate(slot);
            lineage.inside.truncate(slot);
        }
    }
    (fingerprint, topmost, inside)
}

fn postorder_logical<'a>(plan: &'a LogicalPlan, visit: &mut dyn FnMut(&'a LogicalPlan, Kind)) {
    for input in plan.inputs() {
        postorder_logical(input, visit);
    }
    if let Some(kind) = Kind::of_logical(plan) {
        visit(plan, kind);
    }
}

/// Children first; `index` is each operator's preorder index in the stage's plan.
fn postorder_physical(
    plan: &Arc<dyn ExecutionPlan>,
    index: &mut usize,
    visit: &mut dyn FnMut(Kind, usize),
) {
    let at = *index;
    *index += 1;
    for child in plan.children() {
        postorder_physical(child, index, visit);
    }
    if let Some(kind) = Kind::of_physical(plan) {
        visit(kind, at);
    }
}

/// What a subtree of an earlier job computed, and what it cost.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Computed {
    pub job: JobId,
    pub stage: StageId,
    /// Rows it produced.
    pub rows: u64,
    /// Bytes the stage that computed it wrote, when it was the stage's result (about what
    /// caching it would hold); `None` when the stage went on to compute more from it.
    pub bytes: Option<u64>,
    /// Wall time from the first of the stages it needed starting to its stage's end.
    pub ms: f64,
}

/// A stage of a job that computes again what an earlier job computed.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Recomputation {
    pub stage: StageId,
    pub earlier: Computed,
}

/// What the session's jobs computed, by fingerprint.
#[derive(Debug, Default)]
pub struct LineageHistory {
    computed: Mutex<HashMap<Fingerprint, Computed>>,
    /// Per job, what it computed again.
    recomputed: Mutex<BTreeMap<JobId, Vec<Recomputation>>>,
}

impl LineageHistory {
    /// What `lineage` computes (or would compute) again of what an earlier job computed:
    /// the outermost such subtrees, one per stage.
    pub fn recomputations(&self, lineage: &JobLineage, job: Option<JobId>) -> Vec<Recomputation> {
        let computed = self.computed.lock().unwrap_or_else(|e| e.into_inner());
        let mut covered: BTreeSet<usize> = BTreeSet::new();
        let mut found: Vec<Recomputation> = Vec::new();
        for (index, subtree) in lineage.subtrees.iter().enumerate() {
            if covered.contains(&index) {
                continue;
            }
            let Some(earlier) = computed
                .get(&subtree.fingerprint)
                .filter(|earlier| Some(earlier.job) != job)
            else {
                continue;
            };
            covered.extend(&lineage.inside[index]);
            if !found.iter().any(|r| r.stage == subtree.stage) {
                found.push(Recomputation {
                    stage: subtree.stage,
                    earlier: *earlier,
                });
            }
        }
        found.sort_by_key(|r| r.stage);
        found
    }

    /// Remembers what a job that succeeded computed, and what of it an earlier job had.
    /// `report` carries the plans its tasks ran on, for the rows each operator produced.
    pub fn record(&self, lineage: &JobLineage, graph: &StageGraph, report: &JobReport) {
        let recomputed = self.recomputations(lineage, Some(report.job));
        self.recomputed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(report.job, recomputed);
        let submitted: BTreeMap<StageId, f64> = report
            .stages
            .iter()
            .map(|s| (s.stage, s.submitted_ms))
            .collect();
        let mut computed = self.computed.lock().unwrap_or_else(|e| e.into_inner());
        for subtree in lineage.subtrees.iter().filter(|s| s.whole) {
            let Some(stage) = report.stages.iter().find(|s| s.stage == subtree.stage) else {
                continue;
            };
            // Its cost: the stage's time and that of every stage it needs.
            let mut needed = BTreeSet::from([subtree.stage]);
            let mut queue = vec![subtree.stage];
            while let Some(id) = queue.pop() {
                for parent in graph
                    .stage(id)
                    .map(|s| s.parents.clone())
                    .unwrap_or_default()
                {
                    if needed.insert(parent) {
                        queue.push(parent);
                    }
                }
            }
            let rows = subtree
                .operator
                .and_then(|at| operator_rows(stage, graph, at))
                .unwrap_or_else(|| stage.kept_attempts().iter().map(|a| a.rows_out).sum());
            // Stages it needs may run side by side: the time is the span they took.
            let first = needed
                .iter()
                .filter_map(|id| submitted.get(id))
                .copied()
                .fold(stage.submitted_ms, f64::min);
            let is_result = subtree
                .operator
                .is_some_and(|at| stage_result(graph, subtree.stage, at));
            computed.entry(subtree.fingerprint).or_insert(Computed {
                job: report.job,
                stage: subtree.stage,
                rows,
                bytes: is_result.then(|| stage.kept_attempts().iter().map(|a| a.bytes_out).sum()),
                ms: (stage.completed_ms - first).max(0.0),
            });
        }
    }

    /// What `job` computed again of what an earlier job had.
    pub fn recomputed_by(&self, job: JobId) -> Vec<Recomputation> {
        self.recomputed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&job)
            .cloned()
            .unwrap_or_default()
    }
}

/// Whether the operator at preorder index `at` of stage `stage` is what the stage writes:
/// only operators that pass rows through (projections, batching) are above it.
fn stage_result(graph: &StageGraph, stage: StageId, at: usize) -> bool {
    let Some(stage) = graph.stage(stage) else {
        return false;
    };
    let nodes = preorder(stage.plan.input());
    at < nodes.len()
        && nodes[..at].iter().all(|node| {
            node.children().len() == 1
                && ["CoalesceBatchesExec", "ProjectionExec", "CooperativeExec"]
                    .contains(&node.name())
        })
}

/// Rows the operator at preorder index `at` of `stage` produced, from the plan its tasks
/// ran on, when that plan still has the planned shape.
fn operator_rows(stage: &StageReport, graph: &StageGraph, at: usize) -> Option<u64> {
    let planned = graph.stage(stage.stage)?.plan.input().clone();
    let ran = crate::stages::stage_input(&stage.plans.first()?.plan);
    let (planned, ran) = (preorder(&planned), preorder(&ran));
    if planned.len() != ran.len() || planned.get(at)?.name() != ran.get(at)?.name() {
        return None;
    }
    ran[at]
        .metrics()
        .and_then(|metrics| metrics.output_rows())
        .map(|rows| rows as u64)
}

fn preorder(plan: &Arc<dyn ExecutionPlan>) -> Vec<Arc<dyn ExecutionPlan>> {
    let mut nodes = vec![plan.clone()];
    for child in plan.children() {
        nodes.extend(preorder(child));
    }
    nodes
}

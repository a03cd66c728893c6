//! The model EXPLAIN renders: stages with their task counts and where those come from.

use std::sync::Arc;

use datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use datafusion::datasource::physical_plan::FileScanConfig;
use datafusion::datasource::source::DataSourceExec;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::empty::EmptyExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode};
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};

use datafusion::physical_plan::metrics::MetricValue;

use crate::cache::InMemoryScanExec;
pub use crate::config::human_bytes;
use crate::scheduler::{JobReport, RanPlan, StageReport, partition_metrics};
use crate::stages::{
    BroadcastReadExec, Exchange, ReadSpec, ShuffleReadExec, StageGraph, StageId, stage_input,
};
use crate::warehouse::ScanOrigin;

/// A job for EXPLAIN: its stages, and totals for the header line.
#[derive(Debug, Clone, PartialEq)]
pub struct JobView {
    /// The job id once it ran (`EXPLAIN ANALYZE`); `None` before.
    pub job: Option<usize>,
    pub slots: usize,
    pub stages: Vec<StageView>,
    /// Uncorrelated scalar subqueries, each computed once on the driver between stages.
    pub subqueries: Vec<SubqueryView>,
    /// The driver's part: the merge of the last stage's outputs, in short form.
    pub driver: Vec<OperatorView>,
    /// After a run, what the last stage returned to the driver.
    pub result: Option<crate::scheduler::ResultSize>,
}

/// An uncorrelated scalar subquery: computed once, on the driver, after the stages it reads
/// and before the stages that use its value.
#[derive(Debug, Clone, PartialEq)]
pub struct SubqueryView {
    /// Numbered from 1 in the order they are computed (innermost first).
    pub id: usize,
    /// The stages whose output it reads.
    pub after: Vec<StageId>,
    /// The stages whose operators use its value.
    pub read_by: Vec<StageId>,
    /// The subqueries (by id) whose plans use its value.
    pub read_by_subqueries: Vec<usize>,
    pub operators: Vec<OperatorView>,
}

impl JobView {
    pub fn shuffles(&self) -> usize {
        self.stages
            .iter()
            .filter(|s| s.exchange.is_shuffle())
            .count()
    }

    pub fn broadcasts(&self) -> usize {
        self.stages
            .iter()
            .filter(|s| s.exchange == Exchange::Broadcast)
            .count()
    }

    pub fn tasks(&self) -> usize {
        self.stages.iter().map(|s| s.tasks).sum()
    }
}

/// One stage for EXPLAIN.
#[derive(Debug, Clone, PartialEq)]
pub struct StageView {
    pub id: StageId,
    pub parents: Vec<StageId>,
    pub tasks: usize,
    /// Where the task count comes from, e.g. `file splits of lineitem (4 files, 212.3 MiB)`.
    pub tasks_from: String,
    /// Shown as `shuffle hash(l_orderkey) → 200`, `gather → 1`, `broadcast`, `result`.
    pub exchange: Exchange,
    /// Operators, root first: the plan that ran, once the job has run (after adaptive
    /// execution), with what each did.
    pub operators: Vec<OperatorView>,
    pub waves: usize,
    /// Whether adaptive execution may coalesce the stage's shuffle partitions.
    pub adaptive: bool,
    /// Whether adaptive execution may split skewed partitions of the stage's join.
    pub skew_split: bool,
    /// What happened, after EXPLAIN ANALYZE ran the job.
    pub actuals: Option<StageActuals>,
}

/// One operator of a stage, in the short form EXPLAIN shows.
#[derive(Debug, Clone, PartialEq)]
pub struct OperatorView {
    /// Levels below the stage's root operator.
    pub depth: usize,
    /// `HashJoin(Inner, CollectLeft)`, `ShuffleRead(stage 2, 3 coalesced partitions)`, …
    pub name: String,
    /// After a run: rows the operator produced, summed over the tasks' successful attempts.
    pub rows: Option<u64>,
    /// After a run: time it spent computing (a scan: opening and reading its files), summed
    /// over the tasks' successful attempts.
    pub time_ms: Option<f64>,
    /// After a run, what else the operator counted: a cache scan's blocks found, not
    /// found and computed again.
    pub detail: Option<String>,
}

/// A task attempt that failed, and why.
#[derive(Debug, Clone, PartialEq)]
pub struct FailedAttempt {
    pub task: usize,
    pub attempt: usize,
    /// The stage attempt it belonged to.
    pub stage_attempt: usize,
    pub error: String,
    /// Whether it failed because a parent stage's output was lost (Spark's FetchFailed).
    pub fetch_failed: bool,
    /// Whether it was stopped before it finished (its stage attempt or job ended).
    pub killed: bool,
}

/// Measured figures of one stage.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct StageActuals {
    pub tasks_launched: usize,
    pub waves: usize,
    pub wall_ms: f64,
    pub task_ms: TaskTimes,
    pub rows_in: u64,
    pub bytes_in: u64,
    pub rows_out: u64,
    pub bytes_out: u64,
    pub shuffle_read_bytes: u64,
    pub shuffle_write_bytes: u64,
    pub spill_bytes: u64,
    pub peak_memory_bytes: u64,
    pub retries: usize,
    /// Attempts of the stage as a whole: more than 1 when it ran again (lost output, or a
    /// failed task in a stage whose tasks share state).
    pub stage_attempts: usize,
    /// Why each stage attempt after the first ran.
    pub resubmitted: Vec<String>,
    /// Every task attempt that failed.
    pub failed_attempts: Vec<FailedAttempt>,
    /// Tasks (their kept attempts) each executor ran, by executor id.
    pub tasks_per_executor: Vec<(usize, usize)>,
    /// Per task (successful attempt): duration and bytes read, for skew analysis.
    pub task_durations_ms: Vec<f64>,
    /// What adaptive execution did to the stage, or why it did not.
    pub decisions: Vec<crate::adaptive::AqeDecision>,
}

/// min / p25 / median / p75 / max of task durations.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct TaskTimes {
    pub min: f64,
    pub p25: f64,
    pub median: f64,
    pub p75: f64,
    pub max: f64,
}

impl OperatorView {
    /// `  HashJoin(Inner, CollectLeft)  rows=25 time=0.3ms`: indented two spaces per level.
    pub fn line(&self) -> String {
        let mut line = format!("{}{}", "  ".repeat(self.depth), self.name);
        if let Some(rows) = self.rows {
            line.push_str(&format!("  rows={rows}"));
        }
        if let Some(ms) = self.time_ms {
            line.push_str(&format!(" time={ms:.1}ms"));
        }
        if let Some(detail) = &self.detail {
            line.push_str(&format!(" {detail}"));
        }
        line
    }
}

impl TaskTimes {
    pub fn of(values: &[f64]) -> Self {
        if values.is_empty() {
            return Self::default();
        }
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let at = |q: f64| sorted[((sorted.len() - 1) as f64 * q).round() as usize];
        Self {
            min: sorted[0],
            p25: at(0.25),
            median: at(0.5),
            p75: at(0.75),
            max: sorted[sorted.len() - 1],
        }
    }
}

/// The model of `graph` before running; with `report`, with the measured figures.
/// `adaptive`: the adaptive execution settings, which say whether task counts may change.
pub fn describe(
    graph: &StageGraph,
    slots: usize,
    adaptive: &crate::adaptive::AqeSettings,
    report: Option<&JobReport>,
) -> JobView {
    let coalescing = adaptive.enabled && adaptive.coalesce;
    let skew_split = adaptive.enabled && adaptive.skew_join;
    let stages = graph
        .stages
        .iter()
        .map(|stage| {
            let ran = report.and_then(|r| r.stages.iter().find(|s| s.stage == stage.id));
            // After a run, the plan the tasks ran on: adaptive execution may have rebuilt it.
            let plan = ran
                .and_then(|r| r.plans.first())
                .map(|p| stage_input(&p.plan))
                .unwrap_or_else(|| stage.plan.input().clone());
            // The header says what was planned and why; `actuals` what ran.
            let tasks = stage.tasks();
            StageView {
                id: stage.id,
                parents: stage.parents.clone(),
                tasks,
                tasks_from: tasks_from(stage.plan.input(), tasks, &|id| launched(report, id)),
                exchange: stage.exchange().clone(),
                operators: match ran {
                    Some(ran) => measured_operators(&plan, &ran.plans),
                    None => operators(&plan),
                },
                waves: tasks.div_ceil(slots.max(1)),
                adaptive: coalescing && reads_shuffle_partitions(stage.plan.input()),
                skew_split: skew_split && crate::adaptive::may_split_skew(stage.plan.input()),
                actuals: ran.map(|s| actuals(s, slots)),
            }
        })
        .collect();
    let links: Vec<_> = graph
        .subqueries
        .iter()
        .flat_map(|step| step.links.iter().map(move |link| (step, link)))
        .collect();
    let subqueries = links
        .iter()
        .enumerate()
        .map(|(i, (step, link))| {
            let reads = |plan: &Arc<dyn ExecutionPlan>| {
                crate::stages::reads_subquery_results(plan, &step.results)
            };
            let ran = report
                .and_then(|r| r.subqueries.get(i))
                .and_then(Option::as_ref);
            SubqueryView {
                id: i + 1,
                after: crate::stages::read_stages(&link.plan),
                read_by: graph
                    .stages
                    .iter()
                    .filter(|stage| reads(&(stage.plan.clone() as Arc<dyn ExecutionPlan>)))
                    .map(|stage| stage.id)
                    .collect(),
                read_by_subqueries: links
                    .iter()
                    .enumerate()
                    .filter(|(j, (_, other))| *j > i && reads(&other.plan))
                    .map(|(j, _)| j + 1)
                    .collect(),
                operators: match ran {
                    Some(ran) => measured_operators(&ran.plan, std::slice::from_ref(ran)),
                    None => operators(&link.plan),
                },
            }
        })
        .collect();
    JobView {
        job: report.map(|r| r.job),
        slots,
        stages,
        subqueries,
        driver: operators(&graph.driver),
        result: report.and_then(|r| r.result),
    }
}

/// Tasks a stage really ran, when the job has run.
fn launched(report: Option<&JobReport>, stage: StageId) -> Option<usize> {
    report?
        .stages
        .iter()
        .find(|s| s.stage == stage)
        .map(|s| s.tasks)
}

fn actuals(stage: &StageReport, slots: usize) -> StageActuals {
    let succeeded = stage.kept_attempts();
    let durations: Vec<f64> = succeeded.iter().map(|a| a.duration_ms).collect();
    let sum = |f: &dyn Fn(&crate::scheduler::TaskMetrics) -> u64| {
        succeeded.iter().map(|a| f(a)).sum::<u64>()
    };
    StageActuals {
        tasks_launched: stage.tasks,
        waves: stage.tasks.div_ceil(slots.max(1)),
        wall_ms: stage.completed_ms - stage.submitted_ms,
        task_ms: TaskTimes::of(&durations),
        rows_in: sum(&|a| a.rows_in),
        bytes_in: sum(&|a| a.bytes_in),
        rows_out: sum(&|a| a.rows_out),
        bytes_out: sum(&|a| a.bytes_out),
        shuffle_read_bytes: sum(&|a| a.shuffle_read_bytes),
        shuffle_write_bytes: if stage.exchange.is_shuffle() {
            sum(&|a| a.bytes_out)
        } else {
            0
        },
        spill_bytes: stage.spill_bytes(),
        peak_memory_bytes: succeeded
            .iter()
            .map(|a| a.peak_memory_bytes)
            .max()
            .unwrap_or(0),
        retries: stage.retries(),
        stage_attempts: stage.stage_attempts.max(1),
        resubmitted: stage.resubmitted.clone(),
        failed_attempts: stage
            .attempts
            .iter()
            .filter_map(|a| {
                Some(FailedAttempt {
                    task: a.task,
                    attempt: a.attempt,
                    stage_attempt: a.stage_attempt,
                    error: a.error.clone()?,
                    fetch_failed: a.fetch_failed,
                    killed: a.killed,
                })
            })
            .collect(),
        tasks_per_executor: {
            let mut per: std::collections::BTreeMap<usize, usize> = Default::default();
            for attempt in &succeeded {
                *per.entry(attempt.executor).or_default() += 1;
            }
            per.into_iter().collect()
        },
        task_durations_ms: durations,
        decisions: stage.decisions.clone(),
    }
}

fn reads_shuffle_partitions(input: &Arc<dyn ExecutionPlan>) -> bool {
    let mut found = false;
    let _ = input.apply(|node| {
        found |= node
            .downcast_ref::<ShuffleReadExec>()
            .is_some_and(|r| matches!(r.spec(), ReadSpec::ReducePartitions(_)));
        Ok(if found {
            TreeNodeRecursion::Stop
        } else {
            TreeNodeRecursion::Continue
        })
    });
    found
}

/// Why a stage has the tasks it has, from the leaves that decide its partitioning. A gather
/// names the outputs its stage really wrote once the job has run (`launched`): adaptive
/// execution may have run that stage with more or fewer tasks than planned.
fn tasks_from(
    input: &Arc<dyn ExecutionPlan>,
    tasks: usize,
    launched: &dyn Fn(StageId) -> Option<usize>,
) -> String {
    let mut sources = Vec::new();
    // Shuffles read side by side (both inputs of a join) share their partitions.
    let mut shuffles: Vec<(usize, StageId)> = Vec::new();
    let _ = input.apply(|node| {
        if let Some(reader) = node.downcast_ref::<ShuffleReadExec>() {
            match reader.spec() {
                ReadSpec::ReducePartitions(n) => shuffles.push((*n, reader.stage())),
                ReadSpec::MapOutputs(n) => {
                    let stage = reader.stage();
                    let outputs = |n: usize| match n {
                        1 => "1 output".to_string(),
                        n => format!("{n} outputs"),
                    };
                    sources.push(match launched(stage) {
                        Some(ran) if ran != *n => {
                            format!("gather of {} of stage {stage}, {n} planned", outputs(ran))
                        }
                        _ => format!("gather of {} of stage {stage}", outputs(*n)),
                    })
                }
                ReadSpec::Explicit(specs) => sources.push(match specs.len() {
                    1 => format!("1 partition of stage {} (adaptive)", reader.stage()),
                    n => format!("{n} partitions of stage {} (adaptive)", reader.stage()),
                }),
            }
            return Ok(TreeNodeRecursion::Jump);
        }
        if node.is::<BroadcastReadExec>() {
            return Ok(TreeNodeRecursion::Jump);
        }
        if node.children().is_empty() {
            sources.push(leaf_source(node));
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if let Some((n, _)) = shuffles.first() {
        let ids: Vec<String> = shuffles.iter().map(|(_, id)| id.to_string()).collect();
        let noun = if ids.len() == 1 { "stage" } else { "stages" };
        sources.insert(
            0,
            format!("{n} shuffle partitions of {noun} {}", ids.join(", ")),
        );
    }
    let merged = input.output_partitioning().partition_count() == 1 && tasks == 1;
    match sources.len() {
        0 => "single task".into(),
        1 if merged
            && !sources[0].starts_with("gather")
            && !sources[0].contains("1 file split") =>
        {
            format!("single task ({})", sources[0])
        }
        _ => sources.join(" + "),
    }
}

fn leaf_source(node: &Arc<dyn ExecutionPlan>) -> String {
    let partitions = node.output_partitioning().partition_count();
    if let Some(files) = node
        .downcast_ref::<DataSourceExec>()
        .and_then(|scan| scan.data_source().downcast_ref::<FileScanConfig>())
    {
        let all: Vec<_> = files.file_groups.iter().flat_map(|g| g.iter()).collect();
        let bytes: u64 = all.iter().map(|f| f.object_meta.size).sum();
        let noun = if partitions == 1 {
            "file split"
        } else {
            "file splits"
        };
        // A warehouse table says which table, and how many of its partitions are read.
        if let Some(origin) = all.first().and_then(|f| f.extension::<ScanOrigin>()) {
            let mut distinct: Vec<&str> = all
                .iter()
                .map(|f| f.object_meta.location.as_ref())
                .collect();
            distinct.sort_unstable();
            distinct.dedup();
            let files = match distinct.len() {
                1 => "1 file".to_string(),
                n => format!("{n} files"),
            };
            let pruning = match origin.partitions_total {
                0 => String::new(),
                total => format!("{} of {total} partitions, ", origin.partitions_read),
            };
            let kind = if origin.checkpoint { "checkpoint " } else { "" };
            return format!(
                "{partitions} {noun} of {kind}{} ({pruning}{files}, {})",
                origin.table,
                human_bytes(bytes)
            );
        }
        let mut names: Vec<String> = all
            .iter()
            .map(|f| table_name(f.object_meta.location.as_ref()))
            .collect();
        names.dedup();
        return format!(
            "{partitions} {noun} of {} ({})",
            names.join(", "),
            human_bytes(bytes)
        );
    }
    if let Some(scan) = node.downcast_ref::<InMemoryScanExec>() {
        let noun = if partitions == 1 { "block" } else { "blocks" };
        return format!("{partitions} cached {noun} of {}", scan.name());
    }
    let what = match node.name() {
        "DataSourceExec" => "an in-memory table",
        "PlaceholderRowExec" => "a single row",
        other => other,
    };
    format!("{partitions} partitions of {what}")
}

/// `…/tpch/sf1/lineitem/part-0.parquet` → `lineitem`; `data/trips.csv` → `trips.csv`.
fn table_name(location: &str) -> String {
    // Hive-style partition directories (`day=2024-01-01/`) are not the table.
    let parts: Vec<&str> = location.rsplit('/').filter(|p| !p.contains('=')).collect();
    match parts.as_slice() {
        [file, dir, ..] if file.starts_with("part-") => dir.to_string(),
        [file, ..] => file.to_string(),
        [] => location.to_string(),
    }
}

/// An operator with its depth and parent.
type Placed = (
    usize,
    Arc<dyn ExecutionPlan>,
    Option<Arc<dyn ExecutionPlan>>,
);

/// Operators root first (pre-order), with their depth and parent; a shuffle or broadcast
/// read is a leaf.
fn preorder(plan: &Arc<dyn ExecutionPlan>) -> Vec<Placed> {
    fn walk(
        node: &Arc<dyn ExecutionPlan>,
        parent: Option<&Arc<dyn ExecutionPlan>>,
        depth: usize,
        out: &mut Vec<Placed>,
    ) {
        out.push((depth, node.clone(), parent.cloned()));
        if node.is::<ShuffleReadExec>() || node.is::<BroadcastReadExec>() {
            return;
        }
        for child in node.children() {
            walk(child, Some(node), depth + 1, out);
        }
    }
    let mut out = Vec::new();
    walk(plan, None, 0, &mut out);
    out
}

/// The short name of `node`, which is the `index`th child of `parent`: the build side of a
/// join adaptive execution switched to a broadcast reads a whole shuffle in every task.
fn name_in_place(node: &Arc<dyn ExecutionPlan>, parent: Option<&Arc<dyn ExecutionPlan>>) -> String {
    let broadcast_build = parent
        .and_then(|p| p.downcast_ref::<HashJoinExec>())
        .is_some_and(|join| {
            join.mode == PartitionMode::CollectLeft
                && Arc::ptr_eq(&join.children()[0].clone(), node)
        });
    match node.downcast_ref::<ShuffleReadExec>() {
        Some(reader) if broadcast_build && matches!(reader.spec(), ReadSpec::Explicit(_)) => {
            format!("ShuffleRead(stage {}, whole, as broadcast)", reader.stage())
        }
        _ => short_name(node),
    }
}

/// Operators of `plan` in short form, root first; `name` names the nodes it knows (another
/// engine's exchange reads, say) in place of the usual short form.
pub fn operators_named(
    plan: &Arc<dyn ExecutionPlan>,
    name: &dyn Fn(&Arc<dyn ExecutionPlan>) -> Option<String>,
) -> Vec<OperatorView> {
    preorder(plan)
        .into_iter()
        .map(|(depth, node, parent)| OperatorView {
            depth,
            name: name(&node).unwrap_or_else(|| name_in_place(&node, parent.as_ref())),
            rows: None,
            time_ms: None,
            detail: None,
        })
        .collect()
}

/// What a leaf operator reads, as `tasks from` says it: `file splits of lineitem (…)`.
pub fn leaf_description(node: &Arc<dyn ExecutionPlan>) -> String {
    leaf_source(node)
}

/// Operators in short form, before a run.
fn operators(plan: &Arc<dyn ExecutionPlan>) -> Vec<OperatorView> {
    preorder(plan)
        .into_iter()
        .map(|(depth, node, parent)| OperatorView {
            depth,
            name: name_in_place(&node, parent.as_ref()),
            rows: None,
            time_ms: None,
            detail: None,
        })
        .collect()
}

/// Operators of `plan` (the stage's plan after adaptive execution) with the rows and time
/// each produced, summed over every plan instance the stage's tasks ran on (`ran`: the
/// stage's plan for first attempts, fresh copies for retries and stage attempts), counting
/// only the successful attempts that produced the stage's output.
fn measured_operators(plan: &Arc<dyn ExecutionPlan>, ran: &[RanPlan]) -> Vec<OperatorView> {
    let shape = preorder(plan);
    let tasks = plan.output_partitioning().partition_count();
    let mut rows = vec![0u64; shape.len()];
    let mut nanos = vec![0u64; shape.len()];
    let mut measured = vec![false; shape.len()];
    // A cache scan's blocks: found, not found, computed again.
    let mut cache = vec![[0u64; 3]; shape.len()];
    // Every copy of a plan shares its scans' metrics (they live in the file source): a scan
    // is read once, from the first copy, for the tasks of every copy.
    let all_tasks: Vec<usize> = ran.iter().flat_map(|r| r.tasks.iter().copied()).collect();
    let mut scans_read = vec![false; shape.len()];
    for instance in ran {
        let nodes = preorder(&stage_input(&instance.plan));
        let aligned = nodes.len() == shape.len()
            && nodes
                .iter()
                .zip(&shape)
                .all(|(a, b)| a.1.name() == b.1.name());
        if !aligned {
            continue;
        }
        for (i, (_, node, _)) in nodes.iter().enumerate() {
            let scan = node.is::<DataSourceExec>();
            if scan && std::mem::replace(&mut scans_read[i], true) {
                continue;
            }
            let Some(metrics) = partition_metrics(node) else {
                continue;
            };
            let tasks_here = if scan { &all_tasks } else { &instance.tasks };
            // An operator with one partition per task counts the partitions of the tasks
            // whose output this instance produced; any other runs inside one task's work.
            let per_task = node.output_partitioning().partition_count() == tasks;
            let counted = |p: Option<usize>| match (per_task, p) {
                (true, Some(p)) => tasks_here.contains(&p),
                _ => !tasks_here.is_empty(),
            };
            let (mut compute, mut scanning) = (0, 0);
            let scan_phases = ["time_elapsed_opening", "time_elapsed_processing"];
            for metric in metrics.iter().filter(|m| counted(m.partition())) {
                match metric.value() {
                    MetricValue::OutputRows(count) => {
                        rows[i] += count.value() as u64;
                        measured[i] = true;
                    }
                    // Shuffle and broadcast reads count the rows they read.
                    MetricValue::Count { name, count }
                        if name == "shuffle_read_rows" || name == "broadcast_read_rows" =>
                    {
                        rows[i] += count.value() as u64;
                        measured[i] = true;
                    }
                    MetricValue::Count { name, count } if name.starts_with("cache_") => {
                        let slot = match name.as_ref() {
                            "cache_hits" => 0,
                            "cache_misses" => 1,
                            _ => 2,
                        };
                        cache[i][slot] += count.value() as u64;
                    }
                    MetricValue::ElapsedCompute(time) => compute += time.value() as u64,
                    MetricValue::Time { name, time } if scan_phases.contains(&name.as_ref()) => {
                        scanning += time.value() as u64
                    }
                    _ => {}
                }
            }
            // A file scan's own work is opening and decoding its files.
            nanos[i] += if scanning > 0 { scanning } else { compute };
        }
    }
    // Operators that record nothing where their count is known without measuring: a merge
    // of partitions that passed its one input through, an empty relation.
    for i in (0..shape.len()).rev() {
        if measured[i] || ran.iter().all(|r| r.tasks.is_empty()) {
            continue;
        }
        let node = &shape[i].1;
        let passed_through = node
            .downcast_ref::<CoalescePartitionsExec>()
            .is_some_and(|merge| merge.fetch().is_none());
        if passed_through && i + 1 < shape.len() && measured[i + 1] {
            rows[i] = rows[i + 1];
            measured[i] = true;
        } else if node.is::<EmptyExec>() || node.is::<crate::adaptive::EmptyRelationExec>() {
            measured[i] = true;
        }
    }
    shape
        .into_iter()
        .enumerate()
        .map(|(i, (depth, node, parent))| OperatorView {
            depth,
            name: name_in_place(&node, parent.as_ref()),
            rows: measured[i].then_some(rows[i]),
            time_ms: measured[i].then_some(nanos[i] as f64 / 1e6),
            detail: node.is::<InMemoryScanExec>().then(|| {
                let [hits, misses, recomputed] = cache[i];
                format!("cache hits={hits} misses={misses} recomputed={recomputed}")
            }),
        })
        .collect()
}

fn short_name(node: &Arc<dyn ExecutionPlan>) -> String {
    if let Some(reader) = node.downcast_ref::<ShuffleReadExec>() {
        let stage = reader.stage();
        return match reader.spec() {
            ReadSpec::MapOutputs(_) => format!("ShuffleRead(gather of stage {stage})"),
            ReadSpec::ReducePartitions(_) => format!("ShuffleRead(stage {stage})"),
            ReadSpec::Explicit(specs) => {
                // `3 coalesced`, `1 split`: words that do not take a plural.
                let count = |n: usize, what: &str| (n > 0).then(|| format!("{n} {what}"));
                let coalesced = specs.iter().filter(|s| s.reduce.len() > 1).count();
                let split = specs.iter().filter(|s| s.maps.is_some()).count();
                let parts: Vec<String> = [count(coalesced, "coalesced"), count(split, "split")]
                    .into_iter()
                    .flatten()
                    .collect();
                let partitions = match specs.len() {
                    1 => "1 partition".to_string(),
                    n => format!("{n} partitions"),
                };
                match parts.is_empty() {
                    true => format!("ShuffleRead(stage {stage}, {partitions})"),
                    false => format!(
                        "ShuffleRead(stage {stage}, {partitions}: {})",
                        parts.join(", ")
                    ),
                }
            }
        };
    }
    if let Some(reader) = node.downcast_ref::<BroadcastReadExec>() {
        return format!("BroadcastRead(stage {})", reader.stage());
    }
    if let Some(scan) = node.downcast_ref::<InMemoryScanExec>() {
        return scan.describe();
    }
    if let Some(aggregate) = node.downcast_ref::<AggregateExec>() {
        return format!("Aggregate({:?})", aggregate.mode());
    }
    if let Some(join) = node.downcast_ref::<HashJoinExec>() {
        return format!(
            "HashJoin({}, {:?})",
            join.join_type(),
            join.partition_mode()
        );
    }
    if node.is::<DataSourceExec>() {
        let source = leaf_source(node);
        let table = source
            .split(" of ")
            .nth(1)
            .unwrap_or(&source)
            .split(" (")
            .next()
            .unwrap_or_default();
        return format!("Scan({table})");
    }
    node.name().trim_end_matches("Exec").to_string()
}

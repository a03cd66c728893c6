//! Adaptive query execution: rules applied to a stage when its parents have finished, on
//! the exact sizes of the shuffles it reads. Every rule records an [`AqeDecision`] — also
//! when it was considered and not applied, with the reason.
//!
//! The rules, in the order they run on a stage:
//! - switch join strategy: a partitioned join whose build side turned out small becomes a
//!   broadcast join;
//! - skew join ([`skew`]): a skewed partition of a partitioned join is read in several tasks,
//!   each a range of the skewed side's map outputs;
//! - coalesce partitions ([`coalesce`]): contiguous small partitions are read in one task;
//! - propagate empty relation: joins and aggregates a stage's empty input makes empty are
//!   replaced by an empty relation.

pub mod coalesce;
mod empty;
pub mod skew;
pub use empty::EmptyRelationExec;

use std::collections::BTreeMap;
use std::ops::Range;
use std::sync::Arc;

use datafusion::common::JoinType;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::Result;
use datafusion::physical_expr::Distribution;
use datafusion::physical_plan::aggregates::AggregateExec;
use datafusion::physical_plan::filter::FilterExec;
use datafusion::physical_plan::joins::{HashJoinExec, PartitionMode, SortMergeJoinExec};
use datafusion::physical_plan::projection::ProjectionExec;
use datafusion::physical_plan::sorts::sort::SortExec;
use datafusion::physical_plan::{ExecutionPlan, Partitioning};

use skew::SideSkew;

use crate::config::human_bytes;
use crate::shuffle::{MapOutputStatistics, ShuffleStore};
use crate::stages::{PartitionSpec, ReadSpec, ShuffleReadExec, Stage, StageId, shuffled};

/// Settings of adaptive execution (`spark.sql.adaptive.*`).
#[derive(Debug, Clone, Copy, PartialEq)]
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
    pub skew_join: bool,
    /// `skewJoin.skewedPartitionFactor`.
    pub skew_factor: f64,
    /// `skewJoin.skewedPartitionThresholdInBytes`.
    pub skew_threshold: u64,
}

const COALESCE: &str = "coalesce partitions";
const SKEW_JOIN: &str = "skew join";

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

/// One adaptive rule: rewrites a stage whose parents have finished, from the exact sizes of
/// the shuffles it reads, and records what it decided (also when it did nothing).
pub trait AdaptiveRule: Send + Sync {
    /// The rule's name in decisions, e.g. `switch join strategy`.
    fn name(&self) -> &'static str;

    fn apply(
        &self,
        stage: &Stage,
        store: &ShuffleStore,
        settings: &AqeSettings,
        decisions: &mut Vec<AqeDecision>,
    ) -> Result<Stage>;
}

/// A partitioned join whose build side turned out small becomes a broadcast join.
struct SwitchJoinStrategy;

/// Skewed join partitions are split by map ranges and small partitions coalesced: the two
/// decide the partition specs of the stage's shuffle reads together.
struct PartitionReads;

/// Joins and aggregates that a stage's empty input makes empty become empty relations.
struct PropagateEmptyRelation;

impl AdaptiveRule for SwitchJoinStrategy {
    fn name(&self) -> &'static str {
        "switch join strategy"
    }

    fn apply(
        &self,
        stage: &Stage,
        store: &ShuffleStore,
        settings: &AqeSettings,
        decisions: &mut Vec<AqeDecision>,
    ) -> Result<Stage> {
        switch_to_broadcast(stage, store, settings, decisions)
    }
}

impl AdaptiveRule for PartitionReads {
    fn name(&self) -> &'static str {
        "skew join, coalesce partitions"
    }

    fn apply(
        &self,
        stage: &Stage,
        store: &ShuffleStore,
        settings: &AqeSettings,
        decisions: &mut Vec<AqeDecision>,
    ) -> Result<Stage> {
        partition_reads(stage, store, settings, decisions)
    }
}

impl AdaptiveRule for PropagateEmptyRelation {
    fn name(&self) -> &'static str {
        "propagate empty relation"
    }

    fn apply(
        &self,
        stage: &Stage,
        store: &ShuffleStore,
        _settings: &AqeSettings,
        decisions: &mut Vec<AqeDecision>,
    ) -> Result<Stage> {
        empty::propagate(stage, store, decisions)
    }
}

/// The rules, in the order they run on a stage.
pub const RULES: [&dyn AdaptiveRule; 3] = [
    &SwitchJoinStrategy,
    &PartitionReads,
    &PropagateEmptyRelation,
];

/// Applies [`RULES`] to `stage` before it is submitted; returns the stage to run and what
/// each rule decided.
pub fn optimize_stage(
    stage: &Stage,
    store: &ShuffleStore,
    settings: &AqeSettings,
) -> Result<(Stage, Vec<AqeDecision>)> {
    let mut decisions = Vec::new();
    let mut stage = stage.clone();
    if !settings.enabled {
        return Ok((stage, decisions));
    }
    for rule in RULES {
        stage = rule.apply(&stage, store, settings, &mut decisions)?;
    }
    // What the rules changed (partitions read together, a join's strategy) may no longer
    // give an operator the order it needs.
    let restored = crate::stages::restore_orderings(stage.plan.input().clone());
    if !Arc::ptr_eq(&restored, stage.plan.input()) {
        stage = stage.with_input(restored);
    }
    Ok((stage, decisions))
}

/// Decides which blocks each task of the stage reads from the shuffles it reads partition
/// by partition: skewed join partitions split by map ranges, the others coalesced.
fn partition_reads(
    stage: &Stage,
    store: &ShuffleStore,
    settings: &AqeSettings,
    decisions: &mut Vec<AqeDecision>,
) -> Result<Stage> {
    let readers = shuffle_readers(stage.plan.input());
    if readers.is_empty() {
        return Ok(stage.clone());
    }
    let statistics: Vec<MapOutputStatistics> =
        readers.iter().map(|id| store.statistics(*id)).collect();
    let sizes: Vec<Vec<u64>> = statistics
        .iter()
        .map(MapOutputStatistics::bytes_by_partition)
        .collect();
    let partitions = sizes[0].len();
    let aligned = sizes.iter().all(|s| s.len() == partitions);
    let splits = match aligned {
        true => skew_join(stage, &readers, &statistics, &sizes, settings, decisions),
        false => Splits::new(),
    };
    let target = coalesce_target(stage, &sizes, aligned, settings, decisions);
    if splits.is_empty() && target.is_none() {
        return Ok(stage.clone());
    }
    let tasks = assemble(&sizes, &splits, target);
    if let Some(target) = target {
        let coalesced: usize = tasks
            .iter()
            .filter(|t| t.reduce.len() > 1 || !splits.contains_key(&t.reduce.start))
            .count();
        let normal = partitions - splits.len();
        let total: u64 = sizes.iter().flatten().sum();
        let reason = format!(
            "{} over {partitions} partitions, target {} per partition",
            human_bytes(total),
            human_bytes(target)
        );
        if coalesced >= normal {
            decisions.push(AqeDecision::not_applied(
                stage.id,
                COALESCE,
                format!("{reason}: no partitions to merge"),
            ));
        } else {
            decisions.push(AqeDecision {
                stage: stage.id,
                rule: COALESCE,
                applied: true,
                change: format!(
                    "{normal} → {coalesced} partition{}",
                    if coalesced == 1 { "" } else { "s" }
                ),
                reason,
            });
        }
    }
    if splits.is_empty() && tasks.len() == partitions {
        return Ok(stage.clone());
    }
    let plan = stage.plan.input().clone().transform_up(|node| {
        let Some(reader) = node.downcast_ref::<ShuffleReadExec>() else {
            return Ok(Transformed::no(node));
        };
        let Some(side) = readers.iter().position(|id| *id == reader.stage()) else {
            return Ok(Transformed::no(node));
        };
        if !matches!(reader.spec(), ReadSpec::ReducePartitions(_)) {
            return Ok(Transformed::no(node));
        }
        let specs: Vec<PartitionSpec> = tasks.iter().map(|t| t.spec(side)).collect();
        // Whole hash buckets grouped the same way for every shuffle the stage reads keep the
        // read hash-partitioned by the same keys, into fewer partitions; a split partition
        // puts one key's rows into several tasks.
        let partitioning = match &reader.properties().partitioning {
            Partitioning::Hash(exprs, _) if splits.is_empty() => {
                Partitioning::Hash(exprs.clone(), specs.len())
            }
            _ => Partitioning::UnknownPartitioning(specs.len()),
        };
        // Partitions grouped or split hold the rows they held: what held of them still does.
        Ok(Transformed::yes(Arc::new(ShuffleReadExec::new(
            reader.stage(),
            ReadSpec::Explicit(specs),
            reader.schema(),
            partitioning,
            Some(shuffled(&reader.properties().eq_properties)),
        )) as Arc<dyn ExecutionPlan>))
    })?;
    Ok(stage.with_input(plan.data))
}

/// The coalescing target, or `None` (with the reason recorded) when coalescing is off or
/// impossible.
fn coalesce_target(
    stage: &Stage,
    sizes: &[Vec<u64>],
    aligned: bool,
    settings: &AqeSettings,
    decisions: &mut Vec<AqeDecision>,
) -> Option<u64> {
    if !settings.coalesce {
        decisions.push(AqeDecision::not_applied(
            stage.id,
            COALESCE,
            "spark.sql.adaptive.coalescePartitions.enabled is false",
        ));
        return None;
    }
    if !aligned {
        decisions.push(AqeDecision::not_applied(
            stage.id,
            COALESCE,
            "the shuffles it reads have different partition counts",
        ));
        return None;
    }
    let total: u64 = sizes.iter().flatten().sum();
    let min_partitions = if settings.parallelism_first {
        settings.slots
    } else {
        1
    };
    Some(coalesce::target_size(
        total,
        min_partitions,
        settings.advisory_partition_size,
        settings.min_partition_size,
    ))
}

/// One task of a stage after skew splitting and coalescing: the reduce partitions it reads
/// and, for a split partition, the map range of each shuffle (`None`: every map).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Task {
    reduce: Range<usize>,
    maps: Vec<Option<Range<usize>>>,
}

impl Task {
    fn spec(&self, side: usize) -> PartitionSpec {
        PartitionSpec {
            reduce: self.reduce.clone(),
            maps: self.maps[side].clone(),
        }
    }
}

/// Split reduce partitions: for each, the map ranges each shuffle is read in (one `None`
/// range for a side read whole). The tasks are the product of the sides' ranges.
type Splits = BTreeMap<usize, Vec<Vec<Option<Range<usize>>>>>;

/// The tasks of the stage, in reduce order: runs of partitions between split ones are
/// coalesced toward `target` (or kept one per task without a target); each split partition
/// becomes the product of its sides' map ranges.
fn assemble(sizes: &[Vec<u64>], splits: &Splits, target: Option<u64>) -> Vec<Task> {
    let partitions = sizes[0].len();
    let shuffles = sizes.len();
    let whole = |reduce: Range<usize>| Task {
        reduce,
        maps: vec![None; shuffles],
    };
    let mut tasks = Vec::new();
    let mut run_start = 0;
    let flush = |tasks: &mut Vec<Task>, run: Range<usize>| {
        if run.is_empty() {
            return;
        }
        match target {
            Some(target) => {
                let run_sizes: Vec<Vec<u64>> =
                    sizes.iter().map(|s| s[run.clone()].to_vec()).collect();
                for (group, bytes) in coalesce::coalesce(&run_sizes, target) {
                    // Between split partitions, a run of nothing needs no task.
                    if bytes == 0 && !splits.is_empty() {
                        continue;
                    }
                    tasks.push(whole(run.start + group.start..run.start + group.end));
                }
            }
            None => tasks.extend(run.map(|r| whole(r..r + 1))),
        }
    };
    for (&reduce, ranges) in splits {
        flush(&mut tasks, run_start..reduce);
        let mut product: Vec<Vec<Option<Range<usize>>>> = vec![Vec::new()];
        for side_ranges in ranges {
            product = product
                .into_iter()
                .flat_map(|prefix| {
                    side_ranges.iter().map(move |range| {
                        let mut maps = prefix.clone();
                        maps.push(range.clone());
                        maps
                    })
                })
                .collect();
        }
        tasks.extend(product.into_iter().map(|maps| Task {
            reduce: reduce..reduce + 1,
            maps,
        }));
        run_start = reduce + 1;
    }
    flush(&mut tasks, run_start..partitions);
    tasks
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
        let size = human_bytes(bytes);
        let Some(threshold) = settings.broadcast_threshold else {
            decisions.push(AqeDecision::not_applied(stage.id, rule, format!("build side {size}; spark.sql.adaptive.autoBroadcastJoinThreshold is -1")));
            return Ok(Transformed::no(node));
        };
        let limit = human_bytes(threshold);
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
            Some(shuffled(&build.properties().eq_properties)),
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

/// Whether the skew join rule could split partitions of a join in this stage plan: a
/// partitioned join over two shuffles, with a side its type lets split, and nothing above it
/// relying on its partitioning. (Whether a partition is skewed is known only at runtime.)
pub(crate) fn may_split_skew(plan: &Arc<dyn ExecutionPlan>) -> bool {
    let mut sites = Vec::new();
    join_sites(plan, None, &mut sites);
    sites.first().is_some_and(|site| {
        site.blocker.is_none()
            && site.sides[0] != site.sides[1]
            && splittable(site.join_type).contains(&true)
            && shuffle_readers(plan).len() == 2
    })
}

/// A partitioned join of the stage whose two inputs are shuffle reads.
struct JoinSite {
    join_type: JoinType,
    /// The stages whose shuffles the left and right inputs read.
    sides: [StageId; 2],
    /// An operator above the join that needs the join's output partitioned by key.
    blocker: Option<String>,
}

/// Partitioned joins in `node` reading two shuffles, top-down, with what above each one
/// relies on its partitioning.
fn join_sites(node: &Arc<dyn ExecutionPlan>, blocker: Option<String>, sites: &mut Vec<JoinSite>) {
    let join_type = if let Some(join) = node.downcast_ref::<HashJoinExec>() {
        (join.mode == PartitionMode::Partitioned).then_some(*join.join_type())
    } else {
        node.downcast_ref::<SortMergeJoinExec>()
            .map(SortMergeJoinExec::join_type)
    };
    if let Some(join_type) = join_type {
        let children = node.children();
        if let (Some(left), Some(right)) = (read_below(children[0]), read_below(children[1])) {
            sites.push(JoinSite {
                join_type,
                sides: [left, right],
                blocker: blocker.clone(),
            });
        }
    }
    let requirements = node.input_distribution_requirements();
    for (i, child) in node.children().into_iter().enumerate() {
        let needs_partitioning = requirements
            .child_distribution(i)
            .is_some_and(|d| !matches!(d, Distribution::UnspecifiedDistribution));
        let blocker = blocker
            .clone()
            .or_else(|| needs_partitioning.then(|| describe_operator(node)));
        join_sites(child, blocker, sites);
    }
}

/// The shuffle `node` reads partition by partition, looking through operators that work row
/// by row or per partition (a sort-merge join's sorts, projections, filters).
fn read_below(node: &Arc<dyn ExecutionPlan>) -> Option<StageId> {
    if let Some(reader) = node.downcast_ref::<ShuffleReadExec>() {
        return matches!(reader.spec(), ReadSpec::ReducePartitions(_)).then_some(reader.stage());
    }
    let passes = node.is::<SortExec>()
        || node.is::<ProjectionExec>()
        || node.is::<FilterExec>()
        || node.name() == "CoalesceBatchesExec";
    match node.children().as_slice() {
        [child] if passes => read_below(child),
        _ => None,
    }
}

/// `AggregateExec (FinalPartitioned)`, `BoundedWindowAggExec`, …: for decision reasons.
fn describe_operator(node: &Arc<dyn ExecutionPlan>) -> String {
    match node.downcast_ref::<AggregateExec>() {
        Some(aggregate) => format!("the aggregate above the join ({:?})", aggregate.mode()),
        None => format!("{} above the join", node.name()),
    }
}

/// Which sides of a join may be split: a side's rows can be divided among tasks when each of
/// its rows is emitted by the one task that reads it (so not the side whose unmatched rows
/// another side's split would repeat).
fn splittable(join_type: JoinType) -> [bool; 2] {
    match join_type {
        JoinType::Inner => [true, true],
        JoinType::Left | JoinType::LeftSemi | JoinType::LeftAnti | JoinType::LeftMark => {
            [true, false]
        }
        JoinType::Right | JoinType::RightSemi | JoinType::RightAnti | JoinType::RightMark => {
            [false, true]
        }
        JoinType::Full => [false, false],
    }
}

/// The skew join rule: finds the skewed partitions of the stage's partitioned join and the
/// map ranges to read them in. Records one decision per split partition, or why nothing was
/// split.
fn skew_join(
    stage: &Stage,
    readers: &[StageId],
    statistics: &[MapOutputStatistics],
    partition_sizes: &[Vec<u64>],
    settings: &AqeSettings,
    decisions: &mut Vec<AqeDecision>,
) -> Splits {
    let mut splits = Splits::new();
    let mut sites = Vec::new();
    join_sites(stage.plan.input(), None, &mut sites);
    let Some(site) = sites.into_iter().next() else {
        return splits;
    };
    let not_applied = |reason: String| AqeDecision::not_applied(stage.id, SKEW_JOIN, reason);
    if !settings.skew_join {
        decisions.push(not_applied(
            "spark.sql.adaptive.skewJoin.enabled is false".into(),
        ));
        return splits;
    }
    if site.sides[0] == site.sides[1] {
        decisions.push(not_applied(
            "both sides of the join read the same shuffle: a split would apply to both".into(),
        ));
        return splits;
    }
    if readers.len() != 2 {
        decisions.push(not_applied(format!(
            "the stage reads {} shuffles besides the join's own; split partitions must line up in every one",
            readers.len() - 2
        )));
        return splits;
    }
    let position = |id: StageId| readers.iter().position(|r| *r == id).expect("a reader");
    let sides = site.sides.map(position);
    let sizes = sides.map(|s| partition_sizes[s].clone());
    let analyses = sizes.clone().map(|sizes| {
        SideSkew::new(
            &sizes,
            settings.skew_factor,
            settings.skew_threshold,
            settings.advisory_partition_size,
        )
    });
    let name = ["left", "right"];
    let describe = |side: usize, partition: usize| {
        let size = sizes[side][partition];
        let median = analyses[side].median;
        format!(
            "partition {partition} of the {} side (stage {}) is {}, {:.1}× the median {}",
            name[side],
            site.sides[side],
            human_bytes(size),
            size as f64 / median as f64,
            human_bytes(median)
        )
    };
    let rule = format!(
        "skewed means above max(skewedPartitionThresholdInBytes {}, factor {} × median)",
        human_bytes(settings.skew_threshold),
        settings.skew_factor
    );
    if analyses.iter().all(|a| a.skewed.is_empty()) {
        // The largest partition relative to its side's median says how far from skew it is.
        let (side, partition) = (0..2)
            .flat_map(|side| (0..sizes[side].len()).map(move |p| (side, p)))
            .max_by(|a, b| {
                let ratio = |(s, p): (usize, usize)| sizes[s][p] as f64 / analyses[s].median as f64;
                ratio(*a).total_cmp(&ratio(*b))
            })
            .unwrap_or((0, 0));
        if sizes[side].is_empty() {
            return splits;
        }
        decisions.push(not_applied(format!(
            "no skewed partition: largest {}; {rule}",
            describe(side, partition)
        )));
        return splits;
    }
    let can_split = splittable(site.join_type);
    let skewed: [Vec<usize>; 2] = [0, 1].map(|s| match can_split[s] {
        true => analyses[s].skewed.clone(),
        false => Vec::new(),
    });
    if skewed.iter().all(Vec::is_empty) {
        let side = usize::from(analyses[0].skewed.is_empty());
        let found = describe(side, analyses[side].skewed[0]);
        decisions.push(not_applied(match site.join_type {
            JoinType::Full => format!("{found}, but a full outer join: no side can be split"),
            join_type => format!(
                "{found}, but a {join_type} join can only split its {} side",
                name[1 - side]
            ),
        }));
        return splits;
    }
    if let Some(blocker) = &site.blocker {
        let side = usize::from(skewed[0].is_empty());
        decisions.push(not_applied(format!(
            "{}, but {blocker} needs the join's output partitioned by key: not split, as that would need another shuffle",
            describe(side, skewed[side][0])
        )));
        return splits;
    }
    let partitions: std::collections::BTreeSet<usize> = skewed.iter().flatten().copied().collect();
    for partition in partitions {
        let mut ranges: Vec<Vec<Option<Range<usize>>>> = vec![vec![None]; readers.len()];
        let mut split_sides = Vec::new();
        for side in 0..2 {
            if !skewed[side].contains(&partition) {
                continue;
            }
            let map_sizes: Vec<u64> = statistics[sides[side]]
                .bytes
                .iter()
                .map(|map| map[partition])
                .collect();
            if let Some(split) = skew::split_partition(&map_sizes, analyses[side].target) {
                split_sides.push(format!(
                    "{} side in {} ranges of map outputs toward {}",
                    name[side],
                    split.len(),
                    human_bytes(analyses[side].target)
                ));
                ranges[sides[side]] = split.into_iter().map(Some).collect();
            }
        }
        let side = usize::from(!skewed[0].contains(&partition));
        let found = describe(side, partition);
        if split_sides.is_empty() {
            decisions.push(not_applied(format!(
                "{found}, but its rows come from one map output, which cannot be split"
            )));
            continue;
        }
        let tasks: usize = ranges.iter().map(Vec::len).product();
        decisions.push(AqeDecision {
            stage: stage.id,
            rule: SKEW_JOIN,
            applied: true,
            change: format!("partition {partition} split into {tasks}"),
            reason: format!(
                "{found} (threshold {}); {} join, read the {}",
                human_bytes(analyses[side].threshold),
                site.join_type,
                split_sides.join(" and the ")
            ),
        });
        splits.insert(partition, ranges);
    }
    splits
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reduce_ranges(tasks: &[Task]) -> Vec<Range<usize>> {
        tasks.iter().map(|t| t.reduce.clone()).collect()
    }

    #[test]
    fn split_partitions_stay_apart_and_the_runs_between_them_coalesce() {
        // Two shuffles of 6 partitions; partition 3 of the first is split into two map
        // ranges, the second side read whole by each.
        let sizes = vec![vec![10, 10, 10, 500, 10, 10], vec![10, 10, 10, 10, 10, 10]];
        let mut splits = Splits::new();
        splits.insert(3, vec![vec![Some(0..2), Some(2..4)], vec![None]]);
        let tasks = assemble(&sizes, &splits, Some(100));
        assert_eq!(reduce_ranges(&tasks), vec![0..3, 3..4, 3..4, 4..6]);
        assert_eq!(tasks[1].maps, vec![Some(0..2), None]);
        assert_eq!(tasks[2].maps, vec![Some(2..4), None]);
        assert_eq!(
            tasks[1].spec(1),
            PartitionSpec {
                reduce: 3..4,
                maps: None
            }
        );
    }

    #[test]
    fn both_sides_split_give_the_product_of_their_ranges() {
        let sizes = vec![vec![500, 1], vec![500, 1]];
        let mut splits = Splits::new();
        splits.insert(
            0,
            vec![
                vec![Some(0..1), Some(1..2)],
                vec![Some(0..2), Some(2..3), Some(3..4)],
            ],
        );
        let tasks = assemble(&sizes, &splits, None);
        assert_eq!(tasks.len(), 2 * 3 + 1);
        assert_eq!(tasks[6].reduce, 1..2);
    }

    #[test]
    fn without_coalescing_every_other_partition_is_its_own_task() {
        let sizes = vec![vec![1, 2, 3]];
        let tasks = assemble(&sizes, &Splits::new(), None);
        assert_eq!(reduce_ranges(&tasks), vec![0..1, 1..2, 2..3]);
    }

    #[test]
    fn empty_runs_between_split_partitions_need_no_task() {
        let sizes = vec![vec![0, 0, 900, 0, 0], vec![0, 0, 1, 0, 0]];
        let mut splits = Splits::new();
        splits.insert(2, vec![vec![Some(0..1), Some(1..2)], vec![None]]);
        let tasks = assemble(&sizes, &splits, Some(100));
        assert_eq!(reduce_ranges(&tasks), vec![2..3, 2..3]);
    }

    #[test]
    fn join_types_decide_the_splittable_sides() {
        assert_eq!(splittable(JoinType::Inner), [true, true]);
        assert_eq!(splittable(JoinType::Left), [true, false]);
        assert_eq!(splittable(JoinType::LeftAnti), [true, false]);
        assert_eq!(splittable(JoinType::RightSemi), [false, true]);
        assert_eq!(splittable(JoinType::Full), [false, false]);
    }
}

#[cfg(test)]
mod rule_order {
    #[test]
    fn the_rules_run_in_spark_order() {
        let names: Vec<&str> = super::RULES.iter().map(|rule| rule.name()).collect();
        assert_eq!(
            names,
            [
                "switch join strategy",
                "skew join, coalesce partitions",
                "propagate empty relation"
            ]
        );
    }
}

//! Advisories: what in a finished job deserves attention, in the reference texts' terms,
//! with the numbers behind each and the setting to change.

use super::model::{JobView, StageActuals, human_bytes};
use crate::lineage::Recomputation;

/// One piece of advice about one stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Advisory {
    pub stage: usize,
    /// `under-parallelism`, `over-parallelism`, `skew`, `spill`, `oversized broadcast`,
    /// `recomputes`.
    pub kind: &'static str,
    pub message: String,
}

/// A stage shorter than this is not worth advice about its parallelism or skew.
const NOTICEABLE_MS: f64 = 50.0;
/// Tasks whose median is below this do too little work to pay for their scheduling.
const TINY_TASK_MS: f64 = 10.0;
/// A task this many times the median holds the barrier (Spark's skewedPartitionFactor).
const SKEW_FACTOR: f64 = 5.0;

/// The advisories of a job that ran; `broadcast_threshold` is
/// `spark.sql.autoBroadcastJoinThreshold` in bytes, if broadcasts are on.
pub fn advise(job: &JobView, broadcast_threshold: Option<u64>) -> Vec<Advisory> {
    let mut advice = Vec::new();
    for stage in &job.stages {
        let Some(actual) = &stage.actuals else {
            continue;
        };
        let mut say = |kind, message| {
            advice.push(Advisory {
                stage: stage.id,
                kind,
                message,
            })
        };
        if actual.tasks_launched < job.slots && actual.wall_ms >= NOTICEABLE_MS {
            let idle = job.slots - actual.tasks_launched;
            say(
                "under-parallelism",
                format!(
                    "{} task(s) on {} slots: {idle} slot(s) sat idle for {:.0} ms. More, smaller partitions would use them: {}.",
                    actual.tasks_launched,
                    job.slots,
                    actual.wall_ms,
                    fewer_tasks_setting(&stage.tasks_from, false)
                ),
            );
        }
        if actual.tasks_launched > 2 * job.slots && actual.task_ms.median < TINY_TASK_MS {
            say(
                "over-parallelism",
                format!(
                    "{} tasks with a median of {:.1} ms each: per-task overhead dominates. Fewer, larger partitions would do: {}.",
                    actual.tasks_launched,
                    actual.task_ms.median,
                    fewer_tasks_setting(&stage.tasks_from, true)
                ),
            );
        }
        if let Some(message) = skew(actual) {
            say("skew", message);
        }
        if actual.spill_bytes > 0 {
            say(
                "spill",
                format!(
                    "spilled {} to disk (largest task peak {} in memory). Each task's share is the executor's execution memory over the tasks running beside it: more spark.executor.memory (or spark.memory.fraction), or fewer spark.executor.cores on the same memory, would keep more in memory.",
                    human_bytes(actual.spill_bytes),
                    human_bytes(actual.peak_memory_bytes)
                ),
            );
        }
        if stage.exchange == crate::stages::Exchange::Broadcast
            && let Some(threshold) = broadcast_threshold
            && actual.bytes_out > threshold
        {
            say(
                "oversized broadcast",
                format!(
                    "broadcast {} to every task, above spark.sql.autoBroadcastJoinThreshold ({}): the size estimate was off. A partitioned join (lower the threshold, or -1) avoids copying it to every task.",
                    human_bytes(actual.bytes_out),
                    human_bytes(threshold)
                ),
            );
        }
    }
    advice
}

/// The recompute advisory: stages that computed again what a stage of an earlier job of the
/// session computed, with what it cost then. Before a run (`ran: false`) they would.
pub fn recompute_advice(recomputations: &[Recomputation], ran: bool) -> Vec<Advisory> {
    recomputations
        .iter()
        .map(|r| Advisory {
            stage: r.stage,
            kind: "recomputes",
            message: format!(
                "what job {}'s stage {} computed ({} rows, {:.0} ms{}): CACHE TABLE it (see docs/pipelines.md){}",
                r.earlier.job,
                r.earlier.stage,
                human_count(r.earlier.rows),
                r.earlier.ms,
                r.earlier
                    .bytes
                    .map(|bytes| format!(", {}", human_bytes(bytes)))
                    .unwrap_or_default(),
                if ran { "" } else { " before it runs again" }
            ),
        })
        .collect()
}

/// `6100000` → `6.1 M`.
pub fn human_count(n: u64) -> String {
    match n {
        0..1_000 => n.to_string(),
        1_000..1_000_000 => format!("{:.1} K", n as f64 / 1e3),
        1_000_000..1_000_000_000 => format!("{:.1} M", n as f64 / 1e6),
        _ => format!("{:.1} G", n as f64 / 1e9),
    }
}

impl Advisory {
    /// `! stage 3 skew: …`; `! stage 9 recomputes what job 2's stage 4 computed …`.
    pub fn line(&self) -> String {
        match self.kind {
            "recomputes" => format!("! stage {} recomputes {}", self.stage, self.message),
            kind => format!("! stage {} {kind}: {}", self.stage, self.message),
        }
    }
}

/// Whether the slowest of `tasks` tasks (`max` ms, against a median of `median` ms) is
/// skewed: it ran at least 5× the median and held the stage's barrier for a noticeable time.
pub fn is_skewed(tasks: usize, max: f64, median: f64) -> bool {
    tasks >= 2 && median > 0.0 && max >= SKEW_FACTOR * median && max - median >= NOTICEABLE_MS
}

fn skew(actual: &StageActuals) -> Option<String> {
    let times = actual.task_ms;
    if !is_skewed(actual.task_durations_ms.len(), times.max, times.median) {
        return None;
    }
    let held = times.max - times.median;
    let slowest = actual
        .task_durations_ms
        .iter()
        .position(|d| *d == times.max)
        .unwrap_or_default();
    Some(format!(
        "task {slowest} ran {:.0} ms, {:.1}× the median task ({:.0} ms), and held the stage barrier: the next stage waited {held:.0} ms for it. Its partition is skewed; spread its key (salting), or let adaptive execution split it (spark.sql.adaptive.skewJoin.enabled).",
        times.max,
        times.max / times.median,
        times.median
    ))
}

/// The setting that controls a stage's task count, from where its tasks come from.
fn fewer_tasks_setting(tasks_from: &str, fewer: bool) -> &'static str {
    let scan = tasks_from.contains("file split");
    match (scan, fewer) {
        (true, false) => "lower spark.sql.files.maxPartitionBytes",
        (true, true) => "raise spark.sql.files.maxPartitionBytes",
        (false, false) => "raise spark.sql.shuffle.partitions",
        (false, true) => "lower spark.sql.shuffle.partitions",
    }
}

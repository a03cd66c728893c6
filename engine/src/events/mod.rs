//! Typed job, stage, task and cache events, and the listeners that receive them (the CLI's
//! progress bar, the event log, tests).

use std::sync::Arc;

use crate::adaptive::AqeDecision;
pub use crate::ids::{JobId, StageId};
use crate::scheduler::TaskMetrics;

/// A stage of a job as it was planned: what a job's stage graph is drawn from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PlannedStage {
    pub stage: StageId,
    pub parents: Vec<StageId>,
    /// How its output leaves it, e.g. `shuffle hash(l_orderkey@0) → 200` or `result`.
    pub exchange: String,
    /// Tasks as planned (adaptive execution may launch fewer or more).
    pub tasks: usize,
    /// Its main operators, top first, e.g. `HashJoin ← ShuffleRead ← ShuffleRead`.
    pub name: String,
}

/// Something that happened while a job ran.
#[derive(Debug, Clone, PartialEq)]
pub enum Event {
    JobStart {
        job: JobId,
        stages: usize,
        /// The statement the job runs, and where it came from (`file:line`) when known.
        sql: String,
        at: Option<String>,
        /// Slots of the executors its tasks run on.
        slots: usize,
        /// Its stages as planned, in id order.
        planned: Vec<PlannedStage>,
    },
    /// An attempt of a stage starts `tasks` tasks (all of them on its first attempt).
    StageSubmitted {
        job: JobId,
        stage: StageId,
        attempt: usize,
        tasks: usize,
        /// Tasks the stage has after adaptive execution (planned ones in the job's start).
        stage_tasks: usize,
        /// What adaptive execution did to the stage before it was submitted, or why not.
        decisions: Vec<AqeDecision>,
    },
    TaskStart {
        job: JobId,
        stage: StageId,
        task: usize,
        attempt: usize,
        /// The attempt of the stage it belongs to.
        stage_attempt: usize,
        /// Where it runs: executor and slot (from 0).
        executor: usize,
        slot: usize,
        /// When it starts, in milliseconds since the job started.
        start_ms: f64,
    },
    TaskEnd {
        job: JobId,
        stage: StageId,
        task: usize,
        attempt: usize,
        /// Why the attempt failed; `None` when it succeeded.
        error: Option<String>,
        /// What the attempt measured: where and when it ran, rows, bytes, spill.
        metrics: Box<TaskMetrics>,
    },
    /// The task attempts of an attempt of a stage, with what their operators measured —
    /// rows and bytes read, spill — which the task's end does not know yet for a first
    /// attempt: first attempts run on the stage's shared plan, whose metrics are read once,
    /// when the stage attempt ends (before it is reported completed or failed).
    TasksMeasured {
        job: JobId,
        stage: StageId,
        attempt: usize,
        tasks: Vec<TaskMetrics>,
    },
    /// An attempt of a stage ended early and the stage will run again: a task failed in a
    /// stage whose tasks share state, or a parent's output was lost.
    StageFailed {
        job: JobId,
        stage: StageId,
        attempt: usize,
        reason: String,
    },
    StageCompleted {
        job: JobId,
        stage: StageId,
        attempt: usize,
    },
    JobEnd {
        job: JobId,
        /// Succeeded, failed or cancelled (never running).
        status: JobStatus,
        /// Why it failed or was cancelled.
        error: Option<String>,
    },
    /// Advice about a stage of a job that ended, as EXPLAIN ANALYZE gives it.
    Advisory {
        job: JobId,
        stage: StageId,
        /// `skew`, `spill`, `under-parallelism`, `recomputes` …
        kind: String,
        message: String,
    },
    /// Cached blocks a job's tasks read, and those they did not find and computed again.
    CacheRead { job: JobId, hits: u64, misses: u64 },
    /// A cached relation was computed (CACHE TABLE, or the first use of a lazy one).
    CacheStored {
        name: String,
        level: String,
        partitions: usize,
        rows: u64,
        memory_bytes: u64,
        disk_bytes: u64,
    },
    /// A cached relation was dropped (UNCACHE TABLE, CLEAR CACHE, its view replaced).
    CacheRemoved { name: String },
}

/// Where a job is in its life: running, then succeeded, failed or cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JobStatus {
    Running,
    Succeeded,
    Failed,
    /// Dropped before it ended: Ctrl-C, a dropped result, a cancelled task of the caller.
    Cancelled,
}

impl JobStatus {
    /// `running`, `succeeded`, `failed`, `cancelled`, as `system.jobs` shows it.
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::Running => "running",
            JobStatus::Succeeded => "succeeded",
            JobStatus::Failed => "failed",
            JobStatus::Cancelled => "cancelled",
        }
    }
}

/// Receives events; called from the scheduler's tasks, so it must be quick and thread-safe.
pub trait Listener: Send + Sync {
    fn on_event(&self, event: &Event);
}

/// The listeners of a session.
#[derive(Clone, Default)]
pub struct Listeners(Vec<Arc<dyn Listener>>);

impl Listeners {
    pub fn add(&mut self, listener: Arc<dyn Listener>) {
        self.0.push(listener);
    }

    /// Removes `listener` (the same instance that was added).
    pub fn remove(&mut self, listener: &Arc<dyn Listener>) {
        self.0.retain(|l| !Arc::ptr_eq(l, listener));
    }

    pub fn emit(&self, event: Event) {
        for listener in &self.0 {
            listener.on_event(&event);
        }
    }
}

impl std::fmt::Debug for Listeners {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Listeners({})", self.0.len())
    }
}

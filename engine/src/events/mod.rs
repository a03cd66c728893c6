//! Typed job, stage and task events, and the listeners that receive them (the CLI's progress
//! bar, tests, later the event log and system tables).

use std::sync::Arc;

pub use crate::ids::{JobId, StageId};

/// Something that happened while a job ran.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    JobStart {
        job: JobId,
        stages: usize,
    },
    /// An attempt of a stage starts `tasks` tasks (all of them on its first attempt).
    StageSubmitted {
        job: JobId,
        stage: StageId,
        attempt: usize,
        tasks: usize,
    },
    TaskStart {
        job: JobId,
        stage: StageId,
        task: usize,
        attempt: usize,
    },
    TaskEnd {
        job: JobId,
        stage: StageId,
        task: usize,
        attempt: usize,
        /// Why the attempt failed; `None` when it succeeded.
        error: Option<String>,
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
    },
    JobEnd {
        job: JobId,
        /// Succeeded, failed or cancelled (never running).
        status: JobStatus,
    },
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

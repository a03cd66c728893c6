//! The events of the log as they are written: Spark's listener event names and field names
//! where Spark has the event, `org.stagesql.*` for ours. Times are milliseconds since the
//! epoch (with fractions: tasks of a small query take less than one). Attempts count from 1.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The Spark version whose listener events the log follows.
pub const SPARK_VERSION: &str = "3.5";

/// Every `Event` name this version writes.
pub const KNOWN_EVENTS: &[&str] = &[
    "SparkListenerLogStart",
    "SparkListenerApplicationStart",
    "SparkListenerApplicationEnd",
    "SparkListenerJobStart",
    "SparkListenerJobEnd",
    "SparkListenerStageSubmitted",
    "SparkListenerStageCompleted",
    "SparkListenerTaskStart",
    "SparkListenerTaskEnd",
    "org.stagesql.Spill",
    "org.stagesql.Advisory",
    "org.stagesql.CacheRead",
    "org.stagesql.CacheStored",
    "org.stagesql.CacheRemoved",
];

/// One line of the event log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "Event")]
pub enum LogEvent {
    /// The first line: which schema the rest is in.
    #[serde(rename = "SparkListenerLogStart")]
    LogStart {
        #[serde(rename = "Spark Version")]
        spark_version: String,
        #[serde(rename = "Stagesql Version")]
        stagesql_version: String,
        #[serde(rename = "Schema Version")]
        schema_version: u32,
    },
    #[serde(rename = "SparkListenerApplicationStart")]
    ApplicationStart {
        #[serde(rename = "App Name")]
        app_name: String,
        #[serde(rename = "App ID")]
        app_id: String,
        #[serde(rename = "Timestamp")]
        timestamp: f64,
        #[serde(rename = "User")]
        user: String,
        /// `spark.executor.instances` and `.cores`: the slots are their product.
        #[serde(rename = "Executors")]
        executors: usize,
        #[serde(rename = "Cores")]
        cores: usize,
        /// The settings in force when the session started.
        #[serde(rename = "Spark Properties")]
        properties: BTreeMap<String, String>,
    },
    #[serde(rename = "SparkListenerApplicationEnd")]
    ApplicationEnd {
        #[serde(rename = "Timestamp")]
        timestamp: f64,
    },
    #[serde(rename = "SparkListenerJobStart")]
    JobStart {
        #[serde(rename = "Job ID")]
        job_id: usize,
        #[serde(rename = "Submission Time")]
        submission_time: f64,
        /// The statement (Spark's `spark.job.description`).
        #[serde(rename = "Description")]
        description: String,
        /// `file:line` of the statement, when it came from a file.
        #[serde(rename = "Origin", default, skip_serializing_if = "Option::is_none")]
        origin: Option<String>,
        #[serde(rename = "Slots")]
        slots: usize,
        /// The job's stages as planned.
        #[serde(rename = "Stage Infos")]
        stage_infos: Vec<StageInfo>,
    },
    #[serde(rename = "SparkListenerJobEnd")]
    JobEnd {
        #[serde(rename = "Job ID")]
        job_id: usize,
        #[serde(rename = "Completion Time")]
        completion_time: f64,
        #[serde(rename = "Job Result")]
        job_result: JobResult,
    },
    /// An attempt of a stage starts `Tasks Submitted` of its `Number of Tasks` tasks (all of
    /// them on the first attempt), after adaptive execution's decisions.
    #[serde(rename = "SparkListenerStageSubmitted")]
    StageSubmitted {
        #[serde(rename = "Job ID")]
        job_id: usize,
        #[serde(rename = "Stage ID")]
        stage_id: usize,
        #[serde(rename = "Stage Attempt ID")]
        stage_attempt_id: usize,
        #[serde(rename = "Number of Tasks")]
        number_of_tasks: usize,
        #[serde(rename = "Tasks Submitted")]
        tasks_submitted: usize,
        #[serde(rename = "Submission Time")]
        submission_time: f64,
        #[serde(rename = "Adaptive Decisions", default)]
        adaptive: Vec<AqeRecord>,
    },
    /// An attempt of a stage ended: all its tasks succeeded, or (with `Failure Reason`) it
    /// ended early and the stage runs again.
    #[serde(rename = "SparkListenerStageCompleted")]
    StageCompleted {
        #[serde(rename = "Job ID")]
        job_id: usize,
        #[serde(rename = "Stage ID")]
        stage_id: usize,
        #[serde(rename = "Stage Attempt ID")]
        stage_attempt_id: usize,
        #[serde(rename = "Completion Time")]
        completion_time: f64,
        #[serde(
            rename = "Failure Reason",
            default,
            skip_serializing_if = "Option::is_none"
        )]
        failure_reason: Option<String>,
    },
    #[serde(rename = "SparkListenerTaskStart")]
    TaskStart {
        #[serde(rename = "Job ID")]
        job_id: usize,
        #[serde(rename = "Stage ID")]
        stage_id: usize,
        #[serde(rename = "Task Info")]
        task_info: TaskInfo,
    },
    #[serde(rename = "SparkListenerTaskEnd")]
    TaskEnd {
        #[serde(rename = "Job ID")]
        job_id: usize,
        #[serde(rename = "Stage ID")]
        stage_id: usize,
        #[serde(rename = "Stage Attempt ID")]
        stage_attempt_id: usize,
        #[serde(rename = "Task End Reason")]
        task_end_reason: TaskEndReason,
        #[serde(rename = "Task Info")]
        task_info: TaskInfo,
        #[serde(rename = "Task Metrics")]
        task_metrics: TaskMetricsRecord,
    },
    /// A task attempt's operators or shuffle writer spilled `Bytes` to disk.
    #[serde(rename = "org.stagesql.Spill")]
    Spill {
        #[serde(rename = "Job ID")]
        job_id: usize,
        #[serde(rename = "Stage ID")]
        stage_id: usize,
        #[serde(rename = "Index")]
        index: usize,
        #[serde(rename = "Attempt")]
        attempt: usize,
        #[serde(rename = "Bytes")]
        bytes: u64,
        #[serde(rename = "Timestamp")]
        timestamp: f64,
    },
    /// Advice about a stage of a job that ended, as EXPLAIN ANALYZE gives it.
    #[serde(rename = "org.stagesql.Advisory")]
    Advisory {
        #[serde(rename = "Job ID")]
        job_id: usize,
        #[serde(rename = "Stage ID")]
        stage_id: usize,
        #[serde(rename = "Kind")]
        kind: String,
        #[serde(rename = "Message")]
        message: String,
        #[serde(rename = "Timestamp")]
        timestamp: f64,
    },
    /// Cached blocks a job's tasks read (`Hits`), and those they did not find and computed
    /// again (`Misses`).
    #[serde(rename = "org.stagesql.CacheRead")]
    CacheRead {
        #[serde(rename = "Job ID")]
        job_id: usize,
        #[serde(rename = "Hits")]
        hits: u64,
        #[serde(rename = "Misses")]
        misses: u64,
        #[serde(rename = "Timestamp")]
        timestamp: f64,
    },
    /// A cached relation was computed.
    #[serde(rename = "org.stagesql.CacheStored")]
    CacheStored {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Storage Level")]
        level: String,
        #[serde(rename = "Partitions")]
        partitions: usize,
        #[serde(rename = "Rows")]
        rows: u64,
        #[serde(rename = "Memory Bytes")]
        memory_bytes: u64,
        #[serde(rename = "Disk Bytes")]
        disk_bytes: u64,
        #[serde(rename = "Timestamp")]
        timestamp: f64,
    },
    /// A cached relation was dropped.
    #[serde(rename = "org.stagesql.CacheRemoved")]
    CacheRemoved {
        #[serde(rename = "Name")]
        name: String,
        #[serde(rename = "Timestamp")]
        timestamp: f64,
    },
}

impl LogEvent {
    /// The job the event belongs to; `None` for the application's and the cache's events.
    pub fn job_id(&self) -> Option<usize> {
        match self {
            LogEvent::JobStart { job_id, .. }
            | LogEvent::JobEnd { job_id, .. }
            | LogEvent::StageSubmitted { job_id, .. }
            | LogEvent::StageCompleted { job_id, .. }
            | LogEvent::TaskStart { job_id, .. }
            | LogEvent::TaskEnd { job_id, .. }
            | LogEvent::Spill { job_id, .. }
            | LogEvent::Advisory { job_id, .. }
            | LogEvent::CacheRead { job_id, .. } => Some(*job_id),
            LogEvent::LogStart { .. }
            | LogEvent::ApplicationStart { .. }
            | LogEvent::ApplicationEnd { .. }
            | LogEvent::CacheStored { .. }
            | LogEvent::CacheRemoved { .. } => None,
        }
    }
}

/// A stage as planned, in its job's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageInfo {
    #[serde(rename = "Stage ID")]
    pub stage_id: usize,
    /// Its main operators, top first.
    #[serde(rename = "Stage Name")]
    pub name: String,
    #[serde(rename = "Parent IDs")]
    pub parent_ids: Vec<usize>,
    /// How its output leaves it: `shuffle hash(…) → 200`, `broadcast`, `gather → 1`, `result`.
    #[serde(rename = "Exchange")]
    pub exchange: String,
    #[serde(rename = "Number of Tasks")]
    pub number_of_tasks: usize,
}

/// What adaptive execution decided for a stage before it ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AqeRecord {
    #[serde(rename = "Rule")]
    pub rule: String,
    #[serde(rename = "Applied")]
    pub applied: bool,
    /// e.g. `200 → 6 partitions`; empty when not applied.
    #[serde(rename = "Change")]
    pub change: String,
    #[serde(rename = "Reason")]
    pub reason: String,
}

/// How a job ended: `JobSucceeded`, `JobFailed` or `JobCancelled`, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JobResult {
    #[serde(rename = "Result")]
    pub result: String,
    #[serde(rename = "Exception", default, skip_serializing_if = "Option::is_none")]
    pub exception: Option<String>,
}

/// Where and when a task attempt ran.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskInfo {
    /// The task: its partition of the stage.
    #[serde(rename = "Index")]
    pub index: usize,
    /// Attempts of a task count from 1 over every attempt of its stage.
    #[serde(rename = "Attempt")]
    pub attempt: usize,
    /// The stage attempt it belongs to.
    #[serde(rename = "Stage Attempt", default)]
    pub stage_attempt: usize,
    #[serde(rename = "Launch Time")]
    pub launch_time: f64,
    /// 0 while it runs.
    #[serde(rename = "Finish Time")]
    pub finish_time: f64,
    #[serde(rename = "Executor ID")]
    pub executor_id: String,
    /// The executor's slot (core) it ran in, from 0.
    #[serde(rename = "Slot")]
    pub slot: usize,
    #[serde(rename = "Failed")]
    pub failed: bool,
    #[serde(rename = "Killed")]
    pub killed: bool,
}

/// How a task attempt ended: `Success`, `ExceptionFailure`, `FetchFailed` (a parent's
/// output was lost) or `TaskKilled` (its stage attempt or job ended first), and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskEndReason {
    #[serde(rename = "Reason")]
    pub reason: String,
    #[serde(
        rename = "Description",
        default,
        skip_serializing_if = "Option::is_none"
    )]
    pub description: Option<String>,
}

/// What a task attempt measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskMetricsRecord {
    /// Milliseconds from launch to finish.
    #[serde(rename = "Executor Run Time")]
    pub executor_run_time: f64,
    #[serde(rename = "Peak Execution Memory")]
    pub peak_execution_memory: u64,
    #[serde(rename = "Disk Bytes Spilled")]
    pub disk_bytes_spilled: u64,
    /// Everything the task read: file splits and shuffle (or broadcast) blocks.
    #[serde(rename = "Input Metrics")]
    pub input_metrics: IoMetrics,
    /// The shuffle and broadcast part of it.
    #[serde(rename = "Shuffle Read Metrics")]
    pub shuffle_read_metrics: IoMetrics,
    /// What it wrote: to the next stage's shuffle, to the result or to a table's files.
    #[serde(rename = "Output Metrics")]
    pub output_metrics: IoMetrics,
}

/// Bytes and rows (Spark's records).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct IoMetrics {
    #[serde(rename = "Bytes")]
    pub bytes: u64,
    #[serde(rename = "Records")]
    pub records: u64,
}

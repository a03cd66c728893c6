//! What a report draws, rebuilt from an event log: the application, its jobs, their stages
//! and every task attempt, with the figures the charts need (lanes, quantiles, skew).

use std::collections::BTreeMap;

use crate::eventlog::{AqeRecord, LogEvent, TaskMetricsRecord};
use crate::explain::{TaskTimes, is_skewed};

/// One application (session) as its event log tells it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Run {
    pub app_id: String,
    pub app_name: String,
    /// Where it was read from (a file), for the heading.
    pub source: String,
    pub started: f64,
    /// `None` when the log ends before the application did (still running, or died).
    pub ended: Option<f64>,
    /// The latest time any event of the log carries: where running things are drawn to.
    pub last_time: f64,
    pub executors: usize,
    pub cores: usize,
    pub jobs: Vec<JobRun>,
    pub caches: Vec<CacheChange>,
}

/// A job: what it ran and how it ended.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct JobRun {
    pub id: usize,
    pub description: String,
    pub origin: Option<String>,
    pub slots: usize,
    pub submitted: f64,
    pub completed: Option<f64>,
    pub outcome: Outcome,
    pub error: Option<String>,
    pub stages: Vec<StageRun>,
    pub advisories: Vec<Advice>,
    pub cache_hits: u64,
    pub cache_misses: u64,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Outcome {
    /// No end in the log.
    #[default]
    Running,
    Succeeded,
    Failed,
    Cancelled,
}

impl Outcome {
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Running => "running",
            Outcome::Succeeded => "succeeded",
            Outcome::Failed => "failed",
            Outcome::Cancelled => "cancelled",
        }
    }
}

/// One piece of advice about a stage.
#[derive(Debug, Clone, PartialEq)]
pub struct Advice {
    pub stage: usize,
    pub kind: String,
    pub message: String,
}

/// A stage of a job: as planned, as launched, and its task attempts.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageRun {
    pub id: usize,
    pub name: String,
    pub parents: Vec<usize>,
    pub exchange: String,
    pub planned_tasks: usize,
    /// Tasks after adaptive execution; `None` if the stage never ran.
    pub launched_tasks: Option<usize>,
    pub attempts: Vec<StageAttemptRun>,
    pub decisions: Vec<AqeRecord>,
    /// Every task attempt, in the order they started.
    pub tasks: Vec<TaskRun>,
}

/// One attempt of a stage.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct StageAttemptRun {
    pub attempt: usize,
    pub submitted: f64,
    pub tasks_submitted: usize,
    pub completed: Option<f64>,
    /// Why it ended early, when it did (the stage ran again).
    pub failure: Option<String>,
}

/// One attempt of one task.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TaskRun {
    pub index: usize,
    pub attempt: usize,
    pub executor: String,
    pub slot: usize,
    pub launch: f64,
    /// `None` while it runs (or when the log ends first).
    pub finish: Option<f64>,
    /// `Success`, `ExceptionFailure`, `FetchFailed`, `TaskKilled`, or `Running`.
    pub reason: String,
    pub error: Option<String>,
    pub metrics: Option<TaskMetricsRecord>,
}

impl TaskRun {
    pub fn succeeded(&self) -> bool {
        self.reason == "Success"
    }

    /// Milliseconds it ran (to `end` while it runs).
    pub fn duration(&self, end: f64) -> f64 {
        self.finish.unwrap_or(end).max(self.launch) - self.launch
    }
}

/// A cached relation computed or dropped.
#[derive(Debug, Clone, PartialEq)]
pub struct CacheChange {
    pub time: f64,
    pub name: String,
    /// `stored (MEMORY_AND_DISK, 4 partitions, 1.2 K rows, 1.1 MiB in memory)` or `removed`.
    pub what: String,
}

impl Run {
    /// Builds the run from the events of one log, in the order they were written.
    pub fn from_events(source: &str, events: &[LogEvent]) -> Run {
        let mut run = Run {
            source: source.to_string(),
            ..Run::default()
        };
        let mut jobs: BTreeMap<usize, JobRun> = BTreeMap::new();
        let mut last_time = 0.0f64;
        for event in events {
            match event {
                LogEvent::LogStart { .. } => {}
                LogEvent::ApplicationStart {
                    app_name,
                    app_id,
                    timestamp,
                    executors,
                    cores,
                    ..
                } => {
                    run.app_name = app_name.clone();
                    run.app_id = app_id.clone();
                    run.started = *timestamp;
                    run.executors = *executors;
                    run.cores = *cores;
                    last_time = last_time.max(*timestamp);
                }
                LogEvent::ApplicationEnd { timestamp } => {
                    run.ended = Some(*timestamp);
                    last_time = last_time.max(*timestamp);
                }
                LogEvent::JobStart {
                    job_id,
                    submission_time,
                    description,
                    origin,
                    slots,
                    stage_infos,
                } => {
                    let job = job_of(&mut jobs, *job_id);
                    job.submitted = *submission_time;
                    job.description = description.clone();
                    job.origin = origin.clone();
                    job.slots = *slots;
                    for info in stage_infos {
                        let stage = stage_of(job, info.stage_id);
                        stage.name = info.name.clone();
                        stage.parents = info.parent_ids.clone();
                        stage.exchange = info.exchange.clone();
                        stage.planned_tasks = info.number_of_tasks;
                    }
                    last_time = last_time.max(*submission_time);
                }
                LogEvent::JobEnd {
                    job_id,
                    completion_time,
                    job_result,
                } => {
                    let job = job_of(&mut jobs, *job_id);
                    job.completed = Some(*completion_time);
                    job.outcome = match job_result.result.as_str() {
                        "JobSucceeded" => Outcome::Succeeded,
                        "JobCancelled" => Outcome::Cancelled,
                        _ => Outcome::Failed,
                    };
                    job.error = job_result.exception.clone();
                    last_time = last_time.max(*completion_time);
                }
                LogEvent::StageSubmitted {
                    job_id,
                    stage_id,
                    stage_attempt_id,
                    number_of_tasks,
                    tasks_submitted,
                    submission_time,
                    adaptive,
                } => {
                    let stage = stage_of(job_of(&mut jobs, *job_id), *stage_id);
                    stage.launched_tasks = Some(*number_of_tasks);
                    if !adaptive.is_empty() {
                        stage.decisions = adaptive.clone();
                    }
                    stage.attempts.push(StageAttemptRun {
                        attempt: *stage_attempt_id,
                        submitted: *submission_time,
                        tasks_submitted: *tasks_submitted,
                        completed: None,
                        failure: None,
                    });
                    last_time = last_time.max(*submission_time);
                }
                LogEvent::StageCompleted {
                    job_id,
                    stage_id,
                    stage_attempt_id,
                    completion_time,
                    failure_reason,
                } => {
                    let stage = stage_of(job_of(&mut jobs, *job_id), *stage_id);
                    if let Some(attempt) = stage
                        .attempts
                        .iter_mut()
                        .rev()
                        .find(|a| a.attempt == *stage_attempt_id)
                    {
                        attempt.completed = Some(*completion_time);
                        attempt.failure = failure_reason.clone();
                    }
                    last_time = last_time.max(*completion_time);
                }
                LogEvent::TaskStart {
                    job_id,
                    stage_id,
                    task_info,
                } => {
                    let stage = stage_of(job_of(&mut jobs, *job_id), *stage_id);
                    stage.tasks.push(TaskRun {
                        index: task_info.index,
                        attempt: task_info.attempt,
                        executor: task_info.executor_id.clone(),
                        slot: task_info.slot,
                        launch: task_info.launch_time,
                        finish: None,
                        reason: "Running".to_string(),
                        error: None,
                        metrics: None,
                    });
                    last_time = last_time.max(task_info.launch_time);
                }
                LogEvent::TaskEnd {
                    job_id,
                    stage_id,
                    task_end_reason,
                    task_info,
                    task_metrics,
                    ..
                } => {
                    let stage = stage_of(job_of(&mut jobs, *job_id), *stage_id);
                    let found = stage
                        .tasks
                        .iter()
                        .rposition(|t| t.index == task_info.index && t.attempt == task_info.attempt);
                    let task = match found {
                        Some(i) => &mut stage.tasks[i],
                        None => {
                            stage.tasks.push(TaskRun::default());
                            stage.tasks.last_mut().expect("just pushed")
                        }
                    };
                    *task = TaskRun {
                        index: task_info.index,
                        attempt: task_info.attempt,
                        executor: task_info.executor_id.clone(),
                        slot: task_info.slot,
                        launch: task_info.launch_time,
                        finish: Some(task_info.finish_time),
                        reason: task_end_reason.reason.clone(),
                        error: task_end_reason.description.clone(),
                        metrics: Some(task_metrics.clone()),
                    };
                    last_time = last_time.max(task_info.finish_time);
                }
                LogEvent::Spill { timestamp, .. } => last_time = last_time.max(*timestamp),
                LogEvent::Advisory {
                    job_id,
                    stage_id,
                    kind,
                    message,
                    ..
                } => job_of(&mut jobs, *job_id).advisories.push(Advice {
                    stage: *stage_id,
                    kind: kind.clone(),
                    message: message.clone(),
                }),
                LogEvent::CacheRead {
                    job_id,
                    hits,
                    misses,
                    ..
                } => {
                    let job = job_of(&mut jobs, *job_id);
                    job.cache_hits += hits;
                    job.cache_misses += misses;
                }
                LogEvent::CacheStored {
                    name,
                    level,
                    partitions,
                    rows,
                    memory_bytes,
                    disk_bytes,
                    timestamp,
                } => run.caches.push(CacheChange {
                    time: *timestamp,
                    name: name.clone(),
                    what: format!(
                        "stored ({level}, {partitions} partitions, {} rows, {} in memory, {} on disk)",
                        crate::explain::human_count(*rows),
                        crate::explain::human_bytes(*memory_bytes),
                        crate::explain::human_bytes(*disk_bytes)
                    ),
                }),
                LogEvent::CacheRemoved { name, timestamp } => run.caches.push(CacheChange {
                    time: *timestamp,
                    name: name.clone(),
                    what: "removed".to_string(),
                }),
            }
        }
        run.jobs = jobs.into_values().collect();
        for job in &mut run.jobs {
            job.stages.sort_by_key(|s| s.id);
        }
        if run.started == 0.0 {
            run.started = run
                .jobs
                .iter()
                .map(|j| j.submitted)
                .fold(last_time, f64::min);
        }
        run.last_time = last_time;
        run
    }
}

fn job_of(jobs: &mut BTreeMap<usize, JobRun>, id: usize) -> &mut JobRun {
    jobs.entry(id).or_insert_with(|| JobRun {
        id,
        ..JobRun::default()
    })
}

fn stage_of(job: &mut JobRun, id: usize) -> &mut StageRun {
    match job.stages.iter().position(|s| s.id == id) {
        Some(i) => &mut job.stages[i],
        None => {
            job.stages.push(StageRun {
                id,
                ..StageRun::default()
            });
            job.stages.last_mut().expect("just pushed")
        }
    }
}

/// The figures of one stage the charts show.
#[derive(Debug, Clone, PartialEq)]
pub struct StageFigures {
    /// When its first attempt started and its last ended (or the log's end).
    pub start: f64,
    pub end: f64,
    /// Lanes: one per executor slot, as `(executor, slot)`, in order.
    pub lanes: Vec<(String, usize)>,
    /// Each task attempt's lane, in the order of [`StageRun::tasks`].
    pub lane_of: Vec<usize>,
    /// Durations (ms) and shuffle-read bytes of the attempts whose output was kept.
    pub durations: Vec<f64>,
    pub shuffle_read: Vec<f64>,
    pub duration_summary: TaskTimes,
    pub shuffle_read_summary: TaskTimes,
    pub input_rows_summary: TaskTimes,
    pub output_rows_summary: TaskTimes,
    /// The attempt (index into [`StageRun::tasks`]) that is skewed, if one is.
    pub skewed: Option<usize>,
    /// Attempts of tasks that ran more than once (indices into [`StageRun::tasks`]).
    pub retried: Vec<usize>,
    pub spill_bytes: u64,
    /// Waves: tasks launched over slots, rounded up.
    pub waves: usize,
}

impl StageRun {
    /// Works out the stage's figures; `end` is when the log ends (for attempts still
    /// running), `slots` the job's slots and `cores` each executor's.
    pub fn figures(&self, end: f64, cores: usize) -> StageFigures {
        let start = self
            .attempts
            .first()
            .map(|a| a.submitted)
            .into_iter()
            .chain(self.tasks.iter().map(|t| t.launch))
            .fold(f64::INFINITY, f64::min);
        let stop = self
            .attempts
            .iter()
            .filter_map(|a| a.completed)
            .chain(self.tasks.iter().map(|t| t.finish.unwrap_or(end)))
            .fold(f64::NEG_INFINITY, f64::max);
        let (start, stop) = match start.is_finite() && stop.is_finite() {
            true => (start, stop.max(start)),
            false => (end, end),
        };
        let lanes = lanes(&self.tasks, cores);
        let lane_of = self
            .tasks
            .iter()
            .map(|t| {
                lanes
                    .iter()
                    .position(|(e, s)| *e == t.executor && *s == t.slot)
                    .unwrap_or(0)
            })
            .collect();
        // The attempt of each task whose output was kept: its latest success.
        let mut kept: BTreeMap<usize, usize> = BTreeMap::new();
        for (i, task) in self.tasks.iter().enumerate() {
            if task.succeeded() {
                kept.insert(task.index, i);
            }
        }
        let kept: Vec<usize> = kept.into_values().collect();
        let metric = |f: &dyn Fn(&TaskMetricsRecord) -> f64| -> Vec<f64> {
            kept.iter()
                .map(|&i| self.tasks[i].metrics.as_ref().map_or(0.0, f))
                .collect()
        };
        let durations: Vec<f64> = kept.iter().map(|&i| self.tasks[i].duration(end)).collect();
        let shuffle_read = metric(&|m| m.shuffle_read_metrics.bytes as f64);
        let duration_summary = TaskTimes::of(&durations);
        let skewed = match is_skewed(
            durations.len(),
            duration_summary.max,
            duration_summary.median,
        ) {
            true => durations
                .iter()
                .position(|d| *d == duration_summary.max)
                .map(|k| kept[k]),
            false => None,
        };
        let mut attempts_of: BTreeMap<usize, usize> = BTreeMap::new();
        for task in &self.tasks {
            *attempts_of.entry(task.index).or_default() += 1;
        }
        let retried = (0..self.tasks.len())
            .filter(|&i| attempts_of[&self.tasks[i].index] > 1)
            .collect();
        let slots = lanes.len().max(1);
        StageFigures {
            start,
            end: stop,
            lane_of,
            waves: self
                .launched_tasks
                .unwrap_or(self.planned_tasks)
                .div_ceil(slots),
            lanes,
            shuffle_read_summary: TaskTimes::of(&shuffle_read),
            input_rows_summary: TaskTimes::of(&metric(&|m| m.input_metrics.records as f64)),
            output_rows_summary: TaskTimes::of(&metric(&|m| m.output_metrics.records as f64)),
            durations,
            shuffle_read,
            duration_summary,
            skewed,
            retried,
            spill_bytes: self
                .tasks
                .iter()
                .filter_map(|t| t.metrics.as_ref())
                .map(|m| m.disk_bytes_spilled)
                .sum(),
        }
    }
}

/// One lane per executor slot: every slot of the executors the tasks ran on (`cores` each,
/// or as many as the tasks used), executors in numeric order.
fn lanes(tasks: &[TaskRun], cores: usize) -> Vec<(String, usize)> {
    let mut used: BTreeMap<(u64, String), usize> = BTreeMap::new();
    for task in tasks {
        let key = (
            task.executor.parse().unwrap_or(u64::MAX),
            task.executor.clone(),
        );
        let slots = used.entry(key).or_default();
        *slots = (*slots).max(task.slot + 1);
    }
    used.into_iter()
        .flat_map(|((_, executor), slots)| {
            (0..slots.max(cores)).map(move |slot| (executor.clone(), slot))
        })
        .collect()
}

/// A histogram of `values` in `bins` equal bins from their minimum to their maximum: counts
/// per bin, and the bin of each value.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    pub min: f64,
    pub max: f64,
    pub counts: Vec<usize>,
}

impl Histogram {
    pub fn of(values: &[f64], bins: usize) -> Histogram {
        let bins = bins.max(1);
        let min = values.iter().copied().fold(f64::INFINITY, f64::min);
        let max = values.iter().copied().fold(f64::NEG_INFINITY, f64::max);
        if !min.is_finite() {
            return Histogram {
                min: 0.0,
                max: 0.0,
                counts: vec![0; bins],
            };
        }
        let mut counts = vec![0; bins];
        let histogram = Histogram {
            min,
            max,
            counts: Vec::new(),
        };
        for value in values {
            counts[histogram.bin(*value, bins)] += 1;
        }
        Histogram {
            counts,
            ..histogram
        }
    }

    /// The bin `value` falls in, of `bins`.
    pub fn bin(&self, value: f64, bins: usize) -> usize {
        let width = self.max - self.min;
        if width <= 0.0 {
            return 0;
        }
        (((value - self.min) / width * bins as f64) as usize).min(bins - 1)
    }
}

/// Rows of concurrent intervals: each `(start, end)` gets the first row free at its start,
/// so overlapping intervals sit side by side. Returns each interval's row.
pub fn rows_of(intervals: &[(f64, f64)]) -> Vec<usize> {
    let mut order: Vec<usize> = (0..intervals.len()).collect();
    order.sort_by(|&a, &b| intervals[a].0.total_cmp(&intervals[b].0));
    let mut row_ends: Vec<f64> = Vec::new();
    let mut rows = vec![0; intervals.len()];
    for i in order {
        let (start, end) = intervals[i];
        let row = match row_ends.iter().position(|&e| e <= start) {
            Some(row) => row,
            None => {
                row_ends.push(f64::NEG_INFINITY);
                row_ends.len() - 1
            }
        };
        row_ends[row] = end.max(start);
        rows[i] = row;
    }
    rows
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::eventlog::{IoMetrics, JobResult, StageInfo, TaskEndReason, TaskInfo};

    fn task_end(
        stage: usize,
        index: usize,
        attempt: usize,
        slot: usize,
        launch: f64,
        ms: f64,
        reason: &str,
    ) -> LogEvent {
        LogEvent::TaskEnd {
            job_id: 1,
            stage_id: stage,
            stage_attempt_id: 1,
            task_end_reason: TaskEndReason {
                reason: reason.into(),
                description: (reason != "Success").then(|| "boom".into()),
            },
            task_info: TaskInfo {
                index,
                attempt,
                stage_attempt: 1,
                launch_time: launch,
                finish_time: launch + ms,
                executor_id: "0".into(),
                slot,
                failed: reason != "Success",
                killed: false,
            },
            task_metrics: TaskMetricsRecord {
                executor_run_time: ms,
                peak_execution_memory: 0,
                disk_bytes_spilled: 0,
                input_metrics: IoMetrics::default(),
                shuffle_read_metrics: IoMetrics {
                    bytes: (ms * 1000.0) as u64,
                    records: 1,
                },
                output_metrics: IoMetrics::default(),
            },
        }
    }

    /// A job whose stage 2 has four tasks on two slots, task 3 skewed, task 1 retried.
    fn events() -> Vec<LogEvent> {
        let mut events = vec![
            LogEvent::ApplicationStart {
                app_name: "stagesql".into(),
                app_id: "local-1".into(),
                timestamp: 1000.0,
                user: String::new(),
                executors: 1,
                cores: 2,
                properties: Default::default(),
            },
            LogEvent::JobStart {
                job_id: 1,
                submission_time: 1000.0,
                description: "SELECT 1".into(),
                origin: None,
                slots: 2,
                stage_infos: vec![
                    StageInfo {
                        stage_id: 1,
                        name: "Scan".into(),
                        parent_ids: vec![],
                        exchange: "shuffle hash(k@0) → 200".into(),
                        number_of_tasks: 1,
                    },
                    StageInfo {
                        stage_id: 2,
                        name: "Aggregate ← ShuffleRead".into(),
                        parent_ids: vec![1],
                        exchange: "result".into(),
                        number_of_tasks: 200,
                    },
                ],
            },
            LogEvent::StageSubmitted {
                job_id: 1,
                stage_id: 2,
                stage_attempt_id: 1,
                number_of_tasks: 4,
                tasks_submitted: 4,
                submission_time: 1000.0,
                adaptive: vec![],
            },
        ];
        events.push(task_end(2, 0, 1, 0, 1000.0, 10.0, "Success"));
        events.push(task_end(2, 1, 1, 1, 1000.0, 5.0, "ExceptionFailure"));
        events.push(task_end(2, 1, 2, 1, 1005.0, 12.0, "Success"));
        events.push(task_end(2, 2, 1, 0, 1010.0, 11.0, "Success"));
        events.push(task_end(2, 3, 1, 1, 1017.0, 300.0, "Success"));
        events.push(LogEvent::StageCompleted {
            job_id: 1,
            stage_id: 2,
            stage_attempt_id: 1,
            completion_time: 1317.0,
            failure_reason: None,
        });
        events.push(LogEvent::JobEnd {
            job_id: 1,
            completion_time: 1320.0,
            job_result: JobResult {
                result: "JobSucceeded".into(),
                exception: None,
            },
        });
        events
    }

    #[test]
    fn a_run_is_rebuilt_from_its_events() {
        let run = Run::from_events("test", &events());
        assert_eq!(run.ended, None);
        assert_eq!(run.jobs.len(), 1);
        let job = &run.jobs[0];
        assert_eq!(job.outcome, Outcome::Succeeded);
        assert_eq!(
            job.stages.iter().map(|s| s.id).collect::<Vec<_>>(),
            vec![1, 2]
        );
        // Stage 1 was planned and never submitted; stage 2 was coalesced to 4 tasks.
        assert_eq!(job.stages[0].launched_tasks, None);
        assert_eq!(
            (job.stages[1].planned_tasks, job.stages[1].launched_tasks),
            (200, Some(4))
        );
        assert_eq!(job.stages[1].tasks.len(), 5);
    }

    #[test]
    fn figures_put_tasks_on_slot_lanes_and_find_the_skewed_and_retried_ones() {
        let run = Run::from_events("test", &events());
        let stage = &run.jobs[0].stages[1];
        let figures = stage.figures(run.last_time, run.cores);
        assert_eq!(
            figures.lanes,
            vec![("0".to_string(), 0), ("0".to_string(), 1)]
        );
        assert_eq!(figures.lane_of, vec![0, 1, 1, 0, 1]);
        assert_eq!(figures.waves, 2);
        // The kept attempts: the failed one is left out.
        assert_eq!(figures.durations, vec![10.0, 12.0, 11.0, 300.0]);
        assert_eq!(figures.duration_summary.max, 300.0);
        assert_eq!(figures.skewed, Some(4));
        assert_eq!(figures.retried, vec![1, 2]);
        assert_eq!((figures.start, figures.end), (1000.0, 1317.0));
        // Without the slow task nothing is skewed.
        let mut even = stage.clone();
        even.tasks.pop();
        assert_eq!(even.figures(run.last_time, 2).skewed, None);
    }

    #[test]
    fn histograms_and_rows_of_concurrent_intervals() {
        let histogram = Histogram::of(&[0.0, 1.0, 2.0, 10.0], 5);
        assert_eq!(histogram.counts, vec![2, 1, 0, 0, 1]);
        assert_eq!(histogram.bin(10.0, 5), 4);
        assert_eq!(Histogram::of(&[], 3).counts, vec![0, 0, 0]);
        assert_eq!(Histogram::of(&[4.0, 4.0], 3).counts, vec![2, 0, 0]);
        // Two jobs at once sit in two rows; a later one reuses the first free row.
        assert_eq!(
            rows_of(&[(0.0, 10.0), (5.0, 15.0), (12.0, 20.0)]),
            vec![0, 1, 0]
        );
    }

    #[test]
    fn a_failed_or_cut_short_job_keeps_what_it_did() {
        let mut events = events();
        events.truncate(6);
        events.push(LogEvent::TaskStart {
            job_id: 1,
            stage_id: 2,
            task_info: TaskInfo {
                index: 3,
                attempt: 1,
                stage_attempt: 1,
                launch_time: 1017.0,
                finish_time: 0.0,
                executor_id: "0".into(),
                slot: 1,
                failed: false,
                killed: false,
            },
        });
        let run = Run::from_events("test", &events);
        let job = &run.jobs[0];
        assert_eq!(job.outcome, Outcome::Running);
        let running = job.stages[1].tasks.last().unwrap();
        assert_eq!((running.reason.as_str(), running.finish), ("Running", None));
        // It is drawn up to the log's last moment.
        assert_eq!(running.duration(run.last_time), 0.0);
        let html = super::super::render(&[run]);
        assert!(html.contains("task-bar running"));
        assert!(html.contains("the log ends before the application did"));
    }
}

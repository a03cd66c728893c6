//! The event log: every event of a session as one JSON object per line, in the shape of
//! Spark's listener events (`SparkListenerJobStart`, `SparkListenerTaskEnd` …, with Spark's
//! field names where Spark has the field), so that a run can be looked at after it ended —
//! `stagesql report` draws it (see [`crate::report`]).
//!
//! With `spark.eventLog.enabled=true` a session writes `<spark.eventLog.dir>/<app id>.jsonl`,
//! named `….jsonl.inprogress` until the session ends (as Spark names a running
//! application's log). Each event is written whole as it happens, so a log cut short by a
//! crash ends at the last event before it. The same events can be recorded in memory
//! ([`EventLog::in_memory`]) for a report of the run without a file.
//!
//! The schema is versioned: the first line is a `SparkListenerLogStart` whose
//! `Schema Version` is [`SCHEMA_VERSION`]; docs/report.md lists every event and field.

mod schema;

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

pub use schema::*;

use crate::events::{Event, JobId, JobStatus, Listener};
use crate::scheduler::TaskMetrics;

/// The version of the schema the log is written in; a reader refuses a later one.
pub const SCHEMA_VERSION: u32 = 1;

/// Where the events of a session go.
pub struct EventLog {
    app_id: String,
    state: Mutex<State>,
}

struct State {
    sink: Sink,
    /// When each running job started, in milliseconds since the epoch: task times are
    /// offsets from it.
    job_started: HashMap<JobId, f64>,
    /// Task attempts that ended, by job, stage, task and attempt, waiting for what their
    /// operators measured ([`Event::TasksMeasured`]; at the latest their job's end).
    ended_tasks: std::collections::BTreeMap<(JobId, usize, usize, usize), TaskMetrics>,
    ended: bool,
}

enum Sink {
    /// A file being written: `path` is where it ends up, `writing` where it is now.
    File {
        file: std::fs::File,
        writing: PathBuf,
        path: PathBuf,
        /// The first write error, after which nothing more is written.
        failed: Option<String>,
    },
    Memory(Vec<LogEvent>),
}

/// What the application-start event says about the session.
#[derive(Debug, Clone, Default)]
pub struct AppInfo {
    pub name: String,
    pub executors: usize,
    pub cores: usize,
    /// `spark.*` and `stagesql.*` settings in force at the start, by key.
    pub properties: std::collections::BTreeMap<String, String>,
}

/// Milliseconds since the epoch, now (to the microsecond).
pub fn now_ms() -> f64 {
    micros(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64() * 1000.0),
    )
}

/// `ms` rounded to the microsecond: what the log keeps of times and durations.
fn micros(ms: f64) -> f64 {
    (ms * 1000.0).round() / 1000.0
}

impl EventLog {
    /// A log written to a new file under `dir` (created if missing), starting with the
    /// application's start.
    pub fn create(dir: &Path, app: &AppInfo) -> std::io::Result<Self> {
        std::fs::create_dir_all(dir)?;
        let app_id = new_app_id();
        let path = dir.join(format!("{app_id}.jsonl"));
        let writing = dir.join(format!("{app_id}.jsonl.inprogress"));
        let file = std::fs::OpenOptions::new()
            .create_new(true)
            .append(true)
            .open(&writing)?;
        let log = Self::with_sink(
            app_id,
            Sink::File {
                file,
                writing,
                path,
                failed: None,
            },
        );
        log.start(app);
        log.failure()
            .map_or(Ok(log), |error| Err(std::io::Error::other(error)))
    }

    /// A log kept in memory ([`EventLog::events`]), starting with the application's start.
    pub fn in_memory(app: &AppInfo) -> Self {
        let log = Self::with_sink(new_app_id(), Sink::Memory(Vec::new()));
        log.start(app);
        log
    }

    fn with_sink(app_id: String, sink: Sink) -> Self {
        Self {
            app_id,
            state: Mutex::new(State {
                sink,
                job_started: HashMap::new(),
                ended_tasks: Default::default(),
                ended: false,
            }),
        }
    }

    fn start(&self, app: &AppInfo) {
        self.append(LogEvent::LogStart {
            spark_version: SPARK_VERSION.to_string(),
            stagesql_version: env!("CARGO_PKG_VERSION").to_string(),
            schema_version: SCHEMA_VERSION,
        });
        self.append(LogEvent::ApplicationStart {
            app_name: app.name.clone(),
            app_id: self.app_id.clone(),
            timestamp: now_ms(),
            user: std::env::var("USER").unwrap_or_default(),
            executors: app.executors,
            cores: app.cores,
            properties: app.properties.clone(),
        });
    }

    pub fn app_id(&self) -> &str {
        &self.app_id
    }

    /// Where the log is (its name once the session has ended); `None` in memory.
    pub fn path(&self) -> Option<PathBuf> {
        let state = self.lock();
        match &state.sink {
            Sink::File { writing, path, .. } => Some(match state.ended {
                true => path.clone(),
                false => writing.clone(),
            }),
            Sink::Memory(_) => None,
        }
    }

    /// The events recorded so far (in memory; a file log's are in its file).
    pub fn events(&self) -> Vec<LogEvent> {
        match &self.lock().sink {
            Sink::Memory(events) => events.clone(),
            Sink::File { .. } => Vec::new(),
        }
    }

    /// Why writing the file failed, if it did (nothing was written after).
    pub fn failure(&self) -> Option<String> {
        match &self.lock().sink {
            Sink::File { failed, .. } => failed.clone(),
            Sink::Memory(_) => None,
        }
    }

    /// Ends the application: writes its end and gives the file its final name. Returns
    /// that name. Later events are not recorded.
    pub fn finish(&self) -> Option<PathBuf> {
        let mut state = self.lock();
        if state.ended {
            return match &state.sink {
                Sink::File { path, .. } => Some(path.clone()),
                Sink::Memory(_) => None,
            };
        }
        state.flush_tasks(|_| true);
        state.append(LogEvent::ApplicationEnd {
            timestamp: now_ms(),
        });
        state.ended = true;
        match &mut state.sink {
            Sink::File {
                writing,
                path,
                failed,
                ..
            } => {
                if let Err(error) = std::fs::rename(&*writing, &*path) {
                    failed.get_or_insert_with(|| format!("{}: {error}", path.display()));
                    return Some(writing.clone());
                }
                Some(path.clone())
            }
            Sink::Memory(_) => None,
        }
    }

    fn append(&self, event: LogEvent) {
        self.lock().append(event);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl State {
    fn append(&mut self, event: LogEvent) {
        if self.ended {
            return;
        }
        match &mut self.sink {
            Sink::Memory(events) => events.push(event),
            Sink::File {
                file,
                writing,
                failed: failed @ None,
                ..
            } => {
                let mut line = match serde_json::to_vec(&event) {
                    Ok(line) => line,
                    Err(error) => {
                        *failed = Some(format!("cannot encode an event: {error}"));
                        return;
                    }
                };
                line.push(b'\n');
                // One write per event: a reader (or a crash) never sees half a line from
                // an interleaving.
                if let Err(error) = file.write_all(&line) {
                    *failed = Some(format!("{}: {error}", writing.display()));
                }
            }
            Sink::File { .. } => {}
        }
    }

    /// Writes the ends of the waiting task attempts that `which` selects (by job, stage,
    /// task, attempt), as they are.
    fn flush_tasks(&mut self, which: impl Fn(&(JobId, usize, usize, usize)) -> bool) {
        let keys: Vec<_> = self
            .ended_tasks
            .keys()
            .filter(|k| which(k))
            .copied()
            .collect();
        for key in keys {
            if let Some(metrics) = self.ended_tasks.remove(&key) {
                self.write_task_end(key.0, &metrics);
            }
        }
    }

    /// A task attempt's end, and its spill when it spilled.
    fn write_task_end(&mut self, job: JobId, metrics: &TaskMetrics) {
        let end = task_end(self, job, metrics);
        self.append(end);
        if metrics.spill_bytes > 0 {
            self.append(LogEvent::Spill {
                job_id: job,
                stage_id: metrics.stage,
                index: metrics.task,
                attempt: metrics.attempt,
                bytes: metrics.spill_bytes,
                timestamp: now_ms(),
            });
        }
    }

    /// The epoch time `offset_ms` into `job`.
    fn job_time(&self, job: JobId, offset_ms: f64) -> f64 {
        micros(self.job_started.get(&job).copied().unwrap_or_else(now_ms) + offset_ms)
    }
}

impl Listener for EventLog {
    fn on_event(&self, event: &Event) {
        let mut state = self.lock();
        let now = now_ms();
        let logged = match event {
            Event::JobStart {
                job,
                sql,
                at,
                slots,
                planned,
                ..
            } => {
                state.job_started.insert(*job, now);
                LogEvent::JobStart {
                    job_id: *job,
                    submission_time: now,
                    description: sql.clone(),
                    origin: at.clone(),
                    slots: *slots,
                    stage_infos: planned
                        .iter()
                        .map(|stage| StageInfo {
                            stage_id: stage.stage,
                            name: stage.name.clone(),
                            parent_ids: stage.parents.clone(),
                            exchange: stage.exchange.clone(),
                            number_of_tasks: stage.tasks,
                        })
                        .collect(),
                }
            }
            Event::StageSubmitted {
                job,
                stage,
                attempt,
                tasks,
                stage_tasks,
                decisions,
            } => LogEvent::StageSubmitted {
                job_id: *job,
                stage_id: *stage,
                stage_attempt_id: *attempt,
                number_of_tasks: *stage_tasks,
                tasks_submitted: *tasks,
                submission_time: now,
                adaptive: decisions
                    .iter()
                    .map(|d| AqeRecord {
                        rule: d.rule.to_string(),
                        applied: d.applied,
                        change: d.change.clone(),
                        reason: d.reason.clone(),
                    })
                    .collect(),
            },
            Event::TaskStart {
                job,
                stage,
                task,
                attempt,
                stage_attempt,
                executor,
                slot,
                start_ms,
            } => LogEvent::TaskStart {
                job_id: *job,
                stage_id: *stage,
                task_info: TaskInfo {
                    index: *task,
                    attempt: *attempt,
                    stage_attempt: *stage_attempt,
                    launch_time: state.job_time(*job, *start_ms),
                    finish_time: 0.0,
                    executor_id: executor.to_string(),
                    slot: *slot,
                    failed: false,
                    killed: false,
                },
            },
            Event::TaskEnd { job, metrics, .. } => {
                let key = (*job, metrics.stage, metrics.task, metrics.attempt);
                state.ended_tasks.insert(key, (**metrics).clone());
                return;
            }
            Event::TasksMeasured {
                job, stage, tasks, ..
            } => {
                for measured in tasks {
                    let key = (*job, *stage, measured.task, measured.attempt);
                    // An attempt whose end was not heard (killed as the stage ended) ends
                    // here too.
                    state.ended_tasks.remove(&key);
                    state.write_task_end(*job, measured);
                }
                return;
            }
            Event::StageFailed {
                job,
                stage,
                attempt,
                reason,
            } => LogEvent::StageCompleted {
                job_id: *job,
                stage_id: *stage,
                stage_attempt_id: *attempt,
                completion_time: now,
                failure_reason: Some(reason.clone()),
            },
            Event::StageCompleted {
                job,
                stage,
                attempt,
            } => LogEvent::StageCompleted {
                job_id: *job,
                stage_id: *stage,
                stage_attempt_id: *attempt,
                completion_time: now,
                failure_reason: None,
            },
            Event::JobEnd { job, status, error } => {
                state.flush_tasks(|key| key.0 == *job);
                state.job_started.remove(job);
                LogEvent::JobEnd {
                    job_id: *job,
                    completion_time: now,
                    job_result: JobResult {
                        result: match status {
                            JobStatus::Succeeded | JobStatus::Running => "JobSucceeded",
                            JobStatus::Failed => "JobFailed",
                            JobStatus::Cancelled => "JobCancelled",
                        }
                        .to_string(),
                        exception: error.clone(),
                    },
                }
            }
            Event::Advisory {
                job,
                stage,
                kind,
                message,
            } => LogEvent::Advisory {
                job_id: *job,
                stage_id: *stage,
                kind: kind.clone(),
                message: message.clone(),
                timestamp: now,
            },
            Event::CacheRead { job, hits, misses } => LogEvent::CacheRead {
                job_id: *job,
                hits: *hits,
                misses: *misses,
                timestamp: now,
            },
            Event::CacheStored {
                name,
                level,
                partitions,
                rows,
                memory_bytes,
                disk_bytes,
            } => LogEvent::CacheStored {
                name: name.clone(),
                level: level.clone(),
                partitions: *partitions,
                rows: *rows,
                memory_bytes: *memory_bytes,
                disk_bytes: *disk_bytes,
                timestamp: now,
            },
            Event::CacheRemoved { name } => LogEvent::CacheRemoved {
                name: name.clone(),
                timestamp: now,
            },
        };
        state.append(logged);
    }
}

/// A task attempt's end, with where and when it ran and what it measured.
fn task_end(state: &State, job: JobId, metrics: &TaskMetrics) -> LogEvent {
    let launch = state.job_time(job, metrics.start_ms);
    let reason = match (&metrics.error, metrics.killed, metrics.fetch_failed) {
        (None, _, _) => "Success",
        (Some(_), true, _) => "TaskKilled",
        (Some(_), _, true) => "FetchFailed",
        (Some(_), _, _) => "ExceptionFailure",
    };
    LogEvent::TaskEnd {
        job_id: job,
        stage_id: metrics.stage,
        stage_attempt_id: metrics.stage_attempt,
        task_end_reason: TaskEndReason {
            reason: reason.to_string(),
            description: metrics.error.clone(),
        },
        task_info: TaskInfo {
            index: metrics.task,
            attempt: metrics.attempt,
            stage_attempt: metrics.stage_attempt,
            launch_time: launch,
            finish_time: micros(launch + metrics.duration_ms),
            executor_id: metrics.executor.to_string(),
            slot: metrics.slot,
            failed: metrics.error.is_some() && !metrics.killed,
            killed: metrics.killed,
        },
        task_metrics: TaskMetricsRecord {
            executor_run_time: micros(metrics.duration_ms),
            peak_execution_memory: metrics.peak_memory_bytes,
            disk_bytes_spilled: metrics.spill_bytes,
            input_metrics: IoMetrics {
                bytes: metrics.bytes_in,
                records: metrics.rows_in,
            },
            shuffle_read_metrics: IoMetrics {
                bytes: metrics.shuffle_read_bytes,
                records: metrics.shuffle_read_rows,
            },
            output_metrics: IoMetrics {
                bytes: metrics.bytes_out,
                records: metrics.rows_out,
            },
        },
    }
}

/// `local-<epoch ms>-<8 hex digits>`: Spark's name for a local application, made unique
/// among sessions started in the same millisecond.
fn new_app_id() -> String {
    let uuid = uuid::Uuid::new_v4().simple().to_string();
    format!("local-{}-{}", now_ms() as u64, &uuid[..8])
}

/// Reads an event log: one JSON event per line. Blank lines are skipped; a line that is not
/// an event is an error naming the file and line, except for a last line cut short (the
/// log of a process that died while writing it), which is ignored.
pub fn read(path: &Path) -> Result<Vec<LogEvent>, String> {
    let text = std::fs::read_to_string(path).map_err(|e| format!("{}: {e}", path.display()))?;
    parse(&text).map_err(|(line, error)| format!("{}:{line}: {error}", path.display()))
}

/// Parses the lines of an event log (see [`read`]); an error carries its line number.
pub fn parse(text: &str) -> Result<Vec<LogEvent>, (usize, String)> {
    let mut events = Vec::new();
    let lines: Vec<&str> = text.lines().collect();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str::<LogEvent>(line) {
            Ok(LogEvent::LogStart { schema_version, .. }) if schema_version > SCHEMA_VERSION => {
                return Err((
                    i + 1,
                    format!(
                        "event log schema version {schema_version} is newer than this stagesql reads ({SCHEMA_VERSION})"
                    ),
                ));
            }
            Ok(event) => events.push(event),
            // A last line without its newline was being written when the process died.
            Err(_) if i + 1 == lines.len() && !text.ends_with('\n') => {}
            Err(error) => {
                // Events of a later stagesql (or of Spark) this one does not know are
                // skipped; a malformed line is not.
                let known = serde_json::from_str::<serde_json::Value>(line)
                    .ok()
                    .and_then(|v| v.get("Event").and_then(|e| e.as_str()).map(String::from));
                match known {
                    Some(name) if !KNOWN_EVENTS.contains(&name.as_str()) => {}
                    _ => return Err((i + 1, format!("not an event: {error}"))),
                }
            }
        }
    }
    Ok(events)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::adaptive::AqeDecision;
    use crate::events::PlannedStage;

    fn task(stage: usize, task: usize, attempt: usize, start_ms: f64) -> TaskMetrics {
        TaskMetrics {
            stage,
            stage_attempt: 1,
            task,
            attempt,
            executor: 1,
            slot: 2,
            start_ms,
            duration_ms: 12.5,
            rows_in: 100,
            bytes_in: 4096,
            shuffle_read_rows: 100,
            shuffle_read_bytes: 4096,
            rows_out: 10,
            bytes_out: 512,
            spill_bytes: 0,
            peak_memory_bytes: 65536,
            ..Default::default()
        }
    }

    /// Every kind of event, as a job that retried a task, spilled, read a cache and got
    /// advice would produce them.
    fn a_session(log: &EventLog) {
        log.on_event(&Event::JobStart {
            job: 1,
            stages: 2,
            sql: "SELECT \"k\", count(*) FROM t GROUP BY k".into(),
            at: Some("q.sql:3".into()),
            slots: 4,
            planned: vec![
                PlannedStage {
                    stage: 1,
                    parents: vec![],
                    exchange: "shuffle hash(k@0) → 200".into(),
                    tasks: 2,
                    name: "Aggregate ← Scan".into(),
                },
                PlannedStage {
                    stage: 2,
                    parents: vec![1],
                    exchange: "result".into(),
                    tasks: 200,
                    name: "Aggregate ← ShuffleRead".into(),
                },
            ],
        });
        log.on_event(&Event::StageSubmitted {
            job: 1,
            stage: 2,
            attempt: 1,
            tasks: 3,
            stage_tasks: 3,
            decisions: vec![AqeDecision {
                stage: 2,
                rule: "coalesce partitions",
                applied: true,
                change: "200 → 3 partitions".into(),
                reason: "1 MiB over 200 partitions".into(),
            }],
        });
        log.on_event(&Event::TaskStart {
            job: 1,
            stage: 2,
            task: 0,
            attempt: 1,
            stage_attempt: 1,
            executor: 1,
            slot: 2,
            start_ms: 5.0,
        });
        let mut failed = task(2, 0, 1, 5.0);
        failed.error = Some("injected failure".into());
        let mut spilled = task(2, 0, 2, 20.0);
        spilled.spill_bytes = 1 << 20;
        for metrics in [&failed, &spilled] {
            log.on_event(&Event::TaskEnd {
                job: 1,
                stage: 2,
                task: metrics.task,
                attempt: metrics.attempt,
                error: metrics.error.clone(),
                metrics: Box::new(metrics.clone()),
            });
        }
        log.on_event(&Event::TasksMeasured {
            job: 1,
            stage: 2,
            attempt: 1,
            tasks: vec![failed, spilled],
        });
        log.on_event(&Event::StageFailed {
            job: 1,
            stage: 2,
            attempt: 1,
            reason: "lost output of stage 1".into(),
        });
        log.on_event(&Event::StageCompleted {
            job: 1,
            stage: 2,
            attempt: 2,
        });
        log.on_event(&Event::JobEnd {
            job: 1,
            status: JobStatus::Failed,
            error: Some("Execution error: boom".into()),
        });
        log.on_event(&Event::Advisory {
            job: 1,
            stage: 2,
            kind: "skew".into(),
            message: "task 0 ran 105 ms".into(),
        });
        log.on_event(&Event::CacheRead {
            job: 1,
            hits: 3,
            misses: 1,
        });
        log.on_event(&Event::CacheStored {
            name: "t".into(),
            level: "MEMORY_AND_DISK".into(),
            partitions: 4,
            rows: 1000,
            memory_bytes: 2048,
            disk_bytes: 0,
        });
        log.on_event(&Event::CacheRemoved { name: "t".into() });
    }

    fn names(events: &[LogEvent]) -> Vec<String> {
        events
            .iter()
            .map(|e| {
                serde_json::to_value(e).unwrap()["Event"]
                    .as_str()
                    .unwrap()
                    .to_string()
            })
            .collect()
    }

    #[test]
    fn every_event_survives_a_round_trip_through_its_json_line() {
        let log = EventLog::in_memory(&AppInfo {
            name: "stagesql".into(),
            executors: 2,
            cores: 2,
            properties: [("spark.sql.shuffle.partitions".into(), "200".into())].into(),
        });
        a_session(&log);
        log.finish();
        let events = log.events();
        let text: String = events
            .iter()
            .map(|e| serde_json::to_string(e).unwrap() + "\n")
            .collect();
        assert_eq!(parse(&text).unwrap(), events);
        // Every event name is written, and every one written is known to readers.
        let mut written = names(&events);
        written.sort();
        written.dedup();
        let mut known: Vec<String> = KNOWN_EVENTS.iter().map(|s| s.to_string()).collect();
        known.sort();
        assert_eq!(written, known);
        // Spark's field names where Spark has the event.
        let job_start = serde_json::to_value(&events[2]).unwrap();
        assert_eq!(job_start["Event"], "SparkListenerJobStart");
        assert_eq!(job_start["Job ID"], 1);
        assert_eq!(job_start["Stage Infos"][1]["Parent IDs"][0], 1);
        let first = serde_json::to_value(&events[0]).unwrap();
        assert_eq!(first["Schema Version"], SCHEMA_VERSION);
    }

    #[test]
    fn task_ends_wait_for_their_measures_and_keep_their_times() {
        let log = EventLog::in_memory(&AppInfo::default());
        a_session(&log);
        let events = log.events();
        let ends: Vec<&LogEvent> = events
            .iter()
            .filter(|e| matches!(e, LogEvent::TaskEnd { .. }))
            .collect();
        assert_eq!(ends.len(), 2);
        let LogEvent::TaskEnd {
            task_end_reason,
            task_info,
            task_metrics,
            ..
        } = ends[0]
        else {
            unreachable!()
        };
        assert_eq!(task_end_reason.reason, "ExceptionFailure");
        assert_eq!(
            task_end_reason.description.as_deref(),
            Some("injected failure")
        );
        assert!(task_info.failed);
        assert_eq!((task_info.executor_id.as_str(), task_info.slot), ("1", 2));
        assert_eq!(task_info.finish_time - task_info.launch_time, 12.5);
        assert_eq!(task_metrics.shuffle_read_metrics.bytes, 4096);
        // The spill follows the end of the attempt that spilled.
        let position = |name: &str| names(&events).iter().position(|n| n == name).unwrap();
        assert!(position("org.stagesql.Spill") > position("SparkListenerTaskEnd"));
        assert!(position("SparkListenerStageCompleted") > position("org.stagesql.Spill"));
    }

    #[test]
    fn a_file_log_is_renamed_when_the_application_ends() {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::create(dir.path(), &AppInfo::default()).unwrap();
        let writing = log.path().unwrap();
        assert!(writing.to_string_lossy().ends_with(".jsonl.inprogress"));
        a_session(&log);
        let written = read(&writing).unwrap();
        assert!(matches!(written[0], LogEvent::LogStart { .. }));
        assert!(
            !written
                .iter()
                .any(|e| matches!(e, LogEvent::ApplicationEnd { .. }))
        );
        let path = log.finish().unwrap();
        assert!(!writing.exists());
        let events = read(&path).unwrap();
        assert!(matches!(
            events.last(),
            Some(LogEvent::ApplicationEnd { .. })
        ));
        assert_eq!(events.len(), written.len() + 1);
    }

    #[test]
    fn reading_a_log_names_what_is_wrong_and_where() {
        let start = r#"{"Event":"SparkListenerLogStart","Spark Version":"3.5","Stagesql Version":"0.1.0","Schema Version":1}"#;
        let end = r#"{"Event":"SparkListenerApplicationEnd","Timestamp":5.0}"#;
        // A last line cut short by a crash is ignored.
        assert_eq!(
            parse(&format!("{start}\n{end}\n{{\"Event\":\"Spark"))
                .unwrap()
                .len(),
            2
        );
        // Events of another writer are skipped.
        let other = r#"{"Event":"SparkListenerExecutorAdded","Timestamp":1}"#;
        assert_eq!(
            parse(&format!("{start}\n{other}\n{end}\n")).unwrap().len(),
            2
        );
        // A broken line in the middle is an error at its line.
        let (line, error) = parse(&format!("{start}\nnot json\n{end}\n")).unwrap_err();
        assert_eq!(line, 2);
        assert!(error.contains("not an event"), "{error}");
        // A known event with a missing field too.
        let (line, _) = parse(&format!(
            "{start}\n{{\"Event\":\"SparkListenerJobEnd\"}}\n{end}\n"
        ))
        .unwrap_err();
        assert_eq!(line, 2);
        // A later schema is refused.
        let later = start.replace("\"Schema Version\":1", "\"Schema Version\":99");
        let (line, error) = parse(&format!("{later}\n")).unwrap_err();
        assert_eq!(line, 1);
        assert!(error.contains("newer"), "{error}");
    }
}

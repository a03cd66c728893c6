//! The session's event logs: the file of `spark.eventLog.enabled`, and in-memory recordings
//! for a report of part of a run (`--report`, EXPLAIN ANALYZE FORMAT HTML).

use std::sync::Arc;

use super::Session;
use crate::config::keys;
use crate::error::{Error, Result};
use crate::eventlog::{AppInfo, EventLog};
use crate::events::{Event, Listener};
use crate::scheduler::JobReport;
use crate::stages::StageGraph;

impl Session {
    /// Opens the event log of `spark.eventLog.enabled` (once the settings are known).
    pub(super) fn open_event_log(&self) -> Result<()> {
        if !self
            .setting(keys::EVENT_LOG_ENABLED)
            .eq_ignore_ascii_case("true")
        {
            return Ok(());
        }
        let dir = std::path::PathBuf::from(self.setting(keys::EVENT_LOG_DIR));
        let log = EventLog::create(&dir, &self.app_info()).map_err(|error| {
            Error::Config(format!(
                "cannot write the event log under {} ({}): {error}",
                dir.display(),
                keys::EVENT_LOG_DIR
            ))
        })?;
        let log = Arc::new(log);
        let _ = self.event_log.set(log.clone());
        self.attach(log);
        Ok(())
    }

    /// What the application-start event says about this session.
    fn app_info(&self) -> AppInfo {
        let shape = self.executor_shape();
        AppInfo {
            name: "stagesql".to_string(),
            executors: shape.instances,
            cores: shape.cores,
            properties: self
                .setting_rows(None)
                .into_iter()
                .filter(|row| row.key.starts_with("spark.") || row.key.starts_with("stagesql."))
                .map(|row| (row.key, row.value))
                .collect(),
        }
    }

    /// The file the session's events are written to (`spark.eventLog.enabled`).
    pub fn event_log(&self) -> Option<&Arc<EventLog>> {
        self.event_log.get()
    }

    /// Starts recording the session's events in memory, from the application's start, until
    /// [`Session::stop_recording`].
    pub fn record_events(&self) -> Arc<EventLog> {
        let log = Arc::new(EventLog::in_memory(&self.app_info()));
        self.attach(log.clone());
        log
    }

    /// Stops a recording started with [`Session::record_events`]; it ends the application
    /// in it.
    pub fn stop_recording(&self, log: &Arc<EventLog>) {
        let listener: Arc<dyn Listener> = log.clone();
        self.listeners
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&listener);
        self.event_logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .retain(|l| !Arc::ptr_eq(l, log));
        log.finish();
    }

    fn attach(&self, log: Arc<EventLog>) {
        self.add_listener(log.clone());
        self.event_logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(log);
    }

    /// Whether anything records the events worth computing only for a log (advisories).
    fn recording(&self) -> bool {
        !self
            .event_logs
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .is_empty()
    }

    /// Tells the listeners what a job that ended deserves advice about, and the cached
    /// blocks its tasks read (only when something records events: working the advice out
    /// walks the job's plans).
    pub(super) fn emit_job_findings(&self, graph: &StageGraph, report: &JobReport) {
        if !self.recording() {
            return;
        }
        let listeners = self.listeners();
        if report.cache_hits + report.cache_misses > 0 {
            listeners.emit(Event::CacheRead {
                job: report.job,
                hits: report.cache_hits,
                misses: report.cache_misses,
            });
        }
        let view =
            crate::explain::describe(graph, report.slots, &self.aqe_settings(), Some(report));
        let mut advisories =
            crate::explain::advise(&view, self.stage_planning().broadcast_threshold);
        advisories.extend(crate::explain::recompute_advice(
            &self.recomputed_by(report.job),
            true,
        ));
        for advisory in advisories {
            listeners.emit(Event::Advisory {
                job: report.job,
                stage: advisory.stage,
                kind: advisory.kind.to_string(),
                message: advisory.message,
            });
        }
    }

    /// Tells the listeners that the cached relation `name` was computed.
    pub(super) fn emit_cache_stored(&self, name: &str) {
        let Some(status) = self.cache.status().into_iter().find(|s| s.name == name) else {
            return;
        };
        self.listeners().emit(Event::CacheStored {
            name: status.name,
            level: status.level.to_string(),
            partitions: status.partitions,
            rows: status.rows,
            memory_bytes: status.memory_bytes,
            disk_bytes: status.disk_bytes,
        });
    }

    /// Tells the listeners that the cached relation `name` was dropped.
    pub(super) fn emit_cache_removed(&self, name: &str) {
        self.listeners().emit(Event::CacheRemoved {
            name: name.to_string(),
        });
    }
}

/// A recording of the session's events that stops when dropped (also when the statement
/// that started it is cancelled).
pub(super) struct Recording<'a> {
    session: &'a Session,
    log: Arc<EventLog>,
}

impl<'a> Recording<'a> {
    pub fn start(session: &'a Session) -> Self {
        Self {
            session,
            log: session.record_events(),
        }
    }

    /// Stops the recording; returns what it recorded.
    pub fn stop(self) -> Vec<crate::eventlog::LogEvent> {
        self.session.stop_recording(&self.log);
        self.log.events()
    }
}

impl Drop for Recording<'_> {
    fn drop(&mut self) {
        self.session.stop_recording(&self.log);
    }
}

impl Drop for Session {
    /// Ends the application in the event log and gives the file its final name.
    fn drop(&mut self) {
        if let Some(log) = self.event_log.get() {
            log.finish();
        }
    }
}

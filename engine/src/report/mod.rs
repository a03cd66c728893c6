//! The run report: one self-contained HTML file drawn from event logs — the jobs on a
//! timeline, each job's stage graph, each stage's tasks on the executor slots they ran in
//! (waves and the barrier visible, retries and the skewed task marked), task-duration and
//! shuffle-read histograms with their quantiles, adaptive decisions, advisories and cache
//! reads. `stagesql report`, `stagesql -f … --report` and `EXPLAIN ANALYZE FORMAT HTML`
//! make it; docs/report.md shows one.

mod html;
mod model;

use std::path::{Path, PathBuf};

pub use html::{escape, render};
pub use model::{
    Advice, CacheChange, Histogram, JobRun, Outcome, Run, StageAttemptRun, StageFigures, StageRun,
    TaskRun, rows_of,
};

use crate::eventlog::{self, LogEvent};

/// The event logs named by `paths`: files, or directories whose `*.jsonl` and
/// `*.jsonl.inprogress` files are read in name order.
pub fn log_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>, String> {
    let mut files = Vec::new();
    for path in paths {
        let meta = std::fs::metadata(path).map_err(|e| format!("{}: {e}", path.display()))?;
        if !meta.is_dir() {
            files.push(path.clone());
            continue;
        }
        let mut found: Vec<PathBuf> = std::fs::read_dir(path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| {
                let name = p.file_name().and_then(|n| n.to_str()).unwrap_or_default();
                name.ends_with(".jsonl") || name.ends_with(".jsonl.inprogress")
            })
            .collect();
        if found.is_empty() {
            return Err(format!(
                "{}: no event logs (*.jsonl) in this directory",
                path.display()
            ));
        }
        found.sort();
        files.extend(found);
    }
    Ok(files)
}

/// Reads the event logs named by `paths` (see [`log_files`]) into runs.
pub fn read_runs(paths: &[PathBuf]) -> Result<Vec<Run>, String> {
    log_files(paths)?
        .iter()
        .map(|file| {
            let events = eventlog::read(file)?;
            Ok(Run::from_events(&file.display().to_string(), &events))
        })
        .collect()
}

/// The report of the events of one recording (in memory), as HTML.
pub fn render_events(source: &str, events: &[LogEvent]) -> String {
    render(&[Run::from_events(source, events)])
}

/// Writes `html` to `path`, creating its directory; says where on failure.
pub fn write(path: &Path, html: &str) -> Result<(), String> {
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    std::fs::write(path, html).map_err(|e| format!("{}: {e}", path.display()))
}

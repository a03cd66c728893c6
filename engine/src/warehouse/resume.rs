//! Scripts that resume where they failed (`stagesql -f pipeline.sql --resume`).
//!
//! A script run records in the warehouse (`_stagesql/runs/`) each statement it completed:
//! its text, what kind of step it is, and the warehouse tables it read and wrote with their
//! versions. `--resume` compares the next run's statements with that record: a completed
//! statement is skipped when its text is the same and none of the tables it read or wrote
//! has been committed since by anyone else; the first statement that is not skipped, and
//! every one after it, runs. Statements that set up the session (SET, USE, views, caches,
//! tables of the session) always run again, since a new process starts without them.
//!
//! A plain `INSERT INTO` a warehouse table is not idempotent: skipping it is said loudly,
//! and when its inputs changed, resuming is refused (running it again would append its
//! rows twice; not running it would miss the change).

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{create_dir_all, now_ms, write_json_atomically};
use crate::Session;
use crate::error::{Error, Result};
use crate::session::StatementEffects;
use crate::sql::tables::first_word;
use crate::sql::{Command, SqlStatement, TableCommand};

/// What kind of step a statement is, for resuming.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    /// Running it again gives the same tables: CREATE TABLE, INSERT OVERWRITE, CHECKPOINT,
    /// DDL on the warehouse, a query, COPY.
    Idempotent,
    /// A plain INSERT INTO a warehouse table: running it again appends again.
    Append,
    /// Sets up the session (SET, USE, CREATE VIEW, CACHE TABLE, a table of the session):
    /// always runs again.
    Session,
}

/// A completed statement of a script run.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StepRecord {
    pub index: usize,
    pub line: usize,
    pub text: String,
    pub kind: StepKind,
    pub reads: BTreeMap<String, u64>,
    pub writes: BTreeMap<String, u64>,
    pub completed_ms: u64,
}

/// What a script run completed.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunRecord {
    pub script: String,
    pub started_ms: u64,
    pub steps: Vec<StepRecord>,
}

/// Whether a statement runs or is skipped on `--resume`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    Run,
    /// Sets up the session (SET, USE, a view…): run again whether resuming or not.
    Rerun,
    /// Completed in the last run, not run again; `reason` says why that is safe.
    Skip {
        reason: String,
    },
}

/// A script run being recorded.
#[derive(Debug)]
pub struct ScriptRun {
    file: PathBuf,
    /// The warehouse directory: a run that has not made it (wrote no table) and was not
    /// asked to resume leaves no record, so reading scripts leave no `spark-warehouse`.
    root: PathBuf,
    resume: bool,
    record: RunRecord,
    previous: Option<RunRecord>,
}

impl ScriptRun {
    /// Starts recording a run of `script`. With `resume`, also decides from the last run's
    /// record which of `statements` to skip; returns a note when there is nothing to resume.
    pub fn begin(
        session: &Session,
        script: &Path,
        statements: &[SqlStatement],
        resume: bool,
    ) -> Result<(ScriptRun, Vec<Step>, Option<String>)> {
        let script = std::path::absolute(script)
            .map_err(|e| Error::io("resolve the script path", script, e))?;
        let dir = session.warehouse().meta_dir().join("runs");
        let file = dir.join(format!("{}.json", run_name(&script)));
        let previous: Option<RunRecord> = match resume {
            false => None,
            true => std::fs::read(&file)
                .ok()
                .and_then(|bytes| serde_json::from_slice(&bytes).ok()),
        };
        let (steps, note) = match (&previous, resume) {
            (_, false) => (vec![Step::Run; statements.len()], None),
            (None, true) => (
                vec![Step::Run; statements.len()],
                Some(format!(
                    "nothing to resume: no earlier run of {} is recorded in the warehouse {}; running every statement",
                    script.display(),
                    session.warehouse().root().display()
                )),
            ),
            (Some(previous), true) => (plan_resume(session, previous, statements)?, None),
        };
        let run = ScriptRun {
            file,
            root: session.warehouse().root().to_path_buf(),
            resume,
            record: RunRecord {
                script: script.display().to_string(),
                started_ms: now_ms(),
                steps: Vec::new(),
            },
            previous,
        };
        run.save()?;
        Ok((run, steps, note))
    }

    /// Records that statement `index` completed, with what it read and wrote (taken from
    /// the session's effects since the last statement).
    pub fn completed(
        &mut self,
        index: usize,
        statement: &SqlStatement,
        effects: StatementEffects,
    ) -> Result<()> {
        let kind = step_kind(&statement.text, &effects);
        self.record.steps.push(StepRecord {
            index,
            line: statement.start.line,
            text: statement.text.clone(),
            kind,
            reads: effects.reads,
            writes: effects.writes,
            completed_ms: now_ms(),
        });
        self.save()
    }

    /// Records that statement `index` was skipped: it stays completed, as the last run
    /// recorded it.
    pub fn skipped(&mut self, index: usize) -> Result<()> {
        let step = self
            .previous
            .as_ref()
            .and_then(|p| p.steps.iter().find(|s| s.index == index))
            .cloned();
        if let Some(step) = step {
            self.record.steps.push(step);
        }
        self.save()
    }

    fn save(&self) -> Result<()> {
        if !self.resume && !self.root.exists() {
            return Ok(());
        }
        if let Some(dir) = self.file.parent() {
            create_dir_all(dir)?;
        }
        write_json_atomically(&self.file, &self.record)
    }
}

/// A file name for a script's record: its file name and a hash of its full path.
fn run_name(script: &Path) -> String {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    script.hash(&mut hasher);
    let stem: String = script
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '.' || c == '-' {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("{stem}-{:016x}", hasher.finish())
}

/// What kind of step `text` is, given what it wrote.
fn step_kind(text: &str, effects: &StatementEffects) -> StepKind {
    let wrote = !effects.writes.is_empty();
    match Command::parse(text) {
        Ok(Some(Command::Table(command))) => match command {
            TableCommand::Use { .. } => StepKind::Session,
            // An INSERT or DROP that wrote no warehouse table was about a table of the
            // session (a warehouse table's drop is recorded as a write).
            TableCommand::Insert { .. } | TableCommand::DropTable { .. } if !wrote => {
                StepKind::Session
            }
            TableCommand::Insert {
                overwrite: false, ..
            } => StepKind::Append,
            _ => StepKind::Idempotent,
        },
        Ok(Some(Command::Explain { .. })) => StepKind::Idempotent,
        Ok(Some(_)) => StepKind::Session,
        _ => match first_word(text).as_str() {
            "select" | "with" | "values" | "from" | "copy" | "show" | "describe" | "desc" => {
                StepKind::Idempotent
            }
            _ => StepKind::Session,
        },
    }
}

/// Which statements `--resume` skips; see the module documentation.
fn plan_resume(
    session: &Session,
    previous: &RunRecord,
    statements: &[SqlStatement],
) -> Result<Vec<Step>> {
    // Each table's version as the last run left it (0: dropped), by its last step that
    // read or wrote it.
    let mut left: BTreeMap<&str, u64> = BTreeMap::new();
    for step in &previous.steps {
        for (table, version) in step.reads.iter().chain(&step.writes) {
            left.insert(table.as_str(), *version);
        }
    }
    let mut changed = HashSet::new();
    for (table, version) in &left {
        if session.table_version(table)? != *version {
            changed.insert(table.to_string());
        }
    }
    let mut steps = Vec::with_capacity(statements.len());
    let mut resuming = true;
    for (index, statement) in statements.iter().enumerate() {
        let done = previous
            .steps
            .iter()
            .find(|s| s.index == index && s.text == statement.text);
        let step = match (resuming, done) {
            (_, Some(done)) if done.kind == StepKind::Session => Step::Rerun,
            (false, Some(done)) if done.kind == StepKind::Append => {
                return Err(Error::Table(format!(
                    "cannot resume: the INSERT INTO at line {} completed in the last run, but the run starts again before it (something it or an earlier statement read changed); running it again would append its rows twice. Rewrite it as INSERT OVERWRITE, or run the script without --resume",
                    statement.start.line
                )));
            }
            (false, _) | (true, None) => {
                resuming = false;
                Step::Run
            }
            (true, Some(done)) => {
                let touched: Vec<&String> = done
                    .reads
                    .keys()
                    .chain(done.writes.keys())
                    .filter(|t| changed.contains(*t))
                    .collect();
                match (touched.is_empty(), done.kind) {
                    (true, StepKind::Append) => Step::Skip {
                        reason: "completed in the last run; a plain INSERT INTO is not idempotent, running it again would append its rows twice".into(),
                    },
                    (true, _) => Step::Skip {
                        reason: "completed in the last run, and nothing it read or wrote has changed since".into(),
                    },
                    (false, StepKind::Append) => {
                        return Err(Error::Table(format!(
                            "cannot resume at line {}: the INSERT INTO there completed in the last run, but {} changed since; running it again would append its rows twice and skipping it would miss the change. Rewrite it as INSERT OVERWRITE, or run the script without --resume",
                            statement.start.line,
                            touched.iter().map(|t| format!("`{t}`")).collect::<Vec<_>>().join(", ")
                        )));
                    }
                    (false, _) => {
                        resuming = false;
                        Step::Run
                    }
                }
            }
        };
        steps.push(step);
    }
    Ok(steps)
}

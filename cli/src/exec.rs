//! Running SQL text statement by statement: printing results, reporting errors against the
//! source they came from, cancelling on Ctrl-C.

use std::sync::Arc;
use std::time::Instant;

use datafusion::arrow::array::RecordBatch;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::FutureExt;
use stagesql::sql::{SqlStatement, caret_snippet};
use stagesql::warehouse::resume::{ScriptRun, Step};
use stagesql::{Error, Session, StatementOutput};
use tokio::runtime::Runtime;

use crate::output::{OutputOptions, PrintError, print_completion, print_stream};

/// Where SQL text came from, for error locations: a file path, `<command>`, `<stdin>`, or
/// the prompt (no name: the caret is shown, no location line).
#[derive(Debug, Clone, Copy)]
pub struct Origin<'a> {
    pub name: Option<&'a str>,
    pub text: &'a str,
}

/// How a run of statements ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunStatus {
    /// Every statement succeeded.
    Ok,
    /// `n` statements failed (with `continue_on_error`, possibly more than one).
    Failed(usize),
    /// Ctrl-C: the running statement was cancelled and nothing after it ran.
    Interrupted,
    /// Writing to stdout failed (the reader of a pipe went away): stop quietly.
    OutputClosed,
}

/// The session, the tokio runtime that drives it, and the output settings.
pub struct Executor {
    pub session: Arc<Session>,
    pub runtime: Arc<Runtime>,
    pub output: OutputOptions,
    /// The scheduler pool of this executor's jobs, when it has one of its own (`--concurrent`).
    pub pool: Option<String>,
}

impl Executor {
    /// Runs every statement of `origin.text`. Stops at the first failure unless
    /// `continue_on_error`.
    pub fn run_text(&mut self, origin: Origin<'_>, continue_on_error: bool) -> RunStatus {
        let statements = match origin.name {
            Some(name) => self.session.statements_from(origin.text, name),
            None => self.session.statements(origin.text),
        };
        let statements = match statements {
            Ok(statements) => statements,
            Err(error) => {
                report_error(&error, origin, None);
                return RunStatus::Failed(1);
            }
        };
        let mut failed = 0;
        for statement in &statements {
            match self.run_statement(statement) {
                Ok(()) => {}
                Err(Failure::Interrupted) => return RunStatus::Interrupted,
                Err(Failure::OutputClosed) => return RunStatus::OutputClosed,
                Err(Failure::Error(error)) => {
                    report_error(&error, origin, Some(statement));
                    failed += 1;
                    if !continue_on_error {
                        break;
                    }
                }
            }
        }
        match failed {
            0 => RunStatus::Ok,
            n => RunStatus::Failed(n),
        }
    }

    /// Runs a script file as [`Executor::run_text`] does, recording each completed statement
    /// in the warehouse; with `resume`, skips what the last run completed (see
    /// `stagesql::warehouse::resume`). Returns the status and the skipped statements as
    /// (`file:line`, why).
    pub fn run_script(
        &mut self,
        path: &std::path::Path,
        origin: Origin<'_>,
        continue_on_error: bool,
        resume: bool,
    ) -> (RunStatus, Vec<(String, String)>) {
        let name = origin.name.unwrap_or_default();
        let statements = match self.session.statements_from(origin.text, name) {
            Ok(statements) => statements,
            Err(error) => {
                report_error(&error, origin, None);
                return (RunStatus::Failed(1), Vec::new());
            }
        };
        let begun = ScriptRun::begin(&self.session, path, &statements, resume);
        let (mut run, steps, note) = match begun {
            Ok(begun) => begun,
            Err(error) => {
                report_error(&error, origin, None);
                return (RunStatus::Failed(1), Vec::new());
            }
        };
        if let Some(note) = note {
            eprintln!("note: {note}");
        }
        let mut skipped = Vec::new();
        let mut failed = 0;
        let mut announced = false;
        for (index, (statement, step)) in statements.iter().zip(steps).enumerate() {
            let at = format!("{name}:{}", statement.start.line);
            if let Step::Skip { reason } = &step {
                eprintln!("skipped {at} ({}): {reason}", first_line(&statement.text));
                skipped.push((at, reason.clone()));
                if let Err(error) = run.skipped(index) {
                    report_error(&error, origin, Some(statement));
                    return (RunStatus::Failed(1), skipped);
                }
                continue;
            }
            if step == Step::Run && !announced && !skipped.is_empty() {
                announced = true;
                eprintln!("resuming at {at}");
            }
            self.session.take_effects();
            match self.run_statement(statement) {
                Ok(()) => {
                    let effects = self.session.take_effects();
                    if let Err(error) = run.completed(index, statement, effects) {
                        report_error(&error, origin, Some(statement));
                        return (RunStatus::Failed(failed + 1), skipped);
                    }
                }
                Err(Failure::Interrupted) => return (RunStatus::Interrupted, skipped),
                Err(Failure::OutputClosed) => return (RunStatus::OutputClosed, skipped),
                Err(Failure::Error(error)) => {
                    report_error(&error, origin, Some(statement));
                    failed += 1;
                    if !continue_on_error {
                        break;
                    }
                }
            }
        }
        let status = match failed {
            0 => RunStatus::Ok,
            n => RunStatus::Failed(n),
        };
        (status, skipped)
    }

    /// Prints an in-memory result (from `\d`, `\conf`) in the current format.
    pub fn print_batch(&self, batch: RecordBatch) -> Result<(), Failure> {
        let schema = batch.schema();
        let stream = Box::pin(RecordBatchStreamAdapter::new(
            schema,
            futures::stream::iter([Ok(batch)]),
        ));
        let output = OutputOptions {
            quiet: true,
            ..self.output.clone()
        };
        self.runtime
            .block_on(print_stream(stream, &output, Instant::now()))
            .map_err(Failure::from)
    }

    fn run_statement(&self, statement: &SqlStatement) -> Result<(), Failure> {
        let session = self.session.clone();
        let output = self.output.clone();
        let work = async move {
            let started = Instant::now();
            match session.execute(statement).await.map_err(Failure::Error)? {
                StatementOutput::Rows(stream) => print_stream(stream, &output, started).await?,
                StatementOutput::Done(completion) => {
                    print_completion(&completion, started, &output)
                }
            }
            Ok(())
        };
        // A panic in the engine is a bug, but it must not take the session (or the prompt's
        // unsaved work) down with it: it becomes this statement's error.
        let work = std::panic::AssertUnwindSafe(work).catch_unwind();
        let work = async {
            match self.pool.clone() {
                Some(pool) => Session::with_scheduler_pool(pool, work).await,
                None => work.await,
            }
        };
        self.runtime.block_on(async {
            tokio::select! {
                result = work => result.unwrap_or_else(|panic| Err(Failure::Error(Error::from_panic(panic.as_ref())))),
                _ = tokio::signal::ctrl_c() => Err(Failure::Interrupted),
            }
        })
    }
}

/// A statement on one line, shortened, to name it.
fn first_line(text: &str) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(60) {
        Some((at, _)) => format!("{}…", &line[..at]),
        None => line,
    }
}

/// Why a statement did not complete.
#[derive(Debug)]
pub enum Failure {
    Error(Error),
    Interrupted,
    OutputClosed,
}

impl From<PrintError> for Failure {
    fn from(error: PrintError) -> Self {
        match error {
            PrintError::Query(error) => Failure::Error(error),
            PrintError::Io(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {
                Failure::OutputClosed
            }
            PrintError::Io(e) => Failure::Error(Error::Io {
                action: "cannot write to",
                path: "standard output".into(),
                source: e,
            }),
        }
    }
}

/// Prints `error` to stderr:
///
/// ```text
/// error: Expected: an SQL statement, found: selec
///   --> queries.sql:3:1
/// 3 | selec * from t;
///   | ^
/// ```
///
/// The location line names the file and the line of the problem when the parser or planner
/// knows it, else the line where the failing statement starts.
pub fn report_error(error: &Error, origin: Origin<'_>, statement: Option<&SqlStatement>) {
    let mut text = format!("error: {}", error.message());
    let position = error.position();
    if let Some(name) = origin.name {
        match (position, statement) {
            (Some(p), _) => text.push_str(&format!("\n  --> {name}:{}:{}", p.line, p.column)),
            (None, Some(s)) => text.push_str(&format!(
                "\n  --> {name}:{}:{} (the statement starting here)",
                s.start.line, s.start.column
            )),
            (None, None) => text.push_str(&format!("\n  --> {name}")),
        }
    }
    if let Some(snippet) = position.and_then(|p| caret_snippet(origin.text, p)) {
        text.push('\n');
        text.push_str(&snippet);
    }
    eprintln!("{text}");
}

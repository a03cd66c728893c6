//! sqllogictest: runs `.slt` files against a [`Session`].
//!
//! [`run`] takes files or directories (searched recursively for `*.slt`), gives every file a
//! fresh session, runs its records in order and counts each `statement` and `query` record as
//! passed or failed. Failures are reported as they happen, with file:line, the SQL and expected
//! versus actual output. With `complete: true` the expected results are rewritten in place
//! from what the engine returns instead.
//!
//! Each file also gets a fresh, temporary warehouse (`spark.sql.warehouse.dir`), unless
//! the run or the directory's defaults name one.
//!
//! Relative paths inside a file (`LOCATION 'data/x.csv'`) are resolved against the file's
//! own directory, so a suite runs the same from any working directory. A
//! `stagesql-defaults.conf` in that directory gives its files' sessions their starting
//! settings (above the run's `--conf`, as a `SET` in each file would), for the keys `SET`
//! cannot change. Records guarded by
//! `onlyif stagesql` / `skipif stagesql` see the engine name `stagesql`.

mod driver;

use std::io::Write;
use std::path::{Path, PathBuf};

use sqllogictest::{
    Record, RecordOutput, Runner, default_normalizer, default_validator, strict_column_validator,
};

pub use driver::Driver;

use crate::error::{Error, Result};
use crate::session::SessionOptions;

/// The engine name `onlyif` / `skipif` conditions match.
pub const ENGINE_NAME: &str = "stagesql";

/// Whose conventions a run follows.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Compat {
    /// stagesql's suites: paths relative to each file, a fresh warehouse per file.
    #[default]
    Stagesql,
    /// DataFusion's suites (`datafusion-sqllogictest`), run unchanged as DataFusion's own
    /// runner runs them: paths relative to the working directory (its `datafusion/sqllogictest`
    /// directory), `test_files/scratch/<file>/` emptied before each file, sessions with 4
    /// target partitions, DataFusion's column letters and renderings, errors as
    /// `DataFusion error: …`. EXPLAIN records, which expect DataFusion's plan text, are
    /// counted apart and not run.
    DataFusion,
}

/// How to run a set of `.slt` files.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// Whose suites these are.
    pub compat: Compat,
    /// Rewrite expected results in place instead of checking them.
    pub complete: bool,
    /// Settings every file's session starts with.
    pub session: SessionOptions,
    /// Decimal places of `Float64` cells in [`Compat::DataFusion`] (DataFusion's runner:
    /// 12, 15 for its `spark/` suites); 0 means 12.
    pub float64_digits: usize,
    /// Labels `onlyif` / `skipif` conditions match besides the engine name, e.g. `faults`
    /// for a run with injected task failures.
    pub labels: Vec<String>,
}

/// Counts of a run. `failures` holds one rendered report per failed record.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Summary {
    pub files: usize,
    pub passed: usize,
    pub failed: usize,
    pub skipped: usize,
    /// EXPLAIN records not run ([`Compat::DataFusion`]): they expect DataFusion's plans.
    pub explain: usize,
    /// Files found in directories and not run, as DataFusion's runner does not run them
    /// by default ([`Compat::DataFusion`]: `tpch/`, which needs generated data).
    pub files_not_run: usize,
    pub failures: Vec<String>,
}

impl Summary {
    /// `N passed, N failed` (and skipped, when any were).
    pub fn line(&self) -> String {
        let mut line = format!("{} passed, {} failed", self.passed, self.failed);
        if self.skipped > 0 {
            line.push_str(&format!(", {} skipped", self.skipped));
        }
        if self.explain > 0 {
            line.push_str(&format!(
                ", {} EXPLAIN records not compared (DataFusion's plan text)",
                self.explain
            ));
        }
        if self.files_not_run > 0 {
            line.push_str(&format!(
                ", {} files under tpch/ not run (as DataFusion's runner; INCLUDE_TPCH=true runs them)",
                self.files_not_run
            ));
        }
        line
    }
}

/// Whether `INCLUDE_TPCH` asks for DataFusion's `tpch/` files, as its runner reads it.
fn include_tpch() -> bool {
    std::env::var("INCLUDE_TPCH")
        .is_ok_and(|v| matches!(v.trim().to_ascii_lowercase().as_str(), "1" | "true" | "yes"))
}

/// Every `.slt` file named by `paths` (directories searched recursively), sorted.
pub fn collect_files(paths: &[PathBuf]) -> Result<Vec<PathBuf>> {
    let mut files = Vec::new();
    for path in paths {
        let metadata = std::fs::metadata(path).map_err(|e| Error::io("cannot read", path, e))?;
        if metadata.is_dir() {
            collect_dir(path, &mut files)?;
        } else {
            files.push(path.clone());
        }
    }
    files.sort();
    files.dedup();
    Ok(files)
}

fn collect_dir(dir: &Path, files: &mut Vec<PathBuf>) -> Result<()> {
    let entries = std::fs::read_dir(dir).map_err(|e| Error::io("cannot read directory", dir, e))?;
    for entry in entries {
        let path = entry
            .map_err(|e| Error::io("cannot read directory", dir, e))?
            .path();
        if path.is_dir() {
            collect_dir(&path, files)?;
        } else if path.extension().is_some_and(|ext| ext == "slt") {
            files.push(path);
        }
    }
    Ok(())
}

/// Runs (or completes) every file under `paths`, writing progress and failure reports to
/// `out`. Returns the counts; the caller decides the exit code.
pub async fn run(paths: &[PathBuf], options: &RunOptions, out: &mut dyn Write) -> Result<Summary> {
    let mut summary = Summary::default();
    let mut files = collect_files(paths)?;
    if options.compat == Compat::DataFusion && !include_tpch() {
        // DataFusion's runner leaves its `tpch/` files out unless asked (they read data
        // generated with dbgen); a file named on the command line still runs.
        let named: Vec<&PathBuf> = paths.iter().filter(|p| p.is_file()).collect();
        let before = files.len();
        files.retain(|file| {
            named.contains(&file)
                || !file
                    .components()
                    .any(|c| c.as_os_str() == std::ffi::OsStr::new("tpch"))
        });
        summary.files_not_run = before - files.len();
    }
    let files = files
        .into_iter()
        .map(|file| std::path::absolute(&file).map_err(|e| Error::io("cannot resolve", file, e)))
        .collect::<Result<Vec<_>>>()?;
    let original_dir = std::env::current_dir().map_err(|e| Error::io("cannot read", ".", e))?;
    for file in &files {
        summary.files += 1;
        let dir = file.parent().unwrap_or(Path::new("/"));
        let mut options = match options.compat {
            Compat::Stagesql => {
                std::env::set_current_dir(dir).map_err(|e| Error::io("cannot enter", dir, e))?;
                with_directory_defaults(options, dir)?
            }
            Compat::DataFusion => datafusion_setup(options, file)?,
        };
        // Each file gets a warehouse of its own, as it gets a session of its own: tables a
        // file creates are gone when it ends, and the same file runs again from scratch.
        let warehouse =
            tempfile::tempdir().map_err(|e| Error::io("create", std::env::temp_dir(), e))?;
        options.session.startup.insert(
            0,
            (
                crate::config::keys::WAREHOUSE_DIR.to_string(),
                warehouse.path().display().to_string(),
                crate::config::Source::CommandLine {
                    flag: "sqllogictest".into(),
                },
            ),
        );
        let outcome = match options.complete {
            true => complete_file(file, &options, out).await,
            false => run_file(file, &options, &mut summary, out).await,
        };
        std::env::set_current_dir(&original_dir)
            .map_err(|e| Error::io("cannot enter", &original_dir, e))?;
        outcome?;
    }
    Ok(summary)
}

/// What DataFusion's runner does before a file: its scratch directory
/// (`test_files/scratch/<file stem>/`, under the working directory) emptied, and a session
/// with 4 target partitions (the run's `--conf` ranks above). The files of its `spark/`
/// directory get Spark's functions and SQL dialect, and floats rounded to 15 places.
fn datafusion_setup(options: &RunOptions, file: &Path) -> Result<RunOptions> {
    let stem = file.file_stem().unwrap_or_default();
    let scratch = Path::new("test_files").join("scratch").join(stem);
    if scratch.exists() {
        std::fs::remove_dir_all(&scratch).map_err(|e| Error::io("empty", &scratch, e))?;
    }
    std::fs::create_dir_all(&scratch).map_err(|e| Error::io("create", &scratch, e))?;
    let mut options = options.clone();
    let source = crate::config::Source::CommandLine {
        flag: "sqllogictest --compat datafusion".into(),
    };
    let mut setup = vec![("datafusion.execution.target_partitions", "4")];
    let spark = file
        .components()
        .any(|c| c.as_os_str() == std::ffi::OsStr::new("spark"));
    if spark {
        setup.push((crate::config::keys::SPARK_FUNCTIONS, "true"));
        setup.push(("datafusion.sql_parser.dialect", "Spark"));
        options.float64_digits = 15;
    }
    for (i, (key, value)) in setup.into_iter().enumerate() {
        options
            .session
            .startup
            .insert(i, (key.to_string(), value.to_string(), source.clone()));
    }
    Ok(options)
}

/// `options` with the settings of a `stagesql-defaults.conf` in the file's directory (the
/// working directory while the file runs): what a suite needs that `SET` cannot change
/// (executor cores, memory) is set there. They rank above the run's own settings, as a
/// `SET` at the top of each file would.
fn with_directory_defaults(options: &RunOptions, dir: &Path) -> Result<RunOptions> {
    let mut options = options.clone();
    let defaults = dir.join(crate::config::file::DEFAULTS_FILE);
    if defaults.is_file() {
        let run: Vec<_> = options
            .session
            .settings
            .drain(..)
            .map(|(key, value)| (key, value, crate::config::Source::conf_flag()))
            .collect();
        options.session.startup.extend(run);
        options
            .session
            .startup
            .extend(crate::config::file::read_properties(&defaults)?);
    }
    Ok(options)
}

fn runner(
    options: &RunOptions,
) -> Runner<Driver, impl sqllogictest::MakeConnection<Conn = Driver>> {
    let session_options = options.session.clone();
    let compat = options.compat;
    let digits = match options.float64_digits {
        0 => 12,
        digits => digits,
    };
    let mut runner = Runner::new(move || {
        let session_options = session_options.clone();
        async move { Driver::with_float_digits(session_options, compat, digits) }
    });
    if compat == Compat::DataFusion {
        // As DataFusion's runner: column letters must match, trailing spaces do not count.
        runner.with_column_validator(strict_column_validator);
        runner.with_normalizer(|value: &String| value.trim_end().to_string());
        runner.with_validator(datafusion_validator);
    }
    runner.add_label(ENGINE_NAME);
    for label in &options.labels {
        runner.add_label(label);
    }
    runner
}

/// Rows as DataFusion's runner compares them: each row's cells joined by a space, and only
/// the row's end trimmed (a cell's trailing spaces count inside a row, as `rpad` gives them).
/// `<slt:ignore>` in the expected text matches anything, as there.
fn datafusion_validator(
    normalizer: sqllogictest::Normalizer,
    actual: &[Vec<String>],
    expected: &[String],
) -> bool {
    const IGNORE_MARKER: &str = "<slt:ignore>";
    let expected: Vec<String> = expected.iter().map(normalizer).collect();
    let actual: Vec<String> = actual
        .iter()
        .map(|row| row.join(" ").trim_end().to_string())
        .collect();
    if !expected.iter().any(|line| line.contains(IGNORE_MARKER)) {
        return actual == expected;
    }
    let (expected, actual) = (expected.join("\n"), actual.join("\n"));
    let mut at = 0;
    for (i, fragment) in expected.split(IGNORE_MARKER).enumerate() {
        if fragment.is_empty() {
            continue;
        }
        match actual[at..].find(fragment) {
            // The text before the first marker is the start of the output.
            Some(found) if i > 0 || found == 0 => at += found + fragment.len(),
            _ => return false,
        }
    }
    true
}

async fn run_file(
    file: &Path,
    options: &RunOptions,
    summary: &mut Summary,
    out: &mut dyn Write,
) -> Result<()> {
    let records = match sqllogictest::parse_file(file) {
        Ok(records) => records,
        Err(error) => {
            summary.failed += 1;
            let report = format!("{}: cannot parse: {error}", file.display());
            let _ = writeln!(out, "{report}");
            summary.failures.push(report);
            return Ok(());
        }
    };
    let mut runner = runner(options);
    for record in records {
        if options.compat == Compat::DataFusion && is_explain(&record) {
            summary.explain += 1;
            continue;
        }
        let counted = match &record {
            Record::Halt { .. } => break,
            Record::Statement { .. } | Record::Query { .. } | Record::System { .. } => true,
            _ => false,
        };
        match runner.run_async(record).await {
            Ok(RecordOutput::Nothing) if counted => summary.skipped += 1,
            Ok(_) if counted => summary.passed += 1,
            Ok(_) => {}
            Err(error) => {
                summary.failed += 1;
                let report = format!("{}\n", error.display(false));
                let _ = writeln!(out, "{report}");
                summary.failures.push(report);
            }
        }
    }
    runner.shutdown_async().await;
    Ok(())
}

/// Whether a record runs EXPLAIN (whose expected text is DataFusion's plan).
fn is_explain<T: sqllogictest::ColumnType>(record: &Record<T>) -> bool {
    let sql = match record {
        Record::Statement { sql, .. } | Record::Query { sql, .. } => sql,
        _ => return false,
    };
    sql.trim_start()
        .get(..7)
        .is_some_and(|word| word.eq_ignore_ascii_case("explain"))
}

async fn complete_file(file: &Path, options: &RunOptions, out: &mut dyn Write) -> Result<()> {
    let mut runner = runner(options);
    runner
        .update_test_file(
            file,
            " ",
            default_validator,
            default_normalizer,
            // Strict, so completion writes the real column types over placeholders like `?`.
            strict_column_validator,
        )
        .await
        .map_err(|e| Error::Slt(format!("cannot complete {}: {e}", file.display())))?;
    let _ = writeln!(out, "completed {}", file.display());
    Ok(())
}

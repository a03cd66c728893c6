//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};

/// Command-line arguments of `stagesql`.
#[derive(Debug, Parser)]
#[command(
    name = "stagesql",
    version,
    about = "SQL on Apache DataFusion, run and explained the way Apache Spark runs it.\n\n\
             Without -f, -c or piped input, starts an interactive prompt (\\? there lists its commands).",
    after_help = "Examples:\n  \
                  stagesql --tpch 0.1                      prompt with the TPC-H tables\n  \
                  stagesql -f setup.sql queries.sql        run scripts\n  \
                  stagesql -c 'select 1' --format json     run statements\n  \
                  stagesql test sql-tests/                 run sqllogictest files\n  \
                  stagesql report stagesql-events/ -o r.html   draw event logs as one HTML page",
    args_conflicts_with_subcommands = true
)]
pub struct Args {
    #[command(subcommand)]
    pub command: Option<Command>,

    /// Run the SQL in these files, in order, then exit. Stops at the first failing statement
    /// with exit code 1 unless --continue-on-error is given.
    #[arg(short = 'f', long = "file", value_name = "FILE", num_args = 1..)]
    pub files: Vec<PathBuf>,

    /// Run these `;`-separated statements, then exit (may be repeated; runs after -f files).
    #[arg(short = 'c', long = "command", value_name = "SQL")]
    pub commands: Vec<String>,

    /// Generate (once) and register the eight TPC-H tables at this scale factor, e.g. 0.1.
    #[arg(long, value_name = "SCALE_FACTOR")]
    pub tpch: Option<String>,

    /// Directory that caches generated TPC-H data
    /// [default: $STAGESQL_TPCH_DIR, else <user cache dir>/stagesql/tpch].
    #[arg(long, value_name = "DIR")]
    pub tpch_dir: Option<PathBuf>,

    /// Output format of query results.
    #[arg(long, value_enum, default_value_t = Format::Table)]
    pub format: Format,

    /// Rows shown per result in table and markdown formats; 0 shows all. The footer says how
    /// many were not shown. [default: 40 at the prompt, all for -f, -c and piped input]
    #[arg(long, value_name = "N")]
    pub maxrows: Option<usize>,

    /// Print only results: no banner, row-count/timing footers or statement tags.
    #[arg(short, long)]
    pub quiet: bool,

    /// In -f, -c and piped input, report a failing statement and go on with the next one
    /// (the exit code is still 1 if any statement failed). [default: stop at the first error]
    #[arg(long)]
    pub continue_on_error: bool,

    /// After the -f files and -c commands, print one row per job they ran: statement
    /// (file:line), job, stages, tasks, time, rows read, rows returned or written, cache hits, and the
    /// stages that computed again what an earlier job had.
    #[arg(long)]
    pub summary: bool,

    /// Skip the statements of each -f file that its last run completed, as recorded in the
    /// warehouse (spark.sql.warehouse.dir), when nothing they read or wrote changed since;
    /// start at the one that failed. Each skipped statement is named on stderr, with why.
    #[arg(long)]
    pub resume: bool,

    /// Write the report of the run (its jobs, stages and tasks; docs/report.md) to this HTML
    /// file when the -f files, -c commands or the prompt end.
    #[arg(long, value_name = "FILE")]
    pub report: Option<PathBuf>,

    /// Run the -f files (and -c commands) side by side on one session, each in order, each
    /// in a scheduler pool named after it (see spark.scheduler.mode). [default: one after
    /// the other]
    #[arg(long)]
    pub concurrent: bool,

    /// Run locally on N slots (tasks at once): `local[N]`, or `local[*]` for all cores.
    /// Sets spark.executor.instances=1 and spark.executor.cores=N. [default: local[*]]
    #[arg(long, value_name = "MASTER", value_parser = parse_master)]
    pub master: Option<usize>,

    /// Executors: sets spark.executor.instances.
    #[arg(long, value_name = "N")]
    pub num_executors: Option<String>,

    /// Slots (tasks at once) per executor: sets spark.executor.cores.
    #[arg(long, value_name = "N")]
    pub executor_cores: Option<String>,

    /// Memory per executor, e.g. 2g: sets spark.executor.memory.
    #[arg(long, value_name = "SIZE")]
    pub executor_memory: Option<String>,

    /// Memory of the driver, e.g. 1g: sets spark.driver.memory.
    #[arg(long, value_name = "SIZE")]
    pub driver_memory: Option<String>,

    /// Set a configuration key at startup, e.g. --conf spark.sql.shuffle.partitions=8
    /// (repeatable; `SET -v` lists every key and where its value came from).
    #[arg(long = "conf", value_name = "KEY=VALUE", value_parser = parse_key_value)]
    pub conf: Vec<(String, String)>,

    /// Start from the settings in this file (Spark's format: `key value` or `key=value` per
    /// line, `#` comments), ranked below --conf and the flags above.
    /// [default: ./stagesql-defaults.conf, else <user config dir>/stagesql/stagesql-defaults.conf]
    #[arg(long, value_name = "FILE")]
    pub properties_file: Option<PathBuf>,

    /// History file of the interactive prompt [default: ~/.stagesql_history].
    #[arg(long, value_name = "FILE")]
    pub history_file: Option<PathBuf>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run sqllogictest (.slt) files or directories (searched recursively).
    ///
    /// Prints every failure with file:line, the SQL, and expected versus actual output, then
    /// `N passed, N failed`. Exits with 1 if anything failed.
    Test {
        /// .slt files or directories.
        #[arg(required = true, value_name = "PATH")]
        paths: Vec<PathBuf>,

        /// Rewrite the expected results in the files from what the engine returns.
        #[arg(long)]
        complete: bool,

        /// Set a configuration key in every file's session (repeatable).
        #[arg(long = "conf", value_name = "KEY=VALUE", value_parser = parse_key_value)]
        conf: Vec<(String, String)>,

        /// Run suites written for another engine's runner unchanged: `datafusion` for
        /// DataFusion's own sqllogictest files (run from the directory that holds their
        /// `test_files/`, as DataFusion's runner is).
        #[arg(long, value_enum, value_name = "ENGINE")]
        compat: Option<CompatArg>,
    },
    /// Draw event logs (spark.eventLog.enabled) as one self-contained HTML page: the jobs on
    /// a timeline, each job's stages, each stage's tasks on the slots they ran in, task
    /// histograms, adaptive decisions and advisories.
    Report {
        /// Event log files, or directories of them (every *.jsonl in it).
        #[arg(required = true, value_name = "EVENTLOG")]
        logs: Vec<PathBuf>,

        /// Where to write the page.
        #[arg(short, long, value_name = "FILE", default_value = "report.html")]
        output: PathBuf,
    },
}

/// `stagesql test --compat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum CompatArg {
    /// DataFusion's runner (`datafusion-sqllogictest`).
    Datafusion,
}

/// How query results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Format {
    /// Boxed table for people.
    Table,
    /// Comma-separated values with a header row.
    Csv,
    /// Tab-separated values with a header row.
    Tsv,
    /// One JSON array of row objects per result.
    Json,
    /// One JSON object per row per line.
    Ndjson,
    /// A GitHub-flavoured Markdown table.
    Markdown,
}

impl Format {
    /// Formats a person reads, whose footers go to stdout; machine formats keep stdout clean
    /// and send footers to stderr.
    pub fn is_for_people(self) -> bool {
        matches!(self, Format::Table | Format::Markdown)
    }
}

fn parse_key_value(text: &str) -> Result<(String, String), String> {
    match text.split_once('=') {
        Some((key, value)) if !key.trim().is_empty() => {
            Ok((key.trim().to_string(), value.trim().to_string()))
        }
        _ => Err(format!("expected KEY=VALUE, got '{text}'")),
    }
}

/// `local[N]` → N slots; `local[*]` and `local` → 0 (all cores).
fn parse_master(text: &str) -> Result<usize, String> {
    let inner = match text.trim() {
        "local" => return Ok(0),
        other => other
            .strip_prefix("local[")
            .and_then(|rest| rest.strip_suffix(']')),
    };
    match inner {
        Some("*") => Ok(0),
        Some(n) => match n.parse::<usize>() {
            Ok(n) if n > 0 => Ok(n),
            _ => Err(format!(
                "expected local[N] with N ≥ 1, or local[*]; got '{text}'"
            )),
        },
        None => Err(format!(
            "expected local[N] or local[*]; got '{text}' (cluster masters such as df://host:port are not supported yet)"
        )),
    }
}

//! Command-line arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand, ValueEnum};
use stagesql::config::master::{DEFAULT_SCHEDULER_PORT, Master};

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

    /// Where jobs run: `local[N]` on N slots (tasks at once) in this process, `local[*]` on all
    /// cores (sets spark.executor.instances=1 and spark.executor.cores=N), or `df://host:port`
    /// on an Apache DataFusion Ballista cluster (docs/cluster.md). Sets spark.master.
    /// [default: local[*]]
    #[arg(long, value_name = "MASTER", value_parser = parse_master)]
    pub master: Option<Master>,

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
    /// Start a node of an Apache DataFusion Ballista 55 cluster from this binary: a scheduler,
    /// or an executor that registers with one. Queries reach it with --master df://host:port.
    Cluster {
        #[command(subcommand)]
        role: ClusterRole,
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

/// `stagesql cluster …`.
#[derive(Debug, Subcommand)]
pub enum ClusterRole {
    /// Run a Ballista scheduler: clients (--master df://HOST:PORT) and executors connect to its
    /// port, which also serves its REST API under /api. Stops on Ctrl-C or SIGTERM.
    Scheduler {
        /// Address to listen on; 0.0.0.0 to accept executors and clients of other machines.
        #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
        bind: String,
        /// Port of its gRPC service and REST API.
        #[arg(long, default_value_t = DEFAULT_SCHEDULER_PORT, value_name = "N")]
        port: u16,
        /// Host name executors and clients reach it by, when not --bind.
        #[arg(long, value_name = "HOST")]
        external_host: Option<String>,
        /// Seconds without an executor's heartbeat before it counts as lost and its tasks run
        /// elsewhere.
        #[arg(long, default_value_t = 60, value_name = "SECONDS")]
        executor_timeout: u64,
        /// Attempts of a task before its job fails (Spark's spark.task.maxFailures).
        #[arg(long, default_value_t = 4, value_name = "N")]
        task_max_failures: usize,
        /// Attempts of a stage whose input was lost before its job fails
        /// (spark.stage.maxConsecutiveAttempts).
        #[arg(long, default_value_t = 4, value_name = "N")]
        stage_max_failures: usize,
        /// How executors get their tasks: pull (they ask when a slot is free) or push (the
        /// scheduler sends them); its executors need the same.
        #[arg(long, value_enum, default_value_t = SchedulingArg::Pull)]
        scheduling: SchedulingArg,
    },
    /// Run a Ballista executor: it registers with the scheduler, runs the tasks it is given
    /// and serves their shuffle output. Stops on Ctrl-C or SIGTERM.
    Executor {
        /// The scheduler's HOST:PORT.
        #[arg(long, default_value = "127.0.0.1:50050", value_name = "HOST:PORT")]
        scheduler: String,
        /// Address to listen on; 0.0.0.0 to serve other machines.
        #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
        bind: String,
        /// Port of its Arrow Flight service (shuffle and result fetches).
        #[arg(long, default_value_t = 50051, value_name = "N")]
        port: u16,
        /// Port of its gRPC service.
        #[arg(long, default_value_t = 50052, value_name = "N")]
        grpc_port: u16,
        /// Host name the scheduler, other executors and clients reach it by, when not --bind.
        #[arg(long, value_name = "HOST")]
        external_host: Option<String>,
        /// Task slots; 0 means all cores of this machine.
        #[arg(long, default_value_t = 0, value_name = "N")]
        cores: usize,
        /// Memory for the tasks' operators, e.g. 4g, split among the slots (operators spill
        /// beyond their share). [default: Ballista's share of this machine's memory]
        #[arg(long, value_name = "SIZE")]
        memory: Option<String>,
        /// Directory of its shuffle files. [default: a new temporary directory, removed at exit]
        #[arg(long, value_name = "DIR")]
        work_dir: Option<PathBuf>,
        /// Seconds between its heartbeats to the scheduler; keep it well below the
        /// scheduler's --executor-timeout.
        #[arg(long, default_value_t = 5, value_name = "SECONDS")]
        heartbeat_interval: u64,
        /// How it gets its tasks: as its scheduler's --scheduling, which it asks the scheduler
        /// for; given, it must match. [default: the scheduler's]
        #[arg(long, value_enum)]
        scheduling: Option<SchedulingArg>,
    },
}

/// `--scheduling`: how a cluster's executors get their tasks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum SchedulingArg {
    /// Executors ask for tasks when a slot is free.
    Pull,
    /// The scheduler sends tasks to the slots it counts free.
    Push,
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

/// `local[N]`, `local[*]`, `local` or `df://host:port`.
fn parse_master(text: &str) -> Result<Master, String> {
    Master::parse(text).map_err(|e| e.to_string())
}

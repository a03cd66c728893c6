//! The `stagesql` binary: argument parsing, terminal I/O and output formatting. Everything
//! else lives in the `stagesql` library.

mod args;
#[cfg(feature = "cluster")]
mod cluster;
mod exec;
mod meta;
mod output;
mod progress;
mod repl;
mod summary;

use std::io::{IsTerminal, Read};
use std::process::ExitCode;
use std::sync::Arc;

use clap::Parser;
use stagesql::config::file::{find_properties_file, read_properties};
use stagesql::config::master::Master;
use stagesql::config::{Source, keys};
use stagesql::{Session, SessionOptions, slt, tpch};

use crate::args::{Args, Command};
use crate::exec::{Executor, Origin, RunStatus};
use crate::output::OutputOptions;

/// Exit code after Ctrl-C, as shells report SIGINT.
const EXIT_INTERRUPTED: u8 = 130;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    stagesql::executor::limit_allocator_arenas();
    // SAFETY: mi_collect only returns the pages mimalloc holds free to the system.
    stagesql::executor::set_freed_memory_release(|| unsafe { libmimalloc_sys::mi_collect(true) });
    // Panics are caught per statement and reported as internal errors; the default hook's
    // backtrace noise would only bury that message.
    std::panic::set_hook(Box::new(|info| {
        if std::env::var_os("RUST_BACKTRACE").is_some() {
            eprintln!("{info}\n{}", std::backtrace::Backtrace::force_capture());
        }
    }));
    let args = Args::parse();
    if args.resume && (args.files.is_empty() || args.concurrent) {
        use clap::CommandFactory;
        Args::command()
            .error(
                clap::error::ErrorKind::ArgumentConflict,
                "--resume resumes -f script files run one after the other (not -c, standard input, the prompt or --concurrent)",
            )
            .exit();
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Some(Command::Test {
        paths,
        complete,
        conf,
        compat,
    }) = &args.command
    {
        let compat = match compat {
            Some(args::CompatArg::Datafusion) => slt::Compat::DataFusion,
            None => slt::Compat::Stagesql,
        };
        return run_tests(runtime, paths, *complete, conf, compat);
    }
    if let Some(Command::Cluster { role }) = &args.command {
        #[cfg(feature = "cluster")]
        return cluster::run(runtime, role);
        #[cfg(not(feature = "cluster"))]
        {
            let _ = (runtime, role);
            eprintln!(
                "error: this stagesql was built without cluster mode (cargo feature `cluster`)"
            );
            return ExitCode::FAILURE;
        }
    }
    if let Some(Command::Report { logs, output }) = &args.command {
        return match write_report(logs, output) {
            Ok(()) => ExitCode::SUCCESS,
            Err(message) => {
                eprintln!("error: {message}");
                ExitCode::FAILURE
            }
        };
    }
    match start(args, runtime) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// The settings a session starts with, lowest precedence first: the properties file, then
/// `--conf`, then the flags that name a setting (as `spark-submit` ranks them).
fn startup_settings(args: &Args) -> Result<Vec<(String, String, Source)>, String> {
    let mut settings = Vec::new();
    if let Some(file) =
        find_properties_file(args.properties_file.as_deref()).map_err(|e| e.message())?
    {
        settings.extend(read_properties(&file).map_err(|e| e.message())?);
    }
    settings.extend(
        args.conf
            .iter()
            .map(|(key, value)| (key.clone(), value.clone(), Source::conf_flag())),
    );
    let flag = |flag: &str| Source::CommandLine { flag: flag.into() };
    if let Some(master) = &args.master {
        settings.push((keys::MASTER.into(), master.to_string(), flag("--master")));
        if let Master::Local { slots } = master {
            settings.push((
                keys::EXECUTOR_INSTANCES.into(),
                "1".into(),
                flag("--master"),
            ));
            settings.push((
                keys::EXECUTOR_CORES.into(),
                slots.unwrap_or(0).to_string(),
                flag("--master"),
            ));
        }
    }
    for (value, key, name) in [
        (
            &args.num_executors,
            keys::EXECUTOR_INSTANCES,
            "--num-executors",
        ),
        (
            &args.executor_cores,
            keys::EXECUTOR_CORES,
            "--executor-cores",
        ),
        (
            &args.executor_memory,
            keys::EXECUTOR_MEMORY,
            "--executor-memory",
        ),
        (&args.driver_memory, keys::DRIVER_MEMORY, "--driver-memory"),
    ] {
        if let Some(value) = value {
            settings.push((key.to_string(), value.clone(), flag(name)));
        }
    }
    Ok(settings)
}

fn start(args: Args, runtime: tokio::runtime::Runtime) -> Result<ExitCode, String> {
    let session = Session::with_options(SessionOptions {
        startup: startup_settings(&args)?,
        tpch_dir: args.tpch_dir.clone(),
        ..SessionOptions::default()
    })
    .map_err(|e| e.message())?;
    for warning in session.take_warnings() {
        eprintln!("warning: {warning}");
    }
    if !args.quiet
        && let Some(master) = cluster_master(&session)
    {
        eprintln!("cluster mode: queries run on the Ballista cluster at {master}");
    }
    let session = Arc::new(session);
    if std::io::stderr().is_terminal() && !args.quiet {
        session.add_listener(Arc::new(progress::ProgressBars::from_env()?));
    }
    if let Some(scale_factor) = &args.tpch {
        load_tpch(&session, &runtime, scale_factor, args.quiet).map_err(|e| e.message())?;
    }

    let interactive =
        args.files.is_empty() && args.commands.is_empty() && std::io::stdin().is_terminal();
    let output = OutputOptions {
        format: args.format,
        maxrows: args.maxrows.unwrap_or(if interactive { 40 } else { 0 }),
        quiet: args.quiet,
        timing: true,
    };
    let recording = args.report.as_ref().map(|_| session.record_events());
    let mut executor = Executor {
        session,
        runtime: Arc::new(runtime),
        output,
        pool: None,
    };
    if interactive {
        repl::run(&mut executor, args.history_file.clone())
            .map_err(|e| format!("terminal: {e}"))?;
        finish_report(&executor.session, recording, args.report.as_deref())?;
        return Ok(ExitCode::SUCCESS);
    }

    let mut sources: Vec<(String, String)> = Vec::new();
    for file in &args.files {
        let text = std::fs::read_to_string(file)
            .map_err(|e| format!("cannot read '{}': {e}", file.display()))?;
        sources.push((file.display().to_string(), text));
    }
    for (index, command) in args.commands.iter().enumerate() {
        let name = match args.commands.len() {
            1 => "<command>".to_string(),
            _ => format!("<command {}>", index + 1),
        };
        sources.push((name, command.clone()));
    }
    if args.files.is_empty() && args.commands.is_empty() {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        sources.push(("<stdin>".to_string(), text));
    }

    let first_job = executor.session.jobs().len();
    let (code, skipped) = run_sources(&executor, &args, sources);
    // What the run's jobs did, and what they computed more than once.
    let jobs: Vec<_> = executor.session.jobs().split_off(first_job);
    if args.summary
        && let Err(error) =
            executor.print_batch(summary::jobs_table(&executor.session, &jobs, &skipped))
    {
        eprintln!("error: cannot print the summary: {error:?}");
    }
    if !args.quiet
        && let Some(line) = summary::recomputation_line(&executor.session, &jobs)
    {
        eprintln!("{line}");
    }
    finish_report(&executor.session, recording, args.report.as_deref())?;
    Ok(code)
}

/// `--report FILE`: stops recording the session's events and writes their report.
fn finish_report(
    session: &Session,
    recording: Option<Arc<stagesql::eventlog::EventLog>>,
    path: Option<&std::path::Path>,
) -> Result<(), String> {
    let (Some(recording), Some(path)) = (recording, path) else {
        return Ok(());
    };
    session.stop_recording(&recording);
    let html = stagesql::report::render_events("this run", &recording.events());
    stagesql::report::write(path, &html).map_err(|e| format!("cannot write the report: {e}"))?;
    eprintln!("report written to {}", path.display());
    Ok(())
}

/// `stagesql report EVENTLOG… -o FILE`.
fn write_report(logs: &[std::path::PathBuf], output: &std::path::Path) -> Result<(), String> {
    let runs = stagesql::report::read_runs(logs)?;
    let jobs: usize = runs.iter().map(|run| run.jobs.len()).sum();
    stagesql::report::write(output, &stagesql::report::render(&runs))?;
    println!("{}: {} run(s), {jobs} job(s)", output.display(), runs.len());
    Ok(())
}

/// Runs every source, one after the other (or side by side with --concurrent). Returns the
/// exit code and the statements `--resume` skipped.
fn run_sources(
    executor: &Executor,
    args: &Args,
    sources: Vec<(String, String)>,
) -> (ExitCode, Vec<(String, String)>) {
    let mut executor = Executor {
        session: executor.session.clone(),
        runtime: executor.runtime.clone(),
        output: executor.output.clone(),
        pool: None,
    };
    if args.concurrent && sources.len() > 1 {
        return (
            run_concurrently(&executor, sources, args.continue_on_error),
            Vec::new(),
        );
    }
    let mut failed = false;
    let mut skipped = Vec::new();
    for (index, (name, text)) in sources.iter().enumerate() {
        let origin = Origin {
            name: Some(name),
            text,
        };
        // The -f files come first; each run of a file is recorded for --resume.
        let status = match args.files.get(index) {
            Some(path) => {
                let (status, skips) =
                    executor.run_script(path, origin, args.continue_on_error, args.resume);
                skipped.extend(skips);
                status
            }
            None => executor.run_text(origin, args.continue_on_error),
        };
        match status {
            RunStatus::Ok => {}
            RunStatus::Failed(_) => {
                failed = true;
                if !args.continue_on_error {
                    break;
                }
            }
            RunStatus::Interrupted => {
                eprintln!("cancelled");
                return (ExitCode::from(EXIT_INTERRUPTED), skipped);
            }
            RunStatus::OutputClosed => return (ExitCode::SUCCESS, skipped),
        }
    }
    let code = match failed {
        true => ExitCode::FAILURE,
        false => ExitCode::SUCCESS,
    };
    (code, skipped)
}

/// `--concurrent`: each source on a thread of its own, its statements in order, its jobs in
/// a scheduler pool named after it; the session, its executors and block store are shared.
fn run_concurrently(
    executor: &Executor,
    sources: Vec<(String, String)>,
    continue_on_error: bool,
) -> ExitCode {
    let statuses: Vec<RunStatus> = std::thread::scope(|scope| {
        let runs: Vec<_> = sources
            .iter()
            .map(|(name, text)| {
                let mut own = Executor {
                    session: executor.session.clone(),
                    runtime: executor.runtime.clone(),
                    output: executor.output.clone(),
                    pool: Some(name.clone()),
                };
                scope.spawn(move || {
                    let origin = Origin {
                        name: Some(name),
                        text,
                    };
                    own.run_text(origin, continue_on_error)
                })
            })
            .collect();
        runs.into_iter()
            .map(|run| run.join().unwrap_or(RunStatus::Failed(1)))
            .collect()
    });
    if statuses.contains(&RunStatus::Interrupted) {
        eprintln!("cancelled");
        return ExitCode::from(EXIT_INTERRUPTED);
    }
    match statuses.iter().any(|s| matches!(s, RunStatus::Failed(_))) {
        true => ExitCode::FAILURE,
        false => ExitCode::SUCCESS,
    }
}

fn load_tpch(
    session: &Session,
    runtime: &tokio::runtime::Runtime,
    scale_factor: &str,
    quiet: bool,
) -> stagesql::Result<()> {
    let scale_factor = tpch::parse_scale_factor(scale_factor)?;
    let started = std::time::Instant::now();
    let dir = runtime.block_on(session.load_tpch(scale_factor))?;
    if !quiet {
        eprintln!(
            "TPC-H scale factor {scale_factor}: 8 tables from {} ({:.1} s)",
            dir.display(),
            started.elapsed().as_secs_f64()
        );
        if let Some(master) = cluster_master(session) {
            eprintln!(
                "  the executors of {master} read these Parquet files at that path: executors on other machines need it there too (shared storage, or --tpch-dir on one)"
            );
        }
    }
    Ok(())
}

/// The cluster of a session in cluster mode, as `df://host:port`.
fn cluster_master(session: &Session) -> Option<String> {
    #[cfg(feature = "cluster")]
    return session.cluster().map(|c| c.address().to_string());
    #[cfg(not(feature = "cluster"))]
    {
        let _ = session;
        None
    }
}

fn run_tests(
    runtime: tokio::runtime::Runtime,
    paths: &[std::path::PathBuf],
    complete: bool,
    conf: &[(String, String)],
    compat: slt::Compat,
) -> ExitCode {
    let options = slt::RunOptions {
        compat,
        complete,
        float64_digits: 0,
        session: SessionOptions {
            settings: conf.to_vec(),
            ..SessionOptions::default()
        },
        // Records that show injected failures themselves say `skipif faults`; records that
        // show stages, `skipif pipelined`.
        labels: [
            conf.iter()
                .any(|(key, value)| key == "stagesql.test.fault_seed" && !value.trim().is_empty())
                .then_some("faults"),
            conf.iter()
                .any(|(key, value)| {
                    key == keys::EXECUTION_MODE && value.trim().eq_ignore_ascii_case("pipelined")
                })
                .then_some("pipelined"),
        ]
        .into_iter()
        .flatten()
        .map(str::to_string)
        .collect(),
    };
    let mut stdout = std::io::stdout();
    match runtime.block_on(slt::run(paths, &options, &mut stdout)) {
        Ok(summary) if complete => {
            println!("completed {} files", summary.files);
            ExitCode::SUCCESS
        }
        Ok(summary) => {
            println!("{}", summary.line());
            if summary.failed == 0 {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(error) => {
            eprintln!("error: {}", error.message());
            ExitCode::FAILURE
        }
    }
}

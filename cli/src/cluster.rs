//! `stagesql cluster scheduler|executor`: a Ballista 55 scheduler or executor from this binary.

use std::process::ExitCode;

use stagesql::cluster::serve::{self, ExecutorOptions, SchedulerOptions, Scheduling};
use stagesql::config::master::{DEFAULT_SCHEDULER_PORT, Master};

use crate::args::{ClusterRole, SchedulingArg};

fn scheduling_of(arg: SchedulingArg) -> Scheduling {
    match arg {
        SchedulingArg::Pull => Scheduling::Pull,
        SchedulingArg::Push => Scheduling::Push,
    }
}

/// Runs the role until it fails or the process gets Ctrl-C or SIGTERM.
pub fn run(runtime: tokio::runtime::Runtime, role: &ClusterRole) -> ExitCode {
    // Ballista's own log on stderr: RUST_LOG as usual, its INFO lines by default.
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let result = runtime.block_on(async {
        match role {
            ClusterRole::Scheduler {
                bind,
                port,
                external_host,
                executor_timeout,
                task_max_failures,
                stage_max_failures,
                scheduling,
            } => {
                let options = SchedulerOptions {
                    bind: bind.clone(),
                    port: *port,
                    external_host: external_host.clone(),
                    executor_timeout_seconds: *executor_timeout,
                    task_max_failures: *task_max_failures,
                    stage_max_failures: *stage_max_failures,
                    scheduling: scheduling_of(*scheduling),
                };
                let host = external_host.as_deref().unwrap_or(bind);
                let master = Master::parse(&format!("df://{host}:{port}"))
                    .map(|m| m.to_string())
                    .unwrap_or_default();
                eprintln!(
                    "Ballista scheduler (Ballista 55, DataFusion {}) listening on {bind}:{port}, {} scheduling\n  \
                     REST API: http://{host}:{port}/api/state\n  \
                     start executors: stagesql cluster executor --scheduler {host}:{port}\n  \
                     connect:         stagesql --master {master}",
                    datafusion::DATAFUSION_VERSION,
                    scheduling_of(*scheduling)
                );
                until_stopped(serve::run_scheduler(options)).await
            }
            ClusterRole::Executor {
                scheduler,
                bind,
                port,
                grpc_port,
                external_host,
                cores,
                memory,
                work_dir,
                heartbeat_interval,
                scheduling,
            } => {
                let (scheduler_host, scheduler_port) = parse_scheduler(scheduler)?;
                let memory = match memory {
                    None => None,
                    Some(text) => Some(
                        stagesql::config::keys::parse_bytes(text)
                            .filter(|bytes| *bytes > 0)
                            .ok_or_else(|| {
                                format!("--memory: expected a size such as 512m or 4g, got '{text}'")
                            })?,
                    ),
                };
                let options = ExecutorOptions {
                    scheduler_host,
                    scheduler_port,
                    bind: bind.clone(),
                    port: *port,
                    grpc_port: *grpc_port,
                    external_host: external_host.clone(),
                    cores: *cores,
                    memory,
                    work_dir: work_dir.clone(),
                    heartbeat_seconds: (*heartbeat_interval).max(1),
                    scheduling: scheduling.map(scheduling_of),
                };
                eprintln!(
                    "Ballista executor listening on {bind}:{port} (Arrow Flight) and {bind}:{grpc_port} (gRPC), \
                     {} slots, registering with the scheduler at {scheduler}",
                    match cores {
                        0 => "all cores as".to_string(),
                        n => n.to_string(),
                    }
                );
                until_stopped(serve::run_executor(options)).await
            }
        }
    });
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs `work` until it ends or the process is asked to stop.
async fn until_stopped(
    work: impl std::future::Future<Output = stagesql::Result<()>>,
) -> Result<(), String> {
    let stop = async {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            match signal(SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    };
    tokio::select! {
        result = work => result.map_err(|e| e.to_string()),
        _ = stop => {
            eprintln!("stopped");
            Ok(())
        }
    }
}

/// `HOST:PORT`, `HOST` (default port) or `df://HOST:PORT`.
fn parse_scheduler(text: &str) -> Result<(String, u16), String> {
    let url = match text.starts_with("df://") {
        true => text.to_string(),
        false => format!("df://{text}"),
    };
    match Master::parse(&url) {
        Ok(Master::Cluster(address)) => Ok((address.host, address.port)),
        _ => Err(format!(
            "--scheduler: expected HOST:PORT (the scheduler's address, port {DEFAULT_SCHEDULER_PORT} by default), got '{text}'"
        )),
    }
}

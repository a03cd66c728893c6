//! A Ballista 55 scheduler or executor inside our binary (`stagesql cluster …`), so that a
//! user needs no second install to start a cluster. Both are Ballista's own processes,
//! configured from our flags; they run until the future is dropped or the process is told to
//! stop.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use ballista_core::config::TaskSchedulingPolicy;
use ballista_executor::executor_process::{ExecutorProcessConfig, start_executor_process};
use ballista_scheduler::cluster::BallistaCluster;
use ballista_scheduler::config::SchedulerConfig;
use ballista_scheduler::scheduler_process::{create_scheduler, start_grpc_service_with_listener};
use datafusion_proto::protobuf::{LogicalPlanNode, PhysicalPlanNode};

use crate::config::master::SchedulerAddress;
use crate::error::{Error, Result};

/// How to start a scheduler.
#[derive(Debug, Clone)]
pub struct SchedulerOptions {
    /// Address to listen on (gRPC for clients and executors, and the REST API under `/api`).
    pub bind: String,
    pub port: u16,
    /// Host name clients and executors use to reach this scheduler, when not `bind`.
    pub external_host: Option<String>,
    /// Seconds without a heartbeat after which an executor counts as lost and its tasks run
    /// elsewhere.
    pub executor_timeout_seconds: u64,
    /// Attempts of a task, and of a stage whose input was lost, before its job fails.
    pub task_max_failures: usize,
    pub stage_max_failures: usize,
    /// How executors get their tasks; the executors must be started with the same.
    pub scheduling: Scheduling,
}

/// How a Ballista scheduler hands tasks to its executors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Scheduling {
    /// Executors ask for tasks when they have free slots, as Spark's executors take tasks as
    /// slots free up. An executor counts its own free slots, so none is ever lost.
    #[default]
    Pull,
    /// The scheduler sends tasks to executors' free slots, which it counts itself: lower
    /// latency between stages, but in Ballista 55 a task cancelled because its stage lost
    /// its input to a lost executor never gives its slot back, and a job can then wait
    /// forever for a slot (docs/cluster.md, Failures).
    Push,
}

impl Scheduling {
    fn policy(self) -> TaskSchedulingPolicy {
        match self {
            Self::Pull => TaskSchedulingPolicy::PullStaged,
            Self::Push => TaskSchedulingPolicy::PushStaged,
        }
    }
}

impl std::fmt::Display for Scheduling {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Self::Pull => "pull",
            Self::Push => "push",
        })
    }
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        Self {
            bind: "127.0.0.1".into(),
            port: crate::config::master::DEFAULT_SCHEDULER_PORT,
            external_host: None,
            executor_timeout_seconds: 60,
            task_max_failures: 4,
            stage_max_failures: 4,
            scheduling: Scheduling::default(),
        }
    }
}

/// How to start an executor.
#[derive(Debug, Clone)]
pub struct ExecutorOptions {
    /// The scheduler to register with.
    pub scheduler_host: String,
    pub scheduler_port: u16,
    /// Address to listen on, and the ports of its Arrow Flight service (shuffle and result
    /// fetches) and of its gRPC service.
    pub bind: String,
    pub port: u16,
    pub grpc_port: u16,
    /// Host name the scheduler, other executors and clients use to reach this executor.
    pub external_host: Option<String>,
    /// Task slots; 0 means all cores of this machine.
    pub cores: usize,
    /// Memory for the tasks' operators, split among the slots; operators spill beyond their
    /// share. `None` lets Ballista size it from the machine's memory.
    pub memory: Option<u64>,
    /// Where shuffle files are written; a new temporary directory (removed at exit) if `None`.
    pub work_dir: Option<PathBuf>,
    /// Seconds between heartbeats to the scheduler.
    pub heartbeat_seconds: u64,
    /// How it gets its tasks, which must be how its scheduler hands them out; `None` asks
    /// the scheduler (its REST API's `/api/state`).
    pub scheduling: Option<Scheduling>,
}

impl Default for ExecutorOptions {
    fn default() -> Self {
        Self {
            scheduler_host: "127.0.0.1".into(),
            scheduler_port: crate::config::master::DEFAULT_SCHEDULER_PORT,
            bind: "127.0.0.1".into(),
            port: 50051,
            grpc_port: 50052,
            external_host: None,
            cores: 0,
            memory: None,
            work_dir: None,
            heartbeat_seconds: 5,
            scheduling: None,
        }
    }
}

fn ballista_error(what: &str, e: impl std::fmt::Display) -> Error {
    Error::Cluster(format!("{what}: {e}"))
}

/// The socket address `bind:port`, or an error naming the flag values.
fn socket_address(bind: &str, port: u16) -> Result<SocketAddr> {
    use std::net::ToSocketAddrs;
    (bind, port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut addresses| addresses.next())
        .ok_or_else(|| Error::Cluster(format!("cannot listen on '{bind}:{port}': not an address")))
}

/// Runs a Ballista scheduler with its REST API until the future is dropped.
pub async fn run_scheduler(options: SchedulerOptions) -> Result<()> {
    let address = socket_address(&options.bind, options.port)?;
    // Bound first: a port already taken fails here, naming the address (Ballista's own message
    // is terse).
    let listener = nodelay_listener(address)?;
    let config = SchedulerConfig {
        bind_host: options.bind.clone(),
        bind_port: options.port,
        external_host: options
            .external_host
            .clone()
            .unwrap_or_else(|| options.bind.clone()),
        executor_timeout_seconds: options.executor_timeout_seconds,
        expire_dead_executor_interval_seconds: (options.executor_timeout_seconds / 4).max(1),
        no_executors_grace_period_seconds: options.executor_timeout_seconds,
        task_max_failures: options.task_max_failures,
        stage_max_failures: options.stage_max_failures,
        scheduling_policy: options.scheduling.policy(),
        ..SchedulerConfig::default()
    };
    let cluster = BallistaCluster::new_from_config(&config)
        .await
        .map_err(|e| ballista_error("cannot start the scheduler", e))?;
    let config = Arc::new(config);
    config
        .validate()
        .map_err(|e| ballista_error("the scheduler's settings", e))?;
    let scheduler = create_scheduler::<LogicalPlanNode, PhysicalPlanNode>(cluster, config)
        .await
        .map_err(|e| ballista_error("cannot start the scheduler", e))?;
    start_grpc_service_with_listener(listener, scheduler)
        .await
        .map_err(|e| ballista_error("the scheduler stopped", e))
}

/// A listener on `address` whose connections send small writes at once (`TCP_NODELAY`,
/// which Linux passes from a listening socket to the connections it accepts).
///
/// The scheduler serves gRPC through `axum::serve`, which leaves Nagle's algorithm on: a
/// response written in several pieces (HTTP/2 headers, data, trailers) then waits for the
/// client's delayed acknowledgement, about 40 ms. Every task an executor asks for under pull
/// scheduling, and every job status a client waits on, paid it.
fn nodelay_listener(address: SocketAddr) -> Result<tokio::net::TcpListener> {
    let listen = |e: std::io::Error| {
        Error::Cluster(format!("the scheduler cannot listen on {address}: {e}"))
    };
    let socket = match address {
        SocketAddr::V4(_) => tokio::net::TcpSocket::new_v4(),
        SocketAddr::V6(_) => tokio::net::TcpSocket::new_v6(),
    }
    .map_err(listen)?;
    socket.set_reuseaddr(true).map_err(listen)?;
    socket.set_nodelay(true).map_err(listen)?;
    socket.bind(address).map_err(listen)?;
    socket.listen(1024).map_err(listen)
}

/// How the executor of `options` gets its tasks: as its scheduler hands them out. An executor
/// of the other kind would never get a task, and every job would wait for ever: a given
/// `--scheduling` that differs from the scheduler's is an error. A scheduler whose REST API
/// does not answer (not up yet, or built without it) is taken at the executor's word, pull by
/// default.
async fn executor_scheduling(options: &ExecutorOptions) -> Result<Scheduling> {
    let address = SchedulerAddress {
        host: options.scheduler_host.clone(),
        port: options.scheduler_port,
    };
    let theirs = super::rest::get_json(&address, "/api/state")
        .await
        .ok()
        .and_then(|state| match state["scheduling_policy"].as_str() {
            Some("pull-staged") => Some(Scheduling::Pull),
            Some("push-staged") => Some(Scheduling::Push),
            _ => None,
        });
    match (options.scheduling, theirs) {
        (Some(ours), Some(theirs)) if ours != theirs => Err(Error::Cluster(format!(
            "the scheduler at {address} hands out tasks by {theirs} scheduling, and this executor was started with --scheduling {ours}: it would never get a task; start it with --scheduling {theirs}, or without the flag"
        ))),
        (_, Some(theirs)) => Ok(theirs),
        (ours, None) => Ok(ours.unwrap_or_default()),
    }
}

/// Runs a Ballista executor registered with the scheduler until the future is dropped or the
/// process gets SIGTERM or Ctrl-C.
pub async fn run_executor(options: ExecutorOptions) -> Result<()> {
    for port in [options.port, options.grpc_port] {
        let address = socket_address(&options.bind, port)?;
        drop(std::net::TcpListener::bind(address).map_err(|e| {
            Error::Cluster(format!("the executor cannot listen on {address}: {e}"))
        })?);
    }
    let scheduling = executor_scheduling(&options).await?;
    // A work directory of our own lives as long as the executor.
    let (work_dir, _temporary) = match &options.work_dir {
        Some(dir) => {
            std::fs::create_dir_all(dir).map_err(|source| Error::Io {
                action: "cannot create the executor's work directory",
                path: dir.clone(),
                source,
            })?;
            (dir.clone(), None)
        }
        None => {
            let dir = tempfile::Builder::new()
                .prefix("stagesql-executor-")
                .tempdir()
                .map_err(|e| ballista_error("cannot create a work directory", e))?;
            (dir.path().to_path_buf(), Some(dir))
        }
    };
    let config = ExecutorProcessConfig {
        bind_host: options.bind.clone(),
        external_host: options.external_host.clone(),
        port: options.port,
        grpc_port: options.grpc_port,
        scheduler_host: options.scheduler_host.clone(),
        scheduler_port: options.scheduler_port,
        scheduler_connect_timeout_seconds: 30,
        vcores: options.cores,
        work_dir: Some(work_dir.to_string_lossy().into_owned()),
        memory_pool_size: options.memory,
        executor_heartbeat_interval_seconds: options.heartbeat_seconds,
        print_thread_info: false,
        task_scheduling_policy: scheduling.policy(),
        ..ExecutorProcessConfig::default()
    };
    start_executor_process(Arc::new(config))
        .await
        .map_err(|e| ballista_error("the executor stopped", e))
}

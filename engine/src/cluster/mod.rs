//! Cluster mode: the session's queries run on an Apache DataFusion Ballista 55 cluster.
//!
//! The session stays the catalog: `CREATE EXTERNAL TABLE` and views are defined here, and a
//! query's logical plan, with its file scans in it, is sent to the scheduler, which plans it
//! physically, cuts it into stages at its shuffles and runs their tasks on the executors
//! ([`Cluster::run`]). Only what the executors can read travels: tables over files (and the
//! views and CTEs over them). A table held in this process's memory cannot, and a query
//! reading one is refused with its name, never run here instead.
//!
//! [`serve`] starts a scheduler or an executor from the same crates inside our binary
//! (`stagesql cluster scheduler|executor`).

mod explain;
pub mod progress;
pub mod report;
pub mod rest;
pub mod serve;
pub mod settings;

use std::time::Duration;

use ballista_core::execution_plans::DistributedQueryExec;
use ballista_core::extension::{SessionConfigExt, SessionStateExt};
use datafusion::catalog::TableProvider;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::listing::ListingTable;
use datafusion::datasource::source_as_provider;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::execution::SessionState;
use datafusion::logical_expr::{LogicalPlan, WriteOp};
use datafusion::physical_plan::execute_stream;
use datafusion_proto::protobuf::LogicalPlanNode;

pub use crate::config::master::{Master, SchedulerAddress};
use crate::error::{Error, Result};

/// How long connecting to the scheduler may take when a session starts.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// The cluster a session runs its queries on.
#[derive(Debug, Clone)]
pub struct Cluster {
    address: SchedulerAddress,
}

/// Where a query's tables are, for deciding where it runs.
#[derive(Debug, PartialEq, Eq)]
pub enum Placement {
    /// It reads tables over files (or none): it runs on the cluster.
    Cluster,
    /// It reads only tables that describe this session (`information_schema`, `system`):
    /// it runs here, as Ballista's own client runs `information_schema` queries.
    Here,
}

impl Cluster {
    /// Connects to the scheduler at `address`: fails, naming it, when nothing answers there.
    pub fn connect(address: SchedulerAddress) -> Result<Self> {
        use std::net::{TcpStream, ToSocketAddrs};
        let unreachable = |problem: String| {
            Error::Cluster(format!(
                "cannot reach the Ballista scheduler at {address}: {problem} (start one with `stagesql cluster scheduler`; docs/cluster.md)"
            ))
        };
        let addresses = (address.host.as_str(), address.port)
            .to_socket_addrs()
            .map_err(|e| unreachable(e.to_string()))?;
        let mut problem = format!("'{}' has no address", address.host);
        for socket in addresses {
            match TcpStream::connect_timeout(&socket, CONNECT_TIMEOUT) {
                Ok(_) => return Ok(Self { address }),
                Err(e) => problem = e.to_string(),
            }
        }
        Err(unreachable(problem))
    }

    /// The scheduler's address.
    pub fn address(&self) -> &SchedulerAddress {
        &self.address
    }

    /// Where `plan` runs; an error naming the first table it reads that the cluster cannot,
    /// or the write it cannot make. The executors write `COPY … TO` files and `INSERT INTO`
    /// a table over files (Ballista 55 runs DataFusion's file sinks in a job's last stage);
    /// other writes are refused.
    pub fn placement(plan: &LogicalPlan) -> Result<Placement> {
        if let LogicalPlan::Dml(dml) = plan {
            let table = &dml.table_name;
            match (&dml.op, source_as_provider(&dml.target)) {
                (WriteOp::Insert(_), Ok(target)) if travels(target.as_ref()) => {}
                (WriteOp::Insert(_), Ok(target)) => {
                    return Err(Error::Cluster(format!(
                        "INSERT INTO '{table}' ({}): the cluster's executors write only tables over files (CREATE EXTERNAL TABLE … LOCATION)",
                        describe(target.as_ref())
                    )));
                }
                (op, _) => {
                    return Err(Error::Cluster(format!(
                        "{} on '{table}' is not supported on a Ballista 55 cluster: its executors write by INSERT INTO a table over files and COPY … TO",
                        crate::session::write_name(op)
                    )));
                }
            }
        }
        let (mut here, mut there) = (Vec::new(), false);
        let mut refused = None;
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                let name = scan.table_name.to_string();
                match scan.table_name.schema() {
                    Some("information_schema" | "system") => here.push(name),
                    _ => match source_as_provider(&scan.source) {
                        Ok(provider) if travels(provider.as_ref()) => there = true,
                        Ok(provider) => {
                            refused = Some(format!(
                                "table '{name}' ({}) is held in this process, which the cluster's executors cannot read; cluster mode runs queries over tables of files (CREATE EXTERNAL TABLE … LOCATION, or COPY a result TO files first)",
                                describe(provider.as_ref())
                            ));
                            return Ok(TreeNodeRecursion::Stop);
                        }
                        Err(_) => there = true,
                    },
                }
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        if let Some(refused) = refused {
            return Err(Error::Cluster(refused));
        }
        match (here.is_empty(), there) {
            (false, true) => Err(Error::Cluster(format!(
                "{} describes this session and cannot be read on the cluster together with other tables; query it on its own",
                here[0]
            ))),
            (false, false) => Ok(Placement::Here),
            (true, _) => Ok(Placement::Cluster),
        }
    }

    /// Runs `plan` on the cluster as one Ballista job, with the session's `state` (its
    /// DataFusion settings travel with the plan) and `keys` set on top (our settings' cluster
    /// meaning, [`settings::cluster_keys`]). `name` names the job in the scheduler's UI and
    /// REST API. The stream yields the final stage's rows as the client fetches them.
    pub async fn run(
        &self,
        state: &SessionState,
        plan: &LogicalPlan,
        keys: &[(impl AsRef<str>, String)],
        name: &str,
    ) -> Result<ClusterRun> {
        let config = cluster_config(state, keys)?.with_ballista_job_name(name);
        let state = datafusion::execution::SessionStateBuilder::new_from_existing(state.clone())
            .with_config(config)
            .build()
            .upgrade_for_ballista(self.address.http_url())?;
        let physical = state.create_physical_plan(plan).await?;
        let job = physical
            .downcast_ref::<DistributedQueryExec<LogicalPlanNode>>()
            .map(|exec| JobHandle(exec.clone()));
        let stream = execute_stream(physical, state.task_ctx())?;
        Ok(ClusterRun { stream, job })
    }
}

/// A query running on the cluster.
pub struct ClusterRun {
    /// Its rows.
    pub stream: SendableRecordBatchStream,
    /// Its Ballista job, once the scheduler has accepted it (`None` for a plan Ballista's
    /// client runs without a job, such as an empty relation).
    pub job: Option<JobHandle>,
}

/// Ballista's job of a query, known once the scheduler accepted it.
#[derive(Clone)]
pub struct JobHandle(DistributedQueryExec<LogicalPlanNode>);

impl JobHandle {
    /// The scheduler's id of the job, once submitted.
    pub fn id(&self) -> Option<String> {
        self.0.job_id().map(|id| id.to_string())
    }
}

/// The cluster session's settings: the session's (its DataFusion and Ballista keys travel
/// with the plan) with `keys` set on top.
fn cluster_config(
    state: &SessionState,
    keys: &[(impl AsRef<str>, String)],
) -> Result<datafusion::prelude::SessionConfig> {
    let mut config = state.config().clone().upgrade_for_ballista();
    // The client's state is built again from the session's: without this, building it would
    // put a new, empty default catalog in the session's place (the state shares the session's
    // catalog list).
    config
        .options_mut()
        .catalog
        .create_default_catalog_and_schema = false;
    for (key, value) in keys {
        config
            .options_mut()
            .set(key.as_ref(), value)
            .map_err(|e| Error::Cluster(format!("cluster setting {}: {e}", key.as_ref())))?;
    }
    Ok(config)
}

/// Whether the executors can read what `provider` holds: files they can open by path.
fn travels(provider: &dyn TableProvider) -> bool {
    provider.is::<ListingTable>() || provider.is::<datafusion::datasource::view::ViewTable>()
}

fn describe(provider: &dyn TableProvider) -> &'static str {
    if provider.is::<datafusion::datasource::MemTable>() {
        "an in-memory table: CREATE TABLE, CREATE TABLE … AS SELECT or VALUES"
    } else {
        "a table of this process"
    }
}

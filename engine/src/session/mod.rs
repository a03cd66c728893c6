//! The [`Session`]: configuration, catalog and statement execution.
//!
//! Text flows in through [`Session::sql`] (collect everything) or [`Session::statements`] +
//! [`Session::execute`] (one statement at a time, rows streamed), which is what the CLI uses
//! so it can report each statement's error against its own position and cancel a running one.
//!
//! ```text
//!   text ──split──▶ SqlStatement ──Command?──▶ SET / RESET handled here
//!                        │
//!                        └──parse + plan (DataFusion)──▶ DDL: done on the spot
//!                                                     └─▶ query / DML: a record batch stream
//! ```

mod cache;
#[cfg(feature = "cluster")]
mod cluster;
mod events;
mod explain;
mod jobs;
mod tables;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::array::{RecordBatch, StringArray, UInt64Array};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::MemTable;
use datafusion::config::ConfigField;
use datafusion::datasource::provider_as_source;
use datafusion::error::DataFusionError;
use datafusion::execution::SendableRecordBatchStream;
use datafusion::logical_expr::{CreateMemoryTable, DdlStatement, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::prelude::{SessionConfig, SessionContext};
use futures::{StreamExt, TryStreamExt};

pub use jobs::ExecutionMode;
use jobs::ResultLimit;
pub use tables::StatementEffects;

use crate::config::{self, SettingRow, Settings, Source};
use crate::error::{Error, Result};
use crate::events::{JobId, Listener, Listeners};
use crate::scheduler::JobReport;
use crate::sql::{self, Command, SqlStatement};
use crate::tpch;

/// How to build a [`Session`].
#[derive(Debug, Clone, Default)]
pub struct SessionOptions {
    /// Settings given at startup with where each came from (a properties file, a flag such
    /// as `--executor-memory`), applied in order before `settings`.
    pub startup: Vec<(String, String, Source)>,
    /// Settings given at startup as `--conf key=value`, applied in order.
    pub settings: Vec<(String, String)>,
    /// Where generated TPC-H data is cached; `None` means [`tpch::default_cache_dir`].
    pub tpch_dir: Option<PathBuf>,
}

impl SessionOptions {
    /// The value of a key fixed at startup: the last one the options give.
    fn startup_value(&self, key: &str) -> Option<&String> {
        self.startup
            .iter()
            .map(|(key, value, _)| (key, value))
            .chain(self.settings.iter().map(|(key, value)| (key, value)))
            .rfind(|(k, _)| k.as_str() == key)
            .map(|(_, value)| value)
    }
}

/// A SQL session: DataFusion's `SessionContext` (with `information_schema`), the settings
/// with where each value came from, and the catalog of tables and views.
pub struct Session {
    ctx: SessionContext,
    settings: Mutex<Settings>,
    tpch_dir: PathBuf,
    last_job: AtomicUsize,
    last_stage: AtomicUsize,
    listeners: Mutex<Listeners>,
    history: Arc<Mutex<Vec<JobReport>>>,
    /// Where every job's tasks run; rebuilt for the next job when `spark.executor.*` change.
    executors: Mutex<Option<Arc<crate::executor::Executors>>>,
    /// The session's block store: shuffle outputs of running jobs, cached blocks.
    store: Arc<crate::shuffle::ShuffleStore>,
    /// Relations cached with CACHE TABLE.
    cache: Arc<crate::cache::CacheManager>,
    /// What each job's stages computed, for the recompute advisory.
    lineage: crate::lineage::LineageHistory,
    /// How often each table was written in the session: a table written since is another
    /// source.
    table_versions: Mutex<std::collections::HashMap<String, u64>>,
    /// Held while a job's stages are planned and their ids taken, so that jobs planned at
    /// the same time get distinct stage ids.
    planning: tokio::sync::Mutex<()>,
    /// The warehouse of `spark.sql.warehouse.dir`, opened once the settings are known.
    warehouse: std::sync::OnceLock<Arc<crate::warehouse::Warehouse>>,
    /// Warehouse tables read and written since [`Session::take_effects`] (for `--resume`).
    effects: Mutex<StatementEffects>,
    /// The warehouse tables (with versions) each table of the session was made from, by
    /// resolved name: a statement reading the table depends on them (for `--resume`).
    session_sources:
        Mutex<std::collections::HashMap<String, std::collections::BTreeMap<String, u64>>>,
    /// The event log of `spark.eventLog.enabled`, opened once the settings are known.
    event_log: std::sync::OnceLock<Arc<crate::eventlog::EventLog>>,
    /// Every event log recording now: the file and in-memory recordings.
    event_logs: Mutex<Vec<Arc<crate::eventlog::EventLog>>>,
    /// The Ballista cluster of `spark.master = df://…`, where queries run in cluster mode.
    #[cfg(feature = "cluster")]
    cluster: Option<crate::cluster::Cluster>,
    /// Warnings not yet shown ([`Session::take_warnings`]).
    warnings: Mutex<Vec<String>>,
}

/// DataFusion's runtime keys: the session's runtime is built again when one is set.
const RUNTIME_PREFIX: &str = "datafusion.runtime.";

/// Registers datafusion-spark's functions again, so that they win over DataFusion's functions
/// with the same names or aliases after a state was built from a function registry's
/// unordered map (`array_has`, alias `array_contains`, over Spark's `array_contains`).
fn register_spark_functions(ctx: &SessionContext) {
    for udf in datafusion_spark::all_default_scalar_functions() {
        ctx.register_udf(udf.as_ref().clone());
    }
    for udaf in datafusion_spark::all_default_aggregate_functions() {
        ctx.register_udaf(udaf.as_ref().clone());
    }
    for udwf in datafusion_spark::all_default_window_functions() {
        ctx.register_udwf(udwf.as_ref().clone());
    }
}

/// A session context whose queries may name a file or directory by its path (`SELECT * FROM
/// 'data/t.parquet'`), as DataFusion's URL tables allow, but only names that look like a path:
/// a bare name such as `data` is a table of the catalog even when the working directory holds
/// a `data/` directory (DataFusion's own factory would take it for that directory, and
/// `CREATE TABLE data` would fail as existing already).
///
/// The catalog list is set before the state is built, not by `enable_url_table`, which rebuilds
/// the state from its function registry in no particular order and so lets a DataFusion function
/// win over a Spark function with the same alias (`array_has` over `array_contains`).
fn with_path_tables(mut state: datafusion::execution::SessionStateBuilder) -> SessionContext {
    use datafusion::catalog::{DynamicFileCatalog, MemoryCatalogProviderList};
    use datafusion::datasource::dynamic_file::DynamicListTableFactory;
    let factory = Arc::new(PathTables::default());
    let inner = state
        .catalog_list()
        .take()
        .unwrap_or_else(|| Arc::new(MemoryCatalogProviderList::new()));
    state = state.with_catalog_list(Arc::new(DynamicFileCatalog::new(
        inner,
        Arc::clone(&factory) as _,
    )));
    let ctx = SessionContext::new_with_state(state.build());
    DynamicListTableFactory::session_store(&factory.0).with_state(ctx.state_weak_ref());
    ctx
}

/// DataFusion's URL-table factory, asked only for names with a path's characters in them.
#[derive(Debug, Default)]
struct PathTables(datafusion::datasource::dynamic_file::DynamicListTableFactory);

#[async_trait::async_trait]
impl datafusion::catalog::UrlTableFactory for PathTables {
    async fn try_new(
        &self,
        url: &str,
    ) -> datafusion::error::Result<Option<Arc<dyn datafusion::catalog::TableProvider>>> {
        if !url.contains(['/', '\\', '.', ':']) {
            return Ok(None);
        }
        self.0.try_new(url).await
    }
}

/// Functions whose behaviour depends on a setting (the session time zone of `now()`, of
/// Spark's casts to timestamp) made again from the settings in force, as DataFusion's own
/// `SET` does after every change.
fn refresh_configured_functions(state: &mut datafusion::execution::SessionState) {
    let options = state.config().options();
    let updated: Vec<_> = state
        .scalar_functions()
        .values()
        .filter_map(|udf| udf.inner().with_updated_config(options).map(Arc::new))
        .collect();
    for udf in updated {
        // Registering a function under its own name cannot fail.
        let _ = datafusion::execution::FunctionRegistry::register_udf(state, udf);
    }
}

/// Records `report`, without the plans it ran on, in place of the earlier report of its job.
fn record(history: &Mutex<Vec<JobReport>>, report: JobReport) {
    let report = report.without_plans();
    let mut history = history.lock().unwrap_or_else(|e| e.into_inner());
    match history.iter_mut().find(|r| r.job == report.job) {
        Some(earlier) => *earlier = report,
        None => history.push(report),
    }
}

tokio::task_local! {
    /// The statement a task is executing, which names its jobs, and where it came from
    /// (`file:line`) when known.
    static STATEMENT: (String, Option<String>);
    /// The scheduler pool a task's jobs run in, when it has one of its own; a `SET
    /// spark.scheduler.pool` in that task changes it for the task only.
    static POOL: Mutex<String>;
}

/// What one statement produced.
pub enum StatementOutput {
    /// A query's rows, streamed. Dropping the stream cancels the query.
    Rows(SendableRecordBatchStream),
    /// A statement that returns no rows: DDL, INSERT, SET.
    Done(Completion),
}

/// The outcome of a statement that returns no rows, e.g. `CREATE TABLE` or `INSERT 3`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Completion {
    /// What was done, in SQL words (`CREATE TABLE`, `INSERT`, `SET`).
    pub tag: String,
    /// Rows written, for statements that write.
    pub rows: Option<u64>,
}

impl std::fmt::Display for Completion {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.rows {
            Some(rows) => write!(f, "{} {rows}", self.tag),
            None => f.write_str(&self.tag),
        }
    }
}

/// A statement's collected result, as returned by [`Session::sql`].
#[derive(Debug, Clone)]
pub enum StatementResult {
    Rows {
        schema: SchemaRef,
        batches: Vec<RecordBatch>,
    },
    Done(Completion),
}

impl StatementResult {
    /// The rows of a query result (`None` for a statement that returns no rows).
    pub fn batches(&self) -> Option<&[RecordBatch]> {
        match self {
            StatementResult::Rows { batches, .. } => Some(batches),
            StatementResult::Done(_) => None,
        }
    }
}

impl Session {
    /// A session with default settings.
    pub fn new() -> Result<Self> {
        Self::with_options(SessionOptions::default())
    }

    pub fn with_options(options: SessionOptions) -> Result<Self> {
        let mut config = SessionConfig::new().with_information_schema(true);
        // Spans let planning errors (an unknown column, say) point at their place in the SQL.
        config.options_mut().sql_parser.collect_spans = true;
        config::options::register(config.options_mut());
        let store = Arc::new(crate::shuffle::ShuffleStore::new(0));
        // Spark's functions are part of the state the context is built from (the key is
        // fixed at startup, so its value is the last one the options give).
        let spark_functions = options
            .startup_value(config::keys::SPARK_FUNCTIONS)
            .is_some_and(|value| value.trim().eq_ignore_ascii_case("true"));
        // A bad master fails below, where its setting is applied with where it came from.
        let master = options
            .startup_value(config::keys::MASTER)
            .and_then(|value| config::master::Master::parse(value).ok());
        #[cfg(feature = "cluster")]
        let cluster = match master {
            Some(config::master::Master::Cluster(address)) => {
                // Ballista's keys join ours (SET ballista.… works and SET -v lists them), with
                // the DataFusion settings Ballista's client starts from.
                use ballista_core::config::BallistaConfig;
                use ballista_core::extension::SessionConfigHelperExt;
                config = config
                    .with_option_extension(BallistaConfig::default())
                    .ballista_restricted_configuration();
                Some(crate::cluster::Cluster::connect(address)?)
            }
            _ => None,
        };
        #[cfg(not(feature = "cluster"))]
        if let Some(config::master::Master::Cluster(address)) = master {
            return Err(Error::Config(format!(
                "spark.master {address}: this stagesql was built without cluster mode (cargo feature `cluster`)"
            )));
        }
        let mut state = datafusion::execution::SessionStateBuilder::new()
            .with_config(config)
            .with_default_features();
        if spark_functions {
            use datafusion_spark::SessionStateBuilderSpark;
            state = state.with_spark_features();
        }
        let ctx = with_path_tables(state);
        let session = Self {
            ctx,
            settings: Mutex::new(Settings::default()),
            tpch_dir: options
                .tpch_dir
                .clone()
                .unwrap_or_else(tpch::default_cache_dir),
            last_job: AtomicUsize::new(0),
            last_stage: AtomicUsize::new(0),
            listeners: Mutex::new(Listeners::default()),
            history: Arc::default(),
            executors: Mutex::new(None),
            cache: crate::cache::CacheManager::new(store.clone()),
            lineage: Default::default(),
            table_versions: Mutex::default(),
            store,
            planning: tokio::sync::Mutex::new(()),
            warehouse: std::sync::OnceLock::new(),
            effects: Mutex::default(),
            session_sources: Mutex::default(),
            event_log: std::sync::OnceLock::new(),
            event_logs: Mutex::default(),
            #[cfg(feature = "cluster")]
            cluster,
            warnings: Mutex::default(),
        };
        let conf = options
            .settings
            .iter()
            .map(|(key, value)| (key, value, Source::conf_flag()));
        let startup = options.startup.iter().map(|(k, v, s)| (k, v, s.clone()));
        for (key, value, source) in startup.chain(conf) {
            // `local[N]` from a file or --conf sizes the executor as --master local[N] does.
            let slots = match config::master::Master::parse(value) {
                Ok(config::master::Master::Local { slots: Some(n) })
                    if key == config::keys::MASTER =>
                {
                    vec![
                        (config::keys::EXECUTOR_INSTANCES, "1".to_string()),
                        (config::keys::EXECUTOR_CORES, n.to_string()),
                    ]
                }
                _ => vec![],
            };
            let derived = slots
                .into_iter()
                .map(|(key, value)| (key.to_string(), value));
            for (key, value) in std::iter::once((key.clone(), value.clone())).chain(derived) {
                session
                    .set(&key, &value, source.clone())
                    .map_err(|error| match &source {
                        // A bad line of a properties file is named by file and line.
                        Source::File { path, line } => {
                            Error::Config(format!("{path}:{line}: {}", error.message()))
                        }
                        Source::CommandLine { flag } if flag != "--conf" => {
                            Error::Config(format!("{flag}: {}", error.message()))
                        }
                        _ => error,
                    })?;
            }
        }
        crate::catalog::register_system_schema(
            &session.ctx,
            session.history.clone(),
            session.cache.clone(),
        )?;
        session.open_warehouse()?;
        session.open_event_log()?;
        Ok(session)
    }

    /// The DataFusion context underneath, for registering tables and functions.
    pub fn context(&self) -> &SessionContext {
        &self.ctx
    }

    /// Splits `text` into its statements (see [`sql::split_statements`]).
    pub fn statements(&self, text: &str) -> Result<Vec<SqlStatement>> {
        sql::split_statements(text)
    }

    /// Splits `text`, read from `origin` (a file name), into its statements; each knows
    /// where it came from (`SET -v` says `SET at queries.sql:12`).
    pub fn statements_from(&self, text: &str, origin: &str) -> Result<Vec<SqlStatement>> {
        let origin: Arc<str> = Arc::from(origin);
        let mut statements = sql::split_statements(text)?;
        for statement in &mut statements {
            statement.origin = Some(origin.clone());
        }
        Ok(statements)
    }

    /// Parses every statement in `text` without running anything; the error of the first
    /// statement that does not parse carries its position in `text`.
    pub fn check_syntax(&self, text: &str) -> Result<()> {
        let dialect = self.ctx.state().config().options().sql_parser.dialect;
        for statement in self.statements(text)? {
            let sql = match Command::parse(&statement.text)? {
                None => statement,
                Some(Command::Explain { query_offset, .. }) => {
                    explain::query_statement(&statement, query_offset)
                }
                Some(_) => continue,
            };
            self.ctx
                .state()
                .sql_to_statement(&sql.positioned_text(), &dialect)
                .map_err(syntax_error)?;
        }
        Ok(())
    }

    /// Runs every statement in `text` in order and collects the results. Stops at the first
    /// statement that fails.
    /// A panic while a statement runs (a bug) is that statement's internal error.
    pub async fn sql(&self, text: &str) -> Result<Vec<StatementResult>> {
        use futures::FutureExt;
        let mut results = Vec::new();
        for statement in self.statements(text)? {
            let run = async {
                Ok(match self.execute(&statement).await? {
                    StatementOutput::Rows(stream) => {
                        let schema = stream.schema();
                        let batches = stream.try_collect().await?;
                        StatementResult::Rows { schema, batches }
                    }
                    StatementOutput::Done(completion) => StatementResult::Done(completion),
                })
            };
            let result = std::panic::AssertUnwindSafe(run)
                .catch_unwind()
                .await
                .unwrap_or_else(|panic| Err(Error::from_panic(panic.as_ref())));
            results.push(result?);
        }
        Ok(results)
    }

    /// Runs one statement. DDL and settings take effect before this returns; a query returns
    /// its rows as a stream that runs as it is read.
    pub async fn execute(&self, statement: &SqlStatement) -> Result<StatementOutput> {
        // The statement's jobs are named after it, also when other tasks run statements on
        // this session at the same time.
        let at = statement
            .origin
            .as_ref()
            .map(|origin| format!("{origin}:{}", statement.start.line));
        STATEMENT
            .scope(
                (statement.text.clone(), at),
                self.execute_statement(statement),
            )
            .await
    }

    /// Runs `work` (statements of this session) with its jobs in scheduler pool `pool`
    /// instead of `spark.scheduler.pool`, as Spark's `setLocalProperty("spark.scheduler.pool")`
    /// does for a thread: `--concurrent` gives each file its own pool this way.
    pub async fn with_scheduler_pool<T>(pool: String, work: impl Future<Output = T>) -> T {
        POOL.scope(Mutex::new(pool), work).await
    }

    async fn execute_statement(&self, statement: &SqlStatement) -> Result<StatementOutput> {
        if let Some(command) = Command::parse(&statement.text)? {
            #[cfg(feature = "cluster")]
            self.check_command_on_cluster(&command).await?;
            if let Command::Explain { kind, query_offset } = command {
                return self.explain(statement, kind, query_offset).await;
            }
            if let Command::Table(command) = command {
                if let Some(output) = self.run_table_command(command, statement).await? {
                    return Ok(output);
                }
            } else {
                return self.run_command(command, statement).await;
            }
        }
        let plan = self.logical_plan(statement).await?;
        let plan = self.prepared_query(plan).await?;
        self.note_reads(&plan);
        let output = self.execute_plan(plan.clone()).await;
        // Also after a failed write: it may have written part of its rows.
        self.invalidate_caches_after(&plan);
        output
    }

    /// The query an `EXECUTE name(params)` runs: the prepared statement's plan with the
    /// parameters' values in it, run as any query is (as a job in stages mode). Any other plan
    /// is returned as it is.
    async fn prepared_query(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        match plan {
            LogicalPlan::Statement(datafusion::logical_expr::Statement::Execute(_)) => Ok(self
                .ctx
                .execute_logical_plan(plan)
                .await?
                .into_unoptimized_plan()),
            plan => Ok(plan),
        }
    }

    async fn execute_plan(&self, plan: LogicalPlan) -> Result<StatementOutput> {
        #[cfg(feature = "cluster")]
        if self.cluster.is_some() {
            let tag = completion_tag(&plan);
            return self.execute_on_cluster(plan, tag).await;
        }
        // Reads cached relations where it computes what they hold (a view's definition
        // keeps the query: it reads the caches there are when it is used).
        let plan = match &plan {
            LogicalPlan::Ddl(DdlStatement::CreateView(_)) => plan,
            _ => self.use_cached_data(plan, cache::Materialize::Yes).await?,
        };
        let tag = completion_tag(&plan);
        // DataFusion's own EXPLAIN (VERBOSE) describes its plan; it is not an action.
        let stages = self.execution_mode() == ExecutionMode::Stages
            && !matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_));
        if let LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) = &plan
            && stages
            && !matches!(create.input.as_ref(), LogicalPlan::EmptyRelation(_))
        {
            // CREATE TABLE … AS SELECT is an action: its query runs as a job.
            let plan = self.materialize_ctas_input(create).await?;
            return self.execute_pipelined(plan, tag).await;
        }
        match tag {
            None if stages => Ok(StatementOutput::Rows(
                self.run_job(&plan, ResultLimit::Checked).await?,
            )),
            Some(tag @ ("INSERT" | "COPY")) if stages => {
                let batches: Vec<RecordBatch> = self
                    .run_job(&plan, ResultLimit::Unchecked)
                    .await?
                    .try_collect()
                    .await?;
                Ok(StatementOutput::Done(Completion {
                    tag: tag.to_string(),
                    rows: Some(count_column_total(&batches)),
                }))
            }
            _ => self.execute_pipelined(plan, tag).await,
        }
    }

    /// Runs the query of a CTAS as a job and returns the CTAS over its collected rows, for
    /// DataFusion to create the table as it always does.
    async fn materialize_ctas_input(&self, create: &CreateMemoryTable) -> Result<LogicalPlan> {
        // DataFusion's check, before any work: the table's column names must be unique
        // without their qualifiers.
        let mut names = std::collections::HashSet::new();
        for field in create.input.schema().fields() {
            if !names.insert(field.name().as_str()) {
                return Err(DataFusionError::SchemaError(
                    Box::new(datafusion::common::SchemaError::DuplicateUnqualifiedField {
                        name: field.name().to_string(),
                    }),
                    Box::new(None),
                )
                .into());
            }
        }
        let schema: SchemaRef = Arc::new(create.input.schema().as_arrow().clone());
        let batches: Vec<RecordBatch> = self
            .run_job(&create.input, ResultLimit::Unchecked)
            .await?
            .try_collect()
            .await?;
        // The rows as the table declares them: the stages' output may differ from the
        // logical schema in nullability or in a string type's layout.
        let batches = batches
            .into_iter()
            .map(|batch| as_schema(batch, &schema))
            .collect::<Result<Vec<_>>>()?;
        let rows = MemTable::try_new(schema, vec![batches])?;
        let input =
            LogicalPlanBuilder::scan("ctas_input", provider_as_source(Arc::new(rows)), None)?
                .build()?;
        Ok(LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(
            CreateMemoryTable {
                input: Arc::new(input),
                ..create.clone()
            },
        )))
    }

    /// Runs a statement as DataFusion runs it: one streaming plan.
    async fn execute_pipelined(
        &self,
        plan: LogicalPlan,
        tag: Option<&'static str>,
    ) -> Result<StatementOutput> {
        // DataFusion runs DDL and settings as it plans them; a write runs when its frame is
        // collected (a frame left alone would report a MERGE that never ran).
        let writes = matches!(plan, LogicalPlan::Dml(_) | LogicalPlan::Copy(_));
        let frame = self.ctx.execute_logical_plan(plan).await?;
        match tag {
            None => Ok(StatementOutput::Rows(
                self.limit_result(frame.execute_stream().await?),
            )),
            Some(tag) if writes => {
                let batches = frame.collect().await?;
                Ok(StatementOutput::Done(Completion {
                    tag: tag.to_string(),
                    rows: Some(count_column_total(&batches)),
                }))
            }
            Some(tag) => Ok(StatementOutput::Done(Completion {
                tag: tag.to_string(),
                rows: None,
            })),
        }
    }

    /// A streamed result that fails once it has passed `spark.driver.maxResultSize`, as a
    /// job's result does before the driver reads it.
    fn limit_result(&self, stream: SendableRecordBatchStream) -> SendableRecordBatchStream {
        let limit =
            match config::keys::parse_bytes(&self.setting(config::keys::DRIVER_MAX_RESULT_SIZE)) {
                Some(limit) if limit > 0 => limit,
                _ => return stream,
            };
        let schema = stream.schema();
        let mut total = 0u64;
        let limited = stream.map(move |batch| {
            let batch = batch?;
            // The bytes of the rows themselves: a batch may be a slice of larger arrays.
            total += batch
                .columns()
                .iter()
                .map(|c| {
                    c.to_data()
                        .get_slice_memory_size()
                        .unwrap_or_else(|_| c.get_array_memory_size()) as u64
                })
                .sum::<u64>();
            match total > limit {
                true => Err(crate::scheduler::result_too_large(
                    "the result",
                    total,
                    limit,
                )),
                false => Ok(batch),
            }
        });
        Box::pin(RecordBatchStreamAdapter::new(schema, limited))
    }

    /// Sets `key` to `value`, remembering where the value came from. A key fixed when the
    /// session starts ([`config::keys::STATIC_KEYS`]) cannot come from `SET`.
    pub fn set(&self, key: &str, value: &str, source: Source) -> Result<()> {
        if matches!(source, Source::Session { .. }) && config::keys::is_static(key) {
            return Err(self.static_key_error(key));
        }
        #[cfg(feature = "cluster")]
        self.check_setting_on_cluster(key, &source)?;
        if key.starts_with(RUNTIME_PREFIX) {
            self.set_runtime(key, Some(value))?;
            self.settings().record(key, value, source);
            return Ok(());
        }
        let value = match config::keys::definition(key) {
            Some(definition) => &config::keys::validate(definition, value)?,
            None => value,
        };
        let state = self.ctx.state_ref();
        {
            let mut state = state.write();
            config::check_key(key, state.config().options())?;
            state
                .config_mut()
                .options_mut()
                .set(key, value)
                .map_err(|e| {
                    Error::Config(format!(
                        "invalid value '{value}' for '{key}': {}",
                        e.message()
                    ))
                })?;
            refresh_configured_functions(&mut state);
        }
        self.settings().record(key, value, source);
        Ok(())
    }

    /// Sets (or with `None` resets) one of DataFusion's runtime keys
    /// (`datafusion.runtime.memory_limit` …) as DataFusion does: the session's runtime is built
    /// again with it. They govern pipelined mode, and the caches both modes share; stages
    /// mode's tasks take their memory from `spark.executor.memory` and spill under
    /// `spark.local.dir`.
    fn set_runtime(&self, key: &str, value: Option<&str>) -> Result<()> {
        use datafusion::logical_expr::{ResetVariable, SetVariable, Statement};
        let known = self.ctx.runtime_env().config_entries();
        if !known.iter().any(|entry| entry.key == key) {
            let keys: Vec<&str> = known.iter().map(|entry| entry.key.as_str()).collect();
            return Err(Error::Config(format!(
                "unknown configuration key '{key}'; DataFusion's runtime keys are {}",
                keys.join(", ")
            )));
        }
        let variable = key.to_string();
        let statement = match value {
            Some(value) => Statement::SetVariable(SetVariable {
                variable,
                value: value.to_string(),
            }),
            None => Statement::ResetVariable(ResetVariable { variable }),
        };
        // Setting a variable does its work before the returned future first waits.
        futures::executor::block_on(
            self.ctx
                .execute_logical_plan(LogicalPlan::Statement(statement)),
        )
        .map_err(|e| {
            Error::Config(format!(
                "invalid value '{}' for '{key}': {}",
                value.unwrap_or_default(),
                e.message()
            ))
        })?;
        // DataFusion built the state again from its functions in no particular order.
        if self.setting(config::keys::SPARK_FUNCTIONS) == "true" {
            register_spark_functions(&self.ctx);
        }
        Ok(())
    }

    /// Why `SET key` is refused for a key fixed at startup, with where its value came from.
    fn static_key_error(&self, key: &str) -> Error {
        let source = self.settings().source(key);
        let origin = match &source {
            Source::Default => "is the default".to_string(),
            other => format!("comes from {other}"),
        };
        let flag = match key {
            config::keys::EXECUTOR_INSTANCES => "--num-executors, ",
            config::keys::EXECUTOR_CORES => "--executor-cores, --master local[N], ",
            config::keys::EXECUTOR_MEMORY => "--executor-memory, ",
            config::keys::DRIVER_MEMORY => "--driver-memory, ",
            _ => "",
        };
        Error::Config(format!(
            "cannot modify the value of '{key}' with SET: it is fixed when the session starts \
             (its value {} {origin}); start the session with {flag}--conf {key}=… or a line in {}",
            self.setting(key),
            config::file::DEFAULTS_FILE
        ))
    }

    /// Warnings about the session's settings or statements not shown yet (a setting that
    /// has no meaning in cluster mode, say), oldest first; each is returned once.
    pub fn take_warnings(&self) -> Vec<String> {
        std::mem::take(&mut *self.warnings.lock().unwrap_or_else(|e| e.into_inner()))
    }

    #[cfg_attr(not(feature = "cluster"), allow(dead_code))]
    pub(crate) fn warn(&self, message: String) {
        self.warnings
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(message);
    }

    fn settings(&self) -> std::sync::MutexGuard<'_, Settings> {
        self.settings.lock().expect("settings lock poisoned")
    }

    /// Receives the job, stage and task events of this session's jobs.
    pub fn add_listener(&self, listener: Arc<dyn Listener>) {
        self.listeners
            .lock()
            .expect("listeners lock poisoned")
            .add(listener);
    }

    pub(crate) fn listeners(&self) -> Listeners {
        self.listeners
            .lock()
            .expect("listeners lock poisoned")
            .clone()
    }

    pub(crate) fn next_job_id(&self) -> JobId {
        self.last_job.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// The id the next job's first stage gets.
    pub(crate) fn next_stage_id(&self) -> usize {
        self.last_stage.load(Ordering::Relaxed) + 1
    }

    pub(crate) fn take_stage_ids(&self, count: usize) {
        self.last_stage.fetch_add(count, Ordering::Relaxed);
    }

    /// The statement the calling task is executing.
    pub(crate) fn current_statement(&self) -> String {
        STATEMENT
            .try_with(|(text, _)| text.clone())
            .unwrap_or_default()
    }

    /// Where the statement the calling task is executing came from (`file:line`).
    pub(crate) fn current_statement_at(&self) -> Option<String> {
        STATEMENT.try_with(|(_, at)| at.clone()).ok().flatten()
    }

    /// The scheduler pool of the calling task's jobs: its own, else `spark.scheduler.pool`.
    pub(crate) fn scheduler_pool(&self) -> String {
        POOL.try_with(|pool| pool.lock().unwrap_or_else(|e| e.into_inner()).clone())
            .unwrap_or_else(|_| self.setting(crate::config::keys::SCHEDULER_POOL))
    }

    /// Records `report` in the job history, in place of what was recorded for its job
    /// before (a running job's first report).
    pub(crate) fn record_job(&self, report: JobReport) {
        record(&self.history, report);
    }

    /// Records a report of `job` wherever it ends, also when it is cancelled (dropped).
    pub(crate) fn job_recorder(&self) -> Box<dyn Fn(JobReport) + Send + Sync> {
        let history = self.history.clone();
        Box::new(move |report| record(&history, report))
    }

    /// The stages of `job` that computed again what an earlier job of the session had
    /// computed (and had not cached).
    pub fn recomputed_by(&self, job: JobId) -> Vec<crate::lineage::Recomputation> {
        self.lineage.recomputed_by(job)
    }

    /// Reports of the jobs this session ran, oldest first.
    pub fn jobs(&self) -> Vec<JobReport> {
        self.history.lock().expect("history lock poisoned").clone()
    }

    /// The current value of one of our own keys ([`config::keys`]).
    pub fn setting(&self, key: &str) -> String {
        config::options::get(self.ctx.state_ref().read().config().options(), key)
    }

    /// Returns `key` (or every key) to its startup value.
    pub fn reset(&self, key: Option<&str>) -> Result<()> {
        let keys = match key {
            Some(key) if key.starts_with(RUNTIME_PREFIX) => vec![key.to_string()],
            Some(key) => {
                config::check_key(key, self.ctx.state().config().options())?;
                vec![key.to_string()]
            }
            None => self.settings().keys_set_in_session(),
        };
        for key in keys {
            let startup = self.settings().startup_value(&key).map(str::to_string);
            if key.starts_with(RUNTIME_PREFIX) {
                self.set_runtime(&key, startup.as_deref())?;
                self.settings().forget(&key);
                continue;
            }
            let state = self.ctx.state_ref();
            let mut state = state.write();
            let options = state.config_mut().options_mut();
            match (startup, config::keys::definition(&key)) {
                (Some(value), _) => options.set(&key, &value)?,
                (None, Some(definition)) => options.set(&key, definition.default)?,
                (None, None) => options.reset(&key)?,
            }
            refresh_configured_functions(&mut state);
            self.settings().forget(&key);
        }
        Ok(())
    }

    /// Every setting with its value, default, description and source, optionally only the
    /// keys starting with `prefix`.
    pub fn setting_rows(&self, prefix: Option<&str>) -> Vec<SettingRow> {
        let state = self.ctx.state();
        self.settings()
            .rows(state.config().options())
            .into_iter()
            .filter(|row| prefix.is_none_or(|prefix| row.key.starts_with(prefix)))
            .collect()
    }

    /// Table names and their columns in the default schema, for completion and `\d`.
    pub async fn tables(&self) -> Result<Vec<(String, SchemaRef)>> {
        let mut tables = Vec::new();
        let catalog = self.ctx.state().config().options().catalog.clone();
        let Some(schema) = self
            .ctx
            .catalog(&catalog.default_catalog)
            .and_then(|c| c.schema(&catalog.default_schema))
        else {
            return Ok(tables);
        };
        let mut names = schema.table_names();
        names.sort();
        for name in names {
            if let Some(table) = schema.table(&name).await? {
                tables.push((name, table.schema()));
            }
        }
        Ok(tables)
    }

    /// Generates the TPC-H tables at `scale_factor` (once; later calls find them in the cache
    /// directory) and registers them. Returns the directory holding the data.
    pub async fn load_tpch(&self, scale_factor: f64) -> Result<PathBuf> {
        let cache_dir = self.tpch_dir.clone();
        let dir = tokio::task::spawn_blocking(move || tpch::ensure_data(&cache_dir, scale_factor))
            .await
            .map_err(|e| Error::Tpch(format!("generator task failed: {e}")))??;
        tpch::register(&self.ctx, &dir).await?;
        Ok(dir)
    }

    async fn run_command(
        &self,
        command: Command,
        statement: &SqlStatement,
    ) -> Result<StatementOutput> {
        match command {
            Command::Set { key, value } => {
                // Like Spark's thread-local property: a task with a pool of its own (a
                // `--concurrent` file) changes its own pool, not the session's.
                let own_pool = key == crate::config::keys::SCHEDULER_POOL
                    && POOL
                        .try_with(|pool| {
                            *pool.lock().unwrap_or_else(|e| e.into_inner()) = value.clone()
                        })
                        .is_ok();
                if !own_pool {
                    let at = self.current_statement_at();
                    self.set(&key, &value, Source::Session { at })?;
                }
                done("SET")
            }
            Command::ShowSetting { key } => {
                let rows: Vec<_> = self
                    .setting_rows(None)
                    .into_iter()
                    .filter(|r| r.key == key)
                    .collect();
                if rows.is_empty() {
                    config::check_key(&key, self.ctx.state().config().options())?;
                }
                Ok(settings_output(rows, false))
            }
            Command::ShowSettings { verbose } => {
                let rows = self.setting_rows(None);
                let rows = match verbose {
                    true => rows,
                    false => rows
                        .into_iter()
                        .filter(|r| matches!(r.source, Source::Session { .. }))
                        .collect(),
                };
                Ok(settings_output(rows, verbose))
            }
            Command::Reset { key } => {
                self.reset(key.as_deref())?;
                done("RESET")
            }
            Command::Explain { .. } | Command::Table(_) => {
                unreachable!("EXPLAIN and warehouse statements are handled before")
            }
            Command::Dbgen { scale_factor } => {
                self.load_tpch(scale_factor).await?;
                done("CALL")
            }
            Command::CacheTable {
                name,
                lazy,
                level,
                query_offset,
            } => {
                self.cache_table(statement, &name, lazy, level, query_offset)
                    .await
            }
            Command::UncacheTable { name, if_exists } => self.uncache_table(&name, if_exists),
            Command::ClearCache => self.clear_cache(),
            Command::RefreshTable { name } => self.refresh_table(&name).await,
        }
    }
}

fn done(tag: &str) -> Result<StatementOutput> {
    Ok(StatementOutput::Done(Completion {
        tag: tag.to_string(),
        rows: None,
    }))
}

/// `SET` shows key and value; `SET -v` adds default, source and description.
fn settings_output(rows: Vec<SettingRow>, verbose: bool) -> StatementOutput {
    let column = |values: Vec<String>| Arc::new(StringArray::from(values)) as _;
    let mut fields = vec![
        Field::new("key", DataType::Utf8, false),
        Field::new("value", DataType::Utf8, false),
    ];
    let mut columns = vec![
        column(rows.iter().map(|r| r.key.clone()).collect()),
        column(rows.iter().map(|r| r.value.clone()).collect()),
    ];
    if verbose {
        for name in ["default", "source", "description"] {
            fields.push(Field::new(name, DataType::Utf8, false));
        }
        columns.push(column(rows.iter().map(|r| r.default.clone()).collect()));
        columns.push(column(rows.iter().map(|r| r.source.to_string()).collect()));
        columns.push(column(rows.iter().map(|r| r.description.clone()).collect()));
    }
    let schema = Arc::new(Schema::new(fields));
    let batch = RecordBatch::try_new(schema.clone(), columns).expect("columns match the schema");
    let stream = futures::stream::iter([Ok(batch)]);
    StatementOutput::Rows(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
}

/// A write's statement, as its completion tag and errors name it.
pub(crate) fn write_name(op: &datafusion::logical_expr::WriteOp) -> &'static str {
    use datafusion::logical_expr::WriteOp;
    match op {
        WriteOp::Insert(_) => "INSERT",
        WriteOp::Delete => "DELETE",
        WriteOp::Update => "UPDATE",
        WriteOp::Ctas => "CREATE TABLE",
        WriteOp::Truncate => "TRUNCATE",
        WriteOp::MergeInto(_) => "MERGE",
        _ => "WRITE",
    }
}

/// The completion tag for statements that return no rows; `None` for queries.
fn completion_tag(plan: &LogicalPlan) -> Option<&'static str> {
    match plan {
        LogicalPlan::Ddl(ddl) => Some(match ddl {
            DdlStatement::CreateExternalTable(_) => "CREATE EXTERNAL TABLE",
            DdlStatement::CreateMemoryTable(_) => "CREATE TABLE",
            DdlStatement::CreateView(_) => "CREATE VIEW",
            DdlStatement::CreateCatalogSchema(_) => "CREATE SCHEMA",
            DdlStatement::CreateCatalog(_) => "CREATE DATABASE",
            DdlStatement::CreateIndex(_) => "CREATE INDEX",
            DdlStatement::DropTable(_) => "DROP TABLE",
            DdlStatement::DropView(_) => "DROP VIEW",
            DdlStatement::DropCatalogSchema(_) => "DROP SCHEMA",
            DdlStatement::CreateFunction(_) => "CREATE FUNCTION",
            DdlStatement::DropFunction(_) => "DROP FUNCTION",
        }),
        LogicalPlan::Dml(dml) => Some(write_name(&dml.op)),
        LogicalPlan::Copy(_) => Some("COPY"),
        LogicalPlan::Statement(_) => Some("OK"),
        _ => None,
    }
}

/// DML plans return one `count` row per written partition; the total is the rows written.
fn count_column_total(batches: &[RecordBatch]) -> u64 {
    batches
        .iter()
        .filter_map(|batch| batch.column(0).as_any().downcast_ref::<UInt64Array>())
        .flat_map(|counts| counts.iter().flatten())
        .sum()
}

/// A DataFusion parse error becomes a [`Error::Syntax`] with the position sqlparser reported.
pub(crate) fn syntax_error(error: DataFusionError) -> Error {
    match error.find_root() {
        DataFusionError::SQL(parser_error, _) => {
            let (message, position) = sql::parse_error_position(&parser_error.to_string());
            Error::Syntax { message, position }
        }
        _ => Error::DataFusion(error),
    }
}

/// `SELECT * FROM 'data/x.csv'` on a path that does not exist reaches DataFusion as an unknown
/// table; say what the user meant instead.
pub(crate) fn missing_file(error: DataFusionError) -> Error {
    let message = error.find_root().to_string();
    let name = message
        .split_once("table '")
        .and_then(|(_, rest)| rest.split_once("' not found"))
        .map(|(name, _)| name.trim_start_matches("datafusion.public."));
    match name {
        Some(path) if looks_like_a_path(path) => Error::DataFusion(DataFusionError::Plan(format!(
            "no such file or directory: '{path}' (a quoted name in FROM is read as a file path)"
        ))),
        _ => Error::DataFusion(error),
    }
}

fn looks_like_a_path(name: &str) -> bool {
    name.contains('/')
        || [
            ".parquet", ".csv", ".json", ".ndjson", ".arrow", ".avro", ".tsv",
        ]
        .iter()
        .any(|extension| name.to_ascii_lowercase().ends_with(extension))
}

/// `batch` with `schema`: columns cast where their types differ (a view string type for a
/// plain one), nullability as the schema says (checked against the data).
fn as_schema(batch: RecordBatch, schema: &SchemaRef) -> Result<RecordBatch> {
    if batch.schema() == *schema {
        return Ok(batch);
    }
    let columns = batch
        .columns()
        .iter()
        .zip(schema.fields())
        .map(
            |(column, field)| match column.data_type() == field.data_type() {
                true => Ok(column.clone()),
                false => datafusion::arrow::compute::cast(column, field.data_type()),
            },
        )
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(DataFusionError::from)?;
    Ok(RecordBatch::try_new(schema.clone(), columns).map_err(DataFusionError::from)?)
}

//! Warehouse tables in the session: the statements of [`TableCommand`], writes as jobs whose
//! tasks write files and whose driver commits, and the catalog's tables registered with
//! DataFusion so queries read them like any table.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use datafusion::arrow::array::{RecordBatch, StringArray};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{MemorySchemaProvider, SchemaProvider, TableProvider};
use datafusion::common::{Column, ScalarValue, TableReference};
use datafusion::datasource::source_as_provider;
use datafusion::logical_expr::{DdlStatement, Expr, LogicalPlan, LogicalPlanBuilder, cast, lit};
use datafusion::physical_plan::ExecutionPlan;
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use futures::TryStreamExt;

use super::jobs::PlanWrap;
use super::{Completion, Session, StatementOutput, explain::query_statement};
use crate::config::{Source, keys};
use crate::error::{Error, Result};
use crate::scheduler::JobReport;
use crate::sql::tables::RepairMode;
use crate::sql::{CreateTable, SqlStatement, TableCommand};
use crate::stages::StageGraph;
use crate::warehouse::chars::CharType;
use crate::warehouse::{
    self, ColumnMeta, DEFAULT_DATABASE, DataFile, Partition, PartitionSpec, TableKind, TableMeta,
    Warehouse, WarehouseTable, WriteFilesExec, WriteMode, WriteOptions,
};

/// DataFusion's name for Spark's `default` database.
const DATAFUSION_DEFAULT_SCHEMA: &str = "public";

/// The DataFusion schema a database's tables are registered in.
fn schema_name(database: &str) -> &str {
    match database {
        DEFAULT_DATABASE => DATAFUSION_DEFAULT_SCHEMA,
        other => other,
    }
}

/// The database a DataFusion schema is.
fn database_name(schema: &str) -> String {
    match schema {
        DATAFUSION_DEFAULT_SCHEMA => DEFAULT_DATABASE.to_string(),
        other => other.to_ascii_lowercase(),
    }
}

impl Session {
    pub(crate) fn warehouse(&self) -> &Arc<Warehouse> {
        self.warehouse
            .get()
            .expect("the warehouse is opened when the session starts")
    }

    /// Opens the warehouse of `spark.sql.warehouse.dir` and registers its tables.
    pub(super) fn open_warehouse(&self) -> Result<()> {
        let warehouse = Warehouse::open(self.setting(keys::WAREHOUSE_DIR))?;
        let _ = self.warehouse.set(warehouse.clone());
        for database in warehouse.databases()? {
            self.ensure_schema(&database)?;
            for name in warehouse.table_names(&database)? {
                if let Some(meta) = warehouse.table(&database, &name)? {
                    self.relist_external(&meta)?;
                    self.register_warehouse_table(&meta)?;
                }
            }
        }
        Ok(())
    }

    /// DataFusion's default catalog, which holds the session's schemas and the databases.
    fn default_catalog(&self) -> Result<Arc<dyn datafusion::catalog::CatalogProvider>> {
        let name = self
            .ctx
            .state()
            .config()
            .options()
            .catalog
            .default_catalog
            .clone();
        self.ctx
            .catalog(&name)
            .ok_or_else(|| Error::Internal(format!("catalog {name} is missing")))
    }

    /// DataFusion's schema of this name in the default catalog.
    pub(super) fn schema_named(&self, name: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.default_catalog().ok()?.schema(name)
    }

    fn schema_provider(&self, database: &str) -> Option<Arc<dyn SchemaProvider>> {
        self.schema_named(schema_name(database))
    }

    /// The DataFusion schema of `database`, created when missing.
    fn ensure_schema(&self, database: &str) -> Result<Arc<dyn SchemaProvider>> {
        if let Some(schema) = self.schema_provider(database) {
            return Ok(schema);
        }
        let schema: Arc<dyn SchemaProvider> = Arc::new(MemorySchemaProvider::new());
        self.default_catalog()?
            .register_schema(schema_name(database), schema.clone())?;
        Ok(schema)
    }

    fn register_warehouse_table(&self, meta: &TableMeta) -> Result<()> {
        let table = WarehouseTable::new(self.warehouse().clone(), meta)?;
        let schema = self.ensure_schema(&meta.database)?;
        schema.deregister_table(&meta.name)?;
        schema.register_table(meta.name.clone(), Arc::new(table))?;
        Ok(())
    }

    fn deregister(&self, database: &str, name: &str) -> Result<()> {
        if let Some(schema) = self.schema_provider(database) {
            schema.deregister_table(name)?;
        }
        Ok(())
    }

    /// The database `USE` chose.
    pub fn current_database(&self) -> String {
        database_name(&self.ctx.state().config().options().catalog.default_schema)
    }

    /// `db.t` or `t` (in the current database) as (database, table), lower-cased unless
    /// quoted, as Spark's catalog names are.
    fn resolve_name(&self, name: &str) -> Result<(String, String)> {
        let parts = crate::sql::tables::name_parts(name)?;
        match parts.as_slice() {
            [table] => Ok((self.current_database(), table.clone())),
            [database, table] => Ok((database_name(database), table.clone())),
            [catalog, database, table] if catalog == "spark_catalog" => {
                Ok((database_name(database), table.clone()))
            }
            _ => Err(Error::Table(format!(
                "[REQUIRES_SINGLE_PART_NAMESPACE] `{name}`: warehouse tables are named `table`, `database.table` or `spark_catalog.database.table`"
            ))),
        }
    }

    /// The warehouse table `name` names, if it is one.
    pub(super) async fn warehouse_table(&self, name: &str) -> Result<Option<TableMeta>> {
        let (database, table) = self.resolve_name(name)?;
        if self.session_table(&database, &table).await? {
            return Ok(None);
        }
        self.warehouse().table(&database, &table)
    }

    /// Whether the session has a table or view of its own (not of the warehouse) by this
    /// name; it hides a warehouse table of the same name.
    async fn session_table(&self, database: &str, table: &str) -> Result<bool> {
        let Some(schema) = self.schema_provider(database) else {
            return Ok(false);
        };
        if !schema.table_exist(table) {
            return Ok(false);
        }
        let provider: Option<Arc<dyn TableProvider>> = schema.table(table).await?;
        Ok(provider.is_some_and(|t| t.downcast_ref::<WarehouseTable>().is_none()))
    }

    /// Runs a warehouse statement; `None` hands the statement back to DataFusion (an INSERT
    /// into or a DROP of a table of the session).
    pub(super) async fn run_table_command(
        &self,
        command: TableCommand,
        statement: &SqlStatement,
    ) -> Result<Option<StatementOutput>> {
        match command {
            TableCommand::CreateTable(create) => {
                self.create_table(create, statement).await.map(Some)
            }
            TableCommand::CreateDatabase {
                name,
                if_not_exists,
                comment,
                location,
            } => {
                self.warehouse().create_database(
                    &name,
                    if_not_exists,
                    comment,
                    location.map(PathBuf::from),
                )?;
                self.ensure_schema(&name)?;
                completed("CREATE DATABASE", None)
            }
            TableCommand::DropDatabase {
                name,
                if_exists,
                cascade,
            } => {
                if !self.warehouse().database_exists(&name) {
                    return match if_exists {
                        true => completed("DROP DATABASE", None),
                        false => Err(warehouse::schema_not_found(&name)),
                    };
                }
                if name != DEFAULT_DATABASE && name == self.current_database() {
                    return Err(Error::Table(format!(
                        "[UNSUPPORTED_FEATURE] Cannot drop `{name}`: it is the current database (USE default first)"
                    )));
                }
                for dropped in self.warehouse().drop_database(&name, cascade)? {
                    self.deregister(&dropped.database, &dropped.name)?;
                    self.table_changed(&dropped.qualified(), true);
                    self.note_dropped(&dropped.qualified());
                }
                // DataFusion's catalog cannot remove a schema: an empty one stays behind in
                // this session, and USE does not take it.
                let _ = self
                    .default_catalog()?
                    .deregister_schema(schema_name(&name), true);
                completed("DROP DATABASE", None)
            }
            TableCommand::Use { database } => {
                // A schema of the session (DataFusion's CREATE SCHEMA) or a database.
                let session_schema = self
                    .schema_provider(&database)
                    .is_some_and(|schema| !schema.table_names().is_empty());
                let known = self.warehouse().database_exists(&database) || session_schema;
                if !known {
                    return Err(warehouse::schema_not_found(&database));
                }
                let at = self.current_statement_at();
                self.set(
                    "datafusion.catalog.default_schema",
                    schema_name(&database),
                    Source::Session { at },
                )?;
                completed("USE", None)
            }
            TableCommand::ShowDatabases => {
                let names = self.warehouse().databases()?;
                Ok(Some(text_rows(&["namespace"], vec![names])))
            }
            TableCommand::DropTable { name, if_exists } => {
                let Some(meta) = self.warehouse_table(&name).await? else {
                    let (database, table) = self.resolve_name(&name)?;
                    if self.session_table(&database, &table).await? {
                        // DataFusion's: a table or view of the session.
                        return Ok(None);
                    }
                    if !if_exists {
                        // DataFusion's error, as for any table that does not exist.
                        return Ok(None);
                    }
                    // Nothing to drop; for --resume, the table is known to be gone.
                    self.note_dropped(&format!("{database}.{table}"));
                    return completed("DROP TABLE", None);
                };
                self.warehouse().drop_table(&meta.database, &meta.name)?;
                self.deregister(&meta.database, &meta.name)?;
                self.table_changed(&meta.qualified(), true);
                self.note_dropped(&meta.qualified());
                completed("DROP TABLE", None)
            }
            TableCommand::ShowPartitions { table, spec } => {
                let meta = self.partitioned_table(&table, "SHOW PARTITIONS").await?;
                let spec = spec.unwrap_or_default();
                check_spec(&meta, &spec, false)?;
                let names: Vec<String> = meta
                    .partitions
                    .iter()
                    .filter(|p| spec.matches(&meta.partition_columns, &p.values))
                    .map(|p| meta.partition_name(p))
                    .collect();
                Ok(Some(text_rows(&["partition"], vec![names])))
            }
            TableCommand::AddPartitions {
                table,
                if_not_exists,
                partitions,
            } => self
                .add_partitions(&table, if_not_exists, partitions)
                .await
                .map(Some),
            TableCommand::Truncate { table, spec } => self.truncate(&table, spec).await,
            TableCommand::RepairTable { table, mode } => {
                self.repair_table(&table, mode).await.map(Some)
            }
            TableCommand::DropPartitions {
                table,
                if_exists,
                specs,
            } => self
                .drop_partitions(&table, if_exists, specs)
                .await
                .map(Some),
            TableCommand::DescribeExtended { table } => {
                self.describe_extended(&table, true).await.map(Some)
            }
            TableCommand::Describe { table } => match self.warehouse_table(&table).await? {
                Some(_) => self.describe_extended(&table, false).await.map(Some),
                // DataFusion's DESCRIBE of a table of the session (also for `DESC TABLE t`,
                // which DataFusion does not parse).
                None => {
                    let describe = SqlStatement {
                        text: format!("DESCRIBE {table}"),
                        ..statement.clone()
                    };
                    let plan = self.logical_plan(&describe).await?;
                    self.execute_plan(plan).await.map(Some)
                }
            },
            TableCommand::DescribeDatabase { name } => {
                if !self.warehouse().database_exists(&name) {
                    return Err(warehouse::schema_not_found(&name));
                }
                let rows = [
                    ("Catalog Name", "spark_catalog".to_string()),
                    ("Namespace Name", name.clone()),
                    (
                        "Comment",
                        match name.as_str() {
                            DEFAULT_DATABASE => "default database".to_string(),
                            _ => self.warehouse().database_comment(&name).unwrap_or_default(),
                        },
                    ),
                    (
                        "Location",
                        self.warehouse()
                            .database_location(&name)
                            .display()
                            .to_string(),
                    ),
                ];
                Ok(Some(text_rows(
                    &["info_name", "info_value"],
                    vec![
                        rows.iter().map(|(k, _)| k.to_string()).collect(),
                        rows.into_iter().map(|(_, v)| v).collect(),
                    ],
                )))
            }
            TableCommand::ShowTables { database, pattern } => {
                self.show_tables(database, pattern).await.map(Some)
            }
            command @ TableCommand::Insert { .. } => {
                let Some(write) = self.prepare_write(&command, statement).await? else {
                    return Ok(None);
                };
                let (committed, _) = self.run_prepared(&write, false).await?;
                completed(
                    "INSERT",
                    Some(committed_rows_written(&write.base, &committed)),
                )
            }
            TableCommand::Checkpoint { name, query_offset } => {
                let write = self
                    .prepare_checkpoint(&name, statement, query_offset)
                    .await?;
                let (committed, _) = self.run_prepared(&write, false).await?;
                completed("CHECKPOINT", Some(committed.rows()))
            }
        }
    }

    /// The plan of a query inside a statement (a CTAS's, an INSERT's), reading the caches
    /// there are.
    async fn query_plan(&self, query: &SqlStatement) -> Result<LogicalPlan> {
        self.query_plan_with(query, |_| {}).await
    }

    /// The plan of an INSERT's query, whose columns go to the table by position: columns
    /// without a name of their own get one (`_c0`, …), so `SELECT 1, 1` is two columns, as
    /// in Spark.
    async fn positional_query_plan(&self, query: &SqlStatement) -> Result<LogicalPlan> {
        self.query_plan_with(query, name_positional_columns).await
    }

    async fn query_plan_with(
        &self,
        query: &SqlStatement,
        change: impl FnOnce(&mut datafusion::sql::parser::Statement),
    ) -> Result<LogicalPlan> {
        let plan = self.logical_plan_with(query, change).await?;
        if !matches!(
            plan,
            LogicalPlan::Ddl(_) | LogicalPlan::Dml(_) | LogicalPlan::Copy(_)
        ) {
            return self
                .use_cached_data(plan, super::cache::Materialize::Yes)
                .await;
        }
        Err(Error::Table(
            "the statement's query must be a query (SELECT, VALUES, WITH …)".into(),
        ))
    }

    async fn partitioned_table(&self, name: &str, statement: &str) -> Result<TableMeta> {
        let meta = self.existing_table(name).await?;
        if !meta.is_partitioned() {
            return Err(Error::Table(format!(
                "[INVALID_PARTITION_OPERATION.PARTITION_SCHEMA_IS_EMPTY] {statement} is not allowed on `{}`: it is not partitioned",
                meta.qualified()
            )));
        }
        Ok(meta)
    }

    async fn existing_table(&self, name: &str) -> Result<TableMeta> {
        match self.warehouse_table(name).await? {
            Some(meta) => Ok(meta),
            None => {
                let (database, table) = self.resolve_name(name)?;
                match self.session_table(&database, &table).await? {
                    true => Err(Error::Table(format!(
                        "[UNSUPPORTED_FEATURE] `{name}` is a table of this session, not of the warehouse; partitions and DESCRIBE EXTENDED are about warehouse tables (CREATE TABLE … USING parquet)"
                    ))),
                    false => Err(warehouse::table_not_found(&format!("{database}.{table}"))),
                }
            }
        }
    }

    async fn create_table(
        &self,
        create: CreateTable,
        statement: &SqlStatement,
    ) -> Result<StatementOutput> {
        match self.prepare_create(create, statement).await? {
            Created::Done => finished("CREATE TABLE", None),
            Created::Write(write) => {
                let (committed, _) = self.run_prepared(&write, false).await?;
                finished("CREATE TABLE", Some(committed.rows()))
            }
        }
    }

    /// Creates the table at once when it has no query (or exists and IF NOT EXISTS says
    /// so); otherwise returns the write of its query, to run or to explain.
    async fn prepare_create(
        &self,
        mut create: CreateTable,
        statement: &SqlStatement,
    ) -> Result<Created> {
        let (database, name) = self.resolve_name(&create.name)?;
        let qualified = format!("{database}.{name}");
        if create.or_replace {
            return Err(Error::Table(format!(
                "[UNSUPPORTED_FEATURE] CREATE OR REPLACE TABLE `{qualified}` … USING: replace its rows with INSERT OVERWRITE, or DROP TABLE it first"
            )));
        }
        let provider = create.provider.clone().unwrap_or_else(|| "parquet".into());
        if provider != "parquet" {
            return Err(Error::Table(format!(
                "[UNSUPPORTED_DATASOURCE] `{qualified}` USING {provider}: warehouse tables are stored as parquet (CREATE EXTERNAL TABLE … STORED AS {} reads other formats in place)",
                provider.to_ascii_uppercase()
            )));
        }
        if !self.warehouse().database_exists(&database) {
            return Err(warehouse::schema_not_found(&database));
        }
        let exists = self.warehouse().table(&database, &name)?.is_some()
            || self.session_table(&database, &name).await?;
        if exists {
            return match create.if_not_exists {
                true => Ok(Created::Done),
                false => Err(warehouse::table_exists(&qualified)),
            };
        }
        let query = match create.query_offset {
            Some(offset) => {
                if create.columns.is_some() {
                    return Err(Error::Table(format!(
                        "[UNSUPPORTED_FEATURE] CREATE TABLE `{qualified}` with both a column list and AS query: the query's columns are the table's"
                    )));
                }
                Some(self.query_plan(&query_statement(statement, offset)).await?)
            }
            None => None,
        };
        let (kind, location) = match &create.location {
            Some(location) => (
                TableKind::External,
                std::path::absolute(location)
                    .map_err(|e| Error::io("resolve the table location", location, e))?,
            ),
            None => (
                TableKind::Managed,
                self.warehouse().database_location(&database).join(&name),
            ),
        };
        if kind == TableKind::External
            && create.columns.is_none()
            && query.is_none()
            && create.partitioned_by.is_empty()
        {
            // As Spark: `c=v/` directories under the location are partitions of column `c`.
            create.partitioned_by = partition_columns_under(&location)?;
        }
        let schema: SchemaRef = match (&create.columns, &query) {
            (Some(columns), _) => self.column_schema(columns, &qualified).await?,
            (None, Some(query)) => Arc::new(query.schema().as_arrow().clone()),
            (None, None) if kind == TableKind::External => {
                infer_schema(&location, &create.partitioned_by)?
            }
            (None, None) => {
                return Err(Error::Table(format!(
                    "CREATE TABLE `{qualified}` needs its columns, `(a INT, …)`, or a query, `AS SELECT …`"
                )));
            }
        };
        let mut meta = new_table_meta(&database, &name, kind, location, &schema, &create)?;
        meta.compression()?;
        if let Some(columns) = &create.columns {
            let declared = char_types(columns);
            for column in &mut meta.columns {
                column.char_type = declared.get(&column.name).map(CharType::name);
            }
        }
        if kind == TableKind::Managed && has_data(&meta.location) {
            // Another table's files, or files left there: a managed table would own (and
            // its DROP delete) them.
            return Err(Error::Table(format!(
                "[LOCATION_ALREADY_EXISTS] Cannot create the managed table `{qualified}`: its location '{}' already exists and holds files; pick another name or remove that directory",
                meta.location.display()
            )));
        }
        match query {
            Some(query) => {
                let plan = align_by_name(&meta, query)?;
                Ok(Created::Write(Box::new(PreparedWrite {
                    base: meta,
                    plan,
                    mode: WriteMode::Create,
                    spec: PartitionSpec::default(),
                    replaces: None,
                })))
            }
            None => {
                if kind == TableKind::External {
                    meta.partitions =
                        discover_partitions(&meta, &self.warehouse().files_being_written())?;
                }
                meta.version = 1;
                self.warehouse().create_table(&meta)?;
                self.register_warehouse_table(&meta)?;
                self.note_write(&meta);
                self.table_changed(&qualified, true);
                Ok(Created::Done)
            }
        }
    }

    /// The schema of a column list, `a INT, b STRING`, as DataFusion types it.
    async fn column_schema(&self, columns: &str, table: &str) -> Result<SchemaRef> {
        let sql = format!("CREATE TABLE stagesql_columns ({columns})");
        let plan = self
            .ctx
            .state()
            .create_logical_plan(&sql)
            .await
            .map_err(|e| {
                Error::Table(format!(
                    "the columns of `{table}` do not parse: {}",
                    Error::DataFusion(e).message()
                ))
            })?;
        match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => {
                Ok(Arc::new(create.input.schema().as_arrow().clone()))
            }
            _ => Err(Error::Internal(
                "a column list did not plan as columns".into(),
            )),
        }
    }

    /// Runs a prepared write and commits it; returns the committed version, and the job's
    /// stages and report when it ran as stages (EXPLAIN ANALYZE asks for that with
    /// `force_stages`, in any mode).
    pub(super) async fn run_prepared(
        &self,
        write: &PreparedWrite,
        force_stages: bool,
    ) -> Result<(TableMeta, Option<(StageGraph, JobReport)>)> {
        let base = &write.base;
        let write_id = uuid::Uuid::new_v4().simple().to_string();
        let staging = base.location.join(format!(".stagesql-staging-{write_id}"));
        let started = crate::warehouse::begin_write(self.warehouse(), base, &staging)?;
        let options = WriteOptions {
            staging: staging.clone(),
            write_id,
            partition_columns: base.partition_columns.clone(),
            compression: base.compression()?,
            slow_tasks: self.slow_write_tasks()?,
        };
        self.note_reads(&write.plan);
        let ran = self.run_write_job(&write.plan, options, force_stages).await;
        // Caches reading the table are computed again, also after a failed write.
        self.table_changed(&base.qualified(), false);
        let (batches, job) = ran?;
        let files = warehouse::written_files(&batches)?;
        // What the write's job returned is its rows written, not the files' list.
        let job = job.map(|(graph, mut report)| {
            report.result = Some(crate::scheduler::ResultSize {
                tasks: report.result.map_or(0, |r| r.tasks),
                rows: files.iter().map(|f| f.rows).sum(),
                bytes: files.iter().map(|f| f.bytes).sum(),
            });
            self.record_job(report.clone());
            (graph, report)
        });
        let pause = match self.setting(keys::TEST_SLOW_COMMIT_MS).parse::<u64>() {
            Ok(ms) if ms > 0 => Some(Duration::from_millis(ms)),
            _ => None,
        };
        let warehouse = self.warehouse().clone();
        let (base, mode, spec) = (base.clone(), write.mode, write.spec.clone());
        let committed = tokio::task::spawn_blocking(move || {
            warehouse::commit_write(
                &warehouse,
                started,
                &base,
                files,
                mode,
                &spec,
                &staging,
                warehouse::CommitPause(pause),
            )
        })
        .await
        .map_err(|e| Error::Internal(format!("the commit task failed: {e}")))??;
        if let Some(old) = &write.replaces {
            let _ = std::fs::remove_dir_all(old);
        }
        let qualified = committed.qualified();
        if write.mode == WriteMode::Create || write.replaces.is_some() {
            // A new table, or a checkpoint with new columns.
            self.register_warehouse_table(&committed)?;
            self.table_changed(&qualified, true);
        }
        self.table_changed(&qualified, false);
        self.note_write(&committed);
        Ok((committed, job))
    }

    /// Runs the write's job: in stages mode, the write's tasks are the last stage's;
    /// pipelined, DataFusion's streams run them. Returns the rows naming the written files,
    /// and the stages and report of a job of stages.
    async fn run_write_job(
        &self,
        plan: &LogicalPlan,
        options: WriteOptions,
        force_stages: bool,
    ) -> Result<(Vec<RecordBatch>, Option<(StageGraph, JobReport)>)> {
        let wrap: PlanWrap = Arc::new(move |physical| write_on_top(physical, options.clone()));
        if force_stages || self.execution_mode() == super::ExecutionMode::Stages {
            let (graph, stream, report) = self.run_job_wrapped(plan, wrap).await?;
            return Ok((stream.try_collect().await?, Some((graph, report))));
        }
        let state = self.ctx.state();
        let physical = wrap(state.create_physical_plan(plan).await?);
        Ok((
            datafusion::physical_plan::collect(physical, state.task_ctx()).await?,
            None,
        ))
    }

    /// The stages a prepared write would run, without running it (EXPLAIN).
    pub(super) async fn plan_write(&self, write: &PreparedWrite) -> Result<StageGraph> {
        let options = WriteOptions {
            staging: write.base.location.join(".stagesql-staging-<write>"),
            write_id: "<write>".into(),
            partition_columns: write.base.partition_columns.clone(),
            compression: write.base.compression()?,
            slow_tasks: Vec::new(),
        };
        let wrap: PlanWrap = Arc::new(move |physical| write_on_top(physical, options.clone()));
        self.plan_stages_wrapped(&write.plan, wrap).await
    }

    /// The write a statement makes (an INSERT into a warehouse table, a CTAS with USING, a
    /// CHECKPOINT), prepared to run or to explain; `None` for an INSERT that is DataFusion's.
    pub(super) async fn prepare_write(
        &self,
        command: &TableCommand,
        statement: &SqlStatement,
    ) -> Result<Option<PreparedWrite>> {
        match command {
            TableCommand::Insert {
                table,
                overwrite,
                spec,
                columns,
                by_name,
                query_offset,
                query_text,
            } => {
                let Some(meta) = self.warehouse_table(table).await? else {
                    // DataFusion's INSERT (INTO or OVERWRITE) into a table of the session, or
                    // its error for a table that does not exist.
                    if spec.is_none() && !by_name && query_text.is_none() {
                        return Ok(None);
                    }
                    let (database, name) = self.resolve_name(table)?;
                    if self.session_table(&database, &name).await? {
                        return Err(Error::Table(match spec.is_some() {
                            true => format!(
                                "[NOT_A_PARTITIONED_TABLE] `{table}` is a table of this session, which has no partitions; PARTITION clauses write warehouse tables (CREATE TABLE … USING parquet PARTITIONED BY …)"
                            ),
                            false => format!(
                                "[UNSUPPORTED_FEATURE] `{table}` is a table of this session: a leading WITH, BY NAME and TABLE s are for INSERTs into warehouse tables; write INSERT INTO {table} [WITH …] SELECT … instead"
                            ),
                        }));
                    }
                    return Err(warehouse::table_not_found(&format!("{database}.{name}")));
                };
                if meta.kind == TableKind::Checkpoint {
                    return Err(checkpoint_is_read_only(&meta, "INSERT"));
                }
                let mut query = query_statement(statement, *query_offset);
                if let Some(text) = query_text {
                    query.text = text.clone();
                }
                let query = self.positional_query_plan(&query).await?;
                let spec = spec.clone().unwrap_or_default();
                check_spec(&meta, &spec, true)?;
                let by_names: Option<Vec<String>> = by_name.then(|| {
                    query
                        .schema()
                        .fields()
                        .iter()
                        .map(|f| by_name_target(&meta, f.name()))
                        .collect()
                });
                let columns = by_names.as_deref().or(columns.as_deref());
                let plan = align_insert(&meta, query, &spec, columns)?;
                let mode = match (
                    overwrite,
                    self.setting(keys::PARTITION_OVERWRITE_MODE).as_str(),
                ) {
                    (false, _) => WriteMode::Append,
                    // As Spark: a PARTITION clause that names every partition column's value
                    // overwrites that partition, statically, in either mode.
                    (true, "dynamic") if !names_every_partition(&meta, &spec) => {
                        WriteMode::OverwriteDynamic
                    }
                    (true, _) => WriteMode::OverwriteStatic,
                };
                Ok(Some(PreparedWrite {
                    base: meta,
                    plan,
                    mode,
                    spec,
                    replaces: None,
                }))
            }
            TableCommand::CreateTable(create) if create.query_offset.is_some() => {
                match self.prepare_create(create.clone(), statement).await? {
                    Created::Write(write) => Ok(Some(*write)),
                    Created::Done => Err(warehouse::table_exists(&create.name)),
                }
            }
            TableCommand::Checkpoint { name, query_offset } => self
                .prepare_checkpoint(name, statement, *query_offset)
                .await
                .map(Some),
            _ => Err(Error::Table(
                "EXPLAIN shows the jobs of queries and writes; this statement runs none".into(),
            )),
        }
    }

    /// `stagesql.test.slow_write_tasks`: `task:ms` pairs.
    fn slow_write_tasks(&self) -> Result<Vec<(usize, Duration)>> {
        let text = self.setting(keys::TEST_SLOW_WRITE_TASKS);
        text.split(',')
            .map(str::trim)
            .filter(|item| !item.is_empty())
            .map(|item| {
                item.split_once(':')
                    .and_then(|(task, ms)| {
                        Some((task.trim().parse().ok()?, Duration::from_millis(ms.trim().parse().ok()?)))
                    })
                    .ok_or_else(|| {
                        Error::Config(format!(
                            "invalid value '{item}' in '{}': expected task:milliseconds, e.g. 1:60000",
                            keys::TEST_SLOW_WRITE_TASKS
                        ))
                    })
            })
            .collect()
    }

    async fn add_partitions(
        &self,
        table: &str,
        if_not_exists: bool,
        partitions: Vec<(PartitionSpec, Option<String>)>,
    ) -> Result<StatementOutput> {
        let base = self
            .partitioned_table(table, "ALTER TABLE … ADD PARTITION")
            .await?;
        let mut meta = base.clone();
        for (spec, location) in partitions {
            check_spec(&meta, &spec, false)?;
            let values = full_values(&meta, &spec)?;
            check_partition_values(&meta, meta.schema()?.as_ref(), &values)?;
            if meta.partitions.iter().any(|p| p.values == values) {
                if if_not_exists {
                    continue;
                }
                return Err(Error::Table(format!(
                    "[PARTITIONS_ALREADY_EXIST] Cannot ADD PARTITION {} to `{}`: it already exists (use ADD IF NOT EXISTS to skip it)",
                    warehouse::partition_dir(&meta.partition_columns, &values),
                    meta.qualified()
                )));
            }
            let location = location
                .map(|l| {
                    std::path::absolute(&l)
                        .map_err(|e| Error::io("resolve the partition location", &l, e))
                })
                .transpose()?;
            let mut partition = Partition {
                values,
                location,
                files: Vec::new(),
            };
            // A partition added over files that are there already reads them.
            partition.files = discover_files(
                &meta.partition_path(&partition),
                &self.warehouse().files_being_written(),
            )?;
            meta.partitions.push(partition);
        }
        meta.partitions.sort_by(|a, b| a.values.cmp(&b.values));
        self.commit_metadata(&base, meta, "ALTER TABLE ADD PARTITION")?;
        finished("ALTER TABLE", None)
    }

    /// `TRUNCATE TABLE t [PARTITION (…)]` on a warehouse table: a commit that keeps the
    /// table (and its partitions) without the rows of the partitions named, or all. As in
    /// Spark, an external or checkpoint table cannot be truncated. `None` hands a table of
    /// the session back to DataFusion.
    async fn truncate(
        &self,
        table: &str,
        spec: Option<PartitionSpec>,
    ) -> Result<Option<StatementOutput>> {
        let Some(base) = self.warehouse_table(table).await? else {
            let (database, name) = self.resolve_name(table)?;
            if self.session_table(&database, &name).await? && spec.is_none() {
                return Ok(None);
            }
            return Err(warehouse::table_not_found(&format!("{database}.{name}")));
        };
        match base.kind {
            TableKind::Checkpoint => return Err(checkpoint_is_read_only(&base, "TRUNCATE TABLE")),
            TableKind::External => {
                return Err(Error::Table(format!(
                    "[UNSUPPORTED_FEATURE.TABLE_OPERATION] TRUNCATE TABLE is not allowed on `{}`: it is an external table (its files belong to its location, not to the warehouse)",
                    base.qualified()
                )));
            }
            TableKind::Managed => {}
        }
        let spec = spec.unwrap_or_default();
        check_spec(&base, &spec, false)?;
        let mut meta = base.clone();
        let mut removed = Vec::new();
        for partition in &mut meta.partitions {
            if spec.matches(&base.partition_columns, &partition.values) {
                removed.extend(partition.files.iter().map(|f| base.file_path(partition, f)));
                partition.files.clear();
            }
        }
        self.commit_metadata(&base, meta, "TRUNCATE TABLE")?;
        for file in &removed {
            let _ = std::fs::remove_file(file);
        }
        completed("TRUNCATE TABLE", None)
    }

    /// `MSCK REPAIR TABLE` / `ALTER TABLE … RECOVER PARTITIONS`: partition directories found
    /// under the table's location that the catalog does not know are added (with their
    /// files); with DROP or SYNC, partitions whose directories are gone are dropped.
    async fn repair_table(&self, table: &str, mode: RepairMode) -> Result<StatementOutput> {
        let base = self.partitioned_table(table, "MSCK REPAIR TABLE").await?;
        if base.kind == TableKind::Checkpoint {
            return Err(checkpoint_is_read_only(&base, "MSCK REPAIR TABLE"));
        }
        let mut meta = base.clone();
        let (add, drop) = match mode {
            RepairMode::Add => (true, false),
            RepairMode::Drop => (false, true),
            RepairMode::Sync => (true, true),
        };
        if drop {
            let gone: Vec<Vec<Option<String>>> = meta
                .partitions
                .iter()
                .filter(|p| !meta.partition_path(p).is_dir())
                .map(|p| p.values.clone())
                .collect();
            meta.partitions.retain(|p| !gone.contains(&p.values));
        }
        if add {
            let being_written = self.warehouse().files_being_written();
            for found in discover_partitions(&meta, &being_written)? {
                if !meta.partitions.iter().any(|p| p.values == found.values) {
                    meta.partitions.push(found);
                }
            }
        }
        meta.partitions.sort_by(|a, b| a.values.cmp(&b.values));
        if meta.partitions != base.partitions {
            self.commit_metadata(&base, meta, "MSCK REPAIR TABLE")?;
        }
        finished("MSCK REPAIR TABLE", None)
    }

    /// An external table's files as they are now: each partition the catalog knows is
    /// listed again (files others added or removed under the table), and a new version is
    /// recorded when they differ. A new session does this for every external table, and
    /// REFRESH TABLE for its table, as Spark lists a data source table's files again in a
    /// new session or after REFRESH TABLE. Files of writes in progress are not taken.
    pub(super) fn relist_external(&self, base: &TableMeta) -> Result<TableMeta> {
        if base.kind != TableKind::External {
            return Ok(base.clone());
        }
        let being_written = self.warehouse().files_being_written();
        let mut meta = base.clone();
        for partition in &mut meta.partitions {
            let dir = base.partition_path(partition);
            partition.files = match dir.is_dir() {
                true => discover_files(&dir, &being_written)?,
                false => Vec::new(),
            };
        }
        if meta.partitions == base.partitions {
            return Ok(meta);
        }
        meta.version = base.version + 1;
        meta.last_operation = "REFRESH TABLE".into();
        meta.last_commit_ms = warehouse::now_ms();
        match self.warehouse().commit(&meta) {
            Ok(()) => {
                self.table_changed(&meta.qualified(), false);
                Ok(meta)
            }
            // Another writer committed meanwhile: its version is the table now.
            Err(Error::Table(message)) if message.starts_with("[CONCURRENT") => Ok(base.clone()),
            Err(error) => Err(error),
        }
    }

    async fn drop_partitions(
        &self,
        table: &str,
        if_exists: bool,
        specs: Vec<PartitionSpec>,
    ) -> Result<StatementOutput> {
        let base = self
            .partitioned_table(table, "ALTER TABLE … DROP PARTITION")
            .await?;
        let mut meta = base.clone();
        let mut dropped = Vec::new();
        for spec in specs {
            check_spec(&meta, &spec, false)?;
            let (gone, kept): (Vec<Partition>, Vec<Partition>) =
                std::mem::take(&mut meta.partitions)
                    .into_iter()
                    .partition(|p| spec.matches(&meta.partition_columns, &p.values));
            meta.partitions = kept;
            if gone.is_empty() && !if_exists {
                let named: Vec<String> = spec
                    .0
                    .iter()
                    .map(|(c, v)| format!("{c}={}", v.as_deref().unwrap_or("")))
                    .collect();
                return Err(Error::Table(format!(
                    "[PARTITIONS_NOT_FOUND] The partition ({}) cannot be found in `{}` (SHOW PARTITIONS lists them; DROP IF EXISTS skips it)",
                    named.join(", "),
                    meta.qualified()
                )));
            }
            dropped.extend(gone);
        }
        self.commit_metadata(&base, meta.clone(), "ALTER TABLE DROP PARTITION")?;
        if base.kind.owns_data() {
            for partition in &dropped {
                let _ = std::fs::remove_dir_all(base.partition_path(partition));
                if let Some(parent) = base.partition_path(partition).parent() {
                    crate::warehouse::remove_empty_dirs(parent, &base.location);
                }
            }
        }
        finished("ALTER TABLE", None)
    }

    /// Commits a change of the catalog entry alone (no files written).
    fn commit_metadata(
        &self,
        base: &TableMeta,
        mut meta: TableMeta,
        operation: &str,
    ) -> Result<()> {
        meta.version = base.version + 1;
        meta.last_operation = operation.to_string();
        meta.last_commit_ms = warehouse::now_ms();
        self.warehouse().commit(&meta)?;
        self.table_changed(&meta.qualified(), false);
        self.note_write(&meta);
        Ok(())
    }

    /// `SHOW TABLES [IN db] [LIKE 'pattern']` as Spark lists them: the tables of the
    /// database (the current one by default), then the session's own tables and views as
    /// temporary ones (Spark's temporary views); `*` in the pattern is any text and `|`
    /// separates alternatives, case-insensitively.
    async fn show_tables(
        &self,
        database: Option<String>,
        pattern: Option<String>,
    ) -> Result<StatementOutput> {
        let database = database.unwrap_or_else(|| self.current_database());
        if !self.warehouse().database_exists(&database) {
            return Err(warehouse::schema_not_found(&database));
        }
        let matches = |name: &str| {
            pattern.as_deref().is_none_or(|pattern| {
                pattern
                    .split('|')
                    .any(|alternative| like_star(&alternative.trim().to_ascii_lowercase(), name))
            })
        };
        let mut rows: Vec<(String, String, String)> = Vec::new();
        for name in self.warehouse().table_names(&database)? {
            if matches(&name) {
                rows.push((database.clone(), name, "false".into()));
            }
        }
        if let Some(schema) = self.schema_named(schema_name(DEFAULT_DATABASE)) {
            let mut own = Vec::new();
            for name in schema.table_names() {
                if self.session_table(DEFAULT_DATABASE, &name).await? && matches(&name) {
                    own.push(name);
                }
            }
            own.sort();
            rows.extend(own.into_iter().map(|n| (String::new(), n, "true".into())));
        }
        Ok(text_rows(
            &["namespace", "tableName", "isTemporary"],
            vec![
                rows.iter().map(|r| r.0.clone()).collect(),
                rows.iter().map(|r| r.1.clone()).collect(),
                rows.iter().map(|r| r.2.clone()).collect(),
            ],
        ))
    }

    async fn describe_extended(&self, table: &str, extended: bool) -> Result<StatementOutput> {
        let meta = self.existing_table(table).await?;
        let schema = meta.schema()?;
        let type_of = |field: &Field| {
            char_type_of(&meta, field.name())
                .map_or_else(|| spark_type(field.data_type()), |kind| kind.name())
        };
        let mut rows: Vec<[String; 3]> = schema
            .fields()
            .iter()
            .map(|f| [f.name().clone(), type_of(f), String::new()])
            .collect();
        if meta.is_partitioned() {
            rows.push([
                "# Partition Information".into(),
                String::new(),
                String::new(),
            ]);
            rows.push(["# col_name".into(), "data_type".into(), "comment".into()]);
            for column in &meta.partition_columns {
                let field = schema
                    .field_with_name(column)
                    .map_err(datafusion::error::DataFusionError::from)?;
                rows.push([column.clone(), type_of(field), String::new()]);
            }
        }
        if !extended {
            let column = |i: usize| rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>();
            return Ok(text_rows(
                &["col_name", "data_type", "comment"],
                vec![column(0), column(1), column(2)],
            ));
        }
        rows.push([String::new(), String::new(), String::new()]);
        rows.push([
            "# Detailed Table Information".into(),
            String::new(),
            String::new(),
        ]);
        let properties: Vec<String> = meta
            .properties
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        let mut detail = vec![
            ("Catalog", "spark_catalog".to_string()),
            ("Database", meta.database.clone()),
            ("Table", meta.name.clone()),
            ("Created Time", format_ms(meta.created_ms)),
            ("Type", meta.kind.as_str().to_string()),
            ("Provider", meta.provider.clone()),
            ("Location", meta.location.display().to_string()),
            ("Version", meta.version.to_string()),
            ("Last Operation", meta.last_operation.clone()),
            ("Last Commit", format_ms(meta.last_commit_ms)),
            (
                "Statistics",
                format!(
                    "{} bytes, {} rows, {} files",
                    meta.bytes(),
                    meta.rows(),
                    meta.file_count()
                ),
            ),
        ];
        if meta.is_partitioned() {
            detail.push(("Partition Provider", "Catalog".into()));
            detail.push(("Partitions", meta.partitions.len().to_string()));
        }
        if let Some(comment) = &meta.comment {
            detail.push(("Comment", comment.clone()));
        }
        if !properties.is_empty() {
            detail.push(("Table Properties", format!("[{}]", properties.join(", "))));
        }
        rows.extend(
            detail
                .into_iter()
                .map(|(k, v)| [k.to_string(), v, String::new()]),
        );
        let column = |i: usize| rows.iter().map(|r| r[i].clone()).collect::<Vec<_>>();
        Ok(text_rows(
            &["col_name", "data_type", "comment"],
            vec![column(0), column(1), column(2)],
        ))
    }

    /// CHECKPOINT's write: the query's rows into a new directory under
    /// `spark.checkpoint.dir`, as a new table or in place of the earlier checkpoint's files.
    async fn prepare_checkpoint(
        &self,
        name: &str,
        statement: &SqlStatement,
        query_offset: usize,
    ) -> Result<PreparedWrite> {
        let (database, table) = self.resolve_name(name)?;
        let qualified = format!("{database}.{table}");
        if !self.warehouse().database_exists(&database) {
            return Err(warehouse::schema_not_found(&database));
        }
        let existing = self.warehouse().table(&database, &table)?;
        if let Some(existing) = &existing
            && existing.kind != TableKind::Checkpoint
        {
            return Err(Error::Table(format!(
                "[TABLE_OR_VIEW_ALREADY_EXISTS] Cannot CHECKPOINT `{qualified}`: a {} table of that name exists",
                existing.kind.as_str().to_ascii_lowercase()
            )));
        }
        if existing.is_none() && self.session_table(&database, &table).await? {
            return Err(warehouse::table_exists(&qualified));
        }
        let query = self
            .query_plan(&query_statement(statement, query_offset))
            .await?;
        let schema = Arc::new(query.schema().as_arrow().clone());
        let dir = match self.setting(keys::CHECKPOINT_DIR) {
            dir if dir.trim().is_empty() => self.warehouse().root().join("_checkpoints"),
            dir => std::path::absolute(&dir)
                .map_err(|e| Error::io("resolve spark.checkpoint.dir", &dir, e))?,
        };
        let location = dir.join(format!(
            "{database}.{table}-{}",
            uuid::Uuid::new_v4().simple()
        ));
        let create = CreateTable::default();
        let fresh = new_table_meta(
            &database,
            &table,
            TableKind::Checkpoint,
            location,
            &schema,
            &create,
        )?;
        let plan = align_by_name(&fresh, query)?;
        Ok(match existing {
            None => PreparedWrite {
                base: fresh,
                plan,
                mode: WriteMode::Create,
                spec: PartitionSpec::default(),
                replaces: None,
            },
            // The new files go to a new directory; the old ones go with the commit.
            Some(existing) => PreparedWrite {
                base: TableMeta {
                    columns: fresh.columns.clone(),
                    location: fresh.location.clone(),
                    ..existing.clone()
                },
                plan,
                mode: WriteMode::OverwriteStatic,
                spec: PartitionSpec::default(),
                replaces: Some(existing.location),
            },
        })
    }

    /// After a write or DDL on a warehouse table: caches reading it compute again; when
    /// `replaced`, a cache of the table itself goes.
    fn table_changed(&self, qualified: &str, replaced: bool) {
        let (database, table) = qualified
            .split_once('.')
            .unwrap_or((DEFAULT_DATABASE, qualified));
        let reference = TableReference::partial(schema_name(database), table);
        self.invalidate_table(&reference, replaced);
    }

    /// Records the warehouse tables `plan` reads, at their versions now (for `--resume`):
    /// also through views, caches and tables of the session made from warehouse tables, so
    /// a step reading `CREATE TABLE m AS SELECT … FROM src` depends on `src`.
    pub(super) fn note_reads(&self, plan: &LogicalPlan) {
        let mut reads = BTreeMap::new();
        self.warehouse_reads(plan, &mut reads);
        // A table of the session that this plan creates or inserts into is made from them.
        let target = match plan {
            LogicalPlan::Ddl(DdlStatement::CreateMemoryTable(create)) => Some((&create.name, true)),
            LogicalPlan::Ddl(DdlStatement::CreateExternalTable(create)) => {
                Some((&create.name, true))
            }
            LogicalPlan::Dml(dml) => Some((&dml.table_name, false)),
            _ => None,
        };
        if let Some((name, created)) = target {
            let name = self.resolve(name).to_string();
            let mut sources = self
                .session_sources
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if created {
                sources.remove(&name);
            }
            let entry = sources.entry(name).or_default();
            entry.extend(reads.iter().map(|(t, v)| (t.clone(), *v)));
        }
        let mut effects = self.effects.lock().unwrap_or_else(|e| e.into_inner());
        for (table, version) in reads {
            effects.reads.entry(table).or_insert(version);
        }
    }

    /// The warehouse tables `plan` reads, directly or through views and session tables.
    fn warehouse_reads(&self, plan: &LogicalPlan, reads: &mut BTreeMap<String, u64>) {
        use datafusion::common::tree_node::TreeNodeRecursion;
        let _ = plan.apply_with_subqueries(|node| {
            let LogicalPlan::TableScan(scan) = node else {
                return Ok(TreeNodeRecursion::Continue);
            };
            let Ok(provider) = source_as_provider(&scan.source) else {
                return Ok(TreeNodeRecursion::Continue);
            };
            if let Some(table) = provider.downcast_ref::<WarehouseTable>() {
                if let Ok(meta) = table.meta() {
                    reads.entry(meta.qualified()).or_insert(meta.version);
                }
            } else if let Some(view) = provider.get_logical_plan() {
                self.warehouse_reads(&view, reads);
            } else {
                let name = self.resolve(&scan.table_name).to_string();
                let sources = self
                    .session_sources
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                for (table, version) in sources.get(&name).into_iter().flatten() {
                    reads.entry(table.clone()).or_insert(*version);
                }
            }
            Ok(TreeNodeRecursion::Continue)
        });
    }

    /// Records that a warehouse table is gone (version 0, for `--resume`).
    fn note_dropped(&self, qualified: &str) {
        let mut effects = self.effects.lock().unwrap_or_else(|e| e.into_inner());
        effects.writes.insert(qualified.to_string(), 0);
    }

    fn note_write(&self, meta: &TableMeta) {
        let mut effects = self.effects.lock().unwrap_or_else(|e| e.into_inner());
        effects.writes.insert(meta.qualified(), meta.version);
    }

    /// The warehouse tables the statements since the last call read and wrote, with their
    /// versions (what `--resume` records of a completed statement).
    pub fn take_effects(&self) -> StatementEffects {
        std::mem::take(&mut *self.effects.lock().unwrap_or_else(|e| e.into_inner()))
    }

    /// The committed version of a warehouse table (`database.table`); 0 when there is no
    /// such table.
    pub fn table_version(&self, qualified: &str) -> Result<u64> {
        let (database, table) = qualified
            .split_once('.')
            .unwrap_or((DEFAULT_DATABASE, qualified));
        Ok(self
            .warehouse()
            .table(database, table)?
            .map_or(0, |m| m.version))
    }
}

/// A write ready to run or to explain: the table version it starts from, its query in the
/// table's columns, and how it changes the table.
pub(super) struct PreparedWrite {
    pub(super) base: TableMeta,
    pub(super) plan: LogicalPlan,
    mode: WriteMode,
    spec: PartitionSpec,
    /// The directory of the checkpoint this one replaces, removed once it is committed.
    replaces: Option<PathBuf>,
}

/// What CREATE TABLE leaves to do.
enum Created {
    /// Nothing: the table was created (no query) or exists (IF NOT EXISTS).
    Done,
    /// Its query's write.
    Write(Box<PreparedWrite>),
}

/// The warehouse tables statements read and wrote, with versions.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StatementEffects {
    pub reads: BTreeMap<String, u64>,
    pub writes: BTreeMap<String, u64>,
}

/// Gives each unnamed column of the first SELECT of a query a name of its own (`_c0`, …).
fn name_positional_columns(statement: &mut datafusion::sql::parser::Statement) {
    use datafusion::sql::sqlparser::ast::{Ident, SelectItem, SetExpr, Statement};
    let datafusion::sql::parser::Statement::Statement(statement) = statement else {
        return;
    };
    let Statement::Query(query) = statement.as_mut() else {
        return;
    };
    let mut body = query.body.as_mut();
    loop {
        match body {
            SetExpr::SetOperation { left, .. } => body = left.as_mut(),
            SetExpr::Query(inner) => body = inner.body.as_mut(),
            SetExpr::Select(select) => {
                for (i, item) in select.projection.iter_mut().enumerate() {
                    if let SelectItem::UnnamedExpr(expr) = item {
                        *item = SelectItem::ExprWithAlias {
                            expr: expr.clone(),
                            alias: Ident::new(format!("_c{i}")),
                        };
                    }
                }
                return;
            }
            _ => return,
        }
    }
}

/// The write on top of a query's physical plan: a merge at the top goes (each task writes
/// its partition), anything else stays below the write.
///
/// Into a partitioned table, each task first sorts its rows by the partition columns, as
/// Spark's file writer does: it then writes one partition's file at a time (one file per
/// partition and task), and the sort spills when the task's memory runs short.
fn write_on_top(plan: Arc<dyn ExecutionPlan>, options: WriteOptions) -> Arc<dyn ExecutionPlan> {
    use datafusion::physical_expr::expressions::Column as ColumnExpr;
    use datafusion::physical_expr::{LexOrdering, PhysicalSortExpr};
    use datafusion::physical_plan::sorts::sort::SortExec;
    // A merge that also limits (ORDER BY … LIMIT) stays: the write is then one task.
    let merge = plan.is::<CoalescePartitionsExec>() || plan.is::<SortPreservingMergeExec>();
    let input = match merge && plan.fetch().is_none() {
        true => plan.children()[0].clone(),
        false => plan,
    };
    let schema = input.schema();
    let first = schema.fields().len() - options.partition_columns.len();
    let keys = (first..schema.fields().len()).map(|i| {
        PhysicalSortExpr::new_default(Arc::new(ColumnExpr::new(schema.field(i).name(), i)))
    });
    let input: Arc<dyn ExecutionPlan> = match LexOrdering::new(keys) {
        Some(ordering) => Arc::new(SortExec::new(ordering, input).with_preserve_partitioning(true)),
        None => input,
    };
    Arc::new(WriteFilesExec::new(input, options))
}

/// The rows the write put in the partitions it wrote: what INSERT OVERWRITE reports.
fn committed_rows_written(before: &TableMeta, after: &TableMeta) -> u64 {
    let old: std::collections::HashSet<&str> = before
        .partitions
        .iter()
        .flat_map(|p| p.files.iter().map(|f| f.path.as_str()))
        .collect();
    after
        .partitions
        .iter()
        .flat_map(|p| &p.files)
        .filter(|f| !old.contains(f.path.as_str()))
        .map(|f| f.rows)
        .sum()
}

/// A new table's catalog entry (version 0: not committed) with partition columns last.
fn new_table_meta(
    database: &str,
    name: &str,
    kind: TableKind,
    location: PathBuf,
    schema: &Schema,
    create: &CreateTable,
) -> Result<TableMeta> {
    let qualified = format!("{database}.{name}");
    let mut seen = std::collections::HashSet::new();
    for field in schema.fields() {
        if !seen.insert(field.name().to_ascii_lowercase()) {
            return Err(Error::Table(format!(
                "[COLUMN_ALREADY_EXISTS] The column `{}` appears twice in `{qualified}`",
                field.name()
            )));
        }
    }
    let mut partition_columns = Vec::new();
    for column in &create.partitioned_by {
        let field = schema
            .fields()
            .iter()
            .find(|f| f.name().eq_ignore_ascii_case(column))
            .ok_or_else(|| {
                Error::Table(format!(
                    "PARTITIONED BY ({column}): `{qualified}` has no column `{column}` (its columns: {})",
                    schema.fields().iter().map(|f| f.name().as_str()).collect::<Vec<_>>().join(", ")
                ))
            })?;
        if partition_columns.contains(field.name()) {
            return Err(Error::Table(format!(
                "PARTITIONED BY names `{column}` twice"
            )));
        }
        // A partition value is a directory name: only atomic types have one.
        if field.data_type().is_nested()
            || matches!(
                field.data_type(),
                DataType::Binary | DataType::LargeBinary | DataType::BinaryView | DataType::Null
            )
        {
            return Err(Error::Table(format!(
                "[INVALID_PARTITION_COLUMN_DATA_TYPE] Cannot use {} for partition column `{column}` of `{qualified}`: a partition column must have an atomic type",
                spark_type(field.data_type())
            )));
        }
        partition_columns.push(field.name().clone());
    }
    if !partition_columns.is_empty() && partition_columns.len() == schema.fields().len() {
        return Err(Error::Table(format!(
            "Cannot use all columns of `{qualified}` for partition columns: the files would hold nothing"
        )));
    }
    let column = |field: &Field| ColumnMeta {
        name: field.name().clone(),
        data_type: field.data_type().to_string(),
        nullable: true,
        char_type: None,
    };
    let mut columns: Vec<ColumnMeta> = schema
        .fields()
        .iter()
        .filter(|f| !partition_columns.contains(f.name()))
        .map(|f| column(f))
        .collect();
    for name in &partition_columns {
        columns.push(column(
            schema
                .field_with_name(name)
                .map_err(datafusion::error::DataFusionError::from)?,
        ));
    }
    let now = warehouse::now_ms();
    Ok(TableMeta {
        database: database.to_string(),
        name: name.to_string(),
        kind,
        provider: "parquet".into(),
        location,
        columns,
        partitions: match partition_columns.is_empty() {
            true => vec![Partition {
                values: Vec::new(),
                location: None,
                files: Vec::new(),
            }],
            false => Vec::new(),
        },
        partition_columns,
        properties: create.properties.clone(),
        comment: create.comment.clone(),
        table_id: uuid::Uuid::new_v4().to_string(),
        version: 0,
        created_ms: now,
        last_operation: "CREATE TABLE".into(),
        last_commit_ms: now,
    })
}

/// Checks that a PARTITION clause names partition columns of the table, each once, and
/// (unless `dynamic_allowed`) gives each a value.
fn check_spec(meta: &TableMeta, spec: &PartitionSpec, dynamic_allowed: bool) -> Result<()> {
    if spec.0.is_empty() {
        return Ok(());
    }
    if !meta.is_partitioned() {
        return Err(Error::Table(format!(
            "[NOT_A_PARTITIONED_TABLE] `{}` is not partitioned; a PARTITION clause does not apply",
            meta.qualified()
        )));
    }
    let mut seen = Vec::new();
    for (column, value) in &spec.0 {
        if !meta
            .partition_columns
            .iter()
            .any(|c| c.eq_ignore_ascii_case(column))
        {
            return Err(Error::Table(format!(
                "[NON_PARTITION_COLUMN] PARTITION clause cannot contain the non-partition column `{column}`: it is not a partition column of `{}` (its partition columns: {})",
                meta.qualified(),
                meta.partition_columns.join(", ")
            )));
        }
        if seen.contains(&column.to_ascii_lowercase()) {
            return Err(Error::Table(format!(
                "the PARTITION clause names `{column}` twice"
            )));
        }
        seen.push(column.to_ascii_lowercase());
        if value.is_none() && !dynamic_allowed {
            return Err(Error::Table(format!(
                "partition column `{column}` needs a value"
            )));
        }
    }
    // Each static value is a value of its column's type.
    let schema = meta.schema()?;
    for column in &meta.partition_columns {
        if let Some(value) = spec.static_partition_value(column) {
            check_partition_value(meta, &schema, column, value)?;
        }
    }
    // As in Spark, a dynamic partition column (named without a value, or not named) cannot
    // come before a static one: its directories would hold the static one's.
    if dynamic_allowed
        && let Some(dynamic) = meta
            .partition_columns
            .iter()
            .position(|c| spec.static_value(c).is_none())
        && let Some(static_after) = meta.partition_columns[dynamic..]
            .iter()
            .find(|c| spec.static_value(c).is_some())
    {
        return Err(Error::Table(format!(
            "[PARTITION_SPEC_INVALID] The dynamic partition column `{}` of `{}` comes before the static partition column `{static_after}`: static values can only be given to the leading partition columns",
            meta.partition_columns[dynamic],
            meta.qualified()
        )));
    }
    Ok(())
}

/// The error for a write or DDL on a CHECKPOINT's table: only CHECKPOINT writes it.
fn checkpoint_is_read_only(meta: &TableMeta, statement: &str) -> Error {
    Error::Table(format!(
        "[UNSUPPORTED_FEATURE.TABLE_OPERATION] {statement} is not allowed on `{}`: it is a checkpoint, written only by CHECKPOINT {} AS <query> (which replaces it)",
        meta.qualified(),
        meta.name
    ))
}

/// Checks that each partition value is a value of its column's type, as Spark does
/// (`spark.sql.sources.validatePartitionColumns`): a table with a partition `n=abc` of an
/// INT column could not be read.
fn check_partition_values(
    meta: &TableMeta,
    schema: &Schema,
    values: &[Option<String>],
) -> Result<()> {
    for (column, value) in meta.partition_columns.iter().zip(values) {
        check_partition_value(meta, schema, column, value.as_deref())?;
    }
    Ok(())
}

fn check_partition_value(
    meta: &TableMeta,
    schema: &Schema,
    column: &str,
    value: Option<&str>,
) -> Result<()> {
    let Ok(field) = schema.field_with_name(column) else {
        return Ok(());
    };
    let options = datafusion::arrow::compute::CastOptions {
        safe: false,
        ..Default::default()
    };
    match ScalarValue::Utf8(value.map(str::to_string))
        .cast_to_with_options(field.data_type(), &options)
    {
        Ok(_) => Ok(()),
        Err(_) => Err(Error::Table(format!(
            "[CAST_INVALID_INPUT] The partition value '{}' of `{column}` in `{}` is not a valid {}",
            value.unwrap_or_default(),
            meta.qualified(),
            spark_type(field.data_type())
        ))),
    }
}

/// The values of a PARTITION clause that names every partition column.
fn full_values(meta: &TableMeta, spec: &PartitionSpec) -> Result<Vec<Option<String>>> {
    meta.partition_columns
        .iter()
        .map(|column| match spec.static_partition_value(column) {
            Some(value) => Ok(value.map(str::to_string)),
            None => Err(Error::Table(format!(
                "the PARTITION clause must give every partition column of `{}` a value; `{column}` has none",
                meta.qualified()
            ))),
        })
        .collect()
}

/// The query of an INSERT (or CTAS) as the table's columns, in table order and types:
/// Spark's rules — columns by position (or by the names of a column list), static
/// partition values as constants, every other column from the query, missing columns of a
/// column list NULL.
fn align_insert(
    meta: &TableMeta,
    query: LogicalPlan,
    spec: &PartitionSpec,
    columns: Option<&[String]>,
) -> Result<LogicalPlan> {
    let schema = meta.schema()?;
    let table = meta.qualified();
    let is_static =
        |name: &str| meta.is_partition_column(name) && spec.static_value(name).is_some();
    // The table columns the query's columns go to, in order.
    let targets: Vec<String> = match columns {
        Some(names) => {
            let mut targets = Vec::new();
            for name in names {
                let field = schema
                    .fields()
                    .iter()
                    .find(|f| f.name().eq_ignore_ascii_case(name))
                    .ok_or_else(|| {
                        Error::Table(format!(
                            "[UNRESOLVED_COLUMN] `{name}` is not a column of `{table}`"
                        ))
                    })?;
                if is_static(field.name()) {
                    return Err(Error::Table(format!(
                        "[STATIC_PARTITION_COLUMN_IN_INSERT_COLUMN_LIST] `{name}` has a static value in the PARTITION clause; it cannot be in the column list too"
                    )));
                }
                if targets.contains(field.name()) {
                    return Err(Error::Table(format!(
                        "the column list names `{name}` twice"
                    )));
                }
                targets.push(field.name().clone());
            }
            targets
        }
        None => schema
            .fields()
            .iter()
            .filter(|f| !is_static(f.name()))
            .map(|f| f.name().clone())
            .collect(),
    };
    let given = query.schema().fields().len();
    if given != targets.len() {
        let kind = match given < targets.len() {
            true => "NOT_ENOUGH_DATA_COLUMNS",
            false => "TOO_MANY_DATA_COLUMNS",
        };
        let quoted = |names: Vec<String>| {
            names
                .iter()
                .map(|n| format!("`{n}`"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        return Err(Error::Table(format!(
            "[INSERT_COLUMN_ARITY_MISMATCH.{kind}] Cannot write to `{table}`: the query gives {given} columns, the table takes {}: {}{}",
            targets.len(),
            quoted(targets.clone()),
            match spec.0.iter().any(|(_, v)| v.is_some()) {
                true => " (static partition columns are not among them)",
                false => "",
            }
        )));
    }
    let mut exprs: Vec<Expr> = Vec::new();
    for field in schema.fields() {
        let name = field.name();
        let expr = if let Some(value) = spec
            .static_partition_value(name)
            .filter(|_| meta.is_partition_column(name))
        {
            let value = ScalarValue::Utf8(value.map(str::to_string))
                .cast_to(field.data_type())
                .map_err(|e| {
                    Error::Table(format!(
                        "the PARTITION value '{}' of `{name}` is not a {}: {}",
                        value.unwrap_or("NULL"),
                        spark_type(field.data_type()),
                        e.message()
                    ))
                })?;
            lit(value)
        } else if let Some(position) = targets.iter().position(|t| t == name) {
            let (qualifier, source) = query.schema().qualified_field(position);
            if !can_store_assign(source.data_type(), field.data_type()) {
                return Err(Error::Table(format!(
                    "[INCOMPATIBLE_DATA_FOR_TABLE.CANNOT_SAFELY_CAST] Cannot write incompatible data for the table `{table}`: Cannot safely cast `{name}` \"{}\" to \"{}\" (CAST it in the query to say so)",
                    spark_type(source.data_type()).to_ascii_uppercase(),
                    spark_type(field.data_type()).to_ascii_uppercase()
                )));
            }
            let value = cast(
                Expr::Column(Column::new(qualifier.cloned(), source.name())),
                field.data_type().clone(),
            );
            match char_type_of(meta, name) {
                Some(kind) => cast(kind.write(value, name), field.data_type().clone()),
                None => value,
            }
        } else {
            lit(ScalarValue::try_from(field.data_type())?)
        };
        exprs.push(expr.alias(name));
    }
    Ok(LogicalPlanBuilder::from(query).project(exprs)?.build()?)
}

/// The table column a query column of this name goes to with BY NAME: the column of that
/// name, in any case (an unknown name stays as it is, for align_insert's error).
fn by_name_target(meta: &TableMeta, name: &str) -> String {
    meta.columns
        .iter()
        .find(|c| c.name.eq_ignore_ascii_case(name))
        .map_or_else(|| name.to_string(), |c| c.name.clone())
}

/// The declared CHAR(n)/VARCHAR(n) types of a column list, by column name as DataFusion
/// names the columns (unquoted names lower-cased).
fn char_types(columns: &str) -> std::collections::HashMap<String, CharType> {
    use datafusion::sql::sqlparser::ast::Statement;
    use datafusion::sql::sqlparser::dialect::GenericDialect;
    use datafusion::sql::sqlparser::parser::Parser;
    let sql = format!("CREATE TABLE columns ({columns})");
    let Ok(statements) = Parser::parse_sql(&GenericDialect {}, &sql) else {
        return Default::default();
    };
    let Some(Statement::CreateTable(create)) = statements.into_iter().next() else {
        return Default::default();
    };
    create
        .columns
        .iter()
        .filter_map(|column| {
            let kind = CharType::parse(&column.data_type.to_string())?;
            let name = match column.name.quote_style {
                None => column.name.value.to_ascii_lowercase(),
                Some(_) => column.name.value.clone(),
            };
            Some((name, kind))
        })
        .collect()
}

/// The declared character type of column `name`, if any.
fn char_type_of(meta: &TableMeta, name: &str) -> Option<CharType> {
    meta.columns
        .iter()
        .find(|c| c.name == name)
        .and_then(|c| c.char_type.as_deref())
        .and_then(CharType::parse)
}

/// Whether `name` matches a SHOW TABLES pattern alternative, where `*` is any text.
fn like_star(pattern: &str, name: &str) -> bool {
    let parts: Vec<&str> = pattern.split('*').collect();
    let [first, middle @ .., last] = parts.as_slice() else {
        return pattern == name;
    };
    let Some(mut rest) = name.strip_prefix(first) else {
        return false;
    };
    for part in middle {
        match rest.find(part) {
            Some(at) => rest = &rest[at + part.len()..],
            None => return false,
        }
    }
    rest.len() >= last.len() && rest.ends_with(last)
}

/// Whether a value of type `from` may be written to a column of type `to` without a CAST,
/// by Spark's ANSI store assignment rules (`spark.sql.storeAssignmentPolicy=ANSI`, its
/// default): numbers to numbers (an overflow fails the write), anything atomic to a
/// string, dates and timestamps to each other, NULL to anything, and nested types whose
/// parts may be. A string is not written to a number, nor a boolean to a number.
fn can_store_assign(from: &DataType, to: &DataType) -> bool {
    use DataType::*;
    let string = |t: &DataType| matches!(t, Utf8 | LargeUtf8 | Utf8View);
    let datetime = |t: &DataType| matches!(t, Date32 | Date64 | Timestamp(_, _));
    match (from, to) {
        _ if from == to => true,
        (Dictionary(_, values), _) => can_store_assign(values, to),
        (Null, _) => true,
        (a, b) if a.is_numeric() && b.is_numeric() => true,
        (a, b) if string(a) && string(b) => true,
        (a, b) if string(b) => !a.is_nested(),
        (a, b) if datetime(a) && datetime(b) => true,
        (Binary | LargeBinary | BinaryView, Binary | LargeBinary | BinaryView) => true,
        (
            List(a) | LargeList(a) | ListView(a) | FixedSizeList(a, _),
            List(b) | LargeList(b) | ListView(b) | FixedSizeList(b, _),
        ) => can_store_assign(a.data_type(), b.data_type()),
        (Struct(a), Struct(b)) => {
            a.len() == b.len()
                && a.iter()
                    .zip(b.iter())
                    .all(|(x, y)| can_store_assign(x.data_type(), y.data_type()))
        }
        (Map(a, _), Map(b, _)) => can_store_assign(a.data_type(), b.data_type()),
        _ => false,
    }
}

/// A query whose columns are the table's (a CTAS, a CHECKPOINT) in the table's order: by
/// name, since partition columns moved to the end.
fn align_by_name(meta: &TableMeta, query: LogicalPlan) -> Result<LogicalPlan> {
    let names: Vec<String> = query
        .schema()
        .fields()
        .iter()
        .map(|f| f.name().clone())
        .collect();
    align_insert(meta, query, &PartitionSpec::default(), Some(&names))
}

/// Whether a PARTITION clause gives every partition column of the table a value.
fn names_every_partition(meta: &TableMeta, spec: &PartitionSpec) -> bool {
    meta.partition_columns
        .iter()
        .all(|column| spec.static_value(column).is_some())
}

/// Whether `dir` exists and holds anything but hidden entries.
fn has_data(dir: &Path) -> bool {
    std::fs::read_dir(dir).is_ok_and(|entries| {
        entries
            .filter_map(|e| e.ok())
            .any(|e| !e.file_name().to_string_lossy().starts_with(['.', '_']))
    })
}

/// The Parquet files directly in `dir` (not hidden, not `excluded`: files of writes in
/// progress), with sizes and row counts.
fn discover_files(dir: &Path, excluded: &HashSet<PathBuf>) -> Result<Vec<DataFile>> {
    use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
    let mut files = Vec::new();
    for name in warehouse::list_dir(dir)? {
        let path = dir.join(&name);
        if name.starts_with(['.', '_']) || !path.is_file() || excluded.contains(&path) {
            continue;
        }
        let file = std::fs::File::open(&path).map_err(|e| Error::io("open", &path, e))?;
        let size = file
            .metadata()
            .map_err(|e| Error::io("stat", &path, e))?
            .len();
        let reader = SerializedFileReader::new(file).map_err(|e| {
            Error::Table(format!("'{}' is not a Parquet file: {e}", path.display()))
        })?;
        files.push(DataFile {
            path: name,
            size,
            rows: reader.metadata().file_metadata().num_rows() as u64,
        });
    }
    files.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(files)
}

/// The partitions of an external table over existing files: `c=v/…` directories (or the
/// location itself when unpartitioned).
fn discover_partitions(meta: &TableMeta, excluded: &HashSet<PathBuf>) -> Result<Vec<Partition>> {
    if !meta.is_partitioned() {
        return Ok(vec![Partition {
            values: Vec::new(),
            location: None,
            files: discover_files(&meta.location, excluded)?,
        }]);
    }
    let schema = meta.schema()?;
    let mut partitions = Vec::new();
    for dir in partition_dirs(&meta.location, meta.partition_columns.len())? {
        let relative = dir
            .strip_prefix(&meta.location)
            .unwrap_or(&dir)
            .to_string_lossy()
            .into_owned();
        if let Some(values) =
            crate::warehouse::parse_partition_dir(&meta.partition_columns, &relative)
        {
            check_partition_values(meta, &schema, &values)?;
            partitions.push(Partition {
                values,
                location: None,
                files: discover_files(&dir, excluded)?,
            });
        }
    }
    partitions.sort_by(|a, b| a.values.cmp(&b.values));
    Ok(partitions)
}

/// The partition columns of the `c=v/d=w/…` directories under `root`, as Spark infers them:
/// down the first directory of each level, while a level holds such directories and no
/// data files.
fn partition_columns_under(root: &Path) -> Result<Vec<String>> {
    let mut columns = Vec::new();
    let mut dir = root.to_path_buf();
    loop {
        let visible: Vec<String> = warehouse::list_dir(&dir)?
            .into_iter()
            .filter(|name| !name.starts_with(['.', '_']))
            .collect();
        let (dirs, files): (Vec<&String>, Vec<&String>) =
            visible.iter().partition(|name| dir.join(name).is_dir());
        let names: std::collections::BTreeSet<&str> = dirs
            .iter()
            .filter_map(|name| name.split_once('=').map(|(column, _)| column))
            .collect();
        if !files.is_empty() || names.is_empty() {
            return Ok(columns);
        }
        if names.len() > 1 {
            return Err(Error::Table(format!(
                "Conflicting partition column names under '{}': {}",
                dir.display(),
                names.into_iter().collect::<Vec<_>>().join(", ")
            )));
        }
        let column = warehouse::unescape_path_name(names.into_iter().next().unwrap_or_default());
        columns.push(column);
        let Some(first) = dirs.into_iter().min() else {
            return Ok(columns);
        };
        dir = dir.join(first);
    }
}

/// Directories `depth` levels under `root` whose names are `c=v` (not hidden).
fn partition_dirs(root: &Path, depth: usize) -> Result<Vec<PathBuf>> {
    let mut level = vec![root.to_path_buf()];
    for _ in 0..depth {
        let mut next = Vec::new();
        for dir in level {
            for name in warehouse::list_dir(&dir)? {
                let path = dir.join(&name);
                if !name.starts_with(['.', '_']) && name.contains('=') && path.is_dir() {
                    next.push(path);
                }
            }
        }
        level = next;
    }
    Ok(level)
}

/// The schema of an external table from its files: the first Parquet file's columns and
/// the partition columns, typed as Spark infers them from the directory names (whole
/// numbers as int or bigint, anything else string).
fn infer_schema(location: &Path, partition_columns: &[String]) -> Result<SchemaRef> {
    use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    let dirs = partition_dirs(location, partition_columns.len())?;
    let first = dirs
        .iter()
        .flat_map(|dir| warehouse::list_dir(dir).unwrap_or_default().into_iter().map(move |n| dir.join(n)))
        .find(|p| p.is_file() && !p.file_name().is_some_and(|n| n.to_string_lossy().starts_with(['.', '_'])))
        .ok_or_else(|| {
            Error::Table(format!(
                "no Parquet files at '{}' to take the table's columns from; give them, `(a INT, …)`",
                location.display()
            ))
        })?;
    let file = std::fs::File::open(&first).map_err(|e| Error::io("open", &first, e))?;
    let builder = ParquetRecordBatchReaderBuilder::try_new(file)
        .map_err(|e| Error::Table(format!("'{}' is not a Parquet file: {e}", first.display())))?;
    let mut fields: Vec<Field> = builder
        .schema()
        .fields()
        .iter()
        .map(|f| f.as_ref().clone())
        .collect();
    for (depth, column) in partition_columns.iter().enumerate() {
        let values: Vec<String> = dirs
            .iter()
            .filter_map(|dir| {
                let relative = dir.strip_prefix(location).ok()?;
                let part = relative
                    .components()
                    .nth(depth)?
                    .as_os_str()
                    .to_string_lossy()
                    .into_owned();
                Some(part.split_once('=')?.1.to_string())
            })
            .filter(|v| v != warehouse::NULL_PARTITION)
            .collect();
        let data_type = if !values.is_empty() && values.iter().all(|v| v.parse::<i32>().is_ok()) {
            DataType::Int32
        } else if !values.is_empty() && values.iter().all(|v| v.parse::<i64>().is_ok()) {
            DataType::Int64
        } else {
            DataType::Utf8
        };
        fields.push(Field::new(column, data_type, true));
    }
    Ok(Arc::new(Schema::new(fields)))
}

/// Spark's name of a type, as DESCRIBE shows it.
pub(crate) fn spark_type(data_type: &DataType) -> String {
    match data_type {
        DataType::Boolean => "boolean".into(),
        DataType::Int8 => "tinyint".into(),
        DataType::Int16 => "smallint".into(),
        DataType::Int32 => "int".into(),
        DataType::Int64 => "bigint".into(),
        DataType::Float32 => "float".into(),
        DataType::Float64 => "double".into(),
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => "string".into(),
        DataType::Binary | DataType::LargeBinary | DataType::BinaryView => "binary".into(),
        DataType::Date32 | DataType::Date64 => "date".into(),
        DataType::Timestamp(_, None) => "timestamp_ntz".into(),
        DataType::Timestamp(_, Some(_)) => "timestamp".into(),
        DataType::Decimal128(p, s) | DataType::Decimal256(p, s) => format!("decimal({p},{s})"),
        DataType::List(f) | DataType::LargeList(f) => {
            format!("array<{}>", spark_type(f.data_type()))
        }
        other => other.to_string().to_ascii_lowercase(),
    }
}

/// A time as Spark's DESCRIBE prints it, in UTC.
fn format_ms(ms: u64) -> String {
    datafusion::arrow::temporal_conversions::timestamp_ms_to_datetime(ms as i64).map_or_else(
        || ms.to_string(),
        |t| format!("{} UTC", t.format("%a %b %d %H:%M:%S %Y")),
    )
}

fn completed(tag: &str, rows: Option<u64>) -> Result<Option<StatementOutput>> {
    finished(tag, rows).map(Some)
}

fn finished(tag: &str, rows: Option<u64>) -> Result<StatementOutput> {
    Ok(StatementOutput::Done(Completion {
        tag: tag.to_string(),
        rows,
    }))
}

/// Rows of text columns.
fn text_rows(names: &[&str], columns: Vec<Vec<String>>) -> StatementOutput {
    let fields: Vec<Field> = names
        .iter()
        .map(|n| Field::new(*n, DataType::Utf8, false))
        .collect();
    let schema = Arc::new(Schema::new(fields));
    let arrays = columns
        .into_iter()
        .map(|c| Arc::new(StringArray::from(c)) as _)
        .collect();
    let batch = RecordBatch::try_new(schema.clone(), arrays).expect("columns match the schema");
    let stream = futures::stream::iter([Ok(batch)]);
    StatementOutput::Rows(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
}

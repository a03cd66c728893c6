//! CACHE TABLE, UNCACHE TABLE, CLEAR CACHE and REFRESH TABLE, and the use of cached data by
//! later plans (Spark's `CacheManager.useCachedData`): a plan that contains a cached
//! relation's analyzed plan reads the cache in its place.

use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Arc;

use datafusion::catalog::default_table_source::source_as_provider;
use datafusion::datasource::listing::ListingTable;
use datafusion::logical_expr::TableScan;

use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::common::{ResolvedTableReference, TableReference};
use datafusion::datasource::provider_as_source;
use datafusion::logical_expr::{DdlStatement, Expr, LogicalPlan, LogicalPlanBuilder};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::sorts::sort_preserving_merge::SortPreservingMergeExec;
use datafusion::physical_plan::{ExecutionPlan, ExecutionPlanProperties};
use futures::TryStreamExt;

use super::jobs::ResultLimit;
use super::{Completion, ExecutionMode, Session, StatementOutput};
use crate::cache::{CachedRelation, CachedTable, Recipe, StorageLevel};
use crate::error::{Error, Result};
use crate::sql::SqlStatement;
use crate::stages::{ShuffleReadExec, StageGraph};

/// Whether planning may run jobs to compute cached relations that have no data yet (a lazy
/// cache's first use). EXPLAIN without ANALYZE runs nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Materialize {
    Yes,
    No,
}

impl Session {
    /// `CACHE [LAZY] TABLE name [OPTIONS (…)] [[AS] query]`.
    pub(crate) async fn cache_table(
        &self,
        statement: &SqlStatement,
        name: &str,
        lazy: bool,
        level: StorageLevel,
        query_offset: Option<usize>,
    ) -> Result<StatementOutput> {
        let key = identifier(name);
        // As in Spark, caching what is cached already does nothing.
        if self.cache.get(&key).is_some() {
            return done("CACHE TABLE", None);
        }
        let created_view = match query_offset {
            Some(offset) => {
                if self.ctx.table_exist(table_ref(name))? {
                    return Err(Error::Config(format!(
                        "cannot CACHE TABLE {name} AS a query: a table or view named {name} exists; \
                         CACHE TABLE {name} caches it, or choose another name"
                    )));
                }
                let query = super::explain::query_statement(statement, offset);
                // Spark's CACHE TABLE … AS creates a temporary view of the query.
                let view = SqlStatement {
                    text: format!("CREATE VIEW {name} AS {}", query.text),
                    ..query
                };
                let view = self.logical_plan(&view).await?;
                self.ctx.execute_logical_plan(view).await?;
                true
            }
            None => {
                if !self.ctx.table_exist(table_ref(name))? {
                    return Err(Error::Config(format!(
                        "cannot CACHE TABLE {name}: no table or view named {name}"
                    )));
                }
                false
            }
        };
        let relation = match self.cached_relation(name, &key, level).await {
            Ok(relation) => Arc::new(relation),
            Err(error) => {
                self.drop_view_if(created_view, name).await;
                return Err(error);
            }
        };
        self.cache.add(relation.clone());
        if lazy {
            return done("CACHE TABLE", None);
        }
        // Queries that use it while it is being computed wait for it.
        let _computing = relation.computing.lock().await;
        match self.materialize(&relation, &[]).await {
            Ok(rows) => done("CACHE TABLE", Some(rows)),
            Err(error) => {
                // A failed CACHE TABLE leaves the session as it was.
                self.cache.remove(&key);
                self.drop_view_if(created_view, name).await;
                Err(error)
            }
        }
    }

    async fn drop_view_if(&self, created: bool, name: &str) {
        if created {
            let _ = self.ctx.sql(&format!("DROP VIEW IF EXISTS {name}")).await;
        }
    }

    /// The relation `name` (a table or view) as a cache: the analyzed plan of reading it,
    /// which is what a later plan that reads it contains.
    async fn cached_relation(
        &self,
        name: &str,
        key: &str,
        level: StorageLevel,
    ) -> Result<CachedRelation> {
        let read = self
            .ctx
            .state()
            .create_logical_plan(&format!("SELECT * FROM {name}"))
            .await?;
        let analyzed = self.analyze(read)?;
        // The relation itself, without the projection of `*`, and a view's body without its
        // name (the same query under another alias, or written inline, is the same plan).
        let mut plan = match analyzed {
            LogicalPlan::Projection(projection) => projection.input.as_ref().clone(),
            other => other,
        };
        while let LogicalPlan::SubqueryAlias(alias) = plan {
            plan = alias.input.as_ref().clone();
        }
        let mut sources = Vec::new();
        plan.apply_with_subqueries(|node| {
            if let LogicalPlan::TableScan(scan) = node {
                sources.push(scan.table_name.clone());
            }
            Ok(TreeNodeRecursion::Continue)
        })?;
        Ok(CachedRelation::new(key.to_string(), level, plan, sources))
    }

    pub(super) fn analyze(&self, plan: LogicalPlan) -> Result<LogicalPlan> {
        let state = self.ctx.state();
        Ok(state
            .analyzer()
            .execute_and_check(plan, state.config_options(), |_, _| {})?)
    }

    /// Computes `relation`'s blocks with a job; returns the rows cached. `computing` names
    /// the caches whose computation this is part of (none of them can be read by it).
    async fn materialize(
        &self,
        relation: &Arc<CachedRelation>,
        computing: &[String],
    ) -> Result<u64> {
        let epoch = relation.epoch();
        let computing: Vec<String> = computing
            .iter()
            .cloned()
            .chain([relation.name.clone()])
            .collect();
        let (plan, reads_caches) = Box::pin(self.use_cached_data_except(
            relation.plan.clone(),
            &computing,
            Materialize::Yes,
        ))
        .await?;
        // The block store's budget comes with the executors (also in pipelined mode).
        self.executors();
        self.cache.set_local_dir(self.local_dir());
        let (partitions, recipe) = match self.execution_mode() {
            ExecutionMode::Stages => self.compute_partitions(&plan, relation.level).await?,
            ExecutionMode::Pipelined => {
                // DataFusion's streaming plan may deal rows to partitions in any order
                // (round-robin repartitioning): as one partition, it computes the same rows
                // again.
                let physical = self.ctx.state().create_physical_plan(&plan).await?;
                let physical: Arc<dyn ExecutionPlan> =
                    match physical.output_partitioning().partition_count() {
                        1 => physical,
                        _ => Arc::new(CoalescePartitionsExec::new(physical)),
                    };
                let rows = physical
                    .execute(0, self.ctx.task_ctx())?
                    .try_collect()
                    .await?;
                let recipe = Recipe {
                    plan: physical,
                    shuffles: None,
                };
                (vec![rows], Some(recipe))
            }
        };
        let data = self
            .cache
            .materialize(relation, epoch, partitions, recipe, reads_caches)?;
        self.emit_cache_stored(&relation.name);
        Ok(data.rows())
    }

    /// Runs `plan` as a job whose last stage's partitions are read one by one (not merged),
    /// each becoming a block. For `MEMORY_ONLY`, whose blocks may be dropped, the job's
    /// shuffles stay (until the cache goes) so that a dropped block is computed again by
    /// running its last-stage task again.
    async fn compute_partitions(
        &self,
        plan: &LogicalPlan,
        level: StorageLevel,
    ) -> Result<(
        Vec<Vec<datafusion::arrow::array::RecordBatch>>,
        Option<Recipe>,
    )> {
        let (graph, output, report) = self
            .run_job_to_driver(plan, ResultLimit::Unchecked, keep_partitions)
            .await?;
        let partitions = output.plan.output_partitioning().partition_count();
        let reads = (0..partitions).map(|partition| {
            let plan = output.plan.clone();
            let context = output.context.clone();
            async move {
                plan.execute(partition, context)?
                    .try_collect::<Vec<_>>()
                    .await
            }
        });
        let blocks = futures::future::try_join_all(reads).await?;
        if level != StorageLevel::MemoryOnly {
            return Ok((blocks, None));
        }
        let last = last_stage(&graph)?;
        let ran = report
            .stages
            .iter()
            .find(|stage| stage.stage == last)
            .and_then(|stage| stage.plans.first())
            .map(|ran| crate::stages::stage_input(&ran.plan))
            .ok_or_else(|| {
                Error::Internal(format!("job {} ran no plan for stage {last}", report.job))
            })?;
        let plan = output
            .plan
            .clone()
            .transform_up(|node| match node.downcast_ref::<ShuffleReadExec>() {
                Some(reader) if reader.stage() == last => Ok(Transformed::yes(ran.clone())),
                _ => Ok(Transformed::no(node)),
            })?
            .data;
        // The blocks hold the last stage's output now; its parents' stay for the recipe, on
        // disk.
        self.block_store().remove_shuffle(last);
        self.block_store().spill_job(report.job)?;
        let recipe = Recipe {
            plan,
            shuffles: Some(output.shuffles),
        };
        Ok((blocks, Some(recipe)))
    }

    /// `plan` reading cached relations in place of the parts of it they computed.
    pub(crate) async fn use_cached_data(
        &self,
        plan: LogicalPlan,
        materialize: Materialize,
    ) -> Result<LogicalPlan> {
        Ok(self.use_cached_data_except(plan, &[], materialize).await?.0)
    }

    /// `plan` reading the cached relations other than `computing`, and the names of those
    /// it reads.
    async fn use_cached_data_except(
        &self,
        plan: LogicalPlan,
        computing: &[String],
        materialize: Materialize,
    ) -> Result<(LogicalPlan, Vec<String>)> {
        let relations: Vec<Arc<CachedRelation>> = self
            .cache
            .relations()
            .into_iter()
            .filter(|r| !computing.contains(&r.name))
            // One being computed has the plan of one of those: it cannot be read either.
            .filter(|r| {
                !computing
                    .iter()
                    .filter_map(|name| self.cache.get(name))
                    .any(|c| c.plan == r.plan)
            })
            .collect();
        if relations.is_empty() {
            return Ok((plan, Vec::new()));
        }
        let analyzed = self.analyze(plan.clone())?;
        let matching = |node: &LogicalPlan| relations.iter().find(|r| r.plan == *node).cloned();
        let mut used = Vec::new();
        analyzed.apply_with_subqueries(|node| {
            Ok(match matching(node) {
                Some(relation) => {
                    used.push(relation);
                    TreeNodeRecursion::Jump
                }
                None => TreeNodeRecursion::Continue,
            })
        })?;
        if used.is_empty() {
            return Ok((plan, Vec::new()));
        }
        for relation in &used {
            if relation.data().is_none() && materialize == Materialize::Yes {
                let _computing = relation.computing.lock().await;
                // Another query may have computed it meanwhile.
                if relation.data().is_none() {
                    Box::pin(self.materialize(relation, computing)).await?;
                }
            }
        }
        let mut read = Vec::new();
        let replaced = analyzed.transform_down_with_subqueries(|node| {
            let Some(relation) = matching(&node) else {
                return Ok(Transformed::no(node));
            };
            let Some(table) = CachedTable::new(relation.clone(), &self.cache) else {
                return Ok(Transformed::no(node));
            };
            read.push(relation.name.clone());
            let scan = LogicalPlanBuilder::scan(
                TableReference::bare(relation.name.clone()),
                provider_as_source(Arc::new(table)),
                None,
            )?
            .build()?;
            // Parents refer to the columns by the names and qualifiers of what it replaces.
            let columns: Vec<Expr> = scan
                .schema()
                .columns()
                .into_iter()
                .zip(node.schema().iter())
                .map(|(column, (qualifier, field))| {
                    Expr::Column(column).alias_qualified(qualifier.cloned(), field.name())
                })
                .collect();
            let scan = LogicalPlanBuilder::from(scan).project(columns)?.build()?;
            Ok(Transformed::new(scan, true, TreeNodeRecursion::Jump))
        })?;
        Ok((replaced.data, read))
    }

    /// `UNCACHE TABLE [IF EXISTS] name`.
    pub(crate) fn uncache_table(&self, name: &str, if_exists: bool) -> Result<StatementOutput> {
        let removed = self.cache.remove(&identifier(name));
        if let Some(relation) = &removed {
            self.emit_cache_removed(&relation.name);
        }
        if removed.is_none() && !if_exists && !self.ctx.table_exist(table_ref(name))? {
            return Err(Error::Config(format!(
                "cannot UNCACHE TABLE {name}: no table or view named {name} (UNCACHE TABLE IF EXISTS ignores that)"
            )));
        }
        done("UNCACHE TABLE", None)
    }

    /// `CLEAR CACHE`.
    pub(crate) fn clear_cache(&self) -> Result<StatementOutput> {
        let names = self.cache.names();
        self.cache.clear();
        for name in names {
            self.emit_cache_removed(&name);
        }
        done("CLEAR CACHE", None)
    }

    /// `REFRESH TABLE name`: cached data of `name`, and of caches that read it, is computed
    /// again when next used.
    pub(crate) async fn refresh_table(&self, name: &str) -> Result<StatementOutput> {
        // An external warehouse table's files are listed again.
        if let Some(meta) = self.warehouse_table(name).await? {
            self.relist_external(&meta)?;
        }
        if !self.ctx.table_exist(table_ref(name))? {
            return Err(Error::Config(format!(
                "cannot REFRESH TABLE {name}: no table or view named {name}"
            )));
        }
        let table = self.resolve(&table_ref(name));
        for relation in self.cache.relations() {
            if relation.name == identifier(name) || self.reads(&relation, &table) {
                self.cache.invalidate(&relation);
            }
        }
        done("REFRESH TABLE", None)
    }

    /// After `plan` ran: caches reading a table it wrote (or replaced, or dropped) are
    /// computed again when next used; a cache whose own table or view it dropped is gone.
    pub(crate) fn invalidate_caches_after(&self, plan: &LogicalPlan) {
        // A write changes a table; DDL replaces or drops it.
        let (written, replaced) = match plan {
            LogicalPlan::Dml(dml) => (Some(&dml.table_name), false),
            LogicalPlan::Ddl(ddl) => match ddl {
                DdlStatement::CreateMemoryTable(create) => (Some(&create.name), true),
                DdlStatement::CreateExternalTable(create) => (Some(&create.name), true),
                DdlStatement::CreateView(create) => (Some(&create.name), true),
                DdlStatement::DropTable(drop) => (Some(&drop.name), true),
                DdlStatement::DropView(drop) => (Some(&drop.name), true),
                _ => (None, false),
            },
            _ => (None, false),
        };
        if let Some(written) = written {
            self.invalidate_table(written, replaced);
        }
    }

    /// Caches reading `written` compute again when next used; when `replaced` (dropped or
    /// created anew), a cache of the table itself goes.
    pub(crate) fn invalidate_table(&self, written: &TableReference, replaced: bool) {
        let table = self.resolve(written);
        // What reads it now computes something else.
        *self
            .table_versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entry(table.to_string())
            .or_default() += 1;
        for relation in self.cache.relations() {
            let own = self.resolve(&TableReference::parse_str(&relation.name)) == table;
            if own && replaced {
                // Spark uncaches a table or view that is dropped or replaced.
                self.cache.remove(&relation.name);
            } else if own || self.reads(&relation, &table) {
                self.cache.invalidate(&relation);
            }
        }
    }

    /// What a table read by a plan is now: its name, how often the session wrote it, and
    /// for files, their paths, sizes and modification times (changed outside the session).
    pub(crate) fn table_identity(&self, scan: &TableScan) -> u64 {
        let mut hasher = DefaultHasher::new();
        let table = self.resolve(&scan.table_name).to_string();
        table.hash(&mut hasher);
        self.table_versions
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&table)
            .hash(&mut hasher);
        if let Ok(provider) = source_as_provider(&scan.source) {
            if let Some(listing) = provider.downcast_ref::<ListingTable>() {
                for url in listing.table_paths() {
                    if let Ok(path) = url.get_url().to_file_path() {
                        hash_files(&path, &mut hasher);
                    }
                }
            } else if let Some(table) = provider.downcast_ref::<crate::warehouse::WarehouseTable>()
            {
                // A commit by any process is a new version.
                table.meta().ok().map(|meta| meta.version).hash(&mut hasher);
            } else if let Some(cached) = provider.downcast_ref::<CachedTable>() {
                // A cache computed again (after a write to its sources) is new data.
                cached.generation().hash(&mut hasher);
            }
        }
        hasher.finish()
    }

    fn reads(&self, relation: &CachedRelation, table: &ResolvedTableReference) -> bool {
        relation
            .sources
            .iter()
            .any(|source| self.resolve(source) == *table)
    }

    pub(super) fn resolve(&self, table: &TableReference) -> ResolvedTableReference {
        let options = self.ctx.state().config().options().catalog.clone();
        table
            .clone()
            .resolve(&options.default_catalog, &options.default_schema)
    }
}

/// Paths, sizes and modification times of the files under `path`, in order.
fn hash_files(path: &std::path::Path, hasher: &mut DefaultHasher) {
    let Ok(metadata) = std::fs::metadata(path) else {
        return;
    };
    if metadata.is_dir() {
        let Ok(entries) = std::fs::read_dir(path) else {
            return;
        };
        let mut children: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        children.sort();
        for child in children {
            hash_files(&child, hasher);
        }
    } else {
        path.hash(hasher);
        metadata.len().hash(hasher);
        metadata.modified().ok().hash(hasher);
    }
}

/// The id of the job's last stage (the one whose output the driver reads).
fn last_stage(graph: &StageGraph) -> Result<usize> {
    graph
        .stages
        .iter()
        .find(|stage| *stage.exchange() == crate::stages::Exchange::Result)
        .map(|stage| stage.id)
        .ok_or_else(|| Error::Internal("a job without a last stage".into()))
}

/// The driver's plan without the merge of the last stage's partitions: each partition is
/// read on its own (a block of a cache). Any other driver plan (a LIMIT) stays whole.
pub(crate) fn keep_partitions(driver: Arc<dyn ExecutionPlan>) -> Arc<dyn ExecutionPlan> {
    let merged_input = if let Some(merge) = driver.downcast_ref::<CoalescePartitionsExec>() {
        merge.fetch().is_none().then(|| merge.input().clone())
    } else if let Some(merge) = driver.downcast_ref::<SortPreservingMergeExec>() {
        merge.fetch().is_none().then(|| merge.input().clone())
    } else {
        None
    };
    match merged_input {
        Some(input) if input.is::<ShuffleReadExec>() => input,
        _ => driver,
    }
}

/// A table name as the catalog knows it: unquoted identifiers in lower case, quoted ones
/// as written (`"My T"` stays `"My T"`, `Sales` is `sales`).
pub(crate) fn identifier(name: &str) -> String {
    table_ref(name).to_string()
}

/// A table name as written in SQL (backticks as Spark writes them allowed).
fn table_ref(name: &str) -> TableReference {
    TableReference::parse_str(&name.replace('`', "\""))
}

fn done(tag: &str, rows: Option<u64>) -> Result<StatementOutput> {
    Ok(StatementOutput::Done(Completion {
        tag: tag.to_string(),
        rows,
    }))
}

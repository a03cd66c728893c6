//! `system.jobs`, `system.stages`, `system.tasks`, `system.aqe_decisions`: the session's job
//! history as tables; `system.cache`: the cached relations.
//!
//! Each table is a provider over the session's history, read when a statement that scans it
//! is planned: it sees every job that ended before, and the jobs other statements are
//! running (status `running`, as far as they got), never the scanning statement's own job.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use datafusion::arrow::array::{
    ArrayRef, BooleanArray, Float64Array, RecordBatch, StringArray, UInt64Array,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use datafusion::catalog::{
    MemTable, MemorySchemaProvider, Session as PlanningSession, TableProvider,
};
use datafusion::datasource::TableType;
use datafusion::logical_expr::Expr;
use datafusion::physical_plan::ExecutionPlan;

use crate::cache::CacheManager;
use crate::error::Result;
use crate::scheduler::JobReport;
use datafusion::prelude::SessionContext;

const SCHEMA: &str = "system";

/// How a table's rows come from the job history.
type Rows = fn(&[JobReport]) -> RecordBatch;

/// The tables of the `system` schema: a name and how its rows come from the history.
const TABLES: [(&str, Rows); 4] = [
    ("jobs", jobs_table),
    ("stages", stages_table),
    ("tasks", tasks_table),
    ("aqe_decisions", aqe_decisions_table),
];

/// Creates the `system` schema in the session's default catalog, its tables reading
/// `history`.
pub fn register_system_schema(
    ctx: &SessionContext,
    history: Arc<Mutex<Vec<JobReport>>>,
    cache: Arc<CacheManager>,
) -> Result<()> {
    let catalog_name = ctx
        .state()
        .config()
        .options()
        .catalog
        .default_catalog
        .clone();
    let Some(catalog) = ctx.catalog(&catalog_name) else {
        return Ok(());
    };
    let schema = Arc::new(MemorySchemaProvider::new());
    for (name, rows) in TABLES {
        let table = SystemTable {
            schema: rows(&[]).schema(),
            rows,
            history: history.clone(),
        };
        datafusion::catalog::SchemaProvider::register_table(
            schema.as_ref(),
            name.to_string(),
            Arc::new(table),
        )?;
    }
    datafusion::catalog::SchemaProvider::register_table(
        schema.as_ref(),
        "cache".to_string(),
        Arc::new(CacheTable { cache }),
    )?;
    catalog.register_schema(SCHEMA, schema)?;
    Ok(())
}

/// `system.cache`: every cached relation and where its blocks are (Spark UI's Storage tab).
#[derive(Debug)]
struct CacheTable {
    cache: Arc<CacheManager>,
}

fn cache_rows(cache: &CacheManager) -> RecordBatch {
    use DataType::*;
    let status = cache.status();
    batch(
        vec![
            ("name", Utf8, false),
            ("storage_level", Utf8, false),
            ("partitions_cached", UInt64, false),
            ("partitions", UInt64, false),
            ("rows", UInt64, false),
            ("memory_bytes", UInt64, false),
            ("disk_bytes", UInt64, false),
        ],
        vec![
            strings(status.iter().map(|s| Some(s.name.as_str()))),
            Arc::new(StringArray::from_iter_values(
                status.iter().map(|s| s.level.to_string()),
            )),
            u64s(status.iter().map(|s| s.partitions_cached as u64)),
            u64s(status.iter().map(|s| s.partitions as u64)),
            u64s(status.iter().map(|s| s.rows)),
            u64s(status.iter().map(|s| s.memory_bytes)),
            u64s(status.iter().map(|s| s.disk_bytes)),
        ],
    )
}

#[async_trait]
impl TableProvider for CacheTable {
    fn schema(&self) -> SchemaRef {
        cache_rows(&self.cache).schema()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn PlanningSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let batch = cache_rows(&self.cache);
        MemTable::try_new(batch.schema(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

/// One `system` table: its rows made from the history when a statement scans it.
struct SystemTable {
    schema: SchemaRef,
    rows: Rows,
    history: Arc<Mutex<Vec<JobReport>>>,
}

impl std::fmt::Debug for SystemTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SystemTable")
            .field("schema", &self.schema)
            .finish()
    }
}

#[async_trait]
impl TableProvider for SystemTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn PlanningSession,
        projection: Option<&Vec<usize>>,
        filters: &[Expr],
        limit: Option<usize>,
    ) -> datafusion::error::Result<Arc<dyn ExecutionPlan>> {
        let jobs = self
            .history
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone();
        let batch = (self.rows)(&jobs);
        MemTable::try_new(self.schema.clone(), vec![vec![batch]])?
            .scan(state, projection, filters, limit)
            .await
    }
}

fn u64s(values: impl Iterator<Item = u64>) -> ArrayRef {
    Arc::new(UInt64Array::from_iter_values(values))
}

fn f64s(values: impl Iterator<Item = f64>) -> ArrayRef {
    Arc::new(Float64Array::from_iter_values(values))
}

fn strings<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
    Arc::new(StringArray::from_iter(values))
}

fn batch(fields: Vec<(&str, DataType, bool)>, columns: Vec<ArrayRef>) -> RecordBatch {
    let schema = Schema::new(
        fields
            .into_iter()
            .map(|(name, data_type, nullable)| Field::new(name, data_type, nullable))
            .collect::<Vec<_>>(),
    );
    RecordBatch::try_new(Arc::new(schema), columns).expect("columns match the schema")
}

fn jobs_table(jobs: &[JobReport]) -> RecordBatch {
    use DataType::*;
    batch(
        vec![
            ("job_id", UInt64, false),
            ("sql", Utf8, false),
            ("status", Utf8, false),
            ("duration_ms", Float64, false),
            ("stages", UInt64, false),
            ("tasks", UInt64, false),
            ("slots", UInt64, false),
            ("error", Utf8, true),
        ],
        vec![
            u64s(jobs.iter().map(|j| j.job as u64)),
            strings(jobs.iter().map(|j| Some(j.sql.as_str()))),
            strings(jobs.iter().map(|j| Some(j.status.as_str()))),
            f64s(jobs.iter().map(|j| j.duration.as_secs_f64() * 1000.0)),
            u64s(jobs.iter().map(|j| j.stages.len() as u64)),
            u64s(
                jobs.iter()
                    .map(|j| j.stages.iter().map(|s| s.tasks as u64).sum()),
            ),
            u64s(jobs.iter().map(|j| j.slots as u64)),
            strings(jobs.iter().map(|j| j.error.as_deref())),
        ],
    )
}

fn stages_table(jobs: &[JobReport]) -> RecordBatch {
    use DataType::*;
    let stages: Vec<_> = jobs
        .iter()
        .flat_map(|j| j.stages.iter().map(move |s| (j.job, s)))
        .collect();
    let parents: Vec<String> = stages
        .iter()
        .map(|(_, s)| {
            s.parents
                .iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect();
    let exchanges: Vec<String> = stages.iter().map(|(_, s)| s.exchange.to_string()).collect();
    // Why each stage attempt after the first ran.
    let resubmitted: Vec<String> = stages
        .iter()
        .map(|(_, s)| s.resubmitted.join("; "))
        .collect();
    batch(
        vec![
            ("job_id", UInt64, false),
            ("stage_id", UInt64, false),
            ("parents", Utf8, false),
            ("exchange", Utf8, false),
            ("initial_tasks", UInt64, false),
            ("final_tasks", UInt64, false),
            ("attempts", UInt64, false),
            ("retries", UInt64, false),
            ("submitted_ms", Float64, false),
            ("duration_ms", Float64, false),
            ("rows_out", UInt64, false),
            ("bytes_out", UInt64, false),
            ("spill_bytes", UInt64, false),
            ("stage_attempts", UInt64, false),
            ("resubmitted", Utf8, true),
        ],
        vec![
            u64s(stages.iter().map(|(j, _)| *j as u64)),
            u64s(stages.iter().map(|(_, s)| s.stage as u64)),
            strings(parents.iter().map(|p| Some(p.as_str()))),
            strings(exchanges.iter().map(|e| Some(e.as_str()))),
            u64s(stages.iter().map(|(_, s)| s.initial_tasks as u64)),
            u64s(stages.iter().map(|(_, s)| s.tasks as u64)),
            u64s(stages.iter().map(|(_, s)| s.attempts.len() as u64)),
            u64s(stages.iter().map(|(_, s)| s.retries() as u64)),
            f64s(stages.iter().map(|(_, s)| s.submitted_ms)),
            f64s(stages.iter().map(|(_, s)| s.completed_ms - s.submitted_ms)),
            u64s(
                stages
                    .iter()
                    .map(|(_, s)| s.kept_attempts().iter().map(|a| a.rows_out).sum()),
            ),
            u64s(
                stages
                    .iter()
                    .map(|(_, s)| s.kept_attempts().iter().map(|a| a.bytes_out).sum()),
            ),
            u64s(stages.iter().map(|(_, s)| s.spill_bytes())),
            u64s(stages.iter().map(|(_, s)| s.stage_attempts as u64)),
            strings(
                resubmitted
                    .iter()
                    .map(|r| (!r.is_empty()).then_some(r.as_str())),
            ),
        ],
    )
}

fn aqe_decisions_table(jobs: &[JobReport]) -> RecordBatch {
    use DataType::*;
    let decisions: Vec<_> = jobs
        .iter()
        .flat_map(|j| {
            j.stages
                .iter()
                .flat_map(move |s| s.decisions.iter().map(move |d| (j.job, d)))
        })
        .collect();
    batch(
        vec![
            ("job_id", UInt64, false),
            ("stage_id", UInt64, false),
            ("rule", Utf8, false),
            ("applied", Boolean, false),
            ("change", Utf8, false),
            ("reason", Utf8, false),
        ],
        vec![
            u64s(decisions.iter().map(|(j, _)| *j as u64)),
            u64s(decisions.iter().map(|(_, d)| d.stage as u64)),
            strings(decisions.iter().map(|(_, d)| Some(d.rule))),
            Arc::new(BooleanArray::from_iter(
                decisions.iter().map(|(_, d)| Some(d.applied)),
            )),
            strings(decisions.iter().map(|(_, d)| Some(d.change.as_str()))),
            strings(decisions.iter().map(|(_, d)| Some(d.reason.as_str()))),
        ],
    )
}

fn tasks_table(jobs: &[JobReport]) -> RecordBatch {
    use DataType::*;
    let tasks: Vec<_> = jobs
        .iter()
        .flat_map(|j| {
            j.stages
                .iter()
                .flat_map(move |s| s.attempts.iter().map(move |a| (j.job, a)))
        })
        .collect();
    batch(
        vec![
            ("job_id", UInt64, false),
            ("stage_id", UInt64, false),
            ("task", UInt64, false),
            ("attempt", UInt64, false),
            ("start_ms", Float64, false),
            ("duration_ms", Float64, false),
            ("rows_in", UInt64, false),
            ("bytes_in", UInt64, false),
            ("rows_out", UInt64, false),
            ("bytes_out", UInt64, false),
            ("shuffle_read_rows", UInt64, false),
            ("shuffle_read_bytes", UInt64, false),
            ("spill_bytes", UInt64, false),
            ("peak_memory_bytes", UInt64, false),
            ("error", Utf8, true),
            ("stage_attempt", UInt64, false),
            ("fetch_failed", Boolean, false),
            ("executor_id", UInt64, false),
            ("killed", Boolean, false),
            ("slot", UInt64, false),
        ],
        vec![
            u64s(tasks.iter().map(|(j, _)| *j as u64)),
            u64s(tasks.iter().map(|(_, a)| a.stage as u64)),
            u64s(tasks.iter().map(|(_, a)| a.task as u64)),
            u64s(tasks.iter().map(|(_, a)| a.attempt as u64)),
            f64s(tasks.iter().map(|(_, a)| a.start_ms)),
            f64s(tasks.iter().map(|(_, a)| a.duration_ms)),
            u64s(tasks.iter().map(|(_, a)| a.rows_in)),
            u64s(tasks.iter().map(|(_, a)| a.bytes_in)),
            u64s(tasks.iter().map(|(_, a)| a.rows_out)),
            u64s(tasks.iter().map(|(_, a)| a.bytes_out)),
            u64s(tasks.iter().map(|(_, a)| a.shuffle_read_rows)),
            u64s(tasks.iter().map(|(_, a)| a.shuffle_read_bytes)),
            u64s(tasks.iter().map(|(_, a)| a.spill_bytes)),
            u64s(tasks.iter().map(|(_, a)| a.peak_memory_bytes)),
            strings(tasks.iter().map(|(_, a)| a.error.as_deref())),
            u64s(tasks.iter().map(|(_, a)| a.stage_attempt as u64)),
            Arc::new(BooleanArray::from_iter(
                tasks.iter().map(|(_, a)| Some(a.fetch_failed)),
            )),
            u64s(tasks.iter().map(|(_, a)| a.executor as u64)),
            Arc::new(BooleanArray::from_iter(
                tasks.iter().map(|(_, a)| Some(a.killed)),
            )),
            u64s(tasks.iter().map(|(_, a)| a.slot as u64)),
        ],
    )
}

//! Reading a cached relation: a table provider over its blocks, and the scan that reads
//! one block per partition (Spark's `InMemoryTableScanExec`).

use std::fmt;
use std::sync::Arc;

use async_trait::async_trait;
use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::catalog::{Session as PlanningSession, TableProvider};
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::datasource::TableType;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::logical_expr::Expr;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, Partitioning, PlanProperties,
    SendableRecordBatchStream,
};
use futures::{StreamExt, TryStreamExt};

use super::{BlockRead, CacheManager, CachedRelation, Materialized};

/// A cached relation as a table: planning a scan of it reads its blocks as they are now.
pub struct CachedTable {
    relation: Arc<CachedRelation>,
    data: Arc<Materialized>,
    manager: Arc<CacheManager>,
    schema: SchemaRef,
}

impl CachedTable {
    /// The relation's current blocks as a table (`None` if it has none yet).
    pub fn new(relation: Arc<CachedRelation>, manager: &CacheManager) -> Option<Self> {
        let data = relation.data()?;
        Some(Self {
            schema: relation.schema(),
            relation,
            data,
            manager: manager.handle(),
        })
    }
}

impl CachedTable {
    /// Which computation of the relation this table reads.
    pub fn generation(&self) -> u64 {
        self.data.generation
    }
}

impl fmt::Debug for CachedTable {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CachedTable")
            .field("name", &self.relation.name)
            .finish()
    }
}

#[async_trait]
impl TableProvider for CachedTable {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::Temporary
    }

    async fn scan(
        &self,
        _state: &dyn PlanningSession,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(InMemoryScanExec::new(
            self.relation.clone(),
            self.data.clone(),
            self.manager.clone(),
            projection.cloned(),
        )?))
    }
}

/// Reads a cached relation, one partition (task) per block: from memory, from disk, or —
/// for a block that was dropped — by computing it again from the relation's lineage.
/// Its metrics count the blocks found (`cache_hits`), not found (`cache_misses`) and
/// computed again (`cache_recomputed`).
pub struct InMemoryScanExec {
    relation: Arc<CachedRelation>,
    data: Arc<Materialized>,
    manager: Arc<CacheManager>,
    projection: Option<Vec<usize>>,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl InMemoryScanExec {
    fn new(
        relation: Arc<CachedRelation>,
        data: Arc<Materialized>,
        manager: Arc<CacheManager>,
        projection: Option<Vec<usize>>,
    ) -> Result<Self> {
        let schema = relation.schema();
        let schema = match &projection {
            Some(columns) => Arc::new(schema.project(columns)?),
            None => schema,
        };
        let properties = PlanProperties::new(
            EquivalenceProperties::new(schema),
            Partitioning::UnknownPartitioning(data.partitions()),
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Ok(Self {
            relation,
            data,
            manager,
            projection,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        })
    }

    /// The name the relation is cached under.
    pub fn name(&self) -> &str {
        &self.relation.name
    }

    fn counter(&self, name: &'static str, partition: usize) -> Count {
        MetricBuilder::new(&self.metrics).counter(name, partition)
    }
}

impl fmt::Debug for InMemoryScanExec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "InMemoryScanExec({})", self.relation.name)
    }
}

impl InMemoryScanExec {
    /// `InMemoryScan(t, MEMORY_AND_DISK, 4 partitions)`.
    pub fn describe(&self) -> String {
        let partitions = self.data.partitions();
        format!(
            "InMemoryScan({}, {}, {partitions} partition{})",
            self.relation.name,
            self.relation.level,
            if partitions == 1 { "" } else { "s" }
        )
    }
}

impl DisplayAs for InMemoryScanExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

impl ExecutionPlan for InMemoryScanExec {
    fn name(&self) -> &str {
        "InMemoryScanExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        Vec::new()
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            self.relation.clone(),
            self.data.clone(),
            self.manager.clone(),
            self.projection.clone(),
        )?))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let hits = self.counter("cache_hits", partition);
        let misses = self.counter("cache_misses", partition);
        let recomputed = self.counter("cache_recomputed", partition);
        let rows = MetricBuilder::new(&self.metrics).output_rows(partition);
        let data = self.data.clone();
        let manager = self.manager.clone();
        let name = self.relation.name.clone();
        let projection = self.projection.clone();
        let schema = self.properties.eq_properties.schema().clone();
        let work = async move {
            let batches = match manager.read(&data, partition) {
                BlockRead::Memory(batches) => {
                    hits.add(1);
                    batches
                }
                BlockRead::Disk(file, count) => {
                    hits.add(1);
                    tokio::task::spawn_blocking(move || file.read(0..count))
                        .await
                        .map_err(|e| {
                            DataFusionError::Execution(format!(
                                "reading cached block {partition} of {name}: {e}"
                            ))
                        })??
                }
                BlockRead::Missing => {
                    misses.add(1);
                    let batches = compute_again(&data, partition, &name, context).await?;
                    recomputed.add(1);
                    // Kept again if there is room now, as Spark does.
                    manager.put(&data, partition, batches.clone())?;
                    batches
                }
            };
            let batches: Vec<Result<RecordBatch>> = batches
                .into_iter()
                .map(|batch| match &projection {
                    Some(columns) => batch.project(columns).map_err(DataFusionError::from),
                    None => Ok(batch),
                })
                .inspect(|batch| {
                    if let Ok(batch) = batch {
                        rows.add(batch.num_rows());
                    }
                })
                .collect();
            Ok::<_, DataFusionError>(futures::stream::iter(batches))
        };
        let stream = futures::stream::once(work).try_flatten();
        Ok(Box::pin(RecordBatchStreamAdapter::new(
            schema,
            stream.boxed(),
        )))
    }
}

/// Partition `partition` of the relation computed again from its lineage.
async fn compute_again(
    data: &Materialized,
    partition: usize,
    name: &str,
    context: Arc<TaskContext>,
) -> Result<Vec<RecordBatch>> {
    let Some(recipe) = &data.recipe else {
        return Err(DataFusionError::Execution(format!(
            "cached partition {partition} of {name} is not kept and cannot be computed again"
        )));
    };
    let plan = crate::scheduler::fresh_copy(recipe.plan.clone())?;
    let batches = plan.execute(partition, context)?.try_collect().await?;
    super::conform(&data.schema, batches)
}

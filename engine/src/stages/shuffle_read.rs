//! [`ShuffleReadExec`]: the leaf of a stage that reads an earlier stage's shuffle output.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::coalesce_partitions::CoalescePartitionsExec;
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    Count, ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::{Stream, StreamExt};

use super::StageId;
use crate::shuffle::ShuffleStore;

/// Which blocks each output partition of a [`ShuffleReadExec`] reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReadSpec {
    /// Partition `r` reads reduce partition `r` from every map task (a plain shuffle read).
    ReducePartitions(usize),
    /// Partition `m` reads everything map task `m` wrote (a gather: order within each map
    /// output is kept, so a merge above can rely on it).
    MapOutputs(usize),
    /// Partition `i` reads the reduce partitions `reduce` of the map tasks `maps`: coalesced
    /// ranges of reduce partitions, or slices of the map outputs of a skewed partition.
    Explicit(Vec<PartitionSpec>),
}

/// The blocks one task of a reading stage reads.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionSpec {
    pub reduce: Range<usize>,
    /// `None`: every map task.
    pub maps: Option<Range<usize>>,
}

impl ReadSpec {
    pub fn partitions(&self) -> usize {
        match self {
            ReadSpec::ReducePartitions(n) | ReadSpec::MapOutputs(n) => *n,
            ReadSpec::Explicit(specs) => specs.len(),
        }
    }

    fn partition(&self, index: usize) -> PartitionSpec {
        match self {
            ReadSpec::ReducePartitions(_) => PartitionSpec {
                reduce: index..index + 1,
                maps: None,
            },
            ReadSpec::MapOutputs(_) => PartitionSpec {
                reduce: 0..1,
                maps: Some(index..index + 1),
            },
            ReadSpec::Explicit(specs) => specs[index].clone(),
        }
    }
}

/// Reads shuffle `stage` from the job's [`ShuffleStore`]:
///
/// ```text
///   store[(stage, m, r)] for every map task m ──▶ output partition r   (ReducePartitions)
///   store[(stage, m, 0)]                      ──▶ output partition m   (MapOutputs)
/// ```
///
/// It declares the partitioning its writer produced (`Hash(keys, R)` for a hash shuffle), so
/// joins and aggregates above it see the distribution they require.
#[derive(Debug)]
pub struct ShuffleReadExec {
    stage: StageId,
    spec: ReadSpec,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

impl ShuffleReadExec {
    /// A reader of stage `stage`'s output that produces `partitioning` with the
    /// equivalence properties `eq_properties` — what holds of the rows it returns: the
    /// exchange's own output properties, less what the read does not preserve (see
    /// [`shuffled`]). `None`: nothing is known.
    pub fn new(
        stage: StageId,
        spec: ReadSpec,
        schema: SchemaRef,
        partitioning: Partitioning,
        eq_properties: Option<EquivalenceProperties>,
    ) -> Self {
        let eq_properties = eq_properties.unwrap_or_else(|| EquivalenceProperties::new(schema));
        let properties = PlanProperties::new(
            eq_properties,
            partitioning,
            EmissionType::Incremental,
            Boundedness::Bounded,
        );
        Self {
            stage,
            spec,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn stage(&self) -> StageId {
        self.stage
    }

    pub fn spec(&self) -> &ReadSpec {
        &self.spec
    }
}

/// What still holds of rows after they were shuffled, or gathered into one partition: the
/// equivalent columns and the constants every partition shares (a `WHERE a = 1` upstream
/// makes `a` constant wherever its rows go), not orderings or constants that differ from
/// partition to partition. A stage keeps the properties its streaming plan had, so that
/// operators needing them (a window's `PARTITION BY` order, a union's interleave) still
/// get them, and nothing claims more than is true.
pub fn shuffled(eq_properties: &EquivalenceProperties) -> EquivalenceProperties {
    let mut eq_properties = eq_properties.clone();
    eq_properties.clear_orderings();
    eq_properties.clear_per_partition_constants();
    eq_properties
}

/// What a shuffle or broadcast reader measures for one output partition: rows and bytes
/// read, and the time spent fetching and coalescing them.
pub(crate) struct ReadMetrics {
    rows: Count,
    bytes: Count,
    time: Time,
}

impl ReadMetrics {
    /// `kind`: `shuffle` or `broadcast`, which names the counters.
    pub(crate) fn new(set: &ExecutionPlanMetricsSet, kind: &str, partition: usize) -> Self {
        Self {
            rows: MetricBuilder::new(set).counter(format!("{kind}_read_rows"), partition),
            bytes: MetricBuilder::new(set).counter(format!("{kind}_read_bytes"), partition),
            time: MetricBuilder::new(set).elapsed_compute(partition),
        }
    }
}

/// Streams what one output partition reads: from each map task in turn, its slice of the
/// partition's range of reduce partitions.
pub(crate) fn read_blocks(
    store: Arc<ShuffleStore>,
    stage: StageId,
    spec: PartitionSpec,
    schema: SchemaRef,
    batch_size: usize,
    metrics: ReadMetrics,
) -> SendableRecordBatchStream {
    // Adaptive execution may have run the writing stage with fewer tasks than planned: map
    // outputs past the last one are empty.
    let written = store.maps(stage);
    let maps = match spec.maps.clone() {
        Some(maps) => maps.start.min(written)..maps.end.min(written),
        None => 0..written,
    };
    let ReadMetrics { rows, bytes, time } = metrics;
    let reduce = spec.reduce;
    let batches = futures::stream::iter(maps)
        .then(move |m| {
            let slice = store.slice(stage, m, reduce.clone());
            let (rows, bytes) = (rows.clone(), bytes.clone());
            async move {
                let slice = slice?;
                rows.add(slice.rows as usize);
                bytes.add(slice.bytes as usize);
                // Spilled blocks are read on a blocking thread, not on the async worker.
                match slice.on_disk() {
                    false => slice.batches(),
                    true => tokio::task::spawn_blocking(move || slice.batches())
                        .await
                        .map_err(|e| {
                            DataFusionError::Execution(format!("reading a spill file failed: {e}"))
                        })?,
                }
            }
        })
        .flat_map(|batches: Result<Vec<_>>| match batches {
            Ok(batches) => futures::stream::iter(batches.into_iter().map(Ok).collect::<Vec<_>>()),
            Err(e) => futures::stream::iter(vec![Err(e)]),
        });
    // Slices of a single reduce partition out of many runs are small: operators above get
    // full batches.
    let batch_size = batch_size.max(1);
    let mut coalescer = BatchCoalescer::new(schema.clone(), batch_size)
        .with_biggest_coalesce_batch_size(Some(batch_size / 2));
    let mut batches = Box::pin(batches);
    let stream = futures::stream::poll_fn(move |cx| {
        // Fetching (from memory or a spill file) and coalescing is the reader's work.
        let _reading = time.timer();
        loop {
            if let Some(full) = coalescer.next_completed_batch() {
                return std::task::Poll::Ready(Some(Ok(full)));
            }
            match futures::ready!(batches.as_mut().poll_next(cx)) {
                Some(Ok(batch)) => {
                    if let Err(e) = coalescer.push_batch(batch) {
                        return std::task::Poll::Ready(Some(Err(e.into())));
                    }
                }
                Some(Err(e)) => return std::task::Poll::Ready(Some(Err(e))),
                None => {
                    if let Err(e) = coalescer.finish_buffered_batch() {
                        return std::task::Poll::Ready(Some(Err(e.into())));
                    }
                    return std::task::Poll::Ready(coalescer.next_completed_batch().map(Ok));
                }
            }
        }
    });
    Box::pin(RecordBatchStreamAdapter::new(schema, stream))
}

/// Makes every gather reader in `plan` read as many map outputs as its stage really wrote:
/// adaptive execution may have run that stage with fewer tasks (coalesced) or more (a split
/// skewed partition) than planned. A bare reader at the root that now has several partitions
/// is merged into one.
pub fn read_written_maps(
    plan: Arc<dyn ExecutionPlan>,
    store: &ShuffleStore,
) -> Result<Arc<dyn ExecutionPlan>> {
    let single = plan.output_partitioning().partition_count() == 1;
    let plan = plan
        .transform_up(|node| {
            let Some(reader) = node.downcast_ref::<ShuffleReadExec>() else {
                return Ok(Transformed::no(node));
            };
            let ReadSpec::MapOutputs(planned) = reader.spec() else {
                return Ok(Transformed::no(node));
            };
            let written = store.maps(reader.stage());
            if written == *planned || written == 0 {
                return Ok(Transformed::no(node));
            }
            Ok(Transformed::yes(Arc::new(ShuffleReadExec::new(
                reader.stage(),
                ReadSpec::MapOutputs(written),
                reader.schema(),
                Partitioning::UnknownPartitioning(written),
                Some(reader.properties.eq_properties.clone()),
            )) as Arc<dyn ExecutionPlan>))
        })?
        .data;
    if single && plan.output_partitioning().partition_count() > 1 {
        return Ok(Arc::new(CoalescePartitionsExec::new(plan)));
    }
    Ok(plan)
}

pub(crate) fn store_of(context: &TaskContext) -> Result<Arc<ShuffleStore>> {
    context
        .session_config()
        .get_extension::<ShuffleStore>()
        .ok_or_else(|| DataFusionError::Internal("no shuffle store in the task context".into()))
}

impl DisplayAs for ShuffleReadExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        match &self.spec {
            ReadSpec::ReducePartitions(n) => {
                write!(f, "ShuffleReadExec: stage={}, partitions={n}", self.stage)
            }
            ReadSpec::MapOutputs(n) => {
                write!(f, "ShuffleReadExec: stage={}, map_outputs={n}", self.stage)
            }
            ReadSpec::Explicit(specs) => write!(
                f,
                "ShuffleReadExec: stage={}, partitions={} (adaptive)",
                self.stage,
                specs.len()
            ),
        }
    }
}

impl ExecutionPlan for ShuffleReadExec {
    fn name(&self) -> &str {
        "ShuffleReadExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![]
    }

    fn apply_expressions(
        &self,
        _f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        _: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(self)
    }

    /// The same reader with metrics of its own (a retried task runs on a reset copy).
    fn reset_state(self: Arc<Self>) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self {
            stage: self.stage,
            spec: self.spec.clone(),
            properties: self.properties.clone(),
            metrics: ExecutionPlanMetricsSet::new(),
        }))
    }

    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let store = store_of(&context)?;
        let metrics = ReadMetrics::new(&self.metrics, "shuffle", partition);
        Ok(read_blocks(
            store,
            self.stage,
            self.spec.partition(partition),
            self.schema(),
            context.session_config().batch_size(),
            metrics,
        ))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

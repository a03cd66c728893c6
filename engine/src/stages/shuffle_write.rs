//! [`ShuffleWriteExec`]: the root of every stage; writes each task's output to the shuffle
//! store, partitioned into the buckets its exchange asks for.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use super::{Exchange, StageId};
use crate::shuffle::{Block, MapOutput, ShuffleStore, SpillFile, data_bytes};

/// Writes the output of each partition (task) of its input into the job's
/// [`ShuffleStore`] as shuffle `stage`:
///
/// ```text
///   input partition m ──▶ BatchPartitioner (DataFusion's hash) ──▶ bucket 0 … bucket R-1
///                              copied into per-bucket builders,      │
///                              spilled under memory pressure         ▼
///                                                   store[(stage, m, r)]  + rows/bytes
/// ```
///
/// The store comes from the task's session config (an extension set by the scheduler).
/// Output is committed only when the whole partition is written, so a failed attempt leaves
/// nothing behind and a retry replaces nothing but its own output.
#[derive(Debug)]
pub struct ShuffleWriteExec {
    input: Arc<dyn ExecutionPlan>,
    stage: StageId,
    exchange: Exchange,
    properties: Arc<PlanProperties>,
    metrics: ExecutionPlanMetricsSet,
}

/// What a map task wrote: Spark's `MapStatus`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct MapStatus {
    pub rows: u64,
    pub bytes: u64,
    pub spilled_bytes: u64,
}

impl ShuffleWriteExec {
    pub fn new(input: Arc<dyn ExecutionPlan>, stage: StageId, exchange: Exchange) -> Self {
        let properties = PlanProperties::new(
            EquivalenceProperties::new(input.schema()),
            Partitioning::UnknownPartitioning(input.output_partitioning().partition_count()),
            EmissionType::Final,
            Boundedness::Bounded,
        );
        Self {
            input,
            stage,
            exchange,
            properties: Arc::new(properties),
            metrics: ExecutionPlanMetricsSet::new(),
        }
    }

    pub fn input(&self) -> &Arc<dyn ExecutionPlan> {
        &self.input
    }

    pub fn stage(&self) -> StageId {
        self.stage
    }

    pub fn exchange(&self) -> &Exchange {
        &self.exchange
    }

    /// Runs task `partition`: reads the input partition to its end and commits its buckets.
    pub async fn write(&self, partition: usize, context: Arc<TaskContext>) -> Result<MapStatus> {
        let store = context
            .session_config()
            .get_extension::<ShuffleStore>()
            .ok_or_else(|| {
                DataFusionError::Internal("no shuffle store in the task context".into())
            })?;
        let rows_out = MetricBuilder::new(&self.metrics).output_rows(partition);
        let bytes_out = MetricBuilder::new(&self.metrics).counter("shuffle_write_bytes", partition);
        let spilled = MetricBuilder::new(&self.metrics).spilled_bytes(partition);
        let time = MetricBuilder::new(&self.metrics).subset_time("repartition_time", partition);

        let buckets = self.exchange.buckets();
        let mut partitioner = match &self.exchange {
            Exchange::Shuffle(partitioning) => Some(BatchPartitioner::try_new(
                partitioning.clone(),
                time,
                partition,
                self.input.output_partitioning().partition_count(),
            )?),
            _ => None,
        };
        let reservation = MemoryConsumer::new(format!("ShuffleWriteExec[{partition}]"))
            .with_can_spill(true)
            .register(context.memory_pool());
        let mut writer = BucketWriter::new(
            self.input.schema(),
            buckets,
            context.session_config().batch_size(),
            reservation,
            store.clone(),
        );
        let mut stream = self.input.execute(partition, context)?;
        while let Some(batch) = stream.next().await {
            let batch = batch?;
            match partitioner.as_mut() {
                Some(partitioner) => {
                    partitioner.partition(batch, |bucket, piece| writer.push(bucket, piece))?
                }
                None => writer.push(0, batch)?,
            }
            // Let the worker thread run other tasks between batches. A task woken by another
            // task (one waiting for a broadcast build side the other made, say) lands in the
            // waker's thread's LIFO slot, which other threads cannot steal from: without a
            // yield both tasks would share one thread while the other slots' threads idle.
            // A yielding task goes to the stealable queue instead.
            tokio::task::yield_now().await;
        }
        let (output, written_spill) = writer.finish()?;
        let (rows, bytes) = (output.rows(), output.bytes());
        // Output the store has no memory left for is spilled on commit: it counts as this
        // task's spill.
        let spilled_bytes = written_spill + store.commit(self.stage, partition, output)?;
        rows_out.add(rows as usize);
        bytes_out.add(bytes as usize);
        spilled.add(spilled_bytes as usize);
        Ok(MapStatus {
            rows,
            bytes,
            spilled_bytes,
        })
    }
}

/// Rows of all buckets' builders together: a bucket's builder holds
/// `BUILDER_ROWS / buckets` rows (at most a batch, at least [`MIN_BUILDER_ROWS`]).
const BUILDER_ROWS: usize = 32 * 8192;
const MIN_BUILDER_ROWS: usize = 512;

/// Buffers a task's buckets and spills them to a file when the memory pool refuses more.
///
/// Each bucket has a batch builder the partitioner's pieces are copied into (one copy per
/// row). Builders reserve their capacity up front, so their size shrinks as buckets grow:
/// with 200 buckets, full-batch builders would reserve 200 batches per task — far more than
/// the data, and the zeroing of that memory cost more than the copying. The readers merge
/// the smaller batches back into full ones.
struct BucketWriter {
    schema: SchemaRef,
    coalescers: Vec<BatchCoalescer>,
    done: Vec<Vec<RecordBatch>>,
    blocks: Vec<Block>,
    reservation: MemoryReservation,
    store: Arc<ShuffleStore>,
    spilled_bytes: u64,
    spill_files: Vec<Arc<SpillFile>>,
}

impl BucketWriter {
    fn new(
        schema: SchemaRef,
        buckets: usize,
        batch_size: usize,
        reservation: MemoryReservation,
        store: Arc<ShuffleStore>,
    ) -> Self {
        let rows = (BUILDER_ROWS / buckets.max(1)).clamp(MIN_BUILDER_ROWS, batch_size.max(1));
        Self {
            coalescers: (0..buckets)
                .map(|_| BatchCoalescer::new(schema.clone(), rows))
                .collect(),
            done: vec![Vec::new(); buckets],
            blocks: vec![Block::default(); buckets],
            schema,
            reservation,
            store,
            spilled_bytes: 0,
            spill_files: Vec::new(),
        }
    }

    fn push(&mut self, bucket: usize, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        // The piece's data, not its buffers' capacity: pieces of one input batch share it.
        let size = data_bytes(&batch) as usize;
        if self.reservation.try_grow(size).is_err() {
            self.spill()?;
            // Even an empty buffer must take this one batch; it is freed when spilled.
            self.reservation.grow(size);
        }
        let coalescer = &mut self.coalescers[bucket];
        coalescer.push_batch(batch)?;
        while let Some(full) = coalescer.next_completed_batch() {
            self.done[bucket].push(full);
        }
        Ok(())
    }

    fn drain_buffers(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
        for (coalescer, done) in self.coalescers.iter_mut().zip(self.done.iter_mut()) {
            coalescer.finish_buffered_batch()?;
            while let Some(batch) = coalescer.next_completed_batch() {
                done.push(batch);
            }
        }
        let buckets = self.done.len();
        Ok(std::mem::replace(&mut self.done, vec![Vec::new(); buckets]))
    }

    fn spill(&mut self) -> Result<()> {
        let buckets = self.drain_buffers()?;
        if buckets.iter().all(Vec::is_empty) {
            return Ok(());
        }
        let (file, ranges) = SpillFile::write(self.store.spill_path()?, &self.schema, &buckets)?;
        for ((block, range), batches) in self.blocks.iter_mut().zip(ranges).zip(&buckets) {
            let memory = Block::in_memory(batches.clone());
            block.add_spilled(file.clone(), range, memory.rows(), memory.bytes());
        }
        self.spilled_bytes += file.bytes();
        self.spill_files.push(file);
        self.reservation.free();
        Ok(())
    }

    fn finish(mut self) -> Result<(MapOutput, u64)> {
        let buckets = self.drain_buffers()?;
        let mut blocks = std::mem::take(&mut self.blocks);
        for (block, batches) in blocks.iter_mut().zip(buckets) {
            block.add_memory(batches);
        }
        // The store accounts for committed output itself.
        self.reservation.free();
        Ok((MapOutput { blocks }, self.spilled_bytes))
    }
}

impl DisplayAs for ShuffleWriteExec {
    fn fmt_as(&self, _: DisplayFormatType, f: &mut fmt::Formatter) -> fmt::Result {
        write!(
            f,
            "ShuffleWriteExec: stage={}, {}",
            self.stage, self.exchange
        )
    }
}

impl ExecutionPlan for ShuffleWriteExec {
    fn name(&self) -> &str {
        "ShuffleWriteExec"
    }

    fn properties(&self) -> &Arc<PlanProperties> {
        &self.properties
    }

    fn children(&self) -> Vec<&Arc<dyn ExecutionPlan>> {
        vec![&self.input]
    }

    fn apply_expressions(
        &self,
        f: &mut dyn FnMut(&Arc<dyn PhysicalExpr>) -> Result<TreeNodeRecursion>,
    ) -> Result<TreeNodeRecursion> {
        if let Exchange::Shuffle(Partitioning::Hash(exprs, _)) = &self.exchange {
            for expr in exprs {
                if f(expr)? == TreeNodeRecursion::Stop {
                    return Ok(TreeNodeRecursion::Stop);
                }
            }
        }
        Ok(TreeNodeRecursion::Continue)
    }

    fn with_new_children(
        self: Arc<Self>,
        mut children: Vec<Arc<dyn ExecutionPlan>>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        Ok(Arc::new(Self::new(
            children.swap_remove(0),
            self.stage,
            self.exchange.clone(),
        )))
    }

    /// Writes the partition, then yields no rows: the data is in the store.
    fn execute(
        &self,
        partition: usize,
        context: Arc<TaskContext>,
    ) -> Result<SendableRecordBatchStream> {
        let this = Self {
            input: self.input.clone(),
            stage: self.stage,
            exchange: self.exchange.clone(),
            properties: self.properties.clone(),
            metrics: self.metrics.clone(),
        };
        let schema = self.schema();
        let stream = futures::stream::once(async move {
            this.write(partition, context).await?;
            Ok(RecordBatch::new_empty(this.schema()))
        });
        Ok(Box::pin(RecordBatchStreamAdapter::new(schema, stream)))
    }

    fn metrics(&self) -> Option<MetricsSet> {
        Some(self.metrics.clone_inner())
    }
}

//! [`ShuffleWriteExec`]: the root of every stage; writes each task's output to the shuffle
//! store, partitioned into the buckets its exchange asks for.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, RecordBatchOptions};
use datafusion::arrow::compute::BatchCoalescer;
use datafusion::arrow::compute::interleave;
use datafusion::arrow::datatypes::DataType;
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::hash_utils::create_hashes;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::Time;
use datafusion::physical_plan::metrics::{ExecutionPlanMetricsSet, MetricBuilder, MetricsSet};
use datafusion::physical_plan::repartition::BatchPartitioner;
use datafusion::physical_plan::repartition::REPARTITION_RANDOM_STATE;
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
///                              slices concatenated to full batches,  │
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
        let mut router = match &self.exchange {
            Exchange::Shuffle(Partitioning::Hash(exprs, n)) if *n > FEW_BUCKETS => {
                Router::Hash(HashBuckets::new(exprs.clone(), *n, time))
            }
            Exchange::Shuffle(partitioning) => Router::Partitioner(BatchPartitioner::try_new(
                partitioning.clone(),
                time,
                partition,
                self.input.output_partitioning().partition_count(),
            )?),
            _ => Router::Single,
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
            match &mut router {
                Router::Hash(hash) => writer.push_rows(batch, hash)?,
                Router::Partitioner(partitioner) => {
                    partitioner.partition(batch, |bucket, piece| writer.push(bucket, piece))?
                }
                Router::Single => writer.push(0, batch)?,
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

/// Input batches buffered before their rows are copied into buckets: each bucket then gets
/// about `ROUTED_BATCHES × batch_size / buckets` rows per copy.
const ROUTED_BATCHES: usize = 64;
/// …or this many bytes of input, whichever comes first.
const ROUTED_BYTES: usize = 32 << 20;

/// How a map task's rows reach their buckets.
enum Router {
    /// Hash partitioning, routed row by row and copied by [`BucketWriter::copy_routed`].
    Hash(HashBuckets),
    /// Other partitionings, by DataFusion's partitioner.
    Partitioner(BatchPartitioner),
    /// Everything into one bucket (gather, broadcast, result).
    Single,
}

/// The bucket of each row under hash partitioning: DataFusion's hash of the key columns
/// with the seed its `RepartitionExec` uses, modulo the bucket count — the same assignment
/// as DataFusion's own hash repartitioning.
struct HashBuckets {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    buckets: u64,
    hashes: Vec<u64>,
    time: Time,
}

impl HashBuckets {
    fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, buckets: usize, time: Time) -> Self {
        Self {
            exprs,
            buckets: buckets.max(1) as u64,
            hashes: Vec::new(),
            time,
        }
    }

    /// Appends `(batch_index, row)` of every row of `batch` to its bucket's routes.
    fn route(
        &mut self,
        batch: &RecordBatch,
        batch_index: usize,
        routes: &mut [Vec<(usize, usize)>],
    ) -> Result<()> {
        let _timer = self.time.timer();
        let keys = self
            .exprs
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(batch.num_rows()))
            .collect::<Result<Vec<_>>>()?;
        self.hashes.clear();
        self.hashes.resize(batch.num_rows(), 0);
        create_hashes(
            &keys,
            REPARTITION_RANDOM_STATE.random_state(),
            &mut self.hashes,
        )?;
        for (row, hash) in self.hashes.iter().enumerate() {
            routes[(hash % self.buckets) as usize].push((batch_index, row));
        }
        Ok(())
    }
}

/// A view array whose strings are copied into buffers of its own (an interleaved one points
/// into every source batch's buffers); other arrays as they are.
fn compact_views(array: ArrayRef) -> ArrayRef {
    match array.data_type() {
        DataType::Utf8View => Arc::new(array.as_string_view().gc()),
        DataType::BinaryView => Arc::new(array.as_binary_view().gc()),
        _ => array,
    }
}

/// Up to this many buckets, each has a batch builder of its own, filled piece by piece from
/// DataFusion's partitioner: the fastest way while the builders' memory (a full batch each)
/// is small. Above it, hash-partitioned rows are routed and copied in bulk instead.
const FEW_BUCKETS: usize = 32;

/// Pieces a bucket gathers before they are concatenated into one batch, even when short of
/// a full batch: the pieces are slices of the partitioner's batches and keep them alive.
const MAX_PENDING_PIECES: usize = 64;

/// Buffers a task's buckets and spills them to a file when the memory pool refuses more.
///
/// With few buckets ([`FEW_BUCKETS`]), each bucket has a batch builder that the
/// partitioner's pieces are copied into. With many, hash-partitioned rows are routed and
/// copied in bulk ([`Self::push_rows`]); pieces of other partitionings are gathered per
/// bucket and copied into one batch once a bucket has a full batch of rows (or
/// [`MAX_PENDING_PIECES`] pieces). Either way one copy per row, and with 200 buckets no
/// builders pre-sized to a full batch, which would reserve far more than the data.
struct BucketWriter {
    schema: SchemaRef,
    batch_size: usize,
    /// Input batches whose rows are routed but not yet copied into their buckets, and the
    /// (batch, row) of each bucket's rows among them.
    routed: Vec<RecordBatch>,
    routes: Vec<Vec<(usize, usize)>>,
    routed_rows: usize,
    routed_bytes: usize,
    /// Per-bucket builders when there are few buckets; empty otherwise.
    coalescers: Vec<BatchCoalescer>,
    pending: Vec<Vec<RecordBatch>>,
    pending_rows: Vec<usize>,
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
        let coalescers = match buckets <= FEW_BUCKETS {
            true => (0..buckets)
                .map(|_| BatchCoalescer::new(schema.clone(), batch_size.max(1)))
                .collect(),
            false => Vec::new(),
        };
        Self {
            schema,
            batch_size: batch_size.max(1),
            routed: Vec::new(),
            routes: vec![Vec::new(); buckets],
            routed_rows: 0,
            routed_bytes: 0,
            coalescers,
            pending: vec![Vec::new(); buckets],
            pending_rows: vec![0; buckets],
            done: vec![Vec::new(); buckets],
            blocks: vec![Block::default(); buckets],
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
        if let Some(coalescer) = self.coalescers.get_mut(bucket) {
            coalescer.push_batch(batch)?;
            while let Some(full) = coalescer.next_completed_batch() {
                self.done[bucket].push(full);
            }
            return Ok(());
        }
        self.pending_rows[bucket] += batch.num_rows();
        self.pending[bucket].push(batch);
        if self.pending_rows[bucket] >= self.batch_size
            || self.pending[bucket].len() >= MAX_PENDING_PIECES
        {
            self.concat(bucket)?;
        }
        Ok(())
    }

    /// Buffers `batch` with each row routed to its bucket by `hash`; when enough rows are
    /// buffered, copies every bucket's rows out in one go ([`Self::copy_routed`]).
    fn push_rows(&mut self, batch: RecordBatch, hash: &mut HashBuckets) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        let size = data_bytes(&batch) as usize;
        if self.reservation.try_grow(size).is_err() {
            self.spill()?;
            self.reservation.grow(size);
        }
        hash.route(&batch, self.routed.len(), &mut self.routes)?;
        self.routed_rows += batch.num_rows();
        self.routed_bytes += size;
        self.routed.push(batch);
        if self.routed_rows >= self.batch_size * ROUTED_BATCHES || self.routed_bytes >= ROUTED_BYTES
        {
            self.copy_routed()?;
        }
        Ok(())
    }

    /// Copies the buffered rows of each bucket into one batch of that bucket: one
    /// `interleave` per column and bucket however many input batches the rows came from,
    /// where slicing every input batch into every bucket would cost per piece.
    fn copy_routed(&mut self) -> Result<()> {
        if self.routed.is_empty() {
            return Ok(());
        }
        let columns = self.schema.fields().len();
        let sources: Vec<Vec<&dyn Array>> = (0..columns)
            .map(|c| self.routed.iter().map(|b| b.column(c).as_ref()).collect())
            .collect();
        for (bucket, routes) in self.routes.iter_mut().enumerate() {
            if routes.is_empty() {
                continue;
            }
            // Batches of at most `batch_size` rows: with few buckets a bucket's share of the
            // buffered rows is many batches' worth.
            for rows in routes.chunks(self.batch_size) {
                let arrays = sources
                    .iter()
                    .map(|values| interleave(values, rows).map(compact_views))
                    .collect::<std::result::Result<Vec<_>, _>>()?;
                let options = RecordBatchOptions::new().with_row_count(Some(rows.len()));
                let batch =
                    RecordBatch::try_new_with_options(self.schema.clone(), arrays, &options)?;
                self.done[bucket].push(batch);
            }
            routes.clear();
        }
        self.routed.clear();
        self.routed_rows = 0;
        self.routed_bytes = 0;
        Ok(())
    }

    /// Replaces a bucket's pending pieces by one compact batch: a copy sized to the rows,
    /// which also copies the strings of view arrays, so that no piece keeps its parent's
    /// buffers (in memory or in a spill file).
    fn concat(&mut self, bucket: usize) -> Result<()> {
        let pieces = std::mem::take(&mut self.pending[bucket]);
        let rows = std::mem::take(&mut self.pending_rows[bucket]);
        if rows == 0 {
            return Ok(());
        }
        let mut coalescer =
            BatchCoalescer::new(self.schema.clone(), rows).with_biggest_coalesce_batch_size(None);
        for piece in pieces {
            coalescer.push_batch(piece)?;
        }
        coalescer.finish_buffered_batch()?;
        while let Some(batch) = coalescer.next_completed_batch() {
            self.done[bucket].push(batch);
        }
        Ok(())
    }

    fn drain_buffers(&mut self) -> Result<Vec<Vec<RecordBatch>>> {
        self.copy_routed()?;
        for (coalescer, done) in self.coalescers.iter_mut().zip(self.done.iter_mut()) {
            coalescer.finish_buffered_batch()?;
            while let Some(batch) = coalescer.next_completed_batch() {
                done.push(batch);
            }
        }
        for bucket in 0..self.pending.len() {
            self.concat(bucket)?;
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

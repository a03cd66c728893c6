//! [`ShuffleWriteExec`]: the root of every stage; writes each task's output to the shuffle
//! store, partitioned into the buckets its exchange asks for.

use std::fmt;
use std::sync::Arc;

use datafusion::arrow::array::{RecordBatch, UInt32Array};
use datafusion::arrow::compute::{BatchCoalescer, take_record_batch};
use datafusion::arrow::datatypes::SchemaRef;
use datafusion::common::hash_utils::create_hashes;
use datafusion::common::tree_node::TreeNodeRecursion;
use datafusion::error::{DataFusionError, Result};
use datafusion::execution::TaskContext;
use datafusion::execution::memory_pool::{MemoryConsumer, MemoryReservation};
use datafusion::physical_expr::{EquivalenceProperties, PhysicalExpr};
use datafusion::physical_plan::execution_plan::{Boundedness, EmissionType};
use datafusion::physical_plan::metrics::{
    ExecutionPlanMetricsSet, MetricBuilder, MetricsSet, Time,
};
use datafusion::physical_plan::repartition::REPARTITION_RANDOM_STATE;
use datafusion::physical_plan::stream::RecordBatchStreamAdapter;
use datafusion::physical_plan::{
    DisplayAs, DisplayFormatType, ExecutionPlan, ExecutionPlanProperties, Partitioning,
    PlanProperties, SendableRecordBatchStream,
};
use futures::StreamExt;

use super::shuffle_read::store_of;
use super::{Exchange, StageId};
use crate::shuffle::{MapOutput, ShuffleStore};

/// Writes the output of each partition (task) of its input into the job's
/// [`ShuffleStore`] as shuffle `stage`:
///
/// ```text
///   input partition m ──▶ full batches ──▶ hash (DataFusion's) ──▶ reordered by bucket: a run
///                                                     [ b0 b0 | b1 | … | bR-1 ], offsets
///                         runs spilled under memory pressure          │
///                                                                     ▼
///                                       store[(stage, m)]  + rows/bytes per bucket
/// ```
///
/// Like Spark's sort-based shuffle, a map task copies each row once, whatever the number of
/// buckets, and a reader of a range of buckets gets one slice per run.
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
        let store = store_of(&context)?;
        let rows_out = MetricBuilder::new(&self.metrics).output_rows(partition);
        let bytes_out = MetricBuilder::new(&self.metrics).counter("shuffle_write_bytes", partition);
        let spilled = MetricBuilder::new(&self.metrics).spilled_bytes(partition);
        let time = MetricBuilder::new(&self.metrics).subset_time("repartition_time", partition);
        let batch_size = context.session_config().batch_size().max(1);

        let router = match &self.exchange {
            Exchange::Shuffle(Partitioning::Hash(exprs, buckets)) => {
                Router::Hash(HashRouter::new(exprs.clone(), *buckets))
            }
            Exchange::Shuffle(Partitioning::RoundRobinBatch(buckets)) => Router::RoundRobin {
                // Tasks start at different buckets, as DataFusion's partitioner does.
                next: partition % (*buckets).max(1),
                buckets: (*buckets).max(1),
            },
            Exchange::Shuffle(other) => {
                return Err(DataFusionError::Internal(format!(
                    "stage {}: cannot shuffle by {other}",
                    self.stage
                )));
            }
            Exchange::Gather | Exchange::Broadcast | Exchange::Result => Router::Single,
        };
        let reservation = MemoryConsumer::new(format!("ShuffleWriteExec[{partition}]"))
            .with_can_spill(true)
            .register(context.memory_pool());
        let mut writer = MapOutputWriter {
            output: MapOutput::new(self.exchange.buckets()),
            schema: self.input.schema(),
            input: BatchCoalescer::new(self.input.schema(), batch_size)
                .with_biggest_coalesce_batch_size(Some(batch_size / 2)),
            router,
            time,
            reservation,
            store: store.clone(),
            shuffle: self.stage,
            spilled_bytes: 0,
        };
        let mut stream = self.input.execute(partition, context)?;
        while let Some(batch) = stream.next().await {
            writer.push(batch?).await?;
            // Let the worker thread run other tasks between batches. A task woken by another
            // task (one waiting for a broadcast build side the other made, say) lands in the
            // waker's thread's LIFO slot, which other threads cannot steal from: without a
            // yield both tasks would share one thread while the other slots' threads idle.
            // A yielding task goes to the stealable queue instead.
            tokio::task::yield_now().await;
        }
        let (output, written_spill) = writer.finish().await?;
        let (rows, bytes) = (output.rows(), output.bytes());
        // Output the store has no memory left for is spilled on commit (on a blocking
        // thread): it counts as this task's spill.
        let stage = self.stage;
        let committed = match store.has_room_for(output.memory_bytes()) {
            true => store.commit(stage, partition, output),
            false => tokio::task::spawn_blocking(move || store.commit(stage, partition, output))
                .await
                .map_err(|e| {
                    DataFusionError::Execution(format!("committing map output failed: {e}"))
                })?,
        };
        let spilled_bytes = written_spill + committed?;
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

/// Which bucket each row of a batch goes to.
enum Router {
    Hash(HashRouter),
    /// Whole batches to one bucket after another.
    RoundRobin {
        next: usize,
        buckets: usize,
    },
    /// Everything to bucket 0 (gather, broadcast, result).
    Single,
}

/// Hash partitioning: DataFusion's hash of the key columns with the seed its
/// `RepartitionExec` uses, modulo the bucket count (the assignment DataFusion's own hash
/// repartitioning makes), then a counting sort of the rows by bucket.
struct HashRouter {
    exprs: Vec<Arc<dyn PhysicalExpr>>,
    buckets: usize,
    modulo: Modulo,
    hashes: Vec<u64>,
    bucket_of: Vec<u32>,
}

impl HashRouter {
    fn new(exprs: Vec<Arc<dyn PhysicalExpr>>, buckets: usize) -> Self {
        let buckets = buckets.max(1);
        Self {
            exprs,
            buckets,
            modulo: Modulo::new(buckets as u64),
            hashes: Vec::new(),
            bucket_of: Vec::new(),
        }
    }

    /// `batch` reordered by bucket (rows of one bucket keep their order), with the offsets
    /// where each bucket starts.
    fn sort(&mut self, batch: &RecordBatch) -> Result<(RecordBatch, Vec<usize>)> {
        let rows = batch.num_rows();
        let keys = self
            .exprs
            .iter()
            .map(|e| e.evaluate(batch)?.into_array(rows))
            .collect::<Result<Vec<_>>>()?;
        self.hashes.clear();
        self.hashes.resize(rows, 0);
        create_hashes(
            &keys,
            REPARTITION_RANDOM_STATE.random_state(),
            &mut self.hashes,
        )?;
        let modulo = self.modulo;
        let mut offsets = vec![0usize; self.buckets + 1];
        self.bucket_of.clear();
        self.bucket_of.extend(self.hashes.iter().map(|&hash| {
            let bucket = modulo.of(hash) as u32;
            offsets[bucket as usize + 1] += 1;
            bucket
        }));
        for b in 0..self.buckets {
            offsets[b + 1] += offsets[b];
        }
        let mut next = offsets[..self.buckets].to_vec();
        let mut order = vec![0u32; rows];
        for (row, &bucket) in self.bucket_of.iter().enumerate() {
            let slot = &mut next[bucket as usize];
            order[*slot] = row as u32;
            *slot += 1;
        }
        // Rows without columns (a window over constants reads none) need no reordering;
        // `take` cannot build a batch of no columns.
        let sorted = match batch.num_columns() {
            0 => batch.clone(),
            _ => take_record_batch(batch, &UInt32Array::from(order))?,
        };
        Ok((sorted, offsets))
    }
}

/// `value % divisor` for one divisor and many values, without a division per value: a mask
/// for powers of two, otherwise the quotient from a multiplication by the divisor's
/// reciprocal (what compilers do for a constant divisor; DataFusion's partitioner does the
/// same).
#[derive(Debug, Clone, Copy)]
enum Modulo {
    Mask(u64),
    Reciprocal { divisor: u64, reciprocal: u128 },
}

impl Modulo {
    fn new(divisor: u64) -> Self {
        let divisor = divisor.max(1);
        if divisor.is_power_of_two() {
            Modulo::Mask(divisor - 1)
        } else {
            // ceil(2^128 / divisor)
            Modulo::Reciprocal {
                divisor,
                reciprocal: u128::MAX / u128::from(divisor) + 1,
            }
        }
    }

    #[inline]
    fn of(self, value: u64) -> u64 {
        match self {
            Modulo::Mask(mask) => value & mask,
            Modulo::Reciprocal {
                divisor,
                reciprocal,
            } => {
                // The high 64 bits of value × reciprocal (a 192-bit product) are the quotient.
                let low = u128::from(value) * u128::from(reciprocal as u64);
                let high = u128::from(value) * u128::from((reciprocal >> 64) as u64);
                let carry = ((high & u128::from(u64::MAX)) + (low >> 64)) >> 64;
                let quotient = ((high >> 64) + carry) as u64;
                value - quotient * divisor
            }
        }
    }
}

/// Builds a task's [`MapOutput`]: small input batches are first merged into full ones, each
/// full batch is reordered by bucket once (a run), and the runs are spilled to a file when
/// the memory pool refuses more.
struct MapOutputWriter {
    output: MapOutput,
    schema: SchemaRef,
    input: BatchCoalescer,
    router: Router,
    time: Time,
    reservation: MemoryReservation,
    store: Arc<ShuffleStore>,
    /// The shuffle written (the stage's id), whose job's directory spills go to.
    shuffle: StageId,
    spilled_bytes: u64,
}

impl MapOutputWriter {
    async fn push(&mut self, batch: RecordBatch) -> Result<()> {
        if batch.num_rows() == 0 {
            return Ok(());
        }
        self.input.push_batch(batch)?;
        while let Some(full) = self.input.next_completed_batch() {
            self.write(full).await?;
        }
        Ok(())
    }

    async fn write(&mut self, batch: RecordBatch) -> Result<()> {
        let timer = self.time.timer();
        let size = match &mut self.router {
            Router::Hash(router) => {
                let (sorted, offsets) = router.sort(&batch)?;
                self.output.push_sorted(sorted, offsets)
            }
            Router::RoundRobin { next, buckets } => {
                let bucket = *next;
                *next = (*next + 1) % *buckets;
                self.output.push_partition(bucket, batch)
            }
            Router::Single => self.output.push_partition(0, batch),
        };
        timer.done();
        if self.reservation.try_grow(size).is_err() {
            self.spill().await?;
        }
        Ok(())
    }

    /// Writes the runs in memory to a spill file and frees their reservation. The file is
    /// written on a blocking thread, not on the async worker running the task.
    async fn spill(&mut self) -> Result<()> {
        let path = self.store.spill_path(self.shuffle)?;
        let schema = self.schema.clone();
        let mut output = std::mem::replace(&mut self.output, MapOutput::new(0));
        let (output, written) = tokio::task::spawn_blocking(move || {
            let written = output.spill(path, &schema);
            (output, written)
        })
        .await
        .map_err(|e| DataFusionError::Execution(format!("writing a spill file failed: {e}")))?;
        self.output = output;
        self.spilled_bytes += written?;
        self.reservation.free();
        Ok(())
    }

    async fn finish(mut self) -> Result<(MapOutput, u64)> {
        self.input.finish_buffered_batch()?;
        while let Some(batch) = self.input.next_completed_batch() {
            self.write(batch).await?;
        }
        // The store accounts for committed output itself.
        self.reservation.free();
        Ok((self.output, self.spilled_bytes))
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

#[cfg(test)]
mod tests {
    use super::Modulo;

    #[test]
    fn modulo_without_division_agrees_with_the_remainder_operator() {
        let values = (0..10_000u64)
            .map(|i| i.wrapping_mul(0x9E37_79B9_7F4A_7C15) ^ (i << 7))
            .chain([0, 1, u64::MAX, u64::MAX - 1, 1 << 63, (1 << 63) - 1]);
        for divisor in [1, 2, 3, 7, 64, 200, 1000, 65_537, u32::MAX as u64, u64::MAX] {
            let modulo = Modulo::new(divisor);
            for value in values.clone() {
                assert_eq!(modulo.of(value), value % divisor, "{value} % {divisor}");
            }
        }
    }
}

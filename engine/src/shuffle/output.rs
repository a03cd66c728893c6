//! [`MapOutput`]: what one map task wrote, laid out like Spark's sort-based shuffle output.
//!
//! A map task does not keep a buffer per reduce partition. Each batch it writes is reordered
//! once, by reduce partition, into a *run* that records where every partition starts:
//!
//! ```text
//!   run 0:  [ p0 p0 p0 | p1 | p2 p2 | … | p199 p199 ]   offsets 0, 3, 4, 6, …, n
//!   run 1:  [ p0 | p1 p1 p1 | … ]                      offsets 0, 1, 4, …, n
//! ```
//!
//! Reading a *range* of reduce partitions — one partition, or the many that adaptive
//! execution coalesced into one task — is then one zero-copy slice per run, however many
//! partitions the range covers. Runs spilled to disk are written partition by partition, so
//! a range of partitions is a range of batches in the file.

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;

use datafusion::arrow::array::{
    Array, ArrayRef, AsArray, OffsetSizeTrait, RecordBatch, RecordBatchOptions,
};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{DataType, SchemaRef};
use datafusion::error::Result;

use super::{FetchFailed, SpillFile};

/// The output of one map task: runs of rows ordered by reduce partition, in memory and in
/// spill files, with the rows and bytes it holds for each reduce partition (Spark's
/// `MapStatus`).
#[derive(Debug, Clone)]
pub struct MapOutput {
    /// Runs written to spill files, oldest first; all of them precede `runs`.
    spilled: Vec<SpilledRuns>,
    runs: Vec<Run>,
    /// Data bytes of `runs`.
    memory: usize,
    rows: Vec<u64>,
    bytes: Vec<u64>,
    /// Whether the data was lost (a fault test): the sizes stay, as a `MapStatus` does
    /// until a reader fails to fetch the blocks.
    lost: bool,
}

/// A batch whose rows are ordered by reduce partition.
#[derive(Debug, Clone)]
struct Run {
    batch: RecordBatch,
    /// Partition `r`'s rows are `offsets[r]..offsets[r + 1]`.
    offsets: Arc<[usize]>,
}

/// Runs written to one spill file, partition by partition.
#[derive(Debug, Clone)]
struct SpilledRuns {
    file: Arc<SpillFile>,
    /// Partition `r`'s batches are `ranges[r]` (as batch indexes in the file).
    ranges: Arc<[Range<usize>]>,
}

/// The part of a map output one reader asks for: slices of in-memory runs now, spilled
/// batches read when [`MapOutputSlice::batches`] is called (outside the store's lock).
#[derive(Debug)]
pub struct MapOutputSlice {
    /// Where the slice comes from (shuffle, map task), for a fetch failure's report.
    pub(super) source: (usize, usize),
    files: Vec<(Arc<SpillFile>, Range<usize>)>,
    memory: Vec<RecordBatch>,
    pub rows: u64,
    pub bytes: u64,
}

impl MapOutputSlice {
    /// Every batch of the slice, in the order the map task wrote them. A spill file that
    /// cannot be read is a [`FetchFailed`] of the map task.
    /// Whether reading the slice reads spill files.
    pub fn on_disk(&self) -> bool {
        self.files.iter().any(|(_, range)| !range.is_empty())
    }

    pub fn batches(self) -> Result<Vec<RecordBatch>> {
        let mut batches = Vec::new();
        for (file, range) in &self.files {
            let read = file.read(range.clone()).map_err(|error| {
                FetchFailed {
                    shuffle: self.source.0,
                    map: self.source.1,
                    reason: error.find_root().to_string(),
                }
                .into_error()
            })?;
            batches.extend(read);
        }
        batches.extend(self.memory);
        Ok(batches)
    }
}

impl MapOutput {
    /// An empty output for `partitions` reduce partitions.
    pub fn new(partitions: usize) -> Self {
        Self {
            spilled: Vec::new(),
            runs: Vec::new(),
            memory: 0,
            rows: vec![0; partitions],
            bytes: vec![0; partitions],
            lost: false,
        }
    }

    /// Number of reduce partitions.
    pub fn partitions(&self) -> usize {
        self.rows.len()
    }

    /// Adds `batch`, whose rows are ordered by reduce partition: partition `r`'s rows are
    /// `offsets[r]..offsets[r + 1]`. Returns the data bytes added.
    pub fn push_sorted(&mut self, batch: RecordBatch, offsets: Vec<usize>) -> usize {
        debug_assert_eq!(offsets.len(), self.partitions() + 1);
        debug_assert_eq!(offsets.last().copied(), Some(batch.num_rows()));
        if batch.num_rows() == 0 {
            return 0;
        }
        let bytes = partition_bytes(&batch, &offsets);
        let mut added = 0;
        for (r, bytes) in bytes.into_iter().enumerate() {
            self.rows[r] += (offsets[r + 1] - offsets[r]) as u64;
            self.bytes[r] += bytes;
            added += bytes as usize;
        }
        self.memory += added;
        self.runs.push(Run {
            batch,
            offsets: offsets.into(),
        });
        added
    }

    /// Adds `batch`, all of whose rows belong to reduce partition `partition`. Returns the
    /// data bytes added.
    pub fn push_partition(&mut self, partition: usize, batch: RecordBatch) -> usize {
        let rows = batch.num_rows();
        let offsets = (0..=self.partitions())
            .map(|r| if r <= partition { 0 } else { rows })
            .collect();
        self.push_sorted(batch, offsets)
    }

    /// Data bytes of the runs held in memory.
    pub fn memory_bytes(&self) -> usize {
        self.memory
    }

    pub fn rows(&self) -> u64 {
        self.rows.iter().sum()
    }

    pub fn bytes(&self) -> u64 {
        self.bytes.iter().sum()
    }

    /// Rows per reduce partition.
    pub fn partition_rows(&self) -> &[u64] {
        &self.rows
    }

    /// Data bytes per reduce partition (Arrow memory format).
    pub fn partition_bytes(&self) -> &[u64] {
        &self.bytes
    }

    /// Loses the data of this output, in memory and on disk (for fault tests): its spill
    /// files are deleted, its runs in memory dropped; the sizes stay. Returns the bytes of
    /// memory freed.
    pub fn lose_data(&mut self) -> usize {
        for spilled in &self.spilled {
            spilled.file.delete();
        }
        self.runs.clear();
        self.lost = true;
        std::mem::take(&mut self.memory)
    }

    /// Whether all of this output can be read: nothing lost, every spill file on disk.
    pub fn readable(&self) -> bool {
        !self.lost && self.spilled.iter().all(|s| s.file.exists())
    }

    /// Whether the data was lost while its sizes stayed.
    pub fn lost(&self) -> bool {
        self.lost
    }

    /// Writes the in-memory runs to a new spill file at `path`, one batch per reduce
    /// partition, and drops them from memory. Returns the size of the file (0 if there was
    /// nothing to write).
    pub fn spill(&mut self, path: PathBuf, schema: &SchemaRef) -> Result<u64> {
        if self.runs.is_empty() {
            return Ok(0);
        }
        let partitions: Vec<Vec<RecordBatch>> = (0..self.partitions())
            .map(|r| {
                let slices: Vec<RecordBatch> = self
                    .runs
                    .iter()
                    .filter_map(|run| run.slice(r..r + 1))
                    .collect();
                Ok(match slices.len() {
                    0 => Vec::new(),
                    _ => vec![compact_views(concat_batches(schema, &slices)?)?],
                })
            })
            .collect::<Result<_>>()?;
        let (file, ranges) = SpillFile::write(path, schema, &partitions)?;
        let bytes = file.bytes();
        self.spilled.push(SpilledRuns {
            file,
            ranges: ranges.into(),
        });
        self.runs.clear();
        self.memory = 0;
        Ok(bytes)
    }

    /// The rows of reduce partitions `reduce`, with their count and size.
    pub fn slice(&self, reduce: Range<usize>) -> MapOutputSlice {
        let reduce = reduce.start.min(self.partitions())..reduce.end.min(self.partitions());
        let files = match reduce.is_empty() {
            true => Vec::new(),
            false => self
                .spilled
                .iter()
                .map(|s| {
                    let range = s.ranges[reduce.start].start..s.ranges[reduce.end - 1].end;
                    (s.file.clone(), range)
                })
                .filter(|(_, range)| !range.is_empty())
                .collect(),
        };
        MapOutputSlice {
            source: (0, 0),
            files,
            memory: self
                .runs
                .iter()
                .filter_map(|run| run.slice(reduce.clone()))
                .collect(),
            rows: self.rows[reduce.clone()].iter().sum(),
            bytes: self.bytes[reduce].iter().sum(),
        }
    }
}

impl Run {
    /// The rows of reduce partitions `reduce` (not empty), or `None` if it has none.
    fn slice(&self, reduce: Range<usize>) -> Option<RecordBatch> {
        if reduce.is_empty() {
            return None;
        }
        let (start, end) = (self.offsets[reduce.start], self.offsets[reduce.end]);
        (end > start).then(|| self.batch.slice(start, end - start))
    }
}

/// Data bytes of each partition of a run (`offsets` as in [`MapOutput::push_sorted`]): the
/// size in Arrow memory format of the partition's rows (their data, not the capacity of the
/// buffers they sit in). Exact for fixed-width columns and for strings and binaries with offsets;
/// other columns (views, nested, dictionaries) are shared out by rows.
fn partition_bytes(batch: &RecordBatch, offsets: &[usize]) -> Vec<u64> {
    let rows = batch.num_rows().max(1) as u64;
    let mut bytes = vec![0u64; offsets.len() - 1];
    for column in batch.columns() {
        match column.data_type() {
            DataType::Utf8 | DataType::Binary => {
                add_value_bytes::<i32>(column, offsets, &mut bytes)
            }
            DataType::LargeUtf8 | DataType::LargeBinary => {
                add_value_bytes::<i64>(column, offsets, &mut bytes)
            }
            _ => {
                let total = column_bytes(column);
                for (r, bytes) in bytes.iter_mut().enumerate() {
                    *bytes += total * (offsets[r + 1] - offsets[r]) as u64 / rows;
                }
            }
        }
    }
    bytes
}

/// Adds each partition's share of a string or binary column: its values, offsets and nulls.
fn add_value_bytes<O: OffsetSizeTrait>(column: &ArrayRef, offsets: &[usize], bytes: &mut [u64]) {
    let values = match column.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 => column.as_string::<O>().value_offsets(),
        _ => column.as_binary::<O>().value_offsets(),
    };
    let nulls = column.nulls().is_some();
    for (r, bytes) in bytes.iter_mut().enumerate() {
        let (start, end) = (offsets[r], offsets[r + 1]);
        if end == start {
            continue;
        }
        let value_bytes = (values[end] - values[start]).as_usize();
        let offset_bytes = (end - start + 1) * O::get_byte_width();
        let null_bytes = if nulls { (end - start).div_ceil(8) } else { 0 };
        *bytes += (value_bytes + offset_bytes + null_bytes) as u64;
    }
}

/// `batch` with its string and binary views pointing into buffers of their own. A slice of a
/// run points into all of the run's buffers, and a file gets every buffer a batch points
/// into: without this, each partition written would carry the whole run's strings.
fn compact_views(batch: RecordBatch) -> Result<RecordBatch> {
    let columns = batch
        .columns()
        .iter()
        .map(|column| -> ArrayRef {
            match column.data_type() {
                DataType::Utf8View => Arc::new(column.as_string_view().gc()),
                DataType::BinaryView => Arc::new(column.as_binary_view().gc()),
                _ => column.clone(),
            }
        })
        .collect();
    // A batch of no columns (`SELECT count(*)`'s rows, a window over constants) keeps its
    // row count.
    let options = RecordBatchOptions::new().with_row_count(Some(batch.num_rows()));
    Ok(RecordBatch::try_new_with_options(
        batch.schema(),
        columns,
        &options,
    )?)
}

fn column_bytes(column: &ArrayRef) -> u64 {
    column
        .to_data()
        .get_slice_memory_size()
        .unwrap_or_else(|_| column.get_array_memory_size()) as u64
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, StringArray};
    use datafusion::arrow::datatypes::{Field, Schema};

    fn batch(keys: &[i64], names: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("k", DataType::Int64, false),
            Field::new("name", DataType::Utf8, false),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(keys.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    fn keys(batches: &[RecordBatch]) -> Vec<i64> {
        batches
            .iter()
            .flat_map(|b| {
                b.column(0)
                    .as_primitive::<datafusion::arrow::datatypes::Int64Type>()
                    .values()
                    .to_vec()
            })
            .collect()
    }

    #[test]
    fn a_range_of_partitions_is_one_slice_per_run_and_sizes_add_up() {
        let mut output = MapOutput::new(3);
        // Partition 0: rows 0..2, partition 1: none, partition 2: rows 2..3.
        output.push_sorted(batch(&[1, 2, 3], &["a", "bb", "cccc"]), vec![0, 2, 2, 3]);
        output.push_partition(1, batch(&[4], &["dddddddd"]));
        assert_eq!(output.partition_rows(), &[2, 1, 1]);
        // Partition bytes: 8 per key, the string values, and (rows + 1) 4-byte offsets.
        assert_eq!(
            output.partition_bytes(),
            &[16 + 3 + 12, 8 + 8 + 8, 8 + 4 + 8]
        );
        assert_eq!(output.bytes(), output.memory_bytes() as u64);

        let all = output.slice(0..3);
        assert_eq!((all.rows, all.bytes), (4, output.bytes()));
        assert_eq!(all.memory.len(), 2, "one slice per run");
        assert_eq!(keys(&all.batches().unwrap()), vec![1, 2, 3, 4]);
        assert_eq!(keys(&output.slice(1..2).batches().unwrap()), vec![4]);
        assert_eq!(keys(&output.slice(1..3).batches().unwrap()), vec![3, 4]);
        assert_eq!(output.slice(5..9).rows, 0);
    }

    #[test]
    fn spilled_runs_read_back_partition_ranges_in_write_order() {
        let dir = tempfile::tempdir().unwrap();
        let schema = batch(&[], &[]).schema();
        let mut output = MapOutput::new(2);
        output.push_sorted(batch(&[1, 2, 3], &["a", "b", "c"]), vec![0, 1, 3]);
        output.push_sorted(batch(&[4, 5], &["d", "e"]), vec![0, 2, 2]);
        let bytes_before = output.partition_bytes().to_vec();
        assert!(output.spill(dir.path().join("a.arrow"), &schema).unwrap() > 0);
        assert_eq!(output.memory_bytes(), 0);
        output.push_sorted(batch(&[6, 7], &["f", "g"]), vec![0, 1, 2]);
        assert_eq!(
            keys(&output.slice(0..1).batches().unwrap()),
            vec![1, 4, 5, 6]
        );
        assert_eq!(keys(&output.slice(1..2).batches().unwrap()), vec![2, 3, 7]);
        assert_eq!(
            keys(&output.slice(0..2).batches().unwrap()),
            vec![1, 4, 5, 2, 3, 6, 7]
        );
        assert!(output.partition_bytes()[0] > bytes_before[0]);
        assert_eq!(output.partition_rows(), &[4, 3]);
    }

    #[test]
    fn a_spill_writes_each_string_once_not_once_per_partition() {
        use datafusion::arrow::array::StringViewArray;
        let dir = tempfile::tempdir().unwrap();
        let schema = Arc::new(Schema::new(vec![Field::new(
            "s",
            DataType::Utf8View,
            false,
        )]));
        let partitions = 100;
        let strings: Vec<String> = (0..1000).map(|i| format!("{i:0>64}")).collect();
        let column = StringViewArray::from_iter_values(&strings);
        let batch = RecordBatch::try_new(schema.clone(), vec![Arc::new(column)]).unwrap();
        let mut output = MapOutput::new(partitions);
        // Ten rows per partition, every partition's views pointing into one shared buffer.
        output.push_sorted(batch, (0..=partitions).map(|r| r * 10).collect());
        let written = output.spill(dir.path().join("v.arrow"), &schema).unwrap();
        let strings_bytes = 1000 * 64;
        assert!(
            written < 3 * strings_bytes,
            "spill file of {written} bytes for {strings_bytes} bytes of strings"
        );
        let back = output.slice(3..4).batches().unwrap();
        assert_eq!(back[0].column(0).as_string_view().value(0), strings[30]);
    }
}

//! The store itself: the map outputs of each shuffle, with statistics.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::Mutex;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};

use super::{FetchFailed, MapOutput, MapOutputSlice};

/// Shuffles are numbered per job; a stage's output shuffle has its stage's number.
pub type ShuffleId = usize;

/// Exact sizes of a finished shuffle, per reduce partition and per map task: what adaptive
/// execution decides on (Spark's `MapOutputStatistics`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MapOutputStatistics {
    /// `bytes[m][r]`: bytes map task `m` wrote for reduce partition `r`.
    pub bytes: Vec<Vec<u64>>,
    /// `rows[m][r]`, likewise.
    pub rows: Vec<Vec<u64>>,
}

impl MapOutputStatistics {
    /// Total bytes per reduce partition. A block of rows without columns counts one byte,
    /// so that no rule takes it for nothing.
    pub fn bytes_by_partition(&self) -> Vec<u64> {
        let partitions = self.bytes.first().map_or(0, Vec::len);
        (0..partitions)
            .map(|r| {
                self.bytes
                    .iter()
                    .zip(&self.rows)
                    .map(|(bytes, rows)| bytes[r].max(u64::from(rows[r] > 0)))
                    .sum()
            })
            .collect()
    }
}

#[derive(Debug)]
struct Shuffle {
    schema: SchemaRef,
    maps: Vec<Option<MapOutput>>,
}

/// The map outputs of one job. See the module documentation.
#[derive(Debug)]
pub struct ShuffleStore {
    shuffles: Mutex<HashMap<ShuffleId, Shuffle>>,
    memory_budget: usize,
    memory_used: AtomicUsize,
    spilled_bytes: AtomicU64,
    spill_root: PathBuf,
    spill_dir: OnceLock<tempfile::TempDir>,
    next_file: AtomicUsize,
}

impl ShuffleStore {
    /// A store that keeps up to `memory_budget` bytes of map output in memory and spills the
    /// rest into a job directory created under `spill_root` when first needed.
    pub fn new(memory_budget: usize, spill_root: PathBuf) -> Self {
        Self {
            shuffles: Mutex::new(HashMap::new()),
            memory_budget,
            memory_used: AtomicUsize::new(0),
            spilled_bytes: AtomicU64::new(0),
            spill_root,
            spill_dir: OnceLock::new(),
            next_file: AtomicUsize::new(0),
        }
    }

    /// Declares shuffle `id` with `maps` map tasks writing batches of `schema`. A shuffle
    /// already declared (a new attempt of its stage) keeps the outputs it has.
    pub fn register(&self, id: ShuffleId, schema: SchemaRef, maps: usize) {
        let mut shuffles = self.lock();
        if shuffles.get(&id).is_some_and(|s| s.maps.len() == maps) {
            return;
        }
        shuffles.insert(
            id,
            Shuffle {
                schema,
                maps: vec![None; maps],
            },
        );
    }

    /// Stores the output of a finished map task, replacing what an earlier attempt of the
    /// same task stored. Spills the output to disk when memory is over budget; returns the
    /// bytes spilled.
    pub fn commit(&self, id: ShuffleId, map: usize, mut output: MapOutput) -> Result<u64> {
        let schema = self.schema(id)?;
        let mut spilled = 0;
        let memory = output.memory_bytes();
        if memory > 0 && self.memory_used.load(Ordering::Relaxed) + memory > self.memory_budget {
            spilled = output.spill(self.spill_path()?, &schema)?;
            self.spilled_bytes.fetch_add(spilled, Ordering::Relaxed);
        }
        self.memory_used
            .fetch_add(output.memory_bytes(), Ordering::Relaxed);
        let mut shuffles = self.lock();
        let shuffle = shuffles
            .get_mut(&id)
            .ok_or_else(|| DataFusionError::Internal(format!("shuffle {id} is not registered")))?;
        let slot = shuffle.maps.get_mut(map).ok_or_else(|| {
            DataFusionError::Internal(format!("shuffle {id} has no map task {map}"))
        })?;
        if let Some(previous) = slot.replace(output) {
            self.memory_used
                .fetch_sub(previous.memory_bytes(), Ordering::Relaxed);
        }
        Ok(spilled)
    }

    /// A fresh path for a spill file in this job's directory.
    pub fn spill_path(&self) -> Result<PathBuf> {
        let dir = match self.spill_dir.get() {
            Some(dir) => dir,
            None => {
                std::fs::create_dir_all(&self.spill_root).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "cannot create spill directory {} (spark.local.dir): {e}",
                        self.spill_root.display()
                    ))
                })?;
                let dir = tempfile::Builder::new()
                    .prefix("stagesql-job-")
                    .tempdir_in(&self.spill_root)
                    .map_err(|e| {
                        DataFusionError::Execution(format!(
                            "cannot create a job directory in {} (spark.local.dir): {e}",
                            self.spill_root.display()
                        ))
                    })?;
                // Another task may have created one first; use whichever won.
                let _ = self.spill_dir.set(dir);
                self.spill_dir.get().expect("set above")
            }
        };
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        Ok(dir.path().join(format!("shuffle-{n}.arrow")))
    }

    /// What map task `map` wrote for the reduce partitions `reduce`. Spilled data is read
    /// when the slice's batches are asked for, without holding the store. A map output that
    /// is not there is a [`FetchFailed`].
    pub fn slice(&self, id: ShuffleId, map: usize, reduce: Range<usize>) -> Result<MapOutputSlice> {
        let shuffles = self.lock();
        let shuffle = shuffles
            .get(&id)
            .ok_or_else(|| DataFusionError::Internal(format!("shuffle {id} is not registered")))?;
        let output = shuffle
            .maps
            .get(map)
            .and_then(Option::as_ref)
            .ok_or_else(|| {
                FetchFailed {
                    shuffle: id,
                    map,
                    reason: "the map task has no output".into(),
                }
                .into_error()
            })?;
        if output.lost() {
            return Err(FetchFailed {
                shuffle: id,
                map,
                reason: "its blocks are gone (as with a lost executor or disk)".into(),
            }
            .into_error());
        }
        let mut slice = output.slice(reduce);
        slice.source = (id, map);
        Ok(slice)
    }

    /// Loses what map task `map` of shuffle `id` wrote, as a lost executor or disk would:
    /// its runs in memory are dropped and its spill files deleted; its sizes stay (Spark's
    /// `MapStatus` stays registered until a reader fails to fetch the blocks), so adaptive
    /// execution plans the reading stage as it would have, and the read fails. For fault tests
    /// (`stagesql.test.lose_shuffle_output`). Returns whether there was an output to lose.
    pub fn lose(&self, id: ShuffleId, map: usize) -> bool {
        let mut shuffles = self.lock();
        let Some(Some(output)) = shuffles.get_mut(&id).and_then(|s| s.maps.get_mut(map)) else {
            return false;
        };
        let freed = output.lose_data();
        self.memory_used.fetch_sub(freed, Ordering::Relaxed);
        true
    }

    /// The map tasks of shuffle `id` whose output is not there to read: never written, or
    /// lost. These are the tasks a new attempt of the map stage runs.
    pub fn missing_maps(&self, id: ShuffleId) -> Vec<usize> {
        let shuffles = self.lock();
        let Some(shuffle) = shuffles.get(&id) else {
            return Vec::new();
        };
        (0..shuffle.maps.len())
            .filter(|&m| shuffle.maps[m].as_ref().is_none_or(|o| !o.readable()))
            .collect()
    }

    /// Number of map tasks of a shuffle.
    pub fn maps(&self, id: ShuffleId) -> usize {
        self.lock().get(&id).map_or(0, |s| s.maps.len())
    }

    /// Sizes of a shuffle's blocks.
    pub fn statistics(&self, id: ShuffleId) -> MapOutputStatistics {
        let shuffles = self.lock();
        let Some(shuffle) = shuffles.get(&id) else {
            return MapOutputStatistics::default();
        };
        let outputs = shuffle.maps.iter().flatten();
        MapOutputStatistics {
            bytes: outputs
                .clone()
                .map(|o| o.partition_bytes().to_vec())
                .collect(),
            rows: outputs.map(|o| o.partition_rows().to_vec()).collect(),
        }
    }

    /// Bytes written to spill files by the store (not by operators).
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled_bytes.load(Ordering::Relaxed)
    }

    /// The job directory holding spill files, if one was created.
    pub fn spill_dir(&self) -> Option<PathBuf> {
        self.spill_dir.get().map(|d| d.path().to_path_buf())
    }

    fn schema(&self, id: ShuffleId) -> Result<SchemaRef> {
        self.lock()
            .get(&id)
            .map(|s| s.schema.clone())
            .ok_or_else(|| DataFusionError::Internal(format!("shuffle {id} is not registered")))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<ShuffleId, Shuffle>> {
        self.shuffles.lock().expect("shuffle store lock poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use datafusion::arrow::array::{Int64Array, RecordBatch};
    use datafusion::arrow::datatypes::{DataType, Field, Schema};
    use std::sync::Arc;

    fn batch(values: &[i64]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![Field::new("x", DataType::Int64, false)]));
        RecordBatch::try_new(schema, vec![Arc::new(Int64Array::from(values.to_vec()))]).unwrap()
    }

    /// A map output of two partitions: `first` in partition 0, `second` in partition 1.
    fn output(first: &[i64], second: &[i64]) -> MapOutput {
        let mut output = MapOutput::new(2);
        output.push_partition(0, batch(first));
        output.push_partition(1, batch(second));
        output
    }

    #[test]
    fn over_budget_outputs_spill_and_read_back_and_files_go_with_the_store() {
        let root = tempfile::tempdir().unwrap();
        let store = ShuffleStore::new(0, root.path().to_path_buf());
        store.register(1, batch(&[]).schema(), 2);
        for map in 0..2 {
            store
                .commit(1, map as usize, output(&[map, 10], &[map + 20]))
                .unwrap();
        }
        assert!(store.spilled_bytes() > 0);
        let read = store.slice(1, 1, 0..1).unwrap().batches().unwrap();
        assert_eq!(read, vec![batch(&[1, 10])]);
        let stats = store.statistics(1);
        assert_eq!(stats.rows, vec![vec![2, 1], vec![2, 1]]);
        let dir = store.spill_dir().unwrap();
        assert!(dir.exists());
        drop(store);
        assert!(!dir.exists(), "spill directory removed with the store");
    }

    #[test]
    fn a_lost_output_in_memory_or_on_disk_is_a_fetch_failure() {
        let root = tempfile::tempdir().unwrap();
        for budget in [usize::MAX, 0] {
            let store = ShuffleStore::new(budget, root.path().to_path_buf());
            store.register(1, batch(&[]).schema(), 2);
            for map in 0..2 {
                store.commit(1, map, output(&[1], &[2])).unwrap();
            }
            assert!(store.missing_maps(1).is_empty());
            assert!(store.lose(1, 1));
            assert_eq!(store.missing_maps(1), vec![1]);
            assert!(store.slice(1, 0, 0..2).unwrap().batches().is_ok());
            let error = store
                .slice(1, 1, 0..2)
                .and_then(|slice| slice.batches())
                .unwrap_err();
            let failed = FetchFailed::find(&error).expect("a fetch failure");
            assert_eq!((failed.shuffle, failed.map), (1, 1), "budget {budget}");
            store.commit(1, 1, output(&[3], &[])).unwrap();
            assert_eq!(store.slice(1, 1, 0..2).unwrap().rows, 1);
        }
    }

    #[test]
    fn a_retried_map_task_replaces_its_earlier_output() {
        let store = ShuffleStore::new(usize::MAX, std::env::temp_dir());
        store.register(3, batch(&[]).schema(), 1);
        store.commit(3, 0, output(&[1], &[])).unwrap();
        store.commit(3, 0, output(&[2, 3], &[])).unwrap();
        assert_eq!(store.slice(3, 0, 0..2).unwrap().rows, 2);
        assert_eq!(store.statistics(3).bytes_by_partition(), vec![16, 0]);
    }
}

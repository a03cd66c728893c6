//! The store itself: the map outputs of each shuffle, with statistics.

use std::collections::HashMap;
use std::ops::Range;
use std::path::PathBuf;
use std::sync::OnceLock;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use datafusion::arrow::datatypes::SchemaRef;
use datafusion::error::{DataFusionError, Result};

use super::{FetchFailed, MapOutput, MapOutputSlice};
use crate::ids::JobId;

/// A stage's output shuffle has its stage's number (unique in the session).
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
    job: JobId,
    schema: SchemaRef,
    maps: Vec<Option<MapOutput>>,
}

/// Where one job spills: a directory created under its `spark.local.dir` when first needed,
/// removed with everything in it when the job ends.
#[derive(Debug)]
struct JobSpace {
    root: PathBuf,
    dir: OnceLock<tempfile::TempDir>,
}

/// The session's block store: the map outputs of the shuffles of every running job, in
/// memory up to one budget and spilled beyond it. A job's shuffles live until the job ends
/// (succeeds, fails or is cancelled). See the module documentation.
#[derive(Debug)]
pub struct ShuffleStore {
    shuffles: Mutex<HashMap<ShuffleId, Shuffle>>,
    jobs: Mutex<HashMap<JobId, Arc<JobSpace>>>,
    memory_budget: AtomicUsize,
    memory_used: AtomicUsize,
    spilled_bytes: AtomicU64,
    next_file: AtomicUsize,
}

impl ShuffleStore {
    /// A store that keeps up to `memory_budget` bytes of map output in memory and spills the
    /// rest into the directory of the job that wrote it.
    pub fn new(memory_budget: usize) -> Self {
        Self {
            shuffles: Mutex::new(HashMap::new()),
            jobs: Mutex::new(HashMap::new()),
            memory_budget: AtomicUsize::new(memory_budget),
            memory_used: AtomicUsize::new(0),
            spilled_bytes: AtomicU64::new(0),
            next_file: AtomicUsize::new(0),
        }
    }

    /// Changes the memory budget (a new `spark.executor.memory`); outputs already in memory
    /// stay, later ones spill while memory is over the new budget.
    pub fn set_memory_budget(&self, bytes: usize) {
        self.memory_budget.store(bytes, Ordering::Relaxed);
    }

    /// Whether `bytes` more of map output would stay in memory (else a commit spills it).
    pub fn has_room_for(&self, bytes: usize) -> bool {
        bytes == 0
            || self.memory_used.load(Ordering::Relaxed) + bytes
                <= self.memory_budget.load(Ordering::Relaxed)
    }

    /// Takes `bytes` of the memory budget for a block kept outside a shuffle (a cached
    /// partition), if there is room; give it back with [`ShuffleStore::release`].
    pub fn reserve(&self, bytes: usize) -> bool {
        let budget = self.memory_budget.load(Ordering::Relaxed);
        self.memory_used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                (used + bytes <= budget).then_some(used + bytes)
            })
            .is_ok()
    }

    /// Gives back memory taken with [`ShuffleStore::reserve`].
    pub fn release(&self, bytes: usize) {
        self.memory_used.fetch_sub(bytes, Ordering::Relaxed);
    }

    /// Drops the map outputs of shuffle `id` before its job ends (what a cache keeps of a
    /// job's last stage is in its own blocks).
    pub fn remove_shuffle(&self, id: ShuffleId) {
        let removed = self.lock().remove(&id);
        let freed: usize = removed
            .iter()
            .flat_map(|s| s.maps.iter().flatten())
            .map(MapOutput::memory_bytes)
            .sum();
        self.memory_used.fetch_sub(freed, Ordering::Relaxed);
    }

    /// Moves the map outputs of `job` that are in memory to its spill files: what stays
    /// after the job (the lineage of a cache) is kept on disk, as Spark keeps shuffle files,
    /// and leaves memory to the blocks. Returns the bytes written.
    pub fn spill_job(&self, job: JobId) -> Result<u64> {
        let ids: Vec<ShuffleId> = self
            .lock()
            .iter()
            .filter(|(_, s)| s.job == job)
            .map(|(id, _)| *id)
            .collect();
        let mut written = 0;
        for id in ids {
            let maps = self.maps(id);
            for map in 0..maps {
                let path = self.spill_path(id)?;
                let mut shuffles = self.lock();
                let Some(shuffle) = shuffles.get_mut(&id) else {
                    continue;
                };
                let schema = shuffle.schema.clone();
                let Some(Some(output)) = shuffle.maps.get_mut(map) else {
                    continue;
                };
                let before = output.memory_bytes();
                if before == 0 {
                    continue;
                }
                written += output.spill(path, &schema)?;
                let freed = before - output.memory_bytes();
                self.memory_used.fetch_sub(freed, Ordering::Relaxed);
            }
        }
        self.spilled_bytes.fetch_add(written, Ordering::Relaxed);
        Ok(written)
    }

    /// Bytes of map output held in memory now, over every job.
    pub fn memory_used(&self) -> usize {
        self.memory_used.load(Ordering::Relaxed)
    }

    /// A job starts: its spill files go into a directory of its own under `spill_root`.
    pub fn begin_job(&self, job: JobId, spill_root: PathBuf) {
        self.lock_jobs().insert(
            job,
            Arc::new(JobSpace {
                root: spill_root,
                dir: OnceLock::new(),
            }),
        );
    }

    /// A job ended (succeeded, failed or was cancelled): its shuffles are dropped from memory
    /// and its spill directory is removed.
    pub fn end_job(&self, job: JobId) {
        let dropped: Vec<Shuffle> = {
            let mut shuffles = self.lock();
            let ids: Vec<ShuffleId> = shuffles
                .iter()
                .filter(|(_, s)| s.job == job)
                .map(|(id, _)| *id)
                .collect();
            ids.iter().filter_map(|id| shuffles.remove(id)).collect()
        };
        let freed: usize = dropped
            .iter()
            .flat_map(|s| s.maps.iter().flatten())
            .map(MapOutput::memory_bytes)
            .sum();
        self.memory_used.fetch_sub(freed, Ordering::Relaxed);
        // Spill files are deleted as their outputs drop, then the directory.
        drop(dropped);
        self.lock_jobs().remove(&job);
    }

    /// Declares shuffle `id` of `job` with `maps` map tasks writing batches of `schema`. A
    /// shuffle already declared (a new attempt of its stage) keeps the outputs it has.
    pub fn register(&self, id: ShuffleId, job: JobId, schema: SchemaRef, maps: usize) {
        let mut shuffles = self.lock();
        if shuffles.get(&id).is_some_and(|s| s.maps.len() == maps) {
            return;
        }
        shuffles.insert(
            id,
            Shuffle {
                job,
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
        let budget = self.memory_budget.load(Ordering::Relaxed);
        if memory > 0 && self.memory_used.load(Ordering::Relaxed) + memory > budget {
            spilled = output.spill(self.spill_path(id)?, &schema)?;
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

    /// A fresh path for a spill file of shuffle `id`, in its job's directory.
    pub fn spill_path(&self, id: ShuffleId) -> Result<PathBuf> {
        let space = self.job_space(id)?;
        let dir = match space.dir.get() {
            Some(dir) => dir,
            None => {
                std::fs::create_dir_all(&space.root).map_err(|e| {
                    DataFusionError::Execution(format!(
                        "cannot create spill directory {} (spark.local.dir): {e}",
                        space.root.display()
                    ))
                })?;
                let dir = tempfile::Builder::new()
                    .prefix("stagesql-job-")
                    .tempdir_in(&space.root)
                    .map_err(|e| {
                        DataFusionError::Execution(format!(
                            "cannot create a job directory in {} (spark.local.dir): {e}",
                            space.root.display()
                        ))
                    })?;
                // Another task may have created one first; use whichever won.
                let _ = space.dir.set(dir);
                space.dir.get().expect("set above")
            }
        };
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        Ok(dir.path().join(format!("shuffle-{id}-{n}.arrow")))
    }

    fn job_space(&self, id: ShuffleId) -> Result<Arc<JobSpace>> {
        let job =
            self.lock().get(&id).map(|s| s.job).ok_or_else(|| {
                DataFusionError::Internal(format!("shuffle {id} is not registered"))
            })?;
        self.lock_jobs().get(&job).cloned().ok_or_else(|| {
            DataFusionError::Internal(format!("job {job} of shuffle {id} has not begun"))
        })
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

    /// The directory holding `job`'s spill files, if one was created.
    pub fn spill_dir(&self, job: JobId) -> Option<PathBuf> {
        let jobs = self.lock_jobs();
        jobs.get(&job)?.dir.get().map(|d| d.path().to_path_buf())
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

    fn lock_jobs(&self) -> std::sync::MutexGuard<'_, HashMap<JobId, Arc<JobSpace>>> {
        self.jobs.lock().expect("shuffle store lock poisoned")
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
    fn over_budget_outputs_spill_and_read_back_and_files_go_with_the_job() {
        let root = tempfile::tempdir().unwrap();
        let store = ShuffleStore::new(0);
        store.begin_job(7, root.path().to_path_buf());
        store.register(1, 7, batch(&[]).schema(), 2);
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
        let dir = store.spill_dir(7).unwrap();
        assert!(dir.exists());
        store.end_job(7);
        assert!(!dir.exists(), "spill directory removed when the job ends");
        assert!(
            store.slice(1, 1, 0..1).is_err(),
            "the job's shuffles are gone"
        );
    }

    #[test]
    fn a_lost_output_in_memory_or_on_disk_is_a_fetch_failure() {
        let root = tempfile::tempdir().unwrap();
        for budget in [usize::MAX, 0] {
            let store = ShuffleStore::new(budget);
            store.begin_job(1, root.path().to_path_buf());
            store.register(1, 1, batch(&[]).schema(), 2);
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
    fn ending_a_job_frees_its_shuffles_and_only_its_own() {
        let root = tempfile::tempdir().unwrap();
        let store = ShuffleStore::new(usize::MAX);
        for (job, shuffle) in [(1, 10), (2, 20)] {
            store.begin_job(job, root.path().to_path_buf());
            store.register(shuffle, job, batch(&[]).schema(), 1);
            store.commit(shuffle, 0, output(&[1, 2], &[3])).unwrap();
        }
        let both = store.memory_used();
        assert!(both > 0);
        store.end_job(1);
        assert_eq!(store.memory_used(), both / 2);
        assert!(store.slice(10, 0, 0..2).is_err(), "job 1's shuffle is gone");
        assert_eq!(store.slice(20, 0, 0..2).unwrap().rows, 3, "job 2's stays");
        store.end_job(2);
        assert_eq!(store.memory_used(), 0);
    }

    #[test]
    fn a_retried_map_task_replaces_its_earlier_output() {
        let store = ShuffleStore::new(usize::MAX);
        store.begin_job(1, std::env::temp_dir());
        store.register(3, 1, batch(&[]).schema(), 1);
        store.commit(3, 0, output(&[1], &[])).unwrap();
        store.commit(3, 0, output(&[2, 3], &[])).unwrap();
        assert_eq!(store.slice(3, 0, 0..2).unwrap().rows, 2);
        assert_eq!(store.statistics(3).bytes_by_partition(), vec![16, 0]);
    }
}

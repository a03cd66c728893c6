//! The cache manager: relations cached with `CACHE TABLE`, one block per partition in the
//! session's block store, as Spark's `CacheManager` and `BlockManager` keep them.
//!
//! ```text
//!   CACHE TABLE t AS q ──a job──▶ partitions of q's last stage ──▶ blocks of t
//!                                                                    │ memory (counted against
//!   later query ⊇ q ──plan matching──▶ InMemoryScan(t) ◀─────────────┘ the storage budget),
//!                                        one task per block             disk, or dropped
//! ```
//!
//! Each block lives where the relation's [`StorageLevel`] allows: in memory while the block
//! store's storage budget has room (made by evicting the least recently used blocks of
//! other relations: to disk if their level allows, else dropped), else on disk
//! (`MEMORY_AND_DISK`, `DISK_ONLY`), else nowhere (`MEMORY_ONLY`): a dropped block is
//! computed again when it is read, from the relation's lineage ([`Recipe`]), and kept again
//! if it fits.

mod scan;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, Weak};

use datafusion::arrow::array::RecordBatch;
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{Field, Schema, SchemaRef};
use datafusion::common::TableReference;
use datafusion::error::{DataFusionError, Result};
use datafusion::logical_expr::LogicalPlan;
use datafusion::physical_plan::ExecutionPlan;

pub use scan::{CachedTable, InMemoryScanExec};

use crate::scheduler::JobShuffles;
use crate::shuffle::{ShuffleStore, SpillFile};

/// Where a cached relation's blocks may live (Spark's storage levels, without replication
/// or serialization, which have no meaning on one machine).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StorageLevel {
    MemoryOnly,
    MemoryAndDisk,
    DiskOnly,
}

impl StorageLevel {
    pub const SUPPORTED: &'static str = "MEMORY_ONLY, MEMORY_AND_DISK, DISK_ONLY";

    /// Parses a level name as Spark spells it (any case).
    pub fn parse(text: &str) -> std::result::Result<StorageLevel, String> {
        match text.trim().to_ascii_uppercase().as_str() {
            "MEMORY_ONLY" => Ok(StorageLevel::MemoryOnly),
            "MEMORY_AND_DISK" => Ok(StorageLevel::MemoryAndDisk),
            "DISK_ONLY" => Ok(StorageLevel::DiskOnly),
            other @ ("NONE"
            | "MEMORY_ONLY_2"
            | "MEMORY_ONLY_SER"
            | "MEMORY_ONLY_SER_2"
            | "MEMORY_AND_DISK_2"
            | "MEMORY_AND_DISK_SER"
            | "MEMORY_AND_DISK_SER_2"
            | "DISK_ONLY_2"
            | "DISK_ONLY_3"
            | "OFF_HEAP") => Err(format!(
                "storage level '{other}' is not supported (replicas, serialized and off-heap \
                 blocks have no meaning in one process); supported: {}",
                Self::SUPPORTED
            )),
            _ => Err(format!(
                "unknown storage level '{}'; supported: {}",
                text.trim(),
                Self::SUPPORTED
            )),
        }
    }

    fn uses_memory(self) -> bool {
        self != StorageLevel::DiskOnly
    }

    fn uses_disk(self) -> bool {
        self != StorageLevel::MemoryOnly
    }
}

impl fmt::Display for StorageLevel {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            StorageLevel::MemoryOnly => "MEMORY_ONLY",
            StorageLevel::MemoryAndDisk => "MEMORY_AND_DISK",
            StorageLevel::DiskOnly => "DISK_ONLY",
        })
    }
}

/// One cached partition.
enum Block {
    Memory {
        batches: Vec<RecordBatch>,
        bytes: usize,
        /// The manager's clock when it was last read or written (least recently used goes
        /// first).
        used: u64,
    },
    Disk {
        file: Arc<SpillFile>,
        batches: usize,
    },
    /// Not kept (`MEMORY_ONLY` without room): computed again when read.
    Dropped,
}

/// How to compute a relation's partitions again: a plan whose partition `i` is block `i`,
/// and the shuffles of the job that cached it, which that plan reads (Spark keeps a
/// cached RDD's shuffle files for as long as its lineage may need them).
pub struct Recipe {
    pub plan: Arc<dyn ExecutionPlan>,
    pub shuffles: Option<JobShuffles>,
}

/// What one `CACHE TABLE` computed: its blocks, and the recipe for those it drops.
pub struct Materialized {
    /// Which computation of its relation this is (each is new data for what reads it).
    pub generation: u64,
    /// The cached relations it was computed from: when one of them goes or changes, so
    /// does this.
    pub reads_caches: Vec<String>,
    level: StorageLevel,
    schema: SchemaRef,
    blocks: Mutex<Vec<Block>>,
    rows: u64,
    recipe: Option<Recipe>,
    store: Arc<ShuffleStore>,
}

impl Materialized {
    fn lock(&self) -> MutexGuard<'_, Vec<Block>> {
        self.blocks.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn partitions(&self) -> usize {
        self.lock().len()
    }

    pub fn rows(&self) -> u64 {
        self.rows
    }
}

impl Drop for Materialized {
    fn drop(&mut self) {
        let freed: usize = self
            .lock()
            .iter()
            .map(|block| match block {
                Block::Memory { bytes, .. } => *bytes,
                _ => 0,
            })
            .sum();
        self.store.release(freed);
    }
}

/// A relation cached under a name: what it computes (its analyzed plan, which later plans
/// are matched against), where its blocks are, and which tables it reads.
pub struct CachedRelation {
    pub name: String,
    pub level: StorageLevel,
    /// The analyzed logical plan: a later plan containing it reads the cache instead.
    pub plan: LogicalPlan,
    /// The tables the plan reads: writing to one of them invalidates the cache.
    pub sources: Vec<TableReference>,
    /// The columns as the cache holds them: the plan's, with names made unique (a join's
    /// two `id` columns become `id` and `id_2`).
    schema: SchemaRef,
    /// Its blocks once a job computed them; `None` for a lazy cache not used yet or one
    /// invalidated by a write (computed again on its next use).
    data: Mutex<Option<Arc<Materialized>>>,
    /// Held while a job computes the blocks, so that queries using a lazy cache at the
    /// same time compute it once.
    pub(crate) computing: tokio::sync::Mutex<()>,
    /// Counts invalidations: blocks computed across one are not kept.
    epoch: AtomicU64,
}

impl CachedRelation {
    pub fn new(
        name: String,
        level: StorageLevel,
        plan: LogicalPlan,
        sources: Vec<TableReference>,
    ) -> Self {
        let mut seen = std::collections::HashSet::new();
        let fields: Vec<Field> = plan
            .schema()
            .fields()
            .iter()
            .map(|field| {
                let mut name = field.name().clone();
                let mut n = 1;
                while !seen.insert(name.clone()) {
                    n += 1;
                    name = format!("{}_{n}", field.name());
                }
                field.as_ref().clone().with_name(name)
            })
            .collect();
        Self {
            name,
            level,
            plan,
            sources,
            schema: Arc::new(Schema::new(fields)),
            data: Mutex::new(None),
            computing: tokio::sync::Mutex::new(()),
            epoch: AtomicU64::new(0),
        }
    }

    pub fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    /// The computed blocks, if there are any.
    pub fn data(&self) -> Option<Arc<Materialized>> {
        self.data.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Forgets the computed blocks (a write to a source, REFRESH TABLE): the next use
    /// computes them again. Queries already reading the old blocks finish with them.
    pub fn invalidate(&self) {
        self.epoch.fetch_add(1, Ordering::SeqCst);
        self.data.lock().unwrap_or_else(|e| e.into_inner()).take();
    }

    /// The invalidation count now; pass it to [`CacheManager::materialize`].
    pub fn epoch(&self) -> u64 {
        self.epoch.load(Ordering::SeqCst)
    }
}

/// Rows in each batch of a block.
const BLOCK_BATCH_ROWS: usize = 8192;

/// A block's batches copied into arrays of their own (a task's output batches may be
/// slices of larger arrays, which would hold and count all of them), in batches of
/// [`BLOCK_BATCH_ROWS`], with the bytes they hold.
fn compact(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<(Vec<RecordBatch>, usize)> {
    if batches.iter().all(|b| b.num_rows() == 0) {
        return Ok((Vec::new(), 0));
    }
    let whole = concat_batches(schema, &batches)?;
    let bytes = whole.get_array_memory_size();
    let rows = whole.num_rows();
    let batches = (0..rows)
        .step_by(BLOCK_BATCH_ROWS)
        .map(|offset| whole.slice(offset, BLOCK_BATCH_ROWS.min(rows - offset)))
        .collect();
    Ok((batches, bytes))
}

/// `batches` with the cache's column names (the same columns and types).
pub(crate) fn conform(schema: &SchemaRef, batches: Vec<RecordBatch>) -> Result<Vec<RecordBatch>> {
    batches
        .into_iter()
        .map(|batch| {
            RecordBatch::try_new(schema.clone(), batch.columns().to_vec())
                .map_err(DataFusionError::from)
        })
        .collect()
}

/// Where a relation's blocks are now, for `system.cache` (Spark UI's Storage tab).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheStatus {
    pub name: String,
    pub level: StorageLevel,
    pub partitions_cached: usize,
    pub partitions: usize,
    pub rows: u64,
    pub memory_bytes: u64,
    pub disk_bytes: u64,
}

/// What reading a block found.
pub(crate) enum BlockRead {
    Memory(Vec<RecordBatch>),
    Disk(Arc<SpillFile>, usize),
    Missing,
}

/// The session's cached relations, and the blocks they keep in the block store.
pub struct CacheManager {
    relations: Mutex<Vec<Arc<CachedRelation>>>,
    store: Arc<ShuffleStore>,
    /// Where blocks on disk go: a directory under `spark.local.dir`, made when first needed.
    disk: Mutex<Option<tempfile::TempDir>>,
    /// `spark.local.dir`.
    local_dir: Mutex<PathBuf>,
    clock: AtomicU64,
    next_file: AtomicUsize,
    me: Weak<CacheManager>,
}

impl fmt::Debug for CacheManager {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("CacheManager")
            .field("relations", &self.names())
            .finish()
    }
}

impl CacheManager {
    pub fn new(store: Arc<ShuffleStore>) -> Arc<Self> {
        Arc::new_cyclic(|me| Self {
            relations: Mutex::new(Vec::new()),
            store,
            disk: Mutex::new(None),
            local_dir: Mutex::new(std::env::temp_dir()),
            clock: AtomicU64::new(0),
            next_file: AtomicUsize::new(0),
            me: me.clone(),
        })
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Arc<CachedRelation>>> {
        self.relations.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub fn names(&self) -> Vec<String> {
        self.lock().iter().map(|r| r.name.clone()).collect()
    }

    pub fn relations(&self) -> Vec<Arc<CachedRelation>> {
        self.lock().clone()
    }

    /// The relation cached under `name` (as [`TableReference`] prints it: unquoted
    /// identifiers in lower case).
    pub fn get(&self, name: &str) -> Option<Arc<CachedRelation>> {
        self.lock().iter().find(|r| r.name == name).cloned()
    }

    pub fn add(&self, relation: Arc<CachedRelation>) {
        self.lock().push(relation);
    }

    /// Removes the relation cached under `name`; its blocks go when the last query reading
    /// them ends. Caches computed from it are computed again on their next use.
    pub fn remove(&self, name: &str) -> Option<Arc<CachedRelation>> {
        let removed = {
            let mut relations = self.lock();
            let index = relations.iter().position(|r| r.name == name)?;
            relations.remove(index)
        };
        self.invalidate_dependents(name);
        Some(removed)
    }

    /// Forgets the blocks of `relation` (see [`CachedRelation::invalidate`]), and of the
    /// caches computed from it.
    pub fn invalidate(&self, relation: &CachedRelation) {
        relation.invalidate();
        self.invalidate_dependents(&relation.name);
    }

    fn invalidate_dependents(&self, name: &str) {
        for relation in self.relations() {
            let reads = relation
                .data()
                .is_some_and(|data| data.reads_caches.iter().any(|n| n == name));
            if reads {
                self.invalidate(&relation);
            }
        }
    }

    pub fn clear(&self) {
        self.lock().clear();
    }

    /// Keeps the partitions a job computed for `relation` as its blocks (each where its
    /// level allows), with the recipe for the blocks it drops — unless the relation was
    /// invalidated since `epoch` (a write landed while the job ran): then they are not
    /// kept, and the next use computes them again.
    pub fn materialize(
        &self,
        relation: &CachedRelation,
        epoch: u64,
        partitions: Vec<Vec<RecordBatch>>,
        recipe: Option<Recipe>,
        reads_caches: Vec<String>,
    ) -> Result<Arc<Materialized>> {
        let rows = partitions
            .iter()
            .flatten()
            .map(|b| b.num_rows() as u64)
            .sum();
        let partitions = partitions
            .into_iter()
            .map(|batches| conform(&relation.schema, batches))
            .collect::<Result<Vec<_>>>()?;
        let data = Arc::new(Materialized {
            generation: self.clock.fetch_add(1, Ordering::Relaxed) + 1,
            reads_caches,
            level: relation.level,
            schema: relation.schema(),
            blocks: Mutex::new(partitions.iter().map(|_| Block::Dropped).collect()),
            rows,
            recipe,
            store: self.store.clone(),
        });
        for (index, batches) in partitions.into_iter().enumerate() {
            self.put(&data, index, batches)?;
        }
        let mut current = relation.data.lock().unwrap_or_else(|e| e.into_inner());
        if relation.epoch() == epoch {
            *current = Some(data.clone());
        }
        Ok(data)
    }

    /// Stores block `index` of `data` where its level allows.
    pub(crate) fn put(
        &self,
        data: &Arc<Materialized>,
        index: usize,
        batches: Vec<RecordBatch>,
    ) -> Result<()> {
        let (batches, bytes) = compact(&data.schema, batches)?;
        let block = if data.level.uses_memory() && self.reserve(bytes, data) {
            Block::Memory {
                batches,
                bytes,
                used: self.tick(),
            }
        } else if data.level.uses_disk() {
            self.write_to_disk(&batches)?
        } else {
            Block::Dropped
        };
        let previous = std::mem::replace(&mut data.lock()[index], block);
        if let Block::Memory { bytes, .. } = previous {
            self.store.release(bytes);
        }
        Ok(())
    }

    /// Block `index` of `data`, as it is now.
    pub(crate) fn read(&self, data: &Materialized, index: usize) -> BlockRead {
        let mut blocks = data.lock();
        match blocks.get_mut(index) {
            Some(Block::Memory { batches, used, .. }) => {
                *used = self.tick();
                BlockRead::Memory(batches.clone())
            }
            Some(Block::Disk { file, batches }) => BlockRead::Disk(file.clone(), *batches),
            Some(Block::Dropped) | None => BlockRead::Missing,
        }
    }

    /// Where each relation's blocks are.
    pub fn status(&self) -> Vec<CacheStatus> {
        self.relations()
            .iter()
            .map(|relation| {
                let data = relation.data();
                let mut status = CacheStatus {
                    name: relation.name.clone(),
                    level: relation.level,
                    partitions_cached: 0,
                    partitions: 0,
                    rows: data.as_ref().map_or(0, |d| d.rows),
                    memory_bytes: 0,
                    disk_bytes: 0,
                };
                if let Some(data) = data {
                    let blocks = data.lock();
                    status.partitions = blocks.len();
                    for block in blocks.iter() {
                        match block {
                            Block::Memory { bytes, .. } => {
                                status.partitions_cached += 1;
                                status.memory_bytes += *bytes as u64;
                            }
                            Block::Disk { file, .. } => {
                                status.partitions_cached += 1;
                                status.disk_bytes += file.bytes();
                            }
                            Block::Dropped => {}
                        }
                    }
                }
                status
            })
            .collect()
    }

    fn tick(&self) -> u64 {
        self.clock.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Reserves `bytes` of storage memory for a block of `owner`, evicting the least
    /// recently used blocks of other relations while there is not enough (Spark never
    /// evicts a relation's own blocks to make room for it).
    fn reserve(&self, bytes: usize, owner: &Arc<Materialized>) -> bool {
        loop {
            if self.store.reserve(bytes) {
                return true;
            }
            if !self.evict_one(owner) {
                return false;
            }
        }
    }

    /// Moves the least recently used block in memory of a relation other than `owner` out
    /// of memory: to disk if its level allows, else drops it. False if there is none.
    fn evict_one(&self, owner: &Arc<Materialized>) -> bool {
        let others: Vec<Arc<Materialized>> = self
            .relations()
            .iter()
            .filter_map(|r| r.data())
            .filter(|d| !Arc::ptr_eq(d, owner))
            .collect();
        let oldest = others
            .iter()
            .flat_map(|data| {
                data.lock()
                    .iter()
                    .enumerate()
                    .filter_map(|(index, block)| match block {
                        // An empty block takes no memory: evicting it frees nothing.
                        Block::Memory { used, bytes, .. } if *bytes > 0 => Some((*used, index)),
                        _ => None,
                    })
                    .collect::<Vec<_>>()
                    .into_iter()
                    .map(move |(used, index)| (used, index, data))
            })
            .min_by_key(|(used, _, _)| *used);
        let Some((_, index, data)) = oldest else {
            return false;
        };
        let mut blocks = data.lock();
        let Block::Memory { batches, bytes, .. } =
            std::mem::replace(&mut blocks[index], Block::Dropped)
        else {
            return true; // read or replaced meanwhile: look again
        };
        if data.level.uses_disk() {
            match self.write_to_disk(&batches) {
                Ok(block) => blocks[index] = block,
                // Without room on disk it is dropped; the lineage computes it again.
                Err(_) if data.recipe.is_some() => {}
                Err(_) => {
                    blocks[index] = Block::Memory {
                        batches,
                        bytes,
                        used: self.tick(),
                    };
                    return false;
                }
            }
        }
        self.store.release(bytes);
        true
    }

    fn write_to_disk(&self, batches: &[RecordBatch]) -> Result<Block> {
        let Some(first) = batches.first() else {
            return Ok(Block::Memory {
                batches: Vec::new(),
                bytes: 0,
                used: self.tick(),
            });
        };
        let path = self.disk_path()?;
        let (file, _) = SpillFile::write(path, &first.schema(), &[batches.to_vec()])?;
        Ok(Block::Disk {
            file,
            batches: batches.len(),
        })
    }

    fn disk_path(&self) -> Result<PathBuf> {
        let mut disk = self.disk.lock().unwrap_or_else(|e| e.into_inner());
        if disk.is_none() {
            let root = self
                .local_dir
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .clone();
            std::fs::create_dir_all(&root).map_err(|e| {
                DataFusionError::Execution(format!(
                    "cannot create the cache directory in {} (spark.local.dir): {e}",
                    root.display()
                ))
            })?;
            *disk = Some(
                tempfile::Builder::new()
                    .prefix("stagesql-cache-")
                    .tempdir_in(&root)
                    .map_err(|e| {
                        DataFusionError::Execution(format!(
                            "cannot create the cache directory in {} (spark.local.dir): {e}",
                            root.display()
                        ))
                    })?,
            );
        }
        let n = self.next_file.fetch_add(1, Ordering::Relaxed);
        Ok(disk
            .as_ref()
            .expect("made above")
            .path()
            .join(format!("block-{n}.arrow")))
    }

    /// Where blocks on disk go from now on (`spark.local.dir`).
    pub fn set_local_dir(&self, dir: PathBuf) {
        *self.local_dir.lock().unwrap_or_else(|e| e.into_inner()) = dir;
    }

    pub(crate) fn handle(&self) -> Arc<CacheManager> {
        self.me.upgrade().expect("the manager is alive while used")
    }
}

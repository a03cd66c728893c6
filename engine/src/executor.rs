//! The session's executors: `spark.executor.instances` executors, each with
//! `spark.executor.cores` slots and `spark.executor.memory` of its own, shared by the tasks
//! running on its cores — so cores and memory interact as in Spark: more cores on the same
//! memory leave less to each task. Every job of the session runs its tasks here; when tasks
//! of several jobs wait for a slot, `spark.scheduler.mode` decides who goes first:
//!
//! - `FIFO`: the earliest job's tasks first (then the earliest request);
//! - `FAIR`: the pool (`spark.scheduler.pool`) with the fewest running tasks first, so a short
//!   job gets slots while a long one runs; within a pool, FIFO.
//!
//! A task asks for one core; a task retried after running out of memory asks for all the
//! cores of one executor, so it has that executor's memory to itself. A request that cannot
//! be met yet waits in line and nothing behind it passes it, so it cannot starve.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use datafusion::error::{DataFusionError, Result};
use datafusion::execution::memory_pool::{FairSpillPool, MemoryPool};
use tokio::sync::oneshot;

use crate::ids::JobId;

/// Keeps the process's resident memory near what the engine accounts for: glibc gives each
/// thread that allocates at the same time as another an arena of its own (up to 8 per core)
/// and keeps freed memory in them, so peak RSS grows well past the memory in use (TPC-H
/// SF 10 at `spark.executor.memory=1g`: Q18 2.1 GiB with glibc's default, 1.2 GiB with two
/// arenas; speed unchanged, see docs/benchmarks.md). Call once at startup, before other
/// threads run. A `MALLOC_ARENA_MAX` in the environment wins; other platforms and
/// allocators are left alone.
pub fn limit_allocator_arenas() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    if std::env::var_os("MALLOC_ARENA_MAX").is_none() {
        // SAFETY: mallopt only changes the allocator's tuning; called before other threads
        // allocate, it races with nothing.
        unsafe {
            libc::mallopt(libc::M_ARENA_MAX, 2);
        }
    }
}

/// How the binary's allocator gives back the memory it keeps after it was freed; glibc's
/// `malloc_trim` when none was set.
static RELEASE_FREED_MEMORY: std::sync::OnceLock<fn()> = std::sync::OnceLock::new();

/// For a binary with a global allocator of its own: how that allocator returns the memory it
/// keeps after it was freed (mimalloc's `mi_collect(true)`, say). The executors call it, as
/// they call glibc's `malloc_trim` otherwise, when the process's resident memory is above
/// their memory. Set once, at startup; a second call is ignored.
pub fn set_freed_memory_release(release: fn()) {
    let _ = RELEASE_FREED_MEMORY.set(release);
}

/// Gives the memory the allocator keeps after it was freed back to the system when the
/// process's resident memory is above `limit`. Freed memory between live allocations stays
/// resident in glibc's heaps, and after many tasks it adds up (TPC-H SF 10 Q21 at
/// `spark.executor.memory=1g`: 1.3 to 1.6 GiB peak RSS from run to run without this). Only
/// a process above its executors' memory pays for the trim, so runs with memory to spare
/// never do (docs/benchmarks.md).
fn release_freed_memory_above(limit: usize) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        use std::sync::atomic::{AtomicBool, Ordering};
        static TRIMMING: AtomicBool = AtomicBool::new(false);
        if resident_bytes().is_none_or(|rss| rss <= limit) || TRIMMING.swap(true, Ordering::Acquire)
        {
            return;
        }
        match RELEASE_FREED_MEMORY.get() {
            Some(release) => release(),
            // SAFETY: malloc_trim only returns free pages of the allocator's heaps to the system.
            None => unsafe {
                libc::malloc_trim(0);
            },
        }
        TRIMMING.store(false, Ordering::Release);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = limit;
}

/// While `executors` are in use, checks the process's resident memory every 20 ms (off the
/// tasks' threads; memory freed and kept by the allocator also grows within a long task)
/// and releases what the allocator keeps once it is above the executors' memory.
fn watch_resident_memory(executors: std::sync::Weak<Executors>) {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        let watcher = std::thread::Builder::new()
            .name("stagesql-memory".into())
            .spawn(move || {
                while let Some(executors) = executors.upgrade() {
                    let limit = executors.shape.memory * executors.shape.instances;
                    drop(executors);
                    release_freed_memory_above(limit);
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            });
        // Without the watcher (no thread to be had), memory is only not given back early.
        drop(watcher);
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    let _ = executors;
}

/// The process's resident memory (`/proc/self/statm`), where the system says.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn resident_bytes() -> Option<usize> {
    let statm = std::fs::read_to_string("/proc/self/statm").ok()?;
    let pages: usize = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf reads a constant of the system.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * usize::try_from(page).ok()?)
}

/// How waiting tasks of several jobs are ordered (`spark.scheduler.mode`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SchedulingMode {
    Fifo,
    Fair,
}

/// The shape of the executors: what `spark.executor.*` and `spark.memory.*` say.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExecutorShape {
    pub instances: usize,
    pub cores: usize,
    /// Memory of each executor for its running tasks' operators (execution memory).
    pub task_memory: usize,
    /// Memory of each executor for shuffle output kept in the block store (storage memory).
    pub storage_memory: usize,
    /// `spark.executor.memory`: everything an executor's tasks may keep resident.
    pub memory: usize,
}

/// How one executor's memory divides, as Spark's unified memory manager divides a heap:
/// memory reserved for the system, then `spark.memory.fraction` of the rest for data —
/// `spark.memory.storageFraction` of that for storage, the remainder for execution — and
/// what is left (Spark's "user memory") for everything the engine does not account for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemoryLayout {
    pub reserved: usize,
    pub execution: usize,
    pub storage: usize,
}

impl MemoryLayout {
    /// Spark's `RESERVED_SYSTEM_MEMORY_BYTES`.
    pub const RESERVED: usize = 300 << 20;

    /// `memory` is `spark.executor.memory`. Spark refuses executors below 1.5 × 300 MiB;
    /// here an executor below 900 MiB reserves a third of its memory instead, so that
    /// small executors can be tried (to watch spills).
    pub fn new(memory: usize, fraction: f64, storage_fraction: f64) -> Self {
        let reserved = Self::RESERVED.min(memory / 3);
        let data = ((memory - reserved) as f64 * fraction.clamp(0.0, 1.0)) as usize;
        let storage = (data as f64 * storage_fraction.clamp(0.0, 1.0)) as usize;
        Self {
            reserved,
            execution: data - storage,
            storage,
        }
    }
}

impl ExecutorShape {
    pub fn slots(&self) -> usize {
        self.instances * self.cores
    }
}

/// One executor: its cores and the memory its running tasks share.
#[derive(Debug)]
pub struct Executor {
    pub id: usize,
    pub cores: usize,
    pub memory: Arc<dyn MemoryPool>,
}

/// The session's executors and the line of tasks waiting for their slots.
#[derive(Debug)]
pub struct Executors {
    shape: ExecutorShape,
    executors: Vec<Executor>,
    state: Mutex<SlotState>,
}

#[derive(Debug)]
struct SlotState {
    mode: SchedulingMode,
    /// Free cores per executor.
    free: Vec<usize>,
    /// Per executor, which of its cores (slots) a task holds.
    busy: Vec<Vec<bool>>,
    /// Running tasks per pool, for FAIR.
    running_in_pool: HashMap<String, usize>,
    /// Running tasks per job.
    running_in_job: HashMap<JobId, usize>,
    waiting: Vec<Waiter>,
    next_request: u64,
    /// Most tasks running at once so far, over all jobs.
    peak_running: usize,
    /// The jobs of the latest grants, oldest first (at most [`GRANT_LOG`]).
    grants: std::collections::VecDeque<JobId>,
}

/// How many grants [`Executors::recent_grants`] remembers.
const GRANT_LOG: usize = 1024;

#[derive(Debug)]
struct Waiter {
    request: u64,
    job: JobId,
    pool: String,
    cores: usize,
    /// The grant itself travels to the task: if the task is gone by the time it arrives
    /// (cancelled after the grant was sent), dropping it gives the cores back.
    granted: oneshot::Sender<SlotGrant>,
}

/// Cores of one executor held by one task; given back when dropped.
#[derive(Debug)]
pub struct SlotGrant {
    executors: Arc<Executors>,
    executor: usize,
    cores: usize,
    /// The executor's cores (slots) the task holds, lowest first.
    held: Vec<usize>,
    job: JobId,
    pool: String,
    /// Whether dropping the grant gives its cores back (not when it was never handed over).
    armed: bool,
}

impl SlotGrant {
    /// The executor the task runs on.
    pub fn executor(&self) -> &Executor {
        &self.executors.executors[self.executor]
    }

    /// Which of its executor's slots the task runs in (from 0; the first of its cores when
    /// it holds several).
    pub fn slot(&self) -> usize {
        self.held.first().copied().unwrap_or(0)
    }
}

impl Drop for SlotGrant {
    fn drop(&mut self) {
        if !self.armed {
            return;
        }
        let mut state = self.executors.lock();
        state.free[self.executor] += self.cores;
        for &core in &self.held {
            state.busy[self.executor][core] = false;
        }
        state.finished(self.job, &self.pool);
        self.executors.dispatch(&mut state);
    }
}

impl Executors {
    pub fn new(shape: ExecutorShape, mode: SchedulingMode) -> Arc<Self> {
        let shape = ExecutorShape {
            instances: shape.instances.max(1),
            cores: shape.cores.max(1),
            ..shape
        };
        let executors = (0..shape.instances)
            .map(|id| Executor {
                id,
                cores: shape.cores,
                memory: Arc::new(FairSpillPool::new(shape.task_memory)),
            })
            .collect();
        let executors = Arc::new(Self {
            shape,
            executors,
            state: Mutex::new(SlotState {
                mode,
                free: vec![shape.cores; shape.instances],
                busy: vec![vec![false; shape.cores]; shape.instances],
                running_in_pool: HashMap::new(),
                running_in_job: HashMap::new(),
                waiting: Vec::new(),
                next_request: 0,
                peak_running: 0,
                grants: std::collections::VecDeque::new(),
            }),
        });
        watch_resident_memory(Arc::downgrade(&executors));
        executors
    }

    pub fn shape(&self) -> ExecutorShape {
        self.shape
    }

    pub fn slots(&self) -> usize {
        self.shape.slots()
    }

    /// Changes the order of waiting tasks from now on.
    pub fn set_mode(self: &Arc<Self>, mode: SchedulingMode) {
        let mut state = self.lock();
        state.mode = mode;
        self.dispatch(&mut state);
    }

    /// Most tasks that ran at once so far.
    pub fn peak_running(&self) -> usize {
        self.lock().peak_running
    }

    /// The jobs the latest slots went to, in the order they were granted: the scheduling
    /// mode at work (the last 1024).
    pub fn recent_grants(&self) -> Vec<JobId> {
        self.lock().grants.iter().copied().collect()
    }

    /// The job of every task waiting for a slot, in line order.
    pub fn waiting_tasks(&self) -> Vec<JobId> {
        self.lock().waiting.iter().map(|w| w.job).collect()
    }

    /// The jobs with tasks waiting for a slot, each once, in job order.
    pub fn waiting_jobs(&self) -> Vec<JobId> {
        let mut jobs = self.waiting_tasks();
        jobs.sort_unstable();
        jobs.dedup();
        jobs
    }

    /// Waits for `cores` cores of one executor (at most an executor's cores) for a task of
    /// `job` in scheduler pool `pool`. Dropping the future gives up its place in line.
    pub async fn acquire(
        self: &Arc<Self>,
        job: JobId,
        pool: &str,
        cores: usize,
    ) -> Result<SlotGrant> {
        let cores = cores.clamp(1, self.shape.cores);
        let (granted, grant) = oneshot::channel();
        {
            let mut state = self.lock();
            let request = state.next_request;
            state.next_request += 1;
            state.waiting.push(Waiter {
                request,
                job,
                pool: pool.to_string(),
                cores,
                granted,
            });
            self.dispatch(&mut state);
        }
        grant.await.map_err(|_| {
            DataFusionError::Internal("the executors stopped before granting a slot".into())
        })
    }

    /// Grants slots to waiting tasks, best first, while the best one fits.
    fn dispatch(self: &Arc<Self>, state: &mut SlotState) {
        loop {
            let Some(best) = state.best_waiter() else {
                return;
            };
            let cores = state.waiting[best].cores;
            // The executor with the most free cores: tasks spread over executors.
            let Some(executor) = (0..state.free.len())
                .filter(|&e| state.free[e] >= cores)
                .max_by_key(|&e| (state.free[e], std::cmp::Reverse(e)))
            else {
                return;
            };
            // The executor's lowest free slots: tasks fill lanes from the first.
            let held: Vec<usize> = (0..state.busy[executor].len())
                .filter(|&core| !state.busy[executor][core])
                .take(cores)
                .collect();
            let waiter = state.waiting.swap_remove(best);
            let grant = SlotGrant {
                executors: self.clone(),
                executor,
                cores,
                held: held.clone(),
                job: waiter.job,
                pool: waiter.pool.clone(),
                armed: true,
            };
            if let Err(mut grant) = waiter.granted.send(grant) {
                // The task was cancelled while it waited: the slot stays free.
                grant.armed = false;
                continue;
            }
            state.free[executor] -= cores;
            for &core in &held {
                state.busy[executor][core] = true;
            }
            if state.grants.len() == GRANT_LOG {
                state.grants.pop_front();
            }
            state.grants.push_back(waiter.job);
            *state.running_in_pool.entry(waiter.pool).or_default() += 1;
            *state.running_in_job.entry(waiter.job).or_default() += 1;
            let running = state.running_in_job.values().sum();
            state.peak_running = state.peak_running.max(running);
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, SlotState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

impl SlotState {
    /// The waiting task to serve next, if any.
    fn best_waiter(&self) -> Option<usize> {
        let key = |w: &Waiter| match self.mode {
            SchedulingMode::Fifo => (0, w.job, w.request),
            SchedulingMode::Fair => (
                self.running_in_pool.get(&w.pool).copied().unwrap_or(0),
                w.job,
                w.request,
            ),
        };
        (0..self.waiting.len()).min_by_key(|&i| key(&self.waiting[i]))
    }

    fn finished(&mut self, job: JobId, pool: &str) {
        fn one_less<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, usize>, key: &K) {
            if let Some(count) = counts.get_mut(key) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    counts.remove(key);
                }
            }
        }
        one_less(&mut self.running_in_pool, &pool.to_string());
        one_less(&mut self.running_in_job, &job);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_divides_as_in_spark() {
        const MIB: usize = 1 << 20;
        // 1g: (1024 - 300) MiB x 0.6 = 434.4 MiB for data, half of it storage.
        let layout = MemoryLayout::new(1024 * MIB, 0.6, 0.5);
        assert_eq!(layout.reserved, 300 * MIB);
        assert_eq!(layout.execution + layout.storage, 455_501_414);
        assert_eq!(layout.storage, 227_750_707);
        // Small executors reserve a third instead of refusing to start.
        let small = MemoryLayout::new(30 * MIB, 0.6, 0.5);
        assert_eq!(small.reserved, 10 * MIB);
        assert_eq!(small.execution, 6 * MIB);
        assert_eq!(small.storage, 6 * MIB);
        // All to execution.
        assert_eq!(MemoryLayout::new(30 * MIB, 1.0, 0.0).execution, 20 * MIB);
    }

    fn executors(instances: usize, cores: usize, mode: SchedulingMode) -> Arc<Executors> {
        Executors::new(
            ExecutorShape {
                instances,
                cores,
                task_memory: 1 << 20,
                storage_memory: 1 << 20,
                memory: 4 << 20,
            },
            mode,
        )
    }

    #[tokio::test]
    async fn tasks_spread_over_executors_and_never_exceed_the_cores() {
        let executors = executors(2, 2, SchedulingMode::Fifo);
        let a = executors.acquire(1, "default", 1).await.unwrap();
        let b = executors.acquire(1, "default", 1).await.unwrap();
        assert_ne!(a.executor().id, b.executor().id);
        let c = executors.acquire(1, "default", 1).await.unwrap();
        let d = executors.acquire(1, "default", 1).await.unwrap();
        let mut fifth = Box::pin(executors.acquire(1, "default", 1));
        assert!(futures::poll!(fifth.as_mut()).is_pending());
        drop(c);
        let e = fifth.await.unwrap();
        assert_eq!(executors.peak_running(), 4);
        // A whole executor for a task that ran out of memory: once one is free.
        let mut whole = Box::pin(executors.acquire(1, "default", 2));
        assert!(futures::poll!(whole.as_mut()).is_pending());
        let on_zero = [&a, &b, &d, &e]
            .iter()
            .filter(|g| g.executor().id == 0)
            .count();
        assert_eq!(on_zero, 2, "two tasks on each executor");
        let (zero, one): (Vec<_>, Vec<_>) =
            [a, b, d, e].into_iter().partition(|g| g.executor().id == 0);
        drop(zero);
        let whole = whole.await.unwrap();
        assert_eq!((whole.executor().id, whole.cores), (0, 2));
        drop(one);
    }

    #[tokio::test]
    async fn fifo_serves_the_earlier_job_and_fair_the_emptier_pool() {
        for (mode, first) in [(SchedulingMode::Fifo, 1), (SchedulingMode::Fair, 2)] {
            let executors = executors(1, 2, mode);
            // Job 1 (pool a) holds both slots and waits for more; job 2 (pool b) arrives.
            let held = [
                executors.acquire(1, "a", 1).await.unwrap(),
                executors.acquire(1, "a", 1).await.unwrap(),
            ];
            let mut long = Box::pin(executors.acquire(1, "a", 1));
            let mut short = Box::pin(executors.acquire(2, "b", 1));
            assert!(futures::poll!(long.as_mut()).is_pending());
            assert!(futures::poll!(short.as_mut()).is_pending());
            let [one, _two] = held;
            drop(one);
            // Keep what a poll returns: a grant dropped at once would go to the other.
            let long = futures::poll!(long.as_mut());
            let short = futures::poll!(short.as_mut());
            let served = match first {
                1 => long.is_ready() && short.is_pending(),
                _ => short.is_ready() && long.is_pending(),
            };
            assert!(served, "{mode:?}");
        }
    }

    #[tokio::test]
    async fn a_grant_that_reaches_a_cancelled_task_is_given_back() {
        let executors = executors(1, 1, SchedulingMode::Fifo);
        let held = executors.acquire(1, "default", 1).await.unwrap();
        let mut waiting = Box::pin(executors.acquire(1, "default", 1));
        assert!(futures::poll!(waiting.as_mut()).is_pending());
        // The slot is granted to the waiting task, which is cancelled before it looks.
        drop(held);
        assert_eq!(executors.lock().free, [0]);
        drop(waiting);
        assert_eq!(executors.lock().free, [1]);
        let again = executors.acquire(2, "default", 1).await.unwrap();
        assert_eq!(again.executor().id, 0);
    }

    #[tokio::test]
    async fn a_cancelled_request_gives_its_place_to_the_next() {
        let executors = executors(1, 1, SchedulingMode::Fifo);
        let held = executors.acquire(1, "default", 1).await.unwrap();
        let mut cancelled = Box::pin(executors.acquire(1, "default", 1));
        let mut next = Box::pin(executors.acquire(2, "default", 1));
        assert!(futures::poll!(cancelled.as_mut()).is_pending());
        assert!(futures::poll!(next.as_mut()).is_pending());
        drop(cancelled);
        drop(held);
        let next = next.await.unwrap();
        assert_eq!((next.executor().id, next.job), (0, 2));
        assert_eq!(executors.lock().free, [0]);
        drop(next);
        assert_eq!(executors.lock().free, [1]);
    }
}

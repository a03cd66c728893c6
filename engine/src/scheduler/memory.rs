//! Per-task memory accounting over the executor's shared pool.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use datafusion::error::Result;
use datafusion::execution::memory_pool::{
    MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation,
};

/// Passes every reservation of one task to the executor's pool (so tasks compete for
/// `spark.executor.memory` and spill when it is used up) while recording the task's peak.
#[derive(Debug)]
pub struct TaskMemoryPool {
    executor: Arc<dyn MemoryPool>,
    used: AtomicUsize,
    peak: AtomicUsize,
}

impl TaskMemoryPool {
    pub fn new(executor: Arc<dyn MemoryPool>) -> Self {
        Self {
            executor,
            used: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }
    }

    /// Most bytes the task held at once.
    pub fn peak(&self) -> usize {
        self.peak.load(Ordering::Relaxed)
    }

    fn added(&self, bytes: usize) {
        let used = self.used.fetch_add(bytes, Ordering::Relaxed) + bytes;
        self.peak.fetch_max(used, Ordering::Relaxed);
    }
}

impl MemoryPool for TaskMemoryPool {
    fn name(&self) -> &str {
        "TaskMemoryPool"
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.executor.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.executor.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.executor.grow(reservation, additional);
        self.added(additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.executor.shrink(reservation, shrink);
        let _ = self
            .used
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |used| {
                Some(used.saturating_sub(shrink))
            });
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> Result<()> {
        self.executor.try_grow(reservation, additional)?;
        self.added(additional);
        Ok(())
    }

    fn reserved(&self) -> usize {
        self.executor.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.executor.memory_limit()
    }
}

impl std::fmt::Display for TaskMemoryPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "task memory (peak {} bytes) over {}",
            self.peak(),
            self.executor.name()
        )
    }
}

//! The shuffle store: map outputs of a job, addressed by (shuffle, map task, range of reduce
//! partitions), in memory under a budget and spilled to Arrow IPC files beyond it. Each map
//! output is laid out by reduce partition (see [`MapOutput`]), so a range of partitions is
//! read as one slice per run.
//!
//! ```text
//!   map task m of stage S ──ShuffleWriteExec──▶ ShuffleStore[(shuffle of S, m, r)] for r in 0..R
//!                                                   │  rows and bytes recorded per partition
//!   reduce task r of stage T ◀──ShuffleReadExec────┘  (MapOutputStatistics for AQE)
//! ```
//!
//! A store belongs to one job: when the job ends, fails or is cancelled the store is dropped
//! and with it every spill file (each lives in the job's own temporary directory).

mod output;
mod spill;
mod store;

pub use output::{MapOutput, MapOutputSlice};
pub use spill::SpillFile;
pub use store::{MapOutputStatistics, ShuffleId, ShuffleStore};

use datafusion::error::DataFusionError;

/// A reduce task could not read a map task's output: it was lost (its spill file is gone,
/// say). Spark's `FetchFailedException`: not the reading task's fault, so it does not count
/// as a task failure; the scheduler runs the lost map task again (a new attempt of its
/// stage) and then the reading stage.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("lost output of stage {shuffle} map task {map}: {reason}")]
pub struct FetchFailed {
    pub shuffle: ShuffleId,
    pub map: usize,
    pub reason: String,
}

impl FetchFailed {
    pub fn into_error(self) -> DataFusionError {
        DataFusionError::External(Box::new(self))
    }

    /// The fetch failure somewhere in `error`'s chain of causes, if there is one.
    pub fn find(error: &DataFusionError) -> Option<&FetchFailed> {
        let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
        while let Some(error) = cause {
            if let Some(failed) = error.downcast_ref::<FetchFailed>() {
                return Some(failed);
            }
            cause = error.source();
        }
        None
    }
}

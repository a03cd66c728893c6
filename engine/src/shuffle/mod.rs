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

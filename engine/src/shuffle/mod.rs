//! The shuffle store: map outputs of a job, addressed by (shuffle, map task, reduce
//! partition), in memory under a budget and spilled to Arrow IPC files beyond it.
//!
//! ```text
//!   map task m of stage S ──ShuffleWriteExec──▶ ShuffleStore[(shuffle of S, m, r)] for r in 0..R
//!                                                   │  bytes and rows recorded per block
//!   reduce task r of stage T ◀──ShuffleReadExec────┘  (MapOutputStatistics for AQE)
//! ```
//!
//! A store belongs to one job: when the job ends, fails or is cancelled the store is dropped
//! and with it every spill file (each lives in the job's own temporary directory).

mod spill;
mod store;

pub use spill::SpillFile;
pub use store::{Block, MapOutput, MapOutputStatistics, ShuffleId, ShuffleStore, data_bytes};

//! stagesql: a SQL engine on Apache DataFusion that runs queries the way Apache Spark does and
//! explains what it did.
//!
//! The entry point is [`Session`]; everything a front end (the `stagesql` CLI, a test, a
//! benchmark) needs goes through it.

pub mod adaptive;
pub mod cache;
pub mod catalog;
#[cfg(feature = "cluster")]
pub mod cluster;
pub mod config;
pub mod error;
pub mod eventlog;
pub mod events;
pub mod executor;
pub mod explain;
pub mod ids;
pub mod lineage;
pub mod planner;
pub mod report;
pub mod scheduler;
pub mod session;
pub mod shuffle;
pub mod slt;
pub mod sql;
pub mod stages;
pub mod tpch;
pub mod warehouse;

pub use datafusion;
pub use error::{Error, Result};
pub use session::{Completion, Session, SessionOptions, StatementOutput, StatementResult};

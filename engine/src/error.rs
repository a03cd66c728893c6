//! The one error type of the engine.
//!
//! Every fallible function in `stagesql` returns [`Result`]. DataFusion's errors are wrapped
//! rather than flattened so their structure (and any [`Diagnostic`] with a source span) stays
//! available to whoever renders them; our own errors say what went wrong, with the offending
//! value, and where.
//!
//! [`Diagnostic`]: datafusion::common::Diagnostic

use std::path::PathBuf;

use datafusion::error::DataFusionError;

use crate::sql::Position;

/// `Result` with the engine's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Everything that can go wrong in the engine.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// SQL text that does not parse. `position` is absolute within the text handed to the
    /// session (line and column both start at 1), so a caller that knows the source file can
    /// point at the offending character.
    #[error("{message}")]
    Syntax {
        message: String,
        position: Option<Position>,
    },

    /// A configuration key that does not exist or a value it does not accept.
    #[error("{0}")]
    Config(String),

    /// Errors from planning or executing a statement, with where the statement starts.
    #[error("{0}")]
    DataFusion(#[from] DataFusionError),

    /// A file system operation failed; `path` names the file or directory.
    #[error("{action} '{}': {source}", path.display())]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// Generating or loading the built-in TPC-H data failed.
    #[error("TPC-H data: {0}")]
    Tpch(String),

    /// A table, database or partition of the warehouse catalog that does not exist, exists
    /// already, or does not take the statement (Spark's error class leads the message).
    #[error("{0}")]
    Table(String),

    /// Cluster mode (`--master df://…`): the scheduler cannot be reached, or a statement or
    /// table that cannot run on the cluster.
    #[error("cluster mode: {0}")]
    Cluster(String),

    /// A sqllogictest file could not be run or rewritten.
    #[error("sqllogictest: {0}")]
    Slt(String),

    /// An error whose whole text was rendered already, for a reader that matches it exactly
    /// (a sqllogictest record that expects DataFusion's own wording, say).
    #[error("{0}")]
    Rendered(String),

    /// A bug: an invariant of the engine did not hold (a caught panic, for example).
    #[error("internal error: {0} (this is a bug in stagesql; please report it with the statement)")]
    Internal(String),
}

impl Error {
    /// A panic caught in the engine (a bug, in stagesql or DataFusion), as an internal error
    /// with the panic's message.
    pub fn from_panic(panic: &(dyn std::any::Any + Send)) -> Self {
        let message = panic
            .downcast_ref::<&str>()
            .map(|s| s.to_string())
            .or_else(|| panic.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_string());
        Error::Internal(message)
    }

    /// Where in the SQL text the problem is, when known: the parser's position for syntax
    /// errors, the span of a DataFusion diagnostic (an unknown column, say) otherwise.
    pub fn position(&self) -> Option<Position> {
        match self {
            Error::Syntax { position, .. } => *position,
            Error::DataFusion(e) => e
                .diagnostic()
                .and_then(|d| d.span)
                .filter(|span| span.start.line > 0)
                .map(|span| Position {
                    line: span.start.line as usize,
                    column: span.start.column as usize,
                }),
            _ => None,
        }
    }

    /// A one-line message without DataFusion's layered prefixes (`Error during planning: `…),
    /// the way a user wants to read it.
    pub fn message(&self) -> String {
        match self {
            Error::DataFusion(e) => clean_datafusion_message(e),
            other => other.to_string(),
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        Error::Io {
            action,
            path: path.into(),
            source,
        }
    }
}

/// Strips wrapper layers (`Context`, `Diagnostic`, shared `Arc`s) down to the error that says
/// what happened, keeping DataFusion's category prefix only where it adds information.
fn clean_datafusion_message(e: &DataFusionError) -> String {
    let root = e.find_root();
    let text = match root {
        DataFusionError::SQL(parser_error, _) => parser_error.to_string(),
        DataFusionError::Plan(message) => message.clone(),
        DataFusionError::SchemaError(schema_error, _) => schema_error.to_string(),
        DataFusionError::Execution(message) => message.clone(),
        DataFusionError::NotImplemented(message) => format!("not supported: {message}"),
        DataFusionError::ObjectStore(err) => err.to_string(),
        DataFusionError::IoError(err) => err.to_string(),
        // One of ours, carried through a stream of DataFusion's: its own words.
        DataFusionError::External(err) => err.to_string(),
        other => other.to_string(),
    };
    text.trim().to_string()
}

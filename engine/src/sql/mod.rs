//! The statement front end: SQL text → individual statements with their source positions.
//!
//! A script or a REPL buffer holds many statements. [`split_statements`] cuts it at top-level
//! `;` using sqlparser's tokenizer (so semicolons inside strings, quoted identifiers, comments
//! and dollar-quoted bodies do not split), and remembers where each statement starts. Errors
//! raised while parsing or planning a statement carry positions relative to the *whole* text,
//! which is what lets the CLI say `script.sql:12:8` and draw a caret under the problem.
//!
//! Statements Spark has and DataFusion does not (`SET` with Spark's free-form syntax, `RESET`)
//! are recognised here too, in [`command`].

pub mod command;
mod diagnostic;
mod split;
pub mod tables;

pub(crate) use split::LineOffsets;

pub use command::Command;
pub use diagnostic::{caret_snippet, parse_error_position};
pub use split::{SqlStatement, ends_with_terminator, split_statements};
pub use tables::{CreateTable, TableCommand, parse_table_command};

/// A position in SQL text: line and column, both starting at 1. Columns count characters,
/// not bytes, as sqlparser does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Position {
    pub line: usize,
    pub column: usize,
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "line {}, column {}", self.line, self.column)
    }
}

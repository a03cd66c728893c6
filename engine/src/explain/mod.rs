//! EXPLAIN: the job as stages before it runs, and what really happened after it ran.
//!
//! ```text
//!   StageGraph ──describe──▶ JobView ──text / JSON / DOT──▶ EXPLAIN
//!   StageGraph + JobReport ──analyze──▶ JobView with actuals + advisories ──▶ EXPLAIN ANALYZE
//! ```
//!
//! [`JobView`] is the one model every format renders, so text, JSON and DOT never disagree.

mod advisories;
mod model;
mod render;

pub use advisories::{Advisory, advise, human_count, is_skewed, recompute_advice};
pub use model::{
    FailedAttempt, JobView, OperatorView, StageActuals, StageView, SubqueryView, TaskTimes,
    describe, human_bytes, leaf_description, operators_named,
};
pub use render::{render_dot, render_json, render_text};

pub use crate::sql::command::ExplainKind;

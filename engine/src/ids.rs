//! The ids every part of a job refers to: jobs and stages, numbered per session from 1.

/// A job: one action. Jobs are numbered per session from 1.
pub type JobId = usize;

/// A stage of a job; stage ids are unique in the session, and a stage's output shuffle has
/// its stage's id.
pub type StageId = usize;

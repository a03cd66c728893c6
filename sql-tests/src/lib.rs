//! The sqllogictest suites of stagesql live beside this crate, one folder per feature
//! (`ddl/`, `queries/`, `tpch/`, `errors/` …), with their small data files under `data/`.
//! The `sqllogictests` test target (`harness.rs`) runs all of them; this library is empty and
//! exists because a Cargo package needs a library or binary target.

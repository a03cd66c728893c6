//! The sqllogictest suites of stagesql live beside this crate, one folder per feature
//! (`ddl/`, `queries/`, `tpch/`, `errors/` …), with their small data files under `data/`.
//! The `sqllogictests` test target (`harness.rs`) runs all of them. The library holds the
//! query generator ([`qgen`]) that the `generated` test target (`generated.rs`) runs in
//! every execution mode, comparing the answers.

pub mod qgen;

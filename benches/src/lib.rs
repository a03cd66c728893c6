//! Benchmark binaries of stagesql live in `src/bin/`; results and the commands that produced
//! them are written into `docs/benchmarks.md`.

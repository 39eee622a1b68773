//! Benchmarks for vpcd: what the load generator (`src/main.rs`) and the
//! criterion micro-benchmarks (`benches/micro.rs`) share.
//!
//! Figures, the machine, and the commands that produced them live in
//! `BENCHMARKS.md` at the repository root.
//!
//! # Layout
//! - [`fixtures`]: the typical requests and connections both kinds of
//!   benchmark use, so a micro-benchmark measures the same request the load
//!   generator sends.
//! - [`stats`]: latency summaries (exact percentiles over every sample).
//! - [`procfs`]: what `/proc` tells about the machine and the processes
//!   measured (CPU time, memory, load).

pub mod fixtures;
pub mod procfs;
pub mod stats;

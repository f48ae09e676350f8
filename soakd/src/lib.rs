//! soakd: drives SPEC 4's mixed tiny workload in epochs and reports each
//! epoch's throughput, CV, RSS drift and syscalls per operation through
//! Prometheus and durable JSON lines.
//!
//! The library holds every part; `main.rs` is only the command line. It is a
//! library so that the tests (here, in `soakd/tests/` and in `tests-e2e`)
//! read the one table of metrics, `metrics::TABLE`, instead of repeating
//! metric names.

pub mod compare;
pub mod config;
pub mod daemon;
pub mod epoch;
pub mod error;
pub mod host;
pub mod http;
pub mod logging;
pub mod memory;
pub mod metrics;
pub mod notify;
pub mod plot;
pub mod preloaded;
pub mod report;
pub mod results;
pub mod rss;
pub mod runner;
pub mod state;
pub mod version;
pub mod workload;

pub use error::Error;

// Unit tests run under the allocator the binary uses.
#[cfg(test)]
#[global_allocator]
static GLOBAL: hakmem::Hakmem = hakmem::Hakmem;

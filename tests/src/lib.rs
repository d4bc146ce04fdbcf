//! Test harness: starts the real local components on free loopback ports, each in its own
//! temporary directory, and stops them when dropped.
//!
//! Components are installed (once, cached) by `infra/local/install`; the harness only starts them.

pub mod clickhouse;
pub mod goservice;
pub mod hostile;
pub mod kafka;
pub mod oracle;
pub mod paths;
pub mod pipeline;
pub mod pprof;
pub mod s3;
pub mod serve;
pub mod store;

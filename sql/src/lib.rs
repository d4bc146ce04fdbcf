//! # pprofhouse-sql: everything ClickHouse
//!
//! One place to read how rows get into ClickHouse and how answers come out of it:
//!
//! - [`schema`] — the numbered migrations of `sql/migrations/` (templates [`schema::render`]
//!   fills with the database, engines, `ON CLUSTER`, `_local` tables and retention) and
//!   [`schema::migrate`], which applies the ones a database has not recorded yet.
//! - [`query`] — the fleet queries of `sql/queries/` (top-N, time series, services, diffs, flame
//!   graphs), every value bound as a ClickHouse query parameter, never spliced into SQL text.
//!   Top-N reads the daily or hourly rollup when the window allows it, the raw rows otherwise.
//!   [`query::merge`] gathers the stored stacks and headers a merged pprof profile is rebuilt
//!   from; [`query::catalog`] lists services and profiles, and finds a profile's S3 object.
//! - [`sink`] — exploded profiles in, per batch its intent, one RowBinary `INSERT INTO ingest`,
//!   one into each rollup and one of the processed markers out: batching by rows, bytes and
//!   age, deterministic profile ids, the processed-profile check that makes a replayed batch
//!   change nothing, and the taking-back of a write its worker abandoned half-way.
//! - [`ClickHouseConfig`] and [`Error`] — how to connect, and which failures are worth a retry.
//!
//! Everything goes through the `clickhouse` crate over HTTP(S), so the same code talks to a
//! ClickHouse server (≥ 24.8), ClickHouse Cloud, or the project's local ClickHouse-HTTP front
//! over chDB (`infra/local/chfront.py`). Why the schema is shaped the way it is:
//! `sql/README.md`.
#![deny(missing_docs)]

mod client;
pub mod query;
pub mod schema;
pub mod sink;

/// The `clickhouse` crate, for callers of [`query`] (its functions take a `clickhouse::Client`).
pub use clickhouse;
/// The ClickHouse client the queries take (the `clickhouse` crate's).
pub use clickhouse::Client;
pub use client::{ClickHouseConfig, Compression, Error};
pub use schema::{migrate, RenderOptions, Retention, MIGRATIONS};

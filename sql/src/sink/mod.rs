//! The ClickHouse sink: exploded profiles in, per batch one insert of its intent, one RowBinary
//! `INSERT INTO ingest`, one into each rollup and one of the processed markers out.
//!
//! A batch is cut by function rows, bytes or age ([`SinkConfig`]). Each profile becomes one row
//! of the Null-engine `ingest` table carrying its facts, its per-function rows and its stacks as
//! parallel arrays; materialized views fan it out (`sql/migrations/0005_ingest.sql`). The
//! hourly and daily rollups get the batch's sums by key, one insert each, and the processed
//! markers go last ([`Writer`]). A batch lands whole or not at all from the worker's point of
//! view: a failed write is retried under the same deduplication tokens, or undone before the
//! batch is split ([`Writer::discard`]).
//!
//! **Idempotence.** A profile's id depends only on where it came from, never on the clock: for
//! an S3 object, its bucket, key and version (or etag); for a local file, its content and the
//! metadata given with it ([`ProfileRecord`]). A fallback time (a profile without its own) is a
//! value stored with the profile, not part of its id. Before inserting, the sink asks `profiles` which ids of the batch are
//! already stored and drops those: loading a file twice, replaying an event or re-reading a
//! Kafka message after a crash changes nothing — raw tables and rollups alike. A failed flush
//! keeps its batch; the retry asks again first, so a batch whose first attempt did land (but
//! whose answer was lost) is not written twice.
//!
//! **Crashes.** Every write records its intent first (the batch's profile ids under its
//! deduplication token) and tags its raw rows with that token. A writer killed between the data
//! and the markers leaves an attempt no retry of the same batch will finish: its profiles come
//! back in other batches, under other tokens. The first write that finds one of its profiles
//! under such an attempt, quiet for [`SinkConfig::abandoned_after`], takes that attempt back out
//! whole (its tagged rows deleted, its rollup sums negated) before writing ([`Writer`]).

mod batch;
mod known;
mod record;
mod writer;

use std::time::Duration;

use serde::Deserialize;

pub use batch::{record_bytes, Batch, FlushStats};
pub use known::KnownStacks;
pub use record::{profile_id, Origin, ProfileRecord, SourceRef};
pub use writer::{batch_token, existing_ids, Sink, Writer, EXISTING_IDS_QUERY};

/// Batching and behaviour of the sink.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SinkConfig {
    /// Flush when the batch holds this many function rows.
    pub batch_rows: usize,
    /// Flush when the batch holds about this many bytes. 64 MiB: about 90 production-size
    /// profiles (heap profiles' stacks are most of a record), so ClickHouse gets one insert of
    /// ~160,000 function rows rather than two half as large. Each insert makes new parts in
    /// every table the views write, and their creation and merges cost ClickHouse as much as
    /// the data (pipeline benchmark: 32 → 64 MiB took ClickHouse CPU per profile from 12 to
    /// 7.3 ms, 56 → 73 profiles/s; the worker's worst case grows by twice the difference).
    pub batch_bytes: usize,
    /// Flush a non-empty batch at the latest this long after its first profile.
    #[serde(with = "humantime_serde")]
    pub linger: Duration,
    /// Store stacks (flame graphs). Off: only per-function rows and profiles.
    pub stacks: bool,
    /// Flush when the batch spans this many days: the raw tables are partitioned by day, and
    /// ClickHouse refuses an INSERT touching more than `max_partitions_per_insert_block`
    /// (default 100) partitions. A history backfill thus goes in batches of at most this many
    /// days, never in one insert ClickHouse rejects.
    pub max_days: usize,
    /// A write attempt of profiles that are still not stored, not retried for this long (each
    /// retry renews its intent), is taken for abandoned: its writer stopped between the data
    /// and the markers. The next write of any of those profiles takes it back out first. Longer
    /// than one attempt of a batch can take plus the retry's longest pause; a write that meets
    /// a younger attempt waits for it (up to this long) instead.
    #[serde(with = "humantime_serde")]
    pub abandoned_after: Duration,
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig {
            batch_rows: 200_000,
            batch_bytes: 64 << 20,
            linger: Duration::from_secs(2),
            stacks: true,
            max_days: 90,
            abandoned_after: Duration::from_secs(120),
        }
    }
}

//! The ClickHouse sink: exploded profiles in, one RowBinary `INSERT INTO ingest` per batch out.
//!
//! A batch is cut by function rows, bytes or age ([`SinkConfig`]). Each profile becomes one row
//! of the Null-engine `ingest` table carrying its facts, its per-function rows and its stacks as
//! parallel arrays; materialized views fan it out (`sql/migrations/0005_ingest.sql`). One
//! request per batch means a batch lands whole or not at all from the worker's point of view.
//!
//! **Idempotence.** A profile's id is a hash of its bytes and its metadata, so the same profile
//! always has the same id. Before inserting, the sink asks `profiles` which ids of the batch are
//! already stored and drops those: loading a file twice, replaying an event or re-reading a
//! Kafka message after a crash changes nothing — raw tables and rollups alike. A failed flush
//! keeps its batch; the retry asks again first, so a batch whose first attempt did land (but
//! whose answer was lost) is not written twice.
//!
//! (ClickHouse's `insert_deduplication_token` is deliberately not used: with materialized views
//! fanning one block out, the derived per-view tokens made ClickHouse drop genuine blocks of
//! the `function_values` fan-out in our fleet benchmark. The processed-profile check is exact.)

use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

use clap::Args;
use clickhouse::Row;
use serde::{Serialize, Serializer};
use uuid::Uuid;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

use super::StoreError;
use crate::Exploded;

/// Where a profile came from (empty for local files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRef {
    pub bucket: String,
    pub key: String,
    pub etag: String,
    pub size: u64,
}

/// What is known about a profile besides its content.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ProfileMeta {
    pub service: String,
    /// cpu, heap, block, mutex, goroutine, threadcreate, … (free-form).
    pub profile_type: String,
    pub labels: BTreeMap<String, String>,
    /// Profile time in ms since the epoch; `None`: the profile's own `time_nanos`, else now.
    pub time_ms: Option<i64>,
    pub source: SourceRef,
}

/// A profile ready for the sink.
#[derive(Debug, Clone)]
pub struct ProfileRecord {
    pub id: Uuid,
    pub ts_ms: i64,
    pub meta: ProfileMeta,
    pub exploded: Exploded,
}

impl ProfileRecord {
    /// Builds the record; `content` is the profile's bytes as stored (they feed the id).
    pub fn new(meta: ProfileMeta, content: &[u8], exploded: Exploded) -> Self {
        let ts_ms = meta.time_ms.unwrap_or_else(|| {
            if exploded.facts.time_nanos > 0 {
                exploded.facts.time_nanos / 1_000_000
            } else {
                time::OffsetDateTime::now_utc().unix_timestamp() * 1000
            }
        });
        let id = profile_id(&meta, ts_ms, content);
        ProfileRecord { id, ts_ms, meta, exploded }
    }

    fn function_rows(&self) -> usize {
        self.exploded.flat.len()
    }
}

/// The deterministic profile id: xxh3-128 over service, type, labels, time and content.
pub fn profile_id(meta: &ProfileMeta, ts_ms: i64, content: &[u8]) -> Uuid {
    let mut h = Xxh3::new();
    for part in [meta.service.as_bytes(), meta.profile_type.as_bytes()] {
        h.update(&(part.len() as u64).to_le_bytes());
        h.update(part);
    }
    for (k, v) in &meta.labels {
        h.update(&(k.len() as u64).to_le_bytes());
        h.update(k.as_bytes());
        h.update(&(v.len() as u64).to_le_bytes());
        h.update(v.as_bytes());
    }
    h.update(&ts_ms.to_le_bytes());
    h.update(&xxh3_128(content).to_le_bytes());
    Uuid::from_u128(h.digest128())
}

/// Batching and behaviour of the sink.
#[derive(Debug, Clone, Args, serde::Deserialize)]
pub struct SinkConfig {
    /// Flush when the batch holds this many function rows.
    #[arg(long, env = "PPROFHOUSE_BATCH_ROWS", default_value_t = 200_000)]
    pub batch_rows: usize,
    /// Flush when the batch holds about this many bytes.
    #[arg(long, env = "PPROFHOUSE_BATCH_BYTES", default_value_t = 32 << 20)]
    pub batch_bytes: usize,
    /// Flush a non-empty batch at the latest this long after its first profile.
    #[arg(long, env = "PPROFHOUSE_BATCH_LINGER", default_value = "2s", value_parser = humantime::parse_duration)]
    #[serde(with = "humantime_serde_compat")]
    pub linger: Duration,
    /// Store stacks (flame graphs). Off: only per-function rows and profiles.
    #[arg(long, env = "PPROFHOUSE_STORE_STACKS", default_value_t = true, action = clap::ArgAction::Set)]
    pub stacks: bool,
}

mod humantime_serde_compat {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer};

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
        let s = String::deserialize(d)?;
        humantime::parse_duration(&s).map_err(serde::de::Error::custom)
    }
}

impl Default for SinkConfig {
    fn default() -> Self {
        SinkConfig { batch_rows: 200_000, batch_bytes: 32 << 20, linger: Duration::from_secs(2), stacks: true }
    }
}

/// Serializes a byte string as a ClickHouse `String` (names need not be UTF-8).
#[derive(Clone, Copy)]
struct B<'a>(&'a [u8]);

impl Serialize for B<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

#[derive(Row, Serialize)]
struct IngestRow<'a> {
    #[serde(with = "clickhouse::serde::uuid")]
    profile_id: Uuid,
    ts: i64,
    service: &'a str,
    profile_type: &'a str,
    labels: Vec<(&'a str, &'a str)>,
    duration_ns: i64,
    period_type: String,
    period: i64,
    sample_types: Vec<String>,
    totals: &'a [i64],
    default_sample_type: String,
    sample_count: u64,
    label_keys: &'a [String],
    source_bucket: &'a str,
    source_key: &'a str,
    source_etag: &'a str,
    source_size: u64,
    decoded_bytes: u64,
    fn_type: Vec<u16>,
    fn_name: Vec<B<'a>>,
    fn_flat: Vec<i64>,
    fn_cum: Vec<i64>,
    st_hash: Vec<u64>,
    st_frames: Vec<Vec<B<'a>>>,
    st_values: Vec<&'a [i64]>,
}

fn ingest_row<'a>(rec: &'a ProfileRecord, with_stacks: bool, known_stacks: &HashMap<u64, Instant>, now: Instant) -> IngestRow<'a> {
    let ex = &rec.exploded;
    let f = &ex.facts;
    let k = f.sample_types.len();
    let mut fn_type = Vec::new();
    let mut fn_name = Vec::new();
    let mut fn_flat = Vec::new();
    let mut fn_cum = Vec::new();
    for n in 0..ex.names.len() {
        for t in 0..k {
            let (flat, cum) = (ex.flat[n * k + t], ex.cum[n * k + t]);
            if flat != 0 || cum != 0 {
                fn_type.push(t as u16);
                fn_name.push(B(&ex.names[n]));
                fn_flat.push(flat);
                fn_cum.push(cum);
            }
        }
    }
    let (mut st_hash, mut st_frames, mut st_values) = (Vec::new(), Vec::new(), Vec::new());
    if with_stacks {
        for s in &ex.stacks {
            st_hash.push(s.hash);
            // Frames of a stack written recently are left out: `stacks` already has them.
            let fresh = known_stacks.get(&s.hash).is_some_and(|&at| now.duration_since(at) < KNOWN_STACK_TTL);
            st_frames.push(if fresh { Vec::new() } else { s.frames.iter().map(|&n| B(&ex.names[n as usize])).collect() });
            st_values.push(&s.values[..]);
        }
    }
    IngestRow {
        profile_id: rec.id,
        ts: rec.ts_ms,
        service: &rec.meta.service,
        profile_type: &rec.meta.profile_type,
        labels: rec.meta.labels.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect(),
        duration_ns: f.duration_nanos,
        period_type: f.period_type.as_ref().map(|p| p.to_string()).unwrap_or_default(),
        period: f.period,
        sample_types: f.sample_types.iter().map(|t| t.to_string()).collect(),
        totals: &f.totals,
        default_sample_type: f.sample_types.get(f.default_sample_type).map(|t| t.to_string()).unwrap_or_default(),
        sample_count: f.sample_count,
        label_keys: &f.label_keys,
        source_bucket: &rec.meta.source.bucket,
        source_key: &rec.meta.source.key,
        source_etag: &rec.meta.source.etag,
        source_size: rec.meta.source.size,
        decoded_bytes: f.decoded_bytes,
        fn_type,
        fn_name,
        fn_flat,
        fn_cum,
        st_hash,
        st_frames,
        st_values,
    }
}

/// Stack frames are re-sent at least this often (keeps `stacks.last_seen` fresh for its TTL).
const KNOWN_STACK_TTL: Duration = Duration::from_secs(3600);
const KNOWN_STACK_MAX: usize = 1 << 20;

/// What one flush did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FlushStats {
    /// Profiles inserted now.
    pub inserted: usize,
    /// Profiles dropped because they were already stored.
    pub duplicates: usize,
    /// Function rows inserted.
    pub rows: usize,
    /// Approximate bytes sent.
    pub bytes: usize,
}

/// Profiles waiting to be written, each with a caller's tag (the worker tags records with
/// their Kafka partition, so a revoked partition's records can be dropped).
pub struct Batch<T = ()> {
    records: Vec<ProfileRecord>,
    tags: Vec<T>,
    rows: usize,
    bytes: usize,
    first_at: Option<Instant>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch { records: Vec::new(), tags: Vec::new(), rows: 0, bytes: 0, first_at: None }
    }
}

fn approx_bytes(rec: &ProfileRecord) -> usize {
    rec.exploded.names.iter().map(|n| n.len() + 24).sum::<usize>() * rec.exploded.facts.sample_types.len().max(1)
        + rec.exploded.stacks.iter().map(|s| s.frames.len() * 4 + 16).sum::<usize>()
}

impl<T> Batch<T> {
    /// Adds a profile.
    pub fn push(&mut self, rec: ProfileRecord, tag: T) {
        self.rows += rec.function_rows();
        self.bytes += approx_bytes(&rec);
        self.first_at.get_or_insert_with(Instant::now);
        self.records.push(rec);
        self.tags.push(tag);
    }

    /// Profiles in the batch.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Function rows in the batch.
    pub fn rows(&self) -> usize {
        self.rows
    }

    /// The records, in the order they were pushed.
    pub fn records(&self) -> &[ProfileRecord] {
        &self.records
    }

    /// The tags, aligned with [`Batch::records`].
    pub fn tags(&self) -> &[T] {
        &self.tags
    }

    /// True when the batch is full (rows or bytes) or old enough to go.
    pub fn should_flush(&self, cfg: &SinkConfig) -> bool {
        !self.records.is_empty()
            && (self.rows >= cfg.batch_rows || self.bytes >= cfg.batch_bytes || self.first_at.is_some_and(|t| t.elapsed() >= cfg.linger))
    }

    /// True when the batch is this many times over its row or byte budget (back-pressure).
    pub fn over(&self, cfg: &SinkConfig, factor: usize) -> bool {
        self.rows >= cfg.batch_rows.saturating_mul(factor) || self.bytes >= cfg.batch_bytes.saturating_mul(factor)
    }

    /// When the batch must go at the latest (`None` when empty).
    pub fn deadline(&self, cfg: &SinkConfig) -> Option<Instant> {
        self.first_at.map(|t| t + cfg.linger)
    }

    /// Keeps only the records whose tag satisfies `keep`; returns how many were dropped.
    pub fn retain(&mut self, mut keep: impl FnMut(&T) -> bool) -> usize {
        let before = self.records.len();
        let mut kept = Batch::default();
        for (rec, tag) in std::mem::take(&mut self.records).into_iter().zip(std::mem::take(&mut self.tags)) {
            if keep(&tag) {
                kept.push(rec, tag);
            }
        }
        kept.first_at = kept.first_at.and(self.first_at);
        *self = kept;
        before - self.records.len()
    }

    /// Takes the batch out, leaving an empty one.
    pub fn take(&mut self) -> Self {
        std::mem::take(self)
    }
}

/// Writes batches to ClickHouse: the processed-profile check, then one INSERT.
pub struct Writer {
    client: clickhouse::Client,
    cfg: SinkConfig,
    known_stacks: HashMap<u64, Instant>,
}

impl Writer {
    pub fn new(client: clickhouse::Client, cfg: SinkConfig) -> Self {
        Writer { client, cfg, known_stacks: HashMap::new() }
    }

    pub fn config(&self) -> &SinkConfig {
        &self.cfg
    }

    /// Writes `records`, skipping profiles already stored (and repeats within `records`).
    /// Safe to call again with the same records after an error: the check runs first.
    pub async fn write(&mut self, records: &[ProfileRecord]) -> Result<FlushStats, StoreError> {
        if records.is_empty() {
            return Ok(FlushStats::default());
        }
        let existing = existing_ids(&self.client, records.iter().map(|r| r.id)).await?;
        let fresh: Vec<&ProfileRecord> = {
            let mut seen = std::collections::HashSet::new();
            records.iter().filter(|r| !existing.contains(&r.id) && seen.insert(r.id)).collect()
        };
        let mut stats = FlushStats { duplicates: records.len() - fresh.len(), ..Default::default() };
        if !fresh.is_empty() {
            let mut insert = self.client.insert::<IngestRow<'_>>("ingest").await?;
            let now = Instant::now();
            for rec in &fresh {
                let row = ingest_row(rec, self.cfg.stacks, &self.known_stacks, now);
                insert.write(&row).await?;
                stats.rows += row.fn_name.len();
            }
            insert.end().await?;
            stats.inserted = fresh.len();
            stats.bytes = fresh.iter().map(|r| approx_bytes(r)).sum();
            if self.cfg.stacks {
                if self.known_stacks.len() > KNOWN_STACK_MAX {
                    self.known_stacks.clear();
                }
                for rec in &fresh {
                    for s in &rec.exploded.stacks {
                        self.known_stacks.entry(s.hash).or_insert(now);
                    }
                }
                self.known_stacks.retain(|_, at| now.duration_since(*at) < KNOWN_STACK_TTL);
            }
        }
        Ok(stats)
    }
}

/// Batches profiles and writes them to ClickHouse (a [`Batch`] and a [`Writer`] together; the
/// worker drives the two separately so it can fill the next batch while one is being written).
pub struct Sink {
    writer: Writer,
    batch: Batch,
}

impl Sink {
    pub fn new(client: clickhouse::Client, cfg: SinkConfig) -> Self {
        Sink { writer: Writer::new(client, cfg), batch: Batch::default() }
    }

    /// Adds a profile to the current batch.
    pub fn push(&mut self, rec: ProfileRecord) {
        self.batch.push(rec, ());
    }

    /// Profiles waiting in the batch.
    pub fn pending(&self) -> usize {
        self.batch.len()
    }

    /// True when the batch is full (rows or bytes) or old enough to go.
    pub fn should_flush(&self) -> bool {
        self.batch.should_flush(&self.writer.cfg)
    }

    /// When the current batch must go at the latest (`None` when empty).
    pub fn deadline(&self) -> Option<Instant> {
        self.batch.deadline(&self.writer.cfg)
    }

    /// Writes the batch. On error the batch is kept, so calling `flush` again retries it.
    pub async fn flush(&mut self) -> Result<FlushStats, StoreError> {
        let stats = self.writer.write(self.batch.records()).await?;
        self.batch = Batch::default();
        Ok(stats)
    }
}

/// Which of `ids` are already in `profiles`.
pub async fn existing_ids(client: &clickhouse::Client, ids: impl Iterator<Item = Uuid>) -> Result<std::collections::HashSet<Uuid>, StoreError> {
    let ids: Vec<String> = ids.map(|u| u.to_string()).collect();
    let mut out = std::collections::HashSet::new();
    // Bound client-side into the query body (the ids are ours: UUID text), in chunks so a large
    // batch never makes an oversized request.
    for chunk in ids.chunks(4096) {
        let found: Vec<String> = client
            .query("SELECT DISTINCT toString(profile_id) FROM profiles WHERE toString(profile_id) IN ?")
            .bind(chunk)
            .fetch_all()
            .await?;
        out.extend(found.iter().filter_map(|s| Uuid::parse_str(s).ok()));
    }
    Ok(out)
}

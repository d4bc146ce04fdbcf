//! Writing batches: the processed-profile check, the intent, the data through `ingest`, the
//! rollups, then the processed markers in `profiles`, last.
//!
//! Every insert carries an `insert_deduplication_token` derived from the batch's profile ids, so
//! retrying a batch that failed half-way (ClickHouse does not make an insert atomic across
//! materialized views) completes it without doubling anything: tables that hold its block skip
//! it, the others get it. Before a failed batch is split into different batches, [`Writer::discard`]
//! undoes what the failed attempt may have left: it deletes the batch's rows from the
//! first-level tables the views of `ingest` write, and it takes the batch's sums back out of
//! the rollups.
//!
//! The rollups (`function_values_hourly`, `function_values_daily`) are summed here, per batch,
//! and written by one plain insert each (migration 0011), not by views behind
//! `function_values`: a rollup holds a batch's sums whole or not at all, so they can be taken
//! back exactly. Their rows cannot be deleted per profile (they sum many), and when they were
//! views one could keep a failed attempt's sums while another refused them; the halves of the
//! split batch then added them again.
//!
//! A write that stops for good half-way (its worker killed between the data and the markers)
//! is never retried as the same batch: its profiles come back in other batches, under other
//! tokens, which no table takes for duplicates. So each attempt first records its intent in
//! `sink_intents` (its profiles under its token, renewed on every retry) and tags the raw rows
//! it writes with the token (`attempt`, migration 0012). A write that finds some of its
//! profiles under another token, unrenewed for [`SinkConfig::abandoned_after`], takes that
//! attempt back out whole, as [`Writer::discard`] takes back a rejected one: its sums, read
//! back from its tagged `function_values` rows, written again and negated in the rollups; its
//! tagged rows deleted. An attempt renewed more recently is waited for.

use std::collections::HashSet;

use hashbrown::HashSet as FastSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clickhouse::Row;
use serde::{Deserialize, Serialize, Serializer};
use uuid::Uuid;

use super::batch::{record_bytes, Batch, FlushStats};
use super::known::{Generations, KnownStacks};
use super::record::ProfileRecord;
use super::SinkConfig;
use crate::Error;

/// Serializes a byte string as a ClickHouse `String` (names need not be UTF-8).
#[derive(Clone, Copy)]
struct B<'a>(&'a [u8]);

impl Serialize for B<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_bytes(self.0)
    }
}

/// One `profiles` row: the processed marker, written after the data.
#[derive(Row, Serialize)]
struct MarkerRow<'a> {
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
}

/// The marker of a profile: its facts and where it came from.
fn marker_row(rec: &ProfileRecord) -> MarkerRow<'_> {
    let f = &rec.exploded.facts;
    MarkerRow {
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
        source_bucket: &rec.source.bucket,
        source_key: &rec.source.key,
        source_etag: &rec.source.etag,
        source_size: rec.source.size,
        decoded_bytes: f.decoded_bytes,
    }
}

/// The deduplication token of a batch: xxh3-128 of its sorted profile ids. The same profiles
/// give the same token, whatever their order.
pub fn batch_token(ids: impl Iterator<Item = Uuid>) -> String {
    let mut ids: Vec<Uuid> = ids.collect();
    ids.sort_unstable();
    let mut h = xxhash_rust::xxh3::Xxh3::new();
    for id in &ids {
        h.update(id.as_bytes());
    }
    format!("pprofhouse-{:032x}", h.digest128())
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
    /// Per sample type (`sample_types` order): the row's stacks with a non-zero value for it,
    /// and those values — a `stack_samples` row each (migration 0010).
    by_type_hash: Vec<Vec<u64>>,
    by_type_value: Vec<Vec<i64>>,
    /// The stacks whose frames this row carries, and the frames (names leaf first).
    frames_hash: Vec<u64>,
    frames: Vec<Vec<B<'a>>>,
    /// The write attempt's token: the raw rows' tag, by which an abandoned attempt is taken back.
    attempt: &'a str,
}

/// A `sink_intents` row: a profile a write attempt is about to write, under its token, with
/// the time range of the attempt's profiles.
#[derive(Row, Serialize)]
struct IntentRow<'a> {
    #[serde(with = "clickhouse::serde::uuid")]
    profile_id: Uuid,
    token: &'a str,
    lo: i64,
    hi: i64,
}

/// Another write attempt of some of a batch's profiles, not taken back yet ([`OTHER_ATTEMPTS_QUERY`]).
#[derive(Row, Deserialize)]
struct OtherAttempt {
    token: String,
    /// Milliseconds since its intent was last renewed (ClickHouse's clock both times).
    age_ms: i64,
    /// The time range of its profiles (Unix milliseconds).
    lo: i64,
    hi: i64,
}

/// Which other attempts hold some of the bound profile ids (their intents), not taken back
/// whole yet, with the time since each last renewed its intent. (`GLOBAL`: in a cluster both
/// tables are Distributed, and a distributed subquery inside one is refused otherwise.)
const OTHER_ATTEMPTS_QUERY: &str = "SELECT token, toInt64(dateDiff('millisecond', max(at), now64(3))) AS age_ms, \
     toUnixTimestamp64Milli(min(lo)) AS lo, toUnixTimestamp64Milli(max(hi)) AS hi FROM sink_intents \
     WHERE profile_id IN ? AND token != ? AND token GLOBAL NOT IN (SELECT token FROM sink_discards FINAL WHERE done = 1) \
     GROUP BY token";

/// An attempt's `function_values` rows summed by profile time and rollup key: what its rollup
/// inserts summed ([`STORED_SUMS_QUERY`]).
#[derive(Row, Deserialize)]
struct StoredSum {
    /// The profile time (Unix milliseconds; not `ts`, which the query's `WHERE` means as the
    /// column).
    ts_ms: i64,
    service: String,
    profile_type: String,
    sample_type: String,
    #[serde(with = "serde_bytes")]
    function: Vec<u8>,
    flat: i64,
    cum: i64,
    profiles: u64,
}

/// The `function_values` rows an attempt wrote (bound: its time range, its token), summed by
/// profile time and rollup key; `profiles` counts rows, one per profile, sample type and
/// function, as the sink counts them.
const STORED_SUMS_QUERY: &str = "SELECT toUnixTimestamp64Milli(ts) AS ts_ms, toString(service) AS service, \
     toString(profile_type) AS profile_type, toString(sample_type) AS sample_type, toString(function) AS function, \
     sum(flat) AS flat, sum(cum) AS cum, count() AS profiles FROM function_values \
     WHERE ts >= fromUnixTimestamp64Milli(?) AND ts <= fromUnixTimestamp64Milli(?) AND attempt = ? \
     GROUP BY ts_ms, service, profile_type, sample_type, function";

/// A rollup table's row: one function's values summed over a batch's profiles of one service,
/// profile type and sample type in one bucket (`T`: the hour as `DateTime` seconds, or the day
/// as `Date` days), and how many profiles have it.
#[derive(Row, Serialize)]
struct RollupRow<'a, T> {
    bucket: T,
    service: &'a str,
    profile_type: &'a str,
    sample_type: &'a str,
    function: B<'a>,
    flat: i64,
    cum: i64,
    profiles: u64,
}

/// A rollup's sums of a batch: per bucket, service, profile type and sample type, per function
/// (two levels, so a function row hashes its name alone).
type RollupSums<'a, T> = hashbrown::HashMap<(T, &'a str, &'a str, &'a str), hashbrown::HashMap<&'a [u8], Sums>>;

/// Flat, cum and profile count of a rollup key (wrapping, as ClickHouse sums `Int64`).
#[derive(Clone, Copy, Default)]
struct Sums(i64, i64, u64);

impl Sums {
    /// Adds `profiles` profiles' flat and cum.
    fn add(&mut self, flat: i64, cum: i64, profiles: u64) {
        *self = Sums(self.0.wrapping_add(flat), self.1.wrapping_add(cum), self.2 + profiles);
    }
}

/// The rollups of a batch's profiles, summed by key, as the views over `function_values`
/// summed them: a profile counts once for each function and sample type it has a non-zero flat
/// or cum for (its `function_values` rows).
struct Rollups<'a> {
    hourly: RollupSums<'a, u32>,
    daily: RollupSums<'a, u16>,
}

/// The hour of a time in Unix milliseconds, as `DateTime` seconds (`toStartOfHour`), and its
/// day as `Date` days since 1970 (`toDate`), both in UTC; clamped to the types' ranges (an hour
/// past `DateTime`'s last one is its last whole hour).
fn buckets(ts_ms: i64) -> (u32, u16) {
    let s = ts_ms.div_euclid(1000).clamp(0, i64::from(u32::MAX));
    let hour = (s - s % 3600) as u32;
    let day = ts_ms.div_euclid(86_400_000).clamp(0, i64::from(u16::MAX)) as u16;
    (hour, day)
}

impl<'a> Rollups<'a> {
    /// The sums of an attempt's stored rows (what its rollup inserts held, if they landed).
    fn of_stored(stored: &'a [StoredSum]) -> Self {
        let mut r = Rollups { hourly: hashbrown::HashMap::new(), daily: hashbrown::HashMap::new() };
        for row in stored {
            let (hour, day) = buckets(row.ts_ms);
            let key = (row.service.as_str(), row.profile_type.as_str(), row.sample_type.as_str());
            r.hourly.entry((hour, key.0, key.1, key.2)).or_default().entry(&row.function).or_default().add(row.flat, row.cum, row.profiles);
            r.daily.entry((day, key.0, key.1, key.2)).or_default().entry(&row.function).or_default().add(row.flat, row.cum, row.profiles);
        }
        r
    }

    /// The sums of `fresh`; `types[i]` holds the sample type names of `fresh[i]`.
    fn of(fresh: &[&'a ProfileRecord], types: &'a [Vec<String>]) -> Self {
        let mut r = Rollups { hourly: hashbrown::HashMap::new(), daily: hashbrown::HashMap::new() };
        for (rec, types) in fresh.iter().zip(types) {
            let ex = &rec.exploded;
            let k = types.len();
            let (hour, day) = buckets(rec.ts_ms);
            let (service, profile_type) = (rec.meta.service.as_str(), rec.meta.profile_type.as_str());
            for (t, sample_type) in types.iter().enumerate() {
                let hourly = r.hourly.entry((hour, service, profile_type, sample_type)).or_default();
                let daily = r.daily.entry((day, service, profile_type, sample_type)).or_default();
                for (n, name) in ex.names.iter().enumerate() {
                    let (flat, cum) = (ex.flat[n * k + t], ex.cum[n * k + t]);
                    if flat == 0 && cum == 0 {
                        continue;
                    }
                    for s in [hourly.entry(name).or_default(), daily.entry(name).or_default()] {
                        s.add(flat, cum, 1);
                    }
                }
            }
        }
        r
    }
}

/// One insert of a rollup's rows (`sign`: as summed, or negated); none when there are none.
async fn insert_sums<T: Copy + Serialize>(
    client: &clickhouse::Client,
    table: &str,
    sums: &RollupSums<'_, T>,
    sign: impl Fn(Sums) -> Sums,
) -> Result<(), Error> {
    if sums.values().all(|f| f.is_empty()) {
        return Ok(());
    }
    let mut insert = client.insert::<RollupRow<'_, T>>(table).await?;
    for (&(bucket, service, profile_type, sample_type), functions) in sums {
        for (&function, &s) in functions {
            let s = sign(s);
            let row = RollupRow { bucket, service, profile_type, sample_type, function: B(function), flat: s.0, cum: s.1, profiles: s.2 };
            insert.write(&row).await?;
        }
    }
    insert.end().await?;
    Ok(())
}

/// The sample type names of each record, as `function_values` stores them.
fn sample_type_names(fresh: &[&ProfileRecord]) -> Vec<Vec<String>> {
    fresh.iter().map(|r| r.exploded.facts.sample_types.iter().map(|t| t.to_string()).collect()).collect()
}

/// A rollup table.
#[derive(Clone, Copy)]
enum Rollup {
    Hourly,
    Daily,
}

impl Rollup {
    /// The rollups, in the order they are written.
    const ALL: [Rollup; 2] = [Rollup::Hourly, Rollup::Daily];

    fn table(self) -> &'static str {
        match self {
            Rollup::Hourly => "function_values_hourly",
            Rollup::Daily => "function_values_daily",
        }
    }
}

/// Stacks per `ingest` row: a profile with more is sent as several rows (its facts repeated,
/// its functions in the first), so no one row — serialized whole by the client before it is
/// sent, and compressed whole — grows with the profile (a production heap profile's 26k stacks
/// are 22 MB of RowBinary). The views over `ingest` ARRAY JOIN each row, so the rows add up
/// to the profile.
const STACKS_PER_ROW: usize = 2048;

/// The stacks of each of a profile's `ingest` rows ([`STACKS_PER_ROW`] each; one row, with
/// its functions, when it has none).
fn stack_chunks(rec: &ProfileRecord, with_stacks: bool) -> impl Iterator<Item = std::ops::Range<usize>> {
    let stacks = if with_stacks { rec.exploded.stacks.len() } else { 0 };
    (0..stacks.div_ceil(STACKS_PER_ROW).max(1)).map(move |i| i * STACKS_PER_ROW..((i + 1) * STACKS_PER_ROW).min(stacks))
}

/// One `ingest` row: the profile's facts, its functions (`functions`), the stacks in `stacks`;
/// `known`: the stacks whose frames `stacks` has, `sent`: those whose frames this insert
/// already carries.
fn ingest_row<'a>(
    rec: &'a ProfileRecord,
    functions: bool,
    stacks: std::ops::Range<usize>,
    known: &Generations,
    sent: &mut FastSet<u64>,
    attempt: &'a str,
) -> IngestRow<'a> {
    let ex = &rec.exploded;
    let f = &ex.facts;
    let k = f.sample_types.len();
    let mut fn_type = Vec::new();
    let mut fn_name = Vec::new();
    let mut fn_flat = Vec::new();
    let mut fn_cum = Vec::new();
    for n in 0..if functions { ex.names.len() } else { 0 } {
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
    // A row without stacks has no per-type arrays either: the view joins nothing for it.
    let n = stacks.len();
    let types = if n == 0 { 0 } else { k };
    let mut by_type_hash: Vec<Vec<u64>> = (0..types).map(|_| Vec::with_capacity(n)).collect();
    let mut by_type_value: Vec<Vec<i64>> = (0..types).map(|_| Vec::with_capacity(n)).collect();
    let (mut frames_hash, mut frames) = (Vec::new(), Vec::new());
    for s in stacks.map(|i| ex.stacks.get(i)) {
        for (t, &v) in s.values.iter().enumerate() {
            if v != 0 {
                by_type_hash[t].push(s.hash);
                by_type_value[t].push(v);
            }
        }
        // Each stack's frames go once: not when `stacks` has them already (written recently:
        // then the record usually has none), nor again within this insert.
        if !s.frames.is_empty() && !known.contains(s.hash) && sent.insert(s.hash) {
            frames_hash.push(s.hash);
            frames.push(s.frames.iter().map(|&n| B(&ex.names[n as usize])).collect());
        }
    }
    let m = marker_row(rec);
    IngestRow {
        profile_id: m.profile_id,
        ts: m.ts,
        service: m.service,
        profile_type: m.profile_type,
        labels: m.labels,
        duration_ns: m.duration_ns,
        period_type: m.period_type,
        period: m.period,
        sample_types: m.sample_types,
        totals: m.totals,
        default_sample_type: m.default_sample_type,
        sample_count: m.sample_count,
        label_keys: m.label_keys,
        source_bucket: m.source_bucket,
        source_key: m.source_key,
        source_etag: m.source_etag,
        source_size: m.source_size,
        decoded_bytes: m.decoded_bytes,
        fn_type,
        fn_name,
        fn_flat,
        fn_cum,
        by_type_hash,
        by_type_value,
        frames_hash,
        frames,
        attempt,
    }
}

/// Writes batches to ClickHouse: the processed-profile check, then one INSERT.
pub struct Writer {
    client: clickhouse::Client,
    cfg: SinkConfig,
    known_stacks: Arc<KnownStacks>,
    cluster: Option<String>,
}

impl Writer {
    /// A writer to `client` with `cfg`.
    pub fn new(client: clickhouse::Client, cfg: SinkConfig) -> Self {
        Writer { client, cfg, known_stacks: Arc::default(), cluster: None }
    }

    /// Its settings.
    pub fn config(&self) -> &SinkConfig {
        &self.cfg
    }

    /// The stacks it has stored recently, for leaving their frames out of records early.
    pub fn known_stacks(&self) -> Arc<KnownStacks> {
        self.known_stacks.clone()
    }

    /// The records whose profiles are not stored yet (repeats within `records` once).
    async fn fresh<'r>(&self, records: &'r [ProfileRecord]) -> Result<Vec<&'r ProfileRecord>, Error> {
        let existing = existing_ids(&self.client, records.iter().map(|r| r.id)).await?;
        let mut seen = HashSet::new();
        Ok(records.iter().filter(|r| !existing.contains(&r.id) && seen.insert(r.id)).collect())
    }

    /// The deduplication token of a write of `fresh`: [`batch_token`], in the generation after
    /// the last discarded one.
    async fn token(&self, fresh: &[&ProfileRecord]) -> Result<String, Error> {
        let base = batch_token(fresh.iter().map(|r| r.id));
        let discarded: u64 =
            self.client.query("SELECT count() FROM sink_discards FINAL WHERE startsWith(token, ?)").bind(&base).fetch_one().await?;
        Ok(if discarded == 0 { base } else { format!("{base}/{discarded}") })
    }

    /// In cluster mode [`Writer::discard`] deletes from the `_local` tables on every node.
    pub fn with_cluster(mut self, cluster: Option<String>) -> Self {
        self.cluster = cluster;
        self
    }

    /// Takes back what a failed write of these profiles may have left: its sums in the
    /// rollups and its rows in the first-level tables (`function_values`, `stack_samples`;
    /// `stacks` holds content keyed by hash and needs no undoing). Called before a failed batch
    /// is split, so the halves start from nothing.
    pub async fn discard(&self, records: &[ProfileRecord]) -> Result<(), Error> {
        let fresh = self.fresh(records).await?;
        if fresh.is_empty() {
            return Ok(());
        }
        let token = self.token(&fresh).await?;
        let (lo, hi) = time_range(&fresh);
        self.take_back(&token, lo, hi).await
    }

    /// Takes the write attempt `token` (its profiles' times within `lo..=hi`) back out whole.
    /// Its sums are read back from the `function_values` rows it tagged: the rollups got them
    /// only after those rows landed. Safe to run again, and by two writers at once.
    async fn take_back(&self, token: &str, lo: i64, hi: i64) -> Result<(), Error> {
        let stored: Vec<StoredSum> = self.client.query(STORED_SUMS_QUERY).bind(lo).bind(hi).bind(token).fetch_all().await?;
        // The rollups: each holds the attempt's sums whole or not at all, and which is not known
        // here. Writing them again under the attempt's token settles it (a rollup that holds
        // them skips the insert as a duplicate, one that does not takes them now), and then the
        // same sums go out again, negated. A rollup that refuses the sums for good never held
        // them. Run again after an interruption, both inserts are duplicates.
        let rollups = Rollups::of_stored(&stored);
        for rollup in Rollup::ALL {
            match self.write_rollup(rollup, &rollups, token, false).await {
                Ok(()) => self.write_rollup(rollup, &rollups, token, true).await?,
                Err(e) if !e.is_transient() => {
                    tracing::debug!(table = rollup.table(), error = %e, "the rollup refuses the attempt's sums: it holds none of them");
                }
                Err(e) => return Err(e),
            }
        }
        // The token goes first: a write of these profiles after this point uses a new one, so
        // no table takes the removed rows' block for a duplicate. `done` goes last: until then
        // the attempt's intents are still looked at, so an interrupted deletion is finished.
        self.client.query("INSERT INTO sink_discards (token) VALUES (?)").bind(token).execute().await?;
        let (suffix, on_cluster) = match &self.cluster {
            Some(c) => ("_local", format!(" ON CLUSTER {}", crate::schema::quote_ident(c))),
            None => ("", String::new()),
        };
        for table in ["function_values", "stack_samples"] {
            self.client
                .query(&format!(
                    "DELETE FROM {table}{suffix}{on_cluster} WHERE ts >= fromUnixTimestamp64Milli(?) AND ts <= fromUnixTimestamp64Milli(?) AND attempt = ?"
                ))
                .bind(lo)
                .bind(hi)
                .bind(token)
                .execute()
                .await?;
        }
        self.client.query("INSERT INTO sink_discards (token, done) VALUES (?, 1)").bind(token).execute().await?;
        Ok(())
    }

    /// The other attempts, not taken back yet, that intended to write some of `fresh`.
    async fn other_attempts(&self, fresh: &[&ProfileRecord], token: &str) -> Result<Vec<OtherAttempt>, Error> {
        let ids: Vec<String> = fresh.iter().map(|r| r.id.to_string()).collect();
        let mut found: hashbrown::HashMap<String, OtherAttempt> = hashbrown::HashMap::new();
        for chunk in ids.chunks(4096) {
            let part: Vec<OtherAttempt> = self.client.query(OTHER_ATTEMPTS_QUERY).bind(chunk).bind(token).fetch_all().await?;
            for a in part {
                match found.get_mut(&a.token) {
                    Some(b) => {
                        b.age_ms = b.age_ms.min(a.age_ms);
                        b.lo = b.lo.min(a.lo);
                        b.hi = b.hi.max(a.hi);
                    }
                    None => {
                        found.insert(a.token.clone(), a);
                    }
                }
            }
        }
        Ok(found.into_values().collect())
    }

    /// Inserts the batch's sums into the rollup `table` (`negate`: the sums taken back out), one
    /// insert under its own token derived from the batch's `token`.
    async fn write_rollup(&self, rollup: Rollup, rollups: &Rollups<'_>, token: &str, negate: bool) -> Result<(), Error> {
        let table = rollup.table();
        let token = format!("{token}/{table}{}", if negate { "/undo" } else { "" });
        // `optimize_on_insert = 0`: the rows are one per key already, and summing the block
        // again before it is written took half of a rollup's insert time (measured); every query
        // sums anyway, as parts are summed only by merges.
        let client = self.client.clone().with_option("insert_deduplication_token", &token).with_option("optimize_on_insert", "0");
        let sign = |s: Sums| if negate { Sums(s.0.wrapping_neg(), s.1.wrapping_neg(), s.2.wrapping_neg()) } else { s };
        match rollup {
            Rollup::Hourly => insert_sums(&client, table, &rollups.hourly, sign).await,
            Rollup::Daily => insert_sums(&client, table, &rollups.daily, sign).await,
        }
    }

    /// Writes `records`, skipping profiles already stored (and repeats within `records`).
    /// Safe to call again with the same records after an error: the check runs first. Another
    /// attempt at some of the same profiles is taken back first when abandoned, or waited for
    /// (once, up to [`SinkConfig::abandoned_after`]; then [`Error::Busy`]).
    pub async fn write(&self, records: &[ProfileRecord]) -> Result<FlushStats, Error> {
        if records.is_empty() {
            return Ok(FlushStats::default());
        }
        let mut waited = false;
        loop {
            let fresh = self.fresh(records).await?;
            let duplicates = records.len() - fresh.len();
            if fresh.is_empty() {
                return Ok(FlushStats { duplicates, ..Default::default() });
            }
            let token = self.token(&fresh).await?;
            let others = self.other_attempts(&fresh, &token).await?;
            let limit = self.cfg.abandoned_after;
            let live = others.iter().filter_map(|a| limit.checked_sub(Duration::from_millis(a.age_ms.max(0) as u64))).max();
            if let Some(wait) = live.filter(|w| !w.is_zero()) {
                if waited {
                    return Err(Error::Busy(format!(
                        "another write of some of these profiles is still going on ({} attempt(s) renewed in the last {limit:?})",
                        others.len()
                    )));
                }
                tracing::info!(
                    wait_ms = wait.as_millis() as u64,
                    "another write of some of these profiles is going on; waiting for it to land or be abandoned"
                );
                tokio::time::sleep(wait).await;
                waited = true;
                continue;
            }
            for a in &others {
                tracing::warn!(
                    attempt = %a.token,
                    quiet_ms = a.age_ms,
                    "taking back an abandoned write of some of these profiles (its writer stopped before marking them stored)"
                );
                self.take_back(&a.token, a.lo, a.hi).await?;
            }
            let mut stats = self.write_fresh(&fresh, &token).await?;
            stats.duplicates = duplicates;
            stats.taken_back = others.len();
            return Ok(stats);
        }
    }

    /// One attempt at `fresh` under `token`: the intent, the data, the rollups, the markers.
    async fn write_fresh(&self, fresh: &[&ProfileRecord], token: &str) -> Result<FlushStats, Error> {
        let mut stats = FlushStats::default();
        // The intent first, renewed by every retry (never deduplicated: its time is the
        // attempt's heartbeat).
        let (lo, hi) = time_range(fresh);
        let mut intents = self.client.clone().with_option("insert_deduplicate", "0").insert::<IntentRow<'_>>("sink_intents").await?;
        for rec in fresh {
            intents.write(&IntentRow { profile_id: rec.id, token, lo, hi }).await?;
        }
        intents.end().await?;
        let client = self
            .client
            .clone()
            .with_option("insert_deduplication_token", token)
            .with_option("deduplicate_blocks_in_dependent_materialized_views", "1");
        // Unvalidated: the rows are large (a heap profile's stacks) and checking every value
        // against the schema costs more than building them; the schema is ours, and the
        // pipeline tests write through this path against the real tables.
        // `optimize_on_insert = 0`: `stacks` (a ReplacingMergeTree) would otherwise collapse
        // the block by its key before writing it; its readers take `any(frames)` per hash
        // anyway, and merges collapse the parts.
        let mut insert =
            client.clone().with_option("optimize_on_insert", "0").with_validation(false).insert::<IngestRow<'_>>("ingest").await?;
        let now = Instant::now();
        // The stacks written recently (their frames are in `stacks` already), and those whose
        // frames this insert carries.
        let known = self.known_stacks.snapshot();
        let mut sent = FastSet::new();
        for rec in fresh {
            for (i, stacks) in stack_chunks(rec, self.cfg.stacks).enumerate() {
                let row = ingest_row(rec, i == 0, stacks, &known, &mut sent, token);
                insert.write(&row).await?;
                stats.rows += row.fn_name.len();
            }
        }
        insert.end().await?;
        let types = sample_type_names(fresh);
        let rollups = Rollups::of(fresh, &types);
        for rollup in Rollup::ALL {
            self.write_rollup(rollup, &rollups, token, false).await?;
        }
        // The markers last: a profile is "stored" only once all of its data is.
        let mut markers = client.insert::<MarkerRow<'_>>("profiles").await?;
        for rec in fresh {
            markers.write(&marker_row(rec)).await?;
        }
        markers.end().await?;
        stats.inserted = fresh.len();
        stats.bytes = fresh.iter().map(|r| record_bytes(r)).sum();
        if self.cfg.stacks {
            self.known_stacks.remember(sent.into_iter(), now);
        }
        Ok(stats)
    }
}

/// The time range of `fresh`'s profiles (Unix milliseconds).
fn time_range(fresh: &[&ProfileRecord]) -> (i64, i64) {
    fresh.iter().fold((i64::MAX, i64::MIN), |(lo, hi), r| (lo.min(r.ts_ms), hi.max(r.ts_ms)))
}

/// Batches profiles and writes them to ClickHouse (a [`Batch`] and a [`Writer`] together; the
/// worker drives the two separately so it can fill the next batch while one is being written).
pub struct Sink {
    writer: Writer,
    batch: Batch,
}

impl Sink {
    /// A writer to `client` with `cfg`.
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
    pub async fn flush(&mut self) -> Result<FlushStats, Error> {
        let stats = self.writer.write(self.batch.records()).await?;
        self.batch = Batch::default();
        Ok(stats)
    }
}

/// The processed-profile check: which of the bound ids `profiles` holds. `profile_id` is
/// compared as itself (ClickHouse converts the bound strings to UUIDs), so the query reads the
/// `by_profile_id` projection's index (migration 0009), not every id ever stored.
pub const EXISTING_IDS_QUERY: &str = "SELECT DISTINCT toString(profile_id) FROM profiles WHERE profile_id IN ?";

/// Which of `ids` are already in `profiles` ([`EXISTING_IDS_QUERY`]).
pub async fn existing_ids(client: &clickhouse::Client, ids: impl Iterator<Item = Uuid>) -> Result<HashSet<Uuid>, Error> {
    let ids: Vec<String> = ids.map(|u| u.to_string()).collect();
    let mut out = HashSet::new();
    // Bound client-side into the query body (the ids are ours: UUID text), in chunks so a large
    // batch never makes an oversized request.
    for chunk in ids.chunks(4096) {
        let found: Vec<String> = client.query(EXISTING_IDS_QUERY).bind(chunk).fetch_all().await?;
        out.extend(found.iter().filter_map(|s| Uuid::parse_str(s).ok()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::buckets;

    #[test]
    fn buckets_are_the_utc_hour_and_day_clickhouse_computes() {
        // 2024-02-03T04:05:06.789Z: toStartOfHour = 2024-02-03T04:00:00Z, toDate = 19756.
        let ts = 1_706_933_106_789;
        assert_eq!(buckets(ts), (1_706_932_800, 19_756));
        // The first millisecond of an hour and of a day, and the last before them.
        assert_eq!(buckets(1_706_932_800_000), (1_706_932_800, 19_756));
        assert_eq!(buckets(1_706_932_799_999), (1_706_929_200, 19_756));
        assert_eq!(buckets(1_706_918_400_000).1, 19_756);
        assert_eq!(buckets(1_706_918_399_999).1, 19_755);
        // Outside the types' ranges: clamped, never wrapped.
        assert_eq!(buckets(-1), (0, 0));
        assert_eq!(buckets(i64::MAX), (u32::MAX - u32::MAX % 3600, u16::MAX));
    }
}

//! A batch of profiles waiting to be written, and what a write did.

use std::collections::HashSet;
use std::time::Instant;

use super::record::ProfileRecord;
use super::SinkConfig;

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
    /// Abandoned write attempts of some of these profiles taken back out before writing them.
    pub taken_back: usize,
}

/// Profiles waiting to be written, each with a caller's tag (the worker tags records with
/// their Kafka partition, so a revoked partition's records can be dropped).
pub struct Batch<T = ()> {
    records: Vec<ProfileRecord>,
    tags: Vec<T>,
    rows: usize,
    bytes: usize,
    first_at: Option<Instant>,
    /// Distinct UTC days (partitions of the raw tables) the batch spans.
    days: HashSet<i64>,
}

impl<T> Default for Batch<T> {
    fn default() -> Self {
        Batch { records: Vec::new(), tags: Vec::new(), rows: 0, bytes: 0, first_at: None, days: HashSet::new() }
    }
}

/// The memory a record holds while it waits in a batch (what `batch_bytes` bounds): the names,
/// the flat/cum tables, and the stacks' arrays. Stacks dominate for real heap profiles (tens of thousands per profile).
pub fn record_bytes(rec: &ProfileRecord) -> usize {
    let ex = &rec.exploded;
    let names = ex.names.heap_bytes();
    let tables = (ex.flat.len() + ex.cum.len()) * 8 + ex.inline_marks.len();
    let stacks = ex.stacks.heap_bytes();
    names + tables + stacks
}

impl<T> Batch<T> {
    /// Adds a profile.
    pub fn push(&mut self, rec: ProfileRecord, tag: T) {
        self.rows += rec.function_rows();
        self.bytes += record_bytes(&rec);
        self.first_at.get_or_insert_with(Instant::now);
        self.days.insert(rec.ts_ms.div_euclid(86_400_000));
        self.records.push(rec);
        self.tags.push(tag);
    }

    /// Profiles in the batch.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// True when no profile is in the batch.
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
            && (self.rows >= cfg.batch_rows
                || self.bytes >= cfg.batch_bytes
                || self.days.len() >= cfg.max_days.max(1)
                || self.first_at.is_some_and(|t| t.elapsed() >= cfg.linger))
    }

    /// True when the batch is this many times over its row or byte budget (back-pressure).
    pub fn over(&self, cfg: &SinkConfig, factor: usize) -> bool {
        self.rows >= cfg.batch_rows.saturating_mul(factor)
            || self.bytes >= cfg.batch_bytes.saturating_mul(factor)
            || self.days.len() >= cfg.max_days.max(1)
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

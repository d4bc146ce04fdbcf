//! Backfill: enqueue objects that are already in a bucket, exactly as the trigger would.
//!
//! ListObjectsV2 pages (1,000 keys each, lexicographic order) are filtered on LastModified
//! (`since` inclusive, `until` exclusive) and size (zero-size objects are skipped, like the
//! trigger does), rate-limited with a token bucket, and handed to [`Ingestor::enqueue_objects`]
//! one page at a time. After every page is delivered the checkpoint records the last key of the
//! page for this (bucket, prefix, since, until); a rerun lists with `StartAfter` that key, so it
//! enqueues only objects whose keys sort after it (new objects under an ever-growing key space,
//! such as profefe's time-ordered xids, are picked up; `force` ignores the checkpoint and starts
//! over). A page that failed is not checkpointed: the rerun sends it again (at-least-once).
use std::collections::BTreeMap;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::handler::{HandlerError, Ingestor};
use pprofhouse_message::ObjectRef;

/// What to backfill.
#[derive(Clone, Debug)]
pub struct BackfillOptions {
    /// Bucket to list.
    pub bucket: String,
    /// Only keys with this prefix.
    pub prefix: Option<String>,
    /// LastModified >= since.
    pub since: Option<DateTime<Utc>>,
    /// LastModified < until.
    pub until: Option<DateTime<Utc>>,
    /// Objects per second; `None` or 0: unlimited.
    pub rate: Option<f64>,
    /// Checkpoint file; `None`: no checkpoint.
    pub checkpoint: Option<PathBuf>,
    /// Ignore (and then overwrite) the checkpoint.
    pub force: bool,
    /// Keys per ListObjectsV2 page (max 1000).
    pub page_size: i32,
    /// Show a progress bar (only drawn on a terminal).
    pub progress: bool,
}

impl BackfillOptions {
    /// Options for `bucket` with the defaults.
    pub fn new(bucket: impl Into<String>) -> Self {
        BackfillOptions {
            bucket: bucket.into(),
            prefix: None,
            since: None,
            until: None,
            rate: None,
            checkpoint: None,
            force: false,
            page_size: 1000,
            progress: false,
        }
    }

    /// The checkpoint entry id: bucket, prefix and time window.
    pub fn checkpoint_id(&self) -> String {
        let t = |t: &Option<DateTime<Utc>>| t.map(|t| t.to_rfc3339()).unwrap_or_default();
        format!("s3://{}/{}|since={}|until={}", self.bucket, self.prefix.as_deref().unwrap_or(""), t(&self.since), t(&self.until))
    }
}

/// What a backfill did.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct BackfillReport {
    /// Objects listed (after the checkpoint).
    pub listed: u64,
    /// Envelopes delivered.
    pub enqueued: u64,
    /// Dead letters delivered (no layout matched).
    pub dead_lettered: u64,
    /// Listed but outside the time window or zero-size.
    pub filtered: u64,
    /// The key the listing started after (from the checkpoint).
    pub resumed_after: Option<String>,
}

/// Backfill failed.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Listing the bucket failed.
    #[error("listing s3://{bucket}/{prefix} failed: {message}")]
    List {
        /// Bucket to list.
        bucket: String,
        /// Only keys with this prefix.
        prefix: String,
        /// The error.
        message: String,
    },
    /// Enqueuing a page failed.
    #[error(transparent)]
    Enqueue(#[from] HandlerError),
    /// Reading or writing the checkpoint failed.
    #[error("checkpoint {path}: {message}")]
    Checkpoint {
        /// The checkpoint file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
}

/// The checkpoint file: one entry per (bucket, prefix, window).
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Checkpoint {
    /// File format version.
    pub version: u32,
    /// Per listing (bucket, prefix, window): how far it got.
    #[serde(default)]
    pub entries: BTreeMap<String, CheckpointEntry>,
}

/// How far one listing got.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct CheckpointEntry {
    /// The last key whose page was delivered.
    pub last_key: String,
    /// Objects enqueued under this entry (all runs).
    pub enqueued: u64,
    /// When it was written.
    pub updated_at: DateTime<Utc>,
}

impl Checkpoint {
    /// Read the file; a missing file is an empty checkpoint.
    pub fn load(path: &Path) -> Result<Self, BackfillError> {
        match std::fs::read(path) {
            Ok(b) => serde_json::from_slice(&b).map_err(|e| BackfillError::Checkpoint { path: path.to_path_buf(), message: e.to_string() }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Checkpoint { version: 1, entries: BTreeMap::new() }),
            Err(e) => Err(BackfillError::Checkpoint { path: path.to_path_buf(), message: e.to_string() }),
        }
    }

    /// Write atomically (temp file + rename).
    pub fn save(&self, path: &Path) -> Result<(), BackfillError> {
        let err = |e: std::io::Error| BackfillError::Checkpoint { path: path.to_path_buf(), message: e.to_string() };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(err)?;
        }
        let tmp = path.with_extension(format!("tmp{}", std::process::id()));
        std::fs::write(&tmp, serde_json::to_vec_pretty(self).expect("checkpoint serializes")).map_err(err)?;
        std::fs::rename(&tmp, path).map_err(err)
    }
}

/// The default checkpoint path: `$PPROFHOUSE_CACHE/backfill-checkpoint.json`
/// (`~/.cache/pprofhouse/...`).
pub fn default_checkpoint_path() -> PathBuf {
    let cache = std::env::var_os("PPROFHOUSE_CACHE").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("."));
        home.join(".cache/pprofhouse")
    });
    cache.join("backfill-checkpoint.json")
}

/// A token bucket: `rate` tokens per second, burst of one second's worth.
pub struct RateLimiter {
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimiter {
    /// Options for `bucket` with the defaults.
    pub fn new(rate: f64) -> Self {
        let burst = rate.max(1.0);
        RateLimiter { rate, burst, tokens: burst, last: Instant::now() }
    }

    /// Wait until `n` tokens are available and take them.
    pub async fn acquire(&mut self, n: u64) {
        let mut need = n as f64;
        while need > 0.0 {
            let now = Instant::now();
            self.tokens = (self.tokens + now.duration_since(self.last).as_secs_f64() * self.rate).min(self.burst);
            self.last = now;
            let take = need.min(self.tokens.floor());
            if take >= 1.0 {
                self.tokens -= take;
                need -= take;
                continue;
            }
            let wait = (1.0 - self.tokens) / self.rate;
            tokio::time::sleep(Duration::from_secs_f64(wait.max(0.001))).await;
        }
    }
}

/// List the bucket and enqueue every matching object; see the module docs.
pub async fn backfill(s3: &aws_sdk_s3::Client, ingestor: &Ingestor, opts: &BackfillOptions) -> Result<BackfillReport, BackfillError> {
    let id = opts.checkpoint_id();
    let mut checkpoint = match &opts.checkpoint {
        Some(p) => Checkpoint::load(p)?,
        None => Checkpoint::default(),
    };
    checkpoint.version = 1;
    let start_after = if opts.force { None } else { checkpoint.entries.get(&id).map(|e| e.last_key.clone()) };
    let base = if opts.force { 0 } else { checkpoint.entries.get(&id).map(|e| e.enqueued).unwrap_or(0) };
    let mut report = BackfillReport { resumed_after: start_after.clone(), ..Default::default() };
    if let Some(k) = &start_after {
        tracing::info!(checkpoint = %id, after = %k, "resuming after the checkpoint");
    }

    let bar = if opts.progress && std::io::stderr().is_terminal() {
        let b = indicatif::ProgressBar::new_spinner();
        b.set_style(
            indicatif::ProgressStyle::with_template("{spinner} {elapsed_precise} {pos} enqueued ({per_sec}) {msg}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_spinner()),
        );
        b.enable_steady_tick(Duration::from_millis(200));
        b
    } else {
        indicatif::ProgressBar::hidden()
    };
    let mut limiter = opts.rate.filter(|r| *r > 0.0).map(RateLimiter::new);

    let mut req = s3.list_objects_v2().bucket(&opts.bucket).max_keys(opts.page_size.clamp(1, 1000));
    if let Some(p) = &opts.prefix {
        req = req.prefix(p);
    }
    if let Some(k) = &start_after {
        req = req.start_after(k);
    }
    let mut pages = req.into_paginator().send();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| BackfillError::List {
            bucket: opts.bucket.clone(),
            prefix: opts.prefix.clone().unwrap_or_default(),
            message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
        })?;
        let contents = page.contents.unwrap_or_default();
        let Some(last_key) = contents.last().and_then(|o| o.key.clone()) else {
            continue;
        };
        report.listed += contents.len() as u64;
        let mut objects = Vec::new();
        for o in contents {
            let (Some(key), Some(size)) = (o.key, o.size) else {
                continue;
            };
            let modified = o.last_modified.and_then(|t| DateTime::<Utc>::from_timestamp(t.secs(), t.subsec_nanos()));
            let in_window = match modified {
                Some(m) => opts.since.is_none_or(|s| m >= s) && opts.until.is_none_or(|u| m < u),
                None => opts.since.is_none() && opts.until.is_none(),
            };
            if size <= 0 || !in_window {
                report.filtered += 1;
                continue;
            }
            let mut obj = ObjectRef::new(&opts.bucket, key, size as u64);
            obj.etag = o.e_tag.map(|e| e.trim_matches('"').to_string()).filter(|e| !e.is_empty());
            obj.event_time = modified;
            obj.event_name = Some("Backfill".to_string());
            obj.source = Some(ingestor.source().to_string());
            objects.push(obj);
        }
        if let Some(l) = limiter.as_mut() {
            l.acquire(objects.len() as u64).await;
        }
        if !objects.is_empty() {
            let r = ingestor.enqueue_objects(objects).await?;
            report.enqueued += r.enqueued as u64;
            report.dead_lettered += r.dead_lettered as u64;
            bar.inc((r.enqueued + r.dead_lettered) as u64);
            bar.set_message(last_key.clone());
        }
        if let Some(path) = &opts.checkpoint {
            let enqueued = base + report.enqueued + report.dead_lettered;
            let entry = CheckpointEntry { last_key: last_key.clone(), enqueued, updated_at: Utc::now() };
            checkpoint.entries.insert(id.clone(), entry);
            checkpoint.save(path)?;
        }
    }
    bar.finish_and_clear();
    Ok(report)
}

/// Parse a time for `--since`/`--until`: RFC 3339, a date `YYYY-MM-DD` (UTC midnight), unix
/// seconds, or a duration ago (`90s`, `15m`, `24h`, `7d`).
pub fn parse_time_arg(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Ok(t.with_timezone(&Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d") {
        return Ok(d.and_hms_opt(0, 0, 0).expect("midnight").and_utc());
    }
    if let Ok(n) = s.parse::<i64>() {
        return DateTime::from_timestamp(n, 0).ok_or_else(|| format!("{s}: out of range"));
    }
    let (num, unit) = s.split_at(s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len()));
    let n: i64 = num.parse().map_err(|_| format!("{s:?}: want RFC 3339, YYYY-MM-DD, unix seconds or a duration like 24h"))?;
    let secs = match unit {
        "s" => n,
        "m" => n * 60,
        "h" => n * 3600,
        "d" => n * 86400,
        _ => return Err(format!("{s:?}: unknown unit {unit:?} (s, m, h, d)")),
    };
    Ok(Utc::now() - chrono::Duration::seconds(secs))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_args() {
        assert_eq!(parse_time_arg("2024-01-02").unwrap().to_rfc3339(), "2024-01-02T00:00:00+00:00");
        assert_eq!(parse_time_arg("2024-01-02T03:04:05+02:00").unwrap().to_rfc3339(), "2024-01-02T01:04:05+00:00");
        assert_eq!(parse_time_arg("1700000000").unwrap().timestamp(), 1_700_000_000);
        let d = Utc::now() - parse_time_arg("2h").unwrap();
        assert!((d.num_seconds() - 7200).abs() < 5);
        assert!(parse_time_arg("2w").is_err());
        assert!(parse_time_arg("yesterday").is_err());
    }

    #[test]
    fn checkpoint_roundtrip() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("sub/cp.json");
        let mut cp = Checkpoint::load(&p).unwrap();
        assert!(cp.entries.is_empty());
        cp.entries.insert("x".into(), CheckpointEntry { last_key: "k".into(), enqueued: 3, updated_at: Utc::now() });
        cp.save(&p).unwrap();
        assert_eq!(Checkpoint::load(&p).unwrap().entries["x"].last_key, "k");
        std::fs::write(&p, "garbage").unwrap();
        assert!(Checkpoint::load(&p).is_err());
    }

    #[tokio::test]
    async fn token_bucket_paces() {
        let mut l = RateLimiter::new(100.0);
        let t = Instant::now();
        l.acquire(100).await; // the burst
        l.acquire(50).await; // ~0.5 s more
        let e = t.elapsed();
        assert!(e >= Duration::from_millis(400) && e < Duration::from_secs(3), "{e:?}");
    }

    #[test]
    fn checkpoint_ids_differ_by_window() {
        let mut a = BackfillOptions::new("b");
        let id1 = a.checkpoint_id();
        a.prefix = Some("P0.".into());
        let id2 = a.checkpoint_id();
        a.since = Some(parse_time_arg("2024-01-01").unwrap());
        assert_ne!(id1, id2);
        assert_ne!(id2, a.checkpoint_id());
    }
}

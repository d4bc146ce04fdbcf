//! Processing one message: parse it, and for each object it names fetch (the announced
//! version), resolve metadata, decode and explode (on the blocking pool) into a
//! [`ProfileRecord`], or a [`Failure`] for the dead-letter topic.

use std::sync::Arc;

use bytes::Bytes;
use pprofhouse_ingest::{parse_message, ObjectRef, Resolution, Resolver};
use pprofhouse_message::ProfileMeta;
use pprofhouse_sql::sink::{KnownStacks, Origin, ProfileRecord, SourceRef};
use pprofhouse_transform::pprof::{self, Limits};
use pprofhouse_transform::{explode_with, ExplodeOptions};
use tokio::sync::watch;

use super::fetch::{fetch, FetchError, Wanted};
use super::memory::{Charge, WORKING_SET_PER_DECODED_BYTE};
use super::metrics::Metrics;
use super::retry::{Failure, Retried, RetryPolicy};

/// What the processing of a message needs.
pub struct Processor {
    /// S3 client.
    pub s3: aws_sdk_s3::Client,
    /// Key layouts.
    pub resolver: Resolver,
    /// Decoding limits.
    pub limits: Limits,
    /// Largest object fetched.
    pub max_object_bytes: u64,
    /// Keep stacks (flame graphs).
    pub stacks: bool,
    /// The stacks the sink has stored recently: their frames are left out of records.
    pub known_stacks: Arc<KnownStacks>,
    /// Retries of transient S3 failures.
    pub retry: RetryPolicy,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// The in-flight memory budget, in KiB of decoded profile: a profile waits for its share
    /// before it is inflated and decoded.
    pub budget: Arc<tokio::sync::Semaphore>,
    /// The budget's size in KiB (one profile larger than the whole budget runs alone).
    pub budget_kib: u32,
    /// Profiles being inflated, decoded and exploded at once: one per core. More would only
    /// multiply the working sets held in memory, not the speed.
    pub cpu: Arc<tokio::sync::Semaphore>,
    /// Retention windows: a profile older than all of them would never be visible.
    pub retention: pprofhouse_sql::Retention,
    /// Decode buffers kept from one profile for the next.
    pub decode_buffers: Arc<DecodePool>,
}

/// The decode buffers finished profiles leave behind ([`pprof::DecodeBuffers`]), for the next
/// profiles to decode into, within `worker.decode_pool_bytes` in all (infra/README.md, "Worker
/// memory": a production-size profile of 2.5 MB decoded leaves buffers of 13 MB capacity, of
/// which it wrote 8.5 MB).
///
/// Decoding into memory a profile already wrote skips the page faults of fresh buffers: a third
/// of inflating and decoding a production-size profile under the worker's allocator settings,
/// which give every large block back to the system when it is freed.
#[derive(Debug)]
pub struct DecodePool {
    sets: std::sync::Mutex<Vec<pprof::DecodeBuffers>>,
    /// The most it keeps, in bytes.
    budget: usize,
}

impl DecodePool {
    /// A pool keeping at most `budget` bytes of buffers.
    pub fn new(budget: u64) -> Self {
        DecodePool { sets: Default::default(), budget: usize::try_from(budget).unwrap_or(usize::MAX) }
    }

    /// The largest kept set of buffers (a small profile decoded into it costs nothing more; a
    /// large one into a small set faults in the rest), or empty ones.
    fn take(&self) -> pprof::DecodeBuffers {
        let Ok(mut sets) = self.sets.lock() else { return Default::default() };
        let largest = (0..sets.len()).max_by_key(|&i| sets[i].heap_bytes());
        largest.map(|i| sets.swap_remove(i)).unwrap_or_default()
    }

    /// Keeps `bufs` if they fit beside the kept ones; frees them otherwise.
    fn give(&self, bufs: pprof::DecodeBuffers) {
        if let Ok(mut sets) = self.sets.lock() {
            let held: usize = sets.iter().map(|b| b.heap_bytes()).sum();
            if held + bufs.heap_bytes() <= self.budget {
                sets.push(bufs);
            }
        }
    }
}

/// What one message produced.
pub enum Handled {
    /// Records for the batch and failures for the dead-letter topic (`skipped`: the message
    /// named no object to process, e.g. a delete event).
    Done {
        /// The profiles, with their object (for a later dead letter) and event time.
        records: Vec<(ProfileRecord, ObjectRef)>,
        /// Objects that failed for good.
        dead: Vec<(ObjectRef, Failure)>,
        /// Nothing to do.
        skipped: bool,
        /// The records' share of the in-flight memory ledger, released once they are in the
        /// batch.
        charge: Charge,
    },
    /// Stop was asked for while a transient failure was being retried: do not commit.
    Interrupted,
}

impl Processor {
    /// Processes one message; `charge` is its share of the in-flight memory ledger, kept
    /// up to date with what it holds.
    pub async fn handle(&self, payload: &[u8], stop: &watch::Receiver<bool>, mut charge: Charge) -> Handled {
        let objects = match parse_message(payload) {
            Ok(o) => o,
            Err(e) => {
                return Handled::Done {
                    records: vec![],
                    dead: vec![(ObjectRef::new("", "", 0), Failure::BadMessage(e.to_string()))],
                    skipped: false,
                    charge,
                }
            }
        };
        if objects.is_empty() {
            return Handled::Done { records: vec![], dead: vec![], skipped: true, charge };
        }
        let mut records = Vec::new();
        let mut dead = Vec::new();
        let mut held = 0;
        for obj in objects {
            match self.object(&obj, stop, &mut charge, held).await {
                Ok(Some(rec)) => {
                    held += pprofhouse_sql::sink::record_bytes(&rec) as u64;
                    charge.set(held);
                    records.push((rec, obj))
                }
                Ok(None) => return Handled::Interrupted,
                Err(f) => dead.push((obj, f)),
            }
        }
        charge.set(held);
        Handled::Done { records, dead, skipped: false, charge }
    }

    /// One object → a record; `Ok(None)` when interrupted. `held`: what the message's earlier
    /// records hold.
    async fn object(
        &self,
        obj: &ObjectRef,
        stop: &watch::Receiver<bool>,
        charge: &mut Charge,
        held: u64,
    ) -> Result<Option<ProfileRecord>, Failure> {
        let limit = self.max_object_bytes;
        if obj.size > limit {
            return Err(Failure::OverLimit(format!("object is {} bytes, over the limit of {limit} bytes (max_object_bytes)", obj.size)));
        }
        let wanted = Wanted { bucket: &obj.bucket, key: &obj.key, version_id: obj.version_id.as_deref(), etag: obj.etag.as_deref() };
        let fetched =
            match self.retry.run("s3_fetch", &self.metrics, stop, FetchError::is_transient, || fetch(&self.s3, &wanted, limit)).await {
                Ok(f) => f,
                Err(Retried::Interrupted) => return Ok(None),
                Err(Retried::Exhausted(e)) => return Err(Failure::Exhausted(e.to_string())),
                Err(Retried::Permanent(e)) => {
                    return Err(match e {
                        FetchError::NotFound { .. } => Failure::NotFound(e.to_string()),
                        FetchError::Changed { .. } => Failure::Changed(e.to_string()),
                        FetchError::TooLarge { .. } => Failure::OverLimit(e.to_string()),
                        FetchError::Refused { .. } | FetchError::Transient(_) => Failure::Refused(e.to_string()),
                    })
                }
            };
        self.metrics.fetched_bytes.inc_by(fetched.data.len() as u64);
        let meta: ProfileMeta = match self.resolver.resolve_object(obj, Some(&fetched.metadata)) {
            Resolution::Matched(m) => m,
            Resolution::Unmatched(reason) => return Err(Failure::Unmatched(reason)),
        };
        let source = SourceRef {
            bucket: obj.bucket.clone(),
            key: obj.key.clone(),
            etag: obj.etag.clone().or(fetched.etag).unwrap_or_default(),
            version_id: obj.version_id.clone().or(fetched.version_id),
            size: fetched.data.len() as u64,
        };
        // Memory: wait for this profile's share of the budget (its decoded size, read from the
        // gzip trailer before inflating), so concurrency never multiplies the largest profile.
        // Until it has a core it holds only the fetched object; its working set is charged once
        // it is decoded, so profiles waiting for a core do not fill the ledger and keep the
        // loop from fetching the next ones. (Alone, this measured no change in profiles/s.)
        let decoded = decoded_size_hint(&fetched.data).min(self.limits.max_decompressed_bytes as u64);
        charge.set(held + fetched.data.len() as u64);
        let kib = (decoded / 1024).clamp(1, self.budget_kib as u64) as u32;
        let mut stopped = stop.clone();
        let permit = tokio::select! {
            p = self.budget.clone().acquire_many_owned(kib) => p.map_err(|e| Failure::Internal(e.to_string()))?,
            _ = stopped.wait_for(|s| *s) => return Ok(None),
        };
        let core = tokio::select! {
            p = self.cpu.clone().acquire_owned() => p.map_err(|e| Failure::Internal(e.to_string()))?,
            _ = stopped.wait_for(|s| *s) => return Ok(None),
        };
        charge.set(held + fetched.data.len() as u64 + decoded * WORKING_SET_PER_DECODED_BYTE);
        // Inflating, decoding and exploding are CPU work: off the async threads, so profiles
        // are exploded on every core while the next objects download.
        let (data, limits, stacks, known, pool) =
            (fetched.data, self.limits, self.stacks, self.known_stacks.clone(), self.decode_buffers.clone());
        let done = tokio::task::spawn_blocking(move || transform(data, &limits, stacks, &known, &pool, meta, &source)).await;
        drop((core, permit));
        let record = done.map_err(|e| Failure::Internal(format!("decoding task failed: {e}")))??;
        // The clock decides only whether storing is useful, never what is stored or its id.
        if self.retention.all_expired(record.ts_ms, chrono::Utc::now().timestamp_millis()) {
            return Err(Failure::Expired(format!(
                "profile time {} is older than every retention window (longest: {} days); nothing of it would be visible",
                record.meta.created_at.to_rfc3339(),
                self.retention.daily_days.max(self.retention.hourly_days).max(self.retention.raw_days)
            )));
        }
        Ok(Some(record))
    }
}

/// The decoded size of an object: gzip's ISIZE trailer (the size mod 2^32 of the last member;
/// a hint, never trusted for anything but scheduling) or the raw length.
fn decoded_size_hint(data: &[u8]) -> u64 {
    if pprof::is_gzip(data) && data.len() >= 18 {
        let t = &data[data.len() - 4..];
        (u32::from_le_bytes([t[0], t[1], t[2], t[3]]) as u64).max(data.len() as u64)
    } else {
        data.len() as u64
    }
}

/// Inflates, decodes (into buffers from `pool`) and explodes one fetched object; the frames of
/// stacks `known` are left out.
fn transform(
    data: Bytes,
    limits: &Limits,
    stacks: bool,
    known: &KnownStacks,
    pool: &DecodePool,
    meta: ProfileMeta,
    source: &SourceRef,
) -> Result<ProfileRecord, Failure> {
    let mut bufs = pool.take();
    let decoded = pprof::decode_reusing(data, limits, &mut bufs);
    let profile = match decoded {
        Ok(p) => p,
        Err(e) => {
            pool.give(bufs);
            return Err(match e {
                e @ (pprof::DecodeError::OverLimit { .. } | pprof::DecodeError::TooLarge { .. }) => Failure::OverLimit(e.to_string()),
                e => Failure::Decode(e),
            });
        }
    };
    let opts = ExplodeOptions { stacks, inline_marks: false, ..Default::default() };
    let exploded = known.unstored(|wanted| explode_with(&profile, opts, wanted));
    profile.recycle(&mut bufs);
    pool.give(bufs);
    Ok(ProfileRecord::new(meta, Origin::Object(source), exploded))
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    /// Buffers of a decoded profile, as a finished profile leaves them.
    fn buffers(gz: &'static [u8]) -> pprof::DecodeBuffers {
        let mut bufs = pprof::DecodeBuffers::default();
        pprof::decode_reusing(Bytes::from_static(gz), &Limits::default(), &mut bufs).unwrap().recycle(&mut bufs);
        bufs
    }

    #[test]
    fn the_decode_pool_keeps_sets_within_its_budget_and_hands_out_the_largest() {
        let small = buffers(include_bytes!("../../tests/fixtures/pprof-names/go-generics.pb.gz"));
        let large = buffers(include_bytes!("../../tests/fixtures/pprof-names/cpp-mangled.pb.gz"));
        let (s, l) = (small.heap_bytes(), large.heap_bytes());
        assert!(0 < s && s < l, "{s} {l}");
        // Room for both: both kept, the larger handed out first, then the other, then none.
        let pool = DecodePool::new((s + l) as u64);
        pool.give(small);
        pool.give(large);
        assert_eq!(pool.take().heap_bytes(), l);
        assert_eq!(pool.take().heap_bytes(), s);
        assert_eq!(pool.take().heap_bytes(), 0);
        // Room for the larger alone: a set that does not fit beside the kept ones is freed.
        let pool = DecodePool::new(l as u64);
        pool.give(buffers(include_bytes!("../../tests/fixtures/pprof-names/cpp-mangled.pb.gz")));
        pool.give(buffers(include_bytes!("../../tests/fixtures/pprof-names/go-generics.pb.gz")));
        assert_eq!(pool.take().heap_bytes(), l);
        assert_eq!(pool.take().heap_bytes(), 0);
        // A budget of 0 keeps nothing.
        let pool = DecodePool::new(0);
        pool.give(buffers(include_bytes!("../../tests/fixtures/pprof-names/go-generics.pb.gz")));
        assert_eq!(pool.take().heap_bytes(), 0);
    }

    #[test]
    fn the_gzip_trailer_gives_the_decoded_size() {
        let raw = vec![7u8; 100_000];
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        gz.write_all(&raw).unwrap();
        let gz = gz.finish().unwrap();
        assert!(gz.len() < 1000);
        assert_eq!(decoded_size_hint(&gz), 100_000);
        assert_eq!(decoded_size_hint(&raw), 100_000);
    }
}

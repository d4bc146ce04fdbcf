//! Processing one message: parse it, and for each object it names fetch (the announced
//! version), resolve metadata, decode and explode (on the blocking pool) into a
//! [`ProfileRecord`], or a [`Failure`] for the dead-letter topic.

use std::sync::Arc;

use bytes::Bytes;
use pprofhouse_ingest::{parse_message, ObjectRef, Resolution, Resolver};
use pprofhouse_message::ProfileMeta;
use pprofhouse_sql::sink::{Origin, ProfileRecord, SourceRef};
use pprofhouse_transform::pprof::{self, Limits};
use pprofhouse_transform::{explode, ExplodeOptions};
use tokio::sync::watch;

use super::fetch::{fetch, FetchError, Wanted};
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
    /// Retries of transient S3 failures.
    pub retry: RetryPolicy,
    /// Metrics.
    pub metrics: Arc<Metrics>,
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
    },
    /// Stop was asked for while a transient failure was being retried: do not commit.
    Interrupted,
}

impl Processor {
    /// Processes one message.
    pub async fn handle(&self, payload: &[u8], stop: &watch::Receiver<bool>) -> Handled {
        let objects = match parse_message(payload) {
            Ok(o) => o,
            Err(e) => {
                return Handled::Done {
                    records: vec![],
                    dead: vec![(ObjectRef::new("", "", 0), Failure::BadMessage(e.to_string()))],
                    skipped: false,
                }
            }
        };
        if objects.is_empty() {
            return Handled::Done { records: vec![], dead: vec![], skipped: true };
        }
        let mut records = Vec::new();
        let mut dead = Vec::new();
        for obj in objects {
            match self.object(&obj, stop).await {
                Ok(Some(rec)) => records.push((rec, obj)),
                Ok(None) => return Handled::Interrupted,
                Err(f) => dead.push((obj, f)),
            }
        }
        Handled::Done { records, dead, skipped: false }
    }

    /// One object → a record; `Ok(None)` when interrupted.
    async fn object(&self, obj: &ObjectRef, stop: &watch::Receiver<bool>) -> Result<Option<ProfileRecord>, Failure> {
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
        // Inflating, decoding and exploding are CPU work: off the async threads, so profiles
        // are exploded on every core while the next objects download.
        let (data, limits, stacks) = (fetched.data, self.limits, self.stacks);
        tokio::task::spawn_blocking(move || transform(data, &limits, stacks, meta, &source))
            .await
            .map_err(|e| Failure::Internal(format!("decoding task failed: {e}")))?
            .map(Some)
    }
}

/// Decode and explode one fetched object.
fn transform(data: Bytes, limits: &Limits, stacks: bool, meta: ProfileMeta, source: &SourceRef) -> Result<ProfileRecord, Failure> {
    let profile = pprof::decode(data, limits)?;
    let exploded = explode(&profile, ExplodeOptions { stacks, inline_marks: false, ..Default::default() });
    Ok(ProfileRecord::new(meta, Origin::Object(source), exploded))
}

//! The messages on the profiles topic, and the reader that accepts every form they come in.
//!
//! * **Envelope** (written by the trigger and backfill): one JSON object per message,
//!   `{"v":1,"bucket":..,"key":..,"size":..,"etag":..,"version_id":..,"sequencer":..,
//!   "event_time":..,"event_name":..,"source":..,"meta":{"service":..,"type":..,"labels":{..},
//!   "created_at":..,"layout":..}}`. Keys are decoded (the real S3 key). Readers ignore fields
//!   they do not know; a bigger `v` is rejected so an old worker never misreads a new format.
//! * **Raw S3 event** `{"Records":[...]}` as S3-compatible stores publish it straight to Kafka
//!   (MinIO's Kafka notification target; also the AWS S3Event shape). Keys are URL-encoded
//!   (`+` for space) and are decoded here; MinIO event names carry an `s3:` prefix. The metadata
//!   is absent: resolve it with [`crate::layout::Resolver::resolve_object`].
//!
//! [`parse_message`] returns the ObjectCreated, non-empty objects of a message in either form.
use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::keys::decode_event_key;
use crate::meta::ProfileMeta;

/// The envelope version this crate writes (and the highest it reads).
pub const ENVELOPE_VERSION: u32 = 1;

/// One S3 object to process.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObjectRef {
    /// Bucket name.
    pub bucket: String,
    /// The object key, decoded (as stored in S3).
    pub key: String,
    /// Object size in bytes.
    pub size: u64,
    /// ETag without quotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub etag: Option<String>,
    /// Version id, in versioned buckets.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// S3's per-key ordering token (hex); absent for backfilled objects.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sequencer: Option<String>,
    /// Event time, or the object's LastModified for backfills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_time: Option<DateTime<Utc>>,
    /// e.g. `ObjectCreated:Put`; `Backfill` for backfills.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_name: Option<String>,
    /// Who enqueued it: `lambda`, `ingest-event`, `backfill`, `raw-event`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    /// User metadata carried by the event (MinIO's `userMetadata`); names as given.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub user_metadata: BTreeMap<String, String>,
    /// Profile metadata; always present in envelopes written by this crate (unmatched objects go
    /// to the dead-letter topic instead), absent in raw events.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta: Option<ProfileMeta>,
}

impl ObjectRef {
    /// A minimal reference (tests, tools).
    pub fn new(bucket: impl Into<String>, key: impl Into<String>, size: u64) -> Self {
        ObjectRef {
            bucket: bucket.into(),
            key: key.into(),
            size,
            etag: None,
            version_id: None,
            sequencer: None,
            event_time: None,
            event_name: None,
            source: None,
            user_metadata: BTreeMap::new(),
            meta: None,
        }
    }

    /// The Kafka message key: `bucket/key`, so one object always maps to one partition.
    pub fn message_key(&self) -> String {
        format!("{}/{}", self.bucket, self.key)
    }

    /// Serialize as a versioned envelope.
    pub fn to_envelope_json(&self) -> Vec<u8> {
        #[derive(Serialize)]
        struct Out<'a> {
            v: u32,
            #[serde(flatten)]
            obj: &'a ObjectRef,
        }
        serde_json::to_vec(&Out { v: ENVELOPE_VERSION, obj: self }).expect("ObjectRef serializes")
    }
}

/// Why a message could not be read.
#[derive(Debug, thiserror::Error)]
pub enum EnvelopeError {
    /// The payload is not JSON.
    #[error("message is not JSON: {0}")]
    NotJson(#[source] serde_json::Error),
    /// An envelope newer than this build reads.
    #[error("unsupported envelope version {0} (this build reads up to {ENVELOPE_VERSION})")]
    UnsupportedVersion(u64),
    /// An envelope whose fields do not parse.
    #[error("invalid envelope: {0}")]
    InvalidEnvelope(#[source] serde_json::Error),
    /// An S3 event whose fields do not parse.
    #[error("invalid S3 event: {0}")]
    InvalidEvent(String),
    /// JSON of another shape.
    #[error("message is neither an envelope (`v`) nor an S3 event (`Records`)")]
    UnknownShape,
}

/// Read a profiles-topic message in either form (see the module docs). Returns the objects to
/// process: for raw events only ObjectCreated records with a non-zero size (others are skipped
/// with a debug log), for envelopes the one object.
pub fn parse_message(bytes: &[u8]) -> Result<Vec<ObjectRef>, EnvelopeError> {
    let value: serde_json::Value = serde_json::from_slice(bytes).map_err(EnvelopeError::NotJson)?;
    let obj = value.as_object().ok_or(EnvelopeError::UnknownShape)?;
    if let Some(v) = obj.get("v") {
        let v = v.as_u64().ok_or(EnvelopeError::UnknownShape)?;
        if v == 0 || v > ENVELOPE_VERSION as u64 {
            return Err(EnvelopeError::UnsupportedVersion(v));
        }
        let o: ObjectRef = serde_json::from_value(value).map_err(EnvelopeError::InvalidEnvelope)?;
        return Ok(vec![o]);
    }
    if obj.contains_key("Records") {
        let ev: RawEvent = serde_json::from_value(value).map_err(|e| EnvelopeError::InvalidEvent(e.to_string()))?;
        let (objects, skipped) = objects_from_records(ev.records.into_iter().map(EventRecord::from), "raw-event");
        for s in skipped {
            tracing::debug!(key = %s.key, reason = %s.reason, "raw event record skipped");
        }
        return Ok(objects);
    }
    Err(EnvelopeError::UnknownShape)
}

// ---------------------------------------------------------------------------------------------
// S3 event records (the common part of the Lambda handler and the raw reader)

/// The fields of an S3 event record this crate uses, from either the typed AWS event or the
/// lenient raw form.
#[derive(Clone, Debug, Default)]
pub struct EventRecord {
    /// Event name, e.g. `ObjectCreated:Put` (MinIO: `s3:ObjectCreated:Put`).
    pub event_name: Option<String>,
    /// Event time.
    pub event_time: Option<DateTime<Utc>>,
    /// Bucket name.
    pub bucket: Option<String>,
    /// URL-encoded, as in the event.
    pub key: Option<String>,
    /// Object size in bytes.
    pub size: Option<i64>,
    /// ETag (possibly quoted).
    pub etag: Option<String>,
    /// Version id, in versioned buckets.
    pub version_id: Option<String>,
    /// S3's per-key ordering token.
    pub sequencer: Option<String>,
    /// MinIO's `userMetadata`.
    pub user_metadata: BTreeMap<String, String>,
}

/// A record that was not turned into an object, and why.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The key as in the event.
    pub key: String,
    /// Why it was skipped.
    pub reason: String,
}

/// Whether an event name is an object creation (`ObjectCreated:Put`, MinIO's
/// `s3:ObjectCreated:CompleteMultipartUpload`, ...).
pub fn is_object_created(event_name: &str) -> bool {
    event_name.strip_prefix("s3:").unwrap_or(event_name).starts_with("ObjectCreated:")
}

/// Turn records into objects: skips non-create events, zero-size objects and records without a
/// bucket or key (each with a reason); decodes keys. A key that does not decode is kept
/// undecoded in a [`Skipped`] entry with `reason` starting with `undecodable key` — callers that
/// must not lose it (the Lambda handler) dead-letter it.
pub fn objects_from_records(records: impl IntoIterator<Item = EventRecord>, source: &str) -> (Vec<ObjectRef>, Vec<Skipped>) {
    let mut objects = Vec::new();
    let mut skipped = Vec::new();
    for r in records {
        let raw_key = r.key.clone().unwrap_or_default();
        let name = r.event_name.clone().unwrap_or_default();
        if !is_object_created(&name) {
            skipped.push(Skipped { key: raw_key, reason: format!("not an ObjectCreated event ({name:?})") });
            continue;
        }
        let (Some(bucket), Some(_)) = (r.bucket.clone(), r.key.as_ref()) else {
            skipped.push(Skipped { key: raw_key, reason: "record has no bucket or key".into() });
            continue;
        };
        let size = match r.size {
            Some(n) if n > 0 => n,
            Some(_) => {
                skipped.push(Skipped { key: raw_key, reason: "zero-size object".into() });
                continue;
            }
            None => {
                skipped.push(Skipped { key: raw_key, reason: "no object size in the event".into() });
                continue;
            }
        };
        let key = match decode_event_key(&raw_key) {
            Ok(k) => k,
            Err(e) => {
                skipped.push(Skipped { key: raw_key, reason: format!("undecodable key: {e}") });
                continue;
            }
        };
        objects.push(ObjectRef {
            bucket,
            key,
            size: size as u64,
            etag: r.etag.map(|e| e.trim_matches('"').to_string()).filter(|e| !e.is_empty()),
            version_id: r.version_id.filter(|v| !v.is_empty() && v != "null"),
            sequencer: r.sequencer.filter(|s| !s.is_empty()),
            event_time: r.event_time,
            event_name: Some(name.strip_prefix("s3:").unwrap_or(&name).to_string()),
            source: Some(source.to_string()),
            user_metadata: r.user_metadata,
            meta: None,
        });
    }
    (objects, skipped)
}

impl From<aws_lambda_events::s3::S3EventRecord> for EventRecord {
    fn from(r: aws_lambda_events::s3::S3EventRecord) -> Self {
        EventRecord {
            event_name: r.event_name,
            event_time: Some(r.event_time),
            bucket: r.s3.bucket.name,
            key: r.s3.object.key,
            size: r.s3.object.size,
            etag: r.s3.object.e_tag,
            version_id: r.s3.object.version_id,
            sequencer: r.s3.object.sequencer,
            user_metadata: BTreeMap::new(),
        }
    }
}

/// Lenient S3 event (AWS or MinIO): every field optional, MinIO's `userMetadata` kept.
#[derive(Deserialize)]
struct RawEvent {
    #[serde(rename = "Records", default)]
    records: Vec<RawRecord>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawRecord {
    #[serde(default)]
    event_name: Option<String>,
    #[serde(default, deserialize_with = "lenient_time")]
    event_time: Option<DateTime<Utc>>,
    #[serde(default)]
    s3: Option<RawEntity>,
}

#[derive(Deserialize)]
struct RawEntity {
    #[serde(default)]
    bucket: Option<RawBucket>,
    #[serde(default)]
    object: Option<RawObject>,
}

#[derive(Deserialize)]
struct RawBucket {
    #[serde(default)]
    name: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawObject {
    #[serde(default)]
    key: Option<String>,
    #[serde(default)]
    size: Option<i64>,
    #[serde(default, alias = "etag")]
    e_tag: Option<String>,
    #[serde(default)]
    version_id: Option<String>,
    #[serde(default)]
    sequencer: Option<String>,
    #[serde(default)]
    user_metadata: Option<BTreeMap<String, String>>,
}

fn lenient_time<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<DateTime<Utc>>, D::Error> {
    let s: Option<String> = Option::deserialize(d)?;
    Ok(s.and_then(|s| DateTime::parse_from_rfc3339(&s).ok()).map(|t| t.with_timezone(&Utc)))
}

impl From<RawRecord> for EventRecord {
    fn from(r: RawRecord) -> Self {
        let (bucket, object) = match r.s3 {
            Some(e) => (e.bucket.and_then(|b| b.name), e.object),
            None => (None, None),
        };
        let mut rec = EventRecord { event_name: r.event_name, event_time: r.event_time, bucket, ..Default::default() };
        if let Some(o) = object {
            rec.key = o.key;
            rec.size = o.size;
            rec.etag = o.e_tag;
            rec.version_id = o.version_id;
            rec.sequencer = o.sequencer;
            rec.user_metadata = o.user_metadata.unwrap_or_default();
        }
        rec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIO_EVENT: &str = r#"{"EventName":"s3:ObjectCreated:Put","Key":"profiles/P0.svc1/1/9bsv0s3ipt32jfck6kt0%2Ck1%3Dv1%2Ck2%3Dv2",
      "Records":[{"eventVersion":"2.0","eventSource":"minio:s3","awsRegion":"","eventTime":"2024-05-01T10:00:00.123Z",
      "eventName":"s3:ObjectCreated:Put","userIdentity":{"principalId":"minioadmin"},"requestParameters":{"principalId":"minioadmin","region":"","sourceIPAddress":"127.0.0.1"},
      "responseElements":{"x-amz-id-2":"abc","x-amz-request-id":"17B","x-minio-deployment-id":"d","x-minio-origin-endpoint":"http://127.0.0.1:9000"},
      "s3":{"s3SchemaVersion":"1.0","configurationId":"Config","bucket":{"name":"profiles","ownerIdentity":{"principalId":"minioadmin"},"arn":"arn:aws:s3:::profiles"},
      "object":{"key":"P0.svc1/1/9bsv0s3ipt32jfck6kt0%2Ck1%3Dv1%2Ck2%3Dv2","size":1234,"eTag":"0123abcd","contentType":"application/octet-stream",
      "userMetadata":{"X-Amz-Meta-Service":"svc1","content-type":"application/octet-stream"},"sequencer":"17B0"}},
      "source":{"host":"127.0.0.1","port":"","userAgent":"MinIO"}},
      {"eventName":"s3:ObjectRemoved:Delete","eventTime":"2024-05-01T10:00:00Z","s3":{"bucket":{"name":"profiles"},"object":{"key":"gone","sequencer":"1"}}},
      {"eventName":"s3:ObjectCreated:Put","eventTime":"2024-05-01T10:00:00Z","s3":{"bucket":{"name":"profiles"},"object":{"key":"empty","size":0}}}]}"#;

    #[test]
    fn raw_minio_event_objects() {
        let objs = parse_message(MINIO_EVENT.as_bytes()).unwrap();
        assert_eq!(objs.len(), 1, "the delete and the empty object are skipped");
        let o = &objs[0];
        assert_eq!((o.bucket.as_str(), o.key.as_str(), o.size), ("profiles", "P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2", 1234));
        assert_eq!((o.etag.as_deref(), o.event_name.as_deref()), (Some("0123abcd"), Some("ObjectCreated:Put")));
        assert_eq!(o.user_metadata.get("X-Amz-Meta-Service").map(String::as_str), Some("svc1"));
        assert!(o.meta.is_none());
    }

    #[test]
    fn envelope_versions_and_garbage() {
        assert!(matches!(parse_message(br#"{"v":2,"bucket":"b","key":"k","size":1}"#), Err(EnvelopeError::UnsupportedVersion(2))));
        assert!(matches!(parse_message(br#"{"v":1,"bucket":"b"}"#), Err(EnvelopeError::InvalidEnvelope(_))));
        assert!(matches!(parse_message(b"not json"), Err(EnvelopeError::NotJson(_))));
        assert!(matches!(parse_message(b"[1,2]"), Err(EnvelopeError::UnknownShape)));
        assert!(matches!(parse_message(br#"{"hello":1}"#), Err(EnvelopeError::UnknownShape)));
        // Unknown fields are ignored (forward compatible within a version).
        let o = parse_message(br#"{"v":1,"bucket":"b","key":"k","size":1,"future":true}"#).unwrap();
        assert_eq!(o[0].key, "k");
    }

    #[test]
    fn aws_typed_records() {
        let ev = r#"{"Records":[{"eventVersion":"2.1","eventSource":"aws:s3","awsRegion":"us-east-1","eventTime":"2024-01-02T03:04:05.000Z",
          "eventName":"ObjectCreated:CompleteMultipartUpload","userIdentity":{"principalId":"AWS:X"},"requestParameters":{"sourceIPAddress":"1.2.3.4"},
          "responseElements":{"x-amz-request-id":"R","x-amz-id-2":"I"},"s3":{"s3SchemaVersion":"1.0","configurationId":"c",
          "bucket":{"name":"bkt","ownerIdentity":{"principalId":"O"},"arn":"arn:aws:s3:::bkt"},
          "object":{"key":"dir/a+b%C3%A9.pb.gz","size":77,"eTag":"\"abc\"","versionId":"v1","sequencer":"0055AED6DCD90281E5"}}}]}"#;
        let typed: aws_lambda_events::s3::S3Event = serde_json::from_str(ev).unwrap();
        let (objs, skipped) = objects_from_records(typed.records.into_iter().map(EventRecord::from), "lambda");
        assert!(skipped.is_empty());
        let o = &objs[0];
        assert_eq!((o.bucket.as_str(), o.key.as_str(), o.size), ("bkt", "dir/a bé.pb.gz", 77));
        assert_eq!(o.etag.as_deref(), Some("abc"));
        assert_eq!(o.version_id.as_deref(), Some("v1"));
        assert_eq!(o.sequencer.as_deref(), Some("0055AED6DCD90281E5"));
        assert_eq!(o.event_name.as_deref(), Some("ObjectCreated:CompleteMultipartUpload"));
        // Same result through the raw reader.
        assert_eq!(parse_message(ev.as_bytes()).unwrap()[0].key, o.key);
    }
}

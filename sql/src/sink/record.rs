//! A profile ready for the sink, and its deterministic id.

use pprofhouse_message::ProfileMeta;
use pprofhouse_transform::Exploded;
use uuid::Uuid;
use xxhash_rust::xxh3::{xxh3_128, Xxh3};

/// Where a profile came from (empty for local files).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SourceRef {
    /// Bucket.
    pub bucket: String,
    /// Object key.
    pub key: String,
    /// ETag (without quotes), as the event announced it or S3 returned it.
    pub etag: String,
    /// Version id, in versioned buckets.
    pub version_id: Option<String>,
    /// Object size in bytes.
    pub size: u64,
}

/// What a profile's identity rests on.
#[derive(Debug, Clone, Copy)]
pub enum Origin<'a> {
    /// An S3 object: identified by bucket, key and version (or etag). Every delivery of the same
    /// object version — Lambda, a MinIO event, backfill, a replay — gives the same id.
    Object(&'a SourceRef),
    /// A local file: identified by its content and the metadata given with it. `time_given`
    /// says whether `meta.created_at` was given by the user (then it is part of the identity)
    /// or is a fallback (the profile's own time, or the clock: never part of the id).
    File {
        /// The file's bytes as stored.
        content: &'a [u8],
        /// Whether the time was given explicitly.
        time_given: bool,
    },
}

/// A profile ready for the sink.
#[derive(Debug, Clone)]
pub struct ProfileRecord {
    /// Deterministic id ([`profile_id`]).
    pub id: Uuid,
    /// Profile time, ms since the epoch.
    pub ts_ms: i64,
    /// Service, type, labels, time.
    pub meta: ProfileMeta,
    /// The S3 object it came from (empty for files).
    pub source: SourceRef,
    /// The per-function numbers (and stacks).
    pub exploded: Exploded,
}

impl ProfileRecord {
    /// Builds the record. The time stored is `meta.created_at`.
    pub fn new(meta: ProfileMeta, origin: Origin<'_>, exploded: Exploded) -> Self {
        let id = profile_id(&meta, origin);
        let source = match origin {
            Origin::Object(s) => s.clone(),
            Origin::File { .. } => SourceRef::default(),
        };
        ProfileRecord { id, ts_ms: meta.created_at.timestamp_millis(), meta, source, exploded }
    }

    pub(crate) fn function_rows(&self) -> usize {
        self.exploded.flat.len()
    }
}

fn put(h: &mut Xxh3, part: &[u8]) {
    h.update(&(part.len() as u64).to_le_bytes());
    h.update(part);
}

/// The deterministic profile id (xxh3-128): see [`Origin`] for what it covers.
pub fn profile_id(meta: &ProfileMeta, origin: Origin<'_>) -> Uuid {
    let mut h = Xxh3::new();
    match origin {
        Origin::Object(s) => {
            put(&mut h, b"s3");
            put(&mut h, s.bucket.as_bytes());
            put(&mut h, s.key.as_bytes());
            // A version id names one version exactly; without versioning the etag does.
            match &s.version_id {
                Some(v) => put(&mut h, format!("v:{v}").as_bytes()),
                None => put(&mut h, format!("e:{}", s.etag).as_bytes()),
            }
        }
        Origin::File { content, time_given } => {
            put(&mut h, b"file");
            put(&mut h, meta.service.as_bytes());
            put(&mut h, meta.profile_type.as_bytes());
            for (k, v) in &meta.labels {
                put(&mut h, k.as_bytes());
                put(&mut h, v.as_bytes());
            }
            if time_given {
                h.update(&meta.created_at.timestamp_millis().to_le_bytes());
            }
            h.update(&xxh3_128(content).to_le_bytes());
        }
    }
    Uuid::from_u128(h.digest128())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use pprofhouse_message::LayoutKind;

    use super::*;

    fn meta(ms: i64) -> ProfileMeta {
        ProfileMeta {
            service: "svc".into(),
            profile_type: "cpu".into(),
            labels: BTreeMap::from([("k".to_string(), "v".to_string())]),
            created_at: chrono::DateTime::from_timestamp_millis(ms).unwrap(),
            layout: LayoutKind::Given,
        }
    }

    #[test]
    fn ids_never_depend_on_a_fallback_time() {
        let content = b"profile bytes";
        let a = profile_id(&meta(1_000), Origin::File { content, time_given: false });
        let b = profile_id(&meta(9_000), Origin::File { content, time_given: false });
        assert_eq!(a, b, "a fallback time must not change the id");
        let c = profile_id(&meta(9_000), Origin::File { content, time_given: true });
        assert_ne!(a, c, "a time given by the user is part of the metadata");
        assert_ne!(a, profile_id(&meta(1_000), Origin::File { content: b"other", time_given: false }));
    }

    #[test]
    fn object_ids_follow_the_version_not_the_metadata() {
        let mut s = SourceRef { bucket: "b".into(), key: "k".into(), etag: "e1".into(), version_id: None, size: 1 };
        let a = profile_id(&meta(1_000), Origin::Object(&s));
        assert_eq!(a, profile_id(&meta(5_000), Origin::Object(&s)), "event time or resolver fallback must not matter");
        s.etag = "e2".into();
        let b = profile_id(&meta(1_000), Origin::Object(&s));
        assert_ne!(a, b, "an overwritten key is a new profile");
        s.version_id = Some("v1".into());
        assert_ne!(b, profile_id(&meta(1_000), Origin::Object(&s)));
    }
}

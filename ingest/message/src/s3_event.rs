//! S3 `ObjectCreated` events, built the way S3 writes them: the one builder behind `pprofhouse
//! put --event-out`, the Lambda handler's tests and the end-to-end tests.

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};

use crate::keys::query_escape;

/// One created object, as an event record describes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CreatedObject {
    /// Bucket name.
    pub bucket: String,
    /// The key as stored (the builder form-encodes it, as S3 does in events).
    pub key: String,
    /// Object size in bytes.
    pub size: u64,
    /// ETag, without quotes.
    pub etag: Option<String>,
    /// Version id (versioned buckets).
    pub version_id: Option<String>,
    /// S3's per-key ordering token (hex).
    pub sequencer: Option<String>,
    /// When the object was created.
    pub event_time: DateTime<Utc>,
}

impl CreatedObject {
    /// An object created at `event_time`, without etag, version or sequencer.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>, size: u64, event_time: DateTime<Utc>) -> Self {
        CreatedObject { bucket: bucket.into(), key: key.into(), size, etag: None, version_id: None, sequencer: None, event_time }
    }

    /// The event record (`eventName` `ObjectCreated:Put`), key form-encoded segment by segment.
    pub fn record(&self, region: &str) -> Value {
        let encoded: Vec<String> = self.key.split('/').map(query_escape).collect();
        let mut object = json!({ "key": encoded.join("/"), "size": self.size });
        if let Some(e) = &self.etag {
            object["eTag"] = e.clone().into();
        }
        if let Some(v) = &self.version_id {
            object["versionId"] = v.clone().into();
        }
        if let Some(s) = &self.sequencer {
            object["sequencer"] = s.clone().into();
        }
        json!({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": region,
            "eventTime": self.event_time.to_rfc3339_opts(SecondsFormat::Millis, true),
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "pprofhouse"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "pprofhouse",
                "bucket": {"name": self.bucket, "ownerIdentity": {"principalId": "pprofhouse"}, "arn": format!("arn:aws:s3:::{}", self.bucket)},
                "object": object,
            }
        })
    }
}

/// An S3 event `{"Records": [...]}` with one `ObjectCreated:Put` record per object.
pub fn object_created_event<'a>(objects: impl IntoIterator<Item = &'a CreatedObject>, region: &str) -> Value {
    json!({ "Records": objects.into_iter().map(|o| o.record(region)).collect::<Vec<_>>() })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::parse_message;

    #[test]
    fn built_events_read_back_as_the_same_objects() {
        let at = DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let mut o = CreatedObject::new("b", "P0.svc/1/9bsv0s3ipt32jfck6kt0,k=a b", 42, at);
        o.etag = Some("abc".into());
        o.version_id = Some("v7".into());
        let ev = object_created_event([&o], "us-east-1");
        assert_eq!(ev["Records"][0]["s3"]["object"]["key"], "P0.svc/1/9bsv0s3ipt32jfck6kt0%2Ck%3Da+b");
        let typed: aws_lambda_events::s3::S3Event = serde_json::from_value(ev.clone()).unwrap();
        assert_eq!(typed.records.len(), 1);
        let objs = parse_message(&serde_json::to_vec(&ev).unwrap()).unwrap();
        assert_eq!(objs.len(), 1);
        let got = &objs[0];
        assert_eq!((got.bucket.as_str(), got.key.as_str(), got.size), ("b", o.key.as_str(), 42));
        assert_eq!((got.etag.as_deref(), got.version_id.as_deref(), got.event_time), (Some("abc"), Some("v7"), Some(at)));
    }
}

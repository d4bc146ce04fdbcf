//! Key layouts: where the profile metadata (service, profile type, labels, creation time) of an
//! object comes from.
//!
//! Three sources, tried in this order by [`Resolver::resolve`]:
//!
//! 1. **profefe's S3 key** `P0.<service>/<type number>/<xid>[,k=v,...]` ([`parse_profefe_key`]):
//!    `/` in the service is written as `__`; the type is profefe's number (1 cpu, 2 heap, 3 block,
//!    4 mutex, 5 goroutine, 6 threadcreate, 127 other); the first 4 bytes of the
//!    [xid](https://github.com/rs/xid) are the creation time (unix seconds, big endian); labels
//!    are sorted `k=v` pairs, each side query-escaped.
//! 2. **templates** ([`Template`]) for other layouts, e.g. `{service}/{type}/{yyyy}/{mm}/{dd}/{name}`.
//! 3. **object metadata** as profefe writes it (`service`, `type`, `labels`, `created_at` user
//!    metadata, i.e. `x-amz-meta-*` headers) — only when the caller has it (HEAD, GetObject, or
//!    MinIO's `userMetadata` in its event).
//!
//! When nothing matches, the configured [`Defaults`] apply; without defaults the object is
//! [`Resolution::Unmatched`] with a reason (the caller sends it to the dead-letter topic).

mod metadata;
mod profefe;
mod template;

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, Utc};
pub use pprofhouse_message::{LayoutKind, ProfileMeta};

pub use metadata::parse_object_metadata;
pub use profefe::{
    decode_xid, encode_xid, format_profefe_labels, normalize_type, parse_profefe_key, parse_profefe_labels, profefe_key, profefe_type_name,
    profefe_type_number, xid_time, PROFEFE_TYPES,
};
pub use template::Template;

/// Why a key or metadata set could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// Not a `P0.` key.
    #[error("not a profefe key (no `P0.` prefix)")]
    NotProfefe,
    /// A `P0.` key that does not parse.
    #[error("invalid profefe key: {0}")]
    InvalidProfefeKey(String),
    /// An xid that does not decode.
    #[error("invalid xid {0:?}")]
    InvalidXid(String),
    /// Labels that do not decode.
    #[error("invalid label encoding: {0}")]
    InvalidLabels(String),
    /// A template that does not parse.
    #[error("invalid template {template:?}: {reason}")]
    InvalidTemplate {
        /// The template.
        template: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Object metadata that does not parse.
    #[error("invalid object metadata: {0}")]
    InvalidMetadata(String),
}

impl From<pprofhouse_message::KeyError> for LayoutError {
    fn from(e: pprofhouse_message::KeyError) -> Self {
        LayoutError::InvalidLabels(e.to_string())
    }
}

// ---------------------------------------------------------------------------------------------
// Resolver

/// What unmatched objects get instead of the dead-letter topic.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Defaults {
    /// Service for objects nothing matched; `None` sends them to the dead-letter topic.
    pub service: Option<String>,
    /// Profile type when a layout has none (default `unknown`).
    pub profile_type: String,
}

impl Default for Defaults {
    fn default() -> Self {
        Defaults { service: None, profile_type: "unknown".to_string() }
    }
}

/// The outcome of resolving an object's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
    /// The metadata, and which layout gave it.
    Matched(ProfileMeta),
    /// Nothing matched and no default service is configured; the reason lists what was tried.
    Unmatched(String),
}

/// Tries the configured layouts in order; see the module docs.
#[derive(Clone, Debug)]
pub struct Resolver {
    /// Parse profefe `P0.` keys.
    pub profefe: bool,
    /// Templates, tried in order after profefe.
    pub templates: Vec<Template>,
    /// Fallbacks.
    pub defaults: Defaults,
}

impl Default for Resolver {
    fn default() -> Self {
        Resolver { profefe: true, templates: Vec::new(), defaults: Defaults::default() }
    }
}

impl Resolver {
    /// profefe keys only, no defaults.
    pub fn profefe_only() -> Self {
        Self::default()
    }

    /// Resolve from the key alone (profefe, then templates). `Err` carries the reasons.
    pub fn resolve_key(&self, key: &str, fallback_time: Option<DateTime<Utc>>) -> Result<ProfileMeta, String> {
        let mut reasons = Vec::new();
        if self.profefe {
            match parse_profefe_key(key) {
                Ok(m) => return Ok(m),
                Err(e) => reasons.push(format!("profefe: {e}")),
            }
        }
        for t in &self.templates {
            match t.matches(key, fallback_time, &self.defaults) {
                Some(m) => return Ok(m),
                None => reasons.push(format!("template {:?}: no match", t.as_str())),
            }
        }
        if reasons.is_empty() {
            reasons.push("no layout configured".to_string());
        }
        Err(reasons.join("; "))
    }

    /// Resolve from the key, then the object metadata (if given), then the defaults.
    pub fn resolve(&self, key: &str, metadata: Option<&HashMap<String, String>>, fallback_time: Option<DateTime<Utc>>) -> Resolution {
        let mut reason = match self.resolve_key(key, fallback_time) {
            Ok(m) => return Resolution::Matched(m),
            Err(r) => r,
        };
        match metadata {
            Some(md) => match parse_object_metadata(md, fallback_time, &self.defaults.profile_type) {
                Ok(Some(m)) => return Resolution::Matched(m),
                Ok(None) => reason.push_str("; object metadata: no `service`"),
                Err(e) => reason.push_str(&format!("; object metadata: {e}")),
            },
            None => reason.push_str("; object metadata: not available"),
        }
        match &self.defaults.service {
            Some(service) => Resolution::Matched(ProfileMeta {
                service: service.clone(),
                profile_type: self.defaults.profile_type.clone(),
                labels: BTreeMap::new(),
                created_at: fallback_time.unwrap_or_else(Utc::now),
                layout: LayoutKind::Default,
            }),
            None => Resolution::Unmatched(format!("no layout matched key {key:?}: {reason}")),
        }
    }
}

impl Resolver {
    /// Resolve an object's metadata: its `meta` if present, else from the key, then the given
    /// object metadata (e.g. from GetObject/HEAD) merged over the event's `user_metadata`, then
    /// the defaults. The fallback creation time is the event time.
    pub fn resolve_object(&self, obj: &pprofhouse_message::ObjectRef, object_metadata: Option<&HashMap<String, String>>) -> Resolution {
        if let Some(m) = &obj.meta {
            return Resolution::Matched(m.clone());
        }
        let mut md: HashMap<String, String> = obj.user_metadata.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
        if let Some(extra) = object_metadata {
            md.extend(extra.iter().map(|(k, v)| (k.clone(), v.clone())));
        }
        let md = (!md.is_empty()).then_some(md);
        self.resolve(&obj.key, md.as_ref(), obj.event_time)
    }
}

#[cfg(test)]
pub(crate) mod test_util {
    use std::collections::BTreeMap;

    use chrono::{DateTime, TimeZone, Utc};

    pub fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    pub fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::test_util::*;
    use pprofhouse_message::{parse_message, ObjectRef};

    #[test]
    fn resolver_order_and_defaults() {
        let mut r = Resolver::default();
        r.templates.push(Template::parse("{service}/{type}/{name}").unwrap());
        let at = t(2024, 1, 1, 0, 0, 0);
        match r.resolve("P0.svc1/3/9bsv0s3ipt32jfck6kt0", None, Some(at)) {
            Resolution::Matched(m) => assert_eq!((m.layout, m.profile_type.as_str()), (LayoutKind::Profefe, "block")),
            other => panic!("{other:?}"),
        }
        match r.resolve("api/mutex/x.pb.gz", None, Some(at)) {
            Resolution::Matched(m) => assert_eq!((m.layout, m.service.as_str(), m.created_at), (LayoutKind::Template, "api", at)),
            other => panic!("{other:?}"),
        }
        match r.resolve("loose-file.pb.gz", None, Some(at)) {
            Resolution::Unmatched(reason) => {
                assert!(reason.contains("profefe"), "{reason}");
                assert!(reason.contains("{service}/{type}/{name}"), "{reason}");
            }
            other => panic!("{other:?}"),
        }
        let md: HashMap<String, String> = [("service".to_string(), "from-md".to_string())].into();
        match r.resolve("loose-file.pb.gz", Some(&md), Some(at)) {
            Resolution::Matched(m) => {
                assert_eq!((m.layout, m.service.as_str(), m.profile_type.as_str()), (LayoutKind::ObjectMetadata, "from-md", "unknown"))
            }
            other => panic!("{other:?}"),
        }
        r.defaults = Defaults { service: Some("default-svc".into()), profile_type: "cpu".into() };
        match r.resolve("loose-file.pb.gz", None, Some(at)) {
            Resolution::Matched(m) => {
                assert_eq!(
                    (m.layout, m.service.as_str(), m.profile_type.as_str(), m.created_at),
                    (LayoutKind::Default, "default-svc", "cpu", at)
                )
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn envelope_roundtrip() {
        let mut o = ObjectRef::new("b", "P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1", 10);
        o.etag = Some("e".into());
        o.meta = parse_profefe_key(&o.key).ok();
        let bytes = o.to_envelope_json();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["v"], 1);
        assert_eq!(v["meta"]["type"], "cpu");
        assert_eq!(v["meta"]["labels"]["k1"], "v1");
        assert_eq!(v["meta"]["created_at"], "2009-11-10T23:00:00Z");
        assert_eq!(parse_message(&bytes).unwrap(), vec![o.clone()]);
        assert_eq!(o.message_key(), "b/P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1");
    }

    #[test]
    fn raw_event_objects_resolve_like_envelopes() {
        // The message crate's tests read a real MinIO event; here: its object, through the resolver.
        let at = chrono::DateTime::parse_from_rfc3339("2024-05-01T10:00:00Z").unwrap().with_timezone(&Utc);
        let created = pprofhouse_message::CreatedObject::new("profiles", "P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2", 1234, at);
        let ev = pprofhouse_message::object_created_event([&created], "");
        let objs = parse_message(&serde_json::to_vec(&ev).unwrap()).unwrap();
        assert!(objs[0].meta.is_none());
        match Resolver::default().resolve_object(&objs[0], None) {
            Resolution::Matched(m) => {
                assert_eq!(m.layout, LayoutKind::Profefe);
                assert_eq!(m.labels.len(), 2);
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn raw_event_metadata_fallback() {
        let ev = r#"{"Records":[{"eventName":"s3:ObjectCreated:Put","eventTime":"2024-05-01T10:00:00Z",
          "s3":{"bucket":{"name":"b"},"object":{"key":"some+file.pb.gz","size":5,
          "userMetadata":{"X-Amz-Meta-Service":"svc9","X-Amz-Meta-Type":"heap"}}}}]}"#;
        let objs = parse_message(ev.as_bytes()).unwrap();
        assert_eq!(objs[0].key, "some file.pb.gz");
        match Resolver::default().resolve_object(&objs[0], None) {
            Resolution::Matched(m) => {
                assert_eq!((m.service.as_str(), m.profile_type.as_str(), m.layout), ("svc9", "heap", LayoutKind::ObjectMetadata));
                assert_eq!(m.created_at.to_rfc3339(), "2024-05-01T10:00:00+00:00");
            }
            other => panic!("{other:?}"),
        }
    }
}

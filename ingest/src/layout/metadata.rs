//! profefe-style object (user) metadata: `service`, `type`, `labels`, `created_at`.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, TimeZone, Utc};
use pprofhouse_message::{LayoutKind, ProfileMeta};

use super::profefe::{normalize_type, parse_profefe_labels};
use super::LayoutError;

// ---------------------------------------------------------------------------------------------
// Object metadata

/// Read profefe-style object metadata (`service`, `type`, `labels`, `created_at`). Keys are
/// matched case-insensitively, with or without the `x-amz-meta-` prefix (MinIO events carry
/// `X-Amz-Meta-Service`). `None` when there is no `service`.
pub fn parse_object_metadata(
    metadata: &HashMap<String, String>,
    fallback_time: Option<DateTime<Utc>>,
    default_type: &str,
) -> Result<Option<ProfileMeta>, LayoutError> {
    let get = |name: &str| {
        metadata.iter().find_map(|(k, v)| {
            let k = k.to_ascii_lowercase();
            let k = k.strip_prefix("x-amz-meta-").unwrap_or(&k);
            (k == name || k.replace('-', "_") == name).then(|| v.clone())
        })
    };
    let Some(service) = get("service").filter(|s| !s.trim().is_empty()) else {
        return Ok(None);
    };
    let profile_type = get("type").map(|t| normalize_type(&t)).unwrap_or_else(|| default_type.to_string());
    let labels = match get("labels") {
        Some(l) => parse_profefe_labels(&l).or_else(|_| {
            // profefe's Labels.String() may be unescaped; take it literally then.
            Ok::<_, LayoutError>(
                l.split(',')
                    .filter_map(|p| p.split_once('=').or(Some((p, ""))))
                    .filter(|(k, _)| !k.is_empty())
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            )
        })?,
        None => BTreeMap::new(),
    };
    let created_at = match get("created_at") {
        Some(t) => parse_time(&t).ok_or_else(|| LayoutError::InvalidMetadata(format!("created_at {t:?} is not RFC 3339")))?,
        None => fallback_time.unwrap_or_else(Utc::now),
    };
    Ok(Some(ProfileMeta { service: service.trim().to_string(), profile_type, labels, created_at, layout: LayoutKind::ObjectMetadata }))
}

/// RFC 3339, or unix seconds.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    s.parse::<i64>().ok().and_then(|n| Utc.timestamp_opt(n, 0).single())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::test_util::*;

    #[test]
    fn object_metadata() {
        let md: HashMap<String, String> =
            [("service", "svc1"), ("type", "heap"), ("labels", "k1=v1,k2=v+2"), ("created_at", "2009-11-10T23:00:00Z")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let m = parse_object_metadata(&md, None, "unknown").unwrap().unwrap();
        assert_eq!(m.service, "svc1");
        assert_eq!(m.profile_type, "heap");
        assert_eq!(m.labels, labels(&[("k1", "v1"), ("k2", "v 2")]));
        assert_eq!(m.created_at, t(2009, 11, 10, 23, 0, 0));

        // MinIO-style header names.
        let md: HashMap<String, String> =
            [("X-Amz-Meta-Service", "svc2"), ("X-Amz-Meta-Type", "2"), ("X-Amz-Meta-Created_at", "2020-01-01T00:00:00+01:00")]
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
        let m = parse_object_metadata(&md, None, "unknown").unwrap().unwrap();
        assert_eq!((m.service.as_str(), m.profile_type.as_str()), ("svc2", "heap"));
        assert_eq!(m.created_at, t(2019, 12, 31, 23, 0, 0));

        assert_eq!(parse_object_metadata(&HashMap::new(), None, "unknown").unwrap(), None);
    }
}

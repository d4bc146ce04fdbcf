//! profefe's key layout `P0.<service>/<type number>/<xid>[,k=v,...]`: profile types, xids,
//! labels, and the key itself (parsed and built).

use std::collections::BTreeMap;

use chrono::{DateTime, TimeZone, Utc};

use super::LayoutError;
use pprofhouse_message::{query_escape, query_unescape, LayoutKind, ProfileMeta};

// ---------------------------------------------------------------------------------------------
// Profile types

/// profefe's profile type numbers and their names.
pub const PROFEFE_TYPES: &[(u8, &str)] =
    &[(1, "cpu"), (2, "heap"), (3, "block"), (4, "mutex"), (5, "goroutine"), (6, "threadcreate"), (127, "other")];

/// The name of a profefe type number (`1` → `cpu`), `None` for unknown numbers (incl. 0).
pub fn profefe_type_name(n: u8) -> Option<&'static str> {
    PROFEFE_TYPES.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
}

/// The profefe number of a type name (`cpu` → `1`).
pub fn profefe_type_number(name: &str) -> Option<u8> {
    PROFEFE_TYPES.iter().find(|(_, v)| *v == name).map(|(k, _)| *k)
}

/// Canonical type name for what a key or metadata says: profefe numbers become names, Go's
/// endpoint name `profile` becomes `cpu`, everything is lowercased and trimmed.
pub fn normalize_type(s: &str) -> String {
    let s = s.trim();
    if let Ok(n) = s.parse::<u8>() {
        if let Some(name) = profefe_type_name(n) {
            return name.to_string();
        }
    }
    let lower = s.to_ascii_lowercase();
    match lower.as_str() {
        "profile" => "cpu".to_string(),
        "" => "unknown".to_string(),
        _ => lower,
    }
}

// ---------------------------------------------------------------------------------------------
// xid

const XID_ALPHABET: &[u8; 32] = b"0123456789abcdefghijklmnopqrstuv";

/// Decode a 20-character [xid](https://github.com/rs/xid) into its 12 bytes.
pub fn decode_xid(s: &str) -> Result<[u8; 12], LayoutError> {
    let b = s.as_bytes();
    if b.len() != 20 {
        return Err(LayoutError::InvalidXid(s.to_string()));
    }
    let mut acc: u128 = 0;
    for &c in b {
        let v = XID_ALPHABET.iter().position(|&a| a == c).ok_or_else(|| LayoutError::InvalidXid(s.to_string()))?;
        acc = (acc << 5) | v as u128;
    }
    // 100 bits: the id is the first 96; the last 4 must be zero in a canonical encoding.
    if acc & 0xF != 0 {
        return Err(LayoutError::InvalidXid(s.to_string()));
    }
    let id = acc >> 4;
    let mut out = [0u8; 12];
    for (i, o) in out.iter_mut().enumerate() {
        *o = (id >> (8 * (11 - i))) as u8;
    }
    Ok(out)
}

/// Encode 12 bytes as an xid string (inverse of [`decode_xid`]).
pub fn encode_xid(id: &[u8; 12]) -> String {
    let mut acc: u128 = 0;
    for &b in id {
        acc = (acc << 8) | b as u128;
    }
    acc <<= 4;
    (0..20).rev().map(|i| XID_ALPHABET[((acc >> (5 * i)) & 31) as usize] as char).collect()
}

/// The creation time stored in an xid (its first 4 bytes, unix seconds).
pub fn xid_time(s: &str) -> Result<DateTime<Utc>, LayoutError> {
    let id = decode_xid(s)?;
    let secs = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    Utc.timestamp_opt(secs as i64, 0).single().ok_or_else(|| LayoutError::InvalidXid(s.to_string()))
}

// ---------------------------------------------------------------------------------------------
// profefe keys

/// Parse profefe labels `k1=v1,k2=v2` (each side query-escaped). Empty keys are dropped (as
/// profefe does); a pair without `=` is a label with an empty value.
pub fn parse_profefe_labels(s: &str) -> Result<BTreeMap<String, String>, LayoutError> {
    let mut labels = BTreeMap::new();
    for pair in s.split(',').filter(|p| !p.is_empty()) {
        let (k, v) = pair.split_once('=').unwrap_or((pair, ""));
        let k = query_unescape(k)?;
        let v = query_unescape(v)?;
        if k.is_empty() {
            continue;
        }
        labels.insert(k, v);
    }
    Ok(labels)
}

/// Format labels the way profefe writes them in keys: sorted, query-escaped, `k=v` joined by `,`.
pub fn format_profefe_labels(labels: &BTreeMap<String, String>) -> String {
    labels.iter().map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v))).collect::<Vec<_>>().join(",")
}

/// Parse a profefe S3 key `P0.<service>/<type>/<xid>[,labels]` (already URL-decoded once, as
/// stored in S3).
pub fn parse_profefe_key(key: &str) -> Result<ProfileMeta, LayoutError> {
    let rest = key.strip_prefix("P0.").ok_or(LayoutError::NotProfefe)?;
    let mut parts = rest.splitn(3, '/');
    let (service, ptype, tail) = match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(t), Some(tail)) => (s, t, tail),
        _ => return Err(LayoutError::InvalidProfefeKey(format!("{key:?}: want P0.<service>/<type>/<xid>"))),
    };
    if service.is_empty() {
        return Err(LayoutError::InvalidProfefeKey(format!("{key:?}: empty service")));
    }
    let type_name = ptype
        .parse::<u8>()
        .ok()
        .and_then(profefe_type_name)
        .ok_or_else(|| LayoutError::InvalidProfefeKey(format!("{key:?}: unknown profile type {ptype:?}")))?;
    let (xid, labels) = tail.split_once(',').unwrap_or((tail, ""));
    let created_at = xid_time(xid)?;
    let labels = parse_profefe_labels(labels)?;
    Ok(ProfileMeta {
        service: service.replace("__", "/"),
        profile_type: type_name.to_string(),
        labels,
        created_at,
        layout: LayoutKind::Profefe,
    })
}

/// Build a profefe key (for tests and tools): `P0.<service>/<type>/<xid>[,labels]`. The xid
/// carries `created_at`; its remaining 8 bytes are taken from `salt`.
pub fn profefe_key(service: &str, type_number: u8, created_at: DateTime<Utc>, salt: u64, labels: &BTreeMap<String, String>) -> String {
    let mut id = [0u8; 12];
    id[..4].copy_from_slice(&(created_at.timestamp() as u32).to_be_bytes());
    id[4..].copy_from_slice(&salt.to_be_bytes());
    let mut key = format!("P0.{}/{}/{}", service.replace('/', "__"), type_number, encode_xid(&id));
    if !labels.is_empty() {
        key.push(',');
        key.push_str(&format_profefe_labels(labels));
    }
    key
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::test_util::*;

    // Cases from profefe's pkg/storage/s3 TestMetaFromProfileKey.
    #[test]
    fn profefe_valid_keys() {
        let m = parse_profefe_key("P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2").unwrap();
        assert_eq!(m.service, "svc1");
        assert_eq!(m.profile_type, "cpu");
        assert_eq!(m.labels, labels(&[("k1", "v1"), ("k2", "v2")]));
        assert_eq!(m.created_at, t(2009, 11, 10, 23, 0, 0));
        assert_eq!(m.layout, LayoutKind::Profefe);

        let m = parse_profefe_key("P0.svc1/1/9bsv0s3ipt32jfck6kt0").unwrap();
        assert!(m.labels.is_empty());
        assert_eq!(m.created_at, t(2009, 11, 10, 23, 0, 0));
    }

    #[test]
    fn profefe_invalid_keys() {
        for key in [
            "invalidkey",
            "svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2",
            "P0.svc1/cpu/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2",
            "P0.svc1/0/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2",
            "P0.svc1/1/b49int,k1=v1,k2=v2",
            "P0.svc1/1/9bsv0s3ipt32jfck6kt0/%GG=v1",
            "P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=%GG",
            "P0./1/9bsv0s3ipt32jfck6kt0",
            "P0.svc1/1/9bsv0s3ipt32jfck6ktw", // non-canonical trailing bits
        ] {
            assert!(parse_profefe_key(key).is_err(), "{key} should not parse");
        }
    }

    #[test]
    fn profefe_types_service_and_escaped_labels() {
        for (n, name) in PROFEFE_TYPES {
            let key = format!("P0.a__b/{n}/9bsv0s3ipt32jfck6kt0");
            let m = parse_profefe_key(&key).unwrap();
            assert_eq!(m.profile_type, *name);
            assert_eq!(m.service, "a/b");
        }
        let m = parse_profefe_key("P0.svc/2/9bsv0s3ipt32jfck6kt0,az=eu+west%2F1,host=h%C3%A9,%3Dk=a%2Cb").unwrap();
        assert_eq!(m.labels, labels(&[("az", "eu west/1"), ("host", "hé"), ("=k", "a,b")]));
    }

    #[test]
    fn profefe_key_roundtrip() {
        let l = labels(&[("zone", "us east/1"), ("a", "x=y,z"), ("ü", "ö")]);
        let at = t(2024, 5, 6, 7, 8, 9);
        let key = profefe_key("team/api", 2, at, 42, &l);
        assert!(key.starts_with("P0.team__api/2/"));
        let m = parse_profefe_key(&key).unwrap();
        assert_eq!((m.service.as_str(), m.profile_type.as_str(), m.created_at), ("team/api", "heap", at));
        assert_eq!(m.labels, l);
    }

    #[test]
    fn xid_codec() {
        let id = decode_xid("9bsv0s3ipt32jfck6kt0").unwrap();
        assert_eq!(encode_xid(&id), "9bsv0s3ipt32jfck6kt0");
        assert_eq!(xid_time("9bsv0s3ipt32jfck6kt0").unwrap().timestamp(), 1257894000);
        assert!(decode_xid("9bsv0s3ipt32jfck6kt").is_err());
        assert!(decode_xid("9bsv0s3ipt32jfck6ktz").is_err());
        assert!(decode_xid("9BSV0S3IPT32JFCK6KT0").is_err());
    }
}

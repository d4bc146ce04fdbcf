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
use std::collections::{BTreeMap, HashMap};
use std::fmt;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use serde::{Deserialize, Serialize};

/// The profile metadata the pipeline needs besides the object itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileMeta {
    /// Service name, as the uploader gave it (profefe's `__` decoded back to `/`).
    pub service: String,
    /// Profile type name: `cpu`, `heap`, `block`, `mutex`, `goroutine`, `threadcreate`, `other`,
    /// `unknown`, or whatever name a template captured (lowercased).
    #[serde(rename = "type")]
    pub profile_type: String,
    /// Labels, sorted by key.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When the profile was taken (UTC).
    pub created_at: DateTime<Utc>,
    /// Which layout produced this metadata.
    pub layout: LayoutKind,
}

/// Which layout produced a [`ProfileMeta`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutKind {
    /// profefe's `P0.` key.
    Profefe,
    /// A configured template.
    Template,
    /// profefe-style object (user) metadata.
    ObjectMetadata,
    /// Nothing matched; the configured defaults.
    Default,
}

/// Why a key or metadata set could not be parsed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    #[error("not a profefe key (no `P0.` prefix)")]
    NotProfefe,
    #[error("invalid profefe key: {0}")]
    InvalidProfefeKey(String),
    #[error("invalid xid {0:?}")]
    InvalidXid(String),
    #[error("invalid label encoding: {0}")]
    InvalidLabels(String),
    #[error("invalid template {template:?}: {reason}")]
    InvalidTemplate { template: String, reason: String },
    #[error("invalid object metadata: {0}")]
    InvalidMetadata(String),
}

// ---------------------------------------------------------------------------------------------
// Profile types

/// profefe's profile type numbers and their names.
pub const PROFEFE_TYPES: &[(u8, &str)] = &[
    (1, "cpu"),
    (2, "heap"),
    (3, "block"),
    (4, "mutex"),
    (5, "goroutine"),
    (6, "threadcreate"),
    (127, "other"),
];

/// The name of a profefe type number (`1` → `cpu`), `None` for unknown numbers (incl. 0).
pub fn profefe_type_name(n: u8) -> Option<&'static str> {
    PROFEFE_TYPES.iter().find(|(k, _)| *k == n).map(|(_, v)| *v)
}

/// The profefe number of a type name (`cpu` → `1`).
pub fn profefe_type_number(name: &str) -> Option<u8> {
    PROFEFE_TYPES
        .iter()
        .find(|(_, v)| *v == name)
        .map(|(k, _)| *k)
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
// URL decoding

/// Decode a key as S3 event notifications write it: form encoding, `+` for space, `%XX` bytes,
/// UTF-8. Errors on a malformed `%` escape or invalid UTF-8.
pub fn decode_event_key(s: &str) -> Result<String, LayoutError> {
    query_unescape(s)
}

/// Go's `url.QueryUnescape`: `+` → space, `%XX` → byte; strict about malformed escapes.
pub fn query_unescape(s: &str) -> Result<String, LayoutError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (
                    b.get(i + 1).copied().and_then(hex),
                    b.get(i + 2).copied().and_then(hex),
                ) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        let end = (i + 3).min(b.len());
                        return Err(LayoutError::InvalidLabels(format!(
                            "malformed escape {:?} in {s:?}",
                            String::from_utf8_lossy(&b[i..end])
                        )));
                    }
                }
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out)
        .map_err(|_| LayoutError::InvalidLabels(format!("not UTF-8 after decoding: {s:?}")))
}

/// Go's `url.QueryEscape` (used to build profefe keys in tests and tools).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(c as char)
            }
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{c:02X}")),
        }
    }
    out
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
        let v = XID_ALPHABET
            .iter()
            .position(|&a| a == c)
            .ok_or_else(|| LayoutError::InvalidXid(s.to_string()))?;
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
    (0..20)
        .rev()
        .map(|i| XID_ALPHABET[((acc >> (5 * i)) & 31) as usize] as char)
        .collect()
}

/// The creation time stored in an xid (its first 4 bytes, unix seconds).
pub fn xid_time(s: &str) -> Result<DateTime<Utc>, LayoutError> {
    let id = decode_xid(s)?;
    let secs = u32::from_be_bytes([id[0], id[1], id[2], id[3]]);
    Utc.timestamp_opt(secs as i64, 0)
        .single()
        .ok_or_else(|| LayoutError::InvalidXid(s.to_string()))
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
    labels
        .iter()
        .map(|(k, v)| format!("{}={}", query_escape(k), query_escape(v)))
        .collect::<Vec<_>>()
        .join(",")
}

/// Parse a profefe S3 key `P0.<service>/<type>/<xid>[,labels]` (already URL-decoded once, as
/// stored in S3).
pub fn parse_profefe_key(key: &str) -> Result<ProfileMeta, LayoutError> {
    let rest = key.strip_prefix("P0.").ok_or(LayoutError::NotProfefe)?;
    let mut parts = rest.splitn(3, '/');
    let (service, ptype, tail) = match (parts.next(), parts.next(), parts.next()) {
        (Some(s), Some(t), Some(tail)) => (s, t, tail),
        _ => {
            return Err(LayoutError::InvalidProfefeKey(format!(
                "{key:?}: want P0.<service>/<type>/<xid>"
            )))
        }
    };
    if service.is_empty() {
        return Err(LayoutError::InvalidProfefeKey(format!(
            "{key:?}: empty service"
        )));
    }
    let type_name = ptype
        .parse::<u8>()
        .ok()
        .and_then(profefe_type_name)
        .ok_or_else(|| {
            LayoutError::InvalidProfefeKey(format!("{key:?}: unknown profile type {ptype:?}"))
        })?;
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
pub fn profefe_key(
    service: &str,
    type_number: u8,
    created_at: DateTime<Utc>,
    salt: u64,
    labels: &BTreeMap<String, String>,
) -> String {
    let mut id = [0u8; 12];
    id[..4].copy_from_slice(&(created_at.timestamp() as u32).to_be_bytes());
    id[4..].copy_from_slice(&salt.to_be_bytes());
    let mut key = format!(
        "P0.{}/{}/{}",
        service.replace('/', "__"),
        type_number,
        encode_xid(&id)
    );
    if !labels.is_empty() {
        key.push(',');
        key.push_str(&format_profefe_labels(labels));
    }
    key
}

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
    let profile_type = get("type")
        .map(|t| normalize_type(&t))
        .unwrap_or_else(|| default_type.to_string());
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
        Some(t) => parse_time(&t).ok_or_else(|| {
            LayoutError::InvalidMetadata(format!("created_at {t:?} is not RFC 3339"))
        })?,
        None => fallback_time.unwrap_or_else(Utc::now),
    };
    Ok(Some(ProfileMeta {
        service: service.trim().to_string(),
        profile_type,
        labels,
        created_at,
        layout: LayoutKind::ObjectMetadata,
    }))
}

/// RFC 3339, or unix seconds.
fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let s = s.trim();
    if let Ok(t) = DateTime::parse_from_rfc3339(s) {
        return Some(t.with_timezone(&Utc));
    }
    s.parse::<i64>()
        .ok()
        .and_then(|n| Utc.timestamp_opt(n, 0).single())
}

// ---------------------------------------------------------------------------------------------
// Templates

#[derive(Clone, Debug, PartialEq, Eq)]
enum Field {
    Service,
    Type,
    Year,
    Month,
    Day,
    Hour,
    Minute,
    Second,
    Unix,
    UnixMillis,
    /// `{name}`, `{_}` or any other unnamed segment: anything but `/`, ignored.
    Ignore,
    /// `{*}`: anything, `/` included, possibly empty.
    Any,
    /// `{label:KEY}`: the value of one label (no `/`).
    Label(String),
    /// `{labels}`: profefe-style `k=v,...` (no `/`).
    Labels,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Part {
    Lit(String),
    Field(Field),
}

/// A key template such as `{service}/{type}/{yyyy}/{mm}/{dd}/{name}`.
///
/// Placeholders: `{service}`, `{type}` (a name such as `cpu`/`heap`, or a profefe number),
/// `{yyyy}` `{mm}` `{dd}` `{hh}` `{min}` `{ss}` (fixed-width digits), `{unix}` (seconds),
/// `{unix_ms}`, `{label:KEY}` (one label), `{labels}` (profefe-style `k=v,...`), `{name}` or
/// `{_}` (any text without `/`, ignored), `{*}` (any text including `/`). Everything else is
/// literal. Placeholders other than `{*}` match at least one character and never a `/`. The
/// whole key must match.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    source: String,
    parts: Vec<Part>,
}

impl fmt::Display for Template {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for Template {
    type Err = LayoutError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Template::parse(s)
    }
}

/// What a template captured from a key.
#[derive(Clone, Debug, Default)]
struct Captures {
    service: Option<String>,
    ptype: Option<String>,
    year: Option<i32>,
    month: Option<u32>,
    day: Option<u32>,
    hour: Option<u32>,
    minute: Option<u32>,
    second: Option<u32>,
    unix: Option<i64>,
    unix_ms: Option<i64>,
    labels: BTreeMap<String, String>,
}

impl Template {
    pub fn parse(s: &str) -> Result<Self, LayoutError> {
        let err = |reason: &str| LayoutError::InvalidTemplate {
            template: s.to_string(),
            reason: reason.to_string(),
        };
        let mut parts = Vec::new();
        let mut lit = String::new();
        let mut rest = s;
        while let Some(open) = rest.find('{') {
            lit.push_str(&rest[..open]);
            let after = &rest[open + 1..];
            let close = after.find('}').ok_or_else(|| err("unclosed `{`"))?;
            let name = &after[..close];
            let field = match name {
                "service" => Field::Service,
                "type" => Field::Type,
                "yyyy" => Field::Year,
                "mm" => Field::Month,
                "dd" => Field::Day,
                "hh" => Field::Hour,
                "min" => Field::Minute,
                "ss" => Field::Second,
                "unix" => Field::Unix,
                "unix_ms" => Field::UnixMillis,
                "name" | "_" => Field::Ignore,
                "*" => Field::Any,
                "labels" => Field::Labels,
                n if n.starts_with("label:") && n.len() > 6 => Field::Label(n[6..].to_string()),
                other => return Err(err(&format!("unknown placeholder {{{other}}}"))),
            };
            if !lit.is_empty() {
                parts.push(Part::Lit(std::mem::take(&mut lit)));
            }
            if let Some(Part::Field(prev)) = parts.last() {
                // Two adjacent free-text fields are ambiguous; digits next to each other are fine.
                let free = |f: &Field| {
                    matches!(
                        f,
                        Field::Service
                            | Field::Type
                            | Field::Ignore
                            | Field::Any
                            | Field::Label(_)
                            | Field::Labels
                    )
                };
                if free(prev) && free(&field) {
                    return Err(err("two adjacent text placeholders need a separator"));
                }
            }
            parts.push(Part::Field(field));
            rest = &after[close + 1..];
        }
        if rest.contains('}') {
            return Err(err("unmatched `}`"));
        }
        lit.push_str(rest);
        if !lit.is_empty() {
            parts.push(Part::Lit(lit));
        }
        if !parts.iter().any(|p| matches!(p, Part::Field(_))) {
            return Err(err("no placeholder"));
        }
        Ok(Template {
            source: s.to_string(),
            parts,
        })
    }

    /// A template that matches nothing (an empty setting).
    pub fn empty() -> Self {
        Template {
            source: String::new(),
            parts: Vec::new(),
        }
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Match a key; `None` if it does not match. `fallback_time` is used when the template has no
    /// complete time (e.g. only a date: the event time is more precise, if it is on that date).
    pub fn matches(
        &self,
        key: &str,
        fallback_time: Option<DateTime<Utc>>,
        defaults: &Defaults,
    ) -> Option<ProfileMeta> {
        let mut caps = Captures::default();
        if self.parts.is_empty() || !match_parts(&self.parts, key, &mut caps) {
            return None;
        }
        let service = caps.service.or_else(|| defaults.service.clone())?;
        let profile_type = caps
            .ptype
            .map(|t| normalize_type(&t))
            .unwrap_or_else(|| defaults.profile_type.clone());
        let created_at = if let Some(ms) = caps.unix_ms {
            Utc.timestamp_millis_opt(ms).single()?
        } else if let Some(s) = caps.unix {
            Utc.timestamp_opt(s, 0).single()?
        } else if let (Some(y), Some(m), Some(d)) = (caps.year, caps.month, caps.day) {
            let date = NaiveDate::from_ymd_opt(y, m, d)?;
            match (caps.hour, fallback_time) {
                (Some(h), _) => Utc.from_utc_datetime(&date.and_hms_opt(
                    h,
                    caps.minute.unwrap_or(0),
                    caps.second.unwrap_or(0),
                )?),
                (None, Some(t)) if t.date_naive() == date => t,
                (None, _) => Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?),
            }
        } else {
            fallback_time.unwrap_or_else(Utc::now)
        };
        Some(ProfileMeta {
            service,
            profile_type,
            labels: caps.labels,
            created_at,
            layout: LayoutKind::Template,
        })
    }
}

fn digits(field: &Field) -> Option<(usize, usize)> {
    match field {
        Field::Year => Some((4, 4)),
        Field::Month | Field::Day | Field::Hour | Field::Minute | Field::Second => Some((2, 2)),
        Field::Unix => Some((1, 12)),
        Field::UnixMillis => Some((1, 15)),
        _ => None,
    }
}

/// Backtracking matcher over the template parts.
fn match_parts(parts: &[Part], s: &str, caps: &mut Captures) -> bool {
    let Some((first, rest)) = parts.split_first() else {
        return s.is_empty();
    };
    let field = match first {
        Part::Lit(l) => {
            return s
                .strip_prefix(l.as_str())
                .is_some_and(|r| match_parts(rest, r, caps))
        }
        Part::Field(f) => f,
    };
    // Candidate lengths, longest first (greedy), backtracking to shorter ones.
    let candidates: Vec<usize> = if let Some((min, max)) = digits(field) {
        let n = s.bytes().take_while(u8::is_ascii_digit).count().min(max);
        (min..=n).rev().collect()
    } else {
        let allow_slash = matches!(field, Field::Any);
        let limit = if allow_slash {
            s.len()
        } else {
            s.find('/').unwrap_or(s.len())
        };
        let mut ends: Vec<usize> = s[..limit]
            .char_indices()
            .map(|(i, _)| i)
            .skip(1)
            .chain([limit])
            .collect();
        ends.retain(|&e| e > 0);
        if allow_slash {
            ends.insert(0, 0);
        }
        ends.into_iter().rev().collect()
    };
    for len in candidates {
        let mut c2 = caps.clone();
        if assign(field, &s[..len], &mut c2) && match_parts(rest, &s[len..], &mut c2) {
            *caps = c2;
            return true;
        }
    }
    false
}

/// Store a captured value; false if it is not acceptable for the field.
fn assign(field: &Field, v: &str, caps: &mut Captures) -> bool {
    let num = || v.parse::<i64>().ok();
    match field {
        Field::Service => caps.service = Some(v.to_string()),
        Field::Type => caps.ptype = Some(v.to_string()),
        Field::Year => caps.year = num().map(|n| n as i32),
        Field::Month => {
            caps.month = num().filter(|n| (1..=12).contains(n)).map(|n| n as u32);
            return caps.month.is_some();
        }
        Field::Day => {
            caps.day = num().filter(|n| (1..=31).contains(n)).map(|n| n as u32);
            return caps.day.is_some();
        }
        Field::Hour => {
            caps.hour = num().filter(|n| (0..24).contains(n)).map(|n| n as u32);
            return caps.hour.is_some();
        }
        Field::Minute => {
            caps.minute = num().filter(|n| (0..60).contains(n)).map(|n| n as u32);
            return caps.minute.is_some();
        }
        Field::Second => {
            caps.second = num().filter(|n| (0..61).contains(n)).map(|n| n as u32);
            return caps.second.is_some();
        }
        Field::Unix => caps.unix = num(),
        Field::UnixMillis => caps.unix_ms = num(),
        Field::Ignore | Field::Any => {}
        Field::Label(k) => {
            caps.labels.insert(k.clone(), v.to_string());
        }
        Field::Labels => match parse_profefe_labels(v) {
            Ok(l) => caps.labels.extend(l),
            Err(_) => return false,
        },
    }
    true
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
        Defaults {
            service: None,
            profile_type: "unknown".to_string(),
        }
    }
}

/// The outcome of resolving an object's metadata.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Resolution {
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
        Resolver {
            profefe: true,
            templates: Vec::new(),
            defaults: Defaults::default(),
        }
    }
}

impl Resolver {
    /// profefe keys only, no defaults.
    pub fn profefe_only() -> Self {
        Self::default()
    }

    /// Resolve from the key alone (profefe, then templates). `Err` carries the reasons.
    pub fn resolve_key(
        &self,
        key: &str,
        fallback_time: Option<DateTime<Utc>>,
    ) -> Result<ProfileMeta, String> {
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
    pub fn resolve(
        &self,
        key: &str,
        metadata: Option<&HashMap<String, String>>,
        fallback_time: Option<DateTime<Utc>>,
    ) -> Resolution {
        let mut reason = match self.resolve_key(key, fallback_time) {
            Ok(m) => return Resolution::Matched(m),
            Err(r) => r,
        };
        match metadata {
            Some(md) => match parse_object_metadata(md, fallback_time, &self.defaults.profile_type)
            {
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

#[cfg(test)]
mod tests {
    use super::*;

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s).unwrap()
    }

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

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
        let m = parse_profefe_key(
            "P0.svc/2/9bsv0s3ipt32jfck6kt0,az=eu+west%2F1,host=h%C3%A9,%3Dk=a%2Cb",
        )
        .unwrap();
        assert_eq!(
            m.labels,
            labels(&[("az", "eu west/1"), ("host", "hé"), ("=k", "a,b")])
        );
    }

    #[test]
    fn profefe_key_roundtrip() {
        let l = labels(&[("zone", "us east/1"), ("a", "x=y,z"), ("ü", "ö")]);
        let at = t(2024, 5, 6, 7, 8, 9);
        let key = profefe_key("team/api", 2, at, 42, &l);
        assert!(key.starts_with("P0.team__api/2/"));
        let m = parse_profefe_key(&key).unwrap();
        assert_eq!(
            (m.service.as_str(), m.profile_type.as_str(), m.created_at),
            ("team/api", "heap", at)
        );
        assert_eq!(m.labels, l);
    }

    #[test]
    fn xid_codec() {
        let id = decode_xid("9bsv0s3ipt32jfck6kt0").unwrap();
        assert_eq!(encode_xid(&id), "9bsv0s3ipt32jfck6kt0");
        assert_eq!(
            xid_time("9bsv0s3ipt32jfck6kt0").unwrap().timestamp(),
            1257894000
        );
        assert!(decode_xid("9bsv0s3ipt32jfck6kt").is_err());
        assert!(decode_xid("9bsv0s3ipt32jfck6ktz").is_err());
        assert!(decode_xid("9BSV0S3IPT32JFCK6KT0").is_err());
    }

    #[test]
    fn event_key_decoding() {
        assert_eq!(
            decode_event_key("my+profile%2B1.pb.gz").unwrap(),
            "my profile+1.pb.gz"
        );
        assert_eq!(
            decode_event_key("svc/%E6%97%A5%E6%9C%AC/cpu.pb.gz").unwrap(),
            "svc/日本/cpu.pb.gz"
        );
        assert_eq!(
            decode_event_key("P0.svc1/1/9bsv0s3ipt32jfck6kt0%2Ck1%3Dv1").unwrap(),
            "P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1"
        );
        assert!(decode_event_key("bad%G1").is_err());
        assert!(decode_event_key("trunc%4").is_err());
        assert!(decode_event_key("%FF%FE").is_err());
        assert_eq!(query_escape("a b/c,d=é"), "a+b%2Fc%2Cd%3D%C3%A9");
    }

    #[test]
    fn template_date_layout() {
        let tpl = Template::parse("{service}/{type}/{yyyy}/{mm}/{dd}/{name}").unwrap();
        let d = Defaults::default();
        let m = tpl
            .matches("checkout/heap/2024/03/05/host-1.pb.gz", None, &d)
            .unwrap();
        assert_eq!(
            (m.service.as_str(), m.profile_type.as_str()),
            ("checkout", "heap")
        );
        assert_eq!(m.created_at, t(2024, 3, 5, 0, 0, 0));
        // The event time is used when it is on the key's date.
        let ev = t(2024, 3, 5, 12, 30, 1);
        assert_eq!(
            tpl.matches("checkout/heap/2024/03/05/x", Some(ev), &d)
                .unwrap()
                .created_at,
            ev
        );
        assert_eq!(
            tpl.matches("checkout/heap/2024/03/06/x", Some(ev), &d)
                .unwrap()
                .created_at,
            t(2024, 3, 6, 0, 0, 0)
        );
        assert!(tpl
            .matches("checkout/heap/2024/13/05/x", None, &d)
            .is_none());
        assert!(tpl
            .matches("checkout/heap/2024/03/05/a/b", None, &d)
            .is_none());
        assert!(tpl.matches("checkout/heap/2024/03/05/", None, &d).is_none());
        assert!(tpl.matches("checkout/heap/24/03/05/x", None, &d).is_none());
    }

    #[test]
    fn template_other_fields() {
        let d = Defaults {
            service: Some("fallback".into()),
            profile_type: "unknown".into(),
        };
        let tpl = Template::parse("profiles/{label:env}/{*}/{type}-{unix}.pprof").unwrap();
        let m = tpl
            .matches("profiles/prod/a/b/c/1-1700000000.pprof", None, &d)
            .unwrap();
        assert_eq!(m.service, "fallback");
        assert_eq!(m.profile_type, "cpu");
        assert_eq!(m.labels, labels(&[("env", "prod")]));
        assert_eq!(m.created_at.timestamp(), 1_700_000_000);

        let tpl = Template::parse("{service}/{yyyy}{mm}{dd}T{hh}{min}{ss}_{labels}.pb.gz").unwrap();
        let m = tpl
            .matches(
                "api/20240102T030405_a=1,b=x+y.pb.gz",
                None,
                &Defaults::default(),
            )
            .unwrap();
        assert_eq!(m.created_at, t(2024, 1, 2, 3, 4, 5));
        assert_eq!(m.labels, labels(&[("a", "1"), ("b", "x y")]));
        assert_eq!(m.profile_type, "unknown");

        assert!(Template::parse("{service}{type}").is_err());
        assert!(Template::parse("{nope}/x").is_err());
        assert!(Template::parse("{service").is_err());
        assert!(Template::parse("plain").is_err());
    }

    #[test]
    fn object_metadata() {
        let md: HashMap<String, String> = [
            ("service", "svc1"),
            ("type", "heap"),
            ("labels", "k1=v1,k2=v+2"),
            ("created_at", "2009-11-10T23:00:00Z"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let m = parse_object_metadata(&md, None, "unknown")
            .unwrap()
            .unwrap();
        assert_eq!(m.service, "svc1");
        assert_eq!(m.profile_type, "heap");
        assert_eq!(m.labels, labels(&[("k1", "v1"), ("k2", "v 2")]));
        assert_eq!(m.created_at, t(2009, 11, 10, 23, 0, 0));

        // MinIO-style header names.
        let md: HashMap<String, String> = [
            ("X-Amz-Meta-Service", "svc2"),
            ("X-Amz-Meta-Type", "2"),
            ("X-Amz-Meta-Created_at", "2020-01-01T00:00:00+01:00"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        let m = parse_object_metadata(&md, None, "unknown")
            .unwrap()
            .unwrap();
        assert_eq!(
            (m.service.as_str(), m.profile_type.as_str()),
            ("svc2", "heap")
        );
        assert_eq!(m.created_at, t(2019, 12, 31, 23, 0, 0));

        assert_eq!(
            parse_object_metadata(&HashMap::new(), None, "unknown").unwrap(),
            None
        );
    }

    #[test]
    fn resolver_order_and_defaults() {
        let mut r = Resolver::default();
        r.templates
            .push(Template::parse("{service}/{type}/{name}").unwrap());
        let at = t(2024, 1, 1, 0, 0, 0);
        match r.resolve("P0.svc1/3/9bsv0s3ipt32jfck6kt0", None, Some(at)) {
            Resolution::Matched(m) => assert_eq!(
                (m.layout, m.profile_type.as_str()),
                (LayoutKind::Profefe, "block")
            ),
            other => panic!("{other:?}"),
        }
        match r.resolve("api/mutex/x.pb.gz", None, Some(at)) {
            Resolution::Matched(m) => assert_eq!(
                (m.layout, m.service.as_str(), m.created_at),
                (LayoutKind::Template, "api", at)
            ),
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
            Resolution::Matched(m) => assert_eq!(
                (m.layout, m.service.as_str(), m.profile_type.as_str()),
                (LayoutKind::ObjectMetadata, "from-md", "unknown")
            ),
            other => panic!("{other:?}"),
        }
        r.defaults = Defaults {
            service: Some("default-svc".into()),
            profile_type: "cpu".into(),
        };
        match r.resolve("loose-file.pb.gz", None, Some(at)) {
            Resolution::Matched(m) => {
                assert_eq!(
                    (
                        m.layout,
                        m.service.as_str(),
                        m.profile_type.as_str(),
                        m.created_at
                    ),
                    (LayoutKind::Default, "default-svc", "cpu", at)
                )
            }
            other => panic!("{other:?}"),
        }
    }
}

//! Key templates for layouts other than profefe's, e.g. `{service}/{type}/{yyyy}/{mm}/{dd}/{name}`.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, NaiveDate, TimeZone, Utc};
use pprofhouse_message::{LayoutKind, ProfileMeta};

use super::profefe::{normalize_type, parse_profefe_labels};
use super::{Defaults, LayoutError};

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
    /// Parses a template; fails on unknown fields or a bad shape.
    pub fn parse(s: &str) -> Result<Self, LayoutError> {
        let err = |reason: &str| LayoutError::InvalidTemplate { template: s.to_string(), reason: reason.to_string() };
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
                let free =
                    |f: &Field| matches!(f, Field::Service | Field::Type | Field::Ignore | Field::Any | Field::Label(_) | Field::Labels);
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
        Ok(Template { source: s.to_string(), parts })
    }

    /// A template that matches nothing (an empty setting).
    pub fn empty() -> Self {
        Template { source: String::new(), parts: Vec::new() }
    }

    /// The template text.
    pub fn as_str(&self) -> &str {
        &self.source
    }

    /// Match a key; `None` if it does not match. `fallback_time` is used when the template has no
    /// complete time (e.g. only a date: the event time is more precise, if it is on that date).
    pub fn matches(&self, key: &str, fallback_time: Option<DateTime<Utc>>, defaults: &Defaults) -> Option<ProfileMeta> {
        let mut caps = Captures::default();
        if self.parts.is_empty() || !match_parts(&self.parts, key, &mut caps) {
            return None;
        }
        let service = caps.service.or_else(|| defaults.service.clone())?;
        let profile_type = caps.ptype.map(|t| normalize_type(&t)).unwrap_or_else(|| defaults.profile_type.clone());
        let created_at = if let Some(ms) = caps.unix_ms {
            Utc.timestamp_millis_opt(ms).single()?
        } else if let Some(s) = caps.unix {
            Utc.timestamp_opt(s, 0).single()?
        } else if let (Some(y), Some(m), Some(d)) = (caps.year, caps.month, caps.day) {
            let date = NaiveDate::from_ymd_opt(y, m, d)?;
            match (caps.hour, fallback_time) {
                (Some(h), _) => Utc.from_utc_datetime(&date.and_hms_opt(h, caps.minute.unwrap_or(0), caps.second.unwrap_or(0))?),
                (None, Some(t)) if t.date_naive() == date => t,
                (None, _) => Utc.from_utc_datetime(&date.and_hms_opt(0, 0, 0)?),
            }
        } else {
            fallback_time.unwrap_or_else(Utc::now)
        };
        Some(ProfileMeta { service, profile_type, labels: caps.labels, created_at, layout: LayoutKind::Template })
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
        Part::Lit(l) => return s.strip_prefix(l.as_str()).is_some_and(|r| match_parts(rest, r, caps)),
        Part::Field(f) => f,
    };
    // Candidate lengths, longest first (greedy), backtracking to shorter ones.
    let candidates: Vec<usize> = if let Some((min, max)) = digits(field) {
        let n = s.bytes().take_while(u8::is_ascii_digit).count().min(max);
        (min..=n).rev().collect()
    } else {
        let allow_slash = matches!(field, Field::Any);
        let limit = if allow_slash { s.len() } else { s.find('/').unwrap_or(s.len()) };
        let mut ends: Vec<usize> = s[..limit].char_indices().map(|(i, _)| i).skip(1).chain([limit]).collect();
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::test_util::*;

    #[test]
    fn template_date_layout() {
        let tpl = Template::parse("{service}/{type}/{yyyy}/{mm}/{dd}/{name}").unwrap();
        let d = Defaults::default();
        let m = tpl.matches("checkout/heap/2024/03/05/host-1.pb.gz", None, &d).unwrap();
        assert_eq!((m.service.as_str(), m.profile_type.as_str()), ("checkout", "heap"));
        assert_eq!(m.created_at, t(2024, 3, 5, 0, 0, 0));
        // The event time is used when it is on the key's date.
        let ev = t(2024, 3, 5, 12, 30, 1);
        assert_eq!(tpl.matches("checkout/heap/2024/03/05/x", Some(ev), &d).unwrap().created_at, ev);
        assert_eq!(tpl.matches("checkout/heap/2024/03/06/x", Some(ev), &d).unwrap().created_at, t(2024, 3, 6, 0, 0, 0));
        assert!(tpl.matches("checkout/heap/2024/13/05/x", None, &d).is_none());
        assert!(tpl.matches("checkout/heap/2024/03/05/a/b", None, &d).is_none());
        assert!(tpl.matches("checkout/heap/2024/03/05/", None, &d).is_none());
        assert!(tpl.matches("checkout/heap/24/03/05/x", None, &d).is_none());
    }

    #[test]
    fn template_other_fields() {
        let d = Defaults { service: Some("fallback".into()), profile_type: "unknown".into() };
        let tpl = Template::parse("profiles/{label:env}/{*}/{type}-{unix}.pprof").unwrap();
        let m = tpl.matches("profiles/prod/a/b/c/1-1700000000.pprof", None, &d).unwrap();
        assert_eq!(m.service, "fallback");
        assert_eq!(m.profile_type, "cpu");
        assert_eq!(m.labels, labels(&[("env", "prod")]));
        assert_eq!(m.created_at.timestamp(), 1_700_000_000);

        let tpl = Template::parse("{service}/{yyyy}{mm}{dd}T{hh}{min}{ss}_{labels}.pb.gz").unwrap();
        let m = tpl.matches("api/20240102T030405_a=1,b=x+y.pb.gz", None, &Defaults::default()).unwrap();
        assert_eq!(m.created_at, t(2024, 1, 2, 3, 4, 5));
        assert_eq!(m.labels, labels(&[("a", "1"), ("b", "x y")]));
        assert_eq!(m.profile_type, "unknown");

        assert!(Template::parse("{service}{type}").is_err());
        assert!(Template::parse("{nope}/x").is_err());
        assert!(Template::parse("{service").is_err());
        assert!(Template::parse("plain").is_err());
    }
}

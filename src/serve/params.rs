//! Query strings as profefe reads them: `service`, `type` (a name or profefe's number),
//! `from`/`to` (RFC 3339 or profefe's `2006-01-02T15:04:05`, UTC), `labels=k=v,k=v`.
use std::collections::BTreeMap;

use pprofhouse_ingest::layout::{normalize_type, parse_profefe_labels};
use pprofhouse_sql::query::Window;

use super::ApiError;

/// The decoded query string (the last value wins when a key repeats).
pub struct Params(BTreeMap<String, String>);

impl Params {
    /// Parses `a=b&c=d` (percent- and `+`-decoded).
    pub fn parse(raw: Option<&str>) -> Params {
        Params(form_urlencoded::parse(raw.unwrap_or("").as_bytes()).into_owned().collect())
    }

    /// A non-empty value.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.get(k).map(String::as_str).filter(|v| !v.is_empty())
    }

    /// A value that must be there.
    pub fn required(&self, k: &str) -> Result<&str, ApiError> {
        self.get(k).ok_or_else(|| ApiError::bad(format!("missing {k}")))
    }

    /// `type`, canonical (`1` → `cpu`, `profile` → `cpu`).
    pub fn profile_type(&self) -> Result<Option<String>, ApiError> {
        Ok(self.get("type").map(normalize_type))
    }

    /// `labels=k=v,k=v` (profefe's syntax, each side query-escaped).
    pub fn labels(&self) -> Result<Vec<(String, String)>, ApiError> {
        match self.get("labels") {
            None => Ok(Vec::new()),
            Some(s) => Ok(parse_profefe_labels(s).map_err(|e| ApiError::bad(format!("bad labels {s:?}: {e}")))?.into_iter().collect()),
        }
    }

    /// A time parameter, ms since the epoch.
    pub fn time(&self, k: &str) -> Result<Option<i64>, ApiError> {
        self.get(k).map(|v| parse_time(v).map_err(|e| ApiError::bad(format!("bad \"{k}\" timestamp {v:?}: {e}")))).transpose()
    }

    /// The window: `from` (required, unless `since`) to `to` (default: now), or `since=24h`
    /// ending now.
    pub fn window(&self) -> Result<Window, ApiError> {
        let now = chrono::Utc::now().timestamp_millis() + 1;
        if let Some(s) = self.get("since") {
            let d = humantime::parse_duration(s).map_err(|e| ApiError::bad(format!("bad since {s:?}: {e}")))?;
            return Ok(Window { from_ms: now - d.as_millis() as i64, to_ms: now });
        }
        let from = self.time("from")?.ok_or_else(|| ApiError::bad("missing from (or since)"))?;
        let to = self.time("to")?.unwrap_or(now);
        if to <= from {
            return Err(ApiError::bad("\"to\" must be after \"from\""));
        }
        Ok(Window { from_ms: from, to_ms: to })
    }

    /// A number with a default.
    pub fn number<T: std::str::FromStr>(&self, k: &str, default: T) -> Result<T, ApiError> {
        match self.get(k) {
            None => Ok(default),
            Some(v) => v.parse().map_err(|_| ApiError::bad(format!("bad {k} {v:?}"))),
        }
    }
}

/// RFC 3339, or profefe's `YYYY-MM-DDTHH:MM:SS` taken as UTC → ms since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    use time::format_description::well_known::Rfc3339;
    if let Ok(t) = time::OffsetDateTime::parse(s, &Rfc3339) {
        return Ok((t.unix_timestamp_nanos() / 1_000_000) as i64);
    }
    // profefe's format is RFC 3339 without the offset.
    let utc = format!("{s}Z");
    match time::OffsetDateTime::parse(&utc, &Rfc3339) {
        Ok(t) if s.len() == 19 => Ok((t.unix_timestamp_nanos() / 1_000_000) as i64),
        _ => Err("want RFC 3339 (2026-11-22T10:00:00Z) or 2026-11-22T10:00:00 (UTC)".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_in_both_formats() {
        assert_eq!(parse_time("1970-01-01T00:00:01Z"), Ok(1000));
        assert_eq!(parse_time("1970-01-01T01:00:01+01:00"), Ok(1000));
        assert_eq!(parse_time("1970-01-01T00:00:02"), Ok(2000));
        assert!(parse_time("yesterday").is_err());
    }

    #[test]
    fn labels_and_types_as_profefe_reads_them() {
        let p = Params::parse(Some("service=api&type=1&labels=version%3D1.2%2Cdc%3Dfra&from=1970-01-01T00:00:00&to=1970-01-01T00:00:05Z"));
        assert_eq!(p.profile_type().unwrap().as_deref(), Some("cpu"));
        assert_eq!(p.labels().unwrap(), vec![("dc".to_string(), "fra".to_string()), ("version".to_string(), "1.2".to_string())]);
        assert_eq!(p.window().unwrap(), Window { from_ms: 0, to_ms: 5000 });
        assert!(Params::parse(Some("from=1970-01-01T00:00:05Z&to=1970-01-01T00:00:01Z")).window().is_err());
        assert!(Params::parse(None).required("service").is_err());
    }
}

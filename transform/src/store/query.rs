//! The fleet queries of `sql/queries/`, bound and run: every value travels as a ClickHouse
//! query parameter, never spliced into SQL text.
//!
//! Top-N picks its source: the daily rollup when the window falls on whole UTC days, the
//! hourly one on whole hours, the raw rows otherwise or when labels filter (rollups keep no
//! labels). All three give the same numbers over the same window.

use clickhouse::Row;
use pprofhouse_sql::queries::{self, Source};
use serde::Deserialize;

use super::StoreError;

/// A time window `[from, to)` in ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    pub from_ms: i64,
    pub to_ms: i64,
}

const HOUR_MS: i64 = 3_600_000;
const DAY_MS: i64 = 24 * HOUR_MS;

impl Window {
    /// The coarsest source that answers exactly for this window (and filter).
    pub fn source(&self, has_labels: bool) -> Source {
        if has_labels {
            return Source::Raw;
        }
        let aligned = |g: i64| self.from_ms % g == 0 && self.to_ms % g == 0;
        if aligned(DAY_MS) {
            Source::Daily
        } else if aligned(HOUR_MS) {
            Source::Hourly
        } else {
            Source::Raw
        }
    }
}

/// Formats ms since the epoch as a ClickHouse DateTime64(3) literal (UTC).
pub fn datetime64(ms: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp_nanos(ms as i128 * 1_000_000).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}.{:03}",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second(),
        t.millisecond()
    )
}

/// A fleet top-N request.
#[derive(Debug, Clone)]
pub struct TopQuery {
    pub profile_type: String,
    pub sample_type: String,
    pub window: Window,
    pub service: Option<String>,
    pub labels: Vec<(String, String)>,
    pub by_cum: bool,
    pub limit: u32,
    /// Force a source (tests compare them); `None`: [`Window::source`].
    pub source: Option<Source>,
}

#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct FunctionTotals {
    #[serde(with = "serde_bytes")]
    pub function: Vec<u8>,
    pub flat: i64,
    pub cum: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Row, Deserialize)]
pub struct Total {
    pub total: i64,
    pub profiles: u64,
}

fn label_params(q: clickhouse::query::Query, prefix: &str, labels: &[(String, String)]) -> clickhouse::query::Query {
    let keys: Vec<&str> = labels.iter().map(|(k, _)| k.as_str()).collect();
    let values: Vec<&str> = labels.iter().map(|(_, v)| v.as_str()).collect();
    q.param(&format!("{prefix}label_keys"), keys).param(&format!("{prefix}label_values"), values)
}

fn window_params(q: clickhouse::query::Query, prefix: &str, w: Window) -> clickhouse::query::Query {
    q.param(&format!("{prefix}from"), datetime64(w.from_ms)).param(&format!("{prefix}to"), datetime64(w.to_ms))
}

/// The fleet top-N functions.
pub async fn top_functions(client: &clickhouse::Client, q: &TopQuery) -> Result<Vec<FunctionTotals>, StoreError> {
    let source = q.source.unwrap_or_else(|| q.window.source(!q.labels.is_empty()));
    if source != Source::Raw && !q.labels.is_empty() {
        return Err(StoreError::Invalid("rollups keep no labels: a label filter needs the raw source".into()));
    }
    let sql = queries::top_functions_rollup(source);
    let mut query = client
        .query(queries::body(&sql))
        .param("profile_type", &q.profile_type)
        .param("sample_type", &q.sample_type)
        .param("service", q.service.as_deref().unwrap_or(""))
        .param("by_cum", q.by_cum as u8)
        .param("limit", q.limit);
    query = window_params(query, "", q.window);
    if source == Source::Raw {
        query = label_params(query, "", &q.labels);
    }
    Ok(query.fetch_all().await?)
}

/// The sample type's total over the window's profiles (the 100% of a top table).
pub async fn total(client: &clickhouse::Client, q: &TopQuery) -> Result<Total, StoreError> {
    let query = client
        .query(queries::body(queries::TOTAL))
        .param("profile_type", &q.profile_type)
        .param("sample_type", &q.sample_type)
        .param("service", q.service.as_deref().unwrap_or(""));
    let query = label_params(window_params(query, "", q.window), "", &q.labels);
    Ok(query.fetch_one().await?)
}

/// The sample type a profile type shows by default (the most common default among its stored
/// profiles in the window), for `top` without `--sample-type`.
pub async fn default_sample_type(client: &clickhouse::Client, profile_type: &str, w: Window) -> Result<Option<String>, StoreError> {
    let query = client
        .query("SELECT default_sample_type FROM profiles WHERE profile_type = {profile_type:String} AND ts >= {from:DateTime64(3)} AND ts < {to:DateTime64(3)} GROUP BY default_sample_type ORDER BY count() DESC LIMIT 1")
        .param("profile_type", profile_type);
    let rows: Vec<String> = window_params(query, "", w).fetch_all().await?;
    Ok(rows.into_iter().next())
}

/// One point of a function's time series.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct SeriesPoint {
    /// Bucket start, ms since the epoch (DateTime64(3) would be; we select DateTime → seconds).
    pub t: u32,
    pub service: String,
    pub flat: i64,
    pub cum: i64,
}

/// A function's time series per service, in buckets of `step_s` seconds.
pub async fn function_timeseries(
    client: &clickhouse::Client,
    function: &str,
    profile_type: &str,
    sample_type: &str,
    w: Window,
    step_s: u32,
    service: Option<&str>,
    source: Source,
) -> Result<Vec<SeriesPoint>, StoreError> {
    let sql = match source {
        Source::Raw => queries::FUNCTION_TIMESERIES,
        _ => queries::FUNCTION_TIMESERIES_ROLLUP,
    };
    let sql = format!("SELECT toUInt32(toUnixTimestamp(t)) AS t, service, flat, cum FROM ({})", queries::body(sql));
    let query = client
        .query(&sql)
        .param("function", function)
        .param("profile_type", profile_type)
        .param("sample_type", sample_type)
        .param("step", step_s)
        .param("service", service.unwrap_or(""));
    Ok(window_params(query, "", w).fetch_all().await?)
}

/// Services spending most in a function.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct ServiceShare {
    pub service: String,
    pub flat: i64,
    pub cum: i64,
    pub service_total: i64,
    pub cum_share: f64,
}

pub async fn services_for_function(
    client: &clickhouse::Client,
    function: &str,
    profile_type: &str,
    sample_type: &str,
    w: Window,
    limit: u32,
) -> Result<Vec<ServiceShare>, StoreError> {
    let query = client
        .query(queries::body(queries::SERVICES_FOR_FUNCTION))
        .param("function", function)
        .param("profile_type", profile_type)
        .param("sample_type", sample_type)
        .param("limit", limit);
    Ok(window_params(query, "", w).fetch_all().await?)
}

/// One side of a diff: a window and a label selection.
#[derive(Debug, Clone)]
pub struct DiffSide {
    pub window: Window,
    pub labels: Vec<(String, String)>,
}

#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct DiffRow {
    #[serde(with = "serde_bytes")]
    pub function: Vec<u8>,
    pub a: i64,
    pub b: i64,
    pub delta: i64,
    pub relative: Option<f64>,
}

#[allow(clippy::too_many_arguments)]
pub async fn diff(
    client: &clickhouse::Client,
    profile_type: &str,
    sample_type: &str,
    service: Option<&str>,
    a: &DiffSide,
    b: &DiffSide,
    by_cum: bool,
    limit: u32,
) -> Result<Vec<DiffRow>, StoreError> {
    let query = client
        .query(queries::body(queries::DIFF))
        .param("profile_type", profile_type)
        .param("sample_type", sample_type)
        .param("service", service.unwrap_or(""))
        .param("by_cum", by_cum as u8)
        .param("limit", limit);
    let query = label_params(window_params(query, "a_", a.window), "a_", &a.labels);
    let query = label_params(window_params(query, "b_", b.window), "b_", &b.labels);
    Ok(query.fetch_all().await?)
}

/// One node of a flame graph in Grafana's nested-set form.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct FlameNode {
    pub level: u32,
    pub value: i64,
    #[serde(rename = "self")]
    pub self_value: i64,
    #[serde(with = "serde_bytes")]
    pub label: Vec<u8>,
}

pub async fn flamegraph(
    client: &clickhouse::Client,
    profile_type: &str,
    sample_type: &str,
    w: Window,
    service: Option<&str>,
    labels: &[(String, String)],
) -> Result<Vec<FlameNode>, StoreError> {
    let query = client
        .query(queries::body(queries::FLAMEGRAPH))
        .param("profile_type", profile_type)
        .param("sample_type", sample_type)
        .param("service", service.unwrap_or(""));
    let query = label_params(window_params(query, "", w), "", labels);
    Ok(query.fetch_all().await?)
}

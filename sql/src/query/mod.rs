//! The fleet queries of `sql/queries/`, bound and run: every value travels as a ClickHouse
//! query parameter, never spliced into SQL text.
//!
//! Top-N picks its source: the daily rollup when the window falls on whole UTC days, the
//! hourly one on whole hours, the raw rows otherwise or when labels filter (rollups keep no
//! labels). All three give the same numbers over the same window.

pub mod catalog;
pub mod merge;
pub mod sql;

use clickhouse::Row;
use serde::Deserialize;

pub use self::sql::Source;

use crate::Error;

/// A time window `[from, to)` in ms since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// Start, ms since the epoch (inclusive).
    pub from_ms: i64,
    /// End, ms since the epoch (exclusive).
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
    /// Profile type (cpu, heap, …).
    pub profile_type: String,
    /// Sample type `type/unit`.
    pub sample_type: String,
    /// Time window.
    pub window: Window,
    /// Service.
    pub service: Option<String>,
    /// Label filters `k=v`; all must match.
    pub labels: Vec<(String, String)>,
    /// Order by cum instead of flat.
    pub by_cum: bool,
    /// How many functions.
    pub limit: u32,
    /// Force a source (tests compare them); `None`: [`Window::source`].
    pub source: Option<Source>,
}

/// A function's totals over a window.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct FunctionTotals {
    /// Function name.
    #[serde(with = "serde_bytes")]
    pub function: Vec<u8>,
    /// Flat total.
    pub flat: i64,
    /// Cum total.
    pub cum: i64,
}

/// A sample type's total over a window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Row, Deserialize)]
pub struct Total {
    /// Sum of the sample type's values.
    pub total: i64,
    /// Profiles counted.
    pub profiles: u64,
    /// Their samples (Σ `sample_count`).
    pub samples: u64,
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
pub async fn top_functions(client: &clickhouse::Client, q: &TopQuery) -> Result<Vec<FunctionTotals>, Error> {
    let source = q.source.unwrap_or_else(|| q.window.source(!q.labels.is_empty()));
    if source != Source::Raw && !q.labels.is_empty() {
        return Err(Error::Invalid("rollups keep no labels: a label filter needs the raw source".into()));
    }
    let sql = sql::top_functions_rollup(source);
    let mut query = client
        .query(sql::body(&sql))
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
pub async fn total(client: &clickhouse::Client, q: &TopQuery) -> Result<Total, Error> {
    let query = client
        .query(sql::body(sql::TOTAL))
        .param("profile_type", &q.profile_type)
        .param("sample_type", &q.sample_type)
        .param("service", q.service.as_deref().unwrap_or(""));
    let query = label_params(window_params(query, "", q.window), "", &q.labels);
    Ok(query.fetch_one().await?)
}

/// The sample type a profile type shows by default (the most common default among its stored
/// profiles in the window), for `top` without `--sample-type`.
pub async fn default_sample_type(client: &clickhouse::Client, profile_type: &str, w: Window) -> Result<Option<String>, Error> {
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
    /// Service.
    pub service: String,
    /// Flat total.
    pub flat: i64,
    /// Cum total.
    pub cum: i64,
}

/// A function's time series per service, in buckets of `step_s` seconds.
#[allow(clippy::too_many_arguments)]
pub async fn function_timeseries(
    client: &clickhouse::Client,
    function: &str,
    profile_type: &str,
    sample_type: &str,
    w: Window,
    step_s: u32,
    service: Option<&str>,
    source: Source,
) -> Result<Vec<SeriesPoint>, Error> {
    let sql = match source {
        Source::Raw => sql::FUNCTION_TIMESERIES,
        _ => sql::FUNCTION_TIMESERIES_ROLLUP,
    };
    let sql = format!("SELECT toUInt32(toUnixTimestamp(t)) AS t, service, flat, cum FROM ({})", sql::body(sql));
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
    /// Service.
    pub service: String,
    /// Flat total.
    pub flat: i64,
    /// Cum total.
    pub cum: i64,
    /// The service's total for the sample type.
    pub service_total: i64,
    /// cum / service_total.
    pub cum_share: f64,
}

/// The services a function spends in, by cum, with its share of each service's total.
pub async fn services_for_function(
    client: &clickhouse::Client,
    function: &str,
    profile_type: &str,
    sample_type: &str,
    w: Window,
    limit: u32,
) -> Result<Vec<ServiceShare>, Error> {
    let query = client
        .query(sql::body(sql::SERVICES_FOR_FUNCTION))
        .param("function", function)
        .param("profile_type", profile_type)
        .param("sample_type", sample_type)
        .param("limit", limit);
    Ok(window_params(query, "", w).fetch_all().await?)
}

/// One side of a diff: a window and a label selection.
#[derive(Debug, Clone)]
pub struct DiffSide {
    /// Time window.
    pub window: Window,
    /// Label filters `k=v`; all must match.
    pub labels: Vec<(String, String)>,
}

/// A function's values in two windows (or label selections) and the change.
#[derive(Debug, Clone, PartialEq, Row, Deserialize)]
pub struct DiffRow {
    /// Function name.
    #[serde(with = "serde_bytes")]
    pub function: Vec<u8>,
    /// Value on side A.
    pub a: i64,
    /// Value on side B.
    pub b: i64,
    /// b − a.
    pub delta: i64,
    /// delta / a (None when a is 0).
    pub relative: Option<f64>,
}

/// Per-function flat of two sides (windows or label selections), by |delta|.
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
) -> Result<Vec<DiffRow>, Error> {
    let query = client
        .query(sql::body(sql::DIFF))
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
    /// Depth (0: root).
    pub level: u32,
    /// Total (cum) value.
    pub value: i64,
    /// Self (flat) value.
    #[serde(rename = "self")]
    pub self_value: i64,
    /// Frame name.
    #[serde(with = "serde_bytes")]
    pub label: Vec<u8>,
}

/// A flame graph (nested-set order) of one service's stacks in a window.
pub async fn flamegraph(
    client: &clickhouse::Client,
    profile_type: &str,
    sample_type: &str,
    w: Window,
    service: Option<&str>,
    labels: &[(String, String)],
) -> Result<Vec<FlameNode>, Error> {
    let query = client
        .query(sql::body(sql::FLAMEGRAPH))
        .param("profile_type", profile_type)
        .param("sample_type", sample_type)
        .param("service", service.unwrap_or(""));
    let query = label_params(window_params(query, "", w), "", labels);
    Ok(query.fetch_all().await?)
}

/// A function's flat and cum in a window and in its baseline.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct WindowPairRow {
    /// Function name.
    #[serde(with = "serde_bytes")]
    pub function: Vec<u8>,
    /// Flat in the window.
    pub flat: i64,
    /// Cum in the window.
    pub cum: i64,
    /// Flat in the baseline.
    pub base_flat: i64,
    /// Cum in the baseline.
    pub base_cum: i64,
}

/// What `report_functions` and `function_services` select: a sample type, a window and its
/// baseline, a service and labels.
#[derive(Debug, Clone)]
pub struct PairQuery {
    /// Profile type (cpu, heap, …).
    pub profile_type: String,
    /// Sample type `type/unit`.
    pub sample_type: String,
    /// The window.
    pub window: Window,
    /// The baseline window (must not overlap `window`).
    pub baseline: Window,
    /// Service.
    pub service: Option<String>,
    /// Label filters `k=v`; all must match.
    pub labels: Vec<(String, String)>,
    /// Force a source (tests compare them); `None`: the coarsest both windows allow.
    pub source: Option<Source>,
}

impl PairQuery {
    /// The coarsest source that answers exactly for both windows (raw with labels).
    pub fn pick_source(&self) -> Source {
        let has_labels = !self.labels.is_empty();
        match (self.window.source(has_labels), self.baseline.source(has_labels)) {
            (Source::Raw, _) | (_, Source::Raw) => Source::Raw,
            (Source::Hourly, _) | (_, Source::Hourly) => Source::Hourly,
            _ => Source::Daily,
        }
    }

    /// The same selection as a [`TopQuery`] over `window` (for [`total`]).
    pub fn top(&self, window: Window) -> TopQuery {
        TopQuery {
            profile_type: self.profile_type.clone(),
            sample_type: self.sample_type.clone(),
            window,
            service: self.service.clone(),
            labels: self.labels.clone(),
            by_cum: false,
            limit: 0,
            source: Some(Source::Raw),
        }
    }
}

/// Every function's flat and cum in the window and in the baseline, from the coarsest source
/// both windows allow (the same numbers from each).
pub async fn report_functions(client: &clickhouse::Client, q: &PairQuery) -> Result<Vec<WindowPairRow>, Error> {
    if q.window.from_ms < q.baseline.to_ms && q.baseline.from_ms < q.window.to_ms {
        return Err(Error::Invalid("the baseline window overlaps the window".into()));
    }
    let source = q.source.unwrap_or_else(|| q.pick_source());
    if source != Source::Raw && !q.labels.is_empty() {
        return Err(Error::Invalid("rollups keep no labels: a label filter needs the raw source".into()));
    }
    let sql = sql::report_functions_rollup(source);
    let query = client
        .query(sql::body(&sql))
        .param("profile_type", &q.profile_type)
        .param("sample_type", &q.sample_type)
        .param("service", q.service.as_deref().unwrap_or(""));
    let query = window_params(query, "", q.window);
    let query = window_params(query, "base_", q.baseline);
    if source == Source::Raw {
        return Ok(label_params(query, "", &q.labels).fetch_all().await?);
    }
    Ok(query.fetch_all().await?)
}

/// A service's part of one function over a window.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct FunctionService {
    /// Function name.
    #[serde(with = "serde_bytes")]
    pub function: Vec<u8>,
    /// Service.
    pub service: String,
    /// The function's flat in the service.
    pub flat: i64,
    /// The function's cum in the service.
    pub cum: i64,
    /// The service's total for the sample type.
    pub service_total: i64,
}

/// The top `per_function` services (by cum) of each function, over `q.window`.
pub async fn function_services(
    client: &clickhouse::Client,
    q: &PairQuery,
    functions: &[&[u8]],
    per_function: u32,
) -> Result<Vec<FunctionService>, Error> {
    let names: Vec<&str> = functions.iter().map(|f| std::str::from_utf8(f).unwrap_or("")).collect();
    let query = client
        .query(sql::body(sql::FUNCTION_SERVICES))
        .param("functions", names)
        .param("profile_type", &q.profile_type)
        .param("sample_type", &q.sample_type)
        .param("service", q.service.as_deref().unwrap_or(""))
        .param("per_function", per_function);
    let query = window_params(query, "", q.window);
    Ok(label_params(query, "", &q.labels).fetch_all().await?)
}

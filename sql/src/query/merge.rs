//! A merged pprof profile from stored stacks: the profiles a window (and service, labels)
//! covers, their headers combined as google/pprof's `Merge` combines them, and their stacks
//! summed. The pure half — stacks to `profile.proto` — is `pprofhouse_transform::pprof::encode`.
//!
//! Sample types: pprof refuses to merge profiles whose sample types differ; here they are the
//! union, in the order the earliest profiles list them, and a stack has 0 for a type its
//! profiles lack (so one `heap` query over Go versions with different types still answers).
//! The period type is the earliest profile's, the period the largest, the duration the sum,
//! the time the earliest. Stacks exist only for profiles stored with `sink.stacks` on.

use bytes::Bytes;
use clickhouse::Row;
use pprofhouse_transform::pprof::encode::ProfileParts;
use pprofhouse_transform::pprof::SampleType;
use serde::Deserialize;

use super::{label_params, sql, window_params, Window};
use crate::Error;

/// What to merge.
#[derive(Debug, Clone)]
pub struct MergeQuery {
    /// Profile type (cpu, heap, …).
    pub profile_type: String,
    /// Time window.
    pub window: Window,
    /// Only this service.
    pub service: Option<String>,
    /// Label filters `k=v`; all must match.
    pub labels: Vec<(String, String)>,
    /// Most distinct stacks the merged profile may hold; more is an error
    /// ([`Error::Invalid`]) that asks for a narrower selection.
    pub max_stacks: u64,
}

/// One group of profiles with the same header.
#[derive(Debug, Clone, Row, Deserialize)]
struct HeaderRow {
    sample_types: Vec<String>,
    period_type: String,
    default_sample_type: String,
    period: i64,
    duration_ns: i64,
    ts_ms: i64,
    profiles: u64,
}

/// One distinct stack.
#[derive(Debug, Clone, Row, Deserialize)]
struct StackRow {
    types: Vec<String>,
    values: Vec<i64>,
    frames: Vec<serde_bytes::ByteBuf>,
}

/// `type/unit` → [`SampleType`] (the unit is what follows the last `/`).
pub fn sample_type(s: &str) -> SampleType {
    match s.rsplit_once('/') {
        Some((t, u)) => SampleType::new(t, u),
        None => SampleType::new(s, ""),
    }
}

fn bind(q: clickhouse::query::Query, m: &MergeQuery) -> clickhouse::query::Query {
    let q = q.param("profile_type", &m.profile_type).param("service", m.service.as_deref().unwrap_or(""));
    label_params(window_params(q, "", m.window), "", &m.labels)
}

/// The merged profile's parts, or `None` when no profile matches.
pub async fn merged_profile(client: &clickhouse::Client, m: &MergeQuery) -> Result<Option<ProfileParts>, Error> {
    let headers = bind(client.query(sql::body(sql::MERGE_HEADERS)), m).fetch_all::<HeaderRow>().await?;
    if headers.is_empty() {
        return Ok(None);
    }
    let stacks =
        bind(client.query(sql::body(sql::MERGE_STACKS)), m).param("limit", m.max_stacks.saturating_add(1)).fetch_all::<StackRow>().await?;
    if stacks.len() as u64 > m.max_stacks {
        return Err(Error::Invalid(format!(
            "the merged profile would hold more than {} distinct stacks (the merge stacks limit): narrow the window, service or labels",
            m.max_stacks
        )));
    }
    let mut types: Vec<String> = Vec::new();
    let mut parts = ProfileParts { period_type: None, ..Default::default() };
    let mut time_ms = i64::MAX;
    // The default sample type of the most profiles.
    let mut default: Option<(&str, u64)> = None;
    let mut default_counts: Vec<(&str, u64)> = Vec::new();
    for h in &headers {
        for t in &h.sample_types {
            if !types.contains(t) {
                types.push(t.clone());
            }
        }
        if parts.period_type.is_none() && !h.period_type.is_empty() {
            parts.period_type = Some(sample_type(&h.period_type));
        }
        parts.period = parts.period.max(h.period);
        parts.duration_nanos = parts.duration_nanos.saturating_add(h.duration_ns);
        if h.ts_ms > 0 {
            time_ms = time_ms.min(h.ts_ms);
        }
        match default_counts.iter_mut().find(|(t, _)| *t == h.default_sample_type) {
            Some(c) => c.1 += h.profiles,
            None => default_counts.push((&h.default_sample_type, h.profiles)),
        }
    }
    for &(t, n) in &default_counts {
        if default.is_none_or(|(_, best)| n > best) {
            default = Some((t, n));
        }
    }
    parts.time_nanos = if time_ms == i64::MAX { 0 } else { time_ms.saturating_mul(1_000_000) };
    parts.default_sample_type = default.and_then(|(d, _)| types.iter().position(|t| t == d));
    parts.stacks = stacks
        .into_iter()
        .filter(|s| !s.frames.is_empty())
        .map(|s| {
            let mut values = vec![0i64; types.len()];
            for (t, v) in s.types.iter().zip(&s.values) {
                match types.iter().position(|x| x == t) {
                    Some(i) => values[i] += v,
                    None => {
                        // A stack of a type no header lists (cannot happen with consistent
                        // tables): give the type a column rather than drop the value.
                        types.push(t.clone());
                        values.push(*v);
                    }
                }
            }
            (s.frames.into_iter().map(|f| Bytes::from(f.into_vec())).collect(), values)
        })
        .collect();
    parts.sample_types = types.iter().map(|t| sample_type(t)).collect();
    Ok(Some(parts))
}

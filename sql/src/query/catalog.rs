//! What is stored, profile by profile: the services, the profiles' metadata, where a profile
//! came from (profefe's listing endpoints, served by `pprofhouse serve`).

use clickhouse::Row;
use serde::Deserialize;

use super::{label_params, sql, window_params, Window};
use crate::Error;

/// The services that have stored profiles, sorted.
pub async fn services(client: &clickhouse::Client) -> Result<Vec<String>, Error> {
    Ok(client.query(sql::body(sql::SERVICES)).fetch_all().await?)
}

/// A listing request.
#[derive(Debug, Clone)]
pub struct ListQuery {
    /// Only this service (`None`: all).
    pub service: Option<String>,
    /// Only this profile type (`None`: all).
    pub profile_type: Option<String>,
    /// Time window.
    pub window: Window,
    /// Label filters `k=v`; all must match.
    pub labels: Vec<(String, String)>,
    /// At most this many, newest first.
    pub limit: u32,
}

/// One stored profile's metadata.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct ProfileInfo {
    /// Profile id (UUID).
    pub id: String,
    /// Profile type.
    pub profile_type: String,
    /// Service.
    pub service: String,
    /// Label keys (parallel to `label_values`).
    pub label_keys: Vec<String>,
    /// Label values.
    pub label_values: Vec<String>,
    /// Profile time, ms since the epoch.
    pub ts_ms: i64,
    /// The S3 bucket it was read from (empty for local files).
    pub source_bucket: String,
    /// The S3 key.
    pub source_key: String,
}

/// Stored profiles' metadata, newest first.
pub async fn list_profiles(client: &clickhouse::Client, q: &ListQuery) -> Result<Vec<ProfileInfo>, Error> {
    let query = client
        .query(sql::body(sql::LIST_PROFILES))
        .param("service", q.service.as_deref().unwrap_or(""))
        .param("profile_type", q.profile_type.as_deref().unwrap_or(""))
        .param("limit", q.limit);
    Ok(label_params(window_params(query, "", q.window), "", &q.labels).fetch_all().await?)
}

/// Where a profile came from: its S3 bucket and key.
#[derive(Debug, Clone, PartialEq, Eq, Row, Deserialize)]
pub struct ProfileSource {
    /// Bucket (empty: loaded from a local file).
    pub source_bucket: String,
    /// Key.
    pub source_key: String,
}

/// The source of profile `id` (a UUID), `None` when no such profile is stored.
pub async fn profile_source(client: &clickhouse::Client, id: uuid::Uuid) -> Result<Option<ProfileSource>, Error> {
    let rows: Vec<ProfileSource> = client.query(sql::body(sql::PROFILE_SOURCE)).param("id", id.to_string()).fetch_all().await?;
    Ok(rows.into_iter().next())
}

//! The handlers of profefe's routes (and `/api/0/top`); see the module docs of [`super`].
use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use pprofhouse_ingest::layout::{profefe_key, profefe_type_number, LayoutKind, ProfileMeta};
use pprofhouse_sql::query::catalog::{self, ListQuery};
use pprofhouse_sql::query::merge::{merged_profile, MergeQuery};
use pprofhouse_sql::query::Window;
use pprofhouse_sql::sink::{profile_id, Origin, SourceRef};
use pprofhouse_transform::pprof::encode::encode_gzip;
use serde_json::json;

use super::params::Params;
use super::{reply_json, ApiError, AppState};

type Shared = State<Arc<AppState>>;

fn ch(e: pprofhouse_sql::Error) -> ApiError {
    ApiError::internal("ClickHouse query failed", e)
}

fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).map(|t| t.to_rfc3339_opts(chrono::SecondsFormat::Millis, true)).unwrap_or_default()
}

fn labels_json<'a>(labels: impl IntoIterator<Item = (&'a String, &'a String)>) -> serde_json::Value {
    labels.into_iter().map(|(k, v)| json!({ "key": k, "value": v })).collect()
}

/// `GET /api/0/profiles/merge`: one gzip-compressed pprof profile.
pub async fn merge(State(s): Shared, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref());
    let profile_type = p.profile_type()?.ok_or_else(|| ApiError::bad("missing type"))?;
    let m = MergeQuery {
        profile_type: profile_type.clone(),
        window: p.window()?,
        service: p.get("service").map(str::to_string),
        labels: p.labels()?,
        max_stacks: s.config.max_merge_stacks,
    };
    let parts = merged_profile(&s.clickhouse, &m).await.map_err(|e| match e {
        pprofhouse_sql::Error::Invalid(msg) => ApiError::bad(msg),
        e => ch(e),
    })?;
    let Some(parts) = parts else {
        return Err(ApiError(StatusCode::NOT_FOUND, "nothing found".into()));
    };
    let bytes =
        tokio::task::spawn_blocking(move || encode_gzip(&parts)).await.map_err(|e| ApiError::internal("encoding the profile", e))?;
    Ok((
        [
            (header::CONTENT_TYPE, "application/octet-stream".to_string()),
            (header::CONTENT_DISPOSITION, format!("attachment; filename=\"{profile_type}\"")),
        ],
        bytes,
    )
        .into_response())
}

/// `GET /api/0/services`.
pub async fn services(State(s): Shared) -> Result<Response, ApiError> {
    let list = catalog::services(&s.clickhouse).await.map_err(ch)?;
    Ok(reply_json(json!(list)))
}

/// `GET /api/0/profiles`: metadata, newest first.
pub async fn list(State(s): Shared, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref());
    let window = if p.get("from").is_some() || p.get("since").is_some() {
        p.window()?
    } else {
        Window { from_ms: 0, to_ms: p.time("to")?.unwrap_or_else(|| chrono::Utc::now().timestamp_millis() + 1) }
    };
    let limit: u32 = p.number("limit", 100)?;
    if limit > s.config.max_list {
        return Err(ApiError::bad(format!("limit {limit} is over serve.max_list ({})", s.config.max_list)));
    }
    let lq =
        ListQuery { service: p.get("service").map(str::to_string), profile_type: p.profile_type()?, window, labels: p.labels()?, limit };
    let rows = catalog::list_profiles(&s.clickhouse, &lq).await.map_err(ch)?;
    let body: Vec<serde_json::Value> = rows
        .iter()
        .map(|r| {
            json!({
                "id": r.id,
                "type": r.profile_type,
                "service": r.service,
                "labels": labels_json(r.label_keys.iter().zip(&r.label_values)),
                "created_at": iso(r.ts_ms),
            })
        })
        .collect();
    Ok(reply_json(json!(body)))
}

/// `GET /api/0/profiles/{id}`: the stored object, as it is in S3.
pub async fn get_profile(State(s): Shared, Path(raw): Path<String>) -> Result<Response, ApiError> {
    let id = uuid::Uuid::parse_str(raw.trim()).map_err(|_| ApiError::bad(format!("bad profile id {raw:?}")))?;
    let src = catalog::profile_source(&s.clickhouse, id).await.map_err(ch)?;
    let Some(src) = src else {
        return Err(ApiError(StatusCode::NOT_FOUND, "nothing found".into()));
    };
    if src.source_bucket.is_empty() {
        return Err(ApiError(StatusCode::NOT_FOUND, "nothing found: the profile was loaded from a local file, not S3".into()));
    }
    let obj = match s.s3.get_object().bucket(&src.source_bucket).key(&src.source_key).send().await {
        Ok(o) => o,
        Err(e) if e.as_service_error().is_some_and(|e| e.is_no_such_key()) => {
            return Err(ApiError(StatusCode::NOT_FOUND, "nothing found: the object is gone from S3".into()));
        }
        Err(e) => return Err(ApiError::internal("reading the object from S3", aws_sdk_s3::error::DisplayErrorContext(&e))),
    };
    if obj.content_length().is_some_and(|n| n as u64 > s.config.max_object_bytes) {
        return Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            format!("the object is larger than serve.max_object_bytes ({})", s.config.max_object_bytes),
        ));
    }
    let data = obj.body.collect().await.map_err(|e| ApiError::internal("reading the object from S3", e))?.into_bytes();
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], data).into_response())
}

/// Reads a request body of at most `max` bytes (413 past it).
async fn read_body(headers: &HeaderMap, body: Body, max: usize) -> Result<Bytes, ApiError> {
    let too_large = || ApiError(StatusCode::PAYLOAD_TOO_LARGE, format!("request body larger than serve.max_body_bytes ({max})"));
    let declared = headers.get(header::CONTENT_LENGTH).and_then(|v| v.to_str().ok()).and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > max as u64) {
        return Err(too_large());
    }
    axum::body::to_bytes(body, max).await.map_err(|e| {
        if std::error::Error::source(&e).is_some_and(|s| s.is::<http_body_util::LengthLimitError>()) {
            too_large()
        } else {
            ApiError::bad(format!("reading the body: {e}"))
        }
    })
}

/// `POST /api/0/profiles`: stores the profile in S3 under profefe's key.
pub async fn create(State(s): Shared, RawQuery(q): RawQuery, headers: HeaderMap, body: Body) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref());
    let service = p.required("service")?.to_string();
    let profile_type = p.profile_type()?.ok_or_else(|| ApiError::bad("missing type"))?;
    let type_number = profefe_type_number(&profile_type).ok_or_else(|| ApiError::bad(format!("bad profile type {profile_type:?}")))?;
    let labels: BTreeMap<String, String> = p.labels()?.into_iter().collect();
    let created_ms = p.time("created_at")?.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let created_at = chrono::DateTime::from_timestamp_millis(created_ms).ok_or_else(|| ApiError::bad("created_at out of range"))?;
    let Some(bucket) = s.bucket.clone() else {
        return Err(ApiError(StatusCode::SERVICE_UNAVAILABLE, "no bucket configured (s3.bucket): cannot store profiles".into()));
    };
    let data = read_body(&headers, body, s.config.max_body_bytes).await?;
    if data.is_empty() {
        return Err(ApiError::bad("empty body: want a pprof profile"));
    }
    // What the worker would refuse is refused here, before it is stored.
    let limits = s.limits;
    let check = data.clone();
    tokio::task::spawn_blocking(move || pprofhouse_transform::pprof::decode(check.to_vec(), &limits))
        .await
        .map_err(|e| ApiError::internal("checking the profile", e))?
        .map_err(|e| ApiError::bad(format!("not a usable profile: {e}")))?;
    let key = profefe_key(&service, type_number, created_at, fastrand::u64(..), &labels);
    let size = data.len() as u64;
    let out =
        s.s3.put_object()
            .bucket(&bucket)
            .key(&key)
            .body(data.into())
            .send()
            .await
            .map_err(|e| ApiError::internal("storing the profile in S3", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
    let source = SourceRef {
        bucket: bucket.clone(),
        key: key.clone(),
        etag: out.e_tag().map(|e| e.trim_matches('"').to_string()).unwrap_or_default(),
        version_id: out.version_id().map(str::to_string),
        size,
    };
    let meta = ProfileMeta {
        service: service.clone(),
        profile_type: profile_type.clone(),
        labels: labels.clone(),
        created_at,
        layout: LayoutKind::Profefe,
    };
    let id = profile_id(&meta, Origin::Object(&source));
    tracing::info!(%id, bucket, key, size, "stored a profile");
    Ok(reply_json(json!({
        "id": id.to_string(),
        "type": profile_type,
        "service": service,
        "labels": labels_json(&labels),
        "created_at": iso(created_ms),
        "bucket": bucket,
        "key": key,
        "etag": source.etag,
        "size": size,
    })))
}

/// `GET /api/0/top`: the report's JSON (`pprofhouse report --format json`): the window against
/// the window of the same length just before it, unless `baseline_from`/`baseline_to` say otherwise.
pub async fn top(State(s): Shared, RawQuery(q): RawQuery) -> Result<Response, ApiError> {
    let p = Params::parse(q.as_deref());
    let profile_type = p.profile_type()?.ok_or_else(|| ApiError::bad("missing type"))?;
    let window = p.window()?;
    let baseline = match (p.time("baseline_from")?, p.time("baseline_to")?) {
        (Some(from_ms), Some(to_ms)) => Window { from_ms, to_ms },
        (None, None) => Window { from_ms: window.from_ms - (window.to_ms - window.from_ms), to_ms: window.from_ms },
        _ => return Err(ApiError::bad("baseline_from and baseline_to go together")),
    };
    if baseline.to_ms <= baseline.from_ms || (window.from_ms < baseline.to_ms && baseline.from_ms < window.to_ms) {
        return Err(ApiError::bad("the baseline must be a non-empty window that does not overlap the window"));
    }
    let cfg = crate::report::ReportConfig {
        profile_type,
        sample_type: p.get("sample_type").map(str::to_string),
        window,
        baseline,
        service: p.get("service").map(str::to_string),
        labels: p.labels()?,
        limit: p.number("n", 10u32)? as usize,
        by_cum: matches!(p.get("cum"), Some("1" | "true")),
        settings: s.report.clone(),
    };
    let report = crate::report::compute(&s.clickhouse, &cfg).await.map_err(ch)?;
    if report.window.profiles == 0 {
        return Err(ApiError(StatusCode::NOT_FOUND, format!("nothing found: no {} profiles in that window", cfg.profile_type)));
    }
    let body = serde_json::to_string(&report).map_err(|e| ApiError::internal("encoding the report", e))?;
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

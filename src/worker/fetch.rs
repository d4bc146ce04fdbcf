//! Fetching one object from S3: the version the event announced, within the size limit, with
//! every failure classified (transient: retry; permanent: dead letter).

use std::collections::HashMap;

use aws_sdk_s3::error::{DisplayErrorContext, ProvideErrorMetadata, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use bytes::Bytes;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Retry later: network, timeouts, 5xx, throttling.
    #[error("transient S3 error: {0}")]
    Transient(String),
    /// The object (or the announced version) does not exist (any more).
    #[error("object not found: s3://{bucket}/{key}")]
    NotFound {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// The key now holds other content than the event announced (`If-Match` failed).
    #[error("s3://{bucket}/{key} changed since the event (etag {etag} is gone)")]
    Changed {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The announced etag.
        etag: String,
    },
    /// S3 refuses it and will keep refusing: access denied, no such bucket, archived object.
    #[error("S3 refused s3://{bucket}/{key}: {reason}")]
    Refused {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// S3's error code and message.
        reason: String,
    },
    /// Larger than the configured limit.
    #[error("object is {size} bytes, over the limit of {limit} bytes")]
    TooLarge {
        /// Bytes seen.
        size: u64,
        /// The limit.
        limit: u64,
    },
}

impl FetchError {
    /// True when a retry can help.
    pub fn is_transient(&self) -> bool {
        matches!(self, FetchError::Transient(_))
    }
}

/// An object's bytes and user metadata.
pub struct Fetched {
    /// The body.
    pub data: Bytes,
    /// User metadata (`x-amz-meta-*`).
    pub metadata: HashMap<String, String>,
    /// ETag without quotes.
    pub etag: Option<String>,
    /// Version id, in versioned buckets.
    pub version_id: Option<String>,
}

/// What to fetch.
pub struct Wanted<'a> {
    /// Bucket.
    pub bucket: &'a str,
    /// Key.
    pub key: &'a str,
    /// The version the event named (versioned buckets): fetched exactly.
    pub version_id: Option<&'a str>,
    /// The etag the event named: sent as `If-Match`, so an overwritten key is noticed.
    pub etag: Option<&'a str>,
}

/// S3 error codes that no retry fixes.
const REFUSED: &[&str] =
    &["AccessDenied", "NoSuchBucket", "InvalidObjectState", "AllAccessDisabled", "InvalidBucketName", "NoSuchVersion", "InvalidArgument"];

/// GETs the object, refusing objects over `limit` bytes (by Content-Length, and while reading).
pub async fn fetch(s3: &aws_sdk_s3::Client, w: &Wanted<'_>, limit: u64) -> Result<Fetched, FetchError> {
    let (bucket, key) = (w.bucket, w.key);
    let mut req = s3.get_object().bucket(bucket).key(key);
    if let Some(v) = w.version_id {
        req = req.version_id(v);
    } else if let Some(e) = w.etag.filter(|e| !e.is_empty()) {
        req = req.if_match(format!("\"{e}\""));
    }
    let resp = match req.send().await {
        Ok(r) => r,
        Err(SdkError::ServiceError(e)) => {
            let status = e.raw().status().as_u16();
            let code = e.err().code().unwrap_or_default().to_string();
            if matches!(e.err(), GetObjectError::NoSuchKey(_)) || status == 404 || code == "NoSuchVersion" {
                return Err(FetchError::NotFound { bucket: bucket.into(), key: key.into() });
            }
            if status == 412 || code == "PreconditionFailed" {
                return Err(FetchError::Changed { bucket: bucket.into(), key: key.into(), etag: w.etag.unwrap_or_default().into() });
            }
            if REFUSED.contains(&code.as_str()) || status == 403 {
                let reason = format!("{code}: {}", e.err().message().unwrap_or_default());
                return Err(FetchError::Refused { bucket: bucket.into(), key: key.into(), reason });
            }
            return Err(FetchError::Transient(format!("{status} {code}: {}", e.err().message().unwrap_or_default())));
        }
        Err(e) => return Err(FetchError::Transient(DisplayErrorContext(&e).to_string())),
    };
    if let Some(len) = resp.content_length() {
        if len as u64 > limit {
            return Err(FetchError::TooLarge { size: len as u64, limit });
        }
    }
    let metadata = resp.metadata().cloned().unwrap_or_default();
    let etag = resp.e_tag().map(|e| e.trim_matches('"').to_string());
    // Not every S3-compatible store honours If-Match: compare what came back, too.
    if let (Some(want), Some(got)) = (w.etag.filter(|e| !e.is_empty()), etag.as_deref()) {
        if w.version_id.is_none() && want != got {
            return Err(FetchError::Changed { bucket: bucket.into(), key: key.into(), etag: want.into() });
        }
    }
    let version_id = resp.version_id().map(str::to_string);
    let capacity = resp.content_length().unwrap_or(0).clamp(0, limit as i64) as usize;
    let mut body = resp.body;
    let mut buf = Vec::with_capacity(capacity);
    loop {
        match body.try_next().await {
            Ok(Some(chunk)) => {
                buf.extend_from_slice(&chunk);
                if buf.len() as u64 > limit {
                    return Err(FetchError::TooLarge { size: buf.len() as u64, limit });
                }
            }
            Ok(None) => break,
            Err(e) => return Err(FetchError::Transient(format!("reading the body: {e}"))),
        }
    }
    Ok(Fetched { data: Bytes::from(buf), metadata, etag, version_id })
}

//! Fetching one object from S3, with the size limit, and telling transient failures (retry)
//! from permanent ones (dead letter).

use std::collections::HashMap;

use aws_sdk_s3::error::{DisplayErrorContext, SdkError};
use aws_sdk_s3::operation::get_object::GetObjectError;
use bytes::Bytes;

/// Why a fetch failed.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// Retry later: network, timeouts, 5xx, throttling, credentials trouble.
    #[error("transient S3 error: {0}")]
    Transient(String),
    /// The object does not exist (any more).
    #[error("object not found: s3://{bucket}/{key}")]
    NotFound { bucket: String, key: String },
    /// Larger than the configured limit.
    #[error("object is {size} bytes, over the limit of {limit} bytes")]
    TooLarge { size: u64, limit: u64 },
}

/// An object's bytes and user metadata.
pub struct Fetched {
    pub data: Bytes,
    pub metadata: HashMap<String, String>,
    pub etag: Option<String>,
}

/// GETs `bucket/key`, refusing objects over `limit` bytes (by Content-Length, and while reading).
pub async fn fetch(s3: &aws_sdk_s3::Client, bucket: &str, key: &str, limit: u64) -> Result<Fetched, FetchError> {
    let resp = match s3.get_object().bucket(bucket).key(key).send().await {
        Ok(r) => r,
        Err(SdkError::ServiceError(e)) if matches!(e.err(), GetObjectError::NoSuchKey(_)) => {
            return Err(FetchError::NotFound { bucket: bucket.into(), key: key.into() })
        }
        Err(SdkError::ServiceError(e)) if e.raw().status().as_u16() == 404 => {
            return Err(FetchError::NotFound { bucket: bucket.into(), key: key.into() })
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
    let mut body = resp.body;
    let mut buf = Vec::new();
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
    Ok(Fetched { data: Bytes::from(buf), metadata, etag })
}

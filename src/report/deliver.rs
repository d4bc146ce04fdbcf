//! Where a rendered report goes: stdout, a file, `s3://bucket/prefix/` (through the `[s3]`
//! client that `put` and the worker use), or an HTTP(S) webhook that gets a Slack-compatible
//! `{"text": "<markdown>"}` POST with a timeout and a bounded retry (the worker's
//! [`RetryPolicy`]).
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use pprofhouse_ingest::S3Config;

use super::render::Format;
use super::{render, Report, ReportSettings};
use crate::worker::metrics::Metrics;
use crate::worker::retry::{Retried, RetryPolicy};

/// A destination. `Debug` is `Display`: a webhook shows its host only.
#[derive(Clone, PartialEq, Eq)]
pub enum Destination {
    /// `-`: standard output.
    Stdout,
    /// A file path (overwritten).
    File(PathBuf),
    /// `s3://bucket/prefix/`: one object per report, `prefix` + a name with the window's end.
    S3 {
        /// Bucket.
        bucket: String,
        /// Key prefix (kept as given).
        prefix: String,
    },
    /// `http://…` or `https://…`: a Slack-compatible webhook.
    Webhook(String),
}

impl FromStr for Destination {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        if s == "-" {
            return Ok(Destination::Stdout);
        }
        if let Some(rest) = s.strip_prefix("s3://") {
            let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(format!("{s:?}: no bucket (want s3://bucket/prefix/)"));
            }
            return Ok(Destination::S3 { bucket: bucket.into(), prefix: prefix.into() });
        }
        if s.starts_with("http://") || s.starts_with("https://") {
            s.parse::<hyper::Uri>().map_err(|e| format!("{s:?}: {e}"))?;
            return Ok(Destination::Webhook(s.into()));
        }
        if s.is_empty() {
            return Err("empty destination".into());
        }
        Ok(Destination::File(PathBuf::from(s)))
    }
}

impl std::fmt::Display for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Destination::Stdout => write!(f, "stdout"),
            Destination::File(p) => write!(f, "{}", p.display()),
            Destination::S3 { bucket, prefix } => write!(f, "s3://{bucket}/{prefix}"),
            // A webhook URL is a secret (Slack's carry the token in the path): scheme and host only.
            Destination::Webhook(u) => {
                let host = u.parse::<hyper::Uri>().ok().and_then(|u| u.authority().map(|a| a.host().to_string())).unwrap_or_default();
                write!(f, "webhook {host}")
            }
        }
    }
}

impl std::fmt::Debug for Destination {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Why a delivery failed.
#[derive(Debug, thiserror::Error)]
pub enum DeliverError {
    /// Writing stdout or a file.
    #[error("{0}: {1}")]
    Io(String, std::io::Error),
    /// The S3 upload.
    #[error("{0}: {1}")]
    S3(String, String),
    /// The webhook answered with an error or could not be reached.
    #[error("{0}: {1}")]
    Webhook(String, String),
}

/// The object name of a report: `pprofhouse-report-<type>-<window end>.<ext>`.
pub fn object_name(r: &Report, format: Format) -> String {
    let end: String = r.window.to.chars().filter(|c| c.is_ascii_alphanumeric()).collect();
    format!("pprofhouse-report-{}-{end}.{}", r.window.profile_type, format.extension())
}

/// Sends `r` to `dest`: rendered in `format`, except for a webhook, which always gets markdown.
pub async fn deliver(r: &Report, format: Format, dest: &Destination, s3: &S3Config, settings: &ReportSettings) -> Result<(), DeliverError> {
    match dest {
        Destination::Stdout => {
            use std::io::Write;
            let body = render::render(r, format);
            let mut out = std::io::stdout().lock();
            match out.write_all(&body).and_then(|_| out.flush()) {
                Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => Err(DeliverError::Io(dest.to_string(), e)),
                _ => Ok(()),
            }
        }
        Destination::File(p) => std::fs::write(p, render::render(r, format)).map_err(|e| DeliverError::Io(dest.to_string(), e)),
        Destination::S3 { bucket, prefix } => {
            let client = s3.client().await;
            let key = format!("{prefix}{}", object_name(r, format));
            let put = client
                .put_object()
                .bucket(bucket)
                .key(&key)
                .content_type(format.content_type())
                .body(render::render(r, format).into())
                .send();
            match tokio::time::timeout(settings.timeout, put).await {
                Ok(Ok(_)) => Ok(()),
                Ok(Err(e)) => Err(DeliverError::S3(format!("s3://{bucket}/{key}"), aws_sdk_s3::error::DisplayErrorContext(&e).to_string())),
                Err(_) => Err(DeliverError::S3(format!("s3://{bucket}/{key}"), format!("timed out after {:?}", settings.timeout))),
            }
        }
        Destination::Webhook(url) => {
            let body = serde_json::to_vec(&serde_json::json!({ "text": render::markdown(r) })).expect("json");
            post_webhook(url, Bytes::from(body), settings).await.map_err(|e| DeliverError::Webhook(dest.to_string(), e))
        }
    }
}

/// A webhook attempt's failure: transient ones are retried.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
struct PostError {
    message: String,
    transient: bool,
}

/// POSTs `body` (JSON) to `url` with the timeout per attempt and the retry policy of `settings`.
pub async fn post_webhook(url: &str, body: Bytes, settings: &ReportSettings) -> Result<(), String> {
    let tls = hyper_rustls::HttpsConnectorBuilder::new()
        .with_provider_and_webpki_roots(rustls::crypto::ring::default_provider())
        .map_err(|e| e.to_string())?
        .https_or_http()
        .enable_http1()
        .build();
    let client: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new()).build(tls);
    let uri: hyper::Uri = url.parse().map_err(|e: hyper::http::uri::InvalidUri| e.to_string())?;
    let policy = RetryPolicy { min_delay: Duration::from_millis(200), max_delay: settings.max_backoff, budget: settings.retry_budget };
    let metrics = Metrics::new();
    let (_stop_tx, stop) = tokio::sync::watch::channel(false);
    let attempt = || async {
        let req = hyper::Request::post(uri.clone())
            .header(hyper::header::CONTENT_TYPE, "application/json")
            .body(Full::new(body.clone()))
            .map_err(|e| PostError { message: e.to_string(), transient: false })?;
        let resp = match tokio::time::timeout(settings.timeout, client.request(req)).await {
            Err(_) => return Err(PostError { message: format!("no answer within {:?}", settings.timeout), transient: true }),
            Ok(Err(e)) => return Err(PostError { message: format!("cannot reach it: {e}"), transient: true }),
            Ok(Ok(r)) => r,
        };
        let status = resp.status();
        // Drain the answer (bounded by the timeout) so the connection can be reused.
        let text = match tokio::time::timeout(settings.timeout, resp.into_body().collect()).await {
            Ok(Ok(b)) => String::from_utf8_lossy(&b.to_bytes()[..]).chars().take(200).collect::<String>(),
            _ => String::new(),
        };
        if status.is_success() {
            Ok(())
        } else {
            Err(PostError { message: format!("HTTP {status}: {text}"), transient: status.as_u16() == 429 || status.is_server_error() })
        }
    };
    match policy.run("webhook", &metrics, &stop, |e: &PostError| e.transient, attempt).await {
        Ok(()) => Ok(()),
        Err(Retried::Permanent(e)) => Err(e.message),
        Err(Retried::Exhausted(e)) => Err(format!("gave up after {} retries: {}", settings.retry_budget, e.message)),
        Err(Retried::Interrupted) => Err("interrupted".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn destinations_parse() {
        assert_eq!("-".parse::<Destination>().unwrap(), Destination::Stdout);
        assert_eq!("s3://b/reports/".parse::<Destination>().unwrap(), Destination::S3 { bucket: "b".into(), prefix: "reports/".into() });
        assert_eq!("s3://b".parse::<Destination>().unwrap(), Destination::S3 { bucket: "b".into(), prefix: "".into() });
        assert!("s3:///x".parse::<Destination>().is_err());
        assert_eq!("out.md".parse::<Destination>().unwrap(), Destination::File("out.md".into()));
        let hook: Destination = "https://hooks.example.com/services/T000/B000/SECRET".parse().unwrap();
        assert!(matches!(hook, Destination::Webhook(_)));
        assert_eq!(hook.to_string(), "webhook hooks.example.com", "the path (Slack's token) never shows");
    }
}

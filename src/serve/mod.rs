//! `pprofhouse serve`: profefe's HTTP API (`/api/0/…`) over ClickHouse and S3, so tools made
//! for profefe — `go tool pprof 'http://host/api/0/profiles/merge?service=…&type=cpu&from=…&to=…'`
//! first — work against pprofhouse.
//!
//! | route | answer |
//! |---|---|
//! | `GET /api/0/profiles/merge?service=&type=&from=&to=&labels=k=v,…` | one pprof profile (gzip) merged from the stored stacks (`pprofhouse merge`) |
//! | `GET /api/0/services` | `{"code":200,"body":["svc",…]}` |
//! | `GET /api/0/profiles?service=&type=&from=&to=&labels=&limit=` | the profiles' metadata, newest first |
//! | `GET /api/0/profiles/{id}` | the stored object itself, from S3 |
//! | `POST /api/0/profiles?service=&type=&labels=&created_at=` | checks the body is a profile, stores it in S3 under profefe's key (the bucket's notification starts the pipeline) |
//! | `GET /api/0/top?type=&sample_type=&from=&to=&since=&service=&labels=&n=&cum=` | the fleet top as JSON, for scripts |
//! | `GET /healthz` | `ok` (no token needed: for probes) |
//!
//! Times are RFC 3339 or profefe's `2006-01-02T15:04:05` (UTC). Errors are profefe's JSON,
//! `{"code":4xx,"error":"…"}`. With a token configured (`serve.token`,
//! `PPROFHOUSE_SERVE_TOKEN`), every route wants `Authorization: Bearer <token>`; the token is a
//! secret: never logged, never in `--help`. Request bodies over `serve.max_body_bytes` get 413.
//! SIGTERM/SIGINT stop accepting and let requests in flight finish.

mod api;
mod params;

use std::sync::Arc;

use axum::extract::{Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// `[serve]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Address to listen on.
    pub listen: String,
    /// Bearer token every request must carry (none: no authentication).
    pub token: Option<SecretString>,
    /// Largest request body (`POST /api/0/profiles`), in bytes.
    pub max_body_bytes: usize,
    /// Most profiles one `GET /api/0/profiles` lists.
    pub max_list: u32,
    /// Largest stored object `GET /api/0/profiles/{id}` returns, in bytes.
    pub max_object_bytes: u64,
    /// Most distinct stacks a merged profile may hold.
    pub max_merge_stacks: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: "127.0.0.1:8080".into(),
            token: None,
            max_body_bytes: 32 << 20,
            max_list: 1000,
            max_object_bytes: 256 << 20,
            max_merge_stacks: 5_000_000,
        }
    }
}

/// What the handlers share.
pub struct AppState {
    /// ClickHouse.
    pub clickhouse: pprofhouse_sql::Client,
    /// S3.
    pub s3: aws_sdk_s3::Client,
    /// Where `POST` stores profiles (`None`: POST answers 503).
    pub bucket: Option<String>,
    /// What an uploaded profile may cost to check.
    pub limits: pprofhouse_transform::pprof::Limits,
    /// The `[serve]` settings.
    pub config: Config,
    /// The `[report]` settings (`/api/0/top`).
    pub report: crate::report::ReportSettings,
}

/// A profefe-shaped error: `{"code": status, "error": message}`.
#[derive(Debug)]
pub struct ApiError(pub StatusCode, pub String);

impl ApiError {
    /// 400 with `bad request: …`, as profefe words it.
    pub fn bad(msg: impl std::fmt::Display) -> Self {
        ApiError(StatusCode::BAD_REQUEST, format!("bad request: {msg}"))
    }

    /// 500; the cause is logged, the client gets a generic message (as profefe does).
    pub fn internal(what: &str, e: impl std::fmt::Display) -> Self {
        tracing::error!(error = %e, "{what}");
        ApiError(StatusCode::INTERNAL_SERVER_ERROR, format!("internal error: {what}"))
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "code": self.0.as_u16(), "error": self.1 });
        (self.0, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
    }
}

/// `{"code": 200, "body": v}`.
pub fn reply_json(v: serde_json::Value) -> Response {
    let body = serde_json::json!({ "code": 200, "body": v });
    ([(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Equal without an early exit (the token check takes the same time for every wrong token of
/// a given length).
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn auth(State(state): State<Arc<AppState>>, req: Request, next: Next) -> Response {
    if let Some(token) = &state.config.token {
        let given = req.headers().get(header::AUTHORIZATION).and_then(|v| v.to_str().ok()).and_then(|v| v.strip_prefix("Bearer "));
        match given {
            Some(g) if same(g.trim().as_bytes(), token.expose_secret().as_bytes()) => {}
            _ => {
                let mut r = ApiError(StatusCode::UNAUTHORIZED, "unauthorized: a valid bearer token is required".into()).into_response();
                r.headers_mut().insert(header::WWW_AUTHENTICATE, header::HeaderValue::from_static("Bearer"));
                return r;
            }
        }
    }
    next.run(req).await
}

/// The routes (see the module docs).
pub fn router(state: Arc<AppState>) -> axum::Router {
    axum::Router::new()
        .route("/api/0/profiles/merge", get(api::merge))
        .route("/api/0/profiles", get(api::list).post(api::create))
        .route("/api/0/profiles/{id}", get(api::get_profile))
        .route("/api/0/services", get(api::services))
        .route("/api/0/top", get(api::top))
        .fallback(|| async { ApiError(StatusCode::NOT_FOUND, "nothing found".into()) })
        .layer(axum::middleware::from_fn_with_state(state.clone(), auth))
        // Liveness for orchestrators: outside the token check (probes carry no secrets).
        .route("/healthz", get(|| async { "ok\n" }))
        .with_state(state)
}

/// Serves until SIGTERM/SIGINT, then lets requests in flight finish. Prints
/// `listening on ADDR` on stdout once bound.
pub async fn run(state: AppState) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(&state.config.listen)
        .await
        .map_err(|e| anyhow::anyhow!("listening on {}: {e}", state.config.listen))?;
    let addr = listener.local_addr()?;
    println!("listening on {addr}");
    tracing::info!(%addr, auth = state.config.token.is_some(), "serving profefe's API");
    let app = router(Arc::new(state));
    axum::serve(listener, app).with_graceful_shutdown(crate::worker::shutdown_signal()).await?;
    tracing::info!("stopped");
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison_needs_every_byte() {
        assert!(same(b"abc", b"abc"));
        assert!(!same(b"abc", b"abd"));
        assert!(!same(b"abc", b"ab"));
        assert!(!same(b"", b"a"));
    }

    #[test]
    fn the_serve_section_of_a_config_file() {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), "[serve]\nlisten = \"0.0.0.0:9000\"\ntoken = \"from-file\"\nmax_list = 5\n").unwrap();
        let s = crate::cli::settings::Settings::load(Some(f.path()), &toml::Table::new()).unwrap();
        assert_eq!(s.serve.listen, "0.0.0.0:9000");
        assert_eq!(s.serve.max_list, 5);
        assert_eq!(s.serve.token.as_ref().map(|t| t.expose_secret().to_string()).as_deref(), Some("from-file"));
        assert_eq!(s.serve.max_body_bytes, Config::default().max_body_bytes);
        std::fs::write(f.path(), "[serve]\nmax_lists = 5\n").unwrap();
        let e = crate::cli::settings::Settings::load(Some(f.path()), &toml::Table::new()).unwrap_err().to_string();
        assert!(e.contains("unknown field `max_lists`"), "{e}");
    }

    #[test]
    fn the_token_is_never_in_debug_output() {
        let c = Config { token: Some(SecretString::from("s3cr3t-token")), ..Default::default() };
        assert!(!format!("{c:?}").contains("s3cr3t"));
    }
}

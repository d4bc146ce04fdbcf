//! Prometheus metrics (`/metrics`) and liveness (`/healthz`) of the worker.

use std::sync::atomic::AtomicI64;
use std::sync::Arc;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    pub outcome: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    pub kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Partition {
    pub topic: String,
    pub partition: i32,
}

/// Every metric the worker exports (prefix `pprofhouse_worker_`).
pub struct Metrics {
    pub registry: Registry,
    pub messages: Family<Outcome, Counter>,
    pub profiles: Counter,
    pub function_rows: Counter,
    pub fetched_bytes: Counter,
    pub errors: Family<Kind, Counter>,
    pub batch_rows: Histogram,
    pub flush_seconds: Histogram,
    pub consumer_lag: Family<Partition, Gauge<i64, AtomicI64>>,
    pub event_to_visible_seconds: Histogram,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("pprofhouse_worker");
        let messages = Family::<Outcome, Counter>::default();
        let profiles = Counter::default();
        let function_rows = Counter::default();
        let fetched_bytes = Counter::default();
        let errors = Family::<Kind, Counter>::default();
        let batch_rows = Histogram::new(exponential_buckets(100.0, 4.0, 10));
        let flush_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let consumer_lag = Family::<Partition, Gauge<i64, AtomicI64>>::default();
        let event_to_visible_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register("messages", "Kafka messages handled, by outcome", messages.clone());
        registry.register("profiles", "Profiles stored", profiles.clone());
        registry.register("function_rows", "Per-function rows stored", function_rows.clone());
        registry.register("fetched_bytes", "Bytes fetched from S3", fetched_bytes.clone());
        registry.register("errors", "Errors, by kind (transient ones are retried)", errors.clone());
        registry.register("batch_rows", "Function rows per ClickHouse batch", batch_rows.clone());
        registry.register("flush_seconds", "Latency of a ClickHouse batch insert", flush_seconds.clone());
        registry.register("consumer_lag", "Messages behind the high watermark, per partition", consumer_lag.clone());
        registry.register(
            "event_to_visible_seconds",
            "From the object's creation event to its rows being queryable",
            event_to_visible_seconds.clone(),
        );
        Arc::new(Metrics {
            registry,
            messages,
            profiles,
            function_rows,
            fetched_bytes,
            errors,
            batch_rows,
            flush_seconds,
            consumer_lag,
            event_to_visible_seconds,
        })
    }

    pub fn error(&self, kind: &str) {
        self.errors.get_or_create(&Kind { kind: kind.to_string() }).inc();
    }

    pub fn encode(&self) -> String {
        let mut out = String::new();
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

/// Serves `/metrics` and `/healthz` on `addr`; returns the bound address.
pub async fn serve(addr: &str, metrics: Arc<Metrics>) -> std::io::Result<std::net::SocketAddr> {
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode()) }
            }),
        )
        .route("/healthz", get(|| async { "ok\n" }));
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}

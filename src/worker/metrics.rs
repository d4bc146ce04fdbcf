//! Prometheus metrics (`/metrics`), liveness (`/healthz`) and readiness (`/readyz`) of the worker.

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

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
    /// Abandoned write attempts (a worker stopped between a batch's data and its markers) taken
    /// back out before their profiles were written again.
    pub abandoned_attempts: Counter,
    pub fetched_bytes: Counter,
    pub errors: Family<Kind, Counter>,
    pub batch_rows: Histogram,
    pub flush_seconds: Histogram,
    pub consumer_lag: Family<Partition, Gauge<i64, AtomicI64>>,
    pub event_to_visible_seconds: Histogram,
    /// 1 while a retry budget is exhausted and the failure goes on.
    pub stalled: Gauge<i64, AtomicI64>,
}

impl Metrics {
    pub fn new() -> Arc<Metrics> {
        let mut registry = Registry::with_prefix("pprofhouse_worker");
        let messages = Family::<Outcome, Counter>::default();
        let profiles = Counter::default();
        let function_rows = Counter::default();
        let fetched_bytes = Counter::default();
        let abandoned_attempts = Counter::default();
        let errors = Family::<Kind, Counter>::default();
        let batch_rows = Histogram::new(exponential_buckets(100.0, 4.0, 10));
        let flush_seconds = Histogram::new(exponential_buckets(0.005, 2.0, 14));
        let consumer_lag = Family::<Partition, Gauge<i64, AtomicI64>>::default();
        let event_to_visible_seconds = Histogram::new(exponential_buckets(0.05, 2.0, 14));
        registry.register("messages", "Kafka messages handled, by outcome", messages.clone());
        registry.register("profiles", "Profiles stored", profiles.clone());
        registry.register("function_rows", "Per-function rows stored", function_rows.clone());
        registry.register("fetched_bytes", "Bytes fetched from S3", fetched_bytes.clone());
        registry.register(
            "abandoned_attempts",
            "Write attempts abandoned half-way (data in, markers not) taken back out before their profiles were written again",
            abandoned_attempts.clone(),
        );
        registry.register("errors", "Errors, by kind (transient ones are retried)", errors.clone());
        registry.register("batch_rows", "Function rows per ClickHouse batch", batch_rows.clone());
        registry.register("flush_seconds", "Latency of a ClickHouse batch insert", flush_seconds.clone());
        registry.register("consumer_lag", "Messages behind the high watermark, per partition", consumer_lag.clone());
        let stalled = Gauge::<i64, AtomicI64>::default();
        registry.register("stalled", "1 while a retry budget is exhausted and the failure goes on (liveness fails)", stalled.clone());
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
            abandoned_attempts,
            fetched_bytes,
            errors,
            batch_rows,
            flush_seconds,
            consumer_lag,
            event_to_visible_seconds,
            stalled,
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

/// Whether the worker makes progress: liveness fails when a retry budget ran out (`stalled`)
/// or when there is lag and no message was handled for `stall_after`; readiness holds once
/// the worker runs and is not stopping.
pub struct Health {
    stalled: AtomicBool,
    lag: AtomicI64,
    progress: Mutex<Instant>,
    ready: AtomicBool,
    stall_after: Duration,
    /// `stalled` as a gauge (1 while the alarm is up).
    pub gauge: Gauge<i64, AtomicI64>,
}

impl Health {
    /// A healthy, not yet ready worker.
    pub fn new(stall_after: Duration, gauge: Gauge<i64, AtomicI64>) -> Arc<Health> {
        Arc::new(Health {
            stalled: AtomicBool::new(false),
            lag: AtomicI64::new(0),
            progress: Mutex::new(Instant::now()),
            ready: AtomicBool::new(false),
            stall_after,
            gauge,
        })
    }

    /// Raises or clears the alarm of an exhausted retry budget.
    pub fn set_stalled(&self, on: bool) {
        self.stalled.store(on, Ordering::Relaxed);
        self.gauge.set(on as i64);
    }

    /// A message was handled (or nothing is waiting).
    pub fn progressed(&self) {
        *self.progress.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
    }

    /// The consumer's current total lag.
    pub fn set_lag(&self, lag: i64) {
        self.lag.store(lag, Ordering::Relaxed);
    }

    /// Ready (or not) to take traffic.
    pub fn set_ready(&self, on: bool) {
        self.ready.store(on, Ordering::Relaxed);
    }

    /// `Err(reason)` when the worker is stuck.
    pub fn live(&self) -> Result<(), String> {
        if self.stalled.load(Ordering::Relaxed) {
            return Err("stalled: a retry budget ran out and the failure goes on".into());
        }
        let idle = self.progress.lock().unwrap_or_else(|e| e.into_inner()).elapsed();
        let lag = self.lag.load(Ordering::Relaxed);
        if lag > 0 && idle > self.stall_after {
            return Err(format!("no progress for {}s with {lag} messages of lag", idle.as_secs()));
        }
        Ok(())
    }

    /// Whether the worker takes messages.
    pub fn ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }
}

/// Serves `/metrics`, `/healthz` (liveness: 503 when stuck) and `/readyz` on `addr`; returns
/// the bound address.
pub async fn serve(addr: &str, metrics: Arc<Metrics>, health: Arc<Health>) -> std::io::Result<std::net::SocketAddr> {
    use axum::http::StatusCode;
    use axum::routing::get;
    let listener = tokio::net::TcpListener::bind(addr).await?;
    let bound = listener.local_addr()?;
    let (h1, h2) = (health.clone(), health);
    let app = axum::Router::new()
        .route(
            "/metrics",
            get(move || {
                let m = metrics.clone();
                async move { ([("content-type", "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode()) }
            }),
        )
        .route(
            "/healthz",
            get(move || {
                let h = h1.clone();
                async move {
                    match h.live() {
                        Ok(()) => (StatusCode::OK, "ok\n".to_string()),
                        Err(why) => (StatusCode::SERVICE_UNAVAILABLE, format!("{why}\n")),
                    }
                }
            }),
        )
        .route(
            "/readyz",
            get(move || {
                let h = h2.clone();
                async move {
                    if h.ready() {
                        (StatusCode::OK, "ready\n")
                    } else {
                        (StatusCode::SERVICE_UNAVAILABLE, "not ready\n")
                    }
                }
            }),
        );
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, app).await {
            tracing::error!(error = %e, "metrics server stopped");
        }
    });
    Ok(bound)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn liveness_fails_on_a_stall_or_on_lag_without_progress() {
        let h = Health::new(Duration::from_millis(20), Gauge::default());
        assert!(h.live().is_ok());
        h.set_stalled(true);
        assert!(h.live().is_err());
        h.set_stalled(false);
        h.set_lag(5);
        std::thread::sleep(Duration::from_millis(40));
        assert!(h.live().unwrap_err().contains("no progress"));
        h.progressed();
        assert!(h.live().is_ok());
        h.set_lag(0);
        std::thread::sleep(Duration::from_millis(40));
        assert!(h.live().is_ok(), "idle without lag is healthy");
    }
}

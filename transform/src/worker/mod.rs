//! `pprofhouse worker`: Kafka → S3 → decode/explode → ClickHouse, at least once in, exactly once
//! in effect.
//!
//! The loop, top to bottom:
//! 1. **Source** — a consumer in group `--group` takes a window of up to `--concurrency`
//!    messages. Each message is an envelope or a raw S3 event (`pprofhouse_ingest::parse_message`).
//! 2. **Transform** — the window's objects are fetched from S3 concurrently (size-limited),
//!    decoded and exploded; metadata comes from the envelope or, for raw events, from the key
//!    layout / the object's metadata.
//! 3. **Sink** — records go into the ClickHouse sink's batch; failures that no retry can fix
//!    (object gone, not a profile, over limits, malformed) go to the dead-letter topic with the
//!    original message, the error kind and its text.
//! 4. **Commit** — offsets are committed only once every record of the messages before them is
//!    durably inserted (batch flushed) and every dead letter acknowledged. A crash anywhere
//!    replays uncommitted messages; the sink's processed-profile check makes replays no-ops.
//!
//! Transient failures (S3, ClickHouse, the broker) are retried with exponential backoff and
//! jitter, never skipped. SIGTERM/SIGINT stop taking messages, flush, commit, and exit 0.

pub mod fetch;
pub mod metrics;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use futures_util::future::join_all;
use pprofhouse_ingest::{parse_message, DeadLetter, KafkaConfig, LayoutConfig, ObjectRef, Producer, Resolution, Resolver, S3Config};
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::message::Message;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::pprof::{self, Limits};
use crate::store::sink::{ProfileMeta, ProfileRecord, Sink, SinkConfig, SourceRef};
use crate::store::ClickHouseConfig;
use crate::{explode, ExplodeOptions};
use fetch::{fetch, FetchError};
use metrics::{Metrics, Outcome, Partition};

/// Worker settings (flags or `PPROFHOUSE_*` env).
#[derive(Debug, Clone, Args)]
pub struct WorkerConfig {
    /// Exit 0 once nothing arrived for this long and everything is flushed and committed
    /// (tests, cron-style runs, backfills). Without it the worker runs until SIGTERM/SIGINT.
    #[arg(long, value_parser = humantime::parse_duration)]
    pub until_idle: Option<Duration>,
    /// Consumer group.
    #[arg(long, env = "PPROFHOUSE_KAFKA_GROUP", default_value = "pprofhouse-worker")]
    pub group: String,
    /// Objects fetched and exploded concurrently.
    #[arg(long, env = "PPROFHOUSE_CONCURRENCY", default_value_t = 8)]
    pub concurrency: usize,
    /// Largest object fetched from S3, in bytes (larger ones are dead-lettered).
    #[arg(long, env = "PPROFHOUSE_MAX_OBJECT_BYTES", default_value_t = 64 << 20)]
    pub max_object_bytes: u64,
    /// Serve Prometheus `/metrics` and `/healthz` here (`127.0.0.1:0`: any free port).
    #[arg(long, env = "PPROFHOUSE_METRICS_ADDR")]
    pub metrics_addr: Option<String>,
    /// Longest pause between retries of a transient failure.
    #[arg(long, env = "PPROFHOUSE_MAX_BACKOFF", default_value = "30s", value_parser = humantime::parse_duration)]
    pub max_backoff: Duration,
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub s3: S3Config,
    #[command(flatten)]
    pub layout: LayoutConfig,
    #[command(flatten)]
    pub clickhouse: ClickHouseConfig,
    #[command(flatten)]
    pub sink: SinkConfig,
    /// Largest decompressed profile accepted, in bytes.
    #[arg(long, env = "PPROFHOUSE_MAX_DECOMPRESSED_BYTES", default_value_t = 256 << 20)]
    pub max_decompressed_bytes: usize,
}

/// Exponential backoff with full jitter.
struct Backoff {
    attempt: u32,
    max: Duration,
}

impl Backoff {
    fn new(max: Duration) -> Self {
        Backoff { attempt: 0, max }
    }
    fn next_delay(&mut self) -> Duration {
        let base = Duration::from_millis(100).saturating_mul(1 << self.attempt.min(16));
        self.attempt += 1;
        let cap = base.min(self.max);
        cap.mul_f64(0.5 + fastrand::f64() * 0.5)
    }
}

/// Sleeps `d` unless shutdown comes first; returns false on shutdown.
async fn sleep_or_shutdown(d: Duration, shutdown: &mut watch::Receiver<bool>) -> bool {
    if *shutdown.borrow() {
        return false;
    }
    tokio::select! {
        _ = tokio::time::sleep(d) => true,
        _ = shutdown.changed() => false,
    }
}

/// A permanent failure of one object: it goes to the dead-letter topic.
struct Dead {
    object: ObjectRef,
    kind: String,
    reason: String,
}

/// What one message produced.
enum Handled {
    Done { records: Vec<(ProfileRecord, Option<chrono::DateTime<chrono::Utc>>)>, dead: Vec<Dead>, skipped: bool },
    /// Shutdown came while a transient failure was being retried: do not commit.
    Interrupted,
}

struct Ctx {
    cfg: WorkerConfig,
    s3: aws_sdk_s3::Client,
    resolver: Resolver,
    limits: Limits,
    metrics: Arc<Metrics>,
}

fn blank_object() -> ObjectRef {
    ObjectRef {
        bucket: String::new(),
        key: String::new(),
        size: 0,
        etag: None,
        version_id: None,
        sequencer: None,
        event_time: None,
        event_name: None,
        source: None,
        user_metadata: Default::default(),
        meta: None,
    }
}

impl Ctx {
    async fn handle(&self, payload: &[u8], shutdown: &watch::Receiver<bool>) -> Handled {
        let objects = match parse_message(payload) {
            Ok(o) => o,
            Err(e) => {
                return Handled::Done {
                    records: vec![],
                    dead: vec![Dead { object: blank_object(), kind: "bad_message".into(), reason: format!("unreadable message: {e}") }],
                    skipped: false,
                }
            }
        };
        if objects.is_empty() {
            return Handled::Done { records: vec![], dead: vec![], skipped: true };
        }
        let mut records = Vec::new();
        let mut dead = Vec::new();
        for obj in objects {
            match self.object(&obj, shutdown.clone()).await {
                Ok(Some(rec)) => records.push((rec, obj.event_time)),
                Ok(None) => return Handled::Interrupted,
                Err((kind, reason)) => dead.push(Dead { object: obj, kind, reason }),
            }
        }
        Handled::Done { records, dead, skipped: false }
    }

    /// One object → a record; `Ok(None)` when interrupted by shutdown; `Err((kind, reason))`
    /// for a permanent failure.
    async fn object(&self, obj: &ObjectRef, mut shutdown: watch::Receiver<bool>) -> Result<Option<ProfileRecord>, (String, String)> {
        let limit = self.cfg.max_object_bytes;
        if obj.size > limit {
            return Err(("over_limit".into(), format!("object is {} bytes, over the limit of {limit} bytes", obj.size)));
        }
        let mut backoff = Backoff::new(self.cfg.max_backoff);
        let fetched = loop {
            match fetch(&self.s3, &obj.bucket, &obj.key, limit).await {
                Ok(f) => break f,
                Err(FetchError::Transient(e)) => {
                    self.metrics.error("s3_transient");
                    tracing::warn!(bucket = %obj.bucket, key = %obj.key, error = %e, "S3 fetch failed; retrying");
                    if !sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await {
                        return Ok(None);
                    }
                }
                Err(e @ FetchError::NotFound { .. }) => return Err(("not_found".into(), e.to_string())),
                Err(e @ FetchError::TooLarge { .. }) => return Err(("over_limit".into(), e.to_string())),
            }
        };
        self.metrics.fetched_bytes.inc_by(fetched.data.len() as u64);
        let meta = match &obj.meta {
            Some(m) => m.clone(),
            None => match self.resolver.resolve(&obj.key, Some(&fetched.metadata), obj.event_time) {
                Resolution::Matched(m) => m,
                Resolution::Unmatched(reason) => return Err(("unmatched_layout".into(), reason)),
            },
        };
        let profile = pprof::decode(fetched.data.clone(), &self.limits).map_err(|e| (e.kind().to_string(), e.to_string()))?;
        let exploded = explode(&profile, ExplodeOptions { stacks: self.cfg.sink.stacks, inline_marks: false });
        let meta = ProfileMeta {
            service: meta.service,
            profile_type: meta.profile_type,
            labels: meta.labels,
            time_ms: Some(meta.created_at.timestamp_millis()),
            source: SourceRef {
                bucket: obj.bucket.clone(),
                key: obj.key.clone(),
                etag: obj.etag.clone().or(fetched.etag).unwrap_or_default(),
                size: fetched.data.len() as u64,
            },
        };
        Ok(Some(ProfileRecord::new(meta, &fetched.data, exploded)))
    }
}

/// Resolves when SIGTERM or SIGINT arrives.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(t) => t,
            Err(_) => {
                let _ = ctrl_c.await;
                return;
            }
        };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}

/// Offsets to commit once the sink has flushed: (topic, partition) → next offset.
type Pending = HashMap<(String, i32), i64>;

struct Loop {
    consumer: StreamConsumer,
    producer: Producer,
    sink: Sink,
    metrics: Arc<Metrics>,
    pending: Pending,
    /// Event times of the records in the unflushed batch.
    batch_events: Vec<Option<chrono::DateTime<chrono::Utc>>>,
    max_backoff: Duration,
}

impl Loop {
    /// Flushes the batch (retrying until it lands or shutdown gives up), then commits.
    async fn flush_and_commit(&mut self, shutdown: &mut watch::Receiver<bool>, give_up_after: Option<Duration>) -> anyhow::Result<()> {
        let started = Instant::now();
        let mut backoff = Backoff::new(self.max_backoff);
        while self.sink.pending() > 0 {
            let t = Instant::now();
            match self.sink.flush().await {
                Ok(stats) => {
                    self.metrics.flush_seconds.observe(t.elapsed().as_secs_f64());
                    self.metrics.batch_rows.observe(stats.rows as f64);
                    self.metrics.profiles.inc_by(stats.inserted as u64);
                    self.metrics.function_rows.inc_by(stats.rows as u64);
                    let now = chrono::Utc::now();
                    for et in self.batch_events.drain(..).flatten() {
                        self.metrics.event_to_visible_seconds.observe(((now - et).num_milliseconds().max(0) as f64) / 1000.0);
                    }
                    tracing::info!(inserted = stats.inserted, duplicates = stats.duplicates, rows = stats.rows, "batch stored");
                }
                Err(e) => {
                    self.metrics.error(if e.is_transient() { "clickhouse_transient" } else { "clickhouse" });
                    tracing::warn!(error = %e, "ClickHouse insert failed; retrying");
                    if give_up_after.is_some_and(|g| started.elapsed() > g) {
                        anyhow::bail!("could not flush before shutting down: {e}");
                    }
                    let d = backoff.next_delay();
                    if *shutdown.borrow() {
                        tokio::time::sleep(d).await;
                    } else if !sleep_or_shutdown(d, shutdown).await {
                        // Shutdown asked: keep trying for a bounded time.
                    }
                }
            }
        }
        self.commit(shutdown, give_up_after).await
    }

    async fn commit(&mut self, shutdown: &mut watch::Receiver<bool>, give_up_after: Option<Duration>) -> anyhow::Result<()> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let mut tpl = TopicPartitionList::new();
        for ((topic, partition), next) in &self.pending {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
        let started = Instant::now();
        let mut backoff = Backoff::new(self.max_backoff);
        loop {
            match self.consumer.commit(&tpl, CommitMode::Sync) {
                Ok(()) => {
                    self.pending.clear();
                    return Ok(());
                }
                Err(e) => {
                    self.metrics.error("kafka_commit");
                    // After a rebalance the partitions may belong to another worker, which will
                    // replay them; the sink makes that harmless.
                    tracing::warn!(error = %e, "offset commit failed");
                    if give_up_after.is_some_and(|g| started.elapsed() > g) || backoff.attempt >= 5 {
                        self.pending.clear();
                        return Ok(());
                    }
                    let _ = sleep_or_shutdown(backoff.next_delay(), shutdown).await;
                }
            }
        }
    }

    /// Sends dead letters, retrying until the broker acknowledges them.
    async fn dead_letter(&self, dead: Vec<Dead>, original: &[u8], shutdown: &mut watch::Receiver<bool>) -> bool {
        for d in dead {
            self.metrics.error(&d.kind);
            let mut dl = DeadLetter::new(d.object, "worker", d.reason.clone());
            dl.error_kind = Some(d.kind.clone());
            dl.original_message = Some(String::from_utf8_lossy(original).into_owned());
            tracing::warn!(kind = %d.kind, reason = %d.reason, "dead letter");
            let mut backoff = Backoff::new(self.max_backoff);
            loop {
                match self.producer.send_dead_letter(dl.clone()).await {
                    Ok(_) => break,
                    Err(e) => {
                        self.metrics.error("kafka_produce");
                        tracing::warn!(error = %e, "dead-letter publish failed; retrying");
                        if !sleep_or_shutdown(backoff.next_delay(), shutdown).await {
                            return false;
                        }
                    }
                }
            }
        }
        true
    }

    fn update_lag(&self) {
        let Ok(assignment) = self.consumer.assignment() else { return };
        let Ok(position) = self.consumer.position() else { return };
        for el in assignment.elements() {
            let Ok((_, high)) = self.consumer.client().fetch_watermarks(el.topic(), el.partition(), Duration::from_millis(200)) else { continue };
            let pos = position.find_partition(el.topic(), el.partition()).and_then(|p| p.offset().to_raw()).filter(|&o| o >= 0);
            let lag = pos.map(|p| (high - p).max(0)).unwrap_or(high);
            self.metrics.consumer_lag.get_or_create(&Partition { topic: el.topic().to_string(), partition: el.partition() }).set(lag);
        }
    }
}

/// Runs the worker until shutdown (or idle, with `--until-idle`).
pub async fn run(cfg: WorkerConfig) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    if let Some(addr) = &cfg.metrics_addr {
        let bound = metrics::serve(addr, metrics.clone()).await.with_context(|| format!("serving metrics on {addr}"))?;
        eprintln!("pprofhouse worker: metrics on http://{bound}");
    }
    let consumer: StreamConsumer = cfg
        .kafka
        .client_config()
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create()
        .context("creating the Kafka consumer")?;
    consumer.subscribe(&[&cfg.kafka.topic]).context("subscribing")?;
    let producer = Producer::new(&cfg.kafka).context("creating the Kafka producer (dead letters)")?;
    let ctx = Arc::new(Ctx {
        s3: cfg.s3.client().await,
        resolver: cfg.layout.resolver(),
        limits: Limits { max_decompressed_bytes: cfg.max_decompressed_bytes },
        metrics: metrics.clone(),
        cfg: cfg.clone(),
    });
    let mut state = Loop {
        consumer,
        producer,
        sink: Sink::new(cfg.clickhouse.client(), cfg.sink.clone()),
        metrics: metrics.clone(),
        pending: Pending::new(),
        batch_events: Vec::new(),
        max_backoff: cfg.max_backoff,
    };
    let (tx, mut shutdown) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing the current batch");
        let _ = tx.send(true);
    });

    let mut idle_since: Option<Instant> = None;
    let started = Instant::now();
    let mut last_assign_note = Instant::now();
    let mut last_lag = Instant::now();
    let poll = Duration::from_millis(200);
    loop {
        if *shutdown.borrow() {
            break;
        }
        // 1. Take a window of messages.
        let mut window = Vec::new();
        let wait = state.sink.deadline().map(|d| d.saturating_duration_since(Instant::now())).unwrap_or(poll).min(poll);
        tokio::select! {
            m = state.consumer.recv() => match m {
                Ok(m) => window.push(m.detach()),
                Err(e) => {
                    metrics.error("kafka_consume");
                    tracing::warn!(error = %e, "consume failed");
                    let _ = sleep_or_shutdown(Duration::from_millis(500), &mut shutdown).await;
                }
            },
            _ = tokio::time::sleep(wait) => {},
            _ = shutdown.changed() => {},
        }
        while !window.is_empty() && window.len() < cfg.concurrency.max(1) {
            match tokio::time::timeout(Duration::from_millis(5), state.consumer.recv()).await {
                Ok(Ok(m)) => window.push(m.detach()),
                _ => break,
            }
        }

        if window.is_empty() {
            if state.sink.should_flush() {
                state.flush_and_commit(&mut shutdown, None).await?;
            }
            if last_lag.elapsed() > Duration::from_secs(5) {
                state.update_lag();
                last_lag = Instant::now();
            }
            let assigned = state.consumer.assignment().map(|a| a.count() > 0).unwrap_or(false);
            if !assigned && last_assign_note.elapsed() > Duration::from_secs(15) {
                tracing::warn!(waited_s = started.elapsed().as_secs(), group = %cfg.group, "still waiting for a partition assignment from the group coordinator");
                last_assign_note = Instant::now();
            }
            if let Some(idle) = cfg.until_idle {
                if assigned && state.sink.pending() == 0 {
                    let since = *idle_since.get_or_insert_with(Instant::now);
                    if since.elapsed() >= idle {
                        state.commit(&mut shutdown, Some(Duration::from_secs(10))).await?;
                        tracing::info!("idle: exiting");
                        return Ok(());
                    }
                }
            }
            continue;
        }
        idle_since = None;

        // 2. Fetch, decode and explode the window concurrently.
        let results = join_all(window.iter().map(|m| {
            let ctx = ctx.clone();
            let sd = shutdown.clone();
            let payload = m.payload().unwrap_or_default().to_vec();
            async move { ctx.handle(&payload, &sd).await }
        }))
        .await;

        // 3. In message order: batch the records, dead-letter the failures, remember offsets.
        let mut interrupted = false;
        for (m, handled) in window.iter().zip(results) {
            match handled {
                Handled::Interrupted => {
                    interrupted = true;
                    break;
                }
                Handled::Done { records, dead, skipped } => {
                    let outcome = if !dead.is_empty() {
                        "dead_letter"
                    } else if skipped {
                        "skipped"
                    } else {
                        "ok"
                    };
                    if !state.dead_letter(dead, m.payload().unwrap_or_default(), &mut shutdown).await {
                        interrupted = true;
                        break;
                    }
                    for (rec, et) in records {
                        state.batch_events.push(et);
                        state.sink.push(rec);
                    }
                    metrics.messages.get_or_create(&Outcome { outcome }).inc();
                    state.pending.insert((m.topic().to_string(), m.partition()), m.offset() + 1);
                }
            }
        }
        if interrupted {
            break;
        }
        // 4. Flush when the batch is due; commit what is durable.
        if state.sink.should_flush() {
            state.flush_and_commit(&mut shutdown, None).await?;
        } else if state.sink.pending() == 0 {
            state.commit(&mut shutdown, None).await?;
        }
    }
    // Shutdown: flush what we have, commit, leave.
    state.flush_and_commit(&mut shutdown, Some(Duration::from_secs(25))).await?;
    tracing::info!("stopped cleanly");
    Ok(())
}

//! `pprofhouse worker`: Kafka → S3 → decode/explode → ClickHouse, at least once in, exactly once
//! in effect.
//!
//! The loop, top to bottom:
//! 1. **Source** — a consumer in group `--group` keeps up to `--concurrency` messages in
//!    flight. Each message is an envelope or a raw S3 event (`pprofhouse_ingest::parse_message`).
//! 2. **Transform** — each message's objects are fetched from S3 (size-limited), then decoded
//!    and exploded on the blocking pool, so every core explodes while other objects download;
//!    metadata comes from the envelope or, for raw events, from the key layout / the object's
//!    metadata.
//! 3. **Sink** — results are taken in message order into the open batch; failures that no
//!    retry can fix (object gone, not a profile, over limits, malformed) go to the dead-letter
//!    topic with the original message, the error kind and its text. A due batch goes to the
//!    flush task, which writes it while the loop fills the next one (one write at a time).
//! 4. **Commit** — the flush task commits the batch's offsets only once it is durably
//!    inserted. A crash anywhere replays uncommitted messages; the sink's processed-profile
//!    check makes replays no-ops. On a rebalance, the batch being written lands and commits
//!    before the partitions go, and what was not yet written is dropped for the next owner to
//!    replay — so two workers never write the same message at once.
//!
//! Transient failures (S3, ClickHouse, the broker) are retried with exponential backoff and
//! jitter, never skipped. SIGTERM/SIGINT stop taking messages, flush, commit, and exit 0.

pub mod fetch;
pub mod metrics;

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::Args;
use pprofhouse_ingest::{parse_message, DeadLetter, KafkaConfig, LayoutConfig, ObjectRef, Producer, Resolution, Resolver, S3Config};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::message::{Message, OwnedMessage};
use rdkafka::ClientContext;
use rdkafka::{Offset, TopicPartitionList};
use tokio::sync::watch;

use crate::pprof::{self, Limits};
use crate::store::sink::{Batch, FlushStats, ProfileMeta, ProfileRecord, SinkConfig, SourceRef, Writer};
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
    #[arg(long, env = "PPROFHOUSE_CONCURRENCY", default_value_t = 16)]
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
        // Inflating, decoding and exploding are CPU work: off the async threads, so a window's
        // profiles are exploded on every core while the next objects download.
        let (data, limits, stacks) = (fetched.data, self.limits, self.cfg.sink.stacks);
        let done = tokio::task::spawn_blocking(move || {
            let profile = pprof::decode(data.clone(), &limits).map_err(|e| (e.kind().to_string(), e.to_string()))?;
            let exploded = explode(&profile, ExplodeOptions { stacks, inline_marks: false });
            Ok(ProfileRecord::new(meta, &data, exploded))
        })
        .await;
        match done {
            Ok(r) => r.map(Some),
            Err(e) => Err(("internal".into(), format!("decoding task failed: {e}"))),
        }
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

/// A Kafka partition: (topic, partition).
type Tp = (String, i32);

/// Offsets to commit once a batch is durable: partition → next offset.
type Pending = HashMap<Tp, i64>;

/// Each batched record remembers its partition (to drop it if the partition is revoked) and
/// its event time (for the event-to-visible latency).
type Tag = (Tp, Option<chrono::DateTime<chrono::Utc>>);

/// How long a revocation waits for the batch being written before letting the partitions go.
const REVOKE_WAIT: Duration = Duration::from_secs(120);
/// How long a flush keeps retrying after shutdown was asked for.
const SHUTDOWN_GIVE_UP: Duration = Duration::from_secs(25);

/// What the consumer's rebalance callback shares with the main loop and the flush task.
#[derive(Default)]
struct Shared {
    /// True while a flush task runs (writing its batch, then committing its offsets).
    flushing: Mutex<bool>,
    flushed: Condvar,
    /// Partitions revoked since the main loop last looked.
    revoked: Mutex<Vec<Tp>>,
}

impl Shared {
    fn set_flushing(&self, on: bool) {
        *self.flushing.lock().unwrap_or_else(|e| e.into_inner()) = on;
        if !on {
            self.flushed.notify_all();
        }
    }

    /// Blocks until no flush runs, for at most `max`; false on timeout.
    fn wait_flushed(&self, max: Duration) -> bool {
        let g = self.flushing.lock().unwrap_or_else(|e| e.into_inner());
        let (g, _) = self.flushed.wait_timeout_while(g, max, |f| *f).unwrap_or_else(|e| e.into_inner());
        !*g
    }

    fn take_revoked(&self) -> Vec<Tp> {
        std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// The consumer's context: makes rebalances lose and duplicate nothing.
///
/// Before partitions are revoked, the batch being written (if any) lands and its offsets are
/// committed, so the next owner starts after it. What this worker holds of the revoked
/// partitions but has not written yet (messages being fetched, records in the open batch) is
/// dropped: the next owner replays it from the committed offset. Nothing is written by two
/// workers at once, and nothing is skipped.
struct WorkerContext {
    shared: Arc<Shared>,
}

impl ClientContext for WorkerContext {}

impl ConsumerContext for WorkerContext {
    fn pre_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        let Rebalance::Revoke(tpl) = rebalance else { return };
        // This runs inside the main loop's `recv`; the flush task runs on the runtime's other
        // threads, so wait without holding up the runtime.
        let wait = || self.shared.wait_flushed(REVOKE_WAIT);
        let landed = match tokio::runtime::Handle::try_current() {
            Ok(h) if h.runtime_flavor() == tokio::runtime::RuntimeFlavor::MultiThread => tokio::task::block_in_place(wait),
            _ => wait(),
        };
        if !landed {
            tracing::warn!("partitions revoked while a batch was still being written; its messages may be replayed by their next owner");
        }
        let mut revoked = self.shared.revoked.lock().unwrap_or_else(|e| e.into_inner());
        revoked.extend(tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())));
        tracing::info!(partitions = tpl.count(), "partitions revoked");
    }
}

type Kafka = StreamConsumer<WorkerContext>;

/// Commits `offsets`, retrying a few times. After a rebalance the partitions may belong to
/// another worker, which replays them; the sink's processed-profile check makes that harmless.
async fn commit(consumer: &Kafka, offsets: &Pending, metrics: &Metrics, max_backoff: Duration) -> anyhow::Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    for ((topic, partition), next) in offsets {
        tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
    }
    let mut backoff = Backoff::new(max_backoff.min(Duration::from_secs(2)));
    loop {
        match consumer.commit(&tpl, CommitMode::Sync) {
            Ok(()) => return Ok(()),
            Err(e) => {
                metrics.error("kafka_commit");
                tracing::warn!(error = %e, "offset commit failed");
                if backoff.attempt >= 5 {
                    return Ok(());
                }
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }
}

/// What the flush task gives back: the writer, and whether the batch landed.
struct Flight {
    writer: Writer,
    result: anyhow::Result<FlushStats>,
}

struct FlushTask {
    consumer: Arc<Kafka>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    max_backoff: Duration,
}

impl FlushTask {
    /// Writes the batch (retrying transient failures until it lands; after shutdown was asked,
    /// for at most [`SHUTDOWN_GIVE_UP`]), then commits the offsets it covers.
    async fn run(self, mut writer: Writer, batch: Batch<Tag>, offsets: Pending, mut shutdown: watch::Receiver<bool>) -> Flight {
        let mut backoff = Backoff::new(self.max_backoff);
        let mut give_up_at: Option<Instant> = None;
        let result = loop {
            if batch.is_empty() {
                break Ok(FlushStats::default());
            }
            let t = Instant::now();
            match writer.write(batch.records()).await {
                Ok(stats) => {
                    self.metrics.flush_seconds.observe(t.elapsed().as_secs_f64());
                    self.metrics.batch_rows.observe(stats.rows as f64);
                    self.metrics.profiles.inc_by(stats.inserted as u64);
                    self.metrics.function_rows.inc_by(stats.rows as u64);
                    let now = chrono::Utc::now();
                    for (_, et) in batch.tags() {
                        if let Some(et) = et {
                            self.metrics.event_to_visible_seconds.observe(((now - *et).num_milliseconds().max(0) as f64) / 1000.0);
                        }
                    }
                    tracing::info!(inserted = stats.inserted, duplicates = stats.duplicates, rows = stats.rows, "batch stored");
                    break Ok(stats);
                }
                Err(e) => {
                    self.metrics.error(if e.is_transient() { "clickhouse_transient" } else { "clickhouse" });
                    tracing::warn!(error = %e, "ClickHouse insert failed; retrying");
                    if *shutdown.borrow() {
                        let at = *give_up_at.get_or_insert_with(|| Instant::now() + SHUTDOWN_GIVE_UP);
                        if Instant::now() >= at {
                            break Err(anyhow::anyhow!("could not flush before shutting down: {e}"));
                        }
                        tokio::time::sleep(backoff.next_delay()).await;
                    } else {
                        let _ = sleep_or_shutdown(backoff.next_delay(), &mut shutdown).await;
                    }
                }
            }
        };
        let result = match result {
            Ok(stats) => commit(&self.consumer, &offsets, &self.metrics, self.max_backoff).await.map(|()| stats),
            Err(e) => Err(e),
        };
        self.shared.set_flushing(false);
        Flight { writer, result }
    }
}

/// A message being fetched and exploded.
struct InFlight {
    message: OwnedMessage,
    handle: tokio::task::JoinHandle<Handled>,
}

impl InFlight {
    fn tp(&self) -> Tp {
        (self.message.topic().to_string(), self.message.partition())
    }
}

/// What woke the main loop.
enum Event {
    Flushed(Result<Flight, tokio::task::JoinError>),
    Handled(Result<Handled, tokio::task::JoinError>),
    Message(Result<OwnedMessage, rdkafka::error::KafkaError>),
    Tick,
}

/// Sends dead letters, retrying until the broker acknowledges them; false on shutdown.
async fn dead_letter(producer: &Producer, metrics: &Metrics, max_backoff: Duration, dead: Vec<Dead>, original: &[u8], shutdown: &mut watch::Receiver<bool>) -> bool {
    for d in dead {
        metrics.error(&d.kind);
        let mut dl = DeadLetter::new(d.object, "worker", d.reason.clone());
        dl.error_kind = Some(d.kind.clone());
        dl.original_message = Some(String::from_utf8_lossy(original).into_owned());
        tracing::warn!(kind = %d.kind, reason = %d.reason, "dead letter");
        let mut backoff = Backoff::new(max_backoff);
        loop {
            match producer.send_dead_letter(dl.clone()).await {
                Ok(_) => break,
                Err(e) => {
                    metrics.error("kafka_produce");
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

fn update_lag(consumer: &Kafka, metrics: &Metrics) {
    let Ok(assignment) = consumer.assignment() else { return };
    let Ok(position) = consumer.position() else { return };
    for el in assignment.elements() {
        let Ok((_, high)) = consumer.client().fetch_watermarks(el.topic(), el.partition(), Duration::from_millis(200)) else { continue };
        let pos = position.find_partition(el.topic(), el.partition()).and_then(|p| p.offset().to_raw()).filter(|&o| o >= 0);
        let lag = pos.map(|p| (high - p).max(0)).unwrap_or(high);
        metrics.consumer_lag.get_or_create(&Partition { topic: el.topic().to_string(), partition: el.partition() }).set(lag);
    }
}

/// Runs the worker until shutdown (or idle, with `--until-idle`).
///
/// The main loop keeps up to `--concurrency` messages in flight (fetch → decode → explode, on
/// every core), takes their results in message order into the open batch, and hands a due
/// batch to the flush task, which writes it and then commits its offsets while the loop goes
/// on filling the next one. At most one batch is being written at a time.
pub async fn run(cfg: WorkerConfig) -> anyhow::Result<()> {
    let metrics = Metrics::new();
    if let Some(addr) = &cfg.metrics_addr {
        let bound = metrics::serve(addr, metrics.clone()).await.with_context(|| format!("serving metrics on {addr}"))?;
        eprintln!("pprofhouse worker: metrics on http://{bound}");
    }
    let shared = Arc::new(Shared::default());
    let consumer: Kafka = cfg
        .kafka
        .client_config()
        .set("group.id", &cfg.group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("enable.partition.eof", "false")
        .create_with_context(WorkerContext { shared: shared.clone() })
        .context("creating the Kafka consumer")?;
    consumer.subscribe(&[&cfg.kafka.topic]).context("subscribing")?;
    let consumer = Arc::new(consumer);
    let producer = Producer::new(&cfg.kafka).context("creating the Kafka producer (dead letters)")?;
    let ctx = Arc::new(Ctx {
        s3: cfg.s3.client().await,
        resolver: cfg.layout.resolver(),
        limits: Limits { max_decompressed_bytes: cfg.max_decompressed_bytes },
        metrics: metrics.clone(),
        cfg: cfg.clone(),
    });
    let (tx, mut shutdown) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing the current batch");
        let _ = tx.send(true);
    });

    let sink_cfg = cfg.sink.clone();
    let concurrency = cfg.concurrency.max(1);
    let mut writer = Some(Writer::new(cfg.clickhouse.client(), sink_cfg.clone()));
    let mut batch: Batch<Tag> = Batch::default();
    // Offsets of the messages whose records are in `batch` (or that produced none).
    let mut pending = Pending::new();
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut flight: Option<tokio::task::JoinHandle<Flight>> = None;

    let mut idle_since: Option<Instant> = None;
    let started = Instant::now();
    let mut last_assign_note = Instant::now();
    let mut last_lag = Instant::now();
    let poll = Duration::from_millis(200);
    loop {
        // Revoked partitions: drop what we hold of them; their next owner replays it.
        let revoked = shared.take_revoked();
        if !revoked.is_empty() {
            inflight.retain(|f| {
                let keep = !revoked.contains(&f.tp());
                if !keep {
                    f.handle.abort();
                }
                keep
            });
            let dropped = batch.retain(|(tp, _)| !revoked.contains(tp));
            pending.retain(|tp, _| !revoked.contains(tp));
            if dropped > 0 {
                tracing::info!(dropped, "dropped unwritten profiles of revoked partitions");
            }
        }

        let stopping = *shutdown.borrow();
        // Hand the batch to the flush task when it is due (or, stopping, once nothing is in
        // flight), or commit offsets of messages that produced no rows.
        if flight.is_none() {
            let due = batch.should_flush(&sink_cfg) || (batch.is_empty() && !pending.is_empty()) || (stopping && inflight.is_empty() && (!batch.is_empty() || !pending.is_empty()));
            if due {
                shared.set_flushing(true);
                let task = FlushTask { consumer: consumer.clone(), shared: shared.clone(), metrics: metrics.clone(), max_backoff: cfg.max_backoff };
                let w = writer.take().expect("the writer is home when no flush runs");
                flight = Some(tokio::spawn(task.run(w, batch.take(), std::mem::take(&mut pending), shutdown.clone())));
            }
        }
        if stopping && inflight.is_empty() && flight.is_none() && batch.is_empty() && pending.is_empty() {
            tracing::info!("stopped cleanly");
            return Ok(());
        }

        // Take a message while there is room (and the open batch is not far over budget
        // because ClickHouse is slow).
        let can_take = !stopping && inflight.len() < concurrency && !batch.over(&sink_cfg, 2);
        let wait = batch.deadline(&sink_cfg).map(|d| d.saturating_duration_since(Instant::now())).unwrap_or(poll).min(poll);
        let event = tokio::select! {
            biased;
            f = async { flight.as_mut().expect("guarded").await }, if flight.is_some() => Event::Flushed(f),
            h = async { (&mut inflight.front_mut().expect("guarded").handle).await }, if !inflight.is_empty() => Event::Handled(h),
            m = async { consumer.recv().await.map(|m| m.detach()) }, if can_take => Event::Message(m),
            _ = tokio::time::sleep(wait) => Event::Tick,
            _ = shutdown.changed(), if !stopping => Event::Tick,
        };

        match event {
            Event::Flushed(done) => {
                flight = None;
                let done = done.map_err(|e| anyhow::anyhow!("flush task failed: {e}"))?;
                writer = Some(done.writer);
                done.result?;
            }
            Event::Handled(handled) => {
                let f = inflight.pop_front().expect("guarded");
                let (tp, offset, payload) = (f.tp(), f.message.offset(), f.message.payload().unwrap_or_default());
                let handled = handled.unwrap_or_else(|e| Handled::Done {
                    records: vec![],
                    dead: vec![Dead { object: blank_object(), kind: "internal".into(), reason: format!("processing task failed: {e}") }],
                    skipped: false,
                });
                match handled {
                    Handled::Interrupted => {
                        // Shutdown while retrying a transient failure: this message and those
                        // after it stay uncommitted and are replayed on restart.
                        inflight.drain(..).for_each(|f| f.handle.abort());
                    }
                    Handled::Done { records, dead, skipped } => {
                        let outcome = if !dead.is_empty() {
                            "dead_letter"
                        } else if skipped {
                            "skipped"
                        } else {
                            "ok"
                        };
                        if !dead_letter(&producer, &metrics, cfg.max_backoff, dead, payload, &mut shutdown).await {
                            inflight.drain(..).for_each(|f| f.handle.abort());
                            continue;
                        }
                        for (rec, et) in records {
                            batch.push(rec, (tp.clone(), et));
                        }
                        metrics.messages.get_or_create(&Outcome { outcome }).inc();
                        pending.insert(tp, offset + 1);
                    }
                }
            }
            Event::Message(Ok(message)) => {
                idle_since = None;
                let (ctx, sd) = (ctx.clone(), shutdown.clone());
                let payload = message.payload().unwrap_or_default().to_vec();
                let handle = tokio::spawn(async move { ctx.handle(&payload, &sd).await });
                inflight.push_back(InFlight { message, handle });
            }
            Event::Message(Err(e)) => {
                metrics.error("kafka_consume");
                tracing::warn!(error = %e, "consume failed");
                let _ = sleep_or_shutdown(Duration::from_millis(500), &mut shutdown).await;
            }
            Event::Tick => {}
        }

        if last_lag.elapsed() > Duration::from_secs(5) {
            update_lag(&consumer, &metrics);
            last_lag = Instant::now();
        }
        let quiet = inflight.is_empty() && batch.is_empty() && pending.is_empty() && flight.is_none();
        if !quiet || *shutdown.borrow() {
            idle_since = None;
            continue;
        }
        let assigned = consumer.assignment().map(|a| a.count() > 0).unwrap_or(false);
        if !assigned && last_assign_note.elapsed() > Duration::from_secs(15) {
            tracing::warn!(waited_s = started.elapsed().as_secs(), group = %cfg.group, "still waiting for a partition assignment from the group coordinator");
            last_assign_note = Instant::now();
        }
        if let Some(idle) = cfg.until_idle {
            if assigned && idle_since.get_or_insert_with(Instant::now).elapsed() >= idle {
                tracing::info!("idle: exiting");
                return Ok(());
            }
        }
    }
}

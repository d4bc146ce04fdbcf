//! `pprofhouse worker`: Kafka → S3 → decode/explode → ClickHouse, at least once in, exactly once
//! in effect. One module per stage, in the order a message travels:
//!
//! 1. [`source`] — the consumer in group `[worker] group`, its rebalance callback and the
//!    commit. Each message is an envelope or a raw S3 event.
//! 2. [`process`] — each message's objects are fetched from S3 (the announced version,
//!    size-limited; [`fetch`]), their metadata resolved, then decoded and exploded on the
//!    blocking pool, so every core explodes while other objects download. Up to `concurrency`
//!    messages are in flight; results are taken in message order.
//! 3. [`flush`] — a due batch (rows, bytes, age, or days spanned) is written by the flush task
//!    while the loop fills the next; its offsets are committed only once it is durable. A
//!    permanently rejected batch is bisected; the profiles ClickHouse refuses are
//!    dead-lettered, the rest lands.
//! 4. [`retry`] — one [`retry::RetryPolicy`] for every retried call, and the
//!    transient/permanent classification ([`retry::Failure::kind`] names every dead letter).
//! 5. [`metrics`] — Prometheus metrics, liveness that fails when the worker is stuck, readiness.
//!
//! A crash anywhere replays uncommitted messages; the sink's processed-profile check makes
//! replays no-ops. On a rebalance, the batch being written lands and commits before the
//! partitions go, and what was not yet written is dropped for the next owner to replay — so
//! two workers never write the same message at once. SIGTERM/SIGINT stop taking messages,
//! flush, commit, and exit 0.

mod config;
mod fetch;
mod flush;
mod metrics;
mod process;
mod retry;
mod source;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
pub use config::cli::{run as run_command, WorkerArgs};
pub use config::Config;
use flush::{send_dead_letter, Flight, FlushTask, Tag};
use metrics::{Health, Metrics, Outcome};
use pprofhouse_ingest::{KafkaConfig, LayoutConfig, Producer, S3Config};
use pprofhouse_sql::sink::{Batch, SinkConfig, Writer};
use pprofhouse_sql::ClickHouseConfig;
use pprofhouse_transform::pprof::Limits;
use process::{Handled, Processor};
use rdkafka::consumer::Consumer;
use rdkafka::message::{Message, OwnedMessage};
use source::{Pending, Shared, Tp};
use tokio::sync::watch;

/// Everything the worker runs with.
pub struct Options {
    /// `[worker]`.
    pub worker: Config,
    /// `[kafka]`.
    pub kafka: KafkaConfig,
    /// `[s3]`.
    pub s3: S3Config,
    /// `[layout]`.
    pub layout: LayoutConfig,
    /// `[clickhouse]`.
    pub clickhouse: ClickHouseConfig,
    /// `[sink]`.
    pub sink: SinkConfig,
    /// `[limits]`.
    pub limits: Limits,
    /// `[retention]`: profiles older than every window are dead-lettered (`expired`).
    pub retention: pprofhouse_sql::Retention,
    /// Exit once idle this long.
    pub until_idle: Option<Duration>,
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
    Flushed(Result<Box<Flight>, tokio::task::JoinError>),
    Handled(Result<Handled, tokio::task::JoinError>),
    Message(Result<OwnedMessage, rdkafka::error::KafkaError>),
    Tick,
}

/// How long the consumer may go unpolled while every slot is busy before its partitions are
/// paused (and polled), well within `max.poll.interval.ms`.
const PAUSE_AFTER: Duration = Duration::from_secs(10);

/// How long a flush keeps retrying after shutdown was asked for.
const SHUTDOWN_GIVE_UP: Duration = Duration::from_secs(25);

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

/// Runs the worker until shutdown (or idle, with `--until-idle`).
///
/// The main loop keeps up to `--concurrency` messages in flight (fetch → decode → explode, on
/// every core), takes their results in message order into the open batch, and hands a due
/// batch to the flush task, which writes it and then commits its offsets while the loop goes
/// on filling the next one. At most one batch is being written at a time.
pub async fn run(o: Options) -> anyhow::Result<()> {
    let cfg = &o.worker;
    o.kafka.check().map_err(anyhow::Error::msg)?;
    let retry = cfg.retry();
    let metrics = Metrics::new();
    let health = Health::new(cfg.stall_after, metrics.stalled.clone());
    if let Some(addr) = &cfg.metrics_addr {
        let bound = metrics::serve(addr, metrics.clone(), health.clone()).await.with_context(|| format!("serving metrics on {addr}"))?;
        eprintln!("pprofhouse worker: metrics on http://{bound}");
    }
    let shared = Arc::new(Shared::default());
    let consumer = Arc::new(source::consumer(&o.kafka, &cfg.group, shared.clone())?);
    let producer = Arc::new(Producer::new(&o.kafka).context("creating the Kafka producer (dead letters)")?);
    let budget_kib = (cfg.max_inflight_bytes / 1024).clamp(1, u32::MAX as u64) as u32;
    let processor = Arc::new(Processor {
        s3: o.s3.client().await,
        resolver: o.layout.resolver()?,
        limits: o.limits,
        max_object_bytes: cfg.max_object_bytes,
        stacks: o.sink.stacks,
        retry,
        metrics: metrics.clone(),
        budget: Arc::new(tokio::sync::Semaphore::new(budget_kib as usize)),
        budget_kib,
        retention: o.retention,
    });
    let (tx, mut shutdown) = watch::channel(false);
    // The flush stops retrying only this long after the shutdown, to land what it holds.
    let (give_up_tx, give_up) = watch::channel(false);
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown requested: finishing the current batch");
        let _ = tx.send(true);
        tokio::time::sleep(SHUTDOWN_GIVE_UP).await;
        let _ = give_up_tx.send(true);
    });
    health.set_ready(true);

    let sink_cfg = o.sink.clone();
    let concurrency = cfg.concurrency.max(1);
    let mut writer = Some(Writer::new(o.clickhouse.client(), sink_cfg.clone()).with_cluster(o.clickhouse.cluster.clone()));
    let mut batch: Batch<Tag> = Batch::default();
    // Offsets of the messages whose records are in `batch` (or that produced none).
    let mut pending = Pending::new();
    let mut inflight: VecDeque<InFlight> = VecDeque::new();
    let mut flight: Option<tokio::task::JoinHandle<Flight>> = None;

    let mut idle_since: Option<Instant> = None;
    let started = Instant::now();
    let mut last_assign_note = Instant::now();
    let mut last_lag = Instant::now();
    // Back-pressure pauses the assigned partitions instead of not polling: the consumer keeps
    // its place in the group however long a write takes.
    let mut paused = false;
    let mut last_poll = Instant::now();
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
            let dropped = batch.retain(|t| !revoked.contains(&t.tp));
            pending.retain(|tp, _| !revoked.contains(tp));
            if dropped > 0 {
                tracing::info!(dropped, "dropped unwritten profiles of revoked partitions");
            }
        }

        let stopping = *shutdown.borrow();
        // Hand the batch to the flush task when it is due (or, stopping, once nothing is in
        // flight), or commit offsets of messages that produced no rows.
        if flight.is_none() {
            let due = batch.should_flush(&sink_cfg)
                || (batch.is_empty() && !pending.is_empty())
                || (stopping && inflight.is_empty() && (!batch.is_empty() || !pending.is_empty()));
            if due {
                shared.set_flushing(true);
                let task = FlushTask {
                    consumer: consumer.clone(),
                    shared: shared.clone(),
                    metrics: metrics.clone(),
                    health: health.clone(),
                    producer: producer.clone(),
                    retry,
                };
                let w = writer.take().expect("the writer is home when no flush runs");
                flight = Some(tokio::spawn(task.run(w, batch.take(), std::mem::take(&mut pending), give_up.clone())));
            }
        }
        if stopping && inflight.is_empty() && flight.is_none() && batch.is_empty() && pending.is_empty() {
            tracing::info!("stopped cleanly");
            return Ok(());
        }

        // Take a message while there is room (and the open batch is not far over budget
        // because ClickHouse is slow).
        let full = batch.over(&sink_cfg, 2);
        let can_take = !stopping && inflight.len() < concurrency && !full;
        // Pause when the wait may be long (a full batch, or in-flight work that has not let us
        // poll for a while), re-applied every time round since a rebalance may bring new
        // partitions; resume as soon as messages can be taken again. Short waits for a free
        // slot do not pause: pausing drops the prefetched messages.
        let want_pause = !stopping && (full || (!can_take && last_poll.elapsed() > PAUSE_AFTER));
        if want_pause || (paused && can_take) {
            if let Ok(assignment) = consumer.assignment() {
                let done = if want_pause { consumer.pause(&assignment) } else { consumer.resume(&assignment) };
                match done {
                    Ok(()) => paused = want_pause,
                    Err(e) => tracing::warn!(error = %e, "pausing or resuming the partitions failed"),
                }
            }
        }
        if can_take || paused {
            last_poll = Instant::now();
        }
        let wait = batch.deadline(&sink_cfg).map(|d| d.saturating_duration_since(Instant::now())).unwrap_or(poll).min(poll);
        let event = tokio::select! {
            biased;
            f = async { flight.as_mut().expect("guarded").await }, if flight.is_some() => Event::Flushed(f.map(Box::new)),
            // A full batch takes no more results until it is written (a batch never spans more
            // days than `max_days`, whatever is in flight).
            h = async { (&mut inflight.front_mut().expect("guarded").handle).await }, if !inflight.is_empty() && !full => Event::Handled(h),
            m = async { consumer.recv().await.map(|m| m.detach()) }, if can_take || paused => Event::Message(m),
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
                let (tp, offset) = (f.tp(), f.message.offset());
                let message: Arc<[u8]> = Arc::from(f.message.payload().unwrap_or_default());
                let handled = handled.unwrap_or_else(|e| Handled::Done {
                    records: vec![],
                    dead: vec![(
                        pprofhouse_ingest::ObjectRef::new("", "", 0),
                        retry::Failure::Internal(format!("processing task failed: {e}")),
                    )],
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
                        let mut sent = true;
                        for (object, failure) in dead {
                            sent =
                                sent && send_dead_letter(&producer, &metrics, &health, &retry, &shutdown, object, &failure, &message).await;
                        }
                        if !sent {
                            inflight.drain(..).for_each(|f| f.handle.abort());
                            continue;
                        }
                        for (rec, object) in records {
                            batch.push(rec, Tag { tp: tp.clone(), object, message: message.clone() });
                        }
                        metrics.messages.get_or_create(&Outcome { outcome }).inc();
                        health.progressed();
                        pending.insert(tp, offset + 1);
                    }
                }
            }
            Event::Message(Ok(message)) => {
                idle_since = None;
                let (processor, stop) = (processor.clone(), shutdown.clone());
                let payload = message.payload().unwrap_or_default().to_vec();
                let handle = tokio::spawn(async move { processor.handle(&payload, &stop).await });
                inflight.push_back(InFlight { message, handle });
            }
            Event::Message(Err(e)) => {
                metrics.error("kafka_consume");
                tracing::warn!(error = %e, "consume failed");
                tokio::select! {
                    _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                    _ = shutdown.wait_for(|s| *s) => {}
                }
            }
            Event::Tick => {}
        }

        if last_lag.elapsed() > Duration::from_secs(5) {
            health.set_lag(source::update_lag(&consumer, &metrics));
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
        if let Some(idle) = o.until_idle {
            if assigned && idle_since.get_or_insert_with(Instant::now).elapsed() >= idle {
                tracing::info!("idle: exiting");
                return Ok(());
            }
        }
    }
}

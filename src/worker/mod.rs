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
//! two workers never write the same message at once. Dropping aborts the messages in flight at
//! once; a profile already being exploded on the blocking pool finishes its work (bounded by
//! `[limits]`: well under a second for the worst hostile profile) and is discarded, and the
//! exit waits at most 5 s for such work. [`memory`] bounds what messages in flight hold. SIGTERM/SIGINT stop taking messages,
//! flush, commit, and exit 0.

mod config;
mod fetch;
mod flush;
mod memory;
pub(crate) mod metrics;
mod process;
pub(crate) mod retry;
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
use process::{DecodePool, Handled, Processor};
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
    /// The revocation epoch when it arrived.
    epoch: u64,
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
pub(crate) async fn shutdown_signal() {
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
    require_schema(&o.clickhouse).await?;
    // The SASL secret (`kafka.sasl_secret`), read once at start.
    let mut kafka = o.kafka.clone();
    pprofhouse_ingest::secrets::resolve(&mut kafka, &o.s3.region).await?;
    let retry = cfg.retry();
    let metrics = Metrics::new();
    let health = Health::new(cfg.stall_after, metrics.stalled.clone());
    if let Some(addr) = &cfg.metrics_addr {
        let bound = metrics::serve(addr, metrics.clone(), health.clone()).await.with_context(|| format!("serving metrics on {addr}"))?;
        eprintln!("pprofhouse worker: metrics on http://{bound}");
    }
    let shared = Arc::new(Shared::default());
    let consumer = Arc::new(source::consumer(&kafka, &cfg.group, shared.clone())?);
    let producer = Arc::new(Producer::new(&kafka).context("creating the Kafka producer (dead letters)")?);
    let ledger = memory::Ledger::new(cfg.max_inflight_bytes);
    let budget_kib = (cfg.max_inflight_bytes / 1024).clamp(1, u32::MAX as u64) as u32;
    let writer = Writer::new(o.clickhouse.client(), o.sink.clone()).with_cluster(o.clickhouse.cluster.clone());
    let processor = Arc::new(Processor {
        s3: o.s3.client().await,
        resolver: o.layout.resolver()?,
        limits: o.limits,
        max_object_bytes: cfg.max_object_bytes,
        stacks: o.sink.stacks,
        known_stacks: writer.known_stacks(),
        retry,
        metrics: metrics.clone(),
        budget: Arc::new(tokio::sync::Semaphore::new(budget_kib as usize)),
        budget_kib,
        cpu: Arc::new(tokio::sync::Semaphore::new(std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2))),
        retention: o.retention,
        decode_buffers: Arc::new(DecodePool::new(cfg.decode_pool_bytes)),
    });
    let (tx, shutdown) = watch::channel(false);
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
    let main = MainLoop {
        sink: o.sink.clone(),
        concurrency: cfg.concurrency.max(1),
        group: cfg.group.clone(),
        until_idle: o.until_idle,
        retry,
        consumer,
        producer,
        processor,
        shared,
        metrics,
        health,
        shutdown,
        give_up,
        writer: Some(writer),
        batch: Batch::default(),
        pending: Pending::new(),
        inflight: VecDeque::new(),
        ledger,
        flight: None,
        paused: false,
        last_poll: Instant::now(),
    };
    main.run().await
}

/// The main loop's state: what is in flight, the open batch, the batch being written.
struct MainLoop {
    sink: SinkConfig,
    concurrency: usize,
    group: String,
    until_idle: Option<Duration>,
    retry: retry::RetryPolicy,
    consumer: Arc<source::Kafka>,
    producer: Arc<Producer>,
    processor: Arc<Processor>,
    shared: Arc<Shared>,
    metrics: Arc<Metrics>,
    health: Arc<Health>,
    shutdown: watch::Receiver<bool>,
    give_up: watch::Receiver<bool>,
    /// Home when no flush runs.
    writer: Option<Writer>,
    batch: Batch<Tag>,
    /// Offsets of the messages whose records are in `batch` (or that produced none).
    pending: Pending,
    inflight: VecDeque<InFlight>,
    /// What the messages in flight hold (`max_inflight_bytes`).
    ledger: Arc<memory::Ledger>,
    flight: Option<tokio::task::JoinHandle<Flight>>,
    /// Back-pressure pauses the assigned partitions instead of not polling: the consumer keeps
    /// its place in the group however long a write takes.
    paused: bool,
    last_poll: Instant,
}

impl MainLoop {
    /// Runs until shutdown (flushed and committed) or idle.
    async fn run(mut self) -> anyhow::Result<()> {
        let (started, mut last_assign_note, mut last_lag) = (Instant::now(), Instant::now(), Instant::now());
        let mut idle_since: Option<Instant> = None;
        loop {
            self.drop_revoked();
            let stopping = *self.shutdown.borrow();
            self.flush_if_due(stopping);
            if stopping && self.quiet() {
                tracing::info!("stopped cleanly");
                return Ok(());
            }
            match self.next_event(stopping).await {
                Event::Flushed(done) => self.on_flushed(done)?,
                Event::Handled(handled) => self.on_handled(handled).await,
                Event::Message(Ok(message)) => {
                    idle_since = None;
                    self.on_message(message);
                }
                Event::Message(Err(e)) => {
                    self.metrics.error("kafka_consume");
                    tracing::warn!(error = %e, "consume failed");
                    tokio::select! {
                        _ = tokio::time::sleep(Duration::from_millis(500)) => {}
                        _ = self.shutdown.wait_for(|s| *s) => {}
                    }
                }
                Event::Tick => {}
            }
            if last_lag.elapsed() > Duration::from_secs(5) {
                self.health.set_lag(source::update_lag(&self.consumer, &self.metrics));
                last_lag = Instant::now();
            }
            if !self.quiet() || *self.shutdown.borrow() {
                idle_since = None;
                continue;
            }
            let assigned = self.consumer.assignment().map(|a| a.count() > 0).unwrap_or(false);
            if !assigned && last_assign_note.elapsed() > Duration::from_secs(15) {
                tracing::warn!(waited_s = started.elapsed().as_secs(), group = %self.group, "still waiting for a partition assignment from the group coordinator");
                last_assign_note = Instant::now();
            }
            if let (Some(idle), true) = (self.until_idle, assigned) {
                if idle_since.get_or_insert_with(Instant::now).elapsed() >= idle {
                    tracing::info!("idle: exiting");
                    return Ok(());
                }
            }
        }
    }

    /// Nothing in flight, nothing held, nothing being written.
    fn quiet(&self) -> bool {
        self.inflight.is_empty() && self.batch.is_empty() && self.pending.is_empty() && self.flight.is_none()
    }

    /// Revoked partitions: drop what we hold of them from before the revocation; their next
    /// owner replays it. What arrived after it (the partition assigned straight back, read
    /// on from the committed offset) is kept. Offsets waiting for a commit are dropped either
    /// way: not committing is always safe (a replay is deduplicated).
    fn drop_revoked(&mut self) {
        let revoked = self.shared.take_revoked();
        if revoked.is_empty() {
            return;
        }
        let stale = |tp: &Tp, epoch: u64| revoked.get(tp).is_some_and(|&r| epoch < r);
        self.inflight.retain(|f| {
            let keep = !stale(&f.tp(), f.epoch);
            if !keep {
                f.handle.abort();
            }
            keep
        });
        let dropped = self.batch.retain(|t| !stale(&t.tp, t.epoch));
        self.pending.retain(|tp, _| !revoked.contains_key(tp));
        if dropped > 0 {
            tracing::info!(dropped, "dropped unwritten profiles of revoked partitions");
        }
    }

    /// Hands the batch to the flush task when it is due (or, stopping, once nothing is in
    /// flight), or commits offsets of messages that produced no rows.
    fn flush_if_due(&mut self, stopping: bool) {
        if self.flight.is_some() {
            return;
        }
        let held = !self.batch.is_empty() || !self.pending.is_empty();
        let due = self.batch.should_flush(&self.sink)
            || (self.batch.is_empty() && !self.pending.is_empty())
            || (stopping && self.inflight.is_empty() && held);
        if !due {
            return;
        }
        self.shared.set_flushing(true);
        let task = FlushTask {
            consumer: self.consumer.clone(),
            shared: self.shared.clone(),
            metrics: self.metrics.clone(),
            health: self.health.clone(),
            producer: self.producer.clone(),
            retry: self.retry,
        };
        let w = self.writer.take().expect("the writer is home when no flush runs");
        self.flight = Some(tokio::spawn(task.run(w, self.batch.take(), std::mem::take(&mut self.pending), self.give_up.clone())));
    }

    /// Back-pressure, then waits for what comes first: the flush, the oldest in-flight
    /// message, a new message, the batch's linger, or the shutdown.
    async fn next_event(&mut self, stopping: bool) -> Event {
        // Take a message while the ledger has room, a full open batch included: the next
        // profiles are fetched and exploded while the previous batch is written (their results
        // wait, charged to the ledger). Stopping at a full batch left the cores idle for every
        // insert, and the pause it took dropped the consumer's prefetched messages.
        let full = self.batch.over(&self.sink, 1);
        let can_take = !stopping && self.inflight.len() < self.concurrency && self.ledger.has_room();
        self.backpressure(stopping, can_take);
        let poll = Duration::from_millis(200);
        let wait = self.batch.deadline(&self.sink).map(|d| d.saturating_duration_since(Instant::now())).unwrap_or(poll).min(poll);
        let (consumer, paused) = (self.consumer.clone(), self.paused);
        tokio::select! {
            biased;
            f = async { self.flight.as_mut().expect("guarded").await }, if self.flight.is_some() => Event::Flushed(f.map(Box::new)),
            // A full batch takes no more results until it is written (a batch never spans more
            // days than `max_days`, whatever is in flight).
            h = async { (&mut self.inflight.front_mut().expect("guarded").handle).await }, if !self.inflight.is_empty() && !full => Event::Handled(h),
            m = async { consumer.recv().await.map(|m| m.detach()) }, if can_take || paused => Event::Message(m),
            _ = tokio::time::sleep(wait) => Event::Tick,
            _ = self.shutdown.changed(), if !stopping => Event::Tick,
        }
    }

    /// Pauses when the wait may be long (no room for a message for a while: a batch ClickHouse
    /// is slow to take, results waiting behind it), re-applied every time round since a
    /// rebalance may bring new partitions; resumes as soon as messages can be taken again.
    /// Short waits do not pause: pausing drops the prefetched messages.
    fn backpressure(&mut self, stopping: bool, can_take: bool) {
        let want_pause = !stopping && !can_take && self.last_poll.elapsed() > PAUSE_AFTER;
        if want_pause || (self.paused && can_take) {
            if let Ok(assignment) = self.consumer.assignment() {
                let done = if want_pause { self.consumer.pause(&assignment) } else { self.consumer.resume(&assignment) };
                match done {
                    Ok(()) => self.paused = want_pause,
                    Err(e) => tracing::warn!(error = %e, "pausing or resuming the partitions failed"),
                }
            }
        }
        if can_take || self.paused {
            self.last_poll = Instant::now();
        }
    }

    fn on_flushed(&mut self, done: Result<Box<Flight>, tokio::task::JoinError>) -> anyhow::Result<()> {
        self.flight = None;
        let done = done.map_err(|e| anyhow::anyhow!("flush task failed: {e}"))?;
        self.writer = Some(done.writer);
        done.result.map(|_| ())
    }

    fn on_message(&mut self, message: OwnedMessage) {
        let (processor, stop) = (self.processor.clone(), self.shutdown.clone());
        let payload = message.payload().unwrap_or_default().to_vec();
        let announced: u64 = pprofhouse_ingest::parse_message(&payload).map(|objs| objs.iter().map(|o| o.size).sum()).unwrap_or(0);
        let charge = memory::Charge::new(&self.ledger, announced.saturating_mul(memory::ESTIMATE_PER_OBJECT_BYTE));
        let handle = tokio::spawn(async move { processor.handle(&payload, &stop, charge).await });
        let epoch = self.shared.epoch();
        self.inflight.push_back(InFlight { message, handle, epoch });
    }

    /// The oldest in-flight message is done: its dead letters go out, its records into the
    /// batch, its offset into the ledger.
    async fn on_handled(&mut self, handled: Result<Handled, tokio::task::JoinError>) {
        let f = self.inflight.pop_front().expect("guarded");
        let (tp, offset, epoch) = (f.tp(), f.message.offset(), f.epoch);
        if !self.shared.owns(&tp) {
            // Delivered around a rebalance for a partition that is no longer ours.
            return;
        }
        let message: Arc<[u8]> = Arc::from(f.message.payload().unwrap_or_default());
        let handled = handled.unwrap_or_else(|e| Handled::Done {
            records: vec![],
            dead: vec![(pprofhouse_ingest::ObjectRef::new("", "", 0), retry::Failure::Internal(format!("processing task failed: {e}")))],
            skipped: false,
            charge: memory::Charge::new(&self.ledger, 0),
        });
        let (records, dead, skipped, _charge) = match handled {
            Handled::Done { records, dead, skipped, charge } => (records, dead, skipped, charge),
            // Shutdown while retrying a transient failure: this message and those after it
            // stay uncommitted and are replayed on restart.
            Handled::Interrupted => return self.inflight.drain(..).for_each(|f| f.handle.abort()),
        };
        let outcome = if !dead.is_empty() {
            "dead_letter"
        } else if skipped {
            "skipped"
        } else {
            "ok"
        };
        for (object, failure) in dead {
            if !send_dead_letter(&self.producer, &self.metrics, &self.health, &self.retry, &self.shutdown, object, &failure, &message).await
            {
                return self.inflight.drain(..).for_each(|f| f.handle.abort());
            }
        }
        for (rec, object) in records {
            self.batch.push(rec, Tag { tp: tp.clone(), object, message: message.clone(), epoch });
        }
        self.metrics.messages.get_or_create(&Outcome { outcome }).inc();
        self.health.progressed();
        self.pending.insert(tp, offset + 1);
    }
}

/// Refuses to start against a database that lacks this release's migrations: its batches would
/// be refused for good (an unknown table or column) and its profiles dead-lettered. When
/// ClickHouse cannot be asked now, the sink's retries take over.
pub async fn require_schema(cfg: &pprofhouse_sql::ClickHouseConfig) -> anyhow::Result<()> {
    match pprofhouse_sql::schema::require_migrated(&cfg.client(), &cfg.database).await {
        Err(e) if e.is_transient() => {
            tracing::warn!(error = %e, "cannot check the schema version now; writing will retry");
            Ok(())
        }
        r => Ok(r?),
    }
}

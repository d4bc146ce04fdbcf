//! The source: the Kafka consumer in its group, its rebalance callback, the offsets ledger and
//! the commit.
//!
//! Offsets are committed by hand, only after the batch holding a message's profiles (or its
//! dead letters) is durable: the consumer may hand a message over twice, never lose one.

use std::collections::HashMap;
use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use anyhow::Context;
use pprofhouse_ingest::config::Client;
use pprofhouse_ingest::KafkaConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer};
use rdkafka::{ClientContext, Offset, TopicPartitionList};
use tokio::sync::watch;

use super::metrics::{Metrics, Partition};
use super::retry::{Retried, RetryPolicy};

/// A Kafka partition: (topic, partition).
pub type Tp = (String, i32);

/// Offsets to commit once a batch is durable: partition → next offset.
pub type Pending = HashMap<Tp, i64>;

/// How long a revocation waits for the batch being written before letting the partitions go.
const REVOKE_WAIT: Duration = Duration::from_secs(120);

/// What the consumer's rebalance callback shares with the main loop and the flush task.
#[derive(Default)]
pub struct Shared {
    /// True while a flush task runs (writing its batch, then committing its offsets).
    flushing: Mutex<bool>,
    flushed: Condvar,
    /// Partitions revoked since the main loop last looked, each with the revocation's epoch.
    revoked: Mutex<Vec<(Tp, u64)>>,
    /// Counts revocations. A message received before a revocation of its partition (a
    /// smaller epoch) belongs to the old assignment, even when one rebalance revokes the
    /// partition and assigns it straight back: only those are dropped, never the messages the
    /// new assignment delivers from the committed offset.
    epoch: std::sync::atomic::AtomicU64,
    /// The partitions this worker owns now (assigned and not revoked since).
    owned: Mutex<std::collections::HashSet<Tp>>,
}

impl Shared {
    pub fn set_flushing(&self, on: bool) {
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

    /// Partitions revoked since the last call, with the epoch of their latest revocation.
    pub fn take_revoked(&self) -> HashMap<Tp, u64> {
        let mut out = HashMap::new();
        for (tp, epoch) in std::mem::take(&mut *self.revoked.lock().unwrap_or_else(|e| e.into_inner())) {
            let e = out.entry(tp).or_insert(epoch);
            *e = (*e).max(epoch);
        }
        out
    }

    /// The current revocation epoch (stamp a message with it when it arrives).
    pub fn epoch(&self) -> u64 {
        self.epoch.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Whether this worker owns the partition now. A message of a partition it no longer owns
    /// (one librdkafka delivered around a rebalance) is never stored or committed by it: its
    /// new owner does that, from the committed offset.
    pub fn owns(&self, tp: &Tp) -> bool {
        self.owned.lock().unwrap_or_else(|e| e.into_inner()).contains(tp)
    }
}

/// The consumer's context: makes rebalances lose and duplicate nothing.
///
/// Before partitions are revoked, the batch being written (if any) lands and its offsets are
/// committed, so the next owner starts after it. What this worker holds of the revoked
/// partitions but has not written yet (messages being fetched, records in the open batch) is
/// dropped: the next owner replays it from the committed offset. Nothing is written by two
/// workers at once, and nothing is skipped.
pub struct WorkerContext {
    /// What the main loop and the flush task share with the callback.
    pub shared: Arc<Shared>,
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
        let tps: Vec<Tp> = tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())).collect();
        let mut owned = self.shared.owned.lock().unwrap_or_else(|e| e.into_inner());
        for tp in &tps {
            owned.remove(tp);
        }
        drop(owned);
        let epoch = self.shared.epoch.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        self.shared.revoked.lock().unwrap_or_else(|e| e.into_inner()).extend(tps.into_iter().map(|tp| (tp, epoch)));
        tracing::info!(partitions = tpl.count(), "partitions revoked");
    }

    fn post_rebalance(&self, _consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(tpl) = rebalance {
            let mut owned = self.shared.owned.lock().unwrap_or_else(|e| e.into_inner());
            owned.extend(tpl.elements().iter().map(|e| (e.topic().to_string(), e.partition())));
            tracing::info!(partitions = tpl.count(), "partitions assigned");
        }
    }
}

/// The consumer.
pub type Kafka = StreamConsumer<WorkerContext>;

/// Creates the consumer (manual commits, from the earliest offset for a new group) and
/// subscribes it to the profiles topic.
pub fn consumer(kafka: &KafkaConfig, group: &str, shared: Arc<Shared>) -> anyhow::Result<Kafka> {
    let mut c = kafka.client_config(Client::Consumer);
    c.set("group.id", group).set("enable.auto.commit", "false").set("auto.offset.reset", "earliest").set("enable.partition.eof", "false");
    let consumer: Kafka = c.create_with_context(WorkerContext { shared }).context("creating the Kafka consumer")?;
    consumer.subscribe(&[&kafka.topic]).context("subscribing")?;
    Ok(consumer)
}

/// Commits `offsets` within the retry policy. Giving up is safe: after a rebalance the
/// partitions may belong to another worker, which replays them, and the sink's
/// processed-profile check makes that harmless.
pub async fn commit(consumer: &Kafka, offsets: &Pending, metrics: &Metrics, retry: &RetryPolicy) -> anyhow::Result<()> {
    if offsets.is_empty() {
        return Ok(());
    }
    let mut tpl = TopicPartitionList::new();
    let owned = consumer.context().shared.owned.lock().unwrap_or_else(|e| e.into_inner()).clone();
    for ((topic, partition), next) in offsets {
        // Never commit for a partition another worker owns now: its progress is its own.
        if owned.contains(&(topic.clone(), *partition)) {
            tpl.add_partition_offset(topic, *partition, Offset::Offset(*next))?;
        }
    }
    if tpl.count() == 0 {
        return Ok(());
    }
    let (_never, stop) = watch::channel(false);
    let policy = RetryPolicy { max_delay: retry.max_delay.min(Duration::from_secs(2)), budget: retry.budget.min(5), ..*retry };
    match policy.run("kafka_commit", metrics, &stop, |_| true, || async { consumer.commit(&tpl, CommitMode::Sync) }).await {
        Ok(()) => {}
        Err(Retried::Exhausted(e) | Retried::Permanent(e)) => {
            tracing::warn!(error = %e, "offset commit failed; the messages will be replayed (and deduplicated)")
        }
        Err(Retried::Interrupted) => {}
    }
    Ok(())
}

/// Reads each assigned partition's lag into the `consumer_lag` gauge; returns the total.
pub fn update_lag(consumer: &Kafka, metrics: &Metrics) -> i64 {
    let mut total = 0;
    let Ok(assignment) = consumer.assignment() else { return 0 };
    let Ok(position) = consumer.position() else { return 0 };
    for el in assignment.elements() {
        let Ok((_, high)) = consumer.client().fetch_watermarks(el.topic(), el.partition(), Duration::from_millis(200)) else { continue };
        let pos = position.find_partition(el.topic(), el.partition()).and_then(|p| p.offset().to_raw()).filter(|&o| o >= 0);
        let lag = pos.map(|p| (high - p).max(0)).unwrap_or(high);
        metrics.consumer_lag.get_or_create(&Partition { topic: el.topic().to_string(), partition: el.partition() }).set(lag);
        total += lag;
    }
    total
}

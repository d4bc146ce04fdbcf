//! The flush: a due batch is written to ClickHouse while the main loop fills the next one, then
//! its offsets are committed. One bad profile never holds the batch: a permanent rejection
//! splits the batch in halves until the profiles ClickHouse refuses are isolated; those go to
//! the dead-letter topic with the ClickHouse error as reason, and the rest lands. A transient
//! failure past the retry budget raises the alarm (the `stalled` gauge, a failing liveness
//! probe) and keeps trying: the data is never dropped for it.

use std::sync::Arc;
use std::time::Instant;

use pprofhouse_ingest::{DeadLetter, ObjectRef, Producer};
use pprofhouse_sql::sink::{Batch, FlushStats, ProfileRecord, Writer};
use tokio::sync::watch;

use super::metrics::{Health, Metrics};
use super::retry::{Failure, Retried, RetryPolicy};
use super::source::{commit, Kafka, Pending, Shared, Tp};

/// What each batched profile remembers: its partition (to drop it if the partition is
/// revoked), its event time (event-to-visible latency), and its object and original message
/// (for a dead letter, should ClickHouse reject it).
#[derive(Clone)]
pub struct Tag {
    /// Kafka partition of the message.
    pub tp: Tp,
    /// The object.
    pub object: ObjectRef,
    /// The message it came in.
    pub message: Arc<[u8]>,
    /// The revocation epoch when the message arrived ([`super::source::Shared::epoch`]).
    pub epoch: u64,
}

/// What the flush task gives back: the writer, and whether the batch landed.
pub struct Flight {
    /// The writer, for the next batch.
    pub writer: Writer,
    /// What the write did; `Err` only when stopped before the batch landed.
    pub result: anyhow::Result<FlushStats>,
}

/// Everything a flush needs besides the batch.
pub struct FlushTask {
    /// For the commit.
    pub consumer: Arc<Kafka>,
    /// Rebalance coordination.
    pub shared: Arc<Shared>,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Liveness.
    pub health: Arc<Health>,
    /// Dead letters of rejected profiles.
    pub producer: Arc<Producer>,
    /// Retries.
    pub retry: RetryPolicy,
}

impl FlushTask {
    /// Writes the batch (bisecting around rejected profiles), then commits the offsets it
    /// covers. `stop` interrupts only the waits between retries (the worker sets it some
    /// time after a shutdown was asked for).
    pub async fn run(self, writer: Writer, batch: Batch<Tag>, offsets: Pending, stop: watch::Receiver<bool>) -> Flight {
        let t = Instant::now();
        let result = self.write(&writer, batch.records(), batch.tags(), &stop).await;
        let result = match result {
            Ok(stats) => {
                self.metrics.flush_seconds.observe(t.elapsed().as_secs_f64());
                self.metrics.batch_rows.observe(stats.rows as f64);
                self.metrics.profiles.inc_by(stats.inserted as u64);
                self.metrics.function_rows.inc_by(stats.rows as u64);
                self.metrics.abandoned_attempts.inc_by(stats.taken_back as u64);
                let now = chrono::Utc::now();
                for tag in batch.tags() {
                    if let Some(et) = tag.object.event_time {
                        self.metrics.event_to_visible_seconds.observe(((now - et).num_milliseconds().max(0) as f64) / 1000.0);
                    }
                }
                if !batch.is_empty() {
                    tracing::info!(
                        inserted = stats.inserted,
                        duplicates = stats.duplicates,
                        taken_back = stats.taken_back,
                        rows = stats.rows,
                        bytes = stats.bytes,
                        "batch stored"
                    );
                }
                commit(&self.consumer, &offsets, &self.metrics, &self.retry).await.map(|()| stats)
            }
            Err(e) => Err(e),
        };
        self.shared.set_flushing(false);
        Flight { writer, result }
    }

    /// Writes `records`; a permanent failure splits them, down to single profiles, which are
    /// dead-lettered. Iterative (a stack of ranges), so a batch of any size is bisected in
    /// O(log n) depth without recursion.
    async fn write(
        &self,
        writer: &Writer,
        records: &[ProfileRecord],
        tags: &[Tag],
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<FlushStats> {
        let mut total = FlushStats::default();
        let mut todo = vec![(0, records.len())];
        while let Some((lo, hi)) = todo.pop() {
            if lo == hi {
                continue;
            }
            let part = &records[lo..hi];
            let outcome = loop {
                match self
                    .retry
                    .run("clickhouse_insert", &self.metrics, stop, |e: &pprofhouse_sql::Error| e.is_transient(), || writer.write(part))
                    .await
                {
                    Ok(stats) => break Ok(stats),
                    Err(Retried::Exhausted(e)) => {
                        self.health.set_stalled(true);
                        self.metrics.error("retry_budget_exhausted");
                        tracing::error!(error = %e, profiles = part.len(), "ClickHouse keeps failing; still retrying (liveness now fails)");
                    }
                    Err(Retried::Interrupted) => anyhow::bail!("stopped before the batch was stored; its messages will be replayed"),
                    Err(Retried::Permanent(e)) => break Err(e),
                }
            };
            self.health.set_stalled(false);
            match outcome {
                Ok(stats) => {
                    total.inserted += stats.inserted;
                    total.duplicates += stats.duplicates;
                    total.rows += stats.rows;
                    total.bytes += stats.bytes;
                    total.taken_back += stats.taken_back;
                }
                Err(e) => {
                    // What the failed attempt left in the first-level tables goes first, so the
                    // halves (or the dead letter) start from nothing.
                    match self
                        .retry
                        .run(
                            "clickhouse_discard",
                            &self.metrics,
                            stop,
                            |e: &pprofhouse_sql::Error| e.is_transient(),
                            || writer.discard(part),
                        )
                        .await
                    {
                        Ok(()) => {}
                        Err(Retried::Interrupted) => anyhow::bail!("stopped before the batch was stored; its messages will be replayed"),
                        Err(Retried::Permanent(d) | Retried::Exhausted(d)) => {
                            self.health.set_stalled(true);
                            anyhow::bail!("cannot remove the rows of a rejected batch before splitting it ({d}); stopping so its messages are replayed");
                        }
                    }
                    self.split_or_dead_letter(e, lo, hi, part, tags, &mut todo, stop).await?;
                }
            }
        }
        Ok(total)
    }

    /// After a permanent rejection of `records[lo..hi]`: split it, or dead-letter its one profile.
    #[allow(clippy::too_many_arguments)]
    async fn split_or_dead_letter(
        &self,
        e: pprofhouse_sql::Error,
        lo: usize,
        hi: usize,
        part: &[ProfileRecord],
        tags: &[Tag],
        todo: &mut Vec<(usize, usize)>,
        stop: &watch::Receiver<bool>,
    ) -> anyhow::Result<()> {
        match part.len() {
            1 => {
                let tag = &tags[lo];
                let failure = Failure::Rejected(e.to_string());
                tracing::warn!(bucket = %tag.object.bucket, key = %tag.object.key, error = %e, "ClickHouse rejects this profile; dead-lettering it");
                if !send_dead_letter(
                    &self.producer,
                    &self.metrics,
                    &self.health,
                    &self.retry,
                    stop,
                    tag.object.clone(),
                    &failure,
                    &tag.message,
                )
                .await
                {
                    anyhow::bail!("stopped before a dead letter was sent; its message will be replayed");
                }
            }
            _ => {
                tracing::warn!(error = %e, profiles = part.len(), "ClickHouse rejects the batch; splitting it to isolate the bad profiles");
                let mid = lo + part.len() / 2;
                todo.push((mid, hi));
                todo.push((lo, mid));
            }
        }
        Ok(())
    }
}

fn produce_is_transient(e: &pprofhouse_ingest::producer::ProduceError) -> bool {
    use rdkafka::types::RDKafkaErrorCode as C;
    match e {
        pprofhouse_ingest::producer::ProduceError::Delivery { source, .. } => !matches!(
            source.rdkafka_error_code(),
            Some(
                C::MessageSizeTooLarge
                    | C::InvalidMessageSize
                    | C::TopicAuthorizationFailed
                    | C::UnknownTopicOrPartition
                    | C::InvalidMessage
            )
        ),
        pprofhouse_ingest::producer::ProduceError::Create(_) => false,
    }
}

/// Sends one dead letter. Transient failures are retried (past the budget the alarm goes up
/// and it keeps trying); a dead letter the broker refuses for good (too large) is sent again
/// without the original message, and if even that is refused it is logged and counted
/// (`errors{kind="dead_letter_lost"}`) so one object never stops the pipeline. False when
/// stopped first.
#[allow(clippy::too_many_arguments)]
pub async fn send_dead_letter(
    producer: &Producer,
    metrics: &Metrics,
    health: &Health,
    retry: &RetryPolicy,
    stop: &watch::Receiver<bool>,
    object: ObjectRef,
    failure: &Failure,
    original: &[u8],
) -> bool {
    metrics.error(failure.kind());
    tracing::warn!(kind = failure.kind(), reason = %failure, bucket = %object.bucket, key = %object.key, "dead letter");
    let mut dl = DeadLetter::new(object, "worker", failure.to_string());
    dl.error_kind = Some(failure.kind().to_string());
    dl.original_message = Some(String::from_utf8_lossy(original).into_owned());
    loop {
        match retry.run("kafka_produce", metrics, stop, produce_is_transient, || producer.send_dead_letter(dl.clone())).await {
            Ok(_) => {
                health.set_stalled(false);
                return true;
            }
            Err(Retried::Interrupted) => return false,
            Err(Retried::Permanent(e)) if dl.original_message.is_some() => {
                tracing::warn!(error = %e, "dead letter refused; sending it again without the original message");
                dl.original_message = None;
                dl.reason = format!("{} (original message dropped: {e})", dl.reason);
            }
            Err(Retried::Permanent(e)) => {
                metrics.error("dead_letter_lost");
                tracing::error!(error = %e, dead_letter = %serde_json::to_string(&dl).unwrap_or_default(), "the broker refuses this dead letter; it is only in this log");
                return true;
            }
            Err(Retried::Exhausted(e)) => {
                health.set_stalled(true);
                tracing::error!(error = %e, "dead letters cannot be sent; still retrying (liveness now fails)");
            }
        }
    }
}

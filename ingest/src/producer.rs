//! The Kafka producer: idempotent, `acks=all`, key `bucket/key`, all-or-error batches, and the
//! dead-letter topic.
//!
//! [`Producer::send_all`] enqueues every message first and then awaits every delivery report, so
//! a batch costs one round of broker latency; it fails if any message fails (after librdkafka's
//! own retries, bounded by `message.timeout.ms`). Messages already delivered stay delivered: the
//! caller's retry (Lambda, a rerun of backfill) sends them again, which is why consumers treat
//! `bucket/key` (+ etag/sequencer) as the identity of an object, not the offset.
//!
//! Partitioning uses `murmur2_random`, the Java client's partitioner, so every client that
//! produces `bucket/key` agrees on the partition of an object.
use std::collections::BTreeMap;

use futures_util::future::join_all;
use rdkafka::error::KafkaError;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;
use serde::Serialize;

use crate::config::{Client, KafkaConfig};
use pprofhouse_message::{DeadLetter, ObjectRef, HEADER_KIND, HEADER_REASON, HEADER_STAGE};

/// One message to produce.
#[derive(Clone, Debug)]
pub enum Outgoing {
    /// An envelope for the profiles topic.
    Profile(ObjectRef),
    /// A dead letter for the dead-letter topic.
    DeadLetter(DeadLetter),
}

impl Outgoing {
    /// `bucket/key`.
    pub fn message_key(&self) -> String {
        match self {
            Outgoing::Profile(o) => o.message_key(),
            Outgoing::DeadLetter(d) => d.object.message_key(),
        }
    }
}

/// Where a message landed.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Delivered {
    /// Topic.
    pub topic: String,
    /// Message key.
    pub key: String,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
}

/// Producing failed.
#[derive(Debug, thiserror::Error)]
pub enum ProduceError {
    /// The producer could not be created (bad settings).
    #[error("cannot create the Kafka producer: {0}")]
    Create(#[source] KafkaError),
    /// Messages were not delivered.
    #[error("{failed} of {total} messages were not delivered; first: {key}")]
    Delivery {
        /// How many failed.
        failed: usize,
        /// How many were sent.
        total: usize,
        /// Message key.
        key: String,
        /// The first failure.
        #[source]
        source: KafkaError,
    },
}

/// The idempotent producer for the profiles and dead-letter topics.
pub struct Producer {
    inner: FutureProducer,
    topic: String,
    dlq_topic: String,
    timeout: std::time::Duration,
}

impl Producer {
    /// Create the producer (`enable.idempotence=true`, `acks=all`, `murmur2_random`, lz4).
    /// Extra properties from the config override these.
    pub fn new(cfg: &KafkaConfig) -> Result<Self, ProduceError> {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &cfg.brokers)
            .set("client.id", &cfg.client_id)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("compression.type", "lz4")
            .set("linger.ms", "5")
            .set("message.timeout.ms", cfg.timeout_ms.to_string());
        cfg.apply_properties(&mut c, Client::Producer);
        let inner: FutureProducer = c.create().map_err(ProduceError::Create)?;
        Ok(Producer { inner, topic: cfg.topic.clone(), dlq_topic: cfg.dlq_topic.clone(), timeout: cfg.timeout() })
    }

    /// The underlying rdkafka producer.
    pub fn inner(&self) -> &FutureProducer {
        &self.inner
    }

    /// The profiles topic.
    pub fn topic(&self) -> &str {
        &self.topic
    }

    /// The dead-letter topic.
    pub fn dlq_topic(&self) -> &str {
        &self.dlq_topic
    }

    /// Produce all messages and wait for every delivery; error if any failed.
    pub async fn send_all(&self, msgs: &[Outgoing]) -> Result<Vec<Delivered>, ProduceError> {
        if msgs.is_empty() {
            return Ok(Vec::new());
        }
        struct Prepared {
            topic: String,
            key: String,
            payload: Vec<u8>,
            headers: BTreeMap<&'static str, String>,
        }
        let prepared: Vec<Prepared> = msgs
            .iter()
            .map(|m| match m {
                Outgoing::Profile(o) => Prepared {
                    topic: self.topic.clone(),
                    key: o.message_key(),
                    payload: o.to_envelope_json(),
                    headers: [(HEADER_KIND, "envelope-v1".to_string())].into(),
                },
                Outgoing::DeadLetter(d) => Prepared {
                    topic: self.dlq_topic.clone(),
                    key: d.object.message_key(),
                    payload: serde_json::to_vec(d).expect("DeadLetter serializes"),
                    headers: [
                        (HEADER_KIND, "deadletter-v1".to_string()),
                        (HEADER_REASON, d.reason.clone()),
                        (HEADER_STAGE, d.stage.clone()),
                    ]
                    .into(),
                },
            })
            .collect();
        let futures = prepared.iter().map(|p| {
            let mut headers = OwnedHeaders::new_with_capacity(p.headers.len());
            for (k, v) in &p.headers {
                headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
            }
            let record = FutureRecord::to(&p.topic).key(p.key.as_bytes()).payload(&p.payload).headers(headers);
            self.inner.send(record, Timeout::After(self.timeout))
        });
        let results = join_all(futures).await;
        let total = results.len();
        let mut delivered = Vec::with_capacity(total);
        let mut first_err: Option<(String, KafkaError)> = None;
        let mut failed = 0;
        for (p, r) in prepared.iter().zip(results) {
            match r {
                Ok(d) => delivered.push(Delivered { topic: p.topic.clone(), key: p.key.clone(), partition: d.partition, offset: d.offset }),
                Err((e, _)) => {
                    failed += 1;
                    tracing::warn!(key = %p.key, topic = %p.topic, error = %e, "delivery failed");
                    first_err.get_or_insert((p.key.clone(), e));
                }
            }
        }
        match first_err {
            None => Ok(delivered),
            Some((key, source)) => Err(ProduceError::Delivery { failed, total, key, source }),
        }
    }

    /// Produce one dead letter and wait for its delivery.
    pub async fn send_dead_letter(&self, dl: DeadLetter) -> Result<Delivered, ProduceError> {
        let mut v = self.send_all(&[Outgoing::DeadLetter(dl)]).await?;
        Ok(v.remove(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    use rdkafka::mocking::MockCluster;
    use rdkafka::Message;
    use std::time::Duration;

    /// Read `want` messages from all partitions of a topic (assigned, no consumer group).
    fn drain(brokers: &str, topic: &str, partitions: i32, want: usize) -> Vec<(i32, String, Vec<u8>, Option<String>)> {
        use rdkafka::message::Headers;
        let consumer: BaseConsumer = rdkafka::ClientConfig::new().set("bootstrap.servers", brokers).set("group.id", "t").create().unwrap();
        let mut tpl = rdkafka::TopicPartitionList::new();
        for p in 0..partitions {
            tpl.add_partition_offset(topic, p, rdkafka::Offset::Beginning).unwrap();
        }
        consumer.assign(&tpl).unwrap();
        let mut out = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(20);
        while out.len() < want && std::time::Instant::now() < deadline {
            if let Some(Ok(m)) = consumer.poll(Duration::from_millis(200)) {
                let reason = m.headers().and_then(|h| {
                    h.iter().find(|x| x.key == HEADER_REASON).and_then(|x| x.value).map(|v| String::from_utf8_lossy(v).into_owned())
                });
                out.push((m.partition(), String::from_utf8_lossy(m.key().unwrap()).into_owned(), m.payload().unwrap().to_vec(), reason));
            }
        }
        out
    }

    #[tokio::test]
    async fn mock_cluster_send_all_and_dead_letter() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("p", 4, 1).unwrap();
        cluster.create_topic("d", 1, 1).unwrap();
        let mut cfg = KafkaConfig::new(cluster.bootstrap_servers());
        cfg.topic = "p".into();
        cfg.dlq_topic = "d".into();
        let producer = Producer::new(&cfg).unwrap();
        let msgs: Vec<Outgoing> = (0..20).map(|i| Outgoing::Profile(ObjectRef::new("b", format!("k{i}"), 1))).collect();
        let d1 = producer.send_all(&msgs).await.unwrap();
        assert_eq!(d1.len(), 20);
        // Same keys → same partitions.
        let d2 = producer.send_all(&msgs).await.unwrap();
        for (a, b) in d1.iter().zip(&d2) {
            assert_eq!((a.key.as_str(), a.partition), (b.key.as_str(), b.partition));
        }
        assert!(d1.iter().map(|d| d.partition).collect::<std::collections::HashSet<_>>().len() > 1);
        producer.send_dead_letter(DeadLetter::new(ObjectRef::new("b", "x y", 1), "ingest", "no layout")).await.unwrap();

        let got = drain(&cluster.bootstrap_servers(), "p", 4, 40);
        assert_eq!(got.len(), 40);
        let dl = drain(&cluster.bootstrap_servers(), "d", 1, 1);
        assert_eq!(dl.len(), 1);
        assert_eq!(dl[0].1, "b/x y");
        assert_eq!(dl[0].3.as_deref(), Some("no layout"));
        let parsed: DeadLetter = serde_json::from_slice(&dl[0].2).unwrap();
        assert_eq!(parsed.reason, "no layout");
        assert_eq!(parsed.object.key, "x y");
    }

    #[tokio::test]
    async fn broker_down_fails_the_batch() {
        let cluster = MockCluster::new(1).unwrap();
        cluster.create_topic("p", 2, 1).unwrap();
        let mut cfg = KafkaConfig::new(cluster.bootstrap_servers());
        cfg.topic = "p".into();
        cfg.timeout_ms = 2_000;
        let producer = Producer::new(&cfg).unwrap();
        let msgs: Vec<Outgoing> = (0..3).map(|i| Outgoing::Profile(ObjectRef::new("b", format!("k{i}"), 1))).collect();
        producer.send_all(&msgs).await.unwrap();
        cluster.broker_down(1).unwrap();
        match producer.send_all(&msgs).await {
            Err(ProduceError::Delivery { failed, total, .. }) => {
                assert_eq!((failed, total), (3, 3))
            }
            other => panic!("{other:?}"),
        }
        assert!(producer.send_all(&[]).await.unwrap().is_empty());
    }
}

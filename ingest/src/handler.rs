//! The trigger: S3 event → messages → Kafka, shared by the Lambda handler, `ingest-event` and
//! backfill.
//!
//! [`plan_event`] is the pure part (records → objects with resolved metadata, dead letters for
//! unmatched keys, skips with reasons). [`Ingestor::handle_event`] adds the effects: a HEAD for
//! objects whose key matched no layout (object metadata), then one [`Producer::send_all`] for the
//! whole event. Any failed delivery fails the invocation, so Lambda retries it and its on-failure
//! destination finally catches it; deliveries that did succeed are repeated by the retry, which
//! the worker tolerates (same `bucket/key`, same partition).
use std::collections::HashMap;

use aws_lambda_events::s3::S3Event;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::operation::head_object::HeadObjectError;
use serde::Serialize;

use crate::layout::{LayoutKind, Resolution, Resolver};
use crate::producer::{Delivered, Outgoing, ProduceError, Producer};
use pprofhouse_message::DeadLetter;
use pprofhouse_message::{objects_from_records, EventRecord, ObjectRef, Skipped};

/// The stage name written in dead letters from here.
pub const STAGE: &str = "ingest";

/// The pure result of an event: messages to send and records skipped.
#[derive(Debug, Default)]
pub struct Plan {
    /// Messages to produce: envelopes and dead letters.
    pub messages: Vec<Outgoing>,
    /// Records skipped, with reasons.
    pub skipped: Vec<Skipped>,
}

/// Records → plan, without any I/O. Unmatched objects become dead letters; records whose key
/// does not URL-decode are dead-lettered with the raw key.
pub fn plan_event(event: &S3Event, resolver: &Resolver, source: &str) -> Plan {
    let records = event.records.iter().cloned().map(EventRecord::from);
    plan_records(records, resolver, source)
}

/// [`plan_event`] over already-converted records.
pub fn plan_records(records: impl IntoIterator<Item = EventRecord>, resolver: &Resolver, source: &str) -> Plan {
    let (objects, mut messages, skipped) = split_records(records, source);
    messages.extend(objects.into_iter().map(|o| resolve_outgoing(o, resolver, None)));
    Plan { messages, skipped }
}

/// Records → objects, dead letters for undecodable keys, and logged skips.
fn split_records(records: impl IntoIterator<Item = EventRecord>, source: &str) -> (Vec<ObjectRef>, Vec<Outgoing>, Vec<Skipped>) {
    let records: Vec<EventRecord> = records.into_iter().collect();
    let by_key: HashMap<String, EventRecord> = records.iter().filter_map(|r| Some((r.key.clone()?, r.clone()))).collect();
    let (objects, skipped) = objects_from_records(records, source);
    let mut dead = Vec::new();
    let mut rest = Vec::new();
    for s in skipped {
        if s.reason.starts_with("undecodable key") {
            // Not lost: the dead-letter topic keeps the raw key and the reason.
            let r = by_key.get(&s.key);
            let size = r.and_then(|r| r.size).unwrap_or(0).max(0) as u64;
            let mut o = ObjectRef::new(r.and_then(|r| r.bucket.clone()).unwrap_or_default(), s.key.clone(), size);
            o.event_time = r.and_then(|r| r.event_time);
            o.source = Some(source.to_string());
            tracing::warn!(key = %s.key, reason = %s.reason, "record dead-lettered");
            dead.push(Outgoing::DeadLetter(DeadLetter::new(o, STAGE, s.reason)));
        } else {
            tracing::info!(key = %s.key, reason = %s.reason, "record skipped");
            rest.push(s);
        }
    }
    (objects, dead, rest)
}

fn resolve_outgoing(mut o: ObjectRef, resolver: &Resolver, metadata: Option<&HashMap<String, String>>) -> Outgoing {
    match resolver.resolve_object(&o, metadata) {
        Resolution::Matched(m) => {
            o.meta = Some(m);
            Outgoing::Profile(o)
        }
        Resolution::Unmatched(reason) => Outgoing::DeadLetter(DeadLetter::new(o, STAGE, reason)),
    }
}

/// What one invocation did.
#[derive(Clone, Debug, Default, Serialize)]
pub struct Report {
    /// Envelopes delivered to the profiles topic.
    pub enqueued: usize,
    /// Dead letters delivered.
    pub dead_lettered: usize,
    /// Records skipped (non-create, zero-size, ...).
    pub skipped: usize,
    /// Where each message landed.
    pub deliveries: Vec<Delivered>,
}

/// The invocation failed; Lambda should retry.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// Producing to Kafka failed.
    #[error(transparent)]
    Produce(#[from] ProduceError),
    /// A HEAD request for object metadata failed.
    #[error("HEAD s3://{bucket}/{key} failed: {message}")]
    Head {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The error.
        message: String,
    },
}

/// Resolves, dead-letters and produces; holds the producer, the layouts and optionally an S3
/// client for HEAD on unmatched keys.
pub struct Ingestor {
    producer: Producer,
    resolver: Resolver,
    s3: Option<aws_sdk_s3::Client>,
    source: String,
}

impl Ingestor {
    /// `source` is written into envelopes (`lambda`, `ingest-event`, `backfill`).
    pub fn new(producer: Producer, resolver: Resolver, source: impl Into<String>) -> Self {
        Ingestor { producer, resolver, s3: None, source: source.into() }
    }

    /// HEAD objects whose key matches no layout, to read their object metadata.
    pub fn with_s3(mut self, client: aws_sdk_s3::Client) -> Self {
        self.s3 = Some(client);
        self
    }

    /// The producer.
    pub fn producer(&self) -> &Producer {
        &self.producer
    }

    /// The key layouts.
    pub fn resolver(&self) -> &Resolver {
        &self.resolver
    }

    /// The source name written into envelopes (`lambda`, `ingest-event`, `backfill`).
    pub fn source(&self) -> &str {
        &self.source
    }

    /// Handle one S3 event: every ObjectCreated record becomes one message (or a dead letter);
    /// fails if any message is not delivered.
    pub async fn handle_event(&self, event: &S3Event) -> Result<Report, HandlerError> {
        let (objects, mut msgs, skipped) = split_records(event.records.iter().cloned().map(EventRecord::from), &self.source);
        msgs.extend(self.resolve_all(objects).await?);
        let mut report = self.send(msgs).await?;
        report.skipped = skipped.len();
        tracing::info!(enqueued = report.enqueued, dead_lettered = report.dead_lettered, skipped = report.skipped, "event handled");
        Ok(report)
    }

    /// Enqueue objects as the trigger would (backfill): resolve each (HEAD when needed), produce
    /// all, fail if any delivery fails.
    pub async fn enqueue_objects(&self, objects: Vec<ObjectRef>) -> Result<Report, HandlerError> {
        let msgs = self.resolve_all(objects).await?;
        self.send(msgs).await
    }

    /// Resolve metadata: key layouts, then (with an S3 client) HEAD for object metadata, then
    /// the defaults; unmatched objects become dead letters.
    pub async fn resolve_all(&self, objects: Vec<ObjectRef>) -> Result<Vec<Outgoing>, HandlerError> {
        let mut out = Vec::with_capacity(objects.len());
        for o in objects {
            let needs_head = self.s3.is_some()
                && o.meta.is_none()
                && self.resolver.resolve_key(&o.key, o.event_time).is_err()
                && !matches!(self.resolver.resolve_object(&o, None), Resolution::Matched(ref m) if m.layout == LayoutKind::ObjectMetadata);
            if let (true, Some(s3)) = (needs_head, &self.s3) {
                match head_metadata(s3, &o.bucket, &o.key).await? {
                    Some(md) => out.push(resolve_outgoing(o, &self.resolver, Some(&md))),
                    None => out.push(Outgoing::DeadLetter(DeadLetter::new(o, STAGE, "object not found on HEAD (deleted since?)"))),
                }
            } else {
                out.push(resolve_outgoing(o, &self.resolver, None));
            }
        }
        Ok(out)
    }

    /// Produce the messages; count envelopes and dead letters.
    pub async fn send(&self, msgs: Vec<Outgoing>) -> Result<Report, HandlerError> {
        let deliveries = self.producer.send_all(&msgs).await?;
        let dlq = self.producer.dlq_topic();
        let dead_lettered = deliveries.iter().filter(|d| d.topic == dlq).count();
        Ok(Report { enqueued: deliveries.len() - dead_lettered, dead_lettered, skipped: 0, deliveries })
    }
}

/// HEAD an object: its user metadata, `None` if it does not exist (any more).
async fn head_metadata(s3: &aws_sdk_s3::Client, bucket: &str, key: &str) -> Result<Option<HashMap<String, String>>, HandlerError> {
    match s3.head_object().bucket(bucket).key(key).send().await {
        Ok(out) => Ok(Some(out.metadata.unwrap_or_default())),
        Err(SdkError::ServiceError(e)) if matches!(e.err(), HeadObjectError::NotFound(_)) => Ok(None),
        Err(e) => Err(HandlerError::Head {
            bucket: bucket.to_string(),
            key: key.to_string(),
            message: aws_sdk_s3::error::DisplayErrorContext(&e).to_string(),
        }),
    }
}

/// Run the handler under the Lambda runtime (reads `AWS_LAMBDA_RUNTIME_API`); returns when the
/// runtime stops.
pub async fn run_lambda(ingestor: Ingestor) -> Result<(), lambda_runtime::Error> {
    let ingestor = &ingestor;
    lambda_runtime::run(lambda_runtime::service_fn(move |ev: lambda_runtime::LambdaEvent<S3Event>| async move {
        ingestor.handle_event(&ev.payload).await.map_err(|e| {
            let msg = error_chain(&e);
            tracing::error!(request_id = %ev.context.request_id, error = %msg, "invocation failed; Lambda will retry");
            lambda_runtime::Error::from(msg)
        })
    }))
    .await
}

/// An error and its sources in one line, `: `-joined, but a source the error before it already
/// ends with (after a `: `) is left out: some errors print their source in their own text
/// (rdkafka's `Message production error: {code}`, the `clickhouse` crate's `network error:
/// {source}`), which a plain join then printed twice or three times.
pub fn error_chain(e: &dyn std::error::Error) -> String {
    let mut out = e.to_string();
    let mut before = out.clone();
    let mut src = e.source();
    while let Some(x) = src {
        let text = x.to_string();
        let repeated = before == text || before.strip_suffix(text.as_str()).is_some_and(|b| b.ends_with(": "));
        if !repeated {
            out.push_str(": ");
            out.push_str(&text);
        }
        before = text;
        src = x.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::layout::Template;

    #[test]
    fn error_chains_print_each_source_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("MessageTimedOut (Local: Message timed out)")]
        struct Code;
        #[derive(Debug, thiserror::Error)]
        #[error("Message production error: {0}")]
        struct Production(#[source] Code);
        #[derive(Debug, thiserror::Error)]
        #[error("1 of 2 messages were not delivered; first: k")]
        struct Delivery(#[source] Production);
        assert_eq!(
            error_chain(&Delivery(Production(Code))),
            "1 of 2 messages were not delivered; first: k: Message production error: MessageTimedOut (Local: Message timed out)"
        );
    }

    fn event(records: &[(&str, &str, i64)]) -> S3Event {
        let recs: Vec<serde_json::Value> = records
            .iter()
            .enumerate()
            .map(|(i, (name, key, size))| {
                serde_json::json!({
                    "eventVersion": "2.1", "eventSource": "aws:s3", "awsRegion": "us-east-1",
                    "eventTime": "2024-02-03T04:05:06.000Z", "eventName": name,
                    "userIdentity": {"principalId": "P"}, "requestParameters": {"sourceIPAddress": "127.0.0.1"},
                    "responseElements": {}, "s3": {"s3SchemaVersion": "1.0", "configurationId": "c",
                    "bucket": {"name": "profiles", "ownerIdentity": {"principalId": "P"}, "arn": "arn:aws:s3:::profiles"},
                    "object": {"key": key, "size": size, "eTag": "etag", "sequencer": format!("{i:016X}")}}
                })
            })
            .collect();
        serde_json::from_value(serde_json::json!({ "Records": recs })).unwrap()
    }

    #[test]
    fn plan_skips_decodes_and_dead_letters() {
        let ev = event(&[
            ("ObjectCreated:Put", "P0.svc1/1/9bsv0s3ipt32jfck6kt0%2Ck1%3Dv1%2Ck2%3Dv2", 10),
            ("ObjectRemoved:Delete", "P0.svc1/1/9bsv0s3ipt32jfck6kt0", 0),
            ("ObjectCreated:Put", "empty", 0),
            ("ObjectCreated:Copy", "team/heap/2024/02/03/my+host+%E6%97%A5.pb.gz", 5),
            ("ObjectCreated:Post", "random+file.bin", 5),
            ("ObjectCreated:Put", "bad%ZZ", 5),
        ]);
        let mut r = Resolver::default();
        r.templates.push(Template::parse("{service}/{type}/{yyyy}/{mm}/{dd}/{name}").unwrap());
        let plan = plan_event(&ev, &r, "test");
        assert_eq!(plan.skipped.len(), 2);
        let kinds: Vec<(bool, String)> = plan.messages.iter().map(|m| (matches!(m, Outgoing::Profile(_)), m.message_key())).collect();
        assert_eq!(
            kinds,
            vec![
                (false, "profiles/bad%ZZ".to_string()),
                (true, "profiles/P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2".to_string()),
                (true, "profiles/team/heap/2024/02/03/my host 日.pb.gz".to_string()),
                (false, "profiles/random file.bin".to_string()),
            ]
        );
        let Outgoing::Profile(o) = &plan.messages[2] else { unreachable!() };
        let m = o.meta.as_ref().unwrap();
        assert_eq!((m.service.as_str(), m.profile_type.as_str()), ("team", "heap"));
        assert_eq!(m.created_at.to_rfc3339(), "2024-02-03T04:05:06+00:00");
        assert_eq!(o.source.as_deref(), Some("test"));
        let Outgoing::DeadLetter(d) = &plan.messages[3] else { unreachable!() };
        assert!(d.reason.contains("no layout matched"), "{}", d.reason);
    }
}

//! Ingest end to end, against a real Kafka-protocol broker (tansu) and a real S3-compatible
//! server (s3s-fs): AWS-shaped S3 events through the handler, raw MinIO-style events on the
//! topic, object metadata via HEAD, backfill of 1,000 objects, a broker that is down, and the
//! `pprofhouse ingest-event` / `pprofhouse backfill` commands.
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::process::Command;
use std::time::Duration;

use chrono::{TimeZone, Utc};
use futures_util::stream::{self, StreamExt};
use pprofhouse_ingest::backfill::{backfill, BackfillOptions};
use pprofhouse_ingest::handler::Ingestor;
use pprofhouse_ingest::layout::{profefe_key, LayoutKind, Resolver, Template};
use pprofhouse_ingest::{KafkaConfig, Producer, S3Event};
use pprofhouse_message::{parse_message, CreatedObject};
use pprofhouse_message::{DeadLetter, HEADER_REASON};
use pprofhouse_tests::kafka::{murmur2_partition, LocalKafka};
use pprofhouse_tests::paths::pprofhouse_bin;
use pprofhouse_tests::s3::LocalS3;

const TOPIC: &str = "pprofhouse.profiles";
const DLQ: &str = "pprofhouse.deadletter";
const PARTITIONS: i32 = 4;
const BUCKET: &str = "profiles";

async fn kafka() -> LocalKafka {
    let k = LocalKafka::start().expect("start tansu");
    k.create_topics(&[(TOPIC, PARTITIONS), (DLQ, 1)]).await.expect("create topics");
    k
}

fn kafka_config(k: &LocalKafka, timeout_ms: u64) -> KafkaConfig {
    let mut c = KafkaConfig::new(k.brokers());
    c.timeout_ms = timeout_ms;
    c
}

/// An AWS-shaped S3 event with one record per (event name, bucket, decoded key, size), built by
/// the project's one S3-event builder (removals carry no size or etag, as S3 writes them).
fn aws_event(records: &[(&str, &str, &str, i64)]) -> serde_json::Value {
    let at = chrono::DateTime::parse_from_rfc3339("2024-03-05T12:30:01.250Z").unwrap().with_timezone(&chrono::Utc);
    let recs: Vec<serde_json::Value> = records
        .iter()
        .enumerate()
        .map(|(i, (name, bucket, key, size))| {
            let mut o = CreatedObject::new(*bucket, *key, (*size).max(0) as u64, at);
            o.etag = Some(format!("d41d8cd98f00b204e9800998ecf8427{i}"));
            o.sequencer = Some(format!("0065F0{i:012X}"));
            let mut r = o.record("us-east-1");
            r["eventName"] = (*name).into();
            r["s3"]["object"]["size"] = (*size).into();
            if name.starts_with("ObjectRemoved") {
                let obj = r["s3"]["object"].as_object_mut().unwrap();
                obj.remove("size");
                obj.remove("eTag");
            }
            r
        })
        .collect();
    serde_json::json!({ "Records": recs })
}

fn parse_event(v: &serde_json::Value) -> S3Event {
    serde_json::from_value(v.clone()).expect("S3Event")
}

fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

#[tokio::test]
async fn aws_event_multi_record_lands_on_the_right_partitions() {
    let k = kafka().await;
    let mut resolver = Resolver::default();
    resolver.templates.push(Template::parse("uploads/{service}/{type}/{yyyy}/{mm}/{dd}/{name}").unwrap());
    let ingestor = Ingestor::new(Producer::new(&kafka_config(&k, 15_000)).unwrap(), resolver, "lambda");

    let at = Utc.with_ymd_and_hms(2024, 3, 5, 12, 0, 0).unwrap();
    let team_key = profefe_key("team/api", 2, at, 7, &labels(&[("zone", "eu west+1"), ("host", "h/1")]));
    let unicode_key = "uploads/checkout/heap/2024/03/05/host 1 日本 (copy).pb.gz";
    let ev = aws_event(&[
        // From profefe's own tests.
        ("ObjectCreated:Put", BUCKET, "P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2", 1200),
        ("ObjectCreated:CompleteMultipartUpload", BUCKET, &team_key, 99_000),
        ("ObjectRemoved:Delete", BUCKET, "P0.svc1/1/9bsv0s3ipt32jfck6kt0", 0),
        ("ObjectCreated:Put", BUCKET, "P0.svc1/1/bpc00mript33iv4net00,k1=v1,k2=v2", 0),
        ("ObjectCreated:Copy", "other-bucket", unicode_key, 512),
        ("ObjectCreated:Put", BUCKET, "misc/random file.bin", 10),
    ]);
    let report = ingestor.handle_event(&parse_event(&ev)).await.expect("handled");
    assert_eq!((report.enqueued, report.dead_lettered, report.skipped), (3, 1, 2), "{report:?}");

    let msgs = k.read_all(TOPIC).unwrap();
    assert_eq!(msgs.len(), 3);
    let mut by_key: HashMap<String, _> = HashMap::new();
    for m in &msgs {
        let key = m.key.clone().unwrap();
        assert_eq!(m.partition, murmur2_partition(key.as_bytes(), PARTITIONS), "partition of {key}");
        let objs = parse_message(&m.payload).unwrap();
        assert_eq!(objs.len(), 1);
        assert_eq!(objs[0].message_key(), key);
        by_key.insert(key, objs.into_iter().next().unwrap());
    }
    // Every delivery report agrees with what is on the topic.
    for d in report.deliveries.iter().filter(|d| d.topic == TOPIC) {
        assert_eq!(d.partition, murmur2_partition(d.key.as_bytes(), PARTITIONS));
    }

    let o = &by_key["profiles/P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2"];
    let m = o.meta.as_ref().unwrap();
    assert_eq!((m.service.as_str(), m.profile_type.as_str(), m.layout), ("svc1", "cpu", LayoutKind::Profefe));
    assert_eq!(m.labels, labels(&[("k1", "v1"), ("k2", "v2")]));
    assert_eq!(m.created_at, Utc.with_ymd_and_hms(2009, 11, 10, 23, 0, 0).unwrap());
    assert_eq!(o.size, 1200);
    assert_eq!(o.etag.as_deref(), Some("d41d8cd98f00b204e9800998ecf84270"));
    assert_eq!(o.sequencer.as_deref(), Some("0065F0000000000000"));
    assert_eq!(o.event_name.as_deref(), Some("ObjectCreated:Put"));
    assert_eq!(o.source.as_deref(), Some("lambda"));
    assert_eq!(o.event_time.unwrap().to_rfc3339(), "2024-03-05T12:30:01.250+00:00");

    let o = &by_key[&format!("profiles/{team_key}")];
    let m = o.meta.as_ref().unwrap();
    assert_eq!((m.service.as_str(), m.profile_type.as_str(), m.created_at), ("team/api", "heap", at));
    assert_eq!(m.labels, labels(&[("host", "h/1"), ("zone", "eu west+1")]));

    let o = &by_key[&format!("other-bucket/{unicode_key}")];
    assert_eq!(o.key, unicode_key);
    let m = o.meta.as_ref().unwrap();
    assert_eq!((m.service.as_str(), m.profile_type.as_str(), m.layout), ("checkout", "heap", LayoutKind::Template));
    assert_eq!(m.created_at.to_rfc3339(), "2024-03-05T12:30:01.250+00:00");

    let dead = k.read_all(DLQ).unwrap();
    assert_eq!(dead.len(), 1);
    assert_eq!(dead[0].key.as_deref(), Some("profiles/misc/random file.bin"));
    let reason = dead[0].header(HEADER_REASON).unwrap();
    assert!(reason.contains("no layout matched"), "{reason}");
    let dl: DeadLetter = serde_json::from_slice(&dead[0].payload).unwrap();
    assert_eq!((dl.stage.as_str(), dl.object.key.as_str()), ("ingest", "misc/random file.bin"));

    // The same event again (a Lambda retry): same keys, same partitions.
    let again = ingestor.handle_event(&parse_event(&ev)).await.unwrap();
    let first: BTreeSet<_> = report.deliveries.iter().map(|d| (d.key.clone(), d.partition)).collect();
    let second: BTreeSet<_> = again.deliveries.iter().map(|d| (d.key.clone(), d.partition)).collect();
    assert_eq!(first, second);
    assert_eq!(k.message_count(TOPIC).unwrap(), 6);
}

#[tokio::test]
async fn raw_minio_event_on_the_topic_is_read_like_an_envelope() {
    let k = kafka().await;
    // What MinIO's Kafka notification target publishes: the raw event, key "bucket/key".
    let raw = serde_json::json!({
        "EventName": "s3:ObjectCreated:Put",
        "Key": "profiles/P0.svc1/4/9bsv0s3ipt32jfck6kt0,k1=v1",
        "Records": [{
            "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventTime": "2024-05-01T10:00:00.000Z",
            "eventName": "s3:ObjectCreated:Put", "userIdentity": {"principalId": "minio"},
            "requestParameters": {"principalId": "minio", "region": "", "sourceIPAddress": "127.0.0.1"},
            "responseElements": {"x-amz-request-id": "17B", "x-minio-origin-endpoint": "http://127.0.0.1:9000"},
            "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
                "bucket": {"name": "profiles", "ownerIdentity": {"principalId": "minio"}, "arn": "arn:aws:s3:::profiles"},
                "object": {"key": "P0.svc1/4/9bsv0s3ipt32jfck6kt0%2Ck1%3Dv1", "size": 321, "eTag": "abc", "contentType": "application/octet-stream",
                    "userMetadata": {"content-type": "application/octet-stream"}, "sequencer": "17B0"}},
            "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64)"}
        }]
    });
    // A Java-compatible partitioner (murmur2), as the trigger uses. (MinIO's own client hashes
    // keys differently, so its raw events may land on another partition than envelopes.)
    let producer: rdkafka::producer::FutureProducer = k.client_config().set("partitioner", "murmur2_random").create().unwrap();
    let payload = serde_json::to_vec(&raw).unwrap();
    producer
        .send(
            rdkafka::producer::FutureRecord::to(TOPIC).key("profiles/P0.svc1/4/9bsv0s3ipt32jfck6kt0,k1=v1").payload(&payload),
            Duration::from_secs(10),
        )
        .await
        .unwrap();
    // And an envelope written by the trigger, for the same object.
    let ingestor = Ingestor::new(Producer::new(&kafka_config(&k, 15_000)).unwrap(), Resolver::default(), "lambda");
    let ev = aws_event(&[("ObjectCreated:Put", "profiles", "P0.svc1/4/9bsv0s3ipt32jfck6kt0,k1=v1", 321)]);
    ingestor.handle_event(&parse_event(&ev)).await.unwrap();

    let msgs = k.read_all(TOPIC).unwrap();
    assert_eq!(msgs.len(), 2);
    assert_eq!(msgs[0].partition, msgs[1].partition, "same object, same partition");
    let resolver = Resolver::default();
    for m in msgs {
        let objs = parse_message(&m.payload).unwrap();
        assert_eq!(objs.len(), 1);
        let o = &objs[0];
        assert_eq!((o.bucket.as_str(), o.key.as_str(), o.size), ("profiles", "P0.svc1/4/9bsv0s3ipt32jfck6kt0,k1=v1", 321));
        match resolver.resolve_object(o, None) {
            pprofhouse_ingest::Resolution::Matched(meta) => {
                assert_eq!((meta.service.as_str(), meta.profile_type.as_str()), ("svc1", "mutex"));
                assert_eq!(meta.labels, labels(&[("k1", "v1")]));
            }
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn object_metadata_is_read_with_head_when_the_key_says_nothing() {
    let k = kafka().await;
    let s3 = LocalS3::start().unwrap();
    s3.create_bucket(BUCKET).unwrap();
    let client = s3.client();
    client
        .put_object()
        .bucket(BUCKET)
        .key("agent uploads/blob-1")
        .body(b"profile bytes".to_vec().into())
        .metadata("service", "svc-md")
        .metadata("type", "goroutine")
        .metadata("labels", "env=prod,region=eu+1")
        .metadata("created_at", "2024-06-01T08:00:00Z")
        .send()
        .await
        .unwrap();
    let ingestor = Ingestor::new(Producer::new(&kafka_config(&k, 15_000)).unwrap(), Resolver::default(), "lambda").with_s3(client);
    let ev = aws_event(&[
        ("ObjectCreated:Put", BUCKET, "agent uploads/blob-1", 13),
        ("ObjectCreated:Put", BUCKET, "agent uploads/deleted-since", 13),
    ]);
    let report = ingestor.handle_event(&parse_event(&ev)).await.unwrap();
    assert_eq!((report.enqueued, report.dead_lettered), (1, 1));
    let msgs = k.read_all(TOPIC).unwrap();
    let o = &parse_message(&msgs[0].payload).unwrap()[0];
    let m = o.meta.as_ref().unwrap();
    assert_eq!((m.service.as_str(), m.profile_type.as_str(), m.layout), ("svc-md", "goroutine", LayoutKind::ObjectMetadata));
    assert_eq!(m.labels, labels(&[("env", "prod"), ("region", "eu 1")]));
    assert_eq!(m.created_at, Utc.with_ymd_and_hms(2024, 6, 1, 8, 0, 0).unwrap());
    let dead = k.read_all(DLQ).unwrap();
    assert!(dead[0].header(HEADER_REASON).unwrap().contains("not found"));
}

#[tokio::test]
async fn broker_down_fails_the_handler_and_a_retry_succeeds() {
    let mut k = kafka().await;
    let ingestor = Ingestor::new(Producer::new(&kafka_config(&k, 3_000)).unwrap(), Resolver::default(), "lambda");
    let ev = aws_event(&[
        ("ObjectCreated:Put", BUCKET, "P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2", 10),
        ("ObjectCreated:Put", BUCKET, "P0.svc2/2/9bsv0s3ipt32jfck6kt0", 10),
    ]);
    ingestor.handle_event(&parse_event(&ev)).await.expect("delivered while the broker is up");
    k.stop();
    let err = ingestor.handle_event(&parse_event(&ev)).await.expect_err("broker is down");
    let msg = err.to_string();
    assert!(msg.contains("not delivered"), "{msg}");

    // Lambda retries the event once the broker is back (in-memory broker: topics again).
    k.restart().unwrap();
    k.create_topics(&[(TOPIC, PARTITIONS), (DLQ, 1)]).await.unwrap();
    let fresh = Ingestor::new(Producer::new(&kafka_config(&k, 15_000)).unwrap(), Resolver::default(), "lambda");
    let report = fresh.handle_event(&parse_event(&ev)).await.expect("retry delivered");
    assert_eq!(report.enqueued, 2);
    assert_eq!(k.message_count(TOPIC).unwrap(), 2);
}

/// Upload `n` profefe-layout objects (services svc0..svc4 unless `service` is given).
async fn upload_profiles(s3: &LocalS3, n: usize, service: Option<&str>, offset: usize) {
    let client = s3.client();
    let base = Utc.with_ymd_and_hms(2024, 1, 1, 0, 0, 0).unwrap();
    stream::iter(0..n)
        .map(|i| {
            let client = client.clone();
            let i = i + offset;
            async move {
                let svc = service.map(str::to_string).unwrap_or_else(|| format!("svc{}", i % 5));
                let key = profefe_key(
                    &svc,
                    1 + (i % 6) as u8,
                    base + chrono::Duration::seconds(i as i64),
                    i as u64,
                    &labels(&[("i", &i.to_string())]),
                );
                client.put_object().bucket(BUCKET).key(&key).body(format!("profile {i}").into_bytes().into()).send().await.unwrap();
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<_>>()
        .await;
}

#[tokio::test]
async fn backfill_of_1000_objects_enqueues_each_once() {
    let k = kafka().await;
    let s3 = LocalS3::start().unwrap();
    s3.create_bucket(BUCKET).unwrap();
    upload_profiles(&s3, 1000, None, 0).await;
    for i in 0..3 {
        s3.client().put_object().bucket(BUCKET).key(format!("P0.svc0/1/empty-{i}")).body(Vec::new().into()).send().await.unwrap();
    }
    let dir = tempfile::tempdir().unwrap();
    let ingestor = Ingestor::new(Producer::new(&kafka_config(&k, 15_000)).unwrap(), Resolver::default(), "backfill");
    let mut opts = BackfillOptions::new(BUCKET);
    opts.checkpoint = Some(dir.path().join("checkpoint.json"));
    opts.page_size = 300; // several pages
    opts.rate = Some(4000.0);

    let r1 = backfill(&s3.client(), &ingestor, &opts).await.unwrap();
    assert_eq!((r1.listed, r1.enqueued, r1.dead_lettered, r1.filtered), (1003, 1000, 0, 3), "{r1:?}");
    assert_eq!(k.message_count(TOPIC).unwrap(), 1000);
    let msgs = k.read_all(TOPIC).unwrap();
    let keys: BTreeSet<String> = msgs.iter().map(|m| m.key.clone().unwrap()).collect();
    assert_eq!(keys.len(), 1000, "each object once");
    for m in &msgs {
        assert_eq!(m.partition, murmur2_partition(m.key.as_ref().unwrap().as_bytes(), PARTITIONS));
        let o = &parse_message(&m.payload).unwrap()[0];
        assert_eq!(o.event_name.as_deref(), Some("Backfill"));
        // (s3s-fs lists no ETag; AWS and MinIO do.)
        assert!(o.event_time.is_some(), "{o:?}");
        assert_eq!(o.meta.as_ref().unwrap().layout, LayoutKind::Profefe);
    }

    // Again: nothing new.
    let r2 = backfill(&s3.client(), &ingestor, &opts).await.unwrap();
    assert_eq!(r2.enqueued, 0, "{r2:?}");
    assert!(r2.resumed_after.is_some());
    assert_eq!(k.message_count(TOPIC).unwrap(), 1000);

    // New objects (later keys) are picked up by the next run, and only they.
    upload_profiles(&s3, 10, Some("zeta"), 5000).await;
    let r3 = backfill(&s3.client(), &ingestor, &opts).await.unwrap();
    assert_eq!(r3.enqueued, 10, "{r3:?}");
    assert_eq!(k.message_count(TOPIC).unwrap(), 1010);

    // --force: everything again.
    opts.force = true;
    let r4 = backfill(&s3.client(), &ingestor, &opts).await.unwrap();
    assert_eq!(r4.enqueued, 1010);
    assert_eq!(k.message_count(TOPIC).unwrap(), 2020);

    // A time window that excludes everything (LastModified is now).
    let mut window = BackfillOptions::new(BUCKET);
    window.until = Some(Utc::now() - chrono::Duration::days(1));
    let r5 = backfill(&s3.client(), &ingestor, &window).await.unwrap();
    assert_eq!((r5.enqueued, r5.filtered), (0, 1013));
}

/// The environment for a `pprofhouse` child: no inherited PPROFHOUSE_*/AWS_* settings.
/// `PPROFHOUSE_TEST_BIN` overrides the binary (e.g. a release or cross build).
fn pprofhouse(args: &[&str], env: &[(String, String)]) -> Command {
    let bin = std::env::var_os("PPROFHOUSE_TEST_BIN").map(std::path::PathBuf::from).unwrap_or_else(pprofhouse_bin);
    let mut cmd = Command::new(bin);
    cmd.args(args);
    for (k, _) in std::env::vars() {
        if k.starts_with("PPROFHOUSE_") || k.starts_with("AWS_") {
            cmd.env_remove(k);
        }
    }
    cmd.envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())));
    cmd.env("RUST_LOG", "info");
    cmd
}

#[tokio::test]
async fn ingest_event_command() {
    let mut k = kafka().await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("event.json");
    let ev = aws_event(&[
        ("ObjectCreated:Put", BUCKET, "P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2", 10),
        ("ObjectCreated:Put", BUCKET, "uploads/api/cpu/2024/03/05/a b.pb.gz", 10),
        ("ObjectCreated:Put", BUCKET, "somewhere/else.bin", 10),
        ("ObjectRemoved:Delete", BUCKET, "gone", 0),
    ]);
    std::fs::write(&file, serde_json::to_vec_pretty(&ev).unwrap()).unwrap();
    let env: Vec<(String, String)> = vec![
        ("PPROFHOUSE_KAFKA_BROKERS".into(), k.brokers()),
        ("PPROFHOUSE_KAFKA_TIMEOUT_MS".into(), "5000".into()),
        ("PPROFHOUSE_INGEST_LAYOUTS".into(), "uploads/{service}/{type}/{yyyy}/{mm}/{dd}/{name}".into()),
        ("PPROFHOUSE_INGEST_DEFAULT_SERVICE".into(), "unsorted".into()),
        ("PPROFHOUSE_INGEST_HEAD_OBJECTS".into(), "false".into()),
    ];
    let out = pprofhouse(&["ingest-event", file.to_str().unwrap()], &env).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "ingest-event failed: {stderr}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("stdout not JSON ({e}): {}", String::from_utf8_lossy(&out.stdout)));
    assert_eq!((report["enqueued"].as_u64(), report["dead_lettered"].as_u64(), report["skipped"].as_u64()), (Some(3), Some(0), Some(1)));
    let services: BTreeSet<String> =
        k.read_all(TOPIC).unwrap().iter().map(|m| parse_message(&m.payload).unwrap()[0].meta.clone().unwrap().service).collect();
    assert_eq!(services, ["api", "svc1", "unsorted"].iter().map(|s| s.to_string()).collect());

    // Broker down: non-zero exit with a clear message.
    k.stop();
    let out = pprofhouse(&["ingest-event", file.to_str().unwrap()], &env).output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "should fail with the broker down");
    assert!(stderr.contains("not delivered"), "stderr: {stderr}");

    // Missing settings: a clear message too.
    let out = pprofhouse(&["ingest-event", file.to_str().unwrap()], &[]).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--kafka-brokers"));
}

#[tokio::test]
async fn backfill_command_runs_once() {
    let k = kafka().await;
    let s3 = LocalS3::start().unwrap();
    s3.create_bucket(BUCKET).unwrap();
    upload_profiles(&s3, 25, None, 0).await;
    let dir = tempfile::tempdir().unwrap();
    let checkpoint = dir.path().join("cp.json");
    let mut env = s3.env("unused-default-bucket");
    env.push(("PPROFHOUSE_KAFKA_BROKERS".into(), k.brokers()));
    let args = [
        "backfill",
        "--bucket",
        BUCKET,
        "--prefix",
        "P0.",
        "--since",
        "2000-01-01",
        "--rate",
        "100",
        "--checkpoint",
        checkpoint.to_str().unwrap(),
    ];
    let out = pprofhouse(&args, &env).output().unwrap();
    assert!(out.status.success(), "backfill failed: {}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["enqueued"].as_u64(), Some(25));
    let out = pprofhouse(&args, &env).output().unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let r: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(r["enqueued"].as_u64(), Some(0));
    assert_eq!(k.message_count(TOPIC).unwrap(), 25);
}

/// A stand-in for the Lambda Runtime API (the HTTP interface a custom runtime polls): hands out
/// queued events on `GET /2018-06-01/runtime/invocation/next` and reports what the function
/// posted back to `.../{id}/response` or `.../{id}/error`.
struct RuntimeApi {
    addr: std::net::SocketAddr,
    events: tokio::sync::mpsc::UnboundedSender<(String, serde_json::Value)>,
    results: tokio::sync::mpsc::UnboundedReceiver<(String, String, String)>,
}

impl RuntimeApi {
    async fn start() -> Self {
        use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (events, events_rx) = tokio::sync::mpsc::unbounded_channel::<(String, serde_json::Value)>();
        let (results_tx, results) = tokio::sync::mpsc::unbounded_channel();
        let events_rx = std::sync::Arc::new(tokio::sync::Mutex::new(events_rx));
        tokio::spawn(async move {
            while let Ok((sock, _)) = listener.accept().await {
                let events_rx = events_rx.clone();
                let results_tx = results_tx.clone();
                tokio::spawn(async move {
                    let (rd, mut wr) = sock.into_split();
                    let mut rd = BufReader::new(rd);
                    loop {
                        let mut line = String::new();
                        if rd.read_line(&mut line).await.unwrap_or(0) == 0 {
                            return;
                        }
                        let mut parts = line.split_whitespace();
                        let (method, path) = (parts.next().unwrap_or("").to_string(), parts.next().unwrap_or("").to_string());
                        let mut len = 0usize;
                        loop {
                            let mut h = String::new();
                            if rd.read_line(&mut h).await.unwrap_or(0) == 0 {
                                return;
                            }
                            let h = h.trim_end();
                            if h.is_empty() {
                                break;
                            }
                            if let Some((k, v)) = h.split_once(':') {
                                if k.eq_ignore_ascii_case("content-length") {
                                    len = v.trim().parse().unwrap_or(0);
                                }
                            }
                        }
                        let mut body = vec![0; len];
                        if rd.read_exact(&mut body).await.is_err() {
                            return;
                        }
                        let response = if method == "GET" && path.ends_with("/runtime/invocation/next") {
                            let Some((id, ev)) = events_rx.lock().await.recv().await else {
                                return;
                            };
                            let payload = serde_json::to_vec(&ev).unwrap();
                            let deadline = (Utc::now() + chrono::Duration::seconds(60)).timestamp_millis();
                            let mut r = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nLambda-Runtime-Aws-Request-Id: {id}\r\n\
                                 Lambda-Runtime-Deadline-Ms: {deadline}\r\nLambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:pprofhouse\r\n\
                                 Lambda-Runtime-Trace-Id: Root=1-5759e988-bd862e3fe1be46a994272793\r\nContent-Length: {}\r\n\r\n",
                                payload.len()
                            )
                            .into_bytes();
                            r.extend(payload);
                            r
                        } else {
                            // .../invocation/{id}/response, .../invocation/{id}/error, .../init/error
                            let segs: Vec<&str> = path.trim_end_matches('/').rsplit('/').take(2).collect();
                            let (kind, id) = (segs.first().copied().unwrap_or(""), segs.get(1).copied().unwrap_or(""));
                            let _ = results_tx.send((id.to_string(), kind.to_string(), String::from_utf8_lossy(&body).into_owned()));
                            b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}"
                                .to_vec()
                        };
                        if wr.write_all(&response).await.is_err() {
                            return;
                        }
                    }
                });
            }
        });
        RuntimeApi { addr, events, results }
    }

    fn invoke(&self, id: &str, event: serde_json::Value) {
        self.events.send((id.to_string(), event)).unwrap();
    }

    async fn result(&mut self) -> (String, String, String) {
        tokio::time::timeout(Duration::from_secs(60), self.results.recv()).await.expect("no answer from the function").unwrap()
    }
}

/// Kills the child on drop.
struct KillOnDrop(std::process::Child);
impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lambda_command_answers_the_runtime_api() {
    let mut k = kafka().await;
    let mut api = RuntimeApi::start().await;
    let env: Vec<(String, String)> = [
        ("AWS_LAMBDA_RUNTIME_API", api.addr.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", "pprofhouse-ingest".into()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".into()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".into()),
        ("AWS_REGION", "us-east-1".into()),
        ("PPROFHOUSE_KAFKA_BROKERS", k.brokers()),
        ("PPROFHOUSE_KAFKA_TIMEOUT_MS", "3000".into()),
        ("PPROFHOUSE_INGEST_HEAD_OBJECTS", "false".into()),
    ]
    .into_iter()
    .map(|(a, b)| (a.to_string(), b))
    .collect();
    let mut cmd = pprofhouse(&["lambda"], &env);
    cmd.stdout(std::process::Stdio::null()).stderr(std::process::Stdio::inherit());
    pprofhouse_tests::kafka::die_with_parent(&mut cmd);
    let _child = KillOnDrop(cmd.spawn().unwrap());

    let ev = aws_event(&[
        ("ObjectCreated:Put", BUCKET, "P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1,k2=v2", 10),
        ("ObjectCreated:Put", BUCKET, "P0.svc2/5/9bsv0s3ipt32jfck6kt0", 10),
        ("ObjectRemoved:Delete", BUCKET, "P0.svc2/5/9bsv0s3ipt32jfck6kt0", 0),
    ]);
    api.invoke("req-1", ev.clone());
    let (id, kind, body) = api.result().await;
    assert_eq!((id.as_str(), kind.as_str()), ("req-1", "response"), "{body}");
    let report: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!((report["enqueued"].as_u64(), report["skipped"].as_u64()), (Some(2), Some(1)));
    assert_eq!(k.message_count(TOPIC).unwrap(), 2);

    // Broker down: the invocation reports an error (Lambda then retries / routes it on failure).
    k.stop();
    api.invoke("req-2", ev);
    let (id, kind, body) = api.result().await;
    assert_eq!((id.as_str(), kind.as_str()), ("req-2", "error"), "{body}");
    assert!(body.contains("not delivered"), "{body}");
}

//! The whole pipeline on real components, for the worker's end-to-end and fault tests:
//! [`LocalClickHouse`] (schema migrated with `pprofhouse migrate`), [`LocalKafka`] (profiles
//! and dead-letter topics created) and [`LocalS3`] (bucket [`BUCKET`]), each on free loopback
//! ports in temporary directories, plus helpers to upload objects, deliver S3 events through
//! `pprofhouse ingest-event` (or raw MinIO-style events straight onto the topic), run
//! `pprofhouse worker`, and read back what it did (rows in ClickHouse, dead letters, committed
//! offsets, Prometheus metrics).
//!
//! **tansu quirks the harness works around.** tansu 0.6 (memory storage) answers a fetch from an
//! offset *inside* a multi-record batch with nothing, and reports one past the last batch's
//! base offset as the high watermark. A consumer resuming from a committed offset in the middle of a
//! batch would stall forever. So everything the harness produces onto the profiles topic goes
//! one record per batch (`batch.num.messages=1`): every offset is a batch boundary, as on a
//! real broker's fetch path. Workers get a 10 s session timeout (and 60 s poll interval), so
//! the group gets over a killed member quickly. And tansu's group coordinator leaves a new
//! member's JoinGroup unanswered (for minutes, seen > 240 s) when it arrives a few seconds after
//! another member died without leaving, while that member's session has not expired yet; a
//! worker restarted after a `kill -9` must start after [`WORKER_SESSION_TIMEOUT`] (see
//! [`Pipeline::wait_out_dead_member`]). Real Kafka expires the dead member and moves on.
//!
//! Every `pprofhouse` child gets exactly [`Pipeline::env`] (inherited `PPROFHOUSE_*`/`AWS_*`
//! variables removed), dies with the test process, and every wait is bounded. Workers started
//! with [`Pipeline::spawn_worker`] are killed when their [`Worker`] is dropped; declare it after
//! the pipeline so it goes first.
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};
use pprofhouse_message::{object_created_event, CreatedObject};
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use crate::clickhouse::LocalClickHouse;
use crate::goservice::http_get;
use crate::kafka::{die_with_parent, LocalKafka, Record};
use crate::paths::pprofhouse_bin;
use crate::pprof::{pprofhouse_top, Top};
use crate::s3::LocalS3;

pub const BUCKET: &str = "profiles";
pub const TOPIC: &str = "pprofhouse.profiles";
pub const DLQ: &str = "pprofhouse.deadletter";
pub const GROUP: &str = "pprofhouse-worker";
pub const PARTITIONS: i32 = 4;
pub const DATABASE: &str = "pprofhouse";
/// librdkafka settings for the workers' consumers (see the module docs).
pub const WORKER_KAFKA_PROPERTIES: &str = "session.timeout.ms=10000,max.poll.interval.ms=60000";
/// The workers' session timeout (in [`WORKER_KAFKA_PROPERTIES`]).
pub const WORKER_SESSION_TIMEOUT: Duration = Duration::from_secs(10);
/// librdkafka settings for producers onto the profiles topic (see the module docs).
pub const PRODUCER_KAFKA_PROPERTIES: &str = "batch.num.messages=1";
/// How long `run_worker_until_idle` may take before the worker is killed and the test fails.
pub const WORKER_TIMEOUT: Duration = Duration::from_secs(240);

/// The three components, migrated and with topics and bucket; see the module docs.
pub struct Pipeline {
    // Field order is drop order: the runtime last (the components do not need it to stop).
    pub ch: LocalClickHouse,
    pub kafka: LocalKafka,
    pub s3: LocalS3,
    dir: tempfile::TempDir,
    extra_env: Mutex<Vec<(String, String)>>,
    /// Uploaded objects: key → (size, etag).
    uploaded: Mutex<HashMap<String, (u64, Option<String>)>>,
    seq: AtomicUsize,
    rt: tokio::runtime::Runtime,
}

impl Pipeline {
    /// Starts ClickHouse, Kafka (topics [`TOPIC`] with [`PARTITIONS`] partitions and [`DLQ`]) and
    /// S3 (bucket [`BUCKET`]), and runs `pprofhouse migrate`.
    pub fn start() -> Result<Pipeline> {
        Self::start_with_env(&[])
    }

    /// Like [`start`](Self::start), with settings for every `pprofhouse` process (the
    /// migration included, so retention settings apply to the schema).
    pub fn start_with_env(env: &[(&str, &str)]) -> Result<Pipeline> {
        let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
        let ch = LocalClickHouse::start().context("start the local ClickHouse (infra/local/install clickhouse)")?;
        let kafka = LocalKafka::start().context("start tansu (infra/local/install kafka)")?;
        let s3 = LocalS3::start().context("start s3s-fs (infra/local/install s3)")?;
        s3.create_bucket(BUCKET)?;
        let mut dir = tempfile::Builder::new().prefix("pprofhouse-pipeline-").tempdir()?;
        // PPROFHOUSE_TEST_KEEP=1 keeps the scratch directory (worker logs, events) for a post-mortem.
        if std::env::var_os("PPROFHOUSE_TEST_KEEP").is_some() {
            dir.disable_cleanup(true);
            eprintln!("keeping {}", dir.path().display());
        }
        let p = Pipeline {
            ch,
            kafka,
            s3,
            dir,
            extra_env: Mutex::new(Vec::new()),
            uploaded: Mutex::new(HashMap::new()),
            seq: AtomicUsize::new(0),
            rt,
        };
        for (k, v) in env {
            p.set_env(k, v);
        }
        p.create_topics()?;
        let out = p.run(&["migrate"], Duration::from_secs(120))?;
        if !out.status.success() {
            bail!("pprofhouse migrate failed: {}\n{}", String::from_utf8_lossy(&out.stderr), p.ch.log_tail(20));
        }
        Ok(p)
    }

    /// Creates the profiles and dead-letter topics (again after [`LocalKafka::restart`]).
    pub fn create_topics(&self) -> Result<()> {
        self.rt.block_on(self.kafka.create_topics(&[(TOPIC, PARTITIONS), (DLQ, 1)]))
    }

    /// Runs a future on the pipeline's runtime.
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// A scratch directory removed with the pipeline.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Adds (or replaces) a setting for every `pprofhouse` process started from now on.
    pub fn set_env(&self, key: &str, value: &str) {
        let mut e = self.extra_env.lock().unwrap();
        e.retain(|(k, _)| k != key);
        e.push((key.to_string(), value.to_string()));
    }

    /// ClickHouse settings only (for `pprofhouse top`).
    pub fn clickhouse_env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("PPROFHOUSE_CLICKHOUSE_URL", self.ch.url()),
            ("PPROFHOUSE_CLICKHOUSE_DATABASE", DATABASE.into()),
            ("PPROFHOUSE_CLICKHOUSE_COMPRESSION", "none".into()),
            ("PPROFHOUSE_CLICKHOUSE_USER", "default".into()),
        ]
    }

    /// Every setting a `pprofhouse` process needs, with the test defaults
    /// (`PPROFHOUSE_BATCH_LINGER=200ms`) and then [`set_env`](Self::set_env) overrides.
    pub fn env(&self) -> Vec<(String, String)> {
        let mut env: Vec<(String, String)> = self.clickhouse_env().into_iter().map(|(k, v)| (k.to_string(), v)).collect();
        env.extend(
            [
                ("PPROFHOUSE_KAFKA_BROKERS", self.kafka.brokers()),
                ("PPROFHOUSE_KAFKA_TOPIC", TOPIC.to_string()),
                ("PPROFHOUSE_KAFKA_DLQ_TOPIC", DLQ.to_string()),
                ("PPROFHOUSE_KAFKA_GROUP", GROUP.to_string()),
                ("PPROFHOUSE_KAFKA_TIMEOUT_MS", "10000".to_string()),
                ("PPROFHOUSE_KAFKA_CONSUMER_PROPERTIES", WORKER_KAFKA_PROPERTIES.to_string()),
                ("PPROFHOUSE_BATCH_LINGER", "200ms".to_string()),
                ("PPROFHOUSE_LOG", "info".to_string()),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_string(), v)),
        );
        env.extend(self.s3.env(BUCKET));
        for (k, v) in self.extra_env.lock().unwrap().iter() {
            env.retain(|(ek, _)| ek != k);
            env.push((k.clone(), v.clone()));
        }
        env
    }

    /// `pprofhouse ARGS` with [`env`](Self::env) and nothing inherited, dying with this process.
    pub fn command(&self, args: &[&str]) -> Command {
        let bin = std::env::var_os("PPROFHOUSE_TEST_BIN").map(PathBuf::from).unwrap_or_else(pprofhouse_bin);
        let mut cmd = Command::new(bin);
        cmd.args(args);
        for (k, _) in std::env::vars() {
            if k.starts_with("PPROFHOUSE_") || k.starts_with("AWS_") {
                cmd.env_remove(k);
            }
        }
        cmd.envs(self.env());
        cmd.stdin(Stdio::null());
        die_with_parent(&mut cmd);
        cmd
    }

    /// Runs `pprofhouse ARGS` to completion (killed after `timeout`: an error).
    pub fn run(&self, args: &[&str], timeout: Duration) -> Result<Output> {
        self.run_env(args, &[], timeout)
    }

    /// [`run`](Self::run) with extra environment variables.
    pub fn run_env(&self, args: &[&str], env: &[(&str, &str)], timeout: Duration) -> Result<Output> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let out_path = self.dir().join(format!("run-{n}.stdout"));
        let err_path = self.dir().join(format!("run-{n}.stderr"));
        let mut child = self
            .command(args)
            .envs(env.iter().copied())
            .stdout(std::fs::File::create(&out_path)?)
            .stderr(std::fs::File::create(&err_path)?)
            .spawn()
            .context("spawning pprofhouse")?;
        let status = wait_timeout(&mut child, timeout)?;
        let stdout = std::fs::read(&out_path).unwrap_or_default();
        let stderr = std::fs::read(&err_path).unwrap_or_default();
        match status {
            // librdkafka warns of a property given to the wrong kind of client (a producer's to
            // a consumer, …) and ignores it: a setting that silently does nothing.
            Some(_) if String::from_utf8_lossy(&stderr).contains("CONFWARN") => {
                bail!("pprofhouse {args:?}: librdkafka ignored a setting; stderr:\n{}", tail_text(&stderr, 20))
            }
            Some(status) => Ok(Output { status, stdout, stderr }),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("pprofhouse {args:?} still running after {timeout:?}, killed; stderr:\n{}", tail_text(&stderr, 60))
            }
        }
    }

    // -----------------------------------------------------------------------------------------
    // S3

    /// Puts an object (with user metadata `x-amz-meta-NAME`).
    pub fn upload(&self, key: &str, bytes: &[u8], metadata: &[(&str, &str)]) -> Result<()> {
        let mut req = self.s3.client().put_object().bucket(BUCKET).key(key).body(bytes.to_vec().into());
        for (k, v) in metadata {
            req = req.metadata(*k, *v);
        }
        let out = self.rt.block_on(req.send()).map_err(|e| anyhow!("PUT {key}: {}", aws_sdk_s3::error::DisplayErrorContext(&e)))?;
        let etag = out.e_tag().map(|e| e.trim_matches('"').to_string());
        self.uploaded.lock().unwrap().insert(key.to_string(), (bytes.len() as u64, etag));
        Ok(())
    }

    /// Puts a local file.
    pub fn upload_file(&self, key: &str, path: &Path) -> Result<()> {
        let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
        self.upload(key, &bytes, &[])
    }

    /// Records an object someone else put (e.g. `pprofhouse serve`'s POST), so its events
    /// carry its size and etag like S3's own.
    pub fn note_upload(&self, key: &str, size: u64, etag: Option<String>) {
        self.uploaded.lock().unwrap().insert(key.to_string(), (size, etag));
    }

    // -----------------------------------------------------------------------------------------
    // Events

    /// One AWS-shaped S3 event for `keys` (sizes as uploaded) through `pprofhouse ingest-event`;
    /// returns its JSON report.
    pub fn deliver_events(&self, keys: &[&str]) -> Result<serde_json::Value> {
        let uploaded = self.uploaded.lock().unwrap().clone();
        let records: Vec<(&str, u64)> = keys
            .iter()
            .map(|k| uploaded.get(*k).map(|(s, _)| (*k, *s)).ok_or_else(|| anyhow!("{k} was not uploaded: use deliver_records")))
            .collect::<Result<_>>()?;
        self.deliver_records(&records)
    }

    /// Like [`deliver_events`](Self::deliver_events) with the size each record claims (events
    /// with size 0 are skipped by the trigger; a stale size is what S3 sends when an object is
    /// overwritten or deleted after the event).
    pub fn deliver_records(&self, records: &[(&str, u64)]) -> Result<serde_json::Value> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let file = self.dir().join(format!("event-{n}.json"));
        // The etag S3 reported for what was uploaded (none for keys never uploaded).
        let uploaded = self.uploaded.lock().unwrap().clone();
        let objects: Vec<CreatedObject> = records
            .iter()
            .enumerate()
            .map(|(i, (key, size))| {
                let mut o = CreatedObject::new(BUCKET, *key, *size, event_time());
                o.etag = uploaded.get(*key).and_then(|(_, e)| e.clone());
                o.sequencer = Some(format!("0065F0{i:012X}"));
                o
            })
            .collect();
        std::fs::write(&file, serde_json::to_vec_pretty(&object_created_event(&objects, "us-east-1"))?)?;
        let out = self.run_env(
            &["ingest-event", file.to_str().unwrap()],
            &[("PPROFHOUSE_KAFKA_PRODUCER_PROPERTIES", PRODUCER_KAFKA_PROPERTIES)],
            Duration::from_secs(60),
        )?;
        if !out.status.success() {
            bail!("ingest-event failed: {}", String::from_utf8_lossy(&out.stderr));
        }
        serde_json::from_slice(&out.stdout).with_context(|| format!("ingest-event stdout: {}", String::from_utf8_lossy(&out.stdout)))
    }

    /// A raw MinIO-style `Records[]` event for one object, produced straight onto the profiles
    /// topic (key `bucket/key`, murmur2 partitioner: the envelope's partition).
    pub fn deliver_raw_event(&self, key: &str, size: u64) -> Result<()> {
        let encoded = encode_event_key(key);
        let etag = self.uploaded.lock().unwrap().get(key).and_then(|(_, e)| e.clone()).unwrap_or_default();
        let raw = serde_json::json!({
            "EventName": "s3:ObjectCreated:Put",
            "Key": format!("{BUCKET}/{encoded}"),
            "Records": [{
                "eventVersion": "2.0", "eventSource": "minio:s3", "awsRegion": "", "eventTime": "2024-05-01T10:00:00.000Z",
                "eventName": "s3:ObjectCreated:Put", "userIdentity": {"principalId": "minio"},
                "requestParameters": {"principalId": "minio", "region": "", "sourceIPAddress": "127.0.0.1"},
                "responseElements": {"x-amz-request-id": "17B", "x-minio-origin-endpoint": "http://127.0.0.1:9000"},
                "s3": {"s3SchemaVersion": "1.0", "configurationId": "Config",
                    "bucket": {"name": BUCKET, "ownerIdentity": {"principalId": "minio"}, "arn": format!("arn:aws:s3:::{BUCKET}")},
                    "object": {"key": encoded, "size": size, "eTag": etag, "contentType": "application/octet-stream",
                        "userMetadata": {"content-type": "application/octet-stream"}, "sequencer": "17B0"}},
                "source": {"host": "127.0.0.1", "port": "", "userAgent": "MinIO (linux; amd64)"}
            }]
        });
        let producer: rdkafka::producer::FutureProducer = self
            .kafka
            .client_config()
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", "10000")
            .set("batch.num.messages", "1")
            .create()?;
        let payload = serde_json::to_vec(&raw)?;
        let message_key = format!("{BUCKET}/{key}");
        self.rt
            .block_on(
                producer.send(rdkafka::producer::FutureRecord::to(TOPIC).key(&message_key).payload(&payload), Duration::from_secs(10)),
            )
            .map_err(|(e, _)| anyhow!("producing the raw event: {e}"))?;
        Ok(())
    }

    /// Every message on the profiles topic.
    pub fn messages(&self) -> Result<Vec<Record>> {
        self.read_topic(TOPIC)
    }

    /// Every message on the dead-letter topic, with headers.
    pub fn dead_letter_records(&self) -> Result<Vec<Record>> {
        self.read_topic(DLQ)
    }

    /// Every message currently in `topic` ([`LocalKafka::read_all`]), read under a group of its
    /// own each time: on tansu 0.6, a consumer of another shared group reading while a worker's
    /// group has a dead member left the next worker's JoinGroup unanswered for minutes.
    pub fn read_topic(&self, topic: &str) -> Result<Vec<Record>> {
        let group = format!("pprofhouse-tests-reader-{}-{}", std::process::id(), self.seq.fetch_add(1, Ordering::Relaxed));
        self.kafka.read_all_as(topic, &group)
    }

    /// Every dead letter, parsed (a payload that is not JSON is an error).
    pub fn dead_letters(&self) -> Result<Vec<serde_json::Value>> {
        self.dead_letter_records()?
            .iter()
            .map(|r| {
                serde_json::from_slice(&r.payload)
                    .with_context(|| format!("dead letter is not JSON: {}", String::from_utf8_lossy(&r.payload)))
            })
            .collect()
    }

    /// The offsets the worker's group committed, per partition of [`TOPIC`] (absent: none),
    /// read with a separate, unsubscribed consumer.
    pub fn committed_offsets(&self) -> Result<BTreeMap<i32, i64>> {
        let c: BaseConsumer = self.kafka.client_config().set("group.id", GROUP).set("enable.auto.commit", "false").create()?;
        let mut tpl = TopicPartitionList::new();
        for p in 0..PARTITIONS {
            tpl.add_partition(TOPIC, p);
        }
        let got = c.committed_offsets(tpl, Duration::from_secs(10))?;
        let mut out = BTreeMap::new();
        for e in got.elements() {
            if let Offset::Offset(o) = e.offset() {
                out.insert(e.partition(), o);
            }
        }
        Ok(out)
    }

    // -----------------------------------------------------------------------------------------
    // The worker

    /// `pprofhouse worker --until-idle 5s EXTRA...` to completion (bounded by
    /// [`WORKER_TIMEOUT`]).
    pub fn run_worker_until_idle(&self, extra_args: &[&str]) -> Result<Output> {
        let mut args = vec!["worker", "--until-idle", "5s"];
        args.extend(extra_args);
        self.run(&args, WORKER_TIMEOUT)
    }

    /// `pprofhouse worker EXTRA...` in the background (stdout/stderr to files).
    pub fn spawn_worker(&self, extra_args: &[&str]) -> Result<Worker> {
        let n = self.seq.fetch_add(1, Ordering::Relaxed);
        let stdout = self.dir().join(format!("worker-{n}.stdout"));
        let stderr = self.dir().join(format!("worker-{n}.stderr"));
        let mut args = vec!["worker"];
        args.extend(extra_args);
        let child = self
            .command(&args)
            .stdout(std::fs::File::create(&stdout)?)
            .stderr(std::fs::File::create(&stderr)?)
            .spawn()
            .context("spawning pprofhouse worker")?;
        Ok(Worker { child, stdout, stderr, status: None })
    }

    /// Sleeps until a worker killed at `killed_at` has surely left the group (its session
    /// expired; see the module docs).
    pub fn wait_out_dead_member(&self, killed_at: Instant) {
        let until = killed_at + WORKER_SESSION_TIMEOUT + Duration::from_secs(2);
        std::thread::sleep(until.saturating_duration_since(Instant::now()));
    }

    // -----------------------------------------------------------------------------------------
    // ClickHouse

    /// `pprofhouse top --format tsv -n all ARGS` against this ClickHouse.
    pub fn top(&self, args: &[&str]) -> Top {
        pprofhouse_top(args, &self.clickhouse_env())
    }

    /// A client on the pipeline's database.
    pub fn client(&self) -> ::clickhouse::Client {
        self.ch.client().with_database(DATABASE)
    }

    /// `SELECT count() FROM profiles FINAL`.
    pub fn profile_count(&self) -> Result<u64> {
        Ok(self.rt.block_on(self.client().query("SELECT count() FROM profiles FINAL").fetch_one::<u64>())?)
    }

    /// The fault that leaves a write between its data and its markers: with `on`, `profiles`
    /// (the processed markers) refuses every insert with "too many parts", a transient error,
    /// while the other tables take theirs (a part of a service `other` there, merges stopped, at
    /// most one part allowed); with `!on`, it takes inserts again and that part is gone.
    pub fn refuse_markers(&self, on: bool) -> Result<()> {
        let sql = |q: &str| self.rt.block_on(self.client().with_option("mutations_sync", "2").query(q).execute());
        if on {
            sql("INSERT INTO profiles (profile_id, ts, service, profile_type) VALUES (generateUUIDv4(), now64(3), 'other', 'cpu')")?;
            sql("SYSTEM STOP MERGES profiles")?;
            sql("ALTER TABLE profiles MODIFY SETTING parts_to_throw_insert = 1")?;
        } else {
            sql("ALTER TABLE profiles MODIFY SETTING parts_to_throw_insert = 3000")?;
            sql("SYSTEM START MERGES profiles")?;
            sql("ALTER TABLE profiles DELETE WHERE service = 'other'")?;
        }
        Ok(())
    }

    /// A `SELECT count() FROM <table>`.
    pub fn count(&self, table: &str) -> Result<u64> {
        Ok(self.rt.block_on(self.client().query(&format!("SELECT count() FROM {table}")).fetch_one::<u64>())?)
    }

    /// The source keys of the stored profiles, sorted (one per stored profile).
    pub fn stored_keys(&self) -> Result<Vec<String>> {
        Ok(self.rt.block_on(self.client().query("SELECT source_key FROM profiles FINAL ORDER BY source_key").fetch_all::<String>())?)
    }
}

/// The event time of the test events (a fixed past time: event times never matter to ids).
fn event_time() -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::parse_from_rfc3339("2024-03-05T12:30:01.250Z").unwrap().with_timezone(&chrono::Utc)
}

/// A key as S3 event notifications write it (form encoding, `/` kept).
pub fn encode_event_key(key: &str) -> String {
    key.split('/').map(pprofhouse_message::query_escape).collect::<Vec<_>>().join("/")
}

/// A background `pprofhouse worker`; killed (SIGKILL) on drop if still running.
pub struct Worker {
    child: Child,
    stdout: PathBuf,
    stderr: PathBuf,
    status: Option<ExitStatus>,
}

impl Worker {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn signal(&mut self, sig: libc::c_int) {
        if self.status.is_none() && matches!(self.child.try_wait(), Ok(None)) {
            // SAFETY: kill(2) on our own child, not yet reaped.
            unsafe {
                libc::kill(self.child.id() as libc::pid_t, sig);
            }
        }
    }

    /// SIGTERM (a clean shutdown request).
    pub fn sigterm(&mut self) {
        self.signal(libc::SIGTERM);
    }

    /// SIGINT.
    pub fn sigint(&mut self) {
        self.signal(libc::SIGINT);
    }

    /// SIGKILL, and reap it.
    pub fn kill9(&mut self) -> Result<ExitStatus> {
        self.signal(libc::SIGKILL);
        self.wait(Duration::from_secs(10))?.ok_or_else(|| anyhow!("worker did not die on SIGKILL"))
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        self.status.is_none() && matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for it to exit; `None` if it is still running.
    pub fn wait(&mut self, timeout: Duration) -> Result<Option<ExitStatus>> {
        if self.status.is_none() {
            self.status = wait_timeout(&mut self.child, timeout)?;
        }
        Ok(self.status)
    }

    /// What it wrote to stderr so far.
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The last `n` lines of stderr (for assertion messages).
    pub fn stderr_tail(&self, n: usize) -> String {
        tail_text(self.stderr().as_bytes(), n)
    }

    /// What it wrote to stdout so far.
    pub fn stdout(&self) -> String {
        std::fs::read_to_string(&self.stdout).unwrap_or_default()
    }

    /// The metrics address from the stderr line `pprofhouse worker: metrics on http://ADDR`
    /// (waits up to `timeout` for it).
    pub fn metrics_addr(&mut self, timeout: Duration) -> Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.stderr();
            if let Some(line) = text.lines().find(|l| l.contains("pprofhouse worker: metrics on http://")) {
                let url = line.split("metrics on http://").nth(1).unwrap_or("").trim();
                return Ok(url.trim_end_matches('/').split('/').next().unwrap_or("").to_string());
            }
            if !self.is_running() {
                bail!("worker exited before announcing its metrics address; stderr:\n{}", tail_text(text.as_bytes(), 40));
            }
            if Instant::now() > deadline {
                bail!("no `metrics on` line on the worker's stderr after {timeout:?}:\n{}", tail_text(text.as_bytes(), 40));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /metrics`, parsed.
    pub fn metrics(&mut self) -> Result<Metrics> {
        let addr = self.metrics_addr(Duration::from_secs(30))?;
        let (status, body) = http_get(&addr, "/metrics", Duration::from_secs(10))?;
        if status != 200 {
            bail!("GET /metrics: HTTP {status}");
        }
        Ok(Metrics::parse(&String::from_utf8_lossy(&body)))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if self.status.is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Prometheus text exposition, parsed into samples.
#[derive(Clone, Debug, Default)]
pub struct Metrics {
    pub text: String,
    pub samples: Vec<(String, BTreeMap<String, String>, f64)>,
}

impl Metrics {
    pub fn parse(text: &str) -> Metrics {
        let mut samples = Vec::new();
        for line in text.lines().map(str::trim).filter(|l| !l.is_empty() && !l.starts_with('#')) {
            let (series, value) = match line.rsplit_once(' ') {
                Some((s, v)) => (s.trim(), v),
                None => continue,
            };
            // A trailing timestamp: `name{..} value ts`.
            let (series, value) = match series.rsplit_once(' ') {
                Some((s, v)) if !series.ends_with('}') && v.parse::<f64>().is_ok() => (s.trim(), v),
                _ => (series, value),
            };
            let Ok(value) = value.parse::<f64>() else { continue };
            let (name, labels) = match series.split_once('{') {
                Some((n, rest)) => (n.to_string(), parse_labels(rest.trim_end_matches('}'))),
                None => (series.to_string(), BTreeMap::new()),
            };
            samples.push((name, labels, value));
        }
        Metrics { text: text.to_string(), samples }
    }

    /// The sum of `name`'s samples whose labels include every `(key, value)` of `labels`.
    pub fn sum(&self, name: &str, labels: &[(&str, &str)]) -> f64 {
        self.samples
            .iter()
            .filter(|(n, l, _)| n == name && labels.iter().all(|(k, v)| l.get(*k).map(String::as_str) == Some(*v)))
            .map(|(_, _, v)| v)
            .sum()
    }

    /// Whether `name` has any sample.
    pub fn has(&self, name: &str) -> bool {
        self.samples.iter().any(|(n, _, _)| n == name)
    }
}

fn parse_labels(s: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let mut rest = s;
    while let Some((k, after)) = rest.split_once("=\"") {
        let mut value = String::new();
        let mut chars = after.char_indices();
        let mut end = after.len();
        while let Some((i, c)) = chars.next() {
            match c {
                '\\' => {
                    if let Some((_, e)) = chars.next() {
                        value.push(if e == 'n' { '\n' } else { e });
                    }
                }
                '"' => {
                    end = i + 1;
                    break;
                }
                c => value.push(c),
            }
        }
        out.insert(k.trim().trim_start_matches(',').trim().to_string(), value);
        rest = &after[end..];
    }
    out
}

/// Waits for a child up to `timeout`.
pub fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(s) = child.try_wait()? {
            return Ok(Some(s));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Polls `f` every `every` until it returns `Some`, for at most `timeout`.
pub fn wait_until<T>(timeout: Duration, every: Duration, mut f: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = f() {
            return Some(v);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(every);
    }
}

/// The last `n` lines of some output.
pub fn tail_text(bytes: &[u8], n: usize) -> String {
    let s = String::from_utf8_lossy(bytes);
    let lines: Vec<&str> = s.lines().collect();
    lines[lines.len().saturating_sub(n)..].join("\n")
}

//! A real Kafka-protocol broker (tansu, in-memory storage) on a free loopback port.
//!
//! `LocalKafka::start()` spawns `tansu broker` from the tool cache (installed by
//! `infra/local/install kafka`), waits until it answers metadata requests, and kills it on
//! `Drop`. The child also dies with the test process (`PR_SET_PDEATHSIG`). Storage is in memory,
//! so `restart()` comes back empty: topics must be created again.
use std::net::{TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Headers, Message};
use rdkafka::{ClientConfig, Offset, TopicPartitionList};

use crate::paths::cache_dir;

/// The tansu binary in the tool cache.
pub fn tansu_bin() -> PathBuf {
    cache_dir().join("tansu-0.6.0/bin/tansu")
}

/// A free loopback port (bound then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).map(|a| a.port()).expect("free port")
}

/// Make the child die when the test process dies.
pub fn die_with_parent(cmd: &mut Command) {
    use std::os::unix::process::CommandExt;
    // SAFETY: prctl is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(|| {
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
            Ok(())
        });
    }
}

/// A running tansu broker.
pub struct LocalKafka {
    child: Option<Child>,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl LocalKafka {
    /// Start a broker on a free port and wait until it serves metadata.
    pub fn start() -> anyhow::Result<Self> {
        let dir = tempfile::tempdir()?;
        let log = dir.path().join("tansu.log");
        let mut k = LocalKafka { child: None, port: free_port(), log, _dir: dir };
        k.spawn()?;
        Ok(k)
    }

    fn spawn(&mut self) -> anyhow::Result<()> {
        let bin = tansu_bin();
        if !bin.exists() {
            bail!("{} not found: run infra/local/install kafka", bin.display());
        }
        let url = format!("tcp://127.0.0.1:{}", self.port);
        let log = std::fs::OpenOptions::new().create(true).append(true).open(&self.log)?;
        let mut cmd = Command::new(&bin);
        cmd.args(["broker", "--listener-url", &url, "--advertised-listener-url", &url, "--storage-engine", "memory://tansu/"])
            .env("RUST_LOG", std::env::var("TANSU_LOG").unwrap_or_else(|_| "warn".into()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(&mut cmd);
        self.child = Some(cmd.spawn().with_context(|| format!("spawning {}", bin.display()))?);
        self.wait_ready(Duration::from_secs(30))
    }

    fn wait_ready(&mut self, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        while Instant::now() < deadline {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|c| c.try_wait()) {
                bail!("tansu exited with {status}; log:\n{}", self.log_tail());
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                let c: BaseConsumer = self.client_config().create()?;
                if c.fetch_metadata(None, Duration::from_secs(2)).is_ok() {
                    return Ok(());
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        bail!("tansu not ready on port {} after {timeout:?}; log:\n{}", self.port, self.log_tail())
    }

    /// The last lines of the broker's log.
    pub fn log_tail(&self) -> String {
        let s = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = s.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// `127.0.0.1:PORT`.
    pub fn brokers(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// A client config pointing at this broker.
    pub fn client_config(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", self.brokers());
        c
    }

    /// Create topics (name, partitions) with the admin API and wait until they are visible.
    pub async fn create_topics(&self, topics: &[(&str, i32)]) -> anyhow::Result<()> {
        let admin: AdminClient<DefaultClientContext> = self.client_config().create()?;
        let new: Vec<NewTopic> = topics.iter().map(|(n, p)| NewTopic::new(n, *p, TopicReplication::Fixed(1))).collect();
        let res = admin.create_topics(&new, &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)))).await?;
        for r in res {
            if let Err((name, code)) = r {
                if code != rdkafka::types::RDKafkaErrorCode::TopicAlreadyExists {
                    bail!("creating topic {name}: {code:?}");
                }
            }
        }
        let c: BaseConsumer = self.client_config().create()?;
        let deadline = Instant::now() + Duration::from_secs(10);
        for (name, parts) in topics {
            loop {
                let md = c.fetch_metadata(Some(name), Duration::from_secs(2))?;
                if md.topics().first().is_some_and(|t| t.partitions().len() == *parts as usize && t.error().is_none()) {
                    break;
                }
                if Instant::now() > deadline {
                    bail!("topic {name} not visible with {parts} partitions");
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        }
        Ok(())
    }

    /// The number of messages in a topic (all partitions), counted by reading them: tansu 0.6's
    /// ListOffsets reports the base offset of the last *batch* + 1 as the high watermark, not the
    /// next offset, so watermarks undercount multi-record batches.
    pub fn message_count(&self, topic: &str) -> anyhow::Result<usize> {
        Ok(self.read_all(topic)?.len())
    }

    /// Read every message currently in a topic: all partitions from the beginning, with a plain
    /// assigned consumer (it commits nothing), until nothing more arrives for a second.
    pub fn read_all(&self, topic: &str) -> anyhow::Result<Vec<Record>> {
        self.read_all_as(topic, "pprofhouse-tests-reader")
    }

    /// [`LocalKafka::read_all`] under `group.id` `group`.
    pub fn read_all_as(&self, topic: &str, group: &str) -> anyhow::Result<Vec<Record>> {
        let c: BaseConsumer =
            self.client_config().set("group.id", group).set("enable.auto.commit", "false").set("fetch.wait.max.ms", "100").create()?;
        let md = c.fetch_metadata(Some(topic), Duration::from_secs(5))?;
        let t = md.topics().first().context("no topic metadata")?;
        if t.partitions().is_empty() {
            bail!("topic {topic} has no partitions (does it exist?)");
        }
        let mut tpl = TopicPartitionList::new();
        for p in t.partitions() {
            tpl.add_partition_offset(topic, p.id(), Offset::Beginning)?;
        }
        c.assign(&tpl)?;
        let mut out = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut last = Instant::now();
        while last.elapsed() < Duration::from_secs(1) {
            if Instant::now() > deadline {
                bail!("{topic}: still reading after 60 s ({} messages)", out.len());
            }
            match c.poll(Duration::from_millis(100)) {
                Some(Ok(m)) => {
                    let headers = m
                        .headers()
                        .map(|h| {
                            h.iter()
                                .map(|x| (x.key.to_string(), String::from_utf8_lossy(x.value.unwrap_or_default()).into_owned()))
                                .collect()
                        })
                        .unwrap_or_default();
                    out.push(Record {
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(|k| String::from_utf8_lossy(k).into_owned()),
                        payload: m.payload().unwrap_or_default().to_vec(),
                        headers,
                    });
                    last = Instant::now();
                }
                Some(Err(e)) => bail!("consume {topic}: {e}"),
                None => {}
            }
        }
        out.sort_by_key(|r| (r.partition, r.offset));
        Ok(out)
    }

    /// Kill the broker (its in-memory data is gone).
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Stop and start again on the same port (empty: create topics again).
    pub fn restart(&mut self) -> anyhow::Result<()> {
        self.stop();
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_ok() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        self.spawn()
    }
}

impl Drop for LocalKafka {
    fn drop(&mut self) {
        self.stop();
    }
}

/// A consumed message.
#[derive(Clone, Debug)]
pub struct Record {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<String>,
    pub payload: Vec<u8>,
    pub headers: Vec<(String, String)>,
}

impl Record {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// Kafka's murmur2 partitioner (Java client, librdkafka `murmur2_random`): the partition of a
/// key among `partitions`.
pub fn murmur2_partition(key: &[u8], partitions: i32) -> i32 {
    const M: u32 = 0x5bd1_e995;
    let len = key.len();
    let mut h: u32 = 0x9747_b28c ^ len as u32;
    let chunks = key.chunks_exact(4);
    let tail = chunks.remainder();
    for c in chunks {
        let mut k = u32::from_le_bytes([c[0], c[1], c[2], c[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> 24;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    if tail.len() >= 3 {
        h ^= (tail[2] as u32) << 16;
    }
    if tail.len() >= 2 {
        h ^= (tail[1] as u32) << 8;
    }
    if !tail.is_empty() {
        h ^= tail[0] as u32;
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    ((h & 0x7fff_ffff) % partitions as u32) as i32
}

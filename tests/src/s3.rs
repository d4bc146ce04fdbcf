//! A real S3-compatible server (s3s-fs over a temporary folder) on a free loopback port.
//!
//! `LocalS3::start()` spawns `s3s-fs` from the tool cache (installed by `infra/local/install s3`)
//! with static credentials, waits until it answers HTTP, and kills it on `Drop` (and when the
//! test process dies). Buckets are directories: `create_bucket` makes one.
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use aws_sdk_s3::config::{Credentials, Region, RequestChecksumCalculation, ResponseChecksumValidation};

use crate::kafka::{die_with_parent, free_port};
use crate::paths::cache_dir;

/// Static credentials of the test server.
pub const ACCESS_KEY: &str = "pprofhouse";
pub const SECRET_KEY: &str = "pprofhouse-secret";
pub const REGION: &str = "us-east-1";

/// The s3s-fs binary in the tool cache.
pub fn s3s_fs_bin() -> PathBuf {
    cache_dir().join("s3s-fs-0.14.1/bin/s3s-fs")
}

/// A running s3s-fs.
pub struct LocalS3 {
    child: Option<Child>,
    port: u16,
    dir: tempfile::TempDir,
}

impl LocalS3 {
    /// Start on a free port over a fresh temporary folder.
    pub fn start() -> anyhow::Result<Self> {
        let bin = s3s_fs_bin();
        if !bin.exists() {
            bail!("{} not found: run infra/local/install s3", bin.display());
        }
        let dir = tempfile::tempdir()?;
        std::fs::create_dir_all(dir.path().join("data"))?;
        let port = free_port();
        let log = std::fs::File::create(dir.path().join("s3s-fs.log"))?;
        let mut cmd = Command::new(&bin);
        cmd.args(["--host", "127.0.0.1", "--port", &port.to_string(), "--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(dir.path().join("data"))
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("spawning {}", bin.display()))?;
        let mut s3 = LocalS3 { child: Some(child), port, dir };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(Ok(Some(status))) = s3.child.as_mut().map(|c| c.try_wait()) {
                bail!("s3s-fs exited with {status}: {}", std::fs::read_to_string(s3.dir.path().join("s3s-fs.log")).unwrap_or_default());
            }
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(s3);
            }
            if Instant::now() > deadline {
                bail!("s3s-fs not listening on {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// The folder holding the buckets.
    pub fn data_dir(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Create a bucket (a directory).
    pub fn create_bucket(&self, name: &str) -> anyhow::Result<()> {
        std::fs::create_dir_all(self.data_dir().join(name))?;
        Ok(())
    }

    /// An SDK client with the static credentials, path-style.
    pub fn client(&self) -> aws_sdk_s3::Client {
        let conf = aws_sdk_s3::config::Builder::new()
            .behavior_version(aws_sdk_s3::config::BehaviorVersion::latest())
            .region(Region::new(REGION))
            .endpoint_url(self.endpoint())
            .credentials_provider(Credentials::new(ACCESS_KEY, SECRET_KEY, None, None, "pprofhouse-tests"))
            .force_path_style(true)
            .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
            .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
            .build();
        aws_sdk_s3::Client::from_conf(conf)
    }

    /// The environment a `pprofhouse` process needs to reach this server.
    pub fn env(&self, bucket: &str) -> Vec<(String, String)> {
        [
            ("PPROFHOUSE_S3_ENDPOINT", self.endpoint()),
            ("PPROFHOUSE_S3_BUCKET", bucket.to_string()),
            ("PPROFHOUSE_S3_PATH_STYLE", "true".to_string()),
            ("AWS_ACCESS_KEY_ID", ACCESS_KEY.to_string()),
            ("AWS_SECRET_ACCESS_KEY", SECRET_KEY.to_string()),
            ("AWS_REGION", REGION.to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    /// Upload a local file.
    pub async fn put_file(&self, bucket: &str, key: &str, path: &Path) -> anyhow::Result<()> {
        let body = aws_sdk_s3::primitives::ByteStream::from_path(path).await?;
        self.client().put_object().bucket(bucket).key(key).body(body).send().await?;
        Ok(())
    }

    /// Kill the server.
    pub fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

impl Drop for LocalS3 {
    fn drop(&mut self) {
        self.stop();
    }
}

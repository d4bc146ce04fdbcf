//! A real ClickHouse engine for tests: `infra/local/chfront.py` (a ClickHouse-HTTP-compatible
//! front over PyPI's `chdb-core`, installed by `infra/local/install clickhouse`) started on a free
//! loopback port with its data in a fresh temporary directory.
//!
//! The front is started with `--parent-pid <this process>`, so it exits within ~0.5 s if the test
//! process dies without running `Drop` (we do not use `PR_SET_PDEATHSIG`: it fires when the
//! *thread* that spawned the child exits, which would kill a server shared between tests).
//!
//! Clients must use `Compression::None` (the front does not implement ClickHouse's block
//! compression); [`LocalClickHouse::client`] returns a client configured that way.
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context, Result};

use crate::paths;

/// How long to wait for the front to print `listening on ...` (engine start is ~1 s).
const START_TIMEOUT: Duration = Duration::from_secs(60);
/// How long `stop()` waits after SIGTERM before SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// A running ClickHouse front (see the module docs). Stopped and its data removed on drop.
pub struct LocalClickHouse {
    dir: Option<tempfile::TempDir>,
    data_dir: PathBuf,
    log_path: PathBuf,
    port: u16,
    databases: Vec<String>,
    child: Option<Child>,
}

/// The Python interpreter of the venv made by `infra/local/install clickhouse`.
pub fn venv_python() -> PathBuf {
    paths::cache_dir().join("venv/bin/python")
}

/// The front's script in this repository.
pub fn chfront_script() -> PathBuf {
    paths::repo_root().join("infra/local/chfront.py")
}

impl LocalClickHouse {
    /// Starts a front on a free port with an empty data directory.
    pub fn start() -> Result<Self> {
        Self::start_with_databases(&[])
    }

    /// Like [`start`](Self::start), and creates these databases (`CREATE DATABASE IF NOT EXISTS`)
    /// before it reports ready.
    pub fn start_with_databases(databases: &[&str]) -> Result<Self> {
        let dir =
            tempfile::Builder::new().prefix("pprofhouse-clickhouse-").tempdir().context("creating a temporary directory for ClickHouse")?;
        let data_dir = dir.path().join("data");
        let log_path = dir.path().join("chfront.log");
        let mut ch = LocalClickHouse {
            data_dir,
            log_path,
            port: 0,
            databases: databases.iter().map(|d| d.to_string()).collect(),
            child: None,
            dir: Some(dir),
        };
        ch.spawn(0)?;
        Ok(ch)
    }

    /// `http://127.0.0.1:PORT`
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The engine's data directory (kept across [`restart`](Self::restart)).
    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    /// The front's log (stderr, one line per request); appended to across restarts.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last `lines` lines of the log, for assertion messages.
    pub fn log_tail(&self, lines: usize) -> String {
        tail(&self.log_path, lines)
    }

    /// A `clickhouse` client for this server: no compression, user `default`, no database.
    pub fn client(&self) -> ::clickhouse::Client {
        ::clickhouse::Client::default().with_url(self.url()).with_compression(::clickhouse::Compression::None).with_user("default")
    }

    /// Whether the front process is still alive.
    pub fn is_running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// Stops the front (SIGTERM, then SIGKILL after a timeout) and starts it again on the same
    /// port with the same data directory. Used by fault tests: clients see connection errors
    /// while it is down.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        let port = self.port;
        // The port was just released; retry briefly in case of a bind race.
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            match self.spawn(port) {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() < deadline && self.log_tail(5).contains("in use") => {
                    let _ = e;
                    std::thread::sleep(Duration::from_millis(200));
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Stops the front cleanly (SIGTERM; SIGKILL if it does not exit in time). Idempotent.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        if child.try_wait()?.is_some() {
            return Ok(());
        }
        // SAFETY: kill(2) on the pid of our own, not yet reaped, child.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + STOP_TIMEOUT;
        while Instant::now() < deadline {
            if child.try_wait()?.is_some() {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        child.kill().ok();
        child.wait().context("waiting for the ClickHouse front")?;
        Ok(())
    }

    /// Kills the front with SIGKILL (a crash, no clean shutdown). Idempotent.
    pub fn kill(&mut self) -> Result<()> {
        if let Some(mut child) = self.child.take() {
            child.kill().ok();
            child.wait().context("waiting for the ClickHouse front")?;
        }
        Ok(())
    }

    fn spawn(&mut self, port: u16) -> Result<()> {
        let python = venv_python();
        if !python.exists() {
            bail!("the ClickHouse engine is not installed ({} is missing): run infra/local/install clickhouse", python.display());
        }
        let script = chfront_script();
        std::fs::create_dir_all(&self.data_dir)?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log_path)
            .with_context(|| format!("opening {}", self.log_path.display()))?;
        let mut cmd = Command::new(&python);
        cmd.arg(&script)
            .arg("--host")
            .arg("127.0.0.1")
            .arg("--port")
            .arg(port.to_string())
            .arg("--data")
            .arg(&self.data_dir)
            .arg("--parent-pid")
            .arg(std::process::id().to_string());
        if let Some(dir) = &self.dir {
            // If this process dies without Drop, the front deletes the temporary directory too.
            cmd.arg("--remove-on-orphan").arg(dir.path());
        }
        for db in &self.databases {
            cmd.arg("--create-database").arg(db);
        }
        cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::from(log));
        let mut child = cmd.spawn().with_context(|| format!("starting {} {}", python.display(), script.display()))?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::Builder::new()
            .name("chfront-stdout".into())
            .spawn(move || {
                let mut lines = BufReader::new(stdout).lines();
                let mut sent = false;
                // Keep draining after the first line so the child never blocks on a full pipe.
                for line in lines.by_ref() {
                    let Ok(line) = line else { break };
                    if !sent {
                        sent = tx.send(line).is_ok();
                    }
                }
            })
            .context("spawning the stdout reader")?;
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(line) => line,
            Err(_) => {
                child.kill().ok();
                let status = child.wait().ok();
                bail!(
                    "the ClickHouse front did not report ready within {:?} (exit: {:?}); log {}:\n{}",
                    START_TIMEOUT,
                    status,
                    self.log_path.display(),
                    tail(&self.log_path, 30)
                );
            }
        };
        let addr =
            line.strip_prefix("listening on ").ok_or_else(|| anyhow!("unexpected first line from the ClickHouse front: {line:?}"))?;
        let got_port: u16 =
            addr.rsplit(':').next().and_then(|p| p.trim().parse().ok()).ok_or_else(|| anyhow!("cannot parse the port in {line:?}"))?;
        if port != 0 && got_port != port {
            child.kill().ok();
            child.wait().ok();
            bail!("the ClickHouse front listens on {got_port}, expected {port}");
        }
        self.port = got_port;
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for LocalClickHouse {
    fn drop(&mut self) {
        if self.stop().is_err() {
            let _ = self.kill();
        }
        if let Some(dir) = self.dir.take() {
            let _ = dir.close();
        }
    }
}

fn tail(path: &Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

//! A real Go service to profile: `../shared/tools/goworkload` built with the local `go` and run
//! with `-listen`, serving `net/http/pprof` on a free loopback port.
//!
//! The binary is built once into `<target>/goworkload/` (rebuilt when `main.go` or `go.mod` is
//! newer), with `GOCACHE`/`GOPATH` there too, `GOENV=off`, `GOFLAGS=-mod=mod`,
//! `GOTOOLCHAIN=local` and `GOPROXY=off`: no HOME state and no network (the module has no
//! dependencies). Concurrent builds (tests in parallel, several test binaries) each write a
//! temporary file and rename it into place.
//!
//! Profiles are fetched over plain HTTP/1.0 on loopback with [`http_get`], a minimal blocking
//! client (also used for the worker's `/metrics`). The service is killed on `Drop` and dies
//! with the test process.
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime};

use anyhow::{bail, Context, Result};

use crate::kafka::{die_with_parent, free_port};
use crate::paths::repo_root;

/// The workload's sources.
pub fn goworkload_src() -> PathBuf {
    repo_root().join("../shared/tools/goworkload")
}

/// The workspace target directory (the parent of the profile directory holding this test's
/// executable: `target/debug/deps/x` → `target`).
pub fn target_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CARGO_TARGET_DIR") {
        let d = PathBuf::from(d);
        return if d.is_absolute() { d } else { repo_root().join(d) };
    }
    let exe = std::env::current_exe().expect("current_exe");
    exe.ancestors().nth(3).map(Path::to_path_buf).unwrap_or_else(|| repo_root().join("target"))
}

fn mtime(p: &Path) -> Option<SystemTime> {
    std::fs::metadata(p).and_then(|m| m.modified()).ok()
}

static BUILD: Mutex<()> = Mutex::new(());

/// Builds the workload if needed and returns the binary's path.
pub fn build_goworkload() -> Result<PathBuf> {
    let _guard = BUILD.lock().unwrap_or_else(|e| e.into_inner());
    let src = goworkload_src();
    let root = target_dir().join("goworkload");
    let bin = root.join("goworkload");
    let newest_src = ["main.go", "go.mod"].iter().filter_map(|f| mtime(&src.join(f))).max();
    if let (Some(b), Some(s)) = (mtime(&bin), newest_src) {
        if b >= s {
            return Ok(bin);
        }
    }
    std::fs::create_dir_all(&root)?;
    let tmp = root.join(format!("goworkload.tmp.{}", std::process::id()));
    let out = Command::new("go")
        .args(["build", "-trimpath", "-o"])
        .arg(&tmp)
        .arg(".")
        .current_dir(&src)
        .env("GOCACHE", root.join("gocache"))
        .env("GOPATH", root.join("gopath"))
        .env("GOMODCACHE", root.join("gopath/pkg/mod"))
        .env("GOENV", "off")
        .env("GOFLAGS", "-mod=mod")
        .env("GOTOOLCHAIN", "local")
        .env("GOPROXY", "off")
        .env("GOSUMDB", "off")
        .env("GOTELEMETRY", "off")
        .env("CGO_ENABLED", "0")
        .stdin(Stdio::null())
        .output()
        .context("running `go build` (is `go` on PATH? `make test` puts it there; or PATH=\"$(infra/local/tools):$PATH\")")?;
    if !out.status.success() {
        let _ = std::fs::remove_file(&tmp);
        bail!("go build {} failed: {}", src.display(), String::from_utf8_lossy(&out.stderr));
    }
    std::fs::rename(&tmp, &bin)?;
    Ok(bin)
}

/// The profiles the service serves, as (name, path under `/debug/pprof/`).
pub const PROFILES: [(&str, &str); 7] = [
    ("cpu", "profile?seconds=1"),
    ("heap", "heap"),
    ("allocs", "allocs"),
    ("goroutine", "goroutine"),
    ("block", "block"),
    ("mutex", "mutex"),
    ("threadcreate", "threadcreate"),
];

/// A running goworkload (`-listen`). Killed on drop.
pub struct GoService {
    child: Child,
    port: u16,
    log: PathBuf,
    _dir: tempfile::TempDir,
}

impl GoService {
    /// Build (if needed), start on a free port, wait until `/debug/pprof/` answers.
    pub fn start() -> Result<GoService> {
        let bin = build_goworkload()?;
        let dir = tempfile::Builder::new().prefix("pprofhouse-goworkload-").tempdir()?;
        let log = dir.path().join("goworkload.log");
        let port = free_port();
        let logf = std::fs::File::create(&log)?;
        let mut cmd = Command::new(&bin);
        cmd.arg("-listen").arg(format!("127.0.0.1:{port}")).stdin(Stdio::null()).stdout(logf.try_clone()?).stderr(logf);
        die_with_parent(&mut cmd);
        let child = cmd.spawn().with_context(|| format!("starting {}", bin.display()))?;
        let mut svc = GoService { child, port, log, _dir: dir };
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = svc.child.try_wait()? {
                bail!("goworkload exited with {status}: {}", std::fs::read_to_string(&svc.log).unwrap_or_default());
            }
            if let Ok((200, _)) = http_get(&svc.addr(), "/debug/pprof/", Duration::from_secs(5)) {
                return Ok(svc);
            }
            if Instant::now() > deadline {
                bail!("goworkload not answering on {} after 30 s", svc.addr());
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    /// Fetches one profile: `name` is `cpu` (a 1 s CPU profile) or a runtime profile name
    /// (`heap`, `allocs`, `goroutine`, `block`, `mutex`, `threadcreate`). Returns the bytes as
    /// served (gzip-compressed protobuf).
    pub fn fetch(&self, name: &str) -> Result<Vec<u8>> {
        let path = PROFILES.iter().find(|(n, _)| *n == name).map(|(_, p)| *p).unwrap_or(name);
        let (status, body) = http_get(&self.addr(), &format!("/debug/pprof/{path}"), Duration::from_secs(30))?;
        if status != 200 {
            bail!("GET /debug/pprof/{path}: HTTP {status}: {}", String::from_utf8_lossy(&body));
        }
        if body.len() < 2 || body[..2] != [0x1f, 0x8b] {
            bail!("GET /debug/pprof/{path}: not a gzip'd profile ({} bytes)", body.len());
        }
        Ok(body)
    }
}

impl Drop for GoService {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A blocking `GET` over HTTP/1.0 on a loopback address: (status, body). Handles
/// `Content-Length`, read-to-close and chunked bodies.
pub fn http_get(addr: &str, path: &str, timeout: Duration) -> Result<(u16, Vec<u8>)> {
    let sock: std::net::SocketAddr = addr.parse().with_context(|| format!("bad address {addr:?}"))?;
    let mut s = TcpStream::connect_timeout(&sock, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\nAccept-Encoding: identity\r\nConnection: close\r\n\r\n")?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).with_context(|| format!("reading the answer to GET {path}"))?;
    let (status, _, body) = parse_http_answer(&raw).with_context(|| format!("GET {path}"))?;
    Ok((status, body))
}

/// Header lines, names lowercased.
pub type Headers = Vec<(String, String)>;

/// An HTTP/1.x answer read to the end: (status, headers with lowercased names, body), the body
/// de-chunked or cut at `Content-Length`.
pub fn parse_http_answer(raw: &[u8]) -> Result<(u16, Headers, Vec<u8>)> {
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of headers in the HTTP answer")?;
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut body = raw[split + 4..].to_vec();
    let mut lines = head.lines();
    let status: u16 = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|c| c.parse().ok())
        .with_context(|| format!("bad status line in {head:?}"))?;
    let headers: Vec<(String, String)> =
        lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_string())).collect();
    let header = |name: &str| headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str());
    if header("transfer-encoding").is_some_and(|v| v.eq_ignore_ascii_case("chunked")) {
        body = dechunk(&body)?;
    } else if let Some(n) = header("content-length").and_then(|v| v.parse::<usize>().ok()) {
        if body.len() < n {
            bail!("body is {} bytes, Content-Length says {n}", body.len());
        }
        body.truncate(n);
    }
    Ok((status, headers, body))
}

fn dechunk(mut b: &[u8]) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    loop {
        let eol = b.windows(2).position(|w| w == b"\r\n").context("bad chunk header")?;
        let size_text = String::from_utf8_lossy(&b[..eol]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16).context("bad chunk size")?;
        b = &b[eol + 2..];
        if size == 0 {
            return Ok(out);
        }
        if b.len() < size + 2 {
            bail!("truncated chunk");
        }
        out.extend_from_slice(&b[..size]);
        b = &b[size + 2..];
    }
}

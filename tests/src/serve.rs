//! `pprofhouse serve` for tests: started from a prepared command on a free loopback port
//! (`--listen 127.0.0.1:0`, the bound address read from its first line), stopped with SIGTERM
//! (SIGKILL after a timeout) when dropped; and a minimal HTTP/1.1 client that can send bodies,
//! headers and `Expect: 100-continue`.
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use anyhow::{anyhow, bail, Context, Result};

use crate::pipeline::wait_timeout;

/// How long the server may take to bind.
const START_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a request may take.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// A running `pprofhouse serve`.
pub struct Server {
    child: Option<Child>,
    addr: String,
}

impl Server {
    /// Spawns `cmd` (a `pprofhouse serve … --listen 127.0.0.1:0` command; its stdout is taken
    /// over) and waits for `listening on ADDR`.
    pub fn start(mut cmd: Command) -> Result<Server> {
        cmd.stdout(Stdio::piped());
        let mut child = cmd.spawn().context("spawning pprofhouse serve")?;
        let stdout = child.stdout.take().expect("piped stdout");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(START_TIMEOUT) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let status = child.wait().ok();
                bail!("pprofhouse serve did not report its address within {START_TIMEOUT:?} (exit: {status:?})");
            }
        };
        let addr = line.strip_prefix("listening on ").ok_or_else(|| anyhow!("unexpected first line {line:?}"))?.trim().to_string();
        Ok(Server { child: Some(child), addr })
    }

    /// `127.0.0.1:PORT`.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// `http://127.0.0.1:PORT` + `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// SIGTERM, then the exit status (SIGKILL and an error past `timeout`).
    pub fn stop(&mut self, timeout: Duration) -> Result<ExitStatus> {
        let mut child = self.child.take().context("already stopped")?;
        // SAFETY: kill(2) on our own child, not yet reaped.
        unsafe {
            libc::kill(child.id() as libc::pid_t, libc::SIGTERM);
        }
        match wait_timeout(&mut child, timeout)? {
            Some(s) => Ok(s),
            None => {
                let _ = child.kill();
                let _ = child.wait();
                bail!("pprofhouse serve still running {timeout:?} after SIGTERM")
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if self.child.is_some() {
            let _ = self.stop(Duration::from_secs(10));
        }
    }
}

/// An HTTP answer.
#[derive(Debug)]
pub struct Answer {
    /// Status code.
    pub status: u16,
    /// Header lines, names lowercased.
    pub headers: Vec<(String, String)>,
    /// Body (de-chunked).
    pub body: Vec<u8>,
}

impl Answer {
    /// The body as JSON (panics with the body when it is not).
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("{e}: {:?}", String::from_utf8_lossy(&self.body)))
    }

    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k == name).map(|(_, v)| v.as_str())
    }
}

/// One HTTP/1.1 request on a fresh connection (`Connection: close`). With `expect_continue`,
/// the body is sent only after the server's `100 Continue`; a final answer instead is returned
/// without sending it.
pub fn request(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8], expect_continue: bool) -> Result<Answer> {
    let mut s = TcpStream::connect(addr).with_context(|| format!("connecting to {addr}"))?;
    s.set_read_timeout(Some(REQUEST_TIMEOUT))?;
    s.set_write_timeout(Some(REQUEST_TIMEOUT))?;
    let mut head = format!("{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\nContent-Length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    if expect_continue {
        head.push_str("Expect: 100-continue\r\n");
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes())?;
    let mut raw = Vec::new();
    if expect_continue && !body.is_empty() {
        let mut buf = [0u8; 4096];
        let n = s.read(&mut buf)?;
        raw.extend_from_slice(&buf[..n]);
        if raw.starts_with(b"HTTP/1.1 100") {
            let end = raw.windows(4).position(|w| w == b"\r\n\r\n").context("no end of the 100 Continue")?;
            raw.drain(..end + 4);
            s.write_all(body)?;
        }
    } else {
        s.write_all(body)?;
    }
    s.read_to_end(&mut raw).with_context(|| format!("reading the answer to {method} {path}"))?;
    parse(&raw)
}

/// `GET path` with optional headers.
pub fn get(addr: &str, path: &str, headers: &[(&str, &str)]) -> Result<Answer> {
    request(addr, "GET", path, headers, b"", false)
}

fn parse(raw: &[u8]) -> Result<Answer> {
    let (status, headers, body) = crate::goservice::parse_http_answer(raw)?;
    Ok(Answer { status, headers, body })
}

//! A migrated local ClickHouse with the `pprofhouse` binary pointed at it: the harness of the
//! suites that load profiles through the CLI and read them back (storage, merge, report).
use std::path::PathBuf;
use std::process::{Command, Output};

use crate::clickhouse::LocalClickHouse;
use crate::paths::pprofhouse_bin;

/// The database the harness migrates and the binary uses.
pub const DATABASE: &str = "pprofhouse";

/// A local ClickHouse, migrated, and a scratch directory; dropped, both go.
pub struct CliStore {
    /// The engine.
    pub ch: LocalClickHouse,
    /// Scratch files (merged profiles, reports).
    pub dir: tempfile::TempDir,
    /// What `pprofhouse migrate` printed.
    pub migrated: String,
}

impl CliStore {
    /// Starts the engine and runs `pprofhouse migrate` against it.
    pub fn start() -> CliStore {
        let mut s = CliStore::on(LocalClickHouse::start().expect("start the local ClickHouse (infra/local/install clickhouse)"));
        s.migrated = String::from_utf8(s.run(&["migrate"]).stdout).unwrap();
        s
    }

    /// The harness over an engine already started, as it is (not migrated).
    pub fn on(ch: LocalClickHouse) -> CliStore {
        CliStore { ch, dir: tempfile::tempdir().unwrap(), migrated: String::new() }
    }

    /// The environment that points the binary at the engine.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("PPROFHOUSE_CLICKHOUSE_URL".into(), self.ch.url()),
            ("PPROFHOUSE_CLICKHOUSE_DATABASE".into(), DATABASE.into()),
            ("PPROFHOUSE_CLICKHOUSE_COMPRESSION".into(), "none".into()),
            ("PPROFHOUSE_CLICKHOUSE_USER".into(), "default".into()),
        ]
    }

    /// `pprofhouse ARGS` with `extra` added to the environment, whatever its outcome.
    pub fn output_with(&self, args: &[&str], extra: &[(String, String)]) -> Output {
        Command::new(pprofhouse_bin()).args(args).envs(self.env()).envs(extra.iter().cloned()).output().unwrap()
    }

    /// [`CliStore::output_with`] without extra environment.
    pub fn output(&self, args: &[&str]) -> Output {
        self.output_with(args, &[])
    }

    /// [`CliStore::output_with`], which must succeed (else a panic with its stderr and the
    /// engine's log).
    pub fn run_with(&self, args: &[&str], extra: &[(String, String)]) -> Output {
        let out = self.output_with(args, extra);
        assert!(out.status.success(), "pprofhouse {args:?}: {}\n{}", String::from_utf8_lossy(&out.stderr), self.ch.log_tail(20));
        out
    }

    /// [`CliStore::run_with`] without extra environment.
    pub fn run(&self, args: &[&str]) -> Output {
        self.run_with(args, &[])
    }

    /// `pprofhouse load` of `files` as `service`'s `ptype` profiles with `labels` (`k=v`), at
    /// `time_ms` (else each profile's own time); what it printed.
    pub fn load(&self, service: &str, ptype: &str, time_ms: Option<i64>, labels: &[&str], files: &[PathBuf]) -> String {
        let time = time_ms.map(iso);
        let mut args = vec!["load", "--service", service, "--type", ptype];
        if let Some(t) = &time {
            args.extend(["--time", t]);
        }
        for l in labels {
            args.extend(["--label", l]);
        }
        let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
        args.extend(paths.iter().map(String::as_str));
        String::from_utf8(self.run(&args).stdout).unwrap()
    }

    /// A client of the engine on [`DATABASE`].
    pub fn client(&self) -> clickhouse::Client {
        self.ch.client().with_database(DATABASE)
    }
}

/// ms since the epoch → RFC 3339 (UTC, milliseconds), as the CLI's time flags take it.
pub fn iso(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms).unwrap().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

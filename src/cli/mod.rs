//! The command line: every flag lives here, and each command turns its flags (layered over the
//! config file and the environment, see [`settings`]) into the typed configuration of the
//! library it calls.

mod db;
mod files;
pub(crate) mod flags;
mod ingest;
mod merge;
mod put;
mod report;
mod serve;
pub mod settings;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, FromArgMatches, Parser, Subcommand, ValueEnum};
use pprofhouse_sql::query::Window;

pub use ingest::{invoked_as_bootstrap, run_bootstrap};

#[derive(Debug, Parser)]
#[command(name = "pprofhouse", version, about = ABOUT)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    #[command(subcommand)]
    pub command: Command,
}

/// Flags every command takes.
#[derive(Debug, Args)]
pub struct GlobalArgs {
    /// TOML settings file (sections [clickhouse], [kafka], [s3], [layout], [sink], [limits],
    /// [worker], [retention], [backfill], [serve], [report]; unknown keys are errors). The environment wins over
    /// the file, flags win over both.
    #[arg(long, global = true, env = "PPROFHOUSE_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, env = "PPROFHOUSE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing EnvFilter syntax), e.g. `info,pprofhouse=debug`.
    #[arg(long, global = true, env = "PPROFHOUSE_LOG", default_value = "warn")]
    pub log: String,
}

/// How log lines look.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Sets up `tracing` on stderr.
pub fn init_tracing(format: LogFormat, filter: &str) {
    let filter = tracing_subscriber::EnvFilter::try_new(filter).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Debug, Subcommand)]
// Parsed once per process: the size of the largest variant does not matter.
#[allow(clippy::large_enum_variant)]
pub enum Command {
    #[command(about = EXPLODE_ABOUT)]
    Explode(files::ExplodeArgs),
    #[command(about = TOP_ABOUT)]
    Top(files::TopArgs),
    /// Create or upgrade the ClickHouse schema (idempotent).
    Migrate(db::MigrateArgs),
    /// Load local profile files straight into ClickHouse (the worker's path without Kafka/S3).
    Load(db::LoadArgs),
    /// Upload profiles to S3 under profefe keys (and write the S3 event they trigger).
    Put(put::PutArgs),
    /// Consume the profiles topic: S3 → explode → ClickHouse, with dead letters and metrics.
    Worker(crate::worker::WorkerArgs),
    /// Run the S3 ObjectCreated trigger under the AWS Lambda runtime (the function's `bootstrap`).
    Lambda(ingest::LambdaArgs),
    /// Run the trigger once on an S3 event JSON file (`-`: stdin) against the configured broker;
    /// prints what it did as JSON.
    IngestEvent(ingest::IngestEventArgs),
    /// Enqueue the objects already in a bucket, as the trigger would (resumable).
    Backfill(ingest::BackfillArgs),
    /// Rebuild one pprof profile from ClickHouse: every stored profile of a type in a window
    /// (a service, labels), merged as `go tool pprof` merges files.
    Merge(merge::MergeArgs),
    /// profefe's HTTP API over ClickHouse and S3 (`go tool pprof` reads its merge endpoint).
    Serve(serve::ServeArgs),
    /// Top-N for a window against a baseline, with significant movers and the yearly cost of
    /// CPU, as markdown, HTML, CSV or JSON to stdout, a file, S3 or a webhook (once, or on a cron).
    Report(report::ReportArgs),
}

const ABOUT: &str = "pprof profiles → per-function time series in ClickHouse";
const EXPLODE_ABOUT: &str = "Per-function flat/cum for every sample type of each FILE (one row per sample type × function).";
const TOP_ABOUT: &str = "The top functions, like `go tool pprof -top`, over FILEs (summed like a pprof merge), or over \
                         ClickHouse with --type and a window.";

impl Cli {
    /// Parses the process's arguments, exiting with clap's message on a bad one.
    ///
    /// `explode` and `top` are one-shot commands over files, often tiny ones, where start-up is
    /// most of the run: building every command's flags took 0.45 ms of a 2 ms `top`. They are
    /// parsed by a parser holding only their own flags and the global ones ([`one_shot`]); the
    /// help and the errors are the same (tested).
    pub fn from_env() -> Cli {
        let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
        match argv.get(1).and_then(|a| a.to_str()).and_then(one_shot) {
            Some(cmd) => cmd.try_get_matches_from(argv).and_then(|m| Cli::from_arg_matches(&m)).unwrap_or_else(|e| e.exit()),
            None => Cli::parse(),
        }
    }
}

/// The parser of one one-shot command, as [`Cli::command`] builds it, without the others.
fn one_shot(name: &str) -> Option<clap::Command> {
    let sub = match name {
        "explode" => files::ExplodeArgs::augment_args(clap::Command::new("explode")).about(EXPLODE_ABOUT),
        "top" => files::TopArgs::augment_args(clap::Command::new("top")).about(TOP_ABOUT),
        _ => return None,
    };
    let root = clap::Command::new("pprofhouse")
        .version(env!("CARGO_PKG_VERSION"))
        .about(ABOUT)
        .subcommand_required(true)
        .arg_required_else_help(true);
    Some(GlobalArgs::augment_args(root).subcommand(sub))
}

/// The one async runtime: a worker thread per core the machine (or its cgroup) gives us.
pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    let threads = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(2);
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(threads).enable_all().build()?)
}

/// Runs the parsed command.
pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    let config = cli.global.config.as_deref();
    match cli.command {
        Command::Explode(a) => files::explode(a, config),
        Command::Top(a) => files::top(a, config),
        Command::Migrate(a) => db::migrate(a, config),
        Command::Load(a) => db::load(a, config),
        Command::Put(a) => put::put(a, config),
        Command::Worker(a) => crate::worker::run_command(a, config),
        Command::Lambda(a) => ingest::lambda(a, config),
        Command::IngestEvent(a) => ingest::ingest_event(a, config),
        Command::Backfill(a) => ingest::backfill(a, config),
        Command::Merge(a) => merge::merge(a, config),
        Command::Serve(a) => serve::serve(a, config),
        Command::Report(a) => report::report(a, config),
    }
}

/// What a command is told about the profiles it is given (`load`, `put`).
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// Service the profiles belong to.
    #[arg(long)]
    pub service: String,
    /// Profile type: cpu, heap, block, mutex, goroutine, threadcreate (profefe's numbers), or any
    /// other name.
    #[arg(long = "type")]
    pub profile_type: String,
    /// Label `k=v` (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Profile time (RFC 3339). Default for `load`: the profile's own time, else now (a value,
    /// never part of the id); for `put`: now (encoded in the key's xid).
    #[arg(long, value_parser = parse_time)]
    pub time: Option<i64>,
}

/// Which stored profiles a ClickHouse command reads (`top --type`, `merge`, `report`): the
/// window's bounds, one service, labels. Each command adds its own `--since` (optional for
/// `top`, needed without `--from` for `merge`, 24 hours by default for `report`).
#[derive(Debug, Args)]
pub struct SelectionFlags {
    /// Window start (RFC 3339).
    #[arg(long, value_parser = parse_time, requires = "to")]
    pub from: Option<i64>,
    /// Window end, exclusive (RFC 3339).
    #[arg(long, value_parser = parse_time, requires = "from")]
    pub to: Option<i64>,
    /// Only this service.
    #[arg(long)]
    pub service: Option<String>,
    /// Only profiles with label `k=v` (repeatable; all must match).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
}

impl SelectionFlags {
    /// The window: `--from`/`--to`, else `since` ending at `end_ms` (exclusive).
    pub fn window(&self, since: Option<std::time::Duration>, end_ms: i64) -> anyhow::Result<Window> {
        let w = match (self.from, self.to, since) {
            (Some(from), Some(to), _) => Window { from_ms: from, to_ms: to },
            (_, _, Some(d)) => Window { from_ms: end_ms - d.as_millis() as i64, to_ms: end_ms },
            _ => anyhow::bail!("a window is needed: --since D or --from T --to T"),
        };
        if w.to_ms <= w.from_ms {
            anyhow::bail!("the window is empty: --to must be after --from");
        }
        Ok(w)
    }
}

/// Now, in ms since the epoch.
pub fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// An error and its causes in one line, as `{:#}` prints them (`a: b: c`), each cause once
/// ([`pprofhouse_ingest::handler::error_chain`]). An error whose fix is one command away ends
/// with it: a query on a database without the schema (ClickHouse's `UNKNOWN_TABLE`,
/// `UNKNOWN_DATABASE`) asks for `migrate`.
pub fn one_line(e: &anyhow::Error) -> String {
    let mut out = pprofhouse_ingest::handler::error_chain(e.as_ref());
    let code = e.chain().find_map(|c| c.downcast_ref::<pprofhouse_sql::Error>()).and_then(|e| e.code());
    if matches!(code, Some(60 | 81)) {
        out.push_str(" (no pprofhouse schema there yet? `pprofhouse migrate` with the same settings makes it)");
    }
    out
}

/// `k=v`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected k=v, got {s:?}"))
}

/// RFC 3339 → ms since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("{s:?}: {e} (want RFC 3339, e.g. 2026-11-22T10:00:00Z)"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn errors_print_each_cause_once() {
        // The sink's error prints the `clickhouse` crate's error in its own text, and has it as
        // its source.
        let bad = pprofhouse_sql::clickhouse::error::Error::BadResponse("Code: 241. DB::Exception: x".into());
        let e = anyhow::Error::new(pprofhouse_sql::Error::from(bad)).context("top");
        assert_eq!(
            format!("{e:#}"),
            "top: clickhouse: bad response: Code: 241. DB::Exception: x: bad response: Code: 241. DB::Exception: x"
        );
        assert_eq!(one_line(&e), "top: clickhouse: bad response: Code: 241. DB::Exception: x");
        // Causes that only repeat a word are kept.
        let e = anyhow::anyhow!("refused").context("connection refused");
        assert_eq!(one_line(&e), "connection refused: refused");
        // A query on a database without the schema asks for `migrate`; other failures do not.
        let ask = |code: u32| {
            let bad = pprofhouse_sql::clickhouse::error::Error::BadResponse(format!("Code: {code}. DB::Exception: … (version 26.9)"));
            one_line(&anyhow::Error::new(pprofhouse_sql::Error::from(bad)).context("top")).contains("`pprofhouse migrate`")
        };
        assert_eq!([ask(60), ask(81), ask(241)], [true, true, false]);
    }

    /// What a parser makes of `argv`: the parsed command's debug form, or clap's message.
    fn outcome(cmd: clap::Command, argv: &[&str]) -> String {
        match cmd.try_get_matches_from(argv).and_then(|m| Cli::from_arg_matches(&m)) {
            Ok(cli) => format!("{cli:?}"),
            Err(e) => format!("{:?}: {}", e.kind(), e.render()),
        }
    }

    #[test]
    fn a_selection_window_is_its_bounds_or_since_before_the_end_and_never_empty() {
        let sel = |from, to| SelectionFlags { from, to, service: None, labels: vec![] };
        let day = std::time::Duration::from_secs(86_400);
        // --from/--to win over a since (report's has a default).
        assert_eq!(sel(Some(5), Some(9)).window(Some(day), 1_000).unwrap(), Window { from_ms: 5, to_ms: 9 });
        assert_eq!(sel(None, None).window(Some(day), 100_000_000).unwrap(), Window { from_ms: 13_600_000, to_ms: 100_000_000 });
        let err = |from, to, since| sel(from, to).window(since, 1_000).unwrap_err().to_string();
        assert!(err(None, None, None).contains("a window is needed"));
        assert!(err(Some(9), Some(9), None).contains("the window is empty"));
        assert!(err(Some(9), Some(5), Some(day)).contains("the window is empty"));
    }

    #[test]
    fn one_shot_parsers_read_and_refuse_arguments_as_the_whole_command_line_does() {
        assert!(one_shot("worker").is_none());
        for name in ["explode", "top"] {
            let cases: [&[&str]; 9] = [
                &["pprofhouse", name, "a.pb.gz", "b.pb"],
                &["pprofhouse", name, "--help"],
                &["pprofhouse", name, "-h"],
                &["pprofhouse", name, "--max-samples", "7", "--log", "debug", "f"],
                &["pprofhouse", name, "--log-format", "json", "--config", "c.toml", "f"],
                &["pprofhouse", name, "--nodecount", "x", "f"],
                &["pprofhouse", name, "--max-sample", "1", "f"],
                &["pprofhouse", name, "--format", "yaml", "f"],
                &["pprofhouse", name, "--version"],
            ];
            for argv in cases {
                let whole = outcome(Cli::command(), argv);
                assert_eq!(outcome(one_shot(name).unwrap(), argv), whole, "{argv:?}");
            }
        }
    }
}

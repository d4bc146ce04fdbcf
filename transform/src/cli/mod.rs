//! Command-line interface: flags (+ `PPROFHOUSE_*` env) → one call into the library per command.
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod db;
mod files;
mod put;

#[derive(Debug, Parser)]
#[command(name = "pprofhouse", version, about = "pprof profiles → per-function time series in ClickHouse")]
pub struct Cli {
    #[command(flatten)]
    pub log: LogArgs,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Args)]
pub struct LogArgs {
    /// Optional TOML file of settings (`clickhouse_url = "…"`, `[kafka] brokers = "…"`, …):
    /// each key is the `PPROFHOUSE_*` variable it stands for, lowercased (tables join with `_`).
    /// Flags win over the environment, which wins over the file.
    #[arg(long, global = true, env = "PPROFHOUSE_CONFIG")]
    pub config: Option<std::path::PathBuf>,
    /// Log format on stderr.
    #[arg(long, global = true, env = "PPROFHOUSE_LOG_FORMAT", default_value = "text")]
    pub log_format: LogFormat,
    /// Log filter (tracing `EnvFilter` syntax), e.g. `info,pprofhouse=debug`.
    #[arg(long, global = true, env = "PPROFHOUSE_LOG", default_value = "warn")]
    pub log: String,
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// Loads the TOML config file named by `--config FILE` / `PPROFHOUSE_CONFIG` into the
/// environment (never overriding a variable already set), before the flags are parsed.
pub fn apply_config_file() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let path = args
        .iter()
        .position(|a| a == "--config")
        .and_then(|i| args.get(i + 1).cloned())
        .or_else(|| args.iter().find_map(|a| a.strip_prefix("--config=").map(str::to_string)))
        .or_else(|| std::env::var("PPROFHOUSE_CONFIG").ok());
    let Some(path) = path else { return Ok(()) };
    let text = std::fs::read_to_string(&path).map_err(|e| anyhow::anyhow!("config file {path}: {e}"))?;
    let table: toml::Table = text.parse().map_err(|e| anyhow::anyhow!("config file {path}: {e}"))?;
    for (name, value) in flatten_toml("", &table) {
        let var = if name.starts_with("aws_") { name.to_uppercase() } else { format!("PPROFHOUSE_{}", name.to_uppercase()) };
        if std::env::var_os(&var).is_none() {
            // Single-threaded here: no runtime or thread has started yet.
            std::env::set_var(&var, value);
        }
    }
    Ok(())
}

fn flatten_toml(prefix: &str, table: &toml::Table) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (k, v) in table {
        let key = if prefix.is_empty() { k.replace('-', "_") } else { format!("{prefix}_{}", k.replace('-', "_")) };
        match v {
            toml::Value::Table(t) => out.extend(flatten_toml(&key, t)),
            toml::Value::String(s) => out.push((key, s.clone())),
            toml::Value::Array(a) => out.push((key, a.iter().map(|x| x.as_str().map(str::to_string).unwrap_or_else(|| x.to_string())).collect::<Vec<_>>().join(","))),
            other => out.push((key, other.to_string())),
        }
    }
    out
}

pub fn init_tracing(args: &LogArgs) {
    let filter = tracing_subscriber::EnvFilter::try_new(&args.log).unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter).with_writer(std::io::stderr);
    match args.log_format {
        LogFormat::Text => builder.init(),
        LogFormat::Json => builder.json().init(),
    }
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Per-function flat/cum for every sample type of each FILE (one row per sample type × function).
    Explode(files::ExplodeArgs),
    /// The top functions, like `go tool pprof -top`, over FILEs (summed like a pprof merge).
    Top(files::TopArgs),
    /// Create or upgrade the ClickHouse schema (idempotent).
    Migrate(db::MigrateArgs),
    /// Load local profile files straight into ClickHouse (the worker's path without Kafka/S3).
    Load(db::LoadArgs),
    /// Upload profiles to S3 under profefe keys (and write the S3 event they trigger).
    Put(put::PutArgs),
    /// Consume the profiles topic: S3 → explode → ClickHouse, with dead letters and metrics.
    Worker(pprofhouse_transform::worker::WorkerConfig),
    #[command(flatten)]
    Ingest(pprofhouse_ingest::cli::IngestCommand),
}

/// Decoding limits shared by every command that reads profiles.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest decompressed profile accepted, in bytes.
    #[arg(long, env = "PPROFHOUSE_MAX_DECOMPRESSED_BYTES", default_value_t = 256 << 20)]
    pub max_decompressed_bytes: usize,
}

impl LimitArgs {
    pub fn limits(&self) -> pprofhouse_transform::pprof::Limits {
        pprofhouse_transform::pprof::Limits { max_decompressed_bytes: self.max_decompressed_bytes }
    }
}

pub fn run(cli: Cli) -> anyhow::Result<ExitCode> {
    match cli.command {
        Command::Explode(a) => files::explode(a),
        Command::Top(a) => files::top(a),
        Command::Migrate(a) => db::migrate(a),
        Command::Load(a) => db::load(a),
        Command::Put(a) => put::put(a),
        Command::Worker(c) => {
            db::runtime()?.block_on(pprofhouse_transform::worker::run(c))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Ingest(c) => {
            db::runtime()?.block_on(c.run())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The Lambda `bootstrap` entry: the `lambda` command with settings from the environment.
pub fn run_bootstrap() -> ExitCode {
    init_tracing(&LogArgs { config: None, log_format: LogFormat::Json, log: std::env::var("PPROFHOUSE_LOG").unwrap_or_else(|_| "info".into()) });
    let result = pprofhouse_ingest::cli::lambda_from_env()
        .map_err(anyhow::Error::from)
        .and_then(|cmd| db::runtime()?.block_on(cmd.run()));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("pprofhouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

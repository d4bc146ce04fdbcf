//! Command-line interface: flags (+ `PPROFHOUSE_*` env) → one call into the library per command.
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand, ValueEnum};

mod db;
mod files;

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
        Command::Ingest(c) => {
            db::runtime()?.block_on(c.run())?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// The Lambda `bootstrap` entry: the `lambda` command with settings from the environment.
pub fn run_bootstrap() -> ExitCode {
    init_tracing(&LogArgs { log_format: LogFormat::Json, log: std::env::var("PPROFHOUSE_LOG").unwrap_or_else(|_| "info".into()) });
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

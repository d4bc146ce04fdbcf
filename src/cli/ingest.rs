//! The ingest commands: `lambda`, `ingest-event`, `backfill` — S3 objects onto the profiles topic.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use chrono::{DateTime, Utc};
use clap::Args;
use pprofhouse_ingest::backfill::{backfill as run_backfill, default_checkpoint_path, parse_time_arg, BackfillOptions};
use pprofhouse_ingest::handler::{run_lambda, Ingestor};
use pprofhouse_ingest::Producer;
use serde::Serialize;

use super::flags::{BackfillFlags, KafkaFlags, LayoutFlags, S3Flags};
use super::settings::Settings;
use super::{init_tracing, runtime, LogFormat};

/// Settings sections common to the ingest commands.
#[derive(Debug, Args, Serialize)]
pub struct IngestFlags {
    #[command(flatten)]
    pub kafka: KafkaFlags,
    #[command(flatten)]
    pub s3: S3Flags,
    #[command(flatten)]
    pub layout: LayoutFlags,
}

/// Builds the trigger (producer, resolver, and S3 for HEADs when configured).
/// The SASL secret (`kafka.sasl_secret`) is read here, once: at a Lambda cold start.
async fn ingestor(s: &Settings, source: &str) -> anyhow::Result<(Ingestor, aws_sdk_s3::Client)> {
    s.kafka.check().map_err(anyhow::Error::msg)?;
    let mut kafka = s.kafka.clone();
    pprofhouse_ingest::secrets::resolve(&mut kafka, &s.s3.region).await?;
    let producer = Producer::new(&kafka).context("creating the Kafka producer")?;
    let s3 = s.s3.client().await;
    let mut ingestor = Ingestor::new(producer, s.layout.resolver()?, source);
    if s.layout.head_objects {
        ingestor = ingestor.with_s3(s3.clone());
    }
    Ok((ingestor, s3))
}

#[derive(Debug, Args)]
pub struct LambdaArgs {
    #[command(flatten)]
    pub settings: IngestFlags,
}

#[derive(Debug, Args)]
pub struct IngestEventArgs {
    /// S3 event JSON (`{"Records":[...]}`), `-` for stdin.
    pub file: PathBuf,
    #[command(flatten)]
    pub settings: IngestFlags,
}

#[derive(Debug, Args)]
pub struct BackfillArgs {
    /// Only keys with this prefix.
    #[arg(long)]
    pub prefix: Option<String>,
    /// Only objects modified at or after: RFC 3339, YYYY-MM-DD, unix seconds, or a duration ago (24h, 7d).
    #[arg(long, value_parser = parse_time_arg)]
    pub since: Option<DateTime<Utc>>,
    /// Only objects modified before (same forms as --since).
    #[arg(long, value_parser = parse_time_arg)]
    pub until: Option<DateTime<Utc>>,
    /// Ignore the checkpoint: enqueue everything that matches again.
    #[arg(long)]
    pub force: bool,
    /// No progress bar (it is only drawn on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub settings: BackfillSettingsFlags,
}

/// The sections `backfill` reads.
#[derive(Debug, Args, Serialize)]
pub struct BackfillSettingsFlags {
    #[command(flatten)]
    #[serde(flatten)]
    pub ingest: IngestFlags,
    #[command(flatten)]
    pub backfill: BackfillFlags,
}

/// True when the process was started under the name `bootstrap`, as a Lambda custom runtime
/// (`provided.al2023`) starts its executable.
pub fn invoked_as_bootstrap() -> bool {
    std::env::args_os().next().and_then(|a| Path::new(&a).file_name().map(|n| n == "bootstrap")).unwrap_or(false)
}

/// The Lambda `bootstrap` entry: `lambda` with its settings from the environment (and
/// `PPROFHOUSE_CONFIG`, if set).
pub fn run_bootstrap() -> ExitCode {
    init_tracing(LogFormat::Json, &std::env::var("PPROFHOUSE_LOG").unwrap_or_else(|_| "info".into()));
    #[derive(clap::Parser)]
    struct Bootstrap {
        #[command(flatten)]
        args: LambdaArgs,
    }
    let config = std::env::var_os("PPROFHOUSE_CONFIG").map(PathBuf::from);
    let result = <Bootstrap as clap::Parser>::try_parse_from(["bootstrap"])
        .map_err(anyhow::Error::from)
        .and_then(|b| lambda(b.args, config.as_deref()));
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pprofhouse: {}", super::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

pub fn lambda(a: LambdaArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = Settings::load(config, &a.settings)?;
    runtime()?.block_on(async {
        let (ingestor, _) = ingestor(&s, "lambda").await?;
        run_lambda(ingestor).await.map_err(|e| anyhow::anyhow!(e)).context("lambda runtime")
    })?;
    Ok(ExitCode::SUCCESS)
}

pub fn ingest_event(a: IngestEventArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = Settings::load(config, &a.settings)?;
    let bytes = if a.file.as_os_str() == "-" {
        let mut b = Vec::new();
        std::io::Read::read_to_end(&mut std::io::stdin(), &mut b).context("reading stdin")?;
        b
    } else {
        std::fs::read(&a.file).with_context(|| format!("reading {}", a.file.display()))?
    };
    let event: aws_lambda_events::s3::S3Event =
        serde_json::from_slice(&bytes).with_context(|| format!("{} is not an S3 event (Records[])", a.file.display()))?;
    let report = runtime()?.block_on(async {
        let (ingestor, _) = ingestor(&s, "ingest-event").await?;
        ingestor.handle_event(&event).await.context("ingest-event failed")
    })?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

pub fn backfill(a: BackfillArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = Settings::load(config, &a.settings)?;
    let bucket = s.s3.bucket.clone().filter(|b| !b.is_empty()).context("--bucket (or PPROFHOUSE_S3_BUCKET) is required")?;
    let opts = BackfillOptions {
        bucket,
        prefix: a.prefix,
        since: a.since,
        until: a.until,
        rate: Some(s.backfill.rate).filter(|r| *r > 0.0),
        checkpoint: Some(s.backfill.checkpoint.clone().unwrap_or_else(default_checkpoint_path)),
        force: a.force,
        page_size: 1000,
        progress: !a.no_progress,
    };
    let report = runtime()?.block_on(async {
        let (ingestor, s3) = ingestor(&s, "backfill").await?;
        run_backfill(&s3, &ingestor, &opts).await.context("backfill failed")
    })?;
    eprintln!(
        "backfill s3://{}/{}: {} enqueued, {} dead-lettered, {} filtered, {} listed{}",
        opts.bucket,
        opts.prefix.as_deref().unwrap_or(""),
        report.enqueued,
        report.dead_lettered,
        report.filtered,
        report.listed,
        report.resumed_after.as_ref().map(|k| format!(" (resumed after {k:?})")).unwrap_or_default()
    );
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::super::{Cli, Command};

    #[test]
    fn subcommands_parse() {
        let c = Cli::try_parse_from([
            "pprofhouse",
            "backfill",
            "--bucket",
            "b",
            "--prefix",
            "P0.",
            "--since",
            "2024-01-01",
            "--kafka-brokers",
            "h:1",
            "--force",
        ])
        .unwrap();
        let Command::Backfill(a) = c.command else { panic!() };
        assert_eq!(a.settings.ingest.s3.bucket.as_deref(), Some("b"));
        assert!(a.force);
        assert!(a.since.is_some());
        let c = Cli::try_parse_from(["pprofhouse", "ingest-event", "ev.json", "--kafka-brokers", "h:1"]).unwrap();
        assert!(matches!(c.command, Command::IngestEvent(_)));
        assert!(Cli::try_parse_from(["pprofhouse", "lambda", "--kafka-brokers", "h:1"]).is_ok());
    }
}

//! The ingest subcommands of the `pprofhouse` binary: `lambda`, `ingest-event`, `backfill`.
//! The binary flattens [`IngestCommand`] into its own subcommands and calls [`IngestCommand::run`].
use std::path::PathBuf;

use anyhow::Context;
use chrono::{DateTime, Utc};

use crate::backfill::{backfill, default_checkpoint_path, parse_time_arg, BackfillOptions};
use crate::config::{KafkaConfig, LayoutConfig, S3Config};
use crate::handler::{run_lambda, Ingestor};
use crate::producer::Producer;

/// Ingest subcommands.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum IngestCommand {
    /// Run the S3 ObjectCreated trigger under the AWS Lambda runtime (the function's `bootstrap`).
    Lambda(LambdaArgs),
    /// Run the trigger once on an S3 event JSON file (`-`: stdin) against the configured broker;
    /// prints what it did as JSON.
    IngestEvent(IngestEventArgs),
    /// Enqueue the objects already in a bucket, as the trigger would (resumable).
    Backfill(BackfillArgs),
}

/// Settings common to the ingest commands.
#[derive(clap::Args, Debug, Clone)]
pub struct CommonArgs {
    #[command(flatten)]
    pub kafka: KafkaConfig,
    #[command(flatten)]
    pub s3: S3Config,
    #[command(flatten)]
    pub layout: LayoutConfig,
}

impl CommonArgs {
    async fn ingestor(&self, source: &str) -> anyhow::Result<(Ingestor, aws_sdk_s3::Client)> {
        let producer = Producer::new(&self.kafka).context("creating the Kafka producer")?;
        let s3 = self.s3.client().await;
        let mut ingestor = Ingestor::new(producer, self.layout.resolver(), source);
        if self.layout.head_objects {
            ingestor = ingestor.with_s3(s3.clone());
        }
        Ok((ingestor, s3))
    }
}

#[derive(clap::Args, Debug, Clone)]
pub struct LambdaArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(clap::Args, Debug, Clone)]
pub struct IngestEventArgs {
    /// S3 event JSON (`{"Records":[...]}`), `-` for stdin.
    pub file: PathBuf,
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(clap::Args, Debug, Clone)]
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
    /// Objects per second (0: unlimited).
    #[arg(long, env = "PPROFHOUSE_BACKFILL_RATE", default_value_t = 1000.0)]
    pub rate: f64,
    /// Checkpoint file [default: $PPROFHOUSE_CACHE/backfill-checkpoint.json].
    #[arg(long, env = "PPROFHOUSE_BACKFILL_CHECKPOINT")]
    pub checkpoint: Option<PathBuf>,
    /// Ignore the checkpoint: enqueue everything that matches again.
    #[arg(long)]
    pub force: bool,
    /// No progress bar (it is only drawn on a terminal anyway).
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    pub common: CommonArgs,
}

/// True when the process was started under the name `bootstrap`, as a Lambda custom runtime
/// (`provided.al2023`) starts its executable: the binary should then run [`lambda_from_env`].
pub fn invoked_as_bootstrap() -> bool {
    std::env::args_os()
        .next()
        .and_then(|a| {
            std::path::Path::new(&a)
                .file_name()
                .map(|n| n == "bootstrap")
        })
        .unwrap_or(false)
}

/// `pprofhouse lambda` with its settings from the environment only (for a `bootstrap` start).
pub fn lambda_from_env() -> Result<IngestCommand, clap::Error> {
    #[derive(clap::Parser)]
    struct Bootstrap {
        #[command(flatten)]
        args: LambdaArgs,
    }
    <Bootstrap as clap::Parser>::try_parse_from(["bootstrap"])
        .map(|b| IngestCommand::Lambda(b.args))
}

impl IngestCommand {
    /// Run the command. Logging is set up by the binary.
    pub async fn run(self) -> anyhow::Result<()> {
        match self {
            IngestCommand::Lambda(a) => {
                let (ingestor, _) = a.common.ingestor("lambda").await?;
                run_lambda(ingestor)
                    .await
                    .map_err(|e| anyhow::anyhow!(e))
                    .context("lambda runtime")
            }
            IngestCommand::IngestEvent(a) => {
                let bytes = if a.file.as_os_str() == "-" {
                    let mut b = Vec::new();
                    std::io::Read::read_to_end(&mut std::io::stdin(), &mut b)
                        .context("reading stdin")?;
                    b
                } else {
                    std::fs::read(&a.file)
                        .with_context(|| format!("reading {}", a.file.display()))?
                };
                let event: aws_lambda_events::s3::S3Event = serde_json::from_slice(&bytes)
                    .with_context(|| {
                        format!("{} is not an S3 event (Records[])", a.file.display())
                    })?;
                let (ingestor, _) = a.common.ingestor("ingest-event").await?;
                let report = ingestor
                    .handle_event(&event)
                    .await
                    .context("ingest-event failed")?;
                println!("{}", serde_json::to_string(&report)?);
                Ok(())
            }
            IngestCommand::Backfill(a) => {
                let bucket = a
                    .common
                    .s3
                    .bucket
                    .clone()
                    .filter(|b| !b.is_empty())
                    .context("--bucket (or PPROFHOUSE_S3_BUCKET) is required")?;
                let (ingestor, s3) = a.common.ingestor("backfill").await?;
                let opts = BackfillOptions {
                    bucket,
                    prefix: a.prefix,
                    since: a.since,
                    until: a.until,
                    rate: Some(a.rate).filter(|r| *r > 0.0),
                    checkpoint: Some(a.checkpoint.unwrap_or_else(default_checkpoint_path)),
                    force: a.force,
                    page_size: 1000,
                    progress: !a.no_progress,
                };
                let report = backfill(&s3, &ingestor, &opts)
                    .await
                    .context("backfill failed")?;
                eprintln!(
                    "backfill s3://{}/{}: {} enqueued, {} dead-lettered, {} filtered, {} listed{}",
                    opts.bucket,
                    opts.prefix.as_deref().unwrap_or(""),
                    report.enqueued,
                    report.dead_lettered,
                    report.filtered,
                    report.listed,
                    report
                        .resumed_after
                        .as_ref()
                        .map(|k| format!(" (resumed after {k:?})"))
                        .unwrap_or_default()
                );
                println!("{}", serde_json::to_string(&report)?);
                Ok(())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Cmd,
    }
    #[derive(clap::Subcommand)]
    enum Cmd {
        #[command(flatten)]
        Ingest(IngestCommand),
    }

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
        let Cmd::Ingest(IngestCommand::Backfill(a)) = c.cmd else {
            panic!()
        };
        assert_eq!(a.common.s3.bucket.as_deref(), Some("b"));
        assert!(a.force);
        assert!(a.since.is_some());
        let c = Cli::try_parse_from([
            "pprofhouse",
            "ingest-event",
            "ev.json",
            "--kafka-brokers",
            "h:1",
        ])
        .unwrap();
        assert!(matches!(c.cmd, Cmd::Ingest(IngestCommand::IngestEvent(_))));
        assert!(Cli::try_parse_from(["pprofhouse", "lambda", "--kafka-brokers", "h:1"]).is_ok());
    }
}

//! # pprofhouse
//!
//! pprof profiles in S3 → per-function time series in ClickHouse. This binary owns every flag
//! and command and hands the libraries typed configuration:
//!
//! - `pprofhouse-transform` (`transform/`): decode and explode a profile, pure.
//! - `pprofhouse-sql` (`sql/`): migrations, queries and the sink.
//! - `pprofhouse-ingest` (`ingest/`) and `pprofhouse-message` (`ingest/message/`): S3 events,
//!   key layouts, the Kafka producer, backfill, the Lambda, and the messages they write.
//! - [`worker`]: the consumer that ties them together (Kafka → S3 → transform → ClickHouse).
//!
//! Commands are in [`cli`]; settings come from flags over `PPROFHOUSE_*` variables over a TOML
//! file ([`cli::settings`]).
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod report;
mod worker;

fn main() -> ExitCode {
    // Deployed as an AWS Lambda `bootstrap` (provided.al2023): run the trigger, settings from env.
    if cli::invoked_as_bootstrap() {
        return cli::run_bootstrap();
    }
    let args = cli::Cli::parse();
    cli::init_tracing(args.global.log_format, &args.global.log);
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pprofhouse: {e:#}");
            ExitCode::FAILURE
        }
    }
}

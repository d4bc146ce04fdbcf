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
//! - [`serve`]: profefe's HTTP API over ClickHouse and S3 (`go tool pprof` reads merged profiles).
//!
//! Commands are in [`cli`]; settings come from flags over `PPROFHOUSE_*` variables over a TOML
//! file ([`cli::settings`]).
use std::process::ExitCode;

use clap::Parser;

mod cli;
mod report;
mod serve;
mod worker;

/// mimalloc, not glibc's malloc: the worker allocates and frees profile-sized buffers on many
/// threads, and glibc keeps per-thread arenas and a heap top that grow with them (measured
/// draining production-size profiles: 491 MiB peak RSS with glibc, see the README).
#[global_allocator]
static ALLOC: mimalloc::MiMalloc = mimalloc::MiMalloc;

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

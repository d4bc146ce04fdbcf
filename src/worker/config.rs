//! The worker's settings (`[worker]`) and its command line.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::retry::RetryPolicy;

/// `[worker]`: the consumer, its parallelism, and its retry policy.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Config {
    /// Consumer group.
    pub group: String,
    /// Objects fetched and exploded concurrently.
    pub concurrency: usize,
    /// Largest object fetched from S3, in bytes (larger ones are dead-lettered).
    pub max_object_bytes: u64,
    /// Serve Prometheus `/metrics`, `/healthz` (liveness) and `/readyz` here.
    pub metrics_addr: Option<String>,
    /// Longest pause between retries of a transient failure.
    #[serde(with = "humantime_serde")]
    pub max_backoff: Duration,
    /// Retries of one transient failure before the worker gives up on it: an object is
    /// dead-lettered (`retries_exhausted`); a batch insert raises the alarm (liveness fails,
    /// `stalled` metric) and keeps trying.
    pub retry_budget: usize,
    /// In-flight memory budget, in bytes of decoded profile: profiles wait for their share
    /// before they are inflated, decoded and exploded.
    pub max_inflight_bytes: u64,
    /// Decode buffers kept from one profile for the next, in bytes in all (0: none kept): the
    /// next profiles decode into memory already written instead of faulting in fresh pages.
    pub decode_pool_bytes: u64,
    /// Liveness fails when no message has been handled for this long while there is lag.
    #[serde(with = "humantime_serde")]
    pub stall_after: Duration,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            group: "pprofhouse-worker".into(),
            concurrency: 16,
            max_object_bytes: 64 << 20,
            metrics_addr: None,
            max_backoff: Duration::from_secs(30),
            retry_budget: 8,
            max_inflight_bytes: 64 << 20,
            decode_pool_bytes: 32 << 20,
            stall_after: Duration::from_secs(300),
        }
    }
}

impl Config {
    /// The retry policy these settings describe.
    pub fn retry(&self) -> RetryPolicy {
        RetryPolicy { min_delay: Duration::from_millis(100).min(self.max_backoff), max_delay: self.max_backoff, budget: self.retry_budget }
    }
}

/// The worker command's flags.
pub mod cli {
    use clap::Args;

    use super::*;
    use crate::cli::flags::{ClickHouseFlags, KafkaFlags, LayoutFlags, LimitFlags, RetentionFlags, S3Flags, SinkFlags, WorkerFlags};
    use crate::cli::settings::Settings;

    /// `pprofhouse worker`.
    #[derive(Debug, Args)]
    pub struct WorkerArgs {
        /// Exit 0 once nothing arrived for this long and everything is flushed and committed
        /// (tests, cron-style runs, backfills). Without it the worker runs until SIGTERM/SIGINT.
        #[arg(long, value_parser = humantime::parse_duration)]
        pub until_idle: Option<Duration>,
        #[command(flatten)]
        pub settings: WorkerSettingsFlags,
    }

    /// The sections the worker reads.
    #[derive(Debug, Args, Serialize)]
    pub struct WorkerSettingsFlags {
        #[command(flatten)]
        worker: WorkerFlags,
        #[command(flatten)]
        kafka: KafkaFlags,
        #[command(flatten)]
        s3: S3Flags,
        #[command(flatten)]
        layout: LayoutFlags,
        #[command(flatten)]
        clickhouse: ClickHouseFlags,
        #[command(flatten)]
        sink: SinkFlags,
        #[command(flatten)]
        limits: LimitFlags,
        #[command(flatten)]
        retention: RetentionFlags,
    }

    /// How long the exit waits for work left on the blocking pool.
    const SHUTDOWN_BLOCKING_WAIT: Duration = Duration::from_secs(5);

    /// Runs the worker until SIGTERM/SIGINT (or idle).
    pub fn run(a: WorkerArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
        let s = Settings::load(config, &a.settings)?;
        let options = super::super::Options {
            worker: s.worker,
            kafka: s.kafka,
            s3: s.s3,
            layout: s.layout,
            clickhouse: s.clickhouse,
            sink: s.sink,
            limits: s.limits,
            retention: s.retention,
            until_idle: a.until_idle,
        };
        let rt = crate::cli::runtime()?;
        let done = rt.block_on(super::super::run(options));
        // Work still running on the blocking pool (a profile whose partition was revoked, or
        // that was in flight at shutdown) is bounded by `[limits]`; never wait on it for long.
        rt.shutdown_timeout(SHUTDOWN_BLOCKING_WAIT);
        done?;
        Ok(ExitCode::SUCCESS)
    }
}

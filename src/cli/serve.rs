//! `pprofhouse serve`: profefe's HTTP API over ClickHouse and S3 (see [`crate::serve`]).
use std::path::Path;
use std::process::ExitCode;

use clap::Args;
use serde::Serialize;

use super::flags::{ClickHouseFlags, LimitFlags, S3Flags, ServeFlags};
use super::runtime;
use super::settings::Settings;

#[derive(Debug, Args, Serialize)]
pub struct ServeArgs {
    #[command(flatten)]
    pub serve: ServeFlags,
    #[command(flatten)]
    pub clickhouse: ClickHouseFlags,
    #[command(flatten)]
    pub s3: S3Flags,
    #[command(flatten)]
    pub limits: LimitFlags,
}

pub fn serve(a: ServeArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = Settings::load(config, &a)?;
    let rt = runtime()?;
    rt.block_on(async {
        let state = crate::serve::AppState {
            clickhouse: s.clickhouse.client(),
            s3: s.s3.client().await,
            bucket: s.s3.bucket.clone(),
            limits: s.limits,
            config: s.serve.clone(),
            report: s.report.clone(),
        };
        crate::serve::run(state).await
    })?;
    Ok(ExitCode::SUCCESS)
}

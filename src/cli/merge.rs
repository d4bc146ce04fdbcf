//! `pprofhouse merge`: one pprof profile rebuilt from ClickHouse — the stored stacks of every
//! profile of a type in a window (one service, some labels), summed, with the header pprof's
//! own merge would give (see `pprofhouse_sql::query::merge`). `go tool pprof` reads the file as
//! it reads the merged sources.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use pprofhouse_sql::query::merge::{merged_profile, MergeQuery};
use pprofhouse_transform::pprof::encode::encode_gzip;
use serde::Serialize;

use super::flags::ClickHouseFlags;
use super::settings::Settings;
use super::{now_ms, runtime, SelectionFlags};

#[derive(Debug, Args)]
pub struct MergeArgs {
    /// Profile type to merge (cpu, heap, …).
    #[arg(long = "type")]
    pub profile_type: String,
    /// Window ending now, e.g. `24h`, `7d`.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with_all = ["from", "to"], required_unless_present = "from")]
    pub since: Option<std::time::Duration>,
    #[command(flatten)]
    pub select: SelectionFlags,
    /// Most distinct stacks the merged profile may hold (more: an error asking for a narrower
    /// selection).
    #[arg(long, env = "PPROFHOUSE_MAX_MERGE_STACKS", default_value_t = 5_000_000)]
    pub max_stacks: u64,
    /// Output file (gzip-compressed profile.proto; `-`: stdout).
    #[arg(short = 'o', long = "output")]
    pub output: PathBuf,
    #[command(flatten)]
    pub clickhouse: ClickHouseFlags,
}

#[derive(Serialize)]
struct MergeSettings<'a> {
    clickhouse: &'a ClickHouseFlags,
}

pub fn merge(a: MergeArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = Settings::load(config, &MergeSettings { clickhouse: &a.clickhouse })?;
    let q = MergeQuery {
        profile_type: a.profile_type.clone(),
        window: a.select.window(a.since, now_ms() + 1)?,
        service: a.select.service.clone(),
        labels: a.select.labels.clone(),
        max_stacks: a.max_stacks,
    };
    let parts = runtime()?.block_on(merged_profile(&s.clickhouse.client(), &q))?;
    let Some(parts) = parts else {
        bail!(
            "no {} profiles in that window{}",
            q.profile_type,
            q.service.as_deref().map(|s| format!(" for service {s}")).unwrap_or_default()
        );
    };
    let bytes = encode_gzip(&parts);
    if a.output.as_os_str() == "-" {
        use std::io::Write;
        std::io::stdout().lock().write_all(&bytes)?;
    } else {
        std::fs::write(&a.output, &bytes).with_context(|| format!("writing {}", a.output.display()))?;
        eprintln!("wrote {} ({} stacks, {} bytes)", a.output.display(), parts.stacks.len(), bytes.len());
    }
    Ok(ExitCode::SUCCESS)
}

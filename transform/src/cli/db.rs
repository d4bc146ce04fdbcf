//! Commands that talk to ClickHouse: `migrate`, `load`, and `top` without files.
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use pprofhouse_sql::{RenderOptions, Retention};
use pprofhouse_transform::explode::sort_rows;
use pprofhouse_transform::report::{write_top_table, write_top_tsv, TopEntry};
use pprofhouse_transform::store::query::{self, TopQuery, Window};
use pprofhouse_transform::store::sink::{ProfileMeta, ProfileRecord, Sink, SinkConfig};
use pprofhouse_transform::store::{migrate as run_migrate, ClickHouseConfig};
use pprofhouse_transform::{explode, pprof, ExplodeOptions, FunctionRow};

use super::files::{TopArgs, TopFormat};
use super::LimitArgs;

pub fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    Ok(tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?)
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub clickhouse: ClickHouseConfig,
    /// Render `ON CLUSTER NAME`, Replicated* engines, `_local` tables and Distributed tables.
    #[arg(long, env = "PPROFHOUSE_CLICKHOUSE_CLUSTER")]
    pub cluster: Option<String>,
    /// Retention of `profiles`, in days.
    #[arg(long, env = "PPROFHOUSE_TTL_PROFILES_DAYS", default_value_t = Retention::default().profiles_days)]
    pub ttl_profiles_days: u32,
    /// Retention of the raw tables (`function_values`, `stacks`, `stack_values`), in days.
    #[arg(long, env = "PPROFHOUSE_TTL_RAW_DAYS", default_value_t = Retention::default().raw_days)]
    pub ttl_raw_days: u32,
    /// Retention of the hourly rollup, in days.
    #[arg(long, env = "PPROFHOUSE_TTL_HOURLY_DAYS", default_value_t = Retention::default().hourly_days)]
    pub ttl_hourly_days: u32,
    /// Retention of the daily rollup, in days.
    #[arg(long, env = "PPROFHOUSE_TTL_DAILY_DAYS", default_value_t = Retention::default().daily_days)]
    pub ttl_daily_days: u32,
}

pub fn migrate(a: MigrateArgs) -> anyhow::Result<ExitCode> {
    let opts = RenderOptions {
        database: a.clickhouse.database.clone(),
        cluster: a.cluster.clone(),
        retention: Retention { profiles_days: a.ttl_profiles_days, raw_days: a.ttl_raw_days, hourly_days: a.ttl_hourly_days, daily_days: a.ttl_daily_days },
    };
    let applied = runtime()?.block_on(run_migrate::migrate(&a.clickhouse, &opts))?;
    if applied.is_empty() {
        println!("schema up to date");
    }
    for (v, name) in applied {
        println!("applied {v:04} {name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// `k=v`.
pub fn parse_label(s: &str) -> Result<(String, String), String> {
    s.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).filter(|(k, _)| !k.is_empty()).ok_or_else(|| format!("expected k=v, got {s:?}"))
}

/// RFC 3339 → ms since the epoch.
pub fn parse_time(s: &str) -> Result<i64, String> {
    let t = time::OffsetDateTime::parse(s, &time::format_description::well_known::Rfc3339).map_err(|e| format!("{s:?}: {e} (want RFC 3339, e.g. 2026-11-22T10:00:00Z)"))?;
    Ok((t.unix_timestamp_nanos() / 1_000_000) as i64)
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    /// Service the profiles belong to.
    #[arg(long)]
    pub service: String,
    /// Profile type (cpu, heap, block, mutex, goroutine, threadcreate, …).
    #[arg(long = "type")]
    pub profile_type: String,
    /// Label `k=v` (repeatable).
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Profile time (RFC 3339); default: the profile's own time.
    #[arg(long, value_parser = parse_time)]
    pub time: Option<i64>,
    #[command(flatten)]
    pub clickhouse: ClickHouseConfig,
    #[command(flatten)]
    pub sink: SinkConfig,
    #[command(flatten)]
    pub limits: LimitArgs,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn load(a: LoadArgs) -> anyhow::Result<ExitCode> {
    let limits = a.limits.limits();
    let rt = runtime()?;
    let mut sink = Sink::new(a.clickhouse.client(), a.sink.clone());
    let mut failed = false;
    let (mut inserted, mut duplicates, mut rows) = (0, 0, 0);
    for path in &a.files {
        let rec = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display())).and_then(|data| {
            let profile = pprof::decode(data.clone(), &limits).with_context(|| path.display().to_string())?;
            let ex = explode(&profile, ExplodeOptions { stacks: a.sink.stacks, inline_marks: false });
            let meta = ProfileMeta {
                service: a.service.clone(),
                profile_type: a.profile_type.clone(),
                labels: a.labels.iter().cloned().collect(),
                time_ms: a.time,
                source: Default::default(),
            };
            Ok(ProfileRecord::new(meta, &data, ex))
        });
        match rec {
            Ok(rec) => sink.push(rec),
            Err(e) => {
                failed = true;
                eprintln!("pprofhouse: {e:#}");
            }
        }
        if sink.should_flush() {
            let s = rt.block_on(sink.flush())?;
            (inserted, duplicates, rows) = (inserted + s.inserted, duplicates + s.duplicates, rows + s.rows);
        }
    }
    let s = rt.block_on(sink.flush())?;
    (inserted, duplicates, rows) = (inserted + s.inserted, duplicates + s.duplicates, rows + s.rows);
    println!("loaded {inserted} profiles ({rows} function rows); {duplicates} already stored");
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// The ClickHouse half of `top`'s flags.
#[derive(Debug, Args)]
pub struct TopDbArgs {
    /// Profile type to query (ClickHouse mode, without FILEs).
    #[arg(long = "type")]
    pub profile_type: Option<String>,
    /// Window ending now, e.g. `24h`, `7d`.
    #[arg(long, value_parser = humantime::parse_duration, conflicts_with_all = ["from", "to"])]
    pub since: Option<std::time::Duration>,
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
    #[command(flatten)]
    pub clickhouse: ClickHouseConfig,
}

pub fn top(args: TopArgs) -> anyhow::Result<ExitCode> {
    let db = &args.db;
    let Some(profile_type) = db.profile_type.clone() else {
        bail!("give FILEs, or --type T with --since D or --from/--to to query ClickHouse");
    };
    let window = match (db.since, db.from, db.to) {
        (Some(d), _, _) => {
            let now = time::OffsetDateTime::now_utc();
            let to = (now.unix_timestamp_nanos() / 1_000_000) as i64 + 1;
            Window { from_ms: to - d.as_millis() as i64, to_ms: to }
        }
        (None, Some(from), Some(to)) => Window { from_ms: from, to_ms: to },
        _ => bail!("--type needs a window: --since D or --from T --to T"),
    };
    let rt = runtime()?;
    let client = db.clickhouse.client();
    let sample_type = match &args.sample_type {
        Some(s) => s.clone(),
        None => rt
            .block_on(query::default_sample_type(&client, &profile_type, window))?
            .with_context(|| format!("no {profile_type} profiles in that window"))?,
    };
    let q = TopQuery {
        profile_type,
        sample_type: sample_type.clone(),
        window,
        service: db.service.clone(),
        labels: db.labels.clone(),
        by_cum: args.cum,
        limit: u32::try_from(args.n).unwrap_or(u32::MAX),
        source: None,
    };
    let (rows, total) = rt.block_on(async { tokio::try_join!(query::top_functions(&client, &q), query::total(&client, &q)) })?;
    let mut fr: Vec<FunctionRow<'_>> =
        rows.iter().map(|r| FunctionRow { sample_type: 0, function: &r.function, flat: r.flat, cum: r.cum, mark: Default::default() }).collect();
    sort_rows(&mut fr, args.cum);
    let entries: Vec<TopEntry> = fr.iter().map(|r| TopEntry { function: r.function.to_vec(), flat: r.flat, cum: r.cum }).collect();
    let unit = sample_type.split_once('/').map(|(_, u)| u).unwrap_or("");
    let mut out = std::io::stdout().lock();
    let r = match args.format {
        TopFormat::Tsv => write_top_tsv(&mut out, &entries),
        TopFormat::Table => write_top_table(&mut out, &sample_type, unit, &entries, total.total, entries.len()),
    };
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => {}
        other => other?,
    }
    Ok(ExitCode::SUCCESS)
}

//! Commands that talk to ClickHouse: `migrate`, `load`, and `top` without files.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use pprofhouse_message::{LayoutKind, ProfileMeta};
use pprofhouse_sql::query::{self, TopQuery, Window};
use pprofhouse_sql::sink::{Origin, ProfileRecord, Sink};
use pprofhouse_sql::RenderOptions;
use pprofhouse_transform::explode::sort_rows;
use pprofhouse_transform::report::{write_top_table, write_top_tsv, TopEntry};
use pprofhouse_transform::{explode, pprof, ExplodeOptions, FunctionRow};
use serde::Serialize;

use super::files::{TopArgs, TopFormat};
use super::flags::{ClickHouseFlags, LimitFlags, RetentionFlags, SinkFlags};
use super::settings::Settings;
use super::{parse_label, parse_time, runtime};

#[derive(Debug, Args, Serialize)]
pub struct MigrateArgs {
    #[command(flatten)]
    pub clickhouse: ClickHouseFlags,
    #[command(flatten)]
    pub retention: RetentionFlags,
}

pub fn migrate(a: MigrateArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = Settings::load(config, &a)?;
    let opts = RenderOptions { database: s.clickhouse.database.clone(), cluster: s.clickhouse.cluster.clone(), retention: s.retention };
    let applied = runtime()?.block_on(pprofhouse_sql::migrate(&s.clickhouse, &opts))?;
    if applied.is_empty() {
        println!("schema up to date");
    }
    for (v, name) in applied {
        println!("applied {v:04} {name}");
    }
    Ok(ExitCode::SUCCESS)
}

/// The settings sections `load` reads.
#[derive(Debug, Args, Serialize)]
pub struct LoadFlags {
    #[command(flatten)]
    pub clickhouse: ClickHouseFlags,
    #[command(flatten)]
    pub sink: SinkFlags,
    #[command(flatten)]
    pub limits: LimitFlags,
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
    pub settings: LoadFlags,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn load(a: LoadArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = Settings::load(config, &a.settings)?;
    let limits = s.limits;
    let rt = runtime()?;
    let mut sink = Sink::new(s.clickhouse.client(), s.sink.clone());
    let mut failed = false;
    let (mut inserted, mut duplicates, mut rows) = (0, 0, 0);
    for path in &a.files {
        let rec = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display())).and_then(|data| {
            let profile = pprof::decode(data.clone(), &limits).with_context(|| path.display().to_string())?;
            let ex = explode(&profile, ExplodeOptions { stacks: s.sink.stacks, inline_marks: false, ..Default::default() });
            // The time: --time, else the profile's own, else now (a fallback value: never
            // part of the profile's id, so loading the file again changes nothing).
            let ms = a
                .time
                .or((ex.facts.time_nanos > 0).then_some(ex.facts.time_nanos / 1_000_000))
                .unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
            let meta = ProfileMeta {
                service: a.service.clone(),
                profile_type: a.profile_type.clone(),
                labels: a.labels.iter().cloned().collect(),
                created_at: chrono::DateTime::from_timestamp_millis(ms).context("profile time out of range")?,
                layout: LayoutKind::Given,
            };
            Ok(ProfileRecord::new(meta, Origin::File { content: &data, time_given: a.time.is_some() }, ex))
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
    pub clickhouse: ClickHouseFlags,
}

/// The settings sections `top` reads from ClickHouse.
#[derive(Serialize)]
struct TopSettings<'a> {
    clickhouse: &'a ClickHouseFlags,
}

pub fn top(args: TopArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let db = &args.db;
    let s = Settings::load(config, &TopSettings { clickhouse: &db.clickhouse })?;
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
    let client = s.clickhouse.client();
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
    let mut fr: Vec<FunctionRow<'_>> = rows
        .iter()
        .map(|r| FunctionRow { sample_type: 0, function: &r.function, flat: r.flat, cum: r.cum, mark: Default::default() })
        .collect();
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

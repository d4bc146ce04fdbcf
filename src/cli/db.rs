//! Commands that talk to ClickHouse: `migrate`, `load`, and `top` without files.
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use pprofhouse_message::{LayoutKind, ProfileMeta};
use pprofhouse_sql::query::{self, TopQuery};
use pprofhouse_sql::sink::{Batch, FlushStats, Origin, ProfileRecord, Writer};
use pprofhouse_sql::{RenderOptions, Retention};
use pprofhouse_transform::explode::sort_rows;
use pprofhouse_transform::report::{write_top_table, write_top_tsv, TopEntry};
use pprofhouse_transform::{explode, pprof, ExplodeOptions, FunctionRow};
use serde::Serialize;

use super::files::{TopArgs, TopFormat};
use super::flags::{ClickHouseFlags, LimitFlags, RetentionFlags, SinkFlags};
use super::settings::Settings;
use super::{now_ms, runtime, ProfileArgs, SelectionFlags};

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
    #[command(flatten)]
    pub retention: RetentionFlags,
}

#[derive(Debug, Args)]
pub struct LoadArgs {
    #[command(flatten)]
    pub profile: ProfileArgs,
    #[command(flatten)]
    pub settings: LoadFlags,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

pub fn load(a: LoadArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let s = Settings::load(config, &a.settings)?;
    let limits = s.limits;
    let rt = runtime()?;
    let writer = Writer::new(s.clickhouse.client(), s.sink.clone()).with_cluster(s.clickhouse.cluster.clone());
    rt.block_on(crate::worker::require_schema(&s.clickhouse))?;
    let now_ms = chrono::Utc::now().timestamp_millis();
    let mut batch: Batch<&Path> = Batch::default();
    let mut failed = false;
    let mut total = FlushStats::default();
    for path in &a.files {
        let rec = std::fs::read(path).with_context(|| format!("{}: cannot read", path.display())).and_then(|data| {
            let profile = pprof::decode(data.clone(), &limits).with_context(|| path.display().to_string())?;
            let ex = explode(&profile, ExplodeOptions { stacks: s.sink.stacks, inline_marks: false, ..Default::default() });
            // The time: --time, else the profile's own, else now (a fallback value: never
            // part of the profile's id, so loading the file again changes nothing).
            let ms = a.profile.time.or((ex.facts.time_nanos > 0).then_some(ex.facts.time_nanos / 1_000_000)).unwrap_or(now_ms);
            let meta = ProfileMeta {
                service: a.profile.service.clone(),
                profile_type: a.profile.profile_type.clone(),
                labels: a.profile.labels.iter().cloned().collect(),
                created_at: chrono::DateTime::from_timestamp_millis(ms).context("profile time out of range")?,
                layout: LayoutKind::Given,
            };
            check_retention(path, &s.retention, &meta, now_ms)?;
            Ok(ProfileRecord::new(meta, Origin::File { content: &data, time_given: a.profile.time.is_some() }, ex))
        });
        match rec {
            Ok(rec) => batch.push(rec, path.as_path()),
            Err(e) => {
                failed = true;
                eprintln!("pprofhouse: {}", super::one_line(&e));
            }
        }
        if batch.should_flush(&s.sink) {
            failed |= write_batch(&rt, &writer, batch.take(), &mut total)?;
        }
    }
    failed |= write_batch(&rt, &writer, batch.take(), &mut total)?;
    println!("loaded {} profiles ({} function rows); {} already stored", total.inserted, total.rows, total.duplicates);
    Ok(if failed { ExitCode::FAILURE } else { ExitCode::SUCCESS })
}

/// A profile no table keeps is an error; one whose raw rows a TTL already dropped is loaded
/// with a warning naming the retention that drops it.
fn check_retention(path: &Path, retention: &Retention, meta: &ProfileMeta, now_ms: i64) -> anyhow::Result<()> {
    let ts = meta.created_at.timestamp_millis();
    let expired = retention.expired_for(ts, now_ms);
    let at = meta.created_at.to_rfc3339();
    if retention.all_expired(ts, now_ms) {
        bail!(
            "{}: profile time {at} is older than every retention window (daily rollup: {} days); nothing of it would be visible",
            path.display(),
            retention.daily_days
        );
    }
    if !expired.is_empty() {
        let what: Vec<String> = expired.iter().map(|(t, d)| format!("{t} ({d} days)")).collect();
        eprintln!("pprofhouse: {}: profile time {at} is past the retention of {}: those will not show it", path.display(), what.join(", "));
    }
    Ok(())
}

/// Writes a batch. A transient failure is an error (nothing is lost: run `load` again); a
/// permanent one is isolated to the files ClickHouse refuses, one line each, and the rest is
/// stored. Returns whether some file failed.
fn write_batch(rt: &tokio::runtime::Runtime, writer: &Writer, batch: Batch<&Path>, total: &mut FlushStats) -> anyhow::Result<bool> {
    let add = |total: &mut FlushStats, s: FlushStats| {
        total.inserted += s.inserted;
        total.duplicates += s.duplicates;
        total.rows += s.rows;
    };
    match rt.block_on(writer.write(batch.records())) {
        Ok(s) => {
            add(total, s);
            Ok(false)
        }
        Err(e) if e.is_transient() => {
            // What the attempt wrote before failing is finished by the same batch's retry, or
            // taken back by the next write of any of its files.
            Err(anyhow::Error::new(e).context("nothing of this batch is stored yet (ClickHouse is unavailable or busy); run load again"))
        }
        Err(_) => {
            // A batch can fail after some tables took it: remove that first, then file by file.
            rt.block_on(writer.discard(batch.records())).context("removing the rows of a rejected batch")?;
            let mut failed = false;
            for (rec, path) in batch.records().iter().zip(batch.tags()) {
                match rt.block_on(writer.write(std::slice::from_ref(rec))) {
                    Ok(s) => add(total, s),
                    Err(e) => {
                        failed = true;
                        rt.block_on(writer.discard(std::slice::from_ref(rec))).context("removing the rows of a rejected profile")?;
                        eprintln!("pprofhouse: {}: ClickHouse rejects it: {e}", path.display());
                    }
                }
            }
            Ok(failed)
        }
    }
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
    #[command(flatten)]
    pub select: SelectionFlags,
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
    // (Ending just after now: a profile stored this millisecond counts.)
    let window = db.select.window(db.since, now_ms() + 1).context("--type")?;
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
        service: db.select.service.clone(),
        labels: db.select.labels.clone(),
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

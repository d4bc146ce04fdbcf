//! Synthetic fleet benchmark against the local ClickHouse engine (or `PPROFHOUSE_CLICKHOUSE_URL`).
//!
//! `cargo bench -p pprofhouse-tests --bench fleet -- [--services 1000] [--days 30] [--stacks]`
//!
//! Builds a fleet of hourly CPU profiles, shapes taken from the real fixtures (Go workload and
//! Go service CPU profiles) with values scaled per service and hour, inserts them through the
//! real sink (per batch one `INSERT INTO ingest`, materialized views to the raw tables, and one
//! insert into each rollup), then
//! prints: insert rows/s and profiles/s, bytes per row on disk per table, and the fleet top-10
//! latency over 30 days and over 24 hours (median of 7 runs, each source).
use std::time::{Duration, Instant};

use pprofhouse_message::{LayoutKind, ProfileMeta};
use pprofhouse_sql::query::Source;
use pprofhouse_sql::query::{self, TopQuery, Window};
use pprofhouse_sql::sink::{Origin, ProfileRecord, Sink, SinkConfig};
use pprofhouse_sql::{migrate, ClickHouseConfig, Compression as CompressionKind};
use pprofhouse_tests::clickhouse::LocalClickHouse;
use pprofhouse_tests::paths::fixtures;
use pprofhouse_transform::{explode, pprof, ExplodeOptions, Exploded};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn arg(name: &str, default: i64) -> i64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter().position(|a| a == name).and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn scaled(ex: &Exploded, factor: i64) -> Exploded {
    let mut e = ex.clone();
    e.flat.iter_mut().for_each(|v| *v *= factor);
    e.cum.iter_mut().for_each(|v| *v *= factor);
    e.facts.totals.iter_mut().for_each(|v| *v *= factor);
    e.stacks.values_mut().iter_mut().for_each(|v| *v *= factor);
    e
}

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() -> anyhow::Result<()> {
    if std::env::args().any(|a| a == "--list") {
        return Ok(());
    }
    let services = arg("--services", 1000);
    let days = arg("--days", 30);
    let stacks = std::env::args().any(|a| a == "--stacks");
    let (_local, cfg) = match std::env::var("PPROFHOUSE_CLICKHOUSE_URL") {
        Ok(url) => (
            None,
            ClickHouseConfig {
                url,
                user: std::env::var("PPROFHOUSE_CLICKHOUSE_USER").unwrap_or("default".into()),
                password: std::env::var("PPROFHOUSE_CLICKHOUSE_PASSWORD").unwrap_or_default().into(),
                database: "pprofhouse_fleet_bench".into(),
                compression: if std::env::var("PPROFHOUSE_CLICKHOUSE_COMPRESSION").as_deref() == Ok("lz4") {
                    CompressionKind::Lz4
                } else {
                    CompressionKind::None
                },
                cluster: None,
            },
        ),
        Err(_) => {
            let ch = LocalClickHouse::start()?;
            let cfg = ClickHouseConfig {
                url: ch.url(),
                database: "pprofhouse_fleet_bench".into(),
                compression: CompressionKind::None,
                ..Default::default()
            };
            (Some(ch), cfg)
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build()?;
    rt.block_on(cfg.client_for(None).query("DROP DATABASE IF EXISTS pprofhouse_fleet_bench").execute())?;
    // Raw retention covers the whole fleet window (the default 30 days would expire its first hours).
    let retention = pprofhouse_sql::Retention { raw_days: days as u32 + 2, ..Default::default() };
    rt.block_on(migrate(&cfg, &pprofhouse_sql::RenderOptions { database: cfg.database.clone(), retention, ..Default::default() }))?;

    let shapes: Vec<(Vec<u8>, Exploded)> = ["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"]
        .iter()
        .map(|f| {
            let data = std::fs::read(fixtures().join(f)).unwrap();
            let ex = explode(
                &pprof::decode(data.clone(), &Default::default()).unwrap(),
                ExplodeOptions { stacks, inline_marks: false, ..Default::default() },
            );
            (data, ex)
        })
        .collect();
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let end = now - now % DAY; // today 00:00 UTC: the fleet fills the `days` whole days before it
    let start = end - days * DAY;
    println!("fleet: {services} services × {days} days × hourly CPU profiles = {} profiles (stacks: {stacks})", services * days * 24);

    let client = cfg.client();
    let mut sink = Sink::new(
        client.clone(),
        SinkConfig { batch_rows: 1_000_000, batch_bytes: 256 << 20, linger: Duration::from_secs(3600), stacks, ..Default::default() },
    );
    let t0 = Instant::now();
    let (mut profiles, mut rows) = (0u64, 0u64);
    for h in 0..days * 24 {
        for s in 0..services {
            let (data, shape) = &shapes[(s % 2) as usize];
            let factor = 1 + (s * 7 + h * 13) % 23;
            let meta = ProfileMeta {
                service: format!("svc-{s:04}"),
                profile_type: "cpu".into(),
                labels: [("region".to_string(), format!("r{}", s % 4))].into(),
                created_at: chrono::DateTime::from_timestamp_millis(start + h * HOUR + (s % 3600) * 1000).unwrap(),
                layout: LayoutKind::Given,
            };
            sink.push(ProfileRecord::new(meta, Origin::File { content: data, time_given: true }, scaled(shape, factor)));
            if sink.should_flush() {
                let st = rt.block_on(sink.flush())?;
                profiles += st.inserted as u64;
                rows += st.rows as u64;
            }
        }
    }
    let st = rt.block_on(sink.flush())?;
    profiles += st.inserted as u64;
    rows += st.rows as u64;
    let secs = t0.elapsed().as_secs_f64();
    println!(
        "insert: {profiles} profiles, {rows} function rows in {secs:.1} s = {:.0} rows/s, {:.0} profiles/s",
        rows as f64 / secs,
        profiles as f64 / secs
    );

    rt.block_on(client.query("OPTIMIZE TABLE function_values_hourly FINAL").execute())?;
    rt.block_on(client.query("OPTIMIZE TABLE function_values_daily FINAL").execute())?;
    #[derive(clickhouse::Row, serde::Deserialize, Debug)]
    struct PartStat {
        table: String,
        rows: u64,
        bytes: u64,
    }
    let parts: Vec<PartStat> = rt.block_on(
        client
            .query("SELECT table, sum(rows) AS rows, sum(bytes_on_disk) AS bytes FROM system.parts WHERE database = currentDatabase() AND active GROUP BY table ORDER BY table")
            .fetch_all(),
    )?;
    for p in &parts {
        println!(
            "disk: {:<24} {:>12} rows {:>12} bytes = {:>6.2} bytes/row",
            p.table,
            p.rows,
            p.bytes,
            p.bytes as f64 / p.rows.max(1) as f64
        );
    }

    let q = |from: i64, to: i64, source: Option<Source>| TopQuery {
        profile_type: "cpu".into(),
        sample_type: "cpu/nanoseconds".into(),
        window: Window { from_ms: from, to_ms: to },
        service: None,
        labels: vec![],
        by_cum: false,
        limit: 10,
        source,
    };
    let runs = 7;
    for (label, from, to) in [("30 days", start, end), ("24 hours", end - DAY, end)] {
        let mut reference = None;
        for source in [None, Some(Source::Hourly), Some(Source::Raw)] {
            let query = q(from, to, source);
            let chosen = source.unwrap_or_else(|| query.window.source(false));
            let mut times = Vec::new();
            let mut result = Vec::new();
            for _ in 0..runs {
                let t = Instant::now();
                result = rt.block_on(query::top_functions(&client, &query))?;
                times.push(t.elapsed());
            }
            let m = median(times);
            match &reference {
                None => reference = Some(result.clone()),
                Some(r) => assert_eq!(r, &result, "sources disagree"),
            }
            println!(
                "fleet top-10 over {label:<8} from {:<7} median {:>8.1} ms (of {runs})",
                format!("{chosen:?}"),
                m.as_secs_f64() * 1000.0
            );
        }
    }
    Ok(())
}

#![allow(non_snake_case)]
//! Storage against the real local ClickHouse engine: fixtures loaded as different services and
//! times, then every answer checked against `go tool pprof` or against the files themselves.
use std::collections::HashMap;
use std::path::PathBuf;

use pprofhouse_message::{LayoutKind, ProfileMeta};
use pprofhouse_sql::query::Source;
use pprofhouse_sql::query::{self, DiffSide, TopQuery, Window};
use pprofhouse_sql::sink::{Origin, ProfileRecord, Sink, SinkConfig, Writer};
use pprofhouse_tests::clickhouse::LocalClickHouse;
use pprofhouse_tests::paths::fixtures;
use pprofhouse_tests::pprof::{go_pprof_top, pprofhouse_top, Top};
use pprofhouse_tests::store::{iso, CliStore};
use pprofhouse_transform::{explode, explode_with, pprof, ExplodeOptions};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// Five days before the start of today (UTC): recent enough for every table's TTL.
fn t0() -> i64 {
    let now = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    now - now % DAY - 5 * DAY
}

/// The store, with the storage suite's own helpers.
struct Store(CliStore);

impl std::ops::Deref for Store {
    type Target = CliStore;
    fn deref(&self) -> &CliStore {
        &self.0
    }
}

impl Store {
    fn start() -> Store {
        let s = Store(CliStore::start());
        assert!(s.migrated.contains("applied 0005"), "{}", s.migrated);
        s
    }

    /// Fixtures `files` loaded as `service`'s `ptype` profiles at `time_ms` with `labels`.
    fn load(&self, service: &str, ptype: &str, time_ms: i64, labels: &[&str], files: &[&str]) -> String {
        self.0.load(service, ptype, Some(time_ms), labels, &files.iter().map(|f| fixtures().join(f)).collect::<Vec<_>>())
    }

    fn top(&self, args: &[&str]) -> Top {
        let env = self.env();
        pprofhouse_top(args, &env.iter().map(|(k, v)| (k.as_str(), v.clone())).collect::<Vec<_>>())
    }

    fn count(&self, rt: &tokio::runtime::Runtime, table: &str) -> u64 {
        rt.block_on(self.client().query(&format!("SELECT count() FROM {table}")).fetch_one::<u64>()).unwrap()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn files(names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| fixtures().join(n)).collect()
}

fn window_args(from: i64, to: i64) -> [String; 4] {
    ["--from".into(), iso(from), "--to".into(), iso(to)]
}

#[test]
fn sql_top_equals_go_tool_pprof_over_the_same_files() {
    let T0 = t0();
    let s = Store::start();
    s.load("checkout", "cpu", T0 + 10 * HOUR, &["version=1.2"], &["go-workload-cpu.pb.gz"]);
    s.load("search", "cpu", T0 + 30 * HOUR, &["version=1.3"], &["go-cpu-labels.pb.gz"]);
    s.load("search", "heap", T0 + 30 * HOUR, &[], &["go-heap-2021.pb.gz"]);
    let w = window_args(T0, T0 + 2 * DAY);
    let w: Vec<&str> = w.iter().map(String::as_str).collect();
    for st in ["cpu/nanoseconds", "samples/count"] {
        let mut args = vec!["--type", "cpu", "--sample-type", st];
        args.extend(&w);
        // Fleet: both services.
        assert_eq!(s.top(&args), go_pprof_top(&files(&["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"]), st), "{st}");
        // One service.
        let mut one = args.clone();
        one.extend(["--service", "search"]);
        assert_eq!(s.top(&one), go_pprof_top(&files(&["go-cpu-labels.pb.gz"]), st));
        // A label.
        let mut lab = args.clone();
        lab.extend(["--label", "version=1.2"]);
        assert_eq!(s.top(&lab), go_pprof_top(&files(&["go-workload-cpu.pb.gz"]), st));
    }
    // A window holding only the first profile.
    let w1 = window_args(T0, T0 + DAY);
    let mut args = vec!["--type", "cpu", "--sample-type", "cpu/nanoseconds"];
    args.extend(w1.iter().map(String::as_str));
    assert_eq!(s.top(&args), go_pprof_top(&files(&["go-workload-cpu.pb.gz"]), "cpu/nanoseconds"));
    // Heap, default sample type (pprof's pick: inuse_space).
    let mut heap = vec!["--type", "heap"];
    heap.extend(&w);
    assert_eq!(s.top(&heap), go_pprof_top(&files(&["go-heap-2021.pb.gz"]), "inuse_space/bytes"));
    // The table form names the sample type and shows n rows.
    let mut table = vec!["top", "--type", "cpu", "-n", "4"];
    table.extend(&w);
    let text = String::from_utf8(s.run(&table).stdout).unwrap();
    assert!(text.starts_with("Type: cpu/nanoseconds\n"), "{text}");
    assert_eq!(text.lines().skip_while(|l| !l.trim_start().starts_with("flat")).count(), 5, "{text}");
}

/// The naming fixtures (mangled C++ and Rust, Go generics, names that only look like C++), the
/// frame-filter ones and this repository's real profiles (empty ones among them), each as its
/// own profile type: SQL top-N names and counts exactly as `go tool pprof -top` does, every
/// sample type; an empty profile is stored, with no sample.
#[test]
fn sql_top_names_and_prunes_like_go_tool_pprof() {
    use pprofhouse_tests::oracle::{name_fixtures, oracle_pairs, real_fixtures, shared_name_fixtures};
    let T0 = t0();
    let s = Store::start();
    let w = window_args(T0, T0 + DAY);
    let mut pairs = oracle_pairs(&name_fixtures());
    pairs.extend(oracle_pairs(&shared_name_fixtures()));
    pairs.extend(oracle_pairs(&real_fixtures()));
    assert!(pairs.iter().any(|(p, _)| p.ends_with("frame-filters.pb.gz")), "{pairs:?}");
    let mut empty = Vec::new();
    for (i, (file, oracle)) in pairs.iter().enumerate() {
        let ptype = format!("names{i}");
        s.0.load("svc", &ptype, Some(T0 + HOUR), &[], std::slice::from_ref(file));
        let p = pprof::decode(std::fs::read(file).unwrap(), &Default::default()).unwrap();
        let has_rows = std::fs::metadata(oracle).unwrap().len() > 0;
        if !has_rows {
            empty.push(format!("'{ptype}'"));
        }
        for st in p.sample_types() {
            let st = st.to_string();
            let mut args = vec!["--type", ptype.as_str(), "--sample-type", st.as_str()];
            args.extend(w.iter().map(String::as_str));
            let want = go_pprof_top(std::slice::from_ref(file), &st);
            assert_eq!(want.is_empty(), !has_rows, "{} {st}", file.display());
            assert_eq!(s.top(&args), want, "{} {st}", file.display());
        }
    }
    assert!(empty.len() >= 2, "expected the empty real profiles: {pairs:?}");
    let stored = format!("SELECT count() FROM profiles FINAL WHERE profile_type IN ({}) AND sample_count = 0", empty.join(","));
    assert_eq!(rt().block_on(s.client().query(&stored).fetch_one::<u64>()).unwrap(), empty.len() as u64, "{stored}");
}

/// Σ flat of every function in a bucket = Σ totals of the profiles in that bucket; a function's
/// series equals its per-file numbers.
#[test]
fn time_series_sums_equal_per_profile_totals() {
    let T0 = t0();
    let s = Store::start();
    let plan = [
        ("a", 0, "go-workload-heap.pb.gz"),
        ("a", 1, "go-workload-allocs.pb.gz"),
        ("b", 1, "go-heap-2021.pb.gz"),
        ("b", 3, "go-workload-heap.pb.gz"),
    ];
    let mut expected_totals: HashMap<i64, i64> = HashMap::new();
    let mut expected_fn: HashMap<(i64, String), (i64, i64)> = HashMap::new();
    let func = "runtime.main";
    for (svc, hour, f) in plan {
        s.load(svc, "heap", T0 + hour * HOUR + 5 * 60_000, &[], &[f]);
        let p = pprof::decode(std::fs::read(fixtures().join(f)).unwrap(), &Default::default()).unwrap();
        let ex = explode(&p, ExplodeOptions::default());
        let t = ex.facts.sample_types.iter().position(|t| t.to_string() == "alloc_space/bytes").unwrap();
        *expected_totals.entry(hour).or_default() += ex.facts.totals[t];
        if let Some(r) = ex.rows(t).into_iter().find(|r| r.function == func.as_bytes()) {
            let e = expected_fn.entry((hour, svc.to_string())).or_default();
            e.0 += r.flat;
            e.1 += r.cum;
        }
    }
    assert!(!expected_fn.is_empty());
    let rt = rt();
    let client = s.client();
    for hour in 0..4 {
        let w = window_args(T0 + hour * HOUR, T0 + (hour + 1) * HOUR);
        let mut args = vec!["--type", "heap", "--sample-type", "alloc_space/bytes"];
        args.extend(w.iter().map(String::as_str));
        let flat_sum: i64 = s.top(&args).values().map(|v| v.0).sum();
        assert_eq!(flat_sum, expected_totals.get(&hour).copied().unwrap_or(0), "hour {hour}");
    }
    let window = Window { from_ms: T0, to_ms: T0 + 4 * HOUR };
    for source in [Source::Raw, Source::Hourly] {
        let series =
            rt.block_on(query::function_timeseries(&client, func, "heap", "alloc_space/bytes", window, 3600, None, source)).unwrap();
        let got: HashMap<(i64, String), (i64, i64)> = series
            .iter()
            .map(|p| (((p.t as i64 * 1000) - T0) / HOUR, p.service.clone()))
            .zip(series.iter().map(|p| (p.flat, p.cum)))
            .collect();
        assert_eq!(got, expected_fn, "{source:?}");
    }
}

#[test]
fn loading_twice_changes_nothing_including_rollups() {
    let T0 = t0();
    let s = Store::start();
    let plan = [("api", 0, "go-workload-cpu.pb.gz"), ("api", 2, "go-cpu-labels.pb.gz"), ("web", 26, "go-workload-cpu.pb.gz")];
    for (svc, h, f) in plan {
        s.load(svc, "cpu", T0 + h * HOUR, &["zone=eu"], &[f]);
    }
    let rt = rt();
    let client = s.client();
    let snapshot = || {
        let tables =
            ["profiles FINAL", "function_values", "function_values_hourly", "function_values_daily", "stack_values", "stacks FINAL"];
        let counts: Vec<u64> = tables.iter().map(|t| s.count(&rt, t)).collect();
        let mut answers = Vec::new();
        for source in [Source::Raw, Source::Hourly, Source::Daily] {
            let q = TopQuery {
                profile_type: "cpu".into(),
                sample_type: "cpu/nanoseconds".into(),
                window: Window { from_ms: T0, to_ms: T0 + 2 * DAY },
                service: None,
                labels: vec![],
                by_cum: false,
                limit: 1_000_000,
                source: Some(source),
            };
            answers.push(format!("{:?}", rt.block_on(query::top_functions(&client, &q)).unwrap()));
            answers.push(format!("{:?}", rt.block_on(query::total(&client, &q)).unwrap()));
        }
        let fg = rt
            .block_on(query::flamegraph(&client, "cpu", "cpu/nanoseconds", Window { from_ms: T0, to_ms: T0 + 2 * DAY }, None, &[]))
            .unwrap();
        answers.push(format!("{fg:?}"));
        (counts, answers)
    };
    let before = snapshot();
    assert!(before.0.iter().all(|&c| c > 0), "{:?}", before.0);
    // Again through the CLI: every profile is recognised.
    for (svc, h, f) in plan {
        let out = s.load(svc, "cpu", T0 + h * HOUR, &["zone=eu"], &[f]);
        assert!(out.contains("loaded 0 profiles") && out.contains("1 already stored"), "{out}");
    }
    // And through the sink, the same profile pushed twice into one batch and once more later.
    let data = std::fs::read(fixtures().join("go-workload-cpu.pb.gz")).unwrap();
    let ex = explode(
        &pprof::decode(data.clone(), &Default::default()).unwrap(),
        ExplodeOptions { stacks: true, inline_marks: false, ..Default::default() },
    );
    let meta = ProfileMeta {
        service: "api".into(),
        profile_type: "cpu".into(),
        labels: [("zone".to_string(), "eu".to_string())].into(),
        created_at: chrono::DateTime::from_timestamp_millis(T0).unwrap(),
        layout: LayoutKind::Given,
    };
    let rec = ProfileRecord::new(meta, Origin::File { content: &data, time_given: true }, ex);
    let mut sink = Sink::new(client.clone(), SinkConfig::default());
    sink.push(rec.clone());
    sink.push(rec.clone());
    let stats = rt.block_on(sink.flush()).unwrap();
    assert_eq!((stats.inserted, stats.duplicates), (0, 2));
    assert_eq!(before, snapshot());
    // A genuinely new profile does change the answers (the check above can fail).
    s.load("api", "cpu", T0 + 3 * HOUR, &["zone=us"], &["go-workload-cpu.pb.gz"]);
    assert_ne!(before, snapshot());
}

#[test]
fn rollup_answers_equal_raw_answers() {
    let T0 = t0();
    let s = Store::start();
    let cpu = ["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"];
    for d in 0..3i64 {
        for (i, svc) in ["a", "b", "c"].iter().enumerate() {
            s.load(svc, "cpu", T0 + d * DAY + (i as i64 * 7 + 1) * HOUR + 123, &[], &[cpu[(d as usize + i) % 2]]);
        }
    }
    let rt = rt();
    let client = s.client();
    for (from, to) in [(T0, T0 + 3 * DAY), (T0 + DAY, T0 + 2 * DAY), (T0 + 8 * HOUR, T0 + 30 * HOUR)] {
        for service in [None, Some("b".to_string())] {
            for by_cum in [false, true] {
                let q = |source| TopQuery {
                    profile_type: "cpu".into(),
                    sample_type: "cpu/nanoseconds".into(),
                    window: Window { from_ms: from, to_ms: to },
                    service: service.clone(),
                    labels: vec![],
                    by_cum,
                    limit: 50,
                    source: Some(source),
                };
                let raw = rt.block_on(query::top_functions(&client, &q(Source::Raw))).unwrap();
                assert!(!raw.is_empty());
                assert_eq!(rt.block_on(query::top_functions(&client, &q(Source::Hourly))).unwrap(), raw);
                if (from % DAY, to % DAY) == (0, 0) {
                    assert_eq!(rt.block_on(query::top_functions(&client, &q(Source::Daily))).unwrap(), raw);
                    assert_eq!(Window { from_ms: from, to_ms: to }.source(false), Source::Daily);
                }
            }
        }
    }
    let w = Window { from_ms: T0, to_ms: T0 + 3 * DAY };
    let raw =
        rt.block_on(query::function_timeseries(&client, "main.work", "cpu", "cpu/nanoseconds", w, 6 * 3600, None, Source::Raw)).unwrap();
    let hourly =
        rt.block_on(query::function_timeseries(&client, "main.work", "cpu", "cpu/nanoseconds", w, 6 * 3600, None, Source::Hourly)).unwrap();
    assert!(!raw.is_empty());
    assert_eq!(raw, hourly);
}

#[test]
fn values_are_bound_never_spliced() {
    let T0 = t0();
    let s = Store::start();
    let weird_service = "it's a \\ \"svc\" — ünïcödé {x:String} ?";
    let weird_label = "ver='1.2'\\n ünï";
    s.load(weird_service, "cpu", T0 + HOUR, &[&format!("build={weird_label}")], &["go-workload-cpu.pb.gz"]);
    s.load("plain", "cpu", T0 + HOUR, &[], &["go-cpu-labels.pb.gz"]);
    let w = window_args(T0, T0 + DAY);
    let mut base = vec!["--type", "cpu", "--sample-type", "cpu/nanoseconds"];
    base.extend(w.iter().map(String::as_str));
    let want = go_pprof_top(&files(&["go-workload-cpu.pb.gz"]), "cpu/nanoseconds");
    let mut by_service = base.clone();
    by_service.extend(["--service", weird_service]);
    assert_eq!(s.top(&by_service), want);
    let label = format!("build={weird_label}");
    let mut by_label = base.clone();
    by_label.extend(["--label", &label]);
    assert_eq!(s.top(&by_label), want);
    // Injection attempts match nothing and break nothing.
    for evil in ["plain' OR '1'='1", "plain\\' OR 1=1 --", "x') OR service != ('"] {
        let mut a = base.clone();
        a.extend(["--service", evil]);
        assert!(s.top(&a).is_empty(), "{evil}");
    }
    let rt = rt();
    let stored: Vec<String> = rt.block_on(s.client().query("SELECT DISTINCT service FROM profiles ORDER BY service").fetch_all()).unwrap();
    assert_eq!(
        stored,
        vec![weird_service.to_string(), "plain".to_string()]
            .into_iter()
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect::<Vec<_>>()
    );
}

#[test]
fn flamegraph_diff_and_services_queries() {
    let T0 = t0();
    let s = Store::start();
    s.load("api", "cpu", T0 + HOUR, &["version=1.2"], &["go-workload-cpu.pb.gz"]);
    s.load("api", "cpu", T0 + 2 * HOUR, &["version=1.3"], &["go-cpu-labels.pb.gz"]);
    s.load("web", "cpu", T0 + 2 * HOUR, &["version=1.3"], &["go-workload-cpu.pb.gz"]);
    let rt = rt();
    let client = s.client();
    let w = Window { from_ms: T0, to_ms: T0 + DAY };
    let total_of = |f: &str| {
        let p = pprof::decode(std::fs::read(fixtures().join(f)).unwrap(), &Default::default()).unwrap();
        let ex = explode(&p, ExplodeOptions::default());
        let t = ex.facts.sample_types.iter().position(|t| t.to_string() == "cpu/nanoseconds").unwrap();
        (ex.facts.totals[t], ex)
    };
    let (t_cpu, ex_cpu) = total_of("go-workload-cpu.pb.gz");
    let (t_labels, ex_labels) = total_of("go-cpu-labels.pb.gz");

    // Flame graph: a `total` root holding everything; self sums to the total; depth-first order.
    let fg = rt.block_on(query::flamegraph(&client, "cpu", "cpu/nanoseconds", w, Some("api"), &[])).unwrap();
    assert_eq!(fg[0].level, 0);
    assert_eq!(fg[0].label, b"total");
    assert_eq!(fg[0].value, t_cpu + t_labels);
    assert_eq!(fg.iter().map(|n| n.self_value).sum::<i64>(), t_cpu + t_labels);
    for pair in fg.windows(2) {
        assert!(pair[1].level <= pair[0].level + 1, "not depth-first: {pair:?}");
    }
    assert!(fg.iter().all(|n| n.value >= n.self_value));
    // A function's self in the flame graph sums to its flat.
    let work_flat: i64 = fg.iter().filter(|n| n.label == b"main.work").map(|n| n.self_value).sum();
    let t = 1;
    let flat_of = |ex: &pprofhouse_transform::Exploded| ex.rows(t).iter().find(|r| r.function == b"main.work").map(|r| r.flat).unwrap_or(0);
    assert_eq!(work_flat, flat_of(&ex_cpu) + flat_of(&ex_labels));

    // Diff between label values over the same window, for api.
    let side = |v: &str| DiffSide { window: w, labels: vec![("version".into(), v.into())] };
    let d = rt.block_on(query::diff(&client, "cpu", "cpu/nanoseconds", Some("api"), &side("1.2"), &side("1.3"), false, 1000)).unwrap();
    let flats = |ex: &pprofhouse_transform::Exploded| -> HashMap<Vec<u8>, i64> {
        ex.rows(t).iter().map(|r| (r.function.to_vec(), r.flat)).collect()
    };
    let (fa, fb) = (flats(&ex_cpu), flats(&ex_labels));
    let names: std::collections::HashSet<&Vec<u8>> = fa.iter().chain(fb.iter()).filter(|(_, v)| **v != 0).map(|(k, _)| k).collect();
    assert_eq!(d.len(), names.len());
    let mut both = 0;
    for row in &d {
        let (a, b) = (fa.get(&row.function).copied().unwrap_or(0), fb.get(&row.function).copied().unwrap_or(0));
        assert_eq!((row.a, row.b, row.delta), (a, b, b - a), "{}", String::from_utf8_lossy(&row.function));
        match row.relative {
            Some(rel) => {
                assert!((rel - (b - a) as f64 / a.abs() as f64).abs() < 1e-9);
                both += (b != 0) as usize;
            }
            None => assert_eq!(a, 0),
        }
    }
    assert!(both > 0);
    assert!(d.windows(2).all(|p| p[0].delta.abs() >= p[1].delta.abs()));

    // Services spending most in a function both files have: api (two profiles) and web (one).
    let cums = |ex: &pprofhouse_transform::Exploded| -> HashMap<Vec<u8>, i64> {
        ex.rows(t).iter().map(|r| (r.function.to_vec(), r.cum)).collect()
    };
    let (ca, cb) = (cums(&ex_cpu), cums(&ex_labels));
    let (func, _) = ca.iter().filter(|(k, _)| cb.contains_key(*k)).max_by_key(|(k, v)| (**v, (*k).clone())).unwrap();
    let func = String::from_utf8(func.clone()).unwrap();
    let sv = rt.block_on(query::services_for_function(&client, &func, "cpu", "cpu/nanoseconds", w, 10)).unwrap();
    let names: Vec<&str> = sv.iter().map(|r| r.service.as_str()).collect();
    assert_eq!(names, vec!["api", "web"], "{func}");
    let api = &sv[0];
    assert_eq!(api.cum, ca[func.as_bytes()] + cb[func.as_bytes()]);
    assert_eq!(api.service_total, t_cpu + t_labels);
    let web = &sv[1];
    assert_eq!((web.cum, web.service_total), (ca[func.as_bytes()], t_cpu));
    assert!((web.cum_share - web.cum as f64 / t_cpu as f64).abs() < 1e-9);
}

#[test]
fn migrate_is_idempotent() {
    let s = Store::start();
    let out = s.run(&["migrate"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), "schema up to date");
    let rt = rt();
    let versions: Vec<u32> =
        rt.block_on(s.client().query("SELECT version FROM schema_migrations FINAL ORDER BY version").fetch_all()).unwrap();
    assert_eq!(versions, pprofhouse_sql::MIGRATIONS.iter().map(|m| m.version).collect::<Vec<_>>());
}

/// Migration 0008 turns `stack_values` into a view over arrays: the rows a database already held
/// stay visible through it, next to the ones written after it, and the sum is what was loaded.
#[test]
fn stack_rows_written_before_the_array_layout_stay_visible() {
    let T0 = t0();
    let ch = LocalClickHouse::start().expect("start the local ClickHouse");
    let rt = rt();
    let root = ch.client();
    let client = ch.client().with_database("pprofhouse");
    // The schema as it was before 0008, applied by hand, with one stack row in it.
    let opts = pprofhouse_sql::RenderOptions { database: "pprofhouse".into(), ..Default::default() };
    rt.block_on(async {
        root.query("CREATE DATABASE IF NOT EXISTS pprofhouse").execute().await.unwrap();
        root.query(
            "CREATE TABLE pprofhouse.schema_migrations (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) \
             ENGINE = ReplacingMergeTree(applied_at) ORDER BY version",
        )
        .execute()
        .await
        .unwrap();
        for m in pprofhouse_sql::MIGRATIONS.iter().filter(|m| m.version < 8) {
            for stmt in pprofhouse_sql::schema::render(m.template, &opts) {
                root.query(&stmt).execute().await.unwrap();
            }
            client
                .query("INSERT INTO schema_migrations (version, name) VALUES (?, ?)")
                .bind(m.version)
                .bind(m.name)
                .execute()
                .await
                .unwrap();
        }
        client
            .query(
                "INSERT INTO stack_values (ts, service, profile_type, sample_type, stack_hash, value, profile_id) \
                 VALUES (fromUnixTimestamp64Milli(?), 'old', 'cpu', 'cpu/nanoseconds', 42, 1000, generateUUIDv4())",
            )
            .bind(T0)
            .execute()
            .await
            .unwrap();
    });
    let s = Store(CliStore::on(ch));
    let out = s.run(&["migrate"]);
    let applied: Vec<String> =
        pprofhouse_sql::MIGRATIONS.iter().filter(|m| m.version >= 8).map(|m| format!("applied {:04} {}", m.version, m.name)).collect();
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), applied.join("\n"));
    s.load("new", "cpu", T0 + HOUR, &[], &["go-workload-cpu.pb.gz"]);
    let total = |service: &str| -> i64 {
        let q = "SELECT sum(value) FROM stack_values WHERE sample_type = 'cpu/nanoseconds' AND service = ?";
        rt.block_on(s.client().query(q).bind(service).fetch_one::<i64>()).unwrap()
    };
    assert_eq!(total("old"), 1000, "the row written before the migration");
    let p = pprof::decode(std::fs::read(fixtures().join("go-workload-cpu.pb.gz")).unwrap(), &Default::default()).unwrap();
    let t = p.sample_types().iter().position(|t| t.to_string() == "cpu/nanoseconds").unwrap();
    let want = explode(&p, ExplodeOptions::default()).facts.totals[t];
    assert_eq!(total("new"), want, "the profile loaded after it, through the arrays");
    assert!(s.count(&rt, "stack_samples") > 0);
}

/// Migration 0010 has the worker send stacks split by sample type; a worker of the previous
/// version, still running while the workers are replaced, sends every stack with all its
/// values. Both kinds of `ingest` row land in `stack_samples` and `stacks`, once.
#[test]
fn ingest_rows_of_the_previous_layout_still_land() {
    let T0 = t0();
    let s = Store::start();
    let rt = rt();
    let client = s.client();
    // Each stack's frames and when they were last written (ReplacingMergeTree keeps the latest).
    let stacks = || -> Vec<(u64, String, i64)> {
        let q = "SELECT stack_hash, toString(argMax(frames, last_seen)), toUnixTimestamp64Milli(max(last_seen)) FROM stacks \
                 GROUP BY stack_hash ORDER BY stack_hash";
        rt.block_on(client.query(q).fetch_all()).unwrap()
    };
    // Stacks 7 (values 3, 0) and 8 (values 0, 5), frames for both, the old way.
    let old = "INSERT INTO ingest (profile_id, ts, service, profile_type, sample_types, st_hash, st_frames, st_values) \
               VALUES (generateUUIDv4(), fromUnixTimestamp64Milli(?), 'old', 'heap', ['a/count', 'b/bytes'], [7, 8], \
               [['f', 'main'], ['g', 'main']], [[3, 0], [0, 5]])";
    rt.block_on(client.query(old).bind(T0).execute()).unwrap();
    assert_eq!(stacks(), [(7, "['f','main']".into(), T0), (8, "['g','main']".into(), T0)]);
    // The same stacks the new way, from another profile an hour later.
    let new = "INSERT INTO ingest (profile_id, ts, service, profile_type, sample_types, by_type_hash, by_type_value, \
               frames_hash, frames) VALUES (generateUUIDv4(), fromUnixTimestamp64Milli(?), 'new', 'heap', \
               ['a/count', 'b/bytes'], [[7], [8]], [[3], [5]], [7, 8], [['f', 'main'], ['g', 'main']])";
    rt.block_on(client.query(new).bind(T0 + HOUR).execute()).unwrap();
    assert_eq!(stacks(), [(7, "['f','main']".into(), T0 + HOUR), (8, "['g','main']".into(), T0 + HOUR)]);
    for service in ["old", "new"] {
        let q = "SELECT sample_type, toString(stack_hash), toString(value) FROM stack_samples WHERE service = ? ORDER BY sample_type";
        let rows: Vec<(String, String, String)> = rt.block_on(client.query(q).bind(service).fetch_all()).unwrap();
        let want = |t: &str, h: &str, v: &str| (t.to_string(), h.to_string(), v.to_string());
        assert_eq!(rows, [want("a/count", "[7]", "[3]"), want("b/bytes", "[8]", "[5]")], "{service}");
    }
}

#[test]
fn stack_frames_are_written_once_and_known_stacks_go_by_hash_alone() {
    let T0 = t0();
    let s = Store::start();
    let rt = rt();
    let client = s.client();
    let data = std::fs::read(fixtures().join("go-workload-heap.pb.gz")).unwrap();
    let record = |service: &str| {
        let ex = explode(
            &pprof::decode(data.clone(), &Default::default()).unwrap(),
            ExplodeOptions { stacks: true, inline_marks: false, ..Default::default() },
        );
        let meta = ProfileMeta {
            service: service.into(),
            profile_type: "heap".into(),
            labels: Default::default(),
            created_at: chrono::DateTime::from_timestamp_millis(T0 + HOUR).unwrap(),
            layout: LayoutKind::Given,
        };
        ProfileRecord::new(meta, Origin::File { content: service.as_bytes(), time_given: true }, ex)
    };
    let (a, b) = (record("a"), record("b"));
    let expected: HashMap<u64, Vec<String>> = a
        .exploded
        .stacks
        .iter()
        .filter(|st| !st.frames.is_empty())
        .map(|st| (st.hash, st.frames.iter().map(|&n| String::from_utf8(a.exploded.names[n as usize].to_vec()).unwrap()).collect()))
        .collect();
    assert!(expected.len() > 10, "{}", expected.len());
    // One batch holding the same stacks twice: each stack's frames are written once.
    let writer = Writer::new(client.clone(), SinkConfig::default());
    let stats = rt.block_on(writer.write(&[a.clone(), b])).unwrap();
    assert_eq!(stats.inserted, 2);
    #[derive(clickhouse::Row, serde::Deserialize)]
    struct StackRow {
        stack_hash: u64,
        frames: Vec<String>,
    }
    let stored = || -> (u64, HashMap<u64, Vec<String>>) {
        let rows: Vec<StackRow> = rt.block_on(client.query("SELECT stack_hash, frames FROM stacks FINAL").fetch_all()).unwrap();
        let all: u64 = rt.block_on(client.query("SELECT count() FROM stacks").fetch_one()).unwrap();
        (all, rows.into_iter().map(|r| (r.stack_hash, r.frames)).collect())
    };
    let (all, by_hash) = stored();
    assert_eq!(by_hash, expected);
    assert_eq!(all, expected.len() as u64, "stacks rows before any merge: each stack once");
    // A later profile with the same stacks, exploded as the worker does: its record is built
    // without their frames (it is smaller), and its insert carries their hashes alone.
    let full = pprofhouse_sql::sink::record_bytes(&record("c"));
    let c = writer.known_stacks().unstored(|wanted| {
        let ex = explode_with(
            &pprof::decode(data.clone(), &Default::default()).unwrap(),
            ExplodeOptions { stacks: true, inline_marks: false, ..Default::default() },
            wanted,
        );
        ProfileRecord::new(record("c").meta, Origin::File { content: b"c", time_given: true }, ex)
    });
    assert_eq!(c.id, record("c").id);
    assert!(c.exploded.stacks.iter().all(|st| st.frames.is_empty()));
    assert!(pprofhouse_sql::sink::record_bytes(&c) < full, "{} < {full}", pprofhouse_sql::sink::record_bytes(&c));
    assert_eq!(rt.block_on(writer.write(&[c])).unwrap().inserted, 1);
    assert_eq!(stored(), (expected.len() as u64, expected));
    // Its flame graph, read through the stored frames, is the first profile's.
    let w = Window { from_ms: T0, to_ms: T0 + DAY };
    for st in ["alloc_space/bytes", "inuse_objects/count"] {
        let fg = |svc| rt.block_on(query::flamegraph(&client, "heap", st, w, Some(svc), &[])).unwrap();
        let (fa, fc) = (fg("a"), fg("c"));
        assert!(fa.len() > 5, "{st}: {}", fa.len());
        assert_eq!(fa, fc, "{st}");
    }
}

#[test]
fn the_processed_profile_check_looks_ids_up_in_their_projection() {
    let T0 = t0();
    let s = Store::start();
    let rt = rt();
    for (i, svc) in ["a", "b", "c"].iter().enumerate() {
        s.load(svc, "cpu", T0 + i as i64 * HOUR, &[], &["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"]);
    }
    let client = s.client();
    let stored: Vec<String> = rt.block_on(client.query("SELECT toString(profile_id) FROM profiles FINAL").fetch_all()).unwrap();
    assert_eq!(stored.len(), 6);
    let mut asked: Vec<uuid::Uuid> = stored[..2].iter().map(|s| s.parse().unwrap()).collect();
    asked.push(uuid::Uuid::from_u128(7));
    let found = rt.block_on(pprofhouse_sql::sink::existing_ids(&client, asked.iter().copied())).unwrap();
    assert_eq!(found, asked[..2].iter().copied().collect());
    // Among 200,000 stored profiles (many granules), the plan reads the projection ordered by
    // profile_id, and uses its key.
    let fill = "INSERT INTO profiles (profile_id, ts, service, profile_type) SELECT generateUUIDv4(), fromUnixTimestamp64Milli(?) + number, 'filler', 'cpu' FROM numbers(200000)";
    rt.block_on(client.query(fill).bind(T0).execute()).unwrap();
    // (Settled first: a part being merged at that moment can make the planner skip it.)
    rt.block_on(client.query("OPTIMIZE TABLE profiles FINAL").execute()).unwrap();
    let ids: Vec<String> = asked.iter().map(|u| u.to_string()).collect();
    let plan: Vec<String> = rt
        .block_on(client.query(&format!("EXPLAIN indexes = 1 {}", pprofhouse_sql::sink::EXISTING_IDS_QUERY)).bind(&ids).fetch_all())
        .unwrap();
    let plan = plan.join("\n");
    assert!(plan.contains("ReadFromMergeTree (by_profile_id)"), "{plan}");
    assert!(plan.contains("Condition: (profile_id in"), "{plan}");
}

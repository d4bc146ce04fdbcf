//! Never stall, never double count: the pipeline against what real buckets hold, through the
//! real local stack (S3, Kafka, ClickHouse) and the `pprofhouse` binary.
//!
//! - a two-year profefe history, backfilled: every profile stored, batches cut by day;
//! - hostile profiles: dead letters naming the limit, while good profiles beside them land;
//! - a profile ClickHouse rejects for good: only it is dead-lettered, the rest stored once;
//! - a write abandoned between its data and its markers: taken back when its profiles return,
//!   also by two writers at once;
//! - writers refuse to start against a schema that lacks their migrations;
//! - an overwritten key: each announced version stored once, or dead-lettered `changed`;
//! - a file without its own time, loaded twice: nothing changes; 120 files over 120 days load;
//! - a stuck worker fails its liveness probe, and recovers;
//! - secrets never show in `--help` or in logs.
use std::collections::BTreeMap;
use std::time::Duration;

use bytes::Bytes;
use chrono::{DateTime, SubsecRound, Utc};
use pprofhouse_ingest::layout::{profefe_key, profefe_type_number};
use pprofhouse_tests::goservice::http_get;
use pprofhouse_tests::hostile;
use pprofhouse_tests::paths::fixtures;
use pprofhouse_tests::pipeline::{tail_text, wait_until, Pipeline, BUCKET, PRODUCER_KAFKA_PROPERTIES};
use pprofhouse_transform::pprof::{self, proto};
use pprofhouse_transform::{explode, ExplodeOptions};
use prost::Message;

fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn key(service: &str, ptype: &str, at: DateTime<Utc>, salt: u64) -> String {
    profefe_key(service, profefe_type_number(ptype).unwrap(), at, salt, &BTreeMap::new())
}

fn fixture(name: &str) -> Vec<u8> {
    std::fs::read(fixtures().join(name)).unwrap()
}

/// Function rows a profile contributes to `function_values`.
fn function_rows(bytes: &[u8]) -> u64 {
    let p = pprof::decode(bytes.to_vec(), &Default::default()).unwrap();
    explode(&p, ExplodeOptions::default()).all_rows().len() as u64
}

fn assert_ok(out: &std::process::Output, what: &str) {
    assert!(out.status.success(), "{what}: exit {:?}\n{}\n{}", out.status, tail_text(&out.stderr, 60), tail_text(&out.stdout, 10));
}

/// Retention that keeps two years of history in every table.
const LONG_RETENTION: &[(&str, &str)] = &[
    ("PPROFHOUSE_TTL_PROFILES_DAYS", "800"),
    ("PPROFHOUSE_TTL_RAW_DAYS", "800"),
    ("PPROFHOUSE_TTL_HOURLY_DAYS", "800"),
    ("PPROFHOUSE_TTL_DAILY_DAYS", "800"),
];

#[test]
fn a_two_year_profefe_history_is_backfilled_completely() {
    let p = Pipeline::start_with_env(LONG_RETENTION).unwrap();
    // Two services, a profile every 12 hours for 730 days: 2,920 objects over 730 daily
    // partitions (ClickHouse refuses one INSERT into more than 100).
    let small = fixture("go-workload-threadcreate.pb.gz");
    let end = now() - chrono::Duration::hours(1);
    let mut keys = Vec::new();
    for (s, service) in ["billing", "search"].iter().enumerate() {
        for i in 0..730 * 2 {
            let at = end - chrono::Duration::hours(12 * i) - chrono::Duration::minutes(s as i64);
            let k = key(service, "threadcreate", at, i as u64);
            p.upload(&k, &small, &[]).unwrap();
            keys.push(k);
        }
    }
    let checkpoint = p.dir().join("checkpoint.json");
    let out = p
        .run_env(
            &["backfill", "--bucket", BUCKET, "--no-progress", "--force", "--rate", "0"],
            &[
                ("PPROFHOUSE_KAFKA_PRODUCER_PROPERTIES", PRODUCER_KAFKA_PROPERTIES),
                ("PPROFHOUSE_BACKFILL_CHECKPOINT", checkpoint.to_str().unwrap()),
            ],
            Duration::from_secs(300),
        )
        .unwrap();
    assert_ok(&out, "backfill");
    let started = std::time::Instant::now();
    let out = p.run_worker_until_idle(&[]).unwrap();
    assert_ok(&out, "worker over the history");
    let secs = started.elapsed().as_secs_f64();
    assert_eq!(p.profile_count().unwrap(), keys.len() as u64, "every profile of the history is stored");
    assert!(p.dead_letters().unwrap().is_empty(), "{:?}", p.dead_letters().unwrap());
    let days: u64 = p.block_on(p.client().query("SELECT uniqExact(toDate(ts)) FROM function_values").fetch_one()).unwrap();
    assert!(days > 700, "the history spans {days} days");
    assert_eq!(p.count("function_values").unwrap(), keys.len() as u64 * function_rows(&small), "no duplicate or missing rows");
    eprintln!("history: {} profiles over {days} days drained in {secs:.1} s ({:.0} profiles/s)", keys.len(), keys.len() as f64 / secs);
}

#[test]
fn load_of_files_spanning_120_days_stores_them_all() {
    let p = Pipeline::start_with_env(LONG_RETENTION).unwrap();
    let base =
        proto::Profile::decode(pprof::inflate(Bytes::from(fixture("go-workload-goroutine.pb.gz")), &Default::default()).unwrap()).unwrap();
    let mut files = Vec::new();
    for d in 0..120 {
        let mut prof = base.clone();
        prof.time_nanos = (now() - chrono::Duration::days(d)).timestamp_nanos_opt().unwrap();
        let path = p.dir().join(format!("day-{d}.pb"));
        std::fs::write(&path, prof.encode_to_vec()).unwrap();
        files.push(path.display().to_string());
    }
    let mut args = vec!["load", "--service", "history", "--type", "goroutine"];
    args.extend(files.iter().map(String::as_str));
    let out = p.run(&args, Duration::from_secs(300)).unwrap();
    assert_ok(&out, "load of 120 days");
    assert!(String::from_utf8_lossy(&out.stdout).contains("loaded 120 profiles"), "{}", String::from_utf8_lossy(&out.stdout));
    assert_eq!(p.profile_count().unwrap(), 120);
}

#[test]
fn hostile_profiles_are_dead_lettered_naming_the_limit_while_good_ones_land() {
    let p = Pipeline::start().unwrap();
    let t0 = now() - chrono::Duration::minutes(30);
    let good = fixture("go-workload-cpu.pb.gz");
    let mut keys = Vec::new();
    let mut want: BTreeMap<String, &str> = BTreeMap::new();
    let k = key("good", "cpu", t0, 0);
    p.upload(&k, &good, &[]).unwrap();
    keys.push(k.clone());
    for (i, (name, bytes, limit)) in hostile::all().into_iter().enumerate() {
        assert!(bytes.len() < 256 << 10, "{name} is {} bytes: hostile files are small", bytes.len());
        let k = key(&format!("hostile-{name}"), "cpu", t0 + chrono::Duration::seconds(i as i64 + 1), i as u64 + 1);
        p.upload(&k, &bytes, &[]).unwrap();
        keys.push(k.clone());
        want.insert(k, limit);
    }
    let k2 = key("good", "cpu", t0 + chrono::Duration::seconds(60), 99);
    p.upload(&k2, &good, &[]).unwrap();
    keys.push(k2);
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    p.deliver_events(&refs).unwrap();

    let out = p.run_worker_until_idle(&["--concurrency", "4"]).unwrap();
    assert_ok(&out, "worker over hostile profiles");
    assert_eq!(p.profile_count().unwrap(), 2, "both good profiles stored");
    let dead = p.dead_letters().unwrap();
    assert_eq!(dead.len(), want.len(), "{dead:?}");
    for d in &dead {
        let k = d["object"]["key"].as_str().unwrap();
        let limit = want.get(k).unwrap_or_else(|| panic!("unexpected dead letter {d}"));
        assert_eq!(d["error_kind"], "over_limit", "{d}");
        assert!(d["reason"].as_str().unwrap().contains(limit), "{k}: the reason names {limit}: {d}");
    }
}

/// A small CPU profile whose one function is `name`.
fn profile_named(name: &str, value: i64) -> Vec<u8> {
    let p = proto::Profile {
        sample_type: vec![proto::ValueType { r#type: 1, unit: 2 }],
        function: vec![proto::Function { id: 1, name: 3, ..Default::default() }],
        location: vec![proto::Location { id: 1, line: vec![proto::Line { function_id: 1, ..Default::default() }], ..Default::default() }],
        sample: vec![proto::Sample { location_id: vec![1], value: vec![value], label: vec![] }],
        string_table: ["", "cpu", "nanoseconds", name].iter().map(|s| Bytes::copy_from_slice(s.as_bytes())).collect(),
        ..Default::default()
    };
    hostile::gzip(&p)
}

#[test]
fn a_profile_a_first_level_table_rejects_for_good_is_dead_lettered_alone() {
    rejected_profile_is_isolated("function_values");
}

/// The rollups are written after `function_values`, the hourly one before the daily: when the
/// daily refuses, `function_values` and the hourly rollup have already taken the batch, and both
/// must be undone before the batch is split (the hourly rollup's sums cannot be deleted per
/// profile: they are taken back out).
#[test]
fn a_profile_a_rollup_rejects_for_good_is_dead_lettered_alone() {
    rejected_profile_is_isolated("function_values_daily");
}

/// Flat, cum and profiles per function.
type Sums = Vec<(String, i64, i64, u64)>;

/// Sums of flat and cum per function, and how many profiles have it, in the raw rows and in each
/// rollup (functions whose sums are all zero left out: a rollup keeps a sum taken back out as
/// a zero row until its merges drop it).
fn raw_and_rollups(p: &Pipeline) -> (Sums, Sums, Sums) {
    let q = |t: &str, profiles: &str| {
        format!(
            "SELECT toString(function), toInt64(sum(flat)), toInt64(sum(cum)), toUInt64({profiles}) AS n FROM {t} \
             GROUP BY function HAVING n != 0 ORDER BY 1"
        )
    };
    let get = |sql: String| p.block_on(p.client().query(&sql).fetch_all()).unwrap();
    (
        get(q("function_values", "count()")),
        get(q("function_values_hourly", "sum(profiles)")),
        get(q("function_values_daily", "sum(profiles)")),
    )
}

fn rejected_profile_is_isolated(table: &str) {
    let p = Pipeline::start().unwrap();
    // ClickHouse itself refuses one profile's rows: a constraint, as a schema might have.
    p.block_on(p.client().query(&format!("ALTER TABLE {table} ADD CONSTRAINT no_poison CHECK function != 'main.poison'")).execute())
        .unwrap();
    let t0 = now() - chrono::Duration::minutes(20);
    let mut keys = Vec::new();
    let mut good_rows = 0;
    for i in 0..6 {
        let bytes = if i == 3 { profile_named("main.poison", 7) } else { profile_named(&format!("main.good{i}"), 10 + i) };
        if i != 3 {
            good_rows += function_rows(&bytes);
        }
        let k = key(if i == 3 { "poison" } else { "good" }, "cpu", t0 + chrono::Duration::seconds(i), i as u64);
        p.upload(&k, &bytes, &[]).unwrap();
        keys.push(k);
    }
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    p.deliver_events(&refs).unwrap();
    // One batch holds all six: the rejection must be isolated inside it.
    let out = p.run_env(&["worker", "--until-idle", "5s"], &[("PPROFHOUSE_BATCH_LINGER", "3s")], Duration::from_secs(240)).unwrap();
    assert_ok(&out, "worker with a poison profile");
    assert!(String::from_utf8_lossy(&out.stderr).contains("splitting"), "the batch was bisected:\n{}", tail_text(&out.stderr, 30));
    assert_eq!(p.profile_count().unwrap(), 5);
    assert_eq!(p.count("function_values").unwrap(), good_rows, "the good profiles stored once each");
    let dead = p.dead_letters().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["error_kind"], "rejected");
    assert_eq!(dead[0]["object"]["key"].as_str(), Some(keys[3].as_str()));
    assert!(dead[0]["reason"].as_str().unwrap().contains("no_poison"), "the reason is ClickHouse's error: {}", dead[0]);
    let (raw, hourly, daily) = raw_and_rollups(&p);
    assert_eq!(raw.len(), 5, "{raw:?}");
    assert_eq!(raw, hourly, "the hourly rollup holds exactly the raw rows: nothing doubled, nothing left of the poison");
    assert_eq!(raw, daily, "the daily rollup holds exactly the raw rows: nothing doubled, nothing left of the poison");
}

/// The fault the write path must survive: one table's insert fails after another's committed
/// (the daily rollup refuses while `function_values` already took the block). Nothing may be
/// marked stored; after the fault is gone, the replay stores everything exactly once.
#[test]
fn a_view_failing_after_another_committed_loses_and_doubles_nothing_after_replay() {
    let p = Pipeline::start().unwrap();
    let files: Vec<String> = ["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz", "go-workload-heap.pb.gz"]
        .iter()
        .map(|f| fixtures().join(f).display().to_string())
        .collect();
    let rows: u64 = files.iter().map(|f| function_rows(&std::fs::read(f).unwrap())).sum();
    let at = (now() - chrono::Duration::hours(2)).to_rfc3339();
    let load = || {
        let mut args = vec!["load", "--service", "fault", "--type", "cpu", "--time", &at];
        args.extend(files.iter().map(String::as_str));
        p.run(&args, Duration::from_secs(120)).unwrap()
    };
    p.block_on(p.client().query("ALTER TABLE function_values_daily ADD CONSTRAINT broken CHECK profiles = 0").execute()).unwrap();
    let out = load();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!((p.profile_count().unwrap(), p.count("function_values").unwrap()), (0, 0), "nothing marked, nothing left behind");
    p.block_on(p.client().query("ALTER TABLE function_values_daily DROP CONSTRAINT broken").execute()).unwrap();
    // The replay, twice: the second changes nothing.
    for n in 0..2 {
        let out = load();
        assert_ok(&out, "replay");
        assert_eq!(p.profile_count().unwrap(), 3, "replay {n}");
        assert_eq!(p.count("function_values").unwrap(), rows, "replay {n}: no duplicate or missing raw rows");
        let (raw, hourly, daily) = raw_and_rollups(&p);
        assert!(!raw.is_empty());
        assert_eq!(raw, hourly, "replay {n}: the hourly rollup equals the raw rows");
        assert_eq!(raw, daily, "replay {n}: the daily rollup equals the raw rows");
    }
}

/// Four profiles `load`ed as one batch under the service `crash`, abandoned between the data and
/// the markers: the markers' table refuses inserts for a while ([`Pipeline::refuse_markers`]),
/// so `load` gives up there, as a killed worker would stop.
struct Abandoned<'p> {
    p: &'p Pipeline,
    files: Vec<String>,
    rows: u64,
    at: String,
}

impl<'p> Abandoned<'p> {
    fn new(p: &'p Pipeline) -> Self {
        let files: Vec<String> = ["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz", "go-workload-heap.pb.gz", "go-heap-2021.pb.gz"]
            .iter()
            .map(|f| fixtures().join(f).display().to_string())
            .collect();
        let rows: u64 = files.iter().map(|f| function_rows(&std::fs::read(f).unwrap())).sum();
        let a = Abandoned { p, files, rows, at: (now() - chrono::Duration::hours(2)).to_rfc3339() };
        p.refuse_markers(true).unwrap();
        let out = a.load("crash", 0..4);
        assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
        assert!(String::from_utf8_lossy(&out.stderr).contains("TOO_MANY_PARTS"), "{}", tail_text(&out.stderr, 20));
        assert_eq!(a.count("SELECT count() FROM profiles FINAL WHERE service = 'crash'"), 0, "nothing marked stored");
        assert_eq!(p.count("function_values").unwrap(), rows, "the abandoned attempt's rows are there");
        assert!(a.count("SELECT count() FROM function_values_daily WHERE service = 'crash'") > 0, "and its rollup sums");
        p.refuse_markers(false).unwrap();
        a
    }

    fn count(&self, q: &str) -> u64 {
        self.p.block_on(self.p.client().query(q).fetch_one::<u64>()).unwrap()
    }

    /// `load` of `files[which]` under `service` (attempts quiet for 2 s are abandoned).
    fn load(&self, service: &str, which: std::ops::Range<usize>) -> std::process::Output {
        let mut args = vec!["load", "--service", service, "--type", "cpu", "--time", &self.at];
        args.extend(self.files[which].iter().map(String::as_str));
        self.p.run_env(&args, &[("PPROFHOUSE_ATTEMPT_ABANDONED_AFTER", "2s")], Duration::from_secs(120)).unwrap()
    }

    /// Loads the same files cleanly under `clean` and checks that `crash` holds the same: every
    /// profile marked once, the same function rows and stack values, and rollups equal to the
    /// raw rows.
    fn assert_stored_once(&self) {
        let p = self.p;
        assert_ok(&self.load("clean", 0..4), "clean load");
        assert_eq!(self.count("SELECT count() FROM profiles FINAL WHERE service = 'crash'"), 4);
        assert_eq!(p.count("function_values").unwrap(), 2 * self.rows, "every profile's rows once, under both services");
        let by_service = |q: &str| -> Vec<(String, String, i64, i64)> {
            let q = format!(
                "SELECT sample_type, toString(key), toInt64(sum(a)), toInt64(sum(b)) FROM ({q}) GROUP BY service, sample_type, key ORDER BY 1, 2"
            );
            let get = |svc: &str| p.block_on(p.client().query(&q.replace("{svc}", svc)).fetch_all::<(String, String, i64, i64)>()).unwrap();
            let (crash, clean) = (get("crash"), get("clean"));
            assert_eq!(crash, clean, "the crashed-and-replayed profiles hold what the clean load holds");
            crash
        };
        let functions =
            by_service("SELECT service, sample_type, function AS key, flat AS a, cum AS b FROM function_values WHERE service = '{svc}'");
        assert!(!functions.is_empty());
        let stacks =
            by_service("SELECT service, sample_type, stack_hash AS key, value AS a, 1 AS b FROM stack_values WHERE service = '{svc}'");
        assert!(!stacks.is_empty());
        let (raw, hourly, daily) = raw_and_rollups(p);
        assert_eq!(raw, hourly, "the hourly rollup equals the raw rows: the abandoned sums were taken back");
        assert_eq!(raw, daily, "the daily rollup equals the raw rows");
    }
}

/// A writer that stops for good between the data and the markers leaves raw rows and rollup
/// sums of profiles nobody marked stored. Those profiles come back in other batches, under other
/// tokens, which no table takes for duplicates: the first write of any of them must take the
/// abandoned attempt back out whole. Checked against the same files loaded cleanly.
#[test]
fn an_attempt_abandoned_between_data_and_markers_is_taken_back_when_its_profiles_return() {
    let p = Pipeline::start().unwrap();
    let a = Abandoned::new(&p);
    // The profiles come back in two other batches, each loaded twice. The first comes within
    // two seconds of the attempt (not yet taken for abandoned): it waits, then takes it back.
    for (n, which) in [0..1, 1..4].into_iter().enumerate() {
        for again in 0..2 {
            let out = a.load("crash", which.clone());
            assert_ok(&out, "replay");
            let log = String::from_utf8_lossy(&out.stderr);
            let first = n == 0 && again == 0;
            let (waited, took_back) =
                (log.contains("waiting for it to land or be abandoned"), log.contains("taking back an abandoned write"));
            assert_eq!(
                (waited, took_back),
                (first, first),
                "only the first write of a returning profile meets the attempt:\n{}",
                tail_text(&out.stderr, 20)
            );
        }
    }
    a.assert_stored_once();
}

/// Its profiles come back to two writers at once (their partitions went to two workers): both
/// meet the abandoned attempt, and taking it back twice, concurrently, must leave what taking
/// it back once leaves.
#[test]
fn two_writers_taking_back_the_same_abandoned_attempt_at_once_store_everything_once() {
    let p = Pipeline::start().unwrap();
    let a = Abandoned::new(&p);
    std::thread::sleep(Duration::from_millis(2200));
    let (x, y) = std::thread::scope(|s| {
        let x = s.spawn(|| a.load("crash", 0..2));
        let y = s.spawn(|| a.load("crash", 2..4));
        (x.join().unwrap(), y.join().unwrap())
    });
    assert_ok(&x, "first writer");
    assert_ok(&y, "second writer");
    let took_back = [&x, &y].iter().filter(|o| String::from_utf8_lossy(&o.stderr).contains("taking back an abandoned write")).count();
    assert!(took_back >= 1, "{}\n{}", tail_text(&x.stderr, 10), tail_text(&y.stderr, 10));
    eprintln!("{took_back} of the two writers took the attempt back");
    a.assert_stored_once();
}

/// A writer of a newer release against a database that lacks its migrations would have every
/// batch refused for good (an unknown table or column) and dead-letter good profiles. `load` and
/// `worker` refuse to start instead, naming the missing migration; `migrate` applies it again
/// (every statement of it can be re-run) and the same files then load.
#[test]
fn writers_refuse_to_start_against_a_schema_missing_their_migrations() {
    let p = Pipeline::start().unwrap();
    let file = fixtures().join("go-workload-cpu.pb.gz").display().to_string();
    let load = || p.run(&["load", "--service", "schema", "--type", "cpu", &file], Duration::from_secs(60)).unwrap();
    p.block_on(p.client().with_option("mutations_sync", "2").query("ALTER TABLE schema_migrations DELETE WHERE version = 12").execute())
        .unwrap();
    for out in [load(), p.run(&["worker", "--until-idle", "2s"], Duration::from_secs(60)).unwrap()] {
        assert_eq!(out.status.code(), Some(1), "{}", tail_text(&out.stderr, 20));
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains("lacks migration(s) 0012_attempts") && err.contains("run `pprofhouse migrate`"), "{err}");
    }
    assert_eq!(p.profile_count().unwrap(), 0);
    assert_ok(&p.run(&["migrate"], Duration::from_secs(120)).unwrap(), "migrate again");
    assert_ok(&load(), "load after migrate");
    assert_eq!(p.profile_count().unwrap(), 1);
}

#[test]
fn an_overwritten_key_stores_each_announced_version_once() {
    let p = Pipeline::start().unwrap();
    let k = key("rewritten", "cpu", now() - chrono::Duration::minutes(5), 1);
    let v1 = profile_named("main.version1", 100);
    let v2 = profile_named("main.version2", 200);
    // Version 1 is announced, then overwritten before the worker runs: its event is stale.
    p.upload(&k, &v1, &[]).unwrap();
    p.deliver_events(&[&k]).unwrap();
    p.upload(&k, &v2, &[]).unwrap();
    p.deliver_events(&[&k]).unwrap();
    let out = p.run_worker_until_idle(&[]).unwrap();
    assert_ok(&out, "worker over an overwritten key");
    let names: Vec<String> = p.block_on(p.client().query("SELECT DISTINCT function FROM function_values").fetch_all()).unwrap();
    assert_eq!(names, vec!["main.version2".to_string()], "only what is there now is stored, once");
    assert_eq!(p.profile_count().unwrap(), 1);
    let dead = p.dead_letters().unwrap();
    assert_eq!(dead.len(), 1, "{dead:?}");
    assert_eq!(dead[0]["error_kind"], "changed", "{}", dead[0]);
    // A replay of both events changes nothing.
    p.deliver_events(&[&k]).unwrap();
    assert_ok(&p.run_worker_until_idle(&[]).unwrap(), "replay");
    assert_eq!(p.profile_count().unwrap(), 1);
    assert_eq!(p.count("function_values").unwrap(), 1);
}

#[test]
fn a_file_without_its_own_time_loaded_twice_changes_nothing() {
    let p = Pipeline::start().unwrap();
    let mut prof =
        proto::Profile::decode(pprof::inflate(Bytes::from(fixture("go-workload-heap.pb.gz")), &Default::default()).unwrap()).unwrap();
    prof.time_nanos = 0;
    let path = p.dir().join("timeless.pb");
    std::fs::write(&path, prof.encode_to_vec()).unwrap();
    let load = || p.run(&["load", "--service", "dotnet-app", "--type", "heap", path.to_str().unwrap()], Duration::from_secs(60)).unwrap();
    let first = load();
    assert_ok(&first, "first load");
    let rows = p.count("function_values").unwrap();
    // A few seconds later the fallback time ("now") is another value; the id is not.
    std::thread::sleep(Duration::from_millis(2100));
    let second = load();
    assert_ok(&second, "second load");
    assert!(String::from_utf8_lossy(&second.stdout).contains("loaded 0 profiles"), "{}", String::from_utf8_lossy(&second.stdout));
    assert_eq!((p.profile_count().unwrap(), p.count("function_values").unwrap()), (1, rows));
}

#[test]
fn a_profile_older_than_every_retention_is_refused_by_load_with_the_reason() {
    let p = Pipeline::start().unwrap();
    let mut prof =
        proto::Profile::decode(pprof::inflate(Bytes::from(fixture("go-workload-heap.pb.gz")), &Default::default()).unwrap()).unwrap();
    prof.time_nanos = (now() - chrono::Duration::days(40)).timestamp_nanos_opt().unwrap();
    let recent = p.dir().join("forty-days.pb");
    std::fs::write(&recent, prof.encode_to_vec()).unwrap();
    prof.time_nanos = (now() - chrono::Duration::days(1000)).timestamp_nanos_opt().unwrap();
    let ancient = p.dir().join("ancient.pb");
    std::fs::write(&ancient, prof.encode_to_vec()).unwrap();
    let out = p
        .run(&["load", "--service", "old", "--type", "heap", recent.to_str().unwrap(), ancient.to_str().unwrap()], Duration::from_secs(60))
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("ancient.pb") && stderr.contains("older than every retention window"), "{stderr}");
    assert!(
        stderr.contains("forty-days.pb") && stderr.contains("raw rows"),
        "the 40-day-old file is loaded with a word on the raw retention: {stderr}"
    );
    assert_eq!(p.profile_count().unwrap(), 1, "the good file is stored");
}

#[test]
fn liveness_fails_while_the_worker_is_stuck_and_recovers() {
    let mut p = Pipeline::start().unwrap();
    let k = key("live", "cpu", now() - chrono::Duration::minutes(5), 1);
    p.upload(&k, &fixture("go-workload-cpu.pb.gz"), &[]).unwrap();
    let mut w = p.spawn_worker(&["--metrics-addr", "127.0.0.1:0", "--retry-budget", "2", "--max-backoff", "300ms"]).unwrap();
    let addr = w.metrics_addr(Duration::from_secs(30)).unwrap();
    let health = |path: &str| http_get(&addr, path, Duration::from_secs(5)).map(|(code, _)| code).unwrap_or(0);
    assert!(wait_until(Duration::from_secs(30), Duration::from_millis(100), || (health("/readyz") == 200).then_some(())).is_some());
    assert_eq!(health("/healthz"), 200);
    // ClickHouse goes away: the insert exhausts its retry budget and liveness says so.
    p.ch.stop().unwrap();
    p.deliver_events(&[&k]).unwrap();
    let stuck = wait_until(Duration::from_secs(90), Duration::from_millis(200), || (health("/healthz") == 503).then_some(()));
    assert!(stuck.is_some(), "liveness never failed:\n{}", w.stderr_tail(30));
    assert!(w.is_running(), "the worker keeps retrying; it does not give the batch up");
    p.ch.restart().unwrap();
    let back = wait_until(Duration::from_secs(90), Duration::from_millis(200), || {
        (p.profile_count().unwrap_or(0) == 1 && health("/healthz") == 200).then_some(())
    });
    assert!(back.is_some(), "no recovery:\n{}", w.stderr_tail(30));
    w.sigterm();
    assert!(w.wait(Duration::from_secs(30)).unwrap().is_some_and(|s| s.success()));
}

#[test]
fn secrets_never_show_in_help_or_logs() {
    let p = Pipeline::start().unwrap();
    let (ch_secret, sasl_secret) = ("ch-Secret-4f2a", "sasl,Secret,with,commas-9b1c");
    let env = [("PPROFHOUSE_CLICKHOUSE_PASSWORD", ch_secret), ("PPROFHOUSE_KAFKA_SASL_PASSWORD", sasl_secret), ("PPROFHOUSE_LOG", "debug")];
    for args in
        [&["--help"][..], &["worker", "--help"], &["load", "--help"], &["backfill", "--help"], &["report", "--help"], &["serve", "--help"]]
    {
        let out = p.run_env(args, &env, Duration::from_secs(30)).unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(
            !text.contains(ch_secret) && !text.contains("Secret-4f2a") && !text.contains("Secret,with"),
            "{args:?} shows a secret:\n{text}"
        );
    }
    // An error and a debug-level run: neither prints them.
    let out = p.run_env(&["migrate", "--clickhouse-url", "http://127.0.0.1:9"], &env, Duration::from_secs(60)).unwrap();
    assert!(!out.status.success());
    let out2 = p.run_env(&["worker", "--until-idle", "2s"], &env, Duration::from_secs(120)).unwrap();
    for o in [&out, &out2] {
        let text = format!("{}{}", String::from_utf8_lossy(&o.stdout), String::from_utf8_lossy(&o.stderr));
        assert!(!text.contains(ch_secret) && !text.contains("Secret,with"), "a secret in the output:\n{}", tail_text(text.as_bytes(), 40));
    }
}

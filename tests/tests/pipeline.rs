//! `pprofhouse worker` end to end and under faults, against the real components: S3 (s3s-fs),
//! Kafka (tansu), ClickHouse (chDB behind the front), a real Go service (goworkload) and
//! `go tool pprof` as the oracle. Objects are uploaded to S3, their events go through
//! `pprofhouse ingest-event` (envelopes) or straight onto the topic (raw MinIO events), and the
//! worker runs as a separate process, so it can be killed, interrupted and starved of its
//! dependencies.
//!
//! What every test checks in the end is the same: the SQL top over a window covering the
//! profiles equals `go tool pprof -top` over the same files, each object is stored exactly once
//! (`profiles FINAL`, and no duplicate rows in the raw `function_values` table), and offsets are
//! committed only for messages whose profiles are stored (or dead-lettered).
use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::Output;
use std::time::{Duration, Instant};

use chrono::{DateTime, SubsecRound, Utc};
use pprofhouse_ingest::layout::{profefe_key, profefe_type_number};
use pprofhouse_message::parse_message;
use pprofhouse_tests::goservice::{http_get, GoService};
use pprofhouse_tests::paths::fixtures;
use pprofhouse_tests::pipeline::{tail_text, wait_until, Pipeline, Worker, BUCKET};
use pprofhouse_tests::pprof::{go_pprof_top, Top};
use pprofhouse_transform::{explode, pprof, ExplodeOptions};

const CPU: &str = "cpu/nanoseconds";

fn start() -> Pipeline {
    Pipeline::start().expect("start ClickHouse, Kafka and S3 (infra/local/install all)")
}

fn fixture(name: &str) -> PathBuf {
    fixtures().join(name)
}

/// Now, whole seconds (xids carry seconds).
fn now() -> DateTime<Utc> {
    Utc::now().trunc_subsecs(0)
}

fn key(service: &str, ptype: &str, at: DateTime<Utc>, salt: u64, labels: &[(&str, &str)]) -> String {
    let labels: BTreeMap<String, String> = labels.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
    profefe_key(service, profefe_type_number(ptype).expect("profefe type"), at, salt, &labels)
}

fn iso(t: DateTime<Utc>) -> String {
    t.to_rfc3339()
}

/// `--type T --sample-type S --from .. --to ..` plus extra arguments, as owned strings.
fn top_args(ptype: &str, sample_type: &str, from: DateTime<Utc>, to: DateTime<Utc>, extra: &[&str]) -> Vec<String> {
    let mut a: Vec<String> =
        ["--type", ptype, "--sample-type", sample_type, "--from", &iso(from), "--to", &iso(to)].iter().map(|s| s.to_string()).collect();
    a.extend(extra.iter().map(|s| s.to_string()));
    a
}

fn sql_top(p: &Pipeline, args: &[String]) -> Top {
    let a: Vec<&str> = args.iter().map(String::as_str).collect();
    p.top(&a)
}

fn assert_success(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what}: exit {:?}\n--- stderr (tail) ---\n{}\n--- stdout (tail) ---\n{}",
        out.status,
        tail_text(&out.stderr, 80),
        tail_text(&out.stdout, 20)
    );
}

/// Function rows a profile contributes to `function_values` (non-zero flat or cum per sample
/// type and function).
fn function_rows(path: &std::path::Path) -> u64 {
    let p = pprof::decode(std::fs::read(path).unwrap(), &Default::default()).unwrap();
    explode(&p, ExplodeOptions::default()).all_rows().len() as u64
}

/// The sample types (`type/unit`) of a profile.
fn sample_types(bytes: &[u8]) -> Vec<String> {
    let p = pprof::decode(bytes.to_vec(), &Default::default()).unwrap();
    explode(&p, ExplodeOptions::default()).facts.sample_types.iter().map(|t| t.to_string()).collect()
}

/// Messages on the profiles topic: (partition, offset, object key).
fn topic_objects(p: &Pipeline) -> Vec<(i32, i64, String)> {
    p.messages()
        .unwrap()
        .iter()
        .map(|m| {
            let objs = parse_message(&m.payload).expect("readable message");
            (m.partition, m.offset, objs[0].key.clone())
        })
        .collect()
}

/// Contract: an offset is committed only once the message's profile is stored (or its dead
/// letter written): every committed message's object is in `profiles` or on the DLQ.
///
/// The committed offsets are read first. A worker still running stores, then commits: read the
/// other way round, a profile stored and committed between the two reads would look committed
/// but not stored.
fn assert_committed_are_stored(p: &Pipeline, ctx: &str) {
    let committed = p.committed_offsets().unwrap();
    let stored: BTreeSet<String> = p.stored_keys().unwrap().into_iter().collect();
    assert_committed_within(p, &committed, &stored, ctx);
}

/// Every message below `committed` has its object in `stored` or on the DLQ (read after
/// `committed`, like `stored` should be unless nothing can be stored meanwhile).
fn assert_committed_within(p: &Pipeline, committed: &BTreeMap<i32, i64>, stored: &BTreeSet<String>, ctx: &str) {
    let dead: BTreeSet<String> = p.dead_letters().unwrap().iter().filter_map(|d| d["object"]["key"].as_str().map(String::from)).collect();
    for (part, off, key) in topic_objects(p) {
        if committed.get(&part).is_some_and(|&c| off < c) {
            assert!(
                stored.contains(&key) || dead.contains(&key),
                "{ctx}: partition {part} offset {off} is committed (committed: {committed:?}) but {key} is neither stored nor dead-lettered"
            );
        }
    }
}

/// After a clean exit: every message consumed is committed (the next offset of each partition).
fn assert_all_committed(p: &Pipeline, ctx: &str) {
    let want = topic_end_offsets(p);
    let got = p.committed_offsets().unwrap();
    for (part, next) in &want {
        assert_eq!(got.get(part), Some(next), "{ctx}: committed offsets {got:?}, messages end at {want:?}");
    }
}

/// One past the last message of each partition of the profiles topic that has any.
fn topic_end_offsets(p: &Pipeline) -> BTreeMap<i32, i64> {
    let mut ends: BTreeMap<i32, i64> = BTreeMap::new();
    for (part, off, _) in topic_objects(p) {
        let e = ends.entry(part).or_insert(0);
        *e = (*e).max(off + 1);
    }
    ends
}

fn wait_for_count(p: &Pipeline, n: u64, timeout: Duration, worker: Option<&mut Worker>) -> u64 {
    let mut last = 0;
    let got = wait_until(timeout, Duration::from_millis(200), || {
        last = p.profile_count().unwrap_or(last);
        (last >= n).then_some(last)
    });
    match got {
        Some(c) => c,
        None => panic!(
            "{last} of {n} profiles stored after {timeout:?}; worker stderr:\n{}",
            worker.map(|w| w.stderr_tail(60)).unwrap_or_default()
        ),
    }
}

/// SIGTERM and expect exit 0 within a minute.
fn terminate(w: &mut Worker, ctx: &str) {
    w.sigterm();
    let status = w.wait(Duration::from_secs(60)).unwrap();
    match status {
        Some(s) => assert!(s.success(), "{ctx}: worker exit {s} after SIGTERM; stderr:\n{}", w.stderr_tail(60)),
        None => panic!("{ctx}: worker still running 60 s after SIGTERM; stderr:\n{}", w.stderr_tail(60)),
    }
}

/// Uploads `n` CPU fixture profiles (alternating the two Go CPU fixtures) as profefe keys of 10
/// services, one second apart from `base`; returns (keys, files).
fn upload_cpu_fleet(p: &Pipeline, n: usize, base: DateTime<Utc>, salt0: u64, tag: &str) -> (Vec<String>, Vec<PathBuf>) {
    let files = [fixture("go-workload-cpu.pb.gz"), fixture("go-cpu-labels.pb.gz")];
    let mut keys = Vec::new();
    let mut paths = Vec::new();
    for i in 0..n {
        let f = &files[i % 2];
        let k = key(&format!("{tag}-{}", i % 10), "cpu", base + chrono::Duration::seconds(i as i64), salt0 + i as u64, &[("batch", tag)]);
        p.upload_file(&k, f).unwrap();
        keys.push(k);
        paths.push(f.clone());
    }
    (keys, paths)
}

fn deliver(p: &Pipeline, keys: &[String]) {
    let refs: Vec<&str> = keys.iter().map(String::as_str).collect();
    let report = p.deliver_events(&refs).unwrap();
    assert_eq!(report["enqueued"].as_u64(), Some(keys.len() as u64), "{report}");
}

/// The CPU top over the window, the profile count and the raw row count: what must not change.
fn snapshot(p: &Pipeline, from: DateTime<Utc>, to: DateTime<Utc>) -> (u64, u64, Top) {
    (p.profile_count().unwrap(), p.count("function_values").unwrap(), sql_top(p, &top_args("cpu", CPU, from, to, &[])))
}

/// The end state every fault test must reach: exactly `keys` stored, once each (no duplicate
/// raw rows), the SQL top equal to `go tool pprof -top` over `files`, every message committed,
/// nothing dead-lettered.
fn assert_stored_exactly_once(p: &Pipeline, keys: &[String], files: &[PathBuf], t0: DateTime<Utc>, ctx: &str) {
    assert_eq!(p.profile_count().unwrap(), keys.len() as u64, "{ctx}");
    let mut want_keys = keys.to_vec();
    want_keys.sort();
    assert_eq!(p.stored_keys().unwrap(), want_keys, "{ctx}");
    let rows: u64 = files.iter().map(|f| function_rows(f)).sum();
    assert_eq!(p.count("function_values").unwrap(), rows, "{ctx}: duplicate or missing raw rows");
    let (from, to) = (t0 - chrono::Duration::hours(1), now() + chrono::Duration::hours(1));
    assert_eq!(sql_top(p, &top_args("cpu", CPU, from, to, &[])), go_pprof_top(files, CPU), "{ctx}");
    assert_all_committed(p, ctx);
    assert!(p.dead_letters().unwrap().is_empty(), "{ctx}");
}

// ---------------------------------------------------------------------------------------------
// a. A real Go service

#[test]
fn real_go_service_profiles_through_the_worker_equal_go_tool_pprof() {
    let p = start();
    // allocs has no profefe type number: those keys use a template layout.
    p.set_env("PPROFHOUSE_INGEST_LAYOUTS", "scrapes/{service}/{type}/{unix}/{name}");
    let svc = GoService::start().expect("build and start goworkload (needs `go`)");
    let t0 = now() - chrono::Duration::minutes(30);
    let scraped = p.dir().join("scraped");
    std::fs::create_dir_all(&scraped).unwrap();

    // (profile type, key, file, service)
    let mut objects: Vec<(String, String, PathBuf, String)> = Vec::new();
    for (i, service) in ["checkout", "search"].iter().enumerate() {
        let at = t0 + chrono::Duration::minutes(5 * i as i64);
        let types: &[&str] =
            if i == 0 { &["cpu", "heap", "allocs", "goroutine", "threadcreate", "block", "mutex"] } else { &["cpu", "heap"] };
        for ptype in types {
            let bytes = svc.fetch(ptype).unwrap();
            // A type with nothing recorded yet (block, mutex) is an empty profile, stored too.
            if let Err(e) = pprof::decode(bytes.clone(), &Default::default()) {
                panic!("scraped {ptype} does not decode: {e}");
            }
            let file = scraped.join(format!("{service}-{ptype}.pb.gz"));
            std::fs::write(&file, &bytes).unwrap();
            let k = if *ptype == "allocs" {
                format!("scrapes/{service}/allocs/{}/allocs.pb.gz", at.timestamp())
            } else {
                key(service, ptype, at, i as u64, &[("scrape", &i.to_string())])
            };
            p.upload(&k, &bytes, &[]).unwrap();
            objects.push((ptype.to_string(), k, file, service.to_string()));
        }
    }
    drop(svc);
    let keys: Vec<String> = objects.iter().map(|o| o.1.clone()).collect();
    deliver(&p, &keys);
    let n = objects.len() as u64;

    let mut w = p.spawn_worker(&["--metrics-addr", "127.0.0.1:0"]).unwrap();
    let addr = w.metrics_addr(Duration::from_secs(60)).unwrap();
    let (status, body) = http_get(&addr, "/healthz", Duration::from_secs(10)).unwrap();
    assert_eq!((status, String::from_utf8_lossy(&body).trim()), (200, "ok"), "/healthz");
    // Metrics reach the totals once everything is through.
    let mut last = String::new();
    let m = wait_until(Duration::from_secs(120), Duration::from_millis(250), || {
        let m = w.metrics().ok()?;
        last = m.text.clone();
        (m.sum("pprofhouse_worker_messages_total", &[]) >= n as f64 && m.sum("pprofhouse_worker_profiles_total", &[]) >= n as f64)
            .then_some(m)
    })
    .unwrap_or_else(|| panic!("metrics never counted {n} messages and profiles:\n{last}\nstderr:\n{}", w.stderr_tail(60)));
    assert_eq!(m.sum("pprofhouse_worker_messages_total", &[("outcome", "ok")]), n as f64, "{}", m.text);
    assert_eq!(m.sum("pprofhouse_worker_messages_total", &[("outcome", "dead_letter")]), 0.0, "{}", m.text);
    assert_eq!(m.sum("pprofhouse_worker_profiles_total", &[]), n as f64, "{}", m.text);
    let rows: u64 = objects.iter().map(|o| function_rows(&o.2)).sum();
    assert_eq!(m.sum("pprofhouse_worker_function_rows_total", &[]), rows as f64, "{}", m.text);
    terminate(&mut w, "idle worker");

    assert_eq!(p.profile_count().unwrap(), n);
    assert_eq!(p.count("function_values").unwrap(), rows);
    assert_all_committed(&p, "after SIGTERM");
    assert!(p.dead_letters().unwrap().is_empty(), "{:?}", p.dead_letters().unwrap());

    // Every profile type and every sample type: SQL top over the window = go tool pprof.
    let (from, to) = (t0 - chrono::Duration::hours(1), now() + chrono::Duration::hours(1));
    let types: BTreeSet<&str> = objects.iter().map(|o| o.0.as_str()).collect();
    for ptype in types {
        let files: Vec<PathBuf> = objects.iter().filter(|o| o.0 == ptype).map(|o| o.2.clone()).collect();
        for st in sample_types(&std::fs::read(&files[0]).unwrap()) {
            let want = go_pprof_top(&files, &st);
            assert_eq!(sql_top(&p, &top_args(ptype, &st, from, to, &[])), want, "{ptype} {st}");
            if ptype == "cpu" || ptype == "heap" {
                assert!(!want.is_empty(), "{ptype} {st}: the oracle is empty");
                // One service, and one label, pick one scrape.
                let one: Vec<PathBuf> = objects.iter().filter(|o| o.0 == ptype && o.3 == "search").map(|o| o.2.clone()).collect();
                let want_one = go_pprof_top(&one, &st);
                assert_eq!(sql_top(&p, &top_args(ptype, &st, from, to, &["--service", "search"])), want_one, "{ptype} {st} search");
                assert_eq!(sql_top(&p, &top_args(ptype, &st, from, to, &["--label", "scrape=1"])), want_one, "{ptype} {st} scrape=1");
            }
        }
    }
    // The profile time is the key's creation time, not the upload time.
    let first = sql_top(&p, &top_args("cpu", CPU, t0 - chrono::Duration::minutes(1), t0 + chrono::Duration::minutes(1), &[]));
    let checkout_cpu: Vec<PathBuf> = objects.iter().filter(|o| o.0 == "cpu" && o.3 == "checkout").map(|o| o.2.clone()).collect();
    assert_eq!(first, go_pprof_top(&checkout_cpu, CPU), "window around the first scrape's created_at");
}

// ---------------------------------------------------------------------------------------------
// b. Redelivery

#[test]
fn the_same_object_delivered_many_times_is_stored_once() {
    let p = start();
    let t0 = now() - chrono::Duration::minutes(20);
    let k_cpu = key("api", "cpu", t0, 1, &[("zone", "eu")]);
    let k_heap = key("api", "heap", t0, 2, &[]);
    p.upload_file(&k_cpu, &fixture("go-workload-cpu.pb.gz")).unwrap();
    p.upload_file(&k_heap, &fixture("go-workload-heap.pb.gz")).unwrap();
    let keys = vec![k_cpu.clone(), k_heap.clone()];
    deliver(&p, &keys);
    assert_success(&p.run_worker_until_idle(&[]).unwrap(), "first worker run");
    let (from, to) = (t0 - chrono::Duration::hours(1), now() + chrono::Duration::hours(1));
    let before = snapshot(&p, from, to);
    assert_eq!(before.0, 2);
    assert_eq!(before.2, go_pprof_top(&[fixture("go-workload-cpu.pb.gz")], CPU));
    let heap_before = sql_top(&p, &top_args("heap", "inuse_space/bytes", from, to, &[]));
    assert_eq!(heap_before, go_pprof_top(&[fixture("go-workload-heap.pb.gz")], "inuse_space/bytes"));

    // Twice more through the trigger, and once each as a raw MinIO event (no metadata: the
    // worker resolves it from the key, to the same profile).
    deliver(&p, &keys);
    deliver(&p, &keys);
    p.deliver_raw_event(&k_cpu, std::fs::metadata(fixture("go-workload-cpu.pb.gz")).unwrap().len()).unwrap();
    p.deliver_raw_event(&k_heap, std::fs::metadata(fixture("go-workload-heap.pb.gz")).unwrap().len()).unwrap();
    assert_eq!(p.messages().unwrap().len(), 8);
    let out = p.run_worker_until_idle(&[]).unwrap();
    assert_success(&out, "second worker run");
    // The second run did consume everything (else "unchanged" would prove nothing).
    assert_all_committed(&p, "after the redeliveries");
    assert_eq!(snapshot(&p, from, to), before, "redelivery changed the stored data");
    assert_eq!(sql_top(&p, &top_args("heap", "inuse_space/bytes", from, to, &[])), heap_before);
    assert_eq!(p.stored_keys().unwrap(), {
        let mut k = keys.clone();
        k.sort();
        k
    });
    assert!(p.dead_letters().unwrap().is_empty(), "{:?}", p.dead_letters().unwrap());
}

// ---------------------------------------------------------------------------------------------
// c. Bad objects

/// 300 MiB of zeros, gzipped (about 300 KB).
fn gzip_bomb() -> Vec<u8> {
    use std::io::Write;
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
    let zeros = vec![0u8; 1 << 20];
    for _ in 0..300 {
        e.write_all(&zeros).unwrap();
    }
    e.finish().unwrap()
}

/// A valid (raw protobuf) profile padded with an unknown 2 MiB field: fine but for its size.
fn oversized_profile() -> Vec<u8> {
    let mut b = std::fs::read(fixture("go-heap-2021-uncompressed.pb")).unwrap();
    let pad = 2usize << 20;
    // Field 1000, wire type 2 (length-delimited): tag varint, length varint, bytes.
    for mut v in [(1000u64 << 3) | 2, pad as u64] {
        loop {
            let byte = (v & 0x7f) as u8;
            v >>= 7;
            if v == 0 {
                b.push(byte);
                break;
            }
            b.push(byte | 0x80);
        }
    }
    b.extend(std::iter::repeat_n(0xA5u8, pad));
    b
}

#[test]
fn bad_objects_are_dead_lettered_once_each_and_the_good_ones_stored() {
    let p = start();
    p.set_env("PPROFHOUSE_MAX_DECOMPRESSED_BYTES", &(64u64 << 20).to_string());
    let t0 = now() - chrono::Duration::minutes(10);
    let cpu = std::fs::read(fixture("go-workload-cpu.pb.gz")).unwrap();
    let bomb = gzip_bomb();
    assert!(bomb.len() < 1 << 20, "bomb is {} bytes", bomb.len());
    let oversized = oversized_profile();
    assert!(pprof::decode(oversized.clone(), &Default::default()).is_ok(), "the padded profile must itself be valid");
    let garbage: Vec<u8> = b"this is not a pprof profile, only some text that a client uploaded by mistake\n".repeat(20);
    assert!(pprof::decode(garbage.clone(), &Default::default()).is_err());
    // (key, bytes to upload (None: never uploaded), size the event claims, expected error_kind)
    let bad: Vec<(String, Option<Vec<u8>>, u64, &str)> = vec![
        (key("bad-truncated", "cpu", t0, 1, &[]), Some(cpu[..cpu.len() / 2].to_vec()), 0, "truncated"),
        (key("bad-garbage", "cpu", t0, 2, &[]), Some(garbage), 0, "not_profile"),
        // Overwritten with an empty object after the event (the event's size is stale).
        (key("bad-empty", "cpu", t0, 3, &[]), Some(Vec::new()), 1234, "empty"),
        (key("bad-bomb", "heap", t0, 4, &[]), Some(bomb), 0, "over_limit"),
        (key("bad-oversized", "heap", t0, 5, &[]), Some(oversized), 0, "over_limit"),
        (key("bad-missing", "cpu", t0, 6, &[]), None, 4321, "not_found"),
    ];
    // The idle process's profile has no sample: valid, stored, never dead-lettered.
    let idle = pprofhouse_tests::oracle::real_fixtures().join("go-idle-cpu.pb.gz");
    let good = [
        (key("good", "cpu", t0, 7, &[]), fixture("go-workload-cpu.pb.gz")),
        (key("good", "cpu", t0 + chrono::Duration::seconds(1), 8, &[]), fixture("go-cpu-labels.pb.gz")),
        (key("idle", "cpu", t0 + chrono::Duration::seconds(2), 9, &[]), idle),
    ];
    let mut records: Vec<(String, u64)> = Vec::new();
    for (k, bytes, claimed, _) in &bad {
        if let Some(b) = bytes {
            p.upload(k, b, &[]).unwrap();
        }
        let size = if *claimed > 0 { *claimed } else { bytes.as_ref().map(|b| b.len() as u64).unwrap() };
        records.push((k.clone(), size));
    }
    // Good objects before and after the bad ones.
    for (k, f) in &good {
        p.upload_file(k, f).unwrap();
    }
    records.insert(0, (good[0].0.clone(), std::fs::metadata(&good[0].1).unwrap().len()));
    for (k, f) in &good[1..] {
        records.push((k.clone(), std::fs::metadata(f).unwrap().len()));
    }
    let refs: Vec<(&str, u64)> = records.iter().map(|(k, s)| (k.as_str(), *s)).collect();
    let report = p.deliver_records(&refs).unwrap();
    assert_eq!(report["enqueued"].as_u64(), Some(records.len() as u64), "{report}");

    let out = p.run_worker_until_idle(&["--max-object-bytes", &(1u64 << 20).to_string()]).unwrap();
    assert_success(&out, "worker over bad objects");

    // Exactly one dead letter per bad object, with the kind, the reason and the original message.
    let originals: BTreeMap<String, String> = p
        .messages()
        .unwrap()
        .iter()
        .map(|m| (parse_message(&m.payload).unwrap()[0].key.clone(), String::from_utf8(m.payload.clone()).unwrap()))
        .collect();
    let records_dlq = p.dead_letter_records().unwrap();
    let mut by_key: BTreeMap<String, Vec<(serde_json::Value, Option<String>)>> = BTreeMap::new();
    for r in &records_dlq {
        let v: serde_json::Value = serde_json::from_slice(&r.payload).unwrap();
        let k = v["object"]["key"].as_str().unwrap_or_else(|| panic!("dead letter without object.key: {v}")).to_string();
        by_key.entry(k).or_default().push((v, r.header("pprofhouse-reason").map(String::from)));
    }
    let stderr = String::from_utf8_lossy(&out.stderr);
    for (k, _, _, kind) in &bad {
        let got = by_key.get(k).unwrap_or_else(|| {
            panic!("no dead letter for {k} (want {kind}); DLQ: {by_key:#?}\nstderr:\n{}", tail_text(stderr.as_bytes(), 60))
        });
        assert_eq!(got.len(), 1, "{k}: {got:#?}");
        let (v, header) = &got[0];
        assert_eq!(v["error_kind"].as_str(), Some(*kind), "{k}: {v:#}");
        assert_eq!(v["stage"].as_str(), Some("worker"), "{k}: {v:#}");
        assert!(v["v"].as_u64().is_some_and(|x| x >= 1), "{k}: {v:#}");
        assert!(v["reason"].as_str().is_some_and(|r| !r.trim().is_empty()), "{k}: {v:#}");
        assert_eq!(v["object"]["bucket"].as_str(), Some(BUCKET), "{k}: {v:#}");
        assert_eq!(v["original_message"].as_str(), Some(originals[k].as_str()), "{k}: original message");
        assert!(header.as_deref().is_some_and(|h| !h.trim().is_empty()), "{k}: no pprofhouse-reason header");
    }
    assert_eq!(records_dlq.len(), bad.len(), "{by_key:#?}");

    // The good ones are stored, and only they.
    let mut want_keys: Vec<String> = good.iter().map(|g| g.0.clone()).collect();
    want_keys.sort();
    assert_eq!(p.stored_keys().unwrap(), want_keys);
    let (from, to) = (t0 - chrono::Duration::hours(1), now() + chrono::Duration::hours(1));
    let good_files: Vec<PathBuf> = good.iter().map(|g| g.1.clone()).collect();
    assert_eq!(sql_top(&p, &top_args("cpu", CPU, from, to, &[])), go_pprof_top(&good_files, CPU));
    assert!(sql_top(&p, &top_args("heap", "inuse_space/bytes", from, to, &[])).is_empty());
    assert_all_committed(&p, "dead letters are committed too");

    // A second run finds nothing to do: no dead letter is written twice.
    assert_success(&p.run_worker_until_idle(&[]).unwrap(), "second worker run");
    assert_eq!(p.dead_letter_records().unwrap().len(), bad.len());
    assert_eq!(p.profile_count().unwrap(), good.len() as u64);
}

// ---------------------------------------------------------------------------------------------
// d. kill -9

#[test]
fn worker_killed_mid_run_then_restarted_stores_everything_exactly_once() {
    let p = start();
    // Many small batches that linger: a kill lands between inserts and commits.
    p.set_env("PPROFHOUSE_BATCH_LINGER", "2s");
    p.set_env("PPROFHOUSE_BATCH_ROWS", "2000");
    let n = 200;
    let t0 = now() - chrono::Duration::hours(1);
    let (keys, files) = upload_cpu_fleet(&p, n, t0, 0, "fleet");
    deliver(&p, &keys);

    let mut w = p.spawn_worker(&[]).unwrap();
    let started = Instant::now();
    // Kill as soon as the first rows are in.
    let first = wait_until(Duration::from_secs(90), Duration::from_millis(50), || {
        let c = p.profile_count().unwrap_or(0);
        (c > 0 || !w.is_running()).then_some(c)
    });
    assert!(w.is_running(), "worker exited on its own: {}", w.stderr_tail(40));
    let at_kill = first.unwrap_or_else(|| panic!("no rows after 90 s: {}", w.stderr_tail(40)));
    let status = w.kill9().unwrap();
    let killed_at = Instant::now();
    assert!(!status.success());
    let after_kill = p.profile_count().unwrap();
    eprintln!("kill -9 after {:?}: {at_kill} profiles stored at the kill, {after_kill} right after", started.elapsed());
    assert!(after_kill > 0);
    assert_committed_are_stored(&p, "after kill -9");

    p.wait_out_dead_member(killed_at);
    let out = p.run_worker_until_idle(&[]).unwrap();
    assert_success(&out, "restarted worker");
    assert_eq!(keys.len(), n);
    assert_stored_exactly_once(&p, &keys, &files, t0, "after the restart");
}

/// The worker killed between a batch's data and its markers: the markers' table refuses inserts
/// for a while ("too many parts", transient), so the worker sits retrying them with the data and
/// the rollup sums in, and is killed there. Its messages come back to a worker that cuts batches
/// of another shape (one profile each): other tokens, which no table takes for duplicates. The
/// first of them must take the abandoned attempt back out, so everything is stored once, the
/// rollups included.
#[test]
fn worker_killed_between_data_and_markers_stores_everything_once_in_other_batches() {
    let p = start();
    p.set_env("PPROFHOUSE_ATTEMPT_ABANDONED_AFTER", "2s");
    let t0 = now() - chrono::Duration::hours(1);
    let (keys, files) = upload_cpu_fleet(&p, 6, t0, 0, "crash");
    let rows: u64 = files.iter().map(|f| function_rows(f)).sum();
    let count = |q: &str| p.block_on(p.client().query(q).fetch_one::<u64>()).unwrap();
    p.refuse_markers(true).unwrap();
    deliver(&p, &keys);
    let mut w = p.spawn_worker(&["--batch-linger", "3s"]).unwrap();
    let landed = wait_until(Duration::from_secs(90), Duration::from_millis(100), || {
        (p.count("function_values").unwrap_or(0) == rows && count("SELECT count() FROM function_values_daily") > 0).then_some(())
    });
    assert!(landed.is_some(), "the batch's data never landed: {}", w.stderr_tail(40));
    std::thread::sleep(Duration::from_millis(500));
    assert!(w.is_running(), "the worker keeps retrying the markers: {}", w.stderr_tail(40));
    assert_eq!(count("SELECT count() FROM profiles FINAL WHERE service != 'other'"), 0, "nothing marked stored");
    w.kill9().unwrap();
    let killed_at = Instant::now();
    p.refuse_markers(false).unwrap();
    p.wait_out_dead_member(killed_at);
    let out = p.run_worker_until_idle(&["--batch-rows", "1"]).unwrap();
    assert_success(&out, "restarted worker");
    let log = String::from_utf8_lossy(&out.stderr);
    assert!(log.contains("taking back an abandoned write"), "{}", tail_text(&out.stderr, 30));
    assert_stored_exactly_once(&p, &keys, &files, t0, "after the replay in other batches");
    let sums = |t: &str, n: &str| -> Vec<(String, i64, i64, u64)> {
        let q = format!(
            "SELECT toString(function), toInt64(sum(flat)), toInt64(sum(cum)), toUInt64({n}) AS n FROM {t} GROUP BY function HAVING n != 0 ORDER BY 1"
        );
        p.block_on(p.client().query(&q).fetch_all()).unwrap()
    };
    let raw = sums("function_values", "count()");
    assert!(!raw.is_empty());
    assert_eq!(raw, sums("function_values_hourly", "sum(profiles)"), "the hourly rollup holds each profile once");
    assert_eq!(raw, sums("function_values_daily", "sum(profiles)"), "the daily rollup holds each profile once");
}

// ---------------------------------------------------------------------------------------------
// e. ClickHouse goes away and comes back

#[test]
fn clickhouse_restart_while_the_worker_runs_loses_nothing() {
    let mut p = start();
    let t0 = now() - chrono::Duration::hours(2);
    let (keys_a, files_a) = upload_cpu_fleet(&p, 30, t0, 0, "a");
    let (keys_b, files_b) = upload_cpu_fleet(&p, 30, t0 + chrono::Duration::minutes(10), 1000, "b");
    let mut w = p.spawn_worker(&["--metrics-addr", "127.0.0.1:0"]).unwrap();
    deliver(&p, &keys_a);
    wait_for_count(&p, 30, Duration::from_secs(120), Some(&mut w));

    // ClickHouse down, new work arrives: the worker must hold it and retry.
    let stored_before: BTreeSet<String> = p.stored_keys().unwrap().into_iter().collect();
    p.ch.stop().unwrap();
    deliver(&p, &keys_b);
    std::thread::sleep(Duration::from_secs(5));
    assert!(w.is_running(), "worker died with ClickHouse down: {}", w.stderr_tail(60));
    let m = w.metrics().unwrap();
    assert!(m.sum("pprofhouse_worker_errors_total", &[]) > 0.0, "no error counted while ClickHouse was down:\n{}", m.text);
    assert_eq!(m.sum("pprofhouse_worker_messages_total", &[("outcome", "dead_letter")]), 0.0, "{}", m.text);
    // Nothing that arrived during the outage may be committed (nothing can be stored meanwhile,
    // so the stored keys read before the outage are the ones to hold the commits to).
    assert_committed_within(&p, &p.committed_offsets().unwrap(), &stored_before, "ClickHouse down");
    p.ch.restart().unwrap();

    wait_for_count(&p, 60, Duration::from_secs(180), Some(&mut w));
    terminate(&mut w, "after the ClickHouse restart");
    assert_eq!(p.profile_count().unwrap(), 60);
    let files: Vec<PathBuf> = files_a.iter().chain(&files_b).cloned().collect();
    let rows: u64 = files.iter().map(|f| function_rows(f)).sum();
    assert_eq!(p.count("function_values").unwrap(), rows, "duplicate or missing raw rows");
    let (from, to) = (t0 - chrono::Duration::hours(1), now() + chrono::Duration::hours(1));
    assert_eq!(sql_top(&p, &top_args("cpu", CPU, from, to, &[])), go_pprof_top(&files, CPU));
    assert_all_committed(&p, "after the ClickHouse restart");
    assert!(p.dead_letters().unwrap().is_empty(), "{:?}", p.dead_letters().unwrap());
}

// ---------------------------------------------------------------------------------------------
// f. The broker goes away and comes back (in-memory tansu: it comes back empty)

#[test]
fn worker_survives_a_broker_outage_while_idle() {
    let mut p = start();
    let t0 = now() - chrono::Duration::hours(3);
    let (keys_a, files_a) = upload_cpu_fleet(&p, 4, t0, 0, "before");
    let (keys_b, files_b) = upload_cpu_fleet(&p, 6, t0 + chrono::Duration::minutes(10), 100, "after");
    let mut w = p.spawn_worker(&["--until-idle", "30s"]).unwrap();
    deliver(&p, &keys_a);
    wait_for_count(&p, 4, Duration::from_secs(120), Some(&mut w));
    // Idle means committed too: no commit of the first batch may reach the broker that comes back.
    wait_until(Duration::from_secs(60), Duration::from_millis(200), || {
        let ends = topic_end_offsets(&p);
        (p.committed_offsets().ok()? == ends).then_some(())
    })
    .unwrap_or_else(|| panic!("the first batch was not committed within 60 s: {}", w.stderr_tail(60)));

    // Stop the broker while the worker is idle; bring it back (empty) and recreate the topics.
    let assigned = |w: &Worker| w.stderr().matches("partitions assigned").count();
    let assignments_before = assigned(&w);
    p.kafka.stop();
    std::thread::sleep(Duration::from_secs(3));
    assert!(w.is_running(), "worker died with the broker down: {}", w.stderr_tail(60));
    p.kafka.restart().unwrap();
    p.create_topics().unwrap();
    // The broker lost its log and its groups (memory storage). Until the worker has joined the
    // new group, it fetches from its old positions, which are past the new partitions' ends; a
    // message delivered then, below such a position, would be skipped (tansu does not answer
    // OFFSET_OUT_OF_RANGE). A broker that keeps its log has no such window, so the new work
    // goes in once the worker has its partitions again, from the new broker's (empty) offsets.
    wait_until(Duration::from_secs(90), Duration::from_millis(200), || (assigned(&w) > assignments_before).then_some(()))
        .unwrap_or_else(|| panic!("the worker did not rejoin the group within 90 s: {}", w.stderr_tail(60)));
    deliver(&p, &keys_b);

    let status = w.wait(Duration::from_secs(180)).unwrap();
    match status {
        Some(s) => assert!(s.success(), "worker exit {s}: {}", w.stderr_tail(60)),
        None => panic!("worker did not exit on idle within 180 s ({} profiles stored): {}", p.profile_count().unwrap(), w.stderr_tail(60)),
    }
    assert_eq!(p.profile_count().unwrap(), 10, "worker stderr:\n{}", w.stderr_tail(60));
    let files: Vec<PathBuf> = files_a.iter().chain(&files_b).cloned().collect();
    let (from, to) = (t0 - chrono::Duration::hours(1), now() + chrono::Duration::hours(1));
    assert_eq!(sql_top(&p, &top_args("cpu", CPU, from, to, &[])), go_pprof_top(&files, CPU));
    assert_all_committed(&p, "after the broker restart");
    assert!(p.dead_letters().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// g. SIGTERM while busy

#[test]
fn sigterm_during_work_exits_0_and_loses_nothing() {
    let p = start();
    p.set_env("PPROFHOUSE_BATCH_LINGER", "2s");
    p.set_env("PPROFHOUSE_BATCH_ROWS", "2000");
    let n = 100;
    let t0 = now() - chrono::Duration::hours(4);
    let (keys, files) = upload_cpu_fleet(&p, n, t0, 0, "term");
    deliver(&p, &keys);
    let mut w = p.spawn_worker(&[]).unwrap();
    let started = Instant::now();
    wait_until(Duration::from_secs(90), Duration::from_millis(50), || (p.profile_count().unwrap_or(0) > 0).then_some(()))
        .unwrap_or_else(|| panic!("no rows after 90 s: {}", w.stderr_tail(40)));
    assert!(w.is_running());
    terminate(&mut w, "SIGTERM during work");
    let stored = p.profile_count().unwrap();
    eprintln!("SIGTERM after {:?}: {stored} of {n} stored at exit", started.elapsed());
    assert_committed_are_stored(&p, "after SIGTERM");
    // A clean stop flushed and committed what it had: nothing stored is left uncommitted.
    let committed = p.committed_offsets().unwrap();
    let stored_keys: BTreeSet<String> = p.stored_keys().unwrap().into_iter().collect();
    for (part, off, key) in topic_objects(&p) {
        if stored_keys.contains(&key) {
            assert!(
                committed.get(&part).is_some_and(|&c| off < c),
                "{key} (partition {part} offset {off}) stored but not committed at a clean exit: {committed:?}"
            );
        }
    }

    let out = p.run_worker_until_idle(&[]).unwrap();
    assert_success(&out, "second run");
    assert_eq!(p.profile_count().unwrap(), n as u64);
    let rows: u64 = files.iter().map(|f| function_rows(f)).sum();
    assert_eq!(p.count("function_values").unwrap(), rows, "duplicate or missing raw rows");
    let (from, to) = (t0 - chrono::Duration::hours(1), now() + chrono::Duration::hours(1));
    assert_eq!(sql_top(&p, &top_args("cpu", CPU, from, to, &[])), go_pprof_top(&files, CPU));
    assert_all_committed(&p, "after the second run");
    assert!(p.dead_letters().unwrap().is_empty());
}

// ---------------------------------------------------------------------------------------------
// h. Rebalances: a second worker joins mid-run, then leaves

#[test]
fn a_worker_joining_and_leaving_mid_run_loses_and_duplicates_nothing() {
    let p = start();
    // Small, lingering batches and few messages in flight: the rebalances land mid-batch.
    p.set_env("PPROFHOUSE_BATCH_LINGER", "1s");
    p.set_env("PPROFHOUSE_BATCH_ROWS", "1500");
    let n = 400;
    let t0 = now() - chrono::Duration::hours(5);
    let (keys, files) = upload_cpu_fleet(&p, n, t0, 0, "rebal");
    deliver(&p, &keys);

    let mut a = p.spawn_worker(&["--concurrency", "2"]).unwrap();
    wait_until(Duration::from_secs(90), Duration::from_millis(50), || (p.profile_count().unwrap_or(0) > 0).then_some(()))
        .unwrap_or_else(|| panic!("no rows after 90 s: {}", a.stderr_tail(40)));
    // B joins: the group rebalances while A has a batch open (and maybe one being written).
    let mut b = p.spawn_worker(&["--concurrency", "2"]).unwrap();
    let joined =
        wait_until(Duration::from_secs(60), Duration::from_millis(100), || a.stderr().contains("partitions revoked").then_some(()));
    let at_join = p.profile_count().unwrap();
    assert!(
        joined.is_some(),
        "A saw no rebalance after B started ({at_join} of {n} stored):\nA: {}\nB: {}",
        a.stderr_tail(30),
        b.stderr_tail(30)
    );
    assert!(at_join < n as u64, "all {n} profiles were stored before the rebalance; the test proves nothing");
    // Let both work, then B leaves cleanly: a second rebalance hands its partitions back to A.
    std::thread::sleep(Duration::from_secs(3));
    terminate(&mut b, "B leaving the group");
    assert_committed_are_stored(&p, "after B left");
    wait_for_count(&p, n as u64, Duration::from_secs(180), Some(&mut a));
    terminate(&mut a, "A at the end");
    eprintln!("{at_join} of {n} stored when B joined");
    assert_stored_exactly_once(&p, &keys, &files, t0, "after both workers stopped");
}

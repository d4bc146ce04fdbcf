//! `pprofhouse report` against the real local ClickHouse engine: its numbers equal the SQL and
//! the pprof oracles; the movers flag a function made 20 % slower in one service and nothing
//! between two windows of the same workload; the HTML renders in headless Chromium to a PNG
//! that is not blank; the webhook (a local receiver) and S3 (the local server) get the report.
use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bytes::Bytes;
use pprofhouse_sql::query::{self, PairQuery, Source, TopQuery, Window};
use pprofhouse_tests::hostile::gzip;
use pprofhouse_tests::oracle::parse_oracle;
use pprofhouse_tests::paths::{fixtures, pprofhouse_bin};
use pprofhouse_tests::s3::LocalS3;
use pprofhouse_tests::store::{iso, CliStore};
use pprofhouse_transform::pprof::proto;
use serde_json::Value;

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;
/// 10 ms: the CPU profiler's period (100 Hz).
const PERIOD_NS: i64 = 10_000_000;

/// Six days before the start of today (UTC): recent enough for every table's TTL.
fn t0() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now % DAY - 6 * DAY
}

/// The store, with report's own helpers.
struct Store(CliStore);

impl std::ops::Deref for Store {
    type Target = CliStore;
    fn deref(&self) -> &CliStore {
        &self.0
    }
}

impl Store {
    fn start() -> Store {
        Store(CliStore::start())
    }

    fn load_cpu(&self, service: &str, time: Option<i64>, files: &[PathBuf]) {
        self.load(service, "cpu", time, &[], files);
    }

    fn report(&self, window: Window, baseline: Window, extra: &[&str]) -> Vec<u8> {
        self.run(&self.report_args(window, baseline, extra).iter().map(String::as_str).collect::<Vec<_>>()).stdout
    }

    fn report_args(&self, window: Window, baseline: Window, extra: &[&str]) -> Vec<String> {
        let mut args: Vec<String> =
            ["report", "--type", "cpu", "--from", &iso(window.from_ms), "--to", &iso(window.to_ms)].iter().map(|s| s.to_string()).collect();
        args.extend(["--baseline-from".into(), iso(baseline.from_ms), "--baseline-to".into(), iso(baseline.to_ms)]);
        args.extend(extra.iter().map(|s| s.to_string()));
        args
    }

    fn json(&self, window: Window, baseline: Window, extra: &[&str]) -> Value {
        let mut args = vec!["--format", "json"];
        args.extend(extra);
        serde_json::from_slice(&self.report(window, baseline, &args)).unwrap()
    }
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

/// name → (flat, cum) of a report's `functions`.
fn functions(r: &Value) -> HashMap<String, (i64, i64)> {
    r["functions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| (f["function"].as_str().unwrap().to_string(), (f["flat"].as_i64().unwrap(), f["cum"].as_i64().unwrap())))
        .collect()
}

/// name → (flat, cum) of the fixtures' oracles for a sample type, summed over files (a merge).
fn oracle(names: &[&str], sample_type: &str) -> HashMap<String, (i64, i64)> {
    let mut out: HashMap<String, (i64, i64)> = HashMap::new();
    for n in names {
        let base = n.strip_suffix(".pb.gz").unwrap();
        let rows = parse_oracle(&std::fs::read(fixtures().join(format!("{base}.oracle.tsv"))).unwrap());
        for ((st, name, flat, cum), times) in rows {
            if st != sample_type.as_bytes() {
                continue;
            }
            let name = String::from_utf8(name).unwrap();
            let name = name.strip_suffix(" (partial-inline)").unwrap_or(&name).to_string();
            let e = out.entry(name).or_default();
            e.0 += flat * times as i64;
            e.1 += cum * times as i64;
        }
    }
    out
}

#[test]
fn report_numbers_equal_sql_and_the_pprof_oracles() {
    let t0 = t0();
    let s = Store::start();
    let window = Window { from_ms: t0 + DAY, to_ms: t0 + 2 * DAY };
    let baseline = Window { from_ms: t0, to_ms: t0 + DAY };
    s.load_cpu("checkout", Some(t0 + DAY + 3 * HOUR), &[fixtures().join("go-workload-cpu.pb.gz")]);
    s.load_cpu("search", Some(t0 + DAY + 5 * HOUR), &[fixtures().join("go-cpu-labels.pb.gz")]);
    s.load_cpu("checkout", Some(t0 + 7 * HOUR), &[fixtures().join("go-workload-cpu.pb.gz")]);
    let rt = rt();
    let client = s.client();
    for st in ["cpu/nanoseconds", "samples/count"] {
        let r = s.json(window, baseline, &["--sample-type", st, "-n", "100000"]);
        // Flat and cum: the oracles of the window's files merged; the baseline's: its file's.
        let want = oracle(&["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"], st);
        assert_eq!(functions(&r), want, "{st}");
        let base = oracle(&["go-workload-cpu.pb.gz"], st);
        for f in r["functions"].as_array().unwrap() {
            let (bf, bc) = base.get(f["function"].as_str().unwrap()).copied().unwrap_or_default();
            assert_eq!((f["baseline_flat"].as_i64().unwrap(), f["baseline_cum"].as_i64().unwrap()), (bf, bc), "{f}");
        }
        // Whole days: the daily rollup answers; the hourly one and the raw rows say the same.
        let pq =
            PairQuery { profile_type: "cpu".into(), sample_type: st.into(), window, baseline, service: None, labels: vec![], source: None };
        assert_eq!(pq.pick_source(), Source::Daily);
        let answers: Vec<_> = [Source::Daily, Source::Hourly, Source::Raw]
            .into_iter()
            .map(|src| rt.block_on(query::report_functions(&client, &PairQuery { source: Some(src), ..pq.clone() })).unwrap())
            .collect();
        assert!(!answers[0].is_empty() && answers[0] == answers[1] && answers[1] == answers[2], "{st}: rollups equal raw rows");
        // The same as the SQL of `top` and `total`.
        let q = TopQuery {
            profile_type: "cpu".into(),
            sample_type: st.into(),
            window,
            service: None,
            labels: vec![],
            by_cum: false,
            limit: 10,
            source: None,
        };
        let top = rt.block_on(query::top_functions(&client, &q)).unwrap();
        let total = rt.block_on(query::total(&client, &q)).unwrap();
        let listed: Vec<(String, i64, i64)> = r["functions"].as_array().unwrap()[..10]
            .iter()
            .map(|f| (f["function"].as_str().unwrap().to_string(), f["flat"].as_i64().unwrap(), f["cum"].as_i64().unwrap()))
            .collect();
        let sql: Vec<(String, i64, i64)> = top.iter().map(|t| (String::from_utf8(t.function.clone()).unwrap(), t.flat, t.cum)).collect();
        assert_eq!(listed, sql, "{st}: the ranking is top's");
        assert_eq!(r["window"]["total"].as_i64().unwrap(), total.total);
        assert_eq!(r["window"]["profiles"].as_u64().unwrap(), 2);
        assert_eq!(r["window"]["baseline_profiles"].as_u64().unwrap(), 1);
        let f0 = &r["functions"][0];
        assert_eq!(f0["flat_pct"].as_f64().unwrap(), f0["flat"].as_i64().unwrap() as f64 * 100.0 / total.total as f64);
        // Services: each listed function's services are where the oracles put it.
        let checkout = oracle(&["go-workload-cpu.pb.gz"], st);
        let search = oracle(&["go-cpu-labels.pb.gz"], st);
        for f in r["functions"].as_array().unwrap() {
            let name = f["function"].as_str().unwrap();
            let got: BTreeMap<String, i64> = f["services"]
                .as_array()
                .unwrap()
                .iter()
                .map(|s| (s["service"].as_str().unwrap().to_string(), s["cum"].as_i64().unwrap()))
                .collect();
            let mut want = BTreeMap::new();
            for (svc, o) in [("checkout", &checkout), ("search", &search)] {
                if let Some(&(_, cum)) = o.get(name) {
                    if cum != 0 || o[name].0 != 0 {
                        want.insert(svc.to_string(), cum);
                    }
                }
            }
            assert_eq!(got, want, "{name}");
        }
        // Cost: CPU nanoseconds only, Elastic's annualisation.
        if st == "cpu/nanoseconds" {
            let want_h = total.total as f64 / 1e9 * 31_536_000.0 / 86_400.0 / 3600.0;
            let c = &r["cost"];
            assert!((c["total_core_hours"].as_f64().unwrap() - want_h).abs() < 1e-9 * want_h.max(1.0), "{c}");
            assert!((c["total_cost"].as_f64().unwrap() - want_h * 0.0425).abs() < 1e-9, "{c}");
            let fc = &f0["cost"];
            let fh = f0["flat"].as_i64().unwrap() as f64 / 1e9 * 31_536_000.0 / 86_400.0 / 3600.0;
            assert!((fc["flat_core_hours"].as_f64().unwrap() - fh).abs() < 1e-9);
            assert_eq!(r["significance"]["basis"], "samples/count");
        } else {
            assert!(r["cost"].is_null());
        }
    }
    // Heap: no samples/count, so the test's counts are value shares × the profiles' samples.
    s.load("checkout", "heap", Some(t0 + DAY + 3 * HOUR), &[], &[fixtures().join("go-workload-heap.pb.gz")]);
    s.load("search", "heap", Some(t0 + DAY + 4 * HOUR), &[], &[fixtures().join("go-heap-2021.pb.gz")]);
    s.load("checkout", "heap", Some(t0 + 3 * HOUR), &[], &[fixtures().join("go-workload-heap.pb.gz")]);
    for st in ["inuse_space/bytes", "alloc_objects/count"] {
        let args = s.report_args(window, baseline, &["--type", "heap", "--sample-type", st, "-n", "100000", "--format", "json"]);
        let mut args: Vec<&str> = args.iter().map(String::as_str).collect();
        args.splice(1..3, []); // drop the default --type cpu
        let r: Value = serde_json::from_slice(&s.run(&args).stdout).unwrap();
        assert_eq!(functions(&r), oracle(&["go-workload-heap.pb.gz", "go-heap-2021.pb.gz"], st), "{st}");
        assert_eq!(r["significance"]["basis"], "sample_count");
        assert!(r["significance"]["samples"].as_u64().unwrap() > 0);
        assert!(r["cost"].is_null());
    }
    // CSV: the same integers.
    let csv = s.report(window, baseline, &["--format", "csv", "--sample-type", "cpu/nanoseconds", "-n", "100000"]);
    let mut rd = csv::Reader::from_reader(&csv[..]);
    let rows: HashMap<String, (i64, i64)> =
        rd.records().map(|r| r.unwrap()).map(|r| (r[1].to_string(), (r[2].parse().unwrap(), r[4].parse().unwrap()))).collect();
    assert_eq!(rows, oracle(&["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"], "cpu/nanoseconds"));
    // Markdown: one row per function asked for and a movers section.
    let md = String::from_utf8(s.report(window, baseline, &["-n", "5"])).unwrap();
    assert_eq!(md.lines().filter(|l| l.starts_with("| ") && l.split('|').nth(1).unwrap().trim().parse::<u32>().is_ok()).count(), 5, "{md}");
    assert!(md.contains("### Movers"), "{md}");
}

/// A synthetic CPU profile: `samples` draws from the leaves' weights (a multinomial, seeded),
/// each under `main.handle` ← `main.main`; one pprof sample per leaf, as Go aggregates them.
/// Returns the file and the draws per leaf.
fn synth(leaves: &[(&str, f64)], samples: usize, seed: u64, time_ms: i64) -> (Vec<u8>, Vec<i64>) {
    let mut rng = fastrand::Rng::with_seed(seed);
    let total: f64 = leaves.iter().map(|l| l.1).sum();
    let mut counts = vec![0i64; leaves.len()];
    for _ in 0..samples {
        let mut x = rng.f64() * total;
        let mut i = 0;
        while i + 1 < leaves.len() && x >= leaves[i].1 {
            x -= leaves[i].1;
            i += 1;
        }
        counts[i] += 1;
    }
    let mut strings: Vec<Bytes> =
        ["", "samples", "count", "cpu", "nanoseconds", "main.main", "main.handle"].iter().map(|s| Bytes::from(s.to_string())).collect();
    let mut function =
        vec![proto::Function { id: 1, name: 5, ..Default::default() }, proto::Function { id: 2, name: 6, ..Default::default() }];
    let loc = |id: u64| proto::Location { id, line: vec![proto::Line { function_id: id, ..Default::default() }], ..Default::default() };
    let mut location = vec![loc(1), loc(2)];
    let mut sample = Vec::new();
    for (i, (name, _)) in leaves.iter().enumerate() {
        strings.push(Bytes::from(name.to_string()));
        let id = 3 + i as u64;
        function.push(proto::Function { id, name: strings.len() as i64 - 1, ..Default::default() });
        location.push(loc(id));
        if counts[i] > 0 {
            sample.push(proto::Sample { location_id: vec![id, 2, 1], value: vec![counts[i], counts[i] * PERIOD_NS], label: vec![] });
        }
    }
    let p = proto::Profile {
        sample_type: vec![proto::ValueType { r#type: 1, unit: 2 }, proto::ValueType { r#type: 3, unit: 4 }],
        sample,
        location,
        function,
        string_table: strings,
        time_nanos: time_ms * 1_000_000,
        duration_nanos: 10_000_000_000,
        period_type: Some(proto::ValueType { r#type: 3, unit: 4 }),
        period: PERIOD_NS,
        ..Default::default()
    };
    (gzip(&p), counts)
}

/// Two services' leaf functions and their CPU weights (api spends 15 % in `main.parseJSON`).
fn workload(service: &str, slower: Option<(&str, f64)>) -> Vec<(String, f64)> {
    let mut leaves: Vec<(String, f64)> = match service {
        "api" => vec![
            ("main.parseJSON", 0.15),
            ("main.validate", 0.10),
            ("runtime.mallocgc", 0.12),
            ("runtime.memmove", 0.06),
            ("crypto/sha256.block", 0.08),
            ("net/http.(*conn).serve", 0.05),
            ("syscall.Syscall", 0.09),
            ("compress/flate.(*compressor).deflate", 0.07),
        ],
        _ => vec![
            ("main.search", 0.25),
            ("main.score", 0.15),
            ("runtime.mallocgc", 0.10),
            ("runtime.memmove", 0.05),
            ("sort.pdqsort", 0.08),
            ("syscall.Syscall", 0.07),
            ("strings.Index", 0.04),
        ],
    }
    .into_iter()
    .map(|(n, w)| (n.to_string(), w))
    .collect();
    for i in 0..25 {
        leaves.push((format!("{service}.small{i:02}"), 0.004 + 0.0004 * i as f64));
    }
    if let Some((f, factor)) = slower {
        for l in leaves.iter_mut().filter(|l| l.0 == f) {
            l.1 *= factor;
        }
    }
    leaves
}

/// Writes and loads 6 profiles per service over the day starting at `day`, and returns each
/// leaf's flat (ns) over them.
fn load_day(s: &Store, day: i64, seed: u64, slower: Option<(&str, &str, f64)>) -> HashMap<String, i64> {
    let mut flat: HashMap<String, i64> = HashMap::new();
    for (si, service) in ["api", "search"].into_iter().enumerate() {
        let w = workload(service, slower.filter(|s| s.0 == service).map(|s| (s.1, s.2)));
        let leaves: Vec<(&str, f64)> = w.iter().map(|(n, x)| (n.as_str(), *x)).collect();
        let mut files = Vec::new();
        for k in 0..6 {
            let (data, counts) = synth(&leaves, 6000, seed * 1000 + si as u64 * 100 + k, day + k as i64 * 4 * HOUR + HOUR);
            let path = s.dir.path().join(format!("{service}-{day}-{k}.pb.gz"));
            std::fs::write(&path, data).unwrap();
            files.push(path);
            for (l, c) in leaves.iter().zip(counts) {
                *flat.entry(l.0.to_string()).or_default() += c * PERIOD_NS;
            }
        }
        s.load_cpu(service, None, &files);
    }
    flat.retain(|_, v| *v != 0);
    flat
}

#[test]
fn movers_flag_an_injected_regression_and_nothing_between_windows_of_one_workload() {
    let t0 = t0();
    let s = Store::start();
    let day = |i: i64| Window { from_ms: t0 + i * DAY, to_ms: t0 + (i + 1) * DAY };
    // Days 0 and 1: the same workload, different noise. Day 2: main.parseJSON 20 % slower in api.
    let d0 = load_day(&s, day(0).from_ms, 1, None);
    let d1 = load_day(&s, day(1).from_ms, 2, None);
    let d2 = load_day(&s, day(2).from_ms, 3, Some(("api", "main.parseJSON", 1.2)));

    let control = s.json(day(1), day(0), &["-n", "1000"]);
    assert_eq!(control["significance"]["basis"], "samples/count");
    assert!(control["significance"]["tested"].as_u64().unwrap() >= 50, "{}", control["significance"]);
    assert_eq!(control["movers"].as_array().unwrap().len(), 0, "no movers between two days of one workload: {}", control["movers"]);
    assert!(control["functions"].as_array().unwrap().iter().all(|f| f["change"]["significant"] == false));
    // Exact numbers: each leaf's flat is what was drawn; baseline likewise.
    let flats: HashMap<String, i64> =
        functions(&control).into_iter().filter(|(n, _)| n != "main.main" && n != "main.handle").map(|(n, v)| (n, v.0)).collect();
    assert_eq!(flats, d1);
    for f in control["functions"].as_array().unwrap() {
        let name = f["function"].as_str().unwrap();
        assert_eq!(f["baseline_flat"].as_i64().unwrap(), d0.get(name).copied().unwrap_or(0), "{name}");
    }

    let regression = s.json(day(2), day(1), &["-n", "1000"]);
    let movers = regression["movers"].as_array().unwrap();
    let names: Vec<&str> = movers.iter().map(|m| m["function"].as_str().unwrap()).collect();
    assert_eq!(names, ["main.parseJSON"], "{movers:?}");
    let m = &movers[0];
    assert_eq!(m["direction"], "up");
    assert_eq!(m["services"][0]["service"], "api");
    assert_eq!(m["value"].as_i64().unwrap(), d2["main.parseJSON"]);
    let ratio = m["change"]["ratio"].as_f64().unwrap();
    assert!((1.1..1.3).contains(&ratio), "{m}");
    assert!(m["change"]["q_value"].as_f64().unwrap() < 1e-6, "{m}");

    // Within api alone the regression shows too; within search there is nothing.
    let api = s.json(day(2), day(1), &["--service", "api"]);
    assert_eq!(api["movers"].as_array().unwrap().iter().map(|m| m["function"].as_str().unwrap()).collect::<Vec<_>>(), ["main.parseJSON"]);
    let search = s.json(day(2), day(1), &["--service", "search"]);
    assert_eq!(search["movers"].as_array().unwrap().len(), 0, "{}", search["movers"]);

    // The markdown names it in the movers section.
    let md = String::from_utf8(s.report(day(2), day(1), &[])).unwrap();
    println!("{md}");
    let movers_md = md.split("### Movers").nth(1).unwrap();
    assert!(movers_md.contains("`main.parseJSON`") && movers_md.contains("api"), "{md}");
}

/// Decodes a PNG and counts its distinct colours and its non-background pixels.
fn png_stats(path: &Path) -> (usize, usize, usize) {
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(path).unwrap()));
    let mut reader = decoder.read_info().unwrap();
    let mut buf = vec![0; reader.output_buffer_size().expect("a PNG of a sane size")];
    let info = reader.next_frame(&mut buf).unwrap();
    let bpp = info.color_type.samples() * if info.bit_depth == png::BitDepth::Sixteen { 2 } else { 1 };
    let px: Vec<&[u8]> = buf[..info.buffer_size()].chunks(bpp).collect();
    let first = px[0];
    let colours: std::collections::HashSet<&[u8]> = px.iter().copied().collect();
    (px.len(), colours.len(), px.iter().filter(|p| **p != first).count())
}

#[test]
fn html_report_renders_in_headless_chromium() {
    let chromium = Path::new("/usr/bin/chromium");
    assert!(chromium.exists(), "/usr/bin/chromium is missing: install it (infra/local/install chromium, or apt-get install chromium)");
    let t0 = t0();
    let s = Store::start();
    s.load_cpu("checkout", Some(t0 + DAY + 3 * HOUR), &[fixtures().join("go-workload-cpu.pb.gz")]);
    s.load_cpu("checkout", Some(t0 + 3 * HOUR), &[fixtures().join("go-cpu-labels.pb.gz")]);
    let html = s.dir.path().join("report.html");
    let out = html.display().to_string();
    s.report(Window { from_ms: t0 + DAY, to_ms: t0 + 2 * DAY }, Window { from_ms: t0, to_ms: t0 + DAY }, &["--format", "html", "-o", &out]);
    let text = std::fs::read_to_string(&html).unwrap();
    assert!(text.contains("<svg") && text.contains("main.spin") && !text.contains("src=") && !text.contains("href="), "self-contained");
    let shot = s.dir.path().join("report.png");
    let profile = s.dir.path().join("chromium");
    let run = Command::new(chromium)
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--hide-scrollbars",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .arg(format!("--screenshot={}", shot.display()))
        .arg("--window-size=1200,900")
        .arg(format!("file://{}", html.display()))
        .output()
        .unwrap();
    assert!(shot.exists(), "chromium wrote no screenshot: {}", String::from_utf8_lossy(&run.stderr));
    if std::env::var_os("PPROFHOUSE_TEST_KEEP").is_some() {
        println!("kept {}", s.0.dir.keep().display());
    }
    let (pixels, colours, ink) = png_stats(&shot);
    assert_eq!(pixels, 1200 * 900);
    assert!(colours > 10, "{colours} colours: blank");
    assert!(ink > pixels / 100, "only {ink} of {pixels} pixels differ from the background: blank");
}

/// The bodies a receiver got.
type Bodies = Arc<Mutex<Vec<Vec<u8>>>>;

/// A local HTTP receiver: answers 503 to the first `fail_first` POSTs, then 200; keeps the
/// bodies. Serves at most `max` connections, then its thread ends.
fn receiver(fail_first: usize, max: usize) -> (String, Bodies, std::thread::JoinHandle<()>) {
    let statuses = (0..max).map(|i| if i < fail_first { "503 Service Unavailable" } else { "200 OK" }).collect();
    receiver_with(statuses)
}

/// A local HTTP receiver answering the given statuses in turn, one connection each.
fn receiver_with(statuses: Vec<&'static str>) -> (String, Bodies, std::thread::JoinHandle<()>) {
    let max = statuses.len();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let url = format!("http://{}/services/T000/B000/secret", listener.local_addr().unwrap());
    let bodies = Arc::new(Mutex::new(Vec::new()));
    let seen = bodies.clone();
    let handle = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut served = 0;
        while served < max && Instant::now() < deadline {
            let Ok((mut conn, _)) = listener.accept() else {
                std::thread::sleep(Duration::from_millis(20));
                continue;
            };
            conn.set_nonblocking(false).unwrap();
            conn.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 8192];
            let body = loop {
                let n = conn.read(&mut buf).unwrap_or(0);
                if n == 0 {
                    break None;
                }
                req.extend_from_slice(&buf[..n]);
                if let Some(end) = req.windows(4).position(|w| w == b"\r\n\r\n") {
                    let head = String::from_utf8_lossy(&req[..end]).to_ascii_lowercase();
                    let len: usize =
                        head.lines().find_map(|l| l.strip_prefix("content-length:")).map(|v| v.trim().parse().unwrap()).unwrap_or(0);
                    while req.len() < end + 4 + len {
                        let n = conn.read(&mut buf).unwrap_or(0);
                        if n == 0 {
                            break;
                        }
                        req.extend_from_slice(&buf[..n]);
                    }
                    break Some(req[end + 4..].to_vec());
                }
            };
            served += 1;
            let Some(body) = body else { continue };
            seen.lock().unwrap().push(body);
            let status = statuses[served - 1];
            let _ = conn.write_all(format!("HTTP/1.1 {status}\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok").as_bytes());
        }
    });
    (url, bodies, handle)
}

#[test]
fn webhook_and_s3_get_the_report() {
    let t0 = t0();
    let s = Store::start();
    s.load_cpu("checkout", Some(t0 + DAY + 3 * HOUR), &[fixtures().join("go-workload-cpu.pb.gz")]);
    s.load_cpu("checkout", Some(t0 + 3 * HOUR), &[fixtures().join("go-cpu-labels.pb.gz")]);
    let (window, baseline) = (Window { from_ms: t0 + DAY, to_ms: t0 + 2 * DAY }, Window { from_ms: t0, to_ms: t0 + DAY });
    let markdown = s.report(window, baseline, &[]);

    // The webhook: a 503 first (retried), then 200; the text is the markdown report.
    let (url, bodies, handle) = receiver(1, 2);
    let mut s3 = LocalS3::start().expect("start the local S3 server (infra/local/install s3)");
    s3.create_bucket("reports").unwrap();
    let env = s3.env("reports");
    let args = s.report_args(window, baseline, &["-o", &url, "-o", "s3://reports/daily/", "--format", "html"]);
    let out = s.output_with(&args.iter().map(String::as_str).collect::<Vec<_>>(), &env);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    handle.join().unwrap();
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2, "one 503, one retry");
    for b in bodies.iter() {
        let v: Value = serde_json::from_slice(b).unwrap();
        assert_eq!(v["text"].as_str().unwrap().as_bytes(), &markdown[..], "Slack-compatible {{\"text\": markdown}}");
    }
    // S3: one object under the prefix, the HTML rendering.
    let dir = s3.data_dir().join("reports/daily");
    let objects: Vec<PathBuf> =
        std::fs::read_dir(&dir).unwrap().map(|e| e.unwrap().path()).filter(|p| p.extension().is_some_and(|e| e == "html")).collect();
    assert_eq!(objects.len(), 1, "{objects:?}");
    let html = std::fs::read_to_string(&objects[0]).unwrap();
    assert!(html.starts_with("<!DOCTYPE html>") && html.contains("main.spin"), "{}", &html[..200.min(html.len())]);

    // A webhook that refuses for good (404) is not retried: the run fails, naming the host only.
    let (url, bodies, handle) = receiver_with(vec!["404 Not Found"]);
    let args = s.report_args(window, baseline, &["-o", &url]);
    let out = s.output(&args.iter().map(String::as_str).collect::<Vec<_>>());
    handle.join().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success() && stderr.contains("HTTP 404") && stderr.contains("webhook 127.0.0.1"), "{stderr}");
    assert!(!stderr.contains("/services/"), "the webhook's path (its token) is never shown: {stderr}");
    assert_eq!(bodies.lock().unwrap().len(), 1, "a 404 is not retried");

    s3.stop();
}

#[test]
fn cron_runs_the_report_on_schedule_until_sigterm() {
    let t0 = t0();
    let s = Store::start();
    s.load_cpu("checkout", Some(t0 + 3 * HOUR), &[fixtures().join("go-workload-cpu.pb.gz")]);
    // Every second, the last 7 days (the profile is in it) to a local webhook that takes two.
    let (url, bodies, handle) = receiver(0, 2);
    let child = Command::new(pprofhouse_bin())
        .args(["report", "--type", "cpu", "--since", "7d", "--cron", "* * * * * *", "-o", &url])
        .envs(s.env())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    handle.join().unwrap();
    // SIGTERM ends the schedule: exit 0.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{:?}: {}", out.status, String::from_utf8_lossy(&out.stderr));
    let bodies = bodies.lock().unwrap();
    assert_eq!(bodies.len(), 2, "two scheduled runs delivered");
    for b in bodies.iter() {
        let v: Value = serde_json::from_slice(b).unwrap();
        let text = v["text"].as_str().unwrap();
        assert!(text.starts_with("## pprofhouse report: cpu cpu/nanoseconds") && text.contains("`main.spin`"), "{text}");
    }
    assert!(!String::from_utf8_lossy(&out.stderr).contains("/services/"), "the webhook's path (its token) is never logged");
}

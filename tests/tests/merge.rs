#![allow(non_snake_case)]
//! `pprofhouse merge` against the real local ClickHouse engine: fixtures loaded as several
//! services, the merged profile read by `go tool pprof` and compared, for every sample type,
//! with `go tool pprof` merging the source files itself. Needs `go` on PATH.
use std::path::PathBuf;

use pprofhouse_tests::paths::fixtures;
use pprofhouse_tests::pprof::go_pprof_top;
use pprofhouse_tests::store::{iso, CliStore};
use pprofhouse_transform::pprof::{decode, Limits};
use pprofhouse_transform::{explode, ExplodeOptions};

const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn t0() -> i64 {
    let now = chrono::Utc::now().timestamp_millis();
    now - now % DAY - 3 * DAY
}

/// The store, with merge's own helpers.
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

    /// One fixture `file` loaded as `service`'s `ptype` profile at `ms` with `labels`.
    fn load_one(&self, service: &str, ptype: &str, ms: i64, labels: &[&str], file: &str) {
        self.load(service, ptype, Some(ms), labels, &[fixtures().join(file)]);
    }

    /// `pprofhouse merge ARGS -o <new file>`; the file.
    fn merge(&self, name: &str, args: &[&str]) -> PathBuf {
        let out = self.dir.path().join(name);
        let mut all = vec!["merge"];
        all.extend(args);
        all.extend(["-o", out.to_str().unwrap()]);
        self.run(&all);
        out
    }
}

fn files(names: &[&str]) -> Vec<PathBuf> {
    names.iter().map(|n| fixtures().join(n)).collect()
}

fn facts(path: &std::path::Path) -> pprofhouse_transform::ProfileFacts {
    explode(&decode(std::fs::read(path).unwrap(), &Limits::default()).unwrap(), ExplodeOptions::default()).facts
}

#[test]
fn merged_profiles_read_by_pprof_equal_pprof_merging_the_files() {
    let T0 = t0();
    let s = Store::start();
    let heap = ["go-workload-heap.pb.gz", "go-heap-2021.pb.gz", "go-workload-allocs.pb.gz"];
    s.load_one("checkout", "heap", T0 + HOUR, &["version=1.2"], heap[0]);
    s.load_one("search", "heap", T0 + 2 * HOUR, &["version=1.3"], heap[1]);
    s.load_one("ads", "heap", T0 + 3 * HOUR, &["version=1.3"], heap[2]);
    s.load_one("checkout", "cpu", T0 + HOUR, &[], "go-workload-cpu.pb.gz");
    s.load_one("search", "cpu", T0 + 2 * HOUR, &[], "go-cpu-labels.pb.gz");
    let (from, to) = (iso(T0), iso(T0 + DAY));
    let window = ["--from", from.as_str(), "--to", to.as_str()];

    // Every sample type of the fleet's heap profiles (three services).
    let mut args = vec!["--type", "heap"];
    args.extend(window);
    let merged = s.merge("heap.pb.gz", &args);
    let f = facts(&merged);
    let types: Vec<String> = f.sample_types.iter().map(|t| t.to_string()).collect();
    assert_eq!(types, facts(&fixtures().join(heap[0])).sample_types.iter().map(|t| t.to_string()).collect::<Vec<_>>());
    for st in &types {
        let want = go_pprof_top(&files(&heap), st);
        assert!(!want.is_empty(), "{st}");
        assert_eq!(go_pprof_top(&[&merged], st), want, "heap {st}");
    }
    // The header as pprof's merge makes it: largest period, summed durations, earliest time.
    let sources: Vec<_> = files(&heap).iter().map(|p| facts(p)).collect();
    assert_eq!(f.period, sources.iter().map(|s| s.period).max().unwrap());
    assert_eq!(f.duration_nanos, sources.iter().map(|s| s.duration_nanos).sum::<i64>());
    assert_eq!(f.time_nanos, (T0 + HOUR) * 1_000_000);
    assert_eq!(f.period_type, sources[0].period_type);

    // CPU: two services, both sample types.
    let mut args = vec!["--type", "cpu"];
    args.extend(window);
    let merged = s.merge("cpu.pb.gz", &args);
    for st in ["samples/count", "cpu/nanoseconds"] {
        assert_eq!(go_pprof_top(&[&merged], st), go_pprof_top(&files(&["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"]), st), "cpu {st}");
    }

    // One service; one label value; a window holding only the first two heap profiles.
    let mut one = vec!["--type", "heap", "--service", "search"];
    one.extend(window);
    let merged = s.merge("search.pb.gz", &one);
    assert_eq!(go_pprof_top(&[&merged], "inuse_space/bytes"), go_pprof_top(&files(&[heap[1]]), "inuse_space/bytes"));
    let mut lab = vec!["--type", "heap", "--label", "version=1.3"];
    lab.extend(window);
    let merged = s.merge("v13.pb.gz", &lab);
    assert_eq!(go_pprof_top(&[&merged], "alloc_space/bytes"), go_pprof_top(&files(&heap[1..]), "alloc_space/bytes"));
    let (from2, to2) = (iso(T0), iso(T0 + 2 * HOUR + 1));
    let merged = s.merge("early.pb.gz", &["--type", "heap", "--from", &from2, "--to", &to2]);
    assert_eq!(go_pprof_top(&[&merged], "alloc_objects/count"), go_pprof_top(&files(&heap[..2]), "alloc_objects/count"));

    // Other runtimes' profiles: unsymbolized frames (`[binary]`), Node.js, py-spy, block and mutex
    // delays — names go through as stored and pprof prints them as for the files.
    for (i, (file, st)) in [
        ("rust-cpu-unsymbolized.pb.gz", "samples/count"),
        ("nodejs-cpu.pb.gz", "wall/microseconds"),
        ("python-pyspy.pb.gz", "samples/count"),
        ("go-workload-block.pb.gz", "delay/nanoseconds"),
        ("go-mutex-2023.pb.gz", "delay/nanoseconds"),
    ]
    .into_iter()
    .enumerate()
    {
        let ptype = format!("other{i}");
        s.load_one("svc", &ptype, T0 + HOUR, &[], file);
        let mut args = vec!["--type", ptype.as_str()];
        args.extend(window);
        let merged = s.merge(&format!("{ptype}.pb.gz"), &args);
        let want = go_pprof_top(&files(&[file]), st);
        assert!(!want.is_empty(), "{file}");
        assert_eq!(go_pprof_top(&[&merged], st), want, "{file} {st}");
    }

    // Mangled C++ and Rust names, Go generics, names that only look like C++: stored as pprof's
    // symbolizer leaves them, and not demangled or simplified a second time. A profile with
    // frame filters: its stacks stored as pprof prunes them (the merged profile has no filters).
    // This repository's real profiles: pprof-rs, net/http contention, Go 1.23 generics, and two
    // without samples, whose merge is a valid profile of the same sample types with no samples.
    let names = pprofhouse_tests::oracle::name_fixtures();
    let mut named: Vec<PathBuf> = ["cpp-mangled", "rust-mangled", "go-generics", "looks-like-cpp", "frame-filters"]
        .iter()
        .map(|n| names.join(format!("{n}.pb.gz")))
        .collect();
    named.push(pprofhouse_tests::oracle::shared_name_fixtures().join("go-generics-cpu.pb.gz"));
    named.extend(pprofhouse_tests::oracle::oracle_pairs(&pprofhouse_tests::oracle::real_fixtures()).into_iter().map(|(p, _)| p));
    for (i, path) in named.iter().enumerate() {
        let ptype = format!("names{i}");
        let p = path.display().to_string();
        s.run(&["load", "--service", "svc", "--type", &ptype, "--time", &iso(T0 + HOUR), &p]);
        let mut args = vec!["--type", ptype.as_str()];
        args.extend(window);
        let merged = s.merge(&format!("{ptype}.pb.gz"), &args);
        let (source, merged_facts) = (facts(path), facts(&merged));
        let empty = source.sample_count == 0;
        assert_eq!(merged_facts.sample_types, source.sample_types, "{p}");
        assert_eq!(merged_facts.sample_count == 0, empty, "{p}");
        for st in source.sample_types.iter().map(|t| t.to_string()) {
            let want = go_pprof_top(std::slice::from_ref(path), &st);
            assert_eq!(want.is_empty(), empty, "{p} {st}");
            assert_eq!(go_pprof_top(&[&merged], &st), want, "{p} {st}");
        }
    }

    // Profiles whose sample types differ (pprof refuses them): the union, each type's values
    // from the profiles that have it.
    s.load_one("h", "mixed", T0 + HOUR, &[], "go-workload-heap.pb.gz");
    s.load_one("g", "mixed", T0 + 2 * HOUR, &[], "go-workload-goroutine.pb.gz");
    let mut mixed = vec!["--type", "mixed"];
    mixed.extend(window);
    let merged = s.merge("mixed.pb.gz", &mixed);
    let types: Vec<String> = facts(&merged).sample_types.iter().map(|t| t.to_string()).collect();
    assert_eq!(types, ["alloc_objects/count", "alloc_space/bytes", "inuse_objects/count", "inuse_space/bytes", "goroutine/count"]);
    assert_eq!(go_pprof_top(&[&merged], "inuse_space/bytes"), go_pprof_top(&files(&["go-workload-heap.pb.gz"]), "inuse_space/bytes"));
    assert_eq!(go_pprof_top(&[&merged], "goroutine/count"), go_pprof_top(&files(&["go-workload-goroutine.pb.gz"]), "goroutine/count"));

    // Over the stack limit: an error naming it, no file.
    let capped = s.dir.path().join("capped.pb.gz");
    let mut args = vec!["merge", "--type", "heap", "--max-stacks", "1", "-o", capped.to_str().unwrap()];
    args.extend(window);
    let out = s.output(&args);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("more than 1 distinct stacks"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!capped.exists());

    // Nothing in the window: an error, no file.
    let (from3, to3) = (iso(T0 - DAY), iso(T0));
    let empty = s.dir.path().join("empty.pb.gz");
    let out = s.output(&["merge", "--type", "heap", "--from", &from3, "--to", &to3, "-o", empty.to_str().unwrap()]);
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("no heap profiles"), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(!empty.exists());
}

//! `pprofhouse top` over one or several files equals `go tool pprof -top` over the same files
//! (functions keyed by name). Needs `go` on PATH (`.ci/run` installs Debian's golang-go).
use std::path::PathBuf;
use std::process::Command;

use pprofhouse_tests::oracle::real_fixtures;
use pprofhouse_tests::paths::{fixtures, pprofhouse_bin};
use pprofhouse_tests::pprof::{go_pprof_top, pprofhouse_top, Top};

fn check(names: &[&str], sample_type: &str) {
    let files: Vec<PathBuf> = names.iter().map(|n| fixtures().join(n)).collect();
    check_files(&files, sample_type);
}

/// `pprofhouse top` over `files` equals `go tool pprof -top`; returns pprof's rows.
fn check_files(files: &[PathBuf], sample_type: &str) -> Top {
    let want = go_pprof_top(files, sample_type);
    let mut args = vec!["--sample-type", sample_type];
    let paths: Vec<String> = files.iter().map(|f| f.display().to_string()).collect();
    args.extend(paths.iter().map(String::as_str));
    let got = pprofhouse_top(&args, &[]);
    assert!(!want.is_empty());
    assert_eq!(got, want, "{files:?} {sample_type}");
    want
}

#[test]
fn merged_cpu_profiles_match_pprof() {
    check(&["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"], "cpu/nanoseconds");
    check(&["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"], "samples/count");
}

#[test]
fn merged_heap_profiles_match_pprof() {
    for st in ["inuse_space/bytes", "alloc_objects/count"] {
        check(&["go-workload-heap.pb.gz", "go-heap-2021.pb.gz", "go-workload-allocs.pb.gz"], st);
    }
}

#[test]
fn single_profiles_match_pprof() {
    for (name, st) in [
        ("nodejs-cpu.pb.gz", "wall/microseconds"),
        ("python-pyspy.pb.gz", "samples/count"),
        ("go-workload-block.pb.gz", "delay/nanoseconds"),
        ("rust-cpu-unsymbolized.pb.gz", "samples/count"),
        ("go-mutex-2023.pb.gz", "delay/nanoseconds"),
    ] {
        check(&[name], st);
    }
}

/// Names from a real Node.js profiler (`tests/fixtures/pprof/make-nodejs.sh`) that pprof's
/// symbolizer rewrites, and one with spaces around it, which pprof prints as they are.
#[test]
fn node_names_match_pprof_spaces_included() {
    let file = real_fixtures().join("nodejs-dd-names.pb.gz");
    let spaced = check_files(std::slice::from_ref(&file), "wall/nanoseconds");
    assert!(spaced.contains_key("  leading and trailing  "), "{:?}", spaced.keys().collect::<Vec<_>>());
}

#[test]
fn default_sample_type_is_the_one_pprof_picks() {
    let out = Command::new(pprofhouse_bin()).args(["top", "-n", "3"]).arg(fixtures().join("go-workload-heap.pb.gz")).output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Type: inuse_space/bytes\n"), "{text}");
    let body: Vec<&str> = text.lines().skip_while(|l| !l.trim_start().starts_with("flat")).skip(1).collect();
    assert_eq!(body.len(), 3, "{text}");
    assert!(text.contains("Showing top 3 nodes out of"), "{text}");
}

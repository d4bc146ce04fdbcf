//! `pprofhouse top` over one or several files equals `go tool pprof -top` over the same files
//! (functions keyed by name: pprof's `(inline)`/`(partial-inline)` display labels removed).
//! Needs `go` on PATH (`.ci/run` installs Debian's golang-go).
mod common;

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::Command;

use common::fixtures;

/// Runs `go tool pprof -top` with exact integer units and returns name → (flat, cum).
fn pprof_top(files: &[PathBuf], sample_index: &str, unit: &str) -> HashMap<String, (i64, i64)> {
    let mut cmd = Command::new("go");
    cmd.args(["tool", "pprof", "-top", "-nodecount=100000000", "-nodefraction=0", "-edgefraction=0"]);
    cmd.arg(format!("-sample_index={sample_index}"));
    if !unit.is_empty() {
        cmd.arg(format!("-unit={unit}"));
    }
    let out = cmd.args(files).output().expect("`go` must be on PATH (apt-get install golang-go)");
    assert!(out.status.success(), "go tool pprof failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = HashMap::new();
    let mut body = false;
    for line in text.lines() {
        if line.trim_start().starts_with("flat  flat%") {
            body = true;
            continue;
        }
        if !body {
            continue;
        }
        let mut fields = line.split_whitespace();
        let flat = fields.next().unwrap();
        let cum = fields.nth(2).unwrap();
        // The name is everything after the fifth field.
        let mut rest = line.trim_start();
        for _ in 0..5 {
            rest = rest.trim_start_matches(|c: char| !c.is_whitespace()).trim_start();
        }
        let name = rest.strip_suffix(" (inline)").or_else(|| rest.strip_suffix(" (partial-inline)")).unwrap_or(rest);
        let num = |s: &str| -> i64 { s.trim_end_matches(unit).parse().unwrap_or_else(|_| panic!("{s} in {line}")) };
        let e: &mut (i64, i64) = rows.entry(name.to_string()).or_default();
        e.0 += num(flat);
        e.1 += num(cum);
    }
    rows.retain(|_, v| *v != (0, 0));
    rows
}

fn ours(files: &[PathBuf], sample_type: &str) -> HashMap<String, (i64, i64)> {
    let out = Command::new(env!("CARGO_BIN_EXE_pprofhouse"))
        .args(["top", "-n", "100000000", "--format", "tsv", "--sample-type", sample_type])
        .args(files)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut rows = HashMap::new();
    for line in String::from_utf8(out.stdout).unwrap().lines() {
        let c: Vec<&str> = line.split('\t').collect();
        assert_eq!(c.len(), 3, "{line}");
        rows.insert(c[0].to_string(), (c[1].parse().unwrap(), c[2].parse().unwrap()));
    }
    rows
}

fn check(names: &[&str], sample_type: &str, unit: &str) {
    let files: Vec<PathBuf> = names.iter().map(|n| fixtures().join(n)).collect();
    let want = pprof_top(&files, sample_type.split('/').next().unwrap(), unit);
    let got = ours(&files, sample_type);
    assert!(!want.is_empty());
    assert_eq!(got, want, "{names:?} {sample_type}");
}

#[test]
fn merged_cpu_profiles_match_pprof() {
    check(&["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"], "cpu/nanoseconds", "ns");
    check(&["go-workload-cpu.pb.gz", "go-cpu-labels.pb.gz"], "samples/count", "");
}

#[test]
fn merged_heap_profiles_match_pprof() {
    for st in ["inuse_space/bytes", "alloc_objects/count"] {
        let unit = if st.ends_with("bytes") { "B" } else { "" };
        check(&["go-workload-heap.pb.gz", "go-heap-2021.pb.gz", "go-workload-allocs.pb.gz"], st, unit);
    }
}

#[test]
fn single_profiles_match_pprof_on_the_default_sample_type() {
    for (name, st, unit) in [
        ("nodejs-cpu.pb.gz", "wall/microseconds", "us"),
        ("python-pyspy.pb.gz", "samples/count", ""),
        ("go-workload-block.pb.gz", "delay/nanoseconds", "ns"),
        ("rust-cpu-unsymbolized.pb.gz", "samples/count", ""),
    ] {
        check(&[name], st, unit);
    }
}

#[test]
fn default_sample_type_is_the_one_pprof_picks() {
    // The heap profile's default is inuse_space (its default_sample_type is unset: the last
    // type), and the table names it.
    let out = Command::new(env!("CARGO_BIN_EXE_pprofhouse"))
        .args(["top", "-n", "3"])
        .arg(fixtures().join("go-workload-heap.pb.gz"))
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.starts_with("Type: inuse_space/bytes\n"), "{text}");
    let body: Vec<&str> = text.lines().skip_while(|l| !l.trim_start().starts_with("flat")).skip(1).collect();
    assert_eq!(body.len(), 3, "{text}");
    assert!(text.contains("Showing top 3 nodes out of"), "{text}");
}

//! `pprofhouse explode` against `go tool pprof -top` on profiles made fresh on every run by real
//! programs: the Go standard library's own benchmarks, profiled the ways a fleet profiles them
//! (CPU; allocations sampled at every allocation and every 512 bytes; block and mutex
//! contention). The fixtures are fixed files; these are new each time — other stacks, other
//! counts, another Go's runtime and standard library — so they check the rules rather than a
//! memory of the fixtures. The oracle is `../shared/tools/pprof-oracle.sh`, as for the
//! fixtures. Needs `go` on PATH (`make test` puts it there).
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

use pprofhouse_tests::oracle::{explode_rows, parse_oracle, row_differences, Rows};
use pprofhouse_tests::paths::fixtures;

/// One profile: a name, the package whose test binary makes it, the binary's arguments
/// (`{out}` is the profile's path), and whether it may come out without samples (contention
/// depends on how the scheduler interleaves the benchmark's goroutines).
struct Run {
    name: &'static str,
    pkg: &'static str,
    args: &'static [&'static str],
    may_be_empty: bool,
}

const RUNS: &[Run] = &[
    Run {
        name: "flate-cpu",
        pkg: "compress/flate",
        args: &["-test.run=^$", "-test.bench=Encode", "-test.benchtime=50ms", "-test.cpuprofile={out}"],
        may_be_empty: false,
    },
    Run {
        name: "json-cpu",
        pkg: "encoding/json",
        args: &["-test.run=^$", "-test.bench=Code", "-test.benchtime=100ms", "-test.cpuprofile={out}"],
        may_be_empty: false,
    },
    Run {
        // Every allocation: a production-size profile (about a megabyte decoded).
        name: "parser-allocs-every",
        pkg: "go/parser",
        args: &["-test.run=^$", "-test.bench=.", "-test.benchtime=100ms", "-test.memprofilerate=1", "-test.memprofile={out}"],
        may_be_empty: false,
    },
    Run {
        name: "regexp-allocs-512",
        pkg: "regexp",
        args: &["-test.run=^$", "-test.bench=.", "-test.benchtime=10ms", "-test.memprofilerate=512", "-test.memprofile={out}"],
        may_be_empty: false,
    },
    Run {
        name: "sync-block",
        pkg: "sync",
        args: &[
            "-test.run=^$",
            "-test.bench=Cond|WaitGroup",
            "-test.benchtime=10ms",
            "-test.blockprofilerate=1",
            "-test.blockprofile={out}",
        ],
        may_be_empty: false,
    },
    Run {
        name: "sync-mutex",
        pkg: "sync",
        args: &[
            "-test.run=^$",
            "-test.bench=Mutex|Pool",
            "-test.benchtime=10ms",
            "-test.cpu=1,4",
            "-test.mutexprofilefraction=1",
            "-test.mutexprofile={out}",
        ],
        may_be_empty: true,
    },
];

fn go_output(args: &[&str]) -> Vec<u8> {
    let out = Command::new("go")
        .args(args)
        .output()
        .expect("`go` must be on PATH (`make test` puts it there; or PATH=\"$(infra/local/tools):$PATH\")");
    assert!(out.status.success(), "go {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    out.stdout
}

/// Runs every [`RUNS`] entry (one test binary per package, built once) into `dir`; the
/// profiles' paths by name.
fn make_profiles(dir: &Path) -> BTreeMap<&'static str, PathBuf> {
    let goroot = String::from_utf8(go_output(&["env", "GOROOT"])).unwrap();
    let src = PathBuf::from(goroot.trim()).join("src");
    let mut binaries: BTreeMap<&str, PathBuf> = BTreeMap::new();
    let mut profiles = BTreeMap::new();
    for run in RUNS {
        let bin = binaries.entry(run.pkg).or_insert_with(|| {
            let bin = dir.join(format!("{}.test", run.pkg.replace('/', "_")));
            go_output(&["test", "-c", "-o", bin.to_str().unwrap(), run.pkg]);
            bin
        });
        let out = dir.join(format!("{}.pb.gz", run.name));
        let args: Vec<String> = run.args.iter().map(|a| a.replace("{out}", out.to_str().unwrap())).collect();
        // In the package's folder, where its benchmarks find their testdata.
        let ran = Command::new(&*bin).args(&args).current_dir(src.join(run.pkg)).output().unwrap();
        assert!(ran.status.success(), "{} {args:?}: {}", run.name, String::from_utf8_lossy(&ran.stdout));
        assert!(out.exists(), "{} wrote no profile", run.name);
        profiles.insert(run.name, out);
    }
    profiles
}

fn oracle_rows(profile: &Path) -> Rows {
    let script = fixtures().join("../../tools/pprof-oracle.sh");
    let out = Command::new("bash").arg(&script).arg(profile).output().unwrap();
    assert!(out.status.success(), "{}: {}", script.display(), String::from_utf8_lossy(&out.stderr));
    parse_oracle(&out.stdout)
}

#[test]
fn explode_matches_pprof_on_fresh_stdlib_profiles() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = make_profiles(dir.path());
    let mut failures = Vec::new();
    let mut rows = 0;
    for run in RUNS {
        let profile = &profiles[run.name];
        let want = oracle_rows(profile);
        let got = explode_rows(profile, &[]);
        if want.is_empty() && !run.may_be_empty {
            failures.push(format!("{}: pprof reports no rows (no samples?)", run.name));
        }
        if let Some(diff) = row_differences(&want, &got) {
            failures.push(format!("{}: {diff}", run.name));
        }
        rows += want.len();
    }
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
    // Fresh profiles of this size name hundreds of functions per sample type.
    assert!(rows > 1_000, "only {rows} rows in all");
}

//! `pprofhouse explode` reproduces every fixture oracle (`go tool pprof -top` output) exactly,
//! and bad input gives one clear line on stderr and a non-zero exit.
use std::process::Command;

use pprofhouse_tests::oracle::*;

fn bin() -> Command {
    Command::new(pprofhouse_tests::paths::pprofhouse_bin())
}

/// Runs `explode` over every profile with an oracle in `pairs`; the mismatches.
fn oracle_mismatches(pairs: &[(std::path::PathBuf, std::path::PathBuf)]) -> Vec<String> {
    oracle_mismatches_with(pairs, &[], |rows| rows)
}

/// [`oracle_mismatches`] with more `explode` arguments, its rows passed through `adjust`.
fn oracle_mismatches_with(
    pairs: &[(std::path::PathBuf, std::path::PathBuf)],
    args: &[&str],
    mut adjust: impl FnMut(Rows) -> Rows,
) -> Vec<String> {
    let mut failures = Vec::new();
    for (prof, oracle) in pairs {
        let want = parse_oracle(&std::fs::read(oracle).unwrap());
        let got = adjust(explode_rows(prof, args));
        if let Some(diff) = row_differences(&want, &got) {
            failures.push(format!("{}: {diff}", prof.display()));
        }
    }
    failures
}

#[test]
fn explode_reproduces_every_oracle_exactly() {
    let pairs = oracle_pairs(&fixtures());
    assert!(pairs.len() >= 17, "expected the 17 oracle fixtures, found {}", pairs.len());
    let failures = oracle_mismatches(&pairs);
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

/// This repository's real profiles: empty ones (an idle process's CPU profile, a mutex profile
/// with profiling off) give no rows and exit 0, as `go tool pprof` does; a contention profile,
/// a pprof-rs one and three of @datadog/pprof's (Node.js) are exact.
#[test]
fn explode_reproduces_the_real_profiles_here_exactly() {
    let pairs = oracle_pairs(&real_fixtures());
    assert!(pairs.len() >= 8, "expected the 8 real profiles, found {}", pairs.len());
    let empty = pairs.iter().filter(|(_, o)| std::fs::metadata(o).unwrap().len() == 0).count();
    assert!(empty >= 2, "expected the 2 empty profiles, found {empty}");
    let failures = oracle_mismatches(&pairs);
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

/// pprof's symbolizer naming rules (demangling, "looks like demangled C++"): the shared
/// pprof-names fixtures and this repository's hand-built ones.
#[test]
fn explode_names_functions_like_pprof() {
    let shared = oracle_pairs(&shared_name_fixtures());
    assert!(!shared.is_empty(), "no oracles in {}", shared_name_fixtures().display());
    let ours = oracle_pairs(&name_fixtures());
    assert!(ours.len() >= 11, "expected the 11 pprof-names fixtures, found {}", ours.len());
    let failures = oracle_mismatches(&[shared, ours].concat());
    assert!(failures.is_empty(), "mismatches:\n{}", failures.join("\n"));
}

/// pprof's other naming modes (`-symbolize=demangle=templates|full`): the oracles in
/// `pprof-names/modes/MODE/` (`oracles.sh`) for the naming profiles beside it. In these modes
/// `cpp_demangle` prints a few of `real-symbols`' C++ names otherwise than the Go demangler
/// (`MODE/real-symbols.differs.tsv`, where there are any: pprof's name, then ours; the reasons
/// are in `transform/src/symbolize.rs`): each listed name must still come out as listed, and no
/// other may differ.
#[test]
fn explode_names_functions_like_pprof_in_its_other_modes() {
    let names = name_fixtures();
    for mode in ["templates", "full"] {
        let dir = names.join("modes").join(mode);
        let pairs = oracle_pairs_in(&dir, &names);
        assert_eq!(pairs.len(), 6, "{mode}: expected the oracles of the 6 naming profiles");
        // Ours → pprof's, for the listed names.
        let differs = std::fs::read(dir.join("real-symbols.differs.tsv")).unwrap_or_default();
        let renames: std::collections::HashMap<Vec<u8>, Vec<u8>> = differs
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .map(|l| {
                let tab = l.iter().position(|&b| b == b'\t').unwrap();
                (l[tab + 1..].to_vec(), l[..tab].to_vec())
            })
            .collect();
        let mut renamed = std::collections::HashSet::new();
        let failures = oracle_mismatches_with(&pairs, &["--demangle", mode], |rows| {
            let mut out = Rows::new();
            for ((st, name, flat, cum), n) in rows {
                let name = match renames.get(&name) {
                    Some(theirs) => {
                        renamed.insert(name);
                        theirs.clone()
                    }
                    None => name,
                };
                *out.entry((st, name, flat, cum)).or_default() += n;
            }
            out
        });
        assert!(failures.is_empty(), "{mode}: mismatches:\n{}", failures.join("\n"));
        let stale: Vec<_> = renames.keys().filter(|k| !renamed.contains(*k)).map(|k| String::from_utf8_lossy(k)).collect();
        assert!(stale.is_empty(), "{mode}: listed as differing but no longer printed so: {stale:?}");
    }
}

#[test]
fn full_names_keep_the_whole_function_name() {
    // invalid-utf8.pb.gz holds a function whose name is every byte 0..=255; the pprof view
    // shows its first line, the full view all of it, escaped.
    let prof = fixtures().join("invalid-utf8.pb.gz");
    let out = bin().args(["explode", "--names", "full"]).arg(&prof).output().unwrap();
    assert!(out.status.success());
    let rows = parse_ours(&out.stdout);
    assert!(rows.keys().any(|(_, name, _, _)| name.len() == 256 && name.iter().enumerate().all(|(i, &b)| b as usize == i)), "{rows:?}");
}

#[test]
fn several_files_get_a_file_column_and_bad_files_do_not_stop_good_ones() {
    let dir = fixtures();
    let good = dir.join("go-workload-goroutine.pb.gz");
    let bad = dir.join("dotnet-function-id-zero.pb.gz");
    let out = bin().args(["explode"]).arg(&bad).arg(&good).output().unwrap();
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(stderr.contains("dotnet-function-id-zero.pb.gz") && stderr.contains("reserved ID 0"), "{stderr}");
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(!stdout.is_empty());
    for line in stdout.lines() {
        let cols: Vec<&str> = line.split('\t').collect();
        assert_eq!(cols.len(), 5, "{line}");
        assert_eq!(cols[0], good.display().to_string());
    }
    let want = parse_oracle(&std::fs::read(dir.join("go-workload-goroutine.oracle.tsv")).unwrap());
    let single = bin().arg("explode").arg(&good).output().unwrap();
    assert_eq!(parse_ours(&single.stdout), want);
}

#[test]
fn unreadable_and_garbage_files_are_clear_errors() {
    let tmp = std::env::temp_dir().join(format!("pprofhouse-oracle-{}", std::process::id()));
    std::fs::create_dir_all(&tmp).unwrap();
    let garbage = tmp.join("garbage.pb");
    std::fs::write(&garbage, b"\xff\xff\xff\xff this is not a profile").unwrap();
    let empty = tmp.join("empty.pb.gz");
    std::fs::write(&empty, b"").unwrap();
    let truncated = tmp.join("truncated.pb.gz");
    let full = std::fs::read(fixtures().join("go-workload-cpu.pb.gz")).unwrap();
    std::fs::write(&truncated, &full[..full.len() / 2]).unwrap();
    for (path, needle) in
        [(&garbage, "not a pprof profile"), (&empty, "empty input"), (&truncated, "truncated"), (&tmp.join("missing.pb"), "cannot read")]
    {
        let out = bin().arg("explode").arg(path).output().unwrap();
        assert_eq!(out.status.code(), Some(1), "{}", path.display());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(stderr.lines().count(), 1, "{stderr}");
        assert!(stderr.contains(&path.display().to_string()) && stderr.contains(needle), "{needle}: {stderr}");
    }
    std::fs::remove_dir_all(&tmp).unwrap();
}

#[test]
fn jsonl_has_the_same_numbers_as_tsv() {
    let prof = fixtures().join("go-workload-heap.pb.gz");
    let tsv = bin().arg("explode").arg(&prof).output().unwrap();
    let jsonl = bin().args(["explode", "--format", "jsonl"]).arg(&prof).output().unwrap();
    let tsv_rows = parse_ours(&tsv.stdout);
    let mut json_rows = Rows::new();
    for line in String::from_utf8(jsonl.stdout).unwrap().lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        let key = (
            v["sample_type"].as_str().unwrap().as_bytes().to_vec(),
            v["function"].as_str().unwrap().as_bytes().to_vec(),
            v["flat"].as_i64().unwrap(),
            v["cum"].as_i64().unwrap(),
        );
        *json_rows.entry(key).or_default() += 1;
    }
    assert_eq!(tsv_rows, json_rows);
}

#[test]
fn demangle_modes_are_pprofs() {
    let prof = name_fixtures().join("cpp-mangled.pb.gz");
    let names = |mode: &str| {
        let out = bin().args(["explode", "--demangle", mode]).arg(&prof).output().unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        parse_ours(&out.stdout).into_keys().map(|(_, name, _, _)| String::from_utf8(name).unwrap()).collect::<Vec<_>>()
    };
    for (mode, want) in [
        ("default", "std::vector::push_back"),
        ("templates", "std::vector<int, std::allocator<int> >::push_back"),
        ("full", "std::vector<int, std::allocator<int> >::push_back(int const&)"),
        ("none", "_ZNSt6vectorIiSaIiEE9push_backERKi"),
    ] {
        let got = names(mode);
        assert!(got.iter().any(|n| n == want), "{mode}: no {want} in {got:?}");
    }
    // Forcing modes re-demangle a name that was already demangled.
    assert!(names("default").iter().any(|n| n == "ns::kept(int) const"));
    assert!(names("templates").iter().any(|n| n == "ns::kept"));
}

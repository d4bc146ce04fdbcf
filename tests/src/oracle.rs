//! The fixture oracles (`NAME.oracle.tsv`, from `go tool pprof -top`) and `pprofhouse explode`'s
//! TSV, parsed into the same comparable rows.
use std::collections::HashMap;
use std::path::{Path, PathBuf};

pub use crate::paths::fixtures;

/// (profile path, oracle path) for every profile in `dir` that has an oracle, sorted.
pub fn oracle_pairs(dir: &Path) -> Vec<(PathBuf, PathBuf)> {
    oracle_pairs_in(dir, dir)
}

/// [`oracle_pairs`] for oracles kept apart from their profiles: each `NAME.oracle.tsv` in
/// `oracles` with `profiles/NAME.pb.gz` (or `.pb`).
pub fn oracle_pairs_in(oracles: &Path, profiles: &Path) -> Vec<(PathBuf, PathBuf)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(oracles).unwrap_or_else(|e| panic!("{}: {e}", oracles.display())) {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_string_lossy().into_owned();
        if let Some(base) = name.strip_suffix(".oracle.tsv") {
            let prof = [".pb.gz", ".pb"].iter().map(|e| profiles.join(format!("{base}{e}"))).find(|p| p.exists());
            out.push((prof.unwrap_or_else(|| panic!("no profile for {name}")), p));
        }
    }
    out.sort();
    out
}

/// The shared pprof-names fixtures (`../shared/fixtures/pprof-names`).
pub fn shared_name_fixtures() -> PathBuf {
    fixtures().parent().unwrap().join("pprof-names")
}

/// This repository's real profiles (`tests/fixtures/pprof`): kinds the shared set lacks.
pub fn real_fixtures() -> PathBuf {
    crate::paths::repo_root().join("tests/fixtures/pprof")
}

/// This repository's pprof-names fixtures (`tests/fixtures/pprof-names`).
pub fn name_fixtures() -> PathBuf {
    crate::paths::repo_root().join("tests/fixtures/pprof-names")
}

pub type Rows = HashMap<(Vec<u8>, Vec<u8>, i64, i64), usize>;

fn split_last_two(rest: &[u8]) -> (Vec<u8>, i64, i64) {
    let mut it = rest.rsplitn(3, |&b| b == b'\t');
    let cum = std::str::from_utf8(it.next().unwrap()).unwrap().parse().unwrap();
    let flat = std::str::from_utf8(it.next().unwrap()).unwrap().parse().unwrap();
    (it.next().unwrap().to_vec(), flat, cum)
}

/// Oracle rows: `sample_type<TAB>function<TAB>flat<TAB>cum`, the function taken raw (it may
/// itself hold a tab), rows with flat = cum = 0 dropped.
pub fn parse_oracle(data: &[u8]) -> Rows {
    let mut rows = Rows::new();
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let tab = line.iter().position(|&b| b == b'\t').unwrap();
        let (st, rest) = (&line[..tab], &line[tab + 1..]);
        let (name, flat, cum) = split_last_two(rest);
        if flat == 0 && cum == 0 {
            continue;
        }
        *rows.entry((st.to_vec(), name, flat, cum)).or_default() += 1;
    }
    rows
}

/// Undoes ClickHouse TSV escaping.
pub fn unescape(b: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            let r = match b[i + 1] {
                b't' => Some(b'\t'),
                b'n' => Some(b'\n'),
                b'\\' => Some(b'\\'),
                b'r' => Some(b'\r'),
                b'0' => Some(0),
                _ => None,
            };
            if let Some(c) = r {
                out.push(c);
                i += 2;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

/// Our TSV rows (exactly four tab-separated, escaped fields per line).
pub fn parse_ours(data: &[u8]) -> Rows {
    let mut rows = Rows::new();
    for line in data.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
        let parts: Vec<&[u8]> = line.split(|&b| b == b'\t').collect();
        assert_eq!(parts.len(), 4, "bad line {:?}", String::from_utf8_lossy(line));
        let flat: i64 = std::str::from_utf8(parts[2]).unwrap().parse().unwrap();
        let cum: i64 = std::str::from_utf8(parts[3]).unwrap().parse().unwrap();
        if flat == 0 && cum == 0 {
            continue;
        }
        *rows.entry((parts[0].to_vec(), unescape(parts[1]), flat, cum)).or_default() += 1;
    }
    rows
}

/// `pprofhouse explode --format tsv` of `profile` with more `args`: its rows. Panics when it
/// fails.
pub fn explode_rows(profile: &Path, args: &[&str]) -> Rows {
    let out = std::process::Command::new(crate::paths::pprofhouse_bin())
        .args(["explode", "--format", "tsv"])
        .args(args)
        .arg(profile)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}: {}", profile.display(), String::from_utf8_lossy(&out.stderr));
    parse_ours(&out.stdout)
}

/// `None` when `got` equals `want`; else a few of the rows only one of them has.
pub fn row_differences(want: &Rows, got: &Rows) -> Option<String> {
    if want == got {
        return None;
    }
    let missing: Vec<_> = want.keys().filter(|k| !got.contains_key(*k)).take(3).collect();
    let extra: Vec<_> = got.keys().filter(|k| !want.contains_key(*k)).take(3).collect();
    Some(format!("missing {missing:?} extra {extra:?}"))
}

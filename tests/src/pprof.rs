//! The oracle side: `go tool pprof -top` run over files with exact integer units, and the same
//! table from `pprofhouse top --format tsv`, both as function → (flat, cum).
use std::collections::HashMap;
use std::ffi::OsStr;
use std::process::Command;

pub type Top = HashMap<String, (i64, i64)>;

/// The `-unit` that makes pprof print exact integers for a sample type's unit.
pub fn exact_unit(sample_type: &str) -> &'static str {
    match sample_type.rsplit('/').next().unwrap_or("") {
        "nanoseconds" => "ns",
        "microseconds" => "us",
        "milliseconds" => "ms",
        "seconds" => "s",
        "bytes" => "B",
        _ => "",
    }
}

/// `go tool pprof -top` over `files` (paths, or URLs pprof fetches) for `sample_type`
/// (`type/unit`): functions keyed by name (pprof's `(inline)`/`(partial-inline)` display
/// labels removed). Panics if `go` is missing.
pub fn go_pprof_top<S: AsRef<OsStr>>(files: &[S], sample_type: &str) -> Top {
    let unit = exact_unit(sample_type);
    let mut cmd = Command::new("go");
    // pprof keeps a copy of what it fetches over HTTP in $PPROF_TMPDIR (default ~/pprof).
    let scratch = tempfile::tempdir().unwrap();
    cmd.env("PPROF_TMPDIR", scratch.path());
    cmd.args(["tool", "pprof", "-top", "-nodecount=100000000", "-nodefraction=0", "-edgefraction=0"]);
    cmd.arg(format!("-sample_index={}", sample_type.split('/').next().unwrap()));
    if !unit.is_empty() {
        cmd.arg(format!("-unit={unit}"));
    }
    let out = cmd.args(files).output().expect("`go` must be on PATH (`make test` puts it there; or PATH=\"$(infra/local/tools):$PATH\")");
    assert!(out.status.success(), "go tool pprof failed: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout);
    let mut rows = Top::new();
    let mut body = false;
    for line in text.lines() {
        if line.trim_start().starts_with("flat  flat%") {
            body = true;
            continue;
        }
        if !body {
            continue;
        }
        let (flat, cum, rest) = split_top_line(line);
        let name = rest.strip_suffix(" (inline)").or_else(|| rest.strip_suffix(" (partial-inline)")).unwrap_or(rest);
        let num = |s: &str| -> i64 { s.trim_end_matches(unit).parse().unwrap_or_else(|_| panic!("{s} in {line}")) };
        let e = rows.entry(name.to_string()).or_default();
        e.0 += num(flat);
        e.1 += num(cum);
    }
    rows.retain(|_, v| *v != (0, 0));
    rows
}

/// One line of `go tool pprof -top`'s table: flat, cum and the name, as pprof's report writes
/// it (`"%10s %s %s %10s %s  %s"`: five columns, then exactly two spaces, then the name). The
/// name is what follows those two spaces, its own leading spaces included (a Node.js method may
/// be called `"  x"`); splitting on whitespace would drop them.
fn split_top_line(line: &str) -> (&str, &str, &str) {
    let mut rest = line.trim_start();
    let mut columns = [""; 5];
    for (i, column) in columns.iter_mut().enumerate() {
        let end = rest.find(' ').unwrap_or_else(|| panic!("pprof -top line {line:?}"));
        *column = &rest[..end];
        rest = &rest[end..];
        if i < 4 {
            rest = rest.trim_start_matches(' ');
        }
    }
    let name = rest.strip_prefix("  ").unwrap_or_else(|| panic!("pprof -top line without two spaces before the name: {line:?}"));
    (columns[0], columns[3], name)
}

/// Parses `function<TAB>flat<TAB>cum` lines (names unescaped only for `\\t`, `\\n`, `\\\\`).
pub fn parse_top_tsv(stdout: &[u8]) -> Top {
    let mut rows = Top::new();
    for line in String::from_utf8_lossy(stdout).lines() {
        let c: Vec<&str> = line.split('\t').collect();
        assert_eq!(c.len(), 3, "bad top line {line:?}");
        let name = c[0].replace("\\t", "\t").replace("\\n", "\n").replace("\\\\", "\\");
        rows.insert(name, (c[1].parse().unwrap(), c[2].parse().unwrap()));
    }
    rows
}

/// `pprofhouse top --format tsv -n all` with extra arguments (files, or ClickHouse flags).
pub fn pprofhouse_top(args: &[&str], env: &[(&str, String)]) -> Top {
    let out = Command::new(crate::paths::pprofhouse_bin())
        .args(["top", "-n", "100000000", "--format", "tsv"])
        .args(args)
        .envs(env.iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(out.status.success(), "pprofhouse top {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    parse_top_tsv(&out.stdout)
}

#[cfg(test)]
mod tests {
    use super::split_top_line;

    #[test]
    fn top_lines_keep_the_names_own_spaces() {
        // As `go tool pprof -top -unit=ns` prints them (report.go: "%10s %s %s %10s %s  %s%s\n").
        assert_eq!(
            split_top_line("         0     0%   100% 95250000ns  3.17%    leading and trailing  "),
            ("0", "95250000ns", "  leading and trailing  ")
        );
        assert_eq!(
            split_top_line("     1.07s 28.31% 28.31%      1.07s 28.31%  runtime.asyncPreempt"),
            ("1.07s", "1.07s", "runtime.asyncPreempt")
        );
        assert_eq!(split_top_line("        12  0.40%  0.40%         12  0.40%  a (b) c (inline)"), ("12", "12", "a (b) c (inline)"));
    }
}

//! Output: ClickHouse-style TSV escaping and a `go tool pprof -top`-like table with human units.
//! Pure formatting; the numbers come from [`crate::explode`](mod@crate::explode) or from ClickHouse.

use std::io::{self, Write};

/// Writes `bytes` escaped as in ClickHouse TabSeparated: `\t`, `\n`, `\r`, `\0` and `\\` become
/// two-character escapes; every other byte (including invalid UTF-8) is written as is.
pub fn write_tsv_escaped(out: &mut impl Write, bytes: &[u8]) -> io::Result<()> {
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let esc: &[u8] = match b {
            b'\t' => b"\\t",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\0' => b"\\0",
            b'\\' => b"\\\\",
            _ => continue,
        };
        out.write_all(&bytes[start..i])?;
        out.write_all(esc)?;
        start = i + 1;
    }
    out.write_all(&bytes[start..])
}

/// A function's name as a line-oriented reader of `go tool pprof -top` sees it: pprof prints
/// the name raw (so only its first line survives) followed by its ` (partial-inline)` label;
/// the ` (inline)` label is left out, as the fixture oracles (`pprof-oracle.sh`) leave it out.
pub fn pprof_top_name(name: &[u8], mark: crate::InlineMark) -> std::borrow::Cow<'_, [u8]> {
    let first_line = match name.iter().position(|&b| b == b'\n') {
        Some(i) => &name[..i],
        None => name,
    };
    if mark == crate::InlineMark::Partial {
        let mut v = first_line.to_vec();
        v.extend_from_slice(b" (partial-inline)");
        std::borrow::Cow::Owned(v)
    } else {
        std::borrow::Cow::Borrowed(first_line)
    }
}

/// One line of a top table: a function with flat and cum in the sample type's unit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopEntry {
    /// Function name.
    pub function: Vec<u8>,
    /// Flat value: samples whose leaf is this function.
    pub flat: i64,
    /// Cum value: samples with this function anywhere on the stack (once per sample).
    pub cum: i64,
}

/// Writes `function<TAB>flat<TAB>cum` lines (exact integers, escaped names).
pub fn write_top_tsv(out: &mut impl Write, entries: &[TopEntry]) -> io::Result<()> {
    for e in entries {
        write_tsv_escaped(out, &e.function)?;
        writeln!(out, "\t{}\t{}", e.flat, e.cum)?;
    }
    Ok(())
}

/// Writes a table like `go tool pprof -top`: a header naming the sample type and the share of
/// the total shown, then `flat flat% sum% cum cum% name` lines. `entries` are already sorted and
/// cut to the wanted count; `total` is the sample type's total, `all` how many functions exist.
pub fn write_top_table(
    out: &mut impl Write,
    sample_type: &str,
    unit: &str,
    entries: &[TopEntry],
    total: i64,
    all: usize,
) -> io::Result<()> {
    let shown: i64 = entries.iter().map(|e| e.flat).sum();
    writeln!(out, "Type: {sample_type}")?;
    writeln!(
        out,
        "Showing nodes accounting for {}, {} of {} total",
        scaled_label(shown, unit),
        percent(shown, total),
        scaled_label(total, unit)
    )?;
    if entries.len() < all {
        writeln!(out, "Showing top {} nodes out of {}", entries.len(), all)?;
    }
    writeln!(out, "{:>10} {:>6} {:>6} {:>10} {:>6}", "flat", "flat%", "sum%", "cum", "cum%")?;
    let mut sum = 0i64;
    for e in entries {
        sum += e.flat;
        write!(
            out,
            "{:>10} {:>6} {:>6} {:>10} {:>6}  ",
            scaled_label(e.flat, unit),
            percent(e.flat, total),
            percent(sum, total),
            scaled_label(e.cum, unit),
            percent(e.cum, total)
        )?;
        out.write_all(&e.function)?;
        writeln!(out)?;
    }
    Ok(())
}

/// `12.34%` like pprof (`0` total gives `0%`).
pub fn percent(value: i64, total: i64) -> String {
    if total == 0 {
        return "0%".into();
    }
    let p = 100.0 * value as f64 / total as f64;
    format!("{p:.2}%")
}

/// A value with a human unit, like pprof's `measurement.ScaledLabel(v, unit, "auto")`:
/// time scales among ns/us/ms/s/mins/hrs, bytes among B/kB/MB/GB/TB/PB (powers of 1024),
/// counts stay plain; two decimals with a trailing `.00` dropped.
pub fn scaled_label(value: i64, unit: &str) -> String {
    let (v, u) = scale(value, unit);
    let s = format!("{v:.2}");
    let s = s.strip_suffix(".00").unwrap_or(&s).to_string();
    if s == "0" || s == "-0" {
        return "0".into();
    }
    format!("{s}{u}")
}

fn scale(value: i64, unit: &str) -> (f64, &'static str) {
    const TIME: &[(&str, f64)] = &[("ns", 1.0), ("us", 1e3), ("ms", 1e6), ("s", 1e9), ("mins", 60e9), ("hrs", 3600e9)];
    const BYTES: &[(&str, f64)] =
        &[("B", 1.0), ("kB", 1024.0), ("MB", 1048576.0), ("GB", 1073741824.0), ("TB", 1099511627776.0), ("PB", 1125899906842624.0)];
    let (table, base): (&[(&str, f64)], f64) = match unit {
        "nanoseconds" | "nanosecond" | "ns" => (TIME, 1.0),
        "microseconds" | "microsecond" | "us" => (TIME, 1e3),
        "milliseconds" | "millisecond" | "ms" => (TIME, 1e6),
        "seconds" | "second" | "s" => (TIME, 1e9),
        "bytes" | "byte" | "b" | "B" => (BYTES, 1.0),
        "kilobytes" | "kb" | "kB" => (BYTES, 1024.0),
        "megabytes" | "mb" | "MB" => (BYTES, 1048576.0),
        _ => return (value as f64, ""),
    };
    let v = value as f64 * base;
    let mut chosen = table[0];
    for &(name, factor) in table {
        if v.abs() >= factor {
            chosen = (name, factor);
        }
    }
    (v / chosen.1, chosen.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tsv_escaping_is_clickhouse_tabseparated() {
        let mut out = Vec::new();
        write_tsv_escaped(&mut out, b"a\tb\nc\\d\x08e\xff").unwrap();
        assert_eq!(out, b"a\\tb\\nc\\\\d\x08e\xff");
    }

    #[test]
    fn human_units_like_pprof() {
        assert_eq!(scaled_label(1_200_000_000, "nanoseconds"), "1.20s");
        assert_eq!(scaled_label(10_000_000, "nanoseconds"), "10ms");
        assert_eq!(scaled_label(0, "nanoseconds"), "0");
        assert_eq!(scaled_label(1536, "bytes"), "1.50kB");
        assert_eq!(scaled_label(1234, "count"), "1234");
        assert_eq!(scaled_label(2500, "microseconds"), "2.50ms");
        assert_eq!(percent(1, 3), "33.33%");
    }
}

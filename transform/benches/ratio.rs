//! Decode + explode against inflate alone, per file: the ratio issue 12's goal is stated in
//! (`(inflate + decode + explode − inflate) ÷ inflate ≤ 1.5` on every fixture), as one table.
//!
//! Criterion measures each benchmark on its own, minutes apart; on a shared host the two sides
//! of a ratio then see different neighbours, and the ratio moves by a third from run to run.
//! Here the two sides run in alternating rounds (inflate, then inflate + decode + explode into
//! reused buffers, as the worker decodes), and each side keeps its fastest round: a neighbour
//! only ever slows a round down, so the minimum of many is what the code costs.
//!
//! Run: `make bench-ratio`, or `cargo bench -p pprofhouse-transform --bench ratio -- DIR...`
//! (default: the shared fixtures and this repository's; `BENCH_PROFILES=DIR` adds a directory,
//! e.g. the production-size profiles of `tests/benches/prod-profiles.sh`). `ROUNDS=N` sets the
//! rounds (default 200).
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use pprofhouse_transform::pprof::{decode_reusing, inflate, is_gzip, DecodeBuffers, Limits};
use pprofhouse_transform::{explode, ExplodeOptions};

/// The gzip profiles of `dirs` that decode (a raw protobuf has no inflate to compare with),
/// sorted by name within each directory.
fn profiles(dirs: &[PathBuf]) -> Vec<(String, Bytes)> {
    let mut out = Vec::new();
    for dir in dirs {
        let Ok(entries) = std::fs::read_dir(dir) else {
            eprintln!("ratio: skipping {} (not a readable directory)", dir.display());
            continue;
        };
        let mut here: Vec<(String, Bytes)> = entries
            .filter_map(|e| {
                let p = e.ok()?.path();
                let name = p.file_name()?.to_string_lossy().into_owned();
                if !name.ends_with(".pb.gz") {
                    return None;
                }
                Some((name, Bytes::from(std::fs::read(&p).ok()?)))
            })
            .filter(|(_, b)| is_gzip(b))
            .filter(|(_, b)| decode_reusing(b.clone(), &Limits::default(), &mut DecodeBuffers::default()).is_ok())
            .collect();
        here.sort();
        out.extend(here);
    }
    out
}

/// Seconds per call of `f`, the fastest of `rounds` rounds of `iters` calls each, alternating
/// with `g` the same way; returns (f's, g's).
fn alternating(rounds: usize, iters: usize, mut f: impl FnMut(), mut g: impl FnMut()) -> (f64, f64) {
    let (mut best_f, mut best_g) = (f64::MAX, f64::MAX);
    for _ in 0..rounds {
        let t = Instant::now();
        for _ in 0..iters {
            f();
        }
        best_f = best_f.min(t.elapsed().as_secs_f64() / iters as f64);
        let t = Instant::now();
        for _ in 0..iters {
            g();
        }
        best_g = best_g.min(t.elapsed().as_secs_f64() / iters as f64);
    }
    (best_f, best_g)
}

fn main() {
    // `cargo bench` passes `--bench`; anything else not starting with `-` is a directory.
    let mut dirs: Vec<PathBuf> = std::env::args().skip(1).filter(|a| !a.starts_with('-')).map(PathBuf::from).collect();
    if dirs.is_empty() {
        let here = Path::new(env!("CARGO_MANIFEST_DIR"));
        dirs = vec![here.join("../../shared/fixtures/pprof"), here.join("../tests/fixtures/pprof")];
    }
    if let Some(d) = std::env::var_os("BENCH_PROFILES") {
        dirs.push(PathBuf::from(d));
    }
    let rounds: usize = std::env::var("ROUNDS").ok().and_then(|r| r.parse().ok()).unwrap_or(200).max(1);
    let limits = Limits::default();
    println!("{:<34} {:>9} {:>10} {:>12} {:>17} {:>7}", "profile", "gzip B", "decoded B", "inflate µs", "+decode+explode", "ratio");
    let (mut over, mut total) = (Vec::new(), 0);
    for (name, data) in profiles(&dirs) {
        let decoded = inflate(data.clone(), &limits).expect("decoded once already").len();
        // Short rounds (about 2 MB of decoded protobuf, a millisecond or two), many of them: the
        // more rounds, the likelier some ran with the core to themselves.
        let iters = (2_000_000 / decoded.max(1_000)).clamp(1, 2_000);
        let mut bufs = DecodeBuffers::default();
        let (inflate_s, all_s) = alternating(
            rounds,
            iters,
            || {
                std::hint::black_box(inflate(data.clone(), &limits).expect("inflates"));
            },
            || {
                let p = decode_reusing(data.clone(), &limits, &mut bufs).expect("decodes");
                std::hint::black_box(explode(&p, ExplodeOptions::default()));
                p.recycle(&mut bufs);
            },
        );
        let ratio = (all_s - inflate_s) / inflate_s;
        total += 1;
        if ratio > 1.5 {
            over.push(format!("{name} {ratio:.2}×"));
        }
        println!(
            "{:<34} {:>9} {:>10} {:>12.1} {:>17.1} {:>6.2}×",
            name.trim_end_matches(".pb.gz"),
            data.len(),
            decoded,
            inflate_s * 1e6,
            (all_s - inflate_s) * 1e6,
            ratio
        );
    }
    println!("ratio = (inflate + decode + explode − inflate) ÷ inflate, fastest of {rounds} alternating rounds");
    println!("over 1.5×: {} of {total} files{}{}", over.len(), if over.is_empty() { "" } else { ": " }, over.join(", "));
}

//! Decode + explode against inflate alone, per file: the ratio issue 12's goal is stated in
//! (`(inflate + decode + explode − inflate) ÷ inflate ≤ 1.5` on every fixture), as one table.
//!
//! Criterion measures each benchmark on its own, minutes apart; on a shared host the two sides
//! of a ratio then see different neighbours, and the ratio moves by a third from run to run.
//! Here the two sides run in alternating short rounds (inflate, then inflate + decode +
//! explode into reused buffers, as the worker decodes), round after round over every file, and
//! each side keeps its fastest round: a neighbour only ever slows a round down, so the minimum
//! of many is what the code costs.
//!
//! Run: `make bench-ratio`, or `cargo bench -p pprofhouse-transform --bench ratio -- DIR...`
//! (default: the shared fixtures and this repository's; `BENCH_PROFILES=DIR` adds a directory,
//! e.g. the production-size profiles of `tests/benches/prod-profiles.sh`). `ROUNDS=N` sets the
//! rounds (default 200).
use std::path::{Path, PathBuf};
use std::time::Instant;

use bytes::Bytes;
use pprofhouse_transform::pprof::{decode, decode_reusing, inflate, is_gzip, DecodeBuffers, Limits};
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
            .filter(|(_, b)| decode(b.clone(), &Limits::default()).is_ok())
            .collect();
        here.sort();
        out.extend(here);
    }
    out
}

/// Seconds per call of `f` over one round of `iters` calls.
fn timed(iters: usize, f: &mut impl FnMut()) -> f64 {
    let t = Instant::now();
    for _ in 0..iters {
        f();
    }
    t.elapsed().as_secs_f64() / iters as f64
}

/// One profile under measurement: its bytes, the buffers it decodes into, and the fastest
/// round of each side so far.
struct Subject {
    name: String,
    data: Bytes,
    decoded: usize,
    iters: usize,
    bufs: DecodeBuffers,
    inflate_s: f64,
    all_s: f64,
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
    let mut subjects: Vec<Subject> = profiles(&dirs)
        .into_iter()
        .map(|(name, data)| {
            let decoded = inflate(data.clone(), &limits).expect("decoded once already").len();
            // Short rounds (about 2 MB of decoded protobuf, a millisecond or two), many of them.
            let iters = (2_000_000 / decoded.max(1_000)).clamp(1, 2_000);
            Subject { name, data, decoded, iters, bufs: DecodeBuffers::default(), inflate_s: f64::MAX, all_s: f64::MAX }
        })
        .collect();
    // Round after round over every file, so that a busy spell of the host's slows one round of
    // each file, not every round of one.
    for _ in 0..rounds {
        for s in &mut subjects {
            let Subject { data, bufs, .. } = s;
            let mut inflate_once = || {
                std::hint::black_box(inflate(data.clone(), &limits).expect("inflates"));
            };
            let mut all_once = || {
                let p = decode_reusing(data.clone(), &limits, bufs).expect("decodes");
                std::hint::black_box(explode(&p, ExplodeOptions::default()));
                p.recycle(bufs);
            };
            // Once each untimed first: the file before left its own data in the caches, and
            // whichever side ran first would pay for bringing this file's back.
            inflate_once();
            all_once();
            let inflate_s = timed(s.iters, &mut inflate_once);
            let all_s = timed(s.iters, &mut all_once);
            s.inflate_s = s.inflate_s.min(inflate_s);
            s.all_s = s.all_s.min(all_s);
        }
    }
    let mut over = Vec::new();
    for s in &subjects {
        let ratio = (s.all_s - s.inflate_s) / s.inflate_s;
        if ratio > 1.5 {
            over.push(format!("{} {ratio:.2}×", s.name));
        }
        println!(
            "{:<34} {:>9} {:>10} {:>12.1} {:>17.1} {:>6.2}×",
            s.name.trim_end_matches(".pb.gz"),
            s.data.len(),
            s.decoded,
            s.inflate_s * 1e6,
            (s.all_s - s.inflate_s) * 1e6,
            ratio
        );
    }
    let total = subjects.len();
    println!("ratio = (inflate + decode + explode − inflate) ÷ inflate, fastest of {rounds} alternating rounds");
    println!("over 1.5×: {} of {total} files{}{}", over.len(), if over.is_empty() { "" } else { ": " }, over.join(", "));
}

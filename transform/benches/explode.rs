//! Decode and explode throughput on the real fixtures, beside the floors they stand on:
//! inflate alone, and inflate + protobuf decode + validation. Throughput is reported in bytes
//! of decompressed protobuf (criterion prints MiB/s); `fleet/*` runs over every fixture and
//! reports profiles/s.
//!
//! Run: `cargo bench -p pprofhouse-transform --bench explode`; `BENCH_PROFILES=DIR` benches every
//! profile in DIR instead (production-size ones: see `vs-pprof.sh`).
use std::path::PathBuf;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use pprofhouse_transform::pprof::{decode, decode_protobuf, decode_reusing, inflate, DecodeBuffers, Limits};
use pprofhouse_transform::{explode, explode_with, ExplodeOptions};

/// The shared fixtures, or every profile in `$BENCH_PROFILES` (a directory of production-size
/// profiles, e.g. made with the Go workload) when it is set.
fn fixtures() -> Vec<(String, Bytes)> {
    let dir = match std::env::var_os("BENCH_PROFILES") {
        Some(d) => PathBuf::from(d),
        None => PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/fixtures/pprof"),
    };
    let mut out: Vec<(String, Bytes)> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| {
            let p = e.ok()?.path();
            let name = p.file_name()?.to_string_lossy().into_owned();
            (name.ends_with(".pb.gz") || name.ends_with(".pb")).then(|| (name, Bytes::from(std::fs::read(&p).unwrap())))
        })
        .filter(|(_, b)| decode(b.clone(), &Limits::default()).is_ok())
        .collect();
    out.sort();
    out
}

fn per_file(c: &mut Criterion) {
    let limits = Limits::default();
    let mut g = c.benchmark_group("profile");
    for (name, data) in fixtures() {
        let picked = ["go-heap-2021.pb.gz", "go-workload-cpu.pb.gz", "nodejs-heap.pb.gz", "go-cpu-labels.pb.gz"];
        if std::env::var_os("BENCH_PROFILES").is_none() && !picked.contains(&name.as_str()) {
            continue;
        }
        let pb = inflate(data.clone(), &limits).unwrap();
        g.throughput(Throughput::Bytes(pb.len() as u64));
        g.bench_with_input(BenchmarkId::new("inflate", &name), &data, |b, d| b.iter(|| inflate(d.clone(), &limits).unwrap()));
        g.bench_with_input(BenchmarkId::new("inflate+decode", &name), &data, |b, d| b.iter(|| decode(d.clone(), &limits).unwrap()));
        g.bench_with_input(BenchmarkId::new("inflate+decode+explode", &name), &data, |b, d| {
            b.iter(|| explode(&decode(d.clone(), &limits).unwrap(), ExplodeOptions::default()))
        });
        g.bench_with_input(BenchmarkId::new("inflate+decode+explode+stacks", &name), &data, |b, d| {
            b.iter(|| {
                explode(&decode(d.clone(), &limits).unwrap(), ExplodeOptions { stacks: true, inline_marks: false, ..Default::default() })
            })
        });
        g.bench_with_input(BenchmarkId::new("decode-only(raw)", &name), &pb, |b, pb| b.iter(|| decode_protobuf(pb.clone()).unwrap()));
        // As the worker decodes: into the buffers the previous profile gave back.
        let mut bufs = DecodeBuffers::default();
        g.bench_with_input(BenchmarkId::new("reusing/inflate+decode", &name), &data, |b, d| {
            b.iter(|| decode_reusing(d.clone(), &limits, &mut bufs).unwrap().recycle(&mut bufs))
        });
        g.bench_with_input(BenchmarkId::new("reusing/inflate+decode+explode", &name), &data, |b, d| {
            b.iter(|| {
                let p = decode_reusing(d.clone(), &limits, &mut bufs).unwrap();
                let x = explode(&p, ExplodeOptions::default());
                p.recycle(&mut bufs);
                x
            })
        });
        g.bench_with_input(BenchmarkId::new("reusing/inflate+decode+explode+stacks", &name), &data, |b, d| {
            b.iter(|| {
                let p = decode_reusing(d.clone(), &limits, &mut bufs).unwrap();
                let x = explode(&p, ExplodeOptions { stacks: true, inline_marks: false, ..Default::default() });
                p.recycle(&mut bufs);
                x
            })
        });
        // As the worker explodes once the fleet's stacks are known: frames asked for after the
        // walk, none wanted.
        let known: std::collections::HashSet<u64> =
            explode(&decode_protobuf(pb.clone()).unwrap(), ExplodeOptions { stacks: true, ..Default::default() })
                .stacks
                .hash
                .into_iter()
                .collect();
        g.bench_with_input(BenchmarkId::new("reusing/inflate+decode+explode+stacks(known)", &name), &data, |b, d| {
            b.iter(|| {
                let p = decode_reusing(d.clone(), &limits, &mut bufs).unwrap();
                let x =
                    explode_with(&p, ExplodeOptions { stacks: true, inline_marks: false, ..Default::default() }, &|h| !known.contains(&h));
                p.recycle(&mut bufs);
                x
            })
        });
    }
    g.finish();
}

fn fleet(c: &mut Criterion) {
    let limits = Limits::default();
    let all = fixtures();
    let mut g = c.benchmark_group("fleet");
    g.throughput(Throughput::Elements(all.len() as u64));
    g.bench_function("inflate+decode", |b| {
        b.iter(|| all.iter().map(|(_, d)| decode(d.clone(), &limits).unwrap().sample_count()).sum::<usize>())
    });
    g.bench_function("inflate+decode+explode", |b| {
        b.iter(|| {
            all.iter().map(|(_, d)| explode(&decode(d.clone(), &limits).unwrap(), ExplodeOptions::default()).names.len()).sum::<usize>()
        })
    });
    g.finish();
}

criterion_group!(benches, per_file, fleet);
criterion_main!(benches);

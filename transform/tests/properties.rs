//! Property tests on generated profiles: the invariants of flat/cum, and agreement with a
//! deliberately naive reference implementation of pprof's function-granularity rules.
use std::collections::{HashMap, HashSet};

use bytes::Bytes;
use pprofhouse_transform::pprof::{decode, decode_protobuf, decode_reusing, proto, DecodeBuffers, DecodeError, Limits};
use pprofhouse_transform::{explode, explode_with, ExplodeOptions, Exploded};
use proptest::prelude::*;
use prost::Message;

/// A generated profile: `funcs` names (indices into a small name pool, so functions share
/// names and recursion happens), locations as lists of function indices (inlined lines), and
/// samples as stacks of location indices with one value per sample type (1 to 6 types: explode
/// has a walk for each count up to four, and one for any count).
#[derive(Debug, Clone)]
struct Gen {
    funcs: Vec<usize>,
    locs: Vec<Vec<usize>>,
    samples: Vec<(Vec<usize>, Vec<i64>)>,
    /// How locations are numbered: see [`loc_id`].
    ids: u8,
}

/// Location `i`'s ID: 1..=n (what writers do), sparse, or around and far past 2^31 and 2^32
/// (the decoder keeps small IDs inline and large ones aside; both must resolve alike).
fn loc_id(ids: u8, i: usize) -> u64 {
    let i = i as u64;
    match ids {
        0 => i + 1,
        1 => 1000 + 7 * i,
        2 => (1 << 31) - 3 + i,
        _ => (1 << 40) + (i << 33) + 5,
    }
}

impl Gen {
    /// The number of sample types.
    fn k(&self) -> usize {
        self.samples[0].1.len()
    }
}

const POOL: &[&str] = &["main", "fib", "runtime.mallocgc", "a", "b", "", "c\td", "ünï"];

fn gen() -> impl Strategy<Value = Gen> {
    (1usize..8).prop_flat_map(|nf| {
        let funcs = prop::collection::vec(0..POOL.len(), nf);
        let locs = prop::collection::vec(prop::collection::vec(0..nf, 0..3), 1..10);
        (funcs, locs).prop_flat_map(|(funcs, locs)| {
            let nl = locs.len();
            (1usize..=6).prop_flat_map(move |k| {
                // Some values zero, some samples all zero.
                let value = prop_oneof![Just(0i64), 0i64..1000, 0i64..5];
                let samples = prop::collection::vec((prop::collection::vec(0..nl, 0..12), prop::collection::vec(value, k)), 1..30);
                let (funcs, locs) = (funcs.clone(), locs.clone());
                (samples, 0u8..4).prop_map(move |(samples, ids)| Gen { funcs: funcs.clone(), locs: locs.clone(), samples, ids })
            })
        })
    })
}

fn encode(g: &Gen) -> Bytes {
    encode_with(g, true)
}

/// The profile of `g`, with or without its samples (its tables and sample types either way).
fn encode_with(g: &Gen, with_samples: bool) -> Bytes {
    let mut strings: Vec<String> = vec!["".into(), "cpu".into(), "nanoseconds".into(), "samples".into(), "count".into(), "/bin/app".into()];
    let mut sid = |s: &str| -> i64 {
        if let Some(i) = strings.iter().position(|x| x == s) {
            return i as i64;
        }
        strings.push(s.to_string());
        (strings.len() - 1) as i64
    };
    let function =
        g.funcs.iter().enumerate().map(|(i, &p)| proto::Function { id: i as u64 + 1, name: sid(POOL[p]), ..Default::default() }).collect();
    let location = g
        .locs
        .iter()
        .enumerate()
        .map(|(i, lines)| proto::Location {
            id: loc_id(g.ids, i),
            mapping_id: 1,
            address: 0x1000 + i as u64,
            line: lines.iter().map(|&f| proto::Line { function_id: f as u64 + 1, line: 1, column: 0 }).collect(),
            is_folded: false,
        })
        .collect();
    let sample = g
        .samples
        .iter()
        .filter(|_| with_samples)
        .map(|(stack, values)| proto::Sample {
            location_id: stack.iter().map(|&l| loc_id(g.ids, l)).collect(),
            value: values.clone(),
            label: vec![],
        })
        .collect();
    let sample_type = (0..g.k()).map(|t| proto::ValueType { r#type: sid(&format!("type{t}")), unit: 4 }).collect();
    let p = proto::Profile {
        sample_type,
        sample,
        mapping: vec![proto::Mapping { id: 1, filename: 5, ..Default::default() }],
        location,
        function,
        string_table: strings.into_iter().map(Bytes::from).collect(),
        ..Default::default()
    };
    Bytes::from(p.encode_to_vec())
}

/// A sample's frames by name, leaf first (inlined lines innermost first), straight from the rules.
fn reference_frames(g: &Gen, stack: &[usize]) -> Vec<Vec<u8>> {
    let name = |f: usize| -> Vec<u8> {
        let n = POOL[g.funcs[f]];
        if n.is_empty() {
            b"[app]".to_vec()
        } else {
            n.as_bytes().to_vec()
        }
    };
    stack
        .iter()
        .flat_map(|&l| if g.locs[l].is_empty() { vec![b"[app]".to_vec()] } else { g.locs[l].iter().map(|&f| name(f)).collect() })
        .collect()
}

/// The naive reference of the stacks: each distinct list of frame names (leaf first) with the
/// summed values of the samples that have it (all-zero samples and empty stacks left out).
fn reference_stacks(g: &Gen) -> HashMap<Vec<Vec<u8>>, Vec<i64>> {
    let mut out: HashMap<Vec<Vec<u8>>, Vec<i64>> = HashMap::new();
    for (stack, values) in &g.samples {
        if stack.is_empty() || values.iter().all(|&v| v == 0) {
            continue;
        }
        let e = out.entry(reference_frames(g, stack)).or_insert_with(|| vec![0; g.k()]);
        for (a, v) in e.iter_mut().zip(values) {
            *a += v;
        }
    }
    out
}

/// The naive reference: names per frame straight from the rules, sets per sample.
fn reference(g: &Gen, t: usize) -> HashMap<Vec<u8>, (i64, i64)> {
    let mut out: HashMap<Vec<u8>, (i64, i64)> = HashMap::new();
    for (stack, values) in &g.samples {
        let v = values[t];
        let frames = reference_frames(g, stack);
        if let Some(leaf) = frames.first() {
            out.entry(leaf.clone()).or_default().0 += v;
        }
        for f in frames.iter().collect::<HashSet<_>>() {
            out.entry(f.clone()).or_default().1 += v;
        }
    }
    out.retain(|_, v| *v != (0, 0));
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn flat_cum_invariants_and_reference(g in gen()) {
        let profile = decode_protobuf(encode(&g)).unwrap();
        let ex = explode(&profile, ExplodeOptions { stacks: true, inline_marks: true, ..Default::default() });
        for t in 0..g.k() {
            let total: i64 = ex.facts.totals[t];
            let with_stack: i64 = g.samples.iter().filter(|s| !s.0.is_empty()).map(|s| s.1[t]).sum();
            let rows = ex.rows(t);
            let flat_sum: i64 = rows.iter().map(|r| r.flat).sum();
            prop_assert_eq!(flat_sum, with_stack);
            for r in &rows {
                prop_assert!(0 <= r.flat && r.flat <= r.cum && r.cum <= total, "{:?}", r);
            }
            let got: HashMap<Vec<u8>, (i64, i64)> = rows.iter().map(|r| (r.function.to_vec(), (r.flat, r.cum))).collect();
            prop_assert_eq!(got, reference(&g, t));
            // The stacks carry every sample's value exactly once.
            let stack_sum: i64 = ex.stacks.iter().map(|s| s.values[t]).sum();
            prop_assert_eq!(stack_sum, with_stack);
        }
        // Each distinct stack: its frames by name, leaf first, with its samples' values.
        let got: HashMap<Vec<Vec<u8>>, Vec<i64>> = ex
            .stacks
            .iter()
            .map(|s| (s.frames.iter().map(|&n| ex.names[n as usize].to_vec()).collect(), s.values.to_vec()))
            .collect();
        prop_assert_eq!(got.len(), ex.stacks.len(), "one stack per distinct list of frames");
        prop_assert_eq!(got, reference_stacks(&g));
        // The inline marks walk the other way round: nothing else may change.
        let plain = explode(&profile, ExplodeOptions { stacks: true, inline_marks: false, ..Default::default() });
        prop_assert_eq!((&plain.flat, &plain.cum), (&ex.flat, &ex.cum));
        prop_assert!(plain.stacks.iter().eq(ex.stacks.iter()), "stacks differ with the inline marks on");
    }

    /// A profile without samples (a mutex profile with profiling off) has its facts, zero
    /// totals, and no rows, names or stacks, whatever its tables hold.
    #[test]
    fn no_samples_only_facts(g in gen(), stacks in any::<bool>(), inline_marks in any::<bool>()) {
        let full = explode(&decode_protobuf(encode(&g)).unwrap(), ExplodeOptions::default());
        let profile = decode_protobuf(encode_with(&g, false)).unwrap();
        let opts = ExplodeOptions { stacks, inline_marks, ..Default::default() };
        for ex in [explode(&profile, opts), explode_with(&profile, opts, &|_| true)] {
            prop_assert_eq!(ex.facts.sample_count, 0);
            prop_assert_eq!(&ex.facts.totals, &vec![0; g.k()]);
            prop_assert_eq!(&ex.facts.sample_types, &full.facts.sample_types);
            prop_assert_eq!(ex.facts.default_sample_type, full.facts.default_sample_type);
            prop_assert_eq!(&ex.facts.period_type, &full.facts.period_type);
            prop_assert!(ex.all_rows().is_empty());
            prop_assert!(ex.names.is_empty() && ex.stacks.is_empty() && ex.stacks.iter().next().is_none());
        }
    }

    /// Stacks whose frames are not wanted keep their hash and values; nothing else changes.
    #[test]
    fn unwanted_frames_change_nothing_but_those_frames(g in gen(), pick in any::<u64>(), inline_marks in any::<bool>()) {
        let profile = decode_protobuf(encode(&g)).unwrap();
        let opts = ExplodeOptions { stacks: true, inline_marks, ..Default::default() };
        let all = explode(&profile, opts);
        // Asked after the walk, the frames are those the walk collects.
        prop_assert!(explode_with(&profile, opts, &|_| true).stacks.iter().eq(all.stacks.iter()));
        let wanted = |h: u64| !(h ^ pick).is_multiple_of(3);
        let some = explode_with(&profile, opts, &wanted);
        prop_assert_eq!(&some.names, &all.names);
        prop_assert_eq!((&some.flat, &some.cum, &some.facts.totals), (&all.flat, &all.cum, &all.facts.totals));
        prop_assert_eq!(some.stacks.len(), all.stacks.len());
        for (a, b) in all.stacks.iter().zip(some.stacks.iter()) {
            prop_assert_eq!((a.hash, a.values), (b.hash, b.values));
            prop_assert_eq!(b.frames, if wanted(a.hash) { a.frames } else { &[][..] });
        }
        prop_assert!(explode_with(&profile, opts, &|_| false).stacks.iter().all(|s| s.frames.is_empty()));
    }

    #[test]
    fn deeper_recursion_does_not_change_cum(g in gen(), extra in 1usize..5) {
        // Repeat every sample's root-most frame `extra` more times: a deeper recursion.
        let mut deeper = g.clone();
        for s in &mut deeper.samples {
            if let Some(&root) = s.0.last() {
                s.0.extend(std::iter::repeat_n(root, extra));
            }
        }
        let a = explode(&decode_protobuf(encode(&g)).unwrap(), ExplodeOptions::default());
        let b = explode(&decode_protobuf(encode(&deeper)).unwrap(), ExplodeOptions::default());
        for t in 0..g.k() {
            let ra: HashMap<&[u8], (i64, i64)> = a.rows(t).iter().map(|r| (r.function, (r.flat, r.cum))).collect();
            let rb: HashMap<&[u8], (i64, i64)> = b.rows(t).iter().map(|r| (r.function, (r.flat, r.cum))).collect();
            prop_assert_eq!(ra, rb);
        }
    }

    #[test]
    fn decode_never_panics_on_mutated_input(g in gen(), cut in 0usize..400, flip in any::<(usize, u8)>()) {
        let mut bytes = encode(&g).to_vec();
        if !bytes.is_empty() {
            let i = flip.0 % bytes.len();
            bytes[i] ^= flip.1;
        }
        bytes.truncate(cut.min(bytes.len()));
        // The wire pass accepts exactly what prost accepts, and classifies its failures alike.
        let by_prost = proto::Profile::decode(&bytes[..]);
        let ours = decode_protobuf(Bytes::from(bytes));
        match (&by_prost, &ours) {
            (Err(e), Err(DecodeError::Truncated(_))) => {
                let m = e.to_string();
                prop_assert!(m.contains("buffer underflow") || m.contains("unexpected end"), "{m}");
            }
            (Err(e), Err(DecodeError::NotProfile(m))) => prop_assert!(!m.contains("no sample types"), "prost: {e}, ours: {m}"),
            (Err(e), other) => prop_assert!(false, "prost: {e}, ours: {other:?}"),
            (Ok(_), Err(DecodeError::Truncated(m))) => prop_assert!(false, "prost accepts, ours: {m}"),
            (Ok(_), Err(DecodeError::NotProfile(m))) => prop_assert!(m.contains("no sample types"), "prost accepts, ours: {m}"),
            (Ok(_), _) => {}
        }
        if let Ok(p) = ours {
            let _ = explode(&p, ExplodeOptions { stacks: true, inline_marks: true, ..Default::default() });
        }
    }

    /// Unpacked repeated fields and unknown fields of every wire type decode to the same profile.
    #[test]
    fn unpacked_and_unknown_fields_decode_alike(g in gen()) {
        let packed = encode(&g);
        let mut p = proto::Profile::decode(packed.clone()).unwrap();
        let samples = std::mem::take(&mut p.sample);
        let mut wire = p.encode_to_vec();
        let varint = |out: &mut Vec<u8>, mut v: u64| {
            while v >= 0x80 {
                out.push(v as u8 | 0x80);
                v >>= 7;
            }
            out.push(v as u8);
        };
        let unknown = |out: &mut Vec<u8>| {
            varint(out, 99 << 3); // varint
            varint(out, 300);
            varint(out, (98 << 3) | 5); // fixed32
            out.extend_from_slice(&[1, 2, 3, 4]);
            varint(out, (97 << 3) | 1); // fixed64
            out.extend_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]);
            varint(out, (96 << 3) | 3); // group holding a varint
            varint(out, 1 << 3);
            varint(out, 5);
            varint(out, (96 << 3) | 4);
            varint(out, (95 << 3) | 2); // length-delimited
            varint(out, 2);
            out.extend_from_slice(b"zz");
        };
        unknown(&mut wire);
        for s in &samples {
            let mut msg = Vec::new();
            unknown(&mut msg);
            for &id in &s.location_id {
                varint(&mut msg, 1 << 3);
                varint(&mut msg, id);
            }
            for &v in &s.value {
                varint(&mut msg, 2 << 3);
                varint(&mut msg, v as u64);
            }
            varint(&mut wire, (2 << 3) | 2);
            varint(&mut wire, msg.len() as u64);
            wire.extend_from_slice(&msg);
        }
        let a = explode(&decode_protobuf(packed).unwrap(), ExplodeOptions { stacks: true, inline_marks: true, ..Default::default() });
        let b = explode(&decode_protobuf(Bytes::from(wire)).unwrap(), ExplodeOptions { stacks: true, inline_marks: true, ..Default::default() });
        assert_same(&a, &b)?;
    }
}

/// Everything explode computes from a profile's content (not its encoded size), to compare two
/// explosions: names, flat, cum, inline marks, totals, and every stack with its frames.
fn assert_same(a: &Exploded, b: &Exploded) -> Result<(), TestCaseError> {
    prop_assert_eq!(&a.names, &b.names);
    prop_assert_eq!(&a.flat, &b.flat);
    prop_assert_eq!(&a.cum, &b.cum);
    prop_assert_eq!(&a.inline_marks, &b.inline_marks);
    prop_assert_eq!(a.facts.sample_count, b.facts.sample_count);
    prop_assert_eq!(&a.facts.totals, &b.facts.totals);
    prop_assert_eq!(&a.facts.sample_types, &b.facts.sample_types);
    let sa: Vec<_> = a.stacks.iter().collect();
    let sb: Vec<_> = b.stacks.iter().collect();
    prop_assert_eq!(sa, sb);
    Ok(())
}

fn gzip(pb: &[u8]) -> Bytes {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    gz.write_all(pb).unwrap();
    Bytes::from(gz.finish().unwrap())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    /// Profiles decoded one after another into the buffers the previous ones gave back
    /// (larger, smaller, gzip or raw, with failures in between) explode exactly as when each is
    /// decoded on its own.
    #[test]
    fn decoding_into_recycled_buffers_changes_nothing(
        seq in prop::collection::vec((gen(), any::<bool>(), 0u8..8), 1..8)
    ) {
        let limits = Limits::default();
        let opts = ExplodeOptions { stacks: true, inline_marks: true, ..Default::default() };
        let mut bufs = DecodeBuffers::default();
        for (g, gz, cut) in &seq {
            let pb = encode(g);
            let data = if *gz { gzip(&pb) } else { pb };
            if *cut == 0 {
                // A truncated object fails alike either way, and the buffers stay usable.
                let short = data.slice(..data.len() / 2);
                let fresh = decode(short.clone(), &limits).map(|_| ()).map_err(|e| e.to_string());
                let reused = decode_reusing(short, &limits, &mut bufs).map(|p| p.recycle(&mut bufs)).map_err(|e| e.to_string());
                prop_assert_eq!(fresh, reused);
                continue;
            }
            let fresh = explode(&decode(data.clone(), &limits).unwrap(), opts);
            let profile = decode_reusing(data, &limits, &mut bufs).unwrap();
            let reused = explode(&profile, opts);
            prop_assert_eq!(fresh.facts.decoded_bytes, reused.facts.decoded_bytes);
            profile.recycle(&mut bufs);
            assert_same(&fresh, &reused)?;
        }
    }
}

/// A stream of profiles of different sizes, decoded again and again into recycled buffers: the
/// buffers are kept (the point of recycling) and stop growing once they fit the largest, so a
/// worker's pool holds a steady amount.
#[test]
fn recycled_buffers_reach_a_steady_size() {
    let gen = |n: usize| Gen {
        funcs: vec![0, 1, 2, 3],
        locs: vec![vec![0], vec![1, 2], vec![3]],
        samples: (0..n).map(|i| (vec![i % 3, (i + 1) % 3, 2], vec![i as i64, 1])).collect(),
        ids: 0,
    };
    let stream: Vec<Bytes> = [10, 3000, 200].iter().map(|&n| gzip(&encode(&gen(n)))).collect();
    let limits = Limits::default();
    let mut bufs = DecodeBuffers::default();
    let mut pass = || {
        for data in &stream {
            decode_reusing(data.clone(), &limits, &mut bufs).unwrap().recycle(&mut bufs);
        }
        bufs.heap_bytes()
    };
    let first = pass();
    // The last profile of a pass is a small one, yet the buffers still fit the largest.
    let mut alone = DecodeBuffers::default();
    decode_reusing(stream[1].clone(), &limits, &mut alone).unwrap().recycle(&mut alone);
    assert!(alone.heap_bytes() > stream[1].len(), "a profile's buffers are given back");
    assert!(first >= alone.heap_bytes(), "{first} < {}", alone.heap_bytes());
    for _ in 0..3 {
        assert_eq!(pass(), first);
    }
}

#[test]
fn stack_hashes_are_stable() {
    // One fixed stack: main → fib → fib (leaf), hashed from the names alone.
    let g = Gen { funcs: vec![0, 1], locs: vec![vec![1], vec![0]], samples: vec![(vec![0, 0, 1], vec![5, 1])], ids: 0 };
    let ex = explode(&decode_protobuf(encode(&g)).unwrap(), ExplodeOptions { stacks: true, inline_marks: false, ..Default::default() });
    assert_eq!(ex.stacks.len(), 1);
    let names: Vec<&[u8]> = ex.stacks.get(0).frames.iter().map(|&f| &ex.names[f as usize][..]).collect();
    assert_eq!(names, vec![&b"fib"[..], b"fib", b"main"]);
    let mut buf = Vec::new();
    for n in ["fib", "fib", "main"] {
        buf.extend_from_slice(&xxhash_rust::xxh3::xxh3_64(n.as_bytes()).to_le_bytes());
    }
    assert_eq!(ex.stacks.get(0).hash, xxhash_rust::xxh3::xxh3_64(&buf));
}

/// Pieces of mangled names (C++, Rust legacy and v0, clang blocks, global constructors) and
/// characters beyond ASCII, so that generated names reach every demangling path, mostly with
/// input those paths must refuse.
const NAME_PIECES: [&str; 31] = [
    "_Z",
    "_ZN",
    "_R",
    "___Z",
    "_GLOBAL_",
    "_block_invoke",
    "17h",
    "0123456789abcdef",
    "E",
    "E.",
    ".llvm.1",
    "N",
    "C",
    "s_",
    "Th",
    "Tv",
    "GTt",
    "TV",
    "St",
    "Si",
    "3foo",
    "10__",
    "$LT$",
    "$u7e$",
    "$C$",
    "..",
    "I",
    "\u{e9}",
    "\u{1F600}",
    "9",
    "7h",
];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(20_000))]

    /// Naming never panics, whatever the system name, in any mode, and is deterministic.
    #[test]
    fn naming_takes_any_system_name(pieces in proptest::collection::vec(0..NAME_PIECES.len(), 0..14)) {
        use pprofhouse_transform::{pprof_name, Demangle};
        let sys: String = pieces.iter().map(|&i| NAME_PIECES[i]).collect();
        for mode in [Demangle::Default, Demangle::Templates, Demangle::Full, Demangle::None] {
            let a = pprof_name(b"", sys.as_bytes(), mode).into_owned();
            prop_assert_eq!(a, pprof_name(b"", sys.as_bytes(), mode).into_owned());
        }
    }
}

//! Every way input can be bad gives its typed error, never a panic.
use std::io::Write;

use bytes::Bytes;
use pprofhouse_transform::pprof::{decode, proto, DecodeError, Limits};
use prost::Message;

fn minimal() -> proto::Profile {
    proto::Profile {
        sample_type: vec![proto::ValueType { r#type: 1, unit: 2 }],
        sample: vec![proto::Sample { location_id: vec![1], value: vec![7], label: vec![] }],
        location: vec![proto::Location { id: 1, line: vec![proto::Line { function_id: 1, ..Default::default() }], ..Default::default() }],
        function: vec![proto::Function { id: 1, name: 3, ..Default::default() }],
        string_table: ["", "cpu", "nanoseconds", "main"].iter().map(|s| Bytes::from_static(s.as_bytes())).collect(),
        ..Default::default()
    }
}

fn gz(data: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn err(p: proto::Profile) -> DecodeError {
    decode(p.encode_to_vec(), &Limits::default()).unwrap_err()
}

#[test]
fn minimal_profile_decodes_raw_and_gzipped() {
    let raw = minimal().encode_to_vec();
    assert_eq!(decode(raw.clone(), &Limits::default()).unwrap().sample_count(), 1);
    assert_eq!(decode(gz(&raw), &Limits::default()).unwrap().sample_count(), 1);
}

/// A profile with sample types and no sample (an idle process's CPU profile, a mutex profile
/// with profiling off) is valid, as in pprof: it explodes to no rows and zero totals. Without
/// sample types either, it is not a profile.
#[test]
fn a_profile_without_samples_is_valid_and_empty() {
    let mut p = minimal();
    p.sample.clear();
    let profile = decode(gz(&p.encode_to_vec()), &Limits::default()).unwrap();
    assert_eq!(profile.sample_count(), 0);
    let ex = pprofhouse_transform::explode(&profile, Default::default());
    assert_eq!(ex.facts.totals, vec![0]);
    assert!(ex.rows(0).is_empty());
    p.sample_type.clear();
    assert!(matches!(err(p), DecodeError::NotProfile(_)));
}

/// The Go runtime's text forms (`?debug=1`) are named as such, with what to fetch instead.
#[test]
fn text_profiles_are_named() {
    for (text, kind) in [
        ("heap profile: 5476: 8027328 [5488: 9948432] @ heap/8192\n1545: 2373120 [1545: 2373120] @ 0x4b423d\n", "heap"),
        ("--- mutex:\ncycles/second=2596165048\nsampling period=1\n716516671 15829 @ 0x4b45fe 0x461481\n", "mutex"),
        ("--- contention:\ncycles/second=2596165048\n1962 12 @ 0x4b45fe\n", "block"),
        ("goroutine profile: total 1\n1 @ 0x43a0d6 0x46a1e5\n#\t0x46a1e4\truntime/pprof.writeRuntimeProfile+0x64\n", "goroutine"),
        ("goroutine 1 [running]:\nmain.main()\n\t/tmp/main.go:9 +0x1d\n", "goroutine"),
        ("threadcreate profile: total 5\n", "threadcreate"),
    ] {
        let e = decode(gz(text.as_bytes()), &Limits::default()).unwrap_err();
        assert!(matches!(e, DecodeError::NotProfile(_)), "{text}: {e:?}");
        let m = e.to_string();
        assert!(m.contains(&format!("a {kind} profile as text")) && m.contains("debug=0"), "{text}: {m}");
    }
    // Other text is still just not a profile.
    let e = decode(b"hello, world\n".to_vec(), &Limits::default()).unwrap_err().to_string();
    assert!(e.starts_with("not a pprof profile") && !e.contains("as text"), "{e}");
}

#[test]
fn typed_errors() {
    assert!(matches!(decode(Vec::new(), &Limits::default()), Err(DecodeError::Empty)));
    assert!(matches!(decode(b"\xff\xfe garbage".to_vec(), &Limits::default()), Err(DecodeError::NotProfile(_))));
    let raw = minimal().encode_to_vec();
    let g = gz(&raw);
    assert!(matches!(decode(g[..g.len() - 6].to_vec(), &Limits::default()), Err(DecodeError::Truncated(_))));
    assert!(matches!(
        decode(raw[..raw.len() - 3].to_vec(), &Limits::default()),
        Err(DecodeError::Truncated(_) | DecodeError::NotProfile(_))
    ));
    let mut bad_gz = g.clone();
    bad_gz[12] ^= 0xff;
    bad_gz[13] ^= 0xff;
    assert!(decode(bad_gz, &Limits::default()).is_err());

    let mut p = minimal();
    p.function[0].id = 0;
    assert!(matches!(err(p), DecodeError::ReservedId { what: "function" }));
    let mut p = minimal();
    p.location[0].id = 0;
    assert!(matches!(err(p), DecodeError::ReservedId { what: "location" }));
    let mut p = minimal();
    p.sample[0].location_id = vec![9];
    assert!(matches!(err(p), DecodeError::DanglingId { what: "location", id: 9, .. }));
    // IDs past 31 bits are kept aside while parsing: the error still names the ID itself.
    for id in [1u64 << 31, u32::MAX as u64 + 9, u64::MAX] {
        let mut p = minimal();
        p.sample[0].location_id = vec![1, id];
        assert!(matches!(err(p), DecodeError::DanglingId { what: "location", id: got, .. } if got == id), "{id}");
    }
    let mut p = minimal();
    p.location[0].line[0].function_id = 5;
    assert!(matches!(err(p), DecodeError::DanglingId { what: "function", id: 5, .. }));
    let mut p = minimal();
    p.location[0].mapping_id = 2;
    assert!(matches!(err(p), DecodeError::DanglingId { what: "mapping", id: 2, .. }));
    let mut p = minimal();
    p.function.push(p.function[0]);
    p.function[1].name = 1;
    p.function.push(p.function[0]);
    assert!(matches!(err(p), DecodeError::DuplicateId { what: "function", id: 1 }));
    let mut p = minimal();
    p.function[0].name = 99;
    assert!(matches!(err(p), DecodeError::StringIndex { index: 99, .. }));
    let mut p = minimal();
    p.sample[0].value = vec![1, 2];
    assert!(matches!(err(p), DecodeError::ValueCount { got: 2, want: 1 }));
    let mut p = minimal();
    p.string_table[0] = Bytes::from_static(b"x");
    assert!(matches!(err(p), DecodeError::StringTable));
}

/// Sample errors come in profile order and, within a sample, value count, stack, labels.
#[test]
fn sample_errors_in_order() {
    let label = |key: i64, str: i64| proto::Label { key, str, num: 0, num_unit: 0 };
    let mut p = minimal();
    p.sample[0].label = vec![label(1, 0), label(2, 77)];
    assert!(matches!(err(p), DecodeError::StringIndex { index: 77, len: 4 }));
    let mut p = minimal();
    p.sample[0].label = vec![label(-1, 0)];
    assert!(matches!(err(p), DecodeError::StringIndex { index: -1, .. }));
    let mut p = minimal();
    p.sample.push(proto::Sample { location_id: vec![1], value: vec![1, 2], label: vec![] });
    p.sample[0].location_id = vec![1, 8];
    assert!(matches!(err(p), DecodeError::DanglingId { what: "location", id: 8, .. }));
    let mut p = minimal();
    p.sample.push(proto::Sample { location_id: vec![8], value: vec![1], label: vec![] });
    p.sample[0].value = vec![];
    assert!(matches!(err(p), DecodeError::ValueCount { got: 0, want: 1 }));
    let mut p = minimal();
    p.sample[0].location_id = vec![8];
    p.sample[0].label = vec![label(99, 0)];
    assert!(matches!(err(p), DecodeError::DanglingId { id: 8, .. }));
    // Label keys are reported, sorted and distinct.
    let mut p = minimal();
    p.sample.push(p.sample[0].clone());
    p.sample[0].label = vec![label(3, 1), label(1, 2)];
    p.sample[1].label = vec![label(3, 2)];
    let profile = decode(p.encode_to_vec(), &Limits::default()).unwrap();
    assert_eq!(profile.label_keys(), vec!["cpu".to_string(), "main".to_string()]);
    // Past the first few distinct keys too, each sample's keys in any order.
    let mut p = minimal();
    let keys: Vec<String> = (0..20).map(|k| format!("key{k:02}")).collect();
    p.string_table.extend(keys.iter().map(|k| Bytes::from(k.clone())));
    p.sample = (0..40)
        .map(|i| {
            let label = (0..3).map(|j| label(4 + ((i * 7 + j * 5) % 20) as i64, 1)).collect();
            proto::Sample { location_id: vec![1], value: vec![1], label }
        })
        .collect();
    let profile = decode(p.encode_to_vec(), &Limits::default()).unwrap();
    assert_eq!(profile.label_keys(), keys);
    // A work limit is reported only when every reference is good.
    let mut p = minimal();
    p.sample.push(proto::Sample { location_id: vec![1, 9], value: vec![1], label: vec![] });
    p.sample[0].location_id = vec![1; 50];
    let limits = Limits { max_stack_depth: 10, ..Default::default() };
    assert!(matches!(
        decode(p.encode_to_vec(), &Limits { max_stack_depth: 60, max_expanded_frames: 10, ..Default::default() }),
        Err(DecodeError::DanglingId { id: 9, .. })
    ));
    let mut ok = p.clone();
    ok.sample[1].location_id = vec![1];
    assert!(matches!(
        decode(ok.encode_to_vec(), &Limits { max_expanded_frames: 10, ..Default::default() }),
        Err(DecodeError::OverLimit { limit: "max_expanded_frames", .. })
    ));
    assert!(matches!(decode(p.encode_to_vec(), &limits), Err(DecodeError::OverLimit { limit: "max_stack_depth", .. })));
}

#[test]
fn gzip_bomb_stops_at_the_limit() {
    // 64 MiB of zeros compresses to ~64 KiB; a 1 MiB limit refuses it.
    let zeros = vec![0u8; 64 << 20];
    let bomb = gz(&zeros);
    assert!(bomb.len() < 1 << 20);
    let limits = Limits { max_decompressed_bytes: 1 << 20, ..Default::default() };
    match decode(bomb, &limits) {
        Err(e @ DecodeError::TooLarge { .. }) => assert_eq!(e.kind(), "over_limit"),
        other => panic!("{other:?}"),
    }
    let raw = minimal().encode_to_vec();
    assert!(matches!(
        decode(raw.clone(), &Limits { max_decompressed_bytes: raw.len() - 1, ..Default::default() }),
        Err(DecodeError::TooLarge { .. })
    ));
}

/// Each work limit stops its hostile shape before explode, and the error names the limit.
#[test]
fn work_limits_name_the_limit_they_stop() {
    let over = |p: proto::Profile, limits: Limits, want: &str| match decode(p.encode_to_vec(), &limits) {
        Err(e @ DecodeError::OverLimit { limit, .. }) => {
            assert_eq!(limit, want);
            assert_eq!(e.kind(), "over_limit");
            assert!(e.to_string().contains(want), "{e}");
        }
        Ok(_) => panic!("{want}: expected OverLimit, the profile decoded"),
        Err(e) => panic!("{want}: expected OverLimit, got {e}"),
    };
    // One location with 5,000 inlined lines, 21 samples at depth 5,000: 525 M frame visits.
    let mut quadratic = minimal();
    quadratic.location[0].line = vec![proto::Line { function_id: 1, ..Default::default() }; 5000];
    quadratic.sample = vec![proto::Sample { location_id: vec![1; 5000], value: vec![1], label: vec![] }; 21];
    over(quadratic.clone(), Limits::default(), "max_lines_per_location");
    over(quadratic.clone(), Limits { max_lines_per_location: 10_000, ..Default::default() }, "max_expanded_frames");
    over(quadratic.clone(), Limits { max_lines_per_location: 10_000, max_stack_depth: 100, ..Default::default() }, "max_stack_depth");
    // Many samples, sample types, strings, functions, locations.
    let mut many = minimal();
    many.sample = vec![proto::Sample { location_id: vec![1], value: vec![0], label: vec![] }; 1000];
    over(many, Limits { max_samples: 999, ..Default::default() }, "max_samples");
    let mut wide = minimal();
    wide.sample_type = vec![proto::ValueType { r#type: 1, unit: 2 }; 70_000];
    wide.sample[0].value = vec![1; 70_000];
    over(wide, Limits::default(), "max_sample_types");
    let mut strings = minimal();
    strings.string_table.extend(std::iter::repeat_n(Bytes::from_static(b"x"), 100));
    over(strings, Limits { max_strings: 50, ..Default::default() }, "max_strings");
    let mut funcs = minimal();
    funcs.function = (1..=100).map(|id| proto::Function { id, name: 3, ..Default::default() }).collect();
    over(funcs.clone(), Limits { max_functions: 99, ..Default::default() }, "max_functions");
    over(funcs, Limits { max_function_cells: 50, ..Default::default() }, "max_function_cells");
    let mut locs = minimal();
    locs.location = (1..=100)
        .map(|id| proto::Location { id, line: vec![proto::Line { function_id: 1, ..Default::default() }], ..Default::default() })
        .collect();
    over(locs, Limits { max_locations: 99, ..Default::default() }, "max_locations");
    // A drop_frames or keep_frames pattern longer than the limit (compiling it takes memory in
    // proportion to its length); the same pattern passes a limit its length fits.
    for field in ["drop", "keep"] {
        let mut filtered = minimal();
        let at = filtered.string_table.len() as i64;
        filtered.string_table.push(Bytes::from("a|".repeat(5000) + "b"));
        if field == "drop" {
            filtered.drop_frames = at;
        } else {
            filtered.keep_frames = at;
        }
        over(filtered.clone(), Limits { max_frame_filter_bytes: 10_000, ..Default::default() }, "max_frame_filter_bytes");
        assert!(decode(filtered.encode_to_vec(), &Limits { max_frame_filter_bytes: 10_001, ..Default::default() }).is_ok());
    }
    // A short pattern whose automaton has millions of states: refused, naming the limit; a
    // pattern that does not parse is no filter (pprof ignores it), not an error.
    let mut dfa = minimal();
    dfa.drop_frames = dfa.string_table.len() as i64;
    dfa.string_table.push(Bytes::from_static(b"(a|b)*a(a|b){20}"));
    match decode(dfa.encode_to_vec(), &Limits::default()) {
        Err(e @ DecodeError::FrameFilterTooComplex { .. }) => {
            assert_eq!(e.kind(), "over_limit");
            assert!(e.to_string().contains("max_frame_filter_dfa_bytes"), "{e}");
        }
        other => panic!("expected FrameFilterTooComplex, got {other:?}"),
    }
    *dfa.string_table.last_mut().unwrap() = Bytes::from_static(b"(a|b");
    assert!(decode(dfa.encode_to_vec(), &Limits::default()).is_ok());
    // Within every limit, the same shapes decode.
    assert!(decode(minimal().encode_to_vec(), &Limits::default()).is_ok());
}

/// Concatenated gzip members inflate to the concatenation, as Go's reader does, whatever the
/// sizes; the byte limit holds at its exact edge; trailing garbage is a gzip error.
#[test]
fn multi_member_gzip_and_the_exact_limit() {
    use pprofhouse_transform::pprof::inflate;
    let raw = minimal().encode_to_vec();
    for cut in [0, 1, raw.len() / 2, raw.len() - 1] {
        let mut two = gz(&raw[..cut]);
        two.extend_from_slice(&gz(&raw[cut..]));
        let p = decode(two.clone(), &Limits::default()).unwrap();
        assert_eq!(p.sample_count(), 1);
        assert_eq!(&inflate(Bytes::from(two.clone()), &Limits::default()).unwrap()[..], &raw[..]);
        let exact = Limits { max_decompressed_bytes: raw.len(), ..Default::default() };
        assert_eq!(inflate(Bytes::from(two.clone()), &exact).unwrap().len(), raw.len());
        let under = Limits { max_decompressed_bytes: raw.len() - 1, ..Default::default() };
        assert!(matches!(inflate(Bytes::from(two.clone()), &under), Err(DecodeError::TooLarge { .. })));
        let mut garbage = two.clone();
        garbage.extend_from_slice(b"\x1f\x8bxx");
        assert!(matches!(inflate(Bytes::from(garbage), &Limits::default()), Err(DecodeError::Gzip(_) | DecodeError::Truncated(_))));
    }
    // A large first member and a tiny last one (whose ISIZE under-states the total), and a
    // highly compressible one: the output buffer grows as needed.
    let big: Vec<u8> = (0..3_000_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let mut members = gz(&big);
    members.extend_from_slice(&gz(b"x"));
    members.extend_from_slice(&gz(&vec![7u8; 5_000_000]));
    let out = inflate(Bytes::from(members), &Limits::default()).unwrap();
    assert_eq!(out.len(), 8_000_001);
    assert_eq!(&out[..big.len()], &big[..]);
    assert_eq!(out[big.len()], b'x');
    assert!(out[big.len() + 1..].iter().all(|&b| b == 7));
}

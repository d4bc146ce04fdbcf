//! Any bytes → decode (gzip or raw) → explode with every option: must never panic; and
//! leaving some stacks' frames out (`explode_with`) changes nothing but those frames.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pprofhouse_transform::pprof::{decode, Limits};
use pprofhouse_transform::{explode, explode_with, ExplodeOptions};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_decompressed_bytes: 16 << 20, ..Default::default() };
    if let Ok(profile) = decode(data.to_vec(), &limits) {
        let ex = explode(&profile, ExplodeOptions { stacks: true, inline_marks: true, ..Default::default() });
        for t in 0..ex.facts.sample_types.len() {
            let _ = ex.rows(t);
        }
        let some = explode_with(&profile, ExplodeOptions { stacks: true, inline_marks: true, ..Default::default() }, &|h| h & 1 == 0);
        assert_eq!((&some.flat, &some.cum, some.stacks.len()), (&ex.flat, &ex.cum, ex.stacks.len()));
        for (a, b) in ex.stacks.iter().zip(some.stacks.iter()) {
            assert_eq!((a.hash, a.values), (b.hash, b.values));
            assert!(b.frames == a.frames || (b.frames.is_empty() && a.hash & 1 == 1));
        }
    }
});

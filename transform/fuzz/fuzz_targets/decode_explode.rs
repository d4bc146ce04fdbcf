//! Any bytes → decode (gzip or raw) → explode with every option: must never panic.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pprofhouse_transform::pprof::{decode, Limits};
use pprofhouse_transform::{explode, ExplodeOptions};

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_decompressed_bytes: 16 << 20, ..Default::default() };
    if let Ok(profile) = decode(data.to_vec(), &limits) {
        let ex = explode(&profile, ExplodeOptions { stacks: true, inline_marks: true, ..Default::default() });
        for t in 0..ex.facts.sample_types.len() {
            let _ = ex.rows(t);
        }
    }
});

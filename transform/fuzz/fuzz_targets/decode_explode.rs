//! Any bytes → decode (gzip or raw) → explode with every option: must never panic; leaving
//! some stacks' frames out (`explode_with`) changes nothing but those frames; and decoding into
//! the buffers earlier inputs left behind (`decode_reusing`, as the worker does) gives what a
//! fresh decode gives, error or profile.
#![no_main]
use std::cell::RefCell;

use libfuzzer_sys::fuzz_target;
use pprofhouse_transform::pprof::{decode, decode_reusing, DecodeBuffers, Limits};
use pprofhouse_transform::{explode, explode_with, ExplodeOptions};

thread_local! {
    /// Buffers kept from input to input, as the worker keeps them from profile to profile.
    static BUFS: RefCell<DecodeBuffers> = RefCell::new(DecodeBuffers::default());
}

fuzz_target!(|data: &[u8]| {
    let limits = Limits { max_decompressed_bytes: 16 << 20, ..Default::default() };
    let opts = ExplodeOptions { stacks: true, inline_marks: true, ..Default::default() };
    let fresh = decode(data.to_vec(), &limits);
    let reused = BUFS.with_borrow_mut(|bufs| decode_reusing(data.to_vec(), &limits, bufs));
    match (&fresh, &reused) {
        (Ok(a), Ok(b)) => {
            let (x, y) = (explode(a, opts), explode(b, opts));
            assert_eq!((&x.names, &x.flat, &x.cum, &x.inline_marks), (&y.names, &y.flat, &y.cum, &y.inline_marks));
            assert!(x.stacks.iter().eq(y.stacks.iter()));
        }
        (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
        _ => panic!("decode and decode_reusing disagree: {:?} vs {:?}", fresh.as_ref().err(), reused.as_ref().err()),
    }
    if let Ok(p) = reused {
        BUFS.with_borrow_mut(|bufs| p.recycle(bufs));
    }
    if let Ok(profile) = fresh {
        let ex = explode(&profile, opts);
        for t in 0..ex.facts.sample_types.len() {
            let _ = ex.rows(t);
        }
        let some = explode_with(&profile, opts, &|h| h & 1 == 0);
        assert_eq!((&some.flat, &some.cum, some.stacks.len()), (&ex.flat, &ex.cum, ex.stacks.len()));
        for (a, b) in ex.stacks.iter().zip(some.stacks.iter()) {
            assert_eq!((a.hash, a.values), (b.hash, b.values));
            assert!(b.frames == a.frames || (b.frames.is_empty() && a.hash & 1 == 1));
        }
    }
});

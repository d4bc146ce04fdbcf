//! Any bytes as a function's system name (and as its name) → pprof's name in every mode: must
//! never panic, and a name that is not a mangled one (no `_Z`, `__Z`, `_R` or `_GLOBAL_`
//! prefix) is never made longer than it was, as only pprof's brackets rule applies to it.
#![no_main]
use libfuzzer_sys::fuzz_target;
use pprofhouse_transform::symbolize::{pprof_name, Demangle};

fuzz_target!(|data: &[u8]| {
    for mode in [Demangle::Default, Demangle::Templates, Demangle::Full, Demangle::None] {
        let _ = pprof_name(b"", data, mode);
        let named = pprof_name(data, data, mode);
        let mangled = [&b"_Z"[..], b"__Z", b"_R", b"___Z", b"_GLOBAL_"].iter().any(|p| data.starts_with(p));
        assert!(mangled || named.len() <= data.len(), "{mode:?}: {data:?} named {named:?}");
    }
});

//! Links the `pprofhouse` executable as a position-dependent (non-PIE) binary on Linux: a PIE
//! applies its ~60,000 relative relocations at every start (touching and copying a megabyte of
//! pages), which was most of the start-up time of a one-shot command like `pprofhouse top`.
//! A static build (`make release`: `crt-static` with the `static` relocation model) is already
//! position-dependent, and `-no-pie` beside `crt-static` alone would make a broken static PIE.
fn main() {
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|f| f == "crt-static"));
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") && !static_crt {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}

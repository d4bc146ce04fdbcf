//! Links the `pprofhouse` executable as a position-dependent (non-PIE) binary on Linux: a PIE
//! applies its ~60,000 relative relocations at every start (touching and copying a megabyte of
//! pages), which was most of the start-up time of a one-shot command like `pprofhouse top`.
fn main() {
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
}

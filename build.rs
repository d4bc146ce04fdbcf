//! Links the `pprofhouse` executable for a fast start, as a one-shot command like
//! `pprofhouse top` spends most of its time starting:
//!
//! - **Position-dependent** (non-PIE) on Linux: a PIE applies its ~60,000 relative relocations
//!   at every start (touching and copying a megabyte of pages). A static build (`make release`:
//!   `crt-static` with the `static` relocation model) is already position-dependent, and
//!   `-no-pie` beside `crt-static` alone would make a broken static PIE.
//! - **Start-up symbols packed together** in the static x86_64 build (`make release`, linked by
//!   rust-lld): `src/startup.order` lists the code and data a one-shot run touches, and lld's
//!   `--symbol-ordering-file` lays them out side by side. The kernel maps a file's pages 64 KB
//!   around each fault, so start-up code spread over the 20 MB text segment took a fault per
//!   window it touched (148 page faults for `top` on a small file; 85 packed; 98 in the fat-LTO
//!   build, whose command functions have more inlined into them).
//!   `tests/benches/startup-order.sh` writes the file; symbols the binary no longer has (the
//!   hashes change with dependencies and toolchains) are skipped, so a stale file only packs less.
//!   `make release` remaps the checkout's path (`--remap-path-prefix`): the `.llvm.` suffix of a
//!   promoted local symbol hashes its module, debug info included, so the names would otherwise
//!   depend on where the repository is.
fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    let static_crt = std::env::var("CARGO_CFG_TARGET_FEATURE").is_ok_and(|f| f.split(',').any(|f| f == "crt-static"));
    if std::env::var("CARGO_CFG_TARGET_OS").as_deref() == Ok("linux") && !static_crt {
        println!("cargo:rustc-link-arg-bins=-no-pie");
    }
    if static_crt && std::env::var("TARGET").as_deref() == Ok("x86_64-unknown-linux-gnu") {
        let order = concat!(env!("CARGO_MANIFEST_DIR"), "/src/startup.order");
        println!("cargo:rerun-if-changed={order}");
        println!("cargo:rustc-link-arg-bins=-Wl,--symbol-ordering-file={order}");
        println!("cargo:rustc-link-arg-bins=-Wl,--no-warn-symbol-ordering");
    }
}

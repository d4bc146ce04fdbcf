//! Where things live: the repository, the tool cache, the `pprofhouse` binary.
use std::path::PathBuf;

/// The repository root (parent of `tests/`).
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

/// The cache where `infra/local/install` puts tools: `$PPROFHOUSE_CACHE`, default `~/.cache/pprofhouse`.
pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("PPROFHOUSE_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    PathBuf::from(home).join(".cache/pprofhouse")
}

/// The shared fixtures folder (`../shared/fixtures/pprof` beside the repository); panics with a
/// clear message when the repository does not sit beside `shared/`.
pub fn fixtures() -> PathBuf {
    let dir = repo_root().join("../shared/fixtures/pprof");
    assert!(dir.is_dir(), "fixtures not found at {} (the repository must sit beside shared/)", dir.display());
    dir
}

/// The `pprofhouse` binary of this build (target/{debug,release}/pprofhouse next to the test
/// executable's `deps/` folder). `make test` builds it before running the tests.
pub fn pprofhouse_bin() -> PathBuf {
    let exe = std::env::current_exe().expect("current_exe");
    let dir = exe.parent().expect("deps dir").parent().expect("profile dir");
    let bin = dir.join("pprofhouse");
    assert!(bin.exists(), "{} not found: build it first (cargo build --bin pprofhouse)", bin.display());
    bin
}

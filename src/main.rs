//! # pprofhouse
//!
//! pprof profiles in S3 → per-function time series in ClickHouse. This binary owns every flag
//! and command and hands the libraries typed configuration:
//!
//! - `pprofhouse-transform` (`transform/`): decode and explode a profile, pure.
//! - `pprofhouse-sql` (`sql/`): migrations, queries and the sink.
//! - `pprofhouse-ingest` (`ingest/`) and `pprofhouse-message` (`ingest/message/`): S3 events,
//!   key layouts, the Kafka producer, backfill, the Lambda, and the messages they write.
//! - [`worker`]: the consumer that ties them together (Kafka → S3 → transform → ClickHouse).
//! - [`serve`]: profefe's HTTP API over ClickHouse and S3 (`go tool pprof` reads merged profiles).
//!
//! Commands are in [`cli`]; settings come from flags over `PPROFHOUSE_*` variables over a TOML
//! file ([`cli::settings`]).
use std::process::ExitCode;

mod cli;
mod report;
mod serve;
mod worker;

/// glibc's malloc, told to return what is freed: the worker allocates profile-sized buffers
/// (megabytes) on the blocking pool and frees them on other threads. By default glibc raises
/// its mmap threshold up to 32 MiB as such blocks are freed, so later ones come from arenas that
/// never shrink, and it trims the heap top only past 128 KiB of slack at a time. A fixed mmap
/// threshold (blocks ≥ 2 MiB are mapped and unmapped on free) and a 1 MiB trim threshold
/// keep RSS near the live heap. 2 MiB, not lower: a production-size profile's medium blocks
/// (its stacks' arrays, the fetched object, the explode tables: 0.2–2 MB each) then reuse
/// freed memory instead of faulting in fresh pages every time (measured against a 256 KiB
/// threshold: worker CPU per profile 12.8–13.3 → 12.1–12.2 ms, 72–74 → 83 profiles/s, peak
/// RSS +10 to +20 MiB; the largest buffers are kept by the decode pool). Measured draining production-size profiles
/// at default settings (README "Memory"). `MALLOC_MMAP_THRESHOLD_`/`MALLOC_TRIM_THRESHOLD_`
/// still win.
fn tune_allocator() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    for (param, value, env) in
        [(libc::M_MMAP_THRESHOLD, 2 << 20, "MALLOC_MMAP_THRESHOLD_"), (libc::M_TRIM_THRESHOLD, 1 << 20, "MALLOC_TRIM_THRESHOLD_")]
    {
        if std::env::var_os(env).is_none() {
            // SAFETY: mallopt only sets a tunable of the allocator; called first thing in main,
            // before any other thread exists.
            unsafe { libc::mallopt(param, value) };
        }
    }
}

/// Errors are reported in one line (`cli::one_line`, or a log field), never with a backtrace, so none
/// is recorded: with `RUST_BACKTRACE=1` in the environment (for panics' sake), `anyhow` would
/// otherwise capture one for every error given a context. In this statically linked binary the
/// first capture costs about 13 ms (the unwinder first sorts every frame description): ten
/// times a whole `pprofhouse top` of a small profile, for a file it refuses. `RUST_LIB_BACKTRACE`,
/// when set, still decides.
fn no_error_backtraces() {
    if std::env::var_os("RUST_LIB_BACKTRACE").is_none() {
        // At the start of `main`: no other thread exists yet to read the environment.
        std::env::set_var("RUST_LIB_BACKTRACE", "0");
    }
}

fn main() -> ExitCode {
    no_error_backtraces();
    tune_allocator();
    // Deployed as an AWS Lambda `bootstrap` (provided.al2023): run the trigger, settings from env.
    if cli::invoked_as_bootstrap() {
        return cli::run_bootstrap();
    }
    let args = cli::Cli::from_env();
    cli::init_tracing(args.global.log_format, &args.global.log);
    match cli::run(args) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("pprofhouse: {}", cli::one_line(&e));
            ExitCode::FAILURE
        }
    }
}

//! # pprofhouse-transform
//!
//! The transform stage of pprofhouse: it turns a pprof profile into the rows ClickHouse stores.
//! The work splits the way google/pprof itself splits it, and each part is a module with a
//! narrow interface:
//!
//! 1. **Format** — [`pprof`]: bytes → [`pprof::Profile`]. Gzip or raw protobuf (magic bytes
//!    decide), decoded in one pass over the wire format into flat arrays — no allocation per
//!    sample or location; strings stay bytes, ranges of the decompressed buffer, because real
//!    function names are not always UTF-8. It accepts what `prost` accepts (packed and unpacked
//!    repeated fields, unknown fields skipped); the `prost` message types in [`pprof::proto`]
//!    are the encoder: for tests and fixtures, and for [`pprof::encode`], which turns stored
//!    stacks back into a profile (`pprofhouse merge`, `serve`'s merge endpoint).
//!    Every ID and string reference is validated once, here, against [`pprof::Limits`]; errors
//!    are typed ([`pprof::DecodeError`]) and carry a stable `kind()` for metrics and dead
//!    letters. Nothing past this point can fail on input.
//! 2. **Semantics** — [`explode`](mod@explode): a profile → per-function flat/cum for every sample type,
//!    exactly as `go tool pprof -top` computes them at function granularity (flat to the
//!    innermost frame of the leaf location, cum once per sample per function, inlined frames
//!    expanded, unsymbolized frames named `[binary]`/`<unknown>`), plus the profile's facts
//!    (times, period, totals, label keys) and, on request, its distinct stacks with stable
//!    64-bit hashes for flame graphs. Functions are named as pprof's symbolizer leaves them
//!    ([`symbolize`]: C++ and Rust demangling, simplification of names that look like
//!    demangled C++), in one of pprof's `-symbolize=demangle=` modes ([`Demangle`]); then, as
//!    pprof does, pruned with the profile's own `drop_frames`/`keep_frames` (`prune`).
//! 3. **Output** — [`report`]: TSV with ClickHouse escaping and a pprof-like `-top` table.
//!
//! The crate is pure: bytes in, numbers out, no I/O and no async. The `pprofhouse` binary, the
//! ClickHouse sink (`pprofhouse-sql`) and the worker build on it; the fuzz target
//! (`transform/fuzz`) and the explode benchmark (`transform/benches`) build only this crate.

#![deny(missing_docs)]

pub mod explode;
pub mod pprof;
mod prune;
pub mod report;
pub mod symbolize;

pub use explode::{explode, explode_with, ExplodeOptions, Exploded, FunctionRow, InlineMark, Names, ProfileFacts, Stack, Stacks};
pub use symbolize::{pprof_name, Demangle};

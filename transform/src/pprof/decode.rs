//! Bytes → a validated [`Profile`]: inflate (when gzip), protobuf-decode, check every reference.
//!
//! Everything that can be wrong with untrusted input is found here and reported as a typed
//! [`DecodeError`], so the semantic layer ([`crate::explode`](mod@crate::explode)) can index without re-checking
//! and never panics. The checks are the ones `go tool pprof` applies (reserved ID 0, duplicate
//! IDs, string indices in range, one value per sample type) plus a few it is lenient about
//! (dangling function and mapping references, which pprof silently turns into "no function"):
//! a pipeline is better served by a clear error than by a profile quietly missing names.

use std::borrow::Cow;
use std::io::Read;
use std::sync::Arc;

use bytes::Bytes;

use super::wire::{Reader, WireError, RECURSION_LIMIT};
use crate::prune::{FrameFilter, TooComplex};

/// What one profile may cost. Untrusted input must not be able to make a worker allocate or
/// compute without bound: the byte limit stops a gzip bomb while inflating, the counts are
/// checked right after decoding, and the work limits — above all `max_expanded_frames`, the
/// number of frame visits explode would make — before any of that work is done. The defaults
/// let real profiles through (a 100 MB Go allocation profile passes) and stop hostile ones.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Limits {
    /// Largest decompressed protobuf accepted, in bytes. A gzip bomb stops here, after
    /// reading at most this many bytes.
    pub max_decompressed_bytes: usize,
    /// Most samples.
    pub max_samples: usize,
    /// Most locations.
    pub max_locations: usize,
    /// Most functions.
    pub max_functions: usize,
    /// Most strings in the string table.
    pub max_strings: usize,
    /// Most sample types (values per sample).
    pub max_sample_types: usize,
    /// Most lines (inlined frames) in one location.
    pub max_lines_per_location: usize,
    /// Deepest stack, in locations.
    pub max_stack_depth: usize,
    /// Most frame visits explode may make: the sum over samples of the lines of every location
    /// on the sample's stack. This is explode's CPU time, whatever the file's size.
    pub max_expanded_frames: u64,
    /// Most (function × sample type) cells: the memory of the per-function tables.
    pub max_function_cells: u64,
    /// Longest `drop_frames` or `keep_frames` pattern, in bytes: compiling a regular expression
    /// takes memory in proportion to its length.
    pub max_frame_filter_bytes: usize,
    /// Most memory the automaton of a `drop_frames` or `keep_frames` pattern may take, in bytes
    /// (and its construction): patterns are matched as full DFAs, one step per byte of a name.
    pub max_frame_filter_dfa_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_decompressed_bytes: 256 << 20,
            max_samples: 5_000_000,
            max_locations: 5_000_000,
            max_functions: 2_000_000,
            max_strings: 5_000_000,
            max_sample_types: 64,
            max_lines_per_location: 512,
            max_stack_depth: 8192,
            max_expanded_frames: 500_000_000,
            max_function_cells: 16_000_000,
            max_frame_filter_bytes: 65_536,
            max_frame_filter_dfa_bytes: 4 << 20,
        }
    }
}

/// Why a profile could not be decoded. [`DecodeError::kind`] gives a stable short name for
/// metrics and dead-letter records.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Zero bytes.
    #[error("empty input")]
    Empty,
    /// Neither gzip nor protobuf.
    #[error("not a pprof profile (neither gzip nor protobuf): {0}")]
    NotProfile(String),
    /// A broken gzip stream.
    #[error("invalid gzip stream: {0}")]
    Gzip(String),
    /// The protobuf or gzip stream ends early.
    #[error("truncated input: {0}")]
    Truncated(String),
    /// Inflates past `max_decompressed_bytes`.
    #[error("decompressed profile exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The limit, in bytes.
        limit: usize,
    },
    /// An ID of 0, which pprof reserves.
    #[error("{what} with reserved ID 0")]
    ReservedId {
        /// Which table.
        what: &'static str,
    },
    /// Two entries of one table share an ID.
    #[error("duplicate {what} ID {id}")]
    DuplicateId {
        /// Which table.
        what: &'static str,
        /// The ID.
        id: u64,
    },
    /// A reference to an ID that does not exist.
    #[error("{from} refers to missing {what} ID {id}")]
    DanglingId {
        /// The referring table.
        from: &'static str,
        /// The referred table.
        what: &'static str,
        /// The missing ID.
        id: u64,
    },
    /// A string index past the string table.
    #[error("string index {index} out of range (string table has {len} entries)")]
    StringIndex {
        /// The index.
        index: i64,
        /// The string table's length.
        len: usize,
    },
    /// The string table does not start with the empty string.
    #[error("malformed string table: entry 0 must be the empty string")]
    StringTable,
    /// A sample with another number of values than sample types.
    #[error("sample has {got} values but the profile declares {want} sample types")]
    ValueCount {
        /// Values in the sample.
        got: usize,
        /// Sample types declared.
        want: usize,
    },
    /// A `drop_frames` or `keep_frames` pattern whose automaton would take more than
    /// `max_frame_filter_dfa_bytes`.
    #[error("profile is over the limit max_frame_filter_dfa_bytes = {max} (its drop_frames/keep_frames pattern needs a larger automaton)")]
    FrameFilterTooComplex {
        /// The limit, in bytes.
        max: usize,
    },
    /// Over one of the [`Limits`] (other than the byte limit).
    #[error("profile is over the limit {limit} = {max} ({value} {what})")]
    OverLimit {
        /// The limit's name (its setting in `[limits]`).
        limit: &'static str,
        /// What was counted.
        what: &'static str,
        /// The profile's value.
        value: u64,
        /// The limit.
        max: u64,
    },
}

impl DecodeError {
    /// A stable, short machine name for the error (metrics label, dead-letter `error_kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            DecodeError::Empty => "empty",
            DecodeError::NotProfile(_) => "not_profile",
            DecodeError::Gzip(_) => "bad_gzip",
            DecodeError::Truncated(_) => "truncated",
            DecodeError::TooLarge { .. } => "over_limit",
            DecodeError::ReservedId { .. } => "reserved_id",
            DecodeError::DuplicateId { .. } => "duplicate_id",
            DecodeError::DanglingId { .. } => "dangling_id",
            DecodeError::StringIndex { .. } | DecodeError::StringTable => "bad_string_table",
            DecodeError::ValueCount { .. } => "value_count",
            DecodeError::OverLimit { .. } | DecodeError::FrameFilterTooComplex { .. } => "over_limit",
        }
    }
}

/// Maps the IDs of one table (functions, locations, mappings) to positions in it. Writers almost
/// always number entries 1..=n in order, which makes the lookup a subtraction.
#[derive(Debug, Clone)]
pub(crate) enum IdIndex {
    Dense(usize),
    Sparse(hashbrown::HashMap<u64, u32>),
}

impl IdIndex {
    fn build(ids: impl ExactSizeIterator<Item = u64> + Clone, what: &'static str) -> Result<Self, DecodeError> {
        let n = ids.len();
        let mut dense = true;
        for (i, id) in ids.clone().enumerate() {
            if id == 0 {
                return Err(DecodeError::ReservedId { what });
            }
            if id != i as u64 + 1 {
                dense = false;
                break;
            }
        }
        if dense {
            return Ok(IdIndex::Dense(n));
        }
        let mut map = hashbrown::HashMap::with_capacity(n);
        for (i, id) in ids.enumerate() {
            if id == 0 {
                return Err(DecodeError::ReservedId { what });
            }
            if map.insert(id, i as u32).is_some() {
                return Err(DecodeError::DuplicateId { what, id });
            }
        }
        Ok(IdIndex::Sparse(map))
    }

    #[inline]
    pub(crate) fn get(&self, id: u64) -> Option<usize> {
        match self {
            IdIndex::Dense(n) => (id >= 1 && id <= *n as u64).then(|| (id - 1) as usize),
            IdIndex::Sparse(m) => m.get(&id).map(|&i| i as usize),
        }
    }
}

/// Marks a stack entry that indexes `Profile::wide_ids` rather than being a location ID.
const WIDE: u32 = 1 << 31;

/// A sample's location ID as stored while parsing: itself when below [`WIDE`] (every writer's
/// IDs in practice: they count locations), else an index into `wide` (one entry per distinct
/// ID), so the stacks take four bytes per frame whatever the IDs.
#[inline(always)]
fn narrow_id(id: u64, wide: &mut Vec<u64>, wide_ix: &mut hashbrown::HashMap<u64, u32>) -> u32 {
    if id < WIDE as u64 {
        id as u32
    } else {
        wide_id(id, wide, wide_ix)
    }
}

/// [`narrow_id`]'s rare case, out of the decoding loop.
#[cold]
#[inline(never)]
fn wide_id(id: u64, wide: &mut Vec<u64>, wide_ix: &mut hashbrown::HashMap<u64, u32>) -> u32 {
    let next = wide.len() as u32;
    let ix = *wide_ix.entry(id).or_insert(next);
    if ix == next {
        wide.push(id);
    }
    WIDE | ix
}

/// A sample or period type: string indices.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct ValueType {
    pub ty: i64,
    pub unit: i64,
}

/// What a mapping contributes: its ID and the strings it refers to.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Mapping {
    pub id: u64,
    pub filename: i64,
    pub build_id: i64,
}

/// What a function contributes: its ID and the strings it refers to.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Function {
    pub id: u64,
    pub name: i64,
    pub system_name: i64,
    pub filename: i64,
}

/// A decoded profile whose every cross-reference has been checked.
///
/// Flat: decoding allocates per table, never per sample or per location. Strings are ranges of
/// the decompressed buffer (kept alive here), samples and location lines are offsets into
/// shared arrays.
#[derive(Debug, Clone)]
pub struct Profile {
    /// The decompressed protobuf; strings point into it.
    pub(crate) buf: Bytes,
    /// String table: `(start, end)` in `buf`.
    pub(crate) strings: Vec<(u32, u32)>,
    pub(crate) sample_type: Vec<ValueType>,
    pub(crate) period_type: Option<ValueType>,
    pub(crate) drop_frames: i64,
    pub(crate) keep_frames: i64,
    /// `drop_frames` and `keep_frames` compiled, when the profile has them and they parse.
    pub(crate) frame_filter: Option<Arc<FrameFilter>>,
    pub(crate) time_nanos: i64,
    pub(crate) duration_nanos: i64,
    pub(crate) period: i64,
    pub(crate) default_sample_type: i64,
    pub(crate) doc_url: i64,
    pub(crate) comment: Vec<i64>,
    pub(crate) mapping: Vec<Mapping>,
    pub(crate) function: Vec<Function>,
    /// Location IDs, in profile order.
    pub(crate) loc_id: Vec<u64>,
    /// Location mapping IDs (0: none).
    pub(crate) loc_mapping: Vec<u64>,
    /// Location `i`'s lines are `line_function[loc_line_start[i]..loc_line_start[i + 1]]`.
    pub(crate) loc_line_start: Vec<u32>,
    /// Function ID of each line (0: none), innermost first within a location.
    pub(crate) line_function: Vec<u64>,
    /// Sample `i`'s stack is `sample_locs[sample_loc_start[i]..sample_loc_start[i + 1]]`.
    pub(crate) sample_loc_start: Vec<u32>,
    /// Stacks, leaf first, as location *positions* (IDs resolved during validation; while
    /// parsing, an ID, or [`WIDE`] | its index in `wide_ids` when it does not fit in 31 bits).
    pub(crate) sample_locs: Vec<u32>,
    /// Location IDs of stacks too large for `sample_locs`, until validation resolves them.
    wide_ids: Vec<u64>,
    /// Sample `i`'s values are `values[i * k..(i + 1) * k]`, `k` the number of sample types.
    pub(crate) values: Vec<i64>,
    /// Distinct label keys (string indices), in order of first appearance.
    pub(crate) label_keys: Vec<i64>,
    pub(crate) locations: IdIndex,
    pub(crate) functions: IdIndex,
    pub(crate) mappings: IdIndex,
    /// Size of the protobuf after inflating, in bytes.
    pub decoded_bytes: usize,
}

/// One sample type, e.g. `cpu/nanoseconds`. The names profilers use (`cpu`, `alloc_space`,
/// `nanoseconds`, ...) are borrowed from a static table rather than copied: reading them is
/// then no allocation, which was half of what explode did for a profile without samples.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SampleType {
    /// Type, e.g. `cpu`, `alloc_space`.
    pub r#type: Cow<'static, str>,
    /// Unit, e.g. `nanoseconds`, `bytes`, `count`.
    pub unit: Cow<'static, str>,
}

impl SampleType {
    /// A sample type from its two names.
    pub fn new(r#type: impl Into<String>, unit: impl Into<String>) -> Self {
        SampleType { r#type: Cow::Owned(r#type.into()), unit: Cow::Owned(unit.into()) }
    }
}

/// The sample type and unit names of the profilers pprofhouse meets: Go's runtime
/// (`runtime/pprof`), Node.js (`@datadog/pprof`, `pprof-nodejs`), Python (py-spy, Pyroscope),
/// Java (async-profiler through Pyroscope and Datadog), .NET and Rust (pprof-rs). A name found
/// here is borrowed; any other is copied.
const WELL_KNOWN_NAMES: [&str; 34] = [
    "",
    "samples",
    "sample",
    "count",
    "cpu",
    "wall",
    "nanoseconds",
    "microseconds",
    "milliseconds",
    "seconds",
    "bytes",
    "objects",
    "space",
    "alloc_objects",
    "alloc_space",
    "inuse_objects",
    "inuse_space",
    "contentions",
    "delay",
    "goroutine",
    "goroutines",
    "threadcreate",
    "alloc-samples",
    "alloc-size",
    "lock-count",
    "lock-time",
    "inuse-objects",
    "inuse-space",
    "exception",
    "alloc_in_new_tlab_objects",
    "alloc_in_new_tlab_bytes",
    "lock_count",
    "lock_time",
    "itimer",
];

fn well_known_name(s: &[u8]) -> Option<&'static str> {
    WELL_KNOWN_NAMES.iter().find(|name| name.as_bytes() == s).copied()
}

impl std::fmt::Display for SampleType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.r#type, self.unit)
    }
}

/// The buffers of decoded profiles, kept to decode the next profile into
/// ([`decode_reusing`]; [`Profile::recycle`] gives a profile's buffers back). Empty by default;
/// whoever keeps one decides how much it may hold ([`DecodeBuffers::heap_bytes`]).
#[derive(Default)]
pub struct DecodeBuffers {
    pb: Vec<u8>,
    strings: Vec<(u32, u32)>,
    sample_type: Vec<ValueType>,
    mapping: Vec<Mapping>,
    function: Vec<Function>,
    loc_id: Vec<u64>,
    loc_mapping: Vec<u64>,
    loc_line_start: Vec<u32>,
    line_function: Vec<u64>,
    sample_loc_start: Vec<u32>,
    sample_locs: Vec<u32>,
    values: Vec<i64>,
}

impl DecodeBuffers {
    /// The heap memory the buffers hold (their capacity), in bytes: at most what the largest
    /// profile decoded into them reserved. Only the pages a profile wrote are resident.
    pub fn heap_bytes(&self) -> usize {
        fn cap<T>(v: &Vec<T>) -> usize {
            v.capacity() * std::mem::size_of::<T>()
        }
        cap(&self.pb)
            + cap(&self.strings)
            + cap(&self.sample_type)
            + cap(&self.mapping)
            + cap(&self.function)
            + cap(&self.loc_id)
            + cap(&self.loc_mapping)
            + cap(&self.loc_line_start)
            + cap(&self.line_function)
            + cap(&self.sample_loc_start)
            + cap(&self.sample_locs)
            + cap(&self.values)
    }
}

impl std::fmt::Debug for DecodeBuffers {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DecodeBuffers").field("heap_bytes", &self.heap_bytes()).finish_non_exhaustive()
    }
}

/// `v`'s allocation, emptied, leaving an empty vector behind.
fn reuse<T>(v: &mut Vec<T>) -> Vec<T> {
    let mut v = std::mem::take(v);
    v.clear();
    v
}

impl Profile {
    /// Gives this profile's buffers to `bufs` for the next [`decode_reusing`]. The decompressed
    /// protobuf is kept only when nothing else shares it.
    pub fn recycle(self, bufs: &mut DecodeBuffers) {
        if let Ok(mut pb) = self.buf.try_into_mut() {
            pb.clear();
            bufs.pb = pb.into();
        }
        bufs.strings = self.strings;
        bufs.sample_type = self.sample_type;
        bufs.mapping = self.mapping;
        bufs.function = self.function;
        bufs.loc_id = self.loc_id;
        bufs.loc_mapping = self.loc_mapping;
        bufs.loc_line_start = self.loc_line_start;
        bufs.line_function = self.line_function;
        bufs.sample_loc_start = self.sample_loc_start;
        bufs.sample_locs = self.sample_locs;
        bufs.values = self.values;
    }
}

/// True when `data` starts with the gzip magic bytes.
pub fn is_gzip(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0x1f && data[1] == 0x8b
}

/// Inflates `data` if it is gzip (all members, as Go's reader does), enforcing the limit;
/// returns raw protobuf bytes otherwise (also limit-checked).
pub fn inflate(data: Bytes, limits: &Limits) -> Result<Bytes, DecodeError> {
    inflate_into(data, limits, Vec::new())
}

/// [`inflate`] into `out` (cleared first): a buffer kept from an earlier profile
/// ([`DecodeBuffers`]) is written again instead of fresh pages.
fn inflate_into(data: Bytes, limits: &Limits, out: Vec<u8>) -> Result<Bytes, DecodeError> {
    if data.is_empty() {
        return Err(DecodeError::Empty);
    }
    if !is_gzip(&data) {
        if data.len() > limits.max_decompressed_bytes {
            return Err(DecodeError::TooLarge { limit: limits.max_decompressed_bytes });
        }
        return Ok(data);
    }
    if let Some(out) = inflate_libdeflate(&data, limits.max_decompressed_bytes, out) {
        if out.is_empty() {
            return Err(DecodeError::Empty);
        }
        return Ok(Bytes::from(out));
    }
    // Not decompressible within the limit by the fast path: the streaming decoder gives the
    // exact error (truncated, bad gzip, over the limit) reading at most the limit + 1 bytes.
    let mut out = Vec::with_capacity((data.len() * 4).min(limits.max_decompressed_bytes));
    let mut reader = flate2::read::MultiGzDecoder::new(&data[..]).take(limits.max_decompressed_bytes as u64 + 1);
    match reader.read_to_end(&mut out) {
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
            return Err(DecodeError::Truncated(format!("gzip stream ends early: {e}")))
        }
        Err(e) => return Err(DecodeError::Gzip(e.to_string())),
    }
    if out.len() > limits.max_decompressed_bytes {
        return Err(DecodeError::TooLarge { limit: limits.max_decompressed_bytes });
    }
    if out.is_empty() {
        return Err(DecodeError::Empty);
    }
    Ok(Bytes::from(out))
}

/// A libdeflate decompressor, freed on drop.
struct Libdeflate(*mut libdeflate_sys::libdeflate_decompressor);

impl Drop for Libdeflate {
    fn drop(&mut self) {
        // SAFETY: allocated by `libdeflate_alloc_decompressor`, freed once.
        unsafe { libdeflate_sys::libdeflate_free_decompressor(self.0) }
    }
}

/// Inflates every gzip member with libdeflate (whole-buffer, so the output buffer is sized up
/// front: from the last member's ISIZE or 4× the input, grown by doubling, never past `limit`).
/// `None` when the data is not valid gzip or inflates past `limit`: the caller then decides
/// with the streaming decoder, which names the error exactly.
fn inflate_libdeflate(data: &[u8], limit: usize, mut out: Vec<u8>) -> Option<Vec<u8>> {
    // SAFETY: no arguments; a null return is checked.
    let d = unsafe { libdeflate_sys::libdeflate_alloc_decompressor() };
    if d.is_null() {
        return None;
    }
    let d = Libdeflate(d);
    let isize_hint = data.len().checked_sub(4).map_or(0, |i| u32::from_le_bytes([data[i], data[i + 1], data[i + 2], data[i + 3]]) as usize);
    out.clear();
    out.reserve(isize_hint.max(data.len().saturating_mul(4)).min(limit));
    let mut pos = 0;
    while pos < data.len() {
        let (mut used_in, mut used_out) = (0usize, 0usize);
        let spare = out.spare_capacity_mut();
        // SAFETY: the input is `data[pos..]` and the output the vector's spare capacity, each
        // passed with its exact length; libdeflate writes at most `spare.len()` bytes and reports
        // how many in `used_out`.
        let r = unsafe {
            libdeflate_sys::libdeflate_gzip_decompress_ex(
                d.0,
                data[pos..].as_ptr().cast(),
                data.len() - pos,
                spare.as_mut_ptr().cast(),
                spare.len(),
                &mut used_in,
                &mut used_out,
            )
        };
        match r {
            libdeflate_sys::libdeflate_result_LIBDEFLATE_SUCCESS if used_in > 0 && used_out <= spare.len() => {
                // SAFETY: libdeflate initialized `used_out` bytes of the spare capacity.
                unsafe { out.set_len(out.len() + used_out) };
                pos += used_in;
            }
            libdeflate_sys::libdeflate_result_LIBDEFLATE_INSUFFICIENT_SPACE if out.capacity() < limit => {
                // Retry this member with twice the room.
                let want = out.capacity().saturating_mul(2).max(out.len() + 4096).min(limit);
                out.reserve_exact(want - out.len());
            }
            _ => return None,
        }
    }
    (out.len() <= limit).then_some(out)
}

/// Decodes gzip-compressed or raw protobuf pprof data (detected by magic bytes) and validates it.
pub fn decode(data: impl Into<Bytes>, limits: &Limits) -> Result<Profile, DecodeError> {
    decode_reusing(data, limits, &mut DecodeBuffers::default())
}

/// [`decode`] into the buffers of profiles decoded before ([`Profile::recycle`] gives them
/// back): a process that decodes profile after profile writes memory it already has instead of
/// faulting in fresh pages for each one, which is a third of decoding a production-size profile
/// when large blocks go back to the system on free (the worker's allocator settings). The
/// result is the same as [`decode`]'s.
pub fn decode_reusing(data: impl Into<Bytes>, limits: &Limits, bufs: &mut DecodeBuffers) -> Result<Profile, DecodeError> {
    let pb = inflate_into(data.into(), limits, std::mem::take(&mut bufs.pb))?;
    decode_protobuf_reusing(pb, limits, bufs)
}

/// Decodes raw (already inflated) protobuf bytes and validates them, with the default limits.
pub fn decode_protobuf(pb: Bytes) -> Result<Profile, DecodeError> {
    decode_protobuf_with(pb, &Limits::default())
}

/// Decodes raw (already inflated) protobuf bytes and validates them against `limits`.
///
/// One pass over the wire format writes every table into flat arrays (no allocation per
/// sample or location); the count limits are checked as the counts grow, so a profile over
/// one is refused before its tables are built. Then one pass over the flat arrays validates
/// references and counts explode's work.
pub fn decode_protobuf_with(pb: Bytes, limits: &Limits) -> Result<Profile, DecodeError> {
    decode_protobuf_reusing(pb, limits, &mut DecodeBuffers::default())
}

fn decode_protobuf_reusing(pb: Bytes, limits: &Limits, bufs: &mut DecodeBuffers) -> Result<Profile, DecodeError> {
    let decoded_bytes = pb.len();
    if pb.len() > u32::MAX as usize {
        // Offsets are 32-bit.
        return Err(DecodeError::TooLarge { limit: u32::MAX as usize });
    }
    let mut checked = true;
    let parsed = loop {
        match parse(&pb, limits, checked, bufs) {
            Ok(p) => break p,
            // Over a count limit (or, below, malformed): the pre-scan's verdict on the whole
            // file is the answer, as when it ran first. When it finds the file not well-formed
            // enough to count (it has no notion of groups), the limits are not applied.
            Err(WireError::Limit) => {
                super::prescan::check(&pb, limits)?;
                checked = false;
            }
            Err(e) => {
                if let Some(kind) = text_profile(&pb) {
                    return Err(DecodeError::NotProfile(format!(
                        "a {kind} profile as text (`?debug=1`, `WriteTo(w, 1)`); pprofhouse reads the protobuf format (`?debug=0`, the default)"
                    )));
                }
                super::prescan::check(&pb, limits)?;
                return Err(wire_error(e));
            }
        }
    };
    if checked {
        // Every function (and at most one name per mapping) becomes a node with a cell per type.
        let nodes = parsed.function.len() as u64 + parsed.mapping.len() as u64 + 1;
        if nodes.saturating_mul(parsed.sample_type.len() as u64) > limits.max_function_cells {
            super::prescan::check(&pb, limits)?;
        }
    }
    validate(parsed, &pb, decoded_bytes, limits)
}

/// The kind of profile when `pb` is one of the Go runtime's text forms (`debug=1` or `2`),
/// which pprof's legacy parsers read and this decoder does not: their first line.
fn text_profile(pb: &[u8]) -> Option<&'static str> {
    const FIRST_LINES: [(&[u8], &str); 6] = [
        (b"heap profile: ", "heap"),
        (b"--- mutex:", "mutex"),
        (b"--- contention:", "block"),
        (b"goroutine profile: total ", "goroutine"),
        (b"threadcreate profile: total ", "threadcreate"),
        (b"goroutine ", "goroutine"),
    ];
    FIRST_LINES.iter().find(|(start, _)| pb.starts_with(start)).map(|(_, kind)| *kind)
}

fn wire_error(e: WireError) -> DecodeError {
    let msg = e.to_string();
    if matches!(e, WireError::BufferUnderflow | WireError::UnexpectedEndGroupTag) {
        DecodeError::Truncated(format!("protobuf ends early: {msg}"))
    } else {
        DecodeError::NotProfile(msg)
    }
}

/// What the wire pass produces besides the profile's tables: aggregates that let validation
/// skip per-sample work when nothing is wrong.
struct Parsed {
    p: Profile,
    /// Fewest and most values in one sample.
    values_min: usize,
    values_max: usize,
    /// Smallest and largest string index among labels' key, str and num_unit.
    label_str_min: i64,
    label_str_max: i64,
}

impl std::ops::Deref for Parsed {
    type Target = Profile;
    fn deref(&self) -> &Profile {
        &self.p
    }
}

#[inline(always)]
fn limit(count: usize, max: usize, checked: bool) -> Result<(), WireError> {
    if checked && count > max {
        Err(WireError::Limit)
    } else {
        Ok(())
    }
}

fn value_type(r: &mut Reader<'_>, wt: u8, depth: u32, vt: &mut ValueType) -> Result<(), WireError> {
    r.message(wt, depth, |r, tag, wt, depth| {
        match tag {
            1 => vt.ty = r.scalar(wt)? as i64,
            2 => vt.unit = r.scalar(wt)? as i64,
            _ => r.skip(wt, tag, depth)?,
        }
        Ok(())
    })
}

/// The single pass over the wire format.
fn parse(pb: &Bytes, l: &Limits, checked: bool, bufs: &mut DecodeBuffers) -> Result<Parsed, WireError> {
    let mut r = Reader::new(pb);
    let mut loc_line_start = reuse(&mut bufs.loc_line_start);
    loc_line_start.push(0);
    let mut sample_loc_start = reuse(&mut bufs.sample_loc_start);
    sample_loc_start.push(0);
    let mut p = Profile {
        buf: pb.clone(),
        strings: reuse(&mut bufs.strings),
        sample_type: reuse(&mut bufs.sample_type),
        period_type: None,
        drop_frames: 0,
        keep_frames: 0,
        frame_filter: None,
        time_nanos: 0,
        duration_nanos: 0,
        period: 0,
        default_sample_type: 0,
        doc_url: 0,
        comment: Vec::new(),
        mapping: reuse(&mut bufs.mapping),
        function: reuse(&mut bufs.function),
        loc_id: reuse(&mut bufs.loc_id),
        loc_mapping: reuse(&mut bufs.loc_mapping),
        loc_line_start,
        line_function: reuse(&mut bufs.line_function),
        sample_loc_start,
        sample_locs: reuse(&mut bufs.sample_locs),
        wide_ids: Vec::new(),
        values: reuse(&mut bufs.values),
        label_keys: Vec::new(),
        locations: IdIndex::Dense(0),
        functions: IdIndex::Dense(0),
        mappings: IdIndex::Dense(0),
        decoded_bytes: pb.len(),
    };
    // Room up front for what the profile's size suggests, so the arrays are not copied as they
    // grow: per byte of profile, real ones (Go, Node.js, Python, Rust, .NET; 0.3 KB–2.5 MB) carry
    // up to 0.5 location ids, 0.07 values, 0.03 samples and strings, 0.02 lines. Pages of the
    // room that are never written are never touched; a profile with more grows the usual way.
    // At most 64 MiB of profile counts, so no limit setting turns this into a huge reservation.
    let n = pb.len().min(64 << 20);
    p.sample_locs.reserve(n / 2);
    p.values.reserve(n / 12);
    p.sample_loc_start.reserve(n / 32);
    p.strings.reserve(n / 32);
    p.line_function.reserve(n / 48);
    p.loc_id.reserve(n / 48);
    p.loc_mapping.reserve(n / 48);
    p.loc_line_start.reserve(n / 48);
    p.function.reserve(n / 64);
    let (mut values_min, mut values_max) = (usize::MAX, 0usize);
    let (mut label_str_min, mut label_str_max) = (0i64, 0i64);
    let mut key_set: hashbrown::HashSet<i64> = hashbrown::HashSet::new();
    let mut wide_ix: hashbrown::HashMap<u64, u32> = hashbrown::HashMap::new();
    let depth = RECURSION_LIMIT;
    while !r.at_end() {
        let (tag, wt) = r.key()?;
        match tag {
            1 => {
                let mut vt = ValueType::default();
                value_type(&mut r, wt, depth, &mut vt)?;
                p.sample_type.push(vt);
                limit(p.sample_type.len(), l.max_sample_types, checked)?;
            }
            2 => {
                limit(p.sample_loc_start.len(), l.max_samples, checked)?;
                let locs_before = p.sample_locs.len();
                let values_before = p.values.len();
                let (locs, values, wide) = (&mut p.sample_locs, &mut p.values, &mut p.wide_ids);
                r.message(wt, depth, |r, tag, wt, depth| {
                    match tag {
                        1 => {
                            r.repeated_ids_into(wt, locs, |v| narrow_id(v, wide, &mut wide_ix))?;
                            limit(locs.len() - locs_before, l.max_stack_depth, checked)?;
                        }
                        2 => r.repeated_into(wt, values, |v| v as i64)?,
                        3 => {
                            let mut lab = [0i64; 3];
                            if let Some([key, str, _, unit]) = r.varint_fields::<4>(wt, depth) {
                                lab = [key as i64, str as i64, unit as i64];
                            } else {
                                r.message(wt, depth, |r, tag, wt, depth| {
                                    match tag {
                                        1 => lab[0] = r.scalar(wt)? as i64,
                                        2 => lab[1] = r.scalar(wt)? as i64,
                                        3 => {
                                            r.scalar(wt)?;
                                        }
                                        4 => lab[2] = r.scalar(wt)? as i64,
                                        _ => r.skip(wt, tag, depth)?,
                                    }
                                    Ok(())
                                })?;
                            }
                            for &s in &lab {
                                label_str_min = label_str_min.min(s);
                                label_str_max = label_str_max.max(s);
                            }
                            // Profiles carry a handful of label keys on every sample: the
                            // first few distinct ones (in `label_keys`, in the order seen) are
                            // found by a scan, not a hash lookup.
                            let first = &p.label_keys[..p.label_keys.len().min(8)];
                            if !first.contains(&lab[0]) && key_set.insert(lab[0]) {
                                p.label_keys.push(lab[0]);
                            }
                        }
                        _ => r.skip(wt, tag, depth)?,
                    }
                    Ok(())
                })?;
                let n_values = p.values.len() - values_before;
                values_min = values_min.min(n_values);
                values_max = values_max.max(n_values);
                p.sample_loc_start.push(p.sample_locs.len() as u32);
            }
            3 => {
                let mut m = Mapping::default();
                r.message(wt, depth, |r, tag, wt, depth| {
                    match tag {
                        1 => m.id = r.scalar(wt)?,
                        5 => m.filename = r.scalar(wt)? as i64,
                        6 => m.build_id = r.scalar(wt)? as i64,
                        2..=4 | 7..=10 => {
                            r.scalar(wt)?;
                        }
                        _ => r.skip(wt, tag, depth)?,
                    }
                    Ok(())
                })?;
                p.mapping.push(m);
            }
            4 => {
                limit(p.loc_id.len() + 1, l.max_locations, checked)?;
                let (mut id, mut mapping_id) = (0u64, 0u64);
                let lines_before = p.line_function.len();
                let lines = &mut p.line_function;
                r.message(wt, depth, |r, tag, wt, depth| {
                    match tag {
                        1 => id = r.scalar(wt)?,
                        2 => mapping_id = r.scalar(wt)?,
                        3 | 5 => {
                            r.scalar(wt)?;
                        }
                        4 => {
                            let mut function_id = 0u64;
                            if let Some([id, _, _]) = r.varint_fields::<3>(wt, depth) {
                                function_id = id;
                            } else {
                                r.message(wt, depth, |r, tag, wt, depth| {
                                    match tag {
                                        1 => function_id = r.scalar(wt)?,
                                        2 | 3 => {
                                            r.scalar(wt)?;
                                        }
                                        _ => r.skip(wt, tag, depth)?,
                                    }
                                    Ok(())
                                })?;
                            }
                            lines.push(function_id);
                            limit(lines.len() - lines_before, l.max_lines_per_location, checked)?;
                        }
                        _ => r.skip(wt, tag, depth)?,
                    }
                    Ok(())
                })?;
                p.loc_id.push(id);
                p.loc_mapping.push(mapping_id);
                p.loc_line_start.push(p.line_function.len() as u32);
            }
            5 => {
                limit(p.function.len() + 1, l.max_functions, checked)?;
                let mut f = Function::default();
                if let Some([id, name, system_name, filename, _]) = r.varint_fields::<5>(wt, depth) {
                    f = Function { id, name: name as i64, system_name: system_name as i64, filename: filename as i64 };
                } else {
                    r.message(wt, depth, |r, tag, wt, depth| {
                        match tag {
                            1 => f.id = r.scalar(wt)?,
                            2 => f.name = r.scalar(wt)? as i64,
                            3 => f.system_name = r.scalar(wt)? as i64,
                            4 => f.filename = r.scalar(wt)? as i64,
                            5 => {
                                r.scalar(wt)?;
                            }
                            _ => r.skip(wt, tag, depth)?,
                        }
                        Ok(())
                    })?;
                }
                p.function.push(f);
            }
            6 => {
                limit(p.strings.len() + 1, l.max_strings, checked)?;
                let (start, end) = r.bytes(wt)?;
                p.strings.push((start as u32, end as u32));
            }
            7 => p.drop_frames = r.scalar(wt)? as i64,
            8 => p.keep_frames = r.scalar(wt)? as i64,
            9 => p.time_nanos = r.scalar(wt)? as i64,
            10 => p.duration_nanos = r.scalar(wt)? as i64,
            11 => {
                let mut vt = p.period_type.unwrap_or_default();
                value_type(&mut r, wt, depth, &mut vt)?;
                p.period_type = Some(vt);
            }
            12 => p.period = r.scalar(wt)? as i64,
            13 => {
                let comment = &mut p.comment;
                r.repeated(wt, |v| comment.push(v as i64))?;
            }
            14 => p.default_sample_type = r.scalar(wt)? as i64,
            15 => p.doc_url = r.scalar(wt)? as i64,
            _ => r.skip(wt, tag, depth)?,
        }
    }
    Ok(Parsed { p, values_min, values_max, label_str_min, label_str_max })
}

/// `Err(OverLimit)` when `value` is over `max`.
pub(crate) fn over(limit: &'static str, what: &'static str, value: u64, max: u64) -> Result<(), DecodeError> {
    if value > max {
        Err(DecodeError::OverLimit { limit, what, value, max })
    } else {
        Ok(())
    }
}

/// Checks every reference, in the order (and with the errors) of a check over decoded
/// messages: the tables, then sample by sample (value count, stack, labels); then counts the
/// work explode would do — stack depth and frame visits — before it does it. Resolves the
/// stacks' location IDs to positions on the way.
fn validate(parsed: Parsed, pb: &[u8], decoded_bytes: usize, l: &Limits) -> Result<Profile, DecodeError> {
    let Parsed { mut p, values_min, values_max, label_str_min, label_str_max } = parsed;
    let n_samples = p.sample_loc_start.len() - 1;
    if p.sample_type.is_empty() && n_samples == 0 {
        return Err(DecodeError::NotProfile("no sample types and no samples".into()));
    }
    let strings = p.strings.len();
    if strings == 0 || p.strings[0].0 != p.strings[0].1 {
        return Err(DecodeError::StringTable);
    }
    let check_str = |index: i64| -> Result<(), DecodeError> {
        if index < 0 || index as usize >= strings {
            Err(DecodeError::StringIndex { index, len: strings })
        } else {
            Ok(())
        }
    };
    for vt in p.sample_type.iter().chain(p.period_type.iter()) {
        check_str(vt.ty)?;
        check_str(vt.unit)?;
    }
    for i in [p.drop_frames, p.keep_frames, p.default_sample_type, p.doc_url] {
        check_str(i)?;
    }
    for i in [p.drop_frames, p.keep_frames] {
        let (start, end) = p.strings[i as usize];
        over(
            "max_frame_filter_bytes",
            "bytes in a drop_frames/keep_frames pattern",
            (end - start) as u64,
            l.max_frame_filter_bytes as u64,
        )?;
    }
    for &c in &p.comment {
        check_str(c)?;
    }
    let mappings = IdIndex::build(p.mapping.iter().map(|m| m.id), "mapping")?;
    for m in &p.mapping {
        check_str(m.filename)?;
        check_str(m.build_id)?;
    }
    let functions = IdIndex::build(p.function.iter().map(|f| f.id), "function")?;
    for f in &p.function {
        check_str(f.name)?;
        check_str(f.system_name)?;
        check_str(f.filename)?;
    }
    let locations = IdIndex::build(p.loc_id.iter().copied(), "location")?;
    // Numbered 1 to n, as writers number them, a table's references are good when none is over
    // n (0 is "none"): one pass over each array. Otherwise, or when one is over, location by
    // location, which finds the first dangling reference in profile order.
    let within = |ids: &[u64], index: &IdIndex| match index {
        IdIndex::Dense(n) => ids.iter().fold(0, |m, &id| m.max(id)) <= *n as u64,
        IdIndex::Sparse(_) => false,
    };
    if !(within(&p.loc_mapping, &mappings) && within(&p.line_function, &functions)) {
        for (i, &mapping_id) in p.loc_mapping.iter().enumerate() {
            if mapping_id != 0 && mappings.get(mapping_id).is_none() {
                return Err(DecodeError::DanglingId { from: "location", what: "mapping", id: mapping_id });
            }
            let lines = &p.line_function[p.loc_line_start[i] as usize..p.loc_line_start[i + 1] as usize];
            for &function_id in lines {
                if function_id != 0 && functions.get(function_id).is_none() {
                    return Err(DecodeError::DanglingId { from: "location line", what: "function", id: function_id });
                }
            }
        }
    }
    let want = p.sample_type.len();
    if n_samples > 0 && (values_min != want || values_max != want || label_str_min < 0 || label_str_max as u64 >= strings as u64) {
        // Some sample is wrong: find the first error, sample by sample, from the wire.
        return Err(first_sample_error(pb, want, strings, &locations));
    }
    // Resolve stacks to location positions (the first dangling ID in profile order is the
    // error), then count explode's work, reported only once every reference is known good.
    match &locations {
        IdIndex::Dense(n) if p.wide_ids.is_empty() => {
            let n = *n as u32;
            if ids_to_positions(&mut p.sample_locs, n) {
                let pos = p.sample_locs.iter().position(|&pos| pos >= n).unwrap_or(0);
                let id = p.sample_locs[pos].wrapping_add(1);
                return Err(DecodeError::DanglingId { from: "sample", what: "location", id: id as u64 });
            }
        }
        _ => {
            for id in p.sample_locs.iter_mut() {
                let wide = if *id & WIDE != 0 { p.wide_ids[(*id & !WIDE) as usize] } else { *id as u64 };
                let Some(pos) = locations.get(wide) else {
                    return Err(DecodeError::DanglingId { from: "sample", what: "location", id: wide });
                };
                // Below `max_locations`, itself far below `WIDE`.
                *id = pos as u32;
            }
        }
    }
    // Frame visits: a location counts its lines (at least one). When every stack entry at the
    // most lines any location has stays within the limit, the exact count is not needed.
    let lines: Vec<u32> = p.loc_line_start.windows(2).map(|w| (w[1] - w[0]).max(1)).collect();
    let most_lines = lines.iter().copied().max().unwrap_or(1) as u64;
    let mut work: Option<DecodeError> = None;
    let mut frames: u64 = 0;
    let exact = (p.sample_locs.len() as u64).saturating_mul(most_lines) > l.max_expanded_frames;
    for s in 0..n_samples {
        let (start, end) = (p.sample_loc_start[s] as usize, p.sample_loc_start[s + 1] as usize);
        if let Err(e) = over("max_stack_depth", "locations on one stack", (end - start) as u64, l.max_stack_depth as u64) {
            work = Some(e);
            break;
        }
        if exact {
            frames += p.sample_locs[start..end].iter().map(|&pos| lines[pos as usize] as u64).sum::<u64>();
            if let Err(e) =
                over("max_expanded_frames", "frame visits (Σ over samples of the lines of each location)", frames, l.max_expanded_frames)
            {
                work = Some(e);
                break;
            }
        }
    }
    if let Some(e) = work {
        return Err(e);
    }
    // Last, the costliest check: the frame filters, compiled (a full DFA each).
    let s = |i: i64| &pb[p.strings[i as usize].0 as usize..p.strings[i as usize].1 as usize];
    p.frame_filter = match FrameFilter::compile(s(p.drop_frames), s(p.keep_frames), l.max_frame_filter_dfa_bytes) {
        Ok(filter) => filter.map(Arc::new),
        Err(TooComplex) => return Err(DecodeError::FrameFilterTooComplex { max: l.max_frame_filter_dfa_bytes }),
    };
    p.wide_ids = Vec::new();
    p.locations = locations;
    p.functions = functions;
    p.mappings = mappings;
    p.decoded_bytes = decoded_bytes;
    Ok(p)
}

/// Dense location IDs (1 to `n`) to positions, in place: true when some ID is out of range (the
/// caller finds which). Branch-free over the whole array, which on a production profile holds
/// hundreds of thousands of IDs; with AVX2 where the CPU has it (eight at a time, not four).
fn ids_to_positions(ids: &mut [u32], n: u32) -> bool {
    #[inline(always)]
    fn plain(ids: &mut [u32], n: u32) -> bool {
        let mut bad = false;
        for id in ids.iter_mut() {
            let pos = id.wrapping_sub(1);
            bad |= pos >= n;
            *id = pos;
        }
        bad
    }
    #[cfg(target_arch = "x86_64")]
    #[target_feature(enable = "avx2")]
    fn avx2(ids: &mut [u32], n: u32) -> bool {
        plain(ids, n)
    }
    #[cfg(target_arch = "x86_64")]
    if std::is_x86_feature_detected!("avx2") {
        // SAFETY: the CPU has AVX2.
        return unsafe { avx2(ids, n) };
    }
    plain(ids, n)
}

/// The first error among the samples, in profile order and, within a sample, in the order value
/// count, stack, labels. Reads the samples again from the wire: only called when one is wrong.
fn first_sample_error(pb: &[u8], want: usize, strings: usize, locations: &IdIndex) -> DecodeError {
    let check_str = |index: i64| -> Result<(), DecodeError> {
        if index < 0 || index as usize >= strings {
            Err(DecodeError::StringIndex { index, len: strings })
        } else {
            Ok(())
        }
    };
    let mut r = Reader::new(pb);
    let mut stack: Vec<u64> = Vec::new();
    let mut labels: Vec<[i64; 3]> = Vec::new();
    let result = (|| -> Result<Result<(), DecodeError>, WireError> {
        while !r.at_end() {
            let (tag, wt) = r.key()?;
            if tag != 2 {
                r.skip(wt, tag, RECURSION_LIMIT)?;
                continue;
            }
            stack.clear();
            labels.clear();
            let mut n_values = 0usize;
            r.message(wt, RECURSION_LIMIT, |r, tag, wt, depth| {
                match tag {
                    1 => r.repeated(wt, |v| stack.push(v))?,
                    2 => r.repeated(wt, |_| n_values += 1)?,
                    3 => {
                        let mut lab = [0i64; 3];
                        r.message(wt, depth, |r, tag, wt, depth| {
                            match tag {
                                1 => lab[0] = r.scalar(wt)? as i64,
                                2 => lab[1] = r.scalar(wt)? as i64,
                                4 => lab[2] = r.scalar(wt)? as i64,
                                _ => r.skip(wt, tag, depth)?,
                            }
                            Ok(())
                        })?;
                        labels.push(lab);
                    }
                    _ => r.skip(wt, tag, depth)?,
                }
                Ok(())
            })?;
            let sample = (|| {
                if n_values != want {
                    return Err(DecodeError::ValueCount { got: n_values, want });
                }
                for &id in &stack {
                    if locations.get(id).is_none() {
                        return Err(DecodeError::DanglingId { from: "sample", what: "location", id });
                    }
                }
                for lab in &labels {
                    for &s in lab {
                        check_str(s)?;
                    }
                }
                Ok(())
            })();
            if sample.is_err() {
                return Ok(sample);
            }
        }
        Ok(Ok(()))
    })();
    match result {
        Ok(Err(e)) => e,
        // Unreachable: the same bytes parsed, and some sample is wrong.
        Ok(Ok(())) => DecodeError::NotProfile("inconsistent sample checks".into()),
        Err(e) => wire_error(e),
    }
}

impl Profile {
    /// The string at `index` of the string table (validated during decode).
    #[inline]
    pub(crate) fn str(&self, index: i64) -> &[u8] {
        let (start, end) = self.strings[index as usize];
        &self.buf[start as usize..end as usize]
    }

    /// The string at `index`, invalid UTF-8 replaced. Valid strings (nearly all) are checked
    /// and copied; `from_utf8_lossy` alone walks them chunk by chunk first, three times the
    /// instructions for the short type and unit names every profile carries.
    fn string_lossy(&self, index: i64) -> String {
        let s = self.str(index);
        match std::str::from_utf8(s) {
            Ok(s) => s.to_owned(),
            Err(_) => String::from_utf8_lossy(s).into_owned(),
        }
    }

    /// A sample type's or unit's name: borrowed when it is a well-known one, else copied.
    fn name(&self, index: i64) -> Cow<'static, str> {
        match well_known_name(self.str(index)) {
            Some(name) => Cow::Borrowed(name),
            None => Cow::Owned(self.string_lossy(index)),
        }
    }

    fn value_type(&self, vt: &ValueType) -> SampleType {
        SampleType { r#type: self.name(vt.ty), unit: self.name(vt.unit) }
    }

    /// The sample types, in profile order.
    pub fn sample_types(&self) -> Vec<SampleType> {
        self.sample_type.iter().map(|vt| self.value_type(vt)).collect()
    }

    /// The sample type `go tool pprof` shows when none is asked for: `default_sample_type` when
    /// it names one of the sample types, else the last one.
    pub fn default_sample_type_index(&self) -> usize {
        let dflt = self.str(self.default_sample_type);
        if !dflt.is_empty() {
            if let Some(i) = self.sample_type.iter().position(|vt| self.str(vt.ty) == dflt) {
                return i;
            }
        }
        self.sample_type.len().saturating_sub(1)
    }

    /// Resolves a user's sample type choice: `type`, `type/unit`, or an index.
    pub fn sample_type_index(&self, wanted: &str) -> Option<usize> {
        let types = self.sample_types();
        types
            .iter()
            .position(|t| t.to_string() == wanted)
            .or_else(|| types.iter().position(|t| t.r#type == wanted))
            .or_else(|| wanted.parse::<usize>().ok().filter(|&i| i < types.len()))
    }

    /// Profile time (`time_nanos`), ns since the epoch; 0 when absent.
    pub fn time_nanos(&self) -> i64 {
        self.time_nanos
    }
    /// Profile duration in ns; 0 when absent.
    pub fn duration_nanos(&self) -> i64 {
        self.duration_nanos
    }
    /// Sampling period, in `period_type` units.
    pub fn period(&self) -> i64 {
        self.period
    }
    /// What the period measures.
    pub fn period_type(&self) -> Option<SampleType> {
        self.period_type.map(|vt| self.value_type(&vt))
    }
    /// Number of samples.
    pub fn sample_count(&self) -> usize {
        self.sample_loc_start.len() - 1
    }
    /// The profile's comments.
    pub fn comments(&self) -> Vec<String> {
        self.comment.iter().map(|&c| self.string_lossy(c)).collect()
    }
    /// The distinct sample label keys (string and numeric), sorted.
    pub fn label_keys(&self) -> Vec<String> {
        let mut out: Vec<String> = self.label_keys.iter().map(|&k| self.string_lossy(k)).collect();
        out.sort();
        out.dedup();
        out
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use bytes::Bytes;
    use prost::Message;

    use super::{decode, Limits, SampleType, WELL_KNOWN_NAMES};
    use crate::pprof::proto;

    /// Sample types read back as written: well-known names borrowed from the table, any other
    /// name copied, invalid UTF-8 replaced; the period type likewise.
    #[test]
    fn sample_type_names_read_back_borrowed_or_copied() {
        let strings: [&[u8]; 8] = [b"", b"cpu", b"nanoseconds", b"widgets_made", b"widgets", b"caf\xe9", b"count", b"main"];
        let vt = |t, u| proto::ValueType { r#type: t, unit: u };
        let p = proto::Profile {
            sample_type: vec![vt(1, 2), vt(3, 4), vt(5, 6), vt(1, 0)],
            period_type: Some(vt(3, 2)),
            string_table: strings.iter().map(|s| Bytes::copy_from_slice(s)).collect(),
            ..Default::default()
        };
        let profile = decode(p.encode_to_vec(), &Limits::default()).unwrap();
        let types = profile.sample_types();
        let shown: Vec<String> = types.iter().map(SampleType::to_string).collect();
        assert_eq!(shown, ["cpu/nanoseconds", "widgets_made/widgets", "caf\u{fffd}/count", "cpu/"]);
        let borrowed = |c: &Cow<'static, str>| matches!(c, Cow::Borrowed(_));
        let kinds: Vec<(bool, bool)> = types.iter().map(|t| (borrowed(&t.r#type), borrowed(&t.unit))).collect();
        assert_eq!(kinds, [(true, true), (false, false), (false, true), (true, true)]);
        assert_eq!(profile.period_type(), Some(SampleType::new("widgets_made", "nanoseconds")));
    }

    /// Each well-known name is there once and is found as itself.
    #[test]
    fn well_known_names_are_distinct_and_found() {
        for (i, name) in WELL_KNOWN_NAMES.iter().enumerate() {
            assert_eq!(WELL_KNOWN_NAMES.iter().position(|n| n == name), Some(i), "{name:?} twice");
            assert_eq!(super::well_known_name(name.as_bytes()), Some(*name));
        }
        assert_eq!(super::well_known_name(b"cpus"), None);
        assert_eq!(super::well_known_name(b"cp"), None);
    }
}

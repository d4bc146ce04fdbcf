//! Bytes → a validated [`Profile`]: inflate (when gzip), protobuf-decode, check every reference.
//!
//! Everything that can be wrong with untrusted input is found here and reported as a typed
//! [`DecodeError`], so the semantic layer ([`crate::explode`]) can index without re-checking
//! and never panics. The checks are the ones `go tool pprof` applies (reserved ID 0, duplicate
//! IDs, string indices in range, one value per sample type) plus a few it is lenient about
//! (dangling function and mapping references, which pprof silently turns into "no function"):
//! a pipeline is better served by a clear error than by a profile quietly missing names.

use std::io::Read;

use bytes::Bytes;
use prost::Message;

use super::proto;

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
    /// No sample at all.
    #[error("profile has no samples")]
    NoSamples,
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
            DecodeError::NoSamples => "no_samples",
            DecodeError::OverLimit { .. } => "over_limit",
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

/// A decoded profile whose every cross-reference has been checked.
#[derive(Debug, Clone)]
pub struct Profile {
    pub(crate) raw: proto::Profile,
    pub(crate) locations: IdIndex,
    pub(crate) functions: IdIndex,
    pub(crate) mappings: IdIndex,
    /// Size of the protobuf after inflating, in bytes.
    pub decoded_bytes: usize,
}

/// One sample type, e.g. `cpu/nanoseconds`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct SampleType {
    /// Type, e.g. `cpu`, `alloc_space`.
    pub r#type: String,
    /// Unit, e.g. `nanoseconds`, `bytes`, `count`.
    pub unit: String,
}

impl std::fmt::Display for SampleType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.r#type, self.unit)
    }
}

/// True when `data` starts with the gzip magic bytes.
pub fn is_gzip(data: &[u8]) -> bool {
    data.len() >= 2 && data[0] == 0x1f && data[1] == 0x8b
}

/// Inflates `data` if it is gzip (all members, as Go's reader does), enforcing the limit;
/// returns raw protobuf bytes otherwise (also limit-checked).
pub fn inflate(data: Bytes, limits: &Limits) -> Result<Bytes, DecodeError> {
    if data.is_empty() {
        return Err(DecodeError::Empty);
    }
    if !is_gzip(&data) {
        if data.len() > limits.max_decompressed_bytes {
            return Err(DecodeError::TooLarge { limit: limits.max_decompressed_bytes });
        }
        return Ok(data);
    }
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

/// Decodes gzip-compressed or raw protobuf pprof data (detected by magic bytes) and validates it.
pub fn decode(data: impl Into<Bytes>, limits: &Limits) -> Result<Profile, DecodeError> {
    let pb = inflate(data.into(), limits)?;
    decode_protobuf_with(pb, limits)
}

/// Decodes raw (already inflated) protobuf bytes and validates them, with the default limits.
pub fn decode_protobuf(pb: Bytes) -> Result<Profile, DecodeError> {
    decode_protobuf_with(pb, &Limits::default())
}

/// Decodes raw (already inflated) protobuf bytes and validates them against `limits`.
pub fn decode_protobuf_with(pb: Bytes, limits: &Limits) -> Result<Profile, DecodeError> {
    let decoded_bytes = pb.len();
    // The counts first, on the bytes: nothing is allocated for a profile over a count limit.
    super::prescan::check(&pb, limits)?;
    let raw = proto::Profile::decode(pb).map_err(|e| {
        let msg = e.to_string();
        if msg.contains("buffer underflow") || msg.contains("unexpected end") {
            DecodeError::Truncated(format!("protobuf ends early: {msg}"))
        } else {
            DecodeError::NotProfile(msg)
        }
    })?;
    let profile = validate(raw, decoded_bytes)?;
    check_work(&profile, limits)?;
    Ok(profile)
}

/// `Err(OverLimit)` when `value` is over `max`.
pub(crate) fn over(limit: &'static str, what: &'static str, value: u64, max: u64) -> Result<(), DecodeError> {
    if value > max {
        Err(DecodeError::OverLimit { limit, what, value, max })
    } else {
        Ok(())
    }
}

/// The work explode would do, counted before it does it: stack depth and frame visits.
fn check_work(p: &Profile, l: &Limits) -> Result<(), DecodeError> {
    let lines: Vec<u64> = p.raw.location.iter().map(|loc| loc.line.len().max(1) as u64).collect();
    let mut frames: u64 = 0;
    for s in &p.raw.sample {
        over("max_stack_depth", "locations on one stack", s.location_id.len() as u64, l.max_stack_depth as u64)?;
        for &id in &s.location_id {
            // Validated: every id resolves.
            frames += p.locations.get(id).map_or(1, |i| lines[i]);
        }
        if frames > l.max_expanded_frames {
            return over(
                "max_expanded_frames",
                "frame visits (Σ over samples of the lines of each location)",
                frames,
                l.max_expanded_frames,
            );
        }
    }
    Ok(())
}

fn validate(raw: proto::Profile, decoded_bytes: usize) -> Result<Profile, DecodeError> {
    if raw.sample_type.is_empty() && raw.sample.is_empty() {
        return Err(DecodeError::NotProfile("no sample types and no samples".into()));
    }
    let strings = raw.string_table.len();
    if strings == 0 || !raw.string_table[0].is_empty() {
        return Err(DecodeError::StringTable);
    }
    let check_str = |index: i64| -> Result<(), DecodeError> {
        if index < 0 || index as usize >= strings {
            Err(DecodeError::StringIndex { index, len: strings })
        } else {
            Ok(())
        }
    };
    for vt in raw.sample_type.iter().chain(raw.period_type.iter()) {
        check_str(vt.r#type)?;
        check_str(vt.unit)?;
    }
    for i in [raw.drop_frames, raw.keep_frames, raw.default_sample_type, raw.doc_url] {
        check_str(i)?;
    }
    for &c in &raw.comment {
        check_str(c)?;
    }
    let mappings = IdIndex::build(raw.mapping.iter().map(|m| m.id), "mapping")?;
    for m in &raw.mapping {
        check_str(m.filename)?;
        check_str(m.build_id)?;
    }
    let functions = IdIndex::build(raw.function.iter().map(|f| f.id), "function")?;
    for f in &raw.function {
        check_str(f.name)?;
        check_str(f.system_name)?;
        check_str(f.filename)?;
    }
    let locations = IdIndex::build(raw.location.iter().map(|l| l.id), "location")?;
    for l in &raw.location {
        if l.mapping_id != 0 && mappings.get(l.mapping_id).is_none() {
            return Err(DecodeError::DanglingId { from: "location", what: "mapping", id: l.mapping_id });
        }
        for line in &l.line {
            if line.function_id != 0 && functions.get(line.function_id).is_none() {
                return Err(DecodeError::DanglingId { from: "location line", what: "function", id: line.function_id });
            }
        }
    }
    if raw.sample.is_empty() {
        return Err(DecodeError::NoSamples);
    }
    let want = raw.sample_type.len();
    for s in &raw.sample {
        if s.value.len() != want {
            return Err(DecodeError::ValueCount { got: s.value.len(), want });
        }
        for &id in &s.location_id {
            if locations.get(id).is_none() {
                return Err(DecodeError::DanglingId { from: "sample", what: "location", id });
            }
        }
        for l in &s.label {
            check_str(l.key)?;
            check_str(l.str)?;
            check_str(l.num_unit)?;
        }
    }
    Ok(Profile { raw, locations, functions, mappings, decoded_bytes })
}

impl Profile {
    /// The string at `index` of the string table (validated during decode).
    #[inline]
    pub(crate) fn str(&self, index: i64) -> &Bytes {
        &self.raw.string_table[index as usize]
    }

    fn string_lossy(&self, index: i64) -> String {
        String::from_utf8_lossy(self.str(index)).into_owned()
    }

    /// The sample types, in profile order.
    pub fn sample_types(&self) -> Vec<SampleType> {
        self.raw
            .sample_type
            .iter()
            .map(|vt| SampleType { r#type: self.string_lossy(vt.r#type), unit: self.string_lossy(vt.unit) })
            .collect()
    }

    /// The sample type `go tool pprof` shows when none is asked for: `default_sample_type` when
    /// it names one of the sample types, else the last one.
    pub fn default_sample_type_index(&self) -> usize {
        let dflt = self.str(self.raw.default_sample_type);
        if !dflt.is_empty() {
            if let Some(i) = self.raw.sample_type.iter().position(|vt| self.str(vt.r#type) == dflt) {
                return i;
            }
        }
        self.raw.sample_type.len().saturating_sub(1)
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
        self.raw.time_nanos
    }
    /// Profile duration in ns; 0 when absent.
    pub fn duration_nanos(&self) -> i64 {
        self.raw.duration_nanos
    }
    /// Sampling period, in `period_type` units.
    pub fn period(&self) -> i64 {
        self.raw.period
    }
    /// What the period measures.
    pub fn period_type(&self) -> Option<SampleType> {
        self.raw.period_type.map(|vt| SampleType { r#type: self.string_lossy(vt.r#type), unit: self.string_lossy(vt.unit) })
    }
    /// Number of samples.
    pub fn sample_count(&self) -> usize {
        self.raw.sample.len()
    }
    /// The profile's comments.
    pub fn comments(&self) -> Vec<String> {
        self.raw.comment.iter().map(|&c| self.string_lossy(c)).collect()
    }
    /// The distinct sample label keys (string and numeric), sorted.
    pub fn label_keys(&self) -> Vec<String> {
        let mut keys: Vec<i64> = self.raw.sample.iter().flat_map(|s| s.label.iter().map(|l| l.key)).collect();
        keys.sort_unstable();
        keys.dedup();
        let mut out: Vec<String> = keys.into_iter().map(|k| self.string_lossy(k)).collect();
        out.sort();
        out.dedup();
        out
    }
}

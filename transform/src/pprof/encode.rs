//! The way back: stacks of function names with their values → a pprof profile (`profile.proto`,
//! gzip-compressed), as `pprofhouse merge` and `serve`'s merge endpoint rebuild it from stored
//! stacks.
//!
//! The profile is built at function granularity, which is all the stored stacks keep: one
//! `Function` and one line-less `Location` per distinct name, one `Sample` per distinct stack
//! with one value per sample type (0 where the stack has none). Names are set as already
//! symbolized and demangled (`Function.name` set, `system_name` empty), so `go tool pprof`
//! leaves them as they are; a single mapping that claims functions keeps pprof from trying to
//! symbolize the locations (locally or through a remote `/pprof/symbol`). So `go tool pprof
//! -top` of the result prints, per function, the flat and cum of the stacks it was built from.
//!
//! Header fields follow google/pprof's `Merge`: the period is the largest of the sources', the
//! time the earliest non-zero one, the duration the sum.

use std::io::Write;

use bytes::Bytes;
use hashbrown::HashMap;
use prost::Message;

use super::proto;
use super::SampleType;

/// What a rebuilt profile holds: its header and its stacks.
#[derive(Debug, Clone, Default)]
pub struct ProfileParts {
    /// Sample types, in order; every stack has one value per type.
    pub sample_types: Vec<SampleType>,
    /// The type `go tool pprof` shows by default (an index into `sample_types`), if any.
    pub default_sample_type: Option<usize>,
    /// What the period measures.
    pub period_type: Option<SampleType>,
    /// Sampling period.
    pub period: i64,
    /// Profile time, ns since the epoch (0: unknown).
    pub time_nanos: i64,
    /// Duration in ns.
    pub duration_nanos: i64,
    /// Stacks: function names leaf first, and their values per sample type.
    pub stacks: Vec<(Vec<Bytes>, Vec<i64>)>,
}

/// A string table under construction (index 0 is the empty string, as pprof requires).
#[derive(Default)]
struct Strings {
    table: Vec<Bytes>,
    index: HashMap<Bytes, i64>,
}

impl Strings {
    fn new() -> Self {
        let mut s = Strings::default();
        s.intern(Bytes::new());
        s
    }

    fn intern(&mut self, b: Bytes) -> i64 {
        if let Some(&i) = self.index.get(&b) {
            return i;
        }
        let i = self.table.len() as i64;
        self.table.push(b.clone());
        self.index.insert(b, i);
        i
    }

    fn value_type(&mut self, t: &SampleType) -> proto::ValueType {
        proto::ValueType {
            r#type: self.intern(Bytes::copy_from_slice(t.r#type.as_bytes())),
            unit: self.intern(Bytes::copy_from_slice(t.unit.as_bytes())),
        }
    }
}

/// Builds the profile message (see the module docs). Stacks with a value count other than the
/// number of sample types are padded with zeros or cut.
pub fn build(parts: &ProfileParts) -> proto::Profile {
    let mut strings = Strings::new();
    let k = parts.sample_types.len();
    let sample_type: Vec<proto::ValueType> = parts.sample_types.iter().map(|t| strings.value_type(t)).collect();
    let period_type = parts.period_type.as_ref().map(|t| strings.value_type(t));
    let default_sample_type = parts.default_sample_type.and_then(|i| sample_type.get(i)).map(|v| v.r#type).unwrap_or(0);
    let mapping = proto::Mapping { id: 1, has_functions: true, ..Default::default() };
    // Function and location ids are equal: one line-less location per function.
    let mut ids: HashMap<Bytes, u64> = HashMap::new();
    let mut function = Vec::new();
    let mut location = Vec::new();
    let mut sample = Vec::with_capacity(parts.stacks.len());
    for (frames, values) in &parts.stacks {
        let mut location_id = Vec::with_capacity(frames.len());
        for name in frames {
            let id = match ids.get(name) {
                Some(&id) => id,
                None => {
                    let id = function.len() as u64 + 1;
                    let name_ix = strings.intern(name.clone());
                    function.push(proto::Function { id, name: name_ix, ..Default::default() });
                    location.push(proto::Location {
                        id,
                        mapping_id: 1,
                        line: vec![proto::Line { function_id: id, ..Default::default() }],
                        ..Default::default()
                    });
                    ids.insert(name.clone(), id);
                    id
                }
            };
            location_id.push(id);
        }
        let mut value = values.clone();
        value.resize(k, 0);
        sample.push(proto::Sample { location_id, value, label: Vec::new() });
    }
    proto::Profile {
        sample_type,
        sample,
        mapping: vec![mapping],
        location,
        function,
        string_table: strings.table,
        time_nanos: parts.time_nanos,
        duration_nanos: parts.duration_nanos,
        period_type,
        period: parts.period,
        default_sample_type,
        ..Default::default()
    }
}

/// [`build`], encoded and gzip-compressed (what `go tool pprof` and profefe serve).
pub fn encode_gzip(parts: &ProfileParts) -> Vec<u8> {
    let raw = build(parts).encode_to_vec();
    let mut gz = flate2::write::GzEncoder::new(Vec::with_capacity(raw.len() / 4 + 64), flate2::Compression::default());
    gz.write_all(&raw).expect("writing to a Vec cannot fail");
    gz.finish().expect("writing to a Vec cannot fail")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::pprof::{decode, Limits};
    use crate::{explode, ExplodeOptions};

    fn st(t: &str, u: &str) -> SampleType {
        SampleType::new(t, u)
    }

    #[test]
    fn a_rebuilt_profile_explodes_to_its_stacks_numbers() {
        let b = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let parts = ProfileParts {
            sample_types: vec![st("samples", "count"), st("cpu", "nanoseconds")],
            default_sample_type: Some(1),
            period_type: Some(st("cpu", "nanoseconds")),
            period: 10_000_000,
            time_nanos: 5,
            duration_nanos: 7,
            stacks: vec![
                (vec![b("leaf"), b("mid"), b("main")], vec![2, 20]),
                (vec![b("mid"), b("mid"), b("main")], vec![1, 10]),
                (vec![b("main")], vec![0, 5]),
            ],
        };
        let p = decode(encode_gzip(&parts), &Limits::default()).unwrap();
        let ex = explode(&p, ExplodeOptions::default());
        assert_eq!(ex.facts.sample_types, parts.sample_types);
        assert_eq!(ex.facts.default_sample_type, 1);
        assert_eq!((ex.facts.period, ex.facts.time_nanos, ex.facts.duration_nanos), (10_000_000, 5, 7));
        let mut rows: Vec<(usize, String, i64, i64)> =
            ex.all_rows().into_iter().map(|r| (r.sample_type, String::from_utf8_lossy(r.function).into_owned(), r.flat, r.cum)).collect();
        rows.sort();
        let want = [(0, "leaf", 2, 2), (0, "main", 0, 3), (0, "mid", 1, 3), (1, "leaf", 20, 20), (1, "main", 5, 35), (1, "mid", 10, 30)];
        let want: Vec<(usize, String, i64, i64)> = want.iter().map(|(t, f, a, c)| (*t, f.to_string(), *a, *c)).collect();
        assert_eq!(rows, want);
    }
}

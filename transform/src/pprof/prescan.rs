//! One allocation-free pass over the wire format that counts what decoding would allocate —
//! samples, locations, functions, strings, sample types, lines per location, locations per
//! stack — so the count limits are checked before the decoder allocates anything. A file with
//! six million strings or a million-frame stack is refused after reading its bytes once.
//!
//! The single decoding pass checks the same counts as they grow and stops at the first one over
//! its limit; it then asks this pass for the verdict on the whole file (which limit, which count),
//! so the error is the one a count-first decoder would give. It asks it too when the bytes turn
//! out malformed, since a count-first decoder refuses an over-limit file before seeing that.

use super::decode::{over, DecodeError, Limits};

/// What the pass counted.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Counts {
    pub sample_types: u64,
    pub samples: u64,
    pub mappings: u64,
    pub locations: u64,
    pub functions: u64,
    pub strings: u64,
    pub max_lines: u64,
    pub max_depth: u64,
}

/// A protobuf reader over a byte slice: varints, tags and length-delimited fields.
struct Wire<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> Wire<'a> {
    fn varint(&mut self) -> Option<u64> {
        let mut v: u64 = 0;
        for shift in (0..64).step_by(7) {
            let b = *self.buf.get(self.pos)?;
            self.pos += 1;
            v |= ((b & 0x7f) as u64) << shift;
            if b < 0x80 {
                return Some(v);
            }
        }
        None
    }

    /// The next field: (number, wire type, payload for length-delimited fields).
    fn field(&mut self) -> Option<Option<(u64, u8, &'a [u8])>> {
        if self.pos >= self.buf.len() {
            return Some(None);
        }
        let tag = self.varint()?;
        let (num, wt) = (tag >> 3, (tag & 7) as u8);
        let payload: &'a [u8] = match wt {
            0 => {
                self.varint()?;
                &[]
            }
            1 => {
                self.pos = self.pos.checked_add(8).filter(|&p| p <= self.buf.len())?;
                &[]
            }
            2 => {
                let len = usize::try_from(self.varint()?).ok()?;
                let end = self.pos.checked_add(len).filter(|&e| e <= self.buf.len())?;
                let p = &self.buf[self.pos..end];
                self.pos = end;
                p
            }
            5 => {
                self.pos = self.pos.checked_add(4).filter(|&p| p <= self.buf.len())?;
                &[]
            }
            _ => return None,
        };
        Some(Some((num, wt, payload)))
    }
}

/// Counts occurrences of field `want` in a message; with `packed`, a length-delimited
/// occurrence counts its varints (a packed repeated scalar), else it counts once (a message).
fn count_field(msg: &[u8], want: u64, packed: bool) -> Option<u64> {
    let mut w = Wire { buf: msg, pos: 0 };
    let mut n = 0u64;
    while let Some((num, wt, payload)) = w.field()? {
        if num != want {
            continue;
        }
        if wt == 2 && packed {
            // Packed: one varint per element (every byte below 0x80 ends one).
            n += payload.iter().filter(|&&b| b < 0x80).count() as u64;
        } else {
            n += 1;
        }
    }
    Some(n)
}

/// Counts the profile's tables. `None` when the bytes are not well-formed protobuf (the decoder
/// then reports precisely what is wrong).
pub(crate) fn counts(pb: &[u8]) -> Option<Counts> {
    let mut c = Counts::default();
    let mut w = Wire { buf: pb, pos: 0 };
    while let Some((num, wt, payload)) = w.field()? {
        match (num, wt) {
            (1, 2) => c.sample_types += 1,
            (2, 2) => {
                c.samples += 1;
                c.max_depth = c.max_depth.max(count_field(payload, 1, true)?);
            }
            (3, 2) => c.mappings += 1,
            (4, 2) => {
                c.locations += 1;
                c.max_lines = c.max_lines.max(count_field(payload, 4, false)?);
            }
            (5, 2) => c.functions += 1,
            (6, 2) => c.strings += 1,
            _ => {}
        }
    }
    Some(c)
}

/// Checks the count limits on the raw bytes, before decoding allocates.
pub(crate) fn check(pb: &[u8], l: &Limits) -> Result<(), DecodeError> {
    let Some(c) = counts(pb) else { return Ok(()) };
    over("max_samples", "samples", c.samples, l.max_samples as u64)?;
    over("max_locations", "locations", c.locations, l.max_locations as u64)?;
    over("max_functions", "functions", c.functions, l.max_functions as u64)?;
    over("max_strings", "strings", c.strings, l.max_strings as u64)?;
    over("max_sample_types", "sample types", c.sample_types, l.max_sample_types as u64)?;
    over("max_lines_per_location", "lines in one location", c.max_lines, l.max_lines_per_location as u64)?;
    over("max_stack_depth", "locations on one stack", c.max_depth, l.max_stack_depth as u64)?;
    // Every function (and at most one name per mapping) becomes a node with a cell per type.
    let nodes = c.functions + c.mappings + 1;
    over("max_function_cells", "function × sample type cells", nodes.saturating_mul(c.sample_types), l.max_function_cells)
}

#[cfg(test)]
mod tests {
    use prost::Message;

    use super::*;
    use crate::pprof::proto;

    #[test]
    fn counts_match_the_decoded_tables() {
        let p = proto::Profile {
            sample_type: vec![proto::ValueType::default(); 3],
            sample: vec![
                proto::Sample { location_id: vec![1, 2, 300_000], value: vec![1, 2, 3], label: vec![] },
                proto::Sample { location_id: vec![1], value: vec![0, 0, 0], label: vec![] },
            ],
            location: vec![proto::Location { id: 1, line: vec![proto::Line::default(); 7], ..Default::default() }],
            function: vec![proto::Function::default(); 2],
            string_table: vec![bytes::Bytes::new(); 5],
            ..Default::default()
        };
        let c = counts(&p.encode_to_vec()).unwrap();
        assert_eq!(
            c,
            Counts { sample_types: 3, samples: 2, mappings: 0, locations: 1, functions: 2, strings: 5, max_lines: 7, max_depth: 3 }
        );
        assert!(counts(&[0x0a, 0x05, 0x01]).is_none(), "a length past the end is not well-formed");
    }
}

//! The protobuf wire format, read the way `prost` reads it — the same acceptance, the same
//! error for every malformed input — without building messages: the single decoding pass in
//! [`super::decode`] drives it and writes what it reads straight into flat arrays.
//!
//! Like prost, every read is bounded by the whole buffer, not by the enclosing message: a field
//! that runs past its message's end but not past the buffer's is read, and the message then
//! fails with "delimited length exceeded"; one that runs past the buffer fails with "buffer
//! underflow". Unknown fields (groups included) are skipped; repeated scalars are accepted
//! packed and unpacked.

/// Why the wire bytes are not a well-formed message (prost's `DecodeErrorKind`s that matter
/// here), or `Limit`: a count limit was crossed while reading (the caller decides what to report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum WireError {
    InvalidVarint,
    BufferUnderflow,
    InvalidKey,
    InvalidWireType(u8),
    InvalidTag,
    UnexpectedWireType { actual: u8, expected: u8 },
    DelimitedLengthExceeded,
    UnexpectedEndGroupTag,
    RecursionLimitReached,
    Limit,
}

/// prost's names for the wire types (its `WireType` `Debug`).
fn wire_type_name(wt: u8) -> &'static str {
    match wt {
        0 => "Varint",
        1 => "SixtyFourBit",
        2 => "LengthDelimited",
        3 => "StartGroup",
        4 => "EndGroup",
        _ => "ThirtyTwoBit",
    }
}

impl std::fmt::Display for WireError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("failed to decode Protobuf message: ")?;
        match *self {
            WireError::InvalidVarint => write!(f, "invalid varint"),
            WireError::BufferUnderflow => write!(f, "buffer underflow"),
            WireError::InvalidKey => write!(f, "invalid key value (over 32 bits)"),
            WireError::InvalidWireType(value) => write!(f, "invalid wire type value: {value}"),
            WireError::InvalidTag => write!(f, "invalid tag value: 0"),
            WireError::UnexpectedWireType { actual, expected } => {
                write!(f, "invalid wire type: {} (expected {})", wire_type_name(actual), wire_type_name(expected))
            }
            WireError::DelimitedLengthExceeded => write!(f, "delimited length exceeded"),
            WireError::UnexpectedEndGroupTag => write!(f, "unexpected end group tag"),
            WireError::RecursionLimitReached => write!(f, "recursion limit reached"),
            WireError::Limit => write!(f, "over a count limit"),
        }
    }
}

pub(crate) type Result<T> = std::result::Result<T, WireError>;

/// prost's recursion limit: the depth budget of the top-level message.
pub(crate) const RECURSION_LIMIT: u32 = 100;

pub(crate) const VARINT: u8 = 0;
pub(crate) const LEN: u8 = 2;

/// The varint at the start of `bytes` and its length; `None` when `bytes` ends inside it or it is
/// not a valid varint (over ten bytes, or a tenth byte carrying more than the top bit of a u64).
#[inline(always)]
fn varint_in(bytes: &[u8]) -> Option<(u64, usize)> {
    let mut v: u64 = 0;
    for i in 0..10 {
        let b = *bytes.get(i)?;
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b < 0x80 {
            return (i < 9 || b < 2).then_some((v, i + 1));
        }
    }
    None
}

/// A cursor over the whole buffer.
pub(crate) struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        Reader { buf, pos: 0 }
    }

    #[inline(always)]
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64> {
        let rest = self.buf.get(self.pos..).unwrap_or_default();
        if let Some(&b) = rest.first() {
            if b < 0x80 {
                self.pos += 1;
                return Ok(b as u64);
            }
        }
        let (v, n) = varint_in(rest).ok_or(WireError::InvalidVarint)?;
        self.pos += n;
        Ok(v)
    }

    /// A field key: (field number, wire type).
    #[inline(always)]
    pub fn key(&mut self) -> Result<(u32, u8)> {
        let key = self.varint()?;
        if key > u32::MAX as u64 {
            return Err(WireError::InvalidKey);
        }
        let wt = (key & 7) as u8;
        if wt > 5 {
            return Err(WireError::InvalidWireType(wt));
        }
        let tag = key as u32 >> 3;
        if tag == 0 {
            return Err(WireError::InvalidTag);
        }
        Ok((tag, wt))
    }

    /// A length prefix, checked against the rest of the buffer; returns the payload's end.
    #[inline(always)]
    fn len_end(&mut self) -> Result<usize> {
        let len = self.varint()?;
        if len > (self.buf.len() - self.pos) as u64 {
            return Err(WireError::BufferUnderflow);
        }
        Ok(self.pos + len as usize)
    }

    #[inline(always)]
    pub fn expect(wt: u8, expected: u8) -> Result<()> {
        if wt != expected {
            return Err(WireError::UnexpectedWireType { actual: wt, expected });
        }
        Ok(())
    }

    /// A singular varint field (int64, uint64, bool).
    #[inline(always)]
    pub fn scalar(&mut self, wt: u8) -> Result<u64> {
        Self::expect(wt, VARINT)?;
        self.varint()
    }

    /// A `bytes` field: its (start, end) in the buffer.
    #[inline(always)]
    pub fn bytes(&mut self, wt: u8) -> Result<(usize, usize)> {
        Self::expect(wt, LEN)?;
        let end = self.len_end()?;
        let start = self.pos;
        self.pos = end;
        Ok((start, end))
    }

    /// A repeated varint field, packed (one length-delimited run) or not (one varint).
    #[inline(always)]
    pub fn repeated(&mut self, wt: u8, mut f: impl FnMut(u64)) -> Result<()> {
        if wt == LEN {
            let end = self.len_end()?;
            while self.pos < end {
                f(self.varint()?);
            }
            if self.pos != end {
                return Err(WireError::DelimitedLengthExceeded);
            }
            Ok(())
        } else {
            Self::expect(wt, VARINT)?;
            f(self.varint()?);
            Ok(())
        }
    }

    /// A repeated varint field appended to `out` (packed or not, as [`Reader::repeated`]); a
    /// packed run reserves room for its worst case (one value per byte) up front, so the
    /// vector grows once per run at most, never value by value.
    #[inline(always)]
    pub fn repeated_into<T>(&mut self, wt: u8, out: &mut Vec<T>, mut f: impl FnMut(u64) -> T) -> Result<()> {
        if wt == LEN {
            let end = self.len_end()?;
            out.reserve(end - self.pos);
            while self.pos < end {
                // Varints that end inside the run are decoded in a tight loop straight into the
                // reserved room; anything else (a varint that would cross the run's end, or one
                // too long) goes through `varint`, which reads and fails exactly as prost does.
                let run = &self.buf[self.pos..end];
                let len = out.len();
                let spare = out.spare_capacity_mut();
                let (mut i, mut n) = (0, 0);
                'run: while i < run.len() {
                    let b0 = run[i];
                    let v = if b0 < 0x80 {
                        i += 1;
                        b0 as u64
                    } else if i + 1 < run.len() && run[i + 1] < 0x80 {
                        i += 2;
                        (b0 & 0x7f) as u64 | (run[i - 1] as u64) << 7
                    } else {
                        let Some((v, len)) = varint_in(&run[i..]) else { break 'run };
                        i += len;
                        v
                    };
                    spare[n].write(f(v));
                    n += 1;
                }
                // SAFETY: the first `n` slots of the spare capacity were just written (`n` never
                // exceeds the bytes of the run, which `reserve` made room for).
                unsafe { out.set_len(len + n) };
                self.pos += i;
                if self.pos < end {
                    out.push(f(self.varint()?));
                }
            }
            if self.pos != end {
                return Err(WireError::DelimitedLengthExceeded);
            }
            Ok(())
        } else {
            Self::expect(wt, VARINT)?;
            out.push(f(self.varint()?));
            Ok(())
        }
    }

    /// An embedded message: calls `f(reader, field, wire type, depth)` for each of its fields.
    #[inline(always)]
    pub fn message(&mut self, wt: u8, depth: u32, mut f: impl FnMut(&mut Self, u32, u8, u32) -> Result<()>) -> Result<()> {
        Self::expect(wt, LEN)?;
        if depth == 0 {
            return Err(WireError::RecursionLimitReached);
        }
        let end = self.len_end()?;
        while self.pos < end {
            let (tag, wt) = self.key()?;
            f(self, tag, wt, depth - 1)?;
        }
        if self.pos != end {
            return Err(WireError::DelimitedLengthExceeded);
        }
        Ok(())
    }

    /// Skips an unknown field (prost's `skip_field`).
    pub fn skip(&mut self, wt: u8, tag: u32, depth: u32) -> Result<()> {
        if depth == 0 {
            return Err(WireError::RecursionLimitReached);
        }
        let len: u64 = match wt {
            0 => {
                self.varint()?;
                0
            }
            5 => 4,
            1 => 8,
            2 => self.varint()?,
            3 => loop {
                let (inner_tag, inner_wt) = self.key()?;
                if inner_wt == 4 {
                    if inner_tag != tag {
                        return Err(WireError::UnexpectedEndGroupTag);
                    }
                    break 0;
                }
                self.skip(inner_wt, inner_tag, depth - 1)?;
            },
            _ => return Err(WireError::UnexpectedEndGroupTag),
        };
        if len > (self.buf.len() - self.pos) as u64 {
            return Err(WireError::BufferUnderflow);
        }
        self.pos += len as usize;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints_like_prost() {
        let mut r = Reader::new(&[0x96, 0x01]);
        assert_eq!(r.varint(), Ok(150));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]);
        assert_eq!(r.varint(), Ok(u64::MAX));
        let mut r = Reader::new(&[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02]);
        assert_eq!(r.varint(), Err(WireError::InvalidVarint));
        let mut r = Reader::new(&[0x80]);
        assert_eq!(r.varint(), Err(WireError::InvalidVarint));
        let mut r = Reader::new(&[]);
        assert_eq!(r.varint(), Err(WireError::InvalidVarint));
    }

    fn varint_bytes(mut v: u64, out: &mut Vec<u8>) {
        while v >= 0x80 {
            out.push(v as u8 | 0x80);
            v >>= 7;
        }
        out.push(v as u8);
    }

    /// `repeated_into` (the fast path) reads and fails exactly as `repeated` (one varint at a
    /// time): every varint length, a run cut inside a varint, a varint running past the run, a
    /// ten-byte varint with a bad last byte, trailing bytes after the run.
    #[test]
    fn packed_fast_path_reads_like_the_plain_one() {
        // Every length from 1 to 10 bytes.
        let values = [
            0u64,
            1,
            127,
            128,
            300,
            16383,
            16384,
            (1 << 21) - 1,
            1 << 21,
            u32::MAX as u64,
            (1 << 35) + 3,
            (1 << 42) - 1,
            1 << 42,
            (1 << 49) + 77,
            (1 << 56) - 1,
            1 << 56,
            1 << 62,
            u64::MAX,
        ];
        let mut payload = Vec::new();
        for v in values.iter().cycle().take(40) {
            varint_bytes(*v, &mut payload);
        }
        let mut cases: Vec<Vec<u8>> = Vec::new();
        for cut in 0..=payload.len() {
            // Length prefix over the first `cut` bytes, with the whole payload behind it: a cut
            // inside a varint makes that varint run past the run's end.
            let mut buf = Vec::new();
            varint_bytes(cut as u64, &mut buf);
            buf.extend_from_slice(&payload);
            cases.push(buf);
        }
        let mut bad = Vec::new();
        varint_bytes(12, &mut bad);
        bad.extend_from_slice(&[5, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02, 7]);
        cases.push(bad);
        let mut long = Vec::new();
        varint_bytes(12, &mut long);
        long.extend_from_slice(&[0xff; 12]);
        cases.push(long);
        for buf in &cases {
            let (mut a, mut b) = (Reader::new(buf), Reader::new(buf));
            let (mut va, mut vb) = (Vec::new(), Vec::new());
            let ra = a.repeated(LEN, |v| va.push(v));
            let rb = b.repeated_into(LEN, &mut vb, |v| v);
            assert_eq!((ra, a.pos), (rb, b.pos), "{buf:?}");
            if ra.is_ok() {
                assert_eq!(va, vb, "{buf:?}");
            }
        }
    }
}

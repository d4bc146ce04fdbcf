//! The protobuf wire format, read the way `prost` reads it — the same acceptance, the same
//! error for every malformed input — without building messages: the single decoding pass in
//! [`super::decode`] drives it and writes what it reads straight into flat arrays.
//!
//! Like prost, every read is bounded by the whole buffer, not by the enclosing message: a field
//! that runs past its message's end but not past the buffer's is read, and the message then
//! fails with "delimited length exceeded"; one that runs past the buffer fails with "buffer
//! underflow". Unknown fields (groups included) are skipped; repeated scalars are accepted
//! packed and unpacked.

use std::mem::MaybeUninit;

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
    // One and two bytes first, straight: IDs, string indices, lengths and counts mostly are.
    let b0 = *bytes.first()?;
    if b0 < 0x80 {
        return Some((b0 as u64, 1));
    }
    let b1 = *bytes.get(1)?;
    let mut v = (b0 & 0x7f) as u64 | ((b1 & 0x7f) as u64) << 7;
    if b1 < 0x80 {
        return Some((v, 2));
    }
    for i in 2..10 {
        let b = *bytes.get(i)?;
        v |= ((b & 0x7f) as u64) << (7 * i);
        if b < 0x80 {
            return (i < 9 || b < 2).then_some((v, i + 1));
        }
    }
    None
}

/// Decodes the varints of `run` that end inside it into `out`, one at a time, up to the first
/// that does not (cut by the run's end, or invalid); returns (bytes read, values written).
/// `out` has room for one value per byte of `run`.
#[inline(always)]
fn scalar_run<T>(run: &[u8], out: &mut [MaybeUninit<T>], f: &mut impl FnMut(u64) -> T) -> (usize, usize) {
    let (mut i, mut n) = (0, 0);
    while i < run.len() {
        let b0 = run[i];
        let v = if b0 < 0x80 {
            i += 1;
            b0 as u64
        } else if i + 1 < run.len() && run[i + 1] < 0x80 {
            i += 2;
            (b0 & 0x7f) as u64 | (run[i - 1] as u64) << 7
        } else {
            let Some((v, len)) = varint_in(&run[i..]) else { break };
            i += len;
            v
        };
        out[n].write(f(v));
        n += 1;
    }
    (i, n)
}

/// [`scalar_run`] for IDs (see [`Reader::repeated_ids_into`]) over `buf[start..end]`; `out`
/// has room for eight values more than the run has bytes.
#[inline(always)]
fn ids_run(
    buf: &[u8],
    start: usize,
    end: usize,
    out: &mut [MaybeUninit<u32>],
    f: &mut impl FnMut(u64) -> u32,
    windows: bool,
) -> (usize, usize) {
    // Short stacks (a CPU profile's few frames of one byte each) are quicker one byte at a time.
    #[cfg(target_arch = "x86_64")]
    if windows && end - start >= 16 {
        // SAFETY: SSSE3 and POPCNT are there (`windows`: `Reader::windows`).
        let (i, n) = unsafe { windows::short_ids_ssse3(buf, start, end, out) };
        let (j, m) = scalar_run(&buf[start + i..end], &mut out[n..], f);
        return (i + j, n + m);
    }
    scalar_run(&buf[start..end], out, f)
}

/// Packed varints of one or two bytes, eight bytes at a time, with no step waiting on the one
/// before: where each varint ends is known from the bytes alone (a byte without its high bit),
/// so every window starts eight bytes after the previous one. A table indexed by the window's
/// ends (and whether the byte before the window continues) gives the shuffle that puts each
/// varint ending in the window into a 16-bit lane (its first byte, then its second or zero);
/// the lanes are stored whole and the output advances by the number of ends. Real profiles'
/// location IDs mix one- and two-byte varints about evenly, which a byte-at-a-time loop pays
/// for in mispredicted branches and in a chain of dependent loads.
#[cfg(target_arch = "x86_64")]
mod windows {
    use std::arch::x86_64::*;
    use std::mem::MaybeUninit;

    /// Row `ends | continued << 8`: for each varint ending in the window (bit `t` of `ends`:
    /// byte `t` ends one), the positions of its bytes in the window shifted right by one byte
    /// (position 0 is the byte before the window), 0x80 (a zero) for a one-byte varint's second.
    static SHUFFLE: [[u8; 16]; 512] = {
        let mut rows = [[0x80u8; 16]; 512];
        let mut row = 0;
        while row < 512 {
            let (ends, continued) = (row & 0xff, row >> 8 == 1);
            let mut n = 0;
            let mut t = 0;
            while t < 8 {
                if (ends >> t) & 1 == 1 {
                    let two = if t == 0 { continued } else { (ends >> (t - 1)) & 1 == 0 };
                    if two {
                        rows[row][2 * n] = t as u8;
                        rows[row][2 * n + 1] = t as u8 + 1;
                    } else {
                        rows[row][2 * n] = t as u8 + 1;
                    }
                    n += 1;
                }
                t += 1;
            }
            row += 1;
        }
        rows
    };

    /// Decodes `buf[start..end]` while its varints are of one or two bytes; stops before the
    /// first longer one, or before the bytes too near the buffer's end for a whole load, for
    /// the caller's scalar loop. Returns (bytes read, values written). `out` has room for eight
    /// values more than the run has bytes.
    ///
    /// Each window is one 16-byte load starting a byte before it: that byte tells whether a
    /// varint continues into the window (before the run's first window it is the last byte of
    /// the run's length, which never continues), so no window waits on the one before.
    #[target_feature(enable = "ssse3,popcnt")]
    pub(super) fn short_ids_ssse3(buf: &[u8], start: usize, end: usize, out: &mut [MaybeUninit<u32>]) -> (usize, usize) {
        let len = end - start;
        assert!(end <= buf.len() && out.len() >= len + 8);
        if start == 0 {
            return (0, 0);
        }
        let dst = out.as_mut_ptr() as *mut u32;
        let (low, high, zero) = (_mm_set1_epi16(0x7f), _mm_set1_epi16(0x7f00), _mm_setzero_si128());
        // Whole windows whose load (sixteen bytes from the byte before) stays in the buffer.
        let load_end = buf.len() + 1 - start;
        let (mut at, mut n) = (0, 0);
        // The last window may be short: the bytes past the run's end are loaded, and left out.
        while at < len && at + 16 <= load_end {
            let valid = if len - at >= 8 { 0xff } else { (1u32 << (len - at)) - 1 };
            // SAFETY: `start + at - 1 + 16 <= buf.len()` (`load_end`), and `start >= 1`.
            let x = unsafe { _mm_loadu_si128(buf.as_ptr().add(start + at - 1) as *const __m128i) };
            let high_bits = _mm_movemask_epi8(x) as u32;
            let (continued, cont) = (high_bits & 1, (high_bits >> 1) & valid);
            if cont & ((cont << 1) | continued) != 0 {
                // A varint of three bytes or more.
                return (at - continued as usize, n);
            }
            let ends = !cont & valid;
            // SAFETY: the row has sixteen bytes.
            let shuffle = unsafe { _mm_loadu_si128(SHUFFLE[(ends | continued << 8) as usize].as_ptr() as *const __m128i) };
            let w = _mm_shuffle_epi8(x, shuffle);
            let v = _mm_or_si128(_mm_and_si128(w, low), _mm_srli_epi16(_mm_and_si128(w, high), 1));
            // SAFETY: `n` values so far ended before `at`, so `n <= at < len`, and `out` has
            // room for `len + 8`.
            unsafe {
                _mm_storeu_si128(dst.add(n) as *mut __m128i, _mm_unpacklo_epi16(v, zero));
                _mm_storeu_si128(dst.add(n + 4) as *mut __m128i, _mm_unpackhi_epi16(v, zero));
            }
            n += ends.count_ones() as usize;
            at = (at + 8).min(len);
        }
        // A varint that the last window's last byte starts is the caller's to read (and, at the
        // run's end, to refuse as prost does).
        let cut = at > 0 && buf[start + at - 1] >= 0x80;
        (at - cut as usize, n)
    }
}

/// A cursor over the whole buffer.
pub(crate) struct Reader<'a> {
    pub buf: &'a [u8],
    pub pos: usize,
    /// Whether the CPU has what the window decoder needs (SSSE3, POPCNT): asked once per
    /// buffer, not once per stack.
    windows: bool,
}

impl<'a> Reader<'a> {
    pub fn new(buf: &'a [u8]) -> Self {
        #[cfg(target_arch = "x86_64")]
        let windows = std::is_x86_feature_detected!("ssse3") && std::is_x86_feature_detected!("popcnt");
        #[cfg(not(target_arch = "x86_64"))]
        let windows = false;
        Reader { buf, pos: 0, windows }
    }

    #[inline(always)]
    pub fn at_end(&self) -> bool {
        self.pos >= self.buf.len()
    }

    #[inline(always)]
    pub fn varint(&mut self) -> Result<u64> {
        // One bound check for the one-byte varint (keys, lengths, most small fields).
        if let Some(&b) = self.buf.get(self.pos) {
            if b < 0x80 {
                self.pos += 1;
                return Ok(b as u64);
            }
        }
        let rest = self.buf.get(self.pos..).unwrap_or_default();
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
    pub fn repeated_into<T>(&mut self, wt: u8, out: &mut Vec<T>, f: impl FnMut(u64) -> T) -> Result<()> {
        self.packed_with(wt, out, f, |buf, start, end, out, f| scalar_run(&buf[start..end], out, f))
    }

    /// [`Reader::repeated_into`] for IDs: `f` must give `v as u32` for every `v` below 2¹⁴ (the
    /// one- and two-byte varints), as those may be stored without calling it. On x86-64 with
    /// SSSE3 a packed run of 16 bytes or more is decoded eight bytes at a time ([`ids_run`]):
    /// real profiles' location IDs mix one- and two-byte varints about evenly, which the
    /// byte-at-a-time loop pays for in mispredicted branches.
    #[inline(always)]
    pub fn repeated_ids_into(&mut self, wt: u8, out: &mut Vec<u32>, f: impl FnMut(u64) -> u32) -> Result<()> {
        let windows = self.windows;
        self.packed_with(wt, out, f, |buf, start, end, out, f| ids_run(buf, start, end, out, f, windows))
    }

    #[inline(always)]
    fn packed_with<T, F: FnMut(u64) -> T>(
        &mut self,
        wt: u8,
        out: &mut Vec<T>,
        mut f: F,
        run_fn: impl Fn(&[u8], usize, usize, &mut [MaybeUninit<T>], &mut F) -> (usize, usize),
    ) -> Result<()> {
        if wt == LEN {
            let end = self.len_end()?;
            out.reserve(end - self.pos + 8);
            while self.pos < end {
                // Varints that end inside the run are decoded in a tight loop straight into the
                // reserved room; anything else (a varint that would cross the run's end, or one
                // too long) goes through `varint`, which reads and fails exactly as prost does.
                let len = out.len();
                let (i, n) = run_fn(self.buf, self.pos, end, out.spare_capacity_mut(), &mut f);
                // SAFETY: `run_fn` wrote the first `n` slots of the spare capacity (`n` never
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

    /// An embedded message whose fields are all varints numbered 1 to `N` with one-byte keys,
    /// as every writer encodes pprof's small messages (labels, lines, functions):
    /// its fields' values (0 where absent, the last where repeated). `None`, with nothing read,
    /// for anything else (another field, a varint cut by the message's end, an error): the
    /// caller then reads the message with [`Reader::message`], which accepts or refuses it as
    /// prost does. Where both read a message, they read the same values.
    #[inline(always)]
    pub fn varint_fields<const N: usize>(&mut self, wt: u8, depth: u32) -> Option<[u64; N]> {
        if wt != LEN || depth == 0 {
            return None;
        }
        let (len, n) = varint_in(self.buf.get(self.pos..)?)?;
        let start = self.pos + n;
        if len > (self.buf.len() - start) as u64 {
            return None;
        }
        let end = start + len as usize;
        let msg = &self.buf[..end];
        let mut fields = [0u64; N];
        let mut at = start;
        // Writers put the fields in order, 1 to N, each at most once (absent when zero): read
        // that prefix first, each field's key compared to its own and its slot a constant (up
        // to field 5, unrolled: a loop here was not, and kept the fields in memory), then
        // whatever follows, in any order, by the loop below. A field of the prefix is read as
        // the loop would read it, so where the prefix ends changes nothing but the speed.
        macro_rules! in_order {
            ($j:literal) => {
                if $j < N && at < end && msg[at] == ($j + 1) << 3 {
                    let (v, n) = varint_in(&msg[at + 1..])?;
                    fields[$j] = v;
                    at += 1 + n;
                }
            };
        }
        in_order!(0);
        in_order!(1);
        in_order!(2);
        in_order!(3);
        in_order!(4);
        while at < end {
            let key = msg[at];
            let tag = (key >> 3) as usize;
            if key & 0x87 != 0 || tag == 0 || tag > N {
                return None;
            }
            let (v, n) = varint_in(&msg[at + 1..])?;
            // Not `fields[tag - 1] = v`: an unrolled select keeps the fields in registers,
            // where a store at a computed index makes reading them back wait on it.
            for (j, field) in fields.iter_mut().enumerate() {
                if j + 1 == tag {
                    *field = v;
                }
            }
            at += 1 + n;
        }
        self.pos = end;
        Some(fields)
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

    /// `varint_in` reads every varint as prost does: each length from 1 to 10 bytes, followed
    /// by bytes of every kind; and every invalid or cut varint fails alike.
    #[test]
    fn varint_in_reads_like_prost() {
        let mut next = xorshift(7);
        for len in 1..=10u32 {
            for _ in 0..2_000 {
                let bits = (7 * len).min(64);
                let mut v = next() & if bits == 64 { u64::MAX } else { (1u64 << bits) - 1 };
                // The top group non-zero, so the encoding is `len` bytes long.
                v |= 1u64 << (7 * (len - 1)).min(63);
                let mut buf = Vec::new();
                varint_bytes(v, &mut buf);
                assert_eq!(buf.len(), len as usize);
                let tail = (next() % 12) as usize;
                buf.extend((0..tail).map(|_| next() as u8));
                assert_eq!(varint_in(&buf), Some((v, len as usize)), "{buf:02x?}");
            }
        }
        for _ in 0..200_000 {
            // Random bytes, high bits mostly set: long, cut and invalid varints.
            let n = (next() % 14) as usize;
            let buf: Vec<u8> = (0..n).map(|_| next() as u8 | if next().is_multiple_of(4) { 0 } else { 0x80 }).collect();
            let want = prost::encoding::decode_varint(&mut &buf[..]).ok();
            let got = varint_in(&buf);
            assert_eq!(got.map(|(v, _)| v), want, "{buf:02x?}");
            if let Some((_, len)) = got {
                let mut rest = &buf[..];
                prost::encoding::decode_varint(&mut rest).unwrap();
                assert_eq!(len, n - rest.len(), "{buf:02x?}");
            }
        }
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
            same_as_plain(buf);
        }
    }

    /// A reproducible stream of pseudo-random numbers (xorshift64) for the randomized tests.
    fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
        move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        }
    }

    /// `varint_fields` reads a message as `message` does, or leaves it to it: random messages
    /// of varint fields, with other wire types, multi-byte keys, tag 0, tags over `N`, long
    /// varints and cuts among them; for each `N` decoding uses.
    #[test]
    fn varint_fields_read_like_message() {
        reads_like_message::<3>(0x9e37_79b9_7f4a_7c15);
        reads_like_message::<4>(0x2545_f491_4f6c_dd1d);
        reads_like_message::<5>(0x5851_f42d_4c95_7f2d);
    }

    fn reads_like_message<const N: usize>(seed: u64) {
        let n = N as u64;
        let mut next = xorshift(seed);
        let (mut fast, mut plain_only) = (0, 0);
        for _ in 0..20_000 {
            let mut body = Vec::new();
            // Half the messages in writers' order (ascending tags, some left out), which
            // `varint_fields` reads through its in-order prefix, the others in any order.
            let ordered = next().is_multiple_of(2);
            let mut next_tag = 1;
            for _ in 0..next() % (n + 2) {
                let roll = next() % 20;
                let tag = match roll {
                    0 => 0,
                    1 => n + 1,
                    2 => 17,
                    _ if ordered => {
                        let tag = next_tag + next() % 2;
                        next_tag = tag + 1;
                        tag
                    }
                    _ => 1 + next() % n,
                };
                let wt = if roll == 3 { [1, 2, 5][(next() % 3) as usize] } else { 0 };
                varint_bytes(tag << 3 | wt, &mut body);
                match wt {
                    0 => varint_bytes(next() >> (next() % 64), &mut body),
                    2 => {
                        body.push(2);
                        body.extend_from_slice(&[1, 2]);
                    }
                    1 => body.extend_from_slice(&[0; 8]),
                    _ => body.extend_from_slice(&[0; 4]),
                }
            }
            if next().is_multiple_of(8) && !body.is_empty() {
                body.truncate((next() as usize) % body.len());
            }
            let mut buf = Vec::new();
            let claimed = if next().is_multiple_of(16) { body.len() as u64 + next() % 3 } else { body.len() as u64 };
            varint_bytes(claimed, &mut buf);
            buf.extend_from_slice(&body);
            buf.extend_from_slice(&[0x08, 0x01]);
            let mut a = Reader::new(&buf);
            let got = a.varint_fields::<N>(LEN, 5);
            let mut b = Reader::new(&buf);
            let mut want = [0u64; N];
            let plain = b.message(LEN, 5, |r, tag, wt, depth| {
                match tag {
                    t if (1..=N as u32).contains(&t) => want[t as usize - 1] = r.scalar(wt)?,
                    _ => r.skip(wt, tag, depth)?,
                }
                Ok(())
            });
            match got {
                Some(v) => {
                    fast += 1;
                    assert_eq!((plain, b.pos), (Ok(()), a.pos), "{buf:?}");
                    assert_eq!(v, want, "{buf:?}");
                }
                None => {
                    plain_only += 1;
                    assert_eq!(a.pos, 0, "{buf:?}");
                }
            }
        }
        assert!(fast > 5_000 && plain_only > 5_000, "{fast} {plain_only}");
    }

    /// What [`Reader::repeated_ids_into`] is given: IDs below 2²¹ as themselves.
    fn id(v: u64) -> u32 {
        if v < 1 << 21 {
            v as u32
        } else {
            (v % 1_000_003) as u32 | 1 << 31
        }
    }

    /// `repeated_into` and `repeated_ids_into` read `buf` (a length-prefixed run) exactly as
    /// `repeated` does: same values, same end position, same error.
    fn same_as_plain(buf: &[u8]) {
        let (mut a, mut b, mut c) = (Reader::new(buf), Reader::new(buf), Reader::new(buf));
        let (mut va, mut vb, mut vc) = (Vec::new(), Vec::new(), Vec::new());
        let ra = a.repeated(LEN, |v| va.push(v));
        let rb = b.repeated_into(LEN, &mut vb, |v| v);
        let rc = c.repeated_ids_into(LEN, &mut vc, id);
        // And without the window decoder, as on a CPU without SSSE3.
        let (mut d, mut vd) = (Reader::new(buf), Vec::new());
        d.windows = false;
        let rd = d.repeated_ids_into(LEN, &mut vd, id);
        assert_eq!((ra, a.pos), (rb, b.pos), "{buf:?}");
        assert_eq!((ra, a.pos), (rc, c.pos), "{buf:?}");
        assert_eq!((ra, a.pos), (rd, d.pos), "{buf:?}");
        if ra.is_ok() {
            assert_eq!(va, vb, "{buf:?}");
            assert_eq!(va.iter().map(|&v| id(v)).collect::<Vec<_>>(), vc, "{buf:?}");
            assert_eq!(vc, vd, "{buf:?}");
        }
    }

    /// The window decoder against the plain loop on runs of random varints of one to five
    /// bytes (mostly one to three, as location IDs are), cut at every length, so every window
    /// pattern and every way a run can end inside a window is met.
    #[test]
    fn windows_read_like_the_plain_loop() {
        let mut next = xorshift(0x9e37_79b9_7f4a_7c15);
        for _ in 0..300 {
            let mut payload = Vec::new();
            let values = next() % 40;
            for _ in 0..values {
                let bits = [7, 14, 21, 28, 35, 3, 10][(next() % 7) as usize];
                varint_bytes(next() % (1 << bits), &mut payload);
            }
            for cut in 0..=payload.len() {
                let mut buf = Vec::new();
                varint_bytes(cut as u64, &mut buf);
                buf.extend_from_slice(&payload);
                same_as_plain(&buf);
            }
        }
    }
}

//! Object keys as S3 event notifications carry them (form-encoded), and Go's `url.QueryEscape`
//! used by profefe's key layout.

/// A key or label that does not decode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct KeyError(pub String);

/// Decode a key as S3 event notifications write it: form encoding, `+` for space, `%XX` bytes,
/// UTF-8. Errors on a malformed `%` escape or invalid UTF-8.
pub fn decode_event_key(s: &str) -> Result<String, KeyError> {
    query_unescape(s)
}

/// Go's `url.QueryUnescape`: `+` → space, `%XX` → byte; strict about malformed escapes.
pub fn query_unescape(s: &str) -> Result<String, KeyError> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => {
                out.push(b' ');
                i += 1;
            }
            b'%' => {
                let hex = |c: u8| (c as char).to_digit(16);
                match (b.get(i + 1).copied().and_then(hex), b.get(i + 2).copied().and_then(hex)) {
                    (Some(h), Some(l)) => out.push((h * 16 + l) as u8),
                    _ => {
                        let end = (i + 3).min(b.len());
                        return Err(KeyError(format!("malformed escape {:?} in {s:?}", String::from_utf8_lossy(&b[i..end]))));
                    }
                }
                i += 3;
            }
            c => {
                out.push(c);
                i += 1;
            }
        }
    }
    String::from_utf8(out).map_err(|_| KeyError(format!("not UTF-8 after decoding: {s:?}")))
}

/// Go's `url.QueryEscape` (used to build profefe keys in tests and tools).
pub fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for &c in s.as_bytes() {
        match c {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => out.push(c as char),
            b' ' => out.push('+'),
            _ => out.push_str(&format!("%{c:02X}")),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_key_decoding() {
        assert_eq!(decode_event_key("my+profile%2B1.pb.gz").unwrap(), "my profile+1.pb.gz");
        assert_eq!(decode_event_key("svc/%E6%97%A5%E6%9C%AC/cpu.pb.gz").unwrap(), "svc/日本/cpu.pb.gz");
        assert_eq!(decode_event_key("P0.svc1/1/9bsv0s3ipt32jfck6kt0%2Ck1%3Dv1").unwrap(), "P0.svc1/1/9bsv0s3ipt32jfck6kt0,k1=v1");
        assert!(decode_event_key("bad%G1").is_err());
        assert!(decode_event_key("trunc%4").is_err());
        assert!(decode_event_key("%FF%FE").is_err());
        assert_eq!(query_escape("a b/c,d=é"), "a+b%2Fc%2Cd%3D%C3%A9");
    }
}

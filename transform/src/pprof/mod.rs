//! The format layer: pprof's `profile.proto` on the wire ([`proto`]) and its validated,
//! cross-referenced form ([`Profile`], via [`decode`]). No semantics here.

pub mod decode;
pub mod proto;

pub use decode::{decode, decode_protobuf, inflate, is_gzip, DecodeError, Limits, Profile, SampleType};

//! The format layer: pprof's `profile.proto` on the wire ([`proto`]) and its validated,
//! cross-referenced form ([`Profile`], via [`decode()`]), and the way back from stacks to a
//! profile ([`encode`]). No semantics here.

pub mod decode;
pub mod encode;
mod prescan;
mod wire;
// The wire schema mirrors `profile.proto` field for field; its comments are the documentation.
#[allow(missing_docs)]
pub mod proto;

pub use decode::{
    decode, decode_protobuf, decode_protobuf_with, decode_reusing, inflate, is_gzip, DecodeBuffers, DecodeError, Limits, Profile,
    SampleType,
};

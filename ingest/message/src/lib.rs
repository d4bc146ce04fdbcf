//! # pprofhouse-message: the contract between ingest and the worker
//!
//! Everything that travels between the stages of pprofhouse is defined here, once, so the
//! trigger that writes a message and the worker that reads it cannot drift apart:
//!
//! - [`ObjectRef`] and the **envelope** — one JSON object per message on the profiles topic,
//!   `{"v":1,"bucket":..,"key":..,"size":..,"etag":..,"version_id":..,"meta":{..}}`. The
//!   reader, [`parse_message`], also accepts the raw S3 event JSON that S3-compatible stores
//!   (MinIO's Kafka target) publish straight to the topic, so the worker takes either.
//! - [`ProfileMeta`] — what is known about a profile besides its bytes (service, type, labels,
//!   creation time, and which layout said so). The trigger resolves it, the envelope carries
//!   it, the ClickHouse sink stores it: one type from end to end.
//! - [`DeadLetter`] — the dead-letter topic's message: the object, a stable error kind, the
//!   reason, and the original message for replay.
//! - [`CreatedObject`] / [`object_created_event`] — S3 `ObjectCreated` events built the way S3
//!   writes them, for `pprofhouse put`, tests and tools.
//! - [`keys`] — S3 event key decoding and Go's `url.QueryEscape`, as profefe's keys use it.
//!
//! The crate does no I/O: it is serde types and pure functions, cheap to depend on.
#![deny(missing_docs)]

mod dead_letter;
mod envelope;
pub mod keys;
mod meta;
mod s3_event;

pub use dead_letter::{DeadLetter, HEADER_KIND, HEADER_REASON, HEADER_STAGE};
pub use envelope::{
    is_object_created, objects_from_records, parse_message, EnvelopeError, EventRecord, ObjectRef, Skipped, ENVELOPE_VERSION,
};
pub use keys::{decode_event_key, query_escape, query_unescape, KeyError};
pub use meta::{LayoutKind, ProfileMeta};
pub use s3_event::{object_created_event, CreatedObject};

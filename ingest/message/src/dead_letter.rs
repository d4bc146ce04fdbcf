//! The dead-letter topic's messages: what failed, why (a stable kind and a reason), and the
//! original message so it can be replayed.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::ObjectRef;

/// Header carrying the dead-letter reason.
pub const HEADER_REASON: &str = "pprofhouse-reason";
/// Header carrying the stage that dead-lettered a message (`ingest`, `worker`, ...).
pub const HEADER_STAGE: &str = "pprofhouse-stage";
/// Header carrying the envelope version / content kind.
pub const HEADER_KIND: &str = "pprofhouse-kind";

/// A message on the dead-letter topic: the object (as far as known), why, and where.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeadLetter {
    /// Format version (1).
    pub v: u32,
    /// Where it failed: `ingest` (the trigger) or `worker`.
    pub stage: String,
    /// Why, in words (the error's message).
    pub reason: String,
    /// A stable short name for the failure (`not_found`, `truncated`, `not_profile`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error_kind: Option<String>,
    /// When it failed (a value for people; never part of an id).
    pub failed_at: DateTime<Utc>,
    /// The object, as far as it is known.
    pub object: ObjectRef,
    /// For messages that could not even be read: the original payload (lossy UTF-8).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payload: Option<String>,
    /// The Kafka message the worker was processing (lossy UTF-8), so it can be replayed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub original_message: Option<String>,
}

impl DeadLetter {
    /// A dead letter failing now, without kind or original message.
    pub fn new(object: ObjectRef, stage: impl Into<String>, reason: impl Into<String>) -> Self {
        DeadLetter {
            v: 1,
            stage: stage.into(),
            reason: reason.into(),
            error_kind: None,
            failed_at: Utc::now(),
            object,
            payload: None,
            original_message: None,
        }
    }
}

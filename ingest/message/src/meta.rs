//! What the pipeline knows about a profile besides its bytes.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

/// The profile metadata the pipeline needs besides the object itself.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProfileMeta {
    /// Service name, as the uploader gave it (profefe's `__` decoded back to `/`).
    pub service: String,
    /// Profile type name: `cpu`, `heap`, `block`, `mutex`, `goroutine`, `threadcreate`, `other`,
    /// `unknown`, or whatever name a template captured (lowercased).
    #[serde(rename = "type")]
    pub profile_type: String,
    /// Labels, sorted by key.
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// When the profile was taken (UTC).
    pub created_at: DateTime<Utc>,
    /// Which layout produced this metadata.
    pub layout: LayoutKind,
}

/// Which layout produced a [`ProfileMeta`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LayoutKind {
    /// profefe's `P0.` key.
    Profefe,
    /// A configured template.
    Template,
    /// profefe-style object (user) metadata.
    ObjectMetadata,
    /// Nothing matched; the configured defaults.
    Default,
    /// Given by the caller (`pprofhouse load` flags for local files).
    Given,
}

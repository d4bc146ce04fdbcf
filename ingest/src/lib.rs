//! Ingest: placeholder (being written).

//! SQL: placeholder (being written).

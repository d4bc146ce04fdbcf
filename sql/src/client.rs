//! How to reach ClickHouse ([`ClickHouseConfig`]) and what can go wrong there ([`Error`]).

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

/// How to reach ClickHouse: a server (≥ 24.8), ClickHouse Cloud, or the local front over chDB.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ClickHouseConfig {
    /// HTTP(S) URL.
    pub url: String,
    /// User.
    pub user: String,
    /// Password (never printed: `Debug` shows `[REDACTED]`).
    pub password: SecretString,
    /// Database holding pprofhouse's tables.
    pub database: String,
    /// Transport compression: `lz4` for a server, `none` for the local front.
    pub compression: Compression,
    /// Cluster name: migrations then use `ON CLUSTER`, Replicated engines and Distributed tables.
    pub cluster: Option<String>,
}

impl Default for ClickHouseConfig {
    fn default() -> Self {
        ClickHouseConfig {
            url: "http://127.0.0.1:8123".into(),
            user: "default".into(),
            password: SecretString::from(""),
            database: "pprofhouse".into(),
            compression: Compression::Lz4,
            cluster: None,
        }
    }
}

/// Transport compression of the HTTP interface.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// LZ4 blocks (ClickHouse's native HTTP compression).
    Lz4,
    /// No compression.
    None,
}

impl ClickHouseConfig {
    /// A client for the configured database.
    pub fn client(&self) -> clickhouse::Client {
        self.client_for(Some(&self.database))
    }

    /// A client without a default database (for `CREATE DATABASE`).
    pub fn client_for(&self, database: Option<&str>) -> clickhouse::Client {
        let mut c = clickhouse::Client::default().with_url(&self.url).with_user(&self.user).with_compression(match self.compression {
            Compression::Lz4 => clickhouse::Compression::Lz4,
            Compression::None => clickhouse::Compression::None,
        });
        let password = self.password.expose_secret();
        if !password.is_empty() {
            c = c.with_password(password);
        }
        if let Some(db) = database {
            c = c.with_database(db);
        }
        c
    }
}

/// A ClickHouse failure, classified: [`Error::is_transient`] tells a retry from a dead end.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The client or the server failed.
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    /// What was asked cannot be answered (a bad request of ours, a failed migration).
    #[error("{0}")]
    Invalid(String),
    /// Another write of some of the same profiles is still going on (its intent is fresh):
    /// worth a retry, by which time it has landed or gone quiet.
    #[error("{0}")]
    Busy(String),
}

/// Server exception codes worth retrying: the same request can succeed later.
const TRANSIENT_CODES: &[u32] = &[
    3,   // UNEXPECTED_END_OF_FILE (connection cut mid-request)
    159, // TIMEOUT_EXCEEDED
    164, // READONLY (replica in read-only mode, e.g. Keeper session lost)
    202, // TOO_MANY_SIMULTANEOUS_QUERIES
    209, // SOCKET_TIMEOUT
    210, // NETWORK_ERROR
    241, // MEMORY_LIMIT_EXCEEDED
    242, // TABLE_IS_READ_ONLY
    252, // TOO_MANY_PARTS (merges catch up)
    319, // UNKNOWN_STATUS_OF_INSERT
    425, // SYSTEM_ERROR
    999, // KEEPER_EXCEPTION
];

impl Error {
    /// The server's exception code (`Code: N.`), when the server answered with one.
    pub fn code(&self) -> Option<u32> {
        let Error::ClickHouse(e) = self else { return None };
        let s = e.to_string();
        let rest = &s[s.find("Code: ")? + 6..];
        rest[..rest.find(|c: char| !c.is_ascii_digit())?].parse().ok()
    }

    /// True when the insert touched more partitions than `max_partitions_per_insert_block`
    /// allows. ClickHouse reports it with the code of "too many parts" (252), but unlike that
    /// one it fails the same way every time: the batch must be cut, not retried.
    pub fn is_batch_shape(&self) -> bool {
        matches!(self, Error::ClickHouse(e) if e.to_string().contains("partitions for single INSERT block"))
    }

    /// True for failures worth retrying (network, timeouts, an overloaded or restarting server);
    /// false for errors in what was sent (bad data, types, constraints, sizes, the insert's
    /// shape), which fail the same way every time.
    pub fn is_transient(&self) -> bool {
        match self {
            Error::ClickHouse(e) => {
                if matches!(
                    e,
                    clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut | clickhouse::error::Error::Compression(_)
                ) {
                    return true;
                }
                if self.is_batch_shape() {
                    return false;
                }
                match self.code() {
                    Some(code) => TRANSIENT_CODES.contains(&code),
                    // No exception code: an HTTP-level answer (a proxy's 502/503/504, a restart).
                    None => e.to_string().contains("bad response: 50"),
                }
            }
            Error::Invalid(_) => false,
            Error::Busy(_) => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn password_never_shows_in_debug() {
        let cfg = ClickHouseConfig { password: SecretString::from("hunter2-secret"), ..Default::default() };
        let shown = format!("{cfg:?}");
        assert!(!shown.contains("hunter2-secret"), "{shown}");
    }

    #[test]
    fn unknown_keys_are_rejected() {
        let bad: Result<ClickHouseConfig, _> = serde_json::from_str(r#"{"urll": "http://x"}"#);
        assert!(bad.unwrap_err().to_string().contains("unknown field"));
        let good: ClickHouseConfig = serde_json::from_str(r#"{"url": "http://x", "compression": "none"}"#).unwrap();
        assert_eq!((good.url.as_str(), good.database.as_str(), good.compression), ("http://x", "pprofhouse", Compression::None));
    }

    #[test]
    fn exception_codes_are_classified() {
        let e = |s: &str| Error::ClickHouse(clickhouse::error::Error::BadResponse(s.into()));
        let parts = e("Code: 252. DB::Exception: Too many partitions for single INSERT block (more than 100). (TOO_MANY_PARTS)");
        assert_eq!(parts.code(), Some(252));
        assert!(parts.is_batch_shape() && !parts.is_transient());
        assert!(e("Code: 252. DB::Exception: Too many parts (3001) in all partitions in total. Merges are processing significantly slower than inserts").is_transient());
        let constraint = e("Code: 469. DB::Exception: Constraint `c` for table x is violated. (VIOLATED_CONSTRAINT)");
        assert_eq!(constraint.code(), Some(469));
        assert!(!constraint.is_transient());
        assert!(e("Code: 241. DB::Exception: Memory limit (total) exceeded").is_transient());
        assert!(e("bad response: 503 Service Unavailable").is_transient());
        assert!(!e("Code: 53. DB::Exception: Type mismatch").is_transient());
    }
}

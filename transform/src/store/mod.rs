//! ClickHouse: connection settings, schema migrations, the sink and the fleet queries.
//!
//! Everything goes through the `clickhouse` crate over HTTP(S) with RowBinary, so the same
//! code talks to a ClickHouse server (≥ 24.8), ClickHouse Cloud, or the project's local
//! ClickHouse-HTTP front over chDB (`infra/local/chfront.py`). The SQL itself lives in the
//! `pprofhouse-sql` crate (`sql/`).

pub mod migrate;
pub mod query;
pub mod sink;

use clap::{Args, ValueEnum};

/// How to reach ClickHouse. Flags, or the `PPROFHOUSE_CLICKHOUSE_*` environment.
#[derive(Debug, Clone, Args, serde::Deserialize)]
pub struct ClickHouseConfig {
    /// ClickHouse HTTP(S) URL.
    #[arg(long = "clickhouse-url", env = "PPROFHOUSE_CLICKHOUSE_URL", default_value = "http://127.0.0.1:8123")]
    pub url: String,
    /// ClickHouse user.
    #[arg(long = "clickhouse-user", env = "PPROFHOUSE_CLICKHOUSE_USER", default_value = "default")]
    pub user: String,
    /// ClickHouse password.
    #[arg(long = "clickhouse-password", env = "PPROFHOUSE_CLICKHOUSE_PASSWORD", default_value = "", hide_env_values = true)]
    pub password: String,
    /// Database holding pprofhouse's tables.
    #[arg(long = "clickhouse-database", env = "PPROFHOUSE_CLICKHOUSE_DATABASE", default_value = "pprofhouse")]
    pub database: String,
    /// Transport compression: `lz4` for a ClickHouse server, `none` for the local front.
    #[arg(long = "clickhouse-compression", env = "PPROFHOUSE_CLICKHOUSE_COMPRESSION", default_value = "lz4")]
    pub compression: CompressionKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressionKind {
    Lz4,
    None,
}

/// ClickHouse errors, with the server's exception code when there is one.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("clickhouse: {0}")]
    ClickHouse(#[from] clickhouse::error::Error),
    #[error("{0}")]
    Invalid(String),
}

impl StoreError {
    /// True for failures worth retrying (network, server unavailable, timeouts), false for
    /// errors in what we sent.
    pub fn is_transient(&self) -> bool {
        match self {
            StoreError::ClickHouse(e) => matches!(
                e,
                clickhouse::error::Error::Network(_) | clickhouse::error::Error::TimedOut | clickhouse::error::Error::Compression(_)
            ) || {
                let s = e.to_string();
                // Server-side: TOO_MANY_PARTS(252), TIMEOUT_EXCEEDED(159), NETWORK_ERROR(210),
                // SOCKET_TIMEOUT(209), TOO_MANY_SIMULTANEOUS_QUERIES(202), MEMORY_LIMIT(241).
                ["Code: 252.", "Code: 159.", "Code: 210.", "Code: 209.", "Code: 202.", "Code: 241.", "bad response: 50"]
                    .iter()
                    .any(|c| s.contains(c))
            },
            StoreError::Invalid(_) => false,
        }
    }
}

impl ClickHouseConfig {
    /// A client for the configured database.
    pub fn client(&self) -> clickhouse::Client {
        self.client_for(Some(&self.database))
    }

    /// A client without a default database (for `CREATE DATABASE`).
    pub fn client_for(&self, database: Option<&str>) -> clickhouse::Client {
        let mut c = clickhouse::Client::default()
            .with_url(&self.url)
            .with_user(&self.user)
            .with_compression(match self.compression {
                CompressionKind::Lz4 => clickhouse::Compression::Lz4,
                CompressionKind::None => clickhouse::Compression::None,
            });
        if !self.password.is_empty() {
            c = c.with_password(&self.password);
        }
        if let Some(db) = database {
            c = c.with_database(db);
        }
        c
    }
}

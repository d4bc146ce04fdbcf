//! `pprofhouse migrate`: applies the numbered migrations of `sql/migrations/` that the
//! database has not recorded yet, in order, and records each one in `schema_migrations`.
//! Running it again applies nothing. Every statement is `IF NOT EXISTS`, so a migration that
//! failed half-way can simply be run again.

use clickhouse::Row;
use serde::{Deserialize, Serialize};

use super::{quote_ident, render, RenderOptions, MIGRATIONS};
use crate::{ClickHouseConfig, Error};

#[derive(Debug, Row, Serialize, Deserialize)]
struct Applied {
    version: u32,
    name: String,
}

/// Applies pending migrations; returns the (version, name) of those applied now.
pub async fn migrate(cfg: &ClickHouseConfig, opts: &RenderOptions) -> Result<Vec<(u32, String)>, Error> {
    let root = cfg.client_for(None);
    let db = quote_ident(&opts.database);
    let on_cluster = opts.cluster.as_deref().map(|c| format!(" ON CLUSTER {}", quote_ident(c))).unwrap_or_default();
    root.query(&format!("CREATE DATABASE IF NOT EXISTS {db}{on_cluster}")).execute().await?;
    let engine = if opts.cluster.is_some() { "ReplicatedReplacingMergeTree(applied_at)" } else { "ReplacingMergeTree(applied_at)" };
    root.query(&format!(
        "CREATE TABLE IF NOT EXISTS {db}.schema_migrations{on_cluster} \
         (version UInt32, name String, applied_at DateTime64(3, 'UTC') DEFAULT now64(3)) \
         ENGINE = {engine} ORDER BY version"
    ))
    .execute()
    .await?;
    let applied: Vec<Applied> =
        root.query(&format!("SELECT version, name FROM {db}.schema_migrations FINAL ORDER BY version")).fetch_all().await?;
    let mut done = Vec::new();
    for m in MIGRATIONS {
        if applied.iter().any(|a| a.version == m.version) {
            continue;
        }
        for stmt in render(m.template, opts) {
            root.query(&stmt).execute().await.map_err(|e| Error::Invalid(format!("migration {} failed: {e}\n{stmt}", m.name)))?;
        }
        root.query(&format!("INSERT INTO {db}.schema_migrations (version, name) VALUES (?, ?)"))
            .bind(m.version)
            .bind(m.name)
            .execute()
            .await?;
        tracing::info!(version = m.version, name = m.name, "migration applied");
        done.push((m.version, m.name.to_string()));
    }
    Ok(done)
}

/// The migrations `client`'s database has not recorded (all of them when it has no
/// `schema_migrations`). The writers call it at start: a worker of a newer release against an
/// older schema would otherwise have every batch refused (an unknown table or column, a
/// permanent error) and dead-letter good profiles.
pub async fn pending(client: &clickhouse::Client) -> Result<Vec<&'static super::Migration>, Error> {
    let applied: Vec<u32> = match client.query("SELECT version FROM schema_migrations FINAL").fetch_all().await.map_err(Error::from) {
        Ok(v) => v,
        // UNKNOWN_TABLE, UNKNOWN_DATABASE: never migrated.
        Err(e) if matches!(e.code(), Some(60 | 81)) => Vec::new(),
        Err(e) => return Err(e),
    };
    Ok(MIGRATIONS.iter().filter(|m| !applied.contains(&m.version)).collect())
}

/// `Ok` when `client`'s database (named `database`, for the message) has recorded every
/// migration; otherwise an error naming the missing ones and the command that applies them.
pub async fn require_migrated(client: &clickhouse::Client, database: &str) -> Result<(), Error> {
    let missing = pending(client).await?;
    if missing.is_empty() {
        return Ok(());
    }
    let names: Vec<&str> = missing.iter().map(|m| m.name).collect();
    Err(Error::Invalid(format!(
        "the ClickHouse database `{database}` lacks migration(s) {}: run `pprofhouse migrate` first",
        names.join(", ")
    )))
}

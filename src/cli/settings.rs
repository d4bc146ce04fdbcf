//! One typed configuration, in three layers: the TOML file (`--config`), under the
//! environment (`PPROFHOUSE_*`), under the flags. Clap merges the flags with the environment
//! (each flag names its variable); what it found is serialized into a TOML table laid over the
//! file's, and the result is deserialized into [`Settings`], where every section rejects
//! unknown keys and fills what nobody gave with the libraries' defaults. No environment
//! variable is ever written.

use std::path::{Path, PathBuf};

use anyhow::Context;
use pprofhouse_ingest::{KafkaConfig, LayoutConfig, S3Config};
use pprofhouse_sql::sink::SinkConfig;
use pprofhouse_sql::{ClickHouseConfig, Retention};
use pprofhouse_transform::pprof::Limits;
use serde::{Deserialize, Serialize};

/// Everything the commands can be configured with; a TOML file has these sections.
#[derive(Debug, Default, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Settings {
    /// `[clickhouse]`: connection.
    pub clickhouse: ClickHouseConfig,
    /// `[kafka]`: brokers, topics, client properties.
    pub kafka: KafkaConfig,
    /// `[s3]`: endpoint, region, bucket.
    pub s3: S3Config,
    /// `[layout]`: how object keys give profile metadata.
    pub layout: LayoutConfig,
    /// `[sink]`: batching.
    pub sink: SinkConfig,
    /// `[limits]`: what a profile may cost.
    pub limits: Limits,
    /// `[worker]`: the consumer.
    pub worker: crate::worker::Config,
    /// `[retention]`: TTLs the migrations set.
    pub retention: Retention,
    /// `[backfill]`: listing existing objects.
    pub backfill: BackfillSettings,
    /// `[serve]`: profefe's HTTP API.
    pub serve: crate::serve::Config,
    /// `[report]`: the report's statistics, cost model and delivery limits.
    pub report: crate::report::ReportSettings,
}

/// `[backfill]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BackfillSettings {
    /// Objects per second (0: unlimited).
    pub rate: f64,
    /// Checkpoint file; default `$PPROFHOUSE_CACHE/backfill-checkpoint.json`.
    pub checkpoint: Option<PathBuf>,
}

impl Default for BackfillSettings {
    fn default() -> Self {
        BackfillSettings { rate: 1000.0, checkpoint: None }
    }
}

impl Settings {
    /// Reads `file` (if any), lays `overlay` (the flags and environment clap found, as a
    /// serializable struct of options) over it, and checks the result.
    pub fn load(file: Option<&Path>, overlay: &impl Serialize) -> anyhow::Result<Settings> {
        let mut table = match file {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("config file {}", path.display()))?;
                text.parse::<toml::Table>().with_context(|| format!("config file {}", path.display()))?
            }
            None => toml::Table::new(),
        };
        let over = toml::Table::try_from(overlay).context("flags")?;
        merge(&mut table, over);
        let settings = Settings::deserialize(toml::Value::Table(table)).map_err(|e| {
            let at = file.map(|p| format!("config file {}", p.display())).unwrap_or_else(|| "settings".into());
            anyhow::anyhow!("{at}: {}", e.message())
        })?;
        Ok(settings)
    }
}

/// Lays `over` onto `base`: tables merge key by key, any other value replaces.
fn merge(base: &mut toml::Table, over: toml::Table) {
    for (k, v) in over {
        match (base.get_mut(&k), v) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) => merge(b, o),
            (_, toml::Value::Table(o)) if o.is_empty() => {}
            (_, v) => {
                base.insert(k, v);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Serialize)]
    struct Over {
        clickhouse: Ch,
    }
    #[derive(Serialize)]
    struct Ch {
        #[serde(skip_serializing_if = "Option::is_none")]
        url: Option<String>,
    }

    fn write(text: &str) -> tempfile::NamedTempFile {
        let f = tempfile::NamedTempFile::new().unwrap();
        std::fs::write(f.path(), text).unwrap();
        f
    }

    #[test]
    fn flags_win_over_the_file_which_wins_over_defaults() {
        let f = write(
            "[clickhouse]\nurl = \"http://file:8123\"\ndatabase = \"fromfile\"\n[kafka.properties]\n\"security.protocol\" = \"SASL_SSL\"\n",
        );
        let s = Settings::load(Some(f.path()), &Over { clickhouse: Ch { url: Some("http://flag:8123".into()) } }).unwrap();
        assert_eq!(s.clickhouse.url, "http://flag:8123");
        assert_eq!(s.clickhouse.database, "fromfile");
        assert_eq!(s.kafka.properties.get("security.protocol").map(String::as_str), Some("SASL_SSL"));
        assert_eq!(s.sink.batch_rows, SinkConfig::default().batch_rows);
        let s = Settings::load(Some(f.path()), &Over { clickhouse: Ch { url: None } }).unwrap();
        assert_eq!(s.clickhouse.url, "http://file:8123");
    }

    #[test]
    fn unknown_keys_are_errors_that_name_the_file() {
        let f = write("[clickhouse]\nurll = \"x\"\n");
        let e = Settings::load(Some(f.path()), &Over { clickhouse: Ch { url: None } }).unwrap_err().to_string();
        assert!(e.contains("unknown field `urll`") && e.contains("config file"), "{e}");
        let f = write("[clikhouse]\nurl = \"x\"\n");
        assert!(Settings::load(Some(f.path()), &Over { clickhouse: Ch { url: None } }).is_err());
    }
}

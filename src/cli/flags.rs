//! The flags of the settings sections, each with its `PPROFHOUSE_*` variable. Every field is an
//! option with no clap default: what nobody gave stays unset here and falls through to the
//! config file, then to the libraries' defaults (named in each help text). Each group
//! serializes into its TOML section for [`super::settings::Settings::load`].

use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use serde::{Serialize, Serializer};

fn secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

fn expose<S: Serializer>(v: &Option<SecretString>, s: S) -> Result<S::Ok, S::Error> {
    match v {
        Some(p) => s.serialize_str(p.expose_secret()),
        None => s.serialize_none(),
    }
}

fn duration(s: &str) -> Result<String, String> {
    humantime::parse_duration(s).map(|_| s.to_string()).map_err(|e| format!("{s:?}: {e} (e.g. 500ms, 2s, 1m)"))
}

/// `[clickhouse]`.
#[derive(Debug, Default, Args, Serialize)]
pub struct ClickHouseFlags {
    /// ClickHouse HTTP(S) URL [default: http://127.0.0.1:8123].
    #[arg(long = "clickhouse-url", env = "PPROFHOUSE_CLICKHOUSE_URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// ClickHouse user [default: default].
    #[arg(long = "clickhouse-user", env = "PPROFHOUSE_CLICKHOUSE_USER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// ClickHouse password (prefer the variable or the config file to the flag).
    #[arg(long = "clickhouse-password", env = "PPROFHOUSE_CLICKHOUSE_PASSWORD", hide_env_values = true, value_parser = secret)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose")]
    pub password: Option<SecretString>,
    /// Database holding pprofhouse's tables [default: pprofhouse].
    #[arg(long = "clickhouse-database", env = "PPROFHOUSE_CLICKHOUSE_DATABASE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub database: Option<String>,
    /// Transport compression: lz4 for a server, none for the local front [default: lz4].
    #[arg(long = "clickhouse-compression", env = "PPROFHOUSE_CLICKHOUSE_COMPRESSION", value_parser = ["lz4", "none"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub compression: Option<String>,
    /// Cluster: migrations use ON CLUSTER, Replicated engines, `_local` and Distributed tables.
    #[arg(long = "clickhouse-cluster", visible_alias = "cluster", env = "PPROFHOUSE_CLICKHOUSE_CLUSTER")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
}

/// `[kafka]`.
#[derive(Debug, Default, Args, Serialize)]
pub struct KafkaFlags {
    /// Bootstrap brokers, host:port[,host:port...].
    #[arg(long = "kafka-brokers", env = "PPROFHOUSE_KAFKA_BROKERS", value_name = "HOST:PORT,...")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub brokers: Option<String>,
    /// Profiles topic [default: pprofhouse.profiles].
    #[arg(long = "kafka-topic", env = "PPROFHOUSE_KAFKA_TOPIC")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
    /// Dead-letter topic [default: pprofhouse.deadletter].
    #[arg(long = "kafka-dlq-topic", env = "PPROFHOUSE_KAFKA_DLQ_TOPIC")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dlq_topic: Option<String>,
    /// Kafka client id [default: pprofhouse].
    #[arg(long = "kafka-client-id", env = "PPROFHOUSE_KAFKA_CLIENT_ID")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_id: Option<String>,
    /// Delivery timeout in ms (librdkafka message.timeout.ms) [default: 30000].
    #[arg(long = "kafka-timeout-ms", env = "PPROFHOUSE_KAFKA_TIMEOUT_MS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_ms: Option<u64>,
    /// Extra librdkafka property KEY=VALUE (repeatable; variable: comma-separated), e.g.
    /// security.protocol=SASL_SSL. Put the SASL password in --kafka-sasl-password.
    #[arg(long = "kafka-property", env = "PPROFHOUSE_KAFKA_PROPERTIES", hide_env_values = true, value_name = "KEY=VALUE", value_delimiter = ',', value_parser = pprofhouse_ingest::config::parse_key_value)]
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "properties")]
    pub properties: Vec<(String, String)>,
    /// Extra librdkafka property for the producers only (trigger, backfill, dead letters),
    /// over --kafka-property, e.g. linger.ms=20.
    #[arg(long = "kafka-producer-property", env = "PPROFHOUSE_KAFKA_PRODUCER_PROPERTIES", hide_env_values = true, value_name = "KEY=VALUE", value_delimiter = ',', value_parser = pprofhouse_ingest::config::parse_key_value)]
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "properties")]
    pub producer_properties: Vec<(String, String)>,
    /// Extra librdkafka property for the worker's consumer only, over --kafka-property, e.g.
    /// session.timeout.ms=10000.
    #[arg(long = "kafka-consumer-property", env = "PPROFHOUSE_KAFKA_CONSUMER_PROPERTIES", hide_env_values = true, value_name = "KEY=VALUE", value_delimiter = ',', value_parser = pprofhouse_ingest::config::parse_key_value)]
    #[serde(skip_serializing_if = "Vec::is_empty", serialize_with = "properties")]
    pub consumer_properties: Vec<(String, String)>,
    /// SASL password (any characters, commas included; never printed).
    #[arg(long = "kafka-sasl-password", env = "PPROFHOUSE_KAFKA_SASL_PASSWORD", hide_env_values = true, value_parser = secret)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose")]
    pub sasl_password: Option<SecretString>,
    /// AWS Secrets Manager secret (ARN or name) with the SASL password, or MSK's
    /// {"username","password"} JSON; read once at start (the Lambda: at each cold start).
    #[arg(long = "kafka-sasl-secret", env = "PPROFHOUSE_KAFKA_SASL_SECRET", value_name = "ARN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sasl_secret: Option<String>,
}

fn properties<S: Serializer>(v: &[(String, String)], s: S) -> Result<S::Ok, S::Error> {
    s.collect_map(v.iter().filter(|(k, _)| !k.is_empty()).map(|(k, v)| (k, v)))
}

/// `[s3]`.
#[derive(Debug, Default, Args, Serialize)]
pub struct S3Flags {
    /// Endpoint of an S3-compatible store (e.g. http://127.0.0.1:19000); unset for AWS.
    #[arg(long = "s3-endpoint", env = "PPROFHOUSE_S3_ENDPOINT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Region [default: us-east-1].
    #[arg(long = "s3-region", env = "AWS_REGION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// Bucket.
    #[arg(long = "s3-bucket", visible_alias = "bucket", env = "PPROFHOUSE_S3_BUCKET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub bucket: Option<String>,
    /// Path-style addressing [default: on with --s3-endpoint].
    #[arg(long = "s3-path-style", env = "PPROFHOUSE_S3_PATH_STYLE", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub path_style: Option<bool>,
}

/// `[layout]`.
#[derive(Debug, Default, Args, Serialize)]
pub struct LayoutFlags {
    /// Key template tried after profefe's layout, e.g. {service}/{type}/{yyyy}/{mm}/{dd}/{name}
    /// (repeatable; variable: `;`-separated).
    #[arg(long = "layout", env = "PPROFHOUSE_INGEST_LAYOUTS", value_name = "TEMPLATE", value_delimiter = ';', value_parser = template)]
    #[serde(rename = "templates", skip_serializing_if = "Vec::is_empty")]
    pub templates: Vec<String>,
    /// Parse profefe P0. keys [default: true].
    #[arg(long = "profefe-keys", env = "PPROFHOUSE_INGEST_PROFEFE", value_name = "BOOL")]
    #[serde(rename = "profefe", skip_serializing_if = "Option::is_none")]
    pub profefe: Option<bool>,
    /// Service for objects no layout matches; unset: they are dead-lettered.
    #[arg(long = "default-service", env = "PPROFHOUSE_INGEST_DEFAULT_SERVICE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_service: Option<String>,
    /// Profile type when a layout gives none [default: unknown].
    #[arg(long = "default-type", env = "PPROFHOUSE_INGEST_DEFAULT_TYPE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub default_type: Option<String>,
    /// HEAD objects no key layout matches, for profefe-style object metadata [default: true].
    #[arg(long = "head-objects", env = "PPROFHOUSE_INGEST_HEAD_OBJECTS", value_name = "BOOL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub head_objects: Option<bool>,
}

/// A template checked as it is given (an empty one, as from an empty variable, means none).
fn template(s: &str) -> Result<String, String> {
    if !s.trim().is_empty() {
        pprofhouse_ingest::layout::Template::parse(s.trim()).map_err(|e| e.to_string())?;
    }
    Ok(s.trim().to_string())
}

/// `[sink]`.
#[derive(Debug, Default, Args, Serialize)]
pub struct SinkFlags {
    /// Flush when the batch holds this many function rows [default: 200000].
    #[arg(long, env = "PPROFHOUSE_BATCH_ROWS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_rows: Option<usize>,
    /// Flush when the batch holds about this many bytes [default: 67108864].
    #[arg(long, env = "PPROFHOUSE_BATCH_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batch_bytes: Option<usize>,
    /// Flush a non-empty batch at the latest this long after its first profile [default: 2s].
    #[arg(long = "batch-linger", env = "PPROFHOUSE_BATCH_LINGER", value_parser = duration)]
    #[serde(rename = "linger", skip_serializing_if = "Option::is_none")]
    pub linger: Option<String>,
    /// Store stacks for flame graphs [default: true].
    #[arg(long = "store-stacks", env = "PPROFHOUSE_STORE_STACKS", value_name = "BOOL")]
    #[serde(rename = "stacks", skip_serializing_if = "Option::is_none")]
    pub stacks: Option<bool>,
    /// Flush when the batch spans this many days (daily partitions; ClickHouse refuses an
    /// INSERT into more than max_partitions_per_insert_block, default 100) [default: 90].
    #[arg(long = "batch-max-days", env = "PPROFHOUSE_BATCH_MAX_DAYS")]
    #[serde(rename = "max_days", skip_serializing_if = "Option::is_none")]
    pub max_days: Option<usize>,
    /// A write attempt whose profiles are still not stored, unrenewed this long, is taken for
    /// abandoned (its writer stopped half-way) and taken back out by the next write of any of
    /// them; a younger one is waited for [default: 2m].
    #[arg(long = "attempt-abandoned-after", env = "PPROFHOUSE_ATTEMPT_ABANDONED_AFTER", value_parser = duration)]
    #[serde(rename = "abandoned_after", skip_serializing_if = "Option::is_none")]
    pub abandoned_after: Option<String>,
}

/// `[limits]`: what one profile may cost (over a limit: an error naming it; in the worker, a
/// dead letter `over_limit`).
#[derive(Debug, Default, Args, Serialize)]
pub struct LimitFlags {
    /// Largest decompressed profile accepted, in bytes [default: 268435456].
    #[arg(long, env = "PPROFHOUSE_MAX_DECOMPRESSED_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_decompressed_bytes: Option<usize>,
    /// Most samples in a profile [default: 5000000].
    #[arg(long, env = "PPROFHOUSE_MAX_SAMPLES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_samples: Option<usize>,
    /// Most locations [default: 5000000].
    #[arg(long, env = "PPROFHOUSE_MAX_LOCATIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_locations: Option<usize>,
    /// Most functions [default: 2000000].
    #[arg(long, env = "PPROFHOUSE_MAX_FUNCTIONS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_functions: Option<usize>,
    /// Most strings in the string table [default: 5000000].
    #[arg(long, env = "PPROFHOUSE_MAX_STRINGS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_strings: Option<usize>,
    /// Most sample types [default: 64].
    #[arg(long, env = "PPROFHOUSE_MAX_SAMPLE_TYPES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_sample_types: Option<usize>,
    /// Most lines (inlined frames) in one location [default: 512].
    #[arg(long, env = "PPROFHOUSE_MAX_LINES_PER_LOCATION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_lines_per_location: Option<usize>,
    /// Deepest stack, in locations [default: 8192].
    #[arg(long, env = "PPROFHOUSE_MAX_STACK_DEPTH")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_stack_depth: Option<usize>,
    /// Most frame visits explode may make (Σ over samples of the lines of each location) [default: 500000000].
    #[arg(long, env = "PPROFHOUSE_MAX_EXPANDED_FRAMES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_expanded_frames: Option<u64>,
    /// Most function × sample type cells [default: 16000000].
    #[arg(long, env = "PPROFHOUSE_MAX_FUNCTION_CELLS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_function_cells: Option<u64>,
    /// Longest drop_frames/keep_frames pattern a profile may carry, in bytes [default: 65536].
    #[arg(long, env = "PPROFHOUSE_MAX_FRAME_FILTER_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_frame_filter_bytes: Option<usize>,
    /// Most memory the automaton of a drop_frames/keep_frames pattern may take, in bytes [default: 4194304].
    #[arg(long, env = "PPROFHOUSE_MAX_FRAME_FILTER_DFA_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_frame_filter_dfa_bytes: Option<usize>,
}

/// `[worker]`.
#[derive(Debug, Default, Args, Serialize)]
pub struct WorkerFlags {
    /// Consumer group [default: pprofhouse-worker].
    #[arg(long, env = "PPROFHOUSE_KAFKA_GROUP")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub group: Option<String>,
    /// Objects fetched and exploded concurrently [default: 16].
    #[arg(long, env = "PPROFHOUSE_CONCURRENCY")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub concurrency: Option<usize>,
    /// Largest object fetched from S3, in bytes; larger ones are dead-lettered [default: 67108864].
    #[arg(long, env = "PPROFHOUSE_MAX_OBJECT_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_object_bytes: Option<u64>,
    /// Serve Prometheus /metrics and /healthz here (127.0.0.1:0: any free port).
    #[arg(long, env = "PPROFHOUSE_METRICS_ADDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub metrics_addr: Option<String>,
    /// Longest pause between retries of a transient failure [default: 30s].
    #[arg(long, env = "PPROFHOUSE_MAX_BACKOFF", value_parser = duration)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
    /// Retries of one transient failure before giving up on it (objects: dead letter
    /// `retries_exhausted`; inserts: liveness fails, retrying goes on) [default: 8].
    #[arg(long, env = "PPROFHOUSE_RETRY_BUDGET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<usize>,
    /// In-flight memory budget in bytes of decoded profile [default: 67108864].
    #[arg(long, env = "PPROFHOUSE_MAX_INFLIGHT_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_inflight_bytes: Option<u64>,
    /// Decode buffers kept from one profile for the next, in bytes in all; 0 keeps none
    /// [default: 33554432].
    #[arg(long, env = "PPROFHOUSE_DECODE_POOL_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub decode_pool_bytes: Option<u64>,
    /// Liveness fails after this long without progress while there is lag [default: 5m].
    #[arg(long, env = "PPROFHOUSE_STALL_AFTER", value_parser = duration)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stall_after: Option<String>,
}

/// `[retention]`.
#[derive(Debug, Default, Args, Serialize)]
pub struct RetentionFlags {
    /// Retention of `profiles`, in days [default: 90].
    #[arg(long = "ttl-profiles-days", env = "PPROFHOUSE_TTL_PROFILES_DAYS")]
    #[serde(rename = "profiles_days", skip_serializing_if = "Option::is_none")]
    pub profiles_days: Option<u32>,
    /// Retention of the raw tables (function_values, stacks, stack_values), in days [default: 30].
    #[arg(long = "ttl-raw-days", env = "PPROFHOUSE_TTL_RAW_DAYS")]
    #[serde(rename = "raw_days", skip_serializing_if = "Option::is_none")]
    pub raw_days: Option<u32>,
    /// Retention of the hourly rollup, in days [default: 180].
    #[arg(long = "ttl-hourly-days", env = "PPROFHOUSE_TTL_HOURLY_DAYS")]
    #[serde(rename = "hourly_days", skip_serializing_if = "Option::is_none")]
    pub hourly_days: Option<u32>,
    /// Retention of the daily rollup, in days [default: 730].
    #[arg(long = "ttl-daily-days", env = "PPROFHOUSE_TTL_DAILY_DAYS")]
    #[serde(rename = "daily_days", skip_serializing_if = "Option::is_none")]
    pub daily_days: Option<u32>,
}

/// `[backfill]`.
#[derive(Debug, Default, Args, Serialize)]
pub struct BackfillFlags {
    /// Objects per second, 0 for unlimited [default: 1000].
    #[arg(long, env = "PPROFHOUSE_BACKFILL_RATE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rate: Option<f64>,
    /// Checkpoint file [default: $PPROFHOUSE_CACHE/backfill-checkpoint.json].
    #[arg(long, env = "PPROFHOUSE_BACKFILL_CHECKPOINT")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checkpoint: Option<std::path::PathBuf>,
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser, Serialize)]
    struct Cli {
        #[command(flatten)]
        clickhouse: ClickHouseFlags,
        #[command(flatten)]
        kafka: KafkaFlags,
    }

    #[test]
    fn the_sasl_secret_reference_reaches_the_kafka_settings() {
        let arn = "arn:aws:secretsmanager:eu-west-1:123456789012:secret:AmazonMSK_pprofhouse-AbCdEf";
        let cli = Cli::try_parse_from(["x", "--kafka-brokers", "b:9096", "--kafka-sasl-secret", arn]).unwrap();
        let s = crate::cli::settings::Settings::load(None, &cli).unwrap();
        assert_eq!(s.kafka.sasl_secret.as_deref(), Some(arn));
        assert!(s.kafka.sasl_password.is_none(), "read at start, not at parse time");
    }

    #[test]
    fn secrets_stay_out_of_help_and_debug() {
        let cli = Cli::try_parse_from([
            "x",
            "--clickhouse-password",
            "ch-secret-1",
            "--kafka-sasl-password",
            "a,b,c-secret",
            "--kafka-property",
            "security.protocol=SASL_SSL",
            "--kafka-producer-property",
            "linger.ms=20",
            "--kafka-consumer-property",
            "session.timeout.ms=10000",
        ])
        .unwrap();
        let shown = format!("{:?} {:?}", cli.clickhouse, cli.kafka);
        assert!(!shown.contains("ch-secret-1") && !shown.contains("a,b,c-secret"), "{shown}");
        // The password keeps its commas (it is not split like the properties).
        let t = toml::Table::try_from(&cli).unwrap();
        assert_eq!(t["kafka"]["sasl_password"].as_str(), Some("a,b,c-secret"));
        assert_eq!(t["kafka"]["properties"]["security.protocol"].as_str(), Some("SASL_SSL"));
        assert_eq!(t["kafka"]["producer_properties"]["linger.ms"].as_str(), Some("20"));
        assert_eq!(t["kafka"]["consumer_properties"]["session.timeout.ms"].as_str(), Some("10000"));
        let help = <Cli as clap::CommandFactory>::command().render_long_help().to_string();
        assert!(help.contains("PPROFHOUSE_CLICKHOUSE_PASSWORD") && !help.contains("ch-secret-1"));
    }
}

/// `[serve]`: profefe's HTTP API.
#[derive(Debug, Default, Args, Serialize)]
pub struct ServeFlags {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long = "listen", env = "PPROFHOUSE_SERVE_LISTEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub listen: Option<String>,
    /// Bearer token every request must carry (prefer the variable or the config file to the
    /// flag) [default: none, no authentication].
    #[arg(long = "serve-token", env = "PPROFHOUSE_SERVE_TOKEN", hide_env_values = true, value_parser = secret)]
    #[serde(skip_serializing_if = "Option::is_none", serialize_with = "expose")]
    pub token: Option<SecretString>,
    /// Largest request body (POST /api/0/profiles), in bytes [default: 33554432].
    #[arg(long = "max-body-bytes", env = "PPROFHOUSE_SERVE_MAX_BODY_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Most profiles one GET /api/0/profiles lists [default: 1000].
    #[arg(long = "max-list", env = "PPROFHOUSE_SERVE_MAX_LIST")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_list: Option<u32>,
    /// Largest stored object GET /api/0/profiles/{id} returns, in bytes [default: 268435456].
    #[arg(long = "max-serve-object-bytes", env = "PPROFHOUSE_SERVE_MAX_OBJECT_BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_object_bytes: Option<u64>,
    /// Most distinct stacks a merged profile may hold (more: 400 asking for a narrower
    /// selection) [default: 5000000].
    #[arg(long = "max-merge-stacks", env = "PPROFHOUSE_MAX_MERGE_STACKS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_merge_stacks: Option<u64>,
}

/// `[report]`.
#[derive(Debug, Default, Args, Serialize)]
pub struct ReportFlags {
    /// Price of one core-hour in USD, for the yearly cost of CPU [default: 0.0425].
    #[arg(long, env = "PPROFHOUSE_REPORT_PRICE_PER_CORE_HOUR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub price_per_core_hour: Option<f64>,
    /// Seconds in a year, for annualised core-hours [default: 31536000].
    #[arg(long, env = "PPROFHOUSE_REPORT_SECONDS_PER_YEAR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_per_year: Option<f64>,
    /// False-discovery rate of the movers (Benjamini–Hochberg) [default: 0.05].
    #[arg(long, env = "PPROFHOUSE_REPORT_FDR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fdr: Option<f64>,
    /// Smallest change of share, in percentage points, that makes a mover [default: 0.1].
    #[arg(long, env = "PPROFHOUSE_REPORT_MIN_SHARE_POINTS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_share_points: Option<f64>,
    /// Smallest relative change of share (|ratio − 1|) that makes a mover [default: 0.05].
    #[arg(long, env = "PPROFHOUSE_REPORT_MIN_RELATIVE_CHANGE")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_relative_change: Option<f64>,
    /// Most movers listed [default: 20].
    #[arg(long, env = "PPROFHOUSE_REPORT_MAX_MOVERS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_movers: Option<usize>,
    /// Services listed per function [default: 3].
    #[arg(long, env = "PPROFHOUSE_REPORT_SERVICES_PER_FUNCTION")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub services_per_function: Option<u32>,
    /// Timeout of one webhook or S3 request [default: 10s].
    #[arg(long = "report-timeout", env = "PPROFHOUSE_REPORT_TIMEOUT", value_parser = duration)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<String>,
    /// Retries of a webhook POST that failed transiently (connection, 429, 5xx) [default: 4].
    #[arg(long = "report-retry-budget", env = "PPROFHOUSE_REPORT_RETRY_BUDGET")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry_budget: Option<usize>,
    /// Longest pause between webhook retries [default: 10s].
    #[arg(long = "report-max-backoff", env = "PPROFHOUSE_REPORT_MAX_BACKOFF", value_parser = duration)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_backoff: Option<String>,
}

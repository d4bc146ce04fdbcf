//! Settings shared by the trigger, backfill and the worker: Kafka, S3 and key layouts. Each is a
//! clap `Args` struct (flatten it into a command) whose values also come from `PPROFHOUSE_*` /
//! the standard `AWS_*` environment variables.
use std::time::Duration;

use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};

use crate::layout::{Defaults, LayoutError, Resolver, Template};

/// Default profiles topic.
pub const DEFAULT_TOPIC: &str = "pprofhouse.profiles";
/// Default dead-letter topic.
pub const DEFAULT_DLQ_TOPIC: &str = "pprofhouse.deadletter";

/// Kafka connection and topics.
#[derive(clap::Args, Clone, Debug)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    #[arg(
        long = "kafka-brokers",
        env = "PPROFHOUSE_KAFKA_BROKERS",
        value_name = "HOST:PORT,..."
    )]
    pub brokers: String,
    /// Profiles topic.
    #[arg(long = "kafka-topic", env = "PPROFHOUSE_KAFKA_TOPIC", default_value = DEFAULT_TOPIC)]
    pub topic: String,
    /// Dead-letter topic (unmatched or unreadable objects, with the reason).
    #[arg(long = "kafka-dlq-topic", env = "PPROFHOUSE_KAFKA_DLQ_TOPIC", default_value = DEFAULT_DLQ_TOPIC)]
    pub dlq_topic: String,
    /// Kafka client id.
    #[arg(
        long = "kafka-client-id",
        env = "PPROFHOUSE_KAFKA_CLIENT_ID",
        default_value = "pprofhouse"
    )]
    pub client_id: String,
    /// How long a message may take to be delivered (librdkafka `message.timeout.ms`); past it the
    /// send fails (and so does the Lambda invocation).
    #[arg(
        long = "kafka-timeout-ms",
        env = "PPROFHOUSE_KAFKA_TIMEOUT_MS",
        default_value_t = 30_000
    )]
    pub timeout_ms: u64,
    /// Extra librdkafka properties `KEY=VALUE` (repeatable; env: comma-separated), e.g.
    /// `security.protocol=SASL_SSL`, `sasl.mechanisms=SCRAM-SHA-512`, `sasl.username=...`.
    #[arg(long = "kafka-property", env = "PPROFHOUSE_KAFKA_PROPERTIES", value_name = "KEY=VALUE", value_delimiter = ',', value_parser = parse_key_value)]
    pub extra: Vec<(String, String)>,
}

impl KafkaConfig {
    /// Defaults for everything but the brokers.
    pub fn new(brokers: impl Into<String>) -> Self {
        KafkaConfig {
            brokers: brokers.into(),
            topic: DEFAULT_TOPIC.to_string(),
            dlq_topic: DEFAULT_DLQ_TOPIC.to_string(),
            client_id: "pprofhouse".to_string(),
            timeout_ms: 30_000,
            extra: Vec::new(),
        }
    }

    /// The delivery timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// A librdkafka config with the brokers, client id and extra properties (no producer or
    /// consumer settings).
    pub fn client_config(&self) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers)
            .set("client.id", &self.client_id);
        for (k, v) in self.extra.iter().filter(|(k, _)| !k.is_empty()) {
            c.set(k, v);
        }
        c
    }
}

/// Parse `KEY=VALUE`.
pub fn parse_key_value(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim().to_string(), v.to_string())),
        // An empty variable (PPROFHOUSE_KAFKA_PROPERTIES=) means none; skipped when used.
        None if s.trim().is_empty() => Ok((String::new(), String::new())),
        _ => Err(format!("expected KEY=VALUE, got {s:?}")),
    }
}

/// S3 endpoint, region and bucket. Credentials come from the standard AWS chain
/// (`AWS_ACCESS_KEY_ID`/`AWS_SECRET_ACCESS_KEY`/`AWS_SESSION_TOKEN`, profiles, SSO, the Lambda or
/// EC2 role).
#[derive(clap::Args, Clone, Debug, Default)]
pub struct S3Config {
    /// Custom endpoint for S3-compatible stores (e.g. `http://127.0.0.1:19000`); unset for AWS.
    #[arg(long = "s3-endpoint", env = "PPROFHOUSE_S3_ENDPOINT")]
    pub endpoint: Option<String>,
    /// Region.
    #[arg(long = "s3-region", env = "AWS_REGION", default_value = "us-east-1")]
    pub region: String,
    /// Bucket (`--bucket` is an alias).
    #[arg(
        long = "s3-bucket",
        visible_alias = "bucket",
        env = "PPROFHOUSE_S3_BUCKET"
    )]
    pub bucket: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); default: on with a custom endpoint.
    #[arg(
        long = "s3-path-style",
        env = "PPROFHOUSE_S3_PATH_STYLE",
        value_name = "BOOL"
    )]
    pub path_style: Option<bool>,
}

impl S3Config {
    /// Whether path-style addressing is used.
    pub fn path_style(&self) -> bool {
        self.path_style.unwrap_or(self.endpoint.is_some())
    }

    /// Build a client. With a custom endpoint, checksums are only computed/validated when an
    /// operation requires them (S3-compatible servers differ in their support).
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let region = if self.region.is_empty() {
            "us-east-1".to_string()
        } else {
            self.region.clone()
        };
        let mut loader =
            aws_config::defaults(aws_config::BehaviorVersion::latest()).region(Region::new(region));
        if let Some(ep) = &self.endpoint {
            loader = loader.endpoint_url(ep);
        }
        let sdk = loader.load().await;
        let mut b = aws_sdk_s3::config::Builder::from(&sdk).force_path_style(self.path_style());
        if self.endpoint.is_some() {
            b = b
                .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
                .response_checksum_validation(ResponseChecksumValidation::WhenRequired);
        }
        aws_sdk_s3::Client::from_conf(b.build())
    }
}

/// A `--layout` value: a template; empty (an empty `PPROFHOUSE_INGEST_LAYOUTS`) means none.
fn parse_template_arg(s: &str) -> Result<Template, LayoutError> {
    if s.trim().is_empty() {
        Ok(Template::empty())
    } else {
        Template::parse(s.trim())
    }
}

/// How profile metadata is found for an object (see [`crate::layout`]).
#[derive(clap::Args, Clone, Debug)]
pub struct LayoutConfig {
    /// Key templates tried after profefe's layout, e.g. `{service}/{type}/{yyyy}/{mm}/{dd}/{name}`
    /// (repeatable; env: `;`-separated).
    #[arg(long = "layout", env = "PPROFHOUSE_INGEST_LAYOUTS", value_name = "TEMPLATE", value_delimiter = ';', value_parser = parse_template_arg)]
    pub templates: Vec<Template>,
    /// Parse profefe `P0.` keys.
    #[arg(long = "profefe-keys", env = "PPROFHOUSE_INGEST_PROFEFE", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub profefe: bool,
    /// Service for objects no layout matches; unset: such objects go to the dead-letter topic.
    #[arg(long = "default-service", env = "PPROFHOUSE_INGEST_DEFAULT_SERVICE")]
    pub default_service: Option<String>,
    /// Profile type when a layout does not give one.
    #[arg(
        long = "default-type",
        env = "PPROFHOUSE_INGEST_DEFAULT_TYPE",
        default_value = "unknown"
    )]
    pub default_type: String,
    /// When the key matches no layout, HEAD the object and read profefe-style object metadata
    /// (`x-amz-meta-service`, `-type`, `-labels`, `-created_at`).
    #[arg(long = "head-objects", env = "PPROFHOUSE_INGEST_HEAD_OBJECTS", default_value_t = true, action = clap::ArgAction::Set, value_name = "BOOL")]
    pub head_objects: bool,
}

impl Default for LayoutConfig {
    fn default() -> Self {
        LayoutConfig {
            templates: Vec::new(),
            profefe: true,
            default_service: None,
            default_type: "unknown".into(),
            head_objects: true,
        }
    }
}

impl LayoutConfig {
    /// The resolver for these settings.
    pub fn resolver(&self) -> Resolver {
        Resolver {
            profefe: self.profefe,
            templates: self
                .templates
                .iter()
                .filter(|t| !t.as_str().is_empty())
                .cloned()
                .collect(),
            defaults: Defaults {
                service: self.default_service.clone().filter(|s| !s.is_empty()),
                profile_type: self.default_type.clone(),
            },
        }
    }

    /// Parse templates given as strings (for programmatic use).
    pub fn with_templates<'a>(
        mut self,
        templates: impl IntoIterator<Item = &'a str>,
    ) -> Result<Self, LayoutError> {
        for t in templates {
            self.templates.push(Template::parse(t)?);
        }
        Ok(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        kafka: KafkaConfig,
        #[command(flatten)]
        s3: S3Config,
        #[command(flatten)]
        layout: LayoutConfig,
    }

    #[test]
    fn flags_parse() {
        let cli = Cli::try_parse_from([
            "x",
            "--kafka-brokers",
            "h:1",
            "--kafka-property",
            "security.protocol=SASL_SSL,sasl.mechanisms=PLAIN",
            "--layout",
            "{service}/{type}/{name}",
            "--profefe-keys",
            "false",
            "--s3-endpoint",
            "http://127.0.0.1:1",
        ])
        .unwrap();
        assert_eq!(cli.kafka.brokers, "h:1");
        assert_eq!(cli.kafka.topic, DEFAULT_TOPIC);
        assert_eq!(cli.kafka.extra.len(), 2);
        assert_eq!(
            cli.kafka.client_config().get("security.protocol"),
            Some("SASL_SSL")
        );
        assert!(cli.s3.path_style());
        let r = cli.layout.resolver();
        assert!(!r.profefe);
        assert_eq!(r.templates.len(), 1);
        assert!(Cli::try_parse_from(["x", "--kafka-brokers", "h:1", "--layout", "{bad}"]).is_err());
        // Empty values (e.g. an empty environment variable) mean "none".
        let cli = Cli::try_parse_from([
            "x",
            "--kafka-brokers",
            "h:1",
            "--layout",
            "",
            "--kafka-property",
            "",
        ])
        .unwrap();
        assert!(cli.layout.resolver().templates.is_empty());
        assert!(cli.kafka.client_config().get("").is_none());
        assert!(Cli::try_parse_from([
            "x",
            "--kafka-brokers",
            "h:1",
            "--kafka-property",
            "novalue"
        ])
        .is_err());
    }
}

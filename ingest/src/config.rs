//! Settings shared by the trigger, backfill and the worker: Kafka, S3 and key layouts. Plain
//! serde types (unknown keys are errors); the binary fills them from its TOML file, the
//! environment and its flags.
use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use aws_sdk_s3::config::{Region, RequestChecksumCalculation, ResponseChecksumValidation};
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::layout::{Defaults, LayoutError, Resolver, Template};

/// Default profiles topic.
pub const DEFAULT_TOPIC: &str = "pprofhouse.profiles";
/// Default dead-letter topic.
pub const DEFAULT_DLQ_TOPIC: &str = "pprofhouse.deadletter";

/// Which kind of Kafka client a config is for: each takes the shared extra properties and its own.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Client {
    /// A producer: the trigger, backfill, the worker's dead letters.
    Producer,
    /// The worker's consumer.
    Consumer,
}

/// Kafka connection and topics.
#[derive(Clone, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct KafkaConfig {
    /// Bootstrap brokers, `host:port[,host:port...]`.
    pub brokers: String,
    /// Profiles topic.
    pub topic: String,
    /// Dead-letter topic (objects that cannot be processed, with the reason).
    pub dlq_topic: String,
    /// Kafka client id.
    pub client_id: String,
    /// How long a message may take to be delivered (librdkafka `message.timeout.ms`), in ms.
    pub timeout_ms: u64,
    /// Extra librdkafka properties for every client, e.g. `security.protocol = "SASL_SSL"`.
    pub properties: BTreeMap<String, String>,
    /// Extra librdkafka properties for the producers only (the trigger, backfill, the
    /// worker's dead letters), e.g. `linger.ms`; over `properties`. librdkafka warns of a
    /// producer's property given to a consumer (`CONFWARN`), and the other way round.
    pub producer_properties: BTreeMap<String, String>,
    /// Extra librdkafka properties for the worker's consumer only, e.g. `session.timeout.ms`;
    /// over `properties`.
    pub consumer_properties: BTreeMap<String, String>,
    /// `sasl.password`, kept apart from the properties so it may hold any character and is
    /// never printed.
    pub sasl_password: Option<SecretString>,
    /// A Secrets Manager secret (ARN or name) holding the SASL password, or MSK's
    /// `{"username", "password"}` JSON: read once at start ([`crate::secrets`]).
    pub sasl_secret: Option<String>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        KafkaConfig::new("")
    }
}

/// Property names whose values are never printed.
fn is_secret_property(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("password") || n.contains("secret") || n.contains("token") || n.ends_with(".key") || n.contains("key.pem")
}

/// Properties as they may be printed: secret ones' values redacted.
fn shown(props: &BTreeMap<String, String>) -> BTreeMap<&str, &str> {
    props.iter().map(|(k, v)| (k.as_str(), if is_secret_property(k) { "[REDACTED]" } else { v.as_str() })).collect()
}

impl fmt::Debug for KafkaConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KafkaConfig")
            .field("brokers", &self.brokers)
            .field("topic", &self.topic)
            .field("dlq_topic", &self.dlq_topic)
            .field("client_id", &self.client_id)
            .field("timeout_ms", &self.timeout_ms)
            .field("properties", &shown(&self.properties))
            .field("producer_properties", &shown(&self.producer_properties))
            .field("consumer_properties", &shown(&self.consumer_properties))
            .field("sasl_password", &self.sasl_password.as_ref().map(|_| "[REDACTED]"))
            .field("sasl_secret", &self.sasl_secret)
            .finish()
    }
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
            properties: BTreeMap::new(),
            producer_properties: BTreeMap::new(),
            consumer_properties: BTreeMap::new(),
            sasl_password: None,
            sasl_secret: None,
        }
    }

    /// Checks what has no usable default: the brokers.
    pub fn check(&self) -> Result<(), String> {
        if self.brokers.trim().is_empty() {
            return Err("no Kafka brokers: set --kafka-brokers, PPROFHOUSE_KAFKA_BROKERS or [kafka] brokers".into());
        }
        Ok(())
    }

    /// The delivery timeout.
    pub fn timeout(&self) -> Duration {
        Duration::from_millis(self.timeout_ms)
    }

    /// A librdkafka config for a `client`: the brokers, client id and its extra properties (no
    /// other producer or consumer settings).
    pub fn client_config(&self, client: Client) -> rdkafka::ClientConfig {
        let mut c = rdkafka::ClientConfig::new();
        c.set("bootstrap.servers", &self.brokers).set("client.id", &self.client_id);
        self.apply_properties(&mut c, client);
        c
    }

    /// Sets the extra properties for a `client` (the shared ones, then its own) and the SASL
    /// password on `c`; they override what is there.
    pub fn apply_properties(&self, c: &mut rdkafka::ClientConfig, client: Client) {
        let own = match client {
            Client::Producer => &self.producer_properties,
            Client::Consumer => &self.consumer_properties,
        };
        for (k, v) in self.properties.iter().chain(own).filter(|(k, _)| !k.is_empty()) {
            c.set(k, v);
        }
        if let Some(p) = &self.sasl_password {
            c.set("sasl.password", p.expose_secret());
        }
        // librdkafka logs its configuration at debug level only; nothing here is logged.
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
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct S3Config {
    /// Custom endpoint for S3-compatible stores (e.g. `http://127.0.0.1:19000`); unset for AWS.
    pub endpoint: Option<String>,
    /// Region.
    pub region: String,
    /// Bucket.
    pub bucket: Option<String>,
    /// Path-style addressing (`endpoint/bucket/key`); default: on with a custom endpoint.
    pub path_style: Option<bool>,
}

impl Default for S3Config {
    fn default() -> Self {
        S3Config { endpoint: None, region: "us-east-1".into(), bucket: None, path_style: None }
    }
}

impl S3Config {
    /// Whether path-style addressing is used.
    pub fn path_style(&self) -> bool {
        self.path_style.unwrap_or(self.endpoint.is_some())
    }

    /// Build a client. With a custom endpoint, checksums are only computed/validated when an
    /// operation requires them (S3-compatible servers differ in their support).
    pub async fn client(&self) -> aws_sdk_s3::Client {
        let region = if self.region.is_empty() { "us-east-1".to_string() } else { self.region.clone() };
        let mut loader = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(Region::new(region));
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

/// How profile metadata is found for an object (see [`crate::layout`]).
#[derive(Clone, Debug, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LayoutConfig {
    /// Key templates tried after profefe's layout, e.g. `{service}/{type}/{yyyy}/{mm}/{dd}/{name}`.
    pub templates: Vec<String>,
    /// Parse profefe `P0.` keys.
    pub profefe: bool,
    /// Service for objects no layout matches; unset: such objects go to the dead-letter topic.
    pub default_service: Option<String>,
    /// Profile type when a layout does not give one.
    pub default_type: String,
    /// When the key matches no layout, HEAD the object and read profefe-style object metadata
    /// (`x-amz-meta-service`, `-type`, `-labels`, `-created_at`).
    pub head_objects: bool,
}

impl Default for LayoutConfig {
    fn default() -> Self {
        LayoutConfig { templates: Vec::new(), profefe: true, default_service: None, default_type: "unknown".into(), head_objects: true }
    }
}

impl LayoutConfig {
    /// The resolver for these settings; fails on a template that does not parse.
    pub fn resolver(&self) -> Result<Resolver, LayoutError> {
        Ok(Resolver {
            profefe: self.profefe,
            templates: self.templates.iter().map(|t| t.trim()).filter(|t| !t.is_empty()).map(Template::parse).collect::<Result<_, _>>()?,
            defaults: Defaults { service: self.default_service.clone().filter(|s| !s.is_empty()), profile_type: self.default_type.clone() },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_show_in_debug() {
        let mut k = KafkaConfig::new("h:1");
        k.properties.insert("sasl.username".into(), "alice".into());
        k.properties.insert("sasl.password".into(), "pw-in-properties".into());
        k.sasl_password = Some(SecretString::from("pw,with,commas"));
        let shown = format!("{k:?}");
        assert!(shown.contains("alice"), "{shown}");
        assert!(!shown.contains("pw-in-properties") && !shown.contains("pw,with,commas"), "{shown}");
        assert_eq!(k.client_config(Client::Consumer).get("sasl.password"), Some("pw,with,commas"));
        k.producer_properties.insert("ssl.key.password".into(), "pw-for-producers".into());
        k.consumer_properties.insert("ssl.key.password".into(), "pw-for-consumers".into());
        let shown = format!("{k:?}");
        assert!(!shown.contains("pw-for-producers") && !shown.contains("pw-for-consumers"), "{shown}");
    }

    #[test]
    fn each_client_takes_the_shared_properties_and_its_own() {
        let k: KafkaConfig = serde_json::from_str(
            r#"{"brokers": "h:1", "properties": {"security.protocol": "SASL_SSL", "linger.ms": "1"},
                "producer_properties": {"linger.ms": "20", "batch.num.messages": "1"},
                "consumer_properties": {"session.timeout.ms": "10000"}}"#,
        )
        .unwrap();
        let (p, c) = (k.client_config(Client::Producer), k.client_config(Client::Consumer));
        assert_eq!([p.get("security.protocol"), c.get("security.protocol")], [Some("SASL_SSL"); 2]);
        // A client's own property overrides the shared one.
        assert_eq!([p.get("linger.ms"), c.get("linger.ms")], [Some("20"), Some("1")]);
        assert_eq!([p.get("batch.num.messages"), c.get("batch.num.messages")], [Some("1"), None]);
        assert_eq!([p.get("session.timeout.ms"), c.get("session.timeout.ms")], [None, Some("10000")]);
    }

    #[test]
    fn settings_deserialize_strictly() {
        let k: KafkaConfig = serde_json::from_str(r#"{"brokers": "h:1", "properties": {"security.protocol": "SASL_SSL"}}"#).unwrap();
        assert_eq!((k.topic.as_str(), k.client_config(Client::Producer).get("security.protocol")), (DEFAULT_TOPIC, Some("SASL_SSL")));
        assert!(serde_json::from_str::<KafkaConfig>(r#"{"broker": "h:1"}"#).is_err());
        let l: LayoutConfig = serde_json::from_str(r#"{"templates": ["{service}/{type}/{name}"], "profefe": false}"#).unwrap();
        let r = l.resolver().unwrap();
        assert!(!r.profefe);
        assert_eq!(r.templates.len(), 1);
        let bad: LayoutConfig = serde_json::from_str(r#"{"templates": ["{bad}"]}"#).unwrap();
        assert!(bad.resolver().is_err());
        assert!(S3Config { endpoint: Some("http://127.0.0.1:1".into()), ..Default::default() }.path_style());
    }
}

//! Kafka SASL credentials from AWS Secrets Manager, read once when the process starts.
//!
//! `kafka.sasl_secret` (`PPROFHOUSE_KAFKA_SASL_SECRET`) names a secret (ARN or name). At a
//! Lambda cold start (and at the start of `worker`, `ingest-event` and `backfill`) it is read with
//! `GetSecretValue` and held for the life of the process, so a warm instance never reads it
//! again and the password never sits in the function's environment. The secret holds either
//! the password alone, or a JSON object with `password` and optionally `username` — the shape
//! MSK's SASL/SCRAM secrets (`AmazonMSK_*`) have; the username then sets `sasl.username`.
use aws_sdk_secretsmanager::config::Region;
use secrecy::SecretString;

use crate::config::KafkaConfig;

/// Why the SASL secret could not be used. The secret's value never appears in it.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// `GetSecretValue` failed (permissions, a wrong id, the network).
    #[error("reading the Kafka SASL secret {id} from Secrets Manager: {reason}")]
    Fetch {
        /// The secret's ARN or name.
        id: String,
        /// The service's or the client's error.
        reason: String,
    },
    /// The secret has no string value, or an empty one.
    #[error("the Kafka SASL secret {id} has no string value (SecretString)")]
    Empty {
        /// The secret's ARN or name.
        id: String,
    },
    /// A JSON object without a non-empty string `password`.
    #[error("the Kafka SASL secret {id} is a JSON object without a string \"password\"")]
    NoPassword {
        /// The secret's ARN or name.
        id: String,
    },
}

/// Sets `kafka`'s SASL password (and `sasl.username` when the secret names one) from a
/// secret's string value: a JSON object `{"username": …, "password": …}`, or the password
/// itself (anything that is not a JSON object).
pub fn apply(kafka: &mut KafkaConfig, id: &str, value: &str) -> Result<(), SecretError> {
    if value.is_empty() {
        return Err(SecretError::Empty { id: id.to_string() });
    }
    match serde_json::from_str::<serde_json::Value>(value) {
        Ok(serde_json::Value::Object(map)) => {
            let password = map.get("password").and_then(|p| p.as_str()).filter(|p| !p.is_empty());
            let Some(password) = password else { return Err(SecretError::NoPassword { id: id.to_string() }) };
            if let Some(user) = map.get("username").and_then(|u| u.as_str()).filter(|u| !u.is_empty()) {
                kafka.properties.insert("sasl.username".to_string(), user.to_string());
            }
            kafka.sasl_password = Some(SecretString::from(password.to_string()));
        }
        _ => kafka.sasl_password = Some(SecretString::from(value.to_string())),
    }
    Ok(())
}

/// Reads `kafka.sasl_secret` with `client` and applies it ([`apply`]); nothing to do without one.
pub async fn resolve_with(kafka: &mut KafkaConfig, client: &aws_sdk_secretsmanager::Client) -> Result<(), SecretError> {
    let Some(id) = kafka.sasl_secret.clone().filter(|s| !s.trim().is_empty()) else { return Ok(()) };
    let out =
        client.get_secret_value().secret_id(&id).send().await.map_err(|e| SecretError::Fetch {
            id: id.clone(),
            reason: aws_sdk_secretsmanager::error::DisplayErrorContext(e).to_string(),
        })?;
    let value = out.secret_string().ok_or_else(|| SecretError::Empty { id: id.clone() })?;
    apply(kafka, &id, value)?;
    tracing::info!(secret = %id, "Kafka SASL credentials read from Secrets Manager");
    Ok(())
}

/// [`resolve_with`] a client from the default AWS chain in `region` (the Lambda's role).
pub async fn resolve(kafka: &mut KafkaConfig, region: &str) -> Result<(), SecretError> {
    if kafka.sasl_secret.as_deref().is_none_or(|s| s.trim().is_empty()) {
        return Ok(());
    }
    let region = if region.is_empty() { "us-east-1".to_string() } else { region.to_string() };
    let sdk = aws_config::defaults(aws_config::BehaviorVersion::latest()).region(Region::new(region)).load().await;
    resolve_with(kafka, &aws_sdk_secretsmanager::Client::new(&sdk)).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use secrecy::ExposeSecret;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    fn kafka() -> KafkaConfig {
        let mut k = KafkaConfig::new("b:9096");
        k.sasl_secret = Some("arn:aws:secretsmanager:eu-west-1:1:secret:AmazonMSK_pprofhouse".into());
        k
    }

    #[test]
    fn msk_json_sets_user_and_password() {
        let mut k = kafka();
        apply(&mut k, "s", r#"{"username":"pprofhouse","password":"p,w=\"x"}"#).unwrap();
        assert_eq!(k.sasl_password.as_ref().unwrap().expose_secret(), "p,w=\"x");
        assert_eq!(k.properties["sasl.username"], "pprofhouse");
        assert!(!format!("{k:?}").contains("p,w"), "the password shows in Debug");
    }

    #[test]
    fn plain_string_is_the_password() {
        let mut k = kafka();
        apply(&mut k, "s", "just-a-password").unwrap();
        assert_eq!(k.sasl_password.as_ref().unwrap().expose_secret(), "just-a-password");
        assert!(!k.properties.contains_key("sasl.username"));
    }

    #[test]
    fn json_without_password_is_refused_without_echoing_it() {
        let mut k = kafka();
        let e = apply(&mut k, "s", r#"{"username":"u","pass":"hunter2"}"#).unwrap_err();
        assert!(matches!(e, SecretError::NoPassword { .. }));
        assert!(!e.to_string().contains("hunter2"));
        assert!(k.sasl_password.is_none());
        assert!(matches!(apply(&mut k, "s", "").unwrap_err(), SecretError::Empty { .. }));
    }

    /// A stand-in for the Secrets Manager endpoint (its JSON protocol) on loopback: answers
    /// each request with `status` and `body`, and hands back the requests it saw.
    async fn fake_endpoint(status: u16, body: &'static str) -> (String, tokio::task::JoinHandle<Vec<String>>) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let handle = tokio::spawn(async move {
            let (mut sock, _) = listener.accept().await.unwrap();
            let mut req = Vec::new();
            let mut buf = [0u8; 4096];
            // Headers, then the body announced by content-length.
            loop {
                let n = sock.read(&mut buf).await.unwrap();
                req.extend_from_slice(&buf[..n]);
                let text = String::from_utf8_lossy(&req).to_string();
                if let Some(end) = text.find("\r\n\r\n") {
                    let len = text[..end]
                        .lines()
                        .find_map(|l| l.to_ascii_lowercase().strip_prefix("content-length:").map(|v| v.trim().parse::<usize>().unwrap()))
                        .unwrap_or(0);
                    if req.len() >= end + 4 + len || n == 0 {
                        break;
                    }
                }
            }
            let resp = format!(
                "HTTP/1.1 {status} X\r\ncontent-type: application/x-amz-json-1.1\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                body.len()
            );
            sock.write_all(resp.as_bytes()).await.unwrap();
            vec![String::from_utf8_lossy(&req).to_string()]
        });
        (url, handle)
    }

    fn client(url: &str) -> aws_sdk_secretsmanager::Client {
        let conf = aws_sdk_secretsmanager::Config::builder()
            .behavior_version(aws_sdk_secretsmanager::config::BehaviorVersion::latest())
            .region(Region::new("eu-west-1"))
            .endpoint_url(url)
            .credentials_provider(aws_sdk_secretsmanager::config::Credentials::new("AKID", "SECRET", None, None, "test"))
            .retry_config(aws_sdk_secretsmanager::config::retry::RetryConfig::disabled())
            .build();
        aws_sdk_secretsmanager::Client::from_conf(conf)
    }

    #[tokio::test]
    async fn reads_the_secret_with_get_secret_value() {
        let (url, seen) =
            fake_endpoint(200, r#"{"Name":"AmazonMSK_pprofhouse","SecretString":"{\"username\":\"u1\",\"password\":\"pw1\"}"}"#).await;
        let mut k = kafka();
        resolve_with(&mut k, &client(&url)).await.unwrap();
        assert_eq!(k.sasl_password.as_ref().unwrap().expose_secret(), "pw1");
        assert_eq!(k.properties["sasl.username"], "u1");
        let req = seen.await.unwrap().join("");
        assert!(req.contains("secretsmanager.GetSecretValue"), "{req}");
        assert!(req.contains("AmazonMSK_pprofhouse"), "the request names the secret: {req}");
    }

    #[tokio::test]
    async fn a_refusal_names_the_secret() {
        let (url, _seen) =
            fake_endpoint(400, r#"{"__type":"AccessDeniedException","message":"not authorized to perform GetSecretValue"}"#).await;
        let mut k = kafka();
        let e = resolve_with(&mut k, &client(&url)).await.unwrap_err();
        assert!(matches!(e, SecretError::Fetch { .. }));
        assert!(e.to_string().contains("AmazonMSK_pprofhouse"), "{e}");
        assert!(k.sasl_password.is_none());
    }

    #[tokio::test]
    async fn nothing_to_do_without_a_secret() {
        let mut k = KafkaConfig::new("b:1");
        resolve(&mut k, "eu-west-1").await.unwrap();
        assert!(k.sasl_password.is_none());
    }
}

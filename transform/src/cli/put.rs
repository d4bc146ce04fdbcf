//! `pprofhouse put`: uploads profiles to S3 under profefe keys and, optionally, writes the S3
//! `ObjectCreated` event those uploads would trigger (for `pprofhouse ingest-event`) — the local
//! stand-in for a bucket notification, used by `make demo`.
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use pprofhouse_ingest::layout::{profefe_key, query_escape};
use pprofhouse_ingest::S3Config;

use super::db::{parse_label, parse_time};

#[derive(Debug, Args)]
pub struct PutArgs {
    /// Service the profiles belong to.
    #[arg(long)]
    pub service: String,
    /// Profile type: cpu, heap, block, mutex, goroutine, threadcreate (profefe's numbers), or other.
    #[arg(long = "type")]
    pub profile_type: String,
    /// Label `k=v` (repeatable), encoded in the key.
    #[arg(long = "label", value_parser = parse_label)]
    pub labels: Vec<(String, String)>,
    /// Profile time (RFC 3339), encoded in the key's xid; default: now.
    #[arg(long, value_parser = parse_time)]
    pub time: Option<i64>,
    /// Write (or extend) an S3 event JSON file with one ObjectCreated record per upload.
    #[arg(long)]
    pub event_out: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Config,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

fn type_number(t: &str) -> u8 {
    match t {
        "cpu" => 1,
        "heap" => 2,
        "block" => 3,
        "mutex" => 4,
        "goroutine" => 5,
        "threadcreate" => 6,
        _ => 127,
    }
}

pub fn put(a: PutArgs) -> anyhow::Result<ExitCode> {
    let bucket = a.s3.bucket.clone().context("--s3-bucket / PPROFHOUSE_S3_BUCKET is required")?;
    let rt = super::db::runtime()?;
    let s3 = rt.block_on(a.s3.client());
    let labels: BTreeMap<String, String> = a.labels.iter().cloned().collect();
    let time_ms = a.time.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let created = chrono::DateTime::from_timestamp_millis(time_ms).context("time out of range")?;
    let mut records: Vec<serde_json::Value> = match &a.event_out {
        Some(p) if p.exists() => {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p)?)?;
            v["Records"].as_array().cloned().unwrap_or_default()
        }
        _ => Vec::new(),
    };
    for (i, file) in a.files.iter().enumerate() {
        let data = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
        let salt = fastrand::u64(..) ^ i as u64;
        let key = profefe_key(&a.service, type_number(&a.profile_type), created, salt, &labels);
        let out = rt
            .block_on(s3.put_object().bucket(&bucket).key(&key).body(data.clone().into()).send())
            .map_err(|e| anyhow::anyhow!("uploading {}: {}", file.display(), aws_sdk_s3::error::DisplayErrorContext(&e)))?;
        println!("s3://{bucket}/{key}");
        let encoded: Vec<String> = key.split('/').map(query_escape).collect();
        records.push(serde_json::json!({
            "eventVersion": "2.1",
            "eventSource": "aws:s3",
            "awsRegion": a.s3.region,
            "eventTime": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "eventName": "ObjectCreated:Put",
            "userIdentity": {"principalId": "pprofhouse-put"},
            "requestParameters": {"sourceIPAddress": "127.0.0.1"},
            "responseElements": {},
            "s3": {
                "s3SchemaVersion": "1.0",
                "configurationId": "pprofhouse-put",
                "bucket": {"name": bucket, "ownerIdentity": {"principalId": "pprofhouse"}, "arn": format!("arn:aws:s3:::{bucket}")},
                "object": {
                    "key": encoded.join("/"),
                    "size": data.len(),
                    "eTag": out.e_tag().unwrap_or_default().trim_matches('"'),
                    "sequencer": format!("{:016X}", fastrand::u64(..)),
                }
            }
        }));
    }
    if let Some(p) = &a.event_out {
        std::fs::write(p, serde_json::to_vec_pretty(&serde_json::json!({ "Records": records }))?)?;
    }
    Ok(ExitCode::SUCCESS)
}

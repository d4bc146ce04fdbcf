//! `pprofhouse put`: uploads profiles to S3 under profefe keys and, optionally, writes the S3
//! `ObjectCreated` event those uploads would trigger (for `pprofhouse ingest-event`) — the local
//! stand-in for a bucket notification, used by `make demo`.
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use pprofhouse_ingest::layout::{profefe_key, profefe_type_number};
use pprofhouse_message::{object_created_event, CreatedObject};
use serde::Serialize;

use super::flags::S3Flags;
use super::settings::Settings;
use super::{runtime, ProfileArgs};

#[derive(Debug, Args)]
pub struct PutArgs {
    #[command(flatten)]
    pub profile: ProfileArgs,
    /// Write (or extend) an S3 event JSON file with one ObjectCreated record per upload.
    #[arg(long)]
    pub event_out: Option<PathBuf>,
    #[command(flatten)]
    pub s3: S3Flags,
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
}

#[derive(Serialize)]
struct PutSettings<'a> {
    s3: &'a S3Flags,
}

pub fn put(a: PutArgs, config: Option<&Path>) -> anyhow::Result<ExitCode> {
    let settings = Settings::load(config, &PutSettings { s3: &a.s3 })?;
    let bucket = settings.s3.bucket.clone().context("--s3-bucket / PPROFHOUSE_S3_BUCKET is required")?;
    let rt = runtime()?;
    let s3 = rt.block_on(settings.s3.client());
    let labels: BTreeMap<String, String> = a.profile.labels.iter().cloned().collect();
    let time_ms = a.profile.time.unwrap_or_else(|| chrono::Utc::now().timestamp_millis());
    let created = chrono::DateTime::from_timestamp_millis(time_ms).context("time out of range")?;
    let mut records: Vec<serde_json::Value> = match &a.event_out {
        Some(p) if p.exists() => {
            let v: serde_json::Value = serde_json::from_slice(&std::fs::read(p)?)?;
            v["Records"].as_array().cloned().unwrap_or_default()
        }
        _ => Vec::new(),
    };
    let type_number = profefe_type_number(&a.profile.profile_type).unwrap_or(127);
    let mut created_objects = Vec::new();
    for (i, file) in a.files.iter().enumerate() {
        let data = std::fs::read(file).with_context(|| format!("{}: cannot read", file.display()))?;
        // The xid's random part keeps keys of the same second apart (a key, not an id: the
        // profile's id comes from bucket, key and etag).
        let salt = fastrand::u64(..) ^ i as u64;
        let key = profefe_key(&a.profile.service, type_number, created, salt, &labels);
        let out = rt
            .block_on(s3.put_object().bucket(&bucket).key(&key).body(data.clone().into()).send())
            .map_err(|e| anyhow::anyhow!("uploading {}: {}", file.display(), aws_sdk_s3::error::DisplayErrorContext(&e)))?;
        println!("s3://{bucket}/{key}");
        let mut o = CreatedObject::new(&bucket, &key, data.len() as u64, chrono::Utc::now());
        o.etag = out.e_tag().map(|e| e.trim_matches('"').to_string());
        o.version_id = out.version_id().map(str::to_string);
        o.sequencer = Some(format!("{:016X}", fastrand::u64(..)));
        created_objects.push(o);
    }
    if let Some(p) = &a.event_out {
        let ev = object_created_event(&created_objects, &settings.s3.region);
        records.extend(ev["Records"].as_array().cloned().unwrap_or_default());
        std::fs::write(p, serde_json::to_vec_pretty(&serde_json::json!({ "Records": records }))?)?;
    }
    Ok(ExitCode::SUCCESS)
}

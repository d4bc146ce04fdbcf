//! # pprofhouse-ingest: getting profiles from S3 onto Kafka
//!
//! Profiles land in S3, written by profefe, kube-profefe, agents or any uploader. Every new
//! object must be enqueued once per creation, with its metadata, for the workers. This crate is
//! that step and the code the workers share with it.
//!
//! **Flow.** S3 sends an ObjectCreated notification to a Lambda function ([`handler::run_lambda`],
//! `pprofhouse lambda`). For each ObjectCreated record of the [`aws_lambda_events::s3::S3Event`]
//! the handler decodes the key (URL-encoded, `+` for space), skips non-create events and
//! zero-size objects with a log line, resolves the profile metadata ([`layout`]) and produces one
//! message on the profiles topic ([`producer`]): key `bucket/key` (so one object always maps to
//! one partition and its events stay ordered), value the versioned JSON envelope ([`envelope`]).
//! The producer is idempotent with `acks=all`; the handler waits for every delivery and returns an
//! error if any failed, so Lambda retries the event and finally hands it to its on-failure
//! destination. Objects whose metadata cannot be found go to the dead-letter topic with the reason
//! (unless defaults are configured). `pprofhouse ingest-event FILE.json` runs the same handler once
//! on an event file; `pprofhouse backfill` ([`backfill`]) lists a bucket and enqueues what is
//! already there, with a rate limit and a resumable checkpoint.
//!
//! **Other sources.** S3-compatible stores (MinIO's Kafka notification target) publish the raw S3
//! event JSON straight to the topic. [`pprofhouse_message::parse_message`] accepts both that and
//! the envelope, and [`layout::Resolver::resolve_object`] gives the worker the same metadata the
//! trigger would have computed. The messages themselves (envelope, [`ProfileMeta`],
//! [`DeadLetter`]) are defined once, in `pprofhouse-message` (`ingest/message/`), and re-exported
//! here.
//!
//! **Metadata.** [`layout`] knows profefe's key layout `P0.<service>/<type>/<xid>[,labels]` (the
//! xid holds the creation time), configurable templates for other layouts, and profefe's object
//! metadata (`service`, `type`, `labels`, `created_at`), read with a HEAD when the key says
//! nothing.
//!
//! **Settings.** [`config`] holds plain serde structs for Kafka, S3 and layouts (unknown keys
//! are errors); the `pprofhouse` binary fills them from its config file, the environment and its
//! flags, and the worker reuses them. [`secrets`] reads the Kafka SASL credentials from AWS
//! Secrets Manager once at start (a Lambda cold start), so they never sit in the environment.
//!
//! **In the worker**, per consumed message:
//!
//! ```ignore
//! for obj in pprofhouse_message::parse_message(payload)? {        // envelope or raw Records[]
//!     let meta = match &obj.meta {
//!         Some(m) => m.clone(),                                   // the trigger resolved it
//!         None => match resolver.resolve_object(&obj, Some(&get_object_user_metadata)) {
//!             Resolution::Matched(m) => m,
//!             Resolution::Unmatched(reason) => {
//!                 producer.send_dead_letter(DeadLetter::new(obj, "worker", reason)).await?;
//!                 continue;
//!             }
//!         },
//!     };
//!     // fetch s3://{obj.bucket}/{obj.key}, decode, explode, store with `meta`
//! }
//! ```
//!
//! Delivery is at-least-once end to end: a retried Lambda invocation or a re-run backfill page may
//! produce a message twice; consumers dedupe on `bucket/key` + etag/sequencer.
#![deny(missing_docs)]

pub mod backfill;
pub mod config;
pub mod handler;
pub mod layout;
pub mod producer;
pub mod secrets;

pub use aws_lambda_events::s3::S3Event;
pub use config::{KafkaConfig, LayoutConfig, S3Config};
pub use handler::{Ingestor, Report};
pub use layout::{Resolution, Resolver};
pub use pprofhouse_message::{parse_message, DeadLetter, ObjectRef, ProfileMeta, ENVELOPE_VERSION};
pub use producer::{Outgoing, Producer};

//! One retry policy for everything the worker retries (S3 fetches, ClickHouse inserts, dead
//! letters, offset commits), and the classification of failures it rests on.
//!
//! A failure is either **transient** — the same request can succeed later (network, timeouts,
//! 5xx, an overloaded server) — or **permanent** — it fails the same way every time (a missing
//! object, a profile over a limit, a row ClickHouse rejects). Transient failures back off
//! exponentially with jitter up to `max_backoff`, for at most `retry_budget` attempts; permanent
//! ones are not retried. What happens after that is the caller's decision, made explicit by
//! [`Retried`]: an object is dead-lettered ([`Failure`]), a batch is split, a stuck sink raises
//! the alarm ([`super::health`]).

use std::fmt::Display;
use std::future::Future;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use tokio::sync::watch;

use super::metrics::Metrics;

/// Backoff and budget of every retry loop.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// First pause.
    pub min_delay: Duration,
    /// Longest pause.
    pub max_delay: Duration,
    /// Attempts after the first before a transient failure is reported as [`Retried::Exhausted`].
    pub budget: usize,
}

/// Why a retried operation gave up.
#[derive(Debug)]
pub enum Retried<E> {
    /// The failure cannot succeed on retry.
    Permanent(E),
    /// Still transient after the whole budget.
    Exhausted(E),
    /// Stop was asked for while waiting.
    Interrupted,
}

impl RetryPolicy {
    /// Runs `op` until it succeeds, fails permanently (`transient` says which), exhausts the
    /// budget, or `stop` turns true. Each retry counts in `errors{kind=what}` and logs.
    pub async fn run<T, E, Fut>(
        &self,
        what: &'static str,
        metrics: &Metrics,
        stop: &watch::Receiver<bool>,
        transient: impl Fn(&E) -> bool + Copy,
        op: impl FnMut() -> Fut,
    ) -> Result<T, Retried<E>>
    where
        E: Display,
        Fut: Future<Output = Result<T, E>>,
    {
        let backoff = ExponentialBuilder::default()
            .with_min_delay(self.min_delay)
            .with_max_delay(self.max_delay)
            .with_jitter()
            .with_max_times(self.budget);
        let attempts = op.retry(backoff).when(move |e| transient(e)).notify(|e, pause| {
            metrics.error(what);
            tracing::warn!(error = %e, retry_in_ms = pause.as_millis() as u64, "{what} failed; retrying");
        });
        let mut stop = stop.clone();
        if *stop.borrow() {
            return Err(Retried::Interrupted);
        }
        tokio::select! {
            r = attempts => r.map_err(|e| if transient(&e) { Retried::Exhausted(e) } else { Retried::Permanent(e) }),
            _ = stop.wait_for(|s| *s) => Err(Retried::Interrupted),
        }
    }
}

/// A permanent failure of one object: it goes to the dead-letter topic with [`Failure::kind`]
/// and the message as reason.
#[derive(Debug, thiserror::Error)]
pub enum Failure {
    /// The Kafka message is neither an envelope nor an S3 event.
    #[error("unreadable message: {0}")]
    BadMessage(String),
    /// The object (or the announced version of it) is gone.
    #[error("{0}")]
    NotFound(String),
    /// The object changed since the event announced it (another etag/version is there now).
    #[error("{0}")]
    Changed(String),
    /// S3 refuses it for good (access denied, archived, no such bucket).
    #[error("{0}")]
    Refused(String),
    /// Over a configured limit (object bytes, decompressed bytes, work).
    #[error("{0}")]
    OverLimit(String),
    /// Older than every retention window.
    #[error("{0}")]
    Expired(String),
    /// No layout gave the object's metadata.
    #[error("{0}")]
    Unmatched(String),
    /// Not a valid profile.
    #[error("{0}")]
    Decode(#[from] pprofhouse_transform::pprof::DecodeError),
    /// ClickHouse rejects the profile's rows for good (isolated by bisecting its batch).
    #[error("ClickHouse rejected the profile: {0}")]
    Rejected(String),
    /// Still failing transiently after the whole retry budget.
    #[error("gave up after the retry budget: {0}")]
    Exhausted(String),
    /// A bug: a task panicked.
    #[error("{0}")]
    Internal(String),
}

impl Failure {
    /// A stable short name (metric label, dead letter `error_kind`).
    pub fn kind(&self) -> &'static str {
        match self {
            Failure::BadMessage(_) => "bad_message",
            Failure::NotFound(_) => "not_found",
            Failure::Changed(_) => "changed",
            Failure::Refused(_) => "s3_refused",
            Failure::OverLimit(_) => "over_limit",
            Failure::Unmatched(_) => "unmatched_layout",
            Failure::Expired(_) => "expired",
            Failure::Decode(e) => e.kind(),
            Failure::Rejected(_) => "rejected",
            Failure::Exhausted(_) => "retries_exhausted",
            Failure::Internal(_) => "internal",
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    fn policy(budget: usize) -> RetryPolicy {
        RetryPolicy { min_delay: Duration::from_millis(1), max_delay: Duration::from_millis(2), budget }
    }

    #[tokio::test]
    async fn transient_failures_retry_within_the_budget_permanent_ones_do_not() {
        let m = Metrics::new();
        let (_tx, stop) = watch::channel(false);
        let calls = AtomicUsize::new(0);
        let r: Result<(), _> = policy(3)
            .run(
                "t",
                &m,
                &stop,
                |_: &String| true,
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>("down".to_string())
                },
            )
            .await;
        assert!(matches!(r, Err(Retried::Exhausted(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 4, "one try and three retries");
        calls.store(0, Ordering::SeqCst);
        let r: Result<(), _> = policy(3)
            .run(
                "t",
                &m,
                &stop,
                |_: &String| false,
                || async {
                    calls.fetch_add(1, Ordering::SeqCst);
                    Err::<(), _>("bad".to_string())
                },
            )
            .await;
        assert!(matches!(r, Err(Retried::Permanent(_))));
        assert_eq!(calls.load(Ordering::SeqCst), 1);
        let ok = policy(3)
            .run(
                "t",
                &m,
                &stop,
                |_: &String| true,
                || async {
                    if calls.fetch_add(1, Ordering::SeqCst) < 2 {
                        Err("flaky".to_string())
                    } else {
                        Ok(7)
                    }
                },
            )
            .await;
        assert_eq!(ok.unwrap(), 7);
    }

    #[tokio::test]
    async fn stop_interrupts_a_retry_loop() {
        let m = Metrics::new();
        let (tx, stop) = watch::channel(false);
        let slow = RetryPolicy { min_delay: Duration::from_secs(30), max_delay: Duration::from_secs(30), budget: 100 };
        let task =
            tokio::spawn(async move { slow.run("t", &m, &stop, |_: &String| true, || async { Err::<(), _>("down".to_string()) }).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        tx.send(true).unwrap();
        let r = tokio::time::timeout(Duration::from_secs(5), task).await.expect("stopped promptly").unwrap();
        assert!(matches!(r, Err(Retried::Interrupted)));
    }

    #[test]
    fn kinds_are_stable() {
        assert_eq!(Failure::Rejected("x".into()).kind(), "rejected");
        assert_eq!(Failure::Decode(pprofhouse_transform::pprof::DecodeError::Empty).kind(), "empty");
    }
}

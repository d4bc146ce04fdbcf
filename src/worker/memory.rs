//! The in-flight memory ledger: what the messages between the consumer and the open batch hold.
//!
//! Every message in flight carries a [`Charge`] on one [`Ledger`]. It starts as an estimate from
//! the object sizes the message announces ([`ESTIMATE_PER_OBJECT_BYTE`] per compressed byte),
//! becomes the decoded size (× [`WORKING_SET_PER_DECODED_BYTE`]) once the object is fetched, and
//! the records' own size once they are exploded; it is released when the records go into the
//! batch (whose `batch_bytes` bounds them from then on) or the message is dropped. The main loop
//! takes a new message only while the ledger is under `max_inflight_bytes`, so completed results
//! waiting behind a slower message count too, and charging never blocks: no message can wait
//! for memory held by the ones behind it.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

/// Estimated bytes held per byte of compressed object, before it is fetched (production Go
/// heap profiles: 738 KB gzip → 4.8 MB of records).
pub const ESTIMATE_PER_OBJECT_BYTE: u64 = 8;
/// Bytes held while a profile is inflated, decoded and exploded, per decoded byte (measured
/// with heaptrack: about 29 MB of working set for a 2.5 MB decoded heap profile).
pub const WORKING_SET_PER_DECODED_BYTE: u64 = 12;

/// Bytes held by messages in flight, against a limit.
#[derive(Debug)]
pub struct Ledger {
    used: AtomicU64,
    limit: u64,
}

impl Ledger {
    /// A ledger with this limit, in bytes.
    pub fn new(limit: u64) -> Arc<Ledger> {
        Arc::new(Ledger { used: AtomicU64::new(0), limit: limit.max(1) })
    }

    /// True while a new message may be taken (one message alone is always taken).
    pub fn has_room(&self) -> bool {
        self.used() < self.limit
    }

    /// Bytes charged now.
    pub fn used(&self) -> u64 {
        self.used.load(Ordering::Relaxed)
    }
}

/// One message's share of the [`Ledger`]; released on drop.
#[derive(Debug)]
pub struct Charge {
    ledger: Arc<Ledger>,
    amount: u64,
}

impl Charge {
    /// Charges `amount` bytes.
    pub fn new(ledger: &Arc<Ledger>, amount: u64) -> Charge {
        ledger.used.fetch_add(amount, Ordering::Relaxed);
        Charge { ledger: ledger.clone(), amount }
    }

    /// Changes the charge to `amount` bytes.
    pub fn set(&mut self, amount: u64) {
        if amount >= self.amount {
            self.ledger.used.fetch_add(amount - self.amount, Ordering::Relaxed);
        } else {
            self.ledger.used.fetch_sub(self.amount - amount, Ordering::Relaxed);
        }
        self.amount = amount;
    }
}

impl Drop for Charge {
    fn drop(&mut self) {
        self.ledger.used.fetch_sub(self.amount, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn charges_follow_their_messages_and_are_released_on_drop() {
        let ledger = Ledger::new(100);
        assert!(ledger.has_room());
        let mut a = Charge::new(&ledger, 60);
        let b = Charge::new(&ledger, 30);
        assert_eq!(ledger.used(), 90);
        assert!(ledger.has_room());
        a.set(80);
        assert_eq!(ledger.used(), 110);
        assert!(!ledger.has_room());
        a.set(10);
        assert_eq!(ledger.used(), 40);
        drop(b);
        drop(a);
        assert_eq!(ledger.used(), 0);
    }
}

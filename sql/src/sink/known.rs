//! The stacks this worker stored recently ([`KnownStacks`]): their frames need not be sent again.

use std::hash::BuildHasher;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use hashbrown::DefaultHashBuilder;

/// Stack frames are re-sent at least this often (keeps `stacks.last_seen` fresh for its TTL).
pub(super) const KNOWN_STACK_TTL: Duration = Duration::from_secs(3600);
/// Past this many remembered stacks the memory is cleared (2^17 hashes: two tables of 2 MiB at
/// most).
pub(super) const KNOWN_STACK_MAX: usize = 1 << 17;

/// The stacks whose frames this process wrote to `stacks` within the last hour
/// (`KNOWN_STACK_TTL`): their later occurrences need only their hash. A fleet profiles the same
/// binaries over and over, so after the first batches almost every stack is known; a worker
/// explodes with [`KnownStacks::unstored`], so the frames of known stacks are never built. The
/// frames are the bulk of a record: a batch of the same bytes then holds several times more
/// profiles, and ClickHouse gets fewer, larger inserts.
///
/// Forgetting is always safe (the frames are sent again); remembering happens only after an
/// insert carrying them succeeded.
#[derive(Default)]
pub struct KnownStacks(RwLock<Arc<Generations>>);

/// Known stack hashes in two generations: a stack is known while it is in either. New ones go
/// into `current`; every half TTL `current` becomes `previous` (and the old `previous` is
/// forgotten), so a stack's frames are written again between half a TTL and a TTL after they
/// last were. No clock read per stack.
#[derive(Clone, Default)]
pub(super) struct Generations {
    current: HashSlots,
    previous: HashSlots,
    since: Option<Instant>,
}

impl Generations {
    pub(super) fn contains(&self, h: u64) -> bool {
        self.current.contains(h) || self.previous.contains(h)
    }
}

impl KnownStacks {
    /// The stacks known now: a snapshot, so no lock is held while it is read (an explode takes
    /// milliseconds; [`KnownStacks::remember`] copies the sets if a snapshot is still in use).
    pub(super) fn snapshot(&self) -> Arc<Generations> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Calls `f` with "are this stack's frames still needed?" (false for stacks stored
    /// recently), answered from one snapshot: for [`explode_with`]'s `frames_wanted`.
    ///
    /// [`explode_with`]: pprofhouse_transform::explode_with
    pub fn unstored<R>(&self, f: impl FnOnce(&dyn Fn(u64) -> bool) -> R) -> R {
        let known = self.snapshot();
        f(&|h| !known.contains(h))
    }

    /// Remembers `hashes` as written at `now` (an insert carrying their frames succeeded).
    pub(super) fn remember(&self, hashes: impl Iterator<Item = u64>, now: Instant) {
        let mut guard = self.0.write().unwrap_or_else(|e| e.into_inner());
        let g = Arc::make_mut(&mut guard);
        let age = now.saturating_duration_since(*g.since.get_or_insert(now));
        if age >= KNOWN_STACK_TTL || g.current.len() + g.previous.len() > KNOWN_STACK_MAX {
            *g = Generations { since: Some(now), ..Default::default() };
        } else if age >= KNOWN_STACK_TTL / 2 {
            g.previous = std::mem::take(&mut g.current);
            g.since = Some(now);
        }
        for h in hashes {
            g.current.insert(h);
        }
    }
}

/// A set of stack hashes in one array of keys (open addressing, linear probing, at most half
/// full), so that a lookup that misses the cache costs one miss, not the two of a table with a
/// separate control array. Explode asks for every distinct stack of every profile, at random
/// places in a set of up to 2^17 hashes, far larger than the core's cache: this lookup was a
/// tenth of the worker's time with `hashbrown`'s set.
///
/// The slot is chosen by a keyed hash of the stack hash (`foldhash`, seeded per process): stack
/// hashes come from names in the input, and a known function of them would let a crafted
/// profile fill one run of slots.
#[derive(Clone, Default)]
struct HashSlots {
    /// 0 is an empty slot; the hash 0 itself is `has_zero`.
    slots: Vec<u64>,
    len: usize,
    has_zero: bool,
    keys: DefaultHashBuilder,
}

impl HashSlots {
    fn len(&self) -> usize {
        self.len + usize::from(self.has_zero)
    }

    fn slot(&self, h: u64) -> usize {
        self.keys.hash_one(h) as usize & (self.slots.len() - 1)
    }

    fn contains(&self, h: u64) -> bool {
        if h == 0 {
            return self.has_zero;
        }
        if self.slots.is_empty() {
            return false;
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(h);
        loop {
            match self.slots[i] {
                s if s == h => return true,
                0 => return false,
                _ => i = (i + 1) & mask,
            }
        }
    }

    fn insert(&mut self, h: u64) {
        if h == 0 {
            self.has_zero = true;
            return;
        }
        if 2 * (self.len + 1) > self.slots.len() {
            self.grow();
        }
        let mask = self.slots.len() - 1;
        let mut i = self.slot(h);
        loop {
            match self.slots[i] {
                s if s == h => return,
                0 => break,
                _ => i = (i + 1) & mask,
            }
        }
        self.slots[i] = h;
        self.len += 1;
    }

    fn grow(&mut self) {
        let size = (self.slots.len() * 2).max(1024);
        let old = std::mem::replace(&mut self.slots, vec![0; size]);
        self.len = 0;
        for h in old.into_iter().filter(|&h| h != 0) {
            self.insert(h);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_stacks_are_forgotten_between_half_a_ttl_and_a_ttl_after_they_were_written() {
        let k = KnownStacks::default();
        let unstored = |h| k.unstored(|wanted| wanted(h));
        let t0 = Instant::now();
        assert!(unstored(1));
        k.remember([1, 2].into_iter(), t0);
        assert!(!unstored(1) && !unstored(2) && unstored(3));
        // Half a TTL later the first generation retires, still known.
        k.remember([3].into_iter(), t0 + KNOWN_STACK_TTL / 2);
        assert!(!unstored(1) && !unstored(3));
        // Another half later it is forgotten (its frames are written again); the second is not.
        k.remember([4].into_iter(), t0 + KNOWN_STACK_TTL);
        assert!(unstored(1) && unstored(2) && !unstored(3) && !unstored(4));
        // After a whole TTL without an insert, everything is forgotten at once.
        k.remember([5].into_iter(), t0 + 3 * KNOWN_STACK_TTL);
        assert!(unstored(3) && unstored(4) && !unstored(5));
        // A snapshot in use is not changed by a later insert.
        let snap = k.snapshot();
        k.remember([6].into_iter(), t0 + 3 * KNOWN_STACK_TTL);
        assert!(!snap.contains(6) && !unstored(6));
        // Past the size bound the memory starts over.
        k.remember(0..KNOWN_STACK_MAX as u64 + 10, t0 + 3 * KNOWN_STACK_TTL);
        k.remember([7].into_iter(), t0 + 3 * KNOWN_STACK_TTL);
        assert!(unstored(5) && !unstored(7));
    }

    #[test]
    fn hash_slots_hold_exactly_what_was_inserted() {
        // Against a reference set: growth, 0 (the empty-slot value), repeats, and hashes that
        // differ only in high bits.
        let mut s = HashSlots::default();
        let mut reference = std::collections::HashSet::new();
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for i in 0..50_000u64 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let h = match i % 5 {
                0 => i << 40,
                1 => 0,
                2 => x % 1000,
                _ => x,
            };
            s.insert(h);
            reference.insert(h);
        }
        assert_eq!(s.len(), reference.len());
        assert!(s.slots.len() >= 2 * s.len);
        for h in reference.iter() {
            assert!(s.contains(*h), "{h} inserted, not found");
        }
        let mut y = 12345u64;
        for _ in 0..50_000 {
            y = y.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            assert_eq!(s.contains(y), reference.contains(&y), "{y}");
        }
        assert!(!HashSlots::default().contains(7) && !HashSlots::default().contains(0));
    }
}

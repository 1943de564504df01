//! The attempts in progress, stored so that every operation the tracker needs is O(1) whatever
//! their number, and their memory is bounded and small.
//!
//! - A slab (`Vec<Attempt>`) of fixed-size records with a stack of free slot numbers: no
//!   allocation per attempt, and a record never moves while it lives, so it can be named by a
//!   `u32` slot number. The free slots are a separate `Vec<u32>` (4 bytes per slot) rather than
//!   a list threaded through the free records: taking a slot then reads no cold record, which
//!   for a tracker larger than the caches is a cache miss saved on every new attempt.
//! - A hash index from (source, door) to slot (`tracker/index.rs`), keyed per process.
//! - One FIFO list per door, threaded through the records (`prev`/`next` slot numbers). All the
//!   attempts of a door share its timeout and `now` never goes back, so list order is deadline
//!   order: the head is the next to expire, and the oldest attempt overall is one of the heads.
//! - Per door, how many of its attempts are at stage 1, for a fair choice of whom to evict
//!   ([`Attempts::victim`]).

use std::hash::BuildHasher;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use hashbrown::DefaultHashBuilder;

use super::index::{Index, Position};
use super::prefetch::prefetch;
use crate::time::Timestamp;

/// How many hashes [`Attempts::warm`] takes at most.
pub(super) const WARM_KEYS: usize = 64;

/// A key for [`Attempts::warm`], and what its hit would do.
#[derive(Debug, Clone, Copy, Default)]
pub(super) struct Warm {
    /// [`Attempts::hash`] of the key.
    pub(super) hash: u64,
    /// The hit would start an attempt if there were none.
    pub(super) starts: bool,
    /// Bit `s`: at stage `s` the hit would merely advance the attempt, which then stays in
    /// its list (its neighbours need not be read).
    pub(super) advances: u64,
}

/// "No slot": the end of a list.
const NIL: u32 = u32::MAX;

/// The largest number of attempts the store can hold: slot numbers are `u32` and [`NIL`] is
/// reserved.
pub(super) const MAX_CAPACITY: usize = (u32::MAX - 1) as usize;

/// The most attempts whose memory [`Attempts::new`] reserves up front: 10 MiB of address space
/// for the slab, 1 MiB for the free list and 2 MiB for the index, two and a half times the
/// default `max_attempts`. A store with a larger cap grows past that as it needs to: a host
/// with strict overcommit accounting charges a reservation as if it were used.
const RESERVED: usize = 1 << 18;

/// The slab grows by an eighth of its size at a time (at least this many records): doubling
/// would leave up to half of it unused, which the under-64-bytes-per-attempt budget cannot pay.
const MIN_GROWTH: usize = 16;

/// A knocker's address as a fixed-size key: IPv4 in the first four bytes, with the family kept
/// apart so that an IPv4 source and the IPv4-mapped IPv6 source `::ffff:a.b.c.d` stay distinct.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(super) struct Source {
    octets: [u8; 16],
    v6: bool,
}

impl From<IpAddr> for Source {
    fn from(ip: IpAddr) -> Source {
        match ip {
            IpAddr::V4(v4) => {
                let mut octets = [0; 16];
                octets[..4].copy_from_slice(&v4.octets());
                Source { octets, v6: false }
            }
            IpAddr::V6(v6) => Source {
                octets: v6.octets(),
                v6: true,
            },
        }
    }
}

impl From<Source> for IpAddr {
    fn from(s: Source) -> IpAddr {
        if s.v6 {
            IpAddr::V6(Ipv6Addr::from(s.octets))
        } else {
            let [a, b, c, d, ..] = s.octets;
            IpAddr::V4(Ipv4Addr::new(a, b, c, d))
        }
    }
}

/// One attempt in progress (40 bytes), or a free slot (stage 0).
#[derive(Debug, Clone, Copy)]
pub(super) struct Attempt {
    source: Source,
    /// When its first knock arrived.
    started: Timestamp,
    /// Neighbours in the door's list.
    prev: u32,
    next: u32,
    door: u32,
    /// Knocks matched so far, 1 ..= sequence length - 1; 0 for a free slot.
    stage: u8,
}

impl Attempt {
    /// The knocker.
    pub(super) fn source(&self) -> IpAddr {
        self.source.into()
    }

    /// When its first knock arrived.
    pub(super) fn started(&self) -> Timestamp {
        self.started
    }

    /// The door it is knocking on.
    pub(super) fn door(&self) -> u32 {
        self.door
    }

    /// Knocks matched so far.
    pub(super) fn stage(&self) -> u8 {
        self.stage
    }

    /// Prefetches the record's first and last fields: a record may straddle two cache lines,
    /// and this brings in both.
    fn touch(&self) {
        prefetch(&self.started);
        prefetch(&self.source.octets[15]);
    }
}

/// Where [`Attempts::find`] found an attempt: its slot, and its place in the index so that
/// removing it does not probe the index again.
#[derive(Debug, Clone, Copy)]
pub(super) struct Found {
    pub(super) slot: u32,
    hash: u64,
    pos: Position,
}

/// Head and tail of one door's list.
#[derive(Debug, Clone, Copy)]
struct Queue {
    head: u32,
    tail: u32,
}

const EMPTY_QUEUE: Queue = Queue {
    head: NIL,
    tail: NIL,
};

/// The attempts in progress; see the module documentation.
#[derive(Debug)]
pub(super) struct Attempts {
    slots: Vec<Attempt>,
    /// Free slots; its capacity is kept at the slab's, so pushing never allocates.
    free: Vec<u32>,
    /// Live attempts.
    len: usize,
    /// Cap on live attempts.
    max: usize,
    index: Index,
    hasher: DefaultHashBuilder,
    queues: Vec<Queue>,
    /// Per door: attempts at stage 1.
    first_stage: Vec<u32>,
}

impl Attempts {
    /// An empty store for `doors` doors and at most `max` attempts (1 ..= [`MAX_CAPACITY`]).
    ///
    /// Its memory for `max` attempts (up to [`RESERVED`]) is reserved here, and the pages are
    /// only taken as the attempts come: a flood then fills memory in place where growth
    /// would reallocate the slab and the index's table dozens of times, each time on fresh
    /// pages, while the knocks wait.
    pub(super) fn new(doors: usize, max: usize) -> Attempts {
        let max = max.clamp(1, MAX_CAPACITY);
        let reserved = max.min(RESERVED);
        Attempts {
            slots: Vec::with_capacity(reserved),
            free: Vec::with_capacity(reserved),
            len: 0,
            max,
            index: Index::with_capacity(reserved),
            hasher: DefaultHashBuilder::default(),
            queues: vec![EMPTY_QUEUE; doors],
            first_stage: vec![0; doors],
        }
    }

    /// Live attempts.
    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// The cap on live attempts.
    pub(super) fn max(&self) -> usize {
        self.max
    }

    /// Whether an insert needs room made first.
    pub(super) fn is_full(&self) -> bool {
        self.len >= self.max
    }

    /// The attempt in `slot`, which must come from this store and still be live.
    pub(super) fn get(&self, slot: u32) -> &Attempt {
        &self.slots[slot as usize]
    }

    /// The attempt of `source` on `door` (`hash`: [`Attempts::hash`] of them), if any.
    pub(super) fn find(&self, source: Source, door: u32, hash: u64) -> Option<Found> {
        let slots = &self.slots;
        let pos = self.index.find(hash, |slot| {
            let a = &slots[slot as usize];
            a.source == source && a.door == door
        })?;
        let slot = self.index.slot(pos);
        Some(Found { slot, hash, pos })
    }

    /// The index's hash of (`source`, `door`).
    pub(super) fn hash(&self, source: Source, door: u32) -> u64 {
        key_hash(&self.hasher, source, door)
    }

    /// Starts the memory reads that handling these keys will make, and returns without
    /// using them: index chunks; then the records they point to; then those records' list
    /// neighbours, and, if the new attempts will not fit, the index chunks of the oldest
    /// attempts that make room for them. Each pass is a tight loop of independent loads, so
    /// the CPU keeps many cache misses in flight at once. A key is a hash and whether its hit
    /// would do (see [`Warm`]). Keys past [`WARM_KEYS`] are left out. Changes nothing.
    pub(super) fn warm(&self, keys: &[Warm]) {
        let keys = &keys[..keys.len().min(WARM_KEYS)];
        for key in keys {
            self.index.touch(key.hash);
        }
        // Each candidate record, with the stages at which its key's hit merely advances.
        let mut slots = [(NIL, 0); 2 * WARM_KEYS];
        let (mut found, mut starts) = (0, 0);
        for key in keys {
            let before = found;
            self.index.candidates(key.hash, |slot| {
                if let Some(s) = slots.get_mut(found) {
                    *s = (slot, key.advances);
                    found += 1;
                }
            });
            starts += usize::from(key.starts && found == before);
        }
        let slots = &slots[..found];
        for &(slot, _) in slots {
            if let Some(a) = self.slots.get(slot as usize) {
                a.touch();
            }
        }
        // New attempts take the slots on top of the free stack.
        for &slot in self.free.iter().rev().take(starts) {
            if let Some(a) = self.slots.get(slot as usize) {
                a.touch();
            }
        }
        let mut later = [NIL; 4 * WARM_KEYS];
        let mut n = 0;
        for &(slot, advances) in slots {
            let Some(a) = self.slots.get(slot as usize) else {
                continue;
            };
            if a.stage < 64 && advances & (1 << a.stage) != 0 {
                continue; // it stays in its list
            }
            later[n..n + 2].copy_from_slice(&[a.prev, a.next]);
            n += 2;
        }
        for &slot in &later[..n] {
            if let Some(a) = self.slots.get(slot as usize) {
                a.touch();
            }
        }
        self.warm_evictions((self.len + starts).saturating_sub(self.max));
    }

    /// Touches the index chunks of the attempts that `evictions` evictions would remove: at
    /// most that many from the head of each door's list (the oldest attempt is one of the
    /// heads), [`WARM_KEYS`] in all. Walking a list reads records one after the other, but
    /// making room reads the same records in the same order anyway.
    fn warm_evictions(&self, evictions: usize) {
        let mut hashes = [0u64; WARM_KEYS];
        let mut n = 0;
        for queue in &self.queues {
            let mut slot = queue.head;
            for _ in 0..evictions {
                let (Some(a), Some(h)) = (self.slots.get(slot as usize), hashes.get_mut(n)) else {
                    break;
                };
                *h = key_hash(&self.hasher, a.source, a.door);
                n += 1;
                slot = a.next;
            }
        }
        for &hash in &hashes[..n] {
            self.index.touch(hash);
        }
    }

    /// Starts an attempt at stage 1, at the end of its door's list. The caller makes room first;
    /// returns the slot, or `None` if the store is full anyway.
    pub(super) fn insert(
        &mut self,
        source: Source,
        door: u32,
        hash: u64,
        now: Timestamp,
    ) -> Option<u32> {
        if self.is_full() || door as usize >= self.queues.len() {
            return None;
        }
        let record = Attempt {
            source,
            started: now,
            prev: NIL,
            next: NIL,
            door,
            stage: 1,
        };
        let slot = self.allocate(record);
        let (slots, hasher) = (&self.slots, &self.hasher);
        self.index.insert(hash, slot, || {
            // Every live attempt but the new one, which is placed after.
            (0u32..)
                .zip(slots)
                .filter(move |&(s, a)| a.stage != 0 && s != slot)
                .map(|(s, a)| (s, key_hash(hasher, a.source, a.door)))
        });
        self.push_back(slot);
        self.len += 1;
        self.first_stage[door as usize] += 1;
        Some(slot)
    }

    /// Sets the stage of a live attempt.
    pub(super) fn set_stage(&mut self, slot: u32, stage: u8) {
        self.count_stage(slot, stage);
        self.slots[slot as usize].stage = stage;
    }

    /// Starts a live attempt over at stage 1 from `now`, moving it to the end of its list.
    pub(super) fn restart(&mut self, slot: u32, now: Timestamp) {
        self.unlink(slot);
        self.count_stage(slot, 1);
        let a = &mut self.slots[slot as usize];
        a.stage = 1;
        a.started = now;
        self.push_back(slot);
    }

    /// Keeps [`Attempts::first_stage`] right as `slot` (live, or just filled) goes from its
    /// recorded stage to `stage` (0: freed).
    fn count_stage(&mut self, slot: u32, stage: u8) {
        let a = &self.slots[slot as usize];
        let Some(n) = self.first_stage.get_mut(a.door as usize) else {
            return;
        };
        match (a.stage == 1, stage == 1) {
            (true, false) => *n -= 1,
            (false, true) => *n += 1,
            _ => {}
        }
    }

    /// The attempt to evict to make room for a new one on `door`: the oldest stage-1 attempt
    /// of the door with the most stage-1 attempts (`door` itself on a tie, else the lowest
    /// door); the oldest attempt of all if none is at stage 1. So spoofed first knocks on one
    /// door evict that door's spoofed attempts, not attempts on other doors, and a knocker
    /// past stage 1 goes only when no first-stage attempt is left. O(doors), as
    /// [`Attempts::oldest`].
    pub(super) fn victim(&self, door: u32) -> Option<u32> {
        let (most, _) = self
            .first_stage
            .iter()
            .enumerate()
            .max_by_key(|&(d, &n)| (n, d == door as usize, std::cmp::Reverse(d)))?;
        if self.first_stage[most] == 0 {
            return self.oldest();
        }
        // Its list is in start order: the first attempt at stage 1 is the oldest.
        let mut slot = self.queues[most].head;
        while let Some(a) = self.slots.get(slot as usize) {
            if a.stage == 1 {
                return Some(slot);
            }
            slot = a.next;
        }
        self.oldest()
    }

    /// Removes an attempt that [`Attempts::find`] just returned (nothing changed in between).
    pub(super) fn remove_found(&mut self, found: Found) {
        self.index.remove(found.hash, found.pos);
        self.release(found.slot);
    }

    /// Removes a live attempt.
    pub(super) fn remove(&mut self, slot: u32) {
        let a = self.slots[slot as usize];
        let hash = key_hash(&self.hasher, a.source, a.door);
        if let Some(pos) = self.index.find(hash, |s| s == slot) {
            self.index.remove(hash, pos);
        }
        self.release(slot);
    }

    /// The oldest attempt of `door`, the next of its attempts to expire.
    pub(super) fn head(&self, door: u32) -> Option<u32> {
        let head = self.queues.get(door as usize)?.head;
        (head != NIL).then_some(head)
    }

    /// The oldest attempt of all (the lowest door on a tie). O(doors).
    pub(super) fn oldest(&self) -> Option<u32> {
        self.queues
            .iter()
            .filter(|q| q.head != NIL)
            .map(|q| q.head)
            .min_by_key(|&slot| self.slots[slot as usize].started)
    }

    /// How many attempts `door` has in progress: O(that many), for status reports.
    pub(super) fn count(&self, door: u32) -> usize {
        let mut n = 0;
        let mut slot = self.head(door).unwrap_or(NIL);
        while slot != NIL {
            n += 1;
            slot = self.slots[slot as usize].next;
        }
        n
    }

    /// Removes every attempt of `door`; returns how many there were.
    pub(super) fn clear_door(&mut self, door: u32) -> usize {
        let mut removed = 0;
        while let Some(slot) = self.head(door) {
            self.remove(slot);
            removed += 1;
        }
        removed
    }

    /// Heap bytes written so far, at most: the slab up to its highest slot, as much of the free
    /// list (it never holds more), the index's table in use. Capacity reserved and never
    /// written is address space, not memory.
    pub(super) fn memory_bytes(&self) -> usize {
        self.slots.len() * (size_of::<Attempt>() + size_of::<u32>())
            + self.index.memory_bytes()
            + self.queues.capacity() * size_of::<Queue>()
    }

    /// A slot for `record`: a free one, or a new one at the end of the slab.
    fn allocate(&mut self, record: Attempt) -> u32 {
        if let Some(slot) = self.free.pop() {
            self.slots[slot as usize] = record;
            return slot;
        }
        if self.slots.len() == self.slots.capacity() {
            // Growing by an eighth keeps the amortised cost O(1) and the slack under 12.5%.
            let growth = (self.slots.len() / 8).max(MIN_GROWTH);
            let room = self.max.saturating_sub(self.slots.len()).max(1);
            self.slots.reserve_exact(growth.min(room));
            // Room for every slot to be free at once: `release` never allocates. The list is
            // empty here (a slot is only made when none is free), so it is replaced, not
            // grown: a realloc would copy its whole old block, once per growth of the slab.
            debug_assert!(self.free.is_empty());
            self.free = Vec::with_capacity(self.slots.capacity());
        }
        // The slab never holds more than `max` <= MAX_CAPACITY slots: a new one is only made
        // when none is free, that is when every slot is live and `len < max`.
        let slot = self.slots.len() as u32;
        self.slots.push(record);
        slot
    }

    /// Unlinks a live attempt and puts its slot on the free list.
    fn release(&mut self, slot: u32) {
        self.count_stage(slot, 0);
        self.unlink(slot);
        self.slots[slot as usize].stage = 0;
        self.free.push(slot);
        self.len -= 1;
    }

    fn push_back(&mut self, slot: u32) {
        let door = self.slots[slot as usize].door as usize;
        let tail = self.queues[door].tail;
        let a = &mut self.slots[slot as usize];
        a.prev = tail;
        a.next = NIL;
        if tail == NIL {
            self.queues[door].head = slot;
        } else {
            self.slots[tail as usize].next = slot;
        }
        self.queues[door].tail = slot;
    }

    fn unlink(&mut self, slot: u32) {
        let Attempt {
            prev, next, door, ..
        } = self.slots[slot as usize];
        let queue = &mut self.queues[door as usize];
        if prev == NIL {
            queue.head = next;
        } else {
            self.slots[prev as usize].next = next;
        }
        if next == NIL {
            queue.tail = prev;
        } else {
            self.slots[next as usize].prev = prev;
        }
    }
}

fn key_hash(hasher: &DefaultHashBuilder, source: Source, door: u32) -> u64 {
    hasher.hash_one((u128::from_ne_bytes(source.octets), source.v6, door))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn src(n: u8) -> Source {
        Source::from(IpAddr::V4(Ipv4Addr::new(198, 18, 0, n)))
    }

    #[test]
    fn record_is_small() {
        assert!(size_of::<Attempt>() <= 40, "{}", size_of::<Attempt>());
    }

    #[test]
    fn touch_reads_both_ends_of_a_record() {
        use std::mem::offset_of;
        let end = offset_of!(Attempt, source) + offset_of!(Source, octets) + 16;
        assert_eq!(offset_of!(Attempt, started), 0);
        assert!(
            size_of::<Attempt>() - end < 8,
            "only padding after the last touched byte"
        );
    }

    #[test]
    fn source_keeps_family() {
        let v4: IpAddr = "1.2.3.4".parse().unwrap();
        let mapped: IpAddr = "::ffff:1.2.3.4".parse().unwrap();
        assert_ne!(Source::from(v4), Source::from(mapped));
        assert_eq!(IpAddr::from(Source::from(v4)), v4);
        assert_eq!(IpAddr::from(Source::from(mapped)), mapped);
    }

    #[test]
    fn lists_keep_start_order_and_slots_are_reused() {
        let mut a = Attempts::new(2, 10);
        let s1 = a
            .insert(src(1), 0, a.hash(src(1), 0), Timestamp::from_millis(1))
            .unwrap();
        let s2 = a
            .insert(src(2), 1, a.hash(src(2), 1), Timestamp::from_millis(2))
            .unwrap();
        let s3 = a
            .insert(src(3), 0, a.hash(src(3), 0), Timestamp::from_millis(3))
            .unwrap();
        assert_eq!(a.head(0), Some(s1));
        assert_eq!(a.oldest(), Some(s1));
        a.restart(s1, Timestamp::from_millis(4));
        assert_eq!(a.head(0), Some(s3));
        assert_eq!(a.oldest(), Some(s2));
        let found = a.find(src(2), 1, a.hash(src(2), 1)).unwrap();
        assert_eq!(found.slot, s2);
        a.remove_found(found);
        assert!(a.find(src(2), 1, a.hash(src(2), 1)).is_none());
        assert_eq!(a.head(1), None);
        assert_eq!(a.len(), 2);
        let s4 = a
            .insert(src(4), 1, a.hash(src(4), 1), Timestamp::from_millis(5))
            .unwrap();
        assert_eq!(s4, s2, "the freed slot is reused");
        assert_eq!(a.clear_door(0), 2);
        assert!(
            a.find(src(1), 0, a.hash(src(1), 0)).is_none()
                && a.find(src(3), 0, a.hash(src(3), 0)).is_none()
        );
        assert_eq!(a.len(), 1);
        assert_eq!(a.oldest(), Some(s4));
    }

    #[test]
    fn full_store_refuses_and_bad_door_is_refused() {
        let mut a = Attempts::new(1, 1);
        assert!(
            a.insert(src(1), 0, a.hash(src(1), 0), Timestamp::ZERO)
                .is_some()
        );
        assert!(a.is_full());
        assert!(
            a.insert(src(2), 0, a.hash(src(2), 0), Timestamp::ZERO)
                .is_none()
        );
        let mut b = Attempts::new(1, 0);
        assert_eq!(b.max(), 1);
        assert!(
            b.insert(src(1), 7, b.hash(src(1), 7), Timestamp::ZERO)
                .is_none()
        );
    }

    #[test]
    fn filling_to_the_cap_never_moves_the_memory_reserved_for_it() {
        let mut a = Attempts::new(1, 5000);
        // The index's table grows in place too: `index.rs` tests that.
        let where_ = |a: &Attempts| (a.slots.as_ptr(), a.free.as_ptr());
        let reserved = where_(&a);
        for n in 0..5000u32 {
            let s = Source::from(IpAddr::V4(Ipv4Addr::from(0xc612_0000 + n)));
            a.insert(s, 0, a.hash(s, 0), Timestamp::ZERO).unwrap();
            assert_eq!(where_(&a), reserved, "moved at {n} attempts");
        }
        assert!(a.is_full());
        // 5000 records and free-list entries, and 5000 / 9 entries a chunk -> 1024 chunks.
        assert_eq!(a.memory_bytes(), 5000 * 44 + 1024 * 64 + size_of::<Queue>());
    }
}

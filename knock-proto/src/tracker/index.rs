//! The hash index from (source, door) to slab slot: a small open-addressing table written for
//! the tracker instead of `hashbrown`, because a batch of hits wants to know *where* each
//! lookup will read before doing it. `hashbrown` computes a bucket position only inside its
//! lookup, so the reads of a batch could only be issued one hit after another, each waiting for
//! the previous miss; here the position of a key is `hash & mask`, known as soon as the hash
//! is, so [`Index::touch`] can start the reads of a whole batch at once and the CPU overlaps
//! their cache misses (see `Tracker::handle_batch`).
//!
//! Layout (the F14 design of folly, simplified): the table is a power-of-two number of
//! 64-byte, cache-line-aligned chunks of 12 entries. An entry is a slab slot (`u32`) and a
//! one-byte tag taken from the top of the hash (0 marks a free entry), so a lookup reads one
//! cache line and compares the record of a tag match only (a false match on one of about
//! 255). A key lives in its home chunk (`hash & mask`) or, if that is full, in the next chunk
//! with room; every chunk counts the entries that passed it full (`overflow`), so a lookup
//! stops at the first chunk with no overflow, and removal just frees the entry and decrements
//! the counts on its way home: no tombstones, no rehash in place. The table holds at most 9
//! entries per chunk on average (3/4 full; at that load about one chunk in eight overflows)
//! and doubles when more are needed: 5.3 to 14.2 bytes per entry.
//!
//! The table for the tracker's cap is reserved up front ([`Index::with_capacity`]) and grows
//! inside that reservation: the doubled table is the old one cleared and extended in place,
//! not a new allocation with the old freed. Reserving costs address space only (the pages
//! are the kernel's until first written), so the table's resident memory is what it uses.
//! Growth then pays no fresh pages for every earlier table and, for the tables past glibc's
//! mmap threshold, no `mmap` and `munmap` each with the unmapping's TLB shootdown across the
//! daemon's threads: under a flood from new sources, growth happens while packets wait, so
//! its cost lands on the engine's busiest moment.
//!
//! The hash is keyed per process (foldhash's `RandomState` via `hashbrown`): sources are
//! chosen by whoever sends the packets, and a fixed hash would let them aim every source at
//! one chunk.

use super::lanes::{WIDTH, lanes, matching};
use super::prefetch::prefetch;

/// Entries the table holds per chunk at most, on average: a load of 3/4.
const PER_CHUNK: usize = 9;

/// One cache line of the table.
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Chunk {
    /// A nonzero tag per used entry (see [`tag`]); 0: free.
    tags: [u8; WIDTH],
    /// How many entries whose probe passed this chunk full live in a later chunk.
    overflow: u32,
    /// Slab slots of the used entries.
    slots: [u32; WIDTH],
}

const EMPTY: Chunk = Chunk {
    tags: [0; WIDTH],
    overflow: 0,
    slots: [0; WIDTH],
};

/// Where an entry is: chunk and lane.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Position {
    chunk: usize,
    lane: usize,
}

/// The index; see the module documentation.
#[derive(Debug, Default)]
pub(super) struct Index {
    /// The table: `len()` chunks in use (a power of two, or none), within a capacity reserved
    /// for the most entries expected.
    chunks: Vec<Chunk>,
    len: usize,
}

/// The tag of a hash: its top byte, never 0.
fn tag(hash: u64) -> u8 {
    ((hash >> 56) as u8).max(1)
}

impl Index {
    /// An empty index that can grow to `entries` entries without allocating.
    pub(super) fn with_capacity(entries: usize) -> Index {
        Index {
            chunks: Vec::with_capacity(entries.div_ceil(PER_CHUNK).next_power_of_two()),
            len: 0,
        }
    }

    /// Bytes of the table in use; the reserved rest is address space, never written.
    pub(super) fn memory_bytes(&self) -> usize {
        self.chunks.len() * size_of::<Chunk>()
    }

    fn mask(&self) -> usize {
        self.chunks.len().wrapping_sub(1)
    }

    /// The home chunk of `hash` (the table is not empty).
    fn home(&self, hash: u64) -> usize {
        hash as usize & self.mask()
    }

    /// The slot of the entry with `hash` for which `is` holds, and where it is.
    pub(super) fn find(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Option<Position> {
        if self.chunks.is_empty() {
            return None;
        }
        let (tag, mut at) = (tag(hash), self.home(hash));
        // Every chunk is visited at most once: the table is never full, so some chunk on the
        // way has no overflow.
        for _ in 0..self.chunks.len() {
            let chunk = &self.chunks[at];
            for lane in lanes(matching(&chunk.tags, tag)) {
                if is(chunk.slots[lane]) {
                    return Some(Position { chunk: at, lane });
                }
            }
            if chunk.overflow == 0 {
                return None;
            }
            at = (at + 1) & self.mask();
        }
        None
    }

    /// The slot at `pos`, which [`Index::find`] just returned.
    pub(super) fn slot(&self, pos: Position) -> u32 {
        self.chunks[pos.chunk].slots[pos.lane]
    }

    /// Adds `slot` under `hash`. `entries` gives every entry already in, as (slot, hash),
    /// for growing: the caller walks its slab in order, which reads memory sequentially
    /// where looking each slot up in the old table would miss the cache once per entry.
    pub(super) fn insert<I: Iterator<Item = (u32, u64)>>(
        &mut self,
        hash: u64,
        slot: u32,
        entries: impl FnOnce() -> I,
    ) {
        if self.len >= self.chunks.len() * PER_CHUNK {
            self.grow(entries());
        }
        self.place(hash, slot);
        self.len += 1;
    }

    /// Removes the entry at `pos`, which [`Index::find`] just returned for `hash`.
    pub(super) fn remove(&mut self, hash: u64, pos: Position) {
        let Some(chunk) = self.chunks.get_mut(pos.chunk) else {
            return;
        };
        chunk.tags[pos.lane] = 0;
        self.len -= 1;
        let mut at = self.home(hash);
        while at != pos.chunk {
            let chunk = &mut self.chunks[at];
            chunk.overflow = chunk.overflow.saturating_sub(1);
            at = (at + 1) & self.mask();
        }
    }

    /// Starts reading the home chunk of `hash` without waiting for it: for a batch, so that
    /// the misses of many lookups overlap.
    pub(super) fn touch(&self, hash: u64) {
        if !self.chunks.is_empty() {
            prefetch(&self.chunks[self.home(hash)]);
        }
    }

    /// Calls `each` with the slot of every entry of the home chunk of `hash` whose tag
    /// matches: the candidates a lookup would compare.
    pub(super) fn candidates(&self, hash: u64, mut each: impl FnMut(u32)) {
        if self.chunks.is_empty() {
            return;
        }
        let chunk = &self.chunks[self.home(hash)];
        for lane in lanes(matching(&chunk.tags, tag(hash))) {
            each(chunk.slots[lane]);
        }
    }

    /// Puts an entry in the first chunk with room from its home on, counting the overflow
    /// of every full chunk it passes. There is room: the table is at most 3/4 full.
    fn place(&mut self, hash: u64, slot: u32) {
        let (tag, mut at) = (tag(hash), self.home(hash));
        loop {
            let chunk = &mut self.chunks[at];
            if let Some(lane) = lanes(matching(&chunk.tags, 0)).next() {
                chunk.tags[lane] = tag;
                chunk.slots[lane] = slot;
                return;
            }
            chunk.overflow += 1;
            at = (at + 1) & self.mask();
        }
    }

    /// Doubles the table (from nothing: one chunk) and places `entries` (every entry it
    /// held) anew. O(entries), at most once per doubling of the entries: O(1) amortised.
    fn grow(&mut self, entries: impl Iterator<Item = (u32, u64)>) {
        let size = (self.chunks.len() * 2).max(1);
        if size > self.chunks.capacity() {
            // Past the reservation: a new block of exactly `size`, where letting `resize`
            // grow the old one would copy it (a 64-byte-aligned block is reallocated by
            // allocate, copy and free) and round its capacity up.
            self.chunks = Vec::with_capacity(size);
        }
        self.chunks.clear();
        self.chunks.resize(size, EMPTY);
        // Each entry goes to a random chunk of a table larger than the caches: placed as they
        // come, every entry would wait for its own miss. Each chunk is prefetched instead,
        // and its entry placed `AHEAD` entries later, once the line has arrived.
        const AHEAD: usize = 16;
        let mut pending = [(0u32, 0u64); AHEAD];
        let mut placed = 0;
        for (slot, hash) in entries {
            prefetch(&self.chunks[self.home(hash)]);
            let waiting = std::mem::replace(&mut pending[placed % AHEAD], (slot, hash));
            if placed >= AHEAD {
                self.place(waiting.1, waiting.0);
            }
            placed += 1;
        }
        for n in placed.saturating_sub(AHEAD)..placed {
            let (slot, hash) = pending[n % AHEAD];
            self.place(hash, slot);
        }
        debug_assert_eq!(placed, self.len, "grow was given every entry");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hashes that all share home chunk 0 and tag 0xab: the worst case, on purpose.
    fn colliding(slot: u32) -> u64 {
        0xab00_0000_0000_0000 | (u64::from(slot) << 32)
    }

    #[test]
    fn chunk_is_one_cache_line() {
        assert_eq!(size_of::<Chunk>(), 64);
        assert_eq!(align_of::<Chunk>(), 64);
    }

    #[test]
    fn overflowing_entries_are_found_and_removed_without_tombstones() {
        let mut index = Index::default();
        for slot in 0..40 {
            index.insert(colliding(slot), slot, || {
                (0..slot).map(|s| (s, colliding(s)))
            });
        }
        assert_eq!(index.chunks.len(), 8);
        for slot in 0..40 {
            let pos = index.find(colliding(slot), |s| s == slot).unwrap();
            assert_eq!(index.slot(pos), slot);
        }
        assert!(index.find(colliding(99), |s| s == 99).is_none());
        for slot in (0..40).rev() {
            let pos = index.find(colliding(slot), |s| s == slot).unwrap();
            index.remove(colliding(slot), pos);
        }
        assert_eq!(index.len, 0);
        assert!(
            index
                .chunks
                .iter()
                .all(|c| c.overflow == 0 && c.tags == [0; WIDTH])
        );
    }

    #[test]
    fn growth_stays_in_the_reservation_and_past_it_still_finds_everything() {
        let hash = |slot: u32| u64::from(slot).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        let mut index = Index::with_capacity(100);
        let reserved = (index.chunks.as_ptr(), index.chunks.capacity());
        assert_eq!(
            reserved.1, 16,
            "100 entries at 9 a chunk, rounded up to a power of two"
        );
        for slot in 0..300 {
            index.insert(hash(slot), slot, || (0..slot).map(|s| (s, hash(s))));
            if slot < 144 {
                let now = (index.chunks.as_ptr(), index.chunks.capacity());
                assert_eq!(
                    now, reserved,
                    "grew out of its reservation at {slot} entries"
                );
            }
            assert_eq!(index.memory_bytes(), index.chunks.len() * 64);
        }
        assert_eq!(index.chunks.len(), 64, "doubled past the reservation");
        for slot in 0..300 {
            let pos = index.find(hash(slot), |s| s == slot).unwrap();
            assert_eq!(index.slot(pos), slot);
        }
        // Each chunk's overflow is exactly the entries that live past it with a home at or
        // before it: nothing left over from the tables before the last growth.
        let mut expected = vec![0u32; index.chunks.len()];
        let mut placed = 0;
        for (at, chunk) in index.chunks.iter().enumerate() {
            for lane in (0..WIDTH).filter(|&l| chunk.tags[l] != 0) {
                placed += 1;
                let mut passed = index.home(hash(chunk.slots[lane]));
                while passed != at {
                    expected[passed] += 1;
                    passed = (passed + 1) & index.mask();
                }
            }
        }
        assert_eq!(placed, 300, "a grown table holds every entry once");
        let overflow: Vec<u32> = index.chunks.iter().map(|c| c.overflow).collect();
        assert_eq!(overflow, expected);
    }

    #[test]
    fn candidates_are_the_home_chunk_tag_matches() {
        let mut index = Index::default();
        index.insert(colliding(1), 1, std::iter::empty);
        index.insert(0x0100_0000_0000_0000, 2, || [(1, colliding(1))].into_iter());
        let mut seen = Vec::new();
        index.candidates(colliding(7), |s| seen.push(s));
        assert_eq!(seen, [1]);
    }
}

//! [`Tracker::handle_batch`]: many hits at once, with their memory reads overlapped.
//!
//! Past a few hundred thousand attempts the tracker's memory no longer fits the CPU's caches,
//! and a hit for a random source waits for a few cache misses one after the other (the index
//! chunk, then the record it names, then the record's list neighbours), each costing about as
//! much as the rest of the work together. A daemon under a flood has a backlog of hits,
//! though, so it can hand them over together: the tracker then works out every hit's keys
//! first, starts all their reads ([`Attempts::warm`](super::attempts::Attempts::warm)), and handles the hits one by one only
//! after that, when the misses have overlapped instead of following one another.

use super::attempts::{Source, WARM_KEYS, Warm};
use super::{Event, Timestamp, Tracker};
use crate::wire::Hit;

/// How many hits [`Tracker::handle_batch`] warms up at a time: enough to keep the CPU's
/// outstanding misses busy, few enough that the first hit's lines are still cached when it is
/// handled.
pub const BATCH_WINDOW: usize = 32;

/// The keys of a window's hits: (source, door, hash) for each door a hit counts for, in
/// `handle`'s order, and where each hit's keys end.
struct Plan {
    keys: [(Source, u32, u64); WARM_KEYS],
    /// For [`Attempts::warm`](super::attempts::Attempts::warm): each key's hash, and what
    /// its hit would do: start an attempt if there is none, merely advance one at which stages.
    warm: [Warm; WARM_KEYS],
    ends: [usize; BATCH_WINDOW],
    /// Hits planned; the rest of the window (a hit whose keys would not fit) goes through
    /// `handle`.
    hits: usize,
}

impl Tracker {
    /// Handles hits in order, each at its own time, exactly as [`Tracker::handle`] one by one
    /// would, but faster when the attempts outgrow the CPU's caches: the memory reads of up to
    /// [`BATCH_WINDOW`] hits are started together, so their cache misses overlap.
    ///
    /// Stops after a hit that opened a door marked with [`Tracker::set_stop_on_open`], so that
    /// the caller can act on it (give a one-time door its next sequence) before the next hit
    /// counts. Returns how many hits it handled: all of them, or up to and including that one.
    pub fn handle_batch(&mut self, hits: &[(Timestamp, Hit)], events: &mut Vec<Event>) -> usize {
        let mut handled = 0;
        // One plan for every window, filled in place: built and returned per window, its
        // 4 KiB were zeroed and copied each time.
        let mut plan = Plan {
            keys: [(Source::default(), 0, 0); WARM_KEYS],
            warm: [Warm::default(); WARM_KEYS],
            ends: [0; BATCH_WINDOW],
            hits: 0,
        };
        for window in hits.chunks(BATCH_WINDOW) {
            self.plan(window, &mut plan);
            let n = plan.ends[..plan.hits].last().copied().unwrap_or(0);
            self.attempts.warm(&plan.warm[..n]);
            for (i, (now, hit)) in window.iter().enumerate() {
                let before = events.len();
                if i < plan.hits {
                    let now = self.tick(*now);
                    let start = if i == 0 { 0 } else { plan.ends[i - 1] };
                    for &key in &plan.keys[start..plan.ends[i]] {
                        self.step(now, key, hit.knock, events);
                    }
                } else {
                    self.handle(*now, hit, events);
                }
                handled += 1;
                let stop = events[before..].iter().any(|e| match *e {
                    Event::Opened { door, .. } => self.doors.stop_on_open(door),
                    _ => false,
                });
                if stop {
                    return handled;
                }
            }
        }
        handled
    }

    /// Makes [`Tracker::handle_batch`] stop right after a hit that opens `door` (off by
    /// default): for doors whose sequence the caller changes when they open. An unknown door
    /// is ignored.
    pub fn set_stop_on_open(&mut self, door: super::DoorId, stop: bool) {
        self.doors.set_stop_on_open(door, stop);
    }

    /// Fills `plan` with the keys `handle` would step through for each hit of `window` (at
    /// most [`BATCH_WINDOW`] hits). Nothing a hit does changes which doors the next one counts
    /// for, so they can all be worked out first.
    fn plan(&self, window: &[(Timestamp, Hit)], plan: &mut Plan) {
        plan.hits = 0;
        let mut n = 0;
        'hits: for (i, (_, hit)) in window.iter().enumerate().take(BATCH_WINDOW) {
            let local = self.doors.is_local(hit.destination);
            let source = Source::from(hit.source);
            for c in self.doors.candidates(hit.knock) {
                let door = self.doors.member(c);
                if self.doors.counts(door, hit, local) {
                    let Some(key) = plan.keys.get_mut(n) else {
                        break 'hits;
                    };
                    let hash = self.attempts.hash(source, door);
                    *key = (source, door, hash);
                    plan.warm[n] = Warm {
                        hash,
                        starts: self.doors.knocks(door).first() == Some(&hit.knock),
                        advances: self.doors.advances(c),
                    };
                    n += 1;
                }
            }
            plan.ends[i] = n;
            plan.hits = i + 1;
        }
    }
}

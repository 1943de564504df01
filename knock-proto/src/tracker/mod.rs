//! The per-source knock state machine: hits and `now` in, stage/open/fail/expiry events out.
//!
//! knockd's rules, with its limitations fixed: state is kept per (source, door), so one source
//! can be in progress on several doors at once, and doors may share ports. For each door:
//!
//! - A hit counts only if its port and protocol are in the door's sequence, it was sent to the
//!   door's `target` (or, without one, to one of this host's addresses), and, for TCP, its flags
//!   meet the door's `tcpflags`. Anything else is ignored: it neither advances nor breaks.
//! - The first knock starts an attempt at stage 1 ([`Event::Stage`]); each next expected knock
//!   advances a stage; the last one opens the door ([`Event::Opened`]) and ends the attempt.
//! - A **repeat** (a hit on the knock that last advanced the attempt: the kernel retransmitting
//!   a telnet's SYN, a new connection attempt to the same port, a UDP datagram sent again)
//!   carries nothing new. If the next expected knock is that same knock (`02,02,02`), it counts
//!   as that knock; otherwise it is ignored: it neither breaks nor restarts the attempt. So a
//!   door written `2,1,2010` and one written `02,02,02,01,01,01,2010,2010,2010` both open for a
//!   sender that hits each port three times. A repeat only ever stands for a knock the door
//!   expects next, so it makes no door easier to guess: wrong ports, wrong order and late
//!   knocks fail as they did without repeats (see the proptests). Repeats ignored are counted
//!   ([`Stats::repeats`]).
//! - Any other counted hit fails the attempt ([`Event::Failed`], with the knock expected and
//!   the one received); if that hit is the door's first knock, a new attempt starts at stage 1
//!   in the same call (knockd drops the breaking packet instead).
//! - An attempt whose first knock is `seq_timeout` old or older expires ([`Event::Expired`]):
//!   in [`Tracker::expire`], which the caller runs at [`Tracker::poll_at`], and lazily when a
//!   hit for it arrives first, after which the hit is handled as if there were no attempt.
//!
//! Every hit costs O(1) whatever the number of sources in progress (O(doors that contain the
//! knock), in fact; amortised, as the hash index and the slab now and then grow), and memory is
//! bounded: at most `max_attempts` attempts, under 64 bytes each; when full, one is evicted
//! ([`Event::Evicted`]) to make room for a new one, so a flood of spoofed sources costs old
//! attempts, never memory or time. Eviction is fair: the oldest first-stage attempt of the door
//! with the most first-stage attempts goes, so a flood of first knocks on one door evicts its
//! own spoofed attempts, and a knocker past stage 1 only when no first-stage attempt is left. A caller with a backlog of hits hands them over together
//! ([`Tracker::handle_batch`]): same result, but once the attempts outgrow the CPU's caches
//! their memory reads overlap instead of waiting for one another. The layout is described in
//! `tracker/attempts.rs` and `tracker/index.rs`; BENCHMARKS.md has the measurements.
//!
//! The tracker owns no clock: `now` is an argument. It must not go backwards; if it does, the
//! tracker keeps using the latest time it was given.

mod attempts;
mod batch;
mod doors;
mod index;
mod lanes;
#[cfg(test)]
mod model;
mod prefetch;
#[cfg(test)]
mod proptests;
mod reload;
#[cfg(test)]
mod tests;

use std::net::IpAddr;
use std::time::Duration;

use crate::flags::TcpFlags;
use crate::sequence::{Knock, Sequence};
use crate::time::Timestamp;
use crate::wire::Hit;
use attempts::{Attempts, Found, Source};
pub use batch::BATCH_WINDOW;
use doors::Doors;

/// A door, by its index in the list given to [`Tracker::new`].
pub type DoorId = usize;

/// What the tracker needs to know about a door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorSpec {
    /// The expected knocks; `None` disables the door (a one-time sequence file used up).
    pub sequence: Option<Sequence>,
    /// Time allowed from the first knock to the last (rounded up to whole milliseconds).
    pub seq_timeout: Duration,
    /// TCP hits that do not meet these are ignored.
    pub tcpflags: TcpFlags,
    /// Count only hits sent to this address; `None`: hits sent to this host
    /// ([`Tracker::set_local_addresses`]).
    pub target: Option<IpAddr>,
}

/// What a hit or the passing of time did to an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Event {
    /// `source` reached `stage` (1-based) of `door`'s sequence.
    Stage {
        /// The knocker.
        source: IpAddr,
        /// The door.
        door: DoorId,
        /// Knocks matched so far.
        stage: u8,
    },
    /// `source` knocked `door`'s whole sequence.
    Opened {
        /// The knocker.
        source: IpAddr,
        /// The door.
        door: DoorId,
    },
    /// A counted hit that was neither the next expected knock nor a repeat of the last one
    /// ended the attempt.
    Failed {
        /// The knocker.
        source: IpAddr,
        /// The door.
        door: DoorId,
        /// Stages reached before the wrong hit.
        stage: u8,
        /// The knock the door expected next (stage + 1).
        expected: Knock,
        /// The knock that came instead.
        got: Knock,
    },
    /// The attempt's first knock is `seq_timeout` old.
    Expired {
        /// The knocker.
        source: IpAddr,
        /// The door.
        door: DoorId,
        /// Stages reached.
        stage: u8,
    },
    /// The attempt was dropped to make room for a new one (the tracker was full).
    Evicted {
        /// The knocker.
        source: IpAddr,
        /// The door.
        door: DoorId,
        /// Stages reached.
        stage: u8,
    },
}

impl Event {
    /// Why the attempt broke, for a [`Event::Failed`].
    pub fn broken(&self) -> Option<Broken> {
        match *self {
            Event::Failed {
                stage,
                expected,
                got,
                ..
            } => Some(Broken {
                stage,
                expected,
                got,
            }),
            _ => None,
        }
    }
}

/// Why an attempt broke. Displays as the daemon's `-v` line and `status` say it:
/// `sequence broken at stage 3: expected 1/tcp, got 2/tcp`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Broken {
    /// Stages reached before the wrong hit.
    pub stage: u8,
    /// The knock that was due.
    pub expected: Knock,
    /// The knock that came.
    pub got: Knock,
}

impl std::fmt::Display for Broken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (e, g) = (self.expected, self.got);
        write!(
            f,
            "sequence broken at stage {}: expected {}/{}, got {}/{}",
            self.stage, e.port, e.proto, g.port, g.proto
        )
    }
}

/// Counters, for the daemon's log and status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stats {
    /// Attempts in progress now.
    pub attempts: usize,
    /// The cap on attempts in progress.
    pub max_attempts: usize,
    /// Doors opened, in total.
    pub opened: u64,
    /// Attempts failed by a wrong knock, in total.
    pub failed: u64,
    /// Attempts expired, in total.
    pub expired: u64,
    /// Attempts evicted to make room, in total.
    pub evicted: u64,
    /// Attempts dropped because their door got a new sequence, in total.
    pub dropped: u64,
    /// Hits ignored as repeats of the knock that last advanced their attempt, in total.
    pub repeats: u64,
}

/// The state machine; see the module documentation.
#[derive(Debug)]
pub struct Tracker {
    doors: Doors,
    attempts: Attempts,
    /// The latest `now` seen: time never goes back inside the tracker.
    clock: Timestamp,
    stats: Stats,
    /// Per door: attempts evicted, in total.
    evicted_by_door: Vec<u64>,
}

impl Tracker {
    /// A tracker for `doors` (a [`DoorId`] is an index into it) keeping at most `max_attempts`
    /// attempts in progress (at least 1, at most 2^32 - 2).
    pub fn new(doors: Vec<DoorSpec>, max_attempts: usize) -> Tracker {
        let doors = Doors::new(doors);
        let attempts = Attempts::new(doors.len(), max_attempts);
        Tracker {
            stats: Stats {
                max_attempts: attempts.max(),
                ..Stats::default()
            },
            evicted_by_door: vec![0; doors.len()],
            doors,
            attempts,
            clock: Timestamp::ZERO,
        }
    }

    /// This host's addresses: doors without a target only count hits sent to one of them.
    /// An empty list (the default) means any destination.
    pub fn set_local_addresses(&mut self, addrs: &[IpAddr]) {
        self.doors.set_local(addrs);
    }

    /// Handles one packet at `now`, appending what it did to `events`. Allocates nothing once
    /// the tracker has grown to its working size (and `events` has room).
    pub fn handle(&mut self, now: Timestamp, hit: &Hit, events: &mut Vec<Event>) {
        let now = self.tick(now);
        let local = self.doors.is_local(hit.destination);
        let source = Source::from(hit.source);
        for i in self.doors.candidates(hit.knock) {
            let door = self.doors.member(i);
            if self.doors.counts(door, hit, local) {
                let hash = self.attempts.hash(source, door);
                self.step(now, (source, door, hash), hit.knock, events);
            }
        }
    }

    /// Expires every attempt whose first knock is `seq_timeout` old or older at `now`.
    /// O(doors + attempts expired).
    pub fn expire(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        let now = self.tick(now);
        for door in (0u32..).take(self.doors.len()) {
            let timeout = self.doors.timeout_ms(door);
            while let Some(slot) = self.attempts.head(door) {
                let attempt = self.attempts.get(slot);
                if !is_expired(now, attempt.started(), timeout) {
                    break;
                }
                self.report_expired(slot, events);
                self.attempts.remove(slot);
            }
        }
    }

    /// When [`Tracker::expire`] next has work: the earliest deadline of an attempt in progress,
    /// or `None` if there is none. It may already be past. O(doors).
    pub fn poll_at(&self) -> Option<Timestamp> {
        (0u32..)
            .take(self.doors.len())
            .filter_map(|door| {
                let started = self.attempts.get(self.attempts.head(door)?).started();
                let deadline = started
                    .as_millis()
                    .saturating_add(self.doors.timeout_ms(door));
                Some(Timestamp::from_millis(deadline))
            })
            .min()
    }

    /// Gives `door` a new expected sequence (`None` disables it), for one-time and time-derived
    /// sequences. Its attempts in progress are dropped without events (counted in
    /// [`Stats::dropped`]). An unknown door is ignored.
    pub fn set_sequence(&mut self, door: DoorId, sequence: Option<Sequence>) {
        let Ok(id) = u32::try_from(door) else {
            return;
        };
        if door >= self.doors.len() {
            return;
        }
        self.stats.dropped += self.attempts.clear_door(id) as u64;
        self.doors.set_sequence(door, sequence);
    }

    /// Attempts on `door` evicted to make room, in total (0 for an unknown door).
    pub fn evicted_on(&self, door: DoorId) -> u64 {
        self.evicted_by_door.get(door).copied().unwrap_or(0)
    }

    /// The counters.
    pub fn stats(&self) -> Stats {
        Stats {
            attempts: self.attempts.len(),
            ..self.stats
        }
    }

    /// Attempts in progress on `door` now (0 for an unknown door): O(that many), for status
    /// reports, not for every hit.
    pub fn attempts_on(&self, door: DoorId) -> usize {
        u32::try_from(door).map_or(0, |d| self.attempts.count(d))
    }

    /// Heap bytes the tracker has written, at most: attempts, their index, and the doors. The
    /// memory reserved for `max_attempts` attempts is not counted until it is used: the
    /// kernel gives a page only when it is first written.
    pub fn memory_bytes(&self) -> usize {
        self.attempts.memory_bytes() + self.doors.memory_bytes()
    }

    /// The time to act at: `now`, unless an earlier call was given a later one.
    fn tick(&mut self, now: Timestamp) -> Timestamp {
        self.clock = self.clock.max(now);
        self.clock
    }

    /// Applies a hit from `source` that counts for `door` (`hash`: their index hash).
    fn step(
        &mut self,
        now: Timestamp,
        (source, door, hash): (Source, u32, u64),
        knock: Knock,
        events: &mut Vec<Event>,
    ) {
        if let Some(found) = self.attempts.find(source, door, hash) {
            let attempt = self.attempts.get(found.slot);
            if !is_expired(now, attempt.started(), self.doors.timeout_ms(door)) {
                self.proceed(now, found, knock, events);
                return;
            }
            self.report_expired(found.slot, events);
            self.attempts.remove_found(found);
            // Then on as if there had been no attempt: the hit may start a new one.
        }
        self.start(now, (source, door, hash), knock, events);
    }

    /// A counted hit for a live attempt: advance, open, ignore a repeat, or fail (and maybe
    /// restart).
    fn proceed(&mut self, now: Timestamp, found: Found, knock: Knock, events: &mut Vec<Event>) {
        let attempt = self.attempts.get(found.slot);
        let (source, door, stage) = (attempt.source(), attempt.door(), attempt.stage());
        let knocks = self.doors.knocks(door);
        let id = door as DoorId;
        let Some(&expected) = knocks.get(usize::from(stage)) else {
            // Not reached: a live attempt's stage is below its sequence's length, and a new
            // sequence drops the door's attempts.
            self.attempts.remove_found(found);
            return;
        };
        if expected == knock {
            let reached = stage.saturating_add(1);
            if usize::from(reached) >= knocks.len() {
                events.push(Event::Opened { source, door: id });
                self.stats.opened += 1;
                self.attempts.remove_found(found);
            } else {
                self.attempts.set_stage(found.slot, reached);
                let stage = reached;
                events.push(Event::Stage {
                    source,
                    door: id,
                    stage,
                });
            }
            return;
        }
        if is_repeat(knocks, stage, knock) {
            self.stats.repeats += 1;
            return;
        }
        events.push(Event::Failed {
            source,
            door: id,
            stage,
            expected,
            got: knock,
        });
        self.stats.failed += 1;
        if knocks.first() == Some(&knock) {
            self.attempts.restart(found.slot, now);
            events.push(Event::Stage {
                source,
                door: id,
                stage: 1,
            });
        } else {
            self.attempts.remove_found(found);
        }
    }

    /// A counted hit from a source with no attempt on `door`: the first knock starts one
    /// (or opens a one-knock door); anything else is nothing to us.
    fn start(
        &mut self,
        now: Timestamp,
        (source, door, hash): (Source, u32, u64),
        knock: Knock,
        events: &mut Vec<Event>,
    ) {
        let knocks = self.doors.knocks(door);
        if knocks.first() != Some(&knock) {
            return;
        }
        let (ip, id) = (IpAddr::from(source), door as DoorId);
        if knocks.len() == 1 {
            events.push(Event::Opened {
                source: ip,
                door: id,
            });
            self.stats.opened += 1;
            return;
        }
        self.make_room(now, door, events);
        if self.attempts.insert(source, door, hash, now).is_some() {
            events.push(Event::Stage {
                source: ip,
                door: id,
                stage: 1,
            });
        }
    }

    /// When full, removes an attempt to make room for one on `door` (see
    /// `Attempts::victim`): as expired if it is, else evicted.
    fn make_room(&mut self, now: Timestamp, door: u32, events: &mut Vec<Event>) {
        if !self.attempts.is_full() {
            return;
        }
        let Some(slot) = self.attempts.victim(door) else {
            return;
        };
        let attempt = self.attempts.get(slot);
        if is_expired(
            now,
            attempt.started(),
            self.doors.timeout_ms(attempt.door()),
        ) {
            self.report_expired(slot, events);
        } else {
            events.push(Event::Evicted {
                source: attempt.source(),
                door: attempt.door() as DoorId,
                stage: attempt.stage(),
            });
            self.stats.evicted += 1;
            if let Some(n) = self.evicted_by_door.get_mut(attempt.door() as usize) {
                *n += 1;
            }
        }
        self.attempts.remove(slot);
    }

    /// Reports the attempt in `slot` as expired and counts it; the caller removes it.
    fn report_expired(&mut self, slot: u32, events: &mut Vec<Event>) {
        let attempt = self.attempts.get(slot);
        events.push(Event::Expired {
            source: attempt.source(),
            door: attempt.door() as DoorId,
            stage: attempt.stage(),
        });
        self.stats.expired += 1;
    }
}

/// Whether `knock` repeats the knock that brought an attempt at `stage` there (the
/// `stage`th of `knocks`, 1-based). Only asked once `knock` is known not to be the next one.
fn is_repeat(knocks: &[Knock], stage: u8, knock: Knock) -> bool {
    usize::from(stage)
        .checked_sub(1)
        .and_then(|last| knocks.get(last))
        == Some(&knock)
}

/// Whether an attempt started at `started` is `timeout_ms` old or older at `now`.
fn is_expired(now: Timestamp, started: Timestamp, timeout_ms: u64) -> bool {
    now.as_millis().saturating_sub(started.as_millis()) >= timeout_ms
}

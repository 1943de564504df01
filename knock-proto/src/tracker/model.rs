//! A reference model of the tracker's rules for differential tests: a plain list of attempts
//! scanned on every hit, written to be obviously right rather than fast.

use std::net::IpAddr;

use super::{DoorSpec, Event, Sequence};
use crate::sequence::Proto;
use crate::time::Timestamp;
use crate::wire::Hit;

struct Attempt {
    source: IpAddr,
    door: usize,
    stage: u8,
    started: u64,
}

/// The model. `attempts` is kept in (re)start order, so with time never going back the first
/// attempt of the smallest start time and door is the oldest.
pub(super) struct Model {
    doors: Vec<DoorSpec>,
    max: usize,
    local: Vec<IpAddr>,
    attempts: Vec<Attempt>,
    clock: u64,
}

impl Model {
    pub(super) fn new(doors: Vec<DoorSpec>, max: usize) -> Model {
        Model {
            doors,
            max: max.max(1),
            local: Vec::new(),
            attempts: Vec::new(),
            clock: 0,
        }
    }

    pub(super) fn set_local_addresses(&mut self, addrs: &[IpAddr]) {
        self.local = addrs.to_vec();
    }

    pub(super) fn len(&self) -> usize {
        self.attempts.len()
    }

    fn timeout(&self, door: usize) -> u64 {
        let ns = self.doors[door].seq_timeout.as_nanos();
        u64::try_from(ns.div_ceil(1_000_000)).unwrap_or(u64::MAX)
    }

    fn expired(&self, i: usize) -> bool {
        let a = &self.attempts[i];
        self.clock.saturating_sub(a.started) >= self.timeout(a.door)
    }

    fn position(&self, source: IpAddr, door: usize) -> Option<usize> {
        self.attempts
            .iter()
            .position(|a| a.source == source && a.door == door)
    }

    pub(super) fn handle(&mut self, now: Timestamp, hit: &Hit, events: &mut Vec<Event>) {
        self.clock = self.clock.max(now.as_millis());
        let local = self.local.is_empty() || self.local.contains(&hit.destination);
        for door in 0..self.doors.len() {
            let spec = &self.doors[door];
            let Some(seq) = spec.sequence.clone() else {
                continue;
            };
            let to_us = spec.target.map_or(local, |t| t == hit.destination);
            let flags = hit.knock.proto == Proto::Udp || spec.tcpflags.matches(hit.tcp_flags);
            if seq.knocks().contains(&hit.knock) && to_us && flags {
                self.step(hit, door, &seq, events);
            }
        }
    }

    fn step(&mut self, hit: &Hit, door: usize, seq: &Sequence, events: &mut Vec<Event>) {
        let source = hit.source;
        let knocks = seq.knocks();
        if let Some(i) = self.position(source, door) {
            let stage = self.attempts[i].stage;
            if self.expired(i) {
                events.push(Event::Expired {
                    source,
                    door,
                    stage,
                });
                self.attempts.remove(i);
            } else if knocks[usize::from(stage)] == hit.knock {
                if usize::from(stage) + 1 == knocks.len() {
                    events.push(Event::Opened { source, door });
                    self.attempts.remove(i);
                } else {
                    self.attempts[i].stage += 1;
                    let stage = stage + 1;
                    events.push(Event::Stage {
                        source,
                        door,
                        stage,
                    });
                }
                return;
            } else if stage > 0 && knocks[usize::from(stage) - 1] == hit.knock {
                // A repeat of the knock that brought it here: ignored.
                return;
            } else {
                events.push(Event::Failed {
                    source,
                    door,
                    stage,
                    expected: knocks[usize::from(stage)],
                    got: hit.knock,
                });
                self.attempts.remove(i);
                if knocks[0] == hit.knock {
                    self.push(source, door);
                    events.push(Event::Stage {
                        source,
                        door,
                        stage: 1,
                    });
                }
                return;
            }
        }
        if knocks[0] != hit.knock {
            return;
        }
        if knocks.len() == 1 {
            events.push(Event::Opened { source, door });
            return;
        }
        if self.attempts.len() >= self.max {
            let oldest = self.victim(door);
            let a = &self.attempts[oldest];
            let (s, d, st) = (a.source, a.door, a.stage);
            events.push(if self.expired(oldest) {
                Event::Expired {
                    source: s,
                    door: d,
                    stage: st,
                }
            } else {
                Event::Evicted {
                    source: s,
                    door: d,
                    stage: st,
                }
            });
            self.attempts.remove(oldest);
        }
        self.push(source, door);
        events.push(Event::Stage {
            source,
            door,
            stage: 1,
        });
    }

    /// Whom to evict for a new attempt on `door`: the first (oldest) stage-1 attempt of the
    /// door with the most of them (`door` on a tie, else the lowest), or the oldest of all.
    fn victim(&self, door: usize) -> usize {
        let first = |d: usize| {
            self.attempts
                .iter()
                .filter(|a| a.door == d && a.stage == 1)
                .count()
        };
        let most = (0..self.doors.len())
            .max_by_key(|&d| (first(d), d == door, std::cmp::Reverse(d)))
            .unwrap();
        if first(most) > 0 {
            return self
                .attempts
                .iter()
                .position(|a| a.door == most && a.stage == 1)
                .unwrap();
        }
        (0..self.attempts.len())
            .min_by_key(|&i| (self.attempts[i].started, self.attempts[i].door))
            .unwrap()
    }

    fn push(&mut self, source: IpAddr, door: usize) {
        let started = self.clock;
        self.attempts.push(Attempt {
            source,
            door,
            stage: 1,
            started,
        });
    }

    pub(super) fn expire(&mut self, now: Timestamp, events: &mut Vec<Event>) {
        self.clock = self.clock.max(now.as_millis());
        for door in 0..self.doors.len() {
            let mut i = 0;
            while i < self.attempts.len() {
                if self.attempts[i].door == door && self.expired(i) {
                    let a = self.attempts.remove(i);
                    let (source, stage) = (a.source, a.stage);
                    events.push(Event::Expired {
                        source,
                        door,
                        stage,
                    });
                } else {
                    i += 1;
                }
            }
        }
    }

    pub(super) fn poll_at(&self) -> Option<Timestamp> {
        self.attempts
            .iter()
            .map(|a| a.started.saturating_add(self.timeout(a.door)))
            .min()
            .map(Timestamp::from_millis)
    }

    pub(super) fn set_sequence(&mut self, door: usize, sequence: Option<Sequence>) {
        if door < self.doors.len() {
            self.attempts.retain(|a| a.door != door);
            self.doors[door].sequence = sequence;
        }
    }
}

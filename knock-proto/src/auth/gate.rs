//! Per-source progress through rotating doors' sequences, and the replay rule: verified hits
//! and `now` in, what happened out.
//!
//! A sealed knock that fails its seal on a door's port resets the knocker's attempt at that
//! door: without this an attacker who saw the ports could find each knock's seal on its own,
//! 2^24 tries per knock, instead of all of them at once, 2^(24 x knocks) (PROTOCOL.md, "Odds").
//! The hits of one knock (`hits = 3`) carry the same seal and count once.

use std::collections::HashMap;
use std::net::IpAddr;

use super::derive::Step;
use super::replay::{ReplayRecord, Replayed, Use};
use super::seal::Nonce;
use super::verify::{ACCEPTED_STEPS, Refusal, Verified, Verifier};
use crate::time::Timestamp;

/// One source's progress through one door's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Attempt {
    door: usize,
    step: Step,
    nonce: Option<Nonce>,
    /// Knocks done; equal to the door's `knocks` once it opened (further hits of the last
    /// knock are then repeats, not a new knock).
    done: u8,
    started: Timestamp,
}

/// What a hit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Not a rotating door's knock: leave it to the fixed doors.
    NotOurs,
    /// Knock `done` of `of` of `door`'s sequence.
    Progress {
        /// The door.
        door: usize,
        /// Knocks done so far.
        done: u8,
        /// Knocks in the sequence.
        of: u8,
    },
    /// Another hit of the knock just counted (`hits` > 1): nothing changes.
    Repeat {
        /// The door.
        door: usize,
    },
    /// The sequence is complete: open the door for the source.
    Open {
        /// The door.
        door: usize,
        /// The knock's step less the server's.
        offset: i64,
    },
    /// A complete sequence that already opened the door in its step: a replay.
    Replayed {
        /// The door.
        door: usize,
    },
    /// Refused (wrong seal, step too far off); any attempt at that door is reset.
    Refused(Refusal),
    /// A right knock out of order (or for another step or nonce): the attempt starts over.
    OutOfOrder {
        /// The door.
        door: usize,
    },
    /// Too many attempts in progress: a new one at `door` was not started.
    Full {
        /// The door.
        door: usize,
    },
}

/// Attempts in progress and the replay record.
#[derive(Debug, Clone)]
pub struct Gate {
    attempts: HashMap<IpAddr, Attempt>,
    max_attempts: usize,
    /// Knocks that opened doors, to save with the pending stops.
    pub record: ReplayRecord,
}

impl Gate {
    /// A gate keeping at most `max_attempts` attempts in progress, with a record loaded from
    /// disk (or empty).
    pub fn new(max_attempts: usize, record: ReplayRecord) -> Gate {
        Gate {
            attempts: HashMap::new(),
            max_attempts: max_attempts.max(1),
            record,
        }
    }

    /// Attempts in progress.
    pub fn attempts(&self) -> usize {
        self.attempts.len()
    }

    /// The door `source` has an attempt at (maybe past its timeout): the one to prefer when
    /// its next hit is a knock of more than one door ([`Verifier::verify_for`]).
    pub fn attempt_door(&self, source: IpAddr) -> Option<usize> {
        self.attempts.get(&source).map(|a| a.door)
    }

    /// Takes over the attempts of `old` (a gate before a reload) at the doors `door` maps
    /// (an old door's index to the new one's; `None`: the door is gone, or its knocks
    /// changed), up to this gate's `max_attempts`. The record is not touched.
    pub fn carry(&mut self, old: &Gate, door: impl Fn(usize) -> Option<usize>) {
        for (source, a) in &old.attempts {
            if self.attempts.len() >= self.max_attempts {
                break;
            }
            if let Some(new) = door(a.door) {
                self.attempts.insert(*source, Attempt { door: new, ..*a });
            }
        }
    }

    /// Attempts in progress at `now` per door of `verifier` (in its order): started, not
    /// past their timeout, not complete.
    pub fn attempts_by_door(&self, now: Timestamp, verifier: &Verifier) -> Vec<usize> {
        let doors = verifier.doors();
        let mut counts = vec![0; doors.len()];
        for a in self.attempts.values() {
            let Some(door) = doors.get(a.door) else {
                continue;
            };
            let live = now.saturating_since(a.started) <= door.seq_timeout;
            if live && a.done < door.knocks {
                counts[a.door] += 1;
            }
        }
        counts
    }

    /// Feeds one verified (or refused) hit from `source`.
    pub fn handle(
        &mut self,
        now: Timestamp,
        verifier: &Verifier,
        source: IpAddr,
        verdict: Result<Verified, Refusal>,
    ) -> Outcome {
        let hit = match verdict {
            Ok(hit) => hit,
            Err(Refusal::NotOurs) => return Outcome::NotOurs,
            Err(refusal @ (Refusal::WrongSeal { door } | Refusal::OffStep { door, .. })) => {
                if self.attempts.get(&source).is_some_and(|a| a.door == door) {
                    self.attempts.remove(&source);
                }
                return Outcome::Refused(refusal);
            }
        };
        let door = &verifier.doors()[hit.door];
        let expired = |a: &Attempt| now.saturating_since(a.started) > door.seq_timeout;
        let same = |a: &Attempt| (a.door, a.step, a.nonce) == (hit.door, hit.step, hit.nonce);
        let attempt = self.attempts.get(&source).copied().filter(|a| !expired(a));
        let done = match attempt {
            Some(a) if same(&a) && hit.index + 1 == a.done => {
                return Outcome::Repeat { door: hit.door };
            }
            Some(a) if same(&a) && hit.index == a.done => a.done + 1,
            _ if hit.index == 0 => 1,
            _ => {
                self.attempts.remove(&source);
                return Outcome::OutOfOrder { door: hit.door };
            }
        };
        if attempt.is_none() && !self.make_room(now, verifier, source) {
            return Outcome::Full { door: hit.door };
        }
        let started = attempt.filter(|_| done > 1).map_or(now, |a| a.started);
        self.attempts.insert(
            source,
            Attempt {
                door: hit.door,
                step: hit.step,
                nonce: hit.nonce,
                done,
                started,
            },
        );
        if done < door.knocks {
            return Outcome::Progress {
                door: hit.door,
                done,
                of: door.knocks,
            };
        }
        let used = hit.nonce.map_or(Use::Unsealed(source), Use::Sealed);
        match self.record.admit(&door.name, hit.step, used) {
            Ok(()) => Outcome::Open {
                door: hit.door,
                offset: hit.offset,
            },
            Err(Replayed) => Outcome::Replayed { door: hit.door },
        }
    }

    /// Drops expired attempts, and forgets replay entries of steps no longer accepted (call
    /// after every [`Verifier::roll`] that returned true, and from time to time).
    pub fn expire(&mut self, now: Timestamp, verifier: &Verifier) {
        self.attempts.retain(|_, a| {
            verifier
                .doors()
                .get(a.door)
                .is_some_and(|d| now.saturating_since(a.started) <= d.seq_timeout)
        });
        for (i, door) in verifier.doors().iter().enumerate() {
            if let Some(current) = verifier.current_step(i) {
                self.record
                    .forget_before(&door.name, current.offset(-ACCEPTED_STEPS));
            }
        }
    }

    /// Whether a new attempt for `source` fits, after dropping expired ones if full.
    fn make_room(&mut self, now: Timestamp, verifier: &Verifier, source: IpAddr) -> bool {
        if self.attempts.len() < self.max_attempts || self.attempts.contains_key(&source) {
            return true;
        }
        self.expire(now, verifier);
        self.attempts.len() < self.max_attempts
    }
}

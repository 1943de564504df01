//! The server's side of a rotating door: which door, step and knock a captured SYN is, or why
//! it is refused.
//!
//! [`Verifier::roll`] derives every door's sequences for the steps around the current one and
//! indexes them by port; [`Verifier::verify`] then costs a hash lookup and, for sealed doors,
//! one MAC per (door, step, index) owning the hit's port (one, unless two derived sequences
//! happen to share a port). Wall-clock time is an input: the caller reads the clock.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use hashbrown::HashMap;

use super::derive::{Step, sequence};
use super::key::Key;
use super::ports::PortSet;
use super::seal::{Nonce, SealKey, Sealed};
use crate::sequence::Port;

/// Steps either side of the current one that open the door (clock skew).
pub const ACCEPTED_STEPS: i64 = 1;
/// Steps either side that are recognised but refused, so the log can say how far off a
/// knocker's clock seems.
pub const DIAGNOSED_STEPS: i64 = 5;

/// Whether a rotating door's knocks must carry a seal in their TCP sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seal {
    /// Any SYN on the right port counts.
    Off,
    /// Only SYNs with the right seal count.
    On {
        /// The seal binds the knocker's source address too.
        bind_source: bool,
    },
}

/// Everything the protocol needs about one rotating door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatingDoor {
    /// The door's name, bound into every derivation.
    pub name: String,
    /// The shared key.
    pub key: Key,
    /// Ports per sequence.
    pub knocks: u8,
    /// Where the ports are drawn from (a config door's own `ports`).
    pub ports: PortSet,
    /// Length of a time step.
    pub step_seconds: NonZeroU32,
    /// Sealed or not.
    pub seal: Seal,
    /// Time allowed from the first knock to the last.
    pub seq_timeout: Duration,
}

impl RotatingDoor {
    /// The ports of this door's sequence in `step`.
    pub fn sequence(&self, step: Step) -> Vec<Port> {
        sequence(
            &self.key,
            &self.name,
            step,
            usize::from(self.knocks),
            &self.ports,
        )
    }

    /// The seal a client puts on knock `index` (sent to `port`) of the sequence for `step`.
    pub fn seq(&self, step: Step, index: u8, port: Port, nonce: Nonce, source: IpAddr) -> u32 {
        self.sealed(step, index, port, nonce, source).seq(&self.key)
    }

    fn sealed(&self, step: Step, index: u8, port: Port, nonce: Nonce, src: IpAddr) -> Sealed<'_> {
        let bind = matches!(self.seal, Seal::On { bind_source: true });
        Sealed {
            door: &self.name,
            step,
            index,
            port,
            nonce,
            source: bind.then_some(src),
        }
    }
}

/// A hit that is a valid knock of a rotating door, in a step that is accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Index of the door in the verifier's list.
    pub door: usize,
    /// The step the knock was made for.
    pub step: Step,
    /// That step less the current one (-1, 0 or 1).
    pub offset: i64,
    /// The knock's index in its sequence.
    pub index: u8,
    /// The seal's nonce; `None` for unsealed doors.
    pub nonce: Option<Nonce>,
}

/// Why a hit on a rotating door's port does not count.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// The port is no rotating door's in the steps watched, or the hit is not TCP: not ours.
    #[error("not a rotating door's knock")]
    NotOurs,
    /// The port is the door's, but the seal is wrong (a guess, a spoof, a firewall that
    /// rewrites sequence numbers, or a client without raw sockets knocking a sealed door).
    #[error("wrong seal in the TCP sequence number")]
    WrongSeal {
        /// The door whose port it hit.
        door: usize,
    },
    /// A correct knock for a step too far from ours: the knocker's clock seems off.
    #[error("knock for a step {offset:+} from ours: the knocker's clock seems off")]
    OffStep {
        /// The door.
        door: usize,
        /// The knock's step less ours (positive: the knocker's clock is ahead).
        offset: i64,
    },
}

/// One place a port has in the steps watched.
#[derive(Debug, Clone, Copy)]
struct Candidate {
    door: usize,
    offset: i64,
    index: u8,
}

/// Every rotating door's sequences around the current step, indexed by port.
#[derive(Debug, Clone)]
pub struct Verifier {
    doors: Vec<RotatingDoor>,
    current: Vec<Option<Step>>,
    /// hashbrown's foldhash (keyed per process) rather than std's SipHash: a flood on a
    /// rotating door's port looks it up once per packet.
    by_port: HashMap<Port, Vec<Candidate>>,
    /// Each door's seal key, its key and name absorbed once (a seal check then costs half a
    /// keyed MAC).
    keyed: Vec<SealKey>,
    /// MACs computed by [`Verifier::verify`] so far: what a flood on the current ports
    /// costs (one per packet, unless two derived sequences share a port).
    macs: u64,
}

impl Verifier {
    /// A verifier for these doors; call [`Verifier::roll`] before the first
    /// [`Verifier::verify`].
    pub fn new(doors: Vec<RotatingDoor>) -> Verifier {
        let current = vec![None; doors.len()];
        let keyed = doors
            .iter()
            .map(|d| SealKey::new(&d.key, &d.name))
            .collect();
        Verifier {
            keyed,
            doors,
            current,
            by_port: HashMap::new(),
            macs: 0,
        }
    }

    /// MACs computed to check seals since the verifier was made.
    pub fn macs(&self) -> u64 {
        self.macs
    }

    /// The doors, in the order [`Verified::door`] indexes.
    pub fn doors(&self) -> &[RotatingDoor] {
        &self.doors
    }

    /// The current step of door `door` (after the last roll).
    pub fn current_step(&self, door: usize) -> Option<Step> {
        self.current.get(door).copied().flatten()
    }

    /// Brings the sequences to the steps in force at `unix_seconds`. Returns whether any door's
    /// step changed, that is whether the ports to watch changed.
    pub fn roll(&mut self, unix_seconds: u64) -> bool {
        let now: Vec<Option<Step>> = self
            .doors
            .iter()
            .map(|d| Some(Step::at(unix_seconds, d.step_seconds)))
            .collect();
        if now == self.current {
            return false;
        }
        self.current = now;
        self.by_port.clear();
        for (i, door) in self.doors.iter().enumerate() {
            let Some(current) = self.current[i] else {
                continue;
            };
            for offset in -DIAGNOSED_STEPS..=DIAGNOSED_STEPS {
                for (index, port) in door
                    .sequence(current.offset(offset))
                    .into_iter()
                    .enumerate()
                {
                    let index = u8::try_from(index).unwrap_or(u8::MAX);
                    self.by_port.entry(port).or_default().push(Candidate {
                        door: i,
                        offset,
                        index,
                    });
                }
            }
        }
        // Accepted steps first, nearest first: a port shared with a far step costs nothing
        // when the near one verifies.
        for candidates in self.by_port.values_mut() {
            candidates.sort_by_key(|c| c.offset.abs());
        }
        true
    }

    /// Seconds from `unix_seconds` until some door's step rolls over (when to call
    /// [`Verifier::roll`] again); `None` without doors.
    pub fn seconds_to_roll(&self, unix_seconds: u64) -> Option<u64> {
        self.doors
            .iter()
            .map(|d| Step::seconds_left(unix_seconds, d.step_seconds))
            .min()
    }

    /// The ports of the accepted steps (what opens a door), sorted.
    pub fn ports_in_force(&self) -> Vec<Port> {
        self.ports_within(ACCEPTED_STEPS)
    }

    /// The ports a capture filter must let through, sorted: every port of the accepted steps,
    /// and the first port of each diagnosed step (enough to say how far off a clock is while
    /// keeping the kernel filter small).
    pub fn ports_watched(&self) -> Vec<Port> {
        self.ports_where(|c| c.offset.abs() <= ACCEPTED_STEPS || c.index == 0)
    }

    fn ports_within(&self, steps: i64) -> Vec<Port> {
        self.ports_where(|c| c.offset.abs() <= steps)
    }

    fn ports_where(&self, keep: impl Fn(&Candidate) -> bool) -> Vec<Port> {
        let mut ports: Vec<Port> = self
            .by_port
            .iter()
            .filter(|(_, cs)| cs.iter().any(&keep))
            .map(|(p, _)| *p)
            .collect();
        ports.sort();
        ports
    }

    /// What a TCP hit on `port` carrying `tcp_seq` from `source` is. `tcp_seq` is `None` for
    /// UDP, which never knocks on a rotating door. Counts the MACs it computes
    /// ([`Verifier::macs`]).
    pub fn verify(
        &mut self,
        port: Port,
        tcp_seq: Option<u32>,
        source: IpAddr,
    ) -> Result<Verified, Refusal> {
        self.verify_for(port, tcp_seq, source, || None)
    }

    /// [`Verifier::verify`], preferring door `prefer` (the one the source is part-way
    /// through) when the hit is a valid knock of more than one door: two doors with the same
    /// name and key (a door and the set an older `pair` printed for it) seal a knock on the
    /// same port at the same place alike, and any SYN is a knock of an unsealed door.
    /// `prefer` is asked only then, on a port more than one sequence has (so a flood on a
    /// port of one sequence costs no lookup).
    pub fn verify_for(
        &mut self,
        port: Port,
        tcp_seq: Option<u32>,
        source: IpAddr,
        prefer: impl FnOnce() -> Option<usize>,
    ) -> Result<Verified, Refusal> {
        let (Some(seq), Some(candidates)) = (tcp_seq, self.by_port.get(&port)) else {
            return Err(Refusal::NotOurs);
        };
        let mut refusal = Refusal::NotOurs;
        let mut found: Option<Verified> = None;
        let mut prefer = Some(prefer);
        let mut preferred: Option<usize> = None;
        for c in candidates {
            if found.is_some() && Some(c.door) != preferred {
                continue;
            }
            let door = &self.doors[c.door];
            let Some(current) = self.current[c.door] else {
                continue;
            };
            let step = current.offset(c.offset);
            let nonce = match door.seal {
                Seal::Off => None,
                Seal::On { .. } => {
                    let nonce = Nonce::of_seq(seq);
                    let sealed = door.sealed(step, c.index, port, nonce, source);
                    self.macs += 1;
                    if !sealed.verifies_with(&self.keyed[c.door], seq) {
                        if refusal == Refusal::NotOurs {
                            refusal = Refusal::WrongSeal { door: c.door };
                        }
                        continue;
                    }
                    Some(nonce)
                }
            };
            if c.offset.abs() > ACCEPTED_STEPS {
                // A far step counts only if nothing nearer matched; keep looking.
                if !matches!(refusal, Refusal::OffStep { .. }) {
                    refusal = Refusal::OffStep {
                        door: c.door,
                        offset: c.offset,
                    };
                }
                continue;
            }
            let verified = Verified {
                door: c.door,
                step,
                offset: c.offset,
                index: c.index,
                nonce,
            };
            if candidates.len() > 1 {
                if let Some(ask) = prefer.take() {
                    preferred = ask();
                }
            }
            if preferred.is_none_or(|p| p == c.door) {
                return Ok(verified);
            }
            found.get_or_insert(verified);
        }
        found.ok_or(refusal)
    }
}

//! A rotating door's sequence for one time step, derived from its key (PROTOCOL.md, "Ports").
//!
//! `HMAC-SHA256(key, "knock-ports-v1" 0x00 len(door):u16 door step:u64 block:u32)`, all
//! big-endian, gives 32 bytes per block, read as 16 big-endian `u16` candidates. A candidate
//! `v` picks port `ports[v mod n]` only if `v < 65536 - 65536 mod n` (rejection sampling: every
//! port is equally likely), and only if the step does not have it yet (ports are distinct
//! within a step). Blocks count up from 0 until the step has its `knocks` ports.

use std::num::NonZeroU32;

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::key::Key;
use super::ports::PortSet;
use crate::sequence::Port;

/// The domain-separation label of the ports derivation.
const PORTS_LABEL: &[u8] = b"knock-ports-v1";

/// A time step: `floor(unix_seconds / step_seconds)`. Client and server compute it from their
/// own wall clocks; the server accepts its own step and one either side.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Step(pub u64);

impl Step {
    /// The step in force at `unix_seconds`.
    pub fn at(unix_seconds: u64, step_seconds: NonZeroU32) -> Step {
        Step(unix_seconds / u64::from(step_seconds.get()))
    }

    /// Seconds from `unix_seconds` until the next step starts (1..=step_seconds).
    pub fn seconds_left(unix_seconds: u64, step_seconds: NonZeroU32) -> u64 {
        let len = u64::from(step_seconds.get());
        len - unix_seconds % len
    }

    /// The step `by` steps after (or before, when negative) this one, saturating.
    pub fn offset(self, by: i64) -> Step {
        Step(self.0.saturating_add_signed(by))
    }

    /// How many steps this one is after `other` (negative: before), saturating.
    pub fn minus(self, other: Step) -> i64 {
        let d = i128::from(self.0) - i128::from(other.0);
        i64::try_from(d).unwrap_or(if d < 0 { i64::MIN } else { i64::MAX })
    }
}

/// The HMAC-SHA256 of `parts` under `key`, each part appended as it is.
pub(crate) fn hmac(key: &Key, parts: &[&[u8]]) -> [u8; 32] {
    KeyedMac::new(key).mac(parts)
}

/// HMAC-SHA256 with the key already absorbed: keying costs two of the four SHA-256 blocks of
/// a short MAC, so the verifier keys once per door and each seal it checks costs the other
/// two, and a flood of wrong seals costs half the hashing (`cargo bench -p knock-proto
/// --bench auth`: `verify/wrong_seal_on_a_current_port` against
/// `seal/wrong_seal_keying_each_time`).
#[derive(Clone)]
pub(crate) struct KeyedMac(Hmac<Sha256>);

impl KeyedMac {
    pub(crate) fn new(key: &Key) -> KeyedMac {
        // A 32-byte key is always a valid HMAC key; new_from_slice fails only for some MACs.
        let mac = <Hmac<Sha256> as Mac>::new_from_slice(key.as_bytes())
            .unwrap_or_else(|_| unreachable!("HMAC takes keys of any length"));
        KeyedMac(mac)
    }

    /// This state with `parts` absorbed too: a prefix every message shares.
    pub(crate) fn absorbed(&self, parts: &[&[u8]]) -> KeyedMac {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        KeyedMac(mac)
    }

    /// The HMAC of `parts`, each appended as it is.
    pub(crate) fn mac(&self, parts: &[&[u8]]) -> [u8; 32] {
        let mut mac = self.0.clone();
        for part in parts {
            mac.update(part);
        }
        mac.finalize().into_bytes().into()
    }
}

impl std::fmt::Debug for KeyedMac {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Key material: never shown.
        f.write_str("KeyedMac(..)")
    }
}

/// The door name as the derivations bind it: its length as a big-endian `u16`, then its
/// UTF-8 bytes (names longer than 65535 bytes are cut there; no config allows them).
pub(crate) fn door_bytes(door: &str) -> ([u8; 2], &[u8]) {
    let bytes = &door.as_bytes()[..door.len().min(usize::from(u16::MAX))];
    let len = u16::try_from(bytes.len()).unwrap_or(u16::MAX);
    (len.to_be_bytes(), bytes)
}

/// The `knocks` distinct ports of `door`'s sequence in `step`, in knock order. `knocks` must
/// not exceed `ports.len()` (the config checks it); the sequence is then shorter.
pub fn sequence(key: &Key, door: &str, step: Step, knocks: usize, ports: &PortSet) -> Vec<Port> {
    let n = ports.len();
    let knocks = knocks.min(n as usize);
    let zone = 65536 - 65536 % n;
    let (door_len, door) = door_bytes(door);
    let step = step.0.to_be_bytes();
    let mut out: Vec<Port> = Vec::with_capacity(knocks);
    let mut block: u32 = 0;
    while out.len() < knocks {
        let bytes = hmac(
            key,
            &[
                PORTS_LABEL,
                &[0],
                &door_len,
                door,
                &step,
                &block.to_be_bytes(),
            ],
        );
        for pair in bytes.chunks_exact(2) {
            let v = u32::from(u16::from_be_bytes([pair[0], pair[1]]));
            if v >= zone || out.len() == knocks {
                continue;
            }
            if let Some(port) = ports.nth(v % n).filter(|p| !out.contains(p)) {
                out.push(port);
            }
        }
        block = block.wrapping_add(1);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> Key {
        Key::from_bytes([0x42; 32])
    }

    #[test]
    fn steps_and_seconds_left() {
        let thirty = NonZeroU32::new(30).unwrap();
        assert_eq!(Step::at(59, thirty), Step(1));
        assert_eq!(Step::at(60, thirty), Step(2));
        assert_eq!(Step::seconds_left(60, thirty), 30);
        assert_eq!(Step::seconds_left(89, thirty), 1);
        assert_eq!(Step(5).minus(Step(8)), -3);
        assert_eq!(Step(0).offset(-1), Step(0));
    }

    #[test]
    fn sequences_are_distinct_in_range_and_change_with_every_input() {
        let ports = PortSet::default();
        let s = sequence(&key(), "ssh", Step(1000), 3, &ports);
        assert_eq!(s.len(), 3);
        assert!(s.iter().all(|p| ports.contains(*p)));
        assert!(s[0] != s[1] && s[1] != s[2] && s[0] != s[2]);
        assert_eq!(s, sequence(&key(), "ssh", Step(1000), 3, &ports));
        assert_ne!(s, sequence(&key(), "ssh", Step(1001), 3, &ports));
        assert_ne!(s, sequence(&key(), "web", Step(1000), 3, &ports));
        assert_ne!(
            s,
            sequence(&Key::from_bytes([1; 32]), "ssh", Step(1000), 3, &ports)
        );
    }

    #[test]
    fn a_tiny_set_is_used_whole_without_repeats() {
        let ports: PortSet = "7000-7002".parse().unwrap();
        let mut s = sequence(&key(), "d", Step(9), 3, &ports);
        s.sort();
        assert_eq!(
            s.iter().map(|p| p.get()).collect::<Vec<_>>(),
            [7000, 7001, 7002]
        );
        assert_eq!(sequence(&key(), "d", Step(9), 5, &ports).len(), 3);
    }

    #[test]
    fn every_port_of_a_small_set_is_about_equally_likely() {
        // 3 ports: 65536 mod 3 = 1, so without rejection the lowest port would win slightly
        // more often; this checks the spread is even at the 1% level over many steps.
        let ports: PortSet = "100-102".parse().unwrap();
        let mut counts = [0u32; 3];
        for step in 0..30_000 {
            let p = sequence(&key(), "d", Step(step), 1, &ports)[0];
            counts[usize::from(p.get() - 100)] += 1;
        }
        for c in counts {
            assert!((9_500..10_500).contains(&c), "{counts:?}");
        }
    }
}

//! Sealed TCP knocks: the 32-bit TCP sequence number of every SYN carries an 8-bit nonce and a
//! 24-bit truncated HMAC-SHA256 (PROTOCOL.md, "Seal").
//!
//! `seq = nonce << 24 | mac24`, where `mac24` is the first three bytes of
//! `HMAC-SHA256(key, "knock-seal-v1" 0x00 len(door):u16 door step:u64 index:u8 port:u16
//! nonce:u8 source)` and `source` is `0x00` without `bind_source`, else `0x04` and the four
//! IPv4 bytes or `0x06` and the sixteen IPv6 bytes. Every knock of one sequence carries the
//! same nonce; a new sequence takes a new one, so the server tells a fresh knock in a step
//! from the replay of one it has seen.

use std::net::IpAddr;

use super::derive::{KeyedMac, Step, door_bytes};
use super::key::Key;
use crate::sequence::Port;

/// The domain-separation label of the seal.
const SEAL_LABEL: &[u8] = b"knock-seal-v1";

/// The nonce of one knock sequence: the top byte of each of its TCP sequence numbers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Nonce(pub u8);

impl Nonce {
    /// The nonce the reference client uses at `unix_millis`: which 1/256th of its step it is
    /// in. Two knocks in one step more than `step_seconds / 256` apart (117 ms for 30 s) so
    /// never share a nonce, without the client keeping any state.
    pub fn for_time(unix_millis: u64, step_seconds: u32) -> Nonce {
        let len = u64::from(step_seconds.max(1)) * 1000;
        Nonce(u8::try_from((unix_millis % len) * 256 / len).unwrap_or(u8::MAX))
    }

    /// When (Unix milliseconds) the slot of [`Nonce::for_time`] at `unix_millis` ends: a
    /// client that does not return before then never gives two knocks in a row one nonce.
    pub fn slot_end(unix_millis: u64, step_seconds: u32) -> u64 {
        let len = u64::from(step_seconds.max(1)) * 1000;
        let start = unix_millis - unix_millis % len;
        let slot = (unix_millis % len) * 256 / len;
        start + ((slot + 1) * len).div_ceil(256)
    }

    /// The nonce a sequence number carries.
    pub fn of_seq(seq: u32) -> Nonce {
        Nonce(seq.to_be_bytes()[0])
    }
}

/// What one seal binds: the knock's place in its door's sequence.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sealed<'a> {
    /// The door's name.
    pub door: &'a str,
    /// The step the sequence was derived for.
    pub step: Step,
    /// The knock's index in the sequence, from 0.
    pub index: u8,
    /// The knock's destination port.
    pub port: Port,
    /// The sequence's nonce.
    pub nonce: Nonce,
    /// The knocker's address, for doors with `bind_source`.
    pub source: Option<IpAddr>,
}

/// A door's seal key: the key and the door's part of every seal (label and name) absorbed
/// once, so that a check hashes only what changes from knock to knock. The verifier keeps
/// one per door; under a flood on a rotating door's port that is the whole cost per packet.
#[derive(Clone, Debug)]
pub(crate) struct SealKey(KeyedMac);

impl SealKey {
    /// The seal key of `door` under `key`.
    pub(crate) fn new(key: &Key, door: &str) -> SealKey {
        let (door_len, door) = door_bytes(door);
        SealKey(KeyedMac::new(key).absorbed(&[SEAL_LABEL, &[0], &door_len, door]))
    }
}

impl Sealed<'_> {
    /// The TCP sequence number every SYN of this knock carries.
    pub fn seq(&self, key: &Key) -> u32 {
        self.seq_with(&SealKey::new(key, self.door))
    }

    fn seq_with(&self, key: &SealKey) -> u32 {
        let mac = self.mac(key);
        u32::from_be_bytes([self.nonce.0, mac[0], mac[1], mac[2]])
    }

    /// Whether `seq` is this knock's sequence number: compares in constant time, so timing
    /// tells an attacker nothing about how many bits were right.
    pub fn verifies(&self, key: &Key, seq: u32) -> bool {
        self.verifies_with(&SealKey::new(key, self.door), seq)
    }

    /// [`Sealed::verifies`] with the seal key of this knock's door.
    pub(crate) fn verifies_with(&self, key: &SealKey, seq: u32) -> bool {
        let expected = self.seq_with(key).to_be_bytes();
        let got = seq.to_be_bytes();
        let diff = expected
            .iter()
            .zip(got)
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        std::hint::black_box(diff) == 0
    }

    /// The MAC; `key` has absorbed the label and this knock's door already.
    fn mac(&self, key: &SealKey) -> [u8; 32] {
        // step, index, port, nonce, then the source's family and address: at most 29 bytes,
        // each field at a fixed place, hashed in one update.
        let mut rest = [0u8; 29];
        rest[..8].copy_from_slice(&self.step.0.to_be_bytes());
        rest[8] = self.index;
        rest[9..11].copy_from_slice(&self.port.get().to_be_bytes());
        rest[11] = self.nonce.0;
        let len = match self.source {
            None => 13,
            Some(IpAddr::V4(a)) => {
                rest[12] = 4;
                rest[13..17].copy_from_slice(&a.octets());
                17
            }
            Some(IpAddr::V6(a)) => {
                rest[12] = 6;
                rest[13..].copy_from_slice(&a.octets());
                29
            }
        };
        key.0.mac(&[&rest[..len]])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn knock(source: Option<IpAddr>) -> Sealed<'static> {
        Sealed {
            door: "ssh",
            step: Step(57_000_000),
            index: 1,
            port: Port::new(40000).unwrap(),
            nonce: Nonce(0x5a),
            source,
        }
    }

    #[test]
    fn the_seq_carries_the_nonce_and_verifies() {
        let key = Key::from_bytes([3; 32]);
        let k = knock(None);
        let seq = k.seq(&key);
        assert_eq!(Nonce::of_seq(seq), Nonce(0x5a));
        assert!(k.verifies(&key, seq));
        assert!(!k.verifies(&key, seq ^ 1));
        assert!(!k.verifies(&Key::from_bytes([4; 32]), seq));
    }

    #[test]
    fn every_bound_field_changes_the_seal() {
        let key = Key::from_bytes([3; 32]);
        let base = knock(Some("198.18.0.1".parse().unwrap()));
        let seq = base.seq(&key);
        let variants = [
            Sealed {
                door: "ssh2",
                ..base
            },
            Sealed {
                step: Step(57_000_001),
                ..base
            },
            Sealed { index: 2, ..base },
            Sealed {
                port: Port::new(40001).unwrap(),
                ..base
            },
            Sealed {
                nonce: Nonce(0x5b),
                ..base
            },
            Sealed {
                source: Some("198.18.0.2".parse().unwrap()),
                ..base
            },
            Sealed {
                source: None,
                ..base
            },
        ];
        for v in variants {
            assert_ne!(v.seq(&key) & 0xff_ffff, seq & 0xff_ffff, "{v:?}");
        }
    }

    #[test]
    fn a_slot_ends_where_the_next_nonce_starts() {
        for t in [0, 1, 116, 117, 29_999, 45_000, 1_790_000_020_123] {
            let end = Nonce::slot_end(t, 30);
            assert!(end > t);
            assert_ne!(Nonce::for_time(end, 30), Nonce::for_time(t, 30), "{t}");
            assert_eq!(Nonce::for_time(end - 1, 30), Nonce::for_time(t, 30), "{t}");
        }
    }

    #[test]
    fn client_nonces_differ_across_a_step() {
        assert_eq!(Nonce::for_time(0, 30), Nonce(0));
        assert_eq!(Nonce::for_time(29_999, 30), Nonce(255));
        assert_eq!(Nonce::for_time(30_000 + 15_000, 30), Nonce(128));
        assert_ne!(Nonce::for_time(1_000, 30), Nonce::for_time(1_200, 30));
    }
}

//! The protocol end to end, without packets: a client's knocks through the verifier and the
//! gate, replays, clock skew, and the odds of a guessed seal.

use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::sequence::Port;
use crate::time::Timestamp;

const T0: u64 = 1_790_000_020; // 10 s into a 30-second step

fn door(seal: Seal) -> RotatingDoor {
    RotatingDoor {
        name: "ssh".into(),
        key: Key::from_bytes(std::array::from_fn(|i| i as u8 * 7)),
        knocks: 3,
        ports: PortSet::default(),
        step_seconds: NonZeroU32::new(30).unwrap(),
        seal,
        seq_timeout: Duration::from_secs(10),
    }
}

fn sealed() -> Seal {
    Seal::On { bind_source: false }
}

fn addr(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A client's knock at `unix` (its own clock): (port, seq) per knock.
fn knocks(d: &RotatingDoor, unix: u64, nonce: u8, source: IpAddr) -> Vec<(Port, u32)> {
    let step = Step::at(unix, d.step_seconds);
    d.sequence(step)
        .into_iter()
        .enumerate()
        .map(|(i, p)| (p, d.seq(step, i as u8, p, Nonce(nonce), source)))
        .collect()
}

struct Server {
    verifier: Verifier,
    gate: Gate,
    now: Timestamp,
}

impl Server {
    fn new(d: RotatingDoor, unix: u64) -> Server {
        let mut verifier = Verifier::new(vec![d]);
        verifier.roll(unix);
        Server {
            verifier,
            gate: Gate::new(100, ReplayRecord::default()),
            now: Timestamp::ZERO,
        }
    }

    fn at(&mut self, unix: u64) {
        self.now = self.now + Duration::from_secs(31);
        self.verifier.roll(unix);
        self.gate.expire(self.now, &self.verifier);
    }

    fn hit(&mut self, source: IpAddr, port: Port, seq: u32) -> Outcome {
        let verdict = self.verifier.verify(port, Some(seq), source);
        self.gate.handle(self.now, &self.verifier, source, verdict)
    }

    /// Sends every knock `hits` times; the last outcome.
    fn knock(&mut self, source: IpAddr, knocks: &[(Port, u32)], hits: usize) -> Outcome {
        let mut last = Outcome::NotOurs;
        for &(port, seq) in knocks {
            for _ in 0..hits {
                last = self.hit(source, port, seq);
            }
        }
        last
    }
}

#[test]
fn a_sealed_knock_opens_once_then_only_fresh_nonces_open() {
    let (me, them) = (addr("198.18.0.1"), addr("198.18.1.1"));
    let mut s = Server::new(door(sealed()), T0);
    let first = knocks(&door(sealed()), T0, 1, me);
    assert_eq!(s.knock(me, &first, 1), Outcome::Open { door: 0, offset: 0 });
    assert_eq!(s.knock(me, &first, 1), Outcome::Replayed { door: 0 });
    assert_eq!(s.knock(them, &first, 1), Outcome::Replayed { door: 0 });
    let fresh = knocks(&door(sealed()), T0 + 1, 2, me);
    assert_eq!(s.knock(me, &fresh, 1), Outcome::Open { door: 0, offset: 0 });
    let again = knocks(&door(sealed()), T0 + 2, 3, me);
    assert_eq!(
        s.knock(them, &again, 1),
        Outcome::Open { door: 0, offset: 0 }
    );
}

#[test]
fn a_replay_in_the_next_step_is_refused_and_later_it_is_too_old() {
    let me = addr("198.18.0.1");
    let mut s = Server::new(door(sealed()), T0);
    let first = knocks(&door(sealed()), T0, 1, me);
    assert_eq!(s.knock(me, &first, 1), Outcome::Open { door: 0, offset: 0 });
    s.at(T0 + 30);
    assert_eq!(s.knock(me, &first, 1), Outcome::Replayed { door: 0 });
    s.at(T0 + 60);
    assert!(matches!(
        s.knock(me, &first, 1),
        Outcome::Refused(Refusal::OffStep { offset: -2, .. })
    ));
    // The record only holds steps still in force.
    assert!(s.gate.record.is_empty());
}

#[test]
fn the_record_survives_a_restart() {
    let me = addr("198.18.0.1");
    let mut s = Server::new(door(sealed()), T0);
    let first = knocks(&door(sealed()), T0, 1, me);
    assert_eq!(s.knock(me, &first, 1), Outcome::Open { door: 0, offset: 0 });
    let saved = s.gate.record.to_text();
    let mut restarted = Server::new(door(sealed()), T0);
    restarted.gate = Gate::new(100, ReplayRecord::from_text(&saved).unwrap());
    assert_eq!(
        restarted.knock(me, &first, 1),
        Outcome::Replayed { door: 0 }
    );
}

#[test]
fn hits_of_one_knock_count_once() {
    let me = addr("198.18.0.1");
    let mut s = Server::new(door(sealed()), T0);
    let k = knocks(&door(sealed()), T0, 9, me);
    let outcomes: Vec<_> = (0..3).map(|_| s.hit(me, k[0].0, k[0].1)).collect();
    assert_eq!(
        outcomes,
        [
            Outcome::Progress {
                door: 0,
                done: 1,
                of: 3
            },
            Outcome::Repeat { door: 0 },
            Outcome::Repeat { door: 0 }
        ]
    );
    assert_eq!(s.knock(me, &k[1..], 3), Outcome::Repeat { door: 0 });
    assert_eq!(s.gate.record.len(), 1, "opened once");
}

#[test]
fn a_wrong_seal_counts_for_nothing_and_resets_the_attempt() {
    let me = addr("198.18.0.1");
    let mut s = Server::new(door(sealed()), T0);
    let k = knocks(&door(sealed()), T0, 1, me);
    assert!(matches!(
        s.hit(me, k[0].0, k[0].1),
        Outcome::Progress { done: 1, .. }
    ));
    assert_eq!(
        s.hit(me, k[1].0, k[1].1 ^ 0x10),
        Outcome::Refused(Refusal::WrongSeal { door: 0 })
    );
    assert_eq!(s.gate.attempts(), 0);
    assert_eq!(s.knock(me, &k[1..], 1), Outcome::OutOfOrder { door: 0 });
    assert_eq!(s.knock(me, &k, 1), Outcome::Open { door: 0, offset: 0 });
}

#[test]
fn knocks_of_two_sequences_do_not_splice() {
    let me = addr("198.18.0.1");
    let mut s = Server::new(door(sealed()), T0);
    let a = knocks(&door(sealed()), T0, 1, me);
    let b = knocks(&door(sealed()), T0, 2, me);
    s.hit(me, a[0].0, a[0].1);
    assert_eq!(s.hit(me, b[1].0, b[1].1), Outcome::OutOfOrder { door: 0 });
}

#[test]
fn clock_skew_of_one_step_opens_and_three_is_reported() {
    let me = addr("198.18.0.1");
    let mut s = Server::new(door(sealed()), T0);
    let ahead = knocks(&door(sealed()), T0 + 30, 1, me);
    assert_eq!(s.knock(me, &ahead, 1), Outcome::Open { door: 0, offset: 1 });
    let behind = knocks(&door(sealed()), T0 - 30, 1, me);
    assert_eq!(
        s.knock(me, &behind, 1),
        Outcome::Open {
            door: 0,
            offset: -1
        }
    );
    let far = knocks(&door(sealed()), T0 - 90, 1, me);
    assert_eq!(
        s.hit(me, far[0].0, far[0].1),
        Outcome::Refused(Refusal::OffStep {
            door: 0,
            offset: -3
        })
    );
}

#[test]
fn bind_source_refuses_a_knock_sealed_for_another_address() {
    let (me, them) = (addr("198.18.0.1"), addr("fd00::2"));
    let bound = door(Seal::On { bind_source: true });
    let mut s = Server::new(bound.clone(), T0);
    let mine = knocks(&bound, T0, 1, me);
    assert_eq!(
        s.hit(them, mine[0].0, mine[0].1),
        Outcome::Refused(Refusal::WrongSeal { door: 0 })
    );
    assert_eq!(s.knock(me, &mine, 1), Outcome::Open { door: 0, offset: 0 });
}

#[test]
fn an_unsealed_door_reopens_for_its_opener_only() {
    let (me, them) = (addr("198.18.0.1"), addr("198.18.1.1"));
    let mut s = Server::new(door(Seal::Off), T0);
    let k = knocks(&door(Seal::Off), T0, 0, me);
    let any_seq: Vec<_> = k.iter().map(|(p, _)| (*p, 12345)).collect();
    assert_eq!(
        s.knock(me, &any_seq, 1),
        Outcome::Open { door: 0, offset: 0 }
    );
    assert_eq!(s.knock(me, &k, 1), Outcome::Open { door: 0, offset: 0 });
    assert_eq!(s.knock(them, &k, 1), Outcome::Replayed { door: 0 });
}

#[test]
fn udp_and_other_ports_are_not_ours() {
    let me = addr("198.18.0.1");
    let mut s = Server::new(door(sealed()), T0);
    let k = knocks(&door(sealed()), T0, 1, me);
    assert_eq!(s.verifier.verify(k[0].0, None, me), Err(Refusal::NotOurs));
    // Below the door's `ports`: no rotating door's.
    let other = Port::new(80).unwrap();
    assert_eq!(s.verifier.verify(other, Some(1), me), Err(Refusal::NotOurs));
    // The filter: every port of the three accepted steps, the first of each diagnosed one.
    let watched = s.verifier.ports_watched();
    assert!(watched.len() <= 9 + 8, "{watched:?}");
    assert_eq!(s.verifier.ports_in_force().len(), 9);
}

#[test]
fn the_filter_follows_the_steps() {
    let mut s = Server::new(door(sealed()), T0);
    let before = s.verifier.ports_in_force();
    assert!(!s.verifier.roll(T0 + 5), "same step: nothing to recompile");
    assert_eq!(s.verifier.seconds_to_roll(T0), Some(20));
    assert!(s.verifier.roll(T0 + 20));
    assert_ne!(s.verifier.ports_in_force(), before);
}

#[test]
fn a_flood_of_wrong_seals_costs_one_mac_per_packet_and_starts_no_attempt() {
    let mut s = Server::new(door(sealed()), T0);
    let port = knocks(&door(sealed()), T0, 1, addr("198.18.0.1"))[0].0;
    let floods = 1000u32;
    for i in 0..floods {
        let spoofed = IpAddr::from([198, 18, 16 + (i >> 8) as u8, i as u8]);
        let guess = i.wrapping_mul(2_654_435_761);
        let outcome = s.hit(spoofed, port, guess);
        assert_eq!(outcome, Outcome::Refused(Refusal::WrongSeal { door: 0 }));
    }
    assert_eq!(s.verifier.macs(), u64::from(floods));
    assert_eq!(s.gate.attempts(), 0);
}

#[test]
fn attempts_on_rotating_doors_are_bounded_by_max_attempts() {
    // A sniffer replays a captured first knock from many spoofed sources (without
    // bind_source its seal holds for any address): each starts an attempt, up to the cap.
    let me = addr("198.18.0.1");
    let mut s = Server::new(door(sealed()), T0);
    s.gate = Gate::new(10, ReplayRecord::default());
    let (port, seq) = knocks(&door(sealed()), T0, 1, me)[0];
    let mut full = 0;
    for i in 0..50u8 {
        match s.hit(IpAddr::from([198, 18, 16, i]), port, seq) {
            Outcome::Progress {
                door: 0,
                done: 1,
                of: 3,
            } => {}
            Outcome::Full { door: 0 } => full += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((s.gate.attempts(), full), (10, 40));
    assert_eq!(s.gate.attempts_by_door(s.now, &s.verifier), vec![10]);
    // Past their timeout they make room again, and no longer count as in progress.
    s.now = s.now + Duration::from_secs(11);
    assert_eq!(s.gate.attempts_by_door(s.now, &s.verifier), vec![0]);
    let fresh = knocks(&door(sealed()), T0, 2, me);
    assert_eq!(s.knock(me, &fresh, 1), Outcome::Open { door: 0, offset: 0 });
    assert_eq!(
        s.gate.attempts_by_door(s.now, &s.verifier),
        vec![0],
        "opened"
    );
}

#[test]
fn a_guess_matches_a_truncated_seal_as_often_as_its_size_says() {
    // The real seal is 24 bits (one guess in 16.7 million); counting that needs ~2^24 MACs.
    // Its bits are uniform, so the same check on the seal's top 8 MAC bits must match about
    // one guess in 256: 65536 guesses, expect 256, fail outside 6 sigma (~16 each).
    let d = door(sealed());
    let step = Step::at(T0, d.step_seconds);
    let port = d.sequence(step)[0];
    let mut matches = 0u32;
    for guess in 0..65536u32 {
        let truth = d.seq(step, 0, port, Nonce(guess as u8), addr("198.18.0.1"));
        let guessed = (guess.wrapping_mul(2_654_435_761)) >> 8 & 0xff;
        if truth >> 16 & 0xff == guessed {
            matches += 1;
        }
    }
    assert!((160..=352).contains(&matches), "{matches}");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn a_seq_verifies_only_if_it_is_the_seal(
        offset in 0u64..30, nonce: u8, seq: u32, index in 0usize..3, bind: bool,
    ) {
        let d = door(Seal::On { bind_source: bind });
        let me = addr("198.18.0.1");
        let mut s = Server::new(d.clone(), T0);
        let (port, truth) = knocks(&d, T0 - 10 + offset, nonce, me)[index];
        let verdict = s.verifier.verify(port, Some(seq), me);
        if seq == truth {
            prop_assert!(matches!(verdict, Ok(v) if v.index as usize == index));
        } else {
            prop_assert_eq!(verdict, Err(Refusal::WrongSeal { door: 0 }));
        }
    }

    #[test]
    fn any_opened_knock_replays_to_nothing(nonce: u8, a in 1u8..255, b in 1u8..255) {
        let (me, them) = (addr("198.18.0.1"), IpAddr::from([198, 18, a, b]));
        let mut s = Server::new(door(sealed()), T0);
        let k = knocks(&door(sealed()), T0, nonce, me);
        prop_assert_eq!(s.knock(me, &k, 1), Outcome::Open { door: 0, offset: 0 });
        prop_assert_eq!(s.knock(them, &k, 1), Outcome::Replayed { door: 0 });
        s.at(T0 + 30);
        prop_assert_eq!(s.knock(them, &k, 1), Outcome::Replayed { door: 0 });
        let next = knocks(&door(sealed()), T0 + 30, nonce, me);
        prop_assert_eq!(s.knock(me, &next, 1), Outcome::Open { door: 0, offset: 0 });
    }
}

/// A door and its twin for older pairings (same name and key, a few ports fewer): in a step
/// where both sequences have the same port at the same place, that knock verifies for both,
/// and the one the knocker is part-way through must win, for both clients.
#[test]
fn a_knock_valid_for_a_door_and_its_twin_counts_for_the_attempt_in_progress() {
    let full = RotatingDoor {
        ports: "7000-7009".parse().unwrap(),
        ..door(sealed())
    };
    let twin = RotatingDoor {
        ports: "7000,7002-7009".parse().unwrap(),
        ..full.clone()
    };
    let me = addr("198.18.0.1");
    let mut seen = [false; 2];
    for n in 0..2000u64 {
        let unix = T0 + 30 * n;
        let step = Step::at(unix, full.step_seconds);
        let (a, b) = (full.sequence(step), twin.sequence(step));
        let same_later = (1..3).any(|i| a[i] == b[i]) && a[0] != b[0];
        if !same_later {
            continue;
        }
        for (client, which) in [(&full, 0usize), (&twin, 1)] {
            let mut verifier = Verifier::new(vec![full.clone(), twin.clone()]);
            verifier.roll(unix);
            let mut gate = Gate::new(100, ReplayRecord::default());
            let mut last = Outcome::NotOurs;
            for (port, seq) in knocks(client, unix, 1, me) {
                let prefer = gate.attempt_door(me);
                let verdict = verifier.verify_for(port, Some(seq), me, || prefer);
                last = gate.handle(Timestamp::ZERO, &verifier, me, verdict);
            }
            assert!(
                matches!(last, Outcome::Open { door, .. } if door == which),
                "step {step:?}: {a:?} / {b:?}: {last:?}"
            );
            seen[which] = true;
        }
        break;
    }
    assert_eq!(seen, [true, true], "no step with a shared later port");
}

#[test]
fn a_gate_carries_attempts_over_to_the_doors_a_reload_kept() {
    let d = door(sealed());
    let me = addr("198.18.0.1");
    let ks = knocks(&d, T0, 1, me);
    let mut before = Server::new(d.clone(), T0);
    assert!(matches!(
        before.hit(me, ks[0].0, ks[0].1),
        Outcome::Progress { done: 1, .. }
    ));
    // The reloaded verifier has another door first; ours is now door 1.
    let other = RotatingDoor {
        name: "web".into(),
        ..d.clone()
    };
    let mut verifier = Verifier::new(vec![other, d]);
    verifier.roll(T0);
    let mut gate = Gate::new(100, ReplayRecord::default());
    gate.carry(&before.gate, |old| (old == 0).then_some(1));
    assert_eq!(gate.attempt_door(me), Some(1));
    let mut last = Outcome::NotOurs;
    for &(port, seq) in &ks[1..] {
        let verdict = verifier.verify(port, Some(seq), me);
        last = gate.handle(Timestamp::ZERO, &verifier, me, verdict);
    }
    assert_eq!(last, Outcome::Open { door: 1, offset: 0 });
    let mut dropped = Gate::new(100, ReplayRecord::default());
    dropped.carry(&before.gate, |_| None);
    assert_eq!(dropped.attempts(), 0);
}

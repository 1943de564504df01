//! Fuzzes the seal check of rotating doors: three doors with fixed keys (sealed, sealed and
//! bound to the source, unsealed; small overlapping port ranges, so derived sequences share
//! ports) get a stream of SYNs, each either raw (any port, any sequence number) or a real
//! client's knock (any door, step, index, nonce and source), possibly with a bit flipped or sent
//! from another address, with time steps and lost steps (`distrust`) in between. Every hit goes
//! through `Verifier::verify` and `Gate::handle`, as the daemon's `RotatingDoors::handle` does.
//!
//! A random sequence number matches a given seal with probability 2^-24: over millions of runs
//! some will, and coverage feedback then keeps them. So this does not assert that random hits
//! never verify; it asserts the exact rule, which holds for every input: a hit verifies only if
//! its sequence number is, bit for bit, the door's seal (`RotatingDoor::seq`, the client's
//! computation) for a place that port has in an accepted step, and every verdict is the one
//! that rule gives, candidate by candidate. And on top, the gate's rules: a door opens only at
//! the end of an unbroken chain of verified knocks of one (door, step, nonce) from one source,
//! a sealed (door, step, nonce) opens once, an unsealed (door, step) for one address only, a
//! distrusted step never, and attempts never exceed their cap.
#![no_main]

use std::cell::RefCell;
use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::num::NonZeroU32;
use std::time::Duration;

use knock_proto::auth::verify::DIAGNOSED_STEPS;
use knock_proto::auth::{
    ACCEPTED_STEPS, Gate, Key, Nonce, Outcome, PortSet, Refusal, ReplayRecord, RotatingDoor, Seal,
    Step, Verified, Verifier,
};
use knock_proto::{Port, Timestamp};
use libfuzzer_sys::fuzz_target;

/// The input, read a byte at a time; zeros once it runs out.
struct Input<'a>(&'a [u8]);

impl Input<'_> {
    fn byte(&mut self) -> u8 {
        match self.0.split_first() {
            Some((&b, rest)) => {
                self.0 = rest;
                b
            }
            None => 0,
        }
    }

    fn u32(&mut self) -> u32 {
        u32::from_be_bytes([self.byte(), self.byte(), self.byte(), self.byte()])
    }
}

fn doors() -> Vec<RotatingDoor> {
    let door = |name: &str, key: u8, knocks, ports, step, seal| RotatingDoor {
        name: name.to_owned(),
        key: Key::from_bytes([key; 32]),
        knocks,
        ports: PortSet::from_ranges([ports]).expect("ports"),
        step_seconds: NonZeroU32::new(step).expect("step"),
        seal,
        seq_timeout: Duration::from_secs(5),
    };
    vec![
        door(
            "ssh",
            1,
            3,
            7000..=7015,
            30,
            Seal::On { bind_source: false },
        ),
        door("vpn", 2, 2, 7008..=7023, 60, Seal::On { bind_source: true }),
        door("lab", 3, 2, 7016..=7031, 30, Seal::Off),
    ]
}

/// A verifier rolled to one time, and the sequences of every door's diagnosed steps.
#[derive(Clone)]
struct Rolled {
    verifier: Verifier,
    current: Vec<Step>,
    /// Per door, per offset from -DIAGNOSED_STEPS: the ports.
    sequences: Vec<Vec<Vec<Port>>>,
}

fn roll(unix: u64) -> Rolled {
    thread_local! {
        static CACHE: RefCell<HashMap<u64, Rolled>> = RefCell::new(HashMap::new());
    }
    CACHE.with_borrow_mut(|cache| {
        if cache.len() > 4096 {
            cache.clear();
        }
        cache
            .entry(unix)
            .or_insert_with(|| {
                let mut verifier = Verifier::new(doors());
                verifier.roll(unix);
                let current: Vec<Step> = verifier
                    .doors()
                    .iter()
                    .map(|d| Step::at(unix, d.step_seconds))
                    .collect();
                let sequences = verifier
                    .doors()
                    .iter()
                    .zip(&current)
                    .map(|(d, now)| {
                        (-DIAGNOSED_STEPS..=DIAGNOSED_STEPS)
                            .map(|o| d.sequence(now.offset(o)))
                            .collect()
                    })
                    .collect();
                Rolled {
                    verifier,
                    current,
                    sequences,
                }
            })
            .clone()
    })
}

/// The verdict the rule gives, worked out candidate by candidate with the client's seal.
fn rule(r: &Rolled, port: Port, seq: u32, source: IpAddr) -> Result<Verified, Refusal> {
    let mut candidates = Vec::new();
    for (door, steps) in r.sequences.iter().enumerate() {
        for (offset, ports) in (-DIAGNOSED_STEPS..).zip(steps) {
            for (index, p) in ports.iter().enumerate() {
                if *p == port {
                    candidates.push((door, offset, u8::try_from(index).unwrap()));
                }
            }
        }
    }
    candidates.sort_by_key(|c| c.1.abs());
    let mut refusal = Refusal::NotOurs;
    for (door, offset, index) in candidates {
        let d = &r.verifier.doors()[door];
        let step = r.current[door].offset(offset);
        let nonce = match d.seal {
            Seal::Off => None,
            Seal::On { .. } => {
                let nonce = Nonce::of_seq(seq);
                if d.seq(step, index, port, nonce, source) != seq {
                    if refusal == Refusal::NotOurs {
                        refusal = Refusal::WrongSeal { door };
                    }
                    continue;
                }
                Some(nonce)
            }
        };
        if offset.abs() > ACCEPTED_STEPS {
            if !matches!(refusal, Refusal::OffStep { .. }) {
                refusal = Refusal::OffStep { door, offset };
            }
            continue;
        }
        return Ok(Verified {
            door,
            step,
            offset,
            index,
            nonce,
        });
    }
    Err(refusal)
}

fn source(b: u8) -> IpAddr {
    match b % 4 {
        0 => IpAddr::from([198, 18, 0, 1]),
        1 => IpAddr::from([198, 18, 0, 2]),
        2 => IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1]),
        _ => IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 2]),
    }
}

/// What the gate's outcomes so far say.
#[derive(Default)]
struct Shadow {
    /// Per source: the (door, step, nonce) of its attempt and the knocks it did.
    chains: HashMap<IpAddr, ((usize, Step, Option<Nonce>), u8)>,
    /// Sealed knocks that opened: (door, step, nonce).
    sealed_opened: HashSet<(usize, Step, Nonce)>,
    /// Unsealed knocks that opened: (door, step) -> the address.
    unsealed_opened: HashMap<(usize, Step), IpAddr>,
    /// Steps whose record was lost.
    distrusted: HashSet<(usize, Step)>,
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let max_attempts = usize::from(input.byte() % 4) + 1;
    let mut unix = 1_790_000_000 + u64::from(input.byte()) * 7;
    let mut rolled = roll(unix);
    let mut gate = Gate::new(max_attempts, ReplayRecord::default());
    let mut now = Timestamp::ZERO;
    let mut shadow = Shadow::default();
    let mut previous = None;
    while !input.0.is_empty() {
        let op = input.byte();
        let (port, seq, from) = match op % 8 {
            // A raw SYN: a port in or near the doors' ranges, any sequence number.
            0 | 1 => {
                let port = Port::new(6990 + u16::from(input.byte() % 50)).unwrap();
                (port, input.u32(), source(op >> 3))
            }
            // A client's knock, as it is or tampered with.
            2..=4 => {
                let door = usize::from(input.byte() % 3);
                let d = &rolled.verifier.doors()[door];
                let offset = i64::from(input.byte() % 15) - 7;
                let index = input.byte() % (d.knocks + 1);
                let nonce = Nonce(input.byte());
                let signer = source(op >> 3);
                let step = rolled.current[door].offset(offset);
                let ports = d.sequence(step);
                let port = ports[usize::from(index).min(ports.len() - 1)];
                let mut seq = d.seq(step, index, port, nonce, signer);
                let tamper = input.byte();
                if tamper & 0x80 != 0 {
                    seq ^= 1 << (tamper % 32);
                }
                let from = if tamper & 0x40 != 0 {
                    source(tamper)
                } else {
                    signer
                };
                (port, seq, from)
            }
            5 => match previous {
                Some(hit) => hit,
                None => continue,
            },
            // Time passes: milliseconds within attempts, or whole steps.
            6 => {
                let b = input.byte();
                if b & 0x80 != 0 {
                    unix += u64::from(b & 0x7f) * 5;
                    rolled = roll(unix);
                    now = now + Duration::from_secs(u64::from(b & 0x7f) * 5);
                } else {
                    now = now + Duration::from_millis(u64::from(b) * 50);
                }
                gate.expire(now, &rolled.verifier);
                continue;
            }
            // A step's record is lost.
            _ => {
                let door = usize::from(input.byte() % 3);
                let offset = i64::from(input.byte() % 3) - 1;
                let step = rolled.current[door].offset(offset);
                gate.record
                    .distrust(&rolled.verifier.doors()[door].name, step);
                shadow.distrusted.insert((door, step));
                continue;
            }
        };
        previous = Some((port, seq, from));

        let verdict = rolled.verifier.verify(port, Some(seq), from);
        if let Ok(v) = verdict {
            // Nothing verifies but the door's own seal for that place.
            let d = &rolled.verifier.doors()[v.door];
            assert!(v.offset.abs() <= ACCEPTED_STEPS, "{v:?}");
            assert_eq!(v.step, rolled.current[v.door].offset(v.offset));
            let at = usize::try_from(v.offset + DIAGNOSED_STEPS).unwrap();
            let sequence = &rolled.sequences[v.door][at];
            assert_eq!(sequence.get(usize::from(v.index)), Some(&port), "{v:?}");
            match d.seal {
                Seal::Off => assert_eq!(v.nonce, None),
                Seal::On { .. } => {
                    assert_eq!(v.nonce, Some(Nonce::of_seq(seq)));
                    assert_eq!(d.seq(v.step, v.index, port, Nonce::of_seq(seq), from), seq);
                }
            }
        }
        assert_eq!(
            verdict,
            rule(&rolled, port, seq, from),
            "{port} {seq:08x} {from}"
        );
        assert_eq!(
            rolled.verifier.verify(port, None, from),
            Err(Refusal::NotOurs)
        );

        let outcome = gate.handle(now, &rolled.verifier, from, verdict);
        assert!(gate.attempts() <= max_attempts);
        check(&mut shadow, &rolled, from, verdict, outcome);
    }
});

fn check(
    shadow: &mut Shadow,
    rolled: &Rolled,
    from: IpAddr,
    verdict: Result<Verified, Refusal>,
    outcome: Outcome,
) {
    let chain = shadow.chains.get(&from).copied();
    match (outcome, verdict) {
        (Outcome::NotOurs, v) => assert_eq!(v, Err(Refusal::NotOurs)),
        (Outcome::Refused(r), v) => {
            assert_eq!(Err(r), v);
            let (Refusal::WrongSeal { door } | Refusal::OffStep { door, .. }) = r else {
                panic!("refused as not ours");
            };
            if chain.is_some_and(|((d, _, _), _)| d == door) {
                shadow.chains.remove(&from);
            }
        }
        (Outcome::OutOfOrder { door }, Ok(v)) => {
            assert_eq!(door, v.door);
            assert_ne!(v.index, 0);
            shadow.chains.remove(&from);
        }
        (Outcome::Full { door }, Ok(v)) => assert_eq!(door, v.door),
        (Outcome::Repeat { door }, Ok(v)) => {
            assert_eq!(door, v.door);
            assert_eq!(chain, Some(((v.door, v.step, v.nonce), v.index + 1)));
        }
        (Outcome::Progress { door, done, of }, Ok(v)) => {
            let knocks = rolled.verifier.doors()[door].knocks;
            assert_eq!((door, done, of), (v.door, v.index + 1, knocks));
            assert!(done < knocks);
            if done > 1 {
                assert_eq!(chain, Some(((v.door, v.step, v.nonce), done - 1)), "{v:?}");
            }
            shadow
                .chains
                .insert(from, ((v.door, v.step, v.nonce), done));
        }
        (Outcome::Open { door, offset }, Ok(v))
        | (Outcome::Replayed { door }, Ok(v @ Verified { offset, .. })) => {
            let knocks = rolled.verifier.doors()[door].knocks;
            assert_eq!((door, offset), (v.door, v.offset));
            assert_eq!(v.index + 1, knocks, "{v:?}");
            if knocks > 1 {
                assert_eq!(
                    chain,
                    Some(((v.door, v.step, v.nonce), knocks - 1)),
                    "{v:?}"
                );
            }
            shadow
                .chains
                .insert(from, ((v.door, v.step, v.nonce), knocks));
            if matches!(outcome, Outcome::Open { .. }) {
                assert!(!shadow.distrusted.contains(&(door, v.step)), "{v:?}");
                match v.nonce {
                    Some(n) => assert!(
                        shadow.sealed_opened.insert((door, v.step, n)),
                        "a sealed knock opened twice: {v:?}"
                    ),
                    None => {
                        let opener = *shadow.unsealed_opened.entry((door, v.step)).or_insert(from);
                        assert_eq!(opener, from, "{v:?}");
                    }
                }
            }
        }
        (o, v) => panic!("{o:?} from {v:?}"),
    }
}

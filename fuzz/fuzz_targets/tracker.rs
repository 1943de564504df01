//! Fuzzes the knock state machine: the bytes describe a few doors, a cap on attempts, then a
//! stream of hits, time steps, expiries and sequence changes.
//!
//! Besides "never panics", it replays the events into a shadow map of (source, door) -> stage
//! and checks that they tell a consistent story: a stage only ever moves up by one from the
//! previous (or starts at 1 with no attempt), every attempt that ends is ended once with the
//! stage it had, a door opens only from its last stage, a failure names the knock that was due
//! and one that was neither it nor a repeat of the last one, and the shadow's size is the tracker's
//! attempt count, which never exceeds the cap; `poll_at` has a deadline exactly when attempts
//! are in progress.
#![no_main]

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use knock_proto::tracker::{DoorId, DoorSpec, Event, Tracker};
use knock_proto::wire::Hit;
use knock_proto::{Knock, Port, Proto, Sequence, TcpFlags, Timestamp};
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

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// A knock on one of 4 ports, either protocol, mostly TCP: few enough that even random streams
/// often send the next expected knock and reach deep stages.
fn knock(b: u8) -> Knock {
    let port = Port::new(u16::from(b & 0x03) + 1).expect("1..=4 is a port");
    let proto = if b & 0x1c == 0x1c {
        Proto::Udp
    } else {
        Proto::Tcp
    };
    Knock::new(port, proto)
}

/// A sequence of up to 6 knocks; `None` (a disabled door) for a length byte of 0 mod 7.
fn sequence(input: &mut Input) -> Option<Sequence> {
    let len = usize::from(input.byte() % 7);
    let knocks = (0..len).map(|_| knock(input.byte())).collect::<Vec<_>>();
    Sequence::new(knocks).ok()
}

fn door(input: &mut Input) -> DoorSpec {
    let sequence = sequence(input);
    let seq_timeout = Duration::from_millis(u64::from(input.byte()) * 16);
    let shape = input.byte();
    let tcpflags = match shape % 3 {
        0 => TcpFlags::ANY,
        1 => TcpFlags::new(0x02, 0).expect("syn"),
        _ => TcpFlags::new(0x02, 0x10).expect("syn,!ack"),
    };
    let target = (shape & 0x80 != 0).then(|| IpAddr::from([198, 18, 0, 9]));
    DoorSpec {
        sequence,
        seq_timeout,
        tcpflags,
        target,
    }
}

/// One of 6 sources, half IPv4, half IPv6.
fn source(b: u8) -> IpAddr {
    let n = b % 6;
    if n < 3 {
        IpAddr::from([198, 18, 1, n])
    } else {
        IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, u16::from(n)])
    }
}

fn destination(b: u8) -> IpAddr {
    match b % 3 {
        0 => IpAddr::from([198, 18, 0, 2]),
        1 => IpAddr::from([198, 18, 0, 9]),
        _ => IpAddr::from([198, 18, 0, 77]),
    }
}

/// What the events say is in progress, and the sequences the doors have now.
struct Shadow {
    stages: HashMap<(IpAddr, DoorId), u8>,
    sequences: Vec<Option<Sequence>>,
}

impl Shadow {
    fn apply(&mut self, events: &[Event]) {
        for &event in events {
            match event {
                Event::Stage {
                    source,
                    door,
                    stage,
                } => {
                    let before = self.stages.insert((source, door), stage);
                    let expected = before.map_or(1, |s| s + 1);
                    assert_eq!(stage, expected, "{event:?} after stage {before:?}");
                    assert!(usize::from(stage) < self.len(door), "{event:?}");
                }
                Event::Opened { source, door } => {
                    let before = self.stages.remove(&(source, door)).unwrap_or(0);
                    assert_eq!(usize::from(before) + 1, self.len(door), "{event:?}");
                }
                Event::Failed {
                    source,
                    door,
                    stage,
                    expected,
                    got,
                } => {
                    let before = self.stages.remove(&(source, door));
                    assert_eq!(before, Some(stage), "{event:?}");
                    let knocks = self.sequences[door].as_ref().map_or(&[][..], |s| s.knocks());
                    let stage = usize::from(stage);
                    assert_eq!(knocks.get(stage), Some(&expected), "{event:?}");
                    assert_ne!(got, expected, "{event:?}");
                    let last = stage.checked_sub(1).and_then(|s| knocks.get(s));
                    assert_ne!(Some(&got), last, "a repeat: {event:?}");
                }
                Event::Expired {
                    source,
                    door,
                    stage,
                }
                | Event::Evicted {
                    source,
                    door,
                    stage,
                } => {
                    let before = self.stages.remove(&(source, door));
                    assert_eq!(before, Some(stage), "{event:?}");
                }
            }
        }
    }

    fn len(&self, door: DoorId) -> usize {
        self.sequences[door].as_ref().map_or(0, Sequence::len)
    }
}

fuzz_target!(|data: &[u8]| {
    let mut input = Input(data);
    let doors: Vec<DoorSpec> = (0..input.byte() % 4 + 1)
        .map(|_| door(&mut input))
        .collect();
    let max = usize::from(input.byte() % 8);
    let mut shadow = Shadow {
        stages: HashMap::new(),
        sequences: doors.iter().map(|d| d.sequence.clone()).collect(),
    };
    let mut tracker = Tracker::new(doors, max);
    if input.byte() & 1 == 1 {
        tracker.set_local_addresses(&[IpAddr::from([198, 18, 0, 2])]);
    }
    let mut now = 0u64;
    let mut previous: Option<Hit> = None;
    let mut events = Vec::new();
    while !input.is_empty() {
        let op = input.byte();
        // Mostly small steps, now and then a jump past every timeout.
        now += match op >> 3 {
            31 => 1 << 40,
            step => u64::from(step) * 8,
        };
        let now = Timestamp::from_millis(now);
        events.clear();
        match op % 8 {
            // The previous hit again: a retransmission.
            5 if previous.is_some() => {
                if let Some(hit) = previous {
                    tracker.handle(now, &hit, &mut events);
                }
            }
            0..=5 => {
                let hit = Hit {
                    source: source(input.byte()),
                    destination: destination(op),
                    knock: knock(input.byte()),
                    tcp_flags: input.byte(),
                    src_port: u16::from(input.byte()),
                    tcp_seq: u32::from(input.byte()),
                };
                tracker.handle(now, &hit, &mut events);
                previous = Some(hit);
            }
            6 => tracker.expire(now, &mut events),
            _ => {
                let door = usize::from(input.byte() % 5); // sometimes unknown
                let sequence = sequence(&mut input);
                tracker.set_sequence(door, sequence.clone());
                if let Some(slot) = shadow.sequences.get_mut(door) {
                    *slot = sequence;
                    shadow.stages.retain(|&(_, d), _| d != door);
                }
            }
        }
        shadow.apply(&events);
        let attempts = tracker.stats().attempts;
        assert_eq!(attempts, shadow.stages.len());
        assert!(attempts <= max.max(1));
        assert_eq!(tracker.poll_at().is_some(), attempts > 0);
    }
});

//! Property tests: the tracker's promises over random streams of hits, and event-for-event
//! agreement with the plain reference model in `model.rs`.

use std::net::IpAddr;
use std::time::Duration;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::subsequence;

use super::model::Model;
use super::*;
use crate::flags::bits::{ACK, SYN};
use crate::sequence::{Port, Proto};

const HOST: [u8; 4] = [198, 18, 0, 2];
const TARGET: [u8; 4] = [198, 18, 0, 9];
const KNOCKER: [u8; 4] = [198, 18, 0, 1];

fn knock(port: u16, udp: bool) -> Knock {
    let port = Port::new(port.max(1)).unwrap();
    Knock::new(port, if udp { Proto::Udp } else { Proto::Tcp })
}

/// A knock on one of a few ports, so that random streams hit door ports often.
fn small_knock() -> impl Strategy<Value = Knock> {
    (1u16..=6, any::<bool>()).prop_map(|(p, udp)| knock(p, udp))
}

fn sequence(max_len: usize) -> impl Strategy<Value = Sequence> {
    vec(small_knock(), 1..=max_len).prop_map(|k| Sequence::new(k).unwrap())
}

/// A few sources of both families, never [`KNOCKER`].
fn noise_source() -> impl Strategy<Value = IpAddr> {
    prop_oneof![
        (0u8..8).prop_map(|n| IpAddr::from([198, 18, 1, n])),
        (0u16..4).prop_map(|n| IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, n])),
    ]
}

fn flags() -> impl Strategy<Value = u8> {
    prop_oneof![Just(SYN), Just(SYN | ACK), Just(ACK), Just(0)]
}

fn hit(source: IpAddr, knock: Knock) -> Hit {
    Hit {
        source,
        destination: IpAddr::from(HOST),
        knock,
        tcp_flags: SYN,
        src_port: 40000,
        tcp_seq: 1,
    }
}

/// 2 to 8 distinct knocks on ports 1 to 20, in random order.
fn distinct_knocks() -> impl Strategy<Value = Vec<Knock>> {
    (
        subsequence((1u16..=20).collect::<Vec<_>>(), 2..=8).prop_shuffle(),
        vec(any::<bool>(), 8),
    )
        .prop_map(|(ports, protos)| {
            ports
                .iter()
                .zip(&protos)
                .map(|(&p, &udp)| knock(p, udp))
                .collect()
        })
}

/// A door expecting `knocks`, written either way: each knock once, or each three times in a
/// row as knockd users write doors for telnet (`02,02,02,01,01,01,2010,2010,2010`).
fn written(knocks: &[Knock], tripled: bool) -> Sequence {
    let times = if tripled { 3 } else { 1 };
    let all = knocks
        .iter()
        .flat_map(|&k| std::iter::repeat_n(k, times))
        .collect();
    Sequence::new(all).unwrap()
}

/// The knocker's hits: `knocks[i]` sent `repeats[i]` times in a row (repeats cycled), each
/// time as the kernel's retransmission (same source port and sequence number) or, where
/// `fresh` says so, as a new connection attempt.
fn with_repeats(knocks: &[Knock], repeats: &[usize], fresh: &[bool]) -> Vec<Hit> {
    let mut hits = Vec::new();
    for (i, (&k, &n)) in knocks.iter().zip(repeats.iter().cycle()).enumerate() {
        let mut h = hit(IpAddr::from(KNOCKER), k);
        h.src_port = 40000 + i as u16;
        for again in 0..n {
            if fresh[(i + again) % fresh.len()] {
                h.src_port += 1000;
                h.tcp_seq += 1;
            }
            hits.push(h);
        }
    }
    hits
}

/// How many times `hits`, at the times `at` (ms, cycled), open door 0 of `tracker`.
fn openings(tracker: &mut Tracker, hits: &[Hit], at: impl Fn(usize) -> u64) -> usize {
    let mut events = Vec::new();
    for (i, h) in hits.iter().enumerate() {
        tracker.handle(Timestamp::from_millis(at(i)), h, &mut events);
    }
    events
        .iter()
        .filter(|e| matches!(e, Event::Opened { door: 0, .. }))
        .count()
}

fn spec(sequence: Sequence) -> DoorSpec {
    DoorSpec {
        sequence: Some(sequence),
        seq_timeout: Duration::from_secs(25),
        tcpflags: TcpFlags::ANY,
        target: None,
    }
}

/// Any door the model understands: maybe disabled, any timeout up to 3 s, some flags, maybe
/// a target.
fn door() -> impl Strategy<Value = DoorSpec> {
    let tcpflags = prop_oneof![
        Just(TcpFlags::ANY),
        Just(TcpFlags::new(SYN, 0).unwrap()),
        Just(TcpFlags::new(SYN, ACK).unwrap()),
    ];
    let target = prop_oneof![3 => Just(None), 1 => Just(Some(IpAddr::from(TARGET)))];
    (
        prop::option::weighted(0.9, sequence(5)),
        0u64..3000,
        tcpflags,
        target,
    )
        .prop_map(|(sequence, ms, tcpflags, target)| DoorSpec {
            sequence,
            seq_timeout: Duration::from_millis(ms),
            tcpflags,
            target,
        })
}

/// One call into the tracker, `dt` milliseconds after the previous one.
#[derive(Debug, Clone)]
enum Op {
    Hit {
        dt: u64,
        hit: Hit,
    },
    /// The previous hit again (a retransmission), if there was one.
    Again {
        dt: u64,
    },
    Expire {
        dt: u64,
    },
    SetSequence {
        door: usize,
        sequence: Option<Sequence>,
    },
    SetLocal(Vec<IpAddr>),
}

/// A hit from a few sources to a few destinations, on a few ports, with some flags.
fn op_hit() -> impl Strategy<Value = Hit> {
    let destination = prop_oneof![
        Just(IpAddr::from(HOST)),
        Just(IpAddr::from(TARGET)),
        Just(IpAddr::from([198, 18, 0, 77])),
    ];
    (
        noise_source(),
        destination,
        small_knock(),
        flags(),
        any::<(u16, u32)>(),
    )
        .prop_map(
            |(source, destination, knock, tcp_flags, (src_port, tcp_seq))| Hit {
                source,
                destination,
                knock,
                tcp_flags,
                src_port,
                tcp_seq,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    let dt = prop_oneof![8 => 0u64..200, 1 => 0u64..5000];
    prop_oneof![
        20 => (dt.clone(), op_hit()).prop_map(|(dt, hit)| Op::Hit { dt, hit }),
        5 => dt.clone().prop_map(|dt| Op::Again { dt }),
        2 => dt.prop_map(|dt| Op::Expire { dt }),
        1 => (0usize..4, prop::option::weighted(0.8, sequence(5)))
            .prop_map(|(door, sequence)| Op::SetSequence { door, sequence }),
        1 => prop_oneof![Just(vec![]), Just(vec![IpAddr::from(HOST)])].prop_map(Op::SetLocal),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The knocker's sequence, interleaved with other sources' packets on random ports (some
    /// of them the door's), opens the door exactly once, on the knocker's last knock.
    #[test]
    fn correct_sequence_opens_exactly_once_whatever_the_interleaving(
        seq in sequence(8),
        other in sequence(4),
        noise in vec((noise_source(), small_knock()), 0..64),
        schedule in vec(any::<bool>(), 72),
        steps in vec(0u64..100, 72),
    ) {
        let mut tracker = Tracker::new(vec![spec(seq.clone()), spec(other)], 1000);
        let knocker = IpAddr::from(KNOCKER);
        let (mut mine, mut theirs) = (seq.knocks().iter(), noise.iter());
        let mut events = Vec::new();
        let mut now = 0;
        let mut opened = 0;
        for (i, &knocker_next) in schedule.iter().enumerate() {
            now += steps[i];
            let h = match (knocker_next, theirs.next()) {
                (false, Some(&(source, k))) => hit(source, k),
                _ => match mine.next() {
                    Some(&k) => hit(knocker, k),
                    None => continue,
                },
            };
            events.clear();
            tracker.handle(Timestamp::from_millis(now), &h, &mut events);
            let open = Event::Opened { source: knocker, door: 0 };
            if events.contains(&open) {
                opened += 1;
                prop_assert_eq!(mine.len(), 0, "opened before the last knock");
            }
        }
        // Knocks the schedule had no room for.
        for &k in mine {
            events.clear();
            tracker.handle(Timestamp::from_millis(now), &hit(knocker, k), &mut events);
            opened += events.iter().filter(|e| matches!(e, Event::Opened { door: 0, .. })).count();
        }
        prop_assert_eq!(opened, 1);
    }

    /// Distinct knocks sent in any order but the right one never open, whichever way the
    /// door is written and however often each knock is repeated.
    #[test]
    fn a_permutation_of_distinct_knocks_never_opens(
        knocks in distinct_knocks(),
        tripled in any::<bool>(),
        repeats in vec(1usize..=6, 8),
        fresh in vec(any::<bool>(), 1..8),
    ) {
        let mut sorted = knocks.clone();
        sorted.sort_by_key(|k| k.port);
        prop_assume!(sorted != knocks);
        // The door expects ascending ports; the knocker sends them shuffled.
        let mut tracker = Tracker::new(vec![spec(written(&sorted, tripled))], 10);
        let hits = with_repeats(&knocks, &repeats, &fresh);
        prop_assert_eq!(openings(&mut tracker, &hits, |_| 0), 0);
        // Sent once each, the shuffled knocks do not open either.
        let mut tracker = Tracker::new(vec![spec(written(&sorted, tripled))], 10);
        let once = with_repeats(&knocks, &[1], &[false]);
        prop_assert_eq!(openings(&mut tracker, &once, |_| 0), 0);
    }

    /// The right knocks, each sent any number of times the door allows (at least three for a
    /// tripled door), in time, open the door exactly once.
    #[test]
    fn the_right_knocks_open_once_however_often_each_is_repeated(
        knocks in distinct_knocks(),
        tripled in any::<bool>(),
        repeats in vec(1usize..=6, 8),
        fresh in vec(any::<bool>(), 1..8),
    ) {
        let repeats: Vec<usize> =
            repeats.iter().map(|&n| if tripled { n.max(3) } else { n }).collect();
        let mut tracker = Tracker::new(vec![spec(written(&knocks, tripled))], 10);
        let hits = with_repeats(&knocks, &repeats, &fresh);
        prop_assert_eq!(openings(&mut tracker, &hits, |i| i as u64 * 10), 1);
    }

    /// One knock of the sequence replaced by a wrong one (another port, another protocol, or
    /// another knock of the door) never opens, with or without repeats.
    #[test]
    fn a_wrong_knock_never_opens_even_repeated(
        knocks in distinct_knocks(),
        tripled in any::<bool>(),
        wrong_at in any::<prop::sample::Index>(),
        wrong in (1u16..=22, any::<bool>()).prop_map(|(p, udp)| knock(p, udp)),
        repeats in vec(1usize..=6, 8),
        fresh in vec(any::<bool>(), 1..8),
    ) {
        let mut sent = knocks.clone();
        let i = wrong_at.index(sent.len());
        prop_assume!(sent[i] != wrong);
        sent[i] = wrong;
        let mut tracker = Tracker::new(vec![spec(written(&knocks, tripled))], 10);
        let hits = with_repeats(&sent, &repeats, &fresh);
        prop_assert_eq!(openings(&mut tracker, &hits, |_| 0), 0);
        let mut tracker = Tracker::new(vec![spec(written(&knocks, tripled))], 10);
        let once = with_repeats(&sent, &[if tripled { 3 } else { 1 }], &[false]);
        prop_assert_eq!(openings(&mut tracker, &once, |_| 0), 0);
    }

    /// The right knocks, repeated, never open when the last port's first hit comes
    /// `seq_timeout` or later after the first port's last hit (which may start a new
    /// attempt once the one an earlier hit started has expired, as any first knock may): a
    /// repeat neither restarts nor extends an attempt.
    #[test]
    fn out_of_time_never_opens_even_repeated(
        knocks in distinct_knocks(),
        tripled in any::<bool>(),
        repeats in vec(1usize..=6, 8),
        fresh in vec(any::<bool>(), 1..8),
        gaps in vec(0u64..500, 48),
        short_by in any::<prop::sample::Index>(),
    ) {
        let repeats: Vec<usize> =
            repeats.iter().map(|&n| if tripled { n.max(3) } else { n }).collect();
        let hits = with_repeats(&knocks, &repeats, &fresh);
        let at = |i: usize| gaps[..i].iter().sum::<u64>();
        // The last hit on the first port, the first hit on the last port.
        let first = hits.iter().rposition(|h| h.knock == knocks[0]).unwrap();
        let last = hits.iter().position(|h| Some(&h.knock) == knocks.last()).unwrap();
        let span = at(last) - at(first);
        prop_assume!(span > 0);
        let timeout = 1 + short_by.index(usize::try_from(span).unwrap()) as u64;
        let mut door = spec(written(&knocks, tripled));
        door.seq_timeout = Duration::from_millis(timeout);
        let mut tracker = Tracker::new(vec![door], 10);
        prop_assert_eq!(openings(&mut tracker, &hits, at), 0, "timeout {} ms", timeout);
    }

    /// The number of attempts never exceeds the cap, and every eviction is counted.
    #[test]
    fn attempts_never_exceed_the_cap(
        doors in vec(door(), 1..4),
        max in 1usize..6,
        ops in vec(op(), 0..200),
    ) {
        let mut tracker = Tracker::new(doors, max);
        let mut events = Vec::new();
        let mut evicted = 0;
        let mut now = 0u64;
        for op in ops {
            if let Op::Hit { dt, hit } = op {
                now += dt;
                events.clear();
                tracker.handle(Timestamp::from_millis(now), &hit, &mut events);
                evicted += events.iter().filter(|e| matches!(e, Event::Evicted { .. })).count();
                prop_assert!(tracker.stats().attempts <= max);
            }
        }
        prop_assert_eq!(tracker.stats().evicted, evicted as u64);
    }

    /// The tracker and the reference model agree on every event, attempt count and deadline.
    #[test]
    fn agrees_with_the_reference_model(
        doors in vec(door(), 1..4),
        max in 1usize..6,
        ops in vec(op(), 0..300),
    ) {
        let mut tracker = Tracker::new(doors.clone(), max);
        let mut model = Model::new(doors, max);
        let (mut got, mut want) = (Vec::new(), Vec::new());
        let mut now = 0u64;
        let mut last = None;
        for op in ops {
            got.clear();
            want.clear();
            let op = match op {
                Op::Again { dt } => match last {
                    Some(hit) => Op::Hit { dt, hit },
                    None => Op::Expire { dt },
                },
                op => op,
            };
            match op {
                Op::Hit { dt, hit } => {
                    now += dt;
                    tracker.handle(Timestamp::from_millis(now), &hit, &mut got);
                    model.handle(Timestamp::from_millis(now), &hit, &mut want);
                    last = Some(hit);
                }
                Op::Expire { dt } => {
                    now += dt;
                    tracker.expire(Timestamp::from_millis(now), &mut got);
                    model.expire(Timestamp::from_millis(now), &mut want);
                }
                Op::SetSequence { door, sequence } => {
                    tracker.set_sequence(door, sequence.clone());
                    model.set_sequence(door, sequence);
                }
                Op::SetLocal(addrs) => {
                    tracker.set_local_addresses(&addrs);
                    model.set_local_addresses(&addrs);
                }
                Op::Again { .. } => unreachable!("replaced above"),
            }
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(tracker.stats().attempts, model.len());
            prop_assert_eq!(tracker.poll_at(), model.poll_at());
        }
    }

    /// `handle_batch` on any split of a stream of hits (each at its own time) does exactly
    /// what `handle` does one hit at a time: same events in the same order, same counters,
    /// attempts and deadline; and it stops right after each hit that opened a door marked
    /// `stop_on_open`, and only then.
    #[test]
    fn batches_agree_with_one_hit_at_a_time(
        doors in vec(door(), 1..4),
        stops in vec(any::<bool>(), 4),
        max in 1usize..6,
        hits in vec((prop_oneof![8 => 0u64..200, 1 => 0u64..5000], op_hit()), 0..300),
        splits in vec(1usize..80, 1..20),
    ) {
        let mut one = Tracker::new(doors.clone(), max);
        let mut batched = Tracker::new(doors, max);
        for (door, &stop) in stops.iter().enumerate() {
            batched.set_stop_on_open(door, stop);
        }
        let mut now = 0u64;
        let hits: Vec<(Timestamp, Hit)> = hits
            .into_iter()
            .map(|(dt, h)| {
                now += dt;
                (Timestamp::from_millis(now), h)
            })
            .collect();
        let (mut want, mut got) = (Vec::new(), Vec::new());
        let (mut done, mut split) = (0, splits.iter().cycle());
        while done < hits.len() {
            let size = (*split.next().unwrap()).min(hits.len() - done);
            let batch = &hits[done..done + size];
            got.clear();
            let handled = batched.handle_batch(batch, &mut got);
            prop_assert!(handled >= 1 && handled <= size);
            want.clear();
            for (i, (at, h)) in batch[..handled].iter().enumerate() {
                let before = want.len();
                one.handle(*at, h, &mut want);
                let last = i + 1 == handled;
                let opened = want[before..]
                    .iter()
                    .any(|e| matches!(*e, Event::Opened { door, .. } if stops[door]));
                prop_assert!(!opened || last, "went on after an opening");
                prop_assert!(opened || !last || handled == size, "stopped early");
            }
            prop_assert_eq!(&got, &want);
            prop_assert_eq!(batched.stats(), one.stats());
            prop_assert_eq!(batched.poll_at(), one.poll_at());
            done += handled;
        }
    }

    /// Arbitrary packets, flags, timeouts and (monotonic but jumpy) times never panic.
    #[test]
    fn never_panics(
        doors in vec((door(), any::<u64>()), 0..4),
        max in 0usize..4,
        hits in vec((any::<u32>(), any::<[u8; 16]>(), 1u16.., any::<bool>(), any::<u8>(), any::<u64>()), 0..100),
    ) {
        // Any timeout at all, up to Duration::MAX.
        let doors = doors.into_iter().map(|(mut d, secs)| {
            d.seq_timeout = Duration::from_secs(secs);
            d
        }).collect();
        let mut tracker = Tracker::new(doors, max);
        let mut events = Vec::new();
        let mut now = 0u64;
        for (i, (v4, v6, port, udp, tcp_flags, dt)) in hits.into_iter().enumerate() {
            now = now.saturating_add(dt >> (i % 64));
            let source = if i % 2 == 0 { IpAddr::from(v4.to_be_bytes()) } else { IpAddr::from(v6) };
            let port = if i % 3 == 0 { port } else { port % 7 };
            let h = Hit {
                source,
                destination: IpAddr::from(HOST),
                knock: knock(port, udp),
                tcp_flags,
                src_port: port,
                tcp_seq: v4,
            };
            tracker.handle(Timestamp::from_millis(now), &h, &mut events);
            if i % 5 == 0 {
                tracker.expire(Timestamp::from_millis(now), &mut events);
            }
            let _ = tracker.poll_at();
            prop_assert!(tracker.stats().attempts <= max.max(1));
        }
    }
}

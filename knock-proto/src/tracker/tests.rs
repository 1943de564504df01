//! Unit tests: one or more per rule of the module documentation.

use std::net::IpAddr;
use std::time::Duration;

use super::*;
use crate::flags::bits::{ACK, SYN};
use crate::sequence::{Port, Proto};

const HOST: &str = "198.18.0.2";

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn t(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

fn door(seq: &str) -> DoorSpec {
    DoorSpec {
        sequence: Some(seq.parse().unwrap()),
        seq_timeout: Duration::from_secs(5),
        tcpflags: TcpFlags::ANY,
        target: None,
    }
}

/// A SYN (or a UDP datagram for `port:udp`) from `source` to [`HOST`].
fn hit(source: &str, knock: &str) -> Hit {
    let knock: Knock = knock.parse().unwrap();
    Hit {
        source: ip(source),
        destination: ip(HOST),
        knock,
        tcp_flags: if knock.proto == Proto::Tcp { SYN } else { 0 },
        src_port: 40000,
        tcp_seq: if knock.proto == Proto::Tcp { 1 } else { 0 },
    }
}

/// A tracker plus the events of its last call.
struct Run {
    tracker: Tracker,
    events: Vec<Event>,
}

impl Run {
    fn new(doors: Vec<DoorSpec>, max: usize) -> Run {
        Run {
            tracker: Tracker::new(doors, max),
            events: Vec::new(),
        }
    }

    fn hit(&mut self, now: u64, h: Hit) -> Vec<Event> {
        self.events.clear();
        self.tracker.handle(t(now), &h, &mut self.events);
        self.events.clone()
    }

    fn knock(&mut self, now: u64, source: &str, knock: &str) -> Vec<Event> {
        self.hit(now, hit(source, knock))
    }

    fn expire(&mut self, now: u64) -> Vec<Event> {
        self.events.clear();
        self.tracker.expire(t(now), &mut self.events);
        self.events.clone()
    }
}

fn stage(source: &str, door: DoorId, stage: u8) -> Event {
    Event::Stage {
        source: ip(source),
        door,
        stage,
    }
}

fn opened(source: &str, door: DoorId) -> Event {
    Event::Opened {
        source: ip(source),
        door,
    }
}

/// `source` broke `door` at `stage`: `expected` was due, `got` came.
fn failed(source: &str, door: DoorId, stage: u8, expected: &str, got: &str) -> Event {
    Event::Failed {
        source: ip(source),
        door,
        stage,
        expected: expected.parse().unwrap(),
        got: got.parse().unwrap(),
    }
}

fn expired(source: &str, door: DoorId, stage: u8) -> Event {
    Event::Expired {
        source: ip(source),
        door,
        stage,
    }
}

fn evicted(source: &str, door: DoorId, stage: u8) -> Event {
    Event::Evicted {
        source: ip(source),
        door,
        stage,
    }
}

const A: &str = "198.18.0.1";
const B: &str = "198.18.0.3";
const C: &str = "2001:db8::c";

#[test]
fn correct_sequence_opens_and_ends_the_attempt() {
    let mut r = Run::new(vec![door("7000,8000:udp,9000")], 10);
    assert_eq!(r.knock(0, A, "7000"), [stage(A, 0, 1)]);
    assert_eq!(r.knock(1, A, "8000:udp"), [stage(A, 0, 2)]);
    assert_eq!(r.knock(2, A, "9000"), [opened(A, 0)]);
    assert_eq!(r.tracker.stats().attempts, 0);
    assert_eq!(r.tracker.stats().opened, 1);
    assert_eq!(
        r.knock(3, A, "9000"),
        [],
        "after opening, a later port is nothing"
    );
}

#[test]
fn one_knock_door_opens_at_once_without_tracking() {
    let mut r = Run::new(vec![door("7000")], 10);
    assert_eq!(r.knock(0, A, "7000"), [opened(A, 0)]);
    assert_eq!(r.knock(0, A, "7000"), [opened(A, 0)]);
    assert_eq!(r.tracker.stats().attempts, 0);
}

#[test]
fn telnet_style_sequence_opens_with_exactly_three_hits_per_port() {
    let mut r = Run::new(vec![door("02,02,02,01,01,01,2010,2010,2010")], 10);
    let mut all = Vec::new();
    for port in ["2", "1", "2010"] {
        for _ in 0..3 {
            all.extend(r.knock(0, A, port));
        }
    }
    let mut want: Vec<Event> = (1..=8).map(|s| stage(A, 0, s)).collect();
    want.push(opened(A, 0));
    assert_eq!(all, want);
}

#[test]
fn telnet_style_sequence_opens_with_more_than_three_hits_per_port() {
    for hits in 3..=6 {
        let mut r = Run::new(vec![door("02,02,02,01,01,01,2010,2010,2010")], 10);
        let mut all = Vec::new();
        for port in ["2", "1", "2010"] {
            for _ in 0..hits {
                all.extend(r.knock(0, A, port));
            }
        }
        let mut want: Vec<Event> = (1..=8).map(|s| stage(A, 0, s)).collect();
        want.push(opened(A, 0));
        assert_eq!(
            all, want,
            "{hits} hits per port: the extra ones are repeats"
        );
    }
}

#[test]
fn telnet_style_sequence_fails_with_fewer_than_three_hits_per_port() {
    let mut r = Run::new(vec![door("02,02,02,01,01,01,2010,2010,2010")], 10);
    assert_eq!(r.knock(0, A, "2"), [stage(A, 0, 1)]);
    assert_eq!(r.knock(0, A, "2"), [stage(A, 0, 2)]);
    assert_eq!(r.knock(0, A, "1"), [failed(A, 0, 2, "2", "1")]);
    let mut rest = Vec::new();
    for port in ["1", "2010", "2010"] {
        rest.extend(r.knock(0, A, port));
    }
    assert_eq!(
        rest,
        [],
        "with no attempt, ports other than the first are nothing"
    );
    assert_eq!(r.tracker.stats().opened, 0);
}

#[test]
fn repeats_of_the_last_knock_are_ignored_and_count_only_where_due() {
    let mut r = Run::new(vec![door("2,1,2010")], 10);
    for hits in 1..=5 {
        let mut all = Vec::new();
        for port in ["2", "1", "2010"] {
            for _ in 0..hits {
                all.extend(r.knock(0, A, port));
            }
        }
        assert_eq!(
            all,
            [stage(A, 0, 1), stage(A, 0, 2), opened(A, 0)],
            "{hits} hits per port"
        );
    }
    // A repeat neither restarts the attempt (the first port again keeps its start time)...
    assert_eq!(r.knock(1000, A, "2"), [stage(A, 0, 1)]);
    assert_eq!(r.knock(4000, A, "2"), []);
    assert_eq!(r.knock(6000, A, "1"), [expired(A, 0, 1)]);
    // ...nor breaks it; an earlier knock than the last one does.
    r.knock(7000, A, "2");
    r.knock(7000, A, "1");
    assert_eq!(r.knock(7000, A, "1"), []);
    assert_eq!(
        r.knock(7000, A, "2"),
        [failed(A, 0, 2, "2010", "2"), stage(A, 0, 1)]
    );
}

#[test]
fn a_failure_says_what_was_expected_and_what_came() {
    let e = failed(A, 0, 3, "1", "2");
    assert_eq!(
        e.broken().unwrap().to_string(),
        "sequence broken at stage 3: expected 1/tcp, got 2/tcp"
    );
    let e = failed(A, 0, 1, "8000:udp", "9000");
    assert_eq!(
        e.broken().unwrap().to_string(),
        "sequence broken at stage 1: expected 8000/udp, got 9000/tcp"
    );
    assert_eq!(stage(A, 0, 1).broken(), None);
}

#[test]
fn a_retransmission_and_a_new_connection_attempt_are_both_repeats() {
    let mut r = Run::new(vec![door("7000,8000,9000")], 10);
    let first = hit(A, "7000");
    assert_eq!(r.hit(0, first), [stage(A, 0, 1)]);
    assert_eq!(r.hit(1000, first), [], "the kernel's retransmission");
    let again = Hit {
        src_port: first.src_port + 1,
        tcp_seq: first.tcp_seq + 99,
        ..first
    };
    assert_eq!(r.hit(1100, again), [], "a second telnet to the same port");
    assert_eq!(r.tracker.stats().repeats, 2);
    assert_eq!(r.knock(1200, A, "8000"), [stage(A, 0, 2)]);
    assert_eq!(r.knock(1300, A, "9000"), [opened(A, 0)]);
}

#[test]
fn udp_datagrams_sent_again_are_repeats_but_tcp_to_that_port_is_another_knock() {
    let mut r = Run::new(vec![door("7000:udp,8000,9000")], 10);
    assert_eq!(r.knock(0, A, "7000:udp"), [stage(A, 0, 1)]);
    assert_eq!(r.knock(0, A, "7000:udp"), []);
    assert_eq!(r.knock(0, A, "7000"), [], "not a knock of the door");
    assert_eq!(r.knock(0, A, "8000"), [stage(A, 0, 2)]);
    assert_eq!(
        r.knock(0, A, "7000:udp"),
        [failed(A, 0, 2, "9000", "7000:udp"), stage(A, 0, 1)],
        "no longer the last knock: it breaks, and restarts as the first"
    );
}

#[test]
fn wrong_port_of_the_door_fails_and_other_ports_are_ignored() {
    let mut r = Run::new(vec![door("1000,2000,3000")], 10);
    r.knock(0, A, "1000");
    assert_eq!(r.knock(0, A, "4444"), [], "not a door port: ignored");
    assert_eq!(r.knock(0, A, "2000"), [stage(A, 0, 2)]);
    assert_eq!(
        r.knock(0, A, "1000"),
        [failed(A, 0, 2, "3000", "1000"), stage(A, 0, 1)]
    );
    assert_eq!(r.knock(0, A, "3000"), [failed(A, 0, 1, "2000", "3000")]);
    assert_eq!(r.tracker.stats().attempts, 0);
    assert_eq!(r.tracker.stats().failed, 2);
}

#[test]
fn tcp_hits_failing_tcpflags_are_ignored_entirely() {
    let mut d = door("1000,2000,3000:udp");
    d.tcpflags = "syn,!ack".parse().unwrap();
    let mut r = Run::new(vec![d], 10);
    let mut synack = hit(A, "1000");
    synack.tcp_flags = SYN | ACK;
    assert_eq!(r.hit(0, synack), [], "does not start");
    r.knock(0, A, "1000");
    synack.knock = "3000".parse().unwrap();
    assert_eq!(
        r.hit(0, synack),
        [],
        "a wrong port with wrong flags does not fail"
    );
    let mut ack = hit(A, "2000");
    ack.tcp_flags = ACK;
    assert_eq!(
        r.hit(0, ack),
        [],
        "the right port with wrong flags does not advance"
    );
    assert_eq!(r.knock(0, A, "2000"), [stage(A, 0, 2)]);
    let mut udp = hit(A, "3000:udp");
    udp.tcp_flags = ACK; // meaningless for UDP: flags only apply to TCP
    assert_eq!(r.hit(0, udp), [opened(A, 0)]);
}

#[test]
fn wrong_protocol_is_another_port() {
    let mut r = Run::new(vec![door("1000:udp,2000")], 10);
    assert_eq!(r.knock(0, A, "1000"), [], "TCP to a UDP knock's port");
    assert_eq!(r.knock(0, A, "1000:udp"), [stage(A, 0, 1)]);
    assert_eq!(r.knock(0, A, "2000:udp"), [], "UDP to a TCP knock's port");
    assert_eq!(r.knock(0, A, "2000"), [opened(A, 0)]);
}

#[test]
fn target_doors_count_only_hits_to_their_target() {
    let mut routed = door("1000,2000");
    routed.target = Some(ip("198.18.0.9"));
    let mut r = Run::new(vec![routed, door("1000,3000")], 10);
    r.tracker.set_local_addresses(&[ip(HOST)]);
    let mut to_target = hit(A, "1000");
    to_target.destination = ip("198.18.0.9");
    assert_eq!(
        r.hit(0, to_target),
        [stage(A, 0, 1)],
        "only the routed door"
    );
    assert_eq!(
        r.knock(0, A, "2000"),
        [],
        "to this host: not the routed door's"
    );
    to_target.knock = "2000".parse().unwrap();
    assert_eq!(r.hit(0, to_target), [opened(A, 0)]);
    assert_eq!(
        r.knock(0, A, "1000"),
        [stage(A, 1, 1)],
        "only the local door"
    );
}

#[test]
fn local_addresses_filter_doors_without_target() {
    let mut r = Run::new(vec![door("1000,2000")], 10);
    let mut elsewhere = hit(A, "1000");
    elsewhere.destination = ip("198.18.0.77");
    assert_eq!(
        r.hit(0, elsewhere),
        [stage(A, 0, 1)],
        "no list: any destination"
    );
    r.tracker.set_local_addresses(&[ip(HOST), ip("fd00::2")]);
    elsewhere.knock = "2000".parse().unwrap();
    assert_eq!(r.hit(0, elsewhere), [], "not ours: ignored, does not fail");
    assert_eq!(r.knock(0, A, "2000"), [opened(A, 0)]);
    let mut v6 = hit(C, "1000");
    v6.destination = ip("fd00::2");
    assert_eq!(r.hit(0, v6), [stage(C, 0, 1)]);
    r.tracker.set_local_addresses(&[]);
    assert_eq!(
        r.hit(0, elsewhere),
        [],
        "A has no attempt any more: nothing"
    );
    elsewhere.source = ip(C);
    assert_eq!(r.hit(0, elsewhere), [opened(C, 0)], "empty list again: any");
}

#[test]
fn doors_progress_independently_and_may_share_ports() {
    let mut r = Run::new(vec![door("1,2,3"), door("1,3"), door("5,6")], 10);
    assert_eq!(r.knock(0, A, "1"), [stage(A, 0, 1), stage(A, 1, 1)]);
    assert_eq!(
        r.knock(0, A, "5"),
        [stage(A, 2, 1)],
        "in progress on three doors"
    );
    assert_eq!(
        r.knock(0, A, "3"),
        [failed(A, 0, 1, "2", "3"), opened(A, 1)]
    );
    assert_eq!(r.knock(0, A, "6"), [opened(A, 2)]);
}

#[test]
fn sources_progress_independently() {
    let mut r = Run::new(vec![door("1,2,3")], 10);
    r.knock(0, A, "1");
    r.knock(0, B, "1");
    assert_eq!(r.knock(0, C, "2"), [], "C has no attempt");
    assert_eq!(r.knock(0, A, "2"), [stage(A, 0, 2)]);
    assert_eq!(r.knock(0, B, "3"), [failed(B, 0, 1, "2", "3")]);
    assert_eq!(r.knock(0, A, "3"), [opened(A, 0)]);
}

#[test]
fn ipv4_and_mapped_ipv6_sources_are_different_knockers() {
    let mut r = Run::new(vec![door("1,2")], 10);
    r.knock(0, "1.2.3.4", "1");
    assert_eq!(r.knock(0, "::ffff:1.2.3.4", "2"), []);
    assert_eq!(r.knock(0, "1.2.3.4", "2"), [opened("1.2.3.4", 0)]);
}

#[test]
fn lazy_expiry_on_the_next_hit() {
    let mut r = Run::new(vec![door("1,2,3")], 10);
    r.knock(1000, A, "1");
    assert_eq!(
        r.knock(5999, A, "2"),
        [stage(A, 0, 2)],
        "1 ms before the timeout"
    );
    assert_eq!(
        r.knock(6000, A, "3"),
        [expired(A, 0, 2)],
        "then nothing more"
    );
    assert_eq!(r.tracker.stats().attempts, 0);
    r.knock(7000, A, "1");
    assert_eq!(r.knock(12000, A, "1"), [expired(A, 0, 1), stage(A, 0, 1)]);
    assert_eq!(
        r.knock(12001, A, "2"),
        [stage(A, 0, 2)],
        "the new attempt is fresh"
    );
    assert_eq!(r.tracker.stats().expired, 2);
}

#[test]
fn expire_and_poll_at() {
    let mut fast = door("1,2");
    fast.seq_timeout = Duration::from_micros(1500); // rounds up to 2 ms
    let mut r = Run::new(vec![door("1,2,3"), fast], 10);
    assert_eq!(r.tracker.poll_at(), None);
    r.knock(100, A, "2"); // nothing
    r.knock(100, A, "1");
    assert_eq!(r.tracker.poll_at(), Some(t(102)), "the 2 ms door first");
    assert_eq!(r.expire(101), []);
    assert_eq!(r.expire(102), [expired(A, 1, 1)]);
    assert_eq!(r.tracker.poll_at(), Some(t(5100)));
    r.knock(200, B, "1");
    r.knock(200, B, "2");
    assert_eq!(r.tracker.poll_at(), Some(t(5100)));
    assert_eq!(r.expire(5099), []);
    assert_eq!(r.expire(5200), [expired(A, 0, 1), expired(B, 0, 2)]);
    assert_eq!(r.tracker.poll_at(), None);
    assert_eq!(r.tracker.stats().expired, 3);
    assert_eq!(r.knock(5200, A, "1"), [stage(A, 0, 1), stage(A, 1, 1)]);
}

#[test]
fn restart_resets_the_deadline() {
    let mut r = Run::new(vec![door("1,2,3")], 10);
    r.knock(0, A, "1");
    r.knock(0, B, "1");
    r.knock(1000, A, "2");
    r.knock(3000, A, "1"); // fails and restarts at 3000
    assert_eq!(r.tracker.poll_at(), Some(t(5000)), "B's first");
    assert_eq!(r.expire(5000), [expired(B, 0, 1)]);
    assert_eq!(r.tracker.poll_at(), Some(t(8000)));
    assert_eq!(r.knock(7999, A, "2"), [stage(A, 0, 2)]);
    assert_eq!(r.knock(7999, A, "3"), [opened(A, 0)]);
}

#[test]
fn when_full_first_stage_attempts_are_evicted_before_progressed_ones() {
    let mut r = Run::new(vec![door("1,2,3"), door("7,8")], 2);
    r.knock(0, A, "7");
    r.knock(1, B, "1");
    r.knock(2, B, "2");
    // Door 1 has the only first-stage attempt.
    assert_eq!(r.knock(3, C, "1"), [evicted(A, 1, 1), stage(C, 0, 1)]);
    // B (stage 2) is older than C (stage 1) on door 0, but C goes first.
    assert_eq!(r.knock(4, A, "1"), [evicted(C, 0, 1), stage(A, 0, 1)]);
    assert_eq!(r.tracker.stats().attempts, 2);
    assert_eq!(r.tracker.stats().evicted, 2);
    // Nothing at stage 1 left: the oldest of all goes.
    r.knock(5, A, "2");
    assert_eq!(r.knock(6, C, "7"), [evicted(B, 0, 2), stage(C, 1, 1)]);
    // A victim that is already past its timeout is reported as expired.
    r.knock(7, C, "8");
    r.knock(8, B, "7");
    assert_eq!(r.knock(5008, C, "7"), [expired(B, 1, 1), stage(C, 1, 1)]);
    assert_eq!(r.tracker.stats().expired, 1);
    assert_eq!(r.tracker.stats().evicted, 3);
    assert_eq!((r.tracker.evicted_on(0), r.tracker.evicted_on(1)), (2, 1));
}

#[test]
fn a_flood_of_first_knocks_on_one_door_evicts_only_its_own_attempts() {
    let mut r = Run::new(vec![door("1,2,3"), door("7,8")], 4);
    r.knock(0, A, "7"); // a real knocker on door 1, stage 1
    r.knock(1, B, "1");
    r.knock(2, B, "2"); // a real knocker on door 0, stage 2
    for i in 0..1000u32 {
        let spoofed = format!("198.19.{}.{}", i / 256, i % 256);
        let events = r.knock(10 + u64::from(i), &spoofed, "1");
        for e in &events {
            if let Event::Evicted { source, .. } = e {
                assert!(source.to_string().starts_with("198.19."), "{events:?}");
            }
        }
    }
    assert_eq!(r.tracker.evicted_on(1), 0);
    assert_eq!(r.tracker.evicted_on(0), 998);
    // Both real knockers finish.
    assert_eq!(r.knock(2000, A, "8"), [opened(A, 1)]);
    assert_eq!(r.knock(2001, B, "3"), [opened(B, 0)]);
    // A new real knocker on door 1 makes room on the flooded door, not on its own.
    r.knock(2002, "198.19.9.9", "1");
    r.knock(2003, C, "7");
    let events = r.knock(2004, "198.18.0.9", "7");
    assert!(
        matches!(events[0], Event::Evicted { door: 0, .. }),
        "{events:?}"
    );
}

#[test]
fn zero_max_attempts_still_tracks_one() {
    let mut r = Run::new(vec![door("1,2")], 0);
    assert_eq!(r.tracker.stats().max_attempts, 1);
    r.knock(0, A, "1");
    assert_eq!(r.knock(0, A, "2"), [opened(A, 0)]);
}

#[test]
fn set_sequence_replaces_the_sequence_and_drops_attempts() {
    let mut r = Run::new(vec![door("1,2,3"), door("1,9")], 10);
    r.knock(0, A, "1");
    r.knock(0, A, "2");
    r.tracker.set_sequence(0, Some("4,5".parse().unwrap()));
    assert_eq!(r.tracker.stats().dropped, 1);
    assert_eq!(r.tracker.stats().attempts, 1, "door 1's attempt stays");
    assert_eq!(r.knock(0, A, "3"), [], "old ports are nothing now");
    assert_eq!(r.knock(0, A, "4"), [stage(A, 0, 1)]);
    assert_eq!(r.knock(0, A, "5"), [opened(A, 0)]);
    assert_eq!(r.knock(0, A, "9"), [opened(A, 1)]);
    r.tracker.set_sequence(0, None);
    assert_eq!(r.knock(0, A, "4"), [], "a disabled door counts nothing");
    r.tracker.set_sequence(99, None); // unknown: ignored
    let mut off = door("1");
    off.sequence = None;
    let mut r = Run::new(vec![off], 10);
    assert_eq!(r.knock(0, A, "1"), []);
}

#[test]
fn time_going_back_is_treated_as_the_latest_time() {
    let mut r = Run::new(vec![door("1,2")], 10);
    r.knock(10_000, A, "1");
    assert_eq!(r.knock(0, A, "2"), [opened(A, 0)]);
    r.knock(20_000, A, "1");
    r.expire(30_000);
    assert_eq!(r.knock(1, A, "1"), [stage(A, 0, 1)]);
    assert_eq!(
        r.tracker.poll_at(),
        Some(t(35_000)),
        "started at the latest time seen"
    );
}

#[test]
fn extreme_times_do_not_overflow() {
    let mut d = door("1,2");
    d.seq_timeout = Duration::MAX;
    let mut r = Run::new(vec![d, door("1,3")], 10);
    r.knock(u64::MAX - 1, A, "1");
    // Deadlines past the end of time saturate rather than wrap.
    assert_eq!(r.tracker.poll_at(), Some(t(u64::MAX)));
    assert_eq!(r.expire(u64::MAX), []);
    assert_eq!(r.knock(u64::MAX, A, "2"), [opened(A, 0)]);
}

#[test]
fn memory_per_attempt_stays_under_64_bytes() {
    let mut tracker = Tracker::new(vec![door("1000,2000")], 100_000);
    let mut events = Vec::new();
    let first = Knock::new(Port::new(1000).unwrap(), Proto::Tcp);
    for n in 0u32..10_000 {
        let h = Hit {
            source: IpAddr::from(n.to_be_bytes()),
            destination: ip(HOST),
            knock: first,
            tcp_flags: SYN,
            src_port: 40000,
            tcp_seq: n,
        };
        tracker.handle(t(0), &h, &mut events);
    }
    assert_eq!(tracker.stats().attempts, 10_000);
    let per_attempt = tracker.memory_bytes() / 10_000;
    assert!(per_attempt < 64, "{per_attempt} bytes per attempt");
}

#[test]
fn attempts_are_counted_per_door() {
    let mut r = Run::new(vec![door("1,2,3"), door("1,4"), door("5,6")], 10);
    r.knock(0, "198.18.0.1", "1");
    r.knock(0, "198.18.0.3", "1");
    r.knock(0, "198.18.0.3", "5");
    let counts = |r: &Run| (0..4).map(|d| r.tracker.attempts_on(d)).collect::<Vec<_>>();
    assert_eq!(counts(&r), [2, 2, 1, 0]);
    r.knock(1, "198.18.0.1", "4");
    assert_eq!(counts(&r), [2, 1, 1, 0], "door 1 opened; 4 is not door 0's");
    r.expire(10_000);
    assert_eq!(counts(&r), [0, 0, 0, 0]);
}

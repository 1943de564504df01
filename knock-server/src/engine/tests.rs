//! Lifecycle tests of the engine, without root, processes or clocks: open, extend, stop on
//! time, a failed start, close requests, status, shutdown, adoption after a crash, reload.

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use knock_proto::Timestamp;
use knock_proto::config::Config;
use knock_proto::sequence::Knock;
use knock_proto::wire::Hit;

use super::*;
use crate::control::{Request, Response, Status};
use crate::journal::{self, Entry, Record};

/// Two doors with start and stop commands, one with two knocks, one with one.
pub(super) const DOORS: &str = "\
[d0]
    sequence = 7000,8000
    seq_timeout = 5
    cmd_timeout = 10
    start_command = /bin/start %IP%
    stop_command = /bin/stop %IP%
[d1]
    sequence = 9000
    cmd_timeout = 3
    start_command = /bin/start %IP%
    stop_command = /bin/stop %IP%
";

/// The wall-clock time at `Timestamp::ZERO` in these tests.
pub(super) fn epoch() -> SystemTime {
    UNIX_EPOCH + Duration::from_secs(1_800_000_000)
}

pub(super) fn config(text: &str) -> Config {
    if text.contains("[doors.") {
        knock_proto::config::toml::parse(Path::new("t.toml"), text).unwrap()
    } else {
        knock_proto::config::knockd::parse(Path::new("k.conf"), text).unwrap()
    }
}

pub(super) fn loaded(text: &str) -> Loaded {
    let config = config(text);
    let one_time = vec![None; config.doors.len()];
    let keys = vec![None; config.doors.len()];
    Loaded {
        config,
        one_time,
        keys,
    }
}

/// An engine at `now` with the doors of `text`, adopting `adopted`.
pub(super) fn engine_at(now: Timestamp, text: &str, adopted: Vec<Entry>) -> Engine {
    Engine::new(
        now,
        Start {
            loaded: loaded(text),
            local: Vec::new(),
            adopted,
            wall: epoch() + now.saturating_since(Timestamp::ZERO),
            ipv4_only: false,
            replay: None,
        },
    )
}

fn engine(text: &str) -> Engine {
    engine_at(Timestamp::ZERO, text, Vec::new())
}

pub(super) fn ms(ms: u64) -> Timestamp {
    Timestamp::from_millis(ms)
}

/// A SYN from `source` to port `port`.
pub(super) fn hit(source: &str, port: u16) -> Hit {
    Hit {
        source: source.parse().unwrap(),
        destination: "198.18.0.2".parse().unwrap(),
        knock: port.to_string().parse::<Knock>().unwrap(),
        tcp_flags: 0x02,
        src_port: 40000,
        tcp_seq: 1,
    }
}

/// Knocks `ports` from `source` at `at`.
pub(super) fn knock(e: &mut Engine, at: Timestamp, source: &str, ports: &[u16]) {
    let hits: Vec<(Timestamp, Hit)> = ports.iter().map(|&p| (at, hit(source, p))).collect();
    e.hits(&hits);
}

pub(super) fn effects(e: &mut Engine) -> Vec<Effect> {
    let mut v = Vec::new();
    e.take_effects(&mut v);
    v
}

fn lines(effects: &[Effect]) -> Vec<String> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Log(l) => Some(l.render(None)),
            _ => None,
        })
        .collect()
}

/// The commands run, as `start IP` / `stop IP`, with their ids.
fn runs(effects: &[Effect]) -> Vec<(CommandId, String)> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Run(r) => Some((r.id, r.argv.join(" ").replace("/bin/", ""))),
            _ => None,
        })
        .collect()
}

fn journal_records(effects: &[Effect]) -> Vec<&Record> {
    effects
        .iter()
        .filter_map(|e| match e {
            Effect::Journal(r) => Some(r),
            _ => None,
        })
        .collect()
}

const A: &str = "198.18.0.1";
const B: &str = "198.18.0.3";

#[test]
fn an_opening_journals_its_stop_before_the_start_runs_and_stops_on_time() {
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[7000]);
    knock(&mut e, ms(100), A, &[8000]);
    let fx = effects(&mut e);
    assert_eq!(
        lines(&fx),
        [
            "198.18.0.1: d0: Stage 1",
            "198.18.0.1: d0: Stage 2",
            "198.18.0.1: d0: OPEN SESAME"
        ]
    );
    let journal_at = fx
        .iter()
        .position(|f| matches!(f, Effect::Journal(Record::Open(_))));
    let start_at = fx.iter().position(|f| matches!(f, Effect::Run(_)));
    assert!(journal_at.unwrap() < start_at.unwrap(), "{fx:?}");
    assert_eq!(runs(&fx)[0].1, format!("start {A}"));
    let Some(Record::Open(entry)) = journal_records(&fx).first().copied() else {
        panic!("{fx:?}")
    };
    assert_eq!(entry.due_unix, 1_800_000_010);
    assert_eq!(e.poll_at(), Some(ms(10_100)));

    e.tick(ms(10_099));
    assert!(effects(&mut e).is_empty());
    e.tick(ms(10_100));
    let fx = effects(&mut e);
    assert_eq!(lines(&fx), [format!("{A}: d0: command timeout")]);
    assert_eq!(runs(&fx).len(), 1);
    assert_eq!(runs(&fx)[0].1, format!("stop {A}"));
    assert_eq!(journal_records(&fx), [&Record::Close { id: entry.id }]);
    assert_eq!(e.poll_at(), None, "idle means asleep");
}

#[test]
fn a_re_knock_extends_the_one_window_and_it_closes_once_at_the_new_time() {
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[9000]);
    let first = effects(&mut e);
    knock(&mut e, ms(2000), A, &[9000]);
    let fx = effects(&mut e);
    assert!(lines(&fx).contains(&format!("{A}: d1: already open, extending by 3s")));
    assert!(runs(&fx).is_empty(), "no second start: {fx:?}");
    let Some(Record::Open(entry)) = journal_records(&first).first().copied() else {
        panic!()
    };
    assert_eq!(
        journal_records(&fx),
        [&Record::Extend {
            id: entry.id,
            due_unix: 1_800_000_005
        }],
        "the same window, moved: no second entry that could fire"
    );
    e.tick(ms(3000));
    assert!(
        runs(&effects(&mut e)).is_empty(),
        "the old end passed quietly"
    );
    e.tick(ms(5000));
    assert_eq!(runs(&effects(&mut e)).len(), 1);
    e.tick(ms(60_000));
    assert!(effects(&mut e).is_empty());
}

#[test]
fn a_failed_start_command_leaves_the_door_closed_and_the_next_knock_retries_it() {
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[9000]);
    let (id, _) = runs(&effects(&mut e))[0].clone();
    e.command_finished(id, false);
    let fx = effects(&mut e);
    assert!(
        matches!(journal_records(&fx)[..], [Record::Close { .. }]),
        "{fx:?}"
    );
    assert!(lines(&fx)[0].contains("start command failed"), "{fx:?}");
    knock(&mut e, ms(1000), A, &[9000]);
    let fx = effects(&mut e);
    assert_eq!(runs(&fx).len(), 1, "the start runs again: {fx:?}");
    assert!(!lines(&fx).iter().any(|l| l.contains("already open")));
    // The first opening's stop never runs; the second's does, once.
    e.tick(ms(3000));
    assert!(runs(&effects(&mut e)).is_empty());
    e.tick(ms(4000));
    assert_eq!(runs(&effects(&mut e)).len(), 1);
}

#[test]
fn a_start_command_that_succeeded_keeps_its_stop() {
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[9000]);
    let (id, _) = runs(&effects(&mut e))[0].clone();
    e.command_finished(id, true);
    assert!(effects(&mut e).is_empty());
    e.tick(ms(3000));
    assert_eq!(runs(&effects(&mut e))[0].1, format!("stop {A}"));
}

#[test]
fn close_runs_the_stop_once_and_the_timer_does_not_run_it_again() {
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[9000]);
    knock(&mut e, ms(0), B, &[9000]);
    knock(&mut e, ms(0), A, &[7000, 8000]);
    effects(&mut e);
    let r = e.control(
        ms(1000),
        &Request::Close {
            door: "d1".into(),
            source: Some(A.parse().unwrap()),
        },
        Status::default(),
    );
    let Response::Closed { closed } = r else {
        panic!("{r:?}")
    };
    assert_eq!(closed.len(), 1);
    assert_eq!(
        (closed[0].door.as_str(), closed[0].source),
        ("d1", A.parse().unwrap())
    );
    assert_eq!(closed[0].closes_in_secs, 2);
    let fx = effects(&mut e);
    assert_eq!(runs(&fx).len(), 1);
    assert_eq!(runs(&fx)[0].1, format!("stop {A}"));
    assert!(matches!(journal_records(&fx)[..], [Record::Close { .. }]));
    e.tick(ms(3000));
    let fx = effects(&mut e);
    assert_eq!(runs(&fx).len(), 1, "only B's window is left for d1: {fx:?}");
    assert_eq!(runs(&fx)[0].1, format!("stop {B}"));

    let r = e.control(ms(3000), &Request::CloseAll, Status::default());
    let Response::Closed { closed } = r else {
        panic!()
    };
    assert_eq!(closed.len(), 1, "d0 for A");
    assert_eq!(runs(&effects(&mut e)).len(), 1);
    e.tick(ms(60_000));
    assert!(effects(&mut e).is_empty());
    assert_eq!(e.poll_at(), None);

    let r = e.control(
        ms(3000),
        &Request::Close {
            door: "nope".into(),
            source: None,
        },
        Status::default(),
    );
    let Response::Error { message } = r else {
        panic!()
    };
    assert!(
        message.contains("`nope`") && message.contains("d0, d1"),
        "{message}"
    );
}

#[test]
fn status_lists_open_windows_attempts_per_door_and_counters() {
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[9000]);
    knock(&mut e, ms(500), B, &[7000]);
    let outside = Status {
        instance: "test".into(),
        counters: crate::control::Counters {
            packets: 2,
            queued_effects: 3,
            ..Default::default()
        },
        ..Status::default()
    };
    let Response::Status(s) = e.control(ms(1000), &Request::Status, outside) else {
        panic!()
    };
    assert_eq!(s.instance, "test");
    assert_eq!((s.counters.packets, s.counters.queued_effects), (2, 3));
    assert_eq!(s.open.len(), 1);
    let w = &s.open[0];
    assert_eq!(
        (
            w.door.as_str(),
            w.source,
            w.since_unix,
            w.closes_in_secs,
            w.how.as_str()
        ),
        ("d1", A.parse().unwrap(), 1_800_000_000, 2, "stop command")
    );
    let attempts: Vec<(&str, u64)> = s
        .doors
        .iter()
        .map(|d| (d.name.as_str(), d.attempts))
        .collect();
    assert_eq!(attempts, [("d0", 1), ("d1", 0)]);
    e.tick(ms(6000));
    let Response::Status(s) = e.control(ms(6000), &Request::Status, Status::default()) else {
        panic!()
    };
    assert_eq!(s.doors[0].attempts, 0, "expired");
    assert!(s.open.is_empty());
    let mut e = engine("[d]\n    sequence = 1,2,3\n");
    knock(&mut e, ms(0), A, &[1, 2, 1]);
    let Response::Status(s) = e.control(ms(0), &Request::Status, Status::default()) else {
        panic!()
    };
    let broken = format!("{A}: sequence broken at stage 2: expected 3/tcp, got 1/tcp");
    assert_eq!(s.doors[0].last_broken.as_deref(), Some(broken.as_str()));
    assert_eq!(s.doors[0].attempts, 1, "restarted at stage 1");
}

#[test]
fn terminate_closes_every_door_at_once_then_exits_and_ignores_later_knocks() {
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[9000]);
    knock(&mut e, ms(0), B, &[7000, 8000]);
    effects(&mut e);
    e.terminate(ms(100));
    let fx = effects(&mut e);
    let mut stops: Vec<String> = runs(&fx).into_iter().map(|(_, r)| r).collect();
    stops.sort();
    assert_eq!(stops, [format!("stop {A}"), format!("stop {B}")]);
    assert_eq!(journal_records(&fx).len(), 2);
    assert_eq!(fx.last(), Some(&Effect::Exit));
    knock(&mut e, ms(200), A, &[9000]);
    e.tick(ms(60_000));
    assert!(effects(&mut e).is_empty());
}

#[test]
fn stops_left_by_a_crash_are_adopted_and_run_once_at_their_time() {
    let entry = |id, due_unix, source: &str| Entry {
        id,
        due_unix,
        door: "d1".into(),
        source: source.parse().unwrap(),
        text: format!("/bin/stop {source}"),
        argv: vec!["/bin/stop".into(), source.into()],
    };
    let adopted = vec![entry(4, 1_800_000_013, A), entry(9, 1_799_999_000, B)];
    let mut e = engine_at(ms(10_000), DOORS, adopted);
    let fx = effects(&mut e);
    assert_eq!(
        lines(&fx),
        [
            format!("{A}: d1: stop command left pending by a previous run, due in 3s"),
            format!("{B}: d1: stop command left pending by a previous run, due in 0s"),
        ]
    );
    e.tick(ms(10_000));
    let fx = effects(&mut e);
    assert_eq!(runs(&fx)[0].1, format!("stop {B}"), "overdue: at once");
    assert_eq!(journal_records(&fx), [&Record::Close { id: 9 }]);
    // A re-knock of an adopted window extends it; a new opening gets a fresh id.
    knock(&mut e, ms(11_000), A, &[9000]);
    let fx = effects(&mut e);
    assert!(
        matches!(journal_records(&fx)[..], [Record::Extend { id: 4, .. }]),
        "{fx:?}"
    );
    knock(&mut e, ms(11_000), B, &[9000]);
    let fx = effects(&mut e);
    let Some(Record::Open(new)) = journal_records(&fx).first().copied() else {
        panic!("{fx:?}")
    };
    assert!(new.id > 9);
    e.tick(ms(14_000));
    assert_eq!(runs(&effects(&mut e)).len(), 2);
}

#[test]
fn a_crash_at_every_point_of_an_opening_loses_no_stop() {
    // Effects of one knock, performed up to each point, then the process dies.
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[9000]);
    let fx = effects(&mut e);
    for cut in 0..=fx.len() {
        let mut disk = String::new();
        let mut started = false;
        for f in &fx[..cut] {
            match f {
                Effect::Journal(r) => disk += &(r.to_line() + "\n"),
                Effect::Run(_) => started = true,
                _ => {}
            }
        }
        let adopted = journal::replay(disk.as_bytes()).entries;
        assert!(
            !started || adopted.len() == 1,
            "cut {cut}: a started door has its stop on disk"
        );
        let mut e = engine_at(ms(1000), DOORS, adopted);
        e.tick(ms(10_000));
        let stops = runs(&effects(&mut e)).len();
        assert!(
            stops <= 1 && (stops == 1 || !started),
            "cut {cut}: {stops} stops"
        );
    }
}

#[test]
fn reload_keeps_knocks_in_progress_on_unchanged_doors() {
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[7000]);
    effects(&mut e);
    // d1 changes, d0 moves to the second place but is the same door.
    let next = DOORS
        .replace("[d0]", "[dX]")
        .replace("[d1]", "[d0]")
        .replace("[dX]", "[d1]");
    let next = next.replace("sequence = 9000", "sequence = 9001");
    // The doors are now d1 (7000,8000) and d0 (9001): d0's attempt must not carry over.
    assert!(e.reload(loaded(&next), |_| Ok(())));
    knock(&mut e, ms(100), A, &[8000]);
    assert!(
        !lines(&effects(&mut e))
            .iter()
            .any(|l| l.contains("OPEN SESAME"))
    );

    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[7000]);
    let with_new_door = format!("{DOORS}[d2]\n    sequence = 1234\n");
    assert!(e.reload(loaded(&with_new_door), |_| Ok(())));
    let fx = effects(&mut e);
    assert!(fx.iter().any(|f| matches!(f, Effect::SetFilter(_))));
    assert!(fx.iter().any(|f| matches!(f, Effect::Reconfigure(_))));
    // The same doors again: the filter in place stays (setting one drops queued packets).
    assert!(e.reload(loaded(&with_new_door), |_| Ok(())));
    let fx = effects(&mut e);
    assert!(
        !fx.iter().any(|f| matches!(f, Effect::SetFilter(_))),
        "{fx:?}"
    );
    knock(&mut e, ms(100), A, &[8000]);
    assert!(lines(&effects(&mut e)).contains(&format!("{A}: d0: OPEN SESAME")));
}

#[test]
fn a_reload_whose_filter_does_not_compile_keeps_config_tracker_and_filter() {
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[7000]);
    effects(&mut e);
    let filter = e.filter();
    let other = DOORS.replace("7000,8000", "7100,8100");
    assert!(!e.reload(loaded(&other), |_| Err("too big".into())));
    let fx = effects(&mut e);
    assert!(
        lines(&fx)[0].contains("keeping the running config: too big"),
        "{fx:?}"
    );
    assert!(
        !fx.iter()
            .any(|f| matches!(f, Effect::SetFilter(_) | Effect::Reconfigure(_)))
    );
    assert_eq!(e.filter(), filter);
    knock(&mut e, ms(100), A, &[8000]);
    assert!(lines(&effects(&mut e)).contains(&format!("{A}: d0: OPEN SESAME")));
}

#[test]
fn hits_count_at_their_capture_time_however_late_they_are_handled() {
    let mut e = engine(DOORS);
    knock(&mut e, ms(0), A, &[7000]);
    // The engine is busy for a while; the next knock was captured in time (seq_timeout 5 s).
    knock(&mut e, ms(4900), A, &[8000]);
    e.tick(ms(9000));
    assert!(lines(&effects(&mut e)).contains(&format!("{A}: d0: OPEN SESAME")));
}

#[test]
fn openings_beyond_the_bound_are_refused_with_a_clear_line() {
    let mut e = engine(DOORS);
    for i in 0..MAX_OPEN as u32 {
        let source = std::net::Ipv4Addr::from(0xC612_0000 + i).to_string();
        knock(&mut e, ms(0), &source, &[9000]);
    }
    effects(&mut e);
    assert_eq!(e.open_windows(), MAX_OPEN);
    knock(&mut e, ms(0), "198.19.255.255", &[9000]);
    let fx = effects(&mut e);
    assert!(runs(&fx).is_empty(), "{fx:?}");
    assert!(
        lines(&fx)
            .iter()
            .any(|l| l.contains("not opened") && l.contains("limit"))
    );
    e.tick(ms(3000));
    assert_eq!(runs(&effects(&mut e)).len(), MAX_OPEN);
}

const OPEN_DOOR: &str =
    "[doors.ssh]\nsequence = \"7000,8000\"\nopen = \"22/tcp\"\nopen_seconds = 30\n";

#[test]
fn open_ports_show_in_status_are_revoked_by_close_and_put_back_after_a_flush() {
    let mut e = engine(OPEN_DOOR);
    knock(&mut e, ms(0), A, &[7000, 8000]);
    let fx = effects(&mut e);
    assert!(fx.iter().any(|f| matches!(f, Effect::Perform { .. })));
    assert_eq!(e.poll_at(), Some(ms(30_000)));
    e.firewall_gone(ms(10_000));
    let fx = effects(&mut e);
    assert_eq!(fx[0], Effect::ReinstallFirewall);
    let Effect::Allow { open_for, .. } = &fx[1] else {
        panic!("{fx:?}")
    };
    assert_eq!(
        *open_for,
        Duration::from_secs(20),
        "what is left of the window"
    );
    let r = e.control(ms(10_000), &Request::CloseAll, Status::default());
    let Response::Closed { closed } = r else {
        panic!()
    };
    assert_eq!(closed[0].how, "nftables");
    let fx = effects(&mut e);
    assert!(
        matches!(&fx[..], [Effect::Log(_), Effect::Revoke { .. }]),
        "{fx:?}"
    );
    assert_eq!(e.poll_at(), None);
}

#[test]
fn a_new_local_address_reaches_tracker_and_filter() {
    let mut e = engine(DOORS);
    e.set_local_addresses(vec![
        "198.18.0.2".parse().unwrap(),
        "fd00::2".parse().unwrap(),
    ]);
    let fx = effects(&mut e);
    let [Effect::Log(line), Effect::SetFilter(f)] = &fx[..] else {
        panic!("{fx:?}")
    };
    assert_eq!(line.text, "local addresses changed: 198.18.0.2, fd00::2");
    let f = f.to_string();
    assert!(f.contains("198.18.0.2") && f.contains("fd00::2"), "{f}");
    e.set_local_addresses(vec![
        "198.18.0.2".parse().unwrap(),
        "fd00::2".parse().unwrap(),
    ]);
    assert!(effects(&mut e).is_empty(), "no change, no new filter");
    // The tracker follows too: a knock to an address gone since counts no more.
    e.set_local_addresses(vec!["198.18.0.3".parse().unwrap()]);
    effects(&mut e);
    knock(&mut e, ms(0), A, &[9000]);
    assert!(
        runs(&effects(&mut e)).is_empty(),
        "198.18.0.2 is not ours any more"
    );
}

#[test]
fn a_flood_s_attempts_expire_without_a_line_each_and_a_logged_first_stage_still_times_out() {
    use std::sync::atomic::{AtomicU32, Ordering};
    // The log's budget: the first Stage 1 line only. What is left out is counted.
    static ASKED: AtomicU32 = AtomicU32::new(0);
    static LEFT_OUT: AtomicU32 = AtomicU32::new(0);
    let mut e = engine("[d0]\n    sequence = 7000,8000,9000\n    seq_timeout = 5\n");
    e.set_log_gate(LogGate {
        level: |_| true,
        first_stage: |_| ASKED.fetch_add(1, Ordering::Relaxed) == 0,
        left_out: || {
            LEFT_OUT.fetch_add(1, Ordering::Relaxed);
        },
    });
    e.hits(&[(ms(0), hit("198.18.0.1", 7000))]);
    let spoofed: Vec<_> = (0..50)
        .map(|i| (ms(10), hit(&format!("198.18.1.{i}"), 7000)))
        .collect();
    e.hits(&spoofed);
    // One of them goes on to stage 2 and then times out there.
    e.hits(&[(ms(20), hit("198.18.1.7", 8000))]);
    let before = lines(&effects(&mut e));
    assert_eq!(
        before.iter().filter(|l| l.ends_with("Stage 1")).count(),
        1,
        "{before:?}"
    );
    e.tick(ms(6000));
    let timeouts = lines(&effects(&mut e));
    assert_eq!(
        timeouts,
        [
            "198.18.0.1: d0: sequence timeout (stage 1)",
            "198.18.1.7: d0: sequence timeout (stage 2)"
        ],
        "only the attempt whose Stage 1 line was logged, and any past stage 1"
    );
    assert_eq!(LEFT_OUT.load(Ordering::Relaxed), 49);
}

#[test]
fn a_pending_stop_of_a_door_no_longer_configured_runs_its_recorded_argv_and_says_so() {
    // The text is what was logged then; what runs, and what the log shows, is the argv.
    let adopted = vec![Entry {
        id: 3,
        due_unix: 1_799_999_000,
        door: "removed".into(),
        source: A.parse().unwrap(),
        text: "harmless".into(),
        argv: vec!["/bin/sh".into(), "-c".into(), "echo closed".into()],
    }];
    let mut e = engine_at(ms(10_000), DOORS, adopted);
    let fx = effects(&mut e);
    assert_eq!(
        lines(&fx)[1],
        format!(
            "{A}: removed: the door is no longer in the config; its pending stop command still \
             runs, as the previous run recorded it: /bin/sh -c 'echo closed'"
        )
    );
    e.tick(ms(10_000));
    let fx = effects(&mut e);
    let run = fx.iter().find_map(|f| match f {
        Effect::Run(r) => Some(r),
        _ => None,
    });
    let run = run.expect("the stop runs");
    assert_eq!(run.argv, ["/bin/sh", "-c", "echo closed"]);
    assert_eq!(run.text, "/bin/sh -c 'echo closed'", "logged as it runs");
}

#[test]
fn a_forward_shows_in_status_with_its_inside_host_and_close_takes_it_back() {
    let mut e = engine(
        "[doors.vpn]\nsequence = \"7000,8000\"\n\
         forward = \"1723/tcp -> 198.19.0.2:1723\"\nopen_seconds = 30\n",
    );
    knock(&mut e, ms(0), A, &[7000, 8000]);
    let fx = effects(&mut e);
    assert!(fx.iter().any(|f| matches!(f, Effect::Perform { .. })));
    assert_eq!(e.poll_at(), Some(ms(30_000)), "the window's end is known");
    let Response::Status(s) = e.control(ms(1_000), &Request::Status, Status::default()) else {
        panic!()
    };
    assert_eq!(s.open.len(), 1);
    assert_eq!(s.open[0].forwards, ["1723/tcp -> 198.19.0.2:1723"]);
    let r = e.control(ms(2_000), &Request::CloseAll, Status::default());
    assert!(matches!(r, Response::Closed { closed } if closed.len() == 1));
    let fx = effects(&mut e);
    assert!(
        fx.iter()
            .any(|f| matches!(f, Effect::Revoke { door, .. } if door == "vpn")),
        "{fx:?}"
    );
}

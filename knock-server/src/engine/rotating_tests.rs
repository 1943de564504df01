//! The engine with rotating doors (`secret_file`), without root or clocks: a sealed knock opens
//! and is saved before its start command runs, a replay is refused, the filter follows the
//! steps, and a reload keeps the record.

use std::path::PathBuf;
use std::time::Duration;

use knock_proto::Timestamp;
use knock_proto::auth::{Key, Nonce, ReplayRecord, Step};
use knock_proto::wire::Hit;

use super::tests::{epoch, ms};
use super::*;
use crate::rotating::Replay;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
const DOORS: &str = "\
[doors.ssh]
secret_file = \"k\"
ports = \"7000-7999\"
start_command = \"/bin/start %IP%\"
[doors.fixed]
sequence = \"7001\"
";

fn loaded() -> Loaded {
    loaded_with("")
}

/// [`DOORS`] and `more` doors after them (fixed ones).
fn loaded_with(more: &str) -> Loaded {
    let text = format!("{DOORS}{more}");
    let config = knock_proto::config::toml::parse(std::path::Path::new("t.toml"), &text).unwrap();
    let mut keys = vec![None; config.doors.len()];
    keys[0] = Some(KEY.parse().unwrap());
    Loaded {
        one_time: vec![None; config.doors.len()],
        keys,
        config,
    }
}

fn engine(now: Timestamp, record: ReplayRecord) -> Engine {
    engine_read(now, Ok(record))
}

/// [`engine`] with the record as [`crate::rotating::read_record`] gives it: `Err` when lost.
fn engine_read(now: Timestamp, record: Result<ReplayRecord, String>) -> Engine {
    Engine::new(
        now,
        Start {
            loaded: loaded(),
            local: Vec::new(),
            adopted: Vec::new(),
            wall: epoch() + now.saturating_since(Timestamp::ZERO),
            ipv4_only: false,
            replay: Some(Replay {
                record,
                file: PathBuf::from("/state/pending-stops.replay"),
            }),
        },
    )
}

/// The sealed SYNs of one knock from 198.18.0.1, made at `at` (the engine's clock).
fn sealed(at: Timestamp, nonce: u8) -> Vec<(Timestamp, Hit)> {
    sealed_by("198.18.0.1", at, at, nonce)
}

/// The sealed SYNs of one knock from `source` captured at `at`, made by a client whose clock
/// reads `made` (the engine's clock) then.
fn sealed_by(source: &str, at: Timestamp, made: Timestamp, nonce: u8) -> Vec<(Timestamp, Hit)> {
    sealed_for(&client_door(), source, at, made, nonce)
}

/// The door `ssh` as a client paired with [`loaded`] knocks it.
fn client_door() -> knock_proto::auth::RotatingDoor {
    let key: Key = KEY.parse().unwrap();
    loaded().config.rotating_door(0, key).unwrap()
}

/// [`sealed_by`] for a client that derives its knocks from `door`.
fn sealed_for(
    door: &knock_proto::auth::RotatingDoor,
    source: &str,
    at: Timestamp,
    made: Timestamp,
    nonce: u8,
) -> Vec<(Timestamp, Hit)> {
    let unix = (epoch() + made.saturating_since(Timestamp::ZERO))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let step = Step::at(unix, door.step_seconds);
    let source = source.parse().unwrap();
    door.sequence(step)
        .into_iter()
        .enumerate()
        .map(|(i, port)| {
            let seq = door.seq(step, i as u8, port, Nonce(nonce), source);
            let hit = Hit {
                source,
                destination: "198.18.0.2".parse().unwrap(),
                knock: knock_proto::Knock::new(port, knock_proto::Proto::Tcp),
                tcp_flags: 0x02,
                src_port: 40000 + i as u16,
                tcp_seq: seq,
            };
            (at, hit)
        })
        .collect()
}

fn take(e: &mut Engine) -> Vec<Effect> {
    let mut v = Vec::new();
    e.take_effects(&mut v);
    v
}

fn logged(effects: &[Effect], text: &str) -> bool {
    effects
        .iter()
        .any(|e| matches!(e, Effect::Log(l) if l.render(None).contains(text)))
}

#[test]
fn a_sealed_knock_opens_after_its_record_is_saved_and_its_replay_does_not() {
    let mut e = engine(ms(0), ReplayRecord::default());
    take(&mut e);
    let knock = sealed(ms(100), 1);
    e.hits(&knock);
    let fx = take(&mut e);
    assert!(logged(&fx, "198.18.0.1: ssh: Stage 3"), "{fx:#?}");
    assert!(logged(&fx, "198.18.0.1: ssh: OPEN SESAME"), "{fx:#?}");
    let save = fx
        .iter()
        .position(|f| matches!(f, Effect::SaveReplay { .. }));
    let run = fx.iter().position(|f| matches!(f, Effect::Run(_)));
    assert!(
        save.is_some() && save < run,
        "saved before the start command: {fx:#?}"
    );
    let Some(Effect::SaveReplay { text, .. }) = save.map(|i| fx[i].clone()) else {
        panic!("{fx:#?}")
    };

    e.hits(&knock);
    let fx = take(&mut e);
    assert!(logged(&fx, "ssh: replayed knock refused"), "{fx:#?}");
    assert!(!fx.iter().any(|f| matches!(f, Effect::Run(_))), "{fx:#?}");

    // A restart with the saved record refuses it too; a fresh nonce opens.
    let mut restarted = engine(ms(200), ReplayRecord::from_text(&text).unwrap());
    take(&mut restarted);
    restarted.hits(&knock);
    assert!(logged(&take(&mut restarted), "replayed knock refused"));
    restarted.hits(&sealed(ms(300), 2));
    assert!(logged(&take(&mut restarted), "ssh: OPEN SESAME"));
}

#[test]
fn a_lost_record_is_saved_distrusted_at_once_and_its_steps_refuse_every_knock() {
    let lost = Err("/state/pending-stops.replay: line 2: bad nonce bits".to_owned());
    let mut e = engine_read(ms(0), lost);
    let fx = take(&mut e);
    let error = fx.iter().find_map(|f| match f {
        Effect::Log(l) if l.level == Level::ERROR => Some(l.render(None)),
        _ => None,
    });
    let error = error.unwrap_or_else(|| panic!("no error logged: {fx:#?}"));
    assert!(
        error.contains("line 2: bad nonce bits") && error.contains("refuse every knock"),
        "{error}"
    );
    let saved = fx.iter().find_map(|f| match f {
        Effect::SaveReplay { text, .. } => Some(text.clone()),
        _ => None,
    });
    assert_eq!(
        saved.map(|t| t.matches(" all *\n").count()),
        Some(3),
        "the step before, this one and the next, saved before any knock: {fx:#?}"
    );
    e.hits(&sealed(ms(100), 1));
    let fx = take(&mut e);
    assert!(logged(&fx, "replayed knock refused"), "{fx:#?}");
    assert!(!fx.iter().any(|f| matches!(f, Effect::Run(_))), "{fx:#?}");
}

#[test]
fn the_filter_follows_the_steps_and_fixed_doors_still_work() {
    let mut e = engine(ms(0), ReplayRecord::default());
    take(&mut e);
    let first = e.filter();
    let roll = e.poll_at().unwrap();
    assert!(
        roll <= ms(30_000),
        "the next step is at most 30 s away: {roll:?}"
    );
    e.tick(roll);
    let fx = take(&mut e);
    let Some(Effect::SetFilter(next)) = fx.iter().find(|f| matches!(f, Effect::SetFilter(_)))
    else {
        panic!("no new filter at the step: {fx:#?}")
    };
    assert_ne!(*next, first);
    assert!(
        next.to_string().contains("7001"),
        "the fixed door stays: {next}"
    );

    e.hits(&[(
        roll + Duration::from_millis(1),
        super::tests::hit("198.18.0.9", 7001),
    )]);
    assert!(logged(&take(&mut e), "198.18.0.9: fixed: OPEN SESAME"));
}

fn status(e: &mut Engine, now: Timestamp) -> crate::control::Status {
    match e.control(now, &crate::control::Request::Status, Default::default()) {
        crate::control::Response::Status(s) => s,
        other => panic!("{other:?}"),
    }
}

#[test]
fn status_counts_rotating_attempts_and_refused_knocks_by_reason() {
    let now = ms(200_100); // 9.9 s before the next 30-second step
    let mut e = engine(ms(200_000), ReplayRecord::default());
    // Two knockers part-way through the sequence.
    e.hits(&sealed_by("198.18.0.1", now, now, 1)[..1]);
    e.hits(&sealed_by("198.18.0.5", now, now, 2)[..2]);
    // A spoofed SYN with a wrong seal on the first port.
    let (at, mut spoofed) = sealed_by("198.18.16.1", now, now, 3)[0];
    spoofed.tcp_seq ^= 1;
    e.hits(&[(at, spoofed)]);
    // A knock that opens, then its replay; a knock from a clock 90 s behind.
    let opened = sealed_by("198.18.0.7", now, now, 4);
    e.hits(&opened);
    e.hits(&opened);
    e.hits(&sealed_by("198.18.0.8", now, ms(110_100), 5)[..1]);
    let fx = take(&mut e);
    assert!(logged(&fx, "198.18.0.7: ssh: OPEN SESAME"), "{fx:#?}");
    assert!(logged(&fx, "3 steps (90 s) behind"), "{fx:#?}");

    let s = status(&mut e, now);
    let ssh = &s.doors[0];
    assert_eq!(
        (ssh.name.as_str(), ssh.enabled, ssh.attempts),
        ("ssh", true, 2)
    );
    let refused = crate::control::Refused {
        wrong_seal: 1,
        replayed: 1,
        off_step: 1,
        not_tracked: 0,
    };
    assert_eq!(ssh.refused, Some(refused));
    assert_eq!(
        s.doors[1].refused, None,
        "a fixed door has no seal to refuse"
    );
    // One MAC per sealed packet: 1 + 2 + 1 + 3 + 3 + 1.
    assert_eq!(s.counters.seal_checks, 11);
    let json = serde_json::to_string(&s).unwrap();
    assert!(json.contains(r#""wrong_seal":1"#), "{json}");

    // Past seq_timeout the attempts are no longer in progress; the counts stay, and a
    // reload keeps them.
    let later = now + Duration::from_secs(60);
    assert!(e.reload(loaded(), |_| Ok(())));
    let s = status(&mut e, later);
    assert_eq!(s.doors[0].attempts, 0);
    assert_eq!(s.doors[0].refused.as_ref().map(|r| r.wrong_seal), Some(1));
    assert_eq!(s.counters.seal_checks, 11);
}

#[test]
fn status_counts_first_knocks_not_tracked_beyond_max_attempts() {
    let mut loaded = loaded();
    loaded.config.options.max_attempts = 3;
    let mut e = Engine::new(
        ms(0),
        Start {
            loaded,
            local: Vec::new(),
            adopted: Vec::new(),
            wall: epoch(),
            ipv4_only: false,
            replay: None,
        },
    );
    // A captured first knock replayed from five spoofed sources: three are tracked.
    let (at, first) = sealed(ms(100), 1)[0];
    for i in 0..5u8 {
        let source = std::net::IpAddr::from([198, 18, 16, i]);
        e.hits(&[(at, Hit { source, ..first })]);
    }
    let ssh = &status(&mut e, ms(200)).doors[0];
    assert_eq!(ssh.attempts, 3);
    assert_eq!(ssh.refused.as_ref().map(|r| r.not_tracked), Some(2));
}

#[test]
fn wrong_seals_log_nothing_without_v_and_stage_1_lines_keep_to_the_log_budget() {
    let mut e = engine(ms(0), ReplayRecord::default());
    e.set_log_gate(LogGate {
        level: |l| l <= Level::INFO,
        first_stage: |_| false,
        left_out: || {},
    });
    take(&mut e);
    let (at, first) = sealed(ms(100), 1)[0];
    for i in 0..100u8 {
        let source = std::net::IpAddr::from([198, 18, 16, i]);
        let wrong = Hit {
            source,
            tcp_seq: first.tcp_seq ^ 1,
            ..first
        };
        // A wrong seal, and a captured first knock replayed from a spoofed source.
        e.hits(&[(at, wrong), (at, Hit { source, ..first })]);
    }
    let fx = take(&mut e);
    assert!(!fx.iter().any(|f| matches!(f, Effect::Log(_))), "{fx:#?}");
    let s = status(&mut e, ms(200));
    assert_eq!(s.doors[0].attempts, 100);
    assert_eq!(s.doors[0].refused.as_ref().map(|r| r.wrong_seal), Some(100));
}

#[test]
fn a_paired_client_keeps_opening_when_a_door_is_added_on_one_of_its_ports() {
    let mut e = engine(ms(0), ReplayRecord::default());
    take(&mut e);
    // The client was paired before the new door; its knock of this step is made now.
    let knock = sealed(ms(100), 1);
    let clash = knock[1].1.knock.port;
    let added = format!("[doors.added]\nsequence = \"{clash},9002\"\n");
    assert!(e.reload(loaded_with(&added), |_| Ok(())));
    e.hits(&knock);
    let fx = take(&mut e);
    assert!(logged(&fx, "198.18.0.1: ssh: OPEN SESAME"), "{fx:#?}");
    // The new door's knock on that port is a plain SYN (no seal): it is the new door's.
    let plain = |port| (ms(200), super::tests::hit("198.18.0.9", port));
    e.hits(&[plain(clash.get()), plain(9002)]);
    let fx = take(&mut e);
    assert!(logged(&fx, "198.18.0.9: added: OPEN SESAME"), "{fx:#?}");
    // The capture filter lets the port through for both doors.
    let rotating = e.rotating.filter_knocks(&e.config);
    let knock = knock_proto::Knock::new(clash, knock_proto::Proto::Tcp);
    assert!(rotating[0].contains(&knock), "{rotating:?}");
    assert!(rotating[2].is_empty(), "the fixed door's own");
}

#[test]
fn a_reload_between_two_knocks_keeps_the_attempt_of_an_unchanged_rotating_door() {
    let mut e = engine(ms(0), ReplayRecord::default());
    take(&mut e);
    let knock = sealed(ms(100), 1);
    e.hits(&knock[..1]);
    assert!(logged(&take(&mut e), "198.18.0.1: ssh: Stage 1"));
    // A reload that adds an unrelated door, and one that changes nothing.
    assert!(
        e.reload(loaded_with("[doors.other]\nsequence = \"9001\"\n"), |_| Ok(
            ()
        ))
    );
    e.hits(&knock[1..2]);
    assert!(
        e.reload(loaded_with("[doors.other]\nsequence = \"9001\"\n"), |_| Ok(
            ()
        ))
    );
    e.hits(&knock[2..]);
    let fx = take(&mut e);
    assert!(logged(&fx, "198.18.0.1: ssh: OPEN SESAME"), "{fx:#?}");
    assert_eq!(status(&mut e, ms(300)).doors[0].attempts, 0);

    // The door's knock-relevant settings changed: its attempts start over.
    let fresh = sealed(ms(400), 2);
    e.hits(&fresh[..1]);
    assert_eq!(status(&mut e, ms(400)).doors[0].attempts, 1);
    let mut longer = loaded();
    let knock_proto::config::SequenceSource::Rotating(r) = &mut longer.config.doors[0].sequence
    else {
        unreachable!()
    };
    r.knocks = 4;
    assert!(e.reload(longer, |_| Ok(())));
    assert_eq!(status(&mut e, ms(400)).doors[0].attempts, 0);
}

#[test]
fn a_client_paired_by_an_earlier_pair_still_opens_and_is_told_to_pair_again() {
    let mut e = engine(ms(0), ReplayRecord::default());
    take(&mut e);
    // An earlier `pair` printed `ports` less the fixed door's 7001.
    let mut older = client_door();
    older.ports = loaded().config.rotating_ports(0).unwrap();
    assert_eq!(older.ports.to_string(), "7000,7002-7999");
    let knock = sealed_for(&older, "198.18.0.1", ms(100), ms(100), 1);
    let ports = |k: &[(Timestamp, Hit)]| k.iter().map(|(_, h)| h.knock).collect::<Vec<_>>();
    assert_ne!(
        ports(&knock),
        ports(&sealed(ms(100), 1)),
        "another sequence"
    );
    e.hits(&knock);
    let fx = take(&mut e);
    assert!(logged(&fx, "198.18.0.1: ssh: OPEN SESAME"), "{fx:#?}");
    assert!(
        logged(
            &fx,
            "ssh: Stage 3 (knocked on 7000,7002-7999, the ports an older `knock-server pair` \
             printed: pair this client again, `knock-server pair ssh`"
        ),
        "{fx:#?}"
    );
    // One record for both: its replay is refused.
    e.hits(&knock);
    assert!(logged(&take(&mut e), "ssh: replayed knock refused"));
    // Status shows one door, with the ports `pair` prints now.
    let s = status(&mut e, ms(200));
    assert_eq!(s.doors.len(), 2);
    assert_eq!(s.doors[0].ports.as_deref(), Some("7000-7999"));
    assert_eq!(s.doors[0].refused.as_ref().map(|r| r.replayed), Some(1));
    assert_eq!(s.doors[1].ports, None, "a fixed door");
    // A fresh knock of the current pairing still opens too.
    e.hits(&sealed(ms(300), 2));
    let fx = take(&mut e);
    assert!(logged(&fx, "198.18.0.1: ssh: OPEN SESAME"), "{fx:#?}");
    assert!(!logged(&fx, "pair this client again"), "{fx:#?}");
}

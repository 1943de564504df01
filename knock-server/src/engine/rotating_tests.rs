//! The engine with rotating doors (issue 12), without root or clocks: a sealed knock opens
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
    let config = knock_proto::config::toml::parse(std::path::Path::new("t.toml"), DOORS).unwrap();
    Loaded {
        one_time: vec![None, None],
        keys: vec![Some(KEY.parse().unwrap()), None],
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
    let key: Key = KEY.parse().unwrap();
    let door = loaded().config.rotating_door(0, key).unwrap();
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

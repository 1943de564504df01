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
    let key: Key = KEY.parse().unwrap();
    let door = loaded().config.rotating_door(0, key).unwrap();
    let unix = (epoch() + at.saturating_since(Timestamp::ZERO))
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let step = Step::at(unix, door.step_seconds);
    let source = "198.18.0.1".parse().unwrap();
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

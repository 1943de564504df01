//! Fuzzes the replay record file (`STATE-FILE.replay`): its text as `ReplayRecord::from_text`
//! reads it (what `rotating::read_record` does with the file's contents), then the daemon's
//! rotating doors started with it (`RotatingDoors::new`), knocked by a knock the record may
//! hold. The last byte picks the knock (nonce, source), the rest is the file.
//!
//! Besides "never panics", it checks that an error names a line of the file; that an accepted
//! record written back (`to_text`) reads as the same record and is written the same way again;
//! and that the record in force refuses exactly the knocks it holds: a complete sealed knock of
//! door `ssh` (or unsealed one of door `lab`) opens the door if and only if the record, kept to
//! the config's doors, admits it, and the record afterwards is that one with the knock added.
#![no_main]

use std::net::IpAddr;
use std::path::Path;
use std::sync::OnceLock;

use knock_proto::auth::replay::Use;
use knock_proto::auth::{Key, Nonce, ReplayRecord, RotatingDoor, Step};
use knock_proto::config::Loaded;
use knock_proto::flags::bits;
use knock_proto::{Knock, Proto, Timestamp};
use knock_server::rotating::{Handled, RotatingDoors};
use libfuzzer_sys::fuzz_target;

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
/// Step 59_666_667 of 30 s (seeds name it).
const UNIX: u64 = 1_790_000_020;
const CONFIG: &str = "[doors.web]\nsequence = \"7001\"\n\
    [doors.ssh]\nsecret_file = \"k\"\nports = \"7000-7010\"\n\
    [doors.lab]\nsecret_file = \"k\"\nports = \"7100-7110\"\nsealed = false\nknocks = 2\n";

struct Setup {
    loaded: Loaded,
    /// Config index and protocol door of `ssh` and `lab`.
    doors: [(usize, RotatingDoor); 2],
}

fn setup() -> &'static Setup {
    static SETUP: OnceLock<Setup> = OnceLock::new();
    SETUP.get_or_init(|| {
        let config = knock_proto::config::toml::parse(Path::new("k.toml"), CONFIG).unwrap();
        let key: Key = KEY.parse().unwrap();
        let doors = [1, 2].map(|i| (i, config.rotating_door(i, key.clone()).unwrap()));
        Setup {
            loaded: Loaded {
                one_time: vec![None; 3],
                keys: vec![None, Some(key.clone()), Some(key)],
                config,
            },
            doors,
        }
    })
}

fn source(b: u8) -> IpAddr {
    match b % 3 {
        0 => IpAddr::from([198, 18, 0, 1]),
        1 => IpAddr::from([198, 18, 0, 2]),
        _ => IpAddr::from([0xfd00, 0, 0, 0, 0, 0, 0, 1]),
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&pick, file)) = data.split_last() else {
        return;
    };
    // `read_record` reads the file as UTF-8; other bytes make the record lost (an error).
    let Ok(text) = std::str::from_utf8(file) else {
        return;
    };
    let record = match ReplayRecord::from_text(text) {
        Ok(r) => r,
        Err(e) => {
            let lines = text.lines().count();
            assert!(e.line >= 1 && e.line <= lines, "{e} of {lines} lines");
            assert!(!e.to_string().is_empty());
            return;
        }
    };
    let saved = record.to_text();
    assert_eq!(
        ReplayRecord::from_text(&saved).as_ref(),
        Ok(&record),
        "{saved}"
    );
    assert_eq!(
        ReplayRecord::from_text(&saved).unwrap().to_text(),
        saved,
        "written two ways"
    );
    assert_eq!(saved.lines().count(), record.len(), "{saved}");

    // The daemon starting with that record, knocked by one complete sequence.
    let setup = setup();
    let mut rotating = RotatingDoors::new(&setup.loaded, record.clone(), UNIX);
    let mut expected = record;
    expected.keep_doors(&["ssh", "lab"]);
    assert_eq!(rotating.record(), &expected, "kept to the config's doors");
    let kept = expected.to_text();

    let (config_id, door) = &setup.doors[usize::from(pick & 1)];
    let nonce = Nonce(pick.rotate_left(3));
    let from = source(pick >> 1);
    let step = Step::at(UNIX, door.step_seconds);
    let mut last = Handled::NotOurs;
    for (i, port) in door.sequence(step).into_iter().enumerate() {
        let index = u8::try_from(i).unwrap();
        let seq = door.seq(step, index, port, nonce, from);
        let knock = Knock::new(port, Proto::Tcp);
        last = rotating
            .handle(Timestamp::ZERO, from, knock, (bits::SYN, seq), |_, _| true)
            .0;
    }
    let knock = match door.seal {
        knock_proto::auth::Seal::Off => Use::Unsealed(from),
        knock_proto::auth::Seal::On { .. } => Use::Sealed(nonce),
    };
    let admitted = expected.admit(&door.name, step, knock).is_ok();
    let opened = last == Handled::Open { door: *config_id };
    assert_eq!(
        opened, admitted,
        "{} {step:?} {knock:?}: {last:?}",
        door.name
    );
    if !opened {
        assert_eq!(last, Handled::Taken);
    }
    assert_eq!(rotating.record(), &expected);
    let changed = rotating.take_record();
    assert_eq!(changed.is_some(), expected.to_text() != kept, "{changed:?}");
});

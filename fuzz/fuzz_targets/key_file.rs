//! Fuzzes the key file of a rotating door: its text as `Key` parses it, and as the config loader
//! reads it for a door's `secret_file` (`config::load_with_keys`, the daemon's and `--check`'s
//! path), then uses it; the first two bytes are a file mode for the permission check.
//!
//! Besides "never panics", it checks that the permission check refuses exactly the modes that
//! let anyone but the owner in; that a key is accepted only in its one canonical text (what
//! `keygen` writes, surrounding whitespace aside), so a mangled key is never used; that the
//! loader accepts the config exactly when the key parses, with that key; and that the door it
//! makes derives sequences of the configured length, of distinct ports from its own `ports`.
#![no_main]

use std::io;
use std::path::Path;

use knock_proto::auth::key::{KeyError, mode_problem};
use knock_proto::auth::{Key, Step};
use knock_proto::config::{self, SequenceSource};
use libfuzzer_sys::fuzz_target;

const CONFIG: &str = "[doors.web]\nsequence = \"7001\"\n\
                      [doors.ssh]\nsecret_file = \"ssh.key\"\nports = \"7000-7010\"\nknocks = 3\n";

fuzz_target!(|data: &[u8]| {
    let (mode, text) = match data {
        [a, b, rest @ ..] => (u32::from(u16::from_le_bytes([*a, *b])), rest),
        _ => (0o600, data),
    };
    assert_eq!(
        mode_problem("k.key", mode).is_some(),
        mode & 0o077 != 0,
        "mode {mode:o}"
    );

    // `read_key_file` reads the file as UTF-8: other bytes never reach the parser.
    let Ok(text) = std::str::from_utf8(text) else {
        return;
    };
    let parsed = text.parse::<Key>();
    match &parsed {
        Ok(key) => {
            assert_eq!(key.to_text(), text.trim(), "a second spelling of a key");
            assert_eq!(key.to_text().parse::<Key>().as_ref(), Ok(key));
        }
        Err(KeyError::Empty) => assert!(text.trim().is_empty()),
        Err(KeyError::WrongLength(n)) => assert_ne!(*n, 32),
        Err(KeyError::NotBase64) => assert!(!text.trim().is_empty()),
    }
    let _ = parsed.as_ref().map_err(ToString::to_string);

    let config_path = Path::new("/etc/knock/server.toml");
    let loaded = config::load_with_keys(
        config_path,
        |p| {
            if p == config_path {
                Ok(CONFIG.to_owned())
            } else {
                Err(io::Error::from(io::ErrorKind::NotFound))
            }
        },
        |p| {
            assert_eq!(p, Path::new("/etc/knock/ssh.key"));
            Ok(text.to_owned())
        },
    );
    match (&loaded, &parsed) {
        (Ok(l), Ok(key)) => {
            assert_eq!(l.keys, [None, Some(key.clone())]);
            let SequenceSource::Rotating(r) = &l.config.doors[1].sequence else {
                panic!("ssh is no rotating door");
            };
            let door = l
                .config
                .rotating_door(1, key.clone())
                .expect("ports are left");
            let ports = door.sequence(Step(u64::from(mode) * 0x1_0001));
            assert_eq!(ports.len(), usize::from(r.knocks));
            assert!(ports.iter().all(|p| door.ports.contains(*p)), "{ports:?}");
            let distinct: std::collections::HashSet<_> = ports.iter().collect();
            assert_eq!(distinct.len(), ports.len(), "{ports:?}");
        }
        (Err(diags), Err(_)) => {
            assert!(!diags.is_empty());
            let _ = diags.to_string();
        }
        (l, k) => panic!("the loader says {:?}, the key {k:?}", l.as_ref().err()),
    }
});

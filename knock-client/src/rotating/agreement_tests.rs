//! The client and the server read a rotating sequence alike: the same settings, written in a
//! server's `[doors.NAME]` table and in a profile's sequence table, give the same door or the
//! same errors at the same place, for every key of knock-proto's one declaration.

use std::path::Path;

use knock_proto::config::rotating_keys::KEYS;
use knock_proto::config::{Diagnostics, Rotating, SequenceSource};

/// What one side made of the settings: the door (its line left out, as the files differ
/// above it), or each problem as (line within the settings, column, message).
type Read = Result<Rotating, Vec<(usize, Option<usize>, String)>>;

/// The problems found, with lines counted from the first line of the settings.
fn problems(d: Diagnostics, first_line: usize) -> Vec<(usize, Option<usize>, String)> {
    d.0.into_iter()
        .map(|d| (d.line.saturating_sub(first_line), d.column, d.message))
        .collect()
}

/// `settings` (lines of TOML) as the server's door `ssh` reads them.
fn server(settings: &str) -> Read {
    let text = format!("[doors.ssh]\n{settings}\n");
    let c = knock_proto::config::toml::parse(Path::new("server.toml"), &text)
        .map_err(|d| problems(d, 2))?;
    match &c.doors[0].sequence {
        SequenceSource::Rotating(r) => Ok(Rotating {
            line: 0,
            ..r.clone()
        }),
        other => panic!("not rotating: {other:?}"),
    }
}

/// `settings` as the client's profile `home` reads them, as its sequence `ssh`.
fn client(settings: &str) -> Read {
    let text = format!(
        "[profiles.home]\nhost = \"198.18.0.2\"\n[profiles.home.sequences.ssh]\n{settings}\n"
    );
    let c = crate::profiles::Config::from_toml(&text).map_err(|d| problems(d, 4))?;
    let r = &c.profiles["home"].rotating["ssh"].rotating;
    Ok(Rotating {
        line: 0,
        ..r.clone()
    })
}

/// Both sides' reading, which must agree.
fn both(settings: &str) -> Read {
    let s = server(settings);
    assert_eq!(s, client(settings), "{settings}");
    s
}

#[test]
fn the_same_mistake_gets_the_same_error_on_both_sides() {
    for (settings, says) in [
        (
            "step_seconds = 0",
            "step_seconds = 0 is out of range: from 5 to 3600 seconds",
        ),
        ("knocks = 99", "knocks = 99 is out of range: from 1 to 16"),
        (
            "ports = \"70000\"",
            "`70000` is not a port or a range like 1024-65535",
        ),
        (
            "step_second = 30",
            "unknown key `step_second`, did you mean `step_seconds`?",
        ),
        ("knocks = \"3\"", "write `knocks = 3` without quotes"),
        ("sealed = 1", "`sealed` must be true or false"),
        ("knocks = 1", "a sealed door needs `knocks = 2` or more"),
        (
            "ports = \"7000-7001\"",
            "`ports` has fewer than the 3 ports",
        ),
        (
            "sealed = false\nbind_source = true",
            "so it needs `sealed = true`",
        ),
        ("secret_file = \"\"", "secret_file is empty"),
        ("secret_file = 7", "`secret_file` must be a string"),
    ] {
        let settings = if settings.starts_with("secret_file") {
            settings.to_owned()
        } else {
            format!("secret_file = \"k\"\n{settings}")
        };
        let errors = both(&settings).unwrap_err();
        assert!(
            errors.len() == 1 && errors[0].2.contains(says) && errors[0].1.is_some(),
            "{settings}: {errors:?}"
        );
    }
}

#[test]
fn every_declared_key_is_read_alike_by_both_sides() {
    let defaults = both("secret_file = \"k\"").unwrap();
    for key in &KEYS {
        let Some(default) = key.default else {
            continue;
        };
        // Written out, each default is what leaving it out gives, on both sides.
        let written = both(&format!("secret_file = \"k\"\n{} = {default}", key.name));
        assert_eq!(written, Ok(defaults.clone()), "{}", key.name);
    }
    let all: String = KEYS
        .iter()
        .filter_map(|k| Some(format!("{} = {}\n", k.name, k.default?)))
        .collect();
    assert_eq!(both(&format!("secret_file = \"k\"\n{all}")), Ok(defaults));
    let changed = both(
        "secret_file = \"/etc/k\"\nknocks = 4\nports = \"2000-2999\"\nstep_seconds = 60\n\
         sealed = false",
    )
    .unwrap();
    assert_eq!(
        (
            changed.knocks,
            changed.ports.to_string(),
            changed.step_seconds.get()
        ),
        (4, "2000-2999".to_owned(), 60)
    );
    assert!(!changed.sealed && changed.secret_file == Path::new("/etc/k"));
}

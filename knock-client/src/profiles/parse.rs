//! The config file's text to a checked [`Config`], through the same TOML walk and diagnostics
//! as the server's config (`knock_proto::config::walk`): every problem at its file, line and
//! column with a caret, "did you mean" for unknown keys, all of them in line order.
//!
//! A sequence value is either a fixed list (a knockd string or an array) or a table of
//! settings around one (`{ sequence = "...", hits = 3 }`); [`sequence`] keeps that split so
//! that new kinds of table can join it.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use knock_proto::Proto;
use knock_proto::config::Diagnostics;
use knock_proto::config::rotating_keys::{self, RotatingDraft};
use knock_proto::config::walk::{DeTable, DeValue, Key, NamedTables, Val, Walker, in_file_order};

use crate::rotating::RotatingEntry;

use super::keys::{self, PROFILE_KEYS, ROTATING_SEQUENCE_KEYS, SEQUENCE_KEYS, read_table};
use super::{Config, NamedSequence, Profile};

/// Parses the config's `text`, read from `path` (used in messages only).
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    let mut w = Walker::new(path, text);
    let named = NamedTables {
        prefix: "[profiles.",
        noun: "profile",
        written: "[profiles.NAME]",
    };
    let Some(doc) = w.document(&[named]) else {
        return w.finish(Config::default());
    };
    let mut profiles = BTreeMap::new();
    for (key, val) in in_file_order(doc.get_ref()) {
        let name = key.get_ref().as_ref();
        if name != "profiles" {
            stray_top_level(&mut w, key, val);
            continue;
        }
        let Some(table) = w.table(val, "profiles") else {
            continue;
        };
        for (name, val) in in_file_order(table) {
            if let Some(p) = profile(&mut w, name, val) {
                profiles.insert(name.get_ref().to_string(), p);
            }
        }
    }
    w.finish(Config { profiles })
}

/// A top-level key other than `profiles`.
fn stray_top_level(w: &mut Walker<'_>, key: &Key<'_>, val: &Val<'_>) {
    let name = key.get_ref().as_ref();
    let message = if !matches!(val.get_ref(), DeValue::Table(_)) {
        format!("`{name}` is outside any profile: settings belong to a `[profiles.NAME]` section")
    } else if knock_proto::config::diagnostic::closest(name, ["profiles"]).is_some() {
        format!("unknown section `[{name}]`, did you mean `[profiles]`?")
    } else {
        format!("unknown section `[{name}]`: profiles are written `[profiles.{name}]`")
    };
    w.err(key.span(), message);
}

/// One `[profiles.NAME]` table.
fn profile(w: &mut Walker<'_>, name_key: &Key<'_>, val: &Val<'_>) -> Option<Profile> {
    let name = name_key.get_ref().as_ref();
    let table = w.table(val, &format!("profiles.{name}"))?;
    let before = w.error_count();
    let d = read_table(w, table, &PROFILE_KEYS, |w, key, _| {
        let elsewhere = (key.get_ref() == "sequence")
            .then(|| format!("[profiles.{name}.sequences], under a name of its own"));
        let known: Vec<&str> = keys::names(&PROFILE_KEYS).collect();
        w.unknown_key(key, &known, elsewhere.as_deref());
    });
    if d.host.is_none() && !table.contains_key("host") {
        w.err(
            name_key.span(),
            format!(
                "profile `{name}` has no host: add `host = \"198.18.0.2\"` (a name or an address)"
            ),
        );
    }
    let protocol = d.protocol.unwrap_or(Proto::Tcp);
    let (sequences, rotating) = match d.sequences {
        Some(val) => sequences(w, val, protocol, d.hits.unwrap_or(1)),
        None => {
            w.err(
                name_key.span(),
                format!(
                    "profile `{name}` has no sequences: add a [profiles.{name}.sequences] table"
                ),
            );
            (BTreeMap::new(), BTreeMap::new())
        }
    };
    (w.error_count() == before).then(|| Profile {
        host: d.host.unwrap_or_default(),
        hits: d.hits.unwrap_or(1),
        delay: d.delay.unwrap_or_default(),
        hit_delay: d.hit_delay,
        protocol,
        sequences,
        rotating,
    })
}

/// `hits` and `delay_ms` of one sequence's table, overriding its profile's.
#[derive(Debug, Default, Clone, Copy)]
struct Settings {
    hits: Option<u8>,
    delay: Option<Duration>,
}

/// The `sequences` table of a profile: its fixed sequences and its rotating ones.
fn sequences(
    w: &mut Walker<'_>,
    val: &Val<'_>,
    protocol: Proto,
    profile_hits: u8,
) -> (
    BTreeMap<String, NamedSequence>,
    BTreeMap<String, RotatingEntry>,
) {
    let (mut fixed, mut rotating) = (BTreeMap::new(), BTreeMap::new());
    let Some(table) = w.table(val, "sequences") else {
        return (fixed, rotating);
    };
    for (key, val) in in_file_order(table) {
        let name = key.get_ref().to_string();
        match val.get_ref() {
            DeValue::Table(t) if t.contains_key("secret_file") => {
                if let Some(r) = rotating_table(w, &name, t) {
                    rotating.insert(name, r);
                }
            }
            _ => {
                if let Some(s) = sequence(w, val, protocol, profile_hits) {
                    fixed.insert(name, s);
                }
            }
        }
    }
    (fixed, rotating)
}

/// `{ secret_file = "...", knocks = 3, ports = "...", step_seconds = 30, sealed = true }`:
/// a rotating sequence (`knock-server pair DOOR` prints one). Its rotating keys are read and
/// checked by knock-proto's [`RotatingDraft`], as the server reads its door; the keys of
/// [`ROTATING_SEQUENCE_KEYS`] are the client's own.
fn rotating_table(w: &mut Walker<'_>, name: &str, table: &DeTable<'_>) -> Option<RotatingEntry> {
    let before = w.error_count();
    let mut draft = RotatingDraft::default();
    let d = read_table(w, table, &ROTATING_SEQUENCE_KEYS, |w, key, v| {
        if !draft.read(w, key, v) {
            let known: Vec<&str> = rotating_keys::names()
                .chain(keys::names(&ROTATING_SEQUENCE_KEYS))
                .collect();
            w.unknown_key(key, &known, None);
        }
    });
    let rotating = draft.finish(w)?;
    (w.error_count() == before).then(|| RotatingEntry {
        door: d.door.unwrap_or_else(|| name.to_owned()),
        rotating,
        hits: d.hits,
        delay: d.delay,
    })
}

/// One sequence: a fixed list, or a table around one.
fn sequence(
    w: &mut Walker<'_>,
    val: &Val<'_>,
    protocol: Proto,
    profile_hits: u8,
) -> Option<NamedSequence> {
    match val.get_ref() {
        DeValue::String(_) | DeValue::Array(_) | DeValue::Integer(_) => {
            fixed(w, val, protocol, Settings::default(), profile_hits)
        }
        DeValue::Table(t) => sequence_table(w, val, t, protocol, profile_hits),
        _ => {
            let found = val.get_ref().type_str();
            w.err(
                val.span(),
                format!(
                    "a sequence is a string like \"7000,8000:udp,9000\" or a table \
                     {{ sequence = \"...\", hits = N, delay_ms = MS }}, not a {found}"
                ),
            );
            None
        }
    }
}

/// `{ sequence = "...", hits = N, delay_ms = MS }`.
fn sequence_table(
    w: &mut Walker<'_>,
    val: &Val<'_>,
    table: &DeTable<'_>,
    protocol: Proto,
    profile_hits: u8,
) -> Option<NamedSequence> {
    let d = read_table(w, table, &SEQUENCE_KEYS, |w, key, _| {
        let known: Vec<&str> = keys::names(&SEQUENCE_KEYS).collect();
        w.unknown_key(key, &known, None);
    });
    let Some(list) = d.sequence else {
        w.err(
            val.span(),
            "this sequence has no `sequence` key: write { sequence = \"7000,8000,9000\" }",
        );
        return None;
    };
    let settings = Settings {
        hits: d.hits,
        delay: d.delay,
    };
    fixed(w, list, protocol, settings, profile_hits)
}

/// The knocks themselves, checked also at their length once repeated `hits` times.
fn fixed(
    w: &mut Walker<'_>,
    list: &Val<'_>,
    protocol: Proto,
    settings: Settings,
    profile_hits: u8,
) -> Option<NamedSequence> {
    let knocks = w.sequence(list, "sequence", protocol)?;
    let hits = settings.hits.unwrap_or(profile_hits);
    if let Err(e) = knocks.repeated(usize::from(hits)) {
        w.err(list.span(), format!("with hits = {hits}: {e}"));
        return None;
    }
    Some(NamedSequence {
        written: written(list),
        knocks,
        hits: settings.hits,
        delay: settings.delay,
    })
}

/// The sequence as `knock --list` shows it: the string as written, or an array's items joined.
fn written(list: &Val<'_>) -> String {
    let item = |v: &DeValue<'_>| match v {
        DeValue::String(s) => s.trim().to_owned(),
        DeValue::Integer(i) => i.as_str().to_owned(),
        _ => String::new(),
    };
    match list.get_ref() {
        DeValue::Array(a) => a
            .iter()
            .map(|v| item(v.get_ref()))
            .collect::<Vec<_>>()
            .join(","),
        other => item(other),
    }
}

//! The declarations against the model and the parser: every field of a [`Profile`], a
//! [`NamedSequence`] and a [`RotatingEntry`] is set by some declaration, and every
//! declaration's example reaches one.

use super::*;
use crate::profiles::{Config, NamedSequence, Profile};
use crate::rotating::RotatingEntry;

/// Which fields of `b` differ from `a`'s, for every field. Written without `..`, so that a
/// new field does not compile until it is listed here (and then needs a declaration).
fn profile_fields(a: &Profile, b: &Profile) -> Vec<(&'static str, bool)> {
    let Profile {
        host,
        hits,
        delay,
        hit_delay,
        protocol,
        sequences,
        rotating,
    } = b;
    vec![
        ("host", *host != a.host),
        ("hits", *hits != a.hits),
        ("delay", *delay != a.delay),
        ("hit_delay", *hit_delay != a.hit_delay),
        ("protocol", *protocol != a.protocol),
        ("sequences", *sequences != a.sequences),
        ("rotating", *rotating != a.rotating),
    ]
}

/// The same for a sequence written as a table.
fn sequence_fields(a: &NamedSequence, b: &NamedSequence) -> Vec<(&'static str, bool)> {
    let NamedSequence {
        knocks,
        written,
        hits,
        delay,
    } = b;
    vec![
        ("knocks", *knocks != a.knocks),
        ("written", *written != a.written),
        ("hits", *hits != a.hits),
        ("delay", *delay != a.delay),
    ]
}

/// The same for a rotating sequence; its `rotating` is read by the server's declarations
/// (`knock_proto::config::rotating_keys`, tested there).
fn rotating_fields(a: &RotatingEntry, b: &RotatingEntry) -> Vec<(&'static str, bool)> {
    let RotatingEntry {
        door,
        rotating: _,
        hits,
        delay,
    } = b;
    vec![
        ("door", *door != a.door),
        ("hits", *hits != a.hits),
        ("delay", *delay != a.delay),
    ]
}

fn parse(text: &str) -> Config {
    Config::from_toml(text).unwrap_or_else(|e| panic!("{text}\n{e}"))
}

/// `lines` as the keys of a table, `key = value` replacing the line of that key if any.
fn with_line(lines: &[(&str, &str)], key: &str, value: &str) -> Vec<(String, String)> {
    let mut out: Vec<(String, String)> = lines
        .iter()
        .filter(|(k, _)| *k != key)
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    out.push((key.to_owned(), value.to_owned()));
    out
}

/// A profile whose table has `lines`.
fn profile(lines: &[(String, String)]) -> Profile {
    let body: String = lines.iter().map(|(k, v)| format!("{k} = {v}\n")).collect();
    parse(&format!("[profiles.p]\n{body}"))
        .profiles
        .remove("p")
        .unwrap()
}

/// A profile with one sequence `s`, written as the inline table of `lines`.
fn sequence_table(lines: &[(String, String)]) -> Profile {
    let body: Vec<String> = lines.iter().map(|(k, v)| format!("{k} = {v}")).collect();
    profile(&[
        ("host".to_owned(), "\"h\"".to_owned()),
        (
            "sequences".to_owned(),
            format!("{{ s = {{ {} }} }}", body.join(", ")),
        ),
    ])
}

/// Every field (of those `fields` lists) is set by some key of `keys`, read from `table`
/// with the key's example added to `base`.
fn check<T>(
    keys: &[ProfileKey],
    base: &[(&str, &str)],
    read: impl Fn(&[(String, String)]) -> T,
    fields: fn(&T, &T) -> Vec<(&'static str, bool)>,
) {
    let owned: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    let base_value = read(&owned);
    let mut set = Vec::new();
    for k in keys {
        let with = read(&with_line(base, k.name, k.example));
        let changed: Vec<&str> = fields(&base_value, &with)
            .into_iter()
            .filter_map(|(f, differs)| differs.then_some(f))
            .collect();
        assert!(
            !changed.is_empty(),
            "`{} = {}` changes nothing",
            k.name,
            k.example
        );
        set.extend(changed);
    }
    for (field, _) in fields(&base_value, &base_value) {
        assert!(
            set.contains(&field),
            "no declaration in profiles/keys.rs sets `{field}`"
        );
    }
}

#[test]
fn every_profile_field_is_set_by_a_declaration() {
    let base = [("host", "\"h\""), ("sequences", "{ s = \"1\" }")];
    check(&PROFILE_KEYS, &base, profile, profile_fields);
}

#[test]
fn every_field_of_a_sequence_table_is_set_by_a_declaration() {
    let read = |lines: &[(String, String)]| sequence_table(lines).sequences.remove("s").unwrap();
    check(
        &SEQUENCE_KEYS,
        &[("sequence", "\"1\"")],
        read,
        sequence_fields,
    );
}

#[test]
fn every_field_of_a_rotating_sequence_is_set_by_a_declaration() {
    let read = |lines: &[(String, String)]| sequence_table(lines).rotating.remove("s").unwrap();
    check(
        &ROTATING_SEQUENCE_KEYS,
        &[("secret_file", "\"k\"")],
        read,
        rotating_fields,
    );
}

#[test]
fn names_are_unique_and_leaving_a_key_out_is_writing_its_default() {
    for keys in [&PROFILE_KEYS[..], &SEQUENCE_KEYS, &ROTATING_SEQUENCE_KEYS] {
        let mut names: Vec<&str> = names(keys).collect();
        let n = names.len();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), n);
    }
    let base = [("host", "\"h\""), ("sequences", "{ s = \"1\" }")];
    let lines: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
    for k in &PROFILE_KEYS {
        let Some(default) = k.default else { continue };
        let with = profile(&with_line(&base, k.name, &default.to_string()));
        assert_eq!(with, profile(&lines), "{}", k.name);
    }
    for k in PROFILE_KEYS
        .iter()
        .chain(&SEQUENCE_KEYS)
        .chain(&ROTATING_SEQUENCE_KEYS)
    {
        let doc = k.describe();
        assert!(
            !doc.contains("{default}") && !doc.contains("{range}"),
            "{doc}"
        );
    }
}

//! The declarations against the model and the parsers: every field of [`Door`] and
//! [`Options`] is set by some declaration, and every declaration's example reaches the model
//! in each format that spells it.

use std::path::Path;

use super::*;
use crate::config::model::{Actions, Config, Door};
use crate::config::test_support::ok;

/// Which fields of `b` differ from `a`'s, for every field. Written without `..`, so that a
/// new field does not compile until it is listed here (and then needs a declaration).
fn door_fields(a: &Door, b: &Door) -> Vec<(&'static str, bool)> {
    let Door {
        name,
        sequence,
        seq_timeout,
        tcpflags,
        start_command,
        start_command_6,
        stop_command,
        stop_command_6,
        cmd_timeout,
        target,
        actions,
    } = b;
    let Actions {
        wake_on_lan,
        mail_to,
        open,
        forward,
        open_for,
    } = actions;
    vec![
        ("name", *name != a.name),
        ("sequence", *sequence != a.sequence),
        ("seq_timeout", *seq_timeout != a.seq_timeout),
        ("tcpflags", *tcpflags != a.tcpflags),
        ("start_command", *start_command != a.start_command),
        ("start_command_6", *start_command_6 != a.start_command_6),
        ("stop_command", *stop_command != a.stop_command),
        ("stop_command_6", *stop_command_6 != a.stop_command_6),
        ("cmd_timeout", *cmd_timeout != a.cmd_timeout),
        ("target", *target != a.target),
        ("actions.wake_on_lan", *wake_on_lan != a.actions.wake_on_lan),
        ("actions.mail_to", *mail_to != a.actions.mail_to),
        ("actions.open", *open != a.actions.open),
        ("actions.forward", *forward != a.actions.forward),
        ("actions.open_for", *open_for != a.actions.open_for),
    ]
}

/// The same for [`Options`].
fn option_fields(a: &Options, b: &Options) -> Vec<(&'static str, bool)> {
    let Options {
        use_syslog,
        log_file,
        pid_file,
        interface,
        max_attempts,
        sendmail,
        mail_from,
        firewall_integration,
    } = b;
    vec![
        ("use_syslog", *use_syslog != a.use_syslog),
        ("log_file", *log_file != a.log_file),
        ("pid_file", *pid_file != a.pid_file),
        ("interface", *interface != a.interface),
        ("max_attempts", *max_attempts != a.max_attempts),
        ("sendmail", *sendmail != a.sendmail),
        ("mail_from", *mail_from != a.mail_from),
        (
            "firewall_integration",
            *firewall_integration != a.firewall_integration,
        ),
    ]
}

/// The value as knockd.conf writes it: no quotes.
fn knockd_value(w: Written) -> String {
    match w {
        Written::Text(s) => s.to_owned(),
        other => other.to_string(),
    }
}

/// Whether a door key gives the door its sequence (then the door needs no other).
fn is_sequence(k: &ConfigKey) -> bool {
    matches!(k.name, "sequence" | "one_time_sequences")
}

/// What else a door key needs in its table to be accepted.
fn companion(k: &ConfigKey) -> &'static str {
    match k.name {
        "open_seconds" => "open = \"22/tcp\"\n",
        _ => "",
    }
}

fn toml(text: &str) -> Config {
    ok(crate::config::toml::parse(Path::new("k.toml"), text))
}

fn knockd(text: &str) -> Config {
    ok(crate::config::knockd::parse(Path::new("k.conf"), text))
}

/// A door with `line` in `format` ("toml" or "conf"), and the same door without it.
fn door_with(k: &ConfigKey, format: &str, line: &str) -> (Door, Door) {
    let (header, sequence, parse): (_, _, fn(&str) -> Config) = match format {
        "toml" => ("[doors.d]\n", "sequence = \"1\"\n", toml),
        _ => ("[d]\n", "Sequence = 1\n", knockd),
    };
    let base = format!("{header}{sequence}{}", companion(k));
    let with = if is_sequence(k) {
        format!("{header}{}{line}\n", companion(k))
    } else {
        format!("{base}{line}\n")
    };
    let door = |text: &str| parse(text).doors.remove(0);
    (door(&base), door(&with))
}

/// Every spelling of `k` in both formats, with the line that writes its example.
fn lines(k: &ConfigKey) -> Vec<(&'static str, String)> {
    let mut out: Vec<(&str, String)> = k
        .toml_names()
        .map(|n| ("toml", format!("{n} = {}", k.example)))
        .collect();
    for n in k.knockd {
        let line = match k.read.knockd {
            Some(KnockdRead::Word(_)) => (*n).to_owned(),
            _ => format!("{n} = {}", knockd_value(k.example)),
        };
        out.push(("conf", line));
    }
    out
}

#[test]
fn every_door_field_is_set_by_a_declaration_in_every_format_that_spells_it() {
    let mut set = Vec::new();
    for k in &DOOR_KEYS {
        for (format, line) in lines(k) {
            let (base, with) = door_with(k, format, &line);
            let changed: Vec<&str> = door_fields(&base, &with)
                .into_iter()
                .filter_map(|(field, differs)| differs.then_some(field))
                .collect();
            assert!(
                !changed.is_empty(),
                "{format}: `{line}` leaves the door as it was"
            );
            set.extend(changed);
        }
    }
    let door = toml("[doors.d]\nsequence = \"1\"\n").doors.remove(0);
    for (field, _) in door_fields(&door, &door) {
        // The name is the section's, not a key's.
        assert!(
            field == "name" || set.contains(&field),
            "no declaration in config/keys.rs sets Door's `{field}`"
        );
    }
}

#[test]
fn every_option_is_set_by_a_declaration_in_every_format_that_spells_it() {
    let mut set = Vec::new();
    for k in &OPTION_KEYS {
        for (format, line) in lines(k) {
            let (base, with) = match format {
                "toml" => (
                    toml("[doors.d]\nsequence = \"1\"\n"),
                    toml(&format!("[options]\n{line}\n[doors.d]\nsequence = \"1\"\n")),
                ),
                _ => (
                    knockd("[d]\nSequence = 1\n"),
                    knockd(&format!("[options]\n{line}\n[d]\nSequence = 1\n")),
                ),
            };
            let changed: Vec<&str> = option_fields(&base.options, &with.options)
                .into_iter()
                .filter_map(|(field, differs)| differs.then_some(field))
                .collect();
            assert!(!changed.is_empty(), "{format}: `{line}` changes nothing");
            set.extend(changed);
        }
    }
    let o = Options::default();
    for (field, _) in option_fields(&o, &o) {
        assert!(
            set.contains(&field),
            "no declaration in config/keys.rs sets Options' `{field}`"
        );
    }
}

#[test]
fn each_key_is_read_where_it_is_declared_and_spelled_once() {
    let tables: [(&[ConfigKey], bool); 2] = [(&OPTION_KEYS, false), (&DOOR_KEYS, true)];
    for (keys, door) in tables {
        for k in keys {
            assert_eq!(k.knockd.is_empty(), k.read.knockd.is_none(), "{}", k.name);
            let knockd_door = matches!(k.read.knockd, Some(KnockdRead::Door(_)));
            if k.read.knockd.is_some() {
                assert_eq!(knockd_door, door, "{}", k.name);
            }
            assert_eq!(matches!(k.read.toml, TomlRead::Door(_)), door, "{}", k.name);
        }
    }
    let mut toml: Vec<&str> = toml_option_names().chain(toml_door_names()).collect();
    let mut knockd: Vec<String> = knockd_names(&OPTION_KEYS)
        .into_iter()
        .chain(knockd_names(&DOOR_KEYS))
        .map(str::to_ascii_lowercase)
        .collect();
    let (t, k) = (toml.len(), knockd.len());
    toml.sort_unstable();
    toml.dedup();
    knockd.sort_unstable();
    knockd.dedup();
    assert_eq!(
        (toml.len(), knockd.len()),
        (t, k),
        "a spelling is declared twice"
    );
}

#[test]
fn leaving_a_key_out_is_writing_its_default() {
    for k in &DOOR_KEYS {
        let Some(default) = k.default else { continue };
        for (format, line) in lines(k) {
            let name = line.split(" = ").next().unwrap_or_default();
            let line = match format {
                "toml" => format!("{name} = {default}"),
                _ => format!("{name} = {}", knockd_value(default)),
            };
            let (base, with) = door_with(k, format, &line);
            assert_eq!(base, with, "{format}: {line}");
        }
    }
    for k in &OPTION_KEYS {
        let Some(default) = k.default else { continue };
        let with = toml(&format!(
            "[options]\n{} = {default}\n[doors.d]\nsequence = \"1\"\n",
            k.name
        ));
        assert_eq!(with.options, Options::default(), "{}", k.name);
    }
}

#[test]
fn the_docs_say_the_defaults_and_ranges_declared_here() {
    for k in OPTION_KEYS.iter().chain(&DOOR_KEYS) {
        let doc = k.describe();
        let left = doc.contains("{default}") || doc.contains("{range}");
        assert!(!left, "{}: {doc}", k.name);
        if let Some(d) = k.default.filter(|_| k.doc.contains("{default}")) {
            assert!(doc.contains(&d.to_string()), "{}: {doc}", k.name);
        }
    }
    let seq = DOOR_KEYS.iter().find(|k| k.name == "seq_timeout").unwrap();
    assert!(seq.describe().contains("1 to 86400 (default 25)"));
}

/// docs/configuration.md's key table is [`markdown_table`]; `KNOCK_UPDATE_ASSETS=1` writes it
/// there.
#[test]
fn key_table_in_the_docs_lists_the_declared_keys() {
    const BEGIN: &str = "<!-- key table: generated from knock-proto/src/config/keys.rs -->\n";
    const END: &str = "<!-- end of key table -->\n";
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/configuration.md");
    let doc = std::fs::read_to_string(&path).expect("read docs/configuration.md");
    let (Some(start), Some(end)) = (doc.find(BEGIN), doc.find(END)) else {
        panic!(
            "docs/configuration.md has no `{}` ... `{}` block",
            BEGIN.trim(),
            END.trim()
        );
    };
    let (have, want) = (&doc[start + BEGIN.len()..end], markdown_table());
    if have == want {
        return;
    }
    if std::env::var_os("KNOCK_UPDATE_ASSETS").is_some_and(|v| v == "1") {
        let updated = format!("{}{BEGIN}{want}{}", &doc[..start], &doc[end..]);
        std::fs::write(&path, updated).expect("write docs/configuration.md");
        return;
    }
    panic!(
        "docs/configuration.md's key table differs from the declarations; regenerate it with \
         `KNOCK_UPDATE_ASSETS=1 cargo test -p knock-proto --lib key_table` and commit it.\n\
         --- docs/configuration.md:\n{have}--- declared:\n{want}"
    );
}

#[test]
fn every_key_has_its_place_in_checks_description() {
    for (keys, door) in [(&OPTION_KEYS[..], false), (&DOOR_KEYS[..], true)] {
        for k in keys {
            match k.check {
                Check::Option(_) => assert!(!door, "{}", k.name),
                Check::Door(_) | Check::Own => assert!(door, "{}", k.name),
                Check::In(other) => {
                    let row = keys.iter().find(|o| o.name == other);
                    let shown = row.is_some_and(|o| !matches!(o.check, Check::In(_)));
                    assert!(shown, "{} is said in `{other}`, which has no row", k.name);
                }
            }
        }
    }
}

/// examples/server.toml says it uses every key: every declared one, some commented out.
#[test]
fn the_example_config_writes_every_key() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/server.toml");
    let text = std::fs::read_to_string(&path).expect("read examples/server.toml");
    let written = |name: &str| {
        text.lines().any(|l| {
            let l = l.trim_start().trim_start_matches('#').trim_start();
            l.strip_prefix(name)
                .is_some_and(|rest| rest.trim_start().starts_with('='))
        })
    };
    let names = OPTION_KEYS.iter().chain(&DOOR_KEYS).map(|k| k.name);
    for name in names.chain(rotating_keys::names()) {
        assert!(written(name), "examples/server.toml does not show `{name}`");
    }
}

//! One `[doors.NAME]` table of the TOML format: knockd's door keys and the built-in actions.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

use super::{Cx, Key, Val, sorted};
use crate::config::keys::{self, CMD_TIMEOUT, OPEN_SECONDS, SEQ_TIMEOUT, TomlRead};
use crate::config::model::*;
use crate::config::rotating_keys::RotatingDraft;
use crate::config::value;
use crate::flags::TcpFlags;
use crate::sequence::{Knock, Proto};

/// The keys of a `wake_on_lan = { ... }` table.
const WOL_KEYS: [&str; 4] = ["mac", "address", "port", "interface"];

/// What a door table has said so far; `Door` is built from it at the end.
pub(crate) struct Draft {
    door: Door,
    /// Where (byte offset of the key) `sequence` / `one_time_sequences` were, and whether
    /// the value given was valid.
    sequence: Option<(usize, bool)>,
    one_time: Option<(usize, bool)>,
    /// `secret_file` and the other keys of a rotating door.
    rotating: RotatingDraft,
    /// Where `open_seconds` was, to refuse it without `open`.
    open_seconds: Option<usize>,
    /// Whether `open` was given, valid or not.
    open_seen: bool,
    /// The spelling and place of the first start command key, to refuse its alias too.
    start_key: Option<&'static str>,
    start6_key: Option<&'static str>,
}

impl Cx<'_> {
    /// Checks one door table; `None` (with errors reported) when it is not a usable door.
    pub(super) fn door(&mut self, name_key: &Key<'_>, val: &Val<'_>) -> Option<Door> {
        let name = name_key.get_ref().as_ref();
        let table = match val.get_ref() {
            DeValue::Table(t) => t,
            _ => {
                self.err(
                    name_key.span(),
                    format!(
                        "`doors.{name}` must be a door table: write `[doors.{name}]` with the \
                         door's keys below it"
                    ),
                );
                return None;
            }
        };
        let name_ok = match value::door_name(name) {
            Ok(()) => true,
            Err(m) => {
                self.err(name_key.span(), m);
                false
            }
        };
        let mut d = Draft {
            door: Door::new(
                name,
                SequenceSource::OneTime {
                    path: PathBuf::new(),
                    line: 0,
                },
            ),
            sequence: None,
            one_time: None,
            rotating: RotatingDraft::default(),
            open_seconds: None,
            open_seen: false,
            start_key: None,
            start6_key: None,
        };
        let errors_before = self.error_count();
        for (key, val) in sorted(table) {
            self.door_key(&mut d, key, val);
        }
        let mut complete = self.door_complete(name_key, &d);
        if complete && d.rotating.secret_file().is_some() {
            match d.rotating.finish(self) {
                Some(r) => d.door.sequence = SequenceSource::Rotating(r),
                None => complete = false,
            }
        }
        (name_ok && complete && self.error_count() == errors_before).then_some(d.door)
    }

    /// The checks that need the whole table: exactly one kind of sequence, `open_seconds`
    /// only with `open`.
    fn door_complete(&mut self, name_key: &Key<'_>, d: &Draft) -> bool {
        let name = &d.door.name;
        if let Some(at) = d.open_seconds {
            if !d.open_seen {
                self.err(
                    at..at,
                    "`open_seconds` without `open`: add the ports to open, e.g. \
                     `open = \"22/tcp\"`, or remove it",
                );
            }
        }
        if let (Some((at, key)), None) = (d.rotating.first_key(), d.rotating.secret_file()) {
            self.err(
                at..at,
                format!(
                    "`{key}` belongs to rotating doors: add `secret_file = \"keys/{name}.key\"` \
                     (and drop `sequence`), or remove it"
                ),
            );
            return false;
        }
        let sources = [
            d.sequence.map(|(at, ok)| (at, ok, "sequence")),
            d.one_time.map(|(at, ok)| (at, ok, "one_time_sequences")),
            d.rotating
                .secret_file()
                .map(|(at, ok)| (at, ok, "secret_file")),
        ];
        let mut given: Vec<(usize, bool, &str)> = sources.into_iter().flatten().collect();
        given.sort();
        match given.as_slice() {
            [] => {
                self.err(
                    name_key.span(),
                    format!(
                        "door `{name}` has no sequence: add `sequence = \"7000,8000,9000\"`, \
                         `one_time_sequences = \"/path/to/file\"` or `secret_file = \"PATH\"`"
                    ),
                );
                false
            }
            [(_, ok, _)] => *ok,
            [(a, _, first), (b, _, second), ..] => {
                let lines = (self.line_of(*a), self.line_of(*b));
                self.err(
                    *b..*b,
                    format!(
                        "door `{name}` has both `{first}` and `{second}` (lines {} and {}): \
                         keep one of them",
                        lines.0, lines.1
                    ),
                );
                false
            }
        }
    }

    fn door_key(&mut self, d: &mut Draft, key: &Key<'_>, val: &Val<'_>) {
        if d.rotating.read(self, key, val) {
            return;
        }
        let name = key.get_ref().as_ref();
        match keys::toml_door(name) {
            Some((name, TomlRead::Door(read))) => read(self, d, name, key, val),
            _ => {
                let elsewhere = keys::toml_option(name)
                    .is_some()
                    .then_some("the `[options]` section");
                let known: Vec<&str> = keys::toml_door_names().collect();
                self.unknown_key(key, &known, elsewhere);
            }
        }
    }

    /// `tcpflags`: `"syn,!ack"`, or an array of flag strings.
    fn tcpflags(&mut self, val: &Val<'_>) -> Option<TcpFlags> {
        let joined;
        let s = match val.get_ref() {
            DeValue::String(s) => s.as_ref(),
            DeValue::Array(a) => {
                let mut parts = Vec::new();
                for item in a.iter() {
                    parts.push(self.string(item, "tcpflags")?.to_owned());
                }
                joined = parts.join(",");
                &joined
            }
            _ => {
                self.type_error(val, "tcpflags", "a string like \"syn,!ack\"");
                return None;
            }
        };
        value::tcpflags(s)
            .map_err(|e| self.value_error(val, s, e))
            .ok()
    }

    /// `wake_on_lan`: a MAC address, or `{ mac, address, port, interface }`.
    fn wake_on_lan(&mut self, val: &Val<'_>) -> Option<WakeOnLan> {
        let mut wol = WakeOnLan {
            mac: MacAddr([0; 6]),
            address: IpAddr::V4(Ipv4Addr::BROADCAST),
            port: 9,
            interface: None,
        };
        let table: &DeTable<'_> = match val.get_ref() {
            DeValue::String(s) => {
                wol.mac = self.mac(val, s)?;
                return Some(wol);
            }
            DeValue::Table(t) => t,
            _ => {
                self.type_error(val, "wake_on_lan", "a MAC address or a table");
                return None;
            }
        };
        let mut ok = true;
        for (key, v) in sorted(table) {
            ok &= self.wol_key(&mut wol, key, v).is_some();
        }
        if !table.iter().any(|(k, _)| k.get_ref() == "mac") {
            self.err(
                val.span(),
                "wake_on_lan needs the machine's `mac`, e.g. `{ mac = \"00:81:52:6b:3d:ae\" }`",
            );
            return None;
        }
        ok.then_some(wol)
    }

    /// One key of a `wake_on_lan` table, stored into `wol`; `None` when it is bad.
    fn wol_key(&mut self, wol: &mut WakeOnLan, key: &Key<'_>, v: &Val<'_>) -> Option<()> {
        match key.get_ref().as_ref() {
            "mac" => {
                let s = self.string(v, "mac")?;
                wol.mac = self.mac(v, s)?;
            }
            "address" => {
                let s = self.string(v, "address")?;
                match s.trim().parse() {
                    Ok(ip) => wol.address = ip,
                    Err(_) => {
                        self.err(
                            v.span(),
                            format!(
                                "`{s}` is not an IP address: write the broadcast address of \
                                 the sleeping machine's network, e.g. `198.18.0.255`"
                            ),
                        );
                        return None;
                    }
                }
            }
            "port" => {
                let n = self.integer(v, "port")?;
                match u16::try_from(n) {
                    Ok(p) if p > 0 => wol.port = p,
                    _ => {
                        self.err(
                            v.span(),
                            format!(
                                "port {n} is out of range: ports go from 1 to 65535 \
                                 (Wake-on-LAN uses 9 or 7)"
                            ),
                        );
                        return None;
                    }
                }
            }
            "interface" => wol.interface = Some(self.setting(v, "interface", "eth0")?),
            _ => {
                self.unknown_key(key, &WOL_KEYS, None);
                return None;
            }
        }
        Some(())
    }

    fn mac(&mut self, val: &Val<'_>, s: &str) -> Option<MacAddr> {
        s.parse()
            .map_err(|e: MacError| self.err(val.span(), e.to_string()))
            .ok()
    }

    /// `mail_to`: one address or a list.
    fn mail_to(&mut self, val: &Val<'_>) -> Vec<String> {
        let items: Vec<&Val<'_>> = match val.get_ref() {
            DeValue::Array(a) if a.is_empty() => {
                self.err(
                    val.span(),
                    "mail_to is empty: list at least one address, or remove it",
                );
                return Vec::new();
            }
            DeValue::Array(a) => a.iter().collect(),
            _ => vec![val],
        };
        let mut out = Vec::new();
        for item in items {
            let Some(s) = self.string(item, "mail_to") else {
                continue;
            };
            match value::mail_address(s, "mail_to") {
                Ok(a) => out.push(a),
                Err(m) => self.err(item.span(), m),
            }
        }
        out
    }

    /// `open`: `"1723/tcp"` (or `"1723:tcp"`, or a bare port for TCP), or a list of them.
    /// `forward`: a string or an array of them, each `OUTSIDE/PROTO -> ADDRESS:PORT`.
    fn forwards(&mut self, val: &Val<'_>) -> Vec<Forward> {
        let items: Vec<&Val<'_>> = match val.get_ref() {
            DeValue::Array(a) if a.is_empty() => {
                self.err(
                    val.span(),
                    "forward is empty: list what to forward, e.g. \
                     `[\"1723/tcp -> 192.168.1.51:1723\"]`, or remove it",
                );
                return Vec::new();
            }
            DeValue::Array(a) => a.iter().collect(),
            _ => vec![val],
        };
        let mut out: Vec<Forward> = Vec::new();
        for item in items {
            let DeValue::String(s) = item.get_ref() else {
                self.err(
                    item.span(),
                    "a forward is a string: `\"1723/tcp -> 192.168.1.51:1723\"`",
                );
                continue;
            };
            match value::forward(s) {
                Ok(f) if out.iter().any(|o| o.outside == f.outside) => self.err(
                    item.span(),
                    format!(
                        "{}/{} is forwarded twice in this door: keep one",
                        f.outside.port, f.outside.proto
                    ),
                ),
                Ok(f) => out.push(f),
                Err(e) => self.value_error(item, s, e),
            }
        }
        out
    }

    fn open(&mut self, val: &Val<'_>) -> Vec<Knock> {
        let items: Vec<&Val<'_>> = match val.get_ref() {
            DeValue::Array(a) if a.is_empty() => {
                self.err(
                    val.span(),
                    "open is empty: list the ports to open, e.g. `[\"22/tcp\"]`, or remove it",
                );
                return Vec::new();
            }
            DeValue::Array(a) => a.iter().collect(),
            _ => vec![val],
        };
        let mut out = Vec::new();
        for item in items {
            if let Some(k) = self.knocks_item(item, "open", Proto::Tcp, '/') {
                out.extend(k);
            }
        }
        out
    }
}

// The readers of the door keys (see `config::keys`); `name` is the key as written.

/// `sequence`, remembered even when the value is bad so the door is not also reported as
/// having no sequence.
pub(crate) fn sequence(
    w: &mut Cx<'_>,
    d: &mut Draft,
    name: &'static str,
    key: &Key<'_>,
    val: &Val<'_>,
) {
    let s = w.sequence(val, name, Proto::Tcp);
    d.sequence = Some((key.span().start, s.is_some()));
    if let Some(s) = s {
        d.door.sequence = SequenceSource::Fixed(s);
    }
}

/// `one_time_sequences`, remembered like `sequence`.
pub(crate) fn one_time_sequences(
    w: &mut Cx<'_>,
    d: &mut Draft,
    name: &'static str,
    key: &Key<'_>,
    val: &Val<'_>,
) {
    let at = key.span().start;
    let p = w.setting(val, name, "/etc/knockd/smtp_sequences");
    d.one_time = Some((at, p.is_some()));
    if let Some(p) = p {
        d.door.sequence = SequenceSource::OneTime {
            path: PathBuf::from(p),
            line: w.line_of(at),
        };
    }
}

/// `seq_timeout`.
pub(crate) fn seq_timeout(
    w: &mut Cx<'_>,
    d: &mut Draft,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    if let Some(t) = w.timeout(val, name, *SEQ_TIMEOUT.start()) {
        d.door.seq_timeout = t;
    }
}

/// `cmd_timeout`.
pub(crate) fn cmd_timeout(
    w: &mut Cx<'_>,
    d: &mut Draft,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    if let Some(t) = w.timeout(val, name, *CMD_TIMEOUT.start()) {
        d.door.cmd_timeout = t;
    }
}

/// `tcpflags`.
pub(crate) fn tcpflags(w: &mut Cx<'_>, d: &mut Draft, _: &'static str, _: &Key<'_>, val: &Val<'_>) {
    if let Some(f) = w.tcpflags(val) {
        d.door.tcpflags = f;
    }
}

/// `target`.
pub(crate) fn target(
    w: &mut Cx<'_>,
    d: &mut Draft,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    if let Some(s) = w.string(val, name) {
        match value::target(s) {
            Ok(ip) => d.door.target = Some(ip),
            Err(m) => w.err(val.span(), m),
        }
    }
}

/// `start_command`, alias `command`.
pub(crate) fn start_command(
    w: &mut Cx<'_>,
    d: &mut Draft,
    name: &'static str,
    key: &Key<'_>,
    val: &Val<'_>,
) {
    if let Some(c) = command(w, Some(&mut d.start_key), name, key, val) {
        d.door.start_command = c;
    }
}

/// `start_command_6`, alias `command_6`.
pub(crate) fn start_command_6(
    w: &mut Cx<'_>,
    d: &mut Draft,
    name: &'static str,
    key: &Key<'_>,
    val: &Val<'_>,
) {
    if let Some(c) = command(w, Some(&mut d.start6_key), name, key, val) {
        d.door.start_command_6 = c;
    }
}

/// `stop_command`.
pub(crate) fn stop_command(
    w: &mut Cx<'_>,
    d: &mut Draft,
    name: &'static str,
    key: &Key<'_>,
    val: &Val<'_>,
) {
    if let Some(c) = command(w, None, name, key, val) {
        d.door.stop_command = c;
    }
}

/// `stop_command_6`.
pub(crate) fn stop_command_6(
    w: &mut Cx<'_>,
    d: &mut Draft,
    name: &'static str,
    key: &Key<'_>,
    val: &Val<'_>,
) {
    if let Some(c) = command(w, None, name, key, val) {
        d.door.stop_command_6 = c;
    }
}

/// A command key's value, `None` when bad. `seen` is the spelling of the setting met
/// before, for the settings with two (`command` and `start_command` are one setting, and
/// giving both is ambiguous).
fn command(
    w: &mut Cx<'_>,
    seen: Option<&mut Option<&'static str>>,
    name: &'static str,
    key: &Key<'_>,
    val: &Val<'_>,
) -> Option<Option<CommandTemplate>> {
    if let Some(first) = seen.and_then(|seen| seen.replace(name)) {
        w.err(
            key.span(),
            format!("`{name}` and `{first}` are the same setting: keep one of them"),
        );
        return None;
    }
    let s = w.string(val, name)?;
    value::command(s, name.ends_with("_6"))
        .map_err(|m| w.err(val.span(), m))
        .ok()
}

/// `wake_on_lan`.
pub(crate) fn wake_on_lan(
    w: &mut Cx<'_>,
    d: &mut Draft,
    _: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    d.door.actions.wake_on_lan = w.wake_on_lan(val);
}

/// `mail_to`.
pub(crate) fn mail_to(w: &mut Cx<'_>, d: &mut Draft, _: &'static str, _: &Key<'_>, val: &Val<'_>) {
    d.door.actions.mail_to = w.mail_to(val);
}

/// `open`.
pub(crate) fn open(w: &mut Cx<'_>, d: &mut Draft, _: &'static str, _: &Key<'_>, val: &Val<'_>) {
    d.open_seen = true;
    d.door.actions.open = w.open(val);
}

/// `forward`.
pub(crate) fn forward(w: &mut Cx<'_>, d: &mut Draft, _: &'static str, _: &Key<'_>, val: &Val<'_>) {
    d.open_seen = true;
    d.door.actions.forward = w.forwards(val);
}

/// `open_seconds`, remembered to refuse it without `open`.
pub(crate) fn open_seconds(
    w: &mut Cx<'_>,
    d: &mut Draft,
    name: &'static str,
    key: &Key<'_>,
    val: &Val<'_>,
) {
    d.open_seconds = Some(key.span().start);
    if let Some(t) = w.timeout(val, name, *OPEN_SECONDS.start()) {
        d.door.actions.open_for = t;
    }
}

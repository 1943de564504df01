//! One `[doors.NAME]` table of the TOML format: knockd's door keys and the built-in actions.

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;

use toml::de::{DeTable, DeValue};

use super::{Cx, Key, Val, sorted};
use crate::config::model::*;
use crate::config::rotating_keys::{self, RotatingDraft};
use crate::config::value;
use crate::flags::TcpFlags;
use crate::sequence::{Knock, Proto};

/// The keys of a door table besides the rotating ones (declared in [`rotating_keys`]).
const OWN_DOOR_KEYS: [&str; 16] = [
    "sequence",
    "one_time_sequences",
    "seq_timeout",
    "tcpflags",
    "command",
    "start_command",
    "command_6",
    "start_command_6",
    "stop_command",
    "stop_command_6",
    "cmd_timeout",
    "target",
    "wake_on_lan",
    "mail_to",
    "open",
    "open_seconds",
];

/// Every key of a door table: the sequence keys, the rotating ones, then the rest.
pub(super) fn door_keys() -> impl Iterator<Item = &'static str> {
    let (sequence, rest) = OWN_DOOR_KEYS.split_at(2);
    sequence
        .iter()
        .copied()
        .chain(rotating_keys::names())
        .chain(rest.iter().copied())
}

/// The keys of a `wake_on_lan = { ... }` table.
const WOL_KEYS: [&str; 4] = ["mac", "address", "port", "interface"];

/// What a door table has said so far; `Door` is built from it at the end.
struct Draft {
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
            door: Door {
                name: name.to_owned(),
                sequence: SequenceSource::OneTime {
                    path: PathBuf::new(),
                    line: 0,
                },
                seq_timeout: DEFAULT_SEQ_TIMEOUT,
                tcpflags: TcpFlags::ANY,
                start_command: None,
                start_command_6: None,
                stop_command: None,
                stop_command_6: None,
                cmd_timeout: DEFAULT_CMD_TIMEOUT,
                target: None,
                actions: Actions::default(),
            },
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
        let at = key.span().start;
        match name {
            "sequence" | "one_time_sequences" => self.sequence_key(d, key, val),
            "seq_timeout" => {
                if let Some(t) = self.timeout(val, name, 1) {
                    d.door.seq_timeout = t;
                }
            }
            "cmd_timeout" => {
                if let Some(t) = self.timeout(val, name, 0) {
                    d.door.cmd_timeout = t;
                }
            }
            "tcpflags" => {
                if let Some(f) = self.tcpflags(val) {
                    d.door.tcpflags = f;
                }
            }
            "target" => {
                let s = self.string(val, name);
                if let Some(s) = s {
                    match value::target(s) {
                        Ok(ip) => d.door.target = Some(ip),
                        Err(m) => self.err(val.span(), m),
                    }
                }
            }
            "command" | "start_command" | "command_6" | "start_command_6" | "stop_command"
            | "stop_command_6" => self.command_key(d, key, val),
            "wake_on_lan" => d.door.actions.wake_on_lan = self.wake_on_lan(val),
            "mail_to" => d.door.actions.mail_to = self.mail_to(val),
            "open" => {
                d.open_seen = true;
                d.door.actions.open = self.open(val);
            }
            "open_seconds" => {
                d.open_seconds = Some(at);
                if let Some(t) = self.timeout(val, name, 1) {
                    d.door.actions.open_for = t;
                }
            }
            _ => {
                let elsewhere = super::OPTION_KEYS
                    .contains(&name)
                    .then_some("the `[options]` section");
                let known: Vec<&str> = door_keys().collect();
                self.unknown_key(key, &known, elsewhere);
            }
        }
    }

    /// `sequence` or `one_time_sequences`, remembered even when the value is bad so the door
    /// is not also reported as having no sequence.
    fn sequence_key(&mut self, d: &mut Draft, key: &Key<'_>, val: &Val<'_>) {
        let at = key.span().start;
        if key.get_ref() == "sequence" {
            let s = self.sequence(val, "sequence", Proto::Tcp);
            d.sequence = Some((at, s.is_some()));
            if let Some(s) = s {
                d.door.sequence = SequenceSource::Fixed(s);
            }
        } else {
            let p = self.setting(val, "one_time_sequences", "/etc/knockd/smtp_sequences");
            d.one_time = Some((at, p.is_some()));
            if let Some(p) = p {
                d.door.sequence = SequenceSource::OneTime {
                    path: PathBuf::from(p),
                    line: self.line_of(at),
                };
            }
        }
    }

    fn command_key(&mut self, d: &mut Draft, key: &Key<'_>, val: &Val<'_>) {
        let name: &'static str = match key.get_ref().as_ref() {
            "command" => "command",
            "start_command" => "start_command",
            "command_6" => "command_6",
            "start_command_6" => "start_command_6",
            "stop_command" => "stop_command",
            _ => "stop_command_6",
        };
        // `command` and `start_command` are one setting; giving both is ambiguous.
        let seen = match name {
            "command" | "start_command" => Some(&mut d.start_key),
            "command_6" | "start_command_6" => Some(&mut d.start6_key),
            _ => None,
        };
        if let Some(seen) = seen {
            if let Some(first) = seen.replace(name) {
                self.err(
                    key.span(),
                    format!("`{name}` and `{first}` are the same setting: keep one of them"),
                );
                return;
            }
        }
        let Some(s) = self.string(val, name) else {
            return;
        };
        let ipv6 = name.ends_with("_6");
        match value::command(s, ipv6) {
            Err(m) => self.err(val.span(), m),
            Ok(c) => match name {
                "command" | "start_command" => d.door.start_command = c,
                "command_6" | "start_command_6" => d.door.start_command_6 = c,
                "stop_command" => d.door.stop_command = c,
                _ => d.door.stop_command_6 = c,
            },
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

//! The keys of a rotating sequence (`secret_file`, `knocks`, `ports`, `step_seconds`, `sealed`,
//! `bind_source`), declared once: their names, defaults, ranges and meaning ([`KEYS`]), and
//! how a table's worth of them is read and checked into a [`Rotating`] ([`RotatingDraft`]).
//!
//! Both sides of a rotating door read these keys: the server in a `[doors.NAME]` table
//! (`config::toml`), the client in a profile's sequence table (knock-client's profiles). Both
//! walk their table with a [`Walker`] and hand every key to [`RotatingDraft::read`], keeping
//! only their own keys for themselves, so that the same mistake gets the same message on both
//! sides and a key added here is accepted by both. The man pages list [`KEYS`] too.

use std::fmt;
use std::num::NonZeroU32;
use std::ops::RangeInclusive;
use std::path::PathBuf;

use super::model::Rotating;
use super::value;
use super::walk::{Key, Val, Walker};
use crate::auth::PortSet;
use crate::auth::ports::DEFAULT_PORTS;

/// The default `knocks`.
pub const DEFAULT_ROTATING_KNOCKS: u8 = 3;
/// The most `knocks` a rotating door may have.
pub const MAX_ROTATING_KNOCKS: u8 = 16;
/// The range of `knocks`.
pub const ROTATING_KNOCKS: RangeInclusive<u8> = 1..=MAX_ROTATING_KNOCKS;
/// The default `step_seconds`.
pub const DEFAULT_STEP_SECONDS: u32 = 30;
/// The range of `step_seconds`: below 5 s clocks never agree, above an hour a sniffed
/// sequence stays good too long.
pub const STEP_SECONDS: RangeInclusive<u32> = 5..=3600;
/// The default `sealed`: knocks carry a MAC unless the door says otherwise.
pub const DEFAULT_SEALED: bool = true;
/// The default `bind_source`: knocks through NAT work.
pub const DEFAULT_BIND_SOURCE: bool = false;

/// One key of a rotating sequence.
#[derive(Debug, Clone, Copy)]
pub struct RotatingKey {
    /// The key as written in TOML.
    pub name: &'static str,
    /// The value taken when the key is left out; `None` for `secret_file`, which makes a
    /// sequence rotating.
    pub default: Option<Written>,
    /// The accepted numbers, for a number.
    pub range: Option<(u32, u32)>,
    /// What it does, for the man pages: `{default}` and `{range}` stand for the above.
    pub doc: &'static str,
    /// Reads the value into the draft; `None` when it is bad (already reported).
    read: fn(&mut RotatingDraft, &mut Walker<'_>, usize, &Val<'_>) -> Option<()>,
}

/// A default value, as it is written in TOML.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Written {
    /// A number.
    Number(u32),
    /// A string, written quoted.
    Text(&'static str),
    /// `true` or `false`.
    Bool(bool),
}

impl fmt::Display for Written {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Written::Number(n) => write!(f, "{n}"),
            Written::Text(s) => write!(f, "\"{s}\""),
            Written::Bool(b) => write!(f, "{b}"),
        }
    }
}

/// Every key of a rotating sequence, in the order the man pages list them.
pub const KEYS: [RotatingKey; 6] = [
    RotatingKey {
        name: "secret_file",
        default: None,
        range: None,
        doc: "Makes the door rotating (TOML only, instead of sequence): its sequence changes \
              every step_seconds, derived from the key in this file (from knock-server keygen; \
              relative to the config file; refused unless only its owner can read it). \
              knock-server pair DOOR prints the client's settings. The current step and one \
              either side are accepted; a knock for a step further off is logged with how far \
              the knocker's clock seems off. The protocol is in PROTOCOL.md.",
        read: RotatingDraft::read_secret_file,
    },
    RotatingKey {
        name: "knocks",
        default: Some(Written::Number(DEFAULT_ROTATING_KNOCKS as u32)),
        range: Some((
            *ROTATING_KNOCKS.start() as u32,
            *ROTATING_KNOCKS.end() as u32,
        )),
        doc: "Rotating doors: ports per sequence, {range} (default {default}; 2 or more when \
              sealed).",
        read: RotatingDraft::read_knocks,
    },
    RotatingKey {
        name: "ports",
        default: Some(Written::Text(DEFAULT_PORTS)),
        range: None,
        doc: "Rotating doors: the ports knocks are drawn from (default {default}), the same on \
              the client; other doors may use some of them, the server tells their knocks apart.",
        read: RotatingDraft::read_ports,
    },
    RotatingKey {
        name: "step_seconds",
        default: Some(Written::Number(DEFAULT_STEP_SECONDS)),
        range: Some((*STEP_SECONDS.start(), *STEP_SECONDS.end())),
        doc: "Rotating doors: seconds per step, {range} (default {default}).",
        read: RotatingDraft::read_step_seconds,
    },
    RotatingKey {
        name: "sealed",
        default: Some(Written::Bool(DEFAULT_SEALED)),
        range: None,
        doc: "Rotating doors: each TCP knock must carry a MAC in its sequence number, so that a \
              sniffed knock cannot be replayed and a guessed one counts for nothing (default \
              {default}; needs a client with raw sockets).",
        read: RotatingDraft::read_sealed,
    },
    RotatingKey {
        name: "bind_source",
        default: Some(Written::Bool(DEFAULT_BIND_SOURCE)),
        range: None,
        doc: "Sealed doors: the MAC covers the knocker's source address, so a knock only opens \
              for that address (default {default}: knocks through NAT work).",
        read: RotatingDraft::read_bind_source,
    },
];

impl RotatingKey {
    /// The key of this name, if it is one.
    pub fn named(name: &str) -> Option<&'static RotatingKey> {
        KEYS.iter().find(|k| k.name == name)
    }

    /// [`RotatingKey::doc`] with its default and range filled in.
    pub fn describe(&self) -> String {
        let default = self.default.map(|d| d.to_string()).unwrap_or_default();
        let range = self
            .range
            .map(|(lo, hi)| format!("{lo} to {hi}"))
            .unwrap_or_default();
        self.doc
            .replace("{default}", &default)
            .replace("{range}", &range)
    }
}

/// The names of [`KEYS`], in order.
pub fn names() -> impl Iterator<Item = &'static str> + Clone {
    KEYS.iter().map(|k| k.name)
}

/// What a table said about rotation so far: fed key by key with [`RotatingDraft::read`],
/// checked as a whole by [`RotatingDraft::finish`]. Positions are byte offsets of the keys.
#[derive(Debug, Default)]
pub struct RotatingDraft {
    /// Where `secret_file` was, and its value if valid.
    secret_file: Option<(usize, Option<String>)>,
    /// The first other key seen, and where.
    first_key: Option<(usize, &'static str)>,
    /// Any value was bad (already reported).
    bad: bool,
    knocks: Option<(usize, u8)>,
    ports: Option<(usize, PortSet)>,
    step_seconds: Option<NonZeroU32>,
    sealed: Option<(usize, bool)>,
    bind_source: Option<(usize, bool)>,
}

impl RotatingDraft {
    /// Reads `key` if it is one of [`KEYS`], reporting a bad value; `false` (and nothing
    /// reported) when it is not one of them, for the caller's own keys.
    pub fn read(&mut self, w: &mut Walker<'_>, key: &Key<'_>, val: &Val<'_>) -> bool {
        let Some(k) = RotatingKey::named(key.get_ref().as_ref()) else {
            return false;
        };
        let at = key.span().start;
        if k.name != "secret_file" {
            self.first_key.get_or_insert((at, k.name));
        }
        self.bad |= (k.read)(self, w, at, val).is_none();
        true
    }

    /// Where `secret_file` was (byte offset of the key), and whether its value was good.
    pub fn secret_file(&self) -> Option<(usize, bool)> {
        self.secret_file.as_ref().map(|(at, f)| (*at, f.is_some()))
    }

    /// The first key other than `secret_file`, and where: a table without `secret_file` must
    /// not have one.
    pub fn first_key(&self) -> Option<(usize, &'static str)> {
        self.first_key
    }

    fn read_secret_file(&mut self, w: &mut Walker<'_>, at: usize, val: &Val<'_>) -> Option<()> {
        // Remembered even when bad, so that the table still counts as rotating.
        let file = w.string(val, "secret_file").and_then(|s| {
            value::non_empty(s, "secret_file", "\"keys/ssh.key\"")
                .map_err(|m| w.err(val.span(), m))
                .ok()
                .map(str::to_owned)
        });
        let ok = file.is_some();
        self.secret_file = Some((at, file));
        ok.then_some(())
    }

    fn read_knocks(&mut self, w: &mut Walker<'_>, at: usize, val: &Val<'_>) -> Option<()> {
        let n = w.integer(val, "knocks")?;
        match u8::try_from(n) {
            Ok(k) if ROTATING_KNOCKS.contains(&k) => {
                self.knocks = Some((at, k));
                Some(())
            }
            _ => {
                let (lo, hi) = (ROTATING_KNOCKS.start(), ROTATING_KNOCKS.end());
                w.err(
                    val.span(),
                    format!("knocks = {n} is out of range: from {lo} to {hi}"),
                );
                None
            }
        }
    }

    fn read_ports(&mut self, w: &mut Walker<'_>, at: usize, val: &Val<'_>) -> Option<()> {
        let s = w.string(val, "ports")?;
        match s.parse::<PortSet>() {
            Ok(p) => {
                self.ports = Some((at, p));
                Some(())
            }
            Err(e) => {
                w.err(val.span(), format!("{e} (write e.g. \"{DEFAULT_PORTS}\")"));
                None
            }
        }
    }

    fn read_step_seconds(&mut self, w: &mut Walker<'_>, _: usize, val: &Val<'_>) -> Option<()> {
        let n = w.integer(val, "step_seconds")?;
        match u32::try_from(n).ok().filter(|s| STEP_SECONDS.contains(s)) {
            Some(s) => {
                self.step_seconds = Some(NonZeroU32::new(s)?);
                Some(())
            }
            None => {
                let (lo, hi) = (STEP_SECONDS.start(), STEP_SECONDS.end());
                w.err(
                    val.span(),
                    format!(
                        "step_seconds = {n} is out of range: from {lo} to {hi} seconds \
                         ({DEFAULT_STEP_SECONDS} suits most clocks)"
                    ),
                );
                None
            }
        }
    }

    fn read_sealed(&mut self, w: &mut Walker<'_>, at: usize, val: &Val<'_>) -> Option<()> {
        self.sealed = Some((at, w.bool(val, "sealed")?));
        Some(())
    }

    fn read_bind_source(&mut self, w: &mut Walker<'_>, at: usize, val: &Val<'_>) -> Option<()> {
        self.bind_source = Some((at, w.bool(val, "bind_source")?));
        Some(())
    }

    /// The checked [`Rotating`] once the whole table is read; `None` when there was no good
    /// `secret_file`, a value was bad, or the settings do not fit together (reported here).
    pub fn finish(&self, w: &mut Walker<'_>) -> Option<Rotating> {
        let (file_at, Some(file)) = self.secret_file.as_ref()? else {
            return None;
        };
        let knocks = self.knocks.map_or(DEFAULT_ROTATING_KNOCKS, |(_, k)| k);
        let sealed = self.sealed.map_or(DEFAULT_SEALED, |(_, s)| s);
        let bind_source = self.bind_source.map_or(DEFAULT_BIND_SOURCE, |(_, b)| b);
        let ports = self
            .ports
            .as_ref()
            .map_or_else(PortSet::default, |(_, p)| p.clone());
        let mut ok = !self.bad;
        if let Some((at, _)) = self.knocks.filter(|_| sealed && knocks < 2) {
            w.err(
                at..at,
                "a sealed door needs `knocks = 2` or more: one 24-bit seal alone falls to a \
                 flood of guesses (PROTOCOL.md, Odds)",
            );
            ok = false;
        }
        if let Some((at, _)) = self
            .ports
            .as_ref()
            .filter(|(_, p)| p.len() < u32::from(knocks))
        {
            w.err(
                *at..*at,
                format!("`ports` has fewer than the {knocks} ports a sequence needs"),
            );
            ok = false;
        }
        if let Some((at, true)) = self.bind_source.filter(|_| !sealed) {
            w.err(
                at..at,
                "`bind_source` binds the seal to the knocker's address, so it needs \
                 `sealed = true`",
            );
            ok = false;
        }
        ok.then(|| Rotating {
            secret_file: PathBuf::from(file),
            line: w.line_of(*file_at),
            knocks,
            ports,
            step_seconds: self
                .step_seconds
                .or(NonZeroU32::new(DEFAULT_STEP_SECONDS))
                .unwrap_or(NonZeroU32::MIN),
            sealed,
            bind_source,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_docs_say_the_defaults_and_ranges_declared_here() {
        let knocks = RotatingKey::named("knocks").unwrap().describe();
        assert!(knocks.contains("1 to 16 (default 3;"), "{knocks}");
        let ports = RotatingKey::named("ports").unwrap().describe();
        assert!(ports.contains("(default \"1024-65535\")"), "{ports}");
        for k in KEYS {
            assert!(!k.describe().contains('{'), "{}: {}", k.name, k.describe());
        }
        assert_eq!(DEFAULT_PORTS.parse::<PortSet>(), Ok(PortSet::default()));
    }

    #[test]
    fn leaving_a_key_out_is_writing_its_default() {
        let parse = |extra: &str| {
            let text = format!("secret_file = \"k\"\n{extra}");
            let mut w = Walker::new(std::path::Path::new("t.toml"), &text);
            let doc = w.document(&[]).unwrap();
            let mut draft = RotatingDraft::default();
            for (k, v) in super::super::walk::in_file_order(doc.get_ref()) {
                assert!(draft.read(&mut w, k, v), "{}", k.get_ref());
            }
            let r = draft.finish(&mut w);
            w.finish(r).unwrap().unwrap()
        };
        let written: String = KEYS
            .iter()
            .filter_map(|k| Some(format!("{} = {}\n", k.name, k.default?)))
            .collect();
        assert_eq!(parse(&written).line, 1);
        assert_eq!(parse(&written), parse(""));
    }
}

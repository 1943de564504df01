//! The keys of a profile's tables, declared once: their names, defaults, ranges, meaning and
//! readers ([`PROFILE_KEYS`], [`SEQUENCE_KEYS`], [`ROTATING_SEQUENCE_KEYS`]), as the server's
//! keys are in `knock_proto::config::keys`.
//!
//! The parser (`parse.rs`) reads each table through [`read_table`] and "did you mean" offers
//! these names; the man page (`man.rs`) lists them with their docs. A key shared by several
//! tables (`hits`, `delay_ms`) is one declaration used in each. The keys of a rotating
//! sequence besides these are the server's (`knock_proto::config::rotating_keys`). Adding a
//! key is a declaration here, the field of [`Draft`] its reader fills, and its use.

use std::ops::RangeInclusive;
use std::time::Duration;

use knock_proto::Proto;
use knock_proto::config::keys::Written;
use knock_proto::config::walk::{DeTable, Key, Val, Walker, in_file_order};

use super::{MAX_DELAY_MS, MAX_HIT_DELAY_MS};

/// The range of `hits`.
pub const HITS: RangeInclusive<u8> = 1..=u8::MAX;
/// The range of `delay_ms`.
pub const DELAY_MS: RangeInclusive<u64> = 0..=MAX_DELAY_MS;
/// The range of `hit_delay_ms`.
pub const HIT_DELAY_MS: RangeInclusive<u64> = 0..=MAX_HIT_DELAY_MS;

/// What one table's keys said, each `None` until given (or when bad, already reported).
/// The three kinds of table share it; each fills only what its keys read.
#[derive(Debug, Default)]
pub struct Draft<'a, 'i> {
    /// `host`.
    pub host: Option<String>,
    /// `hits`.
    pub hits: Option<u8>,
    /// `delay_ms`.
    pub delay: Option<Duration>,
    /// `hit_delay_ms`.
    pub hit_delay: Option<Duration>,
    /// `protocol`.
    pub protocol: Option<Proto>,
    /// `sequences`, read as a whole once the profile's other keys are.
    pub sequences: Option<&'a Val<'i>>,
    /// `sequence`, read once the table's other keys are.
    pub sequence: Option<&'a Val<'i>>,
    /// `door`.
    pub door: Option<String>,
}

/// Reads a key's value into the draft, reporting a bad one; gets the key's name.
type Read = for<'a, 'i> fn(&mut Walker<'_>, &mut Draft<'a, 'i>, &'static str, &'a Val<'i>);

/// One key of a profile's tables.
#[derive(Debug, Clone, Copy)]
pub struct ProfileKey {
    /// The key.
    pub name: &'static str,
    /// The value taken when it is left out, as written; `None` when that is not one value.
    pub default: Option<Written>,
    /// The accepted numbers, for a number.
    pub range: Option<(u64, u64)>,
    /// What it is, for the man page: `{default}` and `{range}` stand for the above.
    pub doc: &'static str,
    /// A value other than the default, as written (the tests read it).
    #[cfg_attr(not(test), allow(dead_code))]
    pub example: &'static str,
    read: Read,
}

impl ProfileKey {
    /// [`ProfileKey::doc`] with its default and range filled in.
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

const HOST: ProfileKey = ProfileKey {
    name: "host",
    default: None,
    range: None,
    doc: "the host to knock, a name or an address, IPv4 or IPv6",
    example: "\"198.18.0.2\"",
    read: |w, d, name, val| {
        d.host = w.string(val, name).and_then(|h| {
            let h = h.trim();
            if h.is_empty() {
                w.err(val.span(), "host is empty: write a name or an address");
                return None;
            }
            Some(h.to_owned())
        });
    },
};

const HITS_KEY: ProfileKey = ProfileKey {
    name: "hits",
    default: Some(Written::Number(1)),
    range: Some((*HITS.start() as u64, *HITS.end() as u64)),
    doc: "per port, {range}, default {default}; a sequence's own overrides its \
          profile's",
    example: "3",
    read: |w, d, name, val| d.hits = w.integer_in(val, name, HITS, "hits per port"),
};

const DELAY_MS_KEY: ProfileKey = ProfileKey {
    name: "delay_ms",
    default: Some(Written::Number(0)),
    range: Some((*DELAY_MS.start(), *DELAY_MS.end())),
    doc: "milliseconds between hits, {range}, default {default}; a sequence's own \
          overrides its profile's",
    example: "200",
    read: |w, d, name, val| {
        d.delay = w
            .integer_in(val, name, DELAY_MS, "milliseconds")
            .map(Duration::from_millis);
    },
};

const HIT_DELAY_MS_KEY: ProfileKey = ProfileKey {
    name: "hit_delay_ms",
    default: None,
    range: Some((*HIT_DELAY_MS.start(), *HIT_DELAY_MS.end())),
    doc: "milliseconds between the hits of one port, {range}, default delay_ms, and at \
          least 20 for raw IPv6 SYNs",
    example: "500",
    read: |w, d, name, val| {
        d.hit_delay = w
            .integer_in(val, name, HIT_DELAY_MS, "milliseconds")
            .map(Duration::from_millis);
    },
};

const PROTOCOL: ProfileKey = ProfileKey {
    name: "protocol",
    default: Some(Written::Text("tcp")),
    range: None,
    doc: "for ports written without one, default {default}",
    example: "\"udp\"",
    read: |w, d, name, val| {
        if let Some(p) = w.string(val, name) {
            match p.parse::<Proto>() {
                Ok(p) => d.protocol = Some(p),
                Err(e) => w.err(val.span(), e.to_string()),
            }
        }
    },
};

const SEQUENCES: ProfileKey = ProfileKey {
    name: "sequences",
    default: None,
    range: None,
    doc: "the table [profiles.NAME.sequences] of named sequences, fixed and rotating",
    example: "{ s = \"7000\", r = { secret_file = \"k\" } }",
    read: |_, d, _, val| d.sequences = Some(val),
};

const SEQUENCE: ProfileKey = ProfileKey {
    name: "sequence",
    default: None,
    range: None,
    doc: "the knocks in knockd syntax, port[:proto],..., or an array of them",
    example: "\"7000,8000:udp\"",
    read: |_, d, _, val| d.sequence = Some(val),
};

const DOOR: ProfileKey = ProfileKey {
    name: "door",
    default: None,
    range: None,
    doc: "the server's door name, default the sequence's name",
    example: "\"ssh\"",
    read: |w, d, name, val| d.door = w.string(val, name).map(str::to_owned),
};

/// The keys of a `[profiles.NAME]` table, in the order the docs list them.
pub const PROFILE_KEYS: [ProfileKey; 6] = [
    HOST,
    HITS_KEY,
    DELAY_MS_KEY,
    HIT_DELAY_MS_KEY,
    PROTOCOL,
    SEQUENCES,
];

/// The keys of a sequence written as a table.
pub const SEQUENCE_KEYS: [ProfileKey; 3] = [SEQUENCE, HITS_KEY, DELAY_MS_KEY];

/// The keys of a rotating sequence's table besides the rotating keys themselves (declared
/// once, for the server's doors too, in `knock_proto::config::rotating_keys`).
pub const ROTATING_SEQUENCE_KEYS: [ProfileKey; 3] = [DOOR, HITS_KEY, DELAY_MS_KEY];

/// The names of `keys`, in order.
pub fn names(keys: &[ProfileKey]) -> impl Iterator<Item = &'static str> + Clone + use<'_> {
    keys.iter().map(|k| k.name)
}

/// Reads every key of `table` that `keys` declares; the others go to `other` (for the
/// rotating keys, or to be reported as unknown).
pub fn read_table<'a, 'i>(
    w: &mut Walker<'_>,
    table: &'a DeTable<'i>,
    keys: &[ProfileKey],
    mut other: impl FnMut(&mut Walker<'_>, &'a Key<'i>, &'a Val<'i>),
) -> Draft<'a, 'i> {
    let mut d = Draft::default();
    for (key, val) in in_file_order(table) {
        let name = key.get_ref().as_ref();
        match keys.iter().find(|k| k.name == name) {
            Some(k) => (k.read)(w, &mut d, k.name, val),
            None => other(w, key, val),
        }
    }
    d
}

#[cfg(test)]
mod tests;

//! Our native TOML format: `[options]` and one `[doors.NAME]` table per door, knockd's keys in
//! snake_case, plus the built-in actions (`wake_on_lan`, `mail_to`, `open`, `open_seconds`).
//!
//! ```toml
//! [options]
//! log_file = "/var/log/knock.log"
//!
//! [doors.openSSH]
//! sequence = ["7000", "8000:udp", "9000"]   # or "7000,8000:udp,9000"
//! seq_timeout = 5
//! tcpflags = "syn"
//! start_command = "/usr/sbin/nft add element inet filter knocked { %IP% }"
//! ```
//!
//! The document is parsed with `toml`'s span-keeping tables (`toml::de::DeTable`) and walked
//! by hand rather than through `#[derive(Deserialize)]`: serde stops at the first problem,
//! and we want every problem at once, each at its line and column, with "did you mean" for
//! unknown keys. Syntax errors come first: while the TOML itself is broken, only those are
//! reported, since anything found in a half-parsed document could be an echo of them.

mod door;
mod rotating;

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::time::Duration;

use toml::Spanned;
use toml::de::{DeString, DeTable, DeValue};

use super::diagnostic::{Diagnostic, Diagnostics, closest};
use super::model::{Config, Options};
use super::value::{self, ValueError};

/// A value with its place in the text.
type Val<'i> = Spanned<DeValue<'i>>;
/// A key with its place in the text.
type Key<'i> = Spanned<DeString<'i>>;

/// The keys of `[options]`.
const OPTION_KEYS: [&str; 7] = [
    "use_syslog",
    "log_file",
    "pid_file",
    "interface",
    "max_attempts",
    "sendmail",
    "mail_from",
];

/// The largest `max_attempts`: at under 64 bytes an attempt, 6.4 GB. More is a typo.
const MAX_ATTEMPTS_LIMIT: i128 = 100_000_000;

/// Parses a TOML config read from `path` (used in messages only).
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    let (doc, errors) = DeTable::parse_recoverable(text);
    let mut cx = Cx {
        path,
        text,
        diags: Diagnostics::default(),
    };
    if !errors.is_empty() {
        for e in errors {
            cx.syntax_error(&e);
        }
        return cx.diags.into_result(Config {
            options: Options::default(),
            doors: Vec::new(),
        });
    }
    let mut options = Options::default();
    let mut doors = Vec::new();
    for (key, val) in sorted(doc.get_ref()) {
        match key.get_ref().as_ref() {
            "options" => {
                if let Some(table) = cx.table(val, "options") {
                    cx.options(table, &mut options);
                }
            }
            "doors" => {
                if let Some(table) = cx.table(val, "doors") {
                    for (name, door) in sorted(table) {
                        if let Some(d) = cx.door(name, door) {
                            doors.push(d);
                        }
                    }
                }
            }
            other => cx.stray_top_level(key, other, val),
        }
    }
    if doors.is_empty() && cx.diags.is_empty() {
        cx.diags.push(Diagnostic::whole_file(
            path,
            "no doors defined: add a door such as\n  [doors.openSSH]\n  \
             sequence = \"7000,8000,9000\"\n  command = \"...\"",
        ));
    }
    cx.diags.into_result(Config { options, doors })
}

/// A table's entries in file order (the map itself is sorted by name).
fn sorted<'a, 'i>(table: &'a DeTable<'i>) -> Vec<(&'a Key<'i>, &'a Val<'i>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

/// The walk's context: where we are and what we found wrong.
struct Cx<'t> {
    path: &'t Path,
    text: &'t str,
    diags: Diagnostics,
}

impl<'t> Cx<'t> {
    fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diags.push(Diagnostic::at_offset(
            self.path, self.text, span.start, message,
        ));
    }

    /// 1-based line of a byte offset.
    fn line_of(&self, offset: usize) -> usize {
        let before = self.text.get(..offset).unwrap_or(self.text);
        before.matches('\n').count() + 1
    }

    fn syntax_error(&mut self, e: &toml::de::Error) {
        let span = e.span().unwrap_or(0..0);
        let found = self.text.get(span.clone()).unwrap_or("");
        let line_start = self.text[..span.start.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = self.text[line_start..].lines().next().unwrap_or("").trim();
        let message = if e.message() == "duplicate key" && line.starts_with("[doors.") {
            format!("duplicate door `{found}`: each `[doors.NAME]` may appear only once")
        } else if e.message() == "duplicate key" && line.starts_with('[') {
            format!("duplicate section `{found}`: each section may appear only once")
        } else if e.message() == "duplicate key" {
            format!("duplicate key `{found}`: each key may appear only once in a section")
        } else {
            format!("invalid TOML: {}", e.message())
        };
        self.err(span, message);
    }

    /// A key at the top level that is neither `options` nor `doors`.
    fn stray_top_level(&mut self, key: &Key<'_>, name: &str, val: &Val<'_>) {
        if !matches!(val.get_ref(), DeValue::Table(_)) {
            self.err(
                key.span(),
                format!(
                    "`{name}` is outside any section: all settings must belong to `[options]` \
                     or to a door's `[doors.NAME]` section"
                ),
            );
            return;
        }
        let message = match closest(name, ["options", "doors"]) {
            Some(s) => format!("unknown section `[{name}]`, did you mean `[{s}]`?"),
            None => format!(
                "unknown section `[{name}]`: doors are written `[doors.{name}]`, global \
                 settings go in `[options]`"
            ),
        };
        self.err(key.span(), message);
    }

    fn unknown_key(&mut self, key: &Key<'_>, known: &[&str], other_section: Option<&str>) {
        let name = key.get_ref().as_ref();
        let message = match (closest(name, known.iter().copied()), other_section) {
            (_, Some(section)) => {
                format!("`{name}` does not belong here: it goes in {section}")
            }
            (Some(s), None) => format!("unknown key `{name}`, did you mean `{s}`?"),
            (None, None) => format!(
                "unknown key `{name}`: known keys here are {}",
                known.join(", ")
            ),
        };
        self.err(key.span(), message);
    }

    fn type_error(&mut self, val: &Val<'_>, key: &str, expected: &str) {
        let found = val.get_ref().type_str();
        let hint = match (expected, val.get_ref()) {
            (e, DeValue::String(s)) if e.contains("number") && !s.is_empty() => {
                format!(": write `{key} = {s}` without quotes")
            }
            _ => String::new(),
        };
        self.err(
            val.span(),
            format!(
                "`{key}` must be {expected}, not a{} {found}{hint}",
                article(found)
            ),
        );
    }

    fn table<'a, 'i>(&mut self, val: &'a Val<'i>, key: &str) -> Option<&'a DeTable<'i>> {
        match val.get_ref() {
            DeValue::Table(t) => Some(t),
            DeValue::Array(_) if key == "doors" => {
                self.err(
                    val.span(),
                    "doors are tables, not an array: write `[doors.NAME]`, not `[[doors]]`",
                );
                None
            }
            _ => {
                self.type_error(val, key, "a table (a `[section]`)");
                None
            }
        }
    }

    fn string<'a>(&mut self, val: &'a Val<'_>, key: &str) -> Option<&'a str> {
        match val.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.type_error(val, key, "a string");
                None
            }
        }
    }

    fn bool(&mut self, val: &Val<'_>, key: &str) -> Option<bool> {
        match val.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(val, key, "true or false");
                None
            }
        }
    }

    /// An integer, widened so that nothing a file can hold overflows.
    fn integer(&mut self, val: &Val<'_>, key: &str) -> Option<i128> {
        match val.get_ref() {
            DeValue::Integer(i) => match i128::from_str_radix(i.as_str(), i.radix()) {
                Ok(n) => Some(n),
                Err(_) => {
                    self.err(val.span(), format!("`{key}` is far too large"));
                    None
                }
            },
            DeValue::Float(_) => {
                self.err(val.span(), format!("`{key}` must be a whole number"));
                None
            }
            _ => {
                self.type_error(val, key, "a number");
                None
            }
        }
    }

    fn timeout(&mut self, val: &Val<'_>, key: &str, min: u64) -> Option<Duration> {
        let n = self.integer(val, key)?;
        value::timeout_secs(n, key, min)
            .map_err(|m| self.err(val.span(), m))
            .ok()
    }

    /// A non-empty string setting (paths, interface names).
    fn setting(&mut self, val: &Val<'_>, key: &str, example: &str) -> Option<String> {
        let s = self.string(val, key)?;
        match value::non_empty(s, key, &format!("\"{example}\"")) {
            Ok(s) => Some(s.to_owned()),
            Err(m) => {
                self.err(val.span(), m);
                None
            }
        }
    }

    /// Reports a [`ValueError`] found inside the string `content` of `val`, with the caret on
    /// the bad part when the string is written without escapes (the usual case).
    fn value_error(&mut self, val: &Val<'_>, content: &str, e: ValueError) {
        let span = val.span();
        let raw = self.text.get(span.clone()).unwrap_or("");
        let plain = raw.len() == content.len() + 2
            && (raw.starts_with('"') || raw.starts_with('\''))
            && raw.get(1..raw.len() - 1) == Some(content);
        let at = if plain {
            span.start + 1 + e.at
        } else {
            span.start
        };
        self.err(at..at, e.message);
    }

    fn options(&mut self, table: &DeTable<'_>, o: &mut Options) {
        for (key, val) in sorted(table) {
            let name = key.get_ref().as_ref();
            match name {
                "use_syslog" => {
                    if let Some(b) = self.bool(val, name) {
                        o.use_syslog = b;
                    }
                }
                "log_file" => {
                    o.log_file = self
                        .setting(val, name, "/var/log/knock.log")
                        .map(PathBuf::from)
                }
                "pid_file" => {
                    o.pid_file = self.setting(val, name, "/run/knock.pid").map(PathBuf::from)
                }
                "interface" => o.interface = self.setting(val, name, "eth0"),
                "sendmail" => {
                    if let Some(s) = self.setting(val, name, "/usr/sbin/sendmail") {
                        o.sendmail = PathBuf::from(s);
                    }
                }
                "mail_from" => {
                    let s = self.string(val, name);
                    o.mail_from = s.and_then(|s| match value::mail_address(s, name) {
                        Ok(a) => Some(a),
                        Err(m) => {
                            self.err(val.span(), m);
                            None
                        }
                    });
                }
                "max_attempts" => {
                    if let Some(n) = self.integer(val, name) {
                        match usize::try_from(n) {
                            Ok(n) if n >= 1 && i128::try_from(n).is_ok_and(|n| n <= MAX_ATTEMPTS_LIMIT) => o.max_attempts = n,
                            _ => self.err(
                                val.span(),
                                format!("max_attempts = {n} is out of range: use 1 to {MAX_ATTEMPTS_LIMIT}"),
                            ),
                        }
                    }
                }
                _ => {
                    let elsewhere = door::DOOR_KEYS
                        .contains(&name)
                        .then_some("a door's `[doors.NAME]` section");
                    self.unknown_key(key, &OPTION_KEYS, elsewhere);
                }
            }
        }
    }
}

/// "an" before a vowel sound, for "not an integer".
fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "n"
    } else {
        ""
    }
}

#[cfg(test)]
mod tests;

//! Walking a TOML document by hand, collecting every problem as a [`Diagnostic`]: the
//! machinery shared by the server's config (`config::toml`) and the client's profiles.
//!
//! Why by hand: serde stops at the first problem and says "unknown field"; a [`Walker`] goes on
//! after each problem, points at the line and column of the key or value at fault, and offers
//! "did you mean" for unknown keys. The format-specific parts (which keys exist, what a door or
//! a profile is) stay with each format; this module only knows TOML values and how to report.

use std::ops::Range;
use std::path::Path;

use toml::Spanned;
pub use toml::de::{DeString, DeTable, DeValue};

use super::diagnostic::{Diagnostic, Diagnostics, closest};
use super::value::{self, ValueError};
use crate::sequence::{Knock, Proto, Sequence};

/// A value with its place in the text.
pub type Val<'i> = Spanned<DeValue<'i>>;
/// A key with its place in the text.
pub type Key<'i> = Spanned<DeString<'i>>;

/// A table whose duplicates get named: `[doors.NAME]` is a `door`.
#[derive(Debug, Clone, Copy)]
pub struct NamedTables {
    /// The header prefix, such as `[doors.`.
    pub prefix: &'static str,
    /// What one such table is, such as `door`.
    pub noun: &'static str,
    /// How it is written, such as `[doors.NAME]`.
    pub written: &'static str,
}

/// The walk's context: the file, its text, and what was found wrong so far.
pub struct Walker<'t> {
    path: &'t Path,
    text: &'t str,
    diags: Diagnostics,
}

/// A table's entries in file order (the map itself is sorted by name).
pub fn in_file_order<'a, 'i>(table: &'a DeTable<'i>) -> Vec<(&'a Key<'i>, &'a Val<'i>)> {
    let mut entries: Vec<_> = table.iter().collect();
    entries.sort_by_key(|(k, _)| k.span().start);
    entries
}

impl<'t> Walker<'t> {
    /// A walk over `text`, read from `path` (used in messages only).
    pub fn new(path: &'t Path, text: &'t str) -> Walker<'t> {
        Walker {
            path,
            text,
            diags: Diagnostics::default(),
        }
    }

    /// Parses the document. While the TOML itself is broken only the syntax errors are
    /// reported (anything found in a half-parsed document could be an echo of them), and
    /// `None` is returned. `named` names the tables whose duplicates get their own message.
    pub fn document(&mut self, named: &[NamedTables]) -> Option<Spanned<DeTable<'t>>> {
        let (doc, errors) = DeTable::parse_recoverable(self.text);
        if errors.is_empty() {
            return Some(doc);
        }
        for e in errors {
            self.syntax_error(&e, named);
        }
        None
    }

    /// Ends the walk: `Ok(value)` when nothing was found, else every problem in line order.
    pub fn finish<T>(self, value: T) -> Result<T, Diagnostics> {
        self.diags.into_result(value)
    }

    /// How many problems were found so far (to tell whether a part added any).
    pub fn error_count(&self) -> usize {
        self.diags.0.len()
    }

    /// Reports a problem at the start of `span`.
    pub fn err(&mut self, span: Range<usize>, message: impl Into<String>) {
        self.diags.push(Diagnostic::at_offset(
            self.path, self.text, span.start, message,
        ));
    }

    /// Reports a problem with the file as a whole.
    pub fn whole_file(&mut self, message: impl Into<String>) {
        self.diags.push(Diagnostic::whole_file(self.path, message));
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let before = self.text.get(..offset).unwrap_or(self.text);
        before.matches('\n').count() + 1
    }

    fn syntax_error(&mut self, e: &toml::de::Error, named: &[NamedTables]) {
        let span = e.span().unwrap_or(0..0);
        let found = self.text.get(span.clone()).unwrap_or("");
        let line_start = self.text[..span.start.min(self.text.len())]
            .rfind('\n')
            .map_or(0, |i| i + 1);
        let line = self.text[line_start..].lines().next().unwrap_or("").trim();
        let message = if e.message() != "duplicate key" {
            format!("invalid TOML: {}", e.message())
        } else if let Some(t) = named.iter().find(|t| line.starts_with(t.prefix)) {
            format!(
                "duplicate {} `{found}`: each `{}` may appear only once",
                t.noun, t.written
            )
        } else if line.starts_with('[') {
            format!("duplicate section `{found}`: each section may appear only once")
        } else {
            format!("duplicate key `{found}`: each key may appear only once in a section")
        };
        self.err(span, message);
    }

    /// An unknown key: "did you mean" the closest of `known`, or where it belongs when
    /// `other_section` says so, or the list of known keys.
    pub fn unknown_key(&mut self, key: &Key<'_>, known: &[&str], other_section: Option<&str>) {
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

    /// A value of the wrong type; a quoted number gets told to drop the quotes.
    pub fn type_error(&mut self, val: &Val<'_>, key: &str, expected: &str) {
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

    /// A table (a `[section]` or an inline `{ ... }`).
    pub fn table<'a, 'i>(&mut self, val: &'a Val<'i>, key: &str) -> Option<&'a DeTable<'i>> {
        match val.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => {
                self.type_error(val, key, "a table (a `[section]`)");
                None
            }
        }
    }

    /// A string.
    pub fn string<'a>(&mut self, val: &'a Val<'_>, key: &str) -> Option<&'a str> {
        match val.get_ref() {
            DeValue::String(s) => Some(s.as_ref()),
            _ => {
                self.type_error(val, key, "a string");
                None
            }
        }
    }

    /// `true` or `false`.
    pub fn bool(&mut self, val: &Val<'_>, key: &str) -> Option<bool> {
        match val.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.type_error(val, key, "true or false");
                None
            }
        }
    }

    /// An integer, widened so that nothing a file can hold overflows.
    pub fn integer(&mut self, val: &Val<'_>, key: &str) -> Option<i128> {
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

    /// An integer in `range`; outside it, the message gives the range (and `unit`, such as
    /// "milliseconds", when there is one).
    pub fn integer_in<T: TryFrom<i128> + Into<i128> + Copy>(
        &mut self,
        val: &Val<'_>,
        key: &str,
        range: std::ops::RangeInclusive<T>,
        unit: &str,
    ) -> Option<T> {
        let (lo, hi) = ((*range.start()).into(), (*range.end()).into());
        // Past what i128 holds is out of range too, and says so with the range.
        let n = match val.get_ref() {
            DeValue::Integer(i) => i128::from_str_radix(i.as_str(), i.radix()).ok(),
            _ => Some(self.integer(val, key)?),
        };
        match n.map(|n| (n, T::try_from(n))) {
            Some((n, Ok(v))) if (lo..=hi).contains(&n) => Some(v),
            _ => {
                let n = self.text.get(val.span()).unwrap_or("this");
                let unit = if unit.is_empty() {
                    String::new()
                } else {
                    format!(" {unit}")
                };
                self.err(
                    val.span(),
                    format!("{key} = {n} is out of range: use {lo} to {hi}{unit}"),
                );
                None
            }
        }
    }

    /// Reports a [`ValueError`] found inside the string `content` of `val`, with the caret on
    /// the bad part when the string is written without escapes (the usual case).
    pub(crate) fn value_error(&mut self, val: &Val<'_>, content: &str, e: ValueError) {
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

    /// A knock sequence: a knockd string (`"7000,8000:udp,9000"`), or an array of strings
    /// (each `port[:proto]` or a knockd string) and port numbers, concatenated. Ports written
    /// without a protocol take `default`.
    pub fn sequence(&mut self, val: &Val<'_>, key: &str, default: Proto) -> Option<Sequence> {
        let items: Vec<&Val<'_>> = match val.get_ref() {
            DeValue::Array(a) => a.iter().collect(),
            _ => vec![val],
        };
        let mut knocks = Vec::new();
        let mut ok = true;
        for item in items {
            match self.knocks_item(item, key, default, ',') {
                Some(k) => knocks.extend(k),
                None => ok = false,
            }
        }
        if !ok {
            return None;
        }
        value::sequence(knocks)
            .map_err(|m| self.err(val.span(), m))
            .ok()
    }

    /// One string or port number of a `sequence` or `open` list; `separator` is `,` where a
    /// string may hold several knocks.
    pub(crate) fn knocks_item(
        &mut self,
        item: &Val<'_>,
        key: &str,
        default: Proto,
        separator: char,
    ) -> Option<Vec<Knock>> {
        match item.get_ref() {
            DeValue::String(s) => {
                // `open` also takes `1723/tcp`; the `/` is only a spelling of `:`.
                let normalized = s.replace('/', ":");
                let parsed = if separator == ',' {
                    value::knocks(&normalized, default)
                } else {
                    Knock::parse_with_default(value::c_trim(&normalized), default)
                        .map(|k| vec![k])
                        .map_err(|e| ValueError {
                            message: format!(
                                "{e} (write ports to open like `22/tcp` or `1194/udp`)"
                            ),
                            at: 0,
                        })
                };
                parsed.map_err(|e| self.value_error(item, s, e)).ok()
            }
            DeValue::Integer(_) => {
                let n = self.integer(item, key)?;
                match u16::try_from(n).ok().and_then(crate::sequence::Port::new) {
                    Some(p) => Some(vec![Knock::new(p, default)]),
                    None => {
                        self.err(
                            item.span(),
                            format!("port {n} is out of range: ports go from 1 to 65535"),
                        );
                        None
                    }
                }
            }
            _ => {
                self.type_error(item, key, "a string like \"7000:udp\" or a port number");
                None
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

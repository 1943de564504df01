//! knockd.conf, read exactly as knockd 0.8 reads it, so an existing file works unchanged.
//!
//! knockd's rules (its `parseconfig()`): the file is read line by line and each line trimmed;
//! empty lines and lines starting with `#` are skipped (there are no comments after a value).
//! `[options]`, exactly that and lowercase, holds the global settings; any other `[name]` starts
//! a door. A line is split at its first `=`; keys are case-insensitive, values keep their case.
//! `UseSyslog` is the only bare word, and knockd takes it in any section. A key given twice
//! keeps its last value, except `TCPFlags`, whose lines add up flag by flag.
//!
//! Where knockd was silent or stopped at the first problem, we refuse with every problem at
//! once: unknown keys (with the likely intended one), bad ports, protocols, flags, numbers and
//! addresses, doors without a sequence or with both kinds, duplicate door names, and a file
//! without doors.

use std::path::{Path, PathBuf};

pub(crate) mod door;

use super::diagnostic::{Diagnostic, Diagnostics, closest};
use super::keys::{self, DOOR_KEYS, KnockdRead, OPTION_KEYS};
use super::model::*;
use super::value::{self, ValueError, c_trim, offset_in};
use door::DoorDraft;

/// Appended to value errors when the value holds a `#`: the classic mistake.
const COMMENT_HINT: &str =
    " (knockd.conf has no comments after a value: put `# ...` on a line of its own)";

/// Appended to value errors when the value is quoted: likely a TOML file named `.conf`.
const QUOTE_HINT: &str =
    " (knockd.conf values take no quotes; a config in TOML must be named `*.toml`)";

/// Which section the lines being read belong to.
#[derive(Debug, Clone, Copy)]
enum Section {
    /// Before the first header.
    None,
    /// `[options]`.
    Options,
    /// The door at this index of `Parser::doors`.
    Door(usize),
}

/// One key-value line, cut out of the text (so offsets can be computed).
pub(crate) struct Directive<'t> {
    line: usize,
    key_text: &'t str,
    value: &'t str,
}

/// The parse of one file: what was read so far, and every problem found. The readers of
/// [`keys`] get it with the line to read.
pub(crate) struct Parser<'t> {
    path: &'t Path,
    text: &'t str,
    diags: Diagnostics,
    options: Options,
    doors: Vec<DoorDraft>,
    /// Door name -> index in `doors` of the door that holds it (not ignored): duplicate names
    /// are found in O(1), so 10 000 doors parse in milliseconds.
    names: std::collections::HashMap<&'t str, usize>,
    section: Section,
    /// Whether any header, even a broken one, was seen (else "no doors" is the real problem).
    saw_header: bool,
}

/// Parses a knockd.conf read from `path` (used in messages only).
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    let mut p = Parser {
        path,
        text,
        diags: Diagnostics::default(),
        options: Options::default(),
        doors: Vec::new(),
        names: std::collections::HashMap::new(),
        section: Section::None,
        saw_header: false,
    };
    for (i, raw) in text.split('\n').enumerate() {
        p.line(i + 1, raw);
    }
    p.finish()
}

impl<'t> Parser<'t> {
    fn error_at(&mut self, offset: usize, message: impl Into<String>) {
        self.diags
            .push(Diagnostic::at_offset(self.path, self.text, offset, message));
    }

    /// A bad value (not a command: those may hold `#` and quotes), with a hint for the two
    /// classic mistakes.
    fn error_in(&mut self, within: &str, e: ValueError) {
        let hint = if within.starts_with(['"', '\'']) {
            QUOTE_HINT
        } else if within.contains('#') {
            COMMENT_HINT
        } else {
            ""
        };
        let at = offset_in(self.text, within) + e.at;
        self.error_at(at, format!("{}{hint}", e.message));
    }

    fn line(&mut self, number: usize, raw: &'t str) {
        let line = c_trim(raw);
        if line.is_empty() || line.starts_with('#') {
            return;
        }
        if line.starts_with('[') {
            self.header(line);
            return;
        }
        if let Section::None = self.section {
            self.error_at(
                offset_in(self.text, line),
                "all directives must belong to a section: put `[options]` or a door header \
                 such as `[openSSH]` above this line",
            );
            return;
        }
        match line.split_once('=') {
            None => self.bare_word(line),
            Some((key, value)) => self.directive(Directive {
                line: number,
                key_text: c_trim(key),
                value: c_trim(value),
            }),
        }
    }

    fn header(&mut self, line: &'t str) {
        self.saw_header = true;
        let at = offset_in(self.text, line);
        let Some(name) = line.strip_suffix(']').map(|l| &l[1..]) else {
            match line.find(']') {
                Some(close) => self.error_at(
                    at + close + 1,
                    "broken section header: nothing may follow `]` (comments go on a line of \
                     their own)",
                ),
                None => self.error_at(
                    at + line.len(),
                    "broken section header: missing `]`; write `[name]`",
                ),
            }
            self.open_door(line.trim_start_matches('['), at + 1, true);
            return;
        };
        if name == "options" {
            self.section = Section::Options;
            return;
        }
        if let Err(message) = value::door_name(name) {
            self.error_at(at + 1, format!("bad section name: {message}"));
            self.open_door(name, at + 1, true);
            return;
        }
        let first = self.names.get(name).and_then(|&i| self.doors.get(i));
        if let Some(first) = first {
            let first_line = Diagnostic::at_offset(self.path, self.text, first.at, "").line;
            self.error_at(
                at + 1,
                format!(
                    "duplicate door `{name}` (first defined on line {first_line}): \
                     give each door its own name"
                ),
            );
            self.open_door(name, at + 1, true);
            return;
        }
        self.names.insert(name, self.doors.len());
        self.open_door(name, at + 1, false);
    }

    fn open_door(&mut self, name: &str, at: usize, ignored: bool) {
        self.doors.push(DoorDraft::new(name, at, ignored));
        self.section = Section::Door(self.doors.len() - 1);
    }

    fn bare_word(&mut self, word: &'t str) {
        let at = offset_in(self.text, word);
        match keys::knockd_key(word) {
            Some((_, KnockdRead::Word(read))) => read(&mut self.options),
            Some(_) => self.error_at(
                at + word.len(),
                format!("`{word}` needs a value: write `{word} = ...`"),
            ),
            None => {
                let msg = format!("unknown directive `{word}` (a line without `=`)");
                let msg = self.with_suggestion(msg, word);
                self.error_at(at, msg);
            }
        }
    }

    /// "did you mean" for an unknown key, in the section's own vocabulary.
    fn with_suggestion(&self, message: String, word: &str) -> String {
        let candidates = match self.section {
            Section::Options => keys::knockd_names(&OPTION_KEYS),
            _ => keys::knockd_names(&DOOR_KEYS),
        };
        match closest(word, candidates.iter().copied()) {
            Some(s) => {
                let s = if word.chars().all(|c| !c.is_ascii_uppercase()) {
                    s.to_ascii_lowercase()
                } else {
                    s.to_owned()
                };
                format!("{message}, did you mean `{s}`?")
            }
            None => {
                let all = candidates.join(", ");
                format!("{message}: known keys here are {all}")
            }
        }
    }

    fn directive(&mut self, d: Directive<'t>) {
        let key_at = offset_in(self.text, d.key_text);
        if d.key_text.is_empty() {
            self.error_at(key_at, "missing key before `=`: write `Key = value`");
            return;
        }
        let Some((name, read)) = keys::knockd_key(d.key_text) else {
            let own = match self.section {
                Section::Options => &OPTION_KEYS[..],
                _ => &DOOR_KEYS[..],
            };
            // A key of knock-server's own format: say where it can be written.
            let msg = match own
                .iter()
                .find(|k| k.knockd.is_empty() && k.name.eq_ignore_ascii_case(d.key_text))
            {
                Some(k) => format!(
                    "`{}` is a key of knock-server's TOML format, not of knockd.conf: write \
                     this config as TOML (see examples/server.toml) to use it",
                    k.name
                ),
                None => self.with_suggestion(format!("unknown key `{}`", d.key_text), d.key_text),
            };
            self.error_at(key_at, msg);
            return;
        };
        match (self.section, read) {
            (_, KnockdRead::Word(_)) => self.error_at(
                key_at,
                format!("{name} takes no value: write just `{name}` on its own line"),
            ),
            (Section::None, _) => {}
            (Section::Options, KnockdRead::Option(read)) => read(self, name, &d),
            (Section::Options, _) => self.error_at(
                key_at,
                format!(
                    "`{}` belongs in a door section such as `[openSSH]`, not in [options]",
                    d.key_text
                ),
            ),
            (Section::Door(i), KnockdRead::Door(read)) => read(self, i, name, &d),
            (Section::Door(i), _) => {
                let hint = if self.doors[i].name.eq_ignore_ascii_case("options") {
                    " (section names are case-sensitive: write `[options]`)"
                } else {
                    ""
                };
                self.error_at(
                    key_at,
                    format!(
                        "`{}` is a global setting: move it to the [options] section{hint}",
                        d.key_text
                    ),
                );
            }
        }
    }

    /// A non-empty setting of `[options]` (a path, an interface name).
    fn setting(&mut self, name: &str, d: &Directive<'t>, example: &str) -> Option<&'t str> {
        match value::non_empty(d.value, name, example) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error_at(offset_in(self.text, d.value), message);
                None
            }
        }
    }

    fn finish(mut self) -> Result<Config, Diagnostics> {
        let drafts = std::mem::take(&mut self.doors);
        let mut doors = Vec::new();
        for draft in drafts.into_iter().filter(|d| !d.ignored) {
            if let Some(door) = self.finish_door(draft) {
                doors.push(door);
            }
        }
        if !self.saw_header {
            self.diags.push(Diagnostic::whole_file(
                self.path,
                "no doors defined: add a door section such as\n  [openSSH]\n    \
                 Sequence = 7000,8000,9000\n    Command = ...",
            ));
        } else if doors.is_empty() && self.diags.is_empty() {
            // Only `[options]`: a daemon with nothing to do is a mistake.
            self.diags.push(Diagnostic::whole_file(
                self.path,
                "no doors defined: add a door section such as `[openSSH]` with a `Sequence`",
            ));
        }
        self.diags.into_result(Config {
            options: self.options,
            doors,
        })
    }
}

/// `LogFile`.
pub(crate) fn log_file<'t>(p: &mut Parser<'t>, name: &'static str, d: &Directive<'t>) {
    if let Some(v) = p.setting(name, d, "/var/log/knockd.log") {
        p.options.log_file = Some(PathBuf::from(v));
    }
}

/// `PidFile`.
pub(crate) fn pid_file<'t>(p: &mut Parser<'t>, name: &'static str, d: &Directive<'t>) {
    if let Some(v) = p.setting(name, d, "/var/run/knockd.pid") {
        p.options.pid_file = Some(PathBuf::from(v));
    }
}

/// `Interface`.
pub(crate) fn interface<'t>(p: &mut Parser<'t>, name: &'static str, d: &Directive<'t>) {
    if let Some(v) = p.setting(name, d, "eth0") {
        p.options.interface = Some(v.to_owned());
    }
}

#[cfg(test)]
mod tests;

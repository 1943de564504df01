//! knockd's one-time sequence files: one knock sequence per line, each used once.
//!
//! The format, as knockd reads and writes it: each line is trimmed; empty lines and lines
//! starting with `#` are skipped; every other line is a sequence in `Sequence` syntax
//! (`7000,8000:udp,9000`). The first such line is the door's current sequence. After a
//! successful knock knockd overwrites the *first character of that line* with `#`, in place,
//! so the next line becomes current. That is why people write the lines with a leading space:
//! without it the first digit of the port is what gets overwritten (harmless, the line is used
//! up either way). When no line is left the door is disabled.
//!
//! This module is pure: [`OneTimeSequences::consume`] returns the new file text, and
//! [`used_mark`] says which bytes of a fresh read of the file to overwrite; the server does
//! the latter, in place, so that lines an admin appended meanwhile stay. Unlike knockd, which silently skips a malformed line, a bad line is
//! an error here, so a typo cannot quietly shorten the list.

use std::path::{Path, PathBuf};

use crate::config::diagnostic::{Diagnostic, Diagnostics};
use crate::config::value::{self, c_trim, offset_in};
use crate::sequence::{Proto, Sequence};

/// An unused line of the file.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Entry {
    /// 1-based line number, for logs.
    line: usize,
    /// Byte offset where the line starts in the text: the character knockd overwrites.
    start: usize,
    sequence: Sequence,
}

/// A parsed one-time sequence file and which of its lines is current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneTimeSequences {
    path: PathBuf,
    text: String,
    /// The unused lines, in file order.
    entries: Vec<Entry>,
    /// Index into `entries` of the current sequence; `entries.len()` when used up.
    next: usize,
}

impl OneTimeSequences {
    /// Parses the file `path` (named in errors) with contents `text`. Every malformed line is
    /// reported. A file with no unused line parses fine; [`current`](Self::current) is then
    /// `None` and the door is disabled.
    pub fn parse(path: &Path, text: &str) -> Result<OneTimeSequences, Diagnostics> {
        let mut diags = Diagnostics::default();
        let mut entries = Vec::new();
        let mut start = 0;
        for (i, raw) in text.split('\n').enumerate() {
            let line_start = start;
            start += raw.len() + 1;
            let line = c_trim(raw);
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let parsed = value::knocks(line, Proto::Tcp).and_then(|k| {
                value::sequence(k).map_err(|message| value::ValueError { message, at: 0 })
            });
            match parsed {
                Ok(sequence) => entries.push(Entry {
                    line: i + 1,
                    start: line_start,
                    sequence,
                }),
                Err(e) => diags.push(Diagnostic::at_offset(
                    path,
                    text,
                    offset_in(text, line) + e.at,
                    format!(
                        "{}; fix the line, or start it with `#` to skip it",
                        e.message
                    ),
                )),
            }
        }
        diags.into_result(OneTimeSequences {
            path: path.to_owned(),
            text: text.to_owned(),
            entries,
            next: 0,
        })
    }

    /// The file, as named in the config.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The file's current text (with every consumed line marked).
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The sequence a knocker must send now; `None` when every line is used: the door is
    /// disabled.
    pub fn current(&self) -> Option<&Sequence> {
        self.entries.get(self.next).map(|e| &e.sequence)
    }

    /// The 1-based line of the current sequence, for the log.
    pub fn current_line(&self) -> Option<usize> {
        self.entries.get(self.next).map(|e| e.line)
    }

    /// How many unused sequences are left, the current one included.
    pub fn remaining(&self) -> usize {
        self.entries.len() - self.next
    }

    /// Marks the current line used, knockd's way: its first character becomes `#` (a multi-byte
    /// first character is replaced whole). Returns the whole new file text for the caller to
    /// write back, byte for byte what it was except for that character, and makes the next
    /// line current. `None` (and no change) when nothing was left.
    pub fn consume(&mut self) -> Option<String> {
        let entry = self.entries.get(self.next)?;
        let start = entry.start;
        let width = self.text.get(start..)?.chars().next()?.len_utf8();
        self.text.replace_range(start..start + width, "#");
        // Later lines moved if a multi-byte character shrank to one byte.
        for later in &mut self.entries[self.next + 1..] {
            later.start -= width - 1;
        }
        self.next += 1;
        Some(self.text.clone())
    }
}

/// Where to mark `used` as used in `text`, a fresh read of its file: the bytes of the first
/// character of the first unused line holding exactly that sequence (knockd overwrites that
/// character). The caller overwrites them in place with [`MARK`] and, for a multi-byte
/// character, spaces, so the file keeps its length and every other line. `None` when no
/// unused line holds `used` (the file was edited meanwhile).
pub fn used_mark(text: &str, used: &Sequence) -> Option<std::ops::Range<usize>> {
    let mut start = 0;
    for raw in text.split('\n') {
        let line_start = start;
        start += raw.len() + 1;
        let line = c_trim(raw);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let parsed = value::knocks(line, Proto::Tcp)
            .ok()
            .and_then(|k| value::sequence(k).ok());
        if parsed.as_ref() == Some(used) {
            let width = raw.chars().next()?.len_utf8();
            return Some(line_start..line_start + width);
        }
    }
    None
}

/// What marks a line used.
pub const MARK: u8 = b'#';

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> OneTimeSequences {
        match OneTimeSequences::parse(Path::new("seqs"), text) {
            Ok(s) => s,
            Err(e) => panic!("{e}"),
        }
    }

    #[test]
    fn skips_comments_and_blank_lines_and_marks_the_first_character() {
        let text = "# used\n\n 1,2,3\n  # indented comment\n4:udp,5\r\n 6\n";
        let mut s = parse(text);
        assert_eq!(s.remaining(), 3);
        assert_eq!(s.current(), Some(&"1,2,3".parse().unwrap()));
        assert_eq!(s.current_line(), Some(3));

        let after = s.consume().unwrap();
        assert_eq!(
            after,
            "# used\n\n#1,2,3\n  # indented comment\n4:udp,5\r\n 6\n"
        );
        assert_eq!(s.current(), Some(&"4:udp,5".parse().unwrap()));
        assert_eq!(s.current_line(), Some(5));

        // No leading space: the port's first digit is what gets overwritten, as in knockd.
        let after = s.consume().unwrap();
        assert_eq!(
            after,
            "# used\n\n#1,2,3\n  # indented comment\n#:udp,5\r\n 6\n"
        );
        assert_eq!(s.current(), Some(&"6".parse().unwrap()));

        let after = s.consume().unwrap();
        assert!(after.ends_with("\n#6\n"));
        assert_eq!(s.current(), None);
        assert_eq!(s.remaining(), 0);
        assert_eq!(s.consume(), None);
        assert_eq!(s.text(), after);

        // What we wrote parses back to the same state.
        assert_eq!(parse(&after).current(), None);
    }

    #[test]
    fn a_rewritten_file_continues_where_it_left_off() {
        let mut s = parse(" 1\n 2\n");
        let after = s.consume().unwrap();
        assert_eq!(parse(&after).current(), Some(&"2".parse().unwrap()));
    }

    #[test]
    fn multibyte_first_characters_are_replaced_whole() {
        // A line can only start with a multi-byte character if knockd would treat the line as
        // used already; build one by hand to check the byte bookkeeping.
        let mut s = parse(" 1\n 2\n");
        s.text = "é1\n 2\n".to_owned();
        s.entries[1].start += 1;
        assert_eq!(s.consume().unwrap(), "#1\n 2\n");
        assert_eq!(s.consume().unwrap(), "#1\n#2\n");
    }

    #[test]
    fn bad_lines_are_errors_with_their_line() {
        let e = OneTimeSequences::parse(Path::new("seqs"), " 1,2\n 3,x\n\n 0\n").unwrap_err();
        assert_eq!(e.0.len(), 2);
        assert_eq!((e.0[0].line, e.0[0].column), (2, Some(4)));
        assert_eq!(
            e.0[0].message,
            "`x` is not a port number: write a decimal port from 1 to 65535; fix the line, \
             or start it with `#` to skip it"
        );
        assert_eq!(e.0[1].line, 4);
    }

    #[test]
    fn an_empty_file_disables_the_door() {
        let mut s = parse("# all used\n");
        assert_eq!(s.current(), None);
        assert_eq!(s.consume(), None);
        assert_eq!(parse("").remaining(), 0);
    }

    #[test]
    fn the_mark_goes_on_the_used_line_of_a_fresh_read_whatever_was_added() {
        let used: Sequence = "1,2,3".parse().unwrap();
        // An admin prepended a line and appended others since the file was loaded.
        let text = " 9,9\n# old\n 1,2,3\n 4,5\n 7,8\n";
        let at = used_mark(text, &used).unwrap();
        assert_eq!(&text[at.clone()], " ");
        let mut marked = text.to_owned();
        marked.replace_range(at, "#");
        assert_eq!(marked, " 9,9\n# old\n#1,2,3\n 4,5\n 7,8\n");
        assert_eq!(used_mark("#1,2,3\n", &used), None);
        assert_eq!(used_mark("é1,2,3\n", &used), None, "not a sequence line");
        assert_eq!(used_mark(" 1,2\n", &used), None);
    }
}

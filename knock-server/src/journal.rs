//! Pending stop commands on disk, so that a crash never leaves a door open.
//!
//! knockd keeps the stop command in a forked child's memory: if the daemon dies between the
//! start and the stop command, the door stays open for good. We write every scheduled stop
//! command to a state file (atomically, on every change) and, at start, take over what a
//! previous run left: each stop command runs at its original time, or at once if that has
//! passed.
//!
//! One line per stop command, shell-quoted words: due time (Unix seconds), door, knocker,
//! the command as logged, then its arguments.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::load::write_atomically;

/// A stop command as stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// When it is due, as Unix seconds.
    pub due_unix: u64,
    /// The door's name.
    pub door: String,
    /// The knocker.
    pub source: IpAddr,
    /// The command as written in the log.
    pub text: String,
    /// Program and arguments, `%IP%` substituted.
    pub argv: Vec<String>,
}

impl Entry {
    fn to_line(&self) -> String {
        let mut words = vec![
            self.due_unix.to_string(),
            self.door.clone(),
            self.source.to_string(),
            self.text.clone(),
        ];
        words.extend(self.argv.iter().cloned());
        shell_words::join(words.iter().map(|w| escape_newlines(w)))
    }

    fn from_line(line: &str) -> Option<Entry> {
        let words: Vec<String> = shell_words::split(line)
            .ok()?
            .iter()
            .map(|w| unescape_newlines(w))
            .collect();
        let [due, door, source, text, argv @ ..] = words.as_slice() else {
            return None;
        };
        if argv.is_empty() {
            return None;
        }
        Some(Entry {
            due_unix: due.parse().ok()?,
            door: door.clone(),
            source: source.parse().ok()?,
            text: text.clone(),
            argv: argv.to_vec(),
        })
    }

    /// How long from `now` until it is due (zero if overdue).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Duration::from_secs(self.due_unix.saturating_sub(now))
    }
}

/// One entry is one line, so newlines inside words (a multi-line `sh -c` script from TOML)
/// are written as `\n`, and backslashes as `\\`.
fn escape_newlines(word: &str) -> String {
    word.replace('\\', "\\\\").replace('\n', "\\n")
}

fn unescape_newlines(word: &str) -> String {
    let mut out = String::with_capacity(word.len());
    let mut chars = word.chars();
    while let Some(c) = chars.next() {
        match (c, chars.clone().next()) {
            ('\\', Some('n')) => {
                out.push('\n');
                chars.next();
            }
            ('\\', Some('\\')) => {
                out.push('\\');
                chars.next();
            }
            _ => out.push(c),
        }
    }
    out
}

/// Unix seconds `after` from `now`.
pub fn due_unix(now: SystemTime, after: Duration) -> u64 {
    (now + after)
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

/// The state file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    /// Set after a failed write, so the error is logged once, not on every knock.
    failing: bool,
}

impl Journal {
    /// Opens the journal at `path` and returns what a previous run left in it.
    pub fn open(path: &Path) -> (Journal, Vec<Entry>) {
        let leftovers = match std::fs::read_to_string(path) {
            Ok(text) => text
                .lines()
                .filter(|l| !l.trim().is_empty())
                .filter_map(|l| {
                    let e = Entry::from_line(l);
                    if e.is_none() {
                        tracing::error!("{}: ignoring unreadable line: {l}", path.display());
                    }
                    e
                })
                .collect(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => {
                tracing::error!("cannot read {}: {e}", path.display());
                Vec::new()
            }
        };
        if let Some(dir) = path.parent() {
            let _ = std::fs::create_dir_all(dir);
        }
        let journal = Journal {
            path: path.to_owned(),
            failing: false,
        };
        (journal, leftovers)
    }

    /// Replaces the file's content with `entries`.
    pub fn save<'a>(&mut self, entries: impl Iterator<Item = &'a Entry>) {
        let text: String = entries.map(|e| e.to_line() + "\n").collect();
        match write_atomically(&self.path, &text) {
            Ok(()) => self.failing = false,
            Err(e) if !self.failing => {
                self.failing = true;
                tracing::error!(
                    "cannot save pending stop commands to {}: {e:#}; a crash now would leave doors open",
                    self.path.display()
                );
            }
            Err(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry() -> Entry {
        Entry {
            due_unix: 1_800_000_000,
            door: "open SSH".into(),
            source: "fd00::1".parse().unwrap(),
            text: "/bin/sh -c 'echo stop fd00::1'".into(),
            argv: vec![
                "/bin/sh".into(),
                "-c".into(),
                "echo 'stop' \"fd00::1\"\n".into(),
            ],
        }
    }

    #[test]
    fn entries_round_trip_through_a_line() {
        let e = entry();
        assert_eq!(Entry::from_line(&e.to_line()), Some(e));
        assert_eq!(Entry::from_line("garbage"), None);
        assert_eq!(
            Entry::from_line("1 door 198.18.0.1 text"),
            None,
            "no command"
        );
    }

    #[test]
    fn leftovers_are_returned_and_overdue_ones_are_due_now() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("state/pending");
        let (mut j, left) = Journal::open(&path);
        assert!(left.is_empty());
        j.save([entry()].iter());
        let (_, left) = Journal::open(&path);
        assert_eq!(left, vec![entry()]);
        assert_eq!(
            left[0].remaining(UNIX_EPOCH + Duration::from_secs(1_900_000_000)),
            Duration::ZERO
        );
        assert_eq!(
            left[0].remaining(UNIX_EPOCH + Duration::from_secs(1_799_999_990)),
            Duration::from_secs(10)
        );
    }
}

//! Pending stop commands on disk, so that a crash never leaves a door open.
//!
//! knockd keeps the stop command in a forked child's memory: if the daemon dies between the
//! start and the stop command, the door stays open for good. We append every opening to a
//! state file before its start command runs, and at start take over what a previous run
//! left: each stop command runs at its original time, or at once if that has passed.
//!
//! The file is an append-only journal, one record per line, shell-quoted words:
//!
//! ```text
//! open ID DUE DOOR KNOCKER TEXT ARGV...   an opening and its stop command (DUE: Unix seconds)
//! extend ID DUE                           a re-knock moved the window's end
//! close ID                                the stop command ran (or the start failed)
//! ```
//!
//! so an opening costs one appended line and one `fdatasync` whatever the number of pending
//! stops; the file is rewritten (atomically: temp file, fsync, rename) only when closed
//! records outnumber the live ones, and at start. Lines of the older format (`DUE DOOR KNOCKER
//! TEXT ARGV...`, one per scheduled stop) are read as openings.
//!
//! A line `replay-record` says that the rotating doors' replay record (`STATE.replay`) has
//! been saved: if that file is then missing at start, it was removed, and the daemon takes
//! the record as lost (refusing the knocks it could have held) rather than as empty.
//!
//! Nothing read is ever lost: a line that cannot be read (bad UTF-8, not a record) is copied
//! to `FILE.corrupt` and logged, and the readable ones are adopted; a file that cannot be
//! read at all stops the daemon with an error, rather than being taken as empty and saved
//! over. The file is opened without following symlinks. Openings of one door by one knocker
//! are adopted once, at their latest time: an extended window closes once.
//!
//! The one place where a close cannot be exact: the stop command is started before its
//! `close` record is written (the other order could lose the close). A crash between the
//! two runs that stop command once more at the next start: at most one extra run.

use std::collections::{BTreeMap, HashMap};
use std::fs::File;
use std::io::{Read as _, Write as _};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;

use crate::files::{self, Access};
use crate::load::write_private;

/// Closed records tolerated before the file is compacted (and at least as many as live ones).
const COMPACT_AFTER: usize = 64;

/// An opening's stop command as stored.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct Entry {
    /// The opening's number, unique within the file.
    pub id: u64,
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
    /// How long from `now` until it is due (zero if overdue).
    pub fn remaining(&self, now: SystemTime) -> Duration {
        let now = now.duration_since(UNIX_EPOCH).unwrap_or_default().as_secs();
        Duration::from_secs(self.due_unix.saturating_sub(now))
    }
}

/// One line of the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    /// A door opened; its stop command is due at `due_unix`.
    Open(Entry),
    /// The window `id` now ends at `due_unix`.
    Extend {
        /// The opening.
        id: u64,
        /// Its new end, Unix seconds.
        due_unix: u64,
    },
    /// The window `id` is closed: nothing is pending for it any more.
    Close {
        /// The opening.
        id: u64,
    },
}

impl Record {
    /// The record as one line, without the newline.
    pub fn to_line(&self) -> String {
        let words: Vec<String> = match self {
            Record::Open(e) => {
                let mut w = vec![
                    "open".to_owned(),
                    e.id.to_string(),
                    e.due_unix.to_string(),
                    e.door.clone(),
                    e.source.to_string(),
                    e.text.clone(),
                ];
                w.extend(e.argv.iter().cloned());
                w
            }
            Record::Extend { id, due_unix } => {
                vec!["extend".into(), id.to_string(), due_unix.to_string()]
            }
            Record::Close { id } => vec!["close".into(), id.to_string()],
        };
        shell_words::join(words.iter().map(|w| escape_newlines(w)))
    }

    /// Reads a line; `None` if it is not a record. A line of the older format is an `Open`
    /// with id 0 (the reader numbers them).
    pub fn from_line(line: &str) -> Option<Record> {
        let words: Vec<String> = shell_words::split(line)
            .ok()?
            .iter()
            .map(|w| unescape_newlines(w))
            .collect();
        match words.as_slice() {
            [kw, id, due] if kw == "extend" => Some(Record::Extend {
                id: id.parse().ok()?,
                due_unix: due.parse().ok()?,
            }),
            [kw, id] if kw == "close" => Some(Record::Close {
                id: id.parse().ok()?,
            }),
            [kw, id, rest @ ..] if kw == "open" => {
                let mut e = entry(rest)?;
                e.id = id.parse().ok()?;
                Some(Record::Open(e))
            }
            words => entry(words).map(Record::Open),
        }
    }
}

/// `DUE DOOR KNOCKER TEXT ARGV...` (at least one argument).
fn entry(words: &[String]) -> Option<Entry> {
    let [due, door, source, text, argv @ ..] = words else {
        return None;
    };
    if argv.is_empty() {
        return None;
    }
    Some(Entry {
        id: 0,
        due_unix: due.parse().ok()?,
        door: door.clone(),
        source: source.parse().ok()?,
        text: text.clone(),
        argv: argv.to_vec(),
    })
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

/// What a journal's lines say is still pending.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Replayed {
    /// Pending stop commands, one per (door, knocker) at its latest time, by id.
    pub entries: Vec<Entry>,
    /// Lines that could not be read, as they were.
    pub corrupt: Vec<Vec<u8>>,
    /// Whether the replay record was saved beside the file ([`REPLAY_SAVED`]).
    pub replay_saved: bool,
}

/// The largest opening id a journal may hold: the daemon numbers openings from 1, so a file
/// with a larger one was not written by it, and that line is set aside as unreadable. The
/// bound leaves room to number old-format lines after every id in use.
pub const MAX_ID: u64 = 1 << 62;

/// The line that says the replay record exists beside the state file.
pub const REPLAY_SAVED: &str = "replay-record";

/// Replays the journal's bytes: opens, extends and closes applied in order, unreadable lines
/// set aside, then openings of one door by one knocker merged into the latest. Pure.
pub fn replay(bytes: &[u8]) -> Replayed {
    let mut live: BTreeMap<u64, Entry> = BTreeMap::new();
    let mut legacy = Vec::new();
    let mut corrupt = Vec::new();
    let mut replay_saved = false;
    // Old-format lines are numbered above every id the file ever used.
    let mut max_id = 0;
    for raw in bytes.split(|&b| b == b'\n') {
        let record = std::str::from_utf8(raw)
            .ok()
            .map(|l| (l.trim().is_empty(), l));
        let record = match record {
            Some((true, _)) => continue,
            Some((false, line)) if line.trim() == REPLAY_SAVED => {
                replay_saved = true;
                continue;
            }
            Some((false, line)) => Record::from_line(line),
            None => None,
        };
        if let Some(
            Record::Open(Entry { id, .. }) | Record::Extend { id, .. } | Record::Close { id },
        ) = &record
        {
            // A larger id refers to no opening of ours (see below): it numbers nothing.
            if *id <= MAX_ID {
                max_id = max_id.max(*id);
            }
        }
        match record {
            Some(Record::Open(e)) if e.id > MAX_ID => corrupt.push(raw.to_vec()),
            Some(Record::Open(e)) if e.id == 0 => legacy.push(e),
            Some(Record::Open(e)) => {
                live.insert(e.id, e);
            }
            Some(Record::Extend { id, due_unix }) => {
                if let Some(e) = live.get_mut(&id) {
                    e.due_unix = due_unix;
                }
            }
            Some(Record::Close { id }) => {
                live.remove(&id);
            }
            None => corrupt.push(raw.to_vec()),
        }
    }
    for (id, mut e) in (max_id + 1..).zip(legacy) {
        e.id = id;
        live.insert(id, e);
    }
    // One window per (door, knocker): the latest end wins, the others are its older copies.
    let mut latest: HashMap<(String, IpAddr), Entry> = HashMap::new();
    for e in live.into_values() {
        let key = (e.door.clone(), e.source);
        match latest.get(&key) {
            Some(kept) if kept.due_unix >= e.due_unix => {}
            _ => {
                latest.insert(key, e);
            }
        }
    }
    let mut entries: Vec<Entry> = latest.into_values().collect();
    entries.sort_by_key(|e| e.id);
    Replayed {
        entries,
        corrupt,
        replay_saved,
    }
}

/// Live entries as a compact journal (after the replay record's line, if saved).
fn compacted<'a>(entries: impl Iterator<Item = &'a Entry>, replay_saved: bool) -> String {
    let marker = replay_saved.then(|| format!("{REPLAY_SAVED}\n"));
    marker
        .into_iter()
        .chain(entries.map(|e| Record::Open(e.clone()).to_line() + "\n"))
        .collect()
}

/// The state file, open for appending.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Option<File>,
    live: HashMap<u64, Entry>,
    /// Lines in the file that no longer describe a live opening.
    dead: usize,
    /// Set after a failed write, so the error is logged once, not on every knock.
    failing: bool,
    /// The replay record has been saved beside the file (and the file says so).
    replay_saved: bool,
}

/// Opens `path` for reading (never through a symlink, never a FIFO); `None` if it does not
/// exist.
fn open_existing(path: &Path) -> anyhow::Result<Option<File>> {
    files::open(path, Access::Read, 0o600, "the state file").with_context(|| {
        format!(
            "cannot read the state file {} (pending stop commands of a previous run): fix it \
             or pass another --state-file; starting anyway could leave doors open",
            path.display()
        )
    })
}

impl Journal {
    /// Opens the journal at `path` and returns what a previous run left pending in it. Lines
    /// that cannot be read go to `PATH.corrupt` (logged); a file that cannot be read is an
    /// error, never an empty list.
    pub fn open(path: &Path) -> anyhow::Result<(Journal, Vec<Entry>)> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let mut bytes = Vec::new();
        if let Some(mut f) = open_existing(path)? {
            f.read_to_end(&mut bytes)
                .with_context(|| format!("cannot read the state file {}", path.display()))?;
        }
        let replayed = replay(&bytes);
        if !replayed.corrupt.is_empty() {
            keep_corrupt(path, &replayed.corrupt)?;
        }
        let mut journal = Journal {
            path: path.to_owned(),
            file: None,
            live: replayed.entries.iter().map(|e| (e.id, e.clone())).collect(),
            dead: 0,
            failing: false,
            replay_saved: replayed.replay_saved,
        };
        journal
            .compact()
            .with_context(|| format!("cannot write the state file {}", path.display()))?;
        Ok((journal, replayed.entries))
    }

    /// Appends `record`; openings and extensions reach the disk before this returns. False
    /// when it could not be written (logged, once for a run of failures): an opening that
    /// is not on disk is then not [`Journal::has`] either, so its start command must not run.
    pub fn write(&mut self, record: &Record) -> bool {
        match record {
            Record::Open(e) => {
                self.live.insert(e.id, e.clone());
            }
            Record::Extend { id, due_unix } => {
                if let Some(e) = self.live.get_mut(id) {
                    e.due_unix = *due_unix;
                }
                self.dead += 1;
            }
            Record::Close { id } => {
                self.live.remove(id);
                self.dead += 2;
            }
        }
        let result = if self.dead > COMPACT_AFTER.max(self.live.len()) {
            self.compact()
        } else {
            self.append(record)
        };
        match result {
            Ok(()) => {
                if self.failing {
                    tracing::info!("{}: pending stop commands saved again", self.path.display());
                }
                self.failing = false;
                true
            }
            Err(e) => {
                if let Record::Open(e) = record {
                    self.live.remove(&e.id);
                }
                if !self.failing {
                    self.failing = true;
                    tracing::error!(
                        "cannot save pending stop commands to {}: {e:#}; doors with a stop \
                         command are not opened until it can be written (doors that only \
                         `open` ports still open: the kernel closes those on time)",
                        self.path.display()
                    );
                }
                false
            }
        }
    }

    /// Whether the opening `id` is on disk (written and not closed since).
    pub fn has(&self, id: u64) -> bool {
        self.live.contains_key(&id)
    }

    fn append(&mut self, record: &Record) -> anyhow::Result<()> {
        let file = match &mut self.file {
            Some(f) => f,
            None => self.file.insert(open_append(&self.path)?),
        };
        file.write_all((record.to_line() + "\n").as_bytes())?;
        if !matches!(record, Record::Close { .. }) {
            // A close that does not reach the disk costs at most one extra stop command.
            file.sync_data()?;
        }
        Ok(())
    }

    /// Rewrites the file with the live entries only.
    fn compact(&mut self) -> anyhow::Result<()> {
        let mut live: Vec<&Entry> = self.live.values().collect();
        live.sort_by_key(|e| e.id);
        write_private(&self.path, &compacted(live.into_iter(), self.replay_saved))?;
        self.file = Some(open_append(&self.path)?);
        self.dead = 0;
        Ok(())
    }

    /// Whether the replay record was saved beside the file: then its absence means it was
    /// removed, not that there never was one.
    pub fn replay_saved(&self) -> bool {
        self.replay_saved
    }

    /// Records that the replay record now exists beside the file (once; on disk before this
    /// returns).
    pub fn note_replay_saved(&mut self) {
        if self.replay_saved {
            return;
        }
        let noted = self
            .file
            .as_mut()
            .context("the state file is not open")
            .and_then(|f| {
                f.write_all(format!("{REPLAY_SAVED}\n").as_bytes())?;
                f.sync_data()?;
                Ok(())
            });
        match noted {
            Ok(()) => self.replay_saved = true,
            Err(e) => tracing::error!(
                "cannot note in {} that the replay record is saved: {e:#}; if the record is \
                 removed, a restart cannot tell it was lost",
                self.path.display()
            ),
        }
    }

    /// The state file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Entries still pending, as this journal knows them.
    pub fn live(&self) -> usize {
        self.live.len()
    }
}

impl Drop for Journal {
    /// At exit the file is left compact: only what is still pending (nothing after SIGTERM).
    fn drop(&mut self) {
        if self.dead > 0 {
            let _ = self.compact();
        }
    }
}

fn open_append(path: &Path) -> anyhow::Result<File> {
    files::open(path, Access::Append, 0o600, "the state file")?
        .with_context(|| format!("cannot open {} for appending", path.display()))
}

/// Adds unreadable lines to `PATH.corrupt`, so that nothing read is lost, and says so.
fn keep_corrupt(path: &Path, lines: &[Vec<u8>]) -> anyhow::Result<()> {
    let mut name = path.as_os_str().to_owned();
    name.push(".corrupt");
    let aside = PathBuf::from(name);
    let mut f = files::open(
        &aside,
        Access::Append,
        0o600,
        "the state file's corrupt lines",
    )
    .and_then(|f| f.context("not opened"))
    .with_context(|| format!("cannot keep unreadable lines aside in {}", aside.display()))?;
    for l in lines {
        f.write_all(l)?;
        f.write_all(b"\n")?;
    }
    f.sync_all()?;
    tracing::error!(
        "{}: {} unreadable line(s) kept aside in {}: their stop commands will not run by \
         themselves; check those doors and run what is needed by hand",
        path.display(),
        lines.len(),
        aside.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests;

//! What the engine asks the world to do: its outputs, performed by the executor.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::Duration;

use knock_proto::Sequence;
use knock_proto::config::{Config, Door};
use knock_proto::sequence::Knock;

use crate::exec::Kind;
use crate::journal::Record;

/// A command the engine started, to match its outcome ([`super::Engine::command_finished`]).
pub type CommandId = u64;

/// One thing to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Log a line.
    Log(LogLine),
    /// Append a record to the journal of pending stops. An `Open` must reach the disk before
    /// any later [`Effect::Run`] starts.
    Journal(Record),
    /// Run a door's command.
    Run(Run),
    /// Perform a door's built-in actions for `source` (nftables allow, Wake-on-LAN, mail);
    /// `ran` lists the commands started for this opening, for the mail notice.
    Perform {
        /// The door, as configured when it opened.
        door: Box<Door>,
        /// The knocker.
        source: IpAddr,
        /// Commands started for this opening, as logged.
        ran: Vec<String>,
    },
    /// Let `source` reach `ports` for `open_for` (putting back an allow after the table was
    /// deleted).
    Allow {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// The ports.
        ports: Vec<Knock>,
        /// For how long from now.
        open_for: Duration,
    },
    /// Take back what [`Effect::Perform`] or [`Effect::Allow`] let in.
    Revoke {
        /// The door's name.
        door: String,
        /// The knocker.
        source: IpAddr,
        /// The ports.
        ports: Vec<Knock>,
    },
    /// The nftables table is gone: put it back (the allows follow as [`Effect::Allow`]).
    ReinstallFirewall,
    /// A new config is in force: the built-in actions follow it (guarded ports, sendmail).
    Reconfigure(Box<Config>),
    /// Mark `used` as used in its one-time sequence file, in place, then read the file afresh
    /// and hand its sequences back ([`super::Engine::one_time_marked`]), so that lines an
    /// admin appended meanwhile are armed.
    MarkOneTime {
        /// The door's name, for errors.
        door: String,
        /// The file.
        path: PathBuf,
        /// The sequence just used.
        used: Sequence,
    },
    /// Reopen the LogFile by its name (logrotate moved it away).
    ReopenLog,
    /// Install this capture filter (the executor makes its program, off the capture thread).
    SetFilter(crate::filter::Filter),
    /// Save the rotating doors' replay record (atomically), before any later
    /// [`Effect::Run`] starts.
    SaveReplay {
        /// The file, beside the pending stops.
        path: PathBuf,
        /// Its new content.
        text: String,
    },
    /// Every door is closed: let running commands finish (bounded), then exit.
    Exit,
}

/// A log line: `who` (the knocker, named with `-l`), then `text`, knockd's wording.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// Its level: INFO for knockd's own lines.
    pub level: tracing::Level,
    /// The knocker the line starts with, if any: `IP: text` (or `IP (name): text`).
    pub who: Option<IpAddr>,
    /// The rest of the line.
    pub text: String,
}

impl LogLine {
    /// The line with the knocker's address (and `name`, with `-l`) in front.
    pub fn render(&self, name: Option<&str>) -> String {
        match (self.who, name) {
            (Some(ip), Some(n)) => format!("{ip} ({n}): {}", self.text),
            (Some(ip), None) => format!("{ip}: {}", self.text),
            (None, _) => self.text.clone(),
        }
    }
}

/// A command to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Run {
    /// Its number, for its outcome.
    pub id: CommandId,
    /// The door's name (`door: running command: ...`).
    pub door: String,
    /// Start or stop.
    pub kind: Kind,
    /// A start command's knocker (no knocker may hold every start the caps admit).
    pub knocker: Option<IpAddr>,
    /// The window whose stop command must be on disk before this start command runs: it
    /// is refused when its journal record could not be written.
    pub recorded_as: Option<u64>,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// The command as logged.
    pub text: String,
}

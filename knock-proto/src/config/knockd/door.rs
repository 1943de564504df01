//! One door section of a knockd.conf: its keys as read, and the checked [`Door`] made of them.

use std::path::PathBuf;
use std::time::Duration;

use super::{Directive, Key, Parser};
use crate::config::diagnostic::Diagnostic;
use crate::config::model::*;
use crate::config::value::{self, ValueError, offset_in};
use crate::flags::TcpFlags;
use crate::sequence::{Proto, Sequence};

/// A door as read so far.
#[derive(Debug)]
pub(super) struct DoorDraft {
    pub(super) name: String,
    /// Byte offset of the name in the text, for errors about the door as a whole.
    pub(super) at: usize,
    /// A duplicate or broken header: its lines are checked but the door is not kept.
    pub(super) ignored: bool,
    pub(super) sequence: Option<Sequence>,
    /// Byte offset of the last `Sequence` key, valid or not.
    pub(super) sequence_at: Option<usize>,
    pub(super) one_time: Option<PathBuf>,
    /// Byte offset and line of the last `One_Time_Sequences` key.
    pub(super) one_time_at: Option<(usize, usize)>,
    pub(super) seq_timeout: Duration,
    pub(super) tcpflags: TcpFlags,
    pub(super) start: Option<CommandTemplate>,
    pub(super) start6: Option<CommandTemplate>,
    pub(super) stop: Option<CommandTemplate>,
    pub(super) stop6: Option<CommandTemplate>,
    pub(super) cmd_timeout: Duration,
    pub(super) target: Option<std::net::IpAddr>,
}

impl DoorDraft {
    pub(super) fn new(name: &str, at: usize, ignored: bool) -> DoorDraft {
        DoorDraft {
            name: name.to_owned(),
            at,
            ignored,
            sequence: None,
            sequence_at: None,
            one_time: None,
            one_time_at: None,
            seq_timeout: DEFAULT_SEQ_TIMEOUT,
            tcpflags: TcpFlags::ANY,
            start: None,
            start6: None,
            stop: None,
            stop6: None,
            cmd_timeout: DEFAULT_CMD_TIMEOUT,
            target: None,
        }
    }
}

impl<'t> Parser<'t> {
    /// Applies one key of the door at index `i`; later values replace earlier ones.
    pub(super) fn door_key(&mut self, i: usize, key: Key, d: &Directive<'t>) {
        let v = d.value;
        let at = offset_in(self.text, v);
        match key {
            Key::Sequence => self.door_sequence(i, d),
            Key::OneTime => {
                self.doors[i].one_time_at = Some((offset_in(self.text, d.key_text), d.line));
                match value::non_empty(v, "One_Time_Sequences", "/etc/knockd/smtp_sequences") {
                    Ok(p) => self.doors[i].one_time = Some(PathBuf::from(p)),
                    Err(message) => self.error_at(at, message),
                }
            }
            Key::SeqTimeout | Key::CmdTimeout => {
                let (name, min) = if key == Key::SeqTimeout {
                    ("Seq_Timeout", 1)
                } else {
                    ("Cmd_Timeout", 0)
                };
                match value::timeout_text(v, name, min) {
                    Ok(t) if key == Key::SeqTimeout => self.doors[i].seq_timeout = t,
                    Ok(t) => self.doors[i].cmd_timeout = t,
                    Err(message) => self.error_in(v, ValueError { message, at: 0 }),
                }
            }
            Key::TcpFlags => match value::tcpflags(v) {
                Ok(f) => {
                    let door = &mut self.doors[i];
                    door.tcpflags = value::merge_tcpflags(door.tcpflags, f);
                }
                Err(e) => self.error_in(v, e),
            },
            Key::Target => match value::target(v) {
                Ok(ip) => self.doors[i].target = Some(ip),
                Err(message) => self.error_in(v, ValueError { message, at: 0 }),
            },
            Key::Start | Key::Start6 | Key::Stop | Key::Stop6 => self.door_command(i, key, v),
            // Globals never reach here (`directive` routes them).
            Key::UseSyslog | Key::LogFile | Key::PidFile | Key::Interface => {}
        }
    }

    /// `Sequence`: replaces any earlier one, and remembers the key even when the value is bad
    /// so the door is not also reported as having no sequence.
    fn door_sequence(&mut self, i: usize, d: &Directive<'t>) {
        self.doors[i].sequence_at = Some(offset_in(self.text, d.key_text));
        self.doors[i].sequence = None;
        let parsed = value::knocks(d.value, Proto::Tcp)
            .and_then(|k| value::sequence(k).map_err(|message| ValueError { message, at: 0 }));
        match parsed {
            Ok(s) => self.doors[i].sequence = Some(s),
            Err(e) => self.error_in(d.value, e),
        }
    }

    /// The four command keys; an empty value is "no command" (see [`value::command`]).
    fn door_command(&mut self, i: usize, key: Key, v: &'t str) {
        let ipv6 = matches!(key, Key::Start6 | Key::Stop6);
        match value::command(v, ipv6) {
            Err(message) => self.error_at(offset_in(self.text, v), message),
            Ok(c) => {
                let door = &mut self.doors[i];
                match key {
                    Key::Start => door.start = c,
                    Key::Start6 => door.start6 = c,
                    Key::Stop => door.stop = c,
                    _ => door.stop6 = c,
                }
            }
        }
    }

    /// The finished door, or `None` after reporting why it cannot be one.
    pub(super) fn finish_door(&mut self, d: DoorDraft) -> Option<Door> {
        let sequence = match (d.sequence_at, d.one_time_at) {
            (Some(a), Some((b, _))) => {
                let line = |at| Diagnostic::at_offset(self.path, self.text, at, "").line;
                let (first, second) = (a.min(b), a.max(b));
                let lines = (line(first), line(second));
                self.error_at(
                    second,
                    format!(
                        "door `{}` has both Sequence and One_Time_Sequences (lines {} and {}): \
                         keep one of them",
                        d.name, lines.0, lines.1
                    ),
                );
                return None;
            }
            (None, None) => {
                let hint = if d.name.eq_ignore_ascii_case("options") {
                    " (section names are case-sensitive: the global section is `[options]`)"
                } else {
                    ""
                };
                self.error_at(
                    d.at,
                    format!(
                        "door `{}` has no sequence: add `Sequence = 7000,8000,9000` or \
                         `One_Time_Sequences = /path/to/file`{hint}",
                        d.name
                    ),
                );
                return None;
            }
            (Some(_), None) => SequenceSource::Fixed(d.sequence?),
            (None, Some((_, line))) => SequenceSource::OneTime {
                path: d.one_time?,
                line,
            },
        };
        Some(Door {
            name: d.name,
            sequence,
            seq_timeout: d.seq_timeout,
            tcpflags: d.tcpflags,
            start_command: d.start,
            start_command_6: d.start6,
            stop_command: d.stop,
            stop_command_6: d.stop6,
            cmd_timeout: d.cmd_timeout,
            target: d.target,
            actions: Actions::default(),
        })
    }
}

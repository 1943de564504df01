//! One door section of a knockd.conf: its keys as read, and the checked [`Door`] made of them.

use std::path::PathBuf;
use std::time::Duration;

use super::{Directive, Parser};
use crate::config::diagnostic::Diagnostic;
use crate::config::keys::{CMD_TIMEOUT, SEQ_TIMEOUT};
use crate::config::model::*;
use crate::config::value::{self, ValueError, offset_in};
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
    /// Every other setting, as read so far (the defaults until then); its sequence is
    /// replaced by the one above when the door is finished.
    pub(super) door: Door,
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
            door: Door::new(
                name,
                SequenceSource::OneTime {
                    path: PathBuf::new(),
                    line: 0,
                },
            ),
        }
    }
}

// The readers of the door keys (see `config::keys`): each applies one line to door `i`;
// later values replace earlier ones.

/// `Sequence`: replaces any earlier one, and remembers the key even when the value is bad
/// so the door is not also reported as having no sequence.
pub(crate) fn sequence<'t>(p: &mut Parser<'t>, i: usize, _: &'static str, d: &Directive<'t>) {
    p.doors[i].sequence_at = Some(offset_in(p.text, d.key_text));
    p.doors[i].sequence = None;
    let parsed = value::knocks(d.value, Proto::Tcp)
        .and_then(|k| value::sequence(k).map_err(|message| ValueError { message, at: 0 }));
    match parsed {
        Ok(s) => p.doors[i].sequence = Some(s),
        Err(e) => p.error_in(d.value, e),
    }
}

/// `One_Time_Sequences`.
pub(crate) fn one_time_sequences<'t>(
    p: &mut Parser<'t>,
    i: usize,
    name: &'static str,
    d: &Directive<'t>,
) {
    p.doors[i].one_time_at = Some((offset_in(p.text, d.key_text), d.line));
    match value::non_empty(d.value, name, "/etc/knockd/smtp_sequences") {
        Ok(path) => p.doors[i].one_time = Some(PathBuf::from(path)),
        Err(message) => p.error_at(offset_in(p.text, d.value), message),
    }
}

/// `Seq_Timeout`, alias `Timeout`.
pub(crate) fn seq_timeout<'t>(p: &mut Parser<'t>, i: usize, name: &'static str, d: &Directive<'t>) {
    if let Some(t) = timeout(p, name, *SEQ_TIMEOUT.start(), d) {
        p.doors[i].door.seq_timeout = t;
    }
}

/// `Cmd_Timeout`.
pub(crate) fn cmd_timeout<'t>(p: &mut Parser<'t>, i: usize, name: &'static str, d: &Directive<'t>) {
    if let Some(t) = timeout(p, name, *CMD_TIMEOUT.start(), d) {
        p.doors[i].door.cmd_timeout = t;
    }
}

fn timeout<'t>(p: &mut Parser<'t>, name: &str, min: u64, d: &Directive<'t>) -> Option<Duration> {
    value::timeout_text(d.value, name, min)
        .map_err(|message| p.error_in(d.value, ValueError { message, at: 0 }))
        .ok()
}

/// `TCPFlags`: a later line adds to the earlier ones, flag by flag, as in knockd.
pub(crate) fn tcpflags<'t>(p: &mut Parser<'t>, i: usize, _: &'static str, d: &Directive<'t>) {
    match value::tcpflags(d.value) {
        Ok(f) => {
            let door = &mut p.doors[i].door;
            door.tcpflags = value::merge_tcpflags(door.tcpflags, f);
        }
        Err(e) => p.error_in(d.value, e),
    }
}

/// `Target`.
pub(crate) fn target<'t>(p: &mut Parser<'t>, i: usize, _: &'static str, d: &Directive<'t>) {
    match value::target(d.value) {
        Ok(ip) => p.doors[i].door.target = Some(ip),
        Err(message) => p.error_in(d.value, ValueError { message, at: 0 }),
    }
}

/// `Start_Command`, alias `Command`.
pub(crate) fn start_command<'t>(p: &mut Parser<'t>, i: usize, _: &'static str, d: &Directive<'t>) {
    if let Some(c) = command(p, d, false) {
        p.doors[i].door.start_command = c;
    }
}

/// `Start_Command_6`, alias `Command_6`.
pub(crate) fn start_command_6<'t>(
    p: &mut Parser<'t>,
    i: usize,
    _: &'static str,
    d: &Directive<'t>,
) {
    if let Some(c) = command(p, d, true) {
        p.doors[i].door.start_command_6 = c;
    }
}

/// `Stop_Command`.
pub(crate) fn stop_command<'t>(p: &mut Parser<'t>, i: usize, _: &'static str, d: &Directive<'t>) {
    if let Some(c) = command(p, d, false) {
        p.doors[i].door.stop_command = c;
    }
}

/// `Stop_Command_6`.
pub(crate) fn stop_command_6<'t>(p: &mut Parser<'t>, i: usize, _: &'static str, d: &Directive<'t>) {
    if let Some(c) = command(p, d, true) {
        p.doors[i].door.stop_command_6 = c;
    }
}

/// A command key's value; an empty one is "no command" (see [`value::command`]).
fn command<'t>(
    p: &mut Parser<'t>,
    d: &Directive<'t>,
    ipv6: bool,
) -> Option<Option<CommandTemplate>> {
    value::command(d.value, ipv6)
        .map_err(|message| p.error_at(offset_in(p.text, d.value), message))
        .ok()
}

impl Parser<'_> {
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
            ..d.door
        })
    }
}

//! A door opens: its start command (with its stop journaled first), a re-knock extending the
//! one window, ports held open in nftables, one-time sequences moving on.

use std::net::IpAddr;

use knock_proto::Timestamp;
use knock_proto::config::{Door, SequenceSource};
use knock_proto::tracker::DoorId;
use tracing::Level;

use super::windows::{Ports, Stop, Window};
use super::{Effect, Engine, MAX_OPEN};
use crate::exec::Kind;
use crate::journal::{Entry, Record};

impl Engine {
    /// A door opened for `source`: commands, built-in actions, one-time bookkeeping.
    pub(super) fn open(&mut self, now: Timestamp, id: DoorId, source: IpAddr) {
        let Some(door) = self.config.doors.get(id).cloned() else {
            return;
        };
        let ran = self.run_commands(now, &door, source);
        let actions = &door.actions;
        let firewall = !actions.open.is_empty() || !actions.forward.is_empty();
        if firewall {
            self.hold_ports(now, &door, source);
        }
        if firewall || actions.wake_on_lan.is_some() || !actions.mail_to.is_empty() {
            self.effects.push_back(Effect::Perform {
                door: Box::new(door.clone()),
                source,
                ran,
            });
        }
        if matches!(door.sequence, SequenceSource::OneTime { .. }) {
            self.next_one_time(id, &door);
        }
    }

    /// Remembers the ports `door` opens (or forwards) to `source` (the kernel closes them on
    /// time).
    fn hold_ports(&mut self, now: Timestamp, door: &Door, source: IpAddr) {
        let ports = Ports {
            until: now + door.actions.open_for,
            ports: door.actions.open.clone(),
        };
        let existing = self.windows.find(&door.name, source).map(|w| w.id);
        match existing {
            Some(wid) => {
                self.windows.update(wid, |w| {
                    w.ports = Some(ports);
                    w.since = now;
                });
            }
            None if self.windows.len() < MAX_OPEN => {
                let wid = self.windows.next_id();
                self.windows.put(Window {
                    id: wid,
                    door: door.name.clone(),
                    source,
                    since: now,
                    stop: None,
                    ports: Some(ports),
                    starting: None,
                });
            }
            // The kernel closes them anyway; only status and close requests miss them.
            None => {}
        }
    }

    /// Starts the door's start command and schedules its stop command; returns what ran.
    /// A re-knock while open extends the window instead.
    fn run_commands(&mut self, now: Timestamp, door: &Door, source: IpAddr) -> Vec<String> {
        let Some(start) = door.start_command_for(source) else {
            return Vec::new();
        };
        let Some(stop) = door.stop_command_for(source) else {
            let text = start.render_text(source);
            let argv = start.render(source);
            self.run(
                &door.name,
                Kind::Start,
                Some((source, None)),
                argv,
                text.clone(),
            );
            return vec![text];
        };
        let at = now + door.cmd_timeout;
        let open = self
            .windows
            .find(&door.name, source)
            .filter(|w| w.stop.is_some())
            .map(|w| w.id);
        if let Some(wid) = open {
            self.extend(wid, now, door, source);
            return Vec::new();
        }
        if self.windows.len() >= MAX_OPEN {
            self.log(
                Level::ERROR,
                Some(source),
                format!(
                    "{}: not opened: {MAX_OPEN} doors are open and waiting for their stop command \
                     (the limit); the start command did not run",
                    door.name
                ),
            );
            return Vec::new();
        }
        let wid = match self.windows.find(&door.name, source) {
            Some(w) => w.id,
            None => self.windows.next_id(),
        };
        let text = start.render_text(source);
        let stop = Stop {
            at,
            argv: stop.render(source),
            text: stop.render_text(source),
        };
        // The stop command is on disk before the start command runs: whatever happens to
        // this process from here on, the next start closes the door.
        self.effects.push_back(Effect::Journal(Record::Open(Entry {
            id: wid,
            due_unix: self.unix_secs(at),
            door: door.name.clone(),
            source,
            text: stop.text.clone(),
            argv: stop.argv.clone(),
        })));
        let argv = start.render(source);
        let cmd = self.run(
            &door.name,
            Kind::Start,
            Some((source, Some(wid))),
            argv,
            text.clone(),
        );
        let ports = self.windows.get(wid).and_then(|w| w.ports.clone());
        self.windows.put(Window {
            id: wid,
            door: door.name.clone(),
            source,
            since: now,
            stop: Some(stop),
            ports,
            starting: Some(cmd),
        });
        self.starting.insert(cmd, wid);
        vec![text]
    }

    /// Already open for this knocker: the one window is extended; running the start command
    /// again would add its firewall rule a second time.
    fn extend(&mut self, wid: u64, now: Timestamp, door: &Door, source: IpAddr) {
        let at = now + door.cmd_timeout;
        self.windows.update(wid, |w| {
            w.since = now;
            if let Some(s) = &mut w.stop {
                s.at = at;
            }
        });
        let due_unix = self.unix_secs(at);
        self.effects
            .push_back(Effect::Journal(Record::Extend { id: wid, due_unix }));
        self.log(
            Level::INFO,
            Some(source),
            format!(
                "{}: already open, extending by {}s",
                door.name,
                door.cmd_timeout.as_secs()
            ),
        );
    }
}

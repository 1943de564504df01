//! What the tracker's events do: knockd's log lines, the counts status reports, openings.

use std::fmt::Display;
use std::net::IpAddr;

use knock_proto::tracker::{DoorId, Event};
use tracing::Level;

use super::Engine;
use super::reload::door_sequence;

impl Engine {
    pub(super) fn process_events(&mut self) {
        let now = self.clock;
        let unix = self.unix_secs(now);
        let events = std::mem::take(&mut self.events);
        for ev in &events {
            self.follow_attempts(ev);
            match *ev {
                Event::Stage {
                    source,
                    door,
                    stage: 1,
                } => {
                    // Under a flood most Stage 1 lines are left out: skip formatting them.
                    if self.gate.wants(Level::INFO, true, unix) {
                        self.first_logged.insert(source, door);
                        self.door_log(Level::INFO, source, door, "Stage 1");
                    }
                }
                Event::Stage {
                    source,
                    door,
                    stage,
                } => {
                    self.first_logged.remove(source, door);
                    self.door_log(Level::INFO, source, door, format_args!("Stage {stage}"));
                }
                Event::Opened { source, door, .. } => {
                    self.first_logged.remove(source, door);
                    // knockd logs the last stage too, then OPEN SESAME.
                    if let Some(n) = self.sequence_len(door) {
                        self.door_log(Level::INFO, source, door, format_args!("Stage {n}"));
                    }
                    self.door_log(Level::INFO, source, door, "OPEN SESAME");
                    self.open(now, door, source);
                }
                Event::Failed { source, door, .. } => {
                    self.first_logged.remove(source, door);
                    if let Some(why) = ev.broken() {
                        self.door_log(Level::DEBUG, source, door, why);
                    }
                }
                Event::Expired {
                    source,
                    door,
                    stage,
                } => {
                    // The log writes a stage-1 timeout only after its Stage 1 line; a flood's
                    // attempts expire as fast as they came, and formatting each line only for
                    // the log to leave it out would cost more than the flood did.
                    if stage > 1 || self.first_logged.remove(source, door) {
                        self.door_log(
                            Level::INFO,
                            source,
                            door,
                            format_args!("sequence timeout (stage {stage})"),
                        );
                    } else {
                        (self.gate.left_out)();
                    }
                }
                Event::Evicted {
                    source,
                    door,
                    stage,
                } => {
                    self.first_logged.remove(source, door);
                    self.door_log(
                        Level::TRACE,
                        source,
                        door,
                        format_args!("evicted at stage {stage}"),
                    );
                }
            }
        }
        self.events = events;
        self.events.clear();
    }

    /// Keeps the door's counts in step: a stage-1 event starts an attempt, an opening of a
    /// multi-knock door and every failure, expiry or eviction ends one.
    fn follow_attempts(&mut self, ev: &Event) {
        let (door, delta) = match *ev {
            Event::Stage { door, stage, .. } => (door, i64::from(stage == 1)),
            Event::Opened { door, .. } => (door, -i64::from(self.sequence_len(door) > Some(1))),
            Event::Failed { door, .. }
            | Event::Expired { door, .. }
            | Event::Evicted { door, .. } => (door, -1),
        };
        let Some(c) = self.door_counts.get_mut(door) else {
            return;
        };
        c.attempts = c.attempts.saturating_add_signed(delta);
        if let Event::Failed { source, .. } = *ev {
            // Kept as it came; formatted only when status asks.
            c.last_broken = ev.broken().map(|why| (source, why));
        }
    }

    /// Logs `DOOR: what`, formatted only if the line would be written anywhere: under a
    /// flood of spoofed sources, TRACE and DEBUG lines (evictions, broken sequences) would
    /// otherwise cost a string each.
    fn door_log(&mut self, level: Level, source: IpAddr, door: DoorId, what: impl Display) {
        if !(self.gate.level)(level) {
            return;
        }
        let name = self.config.doors.get(door).map_or("?", |d| d.name.as_str());
        let text = format!("{name}: {what}");
        self.log(level, Some(source), text);
    }

    /// The length of the sequence a door currently expects.
    pub(super) fn sequence_len(&self, id: DoorId) -> Option<usize> {
        let door = self.config.doors.get(id)?;
        let one_time = self.one_time.get(id).and_then(Option::as_ref);
        door_sequence(door, one_time).map(|s| s.len())
    }

    pub(super) fn door_name(&self, id: DoorId) -> String {
        self.config
            .doors
            .get(id)
            .map_or_else(|| "?".to_owned(), |d| d.name.clone())
    }
}

//! The engine: the daemon's decisions, as a state machine with no I/O (smoltcp's shape, like
//! the tracker it drives).
//!
//! Inputs are method calls, each with the time it happens on the daemon's monotonic clock:
//! hits with their capture time ([`Engine::hits`]), the passing of time ([`Engine::tick`], at
//! [`Engine::poll_at`]), a new config ([`Engine::reload`]), SIGTERM ([`Engine::terminate`]), a
//! command's outcome ([`Engine::command_finished`]), this host's addresses changing
//! ([`Engine::set_local_addresses`]), the nftables table vanishing
//! ([`Engine::firewall_gone`]), logrotate's signal ([`Engine::reopen_log`]), a one-time file
//! marked ([`Engine::one_time_marked`]) and control requests ([`Engine::control`]). Outputs
//! are [`Effect`]s, taken with [`Engine::take_effects`] and performed by the executor: run a
//! command, allow or revoke ports, mail, journal records, one-time files, the capture filter,
//! log lines.
//!
//! Every opening gets exactly one stop: a window per (door, knocker) ([`windows`]) whose stop
//! command is journaled before its start command runs, runs once (on time, on a close
//! request, or at SIGTERM) and is then journaled closed; a re-knock moves the end of the one
//! window; a failed start command cancels its stop. After a crash the journal rebuilds the
//! windows ([`Engine::new`]'s `adopted`). See `journal.rs` for the one non-exact point.

pub mod effects;
mod host;
mod one_time;
pub mod windows;

#[cfg(test)]
mod proptests;
mod status;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use knock_proto::config::{Config, Door, SequenceSource};
use knock_proto::onetime::OneTimeSequences;
use knock_proto::tracker::{DoorId, DoorSpec, Event, Tracker};
use knock_proto::wire::Hit;
use knock_proto::{Sequence, Timestamp};
use tracing::Level;

use crate::exec::Kind;
pub use crate::executor::{Exit, Msg, Settings};
use crate::filter::{self, DoorFilter};
use crate::journal::{Entry, Record};
use crate::load::Loaded;
pub use effects::{CommandId, Effect, LogLine, Run};
use windows::{Ports, Stop, Window, WindowId, Windows};

/// Most windows open at once. An opening beyond it is refused (its start
/// command does not run) with a log line, so that a sniffed sequence replayed from many
/// addresses cannot grow the journal and the schedule without bound.
pub const MAX_OPEN: usize = 4096;

/// The engine's state; see the module documentation.
pub struct Engine {
    /// Unix milliseconds at `Timestamp::ZERO`, for the journal's and status's wall times.
    epoch_unix_ms: u64,
    /// The latest time given: never goes back.
    clock: Timestamp,
    /// The capture's link is Ethernet; `-4`: both shape the filter.
    ethernet: bool,
    ipv4_only: bool,
    config: Config,
    one_time: Vec<Option<OneTimeSequences>>,
    tracker: Tracker,
    local: Vec<IpAddr>,
    windows: Windows,
    /// Start commands running, and the window each opened.
    starting: HashMap<CommandId, WindowId>,
    next_command: CommandId,
    /// Per door, followed from the tracker's events (for status).
    door_counts: Vec<DoorCounts>,
    effects: VecDeque<Effect>,
    events: Vec<Event>,
    /// SIGTERM came: every door is closed, nothing opens any more.
    stopping: bool,
    /// Per one-time sequence file, marks asked of the executor and not yet done.
    marks_pending: HashMap<PathBuf, usize>,
}

/// What status says about one door, followed from the tracker's events.
#[derive(Debug, Clone, Default)]
struct DoorCounts {
    /// Attempts in progress.
    attempts: u64,
    /// Attempts evicted to make room, since start.
    evicted: u64,
    /// The latest broken attempt, as `IP: sequence broken at stage N`.
    last_broken: Option<String>,
}

/// What the engine is built from.
pub struct Start {
    /// The config and its one-time sequences.
    pub loaded: Loaded,
    /// This host's addresses.
    pub local: Vec<IpAddr>,
    /// Stop commands a previous run left pending (from the journal).
    pub adopted: Vec<Entry>,
    /// The wall-clock time at `now`.
    pub wall: SystemTime,
    /// The capture's link is Ethernet (VLAN variants in the filter).
    pub ethernet: bool,
    /// `-4`: IPv4 only.
    pub ipv4_only: bool,
}

impl Engine {
    /// An engine at `now` for `start`; the stop commands it adopts are scheduled at their
    /// time (or now, when overdue) and logged.
    pub fn new(now: Timestamp, start: Start) -> Engine {
        let wall_ms = start
            .wall
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_millis();
        let wall_ms = u64::try_from(wall_ms).unwrap_or(u64::MAX);
        let loaded = start.loaded;
        let mut tracker = build_tracker(&loaded.config, &loaded.one_time);
        tracker.set_local_addresses(&start.local);
        let mut engine = Engine {
            epoch_unix_ms: wall_ms.saturating_sub(now.as_millis()),
            clock: now,
            ethernet: start.ethernet,
            ipv4_only: start.ipv4_only,
            door_counts: vec![DoorCounts::default(); loaded.config.doors.len()],
            config: loaded.config,
            one_time: loaded.one_time,
            tracker,
            local: start.local,
            windows: Windows::default(),
            starting: HashMap::new(),
            next_command: 1,
            effects: VecDeque::new(),
            events: Vec::new(),
            stopping: false,
            marks_pending: HashMap::new(),
        };
        engine.adopt(now, start.adopted);
        engine
    }

    /// Takes over the stop commands a previous run left pending (it crashed, or was killed).
    fn adopt(&mut self, now: Timestamp, adopted: Vec<Entry>) {
        let wall = self.unix_secs(now);
        for e in adopted {
            let remaining = e.due_unix.saturating_sub(wall);
            self.log(
                Level::INFO,
                Some(e.source),
                format!(
                    "{}: stop command left pending by a previous run, due in {remaining}s",
                    e.door
                ),
            );
            self.windows.put(Window {
                id: e.id,
                door: e.door,
                source: e.source,
                since: now,
                stop: Some(Stop {
                    at: now + Duration::from_secs(remaining),
                    argv: e.argv,
                    text: e.text,
                }),
                ports: None,
                starting: None,
            });
        }
    }

    /// The capture filter for the current doors and addresses.
    pub fn filter(&self) -> String {
        build_filter(
            &self.config,
            &self.one_time,
            &self.local,
            self.ethernet,
            self.ipv4_only,
        )
    }

    /// Moves the effects produced so far to the end of `into`, in order.
    pub fn take_effects(&mut self, into: &mut Vec<Effect>) {
        into.extend(self.effects.drain(..));
    }

    /// When [`Engine::tick`] next has work: the earliest end of an attempt in progress or of
    /// an open window; `None` when there is nothing to wait for (idle means asleep).
    pub fn poll_at(&self) -> Option<Timestamp> {
        let attempts = self.tracker.poll_at();
        let windows = self.windows.poll_at();
        attempts.into_iter().chain(windows).min()
    }

    /// Open windows.
    pub fn open_windows(&self) -> usize {
        self.windows.len()
    }

    /// Attempts evicted to make room, since start.
    pub fn evicted(&self) -> u64 {
        self.tracker.stats().evicted
    }

    /// The cap on attempts in progress.
    pub fn max_attempts(&self) -> usize {
        self.config.options.max_attempts
    }

    /// Hits, each at its capture time, in arrival order. Call it with every hit that is
    /// waiting before [`Engine::tick`]: an attempt whose next knock is already here must not
    /// expire first.
    pub fn hits(&mut self, hits: &[(Timestamp, Hit)]) {
        if self.stopping {
            return;
        }
        let mut done = 0;
        while done < hits.len() {
            let handled = self.tracker.handle_batch(&hits[done..], &mut self.events);
            let last = hits.get(done + handled.max(1) - 1).map(|&(t, _)| t);
            if let Some(t) = last {
                self.clock = self.clock.max(t);
            }
            self.process_events();
            if handled == 0 {
                break; // Not for a non-empty batch; never spin on it.
            }
            done += handled;
        }
    }

    /// Time passed to `now`: attempts expire, windows close on time.
    pub fn tick(&mut self, now: Timestamp) {
        self.clock = self.clock.max(now);
        let now = self.clock;
        self.tracker.expire(now, &mut self.events);
        self.process_events();
        for due in self.windows.take_due(now) {
            let Some(stop) = due.stop else { continue };
            self.log(
                Level::INFO,
                Some(due.source),
                format!("{}: command timeout", due.door),
            );
            self.run_stop(due.id, &due.door, stop);
        }
    }

    /// Runs a window's stop command, then journals it closed (in that order: a crash in
    /// between costs one extra run, never a lost close).
    fn run_stop(&mut self, id: WindowId, door: &str, stop: Stop) {
        self.run(door, Kind::Stop, stop.argv, stop.text);
        self.effects
            .push_back(Effect::Journal(Record::Close { id }));
    }

    fn run(&mut self, door: &str, kind: Kind, argv: Vec<String>, text: String) -> CommandId {
        let id = self.next_command;
        self.next_command += 1;
        self.effects.push_back(Effect::Run(Run {
            id,
            door: door.to_owned(),
            kind,
            argv,
            text,
        }));
        id
    }

    fn log(&mut self, level: Level, who: Option<IpAddr>, text: String) {
        self.effects
            .push_back(Effect::Log(LogLine { level, who, text }));
    }

    /// A command finished: `ok` is false when it could not start, was refused, or exited
    /// with a failure. A failed start command leaves its door closed: the stop is cancelled
    /// (never run, journaled closed), so the next knock runs the start command again.
    pub fn command_finished(&mut self, id: CommandId, ok: bool) {
        let Some(window) = self.starting.remove(&id) else {
            return;
        };
        let cancelled = self.windows.update(window, |w| {
            if w.starting != Some(id) {
                return None;
            }
            w.starting = None;
            if ok {
                None
            } else {
                w.stop.take().map(|_| (w.door.clone(), w.source))
            }
        });
        if let Some(Some((door, source))) = cancelled {
            self.effects
                .push_back(Effect::Journal(Record::Close { id: window }));
            self.log(
                Level::WARN,
                Some(source),
                format!(
                    "{door}: start command failed: the door stays closed (knock again to retry)"
                ),
            );
        }
    }

    /// SIGTERM (or SIGINT): every door closes now (stop commands run, journaled closed), then
    /// [`Effect::Exit`]. Hits are ignored from here on.
    pub fn terminate(&mut self, now: Timestamp) {
        self.clock = self.clock.max(now);
        if self.stopping {
            return;
        }
        self.stopping = true;
        let ids: Vec<WindowId> = self.windows.iter().map(|w| w.id).collect();
        for id in ids {
            if let Some(w) = self.windows.remove(id) {
                if let Some(stop) = w.stop {
                    self.run_stop(id, &w.door, stop);
                }
            }
        }
        self.starting.clear();
        self.effects.push_back(Effect::Exit);
    }

    /// Unix seconds at `t`.
    fn unix_secs(&self, t: Timestamp) -> u64 {
        self.epoch_unix_ms.saturating_add(t.as_millis()) / 1000
    }

    fn process_events(&mut self) {
        let now = self.clock;
        let events = std::mem::take(&mut self.events);
        for ev in &events {
            self.follow_attempts(ev);
            match *ev {
                Event::Stage {
                    source,
                    door,
                    stage,
                    ..
                } => self.door_log(Level::INFO, source, door, format!("Stage {stage}")),
                Event::Opened { source, door, .. } => {
                    // knockd logs the last stage too, then OPEN SESAME.
                    if let Some(n) = self.sequence_len(door) {
                        self.door_log(Level::INFO, source, door, format!("Stage {n}"));
                    }
                    self.door_log(Level::INFO, source, door, "OPEN SESAME".into());
                    self.open(now, door, source);
                }
                Event::Failed {
                    source,
                    door,
                    stage,
                    ..
                } => self.door_log(
                    Level::DEBUG,
                    source,
                    door,
                    format!("sequence broken (stage {stage})"),
                ),
                Event::Expired {
                    source,
                    door,
                    stage,
                    ..
                } => self.door_log(
                    Level::INFO,
                    source,
                    door,
                    format!("sequence timeout (stage {stage})"),
                ),
                Event::Evicted {
                    source,
                    door,
                    stage,
                    ..
                } => self.door_log(
                    Level::TRACE,
                    source,
                    door,
                    format!("evicted at stage {stage}"),
                ),
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
        match *ev {
            Event::Evicted { .. } => c.evicted += 1,
            Event::Failed { source, stage, .. } => {
                c.last_broken = Some(format!("{source}: sequence broken at stage {stage}"));
            }
            _ => {}
        }
    }

    fn door_log(&mut self, level: Level, source: IpAddr, door: DoorId, what: String) {
        let name = self.door_name(door);
        self.log(level, Some(source), format!("{name}: {what}"));
    }

    /// The length of the sequence a door currently expects.
    fn sequence_len(&self, id: DoorId) -> Option<usize> {
        let door = self.config.doors.get(id)?;
        let one_time = self.one_time.get(id).and_then(Option::as_ref);
        door_sequence(door, one_time).map(|s| s.len())
    }

    fn door_name(&self, id: DoorId) -> String {
        self.config
            .doors
            .get(id)
            .map_or_else(|| "?".to_owned(), |d| d.name.clone())
    }

    /// A door opened for `source`: commands, built-in actions, one-time bookkeeping.
    fn open(&mut self, now: Timestamp, id: DoorId, source: IpAddr) {
        let Some(door) = self.config.doors.get(id).cloned() else {
            return;
        };
        let ran = self.run_commands(now, &door, source);
        let actions = &door.actions;
        if !actions.open.is_empty() {
            self.hold_ports(now, &door, source);
        }
        if !actions.open.is_empty() || actions.wake_on_lan.is_some() || !actions.mail_to.is_empty()
        {
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

    /// Remembers the ports `door` opens to `source` (the kernel closes them on time).
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
            self.run(&door.name, Kind::Start, start.render(source), text.clone());
            return vec![text];
        };
        let at = now + door.cmd_timeout;
        let open = self
            .windows
            .find(&door.name, source)
            .filter(|w| w.stop.is_some())
            .map(|w| w.id);
        if let Some(wid) = open {
            // Already open for this knocker: the one window is extended; running the start
            // command again would add its firewall rule a second time.
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
        let cmd = self.run(&door.name, Kind::Start, start.render(source), text.clone());
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

    /// A new config: config, tracker and filter switch together, or not at all when
    /// `compiles` refuses the new filter. Attempts in progress on doors whose sequence,
    /// timeouts, flags and target did not change carry over; open windows stay open and
    /// close as scheduled. Returns whether the new config is in force.
    pub fn reload(
        &mut self,
        mut loaded: Loaded,
        compiles: impl FnOnce(&str) -> Result<(), String>,
    ) -> bool {
        self.keep_one_time_in_flight(&mut loaded);
        let filter = build_filter(
            &loaded.config,
            &loaded.one_time,
            &self.local,
            self.ethernet,
            self.ipv4_only,
        );
        if let Err(e) = compiles(&filter) {
            self.log(
                Level::ERROR,
                None,
                format!("the new config's capture filter does not compile, keeping the running config: {e}"),
            );
            return false;
        }
        let specs = door_specs(&loaded.config, &loaded.one_time);
        let old_specs = door_specs(&self.config, &self.one_time);
        let carry: Vec<Option<DoorId>> = loaded
            .config
            .doors
            .iter()
            .zip(&specs)
            .map(|(d, spec)| {
                let old = self.config.doors.iter().position(|o| o.name == d.name)?;
                (old_specs.get(old) == Some(spec)).then_some(old)
            })
            .collect();
        let counts = carry
            .iter()
            .map(|c| {
                c.and_then(|o| self.door_counts.get(o).cloned())
                    .unwrap_or_default()
            })
            .collect();
        let old = std::mem::replace(&mut self.tracker, Tracker::new(Vec::new(), 1));
        let mut tracker = old.reload(specs, loaded.config.options.max_attempts, &carry);
        tracker.set_local_addresses(&self.local);
        set_stop_on_open(&mut tracker, &loaded.config);
        self.tracker = tracker;
        self.door_counts = counts;
        self.effects
            .push_back(Effect::Reconfigure(Box::new(loaded.config.clone())));
        self.config = loaded.config;
        self.one_time = loaded.one_time;
        self.effects.push_back(Effect::SetFilter(filter));
        true
    }
}

fn door_sequence(door: &Door, one_time: Option<&OneTimeSequences>) -> Option<Sequence> {
    match &door.sequence {
        SequenceSource::Fixed(s) => Some(s.clone()),
        SequenceSource::OneTime { .. } => one_time.and_then(|o| o.current().cloned()),
    }
}

fn door_specs(config: &Config, one_time: &[Option<OneTimeSequences>]) -> Vec<DoorSpec> {
    config
        .doors
        .iter()
        .enumerate()
        .map(|(i, d)| DoorSpec {
            sequence: door_sequence(d, one_time.get(i).and_then(Option::as_ref)),
            seq_timeout: d.seq_timeout,
            tcpflags: d.tcpflags,
            target: d.target,
        })
        .collect()
}

fn set_stop_on_open(tracker: &mut Tracker, config: &Config) {
    for (id, door) in config.doors.iter().enumerate() {
        // Opening a one-time door arms its next sequence, which the hits after it must see.
        let one_time = matches!(door.sequence, SequenceSource::OneTime { .. });
        tracker.set_stop_on_open(id, one_time);
    }
}

fn build_tracker(config: &Config, one_time: &[Option<OneTimeSequences>]) -> Tracker {
    let mut tracker = Tracker::new(door_specs(config, one_time), config.options.max_attempts);
    set_stop_on_open(&mut tracker, config);
    tracker
}

/// The filter for `config` with its current one-time sequences.
pub fn build_filter(
    config: &Config,
    one_time: &[Option<OneTimeSequences>],
    local: &[IpAddr],
    ethernet: bool,
    ipv4_only: bool,
) -> String {
    let doors: Vec<DoorFilter> = config
        .doors
        .iter()
        .enumerate()
        .map(|(i, d)| DoorFilter {
            knocks: door_sequence(d, one_time.get(i).and_then(Option::as_ref))
                .map(|s| s.knocks().to_vec())
                .unwrap_or_default(),
            tcpflags: d.tcpflags,
            target: d.target,
        })
        .collect();
    filter::build(&doors, local, ipv4_only, ethernet)
}

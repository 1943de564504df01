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
pub mod windows;

mod events;
mod host;
mod one_time;
mod open;
#[cfg(test)]
mod proptests;
mod reload;
#[cfg(test)]
mod rotating_tests;
mod status;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use knock_proto::Timestamp;
use knock_proto::auth::ReplayRecord;
use knock_proto::config::Config;
use knock_proto::onetime::OneTimeSequences;
use knock_proto::tracker::{DoorId, Event, Tracker};
use knock_proto::wire::Hit;
use tracing::Level;

use crate::exec::Kind;
pub use crate::executor::{Exit, Msg, Settings};
use crate::filter::Filter;
use crate::journal::{Entry, Record};
use crate::load::Loaded;
use crate::rotating::{Handled, Replay, RotatingDoors};
pub use effects::{CommandId, Effect, LogLine, Run};
pub use reload::build_filter;
use reload::build_tracker;
use windows::{Stop, Window, WindowId, Windows};

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
    /// `-4`: shapes the filter.
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
    /// The capture filter last asked for: an unchanged one is not installed again (libpcap
    /// drops the packets already queued when a filter is set, a knock in flight among them).
    installed_filter: Filter,
    /// Per one-time sequence file, marks asked of the executor and not yet done.
    marks_pending: HashMap<PathBuf, usize>,
    /// Rotating doors (`secret_file`): their hits never reach the tracker, since their seal,
    /// step and replay checks live in [`RotatingDoors`].
    rotating: RotatingDoors,
    /// Where their replay record is saved; `None`: not saved (tests).
    replay_file: Option<std::path::PathBuf>,
    /// Which log lines are worth formatting.
    gate: LogGate,
    /// The attempts at stage 1 whose `Stage 1` line was logged: only theirs get a `sequence
    /// timeout (stage 1)` line (the log would leave out the others), so the attempts of a
    /// flood expire without a line formatted each.
    first_logged: FirstLogged,
}

/// (source, door) of the attempts at stage 1 whose `Stage 1` line was logged: at most
/// [`FIRST_LOGGED`] (the log writes 20 such lines a second; an attempt leaves the set when
/// it moves on or ends). Every expiry and eviction of a flood's attempts looks it up, so it
/// hashes with hashbrown's foldhash (keyed per process, as the tracker's index) rather than
/// std's SipHash.
#[derive(Debug, Default)]
struct FirstLogged(hashbrown::HashSet<(IpAddr, DoorId)>);

/// Bound of [`FirstLogged`]: when full it starts again empty, and at worst a `sequence
/// timeout (stage 1)` line whose `Stage 1` line was written is left out.
const FIRST_LOGGED: usize = 4096;

impl FirstLogged {
    fn insert(&mut self, source: IpAddr, door: DoorId) {
        if self.0.len() >= FIRST_LOGGED {
            self.0.clear();
        }
        self.0.insert((source, door));
    }

    /// After a reload: door `new` carries the attempts of old door `carry[new]`.
    fn remap(&mut self, carry: &[Option<DoorId>]) {
        let old = std::mem::take(&mut self.0);
        for (new, from) in carry.iter().enumerate() {
            let Some(from) = *from else { continue };
            self.0.extend(
                old.iter()
                    .filter(|&&(_, d)| d == from)
                    .map(|&(s, _)| (s, new)),
            );
        }
    }

    /// Forgets the attempt; whether it was there.
    fn remove(&mut self, source: IpAddr, door: DoorId) -> bool {
        !self.0.is_empty() && self.0.remove(&(source, door))
    }
}

/// Which log lines the engine formats at all: under a flood most `Stage 1` lines would be
/// left out of the log (`stage_lines`), and DEBUG/TRACE lines are read by nobody unless `-v`
/// or `-D` asked for them, so formatting them is wasted. The executor asks its log; the
/// default (tests) formats every line.
#[derive(Debug, Clone, Copy)]
pub struct LogGate {
    /// Whether a line at this level would be written anywhere.
    pub level: fn(Level) -> bool,
    /// Whether a `Stage 1` line logged in this second (Unix time) would be written (counts
    /// it as left out if not). The engine's clock says which second: no clock read per line.
    pub first_stage: fn(u64) -> bool,
    /// Counts a line the engine left out without asking: a `sequence timeout (stage 1)`
    /// line whose `Stage 1` line it did not log.
    pub left_out: fn(),
}

impl LogGate {
    /// Whether a line at `level` is worth formatting at `unix_secs`: written somewhere, and
    /// for a `Stage 1` line (`first_stage`) within this second's budget (else it is counted
    /// as left out).
    pub fn wants(&self, level: Level, first_stage: bool, unix_secs: u64) -> bool {
        // `first_stage` first: under a flood it answers from an atomic, and asking the log
        // for its level costs more than that.
        (!first_stage || (self.first_stage)(unix_secs)) && (self.level)(level)
    }
}

impl Default for LogGate {
    fn default() -> LogGate {
        LogGate {
            level: |_| true,
            first_stage: |_| true,
            left_out: || {},
        }
    }
}

/// What status says about one door, followed from the tracker's events.
#[derive(Debug, Clone, Default)]
struct DoorCounts {
    /// Attempts in progress.
    attempts: u64,
    /// The latest broken attempt: who, and why.
    last_broken: Option<(IpAddr, knock_proto::tracker::Broken)>,
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
    /// `-4`: IPv4 only.
    pub ipv4_only: bool,
    /// The rotating doors' replay record as saved, and its file; `None`: start empty and
    /// save nothing (tests).
    pub replay: Option<Replay>,
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
        let epoch_unix_ms = wall_ms.saturating_sub(now.as_millis());
        let (record, replay_file) = match start.replay {
            Some(r) => (r.record, Some(r.file)),
            None => (Ok(ReplayRecord::default()), None),
        };
        let unix = epoch_unix_ms.saturating_add(now.as_millis()) / 1000;
        let (record, lost) = match record {
            Ok(record) => (record, None),
            Err(why) => (ReplayRecord::default(), Some(why)),
        };
        let mut rotating = RotatingDoors::new(&loaded, record, unix);
        let lost = lost.map(|why| {
            (
                why,
                rotating.record_lost(unix).map(|u| u.saturating_sub(unix)),
            )
        });
        let mut tracker = build_tracker(&loaded.config, &loaded.one_time);
        tracker.set_local_addresses(&start.local);
        let mut engine = Engine {
            epoch_unix_ms,
            clock: now,
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
            installed_filter: Filter::default(),
            marks_pending: HashMap::new(),
            rotating,
            replay_file,
            gate: LogGate::default(),
            first_logged: FirstLogged::default(),
        };
        engine.installed_filter = engine.filter();
        match lost {
            Some((why, Some(secs))) => {
                engine.log(
                    Level::ERROR,
                    None,
                    format!(
                        "{why}: the replay record is lost, so a knock made before this start \
                         could be replayed: rotating doors refuse every knock for the next \
                         {secs} s (the steps such a knock could use), then fresh knocks open again"
                    ),
                );
                // Saved at once: a second restart refuses them too.
                engine.save_replay();
            }
            Some((why, None)) => engine.log(
                Level::WARN,
                None,
                format!("{why}: the replay record is lost (no rotating door uses it now)"),
            ),
            None => {}
        }
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
            // What runs, and is logged when it does, is the record's argv (its text is only
            // what was logged then). The state file passed the daemon's ownership checks, so
            // the record is its own: a door since removed from the config is closed too.
            let argv = shell_words::join(&e.argv);
            if !self.config.doors.iter().any(|d| d.name == e.door) {
                self.log(
                    Level::WARN,
                    Some(e.source),
                    format!(
                        "{}: the door is no longer in the config; its pending stop command \
                         still runs, as the previous run recorded it: {argv}",
                        e.door
                    ),
                );
            }
            self.windows.put(Window {
                id: e.id,
                door: e.door,
                source: e.source,
                since: now,
                stop: Some(Stop {
                    at: now + Duration::from_secs(remaining),
                    argv: e.argv,
                    text: argv,
                }),
                ports: None,
                starting: None,
            });
        }
    }

    /// The capture filter for the current doors and addresses.
    pub fn filter(&self) -> Filter {
        build_filter(
            &self.config,
            &self.one_time,
            &self.rotating.filter_knocks(&self.config),
            &self.local,
            self.ipv4_only,
        )
    }

    /// Asks for `filter` to be installed, unless it is the one in place.
    fn set_filter(&mut self, filter: Filter) {
        if filter != self.installed_filter {
            self.installed_filter = filter.clone();
            self.effects.push_back(Effect::SetFilter(filter));
        }
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
        // Rotating doors: the next step (the filter follows it).
        let unix_ms = self.epoch_unix_ms.saturating_add(self.clock.as_millis());
        let roll = self.rotating.until_roll(unix_ms).map(|d| self.clock + d);
        attempts.into_iter().chain(windows).chain(roll).min()
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
        if !self.rotating.is_empty() {
            // Rotating doors' hits are judged here, in order; the rest go to the tracker.
            let rest: Vec<(Timestamp, Hit)> = hits
                .iter()
                .filter(|(at, hit)| !self.rotating_hit(*at, hit))
                .copied()
                .collect();
            return self.tracker_hits(&rest);
        }
        self.tracker_hits(hits);
    }

    /// Hands a hit to the rotating doors; true when it was theirs. The replay record is
    /// saved before an opening's commands run, so a crash right after still refuses its
    /// replay.
    fn rotating_hit(&mut self, at: Timestamp, hit: &Hit) -> bool {
        self.clock = self.clock.max(at);
        let (gate, unix) = (self.gate, self.unix_secs(self.clock));
        // As for the tracker's doors: Stage 1 lines within the log's budget, and no line
        // formatted at a level nobody reads.
        let wanted = |level, first_stage| gate.wants(level, first_stage, unix);
        let (handled, line) = self.rotating.handle(
            self.clock,
            hit.source,
            hit.knock,
            (hit.tcp_flags, hit.tcp_seq),
            wanted,
        );
        if let Some((level, text)) = line {
            self.log(level, Some(hit.source), text);
        }
        match handled {
            // Counted by a rotating door, and maybe another door's knock too.
            Handled::NotOurs | Handled::Shared => return false,
            Handled::Taken => {}
            Handled::Open { door } => {
                self.save_replay();
                let name = self.config.doors.get(door).map_or("?", |d| d.name.as_str());
                let text = format!("{name}: OPEN SESAME");
                self.log(Level::INFO, Some(hit.source), text);
                self.open(self.clock, door, hit.source);
            }
        }
        true
    }

    /// Saves the replay record if it changed.
    fn save_replay(&mut self) {
        let Some(text) = self.rotating.take_record() else {
            return;
        };
        if let Some(path) = &self.replay_file {
            self.effects.push_back(Effect::SaveReplay {
                path: path.clone(),
                text,
            });
        }
    }

    /// Hits for the tracker (fixed and one-time doors).
    fn tracker_hits(&mut self, hits: &[(Timestamp, Hit)]) {
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
        if self.rotating.roll(now, self.unix_secs(now)) {
            let filter = self.filter();
            self.set_filter(filter);
        }
        self.save_replay();
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
        self.run(door, Kind::Stop, None, stop.argv, stop.text);
        self.effects
            .push_back(Effect::Journal(Record::Close { id }));
    }

    /// Queues a command; `start` (for a start command): its knocker, and the window whose
    /// journal record must be on disk before it may run.
    fn run(
        &mut self,
        door: &str,
        kind: Kind,
        start: Option<(IpAddr, Option<WindowId>)>,
        argv: Vec<String>,
        text: String,
    ) -> CommandId {
        let id = self.next_command;
        self.next_command += 1;
        self.effects.push_back(Effect::Run(Run {
            id,
            door: door.to_owned(),
            kind,
            knocker: start.map(|(source, _)| source),
            recorded_as: start.and_then(|(_, window)| window),
            argv,
            text,
        }));
        id
    }

    fn log(&mut self, level: Level, who: Option<IpAddr>, text: String) {
        self.effects
            .push_back(Effect::Log(LogLine { level, who, text }));
    }

    /// A command finished: `ok` is false when it could not start or exited with a failure.
    /// A failed start command leaves its door closed: the stop is cancelled (never run,
    /// journaled closed), so the next knock runs the start command again.
    pub fn command_finished(&mut self, id: CommandId, ok: bool) {
        if let Some((door, source)) = self.start_ended(id, ok) {
            self.log(
                Level::WARN,
                Some(source),
                format!(
                    "{door}: start command failed: the door stays closed (knock again to retry)"
                ),
            );
        }
    }

    /// A start command was refused before it ran (the executor logged why: too many
    /// running, or its stop could not be recorded): as a failure, without saying it failed.
    pub fn command_refused(&mut self, id: CommandId) {
        self.start_ended(id, false);
    }

    /// The bookkeeping of a start command's end; the door and knocker when its stop was
    /// cancelled.
    fn start_ended(&mut self, id: CommandId, ok: bool) -> Option<(String, IpAddr)> {
        let window = self.starting.remove(&id)?;
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
        let cancelled = cancelled.flatten()?;
        self.effects
            .push_back(Effect::Journal(Record::Close { id: window }));
        Some(cancelled)
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

    /// Which log lines to format from now on (see [`LogGate`]).
    pub fn set_log_gate(&mut self, gate: LogGate) {
        self.gate = gate;
    }

    /// Attempts evicted to make room since start, per door that had any: `(name, count)`.
    pub fn evicted_by_door(&self) -> Vec<(String, u64)> {
        self.config
            .doors
            .iter()
            .enumerate()
            .map(|(id, d)| (d.name.clone(), self.tracker.evicted_on(id)))
            .filter(|&(_, n)| n > 0)
            .collect()
    }

    /// Unix seconds at `t`.
    fn unix_secs(&self, t: Timestamp) -> u64 {
        self.epoch_unix_ms.saturating_add(t.as_millis()) / 1000
    }
}

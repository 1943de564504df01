//! The executor: the engine's thread. It feeds the [`Engine`] its inputs (hits, time,
//! signals, command outcomes, control requests) and performs the [`Effect`]s it returns.
//!
//! Slow work never runs here: commands and journal records go, in order, to a commands
//! worker (so a stop command is on disk before its start command runs); nftables changes,
//! Wake-on-LAN and mail to an actions worker; `-l` name lookups to a resolver. Each has a
//! bounded queue whose depth is reported as `queued_effects`. A flood of openings therefore
//! never delays the hits of another knocker: they keep their capture time, and an attempt is
//! never expired while its next hit is waiting in the queue (hits first, then the clock).
//!
//! Shutdown (SIGTERM or SIGINT) cannot hang: every door is closed at once (stop commands
//! started, the nftables table removed), running commands get [`GRACE`] to finish, then their
//! process groups are killed. A second signal kills the start commands at once; stop commands,
//! which close doors, keep what is left of the grace.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, SyncSender, TryRecvError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use knock_proto::Timestamp;
use knock_proto::onetime::OneTimeSequences;
use knock_proto::wire::Hit;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};

use crate::capture::{self, Clock, Counters};
use crate::control::{self, Request, Response, Status};
use crate::engine::{Effect, Engine, LogGate, LogLine};
use crate::exec::{Done, Kind, Runner};
use crate::filter::{Filter, Framing};
use crate::journal::Journal;
use crate::load;
use crate::perform::Performer;
use workers::{
    Action, Job, Outcomes, Worker, emit, enabled, lock, lookup, mark_one_time, perform, save_replay,
};

mod workers;

/// How long running commands may finish after SIGTERM before they are killed.
pub const GRACE: Duration = Duration::from_secs(5);

/// Hits handled before the clock is looked at again, under a flood.
const DRAIN: usize = 4096;
/// Jobs waiting for the commands worker, and for the actions worker.
const JOBS: usize = 1024;
/// Lines waiting for a name lookup (`-l`); beyond it lines are logged without the name.
const LOOKUPS: usize = 256;
/// How many knockers' names `-l` remembers.
const NAME_CACHE: usize = 4096;
/// How often the nftables table is checked while a door guards ports, when nothing reports
/// its deletion at once.
const FIREWALL_CHECK_EVERY: Duration = Duration::from_secs(5);
/// How often legacy iptables is checked for our rule (its reload reports nothing).
const LEGACY_CHECK_EVERY: Duration = Duration::from_secs(1);

/// How often the firewall is checked: every second for legacy iptables, else only while
/// nothing reports its changes.
fn firewall_check_every(settings: &Settings, legacy: bool) -> Option<Duration> {
    if legacy {
        Some(LEGACY_CHECK_EVERY)
    } else {
        settings.firewall_check_every()
    }
}

/// How often the summary of ignored and dropped packets is logged, when there were any.
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// What the engine's thread reacts to.
#[derive(Debug)]
pub enum Msg {
    /// Possible knocks, in arrival order, stamped by the capture thread: every packet it
    /// read in one wake-up (at most `capture::MAX_BATCH`).
    Hits(Vec<(Timestamp, Hit)>),
    /// A signal (SIGHUP, SIGTERM, SIGINT).
    Signal(i32),
    /// The capture thread stopped with this error.
    CaptureFailed(String),
    /// A command finished, or was refused before it ran.
    CommandDone {
        /// The id the engine gave it.
        id: u64,
        /// How it ended.
        done: Done,
    },
    /// This host's addresses changed (netlink, or a re-read).
    LocalAddresses(Vec<IpAddr>),
    /// The nftables table was deleted behind our back (checked).
    FirewallGone,
    /// Something happened to our nftables table (`nft monitor`): check it now.
    FirewallChanged,
    /// `nft monitor` stopped: check the table now, then every [`FIREWALL_CHECK_EVERY`].
    TableUnwatched,
    /// Reopen the LogFile (logrotate).
    ReopenLog,
    /// A one-time sequence file was marked and read again ([`Engine::one_time_marked`]).
    OneTimeMarked {
        /// The file.
        path: PathBuf,
        /// Its sequences now, if it could be marked and read.
        fresh: Option<OneTimeSequences>,
    },
    /// A control request, and where its answer goes.
    Control(Request, mpsc::Sender<Response>),
}

/// Fixed for the daemon's lifetime.
#[derive(Debug, Clone)]
pub struct Settings {
    /// The config file, re-read on SIGHUP.
    pub config_path: PathBuf,
    /// Where we capture.
    pub interface: String,
    /// `-4`.
    pub ipv4_only: bool,
    /// `-l`: log knockers' DNS names.
    pub lookup: bool,
    /// The instance's name, for status.
    pub instance: String,
    /// `nft monitor` reports our table's deletion ([`Msg::FirewallChanged`]), so there is no
    /// periodic check (an idle daemon is not woken) until it stops ([`Msg::TableUnwatched`]).
    pub table_watched: bool,
}

impl Settings {
    /// How often the nftables table is checked while a door guards ports: never while
    /// `nft monitor` follows it.
    fn firewall_check_every(&self) -> Option<Duration> {
        (!self.table_watched).then_some(FIREWALL_CHECK_EVERY)
    }
}

/// How the engine stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or SIGINT.
    Signal,
    /// The capture failed.
    CaptureFailed,
}

/// The capture thread as the executor sees it (or a test's recorder): where a new filter
/// goes, and where handled batches go back to be filled again.
pub trait Filters {
    /// Installs `filter` now: its program replaces the kernel's filter at once.
    fn set_filter(&self, filter: &Filter);

    /// Takes back a batch the engine has handled, so that a flood allocates no buffers.
    fn recycle(&self, _batch: Vec<(Timestamp, Hit)>) {}
}

impl Filters for capture::Running {
    fn set_filter(&self, filter: &Filter) {
        match capture::Running::set_filter(self, filter) {
            Ok(report) => report.log(),
            Err(e) => tracing::error!("{e:#}"),
        }
    }

    fn recycle(&self, batch: Vec<(Timestamp, Hit)>) {
        capture::Running::recycle(self, batch);
    }
}

/// Counts the capture's counters into the summary and the totals since start.
#[derive(Default)]
struct Tally {
    hits: u64,
    queue_full: u64,
    kernel_dropped: u64,
    duplicates: u64,
    skipped: HashMap<&'static str, u64>,
}

impl Tally {
    fn is_empty(&self) -> bool {
        self.queue_full == 0 && self.kernel_dropped == 0 && self.skipped.is_empty()
    }
}

/// The engine's thread and its workers.
pub struct Executor<'a> {
    engine: Engine,
    settings: Settings,
    clock: Clock,
    started: Instant,
    capture: &'a dyn Filters,
    counters: Arc<Counters>,
    overflow: Arc<Mutex<Vec<Msg>>>,
    commands: Worker<Job>,
    groups: crate::exec::Groups,
    actions: Worker<Action>,
    resolver: Option<Worker<LogLine>>,
    summary: Tally,
    totals: Tally,
    evicted_reported: u64,
    next_summary: Option<Timestamp>,
    next_firewall_check: Option<Timestamp>,
    guards: bool,
    /// Our rule is in legacy iptables, which reports no change: checked every
    /// [`LEGACY_CHECK_EVERY`].
    legacy: bool,
    /// When the last hit handled was captured (the engine's clock waits for queued hits).
    last_hit: Option<Timestamp>,
    effects: Vec<Effect>,
}

/// What the executor is built from.
pub struct Parts<'a> {
    /// The engine, adopted stops included.
    pub engine: Engine,
    /// Fixed settings.
    pub settings: Settings,
    /// The daemon's clock.
    pub clock: Clock,
    /// The running capture (for filters).
    pub capture: &'a dyn Filters,
    /// The capture's counters.
    pub counters: Arc<Counters>,
    /// The journal of pending stops.
    pub journal: Journal,
    /// The built-in actions.
    pub performer: Performer,
    /// Where workers send command outcomes and firewall events.
    pub tx: SyncSender<Msg>,
}

impl<'a> Executor<'a> {
    /// Starts the workers.
    pub fn new(parts: Parts<'a>) -> anyhow::Result<Executor<'a>> {
        let outcomes = Outcomes {
            tx: parts.tx.clone(),
            overflow: Arc::default(),
        };
        let overflow = outcomes.overflow.clone();
        let marked = outcomes.clone();
        let gone = outcomes.clone();
        let refused = outcomes.clone();
        let outcome: crate::exec::Outcome = Arc::new(move |id, done| outcomes.report(id, done));
        let mut runner = Runner::new(outcome);
        let groups = runner.groups();
        let mut journal = parts.journal;
        let commands = Worker::start("commands", JOBS, move |job| match job {
            Job::Journal(r) => {
                journal.write(&r);
            }
            Job::Run(r) if r.recorded_as.is_some_and(|w| !journal.has(w)) => {
                let who = r.knocker.map(|k| format!("{k}: ")).unwrap_or_default();
                tracing::error!(
                    "{who}{}: start refused: its stop command could not be saved to {}; the \
                     door stays closed",
                    r.door,
                    journal.path().display()
                );
                refused.report(r.id, Done::Refused);
            }
            Job::Run(r) => runner.run(r.id, &r.door, r.kind, r.knocker, r.argv, &r.text),
            Job::MarkOneTime { door, path, used } => {
                let fresh = mark_one_time(&door, &path, &used);
                marked.send(Msg::OneTimeMarked { path, fresh });
            }
            Job::SaveReplay { path, text } => {
                if save_replay(&path, &text) {
                    journal.note_replay_saved();
                }
            }
        })?;
        let mut performer = parts.performer;
        let guards = performer.guards();
        let legacy = performer.polls_legacy();
        let actions = Worker::start("actions", JOBS, move |job| match job {
            Action::Perform(e) => perform(&mut performer, e),
            Action::CheckFirewall => {
                // Never waiting for room: the engine may be waiting for room in our queue.
                if performer.firewall_gone() {
                    gone.send(Msg::FirewallGone);
                } else {
                    performer.check_integration();
                }
            }
            Action::Answer(response, reply) => {
                let _ = reply.send(response);
            }
        })?;
        let resolver = if parts.settings.lookup {
            Some(resolver(lookup)?)
        } else {
            None
        };
        let now = parts.clock.now();
        let mut engine = parts.engine;
        engine.set_log_gate(LogGate {
            level: enabled,
            first_stage: crate::stage_lines::wants_first_stage,
            left_out: crate::stage_lines::left_out,
        });
        let check_every = firewall_check_every(&parts.settings, legacy);
        Ok(Executor {
            engine,
            settings: parts.settings,
            clock: parts.clock,
            started: Instant::now(),
            capture: parts.capture,
            counters: parts.counters,
            overflow,
            commands,
            groups,
            actions,
            resolver,
            summary: Tally::default(),
            totals: Tally::default(),
            evicted_reported: 0,
            next_summary: None,
            next_firewall_check: check_every.filter(|_| guards).map(|every| now + every),
            guards,
            legacy,
            last_hit: None,
            effects: Vec::new(),
        })
    }

    /// Runs until SIGTERM/SIGINT or a capture failure, then closes every door and stops.
    pub fn run(mut self, rx: &Receiver<Msg>) -> Exit {
        self.perform_effects();
        let exit = loop {
            let deadline = self.deadline();
            let msg = match deadline {
                Some(t) => match rx.recv_timeout(self.clock.until(t)) {
                    Ok(m) => Some(m),
                    Err(RecvTimeoutError::Timeout) => None,
                    Err(RecvTimeoutError::Disconnected) => break Exit::CaptureFailed,
                },
                None => match rx.recv() {
                    Ok(m) => Some(m),
                    Err(_) => break Exit::CaptureFailed,
                },
            };
            let (msg, drained) = match msg {
                Some(Msg::Hits(hits)) => self.drain_hits(rx, hits),
                other => (other, true),
            };
            if let Some(exit) = msg.and_then(|m| self.handle(m)) {
                break exit;
            }
            let overflow = std::mem::take(&mut *lock(&self.overflow));
            for msg in overflow {
                // Only outcomes and marked files wait there: never an exit.
                let _ = self.handle(msg);
            }
            self.on_time(drained);
            if self.perform_effects() {
                break Exit::Signal;
            }
        };
        self.shutdown(rx);
        exit
    }

    /// Handles `first` (one batch of the capture's) and the batches waiting behind it (until
    /// [`DRAIN`] hits); returns the message that stopped it, if it was not a batch of hits,
    /// and whether the queue was emptied.
    fn drain_hits(
        &mut self,
        rx: &Receiver<Msg>,
        first: Vec<(Timestamp, Hit)>,
    ) -> (Option<Msg>, bool) {
        let mut handled = 0;
        let mut batch = first;
        loop {
            self.engine.hits(&batch);
            handled += batch.len();
            self.last_hit = batch.last().map(|&(t, _)| t);
            self.capture.recycle(batch);
            self.perform_effects_quietly();
            if handled >= DRAIN {
                return (None, false);
            }
            match rx.try_recv() {
                Ok(Msg::Hits(hits)) => batch = hits,
                // Hits may wait behind a message that is not one.
                Ok(other) => return (Some(other), false),
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => return (None, true),
            }
        }
    }

    /// Performs effects without looking for the exit (hits never produce it).
    fn perform_effects_quietly(&mut self) {
        let _ = self.perform_effects();
    }

    /// Handles a message other than a hit; `Some` ends the loop.
    fn handle(&mut self, msg: Msg) -> Option<Exit> {
        let now = self.clock.now();
        match msg {
            Msg::Hits(hits) => self.engine.hits(&hits),
            Msg::Signal(SIGHUP) => {
                // logrotate's postrotate often sends SIGHUP: the LogFile is reopened first.
                self.engine.reopen_log();
                self.perform_effects_quietly();
                self.reload();
            }
            Msg::Signal(SIGUSR1) | Msg::ReopenLog => self.engine.reopen_log(),
            Msg::Signal(_) => {
                self.engine.terminate(now);
                let _ = self.perform_effects();
                return Some(Exit::Signal);
            }
            Msg::CaptureFailed(e) => {
                tracing::error!("{e}");
                self.engine.terminate(now);
                let _ = self.perform_effects();
                return Some(Exit::CaptureFailed);
            }
            Msg::CommandDone { id, done } => match done {
                Done::Refused => self.engine.command_refused(id),
                _ => self.engine.command_finished(id, done == Done::Succeeded),
            },
            Msg::LocalAddresses(addrs) => self.engine.set_local_addresses(addrs),
            Msg::FirewallGone => self.engine.firewall_gone(now),
            // Checked on the actions worker, which reports `FirewallGone` if it is.
            Msg::FirewallChanged => {
                let _ = self.actions.try_send(Action::CheckFirewall);
            }
            Msg::TableUnwatched => {
                tracing::warn!(
                    "nft monitor stopped: checking the nftables table every {} s instead",
                    FIREWALL_CHECK_EVERY.as_secs()
                );
                self.settings.table_watched = false;
                let _ = self.actions.try_send(Action::CheckFirewall);
                self.next_firewall_check = self.guards.then(|| now + FIREWALL_CHECK_EVERY);
            }
            Msg::OneTimeMarked { path, fresh } => self.engine.one_time_marked(&path, fresh),
            Msg::Control(request, reply) => {
                let outside = self.outside();
                let response = self.engine.control(now, &request, outside);
                match response {
                    // After the revokes it queued on the actions worker.
                    Response::Closed { .. } => {
                        self.perform_effects_quietly();
                        self.actions.send(Action::Answer(response, reply));
                    }
                    _ => {
                        let _ = reply.send(response);
                    }
                }
            }
        }
        None
    }

    /// What status reports that the engine does not know.
    fn outside(&mut self) -> Status {
        self.tally();
        let mut ignored: Vec<(String, u64)> = self
            .totals
            .skipped
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        ignored.sort();
        let queued = self.commands.depth()
            + self.actions.depth()
            + self.resolver.as_ref().map_or(0, Worker::depth);
        Status {
            instance: self.settings.instance.clone(),
            pid: std::process::id(),
            config: self.settings.config_path.display().to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            counters: control::Counters {
                packets: self.totals.hits,
                ignored,
                dropped: self.totals.queue_full,
                kernel_dropped: self.totals.kernel_dropped,
                duplicates: self.totals.duplicates,
                queued_effects: queued as u64,
                ..control::Counters::default()
            },
            ..Status::default()
        }
    }

    fn reload(&mut self) {
        let path = self.settings.config_path.clone();
        tracing::info!("re-reading config file: {}", path.display());
        let loaded = match load::load(&path) {
            Ok(l) => l,
            Err(e) => {
                tracing::error!("config error, keeping the running config:\n{e}");
                return;
            }
        };
        for w in load::warnings(&loaded) {
            tracing::warn!("{w}");
        }
        let guards = loaded
            .config
            .doors
            .iter()
            .any(|d| !d.actions.open.is_empty());
        if self.engine.reload(loaded, compiles) && guards != self.guards {
            self.guards = guards;
            let every = self.settings.firewall_check_every().filter(|_| guards);
            self.next_firewall_check = every.map(|e| self.clock.now() + e);
        }
    }

    /// When to wake up: the engine's next deadline, the summary, the firewall check.
    fn deadline(&self) -> Option<Timestamp> {
        [
            self.engine.poll_at(),
            self.next_summary,
            self.next_firewall_check,
        ]
        .into_iter()
        .flatten()
        .min()
    }

    /// Time passed. When hits are still waiting (`drained` false) the engine's clock goes only
    /// as far as the last hit handled, so no attempt expires before its waiting hit counts.
    fn on_time(&mut self, drained: bool) {
        let now = self.clock.now();
        let engine_now = if drained {
            now
        } else {
            self.last_hit.map_or(now, |t| t.min(now))
        };
        self.engine.tick(engine_now);
        if self.next_firewall_check.is_some_and(|t| t <= now) {
            let _ = self.actions.try_send(Action::CheckFirewall);
            self.next_firewall_check =
                firewall_check_every(&self.settings, self.legacy).map(|e| now + e);
        }
        let something = self.tally();
        match self.next_summary {
            Some(t) if t <= now => {
                self.log_summary();
                self.next_summary = None;
            }
            None if something => self.next_summary = Some(now + SUMMARY_EVERY),
            _ => {}
        }
    }

    /// Takes the capture's counters into the summary and the totals; whether there is
    /// something to summarize.
    fn tally(&mut self) -> bool {
        let (hits, queue_full, duplicates, skipped) = self.counters.take();
        let kernel_dropped = self.counters.take_kernel_dropped();
        for t in [&mut self.summary, &mut self.totals] {
            t.hits += hits;
            t.queue_full += queue_full;
            t.kernel_dropped += kernel_dropped;
            t.duplicates += duplicates;
            for &(why, n) in &skipped {
                *t.skipped.entry(why.as_str()).or_default() += n;
            }
        }
        !self.summary.is_empty() || self.engine.evicted() > self.evicted_reported
    }

    fn log_summary(&mut self) {
        let s = std::mem::take(&mut self.summary);
        let evicted = self.engine.evicted() - self.evicted_reported;
        self.evicted_reported = self.engine.evicted();
        if s.is_empty() && evicted == 0 {
            return;
        }
        let mut skipped: Vec<String> = s
            .skipped
            .iter()
            .map(|(why, n)| format!("{n} {why}"))
            .collect();
        skipped.sort();
        tracing::info!(
            "last {}s: {} knock packets ({} more seen twice, on a bridge or VLAN), {} dropped (engine busy), {} dropped by the kernel (capture ring full), ignored: [{}], {evicted} attempts evicted (cap {}){}",
            SUMMARY_EVERY.as_secs(),
            s.hits,
            s.duplicates,
            s.queue_full,
            s.kernel_dropped,
            skipped.join(", "),
            self.engine.max_attempts(),
            self.evicted_by_door()
        );
    }

    /// Evictions since start per door that had any: `; evicted so far: ssh 998, web 2`.
    fn evicted_by_door(&self) -> String {
        let doors: Vec<String> = self
            .engine
            .evicted_by_door()
            .into_iter()
            .map(|(name, n)| format!("{name} {n}"))
            .collect();
        if doors.is_empty() {
            String::new()
        } else {
            format!("; evicted so far: {}", doors.join(", "))
        }
    }

    /// Performs what the engine asked for, in order; true once it asked to exit.
    fn perform_effects(&mut self) -> bool {
        let mut exit = false;
        loop {
            self.engine.take_effects(&mut self.effects);
            if self.effects.is_empty() {
                return exit;
            }
            for effect in std::mem::take(&mut self.effects) {
                exit |= self.perform(effect);
            }
        }
    }

    fn perform(&mut self, effect: Effect) -> bool {
        match effect {
            Effect::Log(line) => self.log(line),
            Effect::Journal(r) => self.commands.send(Job::Journal(r)),
            Effect::Run(r) if r.kind == Kind::Start => {
                let id = r.id;
                if let Err(Job::Run(r)) = self.commands.try_send(Job::Run(r)) {
                    let who = r.knocker.map(|k| format!("{k}: ")).unwrap_or_default();
                    tracing::error!(
                        "{who}{}: start refused: {JOBS} commands already waiting to start (the \
                         limit); the door stays closed",
                        r.door
                    );
                    self.engine.command_refused(id);
                }
            }
            Effect::Run(r) => self.commands.send(Job::Run(r)),
            Effect::MarkOneTime { door, path, used } => {
                self.commands.send(Job::MarkOneTime { door, path, used })
            }
            Effect::ReopenLog => crate::log::reopen(),
            Effect::SetFilter(f) => self.capture.set_filter(&f),
            Effect::SaveReplay { path, text } => self.commands.send(Job::SaveReplay { path, text }),
            Effect::Exit => return true,
            e @ Effect::Perform { .. } => {
                if let Err(Action::Perform(Effect::Perform { door, .. })) =
                    self.actions.try_send(Action::Perform(e))
                {
                    tracing::error!("{}: actions not performed: {JOBS} are waiting", door.name);
                }
            }
            e => self.actions.send(Action::Perform(e)),
        }
        false
    }

    fn log(&mut self, line: LogLine) {
        if let (Some(r), Some(_)) = (&self.resolver, line.who) {
            if enabled(line.level) {
                match r.try_send(line) {
                    Ok(()) => return,
                    // The resolver is behind: the line goes out now, without the name.
                    Err(line) => return emit(&line, None),
                }
            }
            return;
        }
        emit(&line, None);
    }

    /// Closes every door (already asked of the engine), lets running commands finish for
    /// [`GRACE`] (a second signal kills start commands at once), then kills what is left.
    fn shutdown(mut self, rx: &Receiver<Msg>) {
        tracing::info!("shutting down");
        // Every stop command is started and the table (every port opened) removed at once;
        // only then do running commands get their grace.
        self.commands.finish();
        self.actions.send(Action::Perform(Effect::Exit));
        self.actions.finish();
        let deadline = Instant::now() + GRACE;
        let mut hurried = false;
        while !lock(&self.groups).is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                tracing::warn!(
                    "commands still running after {}s: killing them",
                    GRACE.as_secs()
                );
                break;
            }
            match rx.recv_timeout(left.min(Duration::from_millis(50))) {
                Ok(Msg::Signal(SIGTERM | SIGINT)) if !hurried => {
                    // Start commands are killed at once; stop commands close doors, so they
                    // keep what is left of the grace.
                    tracing::warn!("second signal: killing the start commands still running");
                    crate::exec::kill(&self.groups, Some(Kind::Start));
                    hurried = true;
                }
                Ok(_) | Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    std::thread::sleep(Duration::from_millis(20))
                }
            }
        }
        crate::exec::kill(&self.groups, None);
        if let Some(r) = &mut self.resolver {
            r.finish();
        }
    }
}

/// The `-l` worker: logs each line it is given with the knocker's name, looked up with
/// `lookup` (cached). Its queue holds [`LOOKUPS`] lines; the executor logs a line without the
/// name rather than wait when it is full.
fn resolver(
    lookup: impl Fn(IpAddr) -> Option<String> + Send + 'static,
) -> std::io::Result<Worker<LogLine>> {
    let mut names: HashMap<IpAddr, Option<String>> = HashMap::new();
    Worker::start("resolver", LOOKUPS, move |line: LogLine| {
        let name = line.who.and_then(|ip| {
            if names.len() >= NAME_CACHE {
                names.clear();
            }
            names.entry(ip).or_insert_with(|| lookup(ip)).clone()
        });
        emit(&line, name.as_deref());
    })
}

/// Whether `filter` makes a program the kernel takes (checked before a reload commits to a
/// config; on Ethernet, the longest program).
pub fn compiles(filter: &Filter) -> Result<(), String> {
    filter
        .program(Framing::Ethernet, 0)
        .map(drop)
        .map_err(|e| e.to_string())
}

/// The wall-clock time now, for the engine (the journal and status use wall times).
pub fn wall() -> SystemTime {
    SystemTime::now()
}

#[cfg(test)]
mod tests;

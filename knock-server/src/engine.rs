//! The engine: one thread that owns the state machine and decides.
//!
//! Hits from the capture thread, signals and timers arrive as [`Msg`]s on one channel. The
//! engine feeds hits to the [`Tracker`], logs knockd's lines for what happened, runs the
//! door's actions, and keeps the schedule of stop commands. It owns every door that a knock
//! opened, so a re-knock while a door is open extends the window instead of running the
//! start command (and adding a firewall rule) twice, and shutdown runs every pending stop.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, Sender, TryRecvError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use knock_proto::config::{Config, Door, SequenceSource};
use knock_proto::onetime::OneTimeSequences;
use knock_proto::tracker::{DoorSpec, Event, Tracker};
use knock_proto::wire::Hit;
use knock_proto::{Sequence, Timestamp};

use crate::capture::{self, Clock, Counters};
use crate::control::{self, OpenWindow, Request, Response};
use crate::exec::{Kind, Runner};
use crate::filter::{self, DoorFilter};
use crate::journal::{self, Entry, Journal};
use crate::load::{self, Loaded};
use crate::perform::Performer;

/// How many knockers' names `-l` remembers.
const NAME_CACHE: usize = 4096;

/// Hits handed to the tracker at once at most, when more are waiting: under a flood the
/// tracker overlaps their memory reads (`Tracker::handle_batch`).
const BATCH: usize = 64;

/// How often the engine checks that the nftables table of `open` doors is still there, in
/// case `nft monitor` (which reports a deletion at once) is not running.
const FIREWALL_CHECK_EVERY: Duration = Duration::from_secs(30);

/// How often the engine logs a summary of ignored and dropped packets (when there were any).
const SUMMARY_EVERY: Duration = Duration::from_secs(60);

/// What the engine reacts to.
#[derive(Debug)]
pub enum Msg {
    /// A possible knock, stamped by the capture thread.
    Hit(Timestamp, Hit),
    /// A signal (SIGHUP, SIGTERM, SIGINT).
    Signal(i32),
    /// The capture thread stopped with this error.
    CaptureFailed(String),
    /// An operator's request from the control socket, and where to send the answer.
    Control(Request, Sender<Response>),
    /// The host's addresses changed (netlink): these are the addresses knocks go to now.
    LocalAddresses(Vec<IpAddr>),
    /// Something changed in nftables (`nft monitor`): check that our table is still there.
    FirewallChanged,
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
    /// Whether the capture's link is Ethernet (VLAN variants in the filter).
    pub ethernet: bool,
    /// `--instance`, for `status`.
    pub instance: String,
}

/// A stop command waiting for its time.
#[derive(Debug, PartialEq, Eq, PartialOrd, Ord)]
struct Pending {
    at: Timestamp,
    entry: Entry,
}

/// The engine's state.
pub struct Engine {
    settings: Settings,
    clock: Clock,
    config: Config,
    one_time: Vec<Option<OneTimeSequences>>,
    tracker: Tracker,
    local: Vec<IpAddr>,
    pending: BinaryHeap<Reverse<Pending>>,
    /// When each (door, knocker) with a stop command closes; a re-knock moves it.
    open_until: HashMap<(String, IpAddr), Timestamp>,
    runner: Runner,
    journal: Journal,
    performer: Performer,
    counters: Arc<Counters>,
    evicted_reported: u64,
    next_summary: Timestamp,
    next_firewall_check: Timestamp,
    events: Vec<Event>,
    /// Hits received together, in arrival order, for the tracker.
    batch: Vec<(Timestamp, Hit)>,
    /// The doors' ports changed (a one-time sequence was used): the capture filter must follow.
    filter_dirty: bool,
    /// `-l`: knockers' names, looked up once.
    names: HashMap<IpAddr, Option<String>>,
    /// When the engine started, for `status`.
    started: Instant,
    /// Capture counts up to the last summary, for `status` (which adds what came since).
    counted: control::Counters,
}

/// How the engine stopped.
#[derive(Debug, PartialEq, Eq)]
pub enum Exit {
    /// SIGTERM or SIGINT.
    Signal,
    /// The capture failed.
    CaptureFailed,
}

impl Engine {
    /// An engine for `loaded`, knocking on `local` addresses.
    pub fn new(
        settings: Settings,
        clock: Clock,
        loaded: Loaded,
        local: Vec<IpAddr>,
        counters: Arc<Counters>,
        performer: Performer,
        (journal, leftovers): (Journal, Vec<Entry>),
    ) -> Engine {
        let mut tracker = build_tracker(&loaded.config, &loaded.one_time);
        tracker.set_local_addresses(&local);
        let mut engine = Engine {
            next_summary: clock.now() + SUMMARY_EVERY,
            next_firewall_check: clock.now() + FIREWALL_CHECK_EVERY,
            settings,
            clock,
            config: loaded.config,
            one_time: loaded.one_time,
            tracker,
            local,
            pending: BinaryHeap::new(),
            open_until: HashMap::new(),
            runner: Runner::default(),
            journal,
            performer,
            counters,
            evicted_reported: 0,
            events: Vec::new(),
            batch: Vec::with_capacity(BATCH),
            filter_dirty: false,
            names: HashMap::new(),
            started: Instant::now(),
            counted: control::Counters::default(),
        };
        engine.adopt(leftovers);
        engine
    }

    /// Takes over the stop commands a previous run left pending (it crashed, or was killed):
    /// each runs at its original time, or now if that has passed.
    fn adopt(&mut self, leftovers: Vec<Entry>) {
        let (now, wall) = (self.clock.now(), SystemTime::now());
        for entry in leftovers {
            let remaining = entry.remaining(wall);
            tracing::info!(
                "{}: {}: stop command left pending by a previous run, due in {}s",
                entry.source,
                entry.door,
                remaining.as_secs()
            );
            self.schedule(now + remaining, entry);
        }
        self.journal
            .save(self.pending.iter().map(|Reverse(p)| &p.entry));
    }

    fn schedule(&mut self, at: Timestamp, entry: Entry) {
        self.open_until
            .insert((entry.door.clone(), entry.source), at);
        self.pending.push(Reverse(Pending { at, entry }));
    }

    /// The capture filter for the current doors.
    pub fn filter(&self) -> String {
        build_filter(&self.config, &self.one_time, &self.local, &self.settings)
    }

    /// Runs until SIGTERM/SIGINT or a capture failure; then runs every pending stop command
    /// and waits for running commands.
    pub fn run(&mut self, rx: &Receiver<Msg>, capture: &capture::Running) -> Exit {
        let exit = loop {
            let timeout = self.clock.until(self.next_deadline());
            let msg = match rx.recv_timeout(timeout) {
                Ok(Msg::Hit(at, hit)) => {
                    // Whatever else is already waiting goes with it, up to the first message
                    // that is not a hit, which is then handled after the hits, in order.
                    let after = self.take_hits(rx, (at, hit));
                    self.handle_hits();
                    after
                }
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => break Exit::CaptureFailed,
            };
            match msg {
                Some(Msg::Hit(..)) | None => {}
                Some(Msg::Signal(sig)) if sig == signal_hook::consts::SIGHUP => {
                    crate::log::reopen();
                    self.reload(capture)
                }
                Some(Msg::Signal(sig)) if sig == signal_hook::consts::SIGUSR1 => {
                    crate::log::reopen();
                }
                Some(Msg::Control(request, reply)) => {
                    let _ = reply.send(self.control(request));
                }
                Some(Msg::LocalAddresses(addrs)) => self.set_local_addresses(addrs, capture),
                Some(Msg::FirewallChanged) => self.performer.check_firewall(),
                Some(Msg::Signal(_)) => break Exit::Signal,
                Some(Msg::CaptureFailed(e)) => {
                    tracing::error!("{e}");
                    break Exit::CaptureFailed;
                }
            }
            self.on_timers();
            if std::mem::take(&mut self.filter_dirty) {
                capture.set_filter(self.filter());
            }
        };
        self.shutdown();
        exit
    }

    /// Fills the batch with `first` and the hits already waiting (at most [`BATCH`]); returns
    /// the message that stopped it, if it was not a hit.
    fn take_hits(&mut self, rx: &Receiver<Msg>, first: (Timestamp, Hit)) -> Option<Msg> {
        self.batch.clear();
        self.batch.push(first);
        while self.batch.len() < BATCH {
            match rx.try_recv() {
                Ok(Msg::Hit(at, hit)) => self.batch.push((at, hit)),
                Ok(other) => return Some(other),
                // Disconnected: the next `recv_timeout` says so.
                Err(TryRecvError::Empty | TryRecvError::Disconnected) => break,
            }
        }
        None
    }

    /// Feeds the batch to the tracker, each hit at its own capture time, acting on what
    /// happened. The tracker stops after a one-time door opens (`set_stop_on_open`): its
    /// next sequence is armed before the following hits count, as one hit at a time would.
    fn handle_hits(&mut self) {
        let batch = std::mem::take(&mut self.batch);
        let mut done = 0;
        while done < batch.len() {
            let handled = self.tracker.handle_batch(&batch[done..], &mut self.events);
            self.process_events();
            if handled == 0 {
                break; // Not for a non-empty batch; never spin on it.
            }
            done += handled;
        }
        self.batch = batch;
    }

    fn next_deadline(&self) -> Timestamp {
        let mut t = self.next_summary.min(self.next_firewall_check);
        if let Some(p) = self.tracker.poll_at() {
            t = t.min(p);
        }
        if let Some(Reverse(p)) = self.pending.peek() {
            t = t.min(p.at);
        }
        t
    }

    fn on_timers(&mut self) {
        let now = self.clock.now();
        self.tracker.expire(now, &mut self.events);
        self.process_events();
        while self.pending.peek().is_some_and(|Reverse(p)| p.at <= now) {
            let Some(Reverse(p)) = self.pending.pop() else {
                break;
            };
            self.run_stop(p, true);
        }
        if now >= self.next_firewall_check {
            self.performer.check_firewall();
            self.next_firewall_check = now + FIREWALL_CHECK_EVERY;
        }
        if now >= self.next_summary {
            self.summary();
            self.next_summary = now + SUMMARY_EVERY;
        }
    }

    /// Runs a due stop command, unless a re-knock moved its window (then a later entry
    /// exists for the same door and knocker).
    fn run_stop(&mut self, p: Pending, on_time: bool) {
        let e = p.entry;
        let key = (e.door.clone(), e.source);
        if self
            .open_until
            .get(&key)
            .is_some_and(|&until| until != p.at)
        {
            return;
        }
        self.open_until.remove(&key);
        if on_time {
            tracing::info!("{}: {}: command timeout", e.source, e.door);
        }
        self.runner.run(&e.door, Kind::Stop, e.argv, &e.text);
    }

    fn process_events(&mut self) {
        let now = self.clock.now();
        let events = std::mem::take(&mut self.events);
        for ev in &events {
            let (source, door) = match *ev {
                Event::Stage { source, door, .. }
                | Event::Opened { source, door }
                | Event::Failed { source, door, .. }
                | Event::Expired { source, door, .. }
                | Event::Evicted { source, door, .. } => (source, door),
            };
            let who = self.who(source);
            let name = self.door_name(door).to_owned();
            match *ev {
                Event::Stage { stage, .. } => tracing::info!("{who}: {name}: Stage {stage}"),
                Event::Opened { .. } => {
                    // knockd logs the last stage too, then OPEN SESAME.
                    if let Some(n) = self.sequence_len(door) {
                        tracing::info!("{who}: {name}: Stage {n}");
                    }
                    tracing::info!("{who}: {name}: OPEN SESAME");
                    self.open(now, door, source);
                }
                Event::Failed { stage, .. } => {
                    tracing::debug!("{who}: {name}: sequence broken (stage {stage})");
                }
                Event::Expired { stage, .. } => {
                    tracing::info!("{who}: {name}: sequence timeout (stage {stage})");
                }
                Event::Evicted { stage, .. } => {
                    tracing::trace!("{who}: {name}: evicted at stage {stage}");
                }
            }
        }
        self.events = events;
        self.events.clear();
    }

    /// The knocker as knockd logs it: `IP`, or `IP (name)` with `-l`. Names are cached
    /// (the lookup blocks this thread, not the capture) and the cache is bounded.
    fn who(&mut self, source: IpAddr) -> String {
        if !self.settings.lookup {
            return source.to_string();
        }
        if self.names.len() >= NAME_CACHE {
            self.names.clear();
        }
        let name = self.names.entry(source).or_insert_with(|| {
            dns_lookup::lookup_addr(&source)
                .ok()
                .filter(|n| *n != source.to_string())
        });
        match name {
            Some(n) => format!("{source} ({n})"),
            None => source.to_string(),
        }
    }

    /// The length of the sequence a door currently expects.
    fn sequence_len(&self, id: usize) -> Option<usize> {
        let door = self.config.doors.get(id)?;
        let one_time = self.one_time.get(id).and_then(Option::as_ref);
        door_sequence(door, one_time).map(|s| s.len())
    }

    fn door_name(&self, id: usize) -> &str {
        self.config.doors.get(id).map_or("?", |d| d.name.as_str())
    }

    /// A door opened for `source`: commands, built-in actions, one-time bookkeeping.
    fn open(&mut self, now: Timestamp, id: usize, source: IpAddr) {
        let Some(door) = self.config.doors.get(id).cloned() else {
            return;
        };
        let ran = self.run_commands(now, &door, source);
        self.performer.perform(&door, source, &ran);
        if matches!(door.sequence, SequenceSource::OneTime { .. }) {
            self.next_one_time(id, &door);
        }
    }

    /// Starts the door's start command and schedules its stop command; returns what ran.
    fn run_commands(&mut self, now: Timestamp, door: &Door, source: IpAddr) -> Vec<String> {
        let Some(start) = door.start_command_for(source) else {
            return Vec::new();
        };
        let stop = door.stop_command_for(source);
        let already_open = self.open_until.contains_key(&(door.name.clone(), source));
        // The stop command is on disk before the start command runs: whatever happens to
        // this process from here on, the next start closes the door (see `journal`).
        if let Some(stop) = stop {
            let entry = Entry {
                due_unix: journal::due_unix(SystemTime::now(), door.cmd_timeout),
                door: door.name.clone(),
                source,
                text: stop.render_text(source),
                argv: stop.render(source),
            };
            self.schedule(now + door.cmd_timeout, entry);
            self.journal
                .save(self.pending.iter().map(|Reverse(p)| &p.entry));
        }
        if stop.is_some() && already_open {
            // Already open for this knocker: the window was extended above; running the
            // start command again would add its firewall rule a second time.
            tracing::info!(
                "{source}: {}: already open, extending by {}s",
                door.name,
                door.cmd_timeout.as_secs()
            );
            return Vec::new();
        }
        let text = start.render_text(source);
        self.runner
            .run(&door.name, Kind::Start, start.render(source), &text);
        vec![text]
    }

    /// Marks the used one-time sequence in its file (in place) and arms the next one.
    fn next_one_time(&mut self, id: usize, door: &Door) {
        let SequenceSource::OneTime { path, .. } = &door.sequence else {
            return;
        };
        let Some(Some(seqs)) = self.one_time.get_mut(id) else {
            return;
        };
        if let Err(e) = crate::onetime_file::mark_used(path, seqs) {
            tracing::error!(
                "{}: cannot mark the used one-time sequence: {e:#}",
                door.name
            );
        }
        let next: Option<Sequence> = seqs.current().cloned();
        if next.is_none() {
            tracing::info!(
                "{}: no one-time sequences left in {}, door disabled",
                door.name,
                path.display()
            );
        }
        self.tracker.set_sequence(id, next);
        self.filter_dirty = true;
    }

    fn reload(&mut self, capture: &capture::Running) {
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
        self.local = capture::local_addresses(&self.settings.interface);
        let mut tracker = build_tracker(&loaded.config, &loaded.one_time);
        tracker.set_local_addresses(&self.local);
        self.performer.reconfigure(&loaded.config);
        self.tracker = tracker;
        self.config = loaded.config;
        self.one_time = loaded.one_time;
        capture.set_filter(self.filter());
    }

    fn summary(&mut self) {
        let (hits, queue_full, duplicates, skipped) = self.counters.take();
        self.tally(hits, queue_full, &skipped);
        let stats = self.tracker.stats();
        let evicted = stats.evicted - self.evicted_reported;
        self.evicted_reported = stats.evicted;
        if queue_full == 0 && skipped.is_empty() && evicted == 0 {
            return;
        }
        let skipped: Vec<String> = skipped
            .iter()
            .map(|(why, n)| format!("{n} {}", why.as_str()))
            .collect();
        tracing::info!(
            "last {}s: {hits} knock packets ({duplicates} more seen twice, on a bridge or VLAN), {queue_full} dropped (engine busy), ignored: [{}], {evicted} attempts evicted (cap {})",
            SUMMARY_EVERY.as_secs(),
            skipped.join(", "),
            self.config.options.max_attempts
        );
    }

    /// Closes everything a knock opened: pending stop commands run now, then the built-in
    /// actions' state (the firewall table) is removed.
    fn shutdown(&mut self) {
        while let Some(Reverse(p)) = self.pending.pop() {
            self.run_stop(p, false);
        }
        self.runner.wait_all();
        self.journal.save(std::iter::empty());
        self.performer.shutdown();
    }
}

fn door_sequence(door: &Door, one_time: Option<&OneTimeSequences>) -> Option<Sequence> {
    match &door.sequence {
        SequenceSource::Fixed(s) => Some(s.clone()),
        SequenceSource::OneTime { .. } => one_time.and_then(|o| o.current().cloned()),
    }
}

fn build_tracker(config: &Config, one_time: &[Option<OneTimeSequences>]) -> Tracker {
    let specs = config
        .doors
        .iter()
        .enumerate()
        .map(|(i, d)| DoorSpec {
            sequence: door_sequence(d, one_time.get(i).and_then(Option::as_ref)),
            seq_timeout: d.seq_timeout,
            tcpflags: d.tcpflags,
            target: d.target,
        })
        .collect();
    let mut tracker = Tracker::new(specs, config.options.max_attempts);
    for (id, door) in config.doors.iter().enumerate() {
        // Opening a one-time door arms its next sequence, which the hits after it must see.
        let one_time = matches!(door.sequence, SequenceSource::OneTime { .. });
        tracker.set_stop_on_open(id, one_time);
    }
    tracker
}

/// The filter for `config` with its current one-time sequences.
pub fn build_filter(
    config: &Config,
    one_time: &[Option<OneTimeSequences>],
    local: &[IpAddr],
    settings: &Settings,
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
    filter::build(&doors, local, settings.ipv4_only, settings.ethernet)
}

/// Operator control (`status`, `close`) and the host's addresses, on the engine as it is;
/// kept in one place so that it moves onto the state-machine engine in one piece.
impl Engine {
    /// Follows the host's addresses: knocks to a new address count, a gone one's do not.
    fn set_local_addresses(&mut self, addrs: Vec<IpAddr>, capture: &capture::Running) {
        if addrs == self.local {
            return;
        }
        tracing::info!(
            "local addresses changed: {}",
            addrs
                .iter()
                .map(IpAddr::to_string)
                .collect::<Vec<_>>()
                .join(", ")
        );
        self.local = addrs;
        self.tracker.set_local_addresses(&self.local);
        capture.set_filter(self.filter());
    }

    fn control(&mut self, request: Request) -> Response {
        match request {
            Request::Status => Response::Status(self.status()),
            Request::Close { door, .. } if !self.config.doors.iter().any(|d| d.name == door) => {
                Response::Error {
                    message: format!(
                        "no door named `{door}` in {} (doors: {})",
                        self.settings.config_path.display(),
                        self.config
                            .doors
                            .iter()
                            .map(|d| d.name.as_str())
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                }
            }
            Request::Close { door, source } => Response::Closed {
                closed: self.close_now(Some(&door), source),
            },
            Request::CloseAll => Response::Closed {
                closed: self.close_now(None, None),
            },
        }
    }

    fn status(&mut self) -> control::Status {
        let wall = SystemTime::now();
        let stats = self.tracker.stats();
        let mut open: Vec<OpenWindow> = self
            .open_until
            .iter()
            .map(|((door, source), &at)| {
                let length = self.door_cmd_timeout(door);
                let left = self.clock.until(at);
                let closes = wall + left;
                window(door, *source, closes - length, left, "stop command")
            })
            .collect();
        for (door, source, since, left) in self.performer.open_windows() {
            open.push(window(&door, source, since, left, "nftables"));
        }
        open.sort_by_key(|w| w.closes_in_secs);
        control::Status {
            instance: self.settings.instance.clone(),
            pid: std::process::id(),
            config: self.settings.config_path.display().to_string(),
            uptime_secs: self.started.elapsed().as_secs(),
            doors: self
                .config
                .doors
                .iter()
                .enumerate()
                .map(|(id, d)| control::DoorStatus {
                    name: d.name.clone(),
                    enabled: self.sequence_len(id).is_some(),
                    attempts: self.tracker.attempts_on(id) as u64,
                    ..control::DoorStatus::default()
                })
                .collect(),
            open,
            counters: self.counters_now(stats.evicted),
        }
    }

    /// Adds counts taken from the capture's counters (which `take` resets) to the totals.
    fn tally(&mut self, hits: u64, queue_full: u64, skipped: &[(knock_proto::wire::Skip, u64)]) {
        let c = &mut self.counted;
        c.packets += hits;
        c.dropped += queue_full;
        for (why, n) in skipped {
            add_ignored(&mut c.ignored, why.as_str(), *n);
        }
    }

    /// The totals since start: those up to the last summary plus what the capture counted
    /// since (read, not taken, so the next summary still sees it).
    fn counters_now(&self, evicted: u64) -> control::Counters {
        use std::sync::atomic::Ordering::Relaxed;
        let mut c = self.counted.clone();
        c.packets += self.counters.hits.load(Relaxed);
        c.dropped += self.counters.queue_full.load(Relaxed);
        for why in knock_proto::wire::Skip::ALL {
            let n = self
                .counters
                .skipped
                .get(why as usize)
                .map_or(0, |a| a.load(Relaxed));
            if n > 0 {
                add_ignored(&mut c.ignored, why.as_str(), n);
            }
        }
        c.evicted = evicted;
        c
    }

    fn door_cmd_timeout(&self, name: &str) -> Duration {
        self.config
            .doors
            .iter()
            .find(|d| d.name == name)
            .map_or(Duration::ZERO, |d| d.cmd_timeout)
    }

    /// Closes now: pending stop commands of matching windows run (once: they leave the
    /// schedule and the state file), and `open` ports are revoked.
    fn close_now(&mut self, door: Option<&str>, source: Option<IpAddr>) -> Vec<OpenWindow> {
        let matches =
            |d: &str, s: IpAddr| door.is_none_or(|x| x == d) && source.is_none_or(|x| x == s);
        let wall = SystemTime::now();
        let mut closed = Vec::new();
        let (due, kept): (Vec<Pending>, Vec<Pending>) = std::mem::take(&mut self.pending)
            .into_iter()
            .map(|Reverse(p)| p)
            .partition(|p| matches(&p.entry.door, p.entry.source));
        self.pending = kept.into_iter().map(Reverse).collect();
        for p in due {
            let key = (p.entry.door.clone(), p.entry.source);
            // Superseded entries (a re-knock moved the window) are dropped without running.
            if self.open_until.get(&key) == Some(&p.at) {
                let left = self.clock.until(p.at);
                let since = wall + left - self.door_cmd_timeout(&key.0);
                closed.push(window(&key.0, key.1, since, left, "stop command"));
                tracing::info!("{}: {}: closed by the operator", key.1, key.0);
                self.run_stop(p, false);
            }
        }
        self.journal
            .save(self.pending.iter().map(|Reverse(p)| &p.entry));
        for (d, s, since, left) in self.performer.close(door, source) {
            closed.push(window(&d, s, since, left, "nftables"));
        }
        closed
    }
}

fn add_ignored(ignored: &mut Vec<(String, u64)>, why: &str, n: u64) {
    match ignored.iter_mut().find(|(w, _)| w == why) {
        Some((_, total)) => *total += n,
        None => ignored.push((why.to_owned(), n)),
    }
}

fn window(door: &str, source: IpAddr, since: SystemTime, left: Duration, how: &str) -> OpenWindow {
    OpenWindow {
        door: door.to_owned(),
        source,
        since_unix: since.duration_since(UNIX_EPOCH).map_or(0, |d| d.as_secs()),
        closes_in_secs: left.as_secs(),
        how: how.to_owned(),
    }
}

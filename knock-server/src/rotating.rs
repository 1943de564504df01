//! Rotating doors on the daemon's side: the engine hands every TCP hit to [`RotatingDoors`]
//! first; what belongs to a rotating door is verified (one MAC per packet for sealed doors)
//! and counted per source by the gate, with the line to log; the rest goes on to the tracker.
//!
//! A door's knocks are derived from its own `ports` only, so they land now and then on a port
//! a fixed or one-time door knocks on too. Such a hit goes to the tracker as well unless it is
//! surely the rotating door's ([`Handled::Shared`]): a sealed knock with the right seal is, a
//! SYN with a wrong one may be the other door's; for an unsealed door any SYN may be either,
//! and counting it for both costs neither anything. So neither door loses a knock, and the
//! client learns nothing about the other doors.
//!
//! Clients paired by an older `knock-server pair` derive from `ports` less the other doors'
//! ports (`Config::rotating_legacy_door`): each such door has a twin in the verifier, with the
//! same name (so the same seals and replay record) and that set, whose opening line asks for
//! the client to be paired again.
//!
//! No I/O but reading the saved record at start: the caller logs the lines, and writes the
//! replay record ([`RotatingDoors::take_record`]) next to the pending stops
//! (`STATE-FILE.replay`) whenever it changed, so a restart between a knock and its replay
//! still refuses the replay. The clock is read by the caller too: `now` (monotonic) for
//! attempts, `unix` (wall clock, seconds) for steps.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use knock_proto::auth::{
    ACCEPTED_STEPS, Gate, Outcome, Refusal, ReplayRecord, RotatingDoor, Step, Verifier,
};
use knock_proto::config::{Config, SequenceSource};
use knock_proto::flags::bits;
use knock_proto::{Knock, Port, Proto, Timestamp};

use tracing::Level;

use crate::control::Refused;
use crate::load::Loaded;

/// A line to log: its level and the text after `IP: `.
pub type Line = (Level, String);

/// What [`RotatingDoors::handle`] did with a hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Handled {
    /// Not a rotating door's: the tracker's to judge.
    NotOurs,
    /// A rotating door's, counted or refused (and logged).
    Taken,
    /// Counted or refused by a rotating door (and logged) on a port another door knocks on,
    /// and maybe that door's knock (a wrong seal, or an unsealed door): the tracker judges
    /// it too.
    Shared,
    /// Door `door` (its index in the config) opens for the source.
    Open {
        /// Index in the config's doors.
        door: usize,
    },
}

/// Every rotating door of the config, their attempts and replay record.
pub struct RotatingDoors {
    verifier: Verifier,
    gate: Gate,
    /// Index in the config of each of the verifier's doors (a door and its twin for older
    /// pairings share one).
    config_ids: Vec<usize>,
    /// Per verifier door: the twin that derives from the set an older `pair` printed.
    legacy: Vec<bool>,
    /// The ports hits may be another door's knock on.
    shared: Shared,
    /// The record's text as last taken for saving, to save only on change.
    saved: String,
    /// When attempts past their timeout are next dropped (at most once a second: the engine
    /// calls [`RotatingDoors::roll`] after every batch of hits).
    next_expire: Timestamp,
    /// Knocks refused since start, per verifier door (for status).
    refused: Vec<Refused>,
    /// MACs computed by verifiers replaced by a reload (for status).
    macs_before: u64,
}

/// The ports other doors than the rotating ones knock on.
#[derive(Debug, Clone)]
enum Shared {
    /// Fixed sequences' TCP ports, sorted.
    Ports(Vec<Port>),
    /// Every port: a one-time door's sequences change as they are used.
    All,
}

impl Shared {
    fn of(config: &Config) -> Shared {
        let mut ports = Vec::new();
        for door in &config.doors {
            match &door.sequence {
                SequenceSource::Fixed(s) => ports.extend(
                    s.knocks()
                        .iter()
                        .filter(|k| k.proto == Proto::Tcp)
                        .map(|k| k.port),
                ),
                SequenceSource::OneTime { .. } => return Shared::All,
                SequenceSource::Rotating(_) => {}
            }
        }
        ports.sort();
        ports.dedup();
        Shared::Ports(ports)
    }

    fn contains(&self, port: Port) -> bool {
        match self {
            Shared::Ports(ports) => ports.binary_search(&port).is_ok(),
            Shared::All => true,
        }
    }
}

/// What status says about one rotating door.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoorCounts {
    /// Attempts in progress.
    pub attempts: u64,
    /// Knocks refused since start, by reason.
    pub refused: Refused,
}

/// The replay record as saved, and where it is saved.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The record read at start ([`read_record`]), or why it is lost.
    pub record: Result<ReplayRecord, String>,
    /// Its file ([`record_file`]).
    pub file: PathBuf,
}

/// The replay record's file for a state file: `pending-stops.replay` beside `pending-stops`.
pub fn record_file(state_file: &Path) -> PathBuf {
    let mut name = state_file.as_os_str().to_owned();
    name.push(".replay");
    PathBuf::from(name)
}

impl RotatingDoors {
    /// The rotating doors of `loaded` (with their keys), with the replay record so far, at
    /// the steps in force at `unix`.
    pub fn new(loaded: &Loaded, record: ReplayRecord, unix: u64) -> RotatingDoors {
        let (doors, config_ids, legacy) = rotating_doors(loaded);
        let mut verifier = Verifier::new(doors);
        verifier.roll(unix);
        let mut gate = Gate::new(loaded.config.options.max_attempts, record);
        let names: Vec<&str> = verifier.doors().iter().map(|d| d.name.as_str()).collect();
        gate.record.keep_doors(&names);
        RotatingDoors {
            saved: gate.record.to_text(),
            next_expire: Timestamp::ZERO,
            refused: vec![Refused::default(); config_ids.len()],
            macs_before: 0,
            shared: Shared::of(&loaded.config),
            verifier,
            gate,
            config_ids,
            legacy,
        }
    }

    /// Keeps the counts of `old` (the doors before a reload) for the doors of the same name.
    pub fn carry_counts(&mut self, old: &RotatingDoors) {
        self.macs_before = old.seal_checks();
        for (i, door) in self.verifier.doors().iter().enumerate() {
            let before =
                old.verifier.doors().iter().enumerate().position(|(o, d)| {
                    d.name == door.name && old.legacy.get(o) == self.legacy.get(i)
                });
            if let Some(counts) = before.and_then(|o| old.refused.get(o)) {
                self.refused[i] = counts.clone();
            }
        }
    }

    /// Keeps the attempts in progress of `old` (the doors before a reload) at the doors whose
    /// knocks did not change: same name, key, ports, knocks, step, seal and `seq_timeout`. A
    /// knock part-way through its sequence then still opens after a SIGHUP, as on a fixed door.
    pub fn carry_attempts(&mut self, old: &RotatingDoors) {
        let doors = self.verifier.doors();
        let map = |o: usize| {
            let was = old.verifier.doors().get(o)?;
            let legacy = old.legacy.get(o);
            (0..doors.len()).find(|&n| doors[n] == *was && self.legacy.get(n) == legacy)
        };
        self.gate.carry(&old.gate, map);
    }

    /// Status of config door `config_id` at `now` if it is a rotating door (with its twin,
    /// if it has one).
    pub fn door_counts(&self, now: Timestamp, config_id: usize) -> Option<DoorCounts> {
        let mine: Vec<usize> = (0..self.config_ids.len())
            .filter(|&i| self.config_ids[i] == config_id)
            .collect();
        if mine.is_empty() {
            return None;
        }
        let attempts = self.gate.attempts_by_door(now, &self.verifier);
        let mut counts = DoorCounts {
            attempts: 0,
            refused: Refused::default(),
        };
        for i in mine {
            counts.attempts += attempts.get(i).copied().unwrap_or(0) as u64;
            if let Some(r) = self.refused.get(i) {
                counts.refused.wrong_seal += r.wrong_seal;
                counts.refused.replayed += r.replayed;
                counts.refused.off_step += r.off_step;
                counts.refused.not_tracked += r.not_tracked;
            }
        }
        Some(counts)
    }

    /// MACs computed to check seals since start.
    pub fn seal_checks(&self) -> u64 {
        self.macs_before + self.verifier.macs()
    }

    /// Whether the config has no rotating door.
    pub fn is_empty(&self) -> bool {
        self.config_ids.is_empty()
    }

    /// The knocks the capture filter must let through now, per config door (empty for the
    /// others): every port of the steps recognised, TCP.
    pub fn filter_knocks(&self, config: &Config) -> Vec<Vec<Knock>> {
        let mut per_door = vec![Vec::new(); config.doors.len()];
        let watched = self.verifier.ports_watched();
        for (i, &id) in self.config_ids.iter().enumerate() {
            let door = &self.verifier.doors()[i];
            let mine = watched
                .iter()
                .filter(|p| door.ports.contains(**p))
                .map(|p| Knock::new(*p, Proto::Tcp));
            if let Some(slot) = per_door.get_mut(id) {
                slot.extend(mine);
            }
        }
        for slot in &mut per_door {
            // A door and its twin: sorted by port, once each.
            slot.sort_by_key(|k| k.port);
            slot.dedup();
        }
        per_door
    }

    /// Moves to the steps in force at `unix`; returns whether the ports to watch changed (the
    /// filter must follow). Forgets attempts past their timeout and record entries of steps
    /// no longer accepted.
    pub fn roll(&mut self, now: Timestamp, unix: u64) -> bool {
        let changed = self.verifier.roll(unix);
        if changed || now >= self.next_expire {
            self.gate.expire(now, &self.verifier);
            self.next_expire = now + Duration::from_secs(1);
        }
        changed
    }

    /// How long from `unix_ms` until some door's step rolls over.
    pub fn until_roll(&self, unix_ms: u64) -> Option<Duration> {
        let secs = self.verifier.seconds_to_roll(unix_ms / 1000)?;
        Some(Duration::from_millis(
            (secs * 1000).saturating_sub(unix_ms % 1000),
        ))
    }

    /// Judges one hit from `source` on `knock` with these TCP flags and sequence number: what
    /// it did, and the line to log (after `IP: `), if any. `wanted(level, first_stage)` says
    /// whether a line at that level (a `Stage 1` line, with `first_stage`) would be written:
    /// under a flood of wrong seals, formatting a DEBUG line per packet nobody reads would
    /// cost more than the MAC.
    pub fn handle(
        &mut self,
        now: Timestamp,
        source: IpAddr,
        knock: Knock,
        (tcp_flags, tcp_seq): (u8, u32),
        wanted: impl FnOnce(Level, bool) -> bool,
    ) -> (Handled, Option<Line>) {
        // A knock is a SYN: only a SYN's sequence number is the sender's to choose.
        let syn = tcp_flags & bits::SYN != 0 && tcp_flags & bits::ACK == 0;
        if self.is_empty() || knock.proto != Proto::Tcp || !syn {
            return (Handled::NotOurs, None);
        }
        let gate = &self.gate;
        let prefer = || gate.attempt_door(source);
        let verdict = self
            .verifier
            .verify_for(knock.port, Some(tcp_seq), source, prefer);
        let outcome = self.gate.handle(now, &self.verifier, source, verdict);
        self.count(&outcome);
        let shared = self.maybe_another_doors(&outcome) && self.shared.contains(knock.port);
        let first_stage = matches!(outcome, Outcome::Progress { done: 1, .. });
        let line = self
            .level(&outcome)
            .filter(|&l| wanted(l, first_stage))
            .map(|l| (l, self.text(knock.port, &outcome, shared)));
        let handled = match outcome {
            Outcome::NotOurs => Handled::NotOurs,
            Outcome::Open { door, .. } => Handled::Open {
                door: self.config_ids[door],
            },
            _ if shared => Handled::Shared,
            _ => Handled::Taken,
        };
        (handled, line)
    }

    /// Whether a hit with this outcome, on a port another door knocks on, may be that door's
    /// knock: it is unless it carried a rotating door's right seal (or opened the door: a
    /// whole derived sequence is the key holder's).
    fn maybe_another_doors(&self, outcome: &Outcome) -> bool {
        match *outcome {
            Outcome::NotOurs | Outcome::Open { .. } | Outcome::Refused(Refusal::NotOurs) => false,
            Outcome::Refused(Refusal::WrongSeal { .. }) => true,
            Outcome::Progress { door, .. }
            | Outcome::Repeat { door }
            | Outcome::Replayed { door }
            | Outcome::Refused(Refusal::OffStep { door, .. })
            | Outcome::OutOfOrder { door }
            | Outcome::Full { door } => !self.sealed(door),
        }
    }

    /// Counts a refused knock for status.
    fn count(&mut self, outcome: &Outcome) {
        let (door, field): (usize, fn(&mut Refused) -> &mut u64) = match *outcome {
            Outcome::Refused(Refusal::WrongSeal { door }) => (door, |r| &mut r.wrong_seal),
            Outcome::Refused(Refusal::OffStep { door, .. }) => (door, |r| &mut r.off_step),
            Outcome::Replayed { door } => (door, |r| &mut r.replayed),
            Outcome::Full { door } => (door, |r| &mut r.not_tracked),
            _ => return,
        };
        if let Some(counts) = self.refused.get_mut(door) {
            *field(counts) += 1;
        }
    }

    /// The replay record (to carry over a reload).
    pub fn record(&self) -> &ReplayRecord {
        &self.gate.record
    }

    /// The record was lost (it could not be read at start): every knock of the steps a knock
    /// made before `unix` could belong to, and that are still accepted, counts as used. A
    /// knock's step was at most one ahead of the knocker's step then, so the steps up to one
    /// past the current one are refused; the first step after them opens again. Returns when
    /// that step starts (the latest over the doors), `None` without rotating doors.
    pub fn record_lost(&mut self, unix: u64) -> Option<u64> {
        let mut until = None;
        for door in self.verifier.doors() {
            let now = Step::at(unix, door.step_seconds);
            for offset in -ACCEPTED_STEPS..=ACCEPTED_STEPS {
                self.gate.record.distrust(&door.name, now.offset(offset));
            }
            let open_again = now
                .offset(ACCEPTED_STEPS + 1)
                .0
                .saturating_mul(u64::from(door.step_seconds.get()));
            until = until.max(Some(open_again));
        }
        until
    }

    /// The replay record's text if it changed since the last call: the caller saves it
    /// (atomically) to [`record_file`].
    pub fn take_record(&mut self) -> Option<String> {
        let text = self.gate.record.to_text();
        if text == self.saved {
            return None;
        }
        self.saved = text.clone();
        Some(text)
    }

    fn name(&self, door: usize) -> &str {
        self.verifier
            .doors()
            .get(door)
            .map_or("?", |d| d.name.as_str())
    }

    /// The text of the line `outcome` logs (see [`level`] for whether it logs one); `shared`:
    /// the hit goes to the other doors too.
    fn text(&self, port: Port, outcome: &Outcome, shared: bool) -> String {
        let name = |door: usize| self.name(door).to_owned();
        let step = |door: usize| self.verifier.doors()[door].step_seconds.get();
        match *outcome {
            Outcome::NotOurs | Outcome::Repeat { .. } | Outcome::Refused(Refusal::NotOurs) => {
                String::new()
            }
            Outcome::Progress { door, done, .. } => format!("{}: Stage {done}", name(door)),
            Outcome::Open { door, offset } => {
                let knocks = self.verifier.doors()[door].knocks;
                let skew = if offset == 0 {
                    String::new()
                } else {
                    format!(" ({})", clock_off(offset, step(door)))
                };
                let legacy = if self.legacy.get(door) == Some(&true) {
                    format!(
                        " (knocked on {}, the ports an older `knock-server pair` printed: pair \
                         this client again, `knock-server pair {}`, before the other doors \
                         change)",
                        self.verifier.doors()[door].ports,
                        name(door)
                    )
                } else {
                    String::new()
                };
                format!("{}: Stage {knocks}{skew}{legacy}", name(door))
            }
            Outcome::Replayed { door } => format!(
                "{}: replayed knock refused: this sequence already opened the door in its step{}",
                name(door),
                if self.sealed(door) {
                    ""
                } else {
                    " (for another address)"
                }
            ),
            Outcome::Refused(Refusal::WrongSeal { door }) => format!(
                "{}: knock on port {port} refused: wrong seal in the TCP sequence number (a \
                 guess, a spoof, a client without raw sockets, or a firewall that rewrites \
                 sequence numbers){}",
                name(door),
                if shared {
                    "; another door knocks on this port too: it judges the hit"
                } else {
                    ""
                }
            ),
            Outcome::Refused(Refusal::OffStep { door, offset }) => format!(
                "{}: knock for another time step refused: {}",
                name(door),
                clock_off(offset, step(door))
            ),
            Outcome::OutOfOrder { door } => {
                format!("{}: sequence broken (knock out of order)", name(door))
            }
            Outcome::Full { .. } => "too many attempts in progress, not tracked".to_owned(),
        }
    }

    /// The level of the line `outcome` logs, if any.
    fn level(&self, outcome: &Outcome) -> Option<Level> {
        Some(match *outcome {
            Outcome::NotOurs | Outcome::Repeat { .. } | Outcome::Refused(Refusal::NotOurs) => {
                return None;
            }
            Outcome::Progress { .. } | Outcome::Open { .. } | Outcome::Replayed { .. } => {
                Level::INFO
            }
            // Only the key holder can make a sealed knock: worth saying without -v.
            Outcome::Refused(Refusal::OffStep { door, .. }) if self.sealed(door) => Level::INFO,
            Outcome::Refused(_) | Outcome::OutOfOrder { .. } | Outcome::Full { .. } => Level::DEBUG,
        })
    }

    fn sealed(&self, door: usize) -> bool {
        self.verifier
            .doors()
            .get(door)
            .is_some_and(|d| d.seal != knock_proto::auth::Seal::Off)
    }
}

/// "the knocker's clock seems 3 steps (90 s) behind ours".
fn clock_off(offset: i64, step_seconds: u32) -> String {
    let secs = offset.unsigned_abs() * u64::from(step_seconds);
    let steps = offset.unsigned_abs();
    let plural = if steps == 1 { "" } else { "s" };
    let way = if offset < 0 { "behind" } else { "ahead of" };
    format!("the knocker's clock seems {steps} step{plural} ({secs} s) {way} ours")
}

/// The protocol's doors of a config, their config indexes, and whether each is the twin for
/// clients paired by an older `pair`.
fn rotating_doors(loaded: &Loaded) -> (Vec<RotatingDoor>, Vec<usize>, Vec<bool>) {
    let mut doors = Vec::new();
    let mut ids = Vec::new();
    let mut legacy = Vec::new();
    for i in 0..loaded.config.doors.len() {
        let Some(key) = loaded.keys.get(i).cloned().flatten() else {
            continue;
        };
        let twin = loaded.config.rotating_legacy_door(i, key.clone());
        let Some(d) = loaded.config.rotating_door(i, key) else {
            continue;
        };
        for (d, old) in std::iter::once((d, false)).chain(twin.map(|t| (t, true))) {
            doors.push(d);
            ids.push(i);
            legacy.push(old);
        }
    }
    (doors, ids, legacy)
}

/// Reads a saved record (never through a symlink, never a FIFO): a missing file is an empty
/// record, unless the state file says it was `saved`. A file that cannot be read, is not a
/// record, or was saved and is missing, is lost: `Err` says why, and the caller must then
/// distrust the steps it could have held ([`RotatingDoors::record_lost`]); starting empty
/// instead would let a knock sniffed before the restart be replayed.
pub fn read_record(path: &Path, saved: bool) -> Result<ReplayRecord, String> {
    let what = "the replay record";
    let file = crate::files::open(path, crate::files::Access::Read, 0o600, what);
    let text = match file {
        Ok(Some(f)) => std::io::read_to_string(f),
        // Saved once, so removed since: what it held is lost, not empty.
        Ok(None) if saved => {
            return Err(format!(
                "{} is missing, though the state file says it was saved (removed?)",
                path.display()
            ));
        }
        Ok(None) => return Ok(ReplayRecord::default()),
        Err(e) => return Err(format!("{e:#}")),
    };
    match text {
        Ok(text) => ReplayRecord::from_text(&text).map_err(|e| format!("{}: {e}", path.display())),
        Err(e) => Err(format!("cannot read {}: {e}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_proto::auth::{Key, Nonce, Step};

    const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";
    const UNIX: u64 = 1_790_000_020;

    fn loaded() -> Loaded {
        let text = "[doors.web]\nsequence = \"7001\"\n[doors.ssh]\nsecret_file = \"k\"\nports = \"7000-7010\"\n";
        let config = knock_proto::config::toml::parse(Path::new("k.toml"), text).unwrap();
        Loaded {
            one_time: vec![None, None],
            keys: vec![None, Some(KEY.parse::<Key>().unwrap())],
            config,
        }
    }

    fn knocks(doors: &RotatingDoors, nonce: u8, source: IpAddr) -> Vec<(Knock, u32)> {
        let door = &doors.verifier.doors()[0];
        let step = Step::at(UNIX, door.step_seconds);
        door.sequence(step)
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    Knock::new(p, Proto::Tcp),
                    door.seq(step, i as u8, p, Nonce(nonce), source),
                )
            })
            .collect()
    }

    fn handle(
        doors: &mut RotatingDoors,
        source: IpAddr,
        knock: Knock,
        flags: u8,
        seq: u32,
    ) -> (Handled, Option<Line>) {
        doors.handle(Timestamp::ZERO, source, knock, (flags, seq), |_, _| true)
    }

    fn knock(doors: &mut RotatingDoors, source: IpAddr, ks: &[(Knock, u32)]) -> Handled {
        let mut last = Handled::NotOurs;
        for (k, seq) in ks {
            last = handle(doors, source, *k, bits::SYN, *seq).0;
        }
        last
    }

    #[test]
    fn a_sealed_knock_opens_its_config_door_and_the_record_survives_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let file = record_file(&dir.path().join("pending-stops"));
        let me: IpAddr = "198.18.0.1".parse().unwrap();
        let mut doors = RotatingDoors::new(&loaded(), read_record(&file, false).unwrap(), UNIX);
        let ks = knocks(&doors, 7, me);
        let other_doors_port = ks.iter().any(|(k, _)| k.port.get() == 7001);
        assert!(!other_doors_port, "other doors' ports are taken out");
        assert_eq!(knock(&mut doors, me, &ks), Handled::Open { door: 1 });
        let saved = doors.take_record().unwrap();
        assert!(saved.starts_with("used ssh "), "{saved}");
        assert_eq!(doors.take_record(), None, "saved once");
        std::fs::write(&file, saved).unwrap();
        let mut restarted = RotatingDoors::new(&loaded(), read_record(&file, false).unwrap(), UNIX);
        assert_eq!(knock(&mut restarted, me, &ks), Handled::Taken, "replay");
        let fresh = knocks(&restarted, 8, me);
        assert_eq!(knock(&mut restarted, me, &fresh), Handled::Open { door: 1 });
    }

    #[test]
    fn a_record_removed_after_it_was_saved_is_lost_and_a_link_or_fifo_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let file = record_file(&dir.path().join("pending-stops"));
        assert_eq!(read_record(&file, false), Ok(ReplayRecord::default()));
        let why = read_record(&file, true).unwrap_err();
        assert!(
            why.contains("missing") && why.contains("pending-stops.replay"),
            "{why}"
        );
        let elsewhere = dir.path().join("elsewhere");
        std::fs::write(&elsewhere, "").unwrap();
        std::os::unix::fs::symlink(&elsewhere, &file).unwrap();
        let why = read_record(&file, false).unwrap_err();
        assert!(why.contains("symbolic link"), "{why}");
        std::fs::remove_file(&file).unwrap();
        let made = std::process::Command::new("mkfifo").arg(&file).status();
        assert!(made.unwrap().success());
        let why = read_record(&file, false).unwrap_err();
        assert!(why.contains("FIFO"), "{why}");
    }

    #[test]
    fn a_lost_record_refuses_every_knock_of_the_steps_it_held_then_fresh_knocks_open() {
        let dir = tempfile::tempdir().unwrap();
        let file = record_file(&dir.path().join("pending-stops"));
        let me: IpAddr = "198.18.0.1".parse().unwrap();
        let mut doors = RotatingDoors::new(&loaded(), ReplayRecord::default(), UNIX);
        let ks = knocks(&doors, 7, me);
        assert_eq!(knock(&mut doors, me, &ks), Handled::Open { door: 1 });
        // The disk, or someone, mangled it.
        let saved = doors.take_record().unwrap();
        std::fs::write(&file, format!("{saved}used ssh \u{1}garbage\n")).unwrap();
        let why = read_record(&file, false).unwrap_err();
        assert!(why.contains("line 2"), "{why}");
        let mut restarted = RotatingDoors::new(&loaded(), ReplayRecord::default(), UNIX);
        let until = restarted.record_lost(UNIX).unwrap();
        let step_seconds = u64::from(restarted.verifier.doors()[0].step_seconds.get());
        let step = UNIX / step_seconds;
        assert_eq!(
            until,
            (step + 2) * step_seconds,
            "the first step no knock before the start could use"
        );
        assert_eq!(knock(&mut restarted, me, &ks), Handled::Taken, "the replay");
        let other: IpAddr = "198.18.0.9".parse().unwrap();
        let theirs = knocks(&restarted, 7, other);
        assert_eq!(knock(&mut restarted, other, &theirs), Handled::Taken);
        let fresh = knocks(&restarted, 8, me);
        assert_eq!(
            knock(&mut restarted, me, &fresh),
            Handled::Taken,
            "locked in this step too"
        );
        // Saved at once, so a second restart still refuses.
        let kept = restarted.take_record().unwrap();
        let mut again =
            RotatingDoors::new(&loaded(), ReplayRecord::from_text(&kept).unwrap(), UNIX);
        assert_eq!(knock(&mut again, me, &fresh), Handled::Taken);
        // From `until` on, a fresh knock opens.
        again.roll(Timestamp::from_millis(1000 * (until - UNIX)), until);
        let door = &again.verifier.doors()[0];
        let later = Step::at(until, door.step_seconds);
        let ks: Vec<(Knock, u32)> = door
            .sequence(later)
            .into_iter()
            .enumerate()
            .map(|(i, p)| {
                (
                    Knock::new(p, Proto::Tcp),
                    door.seq(later, i as u8, p, Nonce(9), me),
                )
            })
            .collect();
        let at = Timestamp::from_millis(1000 * (until - UNIX));
        let mut last = Handled::NotOurs;
        for (k, seq) in &ks {
            last = again.handle(at, me, *k, (bits::SYN, *seq), |_, _| true).0;
        }
        assert_eq!(last, Handled::Open { door: 1 });
    }

    #[test]
    fn udp_acks_and_other_ports_are_the_trackers() {
        let me: IpAddr = "198.18.0.1".parse().unwrap();
        let mut doors = RotatingDoors::new(&loaded(), ReplayRecord::default(), UNIX);
        let (k, seq) = knocks(&doors, 7, me)[0];
        let udp = Knock::new(k.port, Proto::Udp);
        let not_ours = (Handled::NotOurs, None);
        assert_eq!(handle(&mut doors, me, udp, 0, seq), not_ours);
        let ack = bits::SYN | bits::ACK;
        assert_eq!(handle(&mut doors, me, k, ack, seq), not_ours);
        let other = Knock::new(Port::new(9999).unwrap(), Proto::Tcp);
        assert_eq!(handle(&mut doors, me, other, bits::SYN, seq), not_ours);
        let (handled, line) = handle(&mut doors, me, k, bits::SYN, seq ^ 1);
        assert_eq!(handled, Handled::Taken);
        assert!(line.unwrap().1.contains("wrong seal"));
        // Without -v nobody reads that line: it is not even formatted.
        let info_only = |l: Level, _| l <= Level::INFO;
        let (handled, line) = doors.handle(Timestamp::ZERO, me, k, (bits::SYN, seq ^ 1), info_only);
        assert_eq!((handled, line), (Handled::Taken, None));
        let filter = doors.filter_knocks(&loaded().config);
        assert!(filter[0].is_empty() && filter[1].contains(&k));
    }

    #[test]
    fn a_hit_on_a_port_a_fixed_door_knocks_on_too_is_the_trackers_as_well_unless_sealed_right() {
        let me: IpAddr = "198.18.0.1".parse().unwrap();
        let ks = knocks(
            &RotatingDoors::new(&loaded(), ReplayRecord::default(), UNIX),
            7,
            me,
        );
        // An unsealed door of the same key: its first knock of this step.
        let unsealed = |extra: &str| {
            format!(
                "[doors.ssh]\nsecret_file = \"k\"\nports = \"7000-7010\"\n\
                 [doors.open]\nsecret_file = \"k\"\nports = \"7100-7110\"\nsealed = false\n{extra}"
            )
        };
        let with = |text: String| {
            let config = knock_proto::config::toml::parse(Path::new("k.toml"), &text).unwrap();
            let key = KEY.parse::<Key>().unwrap();
            let keys = (0..config.doors.len())
                .map(|i| (i < 2).then(|| key.clone()))
                .collect();
            Loaded {
                one_time: vec![None; config.doors.len()],
                keys,
                config,
            }
        };
        let probe = RotatingDoors::new(&with(unsealed("")), ReplayRecord::default(), UNIX);
        let door = &probe.verifier.doors()[1];
        let theirs = door.sequence(Step::at(UNIX, door.step_seconds))[0];
        // A fixed door added later knocks on both doors' first ports.
        let fixed = format!("[doors.web]\nsequence = \"{},{theirs}\"\n", ks[0].0.port);
        let mut doors = RotatingDoors::new(&with(unsealed(&fixed)), ReplayRecord::default(), UNIX);
        let (k, seq) = ks[0];
        // A sealed knock with the right seal is the rotating door's only.
        assert_eq!(handle(&mut doors, me, k, bits::SYN, seq).0, Handled::Taken);
        // A wrong seal may be the fixed door's knock: both judge it.
        let (handled, line) = handle(&mut doors, me, k, bits::SYN, seq ^ 1);
        assert_eq!(handled, Handled::Shared);
        assert!(
            line.unwrap()
                .1
                .contains("another door knocks on this port too")
        );
        // Not on a port of no other door.
        let (k1, seq1) = ks[1];
        assert_eq!(
            handle(&mut doors, me, k1, bits::SYN, seq1 ^ 1).0,
            Handled::Taken
        );
        // Any SYN is a knock of the unsealed door: both count it.
        let syn = Knock::new(theirs, Proto::Tcp);
        let (handled, line) = handle(&mut doors, me, syn, bits::SYN, 0);
        assert_eq!(handled, Handled::Shared);
        assert_eq!(line.unwrap().1, "open: Stage 1");
        // The filter has both doors' ports, for each door.
        let filter = doors.filter_knocks(&with(unsealed(&fixed)).config);
        assert!(filter[0].contains(&k) && filter[1].contains(&syn));
    }

    #[test]
    fn clock_offsets_read_as_people_say_them() {
        assert_eq!(
            clock_off(-3, 30),
            "the knocker's clock seems 3 steps (90 s) behind ours"
        );
        assert_eq!(
            clock_off(1, 30),
            "the knocker's clock seems 1 step (30 s) ahead of ours"
        );
    }
}

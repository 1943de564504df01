//! Running a door's commands: never through a shell, never blocking the engine.
//!
//! The configured command line was split into arguments when the config was read
//! ([`knock_proto::config::CommandTemplate`]); `%IP%` is substituted inside those arguments,
//! and the program is executed directly. A config written for knockd as
//! `/bin/sh -c 'iptables ... %IP% ...'` still runs its shell, by its own choice, with the
//! address as plain text inside one argument. Each child is reaped by a small thread that
//! logs a non-zero exit status (knockd's wording) and what it wrote to stderr, and reports
//! the outcome (a failed start command leaves its door closed).

use std::collections::HashMap;
use std::io::Read as _;
use std::net::IpAddr;
use std::os::unix::process::CommandExt as _;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// Most start commands of one door running at once. A burst of successful knocks beyond
/// this is refused (and logged) instead of exhausting the host (knockd issue #86); the cap is
/// per door, so that a flood of completions of one sniffed sequence never keeps another
/// door's commands from running. Stop commands are never refused: they close what a start
/// command opened.
pub const MAX_RUNNING_START_COMMANDS: usize = 64;

/// Most start commands running at once, all doors together.
pub const MAX_RUNNING_START_COMMANDS_TOTAL: usize = 256;

/// Most start commands of one knocker running at once, all doors together: a burst of
/// completions from one (spoofed) address never takes every place the caps above leave, so
/// a legitimate knocker still gets one.
pub const MAX_RUNNING_START_COMMANDS_PER_KNOCKER: usize = 4;

/// How a command ended, as reported to the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Done {
    /// It ran and exited with status 0.
    Succeeded,
    /// It could not start, was killed or exited non-zero.
    Failed,
    /// It was refused before it ran (the reason is logged).
    Refused,
}

/// Start commands running now, counted the ways the caps limit them.
#[derive(Debug, Default)]
struct Running {
    per_door: HashMap<String, usize>,
    per_knocker: HashMap<IpAddr, usize>,
}

impl Running {
    /// Why one more start command of `door` for `knocker` may not run now, if it may not.
    fn refusal(&self, door: &str, knocker: Option<IpAddr>) -> Option<String> {
        let total: usize = self.per_door.values().sum();
        let of_door = self.per_door.get(door).copied().unwrap_or(0);
        let of_knocker = knocker.map_or(0, |k| self.per_knocker.get(&k).copied().unwrap_or(0));
        if of_door >= MAX_RUNNING_START_COMMANDS {
            Some(format!(
                "{of_door} start commands of this door already running"
            ))
        } else if total >= MAX_RUNNING_START_COMMANDS_TOTAL {
            Some(format!("{total} start commands already running"))
        } else if of_knocker >= MAX_RUNNING_START_COMMANDS_PER_KNOCKER {
            Some(format!(
                "{of_knocker} start commands for this knocker already running"
            ))
        } else {
            None
        }
    }

    fn add(&mut self, door: &str, knocker: Option<IpAddr>) {
        *self.per_door.entry(door.to_owned()).or_default() += 1;
        if let Some(k) = knocker {
            *self.per_knocker.entry(k).or_default() += 1;
        }
    }

    fn remove(&mut self, door: &str, knocker: Option<IpAddr>) {
        fn down<K: std::hash::Hash + Eq>(map: &mut HashMap<K, usize>, key: &K) {
            if let Some(n) = map.get_mut(key) {
                *n -= 1;
                if *n == 0 {
                    map.remove(key);
                }
            }
        }
        down(&mut self.per_door, &door.to_owned());
        if let Some(k) = knocker {
            down(&mut self.per_knocker, &k);
        }
    }
}

/// Which kind of command, for the limit above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A start command: may be refused when too many run.
    Start,
    /// A stop command: always runs.
    Stop,
}

/// The process groups of running commands (= their pids), with their kind.
pub type Groups = Arc<Mutex<HashMap<i32, Kind>>>;

/// Called with a command's id and how it ended, from the thread that reaped it (or at once
/// when it could not start or was refused).
pub type Outcome = Arc<dyn Fn(u64, Done) + Send + Sync>;

/// Spawns commands and keeps track of them: each runs in a process group of its own, so that
/// shutdown can end it with everything it started ([`Runner::kill_all`]).
pub struct Runner {
    /// Start commands running, per door and per knocker.
    running_starts: Arc<Mutex<Running>>,
    /// Process groups (= the command's pid) of the commands still running, and their kind.
    groups: Groups,
    reapers: Vec<JoinHandle<()>>,
    outcome: Outcome,
}

impl std::fmt::Debug for Runner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runner")
            .field("running", &self.running())
            .finish_non_exhaustive()
    }
}

impl Runner {
    /// A runner that reports each command's outcome to `outcome`.
    pub fn new(outcome: Outcome) -> Runner {
        Runner {
            running_starts: Arc::default(),
            groups: Arc::default(),
            reapers: Vec::new(),
            outcome,
        }
    }

    /// The set of running commands' process groups, to wait for or kill them from another
    /// thread.
    pub fn groups(&self) -> Groups {
        self.groups.clone()
    }

    /// Commands running now.
    pub fn running(&self) -> usize {
        lock(&self.groups).len()
    }

    /// Logs knockd's `door: running command: TEXT` and starts `argv`; its outcome is
    /// reported as `id`. A start command (with its `knocker`) beyond the caps is refused.
    pub fn run(
        &mut self,
        id: u64,
        door: &str,
        kind: Kind,
        knocker: Option<IpAddr>,
        argv: Vec<String>,
        text: &str,
    ) {
        self.reapers.retain(|h| !h.is_finished());
        if kind == Kind::Start {
            let refusal = lock(&self.running_starts).refusal(door, knocker);
            if let Some(why) = refusal {
                let who = knocker.map(|k| format!("{k}: ")).unwrap_or_default();
                tracing::error!(
                    "{who}{door}: start refused: {why} (the limit); the door stays closed"
                );
                (self.outcome)(id, Done::Refused);
                return;
            }
        }
        tracing::info!("{door}: running command: {text}");
        let Some((program, args)) = argv.split_first() else {
            (self.outcome)(id, Done::Failed);
            return;
        };
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .process_group(0)
            .spawn();
        let child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{door}: cannot run {program}: {e}");
                (self.outcome)(id, Done::Failed);
                return;
            }
        };
        let pid = i32::try_from(child.id()).unwrap_or(0);
        lock(&self.groups).insert(pid, kind);
        let starts = (kind == Kind::Start).then(|| self.running_starts.clone());
        if let Some(s) = &starts {
            lock(s).add(door, knocker);
        }
        let (groups, outcome, name) = (self.groups.clone(), self.outcome.clone(), door.to_owned());
        let reaper = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                let ok = reap(child, &name);
                lock(&groups).remove(&pid);
                if let Some(s) = starts {
                    lock(&s).remove(&name, knocker);
                }
                outcome(id, if ok { Done::Succeeded } else { Done::Failed });
            });
        match reaper {
            Ok(h) => self.reapers.push(h),
            Err(e) => tracing::error!("{door}: cannot start a reaper thread: {e}"),
        }
    }

    /// Waits for every command started so far.
    pub fn wait_all(&mut self) {
        for h in self.reapers.drain(..) {
            let _ = h.join();
        }
    }
}

/// Kills the process groups in `groups` (SIGKILL) of commands of kind `only`, or all: what
/// is left of the commands when the shutdown grace is over.
pub fn kill(groups: &Mutex<HashMap<i32, Kind>>, only: Option<Kind>) {
    for (&pid, &kind) in lock(groups).iter() {
        if only.is_some_and(|k| k != kind) {
            continue;
        }
        let Some(pid) = rustix::process::Pid::from_raw(pid) else {
            continue;
        };
        if let Err(e) = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL) {
            tracing::debug!("cannot kill process group {pid:?}: {e}");
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Waits for `child`, logging a failure in knockd's words and its stderr; true on success.
fn reap(mut child: std::process::Child, door: &str) -> bool {
    let mut stderr = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    let status = child.wait();
    let ok = match status {
        Ok(s) if s.success() => true,
        Ok(s) => {
            match s.code() {
                Some(code) => {
                    tracing::warn!("{door}: command returned non-zero status code ({code})")
                }
                None => tracing::warn!("{door}: command was killed ({s})"),
            }
            false
        }
        Err(e) => {
            tracing::error!("{door}: cannot wait for command: {e}");
            false
        }
    };
    for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
        tracing::debug!("{door}: command stderr: {line}");
    }
    ok
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_knocker_never_takes_every_place_a_door_has() {
        let mut running = Running::default();
        let spoofer: IpAddr = "198.18.0.66".parse().unwrap();
        let admitted = (0..MAX_RUNNING_START_COMMANDS)
            .filter(|_| {
                let ok = running.refusal("door", Some(spoofer)).is_none();
                if ok {
                    running.add("door", Some(spoofer));
                }
                ok
            })
            .count();
        assert_eq!(admitted, MAX_RUNNING_START_COMMANDS_PER_KNOCKER);
        let why = running.refusal("door", Some(spoofer)).unwrap();
        assert_eq!(why, "4 start commands for this knocker already running");
        let knocker: IpAddr = "198.18.0.1".parse().unwrap();
        assert_eq!(running.refusal("door", Some(knocker)), None);
        running.remove("door", Some(spoofer));
        assert_eq!(running.refusal("door", Some(spoofer)), None);
    }

    #[test]
    fn the_caps_of_a_door_and_of_all_doors_say_which_was_reached() {
        let mut running = Running::default();
        for i in 0..MAX_RUNNING_START_COMMANDS {
            running.add("a", Some(IpAddr::from([198, 18, 1, i as u8])));
        }
        assert_eq!(
            running.refusal("a", Some("198.18.0.1".parse().unwrap())),
            Some("64 start commands of this door already running".to_owned())
        );
        for door in ["b", "c", "d"] {
            for i in 0..MAX_RUNNING_START_COMMANDS {
                running.add(door, Some(IpAddr::from([198, 18, 2, i as u8])));
            }
        }
        assert_eq!(
            running.refusal("e", None),
            Some("256 start commands already running".to_owned())
        );
    }
}

//! Running a door's commands: never through a shell, never blocking the engine.
//!
//! The configured command line was split into arguments when the config was read
//! ([`knock_proto::config::CommandTemplate`]); `%IP%` is substituted inside those arguments,
//! and the program is executed directly. A config written for knockd as
//! `/bin/sh -c 'iptables ... %IP% ...'` still runs its shell, by its own choice, with the
//! address as plain text inside one argument. Each child is reaped by a small thread that
//! logs a non-zero exit status (knockd's wording) and what it wrote to stderr.

use std::io::Read as _;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::thread::JoinHandle;

/// Most start commands running at once. A burst of successful knocks beyond this is refused
/// (and logged) instead of exhausting the host (knockd issue #86). Stop commands are never
/// refused: they close what a start command opened.
pub const MAX_RUNNING_START_COMMANDS: usize = 64;

/// Which kind of command, for the limit above.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// A start command: may be refused when too many run.
    Start,
    /// A stop command: always runs.
    Stop,
}

/// Spawns commands and keeps track of the reaper threads.
#[derive(Debug, Default)]
pub struct Runner {
    running: Arc<AtomicUsize>,
    reapers: Vec<JoinHandle<()>>,
}

impl Runner {
    /// Logs knockd's `door: running command: TEXT` and starts `argv`.
    pub fn run(&mut self, door: &str, kind: Kind, argv: Vec<String>, text: &str) {
        self.reapers.retain(|h| !h.is_finished());
        if kind == Kind::Start && self.running.load(Ordering::Relaxed) >= MAX_RUNNING_START_COMMANDS
        {
            tracing::error!(
                "{door}: not running command: {MAX_RUNNING_START_COMMANDS} commands are still running"
            );
            return;
        }
        tracing::info!("{door}: running command: {text}");
        let Some((program, args)) = argv.split_first() else {
            return;
        };
        let child = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn();
        let mut child = match child {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("{door}: cannot run {program}: {e}");
                return;
            }
        };
        let running = self.running.clone();
        running.fetch_add(1, Ordering::Relaxed);
        let door_name = door.to_owned();
        let reaper = std::thread::Builder::new()
            .name("reaper".into())
            .spawn(move || {
                let door = door_name;
                let mut stderr = String::new();
                if let Some(mut e) = child.stderr.take() {
                    let _ = e.read_to_string(&mut stderr);
                }
                let status = child.wait();
                running.fetch_sub(1, Ordering::Relaxed);
                match status {
                    Ok(s) if s.success() => {}
                    Ok(s) => match s.code() {
                        Some(code) => {
                            tracing::warn!("{door}: command returned non-zero status code ({code})")
                        }
                        None => tracing::warn!("{door}: command was killed ({s})"),
                    },
                    Err(e) => tracing::error!("{door}: cannot wait for command: {e}"),
                }
                for line in stderr.lines().filter(|l| !l.trim().is_empty()) {
                    tracing::debug!("{door}: command stderr: {line}");
                }
            });
        match reaper {
            Ok(h) => self.reapers.push(h),
            Err(e) => tracing::error!("{door}: cannot start a reaper thread: {e}"),
        }
    }

    /// Waits for every command started so far (at shutdown, so that stop commands finish
    /// before the daemon exits).
    pub fn wait_all(&mut self) {
        for h in self.reapers.drain(..) {
            let _ = h.join();
        }
    }
}

//! The executor's workers: each a thread with a bounded queue whose depth status reports,
//! so that commands, the journal, nftables, mail and name lookups never run on the thread
//! that handles knocks.

use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::mpsc::{self, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

use knock_proto::Sequence;
use knock_proto::onetime::OneTimeSequences;

use super::Msg;
use crate::control::Response;
use crate::engine::{Effect, LogLine, Run};
use crate::journal::Record;
use crate::perform::Performer;

/// Command outcomes and marked one-time files on their way to the engine. A worker never
/// blocks on a full queue (hits fill it under a flood): what does not fit waits in
/// `overflow`, which the executor reads on every turn.
#[derive(Clone)]
pub(super) struct Outcomes {
    pub(super) tx: SyncSender<Msg>,
    pub(super) overflow: Arc<Mutex<Vec<Msg>>>,
}

impl Outcomes {
    pub(super) fn report(&self, id: u64, done: crate::exec::Done) {
        self.send(Msg::CommandDone { id, done });
    }

    pub(super) fn send(&self, msg: Msg) {
        if let Err(TrySendError::Full(msg)) = self.tx.try_send(msg) {
            lock(&self.overflow).push(msg);
        }
    }
}

/// What the commands worker does, in order.
pub(super) enum Job {
    Journal(Record),
    Run(Run),
    MarkOneTime {
        door: String,
        path: PathBuf,
        used: Sequence,
    },
    SaveReplay {
        path: PathBuf,
        text: String,
    },
}

/// What the actions worker does.
pub(super) enum Action {
    Perform(Effect),
    CheckFirewall,
    /// Sends a control request's answer once the actions queued before it are done: a close
    /// is answered when its ports are closed, not when they are about to be.
    Answer(Response, mpsc::Sender<Response>),
}

/// A worker thread with a bounded queue and its depth.
pub(super) struct Worker<T> {
    tx: Option<SyncSender<T>>,
    depth: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl<T: Send + 'static> Worker<T> {
    pub(super) fn start(
        name: &str,
        capacity: usize,
        mut work: impl FnMut(T) + Send + 'static,
    ) -> std::io::Result<Worker<T>> {
        let (tx, rx) = mpsc::sync_channel::<T>(capacity);
        let depth = Arc::new(AtomicUsize::new(0));
        let d = depth.clone();
        let thread = std::thread::Builder::new()
            .name(name.into())
            .spawn(move || {
                for job in rx {
                    work(job);
                    d.fetch_sub(1, Ordering::Relaxed);
                }
            })?;
        Ok(Worker {
            tx: Some(tx),
            depth,
            thread: Some(thread),
        })
    }

    /// Queues `job`, waiting for room: for what must never be dropped (stops, journal).
    pub(super) fn send(&self, job: T) {
        if let Some(tx) = &self.tx {
            self.depth.fetch_add(1, Ordering::Relaxed);
            if tx.send(job).is_err() {
                self.depth.fetch_sub(1, Ordering::Relaxed);
            }
        }
    }

    /// Queues `job` unless the queue is full; gives it back then.
    pub(super) fn try_send(&self, job: T) -> Result<(), T> {
        let Some(tx) = &self.tx else { return Err(job) };
        self.depth.fetch_add(1, Ordering::Relaxed);
        match tx.try_send(job) {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(j) | TrySendError::Disconnected(j)) => {
                self.depth.fetch_sub(1, Ordering::Relaxed);
                Err(j)
            }
        }
    }

    pub(super) fn depth(&self) -> usize {
        self.depth.load(Ordering::Relaxed)
    }

    /// Lets the worker finish its queue and waits for it.
    pub(super) fn finish(&mut self) {
        self.tx = None;
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Performs a built-in action on the actions worker.
pub(super) fn perform(performer: &mut Performer, effect: Effect) {
    match effect {
        Effect::Perform { door, source, ran } => performer.perform(&door, source, &ran),
        Effect::Allow {
            door,
            source,
            ports,
            open_for,
        } => performer.allow(&door, source, &ports, open_for),
        Effect::Revoke {
            door,
            source,
            ports,
        } => performer.revoke(&door, source, &ports),
        Effect::ReinstallFirewall => performer.reinstall_firewall(),
        Effect::Reconfigure(config) => performer.reconfigure(&config),
        Effect::Exit => performer.shutdown(),
        _ => {}
    }
}

/// Marks `used` in its one-time file (on the commands worker); the file's sequences now.
pub(super) fn mark_one_time(door: &str, path: &Path, used: &Sequence) -> Option<OneTimeSequences> {
    match crate::onetime_file::mark_used(path, used) {
        Ok(fresh) => Some(fresh),
        Err(e) => {
            tracing::error!("{door}: cannot mark the used one-time sequence: {e:#}");
            None
        }
    }
}

/// Saves the rotating doors' replay record (atomically, mode 0600); whether it was saved.
pub(super) fn save_replay(path: &Path, text: &str) -> bool {
    let saved = crate::load::write_private(path, text);
    if let Err(e) = &saved {
        tracing::error!("cannot save the replay record {}: {e:#}", path.display());
    }
    saved.is_ok()
}

/// Whether a line at `level` reaches any log sink.
pub(super) fn enabled(level: tracing::Level) -> bool {
    match level {
        tracing::Level::ERROR => tracing::enabled!(tracing::Level::ERROR),
        tracing::Level::WARN => tracing::enabled!(tracing::Level::WARN),
        tracing::Level::INFO => tracing::enabled!(tracing::Level::INFO),
        tracing::Level::DEBUG => tracing::enabled!(tracing::Level::DEBUG),
        tracing::Level::TRACE => tracing::enabled!(tracing::Level::TRACE),
    }
}

/// Logs `line` at its level, with the knocker's `name` if known.
pub(super) fn emit(line: &LogLine, name: Option<&str>) {
    let text = line.render(name);
    match line.level {
        tracing::Level::ERROR => tracing::error!("{text}"),
        tracing::Level::WARN => tracing::warn!("{text}"),
        tracing::Level::INFO => tracing::info!("{text}"),
        tracing::Level::DEBUG => tracing::debug!("{text}"),
        tracing::Level::TRACE => tracing::trace!("{text}"),
    }
}

/// The knocker's DNS name (`-l`), if it has one other than its address.
pub(super) fn lookup(ip: IpAddr) -> Option<String> {
    dns_lookup::lookup_addr(&ip)
        .ok()
        .filter(|n| *n != ip.to_string())
}

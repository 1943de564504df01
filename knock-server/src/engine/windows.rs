//! The doors a knock opened, until they close: one window per (door, knocker).
//!
//! A window has up to two parts, each with its own end: a stop command to run (journaled, so
//! a crash never loses it) and ports opened in nftables (which the kernel closes by itself,
//! kept here for status, close requests and putting back a deleted table). A re-knock moves
//! the ends of the one window; nothing else can fire for it. Every operation is O(log n) in
//! the number of open windows, and their number is bounded by the caller.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use knock_proto::Timestamp;
use knock_proto::sequence::Knock;

use super::effects::CommandId;

/// A window's number: also its id in the journal.
pub type WindowId = u64;

/// A stop command waiting for its time.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stop {
    /// When it runs.
    pub at: Timestamp,
    /// Program and arguments.
    pub argv: Vec<String>,
    /// As logged.
    pub text: String,
}

/// Ports open to the knocker until `until` (the kernel's timeout).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ports {
    /// When the kernel closes them.
    pub until: Timestamp,
    /// Which.
    pub ports: Vec<Knock>,
}

/// A door open for one knocker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Window {
    /// Its number.
    pub id: WindowId,
    /// The door's name.
    pub door: String,
    /// The knocker.
    pub source: IpAddr,
    /// When it opened or was last extended.
    pub since: Timestamp,
    /// The stop command, if the door has one.
    pub stop: Option<Stop>,
    /// Ports opened in nftables, if any.
    pub ports: Option<Ports>,
    /// The start command of this opening while it runs: if it fails, the door stays closed.
    pub starting: Option<CommandId>,
}

impl Window {
    /// When the next part ends.
    fn deadline(&self) -> Option<Timestamp> {
        let stop = self.stop.as_ref().map(|s| s.at);
        let ports = self.ports.as_ref().map(|p| p.until);
        stop.into_iter().chain(ports).min()
    }

    /// When the last part ends.
    pub fn closes_at(&self) -> Option<Timestamp> {
        let stop = self.stop.as_ref().map(|s| s.at);
        let ports = self.ports.as_ref().map(|p| p.until);
        stop.into_iter().chain(ports).max()
    }
}

/// What came due in one window.
#[derive(Debug)]
pub struct Due {
    /// The window (after the due parts were taken out).
    pub id: WindowId,
    /// The door's name.
    pub door: String,
    /// The knocker.
    pub source: IpAddr,
    /// The stop command to run now, if it was due.
    pub stop: Option<Stop>,
}

/// Every open window.
#[derive(Debug, Default)]
pub struct Windows {
    by_id: HashMap<WindowId, Window>,
    by_key: HashMap<(String, IpAddr), WindowId>,
    due: BTreeSet<(Timestamp, WindowId)>,
    next_id: WindowId,
}

impl Windows {
    /// Open windows.
    pub fn len(&self) -> usize {
        self.by_id.len()
    }

    /// Whether none is open.
    pub fn is_empty(&self) -> bool {
        self.by_id.is_empty()
    }

    /// A fresh window number, above every one used before (adopted ones included).
    pub fn next_id(&mut self) -> WindowId {
        self.next_id = self.next_id.max(1);
        let id = self.next_id;
        self.next_id += 1;
        id
    }

    /// The window of `door` for `source`.
    pub fn find(&self, door: &str, source: IpAddr) -> Option<&Window> {
        let id = self.by_key.get(&(door.to_owned(), source))?;
        self.by_id.get(id)
    }

    /// The window `id`.
    pub fn get(&self, id: WindowId) -> Option<&Window> {
        self.by_id.get(&id)
    }

    /// Every window, in no order.
    pub fn iter(&self) -> impl Iterator<Item = &Window> {
        self.by_id.values()
    }

    /// Adds or replaces a window (same id or same door and knocker).
    pub fn put(&mut self, w: Window) {
        if let Some(old) = self.by_key.get(&(w.door.clone(), w.source)).copied() {
            if old != w.id {
                self.remove(old);
            }
        }
        self.unschedule(w.id);
        self.next_id = self.next_id.max(w.id + 1);
        if let Some(at) = w.deadline() {
            self.due.insert((at, w.id));
        }
        self.by_key.insert((w.door.clone(), w.source), w.id);
        self.by_id.insert(w.id, w);
    }

    /// Changes window `id` with `f`, keeping the schedule right; a window left with no part
    /// is removed. Returns what `f` returned, or `None` if there is no such window.
    pub fn update<T>(&mut self, id: WindowId, f: impl FnOnce(&mut Window) -> T) -> Option<T> {
        let mut w = self.by_id.get(&id)?.clone();
        let out = f(&mut w);
        if w.stop.is_none() && w.ports.is_none() {
            self.remove(id);
        } else {
            self.put(w);
        }
        Some(out)
    }

    /// Removes window `id`.
    pub fn remove(&mut self, id: WindowId) -> Option<Window> {
        self.unschedule(id);
        let w = self.by_id.remove(&id)?;
        self.by_key.remove(&(w.door.clone(), w.source));
        Some(w)
    }

    fn unschedule(&mut self, id: WindowId) {
        if let Some(at) = self.by_id.get(&id).and_then(Window::deadline) {
            self.due.remove(&(at, id));
        }
    }

    /// When the next part of a window ends.
    pub fn poll_at(&self) -> Option<Timestamp> {
        self.due.first().map(|&(at, _)| at)
    }

    /// Takes out every part due at `now`, soonest first.
    pub fn take_due(&mut self, now: Timestamp) -> Vec<Due> {
        let mut out = Vec::new();
        while let Some(&(at, id)) = self.due.first() {
            if at > now {
                break;
            }
            let due = self.update(id, |w| {
                let stop = w.stop.take_if(|s| s.at <= now);
                w.ports.take_if(|p| p.until <= now);
                Due {
                    id,
                    door: w.door.clone(),
                    source: w.source,
                    stop,
                }
            });
            match due {
                Some(d) => out.push(d),
                None => {
                    self.due.remove(&(at, id));
                }
            }
        }
        out
    }
}

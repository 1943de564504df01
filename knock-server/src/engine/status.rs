//! The engine's answers to control requests: status, and closing doors now.

use knock_proto::Timestamp;
use tracing::Level;

use super::Engine;
use super::windows::Window;
use crate::control::{self, DoorStatus, OpenWindow, Request, Response, Status};

impl Engine {
    /// Answers a control request at `now`. `outside` holds the counters the engine does not
    /// keep (packets, ignored, dropped, queued effects) and the daemon's identity, which
    /// [`Response::Status`] passes through.
    pub fn control(&mut self, now: Timestamp, request: &Request, outside: Status) -> Response {
        self.clock = self.clock.max(now);
        match request {
            Request::Status => Response::Status(self.status(outside)),
            Request::Close { door, source } => {
                let known = self.config.doors.iter().any(|d| &d.name == door)
                    || self.windows.iter().any(|w| &w.door == door);
                if !known {
                    let names: Vec<&str> =
                        self.config.doors.iter().map(|d| d.name.as_str()).collect();
                    return Response::Error {
                        message: format!(
                            "no door named `{door}` (the doors are: {})",
                            names.join(", ")
                        ),
                    };
                }
                self.close_where(|w| &w.door == door && source.is_none_or(|s| s == w.source))
            }
            Request::CloseAll => self.close_where(|_| true),
        }
    }

    /// Closes every window `matches` picks: its stop command runs once and is journaled
    /// closed, its nftables ports are revoked, and the window is gone (no timer runs it again).
    fn close_where(&mut self, matches: impl Fn(&Window) -> bool) -> Response {
        let mut picked: Vec<&Window> = self.windows.iter().filter(|w| matches(w)).collect();
        picked.sort_by_key(|w| (w.door.clone(), w.source));
        let ids: Vec<u64> = picked.iter().map(|w| w.id).collect();
        let mut closed = Vec::new();
        for id in ids {
            let Some(w) = self.windows.remove(id) else {
                continue;
            };
            closed.push(self.describe(&w));
            self.log(
                Level::INFO,
                Some(w.source),
                format!("{}: closed on request", w.door),
            );
            if let Some(stop) = w.stop {
                self.run_stop(id, &w.door, stop);
            }
            if let Some(p) = w.ports {
                self.effects.push_back(super::Effect::Revoke {
                    door: w.door.clone(),
                    source: w.source,
                    ports: p.ports,
                });
            }
            if let Some(cmd) = w.starting {
                self.starting.remove(&cmd);
            }
        }
        Response::Closed { closed }
    }

    fn status(&self, outside: Status) -> Status {
        let mut open: Vec<OpenWindow> = self.windows.iter().map(|w| self.describe(w)).collect();
        open.sort_by_key(|w| (w.closes_in_secs, w.door.clone(), w.source));
        let doors = self
            .config
            .doors
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let counts = self.door_counts.get(i).cloned().unwrap_or_default();
                let rotating = self.rotating.door_counts(self.clock, i);
                DoorStatus {
                    name: d.name.clone(),
                    enabled: rotating.is_some() || self.sequence_len(i).is_some(),
                    attempts: rotating.as_ref().map_or(counts.attempts, |r| r.attempts),
                    evicted: self.tracker.evicted_on(i),
                    last_broken: counts
                        .last_broken
                        .map(|(source, why)| format!("{source}: {why}")),
                    refused: rotating.map(|r| r.refused),
                    ports: self.config.rotating_door_ports(i).map(|p| p.to_string()),
                }
            })
            .collect();
        Status {
            doors,
            open,
            counters: control::Counters {
                evicted: self.tracker.stats().evicted,
                seal_checks: self.rotating.seal_checks(),
                ..outside.counters
            },
            ..outside
        }
    }

    fn describe(&self, w: &Window) -> OpenWindow {
        let how = match (&w.stop, &w.ports) {
            (Some(_), Some(_)) => "stop command, nftables",
            (Some(_), None) => "stop command",
            _ => "nftables",
        };
        let closes_at = w.closes_at().unwrap_or(self.clock);
        OpenWindow {
            door: w.door.clone(),
            source: w.source,
            since_unix: self.unix_secs(w.since),
            closes_in_secs: closes_at.saturating_since(self.clock).as_secs(),
            how: how.to_owned(),
            forwards: match &w.ports {
                Some(_) => self
                    .config
                    .doors
                    .iter()
                    .find(|d| d.name == w.door)
                    .map(|d| d.actions.forward.iter().map(ToString::to_string).collect())
                    .unwrap_or_default(),
                None => Vec::new(),
            },
        }
    }
}

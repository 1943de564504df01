//! The control socket's protocol: what `knock-server status` and `knock-server close` ask a
//! running daemon, and what it answers.
//!
//! One request per connection: the client writes one JSON line ([`Request`]), the daemon
//! answers with one JSON line ([`Response`]) and closes. JSON, so that scripts and monitoring
//! can speak it too (`socat - UNIX-CONNECT:/run/knock-server/knock-server.sock`). The socket
//! lives in the runtime directory, is owned by root and created 0600: whoever can use it can
//! close every door.
//!
//! These types are the seam between the socket (which only moves bytes) and the engine (which
//! answers): the engine takes a [`Request`] as an input and returns a [`Response`] as an effect.

use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "request")]
pub enum Request {
    /// Open doors, attempts in progress and counters.
    Status,
    /// Close `door` now for `source`, or for every knocker it is open to.
    Close {
        /// The door's name, as in the config.
        door: String,
        /// Only this knocker; `None`: everyone the door is open to.
        source: Option<IpAddr>,
    },
    /// Close every open door.
    CloseAll,
}

/// What the daemon answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "response")]
pub enum Response {
    /// The answer to [`Request::Status`].
    Status(Status),
    /// The answer to [`Request::Close`] and [`Request::CloseAll`]: what was closed (stop
    /// commands run, nftables elements deleted). Empty when nothing matched.
    Closed {
        /// The windows that were open and are now closed.
        closed: Vec<OpenWindow>,
    },
    /// The request could not be served (an unknown door, say); the text says why and what to
    /// do. The client prints it and exits 2.
    Error {
        /// Human-readable, one line.
        message: String,
    },
}

/// A snapshot of the daemon.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Status {
    /// The instance's name (`--instance`).
    pub instance: String,
    /// The daemon's process id.
    pub pid: u32,
    /// The config file in force.
    pub config: String,
    /// Seconds since the daemon started.
    pub uptime_secs: u64,
    /// Every door of the config, in config order, with its attempts in progress.
    pub doors: Vec<DoorStatus>,
    /// Every window a knock opened that has not closed yet, soonest to close first.
    pub open: Vec<OpenWindow>,
    /// Counters since start.
    pub counters: Counters,
}

/// One door of the config.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct DoorStatus {
    /// The door's name.
    pub name: String,
    /// False when the door cannot open (a used-up one-time file).
    pub enabled: bool,
    /// Sources part-way through its sequence now.
    pub attempts: u64,
    /// Attempts on this door evicted to make room since start.
    pub evicted: u64,
    /// Why the most recent broken attempt broke, e.g.
    /// `198.18.0.1: sequence broken at stage 3: expected 1/tcp, got 2/tcp`.
    pub last_broken: Option<String>,
    /// Rotating doors only (`secret_file`): knocks on its ports refused since start, by
    /// reason; `null` for the other doors.
    #[serde(default)]
    pub refused: Option<Refused>,
    /// Rotating doors only: the ports its knocks are drawn from, as `knock-server pair`
    /// prints them (`1024-65535`); `null` for the other doors.
    #[serde(default)]
    pub ports: Option<String>,
}

/// Knocks on a rotating door's ports that counted for nothing, by reason.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Refused {
    /// A wrong seal in the TCP sequence number: guesses, spoofs, a flood.
    pub wrong_seal: u64,
    /// A complete sequence that had already opened the door in its step.
    pub replayed: u64,
    /// A right knock for a time step too far from the server's (a clock off).
    pub off_step: u64,
    /// A first knock not tracked because `max_attempts` attempts were in progress.
    pub not_tracked: u64,
}

/// A door open for one knocker.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenWindow {
    /// The door's name.
    pub door: String,
    /// The knocker it is open to.
    pub source: IpAddr,
    /// When it opened (or was last extended by a re-knock), Unix seconds.
    pub since_unix: u64,
    /// Seconds until it closes by itself.
    pub closes_in_secs: u64,
    /// How it was opened and will be closed: `stop command`, `nftables`, or both.
    pub how: String,
    /// What is forwarded for the knocker (`1723/tcp -> 198.19.0.2:1723`), for a `forward`
    /// door.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub forwards: Vec<String>,
}

/// Counters since start.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Counters {
    /// Packets the capture handed over as possible knocks.
    pub packets: u64,
    /// Packets ignored, by reason (the decoder's and the tracker's reasons).
    pub ignored: Vec<(String, u64)>,
    /// Attempts evicted to make room, all doors.
    pub evicted: u64,
    /// Packets dropped because the engine was behind.
    pub dropped: u64,
    /// Effects (commands, nftables updates, mails) waiting to be performed now.
    pub queued_effects: u64,
    /// MACs computed to check sealed knocks (rotating doors): at most one per packet on
    /// their ports, unless two derived sequences share a port.
    #[serde(default)]
    pub seal_checks: u64,
    /// Packets the kernel dropped because the capture ring was full.
    #[serde(default)]
    pub kernel_dropped: u64,
    /// Copies of one packet seen on several devices (`any`: a bridge, a VLAN) and counted once.
    #[serde(default)]
    pub duplicates: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_are_one_json_line_each() {
        let requests = [
            Request::Status,
            Request::Close {
                door: "ssh".into(),
                source: Some("198.18.0.1".parse().unwrap()),
            },
            Request::CloseAll,
        ];
        for r in requests {
            let line = serde_json::to_string(&r).unwrap();
            assert!(!line.contains('\n'));
            assert_eq!(serde_json::from_str::<Request>(&line).unwrap(), r);
        }
        assert_eq!(
            serde_json::to_string(&Request::Status).unwrap(),
            r#"{"request":"status"}"#
        );
    }

    #[test]
    fn a_status_without_the_rotating_fields_still_reads() {
        // What a daemon from before rotating doors answered.
        let old = r#"{"response":"status","instance":"eth0","pid":7,"config":"k.toml",
            "uptime_secs":3,"doors":[{"name":"ssh","enabled":true,"attempts":1,"evicted":0,
            "last_broken":null}],"open":[],"counters":{"packets":5,"ignored":[],"evicted":0,
            "dropped":0,"queued_effects":0}}"#;
        let Response::Status(s) = serde_json::from_str(old).unwrap() else {
            panic!("not a status")
        };
        assert_eq!(
            (s.doors[0].refused.clone(), s.counters.seal_checks),
            (None, 0)
        );
    }
}

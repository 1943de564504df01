//! The sans-IO core of knock, shared by the daemon (`knock-server`) and the client (`knock`).
//!
//! Nothing in this crate opens a socket, reads a clock, spawns a process or prints: time and
//! packets are arguments, results are values. That keeps every rule unit-testable and fuzzable.
//!
//! - [`sequence`]: ports, protocols and knock sequences, written as knockd writes them
//!   (`7000,8000:udp,9000`).
//! - [`flags`]: TCP flag requirements (`syn,!ack`).
//! - [`time`]: the monotonic timestamps the caller feeds in.
//! - [`auth`]: authenticated knocks: rotating sequences and sealed SYNs (PROTOCOL.md).
//! - [`config`]: the server's configuration model and its two formats, knockd.conf and TOML.
//! - [`onetime`]: knockd's one-time sequence files (parse, and mark a line used).
//! - [`wire`]: bytes from a capture, of any link type we know, to a [`wire::Hit`].
//! - [`tracker`]: the per-source state machine: hits and `now` in, stage/open/fail events out.
//! - [`spa`]: fwknop's Single Packet Authorization packets (FKO protocol 3.0.0): decode, encode.
//! - `trust` (Unix): may another user change (or read) this file? The one place for the owner
//!   and mode rules of key files, the client's profiles and the daemon's state, as OpenSSH's
//!   `StrictModes`, so that the daemon and the client refuse the same files with the same fix.
//!   Its decision is a pure function like the rest; the walk that feeds it, `lstat` of the file
//!   and of each directory above it (and `/etc/passwd` for the names in its messages), is the
//!   one exception to "no I/O" here.

pub mod auth;
pub mod config;
pub mod flags;
pub mod onetime;
pub mod sequence;
pub mod spa;
pub mod time;
pub mod tracker;
#[cfg(unix)]
pub mod trust;
pub mod wire;

pub use flags::TcpFlags;
pub use sequence::{Knock, Port, Proto, Sequence};
pub use time::Timestamp;

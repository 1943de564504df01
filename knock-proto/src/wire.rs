//! Packet decoding: bytes from a capture to a [`Hit`].

use std::net::IpAddr;

use crate::sequence::Knock;

/// A packet that could be a knock: who sent it, to where, and with which TCP flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// The knocker.
    pub source: IpAddr,
    /// The address knocked on.
    pub destination: IpAddr,
    /// Port and protocol knocked on.
    pub knock: Knock,
    /// The TCP flags byte (0 for UDP).
    pub tcp_flags: u8,
}

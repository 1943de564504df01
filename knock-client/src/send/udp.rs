//! UDP hits: one datagram each.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Sends one datagram to `to`. The payload is a single zero byte, as knock sends; a fresh
/// socket per hit means an ICMP error from an earlier hit cannot fail a later one.
pub fn datagram(to: SocketAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::for_address(to), Type::DGRAM, Some(Protocol::UDP))?;
    let sent = socket.send_to(&[0], &to.into())?;
    if sent != 1 {
        return Err(io::Error::other("the datagram was not sent"));
    }
    Ok(())
}

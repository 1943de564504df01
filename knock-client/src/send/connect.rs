//! TCP hits without privilege: a connection attempt abandoned once its SYN has left.
//!
//! A non-blocking `connect()` puts the SYN on the wire before returning "in progress" (Linux,
//! macOS and Windows all send it synchronously). Closing the socket in SYN-SENT state sends
//! nothing more: no RST, and no retransmission that would add an unexpected hit. This is what
//! Debian's knock does.

use std::io;
use std::net::SocketAddr;

use socket2::{Domain, Protocol, Socket, Type};

/// Sends one SYN to `to` by starting a connection and dropping it.
pub fn syn(to: SocketAddr) -> io::Result<()> {
    let socket = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_nonblocking(true)?;
    match socket.connect(&to.into()) {
        Ok(()) => Ok(()),
        Err(e) if sent_anyway(&e) => Ok(()),
        Err(e) => Err(e),
    }
    // `socket` closes here, in SYN-SENT: the kernel forgets the attempt silently.
}

/// Errors after which the SYN is known to have left: still in progress, or already answered.
fn sent_anyway(e: &io::Error) -> bool {
    #[cfg(unix)]
    if e.raw_os_error() == Some(libc::EINPROGRESS) {
        return true;
    }
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock
            | io::ErrorKind::ConnectionRefused
            | io::ErrorKind::ConnectionReset
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::TcpListener;

    #[test]
    fn a_closed_port_is_not_an_error() {
        // Bind then drop to get a port that is (almost certainly) closed.
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        syn(SocketAddr::from(([127, 0, 0, 1], port))).unwrap();
    }
}

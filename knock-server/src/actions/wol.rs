//! Wake-on-LAN: send a machine's magic packet as one UDP datagram, built here, so that no
//! etherwake or wakeonlan package is needed.
//!
//! The datagram goes to the configured address and port (by default the limited broadcast
//! 255.255.255.255, port 9). An IPv6 address works too: a link-local multicast group such as
//! `ff02::1` reaches every host on the link. With an interface configured the socket is bound
//! to it (`SO_BINDTODEVICE`), which is how a broadcast leaves through the right link on a host
//! with several.

use std::io;
use std::net::SocketAddr;

use knock_proto::config::model::WakeOnLan;
use socket2::{Domain, Protocol, Socket, Type};

/// Sends the magic packet for `w.mac` to `w.address`:`w.port`.
///
/// The errors name what failed (socket, interface, send) so that the caller can log them
/// as they are.
pub fn wake(w: &WakeOnLan) -> io::Result<()> {
    let target = SocketAddr::new(w.address, w.port);
    let socket = Socket::new(
        Domain::for_address(target),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(|e| annotate(e, "cannot open a UDP socket for Wake-on-LAN"))?;
    if w.address.is_ipv4() {
        // Without SO_BROADCAST the kernel refuses to send to a broadcast address (EACCES).
        socket
            .set_broadcast(true)
            .map_err(|e| annotate(e, "cannot allow broadcast on the Wake-on-LAN socket"))?;
    }
    if let Some(interface) = &w.interface {
        bind_to_interface(&socket, interface)?;
    }
    let packet = w.mac.magic_packet();
    let sent = socket
        .send_to(&packet, &target.into())
        .map_err(|e| annotate(e, &format!("cannot send the magic packet to {target}")))?;
    if sent != packet.len() {
        return Err(io::Error::other(format!(
            "sent only {sent} of {} bytes of the magic packet to {target}",
            packet.len()
        )));
    }
    Ok(())
}

/// Makes the socket send out of `interface` only. For IPv6 multicast this also picks the
/// link the group is scoped to, since the kernel takes the bound device as the output one.
#[cfg(any(target_os = "linux", target_os = "android"))]
fn bind_to_interface(socket: &Socket, interface: &str) -> io::Result<()> {
    socket.bind_device(Some(interface.as_bytes())).map_err(|e| {
        annotate(
            e,
            &format!("cannot send Wake-on-LAN through interface `{interface}` (does it exist?)"),
        )
    })
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn bind_to_interface(_socket: &Socket, interface: &str) -> io::Result<()> {
    Err(io::Error::new(
        io::ErrorKind::Unsupported,
        format!("choosing the Wake-on-LAN interface (`{interface}`) needs Linux"),
    ))
}

/// Prefixes an I/O error with what we were doing, keeping its kind.
fn annotate(e: io::Error, doing: &str) -> io::Error {
    io::Error::new(e.kind(), format!("{doing}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_proto::config::model::MacAddr;
    use std::net::UdpSocket;
    use std::time::Duration;

    fn receive_magic_packet(bind: &str, interface: Option<&str>) -> Vec<u8> {
        let receiver = UdpSocket::bind(bind).unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let local = receiver.local_addr().unwrap();
        let w = WakeOnLan {
            mac: "00:81:52:6B:3D:AE".parse().unwrap(),
            address: local.ip(),
            port: local.port(),
            interface: interface.map(str::to_owned),
        };
        wake(&w).unwrap();
        let mut buf = [0u8; 512];
        let (n, _) = receiver.recv_from(&mut buf).unwrap();
        buf[..n].to_vec()
    }

    fn expected() -> Vec<u8> {
        let mut p = vec![0xFF; 6];
        for _ in 0..16 {
            p.extend_from_slice(&[0x00, 0x81, 0x52, 0x6B, 0x3D, 0xAE]);
        }
        p
    }

    #[test]
    fn the_magic_packet_arrives_whole_over_ipv4() {
        assert_eq!(receive_magic_packet("127.0.0.1:0", None), expected());
    }

    #[test]
    fn the_magic_packet_arrives_whole_over_ipv6() {
        assert_eq!(receive_magic_packet("[::1]:0", None), expected());
    }

    #[test]
    fn the_socket_can_be_bound_to_an_interface() {
        assert_eq!(receive_magic_packet("127.0.0.1:0", Some("lo")), expected());
    }

    #[test]
    fn a_missing_interface_is_an_error_that_names_it() {
        let w = WakeOnLan {
            mac: MacAddr([1, 2, 3, 4, 5, 6]),
            address: "127.0.0.1".parse().unwrap(),
            port: 9,
            interface: Some("knocknoif0".into()),
        };
        let e = wake(&w).unwrap_err();
        assert!(e.to_string().contains("knocknoif0"), "{e}");
    }
}

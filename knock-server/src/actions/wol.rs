//! Wake-on-LAN: send a machine's magic packet as one UDP datagram, built here, so that no
//! etherwake or wakeonlan package is needed.
//!
//! The datagram goes to the configured address and port. An IPv6 address works too: a
//! link-local multicast group such as `ff02::1` reaches every host on the link. With an
//! interface configured the socket is bound to it (`SO_BINDTODEVICE`), which is how a
//! broadcast leaves through the right link on a host with several.
//!
//! With neither an address nor an interface (the address left at its default, the limited
//! broadcast 255.255.255.255), the packet goes out of every interface that is up and has an
//! IPv4 broadcast address, to that subnet's broadcast: the sleeper is on one of the host's
//! links, and a limited broadcast would leave by the default route only, which on a home
//! router running the daemon is the WAN side, away from the sleeping machine.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use knock_proto::config::model::WakeOnLan;
use socket2::{Domain, Protocol, Socket, Type};

/// One interface as [`fan_out`] sees it.
#[derive(Debug, Clone)]
pub struct Link {
    /// Its name.
    pub name: String,
    /// Up and not loopback.
    pub usable: bool,
    /// Its IPv4 broadcast addresses (one per IPv4 address that has one).
    pub broadcasts: Vec<Ipv4Addr>,
}

/// The host's interfaces, as `getifaddrs` (through libpcap's device list) reports them.
pub fn links() -> Vec<Link> {
    pcap::Device::list()
        .unwrap_or_default()
        .into_iter()
        .map(|d| Link {
            usable: d.flags.is_up() && !d.flags.is_loopback(),
            broadcasts: d
                .addresses
                .iter()
                .filter_map(|a| broadcast_of(a.addr, a.netmask, a.broadcast_addr))
                .collect(),
            name: d.name,
        })
        .collect()
}

/// The IPv4 broadcast address of `addr`: as the kernel reports it, else (an address added
/// without `brd`) computed from the netmask; none for /31 and /32 (point-to-point links).
fn broadcast_of(addr: IpAddr, mask: Option<IpAddr>, brd: Option<IpAddr>) -> Option<Ipv4Addr> {
    let IpAddr::V4(addr) = addr else { return None };
    match (brd, mask) {
        // glibc reports the address itself when the kernel has no broadcast for it.
        (Some(IpAddr::V4(b)), _) if !b.is_unspecified() && b != addr => Some(b),
        (_, Some(IpAddr::V4(m))) if m.to_bits().leading_ones() <= 30 => {
            Some(Ipv4Addr::from_bits(addr.to_bits() | !m.to_bits()))
        }
        _ => None,
    }
}

/// Where the magic packet goes: (address, interface to bind) pairs. The configured address
/// (through the configured interface, if any); or, when the address is the default limited
/// broadcast and no interface is named, every usable link's subnet broadcasts (the limited
/// broadcast if there is none).
pub fn fan_out(w: &WakeOnLan, links: &[Link]) -> Vec<(SocketAddr, Option<String>)> {
    let default = w.address == IpAddr::V4(Ipv4Addr::BROADCAST) && w.interface.is_none();
    let mut targets: Vec<(SocketAddr, Option<String>)> = Vec::new();
    if default {
        for l in links.iter().filter(|l| l.usable) {
            for b in &l.broadcasts {
                let t = (
                    SocketAddr::new(IpAddr::V4(*b), w.port),
                    Some(l.name.clone()),
                );
                if !targets.contains(&t) {
                    targets.push(t);
                }
            }
        }
    }
    if targets.is_empty() {
        targets.push((SocketAddr::new(w.address, w.port), w.interface.clone()));
    }
    targets
}

/// Sends the magic packet for `w.mac` where [`fan_out`] says; returns where it went
/// (`198.18.0.255:9 via eth0`). Fails only if it went nowhere.
///
/// The errors name what failed (socket, interface, send) so that the caller can log them
/// as they are.
pub fn wake(w: &WakeOnLan) -> io::Result<Vec<String>> {
    let mut sent = Vec::new();
    let mut last_error = None;
    for (target, interface) in fan_out(w, &links()) {
        match send(w, target, interface.as_deref()) {
            Ok(()) => sent.push(match &interface {
                Some(i) => format!("{target} via {i}"),
                None => target.to_string(),
            }),
            Err(e) => {
                tracing::debug!("Wake-on-LAN to {target}: {e}");
                last_error = Some(e);
            }
        }
    }
    match (sent.is_empty(), last_error) {
        (true, Some(e)) => Err(e),
        _ => Ok(sent),
    }
}

fn send(w: &WakeOnLan, target: SocketAddr, interface: Option<&str>) -> io::Result<()> {
    let socket = Socket::new(
        Domain::for_address(target),
        Type::DGRAM,
        Some(Protocol::UDP),
    )
    .map_err(|e| annotate(e, "cannot open a UDP socket for Wake-on-LAN"))?;
    if target.is_ipv4() {
        // Without SO_BROADCAST the kernel refuses to send to a broadcast address (EACCES).
        socket
            .set_broadcast(true)
            .map_err(|e| annotate(e, "cannot allow broadcast on the Wake-on-LAN socket"))?;
    }
    if let Some(interface) = interface {
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
        let to = wake(&w).unwrap();
        assert_eq!(to.len(), 1, "{to:?}");
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

    fn link(name: &str, usable: bool, broadcasts: &[&str]) -> Link {
        Link {
            name: name.into(),
            usable,
            broadcasts: broadcasts.iter().map(|b| b.parse().unwrap()).collect(),
        }
    }

    #[test]
    fn without_address_or_interface_every_usable_links_subnet_broadcast_is_a_target() {
        let links = [
            link("wan0", true, &["198.18.0.255"]),
            link("lan0", true, &["198.19.5.255", "198.19.6.255"]),
            link("down0", false, &["198.19.7.255"]),
            link("tun0", true, &[]),
        ];
        let w = WakeOnLan {
            mac: MacAddr([1, 2, 3, 4, 5, 6]),
            address: Ipv4Addr::BROADCAST.into(),
            port: 9,
            interface: None,
        };
        let got: Vec<String> = fan_out(&w, &links)
            .iter()
            .map(|(t, i)| format!("{t} {}", i.as_deref().unwrap_or("-")))
            .collect();
        assert_eq!(
            got,
            [
                "198.18.0.255:9 wan0",
                "198.19.5.255:9 lan0",
                "198.19.6.255:9 lan0"
            ]
        );
        let ip = |s: &str| Some(s.parse::<IpAddr>().unwrap());
        assert_eq!(
            broadcast_of("198.19.5.1".parse().unwrap(), ip("255.255.255.0"), None),
            Some("198.19.5.255".parse().unwrap())
        );
        let own = ip("198.19.5.1");
        assert_eq!(
            broadcast_of("198.19.5.1".parse().unwrap(), ip("255.255.255.0"), own),
            Some("198.19.5.255".parse().unwrap())
        );
        let p2p = broadcast_of("198.19.5.1".parse().unwrap(), ip("255.255.255.255"), None);
        assert_eq!(p2p, None);
        // No usable link: the limited broadcast by the default route, the one way left.
        assert_eq!(fan_out(&w, &[]).len(), 1);
        // A configured address or interface is used as given.
        let given = WakeOnLan {
            address: "198.19.5.7".parse().unwrap(),
            ..w.clone()
        };
        assert_eq!(fan_out(&given, &links).len(), 1);
        let via = WakeOnLan {
            interface: Some("lan0".into()),
            ..w
        };
        assert_eq!(
            fan_out(&via, &links),
            [("255.255.255.255:9".parse().unwrap(), Some("lan0".into()))]
        );
    }
}

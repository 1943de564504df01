//! TCP hits with privilege (Linux): SYN segments crafted with pnet and sent on a raw socket.
//!
//! An `IPPROTO_TCP` raw socket lets the kernel write the IP header (v4 and v6 alike) while we
//! write the TCP segment, including its checksum, which covers a pseudo-header with the source
//! address. The socket is connected to the server (which sends nothing): the kernel then picks
//! the route and source address once, as for a TCP connection, and tells us the address.
//! A connected socket also numbers its IPv4 datagrams from its own counter on every kernel, so
//! the hits of one knock, byte-identical in their TCP header, differ in their IP ID as a
//! kernel's retransmissions do, and a capture that drops copies of one packet (knock-server on
//! `any`) still counts each of them.
//!
//! Replies (SYN-ACK or RST) go to the kernel, which has no socket for them and drops a RST or
//! answers a SYN-ACK with a RST: the server sees a knock, nothing more.

use std::io;
use std::net::{IpAddr, SocketAddr};

use pnet_packet::tcp::{self, MutableTcpPacket, TcpFlags, TcpOption};
use socket2::{Domain, Protocol, Socket, Type};

/// A raw socket and the addresses of the segments it sends.
pub struct RawSyn {
    socket: Socket,
    src: IpAddr,
    dst: SocketAddr,
}

impl RawSyn {
    /// Opens the raw socket (fails with `PermissionDenied` without root or CAP_NET_RAW) and
    /// connects it to `dst`, which picks the source address.
    pub fn open(dst: SocketAddr) -> io::Result<RawSyn> {
        let socket = Socket::new(Domain::for_address(dst), Type::RAW, Some(Protocol::TCP))?;
        // The port of a raw socket's peer must be 0 (IPv6 refuses anything but 0 or the
        // protocol); the TCP header carries the real one.
        let mut to = dst;
        to.set_port(0);
        socket.connect(&to.into())?;
        let src = socket
            .local_addr()?
            .as_socket()
            .ok_or_else(|| io::Error::other("the raw socket has no IP source address"))?
            .ip();
        Ok(RawSyn { socket, src, dst })
    }

    /// The source address SYNs go out with (what a sealed door bound to the source sees,
    /// unless a NAT rewrites it).
    pub fn source(&self) -> IpAddr {
        self.src
    }

    /// Sends one SYN from `src_port` to `dst_port` with sequence number `seq`.
    pub fn send(&self, dst_port: u16, src_port: u16, seq: u32) -> io::Result<()> {
        let segment = syn(self.src, self.dst.ip(), src_port, dst_port, seq)?;
        let sent = self.socket.send(&segment)?;
        if sent != segment.len() {
            return Err(io::Error::other(format!(
                "only {sent} of {} bytes of the SYN were sent",
                segment.len()
            )));
        }
        Ok(())
    }
}

/// The TCP header length: 20 bytes plus a 4-byte MSS option, as every real SYN carries one.
const SYN_LEN: usize = 24;

/// A SYN segment from `src:src_port` to `dst:dst_port` with its checksum.
pub fn syn(
    src: IpAddr,
    dst: IpAddr,
    src_port: u16,
    dst_port: u16,
    seq: u32,
) -> io::Result<Vec<u8>> {
    let mut buf = vec![0u8; SYN_LEN];
    let mut packet =
        MutableTcpPacket::new(&mut buf).ok_or_else(|| io::Error::other("SYN buffer too small"))?;
    packet.set_source(src_port);
    packet.set_destination(dst_port);
    packet.set_sequence(seq);
    packet.set_acknowledgement(0);
    packet.set_data_offset((SYN_LEN / 4) as u8);
    packet.set_flags(TcpFlags::SYN);
    packet.set_window(64240);
    packet.set_urgent_ptr(0);
    let mss = if dst.is_ipv4() { 1460 } else { 1440 };
    packet.set_options(&[TcpOption::mss(mss)]);
    let checksum = match (src, dst) {
        (IpAddr::V4(s), IpAddr::V4(d)) => tcp::ipv4_checksum(&packet.to_immutable(), &s, &d),
        (IpAddr::V6(s), IpAddr::V6(d)) => tcp::ipv6_checksum(&packet.to_immutable(), &s, &d),
        _ => {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("source {src} and destination {dst} are of different families"),
            ));
        }
    };
    packet.set_checksum(checksum);
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;
    use pnet_packet::Packet as _;
    use pnet_packet::tcp::TcpPacket;

    /// The internet checksum over the pseudo-header and segment, computed independently of
    /// pnet: a correct segment sums to 0xffff.
    fn sums_to_ones(src: IpAddr, dst: IpAddr, segment: &[u8]) -> bool {
        let mut bytes = Vec::new();
        match (src, dst) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                bytes.extend(s.octets());
                bytes.extend(d.octets());
                bytes.extend([0, 6]);
                bytes.extend((segment.len() as u16).to_be_bytes());
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                bytes.extend(s.octets());
                bytes.extend(d.octets());
                bytes.extend((segment.len() as u32).to_be_bytes());
                bytes.extend([0, 0, 0, 6]);
            }
            _ => unreachable!(),
        }
        bytes.extend(segment);
        let mut sum: u32 = bytes
            .chunks(2)
            .map(|c| u32::from(u16::from_be_bytes([c[0], *c.get(1).unwrap_or(&0)])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        sum == 0xffff
    }

    #[test]
    fn ipv4_syn_is_well_formed() {
        let (s, d) = ("198.18.0.1".parse().unwrap(), "198.18.0.2".parse().unwrap());
        let seg = syn(s, d, 40000, 7000, 0xdead_beef).unwrap();
        let p = TcpPacket::new(&seg).unwrap();
        assert_eq!((p.get_source(), p.get_destination()), (40000, 7000));
        assert_eq!(
            (p.get_sequence(), p.get_acknowledgement()),
            (0xdead_beef, 0)
        );
        assert_eq!(p.get_flags(), TcpFlags::SYN);
        assert_eq!(usize::from(p.get_data_offset()) * 4, seg.len());
        assert!(p.payload().is_empty());
        assert!(sums_to_ones(s, d, &seg));
    }

    #[test]
    fn ipv6_syn_is_well_formed() {
        let (s, d) = ("fd00:18::1".parse().unwrap(), "fd00:18::2".parse().unwrap());
        let seg = syn(s, d, 50000, 2012, 7).unwrap();
        let p = TcpPacket::new(&seg).unwrap();
        assert_eq!(
            (p.get_source(), p.get_destination(), p.get_sequence()),
            (50000, 2012, 7)
        );
        assert!(sums_to_ones(s, d, &seg));
        // A different source address must change the checksum: it covers the pseudo-header.
        let other = syn("fd00:18::3".parse().unwrap(), d, 50000, 2012, 7).unwrap();
        assert!(!sums_to_ones(s, d, &other));
    }

    #[test]
    fn mixed_families_are_refused() {
        let err = syn(
            "198.18.0.1".parse().unwrap(),
            "fd00::2".parse().unwrap(),
            1,
            2,
            3,
        );
        assert_eq!(err.unwrap_err().kind(), io::ErrorKind::InvalidInput);
    }
}

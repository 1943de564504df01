//! Packet decoding: bytes from a capture to a [`Hit`].
//!
//! The server hands [`decode`] every frame its capture yields, together with the capture's
//! [`LinkType`]. A frame that could be a knock (TCP or UDP to a non-zero port, over IPv4 or
//! IPv6) becomes a [`Hit`]; anything else becomes a [`Skip`] saying why, so the caller can count
//! it. This runs once per captured packet, so it allocates nothing and never panics, whatever the
//! bytes: a capture carries whatever anyone on the wire chose to send.
//!
//! Layers, each in its own private module, all reading through pnet's packet views:
//! - `link`: Ethernet II (with 802.1Q / 802.1ad / QinQ tags), Linux cooked capture v1 and v2
//!   (`any`), raw IP and BSD NULL/LOOP, down to an IPv4 or IPv6 datagram.
//! - `ip`: IPv4 and IPv6 (walking extension headers) down to the transport header.
//! - `transport`: TCP and UDP, down to the ports, and for TCP the flags and sequence number.
//!
//! pnet's views only check the minimum length of a header when they are built (and for some,
//! like Linux cooked capture, that minimum is shorter than the header). Every length is checked
//! here before a view is built or a length a header declares (IHL, payload length, extension
//! header lengths, TCP data offset, UDP length) is followed.
//!
//! Two kinds of short packet are told apart: a header that claims more than its enclosing
//! header allows is [`Skip::Malformed`]; a header that the capture cut short (a small snap
//! length) is [`Skip::Truncated`]. A packet whose TCP or UDP header was captured whole decodes
//! even if its payload was cut, since a knock lives in the headers only.
//!
//! Only packets the host itself would accept from a real sender count: [`Decoder`] holds a
//! [`Host`] view (own addresses, MACs, VLANs) and refuses, each under its own [`Skip`], frames
//! to another host's MAC or for a VLAN the host lacks, lengths past the frame on the wire, and
//! sources no real sender has (`wire/host.rs`). The plain [`decode`] knows no host and checks
//! only what needs none: what Linux drops before TCP or UDP sees it whatever the host, namely
//! IP fragments, a wrong IPv4 header checksum, an IPv6 hop-by-hop options header that is not
//! first, an IPv6 routing header with segments left, and TCP in a link-layer broadcast or
//! multicast frame.
//!
//! TCP and UDP checksums are not verified. A capture shows a packet before the kernel checks
//! them, and on veth, loopback and NICs with receive offload the sender's stack often left
//! them unfilled (CHECKSUM_PARTIAL; the kernel's TP_STATUS_CSUMNOTREADY, which libpcap does
//! not pass on): checking them would refuse real knocks. Anyone forging a knock computes them
//! anyway, so a check would only catch corruption. knockd does not look at them either. The
//! IPv4 header checksum is different: Linux computes it in software for every packet it
//! sends, veth and loopback included (a stack that offloads it has the NIC fill it in before
//! the wire), so it is right on every real packet a capture shows, and verified.

mod host;
mod ip;
mod link;
mod transport;

pub use host::{Host, Mac};

use std::fmt;
use std::net::IpAddr;

use crate::sequence::{Knock, Proto};

/// A packet that could be a knock: who sent it, to where, and with which TCP flags.
///
/// `src_port` and `tcp_seq` tell a retransmission (the kernel sending the same SYN again: same
/// source port, same sequence number) from a new connection attempt to the same port.
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
    /// The TCP or UDP source port (0 is possible: the sender chose it).
    pub src_port: u16,
    /// The TCP sequence number (0 for UDP).
    pub tcp_seq: u32,
}

/// Why a captured frame is not a [`Hit`]. Small and `Copy`: it is returned once per skipped
/// packet, and the caller counts it ([`Skip::ALL`] lists every reason for a counter array).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Skip {
    /// The capture ended before the TCP or UDP header did (short snap length, or a cut frame).
    Truncated,
    /// Not an IP packet (ARP, LLDP, an unknown EtherType or address family...).
    NotIp,
    /// An IP fragment: a later one carries no transport header, and the kernel hands a first
    /// one (More Fragments set, IPv4 or IPv6) to TCP or UDP only once the datagram is
    /// reassembled. A knock is never fragmented.
    Fragment,
    /// IP, but neither TCP nor UDP (ICMP, ESP, no next header...).
    NotTransport,
    /// A header contradicts itself or its enclosing header: bad IP version, IHL below 5, a
    /// length past the datagram, TCP data offset below 5, UDP length below 8, destination port
    /// 0, too many VLAN tags or IPv6 extension headers, an IPv6 hop-by-hop options header
    /// anywhere but right after the IPv6 header (Linux answers that with a parameter problem).
    Malformed,
    /// Sent by this host (Linux cooked capture on `any` shows outgoing packets too).
    Outgoing,
    /// To another host's MAC, or a multicast group the host is not in (or, in a cooked
    /// capture, PACKET_OTHERHOST): seen only because some socket is promiscuous.
    NotForUs,
    /// Tagged for a VLAN the host has no device for.
    OtherVlan,
    /// The IPv4 total length or IPv6 payload length is larger than the frame on the wire.
    LongerThanFrame,
    /// From 0.0.0.0 or `::`.
    SourceUnspecified,
    /// From 255.255.255.255.
    SourceBroadcast,
    /// From the broadcast address of one of the host's IPv4 subnets.
    SourceSubnetBroadcast,
    /// From a multicast address (224.0.0.0/4, ff00::/8).
    SourceMulticast,
    /// From a loopback address (127.0.0.0/8, `::1`) on a capture that is not loopback's.
    SourceLoopback,
    /// From an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`): forged; Linux drops them.
    SourceMapped,
    /// From one of the host's own addresses.
    SourceLocal,
    /// The IPv4 header checksum is wrong: Linux drops the packet before TCP or UDP sees it.
    /// (Unlike TCP's and UDP's, it is filled in on every real packet, offload or not.)
    BadIpv4Checksum,
    /// An IPv6 routing header with segments left: the packet is for the next address on its
    /// route, not for this host (Linux drops type 0, and the other types unless configured to
    /// route them).
    SourceRouted,
    /// TCP in a link-layer broadcast or multicast frame (an Ethernet group address, or a
    /// cooked capture's PACKET_BROADCAST or PACKET_MULTICAST): Linux's TCP drops it. UDP in
    /// one is a knock.
    TcpLinkBroadcast,
}

impl Skip {
    /// Every reason, in declaration order: index a counter array with [`Skip::index`].
    pub const ALL: [Skip; 19] = [
        Skip::Truncated,
        Skip::NotIp,
        Skip::Fragment,
        Skip::NotTransport,
        Skip::Malformed,
        Skip::Outgoing,
        Skip::NotForUs,
        Skip::OtherVlan,
        Skip::LongerThanFrame,
        Skip::SourceUnspecified,
        Skip::SourceBroadcast,
        Skip::SourceSubnetBroadcast,
        Skip::SourceMulticast,
        Skip::SourceLoopback,
        Skip::SourceMapped,
        Skip::SourceLocal,
        Skip::BadIpv4Checksum,
        Skip::SourceRouted,
        Skip::TcpLinkBroadcast,
    ];

    /// A short, stable label for logs and counters.
    pub const fn as_str(self) -> &'static str {
        match self {
            Skip::Truncated => "truncated",
            Skip::NotIp => "not-ip",
            Skip::Fragment => "fragment",
            Skip::NotTransport => "not-tcp-udp",
            Skip::Malformed => "malformed",
            Skip::Outgoing => "outgoing",
            Skip::NotForUs => "not-for-us",
            Skip::OtherVlan => "other-vlan",
            Skip::LongerThanFrame => "longer-than-frame",
            Skip::SourceUnspecified => "source-unspecified",
            Skip::SourceBroadcast => "source-broadcast",
            Skip::SourceSubnetBroadcast => "source-subnet-broadcast",
            Skip::SourceMulticast => "source-multicast",
            Skip::SourceLoopback => "source-loopback",
            Skip::SourceMapped => "source-ipv4-mapped",
            Skip::SourceLocal => "source-own-address",
            Skip::BadIpv4Checksum => "bad-ipv4-checksum",
            Skip::SourceRouted => "source-routed",
            Skip::TcpLinkBroadcast => "tcp-link-broadcast",
        }
    }

    /// This reason's position in [`Skip::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for Skip {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for Skip {}

/// The link-layer header type of a capture: what comes before the IP header in each frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LinkType {
    /// Ethernet II, possibly with 802.1Q / 802.1ad VLAN tags (DLT_EN10MB).
    Ethernet,
    /// Linux cooked capture v1, 16-byte header (DLT_LINUX_SLL: libpcap's `any` device).
    LinuxSll,
    /// Linux cooked capture v2, 20-byte header (DLT_LINUX_SLL2: `any` when asked for it).
    LinuxSll2,
    /// Bare IPv4 or IPv6, told apart by the version nibble (DLT_RAW: tun devices, WireGuard).
    RawIp,
    /// Bare IPv4 only (LINKTYPE_IPV4).
    Ipv4,
    /// Bare IPv6 only (LINKTYPE_IPV6).
    Ipv6,
    /// BSD loopback: a 4-byte address family in the capturing host's byte order (DLT_NULL).
    Null,
    /// OpenBSD loopback: a 4-byte address family in network byte order (DLT_LOOP).
    Loop,
}

impl LinkType {
    /// Every link type, for tests and fuzzing.
    pub const ALL: [LinkType; 8] = [
        LinkType::Ethernet,
        LinkType::LinuxSll,
        LinkType::LinuxSll2,
        LinkType::RawIp,
        LinkType::Ipv4,
        LinkType::Ipv6,
        LinkType::Null,
        LinkType::Loop,
    ];

    /// The link type for a libpcap data link type (`pcap_datalink()`), or `None` for one we do
    /// not decode. DLT_RAW is 12 on most systems and 14 on OpenBSD; savefiles write it as 101.
    pub const fn from_dlt(dlt: i32) -> Option<LinkType> {
        match dlt {
            0 => Some(LinkType::Null),
            1 => Some(LinkType::Ethernet),
            12 | 14 | 101 => Some(LinkType::RawIp),
            108 => Some(LinkType::Loop),
            113 => Some(LinkType::LinuxSll),
            228 => Some(LinkType::Ipv4),
            229 => Some(LinkType::Ipv6),
            276 => Some(LinkType::LinuxSll2),
            _ => None,
        }
    }
}

/// Decodes one captured frame of link type `link` into the knock it could be, knowing
/// nothing of the host (see [`Decoder`] for the checks that need it).
///
/// `frame` is the captured bytes (pcap's `caplen`, possibly shorter than the packet on the
/// wire). Never panics and never allocates; see [`Skip`] for what is refused.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Hit, Skip> {
    Decoder::new(link, Host::default())
        .decode(frame, usize::MAX)
        .map(|p| p.hit)
}

/// The packet's identity (see [`Identity`]), knowing nothing of the host.
pub fn identity(link: LinkType, frame: &[u8]) -> Result<Identity, Skip> {
    Decoder::new(link, Host::default())
        .decode(frame, usize::MAX)
        .map(|p| p.identity)
}

/// What tells one knock packet from another: addresses, ports, protocol, TCP sequence number
/// and IPv4 identification, as the headers say, so the same packet has the same identity on
/// every device that shows it and two packets of one knock do not (a new TCP connection
/// attempt has a new sequence number; IPv4 numbers its datagrams). On Linux's `any` device a
/// packet that crosses a bridge or a VLAN device is seen once per device; the capture uses
/// this to count it once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Identity {
    source: IpAddr,
    destination: IpAddr,
    source_port: u16,
    knock: Knock,
    tcp_seq: u32,
    ip_id: u16,
}

/// A decoded knock packet: the hit, and its identity for duplicate suppression.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Packet {
    /// What the tracker needs.
    pub hit: Hit,
    /// What tells it from another packet.
    pub identity: Identity,
}

/// Decodes the frames of one capture for one host.
#[derive(Debug, Clone)]
pub struct Decoder {
    link: LinkType,
    host: Host,
}

impl Decoder {
    /// A decoder for frames of link type `link` captured on `host`.
    pub fn new(link: LinkType, host: Host) -> Decoder {
        Decoder { link, host }
    }

    /// Replaces the host view (its addresses changed).
    pub fn set_host(&mut self, host: Host) {
        self.host = host;
    }

    /// The host view.
    pub fn host(&self) -> &Host {
        &self.host
    }

    /// Decodes one frame: `frame` is the captured bytes (pcap's `caplen`), `wire_len` the
    /// frame's length on the wire (pcap's `len`; `usize::MAX` when unknown). Never panics
    /// and never allocates.
    pub fn decode(&self, frame: &[u8], wire_len: usize) -> Result<Packet, Skip> {
        let layer = link::layer(self.link, frame)?;
        // Whether the frame went to a link-layer group (broadcast or multicast).
        let group = match layer.delivery {
            link::Delivery::Mac(mac) => {
                self.host.check_mac(mac)?;
                mac[0] & 1 != 0
            }
            link::Delivery::Host => false,
            link::Delivery::Group => true,
            link::Delivery::OtherHost => return Err(Skip::NotForUs),
        };
        for &id in layer.vlans() {
            self.host.check_vlan(id)?;
        }
        let link_len = frame.len() - layer.bytes.len();
        let wire = wire_len.max(frame.len()).saturating_sub(link_len);
        let datagram = match layer.network {
            link::Network::V4 => ip::ipv4(layer.bytes, wire)?,
            link::Network::V6 => ip::ipv6(layer.bytes, wire)?,
        };
        let (proto, ports) = match datagram.protocol {
            // tcp_v4_rcv and tcp_v6_rcv discard every frame not addressed to this host alone
            // (pkt_type != PACKET_HOST).
            ip::Transport::Tcp if group => return Err(Skip::TcpLinkBroadcast),
            ip::Transport::Tcp => (Proto::Tcp, transport::tcp(datagram.transport)?),
            ip::Transport::Udp => (Proto::Udp, transport::udp(datagram.transport)?),
        };
        self.host.check_source(datagram.source, layer.loopback)?;
        let knock = Knock::new(ports.destination, proto);
        Ok(Packet {
            hit: Hit {
                source: datagram.source,
                destination: datagram.destination,
                knock,
                tcp_flags: ports.flags,
                src_port: ports.source,
                tcp_seq: ports.seq,
            },
            identity: Identity {
                source: datagram.source,
                destination: datagram.destination,
                source_port: ports.source,
                knock,
                tcp_seq: ports.seq,
                ip_id: datagram.id,
            },
        })
    }
}

/// The bytes of one layer: what the capture holds of it, and how long its enclosing header
/// says it is. Reading past the declared length is a malformed packet; past the capture but
/// within the declared length, a truncated one.
#[derive(Debug, Clone, Copy)]
struct Span<'a> {
    /// The captured bytes, never longer than `declared` (Ethernet pads short frames to 60
    /// bytes: the padding is not part of the datagram).
    captured: &'a [u8],
    /// The length the enclosing header declared.
    declared: usize,
}

impl<'a> Span<'a> {
    /// `bytes` as captured, declared `declared` bytes long.
    fn new(bytes: &'a [u8], declared: usize) -> Span<'a> {
        let captured = bytes.get(..declared).unwrap_or(bytes);
        Span { captured, declared }
    }

    /// Checks that the first `n` bytes are declared, without needing them captured.
    fn declares(self, n: usize) -> Result<(), Skip> {
        if n > self.declared {
            Err(Skip::Malformed)
        } else {
            Ok(())
        }
    }

    /// The captured bytes, once the first `n` of them are known to be declared and captured.
    fn need(self, n: usize) -> Result<&'a [u8], Skip> {
        self.declares(n)?;
        if n > self.captured.len() {
            Err(Skip::Truncated)
        } else {
            Ok(self.captured)
        }
    }

    /// What follows the first `n` bytes, which must be declared and captured.
    fn after(self, n: usize) -> Result<Span<'a>, Skip> {
        let captured = self.need(n)?;
        Ok(Span {
            captured: captured.get(n..).unwrap_or_default(),
            declared: self.declared - n,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn span_tells_malformed_from_truncated() {
        let bytes = [0u8; 10];
        let span = Span::new(&bytes, 8);
        assert_eq!(
            span.captured.len(),
            8,
            "bytes past the declared length are padding"
        );
        assert_eq!(span.need(8).map(<[u8]>::len), Ok(8));
        assert_eq!(span.need(9), Err(Skip::Malformed));

        let cut = Span::new(&bytes[..4], 8);
        assert_eq!(cut.need(5), Err(Skip::Truncated));
        assert_eq!(cut.declares(8), Ok(()));
        assert_eq!(cut.after(9).err(), Some(Skip::Malformed));

        let rest = span.after(3).expect("3 of 8 bytes");
        assert_eq!((rest.captured.len(), rest.declared), (5, 5));
        let end = rest.after(5).expect("all of it");
        assert_eq!((end.captured.len(), end.declared), (0, 0));
    }

    #[test]
    fn skip_labels_are_distinct_and_indexed_in_order() {
        for (i, skip) in Skip::ALL.iter().enumerate() {
            assert_eq!(skip.index(), i);
            assert_eq!(skip.to_string(), skip.as_str());
        }
        let mut labels: Vec<_> = Skip::ALL.iter().map(|s| s.as_str()).collect();
        labels.sort_unstable();
        labels.dedup();
        assert_eq!(labels.len(), Skip::ALL.len());
    }

    #[test]
    fn dlt_numbers() {
        let known = [
            (0, LinkType::Null),
            (1, LinkType::Ethernet),
            (12, LinkType::RawIp),
            (14, LinkType::RawIp),
            (101, LinkType::RawIp),
            (108, LinkType::Loop),
            (113, LinkType::LinuxSll),
            (228, LinkType::Ipv4),
            (229, LinkType::Ipv6),
            (276, LinkType::LinuxSll2),
        ];
        for (dlt, link) in known {
            assert_eq!(LinkType::from_dlt(dlt), Some(link), "DLT {dlt}");
        }
        for dlt in [-1, 2, 9, 105, 127, 147, 277, i32::MAX] {
            assert_eq!(LinkType::from_dlt(dlt), None, "DLT {dlt}");
        }
        for link in LinkType::ALL {
            assert!(known.iter().any(|&(_, l)| l == link), "{link:?} has a DLT");
        }
    }
}

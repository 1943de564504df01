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
//! Checksums are not verified: offloading leaves them unset in many captures, knockd does not
//! look at them either, and anyone forging a knock can compute them.

mod ip;
mod link;
mod transport;

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
    /// A non-first IP fragment: it carries no transport header.
    Fragment,
    /// IP, but neither TCP nor UDP (ICMP, ESP, no next header...).
    NotTransport,
    /// A header contradicts itself or its enclosing header: bad IP version, IHL below 5, a
    /// length past the datagram, TCP data offset below 5, UDP length below 8, destination port
    /// 0, too many VLAN tags or IPv6 extension headers.
    Malformed,
    /// Sent by this host (Linux cooked capture on `any` shows outgoing packets too).
    Outgoing,
}

impl Skip {
    /// Every reason, in declaration order: index a counter array with [`Skip::index`].
    pub const ALL: [Skip; 6] = [
        Skip::Truncated,
        Skip::NotIp,
        Skip::Fragment,
        Skip::NotTransport,
        Skip::Malformed,
        Skip::Outgoing,
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

/// Decodes one captured frame of link type `link` into the knock it could be.
///
/// `frame` is the captured bytes (pcap's `caplen`, possibly shorter than the packet on the
/// wire). Never panics and never allocates; see [`Skip`] for what is refused.
pub fn decode(link: LinkType, frame: &[u8]) -> Result<Hit, Skip> {
    let datagram = match link::network(link, frame)? {
        (link::Network::V4, bytes) => ip::ipv4(bytes)?,
        (link::Network::V6, bytes) => ip::ipv6(bytes)?,
    };
    let (proto, segment) = match datagram.protocol {
        ip::Transport::Tcp => (Proto::Tcp, transport::tcp(datagram.transport)?),
        ip::Transport::Udp => (Proto::Udp, transport::udp(datagram.transport)?),
    };
    Ok(Hit {
        source: datagram.source,
        destination: datagram.destination,
        knock: Knock::new(segment.destination, proto),
        tcp_flags: segment.flags,
        src_port: segment.source,
        tcp_seq: segment.seq,
    })
}

/// How many leading bytes of the network layer [`identity`] hashes: an IPv6 header and a
/// TCP header's ports and sequence number, or an IPv4 header with options and a full TCP
/// header. Enough to tell two packets apart, the same for one packet seen twice.
const IDENTITY_BYTES: usize = 64;

/// The packet's identity: a hash of its network-layer bytes, which do not change when the
/// same packet is captured on several devices. On Linux's `any` device a packet that
/// crosses a bridge or a VLAN device is seen once per device; the capture uses this to count
/// it once. Different link headers, same identity.
pub fn identity(link: LinkType, frame: &[u8]) -> Result<u64, Skip> {
    use std::hash::Hasher as _;
    let (_, bytes) = link::network(link, frame)?;
    let mut h = std::hash::DefaultHasher::new();
    h.write(bytes.get(..IDENTITY_BYTES).unwrap_or(bytes));
    Ok(h.finish())
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

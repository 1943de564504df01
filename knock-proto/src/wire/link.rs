//! Link layer: strips whatever precedes the IP header, and says which IP version follows.
//!
//! No link header here declares a length, so a short frame is always [`Skip::Truncated`];
//! trailing bytes (Ethernet padding, a frame check sequence) are left for the IP layer to cut
//! off by its own length.

use pnet_packet::ethernet::{EtherType, EtherTypes, EthernetPacket};
use pnet_packet::sll::SLLPacket;
use pnet_packet::sll2::SLL2Packet;
use pnet_packet::vlan::VlanPacket;

use super::{LinkType, Skip};

/// The network layer a link header announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Network {
    V4,
    V6,
}

/// Most VLAN tags we strip from one frame. QinQ uses two; a few more cost nothing, and a bound
/// keeps a frame of nothing but tags from being walked to its end.
const MAX_VLAN_TAGS: usize = 4;

/// Linux cooked capture v1 header length. pnet's `SLLPacket` counts its 8-byte link address as
/// variable, so its `minimum_packet_size()` is 8 and `get_protocol()` (bytes 14..16) would read
/// past a shorter buffer: check this length first.
const SLL_HEADER_LEN: usize = 16;
/// Linux cooked capture v2 header length (the link address, last, is again not in pnet's
/// minimum).
const SLL2_HEADER_LEN: usize = 20;

/// Linux's `PACKET_OUTGOING`: in a cooked capture, a packet this host sent.
const PACKET_OUTGOING: u8 = 4;

/// 802.1ad service tag (QinQ outer tag).
const ETHERTYPE_QINQ: EtherType = EtherType(0x88a8);
/// The pre-standard QinQ outer tag some switches still send.
const ETHERTYPE_QINQ_OLD: EtherType = EtherType(0x9100);

/// BSD `AF_INET`, the same on every system.
const AF_INET: u32 = 2;
/// BSD `AF_INET6`, which every system numbers its own way: Linux, NetBSD/OpenBSD, FreeBSD,
/// macOS. A capture file may come from any of them.
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// Splits `frame` into the network layer it carries and that layer's bytes.
pub(super) fn network(link: LinkType, frame: &[u8]) -> Result<(Network, &[u8]), Skip> {
    match link {
        LinkType::Ethernet => ethernet(frame),
        LinkType::LinuxSll => linux_sll(frame),
        LinkType::LinuxSll2 => linux_sll2(frame),
        LinkType::RawIp => raw_ip(frame),
        LinkType::Ipv4 => Ok((Network::V4, frame)),
        LinkType::Ipv6 => Ok((Network::V6, frame)),
        LinkType::Null | LinkType::Loop => bsd_loopback(frame),
    }
}

fn ethernet(frame: &[u8]) -> Result<(Network, &[u8]), Skip> {
    let header = EthernetPacket::new(frame).ok_or(Skip::Truncated)?;
    let rest = tail(frame, EthernetPacket::minimum_packet_size());
    ethertype(header.get_ethertype(), rest)
}

/// Linux cooked capture v1: packet type, ARPHRD type, link address, protocol.
fn linux_sll(frame: &[u8]) -> Result<(Network, &[u8]), Skip> {
    let header = SLLPacket::new(frame.get(..SLL_HEADER_LEN).ok_or(Skip::Truncated)?)
        .ok_or(Skip::Truncated)?;
    // The packet type field is 16 bits wide but only ever holds 0..=7.
    if header.get_packet_type() == u16::from(PACKET_OUTGOING) {
        return Err(Skip::Outgoing);
    }
    let rest = tail(frame, SLL_HEADER_LEN);
    // libpcap re-inserts the VLAN tag the kernel stripped right after this header, so the
    // protocol may be 0x8100: `ethertype` strips tags.
    ethertype(header.get_protocol(), rest)
}

/// Linux cooked capture v2: protocol, interface index, ARPHRD type, packet type, link address.
fn linux_sll2(frame: &[u8]) -> Result<(Network, &[u8]), Skip> {
    let header = SLL2Packet::new(frame.get(..SLL2_HEADER_LEN).ok_or(Skip::Truncated)?)
        .ok_or(Skip::Truncated)?;
    if header.get_packet_type() == PACKET_OUTGOING {
        return Err(Skip::Outgoing);
    }
    let rest = tail(frame, SLL2_HEADER_LEN);
    ethertype(header.get_protocol_type(), rest)
}

/// Strips up to [`MAX_VLAN_TAGS`] VLAN tags, then maps the EtherType to an IP version.
fn ethertype(mut kind: EtherType, mut rest: &[u8]) -> Result<(Network, &[u8]), Skip> {
    for _ in 0..=MAX_VLAN_TAGS {
        match kind {
            EtherTypes::Ipv4 => return Ok((Network::V4, rest)),
            EtherTypes::Ipv6 => return Ok((Network::V6, rest)),
            EtherTypes::Vlan | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                let tag = VlanPacket::new(rest).ok_or(Skip::Truncated)?;
                kind = tag.get_ethertype();
                rest = tail(rest, VlanPacket::minimum_packet_size());
            }
            _ => return Err(Skip::NotIp),
        }
    }
    Err(Skip::Malformed)
}

/// Bare IP: the version nibble says which.
fn raw_ip(frame: &[u8]) -> Result<(Network, &[u8]), Skip> {
    match frame.first().map(|b| b >> 4) {
        None => Err(Skip::Truncated),
        Some(4) => Ok((Network::V4, frame)),
        Some(6) => Ok((Network::V6, frame)),
        Some(_) => Err(Skip::NotIp),
    }
}

/// DLT_NULL and DLT_LOOP: a 4-byte address family. DLT_NULL writes it in the byte order of the
/// host that captured, which need not be ours (a capture file), so, as tcpdump does, a value
/// with its high half set is read the other way round; that also covers DLT_LOOP's network
/// order.
fn bsd_loopback(frame: &[u8]) -> Result<(Network, &[u8]), Skip> {
    let (family, rest) = frame.split_first_chunk::<4>().ok_or(Skip::Truncated)?;
    let mut family = u32::from_le_bytes(*family);
    if family & 0xffff_0000 != 0 {
        family = family.swap_bytes();
    }
    match family {
        AF_INET => Ok((Network::V4, rest)),
        f if AF_INET6.contains(&f) => Ok((Network::V6, rest)),
        _ => Err(Skip::NotIp),
    }
}

/// `bytes` past a header of `len` bytes that a pnet view already found there.
fn tail(bytes: &[u8], len: usize) -> &[u8] {
    bytes.get(len..).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_sizes() {
        // `tail` relies on pnet's minimum size being the whole header for these views...
        assert_eq!(EthernetPacket::minimum_packet_size(), 14);
        assert_eq!(VlanPacket::minimum_packet_size(), 4);
        // ...and not for these, whose link address pnet leaves out of the minimum.
        assert!(SLLPacket::minimum_packet_size() <= SLL_HEADER_LEN);
        assert!(SLL2Packet::minimum_packet_size() <= SLL2_HEADER_LEN);
    }

    #[test]
    fn cooked_headers_cut_anywhere_are_truncated() {
        let mut sll = [0u8; SLL_HEADER_LEN];
        sll[14..].copy_from_slice(&[0x08, 0x00]);
        let mut sll2 = [0u8; SLL2_HEADER_LEN];
        sll2[..2].copy_from_slice(&[0x86, 0xdd]);
        for len in 0..SLL_HEADER_LEN {
            assert_eq!(linux_sll(&sll[..len]), Err(Skip::Truncated), "{len} bytes");
        }
        for len in 0..SLL2_HEADER_LEN {
            assert_eq!(
                linux_sll2(&sll2[..len]),
                Err(Skip::Truncated),
                "{len} bytes"
            );
        }
        assert_eq!(linux_sll(&sll), Ok((Network::V4, &[][..])));
        assert_eq!(linux_sll2(&sll2), Ok((Network::V6, &[][..])));
    }

    #[test]
    fn bsd_family_in_either_byte_order() {
        for af in [AF_INET, 10, 24, 28, 30] {
            let want = if af == AF_INET {
                Network::V4
            } else {
                Network::V6
            };
            for header in [af.to_le_bytes(), af.to_be_bytes()] {
                let frame = [header[0], header[1], header[2], header[3], 0x45];
                assert_eq!(bsd_loopback(&frame), Ok((want, &[0x45][..])), "AF {af}");
            }
        }
        assert_eq!(bsd_loopback(&7u32.to_be_bytes()), Err(Skip::NotIp));
        assert_eq!(bsd_loopback(&[2, 0, 0]), Err(Skip::Truncated));
    }

    #[test]
    fn vlan_tags_are_bounded() {
        let mut frame = Vec::new();
        for _ in 0..=MAX_VLAN_TAGS {
            frame.extend_from_slice(&[0x00, 0x01, 0x81, 0x00]);
        }
        frame.extend_from_slice(&[0x45; 20]);
        assert_eq!(ethertype(EtherTypes::Vlan, &frame), Err(Skip::Malformed));
        // Exactly MAX_VLAN_TAGS tags, the last one announcing IPv4.
        let tags = MAX_VLAN_TAGS * 4;
        frame[tags - 2..tags].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(
            ethertype(EtherTypes::Vlan, &frame).map(|(n, r)| (n, r.len())),
            Ok((Network::V4, 24)),
        );
    }
}

//! Link layer: strips whatever precedes the IP header, and says which IP version follows.
//!
//! No link header here declares a length, so a short frame is always [`Skip::Truncated`];
//! trailing bytes (Ethernet padding, a frame check sequence) are left for the IP layer to cut
//! off by its own length.

use pnet_packet::ethernet::{EtherType, EtherTypes, EthernetPacket};
use pnet_packet::sll::SLLPacket;
use pnet_packet::sll2::SLL2Packet;
use pnet_packet::vlan::VlanPacket;

use super::{LinkType, Mac, Skip};

/// The network layer a link header announced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Network {
    V4,
    V6,
}

/// Who the link layer says a frame is for. 8-aligned: at its natural 7 bytes, copies of a
/// `Layer` were stored and loaded at odd offsets and widths, and each decode stalled on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(align(8))]
pub(super) enum Delivery {
    /// An Ethernet frame to this MAC (unicast, multicast or broadcast: the group bit, the low
    /// bit of the first byte, tells).
    Mac(Mac),
    /// The kernel classified it as for this host (cooked capture: PACKET_HOST), or the link
    /// type does not say (raw IP, BSD loopback).
    Host,
    /// Cooked capture's PACKET_BROADCAST or PACKET_MULTICAST: for this host, but in a frame
    /// to a link-layer group, which Linux's TCP drops.
    Group,
    /// Cooked capture's PACKET_OTHERHOST: seen only because some socket is promiscuous.
    OtherHost,
}

/// What the link layer held: the network layer, who the frame is for and its VLAN tags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Layer<'a> {
    pub(super) network: Network,
    /// The network layer's bytes, to the end of the capture.
    pub(super) bytes: &'a [u8],
    pub(super) delivery: Delivery,
    /// VLAN ids, outermost first (`tags[..tag_count]`).
    pub(super) tags: [u16; MAX_VLAN_TAGS],
    pub(super) tag_count: usize,
    /// Captured on a loopback device, where the host talks to itself: loopback and own
    /// source addresses are real there.
    pub(super) loopback: bool,
}

impl Layer<'_> {
    /// The VLAN ids of the tags stripped.
    pub(super) fn vlans(&self) -> &[u16] {
        self.tags.get(..self.tag_count).unwrap_or_default()
    }
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

/// Linux's `PACKET_BROADCAST`: in a cooked capture, a frame to the link-layer broadcast.
const PACKET_BROADCAST: u8 = 1;
/// Linux's `PACKET_MULTICAST`: in a cooked capture, a frame to a link-layer multicast group.
const PACKET_MULTICAST: u8 = 2;
/// Linux's `PACKET_OUTGOING`: in a cooked capture, a packet this host sent.
const PACKET_OUTGOING: u8 = 4;
/// Linux's `PACKET_OTHERHOST`: in a cooked capture, a frame to another host's MAC.
const PACKET_OTHERHOST: u8 = 3;
/// Linux's `ARPHRD_LOOPBACK`: a cooked frame captured on `lo`.
const ARPHRD_LOOPBACK: u16 = 772;

/// 802.1ad service tag (QinQ outer tag).
const ETHERTYPE_QINQ: EtherType = EtherType(0x88a8);
/// The pre-standard QinQ outer tag some switches still send.
const ETHERTYPE_QINQ_OLD: EtherType = EtherType(0x9100);

/// BSD `AF_INET`, the same on every system.
const AF_INET: u32 = 2;
/// BSD `AF_INET6`, which every system numbers its own way: Linux, NetBSD/OpenBSD, FreeBSD,
/// macOS. A capture file may come from any of them.
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

/// Splits `frame` into the network layer it carries, that layer's bytes, who the frame is
/// for and its VLAN tags. Always inlined, with `ethernet` and `ethertype`: out of line, the
/// `Layer` went through memory on the way back, which was a third of a decode.
#[inline(always)]
pub(super) fn layer(link: LinkType, frame: &[u8]) -> Result<Layer<'_>, Skip> {
    let bare = |loopback| {
        move |(network, bytes)| Layer {
            network,
            bytes,
            delivery: Delivery::Host,
            tags: [0; MAX_VLAN_TAGS],
            tag_count: 0,
            loopback,
        }
    };
    match link {
        LinkType::Ethernet => ethernet(frame),
        LinkType::LinuxSll => linux_sll(frame),
        LinkType::LinuxSll2 => linux_sll2(frame),
        LinkType::RawIp => raw_ip(frame).map(bare(false)),
        LinkType::Ipv4 => Ok(bare(false)((Network::V4, frame))),
        LinkType::Ipv6 => Ok(bare(false)((Network::V6, frame))),
        LinkType::Null | LinkType::Loop => bsd_loopback(frame).map(bare(true)),
    }
}

#[inline(always)]
fn ethernet(frame: &[u8]) -> Result<Layer<'_>, Skip> {
    let header = EthernetPacket::new(frame).ok_or(Skip::Truncated)?;
    let rest = tail(frame, EthernetPacket::minimum_packet_size());
    let mac = header.get_destination().octets();
    let mut layer = ethertype(header.get_ethertype(), rest, Delivery::Mac(mac))?;
    // Linux's `lo` shows frames between all-zero MACs.
    layer.loopback = mac == [0; 6] && header.get_source().octets() == [0; 6];
    Ok(layer)
}

/// Who a cooked frame of this packet type is for; outgoing frames are refused.
#[inline]
fn cooked_delivery(packet_type: u16) -> Result<Delivery, Skip> {
    // The packet type field is 16 bits wide in v1 but only ever holds 0..=7.
    match packet_type {
        t if t == u16::from(PACKET_OUTGOING) => Err(Skip::Outgoing),
        t if t == u16::from(PACKET_OTHERHOST) => Ok(Delivery::OtherHost),
        t if t == u16::from(PACKET_BROADCAST) || t == u16::from(PACKET_MULTICAST) => {
            Ok(Delivery::Group)
        }
        _ => Ok(Delivery::Host),
    }
}

/// Linux cooked capture v1: packet type, ARPHRD type, link address, protocol.
#[inline]
fn linux_sll(frame: &[u8]) -> Result<Layer<'_>, Skip> {
    let header = SLLPacket::new(frame.get(..SLL_HEADER_LEN).ok_or(Skip::Truncated)?)
        .ok_or(Skip::Truncated)?;
    let delivery = cooked_delivery(header.get_packet_type())?;
    let rest = tail(frame, SLL_HEADER_LEN);
    // libpcap re-inserts the VLAN tag the kernel stripped right after this header, so the
    // protocol may be 0x8100: `ethertype` strips tags.
    let mut layer = ethertype(header.get_protocol(), rest, delivery)?;
    layer.loopback = header.get_link_layer_address_type() == ARPHRD_LOOPBACK;
    Ok(layer)
}

/// Linux cooked capture v2: protocol, interface index, ARPHRD type, packet type, link address.
#[inline]
fn linux_sll2(frame: &[u8]) -> Result<Layer<'_>, Skip> {
    let header = SLL2Packet::new(frame.get(..SLL2_HEADER_LEN).ok_or(Skip::Truncated)?)
        .ok_or(Skip::Truncated)?;
    let delivery = cooked_delivery(u16::from(header.get_packet_type()))?;
    let rest = tail(frame, SLL2_HEADER_LEN);
    let mut layer = ethertype(header.get_protocol_type(), rest, delivery)?;
    layer.loopback = header.get_arphrd_type() == ARPHRD_LOOPBACK;
    Ok(layer)
}

/// Strips up to [`MAX_VLAN_TAGS`] VLAN tags, then maps the EtherType to an IP version.
#[inline(always)]
fn ethertype(mut kind: EtherType, mut rest: &[u8], delivery: Delivery) -> Result<Layer<'_>, Skip> {
    let mut tags = [0; MAX_VLAN_TAGS];
    for tag_count in 0..=MAX_VLAN_TAGS {
        let network = match kind {
            EtherTypes::Ipv4 => Network::V4,
            EtherTypes::Ipv6 => Network::V6,
            EtherTypes::Vlan | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD => {
                let tag = VlanPacket::new(rest).ok_or(Skip::Truncated)?;
                *tags.get_mut(tag_count).ok_or(Skip::Malformed)? = tag.get_vlan_identifier();
                kind = tag.get_ethertype();
                rest = tail(rest, VlanPacket::minimum_packet_size());
                continue;
            }
            _ => return Err(Skip::NotIp),
        };
        return Ok(Layer {
            network,
            bytes: rest,
            delivery,
            tags,
            tag_count,
            loopback: false,
        });
    }
    Err(Skip::Malformed)
}

/// Bare IP: the version nibble says which.
#[inline]
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
#[inline]
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
#[inline]
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
        let l = linux_sll(&sll).unwrap();
        assert_eq!(
            (l.network, l.bytes, l.delivery),
            (Network::V4, &[][..], Delivery::Host)
        );
        let l = linux_sll2(&sll2).unwrap();
        assert_eq!((l.network, l.bytes), (Network::V6, &[][..]));
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
        let host = Delivery::Host;
        assert_eq!(
            ethertype(EtherTypes::Vlan, &frame, host).err(),
            Some(Skip::Malformed)
        );
        // Exactly MAX_VLAN_TAGS tags, the last one announcing IPv4.
        let tags = MAX_VLAN_TAGS * 4;
        frame[tags - 2..tags].copy_from_slice(&[0x08, 0x00]);
        let l = ethertype(EtherTypes::Vlan, &frame, host).unwrap();
        assert_eq!((l.network, l.bytes.len()), (Network::V4, 24));
        assert_eq!(l.vlans(), &[1; MAX_VLAN_TAGS]);
    }
}

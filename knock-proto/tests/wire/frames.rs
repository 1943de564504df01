//! Builders for the frames the tests decode, written with pnet's mutable packet views so that
//! they do not share the decoder's idea of where each field sits.

use std::net::IpAddr;

use knock_proto::wire::{Hit, LinkType};
use knock_proto::{Knock, Port, Proto};
use pnet_packet::MutablePacket;
use pnet_packet::ethernet::{EtherType, MutableEthernetPacket};
use pnet_packet::ip::IpNextHeaderProtocol;
use pnet_packet::ipv4::{self, Ipv4Flags, Ipv4Packet, MutableIpv4Packet};
use pnet_packet::ipv6::{
    MutableExtensionPacket, MutableFragmentPacket, MutableIpv6Packet, MutableRoutingPacket,
};
use pnet_packet::sll::MutableSLLPacket;
use pnet_packet::sll2::MutableSLL2Packet;
use pnet_packet::tcp::MutableTcpPacket;
use pnet_packet::udp::MutableUdpPacket;
use pnet_packet::vlan::MutableVlanPacket;

pub const ETHERTYPE_IPV4: u16 = 0x0800;
pub const ETHERTYPE_IPV6: u16 = 0x86dd;
pub const TCP: u8 = 6;
pub const UDP: u8 = 17;
/// The sequence number of every TCP segment built here.
pub const TCP_SEQ: u32 = 0x1234_5678;

/// A TCP or UDP packet to decode, and what it should decode to.
#[derive(Debug, Clone)]
pub struct Spec {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub proto: Proto,
    pub source_port: u16,
    pub destination_port: u16,
    /// TCP only.
    pub tcp_flags: u8,
    pub payload: Vec<u8>,
}

impl Spec {
    /// A TCP SYN from 198.18.0.1:40000 to 198.18.0.2:7000, no payload.
    pub fn tcp4() -> Spec {
        Spec {
            source: "198.18.0.1".parse().unwrap(),
            destination: "198.18.0.2".parse().unwrap(),
            proto: Proto::Tcp,
            source_port: 40000,
            destination_port: 7000,
            tcp_flags: 0x02,
            payload: Vec::new(),
        }
    }

    /// A UDP datagram from fd00::1:40001 to fd00::2:8000 with a 5-byte payload.
    pub fn udp6() -> Spec {
        Spec {
            source: "fd00::1".parse().unwrap(),
            destination: "fd00::2".parse().unwrap(),
            proto: Proto::Udp,
            source_port: 40001,
            destination_port: 8000,
            tcp_flags: 0,
            payload: b"knock".to_vec(),
        }
    }

    /// The hit this packet should decode to.
    pub fn hit(&self) -> Hit {
        Hit {
            source: self.source,
            destination: self.destination,
            knock: Knock::new(Port::new(self.destination_port).unwrap(), self.proto),
            tcp_flags: if self.proto == Proto::Tcp {
                self.tcp_flags
            } else {
                0
            },
            src_port: self.source_port,
            tcp_seq: if self.proto == Proto::Tcp { TCP_SEQ } else { 0 },
        }
    }

    /// The IP protocol number of the transport.
    pub fn protocol(&self) -> u8 {
        match self.proto {
            Proto::Tcp => TCP,
            Proto::Udp => UDP,
        }
    }

    /// The TCP or UDP header and payload.
    pub fn transport(&self) -> Vec<u8> {
        match self.proto {
            Proto::Tcp => {
                let mut bytes = vec![0; 20 + self.payload.len()];
                let mut tcp = MutableTcpPacket::new(&mut bytes).unwrap();
                tcp.set_source(self.source_port);
                tcp.set_destination(self.destination_port);
                tcp.set_sequence(TCP_SEQ);
                tcp.set_data_offset(5);
                tcp.set_flags(self.tcp_flags);
                tcp.set_window(64240);
                tcp.payload_mut().copy_from_slice(&self.payload);
                bytes
            }
            Proto::Udp => {
                let mut bytes = vec![0; 8 + self.payload.len()];
                let mut udp = MutableUdpPacket::new(&mut bytes).unwrap();
                udp.set_source(self.source_port);
                udp.set_destination(self.destination_port);
                udp.set_length(u16::try_from(8 + self.payload.len()).unwrap());
                udp.payload_mut().copy_from_slice(&self.payload);
                bytes
            }
        }
    }

    /// The whole IP packet: IPv4 or IPv6 after the addresses, with no IPv6 extension header.
    pub fn ip(&self) -> Vec<u8> {
        self.ip_with(&[])
    }

    /// The IP packet with these IPv6 extension headers (`Ext::bytes`) before the transport
    /// header; `exts` must be empty for IPv4.
    pub fn ip_with(&self, exts: &[Ext]) -> Vec<u8> {
        let transport = self.transport();
        match (self.source, self.destination) {
            (IpAddr::V4(s), IpAddr::V4(d)) => {
                assert!(exts.is_empty(), "extension headers are IPv6 only");
                ipv4(s.octets(), d.octets(), self.protocol(), &transport)
            }
            (IpAddr::V6(s), IpAddr::V6(d)) => {
                let (next, mut payload) = chain(exts, self.protocol());
                payload.extend_from_slice(&transport);
                ipv6(s.octets(), d.octets(), next, &payload)
            }
            _ => panic!("mixed address families"),
        }
    }
}

/// An IPv4 packet: IHL 5, Don't Fragment, TTL 64, header checksum filled in.
pub fn ipv4(source: [u8; 4], destination: [u8; 4], protocol: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0; 20 + payload.len()];
    let mut ip = MutableIpv4Packet::new(&mut bytes).unwrap();
    ip.set_version(4);
    ip.set_header_length(5);
    ip.set_total_length(u16::try_from(20 + payload.len()).unwrap());
    ip.set_identification(0x4242);
    ip.set_flags(Ipv4Flags::DontFragment);
    ip.set_ttl(64);
    ip.set_next_level_protocol(IpNextHeaderProtocol(protocol));
    ip.set_source(source.into());
    ip.set_destination(destination.into());
    ip.payload_mut().copy_from_slice(payload);
    set_ipv4_checksum(&mut bytes);
    bytes
}

/// Fills in the header checksum of the IPv4 packet `ip` (after an edit of its header), with
/// pnet's checksum over IHL words.
pub fn set_ipv4_checksum(ip: &mut [u8]) {
    let sum = ipv4::checksum(&Ipv4Packet::new(ip).unwrap());
    MutableIpv4Packet::new(ip).unwrap().set_checksum(sum);
}

/// An IPv6 packet whose first next header is `next`.
pub fn ipv6(source: [u8; 16], destination: [u8; 16], next: u8, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0; 40 + payload.len()];
    let mut ip = MutableIpv6Packet::new(&mut bytes).unwrap();
    ip.set_version(6);
    ip.set_payload_length(u16::try_from(payload.len()).unwrap());
    ip.set_next_header(IpNextHeaderProtocol(next));
    ip.set_hop_limit(64);
    ip.set_source(source.into());
    ip.set_destination(destination.into());
    ip.payload_mut().copy_from_slice(payload);
    bytes
}

/// An IPv6 extension header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ext {
    /// Hop-by-hop (0), routing (43) or destination options (60), with `units` 8-byte units
    /// past the first 8. A routing header is of type 0 with no segments left (a route that is
    /// done: the header is processed as if absent).
    Generic { kind: u8, units: u8 },
    /// Routing header (43) of this routing type with this many segments left, `units` 8-byte
    /// units past the first 8.
    Routing {
        routing_type: u8,
        segments_left: u8,
        units: u8,
    },
    /// Fragment header (44) with this offset in 8-byte units and More Fragments flag.
    Fragment { offset: u16, more: bool },
    /// Authentication header (51), `words` 4-byte units past the first 8 (so at least 1 for
    /// a real one, which has a 12-byte minimum).
    Ah { words: u8 },
}

impl Ext {
    pub fn kind(self) -> u8 {
        match self {
            Ext::Generic { kind, .. } => kind,
            Ext::Routing { .. } => 43,
            Ext::Fragment { .. } => 44,
            Ext::Ah { .. } => 51,
        }
    }

    /// The header's bytes, pointing at `next`.
    pub fn bytes(self, next: u8) -> Vec<u8> {
        match self {
            Ext::Generic { kind: 43, units } => Ext::Routing {
                routing_type: 0,
                segments_left: 0,
                units,
            }
            .bytes(next),
            Ext::Generic { units, .. } => {
                let mut bytes = vec![0; (usize::from(units) + 1) * 8];
                let mut ext = MutableExtensionPacket::new(&mut bytes).unwrap();
                ext.set_next_header(IpNextHeaderProtocol(next));
                ext.set_hdr_ext_len(units);
                // A PadN option filling the rest, as a real sender would write.
                bytes[2] = 1;
                bytes[3] = u8::try_from(bytes.len() - 4).unwrap();
                bytes
            }
            Ext::Routing {
                routing_type,
                segments_left,
                units,
            } => {
                let mut bytes = vec![0; (usize::from(units) + 1) * 8];
                let mut routing = MutableRoutingPacket::new(&mut bytes).unwrap();
                routing.set_next_header(IpNextHeaderProtocol(next));
                routing.set_hdr_ext_len(units);
                routing.set_routing_type(routing_type);
                routing.set_segments_left(segments_left);
                bytes
            }
            Ext::Fragment { offset, more } => {
                let mut bytes = vec![0; 8];
                let mut frag = MutableFragmentPacket::new(&mut bytes).unwrap();
                frag.set_next_header(IpNextHeaderProtocol(next));
                frag.set_fragment_offset_with_flags((offset << 3) | u16::from(more));
                frag.set_id(0xdead_beef);
                bytes
            }
            Ext::Ah { words } => {
                let mut bytes = vec![0xa5; (usize::from(words) + 2) * 4];
                // Same first two fields as the generic layout, another unit for the length.
                let mut ext = MutableExtensionPacket::new(&mut bytes).unwrap();
                ext.set_next_header(IpNextHeaderProtocol(next));
                ext.set_hdr_ext_len(words);
                bytes
            }
        }
    }
}

/// The extension headers chained in order, ending at `last`: (first next header, bytes).
pub fn chain(exts: &[Ext], last: u8) -> (u8, Vec<u8>) {
    let mut bytes = Vec::new();
    for (i, ext) in exts.iter().enumerate() {
        let next = exts.get(i + 1).map_or(last, |e| e.kind());
        bytes.extend_from_slice(&ext.bytes(next));
    }
    (exts.first().map_or(last, |e| e.kind()), bytes)
}

/// The EtherType for an IP packet, from its version nibble.
pub fn ethertype_of(ip: &[u8]) -> u16 {
    match ip[0] >> 4 {
        4 => ETHERTYPE_IPV4,
        6 => ETHERTYPE_IPV6,
        v => panic!("IP version {v}"),
    }
}

/// An Ethernet II frame with these VLAN tag protocol identifiers (outermost first).
pub fn ethernet(tags: &[u16], ethertype: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0; 14 + 4 * tags.len() + payload.len()];
    let mut eth = MutableEthernetPacket::new(&mut bytes).unwrap();
    // MAC addresses written raw: pnet_base's MacAddr is not a dependency of ours.
    eth.packet_mut()[..12].copy_from_slice(&[2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1]);
    let mut kinds = tags.iter().copied().chain([ethertype]);
    eth.set_ethertype(EtherType(kinds.next().unwrap()));
    let mut rest = eth.payload_mut();
    for (i, kind) in kinds.enumerate().take(tags.len()) {
        let (head, tail) = std::mem::take(&mut rest).split_at_mut(4);
        let mut tag = MutableVlanPacket::new(head).unwrap();
        tag.set_vlan_identifier(100 + u16::try_from(i).unwrap());
        tag.set_ethertype(EtherType(kind));
        rest = tail;
    }
    rest.copy_from_slice(payload);
    bytes
}

/// A Linux cooked capture v1 frame.
pub fn sll(packet_type: u16, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0; 16 + payload.len()];
    let mut sll = MutableSLLPacket::new(&mut bytes).unwrap();
    sll.set_packet_type(packet_type);
    sll.set_link_layer_address_type(1);
    sll.set_link_layer_address_len(6);
    sll.set_link_layer_address(&[2, 0, 0, 0, 0, 1, 0, 0]);
    sll.set_protocol(EtherType(protocol));
    bytes[16..].copy_from_slice(payload);
    bytes
}

/// A Linux cooked capture v2 frame.
pub fn sll2(packet_type: u8, protocol: u16, payload: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0; 20 + payload.len()];
    let mut sll = MutableSLL2Packet::new(&mut bytes).unwrap();
    sll.set_protocol_type(EtherType(protocol));
    sll.set_interface_index(3);
    sll.set_arphrd_type(1);
    sll.set_packet_type(packet_type);
    sll.set_link_layer_address_length(6);
    sll.set_link_layer_address(&[2, 0, 0, 0, 0, 1, 0, 0]);
    bytes[20..].copy_from_slice(payload);
    bytes
}

/// A DLT_NULL / DLT_LOOP frame: the 4-byte family as given, then the packet.
pub fn bsd(family: [u8; 4], payload: &[u8]) -> Vec<u8> {
    let mut bytes = family.to_vec();
    bytes.extend_from_slice(payload);
    bytes
}

/// `ip` framed the plainest way for `link`: no VLAN tag, incoming, Linux's address families.
pub fn frame(link: LinkType, ip: &[u8]) -> Vec<u8> {
    let v6 = ethertype_of(ip) == ETHERTYPE_IPV6;
    let family: u32 = if v6 { 10 } else { 2 };
    match link {
        LinkType::Ethernet => ethernet(&[], ethertype_of(ip), ip),
        LinkType::LinuxSll => sll(0, ethertype_of(ip), ip),
        LinkType::LinuxSll2 => sll2(0, ethertype_of(ip), ip),
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => ip.to_vec(),
        LinkType::Null => bsd(family.to_ne_bytes(), ip),
        LinkType::Loop => bsd(family.to_be_bytes(), ip),
    }
}

/// Whether `link` can carry this IP version at all.
pub fn carries(link: LinkType, ip: &[u8]) -> bool {
    match link {
        LinkType::Ipv4 => ip[0] >> 4 == 4,
        LinkType::Ipv6 => ip[0] >> 4 == 6,
        _ => true,
    }
}

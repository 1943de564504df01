//! Property tests: arbitrary bytes never panic, generated packets decode to exactly what was
//! built, and cutting a frame short either changes nothing or says `Truncated`.

use std::net::IpAddr;

use knock_proto::Proto;
use knock_proto::wire::{LinkType, Skip, decode};
use proptest::prelude::*;
use proptest::sample::select;

use crate::frames::{self, Ext, Spec};

fn link_type() -> impl Strategy<Value = LinkType> {
    select(LinkType::ALL.to_vec())
}

fn spec() -> impl Strategy<Value = Spec> {
    let addresses = prop_oneof![
        (any::<[u8; 4]>(), any::<[u8; 4]>()).prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d))),
        (any::<[u8; 16]>(), any::<[u8; 16]>())
            .prop_map(|(s, d)| (IpAddr::from(s), IpAddr::from(d))),
    ];
    (
        addresses,
        prop_oneof![Just(Proto::Tcp), Just(Proto::Udp)],
        any::<u16>(),
        1..=u16::MAX,
        any::<u8>(),
        proptest::collection::vec(any::<u8>(), 0..32),
    )
        .prop_map(
            |((source, destination), proto, source_port, destination_port, tcp_flags, payload)| {
                Spec {
                    source,
                    destination,
                    proto,
                    source_port,
                    destination_port,
                    tcp_flags,
                    payload,
                }
            },
        )
}

/// An extension header the kernel takes anywhere in the chain: no hop-by-hop options (first
/// only: see `extensions`), a routing header with no segments left, an atomic fragment.
fn extension() -> impl Strategy<Value = Ext> {
    prop_oneof![
        (select(vec![43u8, 60, 135, 139, 140, 253, 254]), 0..4u8)
            .prop_map(|(kind, units)| Ext::Generic { kind, units }),
        (any::<u8>(), 0..4u8).prop_map(|(routing_type, units)| Ext::Routing {
            routing_type,
            segments_left: 0,
            units,
        }),
        Just(Ext::Fragment {
            offset: 0,
            more: false
        }),
        (1..8u8).prop_map(|words| Ext::Ah { words }),
    ]
}

/// A chain of up to `max` extension headers the kernel takes: maybe hop-by-hop options
/// first, then any of `extension`.
fn extensions(max: usize) -> impl Strategy<Value = Vec<Ext>> {
    (
        any::<bool>(),
        0..4u8,
        proptest::collection::vec(extension(), 0..=max),
    )
        .prop_map(move |(hop, units, rest)| {
            let first = hop.then_some(Ext::Generic { kind: 0, units });
            first.into_iter().chain(rest).take(max).collect()
        })
}

/// How the IP packet is framed, beyond the link type: VLAN tags (Ethernet, cooked), the cooked
/// packet type, and the BSD address family and its byte order.
#[derive(Debug, Clone)]
struct Framing {
    tags: Vec<u16>,
    packet_type: u8,
    family_v6: u32,
    big_endian: bool,
}

fn framing() -> impl Strategy<Value = Framing> {
    (
        proptest::collection::vec(select(vec![0x8100u16, 0x88a8, 0x9100]), 0..=4),
        0..=2u8,
        select(vec![10u32, 24, 28, 30]),
        any::<bool>(),
    )
        .prop_map(|(tags, packet_type, family_v6, big_endian)| Framing {
            tags,
            packet_type,
            family_v6,
            big_endian,
        })
}

/// `ip` in a frame of `link`, framed as `how` says.
fn frame(link: LinkType, ip: &[u8], how: &Framing) -> Vec<u8> {
    let ethertype = frames::ethertype_of(ip);
    // For cooked captures, tags sit between the cooked header and the IP header.
    let tagged = || {
        let Some((&outer, inner)) = how.tags.split_first() else {
            return (ethertype, ip.to_vec());
        };
        let ethernet = frames::ethernet(inner, ethertype, ip);
        let mut bytes = vec![0, 7];
        bytes.extend_from_slice(&ethernet[12..]);
        (outer, bytes)
    };
    match link {
        LinkType::Ethernet => frames::ethernet(&how.tags, ethertype, ip),
        LinkType::LinuxSll => {
            let (kind, rest) = tagged();
            frames::sll(u16::from(how.packet_type), kind, &rest)
        }
        LinkType::LinuxSll2 => {
            let (kind, rest) = tagged();
            frames::sll2(how.packet_type, kind, &rest)
        }
        LinkType::Null | LinkType::Loop => {
            let family = if ethertype == frames::ETHERTYPE_IPV6 {
                how.family_v6
            } else {
                2
            };
            let header = if how.big_endian {
                family.to_be_bytes()
            } else {
                family.to_le_bytes()
            };
            frames::bsd(header, ip)
        }
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => ip.to_vec(),
    }
}

/// Why no real sender has `source`, written from the RFCs' prefixes rather than std's
/// predicates.
/// Whether the frame says it was captured on a loopback device: BSD loopback, Ethernet with
/// both MACs zero, or a cooked header with ARPHRD_LOOPBACK (772).
fn on_loopback(link: LinkType, frame: &[u8]) -> bool {
    const LOOPBACK: [u8; 2] = 772u16.to_be_bytes();
    match link {
        LinkType::Null | LinkType::Loop => true,
        LinkType::Ethernet => frame.get(..12).is_some_and(|m| m.iter().all(|&b| b == 0)),
        LinkType::LinuxSll => frame.get(2..4) == Some(&LOOPBACK[..]),
        LinkType::LinuxSll2 => frame.get(8..10) == Some(&LOOPBACK[..]),
        _ => false,
    }
}

fn source_check(source: IpAddr) -> Result<(), Skip> {
    match source {
        IpAddr::V4(v4) => match v4.octets() {
            [0, 0, 0, 0] => Err(Skip::SourceUnspecified),
            [255, 255, 255, 255] => Err(Skip::SourceBroadcast),
            [a, ..] if a >> 4 == 14 => Err(Skip::SourceMulticast),
            [127, ..] => Err(Skip::SourceLoopback),
            _ => Ok(()),
        },
        IpAddr::V6(v6) => match v6.octets() {
            o if o == [0; 16] => Err(Skip::SourceUnspecified),
            [0xff, ..] => Err(Skip::SourceMulticast),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1] => Err(Skip::SourceLoopback),
            [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, ..] => Err(Skip::SourceMapped),
            _ => Ok(()),
        },
    }
}

/// Decoding reads nothing past what it needs: a prefix decodes to `Truncated` or to exactly
/// what the whole frame decodes to.
fn prefixes_agree(link: LinkType, bytes: &[u8]) -> Result<(), TestCaseError> {
    let whole = decode(link, bytes);
    for len in 0..bytes.len() {
        let cut = decode(link, &bytes[..len]);
        prop_assert!(
            cut == Err(Skip::Truncated) || cut == whole,
            "{link:?}: cut at {len} gives {cut:?}, whole frame {whole:?}"
        );
    }
    Ok(())
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..160)) {
        for link in LinkType::ALL {
            prefixes_agree(link, &bytes)?;
        }
    }

    #[test]
    fn generated_packets_decode_to_their_fields(
        spec in spec(),
        exts in extensions(8),
        link in link_type(),
        how in framing(),
    ) {
        let exts = if spec.source.is_ipv6() { exts } else { Vec::new() };
        let ip = spec.ip_with(&exts);
        prop_assume!(frames::carries(link, &ip));
        let frame = frame(link, &ip, &how);
        let cooked = matches!(link, LinkType::LinuxSll | LinkType::LinuxSll2);
        let want = match source_check(spec.source) {
            // Linux's TCP drops a segment in a link-layer broadcast or multicast frame.
            _ if spec.proto == Proto::Tcp && cooked && how.packet_type != 0 => {
                Err(Skip::TcpLinkBroadcast)
            }
            // On a loopback device the host talks to itself from 127.0.0.1 and ::1.
            Err(Skip::SourceLoopback) if on_loopback(link, &frame) => Ok(()),
            other => other,
        };
        prop_assert_eq!(decode(link, &frame), want.map(|()| spec.hit()));
        prefixes_agree(link, &frame)?;
    }

    #[test]
    fn mutated_packets_never_panic(
        spec in spec(),
        exts in extensions(3),
        link in link_type(),
        how in framing(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let exts = if spec.source.is_ipv6() { exts } else { Vec::new() };
        let mut frame = frame(link, &spec.ip_with(&exts), &how);
        for (at, byte) in edits {
            let at = at.index(frame.len());
            frame[at] = byte;
        }
        prefixes_agree(link, &frame)?;
        if let Ok(hit) = decode(link, &frame) {
            prop_assert_eq!(hit.source.is_ipv4(), hit.destination.is_ipv4());
            prop_assert_ne!(hit.knock.port.get(), 0);
            if hit.knock.proto == Proto::Udp {
                prop_assert_eq!(hit.tcp_flags, 0);
            }
        }
    }
}

//! IPv4, IPv6 and the transport headers: what decodes and every reason a packet is skipped.

use knock_proto::Proto;
use knock_proto::wire::{LinkType, Skip, decode};
use pnet_packet::ipv4::{Ipv4Flags, MutableIpv4Packet};
use pnet_packet::ipv6::MutableIpv6Packet;
use pnet_packet::tcp::MutableTcpPacket;
use pnet_packet::udp::MutableUdpPacket;

use crate::frames::{self, Ext, Spec, TCP, UDP};

fn raw(ip: &[u8]) -> Result<knock_proto::wire::Hit, Skip> {
    decode(LinkType::RawIp, ip)
}

/// IPv4 bytes with the header edited through pnet's view, and its checksum filled in again.
fn ipv4_edited(spec: &Spec, edit: impl FnOnce(&mut MutableIpv4Packet<'_>)) -> Vec<u8> {
    let mut ip = spec.ip();
    edit(&mut MutableIpv4Packet::new(&mut ip).unwrap());
    frames::set_ipv4_checksum(&mut ip);
    ip
}

#[test]
fn tcp_flags_come_through_and_udp_has_none() {
    for flags in [0x00, 0x02, 0x12, 0x11, 0x04, 0xff] {
        let spec = Spec {
            tcp_flags: flags,
            ..Spec::tcp4()
        };
        assert_eq!(raw(&spec.ip()).map(|h| h.tcp_flags), Ok(flags));
    }
    let hit = raw(&Spec::udp6().ip()).unwrap();
    assert_eq!((hit.knock.proto, hit.tcp_flags), (Proto::Udp, 0));
}

#[test]
fn source_port_and_sequence_number_come_through() {
    let hit = raw(&Spec::tcp4().ip()).unwrap();
    assert_eq!((hit.src_port, hit.tcp_seq), (40000, frames::TCP_SEQ));
    let hit = raw(&Spec::udp6().ip()).unwrap();
    assert_eq!(
        (hit.src_port, hit.tcp_seq),
        (40001, 0),
        "UDP has no sequence number"
    );
}

#[test]
fn ipv4_header_length() {
    let spec = Spec::tcp4();
    for ihl in [0, 1, 4] {
        let ip = ipv4_edited(&spec, |ip| ip.set_header_length(ihl));
        assert_eq!(raw(&ip), Err(Skip::Malformed), "IHL {ihl}");
    }
    // IHL 6: four bytes of options (a NOP and an end-of-options list) before TCP.
    let transport = spec.transport();
    let mut ip = frames::ipv4(
        [198, 18, 0, 1],
        [198, 18, 0, 2],
        TCP,
        &[&[1, 0, 0, 0], &transport[..]].concat(),
    );
    MutableIpv4Packet::new(&mut ip)
        .unwrap()
        .set_header_length(6);
    frames::set_ipv4_checksum(&mut ip);
    assert_eq!(raw(&ip), Ok(spec.hit()));
    // IHL 15 says 60 bytes of header, more than the whole 40-byte packet.
    let ip = ipv4_edited(&spec, |ip| ip.set_header_length(15));
    assert_eq!(raw(&ip), Err(Skip::Malformed));
}

#[test]
fn ipv4_total_length() {
    let spec = Spec::tcp4();
    // Shorter than the IP header, shorter than IP + TCP headers.
    for total in [0, 19, 20, 39] {
        let ip = ipv4_edited(&spec, |ip| ip.set_total_length(total));
        assert_eq!(raw(&ip), Err(Skip::Malformed), "total length {total}");
    }
    // Longer than captured: a snap length cut the payload, the headers are whole.
    let ip = ipv4_edited(&spec, |ip| ip.set_total_length(1500));
    assert_eq!(raw(&ip), Ok(spec.hit()));
}

#[test]
fn ipv4_fragments() {
    let spec = Spec::tcp4();
    // A first fragment with More Fragments set holds the whole TCP header, but the kernel
    // hands it to TCP only once the datagram is reassembled, and a knock is never fragmented.
    for flags in [
        Ipv4Flags::MoreFragments,
        Ipv4Flags::MoreFragments | Ipv4Flags::DontFragment,
    ] {
        let first = ipv4_edited(&spec, |ip| ip.set_flags(flags));
        assert_eq!(raw(&first), Err(Skip::Fragment), "flags {flags:#b}");
    }
    // Neither fragment flag: a whole datagram, with or without Don't Fragment and the
    // reserved bit (which Linux ignores).
    for flags in [0, Ipv4Flags::DontFragment, 0b100] {
        let whole = ipv4_edited(&spec, |ip| ip.set_flags(flags));
        assert_eq!(raw(&whole), Ok(spec.hit()), "flags {flags:#b}");
    }
    for offset in [1, 185, 0x1fff] {
        for flags in [0, Ipv4Flags::MoreFragments] {
            let ip = ipv4_edited(&spec, |ip| {
                ip.set_flags(flags);
                ip.set_fragment_offset(offset);
            });
            assert_eq!(raw(&ip), Err(Skip::Fragment), "offset {offset}");
        }
    }
    // A tiny first fragment carrying 8 of the 20 TCP header bytes is not a knock.
    let mut tiny = ipv4_edited(&spec, |ip| {
        ip.set_flags(Ipv4Flags::MoreFragments);
        ip.set_total_length(28);
    });
    tiny.truncate(28);
    assert_eq!(raw(&tiny), Err(Skip::Fragment));
    // Whatever the transport: a fragmented UDP datagram is no knock either.
    let udp = Spec {
        source: "198.18.0.1".parse().unwrap(),
        destination: "198.18.0.2".parse().unwrap(),
        ..Spec::udp6()
    };
    let first = ipv4_edited(&udp, |ip| ip.set_flags(Ipv4Flags::MoreFragments));
    assert_eq!(raw(&first), Err(Skip::Fragment));
}

#[test]
fn ipv4_header_checksum() {
    let udp = Spec {
        source: "198.18.0.1".parse().unwrap(),
        destination: "198.18.0.2".parse().unwrap(),
        ..Spec::udp6()
    };
    for spec in [Spec::tcp4(), udp] {
        let ip = spec.ip();
        assert_eq!(raw(&ip), Ok(spec.hit()));
        // One bit flipped anywhere in the header past the version and IHL, the checksum
        // field included: the sum no longer holds.
        for at in 1..20 {
            for bit in [0x01, 0x10, 0x80] {
                let mut bad = ip.clone();
                bad[at] ^= bit;
                assert_eq!(
                    raw(&bad),
                    Err(Skip::BadIpv4Checksum),
                    "bit {bit:#x} of byte {at} flipped"
                );
            }
        }
        // A zero checksum is no exemption (unlike UDP's).
        let mut zero = ip.clone();
        zero[10..12].fill(0);
        assert_eq!(raw(&zero), Err(Skip::BadIpv4Checksum));
        // The checksum is the same whatever the link.
        for link in LinkType::ALL
            .into_iter()
            .filter(|&l| frames::carries(l, &ip))
        {
            let frame = frames::frame(link, &zero);
            assert_eq!(decode(link, &frame), Err(Skip::BadIpv4Checksum), "{link:?}");
        }
    }
    // The checksum covers the options too.
    let transport = Spec::tcp4().transport();
    let mut options = frames::ipv4(
        [198, 18, 0, 1],
        [198, 18, 0, 2],
        TCP,
        &[&[1, 1, 1, 0], &transport[..]].concat(),
    );
    MutableIpv4Packet::new(&mut options)
        .unwrap()
        .set_header_length(6);
    frames::set_ipv4_checksum(&mut options);
    assert_eq!(raw(&options), Ok(Spec::tcp4().hit()));
    options[21] = 0; // NOP -> end of options: same meaning, another sum.
    assert_eq!(raw(&options), Err(Skip::BadIpv4Checksum));
    // "Negative zero": 0xffff where 0x0000 would do is the same one's complement sum, and
    // Linux takes it. Search an identification that makes the checksum come out 0.
    let zero_sum = (0..=u16::MAX)
        .map(|id| ipv4_edited(&Spec::tcp4(), |ip| ip.set_identification(id)))
        .find(|ip| ip[10..12] == [0, 0])
        .expect("some identification sums to 0xffff");
    assert_eq!(raw(&zero_sum), Ok(Spec::tcp4().hit()));
    let mut negative = zero_sum;
    negative[10..12].fill(0xff);
    assert_eq!(raw(&negative), Ok(Spec::tcp4().hit()));
}

#[test]
fn ipv4_protocols_other_than_tcp_and_udp() {
    // ICMP, IGMP, GRE, ESP, AH, SCTP, UDP-Lite.
    for protocol in [1, 2, 47, 50, 51, 132, 136] {
        let ip = frames::ipv4([10, 0, 0, 1], [10, 0, 0, 2], protocol, &[0; 40]);
        assert_eq!(raw(&ip), Err(Skip::NotTransport), "protocol {protocol}");
    }
}

#[test]
fn ipv6_extension_headers_are_walked() {
    let hop = Ext::Generic { kind: 0, units: 0 };
    let routing = Ext::Generic { kind: 43, units: 2 };
    let dest = Ext::Generic { kind: 60, units: 1 };
    // An atomic fragment (RFC 6946: offset 0, no more fragments) is a whole datagram.
    let first_fragment = Ext::Fragment {
        offset: 0,
        more: false,
    };
    let ah = Ext::Ah { words: 4 };
    let mobility = Ext::Generic {
        kind: 135,
        units: 0,
    };
    for exts in [
        &[hop][..],
        &[routing],
        &[dest],
        &[first_fragment],
        &[ah],
        &[mobility],
        &[hop, dest, routing, first_fragment, ah, dest],
        &[hop, dest, routing, ah, first_fragment, dest, dest, dest],
    ] {
        for spec in [
            Spec::udp6(),
            Spec {
                source: "fd00::9".parse().unwrap(),
                ..tcp6()
            },
        ] {
            let ip = spec.ip_with(exts);
            assert_eq!(raw(&ip), Ok(spec.hit()), "{exts:?}");
        }
    }
    // One header more than the bound of 8.
    let nine = [
        hop,
        dest,
        routing,
        ah,
        first_fragment,
        dest,
        dest,
        dest,
        dest,
    ];
    assert_eq!(raw(&Spec::udp6().ip_with(&nine)), Err(Skip::Malformed));
}

fn tcp6() -> Spec {
    Spec {
        proto: Proto::Tcp,
        tcp_flags: 0x02,
        ..Spec::udp6()
    }
}

#[test]
fn ipv6_fragments() {
    // A first fragment with More Fragments set: the kernel hands it to TCP or UDP only once
    // reassembled, and a knock is never fragmented.
    for spec in [Spec::udp6(), tcp6()] {
        let first = [Ext::Fragment {
            offset: 0,
            more: true,
        }];
        assert_eq!(raw(&spec.ip_with(&first)), Err(Skip::Fragment));
        let behind_options = [Ext::Generic { kind: 0, units: 0 }, first[0]];
        assert_eq!(raw(&spec.ip_with(&behind_options)), Err(Skip::Fragment));
    }
    for offset in [1, 100, 0x1fff] {
        for more in [false, true] {
            let exts = [Ext::Fragment { offset, more }];
            let ip = Spec::udp6().ip_with(&exts);
            assert_eq!(raw(&ip), Err(Skip::Fragment), "offset {offset}");
            let behind_options = [Ext::Generic { kind: 0, units: 0 }, exts[0]];
            let ip = Spec::udp6().ip_with(&behind_options);
            assert_eq!(raw(&ip), Err(Skip::Fragment), "offset {offset}");
        }
    }
}

#[test]
fn ipv6_hop_by_hop_options_only_first() {
    let hop = Ext::Generic { kind: 0, units: 0 };
    let dest = Ext::Generic { kind: 60, units: 0 };
    let routing = Ext::Generic { kind: 43, units: 2 };
    let fragment = Ext::Fragment {
        offset: 0,
        more: false,
    };
    // First after the IPv6 header: a knock, also with more headers behind it.
    for exts in [&[hop][..], &[hop, dest], &[hop, routing, dest]] {
        for spec in [Spec::udp6(), tcp6()] {
            assert_eq!(raw(&spec.ip_with(exts)), Ok(spec.hit()), "{exts:?}");
        }
    }
    // Anywhere else the kernel answers with a parameter problem: RFC 8200 allows it first
    // only. A second hop-by-hop header is not first either.
    for exts in [
        &[dest, hop][..],
        &[routing, hop],
        &[fragment, hop],
        &[Ext::Ah { words: 1 }, hop],
        &[hop, hop],
        &[hop, dest, hop],
    ] {
        for spec in [Spec::udp6(), tcp6()] {
            assert_eq!(raw(&spec.ip_with(exts)), Err(Skip::Malformed), "{exts:?}");
        }
    }
}

#[test]
fn ipv6_routing_header_with_segments_left() {
    let dest = Ext::Generic { kind: 60, units: 0 };
    // No segments left: the route is done, this host is the destination, and the kernel
    // goes on as if the header were absent. (Types 2, 3 and 4 depend on the kernel's
    // configuration even then: Mobile IPv6, RPL, segment routing. The decoder does not
    // guess it.)
    for routing_type in [0, 1, 253] {
        let done = Ext::Routing {
            routing_type,
            segments_left: 0,
            units: 2,
        };
        for exts in [&[done][..], &[dest, done, dest]] {
            for spec in [Spec::udp6(), tcp6()] {
                assert_eq!(
                    raw(&spec.ip_with(exts)),
                    Ok(spec.hit()),
                    "type {routing_type}: {exts:?}"
                );
            }
        }
    }
    for routing_type in [0, 1, 2, 3, 4, 253] {
        // Segments left: the packet is for the next address on its route, not for this
        // host. Linux refuses type 0 (RFC 5095), and every other type unless configured to
        // route it (segment routing, RPL, Mobile IPv6's home address).
        for segments_left in [1, 2, 255] {
            let routed = Ext::Routing {
                routing_type,
                segments_left,
                units: 2,
            };
            for exts in [&[routed][..], &[dest, routed]] {
                for spec in [Spec::udp6(), tcp6()] {
                    assert_eq!(
                        raw(&spec.ip_with(exts)),
                        Err(Skip::SourceRouted),
                        "type {routing_type}, {segments_left} left: {exts:?}"
                    );
                }
            }
        }
    }
}

#[test]
fn ipv6_esp_no_next_header_and_others_are_not_transport() {
    let s = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    let d = [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    // ESP, No Next Header, ICMPv6, OSPF, SCTP.
    for next in [50, 59, 58, 89, 132] {
        let ip = frames::ipv6(s, d, next, &[0; 32]);
        assert_eq!(raw(&ip), Err(Skip::NotTransport), "next header {next}");
        // Also behind a destination options header.
        let mut payload = Ext::Generic { kind: 60, units: 0 }.bytes(next);
        payload.extend_from_slice(&[0; 32]);
        let ip = frames::ipv6(s, d, 60, &payload);
        assert_eq!(raw(&ip), Err(Skip::NotTransport), "next header {next}");
    }
}

#[test]
fn ipv6_lengths_past_the_payload_length() {
    let spec = Spec::udp6();
    let exts = [Ext::Generic { kind: 60, units: 1 }];
    // The extension header claims 255 units, past the datagram: malformed, even though
    // more bytes follow in the frame.
    let mut ip = spec.ip_with(&exts);
    ip[41] = 255;
    ip.resize(ip.len() + 4096, 0);
    assert_eq!(raw(&ip), Err(Skip::Malformed));
    // A payload length that stops inside the UDP header.
    for payload_length in [0, 7, 16 + 7] {
        let mut ip = spec.ip_with(&exts);
        MutableIpv6Packet::new(&mut ip)
            .unwrap()
            .set_payload_length(payload_length);
        assert_eq!(
            raw(&ip),
            Err(Skip::Malformed),
            "payload length {payload_length}"
        );
    }
    // An AH whose length runs past the datagram.
    let mut ip = spec.ip_with(&[Ext::Ah { words: 1 }]);
    ip[41] = 200;
    assert_eq!(raw(&ip), Err(Skip::Malformed));
}

#[test]
fn tcp_data_offset_sanity() {
    let spec = Spec::tcp4();
    for (offset, want) in [
        (0, Err(Skip::Malformed)),
        (4, Err(Skip::Malformed)),
        (6, Err(Skip::Malformed)),
        (15, Err(Skip::Malformed)),
        (5, Ok(spec.hit())),
    ] {
        let mut transport = spec.transport();
        MutableTcpPacket::new(&mut transport)
            .unwrap()
            .set_data_offset(offset);
        let ip = frames::ipv4([198, 18, 0, 1], [198, 18, 0, 2], TCP, &transport);
        assert_eq!(raw(&ip), want, "data offset {offset}");
    }
    // Data offset 8 with 12 bytes of options: fine.
    let spec = Spec {
        payload: vec![1; 12],
        ..Spec::tcp4()
    };
    let mut transport = spec.transport();
    MutableTcpPacket::new(&mut transport)
        .unwrap()
        .set_data_offset(8);
    let ip = frames::ipv4([198, 18, 0, 1], [198, 18, 0, 2], TCP, &transport);
    assert_eq!(raw(&ip), Ok(spec.hit()));
}

#[test]
fn udp_length_sanity() {
    let spec = Spec::udp6();
    for (length, ok) in [
        (0, false),
        (7, false),
        (8, true),
        (13, true),
        (14, false),
        (0xffff, false),
    ] {
        let mut transport = spec.transport();
        MutableUdpPacket::new(&mut transport)
            .unwrap()
            .set_length(length);
        let ip = frames::ipv6(
            [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1],
            [0xfd, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2],
            UDP,
            &transport,
        );
        let want = if ok {
            Ok(spec.hit())
        } else {
            Err(Skip::Malformed)
        };
        assert_eq!(raw(&ip), want, "UDP length {length}");
    }
}

#[test]
fn destination_port_zero_is_malformed() {
    for spec in [Spec::tcp4(), Spec::udp6(), tcp6()] {
        let zero = Spec {
            destination_port: 0,
            ..spec.clone()
        };
        assert_eq!(raw(&zero.ip()), Err(Skip::Malformed), "{spec:?}");
        // Source port 0 is odd but says nothing about the knock.
        let from_zero = Spec {
            source_port: 0,
            ..spec
        };
        assert_eq!(raw(&from_zero.ip()), Ok(from_zero.hit()));
    }
}

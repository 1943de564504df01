//! Link layers: each link type, VLAN tags, cooked capture directions, BSD address families.

use knock_proto::Proto;
use knock_proto::wire::{LinkType, Skip, decode};

use crate::frames::{self, ETHERTYPE_IPV4, ETHERTYPE_IPV6, Spec};

#[test]
fn every_link_type_carries_ipv4_and_ipv6() {
    for spec in [Spec::tcp4(), Spec::udp6()] {
        let ip = spec.ip();
        for link in LinkType::ALL {
            let frame = frames::frame(link, &ip);
            if frames::carries(link, &ip) {
                assert_eq!(decode(link, &frame), Ok(spec.hit()), "{link:?} {spec:?}");
            } else {
                // The wrong IP version for a single-version link type.
                assert_eq!(
                    decode(link, &frame),
                    Err(Skip::Malformed),
                    "{link:?} {spec:?}"
                );
            }
        }
    }
}

#[test]
fn vlan_tags_802_1q_802_1ad_and_qinq() {
    let spec = Spec::tcp4();
    let ip = spec.ip();
    for tags in [
        &[0x8100][..],
        &[0x88a8],
        &[0x9100],
        &[0x88a8, 0x8100],
        &[0x9100, 0x8100],
        &[0x8100, 0x8100],
        &[0x88a8, 0x8100, 0x8100, 0x8100],
    ] {
        let frame = frames::ethernet(tags, ETHERTYPE_IPV4, &ip);
        assert_eq!(
            decode(LinkType::Ethernet, &frame),
            Ok(spec.hit()),
            "{tags:x?}"
        );
    }
    let frame = frames::ethernet(&[0x8100; 5], ETHERTYPE_IPV4, &ip);
    assert_eq!(
        decode(LinkType::Ethernet, &frame),
        Err(Skip::Malformed),
        "5 tags"
    );
}

#[test]
fn non_ip_ethertypes() {
    let ip = Spec::tcp4().ip();
    // ARP, LLDP, an 802.3 length field, MPLS: plain and behind a VLAN tag.
    for ethertype in [0x0806, 0x88cc, 0x05dc, 0x8847] {
        let plain = frames::ethernet(&[], ethertype, &ip);
        assert_eq!(decode(LinkType::Ethernet, &plain), Err(Skip::NotIp));
        let tagged = frames::ethernet(&[0x8100], ethertype, &ip);
        assert_eq!(decode(LinkType::Ethernet, &tagged), Err(Skip::NotIp));
        let cooked = frames::sll(0, ethertype, &ip);
        assert_eq!(decode(LinkType::LinuxSll, &cooked), Err(Skip::NotIp));
        let cooked = frames::sll2(0, ethertype, &ip);
        assert_eq!(decode(LinkType::LinuxSll2, &cooked), Err(Skip::NotIp));
    }
}

#[test]
fn ethernet_padding_is_not_read() {
    // A UDP datagram with no payload is 28 bytes of IPv4: Ethernet pads the frame to 60.
    let spec = Spec {
        payload: Vec::new(),
        ..Spec::udp6()
    };
    let v4 = Spec {
        source: "198.18.0.1".parse().unwrap(),
        destination: "198.18.0.2".parse().unwrap(),
        ..spec
    };
    let mut frame = frames::ethernet(&[], ETHERTYPE_IPV4, &v4.ip());
    frame.resize(60, 0xff);
    assert_eq!(decode(LinkType::Ethernet, &frame), Ok(v4.hit()));
}

/// UDP over IPv4 and TCP over IPv6, beside `Spec::tcp4` and `Spec::udp6`.
fn udp4_and_tcp6() -> [Spec; 2] {
    let udp4 = Spec {
        source: "198.18.0.1".parse().unwrap(),
        destination: "198.18.0.2".parse().unwrap(),
        ..Spec::udp6()
    };
    let tcp6 = Spec {
        proto: Proto::Tcp,
        tcp_flags: 0x02,
        ..Spec::udp6()
    };
    [udp4, tcp6]
}

#[test]
fn cooked_capture_counts_what_the_host_accepts() {
    let [udp4, tcp6] = udp4_and_tcp6();
    for spec in [Spec::tcp4(), Spec::udp6(), udp4, tcp6] {
        let ip = spec.ip();
        let kind = frames::ethertype_of(&ip);
        // Host, broadcast, multicast: for us, but TCP takes only the first (Linux's TCP
        // drops a segment that came in a link-layer broadcast or multicast frame).
        for packet_type in 0..=2 {
            let want = if packet_type != 0 && spec.proto == Proto::Tcp {
                Err(Skip::TcpLinkBroadcast)
            } else {
                Ok(spec.hit())
            };
            let v1 = frames::sll(packet_type, kind, &ip);
            assert_eq!(
                decode(LinkType::LinuxSll, &v1),
                want,
                "{packet_type} {spec:?}"
            );
            let v2 = frames::sll2(u8::try_from(packet_type).unwrap(), kind, &ip);
            assert_eq!(
                decode(LinkType::LinuxSll2, &v2),
                want,
                "{packet_type} {spec:?}"
            );
        }
        // Other host: seen only because a socket is promiscuous.
        let v1 = frames::sll(3, kind, &ip);
        assert_eq!(decode(LinkType::LinuxSll, &v1), Err(Skip::NotForUs));
        let v2 = frames::sll2(3, kind, &ip);
        assert_eq!(decode(LinkType::LinuxSll2, &v2), Err(Skip::NotForUs));
        let v1 = frames::sll(4, kind, &ip);
        assert_eq!(decode(LinkType::LinuxSll, &v1), Err(Skip::Outgoing));
        let v2 = frames::sll2(4, kind, &ip);
        assert_eq!(decode(LinkType::LinuxSll2, &v2), Err(Skip::Outgoing));
    }
}

#[test]
fn tcp_in_a_link_broadcast_or_multicast_frame_is_no_knock() {
    let [udp4, tcp6] = udp4_and_tcp6();
    for spec in [Spec::tcp4(), Spec::udp6(), udp4, tcp6] {
        let ip = spec.ip();
        for tags in [&[][..], &[0x8100]] {
            let mut frame = frames::ethernet(tags, frames::ethertype_of(&ip), &ip);
            // Broadcast, IPv6 and IPv4 multicast, any group address: the group bit.
            for mac in [
                [0xff; 6],
                [0x33, 0x33, 0, 0, 0, 1],
                [0x01, 0, 0x5e, 0, 0, 1],
                [0x03, 0, 0, 0, 0, 0],
            ] {
                frame[..6].copy_from_slice(&mac);
                let want = if spec.proto == Proto::Tcp {
                    Err(Skip::TcpLinkBroadcast)
                } else {
                    // Linux's UDP takes a datagram to a unicast address in any frame.
                    Ok(spec.hit())
                };
                assert_eq!(
                    decode(LinkType::Ethernet, &frame),
                    want,
                    "{mac:x?} {spec:?}"
                );
            }
            // Unicast, the locally administered bit set or not: a knock.
            for mac in [[0x02, 0, 0, 0, 0, 2], [0x00, 0x16, 0x3e, 1, 2, 3], [0; 6]] {
                frame[..6].copy_from_slice(&mac);
                assert_eq!(
                    decode(LinkType::Ethernet, &frame),
                    Ok(spec.hit()),
                    "{mac:x?}"
                );
            }
        }
    }
}

#[test]
fn cooked_capture_with_a_reinserted_vlan_tag() {
    // libpcap puts the VLAN tag the kernel stripped back after the cooked header.
    let spec = Spec::udp6();
    let mut tagged = vec![0x00, 0x64];
    tagged.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    tagged.extend_from_slice(&spec.ip());
    let v1 = frames::sll(0, 0x8100, &tagged);
    assert_eq!(decode(LinkType::LinuxSll, &v1), Ok(spec.hit()));
    let v2 = frames::sll2(0, 0x8100, &tagged);
    assert_eq!(decode(LinkType::LinuxSll2, &v2), Ok(spec.hit()));
}

#[test]
fn raw_ip_goes_by_the_version_nibble() {
    for spec in [Spec::tcp4(), Spec::udp6()] {
        assert_eq!(decode(LinkType::RawIp, &spec.ip()), Ok(spec.hit()));
    }
    for version in [0u8, 1, 5, 7, 15] {
        let mut ip = Spec::tcp4().ip();
        ip[0] = (version << 4) | 5;
        assert_eq!(decode(LinkType::RawIp, &ip), Err(Skip::NotIp), "v{version}");
    }
    assert_eq!(decode(LinkType::RawIp, &[]), Err(Skip::Truncated));
}

#[test]
fn ip_only_link_types_check_the_version() {
    let mut v4 = Spec::tcp4().ip();
    v4[0] = 0x65;
    assert_eq!(decode(LinkType::Ipv4, &v4), Err(Skip::Malformed));
    let mut v6 = Spec::udp6().ip();
    v6[0] = 0x40;
    assert_eq!(decode(LinkType::Ipv6, &v6), Err(Skip::Malformed));
    // Same for an EtherType that says one version over a packet of the other.
    let frame = frames::ethernet(&[], ETHERTYPE_IPV6, &Spec::tcp4().ip());
    assert_eq!(decode(LinkType::Ethernet, &frame), Err(Skip::Malformed));
}

#[test]
fn bsd_loopback_address_families_in_either_byte_order() {
    for link in [LinkType::Null, LinkType::Loop] {
        for (spec, families) in [
            (Spec::tcp4(), &[2u32][..]),
            (Spec::udp6(), &[10, 24, 28, 30]),
        ] {
            let ip = spec.ip();
            for &family in families {
                for header in [family.to_le_bytes(), family.to_be_bytes()] {
                    let frame = frames::bsd(header, &ip);
                    assert_eq!(decode(link, &frame), Ok(spec.hit()), "{link:?} AF {family}");
                }
            }
        }
        // AF_UNIX, AF_IPX, AF_APPLETALK, an unknown one.
        for family in [1u32, 4, 5, 23, 0x1234] {
            for header in [family.to_le_bytes(), family.to_be_bytes()] {
                let frame = frames::bsd(header, &Spec::tcp4().ip());
                assert_eq!(
                    decode(link, &frame),
                    Err(Skip::NotIp),
                    "{link:?} AF {family}"
                );
            }
        }
    }
}

#[test]
fn one_packet_has_one_identity_whatever_the_link_and_two_packets_two() {
    use knock_proto::wire::identity;
    for spec in [Spec::tcp4(), Spec::udp6()] {
        let ip = spec.ip();
        let ids: Vec<_> = [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::RawIp,
        ]
        .into_iter()
        .map(|link| identity(link, &frames::frame(link, &ip)).unwrap())
        .collect();
        assert!(ids.windows(2).all(|w| w[0] == w[1]), "{spec:?}: {ids:?}");
        // A bridge or VLAN device shows the same packet with another link header.
        let tagged = frames::ethernet(&[0x8100], frames::ethertype_of(&ip), &ip);
        assert_eq!(identity(LinkType::Ethernet, &tagged), Ok(ids[0]));
        let mut other = spec.clone();
        other.source_port += 1;
        assert_ne!(identity(LinkType::RawIp, &other.ip()), Ok(ids[0]));
    }
    assert_eq!(identity(LinkType::Ethernet, &[0; 5]), Err(Skip::Truncated));
}

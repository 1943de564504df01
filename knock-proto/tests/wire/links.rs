//! Link layers: each link type, VLAN tags, cooked capture directions, BSD address families.

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

#[test]
fn cooked_capture_counts_what_the_host_accepts() {
    for spec in [Spec::tcp4(), Spec::udp6()] {
        let ip = spec.ip();
        let kind = frames::ethertype_of(&ip);
        // Host, broadcast, multicast: for us.
        for packet_type in 0..=2 {
            let v1 = frames::sll(packet_type, kind, &ip);
            assert_eq!(decode(LinkType::LinuxSll, &v1), Ok(spec.hit()));
            let v2 = frames::sll2(u8::try_from(packet_type).unwrap(), kind, &ip);
            assert_eq!(decode(LinkType::LinuxSll2, &v2), Ok(spec.hit()));
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

//! Only real knocks: what the host itself would refuse, crafted frame by crafted frame, and
//! the identity that tells two knocks apart.

use std::net::IpAddr;

use knock_proto::wire::{Decoder, Host, LinkType, Skip, identity};

use crate::frames::{self, ETHERTYPE_IPV4, Ext, Spec};

/// The MAC `frames::ethernet` sends to.
const OUR_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// A host with 198.18.0.2/24 and fd00::2/64 on the MAC the test frames go to, in VLAN 100.
fn host() -> Host {
    let mut host = Host::default();
    host.set_addresses([(ip("198.18.0.2"), 24), (ip("fd00::2"), 64)]);
    host.set_macs(Some(vec![OUR_MAC]));
    host.set_multicast_macs(Some(vec![[0x33, 0x33, 0, 0, 0, 1]]));
    host.set_vlans(Some(vec![100]));
    host
}

fn decode(link: LinkType, frame: &[u8]) -> Result<(), Skip> {
    Decoder::new(link, host())
        .decode(frame, frame.len())
        .map(|_| ())
}

fn from(source: &str, destination: &str) -> Spec {
    let base = if source.contains(':') {
        Spec::udp6()
    } else {
        Spec::tcp4()
    };
    Spec {
        source: ip(source),
        destination: ip(destination),
        ..base
    }
}

#[test]
fn a_plain_knock_counts() {
    for spec in [Spec::tcp4(), Spec::udp6()] {
        let ip = spec.ip();
        let frame = frames::ethernet(&[], frames::ethertype_of(&ip), &ip);
        let packet = Decoder::new(LinkType::Ethernet, host())
            .decode(&frame, frame.len())
            .unwrap();
        assert_eq!(packet.hit, spec.hit());
    }
}

#[test]
fn sources_no_real_sender_has_are_skipped_each_for_its_reason() {
    for (source, destination, why) in [
        ("0.0.0.0", "198.18.0.2", Skip::SourceUnspecified),
        ("255.255.255.255", "198.18.0.2", Skip::SourceBroadcast),
        ("198.18.0.255", "198.18.0.2", Skip::SourceSubnetBroadcast),
        ("224.0.0.1", "198.18.0.2", Skip::SourceMulticast),
        ("127.0.0.1", "198.18.0.2", Skip::SourceLoopback),
        ("198.18.0.2", "198.18.0.2", Skip::SourceLocal),
        ("::", "fd00::2", Skip::SourceUnspecified),
        ("::1", "fd00::2", Skip::SourceLoopback),
        ("ff02::1", "fd00::2", Skip::SourceMulticast),
        ("ff02::1:ff00:2", "fd00::2", Skip::SourceMulticast),
        ("::ffff:198.18.0.60", "fd00::2", Skip::SourceMapped),
        ("fd00::2", "fd00::2", Skip::SourceLocal),
    ] {
        let ip = from(source, destination).ip();
        for link in [LinkType::Ethernet, LinkType::LinuxSll, LinkType::RawIp] {
            let frame = frames::frame(link, &ip);
            assert_eq!(decode(link, &frame), Err(why), "{source} on {link:?}");
        }
    }
    // Without a host view only the context-free checks apply.
    let local = frames::frame(LinkType::RawIp, &from("198.18.0.2", "198.18.0.2").ip());
    let plain = knock_proto::wire::decode(LinkType::RawIp, &local);
    assert!(plain.is_ok(), "{plain:?}");
}

#[test]
fn frames_to_another_mac_or_an_unjoined_group_are_not_for_us() {
    let udp4 = from("198.18.0.1", "198.18.0.2");
    let udp4 = Spec {
        proto: knock_proto::Proto::Udp,
        ..udp4
    };
    for spec in [Spec::tcp4(), udp4] {
        let ip = spec.ip();
        let mut frame = frames::ethernet(&[], ETHERTYPE_IPV4, &ip);
        // To the host's broadcast or a group it joined: for us, but not for its TCP.
        let group = if spec.proto == knock_proto::Proto::Tcp {
            Err(Skip::TcpLinkBroadcast)
        } else {
            Ok(())
        };
        for (mac, want) in [
            (OUR_MAC, Ok(())),
            ([0xff; 6], group),
            ([0x33, 0x33, 0, 0, 0, 1], group),
            ([2, 0, 0, 0, 0, 9], Err(Skip::NotForUs)),
            ([0x01, 0, 0x5e, 0, 0, 0x42], Err(Skip::NotForUs)),
        ] {
            frame[..6].copy_from_slice(&mac);
            assert_eq!(
                decode(LinkType::Ethernet, &frame),
                want,
                "{mac:x?} {spec:?}"
            );
        }
    }
}

#[test]
fn frames_for_a_vlan_the_host_lacks_are_skipped() {
    let ip = Spec::tcp4().ip();
    // `frames::ethernet` numbers tags 100, 101, ...
    let ours = frames::ethernet(&[0x8100], ETHERTYPE_IPV4, &ip);
    assert_eq!(decode(LinkType::Ethernet, &ours), Ok(()));
    let qinq = frames::ethernet(&[0x88a8, 0x8100], ETHERTYPE_IPV4, &ip);
    assert_eq!(decode(LinkType::Ethernet, &qinq), Err(Skip::OtherVlan));
    // libpcap re-inserts the tag after a cooked header too.
    let mut tagged = vec![0, 100];
    tagged.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
    tagged.extend_from_slice(&ip);
    tagged[1] = 7;
    let cooked = frames::sll(0, 0x8100, &tagged);
    assert_eq!(decode(LinkType::LinuxSll, &cooked), Err(Skip::OtherVlan));
}

#[test]
fn ip_lengths_larger_than_the_frame_on_the_wire_are_skipped() {
    let tcp4 = Spec {
        payload: b"x".to_vec(),
        ..Spec::tcp4()
    };
    for spec in [tcp4, Spec::udp6()] {
        let ip = spec.ip();
        let frame = frames::ethernet(&[], frames::ethertype_of(&ip), &ip);
        let decoder = Decoder::new(LinkType::Ethernet, host());
        // Captured whole, on the wire exactly as long: fine; a snap length cut it: fine.
        assert!(decoder.decode(&frame, frame.len()).is_ok());
        assert!(
            decoder
                .decode(&frame[..frame.len() - 1], frame.len())
                .is_ok()
        );
        // The IP header claims one byte more than the wire carried.
        assert_eq!(
            decoder
                .decode(&frame[..frame.len() - 1], frame.len() - 1)
                .err(),
            Some(Skip::LongerThanFrame),
            "{spec:?}"
        );
        // Behind a cooked header (the wire length counts the link header too).
        let cooked = frames::sll(0, frames::ethertype_of(&ip), &ip);
        let decoder = Decoder::new(LinkType::LinuxSll, host());
        assert!(decoder.decode(&cooked, cooked.len()).is_ok());
        assert_eq!(
            decoder
                .decode(&cooked[..cooked.len() - 1], cooked.len() - 1)
                .err(),
            Some(Skip::LongerThanFrame)
        );
    }
}

#[test]
fn identity_reads_the_tcp_header_behind_long_extension_headers() {
    // 24 bytes of extension headers put the TCP header past the first 64 bytes of the IPv6
    // packet: two knocks that differ only there (ports, sequence number) are two packets.
    let spec = Spec {
        proto: knock_proto::Proto::Tcp,
        tcp_flags: 0x02,
        payload: Vec::new(),
        ..Spec::udp6()
    };
    let exts = [
        Ext::Generic { kind: 0, units: 0 },
        Ext::Generic { kind: 60, units: 1 },
    ];
    let first = spec.ip_with(&exts);
    let mut second_spec = spec.clone();
    second_spec.destination_port = 9000;
    let second = second_spec.ip_with(&exts);
    let mut retry = first.clone();
    let seq_at = first.len() - 20 + 4;
    retry[seq_at] ^= 0x80;
    let id = |ip: &[u8]| identity(LinkType::RawIp, ip).unwrap();
    assert_ne!(id(&first), id(&second), "another port");
    assert_ne!(id(&first), id(&retry), "another sequence number");
    let tagged = frames::ethernet(&[0x8100], frames::ethertype_of(&first), &first);
    assert_eq!(identity(LinkType::Ethernet, &tagged), Ok(id(&first)));
}

#[test]
fn on_loopback_the_host_may_knock_on_itself() {
    for (source, destination) in [("127.0.0.1", "127.0.0.1"), ("198.18.0.2", "198.18.0.2")] {
        let ip = from(source, destination).ip();
        let mut cooked = frames::sll(0, ETHERTYPE_IPV4, &ip);
        assert!(
            decode(LinkType::LinuxSll, &cooked).is_err(),
            "{source} on eth0"
        );
        cooked[2..4].copy_from_slice(&772u16.to_be_bytes()); // ARPHRD_LOOPBACK
        assert_eq!(
            decode(LinkType::LinuxSll, &cooked),
            Ok(()),
            "{source} on lo"
        );
        let mut lo = frames::ethernet(&[], ETHERTYPE_IPV4, &ip);
        lo[..12].fill(0);
        let mut host = host();
        host.set_macs(Some(vec![OUR_MAC, [0; 6]]));
        let got = Decoder::new(LinkType::Ethernet, host).decode(&lo, lo.len());
        assert!(got.is_ok(), "{source} on lo: {got:?}");
    }
    let mapped = from("::ffff:127.0.0.1", "fd00::2").ip();
    let mut cooked = frames::sll(0, frames::ETHERTYPE_IPV6, &mapped);
    cooked[2..4].copy_from_slice(&772u16.to_be_bytes());
    assert_eq!(decode(LinkType::LinuxSll, &cooked), Err(Skip::SourceMapped));
}

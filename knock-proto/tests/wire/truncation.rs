//! Every prefix of a valid frame: a frame cut inside its headers is `Truncated`, never a panic
//! and never a hit; a frame cut only in its payload still decodes, to the same hit.

use knock_proto::wire::{LinkType, Skip, decode};

use crate::frames::{self, ETHERTYPE_IPV4, Ext, Spec};

/// Checks every prefix of `frame`, whose headers end at `headers` bytes.
fn check_prefixes(link: LinkType, frame: &[u8], headers: usize, spec: &Spec) {
    assert_eq!(decode(link, frame), Ok(spec.hit()), "{link:?} whole frame");
    for len in 0..frame.len() {
        let want = if len < headers {
            Err(Skip::Truncated)
        } else {
            Ok(spec.hit())
        };
        assert_eq!(
            decode(link, &frame[..len]),
            want,
            "{link:?} cut at {len} of {}",
            frame.len()
        );
    }
}

/// Length of the link header `frames::frame` writes.
fn link_header(link: LinkType) -> usize {
    match link {
        LinkType::Ethernet => 14,
        LinkType::LinuxSll => 16,
        LinkType::LinuxSll2 => 20,
        LinkType::RawIp | LinkType::Ipv4 | LinkType::Ipv6 => 0,
        LinkType::Null | LinkType::Loop => 4,
    }
}

#[test]
fn every_prefix_of_every_link_type() {
    let with_payload = Spec {
        payload: b"some payload".to_vec(),
        ..Spec::tcp4()
    };
    let exts = [
        Ext::Generic { kind: 0, units: 1 },
        Ext::Fragment {
            offset: 0,
            more: false,
        },
        Ext::Ah { words: 2 },
    ];
    // Hop-by-hop first, destination options, a routing header with no segments left (all
    // of which the kernel takes), destination options again.
    let options = [
        Ext::Generic { kind: 0, units: 0 },
        Ext::Generic { kind: 60, units: 1 },
        Ext::Routing {
            routing_type: 0,
            segments_left: 0,
            units: 2,
        },
        Ext::Generic { kind: 60, units: 0 },
    ];
    for spec in [Spec::tcp4(), with_payload, Spec::udp6()] {
        for ext in [&[][..], &exts, &options] {
            if spec.source.is_ipv4() && !ext.is_empty() {
                continue;
            }
            let ip = spec.ip_with(ext);
            // Everything but the transport payload is header.
            let headers = ip.len() - spec.payload.len();
            for link in LinkType::ALL
                .into_iter()
                .filter(|&l| frames::carries(l, &ip))
            {
                let frame = frames::frame(link, &ip);
                check_prefixes(link, &frame, link_header(link) + headers, &spec);
            }
        }
    }
}

#[test]
fn every_prefix_behind_qinq_and_ipv4_options() {
    let spec = Spec::tcp4();
    let transport = spec.transport();
    let options = [0x94, 0x04, 0, 0, 1, 1, 1, 0]; // Router Alert, NOP, NOP, NOP, end.
    let mut ip = frames::ipv4(
        [198, 18, 0, 1],
        [198, 18, 0, 2],
        frames::TCP,
        &[&options[..], &transport].concat(),
    );
    ip[0] = 0x47;
    frames::set_ipv4_checksum(&mut ip);
    let frame = frames::ethernet(&[0x88a8, 0x8100], ETHERTYPE_IPV4, &ip);
    check_prefixes(LinkType::Ethernet, &frame, frame.len(), &spec);
}

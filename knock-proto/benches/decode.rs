//! Benchmark of the packet decoder: one Ethernet frame holding a TCP SYN to a knock port, over
//! IPv4 and over IPv6, decoded for a host that knows its addresses and MAC (as the server's
//! capture thread does for every packet of a flood). The frame is in the cache: this is the
//! decoder's own cost, without the miss of reading a packet the kernel just wrote.
//!
//! Run: `cargo bench -p knock-proto --bench decode`.

use std::hint::black_box;
use std::net::IpAddr;

use criterion::{Criterion, criterion_group, criterion_main};
use knock_proto::wire::{Decoder, Host, LinkType};
use pnet_packet::ipv4::Ipv4Packet;

const OUR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x02];
const THEIR_MAC: [u8; 6] = [0x02, 0, 0, 0, 0, 0x01];

/// A TCP SYN from port 40000 to port 7000 (20 bytes, no options).
fn syn() -> [u8; 20] {
    let mut tcp = [0; 20];
    tcp[..4].copy_from_slice(&[0x9c, 0x40, 0x1b, 0x58]);
    tcp[4..8].copy_from_slice(&0x1234_5678u32.to_be_bytes());
    tcp[12] = 5 << 4; // data offset: 5 words
    tcp[13] = 0x02; // SYN
    tcp
}

/// Ethernet to our MAC, then `ip` and a SYN; padded to Ethernet's 60 bytes.
fn frame(ethertype: u16, ip: &[u8]) -> Vec<u8> {
    let mut f = [
        &OUR_MAC[..],
        &THEIR_MAC,
        &ethertype.to_be_bytes(),
        ip,
        &syn(),
    ]
    .concat();
    f.resize(f.len().max(60), 0);
    f
}

fn ipv4_frame() -> Vec<u8> {
    let mut ip = [0u8; 20];
    ip[0] = 0x45;
    ip[2..4].copy_from_slice(&40u16.to_be_bytes());
    ip[4..6].copy_from_slice(&0x4242u16.to_be_bytes());
    ip[8] = 64; // TTL
    ip[9] = 6; // TCP
    ip[12..16].copy_from_slice(&[198, 18, 7, 9]);
    ip[16..20].copy_from_slice(&[198, 18, 0, 2]);
    let checksum = pnet_packet::ipv4::checksum(&Ipv4Packet::new(&ip).unwrap());
    ip[10..12].copy_from_slice(&checksum.to_be_bytes());
    frame(0x0800, &ip)
}

fn ipv6_frame() -> Vec<u8> {
    let mut ip = [0u8; 40];
    ip[0] = 0x60;
    ip[4..6].copy_from_slice(&20u16.to_be_bytes());
    ip[6] = 6; // TCP
    ip[7] = 64; // hop limit
    ip[8..24].copy_from_slice(&"fd00::7:9".parse::<std::net::Ipv6Addr>().unwrap().octets());
    ip[24..40].copy_from_slice(&"fd00::2".parse::<std::net::Ipv6Addr>().unwrap().octets());
    frame(0x86dd, &ip)
}

fn bench(c: &mut Criterion) {
    let mut host = Host::default();
    host.set_addresses([
        ("198.18.0.2".parse::<IpAddr>().unwrap(), 24),
        ("fd00::2".parse::<IpAddr>().unwrap(), 64),
    ]);
    host.set_macs(Some(vec![OUR_MAC]));
    let decoder = Decoder::new(LinkType::Ethernet, host);
    for (name, frame) in [
        ("decode/ipv4_syn", ipv4_frame()),
        ("decode/ipv6_syn", ipv6_frame()),
    ] {
        let len = frame.len();
        assert!(decoder.decode(&frame, len).is_ok(), "{name}: a knock");
        c.bench_function(name, |b| {
            b.iter(|| decoder.decode(black_box(&frame), len).map(|p| p.hit.knock))
        });
    }
}

/// Inside a module: `criterion_group!` makes an undocumented `pub fn`.
mod group {
    use super::*;

    criterion_group!(benches, bench);
}
criterion_main!(group::benches);

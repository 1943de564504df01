//! The generated program against libpcap: for random doors and random frames, the program
//! (run by the kernel) and libpcap's compilation of [`Filter::pcap`] (run by libpcap's own
//! interpreter, `pcap_offline_filter`) give the same verdict. Two independent
//! implementations of the same filter, held to each other.
//!
//! The kernel runs the program attached to one end of a Unix datagram socket pair: a datagram
//! the filter rejects is dropped, one it accepts arrives. No privilege is needed.

use std::io::ErrorKind;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::os::fd::AsFd as _;
use std::os::unix::net::UnixDatagram;

use proptest::prelude::*;

use super::{DoorFilter, Filter, Framing, Insn, build};

/// A program attached in the kernel.
struct Kernel {
    tx: UnixDatagram,
    rx: UnixDatagram,
}

impl Kernel {
    fn new(program: &[Insn]) -> Kernel {
        let (tx, rx) = UnixDatagram::pair().unwrap();
        rx.set_nonblocking(true).unwrap();
        crate::capture::attach(rx.as_fd(), program).unwrap();
        Kernel { tx, rx }
    }

    fn accepts(&self, frame: &[u8]) -> bool {
        self.tx.send(frame).unwrap();
        let mut buf = [0u8; 2048];
        match self.rx.recv(&mut buf) {
            Ok(_) => true,
            Err(e) if e.kind() == ErrorKind::WouldBlock => false,
            Err(e) => panic!("recv: {e}"),
        }
    }
}

/// libpcap's verdicts for `text` on link type `dlt`.
fn libpcap(text: &str, dlt: i32) -> pcap::BpfProgram {
    pcap::Capture::dead(pcap::Linktype(dlt))
        .unwrap()
        .compile(text, true)
        .unwrap_or_else(|e| panic!("libpcap does not compile `{text}`: {e}"))
}

const DLT_EN10MB: i32 = 1;
const DLT_RAW: i32 = 12;

/// The addresses doors and frames use: a few, so that frames hit them often.
fn address(i: u8) -> IpAddr {
    match i % 6 {
        0..=2 => IpAddr::V4(Ipv4Addr::new(198, 18, 0, 1 + i % 6)),
        _ => IpAddr::V6(Ipv6Addr::new(
            0xfd00,
            0,
            0,
            0,
            0,
            0,
            0,
            u16::from(1 + i % 6),
        )),
    }
}

/// Doors with ports in a small space (so that ranges merge and frames hit their edges),
/// targets or not, this host's addresses, and `-4`.
fn config() -> impl Strategy<Value = (Vec<DoorFilter>, Vec<IpAddr>, bool)> {
    let knock = (1u16..300, any::<bool>()).prop_map(|(port, udp)| {
        let text = if udp {
            format!("{port}:udp")
        } else {
            port.to_string()
        };
        text.parse().unwrap()
    });
    let door = (
        prop::collection::vec(knock, 0..5),
        prop::option::weighted(0.3, any::<u8>().prop_map(address)),
    )
        .prop_map(|(knocks, target)| DoorFilter { knocks, target });
    (
        prop::collection::vec(door, 0..12),
        prop::collection::vec(any::<u8>().prop_map(address), 0..4),
        any::<bool>(),
    )
}

/// What a test frame is made of.
#[derive(Debug, Clone)]
struct Frame {
    tags: Vec<u16>,
    /// 4, 6, or anything else (ARP).
    family: u8,
    destination: IpAddr,
    protocol: u8,
    port: u16,
    ihl: u8,
    fragment: u16,
    /// Cut the frame to this many bytes (at least 2).
    cut: Option<usize>,
}

fn frame() -> impl Strategy<Value = Frame> {
    (
        prop::collection::vec(prop::sample::select(vec![0x8100u16, 0x88a8, 0x9100]), 0..4),
        prop::sample::select(vec![4u8, 4, 4, 6, 6, 0]),
        prop_oneof![
            3 => any::<u8>().prop_map(address),
            1 => any::<[u8; 4]>().prop_map(IpAddr::from),
        ],
        prop::sample::select(vec![6u8, 6, 17, 17, 1, 0, 43, 44, 60, 51, 58]),
        0u16..310,
        5u8..8,
        prop::sample::select(vec![0u16, 0, 0x4000, 0x2000, 1, 0x1fff]),
        prop::option::weighted(0.15, 2usize..80),
    )
        .prop_map(
            |(tags, family, destination, protocol, port, ihl, fragment, cut)| Frame {
                tags,
                family,
                destination,
                protocol,
                port,
                ihl,
                fragment,
                cut,
            },
        )
}

impl Frame {
    /// The packet from the network header on.
    fn ip(&self) -> Vec<u8> {
        let mut p = Vec::new();
        let transport = |p: &mut Vec<u8>| {
            p.extend_from_slice(&40000u16.to_be_bytes());
            p.extend_from_slice(&self.port.to_be_bytes());
            p.extend_from_slice(&[0; 16]);
        };
        match (self.family, self.destination) {
            (4, dst) => {
                let dst = match dst {
                    IpAddr::V4(a) => a.octets(),
                    IpAddr::V6(a) => a.octets()[12..].try_into().unwrap(),
                };
                let header = usize::from(self.ihl) * 4;
                p.push(0x40 | self.ihl);
                p.push(0);
                p.extend_from_slice(&((header + 20) as u16).to_be_bytes());
                p.extend_from_slice(&[0, 1]);
                p.extend_from_slice(&self.fragment.to_be_bytes());
                p.extend_from_slice(&[64, self.protocol, 0, 0]);
                p.extend_from_slice(&[198, 18, 9, 9]);
                p.extend_from_slice(&dst);
                p.resize(header, 0);
                transport(&mut p);
            }
            (6, dst) => {
                let dst = match dst {
                    IpAddr::V6(a) => a.octets(),
                    IpAddr::V4(a) => a.to_ipv6_mapped().octets(),
                };
                p.extend_from_slice(&[0x60, 0, 0, 0, 0, 20, self.protocol, 64]);
                p.extend_from_slice(&Ipv6Addr::new(0xfd00, 9, 0, 0, 0, 0, 0, 9).octets());
                p.extend_from_slice(&dst);
                transport(&mut p);
            }
            _ => p.extend_from_slice(&[0, 1, 8, 0, 6, 4, 0, 1]),
        }
        p
    }

    fn ethernet(&self) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1];
        for &tpid in &self.tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&[0, 5]);
        }
        let ethertype: u16 = match self.family {
            4 => 0x0800,
            6 => 0x86dd,
            _ => 0x0806,
        };
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(&self.ip());
        f
    }

    fn cut(&self, mut bytes: Vec<u8>) -> Vec<u8> {
        if let Some(n) = self.cut {
            bytes.truncate(n);
        }
        bytes
    }
}

/// Checks every frame on both links; the message names the first disagreement.
fn agree(filter: &Filter, frames: &[Frame]) -> Result<(), TestCaseError> {
    for (framing, dlt) in [(Framing::Ethernet, DLT_EN10MB), (Framing::Ip(0), DLT_RAW)] {
        let ethernet = framing == Framing::Ethernet;
        let text = filter.pcap(ethernet);
        let reference = libpcap(&text, dlt);
        let kernel = Kernel::new(&filter.program(framing, 256).unwrap());
        for frame in frames {
            let bytes = frame.cut(if ethernet {
                frame.ethernet()
            } else {
                frame.ip()
            });
            let (ours, theirs) = (kernel.accepts(&bytes), reference.filter(&bytes));
            prop_assert_eq!(
                ours,
                theirs,
                "{:?}: our program says {}, libpcap says {} for `{}`\nframe {:?}\nbytes {:02x?}",
                framing,
                ours,
                theirs,
                text,
                frame,
                bytes
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn the_program_accepts_what_libpcap_accepts(
        (doors, local, ipv4_only) in config(),
        frames in prop::collection::vec(frame(), 1..40),
    ) {
        agree(&build(&doors, &local, ipv4_only), &frames)?;
    }
}

/// Frames aimed at each door's knocks, so that accepted frames are not left to chance.
#[test]
fn every_knock_of_every_door_passes_and_its_neighbours_agree() {
    let doors: Vec<DoorFilter> = (0..30u16)
        .map(|i| DoorFilter {
            knocks: vec![
                (1000 + i * 37).to_string().parse().unwrap(),
                format!("{}:udp", 2000 + i * 41).parse().unwrap(),
            ],
            target: (i % 7 == 0).then(|| address(i as u8 + 3)),
        })
        .collect();
    let local = [address(0), address(4)];
    for ipv4_only in [false, true] {
        let filter = build(&doors, &local, ipv4_only);
        let kernel = Kernel::new(&filter.program(Framing::Ethernet, 256).unwrap());
        let mut frames = Vec::new();
        for door in &doors {
            for knock in &door.knocks {
                for delta in [-1i32, 0, 1] {
                    for destination in [door.target.unwrap_or(local[0]), local[1], address(2)] {
                        frames.push(Frame {
                            tags: vec![],
                            family: if destination.is_ipv4() { 4 } else { 6 },
                            destination,
                            protocol: if knock.proto == knock_proto::Proto::Udp {
                                17
                            } else {
                                6
                            },
                            port: (i32::from(knock.port.get()) + delta) as u16,
                            ihl: 5,
                            fragment: 0,
                            cut: None,
                        });
                    }
                }
            }
        }
        agree(&filter, &frames).unwrap();
        // And the knocks themselves pass, on the door's own destination.
        for door in doors
            .iter()
            .filter(|d| !(ipv4_only && d.target.is_some_and(|t| t.is_ipv6())))
        {
            for knock in &door.knocks {
                let destination = door.target.unwrap_or(local[0]);
                let frame = Frame {
                    tags: vec![0x8100],
                    family: if destination.is_ipv4() { 4 } else { 6 },
                    destination,
                    protocol: if knock.proto == knock_proto::Proto::Udp {
                        17
                    } else {
                        6
                    },
                    port: knock.port.get(),
                    ihl: 6,
                    fragment: 0x4000,
                    cut: None,
                };
                assert!(
                    kernel.accepts(&frame.ethernet()),
                    "{knock} to {destination}"
                );
            }
        }
    }
}

#[test]
fn a_config_without_knocks_passes_nothing() {
    let filter = build(&[], &[], false);
    let kernel = Kernel::new(&filter.program(Framing::Ethernet, 256).unwrap());
    let frame = Frame {
        tags: vec![],
        family: 4,
        destination: address(0),
        protocol: 6,
        port: 22,
        ihl: 5,
        fragment: 0,
        cut: None,
    };
    assert!(!kernel.accepts(&frame.ethernet()));
}

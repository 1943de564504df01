//! The kernel's capture filter, built from the doors.
//!
//! The kernel drops most packets that cannot be a knock before they are copied to us, with a
//! program whose size does not grow with the number of doors: the doors' ports as at most
//! [`MAX_RANGES`] port ranges per protocol (neighbouring ports merged, the smallest gaps
//! first), and the destination as at most [`MAX_HOSTS`] addresses (this host's and the doors'
//! `target`s; with more, any destination). The filter is a superset: the tracker has the last
//! word on ports, destinations and TCP flags, and the decoder on everything else (IPv6
//! packets whose transport header sits behind extension headers reach it as a class, since
//! BPF cannot walk them).
//!
//! One value, [`Filter`], rendered two ways:
//! - [`Filter::program`]: the classic BPF program the kernel runs (`program.rs`), generated
//!   here rather than by libpcap, for two reasons. libpcap compiles only on the capture's own
//!   handle, that is on the capture thread, while a rotating door's ports change every step;
//!   this is a pure function of the filter, built on the engine's thread in microseconds. And
//!   libpcap, when it installs a new filter, runs it in user space over the packets already
//!   in its ring, so a knock the old filter took and the new one does not was lost; a
//!   program attached to the socket directly (`capture.rs`) replaces the kernel's filter
//!   atomically and leaves the ring alone.
//! - [`Filter::pcap`]: the same filter in pcap syntax, for `--check`, for tcpdump beside the
//!   daemon in the flood bench, and for the tests, which run libpcap's compilation of this
//!   text and the generated program (in the kernel) over the same frames and require the
//!   same verdicts.

#[cfg(test)]
mod agreement;
mod program;

use std::collections::BTreeSet;
use std::net::IpAddr;

use knock_proto::{Knock, Proto};

pub use program::{Framing, Insn, ProgramError};

/// What the filter needs to know of one door.
#[derive(Debug, Clone)]
pub struct DoorFilter {
    /// The door's knocks (any order; duplicates are fine).
    pub knocks: Vec<Knock>,
    /// Knocks to this address instead of the host's own.
    pub target: Option<IpAddr>,
}

/// IPv6 next-header values of extension headers the decoder walks: hop-by-hop options,
/// routing, fragment, destination options, authentication.
const IPV6_EXTENSION_HEADERS: [u8; 5] = [0, 43, 44, 60, 51];

/// A filter that matches no packet, in pcap syntax, for a config whose doors are all disabled.
pub const MATCH_NOTHING: &str = "less 1";

/// Port ranges per protocol at most.
pub const MAX_RANGES: usize = 8;

/// Destination addresses tested at most; with more, the filter tests none.
pub const MAX_HOSTS: usize = 16;

/// The kernel's limit on a classic BPF program (linux/bpf_common.h).
pub const BPF_MAXINSNS: usize = 4096;

/// Which packets the kernel lets through: see the module documentation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// Destination port ranges of TCP knocks: sorted, disjoint, at most [`MAX_RANGES`].
    tcp: Vec<(u16, u16)>,
    /// The same for UDP knocks.
    udp: Vec<(u16, u16)>,
    /// The destinations tested (at most [`MAX_HOSTS`]); `None`: any.
    hosts: Option<Vec<IpAddr>>,
    /// IPv4 only (`-4`).
    ipv4_only: bool,
}

/// Builds the filter. `local` are this host's addresses (doors without `target` knock on
/// them; empty means any destination); `ipv4_only` drops IPv6.
pub fn build(doors: &[DoorFilter], local: &[IpAddr], ipv4_only: bool) -> Filter {
    let doors: Vec<&DoorFilter> = doors
        .iter()
        .filter(|d| !d.knocks.is_empty())
        .filter(|d| !(ipv4_only && d.target.is_some_and(|t| t.is_ipv6())))
        .collect();
    if doors.is_empty() {
        return Filter::default();
    }
    let ports = |proto: Proto| -> Vec<(u16, u16)> {
        let set: BTreeSet<u16> = doors
            .iter()
            .flat_map(|d| d.knocks.iter())
            .filter(|k| k.proto == proto)
            .map(|k| k.port.get())
            .collect();
        ranges(&set)
    };
    Filter {
        tcp: ports(Proto::Tcp),
        udp: ports(Proto::Udp),
        hosts: destinations(&doors, local, ipv4_only),
        ipv4_only,
    }
}

impl Filter {
    /// Whether no packet passes (no enabled door has a knock).
    pub fn matches_nothing(&self) -> bool {
        self.tcp.is_empty() && self.udp.is_empty()
    }

    /// The program the kernel runs for this filter on a socket whose packets start as
    /// `framing` says; accepted packets are cut to `snaplen` bytes.
    pub fn program(&self, framing: Framing, snaplen: u32) -> Result<Vec<Insn>, ProgramError> {
        program::generate(self, framing, snaplen)
    }

    /// The filter in pcap syntax; `ethernet` adds the VLAN-tagged variants (the `vlan`
    /// keyword only exists on Ethernet).
    pub fn pcap(&self, ethernet: bool) -> String {
        if self.matches_nothing() {
            return MATCH_NOTHING.to_owned();
        }
        let mut transport = Vec::new();
        for (ranges, name) in [(&self.tcp, "tcp"), (&self.udp, "udp")] {
            if !ranges.is_empty() {
                transport.push(format!("({name} and ({}))", range_list(ranges)));
            }
        }
        let mut inner = format!("({})", transport.join(" or "));
        if !self.ipv4_only {
            let nh: Vec<String> = IPV6_EXTENSION_HEADERS
                .iter()
                .map(|n| format!("ip6[6] = {n}"))
                .collect();
            inner = format!("{inner} or (ip6 and ({}))", nh.join(" or "));
        }
        if let Some(hosts) = &self.hosts {
            let list: Vec<String> = hosts.iter().map(|h| format!("dst host {h}")).collect();
            inner = format!("({}) and ({inner})", list.join(" or "));
        }
        if self.ipv4_only {
            inner = format!("ip and ({inner})");
        }
        if ethernet {
            format!("({inner}) or (vlan and (({inner}) or (vlan and ({inner}))))")
        } else {
            inner
        }
    }
}

/// The filter in pcap syntax, on Ethernet (for logs and messages).
impl std::fmt::Display for Filter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.pcap(true))
    }
}

/// The destinations to test, or `None` for any: this host's addresses (if any door knocks on
/// them) and the doors' targets, unless there are more than [`MAX_HOSTS`].
fn destinations(doors: &[&DoorFilter], local: &[IpAddr], ipv4_only: bool) -> Option<Vec<IpAddr>> {
    let mut set = BTreeSet::new();
    if doors.iter().any(|d| d.target.is_none()) {
        if local.is_empty() {
            return None;
        }
        set.extend(local.iter().copied());
    }
    set.extend(doors.iter().filter_map(|d| d.target));
    set.retain(|a: &IpAddr| !(ipv4_only && a.is_ipv6()));
    if set.is_empty() || set.len() > MAX_HOSTS {
        return None;
    }
    Some(set.into_iter().collect())
}

/// `ports` as at most [`MAX_RANGES`] inclusive ranges covering them all: the largest gaps
/// between neighbouring ports separate ranges, the rest are bridged.
fn ranges(ports: &BTreeSet<u16>) -> Vec<(u16, u16)> {
    let sorted: Vec<u16> = ports.iter().copied().collect();
    // Gaps as (size, index of the port after it); keep the MAX_RANGES - 1 largest.
    let mut gaps: Vec<(u16, usize)> = sorted
        .windows(2)
        .enumerate()
        .filter(|(_, w)| w[1] - w[0] > 1)
        .map(|(i, w)| (w[1] - w[0], i + 1))
        .collect();
    gaps.sort_unstable_by(|a, b| b.cmp(a));
    gaps.truncate(MAX_RANGES - 1);
    let mut splits: Vec<usize> = gaps.into_iter().map(|(_, i)| i).collect();
    splits.sort_unstable();
    let mut out = Vec::with_capacity(splits.len() + 1);
    let mut start = 0;
    for end in splits.into_iter().chain([sorted.len()]) {
        if let (Some(&lo), Some(&hi)) = (sorted.get(start), sorted.get(end.wrapping_sub(1))) {
            out.push((lo, hi));
        }
        start = end;
    }
    out
}

fn range_list(ranges: &[(u16, u16)]) -> String {
    ranges
        .iter()
        .map(|&(lo, hi)| {
            if lo == hi {
                format!("dst port {lo}")
            } else {
                format!("dst portrange {lo}-{hi}")
            }
        })
        .collect::<Vec<_>>()
        .join(" or ")
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_proto::Sequence;

    fn door(seq: &str, target: Option<&str>) -> DoorFilter {
        DoorFilter {
            knocks: seq.parse::<Sequence>().unwrap().knocks().to_vec(),
            target: target.map(|t| t.parse().unwrap()),
        }
    }

    fn addrs(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn one_door_ipv4_only() {
        let f = build(
            &[door("7000,8000:udp,9000,7000", None)],
            &addrs(&["198.18.0.2", "fd00::2"]),
            true,
        )
        .pcap(false);
        assert_eq!(
            f,
            "ip and ((dst host 198.18.0.2) and (((tcp and (dst port 7000 or dst port 9000)) or (udp and (dst port 8000)))))"
        );
    }

    #[test]
    fn target_doors_match_their_target_and_vlan_repeats_the_filter() {
        let f = build(
            &[door("1:udp", Some("198.18.1.9"))],
            &addrs(&["198.18.0.2"]),
            true,
        )
        .pcap(true);
        let inner = "ip and ((dst host 198.18.1.9) and (((udp and (dst port 1)))))";
        assert_eq!(
            f,
            format!("({inner}) or (vlan and (({inner}) or (vlan and ({inner}))))")
        );
    }

    #[test]
    fn no_enabled_door_matches_nothing() {
        let f = build(&[], &[], false);
        assert!(f.matches_nothing());
        assert_eq!(f.pcap(true), MATCH_NOTHING);
    }

    #[test]
    fn ipv6_extension_headers_pass_to_our_addresses() {
        let f = build(
            &[door("1", None)],
            &addrs(&["198.18.0.2", "fd00::2"]),
            false,
        )
        .pcap(false);
        assert_eq!(
            f,
            "(dst host 198.18.0.2 or dst host fd00::2) and (((tcp and (dst port 1))) or (ip6 and (ip6[6] = 0 or ip6[6] = 43 or ip6[6] = 44 or ip6[6] = 60 or ip6[6] = 51)))"
        );
    }

    #[test]
    fn ports_merge_into_a_bounded_number_of_ranges_that_cover_them_all() {
        let ports: BTreeSet<u16> = [1, 2, 3, 10, 11, 500, 600, 60000].into_iter().collect();
        assert_eq!(
            ranges(&ports),
            [(1, 3), (10, 11), (500, 500), (600, 600), (60000, 60000)]
        );
        let many: BTreeSet<u16> = (0..5000u16).map(|i| 1 + i * 13 % 65000).collect();
        let r = ranges(&many);
        assert!(r.len() <= MAX_RANGES, "{r:?}");
        for p in &many {
            assert!(r.iter().any(|&(lo, hi)| (lo..=hi).contains(p)), "{p}");
        }
        assert!(r.windows(2).all(|w| w[0].1 < w[1].0), "{r:?}");
    }

    #[test]
    fn the_filter_does_not_grow_with_doors_or_addresses() {
        let doors: Vec<DoorFilter> = (0..10_000u32)
            .map(|i| {
                let p = |k: u32| (1 + (i * 3 + k) * 7 % 65_000).to_string();
                door(&format!("{},{}:udp,{}", p(0), p(1), p(2)), None)
            })
            .collect();
        let local: Vec<IpAddr> = (1..=100u8).map(|i| IpAddr::from([198, 18, 1, i])).collect();
        let big = build(&doors, &local, false);
        let small = build(&doors[..1], &local[..1], false);
        assert!(big.hosts.is_none(), "more than MAX_HOSTS addresses: any");
        let size = |f: &Filter| f.program(Framing::Ethernet, 256).unwrap().len();
        let (big_size, small_size) = (size(&big), size(&small));
        assert!(big_size < 150, "{big_size} instructions");
        assert!(small_size < 150, "{small_size} instructions");
    }
}

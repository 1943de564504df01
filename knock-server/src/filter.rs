//! The kernel BPF filter, in pcap syntax, compiled from the doors.
//!
//! The kernel drops every packet that cannot be a knock before it is copied to us: only
//! packets to this host's own addresses (or a door's `target`), only the doors' ports and
//! protocols, and for IPv4 TCP the door's flags. What BPF cannot express reaches the decoder,
//! which has the last word: TCP flags on IPv6 (libpcap cannot index the TCP header behind an
//! IPv6 header) and IPv6 packets whose transport header sits behind extension headers.
//! On Ethernet the same filter is repeated behind one and two VLAN tags.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::net::IpAddr;

use knock_proto::{Knock, Proto, TcpFlags};

/// What the filter needs to know of one door.
#[derive(Debug, Clone)]
pub struct DoorFilter {
    /// The door's knocks (any order; duplicates are fine).
    pub knocks: Vec<Knock>,
    /// Required and forbidden TCP flags.
    pub tcpflags: TcpFlags,
    /// Knocks to this address instead of the host's own.
    pub target: Option<IpAddr>,
}

/// IPv6 next-header values of extension headers the decoder walks: hop-by-hop options,
/// routing, fragment, destination options, authentication.
const IPV6_EXTENSION_HEADERS: [u8; 5] = [0, 43, 44, 60, 51];

/// A filter that matches no packet, for a config whose doors are all disabled.
pub const MATCH_NOTHING: &str = "less 1";

/// Builds the filter. `local` are this host's addresses (a door without `target` matches
/// only packets to them; empty means any destination); `ipv4_only` drops IPv6;
/// `ethernet` adds the VLAN-tagged variants (the `vlan` keyword only exists on Ethernet).
pub fn build(doors: &[DoorFilter], local: &[IpAddr], ipv4_only: bool, ethernet: bool) -> String {
    let local: Vec<IpAddr> = local
        .iter()
        .copied()
        .filter(|a| !(ipv4_only && a.is_ipv6()))
        .collect();
    let mut clauses: Vec<String> = doors
        .iter()
        .filter(|d| !d.knocks.is_empty())
        .filter(|d| !(ipv4_only && d.target.is_some_and(|t| t.is_ipv6())))
        .map(|d| door_clause(d, &local))
        .collect();
    if clauses.is_empty() {
        return MATCH_NOTHING.to_owned();
    }
    if !ipv4_only {
        clauses.push(ipv6_extensions_clause(doors, &local));
    }
    let mut inner = clauses.join(" or ");
    if ipv4_only {
        inner = format!("ip and ({inner})");
    }
    if ethernet {
        format!("({inner}) or (vlan and (({inner}) or (vlan and ({inner}))))")
    } else {
        inner
    }
}

fn door_clause(door: &DoorFilter, local: &[IpAddr]) -> String {
    let ports = |proto: Proto| -> BTreeSet<u16> {
        door.knocks
            .iter()
            .filter(|k| k.proto == proto)
            .map(|k| k.port.get())
            .collect()
    };
    let mut alternatives = Vec::new();
    let tcp = ports(Proto::Tcp);
    if !tcp.is_empty() {
        let mut c = format!("(tcp and ({}))", port_list(&tcp));
        if !door.tcpflags.is_any() {
            let (req, forb) = (door.tcpflags.required(), door.tcpflags.forbidden());
            // `tcp[13]` only applies to IPv4, so IPv6 passes and the decoder checks flags.
            let _ = write!(
                c,
                " and (ip6 or (tcp[13] & {req} = {req} and tcp[13] & {forb} = 0))"
            );
            c = format!("({c})");
        }
        alternatives.push(c);
    }
    let udp = ports(Proto::Udp);
    if !udp.is_empty() {
        alternatives.push(format!("(udp and ({}))", port_list(&udp)));
    }
    let transport = alternatives.join(" or ");
    match destination(door.target, local) {
        Some(dst) => format!("({dst} and ({transport}))"),
        None => format!("({transport})"),
    }
}

/// IPv6 packets to us whose first next-header is an extension header: BPF cannot see their
/// ports, so the decoder decides.
fn ipv6_extensions_clause(doors: &[DoorFilter], local: &[IpAddr]) -> String {
    let nh: Vec<String> = IPV6_EXTENSION_HEADERS
        .iter()
        .map(|n| format!("ip6[6] = {n}"))
        .collect();
    let mut dsts: Vec<IpAddr> = local.iter().copied().filter(IpAddr::is_ipv6).collect();
    dsts.extend(
        doors
            .iter()
            .filter_map(|d| d.target)
            .filter(IpAddr::is_ipv6),
    );
    let base = format!("(ip6 and ({}))", nh.join(" or "));
    if dsts.is_empty() && !local.is_empty() {
        // No IPv6 address to knock on: nothing to let through.
        return "(ip6 and less 1)".to_owned();
    }
    match host_list(&dsts) {
        Some(hosts) => format!("({base} and {hosts})"),
        None => base,
    }
}

fn port_list(ports: &BTreeSet<u16>) -> String {
    ports
        .iter()
        .map(|p| format!("dst port {p}"))
        .collect::<Vec<_>>()
        .join(" or ")
}

fn destination(target: Option<IpAddr>, local: &[IpAddr]) -> Option<String> {
    match target {
        Some(t) => Some(format!("dst host {t}")),
        None => host_list(local),
    }
}

fn host_list(hosts: &[IpAddr]) -> Option<String> {
    let set: BTreeSet<&IpAddr> = hosts.iter().collect();
    if set.is_empty() {
        return None;
    }
    let list = set
        .iter()
        .map(|h| format!("dst host {h}"))
        .collect::<Vec<_>>()
        .join(" or ");
    Some(format!("({list})"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_proto::Sequence;

    fn door(seq: &str, flags: &str, target: Option<&str>) -> DoorFilter {
        DoorFilter {
            knocks: seq.parse::<Sequence>().unwrap().knocks().to_vec(),
            tcpflags: if flags.is_empty() {
                TcpFlags::ANY
            } else {
                flags.parse().unwrap()
            },
            target: target.map(|t| t.parse().unwrap()),
        }
    }

    fn addrs(list: &[&str]) -> Vec<IpAddr> {
        list.iter().map(|a| a.parse().unwrap()).collect()
    }

    #[test]
    fn one_door_ipv4_only() {
        let f = build(
            &[door("7000,8000:udp,9000,7000", "", None)],
            &addrs(&["198.18.0.2", "fd00::2"]),
            true,
            false,
        );
        assert_eq!(
            f,
            "ip and (((dst host 198.18.0.2) and ((tcp and (dst port 7000 or dst port 9000)) or (udp and (dst port 8000)))))"
        );
    }

    #[test]
    fn flags_are_checked_in_bpf_for_ipv4_only() {
        let f = build(&[door("4", "syn,!ack", None)], &[], false, false);
        assert!(
            f.contains("(ip6 or (tcp[13] & 2 = 2 and tcp[13] & 16 = 0))"),
            "{f}"
        );
        assert!(f.contains("ip6[6] = 44"), "{f}");
    }

    #[test]
    fn target_doors_match_their_target_and_vlan_repeats_the_filter() {
        let f = build(
            &[door("1:udp", "", Some("198.18.1.9"))],
            &addrs(&["198.18.0.2"]),
            true,
            true,
        );
        let inner = "ip and ((dst host 198.18.1.9 and ((udp and (dst port 1)))))";
        assert_eq!(
            f,
            format!("({inner}) or (vlan and (({inner}) or (vlan and ({inner}))))")
        );
    }

    #[test]
    fn no_enabled_door_matches_nothing() {
        assert_eq!(build(&[], &[], false, true), MATCH_NOTHING);
    }

    #[test]
    fn ipv6_extension_headers_pass_only_to_our_ipv6_addresses() {
        let f = build(
            &[door("1", "", None)],
            &addrs(&["198.18.0.2", "fd00::2"]),
            false,
            false,
        );
        assert!(f.ends_with("((ip6 and (ip6[6] = 0 or ip6[6] = 43 or ip6[6] = 44 or ip6[6] = 60 or ip6[6] = 51)) and (dst host fd00::2))"), "{f}");
        let f = build(
            &[door("1", "", None)],
            &addrs(&["198.18.0.2"]),
            false,
            false,
        );
        assert!(f.ends_with("(ip6 and less 1)"), "{f}");
    }
}

//! The host as the decoder must see it, read from the system, and a watch that says when it
//! changed.
//!
//! [`read`] fills a [`Host`]: every address of every interface with its prefix (a packet
//! from any of them is forged, whichever interface we capture on), every interface's MAC,
//! the multicast MACs the kernel listens to (`/proc/net/dev_mcast`) and the VLAN ids it has
//! devices for (`/proc/net/vlan/config`; without that file no VLAN module is loaded and the
//! set is left unknown, since a VLAN-aware bridge still accepts tagged frames). [`Watch`] is
//! a netlink socket subscribed to address and link changes: the capture thread polls it with
//! the capture and re-reads the host when it fires, so nothing wakes up while nothing
//! changes.

use std::fs;
use std::net::IpAddr;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use knock_proto::wire::{Host, Mac};

/// Reads the host's addresses, MACs, multicast groups and VLANs.
pub fn read() -> Host {
    let mut host = Host::default();
    let devices = pcap::Device::list().unwrap_or_default();
    host.set_addresses(devices.iter().flat_map(|d| {
        d.addresses
            .iter()
            .map(|a| (a.addr, a.netmask.map_or(host_prefix(a.addr), prefix_len)))
    }));
    host.set_macs(macs());
    host.set_multicast_macs(multicast_macs());
    host.set_vlans(vlans());
    host
}

/// This host's addresses on `interface` (all interfaces for `any`): the addresses a door
/// without a target knocks on.
pub fn local_addresses(interface: &str) -> Vec<IpAddr> {
    let Ok(devices) = pcap::Device::list() else {
        return Vec::new();
    };
    let mut addrs: Vec<IpAddr> = devices
        .into_iter()
        .filter(|d| interface == "any" || d.name == interface)
        .flat_map(|d| d.addresses.into_iter().map(|a| a.addr))
        .collect();
    addrs.sort();
    addrs.dedup();
    addrs
}

fn host_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// The prefix length of a netmask (its leading ones).
fn prefix_len(mask: IpAddr) -> u8 {
    let ones = match mask {
        IpAddr::V4(m) => u32::from(m).leading_ones(),
        IpAddr::V6(m) => u128::from(m).leading_ones(),
    };
    u8::try_from(ones).unwrap_or(128)
}

/// Every interface's MAC (a frame to any of them is for this host), or unknown.
///
/// Sysfs shows the network namespace it was mounted in, and in some containers that is not
/// ours (systemd-nspawn joined to a namespace shows the host's `/sys/class/net`): its MACs
/// are then another machine's, and trusting them would refuse every knock. `/proc/net` is
/// always our namespace's, so sysfs is used only when the two agree on the interfaces (names,
/// and the indexes `/proc/net/dev_mcast` gives); otherwise the MACs are unknown and no frame
/// is refused for its destination MAC.
fn macs() -> Option<Vec<Mac>> {
    let ours = proc_interfaces(
        &fs::read_to_string("/proc/net/dev").ok()?,
        &fs::read_to_string("/proc/net/dev_mcast").unwrap_or_default(),
    );
    let mut sysfs = Vec::new();
    for entry in fs::read_dir("/sys/class/net").ok()?.flatten() {
        let path = entry.path();
        let read = |file: &str| fs::read_to_string(path.join(file)).unwrap_or_default();
        sysfs.push(SysfsInterface {
            name: entry.file_name().to_string_lossy().into_owned(),
            index: read("ifindex").trim().parse().ok(),
            mac: parse_mac(read("address").trim(), ':'),
        });
    }
    if !same_namespace(&ours, &sysfs) {
        tracing::debug!(
            "/sys/class/net shows another network namespace's interfaces: destination MACs are not checked"
        );
        return None;
    }
    let out: Vec<Mac> = sysfs.into_iter().filter_map(|i| i.mac).collect();
    (!out.is_empty()).then_some(out)
}

/// One interface as `/sys/class/net` shows it.
struct SysfsInterface {
    name: String,
    index: Option<u32>,
    mac: Option<Mac>,
}

/// Our namespace's interfaces from `/proc/net/dev` (names) and `/proc/net/dev_mcast` (the
/// index of those with multicast groups): name and index, where known.
fn proc_interfaces(dev: &str, dev_mcast: &str) -> Vec<(String, Option<u32>)> {
    let indexes: Vec<(&str, u32)> = dev_mcast
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let index = words.next()?.parse().ok()?;
            Some((words.next()?, index))
        })
        .collect();
    dev.lines()
        .skip(2)
        .filter_map(|l| Some(l.rsplit_once(':')?.0.trim()))
        .map(|name| {
            let index = indexes.iter().find(|(n, _)| *n == name).map(|&(_, i)| i);
            (name.to_owned(), index)
        })
        .collect()
}

/// Whether sysfs shows our namespace: the same interface names, and no index that differs.
fn same_namespace(ours: &[(String, Option<u32>)], sysfs: &[SysfsInterface]) -> bool {
    ours.len() == sysfs.len()
        && ours.iter().all(|(name, index)| {
            sysfs.iter().any(|s| {
                s.name == *name
                    && match (index, s.index) {
                        (Some(a), Some(b)) => *a == b,
                        _ => true,
                    }
            })
        })
}

/// `/proc/net/dev_mcast`: `index name users global 333300000001` per line.
fn multicast_macs() -> Option<Vec<Mac>> {
    let text = fs::read_to_string("/proc/net/dev_mcast").ok()?;
    Some(
        text.lines()
            .filter_map(|l| l.split_whitespace().nth(4))
            .filter_map(|hex| parse_mac(hex, '\0'))
            .collect(),
    )
}

/// `/proc/net/vlan/config`: two header lines, then `eth0.100 | 100 | eth0`.
fn vlans() -> Option<Vec<u16>> {
    let text = fs::read_to_string("/proc/net/vlan/config").ok()?;
    Some(
        text.lines()
            .skip(2)
            .filter_map(|l| l.split('|').nth(1)?.trim().parse().ok())
            .collect(),
    )
}

/// A MAC written as hex pairs, separated by `sep` (`'\0'`: not separated).
fn parse_mac(text: &str, sep: char) -> Option<Mac> {
    let hex: String = text.chars().filter(|&c| c != sep).collect();
    if hex.len() != 12 {
        return None;
    }
    let mut mac = [0u8; 6];
    for (i, byte) in mac.iter_mut().enumerate() {
        *byte = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(mac)
}

/// A netlink socket told of address and link changes.
#[derive(Debug)]
pub struct Watch(OwnedFd);

impl AsFd for Watch {
    fn as_fd(&self) -> BorrowedFd<'_> {
        self.0.as_fd()
    }
}

impl Watch {
    /// Subscribes to link and IPv4/IPv6 address changes; `None` where netlink is missing.
    pub fn open() -> Option<Watch> {
        use rustix::net::{AddressFamily, SocketFlags, SocketType, netlink};
        // No protocol: NETLINK_ROUTE, the kernel's default for netlink.
        let socket = rustix::net::socket_with(
            AddressFamily::NETLINK,
            SocketType::RAW,
            SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
            None,
        )
        .ok()?;
        let groups = libc::RTMGRP_LINK | libc::RTMGRP_IPV4_IFADDR | libc::RTMGRP_IPV6_IFADDR;
        let groups = u32::try_from(groups).ok()?;
        rustix::net::bind(&socket, &netlink::SocketAddrNetlink::new(0, groups)).ok()?;
        Some(Watch(socket))
    }

    /// Reads every waiting notification; returns whether there was any.
    pub fn drain(&self) -> bool {
        let mut buf = [0u8; 8192];
        let mut any = false;
        // EAGAIN: drained; ENOBUFS (we fell behind): re-reading covers it.
        while matches!(
            rustix::net::recv(&self.0, &mut buf[..], rustix::net::RecvFlags::DONTWAIT),
            Ok((n, _)) if n > 0
        ) {
            any = true;
        }
        any
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn macs_and_prefixes_parse() {
        assert_eq!(
            parse_mac("02:00:00:0a:ff:01", ':'),
            Some([2, 0, 0, 10, 255, 1])
        );
        assert_eq!(
            parse_mac("333300000001", '\0'),
            Some([0x33, 0x33, 0, 0, 0, 1])
        );
        assert_eq!(parse_mac("02:00", ':'), None);
        assert_eq!(parse_mac("zz0000000001", '\0'), None);
        assert_eq!(prefix_len("255.255.255.0".parse().unwrap()), 24);
        assert_eq!(prefix_len("ffff:ffff:ffff:ffff::".parse().unwrap()), 64);
    }

    fn sysfs(list: &[(&str, u32)]) -> Vec<SysfsInterface> {
        list.iter()
            .map(|&(name, index)| SysfsInterface {
                name: name.into(),
                index: Some(index),
                mac: None,
            })
            .collect()
    }

    #[test]
    fn sysfs_of_another_namespace_is_not_trusted_for_macs() {
        let dev = "Inter-|   Receive\n face |bytes\n    lo:   0 0\n  eth0: 1 2 3\n";
        let mcast = "1    lo              1     0     010000000001\n7    eth0            1     0     333300000001\n";
        let ours = proc_interfaces(dev, mcast);
        assert_eq!(
            ours,
            vec![("lo".to_owned(), Some(1)), ("eth0".to_owned(), Some(7))]
        );
        assert!(same_namespace(&ours, &sysfs(&[("eth0", 7), ("lo", 1)])));
        // systemd-nspawn joined to a namespace: the host's interfaces.
        let host = sysfs(&[("eth0", 2), ("ifb0", 3), ("lo", 1)]);
        assert!(!same_namespace(&ours, &host), "other names");
        assert!(
            !same_namespace(&ours, &sysfs(&[("eth0", 2), ("lo", 1)])),
            "same names, another eth0"
        );
    }

    #[test]
    fn the_running_host_reads_without_panicking() {
        let host = read();
        // Loopback exists everywhere this runs (in a namespace too).
        let _ = host.addresses().count();
    }
}

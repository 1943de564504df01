//! What the decoder knows of the host it captures for, to count only packets this host would
//! itself accept from a real sender.
//!
//! Some checks need no context: no real sender has the source 0.0.0.0, 255.255.255.255, a
//! multicast or loopback address, `::`, `::1` or an IPv4-mapped IPv6 address (Linux drops
//! `::ffff:a.b.c.d` sources as forged). Others need the host: its own addresses (a packet
//! claiming to come from us came from someone else), its subnets' broadcast addresses, the
//! link addresses it answers to and the VLANs it has. The server fills a [`Host`] from the
//! system and replaces it when addresses change; a field it cannot know stays "unknown",
//! which accepts everything, so a missing view never drops a real knock.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::Skip;

/// An Ethernet (MAC) address.
pub type Mac = [u8; 6];

/// The host's view for the decoder; see the module documentation. `Host::default()` knows
/// nothing and checks only what needs no context.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Host {
    /// Own addresses with their prefix lengths.
    addresses: Vec<(IpAddr, u8)>,
    /// Own unicast MACs; `None`: unknown.
    macs: Option<Vec<Mac>>,
    /// Multicast MACs the host listens to; `None`: unknown.
    multicast: Option<Vec<Mac>>,
    /// VLAN ids the host has devices for; `None`: unknown.
    vlans: Option<Vec<u16>>,
}

impl Host {
    /// Own addresses with prefix lengths (`198.18.0.2/24` as `(198.18.0.2, 24)`).
    pub fn set_addresses(&mut self, addresses: impl IntoIterator<Item = (IpAddr, u8)>) {
        self.addresses = addresses.into_iter().collect();
        self.addresses.sort_unstable();
        self.addresses.dedup();
    }

    /// The own addresses, without prefixes.
    pub fn addresses(&self) -> impl Iterator<Item = IpAddr> + '_ {
        self.addresses.iter().map(|&(a, _)| a)
    }

    /// Own unicast MACs (`None`: unknown, every unicast frame is for us).
    pub fn set_macs(&mut self, macs: Option<Vec<Mac>>) {
        self.macs = macs;
    }

    /// Multicast MACs the host listens to (`None`: unknown, every multicast frame is).
    pub fn set_multicast_macs(&mut self, macs: Option<Vec<Mac>>) {
        self.multicast = macs;
    }

    /// VLAN ids the host has (`None`: unknown, every tag is).
    pub fn set_vlans(&mut self, vlans: Option<Vec<u16>>) {
        self.vlans = vlans;
    }

    /// Why a frame to `mac` is not for this host, if it is not.
    #[inline]
    pub(super) fn check_mac(&self, mac: Mac) -> Result<(), Skip> {
        let known = if mac == [0xff; 6] {
            return Ok(());
        } else if mac[0] & 1 == 1 {
            &self.multicast
        } else {
            &self.macs
        };
        match known {
            Some(list) if !list.contains(&mac) => Err(Skip::NotForUs),
            _ => Ok(()),
        }
    }

    /// Why a frame tagged for VLAN `id` is not for this host, if it is not.
    #[inline]
    pub(super) fn check_vlan(&self, id: u16) -> Result<(), Skip> {
        match &self.vlans {
            Some(list) if !list.contains(&id) => Err(Skip::OtherVlan),
            _ => Ok(()),
        }
    }

    /// Why `source` cannot be a real sender's, if it cannot. On a loopback device (`loopback`)
    /// the host talks to itself, from loopback and its own addresses.
    #[inline]
    pub(super) fn check_source(&self, source: IpAddr, loopback: bool) -> Result<(), Skip> {
        let checked = match source {
            IpAddr::V4(v4) => check_v4(v4),
            IpAddr::V6(v6) => check_v6(v6),
        };
        match checked {
            Err(Skip::SourceLoopback) if loopback => {}
            other => other?,
        }
        for &(own, prefix) in &self.addresses {
            if own == source && !loopback {
                return Err(Skip::SourceLocal);
            }
            if let (IpAddr::V4(own), IpAddr::V4(src)) = (own, source) {
                if subnet_broadcast(own, prefix) == Some(src) {
                    return Err(Skip::SourceSubnetBroadcast);
                }
            }
        }
        Ok(())
    }
}

#[inline]
fn check_v4(source: Ipv4Addr) -> Result<(), Skip> {
    if source.is_unspecified() {
        Err(Skip::SourceUnspecified)
    } else if source.is_broadcast() {
        Err(Skip::SourceBroadcast)
    } else if source.is_multicast() {
        Err(Skip::SourceMulticast)
    } else if source.is_loopback() {
        Err(Skip::SourceLoopback)
    } else {
        Ok(())
    }
}

#[inline]
fn check_v6(source: Ipv6Addr) -> Result<(), Skip> {
    if source.is_unspecified() {
        Err(Skip::SourceUnspecified)
    } else if source.is_multicast() {
        Err(Skip::SourceMulticast)
    } else if source.is_loopback() {
        Err(Skip::SourceLoopback)
    } else if source.to_ipv4_mapped().is_some() {
        Err(Skip::SourceMapped)
    } else {
        Ok(())
    }
}

/// The directed broadcast address of `own`'s subnet; none for /31 and /32 (RFC 3021: both
/// addresses of a /31 are hosts).
#[inline]
fn subnet_broadcast(own: Ipv4Addr, prefix: u8) -> Option<Ipv4Addr> {
    if prefix >= 31 {
        return None;
    }
    let host_bits = u32::MAX.checked_shr(u32::from(prefix)).unwrap_or(0);
    Some(Ipv4Addr::from(u32::from(own) | host_bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn sources_no_real_sender_has() {
        let host = Host::default();
        for (source, why) in [
            ("0.0.0.0", Skip::SourceUnspecified),
            ("255.255.255.255", Skip::SourceBroadcast),
            ("224.0.0.1", Skip::SourceMulticast),
            ("239.1.2.3", Skip::SourceMulticast),
            ("127.0.0.1", Skip::SourceLoopback),
            ("127.9.9.9", Skip::SourceLoopback),
            ("::", Skip::SourceUnspecified),
            ("::1", Skip::SourceLoopback),
            ("ff02::1", Skip::SourceMulticast),
            ("ff05::2", Skip::SourceMulticast),
            ("::ffff:198.18.0.60", Skip::SourceMapped),
        ] {
            assert_eq!(host.check_source(ip(source), false), Err(why), "{source}");
        }
        for source in ["198.18.0.1", "fd00::1", "fe80::1", "::198.18.0.1"] {
            assert_eq!(host.check_source(ip(source), false), Ok(()), "{source}");
        }
    }

    #[test]
    fn own_addresses_and_subnet_broadcasts() {
        let mut host = Host::default();
        host.set_addresses([
            (ip("198.18.0.2"), 24),
            (ip("198.19.7.1"), 31),
            (ip("fd00::2"), 64),
        ]);
        assert_eq!(
            host.check_source(ip("198.18.0.2"), false),
            Err(Skip::SourceLocal)
        );
        // On loopback the host talks to itself.
        assert_eq!(host.check_source(ip("198.18.0.2"), true), Ok(()));
        assert_eq!(host.check_source(ip("127.0.0.1"), true), Ok(()));
        assert_eq!(host.check_source(ip("::1"), true), Ok(()));
        assert_eq!(
            host.check_source(ip("::ffff:127.0.0.1"), true),
            Err(Skip::SourceMapped)
        );
        assert_eq!(
            host.check_source(ip("fd00::2"), false),
            Err(Skip::SourceLocal)
        );
        assert_eq!(
            host.check_source(ip("198.18.0.255"), false),
            Err(Skip::SourceSubnetBroadcast)
        );
        // Both ends of a /31 are hosts.
        assert_eq!(host.check_source(ip("198.19.7.0"), false), Ok(()));
        assert_eq!(host.check_source(ip("198.18.0.1"), false), Ok(()));
        assert_eq!(
            subnet_broadcast(Ipv4Addr::new(10, 1, 2, 3), 0),
            Some(Ipv4Addr::BROADCAST)
        );
        assert_eq!(
            subnet_broadcast(Ipv4Addr::new(10, 1, 2, 3), 8),
            Some(Ipv4Addr::new(10, 255, 255, 255))
        );
    }

    #[test]
    fn link_addresses_and_vlans() {
        let mut host = Host::default();
        let ours = [2, 0, 0, 0, 0, 2];
        let group = [0x33, 0x33, 0, 0, 0, 1];
        assert_eq!(
            host.check_mac([2, 9, 9, 9, 9, 9]),
            Ok(()),
            "unknown: accepted"
        );
        assert_eq!(host.check_vlan(7), Ok(()), "unknown: accepted");
        host.set_macs(Some(vec![ours]));
        host.set_multicast_macs(Some(vec![group]));
        host.set_vlans(Some(vec![100]));
        assert_eq!(host.check_mac(ours), Ok(()));
        assert_eq!(host.check_mac([0xff; 6]), Ok(()));
        assert_eq!(host.check_mac(group), Ok(()));
        assert_eq!(host.check_mac([2, 9, 9, 9, 9, 9]), Err(Skip::NotForUs));
        assert_eq!(
            host.check_mac([0x33, 0x33, 0, 0, 0, 9]),
            Err(Skip::NotForUs)
        );
        assert_eq!(host.check_vlan(100), Ok(()));
        assert_eq!(host.check_vlan(7), Err(Skip::OtherVlan));
    }
}

//! Network layer: IPv4 and IPv6 down to a TCP or UDP header.
//!
//! Each datagram's own length field bounds everything inside it ([`Span`]), so link padding is
//! never read as a header. A fragment, first or later, is [`Skip::Fragment`]: a later one has
//! no transport header, and the kernel hands a first one to TCP or UDP only once the datagram
//! is reassembled (a knock is never fragmented). What else Linux's IP layer refuses before
//! TCP or UDP sees a packet is refused here too: a wrong IPv4 header checksum, a hop-by-hop
//! options header anywhere but first, a routing header with segments left.

use std::net::IpAddr;

use pnet_packet::ip::{IpNextHeaderProtocol, IpNextHeaderProtocols};
use pnet_packet::ipv4::Ipv4Packet;
use pnet_packet::ipv6::{ExtensionPacket, FragmentPacket, Ipv6Packet, RoutingPacket};

use super::{Skip, Span};

/// Most IPv6 extension headers walked before a transport header must show up. RFC 8200 allows
/// each kind once (destination options twice), which makes 7; a bound keeps a chain of
/// hundreds of empty options headers from costing more than a normal packet.
pub(super) const MAX_EXTENSION_HEADERS: usize = 8;

/// The transport protocols a knock can use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Transport {
    Tcp,
    Udp,
}

/// An IP datagram carrying TCP or UDP.
#[derive(Debug, Clone, Copy)]
pub(super) struct Datagram<'a> {
    pub(super) source: IpAddr,
    pub(super) destination: IpAddr,
    pub(super) protocol: Transport,
    /// IPv4's identification field (0 for IPv6): part of what tells two packets apart.
    pub(super) id: u16,
    /// The transport header and payload.
    pub(super) transport: Span<'a>,
}

/// Decodes an IPv4 header. `wire` is how long the datagram was on the wire at most (the
/// frame's original length past the link header): a total length beyond it is a lie.
#[inline]
pub(super) fn ipv4(bytes: &[u8], wire: usize) -> Result<Datagram<'_>, Skip> {
    let header = Ipv4Packet::new(bytes).ok_or(Skip::Truncated)?;
    // The fixed header, which `Ipv4Packet::new` found in full: pnet's getters of the
    // addresses and identification assemble them byte by byte and stay out of line (a fifth
    // of a decode), so these three are read from it directly.
    let fixed: &[u8; 20] = bytes.first_chunk().ok_or(Skip::Truncated)?;
    if header.get_version() != 4 {
        return Err(Skip::Malformed);
    }
    let header_len = usize::from(header.get_header_length()) * 4;
    if header_len < Ipv4Packet::minimum_packet_size() {
        return Err(Skip::Malformed);
    }
    let total = usize::from(header.get_total_length());
    if total > wire {
        return Err(Skip::LongerThanFrame);
    }
    // A total length shorter than the header itself makes `after` refuse it as malformed.
    let transport = Span::new(bytes, total).after(header_len)?;
    // The whole header is captured (`after` said so): the kernel drops it if its sum is off.
    let options = bytes.get(Ipv4Packet::minimum_packet_size()..header_len);
    if !checksum_holds(fixed, options.unwrap_or_default()) {
        return Err(Skip::BadIpv4Checksum);
    }
    // More Fragments (0x2000) or an offset (the low 13 bits): a fragment. The reserved bit
    // (0x8000) and Don't Fragment (0x4000) do not make one.
    if u16::from_be_bytes([fixed[6], fixed[7]]) & 0x3fff != 0 {
        return Err(Skip::Fragment);
    }
    let [.., s0, s1, s2, s3, d0, d1, d2, d3] = *fixed;
    Ok(Datagram {
        source: IpAddr::from([s0, s1, s2, s3]),
        destination: IpAddr::from([d0, d1, d2, d3]),
        protocol: transport_of(header.get_next_level_protocol())?,
        id: u16::from_be_bytes([fixed[4], fixed[5]]),
        transport,
    })
}

/// Whether the IPv4 header (`fixed`, then its `options`) sums to all ones in one's complement,
/// the checksum field included (RFC 1071): whether the sum of its 16-bit words is a non-zero
/// multiple of 0xffff. That verdict does not depend on the byte order the words are read in
/// (swapping bytes multiplies by 256 modulo 0xffff, which has an inverse), nor on adding them
/// four at a time (2^16 is 1 modulo 0xffff), nor on folding carries back in at bit 64 (0xffff
/// divides 2^64 - 1): so a plain header is summed as two native 8-byte words and a 4-byte one.
#[inline]
fn checksum_holds(fixed: &[u8; 20], options: &[u8]) -> bool {
    // Destructured rather than sliced: the pattern decodes an IPv4 SYN in fewer instructions
    // than `first_chunk` and `last_chunk` (callgrind counts them), on every packet.
    let [a0, a1, a2, a3, a4, a5, a6, a7, tail @ ..] = *fixed;
    let [b0, b1, b2, b3, b4, b5, b6, b7, c0, c1, c2, c3] = tail;
    let a = u64::from_ne_bytes([a0, a1, a2, a3, a4, a5, a6, a7]);
    let b = u64::from_ne_bytes([b0, b1, b2, b3, b4, b5, b6, b7]);
    let mut rest = u64::from(u32::from_ne_bytes([c0, c1, c2, c3]));
    // IHL counts 4-byte words: options are whole words, at most 10, so `rest` stays small.
    for w in options.chunks_exact(4) {
        rest += u64::from(u32::from_ne_bytes([w[0], w[1], w[2], w[3]]));
    }
    let (sum, carry) = a.overflowing_add(b);
    let sum = sum + u64::from(carry); // At most 2^64 - 2 after a carry: no second one.
    let (sum, carry) = sum.overflowing_add(rest);
    let sum = sum + u64::from(carry);
    // Never 0: version 4 makes the header non-zero, and folding carries keeps a sum of
    // non-zero words non-zero.
    sum % 0xffff == 0
}

/// Decodes an IPv6 header and walks its extension headers to the transport header.
///
/// Jumbograms (payload length 0 with a hop-by-hop jumbo option) come out as
/// [`Skip::Malformed`]: they cannot cross any link a capture sees in practice. `wire` as for
/// [`ipv4`].
#[inline]
pub(super) fn ipv6(bytes: &[u8], wire: usize) -> Result<Datagram<'_>, Skip> {
    let header = Ipv6Packet::new(bytes).ok_or(Skip::Truncated)?;
    // The fixed header, found in full by `Ipv6Packet::new`: the addresses are read from it
    // directly, as for IPv4.
    let fixed_header: &[u8; 40] = bytes.first_chunk().ok_or(Skip::Truncated)?;
    if header.get_version() != 6 {
        return Err(Skip::Malformed);
    }
    let fixed = Ipv6Packet::minimum_packet_size();
    let total = fixed + usize::from(header.get_payload_length());
    if total > wire {
        return Err(Skip::LongerThanFrame);
    }
    let payload = Span::new(bytes, total).after(fixed)?;
    let (protocol, transport) = walk_extensions(header.get_next_header(), payload)?;
    let address = |at: usize| {
        let mut octets = [0; 16];
        octets.copy_from_slice(&fixed_header[at..at + 16]);
        IpAddr::from(octets)
    };
    Ok(Datagram {
        source: address(8),
        destination: address(24),
        protocol,
        id: 0,
        transport,
    })
}

/// Follows the next-header chain from `next`, over `span`, to a TCP or UDP header.
fn walk_extensions(
    mut next: IpNextHeaderProtocol,
    mut span: Span<'_>,
) -> Result<(Transport, Span<'_>), Skip> {
    use IpNextHeaderProtocols as P;
    for walked in 0..=MAX_EXTENSION_HEADERS {
        let header_len = match next {
            P::Tcp => return Ok((Transport::Tcp, span)),
            P::Udp => return Ok((Transport::Udp, span)),
            // Hop-by-hop options only right after the IPv6 header (RFC 8200 4.1): anywhere
            // else Linux answers with a parameter problem and drops the packet.
            P::Hopopt if walked != 0 => return Err(Skip::Malformed),
            // Segments left: the packet is for the next address on its route, not for this
            // host. Linux drops type 0 (RFC 5095) and, unless configured to route them, the
            // other types too. None left: the route is done, the header changes nothing.
            P::Ipv6Route => {
                let routing = RoutingPacket::new(span.need(RoutingPacket::minimum_packet_size())?)
                    .ok_or(Skip::Truncated)?;
                if routing.get_segments_left() != 0 {
                    return Err(Skip::SourceRouted);
                }
                next = routing.get_next_header();
                (usize::from(routing.get_hdr_ext_len()) + 1) * 8
            }
            // The generic layout (RFC 6564): next header, then length in 8-byte units past the
            // first 8. Mobility, HIP and Shim6 use it too.
            P::Hopopt
            | P::Ipv6Opts
            | P::MobilityHeader
            | P::Hip
            | P::Shim6
            | P::Test1
            | P::Test2 => {
                let ext = extension(span)?;
                next = ext.get_next_header();
                (usize::from(ext.get_hdr_ext_len()) + 1) * 8
            }
            P::Ipv6Frag => {
                let fragment =
                    FragmentPacket::new(span.need(FragmentPacket::minimum_packet_size())?)
                        .ok_or(Skip::Truncated)?;
                // Offset in the top 13 bits, then 2 reserved bits and More Fragments. pnet's
                // `get_fragment_offset` keeps one reserved bit, so mask instead. An offset or
                // More Fragments: a fragment. Neither: an atomic fragment (RFC 6946), a whole
                // datagram.
                if fragment.get_fragment_offset_with_flags() & 0xfff9 != 0 {
                    return Err(Skip::Fragment);
                }
                next = fragment.get_next_header();
                FragmentPacket::minimum_packet_size()
            }
            // Authentication Header (RFC 4302): same first two fields, but the length counts
            // 4-byte units past the first 8. pnet has no view of its own for it.
            P::Ah => {
                let ext = extension(span)?;
                next = ext.get_next_header();
                (usize::from(ext.get_hdr_ext_len()) + 2) * 4
            }
            // ESP hides what it carries; No Next Header (59), ICMPv6 and the rest are not
            // knocks.
            _ => return Err(Skip::NotTransport),
        };
        span = span.after(header_len)?;
    }
    Err(Skip::Malformed)
}

/// The first two bytes every extension header shares.
fn extension(span: Span<'_>) -> Result<ExtensionPacket<'_>, Skip> {
    ExtensionPacket::new(span.need(ExtensionPacket::minimum_packet_size())?).ok_or(Skip::Truncated)
}

/// TCP or UDP from an IPv4 protocol number.
#[inline]
fn transport_of(protocol: IpNextHeaderProtocol) -> Result<Transport, Skip> {
    match protocol {
        IpNextHeaderProtocols::Tcp => Ok(Transport::Tcp),
        IpNextHeaderProtocols::Udp => Ok(Transport::Udp),
        _ => Err(Skip::NotTransport),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fixed_header_sizes() {
        assert_eq!(Ipv4Packet::minimum_packet_size(), 20);
        assert_eq!(Ipv6Packet::minimum_packet_size(), 40);
        assert_eq!(ExtensionPacket::minimum_packet_size(), 2);
        assert_eq!(RoutingPacket::minimum_packet_size(), 4);
        assert_eq!(FragmentPacket::minimum_packet_size(), 8);
    }

    #[test]
    fn checksum_agrees_with_a_16_bit_big_endian_sum() {
        // The reference: RFC 1071 as written, 16-bit big-endian words, end-around carry.
        fn reference(header: &[u8]) -> bool {
            let mut sum: u32 = header
                .chunks_exact(2)
                .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                .sum();
            while sum > 0xffff {
                sum = (sum & 0xffff) + (sum >> 16);
            }
            sum == 0xffff
        }
        let mut header = [0u8; 60];
        let mut state = 0x9e37_79b9_u32;
        for round in 0..20_000 {
            for byte in header.iter_mut() {
                state ^= state << 13;
                state ^= state >> 17;
                state ^= state << 5;
                *byte = state.to_le_bytes()[0];
            }
            header[0] = 0x45;
            let words = 5 + round % 11;
            let len = words * 4;
            // Make half of them hold: put the complement of the rest's sum in the field.
            if round % 2 == 0 {
                header[10..12].fill(0);
                let mut sum: u32 = header[..len]
                    .chunks_exact(2)
                    .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
                    .sum();
                while sum > 0xffff {
                    sum = (sum & 0xffff) + (sum >> 16);
                }
                header[10..12].copy_from_slice(&(!(sum as u16)).to_be_bytes());
            }
            let fixed: &[u8; 20] = header.first_chunk().unwrap();
            assert_eq!(
                checksum_holds(fixed, &header[20..len]),
                reference(&header[..len]),
                "{:x?}",
                &header[..len]
            );
            if round % 2 == 0 {
                assert!(reference(&header[..len]));
            }
        }
        // All ones in the field where all zeros would do ("negative zero") holds too.
        let mut header = [0u8; 20];
        header[0] = 0x45;
        header[1] = 0xff;
        header[2] = 0xba; // 0x45ff + 0xba00 = 0xffff
        assert!(reference(&header) && checksum_holds(&header, &[]));
        header[10..12].fill(0xff);
        assert!(reference(&header) && checksum_holds(&header, &[]));
    }

    #[test]
    fn extension_chain_is_bounded() {
        // MAX_EXTENSION_HEADERS empty destination options headers, then UDP: walked.
        let mut chain = Vec::new();
        for _ in 0..MAX_EXTENSION_HEADERS - 1 {
            chain.extend_from_slice(&[60, 0, 1, 4, 0, 0, 0, 0]);
        }
        chain.extend_from_slice(&[17, 0, 1, 4, 0, 0, 0, 0]);
        chain.extend_from_slice(&[0; 8]);
        let span = Span::new(&chain, chain.len());
        let (protocol, rest) = walk_extensions(IpNextHeaderProtocols::Ipv6Opts, span).unwrap();
        assert_eq!((protocol, rest.captured.len()), (Transport::Udp, 8));

        // One more: refused.
        let mut longer = vec![60, 0, 1, 4, 0, 0, 0, 0];
        longer.extend_from_slice(&chain);
        let span = Span::new(&longer, longer.len());
        assert_eq!(
            walk_extensions(IpNextHeaderProtocols::Ipv6Opts, span).err(),
            Some(Skip::Malformed),
        );
    }

    #[test]
    fn fragment_reserved_bits_do_not_make_an_offset() {
        // Offset 0, both reserved bits set, no More Fragments: a whole datagram.
        let bytes = [6, 0, 0x00, 0x06, 0, 0, 0, 1, 0x12, 0x34];
        let span = Span::new(&bytes, bytes.len());
        let (protocol, rest) = walk_extensions(IpNextHeaderProtocols::Ipv6Frag, span).unwrap();
        assert_eq!(
            (protocol, rest.captured),
            (Transport::Tcp, &[0x12, 0x34][..])
        );
        // More Fragments as well: a first fragment.
        let bytes = [6, 0, 0x00, 0x07, 0, 0, 0, 1, 0x12, 0x34];
        let span = Span::new(&bytes, bytes.len());
        assert_eq!(
            walk_extensions(IpNextHeaderProtocols::Ipv6Frag, span).err(),
            Some(Skip::Fragment),
        );
        // Offset 1 (8 bytes): a later fragment.
        let bytes = [6, 0, 0x00, 0x08, 0, 0, 0, 1];
        let span = Span::new(&bytes, bytes.len());
        assert_eq!(
            walk_extensions(IpNextHeaderProtocols::Ipv6Frag, span).err(),
            Some(Skip::Fragment),
        );
    }
}

//! Transport layer: the ports of a knock and, for TCP, its flags byte and sequence number.
//!
//! Only the fixed part of the header has to be captured; options and payload may have been cut
//! by the snap length. What the header declares must still fit in the datagram.

use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;

use super::{Skip, Span};
use crate::sequence::Port;

/// What a knock's TCP or UDP header says.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Segment {
    /// The port knocked on (never 0).
    pub(super) destination: Port,
    /// The sender's port.
    pub(super) source: u16,
    /// The TCP flags byte; 0 for UDP.
    pub(super) flags: u8,
    /// The TCP sequence number; 0 for UDP.
    pub(super) seq: u32,
}

/// Ports, flags byte and sequence number of a TCP header.
///
/// The fields are read from the fixed header's bytes rather than through pnet's getters,
/// which assemble each field byte by byte, and which LLVM leaves out of line in a `decode`
/// this size (this function too, without `inline(always)`): extra instructions on every SYN,
/// as callgrind shows. The layout is pnet's `Tcp`: ports,
/// sequence number, acknowledgement, data offset in the high nibble of byte 12, flags in
/// byte 13.
#[inline(always)]
pub(super) fn tcp(span: Span<'_>) -> Result<Segment, Skip> {
    let fixed = TcpPacket::minimum_packet_size();
    let header: &[u8; 20] = span.need(fixed)?.first_chunk().ok_or(Skip::Truncated)?;
    let header_len = usize::from(header[12] >> 4) * 4;
    if header_len < fixed {
        return Err(Skip::Malformed);
    }
    span.declares(header_len)?;
    let [s0, s1, d0, d1, q0, q1, q2, q3, ..] = *header;
    Ok(Segment {
        destination: Port::new(u16::from_be_bytes([d0, d1])).ok_or(Skip::Malformed)?,
        source: u16::from_be_bytes([s0, s1]),
        flags: header[13],
        seq: u32::from_be_bytes([q0, q1, q2, q3]),
    })
}

/// Ports of a UDP header.
///
/// A length below the header's own 8 bytes is refused, including 0 (which only IPv6
/// jumbograms use, and those are refused below us anyway).
#[inline(always)]
pub(super) fn udp(span: Span<'_>) -> Result<Segment, Skip> {
    let fixed = UdpPacket::minimum_packet_size();
    // Read directly as for TCP; pnet's `Udp`: source port, destination port, length.
    let header: &[u8; 8] = span.need(fixed)?.first_chunk().ok_or(Skip::Truncated)?;
    let [s0, s1, d0, d1, l0, l1, ..] = *header;
    let length = usize::from(u16::from_be_bytes([l0, l1]));
    if length < fixed {
        return Err(Skip::Malformed);
    }
    span.declares(length)?;
    Ok(Segment {
        destination: Port::new(u16::from_be_bytes([d0, d1])).ok_or(Skip::Malformed)?,
        source: u16::from_be_bytes([s0, s1]),
        flags: 0,
        seq: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(bytes: &[u8]) -> Span<'_> {
        Span::new(bytes, bytes.len())
    }

    #[test]
    fn fixed_header_sizes() {
        assert_eq!(TcpPacket::minimum_packet_size(), 20);
        assert_eq!(UdpPacket::minimum_packet_size(), 8);
    }

    /// A TCP header from port 40000 to port 7000, sequence number 0xdeadbeef, SYN.
    fn tcp_syn() -> [u8; 24] {
        let mut header = [0u8; 24];
        header[..2].copy_from_slice(&40000u16.to_be_bytes());
        header[2..4].copy_from_slice(&7000u16.to_be_bytes());
        header[4..8].copy_from_slice(&0xdead_beef_u32.to_be_bytes());
        header[13] = 0x02;
        header
    }

    #[test]
    fn tcp_ports_flags_and_sequence_number() {
        let mut header = tcp_syn();
        header[12] = 5 << 4;
        let want = Segment {
            destination: Port::new(7000).unwrap(),
            source: 40000,
            flags: 0x02,
            seq: 0xdead_beef,
        };
        assert_eq!(tcp(span(&header)), Ok(want));
    }

    #[test]
    fn tcp_data_offset() {
        let mut header = tcp_syn();
        let syn = Ok(Segment {
            destination: Port::new(7000).unwrap(),
            source: 40000,
            flags: 0x02,
            seq: 0xdead_beef,
        });
        for (offset, want) in [
            (0u8, Err(Skip::Malformed)),
            (4, Err(Skip::Malformed)),
            (5, syn),
            (6, syn),
            (7, Err(Skip::Malformed)),
            (15, Err(Skip::Malformed)),
        ] {
            header[12] = offset << 4;
            assert_eq!(tcp(span(&header)), want, "data offset {offset}");
        }
        // Options declared but cut by the capture: the fixed header is enough.
        header[12] = 6 << 4;
        assert!(tcp(Span::new(&header[..20], 24)).is_ok());
        assert_eq!(tcp(Span::new(&header[..19], 24)), Err(Skip::Truncated));
    }

    #[test]
    fn udp_length() {
        let mut header = [0u8; 10];
        header[..2].copy_from_slice(&5353u16.to_be_bytes());
        header[2..4].copy_from_slice(&53u16.to_be_bytes());
        let datagram = Ok(Segment {
            destination: Port::new(53).unwrap(),
            source: 5353,
            flags: 0,
            seq: 0,
        });
        for (length, want) in [
            (0u16, Err(Skip::Malformed)),
            (7, Err(Skip::Malformed)),
            (8, datagram),
            (10, datagram),
            (11, Err(Skip::Malformed)),
        ] {
            header[4..6].copy_from_slice(&length.to_be_bytes());
            assert_eq!(udp(span(&header)), want, "length {length}");
        }
    }

    #[test]
    fn destination_port_zero_is_no_knock() {
        let mut tcp_header = [0u8; 20];
        tcp_header[12] = 5 << 4;
        assert_eq!(tcp(span(&tcp_header)), Err(Skip::Malformed));
        let udp_header = [0, 9, 0, 0, 0, 8, 0, 0];
        assert_eq!(udp(span(&udp_header)), Err(Skip::Malformed));
    }
}

//! Transport layer: the destination port (and, for TCP, the flags byte) of a knock.
//!
//! Only the fixed part of the header has to be captured; options and payload may have been cut
//! by the snap length. What the header declares must still fit in the datagram.

use pnet_packet::tcp::TcpPacket;
use pnet_packet::udp::UdpPacket;

use super::{Skip, Span};
use crate::sequence::Port;

/// What a transport header says of a knock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Ports {
    pub(super) source: u16,
    pub(super) destination: Port,
    /// TCP's sequence number (0 for UDP).
    pub(super) seq: u32,
    /// TCP's flags byte (0 for UDP).
    pub(super) flags: u8,
}

/// Ports, sequence number and flags byte of a TCP header.
pub(super) fn tcp(span: Span<'_>) -> Result<Ports, Skip> {
    let fixed = TcpPacket::minimum_packet_size();
    let header = TcpPacket::new(span.need(fixed)?).ok_or(Skip::Truncated)?;
    let header_len = usize::from(header.get_data_offset()) * 4;
    if header_len < fixed {
        return Err(Skip::Malformed);
    }
    span.declares(header_len)?;
    Ok(Ports {
        source: header.get_source(),
        destination: Port::new(header.get_destination()).ok_or(Skip::Malformed)?,
        seq: header.get_sequence(),
        flags: header.get_flags(),
    })
}

/// Ports of a UDP header.
///
/// A length below the header's own 8 bytes is refused, including 0 (which only IPv6
/// jumbograms use, and those are refused below us anyway).
pub(super) fn udp(span: Span<'_>) -> Result<Ports, Skip> {
    let fixed = UdpPacket::minimum_packet_size();
    let header = UdpPacket::new(span.need(fixed)?).ok_or(Skip::Truncated)?;
    let length = usize::from(header.get_length());
    if length < fixed {
        return Err(Skip::Malformed);
    }
    span.declares(length)?;
    Ok(Ports {
        source: header.get_source(),
        destination: Port::new(header.get_destination()).ok_or(Skip::Malformed)?,
        seq: 0,
        flags: 0,
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

    #[test]
    fn tcp_data_offset() {
        let mut header = [0u8; 24];
        header[2..4].copy_from_slice(&7000u16.to_be_bytes());
        header[13] = 0x02;
        header[4..8].copy_from_slice(&0x0102_0304u32.to_be_bytes());
        header[12] = 5 << 4;
        assert_eq!(tcp(span(&header[..20])).map(|p| p.seq), Ok(0x0102_0304));
        for (offset, want) in [
            (0u8, Err(Skip::Malformed)),
            (4, Err(Skip::Malformed)),
            (5, Ok((Port::new(7000).unwrap(), 0x02))),
            (6, Ok((Port::new(7000).unwrap(), 0x02))),
            (7, Err(Skip::Malformed)),
            (15, Err(Skip::Malformed)),
        ] {
            header[12] = offset << 4;
            let got = tcp(span(&header)).map(|p| (p.destination, p.flags));
            assert_eq!(got, want, "data offset {offset}");
        }
        // Options declared but cut by the capture: the fixed header is enough.
        header[12] = 6 << 4;
        assert!(tcp(Span::new(&header[..20], 24)).is_ok());
        assert_eq!(tcp(Span::new(&header[..19], 24)), Err(Skip::Truncated));
    }

    #[test]
    fn udp_length() {
        let mut header = [0u8; 10];
        header[2..4].copy_from_slice(&53u16.to_be_bytes());
        for (length, want) in [
            (0u16, Err(Skip::Malformed)),
            (7, Err(Skip::Malformed)),
            (8, Ok(Port::new(53).unwrap())),
            (10, Ok(Port::new(53).unwrap())),
            (11, Err(Skip::Malformed)),
        ] {
            header[4..6].copy_from_slice(&length.to_be_bytes());
            let got = udp(span(&header)).map(|p| p.destination);
            assert_eq!(got, want, "length {length}");
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

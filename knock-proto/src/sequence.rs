//! Ports, protocols and knock sequences.
//!
//! A sequence is written as knockd writes it: `7000,8000:udp,9000`. A port without a protocol
//! takes the default (TCP for knockd.conf; a client profile may choose UDP), leading zeros are
//! fine (`04`), protocol names are case-insensitive, and a port may repeat
//! (`02,02,02,01,01,01`: the telnet-style sequences people write for three SYNs per port).

use std::fmt;
use std::num::NonZeroU16;
use std::str::FromStr;

/// The longest sequence we accept. knockd stops at 32; we allow more so that telnet-style
/// sequences (three hits per port) of long knocks still fit, and keep the stage in a `u8`.
pub const MAX_KNOCKS: usize = 255;

/// A TCP or UDP port, 1..=65535. Port 0 cannot be knocked on, so it is not representable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Port(NonZeroU16);

impl Port {
    /// The port with this number, or `None` for 0.
    pub const fn new(n: u16) -> Option<Port> {
        match NonZeroU16::new(n) {
            Some(n) => Some(Port(n)),
            None => None,
        }
    }

    /// The port number.
    pub const fn get(self) -> u16 {
        self.0.get()
    }
}

impl fmt::Display for Port {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl FromStr for Port {
    type Err = SequenceError;

    /// Decimal digits only (leading zeros allowed, as knockd allows them), 1..=65535.
    fn from_str(s: &str) -> Result<Port, SequenceError> {
        let s = s.trim();
        if s.is_empty() {
            return Err(SequenceError::EmptyPort);
        }
        if !s.bytes().all(|b| b.is_ascii_digit()) {
            return Err(SequenceError::BadPort(s.to_owned()));
        }
        let digits = s.trim_start_matches('0');
        // Anything longer than five significant digits is out of range without parsing.
        let n: u32 = if digits.is_empty() {
            0
        } else if digits.len() > 5 {
            u32::MAX
        } else {
            digits.parse().unwrap_or(u32::MAX)
        };
        u16::try_from(n)
            .ok()
            .and_then(Port::new)
            .ok_or_else(|| SequenceError::PortOutOfRange(s.to_owned()))
    }
}

/// The transport protocol of a knock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub enum Proto {
    /// A TCP segment (for knocks: a SYN).
    #[default]
    Tcp,
    /// A UDP datagram.
    Udp,
}

impl Proto {
    /// The lowercase name, as knockd writes it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Proto::Tcp => "tcp",
            Proto::Udp => "udp",
        }
    }
}

impl fmt::Display for Proto {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Proto {
    type Err = SequenceError;

    fn from_str(s: &str) -> Result<Proto, SequenceError> {
        let s = s.trim();
        if s.eq_ignore_ascii_case("tcp") {
            Ok(Proto::Tcp)
        } else if s.eq_ignore_ascii_case("udp") {
            Ok(Proto::Udp)
        } else {
            Err(SequenceError::BadProto(s.to_owned()))
        }
    }
}

/// One knock: a port and the protocol to hit it with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Knock {
    /// The destination port.
    pub port: Port,
    /// TCP or UDP.
    pub proto: Proto,
}

impl Knock {
    /// A knock on `port` with `proto`.
    pub const fn new(port: Port, proto: Proto) -> Knock {
        Knock { port, proto }
    }

    /// Parses `port[:proto]`, taking `default` when no protocol is written.
    pub fn parse_with_default(s: &str, default: Proto) -> Result<Knock, SequenceError> {
        let (port, proto) = match s.split_once(':') {
            Some((port, proto)) => (port, proto.parse()?),
            None => (s, default),
        };
        Ok(Knock::new(port.parse()?, proto))
    }
}

impl fmt::Display for Knock {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.port, self.proto)
    }
}

impl FromStr for Knock {
    type Err = SequenceError;

    fn from_str(s: &str) -> Result<Knock, SequenceError> {
        Knock::parse_with_default(s, Proto::Tcp)
    }
}

/// A non-empty, ordered list of knocks of at most [`MAX_KNOCKS`].
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Sequence(Vec<Knock>);

impl Sequence {
    /// Checks the length bounds.
    pub fn new(knocks: Vec<Knock>) -> Result<Sequence, SequenceError> {
        if knocks.is_empty() {
            return Err(SequenceError::Empty);
        }
        if knocks.len() > MAX_KNOCKS {
            return Err(SequenceError::TooLong(knocks.len()));
        }
        Ok(Sequence(knocks))
    }

    /// Parses knockd's syntax, `port[:proto],...`, with `default` for bare ports.
    ///
    /// Whitespace around items is ignored, so `7000, 8000:udp` is accepted too.
    pub fn parse_with_default(s: &str, default: Proto) -> Result<Sequence, SequenceError> {
        if s.trim().is_empty() {
            return Err(SequenceError::Empty);
        }
        let knocks = s
            .split(',')
            .map(|item| Knock::parse_with_default(item.trim(), default))
            .collect::<Result<Vec<_>, _>>()?;
        Sequence::new(knocks)
    }

    /// The knocks in order.
    pub fn knocks(&self) -> &[Knock] {
        &self.0
    }

    /// How many knocks; never zero.
    #[allow(clippy::len_without_is_empty)]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// The first knock, which starts an attempt.
    pub fn first(&self) -> Knock {
        self.0[0]
    }

    /// Each knock repeated `hits` times in place: `4,2012` with 3 hits is `4,4,4,2012,2012,2012`,
    /// what a telnet to a filtered port produces.
    pub fn repeated(&self, hits: usize) -> Result<Sequence, SequenceError> {
        let knocks = self
            .0
            .iter()
            .flat_map(|k| std::iter::repeat_n(*k, hits))
            .collect();
        Sequence::new(knocks)
    }
}

impl fmt::Display for Sequence {
    /// knockd's syntax, with every protocol spelled out: `7000:tcp,8000:udp`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, k) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{k}")?;
        }
        Ok(())
    }
}

impl FromStr for Sequence {
    type Err = SequenceError;

    fn from_str(s: &str) -> Result<Sequence, SequenceError> {
        Sequence::parse_with_default(s, Proto::Tcp)
    }
}

/// Why a port, protocol or sequence was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SequenceError {
    /// Nothing between two commas, or nothing at all before a `:proto`.
    #[error("empty port (two commas in a row?)")]
    EmptyPort,
    /// Not a decimal number.
    #[error("`{0}` is not a port number: write a decimal port from 1 to 65535")]
    BadPort(String),
    /// 0, or above 65535.
    #[error("port `{0}` is out of range: ports go from 1 to 65535")]
    PortOutOfRange(String),
    /// Neither tcp nor udp.
    #[error("unknown protocol `{0}`: write tcp or udp")]
    BadProto(String),
    /// No knocks.
    #[error("the sequence is empty: list at least one port, e.g. `7000,8000:udp,9000`")]
    Empty,
    /// More than [`MAX_KNOCKS`].
    #[error("the sequence has {0} knocks; at most 255 are allowed")]
    TooLong(usize),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn k(port: u16, proto: Proto) -> Knock {
        Knock::new(Port::new(port).unwrap(), proto)
    }

    #[test]
    fn parses_knockd_syntax() {
        let s: Sequence = "7000,8000:udp,9000:TCP".parse().unwrap();
        assert_eq!(
            s.knocks(),
            [
                k(7000, Proto::Tcp),
                k(8000, Proto::Udp),
                k(9000, Proto::Tcp)
            ]
        );
        assert_eq!(s.to_string(), "7000:tcp,8000:udp,9000:tcp");
    }

    #[test]
    fn leading_zeros_and_repeats() {
        let s: Sequence = "02,02,02,01,01,01,2010,2010,2010".parse().unwrap();
        assert_eq!(s.len(), 9);
        assert_eq!(s.first(), k(2, Proto::Tcp));
        assert_eq!("0000065535".parse::<Port>().unwrap().get(), 65535);
    }

    #[test]
    fn default_protocol_applies_to_bare_ports() {
        let s = Sequence::parse_with_default("1,2:tcp", Proto::Udp).unwrap();
        assert_eq!(s.knocks(), [k(1, Proto::Udp), k(2, Proto::Tcp)]);
    }

    #[test]
    fn refuses_bad_input() {
        for (input, want) in [
            ("", SequenceError::Empty),
            ("  ", SequenceError::Empty),
            ("1,,2", SequenceError::EmptyPort),
            ("0", SequenceError::PortOutOfRange("0".into())),
            ("65536", SequenceError::PortOutOfRange("65536".into())),
            (
                "99999999999999999999",
                SequenceError::PortOutOfRange("99999999999999999999".into()),
            ),
            ("-1", SequenceError::BadPort("-1".into())),
            ("+1", SequenceError::BadPort("+1".into())),
            ("12a", SequenceError::BadPort("12a".into())),
            ("1:icmp", SequenceError::BadProto("icmp".into())),
            (":tcp", SequenceError::EmptyPort),
        ] {
            assert_eq!(input.parse::<Sequence>(), Err(want), "input {input:?}");
        }
        let long = vec!["1"; 256].join(",");
        assert_eq!(long.parse::<Sequence>(), Err(SequenceError::TooLong(256)));
    }

    #[test]
    fn repeated_expands_each_knock_in_place() {
        let s: Sequence = "4,2012,3".parse().unwrap();
        assert_eq!(
            s.repeated(3).unwrap().to_string(),
            "4:tcp,4:tcp,4:tcp,2012:tcp,2012:tcp,2012:tcp,3:tcp,3:tcp,3:tcp"
        );
        assert_eq!(s.repeated(0), Err(SequenceError::Empty));
    }
}

//! TCP flag requirements, knockd's `TCPFlags = syn,!ack`.
//!
//! A door's flags say which bits a TCP packet must have set and which it must have clear; a
//! packet that does not meet them is ignored (it neither advances nor breaks an attempt).

use std::fmt;
use std::str::FromStr;

/// The six classic TCP flag bits, as they sit in the TCP header's flags byte.
pub mod bits {
    /// FIN
    pub const FIN: u8 = 0x01;
    /// SYN
    pub const SYN: u8 = 0x02;
    /// RST
    pub const RST: u8 = 0x04;
    /// PSH
    pub const PSH: u8 = 0x08;
    /// ACK
    pub const ACK: u8 = 0x10;
    /// URG
    pub const URG: u8 = 0x20;
}

const NAMES: [(&str, u8); 6] = [
    ("fin", bits::FIN),
    ("syn", bits::SYN),
    ("rst", bits::RST),
    ("psh", bits::PSH),
    ("ack", bits::ACK),
    ("urg", bits::URG),
];

/// Flags that must be set and flags that must be clear. The default requires nothing, so
/// every TCP packet counts (knockd's behaviour without `TCPFlags`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags {
    required: u8,
    forbidden: u8,
}

impl TcpFlags {
    /// No requirement at all.
    pub const ANY: TcpFlags = TcpFlags {
        required: 0,
        forbidden: 0,
    };

    /// Requires `required` set and `forbidden` clear; `None` if a bit is in both.
    pub const fn new(required: u8, forbidden: u8) -> Option<TcpFlags> {
        if required & forbidden != 0 {
            None
        } else {
            Some(TcpFlags {
                required,
                forbidden,
            })
        }
    }

    /// The bits that must be set.
    pub const fn required(self) -> u8 {
        self.required
    }

    /// The bits that must be clear.
    pub const fn forbidden(self) -> u8 {
        self.forbidden
    }

    /// Whether there is no requirement.
    pub const fn is_any(self) -> bool {
        self.required == 0 && self.forbidden == 0
    }

    /// Whether a packet with these flag bits counts.
    pub const fn matches(self, flags: u8) -> bool {
        flags & self.required == self.required && flags & self.forbidden == 0
    }
}

impl FromStr for TcpFlags {
    type Err = FlagsError;

    /// Comma-separated flag names, case-insensitive, `!` for "must be clear". knockd also
    /// accepts the bare word list with spaces; we trim around each item.
    fn from_str(s: &str) -> Result<TcpFlags, FlagsError> {
        let mut required = 0u8;
        let mut forbidden = 0u8;
        for item in s.split(',').map(str::trim) {
            if item.is_empty() {
                return Err(FlagsError::Empty);
            }
            let (negated, name) = match item.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, item),
            };
            let bit = NAMES
                .iter()
                .find(|(n, _)| n.eq_ignore_ascii_case(name))
                .map(|(_, b)| *b)
                .ok_or_else(|| FlagsError::Unknown(name.to_owned()))?;
            if negated {
                forbidden |= bit;
            } else {
                required |= bit;
            }
        }
        TcpFlags::new(required, forbidden)
            .ok_or_else(|| FlagsError::Contradiction(s.trim().to_owned()))
    }
}

impl fmt::Display for TcpFlags {
    /// `syn,!ack`; `any` when nothing is required.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_any() {
            return f.write_str("any");
        }
        let mut first = true;
        for (name, bit) in NAMES {
            let prefix = if self.required & bit != 0 {
                ""
            } else if self.forbidden & bit != 0 {
                "!"
            } else {
                continue;
            };
            if !first {
                f.write_str(",")?;
            }
            first = false;
            write!(f, "{prefix}{name}")?;
        }
        Ok(())
    }
}

/// Why a `TCPFlags` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FlagsError {
    /// An empty item, e.g. `syn,,ack`.
    #[error("empty flag name: list flags separated by commas, e.g. `syn,!ack`")]
    Empty,
    /// Not one of fin, syn, rst, psh, ack, urg.
    #[error(
        "unknown TCP flag `{0}`: use fin, syn, rst, psh, ack or urg, with `!` for must-be-clear"
    )]
    Unknown(String),
    /// A flag both required and forbidden.
    #[error("`{0}` both requires and forbids the same flag, so no packet could match")]
    Contradiction(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_matches() {
        let f: TcpFlags = "SYN, !ack".parse().unwrap();
        assert_eq!(f.required(), bits::SYN);
        assert_eq!(f.forbidden(), bits::ACK);
        assert!(f.matches(bits::SYN));
        assert!(f.matches(bits::SYN | bits::PSH));
        assert!(!f.matches(bits::SYN | bits::ACK));
        assert!(!f.matches(bits::ACK));
        assert_eq!(f.to_string(), "syn,!ack");
        assert!(TcpFlags::ANY.matches(0xff));
        assert_eq!(TcpFlags::ANY.to_string(), "any");
    }

    #[test]
    fn refuses_bad_flags() {
        assert_eq!(
            "syn,bogus".parse::<TcpFlags>(),
            Err(FlagsError::Unknown("bogus".into()))
        );
        assert_eq!("syn,".parse::<TcpFlags>(), Err(FlagsError::Empty));
        assert!(matches!(
            "syn,!syn".parse::<TcpFlags>(),
            Err(FlagsError::Contradiction(_))
        ));
    }
}

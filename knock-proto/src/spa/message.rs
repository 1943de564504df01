//! The fields of an SPA message and their text form inside the encryption: `:`-separated,
//! text fields in base64 without `=`, numbers in decimal.

use std::fmt;
use std::net::Ipv4Addr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use super::SpaError;
use crate::sequence::{Port, Proto};

/// fwknop's random field: 16 decimal digits, so that no two messages look alike.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Random([u8; 16]);

impl Random {
    /// The 16 digits of `n % 10^16`, zero-padded: pass 8 random bytes as a `u64`.
    pub fn new(n: u64) -> Random {
        let mut digits = [b'0'; 16];
        let mut n = n % 10_000_000_000_000_000;
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
        Random(digits)
    }

    /// Exactly 16 ASCII digits.
    pub fn parse(s: &str) -> Option<Random> {
        let digits: [u8; 16] = s.as_bytes().try_into().ok()?;
        digits
            .iter()
            .all(u8::is_ascii_digit)
            .then_some(Random(digits))
    }

    /// The 16 digits.
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).expect("ASCII digits")
    }
}

impl fmt::Display for Random {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One port to open: `tcp/22`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Access {
    /// TCP or UDP (fwknop's client refuses anything else).
    pub proto: Proto,
    /// The port.
    pub port: Port,
}

impl fmt::Display for Access {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.proto, self.port)
    }
}

/// What the message asks for, after the address to allow.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Open these ports (`-A tcp/22,udp/53`): at least one.
    Access(Vec<Access>),
    /// Run this command on the server (`--server-cmd`, message type 0).
    Command(String),
}

/// Forward a port of the server to an internal host (`-N host,port`), or with `local` to a
/// service on the server itself (`--nat-local`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nat {
    /// The internal host, as the client wrote it (an address, or a name up to 70 characters).
    pub host: String,
    /// The internal port.
    pub port: Port,
    /// Local NAT (message types 5 and 6).
    pub local: bool,
}

/// fwknop's message types, the number in the fifth field.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// 0: run a command.
    Command,
    /// 1: open ports.
    Access,
    /// 2: open ports through NAT.
    NatAccess,
    /// 3: open ports for the client's timeout.
    ClientTimeoutAccess,
    /// 4: NAT, with the client's timeout.
    ClientTimeoutNatAccess,
    /// 5: local NAT.
    LocalNatAccess,
    /// 6: local NAT, with the client's timeout.
    ClientTimeoutLocalNatAccess,
}

impl MessageType {
    /// The number on the wire.
    pub const fn number(self) -> u8 {
        self as u8
    }

    fn from_number(n: u8) -> Option<MessageType> {
        use MessageType::*;
        [
            Command,
            Access,
            NatAccess,
            ClientTimeoutAccess,
            ClientTimeoutNatAccess,
            LocalNatAccess,
            ClientTimeoutLocalNatAccess,
        ]
        .get(usize::from(n))
        .copied()
    }

    fn has_nat(self) -> bool {
        use MessageType::*;
        matches!(
            self,
            NatAccess | LocalNatAccess | ClientTimeoutNatAccess | ClientTimeoutLocalNatAccess
        )
    }

    fn has_timeout(self) -> bool {
        use MessageType::*;
        matches!(
            self,
            ClientTimeoutAccess | ClientTimeoutNatAccess | ClientTimeoutLocalNatAccess
        )
    }
}

/// One SPA message, as fwknop's client builds it and fwknopd reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Message {
    /// 16 random digits.
    pub random: Random,
    /// The user the client runs as (or `-U`): what `REQUIRE_USERNAME` compares.
    pub username: String,
    /// When the client built the message, Unix seconds.
    pub timestamp: u64,
    /// The client's protocol version (`3.0.0` for fwknop 2.6).
    pub version: String,
    /// The address to open for (`-a`); `0.0.0.0` (`-s`) asks for the packet's source address.
    pub allow_ip: Ipv4Addr,
    /// Ports or a command.
    pub request: Request,
    /// NAT access, for an access request.
    pub nat: Option<Nat>,
    /// The optional server authentication field (fwknop 2.6's client never sets it).
    pub server_auth: Option<String>,
    /// How long the server should keep the ports open, seconds (`-f`), for an access request.
    pub client_timeout: Option<u32>,
}

/// A message field fwknop would refuse, when encoding.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    /// Empty, longer than 48 bytes, or with a character fwknop refuses (`"/\[]:;|=,+*?<>`,
    /// control or non-ASCII).
    #[error("the username is empty, longer than 48 bytes, or has a character fwknop refuses")]
    Username,
    /// Empty, longer than 8 characters, or not printable ASCII without `:`.
    #[error("the version is empty, longer than 8 characters, or not printable ASCII without `:`")]
    Version,
    /// No port, or the access text reaches 256 characters.
    #[error("an access request needs 1 or more ports and fewer than 256 characters")]
    Access,
    /// Empty, not printable ASCII, or too long.
    #[error("the command is empty, not printable ASCII, or longer than 190 characters")]
    Command,
    /// A command message cannot carry NAT access or a client timeout.
    #[error("a command message carries no NAT access and no client timeout")]
    CommandExtras,
    /// The host is empty, longer than 70 characters, or has one of ` /?"'\,:`.
    #[error("the NAT host is empty, longer than 70 characters, or has one of ` /?\"'\\,:`")]
    Nat,
    /// Not printable ASCII, or too long.
    #[error("the server auth field is not printable ASCII or longer than 190 characters")]
    ServerAuth,
    /// Above 65536 seconds.
    #[error("the client timeout is above 65536 seconds")]
    ClientTimeout,
}

/// The longest field fwknop decodes (`MAX_SPA_MESSAGE_SIZE`), in base64 characters.
const MAX_FIELD: usize = 256;

/// The longest username field, in base64 characters.
const MAX_USERNAME_FIELD: usize = 64;

/// The longest version field.
const MAX_VERSION: usize = 8;

/// The longest timestamp field, in digits.
const MAX_TIMESTAMP: usize = 12;

/// The longest NAT host.
const MAX_HOST: usize = 70;

/// The largest client timeout fwknop reads (`2 << 15`).
const MAX_TIMEOUT: u32 = 65536;

impl Message {
    /// The message type these fields make.
    pub fn message_type(&self) -> MessageType {
        use MessageType::*;
        match (&self.request, &self.nat, self.client_timeout.is_some()) {
            (Request::Command(_), _, _) => Command,
            (Request::Access(_), None, false) => Access,
            (Request::Access(_), None, true) => ClientTimeoutAccess,
            (Request::Access(_), Some(nat), false) if nat.local => LocalNatAccess,
            (Request::Access(_), Some(_), false) => NatAccess,
            (Request::Access(_), Some(nat), true) if nat.local => ClientTimeoutLocalNatAccess,
            (Request::Access(_), Some(_), true) => ClientTimeoutNatAccess,
        }
    }

    /// The `IP,tcp/22` or `IP,command` text of the message field.
    pub fn request_text(&self) -> String {
        match &self.request {
            Request::Access(ports) => {
                let mut text = self.allow_ip.to_string();
                for access in ports {
                    text.push(',');
                    text.push_str(&access.to_string());
                }
                text
            }
            Request::Command(command) => format!("{},{command}", self.allow_ip),
        }
    }

    /// The text fwknop encrypts, before its digest: the fields joined with `:`.
    pub(super) fn encode_fields(&self) -> Result<String, FieldError> {
        self.check()?;
        let b64 = |s: &str| STANDARD_NO_PAD.encode(s);
        let mut text = format!(
            "{}:{}:{}:{}:{}:{}",
            self.random,
            b64(&self.username),
            self.timestamp,
            self.version,
            self.message_type().number(),
            b64(&self.request_text()),
        );
        if let Some(nat) = &self.nat {
            text.push(':');
            text.push_str(&b64(&format!("{},{}", nat.host, nat.port)));
        }
        if let Some(auth) = &self.server_auth {
            text.push(':');
            text.push_str(&b64(auth));
        }
        if let Some(timeout) = self.client_timeout {
            text.push(':');
            text.push_str(&timeout.to_string());
        }
        Ok(text)
    }

    /// Every field as fwknop's decoder would accept it back.
    fn check(&self) -> Result<(), FieldError> {
        let fits = |s: &str| STANDARD_NO_PAD.encode(s).len() <= MAX_FIELD;
        if !valid_username(self.username.as_bytes())
            || STANDARD_NO_PAD.encode(&self.username).len() > MAX_USERNAME_FIELD
        {
            return Err(FieldError::Username);
        }
        if self.version.is_empty()
            || self.version.len() > MAX_VERSION
            || !self.version.bytes().all(|b| printable(b) && b != b':')
        {
            return Err(FieldError::Version);
        }
        let text = self.request_text();
        match &self.request {
            Request::Access(ports) => {
                if ports.is_empty() || text.len() >= MAX_FIELD || !fits(&text) {
                    return Err(FieldError::Access);
                }
            }
            Request::Command(command) => {
                if command.is_empty() || !command.bytes().all(printable) || !fits(&text) {
                    return Err(FieldError::Command);
                }
                if self.nat.is_some() || self.client_timeout.is_some() {
                    return Err(FieldError::CommandExtras);
                }
            }
        }
        if let Some(nat) = &self.nat {
            let host = &nat.host;
            if host.is_empty()
                || host.len() > MAX_HOST
                || !host
                    .bytes()
                    .all(|b| printable(b) && !b" /?\"'\\,:".contains(&b))
            {
                return Err(FieldError::Nat);
            }
        }
        if let Some(auth) = &self.server_auth {
            if auth.is_empty() || !auth.bytes().all(printable) || !fits(auth) {
                return Err(FieldError::ServerAuth);
            }
        }
        if self.client_timeout.is_some_and(|t| t > MAX_TIMEOUT) {
            return Err(FieldError::ClientTimeout);
        }
        Ok(())
    }

    /// The fields of `text` (without its digest), as fwknop's `fko_decode_spa_data` reads
    /// them.
    pub(super) fn decode_fields(text: &str) -> Result<Message, SpaError> {
        let mut fields = text.split(':');
        let mut next = || fields.next().ok_or(SpaError::Fields);
        let random = Random::parse(next()?).ok_or(SpaError::Decrypt)?;
        let username = decode_username(next()?)?;
        let timestamp = decimal(next()?, MAX_TIMESTAMP).ok_or(SpaError::Timestamp)?;
        let version = next()?;
        if version.is_empty() || version.len() > MAX_VERSION {
            return Err(SpaError::Version);
        }
        let kind = u8::try_from(decimal(next()?, 2).ok_or(SpaError::MessageType)?)
            .ok()
            .and_then(MessageType::from_number)
            .ok_or(SpaError::MessageType)?;
        let (allow_ip, request) = decode_request(next()?, kind)?;
        let rest: Vec<&str> = fields.collect();
        // What follows the message: NAT access, then the server auth, then the timeout; only
        // the server auth is optional, and an empty one is none (as in fwknop).
        let nat_fields = usize::from(kind.has_nat());
        let timeout_fields = usize::from(kind.has_timeout());
        let required = nat_fields + timeout_fields;
        if rest.len() < required || rest.len() > required + 1 {
            return Err(SpaError::Fields);
        }
        let nat = match kind.has_nat() {
            true => Some(decode_nat(rest[0], kind)?),
            false => None,
        };
        let server_auth = match rest.len() > required {
            true => decode_server_auth(rest[nat_fields])?,
            false => None,
        };
        let client_timeout = match kind.has_timeout() {
            true => Some(
                decimal(rest[rest.len() - 1], MAX_FIELD)
                    .and_then(|t| u32::try_from(t).ok())
                    .filter(|&t| t <= MAX_TIMEOUT)
                    .ok_or(SpaError::ClientTimeout)?,
            ),
            false => None,
        };
        Ok(Message {
            random,
            username,
            timestamp,
            version: version.to_owned(),
            allow_ip,
            request,
            nat,
            server_auth,
            client_timeout,
        })
    }
}

/// Printable ASCII, what fwknop's decoder requires of the whole message (`isprint`).
pub(super) fn printable(b: u8) -> bool {
    (0x20..=0x7e).contains(&b)
}

/// fwknop's `validate_username`: printable ASCII without `"/\[]:;|=,+*?<>`.
fn valid_username(name: &[u8]) -> bool {
    !name.is_empty()
        && name
            .iter()
            .all(|&b| printable(b) && !b"\"/\\[]:;|=,+*?<>".contains(&b))
}

/// 1 to `max` ASCII digits.
fn decimal(s: &str, max: usize) -> Option<u64> {
    if s.is_empty() || s.len() > max || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    // 12 digits fit; a longer field (the timeout's) saturates, and is then out of range.
    Some(s.parse().unwrap_or(u64::MAX))
}

/// A base64 field of at most `max` characters, decoded to printable ASCII.
fn text_field(field: &str, max: usize) -> Option<String> {
    if field.len() > max {
        return None;
    }
    let bytes = STANDARD_NO_PAD.decode(field).ok()?;
    if !bytes.iter().copied().all(printable) {
        return None;
    }
    String::from_utf8(bytes).ok()
}

fn decode_username(field: &str) -> Result<String, SpaError> {
    text_field(field, MAX_USERNAME_FIELD)
        .filter(|name| valid_username(name.as_bytes()))
        .ok_or(SpaError::Username)
}

/// `IP,tcp/22,udp/53` or, for a command, `IP,command`.
fn decode_request(field: &str, kind: MessageType) -> Result<(Ipv4Addr, Request), SpaError> {
    let text = text_field(field, MAX_FIELD)
        .filter(|t| !t.is_empty() && t.len() < MAX_FIELD)
        .ok_or(SpaError::Access)?;
    let (ip, rest) = text.split_once(',').ok_or(SpaError::Access)?;
    let ip: Ipv4Addr = ip.parse().map_err(|_| SpaError::Access)?;
    if kind == MessageType::Command {
        if rest.is_empty() {
            return Err(SpaError::Access);
        }
        return Ok((ip, Request::Command(rest.to_owned())));
    }
    let ports = rest
        .split(',')
        .map(|spec| {
            let (proto, port) = spec.split_once('/')?;
            let proto = match proto {
                "tcp" => Proto::Tcp,
                "udp" => Proto::Udp,
                _ => return None,
            };
            Some(Access {
                proto,
                port: port_number(port)?,
            })
        })
        .collect::<Option<Vec<_>>>()
        .ok_or(SpaError::Access)?;
    Ok((ip, Request::Access(ports)))
}

/// fwknop's `have_port`: 1 to 5 digits, 1 to 65535.
fn port_number(s: &str) -> Option<Port> {
    decimal(s, 5)
        .and_then(|n| u16::try_from(n).ok())
        .and_then(Port::new)
}

fn decode_nat(field: &str, kind: MessageType) -> Result<Nat, SpaError> {
    let text = text_field(field, MAX_FIELD).ok_or(SpaError::Nat)?;
    let (host, port) = text.split_once(',').ok_or(SpaError::Nat)?;
    if host.is_empty() || host.len() > MAX_HOST || host.bytes().any(|b| b" /?\"'\\".contains(&b)) {
        return Err(SpaError::Nat);
    }
    Ok(Nat {
        host: host.to_owned(),
        port: port_number(port).ok_or(SpaError::Nat)?,
        local: matches!(
            kind,
            MessageType::LocalNatAccess | MessageType::ClientTimeoutLocalNatAccess
        ),
    })
}

fn decode_server_auth(field: &str) -> Result<Option<String>, SpaError> {
    if field.is_empty() {
        return Ok(None);
    }
    text_field(field, MAX_FIELD)
        .map(Some)
        .ok_or(SpaError::ServerAuth)
}

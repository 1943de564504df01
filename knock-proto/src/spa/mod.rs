//! fwknop's Single Packet Authorization, as fwknop 2.6 speaks it (FKO protocol 3.0.0): one UDP
//! datagram (port 62201 by default) whose payload is an encrypted, authenticated message
//! asking to open ports for an address. With it a `knock-server` can stand in for `fwknopd`
//! and `knock` for `fwknop`.
//!
//! [`decode`] turns a datagram's payload into a [`Message`] or a [`SpaError`] (one small `Copy`
//! reason per way a packet is refused, for the caller's counters); [`encode`] builds the
//! payload from a [`Message`], the [`Keys`] and the random salt, which the caller draws: nothing
//! here reads a clock or a random number generator. [`Message::check_age`] judges the
//! timestamp against the `now` it is given, and [`replay_digest`] is what a server remembers
//! to refuse a packet seen before.
//!
//! Only Rijndael (symmetric) keys: fwknop's GnuPG mode is not supported, and nor are the
//! `-M` modes other than CBC and legacy (ECB, CFB, OFB, CTR, PCBC), nor SPA over HTTP.
//!
//! PROTOCOL.md's "fwknop's Single Packet Authorization" describes the packet and the order of
//! the receiver's checks: `decode` makes them in that order, each refusal under its own
//! [`SpaError`], the HMAC first so that a packet under another stanza's keys costs one HMAC.
//! The window and the replay digest are the caller's to apply, since they need its clock and
//! its record: [`Message::check_age`], then [`replay_digest`], kept until
//! [`Message::replay_horizon`].

mod cipher;
mod keys;
mod message;

pub use keys::{Digest, KeyError, Keys, MAX_HMAC_KEY, MAX_RIJNDAEL_KEY, Mode, UnknownDigest};
pub use message::{Access, FieldError, Message, MessageType, Nat, Random, Request};

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD_NO_PAD;

use cipher::DecryptError;

/// fwknopd's default UDP port.
pub const DEFAULT_PORT: u16 = 62201;

/// The shortest payload fwknopd reads (`MIN_SPA_DATA_SIZE`).
pub const MIN_PACKET: usize = 140;

/// The longest payload fwknopd reads (`MAX_SPA_PACKET_LEN`).
pub const MAX_PACKET: usize = 1500;

/// fwknopd's default window for the timestamp (`MAX_SPA_PACKET_AGE`), seconds.
pub const DEFAULT_MAX_AGE: u64 = 120;

/// The base64 of `Salted__`'s first 7½ bytes, cut from the front of every packet.
const SALTED_B64: &str = "U2FsdGVkX1";

/// The fewest `:` in a decrypted message: six fields and the digest.
const MIN_SEPARATORS: usize = 6;

/// Why a payload is not an SPA message under these keys. Small and `Copy`: it is returned once
/// per refused packet, and the caller counts it ([`SpaError::ALL`], [`SpaError::as_str`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SpaError {
    /// Shorter than 140 bytes or longer than 1500: fwknopd's bounds.
    Length,
    /// Starts with `U2FsdGVkX1`: a seen packet with its prefix put back to get past the replay
    /// cache (fwknopd refuses these too).
    SaltPrefix,
    /// A byte outside base64's alphabet.
    NotBase64,
    /// The HMAC is wrong: the wrong HMAC key, the wrong HMAC digest, or a changed packet.
    Hmac,
    /// Not whole AES blocks after the salt (or not base64 that decodes).
    Ciphertext,
    /// The padding is wrong or the text does not start with 16 digits and `:`: the wrong
    /// Rijndael key, or, without an HMAC, a changed packet.
    Decrypt,
    /// The decrypted text has a byte outside printable ASCII.
    NotText,
    /// Too few or too many `:`-separated fields for the message type.
    Fields,
    /// The digest has no known length, or does not match.
    Digest,
    /// The username field.
    Username,
    /// The timestamp field.
    Timestamp,
    /// The version field.
    Version,
    /// The message type field.
    MessageType,
    /// The access (or command) field: `IP,tcp/22`.
    Access,
    /// The NAT access field: `host,port`.
    Nat,
    /// The server auth field.
    ServerAuth,
    /// The client timeout field.
    ClientTimeout,
}

impl SpaError {
    /// Every reason, in declaration order: index a counter array with [`SpaError::index`].
    pub const ALL: [SpaError; 17] = [
        SpaError::Length,
        SpaError::SaltPrefix,
        SpaError::NotBase64,
        SpaError::Hmac,
        SpaError::Ciphertext,
        SpaError::Decrypt,
        SpaError::NotText,
        SpaError::Fields,
        SpaError::Digest,
        SpaError::Username,
        SpaError::Timestamp,
        SpaError::Version,
        SpaError::MessageType,
        SpaError::Access,
        SpaError::Nat,
        SpaError::ServerAuth,
        SpaError::ClientTimeout,
    ];

    /// A short, stable label for logs and counters.
    pub const fn as_str(self) -> &'static str {
        match self {
            SpaError::Length => "spa-length",
            SpaError::SaltPrefix => "spa-salt-prefix",
            SpaError::NotBase64 => "spa-not-base64",
            SpaError::Hmac => "spa-hmac",
            SpaError::Ciphertext => "spa-ciphertext",
            SpaError::Decrypt => "spa-decrypt",
            SpaError::NotText => "spa-not-text",
            SpaError::Fields => "spa-fields",
            SpaError::Digest => "spa-digest",
            SpaError::Username => "spa-username",
            SpaError::Timestamp => "spa-timestamp",
            SpaError::Version => "spa-version",
            SpaError::MessageType => "spa-message-type",
            SpaError::Access => "spa-access",
            SpaError::Nat => "spa-nat",
            SpaError::ServerAuth => "spa-server-auth",
            SpaError::ClientTimeout => "spa-client-timeout",
        }
    }

    /// This reason's position in [`SpaError::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for SpaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::error::Error for SpaError {}

/// The message in `packet` (a UDP payload) under `keys`.
///
/// The HMAC (when `keys` has one) is checked first, in constant time, so a packet under
/// another stanza's keys costs one HMAC. Never panics, whatever the bytes.
pub fn decode(packet: &[u8], keys: &Keys) -> Result<Message, SpaError> {
    if packet.len() < MIN_PACKET || packet.len() > MAX_PACKET {
        return Err(SpaError::Length);
    }
    if packet.starts_with(SALTED_B64.as_bytes()) {
        return Err(SpaError::SaltPrefix);
    }
    if !packet
        .iter()
        .all(|&b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
    {
        return Err(SpaError::NotBase64);
    }
    let ciphertext = match keys.hmac() {
        Some((key, digest)) => {
            let (body, tag) = packet.split_at(packet.len() - digest.base64_len());
            let tag = STANDARD_NO_PAD.decode(tag).map_err(|_| SpaError::Hmac)?;
            if !digest.hmac_verify(key, &[SALTED_B64.as_bytes(), body], &tag) {
                return Err(SpaError::Hmac);
            }
            body
        }
        None => packet,
    };
    let mut text = String::with_capacity(SALTED_B64.len() + ciphertext.len());
    text.push_str(SALTED_B64);
    text.push_str(std::str::from_utf8(ciphertext).expect("base64 is ASCII"));
    let mut data = STANDARD_NO_PAD
        .decode(&text)
        .map_err(|_| SpaError::Ciphertext)?;
    let plain = cipher::decrypt(&mut data, keys).map_err(|e| match e {
        DecryptError::Shape => SpaError::Ciphertext,
        DecryptError::Padding => SpaError::Decrypt,
    })?;
    decode_text(plain)
}

/// The message in a decrypted text (16 digits, the fields, the digest): what [`decode`] reads
/// once the HMAC and the decryption are done.
pub fn decode_text(plain: &[u8]) -> Result<Message, SpaError> {
    // fwknop's test of a good decryption, before anything else is read.
    if plain.len() < 17 || !plain[..16].iter().all(u8::is_ascii_digit) || plain[16] != b':' {
        return Err(SpaError::Decrypt);
    }
    if !plain.iter().copied().all(message::printable) {
        return Err(SpaError::NotText);
    }
    let plain = std::str::from_utf8(plain).expect("printable ASCII");
    if plain.bytes().filter(|&b| b == b':').count() < MIN_SEPARATORS {
        return Err(SpaError::Fields);
    }
    let (fields, digest) = plain.rsplit_once(':').expect("has a ':'");
    let matches = Digest::of_base64_len(digest.len())
        .iter()
        .any(|d| STANDARD_NO_PAD.encode(d.hash(fields.as_bytes())) == digest);
    if !matches {
        return Err(SpaError::Digest);
    }
    Message::decode_fields(fields)
}

/// Why [`encode`] cannot build a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum EncodeError {
    /// A field fwknop would refuse.
    #[error(transparent)]
    Field(#[from] FieldError),
    /// The packet would be shorter than 140 bytes or longer than 1500: fwknopd would drop it.
    #[error("the packet would be {0} bytes; fwknopd reads 140 to 1500")]
    Length(usize),
}

/// The UDP payload that carries `message` under `keys`, its digest `digest` (fwknop's `-m`,
/// SHA-256 by default), encrypted with `salt` (8 random bytes the caller draws).
pub fn encode(
    message: &Message,
    keys: &Keys,
    digest: Digest,
    salt: [u8; 8],
) -> Result<Vec<u8>, EncodeError> {
    let mut plain = message.encode_fields()?;
    let hash = digest.hash(plain.as_bytes());
    plain.push(':');
    plain.push_str(&STANDARD_NO_PAD.encode(hash));
    let sealed = cipher::encrypt(plain.as_bytes(), keys, &salt);
    let text = STANDARD_NO_PAD.encode(sealed);
    debug_assert!(text.starts_with(SALTED_B64));
    let mut packet = text.as_bytes()[SALTED_B64.len()..].to_vec();
    if let Some((key, hmac_digest)) = keys.hmac() {
        let tag = hmac_digest.hmac(key, &[SALTED_B64.as_bytes(), &packet]);
        packet.extend_from_slice(STANDARD_NO_PAD.encode(tag).as_bytes());
    }
    if packet.len() < MIN_PACKET || packet.len() > MAX_PACKET {
        return Err(EncodeError::Length(packet.len()));
    }
    Ok(packet)
}

/// A message's timestamp outside the server's window.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("timestamp {offset:+} s from now, outside the {window} s window")]
pub struct Stale {
    /// The message's timestamp minus now, seconds: negative for a message from the past.
    pub offset: i64,
    /// The window, seconds either way.
    pub window: u64,
}

impl Message {
    /// The timestamp minus `now` (Unix seconds): negative when the message is from the past.
    pub fn offset(&self, now: u64) -> i64 {
        let diff = i128::from(self.timestamp) - i128::from(now);
        diff.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64
    }

    /// Whether the timestamp is within `window` seconds of `now` (Unix seconds), either way, as
    /// fwknopd's `MAX_SPA_PACKET_AGE` ([`DEFAULT_MAX_AGE`]).
    pub fn check_age(&self, now: u64, window: u64) -> Result<(), Stale> {
        let offset = self.offset(now);
        if offset.unsigned_abs() > window {
            return Err(Stale { offset, window });
        }
        Ok(())
    }

    /// The Unix second after which [`Message::check_age`] refuses this message with `window`:
    /// until then its packet's [`replay_digest`] must be remembered, after it may be
    /// forgotten.
    pub fn replay_horizon(&self, window: u64) -> u64 {
        self.timestamp.saturating_add(window)
    }
}

/// What a server remembers of a packet to refuse it again: the SHA-256 of the payload as
/// received, written (as in fwknopd's `digest.cache`) as 43 characters of base64.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ReplayDigest(pub [u8; 32]);

/// The [`ReplayDigest`] of a payload.
pub fn replay_digest(packet: &[u8]) -> ReplayDigest {
    let hash = Digest::Sha256.hash(packet);
    ReplayDigest(hash.as_ref().try_into().expect("32 bytes"))
}

impl fmt::Display for ReplayDigest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&STANDARD_NO_PAD.encode(self.0))
    }
}

/// Text that is not 43 characters of base64 of 32 bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not a replay digest (43 characters of base64)")]
pub struct BadReplayDigest;

impl FromStr for ReplayDigest {
    type Err = BadReplayDigest;

    fn from_str(s: &str) -> Result<ReplayDigest, BadReplayDigest> {
        let bytes = STANDARD_NO_PAD.decode(s).map_err(|_| BadReplayDigest)?;
        Ok(ReplayDigest(bytes.try_into().map_err(|_| BadReplayDigest)?))
    }
}

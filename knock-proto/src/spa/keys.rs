//! The keys of one fwknop access stanza, and the digests fwknop names.
//!
//! fwknopd's `access.conf` gives each stanza a Rijndael key (`KEY` as text or `KEY_BASE64`), an
//! `ENCRYPTION_MODE` and optionally an HMAC key (`HMAC_KEY` or `HMAC_KEY_BASE64`) with its
//! `HMAC_DIGEST_TYPE`. [`Keys`] holds the bytes those decode to; reading the file is the
//! caller's.

use std::fmt;
use std::str::FromStr;

use hmac::{Hmac, Mac};
use sha2::Digest as _;

/// The longest Rijndael key fwknop takes: its key derivation reads at most 32 bytes.
pub const MAX_RIJNDAEL_KEY: usize = 32;

/// The longest HMAC key fwknop takes (`MAX_DIGEST_BLOCK_LEN`, SHA3-256's block).
pub const MAX_HMAC_KEY: usize = 136;

/// How the AES key and IV come from the Rijndael key (fwknop's `-M`, `ENCRYPTION_MODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// AES-256-CBC, key and IV from OpenSSL's `EVP_BytesToKey` over the key bytes and the salt:
    /// fwknop's default since 2.5.
    #[default]
    Cbc,
    /// The same, with a key shorter than 16 bytes first padded with ASCII `0` to 16 bytes, as
    /// fwknop before 2.5 did (`-M legacy`, `ENCRYPTION_MODE legacy`).
    LegacyIv,
}

/// A hash fwknop offers, for the digest inside a message (`-m`) and for the HMAC
/// (`--hmac-digest-type`, `HMAC_DIGEST_TYPE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Digest {
    /// MD5 (22 characters of base64).
    Md5,
    /// SHA-1 (27 characters).
    Sha1,
    /// SHA-256 (43 characters): fwknop's default for both.
    Sha256,
    /// SHA-384 (64 characters).
    Sha384,
    /// SHA-512 (86 characters).
    Sha512,
    /// SHA3-256 (43 characters).
    Sha3_256,
    /// SHA3-512 (86 characters).
    Sha3_512,
}

/// A digest or HMAC value: up to 64 bytes, without allocating.
#[derive(Clone, Copy)]
pub(super) struct Hash {
    bytes: [u8; 64],
    len: usize,
}

impl AsRef<[u8]> for Hash {
    fn as_ref(&self) -> &[u8] {
        &self.bytes[..self.len]
    }
}

impl Hash {
    fn new(out: &[u8]) -> Hash {
        let mut bytes = [0; 64];
        bytes[..out.len()].copy_from_slice(out);
        Hash {
            bytes,
            len: out.len(),
        }
    }
}

/// Runs `$body` with `$d` the RustCrypto type of `$digest`.
macro_rules! with_digest {
    ($digest:expr, $d:ident => $body:expr) => {
        match $digest {
            Digest::Md5 => {
                type $d = md5::Md5;
                $body
            }
            Digest::Sha1 => {
                type $d = sha1::Sha1;
                $body
            }
            Digest::Sha256 => {
                type $d = sha2::Sha256;
                $body
            }
            Digest::Sha384 => {
                type $d = sha2::Sha384;
                $body
            }
            Digest::Sha512 => {
                type $d = sha2::Sha512;
                $body
            }
            Digest::Sha3_256 => {
                type $d = sha3::Sha3_256;
                $body
            }
            Digest::Sha3_512 => {
                type $d = sha3::Sha3_512;
                $body
            }
        }
    };
}

impl Digest {
    /// Every digest, in fwknop's order.
    pub const ALL: [Digest; 7] = [
        Digest::Md5,
        Digest::Sha1,
        Digest::Sha256,
        Digest::Sha384,
        Digest::Sha512,
        Digest::Sha3_256,
        Digest::Sha3_512,
    ];

    /// fwknop's name for it (`sha256`, `sha3_256`), as its options and `access.conf` spell it.
    pub const fn as_str(self) -> &'static str {
        match self {
            Digest::Md5 => "md5",
            Digest::Sha1 => "sha1",
            Digest::Sha256 => "sha256",
            Digest::Sha384 => "sha384",
            Digest::Sha512 => "sha512",
            Digest::Sha3_256 => "sha3_256",
            Digest::Sha3_512 => "sha3_512",
        }
    }

    /// The length of its value in bytes.
    pub const fn output_len(self) -> usize {
        match self {
            Digest::Md5 => 16,
            Digest::Sha1 => 20,
            Digest::Sha256 | Digest::Sha3_256 => 32,
            Digest::Sha384 => 48,
            Digest::Sha512 | Digest::Sha3_512 => 64,
        }
    }

    /// The length of its value as fwknop writes it: base64 without `=`.
    pub const fn base64_len(self) -> usize {
        (self.output_len() * 4).div_ceil(3)
    }

    /// The digests whose base64 is `len` characters long, the SHA-2 one first: fwknop tells a
    /// message's digest by its length and tries SHA-3 when SHA-2 does not match.
    pub(super) fn of_base64_len(len: usize) -> &'static [Digest] {
        match len {
            22 => &[Digest::Md5],
            27 => &[Digest::Sha1],
            43 => &[Digest::Sha256, Digest::Sha3_256],
            64 => &[Digest::Sha384],
            86 => &[Digest::Sha512, Digest::Sha3_512],
            _ => &[],
        }
    }

    /// The digest of `data`.
    pub(super) fn hash(self, data: &[u8]) -> Hash {
        with_digest!(self, D => Hash::new(&D::digest(data)))
    }

    /// The HMAC of the concatenated `parts` under `key`.
    pub(super) fn hmac(self, key: &[u8], parts: &[&[u8]]) -> Hash {
        with_digest!(self, D => {
            let mut mac = <Hmac<D> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            for part in parts {
                mac.update(part);
            }
            Hash::new(&mac.finalize().into_bytes())
        })
    }

    /// Whether `tag` is the HMAC of the concatenated `parts` under `key`, compared in constant
    /// time (the hmac crate's `verify_slice`).
    pub(super) fn hmac_verify(self, key: &[u8], parts: &[&[u8]], tag: &[u8]) -> bool {
        with_digest!(self, D => {
            let mut mac = <Hmac<D> as Mac>::new_from_slice(key).expect("HMAC takes any key length");
            for part in parts {
                mac.update(part);
            }
            mac.verify_slice(tag).is_ok()
        })
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A digest name fwknop does not know.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "unknown digest `{0}`: fwknop's are md5, sha1, sha256, sha384, sha512, sha3_256 and sha3_512"
)]
pub struct UnknownDigest(pub String);

impl FromStr for Digest {
    type Err = UnknownDigest;

    /// fwknop's names, in any case (`SHA256` in `access.conf`, `sha256` on its command line).
    fn from_str(s: &str) -> Result<Digest, UnknownDigest> {
        Digest::ALL
            .into_iter()
            .find(|d| d.as_str().eq_ignore_ascii_case(s))
            .ok_or_else(|| UnknownDigest(s.to_owned()))
    }
}

/// A key fwknop would refuse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// The Rijndael key is empty or longer than 32 bytes.
    #[error("the Rijndael key is {0} bytes long; fwknop takes 1 to 32")]
    RijndaelLength(usize),
    /// The HMAC key is empty or longer than 136 bytes.
    #[error("the HMAC key is {0} bytes long; fwknop takes 1 to 136")]
    HmacLength(usize),
}

/// What one access stanza decrypts and authenticates with.
#[derive(Clone, PartialEq, Eq)]
pub struct Keys {
    rijndael: Vec<u8>,
    mode: Mode,
    hmac: Option<(Vec<u8>, Digest)>,
}

impl Keys {
    /// Keys with a Rijndael key (the bytes of `KEY`, or `KEY_BASE64` decoded) and no HMAC.
    pub fn new(rijndael: &[u8], mode: Mode) -> Result<Keys, KeyError> {
        if rijndael.is_empty() || rijndael.len() > MAX_RIJNDAEL_KEY {
            return Err(KeyError::RijndaelLength(rijndael.len()));
        }
        Ok(Keys {
            rijndael: rijndael.to_vec(),
            mode,
            hmac: None,
        })
    }

    /// These keys with an HMAC key (`HMAC_KEY`, or `HMAC_KEY_BASE64` decoded) and its digest:
    /// packets must then carry an HMAC, checked before anything else.
    pub fn with_hmac(mut self, key: &[u8], digest: Digest) -> Result<Keys, KeyError> {
        if key.is_empty() || key.len() > MAX_HMAC_KEY {
            return Err(KeyError::HmacLength(key.len()));
        }
        self.hmac = Some((key.to_vec(), digest));
        Ok(self)
    }

    /// The Rijndael key's bytes.
    pub fn rijndael(&self) -> &[u8] {
        &self.rijndael
    }

    /// The key derivation mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The HMAC key and its digest, if packets carry an HMAC.
    pub fn hmac(&self) -> Option<(&[u8], Digest)> {
        self.hmac
            .as_ref()
            .map(|(key, digest)| (key.as_slice(), *digest))
    }
}

/// Never the key bytes: keys end up in logs through `{:?}` otherwise.
impl fmt::Debug for Keys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keys")
            .field("rijndael", &format_args!("<{} bytes>", self.rijndael.len()))
            .field("mode", &self.mode)
            .field(
                "hmac",
                &self
                    .hmac
                    .as_ref()
                    .map(|(key, digest)| format!("<{} bytes> {digest}", key.len())),
            )
            .finish()
    }
}

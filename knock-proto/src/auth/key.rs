//! The 256-bit key a rotating door shares with its clients, and its text form.
//!
//! A key file holds the key as standard base64 with padding (RFC 4648 section 4): 44
//! characters, optionally followed by a newline. Leading and trailing whitespace is ignored;
//! anything else is an error, so a truncated or mangled key is never used.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// Bytes in a key.
pub const KEY_BYTES: usize = 32;

/// A door's secret key. `Debug` never shows it.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_BYTES]);

impl Key {
    /// The key with these bytes (the caller draws them from the OS's random source).
    pub const fn from_bytes(bytes: [u8; KEY_BYTES]) -> Key {
        Key(bytes)
    }

    /// The raw key, the HMAC key of every derivation.
    pub fn as_bytes(&self) -> &[u8; KEY_BYTES] {
        &self.0
    }

    /// The text form written to key files: 44 characters of base64, no newline.
    pub fn to_text(&self) -> String {
        STANDARD.encode(self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Key(..)")
    }
}

/// Why a key's text is not a key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Nothing but whitespace.
    #[error("the key is empty: write one with `knock-server keygen FILE`")]
    Empty,
    /// Not base64.
    #[error("the key is not base64 (44 characters like `knock-server keygen` writes)")]
    NotBase64,
    /// Base64 of the wrong length.
    #[error("the key is {0} bytes long; a key is 32 bytes (44 characters of base64)")]
    WrongLength(usize),
}

impl FromStr for Key {
    type Err = KeyError;

    fn from_str(text: &str) -> Result<Key, KeyError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(KeyError::Empty);
        }
        let bytes = STANDARD.decode(text).map_err(|_| KeyError::NotBase64)?;
        let bytes: [u8; KEY_BYTES] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| KeyError::WrongLength(b.len()))?;
        Ok(Key(bytes))
    }
}

/// Why a key file's permission bits (`st_mode`) make it unusable: anyone but its owner may read
/// or write it, as ssh refuses private keys. `None` when only the owner has access.
pub fn mode_problem(file: &str, mode: u32) -> Option<String> {
    (mode & 0o077 != 0).then(|| {
        format!(
            "{file} is mode {:04o}: anyone but its owner can read or write it, so the key must be \
             taken as known; run `chmod 600 {file}` (and make a new key if others may have read it)",
            mode & 0o7777
        )
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_round_trips_and_ignores_surrounding_whitespace() {
        let key = Key::from_bytes(std::array::from_fn(|i| i as u8));
        let text = key.to_text();
        assert_eq!(text, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=");
        assert_eq!(format!("  {text}\n").parse::<Key>(), Ok(key));
    }

    #[test]
    fn bad_text_says_why() {
        assert_eq!("".parse::<Key>(), Err(KeyError::Empty));
        assert_eq!("not base64!".parse::<Key>(), Err(KeyError::NotBase64));
        assert_eq!("AAEC".parse::<Key>(), Err(KeyError::WrongLength(3)));
    }

    #[test]
    fn only_owner_only_modes_are_fine() {
        assert_eq!(mode_problem("k", 0o100600), None);
        assert_eq!(mode_problem("k", 0o400), None);
        assert_eq!(
            mode_problem("/k", 0o100640).unwrap(),
            "/k is mode 0640: anyone but its owner can read or write it, so the key must be \
             taken as known; run `chmod 600 /k` (and make a new key if others may have read it)"
        );
        assert!(mode_problem("k", 0o602).is_some());
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", Key::from_bytes([7; 32])), "Key(..)");
    }
}

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

/// Whether a key file may be used: the file and every directory above it are its owner's (or
/// root's) alone, as ssh demands of a private key ([`crate::trust`] with
/// [`Access::Secret`](crate::trust::Access::Secret)). `Err` is the whole message, naming the
/// path and the fix, and, when others may have read the key, that a new one is due.
#[cfg(unix)]
pub fn check_file(path: &std::path::Path) -> Result<(), String> {
    crate::trust::check(path, crate::trust::Access::Secret).map_err(|d| {
        if d.exposed() {
            format!("{d} (and make a new key if others may have read it)")
        } else {
            d.to_string()
        }
    })
}

/// The permission-bit part of [`check_file`], for a caller with a mode and no file to walk (the
/// fuzz target): why a key file with this `st_mode` is refused, or `None` when only its owner
/// may read or write it. [`crate::trust::decide`] decides, on the file alone.
#[cfg(unix)]
pub fn mode_problem(file: &str, mode: u32) -> Option<String> {
    let fact = crate::trust::Fact {
        path: file.into(),
        uid: 0,
        // The permission bits of a regular file, whatever type `mode` says.
        mode: 0o100_000 | (mode & 0o7777),
        target: true,
    };
    crate::trust::decide(
        std::path::Path::new(file),
        &[fact],
        crate::trust::Access::Secret,
        0,
    )
    .err()
    .map(|d| d.to_string())
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

    #[cfg(unix)]
    #[test]
    fn only_owner_only_key_files_are_fine() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "x").unwrap();
        let chmod = |mode| {
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        };
        for mode in [0o600, 0o400] {
            chmod(mode);
            assert_eq!(check_file(&path), Ok(()));
        }
        chmod(0o640);
        let k = path.display();
        assert_eq!(
            check_file(&path).unwrap_err(),
            format!(
                "{k} is mode 0640: anyone but its owner can read or write it; run `chmod 600 \
                 {k}` (and make a new key if others may have read it)"
            )
        );
        chmod(0o602);
        assert_eq!(
            check_file(&path).unwrap_err(),
            format!(
                "{k} is mode 0602: anyone but its owner can read or write it; run `chmod 600 {k}`"
            )
        );
        chmod(0o600);
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_file(&path).unwrap_err();
        assert!(
            e.ends_with(&format!("run `chmod go-w {}`", dir.path().display())),
            "{e}"
        );
    }

    #[cfg(unix)]
    #[test]
    fn mode_problem_refuses_exactly_the_modes_that_let_others_in() {
        for mode in 0..0o10_000 {
            assert_eq!(
                mode_problem("k", mode).is_some(),
                mode & 0o077 != 0,
                "{mode:o}"
            );
        }
        assert_eq!(
            mode_problem("/k", 0o100_640).unwrap(),
            "/k is mode 0640: anyone but its owner can read or write it; run `chmod 600 /k`"
        );
        assert_eq!(
            mode_problem("k", 0o040_600),
            None,
            "the type is not its business"
        );
    }

    #[test]
    fn debug_hides_the_key() {
        assert_eq!(format!("{:?}", Key::from_bytes([7; 32])), "Key(..)");
    }
}

//! fwknop's Rijndael: AES-256-CBC in OpenSSL's `enc` format (`Salted__`, the 8-byte salt, the
//! ciphertext), key and IV from `EVP_BytesToKey` with MD5 and one round.

use aes::Aes256;
use aes::cipher::block_padding::Pkcs7;
use aes::cipher::{BlockDecryptMut, BlockEncryptMut, KeyIvInit};
use md5::{Digest as _, Md5};

use super::keys::{Keys, Mode};

/// The start of OpenSSL's salted format.
pub(super) const SALTED: &[u8; 8] = b"Salted__";

/// AES's block, in bytes.
const BLOCK: usize = 16;

/// The shortest key `LegacyIv` leaves unpadded.
const LEGACY_MIN_KEY: usize = 16;

/// The AES-256 key and the IV for `key` and `salt`: `EVP_BytesToKey(MD5, count 1)`, that is
/// `D1 = MD5(key ‖ salt)`, `Di = MD5(Di-1 ‖ key ‖ salt)`, key = D1 ‖ D2, IV = D3.
pub(super) fn derive(key: &[u8], mode: Mode, salt: &[u8; 8]) -> ([u8; 32], [u8; 16]) {
    let mut padded = [b'0'; LEGACY_MIN_KEY];
    let key = if mode == Mode::LegacyIv && key.len() < LEGACY_MIN_KEY {
        padded[..key.len()].copy_from_slice(key);
        &padded[..]
    } else {
        key
    };
    let mut out = [0u8; 48];
    let mut previous: Option<[u8; 16]> = None;
    for chunk in out.chunks_mut(16) {
        let mut md5 = Md5::new();
        if let Some(previous) = previous {
            md5.update(previous);
        }
        md5.update(key);
        md5.update(salt);
        let digest: [u8; 16] = md5.finalize().into();
        chunk.copy_from_slice(&digest);
        previous = Some(digest);
    }
    let mut aes_key = [0; 32];
    let mut iv = [0; 16];
    aes_key.copy_from_slice(&out[..32]);
    iv.copy_from_slice(&out[32..]);
    (aes_key, iv)
}

/// `plaintext` encrypted as fwknop does: `Salted__`, `salt`, AES-256-CBC with PKCS#7 padding.
pub(super) fn encrypt(plaintext: &[u8], keys: &Keys, salt: &[u8; 8]) -> Vec<u8> {
    let (key, iv) = derive(keys.rijndael(), keys.mode(), salt);
    let padded_len = (plaintext.len() / BLOCK + 1) * BLOCK;
    let mut out = Vec::with_capacity(16 + padded_len);
    out.extend_from_slice(SALTED);
    out.extend_from_slice(salt);
    out.extend_from_slice(plaintext);
    out.resize(16 + padded_len, 0);
    cbc::Encryptor::<Aes256>::new(&key.into(), &iv.into())
        .encrypt_padded_mut::<Pkcs7>(&mut out[16..], plaintext.len())
        .expect("the buffer has room for the padding");
    out
}

/// Why a ciphertext does not decrypt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum DecryptError {
    /// Not a salt block and whole AES blocks.
    Shape,
    /// The padding is wrong: the wrong key, or a damaged ciphertext.
    Padding,
}

/// The plaintext of `data` (`Salted__`, salt, ciphertext), decrypted in place.
///
/// The caller put most of `Salted__` back itself, but the last 4 bits of its `_` share the
/// packet's first base64 character with the salt: fwknop ignores them, so without an HMAC two
/// packets differing there decrypt alike and dodge the replay cache. They are checked here.
pub(super) fn decrypt<'a>(data: &'a mut [u8], keys: &Keys) -> Result<&'a [u8], DecryptError> {
    if data.len() < 2 * BLOCK || data.len() % BLOCK != 0 || !data.starts_with(SALTED) {
        return Err(DecryptError::Shape);
    }
    let (header, body) = data.split_at_mut(BLOCK);
    let salt: [u8; 8] = header[8..].try_into().expect("8 bytes");
    let (key, iv) = derive(keys.rijndael(), keys.mode(), &salt);
    cbc::Decryptor::<Aes256>::new(&key.into(), &iv.into())
        .decrypt_padded_mut::<Pkcs7>(body)
        .map_err(|_| DecryptError::Padding)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `openssl enc -aes-256-cbc -md md5 -pass pass:fwknop -S 0001020304050607 -P` prints
    /// this key and IV.
    #[test]
    fn derive_is_openssl_evp_bytes_to_key() {
        let (key, iv) = derive(b"fwknop", Mode::Cbc, &[0, 1, 2, 3, 4, 5, 6, 7]);
        let hex = |b: &[u8]| b.iter().map(|b| format!("{b:02X}")).collect::<String>();
        assert_eq!(
            hex(&key),
            "7BC864FB4124C2D1E5AC5B4594E4A04D8528129BEC923A998C8F79814025C6FB"
        );
        assert_eq!(hex(&iv), "E271FC1A2727B4C81D223A60F640C8C3");
    }

    #[test]
    fn round_trip_and_wrong_key() {
        let keys = Keys::new(b"key", Mode::Cbc).unwrap();
        let other = Keys::new(b"kez", Mode::Cbc).unwrap();
        let salt = [9; 8];
        for len in [0, 1, 15, 16, 17, 100] {
            let plain: Vec<u8> = (0..len as u8).collect();
            let mut sealed = encrypt(&plain, &keys, &salt);
            assert_eq!(&sealed[..8], SALTED);
            assert_eq!(sealed.len() % 16, 0);
            let mut copy = sealed.clone();
            assert_eq!(decrypt(&mut sealed, &keys).unwrap(), &plain[..]);
            // A wrong key mostly fails on the padding; when it does not, the text is garbage.
            if let Ok(garbage) = decrypt(&mut copy, &other) {
                assert_ne!(garbage, &plain[..]);
            }
        }
    }

    #[test]
    fn legacy_pads_short_keys_with_zeros() {
        let salt = [1; 8];
        assert_eq!(
            derive(b"abc", Mode::LegacyIv, &salt),
            derive(b"abc0000000000000", Mode::Cbc, &salt)
        );
        let long = b"0123456789abcdef0";
        assert_eq!(
            derive(long, Mode::LegacyIv, &salt),
            derive(long, Mode::Cbc, &salt)
        );
    }
}

//! Fuzzes fwknop SPA decoding: the first byte picks what the rest is, a packet under keys with
//! an HMAC, a packet under keys without one, or a decrypted text (to reach the fields, which
//! random bytes never decrypt to).
//!
//! Besides "never panics": any message that decodes and that `encode` takes back decodes again
//! to the same message.
#![no_main]

use knock_proto::spa::{Digest, Keys, Mode, decode, decode_text, encode};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let plain = Keys::new(&[7; 32], Mode::Cbc).expect("a 32-byte key");
    let hmac = plain
        .clone()
        .with_hmac(&[9; 64], Digest::Sha256)
        .expect("a 64-byte key");
    let (decoded, keys) = match pick % 3 {
        0 => (decode(rest, &hmac), hmac),
        1 => (decode(rest, &plain), plain),
        _ => (decode_text(rest), plain),
    };
    if let Ok(message) = decoded {
        if let Ok(packet) = encode(&message, &keys, Digest::Sha256, [pick; 8]) {
            assert_eq!(decode(&packet, &keys), Ok(message));
        }
    }
});

//! Fuzzes the knockd.conf parser (and the one-time sequence file parser, which reads the same
//! kind of lines) with arbitrary bytes.
//!
//! Besides "never panics", it checks what must hold for any input: `parse_bytes` and `parse`
//! agree on valid UTF-8, every error points inside the file, an accepted config has uniquely
//! named doors with a sequence each, and consuming one-time sequences changes exactly one
//! character per step into `#`.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use knock_proto::config::{self, Config, Diagnostics};
use knock_proto::onetime::OneTimeSequences;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.conf");
    let from_bytes = config::parse_bytes(path, data);
    check(&from_bytes, data.split(|b| *b == b'\n').count());
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let direct = config::knockd::parse(path, text);
    assert_eq!(direct, from_bytes, "parse_bytes and parse disagree");

    if let Ok(mut seqs) = OneTimeSequences::parse(path, text) {
        while seqs.current().is_some() {
            let before = seqs.text().to_owned();
            let Some(after) = seqs.consume() else {
                panic!("current() is Some but consume() gave None");
            };
            // Exactly one character, the first of a line, became `#`; nothing else moved.
            let i = before
                .bytes()
                .zip(after.bytes())
                .position(|(a, b)| a != b)
                .unwrap_or(0);
            let width = before.len() + 1 - after.len();
            assert_eq!(after.as_bytes()[i], b'#');
            assert!(i == 0 || before.as_bytes()[i - 1] == b'\n');
            assert_eq!(before[..i], after[..i]);
            assert_eq!(before[i + width..], after[i + 1..]);
        }
    }
});

/// The invariants of a parse result of a file with `lines` lines.
fn check(result: &Result<Config, Diagnostics>, lines: usize) {
    match result {
        Ok(config) => {
            let mut names = HashSet::new();
            for door in &config.doors {
                assert!(!door.name.is_empty());
                assert!(
                    names.insert(door.name.as_str()),
                    "duplicate door {}",
                    door.name
                );
            }
            assert!(!config.doors.is_empty());
            let _ = config.to_string();
        }
        Err(diags) => {
            assert!(!diags.is_empty());
            for d in &diags.0 {
                assert!(d.line <= lines, "error on line {} of {lines}: {d}", d.line);
            }
            let _ = diags.to_string();
        }
    }
}

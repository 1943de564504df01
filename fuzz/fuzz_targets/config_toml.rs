//! Fuzzes the TOML config parser with arbitrary bytes.
//!
//! Besides "never panics", it checks what must hold for any input: `parse_bytes` and `parse`
//! agree on valid UTF-8, every error points inside the file, and an accepted config has
//! uniquely named doors and timeouts within their limits.
#![no_main]

use std::collections::HashSet;
use std::path::Path;

use knock_proto::config::{self, MAX_TIMEOUT};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let path = Path::new("fuzz.toml");
    let from_bytes = config::parse_bytes(path, data);
    let lines = data.split(|b| *b == b'\n').count();
    match &from_bytes {
        Ok(config) => {
            let mut names = HashSet::new();
            assert!(!config.doors.is_empty());
            for door in &config.doors {
                assert!(
                    names.insert(door.name.as_str()),
                    "duplicate door {}",
                    door.name
                );
                assert!(door.seq_timeout > std::time::Duration::ZERO);
                assert!(door.seq_timeout <= MAX_TIMEOUT && door.cmd_timeout <= MAX_TIMEOUT);
                assert!(door.actions.open_for <= MAX_TIMEOUT);
            }
            assert!(config.options.max_attempts > 0);
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
    if let Ok(text) = std::str::from_utf8(data) {
        assert_eq!(config::toml::parse(path, text), from_bytes);
    }
});

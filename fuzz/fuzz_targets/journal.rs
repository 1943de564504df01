//! Fuzzes the state journal's reader (`knock-server/src/journal.rs`: the pending stop commands a
//! previous run left) with arbitrary bytes, as `Journal::open` hands them to `replay`.
//!
//! Besides "never panics", it checks what must hold for any file: every unreadable line (and
//! opening past `MAX_ID`) is set aside verbatim and nothing else is, the entries have distinct
//! nonzero ids in order and one per (door, knocker), each with a command; a record read from a
//! line and written back reads as the same record, on one line; and the compacted journal (the
//! entries as `open` lines, what the daemon rewrites the file to at start) replays to the same
//! entries with nothing corrupt.
#![no_main]

use std::collections::HashSet;

use knock_server::journal::{MAX_ID, Record, replay};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let replayed = replay(data);

    let mut ids = Vec::with_capacity(replayed.entries.len());
    let mut windows = HashSet::new();
    for e in &replayed.entries {
        assert_ne!(e.id, 0, "{e:?}");
        assert!(!e.argv.is_empty(), "{e:?}");
        assert!(windows.insert((&e.door, e.source)), "two windows: {e:?}");
        ids.push(e.id);
    }
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not in order: {ids:?}"
    );

    // Unreadable lines, in order, are exactly the non-blank lines that are no record.
    let mut unreadable = Vec::new();
    for raw in data.split(|&b| b == b'\n') {
        match std::str::from_utf8(raw) {
            Ok(line) if line.trim().is_empty() => {}
            Ok(line) => match Record::from_line(line) {
                // An opening the daemon never numbered is set aside too.
                Some(Record::Open(e)) if e.id > MAX_ID => unreadable.push(raw),
                Some(record) => {
                    let written = record.to_line();
                    assert!(!written.contains('\n'), "{written:?}");
                    assert_eq!(
                        Record::from_line(&written).as_ref(),
                        Some(&record),
                        "{line:?} written as {written:?}"
                    );
                }
                None => unreadable.push(raw),
            },
            Err(_) => unreadable.push(raw),
        }
    }
    assert_eq!(replayed.corrupt, unreadable);

    // What the daemon rewrites the file to at start, read again at the next start.
    let compacted: String = replayed
        .entries
        .iter()
        .map(|e| Record::Open(e.clone()).to_line() + "\n")
        .collect();
    let again = replay(compacted.as_bytes());
    assert!(
        again.corrupt.is_empty(),
        "{compacted:?}: {:?}",
        again.corrupt
    );
    assert_eq!(again.entries, replayed.entries, "{compacted:?}");
});

//! Inputs the fuzz targets (fuzz/fuzz_targets/) found, minimised, against the daemon's readers:
//! each a bug that was fixed, kept so that it stays fixed.

use knock_server::journal::replay;

/// fuzz target `journal`: an id of u64::MAX - 1 or more (less the old-format lines) overflowed
/// `replay`'s numbering of old-format lines, `(max_id + 1..).zip(legacy)`: a panic under
/// overflow checks, even without any old-format line; without them, from u64::MAX the
/// numbers wrapped to ids already in use, so one pending stop command replaced another and
/// that door stayed open. Every line must be either an entry with an id of its own, or set
/// aside as corrupt (an opening past `journal::MAX_ID` is: the daemon never wrote it).
#[test]
fn an_id_at_the_end_of_the_range_leaves_old_format_lines_their_own() {
    let cases: [&[u8]; 3] = [
        // Not even an old-format line is needed: the range is stepped once past the last.
        b"open 18446744073709551614 100 ssh 198.18.0.1 stop /b1op",
        b"open 18446744073709551615 100 a 198.18.0.1 t /bin/true\n100 b 198.18.0.2 t /bin/true\n",
        b"close 18446744073709551614\n100 a 198.18.0.1 t /bin/true\n100 b 198.18.0.2 t /bin/true\n",
    ];
    for bytes in cases {
        let r = replay(bytes);
        let mut ids: Vec<u64> = r.entries.iter().map(|e| e.id).collect();
        ids.dedup();
        assert_eq!(ids.len(), r.entries.len(), "{:?}", r.entries);
        let lines = bytes
            .split(|&b| b == b'\n')
            .filter(|l| !l.is_empty())
            .count();
        let opens = lines - usize::from(bytes.starts_with(b"close"));
        assert_eq!(r.entries.len() + r.corrupt.len(), opens, "{r:?}");
    }
}

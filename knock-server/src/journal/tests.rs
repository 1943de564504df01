//! The journal's records, its replay, and the file's guarantees (nothing lost, no symlinks).

use super::*;

fn entry(id: u64, due: u64, source: &str) -> Entry {
    Entry {
        id,
        due_unix: due,
        door: "open SSH".into(),
        source: source.parse().unwrap(),
        text: "/bin/sh -c 'echo stop'".into(),
        argv: vec!["/bin/sh".into(), "-c".into(), "echo 'stop' \"x\"\n".into()],
    }
}

#[test]
fn records_round_trip_through_a_line() {
    for r in [
        Record::Open(entry(7, 1_800_000_000, "fd00::1")),
        Record::Extend {
            id: 7,
            due_unix: 1_800_000_010,
        },
        Record::Close { id: 7 },
    ] {
        assert_eq!(Record::from_line(&r.to_line()), Some(r));
    }
    assert_eq!(Record::from_line("garbage"), None);
    assert_eq!(
        Record::from_line("1 door 198.18.0.1 text"),
        None,
        "no command"
    );
}

#[test]
fn replay_applies_extends_and_closes_and_reads_the_old_format() {
    let mut text = String::new();
    for r in [
        Record::Open(entry(1, 100, "198.18.0.1")),
        Record::Open(entry(2, 100, "198.18.0.2")),
        Record::Extend {
            id: 1,
            due_unix: 150,
        },
        Record::Close { id: 2 },
    ] {
        text += &(r.to_line() + "\n");
    }
    // A line of the older format: `DUE DOOR KNOCKER TEXT ARGV...`.
    text += "120 other 198.18.0.3 'stop it' /bin/true\n";
    let r = replay(text.as_bytes());
    assert!(r.corrupt.is_empty());
    let got: Vec<(u64, u64, &str)> = r
        .entries
        .iter()
        .map(|e| (e.id, e.due_unix, e.door.as_str()))
        .collect();
    assert_eq!(got, [(1, 150, "open SSH"), (3, 120, "other")]);
}

#[test]
fn two_openings_of_one_door_by_one_knocker_are_adopted_once_at_the_latest_time() {
    // A second entry for the same window, as a file written by a re-knock may hold.
    let text = "100 door 198.18.0.1 stop /bin/stop\n160 door 198.18.0.1 stop /bin/stop\n\
                130 door 198.18.0.1 stop /bin/stop\n";
    let r = replay(text.as_bytes());
    assert_eq!(r.entries.len(), 1, "{:?}", r.entries);
    assert_eq!(r.entries[0].due_unix, 160);
}

#[test]
fn unreadable_lines_are_kept_aside_and_the_readable_ones_adopted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pending");
    let mut bytes = Record::Open(entry(1, 100, "198.18.0.1"))
        .to_line()
        .into_bytes();
    bytes.extend_from_slice(b"\nopen 2 \xff\xfe not utf-8\nnot a record\n");
    bytes.extend_from_slice(
        Record::Open(entry(3, 100, "198.18.0.3"))
            .to_line()
            .as_bytes(),
    );
    std::fs::write(&path, &bytes).unwrap();
    let (journal, left) = Journal::open(&path).unwrap();
    assert_eq!(left.iter().map(|e| e.id).collect::<Vec<_>>(), [1, 3]);
    assert_eq!(journal.live(), 2);
    let aside = std::fs::read(dir.path().join("pending.corrupt")).unwrap();
    assert_eq!(aside, b"open 2 \xff\xfe not utf-8\nnot a record\n");
    // The file now holds the readable ones, and a restart adopts them again.
    let (_, again) = Journal::open(&path).unwrap();
    assert_eq!(again, left);
}

#[test]
fn a_file_that_cannot_be_read_is_an_error_never_an_empty_list() {
    let dir = tempfile::tempdir().unwrap();
    // A directory where the file should be: reading fails (as permission denied would).
    let path = dir.path().join("pending");
    std::fs::create_dir(&path).unwrap();
    let e = Journal::open(&path).unwrap_err();
    assert!(
        format!("{e:#}").contains(&path.display().to_string()),
        "{e:#}"
    );
    assert!(path.is_dir(), "nothing was written over it");
}

#[test]
fn a_symlinked_state_file_is_refused_and_its_target_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("target");
    std::fs::write(&target, "precious\n").unwrap();
    let link = dir.path().join("pending");
    std::os::unix::fs::symlink(&target, &link).unwrap();
    let e = format!("{:#}", Journal::open(&link).unwrap_err());
    assert!(e.contains("symbolic link"), "{e}");
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
}

#[test]
fn openings_append_and_closed_records_are_compacted_away() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("state/pending");
    let (mut j, left) = Journal::open(&path).unwrap();
    assert!(left.is_empty());
    j.write(&Record::Open(entry(1, 100, "198.18.0.1")));
    for id in 2..1000 {
        j.write(&Record::Open(entry(id, 100, "198.18.0.2")));
        j.write(&Record::Extend { id, due_unix: 200 });
        j.write(&Record::Close { id });
    }
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(
        text.lines().count() <= 3 * COMPACT_AFTER,
        "{} lines",
        text.lines().count()
    );
    let (_, left) = Journal::open(&path).unwrap();
    assert_eq!(left, vec![entry(1, 100, "198.18.0.1")]);
    assert_eq!(
        left[0].remaining(UNIX_EPOCH + Duration::from_secs(90)),
        Duration::from_secs(10)
    );
}

/// Runs `f` on a thread; `None` if it has not returned within a minute (it hangs).
fn within_a_minute<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> Option<T> {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(Duration::from_secs(60)).ok()
}

#[test]
fn a_fifo_as_the_state_file_is_refused_without_blocking() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pending");
    let made = std::process::Command::new("mkfifo")
        .arg(&path)
        .status()
        .unwrap();
    assert!(made.success());
    let opened = within_a_minute({
        let path = path.clone();
        move || {
            Journal::open(&path)
                .map(|_| ())
                .map_err(|e| format!("{e:#}"))
        }
    });
    let e = opened
        .expect("Journal::open blocked on a FIFO")
        .unwrap_err();
    assert!(e.contains("pending") && e.contains("FIFO"), "{e}");
}

#[test]
fn the_replay_record_once_noted_stays_noted_through_compactions_and_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("pending");
    let (mut j, _) = Journal::open(&path).unwrap();
    assert!(!j.replay_saved());
    j.note_replay_saved();
    j.note_replay_saved();
    assert_eq!(std::fs::read_to_string(&path).unwrap(), "replay-record\n");
    for id in 1..200 {
        j.write(&Record::Open(entry(id, 100, "198.18.0.2")));
        j.write(&Record::Close { id });
    }
    drop(j);
    let (j, left) = Journal::open(&path).unwrap();
    assert!(
        j.replay_saved(),
        "{}",
        std::fs::read_to_string(&path).unwrap()
    );
    assert!(left.is_empty());
    assert!(!dir.path().join("pending.corrupt").exists());
}

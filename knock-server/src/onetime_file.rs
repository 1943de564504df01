//! One-time sequence files on disk: read without following symlinks, and a used sequence
//! marked in place, knockd's way (its line's first character becomes `#`).
//!
//! The file is re-read just before each update and only the used line's first character is
//! overwritten, so lines an admin added while the daemon ran are kept (a rewrite of the text
//! loaded at start would erase them), and the sequences are then taken from what was read.
//!
//! Symlinks are refused, at load and at update: the daemon is root, and a link swapped in for
//! the file would make it write `#` into whatever the link points to; replacing the link with a
//! regular file instead (what a rename-over write does) would quietly re-arm used sequences
//! when someone re-links it. An admin who wants the file elsewhere names that path in the
//! config.

use std::io::{self, Read as _};
use std::os::unix::fs::FileExt as _;
use std::path::Path;

use anyhow::Context as _;
use knock_proto::Sequence;
use knock_proto::onetime::{self, OneTimeSequences};

use crate::files::{self, Access, OpenError};

/// Reads `path`, refusing a symlink with an error that says so.
pub fn read_nofollow(path: &Path) -> io::Result<String> {
    let mut file = open(path, Access::Read)?;
    let mut text = String::new();
    file.read_to_string(&mut text)?;
    Ok(text)
}

/// Opens `path` as [`files::open_file`] does (never created: `Read` or `Update`).
fn open(path: &Path, access: Access) -> io::Result<std::fs::File> {
    files::open_file(path, access, 0o600).map_err(|e| match e {
        OpenError::Symlink => io::Error::new(
            io::ErrorKind::InvalidInput,
            "it is a symbolic link, which one-time sequence files may not be \
             (name the file itself in the config)",
        ),
        OpenError::NotRegular(_) => io::Error::new(io::ErrorKind::InvalidInput, e.to_string()),
        OpenError::Open(e) | OpenError::Stat(e) => e,
    })
}

/// Marks `used` used in its file, in place, and returns the file's sequences as they are
/// now (lines added meanwhile included). Fails when the file cannot be opened, read or
/// written, or no longer holds `used` as an unused line; the caller has moved on from `used`
/// in memory either way, so it never opens twice.
pub fn mark_used(path: &Path, used: &Sequence) -> anyhow::Result<OneTimeSequences> {
    match update(path, used)? {
        Some(fresh) if fresh.current() != Some(used) => Ok(fresh),
        _ => anyhow::bail!(
            "{}: the used sequence {used} is no longer an unused line of the file (edited \
             meanwhile?); not marked there",
            path.display()
        ),
    }
}

/// Re-reads `path`, overwrites the first character of `used`'s line, returns the file parsed.
fn update(path: &Path, used: &Sequence) -> anyhow::Result<Option<OneTimeSequences>> {
    let what = || format!("one-time sequence file {}", path.display());
    let file = open(path, Access::Update).with_context(|| format!("cannot open {}", what()))?;
    let mut text = String::new();
    (&file)
        .read_to_string(&mut text)
        .with_context(|| format!("cannot read {}", what()))?;
    let Some(at) = onetime::used_mark(&text, used) else {
        return Ok(None);
    };
    let mut mark = vec![b' '; at.len()];
    mark[0] = onetime::MARK;
    file.write_all_at(&mark, at.start as u64)
        .and_then(|()| file.sync_data())
        .with_context(|| format!("cannot write {}", what()))?;
    let mark = String::from_utf8_lossy(&mark).into_owned();
    text.replace_range(at, &mark);
    let fresh = OneTimeSequences::parse(path, &text)
        .map_err(|d| anyhow::anyhow!("{d}"))
        .with_context(|| format!("{} no longer parses", what()))?;
    Ok(Some(fresh))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(path: &Path) -> OneTimeSequences {
        OneTimeSequences::parse(path, &read_nofollow(path).unwrap()).unwrap()
    }

    #[test]
    fn the_used_line_is_marked_in_place_and_lines_added_meanwhile_stay() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("seqs");
        std::fs::write(&p, " 1,2\n 3,4\n").unwrap();
        let seqs = load(&p);
        // The admin appends while the daemon runs.
        std::fs::write(&p, " 1,2\n 3,4\n 5,6\n").unwrap();
        let seqs = mark_used(&p, seqs.current().unwrap()).unwrap();
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "#1,2\n 3,4\n 5,6\n");
        let seqs = mark_used(&p, seqs.current().unwrap()).unwrap();
        assert_eq!(seqs.current(), Some(&"5,6".parse().unwrap()));
        assert_eq!(std::fs::read_to_string(&p).unwrap(), "#1,2\n#3,4\n 5,6\n");
    }

    #[test]
    fn a_symlinked_file_is_refused_and_neither_it_nor_its_target_changes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("real");
        std::fs::write(&target, " 1,2\n 3,4\n").unwrap();
        let link = dir.path().join("seqs");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = read_nofollow(&link).unwrap_err().to_string();
        assert!(e.contains("symbolic link"), "{e}");
        let e = format!(
            "{:#}",
            mark_used(&link, &"1,2".parse().unwrap()).unwrap_err()
        );
        assert!(e.contains("symbolic link") && e.contains("seqs"), "{e}");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), " 1,2\n 3,4\n");
    }
}

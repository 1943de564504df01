//! The daemon's own files: paths made absolute before `-d` changes directory, and files
//! opened without following symlinks.
//!
//! The daemon runs as root and writes its pid file and state file where it is told. A symlink
//! planted there (in a directory someone else can write) would make it write through to the
//! link's target, or delete the link at exit; so these files (and the one-time sequence
//! files it marks, the keys it writes) are opened with `O_NOFOLLOW` ([`open_file`]) and a
//! symlink is refused with an error naming it.

use std::fs::{File, OpenOptions};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::cli::Args;

/// `path` made absolute against the current directory (not resolving symlinks: the path
/// names the same file later, whatever the link points to then).
pub fn absolute(path: PathBuf) -> PathBuf {
    std::path::absolute(&path).unwrap_or(path)
}

/// Every path of the daemon's command line made absolute: config, pid file, log file, state
/// file and runtime directory. knockd (and our first releases) made them absolute only after
/// `daemon()` had changed directory to `/`.
pub fn absolute_args(mut args: Args) -> anyhow::Result<Args> {
    args.config = args.config.map(absolute);
    args.pidfile = args.pidfile.map(absolute);
    args.logfile = args.logfile.map(absolute);
    args.state_file = args.state_file.map(absolute);
    args.instance.runtime_dir = absolute(args.instance.runtime_dir);
    Ok(args)
}

/// The default instance's state file under its older name, without the instance's.
pub const LEGACY_STATE: &str = "/var/lib/knock-server/pending-stops";

/// Moves a state file at [`LEGACY_STATE`] to `state` (the default instance's), so that the
/// stop commands it holds still run: they are openings still in force.
pub fn adopt_legacy_state(state: &Path) {
    adopt_legacy_state_from(Path::new(LEGACY_STATE), state);
}

fn adopt_legacy_state_from(legacy: &Path, state: &Path) {
    let is_file = |p: &Path| std::fs::symlink_metadata(p).is_ok_and(|m| m.file_type().is_file());
    if is_file(legacy) && std::fs::symlink_metadata(state).is_err() {
        // Same directory: a rename is atomic, the file is never missing from both names.
        let _ = std::fs::rename(legacy, state);
    }
}

/// The files beside a state file that hold what the daemon trusts as its own: the replay
/// record and the lock.
pub fn state_companions(state: &Path) -> [PathBuf; 2] {
    [".replay", ".lock"].map(|suffix| {
        let mut name = state.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    })
}

/// Refuses a state file (and its replay record and lock) that someone other than this
/// daemon's user (or root) could have written, as ssh refuses such keys: the daemon runs the
/// stop commands the file holds, as root, and trusts the record to refuse replays. Every
/// existing one of them must be owned by the daemon's user or root and not writable by group
/// or others, as must every directory above it (a sticky one like /tmp excepted); and the
/// directory that holds them must not be writable by anyone else at all, sticky or not, as
/// others could put the files there before the daemon does.
pub fn check_state(state: &Path) -> anyhow::Result<()> {
    use knock_proto::trust::{self, Access};
    let euid = rustix::process::geteuid().as_raw();
    let dir = state
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    if let Ok(meta) = std::fs::metadata(dir) {
        use std::os::unix::fs::MetadataExt as _;
        let d = dir.display();
        let me = if euid == 0 {
            "root".to_owned()
        } else {
            euid.to_string()
        };
        if meta.uid() != euid && meta.uid() != 0 {
            anyhow::bail!(
                "{d}, which holds the state file {}, is owned by uid {}, not by this daemon's \
                 user or root: that user can replace the pending stop commands the daemon \
                 runs; run `chown {me} {d}` or pass a --state-file in a directory of the \
                 daemon's own",
                state.display(),
                meta.uid()
            );
        }
        if meta.mode() & 0o022 != 0 {
            anyhow::bail!(
                "{d}, which holds the state file {}, is mode {:04o}: others can put files \
                 there (pending stop commands the daemon runs, a replay record); run `chmod \
                 go-w {d}` or pass a --state-file in a directory of the daemon's own",
                state.display(),
                meta.mode() & 0o7777
            );
        }
    }
    let [replay, lock] = state_companions(state);
    for file in [state, &replay, &lock] {
        if std::fs::symlink_metadata(file).is_ok() {
            trust::check_with_owner(file, Access::Config, euid).map_err(|e| {
                anyhow::anyhow!(
                    "{e} (the daemon runs, as its own, the stop commands of its state file {})",
                    state.display()
                )
            })?;
        }
    }
    Ok(())
}

/// Fails, naming `path` as `what`, if `path` is a symlink.
pub fn refuse_symlink(path: &Path, what: &str) -> anyhow::Result<()> {
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_symlink() => anyhow::bail!(
            "{what} {} is a symbolic link: refusing to follow it (a root daemon writing through \
             a link can overwrite any file); remove the link or point --{} at a regular file",
            path.display(),
            if what == "pid file" {
                "pidfile"
            } else {
                "state-file"
            }
        ),
        _ => Ok(()),
    }
}

/// How [`open`] opens one of the daemon's files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Access {
    /// Read an existing file.
    Read,
    /// Append to it, creating it if missing.
    Append,
    /// Write it from the start, creating it or truncating it.
    Replace,
    /// Read and write without truncating, creating it if missing: lock files.
    Lock,
    /// Read and write an existing file in place, never creating or truncating it: one-time
    /// sequence files.
    Update,
    /// Write a file that does not exist yet (`O_EXCL`): a new key never replaces one.
    CreateNew,
}

/// Why [`open_file`] gave no file.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The path is a symbolic link (`O_NOFOLLOW`).
    #[error("it is a symbolic link")]
    Symlink,
    /// Not a regular file: what it is (`a directory`, `a FIFO`, `a socket`, `a device`).
    #[error("it is {0}, not a regular file")]
    NotRegular(&'static str),
    /// open(2) failed otherwise: `NotFound`, `AlreadyExists` for [`Access::CreateNew`], ...
    #[error(transparent)]
    Open(std::io::Error),
    /// The opened file could not be examined (fstat(2)).
    #[error(transparent)]
    Stat(std::io::Error),
}

/// Opens one of the daemon's own files: never through a symlink (`O_NOFOLLOW`: a link planted
/// in a directory someone else can write would make a root daemon read or write another
/// file), never a FIFO, socket, device or directory (opened with `O_NONBLOCK`, so that a FIFO
/// cannot hang the daemon, then required to be a regular file), closed on exec, and created
/// with `mode` (0600 for what holds commands, state or keys). [`open`] words the errors.
pub fn open_file(path: &Path, access: Access, mode: u32) -> Result<File, OpenError> {
    let mut options = OpenOptions::new();
    match access {
        Access::Read => options.read(true),
        Access::Append => options.append(true).create(true),
        Access::Replace => options.write(true).create(true).truncate(true),
        Access::Lock => options.read(true).write(true).create(true).truncate(false),
        Access::Update => options.read(true).write(true),
        Access::CreateNew => options.write(true).create_new(true),
    };
    let file = options
        .mode(mode)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC | libc::O_NONBLOCK)
        .open(path)
        .map_err(|e| match e.raw_os_error() {
            Some(libc::ELOOP) => OpenError::Symlink,
            // A FIFO opened for writing with no reader, with O_NONBLOCK.
            Some(libc::ENXIO) => OpenError::NotRegular("a FIFO"),
            _ => OpenError::Open(e),
        })?;
    let kind = file.metadata().map_err(OpenError::Stat)?.file_type();
    if !kind.is_file() {
        use std::os::unix::fs::FileTypeExt as _;
        return Err(OpenError::NotRegular(if kind.is_dir() {
            "a directory"
        } else if kind.is_fifo() {
            "a FIFO"
        } else if kind.is_socket() {
            "a socket"
        } else {
            "a device"
        }));
    }
    Ok(file)
}

/// [`open_file`] with errors that name `path` as `what` and say what to do. `Ok(None)`:
/// `Access::Read` of a file that does not exist.
pub fn open(path: &Path, access: Access, mode: u32, what: &str) -> anyhow::Result<Option<File>> {
    match open_file(path, access, mode) {
        Ok(file) => Ok(Some(file)),
        Err(OpenError::Open(e))
            if access == Access::Read && e.kind() == std::io::ErrorKind::NotFound =>
        {
            Ok(None)
        }
        Err(OpenError::Symlink) => anyhow::bail!(
            "{what} {} is a symbolic link: refusing to follow it (a root daemon reading or \
             writing through a link can be made to use any file); remove the link and name \
             a regular file",
            path.display()
        ),
        Err(OpenError::NotRegular(is)) => {
            anyhow::bail!("{what} {} is {is}: name a regular file", path.display())
        }
        Err(OpenError::Open(e)) => {
            Err(e).with_context(|| format!("cannot open {what} {}", path.display()))
        }
        Err(OpenError::Stat(e)) => {
            Err(e).with_context(|| format!("cannot read {what} {}", path.display()))
        }
    }
}

/// Creates (mode 0644) or truncates `path` for writing, as [`open`] does: pid files.
pub fn create_nofollow(path: &Path, what: &str) -> anyhow::Result<File> {
    open(path, Access::Replace, 0o644, what)?
        .with_context(|| format!("cannot write {what} {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlink_is_refused_naming_it_and_its_target_is_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        let link = dir.path().join("knock.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = format!("{:#}", create_nofollow(&link, "pid file").unwrap_err());
        assert!(
            e.contains("knock.pid") && e.contains("symbolic link"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
        assert!(refuse_symlink(&link, "state file").is_err());
        let plain = dir.path().join("plain");
        create_nofollow(&plain, "pid file").unwrap();
        refuse_symlink(&plain, "state file").unwrap();
    }

    #[test]
    fn a_new_file_never_replaces_one_and_an_update_never_creates_one() {
        let dir = tempfile::tempdir().unwrap();
        let key = dir.path().join("door.key");
        open_file(&key, Access::CreateNew, 0o600).unwrap();
        let again = open_file(&key, Access::CreateNew, 0o600);
        assert!(
            matches!(&again, Err(OpenError::Open(e)) if e.kind() == std::io::ErrorKind::AlreadyExists),
            "{again:?}"
        );
        // A link where the key goes is not followed either: it exists.
        let link = dir.path().join("link.key");
        std::os::unix::fs::symlink(dir.path().join("elsewhere"), &link).unwrap();
        assert!(matches!(
            open_file(&link, Access::CreateNew, 0o600),
            Err(OpenError::Open(_))
        ));
        assert!(!dir.path().join("elsewhere").exists());
        let missing = dir.path().join("seqs");
        let update = open_file(&missing, Access::Update, 0o600);
        assert!(
            matches!(&update, Err(OpenError::Open(e)) if e.kind() == std::io::ErrorKind::NotFound),
            "{update:?}"
        );
        assert!(matches!(
            open_file(&link, Access::Update, 0o600),
            Err(OpenError::Symlink)
        ));
        assert!(matches!(
            open_file(dir.path(), Access::Read, 0o600),
            Err(OpenError::NotRegular("a directory"))
        ));
    }

    #[test]
    fn the_state_file_of_a_release_before_instances_is_taken_over_once() {
        let dir = tempfile::tempdir().unwrap();
        let (legacy, state) = (dir.path().join("pending-stops"), dir.path().join("k.state"));
        std::fs::write(&legacy, "old\n").unwrap();
        adopt_legacy_state_from(&legacy, &state);
        assert_eq!(std::fs::read_to_string(&state).unwrap(), "old\n");
        assert!(!legacy.exists());
        // With both present, the current one wins and nothing moves.
        std::fs::write(&legacy, "older\n").unwrap();
        adopt_legacy_state_from(&legacy, &state);
        assert_eq!(std::fs::read_to_string(&state).unwrap(), "old\n");
    }

    #[test]
    fn a_state_file_others_could_write_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = |p: &Path, m: u32| {
            std::fs::set_permissions(p, std::fs::Permissions::from_mode(m)).unwrap()
        };
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("k.state");
        check_state(&state).unwrap();
        std::fs::write(&state, "").unwrap();
        mode(&state, 0o600);
        check_state(&state).unwrap();
        mode(&state, 0o666);
        let e = format!("{:#}", check_state(&state).unwrap_err());
        assert!(
            e.contains("k.state is mode 0666") && e.contains("chmod go-w"),
            "{e}"
        );
        mode(&state, 0o600);
        let [replay, _] = state_companions(&state);
        std::fs::write(&replay, "").unwrap();
        mode(&replay, 0o622);
        let e = format!("{:#}", check_state(&state).unwrap_err());
        assert!(e.contains("k.state.replay is mode 0622"), "{e}");
        mode(&replay, 0o600);
        // The directory that holds it: not even sticky, as /tmp is.
        mode(dir.path(), 0o1777);
        let e = format!("{:#}", check_state(&state).unwrap_err());
        assert!(
            e.contains("is mode 1777") && e.contains("chmod go-w"),
            "{e}"
        );
        mode(dir.path(), 0o700);
        check_state(&state).unwrap();
    }

    #[test]
    fn a_state_file_owned_by_another_user_is_refused_with_the_fix() {
        if !knock_e2e::root_or_skip() {
            return;
        }
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("k.state");
        std::fs::write(&state, "").unwrap();
        std::fs::set_permissions(&state, std::fs::Permissions::from_mode(0o600)).unwrap();
        rustix::fs::chown(&state, Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        let e = format!("{:#}", check_state(&state).unwrap_err());
        assert!(e.contains("is owned by") && e.contains("chown root"), "{e}");
        rustix::fs::chown(dir.path(), Some(rustix::fs::Uid::from_raw(65534)), None).unwrap();
        std::fs::remove_file(&state).unwrap();
        let e = format!("{:#}", check_state(&state).unwrap_err());
        assert!(
            e.contains("owned by uid 65534") && e.contains("chown root"),
            "{e}"
        );
    }

    #[test]
    fn relative_paths_become_absolute_against_the_current_directory() {
        let p = absolute(PathBuf::from("x/knock.conf"));
        assert!(p.is_absolute());
        assert_eq!(p, std::env::current_dir().unwrap().join("x/knock.conf"));
    }
}

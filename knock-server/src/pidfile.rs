//! The pid file: written at start, removed at exit; never through a symlink.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;

use crate::files;

/// A pid file that removes itself when dropped.
#[derive(Debug)]
pub struct PidFile(PathBuf);

impl PidFile {
    /// Writes our pid to `path`, refusing a symlink there (see [`files`]).
    pub fn create(path: &Path) -> anyhow::Result<PidFile> {
        let mut f = files::create_nofollow(path, "pid file")?;
        writeln!(f, "{}", std::process::id())
            .with_context(|| format!("cannot write pid file {}", path.display()))?;
        Ok(PidFile(path.to_owned()))
    }
}

impl Drop for PidFile {
    fn drop(&mut self) {
        // Only our own file: if it was swapped for a symlink meanwhile, leave it be.
        if std::fs::symlink_metadata(&self.0).is_ok_and(|m| m.file_type().is_file()) {
            let _ = std::fs::remove_file(&self.0);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_symlinked_pid_file_is_refused_and_neither_link_nor_target_changes() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("precious");
        std::fs::write(&target, "keep me\n").unwrap();
        let link = dir.path().join("knockd.pid");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = format!("{:#}", PidFile::create(&link).unwrap_err());
        assert!(
            e.contains("knockd.pid") && e.contains("symbolic link"),
            "{e}"
        );
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "keep me\n");
        assert!(
            std::fs::symlink_metadata(&link)
                .unwrap()
                .file_type()
                .is_symlink()
        );
        let plain = dir.path().join("plain.pid");
        let pid = PidFile::create(&plain).unwrap();
        assert_eq!(
            std::fs::read_to_string(&plain).unwrap(),
            format!("{}\n", std::process::id())
        );
        drop(pid);
        assert!(!plain.exists());
    }
}

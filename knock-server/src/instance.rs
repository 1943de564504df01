//! Instances: several daemons on one host (knockd users run one per interface), each owning
//! its own pid file, state file, nftables table and control socket, all named after
//! `--instance NAME`, and a lock that keeps two daemons from running the same instance.
//!
//! The lock is `flock(2)` on `RUNTIME/NAME.lock`, held for the process lifetime: the kernel
//! drops it when the process dies, however it dies (kill -9 included), so a stale lock file
//! never blocks a restart and a pid file left behind is never mistaken for a running daemon.
//! The file holds the owner's pid, only so that the refusal can name it.

use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::str::FromStr;

use anyhow::Context as _;

/// The instance name when `--instance` is not given.
pub const DEFAULT: &str = "knock-server";

/// The runtime directory (control sockets, locks) when `--runtime-dir` is not given; systemd
/// creates it with `RuntimeDirectory=knock-server`.
pub const RUNTIME_DIR: &str = "/run/knock-server";

/// Where state files go by default; systemd creates it with `StateDirectory=knock-server`.
pub const STATE_DIR: &str = "/var/lib/knock-server";

/// The longest instance name: it ends up in file names, a socket path (108 bytes at most)
/// and an nftables table name.
const MAX_LEN: usize = 32;

/// A checked instance name: 1 to 32 ASCII letters, digits and `-`, starting with a letter or
/// digit. No `_`, so that the nftables table name (where `-` becomes `_`) is one-to-one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance(String);

/// Why a name cannot be an instance name.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "invalid instance name `{0}`: use 1 to {MAX_LEN} ASCII letters, digits and `-`, starting with a letter or digit (e.g. `eth0`, `wan-1`)"
)]
pub struct BadName(String);

impl FromStr for Instance {
    type Err = BadName;

    fn from_str(s: &str) -> Result<Instance, BadName> {
        let ok = !s.is_empty()
            && s.len() <= MAX_LEN
            && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && s.as_bytes()[0].is_ascii_alphanumeric();
        if ok {
            Ok(Instance(s.to_owned()))
        } else {
            Err(BadName(s.to_owned()))
        }
    }
}

impl Default for Instance {
    fn default() -> Instance {
        Instance(DEFAULT.to_owned())
    }
}

impl fmt::Display for Instance {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Instance {
    /// The name as given.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether this is the default instance (which keeps the names earlier releases used).
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT
    }

    /// The nftables table (family `inet`) of `open` doors: `knock_server` for the default
    /// instance, as before instances existed, `knock_server_NAME` (with `-` as `_`: table
    /// names allow letters, digits and `_`) for the others.
    pub fn table(&self) -> String {
        if self.is_default() {
            "knock_server".to_owned()
        } else {
            format!("knock_server_{}", self.0.replace('-', "_"))
        }
    }

    /// The control socket in `runtime`.
    pub fn socket(&self, runtime: &Path) -> PathBuf {
        runtime.join(format!("{}.sock", self.0))
    }

    /// The lock file in `runtime`.
    pub fn lock_file(&self, runtime: &Path) -> PathBuf {
        runtime.join(format!("{}.lock", self.0))
    }

    /// The default state file (pending stop commands).
    pub fn state_file(&self) -> PathBuf {
        Path::new(STATE_DIR).join(format!("{}.state", self.0))
    }

    /// The pid file with `-d` when neither `-p` nor PidFile names one: knockd's
    /// `/var/run/knockd.pid` for the default instance, `RUNTIME/NAME.pid` for the others.
    pub fn pid_file(&self, runtime: &Path) -> PathBuf {
        if self.is_default() {
            PathBuf::from("/var/run/knockd.pid")
        } else {
            runtime.join(format!("{}.pid", self.0))
        }
    }
}

/// The instance lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct Lock {
    file: File,
}

impl Lock {
    /// Takes the lock of `instance` in `runtime` (created 0755 if missing), or says which
    /// process holds it.
    pub fn acquire(instance: &Instance, runtime: &Path) -> anyhow::Result<Lock> {
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(runtime)
            .with_context(|| format!("cannot create runtime directory {}", runtime.display()))?;
        let path = instance.lock_file(runtime);
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
            .open(&path)
            .with_context(|| format!("cannot open lock file {}", path.display()))?;
        use rustix::fs::{FlockOperation, flock};
        if let Err(e) = flock(&file, FlockOperation::NonBlockingLockExclusive) {
            if e != rustix::io::Errno::WOULDBLOCK {
                return Err(std::io::Error::from(e))
                    .with_context(|| format!("cannot lock {}", path.display()));
            }
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = match owner.trim() {
                "" => "another process".to_owned(),
                pid => format!("pid {pid}"),
            };
            anyhow::bail!(
                "instance `{instance}` is already running ({owner} holds {}); stop it first, or start this one with another --instance",
                path.display()
            );
        }
        file.set_len(0)?;
        file.rewind()?;
        writeln!(file, "{}", std::process::id())?;
        Ok(Lock { file })
    }

    /// Rewrites the pid in the lock file (after `-d` forked: the lock survives the fork, the
    /// pid changes).
    pub fn update_pid(&mut self) {
        let _ = self.file.set_len(0);
        let _ = self.file.rewind();
        let _ = writeln!(self.file, "{}", std::process::id());
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_and_safe() {
        for good in ["knock-server", "eth0", "wan-1", "A", &"x".repeat(MAX_LEN)] {
            assert!(good.parse::<Instance>().is_ok(), "{good}");
        }
        for bad in [
            "",
            "-x",
            "a_b",
            "a/b",
            "..",
            "a.b",
            "a b",
            "é",
            &"x".repeat(MAX_LEN + 1),
        ] {
            let e = bad.parse::<Instance>().unwrap_err().to_string();
            assert!(e.contains("invalid instance name"), "{bad}: {e}");
        }
    }

    #[test]
    fn table_names_are_valid_distinct_and_the_default_keeps_its_name() {
        assert_eq!(Instance::default().table(), "knock_server");
        let names = ["server", "knock-server-x", "a-b", "ab", "a-b-c", "eth0"];
        let mut tables: Vec<String> = names
            .iter()
            .map(|n| n.parse::<Instance>().unwrap().table())
            .collect();
        tables.push(Instance::default().table());
        for t in &tables {
            assert!(
                t.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_'),
                "{t}"
            );
        }
        let n = tables.len();
        tables.sort();
        tables.dedup();
        assert_eq!(tables.len(), n, "two instances share a table");
        assert_eq!(
            "wan-1".parse::<Instance>().unwrap().table(),
            "knock_server_wan_1"
        );
    }

    #[test]
    fn a_second_lock_on_the_same_instance_is_refused_naming_the_owner() {
        let dir = tempfile::tempdir().unwrap();
        let runtime = dir.path().join("run");
        let i: Instance = "eth0".parse().unwrap();
        let held = Lock::acquire(&i, &runtime).unwrap();
        let e = format!("{:#}", Lock::acquire(&i, &runtime).unwrap_err());
        assert!(
            e.contains("already running")
                && e.contains(&format!("pid {}", std::process::id()))
                && e.contains("eth0.lock"),
            "{e}"
        );
        let other: Instance = "eth1".parse().unwrap();
        let _other = Lock::acquire(&other, &runtime).unwrap();
        drop(held);
        Lock::acquire(&i, &runtime).unwrap();
    }
}

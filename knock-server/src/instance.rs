//! Instances: several daemons on one host (knockd users run one per interface), each owning
//! its own pid file, state file, nftables table and control socket, all named after
//! `--instance NAME`, and a lock that keeps two daemons from running the same instance.
//!
//! An instance is one daemon, whatever paths it is given. Its lock is a Unix socket bound in
//! the abstract namespace (`@knock-server/instance/NAME`): no file that can be deleted or
//! moved by passing another `--runtime-dir`, dropped by the kernel when the process dies,
//! however it dies (kill -9 included), and scoped, like the instance's nftables table, to the
//! network namespace. The refusal names the holder's pid (`SO_PEERCRED` of a connection to
//! it). Beside it, `flock(2)` on `RUNTIME/NAME.lock`, which holds the pid for tools that look
//! there.
//!
//! The state file is one daemon's too: [`StateLock`] takes `flock(2)` on `STATE.lock` (which
//! names the holding instance and pid), and the same kind of abstract socket named after the
//! state file's absolute path, so that neither a second instance given the same
//! `--state-file` nor the lock file's deletion lets two daemons share pending stops.

use std::fmt;
use std::fs::File;
use std::io::{Read as _, Seek as _, Write as _};
use std::os::unix::fs::DirBuilderExt as _;
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

    /// Whether this is the default instance, whose table and files keep names without the
    /// instance's, so that a host running one daemon sees the names it always had.
    pub fn is_default(&self) -> bool {
        self.0 == DEFAULT
    }

    /// The nftables table (family `inet`) of `open` doors: `knock_server` for the default
    /// instance, `knock_server_NAME` (with `-` as `_`: table
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
    name: Held,
    file: File,
}

impl Lock {
    /// Takes the lock of `instance` in `runtime` (created 0755 if missing), or says which
    /// process holds it.
    pub fn acquire(instance: &Instance, runtime: &Path) -> anyhow::Result<Lock> {
        let refusal = |owner: String, held: &str| {
            anyhow::anyhow!(
                "instance `{instance}` is already running ({owner} holds {held}); stop it \
                 first, or start this one with another --instance"
            )
        };
        let path = instance.lock_file(runtime);
        let name = Held::bind(&format!("instance/{instance}")).map_err(|holder| {
            let held = format!(
                "the instance's name in this network namespace, whatever its --runtime-dir; \
                 the lock here is {}",
                path.display()
            );
            refusal(holder.to_string(), &held)
        })?;
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o755)
            .create(runtime)
            .with_context(|| format!("cannot create runtime directory {}", runtime.display()))?;
        let (file, owner) = flock_file(&path, 0o644)?;
        if let Some(owner) = owner {
            return Err(refusal(owner, &path.display().to_string()));
        }
        let mut lock = Lock { name, file };
        lock.update_pid();
        Ok(lock)
    }

    /// Rewrites the pid in the lock file, and starts answering as this process (after `-d`
    /// forked: the lock survives the fork, the pid changes).
    pub fn update_pid(&mut self) {
        write_owner(&mut self.file, "");
        self.name.listen();
    }
}

/// The state file's lock, held until dropped (or the process ends).
#[derive(Debug)]
pub struct StateLock {
    name: Held,
    file: File,
    instance: String,
}

impl StateLock {
    /// Takes the lock of the state file `state` (absolute) for `instance`, or says which
    /// daemon uses it.
    pub fn acquire(state: &Path, instance: &Instance) -> anyhow::Result<StateLock> {
        let refusal = |owner: String| {
            anyhow::anyhow!(
                "the state file {} is in use by {owner}: two daemons sharing one would run \
                 each other's stop commands; give each instance its own --state-file",
                state.display()
            )
        };
        let name = Held::bind(&format!("state/{}", digest(state)))
            .map_err(|holder| refusal(holder.to_string()))?;
        let mut path = state.as_os_str().to_owned();
        path.push(".lock");
        let path = PathBuf::from(path);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("cannot create {}", dir.display()))?;
        }
        let (file, owner) = flock_file(&path, 0o600)?;
        if let Some(owner) = owner {
            return Err(refusal(owner));
        }
        let mut lock = StateLock {
            name,
            file,
            instance: instance.to_string(),
        };
        lock.update_pid();
        Ok(lock)
    }

    /// As [`Lock::update_pid`].
    pub fn update_pid(&mut self) {
        write_owner(&mut self.file, &self.instance);
        self.name.listen();
    }
}

/// A name in the abstract Unix socket namespace, held by a bound socket.
#[derive(Debug)]
struct Held(rustix::fd::OwnedFd);

/// Who holds a name: a pid when it answered.
#[derive(Debug)]
struct Holder(Option<i32>);

impl fmt::Display for Holder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(pid) => write!(f, "pid {pid}"),
            None => f.write_str("another process"),
        }
    }
}

impl Held {
    /// Binds `@knock-server/NAME`; who holds it when it is taken.
    fn bind(name: &str) -> Result<Held, Holder> {
        use rustix::net::{AddressFamily, SocketAddrUnix, SocketFlags, SocketType};
        let addr = SocketAddrUnix::new_abstract_name(format!("knock-server/{name}").as_bytes())
            .map_err(|_| Holder(None))?;
        // Non-blocking: the holder never accepts, so once its backlog is full a connection
        // would wait forever; it then fails at once and the holder goes unnamed.
        let socket = || {
            rustix::net::socket_with(
                AddressFamily::UNIX,
                SocketType::STREAM,
                SocketFlags::CLOEXEC | SocketFlags::NONBLOCK,
                None,
            )
        };
        let fd = socket().map_err(|_| Holder(None))?;
        match rustix::net::bind(&fd, &addr) {
            Ok(()) => Ok(Held(fd)),
            Err(_) => {
                // Taken: a connection names the holder (its credentials as of its listen).
                let pid = socket().ok().and_then(|c| {
                    rustix::net::connect(&c, &addr).ok()?;
                    let cred = rustix::net::sockopt::socket_peercred(&c).ok()?;
                    Some(cred.pid.as_raw_nonzero().get())
                });
                Err(Holder(pid))
            }
        }
    }

    /// Answers connections as this process (each `listen` sets the credentials a connection
    /// sees). They are never accepted: each refused daemon leaves one in the backlog.
    fn listen(&self) {
        let _ = rustix::net::listen(&self.0, 128);
    }
}

/// A short, stable name for `path` (abstract socket names are at most 107 bytes).
fn digest(path: &Path) -> String {
    use sha2::Digest as _;
    let hash = sha2::Sha256::digest(path.as_os_str().as_encoded_bytes());
    hash[..16].iter().map(|b| format!("{b:02x}")).collect()
}

/// Opens and `flock`s `path` (created with `mode`); the owner it names when it is taken.
fn flock_file(path: &Path, mode: u32) -> anyhow::Result<(File, Option<String>)> {
    let mut file = crate::files::open(path, crate::files::Access::Lock, mode, "lock file")?
        .with_context(|| format!("cannot open lock file {}", path.display()))?;
    use rustix::fs::{FlockOperation, flock};
    match flock(&file, FlockOperation::NonBlockingLockExclusive) {
        Ok(()) => Ok((file, None)),
        Err(e) if e == rustix::io::Errno::WOULDBLOCK => {
            let mut owner = String::new();
            let _ = file.read_to_string(&mut owner);
            let owner = match owner.split_whitespace().collect::<Vec<_>>()[..] {
                [] => "another process".to_owned(),
                [pid] => format!("pid {pid}"),
                [pid, instance, ..] => format!("instance `{instance}` (pid {pid})"),
            };
            Ok((file, Some(owner)))
        }
        Err(e) => {
            Err(std::io::Error::from(e)).with_context(|| format!("cannot lock {}", path.display()))
        }
    }
}

/// Writes `PID [INSTANCE]` into a held lock file.
fn write_owner(file: &mut File, instance: &str) {
    let _ = file.set_len(0);
    let _ = file.rewind();
    let line = format!("{} {instance}", std::process::id());
    let _ = writeln!(file, "{}", line.trim_end());
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

    #[test]
    fn an_instance_is_one_daemon_whatever_its_runtime_dir_and_its_lock_file() {
        let dir = tempfile::tempdir().unwrap();
        let i: Instance = "test-runtime-dirs".parse().unwrap();
        let held = Lock::acquire(&i, &dir.path().join("a")).unwrap();
        let e = format!(
            "{:#}",
            Lock::acquire(&i, &dir.path().join("b")).unwrap_err()
        );
        assert!(
            e.contains("already running") && e.contains(&format!("pid {}", std::process::id())),
            "{e}"
        );
        std::fs::remove_file(i.lock_file(&dir.path().join("a"))).unwrap();
        let e = format!(
            "{:#}",
            Lock::acquire(&i, &dir.path().join("a")).unwrap_err()
        );
        assert!(e.contains("already running"), "{e}");
        drop(held);
        Lock::acquire(&i, &dir.path().join("b")).unwrap();
    }

    #[test]
    fn two_instances_never_share_a_state_file_even_with_its_lock_deleted() {
        let dir = tempfile::tempdir().unwrap();
        let state = dir.path().join("shared.state");
        let (a, b): (Instance, Instance) = (
            "test-state-a".parse().unwrap(),
            "test-state-b".parse().unwrap(),
        );
        let held = StateLock::acquire(&state, &a).unwrap();
        let e = format!("{:#}", StateLock::acquire(&state, &b).unwrap_err());
        assert!(
            e.contains("shared.state is in use by")
                && e.contains(&format!("pid {}", std::process::id()))
                && e.contains("its own --state-file"),
            "{e}"
        );
        std::fs::remove_file(dir.path().join("shared.state.lock")).unwrap();
        assert!(StateLock::acquire(&state, &b).is_err());
        drop(held);
        let _b = StateLock::acquire(&state, &b).unwrap();
        // The lock file names the holder for the refusal.
        let text = std::fs::read_to_string(dir.path().join("shared.state.lock")).unwrap();
        assert_eq!(text, format!("{} test-state-b\n", std::process::id()));
        let other = dir.path().join("other.state");
        StateLock::acquire(&other, &a).unwrap();
    }

    #[test]
    fn a_held_name_is_refused_at_once_however_often_it_is_asked_for() {
        let held = Held::bind("test/asked-often").unwrap();
        held.listen();
        let me = format!("pid {}", std::process::id());
        assert_eq!(Held::bind("test/asked-often").unwrap_err().to_string(), me);
        // Past the backlog the holder goes unnamed, but the refusal never waits.
        for _ in 0..300 {
            let named = Held::bind("test/asked-often").unwrap_err().to_string();
            assert!(named == "another process" || named == me, "{named}");
        }
        let first = {
            drop(held);
            Held::bind("test/asked-often")
        };
        assert!(first.is_ok(), "released with its socket");
    }

    #[test]
    fn a_held_lock_file_names_its_instance_and_pid() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.lock");
        std::fs::write(&path, "4242 wan\n").unwrap();
        let f = std::fs::File::open(&path).unwrap();
        rustix::fs::flock(&f, rustix::fs::FlockOperation::LockExclusive).unwrap();
        let (_, owner) = flock_file(&path, 0o600).unwrap();
        assert_eq!(owner.as_deref(), Some("instance `wan` (pid 4242)"));
    }
}

//! Long-lived programs in a namespace: [`Daemon`] for any of them, and the [`Server`] builder
//! that starts a knock daemon (ours, or Debian's knockd) and waits until it listens.
//!
//! As hickory-dns's server harness does, a start waits with a deadline for the "listening"
//! line, fails at once with the daemon's output when it died instead, and the process is
//! killed in `Drop`, so a failing test leaves nothing running.

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus};
use std::time::{Duration, Instant};

use crate::knock::Knock;
use crate::netns::{Netns, SERVER_V4, run_ok};
use crate::{PATIENCE, bin, read, scratch, write};

/// A background process, killed (SIGKILL) on drop if still running.
pub struct Daemon {
    child: Option<Child>,
    /// Where its stdout and stderr go.
    pub output: PathBuf,
}

impl Daemon {
    /// Spawns `cmd`, whose stdout and stderr the caller pointed at `output`.
    pub fn spawn(mut cmd: Command, output: &Path) -> Daemon {
        let child = cmd.spawn().unwrap_or_else(|e| panic!("spawn {cmd:?}: {e}"));
        Daemon {
            child: Some(child),
            output: output.to_owned(),
        }
    }

    /// Its pid. Note: under `ip netns exec`, the pid is that of the program itself, because
    /// `ip netns exec` execs it after entering the namespace.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends a signal (`"TERM"`, `"HUP"`, `"KILL"`, ...).
    pub fn signal(&self, sig: &str) {
        run_ok("kill", [format!("-{sig}"), self.pid().to_string()]);
    }

    /// Kills it (SIGKILL) and reaps it, if it still runs.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Panics with the output so far if the process has exited: a daemon that died at start
    /// should fail the test at once with its error, not after a long wait.
    pub fn assert_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("daemon exited early ({status}):\n{}", read(&self.output));
        }
    }

    /// Waits (up to [`PATIENCE`]) for it to exit and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        let child = self.child.as_mut().expect("child present");
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit:\n{}",
                read(&self.output)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until its output contains `needle`; panics with the output if it does not
    /// within [`PATIENCE`] or if the process exits first.
    pub fn wait_output(&mut self, needle: &str) {
        self.wait_file(&self.output.clone(), needle);
    }

    /// Waits until `file` contains `needle`, failing fast if the daemon exits.
    pub fn wait_file(&mut self, file: &Path, needle: &str) {
        self.wait_file_count(file, needle, 1);
    }

    /// Waits until `file` contains `needle` at least `n` times, failing fast if the daemon
    /// exits.
    pub fn wait_file_count(&mut self, file: &Path, needle: &str, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if read(file).matches(needle).count() >= n {
                return;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} x {needle:?} in {}:\n{}\n--- daemon output:\n{}",
                file.display(),
                read(file),
                read(&self.output)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Which daemon a [`Server`] starts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Program {
    /// Our knock-server.
    Ours,
    /// Debian's knockd.
    Knockd,
}

/// Where a [`Server`]'s config comes from.
enum Config {
    /// A file that is there already.
    Path(PathBuf),
    /// Text written to the server's directory under this file name (`.toml` or knockd.conf).
    Text { name: String, text: String },
}

/// A knock daemon to start on a host: `Server::new(&link.server).config(&conf).start()`.
///
/// The defaults are what most tests want: interface `eth0`, the log file `server.log`, the
/// state file `pending-stops` and runtime directory `run` in the server's directory (each test
/// its own control socket and instance lock: tests run in parallel). Without [`Server::dir`]
/// the server gets a scratch directory of its own, removed with it.
pub struct Server<'a> {
    ns: &'a Netns,
    program: Program,
    dir: Option<PathBuf>,
    config: Option<Config>,
    log_name: String,
    interface: Option<String>,
    instance: Option<String>,
    state_file: Option<PathBuf>,
    args: Vec<OsString>,
}

impl<'a> Server<'a> {
    /// Our knock-server on `ns`.
    pub fn new(ns: &'a Netns) -> Server<'a> {
        Server {
            ns,
            program: Program::Ours,
            dir: None,
            config: None,
            log_name: "server.log".to_owned(),
            interface: Some("eth0".to_owned()),
            instance: None,
            state_file: None,
            args: Vec::new(),
        }
    }

    /// Debian's knockd on `ns` (`knockd -i eth0 -c CONFIG -g LOG -v`), logging to
    /// `knockd.log`; it takes no instance or state file.
    pub fn knockd(ns: &'a Netns) -> Server<'a> {
        Server {
            program: Program::Knockd,
            log_name: "knockd.log".to_owned(),
            ..Server::new(ns)
        }
    }

    /// The directory of its files (log, state, runtime directory, config text).
    pub fn dir(mut self, dir: &Path) -> Self {
        self.dir = Some(dir.to_owned());
        self
    }

    /// The config file at `path`.
    pub fn config(mut self, path: impl AsRef<Path>) -> Self {
        self.config = Some(Config::Path(path.as_ref().to_owned()));
        self
    }

    /// A config of `text`, written to the server's directory as `name` (whose extension,
    /// `.toml` or not, says its format).
    pub fn config_text(mut self, name: &str, text: &str) -> Self {
        self.config = Some(Config::Text {
            name: name.to_owned(),
            text: text.to_owned(),
        });
        self
    }

    /// The log file's name in the server's directory (`-g`).
    pub fn log_name(mut self, name: &str) -> Self {
        self.log_name = name.to_owned();
        self
    }

    /// The interface to listen on (`-i`); `None` listens on `any`.
    pub fn interface(mut self, interface: Option<&str>) -> Self {
        self.interface = interface.map(str::to_owned);
        self
    }

    /// `--instance NAME`.
    pub fn instance(mut self, name: &str) -> Self {
        self.instance = Some(name.to_owned());
        self
    }

    /// The state file (`--state-file`), instead of `pending-stops` in the directory.
    pub fn state_file(mut self, path: impl AsRef<Path>) -> Self {
        self.state_file = Some(path.as_ref().to_owned());
        self
    }

    /// More arguments, after the others (`-v`, `-l`...).
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Starts it and waits until it listens; panics with its output if it dies first or does
    /// not listen within [`PATIENCE`].
    pub fn start(self) -> RunningServer {
        let (dir, scratch_dir) = match &self.dir {
            Some(d) => (d.clone(), None),
            None => {
                let t = scratch();
                (t.path().to_owned(), Some(t))
            }
        };
        let config = match self.config {
            Some(Config::Path(p)) => p,
            Some(Config::Text { name, text }) => write(&dir, &name, &text),
            None => panic!("Server::start without a config"),
        };
        let log = dir.join(&self.log_name);
        let interface = self.interface.as_deref();
        let mut args: Vec<OsString> = Vec::new();
        if let Some(i) = interface {
            args.extend(["-i".into(), i.into()]);
        }
        args.extend(["-c".into(), config.into_os_string()]);
        args.extend(["-g".into(), log.clone().into_os_string()]);
        let (program, listening) = match self.program {
            Program::Ours => {
                let state = self.state_file.unwrap_or_else(|| dir.join("pending-stops"));
                args.extend(["--state-file".into(), state.into_os_string()]);
                args.extend(["--runtime-dir".into(), dir.join("run").into_os_string()]);
                if let Some(name) = &self.instance {
                    args.extend(["--instance".into(), name.into()]);
                }
                let on = interface.unwrap_or("any");
                (
                    bin("knock-server"),
                    format!("starting up, listening on {on}"),
                )
            }
            Program::Knockd => {
                assert!(
                    self.instance.is_none() && self.state_file.is_none(),
                    "knockd has no instances or state file"
                );
                args.push("-v".into());
                let on = interface.expect("knockd listens on one interface");
                (
                    PathBuf::from("/usr/sbin/knockd"),
                    format!("listening on {on}"),
                )
            }
        };
        args.extend(self.args);
        let mut daemon = self
            .ns
            .spawn(program, args, &dir.join(format!("{}.out", self.log_name)));
        daemon.wait_file(&log, &listening);
        RunningServer {
            daemon,
            log,
            _dir: scratch_dir,
        }
    }
}

/// A canary door, in knockd.conf's syntax: knocking it ([`RunningServer::canary`]) proves that
/// every earlier knock has been handled (hits are handled in order), so a test can assert that
/// something did NOT open without sleeping.
pub const CANARY: &str = "[canary]\n    sequence = 60001,60002\n";

/// A knock daemon a [`Server`] started, listening; killed on drop.
pub struct RunningServer {
    /// The process; its `output` is its stdout and stderr (`-v` lines go there).
    pub daemon: Daemon,
    /// Its LogFile (`-g`), in knockd's wording.
    pub log: PathBuf,
    /// The scratch directory, when the test gave none.
    _dir: Option<tempfile::TempDir>,
}

impl RunningServer {
    /// Waits for a log line containing `needle`, failing fast if the daemon exits.
    pub fn wait_log(&mut self, needle: &str) {
        self.wait_log_count(needle, 1);
    }

    /// Waits until the log contains `needle` at least `n` times.
    pub fn wait_log_count(&mut self, needle: &str, n: usize) {
        let log = self.log.clone();
        self.daemon.wait_file_count(&log, needle, n);
    }

    /// Knocks the [`CANARY`] door on [`SERVER_V4`] from `client` with Debian's knock and waits
    /// until it has opened `n` times in all.
    pub fn canary(&mut self, client: &Netns, n: usize) {
        Knock::debian(client)
            .args([SERVER_V4, "60001", "60002"])
            .ok();
        self.wait_log_count("canary: OPEN SESAME", n);
    }

    /// The log so far.
    pub fn log(&self) -> String {
        read(&self.log)
    }
}

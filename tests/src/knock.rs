//! [`Knock`]: every client a test knocks with, run the same way on a host.
//!
//! `Knock::ours(&link.client).args([SERVER_V4, "7000"]).ok()` runs our `knock`; the same
//! chain with [`Knock::debian`], [`Knock::telnet`] or [`Knock::wine`] runs Debian's `knock`,
//! telnet or `knock.exe` under Wine. [`Knock::unprivileged`] runs it as nobody with no
//! capability; [`Knock::config_home`] gives our client its own XDG_CONFIG_HOME (and HOME).
//! Then [`Knock::output`] (whatever the status), [`Knock::ok`] (must succeed),
//! [`Knock::fails`] (must exit 2) or [`Knock::spawn`] (telnet, held until the test is done).

use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use crate::bin;
use crate::daemon::Daemon;
use crate::netns::Netns;

/// Debian's knockd client (our own `knock` shares its name, so the full path).
pub const DEBIAN_KNOCK: &str = "/usr/bin/knock";
/// Where Debian's wine64 package puts the loader (the `wine` wrapper is in another package).
pub const WINE: &str = "/usr/lib/wine/wine64";

/// Which client knocks.
#[derive(Debug, Clone)]
enum Client {
    /// Our `knock`, built in this workspace.
    Ours,
    /// Debian's `knock`.
    Debian,
    /// telnet, one port per run.
    Telnet,
    /// `knock.exe` in this directory, under Wine, with the prefix `DIR/prefix`.
    Wine(PathBuf),
}

/// One run of a knock client on a host; see the module doc.
pub struct Knock<'a> {
    ns: &'a Netns,
    client: Client,
    unprivileged: bool,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
}

impl<'a> Knock<'a> {
    fn new(ns: &'a Netns, client: Client) -> Knock<'a> {
        Knock {
            ns,
            client,
            unprivileged: false,
            args: Vec::new(),
            env: Vec::new(),
        }
    }

    /// Our `knock`, with `KNOCK_CONFIG` removed from its environment.
    pub fn ours(ns: &'a Netns) -> Knock<'a> {
        Knock::new(ns, Client::Ours)
    }

    /// Debian's `knock`.
    pub fn debian(ns: &'a Netns) -> Knock<'a> {
        Knock::new(ns, Client::Debian)
    }

    /// telnet (`args` are the host and the port).
    pub fn telnet(ns: &'a Netns) -> Knock<'a> {
        Knock::new(ns, Client::Telnet)
    }

    /// `dir/knock.exe` under Wine, with the prefix `dir/prefix` and Wine's environment (see
    /// [`wine_command`]).
    pub fn wine(ns: &'a Netns, dir: &Path) -> Knock<'a> {
        Knock::new(ns, Client::Wine(dir.to_owned()))
    }

    /// Runs as nobody with no capability when `yes` (as [`Netns::command_as`]).
    pub fn unprivileged(mut self, yes: bool) -> Self {
        self.unprivileged = yes;
        self
    }

    /// `dir` as XDG_CONFIG_HOME and HOME: where our client looks for its profiles.
    pub fn config_home(self, dir: &Path) -> Self {
        self.env("XDG_CONFIG_HOME", dir).env("HOME", dir)
    }

    /// One more environment variable.
    pub fn env(mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> Self {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// One argument, after any given before.
    pub fn arg(mut self, arg: impl AsRef<OsStr>) -> Self {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// The client's arguments, after any given before.
    pub fn args<I, S>(mut self, args: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// The command this runs, for a caller that spawns it its own way.
    pub fn command(&self) -> Command {
        let mut cmd = match &self.client {
            Client::Ours => {
                let mut c = self.ns.command_as(bin("knock"), self.unprivileged);
                c.env_remove("KNOCK_CONFIG");
                c
            }
            Client::Debian => self.ns.command_as(DEBIAN_KNOCK, self.unprivileged),
            Client::Telnet => self.ns.command_as("telnet", self.unprivileged),
            Client::Wine(dir) => {
                assert!(!self.unprivileged, "Wine runs as root here");
                let mut c = wine_command(self.ns, dir, WINE);
                c.arg(dir.join("knock.exe"));
                c
            }
        };
        cmd.args(&self.args);
        for (k, v) in &self.env {
            cmd.env(k, v);
        }
        cmd
    }

    /// Runs to completion with no stdin; the output, whatever the status.
    pub fn output(&self) -> Output {
        self.command()
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {}: {e}", self.describe()))
    }

    /// Runs and panics with its output unless it succeeds.
    pub fn ok(&self) -> Output {
        let out = self.output();
        assert!(
            out.status.success(),
            "{} failed ({}): {}{}",
            self.describe(),
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs, expects success, and returns stdout.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.ok().stdout).into_owned()
    }

    /// Runs, expects exit status 2 (a clear error), and returns stderr.
    pub fn fails(&self) -> String {
        let out = self.output();
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "{}: {stderr}", self.describe());
        stderr
    }

    /// Starts it in the background with no stdin and its output discarded (telnet, which the
    /// test stops once enough has arrived); killed on drop.
    pub fn spawn(&self) -> Daemon {
        let mut cmd = self.command();
        cmd.stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        Daemon::spawn(cmd, Path::new("/dev/null"))
    }

    /// `client [args]` for messages.
    fn describe(&self) -> String {
        let name = match &self.client {
            Client::Ours => "knock",
            Client::Debian => "Debian's knock",
            Client::Telnet => "telnet",
            Client::Wine(_) => "knock.exe",
        };
        format!("{name} {:?}", self.args)
    }
}

/// `program` (the Wine loader, its wineserver) on `ns`, in the Wine prefix `dir/prefix`, run
/// from `dir` with Wine's environment only: no display, no Mono or Gecko to fetch, no debug
/// output.
pub fn wine_command(ns: &Netns, dir: &Path, program: impl AsRef<OsStr>) -> Command {
    let mut cmd = ns.command(program);
    cmd.current_dir(dir)
        .env_clear()
        .env("PATH", "/usr/sbin:/usr/bin:/sbin:/bin")
        .env("HOME", dir)
        .env("WINEPREFIX", dir.join("prefix"))
        .env("WINEDEBUG", "-all")
        // No Mono or Gecko installer: nothing is fetched, nothing asks.
        .env("WINEDLLOVERRIDES", "mscoree,mshtml=");
    cmd
}

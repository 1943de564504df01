//! The command line: knockd's flags with knockd's meanings, plus `--check` and the
//! instance flags, and subcommands that talk to a running daemon (`status`, `close`).
//!
//! With no subcommand the flags run the daemon, exactly as knockd's do (`knock-server -c
//! FILE -i IFACE`): [`Cli::command`] is `None` and [`Cli::daemon`] holds them. Raw flags live
//! here; the rest of the code sees checked values ([`Instance`], paths).

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use clap::{Args as ClapArgs, Parser, Subcommand};

use crate::instance::{self, Instance};

/// Exit status for usage, config and startup errors, of the daemon and of every subcommand
/// (knockd users' scripts test for non-zero).
pub const EXIT_USAGE: u8 = 2;

/// Writes to stdout; a reader that went away (`--check | head`, `pair DOOR | head`) is not an
/// error.
pub fn print_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use anyhow::Context as _;
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// Where knock-server looks for its config when `-c` is not given, in order.
pub const DEFAULT_CONFIGS: [&str; 2] = ["/etc/knock/server.toml", "/etc/knockd.conf"];

/// Port-knocking daemon, a drop-in replacement for knockd.
///
/// Watches packets at the link layer (pcap, with a kernel BPF filter) without listening on any
/// port, recognises knock sequences per source address, and acts: runs commands with the
/// knocker's address (%IP%), wakes a machine with Wake-on-LAN, mails a notice, or opens a
/// port to that one address for a while. Reads knockd.conf unchanged, or its own TOML format.
#[derive(Debug, Parser)]
#[command(name = "knock-server", version, about, long_about)]
#[command(after_long_help = AFTER_HELP, args_conflicts_with_subcommands = true)]
pub struct Cli {
    /// What to do; none: run the daemon.
    #[command(subcommand)]
    pub command: Option<Command>,
    /// The daemon's flags (knockd's).
    #[command(flatten)]
    pub daemon: Args,
}

/// Subcommands: talk to a running daemon through its control socket.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a running daemon's open doors, attempts in progress per door, and counters
    Status(StatusArgs),
    /// Close a door now (run its stop command, delete its nftables elements)
    Close(CloseArgs),
    /// Write a new 256-bit key for a rotating door (to FILE, created mode 600, or to stdout)
    Keygen(crate::keys::KeygenArgs),
    /// Print a rotating door's settings for a client's profile, with its key to copy
    Pair(crate::keys::PairArgs),
}

/// Which daemon: shared by the daemon and every subcommand.
#[derive(Debug, Clone, ClapArgs)]
pub struct InstanceArgs {
    /// Instance name: names the pid file, state file, nftables table and control socket, so
    /// that several daemons can run on one host (e.g. one per interface)
    #[arg(long = "instance", value_name = "NAME", default_value = instance::DEFAULT)]
    pub instance: Instance,

    /// Directory of the control socket and the instance lock
    #[arg(long = "runtime-dir", value_name = "DIR", default_value = instance::RUNTIME_DIR)]
    pub runtime_dir: PathBuf,
}

/// `knock-server status`.
#[derive(Debug, ClapArgs)]
pub struct StatusArgs {
    /// Which daemon.
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Print the daemon's answer as JSON (one object), for scripts and monitoring
    #[arg(long = "json")]
    pub json: bool,
}

/// `knock-server close`.
#[derive(Debug, ClapArgs)]
#[command(group = clap::ArgGroup::new("what").required(true).args(["door", "all"]))]
pub struct CloseArgs {
    /// Which daemon.
    #[command(flatten)]
    pub instance: InstanceArgs,
    /// Close every open door, for everyone
    #[arg(long = "all", conflicts_with_all = ["door", "ip"])]
    pub all: bool,
    /// The door to close (its name in the config)
    #[arg(value_name = "DOOR")]
    pub door: Option<String>,
    /// Close it only for this knocker [default: for everyone it is open to]
    #[arg(value_name = "IP", requires = "door")]
    pub ip: Option<IpAddr>,
}

/// The daemon's flags: knockd's, plus `--check`, `--state-file` and the instance.
#[derive(Debug, ClapArgs)]
pub struct Args {
    /// Network interface to listen on [default: the config's Interface, else `any`: every
    /// interface, IPv4 and IPv6]
    #[arg(short = 'i', long = "interface", value_name = "IFACE")]
    pub interface: Option<String>,

    /// Detach and run in the background (under systemd, stay in the foreground)
    #[arg(short = 'd', long = "daemon")]
    pub daemon: bool,

    /// Config file, knockd.conf or TOML (chosen by extension, then by content)
    /// [default: /etc/knock/server.toml if it exists, else /etc/knockd.conf]
    #[arg(short = 'c', long = "config", value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Output debug messages (every packet the filter lets through)
    #[arg(short = 'D', long = "debug")]
    pub debug: bool,

    /// Look up DNS names of knockers for the log. A security risk: the lookup itself tells
    /// the knocker's name server that a first port was hit
    #[arg(short = 'l', long = "lookup")]
    pub lookup: bool,

    /// Pid file [default: the config's PidFile, else /var/run/knockd.pid with -d]
    #[arg(short = 'p', long = "pidfile", value_name = "FILE")]
    pub pidfile: Option<PathBuf>,

    /// Log file, knockd's format [default: the config's LogFile]
    #[arg(short = 'g', long = "logfile", value_name = "FILE")]
    pub logfile: Option<PathBuf>,

    /// Be verbose: log each hit (with source port and TCP sequence number), why attempts broke,
    /// ignored packets and command output
    #[arg(short = 'v', long = "verbose")]
    pub verbose: bool,

    /// Do not track IPv6
    #[arg(short = '4', long = "only-ip-v4")]
    pub only_ipv4: bool,

    /// Check the config, print the doors it defines, and exit (0 if valid, 2 if not)
    #[arg(long = "check")]
    pub check: bool,

    /// Where pending stop commands are kept, so that a crash or kill never leaves a door
    /// open: the next start runs them on time [default: /var/lib/knock-server/INSTANCE.state]
    #[arg(long = "state-file", value_name = "FILE")]
    pub state_file: Option<PathBuf>,

    /// Which instance this daemon is.
    #[command(flatten)]
    pub instance: InstanceArgs,

    /// Print the man page (roff) and exit
    #[arg(long = "man", hide = true)]
    pub man: bool,

    /// Print the completion script for SHELL (bash, zsh, fish, elvish, powershell) and exit
    #[arg(long = "completions", value_name = "SHELL", hide = true)]
    pub completions: Option<crate::completions::Shell>,
}

const AFTER_HELP: &str = "\
Signals: SIGHUP re-reads the config (a broken one is logged and the old one keeps running)
and reopens the log file; SIGUSR1 only reopens the log file (for logrotate); SIGTERM and
SIGINT run every pending stop command, close opened ports, and exit.

Subcommands `status` and `close` talk to a running daemon of the same --instance through its
control socket (RUNTIME-DIR/INSTANCE.sock, root only).

Exit status: 0 on a clean exit, 2 for a usage or config error, 1 for a runtime failure.";

impl Args {
    /// The config file to read: `-c`, else the first default that exists, else knockd's.
    pub fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| default_config(|p| p.exists()))
    }

    /// The state file: `--state-file`, else the instance's.
    pub fn state_path(&self) -> PathBuf {
        self.state_file
            .clone()
            .unwrap_or_else(|| self.instance.instance.state_file())
    }
}

/// The first of [`DEFAULT_CONFIGS`] for which `exists` holds, else the last one (so the error
/// names the file knockd users expect).
pub fn default_config(exists: impl Fn(&Path) -> bool) -> PathBuf {
    DEFAULT_CONFIGS
        .iter()
        .map(Path::new)
        .find(|p| exists(p))
        .unwrap_or(Path::new(DEFAULT_CONFIGS[1]))
        .to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::CommandFactory;

    #[test]
    fn cli_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("knock-server").chain(args.iter().copied()))
    }

    #[test]
    fn knockd_flags_parse() {
        let a = Cli::try_parse_from([
            "knock-server",
            "-i",
            "eth0",
            "-d",
            "-c",
            "/x.conf",
            "-D",
            "-l",
            "-p",
            "/p",
            "-g",
            "/g",
            "-v",
            "-4",
        ])
        .unwrap();
        assert!(a.command.is_none());
        let a = a.daemon;
        assert!(a.instance.instance.is_default());
        assert_eq!(
            a.state_path(),
            PathBuf::from("/var/lib/knock-server/knock-server.state")
        );
        assert_eq!(a.interface.as_deref(), Some("eth0"));
        assert!(a.daemon && a.debug && a.lookup && a.verbose && a.only_ipv4);
        assert_eq!(a.config_path(), PathBuf::from("/x.conf"));
    }

    #[test]
    fn subcommands_take_the_instance_and_daemon_flags_do_not_mix_with_them() {
        let c = parse(&["status", "--instance", "eth0", "--json"]).unwrap();
        let Some(Command::Status(s)) = c.command else {
            panic!("not status")
        };
        assert!(s.json && s.instance.instance.as_str() == "eth0");
        let c = parse(&["close", "ssh", "198.18.0.1", "--runtime-dir", "/tmp/r"]).unwrap();
        let Some(Command::Close(cl)) = c.command else {
            panic!("not close")
        };
        assert_eq!(cl.door.as_deref(), Some("ssh"));
        assert_eq!(cl.ip, Some("198.18.0.1".parse().unwrap()));
        assert_eq!(cl.instance.runtime_dir, PathBuf::from("/tmp/r"));
        assert!(parse(&["close", "--all"]).is_ok());
        assert!(parse(&["close"]).is_err(), "close needs a door or --all");
        assert!(parse(&["close", "--all", "ssh"]).is_err());
        assert!(parse(&["status", "--instance", "a/b"]).is_err());
        let d = parse(&["--instance", "wan-1", "-c", "/x"]).unwrap();
        assert_eq!(d.daemon.instance.instance.table(), "knock_server_wan_1");
        assert_eq!(
            d.daemon.state_path(),
            PathBuf::from("/var/lib/knock-server/wan-1.state")
        );
    }

    #[test]
    fn default_config_prefers_toml_then_knockd() {
        assert_eq!(
            default_config(|_| true),
            PathBuf::from("/etc/knock/server.toml")
        );
        assert_eq!(
            default_config(|p| p == Path::new("/etc/knockd.conf")),
            PathBuf::from("/etc/knockd.conf")
        );
        assert_eq!(default_config(|_| false), PathBuf::from("/etc/knockd.conf"));
    }
}

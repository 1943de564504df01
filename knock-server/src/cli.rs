//! The command line: knockd's flags with knockd's meanings, plus `--check`.
//!
//! Raw flags live here; [`Args::settings`] turns them into the values the daemon runs with
//! (config path resolved, interface chosen), so the rest never looks at clap types.

use std::path::{Path, PathBuf};

use clap::{Args as ClapArgs, Parser, Subcommand};

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

/// Subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Write a new 256-bit key for a rotating door (to FILE, created mode 600, or to stdout)
    Keygen(crate::keys::KeygenArgs),
    /// Print a rotating door's settings for a client's profile, with its key to copy
    Pair(crate::keys::PairArgs),
}

/// The daemon's flags.
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
    /// open: the next start runs them on time
    #[arg(long = "state-file", value_name = "FILE", default_value = crate::journal::DEFAULT_PATH)]
    pub state_file: PathBuf,

    /// Print the man page (roff) and exit
    #[arg(long = "man", hide = true)]
    pub man: bool,
}

const AFTER_HELP: &str = "\
Signals: SIGHUP re-reads the config (a broken one is logged and the old one keeps running);
SIGTERM and SIGINT run every pending stop command, close opened ports, and exit.

Exit status: 0 on a clean exit, 2 for a usage or config error, 1 for a runtime failure.";

impl Args {
    /// The config file to read: `-c`, else the first default that exists, else knockd's.
    pub fn config_path(&self) -> PathBuf {
        self.config
            .clone()
            .unwrap_or_else(|| default_config(|p| p.exists()))
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
        .unwrap()
        .daemon;
        assert_eq!(a.interface.as_deref(), Some("eth0"));
        assert!(a.daemon && a.debug && a.lookup && a.verbose && a.only_ipv4);
        assert_eq!(a.config_path(), PathBuf::from("/x.conf"));
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

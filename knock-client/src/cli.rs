//! The command line, as clap sees it: raw flags and positional words, nothing validated yet.
//!
//! Two modes share one positional pair. `knock PROFILE SEQUENCE` knocks a named sequence from
//! the config; `knock HOST PORT[:PROTO]...` is Debian's `knock`. Which one applies is decided
//! later, against the config ([`crate::plan`]): when the first word names a profile, profile mode
//! wins. The same [`command`] feeds the parser, the shell completions and the man page.

use std::path::PathBuf;

use clap::{ArgAction, CommandFactory, Parser, ValueEnum, ValueHint};
use clap_complete::engine::{ArgValueCandidates, ArgValueCompleter};

use crate::complete;
use crate::profiles::MAX_DELAY_MS;
use crate::proxy::Target;

const ABOUT: &str =
    "Send a port-knock sequence: a named one from your profiles, or knockd-style ports";

const LONG_ABOUT: &str = "\
Send a port-knock sequence: a named one from your profiles, or knockd-style ports.

Profile mode: `knock PROFILE SEQUENCE` sends that sequence of that profile to the profile's host.
Profiles live in the config file (see --config); `knock --list` shows them.

knockd mode: `knock [-u] [-d MS] [-4|-6] [-v] HOST PORT[:PROTO]...` behaves as Debian's knock.

When the first argument names a profile, profile mode wins.

TCP knocks are real SYNs: crafted on a raw socket when allowed (root or CAP_NET_RAW on Linux;
the hits of one port then share source port and sequence number, like a kernel's
retransmissions), otherwise a connection attempt that is abandoned as soon as its SYN is out.
UDP knocks are one-byte datagrams.";

const AFTER_HELP: &str = "\
Examples:
  knock home wake-laptop                  the sequence `wake-laptop` of profile `home`
  knock --hits 3 home wake-laptop         each port three times, telnet-style
  knock myserver.example.com 123:tcp 456:udp 789:tcp
  knock -u myserver.example.com 8284 4721 18592 42912
  knock home ssh --proxy %h:%p            in ~/.ssh/config: ProxyCommand knock home ssh --proxy %h:%p

Exit status: 0 when every knock was sent, 2 on any error.";

/// knock's command line.
#[derive(Debug, Parser)]
#[command(
    name = "knock",
    bin_name = "knock",
    version,
    about = ABOUT,
    long_about = LONG_ABOUT,
    after_help = AFTER_HELP,
    arg_required_else_help = true,
    max_term_width = 100
)]
pub struct Cli {
    /// A profile name from the config, or the host to knock (name or IPv4/IPv6 address).
    #[arg(value_name = "PROFILE|HOST", add = ArgValueCandidates::new(complete::profiles))]
    pub target: Option<String>,

    /// With a profile: the name of one of its sequences. With a host: the ports to knock, in
    /// order, as `PORT[:tcp|udp]` (TCP when not given).
    #[arg(
        value_name = "SEQUENCE|PORT[:PROTO]",
        add = ArgValueCompleter::new(complete::sequences)
    )]
    pub rest: Vec<String>,

    /// Make every hit UDP, whatever the sequence says (as knock -u).
    #[arg(short = 'u', long)]
    pub udp: bool,

    /// Wait MS milliseconds between hits, 0 to 3600000 (overrides the profile's delay_ms).
    #[arg(
        short = 'd',
        long,
        value_name = "MS",
        value_parser = clap::value_parser!(u64).range(0..=MAX_DELAY_MS)
    )]
    pub delay: Option<u64>,

    /// Knock each port N times, telnet-style (overrides the profile's hits; default 1).
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u8).range(1..))]
    pub hits: Option<u8>,

    /// Wait MS milliseconds between the hits of one port, 0 to 10000 (overrides the profile's
    /// hit_delay_ms; default: the delay between hits, at least 20 for raw IPv6 SYNs).
    #[arg(long, value_name = "MS", value_parser = clap::value_parser!(u64).range(0..=10_000))]
    pub hit_delay: Option<u64>,

    /// Use IPv4 only.
    #[arg(short = '4', long = "ipv4", conflicts_with = "ipv6")]
    pub ipv4: bool,

    /// Use IPv6 only.
    #[arg(short = '6', long = "ipv6")]
    pub ipv6: bool,

    /// Print each hit as it is sent (`hitting tcp 198.18.0.2:7000`) and how TCP is sent.
    #[arg(short, long)]
    pub verbose: bool,

    /// Print what would be sent, and send nothing.
    #[arg(short = 'n', long)]
    pub dry_run: bool,

    /// After knocking, connect to HOST:PORT and relay standard input and output over it:
    /// `ProxyCommand knock home ssh --proxy %h:%p` in ~/.ssh/config knocks and connects.
    #[arg(long, value_name = "HOST:PORT", conflicts_with = "dry_run")]
    pub proxy: Option<Target>,

    /// With --proxy: how long to keep trying to connect after knocking, in seconds.
    #[arg(
        long,
        value_name = "SECONDS",
        default_value_t = 10,
        requires = "proxy",
        value_parser = clap::value_parser!(u64).range(1..=3600)
    )]
    pub wait: u64,

    /// For a rotating sequence: print its current ports and the seconds left in its step,
    /// and send nothing (for knocking by hand from a machine without knock).
    #[arg(long, conflicts_with = "dry_run")]
    pub show: bool,

    /// Read profiles from FILE instead of the default
    /// (Linux: $XDG_CONFIG_HOME/knock/config.toml, i.e. ~/.config/knock/config.toml).
    #[arg(
        short = 'c',
        long,
        value_name = "FILE",
        env = "KNOCK_CONFIG",
        hide_env_values = true,
        value_hint = ValueHint::FilePath
    )]
    pub config: Option<PathBuf>,

    /// List the profiles and their sequences, then exit.
    #[arg(short = 'l', long, conflicts_with_all = ["target", "rest", "proxy"])]
    pub list: bool,

    /// Print the completion script for SHELL, then exit.
    #[arg(long, value_name = "SHELL", value_enum)]
    pub completions: Option<Shell>,

    /// Print the man page (roff), then exit.
    #[arg(long, hide = true, action = ArgAction::SetTrue)]
    pub man: bool,
}

/// The shells `--completions` knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Shell {
    /// GNU bash.
    Bash,
    /// Z shell.
    Zsh,
    /// fish.
    Fish,
    /// PowerShell.
    Powershell,
    /// Elvish.
    Elvish,
}

/// The clap definition of the command line.
pub fn command() -> clap::Command {
    Cli::command()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn definition_is_consistent() {
        command().debug_assert();
    }

    #[test]
    fn knockd_style_arguments_parse() {
        let cli = Cli::try_parse_from(["knock", "-u", "-d", "50", "-4", "-v", "h", "1", "2:tcp"])
            .expect("knockd style");
        assert!(cli.udp && cli.ipv4 && cli.verbose);
        assert_eq!(cli.delay, Some(50));
        assert_eq!(cli.target.as_deref(), Some("h"));
        assert_eq!(cli.rest, ["1", "2:tcp"]);
    }

    #[test]
    fn conflicting_families_and_zero_hits_are_refused() {
        assert!(Cli::try_parse_from(["knock", "-4", "-6", "h", "1"]).is_err());
        assert!(Cli::try_parse_from(["knock", "--hits", "0", "h", "1"]).is_err());
        assert!(Cli::try_parse_from(["knock", "--list", "h"]).is_err());
    }
}

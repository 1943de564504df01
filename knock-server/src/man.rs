//! knock-server(8), generated from the command line definition plus the sections clap does
//! not know: both config formats with every key, signals, files, exit status.
//! `man/knock-server.8` is this output, kept current by a test.

use clap::CommandFactory as _;
use clap_mangen::roff::{Roff, bold, italic, roman};
use knock_proto::config::keys::{self, ConfigKey};
use knock_proto::config::rotating_keys;

use crate::cli::Cli;

/// Renders the page.
pub fn render() -> std::io::Result<Vec<u8>> {
    let man = clap_mangen::Man::new(Cli::command())
        .section("8")
        .manual("System Administration")
        .source(format!("knock {}", env!("CARGO_PKG_VERSION")));
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    man.render_options_section(&mut out)?;
    operator_control().to_writer(&mut out)?;
    extra().to_writer(&mut out)?;
    man.render_version_section(&mut out)?;
    Ok(out)
}

/// The declared keys (`knock_proto::config::keys`), each with its spellings in both formats.
fn config_keys(roff: &mut Roff, keys: &[ConfigKey]) {
    for k in keys {
        let knockd = match k.knockd.join(", ") {
            none if none.is_empty() => "-".to_owned(),
            spellings => spellings,
        };
        let toml: Vec<&str> = [k.name]
            .into_iter()
            .chain(k.toml_aliases.iter().copied())
            .collect();
        key(roff, &knockd, &toml.join(", "), &k.describe());
        if k.name == keys::ROTATING_KEYS_AFTER {
            for r in &rotating_keys::KEYS {
                key(roff, "-", r.name, &r.describe());
            }
        }
    }
}

fn key(roff: &mut Roff, knockd: &str, toml: &str, what: &str) {
    let mut head = Vec::new();
    if knockd != "-" {
        head.push(bold(knockd));
        head.push(roman(" (knockd.conf), "));
    }
    head.push(bold(toml));
    head.push(roman(" (TOML)"));
    roff.control("TP", []).text(head).text([roman(what)]);
}

/// `status` and `close`, which clap lists by name only.
fn operator_control() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["OPERATOR CONTROL"]).text([roman(
        "A running daemon answers on its control socket, RUNTIME-DIR/INSTANCE.sock (root only). \
         Both subcommands take --instance NAME and --runtime-dir DIR to find it; without a \
         running daemon they say which socket they tried and exit 2.",
    )]);
    for (usage, what) in [
        (
            "knock-server status [--json]",
            "Open doors (door, knocker, since, closes in, how: stop command or nftables), \
             attempts in progress per door, and counters. --json prints the daemon's answer as \
             one JSON object.",
        ),
        (
            "knock-server close DOOR [IP]",
            "Close DOOR now, for IP only or for everyone it is open to: its pending stop command \
             runs now (once) and its nftables elements are deleted. Exit 2 for an unknown door.",
        ),
        ("knock-server close --all", "Close every open door."),
    ] {
        r.control("TP", []).text([bold(usage)]).text([roman(what)]);
    }
    r
}

fn extra() -> Roff {
    let mut r = Roff::new();
    r.control("SH", ["CONFIGURATION"]).text([roman(
        "knock-server reads knockd.conf unchanged, or its own TOML format. A file ending in .toml \
         is TOML, one ending in .conf is knockd.conf; otherwise the content decides. Errors name \
         file, line and column; every error in the file is reported, and the exit status is 2.",
    )]);
    r.control("SS", ["knockd.conf"]).text([roman(
        "Line based. Empty lines and lines starting with # are skipped. [options] holds global \
         settings; every other [name] section is a door, whose name appears in the log. Keys are \
         case-insensitive; a line is split at its first =.",
    )]);
    r.control("SS", ["TOML"]).text([
        roman("Global settings in "),
        bold("[options]"),
        roman(", doors in "),
        bold("[doors.NAME]"),
        roman(", knockd's keys in snake_case. Unknown keys are errors."),
    ]);
    r.control("SS", ["Global settings"]);
    config_keys(&mut r, &keys::OPTION_KEYS);
    r.control("SS", ["Door settings"]);
    config_keys(&mut r, &keys::DOOR_KEYS);
    r.control("SH", ["KEYS"]).text([roman(
        "knock-server keygen [FILE] writes a new 256-bit key for a rotating door, as base64, to \
         FILE (created mode 600; an existing file is never overwritten) or to stdout. \
         knock-server pair DOOR [-c FILE] [--key-path PATH] prints the key and the line a \
         client's profile needs for that door; send it over a channel you trust. The daemon, \
         --check and the client refuse a key file that anyone but its owner can read or write, \
         that belongs to another user than root or its reader, or that sits below a directory \
         others can write (a sticky one like /tmp excepted), and say how to fix it (chmod 600 \
         FILE, chown, chmod go-w DIR); the exit status is then 2.",
    )]);
    r.control("SH", ["LOG"]).text([roman(
        "knockd's lines: IP: door: Stage N; IP: door: OPEN SESAME; door: running command: CMD; \
         IP: door: sequence timeout (stage N); IP: door: command timeout; door: command returned \
         non-zero status code (N). Once a minute, when there were any, a summary of ignored and \
         dropped packets and of evicted attempts.",
    )]);
    r.control("SH", ["SIGNALS"]);
    r.control("TP", []).text([bold("SIGHUP")]).text([roman(
        "Re-read the config. A broken config is logged and the running one is kept. The log \
         file is reopened too.",
    )]);
    r.control("TP", []).text([bold("SIGUSR1")]).text([roman(
        "Reopen the log file (after logrotate moved it away), nothing else.",
    )]);
    r.control("TP", [])
        .text([bold("SIGTERM, SIGINT")])
        .text([roman(
            "Run every pending stop command, remove the nftables table, exit.",
        )]);
    r.control("SH", ["FILES"]);
    for (file, what) in [
        ("/etc/knock/server.toml", "The config, if it exists."),
        ("/etc/knockd.conf", "The config otherwise."),
        (
            "/var/lib/knock-server/INSTANCE.state",
            "Stop commands not yet run (--state-file), written mode 0600, with the rotating \
             doors' replay record beside it (INSTANCE.state.replay) and its lock \
             (INSTANCE.state.lock: one daemon per state file). Never followed if a symbolic \
             link. Refused at start, with the fix, if another user than the daemon's (or \
             root) owns them or can write them or their directory.",
        ),
        (
            "/run/knock-server/INSTANCE.sock",
            "The control socket of status and close (root only, mode 0600).",
        ),
        (
            "/run/knock-server/INSTANCE.lock",
            "Held (flock) while the instance runs; holds its pid. A second daemon of the \
             same instance refuses to start, whatever its --runtime-dir: the instance's name \
             is held in the network namespace's abstract socket namespace too.",
        ),
        (
            "/etc/knock/INSTANCE.toml",
            "The config of knock-server@INSTANCE.service (the systemd template unit).",
        ),
        (
            "/usr/share/bash-completion/completions/knock-server",
            "Shell completion of the subcommands and flags, as the Debian package installs it; \
             zsh's is /usr/share/zsh/vendor-completions/_knock-server, fish's \
             /usr/share/fish/vendor_completions.d/knock-server.fish. knock-server \
             --completions SHELL prints them (bash, zsh, fish, powershell, elvish).",
        ),
    ] {
        r.control("TP", []).text([italic(file)]).text([roman(what)]);
    }
    r.control("SH", ["INSTANCES"]).text([roman(
        "--instance NAME (default knock-server) names what a daemon owns: its state file, \
         control socket, lock, pid file with -d (RUNTIME-DIR/NAME.pid; knockd's \
         /var/run/knockd.pid for the default instance) and nftables table (inet \
         knock_server_NAME with - as _; knock_server for the default instance). Several \
         instances run side by side, e.g. one per interface, and never touch each other's \
         table, state or ports. status and close take the same --instance.",
    )]);
    r.control("SH", ["EXIT STATUS"]).text([roman(
        "0 after SIGTERM or SIGINT, or a valid --check; 2 for usage, config and startup errors \
         (no such interface, no capture permission); 1 when capture fails while running.",
    )]);
    r.control("SH", ["SEE ALSO"])
        .text([roman("knock(1), knockd(1), nft(8)")]);
    r
}

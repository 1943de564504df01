//! knock-server(8), generated from the command line definition plus the sections clap does
//! not know: both config formats with every key, signals, files, exit status.
//! `man/knock-server.8` is this output, kept current by a test.

use clap::CommandFactory as _;
use clap_mangen::roff::{Roff, bold, italic, roman};

use crate::cli::Cli;

/// (key in knockd.conf, key in TOML, what it does)
const OPTION_KEYS: &[(&str, &str, &str)] = &[
    (
        "UseSyslog",
        "use_syslog = true",
        "Log to syslog (identity knockd, facility daemon) as well.",
    ),
    (
        "LogFile = PATH",
        "log_file",
        "Append knockd-style lines, each prefixed [YYYY-MM-DD HH:MM], to PATH.",
    ),
    (
        "PidFile = PATH",
        "pid_file",
        "Write the daemon's pid to PATH (default /var/run/knockd.pid with -d).",
    ),
    (
        "Interface = NAME",
        "interface",
        "Capture on NAME; -i wins. Default: any (every interface).",
    ),
    (
        "-",
        "max_attempts",
        "Cap on knock attempts in progress (default 100000); when full, the oldest is evicted.",
    ),
    (
        "-",
        "sendmail",
        "Program for mail_to, called as PROGRAM -t -i (default /usr/sbin/sendmail).",
    ),
    (
        "-",
        "mail_from",
        "From address of mail notices (default knock@HOSTNAME).",
    ),
];

/// (key in knockd.conf, key in TOML, what it does): the sequence keys first, then (from
/// `knock_proto::config::rotating_keys`) the keys of rotating doors, then these.
const DOOR_KEYS: &[(&str, &str, &str)] = &[
    (
        "Sequence",
        "sequence",
        "The knocks, port[:tcp|udp],... (TCP when no protocol is given). In TOML also an array of such strings.",
    ),
    (
        "One_Time_Sequences",
        "one_time_sequences",
        "A file with one sequence per line, each usable once: the used line gets # as its first character and the next line becomes the sequence. A relative path is relative to the config file. When no line is left the door is disabled, with a warning.",
    ),
    // Then the rotating keys, from their one declaration: see `door_keys`.
    (
        "Seq_Timeout, Timeout",
        "seq_timeout",
        "Seconds allowed from the first knock to the last (default 25).",
    ),
    (
        "TCPFlags",
        "tcpflags",
        "Flags a TCP knock must carry, e.g. syn or syn,!ack (! = must be clear); other TCP packets are ignored.",
    ),
    (
        "Start_Command, Command",
        "start_command, command",
        "Run when the door opens, %IP% replaced by the knocker's address. Split into arguments like a shell would, never run through a shell.",
    ),
    (
        "Start_Command_6, Command_6",
        "start_command_6, command_6",
        "The same for IPv6 knockers; falls back to the IPv4 one.",
    ),
    (
        "Stop_Command",
        "stop_command",
        "Run Cmd_Timeout seconds after the start command, on SIGTERM, or after a crash when the daemon starts again.",
    ),
    (
        "Stop_Command_6",
        "stop_command_6",
        "The same for IPv6 knockers; falls back to the IPv4 one.",
    ),
    (
        "Cmd_Timeout",
        "cmd_timeout",
        "Seconds between start and stop command (default 10).",
    ),
    (
        "Target",
        "target",
        "Match knocks sent to this address instead of the host's own.",
    ),
    (
        "-",
        "wake_on_lan",
        "Send a Wake-on-LAN magic packet: a MAC, or { mac, address (255.255.255.255), port (9), interface }.",
    ),
    (
        "-",
        "mail_to",
        "Mail a notice (door, knocker, time, what was done) to these addresses through sendmail.",
    ),
    (
        "-",
        "open",
        "Open these ports (\"1723/tcp\", or an array) to the knocker only, in knock-server's own nftables table; the kernel closes them again after open_seconds even if the daemon is killed.",
    ),
    (
        "-",
        "open_seconds",
        "How long open stays open (default 20).",
    ),
];

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

fn keys(roff: &mut Roff, keys: &[(&str, &str, &str)]) {
    for (knockd, toml, what) in keys {
        key(roff, knockd, toml, what);
    }
}

/// [`DOOR_KEYS`] with the rotating keys after the two sequence keys.
fn door_keys(roff: &mut Roff) {
    let (sequences, rest) = DOOR_KEYS.split_at(2);
    keys(roff, sequences);
    for k in &knock_proto::config::rotating_keys::KEYS {
        key(roff, "-", k.name, &k.describe());
    }
    keys(roff, rest);
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
    keys(&mut r, OPTION_KEYS);
    r.control("SS", ["Door settings"]);
    door_keys(&mut r);
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

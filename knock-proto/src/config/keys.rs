//! The keys of `[options]` and of a door, in both formats, declared once: their TOML name,
//! knockd.conf spelling, value, default, range and meaning, and the function that reads each
//! format's value ([`OPTION_KEYS`], [`DOOR_KEYS`]).
//!
//! Everything that lists keys comes from here: the knockd.conf parser's lookup and the TOML
//! walk's (`config::knockd`, `config::toml`), "did you mean" and its lists of known keys,
//! `knock-server --check`'s rows (`describe.rs`, through each key's [`Check`]), the man page's
//! key list (knock-server's `man.rs`) and the key table of docs/configuration.md
//! ([`markdown_table`], checked by a test). The keys of rotating doors are declared the same
//! way, in [`super::rotating_keys`], because the client reads them too; they come right after
//! [`ROTATING_KEYS_AFTER`] wherever door keys are listed.
//!
//! Adding a key is one declaration here, the field it fills (in [`Door`] or [`Options`],
//! with its default in `Door::new` or `Options::default`) and its readers, which live with
//! their parser: `knockd/door.rs`, `knockd.rs`, `toml/door.rs`, `toml.rs`. The tests in
//! `keys/tests.rs` fail when a field of [`Door`] or [`Options`] is set by no declaration, or
//! when a declaration's sample value does not reach the model in each format it is spelled in.

use std::ops::RangeInclusive;

use super::describe;
use super::model::{
    DEFAULT_CMD_TIMEOUT, DEFAULT_MAX_ATTEMPTS, DEFAULT_OPEN_SECONDS, DEFAULT_SEQ_TIMEOUT, Door,
    MAX_TIMEOUT, Options,
};
pub use super::rotating_keys::Written;
use super::walk::{Key, Val, Walker};
use super::{knockd, rotating_keys, toml};

/// The range of `Seq_Timeout`, in seconds: a sequence needs some time, and no timeout is
/// longer than [`MAX_TIMEOUT`].
pub const SEQ_TIMEOUT: RangeInclusive<u64> = 1..=MAX_TIMEOUT.as_secs();
/// The range of `Cmd_Timeout`, in seconds: 0 runs the stop command right after the start one.
pub const CMD_TIMEOUT: RangeInclusive<u64> = 0..=MAX_TIMEOUT.as_secs();
/// The range of `open_seconds`.
pub const OPEN_SECONDS: RangeInclusive<u64> = 1..=MAX_TIMEOUT.as_secs();
/// The range of `max_attempts`: above, at under 64 bytes an attempt, 6.4 GB; more is a typo.
pub const MAX_ATTEMPTS: RangeInclusive<u64> = 1..=100_000_000;
/// The default `sendmail`.
pub const DEFAULT_SENDMAIL: &str = "/usr/sbin/sendmail";

/// One key of `[options]` or of a door.
#[derive(Debug, Clone, Copy)]
pub struct ConfigKey {
    /// The key in TOML, as `--check` and the docs name it.
    pub name: &'static str,
    /// Other TOML spellings of the same setting (knockd's `command` for `start_command`).
    pub toml_aliases: &'static [&'static str],
    /// The key in knockd.conf, then its aliases (knockd.conf keys are case-insensitive);
    /// empty when the key is TOML only.
    pub knockd: &'static [&'static str],
    /// What the value is, for the docs: "seconds", "a path", "a command".
    pub value: &'static str,
    /// The value taken when the key is left out, as written in TOML; `None` when leaving it
    /// out means "none" or a default that depends on more than the config.
    pub default: Option<Written>,
    /// The accepted numbers, for a number.
    pub range: Option<(u32, u32)>,
    /// What it does, for the man page: `{default}` and `{range}` stand for the above.
    pub doc: &'static str,
    /// A value other than the default, as written in TOML (in knockd.conf without quotes):
    /// the tests read it through each format.
    pub example: Written,
    /// How each format reads it.
    pub(crate) read: Read,
    /// How `--check` shows it.
    pub check: Check,
}

/// How `knock-server --check` shows a key (`config/describe.rs` writes the rows): the value
/// of its row, `None` to leave the row out.
#[derive(Debug, Clone, Copy)]
pub enum Check {
    /// A row of `options:`; the flag says whether any door mails.
    Option(fn(&Options, bool) -> Option<String>),
    /// A row of a door.
    Door(fn(&Door) -> Option<String>),
    /// Said in the row of this other key.
    In(&'static str),
    /// Written by `describe.rs` itself, with what only the whole config knows (the door's
    /// sequence: rotating doors' older pairings).
    Own,
}

/// The readers of one key.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Read {
    /// knockd.conf's; `None` exactly when [`ConfigKey::knockd`] is empty.
    pub(crate) knockd: Option<KnockdRead>,
    /// TOML's.
    pub(crate) toml: TomlRead,
}

/// How knockd.conf reads a key. Each reader gets the key's canonical knockd.conf spelling
/// (`Seq_Timeout` for `Timeout` too), for its messages; it reports a bad value itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum KnockdRead {
    /// A bare word without `=` (`UseSyslog`), which knockd takes in any section.
    Word(fn(&mut Options)),
    /// A line of `[options]`.
    Option(for<'t> fn(&mut knockd::Parser<'t>, &'static str, &knockd::Directive<'t>)),
    /// A line of the door at this index.
    Door(for<'t> fn(&mut knockd::Parser<'t>, usize, &'static str, &knockd::Directive<'t>)),
}

/// How TOML reads a key. Each reader gets the key as written (one of the TOML spellings).
#[derive(Debug, Clone, Copy)]
pub(crate) enum TomlRead {
    /// A key of `[options]`.
    Option(fn(&mut Walker<'_>, &mut Options, &'static str, &Key<'_>, &Val<'_>)),
    /// A key of a `[doors.NAME]` table.
    Door(fn(&mut Walker<'_>, &mut toml::door::Draft, &'static str, &Key<'_>, &Val<'_>)),
}

/// A timeout or a count as the declarations write it.
const fn number(n: u64) -> Option<Written> {
    Some(Written::Number(n as u32))
}

/// A range as the declarations write it.
const fn range(r: RangeInclusive<u64>) -> Option<(u32, u32)> {
    Some((*r.start() as u32, *r.end() as u32))
}

/// The keys of `[options]`, in the order the docs list them.
pub const OPTION_KEYS: [ConfigKey; 8] = [
    ConfigKey {
        name: "use_syslog",
        toml_aliases: &[],
        knockd: &["UseSyslog"],
        value: "true or false (knockd.conf: the word alone)",
        default: Some(Written::Bool(false)),
        range: None,
        doc: "Log to syslog (identity knockd, facility daemon) as well.",
        example: Written::Bool(true),
        check: Check::Option(|o, _| Some(if o.use_syslog { "yes" } else { "no" }.to_owned())),
        read: Read {
            knockd: Some(KnockdRead::Word(|o| o.use_syslog = true)),
            toml: TomlRead::Option(toml::use_syslog),
        },
    },
    ConfigKey {
        name: "log_file",
        toml_aliases: &[],
        knockd: &["LogFile"],
        value: "a path",
        default: None,
        range: None,
        doc: "Append knockd-style lines, each prefixed [YYYY-MM-DD HH:MM], to this file.",
        example: Written::Text("/var/log/knockd.log"),
        check: Check::Option(|o, _| Some(describe::path(&o.log_file, "(none)"))),
        read: Read {
            knockd: Some(KnockdRead::Option(knockd::log_file)),
            toml: TomlRead::Option(toml::log_file),
        },
    },
    ConfigKey {
        name: "pid_file",
        toml_aliases: &[],
        knockd: &["PidFile"],
        value: "a path",
        default: None,
        range: None,
        doc: "Write the daemon's pid to this file (default /var/run/knockd.pid with -d).",
        example: Written::Text("/var/run/knockd.pid"),
        check: Check::Option(|o, _| Some(describe::path(&o.pid_file, "(default)"))),
        read: Read {
            knockd: Some(KnockdRead::Option(knockd::pid_file)),
            toml: TomlRead::Option(toml::pid_file),
        },
    },
    ConfigKey {
        name: "interface",
        toml_aliases: &[],
        knockd: &["Interface"],
        value: "an interface name",
        default: None,
        range: None,
        doc: "Capture on this interface; -i wins. Default: any (every interface).",
        example: Written::Text("eth0"),
        check: Check::Option(|o, _| {
            Some(
                o.interface
                    .clone()
                    .unwrap_or_else(|| "(default)".to_owned()),
            )
        }),
        read: Read {
            knockd: Some(KnockdRead::Option(knockd::interface)),
            toml: TomlRead::Option(toml::interface),
        },
    },
    ConfigKey {
        name: "max_attempts",
        toml_aliases: &[],
        knockd: &[],
        value: "a number",
        default: number(DEFAULT_MAX_ATTEMPTS as u64),
        range: range(MAX_ATTEMPTS),
        doc: "Cap on knock attempts in progress, {range} (default {default}); when full, the \
              oldest is evicted.",
        example: Written::Number(5000),
        check: Check::Option(|o, _| Some(o.max_attempts.to_string())),
        read: Read {
            knockd: None,
            toml: TomlRead::Option(toml::max_attempts),
        },
    },
    ConfigKey {
        name: "sendmail",
        toml_aliases: &[],
        knockd: &[],
        value: "a path",
        default: Some(Written::Text(DEFAULT_SENDMAIL)),
        range: None,
        doc: "Program for mail_to, called as PROGRAM -t -i (default {default}).",
        example: Written::Text("/usr/lib/sendmail"),
        check: Check::Option(|o, mail| mail.then(|| o.sendmail.display().to_string())),
        read: Read {
            knockd: None,
            toml: TomlRead::Option(toml::sendmail),
        },
    },
    ConfigKey {
        name: "mail_from",
        toml_aliases: &[],
        knockd: &[],
        value: "a mail address",
        default: None,
        range: None,
        doc: "From address of mail notices (default knock@HOSTNAME).",
        example: Written::Text("knock@example.org"),
        check: Check::Option(|o, mail| {
            mail.then(|| {
                o.mail_from
                    .clone()
                    .unwrap_or_else(|| "knock@<hostname>".to_owned())
            })
        }),
        read: Read {
            knockd: None,
            toml: TomlRead::Option(toml::mail_from),
        },
    },
    ConfigKey {
        name: "firewall_integration",
        toml_aliases: &[],
        knockd: &[],
        value: "true or false",
        default: Some(Written::Bool(true)),
        range: None,
        doc: "Let what open lets in through the host's other firewalls (nftables tables such \
              as fw4's, iptables, ufw) with one rule of ours at the top of each of their input \
              chains, removed at exit (default {default}); false leaves them alone.",
        example: Written::Bool(false),
        check: Check::Option(|o, _| (!o.firewall_integration).then(|| "no".to_owned())),
        read: Read {
            knockd: None,
            toml: TomlRead::Option(toml::firewall_integration),
        },
    },
];

/// The keys of a door besides the rotating ones ([`rotating_keys::KEYS`]), in the order the
/// docs list them.
pub const DOOR_KEYS: [ConfigKey; 15] = [
    ConfigKey {
        name: "sequence",
        toml_aliases: &[],
        knockd: &["Sequence"],
        value: "knocks, e.g. 7000,8000:udp",
        default: None,
        range: None,
        doc: "The knocks, port[:tcp|udp],... (TCP when no protocol is given). In TOML also an \
              array of such strings.",
        example: Written::Text("7000,8000:udp,9000"),
        check: Check::Own,
        read: Read {
            knockd: Some(KnockdRead::Door(knockd::door::sequence)),
            toml: TomlRead::Door(toml::door::sequence),
        },
    },
    ConfigKey {
        name: "one_time_sequences",
        toml_aliases: &[],
        knockd: &["One_Time_Sequences"],
        value: "a file of sequences",
        default: None,
        range: None,
        doc: "A file with one sequence per line, each usable once: the used line gets # as its \
              first character and the next line becomes the sequence. A relative path is \
              relative to the config file. When no line is left the door is disabled, with a \
              warning.",
        example: Written::Text("/etc/knockd/smtp_sequences"),
        check: Check::In("sequence"),
        read: Read {
            knockd: Some(KnockdRead::Door(knockd::door::one_time_sequences)),
            toml: TomlRead::Door(toml::door::one_time_sequences),
        },
    },
    ConfigKey {
        name: "seq_timeout",
        toml_aliases: &[],
        knockd: &["Seq_Timeout", "Timeout"],
        value: "seconds",
        default: number(DEFAULT_SEQ_TIMEOUT.as_secs()),
        range: range(SEQ_TIMEOUT),
        doc: "Seconds allowed from the first knock to the last, {range} (default {default}).",
        example: Written::Number(5),
        check: Check::Door(|d| Some(describe::secs(d.seq_timeout))),
        read: Read {
            knockd: Some(KnockdRead::Door(knockd::door::seq_timeout)),
            toml: TomlRead::Door(toml::door::seq_timeout),
        },
    },
    ConfigKey {
        name: "tcpflags",
        toml_aliases: &[],
        knockd: &["TCPFlags"],
        value: "TCP flags, e.g. syn,!ack",
        default: None,
        range: None,
        doc: "Flags a TCP knock must carry, e.g. syn or syn,!ack (! = must be clear); other TCP \
              packets are ignored.",
        example: Written::Text("syn,!ack"),
        check: Check::Door(|d| Some(d.tcpflags.to_string())),
        read: Read {
            knockd: Some(KnockdRead::Door(knockd::door::tcpflags)),
            toml: TomlRead::Door(toml::door::tcpflags),
        },
    },
    ConfigKey {
        name: "start_command",
        toml_aliases: &["command"],
        knockd: &["Start_Command", "Command"],
        value: "a command",
        default: None,
        range: None,
        doc: "Run when the door opens, %IP% replaced by the knocker's address. Split into \
              arguments like a shell would, never run through a shell.",
        example: Written::Text("/sbin/iptables -A INPUT -s %IP% -j ACCEPT"),
        check: Check::Door(|d| Some(describe::command(d.start_command.as_ref(), "(none)"))),
        read: Read {
            knockd: Some(KnockdRead::Door(knockd::door::start_command)),
            toml: TomlRead::Door(toml::door::start_command),
        },
    },
    ConfigKey {
        name: "start_command_6",
        toml_aliases: &["command_6"],
        knockd: &["Start_Command_6", "Command_6"],
        value: "a command",
        default: None,
        range: None,
        doc: "The same for IPv6 knockers; falls back to the IPv4 one.",
        example: Written::Text("/sbin/ip6tables -A INPUT -s %IP% -j ACCEPT"),
        check: Check::Door(|d| {
            let c = d.start_command_6.as_ref();
            Some(describe::command(c, "(same as start_command)"))
        }),
        read: Read {
            knockd: Some(KnockdRead::Door(knockd::door::start_command_6)),
            toml: TomlRead::Door(toml::door::start_command_6),
        },
    },
    ConfigKey {
        name: "stop_command",
        toml_aliases: &[],
        knockd: &["Stop_Command"],
        value: "a command",
        default: None,
        range: None,
        doc: "Run Cmd_Timeout seconds after the start command, on SIGTERM, or after a crash \
              when the daemon starts again.",
        example: Written::Text("/sbin/iptables -D INPUT -s %IP% -j ACCEPT"),
        check: Check::Door(|d| Some(describe::command(d.stop_command.as_ref(), "(none)"))),
        read: Read {
            knockd: Some(KnockdRead::Door(knockd::door::stop_command)),
            toml: TomlRead::Door(toml::door::stop_command),
        },
    },
    ConfigKey {
        name: "stop_command_6",
        toml_aliases: &[],
        knockd: &["Stop_Command_6"],
        value: "a command",
        default: None,
        range: None,
        doc: "The same for IPv6 knockers; falls back to the IPv4 one.",
        example: Written::Text("/sbin/ip6tables -D INPUT -s %IP% -j ACCEPT"),
        check: Check::Door(|d| {
            let c = d.stop_command_6.as_ref();
            Some(describe::command(c, "(same as stop_command)"))
        }),
        read: Read {
            knockd: Some(KnockdRead::Door(knockd::door::stop_command_6)),
            toml: TomlRead::Door(toml::door::stop_command_6),
        },
    },
    ConfigKey {
        name: "cmd_timeout",
        toml_aliases: &[],
        knockd: &["Cmd_Timeout"],
        value: "seconds",
        default: number(DEFAULT_CMD_TIMEOUT.as_secs()),
        range: range(CMD_TIMEOUT),
        doc: "Seconds between start and stop command, {range} (default {default}).",
        example: Written::Number(30),
        check: Check::Door(|d| Some(describe::secs(d.cmd_timeout))),
        read: Read {
            knockd: Some(KnockdRead::Door(knockd::door::cmd_timeout)),
            toml: TomlRead::Door(toml::door::cmd_timeout),
        },
    },
    ConfigKey {
        name: "target",
        toml_aliases: &[],
        knockd: &["Target"],
        value: "an IP address",
        default: None,
        range: None,
        doc: "Match knocks sent to this address instead of the host's own.",
        example: Written::Text("198.18.0.2"),
        check: Check::Door(|d| {
            Some(
                d.target
                    .map_or_else(|| "(this host's addresses)".to_owned(), |ip| ip.to_string()),
            )
        }),
        read: Read {
            knockd: Some(KnockdRead::Door(knockd::door::target)),
            toml: TomlRead::Door(toml::door::target),
        },
    },
    ConfigKey {
        name: "wake_on_lan",
        toml_aliases: &[],
        knockd: &[],
        value: "a MAC address or a table",
        default: None,
        range: None,
        doc: "Send a Wake-on-LAN magic packet: a MAC, or { mac, address (255.255.255.255), port \
              (9), interface }.",
        example: Written::Text("00:81:52:6b:3d:ae"),
        check: Check::Door(|d| d.actions.wake_on_lan.as_ref().map(describe::wake_on_lan)),
        read: Read {
            knockd: None,
            toml: TomlRead::Door(toml::door::wake_on_lan),
        },
    },
    ConfigKey {
        name: "mail_to",
        toml_aliases: &[],
        knockd: &[],
        value: "mail addresses",
        default: None,
        range: None,
        doc: "Mail a notice (door, knocker, time, what was done) to these addresses through \
              sendmail.",
        example: Written::Text("admin@example.org"),
        check: Check::Door(|d| {
            (!d.actions.mail_to.is_empty()).then(|| d.actions.mail_to.join(", "))
        }),
        read: Read {
            knockd: None,
            toml: TomlRead::Door(toml::door::mail_to),
        },
    },
    ConfigKey {
        name: "open",
        toml_aliases: &[],
        knockd: &[],
        value: "ports, e.g. 22/tcp",
        default: None,
        range: None,
        doc: "Open these ports (\"1723/tcp\", or an array) to the knocker only, in \
              knock-server's own nftables table; the kernel closes them again after \
              open_seconds even if the daemon is killed.",
        example: Written::Text("22/tcp"),
        check: Check::Door(describe::open),
        read: Read {
            knockd: None,
            toml: TomlRead::Door(toml::door::open),
        },
    },
    ConfigKey {
        name: "forward",
        toml_aliases: &[],
        knockd: &[],
        value: "forwards, e.g. 1723/tcp -> 192.168.1.51:1723",
        default: None,
        range: None,
        doc: "Forward these ports of this host (\"1723/tcp -> 192.168.1.51:1723\", an IPv6 \
              host in brackets, or an array) to a host behind it, for the knocker only: DNAT \
              in knock-server's own nftables table, closed by the kernel after open_seconds. \
              Needs IP forwarding on.",
        example: Written::Text("1723/tcp -> 198.19.0.2:1723"),
        check: Check::Door(describe::forward),
        read: Read {
            knockd: None,
            toml: TomlRead::Door(toml::door::forward),
        },
    },
    ConfigKey {
        name: "open_seconds",
        toml_aliases: &[],
        knockd: &[],
        value: "seconds",
        default: number(DEFAULT_OPEN_SECONDS.as_secs()),
        range: range(OPEN_SECONDS),
        doc: "How long open and forward stay open, {range} (default {default}).",
        example: Written::Number(60),
        check: Check::In("open"),
        read: Read {
            knockd: None,
            toml: TomlRead::Door(toml::door::open_seconds),
        },
    },
];

impl ConfigKey {
    /// Every TOML spelling: the aliases (knockd's own names, such as `command`) before
    /// [`ConfigKey::name`], as the lists in messages have them.
    pub fn toml_names(&self) -> impl Iterator<Item = &'static str> + Clone + use<> {
        self.toml_aliases.iter().copied().chain([self.name])
    }

    /// [`ConfigKey::doc`] with its default and range filled in.
    pub fn describe(&self) -> String {
        let default = self.default.map(|d| d.to_string()).unwrap_or_default();
        let range = self
            .range
            .map(|(lo, hi)| format!("{lo} to {hi}"))
            .unwrap_or_default();
        self.doc
            .replace("{default}", &default)
            .replace("{range}", &range)
    }
}

/// The TOML spellings of every key of `[options]`.
pub fn toml_option_names() -> impl Iterator<Item = &'static str> + Clone {
    OPTION_KEYS.iter().flat_map(ConfigKey::toml_names)
}

/// The door key after which lists of door keys put the rotating ones
/// ([`rotating_keys::KEYS`]): with the other ways of giving a door its sequence.
pub const ROTATING_KEYS_AFTER: &str = "one_time_sequences";

/// The TOML spellings of every key of a door, the rotating keys after
/// [`ROTATING_KEYS_AFTER`].
pub fn toml_door_names() -> impl Iterator<Item = &'static str> + Clone {
    DOOR_KEYS.iter().flat_map(|k| {
        let rotating = (k.name == ROTATING_KEYS_AFTER).then(rotating_keys::names);
        k.toml_names().chain(rotating.into_iter().flatten())
    })
}

/// The knockd.conf spellings of `keys`, aliases included, in order.
pub(crate) fn knockd_names(keys: &[ConfigKey]) -> Vec<&'static str> {
    keys.iter().flat_map(|k| k.knockd.iter().copied()).collect()
}

/// The key of `[options]` written `name` in TOML, as written, and its reader.
pub(crate) fn toml_option(name: &str) -> Option<(&'static str, TomlRead)> {
    toml_lookup(&OPTION_KEYS, name)
}

/// The key of a door written `name` in TOML, as written, and its reader.
pub(crate) fn toml_door(name: &str) -> Option<(&'static str, TomlRead)> {
    toml_lookup(&DOOR_KEYS, name)
}

fn toml_lookup(keys: &'static [ConfigKey], name: &str) -> Option<(&'static str, TomlRead)> {
    keys.iter()
        .find_map(|k| Some((k.toml_names().find(|n| *n == name)?, k.read.toml)))
}

/// The key written `name` in knockd.conf (any case, aliases folded), with its canonical
/// spelling and reader.
pub(crate) fn knockd_key(name: &str) -> Option<(&'static str, KnockdRead)> {
    OPTION_KEYS.iter().chain(&DOOR_KEYS).find_map(|k| {
        k.knockd
            .iter()
            .any(|n| n.eq_ignore_ascii_case(name))
            .then_some((*k.knockd.first()?, k.read.knockd?))
    })
}

/// docs/configuration.md's key table: every key of both formats, with its value and default.
/// The rotating keys are named after it (their section explains them).
pub fn markdown_table() -> String {
    let mut t = String::from(
        "| knockd.conf | TOML | value | default |\n|---|---|---|---|\n| **`[options]`** | \
         **`[options]`** | | |\n",
    );
    let code = |names: &mut dyn Iterator<Item = &str>| {
        let names: Vec<String> = names.map(|n| format!("`{n}`")).collect();
        if names.is_empty() {
            "-".to_owned()
        } else {
            names.join(", ")
        }
    };
    let row = |t: &mut String, k: &ConfigKey| {
        let mut toml = [k.name].into_iter().chain(k.toml_aliases.iter().copied());
        let value = match k.range {
            Some((lo, hi)) => format!("{}, {lo} to {hi}", k.value),
            None => k.value.to_owned(),
        };
        let default = k.default.map_or_else(String::new, |d| format!(" `{d}`"));
        t.push_str(&format!(
            "| {} | {} | {value} |{default} |\n",
            code(&mut k.knockd.iter().copied()),
            code(&mut toml),
        ));
    };
    for k in &OPTION_KEYS {
        row(&mut t, k);
    }
    t.push_str("| **`[name]`** | **`[doors.NAME]`** | | |\n");
    for k in &DOOR_KEYS {
        row(&mut t, k);
    }
    let rotating: Vec<String> = rotating_keys::names().map(|n| format!("`{n}`")).collect();
    t.push_str(&format!(
        "\nRotating doors (TOML only) add {}:\nsee [Rotating doors](#rotating-doors-authenticated-knocks).\n",
        rotating.join(", ")
    ));
    t
}

#[cfg(test)]
mod tests;

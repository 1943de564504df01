//! The checked configuration both formats parse into. Every value here is valid: ports are
//! ports, timeouts fit, commands are split into arguments. The rest of the code never
//! re-checks them.

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use crate::flags::TcpFlags;
use crate::sequence::{Knock, Sequence};

/// knockd's default `Seq_Timeout`.
pub const DEFAULT_SEQ_TIMEOUT: Duration = Duration::from_secs(25);
/// knockd's default `Cmd_Timeout`.
pub const DEFAULT_CMD_TIMEOUT: Duration = Duration::from_secs(10);
/// The default cap on attempts in progress. At under 64 bytes each this bounds the tracker
/// to a few MiB even under a flood of spoofed sources.
pub const DEFAULT_MAX_ATTEMPTS: usize = 100_000;
/// The default for `open_seconds`.
pub const DEFAULT_OPEN_SECONDS: Duration = Duration::from_secs(20);
/// The longest timeout we accept (a day): longer ones are almost certainly a typo, and this
/// keeps every deadline far from overflow.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(86_400);

/// A whole server configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The `[options]` section.
    pub options: Options,
    /// The doors, in file order. Names are unique.
    pub doors: Vec<Door>,
}

/// Global settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `UseSyslog`: log to syslog as well.
    pub use_syslog: bool,
    /// `LogFile`: append knockd-style log lines here.
    pub log_file: Option<PathBuf>,
    /// `PidFile`: where the daemon writes its pid.
    pub pid_file: Option<PathBuf>,
    /// `Interface`: where to capture; the command line's `-i` wins.
    pub interface: Option<String>,
    /// Cap on attempts in progress (TOML `max_attempts`).
    pub max_attempts: usize,
    /// The sendmail-compatible program for `mail_to` (TOML `sendmail`).
    pub sendmail: PathBuf,
    /// The From address for mail notices; `None` means `knock@<hostname>`.
    pub mail_from: Option<String>,
    /// Let what `open` lets in through the host's other firewalls too (TOML
    /// `firewall_integration`): one rule of ours at the top of each of their input chains.
    pub firewall_integration: bool,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            use_syslog: false,
            log_file: None,
            pid_file: None,
            interface: None,
            max_attempts: DEFAULT_MAX_ATTEMPTS,
            sendmail: PathBuf::from("/usr/sbin/sendmail"),
            mail_from: None,
            firewall_integration: true,
        }
    }
}

/// One door: a sequence to recognise and what to do when it is knocked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Door {
    /// The section name, as it appears in the log.
    pub name: String,
    /// Where the expected sequence comes from.
    pub sequence: SequenceSource,
    /// Time allowed from the first knock to the last.
    pub seq_timeout: Duration,
    /// TCP packets that do not meet these are ignored.
    pub tcpflags: TcpFlags,
    /// Run on success for an IPv4 knocker (`Start_Command`, alias `Command`).
    pub start_command: Option<CommandTemplate>,
    /// Run on success for an IPv6 knocker; falls back to `start_command` when `None`. An
    /// explicitly empty value (knockd's `Start_Command_6 =`) is [`CommandTemplate::nothing`]:
    /// IPv6 knockers then run nothing. Use [`Door::start_command_for`] rather than this field.
    pub start_command_6: Option<CommandTemplate>,
    /// Run `cmd_timeout` after the start command, for an IPv4 knocker.
    pub stop_command: Option<CommandTemplate>,
    /// The IPv6 stop command; falls back to `stop_command` when `None`, and is
    /// [`CommandTemplate::nothing`] when written empty. Use [`Door::stop_command_for`].
    pub stop_command_6: Option<CommandTemplate>,
    /// Delay between start and stop command.
    pub cmd_timeout: Duration,
    /// Match knocks sent to this address instead of the host's own.
    pub target: Option<IpAddr>,
    /// Built-in actions (TOML only).
    pub actions: Actions,
}

impl Door {
    /// A door with every setting at its default ([`super::keys::DOOR_KEYS`] says them): where
    /// both parsers start.
    pub fn new(name: impl Into<String>, sequence: SequenceSource) -> Door {
        Door {
            name: name.into(),
            sequence,
            seq_timeout: DEFAULT_SEQ_TIMEOUT,
            tcpflags: TcpFlags::ANY,
            start_command: None,
            start_command_6: None,
            stop_command: None,
            stop_command_6: None,
            cmd_timeout: DEFAULT_CMD_TIMEOUT,
            target: None,
            actions: Actions::default(),
        }
    }

    /// The start command for a knocker of this address family; `None` means run nothing.
    /// Never returns [`CommandTemplate::nothing`], so the argv it gives is never empty.
    pub fn start_command_for(&self, knocker: IpAddr) -> Option<&CommandTemplate> {
        let command = match knocker {
            IpAddr::V6(_) => self
                .start_command_6
                .as_ref()
                .or(self.start_command.as_ref()),
            IpAddr::V4(_) => self.start_command.as_ref(),
        };
        command.filter(|c| !c.is_nothing())
    }

    /// The stop command for a knocker of this address family; `None` means run nothing.
    /// Never returns [`CommandTemplate::nothing`].
    pub fn stop_command_for(&self, knocker: IpAddr) -> Option<&CommandTemplate> {
        let command = match knocker {
            IpAddr::V6(_) => self.stop_command_6.as_ref().or(self.stop_command.as_ref()),
            IpAddr::V4(_) => self.stop_command.as_ref(),
        };
        command.filter(|c| !c.is_nothing())
    }
}

/// Where a door's expected sequence comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SequenceSource {
    /// A fixed sequence written in the config.
    Fixed(Sequence),
    /// knockd's `One_Time_Sequences`: one sequence per line of this file, each used once.
    /// The path is as written in the config; [`super::load`] reads it (see [`crate::onetime`]).
    OneTime {
        /// The file, as written in the config.
        path: PathBuf,
        /// The config line that names it, for errors about the file.
        line: usize,
    },
    /// A rotating door (TOML `secret_file`): a new sequence every time step, derived from a
    /// key (PROTOCOL.md). [`super::load`] reads the key.
    Rotating(Rotating),
}

/// A rotating door's settings, all checked: `knocks` fit in `ports`, a sealed door has two
/// knocks or more, `bind_source` only on sealed doors. The server's door and the client's
/// profile read them alike, through [`super::rotating_keys`] (where the defaults and ranges
/// are).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotating {
    /// The key file, as written (made relative to the config file's directory by
    /// [`super::load`]).
    pub secret_file: PathBuf,
    /// The config line that names it, for errors about the file.
    pub line: usize,
    /// Ports per sequence.
    pub knocks: u8,
    /// Where the ports are drawn from, as written (the other doors do not change it).
    pub ports: crate::auth::PortSet,
    /// Length of a time step.
    pub step_seconds: std::num::NonZeroU32,
    /// Knocks carry a MAC in their TCP sequence numbers.
    pub sealed: bool,
    /// The MAC binds the knocker's source address.
    pub bind_source: bool,
}

impl Rotating {
    /// What its knocks carry, as the protocol says it.
    pub fn seal(&self) -> crate::auth::Seal {
        if self.sealed {
            crate::auth::Seal::On {
                bind_source: self.bind_source,
            }
        } else {
            crate::auth::Seal::Off
        }
    }
}

/// A command line, split into arguments the way a POSIX shell would split it, with `%IP%`
/// still in place. It is never handed to a shell: [`CommandTemplate::render`] substitutes the
/// knocker's address inside the arguments, so no packet can become shell syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommandTemplate {
    text: String,
    argv: Vec<String>,
}

impl CommandTemplate {
    /// The explicit "run nothing" of an empty `Start_Command_6 =` / `Stop_Command_6 =`: knockd
    /// documents it as the way to keep IPv6 knockers from falling back to the IPv4 command.
    /// Its argv is empty; [`Door::start_command_for`] and [`Door::stop_command_for`] turn it
    /// into `None`.
    pub fn nothing() -> CommandTemplate {
        CommandTemplate {
            text: String::new(),
            argv: Vec::new(),
        }
    }

    /// Whether this is [`CommandTemplate::nothing`].
    pub fn is_nothing(&self) -> bool {
        self.argv.is_empty()
    }

    /// The command as written.
    pub fn text(&self) -> &str {
        &self.text
    }

    /// The program and its arguments, `%IP%` unsubstituted.
    pub fn argv(&self) -> &[String] {
        &self.argv
    }

    /// The program and arguments with every `%IP%` replaced by `ip`.
    pub fn render(&self, ip: IpAddr) -> Vec<String> {
        let ip = ip.to_string();
        self.argv.iter().map(|a| a.replace("%IP%", &ip)).collect()
    }

    /// The command as written with every `%IP%` replaced, for the log line
    /// `door: running command: ...`.
    pub fn render_text(&self, ip: IpAddr) -> String {
        self.text.replace("%IP%", &ip.to_string())
    }

    /// The first argument that looks like shell syntax (`>>`, `|`, `;`, `$(...)`), if any.
    ///
    /// knockd runs commands through `/bin/sh -c`; we run them directly, so a knockd.conf line
    /// like `command = echo %IP% >> /tmp/knocks` hands `>>` to `echo` as a plain word. The
    /// daemon warns about such commands so their owner can write
    /// `/bin/sh -c 'echo %IP% >> /tmp/knocks'`. Operators that join two commands count
    /// inside a word too (`stop;/sbin/iptables`, `a&&b`, `a|b`: knockd's shell runs both
    /// commands). A quoted `'>'` or `'a;b'` argument is a false alarm, and a script inside
    /// `sh -c '...'` is one word with spaces, which is never flagged.
    pub fn shell_syntax(&self) -> Option<&str> {
        const OPERATORS: [&str; 9] = [">", ">>", "<", "|", "||", "&&", ";", "&", "&>"];
        let joins = |arg: &str| arg.contains([';', '|', '`']) || arg.contains("&&");
        let argv = self.argv.iter().map(String::as_str);
        argv.enumerate()
            .find(|&(i, arg)| {
                !arg.contains(char::is_whitespace)
                    && (joins(arg)
                        || i > 0
                            && (OPERATORS.contains(&arg)
                                || arg.starts_with('>')
                                || arg.starts_with("2>")
                                || arg.contains("$(")))
            })
            .map(|(_, arg)| arg)
    }
}

impl FromStr for CommandTemplate {
    type Err = CommandError;

    /// Splits with POSIX shell quoting rules. Empty means "no command" and is an error here;
    /// the config parsers map an empty value to `None` before calling this.
    fn from_str(s: &str) -> Result<CommandTemplate, CommandError> {
        let argv = shell_words::split(s).map_err(|_| CommandError::UnbalancedQuote)?;
        if argv.is_empty() {
            return Err(CommandError::Empty);
        }
        Ok(CommandTemplate {
            text: s.trim().to_owned(),
            argv,
        })
    }
}

impl fmt::Display for CommandTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// Why a command line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CommandError {
    /// A quote opened and never closed, or a trailing backslash.
    #[error("unbalanced quote or trailing backslash in the command")]
    UnbalancedQuote,
    /// Only whitespace.
    #[error("the command is empty")]
    Empty,
}

/// The built-in actions of a door (TOML only).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Actions {
    /// Send a Wake-on-LAN magic packet.
    pub wake_on_lan: Option<WakeOnLan>,
    /// Mail these addresses a notice.
    pub mail_to: Vec<String>,
    /// Open these ports to the knocker for `open_for`.
    pub open: Vec<Knock>,
    /// Forward these ports of this host to hosts behind it, for the knocker, for `open_for`.
    pub forward: Vec<Forward>,
    /// How long `open` (and `forward`) stays open (`open_seconds`).
    pub open_for: Duration,
}

/// A port of this host forwarded, for a knocker, to a host behind it: `1723/tcp ->
/// 192.168.1.51:1723` (DNAT; the inside port may differ from the outside one).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Forward {
    /// The port knockers connect to on this host, and its protocol.
    pub outside: Knock,
    /// Where it goes.
    pub inside: std::net::SocketAddr,
}

impl fmt::Display for Forward {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}/{} -> {}",
            self.outside.port, self.outside.proto, self.inside
        )
    }
}

impl Default for Actions {
    /// No action; `open_for` at its default so a door built by hand behaves like a parsed one.
    fn default() -> Actions {
        Actions {
            wake_on_lan: None,
            mail_to: Vec::new(),
            open: Vec::new(),
            forward: Vec::new(),
            open_for: DEFAULT_OPEN_SECONDS,
        }
    }
}

impl Actions {
    /// Whether no built-in action is configured.
    pub fn is_empty(&self) -> bool {
        self.wake_on_lan.is_none()
            && self.mail_to.is_empty()
            && self.open.is_empty()
            && self.forward.is_empty()
    }
}

/// A Wake-on-LAN target.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WakeOnLan {
    /// The machine to wake.
    pub mac: MacAddr,
    /// Where to send the magic packet (default the limited broadcast 255.255.255.255).
    pub address: IpAddr,
    /// UDP port (default 9, "discard").
    pub port: u16,
    /// Send out of this interface (SO_BINDTODEVICE), for hosts with several links.
    pub interface: Option<String>,
}

/// A 48-bit Ethernet address.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct MacAddr(pub [u8; 6]);

impl MacAddr {
    /// The Wake-on-LAN magic packet for this address: six 0xFF bytes, then the address
    /// sixteen times (102 bytes).
    pub fn magic_packet(&self) -> [u8; 102] {
        let mut p = [0xFFu8; 102];
        for chunk in p[6..].chunks_exact_mut(6) {
            chunk.copy_from_slice(&self.0);
        }
        p
    }
}

impl FromStr for MacAddr {
    type Err = MacError;

    /// Six hex pairs separated by `:` or `-` (`00:81:52:6B:3D:AE`), or twelve hex digits.
    fn from_str(s: &str) -> Result<MacAddr, MacError> {
        let s = s.trim();
        let hex: String = if s.contains([':', '-']) {
            let parts: Vec<&str> = s.split([':', '-']).collect();
            if parts.len() != 6 || parts.iter().any(|p| p.len() != 2) {
                return Err(MacError(s.to_owned()));
            }
            parts.concat()
        } else {
            s.to_owned()
        };
        if hex.len() != 12 || !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(MacError(s.to_owned()));
        }
        let mut mac = [0u8; 6];
        for (i, byte) in mac.iter_mut().enumerate() {
            *byte = u8::from_str_radix(&hex[2 * i..2 * i + 2], 16)
                .map_err(|_| MacError(s.to_owned()))?;
        }
        Ok(MacAddr(mac))
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// A malformed MAC address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{0}` is not a MAC address: write six hex pairs like 00:81:52:6b:3d:ae")]
pub struct MacError(pub String);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn commands_split_like_a_shell_and_substitute_inside_arguments() {
        let c: CommandTemplate = "/bin/sh -c 'echo %IP% >> /tmp/x'".parse().unwrap();
        assert_eq!(c.argv(), ["/bin/sh", "-c", "echo %IP% >> /tmp/x"]);
        let ip: IpAddr = "198.18.0.1".parse().unwrap();
        assert_eq!(c.render(ip), ["/bin/sh", "-c", "echo 198.18.0.1 >> /tmp/x"]);
        assert_eq!(c.render_text(ip), "/bin/sh -c 'echo 198.18.0.1 >> /tmp/x'");
        assert_eq!(
            "echo 'open".parse::<CommandTemplate>(),
            Err(CommandError::UnbalancedQuote)
        );
        assert_eq!("  ".parse::<CommandTemplate>(), Err(CommandError::Empty));
    }

    #[test]
    fn shell_syntax_outside_a_shell_is_spotted() {
        let syntax = |s: &str| {
            s.parse::<CommandTemplate>()
                .unwrap()
                .shell_syntax()
                .map(str::to_owned)
        };
        assert_eq!(syntax("echo %IP% >> /tmp/x"), Some(">>".into()));
        assert_eq!(
            syntax("echo %IP%>/tmp/x"),
            None,
            "inside a word: a plain argument"
        );
        assert_eq!(
            syntax("iptables -A INPUT -s %IP% -j ACCEPT; logger x"),
            Some("ACCEPT;".into())
        );
        assert_eq!(syntax("logger $(hostname)"), Some("$(hostname)".into()));
        assert_eq!(syntax("a | b"), Some("|".into()));
        // Joined to the words around them, as real knockd.conf files write them.
        assert_eq!(
            syntax("service ssh stop;/sbin/iptables -D INPUT -s %IP% -j ACCEPT"),
            Some("stop;/sbin/iptables".into())
        );
        assert_eq!(syntax("true&&logger %IP%"), Some("true&&logger".into()));
        assert_eq!(syntax("echo %IP%|logger"), Some("%IP%|logger".into()));
        assert_eq!(syntax("logger `hostname`"), Some("`hostname`".into()));
        assert_eq!(syntax("curl http://198.18.0.9/?a=1&b=%IP%"), None);
        assert_eq!(syntax("/bin/sh -c 'echo %IP% >> /tmp/x'"), None);
        assert_eq!(
            syntax("/sbin/iptables -A INPUT -s %IP% -p tcp --dport 22 -j ACCEPT"),
            None
        );
    }

    #[test]
    fn mac_addresses_and_magic_packets() {
        let m: MacAddr = "00:81:52:6B:3D:AE".parse().unwrap();
        assert_eq!(m, "00-81-52-6b-3d-ae".parse().unwrap());
        assert_eq!(m, "0081526b3dae".parse().unwrap());
        assert_eq!(m.to_string(), "00:81:52:6b:3d:ae");
        let p = m.magic_packet();
        assert_eq!(&p[..6], &[0xff; 6]);
        assert!(p[6..].chunks(6).all(|c| c == m.0));
        for bad in [
            "",
            "00:81:52:6B:3D",
            "00:81:52:6B:3D:AE:00",
            "0:81:52:6B:3D:AE",
            "zz:81:52:6B:3D:AE",
            "0081526b3dae0",
        ] {
            assert!(bad.parse::<MacAddr>().is_err(), "{bad}");
        }
    }

    #[test]
    fn ipv6_commands_fall_back_to_ipv4_ones() {
        let cmd = |s: &str| Some(s.parse::<CommandTemplate>().unwrap());
        let door = Door {
            start_command: cmd("start4"),
            stop_command: cmd("stop4"),
            stop_command_6: cmd("stop6"),
            ..Door::new("d", SequenceSource::Fixed("1".parse().unwrap()))
        };
        let v6: IpAddr = "fd00::1".parse().unwrap();
        let v4: IpAddr = "198.18.0.1".parse().unwrap();
        assert_eq!(door.start_command_for(v6).unwrap().text(), "start4");
        assert_eq!(door.stop_command_for(v6).unwrap().text(), "stop6");
        assert_eq!(door.stop_command_for(v4).unwrap().text(), "stop4");
        // An explicitly empty IPv6 command means "nothing", not "fall back".
        let door = Door {
            start_command_6: Some(CommandTemplate::nothing()),
            ..door
        };
        assert_eq!(door.start_command_for(v6), None);
        assert_eq!(door.start_command_for(v4).unwrap().text(), "start4");
    }
}

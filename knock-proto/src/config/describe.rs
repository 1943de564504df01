//! A config described for people: what `knock-server --check` prints after a file passes.
//!
//! Every door with every setting that matters, defaults included and said to be defaults
//! where that helps, so a reader can see what the server understood without knowing the
//! defaults by heart. The layout is stable: tests and scripts may compare it.

use std::fmt;
use std::time::Duration;

use super::keys::{Check, DOOR_KEYS, OPTION_KEYS};
use super::model::*;

/// Width of the key column.
const KEY: usize = 16;

impl fmt::Display for Config {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let uses_mail = self.doors.iter().any(|d| !d.actions.mail_to.is_empty());
        self.options.describe(f, uses_mail)?;
        for (i, door) in self.doors.iter().enumerate() {
            writeln!(f)?;
            door.describe(f, self.rotating_legacy_ports(i))?;
        }
        Ok(())
    }
}

fn row(f: &mut fmt::Formatter<'_>, key: &str, value: impl fmt::Display) -> fmt::Result {
    writeln!(f, "  {key:<KEY$} {value}")
}

/// Seconds, as `--check` shows them.
pub(super) fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

impl Options {
    fn describe(&self, f: &mut fmt::Formatter<'_>, uses_mail: bool) -> fmt::Result {
        writeln!(f, "options:")?;
        for k in &OPTION_KEYS {
            if let Check::Option(show) = k.check {
                if let Some(value) = show(self, uses_mail) {
                    row(f, k.name, value)?;
                }
            }
        }
        Ok(())
    }
}

/// A path setting, or what leaving it out means.
pub(super) fn path(p: &Option<std::path::PathBuf>, unset: &str) -> String {
    p.as_ref()
        .map_or_else(|| unset.to_owned(), |p| p.display().to_string())
}

/// A command setting: the command, "(nothing)" for an explicit empty one, or `unset`.
pub(super) fn command(c: Option<&CommandTemplate>, unset: &str) -> String {
    match c {
        Some(c) if c.is_nothing() => "(nothing)".to_owned(),
        Some(c) => c.text().to_owned(),
        None => unset.to_owned(),
    }
}

impl Door {
    /// `legacy`: the ports an earlier `pair` printed for this rotating door, if they differ.
    fn describe(
        &self,
        f: &mut fmt::Formatter<'_>,
        legacy: Option<crate::auth::PortSet>,
    ) -> fmt::Result {
        writeln!(f, "door {}:", self.name)?;
        match &self.sequence {
            SequenceSource::Fixed(s) => row(f, "sequence", s)?,
            SequenceSource::OneTime { path, .. } => row(
                f,
                "sequence",
                format_args!("one-time sequences from {}", path.display()),
            )?,
            SequenceSource::Rotating(r) => {
                let sealed = match (r.sealed, r.bind_source) {
                    (false, _) => "unsealed",
                    (true, false) => "sealed",
                    (true, true) => "sealed, bound to the source address",
                };
                row(
                    f,
                    "sequence",
                    format_args!(
                        "rotating: {} knocks in {} every {} s, {sealed}, key {}",
                        r.knocks,
                        r.ports,
                        r.step_seconds,
                        r.secret_file.display()
                    ),
                )?;
                if let Some(older) = legacy {
                    row(
                        f,
                        "older pairings",
                        format_args!(
                            "also accepted: knocks in {older}, the ports an earlier \
                             `knock-server pair` printed; pair those clients again"
                        ),
                    )?;
                }
            }
        }
        // `target` right after `tcpflags`, where `--check` has always shown it (scripts
        // compare the layout); every other key in the order declared.
        let target = DOOR_KEYS.iter().filter(|k| k.name == "target");
        let keys = DOOR_KEYS
            .iter()
            .filter(|k| k.name != "target")
            .flat_map(|k| {
                let then = target.clone().filter(|_| k.name == "tcpflags");
                std::iter::once(k).chain(then)
            });
        for k in keys {
            if let Check::Door(show) = k.check {
                if let Some(value) = show(self) {
                    row(f, k.name, value)?;
                }
            }
        }
        Ok(())
    }
}

/// A `wake_on_lan` action.
pub(super) fn wake_on_lan(w: &WakeOnLan) -> String {
    let via = match &w.interface {
        Some(i) => format!(" on {i}"),
        None => String::new(),
    };
    let to = std::net::SocketAddr::new(w.address, w.port);
    format!("{} via {to}{via}", w.mac)
}

/// An `open` action with its `open_seconds`, if the door has one.
pub(super) fn forward(door: &Door) -> Option<String> {
    let a = &door.actions;
    if a.forward.is_empty() {
        return None;
    }
    let forwards: Vec<String> = a.forward.iter().map(ToString::to_string).collect();
    Some(format!(
        "{} for {}s",
        forwards.join(", "),
        a.open_for.as_secs()
    ))
}

pub(super) fn open(door: &Door) -> Option<String> {
    let a = &door.actions;
    let ports: Vec<String> = a
        .open
        .iter()
        .map(|k| format!("{}/{}", k.port, k.proto))
        .collect();
    (!ports.is_empty()).then(|| format!("{} for {}", ports.join(", "), secs(a.open_for)))
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    #[test]
    fn describes_every_setting() {
        let text = "[options]\nuse_syslog = true\nlog_file = \"/var/log/k.log\"\n\
            mail_from = \"knock@example.org\"\n\n\
            [doors.openSSH]\nsequence = \"7000,8000:udp\"\nseq_timeout = 5\ntcpflags = \"syn,!ack\"\n\
            start_command = \"/sbin/iptables -A INPUT -s %IP% -j ACCEPT\"\n\
            start_command_6 = \"\"\ncmd_timeout = 30\ntarget = \"fd00::2\"\n\
            wake_on_lan = { mac = \"00:81:52:6B:3D:AE\", address = \"198.18.0.255\", interface = \"eth1\" }\n\
            mail_to = [\"a@example.org\", \"b@example.org\"]\nopen = [\"22\", \"1194/udp\"]\n\n\
            [doors.smtp]\none_time_sequences = \"/etc/knockd/smtp_sequences\"\n";
        let c = super::super::toml::parse(Path::new("k.toml"), text).unwrap();
        assert_eq!(
            c.to_string(),
            "options:
  use_syslog       yes
  log_file         /var/log/k.log
  pid_file         (default)
  interface        (default)
  max_attempts     100000
  sendmail         /usr/sbin/sendmail
  mail_from        knock@example.org

door openSSH:
  sequence         7000:tcp,8000:udp
  seq_timeout      5s
  tcpflags         syn,!ack
  target           fd00::2
  start_command    /sbin/iptables -A INPUT -s %IP% -j ACCEPT
  start_command_6  (nothing)
  stop_command     (none)
  stop_command_6   (same as stop_command)
  cmd_timeout      30s
  wake_on_lan      00:81:52:6b:3d:ae via 198.18.0.255:9 on eth1
  mail_to          a@example.org, b@example.org
  open             22/tcp, 1194/udp for 20s

door smtp:
  sequence         one-time sequences from /etc/knockd/smtp_sequences
  seq_timeout      25s
  tcpflags         any
  target           (this host's addresses)
  start_command    (none)
  start_command_6  (same as start_command)
  stop_command     (none)
  stop_command_6   (same as stop_command)
  cmd_timeout      10s
"
        );
    }
}

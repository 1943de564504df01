//! A config described for people: what `knock-server --check` prints after a file passes.
//!
//! Every door with every setting that matters, defaults included and said to be defaults
//! where that helps, so a reader can see what the server understood without knowing the
//! defaults by heart. The layout is stable: tests and scripts may compare it.

use std::fmt;
use std::time::Duration;

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

fn secs(d: Duration) -> String {
    format!("{}s", d.as_secs())
}

impl Options {
    fn describe(&self, f: &mut fmt::Formatter<'_>, uses_mail: bool) -> fmt::Result {
        writeln!(f, "options:")?;
        row(f, "use_syslog", if self.use_syslog { "yes" } else { "no" })?;
        let path = |p: &Option<std::path::PathBuf>, default: &str| {
            p.as_ref()
                .map_or_else(|| default.to_owned(), |p| p.display().to_string())
        };
        row(f, "log_file", path(&self.log_file, "(none)"))?;
        row(f, "pid_file", path(&self.pid_file, "(default)"))?;
        row(
            f,
            "interface",
            self.interface.as_deref().unwrap_or("(default)"),
        )?;
        row(f, "max_attempts", self.max_attempts)?;
        if uses_mail {
            row(f, "sendmail", self.sendmail.display())?;
            row(
                f,
                "mail_from",
                self.mail_from.as_deref().unwrap_or("knock@<hostname>"),
            )?;
        }
        Ok(())
    }
}

/// A command setting: the command, "(nothing)" for an explicit empty one, or `unset`.
fn command(c: Option<&CommandTemplate>, unset: &str) -> String {
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
        row(f, "seq_timeout", secs(self.seq_timeout))?;
        row(f, "tcpflags", self.tcpflags)?;
        match self.target {
            Some(ip) => row(f, "target", ip)?,
            None => row(f, "target", "(this host's addresses)")?,
        }
        let start = self.start_command.as_ref();
        row(f, "start_command", command(start, "(none)"))?;
        row(
            f,
            "start_command_6",
            command(self.start_command_6.as_ref(), "(same as start_command)"),
        )?;
        row(
            f,
            "stop_command",
            command(self.stop_command.as_ref(), "(none)"),
        )?;
        row(
            f,
            "stop_command_6",
            command(self.stop_command_6.as_ref(), "(same as stop_command)"),
        )?;
        row(f, "cmd_timeout", secs(self.cmd_timeout))?;
        self.actions.describe(f)
    }
}

impl Actions {
    fn describe(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(w) = &self.wake_on_lan {
            let via = match &w.interface {
                Some(i) => format!(" on {i}"),
                None => String::new(),
            };
            let to = std::net::SocketAddr::new(w.address, w.port);
            row(f, "wake_on_lan", format_args!("{} via {to}{via}", w.mac))?;
        }
        if !self.mail_to.is_empty() {
            row(f, "mail_to", self.mail_to.join(", "))?;
        }
        if !self.open.is_empty() {
            let ports: Vec<String> = self
                .open
                .iter()
                .map(|k| format!("{}/{}", k.port, k.proto))
                .collect();
            row(
                f,
                "open",
                format_args!("{} for {}", ports.join(", "), secs(self.open_for)),
            )?;
        }
        Ok(())
    }
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

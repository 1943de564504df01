//! Performs a door's built-in actions when it opens (Wake-on-LAN, opening ports to the
//! knocker, a mail notice) and owns their state: the nftables table lives from start to
//! exit and follows reloads.
//!
//! Nothing here blocks the engine for long: the magic packet is one datagram, the firewall
//! change one `nft` transaction, and mail is delivered by a thread of its own.

use std::net::IpAddr;
use std::path::PathBuf;
use std::time::{Duration, Instant, SystemTime};

use anyhow::Context as _;
use knock_proto::Knock;
use knock_proto::config::{Config, Door};

use crate::actions::{firewall::Firewall, mail, wol};

/// The built-in actions' runtime state.
#[derive(Debug)]
pub struct Performer {
    firewall: Option<Firewall>,
    /// Our instance's nftables table.
    table: String,
    /// Ports opened to knockers and not yet closed by the kernel: for `status`, `close`,
    /// and to let them in again if the table is deleted behind our back.
    windows: Vec<Window>,
    /// The ports the table guards, to put it back if it is deleted.
    guarded: Vec<Knock>,
    sendmail: PathBuf,
    mail_from: String,
}

/// Ports opened to one knocker by one door.
#[derive(Debug)]
struct Window {
    door: String,
    source: IpAddr,
    ports: Vec<Knock>,
    since: SystemTime,
    /// When the kernel's timeout closes them.
    until: Instant,
}

/// Every port any door opens: the ports our table guards.
fn guarded(config: &Config) -> Vec<Knock> {
    let mut ports: Vec<Knock> = config
        .doors
        .iter()
        .flat_map(|d| d.actions.open.iter().copied())
        .collect();
    ports.sort();
    ports.dedup();
    ports
}

/// `1723/tcp, 500/udp`, as `open` is written.
fn port_list(ports: &[Knock]) -> String {
    ports
        .iter()
        .map(|k| format!("{}/{}", k.port, k.proto))
        .collect::<Vec<_>>()
        .join(", ")
}

impl Performer {
    /// Sets up what the config's actions need: the nftables `table` when a door has `open`
    /// (any table a crashed run of this instance left behind is replaced).
    pub fn new(config: &Config, table: &str) -> anyhow::Result<Performer> {
        let ports = guarded(config);
        let firewall = if ports.is_empty() {
            // A run that crashed with `open` doors left its table (still guarding, so its
            // ports stay closed); this config guards nothing.
            if let Err(e) = crate::actions::firewall::remove_stale(table) {
                tracing::debug!("no stale nftables table removed: {e}");
            }
            None
        } else {
            let fw = Firewall::install(table, &ports).with_context(|| {
                format!("cannot set up the nftables table {table} for `open` doors")
            })?;
            Some(fw)
        };
        Ok(Performer {
            firewall,
            table: table.to_owned(),
            windows: Vec::new(),
            guarded: ports,
            sendmail: config.options.sendmail.clone(),
            mail_from: config
                .options
                .mail_from
                .clone()
                .unwrap_or_else(mail::default_from),
        })
    }

    /// Whether the config has `open` doors (we own an nftables table).
    pub fn guards(&self) -> bool {
        self.firewall.is_some()
    }

    /// Runs `door`'s built-in actions for `source`. `ran` lists the commands the engine
    /// started for this opening, for the mail notice.
    pub fn perform(&mut self, door: &Door, source: IpAddr, ran: &[String]) {
        let actions = &door.actions;
        let mut done: Vec<String> = ran.iter().map(|c| format!("ran: {c}")).collect();
        if !actions.open.is_empty() {
            let ports = port_list(&actions.open);
            let secs = actions.open_for.as_secs();
            match self
                .firewall
                .as_ref()
                .map(|fw| fw.allow(source, &actions.open, actions.open_for))
            {
                Some(Ok(())) => {
                    tracing::info!("{source}: {}: opened {ports} for {secs}s", door.name);
                    self.remember(door, source);
                    done.push(format!("opened {ports} to {source} for {secs} s"));
                }
                Some(Err(e)) => {
                    tracing::error!("{source}: {}: cannot open {ports}: {e}", door.name);
                    done.push(format!("FAILED to open {ports}: {e}"));
                }
                None => tracing::error!("{}: cannot open {ports}: no firewall table", door.name),
            }
        }
        if let Some(w) = &actions.wake_on_lan {
            let to = format!("{} via {}:{}", w.mac, w.address, w.port);
            match wol::wake(w) {
                Ok(sent) => {
                    let to = format!("{} at {}", w.mac, sent.join(", "));
                    tracing::info!("{}: sent Wake-on-LAN to {to}", door.name);
                    done.push(format!("sent Wake-on-LAN to {to}"));
                }
                Err(e) => {
                    tracing::error!("{}: cannot send Wake-on-LAN to {to}: {e}", door.name);
                    done.push(format!("FAILED to send Wake-on-LAN to {to}: {e}"));
                }
            }
        }
        if !actions.mail_to.is_empty() {
            self.mail(door, source, &done);
        }
    }

    fn mail(&self, door: &Door, source: IpAddr, done: &[String]) {
        let message = mail::compose(
            &self.mail_from,
            &door.actions.mail_to,
            &door.name,
            source,
            chrono::Local::now().fixed_offset(),
            done,
        );
        let sendmail = self.sendmail.clone();
        let name = door.name.clone();
        let to = door.actions.mail_to.join(", ");
        let spawned = std::thread::Builder::new()
            .name("mail".into())
            .spawn(move || match mail::deliver(&sendmail, &message) {
                Ok(()) => tracing::info!("{name}: mailed {to}"),
                Err(e) => tracing::error!("{name}: cannot mail {to}: {e}"),
            });
        if let Err(e) = spawned {
            tracing::error!("{}: cannot start a mail thread: {e}", door.name);
        }
    }

    /// Follows a reloaded config: the guarded ports change, windows already open stay open.
    pub fn reconfigure(&mut self, config: &Config) {
        self.sendmail = config.options.sendmail.clone();
        self.mail_from = config
            .options
            .mail_from
            .clone()
            .unwrap_or_else(mail::default_from);
        let ports = guarded(config);
        self.guarded = ports.clone();
        match &self.firewall {
            Some(fw) => {
                if let Err(e) = fw.set_guarded(&ports) {
                    tracing::error!("cannot update the guarded ports: {e}");
                }
            }
            None if !ports.is_empty() => match Firewall::install(&self.table, &ports) {
                Ok(fw) => self.firewall = Some(fw),
                Err(e) => tracing::error!("cannot set up the nftables table for `open` doors: {e}"),
            },
            None => {}
        }
    }

    /// Puts the nftables table back if it vanished (`nft flush ruleset`, which Debian's
    /// nftables.service runs on restart): without it the guarded ports would be open to
    /// whatever the host's own rules allow. The engine calls this every few seconds.
    pub fn check_firewall(&mut self) {
        self.forget_closed();
        let Some(fw) = &self.firewall else { return };
        let now = Instant::now();
        let allowed: Vec<_> = self
            .windows
            .iter()
            .map(|w| (w.source, w.ports.clone(), w.until - now))
            .collect();
        match fw.reinstall_if_gone(&self.guarded, &allowed) {
            Ok(false) => {}
            Ok(true) => tracing::warn!(
                "the nftables table {} was deleted (nft flush ruleset?): put it back, with the {} \
                 door(s) it held open",
                self.table,
                allowed.len()
            ),
            Err(e) => tracing::error!(
                "the nftables table {} was deleted and cannot be put back: {e}",
                self.table
            ),
        }
    }

    fn remember(&mut self, door: &Door, source: IpAddr) {
        let a = &door.actions;
        let until = Instant::now() + a.open_for;
        self.windows
            .retain(|w| !(w.door == door.name && w.source == source));
        self.windows.push(Window {
            door: door.name.clone(),
            source,
            ports: a.open.clone(),
            since: SystemTime::now(),
            until,
        });
    }

    /// Drops windows the kernel has closed by now.
    fn forget_closed(&mut self) {
        let now = Instant::now();
        self.windows.retain(|w| w.until > now);
    }

    /// The ports open to knockers now: (door, knocker, since, closes in).
    pub fn open_windows(&mut self) -> Vec<(String, IpAddr, SystemTime, Duration)> {
        self.forget_closed();
        let now = Instant::now();
        self.windows
            .iter()
            .map(|w| (w.door.clone(), w.source, w.since, w.until - now))
            .collect()
    }

    /// Closes now the ports `door` opened (to `source` only, or to everyone; every door
    /// when `door` is `None`); returns what was closed: (door, knocker, since, was to close in).
    pub fn close(
        &mut self,
        door: Option<&str>,
        source: Option<IpAddr>,
    ) -> Vec<(String, IpAddr, SystemTime, Duration)> {
        self.forget_closed();
        let now = Instant::now();
        let (hit, kept): (Vec<Window>, Vec<Window>) = std::mem::take(&mut self.windows)
            .into_iter()
            .partition(|w| {
                door.is_none_or(|d| d == w.door) && source.is_none_or(|s| s == w.source)
            });
        self.windows = kept;
        let mut closed = Vec::new();
        for w in hit {
            if let Some(fw) = &self.firewall {
                if let Err(e) = fw.revoke(w.source, &w.ports) {
                    tracing::error!("{}: {}: cannot close: {e}", w.source, w.door);
                    continue;
                }
            }
            tracing::info!("{}: {}: closed by the operator", w.source, w.door);
            closed.push((w.door, w.source, w.since, w.until - now));
        }
        closed
    }

    /// Removes the nftables table: every port it guarded is as the host's own rules say.
    pub fn shutdown(&mut self) {
        if let Some(fw) = self.firewall.take() {
            if let Err(e) = fw.remove() {
                tracing::error!("cannot remove the nftables table: {e}");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guarded_ports_are_the_union_of_every_doors_open() {
        let text = "[doors.a]\nsequence = \"1\"\nopen = [\"22/tcp\", \"500/udp\"]\n[doors.b]\nsequence = \"2\"\nopen = \"22/tcp\"\n[doors.c]\nsequence = \"3\"\n";
        let config =
            knock_proto::config::toml::parse(std::path::Path::new("t.toml"), text).unwrap();
        let ports = guarded(&config);
        assert_eq!(port_list(&ports), "22/tcp, 500/udp");
    }
}

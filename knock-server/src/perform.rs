//! Performs a door's built-in actions when it opens (Wake-on-LAN, opening ports to the
//! knocker, a mail notice) and owns their state: the nftables table lives from start to
//! exit and follows reloads.
//!
//! It runs on a worker thread of its own (the executor's), never on the engine's: each
//! firewall change is one `nft` transaction, the magic packet one datagram, and mail goes to a
//! bounded queue served by [`MAIL_THREADS`] threads, so a slow MTA and a flood of openings
//! cost at most [`MAIL_QUEUE`] waiting notices (the others are dropped and logged).

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::PathBuf;

use anyhow::Context as _;
use knock_proto::Knock;
use knock_proto::config::{Config, Door, Forward};

use crate::actions::firewall::{Firewall, Integration, Nft};
use crate::actions::{mail, wol};

/// Threads delivering mail notices.
pub const MAIL_THREADS: usize = 4;
/// Mail notices waiting for a thread at most.
pub const MAIL_QUEUE: usize = 64;

/// A notice waiting to be delivered: (door, recipients, message).
type Notice = (String, String, String);

/// The mail threads' queue.
#[derive(Debug)]
struct Mailer {
    tx: std::sync::mpsc::SyncSender<(PathBuf, Notice)>,
}

impl Mailer {
    fn start() -> Mailer {
        let (tx, rx) = std::sync::mpsc::sync_channel::<(PathBuf, Notice)>(MAIL_QUEUE);
        let rx = std::sync::Arc::new(std::sync::Mutex::new(rx));
        for _ in 0..MAIL_THREADS {
            let rx = rx.clone();
            let spawned = std::thread::Builder::new()
                .name("mail".into())
                .spawn(move || {
                    loop {
                        let job = rx.lock().unwrap_or_else(|e| e.into_inner()).recv();
                        let Ok((sendmail, (name, to, message))) = job else {
                            break;
                        };
                        match mail::deliver(&sendmail, &message) {
                            Ok(()) => tracing::info!("{name}: mailed {to}"),
                            Err(e) => tracing::error!("{name}: cannot mail {to}: {e}"),
                        }
                    }
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a mail thread: {e}");
            }
        }
        Mailer { tx }
    }
}

/// The built-in actions' runtime state.
#[derive(Debug)]
pub struct Performer {
    mailer: Option<Mailer>,
    /// Mail notices dropped because the queue was full, since start.
    mail_dropped: u64,
    firewall: Option<Firewall>,
    /// How `nft` runs: for the table a reload installs as for the first.
    nft: Nft,
    /// Our instance's nftables table.
    table: String,
    /// The ports the table guards, to put it back if it is deleted.
    guarded: Vec<Knock>,
    /// Each `forward` door's forwards, by door name.
    forwards: HashMap<String, Vec<Forward>>,
    sendmail: PathBuf,
    mail_from: String,
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

/// Every door's forwards, by door name.
fn forwards(config: &Config) -> HashMap<String, Vec<Forward>> {
    config
        .doors
        .iter()
        .filter(|d| !d.actions.forward.is_empty())
        .map(|d| (d.name.clone(), d.actions.forward.clone()))
        .collect()
}

/// The forwards of all doors, sorted: what the DNAT chain holds.
fn all_forwards(forwards: &HashMap<String, Vec<Forward>>) -> Vec<Forward> {
    let mut all: Vec<Forward> = forwards.values().flatten().copied().collect();
    all.sort();
    all.dedup();
    all
}

/// `1723/tcp -> 198.19.0.2:1723, ...`, as `forward` is written.
fn forward_list(forwards: &[Forward]) -> String {
    let list: Vec<String> = forwards.iter().map(ToString::to_string).collect();
    list.join(", ")
}

/// `1723/tcp, 500/udp`, as `open` is written.
fn port_list(ports: &[Knock]) -> String {
    ports
        .iter()
        .map(|k| format!("{}/{}", k.port, k.proto))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Our rule in the other firewalls, unless the config says `firewall_integration = false`.
fn integration(config: &Config, nft: &Nft, table: &str) -> Option<Integration> {
    config
        .options
        .firewall_integration
        .then(|| Integration::new(nft.clone(), nft.prefix(), table))
}

impl Performer {
    /// Sets up what the config's actions need: the nftables `table` when a door has `open`
    /// (any table a crashed run of this instance left behind is replaced).
    pub fn new(config: &Config, table: &str) -> anyhow::Result<Performer> {
        Performer::with_firewall(config, Nft::system(), table)
    }

    /// [`Performer::new`], running nft as `nft` says.
    pub fn with_firewall(config: &Config, nft: Nft, table: &str) -> anyhow::Result<Performer> {
        let ports = guarded(config);
        let forwards = forwards(config);
        let needs_table = !ports.is_empty() || !forwards.is_empty();
        if (!needs_table || !config.options.firewall_integration) && nft.has_table(table) {
            // What a crashed run (whose table is still there) put in the other firewalls,
            // when nothing will replace it.
            let stale = Integration::new(nft.clone(), nft.prefix(), table);
            if let Err(e) = stale.remove() {
                tracing::debug!("no rule of ours removed from other firewalls: {e}");
            }
        }
        let firewall = if !needs_table {
            // A run that crashed with `open` doors left its table (still guarding, so its
            // ports stay closed); this config guards nothing.
            if let Err(e) = crate::actions::firewall::remove_stale_with(&nft, table) {
                tracing::debug!("no stale nftables table removed: {e}");
            }
            None
        } else {
            let fw = Firewall::install_forwarding(
                nft.clone(),
                table,
                &ports,
                &all_forwards(&forwards),
                integration(config, &nft, table),
            )
            .with_context(|| {
                format!("cannot set up the nftables table {table} for `open` and `forward` doors")
            })?;
            Some(fw)
        };
        Ok(Performer {
            mailer: None,
            mail_dropped: 0,
            firewall,
            nft,
            table: table.to_owned(),
            guarded: ports,
            forwards,
            sendmail: config.options.sendmail.clone(),
            mail_from: config
                .options
                .mail_from
                .clone()
                .unwrap_or_else(mail::default_from),
        })
    }

    /// A performer that never touches nftables (for tests, and configs without `open`
    /// doors that must leave a table alone).
    pub fn without_firewall(config: &Config) -> Performer {
        Performer {
            mailer: None,
            mail_dropped: 0,
            firewall: None,
            nft: Nft::system(),
            table: crate::instance::Instance::default().table(),
            guarded: Vec::new(),
            forwards: HashMap::new(),
            sendmail: config.options.sendmail.clone(),
            mail_from: config
                .options
                .mail_from
                .clone()
                .unwrap_or_else(mail::default_from),
        }
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
                    done.push(format!("opened {ports} to {source} for {secs} s"));
                }
                Some(Err(e)) => {
                    tracing::error!("{source}: {}: cannot open {ports}: {e}", door.name);
                    done.push(format!("FAILED to open {ports}: {e}"));
                }
                None => tracing::error!("{}: cannot open {ports}: no firewall table", door.name),
            }
        }
        if !actions.forward.is_empty() {
            let list = forward_list(&actions.forward);
            let secs = actions.open_for.as_secs();
            let forwarded = self
                .firewall
                .as_ref()
                .map(|fw| fw.allow_forward(source, &actions.forward, actions.open_for));
            match forwarded {
                Some(Ok(())) => {
                    tracing::info!("{source}: {}: forwarding {list} for {secs}s", door.name);
                    done.push(format!("forwarding {list} for {source} for {secs} s"));
                }
                Some(Err(e)) => {
                    tracing::error!("{source}: {}: cannot forward {list}: {e}", door.name);
                    done.push(format!("FAILED to forward {list}: {e}"));
                }
                None => tracing::error!("{}: cannot forward {list}: no firewall table", door.name),
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

    fn mail(&mut self, door: &Door, source: IpAddr, done: &[String]) {
        let message = mail::compose(
            &self.mail_from,
            &door.actions.mail_to,
            &door.name,
            source,
            chrono::Local::now().fixed_offset(),
            done,
        );
        let to = door.actions.mail_to.join(", ");
        let notice = (door.name.clone(), to.clone(), message);
        let mailer = self.mailer.get_or_insert_with(Mailer::start);
        if mailer.tx.try_send((self.sendmail.clone(), notice)).is_err() {
            self.mail_dropped += 1;
            tracing::error!(
                "{}: cannot mail {to}: {MAIL_QUEUE} notices are waiting for the mail program",
                door.name
            );
        }
    }

    /// Mail notices dropped because [`MAIL_QUEUE`] were already waiting, since start.
    pub fn mail_dropped(&self) -> u64 {
        self.mail_dropped
    }

    /// Closes `ports` to `source` now (a close request).
    pub fn revoke(&mut self, door: &str, source: IpAddr, ports: &[Knock]) {
        let Some(fw) = &self.firewall else { return };
        if !ports.is_empty() {
            match fw.revoke(source, ports) {
                Ok(()) => tracing::info!("{source}: {door}: closed {}", port_list(ports)),
                Err(e) => {
                    tracing::error!("{source}: {door}: cannot close {}: {e}", port_list(ports))
                }
            }
        }
        if let Some(forwards) = self.forwards.get(door) {
            let list = forward_list(forwards);
            match fw.revoke_forward(source, forwards) {
                Ok(()) => tracing::info!("{source}: {door}: stopped forwarding {list}"),
                Err(e) => tracing::error!("{source}: {door}: cannot stop forwarding {list}: {e}"),
            }
        }
    }

    /// Opens `ports` to `source` again for `open_for` (after the table was put back).
    pub fn allow(
        &mut self,
        door: &str,
        source: IpAddr,
        ports: &[Knock],
        open_for: std::time::Duration,
    ) {
        let Some(fw) = &self.firewall else { return };
        let list = port_list(ports);
        if !ports.is_empty() {
            match fw.allow(source, ports, open_for) {
                Ok(()) => tracing::info!(
                    "{source}: {door}: opened {list} again for {}s",
                    open_for.as_secs()
                ),
                Err(e) => tracing::error!("{source}: {door}: cannot open {list} again: {e}"),
            }
        }
        if let Some(forwards) = self.forwards.get(door) {
            let list = forward_list(forwards);
            match fw.allow_forward(source, forwards, open_for) {
                Ok(()) => tracing::info!(
                    "{source}: {door}: forwarding {list} again for {}s",
                    open_for.as_secs()
                ),
                Err(e) => tracing::error!("{source}: {door}: cannot forward {list} again: {e}"),
            }
        }
    }

    /// Puts our rule back where another firewall's reload took it out.
    pub fn check_integration(&self) {
        if let Some(fw) = &self.firewall {
            fw.check_integration();
        }
    }

    /// Whether our rule is in legacy iptables, which must be checked on a timer.
    pub fn polls_legacy(&self) -> bool {
        self.firewall.as_ref().is_some_and(Firewall::in_legacy)
    }

    /// Whether our rule is in other firewalls, whose changes `nft monitor` should report.
    pub fn integrates(&self) -> bool {
        self.firewall.as_ref().is_some_and(Firewall::integrates)
    }

    /// Whether the nftables table is missing (deleted behind our back); false when this
    /// config needs none.
    pub fn firewall_gone(&self) -> bool {
        self.firewall.as_ref().is_some_and(|fw| !fw.is_present())
    }

    /// Whether this config has a firewall table to watch.
    pub fn guards(&self) -> bool {
        self.firewall.is_some()
    }

    /// Puts the deleted nftables table back.
    pub fn reinstall_firewall(&mut self) {
        let Some(fw) = &self.firewall else { return };
        match fw.reinstall(&self.guarded) {
            Ok(()) => tracing::warn!(
                "the nftables table {} was deleted (nft flush ruleset?): put it back, with the \
                 ports still open to their knockers",
                self.table
            ),
            Err(e) => tracing::error!(
                "the nftables table {} was deleted and cannot be put back: {e}",
                self.table
            ),
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
        self.forwards = forwards(config);
        let all = all_forwards(&self.forwards);
        match &mut self.firewall {
            Some(fw) => {
                if let Err(e) = fw.set_guarded(&ports) {
                    tracing::error!("cannot update the guarded ports: {e}");
                }
                if let Err(e) = fw.set_forwards(&all) {
                    tracing::error!("cannot update the forwards: {e}");
                }
            }
            None if !ports.is_empty() || !all.is_empty() => {
                let integration = integration(config, &self.nft, &self.table);
                match Firewall::install_forwarding(
                    self.nft.clone(),
                    &self.table,
                    &ports,
                    &all,
                    integration,
                ) {
                    Ok(fw) => self.firewall = Some(fw),
                    Err(e) => {
                        tracing::error!("cannot set up the nftables table for `open` doors: {e}")
                    }
                }
            }
            None => {}
        }
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

    #[test]
    fn a_slow_mail_program_costs_a_bounded_queue_and_threads_never_one_per_opening() {
        let dir = tempfile::tempdir().unwrap();
        let (go, count) = (dir.path().join("go"), dir.path().join("count"));
        // Each sendmail notes that it started, then waits until the test lets it finish.
        let script = format!(
            "#!/bin/sh\necho x >> '{}'\nwhile [ ! -e '{}' ]; do sleep 0.05; done\ncat > /dev/null\n",
            count.display(),
            go.display()
        );
        let sendmail = dir.path().join("sendmail");
        // Written by another process: no thread of ours holds it open for writing when one
        // of our forks executes it (ETXTBSY).
        let mut writer = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "cat > '{0}' && chmod 755 '{0}'",
                sendmail.display()
            ))
            .stdin(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        std::io::Write::write_all(&mut writer.stdin.take().unwrap(), script.as_bytes()).unwrap();
        assert!(writer.wait().unwrap().success());
        let text = format!(
            "[options]\nsendmail = \"{}\"\n[doors.d]\nsequence = \"1\"\nmail_to = \"a@b\"\n",
            sendmail.display()
        );
        let config =
            knock_proto::config::toml::parse(std::path::Path::new("t.toml"), &text).unwrap();
        let mut p = Performer::without_firewall(&config);
        let door = &config.doors[0];
        for i in 0..200u32 {
            p.perform(door, std::net::Ipv4Addr::from(0xC613_0000 + i).into(), &[]);
        }
        let dropped = p.mail_dropped();
        assert!(
            dropped >= 200 - (MAIL_QUEUE + MAIL_THREADS) as u64,
            "{dropped}"
        );
        std::fs::write(&go, "").unwrap();
        let delivered = 200 - dropped as usize;
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
        while std::fs::read_to_string(&count).map_or(0, |c| c.lines().count()) < delivered {
            assert!(
                std::time::Instant::now() < deadline,
                "the queued notices were not sent"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

//! Following the host as it changes: its addresses (DHCP, IPv6 privacy addresses, a late
//! interface) and our nftables table (deleted by `nft flush ruleset`, as Debian's
//! nftables.service does on restart). Each watcher is a thread that sleeps until the kernel
//! says something changed and then tells the engine, which decides.
//!
//! - Addresses: a netlink route socket subscribed to the IPv4 and IPv6 address groups wakes
//!   the thread on every address added or removed; it then re-reads the addresses (the same
//!   `getifaddrs` read as at start, so there is one way of listing them) and sends the list.
//!   Parsing the netlink messages would say the same thing with more code.
//! - nftables: `nft monitor tables` as a child process prints one line per table created or
//!   deleted; a line deleting our table makes the engine put it back at once (instead of a
//!   poll every few seconds, during which the guarded ports followed the host's own rules).

use std::io::{BufRead as _, BufReader};
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::SyncSender;

use anyhow::Context as _;
use rustix::net::netlink::SocketAddrNetlink;
use rustix::net::{AddressFamily, RecvFlags, SocketType};

use crate::engine::Msg;

/// `RTMGRP_IPV4_IFADDR | RTMGRP_IPV6_IFADDR` (linux/rtnetlink.h).
const ADDRESS_GROUPS: u32 = 0x10 | 0x100;

/// Starts the address watcher for `interface` (`any`: every interface). `read` lists the
/// addresses, as at start.
pub fn watch_addresses(
    interface: String,
    read: fn(&str) -> Vec<IpAddr>,
    tx: SyncSender<Msg>,
) -> anyhow::Result<()> {
    let socket = rustix::net::socket(AddressFamily::NETLINK, SocketType::RAW, None)
        .context("cannot open a netlink socket to follow the host's addresses")?;
    rustix::net::bind(&socket, &SocketAddrNetlink::new(0, ADDRESS_GROUPS))
        .context("cannot subscribe to address changes (netlink)")?;
    std::thread::Builder::new()
        .name("addresses".into())
        .spawn(move || {
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                match rustix::net::recv(&socket, &mut buf[..], RecvFlags::empty()) {
                    Ok(_) => {}
                    // ENOBUFS: we missed messages; the re-read below covers them all.
                    Err(rustix::io::Errno::NOBUFS | rustix::io::Errno::INTR) => {}
                    Err(e) => {
                        tracing::error!("stopped following address changes: {e}");
                        return;
                    }
                }
                // Several changes often come together: take what is queued, read once.
                while rustix::net::recv(&socket, &mut buf[..], RecvFlags::DONTWAIT).is_ok() {}
                if tx.send(Msg::LocalAddresses(read(&interface))).is_err() {
                    return;
                }
            }
        })
        .context("cannot start the address thread")?;
    Ok(())
}

/// The running `nft monitor`, stopped when dropped.
#[derive(Debug)]
pub struct NftMonitor(Child);

impl Drop for NftMonitor {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `nft monitor tables` and tells the engine whenever `table` is deleted.
pub fn watch_table(table: &str, tx: SyncSender<Msg>) -> anyhow::Result<NftMonitor> {
    let mut command = Command::new("nft");
    die_with_parent(&mut command);
    let mut child = command
        .args(["monitor", "tables"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run `nft monitor tables`")?;
    let stdout = child.stdout.take().context("nft monitor has no stdout")?;
    let deleted = format!("delete table inet {table}");
    std::thread::Builder::new()
        .name("nft-monitor".into())
        .spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if is_deletion_of(&line, &deleted) && tx.send(Msg::FirewallChanged).is_err() {
                    return;
                }
            }
            tracing::debug!("nft monitor stopped");
        })
        .context("cannot start the nft monitor thread")?;
    Ok(NftMonitor(child))
}

/// Makes the child get SIGKILL when we die, however we die: after a `kill -9` of the daemon
/// no `nft monitor` is left waiting for a table event to notice.
#[allow(unsafe_code)]
fn die_with_parent(command: &mut Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs between fork and exec and makes one system call (prctl), which
    // is async-signal-safe; it allocates nothing and takes no lock.
    unsafe {
        command.pre_exec(|| {
            rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::KILL))
                .map_err(std::io::Error::from)
        });
    }
}

/// Whether a `nft monitor` line says our table went (`delete table inet NAME`, maybe with a
/// handle comment after it).
fn is_deletion_of(line: &str, deleted: &str) -> bool {
    let line = line.trim();
    line == deleted
        || line
            .strip_prefix(deleted)
            .is_some_and(|rest| rest.starts_with(' '))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_our_tables_deletion_counts() {
        let ours = "delete table inet knock_server";
        assert!(is_deletion_of("delete table inet knock_server", ours));
        assert!(is_deletion_of(
            "delete table inet knock_server # handle 3",
            ours
        ));
        assert!(!is_deletion_of("delete table inet knock_server_eth0", ours));
        assert!(!is_deletion_of("add table inet knock_server", ours));
    }
}

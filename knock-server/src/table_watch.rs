//! Following our nftables table as it changes: `nft monitor tables` as a child process prints
//! one line per table created or deleted; a line deleting our table makes the engine put it
//! back at once (instead of a poll every few seconds, during which the guarded ports followed
//! the host's own rules). The thread sleeps until nft says something.
//!
//! The host's addresses are followed elsewhere, by the capture thread (`host::Watch`, a
//! netlink socket in the same poll(2) as the capture), because its decoder needs them first.

use std::io::{BufRead as _, BufReader};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::SyncSender;

use anyhow::Context as _;

use crate::engine::Msg;

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
            // The executor falls back to periodic checks (unless we are exiting: then the
            // queue may be full or gone, and nobody needs to know).
            tracing::debug!("nft monitor stopped");
            let _ = tx.try_send(Msg::TableUnwatched);
        })
        .context("cannot start the nft monitor thread")?;
    Ok(NftMonitor(child))
}

/// Makes the child get SIGKILL when we die, however we die: after a `kill -9` of the daemon
/// no `nft monitor` is left waiting for a table event to notice. Unsafe because std's
/// `pre_exec` is: nothing else runs code between fork and exec.
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

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

/// Starts `nft monitor` and tells the engine whenever `table` is deleted, and (with
/// `others`: firewall integration) once per transaction that changed another table's
/// chains or rules (a reload of fw4, nftables.service, ufw on iptables-nft), so that our
/// rule goes back into them.
pub fn watch_table(table: &str, others: bool, tx: SyncSender<Msg>) -> anyhow::Result<NftMonitor> {
    let mut command = Command::new("nft");
    die_with_parent(&mut command);
    // Every event (nft 1.0.6 prints its `# new generation` line, which ends a transaction,
    // only when no object type is named), or just table events.
    let what: &[&str] = if others { &[] } else { &["tables"] };
    let mut child = command
        .arg("monitor")
        .args(what)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot run `nft monitor`")?;
    let stdout = child.stdout.take().context("nft monitor has no stdout")?;
    let deleted = format!("delete table inet {table}");
    let ours = format!(" inet {table} ");
    std::thread::Builder::new()
        .name("nft-monitor".into())
        .spawn(move || {
            let mut changed = false;
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                let tell = if is_deletion_of(&line, &deleted) {
                    true
                } else if line.starts_with("# new generation") {
                    std::mem::take(&mut changed)
                } else {
                    changed |= others && changes_another_table(&line, &ours);
                    false
                };
                if tell && tx.send(Msg::FirewallChanged).is_err() {
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

/// Whether a `nft monitor` line changes the chains or rules of a table other than ours
/// (`ours`: ` inet NAME `); set elements come and go all the time and never drop our rule.
fn changes_another_table(line: &str, ours: &str) -> bool {
    let changes = ["add ", "insert ", "replace ", "delete ", "flush "]
        .iter()
        .any(|verb| line.starts_with(verb));
    let element = line.contains(" element ");
    changes && !element && !format!("{line} ").contains(ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn another_tables_rules_count_our_own_and_set_elements_do_not() {
        let ours = " inet knock_server ";
        assert!(changes_another_table(
            "delete rule inet fw4 input handle 3",
            ours
        ));
        assert!(changes_another_table("flush table inet fw4", ours));
        assert!(changes_another_table(
            "add chain ip filter INPUT { type filter hook input priority filter; policy drop; }",
            ours
        ));
        assert!(!changes_another_table(
            "add rule inet knock_server guard accept",
            ours
        ));
        assert!(!changes_another_table(
            "add element inet fw4 s { 198.18.0.1 }",
            ours
        ));
        assert!(!changes_another_table(
            "# new generation 4 by process 1 (nft)",
            ours
        ));
    }

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

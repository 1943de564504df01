//! The `open` action: ports that stay closed to everyone except, for a while, the address
//! that knocked. The kernel enforces it through one nftables table that this server owns:
//!
//! ```text
//! table inet knock_server {
//!     set guarded { type inet_proto . inet_service; elements = { tcp . 22 } }
//!     set allow4  { type ipv4_addr . inet_proto . inet_service; flags timeout; }
//!     set allow6  { type ipv6_addr . inet_proto . inet_service; flags timeout; }
//!     chain input {
//!         type filter hook input priority filter - 10; policy accept;
//!         meta l4proto . th dport @guarded jump guard
//!     }
//!     chain guard {
//!         iif "lo" accept
//!         ct state established,related accept
//!         ip saddr . meta l4proto . th dport @allow4 accept
//!         ip6 saddr . meta l4proto . th dport @allow6 accept
//!         meta l4proto tcp reject with tcp reset
//!         reject with icmpx port-unreachable
//!     }
//! }
//! ```
//!
//! That is the default instance's table; `--instance NAME` owns `knock_server_NAME` instead
//! (see [`crate::instance`]), and every batch names its own table, so one instance never
//! touches another's.
//!
//! Opening a door adds `knocker . proto . port` to an allow set with a kernel timeout, so the
//! kernel closes the door on time even if the daemon is killed with -9; the guard itself
//! stays, so the ports stay closed after a crash until the table is deleted (at exit, or
//! by the next start, which replaces any stale table). Established connections survive the
//! window; new ones are refused exactly like a closed port refuses them (TCP reset, ICMP port
//! unreachable). Traffic to other ports is accepted by this chain only, so the user's own
//! tables still decide about it. Loopback is exempt: what never left the host comes from its
//! own users and services, which almost every firewall already trusts.
//!
//! Why nft's JSON (`nft -j -f -`): `nft` applies each batch as one kernel transaction, so
//! install replaces a stale table atomically and a refused batch changes nothing, and the
//! JSON is data we build and test as data ([`json`]) rather than rule text by hand. The
//! netlink crates were the alternative: `nftnl` binds the C libnftnl (a system library at
//! build and run time), and `rustables` needs bindgen and libclang to build and works at the
//! level of kernel registers, so a concatenated lookup would be assembled by hand. The cost
//! is the `nft` binary at run time, which every nftables system has. We run `nft` ourselves
//! ([`Nft`]) so that its error message is returned rather than sent to our stderr, and so
//! that tests can run it inside a network namespace.
//!
//! Building the batches ([`ruleset`]) is pure and unit-tested; [`Firewall`] only runs them.

pub mod integration;
pub mod json;
pub mod ruleset;

use std::ffi::OsString;
use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use knock_proto::sequence::Knock;

pub use integration::Integration;
use json::Batch;
use knock_proto::config::Forward;
use ruleset::{
    allow_batch, allow_forward_batch, forward_batch, forwarded_guard_batch, guard_batch,
    install_batch_with, remove_batch, revoke_batch, revoke_forward_batch,
};

/// Why the firewall could not be changed.
#[derive(Debug, thiserror::Error)]
pub enum FirewallError {
    /// `nft` could not be started or talked to.
    #[error(
        "cannot run `{program}`: {source} (the `open` action needs nftables: install the nftables package)"
    )]
    Spawn {
        /// The program we tried to run.
        program: String,
        /// What the system said.
        source: std::io::Error,
    },
    /// `nft` ran and refused the batch; nothing was changed.
    #[error("nft could not {action}: {message}")]
    Refused {
        /// What we were doing.
        action: &'static str,
        /// nft's own error message.
        message: String,
    },
}

/// How long one `nft` run may take before it is killed. A batch is one netlink transaction
/// of milliseconds; an `nft` that hangs must not hold the actions worker (doors would stop
/// opening and closing, and the engine would wait for room in the worker's queue).
pub const NFT_DEADLINE: Duration = Duration::from_secs(10);

/// How to run `nft`: normally just `nft`, but any prefix works, such as
/// `ip netns exec NAME nft` to act inside a network namespace.
#[derive(Debug, Clone)]
pub struct Nft {
    argv: Vec<OsString>,
    /// [`NFT_DEADLINE`], shorter in tests.
    deadline: Duration,
}

impl Nft {
    /// `nft` from `PATH`.
    pub fn system() -> Nft {
        Nft {
            argv: vec!["nft".into()],
            deadline: NFT_DEADLINE,
        }
    }

    /// The same `nft`, killed after `deadline` instead of [`NFT_DEADLINE`].
    pub fn with_deadline(self, deadline: Duration) -> Nft {
        Nft { deadline, ..self }
    }

    /// The command line that runs `nft`, program first (`["ip", "netns", "exec", "ns1", "nft"]`);
    /// `-j -f -` is appended. An empty list means `nft`.
    #[allow(dead_code)] // The namespace tests run nft through `ip netns exec`.
    pub fn with_command<I, S>(argv: I) -> Nft
    where
        I: IntoIterator<Item = S>,
        S: Into<OsString>,
    {
        let argv: Vec<OsString> = argv.into_iter().map(Into::into).collect();
        if argv.is_empty() {
            Nft::system()
        } else {
            Nft {
                argv,
                deadline: NFT_DEADLINE,
            }
        }
    }

    /// What runs before the program (`["ip", "netns", "exec", "ns1"]`), for the iptables tools
    /// to run the same way.
    pub fn prefix(&self) -> Vec<OsString> {
        self.argv[..self.argv.len().saturating_sub(1)].to_vec()
    }

    /// Applies `batch` as one transaction.
    pub fn apply(&self, batch: &Batch, action: &'static str) -> Result<(), FirewallError> {
        let program = self.argv[0].to_string_lossy().into_owned();
        let spawn_error = |source| FirewallError::Spawn {
            program: program.clone(),
            source,
        };
        // Serializing plain data to a String cannot fail; should it ever, nft reports
        // the empty input instead of us panicking.
        let json = serde_json::to_string(batch).unwrap_or_default();
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .args(["-j", "-f", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        let written = match child.stdin.take() {
            Some(mut stdin) => stdin.write_all(json.as_bytes()),
            None => Ok(()),
        };
        if !exits_within(&mut child, self.deadline).map_err(spawn_error)? {
            return Err(FirewallError::Refused {
                action,
                message: format!(
                    "{program} did not finish within {} s and was killed",
                    self.deadline.as_secs_f32()
                ),
            });
        }
        let output = child.wait_with_output().map_err(spawn_error)?;
        if output.status.success() {
            return written.map_err(spawn_error);
        }
        let stderr = String::from_utf8_lossy(&output.stderr);
        let mut message = match stderr.trim() {
            "" => format!("{program} exited with {}", output.status),
            text => text.lines().collect::<Vec<_>>().join(" / "),
        };
        if message.contains("Operation not permitted") {
            message.push_str(" (the `open` action needs root or CAP_NET_ADMIN)");
        }
        Err(FirewallError::Refused { action, message })
    }
}

impl Nft {
    /// The whole ruleset, as `nft -j list ruleset` prints it.
    pub fn list_ruleset(&self) -> Result<serde_json::Value, FirewallError> {
        let program = self.argv[0].to_string_lossy().into_owned();
        let spawn_error = |source| FirewallError::Spawn {
            program: program.clone(),
            source,
        };
        let mut child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .args(["-j", "list", "ruleset"])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(spawn_error)?;
        // Read while it runs: a large ruleset fills the pipe before nft exits.
        let mut stdout = Vec::new();
        if let Some(mut out) = child.stdout.take() {
            use std::io::Read as _;
            let _ = out.read_to_end(&mut stdout);
        }
        let output = child.wait_with_output().map_err(spawn_error)?;
        if !output.status.success() {
            return Err(FirewallError::Refused {
                action: "list the ruleset",
                message: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
            });
        }
        serde_json::from_slice(&stdout).map_err(|e| FirewallError::Refused {
            action: "list the ruleset",
            message: format!("nft printed what is not JSON: {e}"),
        })
    }

    /// Whether our table is in the kernel now (`nft list table`); `nft flush ruleset`, as
    /// nftables.service runs on restart, deletes it behind our back.
    pub fn has_table(&self, table: &str) -> bool {
        let child = Command::new(&self.argv[0])
            .args(&self.argv[1..])
            .args(["list", "table", "inet", table])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        // An nft that hangs says nothing of the table: present, as far as we know.
        let Ok(mut child) = child else { return false };
        match exits_within(&mut child, self.deadline) {
            Ok(true) => child.wait().is_ok_and(|s| s.success()),
            _ => true,
        }
    }
}

/// Waits until `child` exits, at most `deadline`; kills it (and reaps it) if it has not.
/// Whether it exited by itself. The child is not reaped when it did: its output is still to
/// be read.
fn exits_within(child: &mut Child, deadline: Duration) -> std::io::Result<bool> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    // A pidfd turns readable when the process exits: one poll, no sleeping loop. A kernel
    // without pidfd_open (before 5.3) gets the unbounded wait nft always had there.
    let Ok(pidfd) = rustix::process::pidfd_open(
        rustix::process::Pid::from_child(child),
        rustix::process::PidfdFlags::empty(),
    ) else {
        return Ok(true);
    };
    let timeout = Timespec::try_from(deadline).unwrap_or(Timespec {
        tv_sec: i64::MAX,
        tv_nsec: 0,
    });
    loop {
        let mut fds = [PollFd::new(&pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&timeout)) {
            Ok(0) => break,
            Ok(_) => return Ok(true),
            Err(rustix::io::Errno::INTR) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    child.kill()?;
    child.wait()?;
    Ok(false)
}

/// Our nftables table while the daemon runs. Dropping it removes the table (best effort;
/// use [`Firewall::remove`] to see errors).
#[derive(Debug)]
pub struct Firewall {
    nft: Nft,
    /// Our instance's table: the only table we ever create or delete.
    table: String,
    installed: bool,
    /// Our rule in the other firewalls' chains, when integrating with them.
    integration: Option<Integration>,
    /// Whether one of them is legacy iptables (as of the install).
    legacy: bool,
    /// The `forward` doors' forwards, which the table's DNAT chain holds.
    forwards: Vec<Forward>,
}

impl Firewall {
    /// Replaces any table of ours left by an earlier run with a fresh one guarding `guarded`
    /// (every door's `open` ports), all in one transaction, running nft as `nft` says
    /// ([`Nft::system`]; in tests a stand-in, or inside a namespace).
    pub fn install_with(
        nft: Nft,
        table: &str,
        guarded: &[Knock],
    ) -> Result<Firewall, FirewallError> {
        Firewall::install_integrated(nft, table, guarded, None)
    }

    /// [`Firewall::install_with`], and with `integration` our rule in every other firewall
    /// (see [`integration`]), which [`Firewall::check_integration`] keeps there.
    pub fn install_integrated(
        nft: Nft,
        table: &str,
        guarded: &[Knock],
        integration: Option<Integration>,
    ) -> Result<Firewall, FirewallError> {
        Firewall::install_forwarding(nft, table, guarded, &[], integration)
    }

    /// [`Firewall::install_integrated`], with the DNAT of `forwards` (the `forward` doors).
    pub fn install_forwarding(
        nft: Nft,
        table: &str,
        guarded: &[Knock],
        forwards: &[Forward],
        integration: Option<Integration>,
    ) -> Result<Firewall, FirewallError> {
        let mut batch = install_batch_with(table, guarded, integration.is_some());
        batch.extend(forwarded_guard_batch(table));
        if !forwards.is_empty() {
            batch.extend(forward_batch(table, forwards));
        }
        nft.apply(&batch, "install the nftables table")?;
        let integration = integration.map(|i| i.with_forward(!forwards.is_empty()));
        let mut fw = Firewall {
            nft,
            table: table.to_owned(),
            installed: true,
            integration,
            legacy: false,
            forwards: forwards.to_vec(),
        };
        fw.legacy = fw.check_integration();
        Ok(fw)
    }

    /// Whether our rule is in legacy iptables (as of the install).
    pub fn in_legacy(&self) -> bool {
        self.legacy
    }

    /// Whether our rule goes into the other firewalls.
    pub fn integrates(&self) -> bool {
        self.integration.is_some()
    }

    /// Puts our rule back in the other firewalls' chains that lack it (after a reload of
    /// theirs), logging each; whether one of them is legacy iptables, which must be checked
    /// on a timer.
    pub fn check_integration(&self) -> bool {
        let Some(integration) = &self.integration else {
            return false;
        };
        match integration.ensure() {
            Ok((added, legacy)) => {
                for target in added {
                    tracing::info!(
                        "firewall integration: our rule accepting what `open` lets in is at \
                         the top of the {target}"
                    );
                }
                legacy
            }
            Err(e) => {
                tracing::error!("firewall integration: {e}");
                false
            }
        }
    }

    /// Whether our table is in the kernel now; `nft flush ruleset`, as nftables.service runs
    /// on restart, deletes it behind our back.
    pub fn is_present(&self) -> bool {
        self.nft.has_table(&self.table)
    }

    /// Puts the table back (after something deleted it), guarding `guarded` again. The ports
    /// still open to knockers are let in again with [`Firewall::allow`], for what is left of
    /// their time (the engine knows which: `Effect::Allow`).
    pub fn reinstall(&self, guarded: &[Knock]) -> Result<(), FirewallError> {
        let mut batch = install_batch_with(&self.table, guarded, self.integration.is_some());
        batch.extend(forwarded_guard_batch(&self.table));
        if !self.forwards.is_empty() {
            batch.extend(forward_batch(&self.table, &self.forwards));
        }
        self.nft.apply(&batch, "reinstall the nftables table")?;
        self.check_integration();
        Ok(())
    }

    /// The table's name.
    pub fn table(&self) -> &str {
        &self.table
    }

    /// Closes `ports` to `ip` now (whether or not they were open).
    pub fn revoke(&self, ip: IpAddr, ports: &[Knock]) -> Result<(), FirewallError> {
        if ports.is_empty() {
            return Ok(());
        }
        self.nft
            .apply(&revoke_batch(&self.table, ip, ports), "close the door")
    }

    /// Replaces the guarded ports (after a reload) without closing doors already open.
    pub fn set_guarded(&self, guarded: &[Knock]) -> Result<(), FirewallError> {
        self.nft.apply(
            &guard_batch(&self.table, guarded),
            "update the guarded ports",
        )
    }

    /// Replaces the forwards (after a reload) without closing those already open.
    pub fn set_forwards(&mut self, forwards: &[Forward]) -> Result<(), FirewallError> {
        if forwards == self.forwards {
            return Ok(());
        }
        self.nft
            .apply(&forward_batch(&self.table, forwards), "update the forwards")?;
        self.forwards = forwards.to_vec();
        if let Some(i) = self.integration.take() {
            self.integration = Some(i.with_forward(!forwards.is_empty()));
        }
        self.check_integration();
        Ok(())
    }

    /// Forwards `forwards` for `ip` for `for_`, as [`Firewall::allow`] opens ports.
    pub fn allow_forward(
        &self,
        ip: IpAddr,
        forwards: &[Forward],
        for_: Duration,
    ) -> Result<(), FirewallError> {
        let batch = allow_forward_batch(&self.table, ip, forwards, for_);
        if batch.is_empty() {
            return Ok(());
        }
        self.nft.apply(&batch, "forward for the knocker")
    }

    /// Stops forwarding `forwards` for `ip` now.
    pub fn revoke_forward(&self, ip: IpAddr, forwards: &[Forward]) -> Result<(), FirewallError> {
        let batch = revoke_forward_batch(&self.table, ip, forwards);
        if batch.is_empty() {
            return Ok(());
        }
        self.nft.apply(&batch, "close the forward")
    }

    /// Opens `ports` to `ip` for `for_` (rounded up to whole seconds, at least one). Opening
    /// again while open restarts the window.
    pub fn allow(&self, ip: IpAddr, ports: &[Knock], for_: Duration) -> Result<(), FirewallError> {
        if ports.is_empty() {
            return Ok(());
        }
        self.nft
            .apply(&allow_batch(&self.table, ip, ports, for_), "open the door")
    }

    /// Deletes the table, and our rule from the other firewalls: every guarded port is as
    /// the rest of the firewall leaves it.
    pub fn remove(mut self) -> Result<(), FirewallError> {
        self.installed = false;
        if let Some(integration) = self.integration.take() {
            integration.remove()?;
        }
        remove_stale_with(&self.nft, &self.table)
    }
}

impl Drop for Firewall {
    fn drop(&mut self) {
        if !self.installed {
            return;
        }
        if let Some(integration) = self.integration.take() {
            if let Err(e) = integration.remove() {
                tracing::warn!("{e}");
            }
        }
        if let Err(e) = remove_stale_with(&self.nft, &self.table) {
            tracing::warn!("{e}");
        }
    }
}

/// Deletes our instance's `table` left by a run that could not clean up (kill -9); succeeds
/// when there is none.
pub fn remove_stale_with(nft: &Nft, table: &str) -> Result<(), FirewallError> {
    nft.apply(&remove_batch(table), "delete the nftables table")
}

#[cfg(test)]
mod tests {
    use super::ruleset::install_batch;
    use super::*;

    /// An `nft` stand-in: `sh -c SCRIPT sh -j -f -`, so the script sees nft's arguments.
    fn stand_in(script: &str) -> Nft {
        Nft::with_command(["sh", "-c", script, "sh"])
    }

    #[test]
    fn an_nft_that_hangs_is_killed_and_reported_not_waited_for() {
        let marker = tempfile::NamedTempFile::new().unwrap();
        // Records its pid, then never exits.
        let script = format!("echo $$ > '{}'; exec sleep 1000", marker.path().display());
        let nft = stand_in(&script).with_deadline(Duration::from_millis(300));
        let err = remove_stale_with(&nft, "knock_server").unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("did not finish within 0.3 s and was killed"),
            "{text}"
        );
        let pid = std::fs::read_to_string(marker.path()).unwrap();
        assert!(
            !std::path::Path::new(&format!("/proc/{}", pid.trim())).exists(),
            "the hung nft {pid} is gone"
        );
        assert!(
            nft.has_table("knock_server"),
            "a hung nft says nothing: present"
        );
    }

    #[test]
    fn batches_reach_nft_as_json_on_stdin_with_j_f_dash() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("batch.json");
        let script = format!("echo \"$@\" > '{0}.args'; cat > '{0}'", out.display());
        let guarded = ["22".parse().unwrap()];
        let fw = Firewall::install_with(stand_in(&script), "knock_server", &guarded).unwrap();
        let sent: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        // The table, then the guard of the ports this host forwards elsewhere.
        let mut expected = install_batch("knock_server", &guarded);
        expected.extend(forwarded_guard_batch("knock_server"));
        assert_eq!(sent, serde_json::to_value(expected).unwrap());
        let args = std::fs::read_to_string(dir.path().join("batch.json.args")).unwrap();
        assert_eq!(args, "-j -f -\n");
        fw.remove().unwrap();
        let sent: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
        assert_eq!(
            sent,
            serde_json::to_value(remove_batch("knock_server")).unwrap()
        );
    }

    #[test]
    fn a_refusal_carries_nfts_message_and_a_missing_nft_says_what_to_install() {
        let refusing =
            stand_in("cat > /dev/null; echo 'Error: Could not process rule' >&2; exit 1");
        let e = Firewall::install_with(refusing, "t", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("Could not process rule") && !e.contains("root"),
            "{e}"
        );
        let unprivileged = stand_in("echo 'Error: Operation not permitted' >&2; exit 1");
        let e = Firewall::install_with(unprivileged, "t", &[])
            .unwrap_err()
            .to_string();
        assert!(e.contains("needs root or CAP_NET_ADMIN"), "{e}");
        let missing = Nft::with_command(["/nonexistent/nft"]);
        let e = Firewall::install_with(missing, "t", &[])
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("/nonexistent/nft") && e.contains("nftables package"),
            "{e}"
        );
    }
}

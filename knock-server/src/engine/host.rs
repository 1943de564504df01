//! The engine's inputs from the host around it: its addresses changing, the nftables table
//! deleted behind our back, and logrotate's signal.

use std::net::IpAddr;

use knock_proto::Timestamp;
use tracing::Level;

use super::{Effect, Engine};

impl Engine {
    /// This host's addresses changed (netlink): doors without a target follow them, so a
    /// knock to an address the host got after start counts, and one to a gone address not.
    pub fn set_local_addresses(&mut self, local: Vec<IpAddr>) {
        if local == self.local {
            return;
        }
        let list: Vec<String> = local.iter().map(IpAddr::to_string).collect();
        self.log(
            Level::INFO,
            None,
            format!("local addresses changed: {}", list.join(", ")),
        );
        self.tracker.set_local_addresses(&local);
        self.local = local;
        self.set_filter(self.filter());
    }

    /// The nftables table was deleted behind our back (`nft flush ruleset`): put it back with
    /// the ports still open to their knockers, for what is left of their time.
    pub fn firewall_gone(&mut self, now: Timestamp) {
        self.clock = self.clock.max(now);
        self.effects.push_back(Effect::ReinstallFirewall);
        let allows: Vec<Effect> = self
            .windows
            .iter()
            .filter_map(|w| {
                let p = w.ports.as_ref().filter(|p| p.until > self.clock)?;
                Some(Effect::Allow {
                    door: w.door.clone(),
                    source: w.source,
                    ports: p.ports.clone(),
                    open_for: p.until.saturating_since(self.clock),
                })
            })
            .collect();
        self.effects.extend(allows);
    }

    /// SIGHUP or SIGUSR1: logrotate moved the LogFile away; the lines from here on go to a
    /// new file of that name. knockd never reopens it.
    pub fn reopen_log(&mut self) {
        self.effects.push_back(Effect::ReopenLog);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::super::tests::{effects, engine_at, knock, ms};
    use super::*;

    const OPEN_DOOR: &str =
        "[doors.ssh]\nsequence = \"7000,8000\"\nopen = \"22/tcp\"\nopen_seconds = 30\n";

    #[test]
    fn logrotates_signal_asks_for_the_log_file_to_be_reopened_and_nothing_else() {
        let mut e = engine_at(Timestamp::ZERO, OPEN_DOOR, Vec::new());
        effects(&mut e);
        e.reopen_log();
        assert_eq!(effects(&mut e), [Effect::ReopenLog]);
    }

    #[test]
    fn a_flushed_table_comes_back_with_only_the_ports_still_open() {
        let mut e = engine_at(Timestamp::ZERO, OPEN_DOOR, Vec::new());
        knock(&mut e, ms(0), "198.18.0.1", &[7000, 8000]);
        knock(&mut e, ms(20_000), "198.18.0.3", &[7000, 8000]);
        effects(&mut e);
        // The first window's ports ended at 30 s; no tick has taken them out yet.
        e.firewall_gone(ms(31_000));
        let fx = effects(&mut e);
        let [
            Effect::ReinstallFirewall,
            Effect::Allow {
                source, open_for, ..
            },
        ] = &fx[..]
        else {
            panic!("{fx:?}")
        };
        assert_eq!(source.to_string(), "198.18.0.3");
        assert_eq!(*open_for, Duration::from_secs(19));
    }
}

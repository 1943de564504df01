//! Performs a door's built-in actions (Wake-on-LAN, mail notice, opening ports) when it
//! opens, and owns their state across reloads and at shutdown.

use std::net::IpAddr;

use knock_proto::config::{Config, Door};

/// The built-in actions' runtime state.
#[derive(Debug, Default)]
pub struct Performer {}

impl Performer {
    /// Sets up what the config's actions need (the firewall table for `open`).
    pub fn new(_config: &Config) -> anyhow::Result<Performer> {
        Ok(Performer {})
    }

    /// Runs `door`'s built-in actions for `source`.
    pub fn perform(&mut self, _door: &Door, _source: IpAddr) {}

    /// Follows a reloaded config.
    pub fn reconfigure(&mut self, _config: &Config) {}

    /// Removes what `new` set up.
    pub fn shutdown(&mut self) {}
}

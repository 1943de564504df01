//! From a config's rotating door to the protocol's [`RotatingDoor`]: the ports it draws from,
//! less every port another door knocks on or opens, so that a derived knock never lands on one.
//!
//! Only what is fixed in the config is taken out: fixed sequences and `open` ports. One-time
//! sequences change as they are used, and taking them out would change the derived sequences
//! under the clients' feet; other rotating doors change every step.

use crate::auth::{Key, PortSet, RotatingDoor};
use crate::config::model::{Config, SequenceSource};
use crate::sequence::Port;

impl Config {
    /// The ports door `index`'s sequences are drawn from: its `ports` less the ports other
    /// doors use. `None` if the door is not rotating, or if nothing is left (which `--check`
    /// reports).
    pub fn rotating_ports(&self, index: usize) -> Option<PortSet> {
        let SequenceSource::Rotating(r) = &self.doors.get(index)?.sequence else {
            return None;
        };
        r.ports.without(self.fixed_ports())
    }

    /// Every port a fixed sequence knocks on or an `open` action opens, any protocol.
    fn fixed_ports(&self) -> Vec<Port> {
        let mut ports = Vec::new();
        for door in &self.doors {
            if let SequenceSource::Fixed(s) = &door.sequence {
                ports.extend(s.knocks().iter().map(|k| k.port));
            }
            ports.extend(door.actions.open.iter().map(|k| k.port));
        }
        ports
    }

    /// The protocol's view of door `index` with its key; `None` if it is not rotating or has
    /// no port left.
    pub fn rotating_door(&self, index: usize, key: Key) -> Option<RotatingDoor> {
        let door = self.doors.get(index)?;
        let SequenceSource::Rotating(r) = &door.sequence else {
            return None;
        };
        Some(RotatingDoor {
            name: door.name.clone(),
            key,
            knocks: r.knocks,
            ports: self.rotating_ports(index)?,
            step_seconds: r.step_seconds,
            seal: r.seal(),
            seq_timeout: door.seq_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use crate::config::toml::parse;

    #[test]
    fn other_doors_ports_are_taken_out() {
        let c = parse(
            Path::new("k.toml"),
            "[doors.ssh]\nsecret_file = \"k\"\nports = \"7000-7010\"\n\
             [doors.web]\nsequence = \"7001,7002:udp\"\nopen = \"7010/tcp\"\n",
        )
        .unwrap();
        assert_eq!(c.rotating_ports(0).unwrap().to_string(), "7000,7003-7009");
        assert_eq!(c.rotating_ports(1), None);
        let d = c
            .rotating_door(0, crate::auth::Key::from_bytes([0; 32]))
            .unwrap();
        assert_eq!((d.name.as_str(), d.knocks), ("ssh", 3));
    }
}

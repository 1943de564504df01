//! From a config's rotating door to the protocol's [`RotatingDoor`]: the ports it draws from
//! are its own `ports`, nothing else, so that adding, changing or removing another door never
//! changes its knocks (what `knock-server pair` gave a client stays right).
//!
//! A derived knock may then land on a port another door knocks on in some step: the server
//! tells the two apart without the client's help (a sealed knock by its seal; an unsealed one
//! counts for both doors, see knock-server's `rotating.rs`).
//!
//! An earlier `pair` printed `ports` less every port a fixed sequence knocks on or an `open`
//! action opens ([`Config::rotating_ports`]); clients paired then derive from that set.
//! The server still accepts their knocks ([`Config::rotating_legacy_door`]) as long as the
//! other doors are as they were, so that upgrading locks nobody out; pairing again moves a
//! client to the door's own `ports`.

use crate::auth::{Key, PortSet, RotatingDoor};
use crate::config::model::{Config, SequenceSource};
use crate::sequence::Port;

impl Config {
    /// The ports door `index`'s sequences are drawn from, what `pair` prints and `--check`
    /// and `status` show: the door's own `ports`. `None` if the door is not rotating.
    pub fn rotating_door_ports(&self, index: usize) -> Option<&PortSet> {
        match &self.doors.get(index)?.sequence {
            SequenceSource::Rotating(r) => Some(&r.ports),
            _ => None,
        }
    }

    /// The set an older `pair` printed for door `index` with the doors as they are now: its
    /// `ports` less the ports other doors use. `None` if the door is not rotating, or if
    /// nothing is left.
    pub fn rotating_ports(&self, index: usize) -> Option<PortSet> {
        self.rotating_door_ports(index)?.without(self.fixed_ports())
    }

    /// [`Config::rotating_ports`] when it differs from the door's own `ports` and still holds
    /// a sequence: the set clients paired by an older `pair` derive from, which the server
    /// accepts too.
    pub fn rotating_legacy_ports(&self, index: usize) -> Option<PortSet> {
        let SequenceSource::Rotating(r) = &self.doors.get(index)?.sequence else {
            return None;
        };
        self.rotating_ports(index)
            .filter(|p| *p != r.ports && p.len() >= u32::from(r.knocks))
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

    /// The protocol's view of door `index` with its key, derived from its own `ports`; `None`
    /// if it is not rotating.
    pub fn rotating_door(&self, index: usize, key: Key) -> Option<RotatingDoor> {
        let door = self.doors.get(index)?;
        let SequenceSource::Rotating(r) = &door.sequence else {
            return None;
        };
        Some(RotatingDoor {
            name: door.name.clone(),
            key,
            knocks: r.knocks,
            ports: r.ports.clone(),
            step_seconds: r.step_seconds,
            seal: r.seal(),
            seq_timeout: door.seq_timeout,
        })
    }

    /// Door `index` as clients paired by an older `pair` knock it
    /// ([`Config::rotating_legacy_ports`]); `None` when they knock it as everyone does.
    pub fn rotating_legacy_door(&self, index: usize, key: Key) -> Option<RotatingDoor> {
        let ports = self.rotating_legacy_ports(index)?;
        Some(RotatingDoor {
            ports,
            ..self.rotating_door(index, key)?
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

    #[test]
    fn a_door_draws_from_its_own_ports_whatever_the_other_doors_and_older_pairs_from_the_rest() {
        let ssh = "[doors.ssh]\nsecret_file = \"k\"\nports = \"7000-7010\"\n";
        let key = || crate::auth::Key::from_bytes([0; 32]);
        let alone = parse(Path::new("k.toml"), ssh).unwrap();
        let with = parse(
            Path::new("k.toml"),
            &format!("{ssh}[doors.web]\nsequence = \"7001,7002:udp\"\nopen = \"7010/tcp\"\n"),
        )
        .unwrap();
        for c in [&alone, &with] {
            assert_eq!(c.rotating_door_ports(0).unwrap().to_string(), "7000-7010");
            assert_eq!(c.rotating_door(0, key()), alone.rotating_door(0, key()));
        }
        assert_eq!(
            alone.rotating_legacy_door(0, key()),
            None,
            "nothing to take out"
        );
        let legacy = with.rotating_legacy_door(0, key()).unwrap();
        assert_eq!(legacy.ports.to_string(), "7000,7003-7009");
        assert_eq!(with.rotating_door_ports(1), None);
    }
}

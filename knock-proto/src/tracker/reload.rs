//! Carrying attempts in progress over to a tracker for a reloaded config.
//!
//! A reload (SIGHUP) must not throw away knocks half-way through: a knocker on a door whose
//! sequence, timeout, flags and target did not change keeps its stage and its deadline. The
//! caller knows which new door was which old one (it matches doors by name and compares
//! their specs); the tracker only moves the attempts.

use super::attempts::Source;
use super::{DoorId, DoorSpec, Tracker};

impl Tracker {
    /// A tracker for `doors` (as [`Tracker::new`]) that takes over this tracker's attempts in
    /// progress on the doors `carry` maps: `carry[new]` is `Some(old)` when the new door
    /// `new` is the old door `old` with the same spec. Other attempts are dropped (counted in
    /// [`super::Stats::dropped`]), as are attempts beyond the new cap. Counters (a carried
    /// door's evictions too) and the clock carry over; this host's addresses and `set_stop_on_open` must be set again. Oldest attempts
    /// of a door stay first, so they still expire and are evicted first.
    pub fn reload(
        mut self,
        doors: Vec<DoorSpec>,
        max_attempts: usize,
        carry: &[Option<DoorId>],
    ) -> Tracker {
        let mut next = Tracker::new(doors, max_attempts);
        next.clock = self.clock;
        next.stats = super::Stats {
            max_attempts: next.stats.max_attempts,
            ..self.stats
        };
        let mut dropped = self.attempts.len() as u64;
        for (new, old) in carry.iter().enumerate() {
            let (Some(old), Ok(new)) = (old, u32::try_from(new)) else {
                continue;
            };
            if let (Some(n), Some(&was)) = (
                next.evicted_by_door.get_mut(new as usize),
                self.evicted_by_door.get(*old),
            ) {
                *n = was;
            }
            let Ok(old) = u32::try_from(*old) else {
                continue;
            };
            while let Some(slot) = self.attempts.head(old) {
                let a = *self.attempts.get(slot);
                self.attempts.remove(slot);
                let source = Source::from(a.source());
                let hash = next.attempts.hash(source, new);
                if let Some(s) = next.attempts.insert(source, new, hash, a.started()) {
                    next.attempts.set_stage(s, a.stage());
                    dropped -= 1;
                }
            }
        }
        next.stats.dropped += dropped;
        next
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::flags::TcpFlags;
    use crate::sequence::Knock;
    use crate::time::Timestamp;
    use crate::tracker::Event;
    use crate::wire::Hit;

    fn spec(seq: &str) -> DoorSpec {
        DoorSpec {
            sequence: Some(seq.parse().unwrap()),
            seq_timeout: Duration::from_secs(5),
            tcpflags: TcpFlags::ANY,
            target: None,
        }
    }

    fn hit(source: &str, port: &str) -> Hit {
        Hit {
            source: source.parse().unwrap(),
            destination: "198.18.0.2".parse().unwrap(),
            knock: port.parse::<Knock>().unwrap(),
            tcp_flags: 0x02,
            src_port: 40000,
            tcp_seq: 1,
        }
    }

    #[test]
    fn attempts_on_unchanged_doors_keep_their_stage_and_deadline() {
        let mut t = Tracker::new(vec![spec("1,2,3"), spec("4,5")], 100);
        let mut ev = Vec::new();
        t.handle(Timestamp::from_millis(0), &hit("198.18.0.1", "1"), &mut ev);
        t.handle(Timestamp::from_millis(10), &hit("198.18.0.1", "2"), &mut ev);
        t.handle(Timestamp::from_millis(20), &hit("198.18.0.9", "4"), &mut ev);
        // The door "1,2,3" moved to position 1; "4,5" changed to "4,6".
        let mut t = t.reload(vec![spec("4,6"), spec("1,2,3")], 100, &[None, Some(0)]);
        assert_eq!(t.stats().attempts, 1);
        assert_eq!(t.stats().dropped, 1);
        assert_eq!(t.poll_at(), Some(Timestamp::from_millis(5000)));
        ev.clear();
        t.handle(Timestamp::from_millis(30), &hit("198.18.0.1", "3"), &mut ev);
        assert_eq!(
            ev,
            [Event::Opened {
                source: "198.18.0.1".parse().unwrap(),
                door: 1
            }]
        );
    }

    #[test]
    fn a_carried_door_keeps_its_eviction_count() {
        // Room for one attempt: the second first knock evicts the first.
        let mut t = Tracker::new(vec![spec("1,2"), spec("4,5")], 1);
        let mut ev = Vec::new();
        t.handle(Timestamp::from_millis(0), &hit("198.18.0.1", "1"), &mut ev);
        t.handle(Timestamp::from_millis(1), &hit("198.18.0.2", "1"), &mut ev);
        assert_eq!(t.evicted_on(0), 1);
        // "1,2" moved to position 1 and is carried; "4,5" changed and is not.
        let t = t.reload(vec![spec("4,6"), spec("1,2")], 1, &[None, Some(0)]);
        assert_eq!((t.evicted_on(0), t.evicted_on(1)), (0, 1));
    }
}

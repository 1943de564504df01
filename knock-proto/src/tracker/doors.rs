//! The doors as the tracker sees them, and which hits count for which door.
//!
//! A hit is looked up once in a map from knock (port and protocol) to the doors whose sequence
//! contains it, so a packet only ever touches the doors it could concern, as knockd's per-door
//! pcap filters do. Destination and TCP flags are then checked per door.

use std::net::IpAddr;
use std::ops::Range;
use std::time::Duration;

use hashbrown::HashMap;

use super::DoorSpec;
use crate::sequence::{Knock, Proto, Sequence};
use crate::wire::Hit;

/// One door, with its timeout in whole milliseconds (rounded up, so that the time
/// [`super::Tracker::poll_at`] names is one at which the attempt has really expired).
#[derive(Debug)]
struct Door {
    spec: DoorSpec,
    timeout_ms: u64,
    /// Batches stop after a hit that opens it (see `Tracker::set_stop_on_open`).
    stop_on_open: bool,
}

/// All the doors, the knock-to-doors map, and the host's own addresses.
#[derive(Debug)]
pub(super) struct Doors {
    doors: Vec<Door>,
    /// Knock -> range of `members` listing the doors (ascending) that contain it.
    by_knock: HashMap<Knock, (u32, u32)>,
    members: Vec<u32>,
    /// Beside each member: the stages (below 64) at which its knock leaves the attempt in its
    /// list: a plain advance (not the last knock) or an ignored repeat (see
    /// [`Doors::advances`]).
    advances: Vec<u64>,
    /// Destinations that count for doors without a target; empty means any.
    local: Vec<IpAddr>,
}

impl Doors {
    /// Door ids are `u32` inside the tracker; doors past `u32::MAX` (not a real configuration)
    /// are left out.
    pub(super) fn new(mut specs: Vec<DoorSpec>) -> Doors {
        specs.truncate(u32::MAX as usize);
        let doors = specs
            .into_iter()
            .map(|spec| Door {
                timeout_ms: ceil_millis(spec.seq_timeout),
                spec,
                stop_on_open: false,
            })
            .collect();
        let mut doors = Doors {
            doors,
            by_knock: HashMap::new(),
            members: Vec::new(),
            advances: Vec::new(),
            local: Vec::new(),
        };
        doors.reindex();
        doors
    }

    /// How many doors.
    pub(super) fn len(&self) -> usize {
        self.doors.len()
    }

    /// The doors whose sequence contains `knock`, as a range for [`Doors::member`].
    pub(super) fn candidates(&self, knock: Knock) -> Range<usize> {
        match self.by_knock.get(&knock) {
            Some(&(start, end)) => start as usize..end as usize,
            None => 0..0,
        }
    }

    /// The door at position `i` of a [`Doors::candidates`] range.
    pub(super) fn member(&self, i: usize) -> u32 {
        self.members[i]
    }

    /// For position `i` of a [`Doors::candidates`] range: bit `s` is set if an attempt at stage
    /// `s` (below 64) that gets this knock merely advances, or ignores it as a repeat of the
    /// knock that brought it there. Only a hint, for warming the right memory in a batch.
    pub(super) fn advances(&self, i: usize) -> u64 {
        self.advances.get(i).copied().unwrap_or(0)
    }

    /// The expected knocks of `door`; empty if it is disabled or unknown.
    pub(super) fn knocks(&self, door: u32) -> &[Knock] {
        self.doors
            .get(door as usize)
            .and_then(|d| d.spec.sequence.as_ref())
            .map_or(&[], Sequence::knocks)
    }

    /// The timeout of `door` in milliseconds.
    pub(super) fn timeout_ms(&self, door: u32) -> u64 {
        self.doors.get(door as usize).map_or(0, |d| d.timeout_ms)
    }

    /// Whether a batch stops after a hit that opens `door`.
    pub(super) fn stop_on_open(&self, door: usize) -> bool {
        self.doors.get(door).is_some_and(|d| d.stop_on_open)
    }

    /// Sets [`Doors::stop_on_open`]; an unknown door is ignored.
    pub(super) fn set_stop_on_open(&mut self, door: usize, stop: bool) {
        if let Some(d) = self.doors.get_mut(door) {
            d.stop_on_open = stop;
        }
    }

    /// Whether `destination` is one of the host's own addresses (any, if none were given).
    pub(super) fn is_local(&self, destination: IpAddr) -> bool {
        // A host has a handful of addresses: a linear scan beats hashing them.
        self.local.is_empty() || self.local.contains(&destination)
    }

    /// Replaces the host's own addresses.
    pub(super) fn set_local(&mut self, addrs: &[IpAddr]) {
        self.local.clear();
        self.local.extend_from_slice(addrs);
    }

    /// Whether `hit`, whose knock is in `door`'s sequence, counts for it: sent to the door's
    /// target (or, without one, to this host: `local`), and for TCP meeting its flags.
    pub(super) fn counts(&self, door: u32, hit: &Hit, local: bool) -> bool {
        let Some(d) = self.doors.get(door as usize) else {
            return false;
        };
        let to_us = match d.spec.target {
            Some(target) => hit.destination == target,
            None => local,
        };
        let flags_ok = hit.knock.proto != Proto::Tcp || d.spec.tcpflags.matches(hit.tcp_flags);
        to_us && flags_ok
    }

    /// Gives `door` a new expected sequence (`None` disables it). The caller drops its attempts.
    pub(super) fn set_sequence(&mut self, door: usize, sequence: Option<Sequence>) {
        if let Some(d) = self.doors.get_mut(door) {
            d.spec.sequence = sequence;
            self.reindex();
        }
    }

    /// Heap bytes held, by capacity.
    pub(super) fn memory_bytes(&self) -> usize {
        let sequences: usize = self
            .doors
            .iter()
            .filter_map(|d| d.spec.sequence.as_ref())
            .map(|s| s.len() * size_of::<Knock>())
            .sum();
        self.doors.capacity() * size_of::<Door>()
            + sequences
            + self.by_knock.allocation_size()
            + self.members.capacity() * size_of::<u32>()
            + self.advances.capacity() * size_of::<u64>()
            + self.local.capacity() * size_of::<IpAddr>()
    }

    /// Rebuilds the knock-to-doors map. O(total knocks); only at start and on a new sequence.
    fn reindex(&mut self) {
        let mut pairs: Vec<(Knock, u32)> = Vec::new();
        for (id, door) in (0u32..).zip(&self.doors) {
            if let Some(sequence) = &door.spec.sequence {
                pairs.extend(sequence.knocks().iter().map(|&k| (k, id)));
            }
        }
        // Sorted by knock, then door: each knock's doors are one ascending run, and a port
        // repeated in a sequence (`02,02,02`) lists its door once.
        pairs.sort_unstable();
        pairs.dedup();
        self.members = pairs.iter().map(|&(_, door)| door).collect();
        self.advances = pairs
            .iter()
            .map(|&(knock, door)| {
                let knocks = self.knocks(door);
                let last = knocks.len().saturating_sub(1);
                // At the last stage, the knock due opens the door (and ends the attempt).
                let stays = |stage: usize| {
                    if knocks[stage] == knock {
                        stage < last
                    } else {
                        stage > 0 && knocks[stage - 1] == knock
                    }
                };
                (0..=last.min(63))
                    .filter(|&stage| stays(stage))
                    .fold(0u64, |mask, stage| mask | 1 << stage)
            })
            .collect();
        self.by_knock.clear();
        let mut start = 0;
        for run in pairs.chunk_by(|a, b| a.0 == b.0) {
            // At most 2^32 - 1 doors of at most 255 knocks, deduplicated: fits in u32 on any
            // configuration that fits in memory.
            let end = start + run.len();
            self.by_knock.insert(run[0].0, (to_u32(start), to_u32(end)));
            start = end;
        }
    }
}

fn to_u32(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

/// `d` in milliseconds, rounded up, saturating.
fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::flags::TcpFlags;
    use crate::sequence::Port;

    fn spec(seq: &str) -> DoorSpec {
        DoorSpec {
            sequence: Some(seq.parse().unwrap()),
            seq_timeout: Duration::from_secs(5),
            tcpflags: TcpFlags::ANY,
            target: None,
        }
    }

    fn knock(port: u16, proto: Proto) -> Knock {
        Knock::new(Port::new(port).unwrap(), proto)
    }

    fn doors_of(d: &Doors, k: Knock) -> Vec<u32> {
        d.candidates(k).map(|i| d.member(i)).collect()
    }

    #[test]
    fn map_lists_each_door_once_per_knock_in_order() {
        let d = Doors::new(vec![spec("2,2,2,1"), spec("1:udp,2"), spec("3")]);
        assert_eq!(doors_of(&d, knock(2, Proto::Tcp)), [0, 1]);
        assert_eq!(doors_of(&d, knock(1, Proto::Tcp)), [0]);
        assert_eq!(doors_of(&d, knock(1, Proto::Udp)), [1]);
        assert_eq!(doors_of(&d, knock(3, Proto::Udp)), Vec::<u32>::new());
        assert_eq!(doors_of(&d, knock(4, Proto::Tcp)), Vec::<u32>::new());
    }

    #[test]
    fn advances_are_the_stages_a_knock_moves_on_from_or_repeats_without_opening() {
        let d = Doors::new(vec![spec("2,2,2,1"), spec("1:udp,2")]);
        let at = |k: Knock, door: u32| {
            let i = d.candidates(k).find(|&i| d.member(i) == door).unwrap();
            d.advances(i)
        };
        // Door 0 at stage 0, 1 or 2 expects 2; at stage 3 it expects 1, which opens it, and
        // ignores 2 as a repeat.
        assert_eq!(at(knock(2, Proto::Tcp), 0), 0b1111);
        assert_eq!(at(knock(1, Proto::Tcp), 0), 0);
        // Door 1: 1:udp is its first knock (stage 0, never live), a repeat at stage 1; 2 is
        // the last.
        assert_eq!(at(knock(1, Proto::Udp), 1), 0b11);
        assert_eq!(at(knock(2, Proto::Tcp), 1), 0);
    }

    #[test]
    fn set_sequence_reindexes_and_none_disables() {
        let mut d = Doors::new(vec![spec("1,2"), spec("2,3")]);
        d.set_sequence(0, None);
        assert!(d.knocks(0).is_empty());
        assert_eq!(doors_of(&d, knock(1, Proto::Tcp)), Vec::<u32>::new());
        assert_eq!(doors_of(&d, knock(2, Proto::Tcp)), [1]);
        d.set_sequence(0, Some("9".parse().unwrap()));
        assert_eq!(doors_of(&d, knock(9, Proto::Tcp)), [0]);
        d.set_sequence(5, None); // unknown door: nothing happens
        assert_eq!(d.len(), 2);
    }

    #[test]
    fn timeouts_round_up_to_whole_milliseconds() {
        assert_eq!(ceil_millis(Duration::from_micros(1500)), 2);
        assert_eq!(ceil_millis(Duration::from_secs(25)), 25_000);
        assert_eq!(ceil_millis(Duration::MAX), u64::MAX);
        assert_eq!(ceil_millis(Duration::ZERO), 0);
    }
}

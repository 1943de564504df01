//! Exactly-once closes, as a property: random interleavings of knocks, re-knocks, time,
//! command outcomes, reloads, close requests and crashes (the engine dropped while its last
//! effects were half performed, then rebuilt from what reached its journal) against a simple
//! model: per door and knocker, every start command that did not fail gets exactly one stop
//! command, and the only extra stops are the ones the documented non-exact point allows (a
//! crash after a stop command started but before its `close` record was written, or after an
//! `open` record was written but before its start command ran): at most one per such crash.

use std::collections::HashMap;

use proptest::prelude::*;

use super::tests::{DOORS, engine_at, epoch, knock, loaded, ms};
use super::*;
use crate::control::{Request, Status};
use crate::journal::{self, Record};

/// The same doors in the other order: windows and attempts are matched by name.
fn swapped() -> String {
    let (d0, d1) = DOORS.split_at(DOORS.find("[d1]").unwrap());
    format!("{d1}{d0}")
}

const SOURCES: [&str; 3] = ["198.18.0.1", "198.18.0.3", "fd00::1"];

#[derive(Debug, Clone)]
enum Op {
    /// Knock door `door`'s whole sequence from `source`.
    Knock { door: usize, source: usize },
    /// Let time pass.
    Wait(u64),
    /// The oldest running start command finishes.
    Finish { ok: bool },
    /// SIGHUP with the doors in the other order.
    Reload,
    /// `knock-server close DOOR [IP]`, or `--all`.
    Close {
        door: Option<usize>,
        source: Option<usize>,
    },
    /// The process dies after performing `performed` of its last call's effects.
    Crash { performed: usize },
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (0..2usize, 0..3usize).prop_map(|(door, source)| Op::Knock { door, source }),
        4 => (0..6000u64).prop_map(Op::Wait),
        2 => any::<bool>().prop_map(|ok| Op::Finish { ok }),
        1 => Just(Op::Reload),
        1 => (proptest::option::of(0..2usize), proptest::option::of(0..3usize))
            .prop_map(|(door, source)| Op::Close { door, source }),
        2 => (0..8usize).prop_map(|performed| Op::Crash { performed }),
    ]
}

/// The world outside the engine: the journal on disk and the commands that ran.
#[derive(Default)]
struct World {
    disk: String,
    /// Per (door, knocker): starts, failed starts, stops.
    counts: HashMap<(String, String), (u32, u32, u32)>,
    /// Start commands running in this incarnation: (id, door, knocker).
    running: Vec<(CommandId, String, String)>,
    /// Extra stops the non-exact point allows.
    allowance: HashMap<(String, String), u32>,
}

impl World {
    /// Performs `fx`, all of them, or only the first `performed` when the process dies.
    fn perform(&mut self, fx: &[Effect], performed: usize) {
        let done = &fx[..performed.min(fx.len())];
        for f in done {
            match f {
                Effect::Journal(r) => self.disk += &(r.to_line() + "\n"),
                Effect::Run(r) => {
                    let key = (r.door.clone(), r.argv[1].clone());
                    let c = self.counts.entry(key.clone()).or_default();
                    if r.argv[0] == "/bin/start" {
                        c.0 += 1;
                        self.running.push((r.id, key.0, key.1));
                    } else {
                        c.2 += 1;
                    }
                }
                _ => {}
            }
        }
        // A stop that ran without its `close` on disk, or an `open` on disk whose start did
        // not run: the next start runs one stop more than the model wants.
        for (i, f) in done.iter().enumerate() {
            let key = match f {
                Effect::Run(r) if r.argv[0] == "/bin/stop" => {
                    let closed = done[i..]
                        .iter()
                        .any(|g| matches!(g, Effect::Journal(Record::Close { .. })));
                    (!closed).then(|| (r.door.clone(), r.argv[1].clone()))
                }
                Effect::Journal(Record::Open(e)) => {
                    let started = done[i..].iter().any(|g| matches!(g, Effect::Run(_)));
                    (!started).then(|| (e.door.clone(), e.source.to_string()))
                }
                _ => None,
            };
            if let Some(k) = key {
                *self.allowance.entry(k).or_default() += 1;
            }
        }
    }
}

fn crash_and_restart(now: Timestamp, world: &mut World) -> Engine {
    world.running.clear();
    let adopted = journal::replay(world.disk.as_bytes()).entries;
    engine_at(now, DOORS, adopted)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn every_opening_gets_exactly_one_stop(ops in proptest::collection::vec(op(), 1..60)) {
        let _ = epoch();
        let mut world = World::default();
        let mut now = ms(0);
        let mut e = engine_at(now, DOORS, Vec::new());
        let mut doors = ["d0", "d1"];
        let mut fx = Vec::new();
        for op in ops {
            match op {
                Op::Knock { door, source } => {
                    let ports: &[u16] = if doors[door] == "d0" { &[7000, 8000] } else { &[9000] };
                    knock(&mut e, now, SOURCES[source], ports);
                }
                Op::Wait(d) => {
                    now = now + Duration::from_millis(d);
                    e.tick(now);
                }
                Op::Finish { ok } => {
                    if !world.running.is_empty() {
                        let (id, door, source) = world.running.remove(0);
                        if !ok {
                            world.counts.entry((door, source)).or_default().1 += 1;
                        }
                        e.command_finished(id, ok);
                    }
                }
                Op::Reload => {
                    let text = if doors[0] == "d0" { swapped() } else { DOORS.to_owned() };
                    prop_assert!(e.reload(loaded(&text), |_| Ok(())));
                    doors.swap(0, 1);
                }
                Op::Close { door, source } => {
                    let request = match door {
                        Some(d) => Request::Close {
                            door: doors[d].to_owned(),
                            source: source.map(|s| SOURCES[s].parse().unwrap()),
                        },
                        None => Request::CloseAll,
                    };
                    e.control(now, &request, Status::default());
                }
                Op::Crash { performed } => {
                    // The last call's effects were only partly performed when it died.
                    world.perform(&fx, performed);
                    fx.clear();
                    e = crash_and_restart(now, &mut world);
                    doors = ["d0", "d1"];
                    e.take_effects(&mut fx);
                    continue;
                }
            }
            world.perform(&fx, usize::MAX);
            fx.clear();
            e.take_effects(&mut fx);
        }
        world.perform(&fx, usize::MAX);
        fx.clear();
        e.terminate(now);
        e.take_effects(&mut fx);
        world.perform(&fx, usize::MAX);
        // After SIGTERM nothing is pending on disk.
        prop_assert!(journal::replay(world.disk.as_bytes()).entries.is_empty(), "{}", world.disk);
        for (key, &(starts, failed, stops)) in &world.counts {
            let extra = world.allowance.get(key).copied().unwrap_or(0);
            prop_assert!(
                stops + failed >= starts,
                "{key:?}: {starts} starts ({failed} failed), {stops} stops: a close was lost"
            );
            prop_assert!(
                stops <= starts + extra,
                "{key:?}: {starts} starts, {stops} stops, {extra} allowed extra: a close ran twice"
            );
        }
    }
}

//! One-time sequences: a door that opened arms its next sequence at once, and asks the
//! executor to mark the used line in its file ([`Effect::MarkOneTime`]).
//!
//! The file is marked in place and read afresh by the executor, which hands the sequences
//! back ([`Engine::one_time_marked`]): lines an admin appended while the daemon ran are then
//! armed, without a reload. A read comes back only after its mark; while another mark of the
//! same file is still in flight the read is stale (it holds the sequence that mark uses up),
//! so only the read after the last mark is taken. A reload in that time keeps the sequences
//! in memory for the same reason: the file it read may not hold the marks yet.

use std::path::Path;

use knock_proto::Sequence;
use knock_proto::config::{Door, SequenceSource};
use knock_proto::onetime::OneTimeSequences;
use knock_proto::tracker::DoorId;
use tracing::Level;

use super::{Effect, Engine};
use crate::load::Loaded;

impl Engine {
    /// Uses up the door's current one-time sequence, arms the next one, and asks for the
    /// used line to be marked in the file.
    pub(super) fn next_one_time(&mut self, id: DoorId, door: &Door) {
        let SequenceSource::OneTime { path, .. } = &door.sequence else {
            return;
        };
        let Some(Some(seqs)) = self.one_time.get_mut(id) else {
            return;
        };
        let used = seqs.current().cloned();
        seqs.consume();
        let next: Option<Sequence> = seqs.current().cloned();
        if let Some(used) = used {
            *self.marks_pending.entry(path.clone()).or_default() += 1;
            self.effects.push_back(Effect::MarkOneTime {
                door: door.name.clone(),
                path: path.clone(),
                used,
            });
        }
        if next.is_none() {
            self.log(
                Level::INFO,
                None,
                format!(
                    "{}: no one-time sequences left in {}, door disabled",
                    door.name,
                    path.display()
                ),
            );
        }
        self.arm(id, next);
    }

    /// The executor marked a used line of `path` and read the file again: `fresh` is what it
    /// holds now, or `None` when it could not be read or marked (the sequences in memory,
    /// already moved on, stay).
    pub fn one_time_marked(&mut self, path: &Path, fresh: Option<OneTimeSequences>) {
        match self.marks_pending.get_mut(path) {
            Some(n) if *n > 1 => {
                *n -= 1;
                return;
            }
            Some(_) => {
                self.marks_pending.remove(path);
            }
            None => return,
        }
        let Some(fresh) = fresh else { return };
        let doors: Vec<DoorId> = self
            .config
            .doors
            .iter()
            .enumerate()
            .filter(|(_, d)| matches!(&d.sequence, SequenceSource::OneTime { path: p, .. } if p == path))
            .map(|(i, _)| i)
            .collect();
        for id in doors {
            let Some(slot) = self.one_time.get_mut(id) else {
                continue;
            };
            let before = slot.as_ref().and_then(|s| s.current().cloned());
            let after = fresh.current().cloned();
            *slot = Some(fresh.clone());
            if before != after {
                if before.is_none() {
                    let name = self.door_name(id);
                    self.log(
                        Level::INFO,
                        None,
                        format!("{name}: new one-time sequences in {}", path.display()),
                    );
                }
                self.arm(id, after);
            }
        }
    }

    /// `id` now expects `next` (`None`: disabled); the filter follows.
    fn arm(&mut self, id: DoorId, next: Option<Sequence>) {
        self.tracker.set_sequence(id, next);
        if let Some(c) = self.door_counts.get_mut(id) {
            c.attempts = 0;
        }
        self.set_filter(self.filter());
    }

    /// A reload read the one-time files while marks of them may be in flight: for those, the
    /// sequences in memory (already moved on) are kept instead.
    pub(super) fn keep_one_time_in_flight(&self, loaded: &mut Loaded) {
        for (door, slot) in loaded.config.doors.iter().zip(&mut loaded.one_time) {
            let SequenceSource::OneTime { path, .. } = &door.sequence else {
                continue;
            };
            if !self.marks_pending.contains_key(path) {
                continue;
            }
            let mine = self
                .config
                .doors
                .iter()
                .zip(&self.one_time)
                .find_map(|(d, s)| {
                    matches!(&d.sequence, SequenceSource::OneTime { path: p, .. } if p == path)
                        .then(|| s.clone())
                        .flatten()
                });
            if let Some(mine) = mine {
                *slot = Some(mine);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::path::PathBuf;

    use knock_proto::Timestamp;

    use super::super::tests::{config, effects, epoch, knock, ms};
    use super::super::{Engine, Start};
    use super::*;

    fn path() -> PathBuf {
        PathBuf::from("/k/otp")
    }

    fn seqs(text: &str) -> OneTimeSequences {
        OneTimeSequences::parse(&path(), text).unwrap()
    }

    /// A one-time door on `/k/otp` holding `text`, and a canary door.
    fn engine(text: &str) -> Engine {
        let config = config(
            "[otp]\n    one_time_sequences = /k/otp\n    start_command = /bin/start %IP%\n\
             [canary]\n    sequence = 9999\n    start_command = /bin/canary %IP%\n",
        );
        Engine::new(
            Timestamp::ZERO,
            Start {
                loaded: Loaded {
                    config,
                    one_time: vec![Some(seqs(text)), None],
                    keys: vec![None, None],
                },
                local: Vec::new(),
                adopted: Vec::new(),
                wall: epoch(),
                ipv4_only: false,
                replay: None,
            },
        )
    }

    fn marks(fx: &[Effect]) -> Vec<String> {
        fx.iter()
            .filter_map(|f| match f {
                Effect::MarkOneTime { used, .. } => Some(used.to_string()),
                _ => None,
            })
            .collect()
    }

    fn opened(e: &mut Engine, ports: &[u16]) -> bool {
        knock(e, ms(0), "198.18.0.1", ports);
        effects(e)
            .iter()
            .any(|f| matches!(f, Effect::Run(r) if r.door == "otp"))
    }

    #[test]
    fn an_opening_arms_the_next_sequence_at_once_and_asks_for_the_mark() {
        let mut e = engine(" 1001,1002\n 2001,2002\n");
        knock(&mut e, ms(0), "198.18.0.1", &[1001, 1002]);
        let fx = effects(&mut e);
        assert_eq!(marks(&fx), ["1001:tcp,1002:tcp"]);
        assert!(
            !opened(&mut e, &[1001, 1002]),
            "a used sequence never opens twice"
        );
        assert!(opened(&mut e, &[2001, 2002]));
    }

    #[test]
    fn lines_appended_meanwhile_are_armed_once_the_file_is_marked() {
        let mut e = engine(" 1001,1002\n");
        knock(&mut e, ms(0), "198.18.0.1", &[1001, 1002]);
        let fx = effects(&mut e);
        assert!(lines_of(&fx).iter().any(|l| l.contains("door disabled")));
        e.one_time_marked(&path(), Some(seqs("#1001,1002\n 3001,3002\n")));
        let fx = effects(&mut e);
        assert!(
            fx.iter().any(|f| matches!(f, Effect::SetFilter(_))),
            "{fx:?}"
        );
        assert!(opened(&mut e, &[3001, 3002]));
    }

    #[test]
    fn only_the_read_after_the_last_mark_in_flight_is_taken() {
        let mut e = engine(" 1001,1002\n 2001,2002\n 3001,3002\n");
        assert!(opened(&mut e, &[1001, 1002]));
        assert!(opened(&mut e, &[2001, 2002]));
        // The first mark's read still holds 2001,2002 unused: taking it would re-arm it.
        e.one_time_marked(&path(), Some(seqs("#1001,1002\n 2001,2002\n 3001,3002\n")));
        assert!(effects(&mut e).is_empty());
        assert!(!opened(&mut e, &[2001, 2002]));
        e.one_time_marked(&path(), Some(seqs("#1001,1002\n#2001,2002\n 3001,3002\n")));
        assert!(opened(&mut e, &[3001, 3002]));
    }

    #[test]
    fn a_failed_mark_keeps_the_sequences_in_memory_and_a_reload_meanwhile_rearms_nothing() {
        let mut e = engine(" 1001,1002\n 2001,2002\n");
        assert!(opened(&mut e, &[1001, 1002]));
        // The reload read the file before the mark reached it.
        let config = e.config.clone();
        let reloaded = Loaded {
            config,
            one_time: vec![Some(seqs(" 1001,1002\n 2001,2002\n")), None],
            keys: vec![None, None],
        };
        assert!(e.reload(reloaded, |_| Ok(())));
        effects(&mut e);
        assert!(
            !opened(&mut e, &[1001, 1002]),
            "kept: the mark is in flight"
        );
        e.one_time_marked(&path(), None);
        assert!(effects(&mut e).is_empty());
        assert!(opened(&mut e, &[2001, 2002]));
    }

    fn lines_of(fx: &[Effect]) -> Vec<String> {
        fx.iter()
            .filter_map(|f| match f {
                Effect::Log(l) => Some(l.text.clone()),
                _ => None,
            })
            .collect()
    }
}

//! A new config (SIGHUP), and building the tracker and the capture filter for a config.

use std::net::IpAddr;

use knock_proto::Sequence;
use knock_proto::config::{Config, Door, SequenceSource};
use knock_proto::onetime::OneTimeSequences;
use knock_proto::tracker::{DoorId, DoorSpec, Tracker};
use tracing::Level;

use super::{Effect, Engine};
use crate::filter::{self, DoorFilter, Filter};
use crate::load::Loaded;
use crate::rotating::RotatingDoors;

impl Engine {
    /// A new config: config, tracker and filter switch together, or not at all when
    /// `compiles` refuses the new filter. Attempts in progress on doors whose sequence,
    /// timeouts, flags and target did not change carry over, on rotating doors too when
    /// their knocks did not change (`RotatingDoors::carry_attempts`); open windows stay open
    /// and close as scheduled. Returns whether the new config is in force.
    pub fn reload(
        &mut self,
        mut loaded: Loaded,
        compiles: impl FnOnce(&Filter) -> Result<(), String>,
    ) -> bool {
        self.keep_one_time_in_flight(&mut loaded);
        let record = self.rotating.record().clone();
        let mut rotating = RotatingDoors::new(&loaded, record, self.unix_secs(self.clock));
        rotating.carry_counts(&self.rotating);
        rotating.carry_attempts(&self.rotating);
        let filter = build_filter(
            &loaded.config,
            &loaded.one_time,
            &rotating.filter_knocks(&loaded.config),
            &self.local,
            self.ipv4_only,
        );
        if let Err(e) = compiles(&filter) {
            self.log(
                Level::ERROR,
                None,
                format!("the new config's capture filter does not compile, keeping the running config: {e}"),
            );
            return false;
        }
        let specs = door_specs(&loaded.config, &loaded.one_time);
        let old_specs = door_specs(&self.config, &self.one_time);
        let carry: Vec<Option<DoorId>> = loaded
            .config
            .doors
            .iter()
            .zip(&specs)
            .map(|(d, spec)| {
                let old = self.config.doors.iter().position(|o| o.name == d.name)?;
                (old_specs.get(old) == Some(spec)).then_some(old)
            })
            .collect();
        let counts = carry
            .iter()
            .map(|c| {
                c.and_then(|o| self.door_counts.get(o).cloned())
                    .unwrap_or_default()
            })
            .collect();
        let old = std::mem::replace(&mut self.tracker, Tracker::new(Vec::new(), 1));
        let mut tracker = old.reload(specs, loaded.config.options.max_attempts, &carry);
        tracker.set_local_addresses(&self.local);
        set_stop_on_open(&mut tracker, &loaded.config);
        self.tracker = tracker;
        self.first_logged.remap(&carry);
        self.door_counts = counts;
        self.effects
            .push_back(Effect::Reconfigure(Box::new(loaded.config.clone())));
        self.config = loaded.config;
        self.one_time = loaded.one_time;
        self.rotating = rotating;
        self.set_filter(filter);
        true
    }
}

pub(super) fn door_sequence(door: &Door, one_time: Option<&OneTimeSequences>) -> Option<Sequence> {
    match &door.sequence {
        SequenceSource::Fixed(s) => Some(s.clone()),
        SequenceSource::OneTime { .. } => one_time.and_then(|o| o.current().cloned()),
        // Rotating doors are not the tracker's: their sequences change every step.
        SequenceSource::Rotating(_) => None,
    }
}

fn door_specs(config: &Config, one_time: &[Option<OneTimeSequences>]) -> Vec<DoorSpec> {
    config
        .doors
        .iter()
        .enumerate()
        .map(|(i, d)| DoorSpec {
            sequence: door_sequence(d, one_time.get(i).and_then(Option::as_ref)),
            seq_timeout: d.seq_timeout,
            tcpflags: d.tcpflags,
            target: d.target,
        })
        .collect()
}

fn set_stop_on_open(tracker: &mut Tracker, config: &Config) {
    for (id, door) in config.doors.iter().enumerate() {
        // Opening a one-time door arms its next sequence, which the hits after it must see.
        let one_time = matches!(door.sequence, SequenceSource::OneTime { .. });
        tracker.set_stop_on_open(id, one_time);
    }
}

pub(super) fn build_tracker(config: &Config, one_time: &[Option<OneTimeSequences>]) -> Tracker {
    let mut tracker = Tracker::new(door_specs(config, one_time), config.options.max_attempts);
    set_stop_on_open(&mut tracker, config);
    tracker
}

/// The filter for `config` with its current one-time sequences and, per door, the knocks of
/// rotating doors in the steps watched now (empty for the other doors).
pub fn build_filter(
    config: &Config,
    one_time: &[Option<OneTimeSequences>],
    rotating: &[Vec<knock_proto::Knock>],
    local: &[IpAddr],
    ipv4_only: bool,
) -> Filter {
    let doors: Vec<DoorFilter> = config
        .doors
        .iter()
        .enumerate()
        .map(|(i, d)| DoorFilter {
            knocks: door_sequence(d, one_time.get(i).and_then(Option::as_ref))
                .map(|s| s.knocks().to_vec())
                .or_else(|| rotating.get(i).cloned())
                .unwrap_or_default(),
            target: d.target,
        })
        .collect();
    filter::build(&doors, local, ipv4_only)
}

//! From what the user asked (a profile and sequence name, or a host and ports, plus
//! command-line overrides) to a [`Plan`]: the concrete, checked list of hits to send.
//!
//! Nothing here touches the network; host names are resolved later, so that `--dry-run` and
//! the error messages can be tested without DNS.

use std::time::Duration;

use anyhow::bail;
use knock_proto::{Knock, Proto, Sequence};

use crate::profiles::{self, Config, LoadError, Location, SAMPLE};

/// Which address family to knock over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Family {
    /// Whatever the host resolves to first.
    #[default]
    Any,
    /// IPv4 only (`-4`).
    V4,
    /// IPv6 only (`-6`).
    V6,
}

/// Command-line settings that win over the profile.
#[derive(Debug, Clone, Copy, Default)]
pub struct Overrides {
    /// `-u`: every hit is UDP.
    pub udp: bool,
    /// `--hits N`.
    pub hits: Option<u8>,
    /// `-d MS`.
    pub delay: Option<Duration>,
    /// `--hit-delay MS`.
    pub hit_delay: Option<Duration>,
    /// `-4` / `-6`.
    pub family: Family,
}

/// The config as far as planning cares: read, or known to be missing from `Location`.
#[derive(Debug)]
pub enum Profiles {
    /// The config was read and is valid.
    Loaded(Config),
    /// There is no config file at this location.
    Missing(Location),
    /// The config cannot be used (unreadable, invalid, or no home directory to find it in).
    /// Only profile mode needs it: knockd mode goes on without.
    Broken(LoadError),
}

/// A knockd-style port written as a comma-separated list (`7000,8000,9000`), as a knockd.conf
/// sequence is: the command line wants one port per word. `main` adds the corrected command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommaSeparatedPorts {
    /// The word as given.
    pub word: String,
}

impl std::fmt::Display for CommaSeparatedPorts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "`{}` is not a port: separate the ports with spaces, one port per word",
            self.word
        )
    }
}

impl std::error::Error for CommaSeparatedPorts {}

/// Everything needed to send one knock sequence.
#[derive(Debug, Clone, PartialEq)]
pub struct Plan {
    /// The host as written (name or address).
    pub host: String,
    /// The address family to use.
    pub family: Family,
    /// Every hit in order: each knock of the sequence repeated `hits` times in place.
    pub sequence: Sequence,
    /// How many consecutive hits belong to one knock (they share a source port when raw).
    pub hits: usize,
    /// Pause between two hits of different knocks.
    pub delay: Duration,
    /// Pause between two hits of one knock (the same connection attempt sent again).
    pub hit_delay: HitDelay,
    /// For a sealed rotating door: what the TCP sequence numbers must carry.
    pub sealing: Option<crate::rotating::Sealing>,
}

/// The pause between two hits of one knock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HitDelay {
    /// Set (`hit_delay_ms`, `--hit-delay`): used as it is, 0 included.
    Set(Duration),
    /// Not set: the delay between knocks, but at least [`profiles::IDENTICAL_HIT_GAP`] when the
    /// hits of one knock are byte-identical packets (raw SYNs over IPv6), so that a server that
    /// drops copies of one packet still counts each. Raw IPv4 hits differ in their IP ID and
    /// connect or UDP hits in their source port: those need no pause.
    AsDelay,
}

/// One packet to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Hit {
    /// Port and protocol.
    pub knock: Knock,
    /// Which knock of the sequence this hit repeats (0-based); hits of one knock are "the
    /// same connection attempt", so a raw sender gives them one source port and sequence number.
    pub attempt: usize,
}

impl Plan {
    /// The hits in sending order.
    pub fn hits(&self) -> impl Iterator<Item = Hit> + '_ {
        self.sequence
            .knocks()
            .iter()
            .enumerate()
            .map(|(i, &knock)| Hit {
                knock,
                attempt: i / self.hits.max(1),
            })
    }

    /// How many packets are sent.
    pub fn len(&self) -> usize {
        self.sequence.len()
    }

    /// Whether any hit is TCP (and so a TCP sending method must be chosen).
    pub fn has_tcp(&self) -> bool {
        self.sequence.knocks().iter().any(|k| k.proto == Proto::Tcp)
    }

    /// The pause between two hits of one knock, when those hits are (`identical`) or are not
    /// byte-identical packets.
    pub fn hit_delay(&self, identical: bool) -> Duration {
        match self.hit_delay {
            HitDelay::Set(d) => d,
            HitDelay::AsDelay if identical => self.delay.max(profiles::IDENTICAL_HIT_GAP),
            HitDelay::AsDelay => self.delay,
        }
    }

    /// How long sending takes, from the pauses between hits (`hit_delay` between the hits of
    /// one knock).
    pub fn duration(&self, hit_delay: Duration) -> Duration {
        let knocks = self.len() / self.hits.max(1);
        let gaps = |n: usize| u32::try_from(n).unwrap_or(u32::MAX);
        let between_knocks = gaps(knocks.saturating_sub(1));
        let within_knocks = gaps(self.len().saturating_sub(knocks));
        self.delay
            .saturating_mul(between_knocks)
            .saturating_add(hit_delay.saturating_mul(within_knocks))
    }
}

/// Decides between profile mode and knockd mode and builds the plan.
///
/// Profile mode wins when `target` names a profile. Otherwise `target` is a host and `rest` its
/// ports; when those do not look like ports but like a sequence name, the user most likely meant
/// a profile, and the error says so (listing the profiles, or explaining the missing config).
pub fn build(
    target: &str,
    rest: &[String],
    profiles: &Profiles,
    overrides: Overrides,
) -> anyhow::Result<Plan> {
    if let Profiles::Loaded(config) = profiles {
        if let Some(profile) = config.profiles.get(target) {
            return from_profile(target, profile, rest, overrides);
        }
    }
    let looks_like_profile = match rest {
        [] => true,
        // A port starts with a digit; a sequence name, in practice, with a letter.
        [word] => word.parse::<Knock>().is_err() && word.starts_with(char::is_alphabetic),
        _ => false,
    };
    if looks_like_profile {
        if let Profiles::Broken(e) = profiles {
            return Err(e.clone().into());
        }
        bail!("{}", not_a_profile(target, profiles));
    }
    let knocks = rest
        .iter()
        .map(|word| knockd_port(word))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let sequence = Sequence::new(knocks)?;
    let pacing = (
        overrides.delay.unwrap_or_default(),
        hit_delay(overrides.hit_delay),
    );
    finish(
        target,
        sequence,
        overrides.hits.unwrap_or(1),
        pacing,
        overrides,
    )
}

/// One knockd-style port word, `PORT[:PROTO]`.
fn knockd_port(word: &str) -> anyhow::Result<Knock> {
    word.parse::<Knock>().map_err(|e| {
        let list = word.contains(',')
            && word
                .split(',')
                .all(|p| p.trim().is_empty() || p.trim().parse::<Knock>().is_ok());
        if list {
            anyhow::Error::new(CommaSeparatedPorts {
                word: word.to_owned(),
            })
        } else {
            anyhow::anyhow!("bad knock `{word}`: {e}")
        }
    })
}

/// The command line with every comma-separated port word split into words: what to type
/// instead, for [`CommaSeparatedPorts`]. Words with spaces or quotes are shown quoted.
pub fn split_commas(args: impl IntoIterator<Item = String>) -> String {
    let mut out = Vec::new();
    for arg in args {
        let is_list = arg.contains(',') && !arg.starts_with('-');
        if is_list {
            out.extend(
                arg.split(',')
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned),
            );
        } else if arg.is_empty()
            || arg.contains(|c: char| c.is_whitespace() || c == '\'' || c == '"')
        {
            out.push(format!("'{}'", arg.replace('\'', "'\\''")));
        } else {
            out.push(arg);
        }
    }
    out.join(" ")
}

fn from_profile(
    name: &str,
    profile: &profiles::Profile,
    rest: &[String],
    overrides: Overrides,
) -> anyhow::Result<Plan> {
    let sequences = profiles::name_list(profile.sequence_names());
    let seq_name = match rest {
        [one] => one,
        [] => bail!(
            "profile `{name}` needs a sequence name: knock {name} SEQUENCE, \
             where SEQUENCE is one of {sequences}"
        ),
        [_, extra @ ..] => bail!(
            "profile `{name}` takes one sequence name, but `{}` follows it; to knock ports \
             on a host of that name instead, rename the profile",
            extra.join(" ")
        ),
    };
    if let Some(entry) = profile.rotating.get(seq_name) {
        return from_rotating(profile, entry, overrides);
    }
    let Some(seq) = profile.sequences.get(seq_name) else {
        let hint = match profiles::closest(seq_name, profile.sequence_names()) {
            Some(near) => format!("; did you mean `{near}`?"),
            None => String::new(),
        };
        bail!("profile `{name}` has no sequence `{seq_name}`: its sequences are {sequences}{hint}");
    };
    let hits = overrides.hits.or(seq.hits).unwrap_or(profile.hits);
    let delay = overrides.delay.or(seq.delay).unwrap_or(profile.delay);
    let hit_delay = hit_delay(overrides.hit_delay.or(profile.hit_delay));
    finish(
        &profile.host,
        seq.knocks.clone(),
        hits,
        (delay, hit_delay),
        overrides,
    )
}

/// A rotating sequence: the ports of the current step, TCP, sealed if the door is.
fn from_rotating(
    profile: &profiles::Profile,
    entry: &crate::rotating::RotatingEntry,
    overrides: Overrides,
) -> anyhow::Result<Plan> {
    if overrides.udp {
        bail!("rotating doors are knocked with TCP only: drop -u");
    }
    let door = entry.door()?;
    let (ports, sealing, _) = crate::rotating::current(&door, crate::rotating::now_millis()?);
    let knocks = ports
        .into_iter()
        .map(|p| Knock::new(p, Proto::Tcp))
        .collect();
    let hits = overrides.hits.or(entry.hits).unwrap_or(profile.hits);
    let delay = overrides.delay.or(entry.delay).unwrap_or(profile.delay);
    let hit_delay = hit_delay(overrides.hit_delay.or(profile.hit_delay));
    let sequence = Sequence::new(knocks)?;
    let mut plan = finish(&profile.host, sequence, hits, (delay, hit_delay), overrides)?;
    plan.sealing = entry.rotating.sealed.then_some(sealing);
    Ok(plan)
}

/// The pause between the hits of one port, set or not.
fn hit_delay(set: Option<Duration>) -> HitDelay {
    set.map_or(HitDelay::AsDelay, HitDelay::Set)
}

/// The plan for `sequence`, each knock `hits` times, paced by (delay between knocks, delay
/// between the hits of one knock).
fn finish(
    host: &str,
    sequence: Sequence,
    hits: u8,
    (delay, hit_delay): (Duration, HitDelay),
    overrides: Overrides,
) -> anyhow::Result<Plan> {
    let sequence = if overrides.udp {
        let udp = sequence
            .knocks()
            .iter()
            .map(|k| Knock::new(k.port, Proto::Udp));
        Sequence::new(udp.collect())?
    } else {
        sequence
    };
    let hits = usize::from(hits);
    let sequence = sequence
        .repeated(hits)
        .map_err(|e| anyhow::anyhow!("with {hits} hits per port: {e}"))?;
    Ok(Plan {
        host: host.to_owned(),
        family: overrides.family,
        sequence,
        hits,
        delay,
        hit_delay,
        sealing: None,
    })
}

/// Why `target` is neither a profile nor usable as a host with ports.
fn not_a_profile(target: &str, profiles: &Profiles) -> String {
    match profiles {
        Profiles::Missing(location) => missing_config(location, target),
        Profiles::Broken(e) => e.to_string(),
        Profiles::Loaded(config) => {
            let hint = match profiles::closest(target, config.profile_names()) {
                Some(near) => format!("; did you mean `{near}`?"),
                None => String::new(),
            };
            format!(
                "unknown profile `{target}`: the profiles are {}{hint}\n\
                 (to knock a host knockd-style, give ports: knock HOST PORT[:PROTO]...)",
                profiles::name_list(config.profile_names())
            )
        }
    }
}

/// The message for a profile asked for while there is no config file.
pub fn missing_config(location: &Location, target: &str) -> String {
    format!(
        "`{target}` is not a profile: there is no config file at {location}.\n\
         Create it with your profiles, for example:\n\n{SAMPLE}\n\
         (to knock a host knockd-style, give ports: knock HOST PORT[:PROTO]...)"
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::profiles::Origin;
    use knock_proto::Port;

    fn loaded() -> Profiles {
        Profiles::Loaded(Config::from_toml(SAMPLE).unwrap())
    }

    fn words(w: &[&str]) -> Vec<String> {
        w.iter().map(|s| s.to_string()).collect()
    }

    fn ports(plan: &Plan) -> Vec<(u16, Proto, usize)> {
        plan.hits()
            .map(|h| (h.knock.port.get(), h.knock.proto, h.attempt))
            .collect()
    }

    #[test]
    fn profile_mode_repeats_each_port_in_place() {
        let plan = build(
            "home",
            &words(&["wake-laptop"]),
            &loaded(),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(plan.host, "home.example.net");
        assert_eq!((plan.hits, plan.delay), (3, Duration::from_millis(200)));
        let t = Proto::Tcp;
        assert_eq!(
            ports(&plan),
            [
                (4, t, 0),
                (4, t, 0),
                (4, t, 0),
                (2012, t, 1),
                (2012, t, 1),
                (2012, t, 1),
                (3, t, 2),
                (3, t, 2),
                (3, t, 2)
            ]
        );
        assert_eq!(plan.hit_delay, HitDelay::Set(Duration::from_millis(500)));
        // 2 pauses between ports, 6 between the hits of one port.
        let hit_delay = plan.hit_delay(false);
        assert_eq!(
            plan.duration(hit_delay),
            Duration::from_millis(2 * 200 + 6 * 500)
        );
    }

    #[test]
    fn command_line_beats_sequence_beats_profile() {
        let plan = build(
            "home",
            &words(&["enable-vpn"]),
            &loaded(),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!((plan.hits, plan.delay), (3, Duration::from_millis(500)));
        let o = Overrides {
            udp: true,
            hits: Some(1),
            delay: Some(Duration::from_millis(7)),
            hit_delay: Some(Duration::from_millis(50)),
            family: Family::V6,
        };
        let plan = build("home", &words(&["enable-vpn"]), &loaded(), o).unwrap();
        assert_eq!(
            (plan.hits, plan.delay, plan.hit_delay, plan.family),
            (
                1,
                Duration::from_millis(7),
                HitDelay::Set(Duration::from_millis(50)),
                Family::V6
            )
        );
        assert_eq!(plan.sequence.to_string(), "2:udp,1:udp,2010:udp");
    }

    #[test]
    fn knockd_mode_when_not_a_profile() {
        let plan = build(
            "198.18.0.2",
            &words(&["7000", "8000:udp", "9000"]),
            &loaded(),
            Overrides::default(),
        )
        .unwrap();
        assert_eq!(plan.host, "198.18.0.2");
        assert_eq!(plan.sequence.to_string(), "7000:tcp,8000:udp,9000:tcp");
        assert_eq!((plan.hits, plan.delay), (1, Duration::ZERO));
        assert_eq!(plan.hit_delay, HitDelay::AsDelay);
        assert!(plan.has_tcp());
        let missing = Profiles::Missing(Location {
            path: "/nowhere".into(),
            origin: Origin::Default,
        });
        let plan = build(
            "h",
            &words(&["1"]),
            &missing,
            Overrides {
                udp: true,
                ..Overrides::default()
            },
        )
        .unwrap();
        assert_eq!(
            plan.sequence.knocks(),
            [Knock::new(Port::new(1).unwrap(), Proto::Udp)]
        );
        assert!(!plan.has_tcp());
    }

    #[test]
    fn errors_name_what_exists() {
        let err = build(
            "hme",
            &words(&["wake-laptop"]),
            &loaded(),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(
            err.to_string()
                .contains("unknown profile `hme`: the profiles are `home`; did you mean `home`?"),
            "{err}"
        );
        let err = build("home", &words(&["wake"]), &loaded(), Overrides::default()).unwrap_err();
        assert!(
            err.to_string().contains("no sequence `wake`: its sequences are `enable-vpn` and `wake-laptop`; did you mean `wake-laptop`?"),
            "{err}"
        );
        let err = build("home", &[], &loaded(), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("needs a sequence name"), "{err}");
        let err = build(
            "h",
            &words(&["7000", "80x"]),
            &loaded(),
            Overrides::default(),
        )
        .unwrap_err();
        assert!(err.to_string().contains("bad knock `80x`"), "{err}");
        let err = build("h", &words(&["7000:icmp"]), &loaded(), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("unknown protocol `icmp`"), "{err}");
        let err = build("h", &words(&["70000"]), &loaded(), Overrides::default()).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
        let missing = Profiles::Missing(Location {
            path: "/nowhere/config.toml".into(),
            origin: Origin::Default,
        });
        let err = build(
            "home",
            &words(&["wake-laptop"]),
            &missing,
            Overrides::default(),
        )
        .unwrap_err();
        let msg = err.to_string();
        assert!(
            msg.contains("no config file at /nowhere/config.toml")
                && msg.contains("[profiles.home]"),
            "{msg}"
        );
    }

    #[test]
    fn the_hit_delay_is_the_one_set_else_the_delay_and_a_gap_only_for_identical_hits() {
        let ms = Duration::from_millis;
        let plan = |delay, hit_delay| {
            let o = Overrides {
                hits: Some(3),
                delay,
                hit_delay,
                ..Overrides::default()
            };
            build("h", &words(&["1", "2"]), &loaded(), o).unwrap()
        };
        // Set: as it is, 0 included, whatever the packets.
        for identical in [false, true] {
            assert_eq!(plan(None, Some(ms(0))).hit_delay(identical), ms(0));
            assert_eq!(plan(Some(ms(300)), Some(ms(0))).hit_delay(identical), ms(0));
            assert_eq!(plan(None, Some(ms(7))).hit_delay(identical), ms(7));
        }
        // Not set: the delay; byte-identical hits at least the gap copies are told apart by.
        assert_eq!(plan(None, None).hit_delay(false), Duration::ZERO);
        assert_eq!(plan(Some(ms(300)), None).hit_delay(false), ms(300));
        assert_eq!(
            plan(None, None).hit_delay(true),
            profiles::IDENTICAL_HIT_GAP
        );
        assert_eq!(plan(Some(ms(300)), None).hit_delay(true), ms(300));
        // A profile without hit_delay_ms, knocked with no delay: no pause anywhere.
        let profile = "[profiles.p]\nhost = \"198.18.0.2\"\nhits = 3\n\
                       [profiles.p.sequences]\ns = \"4,2012,3\"\n";
        let config = Profiles::Loaded(Config::from_toml(profile).unwrap());
        let plan = build("p", &words(&["s"]), &config, Overrides::default()).unwrap();
        assert_eq!((plan.delay, plan.hit_delay(false)), (ms(0), ms(0)));
        assert_eq!(plan.duration(plan.hit_delay(false)), Duration::ZERO);
    }

    #[test]
    fn too_many_hits_is_an_error() {
        let o = Overrides {
            hits: Some(200),
            ..Overrides::default()
        };
        let err = build("h", &words(&["1", "2"]), &loaded(), o).unwrap_err();
        assert!(err.to_string().contains("400 knocks"), "{err}");
    }
}

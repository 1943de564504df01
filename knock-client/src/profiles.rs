//! Profiles: named hosts with named knock sequences, read from the user's config file.
//!
//! The file is TOML (see [`SAMPLE`]). It is read once into raw serde structs and then checked
//! into [`Profile`]s, collecting every problem with its line number instead of stopping at the
//! first one, so a user fixes the whole file in one go. Parsing works on strings
//! ([`Config::from_toml`]); only [`load`] touches the file system.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use knock_proto::{Proto, Sequence};
use serde::Deserialize;
use toml::Spanned;

/// A config file showing every key, printed when the config is missing.
pub const SAMPLE: &str = r#"[profiles.home]
host = "home.example.net"   # name or address, IPv4 or IPv6
hits = 3                     # telnet-style: each port is knocked 3 times (default 1)
delay_ms = 200               # pause between knocks
hit_delay_ms = 500           # pause between the hits of one port (default: delay_ms, at least 20)
protocol = "tcp"             # default for ports written without :proto

[profiles.home.sequences]
wake-laptop = "4,2012,3"                                          # knockd syntax: port[:proto],...
enable-vpn  = { sequence = "2,1,2010", hits = 3, delay_ms = 500 } # per-sequence overrides
"#;

/// Where the config file is, and who said so.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Location {
    /// The file.
    pub path: PathBuf,
    /// Why this file.
    pub origin: Origin,
}

/// Who chose the config file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// `--config FILE`.
    Flag,
    /// The `KNOCK_CONFIG` environment variable.
    Env,
    /// The platform's config directory.
    Default,
}

impl Location {
    /// The explicit file if one was given, else `config.toml` in the platform's config dir
    /// (Linux: `$XDG_CONFIG_HOME/knock`, macOS: `~/Library/Application Support/knock`,
    /// Windows: `%APPDATA%\knock\config`).
    pub fn find(explicit: Option<(PathBuf, Origin)>) -> anyhow::Result<Location> {
        if let Some((path, origin)) = explicit {
            return Ok(Location { path, origin });
        }
        let dirs = directories::ProjectDirs::from("", "", "knock").context(
            "cannot find your home directory to look for the config: give one with --config FILE",
        )?;
        Ok(Location {
            path: dirs.config_dir().join("config.toml"),
            origin: Origin::Default,
        })
    }
}

impl fmt::Display for Location {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = match self.origin {
            Origin::Flag => " (from --config)",
            Origin::Env => " (from KNOCK_CONFIG)",
            Origin::Default => "",
        };
        write!(f, "{}{how}", self.path.display())
    }
}

/// The checked config: every profile and sequence valid.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Config {
    /// Profiles by name, sorted.
    pub profiles: BTreeMap<String, Profile>,
}

/// A host and its sequences.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// Host name or address, as written (resolved when knocking).
    pub host: String,
    /// How many times each port is hit (at least 1).
    pub hits: u8,
    /// Pause between hits.
    pub delay: Duration,
    /// Pause between the hits of one port (one connection attempt sent again); `None`: the
    /// pause between hits, at least [`MIN_HIT_DELAY`].
    pub hit_delay: Option<Duration>,
    /// Protocol for ports written without one.
    pub protocol: Proto,
    /// Sequences by name, sorted.
    pub sequences: BTreeMap<String, NamedSequence>,
}

/// One sequence of a profile, with its overrides.
#[derive(Debug, Clone, PartialEq)]
pub struct NamedSequence {
    /// The knocks, protocols filled in from the profile's default.
    pub knocks: Sequence,
    /// The sequence as written in the file, for listings.
    pub written: String,
    /// Overrides the profile's hits.
    pub hits: Option<u8>,
    /// Overrides the profile's delay.
    pub delay: Option<Duration>,
}

/// Reads and checks the config. `Ok(None)` when the file does not exist: the caller decides
/// whether that matters (knockd mode needs no config).
pub fn load(location: &Location) -> anyhow::Result<Option<Config>> {
    let text = match std::fs::read_to_string(&location.path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("cannot read the config {location}")),
    };
    Config::from_toml(&text)
        .map(Some)
        .map_err(|e| anyhow::anyhow!("bad config {location}:\n{e}"))
}

/// What was wrong with a config file, every problem found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError(Vec<String>);

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            f.write_str(problem)?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Parses and checks a config file's text.
    pub fn from_toml(text: &str) -> Result<Config, ConfigError> {
        let raw: RawConfig = toml::from_str(text).map_err(|e| ConfigError(vec![e.to_string()]))?;
        let mut problems = Problems {
            text,
            list: Vec::new(),
        };
        let profiles = raw
            .profiles
            .into_iter()
            .filter_map(|(name, raw)| {
                let profile = check_profile(&name, raw, &mut problems)?;
                Some((name, profile))
            })
            .collect();
        if problems.list.is_empty() {
            Ok(Config { profiles })
        } else {
            Err(ConfigError(problems.list))
        }
    }

    /// The profile names, sorted.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }
}

impl Profile {
    /// The sequence names, sorted.
    pub fn sequence_names(&self) -> impl Iterator<Item = &str> {
        self.sequences.keys().map(String::as_str)
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    #[serde(default)]
    profiles: BTreeMap<String, RawProfile>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawProfile {
    host: Spanned<String>,
    hits: Option<Spanned<i64>>,
    delay_ms: Option<Spanned<i64>>,
    hit_delay_ms: Option<Spanned<i64>>,
    protocol: Option<Spanned<String>>,
    /// Each value is a string (`"4,2012,3"`) or a [`RawSequenceTable`]; kept as a spanned
    /// value so that problems inside it can still name its line.
    #[serde(default)]
    sequences: BTreeMap<String, Spanned<toml::Value>>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSequenceTable {
    sequence: String,
    hits: Option<i64>,
    delay_ms: Option<i64>,
}

/// Problems found so far, each prefixed with its line.
struct Problems<'t> {
    text: &'t str,
    list: Vec<String>,
}

impl Problems<'_> {
    fn add(&mut self, at: usize, what: impl fmt::Display) {
        let line = self
            .text
            .get(..at)
            .map_or(0, |before| before.matches('\n').count())
            + 1;
        self.list.push(format!("line {line}: {what}"));
    }
}

fn check_profile(name: &str, raw: RawProfile, problems: &mut Problems) -> Option<Profile> {
    let before = problems.list.len();
    let host = raw.host.get_ref().trim().to_owned();
    if host.is_empty() {
        problems.add(
            raw.host.span().start,
            format_args!("profile `{name}`: host is empty; write a name or an address"),
        );
    }
    let hits = setting(&raw.hits, 1, |n| check_hits(*n), name, problems);
    let delay = setting(
        &raw.delay_ms,
        Duration::ZERO,
        |ms| check_delay(*ms),
        name,
        problems,
    );
    let hit_delay = setting(
        &raw.hit_delay_ms,
        None,
        |ms| check_hit_delay(*ms).map(Some),
        name,
        problems,
    );
    let protocol = setting(
        &raw.protocol,
        Proto::Tcp,
        |p| p.parse::<Proto>().map_err(|e| e.to_string()),
        name,
        problems,
    );
    if raw.sequences.is_empty() {
        problems.add(
            raw.host.span().start,
            format_args!(
                "profile `{name}` has no sequences: add a [profiles.{name}.sequences] table"
            ),
        );
    }
    let mut sequences = BTreeMap::new();
    for (seq_name, value) in raw.sequences {
        let at = value.span().start;
        let context = format!("profile `{name}`, sequence `{seq_name}`");
        match check_sequence(value.into_inner(), protocol.unwrap_or_default(), hits) {
            Ok(seq) => {
                sequences.insert(seq_name, seq);
            }
            Err(e) => problems.add(at, format_args!("{context}: {e}")),
        }
    }
    if problems.list.len() > before {
        return None;
    }
    Some(Profile {
        host,
        hits: hits?,
        delay: delay?,
        hit_delay: hit_delay?,
        protocol: protocol?,
        sequences,
    })
}

/// A profile setting: `default` when absent, checked when present (a problem noted on its line
/// when wrong, and `None` returned).
fn setting<R, T>(
    raw: &Option<Spanned<R>>,
    default: T,
    check: impl FnOnce(&R) -> Result<T, String>,
    profile: &str,
    problems: &mut Problems,
) -> Option<T> {
    let Some(raw) = raw else {
        return Some(default);
    };
    check(raw.get_ref())
        .map_err(|e| problems.add(raw.span().start, format_args!("profile `{profile}`: {e}")))
        .ok()
}

/// One sequence entry; `profile_hits` (when valid) checks the expanded length.
fn check_sequence(
    value: toml::Value,
    protocol: Proto,
    profile_hits: Option<u8>,
) -> Result<NamedSequence, String> {
    let table = match value {
        toml::Value::String(sequence) => RawSequenceTable {
            sequence,
            hits: None,
            delay_ms: None,
        },
        toml::Value::Table(t) => toml::Value::Table(t)
            .try_into::<RawSequenceTable>()
            .map_err(|e| e.message().to_owned())?,
        other => {
            return Err(format!(
                "expected a sequence like \"7000,8000:udp,9000\" or a table \
                 {{ sequence = \"...\", hits = N, delay_ms = MS }}, found a {}",
                other.type_str()
            ));
        }
    };
    let knocks =
        Sequence::parse_with_default(&table.sequence, protocol).map_err(|e| e.to_string())?;
    let hits = table.hits.map(check_hits).transpose()?;
    let delay = table.delay_ms.map(check_delay).transpose()?;
    if let Some(h) = hits.or(profile_hits) {
        knocks
            .repeated(usize::from(h))
            .map_err(|e| format!("with hits = {h}: {e}"))?;
    }
    Ok(NamedSequence {
        knocks,
        written: table.sequence.trim().to_owned(),
        hits,
        delay,
    })
}

fn check_hits(n: i64) -> Result<u8, String> {
    u8::try_from(n)
        .ok()
        .filter(|&h| h >= 1)
        .ok_or_else(|| format!("hits = {n}: write a number of hits per port from 1 to 255"))
}

fn check_delay(ms: i64) -> Result<Duration, String> {
    u64::try_from(ms)
        .map(Duration::from_millis)
        .map_err(|_| format!("delay_ms = {ms}: write a pause in milliseconds, 0 or more"))
}

/// The least pause between the hits of one port: a daemon capturing on several devices
/// (knock-server on `any`) counts copies of one packet that arrive within a few milliseconds as
/// one packet, and the hits of one port are the same packet sent again.
pub const MIN_HIT_DELAY: Duration = Duration::from_millis(20);

/// The longest pause between the hits of one port: a kernel retransmits a SYN after 1 s, then
/// 2 s, 4 s...; past 10 s a knock would outlast knockd's default 25 s sequence timeout.
pub const MAX_HIT_DELAY: Duration = Duration::from_secs(10);

fn check_hit_delay(ms: i64) -> Result<Duration, String> {
    u64::try_from(ms)
        .ok()
        .map(Duration::from_millis)
        .filter(|d| (MIN_HIT_DELAY..=MAX_HIT_DELAY).contains(d))
        .ok_or_else(|| {
            format!(
                "hit_delay_ms = {ms}: write a pause in milliseconds from {} to {}",
                MIN_HIT_DELAY.as_millis(),
                MAX_HIT_DELAY.as_millis()
            )
        })
}

/// The name in `names` closest to `wanted`, if one is close enough to be a likely typo.
pub fn closest<'a>(wanted: &str, names: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    names
        .into_iter()
        .map(|name| (strsim::jaro_winkler(wanted, name), name))
        .filter(|(score, _)| *score > 0.7)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, name)| name)
}

/// "`a`, `b` and `c`", or "none" when empty.
pub fn name_list<'a>(names: impl IntoIterator<Item = &'a str>) -> String {
    let names: Vec<String> = names.into_iter().map(|n| format!("`{n}`")).collect();
    match names.as_slice() {
        [] => "none".to_owned(),
        [one] => one.clone(),
        [init @ .., last] => format!("{} and {last}", init.join(", ")),
    }
}

/// Writes `knock --list`: each profile with its host and settings, then its sequences.
pub fn write_list(config: &Config, out: &mut impl io::Write) -> io::Result<()> {
    for (name, p) in &config.profiles {
        writeln!(
            out,
            "{name}: {}{}",
            p.host,
            settings(p.hits, p.delay, Some(p.protocol))
        )?;
        let width = p.sequence_names().map(str::len).max().unwrap_or(0);
        for (seq_name, s) in &p.sequences {
            let extra = match (s.hits, s.delay) {
                (None, None) => String::new(),
                (hits, delay) => settings(hits.unwrap_or(p.hits), delay.unwrap_or(p.delay), None),
            };
            writeln!(out, "  {seq_name:width$}  {}{extra}", s.written)?;
        }
    }
    Ok(())
}

/// ` (3 hits per port, 200 ms apart, tcp by default)`, leaving out what is default.
fn settings(hits: u8, delay: Duration, protocol: Option<Proto>) -> String {
    let mut parts = Vec::new();
    if hits > 1 {
        parts.push(format!("{hits} hits per port"));
    }
    if !delay.is_zero() {
        parts.push(format!("{} ms apart", delay.as_millis()));
    }
    if protocol == Some(Proto::Udp) {
        parts.push("udp by default".to_owned());
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join(", "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use knock_proto::{Knock, Port};

    fn k(port: u16, proto: Proto) -> Knock {
        Knock::new(Port::new(port).unwrap(), proto)
    }

    #[test]
    fn sample_config_parses() {
        let c = Config::from_toml(SAMPLE).unwrap();
        let home = &c.profiles["home"];
        assert_eq!(home.host, "home.example.net");
        assert_eq!((home.hits, home.delay), (3, Duration::from_millis(200)));
        assert_eq!(home.hit_delay, Some(Duration::from_millis(500)));
        let wake = &home.sequences["wake-laptop"];
        assert_eq!(
            wake.knocks.knocks(),
            [k(4, Proto::Tcp), k(2012, Proto::Tcp), k(3, Proto::Tcp)]
        );
        assert_eq!((wake.hits, wake.delay), (None, None));
        let vpn = &home.sequences["enable-vpn"];
        assert_eq!(
            (vpn.hits, vpn.delay),
            (Some(3), Some(Duration::from_millis(500)))
        );
        assert_eq!(vpn.written, "2,1,2010");
    }

    #[test]
    fn defaults_and_profile_protocol() {
        let c = Config::from_toml(
            "[profiles.p]\nhost = \"::1\"\nprotocol = \"UDP\"\n[profiles.p.sequences]\ns = \"1,2:tcp\"\n",
        )
        .unwrap();
        let p = &c.profiles["p"];
        assert_eq!((p.hits, p.delay, p.hit_delay), (1, Duration::ZERO, None));
        assert_eq!(
            p.sequences["s"].knocks.knocks(),
            [k(1, Proto::Udp), k(2, Proto::Tcp)]
        );
        assert_eq!(Config::from_toml("").unwrap(), Config::default());
    }

    #[test]
    fn hit_delay_is_bounded() {
        let with = |ms: i64| {
            Config::from_toml(&format!(
                "[profiles.p]\nhost = \"::1\"\nhit_delay_ms = {ms}\n[profiles.p.sequences]\ns = \"1\"\n"
            ))
            .map(|c| c.profiles["p"].hit_delay)
        };
        assert_eq!(with(20), Ok(Some(Duration::from_millis(20))));
        assert_eq!(with(10_000), Ok(Some(Duration::from_secs(10))));
        for ms in [-1, 0, 19, 10_001] {
            assert_eq!(
                with(ms).unwrap_err().to_string(),
                format!(
                    "line 3: profile `p`: hit_delay_ms = {ms}: write a pause in milliseconds \
                     from 20 to 10000"
                )
            );
        }
    }

    #[test]
    fn every_problem_is_reported_with_its_line() {
        let text = "\
[profiles.a]
host = \"\"
hits = 0
delay_ms = -5
protocol = \"icmp\"
[profiles.a.sequences]
x = \"1,,2\"
y = { sequence = \"7\", hit = 3 }
z = 7
[profiles.b]
host = \"h\"
hits = 100
[profiles.b.sequences]
long = \"1,2,3\"
";
        let err = Config::from_toml(text).unwrap_err().to_string();
        for want in [
            "line 2: profile `a`: host is empty",
            "line 3: profile `a`: hits = 0",
            "line 4: profile `a`: delay_ms = -5",
            "line 5: profile `a`: unknown protocol `icmp`",
            "line 7: profile `a`, sequence `x`: empty port",
            "line 8: profile `a`, sequence `y`: unknown field `hit`",
            "line 9: profile `a`, sequence `z`: expected a sequence",
            "line 14: profile `b`, sequence `long`: with hits = 100: the sequence has 300 knocks",
        ] {
            assert!(err.contains(want), "missing {want:?} in:\n{err}");
        }
    }

    #[test]
    fn syntax_errors_and_unknown_keys_are_refused() {
        let err = Config::from_toml("[profiles.a\n").unwrap_err().to_string();
        assert!(err.contains("line 1"), "{err}");
        let err = Config::from_toml("[profile.a]\nhost = \"h\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `profile`"), "{err}");
        let err = Config::from_toml("[profiles.a]\nhots = \"h\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("unknown field `hots`"), "{err}");
        let err = Config::from_toml("[profiles.a]\nhost = \"h\"\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("has no sequences"), "{err}");
    }

    #[test]
    fn closest_names() {
        let names = ["home", "office", "vpn-gateway"];
        assert_eq!(closest("hme", names), Some("home"));
        assert_eq!(closest("ofice", names), Some("office"));
        assert_eq!(closest("zzzz", names), None);
        assert_eq!(name_list(names), "`home`, `office` and `vpn-gateway`");
        assert_eq!(name_list([]), "none");
    }

    #[test]
    fn list_output() {
        let c = Config::from_toml(SAMPLE).unwrap();
        let mut out = Vec::new();
        write_list(&c, &mut out).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "home: home.example.net (3 hits per port, 200 ms apart)\n\
             \x20 enable-vpn   2,1,2010 (3 hits per port, 500 ms apart)\n\
             \x20 wake-laptop  4,2012,3\n"
        );
    }
}

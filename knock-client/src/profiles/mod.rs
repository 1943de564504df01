//! Profiles: named hosts with named knock sequences, read from the user's config file.
//!
//! The file is TOML (see [`SAMPLE`]), checked into [`Profile`]s by [`parse`] with the server's
//! diagnostics: every problem with its file, line and column, so a user fixes the whole file in
//! one go. Parsing works on strings; only [`load`] touches the file system.

use std::collections::BTreeMap;
use std::fmt;
use std::io;
use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context as _;
use knock_proto::config::{Diagnostic, Diagnostics, io_message};
use knock_proto::{Proto, Sequence};

pub mod keys;
mod parse;

/// A config file showing every key, printed when the config is missing.
pub const SAMPLE: &str = r#"[profiles.home]
host = "home.example.net"   # name or address, IPv4 or IPv6
hits = 3                     # telnet-style: each port is knocked 3 times (default 1)
delay_ms = 200               # pause between knocks
hit_delay_ms = 500           # pause between the hits of one port (default: delay_ms)
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
    /// pause between hits (see [`IDENTICAL_HIT_GAP`] for when it is longer).
    pub hit_delay: Option<Duration>,
    /// Protocol for ports written without one.
    pub protocol: Proto,
    /// Sequences by name, sorted.
    pub sequences: BTreeMap<String, NamedSequence>,
    /// Rotating sequences by name, sorted (none of them in `sequences`).
    pub rotating: BTreeMap<String, crate::rotating::RotatingEntry>,
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

/// The longest pause between hits `delay_ms` and `-d` take: an hour. Longer is a typo (and
/// would outlast any sensible sequence timeout on the server).
pub const MAX_DELAY_MS: u64 = 3_600_000;

/// Why the config could not be used.
#[derive(Debug, Clone)]
pub enum LoadError {
    /// The file cannot be read, or there is none where the user said it is: why, said whole.
    Unreadable(String),
    /// The file is read but wrong: every problem, each at its line.
    Invalid(Diagnostics),
    /// Another user could change the file (its owner, its mode, or a directory above it):
    /// why, and the fix, said whole. Nothing is used then, as ssh refuses such a
    /// `~/.ssh/config`: profiles send knocks, and `--proxy` a connection, where they say.
    /// (Unix only: Windows has no owner and mode bits to judge.)
    #[cfg_attr(not(unix), allow(dead_code))]
    Distrusted(String),
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LoadError::Unreadable(e) => f.write_str(e),
            LoadError::Invalid(d) => write!(f, "{d}"),
            LoadError::Distrusted(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for LoadError {}

/// Reads and checks the config. `Ok(None)` when the file does not exist: the caller decides
/// whether that matters (knockd mode needs no config). On Unix a file another user could
/// change is [`LoadError::Distrusted`] (`knock_proto::trust`, with `Access::Config`).
pub fn load(location: &Location) -> Result<Option<Config>, LoadError> {
    let bytes = match std::fs::read(&location.path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(LoadError::Unreadable(format!(
                "cannot read the config {location}: {}",
                io_message(&e)
            )));
        }
    };
    #[cfg(unix)]
    knock_proto::trust::check(&location.path, knock_proto::trust::Access::Config).map_err(|d| {
        LoadError::Distrusted(format!(
            "bad owner or permissions on the config {location}: {d}"
        ))
    })?;
    let text = String::from_utf8(bytes).map_err(|e| {
        let d = Diagnostic::whole_file(
            &location.path,
            format!(
                "invalid UTF-8 (byte {} of the file): save it as UTF-8",
                e.utf8_error().valid_up_to() + 1
            ),
        );
        LoadError::Invalid(Diagnostics(vec![d]))
    })?;
    parse::parse(&location.path, &text)
        .map(Some)
        .map_err(LoadError::Invalid)
}

impl Config {
    /// Parses and checks a config file's text (named `config.toml` in messages).
    #[cfg(test)]
    pub fn from_toml(text: &str) -> Result<Config, Diagnostics> {
        parse::parse(std::path::Path::new("config.toml"), text)
    }

    /// The profile names, sorted.
    pub fn profile_names(&self) -> impl Iterator<Item = &str> {
        self.profiles.keys().map(String::as_str)
    }
}

impl Profile {
    /// The sequence names, fixed and rotating, sorted.
    pub fn sequence_names(&self) -> impl Iterator<Item = &str> {
        let mut names: Vec<&str> = self.sequences.keys().map(String::as_str).collect();
        names.extend(self.rotating.keys().map(String::as_str));
        names.sort_unstable();
        names.into_iter()
    }
}

/// The least pause between the hits of one port when none is set and they are byte-identical
/// packets (raw SYNs over IPv6, which has no IP ID to tell them apart): a daemon capturing on
/// several devices (knock-server on `any`, where a bridge shows each packet twice) counts copies
/// of one packet that arrive within a few milliseconds as one packet.
pub const IDENTICAL_HIT_GAP: Duration = Duration::from_millis(20);

/// The longest pause between the hits of one port, in milliseconds: a kernel retransmits a
/// SYN after 1 s, then 2 s, 4 s...; past 10 s a knock would outlast knockd's default 25 s
/// sequence timeout.
pub const MAX_HIT_DELAY_MS: u64 = 10_000;

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
        for (seq_name, e) in &p.rotating {
            writeln!(
                out,
                "  {seq_name:width$}  {}",
                crate::rotating::describe(&e.rotating)
            )?;
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

    /// Every problem, in line order, at its line and column (the full rendering is checked
    /// against tests/data/bad/*.expected by tests/cli.rs).
    #[test]
    fn every_problem_is_reported_at_its_place() {
        let text = "[profiles.a]\nhots = \"h\"\nhits = 0\n[profiles.a.sequences]\nx = \"1,0\"\n";
        let err = Config::from_toml(text).unwrap_err();
        let places: Vec<(usize, Option<usize>, &str)> = err
            .0
            .iter()
            .map(|d| (d.line, d.column, d.message.as_str()))
            .collect();
        assert_eq!(
            places,
            [
                (
                    1,
                    Some(11),
                    "profile `a` has no host: add `host = \"198.18.0.2\"` (a name or an address)"
                ),
                (2, Some(1), "unknown key `hots`, did you mean `host`?"),
                (
                    3,
                    Some(8),
                    "hits = 0 is out of range: use 1 to 255 hits per port"
                ),
                (
                    5,
                    Some(8),
                    "port `0` is out of range: ports go from 1 to 65535"
                ),
            ]
        );
    }

    #[test]
    fn hit_delay_is_bounded() {
        let with = |ms: i64| {
            Config::from_toml(&format!(
                "[profiles.p]\nhost = \"::1\"\nhit_delay_ms = {ms}\n[profiles.p.sequences]\ns = \"1\"\n"
            ))
            .map(|c| c.profiles["p"].hit_delay)
        };
        assert_eq!(with(0), Ok(Some(Duration::ZERO)), "no pause at all");
        assert_eq!(with(20), Ok(Some(Duration::from_millis(20))));
        assert_eq!(with(10_000), Ok(Some(Duration::from_secs(10))));
        for ms in [-1, 10_001] {
            let err = with(ms).unwrap_err();
            assert_eq!(
                err.0[0].message,
                format!("hit_delay_ms = {ms} is out of range: use 0 to 10000 milliseconds")
            );
            assert_eq!((err.0[0].line, err.0[0].column), (3, Some(16)));
        }
    }

    #[test]
    fn numbers_are_bounded_and_sequences_take_arrays() {
        let err = Config::from_toml(
            "[profiles.a]\nhost = \"h\"\ndelay_ms = 9223372036854775807\n[profiles.a.sequences]\nx = \"1\"\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains(
                "delay_ms = 9223372036854775807 is out of range: use 0 to 3600000 milliseconds"
            ),
            "{err}"
        );
        let c = Config::from_toml(
            "[profiles.a]\nhost = \"h\"\ndelay_ms = 3600000\n[profiles.a.sequences]\nx = [\"1:udp\", 2]\n",
        )
        .unwrap();
        let a = &c.profiles["a"];
        assert_eq!(a.delay, Duration::from_secs(3600));
        assert_eq!(
            a.sequences["x"].knocks.knocks(),
            [k(1, Proto::Udp), k(2, Proto::Tcp)]
        );
        assert_eq!(a.sequences["x"].written, "1:udp,2");
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

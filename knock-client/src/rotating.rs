//! Rotating sequences in a profile: `ssh = { secret_file = "...", knocks = 3, ports =
//! "1024-65535", step_seconds = 30, sealed = true }` (as `knock-server pair DOOR` prints it).
//!
//! The ports change every step and are derived from the key, the door's name and the step
//! (PROTOCOL.md); for sealed doors every SYN also carries a MAC in its sequence number, which
//! needs a raw socket. The wall clock is read here, once per run: `KNOCK_TEST_CLOCK_SKEW`
//! (seconds, may be negative) shifts it, for tests of a client whose clock is off.

use std::path::{Path, PathBuf};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use knock_proto::auth::{Key, Nonce, RotatingDoor, Step};
use knock_proto::config::Rotating;

/// Shifts the client's clock by this many seconds: for tests only, never for real use.
pub const CLOCK_SKEW_VAR: &str = "KNOCK_TEST_CLOCK_SKEW";

/// A rotating sequence of a profile, checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RotatingEntry {
    /// The server's door name, bound into the derivation (default: the sequence's name).
    pub door: String,
    /// The door's settings, read and checked exactly as the server reads its door
    /// (`knock_proto::config::rotating_keys`). The key file is as written (`~/` is the home
    /// directory).
    pub rotating: Rotating,
    /// Overrides the profile's hits.
    pub hits: Option<u8>,
    /// Overrides the profile's delay.
    pub delay: Option<std::time::Duration>,
}

impl RotatingEntry {
    /// Reads the key and gives the protocol's view of the door.
    pub fn door(&self) -> anyhow::Result<RotatingDoor> {
        let r = &self.rotating;
        let key = read_key(&expand_home(&r.secret_file))?;
        Ok(RotatingDoor {
            name: self.door.clone(),
            key,
            knocks: r.knocks,
            ports: r.ports.clone(),
            step_seconds: r.step_seconds,
            seal: r.seal(),
            seq_timeout: std::time::Duration::ZERO,
        })
    }
}

/// What a sealed knock needs besides its ports: the door (with its key), the step and nonce
/// the sequence was made for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sealing {
    /// The door.
    pub door: RotatingDoor,
    /// The step.
    pub step: Step,
    /// This sequence's nonce.
    pub nonce: Nonce,
}

/// Waits until the nonce `sealing` used can no longer be picked (at most `step_seconds / 256`,
/// 117 ms for 30-second steps), so that a second `knock` right after this one carries a fresh
/// nonce and opens again instead of reading as a replay.
pub fn wait_for_fresh_nonce(sealing: &Sealing) -> anyhow::Result<()> {
    let step = sealing.door.step_seconds.get();
    let now = now_millis()?;
    let start = sealing.step.0.saturating_mul(u64::from(step) * 1000);
    let slot_start = start + (u64::from(sealing.nonce.0) * u64::from(step) * 1000).div_ceil(256);
    let end = Nonce::slot_end(slot_start, step);
    if now < end {
        std::thread::sleep(std::time::Duration::from_millis(end - now));
    }
    Ok(())
}

/// Now on the wall clock, in ms since 1970, shifted by [`CLOCK_SKEW_VAR`].
pub fn now_millis() -> anyhow::Result<u64> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .context("the system clock is before 1970: rotating sequences need the right time")?;
    let now = u64::try_from(now.as_millis()).unwrap_or(u64::MAX);
    let skew: i64 = match std::env::var(CLOCK_SKEW_VAR) {
        Ok(s) => s
            .trim()
            .parse()
            .with_context(|| format!("{CLOCK_SKEW_VAR}={s} is not a number of seconds"))?,
        Err(_) => 0,
    };
    Ok(now.saturating_add_signed(skew.saturating_mul(1000)))
}

/// `~/x` as `$HOME/x`; anything else unchanged.
fn expand_home(path: &Path) -> PathBuf {
    let rest = path.to_str().and_then(|p| p.strip_prefix("~/"));
    match (rest, directories::BaseDirs::new()) {
        (Some(rest), Some(dirs)) => dirs.home_dir().join(rest),
        _ => path.to_owned(),
    }
}

/// Reads a key file, refusing (on Unix) one that others can read or write, that belongs to
/// another user (not root), or that sits in a directory others can change: the server's rules
/// ([`knock_proto::auth::key::check_file`]).
fn read_key(path: &Path) -> anyhow::Result<Key> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    #[cfg(unix)]
    knock_proto::auth::key::check_file(path).map_err(anyhow::Error::msg)?;
    let text = std::io::read_to_string(file)
        .with_context(|| format!("cannot read the key file {}", path.display()))?;
    text.parse()
        .with_context(|| format!("the key file {} holds no key", path.display()))
}

/// The ports to knock now and the sealing, or for `--show` what to print.
pub fn current(door: &RotatingDoor, now_ms: u64) -> (Vec<knock_proto::Port>, Sealing, u64) {
    let unix = now_ms / 1000;
    let step = Step::at(unix, door.step_seconds);
    let left = Step::seconds_left(unix, door.step_seconds);
    let sealing = Sealing {
        door: door.clone(),
        step,
        nonce: Nonce::for_time(now_ms, door.step_seconds.get()),
    };
    (door.sequence(step), sealing, left)
}

/// `rotating: 3 knocks in 1024-65535 every 30 s, sealed`, for `knock --list`.
pub fn describe(r: &Rotating) -> String {
    let sealed = match (r.sealed, r.bind_source) {
        (false, _) => "unsealed",
        (true, false) => "sealed",
        (true, true) => "sealed, bound to the source address",
    };
    format!(
        "rotating: {} knocks in {} every {} s, {sealed}",
        r.knocks, r.ports, r.step_seconds
    )
}

/// `knock --show PROFILE SEQUENCE`: the ports of the current step and the seconds left, for
/// knocking by hand from a machine without the client.
pub fn show(
    config: Option<&crate::profiles::Config>,
    target: &str,
    rest: &[String],
    out: &mut impl std::io::Write,
) -> anyhow::Result<()> {
    let profile = config.and_then(|c| c.profiles.get(target));
    let (Some(profile), [seq_name]) = (profile, rest) else {
        anyhow::bail!(
            "--show takes a profile and one of its rotating sequences: knock --show PROFILE SEQUENCE"
        );
    };
    let Some(entry) = profile.rotating.get(seq_name) else {
        anyhow::bail!(
            "`{seq_name}` is not a rotating sequence of profile `{target}`; its rotating sequences \
             are {}",
            crate::profiles::name_list(profile.rotating.keys().map(String::as_str))
        );
    };
    let door = entry.door()?;
    let (ports, _, left) = current(&door, now_millis()?);
    let ports: Vec<String> = ports.iter().map(|p| p.to_string()).collect();
    writeln!(out, "ports: {} (tcp)", ports.join(","))?;
    writeln!(out, "seconds left: {left}")?;
    if entry.rotating.sealed {
        writeln!(
            out,
            "sealed: only knock with raw sockets opens this door (other SYNs carry no seal)"
        )?;
    } else {
        let host = &profile.host;
        let by_hand: Vec<String> = ports.iter().map(|p| format!("telnet {host} {p}")).collect();
        writeln!(out, "by hand: {}", by_hand.join("; "))?;
    }
    Ok(())
}

#[cfg(test)]
mod agreement_tests;

#[cfg(test)]
mod tests {
    use super::*;

    /// The sequence `x = TEXT` of a profile, through the profile parser: the entry, or every
    /// error as the user would see it.
    fn entry(text: &str) -> Result<RotatingEntry, String> {
        let config = format!(
            "[profiles.home]\nhost = \"198.18.0.2\"\n[profiles.home.sequences]\nssh = {text}\n"
        );
        crate::profiles::Config::from_toml(&config)
            .map(|c| c.profiles["home"].rotating["ssh"].clone())
            .map_err(|d| d.to_string())
    }

    #[test]
    fn a_table_with_secret_file_is_rotating_with_the_servers_defaults() {
        let e = entry(r#"{ secret_file = "~/k" }"#).unwrap();
        assert_eq!(e.door, "ssh");
        assert_eq!((e.rotating.knocks, e.rotating.step_seconds.get()), (3, 30));
        assert_eq!(e.rotating.ports.to_string(), "1024-65535");
        assert!(e.rotating.sealed && !e.rotating.bind_source);
        let fixed = crate::profiles::Config::from_toml(
            "[profiles.home]\nhost = \"h\"\n[profiles.home.sequences]\nssh = { sequence = \"1\" }\n",
        )
        .unwrap();
        assert!(fixed.profiles["home"].rotating.is_empty());
    }

    #[test]
    fn bad_settings_say_what_is_wrong() {
        for (text, says) in [
            (r#"{ secret_file = "k", knocks = 0 }"#, "knocks = 0"),
            (
                r#"{ secret_file = "k", ports = "x" }"#,
                "`x` is not a port or a range like 1024-65535",
            ),
            (r#"{ secret_file = "k", step_seconds = 1 }"#, "step_seconds"),
            (
                r#"{ secret_file = "k", sequence = "1" }"#,
                "unknown key `sequence`",
            ),
            (r#"{ secret_file = "k", sealed = 1 }"#, "sealed"),
            (r#"{ secret_file = 7 }"#, "secret_file"),
            // The client's own keys, read as in any sequence table.
            (
                r#"{ secret_file = "k", delay_ms = 3600001 }"#,
                "delay_ms = 3600001 is out of range: use 0 to 3600000 milliseconds",
            ),
            (
                r#"{ secret_file = "k", hits = 0 }"#,
                "hits = 0 is out of range",
            ),
            (
                r#"{ secret_file = "k", door = 1 }"#,
                "`door` must be a string",
            ),
        ] {
            let e = entry(text).unwrap_err();
            assert!(
                e.contains(says) && e.contains("config.toml:4:"),
                "{text}: {e}"
            );
        }
    }

    #[test]
    fn a_readable_key_file_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        let e = read_key(&path).unwrap_err().to_string();
        assert!(e.contains("is mode 0604") && e.contains("chmod 600"), "{e}");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        assert!(read_key(&path).is_ok());
    }

    /// A key file `k` holding a key, mode 0600, in a new directory of its own.
    fn key_file() -> (tempfile::TempDir, PathBuf) {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        std::fs::write(&path, "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n").unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap();
        (dir, path)
    }

    #[test]
    fn a_key_file_in_a_directory_others_can_write_is_refused_with_the_fix() {
        use std::os::unix::fs::PermissionsExt as _;
        let (dir, path) = key_file();
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = read_key(&path).unwrap_err().to_string();
        assert!(
            e.contains("is mode 0777")
                && e.ends_with(&format!("run `chmod go-w {}`", dir.path().display())),
            "{e}"
        );
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700)).unwrap();
        assert!(read_key(&path).is_ok());
    }

    #[test]
    fn a_key_file_of_another_user_is_refused_even_when_mode_600() {
        if !knock_e2e::root_or_skip() {
            return;
        }
        let (_dir, path) = key_file();
        std::os::unix::fs::chown(&path, Some(65534), None).unwrap();
        let e = read_key(&path).unwrap_err().to_string();
        assert!(
            e.contains("(uid 65534), not by root")
                && e.contains(&format!("run `chown root {}`", path.display())),
            "{e}"
        );
    }
}

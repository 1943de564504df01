//! Rotating sequences from the command line, without sending: `--show`, `--list`, `--dry-run`,
//! the faked clock for tests, and key files others can read. The ports are checked against
//! knock-proto's derivation (itself checked against PROTOCOL.md's vectors).

use std::os::unix::fs::PermissionsExt as _;
use std::process::{Command, Output};
use std::time::{SystemTime, UNIX_EPOCH};

use knock_proto::auth::derive::{Step, sequence};
use knock_proto::auth::{Key, PortSet};

const KEY: &str = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=";

struct Home(tempfile::TempDir);

impl Home {
    fn new(key_mode: u32) -> Home {
        let home = tempfile::tempdir().unwrap();
        let keys = home.path().join("keys");
        std::fs::create_dir_all(&keys).unwrap();
        std::fs::write(keys.join("ssh.key"), format!("{KEY}\n")).unwrap();
        std::fs::set_permissions(
            keys.join("ssh.key"),
            std::fs::Permissions::from_mode(key_mode),
        )
        .unwrap();
        let dir = home.path().join("config/knock");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.toml"),
            "[profiles.home]\nhost = \"127.0.0.2\"\n[profiles.home.sequences]\n\
             ssh = { secret_file = \"~/keys/ssh.key\", ports = \"7000-7999\" }\n\
             web = { secret_file = \"~/keys/ssh.key\", door = \"ssh\", ports = \"7000-7999\", sealed = false }\n",
        )
        .unwrap();
        Home(home)
    }

    fn knock(&self, skew: &str, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_knock"))
            .args(args)
            .env_clear()
            .env("HOME", self.0.path())
            .env("XDG_CONFIG_HOME", self.0.path().join("config"))
            .env("KNOCK_TEST_CLOCK_SKEW", skew)
            .output()
            .unwrap()
    }

    fn ok(&self, skew: &str, args: &[&str]) -> String {
        let out = self.knock(skew, args);
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    }
}

/// The ports of the steps around `now + skew` (a step may roll over while the test runs).
fn candidates(skew: i64) -> Vec<String> {
    let key: Key = KEY.parse().unwrap();
    let ports: PortSet = "7000-7999".parse().unwrap();
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let step = Step::at(now.saturating_add_signed(skew), 30.try_into().unwrap());
    (-1..=1)
        .map(|d| {
            let p = sequence(&key, "ssh", step.offset(d), 3, &ports);
            p.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join(",")
        })
        .collect()
}

fn shown_ports(out: &str) -> String {
    let line = out.lines().next().unwrap();
    line.strip_prefix("ports: ")
        .and_then(|l| l.strip_suffix(" (tcp)"))
        .unwrap_or_else(|| panic!("{out}"))
        .to_owned()
}

#[test]
fn show_prints_the_current_ports_and_the_seconds_left() {
    let home = Home::new(0o600);
    let out = home.ok("0", &["--show", "home", "ssh"]);
    assert!(candidates(0)[..].contains(&shown_ports(&out)), "{out}");
    let left: u64 = out
        .lines()
        .nth(1)
        .unwrap()
        .strip_prefix("seconds left: ")
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=30).contains(&left));
    assert!(
        out.contains("sealed: only knock with raw sockets opens this door"),
        "{out}"
    );
    let unsealed = home.ok("0", &["--show", "home", "web"]);
    assert!(
        unsealed.contains("by hand: telnet 127.0.0.2 "),
        "{unsealed}"
    );
}

#[test]
fn the_test_clock_skew_shifts_the_step() {
    let home = Home::new(0o600);
    let out = home.ok("-90", &["--show", "home", "ssh"]);
    assert!(candidates(-90)[..].contains(&shown_ports(&out)), "{out}");
    assert!(!candidates(0)[1..2].contains(&shown_ports(&out)), "{out}");
}

#[test]
fn list_and_dry_run_know_rotating_sequences() {
    let home = Home::new(0o600);
    let list = home.ok("0", &["--list"]);
    assert!(
        list.contains("ssh  rotating: 3 knocks in 7000-7999 every 30 s, sealed"),
        "{list}"
    );
    let dry = home.ok("0", &["-n", "home", "web"]);
    let hit: Vec<String> = dry
        .lines()
        .filter_map(|l| l.strip_prefix("would hit tcp 127.0.0.2:"))
        .map(str::to_owned)
        .collect();
    assert!(candidates(0)[..].contains(&hit.join(",")), "{dry}");
}

#[test]
fn a_key_file_others_can_read_is_refused() {
    let home = Home::new(0o644);
    let out = home.knock("0", &["--show", "home", "ssh"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("is mode 0644") && stderr.contains("chmod 600"),
        "{stderr}"
    );
}

//! The command line end to end, without sending: `--list`, `--dry-run` and every error. The
//! binary runs with its environment cleared and a temp home, so the user's config never leaks
//! in. Hosts are loopback literals: no DNS query, and should a bug send anyway, nothing leaves
//! the machine. Sending for real is tested across network namespaces in tests/e2e/client.rs.

use std::path::Path;
use std::process::{Command, Output};

const CONFIG: &str = r#"
[profiles.home]
host = "127.0.0.2"
hits = 3
delay_ms = 200

[profiles.home.sequences]
wake-laptop = "4,2012,3"
enable-vpn = { sequence = "2,1,2010:udp", hits = 1, delay_ms = 500 }

[profiles.office]
host = "::1"
protocol = "udp"
[profiles.office.sequences]
door = "7000,8000:tcp"
"#;

struct Home(tempfile::TempDir);

impl Home {
    /// A temp home whose XDG config dir holds `config`, or nothing.
    fn new(config: Option<&str>) -> Home {
        let home = tempfile::tempdir().expect("temp home");
        if let Some(text) = config {
            let dir = home.path().join("config/knock");
            std::fs::create_dir_all(&dir).expect("config dir");
            std::fs::write(dir.join("config.toml"), text).expect("write config");
        }
        Home(home)
    }

    fn path(&self) -> &Path {
        self.0.path()
    }

    fn knock(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_knock"))
            .args(args)
            .env_clear()
            .env("HOME", self.path())
            .env("XDG_CONFIG_HOME", self.path().join("config"))
            .output()
            .expect("run knock")
    }

    /// Runs, expects success, returns stdout.
    fn ok(&self, args: &[&str]) -> String {
        let out = self.knock(args);
        assert!(
            out.status.success(),
            "knock {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).expect("utf-8 output")
    }

    /// Runs, expects exit status 2 and one error message, returns stderr.
    fn fails(&self, args: &[&str]) -> String {
        let out = self.knock(args);
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(out.status.code(), Some(2), "knock {args:?}: {stderr}");
        assert!(
            !stderr.contains("panicked"),
            "knock {args:?} panicked: {stderr}"
        );
        assert!(out.stdout.is_empty(), "knock {args:?} printed to stdout");
        stderr
    }
}

/// The `would hit` lines of a dry run.
fn hits(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("would hit "))
        .collect()
}

#[test]
fn list_shows_profiles_and_sequences() {
    let home = Home::new(Some(CONFIG));
    assert_eq!(
        home.ok(&["--list"]),
        "home: 127.0.0.2 (3 hits per port, 200 ms apart)\n\
         \x20 enable-vpn   2,1,2010:udp (500 ms apart)\n\
         \x20 wake-laptop  4,2012,3\n\
         office: ::1 (udp by default)\n\
         \x20 door  7000,8000:tcp\n"
    );
}

#[test]
fn profile_mode_dry_run_repeats_each_port() {
    let home = Home::new(Some(CONFIG));
    let out = home.ok(&["--dry-run", "home", "wake-laptop"]);
    assert!(
        out.starts_with(
            "dry run, nothing is sent: 9 hits to 127.0.0.2 (127.0.0.2), 200 ms apart\n"
        ),
        "{out}"
    );
    let mut want = Vec::new();
    for port in [4, 2012, 3] {
        want.extend(std::iter::repeat_n(format!("tcp 127.0.0.2:{port}"), 3));
    }
    assert_eq!(hits(&out), want);
}

#[test]
fn dry_run_shows_the_delay_between_the_hits_of_one_port() {
    let home = Home::new(Some(CONFIG));
    let out = home.ok(&["-n", "home", "wake-laptop"]);
    assert!(
        out.contains("\neach port: 3 hits, one connection attempt sent again 200 ms apart\n"),
        "by default the delay between hits: {out}"
    );
    let out = home.ok(&["-n", "--hit-delay", "1000", "home", "wake-laptop"]);
    assert!(
        out.contains("\neach port: 3 hits, one connection attempt sent again 1000 ms apart\n"),
        "{out}"
    );
    let out = home.ok(&["-n", "--hits", "2", "-d", "0", "127.0.0.2", "7000"]);
    assert!(
        out.contains("each port: 2 hits, one connection attempt sent again 20 ms apart"),
        "at least 20 ms: {out}"
    );
    let out = home.ok(&["-n", "127.0.0.2", "7000"]);
    assert!(!out.contains("each port"), "one hit per port: {out}");
    for bad in ["--hit-delay=19", "--hit-delay=10001", "--hit-delay=-1"] {
        let err = home.fails(&["-n", bad, "127.0.0.2", "7000"]);
        assert!(err.contains("--hit-delay"), "{err}");
    }
}

#[test]
fn sequence_and_command_line_overrides() {
    let home = Home::new(Some(CONFIG));
    let out = home.ok(&["-n", "home", "enable-vpn"]);
    assert!(
        out.contains("3 hits to 127.0.0.2 (127.0.0.2), 500 ms apart"),
        "{out}"
    );
    assert_eq!(
        hits(&out),
        ["tcp 127.0.0.2:2", "tcp 127.0.0.2:1", "udp 127.0.0.2:2010"]
    );
    let out = home.ok(&["-n", "-u", "--hits", "2", "-d", "0", "home", "enable-vpn"]);
    assert!(
        out.starts_with("dry run, nothing is sent: 6 hits to 127.0.0.2 (127.0.0.2)\n"),
        "{out}"
    );
    assert_eq!(
        hits(&out)[..3],
        ["udp 127.0.0.2:2", "udp 127.0.0.2:2", "udp 127.0.0.2:1"]
    );
    // The profile's protocol is the default for bare ports; IPv6 addresses print in brackets.
    let out = home.ok(&["-n", "office", "door"]);
    assert_eq!(hits(&out), ["udp [::1]:7000", "tcp [::1]:8000"]);
}

#[test]
fn knockd_mode_needs_no_config() {
    let home = Home::new(None);
    let out = home.ok(&["-n", "127.0.0.2", "7000", "8000:udp", "9000:TCP"]);
    assert_eq!(
        hits(&out),
        [
            "tcp 127.0.0.2:7000",
            "udp 127.0.0.2:8000",
            "tcp 127.0.0.2:9000"
        ]
    );
    let out = home.ok(&["-n", "-6", "[::1]", "07"]);
    assert_eq!(hits(&out), ["tcp [::1]:7"]);
}

#[test]
fn a_profile_name_wins_over_a_host_of_that_name() {
    let home = Home::new(Some(CONFIG));
    let stderr = home.fails(&["home", "7000"]);
    assert!(
        stderr.contains("profile `home` has no sequence `7000`"),
        "{stderr}"
    );
}

#[test]
fn unknown_profile_or_sequence_lists_what_exists() {
    let home = Home::new(Some(CONFIG));
    let stderr = home.fails(&["hmoe", "wake-laptop"]);
    assert!(
        stderr.starts_with("knock: unknown profile `hmoe`: the profiles are `home` and `office`; did you mean `home`?"),
        "{stderr}"
    );
    let stderr = home.fails(&["home", "wake-lapton"]);
    assert!(
        stderr.contains(
            "its sequences are `enable-vpn` and `wake-laptop`; did you mean `wake-laptop`?"
        ),
        "{stderr}"
    );
    let stderr = home.fails(&["home"]);
    assert!(stderr.contains("needs a sequence name"), "{stderr}");
}

#[test]
fn missing_config_says_where_it_looked_and_shows_a_sample() {
    let home = Home::new(None);
    let stderr = home.fails(&["home", "wake-laptop"]);
    let path = home.path().join("config/knock/config.toml");
    assert!(
        stderr.contains(&format!("no config file at {}", path.display())),
        "{stderr}"
    );
    assert!(stderr.contains("[profiles.home.sequences]"), "{stderr}");
    let stderr = home.fails(&["--list"]);
    assert!(stderr.contains(&path.display().to_string()), "{stderr}");
    let stderr = home.fails(&["--config", "/nonexistent/k.toml", "127.0.0.1", "1"]);
    assert!(
        stderr.contains("/nonexistent/k.toml (from --config) does not exist"),
        "{stderr}"
    );
}

#[test]
fn bad_ports_protocols_and_configs_are_errors() {
    let home = Home::new(Some(CONFIG));
    let stderr = home.fails(&["127.0.0.2", "7000", "70000"]);
    assert!(
        stderr.contains("bad knock `70000`: port `70000` is out of range"),
        "{stderr}"
    );
    let stderr = home.fails(&["127.0.0.2", "7000:icmp"]);
    assert!(stderr.contains("unknown protocol `icmp`"), "{stderr}");
    let stderr = home.fails(&["-4", "::1", "1"]);
    assert!(stderr.contains("no IPv4 address"), "{stderr}");
    let stderr = home.fails(&["--hits", "100", "home", "wake-laptop"]);
    assert!(stderr.contains("at most 255"), "{stderr}");

    let broken = Home::new(Some(
        "[profiles.a]\nhost = \"h\"\nhits = 0\n[profiles.a.sequences]\nx = \"1,0\"\n",
    ));
    let stderr = broken.fails(&["a", "x"]);
    assert!(stderr.contains("line 3: profile `a`: hits = 0"), "{stderr}");
    assert!(
        stderr.contains("line 5: profile `a`, sequence `x`: port `0` is out of range"),
        "{stderr}"
    );
}

#[test]
fn usage_errors_exit_2() {
    let home = Home::new(None);
    let out = home.knock(&["-4", "-6", "h", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = home.knock(&["--hits", "0", "h", "1"]);
    assert_eq!(out.status.code(), Some(2));
}

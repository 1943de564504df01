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
        out.contains("each port: 2 hits, one connection attempt sent again 0 ms apart"),
        "no delay, no pause: IPv4 hits of one port differ in IP ID or source port: {out}"
    );
    // Raw IPv6 SYNs of one port are byte-identical: unless a hit delay is set, they keep
    // the 20 ms a server dropping copies of one packet needs to count each (as root only).
    let out = home.ok(&["-n", "--hits", "2", "::1", "7000"]);
    let least = if out.contains("raw SYNs") { 20 } else { 0 };
    assert!(
        out.contains(&format!(
            "each port: 2 hits, one connection attempt sent again {least} ms apart"
        )),
        "{out}"
    );
    let out = home.ok(&["-n", "--hits", "2", "--hit-delay", "0", "::1", "7000"]);
    assert!(
        out.contains("each port: 2 hits, one connection attempt sent again 0 ms apart"),
        "as set: {out}"
    );
    let out = home.ok(&["-n", "127.0.0.2", "7000"]);
    assert!(!out.contains("each port"), "one hit per port: {out}");
    for bad in ["--hit-delay=10001", "--hit-delay=-1"] {
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
    let stderr = home.fails(&["--config", "/nonexistent/k.toml", "home", "wake-laptop"]);
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
}

/// Runs `knock --config bad/NAME --list` in tests/data and compares its stderr with
/// `bad/NAME.expected` (`KNOCK_BLESS=1` rewrites it).
fn check_expected(name: &str) {
    let data = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data");
    let out = Command::new(env!("CARGO_BIN_EXE_knock"))
        .args(["--config", &format!("bad/{name}"), "--list"])
        .current_dir(&data)
        .env_clear()
        .output()
        .expect("run knock");
    assert_eq!(out.status.code(), Some(2), "bad/{name} accepted");
    assert!(out.stdout.is_empty());
    let err = String::from_utf8(out.stderr).expect("utf-8 errors");
    let expected_path = data.join(format!("bad/{name}.expected"));
    if std::env::var_os("KNOCK_BLESS").is_some() {
        std::fs::write(&expected_path, &err).expect("write expected");
        return;
    }
    let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
    assert!(
        err == expected,
        "errors for bad/{name} changed (KNOCK_BLESS=1 rewrites the .expected file):\n{err}"
    );
}

#[test]
fn a_broken_config_reports_every_error_in_line_order() {
    check_expected("every-error.toml");
}

#[test]
fn broken_toml_reports_only_its_syntax_errors() {
    check_expected("syntax.toml");
}

/// Runs a dry run that must succeed; returns (hits, stderr).
fn dry_run_ok(home: &Home, args: &[&str]) -> (Vec<String>, String) {
    let out = home.knock(args);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "knock {args:?}: {stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    (
        hits(&stdout).into_iter().map(str::to_owned).collect(),
        stderr,
    )
}

#[test]
fn knockd_mode_works_whatever_state_the_config_is_in() {
    let args = ["-n", "127.0.0.2", "7000", "8000:udp"];
    let want = ["tcp 127.0.0.2:7000", "udp 127.0.0.2:8000"];

    let broken = Home::new(Some("[profiles.a]\nhots = 1\n"));
    let (hits, stderr) = dry_run_ok(&broken, &args);
    assert_eq!(hits, want);
    assert_eq!(
        stderr.lines().count(),
        1,
        "one warning line at most: {stderr}"
    );
    assert!(stderr.contains("warning: profiles not read"), "{stderr}");
    // The same config stops profile mode, with its errors.
    let stderr = broken.fails(&["a", "x"]);
    assert!(
        stderr.contains("config.toml:2:1: unknown key `hots`, did you mean `host`?"),
        "{stderr}"
    );

    let unreadable = Home::new(None);
    std::fs::create_dir_all(unreadable.path().join("config/knock/config.toml")).unwrap();
    assert_eq!(dry_run_ok(&unreadable, &args).0, want);
    let stderr = unreadable.fails(&["--list"]);
    assert!(stderr.contains("cannot read the config"), "{stderr}");

    let not_utf8 = Home::new(None);
    let dir = not_utf8.path().join("config/knock");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("config.toml"), b"[profiles.\xff]\n").unwrap();
    assert_eq!(dry_run_ok(&not_utf8, &args).0, want);
    let stderr = not_utf8.fails(&["a", "b"]);
    assert!(stderr.contains("invalid UTF-8"), "{stderr}");

    let explicit = [
        "-n",
        "--config",
        "/nonexistent/k.toml",
        "127.0.0.2",
        "7000",
        "8000:udp",
    ];
    assert_eq!(dry_run_ok(&Home::new(None), &explicit).0, want);
}

fn chmod(path: &Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
}

/// As ssh refuses a `~/.ssh/config` others can write: they could send the knocks (or
/// `--proxy`) elsewhere. Every run that reads the config stops, knockd mode too.
#[test]
fn a_profile_others_can_write_is_refused_with_the_fix() {
    let home = Home::new(Some(CONFIG));
    let dir = home.path().join("config/knock");
    let file = dir.join("config.toml");
    let runs: [&[&str]; 3] = [
        &["--list"],
        &["-n", "home", "wake-laptop"],
        &["-n", "127.0.0.2", "7000"],
    ];
    for mode in [0o666, 0o620] {
        chmod(&file, mode);
        for args in runs {
            let stderr = home.fails(args);
            assert!(
                stderr.starts_with("knock: bad owner or permissions on the config ")
                    && stderr.contains(&format!("{} is mode {mode:04o}", file.display()))
                    && stderr.contains(&format!("run `chmod go-w {}`", file.display())),
                "knock {args:?}: {stderr}"
            );
        }
    }
    // Readable by all is fine, as for ssh.
    chmod(&file, 0o644);
    assert!(home.ok(&["--list"]).contains("wake-laptop"));
    chmod(&dir, 0o777);
    let stderr = home.fails(&["--list"]);
    assert!(
        stderr.contains(&format!("{}, a directory above", dir.display()))
            && stderr.contains(&format!("run `chmod go-w {}`", dir.display())),
        "{stderr}"
    );
    chmod(&dir, 0o755);
    let other = home.path().join("other.toml");
    std::fs::write(&other, CONFIG).expect("write config");
    chmod(&other, 0o666);
    let stderr = home.fails(&["--config", other.to_str().unwrap(), "--list"]);
    assert!(stderr.contains("(from --config)"), "{stderr}");
}

#[test]
fn a_profile_of_another_user_is_refused() {
    if !knock_e2e::root_or_skip() {
        return;
    }
    let home = Home::new(Some(CONFIG));
    let file = home.path().join("config/knock/config.toml");
    std::os::unix::fs::chown(&file, Some(65534), None).expect("chown");
    let stderr = home.fails(&["-n", "home", "wake-laptop"]);
    assert!(
        stderr.contains("(uid 65534), not by root")
            && stderr.contains(&format!("run `chown root {}`", file.display())),
        "{stderr}"
    );
}

#[test]
fn comma_separated_ports_get_the_corrected_command() {
    let home = Home::new(None);
    let stderr = home.fails(&["-u", "127.0.0.2", "7000,8000:tcp,9000"]);
    assert_eq!(
        stderr,
        "knock: `7000,8000:tcp,9000` is not a port: separate the ports with spaces, one port \
         per word:\n  knock -u 127.0.0.2 7000 8000:tcp 9000\n"
    );
    // Not a list of ports: the plain error.
    let stderr = home.fails(&["127.0.0.2", "7000,abc"]);
    assert!(stderr.contains("bad knock `7000,abc`"), "{stderr}");
}

#[test]
fn numbers_on_the_command_line_are_bounded() {
    let home = Home::new(None);
    let stderr = home.fails(&["-d", "9223372036854775807", "127.0.0.2", "1"]);
    assert!(stderr.contains("0..=3600000"), "{stderr}");
}

#[test]
fn usage_errors_exit_2() {
    let home = Home::new(None);
    let out = home.knock(&["-4", "-6", "h", "1"]);
    assert_eq!(out.status.code(), Some(2));
    let out = home.knock(&["--hits", "0", "h", "1"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn proxy_knocks_then_relays_standard_input_and_output() {
    use std::io::{Read as _, Write as _};
    use std::process::Stdio;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("listen");
    let port = listener.local_addr().expect("address").port();
    let echo = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("accept");
        let mut got = Vec::new();
        s.read_to_end(&mut got).expect("read");
        s.write_all(b"echo: ").and_then(|()| s.write_all(&got))
    });
    let home = Home::new(None);
    let proxy = format!("127.0.0.1:{port}");
    // A UDP knock to the discard port: the knock itself needs no listener.
    let mut child = Command::new(env!("CARGO_BIN_EXE_knock"))
        .args(["-u", "127.0.0.2", "9", "--proxy", &proxy, "--wait", "5"])
        .env_clear()
        .env("HOME", home.path())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run knock");
    let mut stdin = child.stdin.take().expect("stdin");
    stdin.write_all(b"over the door\n").expect("write");
    drop(stdin);
    let out = child.wait_with_output().expect("wait");
    echo.join().expect("echo thread").expect("echo");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "echo: over the door\n"
    );
}

#[test]
fn proxy_gives_up_after_wait_and_checks_its_target() {
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let home = Home::new(None);
    let proxy = format!("127.0.0.1:{closed}");
    let stderr = home.fails(&["-u", "127.0.0.2", "9", "--proxy", &proxy, "--wait", "1"]);
    assert!(
        stderr.contains(&format!(
            "could not connect to 127.0.0.1:{closed} within 1 s"
        )),
        "{stderr}"
    );
    let stderr = home.fails(&["-u", "127.0.0.2", "9", "--proxy", "127.0.0.1"]);
    assert!(stderr.contains("has no port"), "{stderr}");
    let stderr = home.fails(&["-n", "127.0.0.2", "9", "--proxy", "127.0.0.1:22"]);
    assert!(stderr.contains("cannot be used with"), "{stderr}");
}

/// A closed standard output is an error the knock outlives, not a signal that kills it:
/// `knock --list | head -0` exits 0, and `-v` lines into a closed pipe do not stop a knock
/// half-way (SIGPIPE is ignored, as std's runtime does; on glibc knock starts without it).
#[test]
fn a_closed_standard_output_does_not_kill_knock() {
    let home = Home::new(Some(CONFIG));
    for args in [
        &["--list"][..],
        &["-v", "-u", "127.0.0.2", "7000", "7001"][..],
    ] {
        let (reader, writer) = std::io::pipe().expect("pipe");
        drop(reader);
        let status = Command::new(env!("CARGO_BIN_EXE_knock"))
            .args(args)
            .env_clear()
            .env("HOME", home.path())
            .env("XDG_CONFIG_HOME", home.path().join("config"))
            .stdout(writer)
            .status()
            .expect("run knock");
        assert_eq!(status.code(), Some(0), "knock {args:?}: {status}");
    }
}

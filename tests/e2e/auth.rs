//! Authenticated knocks (issue 12) across the link: rotating doors, sealed SYNs from our
//! `knock`, what a sniffer can do with a captured knock (tcpdump, then a byte-for-byte replay
//! from the same and from another source, in the same step and the next: nothing), fresh knocks
//! by the key holder (they open, twice in one step too), clock skew, an unprivileged client,
//! a restart between a knock and its replay, a door added on a rotating door's port after
//! pairing, and a SIGHUP between a client's knocks.

use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Output;

use knock_e2e::{
    CLIENT_V4, Knock, Link, OTHER_V4, PATIENCE, RunningServer, SERVER_V4, Server, bin, read,
    scratch, wait_until, write,
};

/// A server with three rotating doors and a canary, and a client paired with them.
struct Setup {
    link: Link,
    dir: tempfile::TempDir,
    conf: PathBuf,
    server: RunningServer,
    /// XDG_CONFIG_HOME (and HOME) of the client, run as root.
    xdg: PathBuf,
    /// The same for the client run as nobody (its files are nobody's).
    xdg_nobody: PathBuf,
}

/// `ssh`: sealed, 30-second steps; `web`: unsealed; `quick`: sealed, 5-second steps (for the
/// tests that need the next step soon). Each logs OPEN SESAME when it opens.
fn server_toml() -> String {
    let door = |name: &str, extra: &str| {
        format!(
            "[doors.{name}]\nsecret_file = \"{name}.key\"\nseq_timeout = 10\n{extra}\
             start_command = \"/bin/true\"\n\n"
        )
    };
    format!(
        "{}{}{}[doors.canary]\nsequence = \"60001,60002\"\n",
        door("ssh", ""),
        door("web", "sealed = false\n"),
        door("quick", "step_seconds = 5\n"),
    )
}

impl Setup {
    fn new() -> Option<Setup> {
        let link = Link::up()?;
        let dir = scratch();
        fs::set_permissions(dir.path(), fs::Permissions::from_mode(0o755)).unwrap();
        for door in ["ssh", "web", "quick"] {
            let key = dir.path().join(format!("{door}.key"));
            let out = std::process::Command::new(bin("knock-server"))
                .arg("keygen")
                .arg(&key)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let conf = write(dir.path(), "server.toml", &server_toml());
        let server = Server::new(&link.server)
            .dir(dir.path())
            .config(&conf)
            .args(["-v"])
            .start();
        let xdg = pair_client(dir.path(), &conf, "client", None);
        let xdg_nobody = pair_client(dir.path(), &conf, "client-nobody", Some("nobody:nogroup"));
        Some(Setup {
            link,
            dir,
            conf,
            server,
            xdg,
            xdg_nobody,
        })
    }

    /// Our knock in the client namespace (as nobody with `unprivileged`), its clock shifted by
    /// `skew` seconds.
    fn knock(&self, unprivileged: bool, skew: i64, args: &[&str]) -> Output {
        self.knock_command(unprivileged, skew, args).output()
    }

    /// The run [`Setup::knock`] makes.
    fn knock_command(&self, unprivileged: bool, skew: i64, args: &[&str]) -> Knock<'_> {
        let xdg = if unprivileged {
            &self.xdg_nobody
        } else {
            &self.xdg
        };
        Knock::ours(&self.link.client)
            .unprivileged(unprivileged)
            .config_home(xdg)
            .env("KNOCK_TEST_CLOCK_SKEW", skew.to_string())
            .args(args)
    }

    fn knock_ok(&self, skew: i64, door: &str) {
        let out = self.knock(false, skew, &["home", door]);
        assert!(
            out.status.success(),
            "knock home {door}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `knock --show home DOOR`: the current ports.
    fn ports(&self, door: &str) -> Vec<String> {
        self.shown_ports(false, door)
    }

    /// [`Setup::ports`] with nobody's profile.
    fn nobody_ports(&self, door: &str) -> Vec<String> {
        self.shown_ports(true, door)
    }

    fn shown_ports(&self, unprivileged: bool, door: &str) -> Vec<String> {
        let out = self.knock(unprivileged, 0, &["--show", "home", door]);
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        let line = text.lines().next().unwrap_or_default();
        line.strip_prefix("ports: ")
            .and_then(|l| l.strip_suffix(" (tcp)"))
            .unwrap_or_else(|| {
                panic!(
                    "knock --show: {text}{}",
                    String::from_utf8_lossy(&out.stderr)
                )
            })
            .split(',')
            .map(str::to_owned)
            .collect()
    }

    fn opened(&self, door: &str) -> usize {
        self.server
            .log()
            .matches(&format!(": {door}: OPEN SESAME"))
            .count()
    }

    /// Waits until `door` has opened `n` times; on a timeout the panic shows the `-v` output
    /// too (why a knock did not count).
    fn wait_opened(&mut self, door: &str, n: usize) {
        let deadline = std::time::Instant::now() + PATIENCE;
        while self.opened(door) < n {
            self.server.daemon.assert_running();
            assert!(
                std::time::Instant::now() < deadline,
                "timed out waiting for {door} to open {n} times:\n{}\n--- -v output:\n{}",
                self.server.log(),
                self.verbose_log()
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }

    /// Knocks the canary with Debian's knock and waits for it: every earlier hit has then
    /// been handled, so what has not opened by now never will.
    fn canary(&mut self) {
        let n = self.opened("canary") + 1;
        Knock::debian(&self.link.client)
            .args([SERVER_V4, "60001", "60002"])
            .ok();
        self.wait_opened("canary", n);
    }

    /// `knock-server status --json`, parsed.
    fn status_json(&self) -> serde_json::Value {
        let out = self.operator(&["status", "--json"]);
        serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {out:?}"))
    }

    /// `knock-server status`, the table.
    fn status_text(&self) -> String {
        String::from_utf8_lossy(&self.operator(&["status"]).stdout).into_owned()
    }

    fn operator(&self, args: &[&str]) -> Output {
        let out = self
            .link
            .server
            .command(bin("knock-server"))
            .args(args)
            .arg("--runtime-dir")
            .arg(self.dir.path().join("run"))
            .output()
            .unwrap();
        assert!(out.status.success(), "knock-server {args:?}: {out:?}");
        out
    }

    /// The daemon's `-v` output (stderr) so far.
    fn verbose_log(&self) -> String {
        read(&self.server.daemon.output)
    }

    /// Captures, on the client's eth0, the SYNs of one knock of `knocks` ports, sent by
    /// `trigger`; returns the capture file.
    fn capture(&self, name: &str, knocks: usize, trigger: impl FnOnce()) -> PathBuf {
        let file = self.dir.path().join(format!("{name}.pcap"));
        let filter = format!("src host {CLIENT_V4} and dst host {SERVER_V4} and tcp[13] & 2 != 0");
        let count = knocks.to_string();
        let path = file.display().to_string();
        let args = ["-i", "eth0", "-n", "-U", "-c", &count, "-w", &path, &filter];
        let out = self.dir.path().join(format!("{name}.tcpdump"));
        let mut tcpdump = self.link.client.spawn("tcpdump", args, &out);
        tcpdump.wait_output("listening on eth0");
        trigger();
        assert!(tcpdump.wait_exit().success(), "{}", read(&out));
        file
    }

    /// Sends the captured frames again, byte for byte, or with `source` as the IPv4 source.
    fn replay(&self, capture: &Path, source: Option<&str>) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("e2e/replay.py");
        let mut args = vec![
            script.display().to_string(),
            capture.display().to_string(),
            "eth0".into(),
        ];
        args.extend(source.map(str::to_owned));
        let out = self.link.client.ok("python3", &args);
        assert!(String::from_utf8_lossy(&out.stdout).contains("replayed"));
    }
}

/// Pairs a client with every rotating door the way a user does: `knock-server pair` prints
/// the key and the profile line; the key goes into a file only its owner can read. The
/// client's files go to `dir/name`, owned by `owner` (`chown`'s `USER:GROUP`; `None`: root)
/// as the client refuses files another user could change.
fn pair_client(dir: &Path, conf: &Path, name: &str, owner: Option<&str>) -> PathBuf {
    let xdg = dir.join(name);
    let keys = xdg.join("keys");
    fs::create_dir_all(xdg.join("knock")).unwrap();
    fs::create_dir_all(&keys).unwrap();
    let mut profile =
        format!("[profiles.home]\nhost = \"{SERVER_V4}\"\n[profiles.home.sequences]\n");
    for door in ["ssh", "web", "quick"] {
        let key_file = keys.join(format!("{door}.key"));
        let out = std::process::Command::new(bin("knock-server"))
            .args(["pair", "-c"])
            .arg(conf)
            .arg(door)
            .arg("--key-path")
            .arg(&key_file)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let text = String::from_utf8(out.stdout).unwrap();
        let key = text
            .split("echo '")
            .nth(1)
            .and_then(|r| r.split('\'').next())
            .unwrap();
        fs::write(&key_file, format!("{key}\n")).unwrap();
        fs::set_permissions(&key_file, fs::Permissions::from_mode(0o600)).unwrap();
        let line = text.lines().find(|l| !l.starts_with('#')).unwrap();
        profile.push_str(line);
        profile.push('\n');
    }
    write(&xdg.join("knock"), "config.toml", &profile);
    if let Some(owner) = owner {
        knock_e2e::io_ok(
            std::process::Command::new("chown")
                .args(["-R", owner])
                .arg(&xdg)
                .status(),
            "chown the client's files",
        );
    }
    xdg
}

#[test]
fn a_sealed_knock_opens_and_the_same_ports_with_other_sequence_numbers_do_not() {
    let Some(mut s) = Setup::new() else { return };
    s.knock_ok(0, "ssh");
    s.wait_opened("ssh", 1);
    assert!(
        s.server
            .log()
            .contains(&format!("{CLIENT_V4}: ssh: Stage 3"))
    );

    // Debian's knock on the very same ports: the kernel picks the sequence numbers.
    let ports = s.ports("ssh");
    let mut args = vec![SERVER_V4.to_owned()];
    args.extend(ports.iter().cloned());
    Knock::debian(&s.link.client).args(&args).ok();
    s.canary();
    assert_eq!(s.opened("ssh"), 1, "{}", s.server.log());
    if s.ports("ssh") == ports {
        // Still the same step, so the ports were the door's: -v says why they did not count.
        assert!(
            s.verbose_log().contains("ssh: knock on port"),
            "{}",
            s.verbose_log()
        );
        assert!(
            s.verbose_log().contains("wrong seal"),
            "{}",
            s.verbose_log()
        );
        // And status counts them, per door and by reason; the knock that opened is no
        // attempt in progress any more.
        let json = s.status_json();
        let ssh = &json["doors"][0];
        assert_eq!(ssh["name"], "ssh", "{json}");
        assert_eq!(ssh["enabled"], true, "{json}");
        assert_eq!(ssh["attempts"], 0, "{json}");
        let wrong = ssh["refused"]["wrong_seal"].as_u64().unwrap_or(0);
        assert!(wrong >= ports.len() as u64, "{json}");
        assert!(json["doors"][3]["refused"].is_null(), "canary: {json}");
        let checks = json["counters"]["seal_checks"].as_u64().unwrap_or(0);
        assert!(checks >= 3 + wrong, "{json}");
        let text = s.status_text();
        assert!(
            text.contains(&format!("refused since start: {wrong} wrong seal")),
            "{text}"
        );
    }
}

#[test]
fn a_captured_knock_replayed_opens_nothing_but_fresh_knocks_do() {
    let Some(mut s) = Setup::new() else { return };
    s.link
        .client
        .add_address("eth0", &format!("{OTHER_V4}/24"), &[]);
    let captured_ports = s.ports("quick");
    let capture = s.capture("quick", 3, || s.knock_ok(0, "quick"));
    s.wait_opened("quick", 1);

    // The same step: from the knocker's address, and from another.
    s.replay(&capture, None);
    s.replay(&capture, Some(OTHER_V4));
    s.canary();
    assert_eq!(s.opened("quick"), 1, "{}", s.server.log());
    assert!(
        s.server.log().contains("quick: replayed knock refused"),
        "{}",
        s.server.log()
    );

    // The next step (5 s), where the captured one is still accepted as one step behind.
    wait_until("the next step", PATIENCE, || {
        s.ports("quick") != captured_ports
    });
    s.replay(&capture, None);
    s.replay(&capture, Some(OTHER_V4));
    s.canary();
    assert_eq!(s.opened("quick"), 1, "{}", s.server.log());

    // The key holder knocks again, twice in a row (fresh nonces): both open.
    s.knock_ok(0, "quick");
    s.wait_opened("quick", 2);
    s.knock_ok(0, "quick");
    s.wait_opened("quick", 3);
    // Every filter the steps brought was taken by the kernel (libpcap says so when the kernel
    // refuses one and then filters in user space).
    let out = s.verbose_log();
    assert!(!out.contains("Kernel filter failed"), "{out}");
}

#[test]
fn a_restart_between_a_knock_and_its_replay_still_refuses_the_replay() {
    let Some(mut s) = Setup::new() else { return };
    let capture = s.capture("ssh", 3, || s.knock_ok(0, "ssh"));
    s.wait_opened("ssh", 1);
    s.server.daemon.signal("TERM");
    assert!(s.server.daemon.wait_exit().success());
    let replay_file = s.dir.path().join("pending-stops.replay");
    assert!(
        read(&replay_file).contains("used ssh "),
        "{}",
        read(&replay_file)
    );

    s.server = Server::new(&s.link.server)
        .dir(s.dir.path())
        .config(&s.conf)
        .log_name("restarted.log")
        .args(["-v"])
        .start();
    s.replay(&capture, None);
    s.canary();
    assert_eq!(s.opened("ssh"), 0, "{}", s.server.log());
    assert!(
        s.server.log().contains("ssh: replayed knock refused"),
        "{}",
        s.server.log()
    );
}

#[test]
fn a_client_clock_one_step_off_opens_and_three_steps_off_is_reported() {
    let Some(mut s) = Setup::new() else { return };
    s.knock_ok(-30, "ssh");
    s.wait_opened("ssh", 1);
    s.knock_ok(-90, "ssh");
    s.canary();
    assert_eq!(s.opened("ssh"), 1, "{}", s.server.log());
    let log = s.server.log();
    assert!(
        log.contains("ssh: knock for another time step refused: the knocker's clock seems 3 steps (90 s) behind ours")
            || log.contains("4 steps (120 s) behind ours"),
        "{log}"
    );
}

#[test]
fn an_unprivileged_client_is_told_how_to_seal_and_opens_an_unsealed_door() {
    let Some(mut s) = Setup::new() else { return };
    let out = s.knock(true, 0, &["home", "ssh"]);
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("door `ssh` is sealed")
            && stderr.contains("sudo setcap cap_net_raw+ep $(command -v knock)"),
        "{stderr}"
    );
    let out = s.knock(true, 0, &["-v", "home", "web"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("abandoned connect()"));
    s.wait_opened("web", 1);
}

#[test]
fn a_paired_client_still_opens_after_a_door_is_added_on_its_ports_and_sighup() {
    let Some(mut s) = Setup::new() else { return };
    // `pair` gave the client the door's own ports, the canary's 60001 and 60002 included.
    let profile = read(&s.xdg.join("knock/config.toml"));
    assert!(
        profile.contains("ssh = { secret_file = ")
            && profile.contains("knocks = 3, ports = \"1024-65535\", step_seconds = 30"),
        "{profile}"
    );
    // A fixed door added on the port the client knocks first in this step (if the step turns
    // meanwhile, on a port of the step before: the door is added all the same).
    let first = s.ports("ssh")[0].clone();
    let added = format!(
        "{}[doors.added]\nsequence = \"{first},60010\"\n",
        server_toml()
    );
    write(s.dir.path(), "server.toml", &added);
    s.server.daemon.signal("HUP");
    s.server.wait_log("re-reading config file");
    // The new filter goes in just after that line: knock the new door (plain SYNs, one on
    // the rotating door's port) until it opens, which proves the reload done.
    wait_until("the added door to open", PATIENCE, || {
        Knock::debian(&s.link.client)
            .args([SERVER_V4, &first, "60010"])
            .ok();
        s.opened("added") > 0
    });
    s.knock_ok(0, "ssh");
    s.wait_opened("ssh", 1);
    // `--check` and status show the ports `pair` printed.
    let check = s
        .link
        .server
        .command(bin("knock-server"))
        .args(["--check", "-c"])
        .arg(&s.conf)
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.contains("rotating: 3 knocks in 1024-65535 every 30 s, sealed"),
        "{check}"
    );
    let json = s.status_json();
    assert_eq!(json["doors"][0]["ports"], "1024-65535", "{json}");
    assert!(json["doors"][4]["ports"].is_null(), "{json}");
    let text = s.status_text();
    assert!(text.contains("    rotating ports: 1024-65535\n"), "{text}");
}

#[test]
fn a_sighup_between_a_clients_knocks_loses_no_knock() {
    let Some(mut s) = Setup::new() else { return };
    // Three seconds between knocks: time to send SIGHUP after the first one.
    let knock = s
        .knock_command(false, 0, &["-d", "3000", "home", "ssh"])
        .command()
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    s.server.wait_log(&format!("{CLIENT_V4}: ssh: Stage 1"));
    s.server.daemon.signal("HUP");
    s.server.wait_log("re-reading config file");
    let out = knock.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    s.wait_opened("ssh", 1);
    let log = s.server.log();
    let reload = log.find("re-reading config file").unwrap();
    let second = log.find(&format!("{CLIENT_V4}: ssh: Stage 2"));
    assert!(
        second.is_some_and(|at| at > reload),
        "the reload came between the first and the second knock:\n{log}"
    );
}

#[test]
fn a_client_paired_by_an_earlier_pair_still_opens_and_the_log_says_to_pair_it_again() {
    let Some(mut s) = Setup::new() else { return };
    // A door on the lowest port, so that the set an earlier `pair` printed (`ports` less the
    // other doors' ports) gives other knocks than the door's own ports in almost every step.
    let low = format!("{}[doors.low]\nsequence = \"1024\"\n", server_toml());
    write(s.dir.path(), "server.toml", &low);
    s.server.daemon.signal("HUP");
    s.server.wait_log("re-reading config file");
    wait_until("the low door to open", PATIENCE, || {
        Knock::debian(&s.link.client).args([SERVER_V4, "1024"]).ok();
        s.opened("low") > 0
    });
    let older_set = "1025-60000,60003-65535";
    let config = s.xdg.join("knock/config.toml");
    let profile = read(&config);
    let ssh = profile.lines().find(|l| l.starts_with("ssh = ")).unwrap();
    let older = ssh.replace("\"1024-65535\"", &format!("\"{older_set}\""));
    assert_ne!(older, ssh);
    fs::write(&config, profile.replace(ssh, &older)).unwrap();
    // The ports of this step with either set (nobody's profile has the door's own).
    let (theirs, ours) = (s.ports("ssh"), s.nobody_ports("ssh"));
    s.knock_ok(0, "ssh");
    s.wait_opened("ssh", 1);
    let log = s.server.log();
    let told = log.contains(&format!(
        "ssh: Stage 3 (knocked on {older_set}, the ports an older `knock-server pair` \
         printed: pair this client again"
    ));
    // Only when the step turned in between, or the sets gave the same knocks, can it have
    // opened without a word.
    assert!(
        told || theirs == ours || s.ports("ssh") != theirs,
        "{theirs:?} / {ours:?}: {log}"
    );
    // `--check` says so too.
    let check = s
        .link
        .server
        .command(bin("knock-server"))
        .args(["--check", "-c"])
        .arg(&s.conf)
        .output()
        .unwrap();
    let check = String::from_utf8_lossy(&check.stdout);
    assert!(
        check.contains(&format!(
            "older pairings   also accepted: knocks in {older_set}"
        )),
        "{check}"
    );
}

//! knock-server as a knockd user meets it: Debian's `knock` client and telnet knock on it
//! across the link, with knockd.conf files, and the log lines, commands, signals and
//! one-time sequences behave as knockd's do (or better, where knockd falls short).

use std::fs;
use std::path::{Path, PathBuf};

use knock_e2e::{
    CANARY, CLIENT_V4, CLIENT_V6, Knock, Link, PATIENCE, SERVER_V4, SERVER_V6, Server, read,
    scratch, wait_until, write,
};

/// A door that marks the file `marker` with the knocker's address when it opens, through a
/// knockd-style shell command.
fn marker_door(name: &str, sequence: &str, extra: &str, marker: &Path) -> String {
    format!(
        "[{name}]\n    sequence = {sequence}\n    seq_timeout = 10\n{extra}    command = /bin/sh -c 'echo {name} %IP% >> {}'\n",
        marker.display()
    )
}

/// A door whose start and stop commands append `start IP` / `stop IP` (with `word` after
/// start/stop, e.g. `-long`) to `marker`, `cmd_timeout` seconds apart.
fn start_stop_door(
    name: &str,
    sequence: &str,
    cmd_timeout: u64,
    word: &str,
    marker: &Path,
) -> String {
    let m = marker.display();
    format!(
        "[{name}]\n    sequence = {sequence}\n    cmd_timeout = {cmd_timeout}\n    start_command = /bin/sh -c 'echo start{word} %IP% >> {m}'\n    stop_command = /bin/sh -c 'echo stop{word} %IP% >> {m}'\n"
    )
}

#[test]
fn debian_knock_opens_tcp_udp_mixed_and_ipv6_doors() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("opened");
    let config = format!(
        "[options]\n    logfile = {}\n\n{}{}{}",
        dir.path().join("ignored.log").display(),
        marker_door("tcp", "7000,8000,9000", "    tcpflags = syn\n", &marker),
        marker_door("udp", "7001:udp,8001:udp,9001:udp", "", &marker),
        marker_door("mixed", "7002,8002:udp,9002", "", &marker),
    );
    let conf = write(dir.path(), "knockd.conf", &config);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();

    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000", "9000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: tcp: OPEN SESAME"));
    Knock::debian(&link.client)
        .args(["-u", SERVER_V4, "7001", "8001", "9001"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: udp: OPEN SESAME"));
    Knock::debian(&link.client)
        .args([SERVER_V4, "7002", "8002:udp", "9002"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: mixed: OPEN SESAME"));
    Knock::debian(&link.client)
        .args(["-6", SERVER_V6, "7000", "8000", "9000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V6}: tcp: OPEN SESAME"));

    let log = server.log();
    for stage in 1..=3 {
        assert!(
            log.contains(&format!("{CLIENT_V4}: tcp: Stage {stage}")),
            "{log}"
        );
    }
    assert!(
        log.contains(&format!(
            "tcp: running command: /bin/sh -c 'echo tcp {CLIENT_V4} >> "
        )),
        "{log}"
    );
    // knockd's LogFile format: a local-time prefix on every line.
    assert!(
        log.lines()
            .all(|l| l.starts_with("[20") && l.as_bytes().get(17) == Some(&b']')),
        "{log}"
    );
    wait_until("all four commands to run", PATIENCE, || {
        read(&marker).lines().count() == 4
    });
    let marks = read(&marker);
    for want in [
        format!("tcp {CLIENT_V4}"),
        format!("udp {CLIENT_V4}"),
        format!("mixed {CLIENT_V4}"),
        format!("tcp {CLIENT_V6}"),
    ] {
        assert!(
            marks.lines().any(|l| l == want),
            "{want} missing from {marks}"
        );
    }
}

#[test]
fn wrong_order_protocol_flags_and_late_knocks_do_not_open() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("opened");
    let config = format!(
        "{}{}{}{CANARY}",
        marker_door("order", "7000,8000,9000", "", &marker),
        marker_door("flags", "7100,8100", "    tcpflags = syn,ack\n", &marker),
        "[late]\n    sequence = 7200,8200\n    seq_timeout = 1\n    command = /bin/true\n",
    );
    let conf = write(dir.path(), "knockd.conf", &config);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();

    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "9000", "8000"])
        .ok();
    Knock::debian(&link.client)
        .args(["-u", SERVER_V4, "7000", "8000", "9000"])
        .ok();
    // Debian's knock sends plain SYNs: a door that wants SYN+ACK ignores them.
    Knock::debian(&link.client)
        .args([SERVER_V4, "7100", "8100"])
        .ok();
    // The late knock: the first port, then the second after the attempt expired.
    Knock::debian(&link.client).args([SERVER_V4, "7200"]).ok();
    server.wait_log(&format!("{CLIENT_V4}: late: sequence timeout (stage 1)"));
    Knock::debian(&link.client).args([SERVER_V4, "8200"]).ok();
    server.canary(&link.client, 1);

    let log = server.log();
    for door in ["order", "flags", "late"] {
        assert!(
            !log.contains(&format!("{door}: OPEN SESAME")),
            "{door} opened:\n{log}"
        );
    }
    assert!(
        !log.contains("flags: Stage"),
        "ignored packets must not count:\n{log}"
    );
    assert!(read(&marker).is_empty());
}

#[test]
fn verbose_says_why_an_attempt_broke_and_the_log_file_keeps_knockd_lines() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let config =
        format!("[door]\n    sequence = 7000,8000,9000:udp\n    command = /bin/true\n{CANARY}");
    let conf = write(dir.path(), "knockd.conf", &config);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .args(["-v"])
        .start();
    // 7000 twice is a repeat (ignored); 9000 over TCP is a knock of no door; 9000 over UDP
    // breaks the attempt at stage 1. Then our knock's raw hits: one SYN sent three times.
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "7000", "9000", "9000:udp"])
        .ok();
    Knock::ours(&link.client)
        .args(["--hits", "3", SERVER_V4, "7000"])
        .env("XDG_CONFIG_HOME", dir.path())
        .ok();
    server.canary(&link.client, 1);
    let why =
        format!("{CLIENT_V4}: door: sequence broken at stage 1: expected 8000/tcp, got 9000/udp");
    server.daemon.wait_output(&why);
    let out = read(&server.daemon.output);
    assert_eq!(out.matches("sequence broken").count(), 1, "{out}");
    // Each hit with its source port and sequence number: Debian's two connection attempts
    // differ, our three raw hits are one attempt retransmitted.
    let from = format!("hit: tcp {CLIENT_V4}:");
    // `PORT seq N` of each hit to 7000.
    let to_7000: Vec<&str> = out
        .lines()
        .filter_map(|l| l.split_once(&from)?.1.split_once(" flags"))
        .filter(|(attempt, _)| attempt.contains(" -> 198.18.0.2:7000 seq "))
        .map(|(attempt, _)| attempt)
        .collect();
    assert_eq!(to_7000.len(), 5, "{out}");
    assert_ne!(to_7000[0], to_7000[1], "two connection attempts:\n{out}");
    assert_eq!(to_7000[2], to_7000[3], "a retransmission:\n{out}");
    assert_eq!(to_7000[3], to_7000[4], "a retransmission:\n{out}");
    assert_ne!(to_7000[1], to_7000[2], "{out}");
    let log = server.log();
    assert!(
        !log.contains("sequence broken"),
        "knockd's LogFile lines only:\n{log}"
    );
}

#[test]
fn telnet_with_three_syns_per_port_opens_a_door_written_for_telnet() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("opened");
    let door = marker_door(
        "telnet",
        "02,02,02,01,01,01,2010,2010,2010",
        "    tcpflags = syn\n",
        &marker,
    );
    let conf = write(dir.path(), "knockd.conf", &door);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    // As on a real host: the knock ports are firewalled, so each SYN goes unanswered and the
    // client's kernel retransmits it; two retries with exponential backoff = three SYNs.
    for port in ["2", "1", "2010"] {
        link.server.ok(
            "iptables",
            ["-A", "INPUT", "-p", "tcp", "--dport", port, "-j", "DROP"],
        );
    }
    link.client.sysctl("net.ipv4.tcp_syn_retries", "2");
    if Path::new("/proc/sys/net/ipv4/tcp_syn_linear_timeouts").exists() {
        link.client.sysctl("net.ipv4.tcp_syn_linear_timeouts", "0");
    }
    for (i, port) in ["2", "1", "2010"].into_iter().enumerate() {
        let mut telnet = Knock::telnet(&link.client).args([SERVER_V4, port]).spawn();
        let stage = 3 * (i + 1);
        wait_until(
            &format!("stage {stage} from telnet to port {port}"),
            PATIENCE,
            || {
                server.log().contains(&format!("telnet: Stage {stage}"))
                    || server.log().contains("OPEN SESAME")
            },
        );
        telnet.kill();
    }
    server.wait_log(&format!("{CLIENT_V4}: telnet: OPEN SESAME"));
    wait_until("the command", PATIENCE, || {
        read(&marker).contains(CLIENT_V4)
    });
}

#[test]
fn stop_command_runs_after_cmd_timeout_and_on_sigterm() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("marks");
    let config = format!(
        "{}{}",
        start_stop_door("short", "7000,8000", 1, "", &marker),
        start_stop_door("long", "7100,8100", 3600, "-long", &marker)
    );
    let conf = write(dir.path(), "knockd.conf", &config);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();

    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: short: command timeout"));
    wait_until("stop command", PATIENCE, || read(&marker).contains("stop "));
    assert_eq!(
        read(&marker),
        format!("start {CLIENT_V4}\nstop {CLIENT_V4}\n")
    );

    Knock::debian(&link.client)
        .args([SERVER_V4, "7100", "8100"])
        .ok();
    wait_until("long start command", PATIENCE, || {
        read(&marker).contains("start-long")
    });
    server.daemon.signal("TERM");
    let status = server.daemon.wait_exit();
    assert!(status.success(), "exit status {status}");
    assert!(
        read(&marker).ends_with(&format!("start-long {CLIENT_V4}\nstop-long {CLIENT_V4}\n")),
        "{}",
        read(&marker)
    );
    assert!(server.log().contains("shutting down"));
}

#[test]
fn sighup_reloads_a_good_config_and_keeps_the_old_one_when_broken() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("opened");
    let conf = write(
        dir.path(),
        "knockd.conf",
        &format!("{}{CANARY}", marker_door("door", "7000,8000", "", &marker)),
    );
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();

    fs::write(
        &conf,
        format!("{}{CANARY}", marker_door("door", "7500,8500", "", &marker)),
    )
    .unwrap();
    server.daemon.signal("HUP");
    server.wait_log(&format!("re-reading config file: {}", conf.display()));
    // The new capture filter is installed by the capture thread shortly after the reload:
    // knock until the new sequence opens rather than guessing when.
    wait_until("the reloaded sequence to open", PATIENCE, || {
        Knock::debian(&link.client)
            .args([SERVER_V4, "7500", "8500"])
            .ok();
        server.log().contains("door: OPEN SESAME")
    });
    // A knock of the loop may still be in flight: the canary flushes them before counting.
    server.canary(&link.client, 1);
    let opened = server.log().matches("door: OPEN SESAME").count();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.canary(&link.client, 2);
    assert_eq!(
        server.log().matches("door: OPEN SESAME").count(),
        opened,
        "old sequence still opens"
    );

    fs::write(&conf, "[door]\n    sequence = 0,70000\n").unwrap();
    server.daemon.signal("HUP");
    server.wait_log("keeping the running config");
    let opened = server.log().matches("door: OPEN SESAME").count();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7500", "8500"])
        .ok();
    wait_until("the old config to keep working", PATIENCE, || {
        server.log().matches("door: OPEN SESAME").count() > opened
    });
    server.daemon.assert_running();
}

#[test]
fn one_time_sequences_are_consumed_and_survive_a_restart() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("opened");
    let seqs = write(
        dir.path(),
        "sequences",
        " 1001,1002\n 2001,2002\n 3001,3002\n",
    );
    let config = format!(
        "[otp]\n    one_time_sequences = {}\n    command = /bin/sh -c 'echo %IP% >> {}'\n{CANARY}",
        seqs.display(),
        marker.display()
    );
    let conf = write(dir.path(), "knockd.conf", &config);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "1001", "1002"])
        .ok();
    server.wait_log("otp: OPEN SESAME");
    wait_until("the file to be updated", PATIENCE, || {
        read(&seqs) == "#1001,1002\n 2001,2002\n 3001,3002\n"
    });
    server.daemon.signal("TERM");
    server.daemon.wait_exit();
    drop(server);

    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .log_name("restarted.log")
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "1001", "1002"])
        .ok();
    server.canary(&link.client, 1);
    assert!(
        !server.log().contains("otp: OPEN SESAME"),
        "a used sequence opened again"
    );
    Knock::debian(&link.client)
        .args([SERVER_V4, "2001", "2002"])
        .ok();
    server.wait_log("otp: OPEN SESAME");
    wait_until("the second line to be used", PATIENCE, || {
        read(&seqs) == "#1001,1002\n#2001,2002\n 3001,3002\n"
    });
}

#[test]
fn a_stop_command_still_runs_after_the_daemon_is_killed() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("marks");
    let config = start_stop_door("door", "7000,8000", 2, "", &marker);
    let conf = write(dir.path(), "knockd.conf", &config);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    wait_until("start command", PATIENCE, || {
        read(&marker).contains("start ")
    });
    server.daemon.signal("KILL");
    server.daemon.wait_exit();
    drop(server);
    assert!(!read(&marker).contains("stop "), "stop ran before its time");

    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .log_name("restarted.log")
        .start();
    server.wait_log(&format!(
        "{CLIENT_V4}: door: stop command left pending by a previous run"
    ));
    wait_until("the adopted stop command", PATIENCE, || {
        read(&marker).contains("stop ")
    });
    assert_eq!(
        read(&marker),
        format!("start {CLIENT_V4}\nstop {CLIENT_V4}\n")
    );
}

#[test]
fn without_an_interface_it_listens_on_any_for_ipv4_ipv6_and_loopback() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("opened");
    let conf = write(
        dir.path(),
        "knockd.conf",
        &marker_door("door", "7000,8000:udp,9000", "", &marker),
    );
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .interface(None)
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000:udp", "9000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: door: OPEN SESAME"));
    Knock::debian(&link.client)
        .args(["-6", SERVER_V6, "7000", "8000:udp", "9000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V6}: door: OPEN SESAME"));
    // On `any` a loopback packet is seen leaving and arriving: it must count once.
    Knock::debian(&link.server)
        .args(["127.0.0.1", "7000", "8000:udp", "9000"])
        .ok();
    server.wait_log("127.0.0.1: door: OPEN SESAME");
    let log = server.log();
    assert_eq!(log.matches("127.0.0.1: door: Stage 1").count(), 1, "{log}");
    assert!(!log.contains("sequence broken"), "{log}");
}

#[test]
fn on_any_a_knock_through_a_bridge_counts_once() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("opened");
    // The server's address moves to a bridge with eth0 as its port, as on a typical router:
    // `any` sees every packet twice, on eth0 and on br0. (VLAN devices do the same; this
    // kernel has no 8021q module, so the wire tests cover tagged frames.)
    let s = &link.server;
    s.ok("ip", ["addr", "flush", "dev", "eth0"]);
    s.ok("ip", ["link", "add", "br0", "type", "bridge"]);
    s.ok("ip", ["link", "set", "eth0", "master", "br0"]);
    s.ok(
        "ip",
        ["addr", "add", &format!("{SERVER_V4}/24"), "dev", "br0"],
    );
    s.ok("ip", ["link", "set", "br0", "up"]);
    wait_until("the bridge to forward", PATIENCE, || {
        link.client
            .run("ping", ["-c1", "-W1", SERVER_V4])
            .status
            .success()
    });
    let conf = write(
        dir.path(),
        "knockd.conf",
        &marker_door("door", "7000,8000:udp,9000", "", &marker),
    );
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .interface(None)
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000:udp", "9000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: door: OPEN SESAME"));
    let log = server.log();
    assert_eq!(log.matches("door: Stage 1").count(), 1, "{log}");
    assert_eq!(log.matches("door: Stage 3").count(), 1, "{log}");
}

#[test]
fn lookup_logs_the_knockers_name_as_knockd_does() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    // `ip netns exec` bind-mounts /etc/netns/NAME/hosts over /etc/hosts for the daemon, so
    // the name comes from a hosts file, never from a real resolver.
    let etc = Path::new("/etc/netns").join(&link.server.name);
    fs::create_dir_all(&etc).unwrap();
    struct RemoveOnDrop(PathBuf);
    impl Drop for RemoveOnDrop {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }
    let _etc = RemoveOnDrop(etc.clone());
    fs::write(
        etc.join("hosts"),
        format!("127.0.0.1 localhost\n{CLIENT_V4} laptop.knock.test\n"),
    )
    .unwrap();
    let conf = write(
        dir.path(),
        "knockd.conf",
        "[door]\n    sequence = 7000,8000\n",
    );
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .args(["-l"])
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log(&format!(
        "{CLIENT_V4} (laptop.knock.test): door: OPEN SESAME"
    ));
    assert!(
        server
            .log()
            .contains(&format!("{CLIENT_V4} (laptop.knock.test): door: Stage 1"))
    );
}

#[test]
fn daemon_mode_detaches_writes_the_pid_file_and_removes_it_at_exit() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let conf = write(
        dir.path(),
        "knockd.conf",
        "[door]\n    sequence = 7000,8000\n",
    );
    let (log, pid_file) = (dir.path().join("server.log"), dir.path().join("knock.pid"));
    let out = link
        .server
        .command(knock_e2e::bin("knock-server"))
        .args(["-d", "-i", "eth0", "-c"])
        .arg(&conf)
        .arg("-g")
        .arg(&log)
        .arg("-p")
        .arg(&pid_file)
        .arg("--state-file")
        .arg(dir.path().join("pending"))
        .arg("--runtime-dir")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "the parent returns once detached: {out:?}"
    );
    wait_until("the pid file", PATIENCE, || read(&pid_file).ends_with('\n'));
    let pid = read(&pid_file).trim().to_owned();
    assert!(
        Path::new("/proc").join(&pid).exists(),
        "pid {pid} is not running"
    );
    wait_until("the daemon to listen", PATIENCE, || {
        read(&log).contains("starting up, listening on eth0")
    });
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    wait_until("the door to open", PATIENCE, || {
        read(&log).contains("door: OPEN SESAME")
    });
    link.server.ok("kill", ["-TERM", &pid]);
    wait_until("the pid file to go", PATIENCE, || !pid_file.exists());
    wait_until("the daemon to exit", PATIENCE, || {
        !Path::new("/proc").join(&pid).exists()
    });
    assert!(read(&log).contains("shutting down"));
}

#[test]
fn knocking_again_while_open_extends_the_window_instead_of_opening_twice() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("marks");
    let config = start_stop_door("door", "7000,8000", 2, "", &marker);
    let conf = write(dir.path(), "knockd.conf", &config);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log("door: OPEN SESAME");
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: door: already open, extending by 2s"));
    server.wait_log("door: command timeout");
    wait_until("the stop command", PATIENCE, || {
        read(&marker).contains("stop")
    });
    // The first window's stop was superseded: one start, one stop, no second rule.
    assert_eq!(
        read(&marker),
        format!("start {CLIENT_V4}\nstop {CLIENT_V4}\n")
    );
    assert_eq!(
        server.log().matches("command timeout").count(),
        1,
        "{}",
        server.log()
    );
}

#[test]
fn use_syslog_sends_knockd_lines_as_knockd_to_dev_log() {
    use std::os::unix::net::UnixDatagram;
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    // The daemon gets a private /dev whose `log` is our socket: a real syslog (if any) on
    // this machine is never touched.
    let dev = dir.path().join("dev");
    fs::create_dir(&dev).unwrap();
    let syslog = UnixDatagram::bind(dev.join("log")).unwrap();
    syslog.set_read_timeout(Some(PATIENCE)).unwrap();
    fs::write(dev.join("null"), "").unwrap();
    let conf = write(
        dir.path(),
        "knockd.conf",
        "[options]\n    UseSyslog\n[door]\n    sequence = 7000,8000\n",
    );
    let script = format!(
        "mount --bind /dev/null {d}/null && mount --bind {d} /dev && exec {bin} -i eth0 -c {c} --state-file {s} --runtime-dir {s}.run",
        d = dev.display(),
        bin = knock_e2e::bin("knock-server").display(),
        c = conf.display(),
        s = dir.path().join("pending").display(),
    );
    let mut daemon = link.server.spawn(
        "unshare",
        ["-m", "sh", "-c", &script],
        &dir.path().join("server.out"),
    );
    let mut lines = Vec::new();
    let mut buf = [0u8; 1024];
    while !lines
        .iter()
        .any(|l: &String| l.contains("door: OPEN SESAME"))
    {
        daemon.assert_running();
        let n = syslog
            .recv(&mut buf)
            .expect("a syslog line before the timeout");
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        if line.contains("starting up, listening on eth0") {
            Knock::debian(&link.client)
                .args([SERVER_V4, "7000", "8000"])
                .ok();
        }
        lines.push(line);
    }
    // <29> = facility daemon (3) * 8 + notice (5); the identity is knockd's.
    let stage = lines
        .iter()
        .find(|l| l.contains("door: Stage 1"))
        .expect("a Stage 1 line");
    assert!(stage.starts_with("<29>"), "{stage}");
    assert!(
        stage.contains(&format!(
            "knockd[{}]: {CLIENT_V4}: door: Stage 1",
            daemon.pid()
        )),
        "{stage}"
    );
}

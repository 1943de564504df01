//! knock-server as an operator runs it: several instances on one host, `status` and `close`
//! over the control socket, `-d` with relative paths, logrotate, no reachable log sink, an
//! address that arrives after start, and Wake-on-LAN out of every link.

use std::path::Path;
use std::process::Output;

use knock_e2e::{
    CLIENT_V4, Knock, Link, OTHER_V4, PATIENCE, RunningServer, SERVER_V4, Server, read, scratch,
    veth, wait_until, write,
};

use crate::actions::{Reach, capture_one, reach_port as reach};

/// Knock-server on eth0 with `toml` as `dir/INSTANCE.toml` in `dir` (its own state and
/// runtime directory), as `--instance INSTANCE`, logging to `dir/INSTANCE.log`.
fn start(link: &Link, dir: &Path, instance: &str, toml: &str) -> RunningServer {
    Server::new(&link.server)
        .dir(dir)
        .config_text(&format!("{instance}.toml"), toml)
        .log_name(&format!("{instance}.log"))
        .instance(instance)
        .start()
}

/// Runs `knock-server ARGS --runtime-dir DIR/run` (a subcommand) on the server host.
fn operator(link: &Link, dir: &Path, args: &[&str]) -> Output {
    link.server
        .command(knock_e2e::bin("knock-server"))
        .args(args)
        .arg("--runtime-dir")
        .arg(dir.join("run"))
        .output()
        .expect("run knock-server")
}

fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A door on `seq` that opens `port`/tcp for a long while.
fn open_door(name: &str, seq: &str, port: u16) -> String {
    format!("[doors.{name}]\nsequence = \"{seq}\"\nopen = \"{port}/tcp\"\nopen_seconds = 600\n")
}

/// A door whose start and stop commands append `start IP` / `stop IP` to `marker`.
fn command_door(name: &str, seq: &str, cmd_timeout: u64, marker: &Path) -> String {
    let m = marker.display();
    format!(
        "[doors.{name}]\nsequence = \"{seq}\"\ncmd_timeout = {cmd_timeout}\n\
         start_command = \"/bin/sh -c 'echo start %IP% >> {m}'\"\n\
         stop_command = \"/bin/sh -c 'echo stop %IP% >> {m}'\"\n"
    )
}

#[test]
fn two_instances_guard_their_own_ports_and_a_kill_9_of_one_leaves_the_other_alone() {
    let Some(link) = Link::up() else { return };
    // A second address of the client host, which never knocks (the knocks leave from the
    // first).
    let other = format!("{OTHER_V4}/24");
    link.client.ok("ip", ["addr", "add", &other, "dev", "eth0"]);
    let dir = scratch();
    let (one, two) = (dir.path().join("one"), dir.path().join("two"));
    for d in [&one, &two] {
        std::fs::create_dir(d).unwrap();
    }
    let _l1 = link
        .server
        .listen_tcp(false, true, 4100, &one.join("nc.out"));
    let _l2 = link
        .server
        .listen_tcp(false, true, 4200, &two.join("nc.out"));
    let mut a = start(&link, &one, "one", &open_door("a", "7000,8000", 4100));
    let mut b = start(&link, &two, "two", &open_door("b", "7100,8100", 4200));
    for port in [4100, 4200] {
        assert_eq!(reach(&link, CLIENT_V4, port), Reach::Refused, "{port}");
    }
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    a.wait_log(&format!("{CLIENT_V4}: a: opened 4100/tcp"));
    assert_eq!(reach(&link, CLIENT_V4, 4100), Reach::Connected);
    assert_eq!(reach(&link, CLIENT_V4, 4200), Reach::Refused);
    Knock::debian(&link.client)
        .args([SERVER_V4, "7100", "8100"])
        .ok();
    b.wait_log(&format!("{CLIENT_V4}: b: opened 4200/tcp"));
    assert_eq!(reach(&link, CLIENT_V4, 4200), Reach::Connected);

    assert_eq!(nft_monitors(&link), 2, "one `nft monitor` per instance");
    a.daemon.signal("KILL");
    a.daemon.wait_exit();
    drop(a);
    // Its `nft monitor` goes with it.
    wait_until("the killed one's nft monitor to go", PATIENCE, || {
        nft_monitors(&link) == 1
    });
    // The other instance's table, allow and guard are untouched.
    assert_eq!(reach(&link, CLIENT_V4, 4200), Reach::Connected);
    assert_eq!(reach(&link, OTHER_V4, 4200), Reach::Refused);
    // The killed one's restart replaces its own leftover table (the knocker must knock
    // again) and nothing of the other's.
    let _a = Server::new(&link.server)
        .dir(&one)
        .config(one.join("one.toml"))
        .log_name("again.log")
        .instance("one")
        .start();
    assert_eq!(reach(&link, CLIENT_V4, 4100), Reach::Refused);
    assert_eq!(reach(&link, CLIENT_V4, 4200), Reach::Connected);
    b.daemon.assert_running();
    let tables = link.server.output("nft", ["list", "tables"]);
    assert!(
        tables.contains("inet knock_server_one") && tables.contains("inet knock_server_two"),
        "{tables}"
    );
}

/// How many `nft monitor` processes run in the server namespace.
fn nft_monitors(link: &Link) -> usize {
    link.server
        .pids()
        .iter()
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/cmdline"))
                .is_ok_and(|c| c.starts_with(b"nft\0monitor\0"))
        })
        .count()
}

#[test]
fn status_shows_knocked_doors_and_close_shuts_them_running_the_stop_once() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    let (marker, canary) = (d.join("marks"), d.join("canary"));
    let _l = link.server.listen_tcp(false, true, 4100, &d.join("nc.out"));
    let toml = [
        open_door("web", "7000,8000", 4100),
        command_door("cmd", "7100,8100", 3, &marker),
        command_door("late", "7200,8200", 4, &canary),
    ]
    .concat();
    let mut server = start(&link, d, "knock-server", &toml);
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: web: opened 4100/tcp"));
    Knock::debian(&link.client)
        .args([SERVER_V4, "7100", "8100"])
        .ok();
    wait_until("the start command", PATIENCE, || {
        read(&marker).contains("start")
    });
    // An attempt in progress on `late`.
    Knock::debian(&link.client).args([SERVER_V4, "7200"]).ok();
    server.wait_log(&format!("{CLIENT_V4}: late: Stage 1"));

    let out = operator(&link, d, &["status"]);
    assert!(out.status.success(), "{out:?}");
    let text = stdout(&out);
    let row = |door: &str| {
        text.lines()
            .find(|l| l.trim_start().starts_with(door) && l.contains(CLIENT_V4))
            .unwrap_or_else(|| panic!("no open {door} row:\n{text}"))
            .to_owned()
    };
    assert!(row("web").contains("nftables"), "{text}");
    assert!(row("cmd").contains("stop command"), "{text}");
    assert!(text.contains("late: 1 attempt(s) in progress"), "{text}");
    let json: serde_json::Value =
        serde_json::from_slice(&operator(&link, d, &["status", "--json"]).stdout).unwrap();
    assert_eq!(json["open"].as_array().map(Vec::len), Some(2), "{json}");
    // Five knocks so far (two doors of two, one of one), each one packet.
    let packets = json["counters"]["packets"].as_u64().unwrap_or(0);
    assert!(packets >= 5, "{json}");

    let out = operator(&link, d, &["close", "web"]);
    assert!(out.status.success(), "{out:?}");
    assert!(stdout(&out).contains(&format!("closed web for {CLIENT_V4} (nftables)")));
    assert_eq!(reach(&link, CLIENT_V4, 4100), Reach::Refused);
    let out = operator(&link, d, &["close", "cmd", CLIENT_V4]);
    assert!(stdout(&out).contains("(stop command)"), "{out:?}");
    wait_until("the stop command", PATIENCE, || {
        read(&marker).contains("stop")
    });
    let out = operator(&link, d, &["close", "nosuch"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no door named `nosuch`"));

    // A door opened after the close, with a longer timeout, closes after the closed one's
    // original time: once its stop has run, a second stop of `cmd` would have too.
    Knock::debian(&link.client)
        .args([SERVER_V4, "7200", "8200"])
        .ok();
    wait_until("the later door's stop", PATIENCE, || {
        read(&canary).contains("stop")
    });
    assert_eq!(
        read(&marker),
        format!("start {CLIENT_V4}\nstop {CLIENT_V4}\n")
    );
    assert!(stdout(&operator(&link, d, &["close", "--all"])).contains("nothing was open"));
}

#[test]
fn detached_with_relative_paths_files_land_where_given_and_sighup_finds_the_config() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    write(d, "k.conf", "[first]\n    sequence = 7000,8000\n");
    let out = link
        .server
        .command(knock_e2e::bin("knock-server"))
        .current_dir(d)
        .args(["-d", "-i", "eth0", "-c", "k.conf", "-g", "server.log"])
        .args([
            "-p",
            "knock.pid",
            "--state-file",
            "state",
            "--runtime-dir",
            "run",
        ])
        .output()
        .unwrap();
    assert!(out.status.success(), "{out:?}");
    let (log, pid_file) = (d.join("server.log"), d.join("knock.pid"));
    wait_until("the pid file", PATIENCE, || read(&pid_file).ends_with('\n'));
    let pid = read(&pid_file).trim().to_owned();
    wait_until("the daemon to listen", PATIENCE, || {
        read(&log).contains("starting up, listening on eth0")
    });
    assert!(d.join("run/knock-server.sock").exists());
    // The reload finds the config by the path given at start, relative to where that was.
    write(
        d,
        "k.conf",
        "[first]\n    sequence = 7000,8000\n[second]\n    sequence = 7100,8100\n",
    );
    link.server.ok("kill", ["-HUP", &pid]);
    wait_until("the reload", PATIENCE, || {
        read(&log).contains(&format!(
            "re-reading config file: {}",
            d.join("k.conf").display()
        ))
    });
    Knock::debian(&link.client)
        .args([SERVER_V4, "7100", "8100"])
        .ok();
    wait_until("the new door to open", PATIENCE, || {
        read(&log).contains("second: OPEN SESAME")
    });
    assert!(!read(&log).contains("config error"), "{}", read(&log));
    link.server.ok("kill", ["-TERM", &pid]);
    wait_until("the pid file to go", PATIENCE, || !pid_file.exists());
}

#[test]
fn logrotates_move_then_sigusr1_or_sighup_sends_lines_to_the_new_file() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    let conf = write(d, "k.conf", "[door]\n    sequence = 7000,8000\n");
    let mut server = Server::new(&link.server).dir(d).config(&conf).start();
    for (round, sig) in [(1, "USR1"), (2, "HUP")] {
        let rotated = d.join(format!("server.log.{round}"));
        std::fs::rename(&server.log, &rotated).unwrap();
        let before = read(&rotated);
        server.daemon.signal(sig);
        wait_until("the log file to be reopened", PATIENCE, || {
            server.log.exists()
        });
        Knock::debian(&link.client)
            .args([SERVER_V4, "7000", "8000"])
            .ok();
        server.wait_log("door: OPEN SESAME");
        assert_eq!(
            read(&rotated),
            before,
            "{sig}: lines went to the rotated file"
        );
    }
}

#[test]
fn with_syslog_unreachable_and_no_log_file_the_daemon_logs_to_stderr_and_says_so() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    // A private /dev without `log`: no syslog daemon to reach.
    let dev = d.join("dev");
    std::fs::create_dir(&dev).unwrap();
    std::fs::write(dev.join("null"), "").unwrap();
    let conf = write(
        d,
        "knockd.conf",
        "[options]\n    UseSyslog\n[door]\n    sequence = 7000,8000\n",
    );
    let script = format!(
        "mount --bind /dev/null {d}/null && mount --bind {d} /dev && exec {bin} -i eth0 -c {c} --state-file {s} --runtime-dir {r}",
        d = dev.display(),
        bin = knock_e2e::bin("knock-server").display(),
        c = conf.display(),
        s = d.join("state").display(),
        r = d.join("run").display(),
    );
    let mut daemon = link
        .server
        .spawn("unshare", ["-m", "sh", "-c", &script], &d.join("out"));
    daemon.wait_output(
        "syslog is not reachable (/dev/log) and there is no LogFile: logging to stderr",
    );
    daemon.wait_output(&format!("config {}, 1 door(s): door", conf.display()));
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    daemon.wait_output("door: OPEN SESAME");
}

#[test]
fn an_address_added_after_start_is_knockable_without_sighup() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    let conf = write(d, "k.conf", "[door]\n    sequence = 7000,8000\n");
    let mut server = Server::new(&link.server).dir(d).config(&conf).start();
    let late = "198.18.0.9";
    link.server
        .ok("ip", ["addr", "add", &format!("{late}/24"), "dev", "eth0"]);
    server.wait_log("local addresses changed: ");
    Knock::debian(&link.client)
        .args([late, "7000", "8000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: door: OPEN SESAME"));
    assert!(!server.log().contains("re-reading config"));
}

#[test]
fn wake_on_lan_without_address_goes_out_of_every_link_to_its_subnet_broadcast() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    // A second link: the server's lan0 (198.19.5.1/24, no `brd`) to the client's lan1,
    // where the sleeping machine would be.
    veth(&link.server, "lan0", &link.client, "lan1");
    link.server.add_address("lan0", "198.19.5.1/24", &[]);
    let toml = "[doors.wake]\nsequence = \"7000,8000\"\nwake_on_lan = \"00:81:52:6b:3d:ae\"\n";
    let mut server = start(&link, d, "knock-server", toml);
    let frame = capture_one(&link, d, "lan1", "lan1", || {
        Knock::debian(&link.client)
            .args([SERVER_V4, "7000", "8000"])
            .ok();
        server.wait_log("wake: sent Wake-on-LAN to ");
    });
    assert!(
        server.log().contains("198.19.5.255:9 via lan0"),
        "{}",
        server.log()
    );
    assert_eq!(frame.eth_dst, [0xff; 6]);
    assert_eq!(frame.dst.to_string(), "198.19.5.255");
    assert_eq!(frame.dport, 9);
    assert_eq!(&frame.payload[..6], &[0xff; 6]);
    assert!(frame.src.to_string() == "198.19.5.1", "{}", frame.src);
}

#[test]
fn a_one_time_file_keeps_lines_appended_while_running_and_they_open_next() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    let seqs = write(d, "sequences", " 1001,1002\n");
    let marker = d.join("opened");
    let config = format!(
        "[otp]\n    one_time_sequences = {}\n    command = /bin/sh -c 'echo %IP% >> {}'\n",
        seqs.display(),
        marker.display()
    );
    let conf = write(d, "knockd.conf", &config);
    let mut server = Server::new(&link.server).dir(d).config(&conf).start();
    // The admin adds a sequence while the daemon runs, without a reload.
    write(d, "sequences", " 1001,1002\n 2001,2002\n");
    Knock::debian(&link.client)
        .args([SERVER_V4, "1001", "1002"])
        .ok();
    server.wait_log("otp: OPEN SESAME");
    wait_until("the used line to be marked", PATIENCE, || {
        read(&seqs) == "#1001,1002\n 2001,2002\n"
    });
    // The file is marked before the daemon reads it again and arms the appended line: knock
    // only once it has (it logs this, then installs the capture filter for the new ports in
    // the same pass), or the knocks can come while the door is still disabled.
    server.wait_log("otp: new one-time sequences in");
    Knock::debian(&link.client)
        .args([SERVER_V4, "2001", "2002"])
        .ok();
    server.wait_log_count("otp: OPEN SESAME", 2);
    wait_until("the second line to be marked", PATIENCE, || {
        read(&seqs) == "#1001,1002\n#2001,2002\n"
    });
}

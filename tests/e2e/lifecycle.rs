//! A door's lifecycle with the real daemon (issue 9): what opens is closed exactly once,
//! across kill -9, SIGTERM with a command that never ends, SIGHUP in the middle of a knock, a
//! failed start command, an unreadable state file, and a flood of completions of a sniffed
//! sequence from spoofed sources.

use std::net::{Ipv4Addr, SocketAddrV4};
use std::path::Path;

use knock_e2e::{
    CANARY, CLIENT_V4, Knock, Link, Netns, PATIENCE, SERVER_V4, Server, read, scratch, syn,
    wait_until, write,
};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// A door whose start and stop commands append `start IP` / `stop IP` to `marker`.
fn door(name: &str, sequence: &str, cmd_timeout: u64, start: &str, marker: &Path) -> String {
    format!(
        "[{name}]\n    sequence = {sequence}\n    cmd_timeout = {cmd_timeout}\n    start_command = {start}\n    stop_command = /bin/sh -c 'echo stop %IP% >> {}'\n",
        marker.display()
    )
}

fn echo_start(marker: &Path) -> String {
    format!("/bin/sh -c 'echo start %IP% >> {}'", marker.display())
}

#[test]
fn a_stop_command_that_ran_does_not_run_again_after_kill_9() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("marks");
    let config = door("door", "7000,8000", 1, &echo_start(&marker), &marker) + CANARY;
    let conf = write(dir.path(), "knockd.conf", &config);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .log_name("first.log")
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    wait_until("the stop command", PATIENCE, || {
        read(&marker).contains("stop ")
    });
    for round in 0..2 {
        server.daemon.signal("KILL");
        server.daemon.wait_exit();
        server = Server::new(&link.server)
            .dir(dir.path())
            .config(&conf)
            .log_name(&format!("restart{round}.log"))
            .start();
        server.canary(&link.client, 1);
    }
    assert_eq!(
        read(&marker),
        format!("start {CLIENT_V4}\nstop {CLIENT_V4}\n")
    );
}

#[test]
fn sigterm_closes_the_door_and_does_not_wait_for_a_start_command_that_never_ends() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("marks");
    let config = door("door", "7000,8000", 3600, "/bin/sleep 1000", &marker);
    let conf = write(dir.path(), "knockd.conf", &config);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log("door: running command: /bin/sleep 1000");
    server.daemon.signal("TERM");
    wait_until("the stop command, at once", PATIENCE, || {
        read(&marker) == format!("stop {CLIENT_V4}\n")
    });
    let status = server.daemon.wait_exit();
    assert!(status.success(), "{status}\n{}", server.log());
    assert!(server.log().contains("killing them"), "{}", server.log());
    // The killed command is gone (a moment as a zombie, reaped by init, is allowed).
    wait_until("no process left in the namespace", PATIENCE, || {
        link.server.pids().is_empty()
    });
    assert!(read(&dir.path().join("pending-stops")).is_empty());
}

#[test]
fn a_knock_in_progress_survives_a_reload() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let conf = write(
        dir.path(),
        "knockd.conf",
        "[door]\n    sequence = 7000,8000\n    seq_timeout = 60\n",
    );
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    Knock::debian(&link.client).args([SERVER_V4, "7000"]).ok();
    server.wait_log(&format!("{CLIENT_V4}: door: Stage 1"));
    // A door added by the reload; the knocked one is unchanged.
    std::fs::write(
        &conf,
        "[door]\n    sequence = 7000,8000\n    seq_timeout = 60\n[other]\n    sequence = 9000,9001\n",
    )
    .unwrap();
    server.daemon.signal("HUP");
    server.wait_log("re-reading config file");
    // The new filter goes in just after that line: knock the new door until it opens, which
    // proves the reload done before the old door's last knock.
    wait_until("the new door to open", PATIENCE, || {
        Knock::debian(&link.client)
            .args([SERVER_V4, "9000", "9001"])
            .ok();
        server.log().contains("other: OPEN SESAME")
    });
    Knock::debian(&link.client).args([SERVER_V4, "8000"]).ok();
    server.wait_log(&format!("{CLIENT_V4}: door: OPEN SESAME"));
}

/// A storm of SIGHUPs while a knock is in progress, each reload swapping the kernel filter
/// (the config alternates between one door and two, replaced atomically): every knock on the
/// door both configs have still counts, and the daemon stays up.
#[test]
fn a_sighup_storm_that_swaps_the_filter_loses_no_knock() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let one = "[door]\n    sequence = 7000,8000,9000\n    seq_timeout = 60\n".to_owned();
    let two = format!("{one}[other]\n    sequence = 5000,5001\n");
    let conf = write(dir.path(), "knockd.conf", &one);
    let next = dir.path().join("next.conf");
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    for (i, port) in ["7000", "8000", "9000"].into_iter().enumerate() {
        for round in 0..20 {
            let text = if (i + round) % 2 == 0 { &two } else { &one };
            std::fs::write(&next, text).unwrap();
            std::fs::rename(&next, &conf).unwrap();
            server.daemon.signal("HUP");
        }
        Knock::debian(&link.client).args([SERVER_V4, port]).ok();
    }
    server.wait_log(&format!("{CLIENT_V4}: door: OPEN SESAME"));
    server.daemon.assert_running();
    assert!(
        server.log().contains("re-reading config file"),
        "{}",
        server.log()
    );
}

#[test]
fn a_failed_start_command_leaves_the_door_closed_and_knocking_again_retries_it() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("marks");
    let conf = write(
        dir.path(),
        "knockd.conf",
        &door("door", "7000,8000", 3600, "/bin/false", &marker),
    );
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log("door: start command failed");
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log_count("door: running command: /bin/false", 2);
    server.wait_log_count("door: start command failed", 2);
    assert!(!server.log().contains("already open"), "{}", server.log());
    // Neither failed opening leaves a stop command pending.
    server.daemon.signal("TERM");
    server.daemon.wait_exit();
    assert!(read(&marker).is_empty(), "{}", read(&marker));
}

#[test]
fn a_state_file_that_cannot_be_read_stops_the_daemon_with_exit_2_and_is_left_alone() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let conf = write(
        dir.path(),
        "knockd.conf",
        "[door]\n    sequence = 7000,8000\n",
    );
    // A directory where the state file should be: it cannot be read as one.
    let state = dir.path().join("pending-stops");
    std::fs::create_dir(&state).unwrap();
    let out = link
        .server
        .command(knock_e2e::bin("knock-server"))
        .args(["-i", "eth0", "-c"])
        .arg(&conf)
        .arg("--state-file")
        .arg(&state)
        .arg("--runtime-dir")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains(&state.display().to_string()), "{stderr}");
    assert!(state.is_dir());
}

/// Sends, from the client namespace, `n` completions of `sequence` from spoofed sources in
/// 198.19.0.0/16 (inside 198.18.0.0/15, never the link's own /24), as raw TCP SYNs.
fn spoofed_completions(netns: &Netns, n: u32, sequence: &[u16]) {
    netns
        .enter(|| -> std::io::Result<()> {
            let sock = Socket::new(
                Domain::IPV4,
                Type::RAW,
                Some(Protocol::from(libc::IPPROTO_RAW)),
            )?;
            let server: Ipv4Addr = SERVER_V4.parse().expect("an address");
            let to = SockAddr::from(SocketAddrV4::new(server, 0));
            let mut pkt = [0u8; 40];
            for i in 0..n {
                let src = Ipv4Addr::from(0xC613_0000 + i);
                for &port in sequence {
                    syn(&mut pkt, (src, 40_000), (server, port), i);
                    sock.send_to(&pkt, &to)?;
                }
            }
            Ok(())
        })
        .expect("raw packets sent");
}

#[test]
fn a_flood_of_completions_of_a_sniffed_sequence_never_keeps_another_knock_out() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let marker = dir.path().join("opened");
    // The sniffed door opens a port in nftables and runs a slow command for each of the 500
    // spoofed completions; the legit door must still open for the real knocker.
    let config = format!(
        "[doors.sniffed]\nsequence = \"7000,8000\"\nopen = \"2222/tcp\"\n\
         command = \"/bin/sleep 2\"\n\
         [doors.legit]\nsequence = \"7100,8100\"\nseq_timeout = 5\n\
         command = \"/bin/sh -c 'echo %IP% >> {}'\"\n",
        marker.display()
    );
    let conf = write(dir.path(), "server.toml", &config);
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config(&conf)
        .start();
    spoofed_completions(&link.client, 500, &[7000, 8000]);
    Knock::debian(&link.client)
        .args([SERVER_V4, "7100", "8100"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: legit: OPEN SESAME"));
    wait_until("the legit command", PATIENCE, || {
        read(&marker) == format!("{CLIENT_V4}\n")
    });
    assert!(
        server.log().contains("198.19.0.0: sniffed: OPEN SESAME"),
        "the flood was handled"
    );
}

//! The built-in actions of TOML doors, end to end: Wake-on-LAN (the magic packet is captured
//! on the link), the mail notice (a stand-in sendmail records it), and `open` (real TCP
//! connections from the client host against knock-server's nftables table), including what
//! is left after SIGTERM and after `kill -9`. Debian's `knock` does the knocking and
//! netcat-openbsd (installed by scripts/setup-debian) plays the service behind the opened port
//! and the clients that connect to it.

use std::io::Write as _;
use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Stdio};

use knock_e2e::{
    CLIENT_V4, CLIENT_V6, Daemon, Knock, Link, OTHER_V4, OTHER_V6, PATIENCE, RunningServer,
    SERVER_V4, SERVER_V6, Server, read, scratch, wait_until, write,
};

/// The port a door opens; a `nc -lk` listens on it behind the guard.
const PORT: u16 = 4000;
/// A second opened port, for the one connection that must outlive the window.
const HELD_PORT: u16 = 4001;
/// `open_seconds` of the doors whose window the tests watch close.
const WINDOW: u64 = 3;
/// `nft` arguments that succeed exactly while knock-server's table exists.
const LIST_TABLE: [&str; 4] = ["list", "table", "inet", "knock_server"];

/// A link whose server host runs a TCP service on [`PORT`] behind knock-server, with a door
/// on 7000,8000 that opens it for `seconds`; the client host has its second addresses too.
struct Guarded {
    server: RunningServer,
    _listener: Daemon,
    dir: tempfile::TempDir,
    link: Link,
}

impl Guarded {
    /// `None` when the test is skipped (not root).
    fn start(seconds: u64) -> Option<Guarded> {
        let link = Link::up()?;
        link.add_other_addresses();
        let dir = scratch();
        let listener = link
            .server
            .listen_tcp(false, true, PORT, &dir.path().join("listener.out"));
        let door = open_door(&format!("\"{PORT}/tcp\""), seconds);
        let server = Server::new(&link.server)
            .dir(dir.path())
            .config_text("server.toml", &door)
            .start();
        Some(Guarded {
            server,
            _listener: listener,
            dir,
            link,
        })
    }
}

/// A door `door` on the sequence 7000,8000 that opens `open` (a TOML value) for `seconds`.
fn open_door(open: &str, seconds: u64) -> String {
    format!("[doors.door]\nsequence = \"7000,8000\"\nopen = {open}\nopen_seconds = {seconds}\n")
}

/// What became of a TCP connection attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Reach {
    Connected,
    Refused,
}

/// Connects from `from` (an address of the client host) to [`PORT`] on the server host, over
/// IPv6 when `from` is an IPv6 address, and closes again at once. Anything but a connection
/// or a refusal (a timeout, say) fails the test: a guarded port must look closed, which
/// means a reset, never silence.
fn reach(link: &Link, from: &str) -> Reach {
    reach_port(link, from, PORT)
}

/// [`reach`] for any `port`.
pub(super) fn reach_port(link: &Link, from: &str, port: u16) -> Reach {
    let to = if from.contains(':') {
        SERVER_V6
    } else {
        SERVER_V4
    };
    let port = port.to_string();
    let args = ["-z", "-v", "-n", "-w", "5", "-s", from, to, &port];
    let out = link.client.run("nc", args);
    let stderr = String::from_utf8_lossy(&out.stderr);
    if out.status.success() {
        Reach::Connected
    } else if stderr.contains("Connection refused") {
        Reach::Refused
    } else {
        panic!("nc {args:?} neither connected nor was refused: {stderr}");
    }
}

/// Polls until a new connection from `from` is refused: the window has closed.
fn wait_refused(link: &Link, from: &str) {
    let what = format!("a new connection from {from} to be refused");
    wait_until(&what, PATIENCE, || reach(link, from) == Reach::Refused);
}

/// A TCP connection from the client host that stays open: netcat, fed through its stdin.
struct Held {
    child: Child,
    stdin: ChildStdin,
    stderr: PathBuf,
}

impl Held {
    /// Connects from `from` (an IPv4 address of the client host) to [`HELD_PORT`]; nc's
    /// complaints go to `stderr`.
    fn open(link: &Link, from: &str, stderr: &Path) -> Held {
        let log = std::fs::File::create(stderr).expect("create nc's stderr file");
        let port = HELD_PORT.to_string();
        let mut child = link
            .client
            .command("nc")
            .args(["-v", "-n", "-s", from, SERVER_V4, &port])
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(log)
            .spawn()
            .expect("spawn nc");
        let stdin = child.stdin.take().expect("nc's stdin");
        Held {
            child,
            stdin,
            stderr: stderr.to_owned(),
        }
    }

    /// Sends `line` and waits until the listener that writes to `received` has it.
    fn send(&mut self, line: &str, received: &Path) {
        let sent = writeln!(self.stdin, "{line}").and_then(|()| self.stdin.flush());
        let what = format!("{line:?} to arrive over the held connection");
        wait_until(&what, PATIENCE, || {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "the held connection ended ({status}, write: {sent:?}) before {what}: {}",
                    read(&self.stderr)
                );
            }
            read(received).contains(line)
        });
    }
}

impl Drop for Held {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Two wake doors: one to the link's subnet broadcast, one to the limited broadcast out of
/// eth0 (the server host has no default route, so that needs the interface).
const WAKE_DOORS: &str = "[doors.wake-subnet]\nsequence = \"7000,8000\"\n\
    wake_on_lan = { mac = \"00:81:52:6b:3d:ae\", address = \"198.18.0.255\", port = 9 }\n\
    [doors.wake-all]\nsequence = \"7100,8100\"\nwake_on_lan = { mac = \"00:81:52:6B:3D:AF\", \
    address = \"255.255.255.255\", port = 9, interface = \"eth0\" }\n";

#[test]
fn wake_on_lan_broadcasts_the_magic_packet_on_the_link() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let mut server = Server::new(&link.server)
        .dir(dir.path())
        .config_text("server.toml", WAKE_DOORS)
        .start();
    let subnet = Ipv4Addr::new(198, 18, 0, 255);
    // The two MACs differ in their last byte only.
    for (door, ports, last, to) in [
        ("wake-subnet", ["7000", "8000"], 0xae, subnet),
        ("wake-all", ["7100", "8100"], 0xaf, Ipv4Addr::BROADCAST),
    ] {
        let mac = [0x00, 0x81, 0x52, 0x6b, 0x3d, last];
        let frame = capture_one(&link, dir.path(), "eth0", door, || {
            Knock::debian(&link.client)
                .args([SERVER_V4, ports[0], ports[1]])
                .ok();
            server.wait_log(&format!("{door}: sent Wake-on-LAN to "));
        });
        assert_eq!(
            frame.eth_dst, [0xff; 6],
            "{door}: not an Ethernet broadcast"
        );
        assert_eq!(frame.src, SERVER_V4.parse::<Ipv4Addr>().unwrap(), "{door}");
        assert_eq!((frame.dst, frame.dport), (to, 9), "{door}");
        let mut magic = vec![0xff; 6];
        for _ in 0..16 {
            magic.extend_from_slice(&mac);
        }
        assert_eq!(
            frame.payload, magic,
            "{door}: not the magic packet for {mac:02x?}"
        );
    }
}

/// Captures, on the client host's `interface`, the first UDP datagram to port 9 that
/// arrives after `trigger` starts: tcpdump listens before `trigger` runs.
pub(super) fn capture_one(
    link: &Link,
    dir: &Path,
    interface: &str,
    name: &str,
    trigger: impl FnOnce(),
) -> Datagram {
    let pcap = dir.join(format!("{name}.pcap"));
    let file = pcap.display().to_string();
    let args = [
        "-i",
        interface,
        "-n",
        "-U",
        "-c",
        "1",
        "-w",
        &file,
        "udp port 9",
    ];
    let mut tcpdump = link
        .client
        .spawn("tcpdump", args, &dir.join(format!("{name}.tcpdump")));
    tcpdump.wait_output(&format!("listening on {interface}"));
    trigger();
    let status = tcpdump.wait_exit();
    assert!(
        status.success(),
        "tcpdump: {status}:\n{}",
        read(&tcpdump.output)
    );
    Datagram::first_in(&std::fs::read(&pcap).expect("read the capture"))
}

/// The first frame of a `tcpdump -w` capture, decoded as Ethernet, IPv4 and UDP.
pub(super) struct Datagram {
    pub(super) eth_dst: [u8; 6],
    pub(super) src: Ipv4Addr,
    pub(super) dst: Ipv4Addr,
    pub(super) dport: u16,
    pub(super) payload: Vec<u8>,
}

impl Datagram {
    pub(super) fn first_in(pcap: &[u8]) -> Datagram {
        let at = |from: usize, len: usize| -> &[u8] {
            pcap.get(from..from + len)
                .unwrap_or_else(|| panic!("capture cut short at byte {from}: {pcap:02x?}"))
        };
        let u16_be = |from: usize| u16::from_be_bytes([at(from, 2)[0], at(from, 2)[1]]);
        let u32_le = |from: usize| u32::from_le_bytes(at(from, 4).try_into().unwrap());
        // Classic pcap, written in the host's (little-endian) byte order, µs or ns stamps.
        assert!(
            [0xa1b2_c3d4, 0xa1b2_3c4d].contains(&u32_le(0)),
            "not a little-endian pcap file: {:02x?}",
            at(0, 4)
        );
        assert_eq!(u32_le(20), 1, "link type is not Ethernet");
        let frame_len = u32_le(24 + 8) as usize;
        let eth = 40;
        assert_eq!(u16_be(eth + 12), 0x0800, "not IPv4");
        let ip = eth + 14;
        let ihl = usize::from(at(ip, 1)[0] & 0x0f) * 4;
        assert_eq!(at(ip + 9, 1)[0], 17, "not UDP");
        let udp = ip + ihl;
        let udp_len = usize::from(u16_be(udp + 4));
        assert!(
            udp + udp_len <= eth + frame_len,
            "UDP length beyond the frame"
        );
        let ipv4 = |from: usize| Ipv4Addr::from(<[u8; 4]>::try_from(at(from, 4)).unwrap());
        Datagram {
            eth_dst: at(eth, 6).try_into().unwrap(),
            src: ipv4(ip + 12),
            dst: ipv4(ip + 16),
            dport: u16_be(udp + 2),
            payload: at(udp + 8, udp_len - 8).to_vec(),
        }
    }
}

/// Writes a stand-in sendmail to `dir`: it records its arguments in `dir/args` and the
/// message in `dir/message` (renamed into place once whole), except that a message to
/// broken@example.net fails as an MTA does, with a status and a word on stderr. Returns the
/// `[options]` table that makes knock-server use it.
fn fake_sendmail(dir: &Path) -> String {
    use std::os::unix::fs::PermissionsExt as _;
    let d = dir.display();
    let script = format!(
        "#!/bin/sh\ncat > '{d}/incoming'\n\
         if grep -q '^To: broken@example.net' '{d}/incoming'; then\n\
         \techo 'the smarthost refused the message' >&2\n\texit 75\nfi\n\
         echo \"$@\" > '{d}/args'\nmv '{d}/incoming' '{d}/message'\n"
    );
    let path = write(dir, "fake-sendmail", &script);
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    format!(
        "[options]\nsendmail = \"{}\"\nmail_from = \"knock@gate.example.net\"\n\n",
        path.display()
    )
}

#[test]
fn a_mail_door_pipes_a_notice_naming_door_and_knocker_to_sendmail_t() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    let door = "[doors.mail]\nsequence = \"7000,8000\"\n\
                mail_to = [\"admin@example.net\", \"ops@example.net\"]\n";
    let mut server = Server::new(&link.server)
        .dir(d)
        .config_text("server.toml", &(fake_sendmail(d) + door))
        .start();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log("mail: mailed admin@example.net, ops@example.net");

    let args = read(&d.join("args"));
    assert!(
        args.split_whitespace().any(|a| a == "-t"),
        "sendmail args: {args}"
    );
    let message = read(&d.join("message"));
    let (headers, body) = message
        .split_once("\n\n")
        .expect("headers, blank line, body");
    let headers: Vec<&str> = headers.lines().collect();
    for want in [
        "From: knock@gate.example.net",
        "To: admin@example.net, ops@example.net",
        &format!("Subject: knock: {CLIENT_V4} opened door mail"),
    ] {
        assert!(headers.contains(&want), "no {want:?} in {headers:?}");
    }
    let field = |name: &str| {
        body.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(str::trim)
            .unwrap_or_else(|| panic!("no {name} line in the body:\n{body}"))
    };
    assert_eq!(field("Door:"), "mail", "{body}");
    assert_eq!(field("Address:"), CLIENT_V4, "{body}");
}

#[test]
fn a_failing_sendmail_is_logged_and_neither_the_door_nor_capture_stops() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let d = dir.path();
    let _listener = link
        .server
        .listen_tcp(false, true, PORT, &d.join("listener.out"));
    let doors = format!(
        "[doors.bounce]\nsequence = \"7000,8000\"\nmail_to = \"broken@example.net\"\n\
         open = \"{PORT}/tcp\"\nopen_seconds = 600\n\
         [doors.mail]\nsequence = \"7100,8100\"\nmail_to = \"admin@example.net\"\n"
    );
    let mut server = Server::new(&link.server)
        .dir(d)
        .config_text("server.toml", &(fake_sendmail(d) + &doors))
        .start();
    assert_eq!(reach(&link, CLIENT_V4), Reach::Refused);

    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log("bounce: cannot mail broken@example.net");
    let log = server.log();
    let line = log
        .lines()
        .find(|l| l.contains("cannot mail"))
        .unwrap_or_default();
    assert!(
        line.contains("75") && line.contains("the smarthost refused the message"),
        "the log does not say why:\n{log}"
    );
    assert_eq!(reach(&link, CLIENT_V4), Reach::Connected);
    Knock::debian(&link.client)
        .args([SERVER_V4, "7100", "8100"])
        .ok();
    server.wait_log("mail: mailed admin@example.net");
    assert!(read(&d.join("message")).contains("To: admin@example.net\n"));
}

#[test]
fn open_lets_only_the_knocker_in_for_open_seconds_and_established_connections_stay() {
    let Some(link) = Link::up() else { return };
    link.add_other_addresses();
    let dir = scratch();
    let d = dir.path();
    let _probes = link
        .server
        .listen_tcp(false, true, PORT, &d.join("probes.out"));
    let held_out = d.join("held.out");
    let _held_listener = link.server.listen_tcp(false, false, HELD_PORT, &held_out);
    // The host's own (empty) rules let anyone in; only our table closes the port.
    assert_eq!(reach(&link, OTHER_V4), Reach::Connected);
    let ports = format!("[\"{PORT}/tcp\", \"{HELD_PORT}/tcp\"]");
    let mut server = Server::new(&link.server)
        .dir(d)
        .config_text("server.toml", &open_door(&ports, WINDOW))
        .start();
    for from in [CLIENT_V4, OTHER_V4] {
        assert_eq!(reach(&link, from), Reach::Refused, "{from}");
    }

    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log(&format!(
        "{CLIENT_V4}: door: opened {PORT}/tcp, {HELD_PORT}/tcp for {WINDOW}s"
    ));
    assert_eq!(reach(&link, CLIENT_V4), Reach::Connected);
    assert_eq!(reach(&link, OTHER_V4), Reach::Refused);
    // Still open for the knocker, so the refusal above came while the window was open.
    assert_eq!(reach(&link, CLIENT_V4), Reach::Connected);
    let mut held = Held::open(&link, CLIENT_V4, &d.join("held.err"));
    held.send("sent while the window is open", &held_out);

    wait_refused(&link, CLIENT_V4);
    assert_eq!(reach(&link, OTHER_V4), Reach::Refused);
    held.send("sent after the window closed", &held_out);

    // Knocking again opens the door again.
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    let opened = format!("{CLIENT_V4}: door: opened ");
    wait_until("the second opening", PATIENCE, || {
        server.log().matches(&opened).count() == 2
    });
    assert_eq!(reach(&link, CLIENT_V4), Reach::Connected);
    assert_eq!(reach(&link, OTHER_V4), Reach::Refused);
}

#[test]
fn open_over_ipv6_lets_in_the_ipv6_knocker_only() {
    let Some(link) = Link::up() else { return };
    link.add_other_addresses();
    let dir = scratch();
    let d = dir.path();
    let _v4 = link.server.listen_tcp(false, true, PORT, &d.join("v4.out"));
    let _v6 = link.server.listen_tcp(true, true, PORT, &d.join("v6.out"));
    assert_eq!(reach(&link, CLIENT_V6), Reach::Connected);
    let door = open_door(&format!("\"{PORT}/tcp\""), WINDOW);
    let mut server = Server::new(&link.server)
        .dir(d)
        .config_text("server.toml", &door)
        .start();
    assert_eq!(reach(&link, CLIENT_V6), Reach::Refused);

    Knock::debian(&link.client)
        .args(["-6", SERVER_V6, "7000", "8000"])
        .ok();
    server.wait_log(&format!(
        "{CLIENT_V6}: door: opened {PORT}/tcp for {WINDOW}s"
    ));
    assert_eq!(reach(&link, CLIENT_V6), Reach::Connected);
    assert_eq!(reach(&link, OTHER_V6), Reach::Refused);
    // The same host over IPv4 is another address: it did not knock.
    assert_eq!(reach(&link, CLIENT_V4), Reach::Refused);
    assert_eq!(reach(&link, CLIENT_V6), Reach::Connected);
    wait_refused(&link, CLIENT_V6);
}

#[test]
fn sigterm_removes_the_table_and_the_hosts_own_rules_decide_again() {
    // Bound in this order so that they drop in the reverse: daemon first, namespaces last.
    let Some(Guarded {
        link,
        dir: _dir,
        _listener,
        mut server,
    }) = Guarded::start(600)
    else {
        return;
    };
    assert!(
        link.server.run("nft", LIST_TABLE).status.success(),
        "no table at start"
    );
    assert_eq!(reach(&link, OTHER_V4), Reach::Refused);
    // What never left the host is not guarded.
    let local = link.server.run(
        "nc",
        ["-z", "-n", "-w", "5", "127.0.0.1", &PORT.to_string()],
    );
    assert!(local.status.success(), "loopback refused: {local:?}");
    // Exit with a window open: its element goes with the table.
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: door: opened {PORT}/tcp"));

    server.daemon.signal("TERM");
    let status = server.daemon.wait_exit();
    assert!(status.success(), "exit status {status}:\n{}", server.log());
    let listed = link.server.run("nft", LIST_TABLE);
    assert!(
        !listed.status.success(),
        "the table outlived the daemon:\n{}",
        String::from_utf8_lossy(&listed.stdout)
    );
    let ruleset = link.server.output("nft", ["list", "ruleset"]);
    assert!(ruleset.trim().is_empty(), "rules left behind:\n{ruleset}");
    assert_eq!(reach(&link, OTHER_V4), Reach::Connected);
}

#[test]
fn after_kill_9_the_kernel_still_closes_the_door_and_a_restart_cleans_up() {
    // A longer window than elsewhere: it must still be open after the kill.
    // Bound in this order so that they drop in the reverse: daemon first, namespaces last.
    let Some(Guarded {
        link,
        dir,
        _listener,
        mut server,
    }) = Guarded::start(WINDOW + 3)
    else {
        return;
    };
    let d = dir.path();
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: door: opened {PORT}/tcp"));

    server.daemon.signal("KILL");
    server.daemon.wait_exit();
    drop(server);
    assert_eq!(reach(&link, CLIENT_V4), Reach::Connected);
    wait_refused(&link, CLIENT_V4);
    assert_eq!(reach(&link, OTHER_V4), Reach::Refused);
    assert!(
        link.server.run("nft", LIST_TABLE).status.success(),
        "the guard went with the daemon: a crash would leave the port open"
    );

    // The next start (here with no `open` door left) removes the stale table.
    let _server = Server::new(&link.server)
        .dir(d)
        .config_text(
            "restarted.toml",
            "[doors.quiet]\nsequence = \"7000,8000\"\n",
        )
        .log_name("restarted.log")
        .start();
    assert!(
        !link.server.run("nft", LIST_TABLE).status.success(),
        "stale table kept"
    );
    assert_eq!(reach(&link, OTHER_V4), Reach::Connected);
}

#[test]
fn a_flushed_ruleset_gets_the_guard_back_at_once_with_its_open_windows() {
    // Bound in this order so that they drop in the reverse: daemon first, namespaces last.
    let Some(Guarded {
        link,
        dir: _dir,
        _listener,
        mut server,
    }) = Guarded::start(600)
    else {
        return;
    };
    assert_eq!(reach(&link, OTHER_V4), Reach::Refused);
    Knock::debian(&link.client)
        .args([SERVER_V4, "7000", "8000"])
        .ok();
    server.wait_log(&format!("{CLIENT_V4}: door: opened {PORT}/tcp"));
    // What `systemctl restart nftables` does: every table goes, ours too. `nft monitor`
    // reports it at once; the fallback check runs only every 30 s, beyond this wait.
    link.server.ok("nft", ["flush", "ruleset"]);
    server
        .wait_log("the nftables table knock_server was deleted (nft flush ruleset?): put it back");
    server.wait_log(&format!("{CLIENT_V4}: door: opened {PORT}/tcp again for "));
    assert!(
        link.server.run("nft", LIST_TABLE).status.success(),
        "no table after the check"
    );
    assert_eq!(
        reach(&link, OTHER_V4),
        Reach::Refused,
        "the port is guarded again"
    );
    // The window opened before the flush is open again, without a new knock.
    assert_eq!(reach(&link, CLIENT_V4), Reach::Connected);
}

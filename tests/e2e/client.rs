//! Our `knock` client against Debian's knockd across the link: profiles with telnet-style
//! hits, knockd-style ad-hoc sequences, IPv6, as root (raw SYNs) and as an unprivileged user
//! (abandoned connects), and its errors. tcpdump on the server side checks what actually went
//! over the wire: the hits of one port share source port and sequence number when raw.

use std::collections::HashSet;
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use knock_e2e::{
    CLIENT_V4, CLIENT_V6, Daemon, Knock, Link, RunningServer, SERVER_V4, SERVER_V6, read, scratch,
    write,
};

/// A knockd door that needs three SYNs per port, as telnet to a filtered port sends.
const TELNET_DOOR: &str = "04,04,04,2012,2012,2012,03,03,03";

/// knockd running on the server host with `doors` (knockd.conf sections), logging to a file.
struct Knockd(RunningServer);

impl Knockd {
    fn start(link: &Link, dir: &Path, doors: &str) -> Knockd {
        let log = dir.join("knockd.log");
        let config = format!("[options]\n    logfile = {}\n\n{doors}", log.display());
        let server = knock_e2e::Server::knockd(&link.server)
            .dir(dir)
            .config_text("knockd.conf", &config)
            .start();
        Knockd(server)
    }

    /// Waits for knockd's `IP: DOOR: OPEN SESAME`.
    fn wait_open(&mut self, ip: &str, door: &str) {
        self.0.wait_log(&format!("{ip}: {door}: OPEN SESAME"));
    }
}

/// A door section opening on `sequence`, SYNs only (so nothing but real knocks count).
fn door(name: &str, sequence: &str) -> String {
    format!("[{name}]\n    sequence = {sequence}\n    seq_timeout = 20\n    tcpflags = syn\n\n")
}

/// tcpdump on the server's eth0, printing every TCP packet sent to the server.
struct Capture(Daemon);

impl Capture {
    /// Starts capturing, waits until tcpdump listens; it exits after `count` packets.
    fn start(link: &Link, dir: &Path, server: &str, count: usize) -> Capture {
        let filter = format!("tcp and dst host {server}");
        let count = count.to_string();
        let args = ["-i", "eth0", "-n", "-l", "-v", "-S", "-c", &count, &filter];
        let mut daemon = link.server.spawn("tcpdump", args, &dir.join("tcpdump.out"));
        daemon.wait_output("listening on eth0");
        Capture(daemon)
    }

    /// Waits for tcpdump to have seen its packets, and returns them in order.
    fn syns(mut self) -> Vec<Syn> {
        let status = self.0.wait_exit();
        let text = read(&self.0.output);
        assert!(status.success(), "tcpdump failed:\n{text}");
        // With -v an IPv4 packet is two lines: the IP header's (with its ID), then the TCP one.
        let mut ip_id = None;
        let mut syns = Vec::new();
        for line in text.lines() {
            match Syn::parse(line) {
                Some(syn) => syns.push(Syn {
                    ip_id: ip_id.take(),
                    ..syn
                }),
                None => ip_id = ip_id_of(line),
            }
        }
        syns
    }
}

/// A SYN as tcpdump printed it.
#[derive(Debug)]
struct Syn {
    src_port: u16,
    dst_port: u16,
    seq: u32,
    checksum_ok: bool,
    /// The IPv4 header's ID (IPv6 has none).
    ip_id: Option<u16>,
}

/// The ID of `IP (tos 0x0, ttl 64, id 41018, offset 0, flags [DF], proto TCP (6), length 44)`.
fn ip_id_of(line: &str) -> Option<u16> {
    let (_, rest) = line.split_once(", id ")?;
    rest.split(',').next()?.parse().ok()
}

impl Syn {
    /// `... 198.18.0.1.40000 > 198.18.0.2.4: Flags [S], cksum 0x1c46 (correct), seq 7, ...`
    fn parse(line: &str) -> Option<Syn> {
        if !line.contains("Flags [S]") {
            return None;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let arrow = words.iter().position(|w| *w == ">")?;
        let port = |w: &str| w.trim_end_matches(':').rsplit('.').next()?.parse().ok();
        let seq = words.iter().position(|w| *w == "seq")?;
        Some(Syn {
            src_port: port(words[arrow - 1])?,
            dst_port: port(words[arrow + 1])?,
            seq: words.get(seq + 1)?.trim_end_matches(',').parse().ok()?,
            checksum_ok: line.contains("(correct)"),
            ip_id: None,
        })
    }
}

/// A client config dir holding `config.toml`, readable by the unprivileged user too.
fn client_config(dir: &Path, text: &str) -> PathBuf {
    let conf_dir = dir.join("client/knock");
    fs::create_dir_all(&conf_dir).expect("client config dir");
    for d in [dir, &dir.join("client"), &conf_dir] {
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod dir");
    }
    let file = write(&conf_dir, "config.toml", text);
    fs::set_permissions(&file, fs::Permissions::from_mode(0o644)).expect("chmod config");
    dir.join("client")
}

/// The profile of the issue, pointed at the server; hits = 3 telnet-style.
fn home_profile(host: &str) -> String {
    format!(
        "[profiles.home]\nhost = \"{host}\"\nhits = 3\ndelay_ms = 20\n\n\
         [profiles.home.sequences]\nwake-laptop = \"4,2012,3\"\n"
    )
}

/// Runs `knock` and expects exit status 2 with an error, no panic; returns stderr.
fn knock_fails(link: &Link, xdg: &Path, args: &[&str]) -> String {
    let stderr = Knock::ours(&link.client)
        .config_home(xdg)
        .args(args)
        .fails();
    assert!(!stderr.contains("panicked"), "knock {args:?}: {stderr}");
    stderr
}

/// The `hitting` lines of `-v` output.
fn hitting(stdout: &str) -> Vec<&str> {
    stdout
        .lines()
        .filter(|l| l.starts_with("hitting "))
        .collect()
}

#[test]
fn profile_with_three_hits_opens_a_telnet_door_with_raw_syns() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let mut knockd = Knockd::start(&link, dir.path(), &door("wake", TELNET_DOOR));
    let xdg = client_config(dir.path(), &home_profile(SERVER_V4));
    let capture = Capture::start(&link, dir.path(), SERVER_V4, 9);

    let out = Knock::ours(&link.client)
        .config_home(&xdg)
        .args(["-v", "home", "wake-laptop"])
        .stdout();
    assert!(out.contains("tcp hits: raw SYNs"), "{out}");
    let mut want = Vec::new();
    for port in [4, 2012, 3] {
        want.extend(std::iter::repeat_n(
            format!("hitting tcp {SERVER_V4}:{port}"),
            3,
        ));
    }
    assert_eq!(hitting(&out), want);
    knockd.wait_open(CLIENT_V4, "wake");

    // On the wire: three SYNs per port, each trio one "connection" (same source port and
    // sequence number, as kernel retransmissions), a new one per port, checksums right.
    let syns = capture.syns();
    assert_eq!(syns.len(), 9, "{syns:?}");
    for (trio, port) in syns.chunks(3).zip([4, 2012, 3]) {
        assert!(trio.iter().all(|s| s.dst_port == port), "{trio:?}");
        assert!(
            trio.iter()
                .all(|s| (s.src_port, s.seq) == (trio[0].src_port, trio[0].seq)),
            "{trio:?}"
        );
        assert!(trio.iter().all(|s| s.checksum_ok), "{trio:?}");
        // Yet each has its own IP ID, as a kernel's retransmissions have: a server that drops
        // copies of one packet (knock-server on `any`) counts all three, even back to back.
        let ids: HashSet<_> = trio.iter().map(|s| s.ip_id).collect();
        assert!(ids.len() == 3 && !ids.contains(&None), "{trio:?}");
    }
    let attempts: HashSet<_> = syns.iter().map(|s| (s.src_port, s.seq)).collect();
    assert_eq!(attempts.len(), 3, "{syns:?}");
}

#[test]
fn profile_with_three_hits_opens_a_telnet_door_unprivileged() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let mut knockd = Knockd::start(&link, dir.path(), &door("wake", TELNET_DOOR));
    let xdg = client_config(dir.path(), &home_profile(SERVER_V4));
    let capture = Capture::start(&link, dir.path(), SERVER_V4, 9);

    let out = Knock::ours(&link.client)
        .config_home(&xdg)
        .unprivileged(true)
        .args(["-v", "home", "wake-laptop"])
        .stdout();
    assert!(
        out.contains(
            "tcp hits: abandoned connect() attempts (no raw socket without root or CAP_NET_RAW)"
        ),
        "{out}"
    );
    assert_eq!(hitting(&out).len(), 9, "{out}");
    knockd.wait_open(CLIENT_V4, "wake");

    // Each hit is its own connection attempt: nine SYNs in order, from nine source ports.
    let syns = capture.syns();
    let ports: Vec<u16> = syns.iter().map(|s| s.dst_port).collect();
    assert_eq!(ports, [4, 4, 4, 2012, 2012, 2012, 3, 3, 3]);
    let sources: HashSet<u16> = syns.iter().map(|s| s.src_port).collect();
    assert_eq!(sources.len(), 9, "{syns:?}");
}

#[test]
fn ad_hoc_knockd_style_sequence_opens_a_door() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let doors = format!(
        "{}{}",
        door("mixed", "7000,8000:udp,9000"),
        door("udp", "7001:udp,8001:udp,9001:udp")
    );
    let mut knockd = Knockd::start(&link, dir.path(), &doors);
    let xdg = client_config(dir.path(), "");

    let out = Knock::ours(&link.client)
        .config_home(&xdg)
        .args(["-v", SERVER_V4, "7000", "8000:udp", "9000"])
        .stdout();
    assert_eq!(
        hitting(&out),
        [
            format!("hitting tcp {SERVER_V4}:7000"),
            format!("hitting udp {SERVER_V4}:8000"),
            format!("hitting tcp {SERVER_V4}:9000"),
        ]
    );
    knockd.wait_open(CLIENT_V4, "mixed");
    // -u and -d as knock has them, unprivileged.
    Knock::ours(&link.client)
        .config_home(&xdg)
        .unprivileged(true)
        .args(["-u", "-d", "10", SERVER_V4, "7001", "8001", "9001"])
        .ok();
    knockd.wait_open(CLIENT_V4, "udp");
}

#[test]
fn ipv6_knocks_open_doors_raw_and_unprivileged() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let doors = format!(
        "{}{}",
        door("wake", TELNET_DOOR),
        door("mixed", "7000,8000:udp,9000")
    );
    let mut knockd = Knockd::start(&link, dir.path(), &doors);
    let xdg = client_config(dir.path(), &home_profile(SERVER_V6));
    let capture = Capture::start(&link, dir.path(), SERVER_V6, 9);

    let out = Knock::ours(&link.client)
        .config_home(&xdg)
        .args(["-v", "home", "wake-laptop"])
        .stdout();
    assert!(out.contains("tcp hits: raw SYNs"), "{out}");
    assert!(
        out.contains(&format!("hitting tcp {SERVER_V6}:2012")),
        "{out}"
    );
    knockd.wait_open(CLIENT_V6, "wake");
    let syns = capture.syns();
    assert_eq!(syns.len(), 9, "{syns:?}");
    assert!(syns.iter().all(|s| s.checksum_ok), "{syns:?}");
    let attempts: HashSet<_> = syns.iter().map(|s| (s.src_port, s.seq)).collect();
    assert_eq!(attempts.len(), 3, "{syns:?}");

    Knock::ours(&link.client)
        .config_home(&xdg)
        .unprivileged(true)
        .args(["-6", SERVER_V6, "7000", "8000:udp", "9000"])
        .ok();
    knockd.wait_open(CLIENT_V6, "mixed");
}

#[test]
fn errors_exit_2_with_one_clear_message() {
    let Some(link) = Link::up() else { return };
    let dir = scratch();
    let xdg = client_config(dir.path(), &home_profile(SERVER_V4));

    let stderr = knock_fails(&link, &xdg, &["hmoe", "wake-laptop"]);
    assert!(
        stderr.contains("unknown profile `hmoe`: the profiles are `home`; did you mean `home`?"),
        "{stderr}"
    );
    let stderr = knock_fails(&link, &xdg, &["home", "wake"]);
    assert!(
        stderr.contains("has no sequence `wake`: its sequences are `wake-laptop`"),
        "{stderr}"
    );

    let empty = dir.path().join("no-config-here");
    let stderr = knock_fails(&link, &empty, &["home", "wake-laptop"]);
    let looked = empty.join("knock/config.toml");
    assert!(
        stderr.contains(&format!("no config file at {}", looked.display())),
        "{stderr}"
    );
    assert!(stderr.contains("[profiles.home]"), "{stderr}");

    // Inside the namespace no DNS server is reachable, so resolving fails without a query
    // leaving the machine.
    let stderr = knock_fails(&link, &xdg, &["no-such-host.invalid", "7000"]);
    assert!(
        stderr.contains("cannot resolve host `no-such-host.invalid`"),
        "{stderr}"
    );

    // No route to this (unused) address: the hit cannot be sent, which is an error.
    let stderr = knock_fails(&link, &xdg, &["fd00:99::1", "7000"]);
    assert!(
        stderr.contains("could not send the tcp knock to [fd00:99::1]:7000"),
        "{stderr}"
    );
    let stderr = knock_fails(&link, &xdg, &["fd00:99::1", "7000:udp"]);
    assert!(
        stderr.contains("could not send the udp knock to [fd00:99::1]:7000"),
        "{stderr}"
    );
}

//! The `open` action's nftables table, for real: inside network namespaces that each test
//! creates and always deletes (knock-e2e's [`Netns`] and [`Link`]: a server and a client
//! joined by veth, 198.18.0.0/24 and fd00:18::/64 only), with our table installed in the
//! server's namespace.
//!
//! Needs root, iproute2 and nftables (CI runs as root, where a skip fails: a firewall test
//! that passes without a firewall proves nothing).

use knock_server::actions::firewall;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use knock_e2e::{CLIENT_V4, CLIENT_V6, Link, Netns, OTHER_V4, OTHER_V6, SERVER_V4, SERVER_V6};

use firewall::{Firewall, Nft};

/// The default instance's table.
const T: &str = "knock_server";
use knock_proto::sequence::Knock;
use serde_json::Value;

/// `nft` run in `ns`.
fn nft(ns: &Netns) -> Nft {
    Nft::with_command(["ip", "netns", "exec", &ns.name, "nft"])
}

/// Our table in `ns` as `nft -j` lists it, or `None` when there is none.
fn table(ns: &Netns) -> Option<Vec<Value>> {
    let out = ns.run("nft", ["-j", "list", "table", "inet", "knock_server"]);
    if !out.status.success() {
        return None;
    }
    let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
    Some(doc["nftables"].as_array().unwrap().clone())
}

/// `nft ARGS` in `ns`, which must succeed; its stdout.
fn nft_ok(ns: &Netns, args: &[&str]) -> String {
    String::from_utf8_lossy(&ns.ok("nft", args).stdout).into_owned()
}

fn knocks(list: &[&str]) -> Vec<Knock> {
    list.iter().map(|k| k.parse().unwrap()).collect()
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// The set called `name` in a listing of our table.
fn set<'a>(table: &'a [Value], name: &str) -> &'a Value {
    table
        .iter()
        .find_map(|o| o.get("set").filter(|s| s["name"] == name))
        .unwrap_or_else(|| panic!("no set {name} in {table:?}"))
}

/// A set's elements as `(value, timeout)`, the value as nft writes it (`198.18.0.2 . tcp . 22`).
fn elements(set: &Value) -> Vec<(String, Option<u64>)> {
    let words = |v: &Value| -> String {
        let parts = v["concat"].as_array().unwrap();
        let parts: Vec<String> = parts
            .iter()
            .map(|p| p.as_str().map_or_else(|| p.to_string(), str::to_owned))
            .collect();
        parts.join(" . ")
    };
    let Some(elems) = set.get("elem").and_then(Value::as_array) else {
        return Vec::new();
    };
    elems
        .iter()
        .map(|e| match e.get("elem") {
            Some(timed) => (words(&timed["val"]), timed["timeout"].as_u64()),
            None => (words(e), None),
        })
        .collect()
}

#[test]
fn install_allow_reload_and_remove_shape_our_table() {
    let Some(ns) = Netns::up("fwt") else { return };
    // A table left by a run that was killed: install must replace it, not fail on it.
    ns.ok("nft", ["add", "table", "inet", "knock_server"]);
    ns.ok(
        "nft",
        [
            "add",
            "set",
            "inet",
            "knock_server",
            "stale",
            "{ type ipv4_addr; }",
        ],
    );

    let fw = Firewall::install_with(nft(&ns), T, &knocks(&["22", "500:udp"])).unwrap();
    let t = table(&ns).unwrap();
    assert!(
        t.iter()
            .all(|o| o.get("set").is_none_or(|s| s["name"] != "stale"))
    );
    assert_eq!(
        elements(set(&t, "guarded")),
        [("tcp . 22".into(), None), ("udp . 500".into(), None)]
    );
    assert_eq!(set(&t, "allow4")["flags"], serde_json::json!(["timeout"]));
    assert_eq!(elements(set(&t, "allow4")), []);
    let input = t
        .iter()
        .find_map(|o| o.get("chain").filter(|c| c["name"] == "input"))
        .unwrap();
    assert_eq!(
        (&input["hook"], &input["prio"]),
        (&"input".into(), &(-10).into())
    );

    fw.allow(ip("198.18.0.2"), &knocks(&["22"]), Duration::from_secs(30))
        .unwrap();
    let t = table(&ns).unwrap();
    assert_eq!(
        elements(set(&t, "allow4")),
        [("198.18.0.2 . tcp . 22".into(), Some(30))]
    );

    // Knocking again while open restarts the window: same element, new timeout, no error.
    fw.allow(ip("198.18.0.2"), &knocks(&["22"]), Duration::from_secs(600))
        .unwrap();
    fw.allow(
        ip("fd00::2"),
        &knocks(&["500:udp"]),
        Duration::from_millis(1500),
    )
    .unwrap();
    let t = table(&ns).unwrap();
    assert_eq!(
        elements(set(&t, "allow4")),
        [("198.18.0.2 . tcp . 22".into(), Some(600))]
    );
    assert_eq!(
        elements(set(&t, "allow6")),
        [("fd00::2 . udp . 500".into(), Some(2))]
    );

    // A reload changes the guarded ports and leaves open doors open.
    fw.set_guarded(&knocks(&["2222"])).unwrap();
    let t = table(&ns).unwrap();
    assert_eq!(elements(set(&t, "guarded")), [("tcp . 2222".into(), None)]);
    assert_eq!(elements(set(&t, "allow4")).len(), 1);

    // A close request takes the element back, whether or not it is still there.
    fw.revoke(ip("198.18.0.2"), &knocks(&["22"])).unwrap();
    fw.revoke(ip("198.18.0.2"), &knocks(&["22"])).unwrap();
    let t = table(&ns).unwrap();
    assert_eq!(elements(set(&t, "allow4")), []);
    assert_eq!(elements(set(&t, "allow6")).len(), 1);
    // Deleted behind our back, the table is noticed and put back.
    assert!(fw.is_present());
    ns.ok("nft", ["delete", "table", "inet", "knock_server"]);
    assert!(!fw.is_present());
    fw.reinstall(&knocks(&["2222"])).unwrap();
    assert!(fw.is_present());

    fw.remove().unwrap();
    assert_eq!(table(&ns), None);
    firewall::remove_stale_with(&nft(&ns), T).unwrap();
}

#[test]
fn a_dropped_firewall_removes_its_table_and_a_killed_one_leaves_the_guard() {
    let Some(ns) = Netns::up("fwd") else { return };
    let fw = Firewall::install_with(nft(&ns), T, &knocks(&["22"])).unwrap();
    drop(fw);
    assert_eq!(table(&ns), None);

    // kill -9 runs no destructor: the guard stays, so the ports stay closed.
    let fw = Firewall::install_with(nft(&ns), T, &knocks(&["22"])).unwrap();
    std::mem::forget(fw);
    assert!(table(&ns).is_some());
    firewall::remove_stale_with(&nft(&ns), T).unwrap();
    assert_eq!(table(&ns), None);
}

#[test]
fn two_instances_tables_live_side_by_side_and_each_touches_only_its_own() {
    let Some(ns) = Netns::up("fwi") else { return };
    let list = |table: &str| ns.run("nft", ["list", "table", "inet", table]);
    let a = Firewall::install_with(nft(&ns), T, &knocks(&["22"])).unwrap();
    a.allow(ip("198.18.0.2"), &knocks(&["22"]), Duration::from_secs(60))
        .unwrap();
    // A second instance's install (which replaces a stale table of its own) leaves ours.
    let b = Firewall::install_with(nft(&ns), "knock_server_eth1", &knocks(&["2222"])).unwrap();
    let ours = String::from_utf8_lossy(&list(T).stdout).into_owned();
    assert!(
        ours.contains("198.18.0.2 . tcp . 22") && ours.contains("tcp . 22"),
        "{ours}"
    );
    // Its removal and its put-back check see only its own table.
    drop(b);
    assert!(list(T).status.success());
    assert!(!list("knock_server_eth1").status.success());
    assert!(a.is_present(), "b's removal left a's table");
    drop(a);
    assert!(!list(T).status.success());
}

#[test]
fn a_table_put_back_holds_the_allows_it_had() {
    let Some(ns) = Netns::up("fwr") else { return };
    let fw = Firewall::install_with(nft(&ns), T, &knocks(&["22"])).unwrap();
    ns.ok("nft", ["flush", "ruleset"]);
    assert!(!fw.is_present());
    fw.reinstall(&knocks(&["22"])).unwrap();
    fw.allow(ip("198.18.0.2"), &knocks(&["22"]), Duration::from_secs(60))
        .unwrap();
    assert!(fw.is_present());
    let table = nft_ok(&ns, &["list", "table", "inet", T]);
    assert!(table.contains("198.18.0.2 . tcp . 22"), "{table}");
    fw.revoke(ip("198.18.0.2"), &knocks(&["22"])).unwrap();
    let table = nft_ok(&ns, &["list", "table", "inet", T]);
    assert!(!table.contains("198.18.0.2"), "{table}");
    // Revoking what is not there is no error.
    fw.revoke(ip("198.18.0.2"), &knocks(&["22"])).unwrap();
}

#[test]
fn a_refused_batch_is_reported_in_nfts_own_words() {
    let Some(ns) = Netns::up("fwe") else { return };
    let fw = Firewall::install_with(nft(&ns), T, &knocks(&["22"])).unwrap();
    // Someone deleted our table under us: opening a door now fails, and says why.
    ns.ok("nft", ["delete", "table", "inet", "knock_server"]);
    let e = fw
        .allow(ip("198.18.0.2"), &knocks(&["22"]), Duration::from_secs(5))
        .unwrap_err();
    assert!(
        matches!(&e, firewall::FirewallError::Refused { message, .. }
            if message.contains("No such file or directory")),
        "{e}"
    );
}

/// A TCP connection from `from` (an address of the client host) to the server's `port`.
fn connect(link: &Link, from: &str, port: u16) -> io::Result<TcpStream> {
    let from = ip(from);
    let to = SocketAddr::new(server_address(from), port);
    link.client.enter(|| {
        let domain = socket2::Domain::for_address(to);
        let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
        s.bind(&SocketAddr::new(from, 0).into())?;
        s.connect_timeout(&to.into(), Duration::from_secs(5))?;
        Ok(s.into())
    })
}

/// A datagram from `from` to the server's UDP echo on `port`: the echo, or the error
/// the ICMP answer turned into (ConnectionRefused for "port unreachable").
fn udp(link: &Link, from: &str, port: u16) -> io::Result<Vec<u8>> {
    let from = ip(from);
    let to = SocketAddr::new(server_address(from), port);
    let socket = link
        .client
        .enter(|| UdpSocket::bind(SocketAddr::new(from, 0)))?;
    socket.connect(to)?;
    socket.set_read_timeout(Some(Duration::from_secs(5)))?;
    socket.send(b"knock?")?;
    let mut buf = [0u8; 64];
    let n = socket.recv(&mut buf)?;
    Ok(buf[..n].to_vec())
}

/// The server's address of `from`'s family.
fn server_address(from: IpAddr) -> IpAddr {
    match from {
        IpAddr::V4(_) => ip(SERVER_V4),
        IpAddr::V6(_) => ip(SERVER_V6),
    }
}

/// Echoes every TCP connection and UDP datagram on `port` (both families), until the process
/// ends; the sockets live in `ns`.
fn echo_servers(ns: &Netns, port: u16) {
    let (tcp, udp) = ns.enter(|| {
        let any = SocketAddr::new(ip("::"), port);
        (
            TcpListener::bind(any).unwrap(),
            UdpSocket::bind(any).unwrap(),
        )
    });
    std::thread::spawn(move || {
        for mut stream in tcp.incoming().flatten() {
            std::thread::spawn(move || {
                let mut buf = [0u8; 64];
                while let Ok(n @ 1..) = stream.read(&mut buf) {
                    if stream.write_all(&buf[..n]).is_err() {
                        break;
                    }
                }
            });
        }
    });
    std::thread::spawn(move || {
        let mut buf = [0u8; 64];
        while let Ok((n, peer)) = udp.recv_from(&mut buf) {
            let _ = udp.send_to(&buf[..n], peer);
        }
    });
}

/// Polls `condition` every 50 ms until it holds; panics after `limit`.
fn wait_for(what: &str, limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !condition() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn refused<T: std::fmt::Debug>(r: io::Result<T>) -> bool {
    match r {
        Err(e) if e.kind() == io::ErrorKind::ConnectionRefused => true,
        Err(e) => panic!("expected a refusal, got {e}"),
        Ok(v) => panic!("expected a refusal, got through: {v:?}"),
    }
}

fn echoes(stream: &mut TcpStream, text: &[u8]) -> bool {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut buf = vec![0u8; text.len()];
    stream.write_all(text).is_ok() && stream.read_exact(&mut buf).is_ok() && buf == text
}

const GUARDED: u16 = 2222;
const UNGUARDED: u16 = 2223;

#[test]
fn the_door_opens_for_the_knocker_only_and_the_kernel_closes_it() {
    let Some(link) = Link::up() else { return };
    link.add_other_addresses();
    echo_servers(&link.server, GUARDED);
    echo_servers(&link.server, UNGUARDED);
    // The link is up once the unguarded port answers, over both families.
    for from in [CLIENT_V4, CLIENT_V6] {
        wait_for(
            "the veth link carries traffic",
            Duration::from_secs(20),
            || connect(&link, from, UNGUARDED).is_ok(),
        );
    }

    assert!(
        connect(&link, OTHER_V4, GUARDED).is_ok(),
        "the listener answers unguarded"
    );
    let fw = Firewall::install_with(nft(&link.server), T, &knocks(&["2222", "2222:udp"])).unwrap();
    for from in [CLIENT_V4, OTHER_V4, CLIENT_V6] {
        assert!(refused(connect(&link, from, GUARDED)), "{from}");
    }
    assert!(refused(udp(&link, CLIENT_V4, GUARDED)));
    // Other ports are left to the rest of the firewall, and loopback is trusted.
    assert!(connect(&link, OTHER_V4, UNGUARDED).is_ok());
    let local = link
        .server
        .enter(|| TcpStream::connect(("127.0.0.1", GUARDED)));
    assert!(local.is_ok(), "{local:?}");

    let both = knocks(&["2222", "2222:udp"]);
    fw.allow(ip(CLIENT_V4), &both, Duration::from_secs(600))
        .unwrap();
    let mut established = connect(&link, CLIENT_V4, GUARDED).unwrap();
    assert!(echoes(&mut established, b"open"));
    assert_eq!(udp(&link, CLIENT_V4, GUARDED).unwrap(), b"knock?");
    assert!(refused(connect(&link, OTHER_V4, GUARDED)));
    assert!(refused(udp(&link, OTHER_V4, GUARDED)));
    assert!(refused(connect(&link, CLIENT_V6, GUARDED)));

    // Knocking again restarts the window with the new length; nothing but the kernel's
    // timeout closes it from here on.
    fw.allow(ip(CLIENT_V4), &both, Duration::from_secs(2))
        .unwrap();
    wait_for(
        "the kernel closes the door",
        Duration::from_secs(30),
        || connect(&link, CLIENT_V4, GUARDED).is_err(),
    );
    assert!(refused(connect(&link, CLIENT_V4, GUARDED)));
    assert!(refused(udp(&link, CLIENT_V4, GUARDED)));
    assert!(echoes(&mut established, b"still up after the window"));

    fw.allow(ip(CLIENT_V6), &knocks(&["2222"]), Duration::from_secs(600))
        .unwrap();
    assert!(connect(&link, CLIENT_V6, GUARDED).is_ok());
    assert!(refused(connect(&link, OTHER_V6, GUARDED)));
    assert!(refused(connect(&link, CLIENT_V4, GUARDED)));

    fw.remove().unwrap();
    assert!(connect(&link, OTHER_V4, GUARDED).is_ok());
}

/// A server's `/etc/nftables.conf`: input dropped but for the unguarded port, ICMP and what
/// it started; nothing for the guarded port. Debian's file starts with `flush ruleset`, as
/// here, so `systemctl restart nftables` deletes our table too.
const POLICY_DROP: &str = "flush ruleset
table inet filter {
    chain input {
        type filter hook input priority filter; policy drop;
        ct state invalid drop
        ct state { established, related } accept
        iif lo accept
        meta l4proto { icmp, ipv6-icmp } accept
        tcp dport 2223 accept
    }
    chain forward {
        type filter hook forward priority filter; policy drop;
    }
}
";

/// The ruleset in `ns` without counters, as `nft -s list ruleset` prints it.
fn ruleset(ns: &Netns) -> String {
    nft_ok(ns, &["-s", "list", "ruleset"])
}

/// Loads `text` into `ns` with `nft -f`.
fn load(ns: &Netns, text: &str) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), text).unwrap();
    ns.ok("nft", ["-f", &file.path().display().to_string()]);
}

/// Our table, marking what it lets in for the other firewalls, in `ns`.
fn integrated(ns: &Netns, guarded: &[Knock]) -> Firewall {
    let integration = firewall::Integration::new(nft(ns), nft(ns).prefix(), T);
    Firewall::install_integrated(nft(ns), T, guarded, Some(integration)).unwrap()
}

#[test]
fn a_policy_drop_nftables_conf_lets_the_knocker_in_and_is_left_as_it_was() {
    let Some(link) = Link::up() else { return };
    link.add_other_addresses();
    echo_servers(&link.server, GUARDED);
    echo_servers(&link.server, UNGUARDED);
    load(&link.server, POLICY_DROP);
    for from in [CLIENT_V4, CLIENT_V6] {
        wait_for("the link carries traffic", Duration::from_secs(20), || {
            connect(&link, from, UNGUARDED).is_ok()
        });
    }
    let before = ruleset(&link.server);
    let guarded = knocks(&["2222"]);
    let fw = integrated(&link.server, &guarded);
    fw.allow(ip(CLIENT_V4), &guarded, Duration::from_secs(600))
        .unwrap();
    let mut established = connect(&link, CLIENT_V4, GUARDED).expect("the knocker gets in");
    assert!(echoes(&mut established, b"through the user's policy drop"));
    assert!(refused(connect(&link, OTHER_V4, GUARDED)), "others do not");

    // A reload of the user's table alone (as fw4 reloads: its rules flushed and loaded
    // again) takes our rule out; the check puts it back.
    let reload = POLICY_DROP.replace("flush ruleset", "flush table inet filter");
    load(&link.server, &reload);
    assert!(
        connect(&link, CLIENT_V4, GUARDED).is_err(),
        "our rule is gone"
    );
    fw.check_integration();
    assert!(connect(&link, CLIENT_V4, GUARDED).is_ok(), "and back");
    assert!(echoes(&mut established, b"the connection survived"));

    // `systemctl restart nftables` flushes the whole ruleset: the table comes back (the
    // engine then lets its knockers in again), and our rule with it.
    load(&link.server, POLICY_DROP);
    assert!(!fw.is_present());
    fw.reinstall(&guarded).unwrap();
    fw.allow(ip(CLIENT_V6), &guarded, Duration::from_secs(600))
        .unwrap();
    assert!(connect(&link, CLIENT_V6, GUARDED).is_ok());
    assert!(refused(connect(&link, OTHER_V6, GUARDED)));

    fw.remove().unwrap();
    assert_eq!(
        ruleset(&link.server),
        before,
        "the user's ruleset as it was"
    );
}

#[test]
fn legacy_iptables_with_input_dropped_lets_the_knocker_in_and_is_left_as_it_was() {
    let Some(link) = Link::up() else { return };
    echo_servers(&link.server, GUARDED);
    for (tool, icmp) in [
        ("iptables-legacy", "icmp"),
        ("ip6tables-legacy", "ipv6-icmp"),
    ] {
        link.server
            .ok(tool, ["-A", "INPUT", "-p", icmp, "-j", "ACCEPT"]);
        link.server.ok(tool, ["-P", "INPUT", "DROP"]);
    }
    let saved = |tool: &str| {
        let out = link.server.ok(tool, [] as [&str; 0]);
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|l| !l.starts_with('#'))
            .map(|l| l.split(" [").next().unwrap_or(l).to_owned() + "\n")
            .collect::<String>()
    };
    let before = (
        saved("iptables-legacy-save"),
        saved("ip6tables-legacy-save"),
    );
    let guarded = knocks(&["2222"]);
    let fw = integrated(&link.server, &guarded);
    assert!(
        fw.in_legacy(),
        "legacy iptables is one of the firewalls found"
    );
    fw.allow(ip(CLIENT_V4), &guarded, Duration::from_secs(600))
        .unwrap();
    fw.allow(ip(CLIENT_V6), &guarded, Duration::from_secs(600))
        .unwrap();
    let mut established = connect(&link, CLIENT_V4, GUARDED).expect("the knocker gets in");
    assert!(echoes(&mut established, b"past -P INPUT DROP"));
    assert!(connect(&link, CLIENT_V6, GUARDED).is_ok(), "over IPv6 too");
    // `iptables-restore` of the user's rules (a reload) drops ours; the check puts it back.
    link.server.ok("iptables-legacy", ["-D", "INPUT", "1"]);
    fw.check_integration();
    assert!(
        connect(&link, CLIENT_V4, GUARDED).is_ok(),
        "back after a reload"
    );
    fw.remove().unwrap();
    let after = (
        saved("iptables-legacy-save"),
        saved("ip6tables-legacy-save"),
    );
    assert_eq!(after, before, "the user's rules as they were");
}

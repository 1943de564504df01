//! The `open` action's nftables table, for real: inside network namespaces that each test
//! creates and always deletes, a server and a client joined by veth (198.18.0.0/24 and
//! fd00::/64 only), with our table installed in the server's namespace.
//!
//! Needs root, iproute2 and nftables (CI runs as root). Without them every test fails with a
//! message saying so: a firewall test that passes without a firewall proves nothing.

use knock_server::actions::firewall;
use std::fs::File;
use std::io::{self, Read as _, Write as _};
use std::net::{IpAddr, SocketAddr, TcpListener, TcpStream, UdpSocket};
use std::os::fd::AsFd as _;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use firewall::{Firewall, Nft};

/// The default instance's table.
const T: &str = "knock_server";
use knock_proto::sequence::Knock;
use serde_json::Value;

/// A network namespace of our own, deleted on drop even when the test fails.
struct Netns {
    name: String,
}

impl Netns {
    fn new(tag: &str) -> Netns {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let name = format!("kfw{}-{n}-{tag}", std::process::id());
        let out = Command::new("ip")
            .args(["netns", "add", &name])
            .output()
            .expect("cannot run `ip`: these tests need iproute2");
        assert!(
            out.status.success(),
            "`ip netns add {name}` failed: {} (these tests need root)",
            String::from_utf8_lossy(&out.stderr).trim()
        );
        let ns = Netns { name };
        ns.ok(&["ip", "link", "set", "lo", "up"]);
        ns
    }

    /// Runs `argv` inside the namespace.
    fn run(&self, argv: &[&str]) -> std::process::Output {
        Command::new("ip")
            .args(["netns", "exec", &self.name])
            .args(argv)
            .output()
            .unwrap_or_else(|e| panic!("cannot run {argv:?} in {}: {e}", self.name))
    }

    /// Runs `argv` inside the namespace and returns its stdout; it must succeed.
    fn ok(&self, argv: &[&str]) -> String {
        let out = self.run(argv);
        assert!(
            out.status.success(),
            "{argv:?} failed in {}: {}",
            self.name,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn nft(&self) -> Nft {
        Nft::with_command(["ip", "netns", "exec", &self.name, "nft"])
    }

    /// Runs `f` on a thread that has joined the namespace: sockets it creates live there.
    fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = File::open(format!("/run/netns/{}", self.name)).unwrap();
        std::thread::scope(|s| {
            s.spawn(|| {
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .unwrap();
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// Our table as `nft -j` lists it, or `None` when there is none.
    fn table(&self) -> Option<Vec<Value>> {
        let out = self.run(&["nft", "-j", "list", "table", "inet", "knock_server"]);
        if !out.status.success() {
            return None;
        }
        let doc: Value = serde_json::from_slice(&out.stdout).unwrap();
        Some(doc["nftables"].as_array().unwrap().clone())
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .status();
    }
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
    if !knock_e2e::root_or_skip() {
        return;
    }
    let ns = Netns::new("t");
    // A table left by a run that was killed: install must replace it, not fail on it.
    ns.ok(&["nft", "add", "table", "inet", "knock_server"]);
    ns.ok(&[
        "nft",
        "add",
        "set",
        "inet",
        "knock_server",
        "stale",
        "{ type ipv4_addr; }",
    ]);

    let fw = Firewall::install_with(ns.nft(), T, &knocks(&["22", "500:udp"])).unwrap();
    let t = ns.table().unwrap();
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
    let t = ns.table().unwrap();
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
    let t = ns.table().unwrap();
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
    let t = ns.table().unwrap();
    assert_eq!(elements(set(&t, "guarded")), [("tcp . 2222".into(), None)]);
    assert_eq!(elements(set(&t, "allow4")).len(), 1);

    // A close request takes the element back, whether or not it is still there.
    fw.revoke(ip("198.18.0.2"), &knocks(&["22"])).unwrap();
    fw.revoke(ip("198.18.0.2"), &knocks(&["22"])).unwrap();
    let t = ns.table().unwrap();
    assert_eq!(elements(set(&t, "allow4")), []);
    assert_eq!(elements(set(&t, "allow6")).len(), 1);
    // Deleted behind our back, the table is noticed and put back.
    assert!(fw.is_present());
    ns.ok(&["nft", "delete", "table", "inet", "knock_server"]);
    assert!(!fw.is_present());
    fw.reinstall(&knocks(&["2222"])).unwrap();
    assert!(fw.is_present());

    fw.remove().unwrap();
    assert_eq!(ns.table(), None);
    firewall::remove_stale_with(&ns.nft(), T).unwrap();
}

#[test]
fn a_dropped_firewall_removes_its_table_and_a_killed_one_leaves_the_guard() {
    if !knock_e2e::root_or_skip() {
        return;
    }
    let ns = Netns::new("d");
    let fw = Firewall::install_with(ns.nft(), T, &knocks(&["22"])).unwrap();
    drop(fw);
    assert_eq!(ns.table(), None);

    // kill -9 runs no destructor: the guard stays, so the ports stay closed.
    let fw = Firewall::install_with(ns.nft(), T, &knocks(&["22"])).unwrap();
    std::mem::forget(fw);
    assert!(ns.table().is_some());
    firewall::remove_stale_with(&ns.nft(), T).unwrap();
    assert_eq!(ns.table(), None);
}

#[test]
fn two_instances_tables_live_side_by_side_and_each_touches_only_its_own() {
    if !knock_e2e::root_or_skip() {
        return;
    }
    let ns = Netns::new("i");
    let list = |table: &str| ns.run(&["nft", "list", "table", "inet", table]);
    let a = Firewall::install_with(ns.nft(), T, &knocks(&["22"])).unwrap();
    a.allow(ip("198.18.0.2"), &knocks(&["22"]), Duration::from_secs(60))
        .unwrap();
    // A second instance's install (which replaces a stale table of its own) leaves ours.
    let b = Firewall::install_with(ns.nft(), "knock_server_eth1", &knocks(&["2222"])).unwrap();
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
    if !knock_e2e::root_or_skip() {
        return;
    }
    let ns = Netns::new("r");
    let fw = Firewall::install_with(ns.nft(), T, &knocks(&["22"])).unwrap();
    ns.ok(&["nft", "flush", "ruleset"]);
    assert!(!fw.is_present());
    fw.reinstall(&knocks(&["22"])).unwrap();
    fw.allow(ip("198.18.0.2"), &knocks(&["22"]), Duration::from_secs(60))
        .unwrap();
    assert!(fw.is_present());
    let table = ns.ok(&["nft", "list", "table", "inet", T]);
    assert!(table.contains("198.18.0.2 . tcp . 22"), "{table}");
    fw.revoke(ip("198.18.0.2"), &knocks(&["22"])).unwrap();
    let table = ns.ok(&["nft", "list", "table", "inet", T]);
    assert!(!table.contains("198.18.0.2"), "{table}");
    // Revoking what is not there is no error.
    fw.revoke(ip("198.18.0.2"), &knocks(&["22"])).unwrap();
}

#[test]
fn a_refused_batch_is_reported_in_nfts_own_words() {
    if !knock_e2e::root_or_skip() {
        return;
    }
    let ns = Netns::new("e");
    let fw = Firewall::install_with(ns.nft(), T, &knocks(&["22"])).unwrap();
    // Someone deleted our table under us: opening a door now fails, and says why.
    ns.ok(&["nft", "delete", "table", "inet", "knock_server"]);
    let e = fw
        .allow(ip("198.18.0.2"), &knocks(&["22"]), Duration::from_secs(5))
        .unwrap_err();
    assert!(
        matches!(&e, firewall::FirewallError::Refused { message, .. }
            if message.contains("No such file or directory")),
        "{e}"
    );
}

/// The two ends of a veth link: the server (198.18.0.1, fd00::1) and a client with two
/// addresses per family (198.18.0.2 and .3, fd00::2 and ::3).
struct Link {
    server: Netns,
    client: Netns,
}

impl Link {
    fn new() -> Link {
        let server = Netns::new("s");
        let client = Netns::new("c");
        server.ok(&[
            "ip",
            "link",
            "add",
            "vs",
            "type",
            "veth",
            "peer",
            "name",
            "vc",
            "netns",
            &client.name,
        ]);
        server.ok(&["ip", "addr", "add", "198.18.0.1/24", "dev", "vs"]);
        server.ok(&["ip", "addr", "add", "fd00::1/64", "dev", "vs", "nodad"]);
        server.ok(&["ip", "link", "set", "vs", "up"]);
        for a in ["198.18.0.2/24", "198.18.0.3/24"] {
            client.ok(&["ip", "addr", "add", a, "dev", "vc"]);
        }
        for a in ["fd00::2/64", "fd00::3/64"] {
            client.ok(&["ip", "addr", "add", a, "dev", "vc", "nodad"]);
        }
        client.ok(&["ip", "link", "set", "vc", "up"]);
        Link { server, client }
    }

    /// A TCP connection from `from` to the server's `port`.
    fn connect(&self, from: &str, port: u16) -> io::Result<TcpStream> {
        let from = ip(from);
        let to = SocketAddr::new(server_address(from), port);
        self.client.enter(|| {
            let domain = socket2::Domain::for_address(to);
            let s = socket2::Socket::new(domain, socket2::Type::STREAM, None)?;
            s.bind(&SocketAddr::new(from, 0).into())?;
            s.connect_timeout(&to.into(), Duration::from_secs(5))?;
            Ok(s.into())
        })
    }

    /// A datagram from `from` to the server's UDP echo on `port`: the echo, or the error
    /// the ICMP answer turned into (ConnectionRefused for "port unreachable").
    fn udp(&self, from: &str, port: u16) -> io::Result<Vec<u8>> {
        let from = ip(from);
        let to = SocketAddr::new(server_address(from), port);
        let socket = self
            .client
            .enter(|| UdpSocket::bind(SocketAddr::new(from, 0)))?;
        socket.connect(to)?;
        socket.set_read_timeout(Some(Duration::from_secs(5)))?;
        socket.send(b"knock?")?;
        let mut buf = [0u8; 64];
        let n = socket.recv(&mut buf)?;
        Ok(buf[..n].to_vec())
    }
}

fn server_address(from: IpAddr) -> IpAddr {
    match from {
        IpAddr::V4(_) => ip("198.18.0.1"),
        IpAddr::V6(_) => ip("fd00::1"),
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
    if !knock_e2e::root_or_skip() {
        return;
    }
    let link = Link::new();
    echo_servers(&link.server, GUARDED);
    echo_servers(&link.server, UNGUARDED);
    // The link is up once the unguarded port answers, over both families.
    for from in ["198.18.0.2", "fd00::2"] {
        wait_for(
            "the veth link carries traffic",
            Duration::from_secs(20),
            || link.connect(from, UNGUARDED).is_ok(),
        );
    }

    assert!(
        link.connect("198.18.0.3", GUARDED).is_ok(),
        "the listener answers unguarded"
    );
    let fw = Firewall::install_with(link.server.nft(), T, &knocks(&["2222", "2222:udp"])).unwrap();
    for from in ["198.18.0.2", "198.18.0.3", "fd00::2"] {
        assert!(refused(link.connect(from, GUARDED)), "{from}");
    }
    assert!(refused(link.udp("198.18.0.2", GUARDED)));
    // Other ports are left to the rest of the firewall, and loopback is trusted.
    assert!(link.connect("198.18.0.3", UNGUARDED).is_ok());
    let local = link
        .server
        .enter(|| TcpStream::connect(("127.0.0.1", GUARDED)));
    assert!(local.is_ok(), "{local:?}");

    let both = knocks(&["2222", "2222:udp"]);
    fw.allow(ip("198.18.0.2"), &both, Duration::from_secs(600))
        .unwrap();
    let mut established = link.connect("198.18.0.2", GUARDED).unwrap();
    assert!(echoes(&mut established, b"open"));
    assert_eq!(link.udp("198.18.0.2", GUARDED).unwrap(), b"knock?");
    assert!(refused(link.connect("198.18.0.3", GUARDED)));
    assert!(refused(link.udp("198.18.0.3", GUARDED)));
    assert!(refused(link.connect("fd00::2", GUARDED)));

    // Knocking again restarts the window with the new length; nothing but the kernel's
    // timeout closes it from here on.
    fw.allow(ip("198.18.0.2"), &both, Duration::from_secs(2))
        .unwrap();
    wait_for(
        "the kernel closes the door",
        Duration::from_secs(30),
        || link.connect("198.18.0.2", GUARDED).is_err(),
    );
    assert!(refused(link.connect("198.18.0.2", GUARDED)));
    assert!(refused(link.udp("198.18.0.2", GUARDED)));
    assert!(echoes(&mut established, b"still up after the window"));

    fw.allow(ip("fd00::2"), &knocks(&["2222"]), Duration::from_secs(600))
        .unwrap();
    assert!(link.connect("fd00::2", GUARDED).is_ok());
    assert!(refused(link.connect("fd00::3", GUARDED)));
    assert!(refused(link.connect("198.18.0.2", GUARDED)));

    fw.remove().unwrap();
    assert!(link.connect("198.18.0.3", GUARDED).is_ok());
}

//! End-to-end test harness: hosts in network namespaces, the daemons on them, and the
//! clients that knock.
//!
//! - [`netns`]: [`Netns`] (one host), [`Link`] (a client and a server joined by veth) and
//!   [`Router`] (an outside client, a forwarding router and a LAN host). Each namespace has a
//!   unique name and is deleted in `Drop`, so a failing test leaves nothing behind; addresses
//!   are from 198.18.0.0/15 and fd00::/8 and traffic never leaves the namespaces.
//! - [`daemon`]: [`Daemon`] (any background process, killed in `Drop`) and the [`Server`]
//!   builder that starts knock-server or Debian's knockd and waits until it listens.
//! - [`knock`]: [`Knock`], one runner for every client (ours raw or unprivileged, Debian's
//!   knock, telnet, `knock.exe` under Wine).
//!
//! Tests wait on conditions ([`wait_until`], [`RunningServer::wait_log`]), never on sleeps.

pub mod daemon;
pub mod knock;
pub mod netns;

pub use daemon::{CANARY, Daemon, RunningServer, Server};
pub use knock::{DEBIAN_KNOCK, Knock, WINE, wine_command};
pub use netns::{
    CLIENT_V4, CLIENT_V6, LAN_V4, LAN_V6, Link, Netns, OTHER_V4, OTHER_V6, OUTSIDE_V4, OUTSIDE_V6,
    ROUTER_LAN_V4, ROUTER_LAN_V6, ROUTER_WAN_V4, ROUTER_WAN_V6, Router, SERVER_V4, SERVER_V6, veth,
};

use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use pnet_packet::{ipv4, tcp};

/// How long a test waits for something that should happen at once (a log line, a file).
/// Generous, because CI machines are slow; the wait ends as soon as the condition holds.
pub const PATIENCE: Duration = Duration::from_secs(20);

/// The variable `scripts/test` sets so that a test that needs root fails instead of skipping:
/// CI runs everything, and a skip there would hide a broken setup.
pub const REQUIRE_ROOT_VAR: &str = "KNOCK_TESTS_REQUIRE_ROOT";

/// Whether this process may build namespaces, send raw packets and manage nftables. As root:
/// true. Otherwise the calling test is skipped: this prints `skipped: TEST needs root (...)`
/// and returns false, and the test returns at once; with [`REQUIRE_ROOT_VAR`]`=1` (as
/// `scripts/test` runs) it fails instead, so that nothing is skipped silently in CI.
pub fn root_or_skip() -> bool {
    if rustix::process::getuid().is_root() {
        return true;
    }
    let test = std::thread::current()
        .name()
        .unwrap_or("this test")
        .to_owned();
    assert!(
        std::env::var_os(REQUIRE_ROOT_VAR).is_none_or(|v| v != "1"),
        "{test} needs root (network namespaces, raw sockets, nftables) and {REQUIRE_ROOT_VAR}=1 forbids skipping it: run as root"
    );
    // Straight to the stderr handle, not `eprintln!`, which the test harness captures and
    // shows only for failed tests: a skip must be seen.
    let _ = writeln!(
        io::stderr(),
        "skipped: {test} needs root (network namespaces, raw sockets, nftables); run scripts/test as root to include it"
    );
    false
}

/// Reads a file as text; empty if it does not exist (yet).
pub fn read(path: &Path) -> String {
    fs::read(path)
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default()
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(what: &str, timeout: Duration, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The path of one of the workspace's binaries (`knock`, `knock-server`), built next to this
/// test binary. `cargo test --workspace` builds them (each has integration tests of its own).
/// `KNOCK_BIN_DIR=/usr/bin` tests installed ones instead (scripts/test-deb does, with the
/// package installed).
pub fn bin(name: &str) -> PathBuf {
    if let Some(dir) = std::env::var_os("KNOCK_BIN_DIR") {
        let path = Path::new(&dir).join(name);
        assert!(path.exists(), "{} is missing", path.display());
        return path;
    }
    let exe = std::env::current_exe().expect("current_exe");
    // target/<profile>/deps/e2e-HASH -> target/<profile>/NAME
    let dir = exe.parent().and_then(Path::parent).expect("target dir");
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run `cargo build --workspace --bins` (or `cargo test --workspace`) first",
        path.display()
    );
    path
}

/// A knockd.conf of `n` doors of three knocks (TCP, UDP, TCP) on ports spread over the whole
/// range, each with `tcpflags = syn` and the lines of `extra` (e.g. `"  command = ...\n"`):
/// for the tests of many doors.
pub fn many_doors(n: u32, extra: &str) -> String {
    let mut conf = String::new();
    for i in 0..n {
        let p = |k: u32| 1 + (i * 3 + k) * 7 % 65_000;
        conf.push_str(&format!(
            "[door{i}]\n  sequence = {},{}:udp,{}\n  tcpflags = syn\n{extra}",
            p(0),
            p(1),
            p(2)
        ));
    }
    conf
}

/// A scratch directory for one test's files (configs, logs, marker files).
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("knock-e2e-")
        .tempdir()
        .expect("tempdir")
}

/// Writes `text` to `dir/name` and returns the path.
pub fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    fs::write(&p, text).expect("write file");
    p
}

/// Result helper for tests that check an `io::Result`.
pub fn io_ok<T>(r: io::Result<T>, what: &str) -> T {
    r.unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Writes an IPv4 TCP SYN (20 + 20 bytes) with correct checksums into `buf`: a forged knock
/// for a raw socket (`IPPROTO_RAW`), from any source the test chooses.
pub fn syn(
    buf: &mut [u8; 40],
    src: (std::net::Ipv4Addr, u16),
    dst: (std::net::Ipv4Addr, u16),
    seq: u32,
) {
    {
        let mut tcp = tcp::MutableTcpPacket::new(&mut buf[20..]).expect("room for a TCP header");
        tcp.set_source(src.1);
        tcp.set_destination(dst.1);
        tcp.set_sequence(seq);
        tcp.set_acknowledgement(0);
        tcp.set_data_offset(5);
        tcp.set_reserved(0);
        tcp.set_flags(tcp::TcpFlags::SYN);
        tcp.set_window(64_240);
        tcp.set_urgent_ptr(0);
        tcp.set_checksum(0);
        let sum = tcp::ipv4_checksum(&tcp.to_immutable(), &src.0, &dst.0);
        tcp.set_checksum(sum);
    }
    let mut ip = ipv4::MutableIpv4Packet::new(&mut buf[..]).expect("room for an IPv4 header");
    ip.set_version(4);
    ip.set_header_length(5);
    ip.set_dscp(0);
    ip.set_ecn(0);
    ip.set_total_length(40);
    ip.set_identification(seq as u16);
    ip.set_flags(ipv4::Ipv4Flags::DontFragment);
    ip.set_fragment_offset(0);
    ip.set_ttl(64);
    ip.set_next_level_protocol(pnet_packet::ip::IpNextHeaderProtocols::Tcp);
    ip.set_source(src.0);
    ip.set_destination(dst.0);
    ip.set_checksum(0);
    let sum = ipv4::checksum(&ip.to_immutable());
    ip.set_checksum(sum);
}

//! Hosts as network namespaces, and the links between them.
//!
//! [`Netns`] is one host: a namespace with a unique name, deleted (with everything still
//! running in it) in `Drop`. [`Link`] is two hosts, a client and a server, joined by a veth
//! pair whose ends are both `eth0`. [`Router`] is three: an outside client, a router with a
//! WAN and a LAN link that forwards IPv4 and IPv6, and a host on the LAN. Every address is
//! from the benchmarking range 198.18.0.0/15 or from fd00::/8, so traffic never leaves the
//! namespaces.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::os::fd::AsFd as _;
use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::daemon::Daemon;
use crate::{PATIENCE, root_or_skip, wait_until};

/// The client host's IPv4 address.
pub const CLIENT_V4: &str = "198.18.0.1";
/// The server host's IPv4 address.
pub const SERVER_V4: &str = "198.18.0.2";
/// A second client address, for "other sources never get in" ([`Link::add_other_addresses`]).
pub const OTHER_V4: &str = "198.18.0.3";
/// The client host's IPv6 address.
pub const CLIENT_V6: &str = "fd00:18::1";
/// The server host's IPv6 address.
pub const SERVER_V6: &str = "fd00:18::2";
/// A second IPv6 address of the client host ([`Link::add_other_addresses`]). It is added
/// deprecated (`preferred_lft 0`) so that the kernel never picks it as the source of a knock:
/// it would, being closer to the server's address than [`CLIENT_V6`] is.
pub const OTHER_V6: &str = "fd00:18::3";

/// The outside host's IPv4 address, on the router's WAN link.
pub const OUTSIDE_V4: &str = "198.18.0.1";
/// The router's IPv4 address on its WAN link.
pub const ROUTER_WAN_V4: &str = "198.18.0.2";
/// The router's IPv4 address on its LAN link.
pub const ROUTER_LAN_V4: &str = "198.19.0.1";
/// The LAN host's IPv4 address.
pub const LAN_V4: &str = "198.19.0.2";
/// The outside host's IPv6 address.
pub const OUTSIDE_V6: &str = "fd00:18::1";
/// The router's IPv6 address on its WAN link.
pub const ROUTER_WAN_V6: &str = "fd00:18::2";
/// The router's IPv6 address on its LAN link.
pub const ROUTER_LAN_V6: &str = "fd00:19::1";
/// The LAN host's IPv6 address.
pub const LAN_V6: &str = "fd00:19::2";

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// A number no other namespace or interface of this process has.
fn unique() -> usize {
    COUNTER.fetch_add(1, Ordering::SeqCst)
}

/// One network namespace, deleted on drop.
pub struct Netns {
    /// The namespace name (`ip netns`).
    pub name: String,
}

impl Netns {
    /// A fresh namespace of its own, named after `tag` (a few letters: `c`, `router`...), with
    /// loopback up. `None` when not root: the test is skipped (see [`root_or_skip`]).
    #[must_use = "a test without its namespace must return (it is skipped)"]
    pub fn up(tag: &str) -> Option<Netns> {
        root_or_skip().then(|| Netns::unique(tag))
    }

    /// A fresh namespace `knock-TAG-PID-N` (the caller has checked for root).
    fn unique(tag: &str) -> Netns {
        Netns::create(format!("knock-{tag}-{}-{}", std::process::id(), unique()))
    }

    fn create(name: String) -> Netns {
        // A namespace of that name can only be left over from a crashed run of this same pid:
        // remove it first so the test starts clean.
        let _ = Command::new("ip")
            .args(["netns", "del", &name])
            .stderr(Stdio::null())
            .status();
        run_ok("ip", ["netns", "add", &name]);
        let ns = Netns { name };
        ns.ok("ip", ["link", "set", "lo", "up"]);
        ns
    }

    /// A command that runs `program` inside this namespace.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &self.name]).arg(program);
        c
    }

    /// `program` in this namespace, as root or (with `unprivileged`) as nobody with no
    /// capability at all: what a user without CAP_NET_RAW runs.
    pub fn command_as(&self, program: impl AsRef<OsStr>, unprivileged: bool) -> Command {
        if !unprivileged {
            return self.command(program);
        }
        let mut c = self.command("setpriv");
        c.args([
            "--reuid=nobody",
            "--regid=nogroup",
            "--clear-groups",
            "--inh-caps=-all",
            "--",
        ])
        .arg(program);
        c
    }

    /// Runs to completion and returns the output, whatever the exit status.
    pub fn run<I, S>(&self, program: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|e| panic!("cannot run {program} in {}: {e}", self.name))
    }

    /// Runs and panics with its output unless it exits 0.
    pub fn ok<I, S>(&self, program: &str, args: I) -> Output
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let args: Vec<S> = args.into_iter().collect();
        let out = self.run(program, &args);
        assert!(
            out.status.success(),
            "{program} {:?} in {} failed: {}\n{}{}",
            args.iter()
                .map(|a| a.as_ref().to_string_lossy().into_owned())
                .collect::<Vec<_>>(),
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        out
    }

    /// Runs and returns stdout as a string, whatever the exit status.
    pub fn output<I, S>(&self, program: &str, args: I) -> String
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        String::from_utf8_lossy(&self.run(program, args).stdout).into_owned()
    }

    /// Sets a sysctl inside the namespace (net.* sysctls are per namespace).
    pub fn sysctl(&self, key: &str, value: &str) {
        self.ok("sysctl", ["-q", "-w", &format!("{key}={value}")]);
    }

    /// Adds `address` (`198.18.0.3/24`, `fd00:18::3/64`) to `dev`, IPv6 without duplicate
    /// address detection, plus `extra` words (`preferred_lft 0`).
    pub fn add_address(&self, dev: &str, address: &str, extra: &[&str]) {
        let mut args = vec!["addr", "add", address, "dev", dev];
        if address.contains(':') {
            args.insert(0, "-6");
            args.push("nodad");
        }
        args.extend(extra);
        self.ok("ip", args);
    }

    /// Starts a long-lived program in this namespace with stdout and stderr going to `log`.
    pub fn spawn<I, S>(&self, program: impl AsRef<OsStr>, args: I, log: &Path) -> Daemon
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let out = fs::File::create(log).expect("create daemon log");
        let err = out.try_clone().expect("clone log handle");
        let mut cmd = self.command(program);
        cmd.args(args).stdin(Stdio::null()).stdout(out).stderr(err);
        Daemon::spawn(cmd, log)
    }

    /// netcat (netcat-openbsd) listening on TCP `port` here, IPv6 only when `v6`, else IPv4
    /// only, writing what it receives to `out`; `keep` serves one connection after another
    /// (`-k`), else it serves one and exits. Returns once the socket listens.
    pub fn listen_tcp(&self, v6: bool, keep: bool, port: u16, out: &Path) -> Daemon {
        let port = port.to_string();
        let mut args = vec![if v6 { "-6" } else { "-4" }, "-n", "-l"];
        if keep {
            args.push("-k");
        }
        args.push(&port);
        let mut listener = self.spawn("nc", &args, out);
        let family = if v6 { "inet6" } else { "inet" };
        let sport = format!(":{port}");
        let ss = ["-H", "-l", "-t", "-n", "-f", family, "sport", "=", &sport];
        wait_until(
            &format!("nc to listen on {family} port {port}"),
            PATIENCE,
            || {
                listener.assert_running();
                !self.output("ss", ss).trim().is_empty()
            },
        );
        listener
    }

    /// Runs `f` on a thread that has joined this namespace, and returns what it returns:
    /// sockets it creates live here (setns applies to that thread only). A panic in `f` is
    /// the caller's.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let ns = File::open(format!("/run/netns/{}", self.name))
            .unwrap_or_else(|e| panic!("open namespace {}: {e}", self.name));
        std::thread::scope(|s| {
            s.spawn(|| {
                rustix::thread::move_into_link_name_space(
                    ns.as_fd(),
                    Some(rustix::thread::LinkNameSpaceType::Network),
                )
                .expect("join the namespace");
                f()
            })
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e))
        })
    }

    /// The pids of the processes in this namespace (`ip netns pids`).
    pub fn pids(&self) -> Vec<String> {
        let out = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output();
        out.map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .map(str::to_owned)
                .collect()
        })
        .unwrap_or_default()
    }

    /// Whether `dev` has its carrier (`LOWER_UP`).
    fn carrier(&self, dev: &str) -> bool {
        self.output("ip", ["-o", "link", "show", dev])
            .contains("LOWER_UP")
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill anything still running inside first, or the namespace lingers until it exits.
        for pid in self.pids() {
            let _ = Command::new("kill").args(["-9", &pid]).status();
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// Joins `a` and `b` with a veth pair, called `a_dev` in `a` and `b_dev` in `b`, both up,
/// and waits for the carrier on both ends. The caller adds the addresses.
pub fn veth(a: &Netns, a_dev: &str, b: &Netns, b_dev: &str) {
    // Interface names are at most 15 bytes; these exist only for a moment in the root
    // namespace before they move and are renamed.
    let (pid, n) = (std::process::id(), unique());
    let (va, vb) = (format!("ka{pid}x{n}"), format!("kb{pid}x{n}"));
    run_ok(
        "ip",
        ["link", "add", &va, "type", "veth", "peer", "name", &vb],
    );
    for (ns, tmp, dev) in [(a, &va, a_dev), (b, &vb, b_dev)] {
        run_ok("ip", ["link", "set", tmp, "netns", &ns.name]);
        ns.ok("ip", ["link", "set", tmp, "name", dev]);
        ns.ok("ip", ["link", "set", dev, "up"]);
    }
    // The veth carrier comes up at once, but be sure before a test reads timing-sensitive
    // behaviour into it.
    wait_until("veth carrier up", PATIENCE, || {
        a.carrier(a_dev) && b.carrier(b_dev)
    });
}

/// One end of a link: its host, its interface name there, its two addresses (with
/// their prefix lengths).
struct End<'a> {
    ns: &'a Netns,
    dev: &'a str,
    v4: String,
    v6: String,
}

/// Joins two hosts with a veth pair and addresses both ends.
fn join(a: End<'_>, b: End<'_>) {
    veth(a.ns, a.dev, b.ns, b.dev);
    for end in [&a, &b] {
        end.ns.add_address(end.dev, &end.v4, &[]);
        end.ns.add_address(end.dev, &end.v6, &[]);
    }
}

/// Two hosts in their own network namespaces, joined by a veth link.
pub struct Link {
    /// The client host's namespace.
    pub client: Netns,
    /// The server host's namespace.
    pub server: Netns,
}

impl Link {
    /// Creates both namespaces, the veth pair (`eth0` on each side), and the addresses
    /// ([`CLIENT_V4`]/24 and [`CLIENT_V6`]/64 on the client, the server ones on the server).
    ///
    /// `None` when not root: the test is skipped (see [`root_or_skip`]).
    #[must_use = "a test without its link must return (it is skipped)"]
    pub fn up() -> Option<Link> {
        if !root_or_skip() {
            return None;
        }
        let link = Link {
            client: Netns::unique("c"),
            server: Netns::unique("s"),
        };
        join(
            End {
                ns: &link.client,
                dev: "eth0",
                v4: format!("{CLIENT_V4}/24"),
                v6: format!("{CLIENT_V6}/64"),
            },
            End {
                ns: &link.server,
                dev: "eth0",
                v4: format!("{SERVER_V4}/24"),
                v6: format!("{SERVER_V6}/64"),
            },
        );
        Some(link)
    }

    /// Gives the client host its second addresses, [`OTHER_V4`] and [`OTHER_V6`] (the
    /// latter deprecated, so never the source the kernel picks).
    pub fn add_other_addresses(&self) {
        self.client
            .add_address("eth0", &format!("{OTHER_V4}/24"), &[]);
        self.client
            .add_address("eth0", &format!("{OTHER_V6}/64"), &["preferred_lft", "0"]);
    }
}

/// Three hosts: an outside client, a router and a host on the router's LAN.
///
/// ```text
/// outside eth0 ── wan  router  lan ── eth0 lan
/// 198.18.0.1    198.18.0.2  198.19.0.1   198.19.0.2
/// fd00:18::1    fd00:18::2  fd00:19::1   fd00:19::2
/// ```
///
/// The router forwards IPv4 and IPv6; the outside host reaches the LAN through it, and the
/// LAN host's default route is the router. Nothing filters yet: a test adds its firewall.
pub struct Router {
    /// The client outside, on the WAN link.
    pub outside: Netns,
    /// The router, with interfaces `wan` and `lan`.
    pub router: Netns,
    /// The host on the LAN.
    pub lan: Netns,
}

impl Router {
    /// Creates the three namespaces, both links, forwarding and routes.
    ///
    /// `None` when not root: the test is skipped (see [`root_or_skip`]).
    #[must_use = "a test without its router must return (it is skipped)"]
    pub fn up() -> Option<Router> {
        if !root_or_skip() {
            return None;
        }
        let r = Router {
            outside: Netns::unique("o"),
            router: Netns::unique("r"),
            lan: Netns::unique("l"),
        };
        let end = |ns, dev, v4: &str, v6: &str| End {
            ns,
            dev,
            v4: format!("{v4}/24"),
            v6: format!("{v6}/64"),
        };
        join(
            end(&r.outside, "eth0", OUTSIDE_V4, OUTSIDE_V6),
            end(&r.router, "wan", ROUTER_WAN_V4, ROUTER_WAN_V6),
        );
        join(
            end(&r.router, "lan", ROUTER_LAN_V4, ROUTER_LAN_V6),
            end(&r.lan, "eth0", LAN_V4, LAN_V6),
        );
        r.router.sysctl("net.ipv4.ip_forward", "1");
        r.router.sysctl("net.ipv6.conf.all.forwarding", "1");
        r.outside.ok(
            "ip",
            ["route", "add", "198.19.0.0/24", "via", ROUTER_WAN_V4],
        );
        r.outside.ok(
            "ip",
            ["-6", "route", "add", "fd00:19::/64", "via", ROUTER_WAN_V6],
        );
        r.lan
            .ok("ip", ["route", "add", "default", "via", ROUTER_LAN_V4]);
        r.lan.ok(
            "ip",
            ["-6", "route", "add", "default", "via", ROUTER_LAN_V6],
        );
        Some(r)
    }
}

/// Runs a program in the root namespace and panics unless it succeeds.
pub(crate) fn run_ok<I, S>(program: &str, args: I)
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<S> = args.into_iter().collect();
    let out = Command::new(program)
        .args(&args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        out.status.success(),
        "{program} {:?} failed: {}",
        args.iter()
            .map(|a| a.as_ref().to_string_lossy().into_owned())
            .collect::<Vec<_>>(),
        String::from_utf8_lossy(&out.stderr)
    );
}

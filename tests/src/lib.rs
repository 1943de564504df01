//! End-to-end test harness: a real link between two hosts.
//!
//! [`Link`] builds two network namespaces, a client host and a server host, joined by a veth
//! pair whose ends are both called `eth0` inside their namespace, with addresses from the
//! benchmarking range 198.18.0.0/15 and from fd00::/8. Each link gets unique namespace names
//! and deletes them in `Drop`, so a failing test leaves nothing behind. Traffic never leaves
//! the two namespaces.
//!
//! [`Daemon`] runs a long-lived program inside a namespace (our knock-server, Debian's knockd)
//! and kills it in `Drop`. Tests wait on conditions with [`wait_until`], never on sleeps.

use std::ffi::OsStr;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use pnet_packet::{ipv4, tcp};

/// The client host's IPv4 address.
pub const CLIENT_V4: &str = "198.18.0.1";
/// The server host's IPv4 address.
pub const SERVER_V4: &str = "198.18.0.2";
/// A second client address, for "other sources never get in".
pub const OTHER_V4: &str = "198.18.0.3";
/// The client host's IPv6 address.
pub const CLIENT_V6: &str = "fd00:18::1";
/// The server host's IPv6 address.
pub const SERVER_V6: &str = "fd00:18::2";

/// How long a test waits for something that should happen at once (a log line, a file).
/// Generous, because CI machines are slow; the wait ends as soon as the condition holds.
pub const PATIENCE: Duration = Duration::from_secs(20);

static COUNTER: AtomicUsize = AtomicUsize::new(0);

/// The variable `scripts/test` sets so that a test that needs root fails instead of skipping:
/// CI runs everything, and a skip there would hide a broken setup.
pub const REQUIRE_ROOT_VAR: &str = "KNOCK_TESTS_REQUIRE_ROOT";

/// Whether this process may build namespaces, send raw packets and manage nftables. As root:
/// true. Otherwise the calling test is skipped: this prints `skipped: TEST needs root (...)`
/// and returns false, and the test returns at once; with [`REQUIRE_ROOT_VAR`]`=1` (as
/// `scripts/test` runs) it fails instead, so that nothing is skipped silently in CI.
pub fn root_or_skip() -> bool {
    // rustix would need a dependency for one call; `id -u` keeps `unsafe` out.
    let out = Command::new("id").arg("-u").output().expect("run id -u");
    if String::from_utf8_lossy(&out.stdout).trim() == "0" {
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

/// Two hosts in their own network namespaces, joined by a veth link.
pub struct Link {
    /// The client host's namespace.
    pub client: Netns,
    /// The server host's namespace.
    pub server: Netns,
}

impl Link {
    /// Creates both namespaces, the veth pair, and the addresses
    /// ([`CLIENT_V4`]/24 and [`CLIENT_V6`]/64 on the client, the server ones on the server).
    ///
    /// `None` when not root: the test is skipped (see [`root_or_skip`]).
    #[must_use = "a test without its link must return (it is skipped)"]
    pub fn up() -> Option<Link> {
        if !root_or_skip() {
            return None;
        }
        let n = COUNTER.fetch_add(1, Ordering::SeqCst);
        let pid = std::process::id();
        let client = Netns::create(format!("knock-c-{pid}-{n}"));
        let server = Netns::create(format!("knock-s-{pid}-{n}"));
        // Interface names are at most 15 bytes; these exist only for a moment in the root
        // namespace before they move and are renamed to eth0.
        let (vc, vs) = (format!("kc{pid}x{n}"), format!("ks{pid}x{n}"));
        run_ok(
            "ip",
            ["link", "add", &vc, "type", "veth", "peer", "name", &vs],
        );
        run_ok("ip", ["link", "set", &vc, "netns", &client.name]);
        run_ok("ip", ["link", "set", &vs, "netns", &server.name]);
        for (ns, dev, v4, v6) in [
            (&client, &vc, CLIENT_V4, CLIENT_V6),
            (&server, &vs, SERVER_V4, SERVER_V6),
        ] {
            ns.ok("ip", ["link", "set", dev.as_str(), "name", "eth0"]);
            ns.ok("ip", ["addr", "add", &format!("{v4}/24"), "dev", "eth0"]);
            ns.ok(
                "ip",
                [
                    "-6",
                    "addr",
                    "add",
                    &format!("{v6}/64"),
                    "dev",
                    "eth0",
                    "nodad",
                ],
            );
            ns.ok("ip", ["link", "set", "eth0", "up"]);
        }
        let link = Link { client, server };
        // The link is usable once each side sees the other (veth carrier comes up at once,
        // but be sure before a test reads timing-sensitive behaviour into it).
        wait_until("veth carrier up", PATIENCE, || {
            link.client
                .output("ip", ["-o", "link", "show", "eth0"])
                .contains("LOWER_UP")
                && link
                    .server
                    .output("ip", ["-o", "link", "show", "eth0"])
                    .contains("LOWER_UP")
        });
        Some(link)
    }
}

/// One network namespace, deleted on drop.
pub struct Netns {
    /// The namespace name (`ip netns`).
    pub name: String,
}

impl Netns {
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
        let child = cmd.spawn().expect("spawn daemon");
        Daemon {
            child: Some(child),
            output: log.to_owned(),
        }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        // Kill anything still running inside first, or the namespace lingers until it exits.
        let pids = Command::new("ip")
            .args(["netns", "pids", &self.name])
            .output();
        if let Ok(out) = pids {
            for pid in String::from_utf8_lossy(&out.stdout).split_whitespace() {
                let _ = Command::new("kill").args(["-9", pid]).status();
            }
        }
        let _ = Command::new("ip")
            .args(["netns", "del", &self.name])
            .stderr(Stdio::null())
            .status();
    }
}

/// A background process, killed (SIGKILL) on drop if still running.
pub struct Daemon {
    child: Option<Child>,
    /// Where its stdout and stderr go.
    pub output: PathBuf,
}

impl Daemon {
    /// Its pid. Note: under `ip netns exec`, the pid is that of the program itself, because
    /// `ip netns exec` execs it after entering the namespace.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(Child::id).unwrap_or(0)
    }

    /// Sends a signal (`"TERM"`, `"HUP"`, `"KILL"`, ...).
    pub fn signal(&self, sig: &str) {
        run_ok("kill", [format!("-{sig}"), self.pid().to_string()]);
    }

    /// Panics with the output so far if the process has exited: a daemon that died at start
    /// should fail the test at once with its error, not after a long wait.
    pub fn assert_running(&mut self) {
        if let Some(status) = self
            .child
            .as_mut()
            .and_then(|c| c.try_wait().ok().flatten())
        {
            panic!("daemon exited early ({status}):\n{}", read(&self.output));
        }
    }

    /// Waits (up to [`PATIENCE`]) for it to exit and returns its status.
    pub fn wait_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PATIENCE;
        let child = self.child.as_mut().expect("child present");
        loop {
            if let Some(st) = child.try_wait().expect("try_wait") {
                self.child = None;
                return st;
            }
            assert!(
                Instant::now() < deadline,
                "daemon did not exit:\n{}",
                read(&self.output)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Waits until its output contains `needle`; panics with the output if it does not
    /// within [`PATIENCE`] or if the process exits first.
    pub fn wait_output(&mut self, needle: &str) {
        self.wait_file(&self.output.clone(), needle);
    }

    /// Waits until `file` contains `needle`, failing fast if the daemon exits.
    pub fn wait_file(&mut self, file: &Path, needle: &str) {
        let deadline = Instant::now() + PATIENCE;
        loop {
            if read(file).contains(needle) {
                return;
            }
            self.assert_running();
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {needle:?} in {}:\n{}\n--- daemon output:\n{}",
                file.display(),
                read(file),
                read(&self.output)
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
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

/// Runs a program in the root namespace and panics unless it succeeds.
fn run_ok<I, S>(program: &str, args: I)
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

/// Starts Debian's knockd on the server host's eth0 with `config`, logging to `log`
/// (the config should set `LogFile` to it, or pass `-g`), and waits until it listens.
pub fn start_knockd(link: &Link, config: &Path, log: &Path, console: &Path) -> Daemon {
    let mut d = link.server.spawn(
        "/usr/sbin/knockd",
        [
            OsStr::new("-i"),
            OsStr::new("eth0"),
            OsStr::new("-c"),
            config.as_os_str(),
            OsStr::new("-g"),
            log.as_os_str(),
            OsStr::new("-v"),
        ],
        console,
    );
    d.wait_file(log, "listening on eth0");
    d
}

/// Our knock-server running in the link's server namespace, logging knockd-style to a file.
pub struct KnockServer {
    /// The process.
    pub daemon: Daemon,
    /// Its LogFile (`-g`).
    pub log: PathBuf,
}

impl KnockServer {
    /// Starts `knock-server -c CONFIG -g DIR/LOG_NAME --state-file DIR/pending-stops
    /// --runtime-dir DIR/run`, with
    /// `-i interface` when given (else it listens on `any`), plus `extra` arguments, and
    /// waits until it listens. Each test keeps its pending stop commands in its own `dir`.
    pub fn start(
        link: &Link,
        dir: &Path,
        config: &Path,
        log_name: &str,
        interface: Option<&str>,
        extra: &[&str],
    ) -> KnockServer {
        let log = dir.join(log_name);
        let state = dir.join("pending-stops");
        let run = dir.join("run");
        let mut args: Vec<&OsStr> = Vec::new();
        if let Some(i) = interface {
            args.extend([OsStr::new("-i"), OsStr::new(i)]);
        }
        args.extend([
            OsStr::new("-c"),
            config.as_os_str(),
            OsStr::new("-g"),
            log.as_os_str(),
            OsStr::new("--state-file"),
            state.as_os_str(),
            // Each test its own control socket and instance lock: tests run in parallel.
            OsStr::new("--runtime-dir"),
            run.as_os_str(),
        ]);
        args.extend(extra.iter().map(OsStr::new));
        let mut daemon = link.server.spawn(
            bin("knock-server"),
            args,
            &dir.join(format!("{log_name}.out")),
        );
        daemon.wait_file(
            &log,
            &format!("starting up, listening on {}", interface.unwrap_or("any")),
        );
        KnockServer { daemon, log }
    }

    /// Waits for a log line containing `needle` (knockd's wording).
    pub fn wait_log(&mut self, needle: &str) {
        let log = self.log.clone();
        self.daemon.wait_file(&log, needle);
    }

    /// Waits until the log contains `needle` at least `n` times.
    pub fn wait_log_count(&mut self, needle: &str, n: usize) {
        let deadline = Instant::now() + PATIENCE;
        while self.log().matches(needle).count() < n {
            self.daemon.assert_running();
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {n} x {needle:?}:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The log so far.
    pub fn log(&self) -> String {
        read(&self.log)
    }
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

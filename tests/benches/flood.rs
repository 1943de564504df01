//! Flood benchmark: knock-server against Debian's knockd under a spoofed-source flood.
//!
//! knockd keeps its knock attempts in one linked list that it walks (more than once) for every
//! packet, with no cap, so a flood of first-port knocks from spoofed sources makes every later
//! packet slower; knock-server's tracker is O(1) per packet and capped (`max_attempts`).
//!
//! For each daemon and each flood size N, on a fresh veth link between two namespaces: the
//! client namespace sends N TCP SYNs to the door's first port from N distinct spoofed sources
//! (198.18.16.0 upward, inside 198.18.0.0/15, at a bounded rate), then one real knock of the
//! whole sequence from 198.18.0.1. Measured: time from the start of the flood until the real
//! knocker's `OPEN SESAME` appears in the daemon's log, the daemon's CPU time, its peak memory
//! (VmHWM) before and after, how many flood packets reached the server's eth0 and how many the
//! daemon logged (`Stage 1`: the difference was dropped by the capture), and for knock-server
//! its once-a-minute summary (engine-busy drops, evictions). Beside knock-server, in the same
//! run, tcpdump captures on the same eth0 with knock-server's own BPF filter (from
//! `knock-server --check`) and writes to /dev/null: the floor of what capturing those packets
//! costs. CPU per packet is CPU time over the flood packets that arrived at eth0, for both.
//! The log's size is reported too (knock-server rate-limits Stage lines under a flood).
//!
//! Rotating doors: one more knock-server case per rate, at the largest size, with a
//! rotating sealed door (`secret_file`, a key from `knock-server keygen`, `step_seconds =
//! 3600` so that the ports do not change during the run; the bench waits out a step that ends
//! within two minutes). The flood goes to the first port of the door's current step (from
//! `knock --show` with a client profile holding the same key) with sequence numbers that are
//! no seal; the real knock is our `knock` in the client namespace, sealed. After it the bench
//! asks `knock-server status --json` how many MACs the daemon computed (`seal_checks`, per
//! packet handed over by the capture), how many flood SYNs it refused for a wrong seal, and
//! how many attempts are in progress (the flood must start none).
//!
//! Needs root and the release binaries (found next to this bench in target/release):
//! `cargo build --release --bins && cargo bench -p knock-e2e --bench flood`.
//! Knobs (environment): FLOOD_SIZES (default `10000,30000,100000`, at most 126976),
//! FLOOD_PPS (send rates, default `50000,5000` packets/s), FLOOD_KNOCKD_CAP_S (how long to wait for knockd,
//! default 120), FLOOD_SMALL_CAP (knock-server's max_attempts in the bounded run, default
//! 1000), FLOOD_SUMMARY=0 (skip waiting a minute for knock-server's summary line),
//! FLOOD_KNOCKD=0 (knock-server's rows only), FLOOD_ROTATING=0 (no rotating-door rows),
//! FLOOD_EXPIRY=1 (then wait for the flood's attempts to expire, `seq_timeout` later, and
//! report the CPU that cost), FLOOD_PERF=DIR (profile each knock-server
//! case from just before its flood until it is idle: `perf record -g -p PID -o DIR/CASE.data`),
//! FLOOD_REPEAT=N (run the whole list of cases N times, in rounds, then give each knock-server
//! case's ratio to tcpdump as lowest, median and highest, and the same for each side's CPU
//! per packet: one run's ratio moves by 10 to 20% on a shared machine, tcpdump's small
//! figure as much as the daemon's).
//! `cargo test` never runs it (a bench target); run without `--bench` it only says how to run.

use std::ffi::OsStr;
use std::fs::{self, File};
use std::io::{self, Read as _, Seek as _, SeekFrom};
use std::net::{Ipv4Addr, SocketAddrV4};
use std::os::fd::AsFd as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use knock_e2e::{CLIENT_V4, Daemon, Link, Netns, SERVER_V4, bin, scratch, syn, write};
use socket2::{Domain, Protocol, SockAddr, Socket, Type};

/// The door: knocked in full by the real client, its first port flooded.
const DOOR: [u16; 3] = [7000, 8000, 9000];
const DOOR_NAME: &str = "ssh";
/// Spoofed sources count up from 198.18.16.0 to the end of 198.18.0.0/15, one per packet;
/// the link's own 198.18.0.0/24 is never used as a spoofed source.
const FLOOD_FIRST: u32 = u32::from_be_bytes([198, 18, 16, 0]);
const FLOOD_LAST: u32 = u32::from_be_bytes([198, 19, 255, 255]);
/// How long knock-server gets to open (it needs well under a second beyond the flood).
const KNOCK_SERVER_CAP: Duration = Duration::from_secs(60);
/// The daemon is idle when its CPU time stays flat this long.
const IDLE: Duration = Duration::from_secs(2);
const POLL: Duration = Duration::from_millis(20);

/// A rotating door's time step in the bench: long, so that its ports stay put.
const STEP_SECONDS: u64 = 3600;
/// Every door's `seq_timeout`, in seconds: longer than the slowest flood, so that no attempt
/// expires during the measurement.
const SEQ_TIMEOUT: u64 = 25;
/// A step ending sooner than this is waited out before the flood.
const STEP_MARGIN: u64 = 120;

/// Which daemon a case runs.
#[derive(Debug, Clone, Copy)]
enum Subject {
    KnockServer {
        max_attempts: Option<usize>,
    },
    /// knock-server with a rotating sealed door instead of the fixed one.
    Rotating,
    Knockd,
}

impl Subject {
    fn is_knock_server(self) -> bool {
        !matches!(self, Subject::Knockd)
    }

    fn label(self) -> String {
        match self {
            Subject::Rotating => "knock-server (rotating sealed door)".into(),
            Subject::KnockServer { max_attempts: None } => "knock-server".into(),
            Subject::KnockServer {
                max_attempts: Some(cap),
            } => format!("knock-server (max_attempts {cap})"),
            Subject::Knockd => "knockd 0.8".into(),
        }
    }
}

/// The knobs, from the environment.
struct Settings {
    sizes: Vec<usize>,
    rates: Vec<u64>,
    knockd_cap: Duration,
    small_cap: usize,
    summary: bool,
    knockd: bool,
    rotating: bool,
    expiry: bool,
    /// Rounds of the whole list of cases.
    repeat: usize,
}

impl Settings {
    fn from_env() -> Settings {
        let max = usize::try_from(FLOOD_LAST - FLOOD_FIRST + 1).unwrap_or(usize::MAX);
        let sizes: Vec<usize> = env_list("FLOOD_SIZES", "10000,30000,100000");
        assert!(
            sizes.iter().all(|&n| (1..=max).contains(&n)),
            "FLOOD_SIZES: each between 1 and {max} (one distinct source per packet)"
        );
        let rates: Vec<u64> = env_list("FLOOD_PPS", "50000,5000");
        assert!(
            rates.iter().all(|r| (1_000..=200_000).contains(r)),
            "FLOOD_PPS: each between 1000 and 200000 packets/s"
        );
        let one = |key, default: &str| env_list::<u64>(key, default).first().copied();
        Settings {
            sizes,
            rates,
            knockd_cap: Duration::from_secs(one("FLOOD_KNOCKD_CAP_S", "120").unwrap_or(120)),
            small_cap: one("FLOOD_SMALL_CAP", "1000").map_or(1_000, |c| c as usize),
            summary: std::env::var("FLOOD_SUMMARY").map_or(true, |v| v != "0"),
            knockd: std::env::var("FLOOD_KNOCKD").map_or(true, |v| v != "0"),
            rotating: std::env::var("FLOOD_ROTATING").map_or(true, |v| v != "0"),
            expiry: std::env::var("FLOOD_EXPIRY").is_ok_and(|v| v != "0"),
            repeat: one("FLOOD_REPEAT", "1").map_or(1, |r| r.max(1) as usize),
        }
    }
}

/// A comma-separated list of numbers from the environment.
fn env_list<T: std::str::FromStr>(key: &str, default: &str) -> Vec<T> {
    let text = std::env::var(key).unwrap_or_else(|_| default.to_owned());
    text.split(',')
        .map(|s| {
            s.trim()
                .parse()
                .unwrap_or_else(|_| panic!("{key}: comma-separated numbers, not {text:?}"))
        })
        .collect()
}

/// How the real knock fared.
enum Outcome {
    /// `OPEN SESAME` this long after the flood started.
    Opened(Duration),
    /// The daemon went idle without opening: the knock was dropped.
    Lost,
    /// Still busy when we stopped waiting.
    Unfinished(Duration),
}

/// One measured case.
struct Row {
    subject: String,
    n: usize,
    pps: u64,
    flood: Duration,
    send_errors: u64,
    arrived: u64,
    logged: usize,
    real_stage: usize,
    outcome: Outcome,
    cpu: f64,
    /// tcpdump's CPU time in the same run (knock-server cases).
    tcpdump_cpu: Option<f64>,
    log_bytes: u64,
    hwm: (u64, u64),
    /// Context switches of the daemon's threads, and of tcpdump's, during the case.
    switches: (u64, Option<u64>),
    summary: Option<String>,
    /// What status said after a rotating-door case.
    rotating: Option<RotatingCounts>,
    /// CPU time from the end of the measurement until the flood's attempts had expired
    /// (`FLOOD_EXPIRY=1`).
    expiry_cpu: Option<f64>,
}

impl Row {
    /// `cpu` seconds as µs per packet that arrived at the server; `None` if none did.
    fn per_packet_us(&self, cpu: f64) -> Option<f64> {
        (self.arrived > 0).then(|| cpu * 1e6 / self.arrived as f64)
    }

    /// [`Row::per_packet_us`] for the table: `0.35 µs`, or `-`.
    fn per_packet_text(&self, cpu: f64) -> String {
        self.per_packet_us(cpu)
            .map_or("-".to_owned(), |us| format!("{us:.2} µs"))
    }

    /// The daemon's CPU over tcpdump's in the same run; `None` without a tcpdump figure
    /// above zero.
    fn ratio(&self) -> Option<f64> {
        let t = self.tcpdump_cpu.filter(|&t| t > 0.0)?;
        Some(self.cpu / t)
    }
}

/// A rotating door's counters from `knock-server status --json` after the case.
struct RotatingCounts {
    /// Packets the capture handed over.
    packets: u64,
    /// MACs computed to check seals.
    seal_checks: u64,
    /// Knocks refused for a wrong seal.
    wrong_seal: u64,
    /// Attempts in progress, and the cap.
    attempts: u64,
    max_attempts: u64,
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!(
            "flood: run with `cargo build --release --bins && cargo bench -p knock-e2e --bench flood`"
        );
        return;
    }
    if !knock_e2e::root_or_skip() {
        return;
    }
    let settings = Settings::from_env();
    println!(
        "flood benchmark: sizes {:?}, rates {:?} packets/s, knockd waited on for at most {} s",
        settings.sizes,
        settings.rates,
        settings.knockd_cap.as_secs()
    );
    let largest = settings.sizes.iter().copied().max().unwrap_or(0);
    let mut cases: Vec<(Subject, usize, u64)> = Vec::new();
    for &pps in &settings.rates {
        for &n in &settings.sizes {
            cases.push((Subject::KnockServer { max_attempts: None }, n, pps));
            if settings.knockd {
                cases.push((Subject::Knockd, n, pps));
            }
        }
    }
    if let Some(&pps) = settings.rates.first() {
        let cap = Some(settings.small_cap);
        cases.push((Subject::KnockServer { max_attempts: cap }, largest, pps));
    }
    if settings.rotating {
        for &pps in &settings.rates {
            cases.push((Subject::Rotating, largest, pps));
        }
    }
    println!("{}", table_header());
    let mut rows = Vec::new();
    // In rounds rather than case after case: a slow spell of the machine then spreads over
    // every case instead of falling on one.
    for _ in 0..settings.repeat {
        for &(subject, n, pps) in &cases {
            // The summary line comes a minute after start: wait for it where it says most.
            let summary = settings.summary && n == largest;
            let row = run_case(
                subject,
                (n, pps),
                (summary, settings.expiry),
                settings.knockd_cap,
            );
            println!("{}", format_row(&row));
            rows.push(row);
        }
    }
    println!("\n{}", table_header());
    for row in &rows {
        println!("{}", format_row(row));
    }
    if settings.repeat > 1 {
        println!();
        for line in ratio_spread(&rows) {
            println!("{line}");
        }
    }
    for row in rows.iter().filter(|r| r.summary.is_some()) {
        let line = row.summary.as_deref().unwrap_or_default();
        println!("{} N={} at {}/s: {line}", row.subject, row.n, row.pps);
    }
    for row in &rows {
        if let Some(cpu) = row.expiry_cpu {
            println!(
                "{} N={} at {}/s: {SEQ_TIMEOUT} s later its attempts expired, for {:.3} s of CPU ({} per flood packet)",
                row.subject,
                row.n,
                row.pps,
                cpu,
                row.per_packet_text(cpu)
            );
        }
    }
    for row in &rows {
        if let Some(c) = &row.rotating {
            println!(
                "{} N={} at {}/s: {}",
                row.subject,
                row.n,
                row.pps,
                rotating_line(c)
            );
        }
    }
}

/// Per knock-server case (daemon, N, rate), in the order first run: its ratio of CPU to
/// tcpdump's over the rounds, then each side's own CPU per arrived packet, so that a high
/// ratio shows whether the daemon spent more or tcpdump less: `knock-server N=100000 at
/// 50000/s: ratio to tcpdump over 8 runs: lowest 3.6x, median 3.95x, highest 4.7x;
/// knock-server 0.34 / 0.36 / 0.41 µs per packet, tcpdump 0.08 / 0.09 / 0.11 µs`.
fn ratio_spread(rows: &[Row]) -> Vec<String> {
    type Runs = Vec<(f64, f64, f64)>;
    let mut cases: Vec<(&str, usize, u64, Runs)> = Vec::new();
    for r in rows {
        let (Some(ratio), Some(t)) = (r.ratio(), r.tcpdump_cpu) else {
            continue;
        };
        let (Some(daemon), Some(floor)) = (r.per_packet_us(r.cpu), r.per_packet_us(t)) else {
            continue;
        };
        let run = (ratio, daemon, floor);
        match cases
            .iter_mut()
            .find(|c| c.0 == r.subject && c.1 == r.n && c.2 == r.pps)
        {
            Some(c) => c.3.push(run),
            None => cases.push((&r.subject, r.n, r.pps, vec![run])),
        }
    }
    cases
        .into_iter()
        .map(|(subject, n, pps, runs)| {
            let k = runs.len();
            let [ratio, daemon, floor] = [
                spread(runs.iter().map(|r| r.0)),
                spread(runs.iter().map(|r| r.1)),
                spread(runs.iter().map(|r| r.2)),
            ];
            format!(
                "{subject} N={n} at {pps}/s: ratio to tcpdump over {k} runs: lowest {:.1}x, median {:.2}x, highest {:.1}x; \
                 knock-server {:.2} / {:.2} / {:.2} µs per packet, tcpdump {:.2} / {:.2} / {:.2} µs",
                ratio.0, ratio.1, ratio.2, daemon.0, daemon.1, daemon.2, floor.0, floor.1, floor.2
            )
        })
        .collect()
}

/// Lowest, median and highest of `values` (not empty).
fn spread(values: impl Iterator<Item = f64>) -> (f64, f64, f64) {
    let mut v: Vec<f64> = values.collect();
    v.sort_by(f64::total_cmp);
    let k = v.len();
    let median = if k % 2 == 1 {
        v[k / 2]
    } else {
        (v[k / 2 - 1] + v[k / 2]) / 2.0
    };
    (v[0], median, v[k - 1])
}

/// `103003 packets, 103003 seal checks (1.00 per packet), 103000 refused for a wrong seal,
/// 0 attempts in progress (max_attempts 16384)`.
fn rotating_line(c: &RotatingCounts) -> String {
    let per_packet = if c.packets > 0 {
        format!("{:.2}", c.seal_checks as f64 / c.packets as f64)
    } else {
        "-".to_owned()
    };
    format!(
        "{} packets, {} seal checks ({per_packet} per packet), {} refused for a wrong seal, {} attempts in progress (max_attempts {})",
        c.packets, c.seal_checks, c.wrong_seal, c.attempts, c.max_attempts
    )
}

/// Runs one daemon against one flood on a fresh link.
fn run_case(
    subject: Subject,
    (n, pps): (usize, u64),
    (summary, expiry): (bool, bool),
    knockd_cap: Duration,
) -> Row {
    let link = Link::up().expect("main checked that we are root");
    let dir = scratch();
    pin_neighbours(&link);
    let log = dir.path().join("daemon.log");
    let started = Instant::now();
    let mut daemon = start(subject, &link, dir.path(), &log);
    let pid = daemon.pid();
    let target = match subject {
        Subject::Rotating => rotating_target(&link, dir.path()),
        _ => Target {
            port: DOOR[0],
            real: Real::Raw,
        },
    };
    let tcpdump = subject
        .is_knock_server()
        .then(|| start_tcpdump(&link, dir.path()));
    let tcpdump_before = tcpdump.as_ref().map_or(0, |t| cpu_ticks(t.pid()));
    let hwm_before = vm_hwm_kb(pid);
    let cpu_before = cpu_ticks(pid);
    let switches_before = (
        switches(pid),
        tcpdump.as_ref().map_or(0, |t| switches(t.pid())),
    );
    let rx_before = rx_packets(&link.server);

    let perf = match subject {
        Subject::Knockd => None,
        _ => std::env::var_os("FLOOD_PERF").map(|dir| {
            let cap = match subject {
                Subject::KnockServer {
                    max_attempts: Some(c),
                } => format!("-cap{c}"),
                Subject::Rotating => "-rotating".to_owned(),
                _ => String::new(),
            };
            let out = Path::new(&dir).join(format!("knock-server-{n}-{pps}{cap}.data"));
            profile(pid, &out)
        }),
    };
    let t0 = Instant::now();
    let sender = spawn_sender(link.client.name.clone(), n, pps, target);
    let cap = match subject {
        Subject::Knockd => knockd_cap,
        _ => KNOCK_SERVER_CAP,
    };
    let mut tail = LogTail::new(&log);
    let (outcome, sent) = watch(&mut daemon, &mut tail, sender, t0, cap);
    if !matches!(outcome, Outcome::Unfinished(_)) {
        wait_idle(pid, Duration::from_secs(10));
    }
    if let Some(mut perf) = perf {
        // perf writes its file on SIGINT.
        let _ = std::process::Command::new("kill")
            .args(["-INT", &perf.id().to_string()])
            .status();
        let _ = perf.wait();
    }
    let cpu = cpu_ticks(pid).saturating_sub(cpu_before) as f64 / clock_ticks();
    let tcpdump_cpu = tcpdump.as_ref().map(|t| {
        wait_idle(t.pid(), Duration::from_secs(10));
        cpu_ticks(t.pid()).saturating_sub(tcpdump_before) as f64 / clock_ticks()
    });
    let hwm_after = vm_hwm_kb(pid);
    let switches_during = (
        switches(pid).saturating_sub(switches_before.0),
        tcpdump
            .as_ref()
            .map(|t| switches(t.pid()).saturating_sub(switches_before.1)),
    );
    let arrived = rx_packets(&link.server).saturating_sub(rx_before);
    let knock_server = subject.is_knock_server();
    let rotating = matches!(subject, Subject::Rotating).then(|| rotating_counts(&link, dir.path()));
    let cpu_at_end = cpu_ticks(pid);
    if knock_server && summary {
        wait_summary(&mut daemon, &mut tail, started);
    }
    // The flood's attempts expire SEQ_TIMEOUT after they started: what that costs.
    let expiry_cpu = (expiry && matches!(subject, Subject::KnockServer { .. })).then(|| {
        let due = t0 + sent.flood + Duration::from_secs(SEQ_TIMEOUT + 1);
        std::thread::sleep(due.saturating_duration_since(Instant::now()));
        wait_idle(pid, Duration::from_secs(30));
        cpu_ticks(pid).saturating_sub(cpu_at_end) as f64 / clock_ticks()
    });
    tail.poll();
    Row {
        subject: subject.label(),
        n,
        pps,
        flood: sent.flood,
        send_errors: sent.errors,
        // The real knock's three packets arrive too.
        arrived: arrived.saturating_sub(DOOR.len() as u64),
        logged: if knock_server {
            tail.summary_hits().unwrap_or(0)
        } else {
            tail.stage1
        },
        tcpdump_cpu,
        log_bytes: fs::metadata(&log).map_or(0, |m| m.len()),
        real_stage: tail.real_stage,
        outcome,
        cpu,
        hwm: (hwm_before, hwm_after),
        switches: switches_during,
        summary: tail.summary.take(),
        rotating,
        expiry_cpu,
    }
}

/// Starts `perf record` on `pid`'s threads, writing `out`, and waits until it samples.
fn profile(pid: u32, out: &Path) -> std::process::Child {
    let child = std::process::Command::new("perf")
        .args([
            "record",
            "-q",
            "-F",
            "10000",
            "-g",
            "-p",
            &pid.to_string(),
            "-o",
        ])
        .arg(out)
        .stdout(std::process::Stdio::null())
        .spawn()
        .expect("FLOOD_PERF needs perf (apt-get install linux-perf)");
    // perf opens its counters within moments; the flood must not start before.
    std::thread::sleep(Duration::from_millis(500));
    child
}

/// Polls the log until the real knock opens, the daemon goes idle without it, or `cap`.
fn watch(
    daemon: &mut Daemon,
    tail: &mut LogTail,
    sender: JoinHandle<io::Result<Sent>>,
    t0: Instant,
    cap: Duration,
) -> (Outcome, Sent) {
    let pid = daemon.pid();
    let mut sender = Some(sender);
    let mut sent = None;
    let mut idle = IdleWatch::new(pid);
    let outcome = loop {
        tail.poll();
        if sender.as_ref().is_some_and(JoinHandle::is_finished) {
            let handle = sender.take().expect("sender present");
            let result = handle.join().expect("sender thread panicked");
            sent = Some(result.expect("send the flood from the client namespace"));
        }
        if let Some(at) = tail.opened {
            break Outcome::Opened(at.duration_since(t0));
        }
        if sent.is_some() && idle.idle_for() >= IDLE {
            break Outcome::Lost;
        }
        if t0.elapsed() >= cap {
            break Outcome::Unfinished(cap);
        }
        daemon.assert_running();
        std::thread::sleep(POLL);
    };
    if let Some(handle) = sender {
        let result = handle.join().expect("sender thread panicked");
        sent = Some(result.expect("send the flood from the client namespace"));
    }
    (outcome, sent.expect("sender joined"))
}

/// Starts the daemon on the server's eth0 with the door, logging to `log`, and waits until
/// it listens.
fn start(subject: Subject, link: &Link, dir: &Path, log: &Path) -> Daemon {
    let (program, args, ready): (PathBuf, Vec<PathBuf>, &str) = match subject {
        Subject::KnockServer { max_attempts } => {
            let cap = max_attempts.map_or(String::new(), |c| format!("max_attempts = {c}\n"));
            let conf = write(
                dir,
                "server.toml",
                &format!(
                    "[options]\n{cap}\n[doors.{DOOR_NAME}]\nsequence = \"{}\"\nseq_timeout = {SEQ_TIMEOUT}\ntcpflags = \"syn\"\n",
                    sequence()
                ),
            );
            (
                bin("knock-server"),
                server_args(conf, dir, log),
                "starting up, listening on eth0",
            )
        }
        Subject::Rotating => {
            let key = dir.join("ssh.key");
            let out = Command::new(bin("knock-server"))
                .arg("keygen")
                .arg(&key)
                .output()
                .expect("knock-server keygen runs");
            assert!(out.status.success(), "keygen: {out:?}");
            let conf = write(
                dir,
                "server.toml",
                &format!(
                    "[doors.{DOOR_NAME}]\nsecret_file = \"{}\"\nstep_seconds = {STEP_SECONDS}\nseq_timeout = {SEQ_TIMEOUT}\n",
                    key.display()
                ),
            );
            (
                bin("knock-server"),
                server_args(conf, dir, log),
                "starting up, listening on eth0",
            )
        }
        Subject::Knockd => {
            let conf = write(
                dir,
                "knockd.conf",
                &format!(
                    "[options]\n    logfile = {}\n\n[{DOOR_NAME}]\n    sequence = {}\n    seq_timeout = {SEQ_TIMEOUT}\n    tcpflags = syn\n",
                    log.display(),
                    sequence()
                ),
            );
            let args = vec!["-i".into(), "eth0".into(), "-c".into(), conf];
            ("/usr/sbin/knockd".into(), args, "listening on eth0")
        }
    };
    let mut daemon = link.server.spawn(program, args, &dir.join("console.out"));
    daemon.wait_file(log, ready);
    daemon
}

/// knock-server's arguments: on eth0 with `conf`, its log, state and runtime directory in `dir`.
fn server_args(conf: PathBuf, dir: &Path, log: &Path) -> Vec<PathBuf> {
    vec![
        "-i".into(),
        "eth0".into(),
        "-c".into(),
        conf,
        "-g".into(),
        log.into(),
        "--state-file".into(),
        dir.join("state"),
        "--runtime-dir".into(),
        dir.join("run"),
    ]
}

/// Where the flood goes, and how the real knock is made.
struct Target {
    /// The port every flood packet goes to.
    port: u16,
    real: Real,
}

/// The real knock.
enum Real {
    /// The fixed door's SYNs from the link's client address, sent by the flood's socket.
    Raw,
    /// `knock bench ssh` in the client namespace, with this XDG_CONFIG_HOME.
    Client(PathBuf),
}

/// Pairs a client profile with the rotating door (`knock-server pair`, its key saved 0600),
/// and reads the door's current ports from `knock --show`; waits out a step that ends within
/// [`STEP_MARGIN`], so that the flood and the knock fall in one step.
fn rotating_target(link: &Link, dir: &Path) -> Target {
    let xdg = dir.join("client");
    let key = xdg.join("ssh.key");
    fs::create_dir_all(xdg.join("knock")).expect("client config directory");
    let out = Command::new(bin("knock-server"))
        .args([OsStr::new("pair"), OsStr::new("-c")])
        .arg(dir.join("server.toml"))
        .arg(DOOR_NAME)
        .arg("--key-path")
        .arg(&key)
        .output()
        .expect("knock-server pair runs");
    assert!(out.status.success(), "pair: {out:?}");
    let text = String::from_utf8_lossy(&out.stdout);
    let secret = text
        .split("echo '")
        .nth(1)
        .and_then(|r| r.split('\'').next())
        .expect("pair prints the key");
    write_private(&key, &format!("{secret}\n"));
    let line = text
        .lines()
        .find(|l| !l.starts_with('#'))
        .expect("pair prints the profile line");
    let profile =
        format!("[profiles.bench]\nhost = \"{SERVER_V4}\"\n[profiles.bench.sequences]\n{line}\n");
    write(&xdg.join("knock"), "config.toml", &profile);
    let (mut ports, left) = show(link, &xdg);
    if left < STEP_MARGIN {
        std::thread::sleep(Duration::from_secs(left + 2));
        (ports, _) = show(link, &xdg);
    }
    Target {
        port: ports[0],
        real: Real::Client(xdg),
    }
}

/// Writes `text` to a new file only its owner can read.
fn write_private(path: &Path, text: &str) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .expect("create the client's key file");
    file.write_all(text.as_bytes())
        .expect("write the client's key file");
}

/// `knock --show bench ssh`: the current ports and the seconds left in the step.
fn show(link: &Link, xdg: &Path) -> (Vec<u16>, u64) {
    let out = knock_command(&link.client.name, xdg)
        .arg("--show")
        .args(["bench", DOOR_NAME])
        .output()
        .expect("knock --show runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .unwrap_or_else(|| panic!("knock --show: no `{name}`: {text}{out:?}"))
            .to_owned()
    };
    let ports = field("ports: ")
        .trim_end_matches(" (tcp)")
        .split(',')
        .map(|p| p.parse().expect("knock --show prints port numbers"))
        .collect();
    let left = field("seconds left: ")
        .trim()
        .parse()
        .expect("seconds left");
    (ports, left)
}

/// Our `knock` in the namespace `netns`, with the bench's client config only.
fn knock_command(netns: &str, xdg: &Path) -> Command {
    let mut c = Command::new("ip");
    c.args(["netns", "exec", netns])
        .arg(bin("knock"))
        .env_remove("KNOCK_CONFIG")
        .env("XDG_CONFIG_HOME", xdg)
        .env("HOME", xdg);
    c
}

/// Asks the daemon for its rotating door's counters.
fn rotating_counts(link: &Link, dir: &Path) -> RotatingCounts {
    let out = link
        .server
        .command(bin("knock-server"))
        .args(["status", "--json", "--runtime-dir"])
        .arg(dir.join("run"))
        .output()
        .expect("knock-server status runs");
    let json: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("knock-server status --json: {e}: {out:?}"));
    let number = |v: &serde_json::Value| v.as_u64().unwrap_or(0);
    let door = &json["doors"][0];
    RotatingCounts {
        packets: number(&json["counters"]["packets"]),
        seal_checks: number(&json["counters"]["seal_checks"]),
        wrong_seal: number(&door["refused"]["wrong_seal"]),
        attempts: number(&door["attempts"]),
        max_attempts: max_attempts(dir),
    }
}

/// The daemon's cap on attempts in progress, as `--check` shows it.
fn max_attempts(dir: &Path) -> u64 {
    let out = Command::new(bin("knock-server"))
        .args([OsStr::new("--check"), OsStr::new("-c")])
        .arg(dir.join("server.toml"))
        .output()
        .expect("knock-server --check runs");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("max_attempts"))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0)
}

/// tcpdump on the server's eth0 with knock-server's filter for the door, writing to
/// /dev/null, ready when it says it listens.
fn start_tcpdump(link: &Link, dir: &Path) -> Daemon {
    let conf = dir.join("server.toml");
    let out = std::process::Command::new(bin("knock-server"))
        .args([OsStr::new("--check"), OsStr::new("-c"), conf.as_os_str()])
        .output()
        .expect("knock-server --check runs");
    let text = String::from_utf8_lossy(&out.stdout);
    let filter = text
        .lines()
        .skip_while(|l| !l.starts_with("capture filter: "))
        .nth(1)
        .expect("--check prints the filter")
        .trim()
        .to_owned();
    let console = dir.join("tcpdump.out");
    let args = ["-i", "eth0", "-n", "-s", "256", "-w", "/dev/null", &filter];
    let mut tcpdump = link.server.spawn("tcpdump", args, &console);
    tcpdump.wait_file(&console, "listening on eth0");
    tcpdump
}

fn sequence() -> String {
    DOOR.map(|p| p.to_string()).join(",")
}

/// Static ARP entries both ways, so that no packet of the flood waits on (or is dropped by)
/// neighbour resolution.
fn pin_neighbours(link: &Link) {
    let mac = |ns: &Netns| {
        ns.output("cat", ["/sys/class/net/eth0/address"])
            .trim()
            .to_owned()
    };
    let (client_mac, server_mac) = (mac(&link.client), mac(&link.server));
    for (ns, addr, lladdr) in [
        (&link.client, SERVER_V4, &server_mac),
        (&link.server, CLIENT_V4, &client_mac),
    ] {
        let args = ["neigh", "replace", addr, "lladdr", lladdr, "dev", "eth0"];
        ns.ok("ip", args.into_iter().chain(["nud", "permanent"]));
    }
}

/// Packets received on the server's eth0 so far.
fn rx_packets(server: &Netns) -> u64 {
    let out = server.output("cat", ["/sys/class/net/eth0/statistics/rx_packets"]);
    out.trim().parse().unwrap_or(0)
}

/// What the sender did.
struct Sent {
    flood: Duration,
    errors: u64,
}

/// Sends the flood and then the real knock, from a thread inside the client namespace.
fn spawn_sender(netns: String, n: usize, pps: u64, target: Target) -> JoinHandle<io::Result<Sent>> {
    std::thread::spawn(move || {
        // setns applies to this thread only; the socket created after it lives in the
        // client namespace, so no packet can leave the link.
        let ns = File::open(format!("/var/run/netns/{netns}"))?;
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )?;
        let sock = Socket::new(
            Domain::IPV4,
            Type::RAW,
            Some(Protocol::from(libc::IPPROTO_RAW)),
        )?;
        let server: Ipv4Addr = SERVER_V4.parse().expect("SERVER_V4 is an address");
        let to = SockAddr::from(SocketAddrV4::new(server, 0));
        let mut pkt = [0u8; 40];
        let (start, mut errors) = (Instant::now(), 0);
        for i in 0..n {
            if i % 32 == 0 {
                pace(start, i, pps);
            }
            let offset = u32::try_from(i).expect("flood size fits the source range");
            let src = Ipv4Addr::from(FLOOD_FIRST + offset);
            let sport = 20_000 + (i % 40_000) as u16;
            // Scattered sequence numbers: a rotating sealed door sees guesses at its seal.
            let seq = offset.wrapping_mul(2_654_435_761);
            syn(&mut pkt, (src, sport), (server, target.port), seq);
            if sock.send_to(&pkt, &to).is_err() {
                errors += 1;
            }
        }
        let flood = start.elapsed();
        match target.real {
            Real::Raw => {
                let client: Ipv4Addr = CLIENT_V4.parse().expect("CLIENT_V4 is an address");
                for (k, port) in DOOR.into_iter().enumerate() {
                    syn(&mut pkt, (client, 45_000 + k as u16), (server, port), 1);
                    sock.send_to(&pkt, &to)?;
                }
            }
            Real::Client(xdg) => {
                let out = knock_command(&netns, &xdg)
                    .args(["bench", DOOR_NAME])
                    .output()?;
                if !out.status.success() {
                    let why = String::from_utf8_lossy(&out.stderr).into_owned();
                    return Err(io::Error::other(format!("knock bench ssh: {why}")));
                }
            }
        }
        Ok(Sent { flood, errors })
    })
}

/// Sleeps until packet `i` is due at `pps` packets a second.
fn pace(start: Instant, i: usize, pps: u64) {
    let due = start + Duration::from_nanos((i as u64).saturating_mul(1_000_000_000) / pps);
    let now = Instant::now();
    if due > now {
        std::thread::sleep(due - now);
    }
}

/// Reads the daemon's log as it grows, without re-reading what it has seen.
struct LogTail {
    path: PathBuf,
    offset: u64,
    partial: Vec<u8>,
    /// When the real knocker's OPEN SESAME was first seen.
    opened: Option<Instant>,
    /// `Stage 1` lines of spoofed sources: flood packets the daemon processed.
    stage1: usize,
    /// The highest stage the real knocker reached: how many of its knocks were seen.
    real_stage: usize,
    /// knock-server's once-a-minute summary line.
    summary: Option<String>,
}

impl LogTail {
    fn new(path: &Path) -> LogTail {
        LogTail {
            path: path.to_owned(),
            offset: 0,
            partial: Vec::new(),
            opened: None,
            stage1: 0,
            real_stage: 0,
            summary: None,
        }
    }

    fn poll(&mut self) {
        let Ok(mut file) = File::open(&self.path) else {
            return;
        };
        if file.seek(SeekFrom::Start(self.offset)).is_err() {
            return;
        }
        let mut fresh = Vec::new();
        let Ok(read) = file.read_to_end(&mut fresh) else {
            return;
        };
        self.offset += read as u64;
        self.partial.extend_from_slice(&fresh);
        let Some(end) = self.partial.iter().rposition(|&b| b == b'\n') else {
            return;
        };
        let complete: Vec<u8> = self.partial.drain(..=end).collect();
        for line in complete.split(|&b| b == b'\n') {
            self.line(&String::from_utf8_lossy(line));
        }
    }

    fn line(&mut self, line: &str) {
        let real = format!("] {CLIENT_V4}: {DOOR_NAME}: ");
        if let Some((_, what)) = line.split_once(&real) {
            if what == "OPEN SESAME" {
                self.opened.get_or_insert_with(Instant::now);
            } else if let Some(stage) = what.strip_prefix("Stage ") {
                let stage = stage.trim().parse().unwrap_or(0);
                self.real_stage = self.real_stage.max(stage);
            }
        } else if line.contains(&format!(": {DOOR_NAME}: Stage 1")) {
            self.stage1 += 1;
        } else if line.contains("attempts evicted") {
            let text = line.split_once("] ").map_or(line, |(_, rest)| rest);
            self.summary = Some(text.to_owned());
        }
    }
}

impl LogTail {
    /// The knock packets knock-server's summary counted.
    fn summary_hits(&self) -> Option<usize> {
        let text = self.summary.as_deref()?;
        let (_, rest) = text.split_once(": ")?;
        rest.split(' ').next()?.parse().ok()
    }
}

/// Waits (until a minute and a bit after the daemon started) for knock-server's summary
/// line, which it writes only when something was dropped, ignored or evicted.
fn wait_summary(daemon: &mut Daemon, tail: &mut LogTail, started: Instant) {
    let deadline = started + Duration::from_secs(66);
    while tail.summary.is_none() && Instant::now() < deadline {
        daemon.assert_running();
        std::thread::sleep(Duration::from_millis(200));
        tail.poll();
    }
}

/// Tracks when a process's CPU time last moved.
struct IdleWatch {
    pid: u32,
    ticks: u64,
    since: Instant,
}

impl IdleWatch {
    fn new(pid: u32) -> IdleWatch {
        IdleWatch {
            pid,
            ticks: cpu_ticks(pid),
            since: Instant::now(),
        }
    }

    /// How long its CPU time has not moved.
    fn idle_for(&mut self) -> Duration {
        let ticks = cpu_ticks(self.pid);
        if ticks != self.ticks {
            self.ticks = ticks;
            self.since = Instant::now();
        }
        self.since.elapsed()
    }
}

/// Waits until the process is idle, at most `limit`.
fn wait_idle(pid: u32, limit: Duration) {
    let deadline = Instant::now() + limit;
    let mut idle = IdleWatch::new(pid);
    while idle.idle_for() < IDLE && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// CPU time of all the process's threads so far, in nanoseconds: the scheduler's own
/// accounting (`/proc/PID/task/TID/schedstat`, first field), precise where `/proc/PID/stat`'s
/// clock ticks (10 ms) would round tcpdump's few milliseconds to zero. Threads that already
/// exited are not counted (none of ours do during a run).
fn cpu_ticks(pid: u32) -> u64 {
    sum_over_threads(pid, "schedstat", |s| {
        s.split_whitespace().next().and_then(|v| v.parse().ok())
    })
}

/// Context switches of all the process's threads so far (voluntary and not): how often it
/// was woken or preempted.
fn switches(pid: u32) -> u64 {
    sum_over_threads(pid, "status", |s| {
        let counts = s.lines().filter_map(|l| {
            let v = l
                .strip_prefix("voluntary_ctxt_switches:")
                .or_else(|| l.strip_prefix("nonvoluntary_ctxt_switches:"))?;
            v.trim().parse::<u64>().ok()
        });
        Some(counts.sum())
    })
}

/// The sum over the process's threads of what `value` reads in each one's
/// `/proc/PID/task/TID/FILE`; 0 once the process is gone.
fn sum_over_threads(pid: u32, file: &str, value: impl Fn(&str) -> Option<u64>) -> u64 {
    let Ok(tasks) = fs::read_dir(format!("/proc/{pid}/task")) else {
        return 0;
    };
    tasks
        .flatten()
        .filter_map(|t| fs::read_to_string(t.path().join(file)).ok())
        .filter_map(|s| value(&s))
        .sum()
}

/// Units of [`cpu_ticks`] per second.
fn clock_ticks() -> f64 {
    1e9
}

/// Peak resident memory (VmHWM) in kB.
fn vm_hwm_kb(pid: u32) -> u64 {
    let status = fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

fn table_header() -> String {
    "| daemon | flood N | rate | flood sent in | arrived at eth0 | flood knocks seen | real knock opened after | lag after flood | daemon CPU | CPU per arrived packet | tcpdump CPU (same run) | tcpdump per packet | ratio | context switches (daemon / tcpdump) | log bytes | VmHWM before -> after |\n\
     |---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
        .to_owned()
}

fn format_row(r: &Row) -> String {
    let (open, lag) = match r.outcome {
        Outcome::Opened(t) => (
            format!("{:.2} s", t.as_secs_f64()),
            format!("{:.2} s", t.saturating_sub(r.flood).as_secs_f64()),
        ),
        Outcome::Lost => (
            format!("never: {} of {} knocks seen", r.real_stage, DOOR.len()),
            "-".into(),
        ),
        Outcome::Unfinished(cap) => (format!("did not finish in {} s", cap.as_secs()), "-".into()),
    };
    let errors = if r.send_errors > 0 {
        format!(" ({} send errors)", r.send_errors)
    } else {
        String::new()
    };
    let (tcpdump, tcpdump_per, ratio) = match r.tcpdump_cpu {
        Some(t) => (
            format!("{:.3} s", t),
            r.per_packet_text(t),
            r.ratio().map_or("-".to_owned(), |x| format!("{x:.1}x")),
        ),
        None => ("-".into(), "-".into(), "-".into()),
    };
    let seen = if r.logged > 0 {
        r.logged.to_string()
    } else {
        "-".to_owned()
    };
    let switches = match r.switches {
        (d, Some(t)) => format!("{d} / {t}"),
        (d, None) => d.to_string(),
    };
    format!(
        "| {} | {} | {}/s | {:.2} s{errors} | {} | {seen} | {open} | {lag} | {:.3} s | {} | {tcpdump} | {tcpdump_per} | {ratio} | {switches} | {} | {} -> {} kB |",
        r.subject,
        r.n,
        r.pps,
        r.flood.as_secs_f64(),
        r.arrived,
        r.cpu,
        r.per_packet_text(r.cpu),
        r.log_bytes,
        r.hwm.0,
        r.hwm.1
    )
}

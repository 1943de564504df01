//! The executor with real channels, workers and commands, but no capture and no root:
//! queued hits count before the clock, shutdown cannot hang, bad filters are refused.

use std::path::Path;
use std::time::{Duration, Instant, SystemTime};

use knock_proto::Timestamp;
use knock_proto::wire::Hit;

use super::*;
use crate::engine::Start;

struct NoCapture;

impl Filters for NoCapture {
    fn set_filter(&self, _: &Filter) {}
}

fn hit(source: &str, port: u16) -> Hit {
    Hit {
        source: source.parse().unwrap(),
        destination: "198.18.0.2".parse().unwrap(),
        knock: port.to_string().parse().unwrap(),
        tcp_flags: 0x02,
        src_port: 40000,
        tcp_seq: 1,
    }
}

/// Runs an executor for `config` (knockd format) on the messages in `msgs` (which must end
/// with a signal), with a clock that started `age` ago.
fn run(dir: &Path, config: &str, age: Duration, msgs: Vec<Msg>) -> Exit {
    let config = knock_proto::config::knockd::parse(Path::new("k.conf"), config).unwrap();
    let performer = Performer::without_firewall(&config);
    run_with(dir, config, performer, age, msgs)
}

/// [`run`] for a parsed `config`, with the actions performed by `performer`.
fn run_with(
    dir: &Path,
    config: knock_proto::config::Config,
    performer: Performer,
    age: Duration,
    msgs: Vec<Msg>,
) -> Exit {
    let (tx, rx) = mpsc::sync_channel(msgs.len() + 16);
    for m in msgs {
        tx.send(m).unwrap();
    }
    executor(dir, config, performer, age, tx).run(&rx)
}

/// An executor for `config` whose workers report on `tx`, with a clock that started `age`
/// ago.
fn executor(
    dir: &Path,
    config: knock_proto::config::Config,
    performer: Performer,
    age: Duration,
    tx: SyncSender<Msg>,
) -> Executor<'static> {
    // The log shows in a failing test's output.
    let _ = tracing_subscriber::fmt()
        .with_test_writer()
        .with_max_level(tracing::Level::DEBUG)
        .try_init();
    let one_time = vec![None; config.doors.len()];
    let keys = vec![None; config.doors.len()];
    let clock = Clock::since(Instant::now().checked_sub(age).unwrap());
    // The daemon started at 0 on this clock; `age` passed since (the engine was busy).
    let engine = Engine::new(
        Timestamp::ZERO,
        Start {
            loaded: crate::load::Loaded {
                config,
                one_time,
                keys,
            },
            local: Vec::new(),
            adopted: Vec::new(),
            wall: SystemTime::now(),
            ipv4_only: false,
            replay: None,
        },
    );
    let (journal, _) = Journal::open(&dir.join("pending")).unwrap();
    Executor::new(Parts {
        engine,
        settings: Settings {
            config_path: dir.join("k.conf"),
            interface: "any".into(),
            ipv4_only: false,
            lookup: false,
            instance: "test".into(),
            table_watched: false,
        },
        clock,
        capture: &NoCapture,
        counters: Arc::default(),
        journal,
        performer,
        tx,
    })
    .unwrap()
}

/// The config of `toml` (TOML format), and a performer whose nft is `sh -c SCRIPT` (nft's
/// arguments follow as `$1`...).
fn with_nft(toml: &str, script: &str) -> (knock_proto::config::Config, Performer) {
    let config = knock_proto::config::toml::parse(Path::new("k.toml"), toml).unwrap();
    let nft = crate::actions::firewall::Nft::with_command(["sh", "-c", script, "sh"]);
    let performer = Performer::with_firewall(&config, nft, "knock_test").unwrap();
    (config, performer)
}

fn wait_for(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn a_knock_behind_a_flood_counts_at_its_capture_time_not_when_the_engine_gets_to_it() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("opened");
    let config = format!(
        "[legit]\n    sequence = 7000,8000\n    seq_timeout = 5\n    command = /bin/sh -c 'echo %IP% >> {}'\n",
        marker.display()
    );
    // The clock says 60 s; the knock was captured at 0 s and 0.1 s, with 5000 spoofed
    // first knocks in between still waiting in the queue.
    // They come in batches, as the capture hands them over.
    let mut msgs = vec![Msg::Hits(vec![(Timestamp::ZERO, hit("198.18.0.1", 7000))])];
    let spoofed: Vec<_> = (0..5000u32)
        .map(|i| {
            let source = std::net::Ipv4Addr::from(0xC613_0000 + i).to_string();
            (Timestamp::ZERO, hit(&source, 7000))
        })
        .collect();
    msgs.extend(spoofed.chunks(64).map(|c| Msg::Hits(c.to_vec())));
    msgs.push(Msg::Hits(vec![(
        Timestamp::from_millis(100),
        hit("198.18.0.1", 8000),
    )]));
    msgs.push(Msg::Signal(SIGTERM));
    assert_eq!(
        run(dir.path(), &config, Duration::from_secs(60), msgs),
        Exit::Signal
    );
    wait_for("the command", || {
        std::fs::read_to_string(&marker).is_ok_and(|m| m == "198.18.0.1\n")
    });
}

#[test]
fn a_close_request_is_answered_once_the_port_is_closed_not_before() {
    let dir = tempfile::tempdir().unwrap();
    let batches = dir.path().join("batches");
    let toml = "[doors.web]\nsequence = \"7000\"\nopen = \"4100/tcp\"\nopen_seconds = 60\n";
    // A slow nft: each batch lands 0.3 s after it was handed over.
    let script = format!("sleep 0.3; cat >> '{}'; echo >> '{0}'", batches.display());
    let (config, performer) = with_nft(toml, &script);
    let (reply, answer) = mpsc::channel();
    let msgs = vec![
        Msg::Hits(vec![(Timestamp::ZERO, hit("198.18.0.1", 7000))]),
        Msg::Control(
            Request::Close {
                door: "web".into(),
                source: None,
            },
            reply,
        ),
        Msg::Signal(SIGTERM),
    ];
    // What nft had done when the answer came.
    let seen = std::thread::spawn({
        let batches = batches.clone();
        move || {
            let response = answer.recv().unwrap();
            (
                response,
                std::fs::read_to_string(&batches).unwrap_or_default(),
            )
        }
    });
    assert_eq!(
        run_with(dir.path(), config, performer, Duration::ZERO, msgs),
        Exit::Signal
    );
    let (response, done) = seen.join().unwrap();
    assert!(
        matches!(&response, Response::Closed { closed } if closed.len() == 1),
        "{response:?}"
    );
    assert!(
        done.contains("{\"delete\":{\"element\""),
        "answered before the port was closed; nft had done:\n{done}"
    );
}

#[test]
fn the_actions_worker_never_waits_for_room_in_the_engine_s_queue() {
    // A flood fills the engine's queue with hits; the engine may itself be waiting for room
    // in the actions worker's queue. Were the worker to wait for the engine's queue to report
    // a deleted table, neither would ever move again.
    let dir = tempfile::tempdir().unwrap();
    let toml = "[doors.web]\nsequence = \"7000\"\nopen = \"4100/tcp\"\n";
    // An nft that applies every batch and finds no table: it was deleted behind our back.
    let script = "case \"$1\" in list) exit 1;; *) cat > /dev/null;; esac";
    let (config, performer) = with_nft(toml, script);
    let (tx, _rx) = mpsc::sync_channel(1);
    tx.send(Msg::ReopenLog).unwrap();
    let executor = executor(dir.path(), config, performer, Duration::ZERO, tx);
    executor.actions.send(Action::CheckFirewall);
    let (reply, answer) = mpsc::channel();
    executor.actions.send(Action::Answer(
        Response::Closed { closed: Vec::new() },
        reply,
    ));
    assert!(
        answer.recv_timeout(Duration::from_secs(20)).is_ok(),
        "the actions worker is stuck reporting the deleted table"
    );
    assert!(
        matches!(lock(&executor.overflow)[..], [Msg::FirewallGone]),
        "the report waits in the overflow, which the engine reads on every turn"
    );
}

/// Processes whose command line contains `needle`.
fn processes_with(needle: &str) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .filter(|c| String::from_utf8_lossy(c).contains(needle))
        .count()
}

#[test]
fn sigterm_closes_doors_at_once_and_a_second_signal_kills_a_start_command_that_never_ends() {
    let dir = tempfile::tempdir().unwrap();
    let marker = dir.path().join("stopped");
    // A unique duration, to find this very process.
    let forever = format!("1000.{}", std::process::id());
    let config = format!(
        "[door]\n    sequence = 7000\n    start_command = /bin/sleep {forever}\n    stop_command = /bin/sh -c 'echo stop %IP% >> {}'\n",
        marker.display()
    );
    let msgs = vec![
        Msg::Hits(vec![(Timestamp::ZERO, hit("198.18.0.1", 7000))]),
        Msg::Signal(SIGTERM),
        Msg::Signal(SIGINT),
    ];
    let started = Instant::now();
    assert_eq!(run(dir.path(), &config, Duration::ZERO, msgs), Exit::Signal);
    assert!(
        started.elapsed() < GRACE,
        "the second signal skipped the grace"
    );
    wait_for("the stop command", || {
        std::fs::read_to_string(&marker).is_ok_and(|m| m == "stop 198.18.0.1\n")
    });
    wait_for("the start command to be killed", || {
        processes_with(&forever) == 0
    });
}

#[test]
fn the_largest_filter_a_config_can_make_compiles() {
    // Every port in its own range up to the limit, and as many IPv6 hosts as are tested:
    // the longest program and the longest jumps.
    let doors: Vec<crate::filter::DoorFilter> = (0..40u16)
        .map(|i| crate::filter::DoorFilter {
            knocks: vec![
                format!("{}", 100 + i * 97).parse().unwrap(),
                format!("{}:udp", 200 + i * 89).parse().unwrap(),
            ],
            target: None,
        })
        .collect();
    let local: Vec<std::net::IpAddr> = (1..=crate::filter::MAX_HOSTS as u16)
        .map(|i| std::net::Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, i).into())
        .collect();
    let filter = crate::filter::build(&doors, &local, false);
    assert_eq!(compiles(&filter), Ok(()));
    let program = filter.program(Framing::Ethernet, 256).unwrap();
    assert!(program.len() < 300, "{} instructions", program.len());
}

#[test]
fn a_slow_name_lookup_never_makes_the_engine_wait() {
    // Lookups that hang until released: the resolver's queue fills, then `try_send` refuses
    // at once (the executor then logs the line without the name).
    let (release, hold) = mpsc::channel::<()>();
    let hold = Mutex::new(hold);
    let mut r = resolver(move |_| {
        let _ = lock(&hold).recv();
        None
    })
    .unwrap();
    let line = |i: u32| LogLine {
        level: tracing::Level::INFO,
        who: Some(std::net::Ipv4Addr::from(0xC613_0000 + i).into()),
        text: "door: Stage 1".into(),
    };
    let taken = (0..2 * LOOKUPS as u32)
        .take_while(|&i| r.try_send(line(i)).is_ok())
        .count();
    assert!((LOOKUPS..=LOOKUPS + 1).contains(&taken), "{taken}");
    assert!(
        r.try_send(line(9999)).is_err(),
        "full: refused, not waited for"
    );
    drop(release);
    r.finish();
}

/// A tmpfs of `kib` KiB mounted on `dir` until dropped (root only).
struct Tmpfs<'a>(&'a Path);

impl<'a> Tmpfs<'a> {
    fn mount(dir: &'a Path, kib: u32) -> Tmpfs<'a> {
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={kib}k"), "knock-test"])
            .arg(dir)
            .status()
            .unwrap();
        assert!(ok.success(), "mount tmpfs on {}", dir.display());
        Tmpfs(dir)
    }

    /// Fills it: the next write fails with ENOSPC.
    fn fill(&self) {
        use std::io::Write as _;
        let mut f = std::fs::File::create(self.0.join("filler")).unwrap();
        let block = vec![0u8; 4096];
        while f.write_all(&block).is_ok() {}
        let _ = f.sync_all();
    }
}

impl Drop for Tmpfs<'_> {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount").arg(self.0).status();
    }
}

#[test]
fn no_start_command_runs_while_its_stop_command_cannot_be_saved() {
    if !knock_e2e::root_or_skip() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir(&state).unwrap();
    let disk = Tmpfs::mount(&state, 64);
    let (started, canary) = (out.path().join("started"), out.path().join("canary"));
    // `guarded` needs its stop on disk; `canary` has no stop command, so it needs nothing.
    let config = format!(
        "[guarded]\n    sequence = 7000\n    start_command = /bin/sh -c 'echo %IP% >> {}'\n    \
         stop_command = /bin/true\n    cmd_timeout = 60\n\
         [canary]\n    sequence = 7100\n    command = /bin/sh -c 'echo %IP% >> {}'\n",
        started.display(),
        canary.display()
    );
    let config = knock_proto::config::knockd::parse(Path::new("k.conf"), &config).unwrap();
    let performer = Performer::without_firewall(&config);
    let (tx, rx) = mpsc::sync_channel(16);
    let executor = executor(&state, config, performer, Duration::ZERO, tx.clone());
    disk.fill();
    for (source, port) in [
        ("198.18.0.1", 7000),
        ("198.18.0.2", 7000),
        ("198.18.0.3", 7100),
    ] {
        tx.send(Msg::Hits(vec![(Timestamp::ZERO, hit(source, port))]))
            .unwrap();
    }
    tx.send(Msg::Signal(SIGTERM)).unwrap();
    assert_eq!(executor.run(&rx), Exit::Signal);
    // Shutdown waited for the commands worker and the commands it started.
    assert_eq!(
        std::fs::read_to_string(&canary).unwrap(),
        "198.18.0.3\n",
        "the door without a stop command opened"
    );
    assert!(
        !started.exists(),
        "a start command ran with its stop command not on disk: {:?}",
        std::fs::read_to_string(&started)
    );
    let pending = std::fs::read_to_string(state.join("pending")).unwrap_or_default();
    assert!(!pending.contains("open "), "{pending}");
}

//! knock-server: the port-knocking daemon, a drop-in replacement for knockd.
//!
//! `main` only parses arguments (the daemon's, or an operator's `status` and `close`), reads
//! the config, takes the instance's lock, opens the capture and wires the pieces of the
//! library (see `lib.rs` for the layout).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;

use anyhow::Context as _;
use clap::Parser as _;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1};
use tracing_subscriber::filter::LevelFilter;

use knock_server::cli::{Args, Cli, Command, EXIT_USAGE, print_stdout};
use knock_server::engine::{self, Engine, Exit, Msg, Settings};
use knock_server::executor::{self, Executor};
use knock_server::{
    capture, completions, control_socket, files, filter, instance, journal, keys, load, log, man,
    operator, perform, pidfile, rotating, table_watch,
};

/// Batches of hits (and other messages) waiting for the engine; beyond this the capture
/// thread drops and counts them. Each batch holds up to `capture::MAX_BATCH` hits.
const QUEUE: usize = 4096;

fn main() -> ExitCode {
    fixed_mmap_threshold();
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("knock-server: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Keeps glibc's mmap threshold at its default (128 KiB) instead of letting it rise: by
/// default, freeing a large block raises the threshold to that block's size, after which the
/// tracker's slab (megabytes under a flood, grown by an eighth at a time) lives in the heap,
/// where each growth copies it whole into fresh pages the kernel must zero, many times the
/// final size in all: a large share of the daemon's CPU while a flood fills the tracker
/// (BENCHMARKS.md). Blocks above the threshold are mapped, and grow with mremap(2) in place.
/// By hand: mallopt is glibc's, and no crate wraps it.
#[allow(unsafe_code)]
fn fixed_mmap_threshold() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: mallopt only sets an allocator parameter; no allocation is in progress.
    unsafe {
        libc::mallopt(libc::M_MMAP_THRESHOLD, 128 * 1024);
    }
}

/// Errors returned from here happen before the daemon runs: they exit with status 2.
fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    match cli.command {
        Some(Command::Status(a)) => operator::status(&a),
        Some(Command::Close(a)) => operator::close(&a),
        Some(Command::Keygen(a)) => keys::keygen(&a),
        Some(Command::Pair(a)) => keys::pair(&a),
        None => daemon(cli.daemon),
    }
}

/// Runs the daemon (no subcommand: knockd's command line).
fn daemon(args: Args) -> anyhow::Result<ExitCode> {
    if args.man {
        print_stdout(&man::render()?)?;
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(shell) = args.completions {
        print_stdout(&completions::render(shell))?;
        return Ok(ExitCode::SUCCESS);
    }
    // Absolute before anything uses them: `-d` changes directory to `/`, and SIGHUP re-reads
    // the config long after.
    let args = files::absolute_args(args)?;
    let config_path = args.config_path();
    let loaded = match load::load(&config_path) {
        Ok(l) => l,
        Err(diagnostics) => {
            eprintln!("{diagnostics}");
            return Ok(ExitCode::from(EXIT_USAGE));
        }
    };
    let warnings = load::warnings(&loaded);
    if args.check {
        print_stdout(loaded.config.to_string().as_bytes())?;
        for w in &warnings {
            eprintln!("warning: {w}");
        }
        report_filter_size(&loaded, args.only_ipv4)?;
        report_integration(&loaded.config, &args.instance.instance.table())?;
        for w in load::host_warnings(&loaded.config) {
            print_stdout(format!("\nthis host: {w}\n").as_bytes())?;
        }
        return Ok(ExitCode::SUCCESS);
    }
    let options = &loaded.config.options;
    let interface = args
        .interface
        .clone()
        .or_else(|| options.interface.clone())
        .unwrap_or_else(|| "any".to_owned());
    let sinks = log_sinks(&args, options);
    let instance = &args.instance;
    let pid_path = args
        .pidfile
        .clone()
        .or_else(|| options.pid_file.clone().map(files::absolute))
        .or_else(|| {
            args.daemon
                .then(|| instance.instance.pid_file(&instance.runtime_dir))
        });
    let state_path = args.state_path();
    files::refuse_symlink(&state_path, "state file")?;
    files::check_state(&state_path)?;
    // Before anything of the instance's is touched (its table above all): a second daemon
    // of the same instance stops here.
    let mut lock = instance::Lock::acquire(&instance.instance, &instance.runtime_dir)?;
    let socket_path = instance.instance.socket(&instance.runtime_dir);
    let control = control_socket::Listener::bind(&socket_path)?;

    let opened = capture::open(&interface)?;
    // Before the state file or the table is touched: a daemon given another's state file
    // stops here.
    let mut state_lock = instance::StateLock::acquire(&state_path, &instance.instance)?;
    if args.state_file.is_none() && instance.instance.is_default() {
        files::adopt_legacy_state(&state_path);
    }
    let local = capture::local_addresses(&interface);
    let mut settings = Settings {
        config_path: config_path.clone(),
        instance: instance.instance.to_string(),
        interface: interface.clone(),
        ipv4_only: args.only_ipv4,
        lookup: args.lookup,
        table_watched: false,
    };
    let unix = executor::wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    // Only for the filter's ports, which the record does not change (the engine gets it).
    let doors = rotating::RotatingDoors::new(&loaded, Default::default(), unix);
    let filter = engine::build_filter(
        &loaded.config,
        &loaded.one_time,
        &doors.filter_knocks(&loaded.config),
        &local,
        settings.ipv4_only,
    );
    let report = opened.set_filter(&filter)?;
    let opened_framing = opened.framing();
    let performer = perform::Performer::new(&loaded.config, &instance.instance.table())?;
    if args.daemon {
        daemonize()?;
        lock.update_pid();
        state_lock.update_pid();
    }
    let _pid = pid_path
        .as_deref()
        .map(pidfile::PidFile::create)
        .transpose()?;
    log::install(&sinks)?;
    // A state file that cannot be read stops us here (exit 2): its stops must not be lost.
    let (journal, adopted) = journal::Journal::open(&state_path)?;
    let replay_file = rotating::record_file(&state_path);
    let replay = rotating::Replay {
        record: rotating::read_record(&replay_file, journal.replay_saved()),
        file: replay_file,
    };
    let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
    forward_signals(tx.clone())?;
    control.spawn(tx.clone())?;
    let monitor = watch_table(
        performer.guards().then(|| instance.instance.table()),
        performer.integrates(),
        &tx,
    );
    settings.table_watched = monitor.is_some();

    tracing::info!("starting up, listening on {interface}");
    let doors: Vec<&str> = loaded
        .config
        .doors
        .iter()
        .map(|d| d.name.as_str())
        .collect();
    tracing::info!(
        "{}",
        log::loaded_line(instance.instance.as_str(), &config_path, &doors)
    );
    for w in warnings.iter().chain(&load::host_warnings(&loaded.config)) {
        tracing::warn!("{w}");
    }
    tracing::debug!(
        "capture filter: {}",
        filter.pcap(opened_framing == knock_server::filter::Framing::Ethernet)
    );
    report.log();
    let clock = capture::Clock::start();
    let counters = Arc::new(capture::Counters::default());
    let engine = Engine::new(
        clock.now(),
        engine::Start {
            loaded,
            local,
            adopted,
            wall: executor::wall(),
            ipv4_only: settings.ipv4_only,
            replay: Some(replay),
        },
    );
    let running = capture::spawn(opened, clock, tx.clone(), counters.clone())?;
    let executor = Executor::new(executor::Parts {
        engine,
        settings,
        clock,
        capture: &running,
        counters,
        journal,
        performer,
        tx,
    })?;
    let exit = executor.run(&rx);
    drop(monitor);
    running.stop();
    // Still holding the lock: no other daemon of this instance has bound it since.
    let _ = std::fs::remove_file(&socket_path);
    drop(state_lock);
    drop(lock);
    Ok(match exit {
        Exit::Signal => ExitCode::SUCCESS,
        Exit::CaptureFailed => ExitCode::FAILURE,
    })
}

/// `--check`: the size of the kernel filter for this config, on Ethernet (with its VLAN
/// variants, the largest case) and with no local address known (any destination).
fn report_filter_size(loaded: &load::Loaded, ipv4_only: bool) -> anyhow::Result<()> {
    let unix = executor::wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let doors = rotating::RotatingDoors::new(loaded, Default::default(), unix);
    let wanted = engine::build_filter(
        &loaded.config,
        &loaded.one_time,
        &doors.filter_knocks(&loaded.config),
        &[],
        ipv4_only,
    );
    // The program is generated, never compiled by libpcap: an error here is a bug of ours.
    let size = wanted
        .program(filter::Framing::Ethernet, 0)
        .map_err(|e| anyhow::anyhow!("{e}"))?
        .len();
    let line = format!(
        "\ncapture filter: {size} BPF instructions on Ethernet (kernel limit {})\n  {}\n",
        filter::BPF_MAXINSNS,
        wanted.pcap(true)
    );
    print_stdout(line.as_bytes())
}

/// `--check`: the other firewalls that get our rule for `open` doors, and the rule.
fn report_integration(config: &knock_proto::config::Config, table: &str) -> anyhow::Result<()> {
    use knock_server::actions::firewall::{Integration, Nft, integration};
    let opens = config
        .doors
        .iter()
        .any(|d| !d.actions.open.is_empty() || !d.actions.forward.is_empty());
    if !opens || !config.options.firewall_integration {
        return Ok(());
    }
    let targets = match Integration::new(Nft::system(), Vec::new(), table).targets() {
        Ok(t) => t,
        Err(e) => {
            let text = format!(
                "\nfirewall integration: cannot tell which firewalls get our rule for `open` \
                 doors ({e}); run --check as root to see them\n"
            );
            return print_stdout(text.as_bytes());
        }
    };
    let mut text = String::from("\nfirewall integration:");
    if targets.is_empty() {
        text.push_str(" no other firewall found\n");
    } else {
        text.push_str(&format!(
            " one rule at the top of each firewall below accepts what `open` lets in:\n  \
             nft: meta mark & 0x{m:x} == 0x{m:x} accept comment \"{c}\"\n  iptables: {}\n",
            integration::iptables_spec(&integration::comment(table)).join(" "),
            m = integration::MARK,
            c = integration::comment(table),
        ));
        for (target, has) in targets {
            let state = if has { "there now" } else { "to add" };
            text.push_str(&format!("  {target} ({state})\n"));
        }
    }
    print_stdout(text.as_bytes())
}

/// Where the log goes: knockd's rules (see [`log`]).
fn log_sinks(args: &Args, options: &knock_proto::config::Options) -> log::Sinks {
    let file = args.logfile.clone().or_else(|| options.log_file.clone());
    log::Sinks {
        stderr: !args.daemon
            && (args.verbose || args.debug || (file.is_none() && !options.use_syslog)),
        stderr_level: if args.debug {
            LevelFilter::TRACE
        } else if args.verbose {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        },
        file,
        syslog: options.use_syslog,
    }
}

/// Starts following `table` (when we own one) through `nft monitor`; if it cannot start,
/// that is logged and the table is checked every 5 s instead. The host's addresses are
/// followed by the capture thread (`host::Watch`), which also needs them for its decoder.
fn watch_table(
    table: Option<String>,
    others: bool,
    tx: &mpsc::SyncSender<Msg>,
) -> Option<table_watch::NftMonitor> {
    table_watch::watch_table(&table?, others, tx.clone())
        .map_err(|e| tracing::warn!("{e:#}; checking the table every 5 s instead"))
        .ok()
}

/// Delivers SIGHUP, SIGTERM, SIGINT and SIGUSR1 to the engine as messages: the handlers only write to
/// a pipe (signal-hook), and all the work happens on the engine thread.
fn forward_signals(tx: mpsc::SyncSender<Msg>) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT, SIGUSR1])
        .context("cannot install signal handlers")?;
    std::thread::Builder::new()
        .name("signals".into())
        .spawn(move || {
            for sig in signals.forever() {
                if tx.send(Msg::Signal(sig)).is_err() {
                    break;
                }
            }
        })
        .context("cannot start the signal thread")?;
    Ok(())
}

/// Detaches from the terminal (`-d`), before any thread exists. By hand: rustix has no
/// daemon(3) or fork, and std none either.
#[allow(unsafe_code)]
fn daemonize() -> anyhow::Result<()> {
    // SAFETY: called while the process is single-threaded (no thread has been spawned yet),
    // which is what fork(2) inside daemon(3) requires to be sound.
    let rc = unsafe { libc::daemon(0, 0) };
    if rc != 0 {
        return Err(std::io::Error::last_os_error()).context("cannot detach (-d)");
    }
    Ok(())
}

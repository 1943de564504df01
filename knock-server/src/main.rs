//! knock-server: the port-knocking daemon, a drop-in replacement for knockd.
//!
//! `main` only parses arguments, reads the config, opens the capture and wires the pieces
//! of the library (see `lib.rs` for the layout).

use std::process::ExitCode;
use std::sync::Arc;
use std::sync::mpsc;

use anyhow::Context as _;
use clap::Parser as _;
use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
use tracing_subscriber::filter::LevelFilter;

use knock_server::cli::Cli;
use knock_server::engine::{self, Engine, Exit, Msg, Settings};
use knock_server::executor::{self, Executor};
use knock_server::{capture, filter, journal, load, log, man, perform, pidfile, rotating};

/// Batches of hits (and other messages) waiting for the engine; beyond this the capture
/// thread drops and counts them. Each batch holds up to `capture::MAX_BATCH` hits.
const QUEUE: usize = 4096;

/// Exit status for usage, config and startup errors (knockd users' scripts test for non-zero).
const EXIT_USAGE: u8 = 2;

fn main() -> ExitCode {
    match run() {
        Ok(code) => code,
        Err(e) => {
            eprintln!("knock-server: {e:#}");
            ExitCode::from(EXIT_USAGE)
        }
    }
}

/// Errors returned from here happen before the daemon runs: they exit with status 2.
fn run() -> anyhow::Result<ExitCode> {
    let cli = Cli::parse();
    if let Some(command) = cli.command {
        return knock_server::keys::run(command);
    }
    let args = cli.daemon;
    if args.man {
        print_stdout(&man::render()?)?;
        return Ok(ExitCode::SUCCESS);
    }
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
        return Ok(ExitCode::SUCCESS);
    }
    let options = &loaded.config.options;
    let interface = args
        .interface
        .clone()
        .or_else(|| options.interface.clone())
        .unwrap_or_else(|| "any".to_owned());
    let log_file = args.logfile.clone().or_else(|| options.log_file.clone());
    let sinks = log::Sinks {
        stderr: !args.daemon
            && (args.verbose || args.debug || (log_file.is_none() && !options.use_syslog)),
        stderr_level: if args.debug {
            LevelFilter::TRACE
        } else if args.verbose {
            LevelFilter::DEBUG
        } else {
            LevelFilter::INFO
        },
        file: log_file,
        syslog: options.use_syslog,
    };
    let pid_path = args
        .pidfile
        .clone()
        .or_else(|| options.pid_file.clone())
        .or_else(|| args.daemon.then(|| "/var/run/knockd.pid".into()));

    let mut opened = capture::open(&interface)?;
    let local = capture::local_addresses(&interface);
    let settings = Settings {
        config_path,
        interface: interface.clone(),
        ipv4_only: args.only_ipv4,
        lookup: args.lookup,
        ethernet: opened.is_ethernet(),
        instance: "knock-server".to_owned(),
    };
    let replay = rotating::Replay {
        record: rotating::read_record(&rotating::record_file(&args.state_file)),
        file: rotating::record_file(&args.state_file),
    };
    let unix = executor::wall()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let doors = rotating::RotatingDoors::new(&loaded, replay.record.clone(), unix);
    let filter = engine::build_filter(
        &loaded.config,
        &loaded.one_time,
        &doors.filter_knocks(&loaded.config),
        &local,
        settings.ethernet,
        settings.ipv4_only,
    );
    let report = opened.set_filter(&filter)?;
    let performer = perform::Performer::new(&loaded.config)?;
    if args.daemon {
        daemonize()?;
    }
    let _pid = pid_path
        .as_deref()
        .map(pidfile::PidFile::create)
        .transpose()?;
    log::install(&sinks)?;
    // A state file that cannot be read stops us here (exit 2): its stops must not be lost.
    let (journal, adopted) = journal::Journal::open(&args.state_file)?;
    let (tx, rx) = mpsc::sync_channel::<Msg>(QUEUE);
    forward_signals(tx.clone())?;

    tracing::info!("starting up, listening on {interface}");
    for w in &warnings {
        tracing::warn!("{w}");
    }
    tracing::debug!("capture filter: {filter}");
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
            ethernet: settings.ethernet,
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
    running.stop();
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
    let filter = engine::build_filter(
        &loaded.config,
        &loaded.one_time,
        &doors.filter_knocks(&loaded.config),
        &[],
        true,
        ipv4_only,
    );
    let size = capture::filter_size(&filter, 1)?;
    let line = format!(
        "\ncapture filter: {size} BPF instructions on Ethernet (kernel limit {})\n  {filter}\n",
        filter::BPF_MAXINSNS
    );
    print_stdout(line.as_bytes())?;
    if size > filter::BPF_MAXINSNS {
        eprintln!(
            "warning: the kernel will refuse this filter; every packet would be copied to knock-server"
        );
    }
    Ok(())
}

/// Writes to stdout; a reader that went away (`--check | head`) is not an error.
fn print_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|()| out.flush()) {
        Err(e) if e.kind() != std::io::ErrorKind::BrokenPipe => {
            Err(e).context("cannot write to stdout")
        }
        _ => Ok(()),
    }
}

/// Delivers SIGHUP, SIGTERM and SIGINT to the engine as messages: the handlers only write to
/// a pipe (signal-hook), and all the work happens on the engine thread.
fn forward_signals(tx: mpsc::SyncSender<Msg>) -> anyhow::Result<()> {
    let mut signals = signal_hook::iterator::Signals::new([SIGHUP, SIGTERM, SIGINT])
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

/// Detaches from the terminal (`-d`), before any thread exists.
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

//! knock: the client. Sends port-knock sequences, by name from profiles in the user's config
//! (`knock home wake-laptop`) or knockd-style from the command line (`knock HOST PORT...`).
//!
//! - [`cli`]: the clap definition (also behind completions and the man page);
//! - [`profiles`]: the config file, checked into profiles;
//! - [`plan`]: profile or ports plus overrides, to the exact hits to send;
//! - [`resolve`]: host to address; [`send`]: packets on the wire; [`knocker`]: the sending
//!   loop with pacing, `-v` and `--dry-run`; [`progress`]: the progress bar;
//! - [`proxy`]: `--proxy`, connecting through the door just opened (ssh's ProxyCommand);
//! - [`complete`]: shell completion that reads the profiles at TAB time; [`man`]: knock(1).
//!
//! Every error is printed once, here, and exits with status 2. On Linux with glibc the process
//! starts in [`start`], which skips std's runtime start-up.

// The C `main` is in `start` (see there why); unit tests keep the test harness's `main`.
#![cfg_attr(all(target_os = "linux", target_env = "gnu", not(test)), no_main)]

mod cli;
mod complete;
mod knocker;
mod man;
mod plan;
mod profiles;
mod progress;
mod proxy;
mod resolve;
mod rotating;
mod send;
#[cfg(all(target_os = "linux", target_env = "gnu", not(test)))]
mod start;

use std::io::{self, Write as _};
#[cfg(not(all(target_os = "linux", target_env = "gnu", not(test))))]
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::FromArgMatches as _;
use clap::parser::ValueSource;

use crate::cli::Cli;
use crate::plan::{Family, Overrides, Profiles};
use crate::profiles::{LoadError, Location, Origin, SAMPLE};

#[cfg(not(all(target_os = "linux", target_env = "gnu", not(test))))]
fn main() -> ExitCode {
    ExitCode::from(knock())
}

/// The whole run; returns the exit status (clap exits by itself on bad arguments and `--help`).
fn knock() -> u8 {
    complete::handle_request();
    let mut matches = cli::command().get_matches();
    let origin = match matches.value_source("config") {
        Some(ValueSource::EnvVariable) => Origin::Env,
        _ => Origin::Flag,
    };
    // `_mut` takes the values out instead of copying every match first.
    let cli = Cli::from_arg_matches_mut(&mut matches).unwrap_or_else(|e| e.exit());
    init_logging();
    match run(&cli, origin) {
        Ok(()) => 0,
        Err(err) => {
            let broken_pipe = err.chain().any(|cause| {
                cause
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                // `knock --list | head` is not a failure.
                return 0;
            }
            report(&err);
            2
        }
    }
}

fn run(cli: &Cli, config_origin: Origin) -> anyhow::Result<()> {
    let mut out = io::stdout().lock();
    if let Some(shell) = cli.completions {
        complete::write_script(shell, &mut out)?;
        return Ok(out.flush()?);
    }
    if cli.man {
        man::write(&mut out)?;
        return Ok(out.flush()?);
    }
    let profiles = read_profiles(cli.config.clone().map(|p| (p, config_origin)));
    if let Profiles::Broken(e @ LoadError::Distrusted(_)) = &profiles {
        // As ssh with such a `~/.ssh/config`: no run goes on, knockd mode neither.
        return Err(e.clone().into());
    }
    if cli.list {
        return list(&profiles, &mut out);
    }
    let Some(target) = &cli.target else {
        bail!("nothing to knock: give PROFILE SEQUENCE or HOST PORT... (see knock --help)");
    };
    if cli.show {
        let config = match &profiles {
            Profiles::Loaded(c) => Some(c),
            Profiles::Missing(_) => None,
            // A rotating sequence lives in a profile: say what is wrong with the file.
            Profiles::Broken(e) => return Err(e.clone().into()),
        };
        rotating::show(config, target, &cli.rest, &mut out)?;
        return Ok(out.flush()?);
    }
    let overrides = Overrides {
        udp: cli.udp,
        hits: cli.hits,
        delay: cli.delay.map(Duration::from_millis),
        hit_delay: cli.hit_delay.map(Duration::from_millis),
        family: match (cli.ipv4, cli.ipv6) {
            (true, _) => Family::V4,
            (_, true) => Family::V6,
            _ => Family::Any,
        },
    };
    let plan = plan::build(target, &cli.rest, &profiles, overrides)?;
    if let Profiles::Broken(e) = &profiles {
        // knockd mode needs no profile; one line says the config was passed over.
        let first = e.to_string();
        let first = first.lines().next().unwrap_or_default();
        eprintln!("knock: warning: profiles not read ({first}); knocking `{target}` as a host");
    }
    let dst = resolve::resolve(&plan.host, plan.family)?;
    if cli.dry_run {
        knocker::dry_run(&plan, dst, &mut out)?;
    } else if let Some(target) = &cli.proxy {
        // Standard output carries the connection: `-v` lines go to standard error.
        drop(out);
        knocker::send(&plan, dst, cli.verbose, &mut io::stderr())?;
        return proxy::run(target, plan.family, Duration::from_secs(cli.wait));
    } else {
        knocker::send(&plan, dst, cli.verbose, &mut out)?;
    }
    Ok(out.flush()?)
}

/// The config, in whatever state it is: knockd mode needs none, so nothing here is an error yet.
fn read_profiles(explicit: Option<(std::path::PathBuf, Origin)>) -> Profiles {
    let location = match Location::find(explicit) {
        Ok(l) => l,
        Err(e) => return Profiles::Broken(LoadError::Unreadable(format!("{e:#}"))),
    };
    match profiles::load(&location) {
        Ok(Some(config)) => Profiles::Loaded(config),
        Ok(None) if location.origin != Origin::Default => {
            Profiles::Broken(LoadError::Unreadable(format!(
                "the config file {location} does not exist; create it, for example:\n\n{SAMPLE}"
            )))
        }
        Ok(None) => Profiles::Missing(location),
        Err(e) => Profiles::Broken(e),
    }
}

/// Prints an error once: config problems as the server prints them (each starting with
/// `file:line:column`), anything else after `knock: `, with its causes.
fn report(err: &anyhow::Error) {
    if let Some(LoadError::Invalid(diagnostics)) = err.downcast_ref::<LoadError>() {
        eprintln!("{diagnostics}");
    } else if err.downcast_ref::<plan::CommaSeparatedPorts>().is_some() {
        let args = std::iter::once("knock".to_owned()).chain(std::env::args().skip(1));
        eprintln!("knock: {err}:\n  {}", plan::split_commas(args));
    } else {
        eprintln!("knock: {err:#}");
    }
}

/// `knock --list`.
fn list(profiles: &Profiles, out: &mut impl io::Write) -> anyhow::Result<()> {
    match profiles {
        Profiles::Missing(location) => bail!(
            "there is no config file at {location}; create it with your profiles, for \
             example:\n\n{SAMPLE}"
        ),
        Profiles::Loaded(config) if config.profiles.is_empty() => {
            eprintln!("knock: the config has no profiles yet; add some, for example:\n\n{SAMPLE}");
            Ok(())
        }
        Profiles::Loaded(config) => Ok(profiles::write_list(config, out)?),
        Profiles::Broken(e) => Err(e.clone().into()),
    }
}

/// Diagnostics for developers (`KNOCK_LOG=debug`, or per target: `knock=trace`); users see
/// errors through `main` only. Without `KNOCK_LOG` nothing is installed: the client emits only
/// debug events, and setting up a subscriber for none would cost every knock a noticeable share
/// of its CPU. `Targets` rather than `EnvFilter`: the same directives without span and field
/// matching, whose regex engine would make every run's binary bigger (more pages to relocate
/// and fault in at start-up).
fn init_logging() {
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let Some(directives) = std::env::var_os("KNOCK_LOG") else {
        return;
    };
    let filter = match directives
        .to_string_lossy()
        .parse::<tracing_subscriber::filter::Targets>()
    {
        Ok(f) => f,
        Err(e) => {
            eprintln!("knock: warning: KNOCK_LOG ignored: {e}");
            return;
        }
    };
    tracing_subscriber::registry()
        .with(tracing_subscriber::fmt::layer().with_writer(io::stderr))
        .with(filter)
        .init();
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    /// The unwinder is linked in (build.rs) rather than loaded from libgcc_s: a panic still
    /// unwinds, running destructors on the way, and is caught.
    #[test]
    fn a_panic_unwinds_through_the_linked_in_unwinder() {
        struct Guard<'a>(&'a Cell<bool>);
        impl Drop for Guard<'_> {
            fn drop(&mut self) {
                self.0.set(true);
            }
        }
        let dropped = Cell::new(false);
        let caught = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            let _guard = Guard(&dropped);
            panic!("on purpose");
        }));
        assert!(caught.is_err());
        assert!(dropped.get(), "the destructor ran while unwinding");
    }
}

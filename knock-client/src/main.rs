//! knock: the client. Sends port-knock sequences, by name from profiles in the user's config
//! (`knock home wake-laptop`) or knockd-style from the command line (`knock HOST PORT...`).
//!
//! - [`cli`]: the clap definition (also behind completions and the man page);
//! - [`profiles`]: the config file, checked into profiles;
//! - [`plan`]: profile or ports plus overrides, to the exact hits to send;
//! - [`resolve`]: host to address; [`send`]: packets on the wire; [`knocker`]: the sending
//!   loop with pacing, `-v` and `--dry-run`; [`progress`]: the progress bar;
//! - [`complete`]: shell completion that reads the profiles at TAB time; [`man`]: knock(1).
//!
//! Every error is printed once, here, and exits with status 2.

mod cli;
mod complete;
mod knocker;
mod man;
mod plan;
mod profiles;
mod progress;
mod resolve;
mod send;

use std::io::{self, Write as _};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::bail;
use clap::FromArgMatches as _;
use clap::parser::ValueSource;

use crate::cli::Cli;
use crate::plan::{Family, Overrides, Profiles};
use crate::profiles::{Location, Origin, SAMPLE};

fn main() -> ExitCode {
    complete::handle_request();
    let matches = cli::command().get_matches();
    let origin = match matches.value_source("config") {
        Some(ValueSource::EnvVariable) => Origin::Env,
        _ => Origin::Flag,
    };
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    init_logging();
    match run(&cli, origin) {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            let broken_pipe = err.chain().any(|cause| {
                cause
                    .downcast_ref::<io::Error>()
                    .is_some_and(|e| e.kind() == io::ErrorKind::BrokenPipe)
            });
            if broken_pipe {
                // `knock --list | head` is not a failure.
                return ExitCode::SUCCESS;
            }
            eprintln!("knock: {err:#}");
            ExitCode::from(2)
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
    let location = Location::find(cli.config.clone().map(|p| (p, config_origin)))?;
    let profiles = match profiles::load(&location)? {
        Some(config) => Profiles::Loaded(config),
        None if location.origin != Origin::Default => {
            bail!("the config file {location} does not exist; create it, for example:\n\n{SAMPLE}")
        }
        None => Profiles::Missing(location),
    };
    if cli.list {
        return list(&profiles, &mut out);
    }
    let Some(target) = &cli.target else {
        bail!("nothing to knock: give PROFILE SEQUENCE or HOST PORT... (see knock --help)");
    };
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
    let dst = resolve::resolve(&plan.host, plan.family)?;
    if cli.dry_run {
        knocker::dry_run(&plan, dst, &mut out)?;
    } else {
        knocker::send(&plan, dst, cli.verbose, &mut out)?;
    }
    Ok(out.flush()?)
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
    }
}

/// Diagnostics for developers (`KNOCK_LOG=debug`); users see errors through `main` only.
fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("KNOCK_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(io::stderr)
        .init();
}

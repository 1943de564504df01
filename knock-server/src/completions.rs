//! Static shell completion scripts (`knock-server --completions SHELL`), generated from the
//! clap definition in [`crate::cli`], so they always offer the current subcommands and flags.
//! `completions/` holds their output, kept current by `tests/assets.rs`.
//!
//! Static, unlike the client's: the daemon's words (subcommands, flags, instance names) are
//! few and fixed, and door names would need the config (often readable by root only).

use clap::CommandFactory as _;
pub use clap_complete::Shell;

use crate::cli::Cli;

/// The script for `shell`, calling the program by its installed name.
pub fn render(shell: Shell) -> Vec<u8> {
    let mut out = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "knock-server", &mut out);
    out
}

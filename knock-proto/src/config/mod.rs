//! The server's configuration: one model, two formats.
//!
//! - [`knockd`]: knockd.conf exactly as knockd reads it, so an existing file works unchanged.
//! - [`toml`](mod@toml): our native format, knockd's keys in snake_case under `[options]` and
//!   `[doors.NAME]`, plus the built-in actions (Wake-on-LAN, mail, opening a port).
//!
//! [`parse`] picks the format (by extension, then by a look at the content) and returns either a
//! checked [`Config`] or every problem found, each naming file, line and column. Parsing takes
//! the text, not a path to read, so it is tested on strings; [`OneTimeSource`] files are named
//! here and read by the caller.

pub mod diagnostic;
pub mod knockd;
pub mod model;
pub mod toml;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use model::*;

use std::path::Path;

/// Which syntax a config file is written in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// knockd.conf: `[options]`, `[door]`, `Key = value`.
    Knockd,
    /// Our TOML format.
    Toml,
}

impl Format {
    /// `.toml` means TOML, `.conf` means knockd; otherwise a look at the content decides:
    /// a `[doors.` table or a quoted value means TOML.
    pub fn detect(path: &Path, text: &str) -> Format {
        match path.extension().and_then(|e| e.to_str()) {
            Some(e) if e.eq_ignore_ascii_case("toml") => return Format::Toml,
            Some(e) if e.eq_ignore_ascii_case("conf") => return Format::Knockd,
            _ => {}
        }
        let looks_toml = text.lines().map(str::trim).any(|l| {
            l.starts_with("[doors.")
                || l.starts_with("[doors]")
                || l.starts_with("[[")
                || (l.contains('=') && {
                    let v = l.split_once('=').map(|(_, v)| v.trim()).unwrap_or("");
                    v.starts_with('"')
                        || v.starts_with('[')
                        || v.starts_with('{')
                        || v == "true"
                        || v == "false"
                })
        });
        if looks_toml {
            Format::Toml
        } else {
            Format::Knockd
        }
    }
}

/// Parses `text`, read from `path`, in the format [`Format::detect`] picks.
///
/// `path` is used for the format and in error messages; relative paths inside the file
/// (one-time sequence files) are kept as written.
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    match Format::detect(path, text) {
        Format::Knockd => knockd::parse(path, text),
        Format::Toml => toml::parse(path, text),
    }
}

//! The server's configuration: one model, two formats.
//!
//! - [`knockd`]: knockd.conf exactly as knockd reads it, so an existing file works unchanged.
//! - [`toml`](mod@toml): our native format, knockd's keys in snake_case under `[options]` and
//!   `[doors.NAME]`, plus the built-in actions (Wake-on-LAN, mail, opening a port).
//!
//! [`parse`] picks the format (by extension, then by a look at the content) and returns either a
//! checked [`Config`] or every problem found, each naming file, line and column. Parsing takes
//! the text, not a path to read, so it is tested on strings. [`load`] also reads the one-time
//! sequence files ([`SequenceSource::OneTime`]) the config names, through a reader the caller
//! passes in: this crate never touches the file system itself.
//!
//! `Config`'s `Display` (in `describe.rs`) is what `knock-server --check` prints.

mod describe;
pub mod diagnostic;
pub mod keys;
pub mod knockd;
pub mod model;
mod rotating;
pub mod rotating_keys;
pub mod toml;

#[cfg(test)]
mod test_support;
pub(crate) mod value;
pub mod walk;

pub use diagnostic::{Diagnostic, Diagnostics};
pub use model::*;

use std::io;
use std::path::Path;

use crate::auth::Key;
use crate::onetime::OneTimeSequences;

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

/// Like [`parse`], from raw bytes: invalid UTF-8 is reported with its line and column (every
/// such line), together with whatever else is wrong on the other lines.
pub fn parse_bytes(path: &Path, bytes: &[u8]) -> Result<Config, Diagnostics> {
    if let Ok(text) = std::str::from_utf8(bytes) {
        return parse(path, text);
    }
    let mut diags = Diagnostics::default();
    let mut bad_lines = Vec::new();
    for (i, line) in bytes.split(|b| *b == b'\n').enumerate() {
        if let Err(e) = std::str::from_utf8(line) {
            let valid = e.valid_up_to();
            let good = String::from_utf8_lossy(line.get(..valid).unwrap_or_default());
            let byte = line.get(valid).copied().unwrap_or_default();
            bad_lines.push(i + 1);
            diags.push(Diagnostic {
                file: path.to_owned(),
                line: i + 1,
                column: Some(good.chars().count() + 1),
                source_line: Some(String::from_utf8_lossy(line).into_owned()),
                message: format!("invalid UTF-8 (byte 0x{byte:02x}): save the file as UTF-8"),
            });
        }
    }
    // The rest of the file still gets checked; problems on the undecodable lines are
    // already reported above.
    let text = String::from_utf8_lossy(bytes);
    if let Err(others) = parse(path, &text) {
        diags.0.extend(
            others
                .0
                .into_iter()
                .filter(|d| !bad_lines.contains(&d.line)),
        );
    }
    diags.sort();
    Err(diags)
}

/// A config with its one-time sequence files read: what the server runs on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Loaded {
    /// The parsed config.
    pub config: Config,
    /// One entry per door of `config.doors`, in the same order: `Some` for a door with
    /// `one_time_sequences`, `None` for a fixed sequence.
    pub one_time: Vec<Option<OneTimeSequences>>,
    /// One entry per door, in the same order: `Some` for a rotating door (its key), `None`
    /// otherwise.
    pub keys: Vec<Option<Key>>,
}

/// Reads and parses the config at `path`, then the one-time sequence file of every door that
/// has one, all through `read` (the caller passes `|p| std::fs::read_to_string(p)`; tests pass
/// a map). Every problem in the config and in those files is reported; a one-time file with no
/// unused sequence left is refused, as knockd refuses it at start-up.
pub fn load(
    path: &Path,
    read: impl Fn(&Path) -> io::Result<String>,
) -> Result<Loaded, Diagnostics> {
    load_with_keys(path, &read, |p| read(p).map_err(|e| io_message(&e)))
}

/// Like [`load`], with the key files of rotating doors read through `read_key`, which also
/// refuses a file others can read or write (the server checks its mode): its error is the
/// whole message, e.g. "keys/ssh.key is mode 0644: ...".
pub fn load_with_keys(
    path: &Path,
    read: impl Fn(&Path) -> io::Result<String>,
    read_key: impl Fn(&Path) -> Result<String, String>,
) -> Result<Loaded, Diagnostics> {
    let text = read(path).map_err(|e| {
        Diagnostics(vec![Diagnostic::whole_file(
            path,
            format!("cannot read the config file: {}", io_message(&e)),
        )])
    })?;
    let mut config = parse(path, &text)?;
    let mut diags = Diagnostics::default();
    let mut one_time = Vec::with_capacity(config.doors.len());
    let mut keys = Vec::with_capacity(config.doors.len());
    for door in &mut config.doors {
        keys.push(match &mut door.sequence {
            SequenceSource::Rotating(r) => {
                relative_to_config(path, &mut r.secret_file);
                let at_key = |message: String| Diagnostic::at_line(path, &text, r.line, message);
                match read_key(&r.secret_file).map(|t| t.parse::<Key>()) {
                    Err(e) => {
                        diags.push(at_key(format!("cannot use secret_file: {e}")));
                        None
                    }
                    Ok(Err(e)) => {
                        let file = r.secret_file.display();
                        diags.push(at_key(format!("secret_file `{file}`: {e}")));
                        None
                    }
                    Ok(Ok(key)) => Some(key),
                }
            }
            _ => None,
        });
        let SequenceSource::OneTime { path: file, line } = &mut door.sequence else {
            one_time.push(None);
            continue;
        };
        relative_to_config(path, file);
        let at_key = |message: String| Diagnostic::at_line(path, &text, *line, message);
        match read(file) {
            Err(e) => diags.push(at_key(format!(
                "cannot read one_time_sequences file `{}`: {}",
                file.display(),
                io_message(&e)
            ))),
            Ok(contents) => match OneTimeSequences::parse(file, &contents) {
                Err(errors) => diags.0.extend(errors.0),
                // A used-up file disables its door (as when its last sequence is used while
                // running) rather than keeping every other door from starting; the caller
                // sees `current() == None` and says so.
                Ok(seqs) => one_time.push(Some(seqs)),
            },
        }
    }
    let loaded = Loaded {
        config,
        one_time,
        keys,
    };
    diags.into_result(loaded)
}

/// Makes a path written in the config relative to the config file, not to wherever the daemon
/// was started (systemd starts it in /), so a config and its files can move together.
fn relative_to_config(config: &Path, file: &mut std::path::PathBuf) {
    if file.is_relative() {
        if let Some(dir) = config.parent() {
            *file = dir.join(&*file);
        }
    }
}

/// An I/O error as people read it: "No such file or directory", without "(os error 2)".
/// The client's messages about its own files use it too.
pub fn io_message(e: &io::Error) -> String {
    let text = e.to_string();
    match e.raw_os_error() {
        Some(code) => text
            .strip_suffix(&format!(" (os error {code})"))
            .map_or_else(|| text.clone(), str::to_owned),
        None => text,
    }
}

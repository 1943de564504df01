//! Logging: knockd's lines, where knockd users and their log watchers expect them.
//!
//! The daemon logs through `tracing`. Events at INFO and above are knockd's own lines
//! (`198.18.0.1: door: Stage 1`, `door: running command: ...`) and go, word for word, to
//! - the LogFile, each prefixed `[YYYY-MM-DD HH:MM] ` in local time as knockd writes it;
//! - syslog with UseSyslog, as `knockd[PID]: ...` at LOG_NOTICE in the daemon facility, so
//!   fail2ban and logcheck rules written for knockd keep matching;
//! - stderr, when in the foreground and either `-v` is given or no other sink is configured
//!   (under systemd this is the journal).
//!
//! Stage and sequence timeout lines in the file and syslog are rate-limited so that a flood
//! of spoofed knocks cannot fill the disk, while a real knock's lines all appear
//! (`stage_lines.rs`); the time prefix is formatted once a minute.
//!
//! `-v` adds DEBUG (failed attempts, ignored packets, command output) and `-D` adds TRACE
//! (every packet) on stderr; the file and syslog keep knockd's level of detail.

use std::fmt::Write as _;
use std::fs::File;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::SystemTime;

use anyhow::Context as _;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::Layer;
use tracing_subscriber::filter::LevelFilter;
use tracing_subscriber::layer::{Context, SubscriberExt as _};
use tracing_subscriber::util::SubscriberInitExt as _;

use crate::stage_lines;

/// Where the log goes, from the command line and the config.
#[derive(Debug, Clone)]
pub struct Sinks {
    /// knockd-format log file.
    pub file: Option<PathBuf>,
    /// Also log to syslog.
    pub syslog: bool,
    /// Also log to stderr.
    pub stderr: bool,
    /// Detail on stderr: INFO, DEBUG (`-v`) or TRACE (`-D`).
    pub stderr_level: LevelFilter,
}

/// Installs the global subscriber. Called once, from `main`, after the config is read (the
/// sinks depend on it) and before any thread starts.
pub fn install(sinks: &Sinks) -> anyhow::Result<()> {
    let file = match &sinks.file {
        Some(path) => Some(Arc::new(KnockdFile::open(path)?)),
        None => None,
    };
    if let Some(f) = &file {
        let _ = LOG_FILE.set(f.clone());
    }
    if sinks.syslog {
        syslog::open();
    }
    let fallback = needs_stderr_fallback(sinks, syslog::reachable);
    let knockd = KnockdLayer {
        file,
        syslog: sinks.syslog,
        prefix: Mutex::default(),
    }
    .with_filter(LevelFilter::INFO);
    let stderr = (sinks.stderr || fallback).then(|| {
        tracing_subscriber::fmt::layer()
            .with_writer(std::io::stderr)
            .with_target(false)
            .with_level(false)
            .without_time()
            .with_filter(sinks.stderr_level)
    });
    tracing_subscriber::registry()
        .with(knockd)
        .with(stderr)
        .try_init()
        .context("cannot install the logger")?;
    if fallback {
        tracing::warn!(
            "UseSyslog is set but syslog is not reachable ({}) and there is no LogFile: \
             logging to stderr",
            syslog::PATH
        );
    }
    Ok(())
}

/// The LogFile, for [`reopen`].
static LOG_FILE: OnceLock<Arc<KnockdFile>> = OnceLock::new();

/// Reopens the LogFile by its path (SIGHUP, SIGUSR1): after logrotate moved it away, lines go
/// to the new file of that name instead of the rotated one.
pub fn reopen() {
    let Some(f) = LOG_FILE.get() else { return };
    match open_append(&f.path) {
        Ok(new) => *f.file.lock().unwrap_or_else(|e| e.into_inner()) = new,
        Err(e) => tracing::error!("cannot reopen log file {}: {e:#}", f.path.display()),
    }
}

/// Whether no configured sink would get the lines: UseSyslog with syslog unreachable and no
/// LogFile (stderr not already on). Then stderr takes them, so that the daemon is never mute.
fn needs_stderr_fallback(sinks: &Sinks, syslog_reachable: impl FnOnce() -> bool) -> bool {
    !sinks.stderr && sinks.file.is_none() && sinks.syslog && !syslog_reachable()
}

/// The LogFile, appended to (never through a symlink: the daemon runs as root, and `-g` or
/// LogFile may name a place others can write). Created 0644, as knockd creates it.
fn open_append(path: &Path) -> anyhow::Result<File> {
    crate::files::open(path, crate::files::Access::Append, 0o644, "log file")?
        .with_context(|| format!("cannot open log file {}", path.display()))
}

/// Doors named in the start line; past them it counts the rest, so that a config of 10 000
/// doors logs one short line (`status` lists them all).
const DOORS_NAMED: usize = 8;

/// The start line after knockd's: which instance, config and doors.
pub fn loaded_line(instance: &str, config: &Path, doors: &[&str]) -> String {
    let named = doors[..doors.len().min(DOORS_NAMED)].join(", ");
    let rest = match doors.len().saturating_sub(DOORS_NAMED) {
        0 => String::new(),
        n => format!(" and {n} more"),
    };
    format!(
        "instance {instance}: config {}, {} door(s): {named}{rest}",
        config.display(),
        doors.len(),
    )
}

/// knockd's line prefix for local time `now`: `[2026-11-25 00:02] `.
pub fn prefix(now: chrono::DateTime<chrono::Local>) -> String {
    now.format("[%Y-%m-%d %H:%M] ").to_string()
}

struct KnockdFile {
    path: PathBuf,
    file: Mutex<File>,
}

impl KnockdFile {
    fn open(path: &Path) -> anyhow::Result<KnockdFile> {
        let file = open_append(path)?;
        Ok(KnockdFile {
            path: path.to_owned(),
            file: Mutex::new(file),
        })
    }
}

struct KnockdLayer {
    file: Option<Arc<KnockdFile>>,
    syslog: bool,
    /// knockd's time prefix, formatted once per minute.
    prefix: Mutex<CachedPrefix>,
}

impl<S: Subscriber> Layer<S> for KnockdLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        let mut message = Message::default();
        event.record(&mut message);
        let unix = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        // Which Stage lines a flood leaves out.
        let mut lines = Vec::new();
        stage_lines::admit(unix, &message.0, &mut lines);
        let priority = if *event.metadata().level() == Level::ERROR {
            syslog::ERR
        } else {
            syslog::NOTICE
        };
        for text in &lines {
            self.write_line(unix, priority, text);
        }
    }
}

impl KnockdLayer {
    /// Writes one line to the file and syslog.
    fn write_line(&self, unix: u64, priority: libc::c_int, text: &str) {
        if let Some(f) = &self.file {
            let prefix = self
                .prefix
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .get(unix);
            let line = format!("{prefix}{text}\n");
            let mut file = f.file.lock().unwrap_or_else(|e| e.into_inner());
            // A full disk must not take the daemon down; stderr (if any) still has the line.
            if file.write_all(line.as_bytes()).is_err() {
                eprintln!("knock-server: cannot write to {}", f.path.display());
            }
        }
        if self.syslog {
            syslog::send(priority, text);
        }
    }
}

/// knockd's prefix for the current minute, formatted when the minute changes.
#[derive(Debug, Default)]
struct CachedPrefix {
    /// Unix minute of `text`.
    minute: Option<u64>,
    text: Arc<str>,
}

impl CachedPrefix {
    /// The prefix for Unix time `unix` (seconds). Time zones differ from UTC by whole
    /// minutes, so a local minute starts with a Unix minute.
    fn get(&mut self, unix: u64) -> Arc<str> {
        let minute = unix / 60;
        if self.minute != Some(minute) {
            self.minute = Some(minute);
            self.text = prefix(chrono::Local::now()).into();
        }
        self.text.clone()
    }
}

/// Collects an event's message and any extra fields as `key=value`.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, "{value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }

    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0.push_str(value);
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }
}

/// The C library's syslog(3): it owns the connection to /dev/log, reconnects after syslogd
/// restarts, and formats what local syslog daemons expect. No crate in our tree calls it;
/// the `syslog` crates write to /dev/log themselves.
#[allow(unsafe_code)]
mod syslog {
    use std::ffi::CString;

    pub const NOTICE: libc::c_int = libc::LOG_NOTICE;

    /// Where the local syslog daemon listens.
    pub const PATH: &str = "/dev/log";

    /// Whether a syslog daemon listens on [`PATH`] now.
    pub fn reachable() -> bool {
        let Ok(s) = std::os::unix::net::UnixDatagram::unbound() else {
            return false;
        };
        s.connect(PATH).is_ok() || std::os::unix::net::UnixStream::connect(PATH).is_ok()
    }
    pub const ERR: libc::c_int = libc::LOG_ERR;

    /// The identity knockd logs under, so rules written for knockd match.
    static IDENT: &std::ffi::CStr = c"knockd";

    pub fn open() {
        // SAFETY: IDENT is a 'static NUL-terminated string, as openlog requires (it keeps
        // the pointer).
        unsafe { libc::openlog(IDENT.as_ptr(), libc::LOG_PID, libc::LOG_DAEMON) }
    }

    pub fn send(priority: libc::c_int, text: &str) {
        let Ok(msg) = CString::new(text.replace('\0', " ")) else {
            return;
        };
        // SAFETY: a constant "%s" format with one valid C string argument.
        unsafe { libc::syslog(priority, c"%s".as_ptr(), msg.as_ptr()) }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone as _;

    #[test]
    fn with_syslog_unreachable_and_no_log_file_stderr_takes_the_lines() {
        let sinks = |file: Option<&str>, syslog, stderr| Sinks {
            file: file.map(PathBuf::from),
            syslog,
            stderr,
            stderr_level: LevelFilter::INFO,
        };
        assert!(needs_stderr_fallback(&sinks(None, true, false), || false));
        assert!(!needs_stderr_fallback(&sinks(None, true, false), || true));
        assert!(!needs_stderr_fallback(
            &sinks(Some("/l"), true, false),
            || false
        ));
        assert!(!needs_stderr_fallback(&sinks(None, true, true), || false));
    }

    #[test]
    fn a_symlinked_log_file_is_refused_and_its_target_untouched() {
        let dir = tempfile::tempdir().unwrap();
        let target = dir.path().join("shadow");
        std::fs::write(&target, "precious\n").unwrap();
        let link = dir.path().join("knockd.log");
        std::os::unix::fs::symlink(&target, &link).unwrap();
        let e = format!("{:#}", KnockdFile::open(&link).err().unwrap());
        assert!(
            e.contains("knockd.log") && e.contains("symbolic link"),
            "{e}"
        );
        assert!(open_append(&link).is_err(), "reopened through the link");
        assert_eq!(std::fs::read_to_string(&target).unwrap(), "precious\n");
        let plain = dir.path().join("plain.log");
        KnockdFile::open(&plain).unwrap();
        assert!(plain.is_file());
    }

    #[test]
    fn the_start_line_names_a_few_doors_and_counts_the_rest() {
        let conf = Path::new("/etc/knockd.conf");
        assert_eq!(
            loaded_line("knock-server", conf, &["ssh", "web"]),
            "instance knock-server: config /etc/knockd.conf, 2 door(s): ssh, web"
        );
        let names: Vec<String> = (0..10_000).map(|i| format!("door-{i}")).collect();
        let names: Vec<&str> = names.iter().map(String::as_str).collect();
        let line = loaded_line("knock-server", conf, &names);
        assert!(line.len() < 200, "{} bytes: {line}", line.len());
        assert!(
            line.ends_with(
                ": door-0, door-1, door-2, door-3, door-4, door-5, door-6, door-7 and 9992 more"
            ),
            "{line}"
        );
        assert!(line.contains("10000 door(s)"), "{line}");
    }

    #[test]
    fn prefix_matches_knockd() {
        let t = chrono::Local
            .with_ymd_and_hms(2026, 11, 25, 0, 2, 59)
            .unwrap();
        assert_eq!(prefix(t), "[2026-11-25 00:02] ");
    }
}

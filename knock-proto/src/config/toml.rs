//! Our native TOML format: `[options]` and one `[doors.NAME]` table per door, knockd's keys in
//! snake_case, plus the built-in actions (`wake_on_lan`, `mail_to`, `open`, `open_seconds`).
//!
//! ```toml
//! [options]
//! log_file = "/var/log/knock.log"
//!
//! [doors.openSSH]
//! sequence = ["7000", "8000:udp", "9000"]   # or "7000,8000:udp,9000"
//! seq_timeout = 5
//! tcpflags = "syn"
//! start_command = "/usr/sbin/nft add element inet filter knocked { %IP% }"
//! ```
//!
//! The document is parsed with `toml`'s span-keeping tables (`toml::de::DeTable`) and walked
//! by hand rather than through `#[derive(Deserialize)]`: serde stops at the first problem,
//! and we want every problem at once, each at its line and column, with "did you mean" for
//! unknown keys. Syntax errors come first: while the TOML itself is broken, only those are
//! reported, since anything found in a half-parsed document could be an echo of them.

pub(crate) mod door;

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::diagnostic::{Diagnostics, closest};
use super::keys::{self, MAX_ATTEMPTS, TomlRead};
use super::model::{Config, Options};
use super::value;
use super::walk::{DeTable, DeValue, Key, NamedTables, Val, Walker, in_file_order as sorted};

/// The walk: the shared [`Walker`], with the server's sections added below.
type Cx<'t> = Walker<'t>;

/// Parses a TOML config read from `path` (used in messages only).
pub fn parse(path: &Path, text: &str) -> Result<Config, Diagnostics> {
    let mut cx = Cx::new(path, text);
    let doors_tables = NamedTables {
        prefix: "[doors.",
        noun: "door",
        written: "[doors.NAME]",
    };
    let Some(doc) = cx.document(&[doors_tables]) else {
        return cx.finish(Config {
            options: Options::default(),
            doors: Vec::new(),
        });
    };
    let mut options = Options::default();
    let mut doors = Vec::new();
    for (key, val) in sorted(doc.get_ref()) {
        match key.get_ref().as_ref() {
            "options" => {
                if let Some(table) = cx.table(val, "options") {
                    cx.options(table, &mut options);
                }
            }
            "doors" => {
                if let Some(table) = cx.doors_table(val) {
                    for (name, door) in sorted(table) {
                        if let Some(d) = cx.door(name, door) {
                            doors.push(d);
                        }
                    }
                }
            }
            other => cx.stray_top_level(key, other, val),
        }
    }
    if doors.is_empty() && cx.error_count() == 0 {
        cx.whole_file(
            "no doors defined: add a door such as\n  [doors.openSSH]\n  \
             sequence = \"7000,8000,9000\"\n  command = \"...\"",
        );
    }
    cx.finish(Config { options, doors })
}

impl Cx<'_> {
    /// A key at the top level that is neither `options` nor `doors`.
    fn stray_top_level(&mut self, key: &Key<'_>, name: &str, val: &Val<'_>) {
        if !matches!(val.get_ref(), DeValue::Table(_)) {
            self.err(
                key.span(),
                format!(
                    "`{name}` is outside any section: all settings must belong to `[options]` \
                     or to a door's `[doors.NAME]` section"
                ),
            );
            return;
        }
        let message = match closest(name, ["options", "doors"]) {
            Some(s) => format!("unknown section `[{name}]`, did you mean `[{s}]`?"),
            None => format!(
                "unknown section `[{name}]`: doors are written `[doors.{name}]`, global \
                 settings go in `[options]`"
            ),
        };
        self.err(key.span(), message);
    }

    /// The `doors` table; `[[doors]]` gets told how doors are written.
    fn doors_table<'a, 'i>(&mut self, val: &'a Val<'i>) -> Option<&'a DeTable<'i>> {
        if let DeValue::Array(_) = val.get_ref() {
            self.err(
                val.span(),
                "doors are tables, not an array: write `[doors.NAME]`, not `[[doors]]`",
            );
            return None;
        }
        self.table(val, "doors")
    }

    fn timeout(&mut self, val: &Val<'_>, key: &str, min: u64) -> Option<Duration> {
        let n = self.integer(val, key)?;
        value::timeout_secs(n, key, min)
            .map_err(|m| self.err(val.span(), m))
            .ok()
    }

    /// A non-empty string setting (paths, interface names).
    fn setting(&mut self, val: &Val<'_>, key: &str, example: &str) -> Option<String> {
        let s = self.string(val, key)?;
        match value::non_empty(s, key, &format!("\"{example}\"")) {
            Ok(s) => Some(s.to_owned()),
            Err(m) => {
                self.err(val.span(), m);
                None
            }
        }
    }

    fn options(&mut self, table: &DeTable<'_>, o: &mut Options) {
        for (key, val) in sorted(table) {
            let name = key.get_ref().as_ref();
            match keys::toml_option(name) {
                Some((name, TomlRead::Option(read))) => read(self, o, name, key, val),
                _ => {
                    let elsewhere = keys::toml_door_names()
                        .any(|k| k == name)
                        .then_some("a door's `[doors.NAME]` section");
                    let known: Vec<&str> = keys::toml_option_names().collect();
                    self.unknown_key(key, &known, elsewhere);
                }
            }
        }
    }
}

// The readers of the `[options]` keys (see `config::keys`).

/// `use_syslog`.
pub(crate) fn use_syslog(
    w: &mut Cx<'_>,
    o: &mut Options,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    if let Some(b) = w.bool(val, name) {
        o.use_syslog = b;
    }
}

/// `firewall_integration`.
pub(crate) fn firewall_integration(
    w: &mut Cx<'_>,
    o: &mut Options,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    if let Some(b) = w.bool(val, name) {
        o.firewall_integration = b;
    }
}

/// `log_file`.
pub(crate) fn log_file(
    w: &mut Cx<'_>,
    o: &mut Options,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    o.log_file = w
        .setting(val, name, "/var/log/knock.log")
        .map(PathBuf::from);
}

/// `pid_file`.
pub(crate) fn pid_file(
    w: &mut Cx<'_>,
    o: &mut Options,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    o.pid_file = w.setting(val, name, "/run/knock.pid").map(PathBuf::from);
}

/// `interface`.
pub(crate) fn interface(
    w: &mut Cx<'_>,
    o: &mut Options,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    o.interface = w.setting(val, name, "eth0");
}

/// `sendmail`.
pub(crate) fn sendmail(
    w: &mut Cx<'_>,
    o: &mut Options,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    if let Some(s) = w.setting(val, name, keys::DEFAULT_SENDMAIL) {
        o.sendmail = PathBuf::from(s);
    }
}

/// `mail_from`.
pub(crate) fn mail_from(
    w: &mut Cx<'_>,
    o: &mut Options,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    let s = w.string(val, name);
    o.mail_from = s.and_then(|s| match value::mail_address(s, name) {
        Ok(a) => Some(a),
        Err(m) => {
            w.err(val.span(), m);
            None
        }
    });
}

/// `max_attempts`.
pub(crate) fn max_attempts(
    w: &mut Cx<'_>,
    o: &mut Options,
    name: &'static str,
    _: &Key<'_>,
    val: &Val<'_>,
) {
    let Some(n) = w.integer(val, name) else {
        return;
    };
    let (lo, hi) = (*MAX_ATTEMPTS.start(), *MAX_ATTEMPTS.end());
    match u64::try_from(n).ok().filter(|n| MAX_ATTEMPTS.contains(n)) {
        Some(n) => o.max_attempts = n as usize,
        None => w.err(
            val.span(),
            format!("max_attempts = {n} is out of range: use {lo} to {hi}"),
        ),
    }
}

#[cfg(test)]
mod tests;

//! The keys of a rotating door (`secret_file`, `knocks`, `ports`, `step_seconds`, `sealed`,
//! `bind_source`): collected while the door table is read, checked together at its end.

use std::num::NonZeroU32;
use std::path::PathBuf;

use super::{Cx, Key, Val};
use crate::auth::PortSet;
use crate::config::model::{
    DEFAULT_ROTATING_KNOCKS, DEFAULT_STEP_SECONDS, MAX_ROTATING_KNOCKS, Rotating, STEP_SECONDS,
};

/// The keys only a rotating door has (besides `secret_file`, which makes it one).
pub(super) const ROTATING_KEYS: [&str; 5] =
    ["knocks", "ports", "step_seconds", "sealed", "bind_source"];

/// What a door table said about rotation so far.
#[derive(Debug, Default)]
pub(super) struct RotatingDraft {
    /// Where `secret_file` was, and its value if valid.
    pub secret_file: Option<(usize, Option<String>)>,
    /// The first rotating key seen, and where: refused without `secret_file`.
    pub first_key: Option<(usize, &'static str)>,
    /// Any rotating value was bad (already reported).
    pub bad: bool,
    knocks: Option<(usize, u8)>,
    ports: Option<(usize, PortSet)>,
    step_seconds: Option<NonZeroU32>,
    sealed: Option<(usize, bool)>,
    bind_source: Option<(usize, bool)>,
}

impl Cx<'_> {
    /// One of `secret_file` and [`ROTATING_KEYS`], stored into `r`.
    pub(super) fn rotating_key(&mut self, r: &mut RotatingDraft, key: &Key<'_>, val: &Val<'_>) {
        let at = key.span().start;
        let name = key.get_ref().as_ref();
        if name == "secret_file" {
            let file = self.setting(val, name, "keys/ssh.key");
            r.secret_file = Some((at, file));
            return;
        }
        let name: &'static str = ROTATING_KEYS.iter().find(|k| **k == name).unwrap_or(&"");
        r.first_key.get_or_insert((at, name));
        let ok = match name {
            "knocks" => self.knocks(val).map(|n| r.knocks = Some((at, n))),
            "ports" => self
                .string(val, name)
                .and_then(|s| match s.parse::<PortSet>() {
                    Ok(p) => {
                        r.ports = Some((at, p));
                        Some(())
                    }
                    Err(e) => {
                        self.err(val.span(), format!("{e} (write e.g. \"1024-65535\")"));
                        None
                    }
                }),
            "step_seconds" => self.step_seconds(val).map(|s| r.step_seconds = Some(s)),
            "sealed" => self.bool(val, name).map(|b| r.sealed = Some((at, b))),
            _ => self.bool(val, name).map(|b| r.bind_source = Some((at, b))),
        };
        r.bad |= ok.is_none();
    }

    fn knocks(&mut self, val: &Val<'_>) -> Option<u8> {
        let n = self.integer(val, "knocks")?;
        match u8::try_from(n) {
            Ok(k) if (1..=MAX_ROTATING_KNOCKS).contains(&k) => Some(k),
            _ => {
                self.err(
                    val.span(),
                    format!("knocks = {n} is out of range: from 1 to {MAX_ROTATING_KNOCKS}"),
                );
                None
            }
        }
    }

    fn step_seconds(&mut self, val: &Val<'_>) -> Option<NonZeroU32> {
        let n = self.integer(val, "step_seconds")?;
        match u32::try_from(n) {
            Ok(s) if STEP_SECONDS.contains(&s) => NonZeroU32::new(s),
            _ => {
                self.err(
                    val.span(),
                    format!(
                        "step_seconds = {n} is out of range: from {} to {} seconds (30 suits \
                         most clocks)",
                        STEP_SECONDS.start(),
                        STEP_SECONDS.end()
                    ),
                );
                None
            }
        }
    }

    /// The door's [`Rotating`] once the whole table is read; `None` (reported) when the
    /// settings do not fit together. Only called when `secret_file` was given.
    pub(super) fn rotating(&mut self, r: &RotatingDraft) -> Option<Rotating> {
        let (file_at, Some(file)) = r.secret_file.as_ref()? else {
            return None;
        };
        let knocks = r.knocks.map_or(DEFAULT_ROTATING_KNOCKS, |(_, k)| k);
        let sealed = r.sealed.is_none_or(|(_, s)| s);
        let bind_source = r.bind_source.is_some_and(|(_, b)| b);
        let ports = r
            .ports
            .as_ref()
            .map_or_else(PortSet::default, |(_, p)| p.clone());
        let mut ok = !r.bad;
        if let Some((at, _)) = r.knocks.filter(|_| sealed && knocks < 2) {
            self.err(
                at..at,
                "a sealed door needs `knocks = 2` or more: one 24-bit seal alone falls to a \
                 flood of guesses (PROTOCOL.md, Odds)",
            );
            ok = false;
        }
        if let Some((at, _)) = r
            .ports
            .as_ref()
            .filter(|(_, p)| p.len() < u32::from(knocks))
        {
            self.err(
                *at..*at,
                format!("`ports` has fewer than the {knocks} ports a sequence needs"),
            );
            ok = false;
        }
        if let Some((at, true)) = r.bind_source.filter(|_| !sealed) {
            self.err(
                at..at,
                "`bind_source` binds the seal to the knocker's address, so it needs \
                 `sealed = true`",
            );
            ok = false;
        }
        ok.then(|| Rotating {
            secret_file: PathBuf::from(file),
            line: self.line_of(*file_at),
            knocks,
            ports,
            step_seconds: r
                .step_seconds
                .or(NonZeroU32::new(DEFAULT_STEP_SECONDS))
                .unwrap_or(NonZeroU32::MIN),
            sealed,
            bind_source,
        })
    }
}

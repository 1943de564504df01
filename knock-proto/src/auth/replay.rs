//! The replay record: which knocks already opened a rotating door in the steps still in force
//! (PROTOCOL.md, "Replay").
//!
//! A sealed knock is known by its (door, step, nonce): once one opened the door, the same
//! triple is refused from any source until its step can no longer be accepted. An unsealed
//! rotating knock is known by (door, step) only: the address that opened it may knock it again,
//! any other address is refused. The record is bounded without any cap: at most 256 nonces or
//! one address per door and step, and only steps still in force are kept
//! ([`ReplayRecord::forget_before`]).
//!
//! It is saved as text lines next to the daemon's pending stops, so a restart between a knock
//! and its replay still refuses the replay: `used DOOR STEP nonces HEX64` or
//! `used DOOR STEP from ADDRESS`, words shell-quoted.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::IpAddr;

use super::derive::Step;
use super::seal::Nonce;

/// What a knock that opened a door is known by, beyond its door and step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Use {
    /// A sealed knock's nonce.
    Sealed(Nonce),
    /// An unsealed knock's source address.
    Unsealed(IpAddr),
}

/// What the record holds for one door and step.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Used {
    /// Bit `n` set: the nonce `n` opened the door.
    Nonces([u64; 4]),
    /// The address that opened the door.
    From(IpAddr),
    /// Every knock: the record of this step was lost (a file that could not be read), so
    /// any knock of it may be a replay.
    All,
}

/// A knock that already opened its door in this step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("replayed: this knock already opened the door in this step")]
pub struct Replayed;

/// Knocks that opened doors, per (door, step).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayRecord {
    used: BTreeMap<(String, Step), Used>,
}

/// A line of a saved record that is not one.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {problem}")]
pub struct RecordError {
    /// 1-based line number.
    pub line: usize,
    /// What is wrong with it.
    pub problem: String,
}

impl ReplayRecord {
    /// Admits a knock that completed `door`'s sequence for `step`, and remembers it; or says
    /// it is a replay of one that already did.
    pub fn admit(&mut self, door: &str, step: Step, knock: Use) -> Result<(), Replayed> {
        let key = (door.to_owned(), step);
        match (self.used.get_mut(&key), knock) {
            (None, Use::Sealed(n)) => {
                let mut bits = [0u64; 4];
                set(&mut bits, n);
                self.used.insert(key, Used::Nonces(bits));
            }
            (None, Use::Unsealed(a)) => {
                self.used.insert(key, Used::From(a));
            }
            (Some(Used::Nonces(bits)), Use::Sealed(n)) => {
                if has(bits, n) {
                    return Err(Replayed);
                }
                set(bits, n);
            }
            (Some(Used::From(opener)), Use::Unsealed(a)) if *opener == a => {}
            // Another address, or a door whose `sealed` changed under a running record: refuse
            // rather than guess.
            (Some(_), _) => return Err(Replayed),
        }
        Ok(())
    }

    /// Counts every knock of `door` in `step` as used: what the record held for it is lost.
    pub fn distrust(&mut self, door: &str, step: Step) {
        self.used.insert((door.to_owned(), step), Used::All);
    }

    /// Forgets `door`'s steps before `oldest`: they can no longer be accepted, so neither
    /// replayed.
    pub fn forget_before(&mut self, door: &str, oldest: Step) {
        self.used.retain(|(d, s), _| d != door || *s >= oldest);
    }

    /// Forgets doors not in `doors` (after a reload removed them).
    pub fn keep_doors(&mut self, doors: &[&str]) {
        self.used.retain(|(d, _), _| doors.contains(&d.as_str()));
    }

    /// How many (door, step) entries it holds.
    pub fn len(&self) -> usize {
        self.used.len()
    }

    /// Whether it holds nothing.
    pub fn is_empty(&self) -> bool {
        self.used.is_empty()
    }

    /// The saved form: one line per (door, step), each ending in a newline.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        for ((door, step), used) in &self.used {
            let door = shell_words::quote(door);
            let _ = match used {
                Used::Nonces(bits) => writeln!(
                    out,
                    "used {door} {} nonces {:016x}{:016x}{:016x}{:016x}",
                    step.0, bits[0], bits[1], bits[2], bits[3]
                ),
                Used::From(addr) => writeln!(out, "used {door} {} from {addr}", step.0),
                Used::All => writeln!(out, "used {door} {} all *", step.0),
            };
        }
        out
    }

    /// Reads what [`ReplayRecord::to_text`] wrote. Blank lines and `#` comments are skipped.
    pub fn from_text(text: &str) -> Result<ReplayRecord, RecordError> {
        let mut record = ReplayRecord::default();
        for (i, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |problem: &str| RecordError {
                line: i + 1,
                problem: problem.to_owned(),
            };
            let words = shell_words::split(line).map_err(|_| bad("unbalanced quotes"))?;
            let [used, door, step, kind, value] = words.as_slice() else {
                return Err(bad("expected `used DOOR STEP nonces|from|all VALUE`"));
            };
            if used != "used" {
                return Err(bad("expected a line starting with `used`"));
            }
            let step = Step(step.parse().map_err(|_| bad("the step is not a number"))?);
            let entry = match kind.as_str() {
                "nonces" => Used::Nonces(parse_bits(value).ok_or_else(|| bad("bad nonce bits"))?),
                "from" => Used::From(value.parse().map_err(|_| bad("bad address"))?),
                "all" if value == "*" => Used::All,
                "all" => return Err(bad("expected `*` after `all`")),
                _ => return Err(bad("expected `nonces`, `from` or `all`")),
            };
            record.used.insert((door.clone(), step), entry);
        }
        Ok(record)
    }
}

fn set(bits: &mut [u64; 4], n: Nonce) {
    bits[usize::from(n.0 / 64)] |= 1 << (n.0 % 64);
}

fn has(bits: &[u64; 4], n: Nonce) -> bool {
    bits[usize::from(n.0 / 64)] & (1 << (n.0 % 64)) != 0
}

fn parse_bits(hex: &str) -> Option<[u64; 4]> {
    if hex.len() != 64 || !hex.is_ascii() {
        return None;
    }
    let mut bits = [0u64; 4];
    for (i, word) in bits.iter_mut().enumerate() {
        *word = u64::from_str_radix(&hex[i * 16..i * 16 + 16], 16).ok()?;
    }
    Some(bits)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn addr(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn a_sealed_knock_opens_once_and_a_fresh_nonce_again() {
        let mut r = ReplayRecord::default();
        assert_eq!(r.admit("ssh", Step(7), Use::Sealed(Nonce(1))), Ok(()));
        assert_eq!(
            r.admit("ssh", Step(7), Use::Sealed(Nonce(1))),
            Err(Replayed)
        );
        assert_eq!(r.admit("ssh", Step(7), Use::Sealed(Nonce(2))), Ok(()));
        assert_eq!(r.admit("ssh", Step(8), Use::Sealed(Nonce(1))), Ok(()));
        assert_eq!(r.admit("web", Step(7), Use::Sealed(Nonce(1))), Ok(()));
    }

    #[test]
    fn an_unsealed_knock_repeats_only_from_its_opener() {
        let mut r = ReplayRecord::default();
        let me = Use::Unsealed(addr("198.18.0.1"));
        assert_eq!(r.admit("ssh", Step(7), me), Ok(()));
        assert_eq!(r.admit("ssh", Step(7), me), Ok(()));
        let other = Use::Unsealed(addr("198.18.0.2"));
        assert_eq!(r.admit("ssh", Step(7), other), Err(Replayed));
        assert_eq!(r.admit("ssh", Step(8), other), Ok(()));
    }

    #[test]
    fn old_steps_are_forgotten() {
        let mut r = ReplayRecord::default();
        for step in 1..=5 {
            r.admit("ssh", Step(step), Use::Sealed(Nonce(0))).unwrap();
        }
        r.admit("web", Step(1), Use::Sealed(Nonce(0))).unwrap();
        r.forget_before("ssh", Step(4));
        assert_eq!(r.len(), 3);
        r.keep_doors(&["ssh"]);
        assert_eq!(r.len(), 2);
    }

    #[test]
    fn the_saved_form_round_trips() {
        let mut r = ReplayRecord::default();
        r.admit("my door", Step(7), Use::Sealed(Nonce(0))).unwrap();
        r.admit("my door", Step(7), Use::Sealed(Nonce(255)))
            .unwrap();
        r.admit("ssh", Step(9), Use::Unsealed(addr("fd00::1")))
            .unwrap();
        let text = r.to_text();
        assert_eq!(ReplayRecord::from_text(&text), Ok(r.clone()));
        assert!(
            text.contains("used 'my door' 7 nonces 0000000000000001"),
            "{text}"
        );
        assert_eq!(
            ReplayRecord::from_text("used ssh x from 1.2.3.4")
                .unwrap_err()
                .problem,
            "the step is not a number"
        );
        assert_eq!(ReplayRecord::from_text("garbage").unwrap_err().line, 1);
    }

    #[test]
    fn a_distrusted_step_refuses_every_knock_and_round_trips() {
        let mut r = ReplayRecord::default();
        r.admit("ssh", Step(7), Use::Sealed(Nonce(1))).unwrap();
        r.distrust("ssh", Step(7));
        r.distrust("ssh", Step(8));
        for step in [7, 8] {
            assert_eq!(
                r.admit("ssh", Step(step), Use::Sealed(Nonce(2))),
                Err(Replayed)
            );
            let me = Use::Unsealed(addr("198.18.0.1"));
            assert_eq!(r.admit("ssh", Step(step), me), Err(Replayed));
        }
        assert_eq!(r.admit("ssh", Step(9), Use::Sealed(Nonce(2))), Ok(()));
        let text = r.to_text();
        assert!(text.contains("used ssh 8 all *\n"), "{text}");
        assert_eq!(ReplayRecord::from_text(&text), Ok(r));
        let bad = ReplayRecord::from_text("used ssh 8 all x").unwrap_err();
        assert_eq!(bad.problem, "expected `*` after `all`");
    }
}

//! Stage lines a flood cannot multiply: which of knockd's `Stage N` and `sequence timeout`
//! lines reach the log file and syslog, and the summary of those left out.
//!
//! A flood of spoofed first knocks makes one `Stage 1` line per packet (and, `seq_timeout`
//! later, one `sequence timeout (stage 1)` line), while a real knocker is the one source that
//! gets past stage 1. So:
//! - `Stage 1` lines are written while this second's budget ([`FIRST_STAGE_PER_SECOND`]) lasts;
//!   the rest are left out and counted.
//! - A `Stage N` line (N >= 2) is written, preceded by the earlier stages of the same knocker
//!   and door that were left out (with the current time prefix: knockd's minute resolution
//!   seldom differs): a real knock's lines all appear, in order, whatever the flood did to
//!   the budget. These lines have their own, larger budget ([`PROGRESS_PER_SECOND`]): only
//!   someone who knows a sequence's first knocks can spend it.
//! - A `sequence timeout (stage 1)` line is written only if its `Stage 1` line was.
//! - When a second in which lines were left out is over, the next line written is preceded by
//!   one summary line saying how many.
//!
//! Every other line (`OPEN SESAME`, commands, errors, start and stop) passes untouched.
//!
//! One limiter serves the process ([`admit`]), so the engine can ask, before it formats a
//! `Stage 1` line at all, whether one would be written ([`wants_first_stage`]): under a flood
//! the line that would be left out costs nothing.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard};

/// The process's limiter.
static LIMITER: Limiter = Limiter::new();

/// [`StageLines::admit`] on the process's limiter, at `now` (Unix seconds).
pub fn admit(now: u64, line: &str, out: &mut Vec<String>) {
    LIMITER.admit(now, line, out);
}

/// Whether a `Stage 1` line logged at `now` (Unix seconds) would be written; if not, it is
/// counted as left out and the caller need not log it.
pub fn wants_first_stage(now: u64) -> bool {
    LIMITER.wants_first_stage(now)
}

/// [`StageLines`] shared by the engine, which asks before it formats a `Stage 1` line, and
/// the log, which admits the lines. Under a flood the question comes once per packet: once
/// the second's budget is spent it is answered without the lock.
struct Limiter {
    state: Mutex<StageLines>,
    /// The second (Unix) whose `Stage 1` budget is known to be spent, 0 for none.
    spent_in: AtomicU64,
    /// `Stage 1` lines left out without the lock, not yet in `state`'s count.
    left_out: AtomicU64,
}

impl Limiter {
    const fn new() -> Limiter {
        Limiter {
            state: Mutex::new(StageLines::new()),
            spent_in: AtomicU64::new(0),
            left_out: AtomicU64::new(0),
        }
    }

    /// The state, with the lines left out without its lock counted in.
    fn state(&self) -> MutexGuard<'_, StageLines> {
        let mut l = self.state.lock().unwrap_or_else(|e| e.into_inner());
        l.omitted += self.left_out.swap(0, Ordering::Relaxed);
        l
    }

    fn admit(&self, now: u64, line: &str, out: &mut Vec<String>) {
        self.state().admit(now, line, out);
    }

    fn wants_first_stage(&self, now: u64) -> bool {
        if self.spent_in.load(Ordering::Relaxed) == now {
            self.left_out.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        let mut l = self.state();
        l.tick(now);
        if l.first_spent < FIRST_STAGE_PER_SECOND {
            // Spent now, not when the line reaches the log: the engine asks for a whole batch
            // of hits before any of their lines is admitted.
            l.first_spent += 1;
            l.reserved += 1;
            return true;
        }
        l.omitted += 1;
        self.spent_in.store(now, Ordering::Relaxed);
        false
    }

    /// Counts a line the engine left out without asking (a `sequence timeout (stage 1)` whose
    /// `Stage 1` line it did not log), for the summary.
    fn left_out(&self) {
        self.left_out.fetch_add(1, Ordering::Relaxed);
    }
}

/// Counts a line the engine left out without formatting it, for the summary: a `sequence
/// timeout (stage 1)` line whose `Stage 1` line was not written.
pub fn left_out() {
    LIMITER.left_out();
}

/// `Stage 1` lines written per second at most.
pub const FIRST_STAGE_PER_SECOND: u32 = 20;
/// Lines of knockers past stage 1 written per second at most.
pub const PROGRESS_PER_SECOND: u32 = 200;
/// Knockers whose last written stage is remembered; older entries go first when full.
const REMEMBERED: usize = 4096;

/// What a line is, for the limiter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind<'a> {
    /// `WHO: DOOR: Stage N`; the key is `WHO: DOOR`.
    Stage(&'a str, u8),
    /// `WHO: DOOR: sequence timeout (stage N)`.
    Timeout(&'a str, u8),
    Other,
}

fn kind(line: &str) -> Kind<'_> {
    if let Some((key, n)) = line.rsplit_once(": Stage ") {
        if let Ok(n) = n.parse() {
            return Kind::Stage(key, n);
        }
    }
    if let Some(rest) = line.strip_suffix(')') {
        if let Some((key, n)) = rest.rsplit_once(": sequence timeout (stage ") {
            if let Ok(n) = n.parse() {
                return Kind::Timeout(key, n);
            }
        }
    }
    Kind::Other
}

/// The limiter's state; see the module documentation.
#[derive(Debug, Default)]
pub struct StageLines {
    /// The second the budgets are for.
    second: u64,
    first_spent: u32,
    /// `Stage 1` lines of this second's budget that [`wants_first_stage`] promised and the
    /// log has not yet admitted: already counted in `first_spent`.
    reserved: u32,
    progress_spent: u32,
    /// Lines left out in `second` (and not yet summarised).
    omitted: u64,
    /// A summary is due before the next line.
    pending_summary: u64,
    /// Per `WHO: DOOR`: the last stage written and the second it was written.
    written: Option<HashMap<String, (u8, u64)>>,
}

impl StageLines {
    /// An empty limiter (`const`, for the process's static one).
    pub const fn new() -> StageLines {
        StageLines {
            second: 0,
            first_spent: 0,
            reserved: 0,
            progress_spent: 0,
            omitted: 0,
            pending_summary: 0,
            written: None,
        }
    }

    fn written(&mut self) -> &mut HashMap<String, (u8, u64)> {
        self.written.get_or_insert_with(HashMap::new)
    }

    /// Decides on `line`, logged at `now` (Unix seconds): appends to `out` the lines to
    /// write, in order (none, the line itself, or a summary and earlier stages before it).
    pub fn admit(&mut self, now: u64, line: &str, out: &mut Vec<String>) {
        self.tick(now);
        let kind = kind(line);
        let mut write = |me: &mut Self, text: String| {
            if me.pending_summary > 0 {
                out.push(summary(std::mem::take(&mut me.pending_summary)));
            }
            out.push(text);
        };
        match kind {
            Kind::Other => write(self, line.to_owned()),
            Kind::Stage(key, 1) => {
                if self.reserved > 0 {
                    self.reserved -= 1;
                    self.remember(key, 1, now);
                    write(self, line.to_owned());
                } else if self.first_spent < FIRST_STAGE_PER_SECOND {
                    self.first_spent += 1;
                    self.remember(key, 1, now);
                    write(self, line.to_owned());
                } else {
                    self.written().remove(key);
                    self.omitted += 1;
                }
            }
            Kind::Stage(key, n) => {
                if self.progress_spent >= PROGRESS_PER_SECOND {
                    self.omitted += 1;
                    return;
                }
                self.progress_spent += 1;
                let last = self.written().get(key).map_or(0, |&(s, _)| s);
                for missed in last.saturating_add(1)..n {
                    write(self, format!("{key}: Stage {missed}"));
                }
                self.remember(key, n, now);
                write(self, line.to_owned());
            }
            Kind::Timeout(key, n) => {
                if self.written().remove(key).is_some() || n >= 2 {
                    write(self, line.to_owned());
                } else {
                    self.omitted += 1;
                }
            }
        }
    }

    /// Moves to second `now`: budgets renew, and what was left out before is summarised.
    fn tick(&mut self, now: u64) {
        if now == self.second {
            return;
        }
        self.second = now;
        self.first_spent = 0;
        self.reserved = 0;
        self.progress_spent = 0;
        self.pending_summary += std::mem::take(&mut self.omitted);
    }

    fn remember(&mut self, key: &str, stage: u8, now: u64) {
        let written = self.written();
        if written.len() >= REMEMBERED && !written.contains_key(key) {
            // Forget the knockers not heard of in a minute; failing that, everyone (at worst
            // a Stage line is written twice).
            written.retain(|_, &mut (_, at)| now.saturating_sub(at) < 60);
            if written.len() >= REMEMBERED {
                written.clear();
            }
        }
        written.insert(key.to_owned(), (stage, now));
    }
}

fn summary(n: u64) -> String {
    format!(
        "flood protection: {n} Stage and sequence timeout lines of knock attempts that went no further were left out"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn once_the_budget_is_spent_stage_1_is_refused_and_counted_until_the_next_second() {
        let limiter = Limiter::new();
        let mut out = Vec::new();
        // A batch asks for all its lines before the log admits any.
        let asked = (0..30).filter(|_| limiter.wants_first_stage(100)).count();
        assert_eq!(asked, FIRST_STAGE_PER_SECOND as usize);
        for i in 0..FIRST_STAGE_PER_SECOND {
            limiter.admit(100, &format!("198.18.1.{i}: web: Stage 1"), &mut out);
        }
        assert_eq!(out.len(), FIRST_STAGE_PER_SECOND as usize, "{out:?}");
        for _ in 0..4 {
            assert!(!limiter.wants_first_stage(100));
        }
        limiter.left_out();
        assert!(limiter.wants_first_stage(101), "a new second, a new budget");
        out.clear();
        limiter.admit(101, "198.18.0.1: web: Stage 1", &mut out);
        assert_eq!(out, [summary(15), "198.18.0.1: web: Stage 1".to_owned()]);
    }

    fn run(limiter: &mut StageLines, now: u64, line: &str) -> Vec<String> {
        let mut out = Vec::new();
        limiter.admit(now, line, &mut out);
        out
    }

    #[test]
    fn lines_are_classified() {
        assert_eq!(
            kind("1.2.3.4: ssh: Stage 1"),
            Kind::Stage("1.2.3.4: ssh", 1)
        );
        assert_eq!(
            kind("1.2.3.4 (host.example): a: b: Stage 12"),
            Kind::Stage("1.2.3.4 (host.example): a: b", 12)
        );
        assert_eq!(
            kind("fd00::1: ssh: sequence timeout (stage 2)"),
            Kind::Timeout("fd00::1: ssh", 2)
        );
        assert_eq!(kind("1.2.3.4: ssh: OPEN SESAME"), Kind::Other);
        assert_eq!(kind("ssh: running command: Stage 1x"), Kind::Other);
    }

    #[test]
    fn a_flood_is_cut_to_the_budget_and_a_real_knock_shows_whole() {
        let mut l = StageLines::default();
        let mut written = Vec::new();
        for i in 0..100_000u32 {
            let src = format!("198.19.{}.{}", i / 256 % 256, i % 256);
            // A real knocker starts in the middle of the flood.
            if i == 50_000 {
                written.extend(run(&mut l, 100, "198.18.0.1: ssh: Stage 1"));
            }
            written.extend(run(
                &mut l,
                100 + u64::from(i / 50_000),
                &format!("{src}: ssh: Stage 1"),
            ));
        }
        written.extend(run(&mut l, 102, "198.18.0.1: ssh: Stage 2"));
        written.extend(run(&mut l, 102, "198.18.0.1: ssh: Stage 3"));
        written.extend(run(&mut l, 102, "198.18.0.1: ssh: OPEN SESAME"));
        let real: Vec<&String> = written
            .iter()
            .filter(|w| w.starts_with("198.18.0.1: "))
            .collect();
        assert_eq!(
            real,
            [
                "198.18.0.1: ssh: Stage 1",
                "198.18.0.1: ssh: Stage 2",
                "198.18.0.1: ssh: Stage 3",
                "198.18.0.1: ssh: OPEN SESAME"
            ]
        );
        let bytes: usize = written.iter().map(|w| w.len() + 20).sum();
        assert!(bytes < 10_000, "{bytes} bytes: {written:#?}");
        let summaries: Vec<&String> = written.iter().filter(|w| w.starts_with("flood")).collect();
        assert_eq!(summaries.len(), 2, "{summaries:?}");
        assert!(summaries[0].contains(" 4998"), "{summaries:?}");
        // The flood's timeouts: only those whose Stage 1 was written.
        let mut out = Vec::new();
        for i in 0..100_000u32 {
            let src = format!("198.19.{}.{}", i / 256 % 256, i % 256);
            l.admit(
                130,
                &format!("{src}: ssh: sequence timeout (stage 1)"),
                &mut out,
            );
        }
        assert!(
            out.len() <= 2 * FIRST_STAGE_PER_SECOND as usize + 1,
            "{out:#?}"
        );
    }

    #[test]
    fn other_lines_always_pass_and_carry_the_summary() {
        let mut l = StageLines::default();
        for i in 0..FIRST_STAGE_PER_SECOND + 5 {
            run(&mut l, 7, &format!("10.0.0.{i}: d: Stage 1"));
        }
        assert!(run(&mut l, 7, "10.0.0.99: d: Stage 1").is_empty());
        let out = run(&mut l, 8, "d: running command: /bin/true");
        assert_eq!(out.len(), 2, "{out:?}");
        assert!(out[0].contains(" 6 "), "{out:?}");
        assert_eq!(out[1], "d: running command: /bin/true");
    }
}

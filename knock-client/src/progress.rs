//! The progress bar for sequences that take noticeable time: one line on stderr,
//! `knocking [=========>          ] 3/9 hits`, redrawn after each hit.
//!
//! Shown on stderr only when stderr is a terminal and the pauses add up to a second or more;
//! otherwise every method does nothing, so callers never check.
//!
//! Written out rather than taken from indicatif: a bar redrawn a few times a second needs no
//! rate limiting, estimates or styles, and indicatif's ETA estimator is the one user of libm's
//! `pow` in knock. Linking libm costs every run, bar or not, a library to map and relocate at
//! start-up, and start-up is most of what a knock costs (BENCHMARKS.md, one knock).

use std::cell::Cell;
use std::io::{self, IsTerminal as _, Write as _};
use std::time::Duration;

/// Below this, a bar would only flicker.
const NOTICEABLE: Duration = Duration::from_secs(1);

/// The bar's width in characters, between the brackets.
const WIDTH: usize = 30;

/// A progress bar counting hits, or nothing.
pub struct Progress(Option<Bar>);

/// A bar being shown.
struct Bar {
    len: usize,
    pos: Cell<usize>,
}

impl Progress {
    /// A bar for `hits` hits taking `duration` in total, if worth showing.
    pub fn new(hits: usize, duration: Duration) -> Progress {
        if duration < NOTICEABLE || !io::stderr().is_terminal() {
            return Progress(None);
        }
        let bar = Bar {
            len: hits,
            pos: Cell::new(0),
        };
        bar.draw();
        Progress(Some(bar))
    }

    /// Runs `f` (which prints) with the bar hidden, so lines and bar do not mix.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        let Some(bar) = &self.0 else { return f() };
        clear();
        let r = f();
        bar.draw();
        r
    }

    /// One more hit sent.
    pub fn inc(&self) {
        if let Some(bar) = &self.0 {
            bar.pos.set(bar.pos.get() + 1);
            bar.draw();
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if self.0.is_some() {
            clear();
        }
    }
}

impl Bar {
    /// Redraws the line in place (best effort: a bar is not worth an error).
    fn draw(&self) {
        let _ = write!(io::stderr(), "\r{}", line(self.pos.get(), self.len));
    }
}

/// The bar's text for `pos` of `len` hits.
fn line(pos: usize, len: usize) -> String {
    let filled = (WIDTH * pos).checked_div(len).unwrap_or(WIDTH).min(WIDTH);
    let head = if filled < WIDTH { ">" } else { "" };
    let bar = format!("{}{head}", "=".repeat(filled));
    format!("knocking [{bar:<WIDTH$}] {pos}/{len} hits")
}

/// Erases the bar's line (carriage return, erase line).
fn clear() {
    let _ = write!(io::stderr(), "\r\x1b[2K");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_bar_fills_with_the_hits() {
        assert_eq!(
            line(0, 9),
            format!("knocking [>{}] 0/9 hits", " ".repeat(29))
        );
        assert_eq!(
            line(3, 9),
            format!("knocking [{}>{}] 3/9 hits", "=".repeat(10), " ".repeat(19))
        );
        assert_eq!(
            line(9, 9),
            format!("knocking [{}] 9/9 hits", "=".repeat(30))
        );
        assert_eq!(
            line(0, 0),
            format!("knocking [{}] 0/0 hits", "=".repeat(30))
        );
    }
}

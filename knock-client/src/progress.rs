//! The progress bar for sequences that take noticeable time.
//!
//! Shown on stderr only when stderr is a terminal and the pauses add up to a second or more;
//! otherwise every method does nothing, so callers never check.

use std::io::IsTerminal as _;
use std::time::Duration;

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Below this, a bar would only flicker.
const NOTICEABLE: Duration = Duration::from_secs(1);

/// A progress bar counting hits, or nothing.
pub struct Progress(Option<ProgressBar>);

impl Progress {
    /// A bar for `hits` hits taking `duration` in total, if worth showing.
    pub fn new(hits: usize, duration: Duration) -> Progress {
        if duration < NOTICEABLE || !std::io::stderr().is_terminal() {
            return Progress(None);
        }
        let style = ProgressStyle::with_template("knocking [{bar:30}] {pos}/{len} hits")
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> ");
        let bar = ProgressBar::with_draw_target(
            Some(u64::try_from(hits).unwrap_or(u64::MAX)),
            ProgressDrawTarget::stderr(),
        )
        .with_style(style);
        Progress(Some(bar))
    }

    /// Runs `f` (which prints) with the bar hidden, so lines and bar do not mix.
    pub fn suspend<R>(&self, f: impl FnOnce() -> R) -> R {
        match &self.0 {
            Some(bar) => bar.suspend(f),
            None => f(),
        }
    }

    /// One more hit sent.
    pub fn inc(&self) {
        if let Some(bar) = &self.0 {
            bar.inc(1);
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        if let Some(bar) = &self.0 {
            bar.finish_and_clear();
        }
    }
}

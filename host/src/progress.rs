//! A live line on the operator's terminal for a wait that lasts: what is
//! awaited, how long so far, the last observed value
//! (`[postgres-ferris-wheel] postgres-cluster-3 caught up: replay lag 2.1 MB, 3s`).
//! Nothing at all when stderr is not a terminal, so logs and CI output
//! stay as they were.

use std::io::IsTerminal;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Waits shorter than this show nothing.
pub const SHOW_AFTER: Duration = Duration::from_secs(1);

/// The wait line of one run (or of `lab up`): one wait at a time.
#[derive(Debug)]
pub struct WaitLine {
    enabled: bool,
    shown: Mutex<Option<Wait>>,
}

#[derive(Debug)]
struct Wait {
    what: String,
    since: Instant,
    observed: String,
    bar: Option<ProgressBar>,
}

impl WaitLine {
    /// A line on stderr when stderr is a terminal; otherwise one that shows nothing.
    pub fn on_terminal() -> Self {
        WaitLine::new(std::io::stderr().is_terminal())
    }

    /// A line that draws only when `enabled` (and, as indicatif does, only on a terminal).
    pub fn new(enabled: bool) -> Self {
        WaitLine { enabled, shown: Mutex::new(None) }
    }

    /// `what` is still awaited and `observed` was last seen. The line
    /// appears once the same wait has lasted [`SHOW_AFTER`]; another `what`
    /// starts a new wait.
    pub fn waiting(&self, what: &str, observed: &str) {
        if !self.enabled {
            return;
        }
        let mut shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        if shown.as_ref().is_none_or(|wait| wait.what != what) {
            if let Some(bar) = shown.take().and_then(|wait| wait.bar) {
                bar.finish_and_clear();
            }
            *shown = Some(Wait { what: what.to_string(), since: Instant::now(), observed: String::new(), bar: None });
        }
        let Some(wait) = shown.as_mut() else { return };
        wait.observed = observed.to_string();
        if wait.bar.is_none() && wait.since.elapsed() >= SHOW_AFTER {
            let bar = ProgressBar::with_draw_target(None, ProgressDrawTarget::stderr()).with_elapsed(wait.since.elapsed());
            if let Ok(style) = ProgressStyle::with_template("{spinner} {prefix}: {wide_msg} {elapsed}") {
                bar.set_style(style);
            }
            bar.set_prefix(wait.what.clone());
            bar.enable_steady_tick(Duration::from_millis(250));
            wait.bar = Some(bar);
        }
        if let Some(bar) = &wait.bar {
            bar.set_message(wait.observed.clone());
        }
    }

    /// The wait is over: clear its line.
    pub fn done(&self) {
        if let Some(bar) = self.shown.lock().unwrap_or_else(|p| p.into_inner()).take().and_then(|wait| wait.bar) {
            bar.finish_and_clear();
        }
    }

    /// Run `print` with the line out of the way (a log line while a wait shows).
    pub fn suspend<R>(&self, print: impl FnOnce() -> R) -> R {
        let shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        match shown.as_ref().and_then(|wait| wait.bar.as_ref()) {
            Some(bar) => bar.suspend(print),
            None => print(),
        }
    }

    /// What the line says now, if it is shown: `what: observed, N s`.
    pub fn line(&self) -> Option<String> {
        let shown = self.shown.lock().unwrap_or_else(|p| p.into_inner());
        let wait = shown.as_ref().filter(|wait| wait.bar.is_some())?;
        Some(format!("{}: {}, {:.1} s", wait.what, wait.observed, wait.since.elapsed().as_secs_f64()))
    }
}

impl Drop for WaitLine {
    fn drop(&mut self) {
        self.done();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_shows_after_a_second_with_what_it_last_saw() {
        let line = WaitLine::new(true);
        line.waiting("postgres-cluster-3 caught up", "replay lag 9.0 MB");
        assert_eq!(line.line(), None, "a short wait shows nothing");
        std::thread::sleep(SHOW_AFTER + Duration::from_millis(100));
        line.waiting("postgres-cluster-3 caught up", "replay lag 2.1 MB");
        let shown = line.line().expect("shown after a second");
        assert!(shown.starts_with("postgres-cluster-3 caught up: replay lag 2.1 MB, 1."), "{shown}");
        line.waiting("postgres-cluster-4 caught up", "not streaming");
        assert_eq!(line.line(), None, "another wait starts over");
        line.done();
        assert_eq!(line.line(), None);
    }

    #[test]
    fn nothing_when_not_on_a_terminal() {
        let line = WaitLine::new(false);
        line.waiting("x", "y");
        std::thread::sleep(SHOW_AFTER + Duration::from_millis(50));
        line.waiting("x", "y");
        assert_eq!(line.line(), None);
    }
}

//! Interrupting a run the way a dying laptop or an OOM kill would: `kill -9`
//! of the runner right after one of its pattern's steps ended, read from the
//! journal (the host writes a step's end out before the component goes on).

use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::Background;

/// How one interrupted (or finished) run ended.
pub struct Ending {
    /// The step after which the runner was killed, or `None` if it ended by itself.
    pub killed_after: Option<String>,
    /// What the runner printed, and its exit status (a signal for a kill).
    pub output: Output,
}

/// Run `command` (a `runner exec ... --journal JOURNAL`), and kill it with
/// SIGKILL as soon as the journal shows `steps` steps of `component` that
/// ended after its first mutation began. With `steps = 1` each run is cut
/// right after the first step that changed something, so a chain of runs
/// visits every step boundary of a rotation once.
pub fn kill_after_mutating_steps(command: Command, journal: &Path, component: &str, steps: usize, timeout: Duration) -> Ending {
    kill_when(command, journal, timeout, |entries| nth_step_after_a_mutation(entries, component, steps))
}

/// Run `command` (a `runner exec ... --journal JOURNAL`), and kill it with
/// SIGKILL as soon as `reached` names a point given the journal's complete
/// entries so far (looked at every 10 ms).
pub fn kill_when(command: Command, journal: &Path, timeout: Duration, mut reached: impl FnMut(&[Value]) -> Option<String>) -> Ending {
    let _ = std::fs::remove_file(journal);
    let mut child = Background::spawn(command);
    let deadline = Instant::now() + timeout;
    let killed_after = loop {
        if child.try_wait().is_some() {
            break None;
        }
        if let Some(point) = reached(&entries(journal)) {
            // SAFETY: signalling a child this test started and has not reaped.
            unsafe { libc::kill(child.id() as i32, libc::SIGKILL) };
            break Some(point);
        }
        assert!(Instant::now() < deadline, "the run neither finished nor reached the point to kill it at within {timeout:?}");
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = child.wait_with_output();
    Ending { killed_after, output }
}

/// The journal's complete entries (the last line may be half written).
fn entries(journal: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    text.split_inclusive('\n').filter(|l| l.ends_with('\n')).filter_map(|line| serde_json::from_str(line).ok()).collect()
}

/// The name of the `n`th step of `component` that ended after the run's first mutation began.
fn nth_step_after_a_mutation(entries: &[Value], component: &str, n: usize) -> Option<String> {
    let mut mutated = false;
    let mut ended = 0;
    for entry in entries {
        mutated |= entry["outcome"] == "started";
        if mutated && entry["component"] == component && entry["call"] == "report.step-end" {
            ended += 1;
            if ended == n {
                return entry["args"]["name"].as_str().map(String::from);
            }
        }
    }
    None
}

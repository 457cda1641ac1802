//! The run log: what the run's own component (the orchestrating pattern)
//! was answered, appended as each answer arrives, so that a killed run can
//! be resumed (`runner exec --resume RUN-ID`).
//!
//! A resumed run replays its component from the log: every call it makes
//! is matched, in order, against the logged ones (call and arguments, as a
//! session replay matches them) and answered from the log, so it takes the
//! same decisions without reaching any cluster. A call that runs components
//! (`fleet.run-group`, `gates.run`, ...) is answered with its logged result:
//! nothing it ran is run again. Once the log is used up the run goes on live,
//! and logs what it is answered from there on. The call that was in flight
//! when the runner died is made live again, with two things carried over from
//! the earlier attempt: a member's sub-run that had finished within it is
//! answered from its logged result instead of running again
//! ([`RunLog::member_result`]), and a sleep counts the time it had already
//! slept ([`RunLog::begun_at`]).
//!
//! The file (`calls.jsonl` in the run's directory) holds one JSON object per
//! line: `{"begun": N, "call", "args", "at": MS}` when call N of the
//! component starts live (`at`: milliseconds since the epoch), `{"done": N,
//! "call", "args", "response"|"error"}` when it ends, and `{"member",
//! "during": N, "run"}` when a member's sub-run started by call N ends
//! (`run` as a session holds a pattern run). Arguments and responses are
//! redacted as a session's are. A line cut short by the kill is ignored:
//! every line before it holds. A component stopped by the sandbox in the
//! middle of a call logs no `done` for it; a resumed run makes it again.

use std::collections::HashMap;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::{CallError, Diverged, answer_of, first_difference, redact_response, shown};
use crate::backends::BackendError;

/// The calls whose logged `done` line is synced to disk: what they did
/// (members upgraded, an operator's answer, a soak) is costly or impossible
/// to do again; a gate is a read, run again at no cost. A line lost with the
/// machine only shortens the replay.
const SYNCED: &[&str] = &["fleet.run-group", "fleet.run-pattern", "patterns.run", "approval.request", "clock.sleep"];

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
enum Line {
    Begun {
        begun: usize,
        call: String,
        #[serde(default)]
        args: Value,
        at: u64,
    },
    Done {
        done: usize,
        call: String,
        #[serde(default)]
        args: Value,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        response: Option<Value>,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<CallError>,
    },
    Member {
        member: String,
        during: usize,
        run: Value,
    },
}

/// One call of the component, as logged.
#[derive(Debug, Clone)]
struct Logged {
    call: String,
    args: Value,
    response: Option<Value>,
    error: Option<CallError>,
}

/// What a call of the run's component does, once the log has seen it.
pub(crate) enum Logging {
    /// Answered from the log: an earlier attempt got this answer.
    Replayed(Result<Value, BackendError>),
    /// Made live: call number `index` of the component, to end with [`RunLog::finish`].
    Live(usize),
}

/// The run log of one run: appending, and answering from an earlier attempt's.
pub struct RunLog {
    path: PathBuf,
    file: Mutex<File>,
    state: Mutex<State>,
}

#[derive(Default)]
struct State {
    /// The earlier attempts' completed calls, in order.
    done: Vec<Logged>,
    /// When each call began (earlier attempts' and this one's).
    begun: HashMap<usize, u64>,
    /// Earlier attempts' finished member sub-runs: (call, member) → run.
    members: HashMap<(usize, String), Value>,
    /// The next call's number.
    next: usize,
    /// The call being made live, if one is.
    live: Option<usize>,
    /// The first call that did not match the log.
    diverged: Option<String>,
}

impl RunLog {
    /// A new, empty log at `path` (a run's first attempt).
    pub fn create(path: &Path) -> std::io::Result<RunLog> {
        let file = OpenOptions::new().create(true).write(true).truncate(true).open(path)?;
        Ok(RunLog { path: path.to_path_buf(), file: Mutex::new(file), state: Mutex::default() })
    }

    /// The log at `path`, to answer from and append to (a resumed attempt).
    pub fn resume(path: &Path) -> Result<RunLog, String> {
        let text = std::fs::read_to_string(path).map_err(|e| format!("{}: cannot read the run log: {e}", path.display()))?;
        let mut state = State::default();
        let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
        for (number, line) in lines.iter().enumerate() {
            let line: Line = match serde_json::from_str(line) {
                Ok(line) => line,
                // The runner was killed while writing its last line.
                Err(_) if number + 1 == lines.len() => break,
                Err(e) => return Err(format!("{} line {}: {e}", path.display(), number + 1)),
            };
            match line {
                Line::Begun { begun, at, .. } => {
                    state.begun.entry(begun).or_insert(at);
                }
                Line::Done { done, call, args, response, error } => {
                    if done != state.done.len() {
                        return Err(format!(
                            "{} line {}: call {done} ends after {} call(s): the log is out of order",
                            path.display(),
                            number + 1,
                            state.done.len()
                        ));
                    }
                    state.done.push(Logged { call, args, response, error });
                }
                Line::Member { member, during, run } => {
                    state.members.insert((during, member), run);
                }
            }
        }
        let file = OpenOptions::new().append(true).open(path).map_err(|e| format!("{}: cannot append to the run log: {e}", path.display()))?;
        Ok(RunLog { path: path.to_path_buf(), file: Mutex::new(file), state: Mutex::new(state) })
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// How many calls earlier attempts completed: the replay's length.
    pub fn logged(&self) -> usize {
        self.state().done.len()
    }

    /// How many logged calls the component has not asked for (yet).
    pub fn unasked(&self) -> usize {
        let state = self.state();
        state.done.len().saturating_sub(state.next)
    }

    /// Whether the component is still being answered from the log.
    pub fn replaying(&self) -> bool {
        let state = self.state();
        state.next < state.done.len()
    }

    /// Its file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn append(&self, line: &Line, sync: bool) -> std::io::Result<()> {
        let mut text = serde_json::to_vec(line)?;
        text.push(b'\n');
        let mut file = self.file.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        file.write_all(&text)?;
        if sync {
            file.sync_data()?;
        }
        Ok(())
    }

    /// The component makes `call` with `args` (redacted): answered from the
    /// log while it lasts, live after. A call that differs from the logged
    /// one stops the run: the policy, its configuration or the fleet changed.
    pub(crate) fn begin(&self, call: &str, args: &Value, now_ms: u64) -> Result<Logging, Diverged> {
        let mut state = self.state();
        if let Some(first) = &state.diverged {
            return Err(Diverged(first.clone()));
        }
        let index = state.next;
        state.next += 1;
        if let Some(logged) = state.done.get(index).cloned() {
            let difference = if logged.call != call {
                Some(("call".to_string(), Value::from(logged.call.as_str()), Value::from(call)))
            } else {
                first_difference(&logged.args, args, "args")
            };
            if let Some((path, was, now)) = difference {
                let message = format!(
                    "cannot resume: call {} ({}) differs at {path} from the run's log ({}): the log holds {} but the policy sent {}; \
                     was the policy, its configuration or the fleet changed?",
                    index + 1,
                    logged.call,
                    self.path.display(),
                    shown(&was),
                    shown(&now)
                );
                return Err(Diverged(state.diverged.get_or_insert(message).clone()));
            }
            return answer_of(logged.response, logged.error, call).map(Logging::Replayed).map_err(|e| {
                let message = format!("cannot resume: call {} ({call}) in {}: {e}", index + 1, self.path.display());
                Diverged(state.diverged.get_or_insert(message).clone())
            });
        }
        state.live = Some(index);
        let first_attempt = !state.begun.contains_key(&index);
        let at = *state.begun.entry(index).or_insert(now_ms);
        drop(state);
        if first_attempt {
            self.write_or_warn(&Line::Begun { begun: index, call: call.to_string(), args: args.clone(), at }, false);
        }
        Ok(Logging::Live(index))
    }

    /// When live call `index` first began (ms since the epoch), in this
    /// attempt or an earlier one.
    pub(crate) fn begun_at(&self, index: usize) -> Option<u64> {
        self.state().begun.get(&index).copied()
    }

    /// Live call `index` ended with `outcome` (its answer as JSON).
    pub(crate) fn finish(&self, index: usize, call: &str, args: &Value, outcome: Result<Value, &BackendError>) {
        let (response, error) = match outcome {
            Ok(mut value) => {
                redact_response(&mut value);
                ((!value.is_null()).then_some(value), None)
            }
            Err(e) => (None, Some(CallError { code: e.code.as_str().into(), message: e.message.clone() })),
        };
        {
            let mut state = self.state();
            if state.live == Some(index) {
                state.live = None;
            }
        }
        let line = Line::Done { done: index, call: call.to_string(), args: args.clone(), response, error };
        self.write_or_warn(&line, SYNCED.contains(&call));
    }

    /// What `member`'s sub-run, started by the call in flight, came to in an
    /// earlier attempt, if it finished there.
    pub(crate) fn member_result(&self, member: &str) -> Option<Value> {
        let state = self.state();
        let during = state.live?;
        state.members.get(&(during, member.to_string())).cloned()
    }

    /// `member`'s sub-run, started by the call in flight, ended with `run`.
    pub(crate) fn member_done(&self, member: &str, run: &Value) {
        let Some(during) = self.state().live else { return };
        self.write_or_warn(&Line::Member { member: member.to_string(), during, run: run.clone() }, true);
    }

    /// A run whose log cannot be written goes on: it only loses the means to be resumed.
    fn write_or_warn(&self, line: &Line, sync: bool) {
        if let Err(e) = self.append(line, sync) {
            tracing::warn!("{}: cannot write the run log ({e}): the run can no longer be resumed from here", self.path.display());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backends::ErrorCode;
    use serde_json::json;

    fn temp(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("runner-runlog-{}-{name}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        dir.join("calls.jsonl")
    }

    fn live(logging: Logging) -> usize {
        match logging {
            Logging::Live(index) => index,
            Logging::Replayed(_) => panic!("expected a live call"),
        }
    }

    #[test]
    fn a_resumed_log_answers_what_was_done_then_goes_live() {
        let path = temp("resume");
        let log = RunLog::create(&path).unwrap();
        let now = live(log.begin("clock.now", &Value::Null, 1_000).unwrap());
        log.finish(now, "clock.now", &Value::Null, Ok(json!(1_000)));
        let gate = live(log.begin("fleet.run-gate", &json!({"member": "dev"}), 1_001).unwrap());
        log.finish(gate, "fleet.run-gate", &json!({"member": "dev"}), Err(&BackendError::new(ErrorCode::Unavailable, "dev is down")));
        let group = live(log.begin("fleet.run-group", &json!({"members": ["a", "b"]}), 2_000).unwrap());
        log.member_done("a", &json!({"succeeded": "a upgraded"}));
        drop(log);
        // The kill cut the last line short.
        std::fs::OpenOptions::new().append(true).open(&path).unwrap().write_all(b"{\"member\": \"b\", \"dur").unwrap();

        let log = RunLog::resume(&path).unwrap();
        assert_eq!(log.logged(), 2);
        assert!(log.replaying());
        let Logging::Replayed(Ok(value)) = log.begin("clock.now", &Value::Null, 9_000).unwrap() else { panic!("clock.now is replayed") };
        assert_eq!(value, json!(1_000));
        let Logging::Replayed(Err(e)) = log.begin("fleet.run-gate", &json!({"member": "dev"}), 9_001).unwrap() else {
            panic!("the gate's failure is replayed")
        };
        assert_eq!(e.code, ErrorCode::Unavailable);
        assert!(!log.replaying());
        let again = live(log.begin("fleet.run-group", &json!({"members": ["a", "b"]}), 9_002).unwrap());
        assert_eq!(again, group);
        assert_eq!(log.begun_at(again), Some(2_000), "the first attempt's start is kept");
        assert_eq!(log.member_result("a"), Some(json!({"succeeded": "a upgraded"})));
        assert_eq!(log.member_result("b"), None, "b was in flight");
    }

    #[test]
    fn a_call_that_differs_from_the_log_cannot_be_resumed() {
        let path = temp("diverge");
        let log = RunLog::create(&path).unwrap();
        let index = live(log.begin("fleet.run-gate", &json!({"member": "dev", "slot": "skip-check"}), 1).unwrap());
        log.finish(index, "fleet.run-gate", &json!({"member": "dev", "slot": "skip-check"}), Ok(json!({"outcome": "pass"})));
        drop(log);
        let log = RunLog::resume(&path).unwrap();
        let Err(Diverged(message)) = log.begin("fleet.run-gate", &json!({"member": "test", "slot": "skip-check"}), 2) else { panic!("diverges") };
        assert!(message.contains("args.member") && message.contains("\"dev\"") && message.contains("\"test\""), "{message}");
        assert!(log.begin("clock.now", &Value::Null, 3).is_err(), "every later call is refused too");
    }

    #[test]
    fn a_log_out_of_order_is_refused() {
        let path = temp("order");
        std::fs::write(&path, "{\"done\": 1, \"call\": \"clock.now\", \"response\": 1}\n{\"done\": 0, \"call\": \"clock.now\", \"response\": 1}\n").unwrap();
        let Err(e) = RunLog::resume(&path) else { panic!("a log out of order is refused") };
        assert!(e.contains("out of order"), "{e}");
    }
}

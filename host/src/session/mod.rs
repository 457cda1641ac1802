//! Record and replay: every host interaction of a run kept in a session file
//! (`runner exec --record`), and a run answered from one instead of the
//! backends (`runner exec --replay`, `runner test`).
//!
//! The import layer consults the [`Session`] of its run on every call that
//! passes the capability check and is not answered from the dry-run plan,
//! and the clock consults it for `now` and `sleep`. Recording keeps the
//! calls in the order they start, so a pattern's `gates.run` (or
//! `patterns.run`) comes before the calls of the gate (or pattern) it runs;
//! replaying either runs that component again (see `imports::patterns`). Replaying is strict: the component must
//! ask for exactly the next recorded call (same component, call and
//! arguments), or the run stops and the report names both versions. The
//! format is described in [`file`].

mod answer;
mod canned;
pub mod file;
pub mod runlog;

use std::sync::{Mutex, MutexGuard};

use serde_json::Value;

use crate::backends::{BackendError, ErrorCode};
use crate::journal::redact;

pub use answer::Answer;
pub use canned::{CallMatch, CallPattern, CannedResponse, Reply, matches};
pub use file::{Call, CallError, FORMAT, PolicyInfo, SessionFile};
pub(crate) use runlog::Logging;
pub use runlog::RunLog;

/// Where the virtual clock of canned responses starts: 2026-01-01T00:00:00Z.
pub const CANNED_EPOCH_MS: u64 = 1_767_225_600_000;

/// The session of one run: off, recording, or answering from recorded or
/// canned calls.
pub struct Session {
    mode: Mode,
    state: Mutex<State>,
    /// The session being replayed was recorded with `--dry-run`.
    recorded_dry_run: bool,
}

enum Mode {
    Off,
    Record,
    Replay,
    Canned(Vec<CannedResponse>),
}

#[derive(Default)]
struct State {
    /// Recording: the calls so far. Replaying: the session's calls.
    calls: Vec<Call>,
    /// Replaying: which calls were answered. A fleet's members run side by
    /// side, so their calls interleave differently in each run: every
    /// member's calls (and the orchestrator's) are a stream of their own,
    /// answered in order within it.
    consumed: Vec<bool>,
    /// Replaying: where each stream (a member's name; `None`: not on a member) looks next.
    streams: std::collections::HashMap<Option<String>, usize>,
    /// The first call that did not match; every later call is refused too.
    diverged: Option<String>,
    /// Mutating calls answered, in order (replay and canned).
    mutations: Vec<Call>,
    /// Canned: times each response was used.
    used: Vec<usize>,
    /// Canned: the virtual clock.
    clock_ms: u64,
    /// Recording: calls begun and not yet finished.
    open: std::collections::BTreeSet<usize>,
}

/// The component asked for something the session does not hold (or holds
/// differently). Raised as a trap: the run cannot go on.
#[derive(Debug, Clone, thiserror::Error)]
#[error("replay: {0}")]
pub struct Diverged(pub String);

/// What a call does, once the session has seen it.
pub(crate) enum Step {
    /// Call the backend. Recording: the index of the call to complete with
    /// [`Session::finish`].
    Live(Option<usize>),
    /// The answer, from the session.
    Answer(Result<Value, BackendError>),
    /// The sandbox's deadline stopped the recorded run here.
    Stopped,
}

/// What the session says about a sleep.
pub(crate) enum Sleep {
    /// Really sleep; recording: complete the call afterwards.
    Real(Option<usize>),
    /// Return at once.
    Skip,
    /// The recorded run was stopped by its deadline during this sleep.
    Stopped,
}

/// The calls whose answer is a sandboxed run of another component (a gate,
/// a pattern at a slot): replaying one runs that component again, its own
/// calls answered from the session in order.
const RERUN: &[&str] = &["gates.run", "patterns.run", "fleet.run-pattern", "fleet.run-gate", "fleet.run-group"];

impl Session {
    /// No session: every call goes to the backends.
    pub fn off() -> Self {
        Session { mode: Mode::Off, state: Mutex::default(), recorded_dry_run: false }
    }

    /// Record every call; [`Session::to_file`] gives the result.
    pub fn record() -> Self {
        Session { mode: Mode::Record, state: Mutex::default(), recorded_dry_run: false }
    }

    /// Answer from a recorded session, in order.
    pub fn replay(file: SessionFile) -> Self {
        let consumed = vec![false; file.calls.len()];
        Session { mode: Mode::Replay, state: Mutex::new(State { calls: file.calls, consumed, ..State::default() }), recorded_dry_run: file.dry_run }
    }

    /// Answer from canned responses by matching; the clock starts at `clock_ms`.
    pub fn canned(responses: Vec<CannedResponse>, clock_ms: u64) -> Self {
        let used = vec![0; responses.len()];
        Session { mode: Mode::Canned(responses), state: Mutex::new(State { used, clock_ms, ..State::default() }), recorded_dry_run: false }
    }

    /// Whether calls are recorded or answered here.
    pub fn is_active(&self) -> bool {
        !matches!(self.mode, Mode::Off)
    }

    /// Whether this session answers calls instead of the backends.
    pub fn is_replaying(&self) -> bool {
        matches!(self.mode, Mode::Replay | Mode::Canned(_))
    }

    /// Whether this session answers from canned responses (`runner test`, the benchmark).
    pub fn is_canned(&self) -> bool {
        matches!(self.mode, Mode::Canned(_))
    }

    /// Whether the session being replayed was recorded with `--dry-run`.
    pub fn recorded_dry_run(&self) -> bool {
        self.recorded_dry_run
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// The first divergence, if the component asked for something the session does not hold.
    pub fn divergence(&self) -> Option<String> {
        self.state().diverged.clone()
    }

    /// Recorded calls a replay never reached.
    pub fn unused(&self) -> Vec<Call> {
        match self.mode {
            Mode::Replay => {
                let state = self.state();
                state.calls.iter().zip(&state.consumed).filter(|(_, consumed)| !**consumed).map(|(call, _)| call.clone()).collect()
            }
            _ => Vec::new(),
        }
    }

    /// The mutating calls answered from the session, in order.
    pub fn mutations(&self) -> Vec<Call> {
        self.state().mutations.clone()
    }

    /// The recorded calls as a session file.
    pub fn to_file(&self) -> SessionFile {
        let state = self.state();
        let mut calls = state.calls.clone();
        // A call begun and never finished was cut short by the deadline timer.
        for &open in &state.open {
            if let Some(call) = calls.get_mut(open) {
                call.stopped = Some("deadline".into());
            }
        }
        SessionFile { format: FORMAT.into(), policy: None, recorded: None, config: None, gates: Default::default(), dry_run: false, calls }
    }

    /// Stop the run: the first divergence is kept and reported.
    fn diverge(&self, state: &mut State, message: String) -> Diverged {
        let message = state.diverged.get_or_insert(message).clone();
        Diverged(message)
    }

    /// A call is about to be made with `args` (already redacted) by
    /// `component`, on fleet member `member` when a pattern ran it on one.
    pub(crate) fn begin(&self, component: &str, member: Option<&str>, call: &str, args: &Value, mutating: bool) -> Result<Step, Diverged> {
        // Every host call passes here: without a session it costs one comparison.
        if let Mode::Off = self.mode {
            return Ok(Step::Live(None));
        }
        let mut state = self.state();
        if let Some(first) = &state.diverged {
            return Err(Diverged(first.clone()));
        }
        let made = Call {
            component: component.into(),
            member: member.map(str::to_string),
            call: call.into(),
            args: args.clone(),
            response: None,
            error: None,
            stopped: None,
        };
        match &self.mode {
            Mode::Off => Ok(Step::Live(None)),
            Mode::Record => {
                state.calls.push(made);
                let slot = state.calls.len() - 1;
                state.open.insert(slot);
                Ok(Step::Live(Some(slot)))
            }
            Mode::Replay => {
                let from = state.streams.get(&made.member).copied().unwrap_or(0);
                let Some(at) = (from..state.calls.len()).find(|&i| !state.consumed[i] && state.calls[i].member == made.member) else {
                    let message = match &made.member {
                        None => format!("the component asked for {} but the session ends after {} call(s)", made.describe(), state.calls.len()),
                        Some(m) => format!("the component asked for {} but the session holds no further call on member `{m}`", made.describe()),
                    };
                    return Err(self.diverge(&mut state, message));
                };
                let recorded = state.calls[at].clone();
                if let Some(message) = divergence(at, &recorded, &made) {
                    return Err(self.diverge(&mut state, message));
                }
                state.consumed[at] = true;
                state.streams.insert(made.member.clone(), at + 1);
                if mutating {
                    state.mutations.push(made);
                }
                if RERUN.contains(&recorded.call.as_str()) {
                    return Ok(Step::Live(None));
                }
                if recorded.stopped.is_some() {
                    return Ok(Step::Stopped);
                }
                answer_of(recorded.response, recorded.error, &recorded.call)
                    .map(Step::Answer)
                    .map_err(|e| self.diverge(&mut state, format!("call {}: {e}", at + 1)))
            }
            Mode::Canned(responses) => {
                let Some(index) = responses.iter().position(|r| r.fits(component, member, call, args) && r.ready(&state.mutations, member)) else {
                    if RERUN.contains(&call) {
                        // No canned verdict or pattern run: run the bound component against the canned responses.
                        return Ok(Step::Live(None));
                    }
                    let waiting = responses.iter().filter(|r| r.fits(component, member, call, args)).count();
                    let note =
                        if waiting > 0 { format!(" ({waiting} fitting response(s) wait for mutating calls not made yet: `after`)") } else { String::new() };
                    let message = format!("no canned response for {}{note}", made.describe());
                    return Err(self.diverge(&mut state, message));
                };
                let n = state.used[index];
                state.used[index] += 1;
                let (response, error) = responses[index].reply(n);
                if mutating {
                    // Kept with its error: a call that failed did not change the world `after` describes.
                    state.mutations.push(Call { error: error.clone(), ..made });
                }
                answer_of(response, error, call).map(Step::Answer).map_err(|e| self.diverge(&mut state, format!("canned response for {call}: {e}")))
            }
        }
    }

    /// A recorded call ended with `outcome` (a backend's answer, already as JSON).
    pub(crate) fn finish(&self, slot: usize, outcome: Result<Value, &BackendError>) {
        let mut state = self.state();
        state.open.remove(&slot);
        let Some(call) = state.calls.get_mut(slot) else { return };
        match outcome {
            Ok(mut value) => {
                redact_response(&mut value);
                call.response = (!value.is_null()).then_some(value);
            }
            Err(error) => call.error = Some(CallError { code: error.code.as_str().into(), message: error.message.clone() }),
        }
    }

    /// A recorded call (a sleep) during which the deadline stopped the run.
    pub(crate) fn finish_stopped(&self, slot: usize) {
        let mut state = self.state();
        state.open.remove(&slot);
        if let Some(call) = state.calls.get_mut(slot) {
            call.stopped = Some("deadline".into());
        }
    }

    /// `clock.now`: the live time (recorded), or the session's.
    pub(crate) fn now(&self, component: &str, member: Option<&str>, live: impl FnOnce() -> u64) -> Result<u64, Diverged> {
        if let Mode::Off = self.mode {
            return Ok(live());
        }
        if let Mode::Canned(_) = self.mode {
            let state = self.state();
            return match &state.diverged {
                Some(first) => Err(Diverged(first.clone())),
                None => Ok(state.clock_ms),
            };
        }
        match self.begin(component, member, "clock.now", &Value::Null, false)? {
            Step::Live(slot) => {
                let now = live();
                if let Some(slot) = slot {
                    self.finish(slot, Ok(Value::from(now)));
                }
                Ok(now)
            }
            Step::Answer(answer) => {
                let value = answer.map_err(|e| self.diverged_now(format!("clock.now cannot fail, but the session says {e}")))?;
                value.as_u64().ok_or_else(|| self.diverged_now(format!("clock.now must answer milliseconds since the epoch, the session holds {value}")))
            }
            Step::Stopped => Err(self.diverged_now("clock.now cannot be stopped by the deadline".into())),
        }
    }

    /// `clock.sleep(ms)`.
    pub(crate) fn sleep(&self, component: &str, member: Option<&str>, ms: u64) -> Result<Sleep, Diverged> {
        if let Mode::Canned(_) = self.mode {
            let mut state = self.state();
            if let Some(first) = &state.diverged {
                return Err(Diverged(first.clone()));
            }
            state.clock_ms = state.clock_ms.saturating_add(ms);
            return Ok(Sleep::Skip);
        }
        match self.begin(component, member, "clock.sleep", &serde_json::json!({"ms": ms}), false)? {
            Step::Live(slot) => Ok(Sleep::Real(slot)),
            Step::Answer(_) => Ok(Sleep::Skip),
            Step::Stopped => Ok(Sleep::Stopped),
        }
    }

    fn diverged_now(&self, message: String) -> Diverged {
        let mut state = self.state();
        self.diverge(&mut state, message)
    }

    /// A recorded answer could not be turned into what the call returns.
    pub(crate) fn bad_answer(&self, call: &str, why: String) -> Diverged {
        self.diverged_now(format!("the session's answer to {call} is unusable: {why}"))
    }
}

/// Arguments match when they are equal as JSON, numbers by value (a hand-edited
/// `1.0` matches a recorded `1`).
/// Where `made` first differs from `recorded`: the key path (`args.sql`) and
/// both values, or `None` when they match. SQL is compared with its
/// whitespace normalised: re-indenting a query changes nothing it asks.
fn first_difference(recorded: &Value, made: &Value, path: &str) -> Option<(String, Value, Value)> {
    let differs = || Some((path.to_string(), recorded.clone(), made.clone()));
    match (recorded, made) {
        (Value::Object(a), Value::Object(b)) => {
            let keys: std::collections::BTreeSet<&String> = a.keys().chain(b.keys()).collect();
            keys.into_iter().find_map(|key| {
                let at = format!("{path}.{key}");
                match (a.get(key), b.get(key)) {
                    (Some(x), Some(y)) if key == "sql" && x.is_string() && y.is_string() => {
                        (normalised_sql(x) != normalised_sql(y)).then(|| (at, x.clone(), y.clone()))
                    }
                    (Some(x), Some(y)) => first_difference(x, y, &at),
                    (x, y) => Some((at, x.cloned().unwrap_or(Value::Null), y.cloned().unwrap_or(Value::Null))),
                }
            })
        }
        (Value::Array(a), Value::Array(b)) if a.len() == b.len() => {
            a.iter().zip(b).enumerate().find_map(|(i, (x, y))| first_difference(x, y, &format!("{path}[{i}]")))
        }
        (Value::Number(a), Value::Number(b)) if a == b || a.as_f64() == b.as_f64() => None,
        _ if recorded == made => None,
        _ => differs(),
    }
}

fn normalised_sql(sql: &Value) -> String {
    sql.as_str().unwrap_or_default().split_whitespace().collect::<Vec<_>>().join(" ")
}

/// Why a call is not the recorded one, naming the first thing that differs.
fn divergence(at: usize, recorded: &Call, made: &Call) -> Option<String> {
    let difference = if recorded.component != made.component {
        Some(("component".to_string(), Value::from(recorded.component.as_str()), Value::from(made.component.as_str())))
    } else if recorded.call != made.call {
        Some(("call".to_string(), Value::from(recorded.call.as_str()), Value::from(made.call.as_str())))
    } else {
        first_difference(&recorded.args, &made.args, "args")
    };
    let (path, was, now) = difference?;
    Some(format!(
        "call {} ({}: {}) differs at {path}: the session holds {} but the component sent {}",
        at + 1,
        recorded.component,
        recorded.call,
        shown(&was),
        shown(&now)
    ))
}

/// A value for a one-line message: JSON, long text cut in the middle.
fn shown(value: &Value) -> String {
    let text = if value.is_null() { "nothing".to_string() } else { value.to_string() };
    if text.chars().count() <= 160 {
        return text;
    }
    let head: String = text.chars().take(100).collect();
    let tail: String = text.chars().rev().take(40).collect::<Vec<_>>().into_iter().rev().collect();
    format!("{head} … {tail}")
}

fn answer_of(response: Option<Value>, error: Option<CallError>, call: &str) -> Result<Result<Value, BackendError>, String> {
    match error {
        Some(error) => {
            let code = ErrorCode::from_name(&error.code).ok_or_else(|| format!("unknown error code `{}` for {call}", error.code))?;
            Ok(Err(BackendError::new(code, error.message)))
        }
        None => {
            let value = response.unwrap_or(Value::Null);
            // A cluster answer may be one of ARM's failures, as a canned case
            // writes it: the error the AKS backend would have made of it.
            if call.starts_with("cluster-")
                && let Some(error) = crate::backends::aks::arm::failure_in(call, &value)
            {
                return Ok(Err(error));
            }
            Ok(Ok(value))
        }
    }
}

fn to_wit_code(code: ErrorCode) -> crate::wit::ErrorCode {
    code.into()
}

/// Take secrets out of a response before it is written: a Secret's data,
/// environment variables that look like credentials, and string values
/// under secret-looking keys. Structure and other values stay, so a replay
/// sees what the component saw.
pub fn redact_response(value: &mut Value) {
    match value {
        Value::Object(map) => {
            let is_secret_object = map.get("kind").and_then(Value::as_str) == Some("Secret");
            let env_name_is_secret = map.get("name").and_then(Value::as_str).is_some_and(redact::is_secret_key) && map.contains_key("value");
            for (key, inner) in map.iter_mut() {
                let hide = (is_secret_object && (key == "data" || key == "stringData"))
                    || (env_name_is_secret && key == "value")
                    || (inner.is_string()
                        && redact::is_secret_key(key)
                        && !matches!(key.as_str(), "data" | "stringData")
                        && !key.ends_with("Name")
                        && !key.ends_with("Ref"));
                if hide {
                    hide_values(inner);
                } else {
                    redact_response(inner);
                }
            }
        }
        Value::Array(items) => items.iter_mut().for_each(redact_response),
        _ => {}
    }
}

/// Replace every string in `value` (keeping keys and shape), or the value itself.
fn hide_values(value: &mut Value) {
    match value {
        Value::Object(map) => map.values_mut().for_each(hide_values),
        Value::Array(items) => items.iter_mut().for_each(hide_values),
        Value::Null => {}
        other => *other = Value::String(redact::REDACTED.into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn responses_lose_their_secrets_and_keep_their_shape() {
        let mut secret = json!({"kind": "Secret", "metadata": {"name": "postgres-credentials"}, "data": {"password": "aHVudGVyMg=="}});
        redact_response(&mut secret);
        assert_eq!(secret["data"], json!({"password": "[redacted]"}));
        assert_eq!(secret["metadata"]["name"], "postgres-credentials");
        let mut pod = json!({"spec": {"automountServiceAccountToken": false, "containers": [{"env": [
            {"name": "POSTGRES_PASSWORD", "value": "hunter2"},
            {"name": "PGUSER", "value": "postgres"},
            {"name": "REDIS_PASSWORD", "valueFrom": {"secretKeyRef": {"name": "redis-credentials", "key": "password"}}}
        ]}], "volumes": [{"secret": {"secretName": "tls"}}]}});
        redact_response(&mut pod);
        let env = &pod["spec"]["containers"][0]["env"];
        assert_eq!(env[0]["value"], "[redacted]");
        assert_eq!(env[1]["value"], "postgres");
        assert_eq!(env[2]["valueFrom"]["secretKeyRef"]["name"], "redis-credentials");
        assert_eq!(pod["spec"]["automountServiceAccountToken"], false);
        assert_eq!(pod["spec"]["volumes"][0]["secret"]["secretName"], "tls");
        let mut rows = json!([{"rolname": "app", "rolpassword": "SCRAM-SHA-256$4096:..."}]);
        redact_response(&mut rows);
        assert_eq!(rows[0]["rolpassword"], "[redacted]");
        assert_eq!(rows[0]["rolname"], "app");
    }

    /// A recorded call of `component` (on `member`) that answered `response`.
    fn recorded(component: &str, member: Option<&str>, call: &str, args: Value, response: Value) -> Call {
        Call { component: component.into(), member: member.map(str::to_string), call: call.into(), args, response: Some(response), error: None, stopped: None }
    }

    /// A session file holding `calls`.
    fn session_of(calls: Vec<Call>) -> SessionFile {
        SessionFile { format: FORMAT.into(), policy: None, recorded: None, config: None, gates: Default::default(), dry_run: false, calls }
    }

    #[test]
    fn replay_is_strict_and_names_both_versions() {
        let file = session_of(vec![recorded("g", None, "kube-read.get", json!({"name": "a"}), json!({"x": 1}))]);
        let session = Session::replay(file.clone());
        let Ok(Step::Answer(Ok(answer))) = session.begin("g", None, "kube-read.get", &json!({"name": "a"}), false) else { panic!("expected an answer") };
        assert_eq!(answer, json!({"x": 1}));
        let Err(Diverged(message)) = session.begin("g", None, "kube-read.get", &json!({"name": "b"}), false) else { panic!("expected a divergence") };
        assert!(message.contains("session ends after 1 call"), "{message}");
        let session = Session::replay(file);
        let Err(Diverged(message)) = session.begin("g", None, "kube-read.get", &json!({"name": "b"}), false) else { panic!("expected a divergence") };
        assert!(message.contains(r#"call 1 (g: kube-read.get) differs at args.name: the session holds "a" but the component sent "b""#), "{message}");
        // Once diverged, every later call is refused with the first difference.
        let Err(Diverged(again)) = session.begin("g", None, "clock.now", &Value::Null, false) else { panic!("expected a divergence") };
        assert_eq!(again, message);
    }

    fn canned(yaml: &str) -> Session {
        let responses: Vec<CannedResponse> = serde_yaml::from_str(yaml).unwrap();
        responses.iter().try_for_each(CannedResponse::check).unwrap();
        Session::canned(responses, CANNED_EPOCH_MS)
    }

    fn answer(session: &Session, call: &str, args: Value, mutating: bool) -> Result<Value, String> {
        match session.begin("p", None, call, &args, mutating) {
            Ok(Step::Answer(Ok(value))) => Ok(value),
            Ok(Step::Answer(Err(e))) => Err(format!("{}: {}", e.code.as_str(), e.message)),
            Ok(_) => Err("not answered from the session".into()),
            Err(Diverged(message)) => Err(message),
        }
    }

    #[test]
    fn canned_states_follow_the_mutations_made() {
        let session = canned(
            r#"
- call: kube-read.get
  args: {kind: Pod, name: db-1}
  after: [{call: kube-write.delete, args: {name: db-1}}, kube-write.patch]
  sequence: [{error: {code: not-found, message: gone}}, {response: {uid: new}}]
- call: kube-read.get
  args: {kind: Pod, name: db-1}
  after: [{call: kube-write.delete, args: {name: "~db-1"}}]
  response: {uid: deleted-unpatched}
- call: kube-read.get
  args: {kind: Pod}
  response: {uid: old}
- call: kube-write.delete
- call: kube-write.patch
  response: {}
"#,
        );
        let get = |name: &str| answer(&session, "kube-read.get", json!({"kind": "Pod", "name": name}), false);
        assert_eq!(get("db-1").unwrap(), json!({"uid": "old"}));
        // Another Pod's deletion is not the one the later states wait for.
        answer(&session, "kube-write.delete", json!({"kind": "Pod", "name": "db-2"}), true).unwrap();
        assert_eq!(get("db-1").unwrap(), json!({"uid": "old"}));
        answer(&session, "kube-write.delete", json!({"kind": "Pod", "name": "db-1"}), true).unwrap();
        assert_eq!(get("db-1").unwrap(), json!({"uid": "deleted-unpatched"}));
        assert_eq!(get("db-2").unwrap(), json!({"uid": "old"}));
        // Both calls made: the first entry fits, and its sequence starts at its first answer.
        answer(&session, "kube-write.patch", json!({"kind": "StatefulSet"}), true).unwrap();
        assert_eq!(get("db-1").unwrap_err(), "not-found: gone");
        assert_eq!(get("db-1").unwrap(), json!({"uid": "new"}));
        assert_eq!(get("db-1").unwrap(), json!({"uid": "new"}));
        assert_eq!(session.mutations().len(), 3);
    }

    #[test]
    fn a_mutation_answered_with_an_error_changes_no_state() {
        let session = canned(
            r#"
- {call: kube-read.get, after: [kube-write.delete], response: {uid: new}}
- {call: kube-read.get, response: {uid: old}}
- {call: kube-write.delete, sequence: [{error: {code: denied, message: forbidden}}, {}]}
"#,
        );
        let get = || answer(&session, "kube-read.get", json!({"kind": "Pod"}), false);
        assert_eq!(answer(&session, "kube-write.delete", json!({"name": "db-1"}), true).unwrap_err(), "denied: forbidden");
        assert_eq!(get().unwrap(), json!({"uid": "old"}));
        answer(&session, "kube-write.delete", json!({"name": "db-1"}), true).unwrap();
        assert_eq!(get().unwrap(), json!({"uid": "new"}));
        // Both attempts are mutations the case can expect.
        assert_eq!(session.mutations().len(), 2);
    }

    #[test]
    fn a_state_not_reached_yet_is_named_when_nothing_else_fits() {
        let session = canned("- call: kube-read.list\n  after: [kube-write.delete]\n  response: []\n");
        let message = answer(&session, "kube-read.list", json!({"kind": "Pod"}), false).unwrap_err();
        assert!(
            message.contains("no canned response for p: kube-read.list") && message.contains("1 fitting response(s) wait for mutating calls not made yet"),
            "{message}"
        );
    }

    #[test]
    fn an_empty_after_is_refused() {
        let responses: Vec<CannedResponse> = serde_yaml::from_str("- call: kube-read.list\n  after: []\n  response: []\n").unwrap();
        assert_eq!(responses[0].check().unwrap_err(), "`kube-read.list`: `after` is empty (list the mutating calls this answer waits for, or leave it out)");
        // Unknown call names are fine: a test may name a call of an interface added later.
        let responses: Vec<CannedResponse> = serde_yaml::from_str("- call: kube-read.list\n  after: [made-up.call]\n").unwrap();
        assert!(responses[0].check().is_ok());
        assert!(serde_yaml::from_str::<Vec<CannedResponse>>("- call: kube-read.list\n  after: [{call: x, arg: {}}]\n").is_err());
    }

    #[test]
    fn each_member_is_answered_in_its_own_order_whatever_the_interleaving() {
        let call = |member: &str, name: &str| {
            recorded("aks-upgrade", Some(member), "kube-read.get", json!({"name": name}), json!({"seen": format!("{member}/{name}")}))
        };
        // Recorded while dev and test ran side by side.
        let file = session_of(vec![call("dev", "a"), call("test", "a"), call("dev", "b"), call("test", "b")]);
        let session = Session::replay(file.clone());
        let ask = |session: &Session, member: &str, name: &str| match session.begin("aks-upgrade", Some(member), "kube-read.get", &json!({"name": name}), false)
        {
            Ok(Step::Answer(Ok(value))) => Ok(value),
            Err(Diverged(message)) => Err(message),
            _ => Err("no answer".into()),
        };
        // Replayed with test first: each member still gets its own answers, in its order.
        assert_eq!(ask(&session, "test", "a").unwrap(), json!({"seen": "test/a"}));
        assert_eq!(ask(&session, "test", "b").unwrap(), json!({"seen": "test/b"}));
        assert_eq!(session.unused().len(), 2, "dev's two calls are left");
        assert_eq!(ask(&session, "dev", "a").unwrap(), json!({"seen": "dev/a"}));
        assert_eq!(ask(&session, "dev", "b").unwrap(), json!({"seen": "dev/b"}));
        assert!(session.unused().is_empty());
        // Within one member the order is strict, and a member's stream ends where its calls do.
        let session = Session::replay(file);
        assert!(ask(&session, "dev", "b").unwrap_err().contains("differs at args.name"));
        let session = Session::replay(session_of(vec![call("dev", "a")]));
        assert_eq!(ask(&session, "dev", "a").unwrap(), json!({"seen": "dev/a"}));
        assert!(ask(&session, "dev", "a").unwrap_err().contains("no further call on member `dev`"));
    }
}

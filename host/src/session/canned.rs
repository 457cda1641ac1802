//! Canned responses, as a `runner test` file gives them inline: each call is
//! answered by the first entry (in file order) that matches it, and the clock
//! is virtual (it starts at a fixed instant and moves only when the component
//! sleeps).
//!
//! An entry with `after` is a later state of the world: it answers only once
//! each mutating call it lists has been answered, not with an error, in this
//! run (deleting a Pod
//! makes its replacement appear; a step-down makes another member primary).
//! Since the first fitting entry wins, later states are written before the
//! earlier ones they replace. A `sequence` on such an entry starts with the
//! entry's first answer.

use serde::Deserialize;
use serde_json::Value;

use super::file::{Call, CallError};
use crate::domain::ErrorCode;

/// One canned answer and the calls it answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedResponse {
    /// The call it answers (`postgres-read.query`).
    pub call: String,
    /// Only calls made by this component.
    #[serde(default)]
    pub component: Option<String>,
    /// Only calls made on this fleet member (a pattern ran the component on it).
    #[serde(default)]
    pub member: Option<String>,
    /// Only calls whose arguments contain these: objects match key by key,
    /// a string starting with `~` matches any string containing the rest,
    /// anything else must be equal.
    #[serde(default)]
    pub args: Option<Value>,
    /// The answer, every time.
    #[serde(default)]
    pub response: Option<Value>,
    /// The failure, every time.
    #[serde(default)]
    pub error: Option<CallError>,
    /// Answers given in turn; the last one repeats.
    #[serde(default)]
    pub sequence: Option<Vec<Reply>>,
    /// Only once every one of these mutating calls has been answered (not with an error) in this run.
    #[serde(default)]
    pub after: Option<Vec<CallMatch>>,
}

/// A call as a test file names it: `kube-write.delete`, or
/// `{call: kube-write.delete, args: {name: mongo-2}}` (arguments matched as
/// [`CannedResponse::args`] are).
#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum CallMatch {
    /// Any call of this name.
    Name(String),
    /// A call of this name whose component and arguments fit.
    Pattern(CallPattern),
}

/// The long form of [`CallMatch`].
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallPattern {
    /// `interface.function`.
    pub call: String,
    /// Only calls made by this component.
    #[serde(default)]
    pub component: Option<String>,
    /// Only calls made on this fleet member.
    #[serde(default)]
    pub member: Option<String>,
    /// A subset of the arguments.
    #[serde(default)]
    pub args: Option<Value>,
}

impl CallMatch {
    /// The call name it asks for.
    pub fn call(&self) -> &str {
        match self {
            CallMatch::Name(name) => name,
            CallMatch::Pattern(p) => &p.call,
        }
    }

    /// Whether `made` is such a call.
    pub fn fits(&self, made: &Call) -> bool {
        match self {
            CallMatch::Name(name) => made.call == *name,
            CallMatch::Pattern(p) => {
                p.call == made.call
                    && p.component.as_ref().is_none_or(|c| *c == made.component)
                    && p.member.as_ref().is_none_or(|m| made.member.as_ref() == Some(m))
                    && p.args.as_ref().is_none_or(|a| matches(a, &made.args))
            }
        }
    }

    /// How messages show it.
    pub fn describe(&self) -> String {
        match self {
            CallMatch::Name(name) => name.clone(),
            CallMatch::Pattern(p) => match &p.args {
                Some(args) => format!("{} {args}", p.call),
                None => p.call.clone(),
            },
        }
    }
}

/// One answer of a sequence.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Reply {
    /// The answer.
    #[serde(default)]
    pub response: Option<Value>,
    /// Or the failure.
    #[serde(default)]
    pub error: Option<CallError>,
}

impl CannedResponse {
    /// Whether the entry is well formed: one kind of answer, known error codes.
    pub fn check(&self) -> Result<(), String> {
        let kinds = usize::from(self.response.is_some()) + usize::from(self.error.is_some()) + usize::from(self.sequence.is_some());
        if kinds > 1 {
            return Err(format!("`{}`: give one of `response`, `error` and `sequence`", self.call));
        }
        if self.sequence.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!("`{}`: `sequence` is empty", self.call));
        }
        if self.after.as_ref().is_some_and(Vec::is_empty) {
            return Err(format!("`{}`: `after` is empty (list the mutating calls this answer waits for, or leave it out)", self.call));
        }
        if let Some(blank) = self.after.iter().flatten().find(|a| a.call().trim().is_empty()) {
            return Err(format!("`{}`: `after` names an empty call ({})", self.call, blank.describe()));
        }
        let errors = self.error.iter().chain(self.sequence.iter().flatten().filter_map(|r| r.error.as_ref()));
        for error in errors {
            if ErrorCode::from_name(&error.code).is_none() {
                return Err(format!("`{}`: unknown error code `{}`", self.call, error.code));
            }
        }
        Ok(())
    }

    pub(super) fn fits(&self, component: &str, member: Option<&str>, call: &str, args: &Value) -> bool {
        self.call == call
            && self.component.as_deref().is_none_or(|c| c == component)
            && self.member.as_deref().is_none_or(|m| member == Some(m))
            && self.args.as_ref().is_none_or(|expected| matches(expected, args))
    }

    /// Whether every call of `after` is among the mutating calls answered so
    /// far without an error (one that failed changed nothing) on the same
    /// cluster: a call made on a fleet member waits for that member's calls.
    pub(super) fn ready(&self, answered: &[Call], member: Option<&str>) -> bool {
        self.after.iter().flatten().all(|wanted| answered.iter().any(|made| made.error.is_none() && made.member.as_deref() == member && wanted.fits(made)))
    }

    /// The `n`th answer (0-based).
    pub(super) fn reply(&self, n: usize) -> (Option<Value>, Option<CallError>) {
        match &self.sequence {
            Some(sequence) => {
                let reply = &sequence[n.min(sequence.len() - 1)];
                (reply.response.clone(), reply.error.clone())
            }
            None => (self.response.clone(), self.error.clone()),
        }
    }
}

/// Whether `actual` holds what `expected` asks for (see [`CannedResponse::args`]).
pub fn matches(expected: &Value, actual: &Value) -> bool {
    match (expected, actual) {
        (Value::Object(want), Value::Object(have)) => {
            want.iter().all(|(key, value)| have.get(key).is_some_and(|h| matches(value, h)) || (value.is_null() && !have.contains_key(key)))
        }
        (Value::Array(want), Value::Array(have)) => want.len() == have.len() && want.iter().zip(have).all(|(w, h)| matches(w, h)),
        (Value::String(want), Value::String(have)) => match want.strip_prefix('~') {
            Some(part) => have.contains(part),
            None => want == have,
        },
        (Value::Number(want), Value::Number(have)) => want == have || want.as_f64() == have.as_f64(),
        _ => expected == actual,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn subsets_and_substrings() {
        let args = json!({"member": "postgres-cluster-0", "sql": "SELECT * FROM pg_stat_replication", "params": []});
        assert!(matches(&json!({"member": "postgres-cluster-0"}), &args));
        assert!(matches(&json!({"sql": "~pg_stat_replication"}), &args));
        assert!(!matches(&json!({"sql": "pg_stat_replication"}), &args));
        assert!(!matches(&json!({"member": "postgres-cluster-1"}), &args));
        assert!(!matches(&json!({"other": 1}), &args));
        assert!(matches(&json!({"params": []}), &args));
        assert!(matches(&json!({"n": 1}), &json!({"n": 1.0})));
    }
}

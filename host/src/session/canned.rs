//! Canned responses, as a `runner test` file gives them inline: each call is
//! answered by the first entry that matches it, in any order, and the clock
//! is virtual (it starts at a fixed instant and moves only when the component
//! sleeps).

use serde::Deserialize;
use serde_json::Value;

use super::file::CallError;

/// One canned answer and the calls it answers.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CannedResponse {
    /// The call it answers (`postgres-read.query`).
    pub call: String,
    /// Only calls made by this component.
    #[serde(default)]
    pub component: Option<String>,
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
        let errors = self.error.iter().chain(self.sequence.iter().flatten().filter_map(|r| r.error.as_ref()));
        for error in errors {
            if super::error_code(&error.code).is_none() {
                return Err(format!("`{}`: unknown error code `{}`", self.call, error.code));
            }
        }
        Ok(())
    }

    pub(super) fn fits(&self, component: &str, call: &str, args: &Value) -> bool {
        self.call == call && self.component.as_deref().is_none_or(|c| c == component) && self.args.as_ref().is_none_or(|expected| matches(expected, args))
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
        (Value::Object(want), Value::Object(have)) => want.iter().all(|(key, value)| have.get(key).is_some_and(|h| matches(value, h)) || (value.is_null() && !have.contains_key(key))),
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

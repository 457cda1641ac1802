//! A pattern's steps as the run report shows them, the gates it runs as
//! steps, and how it ends.

use std::cell::Cell;

use serde_json::Value;

use crate::pattern::{PatternResult, PatternStatus};
use crate::report::{self, StepOutcome};
use crate::{Error, ErrorCode, Outcome, Verdict, gates};

/// Run `body` as a named step of a pattern: begun, ended with its outcome,
/// timed in the run report.
pub fn step<T>(name: &str, description: &str, body: impl FnOnce() -> Result<T, Error>) -> Result<T, Error> {
    report::step_begin(name, description);
    let result = body();
    end_step(name, result.as_ref().err());
    result
}

fn end_step(name: &str, failure: Option<&Error>) {
    match failure {
        None => report::step_end(name, StepOutcome::Succeeded, ""),
        Some(e) => report::step_end(name, StepOutcome::Failed, &format!("{}: {}", e.code, e.message)),
    }
}

/// What running the gate bound to a slot came to.
///
/// Contract 0.1 answers `gates.run` with a verdict or a host error; a gate
/// that crashed or ran out of time arrives as an `internal` host error.
#[derive(Clone, Debug)]
pub enum GateCall {
    /// The verdict is pass or warn.
    Passed(Verdict),
    /// The verdict is fail.
    Failed(Verdict),
    /// The gate gave no verdict: the host could not run it, or it did not finish.
    Host(Error),
}

impl GateCall {
    /// `gates.run` on `slot` with `input` (a JSON object).
    pub fn run(slot: &str, input: &str) -> GateCall {
        match gates::run(slot, input) {
            Ok(verdict) if verdict.outcome == Outcome::Fail => GateCall::Failed(verdict),
            Ok(verdict) => GateCall::Passed(verdict),
            Err(e) => GateCall::Host(e),
        }
    }

    /// The passing verdict, or why there is none: a failing verdict becomes
    /// an `internal` error quoting its reasons (`gate `post` failed: ...`).
    pub fn into_result(self, slot: &str) -> Result<Verdict, Error> {
        match self {
            GateCall::Passed(verdict) => Ok(verdict),
            GateCall::Failed(verdict) => Err(Error::internal(format!("gate `{slot}` failed: {}", verdict.reasons.join("; ")))),
            GateCall::Host(e) => Err(e),
        }
    }

    /// Whether the gate stopped the run: it failed, or it gave no verdict
    /// for a reason of its own. Contract 0.1 cannot tell a gate that crashed
    /// from any other `internal` host error, so both count.
    pub fn refused(&self) -> bool {
        match self {
            GateCall::Passed(_) => false,
            GateCall::Failed(_) => true,
            GateCall::Host(e) => e.code == ErrorCode::Internal,
        }
    }
}

/// Run the gate bound to `slot` as the step of the same name ("run the
/// `<slot>` gate"); the step fails unless the verdict passes.
pub fn gate_step(slot: &str, input: &str) -> GateCall {
    report::step_begin(slot, &format!("run the {slot} gate"));
    let call = GateCall::run(slot, input);
    end_step(slot, call.clone().into_result(slot).err().as_ref());
    call
}

/// A gate's input: the operator's JSON object (`text`; empty means `{}`)
/// with the pattern's own facts (`defaults`) added where the operator gave none.
pub fn gate_input(text: &str, defaults: &[(&str, Value)]) -> Result<String, Error> {
    let mut input: Value =
        serde_json::from_str(if text.trim().is_empty() { "{}" } else { text }).map_err(|e| Error::invalid(format!("gate input `{text}` is not JSON: {e}")))?;
    let object = input.as_object_mut().ok_or_else(|| Error::invalid(format!("gate input `{text}` is not a JSON object")))?;
    for (key, value) in defaults {
        object.entry(*key).or_insert_with(|| value.clone());
    }
    Ok(input.to_string())
}

/// The gate a pattern runs before it changes anything, as a step: `None`
/// to go on, else how the run ends. A gate that refused ends it
/// `rolled-back` with nothing changed; any other error ends it with that error.
pub fn preflight_gate(slot: &str, input: &str) -> Option<Result<PatternResult, Error>> {
    let call = gate_step(slot, input);
    let refused = call.refused();
    match call.into_result(slot) {
        Ok(_) => None,
        Err(e) if refused => Some(Ok(PatternResult::rolled_back(format!("{}; nothing was changed", e.message)))),
        Err(e) => Some(Err(e)),
    }
}

impl PatternResult {
    /// Every step succeeded; `summary` says what changed.
    pub fn succeeded(summary: impl Into<String>) -> Self {
        PatternResult { status: PatternStatus::Succeeded, summary: summary.into() }
    }

    /// A step failed and the pattern restored a consistent state; `summary` says what was undone.
    pub fn rolled_back(summary: impl Into<String>) -> Self {
        PatternResult { status: PatternStatus::RolledBack, summary: summary.into() }
    }
}

/// Whether this run only plans its mutations (`runner exec --dry-run`).
///
/// Contract 0.1 does not say so; the host answers a planned merge patch with
/// the patch itself, which has no `metadata.resourceVersion`, so the first
/// patch answer tells. From then on a pattern skips its waits, since nothing
/// it waits for will happen.
#[derive(Debug, Default)]
pub struct DryRun(Cell<bool>);

impl DryRun {
    /// Whether a planned mutation has been seen.
    pub fn active(&self) -> bool {
        self.0.get()
    }

    /// Look at the host's answer to a merge patch; the first planned one
    /// makes the run a dry run (logged once).
    pub fn notice(&self, patch_answer: &Value) {
        if patch_answer["metadata"]["resourceVersion"].is_null() && !self.0.get() {
            self.0.set(true);
            report::log(report::Level::Info, "dry run: mutations are planned, not made; waits are skipped and the rest of the plan assumes each step succeeds");
        }
    }

    /// What a pattern's summary adds in a dry run (empty otherwise).
    pub fn summary_note(&self) -> &'static str {
        if self.0.get() { " (dry run: planned, not done)" } else { "" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gate_input_adds_only_what_is_missing() {
        let text = gate_input(r#"{"namespace":"db"}"#, &[("namespace", json!("")), ("masters", json!(3))]).unwrap();
        assert_eq!(serde_json::from_str::<Value>(&text).unwrap(), json!({"namespace": "db", "masters": 3}));
        assert_eq!(gate_input(" ", &[("statefulset", json!("mongo"))]).unwrap(), r#"{"statefulset":"mongo"}"#);
        assert_eq!(gate_input("[1]", &[]).unwrap_err().code, ErrorCode::Invalid);
        assert_eq!(gate_input("nope", &[]).unwrap_err().code, ErrorCode::Invalid);
    }

    #[test]
    fn a_failing_verdict_is_an_internal_error_naming_the_slot() {
        let verdict = |outcome| Verdict { outcome, reasons: vec!["pg-1: lag 3 s".into(), "no backup".into()], evidence: "{}".into() };
        let failed = GateCall::Failed(verdict(Outcome::Fail));
        assert!(failed.refused());
        let e = failed.into_result("preflight").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Internal, "gate `preflight` failed: pg-1: lag 3 s; no backup"));
        let passed = GateCall::Passed(verdict(Outcome::Warn));
        assert!(!passed.refused());
        assert_eq!(passed.into_result("post").unwrap().outcome, Outcome::Warn);
        // Contract 0.1 reports a crashed gate as `internal`: it refuses like a failing one.
        assert!(GateCall::Host(Error::internal("gate `post`: wasm trap")).refused());
        assert!(!GateCall::Host(Error::new(ErrorCode::Denied, "gates:run:post not granted")).refused());
    }
}

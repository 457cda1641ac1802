//! A pattern's steps as the run report shows them, the gates it runs as
//! steps, and how it ends.

use serde_json::Value;

use crate::gates::{self, GateResult};
use crate::pattern::{PatternResult, PatternStatus};
use crate::report::{self, StepOutcome};
use crate::{Error, Outcome, Verdict, run_info};

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

/// What running the gate bound to a slot came to: [`gates::GateResult`]
/// with pass and warn apart from fail.
#[derive(Clone, Debug)]
pub enum GateCall {
    /// The verdict is pass or warn.
    Passed(Verdict),
    /// The verdict is fail: the gate worked and says it is not safe to proceed.
    Failed(Verdict),
    /// The gate gave no verdict: its `evaluate` returned this error (the
    /// gate's own code; the message names the gate).
    Errored(Error),
    /// The gate gave no verdict: the sandbox stopped it (deadline, memory,
    /// trap or panic, output limit); the text names the gate and says which.
    Stopped(String),
    /// The host did not start the gate: the pattern lacks `gates:run:<slot>`
    /// (`denied`), no gate is bound to the slot (`not-found`), or the gate
    /// does not accept the input (`invalid`).
    Host(Error),
}

impl GateCall {
    /// `gates.run` on `slot` with `input` (a JSON object).
    pub fn run(slot: &str, input: &str) -> GateCall {
        Self::from_answer(gates::run(slot, input))
    }

    /// The typed form of the host's answer (`gates.run`, `fleet.run-gate`).
    pub fn from_answer(answer: Result<GateResult, Error>) -> GateCall {
        match answer {
            Ok(GateResult::Verdict(verdict)) if verdict.outcome == Outcome::Fail => GateCall::Failed(verdict),
            Ok(GateResult::Verdict(verdict)) => GateCall::Passed(verdict),
            Ok(GateResult::GateError(e)) => GateCall::Errored(e),
            Ok(GateResult::Stopped(why)) => GateCall::Stopped(why),
            Err(e) => GateCall::Host(e),
        }
    }

    /// The passing verdict, or why there is none: a failing verdict becomes
    /// an `internal` error quoting its reasons (`gate `post` failed: ...`),
    /// a stopped gate an `internal` error quoting the sandbox; errors keep
    /// their code.
    pub fn into_result(self, slot: &str) -> Result<Verdict, Error> {
        match self {
            GateCall::Passed(verdict) => Ok(verdict),
            GateCall::Failed(verdict) => Err(Error::internal(format!("gate `{slot}` failed: {}", verdict.reasons.join("; ")))),
            GateCall::Stopped(why) => Err(Error::internal(why)),
            GateCall::Errored(e) | GateCall::Host(e) => Err(e),
        }
    }

    /// Whether the gate stopped the run: it failed, or it ran and could not
    /// give a verdict. A gate the host did not start stopped nothing: that
    /// is the pattern's or the operator's mistake, not the gate's answer.
    pub fn refused(&self) -> bool {
        !matches!(self, GateCall::Passed(_) | GateCall::Host(_))
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
/// to go on, else how the run ends. A gate that refused ([`GateCall::refused`])
/// ends it `rolled-back` with nothing changed; a gate the host did not start
/// ends it with the host's error.
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

/// Whether this run only plans its mutations (`runner exec --dry-run`), as
/// `run-info.dry-run` says. In a dry run a pattern skips its waits, since
/// nothing it waits for will happen, and plans the rest as if each step
/// succeeded.
#[derive(Clone, Copy, Debug)]
pub struct DryRun(bool);

impl DryRun {
    /// Ask the host, once per run (the answer never changes); a dry run is
    /// logged so the operator reads the plan for what it is.
    pub fn of_this_run() -> Self {
        let dry = run_info::dry_run();
        if dry {
            report::log(report::Level::Info, "dry run: mutations are planned, not made; waits are skipped and the rest of the plan assumes each step succeeds");
        }
        DryRun(dry)
    }

    /// An answer already known, without asking the host (code that takes a
    /// `DryRun`, tested natively).
    pub fn known(dry: bool) -> Self {
        DryRun(dry)
    }

    /// Whether this is a dry run.
    pub fn active(&self) -> bool {
        self.0
    }

    /// What a pattern's summary adds in a dry run (empty otherwise).
    pub fn summary_note(&self) -> &'static str {
        if self.0 { " (dry run: planned, not done)" } else { "" }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ErrorCode;
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
    fn only_a_verdict_is_an_answer_and_only_the_host_refuses_nothing() {
        let verdict = |outcome| Verdict { outcome, reasons: vec!["pg-1: lag 3 s".into(), "no backup".into()], evidence: "{}".into() };
        let failed = GateCall::Failed(verdict(Outcome::Fail));
        assert!(failed.refused());
        let e = failed.into_result("preflight").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Internal, "gate `preflight` failed: pg-1: lag 3 s; no backup"));
        let passed = GateCall::Passed(verdict(Outcome::Warn));
        assert!(!passed.refused());
        assert_eq!(passed.into_result("post").unwrap().outcome, Outcome::Warn);
        // A gate that could not decide refuses whatever its code; the code stays.
        let errored = GateCall::Errored(Error::new(ErrorCode::Unavailable, "gate `pg-preflight`: pg-1: connection refused"));
        assert!(errored.refused());
        assert_eq!(errored.into_result("preflight").unwrap_err().code, ErrorCode::Unavailable);
        let stopped = GateCall::Stopped("gate `pg-preflight`: pg-preflight: stopped by the sandbox: deadline exceeded".into());
        assert!(stopped.refused());
        let e = stopped.into_result("preflight").unwrap_err();
        assert_eq!((e.code, e.message.as_str()), (ErrorCode::Internal, "gate `pg-preflight`: pg-preflight: stopped by the sandbox: deadline exceeded"));
        // The host's refusals, `internal` ones included, are the pattern's to report as errors.
        assert!(!GateCall::Host(Error::new(ErrorCode::Denied, "gates:run:post not granted")).refused());
        assert!(!GateCall::Host(Error::internal("gate `pg-preflight`: cannot start wasmtime")).refused());
    }
}

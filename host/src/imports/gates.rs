//! `gates`: a pattern runs the gate bound to one of its slots. Capability
//! `gates:run:<slot>`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::{Effect, HostState, MemberScope, RunContext};
use crate::backends::{BackendError, ErrorCode};
use crate::session::Answer;
use crate::wit::pattern::runner::policy::gates;
use crate::wit::{Error, GateResult, Outcome, Verdict};

/// Runs a gate in a sandbox of its own. The engine provides it; the import
/// layer only knows that it exists.
#[async_trait::async_trait]
pub trait GateRunner: Send + Sync {
    /// Run the gate bound to `slot` with `input` (JSON) on `member` (`None`:
    /// the run's target), stopping no later than `deadline`: what the gate
    /// came to, or why the host did not start it (no such slot, input the
    /// gate does not accept).
    async fn run_slot(&self, run: Arc<RunContext>, slot: &str, input: &str, deadline: Instant, member: Option<MemberScope>)
    -> Result<GateResult, BackendError>;
}

impl gates::Host for HostState {
    async fn run(&mut self, slot: String, input: String) -> wasmtime::Result<Result<GateResult, Error>> {
        let args = || json!({"slot": slot, "input": serde_json::from_str::<Value>(&input).unwrap_or_else(|_| json!(input))});
        let run = self.run.clone();
        let deadline = self.deadline;
        let fail_on_warn = run.fail_on_warn;
        let runner = self.gate_runner();
        let member = self.member.clone();
        let answer = self
            .guarded("gates.run", Ok(&slot), args, Effect::Read, async {
                let Some(runner) = runner else {
                    return Err(BackendError::new(ErrorCode::Unavailable, "no gate runner in this context"));
                };
                runner.run_slot(run, &slot, &input, deadline, member).await
            })
            .await?;
        Ok(answer.map(|result| fail_on_warn_applied(result, fail_on_warn)))
    }
}

/// A gate's result as the pattern sees it: under `--fail-on-warn` a warning is a failure.
pub(crate) fn fail_on_warn_applied(result: GateResult, fail_on_warn: bool) -> GateResult {
    match result {
        GateResult::Verdict(verdict) if fail_on_warn => GateResult::Verdict(warn_as_fail(verdict)),
        other => other,
    }
}

/// Under `--fail-on-warn`, a warning verdict is a failing one, saying why.
pub fn warn_as_fail(mut verdict: Verdict) -> Verdict {
    if verdict.outcome == Outcome::Warn {
        verdict.outcome = Outcome::Fail;
        verdict.reasons.insert(0, "a warning counts as a failure (--fail-on-warn)".into());
    }
    verdict
}

/// Key of the session answer of a gate the sandbox stopped.
const STOPPED: &str = "stopped";

/// A gate run as a session holds it: a verdict (`{"outcome": ...}`) or the
/// gate's own error (`{"error": ...}`) in the shapes of contract 0.1, so
/// sessions recorded then still read; a gate the sandbox stopped as
/// `{"stopped": "<why>"}`.
impl Answer for GateResult {
    fn to_json(&self) -> Value {
        match self {
            GateResult::Verdict(verdict) => Ok::<Verdict, Error>(verdict.clone()).to_json(),
            GateResult::GateError(error) => Err::<Verdict, Error>(error.clone()).to_json(),
            GateResult::Stopped(why) => json!({ STOPPED: why }),
        }
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        if let Some(why) = value.get(STOPPED) {
            return why.as_str().map(|why| GateResult::Stopped(why.to_string())).ok_or_else(|| format!("`{STOPPED}` needs the reason as text, found {why}"));
        }
        Ok(match <Result<Verdict, Error>>::from_json(value)? {
            Ok(verdict) => GateResult::Verdict(verdict),
            Err(error) => GateResult::GateError(error),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::ErrorCode;

    #[test]
    fn every_gate_result_survives_a_session() {
        let results = [
            GateResult::Verdict(Verdict { outcome: Outcome::Fail, reasons: vec!["pg-1: lag 3 s".into()], evidence: r#"{"lag_ms":3000}"#.into() }),
            GateResult::GateError(Error { code: ErrorCode::Unavailable, message: "gate `pg-preflight`: pg-1: connection refused".into() }),
            GateResult::Stopped("gate `pg-preflight`: pg-preflight: stopped by the sandbox: deadline exceeded".into()),
        ];
        for result in results {
            let json = result.to_json();
            assert_eq!(format!("{:?}", GateResult::from_json(&json).unwrap()), format!("{result:?}"), "{json}");
        }
        assert_eq!(
            GateResult::Verdict(Verdict { outcome: Outcome::Pass, reasons: vec![], evidence: "{}".into() }).to_json(),
            json!({"outcome": "pass", "reasons": [], "evidence": {}})
        );
        assert!(GateResult::from_json(&json!({"stopped": 3})).unwrap_err().contains("reason as text"));
    }
}

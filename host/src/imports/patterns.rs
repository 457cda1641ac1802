//! `patterns`: a pattern runs the pattern bound to one of its slots.
//! Capability `patterns:run:<slot>`.
//!
//! The sub-pattern runs in a sandbox of its own (the engine's
//! [`PatternRunner`]): its own store, limits and a deadline no later than
//! its caller's; its own grants (what its manifest requests, within what the
//! operator allowed the run); its own gate and pattern slots, bound to its
//! manifest's defaults. Its calls are journaled and reported under the slot
//! path (`postgres`, `pools/postgres`), with its own name as the component.
//!
//! Sessions: `patterns.run` is recorded like any call, but a replay (and a
//! `runner test` case without a canned answer for it) does not answer it
//! from the session: it runs the sub-pattern again, and the sub-pattern's
//! own calls are answered from the session in order, as `gates.run` does.
//! That keeps a replay honest (the sub-pattern takes its decisions again
//! from the same answers, and a changed sub-pattern diverges, naming its
//! call), keeps its mutations in the list a `runner test` case checks, and
//! keeps its steps in the replayed report. The recorded answer of
//! `patterns.run` is there for readers; a canned case may still answer
//! `patterns.run` outright (`{"succeeded": "..."}`), which runs no sub-pattern.
//! A dry run runs the sub-pattern too: its reads live, its mutations planned.

use std::sync::Arc;
use std::time::Instant;

use serde_json::{Value, json};

use super::{Effect, HostState, MemberScope, RunContext};
use crate::backends::{BackendError, ErrorCode};
use crate::caps::Grants;
use crate::session::Answer;
use crate::wit::Error;
use crate::wit::pattern::runner::policy::patterns::{self, PatternRun};

/// How deep patterns may run patterns: the run's own pattern is at depth 0,
/// a pattern it runs through a slot at 1. A call that would start one deeper
/// is refused with `invalid`.
pub const MAX_DEPTH: usize = 4;

/// One `patterns.run` call, as the runner needs it.
pub struct PatternCall {
    /// The run it belongs to.
    pub run: Arc<RunContext>,
    /// The caller's grants: the operator's allowances for the run come from here.
    pub grants: Grants,
    /// The caller's own slot path, when it runs at a slot itself.
    pub under: Option<Arc<str>>,
    /// The caller's step running when it made the call.
    pub parent_step: Option<String>,
    /// The caller's slot.
    pub slot: String,
    /// The configuration, a JSON object over the sub-pattern's defaults.
    pub config: String,
    /// When the caller's sandbox stops it: the sub-pattern stops no later.
    pub deadline: Instant,
    /// The fleet member it runs on: the caller's own, or the one `fleet.*` named.
    pub member: Option<MemberScope>,
}

impl PatternCall {
    /// The slot path the sub-pattern runs at (`postgres`, `pools/postgres`).
    pub fn path(&self) -> String {
        match &self.under {
            Some(under) => format!("{under}/{}", self.slot),
            None => self.slot.clone(),
        }
    }
}

/// Runs a pattern in a sandbox of its own. The engine provides it; the
/// import layer only knows that it exists.
#[async_trait::async_trait]
pub trait PatternRunner: Send + Sync {
    /// Run the pattern bound to `call.slot`: what it came to, or why the
    /// host did not start it (no such slot, a configuration it rejects, a
    /// component that cannot be loaded).
    async fn run_slot(&self, call: PatternCall) -> Result<PatternRun, BackendError>;
}

impl patterns::Host for HostState {
    async fn run(&mut self, slot: String, config: String) -> wasmtime::Result<Result<PatternRun, Error>> {
        let args = || json!({"slot": slot, "config": serde_json::from_str::<Value>(&config).unwrap_or_else(|_| json!(config))});
        let depth = self.slot_path().map_or(0, |path| path.split('/').count());
        let runner = self.pattern_runner();
        let call = self.pattern_call(&slot, &config, self.member.clone());
        self.guarded("patterns.run", Ok(&slot), args, Effect::Read, async move {
            if depth >= MAX_DEPTH {
                return Err(BackendError::new(
                    ErrorCode::Invalid,
                    format!("pattern slot `{}` would run a pattern {} deep; patterns nest at most {MAX_DEPTH} deep", call.path(), depth + 1),
                ));
            }
            let Some(runner) = runner else {
                return Err(BackendError::new(ErrorCode::Unavailable, "no pattern runner in this context"));
            };
            runner.run_slot(call).await
        })
        .await
    }
}

impl HostState {
    /// This component's call of the pattern at its `slot` with `config`, run on `member`.
    pub(super) fn pattern_call(&self, slot: &str, config: &str, member: Option<MemberScope>) -> PatternCall {
        PatternCall {
            run: self.run.clone(),
            grants: self.grants.clone(),
            under: self.slot.as_ref().map(|s| s.path.clone()),
            parent_step: self.running_step(),
            slot: slot.to_string(),
            config: config.to_string(),
            deadline: self.deadline,
            member,
        }
    }

    /// The step this component began last and has not ended.
    pub(super) fn running_step(&self) -> Option<String> {
        let path = self.slot_path();
        let record = self.run.record();
        let member = self.member_name();
        record
            .steps
            .iter()
            .rev()
            .find(|s| s.component == *self.component && s.slot_path.as_deref() == path && s.member.as_deref() == member && s.outcome == "running")
            .map(|s| s.name.clone())
    }
}

/// Keys of a pattern run as a session holds it.
const SUCCEEDED: &str = "succeeded";
const ROLLED_BACK: &str = "rolled-back";
const ERROR: &str = "error";
const STOPPED: &str = "stopped";

/// A pattern run as a session holds it: `{"succeeded": summary}`,
/// `{"rolled-back": summary}`, `{"error": {"code", "message"}}` or
/// `{"stopped": why}`.
impl Answer for PatternRun {
    fn to_json(&self) -> Value {
        match self {
            PatternRun::Succeeded(summary) => json!({ SUCCEEDED: summary }),
            PatternRun::RolledBack(summary) => json!({ ROLLED_BACK: summary }),
            PatternRun::PatternError(e) => json!({ ERROR: {"code": super::code_name(e.code), "message": e.message} }),
            PatternRun::Stopped(why) => json!({ STOPPED: why }),
        }
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        let text = |key: &str| value.get(key).map(|v| v.as_str().map(str::to_string).ok_or_else(|| format!("`{key}` needs text, found {v}")));
        if let Some(summary) = text(SUCCEEDED) {
            return summary.map(PatternRun::Succeeded);
        }
        if let Some(summary) = text(ROLLED_BACK) {
            return summary.map(PatternRun::RolledBack);
        }
        if let Some(why) = text(STOPPED) {
            return why.map(PatternRun::Stopped);
        }
        if let Some(error) = value.get(ERROR) {
            let code = error["code"]
                .as_str()
                .and_then(crate::domain::ErrorCode::from_name)
                .ok_or_else(|| format!("a pattern error needs a known `code`, found {error}"))?;
            return Ok(PatternRun::PatternError(Error { code: code.into(), message: error["message"].as_str().unwrap_or_default().to_string() }));
        }
        Err(format!(
            "a pattern run is one of {{\"{SUCCEEDED}\": ...}}, {{\"{ROLLED_BACK}\": ...}}, {{\"{ERROR}\": ...}}, {{\"{STOPPED}\": ...}}; found {value}"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wit::ErrorCode;

    #[test]
    fn every_pattern_run_survives_a_session() {
        let runs = [
            PatternRun::Succeeded("moved 3 members".into()),
            PatternRun::RolledBack("restored the pin".into()),
            PatternRun::PatternError(Error { code: ErrorCode::Timeout, message: "pattern `postgres-ferris-wheel`: pg-1 never caught up".into() }),
            PatternRun::Stopped("pattern `postgres-ferris-wheel`: stopped by the sandbox: deadline exceeded".into()),
        ];
        for run in runs {
            let json = run.to_json();
            assert_eq!(format!("{:?}", PatternRun::from_json(&json).unwrap()), format!("{run:?}"), "{json}");
        }
        assert_eq!(PatternRun::Succeeded("done".into()).to_json(), json!({"succeeded": "done"}));
        assert!(PatternRun::from_json(&json!({"succeeded": 3})).unwrap_err().contains("needs text"));
        assert!(PatternRun::from_json(&json!({"error": {"code": "nope"}})).unwrap_err().contains("known `code`"));
        assert!(PatternRun::from_json(&json!({"outcome": "pass"})).unwrap_err().contains("one of"));
    }
}

//! `gates`: a pattern runs the gate bound to one of its slots. Capability
//! `gates:run:<slot>`.

use std::sync::Arc;
use std::time::Instant;

use serde_json::json;

use super::{Effect, HostState, RunContext};
use crate::backends::{BackendError, ErrorCode};
use crate::wit::pattern::runner::policy::gates;
use crate::wit::{Error, Verdict};

/// Runs a gate in a sandbox of its own. The engine provides it; the import
/// layer only knows that it exists.
#[async_trait::async_trait]
pub trait GateRunner: Send + Sync {
    /// Run the gate bound to `slot` with `input` (JSON), stopping no later
    /// than `deadline`.
    async fn run_slot(&self, run: Arc<RunContext>, slot: &str, input: &str, deadline: Instant) -> Result<Verdict, Error>;
}

impl gates::Host for HostState {
    async fn run(&mut self, slot: String, input: String) -> wasmtime::Result<Result<Verdict, Error>> {
        let args = || json!({"slot": slot, "input": serde_json::from_str::<serde_json::Value>(&input).unwrap_or_else(|_| json!(input))});
        let run = self.run.clone();
        let deadline = self.deadline;
        let outcome = self
            .guarded("gates.run", Ok(&slot), args, Effect::Read, async {
                let Some(runner) = run.gates.clone() else {
                    return Err(BackendError::new(ErrorCode::Unavailable, "no gate runner in this context"));
                };
                // The gate's own failure is an answer for the pattern, not a
                // failed host call: keep it inside Ok.
                Ok(runner.run_slot(run, &slot, &input, deadline).await)
            })
            .await?;
        Ok(outcome.and_then(|verdict| verdict))
    }
}

//! Gates run by a pattern through `gates.run(slot, input)`: each in its own
//! sandbox, with its own read-only grants, bound to the slot by the manifest
//! or the operator. Swapping a gate never means rebuilding the pattern.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Engine, EngineError, Prepared};
use crate::caps::Grants;
use crate::imports::{GateRecord, GateRunner, HostState, RunContext};
use crate::policy::{config, Policy};
use crate::wit::{Error, ErrorCode, Outcome, Verdict};

/// The gates bound to a pattern's slots.
pub struct SlotRunner {
    engine: Arc<Engine>,
    slots: BTreeMap<String, Policy>,
    prepared: Mutex<BTreeMap<String, Arc<Prepared>>>,
}

impl SlotRunner {
    /// Run gates on `engine`, slot name → gate policy.
    pub fn new(engine: Arc<Engine>, slots: BTreeMap<String, Policy>) -> Self {
        SlotRunner { engine, slots, prepared: Mutex::default() }
    }

    fn prepare(&self, slot: &str, policy: &Policy) -> Result<Arc<Prepared>, EngineError> {
        let mut cache = self.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prepared) = cache.get(slot) {
            return Ok(prepared.clone());
        }
        let prepared = Arc::new(self.engine.prepare(policy)?);
        cache.insert(slot.to_string(), prepared.clone());
        Ok(prepared)
    }
}

fn error(code: ErrorCode, message: String) -> Error {
    Error { code, message }
}

#[async_trait::async_trait]
impl GateRunner for SlotRunner {
    async fn run_slot(&self, run: Arc<RunContext>, slot: &str, input: &str, deadline: Instant) -> Result<Verdict, Error> {
        let Some(policy) = self.slots.get(slot) else {
            let known = self.slots.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(error(ErrorCode::NotFound, format!("no gate bound to slot `{slot}` (slots: {known})")));
        };
        let name = policy.name().to_string();
        let input: serde_json::Value = serde_json::from_str(input).map_err(|e| error(ErrorCode::Invalid, format!("gate input is not JSON: {e}")))?;
        let config = config::merge_json(&policy.manifest.config, input).map_err(|e| error(ErrorCode::Invalid, format!("gate `{name}`: {e}")))?;
        let prepared = self.prepare(slot, policy).map_err(|e| error(ErrorCode::Invalid, e.to_string()))?;
        let host = HostState::new(prepared.name.clone(), Grants::read_only(policy.manifest.requested()), self.engine.limits().gate_deadline, Some(deadline), run.clone());
        let result = self.engine.evaluate(&prepared, host, &config.to_string()).await;
        let outcome = match &result {
            Ok(Ok(verdict)) => match verdict.outcome {
                Outcome::Pass => "pass",
                Outcome::Warn => "warn",
                Outcome::Fail => "fail",
            },
            _ => "error",
        };
        let reasons = match &result {
            Ok(Ok(verdict)) => verdict.reasons.clone(),
            Ok(Err(e)) => vec![e.message.clone()],
            Err(e) => vec![e.to_string()],
        };
        tracing::info!(target: "policy", "[{name}] gate for slot {slot}: {outcome} {}", reasons.join("; "));
        run.record.lock().unwrap_or_else(|p| p.into_inner()).gates.push(GateRecord { slot: slot.into(), gate: name.clone(), outcome: outcome.into(), reasons });
        match result {
            Ok(Ok(verdict)) => Ok(verdict),
            Ok(Err(e)) => Err(error(e.code, format!("gate `{name}`: {}", e.message))),
            Err(e) => Err(error(ErrorCode::Internal, format!("gate `{name}`: {e}"))),
        }
    }
}

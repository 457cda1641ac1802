//! Gates run by a pattern through `gates.run(slot, input)`: each in its own
//! sandbox, with its own read-only grants, bound to the slot by the manifest
//! or the operator. Swapping a gate never means rebuilding the pattern.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Engine, EngineError, Prepared};
use crate::backends::{BackendError, ErrorCode};
use crate::caps::Grants;
use crate::imports::{GateRecord, GateRunner, HostState, MemberScope, RunContext, SlotScope};
use crate::policy::{Policy, config};
use crate::wit::{Error, GateResult, Outcome};

/// The gates bound to a pattern's slots.
pub struct SlotRunner {
    engine: Arc<Engine>,
    slots: BTreeMap<String, Policy>,
    prepared: Mutex<BTreeMap<String, Arc<Prepared>>>,
    /// The pattern slot path of the pattern whose gates these are, when a
    /// pattern runs it through a slot: its gates report and journal under it.
    under: Option<Arc<str>>,
}

impl SlotRunner {
    /// Run gates on `engine`, slot name → gate policy.
    pub fn new(engine: Arc<Engine>, slots: BTreeMap<String, Policy>) -> Self {
        SlotRunner { engine, slots, prepared: Mutex::default(), under: None }
    }

    /// The gates of a pattern running at pattern slot path `path`.
    pub fn under(mut self, path: Arc<str>) -> Self {
        self.under = Some(path);
        self
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

#[async_trait::async_trait]
impl GateRunner for SlotRunner {
    async fn run_slot(
        &self,
        run: Arc<RunContext>,
        slot: &str,
        input: &str,
        deadline: Instant,
        member: Option<MemberScope>,
    ) -> Result<GateResult, BackendError> {
        let Some(policy) = self.slots.get(slot) else {
            let known = self.slots.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(BackendError::new(ErrorCode::NotFound, format!("no gate bound to slot `{slot}` (slots: {known})")));
        };
        let name = policy.name().to_string();
        let invalid = |message: String| BackendError::new(ErrorCode::Invalid, message);
        let input: serde_json::Value = serde_json::from_str(input).map_err(|e| invalid(format!("gate input is not JSON: {e}")))?;
        let config = config::merge_json(&policy.manifest.config, input).map_err(|e| invalid(format!("gate `{name}`: {e}")))?;
        let prepared = self.prepare(slot, policy).map_err(|e| invalid(e.to_string()))?;
        let mut host = HostState::new(
            prepared.name.clone(),
            Grants::read_only(policy.manifest.requested()),
            self.engine.limits().gate_deadline,
            Some(deadline),
            run.clone(),
        )
        .on_member(member.clone());
        if let Some(path) = &self.under {
            // A gate has no slots of its own: only its journal lines carry the path.
            host = host.in_slot(SlotScope { path: path.clone(), gates: None, patterns: None });
        }
        // Each message names the gate: a pattern quotes it as it stands.
        let result = match self.engine.evaluate(&prepared, host, &config.to_string()).await {
            Ok(Ok(verdict)) => GateResult::Verdict(verdict),
            Ok(Err(e)) => GateResult::GateError(Error { code: e.code, message: format!("gate `{name}`: {}", e.message) }),
            Err(e @ EngineError::Stopped { .. }) => GateResult::Stopped(format!("gate `{name}`: {e}")),
            Err(EngineError::Invalid(why)) => return Err(invalid(format!("gate `{name}`: {why}"))),
            Err(EngineError::Host(why)) => return Err(BackendError::new(ErrorCode::Internal, format!("gate `{name}`: {why}"))),
        };
        let (outcome, reasons) = match &result {
            GateResult::Verdict(verdict) => (outcome_name(verdict.outcome), verdict.reasons.clone()),
            GateResult::GateError(Error { message, .. }) | GateResult::Stopped(message) => ("error", vec![message.clone()]),
        };
        let on = member.as_ref().map(|m| format!(" on {}", m.name)).unwrap_or_default();
        tracing::info!(target: "policy", "[{name}] gate for slot {slot}{on}: {outcome} {}", reasons.join("; "));
        run.record.lock().unwrap_or_else(|p| p.into_inner()).gates.push(GateRecord {
            slot: slot.into(),
            gate: name,
            outcome: outcome.into(),
            reasons,
            slot_path: self.under.as_deref().map(str::to_string),
            member: member.map(|m| m.name.to_string()),
        });
        Ok(result)
    }
}

fn outcome_name(outcome: Outcome) -> &'static str {
    match outcome {
        Outcome::Pass => "pass",
        Outcome::Warn => "warn",
        Outcome::Fail => "fail",
    }
}

//! Patterns run by a pattern through `patterns.run(slot, config)`: each in
//! its own sandbox (own store, limits, a deadline no later than its
//! caller's), with its own grants (what its manifest requests, within what
//! the operator allowed the run) and its own slots, bound to the manifest's
//! defaults (or the operator's `--pattern`/`--gate` for the run's own).
//! The engine knows components, not databases: a Ferris wheel and a
//! step-down cascade are the same to it.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::{Engine, EngineError, Prepared, SlotRunner};
use crate::backends::{BackendError, ErrorCode};
use crate::caps::Grants;
use crate::imports::{GateRunner, HostState, PatternCall, PatternRecord, PatternRunner, SlotScope};
use crate::policy::{Policy, World, config};
use crate::wit::Error;
use crate::wit::pattern::PatternStatus;
use crate::wit::pattern::runner::policy::patterns::PatternRun;

/// A pattern bound to a slot, with the components bound to its own slots.
#[derive(Clone)]
pub struct BoundPattern {
    /// The pattern.
    pub policy: Policy,
    /// Its gate slots: slot name → gate.
    pub gates: BTreeMap<String, Policy>,
    /// Its pattern slots: slot name → pattern (empty at the deepest level).
    pub patterns: BTreeMap<String, BoundPattern>,
}

/// One slot's pattern, ready to run: compiled on first use, with the
/// runners of its own slots (which report under its slot path).
struct Slot {
    policy: Policy,
    path: Arc<str>,
    gates: Arc<SlotRunner>,
    patterns: Arc<PatternSlots>,
    prepared: Mutex<Option<Arc<Prepared>>>,
}

/// The patterns bound to one pattern's slots.
pub struct PatternSlots {
    engine: Arc<Engine>,
    slots: BTreeMap<String, Slot>,
}

impl PatternSlots {
    /// Run patterns on `engine`, slot name → bound pattern, for a caller at
    /// slot path `under` (`None`: the run's own pattern).
    pub fn new(engine: Arc<Engine>, slots: BTreeMap<String, BoundPattern>, under: Option<&str>) -> Self {
        let slots = slots
            .into_iter()
            .map(|(name, bound)| {
                let path: Arc<str> = under.map_or_else(|| name.clone(), |under| format!("{under}/{name}")).into();
                let gates = Arc::new(SlotRunner::new(engine.clone(), bound.gates).under(path.clone()));
                let patterns = Arc::new(PatternSlots::new(engine.clone(), bound.patterns, Some(&*path)));
                (name, Slot { policy: bound.policy, path, gates, patterns, prepared: Mutex::default() })
            })
            .collect();
        PatternSlots { engine, slots }
    }

    fn prepare(&self, slot: &Slot) -> Result<Arc<Prepared>, EngineError> {
        let mut cache = slot.prepared.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(prepared) = &*cache {
            return Ok(prepared.clone());
        }
        let prepared = Arc::new(self.engine.prepare(&slot.policy)?);
        *cache = Some(prepared.clone());
        Ok(prepared)
    }
}

#[async_trait::async_trait]
impl PatternRunner for PatternSlots {
    async fn run_slot(&self, call: PatternCall) -> Result<PatternRun, BackendError> {
        let Some(slot) = self.slots.get(&call.slot) else {
            let known = if self.slots.is_empty() { "it has none".to_string() } else { self.slots.keys().cloned().collect::<Vec<_>>().join(", ") };
            return Err(BackendError::new(ErrorCode::NotFound, format!("no pattern bound to slot `{}` (slots: {known})", call.path())));
        };
        let policy = &slot.policy;
        let name = policy.name().to_string();
        let invalid = |message: String| BackendError::new(ErrorCode::Invalid, message);
        if policy.manifest.world != World::Pattern {
            // The builder binds patterns only; a hand-made binding still gets a clear answer.
            return Err(invalid(format!("pattern slot `{}`: `{name}` is a {}, not a pattern", slot.path, policy.manifest.world)));
        }
        let input: serde_json::Value = serde_json::from_str(&call.config).map_err(|e| invalid(format!("pattern config is not JSON: {e}")))?;
        if !input.is_object() {
            return Err(invalid(format!("pattern `{name}`: the config must be a JSON object, not {input}")));
        }
        let config = config::merge_json(&policy.manifest.config, input).map_err(|e| invalid(format!("pattern `{name}`: {e}")))?;
        let prepared = self.prepare(slot).map_err(|e| invalid(format!("pattern `{name}`: {e}")))?;
        // Its own requests, within the operator's allowances for the run.
        let grants = Grants::within(policy.manifest.requested(), &call.grants);
        // On a member, the operator's allowances for that member join the run-wide ones.
        let grants = match &call.member {
            Some(member) => grants.on_member(&member.name),
            None => grants,
        };
        let gates: Arc<dyn GateRunner> = slot.gates.clone();
        let patterns: Arc<dyn PatternRunner> = slot.patterns.clone();
        let scope = SlotScope { path: slot.path.clone(), gates: Some(gates), patterns: Some(patterns) };
        let host = HostState::new(prepared.name.clone(), grants, self.engine.limits().pattern_deadline, Some(call.deadline), call.run.clone())
            .in_slot(scope)
            .on_member(call.member.clone());
        let on = call.member.as_ref().map(|m| format!(" on {}", m.name)).unwrap_or_default();
        let started = Instant::now();
        tracing::info!(target: "policy", "[{name}] pattern for slot {}{on}: started", slot.path);
        // Each message names the pattern: the caller quotes it as it stands.
        let result = match self.engine.run_pattern(&prepared, host, &config.to_string()).await {
            Ok(Ok(done)) => match done.status {
                PatternStatus::Succeeded => PatternRun::Succeeded(done.summary),
                PatternStatus::RolledBack => PatternRun::RolledBack(done.summary),
            },
            Ok(Err(e)) => PatternRun::PatternError(Error { code: e.code, message: format!("pattern `{name}`: {}", e.message) }),
            Err(e @ EngineError::Stopped { .. }) => PatternRun::Stopped(format!("pattern `{name}`: {e}")),
            Err(EngineError::Invalid(why)) => return Err(invalid(format!("pattern `{name}`: {why}"))),
            Err(EngineError::Host(why)) => return Err(BackendError::new(ErrorCode::Internal, format!("pattern `{name}`: {why}"))),
        };
        let (outcome, detail) = match &result {
            PatternRun::Succeeded(summary) => ("succeeded", summary.clone()),
            PatternRun::RolledBack(summary) => ("rolled-back", summary.clone()),
            PatternRun::PatternError(e) => ("error", format!("{}: {}", crate::imports::code_name(e.code), e.message)),
            PatternRun::Stopped(why) => ("stopped", why.clone()),
        };
        tracing::info!(target: "policy", "[{name}] pattern for slot {}{on}: {outcome} {detail}", slot.path);
        call.run.record.lock().unwrap_or_else(|p| p.into_inner()).patterns.push(PatternRecord {
            slot_path: slot.path.to_string(),
            pattern: name,
            parent_step: call.parent_step,
            outcome: outcome.into(),
            detail,
            ms: started.elapsed().as_secs_f64() * 1000.0,
            member: call.member.as_ref().map(|m| m.name.to_string()),
        });
        Ok(result)
    }
}

//! What a policy can touch and will do, for the person who decides whether
//! it may run in production (`runner review`), and what changed between two
//! versions of it (`--against`).

use std::collections::BTreeSet;

use serde_json::{Value, json};

use crate::caps::Capability;
use crate::policy::Policy;

/// The capabilities a policy requests, each with whether it mutates.
pub fn capabilities(policy: &Policy) -> Vec<(Capability, bool)> {
    policy
        .manifest
        .requested()
        .into_iter()
        .map(|c| {
            let mutating = c.is_mutating();
            (c, mutating)
        })
        .collect()
}

/// Everything a reviewer needs, as JSON.
pub fn describe(policy: &Policy) -> Value {
    let m = &policy.manifest;
    json!({
        "name": m.name,
        "version": m.version,
        "world": m.world,
        "description": m.description,
        "digest": policy.digest,
        "path": policy.path,
        "size_bytes": policy.bytes.len(),
        "capabilities": capabilities(policy).iter().map(|(c, mutating)| json!({"capability": c.to_string(), "mutating": mutating})).collect::<Vec<_>>(),
        "imports": {
            "policy": policy.import_report.policy_interfaces,
            "wasi": policy.import_report.wasi_interfaces,
        },
        "mismatches": policy.import_report.mismatches(),
        "config": m.config,
        "gates": m.gates,
        "patterns": m.patterns,
        "steps": m.steps,
        "rollback": m.rollback,
        "origin": policy.origin,
    })
}

fn added_removed<T: Ord + Clone>(old: &BTreeSet<T>, new: &BTreeSet<T>) -> (Vec<T>, Vec<T>) {
    (new.difference(old).cloned().collect(), old.difference(new).cloned().collect())
}

/// What changed between two versions of a policy, most alarming first.
pub fn diff(old: &Policy, new: &Policy) -> Value {
    let (om, nm) = (&old.manifest, &new.manifest);
    let caps = |p: &Policy| p.manifest.requested().into_iter().collect::<BTreeSet<_>>();
    let (mut caps_added, caps_removed) = added_removed(&caps(old), &caps(new));
    // A new mutation is the first thing a reviewer must see.
    caps_added.sort_by_key(|c| !c.is_mutating());
    let imports = |p: &Policy| p.import_report.policy_interfaces.iter().cloned().collect::<BTreeSet<_>>();
    let (imports_added, imports_removed) = added_removed(&imports(old), &imports(new));
    let keys = |p: &Policy| p.manifest.config.keys().cloned().collect::<BTreeSet<_>>();
    let (config_added, config_removed) = added_removed(&keys(old), &keys(new));
    let config_changed: Vec<Value> = nm
        .config
        .iter()
        .filter_map(|(k, field)| om.config.get(k).filter(|before| *before != field).map(|before| json!({"key": k, "before": before, "after": field})))
        .collect();
    let slots_changed: Vec<Value> = nm
        .gates
        .iter()
        .filter(|(slot, gate)| om.gates.get(*slot) != Some(gate))
        .map(|(slot, gate)| json!({"slot": slot, "before": om.gates.get(slot).map(|g| &g.default), "after": gate.default}))
        .chain(om.gates.keys().filter(|s| !nm.gates.contains_key(*s)).map(|slot| json!({"slot": slot, "before": om.gates[slot].default, "after": null})))
        .collect();
    let pattern_slots_changed: Vec<Value> = nm
        .patterns
        .iter()
        .filter(|(slot, pattern)| om.patterns.get(*slot) != Some(pattern))
        .map(|(slot, pattern)| json!({"slot": slot, "before": om.patterns.get(slot).map(|p| &p.default), "after": pattern.default}))
        .chain(
            om.patterns.keys().filter(|s| !nm.patterns.contains_key(*s)).map(|slot| json!({"slot": slot, "before": om.patterns[slot].default, "after": null})),
        )
        .collect();
    let step_names = |p: &Policy| p.manifest.steps.iter().map(|s| s.name.clone()).collect::<Vec<_>>();
    json!({
        "name": nm.name,
        "old": {"name": om.name, "version": om.version, "digest": old.digest},
        "new": {"version": nm.version, "digest": new.digest},
        "capabilities_added": caps_added.iter().map(|c| json!({"capability": c.to_string(), "mutating": c.is_mutating()})).collect::<Vec<_>>(),
        "capabilities_removed": caps_removed.iter().map(ToString::to_string).collect::<Vec<_>>(),
        "world": (om.world != nm.world).then(|| json!({"before": om.world, "after": nm.world})),
        "imports_added": imports_added,
        "imports_removed": imports_removed,
        "config_added": config_added,
        "config_removed": config_removed,
        "config_changed": config_changed,
        "gate_slots_changed": slots_changed,
        "pattern_slots_changed": pattern_slots_changed,
        "steps": (step_names(old) != step_names(new)).then(|| json!({"before": step_names(old), "after": step_names(new)})),
        "rollback": (om.rollback != nm.rollback).then(|| json!({"before": om.rollback, "after": nm.rollback})),
        "description_changed": om.description != nm.description,
        "code_changed": old.digest != new.digest,
    })
}

//! Binding a pattern's pattern slots before the run starts: the manifest's
//! `[patterns.<slot>]` defaults, rebound by the operator's `--pattern
//! SLOT=NAME|FILE` (or `SLOT/INNER=...` for a slot of the pattern bound to
//! `SLOT`), each bound pattern's own slots bound to its manifest's defaults,
//! down to [`MAX_DEPTH`]. Every component is loaded here, so a slot bound
//! to a file that is not a pattern fails the run before anything runs.

use std::collections::BTreeMap;

use super::builder::bind_gates;
use super::{Failure, load_policy};
use crate::caps::Capability;
use crate::engine::BoundPattern;
use crate::imports::MAX_DEPTH;
use crate::policy::{Policy, World, config};

/// The pattern for every pattern slot of `policy`, and theirs in turn.
pub(super) fn bind_patterns(policy: &Policy, overrides: &[String]) -> Result<BTreeMap<String, BoundPattern>, Failure> {
    let overrides: Vec<(String, String)> =
        overrides.iter().map(|text| config::split_pair(text).map_err(|e| Failure::bad_input(format!("--pattern: {e}")))).collect::<Result<_, _>>()?;
    bind(policy, &overrides, 1, None)
}

/// Bind `policy`'s slots, which run at `depth` (the run's own pattern's at 1),
/// under slot path `under`; `overrides` are paths relative to `policy`.
fn bind(policy: &Policy, overrides: &[(String, String)], depth: usize, under: Option<&str>) -> Result<BTreeMap<String, BoundPattern>, Failure> {
    let slots = &policy.manifest.patterns;
    let path_of = |slot: &str| under.map_or_else(|| slot.to_string(), |under| format!("{under}/{slot}"));
    for (path, _) in overrides {
        let first = path.split('/').next().unwrap_or_default();
        if !slots.contains_key(first) {
            let known = if slots.is_empty() { "it has none".to_string() } else { slots.keys().cloned().collect::<Vec<_>>().join(", ") };
            return Err(Failure::bad_input(format!("--pattern: `{}` has no pattern slot `{}` (slots: {known})", policy.name(), path_of(first))));
        }
    }
    if depth > MAX_DEPTH {
        // Deeper slots stay unbound: a call to one is refused with `invalid` at run time.
        if let Some((path, _)) = overrides.first() {
            return Err(Failure::bad_input(format!("--pattern: `{}` is deeper than patterns nest ({MAX_DEPTH})", path_of(path))));
        }
        return Ok(BTreeMap::new());
    }
    slots
        .iter()
        .map(|(slot, declared)| {
            let path = path_of(slot);
            let chosen = overrides.iter().rev().find(|(p, _)| p == slot).map_or(declared.default.as_str(), |(_, pattern)| pattern.as_str());
            let bound = load_policy(chosen).map_err(|f| Failure::new(f.exit, format!("pattern slot `{path}`: {}", f.message)))?;
            if bound.manifest.world != World::Pattern {
                return Err(Failure::bad_input(format!("pattern slot `{path}`: `{}` is a {}, not a pattern", bound.name(), bound.manifest.world)));
            }
            let inner: Vec<(String, String)> = overrides
                .iter()
                .filter_map(|(p, pattern)| {
                    p.strip_prefix(slot.as_str()).and_then(|rest| rest.strip_prefix('/')).map(|rest| (rest.to_string(), pattern.clone()))
                })
                .collect();
            let gates = bind_gates(&bound, &[]).map_err(|f| Failure::bad_input(format!("pattern slot `{path}`: {}", f.message)))?;
            let patterns = bind(&bound, &inner, depth + 1, Some(&path))?;
            Ok((slot.clone(), BoundPattern { policy: bound, gates, patterns }))
        })
        .collect()
}

/// Slot path → the pattern bound there, for the journal's header.
pub(super) fn slot_names(slots: &BTreeMap<String, BoundPattern>) -> BTreeMap<String, String> {
    let mut names = BTreeMap::new();
    collect_names(slots, None, &mut names);
    names
}

fn collect_names(slots: &BTreeMap<String, BoundPattern>, under: Option<&str>, names: &mut BTreeMap<String, String>) {
    for (slot, bound) in slots {
        let path = under.map_or_else(|| slot.clone(), |under| format!("{under}/{slot}"));
        names.insert(path.clone(), bound.policy.name().to_string());
        collect_names(&bound.patterns, Some(&path), names);
    }
}

/// What `policy` and every pattern bound below it request, each once.
pub(super) fn requested_by_all(policy: &Policy, slots: &BTreeMap<String, BoundPattern>) -> Vec<Capability> {
    let mut all = policy.manifest.requested();
    let mut stack: Vec<&BoundPattern> = slots.values().collect();
    while let Some(bound) = stack.pop() {
        for cap in bound.policy.manifest.requested() {
            if !all.contains(&cap) {
                all.push(cap);
            }
        }
        stack.extend(bound.patterns.values());
    }
    all
}

//! A switch served by a Gateway API `HTTPRoute`, through the target's
//! Kubernetes API ([`Kube`]). Its backends are the `backendRefs` of all its
//! rules, by Service name (weight 1 when unset, as the Gateway API says);
//! a name in several rules is one backend, and a change sets every
//! backendRef of that name.
//!
//! The generation is `metadata.generation`, not `resourceVersion`: a
//! route's status is written by its controller (the lab's front door
//! writes `status.parents`), which moves resourceVersion without anything
//! a switch cares about changing. A write still carries the
//! resourceVersion just read (a merge patch with `metadata.resourceVersion`
//! is a precondition), so nothing between the read and the write is lost;
//! a 409 from a status update in between is retried after a new read, as
//! long as the generation is the one the change was asked at.

use std::sync::Arc;

use serde_json::{Value, json};

use super::{BackendWeight, SwitchDocument, SwitchKind, SwitchServer, SwitchState};
use crate::backends::{BackendError, BackendResult, ErrorCode, Kube, ObjectRef, PatchType};

/// The Gateway API version the route is read and written at.
pub const API_VERSION: &str = "gateway.networking.k8s.io/v1";

/// Writes retried after a 409 that moved only the route's status.
const RETRIES: u32 = 5;

/// One HTTPRoute.
pub struct HttpRouteSwitch {
    kube: Arc<dyn Kube>,
    route: ObjectRef,
}

impl HttpRouteSwitch {
    /// The route `name` in `namespace` (`None`: the target's default), through `kube`.
    pub fn new(kube: Arc<dyn Kube>, namespace: Option<String>, name: String) -> Self {
        HttpRouteSwitch { kube, route: ObjectRef { api_version: API_VERSION.into(), kind: "HTTPRoute".into(), namespace, name } }
    }

    fn parse(&self, text: &str) -> BackendResult<SwitchState> {
        let doc: Value = serde_json::from_str(text)
            .map_err(|e| BackendError::new(ErrorCode::Internal, format!("HTTPRoute {}: the answer is not JSON ({e})", self.route.name)))?;
        state_of(&doc).map_err(|e| BackendError::new(ErrorCode::Internal, format!("HTTPRoute {}: {e}", self.route.name)))
    }
}

/// The backendRefs of every rule, in order.
fn refs(doc: &Value) -> impl Iterator<Item = &Value> {
    let rules = doc.pointer("/spec/rules").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    rules.iter().flat_map(|rule| rule.get("backendRefs").and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default())
}

/// A switch state from an HTTPRoute object as the API server returns it.
pub fn state_of(doc: &Value) -> Result<SwitchState, String> {
    let generation = doc.pointer("/metadata/generation").and_then(Value::as_i64).ok_or("no metadata.generation")?;
    let mut backends: Vec<BackendWeight> = Vec::new();
    for r in refs(doc) {
        let name = r.get("name").and_then(Value::as_str).ok_or("a backendRef without a name")?;
        if backends.iter().any(|b| b.name == name) {
            continue;
        }
        let weight = r.get("weight").map_or(Some(1), Value::as_u64).and_then(|w| u32::try_from(w).ok()).ok_or_else(|| format!("backendRef {name}: weight"))?;
        backends.push(BackendWeight { name: name.to_string(), weight, enabled: weight > 0 });
    }
    Ok(SwitchState { backends, generation: generation.to_string(), writer: false, document: SwitchDocument::HttpRoute(doc.clone()) })
}

/// The route's `spec.rules` with `next`'s weights on every backendRef of each name.
fn rules_with(doc: &Value, next: &[BackendWeight]) -> Value {
    let mut rules = doc.pointer("/spec/rules").cloned().unwrap_or_else(|| json!([]));
    for rule in rules.as_array_mut().into_iter().flatten() {
        for r in rule.get_mut("backendRefs").and_then(Value::as_array_mut).into_iter().flatten() {
            if let Some(b) = r.get("name").and_then(Value::as_str).and_then(|name| next.iter().find(|b| b.name == name)) {
                r["weight"] = json!(b.weight);
            }
        }
    }
    rules
}

#[async_trait::async_trait]
impl SwitchServer for HttpRouteSwitch {
    fn kind(&self) -> SwitchKind {
        SwitchKind::HttpRoute
    }

    async fn read(&self) -> BackendResult<SwitchState> {
        let text = self.kube.get(&self.route).await?;
        self.parse(&text)
    }

    async fn write(&self, read: &SwitchState, next: &[BackendWeight]) -> BackendResult<SwitchState> {
        let SwitchDocument::HttpRoute(first) = &read.document else {
            return Err(BackendError::new(ErrorCode::Internal, "an HTTPRoute switch was handed another kind's state"));
        };
        let mut doc = first.clone();
        let mut tries = 0;
        loop {
            let rv = doc.pointer("/metadata/resourceVersion").cloned().unwrap_or(Value::Null);
            // The whole `rules` list: a merge patch replaces a list, and only the weights differ.
            let patch = json!({"metadata": {"resourceVersion": rv}, "spec": {"rules": rules_with(&doc, next)}});
            match self.kube.patch(&self.route, PatchType::Merge, &patch.to_string()).await {
                Ok(text) => return self.parse(&text),
                Err(e) if e.code == ErrorCode::Conflict && tries < RETRIES => {
                    tries += 1;
                    let now = self.read().await?;
                    if now.generation != read.generation {
                        return Err(BackendError::new(
                            ErrorCode::Conflict,
                            format!("HTTPRoute {} went from generation {} to {} while it was written", self.route.name, read.generation, now.generation),
                        ));
                    }
                    // Only its status moved: the same change, on what is there now.
                    let SwitchDocument::HttpRoute(again) = now.document else { unreachable!("read answers an HTTPRoute") };
                    doc = again;
                }
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_route_reads_its_backend_refs_by_name() {
        let doc = json!({
            "metadata": {"generation": 3, "resourceVersion": "77"},
            "spec": {"rules": [
                {"backendRefs": [{"name": "blue", "port": 80, "weight": 100}, {"name": "green", "port": 80, "weight": 0}]},
                {"matches": [{"path": {"value": "/api"}}], "backendRefs": [{"name": "blue", "port": 80, "weight": 100}, {"name": "canary", "port": 80}]},
            ]},
        });
        let state = state_of(&doc).unwrap();
        assert_eq!(state.generation, "3", "the generation, not the resourceVersion");
        let names: Vec<(&str, u32, bool)> = state.backends.iter().map(|b| (b.name.as_str(), b.weight, b.enabled)).collect();
        assert_eq!(names, [("blue", 100, true), ("green", 0, false), ("canary", 1, true)]);
        let next = [BackendWeight { name: "blue".into(), weight: 0, enabled: false }, BackendWeight { name: "green".into(), weight: 100, enabled: true }];
        let rules = rules_with(&doc, &next);
        assert_eq!(rules[0]["backendRefs"][0]["weight"], 0);
        assert_eq!(rules[0]["backendRefs"][1]["weight"], 100);
        assert_eq!(rules[1]["backendRefs"][0]["weight"], 0, "every backendRef of that name");
        assert_eq!(rules[1]["backendRefs"][1].get("weight"), None, "the others as they were");
        assert_eq!(rules[1]["matches"], doc["spec"]["rules"][1]["matches"]);
        assert!(state_of(&json!({"spec": {}})).is_err());
    }
}

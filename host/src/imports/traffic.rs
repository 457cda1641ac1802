//! `traffic-read` and `traffic-write`: the target's weighted traffic
//! switches. Capability `traffic:read:<switch>` for `weights` and
//! `observe`, `traffic:set-weights:<switch>` for a change; the scope is the
//! switch's name (`frontdoor`), checked as a DNS-1123 label as the target
//! file's keys are.
//!
//! A dry run answers `set-weights` with a plan and writes nothing: the
//! previous state is the generation the change was asked at with no
//! backends (nothing was read), the current one the requested weights at
//! generation `dry-run`. A real change is journaled with the switch's
//! weights before and after on its `ok` line (`answer`), so that the run's
//! journal says exactly what to put back.
//!
//! Sessions keep the answers in the upstreams' shapes: a state read from an
//! HTTPRoute as `{"httpRoute": <the object as the API server returned
//! it>, "writer": false}` (a bare HTTPRoute object, as `kubectl get -o
//! json` prints it, reads too), one read from Traffic Manager as
//! `{"etag": "<ETag header>", "profile": <the profile document>, "writer":
//! false}`; a change as `{"previous": ..., "current": ...}` of those; an
//! observation as the WIT record in JSON (`{"requests": 10, "succeeded":
//! 10, "statuses": [[200, 10]], "backends": [["green", 10]],
//! "body-matches": 10, "p50-ms": 1, "p99-ms": 2, "max-ms": 2}`).

use serde_json::{Value, json};

use super::{Checked, Effect, HostState};
use crate::backends::traffic::{httproute, trafficmanager};
use crate::backends::{BackendError, ErrorCode};
use crate::domain::names;
use crate::domain::traffic::{self as host, BackendWeight, SwitchDocument};
use crate::session::Answer;
use crate::wit::Error;
use crate::wit::pattern::runner::policy::traffic_read::{self, HttpObservation, HttpRequests, SwitchState};
use crate::wit::pattern::runner::policy::traffic_write::{self, SwitchChange};

type Reply<T> = wasmtime::Result<Result<T, Error>>;

/// The scope of a call on one switch, once its name is checked.
fn switch_scope(switch: &str) -> Checked<'_> {
    names::label("switch name", switch)?;
    Ok(switch)
}

fn weight_json(b: &BackendWeight) -> Value {
    json!({"name": b.name, "weight": b.weight, "enabled": b.enabled})
}

fn weights_json(backends: &[BackendWeight]) -> Value {
    json!(backends.iter().map(weight_json).collect::<Vec<_>>())
}

fn weights_from(value: &Value) -> Result<Vec<BackendWeight>, String> {
    let items = value.as_array().ok_or_else(|| format!("backends are a list of {{name, weight, enabled}}, found {value}"))?;
    items
        .iter()
        .map(|b| {
            let name = b["name"].as_str().ok_or_else(|| format!("a backend needs its name, found {b}"))?;
            let weight = b["weight"].as_u64().and_then(|w| u32::try_from(w).ok()).ok_or_else(|| format!("backend {name}: weight"))?;
            Ok(BackendWeight { name: name.to_string(), weight, enabled: b["enabled"].as_bool().unwrap_or(weight > 0) })
        })
        .collect()
}

impl traffic_read::Host for HostState {
    async fn weights(&mut self, switch: String) -> Reply<SwitchState> {
        let traffic = self.backends().traffic.clone();
        let answer = self
            .guarded("traffic-read.weights", switch_scope(&switch), || json!({"switch": switch}), Effect::Read, async { traffic.weights(&switch).await })
            .await?;
        Ok(answer.map(Into::into))
    }

    async fn observe(&mut self, switch: String, backend: Option<String>, requests: HttpRequests) -> Reply<HttpObservation> {
        let traffic = self.backends().traffic.clone();
        let scope = match &backend {
            Some(name) => host::backend_name(name).and_then(|()| switch_scope(&switch)),
            None => switch_scope(&switch),
        };
        let requests: host::HttpRequests = requests.into();
        let args = || {
            json!({
                "switch": switch, "backend": backend, "path": requests.path, "count": requests.count,
                "intervalMs": requests.interval_ms, "timeoutMs": requests.timeout_ms, "bodyContains": requests.body_contains,
            })
        };
        // Many slow requests could outlast the component: they end at its deadline, as a sleep does.
        let deadline = self.deadline;
        let answer = self
            .guarded("traffic-read.observe", scope, args, Effect::Read, async {
                match tokio::time::timeout_at(deadline.into(), traffic.observe(&switch, backend.as_deref(), &requests)).await {
                    Ok(answer) => answer,
                    Err(_) => Err(BackendError::new(ErrorCode::Timeout, format!("observe {switch}: the component's deadline came before the requests ended"))),
                }
            })
            .await?;
        Ok(answer.map(Into::into))
    }
}

impl traffic_write::Host for HostState {
    async fn set_weights(&mut self, switch: String, weights: Vec<traffic_read::BackendWeight>, generation: String) -> Reply<SwitchChange> {
        let traffic = self.backends().traffic.clone();
        let weights: Vec<BackendWeight> = weights.into_iter().map(Into::into).collect();
        let scope = weights.iter().try_for_each(|b| host::backend_name(&b.name)).and_then(|()| switch_scope(&switch));
        let args = || json!({"switch": switch, "weights": weights_json(&weights), "generation": generation});
        // Nothing is read under a dry run: the plan is the change as asked.
        let planned = host::SwitchChange {
            previous: host::SwitchState { backends: Vec::new(), generation: generation.clone(), writer: false, document: SwitchDocument::Planned },
            current: host::SwitchState { backends: weights.clone(), generation: "dry-run".into(), writer: false, document: SwitchDocument::Planned },
        };
        let answer = self
            .guarded("traffic-write.set-weights", scope, args, Effect::Mutate { dry_run_answer: planned }, async {
                traffic.set_weights(&switch, &weights, &generation).await
            })
            .await?;
        Ok(answer.map(Into::into))
    }
}

/// Sessions keep a state in its upstream's shape (see the module's documentation).
impl Answer for host::SwitchState {
    fn to_json(&self) -> Value {
        match &self.document {
            SwitchDocument::HttpRoute(route) => json!({"httpRoute": route, "writer": self.writer}),
            SwitchDocument::TrafficManager { etag, profile } => json!({"etag": etag, "profile": profile, "writer": self.writer}),
            SwitchDocument::Planned => json!({"planned": {"backends": weights_json(&self.backends), "generation": self.generation}, "writer": self.writer}),
        }
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        let writer = value.get("writer").and_then(Value::as_bool).unwrap_or(false);
        let mut state = if let Some(route) = value.get("httpRoute") {
            httproute::state_of(route).map_err(|e| format!("HTTPRoute: {e}"))?
        } else if value.get("kind").and_then(Value::as_str) == Some("HTTPRoute") {
            httproute::state_of(value).map_err(|e| format!("HTTPRoute: {e}"))?
        } else if let (Some(etag), Some(profile)) = (value.get("etag").and_then(Value::as_str), value.get("profile")) {
            trafficmanager::state_of(etag, profile).map_err(|e| format!("Traffic Manager profile: {e}"))?
        } else if let Some(planned) = value.get("planned") {
            host::SwitchState {
                backends: weights_from(&planned["backends"])?,
                generation: planned["generation"].as_str().unwrap_or_default().to_string(),
                writer,
                document: SwitchDocument::Planned,
            }
        } else {
            return Err(format!(
                "a switch is {{\"httpRoute\": <HTTPRoute>}}, an HTTPRoute object, or {{\"etag\": ..., \"profile\": <Traffic Manager profile>}}; found {}",
                super::truncate(value.to_string(), 200, "...")
            ));
        };
        state.writer = writer;
        Ok(state)
    }
}

/// A change as `{"previous": ..., "current": ...}`; its journal line keeps both sides' weights.
impl Answer for host::SwitchChange {
    fn to_json(&self) -> Value {
        json!({"previous": self.previous.to_json(), "current": self.current.to_json()})
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        let side = |key: &str| value.get(key).ok_or_else(|| format!("a switch change needs `{key}`")).and_then(host::SwitchState::from_json);
        Ok(host::SwitchChange { previous: side("previous")?, current: side("current")? })
    }

    fn journaled(&self) -> Option<Value> {
        let side = |s: &host::SwitchState| json!({"generation": s.generation, "backends": weights_json(&s.backends)});
        Some(json!({"previous": side(&self.previous), "current": side(&self.current)}))
    }
}

/// An observation as the WIT record, in JSON.
impl Answer for host::HttpObservation {
    fn to_json(&self) -> Value {
        json!({
            "requests": self.requests, "succeeded": self.succeeded, "statuses": self.statuses, "backends": self.backends,
            "body-matches": self.body_matches, "p50-ms": self.p50_ms, "p99-ms": self.p99_ms, "max-ms": self.max_ms,
        })
    }

    fn from_json(value: &Value) -> Result<Self, String> {
        let n = |key: &str| value.get(key).and_then(Value::as_u64).and_then(|n| u32::try_from(n).ok()).unwrap_or(0);
        let statuses =
            serde_json::from_value(value.get("statuses").cloned().unwrap_or(json!([]))).map_err(|e| format!("statuses are [[status, count], ...]: {e}"))?;
        let backends =
            serde_json::from_value(value.get("backends").cloned().unwrap_or(json!([]))).map_err(|e| format!("backends are [[name, count], ...]: {e}"))?;
        if value.get("requests").and_then(Value::as_u64).is_none() {
            return Err(format!("an observation needs `requests`, found {}", super::truncate(value.to_string(), 200, "...")));
        }
        Ok(host::HttpObservation {
            requests: n("requests"),
            succeeded: n("succeeded"),
            statuses,
            backends,
            body_matches: n("body-matches"),
            p50_ms: n("p50-ms"),
            p99_ms: n("p99-ms"),
            max_ms: n("max-ms"),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn traffic_answers_survive_a_session_in_upstream_shapes() {
        let route = json!({"apiVersion": "gateway.networking.k8s.io/v1", "kind": "HTTPRoute", "metadata": {"name": "frontdoor", "generation": 4, "resourceVersion": "9"},
            "spec": {"rules": [{"backendRefs": [{"name": "blue", "weight": 100}, {"name": "green", "weight": 0}]}]}});
        let state = httproute::state_of(&route).unwrap();
        let json = state.to_json();
        assert_eq!(json["httpRoute"], route, "the object as the API server returned it");
        assert_eq!(host::SwitchState::from_json(&json).unwrap(), state);
        assert_eq!(host::SwitchState::from_json(&route).unwrap(), state, "a bare HTTPRoute object reads too");
        let profile = json!({"properties": {"trafficRoutingMethod": "Weighted", "endpoints": [{"name": "blue", "properties": {"weight": 3, "endpointStatus": "Disabled"}}]}});
        let mut tm = trafficmanager::state_of("\"e1\"", &profile).unwrap();
        tm.writer = true;
        let json = tm.to_json();
        assert_eq!((json["etag"].as_str(), &json["profile"]), (Some("\"e1\""), &profile));
        assert_eq!(host::SwitchState::from_json(&json).unwrap(), tm);
        let change = host::SwitchChange { previous: state.clone(), current: tm };
        assert_eq!(host::SwitchChange::from_json(&change.to_json()).unwrap(), change);
        let line = change.journaled().unwrap();
        assert_eq!(line["previous"]["generation"], "4");
        assert_eq!(line["previous"]["backends"][0], json!({"name": "blue", "weight": 100, "enabled": true}), "what to put back");
        let observed = host::HttpObservation {
            requests: 3,
            succeeded: 2,
            statuses: vec![(0, 1), (200, 2)],
            backends: vec![("green".into(), 2)],
            body_matches: 2,
            p50_ms: 1,
            p99_ms: 4,
            max_ms: 4,
        };
        assert_eq!(host::HttpObservation::from_json(&observed.to_json()).unwrap(), observed);
        assert!(host::SwitchState::from_json(&json!({"weights": []})).is_err());
    }
}

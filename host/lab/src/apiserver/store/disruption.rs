//! Disruption: PodDisruptionBudget status, kept current after every change
//! that can move it, and the eviction subresource, which checks the budget
//! and deletes the Pod under the same lock so two evictions cannot both
//! spend the last allowed disruption.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::delete::DeleteOpts;
use super::events::EventType;
use super::{COMPONENT, State, Store, is_terminating, meta_str, name_of, ns_of};
use crate::apiserver::error::ApiError;
use crate::apiserver::kinds;
use crate::apiserver::resources;
use crate::apiserver::selector::LabelSelector;
use crate::apiserver::time;

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn scaled(v: &Value, total: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => kinds::parse_percent(s).map(|p| (p * total + 99) / 100),
        _ => None,
    }
}

impl Store {
    pub(crate) fn evict_res(&self, ns: &str, name: &str, body: &Value) -> Result<Value, ApiError> {
        self.lock().evict(ns, name, body)
    }
}

impl State {
    fn pods_in(&self, ns: &str) -> Vec<Arc<Value>> {
        let pod_res = resources::by_kind("v1", "Pod").expect("pods");
        self.objects[resources::index(pod_res)].iter().filter(|((ons, _), _)| ons == ns).map(|(_, v)| v.clone()).collect()
    }

    /// The scale of the controllers of `pods` (StatefulSet and ReplicaSet replicas, Job
    /// parallelism, DaemonSet desired count); a Pod with no controller counts as 1.
    fn expected_count(&self, ns: &str, pods: &[Arc<Value>]) -> i64 {
        let mut seen = HashSet::new();
        let mut total = 0;
        for pod in pods {
            let owner =
                pod.pointer("/metadata/ownerReferences").and_then(Value::as_array).and_then(|refs| refs.iter().find(|r| r["controller"] == true).cloned());
            let Some(owner) = owner else {
                total += 1;
                continue;
            };
            let uid = owner["uid"].as_str().unwrap_or_default().to_string();
            if !seen.insert(uid.clone()) {
                continue;
            }
            let api_version = owner["apiVersion"].as_str().unwrap_or_default();
            let kind = owner["kind"].as_str().unwrap_or_default();
            let name = owner["name"].as_str().unwrap_or_default();
            let ctrl = resources::by_kind(api_version, kind).and_then(|r| self.get(r, ns, name));
            total += match (kind, ctrl) {
                ("StatefulSet" | "ReplicaSet", Some(c)) => c.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
                ("Job", Some(c)) => c.pointer("/spec/parallelism").and_then(Value::as_i64).unwrap_or(1),
                ("DaemonSet", Some(c)) => c.pointer("/status/desiredNumberScheduled").and_then(Value::as_i64).unwrap_or(0),
                _ => pods
                    .iter()
                    .filter(|p| {
                        p.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()))
                    })
                    .count() as i64,
            };
        }
        total
    }

    /// The status a PodDisruptionBudget should have now.
    fn pdb_status(&self, pdb: &Value) -> Value {
        let ns = ns_of(pdb);
        let selector = LabelSelector::from_object(pdb.pointer("/spec/selector")).unwrap_or_else(|_| LabelSelector::from_object(None).expect("null selector"));
        let pods: Vec<Arc<Value>> = self.pods_in(&ns).into_iter().filter(|p| selector.matches_object(p)).collect();
        let healthy = pods.iter().filter(|p| is_ready(p) && !is_terminating(p)).count() as i64;
        let spec = &pdb["spec"];
        let min = spec.get("minAvailable").filter(|v| !v.is_null());
        let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
        let (expected, desired) = match (min, max) {
            (Some(Value::Number(n)), _) => (pods.len() as i64, n.as_i64().unwrap_or(0)),
            (Some(v), _) => {
                let expected = self.expected_count(&ns, &pods);
                (expected, scaled(v, expected).unwrap_or(0))
            }
            (None, Some(v)) => {
                let expected = self.expected_count(&ns, &pods);
                (expected, (expected - scaled(v, expected).unwrap_or(0)).max(0))
            }
            (None, None) => (pods.len() as i64, 0),
        };
        let allowed = if expected <= 0 { 0 } else { (healthy - desired).max(0) };
        let generation = pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
        let cond_status = if allowed > 0 { "True" } else { "False" };
        let old_cond = pdb.pointer("/status/conditions").and_then(Value::as_array).and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionAllowed").cloned());
        let transition = match &old_cond {
            Some(c) if c["status"] == cond_status => c["lastTransitionTime"].clone(),
            _ => json!(time::now_rfc3339()),
        };
        let mut status = json!({
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": [{
                "type": "DisruptionAllowed",
                "status": cond_status,
                "reason": if allowed > 0 { "SufficientPods" } else { "InsufficientPods" },
                "message": "",
                "observedGeneration": generation,
                "lastTransitionTime": transition,
            }],
        });
        if let Some(d) = pdb.pointer("/status/disruptedPods") {
            status["disruptedPods"] = d.clone();
        }
        status
    }

    pub(super) fn refresh_pdbs(&mut self, ns: &str) {
        let pdb_res = resources::by_kind("policy/v1", "PodDisruptionBudget").expect("pdbs");
        let pdbs: Vec<Arc<Value>> = self.objects[resources::index(pdb_res)].iter().filter(|((ons, _), _)| ons == ns).map(|(_, v)| v.clone()).collect();
        for pdb in pdbs {
            let status = self.pdb_status(&pdb);
            if pdb.get("status") != Some(&status) {
                let mut new = (*pdb).clone();
                new["status"] = status;
                self.commit(pdb_res, EventType::Modified, new, Some(pdb));
            }
        }
    }

    fn evict(&mut self, ns: &str, name: &str, body: &Value) -> Result<Value, ApiError> {
        let pod_res = resources::by_kind("v1", "Pod").expect("pods");
        let pod = self.get(pod_res, ns, name).cloned().ok_or_else(|| ApiError::not_found("", "pods", name))?;
        if let Some(k) = body.get("kind").and_then(Value::as_str)
            && k != "Eviction"
        {
            return Err(ApiError::bad_request(format!("the body must be an Eviction, not a {k}")));
        }
        if let Some(n) = meta_str(body, "name")
            && n != name
        {
            return Err(ApiError::bad_request("name in URL does not match name in Eviction object"));
        }
        let del = body.get("deleteOptions").cloned().unwrap_or(Value::Null);
        let opts = DeleteOpts {
            grace_period_seconds: del.get("gracePeriodSeconds").and_then(Value::as_i64),
            precondition_uid: del.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string),
            precondition_rv: del.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string),
            propagation: None,
            dry_run: del.get("dryRun").and_then(Value::as_array).is_some_and(|a| !a.is_empty()),
        };
        let success = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
        let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
        if is_terminating(&pod) || matches!(phase, "Succeeded" | "Failed" | "Pending") {
            self.delete(pod_res, Some(ns), name, &opts)?;
            return Ok(success);
        }
        let pdb_res = resources::by_kind("policy/v1", "PodDisruptionBudget").expect("pdbs");
        let pdbs: Vec<Arc<Value>> = self.objects[resources::index(pdb_res)]
            .iter()
            .filter(|((ons, _), _)| ons == ns)
            .map(|(_, v)| v.clone())
            .filter(|pdb| LabelSelector::from_object(pdb.pointer("/spec/selector")).is_ok_and(|s| s.matches_object(&pod)))
            .collect();
        if pdbs.len() > 1 {
            return Err(ApiError::internal("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."));
        }
        if let Some(pdb) = pdbs.first() {
            let status = self.pdb_status(pdb);
            let current = status["currentHealthy"].as_i64().unwrap_or(0);
            let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
            let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
            let pdb_name = name_of(pdb);
            let policy = pdb.pointer("/spec/unhealthyPodEvictionPolicy").and_then(Value::as_str).unwrap_or("IfHealthyBudget");
            let unhealthy_ok = !is_ready(&pod) && (policy == "AlwaysAllow" || current >= desired);
            if !unhealthy_ok && allowed <= 0 {
                let cause = format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {current} currently");
                if !opts.dry_run {
                    self.record_event(
                        &pod,
                        "Warning",
                        "EvictionBlocked",
                        &format!("Cannot evict pod as it would violate the pod's disruption budget {pdb_name}: needs {desired} healthy pods and has {current}"),
                        COMPONENT,
                    );
                }
                return Err(ApiError::new(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.")
                    .with_details(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]})));
            }
        }
        self.delete(pod_res, Some(ns), name, &opts)?;
        if !opts.dry_run {
            let evicted = self.get(pod_res, ns, name).cloned().unwrap_or(pod);
            self.record_event(&evicted, "Normal", "Evicted", "Evicted by the eviction API (policy/v1 Eviction)", COMPONENT);
        }
        Ok(success)
    }
}

//! The scheduler: binds each unscheduled Pod to a Ready, schedulable Node
//! that matches its nodeSelector, the least loaded first; when none fits, the
//! Pod stays Pending with the reason, as kube-scheduler reports it.

use serde_json::{Value, json};

use super::reconciler::{Kind, Reconciler, Related};
use super::{name, namespace, now, terminating};
use crate::apiserver::Store;

/// Whether a Node can take new Pods.
fn schedulable(node: &Value) -> bool {
    let ready = node["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"));
    ready && node["spec"]["unschedulable"].as_bool() != Some(true)
}

fn matches_selector(pod: &Value, node: &Value) -> bool {
    pod["spec"]["nodeSelector"].as_object().is_none_or(|selector| selector.iter().all(|(k, v)| node["metadata"]["labels"][k] == *v))
}

/// Why no Node fits, in kube-scheduler's words.
fn unschedulable_message(pod: &Value, nodes: &[Value]) -> String {
    let not_ready =
        nodes.iter().filter(|n| !n["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))).count();
    let cordoned = nodes.iter().filter(|n| n["spec"]["unschedulable"].as_bool() == Some(true)).count();
    let mismatched = nodes.iter().filter(|n| !matches_selector(pod, n)).count();
    let mut reasons = Vec::new();
    if mismatched > 0 {
        reasons.push(format!("{mismatched} node(s) didn't match Pod's node affinity/selector"));
    }
    if cordoned > 0 {
        reasons.push(format!("{cordoned} node(s) were unschedulable"));
    }
    if not_ready > 0 {
        reasons.push(format!("{not_ready} node(s) had untolerated taint {{node.kubernetes.io/not-ready: }}"));
    }
    format!("0/{} nodes are available: {}.", nodes.len(), reasons.join(", "))
}

/// Binds Pods to Nodes.
pub struct Scheduler;

impl Reconciler for Scheduler {
    const KIND: Kind = ("v1", "Pod");
    /// A Node that turns Ready, or is uncordoned, may take a Pending Pod.
    const RELATED: &'static [(Kind, Related)] = &[(("v1", "Node"), Related::All)];

    fn name(&self) -> &'static str {
        "scheduler"
    }

    async fn reconcile(&mut self, store: &Store, pod: &Value) -> anyhow::Result<()> {
        if !pod["spec"]["nodeName"].as_str().unwrap_or_default().is_empty() || terminating(pod) {
            return Ok(());
        }
        let pods = store.list("v1", "Pod", None, None)?;
        let nodes = store.list("v1", "Node", None, None)?;
        let candidates: Vec<&Value> = nodes.iter().filter(|n| schedulable(n) && matches_selector(pod, n)).collect();
        let load = |node: &Value| pods.iter().filter(|p| p["spec"]["nodeName"] == node["metadata"]["name"]).count();
        match candidates.into_iter().min_by_key(|n| (load(n), name(n).to_string())) {
            Some(node) => {
                let mut bound = pod.clone();
                bound["spec"]["nodeName"] = json!(name(node));
                let mut status = store.update(bound).map_err(|e| anyhow::anyhow!("binding to {}: {e}", name(node)))?;
                set_condition(&mut status, "PodScheduled", "True", "", "");
                store.update_status(status)?;
                tracing::debug!("scheduled {}/{} on {}", namespace(pod), name(pod), name(node));
            }
            None => {
                let message = unschedulable_message(pod, &nodes);
                let current = pod["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "PodScheduled")).map(|c| c["message"].clone());
                if current != Some(json!(message)) {
                    let mut status = pod.clone();
                    status["status"]["phase"] = json!("Pending");
                    set_condition(&mut status, "PodScheduled", "False", "Unschedulable", &message);
                    store.update_status(status)?;
                }
            }
        }
        Ok(())
    }
}

/// Set (or replace) a condition in `object.status.conditions`.
pub fn set_condition(object: &mut Value, condition_type: &str, status: &str, reason: &str, message: &str) {
    let conditions = object["status"]["conditions"].as_array().cloned().unwrap_or_default();
    let previous = conditions.iter().find(|c| c["type"] == condition_type);
    let transition = match previous {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(now()),
    };
    let mut condition = json!({"type": condition_type, "status": status, "lastTransitionTime": transition, "lastProbeTime": null});
    if !reason.is_empty() {
        condition["reason"] = json!(reason);
    }
    if !message.is_empty() {
        condition["message"] = json!(message);
    }
    let mut updated: Vec<Value> = conditions.into_iter().filter(|c| c["type"] != condition_type).collect();
    updated.push(condition);
    object["status"]["conditions"] = Value::Array(updated);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, pool: &str, ready: bool, cordoned: bool) -> Value {
        json!({"metadata": {"name": name, "labels": {"agentpool": pool}}, "spec": {"unschedulable": cordoned},
               "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}})
    }

    #[test]
    fn only_ready_uncordoned_matching_nodes() {
        let pod = json!({"spec": {"nodeSelector": {"agentpool": "upgraded-pool"}}});
        assert!(schedulable(&node("a", "x", true, false)));
        assert!(!schedulable(&node("a", "x", false, false)));
        assert!(!schedulable(&node("a", "x", true, true)));
        assert!(matches_selector(&pod, &node("a", "upgraded-pool", true, false)));
        assert!(!matches_selector(&pod, &node("a", "nodepool1", true, false)));
        let message = unschedulable_message(&pod, &[node("a", "nodepool1", true, false), node("b", "upgraded-pool", true, true)]);
        assert_eq!(message, "0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable.");
    }

    #[test]
    fn conditions_keep_their_transition_time() {
        let mut pod = json!({});
        set_condition(&mut pod, "Ready", "False", "", "");
        let first = pod["status"]["conditions"][0]["lastTransitionTime"].clone();
        set_condition(&mut pod, "Ready", "False", "", "still");
        assert_eq!(pod["status"]["conditions"][0]["lastTransitionTime"], first);
        assert_eq!(pod["status"]["conditions"].as_array().unwrap().len(), 1);
    }
}

//! The node lifecycle controller, after kube-controller-manager's: a Node
//! whose kubelet has not posted status for the node monitor grace period
//! gets `Ready=Unknown` (reason `NodeStatusUnknown`), the
//! `node.kubernetes.io/unreachable` taints, and its Pods' Ready condition set
//! to False, so PodDisruptionBudgets count them unhealthy, as after a
//! control-plane outage. When the kubelet posts again, the taints go; the
//! kubelet itself sets the Node and its Pods Ready again.
//!
//! As upstream, the controller times a heartbeat by when it saw it change
//! (its own clock), not by the time the kubelet wrote in it. Unlike
//! upstream, Pods are not evicted from an unreachable Node after their
//! `tolerationSeconds`: the lab's databases keep running there.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;

use super::scheduler::set_condition;
use super::{name, namespace, now};
use crate::apiserver::Store;

/// The taint key of a Node whose kubelet stopped posting status.
pub const UNREACHABLE_TAINT: &str = "node.kubernetes.io/unreachable";
/// The annotation that makes the lab's kubelet stop posting status for a
/// Node (any value but `false`), as if it lost the API server; removing it
/// resumes the heartbeats. `kubectl annotate node NAME lab.runner.dev/kubelet-stopped=true`.
pub const KUBELET_STOPPED: &str = "lab.runner.dev/kubelet-stopped";

const UNKNOWN_REASON: &str = "NodeStatusUnknown";
const UNKNOWN_MESSAGE: &str = "Kubelet stopped posting node status.";

/// Whether the lab's kubelet is told to stop posting status for `node`.
pub fn kubelet_stopped(node: &Value) -> bool {
    node["metadata"]["annotations"][KUBELET_STOPPED].as_str().is_some_and(|v| v != "false")
}

/// How often the kubelet posts a Node's status for a controller with this
/// grace period: four heartbeats per grace period (upstream: 10 s against
/// 40 s), at least one a second (the timestamps have whole seconds).
pub fn heartbeat_interval(grace_period: Duration) -> Duration {
    (grace_period / 4).clamp(Duration::from_secs(1), Duration::from_secs(10))
}

/// The controller: watches Node heartbeats and marks the silent ones.
pub struct NodeLifecycle {
    /// Where the Nodes and Pods are.
    pub store: Store,
    /// How long a Node may go without a heartbeat before it is Unknown.
    pub grace_period: Duration,
}

/// The last heartbeat seen of a Node, and when it was seen to change.
struct Observed {
    heartbeat: Value,
    at: Instant,
}

impl NodeLifecycle {
    /// Monitors the Nodes until `stopped`.
    pub async fn run(self, mut stopped: watch::Receiver<bool>) {
        let mut observed = BTreeMap::new();
        let period = (self.grace_period / 8).clamp(Duration::from_millis(200), Duration::from_secs(5));
        loop {
            tokio::select! {
                _ = stopped.wait_for(|s| *s) => return,
                _ = tokio::time::sleep(period) => self.monitor(&mut observed, Instant::now()),
            }
        }
    }

    fn monitor(&self, observed: &mut BTreeMap<String, Observed>, at: Instant) {
        let nodes = self.store.list("v1", "Node", None, None).unwrap_or_default();
        observed.retain(|node, _| nodes.iter().any(|n| name(n) == node));
        for node in nodes {
            let heartbeat = ready_condition(&node).map(|c| c["lastHeartbeatTime"].clone()).unwrap_or(Value::Null);
            let seen = observed.entry(name(&node).to_string()).or_insert_with(|| Observed { heartbeat: heartbeat.clone(), at });
            if seen.heartbeat != heartbeat {
                *seen = Observed { heartbeat, at };
            }
            let silent = at.duration_since(seen.at) > self.grace_period;
            let status = ready_condition(&node).and_then(|c| c["status"].as_str()).unwrap_or("Unknown").to_string();
            if silent && status != "Unknown" {
                self.mark_unknown(&node);
            }
            match status.as_str() {
                "True" if has_unreachable_taint(&node) => self.untaint(&node),
                "True" => {}
                _ if silent || status == "Unknown" => self.mark_pods_not_ready(name(&node)),
                _ => {}
            }
        }
    }

    /// Every condition the kubelet posts becomes Unknown; the unreachable taints go on.
    fn mark_unknown(&self, node: &Value) {
        let mut updated = node.clone();
        let mut types: Vec<String> =
            node["status"]["conditions"].as_array().into_iter().flatten().filter_map(|c| c["type"].as_str().map(str::to_string)).collect();
        if !types.iter().any(|t| t == "Ready") {
            types.push("Ready".into());
        }
        for condition_type in types.iter().map(String::as_str) {
            let heartbeat = condition(node, condition_type).map(|c| c["lastHeartbeatTime"].clone()).unwrap_or(Value::Null);
            set_condition(&mut updated, condition_type, "Unknown", UNKNOWN_REASON, UNKNOWN_MESSAGE);
            if let Some(c) = condition_mut(&mut updated, condition_type) {
                c["lastHeartbeatTime"] = heartbeat;
                // Node conditions carry heartbeats, not probe times.
                if let Some(c) = c.as_object_mut() {
                    c.remove("lastProbeTime");
                }
            }
        }
        if let Err(e) = self.store.update_status(updated) {
            tracing::warn!("node {}: marking it Unknown: {e}", name(node));
            return;
        }
        tracing::warn!("node {}: no status from its kubelet for {:?}: Ready=Unknown", name(node), self.grace_period);
        self.taint(node);
        self.record(node, "NodeNotReady", &format!("Node {} status is now: NodeNotReady", name(node)));
    }

    /// Adds `node.kubernetes.io/unreachable` as NoSchedule and NoExecute.
    fn taint(&self, node: &Value) {
        let Some(mut current) = self.store.get("v1", "Node", None, name(node)) else { return };
        let mut taints: Vec<Value> = current["spec"]["taints"].as_array().cloned().unwrap_or_default();
        for effect in ["NoSchedule", "NoExecute"] {
            if !taints.iter().any(|t| t["key"] == UNREACHABLE_TAINT && t["effect"] == effect) {
                let mut taint = json!({"key": UNREACHABLE_TAINT, "effect": effect});
                if effect == "NoExecute" {
                    taint["timeAdded"] = json!(now());
                }
                taints.push(taint);
            }
        }
        current["spec"]["taints"] = Value::Array(taints);
        if let Err(e) = self.store.update(current) {
            tracing::warn!("node {}: adding the unreachable taints: {e}", name(node));
        }
    }

    fn untaint(&self, node: &Value) {
        let mut current = node.clone();
        let taints: Vec<Value> = current["spec"]["taints"].as_array().into_iter().flatten().filter(|t| t["key"] != UNREACHABLE_TAINT).cloned().collect();
        if taints.is_empty() {
            if let Some(spec) = current["spec"].as_object_mut() {
                spec.remove("taints");
            }
        } else {
            current["spec"]["taints"] = Value::Array(taints);
        }
        match self.store.update(current) {
            Ok(_) => tracing::info!("node {}: its kubelet posts status again: unreachable taints removed", name(node)),
            Err(e) => tracing::warn!("node {}: removing the unreachable taints: {e}", name(node)),
        }
    }

    /// Sets the Ready condition of every Pod bound to `node` to False, as
    /// upstream's `MarkPodsNotReady` does (the other conditions stay).
    fn mark_pods_not_ready(&self, node: &str) {
        for pod in self.store.list("v1", "Pod", None, None).unwrap_or_default() {
            if pod["spec"]["nodeName"] != node || !super::pod_ready(&pod) {
                continue;
            }
            let mut updated = pod.clone();
            if let Some(ready) = condition_mut(&mut updated, "Ready") {
                ready["status"] = json!("False");
                ready["lastTransitionTime"] = json!(now());
            }
            match self.store.update_status(updated) {
                Ok(_) => self.record(&pod, "NodeNotReady", "Node is not ready"),
                Err(e) => tracing::warn!("pod {}/{}: marking it not Ready: {e}", namespace(&pod), name(&pod)),
            }
        }
    }

    /// A Warning Event about `object`, from the node controller.
    fn record(&self, object: &Value, reason: &str, message: &str) {
        let cluster_scoped = object["kind"] == "Node";
        let ns = if cluster_scoped { "default" } else { namespace(object) };
        let stamp = now();
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": format!("{}.{}", name(object), uuid::Uuid::new_v4().simple()), "namespace": ns},
            "involvedObject": {
                "apiVersion": object["apiVersion"], "kind": object["kind"], "name": name(object),
                "namespace": if cluster_scoped { Value::Null } else { json!(ns) }, "uid": object["metadata"]["uid"],
            },
            "reason": reason,
            "message": message,
            "type": "Warning",
            "source": {"component": "node-controller"},
            "reportingComponent": "node-controller",
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": 1,
        });
        if let Err(e) = self.store.create(event) {
            tracing::debug!("recording {reason} for {}: {e}", name(object));
        }
    }
}

fn condition<'a>(object: &'a Value, condition_type: &str) -> Option<&'a Value> {
    object["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == condition_type)
}

fn condition_mut<'a>(object: &'a mut Value, condition_type: &str) -> Option<&'a mut Value> {
    object["status"]["conditions"].as_array_mut()?.iter_mut().find(|c| c["type"] == condition_type)
}

fn ready_condition(node: &Value) -> Option<&Value> {
    condition(node, "Ready")
}

fn has_unreachable_taint(node: &Value) -> bool {
    node["spec"]["taints"].as_array().is_some_and(|t| t.iter().any(|t| t["key"] == UNREACHABLE_TAINT))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn four_heartbeats_per_grace_period_within_bounds() {
        assert_eq!(heartbeat_interval(crate::topology::DEFAULT_NODE_MONITOR_GRACE_PERIOD), Duration::from_secs(10));
        assert_eq!(heartbeat_interval(Duration::from_secs(8)), Duration::from_secs(2));
        assert_eq!(heartbeat_interval(Duration::from_secs(1)), Duration::from_secs(1));
        assert_eq!(heartbeat_interval(Duration::from_secs(600)), Duration::from_secs(10));
    }

    #[test]
    fn the_annotation_stops_the_kubelet() {
        assert!(kubelet_stopped(&json!({"metadata": {"annotations": {KUBELET_STOPPED: "true"}}})));
        assert!(!kubelet_stopped(&json!({"metadata": {"annotations": {KUBELET_STOPPED: "false"}}})));
        assert!(!kubelet_stopped(&json!({"metadata": {}})));
    }
}

//! Nodes as an upgrade report shows them (pool, node image, kubelet and
//! kernel versions, readiness), and the events an upgrade leaves on them.

use kube_common::text::parse_timestamp_ms;
use runner_sdk::prelude::*;

/// The Node label AKS puts the node image version in.
pub const NODE_IMAGE_LABEL: &str = "kubernetes.azure.com/node-image-version";

/// What a report needs of one Node.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodeInfo {
    /// Its name.
    pub name: String,
    /// Its pool (the pool label's value; empty when it has none).
    pub pool: String,
    /// `kubernetes.azure.com/node-image-version` (empty when absent).
    pub node_image: String,
    /// `status.nodeInfo.kubeletVersion`.
    pub kubelet: String,
    /// `status.nodeInfo.kernelVersion`.
    pub kernel: String,
    /// `status.nodeInfo.osImage`.
    pub os_image: String,
    /// The Ready condition is True.
    pub ready: bool,
    /// When the Ready condition last changed (RFC 3339, empty when unknown).
    pub ready_since: String,
    /// Cordoned (`spec.unschedulable`).
    pub unschedulable: bool,
    /// `metadata.creationTimestamp`.
    pub created: String,
}

impl NodeInfo {
    /// Read a Node object; `None` when it has no name.
    pub fn from_json(node: &Value, pool_label: &str) -> Option<NodeInfo> {
        let info = &node["status"]["nodeInfo"];
        let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
        let ready = node["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Ready"));
        Some(NodeInfo {
            name: node["metadata"]["name"].as_str()?.to_string(),
            pool: text(&node["metadata"]["labels"][pool_label]),
            node_image: text(&node["metadata"]["labels"][NODE_IMAGE_LABEL]),
            kubelet: text(&info["kubeletVersion"]),
            kernel: text(&info["kernelVersion"]),
            os_image: text(&info["osImage"]),
            ready: ready.is_some_and(|c| c["status"] == "True"),
            ready_since: ready.map(|c| text(&c["lastTransitionTime"])).unwrap_or_default(),
            unschedulable: node["spec"]["unschedulable"].as_bool().unwrap_or(false),
            created: text(&node["metadata"]["creationTimestamp"]),
        })
    }

    /// Its report entry as JSON.
    pub fn to_json(&self) -> Value {
        json!({"name": self.name, "pool": self.pool, "node_image": self.node_image, "kubelet": self.kubelet, "kernel": self.kernel, "os_image": self.os_image,
               "ready": self.ready, "ready_since": self.ready_since, "unschedulable": self.unschedulable, "created": self.created})
    }
}

/// Every Node (host call).
pub fn list_nodes(pool_label: &str) -> Result<Vec<NodeInfo>, Error> {
    Ok(list_json(&ListOptions::of("v1", "Node"))?.iter().filter_map(|n| NodeInfo::from_json(n, pool_label)).collect())
}

/// What an event says happened to a Node during an upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Phase {
    /// A surge Node was added.
    Surged,
    /// It was cordoned.
    Cordoned,
    /// Its Pods were evicted (drain).
    Drained,
    /// A drain was held up, by a PodDisruptionBudget or otherwise.
    Blocked,
    /// It was upgraded or reimaged.
    Upgraded,
    /// It became Ready.
    Ready,
    /// It was removed.
    Deleted,
    /// Anything else.
    Other,
}

impl Phase {
    /// How a report names it.
    pub fn name(&self) -> &'static str {
        match self {
            Phase::Surged => "surged",
            Phase::Cordoned => "cordoned",
            Phase::Drained => "drained",
            Phase::Blocked => "blocked",
            Phase::Upgraded => "upgraded",
            Phase::Ready => "ready",
            Phase::Deleted => "deleted",
            Phase::Other => "other",
        }
    }

    /// The phase of an event by its reason (AKS and the kubelet name them
    /// `Surge`, `Drain`, `Upgrade`, `Delete`, `NodeReady`, `NodeNotSchedulable`, ...)
    /// and, for a blocked drain, its message.
    pub fn of(reason: &str, message: &str) -> Phase {
        let r = reason.to_ascii_lowercase();
        if pdb_named(message).is_some() || r.contains("blocked") || r.contains("failed") {
            Phase::Blocked
        } else if r.contains("surge") {
            Phase::Surged
        } else if r.contains("cordon") || r.contains("notschedulable") {
            Phase::Cordoned
        } else if r.contains("drain") || r.contains("evict") {
            Phase::Drained
        } else if r.contains("notready") {
            Phase::Other
        } else if r.contains("ready") {
            Phase::Ready
        } else if r.contains("upgrade") || r.contains("reimage") {
            Phase::Upgraded
        } else if r.contains("delete") || r.contains("removing") {
            Phase::Deleted
        } else {
            Phase::Other
        }
    }
}

/// The PodDisruptionBudget a message says blocked an eviction
/// (`... violate the pod's disruption budget postgres-pdb`), if it names one.
pub fn pdb_named(message: &str) -> Option<String> {
    let lower = message.to_ascii_lowercase();
    let at = lower.find("disruption budget")? + "disruption budget".len();
    let rest = message[at..].trim_start_matches([' ', ':', '"', '\'']);
    let name: String = rest.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '.').collect();
    (!name.is_empty()).then_some(name)
}

/// One event about a Node.
#[derive(Clone, Debug, PartialEq)]
pub struct NodeEvent {
    /// The Node.
    pub node: String,
    /// The event's reason.
    pub reason: String,
    /// Its message.
    pub message: String,
    /// When (RFC 3339, as the event gives it).
    pub time: String,
    /// The same, in ms since the epoch (for ordering and filtering).
    pub time_ms: Option<u64>,
    /// What it says happened.
    pub phase: Phase,
}

/// The Node events among `events` (`v1/Event` objects, `kubectl get
/// events` style), oldest first.
pub fn node_events(events: &[Value]) -> Vec<NodeEvent> {
    let mut out: Vec<NodeEvent> = events
        .iter()
        .filter(|e| e["involvedObject"]["kind"] == "Node")
        .filter_map(|e| {
            let time = ["lastTimestamp", "eventTime", "firstTimestamp"]
                .iter()
                .find_map(|k| e[*k].as_str().filter(|s| !s.is_empty()))
                .or_else(|| e["metadata"]["creationTimestamp"].as_str())
                .unwrap_or_default()
                .to_string();
            let reason = e["reason"].as_str().unwrap_or_default().to_string();
            let message = e["message"].as_str().unwrap_or_default().to_string();
            Some(NodeEvent {
                node: e["involvedObject"]["name"].as_str()?.to_string(),
                phase: Phase::of(&reason, &message),
                time_ms: parse_timestamp_ms(&time),
                reason,
                message,
                time,
            })
        })
        .collect();
    out.sort_by_key(|e| e.time_ms.unwrap_or(0));
    out
}

/// Every Node event the API server still holds (host call); an answer the
/// caller may do without (events expire), so errors are the caller's to tolerate.
pub fn list_node_events() -> Result<Vec<NodeEvent>, Error> {
    // Filtered here rather than by a field selector, which not every API server serves for Events.
    Ok(node_events(&list_json(&ListOptions::of("v1", "Event").in_namespace("*"))?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_node() {
        let node = json!({
            "metadata": {"name": "aks-nodepool1-12345678-vmss000003", "creationTimestamp": "2026-12-05T22:01:00Z",
                         "labels": {"agentpool": "nodepool1", NODE_IMAGE_LABEL: "AKSUbuntu-2204gen2containerd-202412.01.0"}},
            "spec": {"unschedulable": true},
            "status": {"nodeInfo": {"kubeletVersion": "v1.30.5", "kernelVersion": "5.15.0-1075-azure", "osImage": "Ubuntu 22.04.5 LTS"},
                       "conditions": [{"type": "MemoryPressure", "status": "False"}, {"type": "Ready", "status": "True", "lastTransitionTime": "2026-12-05T22:02:10Z"}]},
        });
        let n = NodeInfo::from_json(&node, "agentpool").unwrap();
        assert_eq!((n.pool.as_str(), n.kubelet.as_str(), n.kernel.as_str()), ("nodepool1", "v1.30.5", "5.15.0-1075-azure"));
        assert_eq!((n.node_image.as_str(), n.ready, n.unschedulable), ("AKSUbuntu-2204gen2containerd-202412.01.0", true, true));
        assert_eq!(n.ready_since, "2026-12-05T22:02:10Z");
        let bare = NodeInfo::from_json(&json!({"metadata": {"name": "n"}}), "agentpool").unwrap();
        assert_eq!((bare.ready, bare.kubelet.as_str()), (false, ""));
        assert!(NodeInfo::from_json(&json!({}), "agentpool").is_none());
    }

    #[test]
    fn events_in_order_with_their_phase() {
        let ev = |node: &str, reason: &str, message: &str, time: &str| json!({"involvedObject": {"kind": "Node", "name": node}, "reason": reason, "message": message, "lastTimestamp": time});
        let events = [
            ev("n0", "Drain", "Draining node n0", "2026-12-05T22:03:00Z"),
            ev("n0", "Cordon", "Cordoned node n0", "2026-12-05T22:02:00Z"),
            json!({"involvedObject": {"kind": "Pod", "name": "pg-0"}, "reason": "Killing", "lastTimestamp": "2026-12-05T22:03:01Z"}),
            ev("n0", "Drain", "Cannot evict pod as it would violate the pod's disruption budget postgres-pdb", "2026-12-05T22:04:00Z"),
            ev("n3", "Surge", "Added surge node n3", "2026-12-05T22:01:00Z"),
            ev("n3", "NodeReady", "Node n3 status is now: NodeReady", "2026-12-05T22:01:30Z"),
            ev("n0", "Delete", "Deleting node n0", "2026-12-05T22:06:00Z"),
            json!({"involvedObject": {"kind": "Node", "name": "n0"}, "reason": "Upgrade", "eventTime": "2026-12-05T22:05:00.000000Z"}),
        ];
        let got = node_events(&events);
        let phases: Vec<(&str, &str)> = got.iter().map(|e| (e.node.as_str(), e.phase.name())).collect();
        assert_eq!(
            phases,
            vec![("n3", "surged"), ("n3", "ready"), ("n0", "cordoned"), ("n0", "drained"), ("n0", "blocked"), ("n0", "upgraded"), ("n0", "deleted")]
        );
        assert_eq!(pdb_named(&got[4].message).as_deref(), Some("postgres-pdb"));
        assert_eq!(pdb_named("evicting pod pg-0"), None);
        assert_eq!(pdb_named("violates PodDisruptionBudget: disruption budget \"redis-pdb\" allows 0").as_deref(), Some("redis-pdb"));
        assert_eq!(Phase::of("NodeNotReady", ""), Phase::Other);
        assert_eq!(Phase::of("NodeNotSchedulable", ""), Phase::Cordoned);
    }
}

//! The cluster through the host: the StatefulSet's Pods, the Nodes' pools,
//! and read-only Redis commands on members. Compiled for the components
//! only in effect: nothing here runs in the native unit tests.

use std::collections::BTreeMap;

use runner_sdk::prelude::*;
use runner_sdk::redis_read;

use crate::health::{self, State};

/// What the policies need to know about one member's Pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pod {
    pub name: String,
    pub ordinal: u32,
    pub uid: String,
    pub ready: bool,
    pub terminating: bool,
    pub phase: String,
    pub node: Option<String>,
    pub ip: Option<String>,
}

impl Pod {
    pub fn from_json(set: &str, pod: &Value) -> Option<Pod> {
        let name = pod["metadata"]["name"].as_str()?;
        Some(Pod {
            name: name.to_string(),
            ordinal: ordinal(set, name)?,
            uid: pod["metadata"]["uid"].as_str().unwrap_or_default().to_string(),
            ready: pod_is_ready(pod),
            terminating: !pod["metadata"]["deletionTimestamp"].is_null(),
            phase: pod["status"]["phase"].as_str().unwrap_or("Unknown").to_string(),
            node: pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()).map(str::to_string),
            ip: pod["status"]["podIP"].as_str().filter(|n| !n.is_empty()).map(str::to_string),
        })
    }
}

/// The ordinal of `<set>-<n>`.
pub fn ordinal(set: &str, pod: &str) -> Option<u32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// `None` means the target's default namespace.
pub fn namespace(ns: &str) -> Option<String> {
    (!ns.is_empty()).then(|| ns.to_string())
}

pub fn set_ref(ns: &str, name: &str) -> ObjectRef {
    ObjectRef { api_version: "apps/v1".into(), kind: "StatefulSet".into(), namespace: namespace(ns), name: name.into() }
}

pub fn pod_ref(ns: &str, name: &str) -> ObjectRef {
    ObjectRef { api_version: "v1".into(), kind: "Pod".into(), namespace: namespace(ns), name: name.into() }
}

/// The StatefulSet object and its Pods' label selector.
pub fn statefulset(ns: &str, name: &str) -> Result<(Value, String), Error> {
    let object = get_json(&set_ref(ns, name)).map_err(|e| Error::new(e.code, format!("StatefulSet {name}: {}", e.message)))?;
    let labels = object["spec"]["selector"]["matchLabels"].as_object().cloned().unwrap_or_default();
    let selector = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",");
    Ok((object, selector))
}

/// The set's Pods (only those named `<set>-<n>`), by ordinal.
pub fn pods(ns: &str, set: &str, selector: &str) -> Result<Vec<Pod>, Error> {
    let list = list_json(&ListOptions::of("v1", "Pod").labels(selector).in_namespace(ns))?;
    let mut pods: Vec<Pod> = list.iter().filter_map(|p| Pod::from_json(set, p)).collect();
    pods.sort_by_key(|p| p.ordinal);
    Ok(pods)
}

/// One Pod, or `None` when it does not exist.
pub fn pod(ns: &str, set: &str, name: &str) -> Result<Option<Pod>, Error> {
    match get_json(&pod_ref(ns, name)) {
        Ok(pod) => Ok(Pod::from_json(set, &pod)),
        Err(e) if e.code == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// Node name → the value of its `pool_label`.
pub fn node_pools(pool_label: &str) -> Result<BTreeMap<String, String>, Error> {
    let nodes = list_json(&ListOptions::of("v1", "Node"))?;
    Ok(nodes.iter().filter_map(|n| Some((n["metadata"]["name"].as_str()?.to_string(), n["metadata"]["labels"][pool_label].as_str().unwrap_or_default().to_string()))).collect())
}

/// A read-only command on `member`, its reply as JSON.
pub fn read(member: &str, args: &[&str]) -> Result<Value, Error> {
    let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
    let reply = redis_read::command(member, &args).map_err(|e| Error::new(e.code, format!("{member}: {}: {}", args.join(" "), e.message)))?;
    serde_json::from_str(&reply).map_err(|e| Error::internal(format!("{member}: host returned invalid JSON: {e}")))
}

/// A read-only command whose reply is text (INFO, CLUSTER NODES).
pub fn read_text(member: &str, args: &[&str]) -> Result<String, Error> {
    match read(member, args)? {
        Value::String(text) => Ok(text),
        other => Err(Error::internal(format!("{member}: {}: expected text, got {other}", args.join(" ")))),
    }
}

/// CLUSTER INFO, CLUSTER NODES and INFO replication of one member.
pub fn state(member: &str) -> Result<State, Error> {
    let cluster = read_text(member, &["CLUSTER", "INFO"])?;
    let nodes = read_text(member, &["CLUSTER", "NODES"])?;
    let replication = read_text(member, &["INFO", "replication"])?;
    State::parse(&cluster, &nodes, &replication).map_err(|e| Error::internal(format!("{member}: {e}")))
}

/// Every Pod with what its member answered. A Pod that is not Ready is
/// not asked (it would not answer, or not for long).
pub fn gather(pods: &[Pod]) -> Vec<health::Member> {
    pods.iter()
        .map(|p| {
            let state = if p.terminating {
                Err("Pod is terminating".to_string())
            } else if !p.ready {
                Err(format!("Pod not Ready (phase {}, node {})", p.phase, p.node.as_deref().unwrap_or("none")))
            } else {
                state(&p.name).map_err(|e| format!("not answering: {}", e.message))
            };
            health::Member { name: p.name.clone(), ip: p.ip.clone(), ready: p.ready, state }
        })
        .collect()
}

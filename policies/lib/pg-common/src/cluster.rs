//! The Kubernetes side of a PostgreSQL StatefulSet: its members (Pods), the
//! Service clients use to reach the primary, and which pool each Node is in.

use std::collections::BTreeMap;

use runner_sdk::prelude::*;

use crate::text::ordinal;

/// The label every StatefulSet Pod carries with its own name; the primary
/// Service selects the primary by it.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// What a pattern or gate needs to know about one member's Pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pod {
    pub name: String,
    pub ordinal: u32,
    pub uid: String,
    pub ready: bool,
    pub terminating: bool,
    pub node: Option<String>,
    pub ip: Option<String>,
    pub port: u16,
    /// The `role` label (`primary` / `replica`) where something maintains it.
    pub role: Option<String>,
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
            node: pod["spec"]["nodeName"].as_str().filter(|n| !n.is_empty()).map(str::to_string),
            ip: pod["status"]["podIP"].as_str().filter(|n| !n.is_empty()).map(str::to_string),
            port: pod["spec"]["containers"][0]["ports"][0]["containerPort"].as_u64().and_then(|p| u16::try_from(p).ok()).unwrap_or(5432),
            role: pod["metadata"]["labels"]["role"].as_str().map(str::to_string),
        })
    }
}

/// The StatefulSet, as far as the PostgreSQL policies care.
#[derive(Clone, Debug, Default)]
pub struct Set {
    pub name: String,
    pub replicas: u32,
    /// Its Pods' label selector, kubectl style (`app=postgres`).
    pub selector: String,
    pub object: Value,
}

/// `None` means the target's default namespace.
pub fn namespace(ns: &str) -> Option<String> {
    (!ns.is_empty()).then(|| ns.to_string())
}

fn object(api_version: &str, kind: &str, ns: &str, name: &str) -> ObjectRef {
    ObjectRef { api_version: api_version.into(), kind: kind.into(), namespace: namespace(ns), name: name.into() }
}

pub fn set_ref(ns: &str, name: &str) -> ObjectRef {
    object("apps/v1", "StatefulSet", ns, name)
}

pub fn service_ref(ns: &str, name: &str) -> ObjectRef {
    object("v1", "Service", ns, name)
}

pub fn pod_ref(ns: &str, name: &str) -> ObjectRef {
    object("v1", "Pod", ns, name)
}

pub fn job_ref(ns: &str, name: &str) -> ObjectRef {
    object("batch/v1", "Job", ns, name)
}

pub fn statefulset(ns: &str, name: &str) -> Result<Set, Error> {
    let object = get_json(&set_ref(ns, name)).map_err(|e| Error::new(e.code, format!("StatefulSet {name}: {}", e.message)))?;
    let labels = object["spec"]["selector"]["matchLabels"].as_object().cloned().unwrap_or_default();
    let selector = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",");
    Ok(Set { name: name.to_string(), replicas: object["spec"]["replicas"].as_u64().unwrap_or(1) as u32, selector, object })
}

/// The set's Pods by ordinal (only those named `<set>-<n>`).
pub fn pods(ns: &str, set: &Set) -> Result<BTreeMap<u32, Pod>, Error> {
    let list = list_json(&ListOptions::of("v1", "Pod").labels(&set.selector).in_namespace(ns))?;
    Ok(list.iter().filter_map(|p| Pod::from_json(&set.name, p)).map(|p| (p.ordinal, p)).collect())
}

/// One Pod, or `None` when it does not exist.
pub fn pod(ns: &str, set: &str, name: &str) -> Result<Option<Pod>, Error> {
    match get_json(&pod_ref(ns, name)) {
        Ok(pod) => Ok(Pod::from_json(set, &pod)),
        Err(e) if e.code == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

/// The member the Service sends clients to, by its pod-name selector.
pub fn service_target(ns: &str, service: &str) -> Result<Option<String>, Error> {
    let svc = get_json(&service_ref(ns, service)).map_err(|e| Error::new(e.code, format!("Service {service}: {}", e.message)))?;
    Ok(svc["spec"]["selector"][POD_NAME_LABEL].as_str().map(str::to_string))
}

/// Node name → the value of its `pool_label`.
pub fn node_pools(pool_label: &str) -> Result<BTreeMap<String, String>, Error> {
    let nodes = list_json(&ListOptions { api_version: "v1".into(), kind: "Node".into(), namespace: None, label_selector: None, field_selector: None })?;
    Ok(nodes
        .iter()
        .filter_map(|n| Some((n["metadata"]["name"].as_str()?.to_string(), n["metadata"]["labels"][pool_label].as_str().unwrap_or_default().to_string())))
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pod() {
        let pod = json!({
            "metadata": {"name": "postgres-cluster-2", "uid": "u2", "labels": {"role": "replica"}},
            "spec": {"nodeName": "aks-1", "containers": [{"ports": [{"containerPort": 5433}]}]},
            "status": {"podIP": "127.0.1.3", "conditions": [{"type": "Ready", "status": "True"}]},
        });
        let p = Pod::from_json("postgres-cluster", &pod).unwrap();
        assert_eq!((p.ordinal, p.ready, p.terminating, p.port), (2, true, false, 5433));
        assert_eq!(p.ip.as_deref(), Some("127.0.1.3"));
        assert_eq!(p.role.as_deref(), Some("replica"));
        assert!(Pod::from_json("other-set", &pod).is_none());
        let bare = Pod::from_json("postgres-cluster", &json!({"metadata": {"name": "postgres-cluster-0", "deletionTimestamp": "x"}})).unwrap();
        assert_eq!((bare.port, bare.ready, bare.terminating), (5432, false, true));
    }
}

//! A StatefulSet and its members.

use runner_sdk::kube_write;
use runner_sdk::prelude::*;
use serde::Deserialize;

use crate::{NodePools, object};

/// The ordinal of a StatefulSet member named `<set>-<n>`.
pub fn ordinal(set: &str, member: &str) -> Option<u32> {
    member.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// What a policy needs to know about one member's Pod.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Pod {
    /// `<set>-<ordinal>`.
    pub name: String,
    /// The member's ordinal.
    pub ordinal: u32,
    /// Changes when the StatefulSet replaces the Pod.
    pub uid: String,
    /// The `Ready` condition is `True`.
    pub ready: bool,
    /// Deletion has begun.
    pub terminating: bool,
    /// `status.phase` (`Unknown` when absent).
    pub phase: String,
    /// The Node it is scheduled on.
    pub node: Option<String>,
    /// Its address.
    pub ip: Option<String>,
    /// The first port its first container declares.
    pub container_port: Option<u16>,
    /// The `role` label (`primary` / `replica`) where something maintains it.
    pub role: Option<String>,
}

impl Pod {
    /// The Pod object of a member of `set`; `None` when it is not one (not named `<set>-<n>`).
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
            container_port: pod["spec"]["containers"][0]["ports"][0]["containerPort"].as_u64().and_then(|p| u16::try_from(p).ok()),
            role: pod["metadata"]["labels"]["role"].as_str().map(str::to_string),
        })
    }
}

/// The StatefulSet as read.
#[derive(Clone, Debug, Default)]
pub struct Set {
    /// Its name.
    pub name: String,
    /// `spec.replicas`.
    pub replicas: u32,
    /// Its Pods' label selector, kubectl style (`app=postgres`).
    pub selector: String,
    /// The whole object.
    pub object: Value,
}

/// A StatefulSet by namespace (empty: the target's default) and name. A
/// policy's configuration names it with the keys `statefulset` and
/// `namespace`, so its `Config` can flatten one in.
#[derive(Clone, Debug, Default, Deserialize)]
pub struct StatefulSet {
    /// Empty for the target's default namespace.
    pub namespace: String,
    /// The StatefulSet's name; its members are `<name>-<ordinal>`.
    #[serde(rename = "statefulset")]
    pub name: String,
}

impl StatefulSet {
    /// The StatefulSet `name` in `namespace` (empty: the target's default).
    pub fn new(namespace: &str, name: &str) -> Self {
        StatefulSet { namespace: namespace.to_string(), name: name.to_string() }
    }

    /// The StatefulSet object.
    pub fn object_ref(&self) -> ObjectRef {
        object("apps/v1", "StatefulSet", &self.namespace, &self.name)
    }

    /// A member's Pod object.
    pub fn pod_ref(&self, member: &str) -> ObjectRef {
        object("v1", "Pod", &self.namespace, member)
    }

    /// The member with `ordinal`.
    pub fn member(&self, ordinal: u32) -> String {
        format!("{}-{ordinal}", self.name)
    }

    /// The ordinal of `member`, if it is one of this set's.
    pub fn ordinal(&self, member: &str) -> Option<u32> {
        ordinal(&self.name, member)
    }

    /// Read the StatefulSet; an error names it.
    pub fn read(&self) -> Result<Set, Error> {
        let object = get_json(&self.object_ref()).map_err(|e| Error::new(e.code, format!("StatefulSet {}: {}", self.name, e.message)))?;
        let labels = object["spec"]["selector"]["matchLabels"].as_object().cloned().unwrap_or_default();
        let selector = labels.iter().map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default())).collect::<Vec<_>>().join(",");
        Ok(Set { name: self.name.clone(), replicas: object["spec"]["replicas"].as_u64().unwrap_or(1) as u32, selector, object })
    }

    /// The members' Pods by ordinal: the StatefulSet read, then its Pods listed.
    pub fn pods(&self) -> Result<Vec<Pod>, Error> {
        self.pods_of(&self.read()?)
    }

    /// The Pods `set` selects (only those named `<set>-<n>`), by ordinal.
    pub fn pods_of(&self, set: &Set) -> Result<Vec<Pod>, Error> {
        let list = list_json(&ListOptions::of("v1", "Pod").labels(&set.selector).in_namespace(&self.namespace))?;
        let mut pods: Vec<Pod> = list.iter().filter_map(|p| Pod::from_json(&self.name, p)).collect();
        pods.sort_by_key(|p| p.ordinal);
        Ok(pods)
    }

    /// One member's Pod, or `None` when it does not exist.
    pub fn pod(&self, member: &str) -> Result<Option<Pod>, Error> {
        match get_json(&self.pod_ref(member)) {
            Ok(pod) => Ok(Pod::from_json(&self.name, &pod)),
            Err(e) if e.code == ErrorCode::NotFound => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// A merge patch of the StatefulSet; the host's answer.
    pub fn patch(&self, body: &Value) -> Result<Value, Error> {
        crate::merge_patch(&self.object_ref(), body)
    }

    /// Set `spec.replicas`.
    pub fn scale(&self, replicas: u32) -> Result<(), Error> {
        kube_write::scale(&self.object_ref(), replicas).map_err(|e| Error::new(e.code, format!("scale {} to {replicas}: {}", self.name, e.message)))
    }

    /// Delete a member's Pod (the StatefulSet makes it again).
    pub fn delete_pod(&self, member: &str) -> Result<(), Error> {
        kube_write::delete(&self.pod_ref(member), None).map_err(|e| Error::new(e.code, format!("delete Pod {member}: {}", e.message)))
    }

    /// One look for a wait: done once the Pod with `old_uid` is gone (absent, or back under a new uid).
    pub fn pod_gone(&self, member: &str, old_uid: &str) -> Result<Poll<()>, Error> {
        Ok(match self.pod(member)? {
            Some(p) if p.uid == old_uid => Poll::NotYet(format!("{member}: Pod still there{}", if p.terminating { ", terminating" } else { "" })),
            _ => Poll::Done(()),
        })
    }

    /// One look for a wait: done once `member`'s Pod is Ready and, given a
    /// pool (label, value), on a Node of that pool.
    pub fn pod_ready(&self, member: &str, pool: Option<(&str, &str)>) -> Result<Poll<()>, Error> {
        let Some(pod) = self.pod(member)? else { return Ok(Poll::NotYet(format!("{member}: no Pod yet"))) };
        if !pod.ready || pod.terminating {
            return Ok(Poll::NotYet(format!("{member}: not Ready")));
        }
        if let Some((label, value)) = pool {
            let here = NodePools::list(label)?.of(&pod).unwrap_or_default().to_string();
            if here != value {
                return Ok(Poll::NotYet(format!("{member} runs on {} in pool `{here}`, not `{value}`", pod.node.as_deref().unwrap_or("no node"))));
            }
        }
        Ok(Poll::Done(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_pod() {
        let pod = json!({
            "metadata": {"name": "postgres-cluster-2", "uid": "u2", "labels": {"role": "replica"}},
            "spec": {"nodeName": "aks-1", "containers": [{"ports": [{"containerPort": 5433}]}]},
            "status": {"phase": "Running", "podIP": "127.0.1.3", "conditions": [{"type": "Ready", "status": "True"}]},
        });
        let p = Pod::from_json("postgres-cluster", &pod).unwrap();
        assert_eq!((p.ordinal, p.ready, p.terminating, p.container_port), (2, true, false, Some(5433)));
        assert_eq!((p.phase.as_str(), p.node.as_deref(), p.ip.as_deref()), ("Running", Some("aks-1"), Some("127.0.1.3")));
        assert_eq!(p.role.as_deref(), Some("replica"));
        assert!(Pod::from_json("other-set", &pod).is_none());
        let bare = Pod::from_json("postgres-cluster", &json!({"metadata": {"name": "postgres-cluster-0", "deletionTimestamp": "x"}})).unwrap();
        assert_eq!((bare.container_port, bare.ready, bare.terminating, bare.phase.as_str()), (None, false, true, "Unknown"));
    }

    #[test]
    fn a_configuration_names_the_statefulset() {
        let set: StatefulSet = serde_json::from_value(json!({"statefulset": "mongo", "namespace": "db"})).unwrap();
        assert_eq!((set.namespace.as_str(), set.name.as_str()), ("db", "mongo"));
    }

    #[test]
    fn members_are_named_by_ordinal() {
        let set = StatefulSet::new("", "postgres-cluster");
        assert_eq!(set.member(12), "postgres-cluster-12");
        assert_eq!(set.ordinal("postgres-cluster-12"), Some(12));
        assert_eq!(set.ordinal("postgres-clusterx-1"), None);
        assert_eq!(set.object_ref().namespace, None);
        assert_eq!(StatefulSet::new("db", "redis").pod_ref("redis-0").namespace.as_deref(), Some("db"));
    }
}

//! The StatefulSet controller: Pods `<name>-0 .. <name>-(N-1)`, created in
//! order (each once the previous one is Ready), removed from the highest
//! ordinal down, recreated with the same name (and so the same volume) when
//! deleted, from the current template; status counts kept current.

use std::hash::{DefaultHasher, Hash, Hasher};

use serde_json::{Value, json};

use super::reconciler::{Kind, Reconciler, Related};
use super::{ignore_not_found, name, namespace, pod_ready, terminating};
use crate::apiserver::Store;

/// The label every StatefulSet Pod carries with its own name.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// The revision a template produces, as the `controller-revision-hash` label.
pub fn revision(statefulset: &Value) -> String {
    let mut hasher = DefaultHasher::new();
    statefulset["spec"]["template"].to_string().hash(&mut hasher);
    format!("{}-{:010x}", name(statefulset), hasher.finish() & 0xff_ffff_ffff)
}

/// The ordinal of a Pod named `<set>-<n>`.
pub fn ordinal(set: &str, pod: &str) -> Option<u32> {
    pod.strip_prefix(set)?.strip_prefix('-')?.parse().ok()
}

/// The Pod for `ordinal`, from the current template.
pub fn pod_for(statefulset: &Value, ordinal: u32) -> Value {
    let set = name(statefulset);
    let pod_name = format!("{set}-{ordinal}");
    let template = &statefulset["spec"]["template"];
    let mut labels = template["metadata"]["labels"].as_object().cloned().unwrap_or_default();
    labels.insert(POD_NAME_LABEL.into(), json!(pod_name));
    labels.insert("apps.kubernetes.io/pod-index".into(), json!(ordinal.to_string()));
    labels.insert("controller-revision-hash".into(), json!(revision(statefulset)));
    let mut spec = template["spec"].clone();
    spec["hostname"] = json!(pod_name);
    if let Some(service) = statefulset["spec"]["serviceName"].as_str() {
        spec["subdomain"] = json!(service);
    }
    json!({
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {
            "name": pod_name,
            "namespace": namespace(statefulset),
            "labels": labels,
            "annotations": template["metadata"]["annotations"].clone(),
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "StatefulSet", "name": set,
                "uid": statefulset["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": spec,
    })
}

/// Keeps each StatefulSet's Pods and status in line with its spec.
pub struct StatefulSets;

impl Reconciler for StatefulSets {
    const KIND: Kind = ("apps/v1", "StatefulSet");
    /// A member turning Ready lets the next one start; a deleted one is replaced.
    const RELATED: &'static [(Kind, Related)] = &[(("v1", "Pod"), Related::Owner)];

    fn name(&self) -> &'static str {
        "statefulset"
    }

    /// Creates or deletes at most one Pod, then records the status, which
    /// is kept current even when that Pod could not be created or deleted.
    async fn reconcile(&mut self, store: &Store, set: &Value) -> anyhow::Result<()> {
        let all = store.list("v1", "Pod", Some(namespace(set)), None)?;
        let owned: Vec<&Value> = all.iter().filter(|p| ordinal(name(set), name(p)).is_some() && owned_by(p, set)).collect();
        let scaled = if terminating(set) { Ok(()) } else { scale(store, set, &all, &owned) };
        let recorded = record_status(store, set, &owned);
        scaled.and(recorded)
    }
}

/// Scale up (or replace a deleted Pod): the lowest missing ordinal, once
/// every lower one is Ready. Scale down: the highest ordinal first, one at a time.
fn scale(store: &Store, set: &Value, all: &[Value], owned: &[&Value]) -> anyhow::Result<()> {
    let (ns, set_name) = (namespace(set), name(set));
    let replicas = set["spec"]["replicas"].as_u64().unwrap_or(1) as u32;
    let by_ordinal = |n: u32| owned.iter().find(|p| ordinal(set_name, name(p)) == Some(n)).copied();
    for n in 0..replicas {
        match by_ordinal(n) {
            Some(pod) if pod_ready(pod) && !terminating(pod) => continue,
            Some(_) => break,
            None => {
                // A Pod of the same name still terminating blocks its replacement.
                if all.iter().any(|p| name(p) == format!("{set_name}-{n}")) {
                    break;
                }
                store.create(pod_for(set, n)).map_err(|e| anyhow::anyhow!("creating pod {set_name}-{n}: {e}"))?;
                tracing::info!("statefulset {ns}/{set_name}: created pod {set_name}-{n}");
                break;
            }
        }
    }
    let surplus = owned.iter().filter(|p| ordinal(set_name, name(p)).is_some_and(|n| n >= replicas)).max_by_key(|p| ordinal(set_name, name(p)));
    if let Some(pod) = surplus
        && !terminating(pod)
        && !owned.iter().any(|p| terminating(p))
    {
        ignore_not_found(store.delete("v1", "Pod", Some(ns), name(pod), None)).map_err(|e| anyhow::anyhow!("scaling down, deleting {}: {e}", name(pod)))?;
        tracing::info!("statefulset {ns}/{set_name}: scaling down, deleting {}", name(pod));
    }
    Ok(())
}

fn record_status(store: &Store, set: &Value, owned: &[&Value]) -> anyhow::Result<()> {
    let current = revision(set);
    let live: Vec<&&Value> = owned.iter().filter(|p| !terminating(p)).collect();
    let ready = live.iter().filter(|p| pod_ready(p)).count();
    let updated = live.iter().filter(|p| p["metadata"]["labels"]["controller-revision-hash"] == json!(current)).count();
    let status = json!({
        "observedGeneration": set["metadata"]["generation"],
        "replicas": live.len(),
        "readyReplicas": ready,
        "availableReplicas": ready,
        "currentReplicas": updated,
        "updatedReplicas": updated,
        "currentRevision": current,
        "updateRevision": current,
        "collisionCount": 0,
    });
    if set["status"] != status {
        let mut with_status = set.clone();
        with_status["status"] = status;
        store.update_status(with_status)?;
    }
    Ok(())
}

fn owned_by(pod: &Value, set: &Value) -> bool {
    pod["metadata"]["ownerReferences"].as_array().is_some_and(|refs| refs.iter().any(|r| r["kind"] == "StatefulSet" && r["name"] == set["metadata"]["name"]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pods_come_from_the_template() {
        let set = json!({"metadata": {"name": "postgres-cluster", "namespace": "db", "uid": "u1"},
            "spec": {"replicas": 3, "serviceName": "postgres", "template": {"metadata": {"labels": {"app": "postgres"}}, "spec": {"containers": [{"name": "postgres", "image": "postgres:15"}]}}}});
        let pod = pod_for(&set, 2);
        assert_eq!(pod["metadata"]["name"], "postgres-cluster-2");
        assert_eq!(pod["metadata"]["namespace"], "db");
        assert_eq!(pod["metadata"]["labels"]["app"], "postgres");
        assert_eq!(pod["metadata"]["labels"][POD_NAME_LABEL], "postgres-cluster-2");
        assert_eq!(pod["metadata"]["ownerReferences"][0]["uid"], "u1");
        assert_eq!(pod["spec"]["hostname"], "postgres-cluster-2");
        assert_eq!(ordinal("postgres-cluster", "postgres-cluster-12"), Some(12));
        assert_eq!(ordinal("postgres-cluster", "postgres-clusterx-1"), None);
        let mut changed = set.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("postgres:16");
        assert_ne!(revision(&set), revision(&changed));
    }
}

//! `kubectl drain`, with its semantics: cordon; skip mirror Pods; refuse
//! (unless told otherwise) DaemonSet-managed Pods, Pods with emptyDir data
//! and Pods no controller manages; evict the rest through the eviction API,
//! retrying every 5 s while a PodDisruptionBudget forbids it; wait until each
//! evicted Pod is gone or replaced (same name, new uid).

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use futures_util::future::join_all;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::LabelSelector;
use kube::api::{Api, DynamicObject, ListParams};
use kube::core::{Selector, SelectorExt};
use serde_json::{Value, json};
use tokio::time::Instant;

use super::discovery::builtin;
use super::{KubeBackend, errors, wait};
use crate::backends::{BackendError, BackendResult, DrainOptions, ErrorCode};

/// How long kubectl waits between eviction attempts a budget refused.
const RETRY_INTERVAL: Duration = Duration::from_secs(5);
const MIRROR_ANNOTATION: &str = "kubernetes.io/config.mirror";

/// One Pod on the node, as drain sees it.
#[derive(Clone, Debug)]
struct PodOnNode {
    namespace: String,
    name: String,
    uid: String,
    labels: BTreeMap<String, String>,
    object: Value,
}

impl PodOnNode {
    fn from(object: Value) -> Self {
        let meta = &object["metadata"];
        let text = |key: &str| meta[key].as_str().unwrap_or_default().to_string();
        let labels = meta["labels"].as_object().map(|m| m.iter().filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_string()))).collect()).unwrap_or_default();
        PodOnNode { namespace: text("namespace"), name: text("name"), uid: text("uid"), labels, object }
    }

    fn key(&self) -> String {
        format!("{}/{}", self.namespace, self.name)
    }

    fn finished(&self) -> bool {
        matches!(self.object["status"]["phase"].as_str(), Some("Succeeded" | "Failed"))
    }

    fn controller(&self) -> Option<&Value> {
        self.object["metadata"]["ownerReferences"].as_array()?.iter().find(|r| r["controller"] == true)
    }

    fn mirror(&self) -> bool {
        self.object["metadata"]["annotations"].get(MIRROR_ANNOTATION).is_some()
    }

    fn has_empty_dir(&self) -> bool {
        self.object["spec"]["volumes"].as_array().is_some_and(|v| v.iter().any(|volume| volume.get("emptyDir").is_some()))
    }
}

/// What drain does with one Pod (kubectl's filter chain, in its order).
#[derive(Debug, PartialEq, Eq)]
enum Verdict {
    Evict,
    Skip(&'static str),
    Refuse(&'static str),
}

const DAEMONSET_REFUSED: &str = "cannot delete DaemonSet-managed Pods (set ignore-daemonsets to skip them)";
const EMPTYDIR_REFUSED: &str = "cannot delete Pods with local storage (emptyDir; set delete-emptydir-data to evict them and lose that data)";
const UNMANAGED_REFUSED: &str = "cannot delete Pods that declare no controller (set force to evict them; they will not come back)";

/// `daemonset_exists` answers for the Pod's controlling DaemonSet, when it has one.
fn verdict(pod: &PodOnNode, options: &DrainOptions, daemonset_exists: Option<bool>, warnings: &mut Vec<String>) -> Verdict {
    let controller = pod.controller();
    if controller.is_some_and(|c| c["kind"] == "DaemonSet") && !pod.finished() {
        match daemonset_exists {
            // An orphan of a deleted DaemonSet nothing would recreate.
            Some(false) if options.force => warnings.push(format!("deleting a Pod whose DaemonSet is gone: {}", pod.key())),
            Some(false) => return Verdict::Refuse("cannot delete Pods whose DaemonSet is gone (set force to evict them)"),
            _ if !options.ignore_daemonsets => return Verdict::Refuse(DAEMONSET_REFUSED),
            _ => return Verdict::Skip("DaemonSet-managed (ignored; never deleted)"),
        }
    }
    if pod.mirror() {
        return Verdict::Skip("mirror Pod (the kubelet owns it)");
    }
    if pod.has_empty_dir() && !pod.finished() {
        if !options.delete_emptydir_data {
            return Verdict::Refuse(EMPTYDIR_REFUSED);
        }
        warnings.push(format!("deleting a Pod with emptyDir data: {}", pod.key()));
    }
    if controller.is_none() && !pod.finished() {
        if !options.force {
            return Verdict::Refuse(UNMANAGED_REFUSED);
        }
        warnings.push(format!("deleting a Pod that declares no controller: {}", pod.key()));
    }
    Verdict::Evict
}

/// How evicting one Pod ended.
enum Evicted {
    /// Gone, or replaced by a Pod with a new uid.
    Done {
        attempts: u32,
    },
    /// A PodDisruptionBudget still refused when time ran out.
    Blocked {
        budgets: Vec<String>,
        message: String,
        attempts: u32,
    },
    /// Evicted, but still there when time ran out.
    Terminating,
    Failed(BackendError),
}

pub(super) async fn drain(backend: &KubeBackend, node: &str, options: &DrainOptions) -> BackendResult<String> {
    let started = std::time::Instant::now();
    // A timeout of 0 means no timeout of drain's own, as for kubectl; the sandbox deadline still applies.
    let limit = if options.timeout_ms > 0 { Duration::from_millis(options.timeout_ms) } else { Duration::from_secs(365 * 24 * 3600) };
    let deadline = Instant::now() + limit;
    backend.cordon(node, true).await?;

    let pods_api: Api<DynamicObject> = Api::all_with(backend.client.clone(), &builtin("", "v1", "Pod", "pods"));
    let listed = pods_api.list(&ListParams::default().fields(&format!("spec.nodeName={node}"))).await.map_err(|e| backend.error(e))?;
    let pods: Vec<PodOnNode> = listed.items.into_iter().map(|p| PodOnNode::from(serde_json::to_value(p).unwrap_or_default())).collect();

    let mut daemonsets: BTreeMap<(String, String), bool> = BTreeMap::new();
    for pod in &pods {
        if let Some(controller) = pod.controller().filter(|c| c["kind"] == "DaemonSet") {
            let name = controller["name"].as_str().unwrap_or_default().to_string();
            let key = (pod.namespace.clone(), name.clone());
            if daemonsets.contains_key(&key) || pod.finished() {
                continue;
            }
            let api: Api<DynamicObject> = Api::namespaced_with(backend.client.clone(), &pod.namespace, &builtin("apps", "v1", "DaemonSet", "daemonsets"));
            let exists = match api.get_opt(&name).await {
                Ok(found) => found.is_some(),
                Err(e) => return Err(backend.error(e)),
            };
            daemonsets.insert(key, exists);
        }
    }

    let mut warnings = Vec::new();
    let mut skipped = Vec::new();
    let mut refused: BTreeMap<&'static str, Vec<String>> = BTreeMap::new();
    let mut to_evict = Vec::new();
    for pod in pods {
        let ds = pod.controller().and_then(|c| daemonsets.get(&(pod.namespace.clone(), c["name"].as_str().unwrap_or_default().to_string()))).copied();
        match verdict(&pod, options, ds, &mut warnings) {
            Verdict::Evict => to_evict.push(pod),
            Verdict::Skip(reason) => skipped.push(json!({"pod": pod.key(), "reason": reason})),
            Verdict::Refuse(reason) => refused.entry(reason).or_default().push(pod.key()),
        }
    }
    if !refused.is_empty() {
        let reasons: Vec<String> = refused.iter().map(|(reason, pods)| format!("{reason}: {}", pods.join(", "))).collect();
        return Err(BackendError::new(
            ErrorCode::Conflict,
            format!("cannot drain node {node} (it stays cordoned; nothing was evicted): {}", reasons.join("; ")),
        ));
    }

    let outcomes = join_all(to_evict.iter().map(|pod| evict_until_gone(backend, pod, options.grace_period_seconds, deadline))).await;
    let mut evicted = Vec::new();
    let mut retried = Vec::new();
    let mut problems = Vec::new();
    let mut failure = None;
    for (pod, outcome) in to_evict.iter().zip(outcomes) {
        match outcome {
            Evicted::Done { attempts } => {
                evicted.push(pod.key());
                if attempts > 1 {
                    retried.push(json!({"pod": pod.key(), "attempts": attempts}));
                }
            }
            Evicted::Blocked { budgets, message, attempts } => {
                let by = if budgets.is_empty() {
                    "a PodDisruptionBudget".to_string()
                } else {
                    format!("PodDisruptionBudget {}", budgets.iter().map(|b| format!("{}/{b}", pod.namespace)).collect::<Vec<_>>().join(", "))
                };
                problems.push(format!("Pod {} is blocked by {by} after {attempts} attempt(s): {message}", pod.key()));
            }
            Evicted::Terminating => problems.push(format!("Pod {} was evicted but is still terminating", pod.key())),
            Evicted::Failed(e) => {
                failure.get_or_insert(BackendError::new(e.code, format!("drain of node {node}: evicting Pod {}: {}", pod.key(), e.message)));
            }
        }
    }
    if let Some(failure) = failure {
        return Err(failure);
    }
    if !problems.is_empty() {
        let done = if evicted.is_empty() { String::new() } else { format!("; evicted: {}", evicted.join(", ")) };
        return Err(BackendError::new(
            ErrorCode::Timeout,
            format!("drain of node {node} did not finish within {} ms: {}{done}", options.timeout_ms, problems.join("; ")),
        ));
    }
    Ok(json!({
        "node": node,
        "cordoned": true,
        "evicted": evicted,
        "skipped": skipped,
        "warnings": warnings,
        "retried": retried,
        "elapsedMs": started.elapsed().as_millis() as u64,
    })
    .to_string())
}

/// Evict `pod`, retrying while a budget refuses; then wait until it is gone or replaced.
async fn evict_until_gone(backend: &KubeBackend, pod: &PodOnNode, grace: Option<u32>, deadline: Instant) -> Evicted {
    let mut attempts = 0;
    loop {
        attempts += 1;
        match backend.evict_once(&pod.namespace, &pod.name, grace).await {
            Ok(()) => break,
            Err(kube::Error::Api(status)) if status.code == 404 => return Evicted::Done { attempts },
            Err(kube::Error::Api(status)) if status.code == 429 => {
                let message = errors::status_message(&status);
                if Instant::now() + RETRY_INTERVAL > deadline {
                    tokio::time::sleep_until(deadline).await;
                    let budgets = blocking_budgets(backend, pod).await;
                    return Evicted::Blocked { budgets, message, attempts };
                }
                tracing::info!("evicting {}: {message}; retrying in {} s", pod.key(), RETRY_INTERVAL.as_secs());
                tokio::time::sleep(RETRY_INTERVAL).await;
            }
            Err(e) => return Evicted::Failed(backend.error(e)),
        }
    }
    let api: Api<DynamicObject> = Api::namespaced_with(backend.client.clone(), &pod.namespace, &builtin("", "v1", "Pod", "pods"));
    let uid = pod.uid.clone();
    match wait::until(api, &pod.name, deadline, backend.hint.as_deref(), |object| object.is_none_or(|o| o.metadata.uid.as_deref() != Some(uid.as_str()))).await
    {
        Ok(wait::Waited::Done(_)) => Evicted::Done { attempts },
        Ok(wait::Waited::TimedOut(_)) => Evicted::Terminating,
        Err(e) => Evicted::Failed(e),
    }
}

/// The PodDisruptionBudgets in the Pod's namespace whose selector matches it.
/// Best effort: without the right to list budgets the server's message still names them.
async fn blocking_budgets(backend: &KubeBackend, pod: &PodOnNode) -> Vec<String> {
    let api: Api<DynamicObject> =
        Api::namespaced_with(backend.client.clone(), &pod.namespace, &builtin("policy", "v1", "PodDisruptionBudget", "poddisruptionbudgets"));
    let Ok(budgets) = api.list(&ListParams::default()).await else { return Vec::new() };
    let names: BTreeSet<String> = budgets
        .items
        .into_iter()
        .filter(|pdb| {
            let selector = pdb.data.pointer("/spec/selector").cloned().and_then(|s| serde_json::from_value::<LabelSelector>(s).ok());
            selector.and_then(|s| Selector::try_from(s).ok()).is_some_and(|s| s.matches(&pod.labels))
        })
        .filter_map(|pdb| pdb.metadata.name)
        .collect();
    names.into_iter().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(meta: Value, spec: Value, phase: &str) -> PodOnNode {
        let mut metadata = json!({"namespace": "default", "name": "p", "uid": "u"});
        metadata.as_object_mut().unwrap().extend(meta.as_object().unwrap().clone());
        PodOnNode::from(json!({"metadata": metadata, "spec": spec, "status": {"phase": phase}}))
    }

    fn options(ignore_daemonsets: bool, delete_emptydir_data: bool, force: bool) -> DrainOptions {
        DrainOptions { ignore_daemonsets, delete_emptydir_data, force, grace_period_seconds: None, timeout_ms: 1000 }
    }

    #[test]
    fn kubectls_filters() {
        let owned = |kind: &str| json!({"ownerReferences": [{"kind": kind, "name": "o", "controller": true}]});
        let ds = pod(owned("DaemonSet"), json!({}), "Running");
        let bare = pod(json!({}), json!({}), "Running");
        let scratch = pod(owned("ReplicaSet"), json!({"volumes": [{"name": "s", "emptyDir": {}}]}), "Running");
        let mirror = pod(json!({"annotations": {MIRROR_ANNOTATION: "x"}}), json!({}), "Running");
        let managed = pod(owned("StatefulSet"), json!({}), "Running");
        let done = pod(json!({}), json!({"volumes": [{"emptyDir": {}}]}), "Succeeded");
        let w = &mut Vec::new();
        let strict = options(false, false, false);
        assert_eq!(verdict(&ds, &strict, Some(true), w), Verdict::Refuse(DAEMONSET_REFUSED));
        assert_eq!(verdict(&bare, &strict, None, w), Verdict::Refuse(UNMANAGED_REFUSED));
        assert_eq!(verdict(&scratch, &strict, None, w), Verdict::Refuse(EMPTYDIR_REFUSED));
        assert!(matches!(verdict(&mirror, &strict, None, w), Verdict::Skip(_)));
        assert_eq!(verdict(&managed, &strict, None, w), Verdict::Evict);
        assert_eq!(verdict(&done, &strict, None, w), Verdict::Evict, "finished Pods can always go");
        assert!(w.is_empty());
        let lenient = options(true, true, true);
        assert!(matches!(verdict(&ds, &lenient, Some(true), w), Verdict::Skip(_)), "DaemonSet Pods are never deleted");
        assert_eq!(verdict(&bare, &lenient, None, w), Verdict::Evict);
        assert_eq!(verdict(&scratch, &lenient, None, w), Verdict::Evict);
        assert_eq!(w.len(), 2);
        assert!(matches!(verdict(&ds, &options(true, false, false), Some(false), w), Verdict::Refuse(_)), "an orphan needs force");
    }
}

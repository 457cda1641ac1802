//! The Deployment controller, after kube-controller-manager's: a Deployment
//! owns ReplicaSets named `<deployment>-<pod-template-hash>`, one per
//! template it has had; the one of the current template is the new one, the
//! others are old. A template change rolls out by strategy:
//!
//! - `RollingUpdate`: the new ReplicaSet grows while the total stays within
//!   `replicas + maxSurge`, the old ones shrink while the available Pods stay
//!   at least `replicas - maxUnavailable` (ints or percentages of
//!   `replicas`, surge rounded up, unavailability down; 25% each by default).
//! - `Recreate`: the old ReplicaSets go to 0, and once their last Pod is gone
//!   the new one goes to `replicas`.
//!
//! Old ReplicaSets stay at 0 replicas for `kubectl rollout undo`, at most
//! `revisionHistoryLimit` of them. The status (counts, `Available` and
//! `Progressing` conditions) is what `kubectl rollout status` waits on.
//! `minReadySeconds` is copied to the ReplicaSets but Pods count as
//! available as soon as they are Ready.

use serde_json::{Map, Value, json};

use super::reconciler::{Kind, Reconciler, Related};
use super::replicaset::replicas;
use super::{controlled_by, ignore_not_found, name, namespace, now, terminating};
use crate::apiserver::{PatchType, Store};

/// The label that ties a ReplicaSet and its Pods to one template.
pub const POD_TEMPLATE_HASH: &str = "pod-template-hash";
/// The annotation numbering a Deployment's templates (`kubectl rollout history`).
pub const REVISION: &str = "deployment.kubernetes.io/revision";
/// The alphabet of upstream's `SafeEncodeString` (no vowels, no look-alikes).
const SAFE_ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";

/// Keeps each Deployment's ReplicaSets and status in line with its spec.
pub struct Deployments;

impl Reconciler for Deployments {
    const KIND: Kind = ("apps/v1", "Deployment");
    /// A ReplicaSet's status moving (a Pod turned Ready) lets the rollout take its next step.
    const RELATED: &'static [(Kind, Related)] = &[(("apps/v1", "ReplicaSet"), Related::Owner)];

    fn name(&self) -> &'static str {
        "deployment"
    }

    /// Takes the next rollout step, then records the status, which is kept
    /// current even when the step failed.
    async fn reconcile(&mut self, store: &Store, deployment: &Value) -> anyhow::Result<()> {
        let ns = namespace(deployment);
        let owned = |store: &Store| -> anyhow::Result<Vec<Value>> {
            Ok(store.list("apps/v1", "ReplicaSet", Some(ns), None)?.into_iter().filter(|rs| controlled_by(rs, deployment)).collect())
        };
        let hash = template_hash(deployment);
        let rolled = if terminating(deployment) { Ok(()) } else { roll(store, deployment, &hash, owned(store)?) };
        let failure = rolled.as_ref().err().map(|e| format!("{e:#}"));
        record_status(store, deployment, &hash, &owned(store)?, failure.as_deref())?;
        rolled
    }
}

/// The `pod-template-hash` of the Deployment's template: upstream's form
/// (a 32-bit FNV-1a hash, its decimal digits spelled in the safe alphabet),
/// over the template with its keys sorted, so that a patch that reorders
/// fields does not start a rollout. `status.collisionCount` is mixed in once
/// a name clash forced a new hash.
pub fn template_hash(deployment: &Value) -> String {
    let mut text = String::new();
    canonical(&deployment["spec"]["template"], &mut text);
    if let Some(collisions) = deployment["status"]["collisionCount"].as_u64().filter(|c| *c > 0) {
        text.push_str(&collisions.to_string());
    }
    let mut hash: u32 = 0x811c_9dc5;
    for byte in text.bytes() {
        hash ^= u32::from(byte);
        hash = hash.wrapping_mul(0x0100_0193);
    }
    hash.to_string().bytes().map(|b| SAFE_ALPHABET[usize::from(b) % SAFE_ALPHABET.len()] as char).collect()
}

/// JSON with every object's keys in order, whatever order they arrived in.
fn canonical(value: &Value, out: &mut String) {
    match value {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, key) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(key.clone()).to_string());
                out.push(':');
                canonical(&map[key], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

/// How far a rolling update may go past and below `replicas`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bounds {
    /// Pods beyond `replicas` allowed during the update.
    pub max_surge: i64,
    /// Pods below `replicas` allowed to be unavailable during the update.
    pub max_unavailable: i64,
}

/// `maxSurge` and `maxUnavailable` of a Deployment as Pod counts: percentages
/// of `replicas` (surge rounded up, unavailability down), 25% when unset;
/// both zero is read as one unavailable (as upstream), so a rollout can move.
/// A `Recreate` Deployment may lose every Pod.
pub fn bounds(deployment: &Value) -> Bounds {
    let desired = replicas(deployment);
    let strategy = &deployment["spec"]["strategy"];
    if strategy["type"] == "Recreate" {
        return Bounds { max_surge: 0, max_unavailable: desired };
    }
    let resolve = |value: &Value, round_up: bool| -> i64 {
        let percent = match value {
            Value::Number(n) => return n.as_i64().unwrap_or(0).max(0),
            Value::String(s) => s.strip_suffix('%').and_then(|p| p.parse::<i64>().ok()).unwrap_or(25),
            _ => 25,
        }
        .max(0);
        let scaled = percent * desired;
        if round_up { (scaled + 99) / 100 } else { scaled / 100 }
    };
    let rolling = &strategy["rollingUpdate"];
    let max_surge = resolve(&rolling["maxSurge"], true);
    let max_unavailable = resolve(&rolling["maxUnavailable"], false).min(desired);
    if max_surge == 0 && max_unavailable == 0 {
        return Bounds { max_surge: 0, max_unavailable: 1 };
    }
    Bounds { max_surge, max_unavailable }
}

/// The revision number a ReplicaSet carries (0 when none).
fn revision(object: &Value) -> i64 {
    object["metadata"]["annotations"][REVISION].as_str().and_then(|r| r.parse().ok()).unwrap_or(0)
}

/// Pods a ReplicaSet may count on: Ready ones, but no more than it still asks
/// for, so a status not yet caught up with a scale-down never lets the
/// rollout take more Pods away than it may.
fn available(set: &Value) -> i64 {
    set["status"]["availableReplicas"].as_i64().unwrap_or(0).min(replicas(set))
}

/// Pods an old ReplicaSet may still have: what it asks for, or more while
/// the Pods of a scale-down are not yet deleted (its status counts the live
/// ones). Surge room counted from the spec alone let a new Pod start before
/// the old one it replaces was gone: maxSurge + 1 at once.
fn pods_of(set: &Value) -> i64 {
    replicas(set).max(set["status"]["replicas"].as_i64().unwrap_or(0))
}

/// The next step of the rollout: create or find the new ReplicaSet, move
/// replicas from the old ones to it by strategy, trim the history.
fn roll(store: &Store, deployment: &Value, hash: &str, sets: Vec<Value>) -> anyhow::Result<()> {
    if deployment["spec"]["paused"] == true {
        return Ok(());
    }
    let desired = replicas(deployment);
    let bounds = bounds(deployment);
    let (mut new, mut old): (Vec<Value>, Vec<Value>) = sets.into_iter().partition(|rs| rs["metadata"]["labels"][POD_TEMPLATE_HASH] == hash);
    // Oldest first: they are scaled down first and trimmed first.
    old.sort_by_key(revision);
    let latest_old = old.iter().map(revision).max().unwrap_or(0);
    let recreate = deployment["spec"]["strategy"]["type"] == "Recreate";
    let mut new = match new.pop() {
        // A template seen before (a rollback) becomes the latest revision again.
        Some(set) if revision(&set) <= latest_old => {
            patch_replicaset(store, &set, json!({"metadata": {"annotations": {REVISION: (latest_old + 1).to_string()}}}))?
        }
        Some(set) => set,
        None => {
            let total: i64 = old.iter().map(pods_of).sum();
            let initial = if recreate { 0 } else { (desired + bounds.max_surge - total).clamp(0, desired) };
            create_replicaset(store, deployment, hash, initial, latest_old + 1)?
        }
    };
    if recreate {
        let mut old_pods_left = false;
        for set in old.iter().filter(|rs| replicas(rs) > 0) {
            scale_replicaset(store, deployment, set, 0)?;
            old_pods_left = true;
        }
        let pods = store.list("v1", "Pod", Some(namespace(deployment)), None)?;
        old_pods_left |= pods.iter().any(|p| old.iter().any(|rs| controlled_by(p, rs)));
        // Recreate means no two versions at once: the new Pods wait for the last old one to go.
        if !old_pods_left && replicas(&new) != desired {
            scale_replicaset(store, deployment, &new, desired)?;
        }
    } else {
        let target = new_replicas(replicas(&new), desired, bounds, &old);
        if target != replicas(&new) {
            new = scale_replicaset(store, deployment, &new, target)?;
        }
        scale_down_old(store, deployment, &new, &mut old, bounds)?;
    }
    trim_history(store, deployment, &old)?;
    if revision(deployment) != revision(&new) {
        let patch = json!({"metadata": {"annotations": {REVISION: revision(&new).to_string()}}});
        store.patch("apps/v1", "Deployment", Some(namespace(deployment)), name(deployment), PatchType::Merge, patch.to_string().as_bytes())?;
    }
    Ok(())
}

/// The new ReplicaSet's replicas for a rolling update: up towards `desired`
/// while every ReplicaSet together stays within `desired + maxSurge`; down to
/// `desired` at once when the Deployment was scaled down.
fn new_replicas(current: i64, desired: i64, bounds: Bounds, old: &[Value]) -> i64 {
    if current >= desired {
        return desired;
    }
    let total = current + old.iter().map(pods_of).sum::<i64>();
    let room = desired + bounds.max_surge - total;
    current + room.clamp(0, desired - current)
}

/// Takes old Pods away while at least `desired - maxUnavailable` stay
/// available: first old Pods that are not available anyway, then available
/// ones, oldest ReplicaSet first (upstream's `reconcileOldReplicaSets`).
fn scale_down_old(store: &Store, deployment: &Value, new: &Value, old: &mut [Value], bounds: Bounds) -> anyhow::Result<()> {
    if old.iter().all(|rs| replicas(rs) == 0) {
        return Ok(());
    }
    let min_available = replicas(deployment) - bounds.max_unavailable;
    let all: i64 = replicas(new) + old.iter().map(replicas).sum::<i64>();
    let new_unavailable = (replicas(new) - available(new)).max(0);
    let mut allowed = all - min_available - new_unavailable;
    // Unavailable old Pods cost no availability: they go first.
    for set in old.iter_mut() {
        let unhealthy = replicas(set) - available(set);
        if allowed <= 0 || unhealthy <= 0 {
            continue;
        }
        let step = unhealthy.min(allowed);
        *set = scale_replicaset(store, deployment, set, replicas(set) - step)?;
        allowed -= step;
    }
    let available_now: i64 = available(new) + old.iter().map(available).sum::<i64>();
    let mut allowed = allowed.min(available_now - min_available);
    for set in old.iter_mut() {
        if allowed <= 0 {
            break;
        }
        let step = replicas(set).min(allowed);
        if step > 0 {
            *set = scale_replicaset(store, deployment, set, replicas(set) - step)?;
            allowed -= step;
        }
    }
    Ok(())
}

/// Deletes the oldest scaled-down ReplicaSets beyond `revisionHistoryLimit`.
fn trim_history(store: &Store, deployment: &Value, old: &[Value]) -> anyhow::Result<()> {
    let limit = deployment["spec"]["revisionHistoryLimit"].as_i64().unwrap_or(10).max(0) as usize;
    let idle: Vec<&Value> = old.iter().filter(|rs| replicas(rs) == 0 && rs["status"]["replicas"].as_i64().unwrap_or(0) == 0).collect();
    for set in idle.iter().take(idle.len().saturating_sub(limit)) {
        ignore_not_found(store.delete("apps/v1", "ReplicaSet", Some(namespace(set)), name(set), None))
            .map_err(|e| anyhow::anyhow!("deleting old replicaset {}: {e}", name(set)))?;
        tracing::info!("deployment {}/{}: deleted old replicaset {} (revisionHistoryLimit {limit})", namespace(deployment), name(deployment), name(set));
    }
    Ok(())
}

/// The ReplicaSet of the Deployment's current template, `hash` added to its
/// selector, template labels and own labels.
pub fn replicaset_for(deployment: &Value, hash: &str, replicas: i64, revision: i64) -> Value {
    let mut template = deployment["spec"]["template"].clone();
    template["metadata"]["labels"][POD_TEMPLATE_HASH] = json!(hash);
    let mut selector = deployment["spec"]["selector"].clone();
    selector["matchLabels"][POD_TEMPLATE_HASH] = json!(hash);
    let bounds = bounds(deployment);
    let desired = super::replicaset::replicas(deployment);
    json!({
        "apiVersion": "apps/v1",
        "kind": "ReplicaSet",
        "metadata": {
            "name": format!("{}-{hash}", name(deployment)),
            "namespace": namespace(deployment),
            "labels": template["metadata"]["labels"].clone(),
            "annotations": {
                REVISION: revision.to_string(),
                "deployment.kubernetes.io/desired-replicas": desired.to_string(),
                "deployment.kubernetes.io/max-replicas": (desired + bounds.max_surge).to_string(),
            },
            "ownerReferences": [{
                "apiVersion": "apps/v1", "kind": "Deployment", "name": name(deployment),
                "uid": deployment["metadata"]["uid"], "controller": true, "blockOwnerDeletion": true,
            }],
        },
        "spec": {
            "replicas": replicas,
            "minReadySeconds": deployment["spec"]["minReadySeconds"].as_i64().unwrap_or(0),
            "selector": selector,
            "template": template,
        },
    })
}

fn create_replicaset(store: &Store, deployment: &Value, hash: &str, replicas: i64, revision: i64) -> anyhow::Result<Value> {
    let (ns, deployment_name) = (namespace(deployment), name(deployment));
    let set = replicaset_for(deployment, hash, replicas, revision);
    match store.create(set) {
        Ok(created) => {
            tracing::info!("deployment {ns}/{deployment_name}: created replicaset {} with {replicas} replicas", name(&created));
            Ok(created)
        }
        Err(e) if e.code == 409 => {
            // A ReplicaSet of that name it does not own: a new hash (upstream's collisionCount) avoids it.
            let mut bumped = deployment.clone();
            let collisions = deployment["status"]["collisionCount"].as_i64().unwrap_or(0) + 1;
            bumped["status"]["collisionCount"] = json!(collisions);
            store.update_status(bumped)?;
            anyhow::bail!("replicaset {deployment_name}-{hash} exists and is not this deployment's; trying another name (collision {collisions})")
        }
        Err(e) => anyhow::bail!("creating replicaset {deployment_name}-{hash}: {e}"),
    }
}

fn patch_replicaset(store: &Store, set: &Value, patch: Value) -> anyhow::Result<Value> {
    store
        .patch("apps/v1", "ReplicaSet", Some(namespace(set)), name(set), PatchType::Merge, patch.to_string().as_bytes())
        .map_err(|e| anyhow::anyhow!("updating replicaset {}: {e}", name(set)))
}

fn scale_replicaset(store: &Store, deployment: &Value, set: &Value, replicas: i64) -> anyhow::Result<Value> {
    let desired = super::replicaset::replicas(deployment);
    let patch = json!({
        "metadata": {"annotations": {
            "deployment.kubernetes.io/desired-replicas": desired.to_string(),
            "deployment.kubernetes.io/max-replicas": (desired + bounds(deployment).max_surge).to_string(),
        }},
        "spec": {"replicas": replicas},
    });
    let scaled = patch_replicaset(store, set, patch)?;
    tracing::info!("deployment {}/{}: scaled replicaset {} to {replicas}", namespace(deployment), name(deployment), name(set));
    Ok(scaled)
}

/// Sets (or keeps) one of a Deployment's conditions: `lastTransitionTime`
/// moves when the status flips, `lastUpdateTime` when anything changes.
fn set_condition(conditions: &mut Vec<Value>, condition_type: &str, status: &str, reason: &str, message: &str, progressed: bool) {
    let stamp = now();
    let previous = conditions.iter().position(|c| c["type"] == condition_type).map(|i| conditions.remove(i));
    let unchanged = previous.as_ref().is_some_and(|c| c["status"] == status && c["reason"] == reason && c["message"] == message);
    let transition = match &previous {
        Some(c) if c["status"] == status => c["lastTransitionTime"].clone(),
        _ => json!(stamp),
    };
    let update = match &previous {
        Some(c) if unchanged && !progressed => c["lastUpdateTime"].clone(),
        _ => json!(stamp),
    };
    conditions.push(json!({
        "type": condition_type, "status": status, "reason": reason, "message": message,
        "lastUpdateTime": update, "lastTransitionTime": transition,
    }));
}

/// Whether the Progressing condition has seen no progress for `progressDeadlineSeconds`.
fn past_deadline(deployment: &Value, progressing: Option<&Value>) -> bool {
    let Some(deadline) = deployment["spec"]["progressDeadlineSeconds"].as_i64() else { return false };
    let Some(updated) = progressing.and_then(|c| c["lastUpdateTime"].as_str()).and_then(crate::apiserver::parse_rfc3339) else { return false };
    let Some(now) = crate::apiserver::parse_rfc3339(&now()) else { return false };
    now - updated > deadline
}

fn record_status(store: &Store, deployment: &Value, hash: &str, sets: &[Value], failure: Option<&str>) -> anyhow::Result<()> {
    let Some(current) = store.get("apps/v1", "Deployment", Some(namespace(deployment)), name(deployment)) else { return Ok(()) };
    if current["metadata"]["uid"] != deployment["metadata"]["uid"] {
        return Ok(());
    }
    let count = |set: &Value, field: &str| set["status"][field].as_i64().unwrap_or(0);
    let new = sets.iter().find(|rs| rs["metadata"]["labels"][POD_TEMPLATE_HASH] == hash);
    let desired = replicas(deployment);
    let total: i64 = sets.iter().map(|rs| count(rs, "replicas")).sum();
    let updated = new.map_or(0, |rs| count(rs, "replicas"));
    let ready: i64 = sets.iter().map(|rs| count(rs, "readyReplicas")).sum();
    let available: i64 = sets.iter().map(|rs| count(rs, "availableReplicas")).sum();
    let asked: i64 = sets.iter().map(replicas).sum();
    let previous = &current["status"];
    let progressed = ["replicas", "updatedReplicas", "readyReplicas", "availableReplicas"]
        .iter()
        .zip([total, updated, ready, available])
        .any(|(field, now)| previous[*field].as_i64().unwrap_or(0) != now);

    let mut conditions: Vec<Value> = previous["conditions"].as_array().cloned().unwrap_or_default();
    if available >= desired - bounds(deployment).max_unavailable {
        set_condition(&mut conditions, "Available", "True", "MinimumReplicasAvailable", "Deployment has minimum availability.", false);
    } else {
        set_condition(&mut conditions, "Available", "False", "MinimumReplicasUnavailable", "Deployment does not have minimum availability.", false);
    }
    let new_name = new.map_or_else(|| format!("{}-{hash}", name(deployment)), |rs| name(rs).to_string());
    let new_observed = new.is_some_and(|rs| rs["status"]["observedGeneration"] == rs["metadata"]["generation"]);
    let complete = new_observed && updated == desired && total == updated && available >= updated;
    // Left as it is when nothing moved and no deadline passed.
    let progressing = conditions.iter().find(|c| c["type"] == "Progressing").cloned();
    if deployment["spec"]["paused"] == true {
        set_condition(&mut conditions, "Progressing", "Unknown", "DeploymentPaused", "Deployment is paused", false);
    } else if complete {
        set_condition(
            &mut conditions,
            "Progressing",
            "True",
            "NewReplicaSetAvailable",
            &format!("ReplicaSet \"{new_name}\" has successfully progressed."),
            false,
        );
    } else if progressed || progressing.as_ref().is_none_or(|c| c["reason"] == "NewReplicaSetAvailable" || c["reason"] == "DeploymentPaused") {
        let reason = if new.is_some_and(|rs| rs["status"]["observedGeneration"].is_null()) { "NewReplicaSetCreated" } else { "ReplicaSetUpdated" };
        set_condition(&mut conditions, "Progressing", "True", reason, &format!("ReplicaSet \"{new_name}\" is progressing."), true);
    } else if past_deadline(deployment, progressing.as_ref()) && progressing.as_ref().is_some_and(|c| c["status"] == "True") {
        set_condition(
            &mut conditions,
            "Progressing",
            "False",
            "ProgressDeadlineExceeded",
            &format!("ReplicaSet \"{new_name}\" has timed out progressing."),
            false,
        );
    }
    // A failed step (or a new ReplicaSet that cannot create its Pods) is the ReplicaFailure condition.
    let replica_failure = failure.map(str::to_string).or_else(|| {
        new.and_then(|rs| {
            rs["status"]["conditions"].as_array()?.iter().find(|c| c["type"] == "ReplicaFailure" && c["status"] == "True")?["message"]
                .as_str()
                .map(str::to_string)
        })
    });
    match replica_failure {
        Some(message) => set_condition(&mut conditions, "ReplicaFailure", "True", "FailedCreate", &message, false),
        None => conditions.retain(|c| c["type"] != "ReplicaFailure"),
    }
    // Conditions in a stable order, so an unchanged status is not rewritten.
    conditions.sort_by_key(|c| ["Available", "Progressing", "ReplicaFailure"].iter().position(|t| c["type"] == *t));

    let mut status = Map::new();
    status.insert("observedGeneration".into(), deployment["metadata"]["generation"].clone());
    for (field, value) in [
        ("replicas", total),
        ("updatedReplicas", updated),
        ("readyReplicas", ready),
        ("availableReplicas", available),
        ("unavailableReplicas", (asked.max(desired) - available).max(0)),
    ] {
        status.insert(field.into(), json!(value));
    }
    if let Some(collisions) = previous["collisionCount"].as_i64() {
        status.insert("collisionCount".into(), json!(collisions));
    }
    status.insert("conditions".into(), Value::Array(conditions));
    let status = Value::Object(status);
    if current["status"] != status {
        let mut with_status = current;
        with_status["status"] = status;
        store.update_status(with_status)?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(replicas: i64, strategy: Value) -> Value {
        json!({"metadata": {"name": "web", "namespace": "shop", "uid": "u1", "generation": 1},
            "spec": {"replicas": replicas, "strategy": strategy, "selector": {"matchLabels": {"app": "web"}},
                "template": {"metadata": {"labels": {"app": "web"}}, "spec": {"containers": [{"name": "web", "image": "runner-lab/webapp:1.30"}]}}}})
    }

    #[test]
    fn surge_rounds_up_and_unavailability_down() {
        let d = deployment(3, json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": "25%", "maxUnavailable": "25%"}}));
        assert_eq!(bounds(&d), Bounds { max_surge: 1, max_unavailable: 0 });
        let d = deployment(10, json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 2, "maxUnavailable": "50%"}}));
        assert_eq!(bounds(&d), Bounds { max_surge: 2, max_unavailable: 5 });
        let d = deployment(4, json!({"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 0, "maxUnavailable": 0}}));
        assert_eq!(bounds(&d), Bounds { max_surge: 0, max_unavailable: 1 }, "a rollout must be able to move");
        assert_eq!(bounds(&deployment(4, json!({}))), Bounds { max_surge: 1, max_unavailable: 1 }, "25% each by default");
        assert_eq!(bounds(&deployment(4, json!({"type": "Recreate"}))), Bounds { max_surge: 0, max_unavailable: 4 });
    }

    #[test]
    fn the_hash_follows_the_template_not_its_key_order() {
        let d = deployment(3, json!({}));
        let hash = template_hash(&d);
        assert!(!hash.is_empty() && hash.bytes().all(|b| SAFE_ALPHABET.contains(&b)), "{hash}");
        let reordered: Value = serde_json::from_str(
            r#"{"metadata": {"name": "web"}, "spec": {"template": {"spec": {"containers": [{"image": "runner-lab/webapp:1.30", "name": "web"}]}, "metadata": {"labels": {"app": "web"}}}}}"#,
        )
        .unwrap();
        assert_eq!(template_hash(&reordered), hash);
        let mut changed = d.clone();
        changed["spec"]["template"]["spec"]["containers"][0]["image"] = json!("runner-lab/webapp:1.31");
        assert_ne!(template_hash(&changed), hash);
        let mut collided = d.clone();
        collided["status"]["collisionCount"] = json!(1);
        assert_ne!(template_hash(&collided), hash);
    }

    #[test]
    fn replicasets_carry_the_hash_and_their_owner() {
        let d = deployment(3, json!({}));
        let set = replicaset_for(&d, "abc12", 1, 2);
        assert_eq!(set["metadata"]["name"], "web-abc12");
        assert_eq!(set["spec"]["selector"]["matchLabels"], json!({"app": "web", POD_TEMPLATE_HASH: "abc12"}));
        assert_eq!(set["spec"]["template"]["metadata"]["labels"][POD_TEMPLATE_HASH], "abc12");
        assert_eq!(set["metadata"]["annotations"][REVISION], "2");
        assert_eq!(set["metadata"]["ownerReferences"][0]["uid"], "u1");
    }

    #[test]
    fn the_new_replicaset_grows_within_the_surge() {
        let bounds = Bounds { max_surge: 1, max_unavailable: 0 };
        let old = |n: i64| vec![json!({"spec": {"replicas": n}})];
        assert_eq!(new_replicas(0, 3, bounds, &old(3)), 1, "one Pod beyond 3");
        assert_eq!(new_replicas(1, 3, bounds, &old(3)), 1, "no room until an old Pod goes");
        assert_eq!(new_replicas(1, 3, bounds, &old(2)), 2);
        assert_eq!(new_replicas(3, 3, bounds, &old(0)), 3);
        assert_eq!(new_replicas(5, 3, bounds, &old(0)), 3, "a scale-down applies at once");
        assert_eq!(new_replicas(0, 3, bounds, &[]), 3, "a first rollout starts every Pod");
        let deleting = vec![json!({"spec": {"replicas": 2}, "status": {"replicas": 3}})];
        assert_eq!(new_replicas(1, 3, bounds, &deleting), 1, "no room while the old Pod scaled away still lives");
    }
}

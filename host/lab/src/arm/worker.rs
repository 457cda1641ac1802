//! What the operations do to the lab: surge Nodes, cordon and drain through
//! the eviction API (PodDisruptionBudgets hold, refusals are retried until
//! the drain timeout, as AKS does), soak, delete, reimage; and the Events
//! (source `upgrader`, involvedObject the Node) a compliance report reads
//! each Node's drain timeline from.

use std::collections::HashSet;
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::Arm;
use super::rules::{self, Settings};
use crate::controllers::{name, namespace, terminating};
use crate::topology::{self, IMAGE_LABEL, LATEST_IMAGE, NodeImage};

/// The component AKS names in its upgrade Events.
const COMPONENT: &str = "upgrader";
/// The label AKS puts on a Node it could not drain under `Cordon`.
pub const QUARANTINE_LABEL: &str = "kubernetes.azure.com/upgrade-status";
/// How often a refused eviction is tried again.
const EVICT_RETRY: Duration = Duration::from_millis(500);
/// How long a new Node may take to turn Ready.
const READY_WITHIN: Duration = Duration::from_secs(60);
/// How long the control plane takes to upgrade in the lab.
const CONTROL_PLANE_UPGRADE: Duration = Duration::from_secs(2);

/// One operation's work.
pub(crate) enum Job {
    /// The control plane to `version`.
    ControlPlane { version: String },
    /// A pool's Nodes to `version`.
    UpgradePool { pool: String, version: String },
    /// A pool's Nodes to the latest node image.
    NodeImage { pool: String },
    /// A new pool's Nodes.
    AddPool { pool: String },
    /// A pool's Nodes drained and removed, then the pool.
    DeletePool { pool: String },
}

/// Why an operation failed: AKS's code and message.
struct Failure {
    code: &'static str,
    message: String,
}

/// Runs `job` for operation `op` in the background; a lab that stops
/// meanwhile leaves it InProgress, to be marked Failed on the next start.
pub(crate) fn spawn(arm: Arm, op: String, job: Job) {
    let mut stopped = arm.stopped.clone();
    tokio::spawn(async move {
        let work = run(&arm, &op, job);
        tokio::select! {
            result = work => {
                let error = result.err();
                arm.with(|c| c.finish(&op, error.as_ref().map(|f| (f.code, f.message.as_str()))));
                if let Some(f) = error {
                    tracing::warn!("ARM operation {op} failed: {}: {}", f.code, f.message);
                }
            }
            _ = stopped.wait_for(|s| *s) => {}
        }
    });
}

async fn run(arm: &Arm, op: &str, job: Job) -> Result<(), Failure> {
    match job {
        Job::ControlPlane { version } => {
            tokio::time::sleep(CONTROL_PLANE_UPGRADE).await;
            arm.store.set_server_version(&version);
            arm.with(|c| c.current_kubernetes_version = version);
            Ok(())
        }
        Job::UpgradePool { pool, version } => {
            let image = arm.snapshot().image_of(&pool);
            roll(arm, op, &pool, &version, image, false).await?;
            arm.with(|c| {
                if let Some(p) = c.pools.get_mut(&pool) {
                    p.current_orchestrator_version = version;
                }
            });
            Ok(())
        }
        Job::NodeImage { pool } => {
            let version = arm.snapshot().pools.get(&pool).map(|p| p.current_orchestrator_version.clone()).unwrap_or_default();
            roll(arm, op, &pool, &version, LATEST_IMAGE, true).await?;
            arm.with(|c| {
                if let Some(p) = c.pools.get_mut(&pool) {
                    p.node_image_version = LATEST_IMAGE.version.into();
                }
            });
            Ok(())
        }
        Job::AddPool { pool } => {
            let (count, version) = arm.snapshot().pools.get(&pool).map(|p| (p.count, p.current_orchestrator_version.clone())).unwrap_or((0, String::new()));
            let image = arm.snapshot().image_of(&pool);
            let mut nodes = Vec::new();
            for i in 0..count {
                nodes.push(add_node(arm, &pool, &version, &image)?);
                set_progress(arm, op, i + 1, count * 2);
            }
            wait_ready(arm, &nodes).await
        }
        Job::DeletePool { pool } => {
            let nodes = pool_nodes(arm, &pool);
            let settings = settings_of(arm, &pool)?;
            let timeout = arm.minute * settings.drain_timeout_minutes;
            let total = nodes.len() as u32;
            for (i, node) in nodes.iter().enumerate() {
                let node_name = name(node).to_string();
                cordon(arm, &node_name, true)?;
                event(arm, &node_name, "Normal", "Drain", &format!("Draining node: [{node_name}]"));
                if let Err(blocked) = drain(arm, &node_name, timeout).await {
                    return Err(Failure { code: "PodDrainFailure", message: blocked });
                }
                event(arm, &node_name, "Normal", "Delete", &format!("Deleting node {node_name} from API server"));
                delete_node(arm, &node_name);
                set_progress(arm, op, i as u32 + 1, total);
            }
            arm.with(|c| c.pools.remove(&pool));
            Ok(())
        }
    }
}

fn settings_of(arm: &Arm, pool: &str) -> Result<Settings, Failure> {
    let (raw, count) = arm.snapshot().pools.get(pool).map(|p| (p.upgrade_settings.clone(), p.count)).unwrap_or_default();
    rules::settings(&raw, count).map_err(|e| Failure { code: "InvalidParameter", message: e })
}

fn set_progress(arm: &Arm, op: &str, done: u32, total: u32) {
    let percent = if total == 0 { 100.0 } else { (done as f64 * 100.0 / total as f64).min(99.0) };
    arm.with(|c| {
        if let Some(o) = c.operations.get_mut(op) {
            o.percent_complete = percent;
        }
    });
}

/// The Nodes of `pool`, by name.
fn pool_nodes(arm: &Arm, pool: &str) -> Vec<Value> {
    arm.store.list("v1", "Node", None, Some(&format!("agentpool={pool}"))).unwrap_or_default()
}

fn at_target(node: &Value, version: &str, image: &NodeImage) -> bool {
    node["status"]["nodeInfo"]["kubeletVersion"].as_str() == Some(&format!("v{version}"))
        && node["metadata"]["labels"][IMAGE_LABEL].as_str() == Some(image.version)
}

fn quarantined(node: &Value) -> bool {
    node["metadata"]["labels"][QUARANTINE_LABEL] == "Quarantined"
}

/// Rolls `pool` onto `version` and `image`: in batches of maxSurge new
/// Nodes plus maxUnavailable Nodes reimaged in place; each old Node
/// cordoned, drained, soaked, then deleted (or reimaged).
async fn roll(arm: &Arm, op: &str, pool: &str, version: &str, image: NodeImage, image_only: bool) -> Result<(), Failure> {
    let settings = settings_of(arm, pool)?;
    let mut old: Vec<Value> = pool_nodes(arm, pool).into_iter().filter(|n| !at_target(n, version, &image) && !quarantined(n)).collect();
    let total = old.len() as u32;
    let timeout = arm.minute * settings.drain_timeout_minutes;
    let soak = arm.minute * settings.soak_minutes;
    let mut done = 0;
    let mut blocked_nodes: Vec<(String, String)> = Vec::new();
    for (surged, in_place) in settings.batches(total) {
        let batch: Vec<Value> = old.drain(..(surged + in_place) as usize).collect();
        let mut surge = Vec::new();
        for _ in 0..surged {
            let node = add_node(arm, pool, version, &image)?;
            event(arm, &node, "Normal", "Surge", &format!("Created a surge node [{node} {pool}] for agentpool {pool}"));
            surge.push(node);
        }
        wait_ready(arm, &surge).await?;
        for (i, node) in batch.iter().enumerate() {
            let node_name = name(node).to_string();
            let replaced = i < surged as usize;
            cordon(arm, &node_name, true)?;
            event(arm, &node_name, "Normal", "Drain", &format!("Draining node: [{node_name}]"));
            if let Err(blocked) = drain(arm, &node_name, timeout).await {
                event(arm, &node_name, "Warning", "UpgradeFailed", &blocked);
                if settings.cordon {
                    quarantine(arm, &node_name)?;
                    event(
                        arm,
                        &node_name,
                        "Warning",
                        "Quarantine",
                        &format!("Node {node_name} could not be drained: cordoned and labelled {QUARANTINE_LABEL}=Quarantined; its surge node is kept"),
                    );
                    blocked_nodes.push((node_name, blocked));
                    continue;
                }
                // Schedule: the blocked Node takes Pods again, unupgraded; an unused surge Node goes.
                cordon(arm, &node_name, false)?;
                for spare in surge.iter().skip(i) {
                    if pods_on(arm, spare).is_empty() {
                        event(arm, spare, "Normal", "Delete", &format!("Deleting node {spare} from API server"));
                        delete_node(arm, spare);
                    }
                }
                return Err(Failure { code: "UpgradeFailed", message: blocked });
            }
            event(arm, &node_name, "Normal", "Drain", &format!("Successfully drained node: {node_name}"));
            if !soak.is_zero() {
                event(arm, &node_name, "Normal", "Upgrade", &format!("Soak duration {}m after draining node: {node_name}", settings.soak_minutes));
                tokio::time::sleep(soak).await;
            }
            if replaced {
                event(arm, &node_name, "Normal", "Delete", &format!("Deleting node {node_name} from API server"));
                delete_node(arm, &node_name);
            } else {
                reimage(arm, &node_name, version, &image)?;
                event(arm, &node_name, "Normal", "Upgrade", &format!("Successfully upgraded node: {node_name}"));
            }
            done += 1;
            set_progress(arm, op, done, total);
        }
        for node in &surge {
            event(arm, node, "Normal", "Upgrade", &format!("Successfully upgraded node: {node}"));
        }
    }
    if !blocked_nodes.is_empty() {
        let names: Vec<&str> = blocked_nodes.iter().map(|(n, _)| n.as_str()).collect();
        let what = if image_only { "node image upgrade" } else { "upgrade" };
        return Err(Failure {
            code: "UpgradeFailed",
            message: format!(
                "The {what} of agent pool {pool} could not drain {} node(s), which are quarantined (cordoned, labelled {QUARANTINE_LABEL}=Quarantined) with a surge node kept for each: {}. First failure: {}",
                names.len(),
                names.join(", "),
                blocked_nodes[0].1
            ),
        });
    }
    Ok(())
}

/// Creates the pool's next Node (VMSS numbering goes on), not Ready yet:
/// the kubelet posts it. Its name.
fn add_node(arm: &Arm, pool: &str, version: &str, image: &NodeImage) -> Result<String, Failure> {
    let (vmss, index, mut labels, mode) = arm
        .with(|c| {
            c.pools.get_mut(pool).map(|p| {
                let index = p.next_index;
                p.next_index += 1;
                (p.vmss.clone(), index, p.node_labels.clone(), p.mode.to_lowercase())
            })
        })
        .ok_or_else(|| Failure { code: "NotFound", message: format!("agent pool {pool} is gone") })?;
    labels.insert("kubernetes.azure.com/mode".into(), json!(mode));
    let node = topology::aks_node(&vmss, pool, index as usize, &format!("v{version}"), image, &labels, false);
    let node_name = name(&node).to_string();
    arm.store.create(node).map_err(|e| Failure { code: "InternalOperationError", message: format!("creating node {node_name}: {e}") })?;
    Ok(node_name)
}

fn node_ready(node: &Value) -> bool {
    node["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

async fn wait_ready(arm: &Arm, nodes: &[String]) -> Result<(), Failure> {
    let deadline = Instant::now() + READY_WITHIN;
    let mut pending: Vec<String> = nodes.to_vec();
    while !pending.is_empty() {
        pending.retain(|n| {
            let ready = arm.store.get("v1", "Node", None, n).is_some_and(|node| node_ready(&node));
            if ready {
                event(arm, n, "Normal", "NodeReady", &format!("Node {n} status is now: NodeReady"));
            }
            !ready
        });
        if pending.is_empty() {
            break;
        }
        if Instant::now() > deadline {
            return Err(Failure {
                code: "VMExtensionProvisioningTimeout",
                message: format!("node(s) {} did not turn Ready within {READY_WITHIN:?}", pending.join(", ")),
            });
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    Ok(())
}

/// Changes a Node (its main part), retrying on a write that raced the kubelet's status.
fn modify_node(arm: &Arm, node_name: &str, change: impl Fn(&mut Value)) -> Result<(), Failure> {
    for _ in 0..20 {
        let Some(mut node) = arm.store.get("v1", "Node", None, node_name) else { return Ok(()) };
        change(&mut node);
        match arm.store.update(node) {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(Failure { code: "InternalOperationError", message: format!("updating node {node_name}: {e}") }),
        }
    }
    Err(Failure { code: "InternalOperationError", message: format!("updating node {node_name}: it kept changing") })
}

fn cordon(arm: &Arm, node_name: &str, on: bool) -> Result<(), Failure> {
    modify_node(arm, node_name, |n| n["spec"]["unschedulable"] = json!(on))
}

fn quarantine(arm: &Arm, node_name: &str) -> Result<(), Failure> {
    modify_node(arm, node_name, |n| {
        n["spec"]["unschedulable"] = json!(true);
        n["metadata"]["labels"][QUARANTINE_LABEL] = json!("Quarantined");
    })
}

/// Replaces the Node in place at the new version and image (maxSurge 0).
fn reimage(arm: &Arm, node_name: &str, version: &str, image: &NodeImage) -> Result<(), Failure> {
    modify_node(arm, node_name, |n| {
        n["spec"]["unschedulable"] = json!(false);
        n["metadata"]["labels"][IMAGE_LABEL] = json!(image.version);
    })?;
    for _ in 0..20 {
        let Some(mut node) = arm.store.get("v1", "Node", None, node_name) else { return Ok(()) };
        let info = &mut node["status"]["nodeInfo"];
        info["kubeletVersion"] = json!(format!("v{version}"));
        info["kubeProxyVersion"] = json!(format!("v{version}"));
        info["kernelVersion"] = json!(image.kernel);
        info["osImage"] = json!(image.os_image);
        match arm.store.update_status(node) {
            Ok(_) => return Ok(()),
            Err(e) if e.code == 409 => continue,
            Err(e) => return Err(Failure { code: "InternalOperationError", message: format!("reimaging node {node_name}: {e}") }),
        }
    }
    Ok(())
}

fn delete_node(arm: &Arm, node_name: &str) {
    if let Err(e) = arm.store.delete("v1", "Node", None, node_name, None)
        && e.code != 404
    {
        tracing::warn!("deleting node {node_name}: {e}");
    }
}

/// The Pods bound to a Node that a drain evicts (DaemonSet Pods stay, as
/// `kubectl drain --ignore-daemonsets` and AKS leave them).
fn pods_on(arm: &Arm, node_name: &str) -> Vec<Value> {
    arm.store
        .list("v1", "Pod", None, None)
        .unwrap_or_default()
        .into_iter()
        .filter(|p| p["spec"]["nodeName"] == node_name)
        .filter(|p| !p["metadata"]["ownerReferences"].as_array().is_some_and(|r| r.iter().any(|o| o["kind"] == "DaemonSet")))
        .collect()
}

/// The PodDisruptionBudget named in an eviction's 429 (`The disruption budget X needs ...`).
fn pdb_of(error: &crate::apiserver::ApiError) -> Option<String> {
    let causes = error.details.as_ref()?["causes"].as_array()?.clone();
    causes.iter().find_map(|c| c["message"].as_str()?.strip_prefix("The disruption budget ")?.split_whitespace().next().map(str::to_string))
}

/// AKS's message for a drain a PodDisruptionBudget held past the timeout.
fn blocked_message(arm: &Arm, node_name: &str, ns: &str, pod: &str, pdb: &str) -> String {
    let selector = arm.store.get("policy/v1", "PodDisruptionBudget", Some(ns), pdb).map(|b| b["spec"]["selector"].clone()).unwrap_or(Value::Null);
    let unready: Vec<String> = arm
        .store
        .list("v1", "Pod", Some(ns), None)
        .unwrap_or_default()
        .iter()
        .filter(|p| crate::controllers::selector_matches(&selector, p) && !crate::controllers::pod_ready(p))
        .map(|p| format!("{ns}/{}", name(p)))
        .collect();
    format!(
        "Drain node {node_name} failed when evicting pod {pod} failed with Too Many Requests error. This is often caused by a restrictive Pod Disruption Budget (PDB) policy. See http://aka.ms/aks/debugdrainfailures. Original error: Cannot evict pod as it would violate the pod's disruption budget.. PDB debug info: {ns}/{pod} blocked by pdb {pdb} with {} unready pods: [{}].",
        unready.len(),
        unready.join(" ")
    )
}

/// Evicts every Pod of the Node, retrying refusals, until none is left or
/// `timeout` passes; then AKS's message naming the Pod and the budget.
async fn drain(arm: &Arm, node_name: &str, timeout: Duration) -> Result<(), String> {
    let deadline = Instant::now() + timeout;
    let mut evicted: HashSet<String> = HashSet::new();
    let mut reported: HashSet<String> = HashSet::new();
    loop {
        let pods = pods_on(arm, node_name);
        if pods.is_empty() {
            return Ok(());
        }
        let mut last_block: Option<String> = None;
        for pod in pods.iter().filter(|p| !terminating(p)) {
            let (ns, pod_name) = (namespace(pod).to_string(), name(pod).to_string());
            let key = format!("{ns}/{pod_name}/{}", pod["metadata"]["uid"].as_str().unwrap_or_default());
            let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": pod_name, "namespace": ns}});
            match arm.store.evict_res(&ns, &pod_name, &body) {
                Ok(_) => {
                    if evicted.insert(key) {
                        event(arm, node_name, "Normal", "Evict", &format!("Evicted pod {ns}/{pod_name} from node {node_name}"));
                    }
                }
                Err(e) if e.code == 404 => {}
                Err(e) => {
                    let pdb = pdb_of(&e);
                    if reported.insert(key) {
                        let budget = pdb.as_deref().map(|b| format!("PodDisruptionBudget {ns}/{b}")).unwrap_or_else(|| "the eviction API".into());
                        event(
                            arm,
                            node_name,
                            "Warning",
                            "EvictionBlocked",
                            &format!("Eviction of pod {ns}/{pod_name} blocked by {budget}: {}; retrying until the drain timeout", e.message),
                        );
                    }
                    last_block = Some(match pdb {
                        Some(pdb) => blocked_message(arm, node_name, &ns, &pod_name, &pdb),
                        None => format!("Drain node {node_name} failed when evicting pod {pod_name}: {}", e.message),
                    });
                }
            }
        }
        if Instant::now() >= deadline {
            let first = pods.first().map(|p| format!("{}/{}", namespace(p), name(p))).unwrap_or_default();
            return Err(last_block.unwrap_or_else(|| format!("Drain node {node_name} failed: pod {first} did not terminate within the drain timeout")));
        }
        tokio::time::sleep(EVICT_RETRY.min(deadline.saturating_duration_since(Instant::now()).max(Duration::from_millis(10)))).await;
    }
}

/// Records an upgrader Event about a Node, with a microsecond `eventTime`
/// so a timeline can order what happened within one second.
fn event(arm: &Arm, node_name: &str, event_type: &str, reason: &str, message: &str) {
    let uid = arm.store.get("v1", "Node", None, node_name).map(|n| n["metadata"]["uid"].clone()).unwrap_or(Value::Null);
    let stamp = crate::controllers::now();
    let mut involved = Map::new();
    involved.insert("apiVersion".into(), json!("v1"));
    involved.insert("kind".into(), json!("Node"));
    involved.insert("name".into(), json!(node_name));
    involved.insert("uid".into(), uid);
    let event = json!({
        "apiVersion": "v1",
        "kind": "Event",
        "metadata": {"name": format!("{node_name}.{}", uuid::Uuid::new_v4().simple()), "namespace": "default"},
        "involvedObject": involved,
        "reason": reason,
        "message": message,
        "type": event_type,
        "source": {"component": COMPONENT},
        "reportingComponent": COMPONENT,
        "reportingInstance": COMPONENT,
        "action": reason,
        "eventTime": super::state::now(),
        "firstTimestamp": stamp,
        "lastTimestamp": stamp,
        "count": 1,
    });
    if let Err(e) = arm.store.create(event) {
        tracing::debug!("recording {reason} for node {node_name}: {e}");
    }
}

//! MongoDB replica-set initiation: once every member of a MongoDB
//! StatefulSet is Ready for the first time, the set is initiated with every
//! member and the `root` user created (the runtime's
//! `mongo_replset_initiate`). Members keep their data and the set's
//! configuration in their volume, so a recreated Pod rejoins on its own.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::kubelet::Kubelet;
use super::statefulset::ordinal;
use super::{name, namespace, pod_ready, terminating};
use crate::apiserver::Store;

/// The StatefulSet annotation that records an initiated replica set.
pub const INITIATED: &str = "lab.runner.dev/mongo-replset";

/// Initiate each MongoDB StatefulSet's replica set once, until `stopped`.
pub async fn run(store: Store, kubelet: Kubelet, stopped: watch::Receiver<bool>) {
    let mut events = store.subscribe();
    let mut stopping = stopped.clone();
    loop {
        if let Ok(sets) = store.list("apps/v1", "StatefulSet", None, None) {
            for set in sets.iter().filter(|s| is_mongo(s)) {
                tokio::select! {
                    _ = initiate(&store, &kubelet, set) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        }
        if !super::next_change(&mut events, &stopped).await {
            return;
        }
    }
}

/// Whether the StatefulSet runs MongoDB (`mongo:*` images).
pub fn is_mongo(set: &Value) -> bool {
    set["spec"]["template"]["spec"]["containers"][0]["image"].as_str().is_some_and(|i| i.starts_with("mongo:"))
}

async fn initiate(store: &Store, kubelet: &Kubelet, set: &Value) {
    let (ns, set_name) = (namespace(set), name(set));
    if set["metadata"]["annotations"][INITIATED] == "initiated" {
        return;
    }
    let replicas = set["spec"]["replicas"].as_u64().unwrap_or(0) as usize;
    let Ok(pods) = store.list("v1", "Pod", Some(ns), None) else { return };
    let mut members: Vec<&Value> = pods.iter().filter(|p| ordinal(set_name, name(p)).is_some() && !terminating(p)).collect();
    if replicas == 0 || members.len() != replicas || !members.iter().all(|p| pod_ready(p)) {
        return;
    }
    members.sort_by_key(|p| ordinal(set_name, name(p)));
    let specs: Vec<_> = {
        let running = kubelet.members.lock().unwrap_or_else(|p| p.into_inner());
        members.iter().filter_map(|p| running.get(&format!("{ns}/{}", name(p))).cloned()).collect()
    };
    if specs.len() != replicas {
        return;
    }
    tracing::info!("mongo {ns}/{set_name}: initiating replica set {} over {replicas} members", runner_lab_runtime::MONGO_REPLICA_SET);
    match tokio::time::timeout(Duration::from_secs(300), runner_lab_runtime::mongo_replset_initiate(&specs)).await {
        Ok(Ok(())) => {
            let patch = serde_json::json!({"metadata": {"annotations": {INITIATED: "initiated"}}}).to_string();
            if let Err(e) = store.patch("apps/v1", "StatefulSet", Some(ns), set_name, crate::apiserver::PatchType::Merge, patch.as_bytes()) {
                tracing::warn!("mongo {ns}/{set_name}: recording the initiated set: {e}");
            }
            tracing::info!("mongo {ns}/{set_name}: one PRIMARY, {} SECONDARY", replicas - 1);
        }
        Ok(Err(e)) => tracing::warn!("mongo {ns}/{set_name}: initiating the replica set: {e}"),
        Err(_) => tracing::warn!("mongo {ns}/{set_name}: initiating the replica set timed out"),
    }
}

//! Redis cluster formation: once every member of a Redis StatefulSet is
//! Ready for the first time, slots are spread over the masters with one
//! replica each (`redis-cli --cluster create`). Members keep `nodes.conf` in
//! their volume, so a recreated Pod rejoins with its identity on its own.

use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;

use super::kubelet::Kubelet;
use super::statefulset::ordinal;
use super::{name, namespace, pod_ready, terminating};
use crate::apiserver::Store;

/// The StatefulSet annotation that records a formed cluster.
pub const FORMED: &str = "lab.runner.dev/redis-cluster";

/// Form each Redis StatefulSet's cluster once, until `stopped`.
pub async fn run(store: Store, kubelet: Kubelet, stopped: watch::Receiver<bool>) {
    let mut events = store.subscribe();
    let mut stopping = stopped.clone();
    loop {
        if let Ok(sets) = store.list("apps/v1", "StatefulSet", None, None) {
            for set in sets.iter().filter(|s| is_redis(s)) {
                // Forming takes seconds: the lab must still be able to stop meanwhile.
                tokio::select! {
                    _ = form(&store, &kubelet, set) => {}
                    _ = stopping.wait_for(|s| *s) => return,
                }
            }
        }
        if !super::next_change(&mut events, &stopped).await {
            return;
        }
    }
}

fn is_redis(set: &Value) -> bool {
    set["spec"]["template"]["spec"]["containers"][0]["image"].as_str().is_some_and(|i| i.starts_with("redis:"))
}

async fn form(store: &Store, kubelet: &Kubelet, set: &Value) {
    let (ns, set_name) = (namespace(set), name(set));
    if set["metadata"]["annotations"][FORMED] == "formed" {
        return;
    }
    let replicas = set["spec"]["replicas"].as_u64().unwrap_or(0) as usize;
    let Ok(pods) = store.list("v1", "Pod", Some(ns), None) else { return };
    let mut members: Vec<&Value> = pods.iter().filter(|p| ordinal(set_name, name(p)).is_some() && !terminating(p)).collect();
    if replicas < 3 || members.len() != replicas || !members.iter().all(|p| pod_ready(p)) {
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
    let replicas_per_master = usize::from(replicas >= 6);
    tracing::info!("redis {ns}/{set_name}: forming the cluster over {replicas} members");
    match tokio::time::timeout(Duration::from_secs(120), runner_lab_runtime::redis_cluster_create(&specs, replicas_per_master)).await {
        Ok(Ok(())) => {
            // Recorded on the object, so `runner lab up` (and anyone) can see it through the API.
            let patch = serde_json::json!({"metadata": {"annotations": {FORMED: "formed"}}}).to_string();
            if let Err(e) = store.patch("apps/v1", "StatefulSet", Some(ns), set_name, crate::apiserver::PatchType::Merge, patch.as_bytes()) {
                tracing::warn!("redis {ns}/{set_name}: recording the formed cluster: {e}");
            }
            tracing::info!("redis {ns}/{set_name}: cluster_state:ok");
        }
        Ok(Err(e)) => tracing::warn!("redis {ns}/{set_name}: forming the cluster: {e}"),
        Err(_) => tracing::warn!("redis {ns}/{set_name}: forming the cluster timed out"),
    }
}

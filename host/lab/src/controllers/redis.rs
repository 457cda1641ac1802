//! Redis cluster formation: once every member of a Redis StatefulSet is
//! Ready for the first time, slots are spread over the masters with one
//! replica each (`redis-cli --cluster create`). Members keep `nodes.conf` in
//! their volume, so a recreated Pod rejoins with its identity on its own.

use tokio::sync::watch;

use super::kubelet::Kubelet;
use super::setup::REDIS_CLUSTER;
use crate::apiserver::Store;

/// Form each Redis StatefulSet's cluster once, until `stopped`.
pub async fn run(store: Store, kubelet: Kubelet, stopped: watch::Receiver<bool>) {
    REDIS_CLUSTER
        .run(store, kubelet, stopped, |members| async move {
            // Six members or more: three masters or more with one replica each.
            let replicas_per_master = usize::from(members.len() >= 6);
            runner_lab_runtime::redis_cluster_create(&members, replicas_per_master).await.map_err(|e| e.to_string())
        })
        .await;
}

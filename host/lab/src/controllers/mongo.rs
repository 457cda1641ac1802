//! MongoDB replica-set initiation: once every member of a MongoDB
//! StatefulSet is Ready for the first time, the set is initiated with every
//! member and the `root` user created (the runtime's
//! `mongo_replset_initiate`). Members keep their data and the set's
//! configuration in their volume, so a recreated Pod rejoins on its own.

use tokio::sync::watch;

use super::kubelet::Kubelet;
use super::setup::MONGO_REPLICA_SET;
use crate::apiserver::Store;

/// Initiate each MongoDB StatefulSet's replica set once, until `stopped`.
pub async fn run(store: Store, kubelet: Kubelet, stopped: watch::Receiver<bool>) {
    MONGO_REPLICA_SET
        .run(store, kubelet, stopped, |members| async move { runner_lab_runtime::mongo_replset_initiate(&members).await.map_err(|e| e.to_string()) })
        .await;
}

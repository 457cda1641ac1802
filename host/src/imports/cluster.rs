//! `cluster-read` and `cluster-write`: the control plane and node pools.
//! Skeleton until the AKS backend lands: every call answers `unavailable`.

use super::HostState;
use crate::wit::pattern::runner::policy::{cluster_read, cluster_write};
use crate::wit::{Error, ErrorCode};

fn not_yet<T>() -> wasmtime::Result<Result<T, Error>> {
    Ok(Err(Error { code: ErrorCode::Unavailable, message: "the cluster backend is not built yet".into() }))
}

impl cluster_read::Host for HostState {
    async fn control_plane(&mut self) -> wasmtime::Result<Result<cluster_read::ControlPlaneInfo, Error>> {
        not_yet()
    }
    async fn node_pools(&mut self) -> wasmtime::Result<Result<Vec<cluster_read::NodePoolInfo>, Error>> {
        not_yet()
    }
    async fn node_pool(&mut self, _name: String) -> wasmtime::Result<Result<cluster_read::NodePoolInfo, Error>> {
        not_yet()
    }
    async fn pool_upgrade_profile(&mut self, _pool: String) -> wasmtime::Result<Result<cluster_read::PoolUpgradeProfileInfo, Error>> {
        not_yet()
    }
    async fn operation(&mut self, _id: String) -> wasmtime::Result<Result<cluster_read::OperationInfo, Error>> {
        not_yet()
    }
}

impl cluster_write::Host for HostState {
    async fn upgrade_control_plane(&mut self, _version: String, _timeout_ms: u64) -> wasmtime::Result<Result<cluster_read::OperationInfo, Error>> {
        not_yet()
    }
    async fn add_node_pool(&mut self, _pool: cluster_write::NewNodePool, _timeout_ms: u64) -> wasmtime::Result<Result<cluster_read::NodePoolInfo, Error>> {
        not_yet()
    }
    async fn upgrade_node_pool(&mut self, _pool: String, _version: String, _timeout_ms: u64) -> wasmtime::Result<Result<cluster_read::NodePoolInfo, Error>> {
        not_yet()
    }
    async fn upgrade_node_image(&mut self, _pool: String, _timeout_ms: u64) -> wasmtime::Result<Result<cluster_read::NodePoolInfo, Error>> {
        not_yet()
    }
    async fn set_upgrade_settings(
        &mut self,
        _pool: String,
        _settings: cluster_read::UpgradeSettings,
        _timeout_ms: u64,
    ) -> wasmtime::Result<Result<cluster_read::NodePoolInfo, Error>> {
        not_yet()
    }
    async fn delete_node_pool(&mut self, _pool: String, _timeout_ms: u64) -> wasmtime::Result<Result<(), Error>> {
        not_yet()
    }
}

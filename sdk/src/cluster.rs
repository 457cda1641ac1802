//! The cluster itself: its control plane and node pools as AKS reports them
//! (`cluster-read`), the mutations a pattern makes to them (`cluster-write`),
//! with errors that name the pool or version they were about, and the
//! documents a run hands the operator (`report.attach`).
//!
//! The records are the WIT's own ([`NodePool`], [`ControlPlane`], ...), so a
//! policy's decision logic can take them as plain values and be tested
//! natively.

use crate::{Error, ErrorCode, cluster_read, cluster_write, report};

// The WIT's records end in `-info` (a record may not share its name with the
// function that returns it); policies use the plain names.
pub use cluster_read::{
    ControlPlaneInfo as ControlPlane, NodePoolInfo as NodePool, OperationInfo as Operation, PoolUpgradeProfileInfo as PoolUpgradeProfile, UpgradeSettings,
};
pub use cluster_write::NewNodePool;

/// `provisioningState` of a pool or control plane that is not in the middle of anything.
pub const SUCCEEDED: &str = "Succeeded";

fn named(what: &str, e: Error) -> Error {
    Error::new(e.code, format!("{what}: {}", e.message))
}

impl UpgradeSettings {
    /// No setting given: AKS's defaults apply to every one.
    pub fn unset() -> Self {
        UpgradeSettings {
            max_surge: String::new(),
            max_unavailable: String::new(),
            drain_timeout_minutes: None,
            node_soak_minutes: None,
            undrainable_node_behavior: String::new(),
        }
    }

    /// These settings with the operator's overrides (empty text or `None`:
    /// keep the pool's own); `None` when the overrides change nothing, so a
    /// pattern writes a pool's settings only when they differ.
    pub fn overridden(&self, max_surge: &str, max_unavailable: &str, drain_timeout_minutes: Option<u32>) -> Option<UpgradeSettings> {
        let mut next = self.clone();
        if !max_surge.is_empty() {
            next.max_surge = max_surge.to_string();
        }
        if !max_unavailable.is_empty() {
            next.max_unavailable = max_unavailable.to_string();
        }
        if drain_timeout_minutes.is_some() {
            next.drain_timeout_minutes = drain_timeout_minutes;
        }
        (next != *self).then_some(next)
    }

    /// For people: `maxSurge 50%, maxUnavailable 0, drainTimeout 5m` (unset ones left out; `AKS defaults` when none is set).
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        if !self.max_surge.is_empty() {
            parts.push(format!("maxSurge {}", self.max_surge));
        }
        if !self.max_unavailable.is_empty() {
            parts.push(format!("maxUnavailable {}", self.max_unavailable));
        }
        if let Some(m) = self.drain_timeout_minutes {
            parts.push(format!("drainTimeout {m}m"));
        }
        if let Some(m) = self.node_soak_minutes {
            parts.push(format!("nodeSoak {m}m"));
        }
        if !self.undrainable_node_behavior.is_empty() {
            parts.push(format!("undrainableNodeBehavior {}", self.undrainable_node_behavior));
        }
        if parts.is_empty() { "AKS defaults".to_string() } else { parts.join(", ") }
    }
}

impl PartialEq for UpgradeSettings {
    fn eq(&self, other: &Self) -> bool {
        (&self.max_surge, &self.max_unavailable, self.drain_timeout_minutes, self.node_soak_minutes, &self.undrainable_node_behavior)
            == (&other.max_surge, &other.max_unavailable, other.drain_timeout_minutes, other.node_soak_minutes, &other.undrainable_node_behavior)
    }
}

impl NodePool {
    /// Whether an operation is under way on the pool (or the last one failed):
    /// its `provisioningState` is anything but `Succeeded`.
    pub fn busy(&self) -> bool {
        self.provisioning_state != SUCCEEDED
    }

    /// The version its Nodes run: `currentOrchestratorVersion`, else the one asked for.
    pub fn version(&self) -> &str {
        if self.current_orchestrator_version.is_empty() { &self.orchestrator_version } else { &self.current_orchestrator_version }
    }
}

impl ControlPlane {
    /// The version it runs: `currentKubernetesVersion`, else the one asked for.
    pub fn version(&self) -> &str {
        if self.current_kubernetes_version.is_empty() { &self.kubernetes_version } else { &self.current_kubernetes_version }
    }
}

/// `cluster-read.control-plane`; an error says it was the control plane.
pub fn control_plane() -> Result<ControlPlane, Error> {
    cluster_read::control_plane().map_err(|e| named("cluster control plane", e))
}

/// `cluster-read.node-pools`, in the order AKS lists them.
pub fn node_pools() -> Result<Vec<NodePool>, Error> {
    cluster_read::node_pools().map_err(|e| named("node pools", e))
}

/// `cluster-read.node-pool`; `None` when there is no pool of that name.
pub fn node_pool(name: &str) -> Result<Option<NodePool>, Error> {
    match cluster_read::node_pool(name) {
        Ok(pool) => Ok(Some(pool)),
        Err(e) if e.code == ErrorCode::NotFound => Ok(None),
        Err(e) => Err(named(&format!("node pool {name}"), e)),
    }
}

/// `cluster-read.pool-upgrade-profile`.
pub fn pool_upgrade_profile(pool: &str) -> Result<PoolUpgradeProfile, Error> {
    cluster_read::pool_upgrade_profile(pool).map_err(|e| named(&format!("upgrade profile of node pool {pool}"), e))
}

/// `cluster-write.upgrade-control-plane`; the error names the version and keeps AKS's code and message.
pub fn upgrade_control_plane(version: &str, timeout_ms: u64) -> Result<Operation, Error> {
    cluster_write::upgrade_control_plane(version, timeout_ms).map_err(|e| named(&format!("upgrade the control plane to {version}"), e))
}

/// `cluster-write.add-node-pool`.
pub fn add_node_pool(pool: &NewNodePool, timeout_ms: u64) -> Result<NodePool, Error> {
    cluster_write::add_node_pool(pool, timeout_ms).map_err(|e| named(&format!("add node pool {} at {}", pool.name, pool.orchestrator_version), e))
}

/// `cluster-write.upgrade-node-pool`.
pub fn upgrade_node_pool(pool: &str, version: &str, timeout_ms: u64) -> Result<NodePool, Error> {
    cluster_write::upgrade_node_pool(pool, version, timeout_ms).map_err(|e| named(&format!("upgrade node pool {pool} to {version}"), e))
}

/// `cluster-write.upgrade-node-image`.
pub fn upgrade_node_image(pool: &str, timeout_ms: u64) -> Result<NodePool, Error> {
    cluster_write::upgrade_node_image(pool, timeout_ms).map_err(|e| named(&format!("upgrade the node image of pool {pool}"), e))
}

/// `cluster-write.set-upgrade-settings`.
pub fn set_upgrade_settings(pool: &str, settings: &UpgradeSettings, timeout_ms: u64) -> Result<NodePool, Error> {
    cluster_write::set_upgrade_settings(pool, settings, timeout_ms)
        .map_err(|e| named(&format!("set the upgrade settings of pool {pool} ({})", settings.describe()), e))
}

/// `cluster-write.delete-node-pool`.
pub fn delete_node_pool(pool: &str, timeout_ms: u64) -> Result<(), Error> {
    cluster_write::delete_node_pool(pool, timeout_ms).map_err(|e| named(&format!("delete node pool {pool}"), e))
}

/// `report.attach`: hand the operator the document `name` (letters, digits,
/// `.`, `-`, `_`, ending `.md`, `.json` or `.txt`); the error names it.
pub fn attach(name: &str, content: &str) -> Result<(), Error> {
    report::attach(name, content).map_err(|e| named(&format!("attach {name}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool(state: &str, asked: &str, current: &str) -> NodePool {
        NodePool {
            name: "nodepool1".into(),
            mode: "System".into(),
            orchestrator_version: asked.into(),
            current_orchestrator_version: current.into(),
            node_image_version: String::new(),
            count: 3,
            provisioning_state: state.into(),
            upgrade_settings: UpgradeSettings::unset(),
        }
    }

    #[test]
    fn overrides_change_only_what_they_name() {
        let mut own = UpgradeSettings::unset();
        own.max_surge = "33%".into();
        own.drain_timeout_minutes = Some(30);
        assert!(own.overridden("", "", None).is_none());
        assert!(own.overridden("33%", "", Some(30)).is_none(), "the same values are no change");
        let next = own.overridden("0", "1", None).unwrap();
        assert_eq!((next.max_surge.as_str(), next.max_unavailable.as_str(), next.drain_timeout_minutes), ("0", "1", Some(30)));
        assert_eq!(next.describe(), "maxSurge 0, maxUnavailable 1, drainTimeout 30m");
        assert_eq!(UpgradeSettings::unset().describe(), "AKS defaults");
    }

    #[test]
    fn a_pool_is_busy_unless_succeeded_and_runs_its_current_version() {
        assert!(!pool("Succeeded", "1.30.5", "1.29.9").busy());
        assert!(pool("Upgrading", "1.30.5", "1.29.9").busy());
        assert!(pool("Failed", "1.30.5", "1.29.9").busy());
        assert_eq!(pool("Succeeded", "1.30.5", "1.29.9").version(), "1.29.9");
        assert_eq!(pool("Succeeded", "1.30.5", "").version(), "1.30.5");
    }
}

//! What the emulated AKS knows beyond the Nodes: the cluster's versions,
//! each pool's settings, and the long-running operations, kept in
//! `<lab>/state/arm-state.json` so they survive `runner lab down`/`up`.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::apiserver::Store;
use crate::topology::{self, IMAGE_LABEL, NodeImage, Topology};

/// How many finished operations are kept for clients that poll late.
const KEPT_OPERATIONS: usize = 200;

/// The managed cluster, its pools and its operations.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Cluster {
    /// The subscription the cluster is in (a UUID made on first start).
    pub subscription_id: String,
    /// The control plane's version as last asked for.
    pub kubernetes_version: String,
    /// The control plane's version as it runs.
    pub current_kubernetes_version: String,
    /// `Succeeded`, `Upgrading`, `Failed`, ...
    pub provisioning_state: String,
    /// The pools, by name.
    pub pools: BTreeMap<String, Pool>,
    /// Every operation still kept, by id.
    pub operations: BTreeMap<String, Operation>,
    /// The Traffic Manager profiles of the resource group, by name (absent
    /// from a state file of before they existed).
    #[serde(default)]
    pub traffic_manager_profiles: BTreeMap<String, super::trafficmanager::Profile>,
}

/// One agent pool.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Pool {
    /// Its name (the Nodes' `agentpool` label).
    pub name: String,
    /// How many Nodes it is meant to have.
    pub count: u32,
    /// `System` or `User`.
    pub mode: String,
    /// The VM size its Nodes report.
    pub vm_size: String,
    /// The version as last asked for.
    pub orchestrator_version: String,
    /// The version its Nodes run.
    pub current_orchestrator_version: String,
    /// The node image its Nodes run.
    pub node_image_version: String,
    /// `Succeeded`, `Upgrading`, `Creating`, ...
    pub provisioning_state: String,
    /// `upgradeSettings` as the client set them (AKS's defaults apply where absent).
    pub upgrade_settings: Map<String, Value>,
    /// Labels every Node of the pool carries (`nodeLabels`).
    pub node_labels: Map<String, Value>,
    /// The VMSS name prefix of its Nodes (`aks-nodepool1-12345678-vmss`).
    pub vmss: String,
    /// The next VMSS instance number.
    pub next_index: u32,
}

/// A long-running operation, as its status document says.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Operation {
    /// Its id (a UUID), also its name.
    pub id: String,
    /// `InProgress`, `Succeeded`, `Failed` or `Canceled`.
    pub status: String,
    /// When it started (RFC 3339).
    pub start_time: String,
    /// When it ended.
    pub end_time: Option<String>,
    /// How far it got.
    pub percent_complete: f64,
    /// AKS's error code, when it failed.
    pub error_code: Option<String>,
    /// AKS's error message, when it failed.
    pub error_message: Option<String>,
    /// The pool it works on; `None` for the managed cluster itself.
    pub pool: Option<String>,
    /// What it does, in AKS's words for a 409 (`upgrade node image version`).
    pub what: String,
    /// Whether its result is gone (a delete answers 204 at the end).
    pub deletes: bool,
}

impl Operation {
    /// Whether it still runs.
    pub fn running(&self) -> bool {
        self.status == "InProgress"
    }
}

/// The state file beside the store's.
pub fn path(state_dir: &Path) -> PathBuf {
    state_dir.join("arm-state.json")
}

/// Now, RFC 3339 with microseconds (ARM's operation times have fractions;
/// a drain timeline needs them).
pub fn now() -> String {
    // Always six digits of fraction, so the strings sort as the times do.
    let t = time::OffsetDateTime::now_utc();
    format!("{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:06}Z", t.year(), u8::from(t.month()), t.day(), t.hour(), t.minute(), t.second(), t.microsecond())
}

/// The pools of the Nodes in `store` (grouped by `agentpool`), as a first
/// start finds them.
fn pools_of_nodes(store: &Store) -> BTreeMap<String, Pool> {
    let mut pools: BTreeMap<String, Pool> = BTreeMap::new();
    for node in store.list("v1", "Node", None, None).unwrap_or_default() {
        let Some(pool) = node["metadata"]["labels"]["agentpool"].as_str().map(str::to_string) else { continue };
        let name = node["metadata"]["name"].as_str().unwrap_or_default();
        let (vmss, index) = split_vmss(name);
        let version = node["status"]["nodeInfo"]["kubeletVersion"].as_str().unwrap_or(topology::OLD_VERSION).trim_start_matches('v').to_string();
        let image = node["metadata"]["labels"][IMAGE_LABEL].as_str().unwrap_or(topology::OLD_IMAGE.version).to_string();
        let entry = pools.entry(pool.clone()).or_insert_with(|| Pool {
            name: pool.clone(),
            count: 0,
            mode: if pool == topology::OLD_POOL { "System".into() } else { "User".into() },
            vm_size: node["metadata"]["labels"]["node.kubernetes.io/instance-type"].as_str().unwrap_or("Standard_D4s_v5").into(),
            orchestrator_version: version.clone(),
            current_orchestrator_version: version.clone(),
            node_image_version: image,
            provisioning_state: "Succeeded".into(),
            upgrade_settings: Map::new(),
            node_labels: Map::new(),
            vmss: vmss.clone(),
            next_index: 0,
        });
        entry.count += 1;
        entry.next_index = entry.next_index.max(index + 1);
    }
    pools
}

/// `aks-nodepool1-12345678-vmss000003` -> (`aks-nodepool1-12345678-vmss`, 3).
pub fn split_vmss(name: &str) -> (String, u32) {
    let digits = name.chars().rev().take_while(|c| c.is_ascii_digit()).count().min(6);
    let (prefix, number) = name.split_at(name.len() - digits);
    (prefix.to_string(), number.parse().unwrap_or(0))
}

impl Cluster {
    /// The saved state, or a new one from the Nodes in `store`. An
    /// operation a restart cut off is marked Failed, saying so.
    pub fn load(file: &Path, store: &Store, topology: &Topology) -> anyhow::Result<Cluster> {
        let mut cluster = match std::fs::read(file) {
            Ok(bytes) => serde_json::from_slice::<Cluster>(&bytes).map_err(|e| anyhow::anyhow!("{}: {e}", file.display()))?,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let version = topology.control_plane_version().to_string();
                Cluster {
                    subscription_id: uuid::Uuid::new_v4().to_string(),
                    kubernetes_version: version.clone(),
                    current_kubernetes_version: version,
                    provisioning_state: "Succeeded".into(),
                    pools: pools_of_nodes(store),
                    operations: BTreeMap::new(),
                    traffic_manager_profiles: BTreeMap::new(),
                }
            }
            Err(e) => return Err(anyhow::anyhow!("{}: {e}", file.display())),
        };
        let cut_off: Vec<String> = cluster.operations.values().filter(|o| o.running()).map(|o| o.id.clone()).collect();
        for id in cut_off {
            cluster.finish(
                &id,
                Some(("OperationCanceledByRestart", "the lab was stopped while this operation ran; what it had done stays done, the rest was not done")),
            );
        }
        Ok(cluster)
    }

    /// Writes the state (temp file and rename, so a crash leaves the old one).
    pub fn save(&self, file: &Path) {
        let partial = file.with_extension("partial");
        let written = serde_json::to_vec_pretty(self)
            .map_err(std::io::Error::other)
            .and_then(|bytes| std::fs::write(&partial, bytes))
            .and_then(|_| std::fs::rename(&partial, file));
        if let Err(e) = written {
            tracing::error!("saving the ARM state to {}: {e}", file.display());
        }
    }

    /// The running operation a new one on `pool` (`None`: the cluster)
    /// conflicts with: any on the same pool, and any at all when either is
    /// on the managed cluster itself (AKS runs one cluster operation at a time).
    pub fn conflicting(&self, pool: Option<&str>) -> Option<&Operation> {
        self.operations.values().find(|o| o.running() && (pool.is_none() || o.pool.is_none() || o.pool.as_deref() == pool))
    }

    /// Registers a new running operation; its id.
    pub fn start(&mut self, pool: Option<&str>, what: &str, deletes: bool) -> String {
        let id = uuid::Uuid::new_v4().to_string();
        self.operations.insert(
            id.clone(),
            Operation {
                id: id.clone(),
                status: "InProgress".into(),
                start_time: now(),
                end_time: None,
                percent_complete: 0.0,
                error_code: None,
                error_message: None,
                pool: pool.map(str::to_string),
                what: what.into(),
                deletes,
            },
        );
        while self.operations.len() > KEPT_OPERATIONS {
            let oldest = self.operations.values().filter(|o| !o.running()).min_by(|a, b| a.start_time.cmp(&b.start_time)).map(|o| o.id.clone());
            match oldest {
                Some(id) => self.operations.remove(&id),
                None => break,
            };
        }
        id
    }

    /// Ends an operation (Succeeded, or Failed with AKS's code and message)
    /// and sets its resource's provisioningState to match.
    pub fn finish(&mut self, id: &str, error: Option<(&str, &str)>) {
        let Some(op) = self.operations.get_mut(id) else { return };
        op.status = if error.is_some() { "Failed".into() } else { "Succeeded".into() };
        op.end_time = Some(now());
        if error.is_none() {
            op.percent_complete = 100.0;
        }
        op.error_code = error.map(|e| e.0.to_string());
        op.error_message = error.map(|e| e.1.to_string());
        let state = if error.is_some() { "Failed" } else { "Succeeded" };
        match op.pool.clone() {
            Some(pool) => {
                if let Some(p) = self.pools.get_mut(&pool) {
                    p.provisioning_state = state.into();
                }
            }
            None => self.provisioning_state = state.into(),
        }
    }

    /// The image a pool's Nodes get when it is created or scaled.
    pub fn image_of(&self, pool: &str) -> NodeImage {
        NodeImage::by_version(self.pools.get(pool).map(|p| p.node_image_version.as_str()).unwrap_or(topology::LATEST_IMAGE.version))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_have_a_fixed_width() {
        let t = now();
        assert_eq!(t.len(), "2026-12-03T15:30:00.123456Z".len(), "{t}");
    }

    #[test]
    fn vmss_names_split_into_prefix_and_instance() {
        assert_eq!(split_vmss("aks-nodepool1-12345678-vmss000003"), ("aks-nodepool1-12345678-vmss".to_string(), 3));
        assert_eq!(split_vmss("aks-upgradedpool-87654321-vmss000012"), ("aks-upgradedpool-87654321-vmss".to_string(), 12));
    }
}

//! The lab's emulation of Azure Resource Manager for
//! `Microsoft.ContainerService` (AKS): the managed cluster `lab` in the
//! resource group `runner-lab`, its agent pools, upgrade profiles and
//! long-running operations, served over HTTPS on loopback with its own
//! bearer token, so the runner's one AKS backend is what CI exercises.
//!
//! The answers follow the shapes of the azure-rest-api-specs stable AKS
//! API (2024-09-01); nothing of it was ever run against Azure. Operations
//! have real effects on the lab's [`Store`]: a pool upgrade surges new
//! Nodes, cordons and drains the old ones through the eviction API (so
//! PodDisruptionBudgets hold), soaks and deletes them; the StatefulSet
//! controller and scheduler move the Pods, as in a real cluster.
//!
//! - `state`: the cluster, pools and operations, persisted beside the store
//! - `rules`: versions offered, pool names, the surge arithmetic
//! - `http`: routing, authentication, faults, the JSON documents
//! - `worker`: what each operation does to Nodes and Pods, and its Events
//!
//! It also serves Traffic Manager (`Microsoft.Network/trafficManagerProfiles`,
//! see [`trafficmanager`]) in the same resource group, which the lab's
//! front door ([`crate::frontdoor`]) routes by.
//!
//! Faults for tests come from the ConfigMap `runner-lab-arm` in
//! `kube-system` (see [`FAULTS_CONFIGMAP`]).

mod http;
pub mod rules;
pub mod state;
pub mod trafficmanager;
mod worker;

use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::apiserver::Store;
use crate::topology::Topology;
use state::Cluster;

/// The resource group the lab's cluster is in.
pub const RESOURCE_GROUP: &str = "runner-lab";
/// The managed cluster's name.
pub const CLUSTER_NAME: &str = "lab";
/// Its Azure region.
pub const LOCATION: &str = "eastus";
/// The ConfigMap (in `kube-system`) a test creates to inject faults: key
/// `throttle` = N answers the next N ARM requests 429 `TooManyRequests`
/// (`Retry-After: 1`); key `conflict` = N answers the next N mutations
/// (PUT, POST, DELETE) 409 `OperationNotAllowed`, as if an operation someone
/// else started were running; key `block-upgrades` = a message makes
/// upgrades answer 400 `UpgradeBlockedOnDeprecatedAPIUsage` with it.
pub const FAULTS_CONFIGMAP: &str = "runner-lab-arm";

/// `<lab>/arm.json`: how the runner's AKS backend reaches the lab (the
/// contract with it; these keys stay).
#[derive(Clone, Debug, Serialize, serde::Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct ArmConfig {
    /// `https://127.0.0.1:PORT`.
    pub endpoint: String,
    /// The subscription's UUID.
    pub subscription_id: String,
    /// [`RESOURCE_GROUP`].
    pub resource_group: String,
    /// [`CLUSTER_NAME`].
    pub cluster_name: String,
    /// [`LOCATION`].
    pub location: String,
    /// The absolute path of the CA certificate (PEM) that signs the server's certificate.
    pub ca_file: PathBuf,
    /// The absolute path of the file holding the bearer token.
    pub token_file: PathBuf,
}

/// Where the ARM server keeps and writes its files.
#[derive(Clone, Debug)]
pub struct ArmFiles {
    /// `<lab>/arm.json`, written at each start.
    pub config: PathBuf,
    /// `<lab>/arm-token` (0600), read for the token.
    pub token: PathBuf,
    /// `<lab>/arm-port`, so the port stays across restarts.
    pub port: PathBuf,
    /// The store's directory: the state file and the CA live there.
    pub state_dir: PathBuf,
}

/// What every handler and operation shares.
#[derive(Clone)]
pub(crate) struct Arm {
    store: Store,
    cluster: Arc<Mutex<Cluster>>,
    state_file: PathBuf,
    endpoint: String,
    /// How long an AKS minute lasts here.
    minute: Duration,
    token: Arc<[u8]>,
    stopped: watch::Receiver<bool>,
}

impl Arm {
    /// Runs `f` on the cluster state under its lock and saves the state afterwards.
    fn with<R>(&self, f: impl FnOnce(&mut Cluster) -> R) -> R {
        let mut cluster = self.cluster.lock().unwrap_or_else(|e| e.into_inner());
        let result = f(&mut cluster);
        cluster.save(&self.state_file);
        result
    }

    /// A copy of the cluster state.
    fn snapshot(&self) -> Cluster {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What the front door reads of the ARM state: the Traffic Manager profiles,
/// as they are at each call (writes through ARM show at once).
#[derive(Clone)]
pub struct TrafficManagers {
    cluster: Arc<Mutex<Cluster>>,
}

impl TrafficManagers {
    /// The profile `name` of the lab's resource group, if it exists.
    pub fn profile(&self, name: &str) -> Option<trafficmanager::Profile> {
        self.cluster.lock().unwrap_or_else(|e| e.into_inner()).traffic_manager_profiles.get(&trafficmanager::key(name)).cloned()
    }
}

/// Starts the ARM server for `store`: restores (or creates) the cluster
/// state, makes `/version` report the control plane's version, listens
/// on 127.0.0.1 (the port of the last run when it is free), writes
/// `arm.json`, and serves until `stopped` turns true. Operations a restart
/// cut off are marked Failed. Returns the server's task and the view of
/// its Traffic Manager profiles the front door routes by.
pub async fn serve(
    store: Store,
    files: ArmFiles,
    topology: &Topology,
    token: String,
    stopped: watch::Receiver<bool>,
) -> anyhow::Result<(tokio::task::JoinHandle<()>, TrafficManagers)> {
    let state_file = state::path(&files.state_dir);
    let cluster = Cluster::load(&state_file, &store, topology)?;
    cluster.save(&state_file);
    store.set_server_version(&cluster.current_kubernetes_version);
    let previous: Option<u16> = std::fs::read_to_string(&files.port).ok().and_then(|p| p.trim().parse().ok());
    let listener = match previous {
        Some(port) => match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => listener,
            Err(_) => TcpListener::bind(("127.0.0.1", 0)).await?,
        },
        None => TcpListener::bind(("127.0.0.1", 0)).await?,
    };
    let addr = listener.local_addr()?;
    std::fs::write(&files.port, addr.port().to_string())?;
    let (_, tls) = crate::apiserver::server_config(&files.state_dir, addr.ip())?;
    let endpoint = format!("https://127.0.0.1:{}", addr.port());
    let absolute = |p: &PathBuf| std::path::absolute(p).unwrap_or_else(|_| p.clone());
    let config = ArmConfig {
        endpoint: endpoint.clone(),
        subscription_id: cluster.subscription_id.clone(),
        resource_group: RESOURCE_GROUP.into(),
        cluster_name: CLUSTER_NAME.into(),
        location: LOCATION.into(),
        ca_file: absolute(&files.state_dir.join("tls").join("ca.crt")),
        token_file: absolute(&files.token),
    };
    std::fs::write(&files.config, serde_json::to_string_pretty(&config)? + "\n")?;
    let arm = Arm {
        store,
        cluster: Arc::new(Mutex::new(cluster)),
        state_file,
        endpoint,
        minute: topology.lab_minute,
        token: Arc::from(token.into_bytes()),
        stopped: stopped.clone(),
    };
    let listener = crate::apiserver::LabListener::new(listener, tls)?;
    let traffic_managers = TrafficManagers { cluster: arm.cluster.clone() };
    let router = axum::Router::new().fallback(http::handle).with_state(arm);
    let mut until = stopped;
    tracing::info!("ARM (AKS emulation) serving at https://{addr}");
    let task = tokio::spawn(async move {
        let server = axum::serve(listener, router).with_graceful_shutdown(async move {
            let _ = until.wait_for(|s| *s).await;
        });
        if let Err(e) = server.await {
            tracing::error!("the ARM server stopped: {e}");
        }
    });
    Ok((task, traffic_managers))
}

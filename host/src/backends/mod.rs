//! Backends: the code that actually talks to Kubernetes and the databases.
//!
//! A backend knows nothing of WebAssembly, components or capabilities: it
//! takes plain Rust values and answers with JSON text or a [`BackendError`].
//! The host's import layer (`crate::imports`) checks capabilities, journals,
//! and then calls one of these traits. [`KubeBackend`] (kube-rs) serves
//! Kubernetes for the lab and real clusters; [`PostgresBackend`]
//! (tokio-postgres) serves PostgreSQL members; [`RedisBackend`] (redis-rs)
//! serves Redis members; [`MongoBackend`] (the `mongodb` driver) serves
//! MongoDB members; [`Cluster`] (`aks`, Azure Resource Manager) serves the
//! cluster's own API: control plane and node pools; [`Traffic`]
//! (`traffic/`) serves the target's weighted traffic switches (HTTPRoutes
//! over [`Kube`], Traffic Manager profiles over ARM, plain HTTP to observe).

pub mod aks;
pub mod http;
pub mod kube;
pub mod members;
pub mod mongo;
mod postgres;
pub mod redis;
pub mod traffic;
mod unavailable;

use std::sync::Arc;

pub use self::kube::KubeBackend;
pub use self::redis::RedisBackend;
pub use mongo::MongoBackend;
pub use postgres::PostgresBackend;
pub use traffic::Traffic;
pub use unavailable::Unavailable;

pub use crate::domain::ErrorCode;

/// A failed backend call.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}: {message}", code.as_str())]
pub struct BackendError {
    /// What kind of failure.
    pub code: ErrorCode,
    /// What happened, in the server's own words where it gave some.
    pub message: String,
}

impl BackendError {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        BackendError { code, message: message.into() }
    }
}

/// What a backend call returns.
pub type BackendResult<T> = Result<T, BackendError>;

pub use crate::domain::kube::{DrainOptions, ExecOutput, ListOptions, ObjectRef, PatchType, WaitFor};

/// A byte stream to a port of a Pod, through the API server.
pub trait PortStream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin {}

impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Send + Unpin> PortStream for T {}

/// The Kubernetes API. Objects are JSON text.
#[async_trait::async_trait]
pub trait Kube: Send + Sync {
    /// One object.
    async fn get(&self, object: &ObjectRef) -> BackendResult<String>;
    /// A JSON array of the matching objects.
    async fn list(&self, options: &ListOptions) -> BackendResult<String>;
    /// Wait (by watching) until `until` holds; the object then (`null` once deleted).
    async fn wait_for(&self, object: &ObjectRef, until: &WaitFor, timeout_ms: u64) -> BackendResult<String>;
    /// Patch an object; the object afterwards.
    async fn patch(&self, object: &ObjectRef, patch_type: PatchType, body: &str) -> BackendResult<String>;
    /// Delete an object; `None` uses its default grace period.
    async fn delete(&self, object: &ObjectRef, grace_period_seconds: Option<u32>) -> BackendResult<()>;
    /// Set the replicas of a scalable object through its scale subresource.
    async fn scale(&self, object: &ObjectRef, replicas: u32) -> BackendResult<()>;
    /// Evict a Pod through the eviction API (`conflict` when a budget forbids it).
    async fn evict(&self, namespace: Option<&str>, pod: &str) -> BackendResult<()>;
    /// Cordon (`true`) or uncordon a Node.
    async fn set_unschedulable(&self, node: &str, unschedulable: bool) -> BackendResult<()>;
    /// `kubectl drain`; a JSON report of what was evicted and skipped.
    async fn drain(&self, node: &str, options: &DrainOptions) -> BackendResult<String>;
    /// Run a command in a Pod's container and wait for it to end.
    async fn exec(&self, namespace: Option<&str>, pod: &str, container: Option<&str>, command: &[String]) -> BackendResult<ExecOutput>;
    /// One connection to `port` of a Pod through the API server's
    /// `pods/portforward`, as `kubectl port-forward` makes for each client.
    async fn connect_port(&self, namespace: &str, pod: &str, port: u16) -> BackendResult<Box<dyn PortStream>> {
        let _ = (namespace, port);
        Err(BackendError::new(ErrorCode::Unavailable, format!("pod {pod}: this Kubernetes backend does not forward ports")))
    }
}

/// PostgreSQL members, by logical name.
#[async_trait::async_trait]
pub trait Postgres: Send + Sync {
    /// Run `sql` in a READ ONLY transaction; rows as a JSON array of objects.
    async fn query(&self, member: &str, sql: &str, params: &[String]) -> BackendResult<String>;
    /// Run one statement; rows affected.
    async fn execute(&self, member: &str, sql: &str, params: &[String]) -> BackendResult<u64>;
}

/// Redis members, by logical name.
#[async_trait::async_trait]
pub trait Redis: Send + Sync {
    /// Run one command; the reply as JSON.
    async fn command(&self, member: &str, args: &[String]) -> BackendResult<String>;
}

/// MongoDB members, by logical name.
#[async_trait::async_trait]
pub trait Mongo: Send + Sync {
    /// Run a command document against `db`; the reply as JSON.
    async fn run_command(&self, member: &str, db: &str, command: &str) -> BackendResult<String>;
}

pub use crate::domain::cluster::{ControlPlane, NewNodePool, NodePool, Operation, PoolUpgradeProfile, UpgradeSettings};

/// What a long-running cluster operation reports while it runs: its state
/// as last seen (`Upgrading, 40% (operation 3f2a...)`), for the live line.
pub type OperationProgress<'a> = &'a (dyn Fn(&str) + Send + Sync);

/// The cluster's own API (AKS's `Microsoft.ContainerService`): the control
/// plane and node pools. A mutation AKS runs as a long-running operation is
/// followed to its end within `timeout_ms`, reporting its state to `progress`.
#[async_trait::async_trait]
pub trait Cluster: Send + Sync {
    /// The cluster's name, the scope of the calls on the control plane;
    /// `cluster` when no cluster API is configured.
    fn name(&self) -> String {
        "cluster".into()
    }
    /// The control plane and the versions it is offered.
    async fn control_plane(&self) -> BackendResult<ControlPlane>;
    /// Every node pool.
    async fn node_pools(&self) -> BackendResult<Vec<NodePool>>;
    /// One node pool (`not-found` when there is none of that name).
    async fn node_pool(&self, name: &str) -> BackendResult<NodePool>;
    /// What one pool can be upgraded to.
    async fn pool_upgrade_profile(&self, pool: &str) -> BackendResult<PoolUpgradeProfile>;
    /// A long-running operation of this cluster, by id.
    async fn operation(&self, id: &str) -> BackendResult<Operation>;
    /// Upgrade the control plane (its pools keep their versions).
    async fn upgrade_control_plane(&self, version: &str, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<Operation>;
    /// Add a pool; the pool once its Nodes are there.
    async fn add_node_pool(&self, pool: &NewNodePool, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<NodePool>;
    /// Upgrade a pool's Kubernetes version.
    async fn upgrade_node_pool(&self, pool: &str, version: &str, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<NodePool>;
    /// Upgrade a pool's node image only.
    async fn upgrade_node_image(&self, pool: &str, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<NodePool>;
    /// Change how a pool upgrades, nothing else.
    async fn set_upgrade_settings(&self, pool: &str, settings: &UpgradeSettings, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<NodePool>;
    /// Delete a pool and its Nodes.
    async fn delete_node_pool(&self, pool: &str, timeout_ms: u64, progress: OperationProgress<'_>) -> BackendResult<()>;
}

/// The backends one run uses.
#[derive(Clone)]
pub struct Backends {
    /// The Kubernetes API of the target.
    pub kube: Arc<dyn Kube>,
    /// PostgreSQL members.
    pub postgres: Arc<dyn Postgres>,
    /// Redis members.
    pub redis: Arc<dyn Redis>,
    /// MongoDB members.
    pub mongo: Arc<dyn Mongo>,
    /// The cluster's own API (control plane, node pools); `unavailable`
    /// until a run sets it from the target's `cluster:` section.
    pub cluster: Arc<dyn Cluster>,
    /// The target's weighted traffic switches (`traffic:`); `unavailable`
    /// when it names none.
    pub traffic: Arc<dyn Traffic>,
}

impl Backends {
    /// Backends that answer every call with `unavailable`, saying which
    /// issue brings the real one.
    pub fn unavailable(target: &str) -> Self {
        let target: Arc<str> = target.into();
        Backends {
            kube: Arc::new(Unavailable::new("Kubernetes", "#4 (kube-rs backend) and #3 (the lab)", target.clone())),
            postgres: Arc::new(Unavailable::new("PostgreSQL", "#5", target.clone())),
            redis: Arc::new(Unavailable::new("Redis", "#6", target.clone())),
            mongo: Arc::new(Unavailable::new("MongoDB", "#7", target.clone())),
            cluster: Arc::new(Unavailable::because(format!("no cluster API for target `{target}`: it names none (a `cluster:` section in a target file)"))),
            traffic: Arc::new(Unavailable::because(format!("no traffic switch for target `{target}`: it names none (a `traffic:` section in a target file)"))),
        }
    }

    /// `kube` for Kubernetes, and the PostgreSQL, Redis and MongoDB members
    /// of `target` reached through it (addresses from their Pods, passwords
    /// from the target's credential sources).
    /// answers `unavailable`.
    pub fn with_kube(kube: Arc<dyn Kube>, target: &crate::target::Target) -> Self {
        let namespace = target.namespace.clone().unwrap_or_else(|| "default".into());
        let members = Arc::new(members::Members::new(target.clone(), namespace, kube.clone()));
        let postgres = Arc::new(PostgresBackend::new(members.clone()));
        let redis = Arc::new(RedisBackend::new(members.clone()));
        let mongo = Arc::new(MongoBackend::new(members));
        let cluster =
            Arc::new(Unavailable::because(format!("target {}: no cluster API configured (add a `cluster:` section to the target file)", target.label())));
        let traffic =
            Arc::new(Unavailable::because(format!("target {}: no traffic switch configured (add a `traffic:` section to the target file)", target.label())));
        Backends { kube, postgres, redis, mongo, cluster, traffic }
    }
}

//! The Kubernetes API server of the lab.
//!
//! A [`Store`] holds every object (as `serde_json::Value`) with one global
//! resourceVersion counter, persisted to a directory; [`serve`] speaks the
//! Kubernetes REST API for it on a loopback address, well enough for
//! `kubectl` and kube-rs: discovery, get/list/watch with label and field
//! selectors, create/update/patch (merge, JSON, strategic, apply)/delete,
//! Tables for `kubectl get`, the `status`, `scale`, `eviction`, `exec` and
//! `portforward` subresources, bearer-token authentication and real `Status`
//! errors. Answers are JSON; protobuf request bodies of the kinds kubectl's
//! `create` subcommands send are decoded.
//!
//! Served kinds: core v1 Namespace, Node, Pod, Service, Endpoints, Secret,
//! ConfigMap, Event; apps/v1 StatefulSet, Deployment, ReplicaSet, DaemonSet; policy/v1
//! PodDisruptionBudget; batch/v1 Job.
//!
//! The store itself keeps PodDisruptionBudget status current, deletes
//! dependents of deleted owners (ownerReferences), empties and removes
//! deleted namespaces, and records Events for evictions and scaling.
//! Everything else (running Pods, StatefulSet members, Job pods, Service
//! proxies) is the job of the lab's controllers, which use the [`Store`]
//! directly and learn about changes from [`Store::subscribe`].

mod discovery;
mod error;
mod exec;
mod kinds;
mod patch;
mod portforward;
mod protobuf;
mod resources;
mod selector;
mod server;
mod spdy;
mod store;
mod table;
mod time;
mod tls;

/// Parses a Kubernetes timestamp (`2026-11-21T20:00:00Z`) to Unix seconds.
pub(crate) use self::time::parse_rfc3339;
pub use error::ApiError;
pub use exec::{ExecHandler, Object, ProcessExec};
pub use patch::PatchType;
pub use server::{ApiServer, kubeconfig, kubeconfig_with_ca, serve};
pub use store::{EventType, Store, StoreEvent};
/// TLS for another server of the lab (the ARM emulation) with a
/// certificate from the same CA.
pub(crate) use tls::{LabListener, server_config};

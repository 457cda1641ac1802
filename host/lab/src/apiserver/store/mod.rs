//! The object store behind the API server: every object of every kind, one
//! global resourceVersion counter, a bounded event history for watches, a
//! broadcast of every change for in-process controllers, and persistence to
//! a directory.
//!
//! One mutex guards the whole [`State`], so a write, the derived changes it
//! causes (PodDisruptionBudget status, garbage collection, namespace
//! finalization) and an eviction's budget check happen atomically. Each job
//! lives in its own file, all as methods on `State`:
//!
//! - `persist`: opening a directory, saving, the flock
//! - `admission`: a body's type, namespace and name checks, Service addresses
//! - `write`: create, update, patch and the scale subresource
//! - `delete`: graceful deletion, finalizers, namespaces, garbage collection
//! - `disruption`: PodDisruptionBudget status and the eviction subresource
//! - `events`: the watch history, the change broadcast and core v1 Events

mod admission;
mod delete;
mod disruption;
mod events;
mod persist;
mod write;

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

pub(crate) use delete::DeleteOpts;
pub(crate) use events::HistEntry;
pub use events::{EventType, StoreEvent};
pub(crate) use write::{Part, Scale};

use super::error::ApiError;
use super::resources::{self, Resource};
use super::selector::{FieldSelector, LabelSelector};
use events::HISTORY_LIMIT;
use persist::Persister;

/// Namespaces that exist from the start and may not be deleted.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];
/// The component named in Events the API server records.
const COMPONENT: &str = "runner-lab-apiserver";

struct State {
    rv: u64,
    objects: Vec<BTreeMap<(String, String), Arc<Value>>>,
    history: VecDeque<HistEntry>,
    /// Every change with a resourceVersion above `floor` is in `history`.
    floor: u64,
    graceful: bool,
    tx: broadcast::Sender<StoreEvent>,
    rv_tx: watch::Sender<u64>,
    persist: Arc<Persister>,
}

struct Inner {
    state: Mutex<State>,
    /// Held (flock) while the store is open: one process writes a directory.
    _lock: std::fs::File,
    /// The Kubernetes version `/version` reports (`v1.30.5`), set by whoever
    /// plays the control plane; `None` for the API server's own.
    server_version: Mutex<Option<String>>,
}

/// The lab's object store. Cheap to clone (an `Arc` inside); every clone is
/// the same store. Objects are `serde_json::Value`s with `apiVersion`, `kind`
/// and `metadata`, exactly as the API serves them.
#[derive(Clone)]
pub struct Store {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("resource_version", &self.resource_version()).finish()
    }
}

fn unknown_kind(api_version: &str, kind: &str) -> ApiError {
    ApiError::new(404, "NotFound", format!("the server could not find the requested resource (no {kind} in {api_version})"))
}

fn meta_str<'a>(obj: &'a Value, field: &str) -> Option<&'a str> {
    obj.get("metadata")?.get(field)?.as_str().filter(|s| !s.is_empty())
}

fn ns_of(obj: &Value) -> String {
    meta_str(obj, "namespace").unwrap_or_default().to_string()
}

fn name_of(obj: &Value) -> String {
    meta_str(obj, "name").unwrap_or_default().to_string()
}

fn res_of(obj: &Value) -> Result<&'static Resource, ApiError> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    resources::by_kind(api_version, kind).ok_or_else(|| unknown_kind(api_version, kind))
}

fn is_terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

impl Store {
    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The directory the store is kept in.
    pub(crate) fn dir(&self) -> PathBuf {
        self.lock().persist.dir.clone()
    }

    /// Switches graceful Pod deletion (on by default). When on, deleting a
    /// scheduled Pod with a grace period above 0 only sets
    /// `metadata.deletionTimestamp`; a controller removes it later with
    /// [`Store::remove`]. When off, every delete removes at once.
    pub fn set_graceful_pod_deletion(&self, on: bool) {
        self.lock().graceful = on;
    }

    /// Sets the Kubernetes version `/version` reports (`v1.30.5` or
    /// `1.30.5`), as a control-plane upgrade changes it.
    pub fn set_server_version(&self, version: &str) {
        let version = format!("v{}", version.trim_start_matches('v'));
        *self.inner.server_version.lock().unwrap_or_else(|e| e.into_inner()) = Some(version);
    }

    /// The version set by [`Store::set_server_version`], if any.
    pub fn server_version(&self) -> Option<String> {
        self.inner.server_version.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The current resourceVersion (the counter of the last change).
    pub fn resource_version(&self) -> u64 {
        self.lock().rv
    }

    /// Gets one object; `namespace` is ignored for cluster-scoped kinds.
    pub fn get(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Option<Value> {
        let res = resources::by_kind(api_version, kind)?;
        let ns = if res.namespaced { namespace.unwrap_or("default") } else { "" };
        self.lock().get(res, ns, name).map(|o| (**o).clone())
    }

    /// Lists objects of a kind, in one namespace or all (`None`), filtered by
    /// a label selector in the string form (`app=pg,role in (primary)`).
    pub fn list(&self, api_version: &str, kind: &str, namespace: Option<&str>, label_selector: Option<&str>) -> Result<Vec<Value>, ApiError> {
        let res = resources::by_kind(api_version, kind).ok_or_else(|| unknown_kind(api_version, kind))?;
        let labels = LabelSelector::parse(label_selector.unwrap_or_default())?;
        let (items, _) = self.list_res(res, namespace, &labels, &FieldSelector::default());
        Ok(items.into_iter().map(|o| (*o).clone()).collect())
    }

    pub(crate) fn get_res(&self, res: &'static Resource, ns: &str, name: &str) -> Option<Arc<Value>> {
        self.lock().get(res, ns, name).cloned()
    }

    /// Lists matching objects sorted by namespace and name, with the
    /// resourceVersion the list is consistent with.
    pub(crate) fn list_res(&self, res: &'static Resource, ns: Option<&str>, labels: &LabelSelector, fields: &FieldSelector) -> (Vec<Arc<Value>>, u64) {
        let state = self.lock();
        let map = &state.objects[resources::index(res)];
        let items = map
            .iter()
            .filter(|((ons, _), _)| ns.is_none_or(|n| !res.namespaced || n == ons))
            .map(|(_, v)| v)
            .filter(|o| labels.matches_object(o) && fields.matches(o))
            .cloned()
            .collect();
        (items, state.rv)
    }
}

impl State {
    fn get(&self, res: &Resource, ns: &str, name: &str) -> Option<&Arc<Value>> {
        let ns = if res.namespaced { ns } else { "" };
        self.objects[resources::index(res)].get(&(ns.to_string(), name.to_string()))
    }

    fn res_ns<'a>(res: &Resource, ns: Option<&'a str>) -> &'a str {
        if res.namespaced { ns.unwrap_or("default") } else { "" }
    }

    /// Records a change: bumps the counter, stores, appends to history,
    /// broadcasts and schedules a save.
    fn commit(&mut self, res: &'static Resource, event_type: EventType, mut obj: Value, prev: Option<Arc<Value>>) -> Arc<Value> {
        self.rv += 1;
        let rv = self.rv;
        if let Some(m) = obj.get_mut("metadata").and_then(Value::as_object_mut) {
            m.insert("resourceVersion".into(), json!(rv.to_string()));
        }
        let idx = resources::index(res);
        let key = (ns_of(&obj), name_of(&obj));
        let arc = Arc::new(obj);
        if event_type == EventType::Deleted {
            self.objects[idx].remove(&key);
        } else {
            self.objects[idx].insert(key, arc.clone());
        }
        self.history.push_back(HistEntry { rv, event_type, res: idx, object: arc.clone(), prev });
        while self.history.len() > HISTORY_LIMIT {
            if let Some(e) = self.history.pop_front() {
                self.floor = e.rv;
            }
        }
        if self.tx.receiver_count() > 0 {
            let _ = self.tx.send(StoreEvent { event_type, object: (*arc).clone() });
        }
        self.rv_tx.send_replace(rv);
        self.persist.mark_dirty();
        arc
    }

    /// Keeps derived state current after a change in namespace `ns`:
    /// PodDisruptionBudget status, and the removal of an emptied
    /// terminating namespace.
    fn after_change(&mut self, res: &Resource, ns: &str) {
        if ns.is_empty() {
            return;
        }
        if matches!(res.kind, "Pod" | "PodDisruptionBudget" | "StatefulSet" | "ReplicaSet" | "Job" | "DaemonSet") {
            self.refresh_pdbs(ns);
        }
        self.finalize_namespace(ns);
    }
}

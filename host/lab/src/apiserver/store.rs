//! The object store behind the API server: every object of every kind, one
//! global resourceVersion counter, a bounded event history for watches, a
//! broadcast of every change for in-process controllers, and persistence to
//! a directory.

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::error::ApiError;
use super::kinds;
use super::patch::{self, PatchType};
use super::resources::{self, RESOURCES, Resource};
use super::selector::{FieldSelector, LabelSelector};
use super::time;

/// How many changes the store keeps for watches that resume from an older
/// resourceVersion; older ones answer 410 Expired.
const HISTORY_LIMIT: usize = 5_000;
/// The capacity of the [`Store::subscribe`] channel.
const BROADCAST_CAPACITY: usize = 8_192;
/// At most this many Event objects are kept; the oldest go first.
const EVENTS_LIMIT: usize = 2_000;
/// How long a change may wait before it is written to disk.
const PERSIST_DEBOUNCE: Duration = Duration::from_millis(20);
const STATE_FILE: &str = "state.json";
/// Namespaces that exist from the start and may not be deleted.
const SYSTEM_NAMESPACES: &[&str] = &["default", "kube-system", "kube-public", "kube-node-lease"];
/// The component named in Events the API server records.
pub(crate) const COMPONENT: &str = "runner-lab-apiserver";

/// What happened to an object.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventType {
    /// The object was created.
    Added,
    /// The object changed (including getting a `deletionTimestamp`).
    Modified,
    /// The object is gone; the event carries its last state with the
    /// resourceVersion of the removal.
    Deleted,
}

impl EventType {
    /// `ADDED`, `MODIFIED` or `DELETED`, as in a watch stream.
    pub fn as_str(&self) -> &'static str {
        match self {
            EventType::Added => "ADDED",
            EventType::Modified => "MODIFIED",
            EventType::Deleted => "DELETED",
        }
    }
}

/// One change, as broadcast to [`Store::subscribe`] receivers.
#[derive(Debug, Clone)]
pub struct StoreEvent {
    /// What happened.
    pub event_type: EventType,
    /// The object after the change (its last state for `Deleted`), with
    /// `apiVersion`, `kind` and the new `metadata.resourceVersion`.
    pub object: Value,
}

/// One entry of the watch history.
#[derive(Debug, Clone)]
pub(crate) struct HistEntry {
    pub rv: u64,
    pub event_type: EventType,
    pub res: usize,
    pub object: Arc<Value>,
    /// The object before the change (for MODIFIED), so selector-filtered
    /// watches can turn a change into ADDED or DELETED.
    pub prev: Option<Arc<Value>>,
}

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Everything but `.status` (for kinds with a status subresource).
    Main,
    /// Only `.status`.
    Status,
}

/// Options of a delete call.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub propagation: Option<String>,
    pub dry_run: bool,
}

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

struct PersistFlags {
    dirty: bool,
    stop: bool,
}

struct Persister {
    dir: PathBuf,
    flags: Mutex<PersistFlags>,
    cv: Condvar,
    write_lock: Mutex<()>,
    seq: AtomicU64,
}

struct Inner {
    state: Mutex<State>,
    /// Held (flock) while the store is open: one process writes a directory.
    _lock: std::fs::File,
}

impl Drop for Inner {
    fn drop(&mut self) {
        let state = self.state.get_mut().unwrap_or_else(|e| e.into_inner());
        let persist = state.persist.clone();
        let (rv, objects) = snapshot(state);
        if let Err(e) = persist.write(rv, &objects) {
            tracing::error!("could not save the lab API state: {e}");
        }
        let mut flags = persist.flags.lock().unwrap_or_else(|e| e.into_inner());
        flags.stop = true;
        persist.cv.notify_all();
    }
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
        f.debug_struct("Store").field("resource_version", &self.current_rv()).finish()
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

/// Takes an exclusive lock on `dir/lock`, failing if another open store holds it.
fn lock_dir(dir: &Path) -> std::io::Result<std::fs::File> {
    use std::os::fd::AsRawFd;
    let file = std::fs::OpenOptions::new().create(true).truncate(false).write(true).open(dir.join("lock"))?;
    // A store being dropped right now may still hold it for a moment.
    for attempt in 0..40 {
        // SAFETY: flock on a file descriptor we own; no memory is shared.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
        if rc == 0 {
            return Ok(file);
        }
        if attempt < 39 {
            std::thread::sleep(Duration::from_millis(25));
        }
    }
    Err(std::io::Error::new(std::io::ErrorKind::WouldBlock, format!("the lab state in {} is already open (by this or another process)", dir.display())))
}

fn snapshot(state: &State) -> (u64, Vec<Arc<Value>>) {
    (state.rv, state.objects.iter().flat_map(|m| m.values().cloned()).collect())
}

impl Persister {
    fn write(&self, rv: u64, objects: &[Arc<Value>]) -> std::io::Result<()> {
        let _guard = self.write_lock.lock().unwrap_or_else(|e| e.into_inner());
        let mut buf = Vec::with_capacity(64 * 1024);
        write!(buf, "{{\"resourceVersion\":\"{rv}\",\"objects\":[")?;
        for (i, o) in objects.iter().enumerate() {
            if i > 0 {
                buf.push(b',');
            }
            serde_json::to_writer(&mut buf, &**o)?;
            buf.push(b'\n');
        }
        buf.extend_from_slice(b"]}\n");
        let tmp = self.dir.join(format!("{STATE_FILE}.tmp{}", self.seq.fetch_add(1, Ordering::Relaxed)));
        {
            let mut f = std::fs::File::create(&tmp)?;
            f.write_all(&buf)?;
            f.sync_all()?;
        }
        std::fs::rename(&tmp, self.dir.join(STATE_FILE))?;
        if let Ok(d) = std::fs::File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }

    fn mark_dirty(&self) {
        let mut flags = self.flags.lock().unwrap_or_else(|e| e.into_inner());
        flags.dirty = true;
        self.cv.notify_all();
    }

    fn run(self: Arc<Self>, inner: Weak<Inner>) {
        loop {
            {
                let mut flags = self.flags.lock().unwrap_or_else(|e| e.into_inner());
                while !flags.dirty && !flags.stop {
                    flags = self.cv.wait(flags).unwrap_or_else(|e| e.into_inner());
                }
                if flags.stop {
                    return;
                }
            }
            std::thread::sleep(PERSIST_DEBOUNCE);
            {
                let mut flags = self.flags.lock().unwrap_or_else(|e| e.into_inner());
                flags.dirty = false;
            }
            let Some(inner) = inner.upgrade() else { return };
            let (rv, objects) = {
                let state = inner.state.lock().unwrap_or_else(|e| e.into_inner());
                snapshot(&state)
            };
            drop(inner);
            if let Err(e) = self.write(rv, &objects) {
                tracing::error!("could not save the lab API state: {e}");
                self.mark_dirty();
                std::thread::sleep(Duration::from_secs(1));
            }
        }
    }
}

impl Store {
    /// Opens the store kept in `dir` (created if missing), restoring every
    /// object and the resourceVersion counter saved there. A fresh store
    /// has the namespaces `default`, `kube-system`, `kube-public` and
    /// `kube-node-lease`. Graceful Pod deletion is on. Only one open store
    /// may use a directory at a time (an flock on `dir/lock`, released when
    /// the last clone is dropped); a second open fails with `WouldBlock`.
    pub fn open(dir: &Path) -> std::io::Result<Store> {
        std::fs::create_dir_all(dir)?;
        let lock = lock_dir(dir)?;
        let persist = Arc::new(Persister {
            dir: dir.to_path_buf(),
            flags: Mutex::new(PersistFlags { dirty: false, stop: false }),
            cv: Condvar::new(),
            write_lock: Mutex::new(()),
            seq: AtomicU64::new(0),
        });
        let (tx, _) = broadcast::channel(BROADCAST_CAPACITY);
        let mut state = State {
            rv: 0,
            objects: RESOURCES.iter().map(|_| BTreeMap::new()).collect(),
            history: VecDeque::new(),
            floor: 0,
            graceful: true,
            tx,
            rv_tx: watch::Sender::new(0),
            persist: persist.clone(),
        };
        let path = dir.join(STATE_FILE);
        match std::fs::read(&path) {
            Ok(bytes) => {
                let saved: Value =
                    serde_json::from_slice(&bytes).map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidData, format!("{}: {e}", path.display())))?;
                state.rv = saved["resourceVersion"].as_str().and_then(|s| s.parse().ok()).unwrap_or(0);
                for obj in saved["objects"].as_array().cloned().unwrap_or_default() {
                    let api_version = obj["apiVersion"].as_str().unwrap_or_default();
                    let kind = obj["kind"].as_str().unwrap_or_default();
                    let Some(res) = resources::by_kind(api_version, kind) else {
                        tracing::warn!("ignoring a saved object of unknown kind {api_version} {kind}");
                        continue;
                    };
                    let key = (ns_of(&obj), name_of(&obj));
                    state.objects[resources::index(res)].insert(key, Arc::new(obj));
                }
                state.floor = state.rv;
                state.rv_tx.send_replace(state.rv);
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        let ns_res = resources::by_kind("v1", "Namespace").expect("namespaces");
        for ns in SYSTEM_NAMESPACES {
            if state.get(ns_res, "", ns).is_none() {
                let obj = json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": ns}});
                state.create(ns_res, None, obj, false).map_err(|e| std::io::Error::other(e.message))?;
            }
        }
        let inner = Arc::new(Inner { state: Mutex::new(state), _lock: lock });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new().name("lab-store-persist".into()).spawn(move || persist.run(weak))?;
        let store = Store { inner };
        store.flush()?;
        Ok(store)
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        self.inner.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Writes the whole state to disk now (atomically: temp file + rename).
    /// Changes are also written by themselves within a few milliseconds, and
    /// when the last clone of the store is dropped.
    pub fn flush(&self) -> std::io::Result<()> {
        let (rv, objects, persist) = {
            let state = self.lock();
            let (rv, objects) = snapshot(&state);
            (rv, objects, state.persist.clone())
        };
        persist.write(rv, &objects)
    }

    /// The directory the store is kept in.
    pub(crate) fn dir(&self) -> PathBuf {
        self.lock().persist.dir.clone()
    }

    /// The PEM certificate of the CA that signs the API server's TLS
    /// certificates, kept in the store's directory (`tls/`), created on
    /// first use. Put it in a kubeconfig to trust the server.
    pub fn ca_pem(&self) -> std::io::Result<String> {
        super::tls::load_or_create_ca(&self.dir()).map(|(cert, _)| cert)
    }

    /// Switches graceful Pod deletion (on by default). When on, deleting a
    /// scheduled Pod with a grace period above 0 only sets
    /// `metadata.deletionTimestamp`; a controller removes it later with
    /// [`Store::remove`]. When off, every delete removes at once.
    pub fn set_graceful_pod_deletion(&self, on: bool) {
        self.lock().graceful = on;
    }

    /// The current resourceVersion (the counter of the last change).
    pub fn resource_version(&self) -> u64 {
        self.current_rv()
    }

    pub(crate) fn current_rv(&self) -> u64 {
        self.lock().rv
    }

    /// A receiver of every later change, in order. A receiver that falls
    /// more than 8192 changes behind gets `RecvError::Lagged` and should
    /// list again.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.lock().tx.subscribe()
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

    /// Creates an object. Its `apiVersion`, `kind` and `metadata.namespace`
    /// say where (a namespaced object without a namespace goes to
    /// `default`); `metadata.generateName` is honoured. Sets `uid`,
    /// `creationTimestamp`, `resourceVersion`, `generation` and the kind's
    /// defaults. Errors: 409 AlreadyExists, 422 Invalid, 404 if the
    /// namespace does not exist, 403 if it is terminating.
    pub fn create(&self, object: Value) -> Result<Value, ApiError> {
        let res = res_of(&object)?;
        Ok((*self.lock().create(res, None, object, false)?).clone())
    }

    /// Replaces an object (everything but `.status` for kinds with a status
    /// subresource). If `metadata.resourceVersion` is set it must be the
    /// current one (409 Conflict otherwise). `metadata.generation` goes up
    /// when anything outside metadata and status changes. An update that
    /// changes nothing returns the object as it is, without a new
    /// resourceVersion or event.
    pub fn update(&self, object: Value) -> Result<Value, ApiError> {
        let res = res_of(&object)?;
        Ok((*self.lock().update(res, None, None, object, Part::Main, false)?).clone())
    }

    /// Replaces only `.status` (the status subresource); everything else in
    /// `object` is ignored. `metadata.resourceVersion`, if set, must be current.
    pub fn update_status(&self, object: Value) -> Result<Value, ApiError> {
        let res = res_of(&object)?;
        Ok((*self.lock().update(res, None, None, object, Part::Status, false)?).clone())
    }

    /// Patches an object (the main resource: `.status` changes are ignored
    /// for kinds with a status subresource). A `metadata.resourceVersion` in
    /// the patch is a precondition (409 if stale).
    #[allow(clippy::too_many_arguments)]
    pub fn patch(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str, patch_type: PatchType, body: &[u8]) -> Result<Value, ApiError> {
        let res = resources::by_kind(api_version, kind).ok_or_else(|| unknown_kind(api_version, kind))?;
        Ok((*self.lock().patch(res, namespace, name, patch_type, body, Part::Main, false)?).clone())
    }

    /// Patches only `.status` of an object.
    pub fn patch_status(
        &self,
        api_version: &str,
        kind: &str,
        namespace: Option<&str>,
        name: &str,
        patch_type: PatchType,
        body: &[u8],
    ) -> Result<Value, ApiError> {
        let res = resources::by_kind(api_version, kind).ok_or_else(|| unknown_kind(api_version, kind))?;
        Ok((*self.lock().patch(res, namespace, name, patch_type, body, Part::Status, false)?).clone())
    }

    /// Deletes an object as the API does. A scheduled Pod (with
    /// `spec.nodeName`, not Succeeded or Failed) deleted with a grace period
    /// above 0 (the given one, else its `terminationGracePeriodSeconds`, else
    /// 30) only gets `metadata.deletionTimestamp` (now + grace) and
    /// `deletionGracePeriodSeconds` (a MODIFIED event): the controller that
    /// runs it stops it and calls [`Store::remove`]. An object with
    /// `metadata.finalizers` also only gets a deletionTimestamp; it goes when
    /// an update empties its finalizers. Otherwise the object is removed at
    /// once (DELETED event) and the objects it owns (by
    /// `metadata.ownerReferences`) are deleted in turn. Returns the object's
    /// last state.
    pub fn delete(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str, grace_period_seconds: Option<i64>) -> Result<Value, ApiError> {
        let res = resources::by_kind(api_version, kind).ok_or_else(|| unknown_kind(api_version, kind))?;
        let opts = DeleteOpts { grace_period_seconds, ..Default::default() };
        Ok((*self.lock().delete(res, namespace, name, &opts)?.0).clone())
    }

    /// Removes an object at once, whatever its grace period or finalizers
    /// (the kubelet's final delete), then deletes the objects it owns.
    pub fn remove(&self, api_version: &str, kind: &str, namespace: Option<&str>, name: &str) -> Result<Value, ApiError> {
        let res = resources::by_kind(api_version, kind).ok_or_else(|| unknown_kind(api_version, kind))?;
        Ok((*self.lock().remove(res, namespace, name)?).clone())
    }

    /// Evicts a Pod as `POST .../pods/NAME/eviction` does: refused with 429
    /// TooManyRequests when a PodDisruptionBudget forbids it, else the Pod
    /// is deleted (gracefully) with the given grace period.
    pub fn evict(&self, namespace: &str, name: &str, grace_period_seconds: Option<i64>) -> Result<(), ApiError> {
        let body = json!({"apiVersion": "policy/v1", "kind": "Eviction", "metadata": {"name": name, "namespace": namespace},
            "deleteOptions": {"gracePeriodSeconds": grace_period_seconds}});
        self.lock().evict(namespace, name, &body).map(|_| ())
    }

    /// Records a core v1 Event about `involved` (any stored object), as a
    /// controller's event recorder does: `event_type` is `Normal` or
    /// `Warning`; a repeat of the same reason and message for the same object
    /// bumps `count` and `lastTimestamp` instead of adding an Event.
    pub fn record_event(&self, involved: &Value, event_type: &str, reason: &str, message: &str, component: &str) {
        self.lock().record_event(involved, event_type, reason, message, component);
    }

    // ---- crate-internal API used by the HTTP server ----

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

    pub(crate) fn create_res(&self, res: &'static Resource, url_ns: Option<&str>, obj: Value, dry_run: bool) -> Result<Arc<Value>, ApiError> {
        self.lock().create(res, url_ns, obj, dry_run)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn update_res(
        &self,
        res: &'static Resource,
        ns: Option<&str>,
        name: &str,
        obj: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        self.lock().update(res, ns, Some(name), obj, part, dry_run)
    }

    #[allow(clippy::too_many_arguments)]
    pub(crate) fn patch_res(
        &self,
        res: &'static Resource,
        ns: Option<&str>,
        name: &str,
        pt: PatchType,
        body: &[u8],
        part: Part,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        self.lock().patch(res, ns, name, pt, body, part, dry_run)
    }

    pub(crate) fn delete_res(&self, res: &'static Resource, ns: Option<&str>, name: &str, opts: &DeleteOpts) -> Result<(Arc<Value>, bool), ApiError> {
        self.lock().delete(res, ns, name, opts)
    }

    pub(crate) fn evict_res(&self, ns: &str, name: &str, body: &Value) -> Result<Value, ApiError> {
        self.lock().evict(ns, name, body)
    }

    pub(crate) fn scale_get(&self, res: &'static Resource, ns: &str, name: &str) -> Result<Value, ApiError> {
        let state = self.lock();
        let obj = state.get(res, ns, name).ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        Ok(scale_of(obj))
    }

    /// Applies a new Scale (from PUT, or from PATCH applied to the current
    /// Scale) to the workload's `spec.replicas`.
    pub(crate) fn scale_update(&self, res: &'static Resource, ns: &str, name: &str, scale: Scale, dry_run: bool) -> Result<Value, ApiError> {
        let mut state = self.lock();
        let current = state.get(res, ns, name).cloned().ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        let new_scale = match scale {
            Scale::Put(body) => body,
            Scale::Patch(pt, body) => {
                let p = patch::parse_body(pt, &body)?;
                patch::apply(&scale_of(&current), pt, &p)?
            }
        };
        if let Some(rv) = meta_str(&new_scale, "resourceVersion")
            && rv != meta_str(&current, "resourceVersion").unwrap_or_default()
        {
            return Err(ApiError::stale(res.group, res.plural, name));
        }
        let replicas = match new_scale.pointer("/spec/replicas") {
            Some(v) => match v.as_i64() {
                Some(n) if n >= 0 => n,
                _ => {
                    return Err(ApiError::invalid(
                        "autoscaling",
                        "Scale",
                        name,
                        &[("spec.replicas".into(), format!("Invalid value: {v}: must be greater than or equal to 0"))],
                    ));
                }
            },
            None => 0,
        };
        let old = current.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1);
        let mut obj = (*current).clone();
        obj["spec"]["replicas"] = json!(replicas);
        let updated = state.update(res, Some(ns), Some(name), obj, Part::Main, dry_run)?;
        if old != replicas && !dry_run {
            let msg = format!("Scaled {} {name} from {old} to {replicas} replicas", res.singular);
            state.record_event(&updated, "Normal", "Scaled", &msg, COMPONENT);
        }
        Ok(scale_of(&updated))
    }

    /// History entries with a resourceVersion above `rv`, or 410 Expired if
    /// some of them are no longer kept.
    pub(crate) fn events_after(&self, rv: u64) -> Result<Vec<HistEntry>, ApiError> {
        let state = self.lock();
        if rv < state.floor {
            return Err(ApiError::expired(format!("too old resource version: {rv} ({})", state.floor + 1)));
        }
        let start = state.history.partition_point(|e| e.rv <= rv);
        Ok(state.history.range(start..).cloned().collect())
    }

    /// A receiver that changes whenever the resourceVersion does.
    pub(crate) fn rv_receiver(&self) -> watch::Receiver<u64> {
        self.lock().rv_tx.subscribe()
    }
}

/// A scale subresource write.
pub(crate) enum Scale {
    Put(Value),
    Patch(PatchType, Vec<u8>),
}

fn scale_of(obj: &Value) -> Value {
    let selector = LabelSelector::from_object(obj.pointer("/spec/selector")).map(|s| s.to_string_form()).unwrap_or_default();
    json!({
        "kind": "Scale",
        "apiVersion": "autoscaling/v1",
        "metadata": {
            "name": obj["metadata"]["name"],
            "namespace": obj["metadata"]["namespace"],
            "uid": obj["metadata"]["uid"],
            "resourceVersion": obj["metadata"]["resourceVersion"],
            "creationTimestamp": obj["metadata"]["creationTimestamp"],
        },
        "spec": {"replicas": obj.pointer("/spec/replicas").cloned().unwrap_or(json!(1))},
        "status": {
            "replicas": obj.pointer("/status/replicas").cloned().unwrap_or(json!(0)),
            "selector": selector,
        },
    })
}

fn res_of(obj: &Value) -> Result<&'static Resource, ApiError> {
    let api_version = obj.get("apiVersion").and_then(Value::as_str).unwrap_or_default();
    let kind = obj.get("kind").and_then(Value::as_str).unwrap_or_default();
    resources::by_kind(api_version, kind).ok_or_else(|| unknown_kind(api_version, kind))
}

fn random_suffix() -> String {
    const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
    let bytes = uuid::Uuid::new_v4().into_bytes();
    bytes.iter().take(5).map(|b| ALPHABET[*b as usize % ALPHABET.len()] as char).collect()
}

fn is_ready(pod: &Value) -> bool {
    pod.pointer("/status/conditions").and_then(Value::as_array).is_some_and(|cs| cs.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

fn is_terminating(obj: &Value) -> bool {
    obj.pointer("/metadata/deletionTimestamp").is_some_and(|v| !v.is_null())
}

/// The object without metadata and status: a change here bumps generation.
fn spec_part(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.as_object_mut() {
        for k in ["metadata", "status", "apiVersion", "kind"] {
            m.remove(k);
        }
    }
    o
}

fn without_rv(obj: &Value) -> Value {
    let mut o = obj.clone();
    if let Some(m) = o.get_mut("metadata").and_then(Value::as_object_mut) {
        m.remove("resourceVersion");
        m.remove("managedFields");
    }
    o
}

fn scaled(v: &Value, total: i64) -> Option<i64> {
    match v {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => kinds::parse_percent(s).map(|p| (p * total + 99) / 100),
        _ => None,
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

    fn check_namespace(&self, res: &Resource, ns: &str, name: &str) -> Result<(), ApiError> {
        if !res.namespaced {
            return Ok(());
        }
        let ns_res = resources::by_kind("v1", "Namespace").expect("namespaces");
        match self.get(ns_res, "", ns) {
            None => Err(ApiError::not_found("", "namespaces", ns)),
            Some(n) if is_terminating(n) => Err(ApiError::forbidden(format!(
                "{} \"{name}\" is forbidden: unable to create new content in namespace {ns} because it is being terminated",
                res.key(),
            ))
            .with_details(json!({"kind": res.plural, "group": res.group, "causes": [{"reason": "NamespaceTerminating", "message": format!("namespace {ns} is being terminated"), "field": "metadata.namespace"}]}))),
            Some(_) => Ok(()),
        }
    }

    /// Checks the body's apiVersion and kind (filling them in when absent).
    fn check_type(res: &Resource, obj: &mut Value) -> Result<(), ApiError> {
        let Some(m) = obj.as_object_mut() else {
            return Err(ApiError::bad_request("the body of the request must be a JSON object"));
        };
        let name = m.get("metadata").and_then(|x| x.get("name")).and_then(Value::as_str).unwrap_or_default().to_string();
        match m.get("kind").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("kind".into(), json!(res.kind));
            }
            Some(k) if k != res.kind => {
                return Err(ApiError::invalid(res.group, res.kind, &name, &[("kind".into(), format!("Invalid value: {k:?}: must be {}", res.kind))]));
            }
            _ => {}
        }
        match m.get("apiVersion").and_then(Value::as_str) {
            None | Some("") => {
                m.insert("apiVersion".into(), json!(res.api_version()));
            }
            Some(v) if v != res.api_version() => {
                return Err(ApiError::bad_request(format!(
                    "the API version in the data ({v}) does not match the expected API version ({})",
                    res.api_version()
                )));
            }
            _ => {}
        }
        match m.get("metadata") {
            None | Some(Value::Null) => {
                m.insert("metadata".into(), json!({}));
            }
            Some(Value::Object(_)) => {}
            Some(_) => {
                return Err(ApiError::invalid(
                    res.group,
                    res.kind,
                    "",
                    &[("metadata".into(), "Invalid value: metadata in body must be of type object".into())],
                ));
            }
        }
        Ok(())
    }

    fn create(&mut self, res: &'static Resource, url_ns: Option<&str>, mut obj: Value, dry_run: bool) -> Result<Arc<Value>, ApiError> {
        Self::check_type(res, &mut obj)?;
        let meta = obj["metadata"].as_object_mut().expect("checked");
        let ns = if res.namespaced {
            let body_ns = meta.get("namespace").and_then(Value::as_str).filter(|s| !s.is_empty()).map(str::to_string);
            let ns = match (url_ns, body_ns) {
                (Some(u), Some(b)) if u != b => {
                    return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
                }
                (Some(u), _) => u.to_string(),
                (None, Some(b)) => b,
                (None, None) => "default".to_string(),
            };
            meta.insert("namespace".into(), json!(ns));
            ns
        } else {
            meta.remove("namespace");
            String::new()
        };
        let mut name = meta.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
        if name.is_empty() {
            let generate = meta.get("generateName").and_then(Value::as_str).unwrap_or_default().to_string();
            if generate.is_empty() {
                return Err(ApiError::invalid(res.group, res.kind, "", &[("metadata.name".into(), "Required value: name or generateName is required".into())]));
            }
            for _ in 0..8 {
                name = format!("{generate}{}", random_suffix());
                if self.get(res, &ns, &name).is_none() {
                    break;
                }
            }
            meta.insert("name".into(), json!(name));
        }
        if let Err(e) = kinds::validate_name(res, &name) {
            return Err(ApiError::invalid(res.group, res.kind, &name, &[e]));
        }
        self.check_namespace(res, &ns, &name)?;
        if self.get(res, &ns, &name).is_some() {
            return Err(ApiError::already_exists(res.group, res.plural, &name));
        }
        let uid = uuid::Uuid::new_v4().to_string();
        for k in ["resourceVersion", "deletionTimestamp", "deletionGracePeriodSeconds", "selfLink", "managedFields"] {
            meta.remove(k);
        }
        meta.insert("uid".into(), json!(uid));
        meta.insert("creationTimestamp".into(), json!(time::now_rfc3339()));
        meta.insert("generation".into(), json!(1));
        kinds::apply_defaults(res, &mut obj, &uid);
        if res.kind == "Service" {
            self.allocate_cluster_ip(&mut obj)?;
        }
        kinds::validate(res, &obj)?;
        if dry_run {
            obj["metadata"]["resourceVersion"] = json!(self.rv.to_string());
            return Ok(Arc::new(obj));
        }
        let arc = self.commit(res, EventType::Added, obj, None);
        if res.kind == "Event" {
            self.trim_events();
        }
        self.after_change(res, &ns);
        Ok(arc)
    }

    fn allocate_cluster_ip(&self, obj: &mut Value) -> Result<(), ApiError> {
        let spec = &obj["spec"];
        if spec.get("type").and_then(Value::as_str) == Some("ExternalName") {
            return Ok(());
        }
        if let Some(ip) = spec.get("clusterIP").and_then(Value::as_str).filter(|s| !s.is_empty()) {
            let ip = ip.to_string();
            obj["spec"]["clusterIPs"] = json!([ip]);
            return Ok(());
        }
        let svc_res = resources::by_kind("v1", "Service").expect("services");
        let used: HashSet<String> =
            self.objects[resources::index(svc_res)].values().filter_map(|s| s.pointer("/spec/clusterIP").and_then(Value::as_str).map(str::to_string)).collect();
        for third in 2..=9u8 {
            for fourth in 1..=254u8 {
                let ip = format!("127.0.{third}.{fourth}");
                if !used.contains(&ip) {
                    obj["spec"]["clusterIP"] = json!(ip);
                    obj["spec"]["clusterIPs"] = json!([ip]);
                    return Ok(());
                }
            }
        }
        Err(ApiError::internal("failed to allocate a serviceIP: range is full"))
    }

    #[allow(clippy::too_many_arguments)]
    fn update(
        &mut self,
        res: &'static Resource,
        url_ns: Option<&str>,
        url_name: Option<&str>,
        mut obj: Value,
        part: Part,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        Self::check_type(res, &mut obj)?;
        let body_name = name_of(&obj);
        let name = match url_name {
            Some(u) => {
                if !body_name.is_empty() && body_name != u {
                    return Err(ApiError::bad_request(format!("the name of the object ({body_name}) does not match the name on the URL ({u})")));
                }
                u.to_string()
            }
            None => body_name,
        };
        if name.is_empty() {
            return Err(ApiError::invalid(res.group, res.kind, "", &[("metadata.name".into(), "Required value: name is required".into())]));
        }
        let ns = if res.namespaced {
            let body_ns = ns_of(&obj);
            match url_ns {
                Some(u) if !body_ns.is_empty() && body_ns != u => {
                    return Err(ApiError::bad_request("the namespace of the provided object does not match the namespace sent on the request"));
                }
                Some(u) => u.to_string(),
                None if body_ns.is_empty() => "default".to_string(),
                None => body_ns,
            }
        } else {
            String::new()
        };
        let existing = self.get(res, &ns, &name).cloned().ok_or_else(|| ApiError::not_found(res.group, res.plural, &name))?;
        if let Some(rv) = meta_str(&obj, "resourceVersion")
            && Some(rv) != meta_str(&existing, "resourceVersion")
        {
            return Err(ApiError::stale(res.group, res.plural, &name));
        }
        if let Some(uid) = meta_str(&obj, "uid") {
            let current = meta_str(&existing, "uid").unwrap_or_default();
            if uid != current {
                return Err(ApiError::conflict(
                    res.group,
                    res.plural,
                    &name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {current}"),
                ));
            }
        }
        let new = match part {
            Part::Status => {
                let mut new = (*existing).clone();
                match obj.get("status") {
                    Some(s) if !s.is_null() => new["status"] = s.clone(),
                    _ => {
                        if let Some(m) = new.as_object_mut() {
                            m.remove("status");
                        }
                    }
                }
                kinds::validate(res, &new)?;
                new
            }
            Part::Main => {
                let mut new = obj;
                if res.has_status() {
                    match existing.get("status") {
                        Some(s) => new["status"] = s.clone(),
                        None => {
                            if let Some(m) = new.as_object_mut() {
                                m.remove("status");
                            }
                        }
                    }
                }
                {
                    let meta = new["metadata"].as_object_mut().expect("checked");
                    meta.insert("name".into(), json!(name));
                    if res.namespaced {
                        meta.insert("namespace".into(), json!(ns));
                    } else {
                        meta.remove("namespace");
                    }
                    meta.remove("managedFields");
                    meta.remove("selfLink");
                    for k in ["uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds", "generation"] {
                        match existing["metadata"].get(k) {
                            Some(v) => meta.insert(k.into(), v.clone()),
                            None => meta.remove(k),
                        };
                    }
                }
                if res.kind == "Service"
                    && new.pointer("/spec/clusterIP").is_none_or(|v| v.as_str().is_none_or(str::is_empty))
                    && let (Some(ip), Some(spec)) = (existing.pointer("/spec/clusterIP").cloned(), new.get_mut("spec").and_then(Value::as_object_mut))
                {
                    spec.insert("clusterIP".into(), ip.clone());
                    spec.insert("clusterIPs".into(), json!([ip]));
                }
                let uid = meta_str(&existing, "uid").unwrap_or_default().to_string();
                kinds::apply_defaults(res, &mut new, &uid);
                kinds::validate(res, &new)?;
                if spec_part(&new) != spec_part(&existing) {
                    let generation = existing.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
                    new["metadata"]["generation"] = json!(generation + 1);
                }
                new
            }
        };
        if without_rv(&new) == without_rv(&existing) {
            return Ok(existing);
        }
        if dry_run {
            return Ok(Arc::new(new));
        }
        let finalizers_empty = new.pointer("/metadata/finalizers").and_then(Value::as_array).is_none_or(Vec::is_empty);
        let grace_done = res.kind != "Pod" || new.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64).unwrap_or(0) == 0;
        if is_terminating(&new) && finalizers_empty && grace_done {
            let had_finalizers = existing.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
            if had_finalizers {
                let arc = self.commit(res, EventType::Modified, new, Some(existing));
                let gone = self.commit(res, EventType::Deleted, (*arc).clone(), Some(arc.clone()));
                let uid = meta_str(&gone, "uid").unwrap_or_default().to_string();
                self.collect_garbage(&uid, false);
                self.after_change(res, &ns);
                return Ok(gone);
            }
        }
        let arc = self.commit(res, EventType::Modified, new, Some(existing));
        self.after_change(res, &ns);
        Ok(arc)
    }

    #[allow(clippy::too_many_arguments)]
    fn patch(
        &mut self,
        res: &'static Resource,
        ns: Option<&str>,
        name: &str,
        pt: PatchType,
        body: &[u8],
        part: Part,
        dry_run: bool,
    ) -> Result<Arc<Value>, ApiError> {
        let p = patch::parse_body(pt, body)?;
        let ns_s = Self::res_ns(res, ns).to_string();
        let Some(existing) = self.get(res, &ns_s, name).cloned() else {
            if pt == PatchType::Apply && part == Part::Main {
                let mut obj = p;
                if !obj.is_object() {
                    return Err(ApiError::bad_request("an apply patch must be an object"));
                }
                if obj.get("metadata").is_none_or(|m| !m.is_object()) {
                    obj["metadata"] = json!({});
                }
                let body_name = name_of(&obj);
                if !body_name.is_empty() && body_name != name {
                    return Err(ApiError::bad_request(format!("the name of the object ({body_name}) does not match the name on the URL ({name})")));
                }
                obj["metadata"]["name"] = json!(name);
                return self.create(res, if res.namespaced { Some(&ns_s) } else { None }, obj, dry_run);
            }
            return Err(ApiError::not_found(res.group, res.plural, name));
        };
        if pt == PatchType::Apply
            && let Some(k) = p.get("kind").and_then(Value::as_str)
            && k != res.kind
        {
            return Err(ApiError::invalid(res.group, res.kind, name, &[("kind".into(), format!("Invalid value: {k:?}: must be {}", res.kind))]));
        }
        let patched = patch::apply(&existing, pt, &p)?;
        if !patched.is_object() {
            return Err(ApiError::bad_request("the patched object must be a JSON object"));
        }
        for (field, old) in [("name", meta_str(&existing, "name")), ("namespace", meta_str(&existing, "namespace")), ("uid", meta_str(&existing, "uid"))] {
            let new = meta_str(&patched, field);
            if new.is_some() && new != old {
                return Err(ApiError::invalid(
                    res.group,
                    res.kind,
                    name,
                    &[(format!("metadata.{field}"), format!("Invalid value: {:?}: field is immutable", new.unwrap_or_default()))],
                ));
            }
        }
        self.update(res, Some(&ns_s), Some(name), patched, part, dry_run)
    }

    fn delete(&mut self, res: &'static Resource, ns: Option<&str>, name: &str, opts: &DeleteOpts) -> Result<(Arc<Value>, bool), ApiError> {
        let ns = Self::res_ns(res, ns).to_string();
        let existing = self.get(res, &ns, name).cloned().ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        if let Some(uid) = opts.precondition_uid.as_deref().filter(|s| !s.is_empty()) {
            let current = meta_str(&existing, "uid").unwrap_or_default();
            if uid != current {
                return Err(ApiError::conflict(
                    res.group,
                    res.plural,
                    name,
                    &format!("Precondition failed: UID in precondition: {uid}, UID in object meta: {current}"),
                ));
            }
        }
        if let Some(rv) = opts.precondition_rv.as_deref().filter(|s| !s.is_empty()) {
            let current = meta_str(&existing, "resourceVersion").unwrap_or_default();
            if rv != current {
                return Err(ApiError::conflict(
                    res.group,
                    res.plural,
                    name,
                    &format!("Precondition failed: ResourceVersion in precondition: {rv}, ResourceVersion in object meta: {current}"),
                ));
            }
        }
        if let Some(g) = opts.grace_period_seconds
            && g < 0
        {
            return Err(ApiError::invalid(
                res.group,
                res.kind,
                name,
                &[("gracePeriodSeconds".into(), format!("Invalid value: {g}: must be greater than or equal to 0"))],
            ));
        }
        if let Some(p) = opts.propagation.as_deref()
            && !matches!(p, "Orphan" | "Background" | "Foreground")
        {
            return Err(ApiError::invalid(
                res.group,
                res.kind,
                name,
                &[("propagationPolicy".into(), format!("Unsupported value: {p:?}: supported values: \"Foreground\", \"Background\", \"Orphan\""))],
            ));
        }
        if res.kind == "Namespace" {
            return self.delete_namespace(res, existing, opts.dry_run);
        }
        let finalizers = existing.pointer("/metadata/finalizers").and_then(Value::as_array).is_some_and(|f| !f.is_empty());
        if res.kind == "Pod" {
            let phase = existing.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
            let scheduled = existing.pointer("/spec/nodeName").and_then(Value::as_str).is_some_and(|s| !s.is_empty());
            let grace = opts.grace_period_seconds.or_else(|| existing.pointer("/spec/terminationGracePeriodSeconds").and_then(Value::as_i64)).unwrap_or(30);
            let graceful = self.graceful && grace > 0 && scheduled && phase != "Succeeded" && phase != "Failed";
            if graceful {
                let current = existing.pointer("/metadata/deletionGracePeriodSeconds").and_then(Value::as_i64);
                if is_terminating(&existing) && current.is_some_and(|c| c <= grace) {
                    return Ok((existing, false));
                }
                let mut new = (*existing).clone();
                new["metadata"]["deletionTimestamp"] = json!(time::format_rfc3339(time::now_unix() + grace));
                new["metadata"]["deletionGracePeriodSeconds"] = json!(grace);
                let generation = existing.pointer("/metadata/generation").and_then(Value::as_i64).unwrap_or(0);
                new["metadata"]["generation"] = json!(generation + 1);
                if opts.dry_run {
                    return Ok((Arc::new(new), false));
                }
                let arc = self.commit(res, EventType::Modified, new, Some(existing));
                self.after_change(res, &ns);
                return Ok((arc, false));
            }
        }
        if finalizers {
            if is_terminating(&existing) && res.kind != "Pod" {
                return Ok((existing, false));
            }
            let mut new = (*existing).clone();
            if !is_terminating(&existing) {
                new["metadata"]["deletionTimestamp"] = json!(time::now_rfc3339());
            }
            new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
            if opts.dry_run {
                return Ok((Arc::new(new), false));
            }
            if new == *existing {
                return Ok((existing, false));
            }
            let arc = self.commit(res, EventType::Modified, new, Some(existing));
            self.after_change(res, &ns);
            return Ok((arc, false));
        }
        if opts.dry_run {
            return Ok((existing, true));
        }
        let orphan = opts.propagation.as_deref() == Some("Orphan");
        let gone = self.commit(res, EventType::Deleted, (*existing).clone(), Some(existing));
        let uid = meta_str(&gone, "uid").unwrap_or_default().to_string();
        self.collect_garbage(&uid, orphan);
        self.after_change(res, &ns);
        Ok((gone, true))
    }

    fn delete_namespace(&mut self, res: &'static Resource, existing: Arc<Value>, dry_run: bool) -> Result<(Arc<Value>, bool), ApiError> {
        let name = name_of(&existing);
        if SYSTEM_NAMESPACES.contains(&name.as_str()) {
            return Err(ApiError::forbidden(format!("namespaces \"{name}\" is forbidden: this namespace may not be deleted"))
                .with_details(json!({"name": name, "kind": "namespaces"})));
        }
        if is_terminating(&existing) {
            return Ok((existing, false));
        }
        let mut new = (*existing).clone();
        new["metadata"]["deletionTimestamp"] = json!(time::now_rfc3339());
        new["metadata"]["deletionGracePeriodSeconds"] = json!(0);
        new["status"]["phase"] = json!("Terminating");
        if dry_run {
            return Ok((Arc::new(new), false));
        }
        let arc = self.commit(res, EventType::Modified, new, Some(existing));
        for r in RESOURCES.iter().filter(|r| r.namespaced) {
            let names: Vec<String> = self.objects[resources::index(r)].keys().filter(|(ons, _)| *ons == name).map(|(_, n)| n.clone()).collect();
            for n in names {
                if let Err(e) = self.delete(r, Some(&name), &n, &DeleteOpts::default())
                    && e.code != 404
                {
                    tracing::warn!("deleting {} {name}/{n} with its namespace: {}", r.kind, e.message);
                }
            }
        }
        self.finalize_namespace(&name);
        let gone = self.get(res, "", &name).is_none();
        Ok((self.get(res, "", &name).cloned().unwrap_or(arc), gone))
    }

    /// Removes a terminating namespace once it is empty.
    fn finalize_namespace(&mut self, ns: &str) {
        let ns_res = resources::by_kind("v1", "Namespace").expect("namespaces");
        let Some(n) = self.get(ns_res, "", ns).cloned() else { return };
        if !is_terminating(&n) {
            return;
        }
        let empty = RESOURCES.iter().filter(|r| r.namespaced).all(|r| !self.objects[resources::index(r)].keys().any(|(ons, _)| ons == ns));
        if empty {
            self.commit(ns_res, EventType::Deleted, (*n).clone(), Some(n));
        }
    }

    fn remove(&mut self, res: &'static Resource, ns: Option<&str>, name: &str) -> Result<Arc<Value>, ApiError> {
        let ns = Self::res_ns(res, ns).to_string();
        let existing = self.get(res, &ns, name).cloned().ok_or_else(|| ApiError::not_found(res.group, res.plural, name))?;
        let gone = self.commit(res, EventType::Deleted, (*existing).clone(), Some(existing));
        let uid = meta_str(&gone, "uid").unwrap_or_default().to_string();
        self.collect_garbage(&uid, false);
        self.after_change(res, &ns);
        if res.kind == "Namespace" {
            for r in RESOURCES.iter().filter(|r| r.namespaced) {
                let names: Vec<String> = self.objects[resources::index(r)].keys().filter(|(ons, _)| *ons == *name).map(|(_, n)| n.clone()).collect();
                for n in names {
                    let _ = self.remove(r, Some(name), &n);
                }
            }
        }
        Ok(gone)
    }

    /// After an owner with `uid` is removed: deletes its dependents (or,
    /// with `orphan`, drops their reference to it).
    fn collect_garbage(&mut self, uid: &str, orphan: bool) {
        if uid.is_empty() {
            return;
        }
        let mut dependents: Vec<(&'static Resource, Arc<Value>)> = Vec::new();
        for r in RESOURCES {
            for o in self.objects[resources::index(r)].values() {
                let owned = o.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| refs.iter().any(|x| x["uid"] == uid));
                if owned {
                    dependents.push((r, o.clone()));
                }
            }
        }
        if dependents.is_empty() {
            return;
        }
        let live: HashSet<String> = self.objects.iter().flat_map(|m| m.values()).filter_map(|o| meta_str(o, "uid").map(str::to_string)).collect();
        for (r, dep) in dependents {
            let refs = dep.pointer("/metadata/ownerReferences").and_then(Value::as_array).cloned().unwrap_or_default();
            let others_alive = refs.iter().any(|x| x["uid"] != uid && x["uid"].as_str().is_some_and(|u| live.contains(u)));
            let ns = ns_of(&dep);
            let name = name_of(&dep);
            if orphan || others_alive {
                let mut new = (*dep).clone();
                let kept: Vec<Value> = refs.into_iter().filter(|x| x["uid"] != uid).collect();
                if kept.is_empty() {
                    if let Some(m) = new["metadata"].as_object_mut() {
                        m.remove("ownerReferences");
                    }
                } else {
                    new["metadata"]["ownerReferences"] = Value::Array(kept);
                }
                self.commit(r, EventType::Modified, new, Some(dep));
                self.after_change(r, &ns);
            } else if let Err(e) = self.delete(r, Some(&ns), &name, &DeleteOpts::default())
                && e.code != 404
            {
                tracing::warn!("garbage-collecting {} {ns}/{name}: {}", r.kind, e.message);
            }
        }
    }

    /// Keeps derived state current after a change in namespace `ns`:
    /// PodDisruptionBudget status, and the removal of an emptied
    /// terminating namespace.
    fn after_change(&mut self, res: &Resource, ns: &str) {
        if ns.is_empty() {
            return;
        }
        if matches!(res.kind, "Pod" | "PodDisruptionBudget" | "StatefulSet" | "Job" | "DaemonSet") {
            self.refresh_pdbs(ns);
        }
        self.finalize_namespace(ns);
    }

    fn pods_in(&self, ns: &str) -> Vec<Arc<Value>> {
        let pod_res = resources::by_kind("v1", "Pod").expect("pods");
        self.objects[resources::index(pod_res)].iter().filter(|((ons, _), _)| ons == ns).map(|(_, v)| v.clone()).collect()
    }

    /// The scale of the controllers of `pods` (StatefulSet replicas, Job
    /// parallelism, DaemonSet desired count); a Pod with no controller counts as 1.
    fn expected_count(&self, ns: &str, pods: &[Arc<Value>]) -> i64 {
        let mut seen = HashSet::new();
        let mut total = 0;
        for pod in pods {
            let owner =
                pod.pointer("/metadata/ownerReferences").and_then(Value::as_array).and_then(|refs| refs.iter().find(|r| r["controller"] == true).cloned());
            let Some(owner) = owner else {
                total += 1;
                continue;
            };
            let uid = owner["uid"].as_str().unwrap_or_default().to_string();
            if !seen.insert(uid.clone()) {
                continue;
            }
            let api_version = owner["apiVersion"].as_str().unwrap_or_default();
            let kind = owner["kind"].as_str().unwrap_or_default();
            let name = owner["name"].as_str().unwrap_or_default();
            let ctrl = resources::by_kind(api_version, kind).and_then(|r| self.get(r, ns, name));
            total += match (kind, ctrl) {
                ("StatefulSet", Some(c)) => c.pointer("/spec/replicas").and_then(Value::as_i64).unwrap_or(1),
                ("Job", Some(c)) => c.pointer("/spec/parallelism").and_then(Value::as_i64).unwrap_or(1),
                ("DaemonSet", Some(c)) => c.pointer("/status/desiredNumberScheduled").and_then(Value::as_i64).unwrap_or(0),
                _ => pods
                    .iter()
                    .filter(|p| {
                        p.pointer("/metadata/ownerReferences").and_then(Value::as_array).is_some_and(|refs| refs.iter().any(|r| r["uid"] == uid.as_str()))
                    })
                    .count() as i64,
            };
        }
        total
    }

    /// The status a PodDisruptionBudget should have now.
    fn pdb_status(&self, pdb: &Value) -> Value {
        let ns = ns_of(pdb);
        let selector = LabelSelector::from_object(pdb.pointer("/spec/selector")).unwrap_or_else(|_| LabelSelector::from_object(None).expect("null selector"));
        let pods: Vec<Arc<Value>> = self.pods_in(&ns).into_iter().filter(|p| selector.matches_object(p)).collect();
        let healthy = pods.iter().filter(|p| is_ready(p) && !is_terminating(p)).count() as i64;
        let spec = &pdb["spec"];
        let min = spec.get("minAvailable").filter(|v| !v.is_null());
        let max = spec.get("maxUnavailable").filter(|v| !v.is_null());
        let (expected, desired) = match (min, max) {
            (Some(Value::Number(n)), _) => (pods.len() as i64, n.as_i64().unwrap_or(0)),
            (Some(v), _) => {
                let expected = self.expected_count(&ns, &pods);
                (expected, scaled(v, expected).unwrap_or(0))
            }
            (None, Some(v)) => {
                let expected = self.expected_count(&ns, &pods);
                (expected, (expected - scaled(v, expected).unwrap_or(0)).max(0))
            }
            (None, None) => (pods.len() as i64, 0),
        };
        let allowed = if expected <= 0 { 0 } else { (healthy - desired).max(0) };
        let generation = pdb.pointer("/metadata/generation").cloned().unwrap_or(json!(1));
        let cond_status = if allowed > 0 { "True" } else { "False" };
        let old_cond = pdb.pointer("/status/conditions").and_then(Value::as_array).and_then(|cs| cs.iter().find(|c| c["type"] == "DisruptionAllowed").cloned());
        let transition = match &old_cond {
            Some(c) if c["status"] == cond_status => c["lastTransitionTime"].clone(),
            _ => json!(time::now_rfc3339()),
        };
        let mut status = json!({
            "observedGeneration": generation,
            "disruptionsAllowed": allowed,
            "currentHealthy": healthy,
            "desiredHealthy": desired,
            "expectedPods": expected,
            "conditions": [{
                "type": "DisruptionAllowed",
                "status": cond_status,
                "reason": if allowed > 0 { "SufficientPods" } else { "InsufficientPods" },
                "message": "",
                "observedGeneration": generation,
                "lastTransitionTime": transition,
            }],
        });
        if let Some(d) = pdb.pointer("/status/disruptedPods") {
            status["disruptedPods"] = d.clone();
        }
        status
    }

    fn refresh_pdbs(&mut self, ns: &str) {
        let pdb_res = resources::by_kind("policy/v1", "PodDisruptionBudget").expect("pdbs");
        let pdbs: Vec<Arc<Value>> = self.objects[resources::index(pdb_res)].iter().filter(|((ons, _), _)| ons == ns).map(|(_, v)| v.clone()).collect();
        for pdb in pdbs {
            let status = self.pdb_status(&pdb);
            if pdb.get("status") != Some(&status) {
                let mut new = (*pdb).clone();
                new["status"] = status;
                self.commit(pdb_res, EventType::Modified, new, Some(pdb));
            }
        }
    }

    fn evict(&mut self, ns: &str, name: &str, body: &Value) -> Result<Value, ApiError> {
        let pod_res = resources::by_kind("v1", "Pod").expect("pods");
        let pod = self.get(pod_res, ns, name).cloned().ok_or_else(|| ApiError::not_found("", "pods", name))?;
        if let Some(k) = body.get("kind").and_then(Value::as_str)
            && k != "Eviction"
        {
            return Err(ApiError::bad_request(format!("the body must be an Eviction, not a {k}")));
        }
        if let Some(n) = meta_str(body, "name")
            && n != name
        {
            return Err(ApiError::bad_request("name in URL does not match name in Eviction object"));
        }
        let del = body.get("deleteOptions").cloned().unwrap_or(Value::Null);
        let opts = DeleteOpts {
            grace_period_seconds: del.get("gracePeriodSeconds").and_then(Value::as_i64),
            precondition_uid: del.pointer("/preconditions/uid").and_then(Value::as_str).map(str::to_string),
            precondition_rv: del.pointer("/preconditions/resourceVersion").and_then(Value::as_str).map(str::to_string),
            propagation: None,
            dry_run: del.get("dryRun").and_then(Value::as_array).is_some_and(|a| !a.is_empty()),
        };
        let success = json!({"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "code": 201});
        let phase = pod.pointer("/status/phase").and_then(Value::as_str).unwrap_or_default();
        if is_terminating(&pod) || matches!(phase, "Succeeded" | "Failed" | "Pending") {
            self.delete(pod_res, Some(ns), name, &opts)?;
            return Ok(success);
        }
        let pdb_res = resources::by_kind("policy/v1", "PodDisruptionBudget").expect("pdbs");
        let pdbs: Vec<Arc<Value>> = self.objects[resources::index(pdb_res)]
            .iter()
            .filter(|((ons, _), _)| ons == ns)
            .map(|(_, v)| v.clone())
            .filter(|pdb| LabelSelector::from_object(pdb.pointer("/spec/selector")).is_ok_and(|s| s.matches_object(&pod)))
            .collect();
        if pdbs.len() > 1 {
            return Err(ApiError::internal("This pod has more than one PodDisruptionBudget, which the eviction subresource does not support."));
        }
        if let Some(pdb) = pdbs.first() {
            let status = self.pdb_status(pdb);
            let current = status["currentHealthy"].as_i64().unwrap_or(0);
            let desired = status["desiredHealthy"].as_i64().unwrap_or(0);
            let allowed = status["disruptionsAllowed"].as_i64().unwrap_or(0);
            let pdb_name = name_of(pdb);
            let policy = pdb.pointer("/spec/unhealthyPodEvictionPolicy").and_then(Value::as_str).unwrap_or("IfHealthyBudget");
            let unhealthy_ok = !is_ready(&pod) && (policy == "AlwaysAllow" || current >= desired);
            if !unhealthy_ok && allowed <= 0 {
                let cause = format!("The disruption budget {pdb_name} needs {desired} healthy pods and has {current} currently");
                if !opts.dry_run {
                    self.record_event(
                        &pod,
                        "Warning",
                        "EvictionBlocked",
                        &format!("Cannot evict pod as it would violate the pod's disruption budget {pdb_name}: needs {desired} healthy pods and has {current}"),
                        COMPONENT,
                    );
                }
                return Err(ApiError::new(429, "TooManyRequests", "Cannot evict pod as it would violate the pod's disruption budget.")
                    .with_details(json!({"causes": [{"reason": "DisruptionBudget", "message": cause}]})));
            }
        }
        self.delete(pod_res, Some(ns), name, &opts)?;
        if !opts.dry_run {
            let evicted = self.get(pod_res, ns, name).cloned().unwrap_or(pod);
            self.record_event(&evicted, "Normal", "Evicted", "Evicted by the eviction API (policy/v1 Eviction)", COMPONENT);
        }
        Ok(success)
    }

    fn record_event(&mut self, involved: &Value, event_type: &str, reason: &str, message: &str, component: &str) {
        let ev_res = resources::by_kind("v1", "Event").expect("events");
        let ns = meta_str(involved, "namespace").unwrap_or("default").to_string();
        let uid = meta_str(involved, "uid").unwrap_or_default().to_string();
        let involved_name = name_of(involved);
        let now = time::now_rfc3339();
        let existing = self.objects[resources::index(ev_res)]
            .iter()
            .filter(|((ons, _), _)| *ons == ns)
            .map(|(_, e)| e)
            .find(|e| {
                e.pointer("/involvedObject/uid").and_then(Value::as_str) == Some(uid.as_str())
                    && e.pointer("/involvedObject/name").and_then(Value::as_str) == Some(involved_name.as_str())
                    && e["reason"] == reason
                    && e["message"] == message
                    && e["type"] == event_type
            })
            .cloned();
        if let Some(e) = existing {
            let mut new = (*e).clone();
            new["count"] = json!(e["count"].as_i64().unwrap_or(1) + 1);
            new["lastTimestamp"] = json!(now);
            self.commit(ev_res, EventType::Modified, new, Some(e));
            return;
        }
        let name = format!("{involved_name}.{:x}", time::now_micros() * 1000 + (self.rv as i64 % 1000));
        let mut involved_ref = json!({
            "apiVersion": involved["apiVersion"],
            "kind": involved["kind"],
            "name": involved_name,
            "uid": uid,
            "resourceVersion": involved["metadata"]["resourceVersion"],
        });
        if let Some(n) = meta_str(involved, "namespace") {
            involved_ref["namespace"] = json!(n);
        }
        let event = json!({
            "apiVersion": "v1",
            "kind": "Event",
            "metadata": {"name": name, "namespace": ns},
            "involvedObject": involved_ref,
            "reason": reason,
            "message": message,
            "type": event_type,
            "source": {"component": component},
            "reportingComponent": component,
            "reportingInstance": component,
            "firstTimestamp": now,
            "lastTimestamp": now,
            "count": 1,
        });
        if let Err(e) = self.create(ev_res, Some(&ns), event, false) {
            tracing::debug!("could not record event {reason} for {involved_name}: {}", e.message);
        }
    }

    fn trim_events(&mut self) {
        let ev_res = resources::by_kind("v1", "Event").expect("events");
        let idx = resources::index(ev_res);
        let count = self.objects[idx].len();
        if count <= EVENTS_LIMIT {
            return;
        }
        let mut by_age: Vec<(u64, Arc<Value>)> =
            self.objects[idx].values().map(|e| (meta_str(e, "resourceVersion").and_then(|s| s.parse().ok()).unwrap_or(0), e.clone())).collect();
        by_age.sort_by_key(|(rv, _)| *rv);
        for (_, e) in by_age.into_iter().take(count - EVENTS_LIMIT) {
            self.commit(ev_res, EventType::Deleted, (*e).clone(), Some(e));
        }
    }
}

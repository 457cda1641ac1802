//! Persistence: the whole state as one JSON file, written atomically a few
//! milliseconds after a change (a background thread coalesces bursts), on
//! [`Store::flush`] and when the last clone is dropped; an flock keeps a
//! directory to one open store.

use std::collections::{BTreeMap, VecDeque};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, Weak};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::events::BROADCAST_CAPACITY;
use super::{Inner, SYSTEM_NAMESPACES, State, Store, name_of, ns_of};
use crate::apiserver::resources::{self, RESOURCES};

/// How long a change may wait before it is written to disk.
const PERSIST_DEBOUNCE: Duration = Duration::from_millis(20);
const STATE_FILE: &str = "state.json";

struct PersistFlags {
    dirty: bool,
    stop: bool,
}

pub(super) struct Persister {
    pub(super) dir: PathBuf,
    flags: Mutex<PersistFlags>,
    cv: Condvar,
    write_lock: Mutex<()>,
    seq: AtomicU64,
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

    pub(super) fn mark_dirty(&self) {
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
        let inner = Arc::new(Inner { state: Mutex::new(state), _lock: lock, server_version: Mutex::new(None) });
        let weak = Arc::downgrade(&inner);
        std::thread::Builder::new().name("lab-store-persist".into()).spawn(move || persist.run(weak))?;
        let store = Store { inner };
        store.flush()?;
        Ok(store)
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

    /// The PEM certificate of the CA that signs the API server's TLS
    /// certificates, kept in the store's directory (`tls/`), created on
    /// first use. Put it in a kubeconfig to trust the server.
    pub fn ca_pem(&self) -> std::io::Result<String> {
        crate::apiserver::tls::load_or_create_ca(&self.dir()).map(|(cert, _)| cert)
    }
}

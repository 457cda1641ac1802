//! The one loop every lab controller runs on, after kube-runtime's
//! `Controller`: a controller supplies `reconcile` (bring one object's world
//! in line with it) and `error_policy` (how long to wait after a failure);
//! the runtime decides when each object is reconciled and logs every error.
//!
//! An object is reconciled when it changes, when an object related to it
//! changes (a Pod of its StatefulSet, any Node, ...), at every [`RESYNC`],
//! and, after a failure, once its backoff has passed. An object that keeps
//! failing is left out of the resync until then; a change to it (or to a
//! related object) is reconciled at once, backoff or not. A new error is
//! logged as a warning, a repeat of the same error only at debug level.

use std::collections::{BTreeMap, BTreeSet};
use std::future::Future;
use std::time::Duration;

use serde_json::Value;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use tokio::sync::watch;
use tokio::time::Instant;

use super::{name, namespace};
use crate::apiserver::{Store, StoreEvent};

/// How often every object is reconciled, changes or not.
pub const RESYNC: Duration = Duration::from_millis(500);
/// The longest wait before an object that keeps failing is tried again.
const MAX_BACKOFF: Duration = Duration::from_secs(8);

/// A kind, as an object's `apiVersion` and `kind` name it.
pub type Kind = (&'static str, &'static str);

/// Which of a controller's objects a change to a related object concerns.
#[derive(Clone, Copy, Debug)]
pub enum Related {
    /// The one its ownerReferences name (a StatefulSet's Pod).
    Owner,
    /// Every one in its namespace (the Services that may select a Pod).
    Namespace,
    /// Every one (the Pods a new Node may take).
    All,
}

/// A controller: what it reconciles, and how.
pub trait Reconciler: Send {
    /// The kind it reconciles, one object at a time.
    const KIND: Kind;
    /// Other kinds whose changes concern its objects, and which ones.
    const RELATED: &'static [(Kind, Related)] = &[];

    /// Its name in logs.
    fn name(&self) -> &'static str;

    /// Brings the world in line with `object`. An error is logged by the
    /// runtime and the object tried again after [`Reconciler::error_policy`].
    fn reconcile(&mut self, store: &Store, object: &Value) -> impl Future<Output = anyhow::Result<()>> + Send;

    /// How long to wait before trying an object again after its `failures`-th
    /// failure in a row: from one resync period, doubling, up to 8 s.
    fn error_policy(&self, failures: u32) -> Duration {
        RESYNC.saturating_mul(1 << failures.saturating_sub(1).min(8)).min(MAX_BACKOFF)
    }

    /// Lets go of what it keeps for an object that is gone (`namespace/name`).
    fn forget(&mut self, _key: &str) {}

    /// Runs once the lab stops, after the last reconcile.
    fn shutdown(self) -> impl Future<Output = ()> + Send
    where
        Self: Sized,
    {
        async {}
    }
}

/// `namespace/name`, the key of an object in the runtime and in controllers' own maps.
pub fn key(object: &Value) -> String {
    format!("{}/{}", namespace(object), name(object))
}

/// An object that keeps failing.
struct Failing {
    failures: u32,
    retry_at: Instant,
    error: String,
}

/// Which objects are due.
#[derive(Default)]
struct Queue {
    /// Changed (or related to a change) since the last pass.
    changed: BTreeSet<String>,
    failing: BTreeMap<String, Failing>,
    /// Every key of the last pass, to map related changes and notice removals.
    known: BTreeSet<String>,
    /// A change was missed (the broadcast lagged): reconcile everything.
    missed: bool,
}

impl Queue {
    fn due(&self, key: &str, changed: &BTreeSet<String>, now: Instant, resync: bool) -> bool {
        match self.failing.get(key) {
            Some(f) => changed.contains(key) || f.retry_at <= now,
            None => resync || changed.contains(key),
        }
    }

    /// The keys a change concerns.
    fn note<R: Reconciler>(&mut self, event: &StoreEvent) {
        let object = &event.object;
        let kind = (object["apiVersion"].as_str().unwrap_or_default(), object["kind"].as_str().unwrap_or_default());
        if kind == R::KIND {
            self.changed.insert(key(object));
        }
        for (_, related) in R::RELATED.iter().filter(|(k, _)| *k == kind) {
            match related {
                Related::Owner => {
                    let owners = object["metadata"]["ownerReferences"].as_array().into_iter().flatten();
                    for owner in owners.filter(|o| o["kind"] == R::KIND.1) {
                        self.changed.insert(format!("{}/{}", namespace(object), owner["name"].as_str().unwrap_or_default()));
                    }
                }
                Related::Namespace => {
                    let prefix = format!("{}/", namespace(object));
                    self.changed.extend(self.known.iter().filter(|k| k.starts_with(&prefix)).cloned());
                }
                Related::All => self.changed.extend(self.known.iter().cloned()),
            }
        }
    }

    /// When the earliest failing object may be tried again.
    fn next_retry(&self) -> Option<Instant> {
        self.failing.values().map(|f| f.retry_at).min()
    }
}

/// Runs `controller` over the objects of its kind until `stopped` turns
/// true, then shuts it down.
pub async fn run<R: Reconciler>(mut controller: R, store: Store, stopped: watch::Receiver<bool>) {
    let name = controller.name();
    let mut events = store.subscribe();
    let mut stopping = stopped.clone();
    let mut queue = Queue::default();
    let mut list_error = None;
    let mut next_resync = Instant::now();
    'passes: while !*stopped.borrow() {
        let now = Instant::now();
        let resync = std::mem::take(&mut queue.missed) || now >= next_resync;
        if resync {
            next_resync = now + RESYNC;
        }
        let changed = std::mem::take(&mut queue.changed);
        match store.list(R::KIND.0, R::KIND.1, None, None) {
            Err(e) => {
                let message = e.to_string();
                if list_error.as_ref() != Some(&message) {
                    tracing::warn!("{name}: listing {}: {message}", R::KIND.1);
                }
                list_error = Some(message);
            }
            Ok(objects) => {
                list_error = None;
                let objects: BTreeMap<String, Value> = objects.into_iter().map(|o| (key(&o), o)).collect();
                for gone in queue.known.iter().filter(|k| !objects.contains_key(*k)) {
                    controller.forget(gone);
                    queue.failing.remove(gone);
                }
                queue.known = objects.keys().cloned().collect();
                let due: Vec<(&String, &Value)> = objects.iter().filter(|(k, _)| queue.due(k, &changed, now, resync)).collect();
                for (key, object) in due {
                    // A reconcile may take seconds (forming a cluster): stopping must not wait for it.
                    let outcome = tokio::select! {
                        outcome = controller.reconcile(&store, object) => outcome,
                        _ = stopping.wait_for(|s| *s) => break 'passes,
                    };
                    match outcome {
                        Ok(()) => {
                            if queue.failing.remove(key).is_some() {
                                tracing::info!("{name} {key}: reconciled again");
                            }
                        }
                        Err(e) => {
                            let error = format!("{e:#}");
                            let failures = queue.failing.get(key).map_or(0, |f| f.failures) + 1;
                            if queue.failing.get(key).is_some_and(|f| f.error == error) {
                                tracing::debug!("{name} {key}: {error} (failure {failures})");
                            } else {
                                tracing::warn!("{name} {key}: {error}");
                            }
                            let retry_at = Instant::now() + controller.error_policy(failures);
                            queue.failing.insert(key.clone(), Failing { failures, retry_at, error });
                        }
                    }
                }
            }
        }
        let wake = queue.next_retry().map_or(next_resync, |retry| retry.min(next_resync));
        tokio::select! {
            event = events.recv() => match event {
                Ok(event) => queue.note::<R>(&event),
                Err(RecvError::Lagged(_)) => queue.missed = true,
                Err(RecvError::Closed) => break,
            },
            _ = stopping.wait_for(|s| *s) => break,
            _ = tokio::time::sleep_until(wake) => {}
        }
        // A burst of changes is one pass.
        loop {
            match events.try_recv() {
                Ok(event) => queue.note::<R>(&event),
                Err(TryRecvError::Lagged(_)) => queue.missed = true,
                Err(TryRecvError::Empty | TryRecvError::Closed) => break,
            }
        }
    }
    tracing::debug!("{name}: stopped");
    controller.shutdown().await;
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Pods;

    impl Reconciler for Pods {
        const KIND: Kind = ("v1", "Pod");
        const RELATED: &'static [(Kind, Related)] = &[(("apps/v1", "StatefulSet"), Related::Owner), (("v1", "Node"), Related::All)];

        fn name(&self) -> &'static str {
            "test"
        }

        async fn reconcile(&mut self, _store: &Store, _object: &Value) -> anyhow::Result<()> {
            Ok(())
        }
    }

    fn event(object: Value) -> StoreEvent {
        StoreEvent { event_type: crate::apiserver::EventType::Modified, object }
    }

    #[test]
    fn changes_reach_the_objects_they_concern() {
        let mut queue = Queue { known: ["db/a".to_string(), "db/b".to_string()].into(), ..Default::default() };
        queue.note::<Pods>(&event(serde_json::json!({"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "a", "namespace": "db"}})));
        assert_eq!(queue.changed, ["db/a".to_string()].into());
        queue.changed.clear();
        queue.note::<Pods>(&event(serde_json::json!({"apiVersion": "v1", "kind": "Node", "metadata": {"name": "n"}})));
        assert_eq!(queue.changed.len(), 2, "a Node concerns every Pod");
        queue.changed.clear();
        queue.note::<Pods>(&event(serde_json::json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "a", "namespace": "db"}})));
        assert!(queue.changed.is_empty(), "an unrelated kind concerns nothing");
    }

    #[test]
    fn backoff_doubles_up_to_a_limit() {
        assert_eq!(Pods.error_policy(1), RESYNC);
        assert_eq!(Pods.error_policy(2), RESYNC * 2);
        assert_eq!(Pods.error_policy(3), RESYNC * 4);
        assert_eq!(Pods.error_policy(40), MAX_BACKOFF);
    }

    #[test]
    fn a_failing_object_waits_for_its_retry_or_a_change() {
        let now = Instant::now();
        let mut queue = Queue::default();
        queue.failing.insert("db/a".into(), Failing { failures: 1, retry_at: now + RESYNC, error: "x".into() });
        let none = BTreeSet::new();
        assert!(!queue.due("db/a", &none, now, true), "left out of the resync while backing off");
        assert!(queue.due("db/a", &["db/a".to_string()].into(), now, false), "a change is reconciled at once");
        assert!(queue.due("db/a", &none, now + RESYNC, false), "due once the backoff has passed");
        assert!(queue.due("db/b", &none, now, true));
        assert!(!queue.due("db/b", &none, now, false));
    }
}

//! Events: the watch history (410 Expired once it no longer reaches back),
//! the broadcast of every change to in-process controllers, and the core v1
//! Events the store records (evictions, scaling), deduplicated and bounded.

use std::sync::Arc;

use serde_json::{Value, json};
use tokio::sync::{broadcast, watch};

use super::{State, Store, meta_str, name_of};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources;
use crate::apiserver::time;

/// How many changes the store keeps for watches that resume from an older
/// resourceVersion; older ones answer 410 Expired.
pub(super) const HISTORY_LIMIT: usize = 5_000;
/// The capacity of the [`Store::subscribe`] channel.
pub(super) const BROADCAST_CAPACITY: usize = 8_192;
/// At most this many Event objects are kept; the oldest go first.
const EVENTS_LIMIT: usize = 2_000;

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

impl Store {
    /// A receiver of every later change, in order. A receiver that falls
    /// more than 8192 changes behind gets `RecvError::Lagged` and should
    /// list again.
    pub fn subscribe(&self) -> broadcast::Receiver<StoreEvent> {
        self.lock().tx.subscribe()
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

impl State {
    pub(super) fn record_event(&mut self, involved: &Value, event_type: &str, reason: &str, message: &str, component: &str) {
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

    pub(super) fn trim_events(&mut self) {
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

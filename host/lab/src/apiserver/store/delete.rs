//! Deletion and garbage collection: graceful Pod deletion, finalizers,
//! namespaces emptied before they go, and the dependents of a removed owner
//! (by ownerReferences) deleted or orphaned.

use std::collections::HashSet;
use std::sync::Arc;

use serde_json::{Value, json};

use super::events::EventType;
use super::{SYSTEM_NAMESPACES, State, Store, is_terminating, meta_str, name_of, ns_of, unknown_kind};
use crate::apiserver::error::ApiError;
use crate::apiserver::resources::{self, RESOURCES, Resource};
use crate::apiserver::time;

/// Options of a delete call.
#[derive(Debug, Clone, Default)]
pub(crate) struct DeleteOpts {
    pub grace_period_seconds: Option<i64>,
    pub precondition_uid: Option<String>,
    pub precondition_rv: Option<String>,
    pub propagation: Option<String>,
    pub dry_run: bool,
}

impl Store {
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

    pub(crate) fn delete_res(&self, res: &'static Resource, ns: Option<&str>, name: &str, opts: &DeleteOpts) -> Result<(Arc<Value>, bool), ApiError> {
        self.lock().delete(res, ns, name, opts)
    }
}

impl State {
    pub(super) fn delete(&mut self, res: &'static Resource, ns: Option<&str>, name: &str, opts: &DeleteOpts) -> Result<(Arc<Value>, bool), ApiError> {
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
    pub(super) fn finalize_namespace(&mut self, ns: &str) {
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
    pub(super) fn collect_garbage(&mut self, uid: &str, orphan: bool) {
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
}

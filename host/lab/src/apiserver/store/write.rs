//! Writes: create, update (the main resource or only `.status`), every
//! patch type, and the scale subresource, with their preconditions and the
//! generation bump a spec change brings.

use std::sync::Arc;

use serde_json::{Value, json};

use super::events::EventType;
use super::{COMPONENT, State, Store, is_terminating, meta_str, name_of, ns_of, res_of, unknown_kind};
use crate::apiserver::error::ApiError;
use crate::apiserver::kinds;
use crate::apiserver::patch::{self, PatchType};
use crate::apiserver::resources::{self, Resource};
use crate::apiserver::selector::LabelSelector;
use crate::apiserver::time;

/// Which part of an object an update may change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Part {
    /// Everything but `.status` (for kinds with a status subresource).
    Main,
    /// Only `.status`.
    Status,
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

impl Store {
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
}

impl State {
    pub(super) fn create(&mut self, res: &'static Resource, url_ns: Option<&str>, mut obj: Value, dry_run: bool) -> Result<Arc<Value>, ApiError> {
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
            name = self.generate_name(res, &ns, &generate);
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
}

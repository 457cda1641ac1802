//! The Kubernetes side every bundled policy shares: a StatefulSet and its
//! members (Pods `<set>-<ordinal>`), the Service that selects one member,
//! which pool each Node is in, and the pin that keeps a StatefulSet's Pods
//! on one pool while a pattern moves them. A library, not a component: a
//! gate links only the reads it calls, so it never imports a mutating
//! interface.

mod pin;
mod pools;
mod set;
pub mod text;

pub use pin::PoolPin;
pub use pools::NodePools;
pub use set::{Pod, Set, StatefulSet, ordinal};

use runner_sdk::kube_write::{self, PatchType};
use runner_sdk::prelude::*;

/// The label every StatefulSet Pod carries with its own name; a Service
/// that must reach one member (the primary) selects it by this label.
pub const POD_NAME_LABEL: &str = "statefulset.kubernetes.io/pod-name";

/// `None` means the target's default namespace.
pub fn namespace(ns: &str) -> Option<String> {
    (!ns.is_empty()).then(|| ns.to_string())
}

fn object(api_version: &str, kind: &str, ns: &str, name: &str) -> ObjectRef {
    ObjectRef { api_version: api_version.into(), kind: kind.into(), namespace: namespace(ns), name: name.into() }
}

/// A Service in `ns` (empty: the default namespace).
pub fn service_ref(ns: &str, name: &str) -> ObjectRef {
    object("v1", "Service", ns, name)
}

/// A Job in `ns` (empty: the default namespace).
pub fn job_ref(ns: &str, name: &str) -> ObjectRef {
    object("batch/v1", "Job", ns, name)
}

/// The member a Service sends clients to, by its pod-name selector.
pub fn service_target(ns: &str, service: &str) -> Result<Option<String>, Error> {
    let svc = get_json(&service_ref(ns, service)).map_err(|e| Error::new(e.code, format!("Service {service}: {}", e.message)))?;
    Ok(svc["spec"]["selector"][POD_NAME_LABEL].as_str().map(str::to_string))
}

/// A merge patch; the host's answer (in a dry run, the patch itself). Errors
/// name the object.
pub fn merge_patch(object: &ObjectRef, body: &Value) -> Result<Value, Error> {
    let answer = kube_write::patch(object, PatchType::Merge, &body.to_string())
        .map_err(|e| Error::new(e.code, format!("patch {} {}: {}", object.kind, object.name, e.message)))?;
    Ok(serde_json::from_str(&answer).unwrap_or(Value::Null))
}

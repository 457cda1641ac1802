//! Controllers: what makes the lab's objects real.
//!
//! Each controller is a [`reconciler::Reconciler`] run by the one loop in
//! [`reconciler`], and writes back through the same Store the API server
//! serves, so `kubectl` sees exactly what the controllers did.

pub mod deployment;
pub mod kubelet;
pub mod mongo;
pub mod node_lifecycle;
pub mod reconciler;
pub mod redis;
pub mod replicaset;
pub mod scheduler;
pub mod services;
pub mod setup;
pub mod statefulset;
pub mod webapp;

use serde_json::Value;

use crate::apiserver::ApiError;

/// A delete of an object that is already gone has done its job.
pub fn ignore_not_found<T>(result: Result<T, ApiError>) -> Result<(), ApiError> {
    match result {
        Err(e) if e.code != 404 => Err(e),
        _ => Ok(()),
    }
}

/// `metadata.name`.
pub fn name(object: &Value) -> &str {
    object["metadata"]["name"].as_str().unwrap_or_default()
}

/// `metadata.namespace` (default `default`).
pub fn namespace(object: &Value) -> &str {
    object["metadata"]["namespace"].as_str().unwrap_or("default")
}

/// Whether the object is being deleted.
pub fn terminating(object: &Value) -> bool {
    !object["metadata"]["deletionTimestamp"].is_null()
}

/// Whether `owner` is the controller its ownerReferences name (by uid, so
/// an owner deleted and recreated under the same name owns nothing of the old one).
pub fn controlled_by(object: &Value, owner: &Value) -> bool {
    let uid = &owner["metadata"]["uid"];
    !uid.is_null() && object["metadata"]["ownerReferences"].as_array().is_some_and(|refs| refs.iter().any(|r| r["controller"] == true && r["uid"] == *uid))
}

/// Whether a Pod's Ready condition is True.
pub fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// Whether every `key: value` of a selector's matchLabels (or a plain
/// Service selector map) is among the object's labels.
pub fn selector_matches(selector: &Value, object: &Value) -> bool {
    let wanted = selector.get("matchLabels").unwrap_or(selector);
    let Some(wanted) = wanted.as_object() else { return false };
    !wanted.is_empty() && wanted.iter().all(|(k, v)| object["metadata"]["labels"][k] == *v)
}

/// The current time as Kubernetes writes it (`2026-11-21T20:00:00Z`).
pub fn now() -> String {
    let now = time::OffsetDateTime::now_utc().replace_nanosecond(0).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    now.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_time_like_kubernetes() {
        let now = now();
        assert_eq!(now.len(), "2026-11-21T20:00:00Z".len(), "{now}");
        assert!(now.ends_with('Z'));
    }

    #[test]
    fn selectors() {
        let pod = serde_json::json!({"metadata": {"labels": {"app": "postgres", "role": "primary"}}});
        assert!(selector_matches(&serde_json::json!({"app": "postgres"}), &pod));
        assert!(selector_matches(&serde_json::json!({"matchLabels": {"role": "primary"}}), &pod));
        assert!(!selector_matches(&serde_json::json!({"app": "redis"}), &pod));
        assert!(!selector_matches(&serde_json::json!({}), &pod), "an empty selector selects nothing here");
    }
}

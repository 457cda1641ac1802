//! The Kubernetes side every bundled policy shares: a StatefulSet and its
//! members (Pods `<set>-<ordinal>`), the Service that selects one member,
//! which pool each Node is in, and the pin that keeps a StatefulSet's Pods
//! on one pool while a pattern moves them. A library, not a component: a
//! gate links only the reads it calls, so it never imports a mutating
//! interface.

pub mod manifests;
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

/// When a Job completed (ms since the epoch: `status.completionTime`, else
/// its `Complete` condition's time), or why it has not, for people.
pub fn job_completed_at(job: &Value) -> Result<u64, String> {
    let complete = job["status"]["conditions"].as_array().and_then(|c| c.iter().find(|c| c["type"] == "Complete" && c["status"] == "True"));
    let stamp = job["status"]["completionTime"].as_str().or_else(|| complete.and_then(|c| c["lastTransitionTime"].as_str()));
    match stamp {
        Some(stamp) => text::parse_timestamp_ms(stamp).ok_or_else(|| format!("completion time `{stamp}` is not a timestamp")),
        None => {
            let failed = job["status"]["failed"].as_u64().unwrap_or(0);
            let active = job["status"]["active"].as_u64().unwrap_or(0);
            Err(format!("has not completed (active {active}, failed {failed})"))
        }
    }
}

/// Judge the backup Job a gate was told about: a failure when `job` (what
/// reading it answered) has not completed, or completed more than
/// `max_age_ms` before `now_ms`; a note with its age otherwise. Its age is
/// the evidence `backup_age_ms`.
pub fn judge_backup(check: &mut Check, name: &str, job: Result<Value, Error>, now_ms: u64, max_age_ms: u64) {
    match job.map_err(|e| e.message).and_then(|job| job_completed_at(&job)) {
        Ok(done) => {
            let age = now_ms.saturating_sub(done) as f64;
            check.evidence("backup_age_ms", age);
            if age > max_age_ms as f64 {
                check.fail(format!("backup Job {name}: completed {} ago > {}", text::millis(age), text::millis(max_age_ms as f64)));
            } else {
                check.note(format!("backup Job {name}: completed {} ago", text::millis(age)));
            }
        }
        Err(why) => {
            check.fail(format!("backup Job {name}: {why}"));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_job_completes_by_its_time_or_its_condition() {
        assert_eq!(job_completed_at(&json!({"status": {"completionTime": "1970-01-01T00:00:01Z"}})), Ok(1000));
        assert_eq!(
            job_completed_at(&json!({"status": {"conditions": [{"type": "Complete", "status": "True", "lastTransitionTime": "1970-01-01T00:00:02Z"}]}})),
            Ok(2000)
        );
        assert_eq!(job_completed_at(&json!({"status": {"active": 1}})), Err("has not completed (active 1, failed 0)".into()));
        assert!(job_completed_at(&json!({"status": {"completionTime": "soon"}})).unwrap_err().contains("not a timestamp"));
    }
}

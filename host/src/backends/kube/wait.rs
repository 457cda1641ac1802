//! Waiting on one object by watching it: the wait ends on the event that
//! makes the condition true, not at the next poll.

use std::time::Duration;

use futures_util::StreamExt;
use kube::api::{Api, DynamicObject};
use kube::runtime::watcher;
use serde_json::Value;
use tokio::time::Instant;

use super::errors;
use crate::backends::{BackendError, BackendResult, ErrorCode, WaitFor};

/// How a wait ended.
pub(super) enum Waited {
    /// The condition holds; the object as it was then (`None`: it does not exist).
    Done(Option<DynamicObject>),
    /// The deadline passed; the last state seen, if any event arrived.
    TimedOut(Option<Option<DynamicObject>>),
}

/// Watch `name` through `api` until `holds` accepts its state or `deadline` passes.
pub(super) async fn until(
    api: Api<DynamicObject>,
    name: &str,
    deadline: Instant,
    hint: Option<&str>,
    mut holds: impl FnMut(Option<&DynamicObject>) -> bool,
) -> BackendResult<Waited> {
    let mut stream = std::pin::pin!(watcher::watch_object(api, name));
    let mut last: Option<Option<DynamicObject>> = None;
    loop {
        let item = match tokio::time::timeout_at(deadline, stream.next()).await {
            Err(_) => return Ok(Waited::TimedOut(last)),
            Ok(None) => return Err(BackendError::new(ErrorCode::Internal, format!("the watch of `{name}` ended unexpectedly"))),
            Ok(Some(item)) => item,
        };
        match item {
            Ok(object) => {
                if holds(object.as_ref()) {
                    return Ok(Waited::Done(object));
                }
                last = Some(object);
            }
            Err(e) => {
                let error = watch_error(e, hint);
                // Before the first event the watch itself was refused (403, an
                // unknown kind, no server): waiting longer cannot help.
                if last.is_none() {
                    return Err(error);
                }
                // Later, a broken or expired watch is normal; the watcher lists again.
                tracing::debug!("the watch of `{name}` was interrupted ({error}); resuming");
                tokio::time::sleep_until(deadline.min(Instant::now() + Duration::from_millis(500))).await;
            }
        }
    }
}

fn watch_error(error: watcher::Error, hint: Option<&str>) -> BackendError {
    match error {
        watcher::Error::InitialListFailed(e) | watcher::Error::WatchStartFailed(e) | watcher::Error::WatchFailed(e) => errors::from_kube(e, hint),
        watcher::Error::WatchError(status) => BackendError::new(errors::code_for_status(status.code), errors::status_message(&status)),
        watcher::Error::NoResourceVersion => BackendError::new(ErrorCode::Internal, "the API server sent no resourceVersion: this kind cannot be watched"),
    }
}

/// Whether `object` (as JSON, `None` when absent) meets `until`.
pub(super) fn holds(until: &WaitFor, object: Option<&Value>) -> bool {
    match (until, object) {
        (WaitFor::Deleted, object) => object.is_none(),
        (_, None) => false,
        (WaitFor::Condition { condition_type, status }, Some(object)) => {
            condition_status(object, condition_type).is_some_and(|s| s.eq_ignore_ascii_case(status))
        }
        (WaitFor::Field { pointer, value }, Some(object)) => object.pointer(pointer).is_some_and(|found| *found == expected(value)),
    }
}

/// The `status.conditions` entry of `condition_type`, if present.
pub(super) fn condition_status<'a>(object: &'a Value, condition_type: &str) -> Option<&'a str> {
    object.pointer("/status/conditions")?.as_array()?.iter().find(|c| c["type"] == condition_type)?["status"].as_str()
}

/// The value a field must hold: JSON text, or, when it is not JSON, the
/// text itself (`Running` for `"Running"`), as a policy author would mean.
fn expected(value: &str) -> Value {
    serde_json::from_str(value).unwrap_or_else(|_| Value::String(value.to_string()))
}

/// What the last seen state was, for a timeout message.
pub(super) fn describe_last(until: &WaitFor, last: Option<Option<&Value>>) -> String {
    match last {
        None => "no event arrived".into(),
        Some(None) => "it does not exist".into(),
        Some(Some(object)) => match until {
            WaitFor::Deleted => "it still exists".into(),
            WaitFor::Condition { condition_type, .. } => match condition_status(object, condition_type) {
                Some(status) => format!("last {condition_type}={status}"),
                None => format!("it has no {condition_type} condition"),
            },
            WaitFor::Field { pointer, .. } => match object.pointer(pointer) {
                Some(found) => format!("last {pointer} = {found}"),
                None => format!("it has no {pointer}"),
            },
        },
    }
}

/// `until` in words.
pub(super) fn describe(until: &WaitFor) -> String {
    match until {
        WaitFor::Condition { condition_type, status } => format!("condition {condition_type}={status}"),
        WaitFor::Field { pointer, value } => format!("{pointer} = {value}"),
        WaitFor::Deleted => "deletion".into(),
    }
}

/// Reject a wait that can never be met as written.
pub(super) fn validate(until: &WaitFor) -> BackendResult<()> {
    match until {
        WaitFor::Field { pointer, .. } if !pointer.starts_with('/') => {
            Err(BackendError::new(ErrorCode::Invalid, format!("`{pointer}` is not a JSON pointer (it must start with `/`, as `/status/readyReplicas`)")))
        }
        WaitFor::Condition { condition_type, .. } if condition_type.is_empty() => Err(BackendError::new(ErrorCode::Invalid, "the condition type is empty")),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn conditions_fields_and_deletion() {
        let pod = json!({"status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "True"}]}, "spec": {"replicas": 3}});
        let ready = WaitFor::Condition { condition_type: "Ready".into(), status: "true".into() };
        assert!(holds(&ready, Some(&pod)));
        assert!(!holds(&ready, None));
        assert!(holds(&WaitFor::Field { pointer: "/status/phase".into(), value: "\"Running\"".into() }, Some(&pod)));
        assert!(holds(&WaitFor::Field { pointer: "/status/phase".into(), value: "Running".into() }, Some(&pod)));
        assert!(holds(&WaitFor::Field { pointer: "/spec/replicas".into(), value: "3".into() }, Some(&pod)));
        assert!(!holds(&WaitFor::Field { pointer: "/spec/replicas".into(), value: "4".into() }, Some(&pod)));
        assert!(holds(&WaitFor::Deleted, None));
        assert!(!holds(&WaitFor::Deleted, Some(&pod)));
        assert_eq!(describe_last(&ready, Some(Some(&json!({})))), "it has no Ready condition");
        assert!(validate(&WaitFor::Field { pointer: "status.phase".into(), value: "x".into() }).is_err());
    }
}

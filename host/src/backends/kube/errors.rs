//! Kubernetes failures in the WIT's terms, each carrying the API server's
//! own message.

use kube::core::Status;

use crate::backends::{BackendError, ErrorCode};
use crate::domain::error_chain;

/// The code for an HTTP status the API server answered with.
///
/// 429 outside eviction is API priority-and-fairness throttling: the server
/// is there but will not serve us now, which is what `unavailable` means.
/// Eviction maps its 429 (a PodDisruptionBudget) itself, to `conflict`.
pub(super) fn code_for_status(http: u16) -> ErrorCode {
    match http {
        400 | 422 => ErrorCode::Invalid,
        401 | 403 => ErrorCode::Denied,
        404 => ErrorCode::NotFound,
        // 410 Gone: a resourceVersion too old, as stale as a 409.
        409 | 410 => ErrorCode::Conflict,
        408 | 504 => ErrorCode::Timeout,
        429 | 502 | 503 => ErrorCode::Unavailable,
        _ => ErrorCode::Internal,
    }
}

/// The server's message, with the causes it gave when they add something
/// (a PodDisruptionBudget's name, the invalid field); a server-side apply
/// conflict names the field manager that owns each field.
pub(super) fn status_message(status: &Status) -> String {
    if let Some(conflicts) = apply_conflicts(status) {
        return conflicts;
    }
    let mut message = if status.message.is_empty() { format!("HTTP {} {}", status.code, status.reason) } else { status.message.clone() };
    let causes: Vec<&str> =
        status.details.iter().flat_map(|d| d.causes.iter()).map(|c| c.message.as_str()).filter(|m| !m.is_empty() && !message.contains(*m)).collect();
    if !causes.is_empty() {
        message = format!("{message} ({})", causes.join("; "));
    }
    message
}

/// A server-side apply the API server refused because other field managers
/// own fields it sets: a 409 whose causes have the reason
/// `FieldManagerConflict`, the field's path in `field` and `conflict with
/// "<manager>"` (and ` using <apiVersion>` for a manager that updated it) in
/// `message`. Said as which field which manager owns, and the way out.
fn apply_conflicts(status: &Status) -> Option<String> {
    let owned: Vec<String> = status
        .details
        .iter()
        .flat_map(|d| d.causes.iter())
        .filter(|cause| cause.reason == "FieldManagerConflict")
        .map(|cause| {
            let manager = cause.message.strip_prefix("conflict with ").unwrap_or(&cause.message);
            let field = if cause.field.is_empty() { "a field" } else { cause.field.as_str() };
            format!("{field} is owned by field manager {manager}")
        })
        .collect();
    if status.code != 409 || owned.is_empty() {
        return None;
    }
    Some(format!(
        "server-side apply conflict: {}; nothing was changed (apply with force to take the field{} over, or leave {} out of the body)",
        owned.join("; "),
        if owned.len() == 1 { "" } else { "s" },
        if owned.len() == 1 { "it" } else { "them" },
    ))
}

/// A failed API call, as the backend reports it. `hint` is added to
/// connection failures (for the lab: how to start it).
pub(super) fn from_kube(error: kube::Error, hint: Option<&str>) -> BackendError {
    match error {
        kube::Error::Api(status) => BackendError::new(code_for_status(status.code), status_message(&status)),
        kube::Error::Auth(e) => BackendError::new(ErrorCode::Denied, format!("cannot authenticate to the API server: {}", error_chain(&e))),
        kube::Error::SerdeError(e) => BackendError::new(ErrorCode::Internal, format!("the API server's answer is not what Kubernetes sends: {e}")),
        kube::Error::BuildRequest(e) => BackendError::new(ErrorCode::Invalid, format!("cannot build the request: {e}")),
        kube::Error::Discovery(e) => BackendError::new(ErrorCode::NotFound, e.to_string()),
        other => {
            let text = error_chain(&other);
            let code = if looks_like_timeout(&text) { ErrorCode::Timeout } else { ErrorCode::Unavailable };
            let mut message = format!("cannot reach the API server: {text}");
            if let Some(hint) = hint {
                message.push_str("; ");
                message.push_str(hint);
            }
            BackendError::new(code, message)
        }
    }
}

fn looks_like_timeout(text: &str) -> bool {
    let text = text.to_ascii_lowercase();
    text.contains("timed out") || text.contains("deadline has elapsed") || text.contains("timeout")
}

#[cfg(test)]
mod tests {
    use super::*;
    use kube::core::response::{StatusCause, StatusDetails};

    fn status(code: u16, message: &str, cause: Option<&str>) -> Status {
        let mut status = Status::failure(message, "Reason").with_code(code);
        if let Some(cause) = cause {
            let causes = vec![StatusCause { reason: "DisruptionBudget".into(), message: cause.into(), field: String::new() }];
            status.details =
                Some(StatusDetails { name: String::new(), group: String::new(), kind: String::new(), uid: String::new(), causes, retry_after_seconds: 0 });
        }
        status
    }

    #[test]
    fn statuses_map_to_wit_codes_with_the_servers_message() {
        let cases = [
            (403, ErrorCode::Denied),
            (404, ErrorCode::NotFound),
            (409, ErrorCode::Conflict),
            (422, ErrorCode::Invalid),
            (400, ErrorCode::Invalid),
            (504, ErrorCode::Timeout),
            (503, ErrorCode::Unavailable),
            (500, ErrorCode::Internal),
        ];
        for (http, code) in cases {
            let e = from_kube(kube::Error::Api(status(http, "pods \"x\" is forbidden", None).boxed()), None);
            assert_eq!(e.code, code, "HTTP {http}");
            assert_eq!(e.message, "pods \"x\" is forbidden");
        }
    }

    /// A Status as the API server sends it for a refused server-side apply
    /// (apimachinery's `NewApplyConflict`: 409, reason `Conflict`, one cause
    /// per field).
    fn apply_conflict(causes: &[(&str, &str)]) -> Status {
        let message = format!(
            "Apply failed with {} conflict{}: {}",
            causes.len(),
            if causes.len() == 1 { "" } else { "s" },
            causes.iter().map(|(manager, field)| format!("{manager}: {field}")).collect::<Vec<_>>().join("\n")
        );
        serde_json::from_value(serde_json::json!({
            "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Conflict", "code": 409,
            "details": {"causes": causes.iter().map(|(manager, field)| serde_json::json!({"reason": "FieldManagerConflict", "message": manager, "field": field})).collect::<Vec<_>>()},
        }))
        .unwrap()
    }

    #[test]
    fn an_apply_conflict_names_the_manager_that_owns_each_field() {
        let e = from_kube(kube::Error::Api(apply_conflict(&[("conflict with \"kubectl-create\" using apps/v1", ".spec.replicas")]).boxed()), None);
        assert_eq!(e.code, ErrorCode::Conflict);
        assert_eq!(
            e.message,
            "server-side apply conflict: .spec.replicas is owned by field manager \"kubectl-create\" using apps/v1; nothing was changed (apply with force to take the field over, or leave it out of the body)"
        );
        let two = status_message(&apply_conflict(&[
            ("conflict with \"kubectl-client-side-apply\" using v1", ".spec.selector.role"),
            ("conflict with \"helm\"", ".metadata.labels.app"),
        ]));
        assert!(
            two.contains(
                ".spec.selector.role is owned by field manager \"kubectl-client-side-apply\" using v1; .metadata.labels.app is owned by field manager \"helm\""
            ),
            "{two}"
        );
        assert!(two.contains("take the fields over"), "{two}");
        // Any other 409 keeps the server's words.
        assert_eq!(
            status_message(&status(409, "Operation cannot be fulfilled on pods \"x\": the object has been modified", None)),
            "Operation cannot be fulfilled on pods \"x\": the object has been modified"
        );
    }

    #[test]
    fn causes_are_kept() {
        let s = status(
            429,
            "Cannot evict pod as it would violate the pod's disruption budget.",
            Some("The disruption budget pg-pdb needs 2 healthy pods and has 2 currently"),
        );
        assert_eq!(
            status_message(&s),
            "Cannot evict pod as it would violate the pod's disruption budget. (The disruption budget pg-pdb needs 2 healthy pods and has 2 currently)"
        );
    }
}

//! Kubernetes API errors: every failure the API server answers is a
//! `meta/v1 Status` built from an [`ApiError`].

use serde_json::{Value, json};

/// A failed API call, answered over HTTP as a `Status` object with the same
/// code, reason and message a real API server would use.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{message} ({code} {reason})")]
pub struct ApiError {
    /// HTTP status code (404, 409, 422, ...).
    pub code: u16,
    /// The machine-readable `Status.reason` (`NotFound`, `Conflict`, ...).
    pub reason: String,
    /// The human-readable `Status.message`.
    pub message: String,
    /// The `Status.details` object (`name`, `group`, `kind`, `causes`), if any.
    pub details: Option<Value>,
}

impl ApiError {
    /// An error with no details.
    pub fn new(code: u16, reason: &str, message: impl Into<String>) -> ApiError {
        ApiError { code, reason: reason.to_string(), message: message.into(), details: None }
    }

    /// Attaches `Status.details`.
    pub(crate) fn with_details(mut self, details: Value) -> ApiError {
        self.details = Some(details);
        self
    }

    /// 404 NotFound: `pods "x" not found`.
    pub(crate) fn not_found(group: &str, plural: &str, name: &str) -> ApiError {
        let what = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
        ApiError::new(404, "NotFound", format!("{what} \"{name}\" not found")).with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 409 AlreadyExists.
    pub(crate) fn already_exists(group: &str, plural: &str, name: &str) -> ApiError {
        let what = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
        ApiError::new(409, "AlreadyExists", format!("{what} \"{name}\" already exists")).with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 409 Conflict for a stale resourceVersion or a failed precondition.
    pub(crate) fn conflict(group: &str, plural: &str, name: &str, why: &str) -> ApiError {
        let what = if group.is_empty() { plural.to_string() } else { format!("{plural}.{group}") };
        ApiError::new(409, "Conflict", format!("Operation cannot be fulfilled on {what} \"{name}\": {why}"))
            .with_details(json!({"name": name, "group": group, "kind": plural}))
    }

    /// 409 Conflict for a stale resourceVersion.
    pub(crate) fn stale(group: &str, plural: &str, name: &str) -> ApiError {
        ApiError::conflict(group, plural, name, "the object has been modified; please apply your changes to the latest version and try again")
    }

    /// 422 Invalid with one cause per field error: `(field, message)`.
    pub(crate) fn invalid(group: &str, kind: &str, name: &str, errors: &[(String, String)]) -> ApiError {
        let what = if group.is_empty() { kind.to_string() } else { format!("{kind}.{group}") };
        let list: Vec<String> = errors.iter().map(|(f, m)| format!("{f}: {m}")).collect();
        let message =
            if list.len() == 1 { format!("{what} \"{name}\" is invalid: {}", list[0]) } else { format!("{what} \"{name}\" is invalid: [{}]", list.join(", ")) };
        let causes: Vec<Value> = errors.iter().map(|(f, m)| json!({"reason": cause_reason(m), "message": m, "field": f})).collect();
        ApiError::new(422, "Invalid", message).with_details(json!({"name": name, "group": group, "kind": kind, "causes": causes}))
    }

    /// 400 BadRequest.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(400, "BadRequest", message)
    }

    /// 405 MethodNotAllowed.
    pub(crate) fn method_not_allowed(message: impl Into<String>) -> ApiError {
        ApiError::new(405, "MethodNotAllowed", message)
    }

    /// 410 Expired (a watch or continue token older than the kept history).
    pub(crate) fn expired(message: impl Into<String>) -> ApiError {
        ApiError::new(410, "Expired", message)
    }

    /// 401 Unauthorized.
    pub(crate) fn unauthorized() -> ApiError {
        ApiError::new(401, "Unauthorized", "Unauthorized")
    }

    /// 403 Forbidden.
    pub(crate) fn forbidden(message: impl Into<String>) -> ApiError {
        ApiError::new(403, "Forbidden", message)
    }

    /// 500 InternalError.
    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(500, "InternalError", message)
    }

    /// 415 UnsupportedMediaType.
    pub(crate) fn unsupported_media_type(content_type: &str) -> ApiError {
        ApiError::new(
            415,
            "UnsupportedMediaType",
            format!(
                "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json (got {content_type:?})"
            ),
        )
    }

    /// The `meta/v1 Status` object for this error.
    pub fn to_status(&self) -> Value {
        let mut status = json!({
            "kind": "Status",
            "apiVersion": "v1",
            "metadata": {},
            "status": "Failure",
            "message": self.message,
            "reason": self.reason,
            "code": self.code,
        });
        if let Some(details) = &self.details {
            status["details"] = details.clone();
        }
        status
    }
}

fn cause_reason(message: &str) -> &'static str {
    if message.starts_with("Required value") {
        "FieldValueRequired"
    } else if message.starts_with("Unsupported value") {
        "FieldValueNotSupported"
    } else if message.starts_with("Forbidden") {
        "FieldValueForbidden"
    } else if message.starts_with("Duplicate value") {
        "FieldValueDuplicate"
    } else {
        "FieldValueInvalid"
    }
}

//! Kubernetes failures in the WIT's terms, each carrying the API server's
//! own message.

use kube::core::Status;

use crate::backends::{BackendError, ErrorCode};

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
/// (a PodDisruptionBudget's name, the invalid field).
pub(super) fn status_message(status: &Status) -> String {
    let mut message = if status.message.is_empty() { format!("HTTP {} {}", status.code, status.reason) } else { status.message.clone() };
    let causes: Vec<&str> =
        status.details.iter().flat_map(|d| d.causes.iter()).map(|c| c.message.as_str()).filter(|m| !m.is_empty() && !message.contains(*m)).collect();
    if !causes.is_empty() {
        message = format!("{message} ({})", causes.join("; "));
    }
    message
}

/// A failed API call, as the backend reports it. `hint` is added to
/// connection failures (for the lab: how to start it).
pub(super) fn from_kube(error: kube::Error, hint: Option<&str>) -> BackendError {
    match error {
        kube::Error::Api(status) => BackendError::new(code_for_status(status.code), status_message(&status)),
        kube::Error::Auth(e) => BackendError::new(ErrorCode::Denied, format!("cannot authenticate to the API server: {}", chain(&e))),
        kube::Error::SerdeError(e) => BackendError::new(ErrorCode::Internal, format!("the API server's answer is not what Kubernetes sends: {e}")),
        kube::Error::BuildRequest(e) => BackendError::new(ErrorCode::Invalid, format!("cannot build the request: {e}")),
        kube::Error::Discovery(e) => BackendError::new(ErrorCode::NotFound, e.to_string()),
        other => {
            let text = chain(&other);
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

/// An error and its sources on one line, without repeating a source that
/// its parent already quoted.
pub(super) fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(e) = source {
        let part = e.to_string();
        if !text.contains(&part) {
            text.push_str(": ");
            text.push_str(&part);
        }
        source = e.source();
    }
    text
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

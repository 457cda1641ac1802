//! What several layers share and no layer owns: plain values and rules with
//! no dependency on the rest of the crate.

pub mod cluster;
pub mod kube;
pub mod names;
pub mod readonly;
pub mod traffic;

/// An error and its sources on one line, without repeating a source that
/// its parent already quoted (kube's, reqwest's and hyper's errors often do).
pub fn error_chain(error: &dyn std::error::Error) -> String {
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

/// Why a host call failed, in the terms of the WIT `error-code`: backends
/// answer with it, sessions record it, the import layer hands it on.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    /// Refused: a capability not granted, or the cluster's RBAC (401/403).
    Denied,
    /// The object, member or kind does not exist (404).
    NotFound,
    /// The call conflicts with the current state: a stale resourceVersion
    /// (409), an eviction a PodDisruptionBudget forbids (429).
    Conflict,
    /// The call did not finish within its time limit.
    Timeout,
    /// The server could not be reached, or the backend is not built yet.
    Unavailable,
    /// The arguments were rejected (400, 422, a malformed patch).
    Invalid,
    /// Anything else; the message says what.
    Internal,
}

impl ErrorCode {
    /// Every code, in the WIT's order.
    pub const ALL: [ErrorCode; 7] =
        [ErrorCode::Denied, ErrorCode::NotFound, ErrorCode::Conflict, ErrorCode::Timeout, ErrorCode::Unavailable, ErrorCode::Invalid, ErrorCode::Internal];

    /// The code spelled `name` (`not-found`), as journals and sessions write it.
    pub fn from_name(name: &str) -> Option<ErrorCode> {
        ErrorCode::ALL.into_iter().find(|code| code.as_str() == name)
    }

    /// The WIT spelling (`not-found`), also used in journals.
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::Denied => "denied",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Internal => "internal",
        }
    }
}

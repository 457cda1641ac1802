//! Rust bindings for the WIT contract in `wit/policy.wit`.
//!
//! The `pattern` world imports everything a gate imports and more, so its
//! bindings own every interface; the `gate` world reuses them.

/// The version of the `runner:policy` package this host speaks; a
/// component built for another is refused when it is loaded.
pub const CONTRACT_VERSION: &str = "0.2.0";

/// Bindings for the `pattern` world and every `runner:policy` interface.
pub mod pattern {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "pattern",
        imports: {
            "runner:policy/clock.now": trappable,
            "runner:policy/run-info": trappable,
            "runner:policy/report": trappable,
            default: async | trappable,
        },
        exports: { default: async },
    });
}

/// Bindings for the `gate` world.
pub mod gate {
    wasmtime::component::bindgen!({
        path: "../wit",
        world: "gate",
        with: { "runner:policy": super::pattern::runner::policy },
        exports: { default: async },
    });
}

pub use pattern::runner::policy::gates::GateResult;
pub use pattern::runner::policy::types::{Error, ErrorCode, Outcome, Verdict};

/// The one place the WIT's error codes meet the host's own
/// ([`crate::domain::ErrorCode`]); both matches are exhaustive, so a code
/// added on one side does not compile until it is mapped.
impl From<crate::domain::ErrorCode> for ErrorCode {
    fn from(code: crate::domain::ErrorCode) -> Self {
        use crate::domain::ErrorCode as Host;
        match code {
            Host::Denied => ErrorCode::Denied,
            Host::NotFound => ErrorCode::NotFound,
            Host::Conflict => ErrorCode::Conflict,
            Host::Timeout => ErrorCode::Timeout,
            Host::Unavailable => ErrorCode::Unavailable,
            Host::Invalid => ErrorCode::Invalid,
            Host::Internal => ErrorCode::Internal,
        }
    }
}

impl From<ErrorCode> for crate::domain::ErrorCode {
    fn from(code: ErrorCode) -> Self {
        use crate::domain::ErrorCode as Host;
        match code {
            ErrorCode::Denied => Host::Denied,
            ErrorCode::NotFound => Host::NotFound,
            ErrorCode::Conflict => Host::Conflict,
            ErrorCode::Timeout => Host::Timeout,
            ErrorCode::Unavailable => Host::Unavailable,
            ErrorCode::Invalid => Host::Invalid,
            ErrorCode::Internal => Host::Internal,
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_contract_version_is_the_wits() {
        let wit = include_str!("../../wit/policy.wit");
        assert!(wit.lines().any(|line| line == format!("package runner:policy@{};", super::CONTRACT_VERSION)), "wit/policy.wit declares another version");
    }
}

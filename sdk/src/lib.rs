//! Write runner gates and patterns in Rust.
//!
//! A gate in full:
//!
//! ```no_run
//! use runner_sdk::prelude::*;
//!
//! runner_sdk::manifest!(r#"
//! name = "replicas-at-least"
//! version = "0.1.0"
//! world = "gate"
//! capabilities = ["kube:get:apps/v1/StatefulSet"]
//! [config.statefulset]
//! type = "string"
//! required = true
//! "#);
//!
//! struct Gate;
//!
//! impl runner_sdk::gate::Guest for Gate {
//!     fn evaluate(config: String) -> Result<Verdict, Error> {
//!         let config: serde_json::Value = parse_config(&config)?;
//!         let sts = get_json(&ObjectRef::named("apps/v1", "StatefulSet", config["statefulset"].as_str().unwrap_or_default()))?;
//!         let mut check = Check::new();
//!         if sts["status"]["readyReplicas"].as_u64().unwrap_or(0) < 3 {
//!             check.fail("fewer than 3 ready replicas");
//!         }
//!         Ok(check.verdict())
//!     }
//! }
//!
//! runner_sdk::export_gate!(Gate);
//! ```
//!
//! Build with `cargo build --release --target wasm32-wasip2`; the `.wasm` in
//! `target/wasm32-wasip2/release/` is the component.
//!
//! A pattern adds steps ([`step`]), gates run as steps ([`gate_step`],
//! [`preflight_gate`], [`GateCall`]), waits that ride out a member's
//! restart ([`wait_for`], [`Poll`]) and what it is told about its run
//! ([`run_info`], [`DryRun`]), and the operator's yes before the first step
//! that cannot be undone ([`Approval`]). A pattern that upgrades the cluster
//! reads and changes its control plane and node pools ([`cluster`]), runs
//! the database patterns bound to its slots ([`PatternCall`]) and hands the
//! operator documents ([`cluster::attach`]). A pattern that moves clients
//! between two sides reads and sets a switch's weights and sends requests
//! through it ([`traffic`]).
//!
//! The bindings are generated from contract `runner:policy@0.2.0`
//! (`wit/policy.wit`); a runner that speaks another version refuses the
//! component, naming both.

#![warn(missing_docs)]

mod ask;
pub mod bindings;
mod check;
pub mod cluster;
mod compose;
mod helpers;
mod steps;
pub mod traffic;
mod wait;

pub use ask::Approval;
pub use bindings::gate::export_gate;
pub use bindings::pattern::export_pattern;
pub use check::Check;
pub use compose::PatternCall;
pub use helpers::{get_json, list_json, parse_config, pod_is_ready};
/// The JSON crate the payloads are parsed with, so policies need not depend on it.
pub use serde_json;
pub use steps::{DryRun, GateCall, gate_input, gate_step, preflight_gate, step};
pub use wait::{Poll, wait_for, wait_until};

/// The shared types: [`Error`], [`ErrorCode`], [`Verdict`], [`Outcome`].
pub use bindings::imports::runner::policy::types::{Error, ErrorCode, Outcome, Verdict};

/// Interfaces, by the names policies use.
pub use bindings::imports::runner::policy::{
    approval, clock, cluster_read, cluster_write, fleet, gates, kube_read as kube, kube_write, mongo_read, mongo_write, patterns, postgres_read,
    postgres_write, redis_read, redis_write, report, run_info, traffic_read, traffic_write,
};

/// The gate world: implement [`gate::Guest`].
pub mod gate {
    pub use crate::bindings::gate::Guest;
}

/// The pattern world: implement [`pattern::Guest`].
pub mod pattern {
    pub use crate::bindings::pattern::{Guest, PatternResult, PatternStatus};
}

/// Everything a policy usually needs.
pub mod prelude {
    pub use crate::kube::{ListOptions, ObjectRef};
    pub use crate::{Check, Error, ErrorCode, Outcome, Verdict, clock, kube, report};
    pub use crate::{Poll, get_json, list_json, parse_config, pod_is_ready, step, wait_for, wait_until};
    pub use serde_json::{Value, json};
}

#[doc(hidden)]
pub mod __private {
    pub use serde_json;

    /// Copy a string into a fixed-size array at compile time.
    pub const fn to_array<const N: usize>(text: &str) -> [u8; N] {
        let bytes = text.as_bytes();
        let mut out = [0u8; N];
        let mut i = 0;
        while i < N {
            out[i] = bytes[i];
            i += 1;
        }
        out
    }
}

/// Declare the component's manifest (TOML: a string literal, or
/// `include_str!("../manifest.toml")` as the bundled policies do) in the
/// `runner-manifest` custom section, where `runner review` and `runner exec`
/// read it without running the component. Fields: `name`, `version`, `description`, `world`
/// (`gate` or `pattern`), `capabilities`, `[config.KEY]` (`type`,
/// `description`, `default`, `required`), `[gates.SLOT]` (`default`,
/// `description`), `[patterns.SLOT]` (`default`, `description`), `steps`, `rollback`.
#[macro_export]
macro_rules! manifest {
    ($toml:expr) => {
        const _: () = {
            const TEXT: &str = $toml;
            #[used]
            #[unsafe(link_section = "runner-manifest")]
            static MANIFEST: [u8; TEXT.len()] = $crate::__private::to_array::<{ TEXT.len() }>(TEXT);
        };
    };
}

impl Error {
    /// An error with `code` and `message`.
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Error { code, message: message.into() }
    }

    /// Bad configuration or arguments.
    pub fn invalid(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Invalid, message)
    }

    /// Anything else.
    pub fn internal(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Internal, message)
    }

    /// A wait that ran out of time.
    pub fn timeout(message: impl Into<String>) -> Self {
        Error::new(ErrorCode::Timeout, message)
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            ErrorCode::Denied => "denied",
            ErrorCode::NotFound => "not-found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unavailable => "unavailable",
            ErrorCode::Invalid => "invalid",
            ErrorCode::Internal => "internal",
        })
    }
}

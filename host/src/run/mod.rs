//! The run library: everything between the command line and the engine.
//!
//! A command describes a run to a [`RunBuilder`] (policy, config, grants, gate
//! slots, target or session, journal, limits, write probe) and gets back a
//! [`RunReport`] whose [`Exit`] is the documented exit code; `exec`, `demo`,
//! `test` and `bench` all assemble their runs here, so they run a policy the
//! same way. The other things commands compute and print live beside it:
//! [`inspect`] (what a target has), [`review`] (what a policy can touch), [`rbac`] (the RBAC it needs),
//! [`survey`] (a database cluster after a run), [`cases`] (declarative test
//! cases) and [`lab`] (starting and stopping the local lab a run targets).

pub mod build;
mod builder;
pub mod cases;
mod compose;
mod exit;
mod fleet;
pub mod inspect;
pub mod lab;
pub mod rbac;
mod report;
pub mod review;
mod session;
pub mod survey;

pub use builder::{DEFAULT_PROBE_TABLE, Run, RunBuilder};
pub use exit::{Exit, Failure};
pub use report::{Ending, RunFacts, RunReport, short_digest};

use crate::policy::{Policy, default_search_path};

/// A single-threaded tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::PolicyFailed, format!("cannot start the async runtime: {e}")))
}

/// Load a policy by bundled name or path; not finding it is bad input.
pub fn load_policy(name_or_path: &str) -> Result<Policy, Failure> {
    Policy::find(name_or_path, &default_search_path()).map_err(|e| Failure::bad_input(e.to_string()))
}

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

use std::path::Path;
use std::sync::OnceLock;

use crate::distribution;
use crate::policy::{Origin, Policy, default_search_path};

/// A single-threaded tokio runtime for one command.
pub fn runtime() -> Result<tokio::runtime::Runtime, Failure> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| Failure::new(Exit::PolicyFailed, format!("cannot start the async runtime: {e}")))
}

/// How references are fetched in this process, set once from the global
/// command-line flags (`--insecure-registry`, `--offline`, `--trust`,
/// `--locked`). Process-wide because every verb loads its policies through
/// [`load_policy`] (exec, `--gate`, `--pattern`, test cases' `component:`,
/// review, bench), and threading the flags through compose, the builder and
/// rbac would touch every call site for settings that never change during
/// a process.
static DISTRIBUTION: OnceLock<distribution::Settings> = OnceLock::new();

/// Set the distribution settings for this process; the first call wins.
pub fn set_distribution_settings(settings: distribution::Settings) {
    let _ = DISTRIBUTION.set(settings);
}

/// This process's distribution settings (the defaults when none were set).
pub fn distribution_settings() -> &'static distribution::Settings {
    DISTRIBUTION.get_or_init(|| distribution::Settings::new(distribution::Settings::cache_beside(crate::engine::default_cache_dir().as_deref())))
}

/// The exit a distribution error earns.
pub fn distribution_failure(error: &distribution::DistributionError) -> Failure {
    let exit = if error.exit_code() == Exit::Unavailable as u8 { Exit::Unavailable } else { Exit::BadInput };
    Failure::new(exit, error.to_string())
}

/// Load a policy by bundled name, path or reference (`oci://...`,
/// `oci-layout:...`); not finding it is bad input, an unreachable registry exit 4.
pub fn load_policy(name_or_path: &str) -> Result<Policy, Failure> {
    if distribution::is_reference(name_or_path) {
        let reference = distribution::Reference::parse(name_or_path).map_err(|e| distribution_failure(&e))?;
        let fetched = distribution::fetch(&reference, distribution_settings()).map_err(|e| distribution_failure(&e))?;
        let mut policy = Policy::from_bytes(Path::new(&fetched.reference), fetched.bytes).map_err(|e| Failure::bad_input(e.to_string()))?;
        policy.origin = Some(Origin { reference: fetched.reference, manifest_digest: fetched.manifest_digest, signer: fetched.signer });
        return Ok(policy);
    }
    Policy::find(name_or_path, &default_search_path()).map_err(|e| Failure::bad_input(e.to_string()))
}

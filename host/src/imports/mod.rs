//! The host side of every `runner:policy` import.
//!
//! Each interface lives in its own file and follows the same path for every
//! call: check the capability, journal the call, then either answer from the
//! dry-run plan or hand plain values to a backend. Nothing here knows how a
//! backend reaches its server.

mod approval;
mod clock;
mod databases;
mod gates;
mod kube;
mod report;
mod run_info;

pub(crate) use report::truncate;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::backends::{BackendError, BackendResult, Backends, ErrorCode as BackendCode};
use crate::caps::{Decision, Grants};
use crate::domain::names::InvalidName;
use crate::journal::{new_run_id, redact, Entry, Journal};
use crate::session::{Answer, Session, Step};
use crate::wit::pattern::runner::policy::types;
use crate::wit::{Error, ErrorCode};

pub use approval::Approval;
pub use gates::GateRunner;

/// What every component of one run shares: the journal, the backends, the
/// operator's choices, and the record that becomes the run report.
pub struct RunContext {
    pub journal: Journal,
    pub backends: Backends,
    /// Answer mutations from the plan instead of the backends.
    pub dry_run: bool,
    pub approval: Approval,
    /// Runs the gates bound to a pattern's slots.
    pub gates: Option<Arc<dyn GateRunner>>,
    pub record: Mutex<RunRecord>,
    /// Record the run's calls, or answer them from a recorded session.
    pub session: Session,
    /// The run's id, as `run-info.id` answers it: the journal's, or a new one
    /// when the journal is disabled.
    pub run_id: String,
    /// Whether this run resumes an earlier one (`run-info.resumed`).
    pub resumed: bool,
}

impl RunContext {
    /// A context for one run.
    pub fn new(journal: Journal, backends: Backends, dry_run: bool, approval: Approval) -> Self {
        // One id for the journal's lines and for what components are told.
        let run_id = if journal.run_id().is_empty() { new_run_id("run") } else { journal.run_id().to_string() };
        RunContext { journal, backends, dry_run, approval, gates: None, record: Mutex::default(), session: Session::off(), run_id, resumed: false }
    }

    /// Make this the continuation of the earlier run `run_id` (or a fresh
    /// run with that id, `resumed` false). Open the journal with the same id:
    /// it keeps the one it was opened with.
    pub fn set_run(&mut self, run_id: String, resumed: bool) {
        self.run_id = run_id;
        self.resumed = resumed;
    }

    fn record(&self) -> std::sync::MutexGuard<'_, RunRecord> {
        self.record.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

/// What happened during a run, for the report.
#[derive(Debug, Default, Clone, Serialize)]
pub struct RunRecord {
    pub steps: Vec<StepRecord>,
    pub metrics: Vec<Metric>,
    /// Mutations answered from the plan under `--dry-run`, in order.
    pub plan: Vec<PlannedCall>,
    /// Calls refused for want of a capability (the first few).
    pub denied: Vec<String>,
    pub denied_count: usize,
    /// Calls whose backend could not be reached (the first few).
    pub unavailable: Vec<String>,
    pub unavailable_count: usize,
    /// Gates run through `gates.run`, in order.
    pub gates: Vec<GateRecord>,
}

/// One gate run on behalf of a pattern.
#[derive(Debug, Clone, Serialize)]
pub struct GateRecord {
    pub slot: String,
    pub gate: String,
    /// `pass`, `warn`, `fail`, or `error` when the gate did not answer.
    pub outcome: String,
    pub reasons: Vec<String>,
}

/// Refusals and unreachable backends kept for the report; the journal has them all.
const KEPT_PROBLEMS: usize = 20;

impl RunRecord {
    fn note_denied(&mut self, line: impl FnOnce() -> String) {
        self.denied_count += 1;
        if self.denied.len() < KEPT_PROBLEMS {
            self.denied.push(line());
        }
    }

    fn note_unavailable(&mut self, line: impl FnOnce() -> String) {
        self.unavailable_count += 1;
        if self.unavailable.len() < KEPT_PROBLEMS {
            self.unavailable.push(line());
        }
    }
}

/// One step of a pattern.
#[derive(Debug, Clone, Serialize)]
pub struct StepRecord {
    pub component: String,
    pub name: String,
    pub description: String,
    /// `succeeded`, `failed`, `skipped`, `rolled-back`, or `running` if the
    /// component never ended it.
    pub outcome: String,
    pub detail: String,
    pub ms: f64,
    #[serde(skip)]
    started: Option<Instant>,
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    pub component: String,
    pub name: String,
    pub value: f64,
    pub unit: String,
}

/// One mutation a dry run would have made.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedCall {
    pub component: String,
    pub call: String,
    pub args: Value,
    /// The `--allow` a real run of this call would need, if not yet given.
    pub needs_allow: Option<String>,
}

/// The host state of one component instance: who it is, what it was
/// granted, when it must stop, and the run it belongs to.
pub struct HostState {
    pub component: Arc<str>,
    pub grants: Grants,
    /// When the component started.
    pub started: Instant,
    /// When the sandbox stops it.
    pub deadline: Instant,
    pub run: Arc<RunContext>,
}

impl HostState {
    /// The state for `component`, starting now and allowed to run for `budget`
    /// but never past `not_after`.
    pub fn new(component: Arc<str>, grants: Grants, budget: Duration, not_after: Option<Instant>, run: Arc<RunContext>) -> Self {
        let started = Instant::now();
        let deadline = not_after.map_or(started + budget, |limit| limit.min(started + budget));
        HostState { component, grants, started, deadline, run }
    }
}

/// The capability one call needs.
pub(crate) struct Need<'a> {
    interface: &'static str,
    verb: &'static str,
    scope: &'a str,
}

/// The capability a call needs, once the names it carries passed
/// Kubernetes' grammar (`Err`: the call is refused as `invalid` before the
/// capability check, since its scope would not say what it touches).
pub(crate) type Checked<'a> = Result<Need<'a>, InvalidName>;

pub(crate) fn need<'a>(interface: &'static str, verb: &'static str, scope: &'a str) -> Checked<'a> {
    Ok(Need { interface, verb, scope })
}

/// Whether a call reads or changes something; a change carries the answer
/// a dry run gives in its place.
pub(crate) enum Effect<T> {
    Read,
    Mutate { dry_run_answer: T },
}

impl HostState {
    /// Check, journal and perform one call.
    pub(crate) async fn guarded<T: Send + Answer>(
        &self,
        call: &'static str,
        need: Checked<'_>,
        args: impl FnOnce() -> Value,
        effect: Effect<T>,
        backend: impl Future<Output = BackendResult<T>> + Send,
    ) -> wasmtime::Result<Result<T, Error>> {
        let started = Instant::now();
        let mutating = matches!(effect, Effect::Mutate { .. });
        // Arguments are only built when something will record them.
        let session = &self.run.session;
        let args = if self.run.journal.is_enabled() || session.is_active() || (self.run.dry_run && mutating) {
            let mut args = args();
            redact(&mut args);
            args
        } else {
            Value::Null
        };
        let need = match need {
            Ok(need) => need,
            Err(invalid) => return Ok(Err(self.refuse_invalid(call, args, invalid.to_string(), started)?)),
        };
        let decision = self.grants.decide(need.interface, need.verb, need.scope);
        let capability = || format!("{}:{}:{}", need.interface, need.verb, need.scope);
        // Under --dry-run a mutation the operator has not allowed yet still
        // goes into the plan, marked, so one dry run shows every --allow needed.
        let needs_allow = decision == Decision::NotAllowed && self.run.dry_run && mutating;
        if decision != Decision::Granted && !needs_allow {
            let message = match decision {
                Decision::NotRequested => format!("`{}` did not request `{}` in its manifest", self.component, capability()),
                _ => format!("`{0}` is a mutating capability the operator did not allow (pass --allow {0})", capability()),
            };
            return Ok(Err(self.deny(call, args, message, started)?));
        }
        if let (true, Effect::Mutate { dry_run_answer }) = (self.run.dry_run, effect) {
            let needs_allow = needs_allow.then(capability);
            let outcome = if needs_allow.is_some() { "planned, needs --allow" } else { "planned" };
            self.journal(call, args.clone(), outcome, None, started.elapsed(), true)?;
            self.run.record().plan.push(PlannedCall { component: self.component.to_string(), call: call.to_string(), args, needs_allow });
            return Ok(Ok(dry_run_answer));
        }
        // Past the capability check and the plan: this call reaches a backend,
        // so the session records it, or answers it instead.
        let result = match session.begin(&self.component, call, &args, mutating)? {
            Step::Live(slot) => {
                let result = backend.await;
                if let Some(slot) = slot {
                    session.finish(slot, result.as_ref().map(Answer::to_json));
                }
                result
            }
            Step::Answer(Ok(value)) => Ok(T::from_json(&value).map_err(|why| session.bad_answer(call, why))?),
            Step::Answer(Err(error)) => Err(error),
            Step::Stopped => return Err(crate::engine::Stop::Deadline.into()),
        };
        match &result {
            Ok(_) => self.journal(call, args, "ok", None, started.elapsed(), mutating)?,
            Err(e) => {
                self.journal(call, args, e.code.as_str(), Some(&e.message), started.elapsed(), mutating)?;
                if e.code == BackendCode::Unavailable {
                    self.run.record().note_unavailable(|| format!("{}: {call}: {}", self.component, e.message));
                }
            }
        }
        Ok(result.map_err(to_wit_error))
    }

    /// Refuse a call: journal it as denied and remember it for the report.
    pub(crate) fn deny(&self, call: &'static str, args: Value, message: String, started: Instant) -> wasmtime::Result<Error> {
        self.journal(call, args, "denied", Some(&message), started.elapsed(), true)?;
        self.run.record().note_denied(|| format!("{}: {call}: {message}", self.component));
        Ok(Error { code: ErrorCode::Denied, message })
    }

    /// Refuse a call whose arguments break Kubernetes' naming rules.
    fn refuse_invalid(&self, call: &'static str, args: Value, message: String, started: Instant) -> wasmtime::Result<Error> {
        self.journal(call, args, "invalid", Some(&message), started.elapsed(), true)?;
        Ok(Error { code: ErrorCode::Invalid, message })
    }

    /// Journal a call that needs no capability (report, clock).
    pub(crate) fn note(&self, call: &'static str, args: Value, started: Instant) -> wasmtime::Result<()> {
        self.journal(call, args, "ok", None, started.elapsed(), false)
    }

    fn journal(&self, call: &str, args: Value, outcome: &str, error: Option<&str>, duration: Duration, flush: bool) -> wasmtime::Result<()> {
        let entry = Entry { component: &self.component, call, args, outcome, error, duration };
        self.run.journal.record(&entry, flush).map_err(|e| wasmtime::format_err!("cannot write the journal, stopping before anything goes unrecorded: {e}"))
    }
}

/// Backend error codes and their WIT counterparts, one to one.
const CODES: [(BackendCode, ErrorCode); 7] = [
    (BackendCode::Denied, ErrorCode::Denied),
    (BackendCode::NotFound, ErrorCode::NotFound),
    (BackendCode::Conflict, ErrorCode::Conflict),
    (BackendCode::Timeout, ErrorCode::Timeout),
    (BackendCode::Unavailable, ErrorCode::Unavailable),
    (BackendCode::Invalid, ErrorCode::Invalid),
    (BackendCode::Internal, ErrorCode::Internal),
];

/// A backend error in WIT terms.
pub(crate) fn to_wit_error(error: BackendError) -> Error {
    let code = CODES.iter().find(|(backend, _)| *backend == error.code).map_or(ErrorCode::Internal, |(_, wit)| *wit);
    Error { code, message: error.message }
}

/// The WIT spelling of an error code (`not-found`).
pub fn code_name(code: ErrorCode) -> &'static str {
    CODES.iter().find(|(_, wit)| *wit == code).map_or("internal", |(backend, _)| backend.as_str())
}

impl types::Host for HostState {}

/// Register every `runner:policy` import for a store whose data gives access
/// to a [`HostState`].
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    host: fn(&mut T) -> &mut HostState,
) -> wasmtime::Result<()> {
    crate::wit::pattern::Pattern::add_to_linker::<T, wasmtime::component::HasSelf<HostState>>(linker, host)
}

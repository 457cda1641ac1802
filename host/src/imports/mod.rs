//! The host side of every `runner:policy` import.
//!
//! Each interface lives in its own file and follows the same path for every
//! call: check the capability, journal the call, then either answer from the
//! dry-run plan or hand plain values to a backend. Nothing here knows how a
//! backend reaches its server.

mod approval;
mod clock;
mod cluster;
mod databases;
mod fleet;
mod gates;
mod kube;
mod patterns;
mod report;
mod run_info;
mod traffic;

pub(crate) use report::truncate;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use serde_json::Value;

use crate::backends::{BackendError, BackendResult, Backends, ErrorCode as BackendCode};
use crate::caps::{Decision, Grants, calls};
use crate::domain::names::InvalidName;
use crate::journal::{Entry, Journal, new_run_id, redact};
use crate::session::{Answer, Diverged, Logging, Session, Step};
use crate::wit::pattern::runner::policy::types;
use crate::wit::{Error, ErrorCode};

pub use approval::Approval;
pub use fleet::{FleetMember, FleetReach, MemberScope};
use gates::fail_on_warn_applied;
pub use gates::{GateRunner, warn_as_fail};
pub use patterns::{MAX_DEPTH, PatternCall, PatternRunner};
pub use report::{Attachments, MAX_ATTACHMENT_BYTES, MAX_ATTACHMENTS};

/// What every component of one run shares: the journal, the backends, the
/// operator's choices, and the record that becomes the run report.
pub struct RunContext {
    /// Where every call is recorded.
    pub journal: Journal,
    /// What the calls reach.
    pub backends: Backends,
    /// Answer mutations from the plan instead of the backends.
    pub dry_run: bool,
    /// How `approval.request` is answered.
    pub approval: Approval,
    /// Runs the gates bound to a pattern's slots.
    pub gates: Option<Arc<dyn GateRunner>>,
    /// Runs the patterns bound to the top-level pattern's slots (a pattern
    /// run through a slot brings its own, [`HostState::in_slot`]).
    pub patterns: Option<Arc<dyn PatternRunner>>,
    /// Where `report.attach` writes the run's documents.
    pub attachments: Attachments,
    /// The report being built.
    pub record: Mutex<RunRecord>,
    /// Record the run's calls, or answer them from a recorded session.
    pub session: Session,
    /// The run's id, as `run-info.id` answers it: the journal's, or a new one
    /// when the journal is disabled.
    pub run_id: String,
    /// Whether this run resumes an earlier one (`run-info.resumed`).
    pub resumed: bool,
    /// A gate's `warn` counts as `fail` (`--fail-on-warn`), for the gates a pattern runs too.
    pub fail_on_warn: bool,
    /// When the run began: steps are placed on a timeline from here ([`StepRecord::at_ms`]).
    pub started: Instant,
    /// The live line of the wait a component is in (`report.progress`).
    pub progress: crate::progress::WaitLine,
    /// The target's database clusters (`run-info.databases`), in the target's order.
    pub databases: Vec<crate::target::Database>,
    /// The fleet's members (`fleet.*`), when the run has a fleet.
    pub fleet: Option<Arc<dyn FleetReach>>,
    /// What other processes see of the run and say to it (`runner approve`,
    /// `runner stop`); `None` for a run without a journal (`runner test`).
    pub run_dir: Option<crate::runs::RunDir>,
    /// How long an approval waits for an answer from another process when
    /// nobody is at the terminal (zero: it does not wait).
    pub approval_timeout: Duration,
    /// What the run's own component is answered, kept so that a killed run
    /// can be resumed; on a resumed run, the earlier attempts' answers too.
    pub run_log: Option<crate::session::RunLog>,
}

impl RunContext {
    /// A context for one run.
    pub fn new(journal: Journal, backends: Backends, dry_run: bool, approval: Approval) -> Self {
        // One id for the journal's lines and for what components are told.
        let run_id = if journal.run_id().is_empty() { new_run_id("run") } else { journal.run_id().to_string() };
        RunContext {
            journal,
            backends,
            dry_run,
            approval,
            gates: None,
            patterns: None,
            attachments: Attachments::none(),
            record: Mutex::default(),
            session: Session::off(),
            run_id,
            resumed: false,
            fail_on_warn: false,
            started: Instant::now(),
            progress: crate::progress::WaitLine::on_terminal(),
            databases: Vec::new(),
            fleet: None,
            run_dir: None,
            approval_timeout: Duration::ZERO,
            run_log: None,
        }
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
    /// Pattern steps, in the order they began.
    pub steps: Vec<StepRecord>,
    /// Bytes of step descriptions and details kept in `steps` so far.
    pub step_text: usize,
    /// Measurements the components reported.
    pub metrics: Vec<Metric>,
    /// Mutations answered from the plan under `--dry-run`, in order.
    pub plan: Vec<PlannedCall>,
    /// Calls refused for want of a capability (the first few).
    pub denied: Vec<String>,
    /// How many calls were refused in all.
    pub denied_count: usize,
    /// Calls whose backend could not be reached (the first few).
    pub unavailable: Vec<String>,
    /// How many calls found their backend unreachable in all.
    pub unavailable_count: usize,
    /// Gates run through `gates.run`, in order.
    pub gates: Vec<GateRecord>,
    /// Patterns run through `patterns.run`, in the order they ended.
    pub patterns: Vec<PatternRecord>,
    /// Documents written through `report.attach`, in the order first written.
    pub attachments: Vec<AttachmentRecord>,
}

/// One pattern run on behalf of another through a slot.
#[derive(Debug, Clone, Serialize)]
pub struct PatternRecord {
    /// Where it ran: the slot path (`postgres`, or `pools/postgres` when a
    /// sub-pattern ran it); its steps, gates and journal lines carry it too.
    pub slot_path: String,
    /// The pattern bound to the slot.
    pub pattern: String,
    /// The caller's step that was running when it started, if one was.
    pub parent_step: Option<String>,
    /// `succeeded`, `rolled-back`, `error` (its own error) or `stopped` (by the sandbox).
    pub outcome: String,
    /// Its summary, its error or what stopped it.
    pub detail: String,
    /// How long it ran.
    pub ms: f64,
    /// The fleet member it ran on, if it ran on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
}

/// One document a component handed the operator (`report.attach`).
#[derive(Debug, Clone, Serialize)]
pub struct AttachmentRecord {
    /// Its name, as the component gave it.
    pub name: String,
    /// Where the host wrote it.
    pub path: std::path::PathBuf,
    /// Its size.
    pub bytes: u64,
}

/// One gate run on behalf of a pattern.
#[derive(Debug, Clone, Serialize)]
pub struct GateRecord {
    /// The pattern's slot.
    pub slot: String,
    /// The gate bound to it.
    pub gate: String,
    /// `pass`, `warn`, `fail`, or `error` when the gate did not answer.
    pub outcome: String,
    /// The gate's reasons.
    pub reasons: Vec<String>,
    /// The pattern slot path of the pattern that ran the gate, when a
    /// pattern run through a slot ran it (`postgres`, `pools/postgres`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot_path: Option<String>,
    /// The fleet member the gate ran on, if it ran on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
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
    /// The component that ran the step.
    pub component: String,
    /// The step's name.
    pub name: String,
    /// What the step does.
    pub description: String,
    /// `succeeded`, `failed`, `skipped`, `rolled-back`, or `running` if the
    /// component never ended it.
    pub outcome: String,
    /// What the component said when it ended the step.
    pub detail: String,
    /// How long it took.
    pub ms: f64,
    /// When it began, in ms from the start of the run ([`RunContext::started`]);
    /// for a step that was ended without being begun, when it ended.
    pub at_ms: f64,
    /// The pattern slot path of the component that ran the step, when a
    /// pattern ran it through a slot (`postgres`, `pools/postgres`); the
    /// step then belongs under the caller's step running at the time.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub slot_path: Option<String>,
    /// The fleet member the component ran on, if a pattern ran it on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    #[serde(skip)]
    started: Option<Instant>,
}

/// One measurement.
#[derive(Debug, Clone, Serialize)]
pub struct Metric {
    /// The component that reported it.
    pub component: String,
    /// What was measured (`replay-lag`).
    pub name: String,
    /// The figure.
    pub value: f64,
    /// Its unit (`s`).
    pub unit: String,
}

/// One mutation a dry run would have made.
#[derive(Debug, Clone, Serialize)]
pub struct PlannedCall {
    /// The component that made the call.
    pub component: String,
    /// The fleet member it would have reached, when it ran on one.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub member: Option<String>,
    /// The call's WIT name.
    pub call: String,
    /// Its arguments, redacted.
    pub args: Value,
    /// The `--allow` a real run of this call would need, if not yet given.
    pub needs_allow: Option<String>,
}

/// The host state of one component instance: who it is, what it was
/// granted, when it must stop, and the run it belongs to.
pub struct HostState {
    /// The component's name.
    pub component: Arc<str>,
    /// What it may do.
    pub grants: Grants,
    /// When the component started.
    pub started: Instant,
    /// When the sandbox stops it.
    pub deadline: Instant,
    /// The run it belongs to.
    pub run: Arc<RunContext>,
    /// Bytes it has logged through `report.log`, against a bound.
    logged: usize,
    /// Where it runs when a pattern ran it through a slot: the slot path
    /// and the runners of its own slots. `None` for the run's own component
    /// (and the gates it runs), whose slots are the run's.
    slot: Option<SlotScope>,
    /// The fleet member its calls reach, when a pattern ran it on one
    /// (`fleet.*`); `None`: the run's own target.
    member: Option<MemberScope>,
    /// It is the run's own component (not a gate or pattern it runs): its
    /// answers go into the run log ([`RunContext::run_log`]).
    root: bool,
}

/// A component run through a pattern slot: where, and what runs its own slots.
#[derive(Clone)]
pub struct SlotScope {
    /// The slot path (`postgres`, `pools/postgres`): journal lines and report records carry it.
    pub path: Arc<str>,
    /// Runs the gates bound to its own gate slots (its manifest's defaults).
    pub gates: Option<Arc<dyn GateRunner>>,
    /// Runs the patterns bound to its own pattern slots.
    pub patterns: Option<Arc<dyn PatternRunner>>,
}

impl HostState {
    /// The state for `component`, starting now and allowed to run for `budget`
    /// but never past `not_after`.
    pub fn new(component: Arc<str>, grants: Grants, budget: Duration, not_after: Option<Instant>, run: Arc<RunContext>) -> Self {
        let started = Instant::now();
        let deadline = not_after.map_or(started + budget, |limit| limit.min(started + budget));
        HostState { component, grants, started, deadline, run, logged: 0, slot: None, member: None, root: false }
    }

    /// The same state for a component running on fleet member `member`:
    /// its calls reach the member's backends and are journaled and
    /// reported under the member's name. `None` keeps the run's target.
    pub fn on_member(mut self, member: Option<MemberScope>) -> Self {
        self.member = member;
        self
    }

    /// The same state for the run's own component: what it is answered is
    /// kept in the run's log, and a resumed run answers it from there first.
    pub fn at_root(mut self) -> Self {
        self.root = true;
        self
    }

    /// The run log, for the run's own component.
    fn run_log(&self) -> Option<&crate::session::RunLog> {
        self.run.run_log.as_ref().filter(|_| self.root)
    }

    fn member_name(&self) -> Option<&str> {
        self.member.as_ref().map(|m| &*m.name)
    }

    /// What this component's calls reach: its member's backends, or the run's.
    fn backends(&self) -> &Backends {
        self.member.as_ref().map_or(&self.run.backends, |m| &m.backends)
    }

    /// The database clusters of what this component reaches (`run-info.databases`).
    fn target_databases(&self) -> &[crate::target::Database] {
        self.member.as_ref().map_or(&self.run.databases, |m| &m.databases)
    }

    /// The same state for a component running at a pattern slot: its
    /// calls are journaled and reported under `scope.path`, and its own
    /// slots are run by `scope`'s runners instead of the run's.
    pub fn in_slot(mut self, scope: SlotScope) -> Self {
        self.slot = Some(scope);
        self
    }

    /// The slot path this component runs at, if a pattern ran it through a slot.
    pub fn slot_path(&self) -> Option<&str> {
        self.slot.as_ref().map(|s| &*s.path)
    }

    /// What runs this component's gate slots.
    fn gate_runner(&self) -> Option<Arc<dyn GateRunner>> {
        match &self.slot {
            Some(scope) => scope.gates.clone(),
            None => self.run.gates.clone(),
        }
    }

    /// What runs this component's pattern slots.
    fn pattern_runner(&self) -> Option<Arc<dyn PatternRunner>> {
        match &self.slot {
            Some(scope) => scope.patterns.clone(),
            None => self.run.patterns.clone(),
        }
    }
}

/// Why the sandbox stopped a component: raised as a trap from host code
/// (a host call that finds the deadline passed) and by the engine.
#[derive(Debug, thiserror::Error)]
pub enum Stop {
    /// The run's or the component's deadline passed.
    #[error("deadline exceeded")]
    Deadline,
    /// The component's memory limit was reached.
    #[error("memory limit exceeded")]
    Memory,
    /// The journal could not be written: the run stops before anything goes
    /// unrecorded; the reason names the call and whether it reached the cluster.
    #[error("{0}")]
    Journal(String),
    /// A bound on what a component can make the host hold or print.
    #[error("{0}")]
    Limit(String),
    /// Someone asked the run to stop (`runner stop`): raised at the next step boundary, or during a sleep.
    #[error("{0}")]
    Requested(String),
    /// The component wrote more than the output limit to a stream.
    #[error("output limit exceeded: the component wrote more than {limit} bytes to {stream}")]
    Output {
        /// `stdout` or `stderr`.
        stream: &'static str,
        /// The limit in bytes.
        limit: usize,
    },
}

/// The scope of the capability a call needs (`v1/Pod`, a member, a slot),
/// once the names the call carries passed Kubernetes' grammar (`Err`: the
/// call is refused as `invalid` before the capability check, since its
/// scope would not say what it touches). The interface and verb come from
/// the call table (`caps::calls`), by the call's WIT name.
pub(crate) type Checked<'a> = Result<&'a str, InvalidName>;

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
        scope: Checked<'_>,
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
        let scope = match scope {
            Ok(scope) => scope,
            Err(invalid) => return Ok(Err(self.refuse_invalid(call, args, invalid.to_string(), started)?)),
        };
        let need = calls::verb_of_call(call).ok_or_else(|| wasmtime::format_err!("host call `{call}` has no row in the call table (caps/calls.rs)"))?;
        let decision = self.grants.decide(need.interface, need.verb, scope);
        let capability = || format!("{}:{}:{scope}", need.interface, need.verb);
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
            let member = self.member_name().map(str::to_string);
            self.run.record().plan.push(PlannedCall { component: self.component.to_string(), member, call: call.to_string(), args, needs_allow });
            return Ok(Ok(dry_run_answer));
        }
        // A resumed run's component is answered from the run log while it lasts.
        let logging = match self.run_log() {
            Some(log) => Some(log.begin(call, &args, wall_ms())?),
            None => None,
        };
        if let Some(Logging::Replayed(answer)) = logging {
            let result = match answer {
                Ok(value) => Ok(T::from_json(&value).map_err(|why| Diverged(format!("cannot resume: the run log's answer to {call} is unusable: {why}")))?),
                Err(error) => Err(error),
            };
            let error = result.as_ref().err().map(|e| e.message.clone());
            self.journal(call, args, "replayed", error.as_deref(), started.elapsed(), false)?;
            return Ok(result.map_err(to_wit_error));
        }
        // Past the capability check and the plan: this call reaches a backend,
        // so the session records it, or answers it instead.
        let result = match session.begin(&self.component, self.member_name(), call, &args, mutating)? {
            Step::Live(slot) => {
                if mutating {
                    self.journal_intent(call, &args, started)?;
                }
                let result = backend.await;
                if let Some(slot) = slot {
                    session.finish(slot, result.as_ref().map(Answer::to_json));
                }
                result
            }
            Step::Answer(Ok(value)) => Ok(T::from_json(&value).map_err(|why| session.bad_answer(call, why))?),
            Step::Answer(Err(error)) => Err(error),
            Step::Stopped => return Err(Stop::Deadline.into()),
        };
        // What ran under a stop (a deadline, `runner stop`) may have been cut short: a resumed run makes the call again.
        let interrupted = || Instant::now() >= self.deadline || self.run.run_dir.as_ref().is_some_and(|dir| dir.stop_requested().is_some());
        if let (Some(log), Some(Logging::Live(index))) = (self.run_log(), logging)
            && !interrupted()
        {
            log.finish(index, call, &args, result.as_ref().map(Answer::to_json));
        }
        match &result {
            Ok(answer) => {
                // What undoing the change needs goes on the line itself, as the arguments do.
                let answer = answer.journaled().map(|mut value| {
                    redact(&mut value);
                    value
                });
                self.journal_answer(call, args, "ok", None, answer, started.elapsed(), mutating)?
            }
            Err(e) => {
                self.journal(call, args, e.code.as_str(), Some(&e.message), started.elapsed(), mutating)?;
                match e.code {
                    BackendCode::Unavailable => self.run.record().note_unavailable(|| format!("{}: {call}: {}", self.component, e.message)),
                    // The cluster's own RBAC refused (401/403): a denial like the
                    // sandbox's (exit 3), in the server's words. A database's
                    // refusal (a write in a read-only transaction) is the policy's to judge.
                    BackendCode::Denied if call.starts_with("kube-") || call.starts_with("cluster-") || call.starts_with("traffic-") => {
                        self.run.record().note_denied(|| format!("{}: {call}: the cluster refused: {}", self.component, e.message))
                    }
                    _ => {}
                }
            }
        }
        // A sub-run stopped by the deadline it shares with its caller must not let the caller
        // go on: the epoch would stop it within a tick anyway, but which of the two stops
        // first (and so the run's outcome) would then depend on the ticker.
        let runs_a_component = call.starts_with("patterns.") || call.starts_with("gates.") || call.starts_with("fleet.");
        if runs_a_component && Instant::now() >= self.deadline {
            return Err(Stop::Deadline.into());
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

    /// Journal a call the sandbox cut short at the deadline.
    pub(crate) fn journal_stopped(&self, call: &'static str, args: Value, started: Instant) -> wasmtime::Result<()> {
        self.journal(call, args, "stopped", Some("deadline exceeded"), started.elapsed(), true)
    }

    /// Journal a call that needs no capability (report, clock).
    pub(crate) fn note(&self, call: &'static str, args: Value, started: Instant) -> wasmtime::Result<()> {
        self.journal(call, args, "ok", None, started.elapsed(), false)
    }

    /// The `started` line of a mutation, on disk before the mutation reaches its backend.
    fn journal_intent(&self, call: &str, args: &Value, started: Instant) -> wasmtime::Result<()> {
        let entry = Entry {
            component: &self.component,
            slot: self.slot_path(),
            member: self.member_name(),
            call,
            args: args.clone(),
            outcome: "started",
            error: None,
            answer: None,
            duration: started.elapsed(),
        };
        self.run
            .journal
            .record(&entry, true)
            .map_err(|e| self.journal_lost(e, format!("stopped before `{call}` was carried out; nothing of it reached a backend")))
    }

    fn journal(&self, call: &str, args: Value, outcome: &str, error: Option<&str>, duration: Duration, sync: bool) -> wasmtime::Result<()> {
        self.journal_answer(call, args, outcome, error, None, duration, sync)
    }

    /// [`HostState::journal`] with what the call answered (see [`Answer::journaled`]).
    #[allow(clippy::too_many_arguments)]
    fn journal_answer(
        &self,
        call: &str,
        args: Value,
        outcome: &str,
        error: Option<&str>,
        answer: Option<Value>,
        duration: Duration,
        sync: bool,
    ) -> wasmtime::Result<()> {
        let entry = Entry { component: &self.component, slot: self.slot_path(), member: self.member_name(), call, args, outcome, error, answer, duration };
        self.run.journal.record(&entry, sync).map_err(|e| {
            let state = if outcome == "planned" || outcome == "denied" || outcome == "invalid" || !sync {
                "nothing more was sent to the cluster".to_string()
            } else {
                format!("`{call}` had already been sent (outcome {outcome}); nothing after it was")
            };
            self.journal_lost(e, format!("stopped; {state}"))
        })
    }

    /// The stop for a journal line that could not be written, with the state the run is left in.
    pub(crate) fn journal_lost(&self, error: std::io::Error, state: String) -> wasmtime::Error {
        Stop::Journal(format!("cannot write the journal {} ({error}): {state}", self.run.journal.shown_path())).into()
    }
}

/// Now, in milliseconds since the epoch.
pub(crate) fn wall_ms() -> u64 {
    std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map(|d| d.as_millis() as u64).unwrap_or_default()
}

/// A backend error in WIT terms.
pub(crate) fn to_wit_error(error: BackendError) -> Error {
    Error { code: error.code.into(), message: error.message }
}

/// The WIT spelling of an error code (`not-found`).
pub fn code_name(code: ErrorCode) -> &'static str {
    crate::domain::ErrorCode::from(code).as_str()
}

impl types::Host for HostState {}

/// Register every `runner:policy` import for a store whose data gives access
/// to a [`HostState`].
pub fn add_to_linker<T: Send + 'static>(linker: &mut wasmtime::component::Linker<T>, host: fn(&mut T) -> &mut HostState) -> wasmtime::Result<()> {
    crate::wit::pattern::Pattern::add_to_linker::<T, wasmtime::component::HasSelf<HostState>>(linker, host)
}

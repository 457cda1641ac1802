//! [`RunBuilder`]: everything one run needs (policy, config, grants, gate
//! slots, target or session, journal, limits, probe) assembled in one order,
//! so `exec`, `demo`, `test` and `bench` run a policy the same way.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use serde_json::{Value, json};

use super::report::{Ending, RunFacts, RunReport, short_digest};
use super::{Exit, Failure, load_policy, runtime, session};
use crate::backends::aks::AksBackend;
use crate::backends::traffic::{HttpRouteSwitch, ProfileSwitch, Switch, Switches};
use crate::backends::{Backends, Cluster, Kube, Traffic, Unavailable};
use crate::caps::{Capability, Grants};
use crate::engine::{BoundPattern, Engine, EngineError, Limits, PatternSlots, Prepared, SlotRunner};
use crate::imports::{Approval, Attachments, HostState, RunContext, warn_as_fail};
use crate::journal::{Journal, Limit as JournalLimit, new_run_id};
use crate::policy::{Policy, World, config};
use crate::probe::http::{HttpProbe, HttpTarget};
use crate::probe::{ProbeError, WriteProbe};
use crate::session::Session;
use crate::target::{Fleet, SwitchConfig, SwitchVia, Target, TargetError};

/// The table (PostgreSQL) or collection (MongoDB) a write probe writes unless told otherwise.
pub const DEFAULT_PROBE_TABLE: &str = "runner_probe";

/// The policy's configuration, as the operator gave it.
enum ConfigSource {
    /// `--config KEY=VALUE` texts.
    Pairs(Vec<String>),
    /// A JSON object (a test case's `config:`), defaults filled in.
    Object(serde_json::Map<String, Value>),
}

/// Which mutations the operator allows, as given.
enum Allowances {
    /// `--allow CAP` texts and a `--grants FILE` adding more.
    Flags { allow: Vec<String>, file: Option<PathBuf> },
    /// A test case's `allow:` list.
    Listed(Vec<String>),
    /// Every capability the manifest requests.
    Requested,
}

/// What the backends reach.
enum Reach {
    /// A cluster and its databases.
    Target(Target),
    /// Nothing: every call answers `unavailable`, naming this.
    Nothing(String),
}

/// Where the session comes from.
enum SessionSource {
    Off,
    Record(PathBuf),
    Replay(PathBuf),
    Given(Box<Session>),
}

/// Where the journal goes.
enum JournalPlace {
    /// A new file under the state directory, named by the run id.
    Default,
    At(PathBuf),
    Nowhere,
}

/// Where `report.attach` writes.
enum AttachmentPlace {
    /// A folder named after the run id beside the journal (none without a journal).
    BesideJournal,
    At(PathBuf),
    Temporary,
}

/// The engine a run compiles and runs in.
enum EngineSource {
    New { limits: Limits, cache_dir: Option<PathBuf> },
    Shared(Arc<Engine>),
}

/// What a write probe writes to and how fast.
struct ProbeSpec {
    database: String,
    table: String,
    rate: u32,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct GrantsFile {
    allow: Vec<String>,
}

/// Assembles one run of a policy. Every input is checked in [`RunBuilder::build`],
/// in one fixed order, so the same mistake gets the same message from every command.
pub struct RunBuilder {
    policy: String,
    config: ConfigSource,
    allowances: Allowances,
    gates: Vec<String>,
    patterns: Vec<String>,
    attachments: AttachmentPlace,
    reach: Reach,
    session: SessionSource,
    journal: JournalPlace,
    journal_limit: JournalLimit,
    engine: EngineSource,
    probes: Vec<ProbeSpec>,
    http_probes: Vec<(String, u32)>,
    dry_run: bool,
    fail_on_warn: bool,
    approval: Approval,
    approval_timeout: Duration,
    fleet: Option<Fleet>,
    resume: Option<String>,
    invocation: Option<Value>,
}

impl RunBuilder {
    /// A run of `policy` (a bundled name or a component file) with no config,
    /// no mutation allowed, no backend, a journal in the default place, default
    /// limits and nobody to approve anything.
    pub fn new(policy: impl Into<String>) -> Self {
        RunBuilder {
            policy: policy.into(),
            config: ConfigSource::Pairs(Vec::new()),
            allowances: Allowances::Flags { allow: Vec::new(), file: None },
            gates: Vec::new(),
            patterns: Vec::new(),
            attachments: AttachmentPlace::BesideJournal,
            reach: Reach::Nothing("no target".into()),
            session: SessionSource::Off,
            journal: JournalPlace::Default,
            journal_limit: JournalLimit::default(),
            engine: EngineSource::New { limits: Limits::default(), cache_dir: None },
            probes: Vec::new(),
            http_probes: Vec::new(),
            dry_run: false,
            fail_on_warn: false,
            approval: Approval::Unattended,
            approval_timeout: Duration::ZERO,
            fleet: None,
            resume: None,
            invocation: None,
        }
    }

    /// Configuration from `KEY=VALUE` texts (`--config`), checked against the schema.
    pub fn config_pairs(mut self, pairs: Vec<String>) -> Self {
        self.config = ConfigSource::Pairs(pairs);
        self
    }

    /// Configuration from a JSON object, checked against the schema, defaults filled in.
    pub fn config_object(mut self, object: serde_json::Map<String, Value>) -> Self {
        self.config = ConfigSource::Object(object);
        self
    }

    /// Allow the mutations `allow` names (`--allow`) and those of a TOML grants file (`allow = [...]`).
    pub fn allow_flags(mut self, allow: Vec<String>, file: Option<PathBuf>) -> Self {
        self.allowances = Allowances::Flags { allow, file };
        self
    }

    /// Allow the mutations a test case lists.
    pub fn allow_listed(mut self, allow: Vec<String>) -> Self {
        self.allowances = Allowances::Listed(allow);
        self
    }

    /// Allow every capability the manifest requests.
    pub fn allow_requested(mut self) -> Self {
        self.allowances = Allowances::Requested;
        self
    }

    /// Rebind a pattern's gate slots (`SLOT=NAME|FILE`); the others keep the manifest's default.
    pub fn gates(mut self, overrides: Vec<String>) -> Self {
        self.gates = overrides;
        self
    }

    /// Rebind a pattern's pattern slots (`SLOT=NAME|FILE`, or `SLOT/INNER=...`
    /// for a slot of the pattern bound to `SLOT`); the others keep their manifest's default.
    pub fn patterns(mut self, overrides: Vec<String>) -> Self {
        self.patterns = overrides;
        self
    }

    /// Write the run's attachments (`report.attach`) into `dir` instead of
    /// a folder named after the run id beside the journal.
    pub fn attachments(mut self, dir: PathBuf) -> Self {
        self.attachments = AttachmentPlace::At(dir);
        self
    }

    /// Write the run's attachments into a temporary folder, removed with the run (`runner test`).
    pub fn temporary_attachments(mut self) -> Self {
        self.attachments = AttachmentPlace::Temporary;
        self
    }

    /// Reach this target's cluster and databases.
    pub fn target(mut self, target: Target) -> Self {
        self.reach = Reach::Target(target);
        self
    }

    /// Reach the members of this fleet through `fleet.*` (the run's own
    /// target, if any, stays what the pattern's other calls reach).
    pub fn fleet(mut self, fleet: Fleet) -> Self {
        self.fleet = Some(fleet);
        self
    }

    /// Reach nothing: every backend call answers `unavailable`, naming `label`.
    pub fn offline(mut self, label: &str) -> Self {
        self.reach = Reach::Nothing(label.into());
        self
    }

    /// Record every host call to this session file.
    pub fn record(mut self, path: PathBuf) -> Self {
        self.session = SessionSource::Record(path);
        self
    }

    /// Answer the host calls from this session file instead of the backends; a divergence fails the run.
    pub fn replay(mut self, path: PathBuf) -> Self {
        self.session = SessionSource::Replay(path);
        self
    }

    /// Answer the host calls from this session; the caller judges how it went ([`Run::session`]).
    pub fn session(mut self, session: Session) -> Self {
        self.session = SessionSource::Given(Box::new(session));
        self
    }

    /// Append the journal to this file instead of a new one under the state directory.
    pub fn journal(mut self, path: PathBuf) -> Self {
        self.journal = JournalPlace::At(path);
        self
    }

    /// Bound what the run may journal (default [`JournalLimit::default`]);
    /// past it the run stops with exit 3.
    pub fn journal_limit(mut self, limit: JournalLimit) -> Self {
        self.journal_limit = limit;
        self
    }

    /// Keep no journal.
    pub fn without_journal(mut self) -> Self {
        self.journal = JournalPlace::Nowhere;
        self
    }

    /// A new engine with these limits, caching compiled components in `cache_dir`.
    pub fn limits(mut self, limits: Limits, cache_dir: Option<PathBuf>) -> Self {
        self.engine = EngineSource::New { limits, cache_dir };
        self
    }

    /// Run in this engine (its limits apply), shared with other runs.
    pub fn engine(mut self, engine: Arc<Engine>) -> Self {
        self.engine = EngineSource::Shared(engine);
        self
    }

    /// While the policy runs, write `rate` numbered records per second to the
    /// target's `database` (into `table`), and fail the run if one acknowledged
    /// write is lost. Called again, it adds a probe of another database.
    pub fn write_probe(mut self, database: String, table: String, rate: u32) -> Self {
        self.probes.push(ProbeSpec { database, table, rate });
        self
    }

    /// While the policy runs, GET `url` (`http://IP[:PORT]/PATH`; `localhost`
    /// is 127.0.0.1, no other name is resolved) `rate` times a second and
    /// report the failed requests, the longest gap between successful
    /// answers, the latencies and which backend answered (`http_probes`).
    /// A failed request does not fail the run. A dry run may probe (a GET
    /// changes nothing); a replay may not (it reaches nothing live).
    pub fn http_probe(mut self, url: impl Into<String>, rate: u32) -> Self {
        self.http_probes.push((url.into(), rate));
        self
    }

    /// Count a gate's `warn` as `fail`: the run's own gate, and every gate a pattern runs.
    pub fn fail_on_warn(mut self, fail_on_warn: bool) -> Self {
        self.fail_on_warn = fail_on_warn;
        self
    }

    /// Answer every mutation as if it succeeded and record the plan instead.
    pub fn dry_run(mut self, dry_run: bool) -> Self {
        self.dry_run = dry_run;
        self
    }

    /// How approval requests are answered.
    pub fn approval(mut self, approval: Approval) -> Self {
        self.approval = approval;
        self
    }

    /// Continue run `id`, killed or stopped (`runner exec --resume`): the
    /// same id, journal and run directory; its component answered from the
    /// run log up to where the run had come, then live.
    pub fn resume(mut self, id: String) -> Self {
        self.resume = Some(id);
        self
    }

    /// What starting this run again needs (`runner exec`'s arguments), kept
    /// in its run directory for `runner exec --resume`.
    pub fn invocation(mut self, invocation: Value) -> Self {
        self.invocation = Some(invocation);
        self
    }

    /// How long an approval waits for `runner approve`/`runner reject` when
    /// nobody is at the terminal (default zero: it fails at once).
    pub fn approval_timeout(mut self, timeout: Duration) -> Self {
        self.approval_timeout = timeout;
        self
    }

    /// Assemble the run on a runtime of its own, run it to its end, and report.
    pub fn run(self) -> Result<RunReport, Failure> {
        runtime()?.block_on(async { self.build().await?.execute().await })
    }

    /// Check every input and assemble the run: the policy loaded and compiled,
    /// its slots bound, its session open, its backends connected (a target
    /// that cannot be reached answers `unavailable` to every call, exit 4).
    pub async fn build(self) -> Result<Run, Failure> {
        let (started, started_at) = (Instant::now(), SystemTime::now());
        let policy = load_policy(&self.policy)?;
        let config = match self.config {
            ConfigSource::Pairs(texts) => {
                let pairs: Vec<(String, String)> =
                    texts.iter().map(|p| config::split_pair(p).map_err(|e| Failure::bad_input(format!("--config: {e}")))).collect::<Result<_, _>>()?;
                config::build(&policy.manifest.config, &pairs).map_err(Failure::bad_input)?
            }
            ConfigSource::Object(object) => {
                config::merge_json(&policy.manifest.config, Value::Object(object)).map_err(|e| Failure::bad_input(format!("config: {e}")))?
            }
        };
        for mismatch in policy.import_report.mismatches() {
            tracing::warn!("{}: {mismatch}", policy.name());
        }
        if !self.probes.is_empty() && self.dry_run {
            return Err(Failure::bad_input("--write-probe writes to the database; a --dry-run changes nothing, so it takes no probe"));
        }
        let http_probes: Vec<HttpTarget> = self
            .http_probes
            .iter()
            .map(|(url, rate)| HttpTarget::parse(url, *rate).map_err(|e| Failure::bad_input(format!("--http-probe: {e}"))))
            .collect::<Result<_, _>>()?;
        let slots = bind_gates(&policy, &self.gates)?;
        let pattern_slots = super::compose::bind_patterns(&policy, &self.patterns)?;
        let (allowed, on_members) = allowed(self.allowances, &policy, &pattern_slots)?;
        let (record, replay) = match &self.session {
            SessionSource::Record(path) => (Some(path.clone()), None),
            SessionSource::Replay(path) => (None, Some(path.clone())),
            SessionSource::Off | SessionSource::Given(_) => (None, None),
        };
        if !self.probes.is_empty() && replay.is_some() {
            return Err(Failure::bad_input("--write-probe writes to a live database; a --replay reaches none"));
        }
        if !http_probes.is_empty() && replay.is_some() {
            return Err(Failure::bad_input("--http-probe measures a live service while the policy changes it; a --replay changes nothing live"));
        }
        let session = match self.session {
            SessionSource::Given(session) => *session,
            _ => session::open(record.as_deref(), replay.as_deref(), &policy)?,
        };
        // Its mutations were answered from a plan and never recorded: only a dry run can replay it.
        let dry_run = self.dry_run || session.recorded_dry_run();
        if dry_run && !self.dry_run {
            tracing::info!("the session was recorded with --dry-run: replayed as a dry run");
        }
        let recorded_at = crate::journal::timestamp();
        let target_header = match &self.reach {
            Reach::Target(target) if !session.is_replaying() => {
                json!({"name": target.label(), "context": target.context_name(), "namespace": target.namespace, "kubeconfig": target.kubeconfig})
            }
            Reach::Target(_) => json!({"name": "a replayed session", "session": replay}),
            Reach::Nothing(label) => json!({"name": label}),
        };
        let gate_names: BTreeMap<String, String> = slots.iter().map(|(slot, gate)| (slot.clone(), gate.name().to_string())).collect();
        let pattern_names = super::compose::slot_names(&pattern_slots);
        let mut databases = Vec::new();
        let root_target = match &self.reach {
            Reach::Target(target) if self.fleet.as_ref().is_some_and(|f| !f.traffic.is_empty()) => Some(target.clone()),
            _ => None,
        };
        let (backends, probes) = match self.reach {
            Reach::Target(target) => {
                let backends = backends_of(&target, session.is_replaying()).await?;
                databases = target.databases.clone();
                (backends, self.probes.into_iter().map(|spec| (target.clone(), spec)).collect())
            }
            Reach::Nothing(label) => {
                if !self.probes.is_empty() {
                    return Err(Failure::bad_input("--write-probe needs a target to write to"));
                }
                (Backends::unavailable(&label), Vec::new())
            }
        };
        // A fleet file's own `traffic:` serves the fleet run's own calls, beside its target's switches.
        let mut backends = backends;
        if let Some(fleet) = self.fleet.as_ref().filter(|f| !f.traffic.is_empty() && !session.is_replaying()) {
            let target = root_target.as_ref();
            let mut switches = target.map(Target::switches).unwrap_or_default();
            for switch in &fleet.traffic {
                if switches.iter().any(|s| s.name == switch.name) {
                    return Err(Failure::bad_input(format!(
                        "fleet {}: traffic switch `{}` is also the target's; give it another name",
                        fleet.path.display(),
                        switch.name
                    )));
                }
                switches.push(switch.clone());
            }
            let label = format!("fleet {}", fleet.path.display());
            if let Some(traffic) = traffic_backend(&label, switches, backends.kube.clone(), target)? {
                backends.traffic = traffic;
            }
        }
        let resumed = self.resume.as_deref().map(|id| resumable(id, &policy)).transpose()?;
        // Canned answers are not a recording: a run answered by them keeps a run log, and resumes, as a live one does.
        let replays_a_recording = session.is_replaying() && !session.is_canned();
        if resumed.is_some() && (dry_run || replays_a_recording) {
            return Err(Failure::bad_input("--resume continues a live run: it takes neither --dry-run nor --replay"));
        }
        let resumed_log = match &resumed {
            Some((run_dir, state)) => {
                Some(crate::session::RunLog::resume(&run_dir.log_path()).map_err(|e| Failure::bad_input(format!("cannot resume run {}: {e}", state.id)))?)
            }
            None => None,
        };
        let run_id = resumed.as_ref().map_or_else(|| new_run_id(policy.name()), |(_, state)| state.id.clone());
        let journal = match resumed.as_ref().and_then(|(_, state)| state.journal.clone()) {
            Some(path) => JournalPlace::At(path),
            None => self.journal,
        };
        let journal = match journal {
            JournalPlace::Nowhere => Journal::disabled(),
            place => {
                let path = match place {
                    JournalPlace::At(path) => path,
                    _ => Journal::default_path(&run_id),
                };
                Journal::open(&path, run_id)
                    .map_err(|e| Failure::bad_input(format!("{}: cannot open the journal: {e}", path.display())))?
                    .with_limit(self.journal_limit)
            }
        };
        let allowances = allowed.iter().map(ToString::to_string).chain(on_members.iter().map(|(member, cap)| format!("{cap}@{member}"))).collect();
        let mut header = run_header(&policy, target_header, allowances, &config, &gate_names, dry_run);
        if let (Some((_, state)), Some(log)) = (&resumed, &resumed_log) {
            header["resumed"] = json!({"attempt": state.resumed + 2, "started": state.started, "replayed_calls": log.logged()});
        }
        if let Some(fleet) = &self.fleet {
            header["fleet"] = json!({"file": fleet.path, "members": fleet.members.iter().map(|m| &m.name).collect::<Vec<_>>()});
        }
        if !pattern_names.is_empty() {
            header["patterns"] = json!(pattern_names);
        }
        let attachments = match self.attachments {
            AttachmentPlace::At(dir) => Attachments::at(dir),
            AttachmentPlace::Temporary => {
                Attachments::temporary().map_err(|e| Failure::bad_input(format!("cannot make a temporary folder for the attachments: {e}")))?
            }
            AttachmentPlace::BesideJournal => match journal.path() {
                Some(path) => Attachments::at(path.parent().unwrap_or(std::path::Path::new(".")).join(journal.run_id())),
                None => Attachments::none(),
            },
        };
        // A journal that cannot take its header cannot take the run's lines either:
        // the run stops with exit 3 at its first mutation or at its end, naming the loss.
        if let Err(e) = journal.header(&header) {
            tracing::warn!("{}: cannot write the journal's header: {e}", journal.shown_path());
        }
        let engine = match self.engine {
            EngineSource::Shared(engine) => engine,
            EngineSource::New { limits, cache_dir } => Arc::new(Engine::new(limits, cache_dir).map_err(|e| Failure::new(Exit::PolicyFailed, e.to_string()))?),
        };
        let prepared = engine.prepare(&policy)?;
        tracing::debug!("{}: compiled artifact {}", policy.name(), if prepared.from_cache { "loaded from the cache" } else { "compiled and cached" });

        let session_replays = session.is_replaying();
        let mut context = RunContext::new(journal, backends, dry_run, self.approval);
        // One time base for the report: the wall time, the steps and the probe all count from here.
        context.started = started;
        context.session = session;
        context.fail_on_warn = self.fail_on_warn;
        context.attachments = attachments;
        context.databases = databases;
        context.approval_timeout = self.approval_timeout;
        if let Some((run_dir, mut state)) = resumed {
            run_dir.clear_requests();
            state.pid = std::process::id();
            state.state = "running".into();
            state.ended = None;
            state.resumed += 1;
            run_dir.set_state(&state).map_err(|e| Failure::bad_input(format!("cannot resume: {e}")))?;
            let log = resumed_log.ok_or_else(|| Failure::bad_input("cannot resume: the run log was not read"))?;
            tracing::info!("resuming run {}: {} call(s) of its earlier attempts are answered from {}", state.id, log.logged(), log.path().display());
            context.run_log = Some(log);
            context.run_dir = Some(run_dir);
            context.resumed = true;
        } else if let Some(path) = context.journal.path().map(std::path::Path::to_path_buf) {
            let run_dir = crate::runs::RunDir::at(&crate::runs::root(), &context.run_id);
            let state = crate::runs::RunState {
                id: context.run_id.clone(),
                policy: policy.name().to_string(),
                operator: crate::runs::operator(),
                pid: std::process::id(),
                state: "running".into(),
                started: crate::journal::timestamp(),
                ended: None,
                journal: Some(path),
                digest: policy.digest.clone(),
                resumed: 0,
            };
            // Without it nobody else can answer an approval, stop or resume the run; the run itself goes on.
            match run_dir.set_state(&state) {
                Ok(()) => {
                    if !dry_run && !replays_a_recording {
                        match crate::session::RunLog::create(&run_dir.log_path()) {
                            Ok(log) => context.run_log = Some(log),
                            Err(e) => tracing::warn!("{}: cannot create the run log ({e}): the run cannot be resumed", run_dir.log_path().display()),
                        }
                    }
                    if let Some(invocation) = &self.invocation
                        && let Err(e) = run_dir.set_invocation(invocation)
                    {
                        tracing::warn!("run directory: {e}: the run cannot be resumed");
                    }
                    context.run_dir = Some(run_dir);
                }
                Err(e) => tracing::warn!("run directory: {e}"),
            }
        }
        if let Some(fleet) = self.fleet {
            context.fleet = Some(Arc::new(super::fleet::FleetBackends::new(fleet, session_replays)));
        }
        if policy.manifest.world == World::Pattern {
            context.gates = Some(Arc::new(SlotRunner::new(engine.clone(), slots)));
            context.patterns = Some(Arc::new(PatternSlots::new(engine.clone(), pattern_slots, None)));
        }
        let grants = Grants::new(policy.manifest.requested(), allowed).with_member_allowances(on_members);
        let budget = engine.limits().deadline(policy.manifest.world);
        let config_text = config.to_string();
        Ok(Run {
            policy,
            prepared,
            engine,
            context: Arc::new(context),
            grants,
            budget,
            config,
            config_text,
            probes,
            http_probes,
            record,
            replay,
            gate_names,
            recorded_at,
            header,
            started,
            started_at,
        })
    }
}

/// The run `id` names, if it can be resumed with `policy`: one that was
/// killed (its process is gone before it ended) or stopped, never one still
/// running or one that ended otherwise (a resume would replay the same
/// answers to the same end).
fn resumable(id: &str, policy: &Policy) -> Result<(crate::runs::RunDir, crate::runs::RunState), Failure> {
    let run_dir = crate::runs::RunDir::existing(&crate::runs::root(), id).map_err(|e| Failure::bad_input(e.to_string()))?;
    let state = run_dir.state().ok_or_else(|| Failure::bad_input(format!("run {id}: its run.json cannot be read")))?;
    if run_dir.alive() {
        return Err(Failure::bad_input(format!("run {id} is still running (pid {}): `runner stop {id}` first", state.pid)));
    }
    if state.ended.is_some() && state.state != "stopped" {
        return Err(Failure::bad_input(format!(
            "run {id} ended `{}`: only a killed or stopped run is resumed (a new run, or `--residual {id}`, retries what it left)",
            state.state
        )));
    }
    if !state.digest.is_empty() && state.digest != policy.digest {
        return Err(Failure::bad_input(format!(
            "run {id} ran {} {}, not {}: a resume replays the same policy",
            state.policy,
            short_digest(&state.digest),
            short_digest(&policy.digest)
        )));
    }
    if state.journal.is_none() || !run_dir.log_path().is_file() {
        return Err(Failure::bad_input(format!("run {id} kept no run log (a dry run, a replay, or a run without a journal): it cannot be resumed")));
    }
    Ok((run_dir, state))
}

/// What a reviewer asks of a run before reading its calls: who ran what,
/// where, allowed to do what, configured how. The journal's first line and
/// the report's `run` (config values under secret-looking keys redacted).
fn run_header(policy: &Policy, target: Value, allowances: Vec<String>, config: &Value, gates: &BTreeMap<String, String>, dry_run: bool) -> Value {
    let mut config = config.clone();
    crate::journal::redact(&mut config);
    let m = &policy.manifest;
    let mut policy_line = json!({"name": m.name, "version": m.version, "world": m.world, "digest": policy.digest});
    // A policy pulled by reference names where it came from: the manifest digest and the signer.
    if let Some(origin) = &policy.origin {
        policy_line["origin"] = json!(origin);
    }
    json!({
        "operator": crate::runs::operator(),
        "runner": env!("CARGO_PKG_VERSION"),
        "started": crate::journal::timestamp(),
        "target": target,
        "policy": policy_line,
        "allowances": allowances,
        "config": config,
        "gates": gates,
        "dry_run": dry_run,
    })
}

/// Allowances that hold on some fleet members only: member name pattern → capability.
type MemberAllowances = Vec<(String, Capability)>;

/// The mutations allowed, parsed; a grants file is read here. "Everything
/// requested" covers the patterns bound to its slots too: a test case that
/// lists no `allow` runs each as its own manifest asks. `CAP@MEMBER`
/// (`cluster:upgrade-node-pool@dev`, `kube:*@prod-*`) holds on matching
/// fleet members only.
fn allowed(allowances: Allowances, policy: &Policy, patterns: &BTreeMap<String, BoundPattern>) -> Result<(Vec<Capability>, MemberAllowances), Failure> {
    let parse = |texts: &[String], flag: &str| -> Result<(Vec<Capability>, MemberAllowances), Failure> {
        let (mut everywhere, mut on_members) = (Vec::new(), Vec::new());
        for text in texts {
            let bad = |e: String| Failure::bad_input(format!("{flag}: {e}"));
            match text.rsplit_once('@') {
                Some((cap, member)) => {
                    let name = member.strip_suffix('*').unwrap_or(member);
                    if !name.is_empty() {
                        crate::domain::names::label("member", name).map_err(|e| bad(format!("`{text}`: {e}")))?;
                    }
                    on_members.push((member.to_string(), cap.parse::<Capability>().map_err(|e| bad(e.to_string()))?));
                }
                None => everywhere.push(text.parse::<Capability>().map_err(|e| bad(e.to_string()))?),
            }
        }
        Ok((everywhere, on_members))
    };
    match allowances {
        Allowances::Flags { mut allow, file } => {
            if let Some(path) = &file {
                let text = std::fs::read_to_string(path).map_err(|e| Failure::bad_input(format!("{}: cannot read grants file: {e}", path.display())))?;
                let file: GrantsFile = toml::from_str(&text).map_err(|e| Failure::bad_input(format!("{}: {}", path.display(), e.message())))?;
                allow.extend(file.allow);
            }
            parse(&allow, "--allow")
        }
        Allowances::Listed(allow) => parse(&allow, "allow"),
        Allowances::Requested => Ok((super::compose::requested_by_all(policy, patterns), Vec::new())),
    }
}

/// What a run's calls reach on `target`: its cluster, its databases through
/// it, and its cluster API; nothing when a session answers every call
/// (`replaying`). The run's own target and each fleet member's get theirs here.
pub(super) async fn backends_of(target: &Target, replaying: bool) -> Result<Backends, Failure> {
    if replaying {
        return Ok(Backends::with_kube(Arc::new(Unavailable::because("replaying a session: no backend is reached")), target));
    }
    let mut backends = Backends::with_kube(kube_backend(target).await?, target);
    backends.cluster = cluster_backend(target)?;
    if let Some(traffic) = traffic_backend(&target.label(), target.switches(), backends.kube.clone(), Some(target))? {
        backends.traffic = traffic;
    }
    Ok(backends)
}

/// The traffic switches `switches` of `label`: HTTPRoutes through `kube`,
/// Traffic Manager profiles through the ARM API `target` names (`cluster:`,
/// the lab's `arm.json`); `None` when there are no switches. A profile with
/// no ARM API to reach it answers `unavailable`, as the cluster's calls do.
pub(super) fn traffic_backend(
    label: &str,
    switches: Vec<SwitchConfig>,
    kube: Arc<dyn Kube>,
    target: Option<&Target>,
) -> Result<Option<Arc<dyn Traffic>>, Failure> {
    if switches.is_empty() {
        return Ok(None);
    }
    let needs_arm = switches.iter().any(|s| matches!(s.via, SwitchVia::TrafficManager { .. }));
    // One ARM client for every profile: the cluster's endpoint and credential.
    let arm = match (needs_arm, target.map(Target::cluster_api)) {
        (false, _) => Err("unused".to_string()),
        (true, None) => Err(format!("{label}: a Traffic Manager profile is reached through ARM, and this run names no target with a `cluster:` section")),
        (true, Some(Ok(Some(config)))) => {
            let backend = AksBackend::connect(&config).map_err(|e| Failure::bad_input(format!("target {label}: traffic: {e}")))?;
            Ok((Arc::new(backend), config.resource_group))
        }
        (true, Some(Ok(None))) => Err(format!(
            "target {label}: a Traffic Manager profile is reached through ARM: add a `cluster:` section (its subscription, endpoint and credential) to the target file"
        )),
        (true, Some(Err(TargetError::Unreachable(message)))) => Err(message),
        (true, Some(Err(TargetError::Bad(message)))) => return Err(Failure::bad_input(message)),
    };
    let switches = switches
        .into_iter()
        .map(|config| {
            let server: Arc<dyn crate::backends::traffic::SwitchServer> = match &config.via {
                SwitchVia::HttpRoute { namespace, name } => Arc::new(HttpRouteSwitch::new(kube.clone(), namespace.clone(), name.clone())),
                SwitchVia::TrafficManager { profile, resource_group } => match &arm {
                    Ok((arm, cluster_group)) => Arc::new(ProfileSwitch::new(arm.clone(), resource_group.as_deref().unwrap_or(cluster_group), profile)),
                    Err(why) => Arc::new(Unavailable::because(format!("switch {}: {why}", config.name))),
                },
            };
            Switch { config, server }
        })
        .collect();
    Ok(Some(Arc::new(Switches::new(label.to_string(), switches))))
}

/// The Kubernetes backend for `target`. A lab that is not running is not
/// an error here: every kube call then answers `unavailable` (exit 4), as
/// an unreachable cluster does, so reads of other kinds still run.
async fn kube_backend(target: &Target) -> Result<Arc<dyn Kube>, Failure> {
    match crate::backends::kube::connect(target).await {
        Ok(backend) => Ok(Arc::new(backend)),
        Err(TargetError::Unreachable(message)) => Ok(Arc::new(Unavailable::because(message))),
        Err(TargetError::Bad(message)) => Err(Failure::bad_input(message)),
    }
}

/// The cluster API backend for `target`: AKS when it names one; a lab
/// without its ARM API, or a target with no `cluster:` section, answers
/// every cluster call `unavailable` (exit 4); a bad section is bad input.
fn cluster_backend(target: &Target) -> Result<Arc<dyn Cluster>, Failure> {
    match target.cluster_api() {
        Ok(Some(config)) => Ok(Arc::new(AksBackend::connect(&config).map_err(|e| Failure::bad_input(format!("target {}: cluster: {e}", target.label())))?)),
        Ok(None) => Ok(Backends::unavailable(&target.label()).cluster),
        Err(TargetError::Unreachable(message)) => Ok(Arc::new(Unavailable::because(message))),
        Err(TargetError::Bad(message)) => Err(Failure::bad_input(message)),
    }
}

/// The gate for every slot: the manifest's default unless an override rebinds it.
pub(super) fn bind_gates(policy: &Policy, overrides: &[String]) -> Result<BTreeMap<String, Policy>, Failure> {
    let slots = &policy.manifest.gates;
    let mut chosen: BTreeMap<String, String> = slots.iter().map(|(slot, s)| (slot.clone(), s.default.clone())).collect();
    for text in overrides {
        let (slot, gate) = config::split_pair(text).map_err(|e| Failure::bad_input(format!("--gate: {e}")))?;
        if !slots.contains_key(&slot) {
            let known = if slots.is_empty() { "it has none".to_string() } else { slots.keys().cloned().collect::<Vec<_>>().join(", ") };
            return Err(Failure::bad_input(format!("--gate: `{}` has no slot `{slot}` (slots: {known})", policy.name())));
        }
        chosen.insert(slot, gate);
    }
    chosen
        .into_iter()
        .map(|(slot, gate)| {
            let bound = load_policy(&gate).map_err(|f| Failure::new(f.exit, format!("gate slot `{slot}`: {}", f.message)))?;
            if bound.manifest.world != World::Gate {
                return Err(Failure::bad_input(format!("gate slot `{slot}`: `{}` is a {}, not a gate", bound.name(), bound.manifest.world)));
            }
            Ok((slot, bound))
        })
        .collect()
}

/// A run assembled and ready: [`Run::execute`] runs it to its end; a
/// benchmark or a test case calls the component itself with [`Run::answer`].
pub struct Run {
    policy: Policy,
    prepared: Prepared,
    engine: Arc<Engine>,
    context: Arc<RunContext>,
    grants: Grants,
    budget: Duration,
    config: Value,
    config_text: String,
    probes: Vec<(Target, ProbeSpec)>,
    http_probes: Vec<HttpTarget>,
    record: Option<PathBuf>,
    replay: Option<PathBuf>,
    gate_names: BTreeMap<String, String>,
    recorded_at: String,
    header: Value,
    started: Instant,
    started_at: SystemTime,
}

impl Run {
    /// The session answering (or recording) the host calls.
    pub fn session(&self) -> &Session {
        &self.context.session
    }

    /// A fresh host for one instance of the component: its grants, its
    /// deadline, this run's journal, backends and session.
    pub fn host(&self) -> HostState {
        HostState::new(self.prepared.name.clone(), self.grants.clone(), self.budget, None, self.context.clone()).at_root()
    }

    /// Instantiate the component with `host` and drop it, running nothing.
    pub async fn instantiate(&self, host: HostState) -> Result<(), EngineError> {
        self.engine.instantiate_only(&self.prepared, host).await
    }

    /// Call the component once with `host` and this run's config: how it
    /// answered, before the run's record or a probe adjust the exit code.
    pub async fn answer(&self, host: HostState) -> Result<Ending, EngineError> {
        Ok(match self.prepared.world {
            World::Gate => {
                let answer = self.engine.evaluate(&self.prepared, host, &self.config_text).await?;
                answer.map_or_else(Ending::error, |verdict| Ending::verdict(if self.context.fail_on_warn { warn_as_fail(verdict) } else { verdict }))
            }
            World::Pattern => self.engine.run_pattern(&self.prepared, host, &self.config_text).await?.map_or_else(Ending::error, Ending::pattern),
        })
    }

    /// Run the policy to its end, with the write probe beside it; close the
    /// journal and the session, and settle the exit code. A run the sandbox
    /// stopped (deadline, memory, output or journal bounds, a lost journal)
    /// still gets its full report, with exit 3 and [`Ending::stopped`] naming
    /// the stop; a component the engine cannot run is a [`Failure`].
    pub async fn execute(self) -> Result<RunReport, Failure> {
        self.execute_after(async { Ok(()) }).await
    }

    /// [`Run::execute`], with `before_policy` awaited once the write probe
    /// writes and before the policy starts (a drill breaks the cluster there,
    /// so the probe sees the outage and the policy reacts to it).
    pub async fn execute_after(self, before_policy: impl Future<Output = Result<(), Failure>>) -> Result<RunReport, Failure> {
        // The probe's timeline starts about here (its first write is acknowledged within `start`).
        let probe_at = self.context.started.elapsed();
        let mut probes = Vec::with_capacity(self.probes.len());
        for (target, spec) in &self.probes {
            probes.push(WriteProbe::start(target, self.context.backends.kube.as_ref(), &spec.database, &spec.table, spec.rate).await.map_err(|e| match e {
                ProbeError::Bad(message) => Failure::bad_input(message),
                ProbeError::Unreachable(message) => Failure::new(Exit::Unavailable, format!("{message} (nothing was run)")),
            })?);
        }
        let mut http_probes = Vec::with_capacity(self.http_probes.len());
        for target in &self.http_probes {
            http_probes.push(HttpProbe::start(target.clone()).map_err(|e| Failure::new(Exit::Unavailable, format!("{e} (nothing was run)")))?);
        }
        before_policy.await?;
        let ending = match self.answer(self.host()).await {
            Err(stop @ EngineError::Stopped { .. }) => Ok(Ending::stopped(stop.to_string())),
            answered => answered,
        };
        let probes: Vec<_> = probes.into_iter().map(WriteProbe::finish).collect();
        let http_probes: Vec<_> = http_probes.into_iter().map(HttpProbe::finish).collect();
        let journal_lost = self.context.journal.flush().err();
        session::close(&self.context, self.record.as_deref(), self.replay.as_deref(), &self.policy, &self.config, self.gate_names, self.recorded_at)?;
        let mut ending = ending?;
        // A run whose record is incomplete did not succeed, whatever it answered
        // (a run the sandbox stopped has said so above, naming the first loss).
        if let Some(e) = journal_lost {
            ending.stop(format!("cannot write the journal {} ({e}): the run's record is incomplete", self.context.journal.shown_path()));
        }
        // A resumed component that ends before asking for everything its log holds took another path.
        if let Some(log) = &self.context.run_log
            && log.unasked() > 0
            && ending.stopped.is_none()
        {
            ending.stop(format!(
                "cannot resume: the policy ended ({}) without asking for the last {} call(s) of the run's log {}: it did not take the path the run had taken",
                ending.outcome,
                log.unasked(),
                log.path().display()
            ));
        }
        // A stop reaches every sub-run at its own boundary: one that ended a member's run
        // ends the whole run as stopped, whatever the orchestrator made of it.
        if let Some(by) = self.context.run_dir.as_ref().and_then(|dir| dir.stop_requested())
            && ending.stopped.is_none()
            && ending.outcome != "succeeded"
        {
            ending.stop(format!("stopped by `runner stop` ({by})"));
        }
        let record = self.context.record.lock().unwrap_or_else(|p| p.into_inner()).clone();
        ending.settle(&record, &probes);
        if let Some(run_dir) = &self.context.run_dir {
            run_dir.update_state(if ending.stopped.is_some() { "stopped" } else { ending.outcome }, true);
        }
        let journal = self.context.journal.path().map(std::path::Path::to_path_buf);
        Ok(RunReport {
            policy: self.policy,
            ending,
            record,
            journal,
            dry_run: self.context.dry_run,
            wall: self.started.elapsed(),
            from_cache: self.prepared.from_cache,
            probes,
            http_probes,
            header: self.header,
            run: RunFacts {
                id: self.context.run_id.clone(),
                started_at: self.started_at,
                ended_at: SystemTime::now(),
                probe_at_ms: probe_at.as_secs_f64() * 1000.0,
            },
        })
    }
}

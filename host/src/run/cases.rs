//! Declarative test cases of gates and patterns (`runner test`), replayed
//! from sessions or canned responses, with no cluster and no database.
//!
//! Every `*.test.yaml` under PATH is one case:
//!
//! ```yaml
//! name: pg-preflight fails with too few synchronous standbys  # default: the file's path
//! definitions:                       # ignored: anchors the responses refer to (*standby)
//!   standby: &standby {"application_name": "postgres-cluster-1", "sync_state": "async"}
//! component: pg-preflight            # a policy's name (as `runner exec` finds it, and first
//!                                    # among the components the enclosing crate built), or a
//!                                    # path relative to this file, or a reference (`oci://REGISTRY/REPO:TAG`,
//!                                    # `oci-layout:DIR:TAG` with DIR relative to this file)
//! config: {min-sync: 2}              # as --config; defaults filled in
//! gates: {preflight: ../my-gate.wasm}  # a pattern's slots, as --gate
//! patterns: {postgres: ../my-wheel.wasm}  # a pattern's pattern slots, as --pattern
//! session: sessions/no-sync.session.json   # replay this (relative to this file) ...
//! responses:                         # ... or answer from canned responses
//!   - call: postgres-read.query
//!     args: {member: postgres-cluster-0, sql: "~pg_stat_replication"}
//!     response: [*standby]            # YAML merge keys work too: {<<: *standby, sync_state: sync}
//!   - call: kube-read.get              # a later state: only once the Pod was deleted
//!     args: {kind: Pod, name: postgres-cluster-1}
//!     after: [{call: kube-write.delete, args: {name: postgres-cluster-1}}]   # or [kube-write.delete]
//!     sequence: [{error: {code: not-found, message: gone}}, {response: {"metadata": {"uid": "new"}}}]
//!   - call: kube-read.get              # the state before (entries are tried in file order)
//!     args: {kind: Pod, name: postgres-cluster-1}
//!     response: {"metadata": {"uid": "old"}}
//! clock: 2026-11-21T20:00:00Z        # canned responses: where the virtual clock starts
//! allow: ["kube:*"]                  # mutations allowed (default: all the manifest requests)
//! dry-run: true                      # run as --dry-run: mutations answered from the plan
//! expect:
//!   outcome: fail                    # pass | warn | fail | succeeded | rolled-back | error
//!   reasons: ["standby(s) in sync"]  # each must appear in some reason
//!   mutations:                       # the mutating calls, in order (calls or {call, args})
//!     - kube-write.scale
//!     - {call: kube-write.patch, args: {kind: Service}}
//! ```
//!
//! Canned responses are tried in file order and the first that fits the call
//! answers it. An entry with `after` fits only once every mutating call it
//! lists (a call name, or `{call, component, args}` matched like `args`) has
//! been answered in this case, not with an error (a failed call changed
//! nothing), so the world a pattern changes is written as states, the latest
//! first; its `sequence` starts at its own first answer.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::{Failure, RunBuilder, runtime};
use crate::engine::{Engine, Limits};
use crate::policy::{default_search_path, locate};
use crate::session::{CANNED_EPOCH_MS, CallMatch, CannedResponse, Session, SessionFile};

/// One test file.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    name: Option<String>,
    component: String,
    #[serde(default)]
    config: serde_json::Map<String, Value>,
    #[serde(default)]
    gates: BTreeMap<String, String>,
    /// A pattern's pattern slots, as `--pattern` (`SLOT` or `SLOT/INNER` → a name or a path).
    #[serde(default)]
    patterns: BTreeMap<String, String>,
    #[serde(default)]
    session: Option<PathBuf>,
    #[serde(default)]
    responses: Option<Vec<CannedResponse>>,
    #[serde(default)]
    clock: Option<Value>,
    #[serde(default)]
    allow: Option<Vec<String>>,
    /// A fleet for `fleet.*` (as `--fleet`): members by name, group and
    /// labels; no member is reached, so their calls need canned answers.
    #[serde(default)]
    fleet: Vec<CaseMember>,
    /// Run as `--dry-run` (a session recorded with `--dry-run` is replayed as one anyway).
    #[serde(default, rename = "dry-run")]
    dry_run: bool,
    /// Ignored: a place for YAML anchors (`&primary {...}`) the responses refer to (`*primary`).
    #[serde(default, rename = "definitions")]
    _definitions: Option<serde::de::IgnoredAny>,
    expect: Expect,
}

/// A fleet member of a test case.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CaseMember {
    name: String,
    #[serde(default)]
    group: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Expect {
    outcome: String,
    #[serde(default)]
    reasons: Vec<String>,
    #[serde(default)]
    mutations: Option<Vec<CallMatch>>,
}

const OUTCOMES: [&str; 6] = ["pass", "warn", "fail", "succeeded", "rolled-back", "error"];

/// How one case went.
pub enum Verdict {
    /// The policy did what the case expects.
    Passed,
    /// It did not: what differed.
    Failed(String),
    /// The test file itself is wrong.
    Bad(String),
}

/// Runs test cases, one engine (and its compiled components) shared by all.
pub struct CaseRunner {
    engine: Arc<Engine>,
    runtime: tokio::runtime::Runtime,
}

impl CaseRunner {
    /// A runner whose engine caches compiled components in `cache_dir`.
    pub fn new(cache_dir: Option<PathBuf>) -> Result<Self, Failure> {
        let runtime = runtime()?;
        let engine = Arc::new(Engine::new(Limits::default(), cache_dir).map_err(|e| Failure::new(super::Exit::PolicyFailed, e.to_string()))?);
        Ok(CaseRunner { engine, runtime })
    }

    /// Run the case in `file`: the name it gives itself, if any, and how it went.
    pub fn run(&self, file: &Path) -> (Option<String>, Verdict) {
        match load_case(file) {
            Ok(case) => (case.name.clone(), self.runtime.block_on(run_case(&self.engine, file, case))),
            Err(why) => (None, Verdict::Bad(why)),
        }
    }
}

/// Every test file under `path` (or `path` itself), sorted.
pub fn find_cases(path: &Path) -> Result<Vec<PathBuf>, String> {
    if path.is_file() {
        return Ok(vec![path.to_path_buf()]);
    }
    if !path.is_dir() {
        return Err(format!("{}: no such file or directory", path.display()));
    }
    let mut found = Vec::new();
    let mut dirs = vec![path.to_path_buf()];
    while let Some(dir) = dirs.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().to_string();
            if path.is_dir() {
                // Build outputs and hidden directories hold no tests.
                if !name.starts_with('.') && name != "target" && name != "node_modules" {
                    dirs.push(path);
                }
            } else if name.ends_with(".test.yaml") || name.ends_with(".test.yml") {
                found.push(path);
            }
        }
    }
    found.sort();
    Ok(found)
}

fn load_case(file: &Path) -> Result<Case, String> {
    let text = std::fs::read_to_string(file).map_err(|e| format!("cannot read: {e}"))?;
    // Parsed as written first, so a mistake is reported with its line; then
    // again with YAML merge keys (`<<: *status`) applied, which canned states use.
    serde_yaml::from_str::<Case>(&text).map_err(|e| e.to_string())?;
    let mut value: serde_yaml::Value = serde_yaml::from_str(&text).map_err(|e| e.to_string())?;
    value.apply_merge().map_err(|e| format!("merge keys (<<): {e}"))?;
    let case: Case = serde_yaml::from_value(value).map_err(|e| e.to_string())?;
    if !OUTCOMES.contains(&case.expect.outcome.as_str()) {
        return Err(format!("expect.outcome `{}` is not one of {}", case.expect.outcome, OUTCOMES.join(", ")));
    }
    match (&case.session, &case.responses) {
        (Some(_), Some(_)) => return Err("give `session` or `responses`, not both".into()),
        (None, None) => return Err("give a `session` to replay or canned `responses`".into()),
        (None, Some(responses)) => responses.iter().try_for_each(CannedResponse::check)?,
        (Some(_), None) if case.clock.is_some() => return Err("`clock` is for canned responses; a session holds its own clock".into()),
        _ => {}
    }
    Ok(case)
}

/// A component named in a test file: a path relative to the file, or a
/// name, looked up first among the components the crate holding the file
/// built (wherever `CARGO_TARGET_DIR` puts them), then as `runner exec` does.
fn resolve(base: &Path, text: &str) -> String {
    // A reference is fetched by `load_policy`; an image layout's relative directory is the file's, like a path.
    if crate::distribution::is_reference(text) {
        return match text.strip_prefix("oci-layout:") {
            Some(dir) if Path::new(dir).is_relative() => format!("oci-layout:{}", base.join(dir).display()),
            _ => text.to_string(),
        };
    }
    let looks_like_path = text.contains('/') || text.ends_with(".wasm");
    if looks_like_path {
        return if Path::new(text).is_relative() { base.join(text).display().to_string() } else { text.to_string() };
    }
    let mut search = built_beside(base);
    search.extend(default_search_path());
    locate(text, &search).map(|found| found.display().to_string()).unwrap_or_else(|_| text.to_string())
}

/// Where the crates enclosing `dir` put their wasm32-wasip2 builds, release first.
fn built_beside(dir: &Path) -> Vec<PathBuf> {
    let mut targets: Vec<PathBuf> = std::env::var_os("CARGO_TARGET_DIR").map(PathBuf::from).into_iter().collect();
    let absolute = std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf());
    targets.extend(absolute.ancestors().filter(|d| d.join("Cargo.toml").is_file()).map(|d| d.join("target")));
    targets.iter().flat_map(|t| ["release", "debug"].map(|profile| t.join("wasm32-wasip2").join(profile))).collect()
}

/// Milliseconds since the epoch from a number or an RFC 3339 timestamp.
fn clock_start(value: Option<&Value>) -> Result<u64, String> {
    match value {
        None => Ok(CANNED_EPOCH_MS),
        Some(Value::Number(n)) => n.as_u64().ok_or_else(|| format!("clock `{n}` is not milliseconds since the epoch")),
        Some(Value::String(text)) => humantime::parse_rfc3339_weak(text)
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_millis() as u64)
            .ok_or_else(|| format!("clock `{text}` is not a timestamp (2026-11-21T20:00:00Z) or milliseconds")),
        Some(other) => Err(format!("clock `{other}` is not a timestamp or milliseconds")),
    }
}

async fn run_case(engine: &Arc<Engine>, file: &Path, case: Case) -> Verdict {
    let base = file.parent().unwrap_or(Path::new("."));
    let session = match (&case.session, &case.responses) {
        (Some(path), _) => SessionFile::load(&base.join(path)).map(Session::replay),
        (None, Some(responses)) => clock_start(case.clock.as_ref()).map(|clock| Session::canned(responses.clone(), clock)),
        (None, None) => Err("give a `session` to replay or canned `responses`".into()),
    };
    let session = match session {
        Ok(session) => session,
        Err(why) => return Verdict::Bad(why),
    };
    let overrides: Vec<String> = case.gates.iter().map(|(slot, gate)| format!("{slot}={}", resolve(base, gate))).collect();
    let pattern_overrides: Vec<String> = case.patterns.iter().map(|(slot, pattern)| format!("{slot}={}", resolve(base, pattern))).collect();
    let builder = RunBuilder::new(resolve(base, &case.component))
        .config_object(case.config)
        .gates(overrides)
        .patterns(pattern_overrides)
        .temporary_attachments()
        .offline("test")
        .dry_run(case.dry_run)
        .session(session)
        .without_journal()
        .engine(engine.clone());
    let mut builder = match case.allow {
        Some(texts) => builder.allow_listed(texts),
        None => builder.allow_requested(),
    };
    if !case.fleet.is_empty() {
        // No member is reached: each gets the same empty target.
        let target = match crate::target::Target::parse("", file) {
            Ok(target) => target,
            Err(why) => return Verdict::Bad(format!("fleet: {why}")),
        };
        let members = case
            .fleet
            .into_iter()
            .map(|m| crate::target::Member { group: m.group.unwrap_or_else(|| m.name.clone()), name: m.name, labels: m.labels, target: target.clone() })
            .collect();
        builder = builder.fleet(crate::target::Fleet { path: file.to_path_buf(), members, traffic: Vec::new() });
    }
    let run = match builder.build().await {
        Ok(run) => run,
        Err(failure) => return Verdict::Bad(failure.message),
    };
    let (outcome, reasons) = match run.answer(run.host()).await {
        Ok(ending) => (ending.outcome, ending.reasons),
        Err(error) => ("error", vec![error.to_string()]),
    };
    judge(&case.expect, run.session(), outcome, &reasons)
}

/// Compare what happened with what the case expects.
fn judge(expect: &Expect, session: &Session, outcome: &str, reasons: &[String]) -> Verdict {
    if let Some(divergence) = session.divergence() {
        return Verdict::Failed(format!("replay: {divergence}"));
    }
    let unused = session.unused();
    if let Some(first) = unused.first() {
        return Verdict::Failed(format!("{} recorded call(s) were never asked for, from {}", unused.len(), first.describe()));
    }
    if outcome != expect.outcome {
        return Verdict::Failed(format!("expected {}, got {outcome} ({})", expect.outcome, reasons.join("; ")));
    }
    if let Some(missing) = expect.reasons.iter().find(|want| !reasons.iter().any(|r| r.contains(want.as_str()))) {
        return Verdict::Failed(format!("no reason contains `{missing}` (reasons: {})", reasons.join("; ")));
    }
    if let Some(expected) = &expect.mutations {
        let made = session.mutations();
        for (i, want) in expected.iter().enumerate() {
            let Some(call) = made.get(i) else {
                return Verdict::Failed(format!("mutation {}: expected {}, but only {} mutating call(s) were made", i + 1, want.describe(), made.len()));
            };
            if !want.fits(call) {
                return Verdict::Failed(format!("mutation {}: expected {}, got {}", i + 1, want.describe(), call.describe()));
            }
        }
        if let Some(extra) = made.get(expected.len()) {
            return Verdict::Failed(format!("{} mutating call(s) expected, {} made; the next was {}", expected.len(), made.len(), extra.describe()));
        }
    }
    Verdict::Passed
}

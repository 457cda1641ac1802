//! The record of a finished run: how it ended, what it did, what the probe
//! saw, and the exit code all of that earns.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use serde_json::{Value, json};

use super::Exit;
use crate::imports::{RunRecord, code_name};
use crate::policy::Policy;
use crate::probe::ProbeSummary;
use crate::probe::http::HttpProbeSummary;
use crate::wit::pattern::{PatternResult, PatternStatus};
use crate::wit::{Error, ErrorCode, Outcome, Verdict};

/// How the component answered, before the run's record adjusts the exit code.
#[derive(Debug, Clone)]
pub struct Ending {
    /// The exit code the answer earns on its own.
    pub exit: Exit,
    /// `pass`, `warn`, `fail`, `succeeded`, `rolled-back`, `error` or `stopped`.
    pub outcome: &'static str,
    /// The gate's reasons, the pattern's summary, or the error.
    pub reasons: Vec<String>,
    /// A gate's evidence (JSON where it parses); null otherwise.
    pub evidence: Value,
    /// The error the component returned, when it returned one.
    pub error: Option<Error>,
    /// What the sandbox stopped the run for (deadline, memory, output or
    /// journal bounds, a trap, a lost journal), when it stopped it.
    pub stopped: Option<String>,
}

impl Ending {
    /// A gate's verdict: a failing gate is the policy failing (exit 1).
    pub fn verdict(verdict: Verdict) -> Self {
        let (exit, outcome) = match verdict.outcome {
            Outcome::Pass => (Exit::Success, "pass"),
            Outcome::Warn => (Exit::Success, "warn"),
            Outcome::Fail => (Exit::PolicyFailed, "fail"),
        };
        let evidence = serde_json::from_str(&verdict.evidence).unwrap_or(Value::String(verdict.evidence));
        Ending { exit, outcome, reasons: verdict.reasons, evidence, error: None, stopped: None }
    }

    /// A pattern's result: a rollback is the policy failing (exit 1).
    pub fn pattern(result: PatternResult) -> Self {
        let (exit, outcome) = match result.status {
            PatternStatus::Succeeded => (Exit::Success, "succeeded"),
            PatternStatus::RolledBack => (Exit::PolicyFailed, "rolled-back"),
        };
        Ending { exit, outcome, reasons: vec![result.summary], evidence: Value::Null, error: None, stopped: None }
    }

    /// An error the component returned instead of an answer.
    pub fn error(error: Error) -> Self {
        // A capability the sandbox refused turns this into exit 3 once the run's
        // record is read; a `denied` from the cluster itself (RBAC) is the policy failing.
        let exit = match error.code {
            ErrorCode::Unavailable => Exit::Unavailable,
            ErrorCode::Invalid => Exit::BadInput,
            _ => Exit::PolicyFailed,
        };
        let reasons = vec![format!("{}: {}", code_name(error.code), error.message)];
        Ending { exit, outcome: "error", reasons, evidence: Value::Null, error: Some(error), stopped: None }
    }

    /// The sandbox stopped the component (exit 3) before it answered: `why` names the stop.
    pub fn stopped(why: String) -> Self {
        Ending { exit: Exit::Sandbox, outcome: "stopped", reasons: vec![why.clone()], evidence: Value::Null, error: None, stopped: Some(why) }
    }

    /// The run is stopped after the component answered (its journal was
    /// lost): whatever it answered, exit 3, and the answer stays in the reasons.
    pub fn stop(&mut self, why: String) {
        if self.stopped.is_none() {
            self.exit = Exit::Sandbox;
            self.outcome = "stopped";
            self.reasons.push(why.clone());
            self.stopped = Some(why);
        }
    }

    /// Read the run's record and the probe's summary into the exit code: a
    /// failure caused by a call the sandbox refused is exit 3. A backend out
    /// of reach makes it exit 4 only when no verdict was reached: the
    /// component returned an error, or a gate it ran did. A verdict stays
    /// exit 1 whatever the policy observed to reach it: a gate that
    /// correctly fails because a standby is down, and the pattern it stops,
    /// are the policy's answer, not an outage. A lost acknowledged write
    /// fails the run whatever the policy said.
    pub(super) fn settle(&mut self, record: &RunRecord, probes: &[ProbeSummary]) {
        if self.exit == Exit::PolicyFailed {
            if !record.denied.is_empty() {
                self.exit = Exit::Sandbox;
            } else if !record.unavailable.is_empty() && (self.outcome == "error" || record.gates.iter().any(|g| g.outcome == "error")) {
                self.exit = Exit::Unavailable;
            }
        }
        for summary in probes.iter().filter(|s| !s.no_loss()) {
            // A stop stays exit 3: the loss is in the reasons and the probe's figures.
            if self.stopped.is_none() {
                self.exit = Exit::PolicyFailed;
            }
            self.reasons.push(match &summary.verify_error {
                Some(e) => format!("write probe {}: the acknowledged writes could not be checked: {e}", summary.what),
                None => format!("write probe {}: {} acknowledged write(s) LOST, e.g. {}", summary.what, summary.lost_writes, summary.lost_sample.join(", ")),
            });
        }
    }
}

/// A finished run: the policy, how it ended, what it did, what the probe saw.
pub struct RunReport {
    /// The policy that ran.
    pub policy: Policy,
    /// How it ended, with the exit code settled.
    pub ending: Ending,
    /// Steps, gates, metrics, the dry run's plan, refused and unreachable calls.
    pub record: RunRecord,
    /// Where the journal was written, if anywhere.
    pub journal: Option<PathBuf>,
    /// Whether mutations were answered from the plan instead of performed.
    pub dry_run: bool,
    /// From the start of assembling the run to its end.
    pub wall: Duration,
    /// Whether the compiled component came from the cache.
    pub from_cache: bool,
    /// Each write probe's figures, in the order they were asked for.
    pub probes: Vec<ProbeSummary>,
    /// Each HTTP probe's figures (`--http-probe`), in the order they were
    /// asked for; a failed request fails nothing by itself.
    pub http_probes: Vec<HttpProbeSummary>,
    /// Who ran what, where, allowed to do what: the journal's first line.
    pub header: Value,
    /// When the run happened: what a report for a change ticket names besides the header.
    pub run: RunFacts,
}

/// When a run happened, besides what its header says (who, where, with
/// which configuration and allowances).
#[derive(Debug, Clone)]
pub struct RunFacts {
    /// The run's id, as its journal lines carry it.
    pub id: String,
    /// When the run began (its steps' `at_ms` count from here).
    pub started_at: SystemTime,
    /// When it ended.
    pub ended_at: SystemTime,
    /// When the write probe's timeline began, in ms from the run's start.
    pub probe_at_ms: f64,
}

impl RunReport {
    /// The exit code the run earns.
    pub fn exit(&self) -> Exit {
        self.ending.exit
    }

    /// The first write probe's figures (the report's `probe`, as before
    /// probes could be several).
    pub fn probe(&self) -> Option<&ProbeSummary> {
        self.probes.first()
    }

    /// `succeeded`, `rolled-back`, `pass`, `fail`, `error`, ...
    pub fn outcome(&self) -> &str {
        self.ending.outcome
    }

    /// The report as JSON (`--output json`).
    pub fn json(&self) -> Value {
        let m = &self.policy.manifest;
        let mut policy = json!({"name": m.name, "version": m.version, "world": m.world, "digest": self.policy.digest, "path": self.policy.path});
        if let Some(origin) = &self.policy.origin {
            policy["origin"] = json!(origin);
        }
        json!({
            "run": self.header,
            "run_id": self.run.id,
            "target": self.header["target"]["name"],
            "policy": policy,
            "outcome": self.ending.outcome,
            "resumed": self.header["resumed"].is_object(),
            "exit_code": self.ending.exit as u8,
            "reasons": self.ending.reasons,
            "evidence": self.ending.evidence,
            "error": self.ending.error.as_ref().map(|e| json!({"code": code_name(e.code), "message": e.message})),
            "stopped": self.ending.stopped,
            "dry_run": self.dry_run,
            "plan": self.record.plan,
            "steps": self.record.steps,
            "gates": self.record.gates,
            "patterns": self.record.patterns,
            "attachments": self.record.attachments,
            "metrics": self.record.metrics,
            "denied": self.record.denied,
            "unavailable": self.record.unavailable,
            "journal": self.journal,
            "probe": self.probe(),
            "probes": self.probes,
            "http_probes": self.http_probes,
            "wall_ms": self.wall.as_secs_f64() * 1000.0,
            "compiled_from_cache": self.from_cache,
        })
    }
}

/// `sha256:0123456789ab`: enough to recognise a digest.
pub fn short_digest(digest: &str) -> &str {
    &digest[..digest.len().min("sha256:".len() + 12)]
}

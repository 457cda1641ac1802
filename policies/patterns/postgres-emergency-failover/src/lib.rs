//! Pattern `postgres-emergency-failover`: the primary is lost or must go now.
//! Promote the standby that holds the most WAL, point the Service at it,
//! prove it takes writes, and make every other member follow it.

use kube_common::{POD_NAME_LABEL, Pod, service_ref};
use pg_common::ops::{self, Ctx, Settings};
use pg_common::pg::{self, CAUGHT_UP_SQL, State};
use pg_common::rows;
use pg_common::text::format_lsn;
use runner_sdk::Approval;
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use serde::{Deserialize, Serialize};

runner_sdk::manifest!(include_str!("../manifest.toml"));

/// The Service annotation that records a failover's progress (a [`Record`] as JSON).
const ANNOTATION: &str = "runner.dev/emergency-failover";

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    primary: String,
    candidate: String,
    #[serde(flatten)]
    pg: Settings,
}

/// How far a failover got: the last step boundary written to the Service.
/// Whether the old primary is fenced and whether the candidate was promoted
/// are read from the members themselves, so they need no phase.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
enum Phase {
    Announced,
    Chosen,
    Prepared,
    Stopped,
    Repointed,
    Verified,
    Done,
    RolledBack,
}

impl Phase {
    fn finished(self) -> bool {
        matches!(self, Phase::Done | Phase::RolledBack)
    }

    /// As written in the annotation.
    fn name(self) -> String {
        serde_json::to_value(self).ok().and_then(|v| v.as_str().map(str::to_string)).unwrap_or_default()
    }
}

/// What the annotation holds: who failed, who takes over, how far it got.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Record {
    failed: String,
    #[serde(default)]
    candidate: Option<String>,
    phase: Phase,
    since_ms: u64,
}

impl Record {
    /// The record on the Service, if any (an annotation written by an older
    /// version of this pattern is plain text and records nothing to resume).
    fn read(ctx: &Ctx) -> Result<Option<Record>, Error> {
        let svc =
            get_json(&service_ref(&ctx.set.namespace, &ctx.service)).map_err(|e| Error::new(e.code, format!("Service {}: {}", ctx.service, e.message)))?;
        Ok(svc["metadata"]["annotations"][ANNOTATION].as_str().and_then(|text| serde_json::from_str(text).ok()))
    }

    fn annotation(&self) -> Value {
        json!({"metadata": {"annotations": {ANNOTATION: serde_json::to_string(self).unwrap_or_default()}}})
    }

    fn describe(&self) -> String {
        format!(
            "{} -> {}, last step boundary recorded: {} (begun {} ms since the epoch)",
            self.failed,
            self.candidate.as_deref().unwrap_or("no candidate chosen yet"),
            self.phase.name(),
            self.since_ms
        )
    }
}

/// What became of the old primary.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Old {
    /// It did not answer.
    Unreachable,
    /// Fenced and still running as a primary (must be rewound after the promotion).
    Fenced,
    /// Made a standby and stopped; it comes back following the candidate.
    Stopped,
    /// It already was a standby.
    Standby,
}

/// The candidate: the configured member if it qualifies, else the member
/// with the most WAL, ties to the lowest ordinal; why not, when nobody qualifies.
fn pick(configured: &str, old: &str, states: &[(Pod, Result<State, Error>)]) -> Result<String, String> {
    let standbys: Vec<(String, Option<u64>)> = states
        .iter()
        .filter(|(p, s)| p.name != old && s.as_ref().is_ok_and(|s| s.in_recovery))
        .map(|(p, s)| (p.name.clone(), s.as_ref().ok().and_then(State::wal_position)))
        .collect();
    if !configured.is_empty() {
        return if standbys.iter().any(|(n, _)| n == configured) {
            Ok(configured.to_string())
        } else {
            Err(format!("candidate {configured} is not a reachable standby"))
        };
    }
    pg::most_advanced(&standbys).ok_or_else(|| {
        let why: Vec<String> = states
            .iter()
            .filter(|(p, _)| p.name != old)
            .map(|(p, s)| {
                format!(
                    "{}: {}",
                    p.name,
                    s.as_ref().map_or_else(|e| e.message.clone(), |s| if s.in_recovery { "no WAL position".into() } else { "not a standby".into() })
                )
            })
            .collect();
        format!("no standby to promote ({})", why.join("; "))
    })
}

fn state_of<'s>(states: &'s [(Pod, Result<State, Error>)], member: &str) -> Option<&'s State> {
    states.iter().find(|(p, _)| p.name == member).and_then(|(_, s)| s.as_ref().ok())
}

struct Failover<'a> {
    ctx: Ctx,
    cfg: &'a Config,
    old: String,
    /// The progress so far, as the Service records it.
    record: Record,
    /// Whether this run picks up an interrupted one (its steps skip what is done).
    resumed: bool,
    cascaded: Vec<String>,
    fenced: bool,
    stopped: bool,
    promoted: bool,
}

impl Failover<'_> {
    /// Record `phase` on the Service (with `extra` merged into the same patch).
    fn mark(&mut self, phase: Phase, extra: Option<Value>) -> Result<(), Error> {
        self.record.phase = phase;
        let mut body = self.record.annotation();
        if let (Some(Value::Object(extra)), Some(map)) = (extra, body.as_object_mut()) {
            map.extend(extra);
        }
        self.ctx.patch(&service_ref(&self.ctx.set.namespace, &self.ctx.service), &body).map(|_| ())
    }

    fn at_least(&self, phase: Phase) -> bool {
        self.resumed && self.record.phase >= phase
    }

    fn run(&mut self, states: &[(Pod, Result<State, Error>)]) -> Result<String, Error> {
        let old = self.old.clone();
        if !self.resumed {
            // An interrupted failover was approved before its first change: a re-run just continues.
            self.approve(states)?;
            let service = self.ctx.service.clone();
            step("announce", &format!("mark Service {service} as failing over"), || self.mark(Phase::Announced, None))?;
        }
        let cfg = self.cfg;
        // Clients cannot write from here on (the primary is gone or about to be fenced).
        self.ctx.writes_paused.set(!self.at_least(Phase::Verified));
        let recorded = self.record.candidate.clone().filter(|c| state_of(states, c).is_some());
        let already_promoted = recorded.as_deref().and_then(|c| state_of(states, c)).is_some_and(|s| !s.in_recovery);
        let mut old_role = match state_of(states, &old) {
            Some(s) if s.in_recovery => Old::Standby,
            Some(_) => Old::Fenced,
            None if self.at_least(Phase::Stopped) => Old::Stopped,
            None => Old::Unreachable,
        };
        let mut old_lsn = None;
        if old_role == Old::Fenced {
            let ctx = &self.ctx;
            let was_fenced = state_of(states, &old).is_some_and(|s| s.read_only);
            let fence = || -> Result<Option<String>, Error> {
                if !was_fenced {
                    ctx.fence(&old)?;
                }
                Ok(pg::query(&old, "SELECT pg_current_wal_lsn()::text AS lsn", &[])?.first().and_then(|r| rows::text(r, "lsn").map(str::to_string)))
            };
            let fenced = if was_fenced {
                report::log(report::Level::Info, &format!("{old} is fenced already (default_transaction_read_only = on)"));
                fence()
            } else {
                step(&format!("fence {old}"), &format!("stop writes on {old}"), fence)
            };
            self.fenced = true;
            match fenced {
                Ok(lsn) => old_lsn = lsn.filter(|_| !already_promoted),
                Err(e) if e.code == ErrorCode::Denied => return Err(e),
                Err(e) => {
                    // It answered a moment ago; whatever it does now, it was asked to be read only.
                    report::log(report::Level::Warn, &format!("{old}: fencing failed ({}); treating it as unreachable", e.message));
                    old_role = Old::Unreachable;
                }
            }
        }

        let candidate = if let (Some(candidate), true) =
            (&recorded, already_promoted || state_of(states, recorded.as_deref().unwrap_or("")).is_some_and(|s| s.in_recovery))
        {
            report::log(report::Level::Info, &format!("candidate {candidate}, as recorded on Service {}", self.ctx.service));
            candidate.clone()
        } else {
            if self.at_least(Phase::Chosen) {
                // The recorded candidate is gone: choose again and redo what depended on it.
                report::log(
                    report::Level::Warn,
                    &format!("the recorded candidate {} is not a reachable standby; choosing again", self.record.candidate.as_deref().unwrap_or("?")),
                );
                self.record.phase = Phase::Announced;
            }
            step("choose", "pick the standby with the most WAL", || {
                let candidate = pick(&cfg.candidate, &old, states).map_err(|why| Error::new(ErrorCode::NotFound, why))?;
                let position = states.iter().find(|(p, _)| p.name == candidate).and_then(|(_, s)| s.as_ref().ok().and_then(State::wal_position));
                report::log(report::Level::Info, &format!("candidate {candidate} (WAL up to {})", position.map(format_lsn).unwrap_or_else(|| "?".into())));
                self.record.candidate = Some(candidate.clone());
                self.mark(Phase::Chosen, None)?;
                Ok(candidate)
            })?
        };
        if let Some(lsn) = &old_lsn
            && !self.wait_for_catch_up(&candidate, lsn)?
        {
            old_lsn = None;
        }
        let cand_pod = self.ctx.pod_or_placeholder(&candidate)?;
        let others: Vec<Pod> =
            states.iter().filter(|(p, s)| p.name != old && p.name != candidate && s.as_ref().is_ok_and(|s| s.in_recovery)).map(|(p, _)| p.clone()).collect();
        if self.at_least(Phase::Prepared) || already_promoted {
            self.cascaded = others.iter().map(|p| p.name.clone()).collect();
        } else {
            let mut cascaded = Vec::new();
            let prepared = step(&format!("prepare {candidate}"), &format!("slots on {candidate}; other standbys stream from it"), || {
                // The others get theirs as they are re-pointed.
                self.ctx.ensure_slot(&candidate, &old)?;
                for pod in &others {
                    self.ctx.point_at_then(&pod.name, &cand_pod, true, || cascaded.push(pod.name.clone()))?;
                }
                self.mark(Phase::Prepared, None)
            });
            self.cascaded = cascaded;
            prepared?;
        }
        if self.at_least(Phase::Stopped) {
            self.stopped = true;
        } else if old_role == Old::Fenced && old_lsn.is_some() {
            let uid = self.ctx.pod(&old)?.map(|p| p.uid).unwrap_or_default();
            step(&format!("stop {old}"), &format!("make {old} a standby of {candidate} and stop it"), || {
                let ctx = &self.ctx;
                ctx.exec(&old, &ctx.standby_command("config", &old, &cand_pod))?;
                ctx.set.delete_pod(&old)?;
                ctx.wait_pod_replaced(&old, &uid, cfg.pg.stop_timeout)?;
                self.mark(Phase::Stopped, None)
            })?;
            self.stopped = true;
            old_role = Old::Stopped;
        }
        let ctx = &self.ctx;
        if !already_promoted {
            step(&format!("promote {candidate}"), &format!("promote {candidate}"), || ctx.promote(&candidate))?;
        } else if ctx.finish_promotion(&candidate)? {
            report::log(report::Level::Info, &format!("{candidate}: finished its promotion (fence lifted, standby settings forgotten)"));
        }
        self.promoted = true;
        if !self.at_least(Phase::Repointed) {
            let service = self.ctx.service.clone();
            let selector = json!({"spec": {"selector": {POD_NAME_LABEL: candidate}}});
            step(&format!("repoint-service {candidate}"), &format!("Service {service} selects {candidate}"), || self.mark(Phase::Repointed, Some(selector)))?;
        }
        if !self.at_least(Phase::Verified) {
            step(&format!("verify-writes {candidate}"), &format!("commit a row on {candidate}"), || {
                self.ctx.verify_writes(&candidate)?;
                self.mark(Phase::Verified, None)
            })?;
        }
        let ctx = &self.ctx;
        ctx.writes_paused.set(false);

        let mut rejoined = Vec::new();
        let mut missing = Vec::new();
        for pod in &others {
            match step(&format!("rejoin {}", pod.name), &format!("{} streams from {candidate}", pod.name), || ctx.ensure_following(&pod.name, &cand_pod)) {
                Ok(()) => rejoined.push(pod.name.clone()),
                Err(e) => missing.push(format!("{}: {}", pod.name, e.message)),
            }
        }
        let old_done = step(&format!("rejoin {old}"), &format!("{old} streams from {candidate}"), || self.rejoin_old(old_role, &cand_pod));
        match old_done {
            Ok(()) => rejoined.push(old.clone()),
            Err(e) => missing.push(format!("{old}: {}", e.message)),
        }
        let keep: Vec<String> = states.iter().map(|(p, _)| p.name.clone()).collect();
        if let Err(e) = ctx.drop_inactive_slots_if_any(&candidate, &keep) {
            report::log(report::Level::Warn, &e.message);
        }
        let summary = format!(
            "{}{candidate} promoted in place of {old}; Service {} selects it and it commits writes; following it: {}",
            if self.resumed { "resumed an interrupted failover: " } else { "" },
            ctx.service,
            if rejoined.is_empty() { "nobody".into() } else { rejoined.join(", ") }
        );
        if !missing.is_empty() {
            // The record stays at `verified`: a re-run retries the rejoins.
            return Err(Error::internal(format!("{summary}; NOT following it: {}", missing.join("; "))));
        }
        if self.record.phase != Phase::Done {
            self.mark(Phase::Done, None)?;
        }
        Ok(summary)
    }

    /// Before the first change (the announcement; then the fence and the
    /// promotion, which cannot be undone once clients write to the new
    /// primary): the operator approves the candidate [`pick`] chooses from
    /// `states`, as the `choose` step will. When nobody qualifies there is
    /// nothing to approve: `choose` fails and says why.
    fn approve(&self, states: &[(Pod, Result<State, Error>)]) -> Result<(), Error> {
        let old = &self.old;
        let Ok(candidate) = pick(&self.cfg.candidate, old, states) else { return Ok(()) };
        let service = &self.ctx.service;
        let summary = format!("promote {candidate} in place of failed primary {old} and point Service {service} at it");
        let wal = |name: &str| state_of(states, name).and_then(State::wal_position).map(format_lsn).unwrap_or_else(|| "?".into());
        let others: Vec<&str> = states
            .iter()
            .filter(|(p, s)| p.name != *old && p.name != candidate && s.as_ref().is_ok_and(|s| s.in_recovery))
            .map(|(p, _)| p.name.as_str())
            .collect();
        let old_now = match state_of(states, old) {
            Some(s) if s.in_recovery => format!("{old} answers as a standby: it is re-pointed to {candidate}"),
            Some(_) => format!(
                "{old} still answers as a primary: it is fenced (read only), {candidate} catches up with it, it gets standby settings and its Pod is deleted"
            ),
            None => format!("{old} does not answer: it is fenced if it comes back as a primary, then rewound to follow {candidate}"),
        };
        let details = [
            format!("members: {}", states.iter().map(|(p, _)| p.name.as_str()).collect::<Vec<_>>().join(", ")),
            format!("candidate {candidate} (WAL up to {}){}", wal(&candidate), if self.cfg.candidate.is_empty() { ", the standby with the most WAL" } else { ", as configured" }),
            old_now,
            format!(
                "{} re-pointed to stream from {candidate}; {candidate} promoted (it cannot be undone from here); Service {service} selects {candidate}; a write committed on it",
                if others.is_empty() { "no other standby".to_string() } else { others.join(", ") }
            ),
        ]
        .join("\n");
        match Approval::ask(&summary, &details)? {
            Approval::Approved => Ok(()),
            Approval::Declined => Err(Approval::declined(&summary)),
        }
    }

    /// Wait (bounded) until `candidate` replayed the fenced old primary's WAL
    /// up to `lsn`; false when it did not in time and is promoted anyway.
    fn wait_for_catch_up(&self, candidate: &str, lsn: &str) -> Result<bool, Error> {
        let old = &self.old;
        let caught = self.ctx.wait(&format!("{candidate} to replay {old}'s WAL up to {lsn}"), self.cfg.pg.catch_up_timeout, || {
            let rows = pg::query(candidate, CAUGHT_UP_SQL, &[lsn])?;
            let row = rows.first().cloned().unwrap_or_default();
            Ok(if rows::flag(&row, "caught_up") == Some(true) {
                Poll::Done(())
            } else {
                Poll::NotYet(format!("{candidate} replayed up to {}", rows::text(&row, "replay_lsn").unwrap_or("?")))
            })
        });
        match caught {
            Ok(()) => Ok(true),
            // Quorum commit acknowledged every commit only once a standby had it; what the
            // candidate lacks was never acknowledged, unless an unreachable standby holds it.
            Err(e) if e.code == ErrorCode::Timeout => {
                report::log(report::Level::Warn, &format!("{}; promoting {candidate} anyway, {old} will be rewound", e.message));
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Bring the old primary back as a standby of the new one, whatever state
    /// it is in, and confirm it streams; nothing is changed when it already does.
    fn rejoin_old(&self, role: Old, new: &Pod) -> Result<(), Error> {
        let ctx = &self.ctx;
        let old = &self.old;
        let following = pg::state(old).is_ok_and(|s| s.in_recovery) && {
            let ip = ctx.pod(old)?.and_then(|p| p.ip);
            ctx.streams_from(&new.name, old, ip.as_deref())?.is_some()
        };
        if !following {
            match role {
                Old::Stopped => {
                    ctx.wait_pod_ready(old, None, self.cfg.pg.rejoin_timeout)?;
                }
                Old::Fenced => ctx.rewind(old, new)?,
                Old::Standby => ctx.point_at(old, new, true)?,
                Old::Unreachable => {
                    let mut seen: Option<bool> = None;
                    ctx.wait(&format!("{old} to answer again"), self.cfg.pg.rejoin_timeout, || {
                        let state = pg::state(old)?;
                        if !state.in_recovery {
                            // Back as a primary beside the new one: fence it before anything else.
                            ctx.fence(old)?;
                        }
                        seen = Some(state.in_recovery);
                        Ok(Poll::Done(()))
                    })?;
                    match seen {
                        Some(false) => ctx.rewind(old, new)?,
                        Some(true) => ctx.point_at(old, new, true)?,
                        None => {}
                    }
                }
            }
            ctx.ensure_following(old, new)?;
        }
        ctx.drop_inactive_slots_if_any(old, &[])?;
        ctx.unfence_if_fenced(old)
    }

    fn rollback(&mut self, failure: &Error) -> Result<PatternResult, Error> {
        let restored = step("rollback", "restore a single writable primary behind the Service", || -> Result<String, Error> {
            let ctx = &self.ctx;
            if !self.promoted && !self.stopped && self.fenced {
                ctx.unfence(&self.old)?;
                let old_pod = ctx.pod_or_placeholder(&self.old)?;
                for other in &self.cascaded {
                    ctx.point_at(other, &old_pod, true)?;
                }
                if ctx.service_target()?.as_deref() != Some(self.old.as_str()) {
                    ctx.repoint_service(&self.old)?;
                }
                return Ok(format!(
                    "nothing was promoted: fence on {} lifted, {} stream from it again",
                    self.old,
                    if self.cascaded.is_empty() { "no standby had to".into() } else { self.cascaded.join(", ") }
                ));
            }
            let (primary, notes) = ops::recover(ctx, &self.old)?;
            Ok(format!("{primary} is the primary behind Service {}: {}", ctx.service, notes.join("; ")))
        });
        match restored {
            Ok(summary) => {
                // A re-run starts afresh instead of resuming what was undone.
                if let Err(e) = self.mark(Phase::RolledBack, None) {
                    report::log(report::Level::Warn, &format!("could not record the rollback on Service {}: {}", self.ctx.service, e.message));
                }
                Ok(PatternResult::rolled_back(format!("{}: {}. {summary}", failure.code, failure.message)))
            }
            Err(e) => Err(Error::new(failure.code, format!("{}; rollback failed too: {}", failure.message, e.message))),
        }
    }
}

/// The interrupted failover this run picks up, if any: the record on the
/// Service, unless it is finished (a finished one is picked up only to
/// check it, when `primary` names its failed member and its candidate is
/// the primary). A different `primary` while one is unfinished is refused.
fn to_resume(record: Option<Record>, configured: &str, states: &[(Pod, Result<State, Error>)]) -> Result<Option<Record>, Error> {
    let Some(record) = record else { return Ok(None) };
    if record.phase.finished() {
        let promoted = record.candidate.as_deref().and_then(|c| state_of(states, c)).is_some_and(|s| !s.in_recovery);
        return Ok((record.phase == Phase::Done && configured == record.failed && promoted).then_some(record));
    }
    if !configured.is_empty() && configured != record.failed {
        return Err(Error::new(
            ErrorCode::Conflict,
            format!(
                "an interrupted failover is recorded ({}); re-run without `primary` or with primary={} to finish it first; nothing was changed",
                record.describe(),
                record.failed
            ),
        ));
    }
    Ok(Some(record))
}

struct EmergencyFailover;

impl runner_sdk::pattern::Guest for EmergencyFailover {
    fn run(config: String) -> Result<PatternResult, Error> {
        let cfg: Config = parse_config(&config)?;
        let ctx = Ctx::new(&cfg.pg)?;
        let recorded = Record::read(&ctx)?;
        // Said first, before anything else is read or done.
        match &recorded {
            Some(r) if !r.phase.finished() => {
                report::log(report::Level::Info, &format!("resuming an interrupted failover: {}; completing it from the cluster's state", r.describe()))
            }
            Some(r) if r.phase == Phase::Done && r.failed == cfg.primary => report::log(
                report::Level::Info,
                &format!("the failover of {} is recorded as done; checking that every member follows its new primary", r.failed),
            ),
            _ => {}
        }
        let (old, states, resume) = step("discover", "find the failed primary and every member's state", || {
            let pods = ctx.pods()?;
            let states = ops::states(&pods);
            let resume = to_resume(recorded.clone(), &cfg.primary, &states)?;
            let old = if let Some(r) = &resume {
                r.failed.clone()
            } else if !cfg.primary.is_empty() {
                cfg.primary.clone()
            } else if let Some(target) = ctx.service_target()? {
                target
            } else {
                pg::primary_candidates("", &pods, None).into_iter().next().ok_or_else(|| {
                    Error::new(
                        ErrorCode::NotFound,
                        format!("Service {} selects no member by {POD_NAME_LABEL} and no Pod is labelled role=primary; set config `primary`", cfg.pg.service),
                    )
                })?
            };
            let taking_over = resume.as_ref().and_then(|r| r.candidate.as_deref());
            let others: Vec<&str> = states
                .iter()
                .filter(|(p, s)| p.name != old && Some(p.name.as_str()) != taking_over && s.as_ref().is_ok_and(|s| !s.in_recovery))
                .map(|(p, _)| p.name.as_str())
                .collect();
            if !others.is_empty() {
                return Err(Error::new(
                    ErrorCode::Conflict,
                    format!(
                        "{} is already a primary beside {old}; nothing was changed (run postgres-ferris-wheel's rollback logic or fix by hand)",
                        others.join(" and ")
                    ),
                ));
            }
            for (pod, state) in &states {
                let what = match state {
                    Ok(s) if !s.in_recovery => format!(
                        "primary, WAL at {}{}",
                        s.current_lsn.map(format_lsn).unwrap_or_default(),
                        if s.read_only { ", fenced (read only)" } else { "" }
                    ),
                    Ok(s) => format!("standby, WAL receiver {}", s.receiver.as_deref().unwrap_or("stopped")),
                    Err(e) => format!("not answering: {}", e.message),
                };
                report::log(report::Level::Info, &format!("{}: {what}", pod.name));
            }
            Ok((old, states, resume))
        })?;
        let resumed = resume.is_some();
        let record = resume.unwrap_or_else(|| Record { failed: old.clone(), candidate: None, phase: Phase::Announced, since_ms: clock::now() });
        let mut failover = Failover { ctx, cfg: &cfg, old, record, resumed, cascaded: Vec::new(), fenced: false, stopped: false, promoted: false };
        match failover.run(&states) {
            Ok(summary) => Ok(PatternResult::succeeded(format!("{summary}{}", failover.ctx.dry.summary_note()))),
            Err(e) if Approval::was_declined(&e) => Ok(PatternResult::rolled_back(format!("{}; nothing was changed", e.message))),
            // The failover itself happened; what is missing is named.
            Err(e) if failover.promoted && e.code == ErrorCode::Internal && e.message.contains("NOT following") => Err(e),
            Err(e) if !failover.fenced && !failover.promoted && failover.cascaded.is_empty() && !failover.stopped => Err(e),
            Err(e) => failover.rollback(&e),
        }
    }
}

runner_sdk::export_pattern!(EmergencyFailover);

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str) -> Pod {
        Pod { name: name.into(), ..Default::default() }
    }

    fn standby(receive: u64, replay: u64) -> Result<State, Error> {
        Ok(State { in_recovery: true, receive_lsn: Some(receive), replay_lsn: Some(replay), ..Default::default() })
    }

    #[test]
    fn promotes_the_standby_with_the_most_wal() {
        let states = vec![
            (pod("pg-0"), Err(Error::new(ErrorCode::Unavailable, "pg-0: connection refused"))),
            (pod("pg-1"), standby(100, 90)),
            (pod("pg-2"), standby(80, 120)),
            (pod("pg-3"), Ok(State { in_recovery: false, current_lsn: Some(500), ..Default::default() })),
        ];
        assert_eq!(pick("", "pg-0", &states).as_deref(), Ok("pg-2"));
        assert_eq!(pick("pg-1", "pg-0", &states).as_deref(), Ok("pg-1"));
        assert_eq!(pick("pg-3", "pg-0", &states), Err("candidate pg-3 is not a reachable standby".to_string()));
        let none = vec![(pod("pg-0"), standby(1, 1)), (pod("pg-1"), Err(Error::new(ErrorCode::Unavailable, "pg-1: down")))];
        assert_eq!(pick("", "pg-0", &none), Err("no standby to promote (pg-1: pg-1: down)".to_string()));
    }

    fn record(phase: Phase) -> Record {
        Record { failed: "pg-0".into(), candidate: Some("pg-1".into()), phase, since_ms: 7 }
    }

    #[test]
    fn the_record_reads_back_as_written_and_names_its_phase() {
        let written = record(Phase::Prepared);
        let body = written.annotation();
        let text = body["metadata"]["annotations"][ANNOTATION].as_str().unwrap();
        assert_eq!(text, r#"{"failed":"pg-0","candidate":"pg-1","phase":"prepared","since-ms":7}"#);
        assert_eq!(serde_json::from_str::<Record>(text).unwrap(), written);
        assert!(written.describe().contains("last step boundary recorded: prepared"));
        assert!(Phase::Announced < Phase::Chosen && Phase::Stopped < Phase::Repointed && Phase::Verified < Phase::Done);
    }

    #[test]
    fn only_an_unfinished_failover_is_resumed_and_a_different_primary_is_refused() {
        let promoted = vec![(pod("pg-0"), standby(5, 5)), (pod("pg-1"), Ok(State { in_recovery: false, ..Default::default() }))];
        assert_eq!(to_resume(None, "", &promoted).unwrap(), None);
        assert_eq!(to_resume(Some(record(Phase::Chosen)), "", &promoted).unwrap(), Some(record(Phase::Chosen)));
        assert_eq!(to_resume(Some(record(Phase::Chosen)), "pg-0", &promoted).unwrap(), Some(record(Phase::Chosen)));
        let refused = to_resume(Some(record(Phase::Chosen)), "pg-2", &promoted).unwrap_err();
        assert_eq!(refused.code, ErrorCode::Conflict);
        assert!(refused.message.contains("primary=pg-0"), "{}", refused.message);
        // Done: checked again only when `primary` names it and its candidate is the primary.
        assert_eq!(to_resume(Some(record(Phase::Done)), "pg-0", &promoted).unwrap(), Some(record(Phase::Done)));
        assert_eq!(to_resume(Some(record(Phase::Done)), "", &promoted).unwrap(), None);
        let demoted = vec![(pod("pg-0"), Ok(State { in_recovery: false, ..Default::default() })), (pod("pg-1"), standby(5, 5))];
        assert_eq!(to_resume(Some(record(Phase::Done)), "pg-0", &demoted).unwrap(), None);
        assert_eq!(to_resume(Some(record(Phase::RolledBack)), "pg-0", &promoted).unwrap(), None);
    }

    #[test]
    fn ties_go_to_the_lowest_ordinal() {
        let states = vec![(pod("pg-0"), standby(5, 5)), (pod("pg-1"), standby(7, 7)), (pod("pg-2"), standby(7, 7))];
        assert_eq!(pick("", "pg-0", &states).as_deref(), Ok("pg-1"));
    }
}

//! Pattern `postgres-emergency-failover`: the primary is lost or must go now.
//! Promote the standby that holds the most WAL, point the Service at it,
//! prove it takes writes, and make every other member follow it.

use kube_common::{POD_NAME_LABEL, Pod, service_ref};
use pg_common::ops::{self, Ctx, Settings};
use pg_common::pg::{self, CAUGHT_UP_SQL, State};
use pg_common::rows;
use pg_common::text::format_lsn;
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

const ANNOTATION: &str = "runner.dev/emergency-failover";

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    primary: String,
    candidate: String,
    #[serde(flatten)]
    pg: Settings,
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

struct Failover<'a> {
    ctx: Ctx,
    cfg: &'a Config,
    old: String,
    cascaded: Vec<String>,
    fenced: bool,
    stopped: bool,
    promoted: bool,
}

impl Failover<'_> {
    fn run(&mut self, states: &[(Pod, Result<State, Error>)]) -> Result<String, Error> {
        let ctx = &self.ctx;
        let cfg = self.cfg;
        let old = self.old.clone();
        let body = json!({"metadata": {"annotations": {ANNOTATION: format!("{old} failed over at {} ms since the epoch", clock::now())}}});
        step("announce", &format!("mark Service {} as failing over", ctx.service), || ctx.patch(&service_ref(&ctx.set.namespace, &ctx.service), &body))?;

        // Clients cannot write from here on (the primary is gone or about to be fenced).
        ctx.writes_paused.set(true);
        let old_state = states.iter().find(|(p, _)| p.name == old).map(|(_, s)| s.clone());
        let mut old_role = match &old_state {
            Some(Ok(s)) if s.in_recovery => Old::Standby,
            Some(Ok(_)) => Old::Fenced,
            _ => Old::Unreachable,
        };
        let mut old_lsn = None;
        if old_role == Old::Fenced {
            let fenced = step(&format!("fence {old}"), &format!("stop writes on {old}"), || {
                ctx.fence(&old)?;
                Ok(pg::query(&old, "SELECT pg_current_wal_lsn()::text AS lsn", &[])?.first().and_then(|r| rows::text(r, "lsn").map(str::to_string)))
            });
            self.fenced = true;
            match fenced {
                Ok(lsn) => old_lsn = lsn,
                Err(e) if e.code == ErrorCode::Denied => return Err(e),
                Err(e) => {
                    // It answered a moment ago; whatever it does now, it was asked to be read only.
                    report::log(report::Level::Warn, &format!("{old}: fencing failed ({}); treating it as unreachable", e.message));
                    old_role = Old::Unreachable;
                }
            }
        }

        let candidate = step("choose", "pick the standby with the most WAL", || {
            let candidate = pick(&cfg.candidate, &old, states).map_err(|why| Error::new(ErrorCode::NotFound, why))?;
            let position = states.iter().find(|(p, _)| p.name == candidate).and_then(|(_, s)| s.as_ref().ok().and_then(State::wal_position));
            report::log(report::Level::Info, &format!("candidate {candidate} (WAL up to {})", position.map(format_lsn).unwrap_or_else(|| "?".into())));
            if let Some(lsn) = &old_lsn {
                let caught = ctx.wait(&format!("{candidate} to replay {old}'s WAL up to {lsn}"), cfg.pg.catch_up_timeout, || {
                    let rows = pg::query(&candidate, CAUGHT_UP_SQL, &[lsn])?;
                    let row = rows.first().cloned().unwrap_or_default();
                    Ok(if rows::flag(&row, "caught_up") == Some(true) {
                        Poll::Done(())
                    } else {
                        Poll::NotYet(format!("{candidate} replayed up to {}", rows::text(&row, "replay_lsn").unwrap_or("?")))
                    })
                });
                if let Err(e) = caught {
                    if e.code != ErrorCode::Timeout {
                        return Err(e);
                    }
                    // Quorum commit acknowledged every commit only once a standby had it; what the
                    // candidate lacks was never acknowledged, unless an unreachable standby holds it.
                    report::log(report::Level::Warn, &format!("{}; promoting {candidate} anyway, {old} will be rewound", e.message));
                    old_lsn = None;
                }
            }
            Ok(candidate)
        })?;
        let ctx = &self.ctx;
        let cand_pod = ctx.pod_or_placeholder(&candidate)?;
        let others: Vec<Pod> =
            states.iter().filter(|(p, s)| p.name != old && p.name != candidate && s.as_ref().is_ok_and(|s| s.in_recovery)).map(|(p, _)| p.clone()).collect();
        let mut cascaded = Vec::new();
        let prepared = step(&format!("prepare {candidate}"), &format!("slots on {candidate}; other standbys stream from it"), || {
            // The others get theirs as they are re-pointed.
            ctx.ensure_slot(&candidate, &old)?;
            for pod in &others {
                ctx.point_at_then(&pod.name, &cand_pod, true, || cascaded.push(pod.name.clone()))?;
            }
            Ok(())
        });
        self.cascaded = cascaded;
        prepared?;
        let ctx = &self.ctx;
        if old_role == Old::Fenced && old_lsn.is_some() {
            let uid = ctx.pod(&old)?.map(|p| p.uid).unwrap_or_default();
            step(&format!("stop {old}"), &format!("make {old} a standby of {candidate} and stop it"), || {
                ctx.exec(&old, &ctx.standby_command("config", &old, &cand_pod))?;
                ctx.set.delete_pod(&old)?;
                ctx.wait_pod_replaced(&old, &uid, cfg.pg.stop_timeout)
            })?;
            self.stopped = true;
            old_role = Old::Stopped;
        }
        let ctx = &self.ctx;
        step(&format!("promote {candidate}"), &format!("promote {candidate}"), || ctx.promote(&candidate))?;
        self.promoted = true;
        step(&format!("repoint-service {candidate}"), &format!("Service {} selects {candidate}", ctx.service), || ctx.repoint_service(&candidate))?;
        step(&format!("verify-writes {candidate}"), &format!("commit a row on {candidate}"), || ctx.verify_writes(&candidate))?;
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
        if let Err(e) = ctx.drop_inactive_slots(&candidate, &keep) {
            report::log(report::Level::Warn, &e.message);
        }
        let summary = format!(
            "{candidate} promoted in place of {old}; Service {} selects it and it commits writes; following it: {}",
            ctx.service,
            if rejoined.is_empty() { "nobody".into() } else { rejoined.join(", ") }
        );
        if missing.is_empty() { Ok(summary) } else { Err(Error::internal(format!("{summary}; NOT following it: {}", missing.join("; ")))) }
    }

    /// Bring the old primary back as a standby of the new one, whatever state it is in.
    fn rejoin_old(&self, role: Old, new: &Pod) -> Result<(), Error> {
        let ctx = &self.ctx;
        let old = &self.old;
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
        ctx.drop_inactive_slots(old, &[])?;
        ctx.unfence(old)
    }

    fn rollback(&self, failure: &Error) -> Result<PatternResult, Error> {
        let ctx = &self.ctx;
        let restored = step("rollback", "restore a single writable primary behind the Service", || -> Result<String, Error> {
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
            Ok(summary) => Ok(PatternResult::rolled_back(format!("{}: {}. {summary}", failure.code, failure.message))),
            Err(e) => Err(Error::new(failure.code, format!("{}; rollback failed too: {}", failure.message, e.message))),
        }
    }
}

struct EmergencyFailover;

impl runner_sdk::pattern::Guest for EmergencyFailover {
    fn run(config: String) -> Result<PatternResult, Error> {
        let cfg: Config = parse_config(&config)?;
        let ctx = Ctx::new(&cfg.pg)?;
        let (old, states) = step("discover", "find the failed primary and every member's state", || {
            let pods = ctx.pods()?;
            let target = ctx.service_target()?;
            let old = if !cfg.primary.is_empty() {
                cfg.primary.clone()
            } else if let Some(target) = target {
                target
            } else {
                pg::primary_candidates("", &pods, None).into_iter().next().ok_or_else(|| {
                    Error::new(
                        ErrorCode::NotFound,
                        format!("Service {} selects no member by {POD_NAME_LABEL} and no Pod is labelled role=primary; set config `primary`", cfg.pg.service),
                    )
                })?
            };
            let states = ops::states(&pods);
            let others: Vec<&str> =
                states.iter().filter(|(p, s)| p.name != old && s.as_ref().is_ok_and(|s| !s.in_recovery)).map(|(p, _)| p.name.as_str()).collect();
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
                    Ok(s) if !s.in_recovery => format!("primary, WAL at {}", s.current_lsn.map(format_lsn).unwrap_or_default()),
                    Ok(s) => format!("standby, WAL receiver {}", s.receiver.as_deref().unwrap_or("stopped")),
                    Err(e) => format!("not answering: {}", e.message),
                };
                report::log(report::Level::Info, &format!("{}: {what}", pod.name));
            }
            Ok((old, states))
        })?;
        let mut failover = Failover { ctx, cfg: &cfg, old, cascaded: Vec::new(), fenced: false, stopped: false, promoted: false };
        match failover.run(&states) {
            Ok(summary) => Ok(PatternResult::succeeded(format!("{summary}{}", failover.ctx.dry.summary_note()))),
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

    #[test]
    fn ties_go_to_the_lowest_ordinal() {
        let states = vec![(pod("pg-0"), standby(5, 5)), (pod("pg-1"), standby(7, 7)), (pod("pg-2"), standby(7, 7))];
        assert_eq!(pick("", "pg-0", &states).as_deref(), Ok("pg-1"));
    }
}

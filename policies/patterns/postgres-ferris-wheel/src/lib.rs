//! Pattern `postgres-ferris-wheel`: move every member of a PostgreSQL
//! StatefulSet onto an upgraded node pool without losing a write, the seed's
//! "Ferris wheel" done safely. See manifest.toml's `steps` and `rollback`.

mod plan;
mod record;

use kube_common::text::bytes;
use kube_common::{NodePools, Pod, PoolPin, Set};
use pg_common::ops::{self, Ctx, Settings};
use pg_common::pg::{self, CAUGHT_UP_SQL};
use pg_common::rows;
use pg_common::text::parse_lsn;
use plan::{Action, Snapshot, Stop, Target};
use record::{Phase, Seen, Switch};
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use runner_sdk::{Approval, gate_step, preflight_gate};
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

/// The annotation that keeps what the pattern changed on the StatefulSet,
/// so a later run (or a rollback) knows what to restore and where to end.
const ANNOTATION: &str = "runner.dev/ferris-wheel";

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    pool_label: String,
    upgraded_pool: String,
    replicas: i64,
    preflight_input: String,
    post_input: String,
    member_timeout: u64,
    #[serde(flatten)]
    pg: Settings,
}

/// What has been changed so far, for the rollback.
#[derive(Default)]
struct Progress {
    /// The primary before the rotation's first change (kept in the annotation across runs).
    original_primary: String,
    /// The primary when this run began (the one a switchover in flight started from).
    primary_at_start: String,
    /// The StatefulSet as found: replicas, the pool label's value,
    /// updateStrategy, the primary (the annotation's JSON, without `switch`).
    original: Value,
    pinned: bool,
    switch: Option<Switch>,
    /// The operator approved the rotation's first switchover (in this run,
    /// or an interrupted one: then a re-run does not ask again).
    approved: bool,
    /// The operator said no: the rollback's summary says so.
    declined: bool,
}

impl Progress {
    fn phase(&self) -> Option<Phase> {
        self.switch.as_ref().map(|sw| sw.phase)
    }

    /// Whether a rollback puts the cluster back as it was before the
    /// rotation: the primary never moved and no switchover stopped it.
    fn fully_reversible(&self) -> bool {
        self.primary_at_start == self.original_primary && self.phase().is_none_or(|p| p < Phase::Stopped)
    }
}

/// The time now, as the annotation records it.
fn timestamp() -> String {
    let at = std::time::UNIX_EPOCH + std::time::Duration::from_millis(clock::now());
    humantime::format_rfc3339_seconds(at).to_string()
}

struct Rotation<'a> {
    ctx: Ctx,
    cfg: &'a Config,
    pin: PoolPin,
    progress: Progress,
    /// In a dry run the cluster does not change, so the plan walks a simulation.
    simulated: Option<Snapshot>,
}

impl Rotation<'_> {
    fn name(&self, ordinal: u32) -> String {
        self.ctx.set.member(ordinal)
    }

    /// The cluster now, as the planner sees it.
    fn snapshot(&self, target: u32) -> Result<Snapshot, Error> {
        let set = self.ctx.set.read()?;
        let pods = self.ctx.set.pods_of(&set)?;
        let pools = NodePools::list(&self.cfg.pool_label)?;
        let members = pods.iter().map(|p| (p.ordinal, pools.runs_on(p, &self.cfg.upgraded_pool))).collect();
        let primary = pg::confirm_primary(&pg::primary_candidates("", &pods, self.ctx.service_target()?.as_deref()))?;
        let primary = self.ctx.set.ordinal(&primary).ok_or_else(|| Error::internal(format!("primary {primary} is not a member of {}", self.ctx.set.name)))?;
        Ok(Snapshot { members, primary, replicas: set.replicas, target })
    }

    /// The replicas the rotation ends with.
    fn target(&self, original: &Value, set: &Set) -> u32 {
        if self.cfg.replicas > 0 { self.cfg.replicas as u32 } else { original["replicas"].as_u64().unwrap_or(set.replicas as u64) as u32 }
    }

    /// The step `pin-upgraded-pool`, unless an interrupted run's pin is
    /// still in place (repeating it would be a change that changes nothing).
    fn pin_members(&mut self, set: &Set, original: Value, resumed: bool) -> Result<(), Error> {
        let spec = &set.object["spec"];
        let in_place =
            spec["template"]["spec"]["nodeSelector"][&self.cfg.pool_label] == self.cfg.upgraded_pool.as_str() && spec["updateStrategy"]["type"] == "OnDelete";
        if !(resumed && in_place) {
            self.pin.apply(&self.ctx.set, &original)?;
        }
        self.progress.original = original;
        self.progress.pinned = true;
        Ok(())
    }

    /// Keep the switchover in flight (or its end) in the annotation, so a
    /// run killed at the next boundary can be resumed from here.
    fn save_switch(&self) -> Result<(), Error> {
        let mut kept = self.progress.original.clone();
        if let (Some(sw), Some(map)) = (&self.progress.switch, kept.as_object_mut()) {
            map.insert("switch".into(), serde_json::to_value(sw).map_err(|e| Error::internal(e.to_string()))?);
        }
        self.ctx.set.patch(&json!({"metadata": {"annotations": {ANNOTATION: kept.to_string()}}})).map(drop)
    }

    /// Move the switchover in flight to `phase`, in memory first (a rollback
    /// must assume the action may have happened) and then in the annotation.
    fn advance(&mut self, phase: Phase) -> Result<(), Error> {
        if let Some(sw) = &mut self.progress.switch {
            sw.phase = phase;
            if phase == Phase::Fenced {
                sw.fenced_at = Some(timestamp());
            }
        }
        self.save_switch()
    }

    fn rotate(&mut self) -> Result<String, Error> {
        let set = self.ctx.set.read()?;
        let (mut original, resumed) = self.pin.original(&set.object);
        if let Some(map) = original.as_object_mut() {
            map.remove("switch");
        }
        if !resumed {
            // Scaling back to this many is the rotation's last step, in this run or a resumed one.
            original["replicas"] = json!(set.replicas);
            original["primary"] = json!(self.progress.original_primary);
        }
        let target = self.target(&original, &set);
        if !resumed && !self.ctx.dry.active() && plan::next(&self.snapshot(target)?).is_none() {
            // Nothing to rotate: no pin to set and lift (a re-run of a finished rotation changes nothing).
            step("tidy", "no member keeps a fence or a slot nobody uses (also after an interrupted run)", || self.tidy(target))?;
            return Ok("every member already ran on the upgraded pool".into());
        }
        self.pin_members(&set, original, resumed)?;
        let mut done = Vec::new();
        let mut last: Option<(Action, Snapshot)> = None;
        if self.ctx.dry.active() {
            self.simulated = Some(self.snapshot(target)?);
        }
        for _ in 0..32 {
            let snapshot = match &self.simulated {
                Some(s) => s.clone(),
                None => self.snapshot(target)?,
            };
            let Some(action) = plan::next(&snapshot) else {
                break;
            };
            if last.as_ref() == Some(&(action.clone(), snapshot.clone())) {
                return Err(Error::internal(format!("{action:?} did not change the cluster; stopping rather than repeating it")));
            }
            let chosen = self.act(&action, &snapshot)?;
            done.push(match &action {
                Action::ScaleUp(n) => format!("added {}", self.name(n - 1)),
                Action::Switchover { .. } => format!("switched over {} -> {}", self.name(snapshot.primary), chosen.map(|c| self.name(c)).unwrap_or_default()),
                Action::Move(o) => format!("moved {}", self.name(*o)),
                Action::ScaleDown(n) => format!("scaled back to {n}"),
            });
            if let Some(sim) = &mut self.simulated {
                plan::apply(sim, &action, chosen);
            }
            last = Some((action, snapshot));
        }
        step("tidy", "no member keeps a fence or a slot nobody uses (also after an interrupted run)", || self.tidy(target))?;
        let body = self.pin.release_body(&self.progress.original["updateStrategy"]);
        step("restore-update-strategy", "put back the original updateStrategy", || self.ctx.patch(&self.ctx.set.object_ref(), &body))?;
        Ok(if done.is_empty() { "every member already ran on the upgraded pool".into() } else { done.join("; ") })
    }

    /// Carry out one action; returns the new primary's ordinal for a switchover.
    fn act(&mut self, action: &Action, s: &Snapshot) -> Result<Option<u32>, Error> {
        let primary = self.name(s.primary);
        match action {
            Action::ScaleUp(n) => {
                let new = self.name(n - 1);
                step(
                    &format!("add-member {new}"),
                    &format!("scale {} to {n}; wait until {new} streams synchronously from {primary}", self.ctx.set.name),
                    || {
                        // A volume kept from an earlier scale-down starts as a standby at once and needs its slot.
                        self.ctx.ensure_slot(&primary, &new)?;
                        self.ctx.forget_upstream(&primary)?;
                        self.ctx.set.scale(*n)?;
                        self.ctx.wait_pod_ready(&new, self.pin.target(), self.cfg.member_timeout)?;
                        let primary_pod = self.ctx.pod_or_placeholder(&primary)?;
                        // A volume kept from an earlier rotation may name a member that is no longer the primary.
                        self.ctx.point_at(&new, &primary_pod, true)?;
                        self.ctx.ensure_following(&new, &primary_pod).map_err(|e| {
                            Error::new(
                                e.code,
                                format!("{}; if {new}'s volume is left from an earlier scale-down, delete it so the member is cloned afresh", e.message),
                            )
                        })?;
                        self.wait_synchronous(&primary, &new, self.cfg.member_timeout)
                    },
                )?;
                Ok(None)
            }
            Action::Switchover { to, stop } => {
                let to = self.choose(s, to)?;
                self.approve(s, action, &primary, &self.name(to), to)?;
                self.switchover(&primary, &self.name(to), stop)?;
                Ok(Some(to))
            }
            Action::Move(o) => {
                let name = self.name(*o);
                step(&format!("move {name}"), &format!("replace {name}'s Pod so it runs on pool {}", self.cfg.upgraded_pool), || {
                    self.move_standby(&name, &primary)
                })?;
                Ok(None)
            }
            Action::ScaleDown(n) => {
                step(&format!("scale-down {n}"), &format!("scale {} back to {n}", self.ctx.set.name), || self.scale_down(*n, &primary))?;
                Ok(None)
            }
        }
    }

    /// Before the rotation's first switchover, the point of no return (once
    /// `from` is stopped the rollback can no longer put the cluster back as
    /// it was): ask the operator, once per rotation. What ran before (the pin,
    /// the added member) is undone by the rollback when the answer is no.
    fn approve(&mut self, s: &Snapshot, action: &Action, from: &str, to: &str, chosen: u32) -> Result<(), Error> {
        if self.progress.approved {
            return Ok(());
        }
        let set = &self.ctx.set.name;
        let pool = &self.cfg.upgraded_pool;
        let summary = format!("promote {to} and retire {from} as the primary of {set}, then move every member onto pool {pool}");
        let others: Vec<String> = s.members.iter().map(|(o, _)| self.name(*o)).filter(|n| n != from && n != to).collect();
        let mut rest = s.clone();
        plan::apply(&mut rest, action, Some(chosen));
        let mut then = Vec::new();
        while let Some(next) = plan::next(&rest) {
            if then.len() > 2 * rest.members.len() + 4 {
                break;
            }
            let chosen = match &next {
                Action::Switchover { to, .. } => plan::simulated_choice(&rest, to),
                _ => None,
            };
            then.push(match &next {
                Action::ScaleUp(n) => format!("scale {set} to {n} (adds {})", self.name(n - 1)),
                Action::Switchover { stop, .. } => {
                    let old = self.name(rest.primary);
                    let new = chosen.map(|c| self.name(c)).unwrap_or_else(|| "the most advanced synchronous standby".into());
                    let how = match stop {
                        Stop::DeletePod => format!("{old}'s Pod deleted"),
                        Stop::ScaleDown(n) => format!("{set} scaled to {n}, which removes {old}"),
                    };
                    format!("switch over {old} -> {new} ({how})")
                }
                Action::Move(o) => format!("delete {}'s Pod so it comes back on pool {pool}", self.name(*o)),
                Action::ScaleDown(n) => format!("scale {set} back to {n}"),
            });
            plan::apply(&mut rest, &next, chosen);
        }
        let details = [
            format!("StatefulSet {set}: members {}; primary {from}; Service {} selects it", s.members.iter().map(|(o, _)| self.name(*o)).collect::<Vec<_>>().join(", "), self.ctx.service),
            format!(
                "now: {} re-pointed to stream from {to}; {from} fenced (read only), {to} catches up, {from} gets standby settings and {} (it cannot be undone from here), {to} promoted, Service {} selects {to}",
                if others.is_empty() { "no other standby".to_string() } else { others.join(", ") },
                match action {
                    Action::Switchover { stop: Stop::ScaleDown(n), .. } => format!("{set} is scaled to {n}, which removes it"),
                    _ => "its Pod is deleted".to_string(),
                },
                self.ctx.service
            ),
            format!("then: {}", if then.is_empty() { "nothing more".to_string() } else { then.join("; ") }),
            format!("target pool: {pool} (Node label {}); ends with {} replicas", self.cfg.pool_label, s.target),
        ]
        .join("\n");
        match Approval::ask(&summary, &details)? {
            Approval::Approved => {
                self.progress.approved = true;
                // Kept in the annotation with the next switchover record, so a re-run does not ask again.
                self.progress.original["approved"] = json!(true);
                Ok(())
            }
            Approval::Declined => {
                self.progress.declined = true;
                Err(Approval::declined(&summary))
            }
        }
    }

    /// Resolve a switchover target: the most advanced synchronous standby
    /// that qualifies, ties to the lowest ordinal.
    fn choose(&self, s: &Snapshot, to: &Target) -> Result<u32, Error> {
        if let Target::Member(o) = to {
            return Ok(*o);
        }
        if self.ctx.dry.active() {
            return plan::simulated_choice(s, to).ok_or_else(|| Error::internal("no standby qualifies for the switchover"));
        }
        let pods = self.ctx.pods()?;
        let primary = self.name(s.primary);
        let standbys = pg::standbys(&primary)?;
        let mut ranked: Vec<(String, Option<u64>)> = Vec::new();
        for (o, upgraded) in &s.members {
            let allowed = match to {
                Target::BestBelow(n) => o < n,
                _ => true,
            };
            if !upgraded || *o == s.primary || !allowed {
                continue;
            }
            let name = self.name(*o);
            let ip = pods.iter().find(|p| p.name == name).and_then(|p| p.ip.clone());
            if let Some(row) = standbys.iter().find(|r| r.is(&name, ip.as_deref()) && r.is_synchronous()) {
                ranked.push((name, row.replay_lsn.as_deref().and_then(parse_lsn)));
            }
        }
        let best = pg::most_advanced(&ranked).ok_or_else(|| {
            Error::internal(format!("no synchronous standby of {primary} on pool {} qualifies for the switchover ({to:?})", self.cfg.upgraded_pool))
        })?;
        Ok(self.ctx.set.ordinal(&best).unwrap_or_default())
    }

    fn wait_synchronous(&self, primary: &str, standby: &str, timeout: u64) -> Result<(), Error> {
        self.ctx.wait(&format!("{standby} to stream from {primary} in sync or quorum state"), timeout, || {
            let ip = self.ctx.pod(standby)?.and_then(|p| p.ip);
            let rows = pg::standbys(primary)?;
            Ok(match rows.iter().find(|r| r.is(standby, ip.as_deref())) {
                Some(r) if r.is_synchronous() => Poll::Done(()),
                Some(r) => Poll::NotYet(format!("{standby}: {} {}", r.state, r.sync_state)),
                None => Poll::NotYet(format!("{standby} is not connected to {primary}")),
            })
        })
    }

    fn switchover(&mut self, from: &str, to: &str, stop: &Stop) -> Result<(), Error> {
        let ctx = &self.ctx;
        let cfg = self.cfg;
        let to_pod = ctx.pod_or_placeholder(to)?;
        let removed = |p: &Pod| matches!(stop, Stop::ScaleDown(n) if p.ordinal >= *n);
        let others: Vec<String> = ctx.pods()?.into_iter().filter(|p| p.name != from && p.name != to && !removed(p)).map(|p| p.name).collect();
        // Every standby that may be re-pointed is recorded before the first is:
        // pointing one back that never moved is harmless, forgetting one is not.
        self.progress.switch =
            Some(Switch { from: from.into(), to: to.into(), stop: stop.clone(), cascaded: others.clone(), phase: Phase::Prepared, fenced_at: None });
        step(
            &format!("prepare {to}"),
            &format!("slots on {to}; {} re-pointed to stream from {to}", if others.is_empty() { "no other standby".into() } else { others.join(", ") }),
            || {
                self.save_switch()?;
                let ctx = &self.ctx;
                self.wait_synchronous(from, to, cfg.pg.stream_timeout)?;
                if *stop == Stop::DeletePod {
                    ctx.ensure_slot(to, from)?;
                }
                for other in &others {
                    ctx.point_at(other, &to_pod, true)?;
                }
                self.wait_cascading(to, &others)
            },
        )?;
        self.finish_switchover(Phase::Prepared)
    }

    /// Wait until every one of `others` streams from `to`.
    fn wait_cascading(&self, to: &str, others: &[String]) -> Result<(), Error> {
        let ctx = &self.ctx;
        for other in others {
            ctx.wait(&format!("{other} to stream from {to}"), self.cfg.pg.stream_timeout, || {
                let ip = ctx.pod(other)?.and_then(|p| p.ip);
                Ok(if ctx.streams_from(to, other, ip.as_deref())?.is_some() {
                    Poll::Done(())
                } else {
                    Poll::NotYet(format!("{other} is not streaming from {to}"))
                })
            })?;
        }
        Ok(())
    }

    /// A switchover an interrupted run left in the annotation: say so, judge
    /// from the cluster how far it got, and carry it on from there with the
    /// ordinary steps (so each is again a boundary a re-run resumes from).
    fn resume_switchover(&mut self) -> Result<(), Error> {
        let Some(sw) = self.progress.switch.clone() else { return Ok(()) };
        report::log(report::Level::Info, &format!("resuming an interrupted rotation: {}", sw.describe(&self.ctx.service)));
        let from = pg::state(&sw.from);
        let to = pg::state(&sw.to);
        let seen = Seen {
            from_primary: from.as_ref().is_ok_and(|s| !s.in_recovery),
            from_fenced: from.as_ref().is_ok_and(|s| s.read_only),
            to_primary: to.as_ref().is_ok_and(|s| !s.in_recovery),
            service_on_to: self.ctx.service_target()?.as_deref() == Some(sw.to.as_str()),
        };
        let phase =
            sw.resume_phase(seen).map_err(|why| Error::internal(format!("cannot complete the interrupted switchover {} -> {}: {why}", sw.from, sw.to)))?;
        if phase == Phase::Stopped
            && let Err(e) = &to
        {
            return Err(Error::new(e.code, format!("cannot promote {} to complete the interrupted switchover: {}", sw.to, e.message)));
        }
        if phase == Phase::Prepared {
            step(
                &format!("check-prepared {}", sw.to),
                &format!("{} still streams in sync from {}, the re-pointed standbys from {}", sw.to, sw.from, sw.to),
                || {
                    self.wait_synchronous(&sw.from, &sw.to, self.cfg.pg.stream_timeout)?;
                    self.wait_cascading(&sw.to, &sw.cascaded)
                },
            )?;
        }
        self.finish_switchover(phase)
    }

    /// The switchover in flight, from `phase` (the last one reached) to its end.
    fn finish_switchover(&mut self, phase: Phase) -> Result<(), Error> {
        let Some(Switch { from, to, stop, .. }) = self.progress.switch.clone() else { return Ok(()) };
        let (from, to) = (from.as_str(), to.as_str());
        let cfg = self.cfg;
        let to_pod = self.ctx.pod_or_placeholder(to)?;
        if phase < Phase::Promoted {
            self.ctx.writes_paused.set(true);
        }
        if phase < Phase::Fenced {
            step(&format!("fence {from}"), &format!("stop new writes on {from}"), || {
                // Recorded first: the rollback lifts a fence that may be in place.
                self.advance(Phase::Fenced)?;
                self.ctx.fence(from)
            })?;
        }
        if phase < Phase::Stopped {
            let ctx = &self.ctx;
            step(&format!("catch-up {to}"), &format!("wait until {to} has replayed {from}'s last WAL"), || {
                if ctx.dry.active() {
                    return ctx.wait("the new primary to catch up", 0, || Ok(Poll::Done(())));
                }
                let lsn_text = pg::query(from, "SELECT pg_current_wal_lsn()::text AS lsn", &[])?
                    .first()
                    .and_then(|r| rows::text(r, "lsn").map(str::to_string))
                    .unwrap_or_default();
                let started = clock::now();
                ctx.wait(&format!("{to} to replay {from}'s WAL up to {lsn_text}"), cfg.pg.catch_up_timeout, || {
                    let row = pg::query(to, CAUGHT_UP_SQL, &[&lsn_text])?;
                    let row = row.first().cloned().unwrap_or_default();
                    Ok(if rows::flag(&row, "caught_up") == Some(true) {
                        Poll::Done(())
                    } else {
                        let at = rows::text(&row, "replay_lsn").unwrap_or("?");
                        let gap = match (parse_lsn(&lsn_text), parse_lsn(at)) {
                            (Some(a), Some(b)) => format!(" ({} behind)", bytes(a.saturating_sub(b) as f64)),
                            _ => String::new(),
                        };
                        Poll::NotYet(format!("{to} replayed up to {at}{gap}"))
                    })
                })?;
                report::metric("catch-up", (clock::now() - started) as f64, "ms");
                Ok(())
            })?;
            let from_uid = self.ctx.pod(from)?.map(|p| p.uid).unwrap_or_default();
            step(&format!("stop {from}"), &format!("make {from} a standby of {to} and stop its server"), || {
                // Once asked to stop, the old primary is no longer "intact", even if the wait fails.
                self.advance(Phase::Stopped)?;
                let ctx = &self.ctx;
                ctx.exec(from, &ctx.standby_command("config", from, &to_pod))?;
                match stop {
                    Stop::DeletePod => ctx.set.delete_pod(from)?,
                    Stop::ScaleDown(n) => ctx.set.scale(n)?,
                }
                ctx.wait_pod_replaced(from, &from_uid, cfg.pg.stop_timeout)
            })?;
        }
        if phase < Phase::Promoted {
            step(&format!("promote {to}"), &format!("promote {to}"), || {
                self.ctx.promote(to)?;
                self.advance(Phase::Promoted)
            })?;
        }
        if phase < Phase::ServiceRepointed {
            step(&format!("repoint-service {to}"), &format!("Service {} selects {to}", self.ctx.service), || {
                self.ctx.repoint_service(to)?;
                self.advance(Phase::ServiceRepointed)
            })?;
        }
        if phase < Phase::WritesVerified {
            step(&format!("verify-writes {to}"), &format!("commit a row into {} on {to}", cfg.pg.write_check_table), || {
                self.ctx.verify_writes(to)?;
                self.advance(Phase::WritesVerified)
            })?;
        }
        self.ctx.writes_paused.set(false);
        // The switchover ends with its last step: the record goes with it.
        let end = |rotation: &mut Self| {
            rotation.progress.switch = None;
            rotation.save_switch()
        };
        match stop {
            Stop::DeletePod => step(&format!("rejoin {from}"), &format!("{from} back on pool {} as a standby of {to}", cfg.upgraded_pool), || {
                let ctx = &self.ctx;
                ctx.wait_pod_ready(from, self.pin.target(), cfg.pg.rejoin_timeout)?;
                ctx.ensure_following(from, &to_pod)?;
                // Its slots as a primary would pin WAL; its fence would outlive its role.
                ctx.drop_inactive_slots(from, &[])?;
                ctx.unfence(from)?;
                end(self)
            })?,
            Stop::ScaleDown(n) => {
                let keep: Vec<String> = (0..n).map(|o| self.name(o)).collect();
                step(&format!("scale-down {n}"), &format!("drop the slots of members removed from {to}"), || {
                    self.ctx.drop_inactive_slots(to, &keep)?;
                    end(self)
                })?
            }
        }
        Ok(())
    }

    /// Every standby: no fence, no slot (none cascades from it now). The
    /// primary: slots only for the members it keeps. Changes only what needs
    /// it, so a re-run after a finished tidy changes nothing.
    fn tidy(&self, target: u32) -> Result<(), Error> {
        let ctx = &self.ctx;
        let keep: Vec<String> = (0..target).map(|o| self.name(o)).collect();
        for (pod, state) in ops::states(&ctx.pods()?) {
            let state = match state {
                Ok(state) => state,
                Err(e) => {
                    report::log(report::Level::Warn, &format!("tidy: {}", e.message));
                    continue;
                }
            };
            let keep: &[String] = if state.in_recovery { &[] } else { &keep };
            if !ctx.inactive_slots(&pod.name, keep)?.is_empty() {
                ctx.drop_inactive_slots(&pod.name, keep)?;
            }
            if state.in_recovery && state.read_only {
                ctx.unfence(&pod.name)?;
            }
        }
        Ok(())
    }

    fn move_standby(&self, name: &str, primary: &str) -> Result<(), Error> {
        let ctx = &self.ctx;
        if !ctx.dry.active() {
            let pods = ctx.pods()?;
            let others = pg::standbys(primary)?
                .into_iter()
                .filter(|s| s.is_synchronous() && !s.is(name, pods.iter().find(|p| p.name == name).and_then(|p| p.ip.as_deref())))
                .count();
            if others == 0 {
                return Err(Error::internal(format!("moving {name} would leave {primary} without a synchronous standby, and every commit would wait")));
            }
        }
        let uid = ctx.pod(name)?.map(|p| p.uid).unwrap_or_default();
        ctx.set.delete_pod(name)?;
        ctx.wait_pod_replaced(name, &uid, self.cfg.pg.stop_timeout)?;
        ctx.wait_pod_ready(name, self.pin.target(), self.cfg.pg.rejoin_timeout)?;
        ctx.ensure_following(name, &ctx.pod_or_placeholder(primary)?)
    }

    fn scale_down(&self, n: u32, primary: &str) -> Result<(), Error> {
        let set = self.ctx.set.read()?;
        self.ctx.set.scale(n)?;
        self.await_removed(n, set.replicas, primary)
    }

    /// After scaling from `was` to `n` replicas: wait until the removed
    /// members are gone, then drop their slots on `primary`.
    fn await_removed(&self, n: u32, was: u32, primary: &str) -> Result<(), Error> {
        let ctx = &self.ctx;
        for o in n..was.max(n) {
            let gone = self.name(o);
            ctx.wait(&format!("{gone} to be removed"), self.cfg.pg.stop_timeout, || {
                Ok(if ctx.pod(&gone)?.is_none() { Poll::Done(()) } else { Poll::NotYet(format!("{gone} still exists")) })
            })?;
        }
        let keep: Vec<String> = (0..n).map(|o| self.name(o)).collect();
        ctx.drop_inactive_slots(primary, &keep)
    }

    /// Undo what can be undone; see manifest.toml's `rollback`.
    fn rollback(&mut self, failure: &Error) -> Result<PatternResult, Error> {
        // Refused at the question: only the pin and the added member are undone (the
        // primary never moved and nothing else was touched), nothing else is made sure of.
        let undo_only = self.progress.declined || Approval::needed(failure);
        let outcome = step("rollback", "restore a single writable primary behind the Service", || self.restore(undo_only));
        match outcome {
            // Nobody could answer: an error (the run did not reach a verdict), with what was put back.
            Ok(summary) if Approval::needed(failure) => Err(Error::new(failure.code, format!("{}. {summary}", failure.message))),
            Ok(summary) if self.progress.declined => Ok(PatternResult::rolled_back(format!("{}. {summary}", failure.message))),
            Ok(summary) => Ok(PatternResult::rolled_back(format!("{}: {}. {summary}", failure.code, failure.message))),
            Err(e) => Err(Error::new(failure.code, format!("{}; rollback failed too: {}. State now: {}", failure.message, e.message, self.describe()))),
        }
    }

    fn restore(&mut self, undo_only: bool) -> Result<String, Error> {
        let ctx = &self.ctx;
        let mut done = Vec::new();
        let original_replicas = self.progress.original["replicas"].as_u64().unwrap_or(0) as u32;
        let reversible = self.progress.fully_reversible();
        if reversible && self.progress.pinned {
            // Through the API alone and before anything that needs exec or SQL:
            // when exec is what failed, the StatefulSet must not stay pinned.
            ctx.patch(&ctx.set.object_ref(), &self.pin.restore_body(&self.progress.original))?;
            done.push("StatefulSet nodeSelector and updateStrategy restored".to_string());
        }
        // The members added for the rotation (by this run or an interrupted one)
        // go now, through the API too, so recovery spends no time on them.
        let mut scaled_from = None;
        if reversible && original_replicas > 0 {
            let replicas = ctx.set.read()?.replicas;
            if replicas > original_replicas {
                ctx.set.scale(original_replicas)?;
                done.push(format!("scaled back to {original_replicas}"));
                scaled_from = Some(replicas);
            }
        }
        let mut prefer = self.progress.original_primary.clone();
        if let Some(sw) = self.progress.switch.clone() {
            prefer = sw.from.clone();
            if sw.phase < Phase::Stopped {
                // The old primary still runs as a primary: it is intact.
                done.push(format!("switchover {} -> {} abandoned before {} was stopped", sw.from, sw.to, sw.from));
                if sw.phase >= Phase::Fenced {
                    ctx.unfence(&sw.from)?;
                    done.push(format!("fence on {} lifted", sw.from));
                }
                if ctx.service_target()?.as_deref() != Some(sw.from.as_str()) {
                    ctx.repoint_service(&sw.from)?;
                }
                let from_pod = ctx.pod_or_placeholder(&sw.from)?;
                for other in &sw.cascaded {
                    ctx.point_at(other, &from_pod, true)?;
                    ctx.ensure_following(other, &from_pod)?;
                    done.push(format!("{other} streams from {} again", sw.from));
                }
            }
        }
        if let Some(was) = scaled_from {
            self.await_removed(original_replicas, was, &self.progress.original_primary)?;
        }
        if undo_only && reversible && self.progress.switch.is_none() {
            return Ok(format!("Rolled back: {} is still the primary; {}", self.progress.original_primary, done.join("; ")));
        }
        let (primary, notes) = ops::recover(ctx, &prefer)?;
        done.extend(notes);
        if self.progress.switch.take().is_some() && ctx.set.read()?.object["metadata"]["annotations"][ANNOTATION].is_string() {
            // The switchover ended here: a re-run must plan afresh from the
            // recovered cluster, not resume what was abandoned.
            self.save_switch()?;
        }
        if reversible && primary == self.progress.original_primary {
            Ok(format!("Rolled back: {primary} is the primary again. {}", done.join("; ")))
        } else {
            Ok(format!(
                "The primary had moved, so the cluster was brought to a consistent state instead: {}. The rotation is incomplete. State now: {}",
                done.join("; "),
                self.describe()
            ))
        }
    }

    /// The cluster as it stands, for the operator: who is primary, who
    /// streams, where every member runs.
    fn describe(&self) -> String {
        let ctx = &self.ctx;
        let pods = ctx.pods().unwrap_or_default();
        let pools = NodePools::list(&self.cfg.pool_label).unwrap_or_default();
        let target = ctx.service_target().ok().flatten().unwrap_or_else(|| "nothing".into());
        let replicas = ctx.set.read().map(|s| s.replicas.to_string()).unwrap_or_else(|_| "?".into());
        let states = ops::states(&pods);
        let members: Vec<String> = states
            .iter()
            .map(|(p, s)| {
                let pool = pools.of(p).unwrap_or("no node");
                let role = match s {
                    Ok(s) if !s.in_recovery => format!("primary{}", if s.read_only { " (fenced, read only)" } else { "" }),
                    Ok(s) => format!("standby ({})", s.receiver.as_deref().unwrap_or("no WAL receiver")),
                    Err(e) => format!("not answering: {}", e.message),
                };
                format!("{} {role} on pool {pool}", p.name)
            })
            .collect();
        let changed = self.left_changed(&states);
        let changed = if changed.is_empty() { String::new() } else { format!("; left changed by the rotation: {}", changed.join("; ")) };
        format!("StatefulSet {} at {replicas} replicas; Service {} selects {target}; {}{changed}", ctx.set.name, ctx.service, members.join("; "))
    }

    /// Every object the rotation changed and has not put back, read from
    /// the cluster (`states`: every member's, as [`ops::states`] reads them).
    fn left_changed(&self, states: &[(Pod, Result<pg::State, Error>)]) -> Vec<String> {
        let ctx = &self.ctx;
        let mut changed = Vec::new();
        match ctx.set.read() {
            Ok(set) => {
                let spec = &set.object["spec"];
                if set.object["metadata"]["annotations"][ANNOTATION].is_string() {
                    let selector = spec["template"]["spec"]["nodeSelector"][&self.cfg.pool_label].as_str().unwrap_or("none");
                    let strategy = spec["updateStrategy"]["type"].as_str().unwrap_or("default");
                    changed.push(format!(
                        "StatefulSet {} pinned (nodeSelector {}={selector}, updateStrategy {strategy}, annotation {ANNOTATION}: a re-run resumes the rotation)",
                        ctx.set.name, self.cfg.pool_label
                    ));
                }
                let original = self.progress.original["replicas"].as_u64().unwrap_or(0) as u32;
                if original > 0 && set.replicas != original {
                    changed.push(format!("StatefulSet {} at {} replicas (was {original})", ctx.set.name, set.replicas));
                }
            }
            Err(e) => changed.push(format!("StatefulSet {}: not readable ({})", ctx.set.name, e.message)),
        }
        let original_primary = &self.progress.original_primary;
        match ctx.service_target() {
            Ok(target) if target.as_deref() != Some(original_primary.as_str()) && !original_primary.is_empty() => {
                changed.push(format!("Service {} selects {} (was {original_primary})", ctx.service, target.as_deref().unwrap_or("nothing")))
            }
            Ok(_) => {}
            Err(e) => changed.push(format!("Service {}: not readable ({})", ctx.service, e.message)),
        }
        for (pod, state) in states {
            if state.as_ref().is_ok_and(|s| s.read_only) {
                changed.push(format!("{} fenced (default_transaction_read_only = on)", pod.name));
            }
        }
        if let Some(sw) = &self.progress.switch {
            changed.push(format!(
                "annotation {ANNOTATION} records the switchover {} -> {} as {:?} (a re-run resumes it from the cluster's state)",
                sw.from, sw.to, sw.phase
            ));
        }
        changed
    }
}

struct FerrisWheel;

impl runner_sdk::pattern::Guest for FerrisWheel {
    fn run(config: String) -> Result<PatternResult, Error> {
        let cfg: Config = parse_config(&config)?;
        let ctx = Ctx::new(&cfg.pg)?;
        let pin = PoolPin::new(ANNOTATION, &cfg.pool_label, &cfg.upgraded_pool);
        let mut rotation = Rotation { ctx, cfg: &cfg, pin, progress: Progress::default(), simulated: None };
        let (kept, interrupted, primary) = step("discover", "find the primary and the members' pools", || {
            let set = rotation.ctx.set.read()?;
            let pods = rotation.ctx.set.pods_of(&set)?;
            let target = rotation.ctx.service_target()?;
            let (mut kept, resumed) = rotation.pin.original(&set.object);
            let interrupted = match kept.as_object_mut().and_then(|m| m.remove("switch")) {
                Some(record) => Some(serde_json::from_value::<Switch>(record).map_err(|e| {
                    Error::invalid(format!("StatefulSet {}: annotation {ANNOTATION} holds a switchover record this pattern cannot read ({e}); check the cluster and remove `switch` from it by hand", set.name))
                })?),
                None => None,
            };
            let found = format!("Service {} selects {}; {} members", cfg.pg.service, target.as_deref().unwrap_or("nothing"), pods.len());
            // In the middle of a switchover there may be no primary at all (the
            // old one stopped, the new one not yet promoted): the record says who.
            let primary = match &interrupted {
                Some(sw) => sw.from.clone(),
                None => pg::confirm_primary(&pg::primary_candidates("", &pods, target.as_deref()))?,
            };
            report::log(report::Level::Info, &if interrupted.is_some() { found } else { format!("primary {primary}; {found}") });
            Ok((resumed.then_some(kept), interrupted, primary))
        })?;
        rotation.progress.primary_at_start = primary.clone();
        rotation.progress.original_primary = primary;
        if let Some(kept) = kept {
            if let Some(first) = kept["primary"].as_str() {
                rotation.progress.original_primary = first.to_string();
            }
            // Past the point of no return already: an interrupted switchover, or a primary that moved.
            rotation.progress.approved =
                kept["approved"] == true || interrupted.is_some() || rotation.progress.original_primary != rotation.progress.primary_at_start;
            if interrupted.is_none() {
                report::log(
                    report::Level::Info,
                    &format!(
                        "resuming an interrupted rotation: StatefulSet {} is pinned to pool {} (annotation {ANNOTATION}); no switchover was in flight",
                        cfg.pg.members.name, cfg.upgraded_pool
                    ),
                );
            }
            rotation.progress.original = kept;
            rotation.progress.pinned = true;
        }
        if interrupted.is_some() {
            rotation.progress.switch = interrupted;
            if let Err(e) = rotation.resume_switchover() {
                return rotation.rollback(&e);
            }
        }
        if let Some(refused) = preflight_gate("preflight", &cfg.preflight_input) {
            return refused;
        }
        let summary = match rotation.rotate() {
            Ok(summary) => summary,
            // Refused before anything changed: nothing to undo.
            Err(e) if !rotation.progress.pinned => return Err(e),
            Err(e) => return rotation.rollback(&e),
        };
        if let Err(e) = gate_step("post", &cfg.post_input).into_result("post") {
            return Err(Error::new(e.code, format!("the rotation finished ({summary}) but {}. State now: {}", e.message, rotation.describe())));
        }
        let dry = rotation.ctx.dry.summary_note();
        Ok(PatternResult::succeeded(format!("every member of {} runs on pool {}{dry}: {summary}", cfg.pg.members.name, cfg.upgraded_pool)))
    }
}

runner_sdk::export_pattern!(FerrisWheel);

//! Pattern `postgres-ferris-wheel`: move every member of a PostgreSQL
//! StatefulSet onto an upgraded node pool without losing a write, the seed's
//! "Ferris wheel" done safely. See manifest.toml's `steps` and `rollback`.

mod plan;

use kube_common::text::bytes;
use kube_common::{NodePools, Pod, PoolPin, Set};
use pg_common::ops::{self, Ctx, Settings};
use pg_common::pg::{self, CAUGHT_UP_SQL};
use pg_common::rows;
use pg_common::text::parse_lsn;
use plan::{Action, Snapshot, Stop, Target};
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use runner_sdk::{gate_step, preflight_gate};
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
    original_primary: String,
    /// The StatefulSet as found: replicas, the pool label's value, updateStrategy.
    original: Value,
    pinned: bool,
    switch: Option<Switch>,
}

/// A switchover in flight.
#[derive(Clone, Default)]
struct Switch {
    from: String,
    to: String,
    cascaded: Vec<String>,
    fenced: bool,
    stopped: bool,
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

    fn pin_members(&mut self, set: &Set) -> Result<u32, Error> {
        let (mut original, resumed) = self.pin.original(&set.object);
        if !resumed {
            // Scaling back to this many is the rotation's last step, in this run or a resumed one.
            original["replicas"] = json!(set.replicas);
        }
        let target = if self.cfg.replicas > 0 { self.cfg.replicas as u32 } else { original["replicas"].as_u64().unwrap_or(set.replicas as u64) as u32 };
        self.pin.apply(&self.ctx.set, &original)?;
        self.progress.original = original;
        self.progress.pinned = true;
        Ok(target)
    }

    fn rotate(&mut self) -> Result<String, Error> {
        let set = self.ctx.set.read()?;
        let target = self.pin_members(&set)?;
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
        self.progress.switch = Some(Switch { from: from.into(), to: to.into(), ..Default::default() });
        let to_pod = ctx.pod_or_placeholder(to)?;
        let removed = |p: &Pod| matches!(stop, Stop::ScaleDown(n) if p.ordinal >= *n);
        let others: Vec<String> = ctx.pods()?.into_iter().filter(|p| p.name != from && p.name != to && !removed(p)).map(|p| p.name).collect();
        let mut cascaded = Vec::new();
        let prepared = step(
            &format!("prepare {to}"),
            &format!("slots on {to}; {} re-pointed to stream from {to}", if others.is_empty() { "no other standby".into() } else { others.join(", ") }),
            || {
                self.wait_synchronous(from, to, cfg.pg.stream_timeout)?;
                if *stop == Stop::DeletePod {
                    ctx.ensure_slot(to, from)?;
                }
                for other in &others {
                    ctx.point_at_then(other, &to_pod, true, || cascaded.push(other.clone()))?;
                }
                for other in &others {
                    ctx.wait(&format!("{other} to stream from {to}"), cfg.pg.stream_timeout, || {
                        let ip = ctx.pod(other)?.and_then(|p| p.ip);
                        Ok(if ctx.streams_from(to, other, ip.as_deref())?.is_some() {
                            Poll::Done(())
                        } else {
                            Poll::NotYet(format!("{other} is not streaming from {to}"))
                        })
                    })?;
                }
                Ok(())
            },
        );
        if let Some(sw) = &mut self.progress.switch {
            sw.cascaded = cascaded;
        }
        prepared?;
        let ctx = &self.ctx;
        ctx.writes_paused.set(true);
        let fenced = step(&format!("fence {from}"), &format!("stop new writes on {from}"), || ctx.fence(from));
        // Count the fence as in place even if waiting for it failed: the rollback lifts it either way.
        if let Some(sw) = &mut self.progress.switch {
            sw.fenced = true;
        }
        fenced?;
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
        let from_uid = ctx.pod(from)?.map(|p| p.uid).unwrap_or_default();
        let stopped = step(&format!("stop {from}"), &format!("make {from} a standby of {to} and stop its server"), || {
            ctx.exec(from, &ctx.standby_command("config", from, &to_pod))?;
            match stop {
                Stop::DeletePod => ctx.set.delete_pod(from)?,
                Stop::ScaleDown(n) => ctx.set.scale(*n)?,
            }
            ctx.wait_pod_replaced(from, &from_uid, cfg.pg.stop_timeout)
        });
        if let Some(sw) = &mut self.progress.switch {
            // Once asked to stop, the old primary is no longer "intact", even if the wait failed.
            sw.stopped = true;
        }
        stopped?;
        let ctx = &self.ctx;
        step(&format!("promote {to}"), &format!("promote {to}"), || ctx.promote(to))?;
        step(&format!("repoint-service {to}"), &format!("Service {} selects {to}", ctx.service), || ctx.repoint_service(to))?;
        step(&format!("verify-writes {to}"), &format!("commit a row into {} on {to}", cfg.pg.write_check_table), || ctx.verify_writes(to))?;
        ctx.writes_paused.set(false);
        match stop {
            Stop::DeletePod => step(&format!("rejoin {from}"), &format!("{from} back on pool {} as a standby of {to}", cfg.upgraded_pool), || {
                ctx.wait_pod_ready(from, self.pin.target(), cfg.pg.rejoin_timeout)?;
                ctx.ensure_following(from, &ctx.pod_or_placeholder(to)?)?;
                // Its slots as a primary would pin WAL; its fence would outlive its role.
                ctx.drop_inactive_slots(from, &[])?;
                ctx.unfence(from)
            })?,
            Stop::ScaleDown(n) => {
                let keep: Vec<String> = (0..*n).map(|o| self.name(o)).collect();
                step(&format!("scale-down {n}"), &format!("drop the slots of members removed from {to}"), || ctx.drop_inactive_slots(to, &keep))?
            }
        }
        self.progress.switch = None;
        Ok(())
    }

    /// Every standby: no fence, no slot (none cascades from it now). The
    /// primary: slots only for the members it keeps.
    fn tidy(&self, target: u32) -> Result<(), Error> {
        let ctx = &self.ctx;
        let keep: Vec<String> = (0..target).map(|o| self.name(o)).collect();
        for (pod, state) in ops::states(&ctx.pods()?) {
            match state {
                Ok(s) if s.in_recovery => {
                    ctx.drop_inactive_slots(&pod.name, &[])?;
                    if s.read_only {
                        ctx.unfence(&pod.name)?;
                    }
                }
                Ok(_) => ctx.drop_inactive_slots(&pod.name, &keep)?,
                Err(e) => report::log(report::Level::Warn, &format!("tidy: {}", e.message)),
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
        let ctx = &self.ctx;
        let set = ctx.set.read()?;
        ctx.set.scale(n)?;
        for o in n..set.replicas.max(n) {
            let gone = self.name(o);
            ctx.wait(&format!("{gone} to be removed"), self.cfg.pg.stop_timeout, || {
                Ok(if ctx.pod(&gone)?.is_none() { Poll::Done(()) } else { Poll::NotYet(format!("{gone} still exists")) })
            })?;
        }
        let keep: Vec<String> = (0..n).map(|o| self.name(o)).collect();
        ctx.drop_inactive_slots(primary, &keep)
    }

    /// Undo what can be undone; see manifest.toml's `rollback`.
    fn rollback(&self, failure: &Error) -> Result<PatternResult, Error> {
        let outcome = step("rollback", "restore a single writable primary behind the Service", || self.restore());
        match outcome {
            Ok(summary) => Ok(PatternResult::rolled_back(format!("{}: {}. {summary}", failure.code, failure.message))),
            Err(e) => Err(Error::new(failure.code, format!("{}; rollback failed too: {}. State now: {}", failure.message, e.message, self.describe()))),
        }
    }

    fn restore(&self) -> Result<String, Error> {
        let ctx = &self.ctx;
        let mut done = Vec::new();
        let mut prefer = self.progress.original_primary.clone();
        if let Some(sw) = self.progress.switch.clone() {
            prefer = sw.from.clone();
            if !sw.stopped {
                // The old primary still runs as a primary: it is intact.
                done.push(format!("switchover {} -> {} abandoned before {} was stopped", sw.from, sw.to, sw.from));
                if sw.fenced {
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
        // With the original primary still the primary, the members added for the
        // rotation (by this run or an interrupted one) go first, so that
        // recovery spends no time on members about to be removed.
        let original_replicas = self.progress.original["replicas"].as_u64().unwrap_or(0) as u32;
        let intact = pg::state(&self.progress.original_primary).is_ok_and(|s| !s.in_recovery);
        if intact && original_replicas > 0 && ctx.set.read()?.replicas > original_replicas {
            self.scale_down(original_replicas, &self.progress.original_primary)?;
            done.push(format!("scaled back to {original_replicas}"));
        }
        let (primary, notes) = ops::recover(ctx, &prefer)?;
        done.extend(notes);
        if primary == self.progress.original_primary {
            if self.progress.pinned {
                ctx.patch(&ctx.set.object_ref(), &self.pin.restore_body(&self.progress.original))?;
                done.push("StatefulSet nodeSelector and updateStrategy restored".into());
            }
            Ok(format!("Rolled back: {primary} is the primary again. {}", done.join("; ")))
        } else {
            Ok(format!(
                "The primary had already moved, so the cluster was brought to a consistent state instead: {}. The rotation is incomplete; StatefulSet {} keeps annotation {ANNOTATION}, and running the pattern again resumes it. State now: {}",
                done.join("; "),
                ctx.set.name,
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
        let members: Vec<String> = ops::states(&pods)
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
        format!("StatefulSet {} at {replicas} replicas; Service {} selects {target}; {}", ctx.set.name, ctx.service, members.join("; "))
    }
}

struct FerrisWheel;

impl runner_sdk::pattern::Guest for FerrisWheel {
    fn run(config: String) -> Result<PatternResult, Error> {
        let cfg: Config = parse_config(&config)?;
        let ctx = Ctx::new(&cfg.pg)?;
        let pin = PoolPin::new(ANNOTATION, &cfg.pool_label, &cfg.upgraded_pool);
        let mut rotation = Rotation { ctx, cfg: &cfg, pin, progress: Progress::default(), simulated: None };
        let primary = step("discover", "find the primary and the members' pools", || {
            let pods = rotation.ctx.pods()?;
            let target = rotation.ctx.service_target()?;
            let primary = pg::confirm_primary(&pg::primary_candidates("", &pods, target.as_deref()))?;
            report::log(
                report::Level::Info,
                &format!("primary {primary}; Service {} selects {}; {} members", cfg.pg.service, target.as_deref().unwrap_or("nothing"), pods.len()),
            );
            Ok(primary)
        })?;
        rotation.progress.original_primary = primary;
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

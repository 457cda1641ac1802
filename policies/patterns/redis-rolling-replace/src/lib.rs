//! Pattern `redis-rolling-replace`: move every member of a Redis cluster
//! onto an upgraded node pool while it keeps serving: replicas first, then
//! each master hands its slots to a replica (`CLUSTER FAILOVER`) and is
//! replaced as a replica. See manifest.toml's `steps` and `rollback`.

use std::collections::BTreeSet;

use kube_common::{NodePools, Pod, PoolPin, Set, StatefulSet, namespace};
use redis_common::cluster;
use redis_common::health::{self, Limits};
use redis_common::nodes;
use redis_common::plan::{self, Action};
use runner_sdk::kube_write;
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use runner_sdk::{Approval, DryRun, gate_input, gate_step, preflight_gate, redis_write};
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

/// The annotation that keeps what the pattern changed on the StatefulSet.
const ANNOTATION: &str = "runner.dev/redis-rolling-replace";

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    pool_label: String,
    upgraded_pool: String,
    failover_mode: String,
    max_offset_lag: i64,
    preflight_input: String,
    post_input: String,
    pod_timeout: u64,
    sync_timeout: u64,
    failover_timeout: u64,
    settle_timeout: u64,
    poll_interval: u64,
    #[serde(flatten)]
    members: StatefulSet,
}

struct Run<'a> {
    cfg: &'a Config,
    /// As read when the run began; its selector finds the Pods.
    set: Set,
    pin: PoolPin,
    limits: Limits,
    dry: DryRun,
    /// The StatefulSet carries the annotation of an earlier run that did not finish.
    resumed: bool,
    pinned: bool,
    /// The StatefulSet's values before the pin, and the number of masters
    /// the rotation began with (also kept in its annotation).
    original: Value,
    /// The masters the rotation began with, for the post gate: counted after
    /// the preflight gate passed, or kept in an interrupted run's annotation.
    masters: u64,
    done: Vec<String>,
    /// Masters this run demoted, to name their replacement.
    demoted: BTreeSet<String>,
}

impl Run<'_> {
    fn log(&self, message: &str) {
        report::log(report::Level::Info, message);
    }

    fn wait<T>(&self, what: &str, timeout_ms: u64, condition: impl FnMut() -> Result<Poll<T>, Error>) -> Result<T, Error> {
        wait_for(what, timeout_ms, self.cfg.poll_interval.max(20), condition)
    }

    /// The Pods, by the selector read when the run began.
    fn pods(&self) -> Result<Vec<Pod>, Error> {
        self.cfg.members.pods_of(&self.set)
    }

    /// Done when every Pod of the set is Ready and the cluster passes the
    /// health rules; else why not.
    fn healthy(&self) -> Result<Poll<()>, Error> {
        let set = self.cfg.members.read()?;
        let pods = self.pods()?;
        let want = set.object["spec"]["replicas"].as_u64().unwrap_or(0) as usize;
        if pods.len() != want {
            return Ok(Poll::NotYet(format!("{} Pods, the StatefulSet wants {want}", pods.len())));
        }
        let findings = health::evaluate(&cluster::gather(&pods), &self.limits);
        Ok(if findings.failures.is_empty() { Poll::Done(()) } else { Poll::NotYet(findings.failures.join("; ")) })
    }

    fn settle(&self, why: &str) -> Result<(), Error> {
        if self.dry.active() {
            return Ok(());
        }
        self.wait(&format!("the cluster to be healthy {why}"), self.cfg.settle_timeout, || self.healthy())
    }

    /// The members as the planner sees them: role from each member's own
    /// `myself` line, pool from its Pod's Node.
    fn snapshot(&self) -> Result<Vec<plan::Member>, Error> {
        let pools = NodePools::list(&self.cfg.pool_label)?;
        self.pods()?.iter().map(|pod| self.member(pod, &pools)).collect()
    }

    /// [`Self::snapshot`] of the members that answer, and the names of those
    /// that do not (a Pod not Ready, a server not answering).
    fn answering(&self) -> Result<(Vec<plan::Member>, Vec<String>), Error> {
        let pools = NodePools::list(&self.cfg.pool_label)?;
        let (mut members, mut silent) = (Vec::new(), Vec::new());
        for pod in self.pods()? {
            match pod.ready.then(|| self.member(&pod, &pools)) {
                Some(Ok(member)) => members.push(member),
                _ => silent.push(pod.name),
            }
        }
        Ok((members, silent))
    }

    fn member(&self, pod: &Pod, pools: &NodePools) -> Result<plan::Member, Error> {
        let text = cluster::read_text(&pod.name, &["CLUSTER", "NODES"])?;
        let nodes = nodes::parse(&text).map_err(|e| Error::internal(format!("{}: {e}", pod.name)))?;
        let me = nodes::myself(&nodes).ok_or_else(|| Error::internal(format!("{}: CLUSTER NODES has no `myself` line", pod.name)))?;
        Ok(plan::Member {
            name: pod.name.clone(),
            ordinal: pod.ordinal,
            id: me.id.clone(),
            master_id: if me.is_master() { None } else { me.master_id.clone() },
            upgraded: pools.runs_on(pod, &self.cfg.upgraded_pool),
        })
    }

    /// The step `pin-upgraded-pool`, unless an earlier run's pin is still in
    /// place (patching it again would change nothing). `masters` is kept in
    /// the annotation of a new pin, so the post gate of a resumed run checks
    /// the number the rotation began with.
    fn pin_members(&mut self, set: &Set, masters: u64) -> Result<(), Error> {
        let (mut original, resumed) = self.pin.original(&set.object);
        match original["masters"].as_u64() {
            Some(kept) if resumed => self.masters = kept,
            _ => original["masters"] = json!(masters),
        }
        if resumed && self.pin.is_in_place(&set.object) {
            self.log(&format!(
                "StatefulSet {} is still pinned by the interrupted run (nodeSelector {}={}, updateStrategy OnDelete): not patched again",
                self.cfg.members.name, self.pin.label, self.pin.pool
            ));
        } else {
            self.pin.apply(&self.cfg.members, &original)?;
        }
        self.pinned = true;
        self.original = original;
        Ok(())
    }

    fn unpin(&self) -> Result<(), Error> {
        let set = self.cfg.members.read()?;
        // Under --dry-run the pin was never made: the values read before it stand in.
        let original = match self.pin.original(&set.object) {
            (kept, true) => kept,
            (_, false) => self.original.clone(),
        };
        let strategy = if original["updateStrategy"].is_null() { json!({"type": "RollingUpdate"}) } else { original["updateStrategy"].clone() };
        self.cfg.members.patch(&self.pin.release_body(&strategy)).map(|_| ())
    }

    /// Evict `member`'s Pod and wait until it is back, Ready, on the
    /// upgraded pool, synced, and the cluster healthy.
    fn replace(&self, member: &str) -> Result<(), Error> {
        let cfg = self.cfg;
        let ns = namespace(&cfg.members.namespace);
        let old = self.cfg.members.pod(member)?.ok_or_else(|| Error::new(ErrorCode::NotFound, format!("Pod {member} does not exist")))?;
        self.wait(&format!("the eviction of {member} to be allowed"), cfg.pod_timeout, || match kube_write::evict(ns.as_deref(), member) {
            Ok(()) => Ok(Poll::Done(())),
            Err(e) if e.code == ErrorCode::Conflict => Ok(Poll::NotYet(format!("evicting {member}: {}", e.message))),
            Err(e) => Err(Error::new(e.code, format!("evict {member}: {}", e.message))),
        })?;
        if self.dry.active() {
            return Ok(());
        }
        let pod = self.wait(&format!("{member} to be back and Ready on pool {}", cfg.upgraded_pool), cfg.pod_timeout, || {
            Ok(match self.cfg.members.pod(member)? {
                None => Poll::NotYet(format!("{member} is gone, not recreated yet")),
                Some(p) if p.uid == old.uid => Poll::NotYet(format!("{member} is still the old Pod (terminating: {})", p.terminating)),
                Some(p) if !p.ready => Poll::NotYet(format!("{member} is {} on node {}, not Ready", p.phase, p.node.as_deref().unwrap_or("none"))),
                Some(p) => Poll::Done(p),
            })
        })?;
        let pool = NodePools::list(&cfg.pool_label)?.of(&pod).unwrap_or("no node").to_string();
        if pool != cfg.upgraded_pool {
            return Err(Error::internal(format!(
                "{member} came back on node {} of pool {pool}, not {}",
                pod.node.as_deref().unwrap_or("none"),
                cfg.upgraded_pool
            )));
        }
        let ip = pod.ip.clone().unwrap_or_default();
        self.wait(&format!("{member} to be connected and synced"), cfg.sync_timeout, || {
            let me = cluster::state(member)?;
            let r = &me.replication;
            if r.is_master() {
                // The cluster promoted it meanwhile (its master failed): serving slots is what counts.
                let slots = me.myself().map_or(0, nodes::Node::slot_count);
                return Ok(if slots > 0 { Poll::Done(()) } else { Poll::NotYet(format!("{member} is a master without slots")) });
            }
            if !r.link_up || r.sync_in_progress {
                return Ok(Poll::NotYet(format!(
                    "{member}: master_link_status:{}{}",
                    if r.link_up { "up" } else { "down" },
                    if r.sync_in_progress { ", sync in progress" } else { "" }
                )));
            }
            let Some(host) = r.master_host.clone() else { return Ok(Poll::NotYet(format!("{member} names no master"))) };
            let pods = self.pods()?;
            let Some(master) = pods.iter().find(|p| p.ip.as_deref() == Some(host.as_str())) else {
                return Ok(Poll::NotYet(format!("{member} replicates from {host}, which is no member's address")));
            };
            let mr = cluster::state(&master.name)?.replication;
            Ok(match mr.replica_at(&ip) {
                Some(a) if a.state == "online" && mr.master_repl_offset.saturating_sub(a.offset) <= self.limits.max_offset_lag => Poll::Done(()),
                Some(a) => {
                    Poll::NotYet(format!("{member} is {} bytes behind {} (state {})", mr.master_repl_offset.saturating_sub(a.offset), master.name, a.state))
                }
                None => Poll::NotYet(format!("{} does not list {member} among its replicas yet", master.name)),
            })
        })?;
        self.settle(&format!("after replacing {member}"))
    }

    /// `CLUSTER FAILOVER` on `replica`, then wait for the roles to swap.
    fn failover(&self, master: &str, replica: &str) -> Result<(), Error> {
        let cfg = self.cfg;
        let mut args = vec!["CLUSTER".to_string(), "FAILOVER".to_string()];
        match cfg.failover_mode.as_str() {
            "default" => {}
            "force" => args.push("FORCE".into()),
            "takeover" => args.push("TAKEOVER".into()),
            other => return Err(Error::invalid(format!("failover-mode `{other}`: expected default, force or takeover"))),
        }
        let started = clock::now();
        redis_write::command(replica, &args).map_err(|e| Error::new(e.code, format!("{replica}: {}: {}", args.join(" "), e.message)))?;
        if self.dry.active() {
            return Ok(());
        }
        let replica_ip = self.cfg.members.pod(replica)?.and_then(|p| p.ip).unwrap_or_default();
        // An OK only schedules the failover: ROLE on both sides says when it happened.
        self.wait(&format!("{replica} to take over from {master}"), cfg.failover_timeout, || {
            let new = cluster::read(replica, &["ROLE"])?;
            if new[0] != "master" {
                return Ok(Poll::NotYet(format!("{replica} is still {}", new[0])));
            }
            let old = cluster::read(master, &["ROLE"])?;
            Ok(if old[0] == "slave" && old[1] == replica_ip.as_str() { Poll::Done(()) } else { Poll::NotYet(format!("{master} answers ROLE {old}")) })
        })?;
        report::metric(&format!("failover {master}"), (clock::now().saturating_sub(started)) as f64, "ms");
        self.settle(&format!("after the failover of {master}"))
    }

    fn act(&mut self, action: &Action) -> Result<(), Error> {
        match action {
            Action::Replace { member } => {
                let what = if self.demoted.contains(member) { "demoted master" } else { "replica" };
                let description = format!("evict the {what}'s Pod; wait until it is back on pool {} and synced", self.cfg.upgraded_pool);
                step(&action.to_string(), &description, || self.replace(member))?;
                self.done.push(format!("replaced {member}"));
            }
            Action::Failover { master, replica } => {
                let mode = if self.cfg.failover_mode == "default" { String::new() } else { format!(" {}", self.cfg.failover_mode.to_uppercase()) };
                step(&action.to_string(), &format!("CLUSTER FAILOVER{mode} on {replica}; wait until it is the master and {master} its replica"), || {
                    self.failover(master, replica)
                })?;
                self.demoted.insert(master.clone());
                self.done.push(format!("{replica} took over from {master}"));
            }
        }
        Ok(())
    }

    /// Before the first change: the first eviction restarts a member and
    /// cannot be undone, and a failover moves slots, so the operator approves
    /// the whole plan (walked on a copy of `members`) before the pin. A no
    /// ends the run `rolled-back` with nothing changed.
    fn approve(&mut self, members: &[plan::Member]) -> Result<(), Error> {
        let cfg = self.cfg;
        let mut sim = members.to_vec();
        let mut actions = Vec::new();
        while let Some(action) = plan::next(&sim).map_err(Error::internal)? {
            if actions.len() > 4 * sim.len() + 8 {
                break;
            }
            plan::apply(&mut sim, &action);
            actions.push(action);
        }
        let failovers: Vec<String> = actions
            .iter()
            .filter_map(|a| match a {
                Action::Failover { master, replica } => Some(format!("{master} -> {replica}")),
                Action::Replace { .. } => None,
            })
            .collect();
        let summary = format!(
            "replace every member of Redis cluster {} onto pool {}, with {} failover(s) ({})",
            cfg.members.name,
            cfg.upgraded_pool,
            failovers.len(),
            if failovers.is_empty() { "none".to_string() } else { failovers.join(", ") }
        );
        let mut sorted: Vec<&plan::Member> = members.iter().collect();
        sorted.sort_by_key(|m| m.ordinal);
        let roles: Vec<String> = sorted
            .iter()
            .map(|m| format!("{} {}{}", m.name, if m.is_master() { "master" } else { "replica" }, if m.upgraded { " (upgraded pool)" } else { "" }))
            .collect();
        let mode = if cfg.failover_mode == "default" { String::new() } else { format!(" {}", cfg.failover_mode.to_uppercase()) };
        let details = [
            format!("StatefulSet {}: {}", cfg.members.name, roles.join(", ")),
            format!("pin: nodeSelector {}={}, updateStrategy OnDelete (annotation {ANNOTATION})", cfg.pool_label, cfg.upgraded_pool),
            format!(
                "then, in order (each Pod evicted and back on pool {} before the next; CLUSTER FAILOVER{mode} on the replica): {}",
                cfg.upgraded_pool,
                actions.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
            ),
            "a Pod evicted or a failover made cannot be undone; a failure stops the run and a re-run resumes it".to_string(),
        ]
        .join("\n");
        match Approval::ask(&summary, &details)? {
            Approval::Approved => Ok(()),
            Approval::Declined => Err(Approval::declined(&summary)),
        }
    }

    /// Pin, then take the plan's actions until none is left. `false` when
    /// there was nothing to do and no pin to take off: every member on the
    /// upgraded pool, the Pod template selecting it, no earlier run's
    /// annotation; such a run changes nothing.
    fn rotate(&mut self) -> Result<bool, Error> {
        // After the preflight gate passed: the cluster as the rotation begins (or resumes).
        let members = self.snapshot()?;
        let set = self.cfg.members.read()?;
        self.masters = members.iter().filter(|m| m.is_master()).count() as u64;
        if !self.resumed && plan::next(&members).map_err(Error::internal)?.is_none() && self.pin.selects_pool(&set.object) {
            return Ok(false);
        }
        if !self.resumed {
            // An interrupted run was approved before it pinned anything: a re-run just continues.
            self.approve(&members)?;
        }
        self.pin_members(&set, self.masters)?;
        let mut simulated = if self.dry.active() { Some(members) } else { None };
        let mut last: Option<(Action, Vec<plan::Member>)> = None;
        let limit = 4 * simulated.as_ref().map_or(16, Vec::len) + 8;
        for _ in 0..limit {
            let members = match &simulated {
                Some(s) => s.clone(),
                None => {
                    self.settle("before the next step")?;
                    self.snapshot()?
                }
            };
            let Some(action) = plan::next(&members).map_err(Error::internal)? else {
                return Ok(true);
            };
            if last.as_ref() == Some(&(action.clone(), members.clone())) {
                return Err(Error::internal(format!("{action:?} did not change the cluster; stopping rather than repeating it")));
            }
            self.act(&action)?;
            if let Some(s) = &mut simulated {
                plan::apply(s, &action);
            }
            last = Some((action, members));
        }
        Err(Error::internal("the plan did not finish within its step limit"))
    }

    /// Each member's role and pool, and whether every slot is served.
    fn describe(&self) -> String {
        let pods = self.pods().unwrap_or_default();
        let pools = NodePools::list(&self.cfg.pool_label).unwrap_or_default();
        let mut lines = Vec::new();
        let mut unserved = None;
        for pod in &pods {
            let pool = pools.of(pod).unwrap_or("no node");
            let role = match cluster::state(&pod.name) {
                Ok(s) => {
                    if unserved.is_none() {
                        unserved = Some(
                            nodes::count(&nodes::unassigned(&s.nodes)) + s.cluster.get("cluster_slots_fail").and_then(|v| v.parse::<u32>().ok()).unwrap_or(0),
                        );
                    }
                    match s.myself() {
                        Some(me) if me.is_master() => format!("master of {} slots", me.slot_count()),
                        Some(_) => format!("replica (link {})", if s.replication.link_up { "up" } else { "down" }),
                        None => "unknown role".into(),
                    }
                }
                Err(e) => format!("not answering ({})", e.message),
            };
            lines.push(format!("{} {role} on pool {pool}", pod.name));
        }
        let slots = match unserved {
            Some(0) => format!("all {} slots served", nodes::SLOTS),
            Some(n) => format!("{n} slots NOT served"),
            None => "slot coverage unknown (no member answered)".into(),
        };
        format!("{slots}; {}", lines.join("; "))
    }

    /// Stop after a failure: let the cluster settle, describe it.
    fn stop(&self, failure: Error) -> Error {
        let settled = step("stop", "wait for the cluster to serve every slot again; change nothing", || self.settle("after the failure"));
        let health = match settled {
            Ok(()) => "the cluster is healthy".to_string(),
            Err(e) => format!("the cluster did not become healthy: {}", e.message),
        };
        let done = if self.done.is_empty() { "nothing".to_string() } else { self.done.join(", ") };
        Error::new(
            failure.code,
            format!(
                "stopped: {}. Done before: {done}. {health}. Now: {}. StatefulSet {} keeps the pin (nodeSelector {}={}, updateStrategy OnDelete) and annotation {ANNOTATION}; run the pattern again to resume.",
                failure.message,
                self.describe(),
                self.cfg.members.name,
                self.pin.label,
                self.pin.pool
            ),
        )
    }
}

struct RedisRollingReplace;

impl runner_sdk::pattern::Guest for RedisRollingReplace {
    fn run(config: String) -> Result<PatternResult, Error> {
        let cfg: Config = parse_config(&config)?;
        if !["default", "force", "takeover"].contains(&cfg.failover_mode.as_str()) {
            return Err(Error::invalid(format!("failover-mode `{}`: expected default, force or takeover", cfg.failover_mode)));
        }
        if cfg.max_offset_lag < 0 {
            return Err(Error::invalid("max-offset-lag must not be negative"));
        }
        let limits = Limits { max_offset_lag: cfg.max_offset_lag as u64, min_replicas: 1, masters: 0 };
        let pin = PoolPin::new(ANNOTATION, &cfg.pool_label, &cfg.upgraded_pool);
        let mut run = Run {
            cfg: &cfg,
            set: Set::default(),
            pin,
            limits,
            dry: DryRun::of_this_run(),
            resumed: false,
            pinned: false,
            original: Value::Null,
            masters: 0,
            done: Vec::new(),
            demoted: BTreeSet::new(),
        };
        step("discover", "the members, their roles and pools", || {
            run.set = run.cfg.members.read()?;
            run.resumed = run.pin.original(&run.set.object).1;
            // Members that do not answer are left to the preflight gate to judge.
            let (members, silent) = run.answering()?;
            if run.resumed {
                run.log(&format!(
                    "resuming an interrupted rotation: StatefulSet {} has carried annotation {ANNOTATION} since an earlier run that did not finish; {}",
                    cfg.members.name,
                    plan::progress(&members, &silent)
                ));
            }
            let on_old: Vec<&str> = members.iter().filter(|m| !m.upgraded).map(|m| m.name.as_str()).collect();
            run.log(&format!(
                "{} members, {} masters; not on pool {} yet: {}",
                members.len() + silent.len(),
                members.iter().filter(|m| m.is_master()).count(),
                cfg.upgraded_pool,
                if on_old.is_empty() { "none".into() } else { on_old.join(", ") }
            ));
            Ok(())
        })?;
        let scope = [("statefulset", json!(cfg.members.name)), ("namespace", json!(cfg.members.namespace))];
        let mut preflight_extra = scope.to_vec();
        if run.resumed {
            // The interrupted step may still be settling (an evicted Pod coming back, a failover
            // the cluster is completing): the gate judges the cluster once it has had the time
            // this pattern gives itself before every step, not the moment the run starts.
            preflight_extra.push(("settle-timeout", json!(cfg.settle_timeout)));
        }
        let preflight = gate_input(&cfg.preflight_input, &preflight_extra)?;
        if let Some(mut refused) = preflight_gate("preflight", &preflight) {
            if let (true, Ok(result)) = (run.resumed, &mut refused) {
                result.summary = format!(
                    "{} by this run; StatefulSet {} keeps the interrupted run's pin (annotation {ANNOTATION}): run the pattern again to resume once the cluster is healthy",
                    result.summary, cfg.members.name
                );
            }
            return refused;
        }
        match run.rotate() {
            Ok(true) => {
                if let Err(e) = step("restore-update-strategy", "put back the original updateStrategy; the nodeSelector stays", || run.unpin()) {
                    return Err(run.stop(e));
                }
            }
            Ok(false) => {}
            Err(e) if Approval::was_declined(&e) && !run.pinned => return Ok(PatternResult::rolled_back(format!("{}; nothing was changed", e.message))),
            // A resumed run found the pin in place: the StatefulSet stays as the stop describes it.
            Err(e) if run.pinned || run.resumed => return Err(run.stop(e)),
            Err(e) => return Err(e),
        }
        let mut post_extra = scope.to_vec();
        post_extra.push(("masters", json!(run.masters)));
        post_extra.push(("settle-timeout", json!(20_000)));
        let post = gate_input(&cfg.post_input, &post_extra)?;
        if let Err(e) = gate_step("post", &post).into_result("post") {
            return Err(Error::new(e.code, format!("the replacement finished ({}) but {}. Now: {}", run.done.join(", "), e.message, run.describe())));
        }
        let dry = run.dry.summary_note();
        let done = if run.done.is_empty() { "nothing needed doing".to_string() } else { run.done.join(", ") };
        Ok(PatternResult::succeeded(format!("every member of {} runs on pool {}{dry}: {done}", cfg.members.name, cfg.upgraded_pool)))
    }
}

runner_sdk::export_pattern!(RedisRollingReplace);

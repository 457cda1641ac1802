//! Pattern `redis-rolling-replace`: move every member of a Redis cluster
//! onto an upgraded node pool while it keeps serving: replicas first, then
//! each master hands its slots to a replica (`CLUSTER FAILOVER`) and is
//! replaced as a replica. See the manifest's `steps` and `rollback`.

use std::cell::Cell;
use std::collections::BTreeSet;

use redis_common::cluster::{self, Pod};
use redis_common::health::{self, Limits};
use redis_common::nodes;
use redis_common::plan::{self, Action};
use runner_sdk::kube_write::{self, PatchType};
use runner_sdk::pattern::{PatternResult, PatternStatus};
use runner_sdk::prelude::*;
use runner_sdk::{redis_write, wait_until};
use serde::Deserialize;

runner_sdk::manifest!(
    r#"
name = "redis-rolling-replace"
version = "0.1.0"
description = "Moves every member of a Redis cluster (one StatefulSet, masters with replicas) onto an upgraded node pool with the cluster serving every slot throughout. It pins the StatefulSet's Pods to the upgraded pool (nodeSelector) with updateStrategy OnDelete, so nothing restarts unless this pattern evicts it. Each replica's Pod is evicted and comes back on the upgraded pool with its volume (and so its node id); the pattern waits until it is Ready there, its link to the master is up, the sync is over and its offset is within `max-offset-lag` of the master's, and the whole cluster is healthy again. Then, for each master still on the old pool, `CLUSTER FAILOVER` (default mode: the master stops writes until the replica has caught up, so no acknowledged write is lost; FORCE or TAKEOVER only when `failover-mode` says so) is sent to a replica already on the upgraded pool; an OK only schedules it, so the pattern waits until ROLE shows the roles swapped, then replaces the demoted master like a replica. Before every step the cluster must be healthy (the health rules of redis-cluster-healthy); if it is not, the pattern waits up to `settle-timeout` for it to recover on its own (a failover the cluster makes itself is followed: the plan is recomputed from the cluster's state before each step). A run that stopped resumes from the cluster's state."
world = "pattern"
capabilities = [
  "kube:patch:apps/v1/StatefulSet",
  "kube:evict:v1/Pod",
  "redis:command:*",
  "kube:get:apps/v1/StatefulSet",
  "kube:get:v1/Pod",
  "kube:list:v1/Pod",
  "kube:list:v1/Node",
  "redis:read:*",
  "gates:run:preflight",
  "gates:run:post",
]
steps = [
  { name = "discover", description = "read the StatefulSet, its Pods and the Nodes' pools; each member's role from its own CLUSTER NODES line" },
  { name = "preflight", description = "run the `preflight` gate; stop before any change if it fails" },
  { name = "pin-upgraded-pool", description = "patch the StatefulSet: nodeSelector <pool-label>=<upgraded-pool>, updateStrategy OnDelete, the original values kept in annotation runner.dev/redis-rolling-replace" },
  { name = "replace <replica>", description = "evict the replica's Pod (honouring PodDisruptionBudgets); wait until it is Ready on the upgraded pool, master_link_status:up, not syncing, its offset within max-offset-lag of its master's, and the cluster healthy" },
  { name = "failover <master> -> <replica>", description = "CLUSTER FAILOVER (mode per failover-mode) on a replica of the master that runs on the upgraded pool; wait until ROLE shows the replica as master and the old master as its replica, and the cluster healthy; the demoted master is then replaced like a replica" },
  { name = "restore-update-strategy", description = "put back the original updateStrategy, remove the annotation; the nodeSelector stays on the upgraded pool" },
  { name = "post", description = "run the `post` gate (with the number of masters found at the start)" },
]
rollback = "Nothing is moved back: a member already on the upgraded pool stays there. A failed preflight gate changes nothing. On a failed step or wait the pattern stops at once, waits up to `settle-timeout` for the cluster to serve every slot again (its own failover included), and ends with an error that describes each member's role and pool and whether every slot is served; the StatefulSet keeps the pin (nodeSelector, updateStrategy OnDelete) and the annotation, so no Pod restarts behind the operator's back, and running the pattern again resumes from the cluster's state. A CLUSTER FAILOVER that did not happen within `failover-timeout` leaves the old master serving."

[config.statefulset]
type = "string"
default = "redis-cluster"
description = "the Redis StatefulSet; members are <statefulset>-<ordinal>"

[config.namespace]
type = "string"
default = ""
description = "namespace (empty: the target's default)"

[config.pool-label]
type = "string"
default = "agentpool"
description = "the Node label that names a node pool"

[config.upgraded-pool]
type = "string"
default = "upgraded-pool"
description = "the pool every member must end on"

[config.failover-mode]
type = "string"
default = "default"
description = "CLUSTER FAILOVER mode: default (coordinated with the master, no lost write), force (without the master's agreement), takeover (without the cluster's agreement either)"

[config.max-offset-lag]
type = "integer"
default = 1048576
description = "bytes of replication stream a replica may trail its master to count as synced"

[config.preflight-input]
type = "string"
default = "{}"
description = "JSON configuration for the preflight gate (statefulset and namespace are added)"

[config.post-input]
type = "string"
default = "{}"
description = "JSON configuration for the post gate (statefulset, namespace and the number of masters are added)"

[config.pod-timeout]
type = "duration"
default = "5m"
description = "for an evicted Pod to be back and Ready on the upgraded pool (eviction retried meanwhile while a budget forbids it)"

[config.sync-timeout]
type = "duration"
default = "5m"
description = "for a replaced member to be connected and synced"

[config.failover-timeout]
type = "duration"
default = "60s"
description = "for the roles to swap after CLUSTER FAILOVER"

[config.settle-timeout]
type = "duration"
default = "2m"
description = "for the cluster to be healthy before each step (and to serve again after a failure)"

[config.poll-interval]
type = "duration"
default = "200ms"
description = "how often waits look again"

[gates.preflight]
default = "redis-cluster-healthy"
description = "must pass before anything changes"

[gates.post]
default = "redis-cluster-healthy"
description = "must pass after the replacement"
"#
);

/// The annotation that keeps what the pattern changed on the StatefulSet.
const ANNOTATION: &str = "runner.dev/redis-rolling-replace";

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    statefulset: String,
    namespace: String,
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
}

/// Whether a call failed for good (no retry can help).
fn fatal(e: &Error) -> bool {
    matches!(e.code, ErrorCode::Denied | ErrorCode::Invalid)
}

struct Run<'a> {
    cfg: &'a Config,
    selector: String,
    limits: Limits,
    /// Set once a mutation comes back as planned (`--dry-run`).
    dry: Cell<bool>,
    pinned: bool,
    /// The StatefulSet's values before the pin (also kept in its annotation).
    original: Value,
    done: Vec<String>,
    /// Masters this run demoted, to name their replacement.
    demoted: BTreeSet<String>,
}

impl Run<'_> {
    fn log(&self, message: &str) {
        report::log(report::Level::Info, message);
    }

    /// Poll `condition` until it yields, fails for good, or `timeout_ms`
    /// passes. Other errors count as "not yet" (a restarting member does
    /// not answer); the last reason is quoted when time runs out.
    fn wait<T>(&self, what: &str, timeout_ms: u64, mut condition: impl FnMut() -> Result<Result<T, String>, Error>) -> Result<T, Error> {
        let mut last = String::new();
        let result = wait_until(what, timeout_ms, self.cfg.poll_interval.max(20), || match condition() {
            Ok(Ok(value)) => Ok(Some(value)),
            Ok(Err(why)) => {
                last = why;
                Ok(None)
            }
            Err(e) if fatal(&e) => Err(e),
            Err(e) => {
                last = e.message;
                Ok(None)
            }
        });
        result.map_err(|e| if e.code == ErrorCode::Timeout && !last.is_empty() { Error::timeout(format!("{}; last seen: {last}", e.message)) } else { e })
    }

    fn pods(&self) -> Result<Vec<Pod>, Error> {
        cluster::pods(&self.cfg.namespace, &self.cfg.statefulset, &self.selector)
    }

    fn pool_of(&self, pod: &Pod) -> Result<String, Error> {
        let pools = cluster::node_pools(&self.cfg.pool_label)?;
        Ok(pod.node.as_ref().and_then(|n| pools.get(n)).cloned().unwrap_or_else(|| "no node".into()))
    }

    /// `Ok` when every Pod of the set is Ready and the cluster passes the
    /// health rules; else why not.
    fn healthy(&self) -> Result<Result<(), String>, Error> {
        let (set, _) = cluster::statefulset(&self.cfg.namespace, &self.cfg.statefulset)?;
        let pods = self.pods()?;
        let want = set["spec"]["replicas"].as_u64().unwrap_or(0) as usize;
        if pods.len() != want {
            return Ok(Err(format!("{} Pods, the StatefulSet wants {want}", pods.len())));
        }
        let findings = health::evaluate(&cluster::gather(&pods), &self.limits);
        Ok(if findings.failures.is_empty() { Ok(()) } else { Err(findings.failures.join("; ")) })
    }

    fn settle(&self, why: &str) -> Result<(), Error> {
        if self.dry.get() {
            return Ok(());
        }
        self.wait(&format!("the cluster to be healthy {why}"), self.cfg.settle_timeout, || self.healthy())
    }

    /// The members as the planner sees them: role from each member's own
    /// `myself` line, pool from its Pod's Node.
    fn snapshot(&self) -> Result<Vec<plan::Member>, Error> {
        let pools = cluster::node_pools(&self.cfg.pool_label)?;
        let mut members = Vec::new();
        for pod in self.pods()? {
            let text = cluster::read_text(&pod.name, &["CLUSTER", "NODES"])?;
            let nodes = nodes::parse(&text).map_err(|e| Error::internal(format!("{}: {e}", pod.name)))?;
            let me = nodes::myself(&nodes).ok_or_else(|| Error::internal(format!("{}: CLUSTER NODES has no `myself` line", pod.name)))?;
            let upgraded = pod.node.as_ref().and_then(|n| pools.get(n)).is_some_and(|p| *p == self.cfg.upgraded_pool);
            members.push(plan::Member { name: pod.name.clone(), ordinal: pod.ordinal, id: me.id.clone(), master_id: if me.is_master() { None } else { me.master_id.clone() }, upgraded });
        }
        Ok(members)
    }

    fn pin(&mut self) -> Result<(), Error> {
        let (set, _) = cluster::statefulset(&self.cfg.namespace, &self.cfg.statefulset)?;
        let original: Value = set["metadata"]["annotations"][ANNOTATION].as_str().and_then(|a| serde_json::from_str(a).ok()).unwrap_or_else(|| {
            json!({"poolValue": set["spec"]["template"]["spec"]["nodeSelector"][&self.cfg.pool_label], "updateStrategy": set["spec"]["updateStrategy"]})
        });
        let body = json!({
            "metadata": {"annotations": {ANNOTATION: original.to_string()}},
            "spec": {
                // The pattern decides when each Pod restarts; a rolling update must not.
                "updateStrategy": {"type": "OnDelete", "rollingUpdate": null},
                "template": {"spec": {"nodeSelector": {&self.cfg.pool_label: &self.cfg.upgraded_pool}}},
            },
        });
        let cfg = self.cfg;
        let answer = step("pin-upgraded-pool", &format!("nodeSelector {}={}, updateStrategy OnDelete", cfg.pool_label, cfg.upgraded_pool), || self.patch_set(&body))?;
        if answer["metadata"]["resourceVersion"].is_null() {
            self.dry.set(true);
            self.log("dry run: mutations are planned, not made; waits are skipped and the plan assumes each step succeeds");
        }
        self.pinned = true;
        self.original = original;
        Ok(())
    }

    fn patch_set(&self, body: &Value) -> Result<Value, Error> {
        let answer = kube_write::patch(&cluster::set_ref(&self.cfg.namespace, &self.cfg.statefulset), PatchType::Merge, &body.to_string())
            .map_err(|e| Error::new(e.code, format!("patch StatefulSet {}: {}", self.cfg.statefulset, e.message)))?;
        Ok(serde_json::from_str(&answer).unwrap_or(Value::Null))
    }

    fn unpin(&self) -> Result<(), Error> {
        let (set, _) = cluster::statefulset(&self.cfg.namespace, &self.cfg.statefulset)?;
        // Under --dry-run the pin was never made: the values read before it stand in.
        let original: Value = set["metadata"]["annotations"][ANNOTATION].as_str().and_then(|a| serde_json::from_str(a).ok()).unwrap_or_else(|| self.original.clone());
        let strategy = if original["updateStrategy"].is_null() { json!({"type": "RollingUpdate"}) } else { original["updateStrategy"].clone() };
        let body = json!({"metadata": {"annotations": {ANNOTATION: null}}, "spec": {"updateStrategy": strategy}});
        self.patch_set(&body).map(|_| ())
    }

    /// Evict `member`'s Pod and wait until it is back, Ready, on the
    /// upgraded pool, synced, and the cluster healthy.
    fn replace(&self, member: &str) -> Result<(), Error> {
        let cfg = self.cfg;
        let ns = cluster::namespace(&cfg.namespace);
        let old = cluster::pod(&cfg.namespace, &cfg.statefulset, member)?.ok_or_else(|| Error::new(ErrorCode::NotFound, format!("Pod {member} does not exist")))?;
        self.wait(&format!("the eviction of {member} to be allowed"), cfg.pod_timeout, || match kube_write::evict(ns.as_deref(), member) {
            Ok(()) => Ok(Ok(())),
            Err(e) if e.code == ErrorCode::Conflict => Ok(Err(format!("evicting {member}: {}", e.message))),
            Err(e) => Err(Error::new(e.code, format!("evict {member}: {}", e.message))),
        })?;
        if self.dry.get() {
            return Ok(());
        }
        let pod = self.wait(&format!("{member} to be back and Ready on pool {}", cfg.upgraded_pool), cfg.pod_timeout, || {
            Ok(match cluster::pod(&cfg.namespace, &cfg.statefulset, member)? {
                None => Err(format!("{member} is gone, not recreated yet")),
                Some(p) if p.uid == old.uid => Err(format!("{member} is still the old Pod (terminating: {})", p.terminating)),
                Some(p) if !p.ready => Err(format!("{member} is {} on node {}, not Ready", p.phase, p.node.as_deref().unwrap_or("none"))),
                Some(p) => Ok(p),
            })
        })?;
        let pool = self.pool_of(&pod)?;
        if pool != cfg.upgraded_pool {
            return Err(Error::internal(format!("{member} came back on node {} of pool {pool}, not {}", pod.node.as_deref().unwrap_or("none"), cfg.upgraded_pool)));
        }
        let ip = pod.ip.clone().unwrap_or_default();
        self.wait(&format!("{member} to be connected and synced"), cfg.sync_timeout, || {
            let me = cluster::state(member)?;
            let r = &me.replication;
            if r.is_master() {
                // The cluster promoted it meanwhile (its master failed): serving slots is what counts.
                let slots = me.myself().map_or(0, nodes::Node::slot_count);
                return Ok(if slots > 0 { Ok(()) } else { Err(format!("{member} is a master without slots")) });
            }
            if !r.link_up || r.sync_in_progress {
                return Ok(Err(format!("{member}: master_link_status:{}{}", if r.link_up { "up" } else { "down" }, if r.sync_in_progress { ", sync in progress" } else { "" })));
            }
            let Some(host) = r.master_host.clone() else { return Ok(Err(format!("{member} names no master"))) };
            let pods = self.pods()?;
            let Some(master) = pods.iter().find(|p| p.ip.as_deref() == Some(host.as_str())) else {
                return Ok(Err(format!("{member} replicates from {host}, which is no member's address")));
            };
            let mr = cluster::state(&master.name)?.replication;
            Ok(match mr.replica_at(&ip) {
                Some(a) if a.state == "online" && mr.master_repl_offset.saturating_sub(a.offset) <= self.limits.max_offset_lag => Ok(()),
                Some(a) => Err(format!("{member} is {} bytes behind {} (state {})", mr.master_repl_offset.saturating_sub(a.offset), master.name, a.state)),
                None => Err(format!("{} does not list {member} among its replicas yet", master.name)),
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
        if self.dry.get() {
            return Ok(());
        }
        let replica_ip = cluster::pod(&cfg.namespace, &cfg.statefulset, replica)?.and_then(|p| p.ip).unwrap_or_default();
        // An OK only schedules the failover: ROLE on both sides says when it happened.
        self.wait(&format!("{replica} to take over from {master}"), cfg.failover_timeout, || {
            let new = cluster::read(replica, &["ROLE"])?;
            if new[0] != "master" {
                return Ok(Err(format!("{replica} is still {}", new[0])));
            }
            let old = cluster::read(master, &["ROLE"])?;
            Ok(if old[0] == "slave" && old[1] == replica_ip.as_str() { Ok(()) } else { Err(format!("{master} answers ROLE {old}")) })
        })?;
        report::metric(&format!("failover {master}"), (clock::now().saturating_sub(started)) as f64, "ms");
        self.settle(&format!("after the failover of {master}"))
    }

    fn act(&mut self, action: &Action) -> Result<(), Error> {
        match action {
            Action::Replace { member } => {
                let what = if self.demoted.contains(member) { "demoted master" } else { "replica" };
                let description = format!("evict the {what}'s Pod; wait until it is back on pool {} and synced", self.cfg.upgraded_pool);
                step(&format!("replace {member}"), &description, || self.replace(member))?;
                self.done.push(format!("replaced {member}"));
            }
            Action::Failover { master, replica } => {
                let mode = if self.cfg.failover_mode == "default" { String::new() } else { format!(" {}", self.cfg.failover_mode.to_uppercase()) };
                step(&format!("failover {master} -> {replica}"), &format!("CLUSTER FAILOVER{mode} on {replica}; wait until it is the master and {master} its replica"), || self.failover(master, replica))?;
                self.demoted.insert(master.clone());
                self.done.push(format!("{replica} took over from {master}"));
            }
        }
        Ok(())
    }

    fn rotate(&mut self) -> Result<(), Error> {
        self.pin()?;
        let mut simulated = if self.dry.get() { Some(self.snapshot()?) } else { None };
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
                return Ok(());
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
        let pools = cluster::node_pools(&self.cfg.pool_label).unwrap_or_default();
        let mut lines = Vec::new();
        let mut unserved = None;
        for pod in &pods {
            let pool = pod.node.as_ref().and_then(|n| pools.get(n)).cloned().unwrap_or_else(|| "no node".into());
            let role = match cluster::state(&pod.name) {
                Ok(s) => {
                    if unserved.is_none() {
                        unserved = Some(nodes::count(&nodes::unassigned(&s.nodes)) + s.cluster.get("cluster_slots_fail").and_then(|v| v.parse::<u32>().ok()).unwrap_or(0));
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
                self.cfg.statefulset,
                self.cfg.pool_label,
                self.cfg.upgraded_pool
            ),
        )
    }
}

/// The gate input with the pattern's own facts added where the operator gave none.
fn gate_input(text: &str, extra: &[(&str, Value)]) -> Result<String, Error> {
    let mut input: Value = serde_json::from_str(text).map_err(|e| Error::invalid(format!("gate input `{text}` is not JSON: {e}")))?;
    let object = input.as_object_mut().ok_or_else(|| Error::invalid(format!("gate input `{text}` is not a JSON object")))?;
    for (key, value) in extra {
        if !object.contains_key(*key) {
            object.insert(key.to_string(), value.clone());
        }
    }
    Ok(input.to_string())
}

fn gate(slot: &str, input: &str) -> Result<Verdict, Error> {
    let verdict = runner_sdk::gates::run(slot, input)?;
    if verdict.outcome == Outcome::Fail {
        return Err(Error::internal(format!("gate `{slot}` failed: {}", verdict.reasons.join("; "))));
    }
    Ok(verdict)
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
        let mut run = Run { cfg: &cfg, selector: String::new(), limits, dry: Cell::new(false), pinned: false, original: Value::Null, done: Vec::new(), demoted: BTreeSet::new() };
        let masters = step("discover", "the members, their roles and pools", || {
            let (_, selector) = cluster::statefulset(&cfg.namespace, &cfg.statefulset)?;
            run.selector = selector;
            let pods = run.pods()?;
            let pools = cluster::node_pools(&cfg.pool_label)?;
            // Members that are not Ready are left to the preflight gate to report.
            let mut masters = 0;
            for pod in pods.iter().filter(|p| p.ready) {
                let role = cluster::read(&pod.name, &["ROLE"])?;
                masters += usize::from(role[0] == "master");
            }
            let on_old: Vec<&str> = pods.iter().filter(|p| p.node.as_ref().and_then(|n| pools.get(n)) != Some(&cfg.upgraded_pool)).map(|p| p.name.as_str()).collect();
            run.log(&format!("{} members, {masters} masters; not on pool {} yet: {}", pods.len(), cfg.upgraded_pool, if on_old.is_empty() { "none".into() } else { on_old.join(", ") }));
            Ok(masters)
        })?;
        let scope = [("statefulset", json!(cfg.statefulset)), ("namespace", json!(cfg.namespace))];
        let preflight = gate_input(&cfg.preflight_input, &scope)?;
        if let Err(e) = step("preflight", "run the preflight gate", || gate("preflight", &preflight)) {
            return match e.code {
                ErrorCode::Internal => Ok(PatternResult { status: PatternStatus::RolledBack, summary: format!("{}; nothing was changed", e.message) }),
                _ => Err(e),
            };
        }
        if let Err(e) = run.rotate() {
            if !run.pinned {
                return Err(e);
            }
            return Err(run.stop(e));
        }
        if let Err(e) = step("restore-update-strategy", "put back the original updateStrategy; the nodeSelector stays", || run.unpin()) {
            return Err(run.stop(e));
        }
        let mut post_extra = scope.to_vec();
        post_extra.push(("masters", json!(masters)));
        post_extra.push(("settle-timeout", json!(20_000)));
        let post = gate_input(&cfg.post_input, &post_extra)?;
        if let Err(e) = step("post", "run the post gate", || gate("post", &post)) {
            return Err(Error::new(e.code, format!("the replacement finished ({}) but {}. Now: {}", run.done.join(", "), e.message, run.describe())));
        }
        let dry = if run.dry.get() { " (dry run: planned, not done)" } else { "" };
        let done = if run.done.is_empty() { "nothing needed doing".to_string() } else { run.done.join(", ") };
        Ok(PatternResult { status: PatternStatus::Succeeded, summary: format!("every member of {} runs on pool {}{dry}: {done}", cfg.statefulset, cfg.upgraded_pool) })
    }
}

runner_sdk::export_pattern!(RedisRollingReplace);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gate_input_adds_only_what_is_missing() {
        let text = gate_input(r#"{"namespace":"db"}"#, &[("namespace", json!("")), ("masters", json!(3))]).unwrap();
        let value: Value = serde_json::from_str(&text).unwrap();
        assert_eq!(value, json!({"namespace": "db", "masters": 3}));
        assert!(gate_input("[1]", &[]).is_err());
        assert!(gate_input("nope", &[]).is_err());
    }
}

//! Pattern `node-image-patch`: seed 001's emergency security patch. A
//! node-image-only upgrade of the named pools (all by default) with the
//! operator's surge and drain timeout, inside a maintenance window, the
//! database members moved off each pool by their own patterns first (as
//! `aks-upgrade` does), and a compliance report for the change ticket.

mod compliance;

use cluster_common::nodes::{self, NodeInfo};
use cluster_common::plan::{Cluster, PoolPlan, Strategy};
use cluster_common::run::{Runner, check_overrides, skipped};
use cluster_common::window::{Window, minutes_text};
use cluster_common::{Placement, placement};
use compliance::{GateRecord, PoolReport, Report};
use kube_common::text::format_timestamp_ms;
use runner_sdk::cluster::{self, NodePool};
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use runner_sdk::{Approval, DryRun, GateCall, gate_input, gate_step, run_info};
use serde::Deserialize;
use std::collections::BTreeMap;

runner_sdk::manifest!(include_str!("../manifest.toml"));

/// The key derived pool names are made from: a temporary pool holds a
/// pool's databases while its image is upgraded, whatever the image is.
const KEY: &str = "node-image";

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    pools: String,
    pool_label: String,
    max_surge: String,
    max_unavailable: String,
    drain_timeout: i64,
    maintenance_window: String,
    ignore_maintenance_window: bool,
    operation_timeout: u64,
    temporary_pool_count: i64,
    databases: String,
    readiness_input: String,
    post_input: String,
    postgres_input: String,
    redis_input: String,
    mongo_input: String,
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

const DAYS: [&str; 7] = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"];

/// `Thu 15:30 UTC`.
fn weekday_time(ms: u64) -> String {
    let minutes = ms / 60_000;
    let day = ((minutes / 1440 + 3) % 7) as usize;
    format!("{} {:02}:{:02} UTC", DAYS[day], (minutes % 1440) / 60, minutes % 60)
}

/// Whether `now_ms` is inside the window (no window: always), and if not, why not.
fn window_verdict(window: &str, now_ms: u64) -> Result<(bool, Option<String>), Error> {
    if window.trim().is_empty() {
        return Ok((true, None));
    }
    let w = Window::parse(window).map_err(|e| Error::invalid(format!("maintenance-window: {e}")))?;
    if w.contains(now_ms) {
        return Ok((true, None));
    }
    let why = format!(
        "outside the maintenance window `{}` (now {}; it next opens in {})",
        w.describe(),
        weekday_time(now_ms),
        minutes_text(w.minutes_until_open(now_ms))
    );
    Ok((false, Some(why)))
}

/// The verdict of a gate for the report.
fn gate_record(slot: &str, pool: &str, call: &GateCall) -> GateRecord {
    let (outcome, reasons) = match call {
        GateCall::Passed(v) => (if v.outcome == Outcome::Warn { "warn" } else { "pass" }, v.reasons.clone()),
        GateCall::Failed(v) => ("fail", v.reasons.clone()),
        GateCall::Errored(e) | GateCall::Host(e) => ("error", vec![e.message.clone()]),
        GateCall::Stopped(why) => ("error", vec![why.clone()]),
    };
    GateRecord { slot: slot.into(), pool: pool.into(), outcome: outcome.into(), reasons }
}

struct Patch<'a> {
    cfg: &'a Config,
    runner: Runner,
    overrides: (String, String, Option<u32>),
    added_count: u32,
    latest: BTreeMap<String, String>,
    report: Report,
}

impl Patch<'_> {
    fn cluster<'c>(&self, pools: Vec<NodePool>, placements: Vec<Placement>, is_current: &'c dyn Fn(&NodePool) -> bool) -> Cluster<'c> {
        Cluster {
            pools,
            placements,
            strategy: Strategy::Upgrade,
            key: KEY.into(),
            is_current,
            overrides: self.overrides.clone(),
            added_count: self.added_count,
        }
    }

    fn is_current(latest: &BTreeMap<String, String>) -> impl Fn(&NodePool) -> bool + '_ {
        move |p: &NodePool| latest.get(&p.name).is_some_and(|l| !l.is_empty() && *l == p.node_image_version)
    }

    fn pool(&mut self, name: &str, planned: &PoolPlan) -> Result<(), Error> {
        let pools = cluster::node_pools()?;
        let plan = if self.runner.dry.active() {
            planned.clone()
        } else {
            let is_current = Self::is_current(&self.latest);
            self.cluster(pools.clone(), self.runner.placements()?, &is_current).plan_pool(name).map_err(Error::invalid)?
        };
        let entry = self.report.pools.iter().position(|p| p.name == name);
        if let Some(why) = &plan.skip {
            skipped(&format!("pool {name}"), &format!("the node image of pool {name}"), why);
            if let Some(i) = entry {
                self.report.pools[i].status = why.clone();
            }
            return Ok(());
        }
        let pool = pools.iter().find(|p| p.name == name).cloned().ok_or_else(|| Error::new(ErrorCode::NotFound, format!("node pool {name} is gone")))?;
        let timeout = self.cfg.operation_timeout;
        let upgrade = || {
            step(
                &format!("upgrade-node-image {name}"),
                &format!("upgrade pool {name}'s node image (AKS surges new Nodes, cordons, drains and removes each old one)"),
                || self.runner.mutate(&format!("upgrade pool {name}'s node image"), || cluster::upgrade_node_image(name, timeout)).map(|_| ()),
            )
        };
        // An added temporary pool runs the pool's own version and gets the newest image.
        let result = self.runner.execute(&plan, &pool, pool.version(), &upgrade);
        if let Some(i) = entry {
            let actions = match &result {
                Ok(done) => done.clone(),
                Err(_) => plan.lines("upgrade the node image"),
            };
            self.report.pools[i].actions = actions;
            self.report.pools[i].status = if result.is_ok() { if self.runner.dry.active() { "planned" } else { "patched" } } else { "failed" }.into();
        }
        result?;
        let latest = self.latest.get(name).cloned().unwrap_or_default();
        let input = gate_input(&self.cfg.post_input, &[("pool", json!(name)), ("pool-label", json!(self.runner.pool_label)), ("node-image", json!(latest))])?;
        let call = gate_step("post", &input);
        self.report.gates.push(gate_record("post", name, &call));
        call.into_result("post").map(|_| ())
    }

    /// Fill in the after-state and hand the report over; a report that
    /// cannot be attached is logged, never a reason to fail a patch that worked.
    fn finish(&mut self, outcome: &str, error: Option<String>, order: &[String]) -> String {
        self.report.finished_ms = clock::now();
        self.report.outcome = if self.runner.dry.active() && error.is_none() { "dry run".into() } else { outcome.into() };
        self.report.error = error;
        let after = nodes::list_nodes(&self.runner.pool_label).unwrap_or_default();
        let pools = cluster::node_pools().unwrap_or_default();
        for p in &mut self.report.pools {
            p.nodes_after = after.iter().filter(|n| n.pool == p.name).cloned().collect();
            if let Some(now) = pools.iter().find(|x| x.name == p.name) {
                p.image_after = now.node_image_version.clone();
            }
            if p.status.is_empty() {
                p.status = if order.contains(&p.name) { "not reached".into() } else { "not selected".into() };
            }
        }
        match nodes::list_node_events() {
            Ok(events) => self.report.events = Report::relevant_events(&events, &self.report.pools, self.report.started_ms),
            Err(e) => report::log(report::Level::Warn, &format!("Node events not read for the compliance report: {}", e.message)),
        }
        let json_text = serde_json::to_string_pretty(&self.report.to_json()).unwrap_or_default();
        let attached = cluster::attach("compliance-report.json", &json_text).and_then(|()| cluster::attach("compliance-report.md", &self.report.to_markdown()));
        match attached {
            Ok(()) => "; compliance report attached (compliance-report.md, compliance-report.json)".into(),
            Err(e) => {
                report::log(report::Level::Error, &format!("compliance report not attached: {}", e.message));
                format!("; the compliance report could not be attached: {}", e.message)
            }
        }
    }
}

fn run(cfg: &Config) -> Result<PatternResult, Error> {
    let started = clock::now();
    check_overrides(&cfg.max_surge, &cfg.max_unavailable)?;
    let drain = match cfg.drain_timeout {
        0 => None,
        m if m > 0 && m <= 24 * 60 => Some(m as u32),
        m => return Err(Error::invalid(format!("drain-timeout {m}: minutes between 1 and 1440 (0: keep the pool's)"))),
    };
    let added_count = u32::try_from(cfg.temporary_pool_count).map_err(|_| Error::invalid("temporary-pool-count must not be negative"))?;
    let (in_window, outside) = window_verdict(&cfg.maintenance_window, started)?;
    match outside {
        Some(why) if cfg.ignore_maintenance_window => report::log(report::Level::Warn, &format!("{why}: going on, ignore-maintenance-window is true")),
        Some(why) => {
            return Err(Error::new(
                ErrorCode::Conflict,
                format!("not starting: {why}; set ignore-maintenance-window to true to patch now; nothing was changed"),
            ));
        }
        None => {}
    }
    let dry = DryRun::of_this_run();
    let databases = placement::databases(&list(&cfg.databases))?;
    if databases.is_empty() {
        report::log(report::Level::Warn, "the target names no databases (and config `databases` none): pools are upgraded with no database member moved first");
    }
    let inputs = json!({"postgres": cfg.postgres_input, "redis": cfg.redis_input, "mongo": cfg.mongo_input});
    let runner = Runner { dry, pool_label: cfg.pool_label.clone(), inputs, operation_timeout_ms: cfg.operation_timeout, databases };
    let overrides = (cfg.max_surge.clone(), cfg.max_unavailable.clone(), drain);
    let settings = runner_sdk::cluster::UpgradeSettings::unset()
        .overridden(&overrides.0, &overrides.1, overrides.2)
        .map(|s| s.describe())
        .unwrap_or_else(|| "the pools' own".into());
    let report = Report {
        run_id: run_info::id(),
        started_ms: started,
        window: cfg.maintenance_window.trim().to_string(),
        window_ignored: cfg.ignore_maintenance_window && !in_window,
        in_window,
        settings,
        ..Default::default()
    };
    let mut patch = Patch { cfg, runner, overrides, added_count, latest: BTreeMap::new(), report };
    if let Err(e) = patch.runner.settle_pools() {
        let note = patch.finish("failed", Some(e.message.clone()), &[]);
        return Err(Error::new(e.code, format!("{}; nothing was changed{note}", e.message)));
    }
    let discovered =
        step("discover", "read the node pools, the newest node image each is offered, the Nodes, the databases and where their members run", || {
            let pools = cluster::node_pools()?;
            let mut latest = BTreeMap::new();
            for p in &pools {
                latest.insert(p.name.clone(), cluster::pool_upgrade_profile(&p.name)?.latest_node_image_version);
            }
            let before = nodes::list_nodes(&cfg.pool_label)?;
            let placements = patch.runner.placements()?;
            Ok((pools, latest, before, placements))
        });
    let (pools, latest, before, placements) = match discovered {
        Ok(found) => found,
        Err(e) => {
            let note = patch.finish("failed", Some(e.message.clone()), &[]);
            return Err(Error::new(e.code, format!("{}; nothing was changed{note}", e.message)));
        }
    };
    patch.latest = latest;
    let planned = {
        let is_current = Patch::is_current(&patch.latest);
        let view = patch.cluster(pools.clone(), placements.clone(), &is_current);
        view.pools_to_do(&list(&cfg.pools)).and_then(|order| view.plan_all(&order).map(|plans| (order, plans)))
    };
    let (order, plans) = planned.map_err(Error::invalid)?;
    for p in pools.iter().filter(|p| order.contains(&p.name)) {
        patch.report.pools.push(PoolReport {
            name: p.name.clone(),
            image_before: p.node_image_version.clone(),
            latest_image: patch.latest.get(&p.name).cloned().unwrap_or_default(),
            kubernetes_version: p.version().to_string(),
            nodes_before: before.iter().filter(|n| n.pool == p.name).cloned().collect::<Vec<NodeInfo>>(),
            ..Default::default()
        });
    }
    let readiness = gate_input(&cfg.readiness_input, &[("databases", json!(cfg.databases))])?;
    let call = gate_step("readiness", &readiness);
    patch.report.gates.push(gate_record("readiness", "", &call));
    let refused = call.refused();
    if let Err(e) = call.into_result("readiness") {
        let note = patch.finish("refused", Some(e.message.clone()), &order);
        return if refused {
            Ok(PatternResult::rolled_back(format!("{}; nothing was changed{note}", e.message)))
        } else {
            Err(Error::new(e.code, format!("{}{note}", e.message)))
        };
    }
    if plans.iter().all(|p| p.skip.is_some()) {
        let note = patch.finish("succeeded", None, &order);
        return Ok(PatternResult::succeeded(format!("nothing to do: every pool ({}) already runs its newest node image{note}", order.join(", "))));
    }
    let working: Vec<&str> = plans.iter().filter(|p| p.skip.is_none()).map(|p| p.pool.as_str()).collect();
    let summary = format!("upgrade the node image of {} pool(s) ({})", working.len(), working.join(", "));
    let mut details: Vec<String> =
        plans.iter().flat_map(|p| p.lines("upgrade the node image (AKS surges, cordons, drains and removes each old Node)")).collect();
    details.push(format!("databases now: {}", placements.iter().map(Placement::describe).collect::<Vec<_>>().join("; ")));
    match Approval::ask(&summary, &details.join("\n")) {
        Ok(Approval::Approved) => {}
        Ok(Approval::Declined) => {
            let note = patch.finish("declined", None, &order);
            return Ok(PatternResult::rolled_back(format!("{}; nothing was changed{note}", Approval::declined(&summary).message)));
        }
        Err(e) => {
            let note = patch.finish("refused", Some(e.message.clone()), &order);
            return Err(Error::new(e.code, format!("{}{note}", e.message)));
        }
    }
    for (name, plan) in order.iter().zip(&plans) {
        if let Err(e) = patch.pool(name, plan) {
            let state = patch.runner.state_now();
            let message = format!(
                "stopped at pool {name}: {}. {state}. A re-run resumes from the cluster's state: pools already on their newest image are skipped, a temporary pool that exists is reused, and a database whose members all run on the destination is not moved again",
                e.message
            );
            let note = patch.finish("failed", Some(message.clone()), &order);
            return Err(Error::new(e.code, format!("{message}{note}")));
        }
    }
    let note = patch.finish("succeeded", None, &order);
    Ok(PatternResult::succeeded(format!(
        "node image upgraded on pool(s) {}{} in {} (started {}){note}",
        working.join(", "),
        patch.runner.dry.summary_note(),
        patch.report.total(),
        format_timestamp_ms(started)
    )))
}

struct NodeImagePatch;

impl runner_sdk::pattern::Guest for NodeImagePatch {
    fn run(config: String) -> Result<PatternResult, Error> {
        let cfg: Config = parse_config(&config)?;
        run(&cfg)
    }
}

runner_sdk::export_pattern!(NodeImagePatch);

#[cfg(test)]
mod tests {
    use super::*;
    use kube_common::text::parse_timestamp_ms;

    #[test]
    fn the_window_refuses_unless_ignored() {
        // 2026-12-03 is a Thursday.
        let thursday = parse_timestamp_ms("2026-12-03T15:30:00Z").unwrap();
        let saturday_night = parse_timestamp_ms("2026-12-05T23:00:00Z").unwrap();
        assert_eq!(weekday_time(thursday), "Thu 15:30 UTC");
        let (inside, refusal) = window_verdict("Sat 22:00-06:00 UTC", thursday).unwrap();
        assert!(!inside);
        assert_eq!(refusal.unwrap(), "outside the maintenance window `Sat 22:00-06:00 UTC` (now Thu 15:30 UTC; it next opens in 2d 6h 30m)");
        assert_eq!(window_verdict("Sat 22:00-06:00 UTC", saturday_night).unwrap(), (true, None));
        assert_eq!(window_verdict("", thursday).unwrap(), (true, None), "no window configured: no restriction");
        assert!(window_verdict("Caturday 22:00-06:00", thursday).unwrap_err().message.starts_with("maintenance-window: `Caturday` is not a day"));
    }

    #[test]
    fn gate_records_keep_the_outcome_and_the_findings() {
        let verdict =
            |outcome| Verdict { outcome, reasons: vec!["postgres-pdb: allows 0 disruptions (minAvailable 2, 2 Ready)".into()], evidence: "{}".into() };
        assert_eq!(gate_record("readiness", "", &GateCall::Failed(verdict(Outcome::Fail))).outcome, "fail");
        assert_eq!(gate_record("post", "np1", &GateCall::Passed(verdict(Outcome::Warn))).outcome, "warn");
        let e = gate_record("post", "np1", &GateCall::Host(Error::new(ErrorCode::NotFound, "no gate bound to post")));
        assert_eq!((e.outcome.as_str(), e.reasons[0].as_str()), ("error", "no gate bound to post"));
    }
}

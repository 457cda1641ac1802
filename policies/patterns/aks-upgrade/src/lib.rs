//! Pattern `aks-upgrade`: seed 000's whole procedure. The readiness gate,
//! the operator's yes to the whole plan, the control plane to the target
//! version, then each node pool in turn, its database members moved off
//! first by their own engine's pattern (bound to the slots `postgres`,
//! `redis`, `mongo`), and a post gate per pool. Every decision is taken from
//! the cluster's state (`cluster_common::plan`), so a re-run resumes.

use cluster_common::plan::{Cluster, PoolPlan, Strategy};
use cluster_common::run::{Runner, check_overrides, skipped};
use cluster_common::version::{self, Version};
use cluster_common::{Placement, placement};
use runner_sdk::cluster::{self, ControlPlane, NodePool};
use runner_sdk::pattern::PatternResult;
use runner_sdk::prelude::*;
use runner_sdk::{Approval, DryRun, gate_input, gate_step, preflight_gate};
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    kubernetes_version: String,
    pools: String,
    strategy: String,
    pool_label: String,
    max_surge: String,
    max_unavailable: String,
    drain_timeout: i64,
    operation_timeout: u64,
    temporary_pool_count: i64,
    databases: String,
    readiness_input: String,
    post_input: String,
    postgres_input: String,
    redis_input: String,
    mongo_input: String,
    ask_approval: bool,
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// The checked configuration.
struct Settings {
    target: Version,
    target_text: String,
    pools: Vec<String>,
    strategy: Strategy,
    overrides: (String, String, Option<u32>),
    added_count: u32,
}

fn settings(cfg: &Config) -> Result<Settings, Error> {
    let target = Version::parse(&cfg.kubernetes_version).map_err(|e| Error::invalid(format!("kubernetes-version: {e}")))?;
    let strategy = Strategy::parse(&cfg.strategy).map_err(Error::invalid)?;
    check_overrides(&cfg.max_surge, &cfg.max_unavailable)?;
    let drain = match cfg.drain_timeout {
        0 => None,
        m if m > 0 && m <= 24 * 60 => Some(m as u32),
        m => return Err(Error::invalid(format!("drain-timeout {m}: minutes between 1 and 1440 (0: keep the pool's)"))),
    };
    let added_count = u32::try_from(cfg.temporary_pool_count).map_err(|_| Error::invalid("temporary-pool-count must not be negative"))?;
    Ok(Settings {
        target_text: target.to_string(),
        target,
        pools: list(&cfg.pools),
        strategy,
        overrides: (cfg.max_surge.clone(), cfg.max_unavailable.clone(), drain),
        added_count,
    })
}

/// The control plane's part of the plan.
fn control_plane_line(plane: &ControlPlane, target: &Version) -> Result<Option<String>, Error> {
    let running = Version::parse(plane.version()).map_err(|e| Error::internal(format!("control plane: {e}")))?;
    if running > *target {
        return Err(Error::invalid(format!("the control plane already runs {running}, newer than kubernetes-version {target}: AKS does not downgrade")));
    }
    Ok((running < *target).then(|| format!("control plane: upgrade {running} -> {target}")))
}

/// The approval's summary and details.
fn approval_text(target: &Version, plane_line: Option<&str>, plans: &[PoolPlan], placements: &[Placement]) -> (String, String) {
    let working: Vec<&str> = plans.iter().filter(|p| p.skip.is_none()).map(|p| p.pool.as_str()).collect();
    let moved: usize = plans.iter().map(|p| p.moves.len() + p.moves_back.len()).sum();
    let summary = format!(
        "upgrade the cluster to Kubernetes {target}: {}{} node pool(s) ({}), {moved} database move(s)",
        if plane_line.is_some() { "the control plane and " } else { "" },
        working.len(),
        if working.is_empty() { "none".to_string() } else { working.join(", ") }
    );
    let mut lines: Vec<String> = plane_line.map(str::to_string).into_iter().collect();
    for plan in plans {
        lines.extend(plan.lines(&format!("upgrade to {target} (AKS surges, cordons, drains and removes each old Node)")));
    }
    lines.push(format!("databases now: {}", placements.iter().map(Placement::describe).collect::<Vec<_>>().join("; ")));
    (summary, lines.join("\n"))
}

/// What a re-run does, for an error's last sentence.
fn rerun_note(target: &str) -> String {
    format!(
        "a re-run resumes from the cluster's state: the control plane and pools already at {target} are skipped, a temporary pool that exists is reused, and a database whose members all run on the destination is not moved again"
    )
}

struct Upgrade<'a> {
    cfg: &'a Config,
    s: Settings,
    runner: Runner,
}

impl Upgrade<'_> {
    fn cluster<'c>(&self, pools: Vec<NodePool>, placements: Vec<Placement>, is_current: &'c dyn Fn(&NodePool) -> bool) -> Cluster<'c> {
        Cluster {
            pools,
            placements,
            strategy: self.s.strategy,
            key: self.s.target_text.clone(),
            is_current,
            overrides: self.s.overrides.clone(),
            added_count: self.s.added_count,
        }
    }

    /// One pool: planned again from the cluster (live), or taken from the
    /// whole plan (dry run: nothing changed, so the cluster cannot tell).
    fn pool(&self, name: &str, planned: &PoolPlan, done: &mut Vec<String>) -> Result<(), Error> {
        let target = self.s.target;
        let is_current = move |p: &NodePool| version::reached(p.version(), &target) && version::reached(&p.orchestrator_version, &target);
        let pools = cluster::node_pools()?;
        let plan = if self.runner.dry.active() {
            planned.clone()
        } else {
            self.cluster(pools.clone(), self.runner.placements()?, &is_current).plan_pool(name).map_err(Error::invalid)?
        };
        if let Some(why) = &plan.skip {
            skipped(&format!("pool {name}"), &format!("pool {name} to {}", self.s.target_text), why);
            done.push(format!("pool {name}: {why}"));
            return Ok(());
        }
        // A pool replaced in an earlier run is absent: the plan said skip.
        let pool = pools.iter().find(|p| p.name == name).cloned().ok_or_else(|| Error::new(ErrorCode::NotFound, format!("node pool {name} is gone")))?;
        let version = self.s.target_text.clone();
        let upgrade = || {
            step(
                &format!("upgrade {name}"),
                &format!("upgrade pool {name} to {version}: AKS surges new Nodes, cordons, drains and removes each old one"),
                || self.runner.mutate(&format!("upgrade pool {name}"), || cluster::upgrade_node_pool(name, &version, self.cfg.operation_timeout)).map(|_| ()),
            )
        };
        done.extend(self.runner.execute(&plan, &pool, &version, &upgrade)?);
        let kept = if plan.delete_pool { plan.destination.as_ref().map(|d| d.name().to_string()).unwrap_or_default() } else { name.to_string() };
        let input =
            gate_input(&self.cfg.post_input, &[("pool", json!(kept)), ("pool-label", json!(self.runner.pool_label)), ("kubernetes-version", json!(version))])?;
        gate_step("post", &input).into_result("post")?;
        Ok(())
    }
}

fn run(cfg: &Config) -> Result<PatternResult, Error> {
    let s = settings(cfg)?;
    let dry = DryRun::of_this_run();
    let databases = placement::databases(&list(&cfg.databases))?;
    if databases.is_empty() {
        report::log(report::Level::Warn, "the target names no databases (and config `databases` none): pools are upgraded with no database member moved first");
    }
    let inputs = json!({"postgres": cfg.postgres_input, "redis": cfg.redis_input, "mongo": cfg.mongo_input});
    let runner = Runner { dry, pool_label: cfg.pool_label.clone(), inputs, operation_timeout_ms: cfg.operation_timeout, databases };
    let up = Upgrade { cfg, s, runner };
    let target = up.s.target;
    let is_current = move |p: &NodePool| version::reached(p.version(), &target) && version::reached(&p.orchestrator_version, &target);
    up.runner.settle_pools()?;
    let (plane, plane_line, order, plans, placements) =
        step("discover", "read the control plane, the node pools, the databases and where their members run", || {
            let plane = cluster::control_plane()?;
            let plane_line = control_plane_line(&plane, &up.s.target)?;
            let pools = cluster::node_pools()?;
            let placements = up.runner.placements()?;
            let view = up.cluster(pools, placements.clone(), &is_current);
            let order = view.pools_to_do(&up.s.pools).map_err(Error::invalid)?;
            let plans = view.plan_all(&order).map_err(Error::invalid)?;
            for p in &placements {
                report::log(report::Level::Info, &p.describe());
            }
            Ok((plane, plane_line, order, plans, placements))
        })?;
    let readiness = gate_input(&cfg.readiness_input, &[("kubernetes-version", json!(up.s.target_text)), ("databases", json!(cfg.databases))])?;
    if let Some(refused) = preflight_gate("readiness", &readiness) {
        return refused;
    }
    if plane_line.is_none() && plans.iter().all(|p| p.skip.is_some()) {
        return Ok(PatternResult::succeeded(format!(
            "nothing to do: the control plane and every pool ({}) already run {}",
            order.join(", "),
            up.s.target_text
        )));
    }
    let (summary, details) = approval_text(&up.s.target, plane_line.as_deref(), &plans, &placements);
    if !cfg.ask_approval {
        report::log(report::Level::Info, &format!("not asking to {summary}: the caller's approval covers it (ask-approval is false)"));
    } else if Approval::ask(&summary, &details)? == Approval::Declined {
        return Ok(PatternResult::rolled_back(format!("{}; nothing was changed", Approval::declined(&summary).message)));
    }
    let mut done: Vec<String> = Vec::new();
    match &plane_line {
        Some(line) => {
            step("control-plane", line, || {
                up.runner.mutate("upgrade the control plane", || cluster::upgrade_control_plane(&up.s.target_text, cfg.operation_timeout)).map(|_| ())
            })
            .map_err(|e| Error::new(e.code, format!("{}; nothing else was changed; {}", e.message, rerun_note(&up.s.target_text))))?;
            done.push(format!("control plane {} -> {}", plane.version(), up.s.target_text));
        }
        None => skipped("control-plane", "the control plane to the target version", &format!("already runs {}", plane.version())),
    }
    for (name, planned) in order.iter().zip(&plans) {
        if let Err(e) = up.pool(name, planned, &mut done) {
            let so_far = if done.is_empty() { "nothing".to_string() } else { done.join("; ") };
            return Err(Error::new(
                e.code,
                format!("stopped at pool {name}: {}. Done before it: {so_far}. {}. {}", e.message, up.runner.state_now(), rerun_note(&up.s.target_text)),
            ));
        }
    }
    Ok(PatternResult::succeeded(format!("the cluster runs Kubernetes {}{}: {}", up.s.target_text, dry.summary_note(), done.join("; "))))
}

struct AksUpgrade;

impl runner_sdk::pattern::Guest for AksUpgrade {
    fn run(config: String) -> Result<PatternResult, Error> {
        let cfg: Config = parse_config(&config)?;
        run(&cfg)
    }
}

runner_sdk::export_pattern!(AksUpgrade);

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_common::placement::Member;
    use cluster_common::{Database, Destination};
    use runner_sdk::cluster::UpgradeSettings;

    fn config() -> Config {
        Config {
            kubernetes_version: "1.30.5".into(),
            pools: String::new(),
            strategy: "upgrade".into(),
            pool_label: "agentpool".into(),
            max_surge: "0".into(),
            max_unavailable: "1".into(),
            drain_timeout: 0,
            operation_timeout: 1,
            temporary_pool_count: 0,
            databases: String::new(),
            readiness_input: "{}".into(),
            post_input: "{}".into(),
            postgres_input: "{}".into(),
            redis_input: "{}".into(),
            mongo_input: "{}".into(),
            ask_approval: true,
        }
    }

    fn plane(version: &str) -> ControlPlane {
        ControlPlane {
            kubernetes_version: version.into(),
            current_kubernetes_version: version.into(),
            provisioning_state: "Succeeded".into(),
            upgrades: vec![],
        }
    }

    #[test]
    fn configuration_is_checked() {
        let s = settings(&config()).unwrap();
        assert_eq!((s.target_text.as_str(), s.strategy, s.overrides.2), ("1.30.5", Strategy::Upgrade, None));
        let bad = |f: &dyn Fn(&mut Config)| {
            let mut c = config();
            f(&mut c);
            settings(&c).err().map(|e| e.message).unwrap_or_default()
        };
        assert!(bad(&|c| c.kubernetes_version = String::new()).contains("kubernetes-version: `` is not a Kubernetes version"));
        assert!(bad(&|c| c.strategy = "blue-green".into()).contains("strategy `blue-green`"));
        assert!(bad(&|c| c.max_surge = "lots".into()).contains("max-surge `lots`"));
        assert!(bad(&|c| c.drain_timeout = -5).contains("drain-timeout -5"));
        assert!(bad(&|c| c.temporary_pool_count = -1).contains("temporary-pool-count"));
        assert_eq!(list("nodepool1, ,nodepool2"), vec!["nodepool1", "nodepool2"]);
    }

    #[test]
    fn the_control_plane_is_upgraded_skipped_or_refused() {
        let target = Version::parse("1.30.5").unwrap();
        assert_eq!(control_plane_line(&plane("1.29.9"), &target).unwrap().as_deref(), Some("control plane: upgrade 1.29.9 -> 1.30.5"));
        assert_eq!(control_plane_line(&plane("1.30.5"), &target).unwrap(), None);
        assert!(control_plane_line(&plane("1.31.1"), &target).unwrap_err().message.contains("AKS does not downgrade"));
    }

    #[test]
    fn the_approval_names_every_pool_and_move() {
        let db = Database { name: "postgres-cluster".into(), engine: "postgres".into(), namespace: String::new(), statefulset: "postgres-cluster".into() };
        let placements = vec![Placement {
            database: db.clone(),
            members: (0..3).map(|i| Member { name: format!("postgres-cluster-{i}"), node: None, pool: "nodepool1".into(), ready: true }).collect(),
        }];
        let pool = NodePool {
            name: "nodepool1".into(),
            mode: "System".into(),
            orchestrator_version: "1.29.9".into(),
            current_orchestrator_version: "1.29.9".into(),
            node_image_version: String::new(),
            count: 3,
            provisioning_state: "Succeeded".into(),
            upgrade_settings: UpgradeSettings::unset(),
        };
        let target = Version::parse("1.30.5").unwrap();
        let is_current = move |p: &NodePool| version::reached(p.version(), &target);
        let view = Cluster {
            pools: vec![pool],
            placements: placements.clone(),
            strategy: Strategy::Upgrade,
            key: "1.30.5".into(),
            is_current: &is_current,
            overrides: ("0".into(), "1".into(), None),
            added_count: 0,
        };
        let plans = view.plan_all(&["nodepool1".into()]).unwrap();
        assert!(matches!(plans[0].destination, Some(Destination::Temporary { exists: false, count: 4, .. })));
        let (summary, details) = approval_text(&target, Some("control plane: upgrade 1.29.9 -> 1.30.5"), &plans, &placements);
        assert_eq!(summary, "upgrade the cluster to Kubernetes 1.30.5: the control plane and 1 node pool(s) (nodepool1), 2 database move(s)");
        let lines: Vec<&str> = details.lines().collect();
        assert_eq!(lines[0], "control plane: upgrade 1.29.9 -> 1.30.5");
        assert_eq!(lines[1], "pool nodepool1: set upgrade settings maxSurge 0, maxUnavailable 1");
        assert!(lines[2].starts_with("pool nodepool1: add temporary pool tnodepoo"), "{details}");
        assert!(
            lines[3].starts_with("pool nodepool1: move postgres-cluster (postgres-cluster-0, postgres-cluster-1, postgres-cluster-2) -> tnodepoo"),
            "{details}"
        );
        assert!(lines[4].starts_with("pool nodepool1: upgrade to 1.30.5"), "{details}");
        assert!(lines[5].starts_with("pool nodepool1: move back postgres-cluster") && lines[5].ends_with("-> nodepool1 by slot postgres"), "{details}");
        assert!(lines[6].starts_with("pool nodepool1: delete temporary pool tnodepoo"), "{details}");
        assert_eq!(
            lines[7],
            "databases now: postgres-cluster: postgres-cluster-0 on nodepool1, postgres-cluster-1 on nodepool1, postgres-cluster-2 on nodepool1"
        );
        assert!(rerun_note("1.30.5").contains("not moved again"));
    }
}

//! Gate `upgrade-readiness`: may the cluster be upgraded now? Seed 000's
//! emergency checklist (Pods, replication, backup) plus what an AKS upgrade
//! trips over (budgets that allow no disruption, a pool mid-operation, a
//! version the upgrade profile does not offer). It never waits: every check
//! is one look.

use cluster_common::nodes::NODE_IMAGE_LABEL;
use cluster_common::pdb::{self, Budget};
use cluster_common::version::{self, Version};
use cluster_common::{Database, placement};
use kube_common::text::{bytes, millis};
use kube_common::{Pod, job_ref};
use mongo_common::rs::{self, Status};
use pg_common::pg::{self, Standby};
use redis_common::health::{self, Limits};
use runner_sdk::cluster::{self, ControlPlane, NodePool, PoolUpgradeProfile};
use runner_sdk::prelude::*;
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    kubernetes_version: String,
    databases: String,
    max_replay_lag: u64,
    max_lag_bytes: i64,
    max_offset_lag: i64,
    max_mongo_lag: u64,
    backup_job: String,
    backup_namespace: String,
    max_backup_age: u64,
    check_cluster: bool,
}

fn list(text: &str) -> Vec<String> {
    text.split(',').map(str::trim).filter(|s| !s.is_empty()).map(str::to_string).collect()
}

/// Every member the StatefulSet wants has a Pod, and each is Ready.
fn judge_pods(check: &mut Check, db: &Database, replicas: u32, pods: &[Pod]) {
    let set = db.set();
    for ordinal in (0..replicas).filter(|o| !pods.iter().any(|p| p.ordinal == *o)) {
        check.fail(format!("{}: no Pod (StatefulSet {} wants {replicas})", set.member(ordinal), db.statefulset));
    }
    for pod in pods {
        if pod.terminating {
            check.fail(format!("{}: terminating", pod.name));
        } else if !pod.ready {
            check.fail(format!("{}: not Ready (phase {}, node {})", pod.name, pod.phase, pod.node.as_deref().unwrap_or("none")));
        }
    }
    let ready = pods.iter().filter(|p| p.ready && !p.terminating).count();
    check.note(format!("{}: {ready}/{replicas} members Ready", db.name));
}

/// Every other member streams from the primary within the bounds.
fn judge_postgres(check: &mut Check, db: &Database, primary: &str, standbys: &[Standby], pods: &[Pod], config: &Config) {
    for pod in pods.iter().filter(|p| p.name != primary) {
        match standbys.iter().find(|s| s.is(&pod.name, pod.ip.as_deref())) {
            None => {
                check.fail(format!("{}: not in pg_stat_replication on the primary {primary}", pod.name));
            }
            Some(s) => {
                if s.state != "streaming" {
                    check.fail(format!("{}: replication state {} on {primary}, not streaming", pod.name, s.state));
                }
                let lag = s.lag_ms.unwrap_or(0.0);
                if lag > config.max_replay_lag as f64 {
                    check.fail(format!("{}: replay lag {} > {}", pod.name, millis(lag), millis(config.max_replay_lag as f64)));
                }
                match s.lag_bytes {
                    None => {
                        check.fail(format!("{}: reports no replay position to {primary} yet", pod.name));
                    }
                    Some(behind) if behind > config.max_lag_bytes as f64 => {
                        check.fail(format!("{}: {} of WAL not replayed > {}", pod.name, bytes(behind), bytes(config.max_lag_bytes as f64)));
                    }
                    Some(_) => {}
                }
            }
        }
    }
    check.note(format!("{}: primary {primary}, {} standby(s) streaming", db.name, standbys.iter().filter(|s| s.state == "streaming").count()));
}

/// One primary, every member healthy and close behind it.
fn judge_mongo(check: &mut Check, db: &Database, status: &Status, index: &[(String, Option<String>)], max_lag_ms: u64) {
    let name = |m: &str| rs::pod_of(m, index).map(str::to_string).unwrap_or_else(|| m.to_string());
    match status.primaries().as_slice() {
        [_] => {}
        [] => {
            check.fail(format!("{}: no PRIMARY in replica set {}", db.name, status.set));
        }
        many => {
            check.fail(format!("{}: {} members claim PRIMARY", db.name, many.len()));
        }
    }
    for m in &status.members {
        if !m.healthy() && m.state != rs::ARBITER {
            check.fail(format!("{}: {} (health {})", name(&m.name), m.state_str, m.health));
        } else if m.state == rs::SECONDARY
            && let Some(lag) = status.lag_ms(m).filter(|lag| *lag > max_lag_ms)
        {
            check.fail(format!("{}: {} behind the primary > {}", name(&m.name), millis(lag as f64), millis(max_lag_ms as f64)));
        }
    }
}

/// Every budget selecting a database Pod allows a disruption now.
fn judge_budgets(check: &mut Check, budgets: &[Value], pods: &[Value]) -> Vec<Value> {
    let mut evidence = Vec::new();
    for pdb in budgets {
        let selected: Vec<&Value> = pods.iter().filter(|p| pdb::selects(&pdb["spec"]["selector"], &p["metadata"]["labels"])).collect();
        if selected.is_empty() {
            continue;
        }
        let ready = selected.iter().filter(|p| pod_is_ready(p)).count() as u64;
        match Budget::judge(pdb, selected.len() as u64, ready) {
            Ok(b) => {
                if b.allowed == 0 {
                    check.fail(format!("{}: allows 0 disruptions ({})", b.name, b.basis));
                } else {
                    check.note(format!("{}: allows {} disruption(s)", b.name, b.allowed));
                }
                evidence.push(json!({"name": b.name, "allowed": b.allowed, "basis": b.basis, "selected": selected.len()}));
            }
            Err(why) => {
                check.fail(format!("PodDisruptionBudget {why}"));
            }
        }
    }
    evidence
}

/// Nothing mid-operation, and the target offered.
fn judge_cluster(
    check: &mut Check,
    target: Option<&Version>,
    plane: &ControlPlane,
    pools: &[NodePool],
    profiles: &[(String, Result<PoolUpgradeProfile, Error>)],
) {
    // A failed last operation does not block: AKS retries it on the next
    // upgrade of the same resource, which is what a re-run sends.
    let judge_state = |check: &mut Check, what: &str, state: &str| match state {
        cluster::SUCCEEDED => {}
        "Failed" | "Canceled" => {
            check.warn(format!("{what}: its last operation ended {state}; the upgrade sends it again, which retries it"));
        }
        _ => {
            check.fail(format!("{what}: provisioning state {state}, not Succeeded (an operation is in progress)"));
        }
    };
    judge_state(check, "control plane", &plane.provisioning_state);
    for pool in pools.iter().filter(|p| p.busy()) {
        judge_state(check, &format!("node pool {}", pool.name), &pool.provisioning_state);
    }
    let Some(target) = target else { return };
    if version::reached(plane.version(), target) {
        check.note(format!("control plane already runs {}", plane.version()));
        for (pool, profile) in profiles {
            match profile {
                Ok(profile) if version::reached(&profile.kubernetes_version, target) || version::offered(target, &profile.upgrades) => {}
                Ok(profile) => {
                    check.fail(format!(
                        "node pool {pool} {}: {target} is not offered by its upgrade profile (offered: {})",
                        profile.kubernetes_version,
                        shown(&profile.upgrades)
                    ));
                }
                Err(e) => {
                    check.fail(format!("node pool {pool}: upgrade profile not readable: {}", e.message));
                }
            }
        }
    } else if version::offered(target, &plane.upgrades) {
        check.note(format!("control plane {}: {target} is offered", plane.version()));
    } else {
        check.fail(format!("control plane {}: {target} is not offered by the upgrade profile (offered: {})", plane.version(), shown(&plane.upgrades)));
    }
}

fn shown(versions: &[String]) -> String {
    if versions.is_empty() { "none".to_string() } else { versions.join(", ") }
}

/// One database: its Pods, then its engine's replication.
fn database(check: &mut Check, db: &Database, config: &Config, raw_pods: &mut Vec<Value>) -> Result<Value, Error> {
    let set = db.set();
    let found = match set.read() {
        Ok(found) => found,
        Err(e) if e.code == ErrorCode::NotFound => {
            // Nothing of it runs, so the upgrade cannot harm it (a lab started without --mongo).
            check.note(format!("{}: StatefulSet {} not found: nothing to check", db.name, db.statefulset));
            return Ok(json!({"name": db.name, "found": false}));
        }
        Err(e) => return Err(e),
    };
    let listed = list_json(&ListOptions::of("v1", "Pod").labels(&found.selector).in_namespace(&db.namespace))?;
    let mut pods: Vec<Pod> = listed.iter().filter_map(|p| Pod::from_json(&db.statefulset, p)).collect();
    pods.sort_by_key(|p| p.ordinal);
    raw_pods.extend(listed.into_iter().filter(|p| p["metadata"]["name"].as_str().and_then(|n| set.ordinal(n)).is_some()));
    judge_pods(check, db, found.replicas, &pods);
    let ready: Vec<Pod> = pods.iter().filter(|p| p.ready && !p.terminating).cloned().collect();
    match db.engine.as_str() {
        "postgres" | "postgresql" => {
            let mut candidates = pg::primary_candidates("", &ready, None);
            candidates.extend(ready.iter().map(|p| p.name.clone()).filter(|n| !candidates.contains(n)).collect::<Vec<_>>());
            match pg::confirm_primary(&candidates) {
                Ok(primary) => match pg::standbys(&primary) {
                    Ok(standbys) => judge_postgres(check, db, &primary, &standbys, &pods, config),
                    Err(e) => {
                        check.fail(format!("{}: pg_stat_replication on {primary}: {}", db.name, e.message));
                    }
                },
                Err(e) => {
                    check.fail(format!("{}: {}", db.name, e.message));
                }
            }
        }
        "redis" => {
            let limits = Limits { max_offset_lag: config.max_offset_lag.max(0) as u64, min_replicas: 1, masters: 0 };
            let findings = health::evaluate(&redis_common::cluster::gather(&pods), &limits);
            for failure in findings.failures {
                check.fail(format!("{}: {failure}", db.name));
            }
            for warning in findings.warnings {
                check.warn(format!("{}: {warning}", db.name));
            }
        }
        "mongo" | "mongodb" => match mongo_common::cluster::status(&ready) {
            Ok((_, status)) => judge_mongo(check, db, &status, &mongo_common::cluster::pod_index(&pods), config.max_mongo_lag),
            Err(e) => {
                check.fail(format!("{}: {}", db.name, e.message));
            }
        },
        other => {
            check.warn(format!("{}: engine `{other}` is not checked beyond its Pods", db.name));
        }
    }
    Ok(json!({"name": db.name, "engine": db.engine, "replicas": found.replicas, "ready": ready.len()}))
}

/// The cluster API's part; `unavailable` (no cluster API configured) fails the check, naming the way out.
fn cluster_part(check: &mut Check, target: Option<&Version>) -> Result<(), Error> {
    let plane = match cluster::control_plane() {
        Ok(plane) => plane,
        Err(e) if matches!(e.code, ErrorCode::Unavailable | ErrorCode::NotFound) => {
            check.fail(format!("cluster API: {} (set check-cluster to false to check only the databases)", e.message));
            return Ok(());
        }
        Err(e) => return Err(e),
    };
    let pools = cluster::node_pools()?;
    let profiles: Vec<(String, Result<PoolUpgradeProfile, Error>)> = if target.is_some_and(|t| version::reached(plane.version(), t)) {
        pools.iter().map(|p| (p.name.clone(), cluster::pool_upgrade_profile(&p.name))).collect()
    } else {
        Vec::new()
    };
    judge_cluster(check, target, &plane, &pools, &profiles);
    check.evidence("control_plane", json!({"version": plane.version(), "state": plane.provisioning_state, "upgrades": plane.upgrades}));
    check.evidence(
        "pools",
        pools
            .iter()
            .map(|p| json!({"name": p.name, "version": p.version(), "state": p.provisioning_state, NODE_IMAGE_LABEL: p.node_image_version}))
            .collect::<Vec<_>>(),
    );
    Ok(())
}

struct Gate;

impl runner_sdk::gate::Guest for Gate {
    fn evaluate(config: String) -> Result<Verdict, Error> {
        let config: Config = parse_config(&config)?;
        let target = if config.kubernetes_version.is_empty() { None } else { Some(Version::parse(&config.kubernetes_version).map_err(Error::invalid)?) };
        let databases = placement::databases(&list(&config.databases))?;
        let mut check = Check::new();
        if databases.is_empty() {
            check.warn("the target names no databases: only the cluster is checked");
        }
        let mut raw_pods = Vec::new();
        let mut seen = Vec::new();
        for db in &databases {
            seen.push(database(&mut check, db, &config, &mut raw_pods)?);
        }
        check.evidence("databases", &seen);
        let mut namespaces: Vec<&str> = databases.iter().map(|d| d.namespace.as_str()).collect();
        namespaces.sort_unstable();
        namespaces.dedup();
        let mut budgets = Vec::new();
        for ns in namespaces {
            budgets.extend(list_json(&ListOptions::of("policy/v1", "PodDisruptionBudget").in_namespace(ns))?);
        }
        let budget_evidence = judge_budgets(&mut check, &budgets, &raw_pods);
        check.evidence("budgets", budget_evidence);
        // The backup Job backs up PostgreSQL: with no PostgreSQL database running there is nothing it could have saved.
        let postgres_runs = databases.iter().zip(&seen).any(|(db, found)| matches!(db.engine.as_str(), "postgres" | "postgresql") && found["found"] != false);
        if config.backup_job.is_empty() {
            check.warn("backup check skipped: config backup-job is empty");
        } else if !postgres_runs {
            check.note("backup not checked: no PostgreSQL database runs here");
        } else {
            let job = get_json(&job_ref(&config.backup_namespace, &config.backup_job));
            kube_common::judge_backup(&mut check, &config.backup_job, job, clock::now(), config.max_backup_age);
        }
        if config.check_cluster {
            cluster_part(&mut check, target.as_ref())?;
        } else {
            check.warn("cluster checks skipped (check-cluster is false): node pools and the upgrade profile were not looked at");
        }
        Ok(check.verdict())
    }
}

runner_sdk::export_gate!(Gate);

#[cfg(test)]
mod tests {
    use super::*;
    use runner_sdk::cluster::UpgradeSettings;

    fn config() -> Config {
        Config {
            kubernetes_version: "1.30.5".into(),
            databases: String::new(),
            max_replay_lag: 1000,
            max_lag_bytes: 16 << 20,
            max_offset_lag: 1 << 20,
            max_mongo_lag: 10_000,
            backup_job: "postgres-backup".into(),
            backup_namespace: String::new(),
            max_backup_age: 24 * 3_600_000,
            check_cluster: true,
        }
    }

    fn db(name: &str, engine: &str) -> Database {
        Database { name: name.into(), engine: engine.into(), namespace: String::new(), statefulset: name.into() }
    }

    fn reasons(check: &Check) -> Vec<String> {
        check.verdict().reasons
    }

    fn pod(name: &str, ordinal: u32, ready: bool) -> Pod {
        Pod { name: name.into(), ordinal, ready, phase: if ready { "Running" } else { "Pending" }.into(), ..Default::default() }
    }

    #[test]
    fn missing_and_unready_members_are_named() {
        let mut check = Check::new();
        judge_pods(&mut check, &db("pg", "postgres"), 3, &[pod("pg-0", 0, true), pod("pg-2", 2, false)]);
        assert_eq!(reasons(&check), vec!["pg-1: no Pod (StatefulSet pg wants 3)", "pg-2: not Ready (phase Pending, node none)", "pg: 1/3 members Ready"]);
    }

    #[test]
    fn postgres_standbys_stream_within_the_bounds() {
        let standby = |name: &str, state: &str, lag_ms: f64, lag_bytes: Option<f64>| Standby {
            application_name: name.into(),
            state: state.into(),
            sync_state: "quorum".into(),
            lag_ms: Some(lag_ms),
            lag_bytes,
            ..Default::default()
        };
        let pods = [pod("pg-0", 0, true), pod("pg-1", 1, true), pod("pg-2", 2, true)];
        let mut ok = Check::new();
        judge_postgres(
            &mut ok,
            &db("pg", "postgres"),
            "pg-0",
            &[standby("pg-1", "streaming", 3.0, Some(0.0)), standby("pg-2", "streaming", 40.0, Some(512.0))],
            &pods,
            &config(),
        );
        assert!(!ok.failed(), "{:?}", reasons(&ok));
        let mut bad = Check::new();
        judge_postgres(&mut bad, &db("pg", "postgres"), "pg-0", &[standby("pg-1", "catchup", 2500.0, Some(32.0 * 1048576.0))], &pods, &config());
        let r = reasons(&bad);
        assert!(r.contains(&"pg-1: replication state catchup on pg-0, not streaming".to_string()), "{r:?}");
        assert!(r.contains(&"pg-1: replay lag 2.5 s > 1.0 s".to_string()), "{r:?}");
        assert!(r.contains(&"pg-1: 32.0 MiB of WAL not replayed > 16.0 MiB".to_string()), "{r:?}");
        assert!(r.contains(&"pg-2: not in pg_stat_replication on the primary pg-0".to_string()), "{r:?}");
    }

    #[test]
    fn a_budget_that_allows_no_disruption_fails_with_its_figures() {
        let pod = |name: &str, app: &str, ready: bool| json!({"metadata": {"name": name, "labels": {"app": app}}, "status": {"conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}});
        let pods = [
            pod("postgres-cluster-0", "postgres", true),
            pod("postgres-cluster-1", "postgres", true),
            pod("redis-0", "redis", true),
            pod("redis-1", "redis", false),
        ];
        let budgets = [
            json!({"metadata": {"name": "postgres-pdb"}, "spec": {"minAvailable": 2, "selector": {"matchLabels": {"app": "postgres"}}}, "status": {"disruptionsAllowed": 0, "observedGeneration": 1}}),
            json!({"metadata": {"name": "redis-pdb"}, "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app": "redis"}}}}),
            json!({"metadata": {"name": "web-pdb"}, "spec": {"maxUnavailable": 0, "selector": {"matchLabels": {"app": "web"}}}}),
        ];
        let mut check = Check::new();
        let evidence = judge_budgets(&mut check, &budgets, &pods);
        let r = reasons(&check);
        assert!(r.contains(&"postgres-pdb: allows 0 disruptions (minAvailable 2, 2 Ready)".to_string()), "{r:?}");
        assert!(r.contains(&"redis-pdb: allows 0 disruptions (maxUnavailable 1, 1 of 2 Ready, computed)".to_string()), "{r:?}");
        assert!(!r.iter().any(|r| r.contains("web-pdb")), "a budget selecting no database Pod is not ours: {r:?}");
        assert_eq!(evidence.len(), 2);
    }

    fn plane(version: &str, upgrades: &[&str], state: &str) -> ControlPlane {
        ControlPlane {
            kubernetes_version: version.into(),
            current_kubernetes_version: version.into(),
            provisioning_state: state.into(),
            upgrades: upgrades.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn pool(name: &str, state: &str) -> NodePool {
        NodePool {
            name: name.into(),
            mode: "User".into(),
            orchestrator_version: "1.29.9".into(),
            current_orchestrator_version: "1.29.9".into(),
            node_image_version: String::new(),
            count: 3,
            provisioning_state: state.into(),
            upgrade_settings: UpgradeSettings::unset(),
        }
    }

    #[test]
    fn the_cluster_must_be_idle_and_offer_the_target() {
        let target = Version::parse("1.30.5").unwrap();
        let mut ok = Check::new();
        judge_cluster(&mut ok, Some(&target), &plane("1.29.9", &["1.29.10", "1.30.5"], "Succeeded"), &[pool("nodepool1", "Succeeded")], &[]);
        assert!(!ok.failed(), "{:?}", reasons(&ok));
        let mut bad = Check::new();
        judge_cluster(
            &mut bad,
            Some(&target),
            &plane("1.29.9", &["1.29.10", "1.30.3"], "Succeeded"),
            &[pool("nodepool1", "Upgrading"), pool("nodepool2", "Succeeded")],
            &[],
        );
        let r = reasons(&bad);
        assert!(r.contains(&"node pool nodepool1: provisioning state Upgrading, not Succeeded (an operation is in progress)".to_string()), "{r:?}");
        assert!(r.contains(&"control plane 1.29.9: 1.30.5 is not offered by the upgrade profile (offered: 1.29.10, 1.30.3)".to_string()), "{r:?}");
        assert_eq!(r.len(), 2, "{r:?}");
        // Once the control plane runs the target, each pool's own profile must offer it.
        let profile = |version: &str, upgrades: &[&str]| PoolUpgradeProfile {
            kubernetes_version: version.into(),
            upgrades: upgrades.iter().map(|s| s.to_string()).collect(),
            latest_node_image_version: String::new(),
        };
        let mut there = Check::new();
        judge_cluster(
            &mut there,
            Some(&target),
            &plane("1.30.5", &[], "Succeeded"),
            &[],
            &[("a".into(), Ok(profile("1.29.9", &["1.30.5"]))), ("b".into(), Ok(profile("1.30.5", &[]))), ("c".into(), Ok(profile("1.28.3", &["1.29.9"])))],
        );
        assert_eq!(reasons(&there)[0], "node pool c 1.28.3: 1.30.5 is not offered by its upgrade profile (offered: 1.29.9)");
        assert!(there.verdict().reasons.iter().filter(|r| r.starts_with("node pool")).count() == 1);
        let mut busy = Check::new();
        judge_cluster(&mut busy, None, &plane("1.29.9", &[], "Upgrading"), &[], &[]);
        assert_eq!(reasons(&busy), vec!["control plane: provisioning state Upgrading, not Succeeded (an operation is in progress)"]);
        assert!(busy.failed());
        // A failed last operation warns: the upgrade sends it again.
        let mut failed = Check::new();
        judge_cluster(&mut failed, None, &plane("1.29.9", &[], "Succeeded"), &[pool("nodepool1", "Failed")], &[]);
        assert!(!failed.failed(), "{:?}", reasons(&failed));
        assert_eq!(failed.verdict().outcome, Outcome::Warn);
        assert_eq!(reasons(&failed), vec!["node pool nodepool1: its last operation ended Failed; the upgrade sends it again, which retries it"]);
        let mut deleting = Check::new();
        judge_cluster(&mut deleting, None, &plane("1.29.9", &[], "Succeeded"), &[pool("nodepool1", "Deleting")], &[]);
        assert!(deleting.failed());
    }

    #[test]
    fn mongo_members_are_healthy_and_close() {
        let member = |id: i64, name: &str, state: i64, state_str: &str, optime_ms: u64, health: f64| rs::Member {
            id,
            name: name.into(),
            state,
            state_str: state_str.into(),
            health,
            optime_ms: Some(optime_ms),
            ..Default::default()
        };
        let status = Status {
            set: "rs0".into(),
            members: vec![
                member(0, "mongo-0.mongo:27017", rs::PRIMARY, "PRIMARY", 100_000, 1.0),
                member(1, "mongo-1.mongo:27017", rs::SECONDARY, "SECONDARY", 88_000, 1.0),
                member(2, "mongo-2.mongo:27017", 8, "(not reachable/healthy)", 0, 0.0),
            ],
            ..Default::default()
        };
        let index = vec![("mongo-0".to_string(), None), ("mongo-1".to_string(), None), ("mongo-2".to_string(), None)];
        let mut check = Check::new();
        judge_mongo(&mut check, &db("mongo", "mongo"), &status, &index, 10_000);
        assert_eq!(reasons(&check), vec!["mongo-1: 12.0 s behind the primary > 10.0 s", "mongo-2: (not reachable/healthy) (health 0)"]);
    }

    #[test]
    fn backups_and_lists() {
        let now = kube_common::text::parse_timestamp_ms("2026-12-05T22:00:00Z").unwrap();
        let mut stale = Check::new();
        kube_common::judge_backup(&mut stale, "postgres-backup", Ok(json!({"status": {"completionTime": "2026-12-04T20:00:00Z"}})), now, 24 * 3_600_000);
        assert_eq!(reasons(&stale), vec!["backup Job postgres-backup: completed 26h 0m ago > 24h 0m"]);
        assert_eq!(list(" pg, redis ,,"), vec!["pg", "redis"]);
    }
}

//! `aks-upgrade` on the lab when the upgrade does not go as planned: AKS
//! refusing mutations with 409 while another operation runs (the lab's
//! `conflict` fault), the runner killed in the middle of a pool's upgrade
//! and run again, and a drain a PodDisruptionBudget blocks; and with
//! `strategy: replace`, which adds a pool instead of upgrading. Each lab has the
//! 3-member PostgreSQL cluster on one pool of 2 Nodes at 1.29.9, a backup
//! (the readiness gate wants one) and a write probe on the database.
//! Subnets 248-250.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::interrupt::kill_when;
use common::lab::*;
use common::*;
use serde_json::Value;

const RUN_TIMEOUT: Duration = Duration::from_secs(600);

fn lab(subnet: &str) -> Lab {
    let lab = Lab::up(&["--single-pool", "--nodes", "2", "--subnet", subnet, "--lab-minute", "2s"]);
    let backup = lab.runner(&["lab", "backup"]);
    assert!(backup.status.success(), "lab backup: {}{}", stdout(&backup), stderr(&backup));
    lab
}

/// [`Lab::aks_upgrade`] with a write probe on PostgreSQL and a journal.
fn upgrade(lab: &Lab, journal: &Path, extra: &[&str]) -> Command {
    lab.aks_upgrade(&[&["--write-probe", "postgres-cluster", "--journal", path(journal)], extra].concat())
}

/// Set a key of the lab's ARM fault ConfigMap.
fn fault(lab: &Lab, key: &str, value: &str) {
    let patch = serde_json::json!({"data": {key: value}}).to_string();
    let exists = lab.kubectl_raw(&["get", "configmap", "-n", "kube-system", "runner-lab-arm"]).status.success();
    if exists {
        lab.kubectl(&["patch", "configmap", "-n", "kube-system", "runner-lab-arm", "--type", "merge", "-p", &patch]);
    } else {
        lab.kubectl(&["create", "configmap", "-n", "kube-system", "runner-lab-arm", &format!("--from-literal={key}={value}")]);
    }
}

/// The top-level steps (the pattern's own, not a slot's) named `name`.
fn steps_named<'r>(report: &'r Value, name: &str) -> Vec<&'r Value> {
    report["steps"].as_array().map(|s| s.iter().filter(|s| s["slot_path"].is_null() && s["name"] == name).collect()).unwrap_or_default()
}

fn step_names(report: &Value) -> Vec<String> {
    report["steps"]
        .as_array()
        .map(|s| s.iter().filter(|s| s["slot_path"].is_null()).filter_map(|s| s["name"].as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// Each Node's name, pool label and kubelet version.
fn nodes(lab: &Lab) -> Vec<(String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    lab.items(&["nodes"])
        .iter()
        .map(|n| (text(&n["metadata"]["name"]), text(&n["metadata"]["labels"]["agentpool"]), text(&n["status"]["nodeInfo"]["kubeletVersion"])))
        .collect()
}

/// Each Node's pool label and kubelet version.
fn pools_and_kubelets(lab: &Lab) -> Vec<(String, String)> {
    nodes(lab).into_iter().map(|(_, pool, kubelet)| (pool, kubelet)).collect()
}

/// The pool each PostgreSQL member's Node is in, and whether every member is Ready.
fn postgres_pools(lab: &Lab) -> (Vec<String>, bool) {
    let pools: std::collections::HashMap<String, String> = nodes(lab).into_iter().map(|(name, pool, _)| (name, pool)).collect();
    let pods = lab.items(&["pods", "-l", "app=postgres"]);
    let ready = pods.len() == 3
        && pods.iter().all(|p| p["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")));
    (pods.iter().map(|p| pools.get(p["spec"]["nodeName"].as_str().unwrap_or_default()).cloned().unwrap_or_default()).collect(), ready)
}

fn probe_lost_nothing(report: &Value) {
    let probe = &report["probes"][0];
    assert!(probe["acknowledged_writes"].as_u64().unwrap_or(0) > 10, "{probe}");
    assert_eq!(probe["lost_writes"], 0, "{probe}");
}

#[test]
fn conflicts_are_retried_and_a_run_killed_mid_pool_resumes_without_moving_a_member_twice() {
    let lab = lab("248");
    // Run 1: two mutations refused 409 as if another operation ran, then
    // killed once AKS is upgrading nodepool1 (a surge Node at 1.30.5 is up).
    fault(&lab, "conflict", "2");
    let journal = lab.dir.path().join("run1.jsonl");
    let mut last_look = Instant::now();
    let first = kill_when(upgrade(&lab, &journal, &[]), &journal, RUN_TIMEOUT, |entries| {
        let sent = entries.iter().any(|e| e["call"] == "cluster-write.upgrade-node-pool" && e["outcome"] == "started");
        if !sent || last_look.elapsed() < Duration::from_millis(500) {
            return None;
        }
        last_look = Instant::now();
        pools_and_kubelets(&lab).iter().any(|(pool, kubelet)| pool == "nodepool1" && kubelet == "v1.30.5").then(|| "upgrade nodepool1".to_string())
    });
    let text = format!("{}{}{}", stdout(&first.output), stderr(&first.output), std::fs::read_to_string(&journal).unwrap_or_default());
    assert_eq!(first.killed_after.as_deref(), Some("upgrade nodepool1"), "run 1 ended before the pool's upgrade: {text}");
    assert!(text.contains("AKS refused") && text.contains("OperationNotAllowed"), "the 409s were logged: {text}");
    let left = lab.kubectl(&["get", "configmap", "-n", "kube-system", "runner-lab-arm", "-o", "jsonpath={.data.conflict}"]);
    assert_eq!(left, "0", "both refusals were consumed, so both mutations were tried again");
    let version: Value = serde_json::from_str(&lab.kubectl(&["version", "-o", "json"])).unwrap();
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.30.5", "the control plane was upgraded despite the 409s: {version}");
    let (pools, _) = postgres_pools(&lab);
    assert!(pools.iter().all(|p| p.starts_with('t')), "run 1 had moved every member to the temporary pool: {pools:?}");

    // Run 2, a plain re-run: waits for AKS's operation, does not upgrade the
    // pool again, does not move the database to the temporary pool again,
    // brings it back and deletes the temporary pool.
    let journal = lab.dir.path().join("run2.jsonl");
    let output = upgrade(&lab, &journal, &[]).output().unwrap();
    let report = json_of(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}\n{}", stderr(&output));
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    let names = step_names(&report);
    assert!(!names.iter().any(|n| n.starts_with("move postgres-cluster -> t")), "the database was moved to the temporary pool again: {names:?}");
    assert!(!names.iter().any(|n| n == "upgrade nodepool1"), "the pool was upgraded again: {names:?}");
    let back = steps_named(&report, "move postgres-cluster -> nodepool1");
    assert!(back.len() == 1 && back[0]["outcome"] == "succeeded", "the database came back once: {names:?}");
    assert!(names.iter().any(|n| n.starts_with("delete-pool t")), "{names:?}");
    assert_eq!(steps_named(&report, "control-plane")[0]["outcome"], "skipped", "{names:?}");
    probe_lost_nothing(&report);
    // The cluster as run 2 left it: one pool, every Node and member at 1.30.5 and Ready.
    let nodes = pools_and_kubelets(&lab);
    assert!(!nodes.is_empty() && nodes.iter().all(|(pool, kubelet)| pool == "nodepool1" && kubelet == "v1.30.5"), "{nodes:?}");
    let (pools, ready) = postgres_pools(&lab);
    assert!(ready && pools.iter().all(|p| p == "nodepool1"), "{pools:?}");
}

#[test]
fn a_drain_blocked_by_a_budget_stops_the_upgrade_naming_it_and_a_rerun_after_the_fix_finishes() {
    let lab = lab("249");
    // Two cache Pods, one on each nodepool1 Node, under a budget that lets
    // one go: the readiness gate passes, the first Node's drain takes the
    // one disruption, and the second Node's cannot evict its Pod.
    let node_names = lab.kubectl(&["get", "nodes", "-l", "agentpool=nodepool1", "-o", "jsonpath={.items[*].metadata.name}"]);
    let node_names: Vec<&str> = node_names.split_whitespace().collect();
    assert_eq!(node_names.len(), 2, "{node_names:?}");
    let mut manifest = String::from(
        "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: cache-pdb, namespace: default}\nspec:\n  minAvailable: 1\n  selector: {matchLabels: {app: cache}}\n",
    );
    for (i, node) in node_names.iter().enumerate() {
        manifest.push_str(&format!(
            "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: cache-{i}, namespace: default, labels: {{app: cache}}}}\nspec:\n  nodeName: {node}\n  containers:\n  - name: redis\n    image: redis:7.0\n    ports: [{{containerPort: 6379}}]\n    env: [{{name: REDIS_PASSWORD, value: cache}}]\n"
        ));
    }
    let file = lab.dir.path().join("cache.yaml");
    std::fs::write(&file, manifest).unwrap();
    lab.kubectl(&["apply", "-f", path(&file)]);
    eventually("the budget to allow one disruption", Duration::from_secs(120), || {
        (lab.kubectl(&["get", "pdb", "cache-pdb", "-o", "jsonpath={.status.disruptionsAllowed}"]) == "1").then_some(())
    });

    let journal = lab.dir.path().join("run.jsonl");
    let output = upgrade(&lab, &journal, &["--config", "drain-timeout=1"]).output().unwrap();
    let report = json_of(&output);
    assert_eq!(output.status.code(), Some(1), "{report:#}\n{}", stderr(&output));
    let reasons = report["reasons"].to_string();
    assert!(reasons.contains("stopped at pool nodepool1") && reasons.contains("UpgradeFailed"), "AKS's code, at the pool: {reasons}");
    assert!(reasons.contains("cache-pdb"), "the budget is named: {reasons}");
    assert!(reasons.contains("pools now:") && reasons.contains("a re-run resumes"), "the state and the way on: {reasons}");
    let upgraded = steps_named(&report, "upgrade nodepool1");
    assert!(upgraded.len() == 1 && upgraded[0]["outcome"] == "failed", "{:?}", step_names(&report));
    // The pattern stopped there: nothing moved back, no pool deleted; the
    // database is whole on the temporary pool with no write lost.
    let names = step_names(&report);
    assert!(!names.iter().any(|n| n == "move postgres-cluster -> nodepool1" || n.starts_with("delete-pool")), "{names:?}");
    probe_lost_nothing(&report);
    let (pools, ready) = postgres_pools(&lab);
    assert!(ready && pools.iter().all(|p| p.starts_with('t')), "{pools:?}");
    let cache = lab.kubectl(&["get", "pods", "-l", "app=cache", "-o", "jsonpath={.items[*].status.phase}"]);
    assert_eq!(cache, "Running", "the first drain evicted one cache Pod, the budget kept the other");

    // The operator lifts the budget and runs the same command again: the
    // pool's failed upgrade is sent again (the readiness gate only warns
    // about it), the database is not moved to the temporary pool a second
    // time, and comes back once the pool runs 1.30.5.
    lab.kubectl(&["delete", "pdb", "cache-pdb"]);
    let journal = lab.dir.path().join("rerun.jsonl");
    let output = upgrade(&lab, &journal, &[]).output().unwrap();
    let report = json_of(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}\n{}", stderr(&output));
    let gate = report["gates"].as_array().unwrap().iter().find(|g| g["slot"] == "readiness").cloned().unwrap_or_default();
    assert!(gate["reasons"].to_string().contains("node pool nodepool1: its last operation ended Failed"), "{gate}");
    let names = step_names(&report);
    assert!(!names.iter().any(|n| n.starts_with("move postgres-cluster -> t")), "moved to the temporary pool again: {names:?}");
    let back = steps_named(&report, "move postgres-cluster -> nodepool1");
    assert!(back.len() == 1 && back[0]["outcome"] == "succeeded", "{names:?}");
    probe_lost_nothing(&report);
    let nodes = pools_and_kubelets(&lab);
    assert!(nodes.iter().all(|(pool, kubelet)| pool == "nodepool1" && kubelet == "v1.30.5"), "{nodes:?}");
    let (pools, ready) = postgres_pools(&lab);
    assert!(ready && pools.iter().all(|p| p == "nodepool1"), "{pools:?}");
}

#[test]
fn strategy_replace_moves_the_database_to_a_new_pool_and_deletes_the_old_one() {
    let lab = lab("250");
    let journal = lab.dir.path().join("run.jsonl");
    let output = upgrade(&lab, &journal, &["--config", "strategy=replace"]).output().unwrap();
    let report = json_of(&output);
    assert_eq!(output.status.code(), Some(0), "{report:#}\n{}", stderr(&output));
    let names = step_names(&report);
    let added = names.iter().find_map(|n| n.strip_prefix("add-pool ")).unwrap_or_else(|| panic!("no pool added: {names:?}")).to_string();
    assert!(added.starts_with('r'), "a replacement pool, by its name: {added}");
    for expected in [format!("move postgres-cluster -> {added}"), "delete-pool nodepool1".to_string(), "post".to_string()] {
        let step = steps_named(&report, &expected);
        assert!(step.len() == 1 && step[0]["outcome"] == "succeeded", "{expected}: {names:?}");
    }
    assert!(!names.iter().any(|n| n == "upgrade nodepool1"), "replace upgrades nothing in place: {names:?}");
    probe_lost_nothing(&report);
    let nodes = pools_and_kubelets(&lab);
    assert!(!nodes.is_empty() && nodes.iter().all(|(pool, kubelet)| *pool == added && kubelet == "v1.30.5"), "only the replacement is left: {nodes:?}");
    let (pools, ready) = postgres_pools(&lab);
    assert!(ready && pools.iter().all(|p| *p == added), "{pools:?}");
}

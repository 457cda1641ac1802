//! Composition on the lab (real PostgreSQL servers): a parent pattern runs
//! the bundled Ferris wheel bound to its slot with `--pattern`, and the
//! members end on the upgraded pool. `kubectl` and `psql` check the outcome
//! as independent clients.

mod common;

use common::lab::*;
use common::*;
use serde_json::Value;

/// Pod -> pool of its Node, as kubectl reports them.
fn pools(lab: &Lab) -> Vec<(String, String)> {
    let pods = lab.kubectl(&["get", "pods", "-l", "app=postgres", "-o", r#"jsonpath={range .items[*]}{.metadata.name}={.spec.nodeName}{"\n"}{end}"#]);
    pods.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(pod, node)| (pod.to_string(), lab.kubectl(&["get", "node", node, "-o", "jsonpath={.metadata.labels.agentpool}"]).trim().to_string()))
        .collect()
}

#[test]
fn a_parent_pattern_runs_the_ferris_wheel_through_a_slot() {
    let lab = Lab::up(&["--postgres", "--subnet", "170"]);
    assert!(lab.runner(&["lab", "--dir", path(lab.dir.path()), "backup"]).status.success());
    let journal = lab.dir.path().join("compose.jsonl");
    let parent = fixture("compose-parent");
    let args = [
        "exec",
        path(&parent),
        "--pattern",
        "child=postgres-ferris-wheel",
        "--allow",
        "kube:*",
        "--allow",
        "postgres:*",
        "--approve",
        "--journal",
        path(&journal),
        "-o",
        "json",
    ];
    // The parent's other slot defaults to a test component: it must be found by name too.
    let search = std::env::join_paths([repo().join("tests/fixtures/dist"), repo().join("policies/dist")]).unwrap();
    let output = lab.command(&args).env("RUNNER_POLICY_PATH", search).output().unwrap();
    let report = json_of(&output);
    expect_exit(&output, 0);
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    assert!(report["reasons"][0].as_str().unwrap().starts_with("child succeeded: "), "{}", report["reasons"]);
    assert_eq!(report["patterns"][0]["pattern"], "postgres-ferris-wheel");
    assert_eq!(report["patterns"][0]["outcome"], "succeeded");
    // The wheel's steps and gates are nested under the slot, after the parent's step.
    let steps = report["steps"].as_array().unwrap();
    assert_eq!(steps[0]["name"], "run-child");
    assert!(steps[0].get("slot_path").is_none());
    let nested: Vec<&str> = steps.iter().filter(|s| s["slot_path"] == "child").map(|s| s["name"].as_str().unwrap()).collect();
    for step in ["preflight", "pin-upgraded-pool", "post"] {
        assert!(nested.contains(&step), "step {step} missing from {nested:?}");
    }
    let gates: Vec<(&str, &str)> =
        report["gates"].as_array().unwrap().iter().map(|g| (g["slot"].as_str().unwrap(), g["slot_path"].as_str().unwrap())).collect();
    assert_eq!(gates, vec![("preflight", "child"), ("post", "child")]);
    // Its mutations were journaled as its own, under the slot.
    let lines: Vec<Value> = std::fs::read_to_string(&journal).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let patch = lines.iter().find(|l| l["call"] == "kube-write.patch" && l["outcome"] == "ok").expect("a patch journaled");
    assert_eq!((patch["component"].as_str(), patch["slot"].as_str()), (Some("postgres-ferris-wheel"), Some("child")));

    // kubectl and psql agree, as independent clients.
    let pools = pools(&lab);
    assert_eq!(pools.len(), 3, "{pools:?}");
    assert!(pools.iter().all(|(_, pool)| pool == "upgraded-pool"), "{pools:?}");
    let primary = lab.pg_primary();
    assert_eq!(lab.psql(&primary, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").unwrap(), "2");
}

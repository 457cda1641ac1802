//! The runner against a real cluster (kind, AKS, any conformant API server),
//! when `RUNNER_TEST_KUBECONFIG` names its kubeconfig: every bundled gate, a
//! `target check`, and a pattern's `--dry-run`. Nothing here changes the
//! cluster. Without the variable each test says it is skipped, and why.
//!
//! Optional: `RUNNER_TEST_CONTEXT` (default: the kubeconfig's current
//! context), `RUNNER_TEST_NAMESPACE` (default: the context's),
//! `RUNNER_TEST_SELECTOR` (the Pods `pods-ready` checks, default
//! `app=postgres`), `RUNNER_TEST_TARGET` (a complete target file to use
//! instead, e.g. one naming your database clusters).

mod common;

use std::path::PathBuf;
use std::process::{Command, Output};

use common::verdict::{REFUSALS, not_a_verdict};
use common::*;
use serde_json::Value;

/// The cluster under test and a target file for it.
struct Cluster {
    dir: tempfile::TempDir,
    target: PathBuf,
    selector: String,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

/// The cluster, or `None` (after saying why the test is skipped).
fn cluster(test: &str) -> Option<Cluster> {
    let Some(kubeconfig) = env("RUNNER_TEST_KUBECONFIG") else {
        println!(
            "{test}: skipped: RUNNER_TEST_KUBECONFIG is not set (point it at a kind or AKS kubeconfig to run this suite; see the README, \"Testing against a real cluster\")"
        );
        return None;
    };
    let dir = tempfile::tempdir().unwrap();
    let target = match env("RUNNER_TEST_TARGET") {
        Some(file) => PathBuf::from(file),
        None => {
            let mut text = format!("kubeconfig: {}\n", serde_json::to_string(&kubeconfig).unwrap());
            if let Some(context) = env("RUNNER_TEST_CONTEXT") {
                text.push_str(&format!("context: {}\n", serde_json::to_string(&context).unwrap()));
            }
            if let Some(namespace) = env("RUNNER_TEST_NAMESPACE") {
                text.push_str(&format!("namespace: {}\n", serde_json::to_string(&namespace).unwrap()));
            }
            let file = dir.path().join("target.yaml");
            std::fs::write(&file, text).unwrap();
            file
        }
    };
    Some(Cluster { dir, target, selector: env("RUNNER_TEST_SELECTOR").unwrap_or_else(|| "app=postgres".into()) })
}

impl Cluster {
    fn runner(&self, args: &[&str]) -> Output {
        Command::new(assert_cmd::cargo::cargo_bin("runner"))
            .args(args)
            .env("RUNNER_CACHE_DIR", self.dir.path().join("cache"))
            .env("RUNNER_POLICY_PATH", repo().join("policies/dist"))
            .env_remove("RUNNER_LOG")
            .output()
            .unwrap()
    }

    fn journal(&self, policy: &str) -> PathBuf {
        self.dir.path().join(format!("{}.jsonl", policy.replace('/', "_")))
    }

    fn exec(&self, policy: &str, extra: &[&str]) -> (Output, Value) {
        let journal = self.journal(policy);
        let mut args = vec!["exec", policy, "--target", path(&self.target), "--output", "json", "--journal", path(&journal)];
        args.extend_from_slice(extra);
        let output = self.runner(&args);
        let report =
            serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{policy}: no JSON report ({e}): {}{}", stdout(&output), stderr(&output)));
        (output, report)
    }
}

/// A gate may pass or fail on someone's cluster; it must not be refused,
/// stopped, or unable to reach the cluster, and must have read it.
#[track_caller]
fn reached_a_verdict(cluster: &Cluster, policy: &str, output: &Output, report: &Value) {
    let journal = std::fs::read_to_string(cluster.journal(policy)).unwrap_or_default();
    let problems = not_a_verdict(output.status.code(), report, &journal);
    assert!(problems.is_empty(), "{policy}: not a verdict on the cluster:\n  {}\n{report:#}\n{}", problems.join("\n  "), stderr(output));
    println!("{policy}: {} ({})", report["outcome"], report["reasons"]);
}

#[test]
fn bundled_gates_run_against_the_cluster() {
    let Some(cluster) = cluster("bundled_gates_run_against_the_cluster") else { return };
    let list = cluster.runner(&["list", "--output", "json"]);
    let policies: Value = serde_json::from_slice(&list.stdout).unwrap_or_else(|e| panic!("runner list ({e}): {}", stderr(&list)));
    let gates: Vec<String> =
        policies.as_array().unwrap().iter().filter(|p| p["world"] == "gate").filter_map(|p| p["name"].as_str().map(str::to_string)).collect();
    assert!(gates.contains(&"pods-ready".to_string()), "{policies}");
    for gate in &gates {
        let selector = format!("selector={}", cluster.selector);
        let extra: Vec<&str> = if gate == "pods-ready" { vec!["--config", &selector] } else { vec![] };
        let (output, report) = cluster.exec(gate, &extra);
        reached_a_verdict(&cluster, gate, &output, &report);
    }
}

#[test]
fn target_check_lists_what_the_cluster_has() {
    let Some(cluster) = cluster("target_check_lists_what_the_cluster_has") else { return };
    let output = cluster.runner(&["target", "check", path(&cluster.target), "--output", "json"]);
    let code = output.status.code();
    assert!(matches!(code, Some(0 | 1)), "exit {code:?}: {}{}", stdout(&output), stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["server"]["version"].as_str().is_some_and(|v| v.starts_with('v')), "{report:#}");
    assert!(!report["nodes"].as_array().unwrap().is_empty(), "{report:#}");
    assert_eq!(report["complete"], code == Some(0));
    // Something missing is the cluster's business; a read it refused is the test's identity lacking rights.
    let missing = report["missing"].to_string();
    assert!(!REFUSALS.iter().any(|word| missing.contains(word)), "the cluster refused a read: {report:#}");
    let text = cluster.runner(&["target", "check", path(&cluster.target)]);
    println!("{}", stdout(&text));
}

#[test]
fn a_patterns_dry_run_changes_nothing() {
    let Some(cluster) = cluster("a_patterns_dry_run_changes_nothing") else { return };
    // The gate slot must pass whatever the cluster runs: no minimum of Pods.
    let gate_input = format!("gate-input={}", serde_json::json!({"selector": cluster.selector, "min-pods": 0}));
    let pattern = fixture("probe-pattern");
    let (output, report) = cluster.exec(path(&pattern), &["--dry-run", "--config", &gate_input]);
    expect_exit(&output, 0);
    assert_eq!(report["gates"][0]["outcome"], "pass", "{report:#}");
    let planned: Vec<&str> = report["plan"].as_array().unwrap().iter().map(|c| c["call"].as_str().unwrap()).collect();
    assert_eq!(planned, ["approval.request", "kube-write.scale", "kube-write.patch", "postgres-write.execute"], "{report:#}");
    let journal = std::fs::read_to_string(cluster.dir.path().join(format!("{}.jsonl", path(&pattern).replace('/', "_")))).unwrap();
    for line in journal.lines() {
        let entry: Value = serde_json::from_str(line).unwrap();
        if entry["call"].as_str().is_some_and(|c| c.starts_with("kube-write.")) {
            assert!(entry["outcome"].as_str().unwrap().starts_with("planned"), "a mutation reached the cluster: {entry}");
        }
    }
}

/// The checks above, held to what a real cluster answers an identity that
/// may read StatefulSets, Pods and Services but not a member's Pod by name:
/// pg-healthy replayed (no cluster needed) over its recorded healthy
/// session, cut at its first query, which the API server refused with 403.
/// The gate gives up with `denied` and exit 1, which the report's `denied`
/// (the Kubernetes calls' refusals) does not list: only the journal and the
/// error show it, and the checks must catch it.
#[test]
fn the_checks_reject_a_gate_whose_member_lookup_the_cluster_refused() {
    let dir = tempfile::tempdir().unwrap();
    let recorded = repo().join("policies/gates/pg-healthy/tests/sessions/healthy.session.json");
    let mut session: Value = serde_json::from_str(&std::fs::read_to_string(recorded).unwrap()).unwrap();
    let calls = session["calls"].as_array_mut().unwrap();
    let first_query = calls.iter().position(|c| c["call"] == "postgres-read.query").unwrap();
    calls.truncate(first_query + 1);
    let refused = &mut calls[first_query];
    refused.as_object_mut().unwrap().remove("response");
    refused["error"] = serde_json::json!({
        "code": "denied",
        "message": "pods \"postgres-cluster-0\" is forbidden: User \"system:serviceaccount:databases:runner\" cannot get resource \"pods\" in API group \"\" in the namespace \"databases\"",
    });
    let file = dir.path().join("refused.session.json");
    std::fs::write(&file, serde_json::to_string_pretty(&session).unwrap()).unwrap();

    let journal = dir.path().join("refused.jsonl");
    let output = Command::new(assert_cmd::cargo::cargo_bin("runner"))
        .args(["exec", "pg-healthy", "--replay", path(&file), "--output", "json", "--journal", path(&journal)])
        .env("RUNNER_CACHE_DIR", dir.path().join("cache"))
        .env("RUNNER_POLICY_PATH", repo().join("policies/dist"))
        .env_remove("RUNNER_LOG")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("no JSON report ({e}): {}{}", stdout(&output), stderr(&output)));
    // What the old checks looked at says nothing is wrong ...
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    assert_eq!(report["denied"], serde_json::json!([]), "{report:#}");
    assert_eq!(report["unavailable"], serde_json::json!([]), "{report:#}");
    // ... the checks now made do not take it for a verdict.
    let problems = not_a_verdict(output.status.code(), &report, &std::fs::read_to_string(&journal).unwrap());
    assert!(problems.iter().any(|p| p.contains("error is `denied`")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("postgres-read.query") && p.contains("denied")), "{problems:?}");
    assert!(problems.iter().any(|p| p.contains("quotes a refusal (forbidden)")), "{problems:?}");

    // The same session uncut is a verdict.
    let journal = dir.path().join("healthy.jsonl");
    let healthy = repo().join("policies/gates/pg-healthy/tests/sessions/healthy.session.json");
    let output = Command::new(assert_cmd::cargo::cargo_bin("runner"))
        .args(["exec", "pg-healthy", "--replay", path(&healthy), "--output", "json", "--journal", path(&journal)])
        .env("RUNNER_CACHE_DIR", dir.path().join("cache"))
        .env("RUNNER_POLICY_PATH", repo().join("policies/dist"))
        .env_remove("RUNNER_LOG")
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("no JSON report ({e}): {}{}", stdout(&output), stderr(&output)));
    let problems = not_a_verdict(output.status.code(), &report, &std::fs::read_to_string(&journal).unwrap());
    assert!(problems.is_empty(), "{problems:?}\n{report:#}");
}

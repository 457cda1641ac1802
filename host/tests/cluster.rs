//! The cluster capability without a cluster: the canned ARM cases of the
//! `cluster-pattern` fixture and a session recorded on the lab under `runner test`, `run-info.databases` from
//! a target file, a target with no cluster API (exit 4) and a bad
//! `cluster:` section (exit 2). `cluster_lab.rs` runs it against the lab.

mod common;

use common::*;

#[test]
fn every_canned_cluster_case_passes() {
    let sandbox = Sandbox::new();
    fixture("cluster-pattern");
    let cases = repo().join("tests/fixtures/cluster-pattern/tests");
    let out = expect_exit(&sandbox.runner(&["test", path(&cases)]), 0);
    for case in [
        "pool-upgrade-succeeds",
        "drain-blocked-by-pdb",
        "another-operation-running",
        "throttled",
        "dry-run-plans-the-control-plane",
        "delete-not-requested",
        "lab-session-upgrade",
    ] {
        assert!(out.contains(&format!("ok   {case}")), "{case}:\n{out}");
    }
    assert!(out.contains("0 failed"), "{out}");
}

/// A target file whose cluster cannot be reached (the kube calls are not
/// made here) with two databases and, when given, a cluster section.
fn target_file(sandbox: &Sandbox, cluster: &str) -> std::path::PathBuf {
    let dir = sandbox.dir.path();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n",
    )
    .unwrap();
    let file = dir.join("target.yaml");
    std::fs::write(
        &file,
        format!(
            "kubeconfig: kubeconfig\nnamespace: databases\ndatabases:\n  orders:\n    engine: postgres\n    statefulSet: orders-pg\n    credentials: {{env: PGPASSWORD}}\n  cache:\n    engine: redis\n    namespace: caching\n    credentials: {{env: REDIS_PASSWORD}}\n{cluster}"
        ),
    )
    .unwrap();
    file
}

#[test]
fn run_info_tells_the_targets_databases() {
    let sandbox = Sandbox::new();
    let target = target_file(&sandbox, "");
    let out = sandbox.runner(&["exec", path(&fixture("cluster-pattern")), "--target", path(&target), "--config", "calls=databases", "-o", "json"]);
    expect_exit(&out, 0);
    let summary = json_of(&out)["reasons"][0].as_str().unwrap().to_string();
    assert!(summary.contains("database orders engine=postgres namespace= statefulset=orders-pg"), "{summary}");
    assert!(summary.contains("database cache engine=redis namespace=caching statefulset=cache"), "{summary}");
}

#[test]
fn a_target_without_a_cluster_api_answers_unavailable() {
    let sandbox = Sandbox::new();
    let target = target_file(&sandbox, "");
    let out = sandbox.runner(&["exec", path(&fixture("cluster-pattern")), "--target", path(&target), "--config", "calls=node-pools"]);
    let text = expect_exit(&out, 4);
    assert!(text.contains("no cluster API for target") && text.contains("a `cluster:` section in a target file"), "{text}");
    let lines = sandbox.journal_lines();
    let call = lines.iter().find(|l| l["call"] == "cluster-read.node-pools").expect("journaled");
    assert_eq!(call["outcome"], "unavailable");
}

#[test]
fn a_bad_cluster_section_is_bad_input() {
    let sandbox = Sandbox::new();
    let bad = target_file(&sandbox, "cluster:\n  aks:\n    subscription: prod\n    resource-group: rg\n    name: aks-prod\n");
    let text = expect_exit(&sandbox.runner(&["target", "check", path(&bad)]), 2);
    assert!(text.contains("cluster.aks.subscription `prod` is not a subscription id"), "{text}");
    let no_token = target_file(
        &sandbox,
        "cluster:\n  aks:\n    subscription: 00000000-1111-2222-3333-444444444444\n    resource-group: rg\n    name: aks-prod\n    endpoint: https://127.0.0.1:9\n    token-file: missing-token\n",
    );
    let text = expect_exit(&sandbox.runner(&["exec", path(&fixture("cluster-pattern")), "--target", path(&no_token)]), 2);
    assert!(text.contains("token-file") && text.contains("missing-token") && text.contains("cannot read it"), "{text}");
}

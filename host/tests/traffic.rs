//! The traffic capability without a lab: the canned cases of the
//! `traffic-pattern` fixture under `runner test` (answers in the upstreams'
//! shapes), a target with no switches (exit 4) and a bad `traffic:`
//! section (exit 2). `traffic_lab.rs` runs it against the lab.

mod common;

use common::*;

#[test]
fn every_canned_traffic_case_passes() {
    let sandbox = Sandbox::new();
    fixture("traffic-pattern");
    let cases = repo().join("tests/fixtures/traffic-pattern/tests");
    let out = expect_exit(&sandbox.runner(&["test", path(&cases)]), 0);
    for case in ["route-switch", "stale-profile"] {
        assert!(out.contains(&format!("ok   {case}")), "{case}:\n{out}");
    }
    assert!(out.contains("0 failed"), "{out}");
}

/// A target file whose cluster cannot be reached, with `extra` appended.
fn target_file(sandbox: &Sandbox, extra: &str) -> std::path::PathBuf {
    let dir = sandbox.dir.path();
    let kubeconfig = dir.join("kubeconfig");
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters:\n- name: c\n  cluster: {server: 'https://127.0.0.1:1'}\nusers:\n- name: u\n  user: {token: t}\ncontexts:\n- name: c\n  context: {cluster: c, user: u}\ncurrent-context: c\n",
    )
    .unwrap();
    let file = dir.join("target.yaml");
    std::fs::write(&file, format!("kubeconfig: kubeconfig\nnamespace: shop\n{extra}")).unwrap();
    file
}

#[test]
fn a_target_without_switches_answers_unavailable() {
    let sandbox = Sandbox::new();
    let target = target_file(&sandbox, "");
    let out = sandbox.runner(&["exec", path(&fixture("traffic-pattern")), "--target", path(&target), "--config", "calls=weights:frontdoor"]);
    let text = expect_exit(&out, 4);
    assert!(text.contains("no traffic switch configured") && text.contains("`traffic:` section"), "{text}");
    let lines = sandbox.journal_lines();
    let call = lines.iter().find(|l| l["call"] == "traffic-read.weights").expect("journaled");
    assert_eq!(call["outcome"], "unavailable");
}

#[test]
fn a_switch_the_target_does_not_name_is_not_found_and_a_profile_needs_arm() {
    let sandbox = Sandbox::new();
    let target = target_file(&sandbox, "traffic:\n  switches:\n    edge:\n      url: http://127.0.0.1:9\n      trafficmanager: {profile: edge}\n");
    let out = sandbox.runner(&["exec", path(&fixture("traffic-pattern")), "--target", path(&target), "--config", "calls=weights:other"]);
    let text = expect_exit(&out, 1);
    assert!(text.contains("has no traffic switch `other` (it has: edge)"), "{text}");
    let out = sandbox.runner(&["exec", path(&fixture("traffic-pattern")), "--target", path(&target), "--config", "calls=weights:edge"]);
    let text = expect_exit(&out, 4);
    assert!(text.contains("add a `cluster:` section"), "{text}");
    // Observe needs no API: nothing listens on port 9, so every request is status 0, not an error.
    let out = sandbox.runner(&["exec", path(&fixture("traffic-pattern")), "--target", path(&target), "--config", "calls=observe:edge:/health:3", "-o", "json"]);
    expect_exit(&out, 0);
    let summary = json_of(&out)["reasons"][0].as_str().unwrap().to_string();
    assert!(summary.contains("requests=3 succeeded=0 statuses=0:3 backends="), "{summary}");
}

#[test]
fn a_bad_traffic_section_is_bad_input() {
    let sandbox = Sandbox::new();
    for (section, wanted) in [
        ("traffic:\n  switches:\n    edge: {url: 'http://edge.example', httproute: {name: edge}}\n", "traffic.switches.edge.url"),
        ("traffic:\n  switches:\n    edge: {url: 'http://127.0.0.1', httproute: {name: edge}, trafficmanager: {profile: edge}}\n", "exactly one of"),
        ("traffic:\n  switches:\n    edge: {url: 'http://127.0.0.1', httproute: {name: edge}, weight: 3}\n", "unknown field `weight`"),
    ] {
        let target = target_file(&sandbox, section);
        let text = expect_exit(&sandbox.runner(&["exec", path(&fixture("traffic-pattern")), "--target", path(&target)]), 2);
        assert!(text.contains(wanted), "{section}: {text}");
    }
}

#[test]
fn a_fleet_files_own_switches_serve_the_fleet_runs_own_calls() {
    let sandbox = Sandbox::new();
    let fleet = sandbox.dir.path().join("fleet.yaml");
    // Nothing listens on port 9: the requests are counted as status 0, and no member is reached.
    std::fs::write(&fleet, "members:\n  - {name: dev, target: {}}\ntraffic:\n  switches:\n    edge: {url: 'http://127.0.0.1:9', httproute: {name: edge}}\n")
        .unwrap();
    let out = sandbox.runner(&["exec", path(&fixture("traffic-pattern")), "--fleet", path(&fleet), "--config", "calls=observe:edge:/:2", "-o", "json"]);
    expect_exit(&out, 0);
    let summary = json_of(&out)["reasons"][0].as_str().unwrap().to_string();
    assert!(summary.contains("requests=2 succeeded=0 statuses=0:2"), "{summary}");
    // Its route needs a Kubernetes API, which a fleet run without --target does not have.
    let out = sandbox.runner(&["exec", path(&fixture("traffic-pattern")), "--fleet", path(&fleet), "--config", "calls=weights:edge"]);
    expect_exit(&out, 4);
}

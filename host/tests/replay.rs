//! Record/replay and `runner test`: sessions recorded on a real PostgreSQL lab
//! and replayed with the lab down; divergences named; the bundled cases.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use common::lab::Lab;
use common::*;
use serde_json::{Value, json};

fn policies() -> PathBuf {
    repo().join("policies")
}

/// A session file shipped with a bundled policy's tests.
fn shipped(policy: &str, session: &str) -> PathBuf {
    policies().join(policy).join("tests/sessions").join(session)
}

#[test]
fn every_bundled_test_case_passes() {
    let sandbox = Sandbox::new();
    let output = sandbox.runner(&["test", path(&policies())]);
    let out = expect_exit(&output, 0);
    for case in [
        "gates/pods-ready/tests/all-ready",
        "gates/pods-ready/tests/one-pending",
        "gates/pg-preflight/tests/no-sync-standbys",
        "gates/pg-preflight/tests/replay-paused",
        "gates/pg-preflight/tests/stale-backup",
        "gates/pg-healthy/tests/service-on-replica",
        "patterns/postgres-ferris-wheel/tests/preflight-fails",
        // Issue 14 item 9: a no at the approval, and nobody to answer it, change nothing after the question.
        "patterns/postgres-ferris-wheel/tests/operator-declines-the-first-switchover",
        "patterns/postgres-ferris-wheel/tests/no-one-to-approve-stops-before-the-switchover",
        "patterns/postgres-emergency-failover/tests/operator-declines",
        "patterns/postgres-emergency-failover/tests/no-one-to-approve",
        "patterns/redis-rolling-replace/tests/operator-declines",
        "patterns/redis-rolling-replace/tests/no-one-to-approve",
        "patterns/mongo-stepdown-cascade/tests/operator-declines",
        "patterns/mongo-stepdown-cascade/tests/no-one-to-approve",
        // Hand-written from MongoDB's documented reply shapes (no mongod here).
        "gates/mongo-replset-healthy/tests/healthy",
        "gates/mongo-replset-healthy/tests/lagging-secondary",
        "gates/mongo-replset-healthy/tests/member-recovering",
        "gates/mongo-replset-healthy/tests/member-unreachable",
        "gates/mongo-replset-healthy/tests/no-majority",
        "patterns/mongo-stepdown-cascade/tests/happy-path",
        "patterns/mongo-stepdown-cascade/tests/preflight-lagging-secondary",
        "patterns/mongo-stepdown-cascade/tests/no-electable-secondary",
        "patterns/mongo-stepdown-cascade/tests/primary-does-not-step-down",
        "patterns/mongo-stepdown-cascade/tests/resume-with-force",
        "patterns/mongo-stepdown-cascade/tests/resume-freeze-fails",
        "patterns/mongo-stepdown-cascade/tests/candidate",
        // Issue 16: a fleet rollout's budget, residual set and skipped members.
        "patterns/staged-rollout/tests/a-member-fails-within-the-budget",
        "patterns/staged-rollout/tests/a-budget-exceeded-stops-before-prod",
        "patterns/staged-rollout/tests/a-member-at-the-target-is-skipped",
        // Issue 18: the bundled Python gate, built by scripts/build-policies.
        "python/pod-restarts/tests/all-ready",
        "python/pod-restarts/tests/crash-looping",
    ] {
        assert!(out.lines().any(|l| l.starts_with("ok   ") && l.contains(case)), "{case} did not pass:\n{out}");
    }
    let summary = stdout(&output).lines().last().unwrap_or_default().to_string();
    assert!(summary.ends_with(" passed, 0 failed"), "{summary}");
}

#[test]
fn a_wrong_expectation_fails_and_names_the_case() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("cases");
    std::fs::create_dir_all(&dir).unwrap();
    let session = shipped("gates/pg-preflight", "healthy.session.json");
    std::fs::write(dir.join("right.test.yaml"), format!("component: pg-preflight\nsession: {}\nexpect: {{outcome: pass}}\n", session.display())).unwrap();
    std::fs::write(
        dir.join("wrong.test.yaml"),
        format!("name: preflight says fail\ncomponent: pg-preflight\nsession: {}\nexpect: {{outcome: fail, reasons: [replay lag]}}\n", session.display()),
    )
    .unwrap();
    let output = sandbox.runner(&["test", path(&dir)]);
    let out = expect_exit(&output, 1);
    assert!(out.contains("ok   right ("), "{out}");
    assert!(out.contains("FAIL preflight says fail: expected fail, got pass (2 standby(s) in sync or quorum state"), "{out}");
    assert!(out.contains("1 passed, 1 failed"), "{out}");

    // A wrong reason or a wrong mutation sequence fails too, naming what is missing.
    std::fs::write(
        dir.join("wrong.test.yaml"),
        format!("component: pg-preflight\nsession: {}\nexpect: {{outcome: pass, reasons: [replay lag]}}\n", session.display()),
    )
    .unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 1);
    assert!(out.contains("FAIL wrong: no reason contains `replay lag`"), "{out}");
}

#[test]
fn a_bad_test_file_exits_2() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("cases");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("typo.test.yaml"), "component: pods-ready\nresponses: []\nexpect: {outcome: passed}\n").unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 2);
    assert!(out.contains("BAD  typo:") && out.contains("expect.outcome `passed` is not one of pass, warn, fail"), "{out}");
    std::fs::write(dir.join("typo.test.yaml"), "component: pods-ready\nsesion: x.json\nexpect: {outcome: pass}\n").unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 2);
    assert!(out.contains("unknown field `sesion`"), "{out}");
    std::fs::write(dir.join("typo.test.yaml"), "component: pods-ready\nsession: missing.session.json\nexpect: {outcome: pass}\n").unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 2);
    assert!(out.contains("missing.session.json: cannot read the session"), "{out}");
}

#[test]
fn canned_responses_answer_by_match_and_name_an_unanswered_call() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("cases");
    std::fs::create_dir_all(&dir).unwrap();
    // An error answered to the component, as a backend would.
    let case = r#"
component: pods-ready
responses:
  - call: kube-read.list
    args: {kind: Pod, labelSelector: "~app="}
    error: {code: denied, message: "pods is forbidden: User \"ci\" cannot list resource \"pods\""}
expect:
  outcome: error
  reasons: ["denied: pods is forbidden"]
"#;
    std::fs::write(dir.join("forbidden.test.yaml"), case).unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 0);
    assert!(out.contains("ok   forbidden"), "{out}");
    // No canned response for the call the component makes: the case fails, naming it.
    std::fs::write(dir.join("forbidden.test.yaml"), case.replace("~app=", "~tier=")).unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 1);
    assert!(out.contains(r#"FAIL forbidden: replay: no canned response for pods-ready: kube-read.list {"apiVersion":"v1","fieldSelector":null,"kind":"Pod","labelSelector":"app=postgres","namespace":null}"#), "{out}");
}

#[test]
fn a_replay_that_asks_for_something_else_names_the_call_and_both_versions() {
    let sandbox = Sandbox::new();
    let session = shipped("gates/pg-preflight", "healthy.session.json");
    let output = sandbox.runner(&["exec", "pg-preflight", "--replay", path(&session), "--config", "statefulset=pg-other"]);
    let err = expect_exit(&output, 1);
    assert!(err.contains("error: "), "{err}");
    assert!(
        err.contains(r#"call 1 (pg-preflight: kube-read.get) differs at args.name: the session holds "postgres-cluster" but the component sent "pg-other""#),
        "{err}"
    );

    // Whitespace in SQL is not a difference: the session's queries re-indented still replay.
    let text = std::fs::read_to_string(&session).unwrap();
    let mut reindented: Value = serde_json::from_str(&text).unwrap();
    let mut touched = 0;
    for call in reindented["calls"].as_array_mut().unwrap() {
        if let Some(sql) = call["args"]["sql"].as_str().map(|s| format!("  {}\n", s.replace(' ', "\n    "))) {
            call["args"]["sql"] = Value::from(sql);
            touched += 1;
        }
    }
    assert!(touched > 0, "the session holds SQL");
    let respaced = sandbox.dir.path().join("respaced.session.json");
    std::fs::write(&respaced, serde_json::to_string(&reindented).unwrap()).unwrap();
    expect_exit(&sandbox.runner(&["exec", "pg-preflight", "--replay", path(&respaced)]), 0);

    // A session cut short: the call it lacks is named.
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    let calls = file["calls"].as_array_mut().unwrap();
    let last = calls.pop().unwrap();
    assert_eq!(last["call"], "clock.now");
    let short = sandbox.dir.path().join("short.session.json");
    std::fs::write(&short, serde_json::to_string_pretty(&file).unwrap()).unwrap();
    let err = expect_exit(&sandbox.runner(&["exec", "pg-preflight", "--replay", path(&short)]), 1);
    assert!(err.contains("the component asked for pg-preflight: clock.now but the session ends after 6 call(s)"), "{err}");

    // Not a session at all: bad input.
    std::fs::write(&short, r#"{"format": "runner-session/9", "calls": []}"#).unwrap();
    let err = expect_exit(&sandbox.runner(&["exec", "pg-preflight", "--replay", path(&short)]), 2);
    assert!(err.contains("format `runner-session/9` is not `runner-session/1`"), "{err}");
}

/// The JSON report minus what differs between any two runs (timings, the journal's path).
fn outcome(output: &Output) -> Value {
    let mut report: Value = serde_json::from_str(&stdout(output)).unwrap_or_else(|e| panic!("report is not JSON ({e}): {}{}", stdout(output), stderr(output)));
    // What differs by design: timings, the journal's place, and the run's header (when, and where: the lab or a session).
    for key in ["wall_ms", "journal", "compiled_from_cache", "run", "run_id", "target"] {
        report.as_object_mut().unwrap().remove(key);
    }
    for step in report["steps"].as_array_mut().unwrap() {
        step.as_object_mut().unwrap().remove("ms");
        step.as_object_mut().unwrap().remove("at_ms");
    }
    report
}

fn session(path: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn postgres_processes(dir: &Path) -> usize {
    let ps = Command::new("ps").args(["-eo", "args"]).output().unwrap();
    stdout(&ps).lines().filter(|l| l.contains("bin/postgres") && l.contains(path(dir))).count()
}

#[test]
fn sessions_recorded_on_the_lab_replay_identically_with_the_lab_down() {
    let lab = Lab::up(&["--postgres", "--subnet", "231"]);
    let backup = lab.runner(&["lab", "--dir", path(lab.dir.path()), "backup"]);
    assert!(backup.status.success(), "{}", stderr(&backup));
    let password = lab.password("postgres-credentials");
    let pattern_flags = ["--allow", "kube:*", "--allow", "postgres:*", "--approve"];

    // Recorded on the real servers: a gate that passes, a gate that meets a
    // real backend error (no such Job), and the whole Ferris wheel.
    let mut recorded = Vec::new();
    let runs: [(&str, &str, Vec<&str>); 3] = [
        ("preflight", "pg-preflight", vec![]),
        ("no-job", "pg-preflight", vec!["--config", "backup-job=nightly-backup"]),
        ("ferris", "postgres-ferris-wheel", pattern_flags.to_vec()),
    ];
    for (name, policy, flags) in &runs {
        let file = lab.dir.path().join(format!("{name}.session.json"));
        let mut args = vec!["exec", policy, "--output", "json", "--record", path(&file)];
        args.extend(flags);
        let output = lab.runner(&args);
        let expected_exit = if *name == "no-job" { 1 } else { 0 };
        assert_eq!(output.status.code(), Some(expected_exit), "{name}: {}{}", stdout(&output), stderr(&output));
        recorded.push((outcome(&output), file));
    }
    lab.down();
    assert_eq!(postgres_processes(lab.dir.path()), 0, "the lab is down: no server may answer the replay");

    for ((name, policy, flags), (live, file)) in runs.iter().zip(&recorded) {
        let mut args = vec!["exec", policy, "--output", "json", "--replay", path(file)];
        args.extend(flags);
        let replayed = lab.runner(&args);
        assert_eq!(outcome(&replayed), *live, "{name}: the replay differs from the recorded run\n{}", stderr(&replayed));
        assert_eq!(replayed.status.code(), Some(if *name == "no-job" { 1 } else { 0 }), "{name}");
        let text = std::fs::read_to_string(file).unwrap();
        assert!(!text.contains(&password), "{name}: the session holds the database password");
        let calls = session(file)["calls"].as_array().unwrap().clone();
        assert!(!calls.iter().any(|c| c["args"]["kind"] == "Secret"), "{name}: a host-side Secret lookup reached the session");
    }

    // The real 404 was recorded as the component saw it, and replayed as the same error.
    let no_job = session(&recorded[1].1);
    let job_call = no_job["calls"].as_array().unwrap().iter().find(|c| c["args"]["kind"] == "Job").unwrap().clone();
    assert_eq!(job_call["error"]["code"], "not-found", "{job_call}");
    let message = job_call["error"]["message"].as_str().unwrap();
    assert!(message.contains("nightly-backup"), "{message}");
    let reasons = recorded[1].0["reasons"].as_array().unwrap();
    assert!(reasons.contains(&json!(format!("backup Job nightly-backup: {message}"))), "{reasons:?}");

    // The pattern: its polls slept on the lab; the replay answers them from the
    // session at once, and `runner test` checks its mutations in order.
    let ferris = session(&recorded[2].1);
    let calls = ferris["calls"].as_array().unwrap();
    assert!(calls.iter().filter(|c| c["call"] == "clock.sleep").count() > 5, "the pattern polled with sleeps");
    assert!(calls.iter().any(|c| c["call"] == "gates.run") && calls.iter().any(|c| c["component"] == "pg-healthy"), "gate calls follow gates.run");
    // approval.request counts as a mutation in a case: it is in the plan, and nothing may happen unasked.
    let mutating = |c: &&Value| ["kube-write.", "postgres-write.", "approval."].iter().any(|p| c["call"].as_str().unwrap().starts_with(p));
    let mutations: Vec<Value> = calls.iter().filter(mutating).map(|c| json!({"call": c["call"], "args": c["args"]})).collect();
    assert!(mutations.iter().any(|m| m["call"] == "kube-write.scale" && m["args"]["replicas"] == 4), "{mutations:?}");
    let case = json!({"component": "postgres-ferris-wheel", "session": recorded[2].1, "expect": {"outcome": "succeeded", "reasons": ["switched over postgres-cluster-0 -> postgres-cluster-3"], "mutations": mutations}});
    let dir = lab.dir.path().join("cases");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("ferris.test.yaml"), serde_json::to_string(&case).unwrap()).unwrap();
    let started = std::time::Instant::now();
    let output = lab.runner(&["test", path(&dir)]);
    assert!(stdout(&output).contains("ok   ferris ("), "{}{}", stdout(&output), stderr(&output));
    let elapsed = started.elapsed();
    eprintln!("Ferris wheel replayed by runner test in {elapsed:?}");

    // One mutation expected differently: the case fails, naming it.
    let mut wrong = case.clone();
    let scale = wrong["expect"]["mutations"].as_array_mut().unwrap().iter_mut().find(|m| m["call"] == "kube-write.scale").unwrap();
    scale["args"]["replicas"] = json!(5);
    std::fs::write(dir.join("ferris.test.yaml"), serde_json::to_string(&wrong).unwrap()).unwrap();
    let output = lab.runner(&["test", path(&dir)]);
    let out = expect_exit(&output, 1);
    assert!(
        out.contains("FAIL ferris: mutation ")
            && out
                .contains(r#"expected kube-write.scale {"apiVersion":"apps/v1","kind":"StatefulSet","name":"postgres-cluster","namespace":null,"replicas":5}"#),
        "{out}"
    );
}

#[test]
fn a_pattern_tested_with_canned_responses_checks_its_mutations_in_order() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("cases");
    std::fs::create_dir_all(&dir).unwrap();
    let pattern = fixture("probe-pattern");
    // The gate slot answered with a canned verdict; every later call canned too.
    let case = format!(
        r#"
component: {}
responses:
  - call: gates.run
    args: {{slot: check}}
    response: {{outcome: pass, reasons: ["canned"]}}
  - call: approval.request
    response: true
  - call: kube-write.scale
  - call: kube-write.patch
    response: {{"kind": "Service", "spec": {{"selector": {{"statefulset.kubernetes.io/pod-name": "postgres-cluster-3"}}}}}}
  - call: postgres-write.execute
    args: {{sql: CHECKPOINT}}
    response: 0
expect:
  outcome: succeeded
  reasons: ["probe finished: succeeded"]
  mutations:
    - approval.request
    - {{call: kube-write.scale, args: {{name: postgres-cluster, replicas: 4}}}}
    - {{call: kube-write.patch, args: {{kind: Service, body: {{spec: {{selector: {{statefulset.kubernetes.io/pod-name: postgres-cluster-3}}}}}}}}}}
    - postgres-write.execute
"#,
        pattern.display()
    );
    std::fs::write(dir.join("probe.test.yaml"), &case).unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 0);
    assert!(out.contains("ok   probe ("), "{out}");

    // Without a canned verdict the bound gate (pods-ready) runs over the canned
    // responses: one Pod not Ready, so the pattern stops before any mutation.
    let gate_fails = case.replace(
        "  - call: gates.run\n    args: {slot: check}\n    response: {outcome: pass, reasons: [\"canned\"]}\n",
        "  - call: kube-read.list\n    response: [{metadata: {name: postgres-cluster-0}, status: {phase: Pending}}]\n",
    );
    assert_ne!(gate_fails, case);
    let gate_fails = gate_fails.replace(
        "outcome: succeeded\n  reasons: [\"probe finished: succeeded\"]",
        "outcome: error\n  reasons: [\"postgres-cluster-0: not Ready (phase Pending\"]",
    );
    std::fs::write(dir.join("probe.test.yaml"), &gate_fails).unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 1);
    assert!(out.contains("FAIL probe: mutation 1: expected approval.request, but only 0 mutating call(s) were made"), "{out}");
    let no_mutations = gate_fails.split("  mutations:").next().unwrap().to_string() + "  mutations: []\n";
    std::fs::write(dir.join("probe.test.yaml"), &no_mutations).unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 0);
    assert!(out.contains("ok   probe ("), "{out}");
}

/// A case (or a session) may be a dry run: mutations are answered from the
/// plan, so none needs a canned response and none is counted as made.
#[test]
fn dry_run_cases_and_sessions_are_replayed_as_dry_runs() {
    let sandbox = Sandbox::new();
    let dir = sandbox.dir.path().join("cases");
    std::fs::create_dir_all(&dir).unwrap();
    let case = format!(
        r#"
component: {}
dry-run: true
responses:
  - call: gates.run
    args: {{slot: check}}
    response: {{outcome: pass, reasons: ["canned"]}}
  - call: approval.request
    response: true
expect:
  outcome: succeeded
  mutations: []
"#,
        fixture("probe-pattern").display()
    );
    std::fs::write(dir.join("plan.test.yaml"), &case).unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 0);
    assert!(out.contains("ok   plan ("), "{out}");
    // The same case run for real asks for the scale it has no answer for.
    std::fs::write(dir.join("plan.test.yaml"), case.replace("dry-run: true\n", "")).unwrap();
    let out = expect_exit(&sandbox.runner(&["test", path(&dir)]), 1);
    assert!(out.contains("no canned response for probe-pattern: kube-write.scale"), "{out}");
    // For CI: the same verdict as JUnit XML, the failure with its message.
    let junit = sandbox.runner(&["test", path(&dir), "--output", "junit"]);
    let xml = expect_exit(&junit, 1);
    assert!(xml.contains(r#"<testsuites name="runner test" tests="1" skipped="0" failures="1" errors="0">"#), "{xml}");
    assert!(xml.contains("<failure message=\"replay: no canned response for probe-pattern: kube-write.scale"), "{xml}");

    // A session marked as recorded with --dry-run is replayed as one.
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(shipped("gates/pg-preflight", "healthy.session.json")).unwrap()).unwrap();
    file["dry-run"] = Value::Bool(true);
    let session = sandbox.dir.path().join("dry.session.json");
    std::fs::write(&session, serde_json::to_string(&file).unwrap()).unwrap();
    let output = sandbox.runner(&["exec", "pg-preflight", "--replay", path(&session), "--output", "json"]);
    expect_exit(&output, 0);
    assert_eq!(json_of(&output)["dry_run"], true);
}

/// `component: <name>` finds what the crate holding the test file built,
/// in its own `target` or wherever `CARGO_TARGET_DIR` puts it.
#[test]
fn a_case_names_its_component_and_finds_the_crates_build() {
    let sandbox = Sandbox::new();
    let krate = sandbox.dir.path().join("my-pattern");
    std::fs::create_dir_all(krate.join("tests")).unwrap();
    std::fs::write(krate.join("Cargo.toml"), "[package]\nname = \"my-pattern\"\n").unwrap();
    let case = r#"
component: probe-pattern
dry-run: true
responses:
  - call: gates.run
    args: {slot: check}
    response: {outcome: pass, reasons: ["canned"]}
  - call: approval.request
    response: true
expect:
  outcome: succeeded
"#;
    std::fs::write(krate.join("tests/plan.test.yaml"), case).unwrap();
    let test = |target_dir: Option<&std::path::Path>| {
        let mut command = assert_cmd::Command::cargo_bin("runner").unwrap();
        command
            .env("RUNNER_CACHE_DIR", sandbox.dir.path().join("cache"))
            .env("RUNNER_POLICY_PATH", repo().join("policies/dist"))
            .env_remove("CARGO_TARGET_DIR");
        if let Some(dir) = target_dir {
            command.env("CARGO_TARGET_DIR", dir);
        }
        command.args(["test", path(&krate.join("tests"))]).output().unwrap()
    };
    let out = expect_exit(&test(None), 2);
    assert!(out.contains("no policy named probe-pattern"), "{out}");
    let elsewhere = sandbox.dir.path().join("elsewhere");
    for (target, set) in [(krate.join("target"), None), (elsewhere.clone(), Some(elsewhere.as_path()))] {
        let release = target.join("wasm32-wasip2/release");
        std::fs::create_dir_all(&release).unwrap();
        std::fs::copy(fixture("probe-pattern"), release.join("probe_pattern.wasm")).unwrap();
        let out = expect_exit(&test(set), 0);
        assert!(out.contains("ok   plan ("), "{out}");
        std::fs::remove_dir_all(&target).unwrap();
    }
}

/// Logs: `--log-format json` writes one JSON object per line; `RUNNER_LOG`
/// takes precedence over `RUST_LOG`, which is honoured too.
#[test]
fn logs_follow_rust_log_and_runner_log_and_can_be_json() {
    let sandbox = Sandbox::new();
    let mut file: Value = serde_json::from_str(&std::fs::read_to_string(shipped("gates/pg-preflight", "healthy.session.json")).unwrap()).unwrap();
    // A digest that is never this build's: the replay warns about it.
    file["policy"]["digest"] = Value::from("sha256:0000000000000000");
    let session = sandbox.dir.path().join("other.session.json");
    std::fs::write(&session, serde_json::to_string(&file).unwrap()).unwrap();
    let run = |env: &[(&str, &str)], extra: &[&str]| {
        let mut command = assert_cmd::Command::cargo_bin("runner").unwrap();
        command
            .env("RUNNER_CACHE_DIR", sandbox.dir.path().join("cache"))
            .env("RUNNER_POLICY_PATH", repo().join("policies/dist"))
            .env_remove("RUNNER_LOG")
            .env_remove("RUST_LOG");
        for (key, value) in env {
            command.env(key, value);
        }
        command.args(["exec", "pg-preflight", "--replay", path(&session)]).args(extra).output().unwrap()
    };
    let json = run(&[], &["--log-format", "json"]);
    expect_exit(&json, 0);
    let lines: Vec<Value> = stderr(&json).lines().map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not a JSON log line ({e}): {l}"))).collect();
    let warning = lines.iter().find(|l| l["fields"]["message"].as_str().is_some_and(|m| m.contains("recorded with pg-preflight"))).expect("the digest warning");
    assert_eq!(warning["level"], "WARN");
    assert!(warning["timestamp"].as_str().is_some_and(|t| t.starts_with("20")), "{warning}");
    assert!(!stderr(&run(&[("RUST_LOG", "off")], &[])).contains("recorded with"));
    assert!(stderr(&run(&[("RUST_LOG", "off"), ("RUNNER_LOG", "warn")], &[])).contains("recorded with"));
    assert!(stderr(&run(&[("RUST_LOG", "debug")], &[])).contains(" DEBUG "));
}

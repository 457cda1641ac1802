//! Patterns: grants, dry-run plans, gate slots, approval, exit codes, the
//! journal and the JSON report.

mod common;

use common::*;
use serde_json::Value;

fn probe(sandbox: &Sandbox, extra: &[&str]) -> std::process::Output {
    let pattern = fixture("probe-pattern");
    let gate = format!("check={}", path(&fixture("hostile-gate")));
    let mut args = vec!["exec", path(&pattern), "--gate", &gate];
    args.extend_from_slice(extra);
    sandbox.runner(&args)
}

fn report(output: &std::process::Output) -> Value {
    serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("JSON report ({e}): {}", stdout(output)))
}

#[test]
fn mutations_are_denied_unless_the_operator_allows_them() {
    let sandbox = Sandbox::new();
    let output = probe(&sandbox, &["--approve"]);
    let text = expect_exit(&output, 3);
    assert!(text.contains("pass --allow kube:scale:apps/v1/StatefulSet"), "{text}");
    let journal = sandbox.journal_lines();
    let scale = journal.iter().find(|l| l["call"] == "kube-write.scale").expect("scale journaled");
    assert_eq!(scale["outcome"], "denied");
    assert!(journal.iter().all(|l| l["call"] != "kube-write.patch"), "nothing after the denial");
}

#[test]
fn allowed_mutations_reach_the_backend() {
    let sandbox = Sandbox::new();
    let output = probe(&sandbox, &["--approve", "--allow", "kube:*", "--allow", "postgres:execute"]);
    let text = expect_exit(&output, 4);
    assert!(text.contains("is not running; start it with `runner lab up`"), "{text}");
    let scale = sandbox.journal_lines().into_iter().find(|l| l["call"] == "kube-write.scale").unwrap();
    assert_eq!(scale["outcome"], "unavailable");
    // Its `started` line was on disk before the call went out.
    let lines = sandbox.journal_with_intents();
    let started = lines.iter().position(|l| l["call"] == "kube-write.scale" && l["outcome"] == "started").expect("a started line");
    assert_eq!(lines[started + 1]["call"], "kube-write.scale");
    assert_eq!(lines[started + 1]["outcome"], "unavailable");
}

#[test]
fn an_allowance_cannot_widen_what_the_component_requested() {
    let sandbox = Sandbox::new();
    let grants = sandbox.dir.path().join("grants.toml");
    std::fs::write(&grants, "allow = [\"*:*\"]\n").unwrap();
    // The gate slot runs `hostile-gate` in `denied` mode: it asks for Secrets it never requested.
    let output = probe(&sandbox, &["--grants", path(&grants), "--approve", "--config", r#"gate-input={"mode":"denied"}"#]);
    expect_exit(&output, 3);
    let denied = sandbox.journal_lines().into_iter().find(|l| l["outcome"] == "denied").unwrap();
    assert_eq!(denied["component"], "hostile-gate");
    assert_eq!(denied["args"]["kind"], "Secret");
}

#[test]
fn dry_run_prints_the_ordered_plan_and_changes_nothing() {
    let sandbox = Sandbox::new();
    let output = probe(&sandbox, &["--dry-run", "--allow", "kube:scale", "--output", "json"]);
    expect_exit(&output, 0);
    let report = report(&output);
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["dry_run"], true);
    let plan: Vec<(&str, Option<&str>)> = report["plan"].as_array().unwrap().iter().map(|c| (c["call"].as_str().unwrap(), c["needs_allow"].as_str())).collect();
    assert_eq!(
        plan,
        vec![
            ("approval.request", None),
            ("kube-write.scale", None),
            ("kube-write.patch", Some("kube:patch:v1/Service")),
            ("postgres-write.execute", Some("postgres:execute:postgres-cluster-0")),
        ]
    );
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps, vec!["check", "scale", "repoint", "checkpoint"]);
    assert_eq!(report["gates"][0]["gate"], "hostile-gate");
    assert_eq!(report["gates"][0]["outcome"], "pass");
    let journal = sandbox.journal_lines();
    assert!(journal.iter().filter(|l| l["call"].as_str().unwrap().contains("write")).all(|l| l["outcome"].as_str().unwrap().starts_with("planned")));
    let text = probe(&Sandbox::new(), &["--dry-run"]);
    let text = expect_exit(&text, 0);
    assert!(text.contains("a real run also needs: --allow kube:scale:apps/v1/StatefulSet"), "{text}");
    assert!(text.contains("none was performed"), "{text}");
    assert!(text.contains("  1. ask the operator to approve: scale postgres-cluster to 4 (details: adds a member on the upgraded pool)\n"), "{text}");
}

#[test]
fn a_failing_gate_stops_the_pattern_before_any_mutation() {
    let sandbox = Sandbox::new();
    // The gate cannot reach Kubernetes (no lab runs): the pattern stops at its first step.
    let output = probe(&sandbox, &["--dry-run", "--config", r#"gate-input={"mode":"kube"}"#, "--output", "json"]);
    expect_exit(&output, 4);
    let report = report(&output);
    assert_eq!(report["plan"], serde_json::json!([]));
    assert_eq!(report["steps"][0]["outcome"], "failed");
    assert_eq!(report["gates"][0]["outcome"], "error");
}

#[test]
fn a_gate_stopped_by_the_sandbox_is_an_error_for_the_pattern() {
    let sandbox = Sandbox::new();
    let output = probe(&sandbox, &["--dry-run", "--config", r#"gate-input={"mode":"panic"}"#, "--output", "json"]);
    expect_exit(&output, 1);
    let report = report(&output);
    assert!(report["error"]["message"].as_str().unwrap().contains("gate `hostile-gate`: hostile-gate: stopped by the sandbox: the component panicked"));
}

#[test]
fn gate_input_is_checked_against_the_gates_schema() {
    let sandbox = Sandbox::new();
    let output = probe(&sandbox, &["--dry-run", "--config", r#"gate-input={"colour":"red"}"#]);
    let text = expect_exit(&output, 2);
    assert!(text.contains("unknown config key `colour`"), "{text}");
}

#[test]
fn approval_without_a_terminal_or_flag_is_unavailable() {
    let sandbox = Sandbox::new();
    let output = probe(&sandbox, &["--allow", "kube:*"]);
    let text = expect_exit(&output, 4);
    assert!(text.contains("pass --approve"), "{text}");
}

#[test]
fn a_rolled_back_pattern_exits_1() {
    let sandbox = Sandbox::new();
    let output = probe(&sandbox, &["--dry-run", "--config", "outcome=rolled-back"]);
    assert!(expect_exit(&output, 1).contains("ROLLED-BACK"));
}

#[test]
fn the_journal_records_every_call_with_timing() {
    let sandbox = Sandbox::new();
    expect_exit(&probe(&sandbox, &["--dry-run", "--config", r#"gate-input={"mode":"calls","n":3}"#]), 0);
    let journal = sandbox.journal_lines();
    assert_eq!(journal.iter().filter(|l| l["call"] == "clock.now" && l["component"] == "hostile-gate").count(), 3);
    let calls: Vec<&str> = journal.iter().map(|l| l["call"].as_str().unwrap()).collect();
    for expected in ["report.step-begin", "gates.run", "approval.request", "kube-write.scale", "kube-write.patch", "postgres-write.execute", "report.metric"] {
        assert!(calls.contains(&expected), "{expected} missing from {calls:?}");
    }
    let run = journal[0]["run"].as_str().unwrap();
    for line in &journal {
        assert_eq!(line["run"], run, "one run id for the pattern and its gate");
        assert!(line["ts"].as_str().unwrap().ends_with('Z'));
        assert!(line["ms"].as_f64().unwrap() >= 0.0);
    }
    let components: std::collections::BTreeSet<&str> = journal.iter().map(|l| l["component"].as_str().unwrap()).collect();
    assert_eq!(components, ["hostile-gate", "probe-pattern"].into());
}

#[test]
fn a_mutation_whose_journal_line_cannot_be_written_is_not_made() {
    let flags = ["--approve", "--allow", "kube:*", "--allow", "postgres:execute"];
    // Where the first mutation's `started` line falls in a run whose journal works.
    let sandbox = Sandbox::new();
    probe(&sandbox, &flags);
    let intent = sandbox.journal_with_intents().iter().position(|l| l["outcome"] == "started").expect("a mutation was journaled");
    assert_eq!(sandbox.journal_with_intents()[intent]["call"], "approval.request");

    // A journal that takes every line before it and refuses that one.
    let sandbox = Sandbox::new();
    let limit = format!("256MiB,{intent}");
    let mut args = flags.to_vec();
    args.extend(["--journal-limit", &limit]);
    let text = expect_exit(&probe(&sandbox, &args), 3);
    assert!(text.contains("stopped before `approval.request` was carried out; nothing of it reached a backend"), "{text}");
    assert!(!text.contains("wasm backtrace"), "one line, not a backtrace: {text}");
    assert!(sandbox.journal_with_intents().iter().all(|l| l["outcome"] != "started"), "nothing was begun");
    // Without the journal line the backend was never called: no `unavailable` from the absent lab.
    assert!(!text.contains("is not running"), "{text}");

    // A full disk: the run stops at the first line that must reach the file
    // (a step's end, before any mutation), saying why in one line.
    let sandbox = Sandbox::new();
    std::os::unix::fs::symlink("/dev/full", sandbox.journal()).unwrap();
    let text = expect_exit(&probe(&sandbox, &flags), 3);
    assert!(text.contains("cannot write the journal") && text.contains("No space left on device"), "{text}");
    assert!(!text.contains("wasm backtrace") && !text.contains("is not running"), "{text}");
}

#[test]
fn run_info_tells_a_pattern_its_run_and_is_not_journaled() {
    for (flags, dry_run) in [(&["--dry-run"][..], true), (&["--approve", "--allow", "kube:*", "--allow", "postgres:execute"][..], false)] {
        let sandbox = Sandbox::new();
        probe(&sandbox, flags);
        let journal = sandbox.journal_lines();
        let logged = |l: &Value| l["args"]["message"].as_str().filter(|m| m.starts_with("run-info:")).map(str::to_string);
        let told = journal.iter().find_map(logged).expect("the probe logs what run-info told it");
        assert_eq!(told, format!("run-info: id={} dry-run={dry_run} resumed=false", journal[0]["run"].as_str().unwrap()));
        assert!(journal.iter().all(|l| !l["call"].as_str().unwrap().starts_with("run-info")), "run-info calls are not journaled");
    }
}

#[test]
fn an_unanswered_terminal_prompt_ends_at_the_deadline() {
    // `script` gives the runner a terminal, so it asks; nobody types.
    let sandbox = Sandbox::new();
    let runner = assert_cmd::cargo::cargo_bin("runner");
    let command = format!(
        "{} exec {} --gate check={} --deadline 15s --journal {}",
        runner.display(),
        path(&fixture("probe-pattern")),
        path(&fixture("hostile-gate")),
        path(&sandbox.journal())
    );
    let started = std::time::Instant::now();
    let mut child = std::process::Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .env("RUNNER_LAB_DIR", sandbox.dir.path().join("no-lab"))
        .env("RUNNER_CACHE_DIR", sandbox.dir.path().join("cache"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let _keep_stdin_open = child.stdin.take();
    let output = child.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains("Approve? [y/N]"), "it asked: {text}");
    assert!(text.contains("nobody answered the approval prompt before the deadline"), "{text}");
    // 15 s leaves room to compile both components on a loaded machine (3 s did not).
    assert!(started.elapsed() < std::time::Duration::from_secs(60), "ended at the deadline, took {:?}", started.elapsed());
}

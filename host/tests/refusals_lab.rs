//! What a real API server does to the runner, on the lab (subnet 224): an
//! identity the server does not authorise (`target check` says the reads
//! were refused, not that the objects are missing; the checks
//! `real_cluster.rs` makes reject every gate it ran), and a run the sandbox
//! stops while a write probe runs (the JSON report still carries the probe's
//! figures).

mod common;

use std::path::{Path, PathBuf};

use common::lab::Lab;
use common::verdict::not_a_verdict;
use common::*;
use serde_json::Value;

/// A copy of the lab's kubeconfig whose bearer token the lab does not know.
fn unauthorised_kubeconfig(lab: &Lab) -> PathBuf {
    let text = std::fs::read_to_string(lab.kubeconfig()).unwrap();
    assert!(text.contains("token:"), "the lab's kubeconfig carries a token: {text}");
    let changed: Vec<String> = text
        .lines()
        .map(|line| if line.trim_start().starts_with("token:") { "    token: \"not-the-labs-token\"".to_string() } else { line.to_string() })
        .collect();
    let file = lab.dir.path().join("unauthorised-kubeconfig");
    std::fs::write(&file, changed.join("\n") + "\n").unwrap();
    file
}

/// A target file for the lab's PostgreSQL cluster through `kubeconfig`.
fn target_through(lab: &Lab, name: &str, kubeconfig: &Path) -> PathBuf {
    let file = lab.dir.path().join(format!("{name}.yaml"));
    std::fs::write(
        &file,
        format!(
            "kubeconfig: {}\nnamespace: default\ndatabases:\n  postgres-cluster:\n    engine: postgres\n    primaryService: postgres-primary\n    credentials: {{secret: postgres-credentials}}\n",
            kubeconfig.display()
        ),
    )
    .unwrap();
    file
}

/// `exec GATE --output json` against `target`: exit code, report and journal.
fn gate(lab: &Lab, gate: &str, target: &Path, extra: &[&str]) -> (Option<i32>, Value, String) {
    let journal = lab.dir.path().join(format!("{gate}-{}.jsonl", target.file_stem().unwrap().to_string_lossy()));
    let mut args = vec!["exec", gate, "--target", path(target), "--output", "json", "--journal", path(&journal)];
    args.extend_from_slice(extra);
    let output = lab.runner(&args);
    let report = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{gate}: no JSON report ({e}): {}{}", stdout(&output), stderr(&output)));
    (output.status.code(), report, std::fs::read_to_string(&journal).unwrap_or_default())
}

#[test]
fn refusals_are_named_as_refusals_and_a_stopped_run_keeps_its_probe() {
    let lab = Lab::up(&["--postgres", "--subnet", "224"]);
    let allowed = target_through(&lab, "allowed", &lab.kubeconfig());
    let refused = target_through(&lab, "refused", &unauthorised_kubeconfig(&lab));

    // target check: the lab's own identity sees everything ...
    let output = lab.runner(&["target", "check", path(&allowed)]);
    let text = expect_exit(&output, 0);
    assert!(text.contains("StatefulSet postgres-cluster: 3/3 Ready"), "{text}");

    // ... one the server does not authorise is told its reads were refused, not that the objects are missing.
    let output = lab.runner(&["target", "check", path(&refused)]);
    let text = expect_exit(&output, 1);
    assert!(!text.contains("not found"), "a refused read is not a missing object:\n{text}");
    assert!(text.contains("StatefulSet postgres-cluster: cannot read it: denied: "), "{text}");
    assert!(text.contains("primary Service postgres-primary: cannot read it: denied: "), "{text}");
    let output = lab.runner(&["target", "check", path(&refused), "--output", "json"]);
    expect_exit(&output, 1);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let database = &report["databases"][0];
    assert_eq!(database["statefulSet"]["found"], Value::Null, "{report:#}");
    assert!(database["statefulSet"]["problem"].as_str().is_some_and(|p| p.starts_with("denied: ")), "{report:#}");
    assert_eq!(database["primaryService"]["found"], Value::Null, "{report:#}");
    let missing = report["missing"].to_string();
    assert!(missing.contains("StatefulSet default/postgres-cluster: denied: ") && !missing.contains("not found"), "{missing}");

    // The checks real_cluster.rs makes: every gate run with the lab's identity reached a verdict ...
    for (name, extra) in [("pods-ready", &["--config", "selector=app=postgres"][..]), ("pg-healthy", &[])] {
        let (code, report, journal) = gate(&lab, name, &allowed, extra);
        let problems = not_a_verdict(code, &report, &journal);
        assert!(problems.is_empty(), "{name}: {problems:?}\n{report:#}");
    }
    // ... and every gate the server refused did not, whatever it answered.
    for name in ["pods-ready", "pg-healthy", "pg-preflight"] {
        let (code, report, journal) = gate(&lab, name, &refused, &[]);
        let problems = not_a_verdict(code, &report, &journal);
        assert!(!problems.is_empty(), "{name}: a refused gate passed the checks: {report:#}");
        assert!(problems.iter().any(|p| p.contains("denied")), "{name}: {problems:?}");
    }

    // A gate the deadline stops while the write probe runs: exit 3, and the
    // JSON report still has the stop and the probe's figures.
    let hostile = fixture("hostile-gate");
    let output = lab.runner(&[
        "exec",
        path(&hostile),
        "--config",
        "mode=loop",
        "--deadline",
        "3s",
        "--write-probe",
        "postgres-cluster",
        "--probe-rate",
        "50",
        "--output",
        "json",
    ]);
    assert_eq!(output.status.code(), Some(3), "{}", stderr(&output));
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("no JSON report ({e}): {}{}", stdout(&output), stderr(&output)));
    assert_eq!(report["outcome"], "stopped", "{report:#}");
    assert!(report["stopped"].as_str().is_some_and(|s| s.contains("deadline exceeded")), "{report:#}");
    let probe = &report["probe"];
    assert!(probe["acknowledged_writes"].as_u64().is_some_and(|n| n > 0), "the probe wrote while the gate spun: {report:#}");
    assert_eq!(probe["lost_writes"], 0, "{report:#}");
    lab.down();
}

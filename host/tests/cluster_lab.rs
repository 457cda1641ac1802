//! The cluster capability against the lab's ARM emulation, through
//! `runner exec` of the `cluster-pattern` fixture (it makes the cluster
//! calls its config lists) and `runner target check`; `kubectl` checks the
//! effects on the Nodes. Each test has its own lab on its own subnet
//! (160-169), a single pool at 1.29.9 and a one-second lab minute.

mod common;

use std::time::Duration;

use common::lab::*;
use common::*;
use serde_json::Value;

fn lab(subnet: &str) -> Lab {
    Lab::up(&["--subnet", subnet, "--single-pool", "--nodes", "2", "--lab-minute", "1s"])
}

/// `runner exec cluster-pattern --config calls=CALLS EXTRA... -o json`, with a journal in the lab's directory.
fn calls(lab: &Lab, calls: &str, extra: &[&str]) -> std::process::Output {
    let fixture = fixture("cluster-pattern");
    let journal = lab.dir.path().join("journal.jsonl");
    let config = format!("calls={calls}");
    let mut args = vec!["exec", path(&fixture), "--target", "lab", "--config", &config, "--journal", path(&journal), "-o", "json"];
    args.extend_from_slice(extra);
    lab.runner(&args)
}

fn summary(output: &std::process::Output) -> String {
    let report = json_of(output);
    report["reasons"].as_array().map(|r| r.iter().filter_map(Value::as_str).collect::<Vec<_>>().join("\n")).unwrap_or_default()
}

/// Each pool Node's name and its node-image label and kubelet version.
fn nodes(lab: &Lab) -> Vec<(String, String, String)> {
    let text = |v: &Value| v.as_str().unwrap_or_default().to_string();
    lab.items(&["nodes", "-l", "agentpool=nodepool1"])
        .iter()
        .map(|n| {
            (
                text(&n["metadata"]["name"]),
                text(&n["metadata"]["labels"]["kubernetes.azure.com/node-image-version"]),
                text(&n["status"]["nodeInfo"]["kubeletVersion"]),
            )
        })
        .collect()
}

fn journal(lab: &Lab) -> String {
    std::fs::read_to_string(lab.dir.path().join("journal.jsonl")).unwrap_or_default()
}

#[test]
fn reads_refusals_a_dry_run_and_upgrades_against_the_lab() {
    let lab = lab("160");
    let arm_token = std::fs::read_to_string(lab.dir.path().join("arm-token")).unwrap().trim().to_string();

    // target check shows the lab's ARM API and what it answers.
    let check = json_of(&lab.runner(&["target", "check", "-o", "json"]));
    assert_eq!(check["cluster"]["api"], "aks", "{check}");
    assert_eq!(check["cluster"]["controlPlane"]["currentKubernetesVersion"], "1.29.9", "{check}");
    assert!(check["cluster"]["pools"].as_array().unwrap().iter().any(|p| p["name"] == "nodepool1"), "{check}");

    // Reads need no --allow.
    let out = calls(&lab, "control-plane;node-pools;pool-profile:nodepool1", &[]);
    expect_exit(&out, 0);
    let read = summary(&out);
    assert!(read.contains("control-plane version=1.29.9 current=1.29.9") && read.contains("upgrades=1.30.5"), "{read}");
    assert!(read.contains("pool nodepool1 mode=") && read.contains("count=2"), "{read}");
    let latest = read.split("latest-image=").nth(1).unwrap_or_default().trim().to_string();
    assert!(!latest.is_empty(), "{read}");

    let before = nodes(&lab);
    assert_eq!(before.len(), 2, "{before:?}");

    // A mutation the operator did not allow is refused (exit 3) and changes nothing.
    let out = calls(&lab, "upgrade-node-image:nodepool1", &[]);
    let text = expect_exit(&out, 3);
    assert!(text.contains("pass --allow cluster:upgrade-node-image:nodepool1"), "{text}");
    // A dry run plans it and changes nothing either.
    let out = calls(&lab, "upgrade-node-image:nodepool1", &["--dry-run"]);
    expect_exit(&out, 0);
    let plan = json_of(&out)["plan"].to_string();
    assert!(plan.contains("cluster-write.upgrade-node-image") && plan.contains("nodepool1"), "{plan}");
    assert_eq!(nodes(&lab), before, "neither the refusal nor the dry run touched a Node");

    // The node-image upgrade, followed to its end: new Nodes at the new image, the old ones gone.
    let out = calls(&lab, "upgrade-node-image:nodepool1", &["--allow", "cluster:upgrade-node-image:nodepool1"]);
    let text = expect_exit(&out, 0);
    assert!(summary(&out).contains(&format!("image={latest}")), "{text}");
    let after = nodes(&lab);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().all(|(_, image, _)| *image == latest), "every Node runs {latest}: {after:?}");
    assert!(after.iter().all(|(name, _, _)| !before.iter().any(|(old, _, _)| old == name)), "surged Nodes replaced the old ones: {before:?} -> {after:?}");

    // The control plane, then the pool, to 1.30.5; a node-image upgrade meanwhile is AKS's 409.
    let out = calls(&lab, "upgrade-control-plane:1.30.5", &["--allow", "cluster:upgrade-control-plane"]);
    expect_exit(&out, 0);
    let version: Value = serde_json::from_str(&lab.kubectl(&["version", "-o", "json"])).unwrap();
    assert!(version["serverVersion"]["gitVersion"].as_str().unwrap_or_default().contains("1.30.5"), "{version}");
    let journal_path = lab.dir.path().join("journal-upgrade.jsonl");
    let fixture = fixture("cluster-pattern");
    let upgrade = lab.spawn(&[
        "exec",
        path(&fixture),
        "--target",
        "lab",
        "--config",
        "calls=upgrade-node-pool:nodepool1:1.30.5",
        "--allow",
        "cluster:upgrade-node-pool:nodepool1",
        "--journal",
        path(&journal_path),
        "-o",
        "json",
    ]);
    eventually("the pool upgrading", Duration::from_secs(30), || {
        let pools = summary(&calls(&lab, "node-pool:nodepool1", &[]));
        pools.contains("state=Upgrading").then_some(())
    });
    let out = calls(&lab, "upgrade-node-image:nodepool1", &["--allow", "cluster:upgrade-node-image:nodepool1"]);
    let text = expect_exit(&out, 1);
    assert!(text.contains("conflict: upgrade-node-image:nodepool1: OperationNotAllowed: "), "{text}");
    let upgraded = upgrade.wait_with_output();
    expect_exit(&upgraded, 0);
    assert!(nodes(&lab).iter().all(|(_, _, kubelet)| kubelet == "v1.30.5"), "{:?}", nodes(&lab));

    // The journal has each call and never the token.
    let journal = format!("{}{}", journal(&lab), std::fs::read_to_string(&journal_path).unwrap_or_default());
    for call in ["cluster-read.control-plane", "cluster-write.upgrade-node-image", "cluster-write.upgrade-control-plane"] {
        assert!(journal.contains(call), "{call} journaled");
    }
    assert!(journal.contains("\"outcome\":\"planned, needs --allow\""), "the dry run's plan is journaled, marked as needing --allow");
    assert!(!journal.contains(&arm_token), "the ARM token never reaches the journal");
}

#[test]
fn a_drain_blocked_by_a_budget_fails_the_operation_in_aks_words() {
    let lab = lab("161");
    // Every member must stay: the lab's own budget, tightened, lets no Pod be evicted.
    let pdb = "apiVersion: policy/v1\nkind: PodDisruptionBudget\nmetadata: {name: postgres-pdb, namespace: default}\nspec:\n  minAvailable: 3\n  selector: {matchLabels: {app: postgres}}\n";
    let file = lab.dir.path().join("pdb.yaml");
    std::fs::write(&file, pdb).unwrap();
    lab.kubectl(&["apply", "-f", path(&file)]);
    let allow = ["--allow", "cluster:set-upgrade-settings:nodepool1", "--allow", "cluster:upgrade-node-image:nodepool1"];
    let out = calls(&lab, "set-drain-timeout:nodepool1:2;upgrade-node-image:nodepool1", &allow);
    let text = expect_exit(&out, 1);
    let reasons = summary(&out);
    assert!(reasons.contains("upgrade-node-image:nodepool1: UpgradeFailed: "), "AKS's own code: {text}");
    assert!(reasons.contains("postgres-pdb"), "the budget is named: {reasons}");
    assert!(reasons.contains("(operation "), "the operation is named: {reasons}");
    // The operation can be looked up by the id the error gave.
    let id = reasons.split("(operation ").nth(1).and_then(|rest| rest.split(')').next()).unwrap_or_default().to_string();
    let out = calls(&lab, &format!("operation:{id}"), &[]);
    expect_exit(&out, 0);
    assert!(summary(&out).contains("status=Failed"), "{}", summary(&out));
}

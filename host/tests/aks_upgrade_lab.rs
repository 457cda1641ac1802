//! The cluster upgrade patterns end to end on the lab (its Kubernetes API
//! and its emulation of AKS's ARM API, real PostgreSQL and Redis): the
//! readiness gate stopping `aks-upgrade` before any change, and the two
//! demos with a write probe on each database. Subnets 245-247.

mod common;

use std::path::Path;
use std::process::{Command, Output};

use common::lab::*;
use common::*;
use serde_json::Value;

/// `runner demo NAME -o json` in `dir`, its journals and attachments under `dir` too.
fn demo(name: &str, dir: &Path, subnet: &str) -> Output {
    Command::new(assert_cmd::cargo::cargo_bin("runner"))
        .args(["demo", name, "-o", "json", "--dir", path(&dir.join("lab")), "--subnet", subnet])
        .env_remove("RUNNER_LOG")
        .env_remove("KUBECONFIG")
        .env("XDG_STATE_HOME", dir.join("state"))
        .env("RUNNER_CACHE_DIR", dir.join("cache"))
        .env("RUNNER_POLICY_PATH", repo().join("policies/dist"))
        .output()
        .unwrap()
}

/// What every cluster demo must show: both databases probed without a lost
/// write or a failed Redis operation, every Node upgraded, every member healthy.
fn check_demo(output: &Output, upgraded: impl Fn(&Value) -> bool) -> Value {
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(output), stderr(output)));
    assert_eq!(output.status.code(), Some(0), "{report:#}\n{}", stderr(output));
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    for database in ["postgres-cluster", "redis-cluster"] {
        let figures = &report["databases"][database];
        assert!(figures["acknowledged_writes"].as_u64().unwrap() > 100, "{database}: {figures}");
        assert_eq!(figures["lost_writes"], 0, "{database}: {figures}");
    }
    assert_eq!(report["databases"]["redis-cluster"]["failed_ops"], 0, "{report:#}");
    assert_eq!(report["members_healthy"], true, "{report:#}");
    assert_eq!(report["all_nodes_upgraded"], true, "{report:#}");
    let nodes = report["nodes"].as_array().unwrap();
    assert!(!nodes.is_empty() && nodes.iter().all(&upgraded), "{nodes:#?}");
    // Every database member left the pool through its own pattern, nested under the step that ran it.
    let steps = report["steps"].as_array().unwrap();
    for slot in ["postgres", "redis"] {
        assert!(steps.iter().any(|s| s["slot"] == slot && s["outcome"] == "succeeded"), "no step of slot {slot}: {steps:#?}");
    }
    report
}

#[test]
fn the_readiness_gate_stops_the_upgrade_before_any_change() {
    // No backup was taken: seed 000's checklist wants a recent one.
    let lab = Lab::up(&["--postgres", "--single-pool", "--nodes", "2", "--subnet", "245"]);
    let output = lab.aks_upgrade(&[]).output().unwrap();
    let report = json_of(&output);
    assert_eq!(output.status.code(), Some(1), "{report:#}");
    let gate = report["gates"].as_array().unwrap().iter().find(|g| g["slot"] == "readiness").cloned().unwrap_or_else(|| panic!("{report:#}"));
    assert_eq!(gate["outcome"], "fail", "{gate}");
    assert!(gate["reasons"].to_string().contains("postgres-backup"), "the failure names the backup Job: {gate}");
    // Nothing changed: the control plane, the Nodes and the StatefulSet are as they were.
    assert!(report["plan"].as_array().is_none_or(Vec::is_empty), "{report:#}");
    assert!(!report["steps"].as_array().unwrap().iter().any(|s| s["name"] == "control-plane" && s["outcome"] == "succeeded"), "{report:#}");
    let version: Value = serde_json::from_str(&lab.kubectl(&["version", "-o", "json"])).unwrap();
    assert_eq!(version["serverVersion"]["gitVersion"], "v1.29.9", "{version}");
    let kubelets = lab.kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeletVersion}"]);
    assert_eq!(kubelets.split_whitespace().collect::<Vec<_>>(), ["v1.29.9", "v1.29.9"], "{kubelets}");
    assert_eq!(lab.kubectl(&["get", "statefulset", "postgres-cluster", "-o", "jsonpath={.spec.template.spec.nodeSelector.agentpool}"]), "nodepool1");
}

#[test]
fn demo_aks_upgrade_moves_every_database_member_and_loses_no_write() {
    let dir = tempfile::Builder::new().prefix("runner-demo-aks-").tempdir_in("/tmp").unwrap();
    let report = check_demo(&demo("aks-upgrade", dir.path(), "246"), |node| node["kubelet"] == "v1.30.5");
    assert_eq!(report["control_plane"], "v1.30.5", "{report:#}");
    assert!(report["nodes_before"].as_array().unwrap().iter().all(|n| n["kubelet"] == "v1.29.9"), "{report:#}");
}

#[test]
fn demo_node_image_patch_writes_a_compliance_report() {
    let dir = tempfile::Builder::new().prefix("runner-demo-nip-").tempdir_in("/tmp").unwrap();
    let report = check_demo(&demo("node-image-patch", dir.path(), "247"), |node| {
        node["node_image"] == "AKSUbuntu-2204gen2containerd-202411.12.0" && node["kernel"] == "5.15.0-1074-azure" && node["kubelet"] == "v1.29.9"
    });
    let markdown = std::fs::read_to_string(report["compliance_report"].as_str().unwrap_or_else(|| panic!("{report:#}"))).unwrap();
    for expected in ["AKSUbuntu-2204gen2containerd-202410.15.0", "AKSUbuntu-2204gen2containerd-202411.12.0", "5.15.0-1074-azure", "nodepool1"] {
        assert!(markdown.contains(expected), "the compliance report names {expected}:\n{markdown}");
    }
}

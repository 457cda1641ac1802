//! MongoDB on the lab.
//!
//! No `mongod` can be installed on the machines this was written on, so:
//! - the backend is reached through a target file naming the lab's
//!   PostgreSQL StatefulSet as a mongo database: every member is a real
//!   server that does not speak MongoDB's protocol; the gate must fail each
//!   member as `unavailable` with its address, and no credential may reach
//!   the journal;
//! - `runner lab up --mongo` and `runner demo mongo` without `mongod` must
//!   refuse before starting anything and say how to install it;
//! - the step-down cascade on a real replica set with a write probe
//!   (`the_demo_steps_down_a_real_replica_set_...`) is opt-in: it runs only
//!   where `mongod` is installed (on PATH or in $RUNNER_LAB_MONGO_BIN_DIR),
//!   and says it was skipped otherwise.

mod common;

use std::path::PathBuf;

use common::lab::Lab;
use common::*;
use runner::backends::members::resolve_credential;
use runner::target::Target;

#[test]
fn the_gate_reaches_members_through_a_target_file_and_names_each_unreachable_one() {
    let _ = bundled("mongo-replset-healthy");
    let lab = Lab::up(&["--postgres", "--subnet", "242"]);
    let target = lab.dir.path().join("target.yaml");
    let kubeconfig = lab.kubeconfig();
    std::fs::write(
        &target,
        format!("kubeconfig: {}\nnamespace: default\ndatabases:\n  orders:\n    engine: mongo\n    statefulSet: postgres-cluster\n    port: 5432\n    credentials:\n      secret: postgres-credentials\n", kubeconfig.display()),
    )
    .unwrap();
    let journal = lab.dir.path().join("journal.jsonl");
    let output =
        lab.runner(&["exec", "mongo-replset-healthy", "--target", path(&target), "--config", "statefulset=postgres-cluster", "--journal", path(&journal)]);
    // The gate reached its own verdict (no member answered: fail): exit 1, not 4, whatever it observed.
    let text = expect_exit(&output, 1);
    assert!(text.contains("FAIL"), "{text}");
    for n in 0..3 {
        let member = format!("member postgres-cluster-{n} (127.242.1.1{n}:5432): unreachable: no answer within 5 s");
        assert!(text.contains(&member), "{member} missing from:\n{text}");
    }
    let lines: Vec<serde_json::Value> = std::fs::read_to_string(&journal).unwrap().lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    let calls: Vec<&serde_json::Value> = lines.iter().filter(|l| l["call"] == "mongo-read.run-command").collect();
    // Each member is asked `hello` once; none that failed it is asked again.
    assert_eq!(calls.len(), 3, "{calls:?}");
    assert!(calls.iter().all(|c| c["outcome"] == "unavailable" && c["args"]["command"] == serde_json::json!({"hello": 1})), "{calls:?}");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let lab_target = Target::lab(lab.dir.path().to_path_buf());
    let password = rt.block_on(async {
        let kube = runner::backends::kube::connect(&lab_target).await.unwrap();
        resolve_credential(&lab_target.databases[0], &kube, "default").await.unwrap()
    });
    let everything = format!("{}{}{}", std::fs::read_to_string(&journal).unwrap(), stdout(&output), stderr(&output));
    assert!(!everything.contains(password.expose()), "the password leaked");
}

/// Where `mongod` is, as the lab looks for it.
fn mongod() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("RUNNER_LAB_MONGO_BIN_DIR").filter(|d| !d.is_empty()) {
        return Some(PathBuf::from(dir).join("mongod")).filter(|p| p.is_file());
    }
    std::env::split_paths(&std::env::var_os("PATH").unwrap_or_default()).map(|d| d.join("mongod")).find(|p| p.is_file())
}

#[test]
fn without_mongod_the_lab_and_the_demo_refuse_and_say_how_to_install_it() {
    let dir = tempfile::Builder::new().prefix("runner-mongo-missing-").tempdir_in("/tmp").unwrap();
    let lab = Lab { dir };
    let lab_dir = lab.dir.path().join("lab");
    let demo_dir = lab.dir.path().join("demo");
    let missing = |mut command: std::process::Command| {
        // Where mongod is installed, hide it behind a directory that has none.
        if mongod().is_some() {
            command.env("RUNNER_LAB_MONGO_BIN_DIR", "/nonexistent/mongodb/bin");
        }
        command.output().unwrap()
    };
    let up = missing(lab.command(&["lab", "--dir", path(&lab_dir), "up", "--mongo", "--subnet", "244"]));
    let text = expect_exit(&up, 2);
    assert!(text.contains("the lab cannot start: `mongod` not found"), "{text}");
    if mongod().is_none() {
        assert!(text.contains("MongoDB is not packaged by Debian") && text.contains("RUNNER_LAB_MONGO_BIN_DIR"), "{text}");
    }
    assert!(!lab_dir.exists(), "nothing was started or written");
    let demo = missing(lab.command(&["demo", "mongo", "--dir", path(&demo_dir), "--subnet", "244"]));
    let text = expect_exit(&demo, 2);
    assert!(text.contains("`mongod` not found"), "{text}");
    assert!(!demo_dir.exists(), "nothing was started or written");
}

#[test]
fn the_demo_steps_down_a_real_replica_set_and_loses_no_majority_acknowledged_write() {
    let Some(mongod) = mongod() else {
        eprintln!(
            "skipped: mongod is not installed (MongoDB is not packaged by Debian); this opt-in test runs where it is on PATH or in RUNNER_LAB_MONGO_BIN_DIR"
        );
        return;
    };
    eprintln!("running against {}", mongod.display());
    let _ = bundled("mongo-stepdown-cascade");
    let dir = tempfile::Builder::new().prefix("runner-mongo-demo-").tempdir_in("/tmp").unwrap();
    // The guard brings the kept lab down at the end.
    let lab = Lab { dir };
    let output = lab.runner(&["demo", "mongo", "--output", "json", "--dir", path(lab.dir.path()), "--subnet", "243", "--keep", "--probe-rate", "100"]);
    let report = json_of(&output);
    expect_exit(&output, 0);
    assert_eq!(report["pattern"], "mongo-stepdown-cascade");
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["lost_writes"], 0, "{report:#}");
    assert!(report["acknowledged_writes"].as_u64().unwrap() > 10, "{report:#}");
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert!(steps.iter().any(|s| s.starts_with("step-down ")), "{steps:?}");
    assert_eq!(report["final_cluster"]["primaries"].as_array().map(Vec::len), Some(1), "{report:#}");
    assert_eq!(report["final_cluster"]["streaming_standbys"], 2, "{report:#}");
    // kubectl agrees, as an independent client: every member on the upgraded pool.
    let nodes = lab.kubectl(&["get", "pods", "-l", "app=mongo", "-o", "jsonpath={.items[*].spec.nodeName}"]);
    assert_eq!(nodes.split_whitespace().count(), 3, "{nodes}");
    assert!(nodes.split_whitespace().all(|n| n.starts_with("aks-upgradedpool-")), "{nodes}");
}

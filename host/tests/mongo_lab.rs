//! The MongoDB backend through `runner exec` and a target file, on the lab.
//! The lab has no MongoDB (no `mongod` can be installed here), so the
//! target names the lab's PostgreSQL StatefulSet as a mongo database: every
//! member is a real server that does not speak MongoDB's protocol. The
//! gate must then fail each member as `unavailable` with its address, and
//! no credential may reach the journal.

mod common;

use common::lab::Lab;
use common::*;
use runner::target::{resolve_credential, Target};

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
    let output = lab.runner(&["exec", "mongo-replset-healthy", "--target", path(&target), "--config", "statefulset=postgres-cluster", "--journal", path(&journal)]);
    let text = expect_exit(&output, 4);
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
        let kube = lab_target.connect().await.unwrap();
        resolve_credential(&lab_target.databases[0], &kube, "default").await.unwrap()
    });
    let everything = format!("{}{}{}", std::fs::read_to_string(&journal).unwrap(), stdout(&output), stderr(&output));
    assert!(!everything.contains(password.expose()), "the password leaked");
}

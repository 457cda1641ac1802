//! The bundled Python gate `pod-restarts` against a real lab: it passes on
//! a healthy PostgreSQL cluster and fails naming the member whose server was
//! killed and restarted, as kubectl (an independent client) shows it.

mod common;

use std::time::Duration;

use common::lab::{Lab, eventually};
use common::*;

#[test]
fn the_python_gate_passes_on_a_healthy_lab_and_names_a_restarted_member() {
    bundled("pod-restarts");
    let lab = Lab::up(&["--postgres", "--subnet", "209"]);
    let passed = lab.runner(&["exec", "pod-restarts", "--target", "lab", "--config", "max-restarts=0", "-o", "json"]);
    let text = expect_exit(&passed, 0);
    let report = json_of(&passed);
    assert_eq!(report["outcome"], "pass", "{text}");
    assert!(text.contains("3/3 Pods matching `app=postgres` are Ready with at most 0 restarts"), "{text}");

    let pid = lab.postmaster_pid("postgres-cluster-1").expect("postgres-cluster-1 runs");
    // SAFETY: killing a database server this test's lab started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    eventually("postgres-cluster-1 restarted and Ready", Duration::from_secs(90), || {
        let out = lab.kubectl(&[
            "get",
            "pod",
            "postgres-cluster-1",
            "-o",
            r#"jsonpath={.status.containerStatuses[0].restartCount} {.status.conditions[?(@.type=="Ready")].status}"#,
        ]);
        (out.trim() == "1 True").then_some(())
    });
    let failed = lab.runner(&["exec", "pod-restarts", "--target", "lab", "--config", "max-restarts=0", "-o", "json"]);
    let text = expect_exit(&failed, 1);
    assert_eq!(json_of(&failed)["outcome"], "fail", "{text}");
    assert!(text.contains("postgres-cluster-1: restarted 1 times, more than 0"), "{text}");
    assert!(!text.contains("postgres-cluster-0: restarted") && !text.contains("postgres-cluster-2: restarted"), "{text}");
}

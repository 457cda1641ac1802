//! The lab behaving like a real cluster where patterns meet trouble: a
//! kubelet that stops posting status (Node Unknown, Pods not Ready, the PDB
//! counting them unhealthy), and members reached from outside the Pod
//! network through `pods/portforward`, with kubectl, psql and the runner as
//! clients.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::lab::*;
use common::*;
use serde_json::Value;

fn json(lab: &Lab, args: &[&str]) -> Value {
    serde_json::from_str(&lab.kubectl(args)).unwrap()
}

fn condition(object: &Value, kind: &str) -> String {
    let conditions = object["status"]["conditions"].as_array().cloned().unwrap_or_default();
    conditions.iter().find(|c| c["type"] == kind).and_then(|c| c["status"].as_str()).unwrap_or("-").to_string()
}

fn current_healthy(lab: &Lab) -> u64 {
    json(lab, &["get", "pdb", "postgres-pdb", "-o", "json"])["status"]["currentHealthy"].as_u64().unwrap()
}

#[test]
fn a_silent_kubelet_makes_its_node_unknown_and_its_pods_not_ready_until_it_reports_again() {
    let lab = Lab::up(&["--postgres", "--subnet", "226", "--node-monitor-grace-period", "4s"]);
    let node = lab.pod_field("postgres-cluster-1", ".spec.nodeName");
    assert_eq!(current_healthy(&lab), 3);
    let before = json(&lab, &["get", "node", &node, "-o", "json"]);
    assert_eq!(condition(&before, "Ready"), "True");
    let heartbeat = |node: &Value| node["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap()["lastHeartbeatTime"].clone();
    assert!(heartbeat(&before).is_string(), "the kubelet posts heartbeats: {before}");

    // The kubelet of one Node stops posting status, as when it loses the control plane.
    lab.kubectl(&["annotate", "node", &node, "lab.runner.dev/kubelet-stopped=true"]);
    let unknown = eventually("the Node goes Unknown", Duration::from_secs(60), || {
        let node = json(&lab, &["get", "node", &node, "-o", "json"]);
        (condition(&node, "Ready") == "Unknown").then_some(node)
    });
    let ready = unknown["status"]["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Ready").unwrap().clone();
    assert_eq!(ready["reason"], "NodeStatusUnknown", "{ready}");
    assert_eq!(ready["message"], "Kubelet stopped posting node status.", "{ready}");
    let taints = unknown["spec"]["taints"].as_array().cloned().unwrap_or_default();
    for effect in ["NoSchedule", "NoExecute"] {
        assert!(taints.iter().any(|t| t["key"] == "node.kubernetes.io/unreachable" && t["effect"] == effect), "{effect}: {taints:?}");
    }
    let row = lab.kubectl(&["get", "node", &node, "--no-headers"]);
    assert_eq!(row.split_whitespace().nth(1), Some("NotReady"), "{row}");

    // Its Pods are not Ready and the PDB counts them unhealthy; the other members stay Ready.
    let members = ["postgres-cluster-0", "postgres-cluster-1", "postgres-cluster-2"];
    let (on_node, elsewhere): (Vec<&str>, Vec<&str>) = members.iter().partition(|pod| lab.pod_field(pod, ".spec.nodeName") == node);
    let pod_ready = |pod: &str| condition(&json(&lab, &["get", "pod", pod, "-o", "json"]), "Ready");
    eventually("the Pods on it are not Ready", Duration::from_secs(30), || on_node.iter().all(|pod| pod_ready(pod) == "False").then_some(()));
    assert!(elsewhere.iter().all(|pod| pod_ready(pod) == "True"), "{elsewhere:?} stay Ready");
    let expected = (members.len() - on_node.len()) as u64;
    eventually("the PDB counts them unhealthy", Duration::from_secs(30), || (current_healthy(&lab) == expected).then_some(()));
    let events = lab.kubectl(&["get", "events", "--field-selector", "reason=NodeNotReady", "-o", "jsonpath={.items[*].involvedObject.name}"]);
    assert!(events.contains(&node) && events.contains("postgres-cluster-1"), "{events}");
    // The database itself kept running: only the reporting stopped.
    assert_eq!(lab.psql("postgres-cluster-1", "SELECT 1").unwrap(), "1");

    // The kubelet reports again: Ready, the taints gone, the Pod Ready, the PDB whole.
    lab.kubectl(&["annotate", "node", &node, "lab.runner.dev/kubelet-stopped-"]);
    eventually("the Node is Ready again without the taints", Duration::from_secs(60), || {
        let node = json(&lab, &["get", "node", &node, "-o", "json"]);
        (condition(&node, "Ready") == "True" && node["spec"]["taints"].as_array().is_none_or(|t| t.is_empty())).then_some(())
    });
    eventually("the Pod is Ready again", Duration::from_secs(30), || {
        (condition(&json(&lab, &["get", "pod", "postgres-cluster-1", "-o", "json"]), "Ready") == "True").then_some(())
    });
    eventually("the PDB counts every member", Duration::from_secs(30), || (current_healthy(&lab) == 3).then_some(()));
}

/// `kubectl port-forward pod/POD :PORT` in the background; the local port once it listens.
fn port_forward(lab: &Lab, pod: &str, port: u16) -> (std::process::Child, u16) {
    let mut child = Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(lab.kubeconfig())
        .args(["port-forward", &format!("pod/{pod}"), &format!(":{port}")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // `Forwarding from 127.0.0.1:40123 -> 5432`
    let line = lines.next().and_then(Result::ok).unwrap_or_default();
    let local = line.strip_prefix("Forwarding from 127.0.0.1:").and_then(|rest| rest.split_whitespace().next()).and_then(|p| p.parse().ok());
    let Some(local) = local else {
        let _ = child.kill();
        let output = child.wait_with_output().unwrap();
        panic!("kubectl port-forward did not start: {line}{}", stderr(&output));
    };
    // Drain the rest (one "Handling connection" line per connection) so kubectl never blocks on its stdout.
    std::thread::spawn(move || lines.for_each(drop));
    (child, local)
}

#[test]
fn kubectl_port_forward_reaches_a_member_through_the_api_server() {
    let lab = Lab::up(&["--postgres", "--subnet", "227"]);
    let (mut forward, local) = port_forward(&lab, "postgres-cluster-0", 5432);
    let password = lab.password("postgres-credentials");
    // Several connections through one kubectl session, each a stream pair in its SPDY tunnel.
    for n in 1..=3 {
        let sql = format!("SELECT {n} + 1, pg_is_in_recovery()");
        assert_eq!(psql_at("127.0.0.1", local, &password, &sql).unwrap(), format!("{}|f", n + 1));
    }
    // A bigger answer than one frame carries arrives whole.
    let big = psql_at("127.0.0.1", local, &password, "SELECT string_agg(md5(i::text), '') FROM generate_series(1, 20000) i").unwrap();
    assert_eq!(big.len(), 32 * 20000);
    let _ = forward.kill();
    let _ = forward.wait();
    assert!(lab.log().contains("port-forward to pod default/postgres-cluster-0 port 5432"), "the lab's API server forwarded it:\n{}", lab.log());

    // A port nothing listens on: kubectl reports the API server's error, psql fails, nothing hangs.
    let (mut forward, local) = port_forward(&lab, "postgres-cluster-0", 5999);
    let refused = psql_at("127.0.0.1", local, &password, "SELECT 1").unwrap_err();
    let _ = forward.kill();
    let output = forward.wait_with_output().unwrap();
    assert!(!refused.is_empty());
    assert!(stderr(&output).contains("error forwarding port 5999 to pod postgres-cluster-0"), "{}", stderr(&output));
}

#[test]
fn a_target_reaching_postgres_by_port_forward_passes_pg_healthy_through_the_api_server() {
    let _ = bundled("pg-healthy");
    let lab = Lab::up(&["--postgres", "--subnet", "228"]);
    let target = lab.dir.path().join("target.yaml");
    std::fs::write(
        &target,
        format!(
            "kubeconfig: {}\nnamespace: default\ndatabases:\n  postgres-cluster:\n    engine: postgres\n    primaryService: postgres-primary\n    reach: port-forward\n    credentials:\n      secret: postgres-credentials\n",
            lab.kubeconfig().display()
        ),
    )
    .unwrap();
    let journal = lab.dir.path().join("journal.jsonl");
    let output = lab.runner(&["exec", "pg-healthy", "--target", path(&target), "--journal", path(&journal)]);
    let text = expect_exit(&output, 0);
    let queries: Vec<Value> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|l| l["call"] == "postgres-read.query" && l["outcome"] == "ok")
        .collect();
    assert!(!queries.is_empty(), "the gate queried the members: {text}");
    // Every member it queried was reached through the lab's API server, not at its Pod address.
    let log = lab.log();
    for member in queries.iter().filter_map(|q| q["args"]["member"].as_str()) {
        assert!(log.contains(&format!("port-forward to pod default/{member} port 5432")), "{member} not forwarded by the API server:\n{log}");
    }
}

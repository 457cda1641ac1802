//! The lab end to end, with `kubectl`, `psql` and `redis-cli` as independent
//! clients: the Pods are real PostgreSQL and Redis servers.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::lab::*;
use common::*;

/// Database servers running out of `dir` (one postmaster or redis-server per member).
fn servers_under(dir: &Path) -> Vec<String> {
    processes_under(dir).into_iter().filter(|p| p.contains("bin/postgres ") || p.contains("redis-server")).collect()
}

/// Every process (the daemon too) running out of `dir`.
fn processes_under(dir: &Path) -> Vec<String> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains(&*dir.to_string_lossy()) {
            found.push(format!("{pid}: {cmdline}"));
        }
    }
    found
}

#[test]
fn postgres_lab_with_kubectl_and_psql() {
    let lab = Lab::up(&["--postgres", "--subnet", "201"]);

    // kubectl sees the seed's topology.
    let nodes = lab.kubectl(&["get", "nodes", "-L", "agentpool", "--no-headers"]);
    assert_eq!(nodes.lines().filter(|l| l.contains("nodepool1")).count(), 3, "{nodes}");
    assert_eq!(nodes.lines().filter(|l| l.contains("upgraded-pool")).count(), 3, "{nodes}");
    let pods = lab.kubectl(&["get", "pods", "-l", "app=postgres", "--no-headers"]);
    assert_eq!(pods.lines().filter(|l| l.contains("Running")).count(), 3, "{pods}");
    assert!(lab.kubectl(&["describe", "pod", "postgres-cluster-0"]).contains("postgres:15"));
    assert!(lab.kubectl(&["api-resources"]).contains("statefulsets"));

    // The Pods are real servers: psql through the Service reaches the primary, a standby is in recovery.
    let password = lab.password("postgres-credentials");
    let primary = lab.service_ip("postgres-primary");
    assert_eq!(psql(&primary, &password, "SELECT pg_is_in_recovery()").unwrap(), "f");
    psql(&primary, &password, "CREATE TABLE lab_probe (n int); INSERT INTO lab_probe VALUES (42)").unwrap();
    let standby_ip = lab.pod_field("postgres-cluster-1", ".status.podIP");
    assert_eq!(psql(&standby_ip, &password, "SELECT pg_is_in_recovery()").unwrap(), "t");
    assert_eq!(eventually("the row reaches the standby", Duration::from_secs(10), || psql(&standby_ip, &password, "SELECT n FROM lab_probe").ok()), "42");
    let replication =
        psql(&primary, &password, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming' AND sync_state IN ('sync', 'quorum')").unwrap();
    assert_eq!(replication, "2");
    assert_eq!(psql(&primary, &password, "SHOW synchronous_standby_names").unwrap(), "ANY 1 (*)");

    // The runner's PostgreSQL backend reaches members by name, with the password from the Secret,
    // parameters bound as text, rows as JSON, and queries read-only.
    let gate = fixture("hostile-gate");
    let query = lab.runner(&["exec", path(&gate), "--config", "mode=pg", "--output", "json"]);
    assert_eq!(query.status.code(), Some(0), "{}{}", stdout(&query), stderr(&query));
    let report: serde_json::Value = serde_json::from_slice(&query.stdout).unwrap();
    let row = &report["evidence"]["rows"][0];
    assert_eq!(row["in_recovery"], false, "{report}");
    assert_eq!(row["answer"], 42, "{report}");
    assert!(row["lsn"].as_str().is_some_and(|lsn| lsn.contains('/')), "{report}");
    psql(&primary, &password, "CREATE SEQUENCE runner_probe_seq").unwrap();
    let write = lab.runner(&["exec", path(&gate), "--config", "mode=pg-write", "--output", "json"]);
    assert_eq!(write.status.code(), Some(1), "{}{}", stdout(&write), stderr(&write));
    let reasons = serde_json::from_slice::<serde_json::Value>(&write.stdout).unwrap()["reasons"].to_string();
    assert!(reasons.contains("denied") && reasons.contains("read-only transaction"), "{reasons}");

    // kubectl exec runs in the member's environment, with the exit code.
    let exec = lab.kubectl_raw(&["exec", "postgres-cluster-0", "--", "sh", "-c", "echo $PGDATA; psql -Atc 'select 1'; exit 3"]);
    assert_eq!(exec.status.code(), Some(3), "{}", stderr(&exec));
    let out = stdout(&exec);
    assert!(out.contains("postgres-cluster-0") && out.lines().any(|l| l == "1"), "{out}");

    // A selector patch re-points the Service to the other member.
    lab.kubectl(&["patch", "svc", "postgres-primary", "-p", r#"{"spec":{"selector":{"statefulset.kubernetes.io/pod-name":"postgres-cluster-1"}}}"#]);
    eventually("the Service reaches postgres-cluster-1", Duration::from_secs(10), || {
        (psql(&primary, &password, "SELECT pg_is_in_recovery()").ok()? == "t").then_some(())
    });
    lab.kubectl(&[
        "patch",
        "svc",
        "postgres-primary",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/selector/statefulset.kubernetes.io~1pod-name","value":"postgres-cluster-0"}]"#,
    ]);
    eventually("the Service reaches the primary again", Duration::from_secs(10), || {
        (psql(&primary, &password, "SELECT pg_is_in_recovery()").ok()? == "f").then_some(())
    });

    // Delete a Pod: the StatefulSet brings it back with a new uid, the same volume, and it streams again.
    let uid = lab.pod_field("postgres-cluster-2", ".metadata.uid");
    lab.kubectl(&["delete", "pod", "postgres-cluster-2", "--wait=true", "--timeout=60s"]);
    let new_uid = lab.recreated_ready("postgres-cluster-2", &uid);
    assert_ne!(new_uid, uid);
    lab.kubectl(&["wait", "--for=condition=ready", "pod/postgres-cluster-2", "--timeout=10s"]);
    let member2 = lab.pod_field("postgres-cluster-2", ".status.podIP");
    assert_eq!(psql(&member2, &password, "SELECT n FROM lab_probe").unwrap(), "42", "same volume, same data");

    // Scaling up clones a real member: a third standby streams from the primary; scaling down removes it.
    lab.kubectl(&["scale", "sts", "postgres-cluster", "--replicas=4"]);
    lab.kubectl(&["wait", "--for=condition=ready", "pod/postgres-cluster-3", "--timeout=120s"]);
    eventually("three standbys streaming", Duration::from_secs(30), || {
        (psql(&primary, &password, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").ok()? == "3").then_some(())
    });
    lab.kubectl(&["scale", "sts", "postgres-cluster", "--replicas=3"]);
    eventually("postgres-cluster-3 removed", Duration::from_secs(60), || {
        (!lab.kubectl_raw(&["get", "pod", "postgres-cluster-3"]).status.success()).then_some(())
    });

    // A Pod no Node can take stays Pending with the scheduler's reason.
    let stuck = lab.dir.path().join("stuck.json");
    std::fs::write(&stuck, r#"{"apiVersion":"v1","kind":"Pod","metadata":{"name":"stuck"},"spec":{"nodeSelector":{"agentpool":"no-such-pool"},"containers":[{"name":"c","image":"postgres:15"}]}}"#).unwrap();
    lab.kubectl(&["create", "-f", path(&stuck)]);
    let reason = eventually("stuck is Unschedulable", Duration::from_secs(10), || {
        let text = lab.pod_field("stuck", r#".status.conditions[?(@.type=="PodScheduled")].message"#);
        text.contains("didn't match Pod's node affinity/selector").then_some(text)
    });
    assert!(reason.starts_with("0/6 nodes are available"), "{reason}");
    assert_eq!(lab.pod_field("stuck", ".status.phase"), "Pending");
    lab.kubectl(&["delete", "pod", "stuck"]);

    // Cordon works through a normal patch.
    lab.kubectl(&["cordon", "aks-upgradedpool-87654321-vmss000000"]);
    assert_eq!(lab.kubectl(&["get", "node", "aks-upgradedpool-87654321-vmss000000", "-o", "jsonpath={.spec.unschedulable}"]).trim(), "true");
    lab.kubectl(&["uncordon", "aks-upgradedpool-87654321-vmss000000"]);

    // Eviction honours the PDB (minAvailable 2 of 3): the first is allowed, a second right after is not (429).
    let evict = |pod: &str| {
        let body = lab.dir.path().join(format!("evict-{pod}.json"));
        std::fs::write(&body, format!(r#"{{"apiVersion":"policy/v1","kind":"Eviction","metadata":{{"name":"{pod}","namespace":"default"}}}}"#)).unwrap();
        lab.kubectl_raw(&["create", "--raw", &format!("/api/v1/namespaces/default/pods/{pod}/eviction"), "-f", path(&body)])
    };
    let evicted_uid = lab.pod_field("postgres-cluster-1", ".metadata.uid");
    let first = evict("postgres-cluster-1");
    assert!(first.status.success(), "first eviction: {}", stderr(&first));
    let second = evict("postgres-cluster-2");
    assert!(!second.status.success(), "a second eviction must be refused");
    let refusal = stderr(&second);
    assert!(refusal.contains("429") || refusal.contains("disruption budget"), "{refusal}");
    let blocked = lab.kubectl(&["get", "events", "--field-selector", "reason=EvictionBlocked", "-o", "jsonpath={.items[*].message}"]);
    assert!(blocked.contains("postgres-pdb"), "the event names the budget: {blocked}");
    lab.recreated_ready("postgres-cluster-1", &evicted_uid);

    // Backups are real pg_basebackups; the Job records when.
    let backup = lab.runner(&["lab", "--dir", path(lab.dir.path()), "backup"]);
    assert!(backup.status.success(), "{}", stderr(&backup));
    assert!(!lab.kubectl(&["get", "job", "postgres-backup", "-o", "jsonpath={.status.completionTime}"]).trim().is_empty());

    // Status names roles, nodes and pools.
    let status = lab.runner(&["lab", "--dir", path(lab.dir.path()), "status"]);
    let text = stdout(&status);
    assert!(text.contains("postgres-cluster-0") && text.contains("nodepool1"), "{text}");

    // Down stops every process; up brings back the same objects and data.
    let dir = lab.dir.path().to_path_buf();
    let down = lab.runner(&["lab", "--dir", path(&dir), "down"]);
    assert!(down.status.success());
    assert!(processes_under(&dir).is_empty(), "stray processes: {:?}", processes_under(&dir));
    let again = lab.runner(&["lab", "--dir", path(&dir), "up", "--wait", "240s", "--postgres", "--subnet", "201"]);
    assert!(again.status.success(), "{}", stderr(&again));
    let primary_now = lab.pod_field("postgres-cluster-0", ".status.podIP");
    assert_eq!(psql(&primary_now, &password, "SELECT n FROM lab_probe").unwrap(), "42");
    assert_eq!(servers_under(&dir).len(), 3, "one postmaster per member: {:?}", servers_under(&dir));

    // A crashed daemon leaves its servers behind; the next `up` adopts the lab without duplicates.
    let pid: i32 = std::fs::read_to_string(dir.join("daemon.pid")).unwrap().trim().parse().unwrap();
    assert!(Command::new("kill").args(["-9", &pid.to_string()]).status().unwrap().success());
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(servers_under(&dir).len(), 3, "the servers outlive a crashed daemon");
    let adopted = lab.runner(&["lab", "--dir", path(&dir), "up", "--wait", "240s", "--postgres", "--subnet", "201"]);
    assert!(adopted.status.success(), "{}", stderr(&adopted));
    eventually("exactly one server per member", Duration::from_secs(30), || (servers_under(&dir).len() == 3).then_some(()));
    assert_eq!(psql(&primary, &password, "SELECT n FROM lab_probe").unwrap(), "42");
}

#[test]
fn redis_lab_forms_a_cluster() {
    let lab = Lab::up(&["--redis", "--subnet", "202"]);
    let password = lab.password("redis-credentials");
    let ip = lab.service_ip("redis-cluster");
    let info = eventually("cluster_state:ok", Duration::from_secs(60), || {
        let out = Command::new("redis-cli").args(["-h", &ip, "-p", "6379", "CLUSTER", "INFO"]).env("REDISCLI_AUTH", &password).output().ok()?;
        let text = stdout(&out);
        text.contains("cluster_state:ok").then_some(text)
    });
    assert!(info.contains("cluster_slots_assigned:16384"), "{info}");
    assert!(info.contains("cluster_known_nodes:6"), "{info}");
}

#[test]
fn lab_commands_without_a_lab_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let output = Command::new(assert_cmd::cargo::cargo_bin("runner")).args(["lab", "--dir", path(dir.path()), "status"]).output().unwrap();
    assert_eq!(output.status.code(), Some(4));
    assert!(stderr(&output).contains("runner lab up"), "{}", stderr(&output));
}

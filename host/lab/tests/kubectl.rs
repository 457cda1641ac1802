//! The lab API server driven by the real kubectl (v1.32) as an independent client.

mod common;

use std::time::{Duration, Instant};

use common::{ALL_KINDS, Lab, TOKEN, text};
use serde_json::{Value, json};

const POD_PG_1: &str = "apiVersion: v1
kind: Pod
metadata: {name: pg-1, namespace: db, labels: {app: pg}}
spec:
  nodeName: node-1
  containers: [{name: postgres, image: postgres:16}]
";

async fn lab_with_all_kinds() -> Lab {
    let lab = Lab::start().await;
    let out = lab.ok_stdin(&["apply", "-f", "-"], ALL_KINDS).await;
    for line in [
        "namespace/db created",
        "node/node-1 created",
        "pod/pg-0 created",
        "service/pg-primary created",
        "statefulset.apps/pg created",
        "poddisruptionbudget.policy/pg-pdb created",
        "job.batch/backup created",
        "secret/pg-secret created",
        "configmap/pg-config created",
    ] {
        assert!(out.contains(line), "missing {line:?} in {out}");
    }
    lab
}

fn set_ready(lab: &Lab, ns: &str, name: &str) {
    let mut pod = lab.store.get("v1", "Pod", Some(ns), name).expect("pod");
    pod["status"]["phase"] = json!("Running");
    pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
    pod["status"]["containerStatuses"] = json!([{"name": "postgres", "ready": true, "restartCount": 0, "state": {"running": {}}}]);
    lab.store.update_status(pod).expect("update status");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_resources_and_empty_get() {
    let lab = Lab::start().await;
    let out = lab.ok(&["api-resources"]).await;
    let rows: Vec<Vec<&str>> = out.lines().map(|l| l.split_whitespace().collect()).collect();
    let row = |name: &str| rows.iter().find(|r| r[0] == name).unwrap_or_else(|| panic!("{name} not in {out}")).clone();
    assert_eq!(row("pods"), ["pods", "po", "v1", "true", "Pod"]);
    assert_eq!(row("nodes"), ["nodes", "no", "v1", "false", "Node"]);
    assert_eq!(row("namespaces"), ["namespaces", "ns", "v1", "false", "Namespace"]);
    assert_eq!(row("services"), ["services", "svc", "v1", "true", "Service"]);
    assert_eq!(row("configmaps"), ["configmaps", "cm", "v1", "true", "ConfigMap"]);
    assert_eq!(row("events"), ["events", "ev", "v1", "true", "Event"]);
    assert_eq!(row("secrets"), ["secrets", "v1", "true", "Secret"]);
    assert_eq!(row("statefulsets"), ["statefulsets", "sts", "apps/v1", "true", "StatefulSet"]);
    assert_eq!(row("daemonsets"), ["daemonsets", "ds", "apps/v1", "true", "DaemonSet"]);
    assert_eq!(row("poddisruptionbudgets"), ["poddisruptionbudgets", "pdb", "policy/v1", "true", "PodDisruptionBudget"]);
    assert_eq!(row("jobs"), ["jobs", "batch/v1", "true", "Job"]);
    let out = lab.kubectl(&["get", "pods"]).await;
    assert!(out.status.success());
    assert!(text(&out.stderr).contains("No resources found in default namespace."), "{}", text(&out.stderr));
    let out = lab.ok(&["get", "namespaces"]).await;
    assert!(out.starts_with("NAME") && out.contains("kube-system") && out.contains("Active"), "{out}");
    let version = lab.ok(&["version"]).await;
    assert!(version.contains("Server Version: v1.32"), "{version}");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_get_describe_every_kind() {
    let lab = lab_with_all_kinds().await;
    let pod = lab.json(&["get", "pod", "pg-0", "-n", "db", "-o", "json"]).await;
    assert_eq!(pod["kind"], "Pod");
    assert_eq!(pod["metadata"]["namespace"], "db");
    assert_eq!(pod["status"]["phase"], "Pending");
    assert!(pod["metadata"]["uid"].as_str().is_some_and(|u| u.len() == 36));
    assert!(pod["metadata"]["creationTimestamp"].as_str().is_some());
    assert_eq!(pod["metadata"]["generation"], 1);
    assert_eq!(pod["spec"]["containers"][0]["ports"][0]["protocol"], "TCP");
    let rv: u64 = pod["metadata"]["resourceVersion"].as_str().unwrap().parse().unwrap();
    assert!(rv > 0);
    let svc = lab.json(&["get", "svc", "pg-primary", "-n", "db", "-o", "json"]).await;
    assert!(svc["spec"]["clusterIP"].as_str().unwrap().starts_with("127.0."), "{svc}");
    assert_eq!(svc["spec"]["ports"][0]["targetPort"], 5432);
    let secret = lab.json(&["get", "secret", "pg-secret", "-n", "db", "-o", "json"]).await;
    assert_eq!(secret["data"]["password"], "aHVudGVyMg==");
    assert_eq!(secret["type"], "Opaque");
    let job = lab.json(&["get", "job", "backup", "-n", "db", "-o", "json"]).await;
    assert!(job["spec"]["selector"]["matchLabels"]["batch.kubernetes.io/controller-uid"].is_string());
    let list = lab.json(&["get", "pods", "-A", "-o", "json"]).await;
    assert_eq!(list["kind"], "List");
    assert_eq!(list["items"].as_array().unwrap().len(), 1);

    // Tables, as kubectl prints them.
    let out = lab.ok(&["get", "pods", "-n", "db"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "READY", "STATUS", "RESTARTS", "AGE"]);
    assert!(out.lines().nth(1).unwrap().starts_with("pg-0"), "{out}");
    assert!(out.contains("0/1") && out.contains("Pending"), "{out}");
    set_ready(&lab, "db", "pg-0");
    let out = lab.ok(&["get", "pods", "-n", "db", "-o", "wide"]).await;
    assert!(out.contains("1/1") && out.contains("Running") && out.contains("node-1"), "{out}");
    let out = lab.ok(&["get", "nodes"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split_whitespace().collect();
    assert_eq!(header, ["NAME", "STATUS", "ROLES", "AGE", "VERSION"]);
    let row: Vec<&str> = out.lines().nth(1).unwrap().split_whitespace().collect();
    assert_eq!((row[0], row[1], row[2], row[4]), ("node-1", "Ready", "worker", "v1.31.2"));
    let out = lab.ok(&["get", "sts,svc,pdb,job,cm,secret", "-n", "db"]).await;
    for needle in [
        "statefulset.apps/pg",
        "0/3",
        "service/pg-primary",
        "5432/TCP",
        "poddisruptionbudget.policy/pg-pdb",
        "job.batch/backup",
        "configmap/pg-config",
        "secret/pg-secret",
        "Opaque",
    ] {
        assert!(out.contains(needle), "missing {needle} in {out}");
    }
    let out = lab.ok(&["get", "all", "-n", "db"]).await;
    assert!(out.contains("pod/pg-0") && out.contains("service/pg-primary") && out.contains("statefulset.apps/pg") && out.contains("job.batch/backup"), "{out}");
    let out = lab.ok(&["get", "pods", "-n", "db", "--show-labels", "-l", "role in (primary),app"]).await;
    assert!(out.contains("app=pg,role=primary"), "{out}");
    let out = lab.kubectl(&["get", "pods", "-n", "db", "-l", "app!=pg"]).await;
    assert!(text(&out.stderr).contains("No resources found"), "{}", text(&out.stderr));
    let out = lab.ok(&["get", "pods", "-A", "--field-selector", "spec.nodeName=node-1,status.phase=Running"]).await;
    assert!(out.contains("pg-0"), "{out}");

    let out = lab.ok(&["describe", "pod", "pg-0", "-n", "db"]).await;
    for needle in ["Name:", "pg-0", "Namespace:", "db", "Node:", "node-1", "postgres:16", "5432/TCP", "PGDATA:", "Events:"] {
        assert!(out.contains(needle), "missing {needle} in {out}");
    }
    let out = lab.ok(&["describe", "node", "node-1"]).await;
    for needle in ["Name:               node-1", "Roles:              worker", "Unschedulable:      false", "Kubelet Version:", "v1.31.2", "pg-0"] {
        assert!(out.contains(needle), "missing {needle} in {out}");
    }

    // A second create of the same objects fails with AlreadyExists.
    let out = lab.kubectl_with_stdin(&["create", "-f", "-"], Some(ALL_KINDS)).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("Error from server (AlreadyExists)"), "{}", text(&out.stderr));
    // Applying a change updates the object and bumps its generation.
    let changed = ALL_KINDS.replace("replicas: 3", "replicas: 2");
    let out = lab.ok_stdin(&["apply", "-f", "-"], &changed).await;
    assert!(out.contains("statefulset.apps/pg configured") && out.contains("configmap/pg-config unchanged"), "{out}");
    let sts = lab.store.get("apps/v1", "StatefulSet", Some("db"), "pg").unwrap();
    assert_eq!((sts["spec"]["replicas"].as_i64(), sts["metadata"]["generation"].as_i64()), (Some(2), Some(2)));
    // Server-side apply creates and updates.
    let cm = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: ssa, namespace: db}\ndata: {a: '1'}\n";
    let out = lab.ok_stdin(&["apply", "--server-side", "-f", "-"], cm).await;
    assert!(out.contains("configmap/ssa serverside-applied"), "{out}");
    let out = lab.ok_stdin(&["apply", "--server-side", "-f", "-"], &cm.replace("'1'", "'2'")).await;
    assert!(out.contains("serverside-applied"), "{out}");
    assert_eq!(lab.store.get("v1", "ConfigMap", Some("db"), "ssa").unwrap()["data"]["a"], "2");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scale_statefulset() {
    let lab = lab_with_all_kinds().await;
    let out = lab.ok(&["scale", "sts", "pg", "-n", "db", "--replicas=4"]).await;
    assert!(out.contains("statefulset.apps/pg scaled"), "{out}");
    let scale = lab.json(&["get", "--raw", "/apis/apps/v1/namespaces/db/statefulsets/pg/scale"]).await;
    assert_eq!(scale["kind"], "Scale");
    assert_eq!(scale["apiVersion"], "autoscaling/v1");
    assert_eq!(scale["spec"]["replicas"], 4);
    assert_eq!(scale["status"]["selector"], "app=pg");
    let sts = lab.store.get("apps/v1", "StatefulSet", Some("db"), "pg").unwrap();
    assert_eq!(sts["spec"]["replicas"], 4);
    assert_eq!(sts["metadata"]["generation"], 2);
    // With a precondition kubectl uses GET + PUT on the scale subresource.
    lab.ok(&["scale", "sts/pg", "-n", "db", "--current-replicas=4", "--replicas=3"]).await;
    assert_eq!(lab.store.get("apps/v1", "StatefulSet", Some("db"), "pg").unwrap()["spec"]["replicas"], 3);
    let out = lab.kubectl(&["scale", "sts/pg", "-n", "db", "--current-replicas=5", "--replicas=2"]).await;
    assert!(!out.status.success());
    let out = lab.ok(&["describe", "sts", "pg", "-n", "db"]).await;
    assert!(out.contains("Scaled statefulset pg from 3 to 4 replicas"), "{out}");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn patch_service_selector_three_ways() {
    let lab = lab_with_all_kinds().await;
    let selector = |lab: &Lab| lab.store.get("v1", "Service", Some("db"), "pg-primary").unwrap()["spec"]["selector"].clone();
    // Strategic merge (kubectl's default).
    let out = lab.ok(&["patch", "svc", "pg-primary", "-n", "db", "-p", r#"{"spec":{"selector":{"role":"replica"}}}"#]).await;
    assert!(out.contains("service/pg-primary patched"), "{out}");
    assert_eq!(selector(&lab), json!({"app": "pg", "role": "replica"}));
    // JSON merge patch, removing a key with null.
    lab.ok(&["patch", "svc", "pg-primary", "-n", "db", "--type=merge", "-p", r#"{"spec":{"selector":{"role":null,"pod":"pg-1"}}}"#]).await;
    assert_eq!(selector(&lab), json!({"app": "pg", "pod": "pg-1"}));
    // JSON patch.
    lab.ok(&["patch", "svc", "pg-primary", "-n", "db", "--type=json", "-p", r#"[{"op":"replace","path":"/spec/selector/pod","value":"pg-2"}]"#]).await;
    assert_eq!(selector(&lab), json!({"app": "pg", "pod": "pg-2"}));
    // Strategic merge of containers by name keeps the other fields.
    lab.ok(&["patch", "pod", "pg-0", "-n", "db", "-p", r#"{"spec":{"containers":[{"name":"postgres","env":[{"name":"B","value":"2"}]}]}}"#]).await;
    let pod = lab.store.get("v1", "Pod", Some("db"), "pg-0").unwrap();
    assert_eq!(pod["spec"]["containers"][0]["image"], "postgres:16");
    assert_eq!(pod["spec"]["containers"][0]["env"], json!([{"name": "PGDATA", "value": "/data"}, {"name": "B", "value": "2"}]));
    // A failing JSON patch test is rejected and changes nothing.
    let out = lab.kubectl(&["patch", "svc", "pg-primary", "-n", "db", "--type=json", "-p", r#"[{"op":"test","path":"/spec/selector/pod","value":"x"}]"#]).await;
    assert!(!out.status.success());
    assert_eq!(selector(&lab), json!({"app": "pg", "pod": "pg-2"}));
    // Status patch through the subresource.
    lab.ok(&["patch", "pod", "pg-0", "-n", "db", "--subresource=status", "--type=merge", "-p", r#"{"status":{"podIP":"127.0.1.5"}}"#]).await;
    assert_eq!(lab.store.get("v1", "Pod", Some("db"), "pg-0").unwrap()["status"]["podIP"], "127.0.1.5");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_pod_graceful_then_forced() {
    let lab = lab_with_all_kinds().await;
    let mut events = lab.store.subscribe();
    let out = lab.ok(&["delete", "pod", "pg-0", "-n", "db", "--wait=false"]).await;
    assert!(out.contains("pod \"pg-0\" deleted"), "{out}");
    let pod = lab.store.get("v1", "Pod", Some("db"), "pg-0").expect("still there while terminating");
    assert!(pod["metadata"]["deletionTimestamp"].is_string());
    assert_eq!(pod["metadata"]["deletionGracePeriodSeconds"], 30);
    let ev = events.recv().await.unwrap();
    assert_eq!((ev.event_type, ev.object["metadata"]["name"].as_str()), (runner_lab::apiserver::EventType::Modified, Some("pg-0")));
    let out = lab.ok(&["get", "pods", "-n", "db"]).await;
    assert!(out.contains("Terminating"), "{out}");
    // The controller's part: remove it once stopped.
    lab.store.remove("v1", "Pod", Some("db"), "pg-0").unwrap();
    assert!(lab.store.get("v1", "Pod", Some("db"), "pg-0").is_none());

    // Forced deletion removes at once.
    lab.ok_stdin(&["apply", "-f", "-"], ALL_KINDS).await;
    let out = lab.kubectl(&["delete", "pod", "pg-0", "-n", "db", "--grace-period=0", "--force"]).await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert!(text(&out.stdout).contains("force deleted"), "{}", text(&out.stdout));
    assert!(lab.store.get("v1", "Pod", Some("db"), "pg-0").is_none());
    let out = lab.kubectl(&["get", "pod", "pg-0", "-n", "db"]).await;
    assert!(text(&out.stderr).contains("Error from server (NotFound): pods \"pg-0\" not found"), "{}", text(&out.stderr));

    // With graceful deletion switched off, a plain delete removes at once (and kubectl's wait returns).
    lab.store.set_graceful_pod_deletion(false);
    lab.ok_stdin(&["apply", "-f", "-"], ALL_KINDS).await;
    lab.ok(&["delete", "pod", "pg-0", "-n", "db", "--timeout=5s"]).await;
    assert!(lab.store.get("v1", "Pod", Some("db"), "pg-0").is_none());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wait_for_ready_condition() {
    let lab = lab_with_all_kinds().await;
    let store = lab.store.clone();
    let setter = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(700));
        let mut pod = store.get("v1", "Pod", Some("db"), "pg-0").unwrap();
        pod["status"]["conditions"] = json!([{"type": "Ready", "status": "True"}]);
        store.update_status(pod).unwrap();
    });
    let start = Instant::now();
    let out = lab.ok(&["wait", "--for=condition=ready", "pod/pg-0", "-n", "db", "--timeout=5s"]).await;
    let took = start.elapsed();
    setter.join().unwrap();
    assert!(out.contains("pod/pg-0 condition met"), "{out}");
    assert!(took >= Duration::from_millis(600) && took < Duration::from_secs(4), "took {took:?}");
    // Not ready: times out.
    lab.ok_stdin(&["apply", "-f", "-"], POD_PG_1).await;
    let start = Instant::now();
    let out = lab.kubectl(&["wait", "--for=condition=ready", "pod/pg-1", "-n", "db", "--timeout=1s"]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("timed out waiting for the condition on pods/pg-1"), "{}", text(&out.stderr));
    assert!(start.elapsed() < Duration::from_secs(4));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_output_and_exit_code() {
    let lab = lab_with_all_kinds().await;
    let out = lab.kubectl(&["exec", "pg-0", "-n", "db", "--", "sh", "-c", "echo hi; echo \"pod=$POD_NAME\"; echo oops >&2; exit 3"]).await;
    assert_eq!(out.status.code(), Some(3), "{}", text(&out.stderr));
    assert_eq!(text(&out.stdout), "hi\npod=pg-0\n");
    assert!(text(&out.stderr).contains("oops"), "{}", text(&out.stderr));
    let out = lab.ok(&["exec", "pg-0", "-n", "db", "-c", "postgres", "--", "echo", "ok"]).await;
    assert_eq!(out, "ok\n");
    // Stdin reaches the command and its end closes the command's stdin (v5 close signal).
    let out = lab.ok_stdin(&["exec", "-i", "pg-0", "-n", "db", "--", "tr", "a-z", "A-Z"], "hello lab\n").await;
    assert_eq!(out, "HELLO LAB\n");
    // A missing program and a wrong container are errors.
    let out = lab.kubectl(&["exec", "pg-0", "-n", "db", "--", "/nonexistent/program"]).await;
    assert!(!out.status.success());
    let out = lab.kubectl(&["exec", "pg-0", "-n", "db", "-c", "nope", "--", "true"]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("container nope is not valid for pod pg-0"), "{}", text(&out.stderr));
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cordon_and_drain() {
    let lab = lab_with_all_kinds().await;
    let out = lab.ok(&["cordon", "node-1"]).await;
    assert!(out.contains("node/node-1 cordoned"), "{out}");
    assert_eq!(lab.store.get("v1", "Node", None, "node-1").unwrap()["spec"]["unschedulable"], true);
    let out = lab.ok(&["get", "nodes"]).await;
    assert!(out.contains("Ready,SchedulingDisabled"), "{out}");
    let out = lab.ok(&["get", "nodes", "--field-selector", "spec.unschedulable=true", "-o", "name"]).await;
    assert_eq!(out, "node/node-1\n");
    lab.ok(&["uncordon", "node-1"]).await;
    assert_eq!(lab.store.get("v1", "Node", None, "node-1").unwrap()["spec"]["unschedulable"], json!(null));

    // Drain evicts (no PDB in the way: pods not ready may go); without controllers, remove at once.
    lab.store.set_graceful_pod_deletion(false);
    lab.ok(&["delete", "pdb", "pg-pdb", "-n", "db"]).await;
    set_ready(&lab, "db", "pg-0");
    let out = lab.kubectl(&["drain", "node-1", "--force", "--timeout=10s"]).await;
    assert!(out.status.success(), "{}{}", text(&out.stdout), text(&out.stderr));
    let all = format!("{}{}", text(&out.stdout), text(&out.stderr));
    assert!(all.contains("evicting pod db/pg-0") && all.contains("node/node-1 drained"), "{all}");
    assert!(lab.store.get("v1", "Pod", Some("db"), "pg-0").is_none());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn eviction_respects_pod_disruption_budget() {
    let lab = lab_with_all_kinds().await;
    set_ready(&lab, "db", "pg-0");
    let pdb = lab.store.get("policy/v1", "PodDisruptionBudget", Some("db"), "pg-pdb").unwrap();
    assert_eq!(pdb["status"]["currentHealthy"], 1);
    assert_eq!(pdb["status"]["desiredHealthy"], 1);
    assert_eq!(pdb["status"]["disruptionsAllowed"], 0);
    assert_eq!(pdb["status"]["expectedPods"], 1);
    let out = lab.ok(&["get", "pdb", "-n", "db"]).await;
    let header: Vec<&str> = out.lines().next().unwrap().split("   ").map(str::trim).filter(|s| !s.is_empty()).collect();
    assert_eq!(header, ["NAME", "MIN AVAILABLE", "MAX UNAVAILABLE", "ALLOWED DISRUPTIONS", "AGE"]);

    let eviction = r#"{"apiVersion":"policy/v1","kind":"Eviction","metadata":{"name":"pg-0","namespace":"db"}}"#;
    let (code, status) = lab.http(reqwest::Method::POST, "/api/v1/namespaces/db/pods/pg-0/eviction", "application/json", Some(eviction.into())).await;
    assert_eq!(code, 429, "{status}");
    assert_eq!(status["kind"], "Status");
    assert_eq!(status["reason"], "TooManyRequests");
    assert_eq!(status["message"], "Cannot evict pod as it would violate the pod's disruption budget.");
    assert_eq!(status["details"]["causes"][0]["reason"], "DisruptionBudget");
    assert_eq!(status["details"]["causes"][0]["message"], "The disruption budget pg-pdb needs 1 healthy pods and has 1 currently");
    // kubectl sees the same refusal.
    let out = lab.kubectl_with_stdin(&["create", "--raw", "/api/v1/namespaces/db/pods/pg-0/eviction", "-f", "-"], Some(eviction)).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("TooManyRequests"), "{}", text(&out.stderr));
    assert!(lab.store.get("v1", "Pod", Some("db"), "pg-0").unwrap()["metadata"]["deletionTimestamp"].is_null());
    let out = lab.ok(&["get", "events", "-n", "db"]).await;
    assert!(out.contains("EvictionBlocked") && out.contains("pg-pdb"), "{out}");

    // With a percentage budget that allows one disruption, the eviction goes through.
    lab.ok(&["patch", "pdb", "pg-pdb", "-n", "db", "--type=merge", "-p", r#"{"spec":{"minAvailable":null,"maxUnavailable":"50%"}}"#]).await;
    let pdb = lab.store.get("policy/v1", "PodDisruptionBudget", Some("db"), "pg-pdb").unwrap();
    assert_eq!(pdb["status"]["disruptionsAllowed"], 1, "{pdb}");
    assert_eq!(pdb["status"]["observedGeneration"], pdb["metadata"]["generation"]);
    let (code, status) = lab.http(reqwest::Method::POST, "/api/v1/namespaces/db/pods/pg-0/eviction", "application/json", Some(eviction.into())).await;
    assert_eq!(code, 201, "{status}");
    assert_eq!(status["status"], "Success");
    let pod = lab.store.get("v1", "Pod", Some("db"), "pg-0").unwrap();
    assert!(pod["metadata"]["deletionTimestamp"].is_string(), "graceful: terminating, not gone");
    let pdb = lab.store.get("policy/v1", "PodDisruptionBudget", Some("db"), "pg-pdb").unwrap();
    assert_eq!((pdb["status"]["currentHealthy"].as_i64(), pdb["status"]["disruptionsAllowed"].as_i64()), (Some(0), Some(0)));
    let out = lab.ok(&["describe", "pod", "pg-0", "-n", "db"]).await;
    assert!(out.contains("Evicted") && out.contains("Terminating"), "{out}");

    // Without any PDB, a healthy pod is evicted.
    lab.ok(&["delete", "pdb", "pg-pdb", "-n", "db"]).await;
    lab.ok_stdin(&["apply", "-f", "-"], POD_PG_1).await;
    set_ready(&lab, "db", "pg-1");
    let body = eviction.replace("pg-0", "pg-1");
    let (code, _) = lab.http(reqwest::Method::POST, "/api/v1/namespaces/db/pods/pg-1/eviction", "application/json", Some(body)).await;
    assert_eq!(code, 201);
    assert!(lab.store.get("v1", "Pod", Some("db"), "pg-1").unwrap()["metadata"]["deletionTimestamp"].is_string());
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_errors() {
    let lab = lab_with_all_kinds().await;
    // 401 without or with a wrong token.
    let resp = reqwest::get(format!("{}/api/v1/pods", lab.http)).await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let body: Value = resp.json_body().await;
    assert_eq!((body["kind"].as_str(), body["reason"].as_str(), body["code"].as_i64()), (Some("Status"), Some("Unauthorized"), Some(401)));
    let resp = reqwest::Client::new().get(format!("{}/api", lab.http)).header("Authorization", "Bearer wrong").send().await.unwrap();
    assert_eq!(resp.status().as_u16(), 401);
    let bad = lab.dir.path().join("bad-kubeconfig");
    std::fs::write(&bad, std::fs::read_to_string(&lab.kubeconfig).unwrap().replace(common::TOKEN, "wrong")).unwrap();
    let out = lab.kubectl(&["--kubeconfig", bad.to_str().unwrap(), "get", "pods"]).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("You must be logged in to the server"), "{}", text(&out.stderr));

    // 404.
    let (code, s) = lab.http(reqwest::Method::GET, "/api/v1/namespaces/db/pods/nope", "application/json", None).await;
    assert_eq!((code, s["reason"].as_str(), s["details"]["name"].as_str(), s["details"]["kind"].as_str()), (404, Some("NotFound"), Some("nope"), Some("pods")));
    assert_eq!(s["message"], "pods \"nope\" not found");
    let (code, _) = lab.http(reqwest::Method::GET, "/api/v1/nosuchthing", "application/json", None).await;
    assert_eq!(code, 404);
    let (code, s) =
        lab.http(reqwest::Method::POST, "/api/v1/namespaces/nowhere/configmaps", "application/json", Some(r#"{"metadata":{"name":"x"}}"#.into())).await;
    assert_eq!((code, s["message"].as_str()), (404, Some("namespaces \"nowhere\" not found")));

    // 409 AlreadyExists and Conflict on a stale resourceVersion (kubectl replace with an old object).
    let (code, s) =
        lab.http(reqwest::Method::POST, "/api/v1/namespaces/db/configmaps", "application/json", Some(r#"{"metadata":{"name":"pg-config"}}"#.into())).await;
    assert_eq!((code, s["reason"].as_str()), (409, Some("AlreadyExists")));
    assert_eq!(s["message"], "configmaps \"pg-config\" already exists");
    let old = lab.ok(&["get", "cm", "pg-config", "-n", "db", "-o", "json"]).await;
    lab.ok(&["label", "cm", "pg-config", "-n", "db", "touched=yes"]).await;
    let out = lab.kubectl_with_stdin(&["replace", "-f", "-"], Some(&old)).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("Error from server (Conflict)") && text(&out.stderr).contains("the object has been modified"), "{}", text(&out.stderr));
    // A delete with a wrong uid precondition.
    let (code, s) = lab
        .http(
            reqwest::Method::DELETE,
            "/api/v1/namespaces/db/configmaps/pg-config",
            "application/json",
            Some(r#"{"kind":"DeleteOptions","apiVersion":"v1","preconditions":{"uid":"00000000-0000-0000-0000-000000000000"}}"#.into()),
        )
        .await;
    assert_eq!((code, s["reason"].as_str()), (409, Some("Conflict")), "{s}");

    // 422 Invalid: no name, wrong kind, wrong field type.
    let (code, s) = lab.http(reqwest::Method::POST, "/api/v1/namespaces/db/configmaps", "application/json", Some(r#"{"metadata":{}}"#.into())).await;
    assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")));
    assert!(s["message"].as_str().unwrap().contains("metadata.name: Required value"), "{s}");
    let (code, s) = lab
        .http(
            reqwest::Method::POST,
            "/api/v1/namespaces/db/pods",
            "application/json",
            Some(r#"{"apiVersion":"v1","kind":"Service","metadata":{"name":"x"}}"#.into()),
        )
        .await;
    assert_eq!((code, s["reason"].as_str()), (422, Some("Invalid")), "{s}");
    let out = lab.kubectl_with_stdin(&["create", "-f", "-"], Some("apiVersion: apps/v1\nkind: StatefulSet\nmetadata: {name: bad, namespace: db}\nspec:\n  replicas: three\n  selector: {matchLabels: {a: b}}\n  template: {metadata: {labels: {a: b}}, spec: {containers: [{name: c, image: i}]}}\n")).await;
    assert!(!out.status.success());
    assert!(text(&out.stderr).contains("is invalid: spec.replicas"), "{}", text(&out.stderr));
    let out = lab
        .kubectl_with_stdin(&["create", "-f", "-"], Some("apiVersion: v1\nkind: Pod\nmetadata: {name: Bad_Name}\nspec: {containers: [{name: c, image: i}]}\n"))
        .await;
    assert!(text(&out.stderr).contains("Invalid value: \"Bad_Name\""), "{}", text(&out.stderr));

    // 400 BadRequest and 405 MethodNotAllowed.
    let (code, s) = lab.http(reqwest::Method::GET, "/api/v1/pods?labelSelector=a%3D(", "application/json", None).await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")));
    let (code, s) = lab.http(reqwest::Method::GET, "/api/v1/pods?fieldSelector=spec.bogus%3D1", "application/json", None).await;
    assert_eq!((code, s["reason"].as_str()), (400, Some("BadRequest")));
    let (code, s) = lab.http(reqwest::Method::POST, "/api/v1/namespaces/db/pods/pg-0", "application/json", Some("{}".into())).await;
    assert_eq!((code, s["reason"].as_str()), (405, Some("MethodNotAllowed")));
    let (code, _) = lab.http(reqwest::Method::PATCH, "/api/v1/namespaces/db/pods/pg-0", "text/plain", Some("{}".into())).await;
    assert_eq!(code, 415);
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn create_subcommands_send_protobuf_and_read_json() {
    let lab = lab_with_all_kinds().await;
    // kubectl's typed clients post protobuf and accept protobuf or JSON.
    let out = lab.ok(&["create", "configmap", "settings", "-n", "db", "--from-literal=max_connections=200", "--from-literal=mode=fast"]).await;
    assert_eq!(out.trim(), "configmap/settings created");
    let cm = lab.json(&["get", "configmap", "settings", "-n", "db", "-o", "json"]).await;
    assert_eq!(cm["data"], json!({"max_connections": "200", "mode": "fast"}));
    assert!(cm["metadata"]["uid"].is_string() && cm["metadata"]["resourceVersion"].is_string(), "{cm}");
    lab.ok(&["create", "secret", "generic", "creds", "-n", "db", "--from-literal=password=hunter2"]).await;
    let secret = lab.json(&["get", "secret", "creds", "-n", "db", "-o", "json"]).await;
    assert_eq!((secret["data"]["password"].as_str(), secret["type"].as_str()), (Some("aHVudGVyMg=="), Some("Opaque")));
    assert_eq!(lab.ok(&["create", "namespace", "analytics"]).await.trim(), "namespace/analytics created");
    assert_eq!(lab.store.get("v1", "Namespace", None, "analytics").unwrap()["status"]["phase"], "Active");
    // The same validation as for JSON: an existing name is a conflict, a bad name invalid.
    let out = lab.kubectl(&["create", "configmap", "settings", "-n", "db"]).await;
    assert!(text(&out.stderr).contains("configmaps \"settings\" already exists"), "{}", text(&out.stderr));
    let out = lab.kubectl(&["create", "configmap", "Bad_Name", "-n", "db"]).await;
    assert!(text(&out.stderr).contains("Invalid value: \"Bad_Name\""), "{}", text(&out.stderr));
    // kubectl apply (JSON) still works alongside.
    lab.ok_stdin(&["apply", "-f", "-"], "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings, namespace: db}\ndata: {mode: slow}\n").await;
    assert_eq!(lab.store.get("v1", "ConfigMap", Some("db"), "settings").unwrap()["data"]["mode"], "slow");

    // A kind kubectl does not send as protobuf to the lab is refused by name, not misread.
    let client = reqwest::Client::new();
    let send = |accept: &'static str| {
        client
            .get(format!("{}/api/v1/namespaces/db/configmaps/settings", lab.http))
            .header("Authorization", format!("Bearer {TOKEN}"))
            .header("Accept", accept)
            .send()
    };
    // Protobuf alongside JSON: JSON; protobuf alone: 406, as upstream for a kind without protobuf.
    let both = send("application/vnd.kubernetes.protobuf,application/json").await.unwrap();
    assert_eq!(both.status().as_u16(), 200);
    assert_eq!(both.headers()["content-type"], "application/json");
    assert_eq!(both.json_body().await["data"]["mode"], "slow");
    let alone = send("application/vnd.kubernetes.protobuf").await.unwrap();
    assert_eq!(alone.status().as_u16(), 406);
    assert_eq!(alone.json_body().await["reason"], "NotAcceptable");
    let (code, status) = lab.http(reqwest::Method::POST, "/api/v1/namespaces/db/configmaps", "application/vnd.kubernetes.protobuf", Some("{}".into())).await;
    assert_eq!((code, status["reason"].as_str()), (400, Some("BadRequest")), "{status}");
    lab.stop().await;
}

/// A TCP server on 127.0.0.1 that answers each line with `echo: LINE`.
async fn echo_server() -> u16 {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        while let Ok((socket, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = socket.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    if write.write_all(format!("echo: {line}\n").as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    port
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kubectl_port_forward_tunnels_connections_to_the_pod() {
    use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
    let lab = lab_with_all_kinds().await;
    set_ready(&lab, "db", "pg-0");
    let port = echo_server().await;
    let mut pod = lab.store.get("v1", "Pod", Some("db"), "pg-0").unwrap();
    pod["status"]["podIP"] = json!("127.0.0.1");
    lab.store.update_status(pod).unwrap();

    let mut forward = tokio::process::Command::new("kubectl")
        .arg("--kubeconfig")
        .arg(&lab.kubeconfig)
        .args(["port-forward", "-n", "db", "pod/pg-0", &format!(":{port}")])
        .env("HOME", lab.dir.path())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(forward.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(30), stdout.next_line()).await.expect("kubectl listens").unwrap().unwrap_or_default();
    let local: u16 = line
        .strip_prefix("Forwarding from 127.0.0.1:")
        .and_then(|r| r.split_whitespace().next())
        .and_then(|p| p.parse().ok())
        .unwrap_or_else(|| panic!("{line}"));
    tokio::spawn(async move { while let Ok(Some(_)) = stdout.next_line().await {} });

    // Two connections at once, each its own stream pair in the one SPDY tunnel.
    let mut connections = Vec::new();
    for _ in 0..2 {
        let (read, write) = tokio::net::TcpStream::connect(("127.0.0.1", local)).await.unwrap().into_split();
        connections.push((BufReader::new(read).lines(), write));
    }
    for round in 0..3 {
        for (n, (lines, write)) in connections.iter_mut().enumerate() {
            write.write_all(format!("conn {n} round {round}\n").as_bytes()).await.unwrap();
            let answer = tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.expect("an answer").unwrap();
            assert_eq!(answer.as_deref(), Some(format!("echo: conn {n} round {round}").as_str()));
        }
    }
    // Closing a connection ends the Pod's side too (the echo server sees EOF and stops answering).
    let (mut lines, mut write) = connections.pop().unwrap();
    write.shutdown().await.unwrap();
    assert_eq!(tokio::time::timeout(Duration::from_secs(10), lines.next_line()).await.expect("EOF").unwrap(), None);
    let _ = forward.kill().await;

    // Unknown pods and pods without an address are refused before any upgrade.
    let (code, status) = lab.http(reqwest::Method::GET, "/api/v1/namespaces/db/pods/nope/portforward?ports=1", "application/json", None).await;
    assert_eq!((code, status["reason"].as_str()), (404, Some("NotFound")));
    let (code, status) = lab.http(reqwest::Method::GET, "/api/v1/namespaces/db/pods/pg-0/portforward?ports=0", "application/json", None).await;
    assert_eq!(code, 400, "{status}");
    let (code, status) = lab.http(reqwest::Method::GET, "/api/v1/namespaces/db/pods/pg-0/portforward?ports=5432", "application/json", None).await;
    assert!(code == 400 && status["message"].as_str().unwrap_or_default().contains("Upgrade request required"), "{status}");
    lab.stop().await;
}

trait JsonBody {
    async fn json_body(self) -> Value;
}

impl JsonBody for reqwest::Response {
    async fn json_body(self) -> Value {
        serde_json::from_slice(&self.bytes().await.unwrap()).unwrap()
    }
}

//! The Kubernetes backend against a real lab: every kube import through the
//! backend API (as the imports call it) and through `runner exec`, error
//! mapping from the API server's own Status answers, watch-based waits,
//! eviction with PodDisruptionBudgets, drain, and `runner target check`.
//! `kubectl` is the independent check of what changed.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use common::lab::*;
use common::*;
use runner::backends::{BackendResult, DrainOptions, ErrorCode, Kube, KubeBackend, ListOptions, ObjectRef, PatchType, WaitFor};
use runner::target::Target;
use serde_json::{Value, json};

/// A lab with a Kubernetes backend connected to it.
struct KubeLab {
    lab: Lab,
    rt: tokio::runtime::Runtime,
    kube: Arc<KubeBackend>,
}

impl std::ops::Deref for KubeLab {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl KubeLab {
    fn up(subnet: &str) -> KubeLab {
        let lab = Lab::up(&["--subnet", subnet]);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let target = Target::lab(lab.dir.path().to_path_buf());
        let kube = Arc::new(rt.block_on(runner::backends::kube::connect(&target)).unwrap_or_else(|e| panic!("connect to the lab: {e}")));
        KubeLab { lab, rt, kube }
    }

    /// Create an object from JSON with kubectl.
    fn create(&self, object: Value) {
        let file = self.dir.path().join(format!("object-{}.json", object["metadata"]["name"].as_str().unwrap()));
        std::fs::write(&file, object.to_string()).unwrap();
        self.kubectl(&["create", "-f", path(&file)]);
    }

    fn field(&self, what: &[&str], jsonpath: &str) -> String {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        let expr = format!("jsonpath={{{jsonpath}}}");
        args.extend_from_slice(&["-o", &expr]);
        self.kubectl(&args).trim().to_string()
    }

    fn exists(&self, what: &[&str]) -> bool {
        let mut args = vec!["get"];
        args.extend_from_slice(what);
        self.kubectl_raw(&args).status.success()
    }

    fn block<T>(&self, future: impl std::future::Future<Output = T>) -> T {
        self.rt.block_on(future)
    }

    /// A backend call that must succeed, as JSON.
    fn json(&self, future: impl std::future::Future<Output = BackendResult<String>>) -> Value {
        let text = self.block(future).unwrap_or_else(|e| panic!("{e}"));
        serde_json::from_str(&text).unwrap()
    }
}

fn object(api_version: &str, kind: &str, name: &str) -> ObjectRef {
    ObjectRef { api_version: api_version.into(), kind: kind.into(), namespace: None, name: name.into() }
}

fn pods(labels: Option<&str>, fields: Option<&str>, namespace: Option<&str>) -> ListOptions {
    ListOptions {
        api_version: "v1".into(),
        kind: "Pod".into(),
        namespace: namespace.map(str::to_string),
        label_selector: labels.map(str::to_string),
        field_selector: fields.map(str::to_string),
    }
}

/// A Pod the lab's kubelet will not run (it runs only postgres and redis
/// images): it stays Pending on `node` but exists.
fn idle_pod(name: &str, node: &str, labels: Value, owner: Option<Value>, empty_dir: bool) -> Value {
    let mut pod = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "default", "labels": labels},
        "spec": {"nodeName": node, "containers": [{"name": "main", "image": "busybox:1.36", "command": ["sleep", "3600"]}]},
    });
    if let Some(owner) = owner {
        pod["metadata"]["ownerReferences"] = json!([owner]);
    }
    if empty_dir {
        pod["spec"]["volumes"] = json!([{"name": "scratch", "emptyDir": {}}]);
        pod["spec"]["containers"][0]["volumeMounts"] = json!([{"name": "scratch", "mountPath": "/scratch"}]);
    }
    pod
}

#[test]
fn every_kube_import_against_the_lab() {
    let lab = KubeLab::up("210");
    let kube = lab.kube.clone();

    // get: namespaced (default namespace), cluster-scoped, and by explicit namespace.
    let pod = lab.json(kube.get(&object("v1", "Pod", "postgres-cluster-0")));
    assert_eq!((pod["kind"].as_str(), pod["apiVersion"].as_str()), (Some("Pod"), Some("v1")));
    let node_name = pod["spec"]["nodeName"].as_str().unwrap().to_string();
    let node = lab.json(kube.get(&object("v1", "Node", &node_name)));
    assert_eq!(node["metadata"]["labels"]["agentpool"], "nodepool1");
    let mut in_default = object("apps/v1", "StatefulSet", "postgres-cluster");
    in_default.namespace = Some("default".into());
    let set = lab.json(kube.get(&in_default));
    assert_eq!(set["spec"]["replicas"], 3);

    // list: label and field selectors, every namespace, items carry their kind.
    let list = |options: ListOptions| -> Vec<Value> { lab.json(kube.list(&options)).as_array().unwrap().clone() };
    let members = list(pods(Some("app=postgres"), None, None));
    assert_eq!(members.len(), 3);
    assert!(members.iter().all(|p| p["kind"] == "Pod" && p["apiVersion"] == "v1"));
    assert_eq!(list(pods(Some("app=postgres"), Some(&format!("spec.nodeName={node_name}")), None)).len(), 1);
    assert_eq!(list(pods(Some("app=postgres,statefulset.kubernetes.io/pod-name!=postgres-cluster-0"), None, Some("*"))).len(), 2);
    assert!(list(pods(Some("app=postgres"), None, Some("kube-system"))).is_empty());
    let upgraded = list(ListOptions {
        api_version: "v1".into(),
        kind: "Node".into(),
        namespace: None,
        label_selector: Some("agentpool=upgraded-pool".into()),
        field_selector: None,
    });
    assert_eq!(upgraded.len(), 3);

    // Errors carry the API server's own Status message and map to the WIT codes.
    let missing = lab.block(kube.get(&object("v1", "Pod", "nope"))).unwrap_err();
    assert_eq!(missing.code, ErrorCode::NotFound);
    assert!(missing.message.contains("pods \"nope\" not found"), "{}", missing.message);
    assert_eq!(lab.block(kube.get(&object("example.com/v1", "Widget", "w"))).unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(lab.block(kube.get(&object("v1", "Gadget", "g"))).unwrap_err().code, ErrorCode::NotFound);
    assert_eq!(lab.block(kube.get(&object("a/b/c", "Pod", "x"))).unwrap_err().code, ErrorCode::Invalid);
    let pdb = object("policy/v1", "PodDisruptionBudget", "postgres-pdb");
    let stale = lab.block(kube.patch(&pdb, PatchType::Merge, r#"{"metadata":{"resourceVersion":"1","labels":{"x":"y"}}}"#)).unwrap_err();
    assert_eq!(stale.code, ErrorCode::Conflict, "{}", stale.message);
    assert!(stale.message.contains("the object has been modified"), "{}", stale.message);
    let invalid = lab.block(kube.patch(&pdb, PatchType::Merge, r#"{"spec":{"maxUnavailable":1}}"#)).unwrap_err();
    assert_eq!(invalid.code, ErrorCode::Invalid, "{}", invalid.message);
    assert!(invalid.message.contains("minAvailable and maxUnavailable cannot be both set"), "{}", invalid.message);
    assert_eq!(lab.block(kube.patch(&pdb, PatchType::Json, "not json")).unwrap_err().code, ErrorCode::Invalid);

    // patch: merge, JSON, strategic, and server-side apply (which creates; the server refuses it without a field manager).
    let svc = object("v1", "Service", "postgres-replicas");
    lab.block(kube.patch(&svc, PatchType::Merge, r#"{"metadata":{"labels":{"merged":"yes"}}}"#)).unwrap();
    lab.block(kube.patch(&svc, PatchType::Json, r#"[{"op":"add","path":"/metadata/annotations","value":{"json":"yes"}}]"#)).unwrap();
    let patched: Value =
        serde_json::from_str(&lab.block(kube.patch(&svc, PatchType::Strategic, r#"{"metadata":{"labels":{"strategic":"yes"}}}"#)).unwrap()).unwrap();
    assert_eq!(patched["metadata"]["labels"]["merged"], "yes");
    assert_eq!(lab.field(&["svc", "postgres-replicas"], ".metadata.labels.strategic"), "yes");
    assert_eq!(lab.field(&["svc", "postgres-replicas"], ".metadata.annotations.json"), "yes");
    let config = object("v1", "ConfigMap", "runner-probe");
    lab.block(kube.patch(&config, PatchType::Apply { force: false }, r#"{"data":{"step":"one"}}"#)).unwrap();
    assert_eq!(lab.field(&["configmap", "runner-probe"], ".data.step"), "one");

    // wait: ends on the event that makes it true, well before its timeout.
    let started = Instant::now();
    let waiter = {
        let kube = kube.clone();
        let config = config.clone();
        lab.rt.spawn(async move { kube.wait_for(&config, &WaitFor::Field { pointer: "/data/step".into(), value: "\"two\"".into() }, 60_000).await })
    };
    std::thread::sleep(Duration::from_millis(700));
    lab.kubectl(&["patch", "configmap", "runner-probe", "-p", r#"{"data":{"step":"two"}}"#]);
    let patched_at = Instant::now();
    let seen: Value = serde_json::from_str(&lab.block(waiter).unwrap().unwrap()).unwrap();
    assert_eq!(seen["data"]["step"], "two");
    assert!(patched_at.elapsed() < Duration::from_millis(1500), "the wait ended {:?} after the change: it must watch, not poll", patched_at.elapsed());
    assert!(started.elapsed() < Duration::from_secs(10), "{:?} of a 60 s timeout", started.elapsed());
    // Already true: at once. Never true: `timeout` after the timeout, saying what it saw.
    let ready = WaitFor::Condition { condition_type: "Ready".into(), status: "True".into() };
    let started = Instant::now();
    lab.block(kube.wait_for(&object("v1", "Pod", "postgres-cluster-0"), &ready, 30_000)).unwrap();
    assert!(started.elapsed() < Duration::from_secs(2), "{:?}", started.elapsed());
    let started = Instant::now();
    let never = lab
        .block(kube.wait_for(&object("v1", "Pod", "postgres-cluster-0"), &WaitFor::Condition { condition_type: "Ready".into(), status: "False".into() }, 1500))
        .unwrap_err();
    assert_eq!(never.code, ErrorCode::Timeout);
    assert!(never.message.contains("last Ready=True"), "{}", never.message);
    assert!(started.elapsed() >= Duration::from_millis(1500) && started.elapsed() < Duration::from_secs(5), "{:?}", started.elapsed());

    // delete with a grace period; a wait for deletion that is already true.
    lab.block(kube.delete(&config, Some(0))).unwrap();
    assert!(!lab.exists(&["configmap", "runner-probe"]));
    assert_eq!(lab.block(kube.wait_for(&config, &WaitFor::Deleted, 5000)).unwrap(), "null");
    assert_eq!(lab.block(kube.delete(&config, None)).unwrap_err().code, ErrorCode::NotFound);

    // scale through the scale subresource; wait for the new member by watching.
    let sts = object("apps/v1", "StatefulSet", "postgres-cluster");
    lab.block(kube.scale(&sts, 4)).unwrap();
    assert_eq!(lab.field(&["statefulset", "postgres-cluster"], ".spec.replicas"), "4");
    lab.block(kube.wait_for(&object("v1", "Pod", "postgres-cluster-3"), &ready, 120_000)).unwrap();
    lab.block(kube.scale(&sts, 3)).unwrap();
    let gone = lab.block(kube.wait_for(&object("v1", "Pod", "postgres-cluster-3"), &WaitFor::Deleted, 120_000)).unwrap();
    assert_eq!(gone, "null");
    assert!(!lab.exists(&["pod", "postgres-cluster-3"]));
    assert_eq!(lab.block(kube.scale(&object("v1", "ConfigMap", "x"), 1)).unwrap_err().code, ErrorCode::NotFound);

    // cordon / uncordon.
    let spare = upgraded[0]["metadata"]["name"].as_str().unwrap().to_string();
    lab.block(kube.set_unschedulable(&spare, true)).unwrap();
    assert_eq!(lab.field(&["node", &spare], ".spec.unschedulable"), "true");
    lab.block(kube.set_unschedulable(&spare, false)).unwrap();
    assert_ne!(lab.field(&["node", &spare], ".spec.unschedulable"), "true");
    assert_eq!(lab.block(kube.set_unschedulable("no-such-node", true)).unwrap_err().code, ErrorCode::NotFound);

    // exec: exit code, stdout and stderr apart, output bounded.
    let sh = |script: &str| vec!["sh".to_string(), "-c".to_string(), script.to_string()];
    let out = lab.block(kube.exec(None, "postgres-cluster-0", None, &sh("echo out; echo err >&2; exit 3"))).unwrap();
    assert_eq!((out.exit_code, out.stdout.as_str(), out.stderr.as_str()), (3, "out\n", "err\n"));
    let out = lab.block(kube.exec(Some("default"), "postgres-cluster-1", None, &sh("psql -Atc 'select pg_is_in_recovery()'"))).unwrap();
    assert_eq!((out.exit_code, out.stdout.trim()), (0, "t"), "{}", out.stderr);
    let big = lab.block(kube.exec(None, "postgres-cluster-0", None, &sh("head -c 3000000 /dev/zero | tr '\\0' a"))).unwrap();
    assert_eq!(big.exit_code, 0);
    assert_eq!(big.stdout.len(), runner::backends::kube::EXEC_OUTPUT_LIMIT);
    assert!(big.stderr.contains("stdout cut at 1048576 bytes"), "{}", big.stderr);
    assert_eq!(lab.block(kube.exec(None, "nope", None, &sh("true"))).unwrap_err().code, ErrorCode::NotFound);

    // evict honours the PodDisruptionBudget: one Pod may go, a second right after may not (429 -> conflict).
    let uid = lab.field(&["pod", "postgres-cluster-2"], ".metadata.uid");
    lab.block(kube.evict(None, "postgres-cluster-2")).unwrap();
    let refused = lab.block(kube.evict(None, "postgres-cluster-1")).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);
    assert!(refused.message.contains("disruption budget") && refused.message.contains("postgres-pdb"), "{}", refused.message);
    assert_eq!(lab.block(kube.evict(None, "nope")).unwrap_err().code, ErrorCode::NotFound);
    eventually("postgres-cluster-2 recreated and Ready", Duration::from_secs(120), || {
        let out = lab.kubectl_raw(&["get", "pod", "postgres-cluster-2", "-o", r#"jsonpath={.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}"#]);
        let text = stdout(&out);
        (text.split_whitespace().next() != Some(uid.as_str()) && text.trim().ends_with("True")).then_some(())
    });

    // The bundled gate through `runner exec`: passes on the lab, fails on a Pod that is not Ready.
    let output = lab.runner(&["exec", "pods-ready"]);
    assert!(expect_exit(&output, 0).contains("3/3 Pods matching `app=postgres` are Ready"));
    lab.create(idle_pod("not-ready", &spare, json!({"app": "stuck"}), None, false));
    let output = lab.runner(&["exec", "pods-ready", "--config", "selector=app=stuck", "--output", "json"]);
    expect_exit(&output, 1);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert!(report["reasons"][0].as_str().unwrap().contains("not-ready: not Ready (phase Pending"), "{report}");
    // The same through a target file naming the lab's kubeconfig.
    let target = lab.dir.path().join("target.yaml");
    std::fs::write(&target, format!("kubeconfig: {}\nnamespace: default\n", lab.kubeconfig().display())).unwrap();
    expect_exit(&lab.runner(&["exec", "pods-ready", "--target", path(&target)]), 0);
    // A pattern's dry run reads through, plans its mutations, and changes nothing.
    let output = lab.runner(&["exec", path(&fixture("probe-pattern")), "--dry-run", "--output", "json"]);
    expect_exit(&output, 0);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["gates"][0]["outcome"], "pass", "{report}");
    assert_eq!(report["plan"].as_array().unwrap().len(), 4, "{report}");
    assert_eq!(lab.field(&["statefulset", "postgres-cluster"], ".spec.replicas"), "3");

    // target check: complete on the lab; a file says what is missing; bad files and no lab.
    let output = lab.runner(&["target", "check"]);
    let text = expect_exit(&output, 0);
    for expected in [
        "API server v1.31",
        "pool upgraded-pool",
        "kubelet v1.30.5",
        "member postgres-cluster-0",
        "primary Service postgres-primary",
        "-> postgres-cluster-0",
        "Secret postgres-credentials key password: present",
        "COMPLETE",
    ] {
        assert!(text.contains(expected), "`{expected}` missing:\n{text}");
    }
    let password = lab.field(&["secret", "postgres-credentials"], ".data.password");
    assert!(!text.contains(&password), "the credential never shows");
    std::fs::write(
        &target,
        format!(
            "kubeconfig: {}\ndatabases:\n  postgres-cluster:\n    engine: postgres\n    primaryService: postgres-primary\n    credentials:\n      secret: postgres-credentials\n  orders:\n    engine: postgres\n    primaryService: orders-primary\n    credentials:\n      env: RUNNER_TEST_UNSET_PASSWORD\n",
            lab.kubeconfig().display()
        ),
    )
    .unwrap();
    let output = lab.runner(&["target", "check", path(&target), "--output", "json"]);
    expect_exit(&output, 1);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    let missing = report["missing"].to_string();
    assert!(missing.contains("StatefulSet default/orders not found") && missing.contains("RUNNER_TEST_UNSET_PASSWORD"), "{missing}");
    assert!(!missing.contains("postgres-cluster:"), "{missing}");
    let postgres = report["databases"].as_array().unwrap().iter().find(|d| d["name"] == "postgres-cluster").unwrap_or_else(|| panic!("{report}"));
    assert_eq!(postgres["members"].as_array().unwrap().len(), 3, "{report}");
    std::fs::write(&target, "databases:\n  pg:\n    engine: postgres\n").unwrap();
    let output = lab.runner(&["target", "check", path(&target)]);
    assert!(expect_exit(&output, 2).contains("missing field `credentials`"));
    let empty = tempfile::tempdir().unwrap();
    let output = lab.command(&["target", "check"]).env("RUNNER_LAB_DIR", empty.path()).output().unwrap();
    assert!(expect_exit(&output, 4).contains("start it with `runner lab up`"));

    // An API server that is not there: `unavailable`.
    let dead = lab.dir.path().join("dead-kubeconfig");
    std::fs::write(
        &dead,
        std::fs::read_to_string(lab.kubeconfig()).unwrap().replace(&format!(":{}", std::fs::read_to_string(lab.dir.path().join("port")).unwrap().trim()), ":1"),
    )
    .unwrap();
    std::fs::write(&target, format!("kubeconfig: {}\n", dead.display())).unwrap();
    let unreachable = lab
        .block(async { runner::backends::kube::connect(&Target::from_arg(path(&target)).unwrap()).await.unwrap().get(&object("v1", "Pod", "x")).await })
        .unwrap_err();
    assert_eq!(unreachable.code, ErrorCode::Unavailable, "{}", unreachable.message);
    expect_exit(&lab.runner(&["exec", "pods-ready", "--target", path(&target)]), 4);
    expect_exit(&lab.runner(&["target", "check", path(&target)]), 4);
}

#[test]
fn drain_follows_kubectls_rules() {
    let lab = KubeLab::up("211");
    let kube = lab.kube.clone();
    let drain = |node: &str, ignore_daemonsets: bool, delete_emptydir_data: bool, force: bool, timeout_ms: u64| {
        let options = DrainOptions { ignore_daemonsets, delete_emptydir_data, force, grace_period_seconds: None, timeout_ms };
        lab.block(kube.drain(node, &options))
    };

    // A node with a DaemonSet Pod (by ownerReference), an unmanaged Pod, an emptyDir Pod and a mirror Pod.
    let node = lab.field(&["nodes", "-l", "agentpool=upgraded-pool"], ".items[0].metadata.name");
    lab.create(json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "node-agent", "namespace": "default"},
        "spec": {"selector": {"matchLabels": {"app": "node-agent"}}, "template": {"metadata": {"labels": {"app": "node-agent"}}, "spec": {"containers": [{"name": "agent", "image": "busybox:1.36"}]}}},
    }));
    lab.create(json!({
        "apiVersion": "batch/v1", "kind": "Job",
        "metadata": {"name": "scratch-job", "namespace": "default"},
        "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "work", "image": "busybox:1.36"}]}}},
    }));
    let owner = |api_version: &str, kind: &str, name: &str, uid: String| json!({"apiVersion": api_version, "kind": kind, "name": name, "uid": uid, "controller": true, "blockOwnerDeletion": true});
    let ds_uid = lab.field(&["daemonset", "node-agent"], ".metadata.uid");
    let job_uid = lab.field(&["job", "scratch-job"], ".metadata.uid");
    lab.create(idle_pod("node-agent-x1", &node, json!({"app": "node-agent"}), Some(owner("apps/v1", "DaemonSet", "node-agent", ds_uid)), false));
    lab.create(idle_pod("bare", &node, json!({"app": "bare"}), None, false));
    lab.create(idle_pod("scratch", &node, json!({"app": "scratch"}), Some(owner("batch/v1", "Job", "scratch-job", job_uid)), true));
    let mut mirror = idle_pod("static-web", &node, json!({"app": "static"}), None, false);
    mirror["metadata"]["annotations"] = json!({"kubernetes.io/config.mirror": "abc123"});
    lab.create(mirror);

    // Without the flags, kubectl's drain refuses and names every blocking Pod; nothing is evicted.
    let refused = drain(&node, false, false, false, 30_000).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Conflict);
    for expected in ["DaemonSet-managed Pods", "default/node-agent-x1", "local storage", "default/scratch", "declare no controller", "default/bare"] {
        assert!(refused.message.contains(expected), "`{expected}` missing: {}", refused.message);
    }
    assert!(!refused.message.contains("static-web"), "mirror Pods are skipped: {}", refused.message);
    assert_eq!(lab.field(&["node", &node], ".spec.unschedulable"), "true", "drain cordons first");
    for pod in ["node-agent-x1", "bare", "scratch", "static-web"] {
        assert!(lab.exists(&["pod", pod]), "{pod} must still exist");
    }

    // With them: the DaemonSet and mirror Pods stay (never deleted), the others are evicted and gone.
    let report: Value = serde_json::from_str(&drain(&node, true, true, true, 60_000).unwrap()).unwrap();
    let evicted: Vec<&str> = report["evicted"].as_array().unwrap().iter().map(|v| v.as_str().unwrap()).collect();
    assert_eq!(evicted, ["default/bare", "default/scratch"], "{report}");
    let skipped = report["skipped"].to_string();
    assert!(skipped.contains("default/node-agent-x1") && skipped.contains("default/static-web"), "{report}");
    assert!(!lab.exists(&["pod", "bare"]) && !lab.exists(&["pod", "scratch"]));
    assert!(lab.exists(&["pod", "node-agent-x1"]) && lab.exists(&["pod", "static-web"]));
    lab.block(kube.set_unschedulable(&node, false)).unwrap();

    // A budget that forbids any disruption: drain retries every 5 s, then times out naming the budget and the Pod.
    let pg_node = lab.field(&["pod", "postgres-cluster-1"], ".spec.nodeName");
    let uid = lab.field(&["pod", "postgres-cluster-1"], ".metadata.uid");
    lab.kubectl(&["patch", "pdb", "postgres-pdb", "-p", r#"{"spec":{"minAvailable":3}}"#]);
    let started = Instant::now();
    let blocked = drain(&pg_node, true, false, false, 12_000).unwrap_err();
    let took = started.elapsed();
    assert_eq!(blocked.code, ErrorCode::Timeout, "{}", blocked.message);
    assert!(blocked.message.contains("Pod default/postgres-cluster-1 is blocked by PodDisruptionBudget default/postgres-pdb"), "{}", blocked.message);
    assert!(blocked.message.contains("3 attempt(s)"), "retried every 5 s within 12 s: {}", blocked.message);
    assert!(took >= Duration::from_secs(12) && took < Duration::from_secs(20), "{took:?}");
    assert_eq!(lab.field(&["pod", "postgres-cluster-1"], ".metadata.uid"), uid, "nothing was evicted");

    // Allowed again: the Pod is evicted, and drain waits until the StatefulSet's replacement (same name, new uid) exists.
    lab.kubectl(&["patch", "pdb", "postgres-pdb", "-p", r#"{"spec":{"minAvailable":2}}"#]);
    let report: Value = serde_json::from_str(&drain(&pg_node, true, false, false, 120_000).unwrap()).unwrap();
    assert_eq!(report["evicted"], json!(["default/postgres-cluster-1"]), "{report}");
    let now = lab.kubectl_raw(&["get", "pod", "postgres-cluster-1", "-o", "jsonpath={.metadata.uid}"]);
    assert_ne!(stdout(&now).trim(), uid, "gone or replaced when drain returns");
    lab.block(kube.set_unschedulable(&pg_node, false)).unwrap();
    assert_eq!(drain("no-such-node", true, true, true, 1000).unwrap_err().code, ErrorCode::NotFound);
}

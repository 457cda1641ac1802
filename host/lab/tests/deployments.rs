//! Deployments of the lab's web application over a real lab (the daemon
//! in-process), driven with kubectl as an independent client: rollouts that
//! `kubectl rollout status` follows, real HTTP to each Pod's address, rolling
//! updates that keep enough Pods Ready, and misbehaviour asked for by env vars.
//! Each lab has its own loopback subnet (140-142).

mod common;

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::process::Output;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use runner_lab::client::LabClient;
use runner_lab::controllers::{pod_ready, terminating, webapp};
use runner_lab::daemon::{self, LabDir};
use runner_lab::topology::Topology;
use serde_json::Value;

/// How long a rollout of a few web Pods may take on a busy machine.
const ROLLOUT: Duration = Duration::from_secs(120);

struct TestLab {
    _root: tempfile::TempDir,
    dir: LabDir,
    client: LabClient,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
}

impl TestLab {
    /// A lab with Nodes and no databases on `subnet`, its API server up.
    async fn up(subnet: u8) -> TestLab {
        let root = tempfile::Builder::new().prefix("lab-deployments-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = LabDir::new(root.path());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let topology = Topology { nodes_per_pool: 2, postgres: false, redis: false, mongo: false, ..Topology::default() };
        let task = tokio::spawn(daemon::serve(dir.clone(), topology, subnet, async {
            let _ = stopped.await;
        }));
        let started = Instant::now();
        let client = loop {
            if let Ok(client) = LabClient::new(&dir)
                && client.alive().await
            {
                break client;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the lab's API server did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        TestLab { _root: root, dir, client, stop, task }
    }

    async fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> Output {
        use tokio::io::AsyncWriteExt;
        let mut child = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.root.join("kube-cache"))
            .args(args)
            .env("HOME", &self.dir.root)
            .env_remove("KUBECONFIG")
            .stdin(if stdin.is_some() { std::process::Stdio::piped() } else { std::process::Stdio::null() })
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("kubectl must be installed");
        if let Some(input) = stdin {
            let mut writer = child.stdin.take().unwrap();
            writer.write_all(input.as_bytes()).await.unwrap();
        }
        tokio::time::timeout(ROLLOUT + Duration::from_secs(10), child.wait_with_output())
            .await
            .unwrap_or_else(|_| panic!("kubectl {args:?} did not finish"))
            .unwrap()
    }

    /// Runs kubectl, asserts success and returns stdout.
    async fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args, None).await;
        assert!(out.status.success(), "kubectl {args:?}: {}{}", common::text(&out.stdout), common::text(&out.stderr));
        common::text(&out.stdout)
    }

    async fn apply(&self, manifest: &str) -> String {
        let out = self.kubectl_output(&["apply", "-f", "-"], Some(manifest)).await;
        assert!(out.status.success(), "kubectl apply: {}{}", common::text(&out.stdout), common::text(&out.stderr));
        common::text(&out.stdout)
    }

    /// `kubectl rollout status` until the rollout completes.
    async fn rollout_status(&self, deployment: &str) {
        let started = Instant::now();
        let out = self.kubectl(&["rollout", "status", &format!("deployment/{deployment}"), &format!("--timeout={}s", ROLLOUT.as_secs())]).await;
        assert!(out.contains(&format!("deployment \"{deployment}\" successfully rolled out")), "{out}");
        println!("rollout of {deployment} done in {:?}", started.elapsed());
    }

    /// The Pods of `app` that are not terminating.
    async fn pods(&self, app: &str) -> Vec<Value> {
        let pods = self.client.list(&format!("/api/v1/namespaces/default/pods?labelSelector=app%3D{app}")).await.unwrap();
        pods.into_iter().filter(|p| !terminating(p)).collect()
    }

    async fn replicasets(&self, app: &str) -> Vec<Value> {
        self.client.list(&format!("/apis/apps/v1/namespaces/default/replicasets?labelSelector=app%3D{app}")).await.unwrap()
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        if let Err(e) = self.task.await.expect("the lab task") {
            panic!("the lab stopped with an error: {e:#}");
        }
    }
}

fn webapp(name: &str, replicas: u32, version: &str, extra_spec: &str, env: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
{extra_spec}  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: runner-lab/webapp:{version}
        ports: [{{containerPort: 8080}}]
        env: [{env}]
"
    )
}

/// The address a Pod serves on.
fn address(pod: &Value) -> SocketAddr {
    let ip = pod["status"]["podIP"].as_str().unwrap_or_else(|| panic!("no podIP: {pod:#}"));
    SocketAddr::from((ip.parse::<std::net::Ipv4Addr>().unwrap(), 8080))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_rolling_update_of_the_webapp_keeps_enough_pods_ready() {
    const SUBNET: u8 = 140;
    let lab = TestLab::up(SUBNET).await;
    let out = lab.apply(&webapp("web", 3, "1.30", "", "")).await;
    assert!(out.contains("deployment.apps/web created"), "{out}");
    lab.rollout_status("web").await;

    let pods = lab.pods("web").await;
    assert_eq!(pods.len(), 3, "{pods:#?}");
    for pod in &pods {
        assert!(pod_ready(pod), "{pod:#}");
        let name = pod["metadata"]["name"].as_str().unwrap();
        let hash = pod["metadata"]["labels"]["pod-template-hash"].as_str().expect("pods carry the template hash");
        assert!(name.starts_with(&format!("web-{hash}-")) && name.len() == format!("web-{hash}-").len() + 5, "{name}");
        assert!(address(pod).ip().to_string().starts_with(&format!("127.{SUBNET}.1.")), "{pod:#}");
        assert_eq!(webapp::get(address(pod), "/version").await.unwrap(), (200, "1.30".to_string()));
        let (status, body) = webapp::get(address(pod), "/").await.unwrap();
        let body: Value = serde_json::from_str(&body).unwrap();
        assert_eq!((status, body["pod"].as_str(), body["version"].as_str()), (200, Some(name), Some("1.30")));
    }
    let table = lab.kubectl(&["get", "deployment", "web"]).await;
    assert!(table.contains("3/3"), "{table}");

    // Watch every Pod through the rollout: with maxSurge 25% (1) and maxUnavailable 25% (0) of 3,
    // three Ready Pods at every moment.
    let deployment: Value = serde_json::from_str(&lab.kubectl(&["get", "deployment", "web", "-o", "json"]).await).unwrap();
    assert_eq!(deployment["spec"]["strategy"]["rollingUpdate"]["maxSurge"], "25%", "defaulted");
    let (replicas, max_unavailable) = (3, 0);
    let min_ready = replicas - max_unavailable;
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (client, watching) = (LabClient::new(&lab.dir).unwrap(), watching.clone());
        tokio::spawn(async move {
            let (mut fewest, mut most, mut looks) = (usize::MAX, 0, 0);
            while watching.load(Ordering::Relaxed) {
                let pods = client.list("/api/v1/namespaces/default/pods?labelSelector=app%3Dweb").await.unwrap();
                // Terminating Pods count for neither bound, as upstream's maxSurge does not count them.
                let live: Vec<&Value> = pods.iter().filter(|p| !terminating(p)).collect();
                let ready = live.iter().filter(|p| pod_ready(p)).count();
                (fewest, most, looks) = (fewest.min(ready), most.max(live.len()), looks + 1);
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            (fewest, most, looks)
        })
    };
    lab.kubectl(&["set", "image", "deployment/web", "web=runner-lab/webapp:1.31"]).await;
    lab.rollout_status("web").await;
    watching.store(false, Ordering::Relaxed);
    let (fewest, most, looks) = watcher.await.unwrap();
    println!("during the rollout: at least {fewest} Ready, at most {most} Pods, {looks} looks");
    assert!(fewest >= min_ready, "the rollout went down to {fewest} Ready Pods (at least {min_ready} wanted)");
    assert!(most <= 3 + 1, "more Pods than maxSurge allows: {most}");

    let pods = lab.pods("web").await;
    assert_eq!(pods.len(), 3, "{pods:#?}");
    for pod in &pods {
        assert_eq!(webapp::get(address(pod), "/version").await.unwrap(), (200, "1.31".to_string()), "{}", pod["metadata"]["name"]);
    }
    let sets = lab.replicasets("web").await;
    assert_eq!(sets.len(), 2, "the old ReplicaSet is kept for a rollback: {sets:#?}");
    let revision = |rs: &Value| rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"].as_str().unwrap_or_default().to_string();
    let old = sets.iter().find(|rs| revision(rs) == "1").expect("revision 1");
    let new = sets.iter().find(|rs| revision(rs) == "2").expect("revision 2");
    assert_eq!((old["spec"]["replicas"].as_i64(), old["status"]["replicas"].as_i64()), (Some(0), Some(0)), "{old:#}");
    assert_eq!(new["spec"]["replicas"], 3);
    assert_eq!(new["metadata"]["ownerReferences"][0]["kind"], "Deployment");
    let deployment: Value = serde_json::from_str(&lab.kubectl(&["get", "deployment", "web", "-o", "json"]).await).unwrap();
    let status = &deployment["status"];
    assert_eq!(status["observedGeneration"], deployment["metadata"]["generation"]);
    assert_eq!((status["replicas"].as_i64(), status["updatedReplicas"].as_i64(), status["availableReplicas"].as_i64()), (Some(3), Some(3), Some(3)));
    let progressing = status["conditions"].as_array().unwrap().iter().find(|c| c["type"] == "Progressing").unwrap();
    assert_eq!(progressing["reason"], "NewReplicaSetAvailable", "{status:#}");

    // Scale and restart, as operators do.
    lab.kubectl(&["scale", "deployment", "web", "--replicas=4"]).await;
    lab.rollout_status("web").await;
    assert_eq!(lab.pods("web").await.len(), 4);
    lab.kubectl(&["rollout", "restart", "deployment/web"]).await;
    lab.rollout_status("web").await;
    let pods = lab.pods("web").await;
    assert_eq!(pods.len(), 4, "{pods:#?}");
    assert!(pods.iter().all(|p| !new["metadata"]["labels"]["pod-template-hash"].eq(&p["metadata"]["labels"]["pod-template-hash"])), "every Pod was replaced");
    let history = lab.kubectl(&["rollout", "history", "deployment/web"]).await;
    assert!(history.contains('3'), "{history}");
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_webapp_misbehaves_as_its_env_says() {
    let lab = TestLab::up(141).await;
    lab.apply(&webapp("flaky", 1, "2.0", "", r#"{name: FAIL_PERCENT, value: "50"}"#)).await;
    lab.apply(&webapp("slow", 1, "2.0", "", r#"{name: DELAY_MS, value: "300"}"#)).await;
    lab.apply(&webapp("broken", 1, "2.0", "", r#"{name: FAIL_PERCENT, value: "half"}"#)).await;
    lab.rollout_status("flaky").await;
    lab.rollout_status("slow").await;

    let flaky = address(&lab.pods("flaky").await[0]);
    let mut failed = 0;
    for _ in 0..100 {
        let (status, _) = webapp::get(flaky, "/version").await.unwrap();
        assert!(status == 200 || status == 500, "{status}");
        failed += usize::from(status == 500);
    }
    assert!((40..=60).contains(&failed), "about half the requests fail: {failed} of 100");
    assert!(webapp::healthy(flaky).await, "the probe is never failed");

    let slow = address(&lab.pods("slow").await[0]);
    let started = Instant::now();
    assert_eq!(webapp::get(slow, "/version").await.unwrap().0, 200);
    assert!(started.elapsed() >= Duration::from_millis(300), "{:?}", started.elapsed());

    // An unreadable FAIL_PERCENT is a clear error on the Pod, not a server.
    let started = Instant::now();
    let reason = loop {
        let pods = lab.pods("broken").await;
        let waiting = pods.first().map(|p| p["status"]["containerStatuses"][0]["state"]["waiting"].clone()).unwrap_or_default();
        if !waiting.is_null() {
            break waiting;
        }
        assert!(started.elapsed() < ROLLOUT, "the broken Pod never reported why it does not run: {pods:#?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(reason["reason"], "CreateContainerConfigError", "{reason}");
    assert!(reason["message"].as_str().unwrap().contains("FAIL_PERCENT"), "{reason}");

    // Deleting the Pod stops its server; the ReplicaSet brings a new one.
    let pod = lab.pods("slow").await.remove(0);
    let deleted = pod["metadata"]["name"].as_str().unwrap();
    lab.kubectl(&["delete", "pod", deleted]).await;
    // Its address may already serve the replacement (addresses are reused), never the deleted Pod.
    if let Ok((_, body)) = webapp::get(slow, "/").await {
        assert_ne!(serde_json::from_str::<Value>(&body).unwrap()["pod"], deleted, "the deleted Pod's server still answers");
    }
    lab.rollout_status("slow").await;
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_recreate_deployment_never_runs_two_versions() {
    let lab = TestLab::up(142).await;
    lab.apply(&webapp("batch", 2, "1.0", "  strategy: {type: Recreate}\n", "")).await;
    lab.rollout_status("batch").await;
    let watching = Arc::new(AtomicBool::new(true));
    let watcher = {
        let (client, watching) = (LabClient::new(&lab.dir).unwrap(), watching.clone());
        tokio::spawn(async move {
            let mut mixed = None;
            while watching.load(Ordering::Relaxed) {
                let pods = client.list("/api/v1/namespaces/default/pods?labelSelector=app%3Dbatch").await.unwrap();
                let mut images: Vec<&str> = pods.iter().filter_map(|p| p["spec"]["containers"][0]["image"].as_str()).collect();
                images.sort_unstable();
                images.dedup();
                if images.len() > 1 {
                    mixed = Some(images.iter().map(|i| i.to_string()).collect::<Vec<_>>());
                }
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            mixed
        })
    };
    lab.kubectl(&["set", "image", "deployment/batch", "web=runner-lab/webapp:1.1"]).await;
    lab.rollout_status("batch").await;
    watching.store(false, Ordering::Relaxed);
    assert_eq!(watcher.await.unwrap(), None, "old and new Pods at once");
    for pod in lab.pods("batch").await {
        assert_eq!(webapp::get(address(&pod), "/version").await.unwrap().1, "1.1");
    }
    lab.stop().await;
}

/// Bad Deployments are refused with the API server's own words, and kubectl finds the kinds.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_deployments_are_refused() {
    let lab = common::Lab::start().await;
    let out = lab.ok(&["api-resources", "--api-group=apps"]).await;
    for row in [["deployments", "deploy", "apps/v1", "true", "Deployment"], ["replicasets", "rs", "apps/v1", "true", "ReplicaSet"]] {
        assert!(out.lines().any(|l| l.split_whitespace().collect::<Vec<_>>() == row), "{row:?} not in {out}");
    }
    let cases = [
        ("  strategy: {rollingUpdate: {maxSurge: 0, maxUnavailable: 0}}\n", "may not be 0 when `maxSurge` is 0"),
        ("  strategy: {type: Recreate, rollingUpdate: {maxSurge: 1}}\n", "may not be specified when strategy `type` is 'Recreate'"),
        ("  strategy: {type: Sometimes}\n", "Unsupported value: \"Sometimes\""),
        ("  strategy: {rollingUpdate: {maxSurge: \"lots\"}}\n", "a valid percent string"),
        ("  revisionHistoryLimit: -1\n", "spec.revisionHistoryLimit"),
    ];
    for (spec, message) in cases {
        let out = lab.kubectl_with_stdin(&["apply", "-f", "-"], Some(&webapp("bad", 1, "1", spec, ""))).await;
        let stderr = common::text(&out.stderr);
        assert!(!out.status.success() && stderr.contains(message), "{spec}: {stderr}");
    }
    let mismatched = webapp("bad", 1, "1", "", "").replace("labels: {app: bad}", "labels: {app: other}");
    let out = lab.kubectl_with_stdin(&["apply", "-f", "-"], Some(&mismatched)).await;
    assert!(common::text(&out.stderr).contains("`selector` does not match template `labels`"), "{}", common::text(&out.stderr));
    lab.stop().await;
}

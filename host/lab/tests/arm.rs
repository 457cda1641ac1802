//! The lab's AKS (Azure Resource Manager) emulation, driven by independent
//! clients: `curl` for ARM (HTTPS with the lab's CA and the ARM token from
//! `arm.json`), `kubectl` for the Kubernetes side. Each test runs a lab
//! daemon in-process with a real PostgreSQL StatefulSet, on its own
//! loopback subnet (150-159), and a short lab minute.

use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use runner_lab::arm::ArmConfig;
use runner_lab::client::LabClient;
use runner_lab::daemon::{self, LabDir};
use runner_lab::ops;
use runner_lab::topology::Topology;
use serde_json::{Value, json};

const READY: Duration = Duration::from_secs(240);
const API: &str = "api-version=2024-09-01";

struct TestLab {
    _root: tempfile::TempDir,
    dir: LabDir,
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    task: Option<tokio::task::JoinHandle<anyhow::Result<()>>>,
    client: LabClient,
    arm: ArmConfig,
}

struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Value,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }
}

async fn start(dir: &LabDir, topology: Topology, subnet: u8) -> (tokio::sync::oneshot::Sender<()>, tokio::task::JoinHandle<anyhow::Result<()>>, LabClient) {
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let task = tokio::spawn(daemon::serve(dir.clone(), topology, subnet, async {
        let _ = stopped.await;
    }));
    let started = Instant::now();
    let client = loop {
        if let Ok(client) = LabClient::new(dir)
            && client.alive().await
        {
            break client;
        }
        assert!(started.elapsed() < Duration::from_secs(30), "the lab's API server did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ops::wait_ready(&client, READY).await.unwrap();
    (stop, task, client)
}

impl TestLab {
    /// A fresh single-pool lab.
    async fn up(subnet: u8, minute: Duration) -> TestLab {
        // The database processes run as the postgres user when the tests run as root.
        let root = tempfile::Builder::new().prefix("lab-arm-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = LabDir::new(root.path());
        let topology = Topology { single_pool: true, lab_minute: minute, ..Topology::default() };
        let (stop, task, client) = start(&dir, topology, subnet).await;
        let arm = dir.read_arm_config().expect("arm.json is written at start");
        TestLab { _root: root, dir, stop: Some(stop), task: Some(task), client, arm }
    }

    async fn down(&mut self) {
        if let Some(stop) = self.stop.take() {
            stop.send(()).unwrap();
        }
        if let Some(task) = self.task.take() {
            task.await.unwrap().unwrap();
        }
    }

    async fn restart(&mut self, subnet: u8, minute: Duration) {
        self.down().await;
        let topology = Topology { single_pool: true, lab_minute: minute, ..Topology::default() };
        let (stop, task, client) = start(&self.dir, topology, subnet).await;
        (self.stop, self.task, self.client) = (Some(stop), Some(task), client);
        self.arm = self.dir.read_arm_config().unwrap();
    }

    fn cluster_path(&self) -> String {
        format!("/subscriptions/{}/resourceGroups/runner-lab/providers/Microsoft.ContainerService/managedClusters/lab", self.arm.subscription_id)
    }

    /// `curl` with the lab's CA, `token` (None: no Authorization header), a
    /// JSON body; the status, headers and JSON body (Null when empty).
    async fn curl(&self, method: &str, url: &str, body: Option<&Value>, token: Option<&str>) -> Answer {
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "-X", method, "-D", "-", "--cacert"]).arg(&self.arm.ca_file).args(["-H", "Content-Type: application/json"]);
        if let Some(token) = token {
            cmd.args(["-H", &format!("Authorization: Bearer {token}")]);
        }
        if let Some(body) = body {
            cmd.args(["--data-binary", &body.to_string()]);
        }
        let out = cmd.arg(url).env_remove("http_proxy").env_remove("https_proxy").output().await.expect("curl must be installed");
        assert!(out.status.success(), "curl {method} {url}: {}", String::from_utf8_lossy(&out.stderr));
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
        let mut lines = head.lines();
        let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
        let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
        let body =
            if body.trim().is_empty() { Value::Null } else { serde_json::from_str(body).unwrap_or_else(|e| panic!("{method} {url}: not JSON ({e}): {body}")) };
        Answer { status, headers, body }
    }

    /// An ARM call on the cluster's path + `rest`, with the token and an api-version.
    async fn arm(&self, method: &str, rest: &str, body: Option<&Value>) -> Answer {
        let token = std::fs::read_to_string(&self.arm.token_file).unwrap();
        let sep = if rest.contains('?') { '&' } else { '?' };
        self.curl(method, &format!("{}{}{rest}{sep}{API}", self.arm.endpoint, self.cluster_path()), body, Some(token.trim())).await
    }

    /// Follows an accepted operation's Azure-AsyncOperation URL to its end; the final status document.
    async fn wait_operation(&self, accepted: &Answer, within: Duration) -> Value {
        let url = accepted.header("Azure-AsyncOperation").unwrap_or_else(|| panic!("no Azure-AsyncOperation header: {:?}", accepted.headers)).to_string();
        let token = std::fs::read_to_string(&self.arm.token_file).unwrap();
        let started = Instant::now();
        loop {
            let status = self.curl("GET", &url, None, Some(token.trim())).await;
            assert_eq!(status.status, 200, "{:?}", status.body);
            if status.body["status"] != "InProgress" {
                return status.body;
            }
            assert!(started.elapsed() < within, "the operation still runs after {within:?}: {}", status.body);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    async fn kubectl(&self, args: &[&str]) -> String {
        let out = tokio::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(self.dir.kubeconfig())
            .arg("--cache-dir")
            .arg(self.dir.root.join("kube-cache"))
            .args(args)
            .env("HOME", &self.dir.root)
            .env_remove("KUBECONFIG")
            .kill_on_drop(true)
            .output()
            .await
            .expect("kubectl must be installed");
        assert!(out.status.success(), "kubectl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    async fn kubectl_json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.extend(["-o", "json"]);
        serde_json::from_str(&self.kubectl(&all).await).unwrap()
    }

    async fn nodes(&self) -> Vec<Value> {
        self.kubectl_json(&["get", "nodes"]).await["items"].as_array().cloned().unwrap_or_default()
    }

    async fn postgres_pods(&self) -> Vec<Value> {
        self.kubectl_json(&["get", "pods", "-l", "app=postgres"]).await["items"].as_array().cloned().unwrap_or_default()
    }

    async fn events(&self) -> Vec<Value> {
        self.kubectl_json(&["get", "events", "--field-selector", "source=upgrader"]).await["items"].as_array().cloned().unwrap_or_default()
    }
}

fn name(o: &Value) -> &str {
    o["metadata"]["name"].as_str().unwrap_or_default()
}

fn ready(o: &Value) -> bool {
    o["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

/// The upgrader Events of one Node, in order, as (reason, eventTime).
fn timeline<'a>(events: &'a [Value], node: &str) -> Vec<(&'a str, &'a str)> {
    let mut of: Vec<&Value> = events.iter().filter(|e| e["involvedObject"]["name"] == node && e["involvedObject"]["kind"] == "Node").collect();
    of.sort_by_key(|e| e["eventTime"].as_str().unwrap_or_default().to_string());
    of.iter().map(|e| (e["reason"].as_str().unwrap_or_default(), e["eventTime"].as_str().unwrap_or_default())).collect()
}

fn position(line: &[(&str, &str)], reason: &str) -> usize {
    line.iter().position(|(r, _)| *r == reason).unwrap_or_else(|| panic!("no {reason} in {line:?}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn control_plane_then_pool_upgrade_with_surge_then_node_image_in_place() {
    const SUBNET: u8 = 150;
    let mut lab = TestLab::up(SUBNET, Duration::from_secs(1)).await;
    assert!(lab.arm.endpoint.starts_with("https://127.0.0.1:"), "{:?}", lab.arm);
    assert_eq!((lab.arm.resource_group.as_str(), lab.arm.cluster_name.as_str(), lab.arm.location.as_str()), ("runner-lab", "lab", "eastus"));
    let mode = std::fs::metadata(&lab.arm.token_file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600, "the ARM token is private");
    let arm_token = std::fs::read_to_string(&lab.arm.token_file).unwrap();
    assert_ne!(arm_token.trim(), lab.dir.token().unwrap(), "its own token, not the Kubernetes one");

    // Authentication, api-version.
    let url = format!("{}{}?{API}", lab.arm.endpoint, lab.cluster_path());
    let anonymous = lab.curl("GET", &url, None, None).await;
    assert_eq!((anonymous.status, anonymous.body["error"]["code"].as_str()), (401, Some("InvalidAuthenticationToken")), "{:?}", anonymous.body);
    let wrong = lab.curl("GET", &url, None, Some("not-the-token")).await;
    assert_eq!((wrong.status, wrong.body["error"]["code"].as_str()), (401, Some("InvalidAuthenticationToken")));
    let k8s_token = lab.curl("GET", &url, None, Some(&lab.dir.token().unwrap())).await;
    assert_eq!(k8s_token.status, 401, "the Kubernetes token does not open ARM");
    let no_version = lab.curl("GET", &format!("{}{}", lab.arm.endpoint, lab.cluster_path()), None, Some(arm_token.trim())).await;
    assert_eq!((no_version.status, no_version.body["error"]["code"].as_str()), (400, Some("MissingApiVersionParameter")));
    let other = lab.arm("GET", "/agentPools/nopool", None).await;
    assert_eq!(other.status, 404, "{:?}", other.body);

    // The single-pool layout: the control plane and nodepool1 at 1.29.9.
    let cluster = lab.arm("GET", "", None).await;
    assert_eq!(cluster.status, 200);
    assert_eq!(cluster.body["properties"]["currentKubernetesVersion"], "1.29.9", "{}", cluster.body);
    assert_eq!(cluster.body["properties"]["agentPoolProfiles"].as_array().unwrap().len(), 1);
    assert!(lab.kubectl(&["version"]).await.contains("Server Version: v1.29.9"));
    let profile = lab.arm("GET", "/upgradeProfiles/default", None).await.body;
    assert_eq!(profile["properties"]["controlPlaneProfile"]["upgrades"][0]["kubernetesVersion"], "1.30.5", "{profile}");
    assert_eq!(profile["properties"]["agentPoolProfiles"][0]["upgrades"], json!([]), "a pool never passes the control plane");
    let too_new = lab.arm("PUT", "/agentPools/nodepool1", Some(&json!({"properties": {"orchestratorVersion": "1.30.5"}}))).await;
    assert_eq!((too_new.status, too_new.body["error"]["code"].as_str()), (400, Some("NodePoolMcVersionIncompatible")), "{:?}", too_new.body);
    let skip = lab.arm("PUT", "", Some(&json!({"location": "eastus", "properties": {"kubernetesVersion": "1.31.2"}}))).await;
    assert_eq!(skip.status, 400, "no minor is skipped: {:?}", skip.body);

    // Faults from the ConfigMap: deprecated APIs block upgrades; throttling.
    lab.kubectl(&[
        "create",
        "configmap",
        "runner-lab-arm",
        "-n",
        "kube-system",
        "--from-literal=block-upgrades=usage has been detected on API policy.v1beta1.poddisruptionbudgets",
    ])
    .await;
    let blocked = lab.arm("PUT", "", Some(&json!({"properties": {"kubernetesVersion": "1.30.5"}}))).await;
    assert_eq!((blocked.status, blocked.body["error"]["code"].as_str()), (400, Some("UpgradeBlockedOnDeprecatedAPIUsage")), "{:?}", blocked.body);
    assert!(blocked.body["error"]["message"].as_str().unwrap().contains("policy.v1beta1.poddisruptionbudgets"));
    lab.kubectl(&["delete", "configmap", "runner-lab-arm", "-n", "kube-system"]).await;
    lab.kubectl(&["create", "configmap", "runner-lab-arm", "-n", "kube-system", "--from-literal=throttle=2"]).await;
    for _ in 0..2 {
        let throttled = lab.arm("GET", "", None).await;
        assert_eq!((throttled.status, throttled.body["error"]["code"].as_str()), (429, Some("TooManyRequests")));
        assert_eq!(throttled.header("Retry-After"), Some("1"));
    }
    assert_eq!(lab.arm("GET", "", None).await.status, 200, "only the next 2 requests are throttled");

    // The control plane to 1.30.5: long-running, then `kubectl version` says so.
    let accepted = lab.arm("PUT", "", Some(&json!({"location": "eastus", "properties": {"kubernetesVersion": "1.30.5"}}))).await;
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
    assert_eq!(accepted.body["properties"]["provisioningState"], "Upgrading");
    assert!(accepted.header("Location").is_some_and(|l| l.contains("/locations/eastus/operationresults/")), "{:?}", accepted.headers);
    assert!(accepted.header("Retry-After").is_some());
    let busy = lab.arm("PUT", "/agentPools/nodepool1", Some(&json!({"properties": {"upgradeSettings": {"maxSurge": "1"}}}))).await;
    assert_eq!((busy.status, busy.body["error"]["code"].as_str()), (409, Some("OperationNotAllowed")), "{:?}", busy.body);
    let done = lab.wait_operation(&accepted, Duration::from_secs(30)).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    assert!(done["endTime"].is_string() && done["percentComplete"] == 100.0, "{done}");
    assert!(lab.kubectl(&["version"]).await.contains("Server Version: v1.30.5"));
    let result = lab.curl("GET", accepted.header("Location").unwrap(), None, Some(arm_token.trim())).await;
    assert_eq!((result.status, result.body["properties"]["currentKubernetesVersion"].as_str()), (200, Some("1.30.5")));

    // nodepool1 to 1.30.5 with surge (default 10% of 3: one Node at a time).
    let old: Vec<String> = lab.nodes().await.iter().map(|n| name(n).to_string()).collect();
    assert_eq!(old, ["aks-nodepool1-12345678-vmss000000", "aks-nodepool1-12345678-vmss000001", "aks-nodepool1-12345678-vmss000002"]);
    let pools = lab.arm("GET", "/agentPools", None).await.body;
    let mut pool = pools["value"][0].clone();
    assert_eq!(pool["properties"]["orchestratorVersion"], "1.29.9");
    pool["properties"]["orchestratorVersion"] = json!("1.30.5");
    let accepted = lab.arm("PUT", "/agentPools/nodepool1", Some(&pool)).await;
    assert_eq!((accepted.status, accepted.body["properties"]["provisioningState"].as_str()), (200, Some("Upgrading")), "{:?}", accepted.body);
    let busy = lab.arm("POST", "/agentPools/nodepool1/upgradeNodeImageVersion", None).await;
    assert_eq!((busy.status, busy.body["error"]["code"].as_str()), (409, Some("OperationNotAllowed")), "{:?}", busy.body);
    assert!(busy.body["error"]["message"].as_str().unwrap().contains("nodepool1"));
    let busy = lab.arm("PUT", "", Some(&json!({"properties": {"kubernetesVersion": "1.31.2"}}))).await;
    assert_eq!(busy.status, 409, "the control plane waits for the pool: {:?}", busy.body);
    let done = lab.wait_operation(&accepted, Duration::from_secs(300)).await;
    assert_eq!(done["status"], "Succeeded", "{done}");

    let nodes = lab.nodes().await;
    let names: Vec<&str> = nodes.iter().map(name).collect();
    assert_eq!(
        names,
        ["aks-nodepool1-12345678-vmss000003", "aks-nodepool1-12345678-vmss000004", "aks-nodepool1-12345678-vmss000005"],
        "old Nodes gone, numbering goes on"
    );
    for node in &nodes {
        assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.30.5", "{}", name(node));
        assert!(ready(node) && node["spec"]["unschedulable"] != true, "{}", name(node));
        assert_eq!(node["metadata"]["labels"]["kubernetes.azure.com/agentpool"], "nodepool1");
    }
    let deadline = Instant::now() + READY;
    loop {
        let pods = lab.postgres_pods().await;
        let placed = pods.iter().filter(|p| ready(p) && names.contains(&p["spec"]["nodeName"].as_str().unwrap_or_default())).count();
        if placed == 3 {
            break;
        }
        assert!(Instant::now() < deadline, "the PostgreSQL Pods are not all Running on the new Nodes: {pods:#?}");
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let pool = lab.arm("GET", "/agentPools/nodepool1", None).await.body;
    assert_eq!(pool["properties"]["currentOrchestratorVersion"], "1.30.5");
    assert_eq!(pool["properties"]["provisioningState"], "Succeeded");

    // Each Node's drain timeline from the Events.
    let events = lab.events().await;
    for node in &old {
        let line = timeline(&events, node);
        let (drain, evict, delete) = (position(&line, "Drain"), position(&line, "Evict"), position(&line, "Delete"));
        assert!(drain < evict && evict < delete, "{node}: {line:?}");
    }
    for node in &names {
        let line = timeline(&events, node);
        assert!(position(&line, "Surge") < position(&line, "NodeReady"), "{node}: {line:?}");
    }
    println!("{}: {:?}", old[0], timeline(&events, &old[0]));
    println!("{}: {:?}", names[0], timeline(&events, names[0]));
    let evicted = events.iter().filter(|e| e["reason"] == "Evict").count();
    assert!(evicted >= 3, "one Event per evicted Pod: {evicted}");

    // A node-image upgrade in place (maxSurge 0, maxUnavailable 1): names stay, the image and kernel change.
    let settings = json!({"properties": {"upgradeSettings": {"maxSurge": "0", "maxUnavailable": "1"}}});
    let updated = lab.arm("PUT", "/agentPools/nodepool1", Some(&settings)).await;
    assert_eq!(updated.status, 200, "{:?}", updated.body);
    assert_eq!(lab.wait_operation(&updated, Duration::from_secs(10)).await["status"], "Succeeded");
    let profile = lab.arm("GET", "/agentPools/nodepool1/upgradeProfiles/default", None).await.body;
    let latest = profile["properties"]["latestNodeImageVersion"].as_str().unwrap().to_string();
    assert_eq!(latest, "AKSUbuntu-2204gen2containerd-202411.12.0");
    assert_ne!(lab.arm("GET", "/agentPools/nodepool1", None).await.body["properties"]["nodeImageVersion"], json!(latest));
    assert!(lab.nodes().await.iter().all(|n| n["status"]["nodeInfo"]["kernelVersion"] == "5.15.0-1073-azure"), "the old image's kernel before");
    let accepted = lab.arm("POST", "/agentPools/nodepool1/upgradeNodeImageVersion", None).await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    let done = lab.wait_operation(&accepted, Duration::from_secs(300)).await;
    assert_eq!(done["status"], "Succeeded", "{done}");
    let nodes = lab.nodes().await;
    assert_eq!(nodes.iter().map(name).collect::<Vec<_>>(), names, "replaced in place");
    for node in &nodes {
        assert_eq!(node["metadata"]["labels"]["kubernetes.azure.com/node-image-version"], json!(latest));
        assert_eq!(node["status"]["nodeInfo"]["kernelVersion"], "5.15.0-1074-azure");
        assert_eq!(node["status"]["nodeInfo"]["osImage"], "Ubuntu 22.04.5 LTS");
        assert_eq!(node["status"]["nodeInfo"]["kubeletVersion"], "v1.30.5", "the kubelet version stays");
    }
    assert_eq!(lab.arm("GET", "/agentPools/nodepool1", None).await.body["properties"]["nodeImageVersion"], json!(latest));

    // State survives a restart; an operation a restart cuts off ends Failed, saying so.
    let port = lab.arm.endpoint.clone();
    let accepted = lab.arm("PUT", "", Some(&json!({"properties": {"kubernetesVersion": "1.31.2"}}))).await;
    assert_eq!(accepted.status, 200, "{:?}", accepted.body);
    lab.restart(SUBNET, Duration::from_secs(1)).await;
    assert_eq!(lab.arm.endpoint, port, "the ARM port is kept");
    let done = lab.wait_operation(&accepted, Duration::from_secs(5)).await;
    assert_eq!(done["status"], "Failed", "{done}");
    assert!(done["error"]["message"].as_str().unwrap().contains("stopped"), "{done}");
    let cluster = lab.arm("GET", "", None).await.body;
    assert_eq!(cluster["properties"]["currentKubernetesVersion"], "1.30.5");
    assert!(lab.kubectl(&["version"]).await.contains("Server Version: v1.30.5"));
    assert_eq!(lab.arm("GET", "/agentPools/nodepool1", None).await.body["properties"]["currentOrchestratorVersion"], "1.30.5");
    lab.down().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn blocked_drains_fail_or_quarantine_and_pools_come_and_go() {
    const SUBNET: u8 = 151;
    // One AKS minute is 2 s here: drainTimeoutInMinutes 1 gives up after 2 s.
    let mut lab = TestLab::up(SUBNET, Duration::from_secs(2)).await;

    // No Pod of the StatefulSet may go: every drain is refused by the budget.
    lab.kubectl(&["patch", "pdb", "postgres-pdb", "--type", "merge", "-p", r#"{"spec":{"minAvailable":3}}"#]).await;
    let before: Vec<(String, String)> =
        lab.postgres_pods().await.iter().map(|p| (name(p).to_string(), p["metadata"]["uid"].as_str().unwrap().to_string())).collect();
    let settings = json!({"properties": {"upgradeSettings": {"maxSurge": "1", "drainTimeoutInMinutes": 1}}});
    let updated = lab.arm("PUT", "/agentPools/nodepool1", Some(&settings)).await;
    assert_eq!(lab.wait_operation(&updated, Duration::from_secs(10)).await["status"], "Succeeded");
    let accepted = lab.arm("POST", "/agentPools/nodepool1/upgradeNodeImageVersion", None).await;
    assert_eq!(accepted.status, 202);
    assert_eq!(lab.arm("GET", "/agentPools/nodepool1", None).await.body["properties"]["provisioningState"], "UpgradingNodeImageVersion");
    let done = lab.wait_operation(&accepted, Duration::from_secs(60)).await;
    assert_eq!(done["status"], "Failed", "{done}");
    assert_eq!(done["error"]["code"], "UpgradeFailed");
    let message = done["error"]["message"].as_str().unwrap();
    assert!(message.contains("blocked by pdb postgres-pdb") && message.contains("Drain node aks-nodepool1-12345678-vmss000000"), "{message}");
    assert!(message.contains("postgres-cluster-"), "names the Pod: {message}");
    let result = lab.curl("GET", accepted.header("Location").unwrap(), None, Some(std::fs::read_to_string(&lab.arm.token_file).unwrap().trim())).await;
    assert_eq!(result.body["error"]["code"], "UpgradeFailed", "the result URL answers the error");
    assert_eq!(lab.arm("GET", "/agentPools/nodepool1", None).await.body["properties"]["provisioningState"], "Failed");
    let after: Vec<(String, String)> =
        lab.postgres_pods().await.iter().map(|p| (name(p).to_string(), p["metadata"]["uid"].as_str().unwrap().to_string())).collect();
    assert_eq!(before, after, "the Pods were left where they were");
    let nodes = lab.nodes().await;
    assert_eq!(nodes.len(), 3, "the unused surge Node went: {:?}", nodes.iter().map(name).collect::<Vec<_>>());
    assert!(nodes.iter().all(|n| n["spec"]["unschedulable"] != true), "Schedule: the blocked Node takes Pods again");
    let events = lab.events().await;
    assert!(
        events.iter().any(|e| e["reason"] == "EvictionBlocked"
            && e["type"] == "Warning"
            && e["message"].as_str().unwrap().contains("PodDisruptionBudget default/postgres-pdb")),
        "an Event names the budget that blocked: {events:#?}"
    );

    // undrainableNodeBehavior Cordon: each blocked Node is quarantined and the operation goes on.
    let settings = json!({"properties": {"upgradeSettings": {"maxSurge": "1", "drainTimeoutInMinutes": 1, "undrainableNodeBehavior": "Cordon"}}});
    let updated = lab.arm("PUT", "/agentPools/nodepool1", Some(&settings)).await;
    assert_eq!(lab.wait_operation(&updated, Duration::from_secs(10)).await["status"], "Succeeded");
    let accepted = lab.arm("POST", "/agentPools/nodepool1/upgradeNodeImageVersion", None).await;
    let done = lab.wait_operation(&accepted, Duration::from_secs(120)).await;
    assert_eq!(done["status"], "Failed", "{done}");
    assert!(done["error"]["message"].as_str().unwrap().contains("quarantined"), "{done}");
    let nodes = lab.nodes().await;
    let quarantined: Vec<&str> = nodes.iter().filter(|n| n["metadata"]["labels"]["kubernetes.azure.com/upgrade-status"] == "Quarantined").map(name).collect();
    assert_eq!(
        quarantined,
        ["aks-nodepool1-12345678-vmss000000", "aks-nodepool1-12345678-vmss000001", "aks-nodepool1-12345678-vmss000002"],
        "every blocked Node, not one"
    );
    assert!(nodes.iter().filter(|n| quarantined.contains(&name(n))).all(|n| n["spec"]["unschedulable"] == true));
    assert_eq!(nodes.len(), 6, "a surge Node kept for each quarantined one");
    assert_eq!(before, lab.postgres_pods().await.iter().map(|p| (name(p).to_string(), p["metadata"]["uid"].as_str().unwrap().to_string())).collect::<Vec<_>>());

    // Pools: bad names, add one (Nodes with its labels, Ready), delete it (drained, gone).
    let bad = lab.arm("PUT", "/agentPools/User-Pool", Some(&json!({"properties": {"count": 1}}))).await;
    assert_eq!((bad.status, bad.body["error"]["code"].as_str()), (400, Some("InvalidParameter")), "{:?}", bad.body);
    let add = json!({"properties": {"count": 2, "orchestratorVersion": "1.29.9", "mode": "User", "nodeLabels": {"team": "db"}}});
    let accepted = lab.arm("PUT", "/agentPools/userpool", Some(&add)).await;
    assert_eq!((accepted.status, accepted.body["properties"]["provisioningState"].as_str()), (201, Some("Creating")), "{:?}", accepted.body);
    assert_eq!(lab.wait_operation(&accepted, Duration::from_secs(30)).await["status"], "Succeeded");
    let added = lab.kubectl_json(&["get", "nodes", "-l", "agentpool=userpool"]).await["items"].as_array().cloned().unwrap();
    assert_eq!(added.len(), 2);
    for node in &added {
        assert!(ready(node), "{node}");
        assert_eq!(node["metadata"]["labels"]["team"], "db");
        assert_eq!(node["metadata"]["labels"]["kubernetes.azure.com/agentpool"], "userpool");
        assert!(node["metadata"]["labels"]["kubernetes.azure.com/node-image-version"].is_string());
        assert!(name(node).starts_with("aks-userpool-") && (name(node).ends_with("vmss000000") || name(node).ends_with("vmss000001")), "{}", name(node));
    }
    assert_eq!(lab.arm("GET", "/agentPools", None).await.body["value"].as_array().unwrap().len(), 2);
    let accepted = lab.arm("DELETE", "/agentPools/userpool", None).await;
    assert_eq!(accepted.status, 202, "{:?}", accepted.body);
    assert_eq!(lab.wait_operation(&accepted, Duration::from_secs(30)).await["status"], "Succeeded");
    let result = lab.curl("GET", accepted.header("Location").unwrap(), None, Some(std::fs::read_to_string(&lab.arm.token_file).unwrap().trim())).await;
    assert_eq!(result.status, 204);
    assert!(lab.kubectl_json(&["get", "nodes", "-l", "agentpool=userpool"]).await["items"].as_array().unwrap().is_empty());
    assert_eq!(lab.arm("GET", "/agentPools/userpool", None).await.status, 404);
    let only_system = lab.arm("DELETE", "/agentPools/nodepool1", None).await;
    assert_eq!(only_system.status, 400, "the only system pool stays: {:?}", only_system.body);
    lab.down().await;
}

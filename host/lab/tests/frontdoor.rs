//! The lab's front door (a weighted HTTP reverse proxy on `127.N.3.1:8080`)
//! over a real lab in-process: two webapp Deployments, blue (1.29) and green
//! (1.30), each behind a Service, switched by an HTTPRoute patched with
//! kubectl and by a Traffic Manager profile driven over the lab's ARM
//! endpoint with curl (as tests/arm.rs does). Each lab has its own loopback
//! subnet (143-144).

use std::net::SocketAddr;
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use runner_lab::arm::ArmConfig;
use runner_lab::client::LabClient;
use runner_lab::daemon::{self, LabDir};
use runner_lab::topology::Topology;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

const ROLLOUT: Duration = Duration::from_secs(120);
const TM_API: &str = "api-version=2022-04-01";
/// How many requests a share is measured over.
const REQUESTS: usize = 200;

struct TestLab {
    _root: tempfile::TempDir,
    dir: LabDir,
    stop: tokio::sync::oneshot::Sender<()>,
    task: tokio::task::JoinHandle<anyhow::Result<()>>,
    arm: ArmConfig,
}

/// An HTTP answer: status, headers, body.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: String,
}

impl Answer {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
    }

    fn json(&self) -> Value {
        serde_json::from_str(&self.body).unwrap_or(Value::Null)
    }
}

impl TestLab {
    /// A lab with Nodes and no databases on `subnet`, blue and green rolled out behind their Services.
    async fn up(subnet: u8) -> TestLab {
        let root = tempfile::Builder::new().prefix("lab-frontdoor-").tempdir_in("/tmp").unwrap();
        std::fs::set_permissions(root.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
        let dir = LabDir::new(root.path());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let topology = Topology { nodes_per_pool: 2, postgres: false, redis: false, mongo: false, ..Topology::default() };
        let task = tokio::spawn(daemon::serve(dir.clone(), topology, subnet, async {
            let _ = stopped.await;
        }));
        let started = Instant::now();
        loop {
            if let Ok(client) = LabClient::new(&dir)
                && client.alive().await
            {
                break;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "the lab's API server did not come up");
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let arm = loop {
            if let Some(arm) = dir.read_arm_config() {
                break arm;
            }
            assert!(started.elapsed() < Duration::from_secs(30), "no arm.json");
            tokio::time::sleep(Duration::from_millis(100)).await;
        };
        let lab = TestLab { _root: root, dir, stop, task, arm };
        lab.apply(&format!("{}---\n{}", app("blue", 2, "1.29"), app("green", 1, "1.30"))).await;
        for name in ["blue", "green"] {
            let out = lab.kubectl(&["rollout", "status", &format!("deployment/{name}"), &format!("--timeout={}s", ROLLOUT.as_secs())]).await;
            assert!(out.contains("successfully rolled out"), "{out}");
        }
        lab
    }

    async fn kubectl_output(&self, args: &[&str], stdin: Option<&str>) -> std::process::Output {
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

    async fn kubectl(&self, args: &[&str]) -> String {
        let out = self.kubectl_output(args, None).await;
        assert!(out.status.success(), "kubectl {args:?}: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    async fn apply(&self, manifest: &str) -> String {
        let out = self.kubectl_output(&["apply", "-f", "-"], Some(manifest)).await;
        assert!(out.status.success(), "kubectl apply: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        String::from_utf8_lossy(&out.stdout).to_string()
    }

    /// The front door's address, from `<lab>/frontdoor`.
    fn frontdoor(&self) -> SocketAddr {
        let url = self.dir.frontdoor_url().expect("the lab writes <lab>/frontdoor");
        url.strip_prefix("http://").unwrap_or_else(|| panic!("{url}")).parse().unwrap()
    }

    /// `REQUESTS` GETs of `/version` through the front door: (backend, version) of each.
    async fn through_the_front_door(&self) -> Vec<(String, String)> {
        let mut seen = Vec::new();
        for _ in 0..REQUESTS {
            let answer = get(self.frontdoor(), "/version").await;
            assert_eq!(answer.status, 200, "{}", answer.body);
            seen.push((answer.header("x-runner-backend").expect("X-Runner-Backend").to_string(), answer.body));
        }
        seen
    }

    /// `curl` to ARM with the lab's CA and token; `if_match` sets If-Match.
    async fn arm(&self, method: &str, rest: &str, body: Option<&Value>, if_match: Option<&str>) -> Answer {
        let token = std::fs::read_to_string(&self.arm.token_file).unwrap();
        let url = format!(
            "{}/subscriptions/{}/resourceGroups/runner-lab/providers/Microsoft.Network/trafficManagerProfiles/{rest}?{TM_API}",
            self.arm.endpoint, self.arm.subscription_id
        );
        let mut cmd = tokio::process::Command::new("curl");
        cmd.args(["-sS", "-X", method, "-D", "-", "--cacert"]).arg(&self.arm.ca_file).args(["-H", "Content-Type: application/json"]);
        cmd.args(["-H", &format!("Authorization: Bearer {}", token.trim())]);
        if let Some(tag) = if_match {
            cmd.args(["-H", &format!("If-Match: {tag}")]);
        }
        if let Some(body) = body {
            cmd.args(["--data-binary", &body.to_string()]);
        }
        let out = cmd.arg(&url).env_remove("http_proxy").env_remove("https_proxy").output().await.expect("curl must be installed");
        assert!(out.status.success(), "curl {method} {url}: {}", String::from_utf8_lossy(&out.stderr));
        parse(&String::from_utf8_lossy(&out.stdout))
    }

    async fn stop(self) {
        self.stop.send(()).unwrap();
        if let Err(e) = self.task.await.expect("the lab task") {
            panic!("the lab stopped with an error: {e:#}");
        }
    }
}

/// A webapp Deployment and its Service (port 80 to the Pods' 8080).
fn app(name: &str, replicas: u32, version: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}}}
    spec:
      containers:
      - name: web
        image: runner-lab/webapp:{version}
        ports: [{{containerPort: 8080}}]
---
apiVersion: v1
kind: Service
metadata: {{name: {name}}}
spec:
  selector: {{app: {name}}}
  ports: [{{port: 80, targetPort: 8080}}]
"
    )
}

fn route(blue: u32, green: u32) -> String {
    format!(
        "apiVersion: gateway.networking.k8s.io/v1
kind: HTTPRoute
metadata: {{name: frontdoor}}
spec:
  hostnames: [frontdoor.lab]
  rules:
  - backendRefs:
    - {{name: blue, port: 80, weight: {blue}}}
    - {{name: green, port: 80, weight: {green}}}
"
    )
}

/// Splits a raw HTTP/1.1 answer (no chunking: the front door sends lengths).
fn parse(text: &str) -> Answer {
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((text, ""));
    let mut lines = head.lines();
    let status = lines.next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let headers = lines.filter_map(|l| l.split_once(':')).map(|(k, v)| (k.trim().to_string(), v.trim().to_string())).collect();
    Answer { status, headers, body: body.to_string() }
}

/// A plain HTTP/1.1 GET (connection closed after the answer).
async fn get(address: SocketAddr, path: &str) -> Answer {
    let mut stream = tokio::net::TcpStream::connect(address).await.unwrap_or_else(|e| panic!("connecting to the front door {address}: {e}"));
    stream.write_all(format!("GET {path} HTTP/1.1\r\nHost: frontdoor.lab\r\nConnection: close\r\n\r\n").as_bytes()).await.unwrap();
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).await.unwrap();
    parse(&String::from_utf8_lossy(&raw))
}

/// How many of `seen` went to `backend`, checking each answered its version.
fn count(seen: &[(String, String)], backend: &str) -> usize {
    for (b, version) in seen {
        let wanted = if b == "blue" { "1.29" } else { "1.30" };
        assert_eq!(version, wanted, "backend {b} answered version {version}");
    }
    seen.iter().filter(|(b, _)| b == backend).count()
}

/// Asserts a share of `REQUESTS` within ±5%.
fn about(n: usize, percent: usize, what: &str) {
    let wanted = REQUESTS * percent / 100;
    let slack = REQUESTS * 5 / 100;
    assert!(n.abs_diff(wanted) <= slack, "{what}: {n} of {REQUESTS}, wanted {wanted} ± {slack}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn an_httproute_switches_blue_to_green_through_the_front_door() {
    const SUBNET: u8 = 143;
    let lab = TestLab::up(SUBNET).await;
    assert_eq!(lab.frontdoor().to_string(), format!("127.{SUBNET}.3.1:8080"));
    let none = get(lab.frontdoor(), "/version").await;
    assert_eq!(none.status, 503, "nothing configured yet: {}", none.body);

    let out = lab.apply(&route(100, 0)).await;
    assert!(out.contains("httproute.gateway.networking.k8s.io/frontdoor created"), "{out}");
    let table = lab.kubectl(&["get", "httproutes"]).await;
    assert!(table.contains("frontdoor") && table.contains("frontdoor.lab"), "{table}");
    let seen = lab.through_the_front_door().await;
    assert_eq!(count(&seen, "blue"), REQUESTS, "100/0: all blue");

    let patch = |blue: u32, green: u32| {
        json!([
            {"op": "replace", "path": "/spec/rules/0/backendRefs/0/weight", "value": blue},
            {"op": "replace", "path": "/spec/rules/0/backendRefs/1/weight", "value": green},
        ])
        .to_string()
    };
    lab.kubectl(&["patch", "httproute", "frontdoor", "--type=json", "-p", &patch(50, 50)]).await;
    let seen = lab.through_the_front_door().await;
    about(count(&seen, "blue"), 50, "50/50 blue");
    about(count(&seen, "green"), 50, "50/50 green");

    lab.kubectl(&["patch", "httproute", "frontdoor", "--type=json", "-p", &patch(0, 100)]).await;
    let seen = lab.through_the_front_door().await;
    assert_eq!(count(&seen, "green"), REQUESTS, "0/100: all green");

    // A weight out of the CRD's range is refused.
    let refused = lab.kubectl_output(&["patch", "httproute", "frontdoor", "--type=json", "-p", &patch(0, 1_000_001)], None).await;
    assert!(!refused.status.success(), "weight 1000001 accepted");

    // The front door says it follows the route.
    let started = Instant::now();
    loop {
        let route: Value = serde_json::from_str(&lab.kubectl(&["get", "httproute", "frontdoor", "-o", "json"]).await).unwrap();
        let conditions = route["status"]["parents"][0]["conditions"].as_array().cloned().unwrap_or_default();
        if conditions.iter().any(|c| c["type"] == "Accepted" && c["status"] == "True") {
            assert_eq!(route["spec"]["rules"][0]["backendRefs"][0]["kind"], "Service", "defaulted");
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(20), "no Accepted parent: {route:#}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    lab.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_traffic_manager_profile_switches_blue_to_green_through_the_front_door() {
    const SUBNET: u8 = 144;
    let lab = TestLab::up(SUBNET).await;
    // An HTTPRoute sends everything to green until the profile exists.
    lab.apply(&route(0, 1)).await;
    assert_eq!(count(&lab.through_the_front_door().await, "green"), REQUESTS);

    // green by its Pod's IP:PORT, blue by its Service's name.
    let pods: Value = serde_json::from_str(&lab.kubectl(&["get", "pods", "-l", "app=green", "-o", "json"]).await).unwrap();
    let green_ip = pods["items"][0]["status"]["podIP"].as_str().expect("green's podIP").to_string();
    let profile = json!({
        "location": "global",
        "properties": {
            "profileStatus": "Enabled",
            "trafficRoutingMethod": "Weighted",
            "dnsConfig": {"relativeName": "runner-lab-frontdoor", "ttl": 30},
            "monitorConfig": {"protocol": "HTTP", "port": 8080, "path": "/health", "intervalInSeconds": 30, "timeoutInSeconds": 10, "toleratedNumberOfFailures": 3},
            "endpoints": [
                {"name": "blue", "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints", "properties": {"target": "blue", "weight": 1000, "endpointStatus": "Enabled"}},
                {"name": "green", "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints", "properties": {"target": format!("{green_ip}:8080"), "weight": 1, "endpointStatus": "Disabled"}},
            ],
        },
    });
    let created = lab.arm("PUT", "frontdoor", Some(&profile), None).await;
    assert_eq!(created.status, 201, "{}", created.body);
    let doc = created.json();
    assert_eq!(doc["type"], "Microsoft.Network/trafficManagerProfiles");
    assert_eq!(doc["properties"]["dnsConfig"]["fqdn"], "runner-lab-frontdoor.trafficmanager.net");
    assert_eq!(doc["properties"]["endpoints"][1]["properties"]["endpointStatus"], "Disabled");
    assert!(created.header("etag").is_some(), "{:?}", created.headers);
    let seen = lab.through_the_front_door().await;
    assert_eq!(count(&seen, "blue"), REQUESTS, "the profile takes precedence; green is Disabled: all blue");

    // Weights outside 1-1000 are refused in ARM's shape, and change nothing.
    for weight in [0, 1001] {
        let refused = lab.arm("PATCH", "frontdoor/externalEndpoints/green", Some(&json!({"properties": {"weight": weight}})), None).await;
        assert_eq!(refused.status, 400, "weight {weight}: {}", refused.body);
        assert_eq!(refused.json()["error"]["code"], "BadRequest", "{}", refused.body);
    }

    // Conditional writes: read each endpoint, set both weights on what was read.
    let blue = lab.arm("GET", "frontdoor/externalEndpoints/blue", None, None).await;
    assert_eq!((blue.status, blue.json()["properties"]["weight"].as_u64()), (200, Some(1000)), "{}", blue.body);
    let blue_tag = blue.header("etag").expect("an ETag").to_string();
    let green = lab.arm("GET", "frontdoor/externalEndpoints/green", None, None).await;
    let green_tag = green.header("etag").expect("an ETag").to_string();
    let set = lab.arm("PATCH", "frontdoor/externalEndpoints/blue", Some(&json!({"properties": {"weight": 500}})), Some(&blue_tag)).await;
    assert_eq!(set.status, 200, "{}", set.body);
    assert_eq!(set.json()["properties"]["weight"], 500);
    assert_ne!(set.header("etag"), Some(blue_tag.as_str()), "the ETag changes with the endpoint");
    let set = lab
        .arm("PATCH", "frontdoor/externalEndpoints/green", Some(&json!({"properties": {"weight": 500, "endpointStatus": "Enabled"}})), Some(&green_tag))
        .await;
    assert_eq!(set.status, 200, "{}", set.body);
    let seen = lab.through_the_front_door().await;
    about(count(&seen, "blue"), 50, "50/50 blue");
    about(count(&seen, "green"), 50, "50/50 green");

    // A write on a stale read is refused and changes nothing.
    let stale = lab.arm("PATCH", "frontdoor/externalEndpoints/blue", Some(&json!({"properties": {"weight": 1}})), Some(&blue_tag)).await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    assert_eq!(stale.json()["error"]["code"], "PreconditionFailed");
    let profile_tag = lab.arm("GET", "frontdoor", None, None).await.header("etag").unwrap().to_string();
    let stale = lab.arm("PATCH", "frontdoor", Some(&json!({"properties": {"profileStatus": "Disabled"}})), Some("\"0000000000000000\"")).await;
    assert_eq!(stale.status, 412, "{}", stale.body);
    let seen = lab.through_the_front_door().await;
    about(count(&seen, "blue"), 50, "still 50/50 after the refused writes");

    // Disabled means no traffic: all green.
    let off = lab.arm("PATCH", "frontdoor/externalEndpoints/blue", Some(&json!({"properties": {"endpointStatus": "Disabled"}})), None).await;
    assert_eq!(off.status, 200, "{}", off.body);
    assert_eq!(count(&lab.through_the_front_door().await, "green"), REQUESTS, "blue Disabled: all green");
    let changed = lab.arm("PATCH", "frontdoor", Some(&json!({"properties": {"profileStatus": "Enabled"}})), Some(&profile_tag)).await;
    assert_eq!(changed.status, 412, "the profile's ETag covers its endpoints: {}", changed.body);

    // Kept in the ARM state file, like the cluster's.
    let state = std::fs::read_to_string(lab.dir.root.join("state/arm-state.json")).unwrap();
    assert!(state.contains("trafficManagerProfiles") && state.contains(&green_ip), "{state}");

    // Without the profile, the HTTPRoute routes again (everything to green: weight 1 vs 0).
    let gone = lab.arm("DELETE", "frontdoor", None, None).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(lab.arm("GET", "frontdoor", None, None).await.status, 404);
    lab.apply(&route(1, 0)).await;
    assert_eq!(count(&lab.through_the_front_door().await, "blue"), REQUESTS, "the HTTPRoute again");
    lab.stop().await;
}

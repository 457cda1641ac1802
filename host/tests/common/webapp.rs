//! The lab's web application behind its front door, for the traffic tests:
//! blue and green Deployments with their Services, the HTTPRoute between
//! them, and which backend the front door answered from.

use std::io::{Read, Write};
use std::time::Duration;

use super::lab::Lab;
use super::path;

/// A webapp Deployment and its Service (port 80 to the Pods' 8080).
pub fn app(name: &str, version: &str) -> String {
    format!(
        "apiVersion: apps/v1
kind: Deployment
metadata: {{name: {name}}}
spec:
  replicas: 1
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

pub fn route(blue: u32, green: u32) -> String {
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

pub fn apply(lab: &Lab, name: &str, manifest: &str) {
    let file = lab.dir.path().join(name);
    std::fs::write(&file, manifest).unwrap();
    lab.kubectl(&["apply", "-f", path(&file)]);
}

/// A lab on `subnet` with blue and green rolled out; the front door's address.
pub fn lab_with_apps(subnet: &str) -> (Lab, String) {
    let lab = Lab::up(&["--subnet", subnet, "--single-pool", "--nodes", "2"]);
    apply(&lab, "apps.yaml", &format!("{}---\n{}", app("blue", "1.29"), app("green", "1.30")));
    for name in ["blue", "green"] {
        let out = lab.kubectl(&["rollout", "status", &format!("deployment/{name}"), "--timeout=120s"]);
        assert!(out.contains("successfully rolled out"), "{out}");
    }
    let url = runner_lab::daemon::LabDir::new(lab.dir.path()).frontdoor_url().expect("the lab writes <lab>/frontdoor");
    assert_eq!(url, format!("http://127.{subnet}.3.1:8080"));
    let address = url.strip_prefix("http://").unwrap().to_string();
    (lab, address)
}

/// The `X-Runner-Backend` of one plain GET of `/version` through the front door (`None` unless 200).
pub fn backend(address: &str) -> Option<String> {
    let mut stream = std::net::TcpStream::connect(address).ok()?;
    stream.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    stream.write_all(b"GET /version HTTP/1.1\r\nHost: frontdoor.lab\r\nConnection: close\r\n\r\n").ok()?;
    let mut raw = String::new();
    stream.read_to_string(&mut raw).ok()?;
    if !raw.starts_with("HTTP/1.1 200") {
        return None;
    }
    raw.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("x-runner-backend")).map(|(_, v)| v.trim().to_string()))
}

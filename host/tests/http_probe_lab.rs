//! `runner exec --http-probe` against a real lab's front door: blue (1.29)
//! and green (1.30) webapp Deployments behind their Services, an HTTPRoute
//! `frontdoor` sending everything to blue, switched to green by kubectl
//! while a run lasts (hostile-gate sleeping until its 4 s deadline). The
//! probe must see both backends, no failed request, and a last second all
//! green. Its own loopback subnet (147).

mod common;

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use common::lab::{Lab, eventually};
use common::*;
use serde_json::Value;

const SUBNET: &str = "147";

/// A webapp Deployment and its Service (port 80 to the Pods' 8080).
fn app(name: &str, version: &str) -> String {
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

fn apply(lab: &Lab, name: &str, manifest: &str) {
    let file = lab.dir.path().join(name);
    std::fs::write(&file, manifest).unwrap();
    lab.kubectl(&["apply", "-f", path(&file)]);
}

/// The `X-Runner-Backend` of one plain GET of `/version` through the front door (`None` unless 200).
fn backend(address: &str) -> Option<String> {
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

#[test]
fn an_http_probe_sees_the_front_door_switch_from_blue_to_green() {
    let lab = Lab::up(&["--subnet", SUBNET, "--single-pool", "--nodes", "2"]);
    apply(&lab, "apps.yaml", &format!("{}---\n{}", app("blue", "1.29"), app("green", "1.30")));
    for name in ["blue", "green"] {
        let out = lab.kubectl(&["rollout", "status", &format!("deployment/{name}"), "--timeout=120s"]);
        assert!(out.contains("successfully rolled out"), "{out}");
    }
    apply(&lab, "route.yaml", &route(100, 0));
    let url = runner_lab::daemon::LabDir::new(lab.dir.path()).frontdoor_url().expect("the lab writes <lab>/frontdoor");
    assert_eq!(url, format!("http://127.{SUBNET}.3.1:8080"));
    let address = url.strip_prefix("http://").unwrap().to_string();
    eventually("the front door answering from blue", Duration::from_secs(30), || (backend(&address).as_deref() == Some("blue")).then_some(()));

    // A bad URL is bad input before anything runs.
    let refused = lab.runner(&["exec", "pods-ready", "--target", "lab", "--http-probe", "http://frontdoor.lab:8080/"]);
    assert_eq!(refused.status.code(), Some(2), "{}{}", stdout(&refused), stderr(&refused));
    assert!(stderr(&refused).contains("is a name"), "{}", stderr(&refused));

    let probed = format!("{url}/version");
    let gate = fixture("hostile-gate");
    // Compiled once first (the lab's cache is new), so the probed run starts its probe at once.
    let warm = lab.runner(&["exec", path(&gate), "--target", "lab", "--config", "mode=pass"]);
    assert_eq!(warm.status.code(), Some(0), "{}{}", stdout(&warm), stderr(&warm));
    let run = lab.spawn(&[
        "exec",
        path(&gate),
        "--target",
        "lab",
        "--config",
        "mode=sleep",
        "--deadline",
        "4s",
        "--http-probe",
        &probed,
        "--http-probe-rate",
        "25",
        "-o",
        "json",
    ]);
    std::thread::sleep(Duration::from_millis(1500));
    let switched = Instant::now();
    lab.kubectl(&[
        "patch",
        "httproute",
        "frontdoor",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":0},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":100}]"#,
    ]);
    eprintln!("switched to green in {:?}", switched.elapsed());
    let output = run.wait_with_output();
    // The gate sleeps past its deadline: the run is stopped (exit 3), its report printed all the same.
    assert_eq!(output.status.code(), Some(3), "{}{}", stdout(&output), stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap_or_else(|e| panic!("{e}: {}{}", stdout(&output), stderr(&output)));
    let probes = report["http_probes"].as_array().unwrap_or_else(|| panic!("no http_probes: {report:#}"));
    assert_eq!(probes.len(), 1, "{report:#}");
    let probe = &probes[0];
    eprintln!("{probe:#}");
    assert_eq!(probe["url"], probed.as_str());
    let requests = probe["requests"].as_u64().unwrap();
    assert!(requests > 25, "about 4 s at 25/s: {probe:#}");
    assert_eq!(probe["failed_requests"], 0, "{probe:#}");
    assert_eq!(probe["ok_requests"].as_u64(), Some(requests), "{probe:#}");
    for key in ["longest_gap_ms", "p50_ms", "p99_ms", "max_ms", "duration_ms"] {
        assert!(probe[key].is_number(), "{key}: {probe:#}");
    }
    assert!(probe["longest_gap_ms"].as_f64().unwrap() < 1000.0, "no outage through the switch: {probe:#}");
    let blue = probe["backends"]["blue"].as_u64().unwrap_or(0);
    let green = probe["backends"]["green"].as_u64().unwrap_or(0);
    assert!(blue > 0 && green > 0, "both backends seen: {probe:#}");
    assert_eq!(blue + green, requests, "every answer names its backend: {probe:#}");
    let buckets = probe["timeline"]["buckets"].as_array().unwrap();
    assert_eq!(probe["timeline"]["bucket_ms"], 1000);
    assert!(buckets.len() >= 3, "{probe:#}");
    let first = buckets.first().unwrap();
    assert_eq!(first["backends"].as_object().unwrap().keys().collect::<Vec<_>>(), ["blue"], "the first second all blue: {probe:#}");
    let last = buckets.iter().rev().find(|b| b["ok"].as_u64().unwrap_or(0) > 0).unwrap();
    assert_eq!(last["backends"].as_object().unwrap().keys().collect::<Vec<_>>(), ["green"], "the last second all green: {probe:#}");

    // The text report has the probe's line.
    let text = lab.runner(&["exec", "pods-ready", "--target", "lab", "--config", "selector=app=green", "--http-probe", &probed]);
    let shown = stdout(&text);
    assert!(shown.contains(&format!("http probe {probed}: ")) && shown.contains("backends: green"), "{shown}{}", stderr(&text));
}

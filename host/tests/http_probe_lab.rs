//! `runner exec --http-probe` against a real lab's front door: blue (1.29)
//! and green (1.30) webapp Deployments behind their Services, an HTTPRoute
//! `frontdoor` sending everything to blue, switched to green by kubectl
//! while a run lasts (hostile-gate sleeping until its 4 s deadline). The
//! probe must see both backends, no failed request, and a last second all
//! green. Its own loopback subnet (147).

mod common;

use std::time::{Duration, Instant};

use common::lab::eventually;
use common::webapp::{apply, backend, lab_with_apps, route};
use common::*;
use serde_json::Value;

const SUBNET: &str = "147";

#[test]
fn an_http_probe_sees_the_front_door_switch_from_blue_to_green() {
    let (lab, address) = lab_with_apps(SUBNET);
    apply(&lab, "route.yaml", &route(100, 0));
    let url = format!("http://{address}");
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

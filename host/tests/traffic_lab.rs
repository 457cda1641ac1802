//! `traffic-read` / `traffic-write` against a real lab's front door: blue
//! (1.29) and green (1.30) webapp Deployments behind their Services,
//! switched by the `traffic-pattern` fixture through the lab's switches
//! `frontdoor` (the HTTPRoute `default/frontdoor`, checked with kubectl)
//! and `frontdoor-tm` (the Traffic Manager profile `frontdoor`, created
//! and checked over the lab's ARM API with curl). Real requests through
//! the front door (the fixture's `observe`) must follow each change; a
//! change asked at a generation someone else moved since must answer
//! `conflict` and leave their change intact; without `--allow` the change
//! is refused and nothing moves. Each lab on its own subnet (196, 197).

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::lab::{Lab, eventually};
use common::webapp::{apply, backend, lab_with_apps, route};
use common::*;
use runner::backends::ErrorCode;
use runner::backends::traffic::{BackendWeight, HttpRouteSwitch, ProfileSwitch, SwitchServer};
use runner::domain::traffic::{SwitchKind, apply_weights};
use serde_json::{Value, json};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap()
}

fn wanted(pairs: &[(&str, u32)]) -> Vec<BackendWeight> {
    pairs.iter().map(|(name, weight)| BackendWeight { name: name.to_string(), weight: *weight, enabled: *weight > 0 }).collect()
}

/// `runner exec traffic-pattern --config calls=CALLS` on the lab with `allow`s; the report, the output and the journal.
fn traffic(lab: &Lab, calls: &str, allow: &[&str]) -> (Option<i32>, Value, String, Vec<Value>) {
    let journal = lab.dir.path().join(format!("journal-{}.jsonl", std::process::id() as u64 * 1000 + rand_suffix()));
    let fixture = fixture("traffic-pattern");
    let config = format!("calls={calls}");
    let mut args = vec!["exec", path(&fixture), "--target", "lab", "--config", &config, "-o", "json", "--journal", path(&journal)];
    for cap in allow {
        args.extend(["--allow", cap]);
    }
    let output = lab.runner(&args);
    let text = format!("{}{}", stdout(&output), stderr(&output));
    let report: Value = serde_json::from_str(&stdout(&output)).unwrap_or(Value::Null);
    let lines = std::fs::read_to_string(&journal).unwrap_or_default().lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    (output.status.code(), report, text, lines)
}

fn rand_suffix() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    static NEXT: AtomicU64 = AtomicU64::new(0);
    NEXT.fetch_add(1, Ordering::Relaxed)
}

/// The route's weights and generation, as kubectl reads them.
fn route_now(lab: &Lab) -> (String, String) {
    let weights = lab.kubectl(&["get", "httproute", "frontdoor", "-o", "jsonpath={.spec.rules[0].backendRefs[*].weight}"]);
    let generation = lab.kubectl(&["get", "httproute", "frontdoor", "-o", "jsonpath={.metadata.generation}"]);
    (weights.trim().to_string(), generation.trim().to_string())
}

/// The fixture's summary lines (the report's first reason).
fn summary(report: &Value) -> String {
    report["reasons"][0].as_str().map(str::to_string).unwrap_or_else(|| report.to_string())
}

#[test]
fn an_httproute_switch_moves_real_requests_and_loses_to_a_concurrent_change() {
    let (lab, address) = lab_with_apps("196");
    apply(&lab, "route.yaml", &route(100, 0));
    eventually("the front door answering from blue", Duration::from_secs(30), || (backend(&address).as_deref() == Some("blue")).then_some(()));
    let (weights, first_generation) = route_now(&lab);
    assert_eq!(weights, "100 0");

    // Reads are the pattern's own request: the state as kubectl shows it.
    let (code, report, text, _) = traffic(&lab, "weights:frontdoor", &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(summary(&report).contains(&format!("gen={first_generation} writer=false blue=100/on,green=0/off")), "{text}");

    // (d) Without --allow the change is refused, and nothing moves.
    let (code, _, text, journal) = traffic(&lab, "weights:frontdoor;set:frontdoor:blue=0,green=100", &[]);
    assert_eq!(code, Some(3), "a denied capability is the sandbox's refusal: {text}");
    assert!(text.contains("--allow traffic:set-weights:frontdoor"), "{text}");
    assert!(journal.iter().any(|l| l["call"] == "traffic-write.set-weights" && l["outcome"] == "denied"), "{journal:?}");
    assert_eq!(route_now(&lab), ("100 0".to_string(), first_generation.clone()), "a refused change changes nothing");
    assert_eq!(backend(&address).as_deref(), Some("blue"));

    // (a) Allowed: 100/0 -> 0/100, and real requests through the front door follow.
    let calls = "weights:frontdoor;observe:frontdoor:/version:20;set:frontdoor:blue=0,green=100;observe:frontdoor:/version:20";
    let (code, report, text, journal) = traffic(&lab, calls, &["traffic:set-weights:frontdoor"]);
    assert_eq!(code, Some(0), "{text}");
    let lines = summary(&report);
    let lines: Vec<&str> = lines.lines().collect();
    assert_eq!(lines.len(), 4, "{text}");
    assert!(lines[1].contains("succeeded=20") && lines[1].contains("backends=blue:20"), "before the change, all blue: {}", lines[1]);
    assert!(lines[2].contains(&format!("previous gen={first_generation} writer=false blue=100/on,green=0/off")), "{}", lines[2]);
    assert!(lines[2].contains("current gen=") && lines[2].contains("blue=0/off,green=100/on"), "{}", lines[2]);
    assert!(lines[3].contains("succeeded=20") && lines[3].contains("backends=green:20"), "after the change, all green: {}", lines[3]);
    let (weights, generation) = route_now(&lab);
    assert_eq!(weights, "0 100", "kubectl sees the change");
    assert_eq!(generation.parse::<u64>().unwrap(), first_generation.parse::<u64>().unwrap() + 1, "the lab bumps metadata.generation on a spec change");
    assert!(lines[2].contains(&format!("current gen={generation} ")), "{}", lines[2]);
    // The journal keeps what to put back.
    let set = journal.iter().find(|l| l["call"] == "traffic-write.set-weights" && l["outcome"] == "ok").unwrap_or_else(|| panic!("{journal:?}"));
    assert_eq!(set["answer"]["previous"]["backends"][0], json!({"name": "blue", "weight": 100, "enabled": true}), "{set}");
    assert_eq!(set["answer"]["previous"]["generation"], json!(first_generation), "{set}");
    assert_eq!(set["answer"]["current"]["backends"][1], json!({"name": "green", "weight": 100, "enabled": true}), "{set}");

    // `runner target check` shows the lab's switches as they are.
    let check = lab.runner(&["target", "check", "lab"]);
    let text = format!("{}{}", stdout(&check), stderr(&check));
    assert!(
        text.contains(&format!(
            "traffic switch frontdoor: HTTPRoute default/frontdoor at http://{address}, generation {generation}: blue 0 (disabled), green 100"
        )),
        "{text}"
    );
    assert!(text.contains("traffic switch frontdoor-tm: Traffic Manager profile frontdoor at"), "{text}");

    // A status write by the front door's controller moves resourceVersion, not generation: a read now
    // still matches kubectl's generation.
    let (code, report, text, _) = traffic(&lab, "weights:frontdoor", &[]);
    assert_eq!(code, Some(0), "{text}");
    assert!(summary(&report).contains(&format!("gen={generation} ")), "{text}");

    // (b) Someone else changes the route between the read (generation G) and the conditional set.
    lab.kubectl(&[
        "patch",
        "httproute",
        "frontdoor",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":30},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":70}]"#,
    ]);
    let (_, concurrent) = route_now(&lab);
    assert_ne!(concurrent, generation);
    let (code, _, text, journal) = traffic(&lab, &format!("set-at:frontdoor:{generation}:blue=100,green=0"), &["traffic:set-weights:frontdoor"]);
    assert_eq!(code, Some(1), "the pattern fails with the call's error: {text}");
    assert!(text.contains("conflict") && text.contains(&format!("generation {generation}")) && text.contains(&concurrent), "{text}");
    assert!(journal.iter().any(|l| l["call"] == "traffic-write.set-weights" && l["outcome"] == "conflict"), "{journal:?}");
    assert_eq!(route_now(&lab), ("30 70".to_string(), concurrent), "the concurrent change is intact");

    // A backend the route does not have is not-found; no backend left enabled is invalid.
    let (_, _, text, _) = traffic(&lab, "weights:frontdoor;set:frontdoor:red=10", &["traffic:set-weights:frontdoor"]);
    assert!(text.contains("no backend `red`"), "{text}");
    let (_, _, text, _) = traffic(&lab, "weights:frontdoor;set:frontdoor:blue=0,green=0", &["traffic:set-weights:frontdoor"]);
    assert!(text.contains("no backend enabled"), "{text}");
    assert_eq!(route_now(&lab).0, "30 70");

    // The route's server itself, between its read and its write: a status write (the controller's)
    // moves resourceVersion only, and the write goes through after a new read; a spec change
    // (a new generation) makes it a conflict, whatever the 409 said.
    let rt = runtime();
    let target = runner::target::Target::lab(lab.dir.path().to_path_buf());
    let kube: Arc<dyn runner::backends::Kube> = Arc::new(rt.block_on(runner::backends::kube::connect(&target)).unwrap());
    let server = HttpRouteSwitch::new(kube, Some("default".into()), "frontdoor".into());
    let read = rt.block_on(server.read()).unwrap();
    lab.kubectl(&["patch", "httproute", "frontdoor", "--subresource=status", "--type=merge", "-p", r#"{"status":{"parents":[]}}"#]);
    let next = apply_weights(&read.backends, &wanted(&[("blue", 40), ("green", 60)]), SwitchKind::HttpRoute, false).unwrap();
    let written = rt.block_on(server.write(&read, &next)).unwrap_or_else(|e| panic!("a status write in between is no conflict: {e}"));
    assert_eq!(route_now(&lab).0, "40 60");
    let read = written;
    lab.kubectl(&[
        "patch",
        "httproute",
        "frontdoor",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":30},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":70}]"#,
    ]);
    let next = apply_weights(&read.backends, &wanted(&[("blue", 100), ("green", 0)]), SwitchKind::HttpRoute, false).unwrap();
    let err = rt.block_on(server.write(&read, &next)).unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    assert_eq!(route_now(&lab).0, "30 70", "the concurrent change is intact");

    // Recorded live, the session keeps the route as the API server returned it; replayed,
    // the same answers come back and the route is not touched.
    let fixture_path = fixture("traffic-pattern");
    let session = lab.dir.path().join("traffic.session.json");
    let config = "calls=weights:frontdoor;set:frontdoor:blue=100,green=0/off;observe:frontdoor:/version:5";
    let flags = ["--target", "lab", "--config", config, "--allow", "traffic:set-weights:frontdoor", "-o", "json"];
    let live = lab.runner(&[&["exec", path(&fixture_path), "--record", path(&session)], &flags[..]].concat());
    assert_eq!(live.status.code(), Some(0), "{}{}", stdout(&live), stderr(&live));
    assert_eq!(route_now(&lab).0, "100 0");
    let recorded: Value = serde_json::from_str(&std::fs::read_to_string(&session).unwrap()).unwrap();
    let calls = recorded["calls"].as_array().unwrap();
    let read = calls.iter().find(|c| c["call"] == "traffic-read.weights").unwrap_or_else(|| panic!("{recorded:#}"));
    assert_eq!(read["response"]["httpRoute"]["kind"], "HTTPRoute", "the upstream's shape: {read}");
    let set = calls.iter().find(|c| c["call"] == "traffic-write.set-weights").unwrap();
    assert_eq!(set["response"]["previous"]["httpRoute"]["spec"]["rules"][0]["backendRefs"][1]["weight"], 70, "{set}");
    lab.kubectl(&[
        "patch",
        "httproute",
        "frontdoor",
        "--type=json",
        "-p",
        r#"[{"op":"replace","path":"/spec/rules/0/backendRefs/0/weight","value":30},{"op":"replace","path":"/spec/rules/0/backendRefs/1/weight","value":70}]"#,
    ]);
    let replayed = lab.runner(&[&["exec", path(&fixture_path), "--replay", path(&session)], &flags[..]].concat());
    assert_eq!(replayed.status.code(), Some(0), "{}{}", stdout(&replayed), stderr(&replayed));
    assert_eq!(
        summary(&serde_json::from_str(&stdout(&replayed)).unwrap()),
        summary(&serde_json::from_str(&stdout(&live)).unwrap()),
        "the replay answers as the run was"
    );
    assert_eq!(route_now(&lab).0, "30 70", "a replay reaches no backend");

    // A dry run plans the change and writes nothing.
    let fixture = fixture("traffic-pattern");
    let dry = lab.runner(&["exec", path(&fixture), "--target", "lab", "--dry-run", "--config", "calls=weights:frontdoor;set:frontdoor:blue=100,green=0/off"]);
    assert_eq!(dry.status.code(), Some(0), "{}{}", stdout(&dry), stderr(&dry));
    assert!(stdout(&dry).contains("traffic-write.set-weights"), "the plan names it: {}", stdout(&dry));
    assert_eq!(route_now(&lab).0, "30 70", "a dry run changes nothing");
    lab.down();
}

/// `curl` to the lab's ARM API for the Traffic Manager profile `frontdoor`: status, ETag, body.
fn arm(lab: &Lab, method: &str, body: Option<&Value>, if_match: Option<&str>) -> (u16, String, Value) {
    let config = runner_lab::daemon::LabDir::new(lab.dir.path()).read_arm_config().expect("the lab writes arm.json");
    let token = std::fs::read_to_string(&config.token_file).unwrap();
    let url = format!(
        "{}/subscriptions/{}/resourceGroups/{}/providers/Microsoft.Network/trafficManagerProfiles/frontdoor?api-version=2022-04-01",
        config.endpoint, config.subscription_id, config.resource_group
    );
    let mut cmd = std::process::Command::new("curl");
    cmd.args(["-sS", "-X", method, "-D", "-", "--cacert"]).arg(&config.ca_file).args(["-H", "Content-Type: application/json"]);
    cmd.args(["-H", &format!("Authorization: Bearer {}", token.trim())]);
    if let Some(tag) = if_match {
        cmd.args(["-H", &format!("If-Match: {tag}")]);
    }
    if let Some(body) = body {
        cmd.args(["--data-binary", &body.to_string()]);
    }
    let out = cmd.arg(&url).env_remove("http_proxy").env_remove("https_proxy").output().expect("curl must be installed");
    assert!(out.status.success(), "curl {method} {url}: {}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head.lines().next().and_then(|l| l.split_whitespace().nth(1)).and_then(|s| s.parse().ok()).unwrap_or(0);
    let etag =
        head.lines().find_map(|l| l.split_once(':').filter(|(k, _)| k.eq_ignore_ascii_case("etag")).map(|(_, v)| v.trim().to_string())).unwrap_or_default();
    (status, etag, serde_json::from_str(body).unwrap_or(Value::Null))
}

/// The profile's endpoints as `name=weight/Status`.
fn endpoints(profile: &Value) -> String {
    profile["properties"]["endpoints"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| format!("{}={}/{}", e["name"].as_str().unwrap(), e["properties"]["weight"], e["properties"]["endpointStatus"].as_str().unwrap()))
        .collect::<Vec<_>>()
        .join(",")
}

#[test]
fn a_traffic_manager_switch_moves_real_requests_and_answers_conflict_on_a_stale_etag() {
    let (lab, address) = lab_with_apps("197");
    let profile = json!({
        "location": "global",
        "properties": {
            "profileStatus": "Enabled",
            "trafficRoutingMethod": "Weighted",
            "dnsConfig": {"relativeName": "runner-lab-frontdoor", "ttl": 30},
            "monitorConfig": {"protocol": "HTTP", "port": 8080, "path": "/health"},
            "endpoints": [
                {"name": "blue", "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints", "properties": {"target": "blue", "weight": 100, "endpointStatus": "Enabled"}},
                {"name": "green", "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints", "properties": {"target": "green", "weight": 1, "endpointStatus": "Disabled"}},
            ],
        },
    });
    let (status, first_etag, _) = arm(&lab, "PUT", Some(&profile), None);
    assert_eq!(status, 201);
    eventually("the front door answering from blue", Duration::from_secs(30), || (backend(&address).as_deref() == Some("blue")).then_some(()));

    // Without --allow: refused, nothing moves.
    let (code, _, text, _) = traffic(&lab, "weights:frontdoor-tm;set:frontdoor-tm:blue=0,green=100", &[]);
    assert_eq!(code, Some(3), "{text}");
    assert!(text.contains("--allow traffic:set-weights:frontdoor-tm"), "{text}");
    let (_, etag, now) = arm(&lab, "GET", None, None);
    assert_eq!((etag.as_str(), endpoints(&now).as_str()), (first_etag.as_str(), "blue=100/Enabled,green=1/Disabled"));

    // Allowed: blue disabled (its weight kept), green 100; requests follow.
    let calls = "weights:frontdoor-tm;observe:frontdoor-tm:/version:20;set:frontdoor-tm:blue=0,green=100;observe:frontdoor-tm:/version:20";
    let (code, report, text, journal) = traffic(&lab, calls, &["traffic:set-weights:frontdoor-tm"]);
    assert_eq!(code, Some(0), "{text}");
    let lines = summary(&report);
    let lines: Vec<&str> = lines.lines().collect();
    assert!(lines[0].contains(&format!("gen={first_etag} writer=false blue=100/on,green=1/off")), "the generation is the ETag: {}", lines[0]);
    assert!(lines[1].contains("backends=blue:20"), "{}", lines[1]);
    assert!(lines[2].contains("blue=100/off,green=100/on"), "{}", lines[2]);
    assert!(lines[3].contains("succeeded=20") && lines[3].contains("backends=green:20"), "{}", lines[3]);
    let (_, etag, now) = arm(&lab, "GET", None, None);
    assert_eq!(endpoints(&now), "blue=100/Disabled,green=100/Enabled", "ARM sees the change");
    assert_ne!(etag, first_etag);
    assert!(lines[2].contains(&format!("current gen={etag} ")), "{}", lines[2]);
    let set = journal.iter().find(|l| l["call"] == "traffic-write.set-weights" && l["outcome"] == "ok").unwrap_or_else(|| panic!("{journal:?}"));
    assert_eq!(set["answer"]["previous"]["generation"], json!(first_etag), "{set}");
    assert_eq!(set["answer"]["previous"]["backends"][1], json!({"name": "green", "weight": 1, "enabled": false}), "{set}");

    // A weight Traffic Manager cannot take is invalid before anything is sent.
    let (_, _, text, _) = traffic(&lab, "weights:frontdoor-tm;set:frontdoor-tm:green=1001", &["traffic:set-weights:frontdoor-tm"]);
    assert!(text.contains("more than 1000"), "{text}");

    // Someone else changes the profile after our read: the conditional set gets 412 -> conflict.
    let changed = json!({"properties": {"endpoints": [
        {"name": "blue", "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints", "properties": {"target": "blue", "weight": 100, "endpointStatus": "Disabled"}},
        {"name": "green", "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints", "properties": {"target": "green", "weight": 50, "endpointStatus": "Enabled"}},
    ]}});
    let (status, concurrent, _) = arm(&lab, "PATCH", Some(&changed), Some(&etag));
    assert_eq!(status, 200);
    let (code, _, text, journal) = traffic(&lab, &format!("set-at:frontdoor-tm:{etag}:blue=100,green=0/off"), &["traffic:set-weights:frontdoor-tm"]);
    assert_eq!(code, Some(1), "{text}");
    assert!(text.contains("conflict") && text.contains("changed since it was read"), "{text}");
    assert!(journal.iter().any(|l| l["call"] == "traffic-write.set-weights" && l["outcome"] == "conflict"), "{journal:?}");
    let (_, etag, now) = arm(&lab, "GET", None, None);
    assert_eq!((etag, endpoints(&now)), (concurrent, "blue=100/Disabled,green=50/Enabled".to_string()), "the concurrent change is intact");

    // The profile's server itself, a change landing between its read and its PATCH: ARM's 412.
    let rt = runtime();
    let target = runner::target::Target::lab(lab.dir.path().to_path_buf());
    let config = target.cluster_api().unwrap().expect("the lab's ARM API");
    let server = ProfileSwitch::new(Arc::new(runner::backends::aks::AksBackend::connect(&config).unwrap()), &config.resource_group, "frontdoor");
    let read = rt.block_on(server.read()).unwrap();
    let (status, between, _) = arm(&lab, "PATCH", Some(&json!({"properties": {"profileStatus": "Enabled", "dnsConfig": {"ttl": 31}}})), Some(&read.generation));
    assert_eq!(status, 200);
    let next = apply_weights(&read.backends, &wanted(&[("blue", 7), ("green", 0)]), SwitchKind::TrafficManager, false).unwrap();
    let err = rt.block_on(server.write(&read, &next)).unwrap_err();
    assert_eq!(err.code, ErrorCode::Conflict, "{err}");
    assert!(err.message.contains("PreconditionFailed") || err.message.contains("condition"), "ARM's words: {err}");
    let (_, etag, now) = arm(&lab, "GET", None, None);
    assert_eq!((etag, endpoints(&now)), (between, "blue=100/Disabled,green=50/Enabled".to_string()), "a 412 changes nothing");
    lab.down();
}

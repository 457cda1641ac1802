//! Issue 17 on the lab: `runner demo blue-green` moves real HTTP traffic
//! from blue (1.29) to green (created at 1.30) through the lab's front door
//! by Traffic Manager weights, under the HTTP probe, and a second switch to
//! a green failing 20 % of requests is rolled back by the pattern itself.
//! The demo reads the profile back through the lab's ARM API; the test
//! checks green's cluster and app with `kubectl` as an independent client.

mod common;

use common::lab::Lab;
use common::*;

#[test]
fn the_switch_moves_traffic_to_green_and_a_failing_green_is_rolled_back() {
    let dir = tempfile::Builder::new().prefix("runner-blue-green-demo-").tempdir_in("/tmp").unwrap();
    let lab = Lab { dir };
    let demo_dir = lab.dir.path().join("demo");
    let output = lab.runner(&["demo", "blue-green", "--dir", path(&demo_dir), "--subnet", "198", "--keep", "-o", "json"]);
    let demo = json_of(&output);
    let down = || {
        let _ = lab.runner(&["lab", "--dir", path(&demo_dir.join("blue")), "down"]);
        let _ = lab.runner(&["lab", "--dir", path(&demo_dir.join("green")), "down"]);
    };
    let kubectl = |args: &[&str]| {
        let out = std::process::Command::new("kubectl")
            .arg("--kubeconfig")
            .arg(demo_dir.join("green/kubeconfig"))
            .args(args)
            .env("HOME", lab.dir.path())
            .output()
            .expect("kubectl must be installed");
        String::from_utf8_lossy(&out.stdout).into_owned()
    };
    let green_nodes = kubectl(&["get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeletVersion}"]);
    let green_image = kubectl(&["get", "deployment", "web", "-o", "jsonpath={.spec.template.spec.containers[0].image}"]);
    down();

    expect_exit(&output, 0);
    assert_eq!(demo["outcome"], "succeeded", "{demo:#}");
    let switch = &demo["switch"];
    assert_eq!(switch["outcome"], "succeeded", "{switch:#}");
    assert_eq!(switch["failed_requests"], 0, "{switch:#}");
    assert!(switch["longest_gap_ms"].as_f64().unwrap() <= 1000.0, "{switch:#}");
    assert!(switch["p99_ms"].as_f64().is_some(), "{switch:#}");
    assert_eq!(switch["traffic_manager_after"]["green"]["enabled"], true, "{switch:#}");
    assert_eq!(switch["traffic_manager_after"]["blue"]["enabled"], false, "{switch:#}");
    // The shares over time show both sides: blue alone first, green alone at the end.
    let shares = switch["shares"].as_array().unwrap();
    assert!(shares.first().unwrap()["percent"]["blue"] == 100.0, "{shares:?}");
    assert!(shares.last().unwrap()["percent"]["green"] == 100.0, "{shares:?}");
    assert!(shares.iter().any(|s| s["percent"]["blue"].as_f64().is_some() && s["percent"]["green"].as_f64().is_some()), "a split second: {shares:?}");

    let failing = &demo["failing_switch"];
    assert_eq!(failing["rolled_back"], true, "{failing:#}");
    assert!(failing["rollback_ms"].as_f64().is_some_and(|ms| ms > 0.0), "{failing:#}");
    assert!(failing["failed_requests"].as_u64().unwrap() > 0, "green's failures reached clients before the rollback: {failing:#}");
    assert_eq!(failing["traffic_manager_after"]["blue"]["enabled"], true, "{failing:#}");
    assert_eq!(failing["traffic_manager_after"]["green"]["enabled"], false, "{failing:#}");

    // Green is a cluster created at 1.30 running the new app version, deployed by the pattern.
    assert_eq!(green_nodes.split_whitespace().collect::<Vec<_>>(), ["v1.30.5", "v1.30.5"], "{green_nodes}");
    assert_eq!(green_image, "runner-lab/webapp:2.0.0");
}

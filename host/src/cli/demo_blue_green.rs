//! `runner demo blue-green`: seed 001's blue-green cluster switch on two lab
//! clusters. Blue runs the web application at 1.29; green is created at
//! 1.30; the bundled `blue-green-switch` deploys the new version of the app
//! to green, checks it, and moves the Traffic Manager weights of the lab's
//! front door from blue to green in steps while the HTTP probe sends real
//! requests through it. Then the same switch again with green's app failing
//! 20 % of requests: the post-switch check fails and traffic goes back to
//! blue by itself.
//!
//! Every run is a `runner exec` process, as an operator's would be; the demo
//! only sets up the labs (the app on blue, the Traffic Manager profile),
//! reads the reports and checks the profile through the lab's ARM API.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use runner_lab::client::{LabArm, LabClient};
use runner_lab::daemon::LabDir;
use serde_json::{Value, json};

use super::{CommandResult, Exit, Failure, OutputFormat};
use crate::run::runtime;

/// Blue and green, the fleet's members, in that order.
const MEMBERS: [&str; 2] = ["blue", "green"];
/// The version green is created at; blue runs the lab's 1.29.9.
const GREEN_VERSION: &str = "1.30.5";
/// The app's version on blue, and the version deployed to green.
const BLUE_APP: &str = "1.0.0";
const GREEN_APP: &str = "2.0.0";
/// The Traffic Manager profile the front door of blue's lab follows, and the switch's name.
const PROFILE: &str = runner_lab::frontdoor::PROFILE;
const SWITCH: &str = "web";
const API_VERSION: &str = "2022-04-01";
/// The app's Deployment and Service on both sides.
const APP: &str = "web";
/// How long one switch may take before the demo gives up on it.
const PATIENCE: Duration = Duration::from_secs(600);

/// What the blue-green demo needs of `runner demo`'s arguments.
pub(super) struct BlueGreenDemo {
    /// Where the labs live (wiped first).
    pub dir: PathBuf,
    /// Blue's loopback subnet; green's is the next one.
    pub subnet: u8,
    /// Leave the labs running afterwards.
    pub keep: bool,
    /// How to print.
    pub output: OutputFormat,
}

/// The two labs once set up: the addresses the switch is made of.
struct Setup {
    frontdoor: String,
    blue_address: String,
    green_address: String,
    fleet: PathBuf,
}

/// Run the demo: both switches, the summary, the labs stopped unless kept.
pub(super) fn run(demo: BlueGreenDemo) -> CommandResult {
    let text = demo.output == OutputFormat::Text;
    let runner = std::env::current_exe().map_err(|e| Failure::bad_input(format!("cannot find the runner binary: {e}")))?;
    let result = both_switches(&demo, &runner, text);
    if !demo.keep || result.is_err() {
        labs_down(&runner, &demo.dir);
    }
    let summary = result?;
    let ok = summary["outcome"] == "succeeded";
    match demo.output {
        format @ (OutputFormat::Json | OutputFormat::Yaml) => format.print(&summary),
        OutputFormat::Text => {
            if demo.keep {
                println!(
                    "\nthe labs are still running: {}/<blue|green>/kubeconfig; stop them with `runner lab --dir {} down --fleet`",
                    demo.dir.display(),
                    demo.dir.display()
                );
            }
            println!(
                "{}",
                if ok {
                    "DEMO OK: traffic moved to green with no failed request, and the failing green was rolled back to blue by itself"
                } else {
                    "DEMO FAILED (see above)"
                }
            );
        }
    }
    Ok(if ok { Exit::Success } else { Exit::PolicyFailed })
}

fn both_switches(demo: &BlueGreenDemo, runner: &Path, text: bool) -> Result<Value, Failure> {
    let say = |line: String| {
        if text {
            println!("{line}");
        }
    };
    say(format!(
        "runner demo blue-green: blue (1.29.9, app {BLUE_APP}) and green (created at {GREEN_VERSION}) in {}, traffic through Traffic Manager profile `{PROFILE}`",
        demo.dir.display()
    ));
    let setup = fresh_labs(runner, demo)?;
    say(format!("  front door {} → blue {} (green {} disabled)", setup.frontdoor, setup.blue_address, setup.green_address));

    let switch = exec(runner, demo, &setup, 0, "10,50,100")?;
    let switched = figures(&switch);
    let after_switch = profile_weights(&demo.dir)?;
    say(format!(
        "  switch: {} in {:.1} s | failed requests {} | longest gap {} ms | p99 {} ms | Traffic Manager now {}",
        switch["outcome"].as_str().unwrap_or("?"),
        switch["wall_ms"].as_f64().unwrap_or_default() / 1000.0,
        switched["failed_requests"],
        switched["longest_gap_ms"],
        switched["p99_ms"],
        after_switch
    ));

    say("second switch: green's app fails 20 % of requests once it is deployed".into());
    reset_to_blue(&demo.dir, &setup)?;
    let failing = exec(runner, demo, &setup, 20, "100")?;
    let rolled = figures(&failing);
    let after_rollback = profile_weights(&demo.dir)?;
    let metric = |name: &str| failing["metrics"].as_array().into_iter().flatten().find(|m| m["name"] == name).map(|m| m["value"].clone());
    let rolled_back = failing["outcome"] == "rolled-back" || metric("rolled_back") == Some(json!(1.0));
    let rollback_ms = metric("rollback_ms").unwrap_or(Value::Null);
    say(format!(
        "  failing switch: {} | rolled back: {} in {} ms | failed requests {} | Traffic Manager now {}",
        failing["outcome"].as_str().unwrap_or("?"),
        if rolled_back { "yes" } else { "NO" },
        rollback_ms,
        rolled["failed_requests"],
        after_rollback
    ));

    let green_serves_all = after_switch["green"]["enabled"] == true && after_switch["blue"]["enabled"] == false;
    let blue_serves_all = after_rollback["blue"]["enabled"] == true && after_rollback["green"]["enabled"] == false;
    let outcome = if switch["outcome"] == "succeeded" && switched["failed_requests"] == 0 && green_serves_all && rolled_back && blue_serves_all {
        "succeeded"
    } else {
        "failed"
    };
    Ok(json!({
        "outcome": outcome,
        "blue": {"kubernetes_version": runner_lab::topology::OLD_VERSION.trim_start_matches('v'), "app": BLUE_APP},
        "green": {"kubernetes_version": GREEN_VERSION, "app": GREEN_APP},
        "switch": {
            "run_id": switch["run_id"],
            "outcome": switch["outcome"],
            "steps": [10, 50, 100],
            "wall_ms": switch["wall_ms"],
            "failed_requests": switched["failed_requests"],
            "longest_gap_ms": switched["longest_gap_ms"],
            "p99_ms": switched["p99_ms"],
            "requests": switched["requests"],
            "shares": switched["shares"],
            "traffic_manager_after": after_switch,
        },
        "failing_switch": {
            "run_id": failing["run_id"],
            "outcome": failing["outcome"],
            "green_fail_percent": 20,
            "rolled_back": rolled_back,
            "rollback_ms": rollback_ms,
            "failed_requests": rolled["failed_requests"],
            "longest_gap_ms": rolled["longest_gap_ms"],
            "p99_ms": rolled["p99_ms"],
            "shares": rolled["shares"],
            "traffic_manager_after": after_rollback,
        },
    }))
}

/// The HTTP probe's figures of a report, with the share each backend
/// answered per second.
fn figures(report: &Value) -> Value {
    let probe = &report["http_probes"][0];
    let bucket_ms = probe["timeline"]["bucket_ms"].as_u64().unwrap_or(1000);
    let shares: Vec<Value> = probe["timeline"]["buckets"]
        .as_array()
        .into_iter()
        .flatten()
        .enumerate()
        .filter(|(_, bucket)| bucket["backends"].as_object().is_some_and(|b| !b.is_empty()))
        .map(|(index, bucket)| {
            let counts = bucket["backends"].as_object().cloned().unwrap_or_default();
            let total: f64 = counts.values().filter_map(Value::as_f64).sum();
            let share: serde_json::Map<String, Value> =
                counts.iter().map(|(name, n)| (name.clone(), json!(((n.as_f64().unwrap_or_default() / total.max(1.0)) * 100.0).round()))).collect();
            json!({"at_ms": index as u64 * bucket_ms, "percent": share})
        })
        .collect();
    json!({
        "requests": probe["requests"],
        "failed_requests": probe["failed_requests"],
        "longest_gap_ms": probe["longest_gap_ms"],
        "p99_ms": probe["p99_ms"],
        "backends": probe["backends"],
        "shares": shares,
    })
}

fn lab(dir: &Path, member: &str) -> LabDir {
    LabDir::new(dir.join(member))
}

/// Stop the labs of an earlier demo, start blue at 1.29.9 and green at
/// 1.30.5, deploy the app to blue, give both the app's Service, and point
/// the Traffic Manager profile at blue.
fn fresh_labs(runner: &Path, demo: &BlueGreenDemo) -> Result<Setup, Failure> {
    labs_down(runner, &demo.dir);
    for member in MEMBERS {
        let _ = std::fs::remove_dir_all(demo.dir.join(member));
    }
    for (index, member) in MEMBERS.iter().enumerate() {
        let subnet =
            demo.subnet.checked_add(index as u8).ok_or_else(|| Failure::bad_input("--subnet: blue's subnet and the next one must both be 254 or less"))?;
        let mut command = Command::new(runner);
        command.args(["lab", "--dir"]).arg(demo.dir.join(member)).args([
            "up",
            "--no-databases",
            "--single-pool",
            "--nodes",
            "2",
            "--subnet",
            &subnet.to_string(),
        ]);
        if *member == "green" {
            command.args(["--kubernetes-version", GREEN_VERSION]);
        }
        let output = command.stdout(Stdio::null()).output().map_err(|e| Failure::bad_input(format!("cannot start `runner lab up`: {e}")))?;
        if !output.status.success() {
            return Err(Failure::new(Exit::Unavailable, format!("runner lab up ({member}): {}", String::from_utf8_lossy(&output.stderr).trim())));
        }
    }
    let rt = runtime()?;
    rt.block_on(async {
        let blue = client(&demo.dir, "blue")?;
        let green = client(&demo.dir, "green")?;
        lab_call("blue", blue.create("/apis/apps/v1/namespaces/default/deployments", &deployment(BLUE_APP, 0)).await)?;
        let blue_address = service(&blue, "blue", demo.subnet).await?;
        let green_address = service(&green, "green", demo.subnet + 1).await?;
        wait_available(&blue, "blue").await?;
        let frontdoor = lab(&demo.dir, "blue").frontdoor_url().ok_or_else(|| Failure::new(Exit::Unavailable, "blue's lab wrote no front door URL"))?;
        let setup = Setup { frontdoor, blue_address, green_address, fleet: demo.dir.join("fleet.yaml") };
        put_profile(&demo.dir, &setup).await?;
        write_fleet(&demo.dir, &setup)?;
        Ok(setup)
    })
}

fn client(dir: &Path, member: &str) -> Result<LabClient, Failure> {
    LabClient::new(&lab(dir, member)).map_err(|e| Failure::new(Exit::Unavailable, format!("lab {member}: {e}")))
}

fn lab_call<T>(member: &str, result: anyhow::Result<T>) -> Result<T, Failure> {
    result.map_err(|e| Failure::new(Exit::Unavailable, format!("lab {member}: {e}")))
}

/// The app's Deployment at `version`, failing `fail_percent` of requests.
fn deployment(version: &str, fail_percent: u32) -> Value {
    let mut env = vec![];
    if fail_percent > 0 {
        env.push(json!({"name": "FAIL_PERCENT", "value": fail_percent.to_string()}));
    }
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": APP, "namespace": "default", "labels": {"app": APP}},
        "spec": {
            "replicas": 2,
            "selector": {"matchLabels": {"app": APP}},
            "strategy": {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}},
            "template": {
                "metadata": {"labels": {"app": APP}},
                "spec": {"containers": [{"name": APP, "image": format!("runner-lab/webapp:{version}"), "ports": [{"containerPort": 8080}], "env": env}]},
            },
        },
    })
}

/// Create the app's Service and answer its `IP:8080` once the lab's
/// Service controller has given it an address on the lab's subnet
/// (`subnet`; the API server's first allocation knows no subnet).
async fn service(client: &LabClient, member: &str, subnet: u8) -> Result<String, Failure> {
    let body = json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": APP, "namespace": "default"},
        "spec": {"selector": {"app": APP}, "ports": [{"port": 8080, "targetPort": 8080}]},
    });
    lab_call(member, client.create("/api/v1/namespaces/default/services", &body).await)?;
    let prefix = format!("127.{subnet}.");
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(30) {
        let service = lab_call(member, client.get(&format!("/api/v1/namespaces/default/services/{APP}")).await)?.unwrap_or_default();
        if let Some(ip) = service["spec"]["clusterIP"].as_str().filter(|ip| ip.starts_with(&prefix)) {
            return Ok(format!("{ip}:8080"));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Err(Failure::new(Exit::Unavailable, format!("lab {member}: Service {APP} got no address on 127.{subnet}.2.x within 30 s")))
}

async fn wait_available(client: &LabClient, member: &str) -> Result<(), Failure> {
    let began = Instant::now();
    while began.elapsed() < Duration::from_secs(60) {
        let deployment = lab_call(member, client.get(&format!("/apis/apps/v1/namespaces/default/deployments/{APP}")).await)?.unwrap_or_default();
        if deployment["status"]["availableReplicas"] == 2 {
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Err(Failure::new(Exit::Unavailable, format!("lab {member}: Deployment {APP} not available within 60 s")))
}

/// The Traffic Manager profile with blue enabled and green disabled.
async fn put_profile(dir: &Path, setup: &Setup) -> Result<(), Failure> {
    let arm = lab_call("blue", LabArm::new(&lab(dir, "blue")))?;
    let endpoint = |name: &str, target: &str, enabled: bool| {
        json!({
            "name": name,
            "type": "Microsoft.Network/trafficManagerProfiles/externalEndpoints",
            "properties": {"target": target, "endpointStatus": if enabled { "Enabled" } else { "Disabled" }, "weight": 100, "endpointLocation": "East US"},
        })
    };
    let body = json!({
        "location": "global",
        "properties": {
            "profileStatus": "Enabled",
            "trafficRoutingMethod": "Weighted",
            "dnsConfig": {"relativeName": PROFILE, "ttl": 35},
            "monitorConfig": {"protocol": "HTTP", "port": 8080, "path": "/health"},
            "endpoints": [endpoint("blue", &setup.blue_address, true), endpoint("green", &setup.green_address, false)],
        },
    });
    let answer = lab_call("blue", arm.put(&arm.profile_path(PROFILE), API_VERSION, &body).await)?;
    if !(200..300).contains(&answer.status) {
        return Err(Failure::new(Exit::Unavailable, format!("lab blue: PUT of Traffic Manager profile {PROFILE}: {} {}", answer.status, answer.body)));
    }
    Ok(())
}

/// Before the second switch: the profile back at blue only, green's app gone.
fn reset_to_blue(dir: &Path, setup: &Setup) -> Result<(), Failure> {
    runtime()?.block_on(async {
        let green = client(dir, "green")?;
        lab_call("green", green.delete(&format!("/apis/apps/v1/namespaces/default/deployments/{APP}")).await)?;
        put_profile(dir, setup).await
    })
}

/// Each endpoint's weight and whether it is enabled, read through ARM.
fn profile_weights(dir: &Path) -> Result<Value, Failure> {
    runtime()?.block_on(async {
        let arm = lab_call("blue", LabArm::new(&lab(dir, "blue")))?;
        let answer = lab_call("blue", arm.get(&arm.profile_path(PROFILE), API_VERSION).await)?;
        let mut weights = serde_json::Map::new();
        for endpoint in answer.body["properties"]["endpoints"].as_array().into_iter().flatten() {
            let properties = &endpoint["properties"];
            weights.insert(
                endpoint["name"].as_str().unwrap_or_default().to_string(),
                json!({"weight": properties["weight"], "enabled": properties["endpointStatus"] == "Enabled"}),
            );
        }
        Ok(Value::Object(weights))
    })
}

/// The fleet file: blue and green, and the switch over the profile.
fn write_fleet(dir: &Path, setup: &Setup) -> Result<(), Failure> {
    let fleet = json!({
        "members": MEMBERS.iter().map(|m| json!({"name": m, "target": dir.join(m)})).collect::<Vec<_>>(),
        "traffic": {"switches": {SWITCH: {
            "url": setup.frontdoor,
            // Reached through the ARM API of the run's own target, blue's lab (`--target`).
            "trafficmanager": {"profile": PROFILE, "resource-group": runner_lab::arm::RESOURCE_GROUP},
            "backends": {"blue": format!("http://{}", setup.blue_address), "green": format!("http://{}", setup.green_address)},
        }}},
    });
    let text = serde_yaml::to_string(&fleet).map_err(|e| Failure::bad_input(format!("fleet file: {e}")))?;
    std::fs::write(&setup.fleet, text).map_err(|e| Failure::bad_input(format!("{}: {e}", setup.fleet.display())))
}

/// One `runner exec blue-green-switch` under the HTTP probe; its report
/// with `wall_ms`.
fn exec(runner: &Path, demo: &BlueGreenDemo, setup: &Setup, green_fail_percent: u32, steps: &str) -> Result<Value, Failure> {
    let manifests = serde_json::to_string(&[deployment(GREEN_APP, green_fail_percent)]).unwrap_or_default();
    let mut command = Command::new(runner);
    command
        .env("RUNNER_RUNS_DIR", demo.dir.join("runs"))
        .arg("exec")
        .arg("blue-green-switch")
        .arg("--fleet")
        .arg(&setup.fleet)
        // The run's own target is blue's lab, whose ARM API holds the profile.
        .args(["--target", "lab"])
        .env("RUNNER_LAB_DIR", demo.dir.join("blue"));
    for config in [
        format!("switch={SWITCH}"),
        r#"blue={"member": "blue", "backend": "blue"}"#.into(),
        r#"green={"member": "green", "backend": "green"}"#.into(),
        format!("manifests={manifests}"),
        format!("steps={steps}"),
        "step-pause=2s".into(),
        // Green straight on /health before the switch (which FAIL_PERCENT spares), the app itself after it.
        "path=/health".into(),
        r#"step-check-input={"path": "/"}"#.into(),
        r#"post-switch-input={"path": "/"}"#.into(),
        "rollback-window=6s".into(),
        "check-interval=1s".into(),
        "verify-timeout=30s".into(),
    ] {
        command.args(["--config", &config]);
    }
    command.args(["--allow", "traffic:*", "--allow", "kube:*", "--allow", "fleet:*"]);
    command.args(["--http-probe", &format!("{}/version", setup.frontdoor), "--http-probe-rate", "50"]);
    command.args(["-o", "json"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let began = Instant::now();
    let child = command.spawn().map_err(|e| Failure::bad_input(format!("cannot start `runner exec`: {e}")))?;
    let output = wait_with_patience(child)?;
    let mut report: Value = serde_json::from_slice(&output.stdout).map_err(|_| {
        let err = String::from_utf8_lossy(&output.stderr);
        Failure::new(Exit::PolicyFailed, format!("runner exec ended {} without a report: {}", output.status, err.lines().last().unwrap_or_default()))
    })?;
    if !report["outcome"].is_string() {
        let why = report["error"].as_str().map(str::to_string).unwrap_or_else(|| report.to_string());
        return Err(Failure::new(Exit::PolicyFailed, format!("runner exec blue-green-switch ended {} without an outcome: {why}", output.status)));
    }
    report["wall_ms"] = json!(began.elapsed().as_secs_f64() * 1000.0);
    Ok(report)
}

/// The child's output, or a failure once [`PATIENCE`] has passed.
fn wait_with_patience(mut child: std::process::Child) -> Result<std::process::Output, Failure> {
    // Read its output as it comes: a full pipe would stall it.
    let stdout = child.stdout.take().map(|out| std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default()));
    let stderr = child.stderr.take().map(|err| std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default()));
    let began = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| Failure::bad_input(format!("runner exec: {e}")))? {
            break status;
        }
        if began.elapsed() > PATIENCE {
            let _ = child.kill();
            return Err(Failure::new(Exit::PolicyFailed, format!("the switch did not end within {} s", PATIENCE.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let out = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    Ok(std::process::Output { status, stdout: out.into_bytes(), stderr: err.into_bytes() })
}

fn labs_down(runner: &Path, dir: &Path) {
    for member in MEMBERS {
        let _ = Command::new(runner).args(["lab", "--dir"]).arg(dir.join(member)).arg("down").stdout(Stdio::null()).stderr(Stdio::null()).status();
    }
}

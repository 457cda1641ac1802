//! `runner demo fleet`: seed 001's staged rollout on three lab clusters,
//! dev → test → prod with short soaks and an approval before prod, answered
//! by `runner approve` from a second process. Then the same rollout on
//! fresh labs with the runner killed (SIGKILL) while the test stage runs,
//! and `runner exec --resume`: it completes without running dev again.
//!
//! Every run is a `runner exec` process of its own, as an operator's would
//! be: the demo only starts processes, reads the run directories and the
//! reports, and checks every member's Nodes through the lab's API server.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use runner_lab::client::LabClient;
use runner_lab::daemon::LabDir;
use serde_json::{Value, json};

use super::{CommandResult, Exit, Failure, OutputFormat};
use crate::run::runtime;
use crate::runs::RunDir;

/// The fleet's members, in stage order; each is its own group.
const MEMBERS: [&str; 3] = ["dev", "test", "prod"];
/// The version every member is rolled out to (the lab offers it).
const TARGET: &str = "1.30.5";
/// How long one rollout may take before the demo gives up on it.
const PATIENCE: Duration = Duration::from_secs(900);

/// What the fleet demo needs of `runner demo`'s arguments.
pub(super) struct FleetDemo {
    /// Where the labs live (wiped first).
    pub dir: PathBuf,
    /// The first lab's loopback subnet; the others follow.
    pub subnet: u8,
    /// Leave the labs running afterwards.
    pub keep: bool,
    /// How to print.
    pub output: OutputFormat,
}

/// One rollout, as the demo saw it.
struct Rollout {
    id: String,
    report: Value,
    rollout: Value,
    wall_ms: f64,
    approved_by: Option<String>,
}

/// Run the demo: both rollouts, the summary, the labs stopped unless kept.
pub(super) fn run(demo: FleetDemo) -> CommandResult {
    let text = demo.output == OutputFormat::Text;
    let runner = std::env::current_exe().map_err(|e| Failure::bad_input(format!("cannot find the runner binary: {e}")))?;
    let result = both_rollouts(&demo, &runner, text);
    if !demo.keep || result.is_err() {
        lab_down(&runner, &demo.dir);
    }
    let summary = result?;
    let ok = summary["outcome"] == "succeeded";
    match demo.output {
        format @ (OutputFormat::Json | OutputFormat::Yaml) => format.print(&summary),
        OutputFormat::Text => {
            if demo.keep {
                println!(
                    "\nthe labs are still running: {}/<member>/kubeconfig; stop them with `runner lab --dir {} down --fleet`",
                    demo.dir.display(),
                    demo.dir.display()
                );
            }
            println!(
                "{}",
                if ok {
                    "DEMO OK: every member upgraded in both rollouts; the killed one resumed and completed without running dev again"
                } else {
                    "DEMO FAILED (see above)"
                }
            );
        }
    }
    Ok(if ok { Exit::Success } else { Exit::PolicyFailed })
}

fn both_rollouts(demo: &FleetDemo, runner: &Path, text: bool) -> Result<Value, Failure> {
    let runs_dir = demo.dir.join("runs");
    let say = |line: String| {
        if text {
            println!("{line}");
        }
    };
    say(format!(
        "runner demo fleet: staged-rollout over {} lab clusters ({}), dev@5s → test@5s → prod, approval before prod",
        MEMBERS.len(),
        demo.dir.display()
    ));

    fresh_labs(runner, demo)?;
    let first = rollout(runner, demo, &runs_dir, None, None, &say)?;
    let first_nodes = member_versions(&demo.dir)?;

    say("second rollout, on fresh labs: the runner is killed while the test stage runs".into());
    fresh_labs(runner, demo)?;
    let killed = rollout(runner, demo, &runs_dir, None, Some("test"), &say)?;
    let resumed = rollout(runner, demo, &runs_dir, Some(&killed.id), None, &say)?;
    let second_nodes = member_versions(&demo.dir)?;

    let ran_again: Vec<&str> = members_run(&resumed.report);
    let dev_again = ran_again.contains(&"dev");
    let all_upgraded =
        |nodes: &Value| MEMBERS.iter().all(|m| nodes[m].as_array().is_some_and(|v| !v.is_empty() && v.iter().all(|k| k == &format!("v{TARGET}"))));
    let outcome = if first.report["outcome"] == "succeeded"
        && resumed.report["outcome"] == "succeeded"
        && resumed.report["resumed"] == true
        && !dev_again
        && all_upgraded(&first_nodes)
        && all_upgraded(&second_nodes)
    {
        "succeeded"
    } else {
        "failed"
    };
    say(format!(
        "resumed run {}: {} | members run again: {} | dev run again: {} | every member at {TARGET}: {}",
        resumed.id,
        resumed.report["outcome"].as_str().unwrap_or("?"),
        if ran_again.is_empty() { "none".to_string() } else { ran_again.join(", ") },
        if dev_again { "YES" } else { "no" },
        if all_upgraded(&second_nodes) { "yes" } else { "NO" }
    ));
    Ok(json!({
        "outcome": outcome,
        "members": MEMBERS,
        "kubernetes_version": TARGET,
        "rollouts": [
            summary("first", &first, &first_nodes),
            json!({
                "name": "killed-and-resumed",
                "killed_during": "test",
                "killed": summary("killed", &killed, &Value::Null),
                "resumed": summary("resumed", &resumed, &second_nodes),
                "members_run_again": ran_again,
                "dev_run_again": dev_again,
            }),
        ],
    }))
}

/// One rollout's figures: outcome, per stage and per member the state and times.
fn summary(name: &str, run: &Rollout, nodes: &Value) -> Value {
    let times: std::collections::HashMap<&str, f64> =
        run.report["patterns"].as_array().into_iter().flatten().filter_map(|p| Some((p["member"].as_str()?, p["ms"].as_f64()?))).collect();
    let members: Vec<Value> = run.rollout["members"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|m| {
            let name = m["member"].as_str().unwrap_or_default();
            json!({
                "member": name,
                "stage": m["stage"],
                "state": m["state"],
                "detail": m["detail"],
                // A member that finished before the kill did not run in this attempt.
                "ms": times.get(name),
                "kubelets": nodes.get(name),
            })
        })
        .collect();
    json!({
        "name": name,
        "run_id": run.id,
        "outcome": run.report["outcome"],
        "resumed": run.report["resumed"],
        "stopped": run.report["stopped"],
        "wall_ms": run.wall_ms,
        "approved_by": run.approved_by,
        "stages": run.rollout["stages"],
        "members": members,
    })
}

/// The members whose pattern ran in a report's run.
fn members_run(report: &Value) -> Vec<&str> {
    report["patterns"].as_array().into_iter().flatten().filter_map(|p| p["member"].as_str()).collect()
}

/// Stop the labs of an earlier demo, wipe the directory, start the fleet at 1.29.
fn fresh_labs(runner: &Path, demo: &FleetDemo) -> Result<(), Failure> {
    lab_down(runner, &demo.dir);
    if demo.dir.exists() {
        // The run directories stay: `runner runs` shows both rollouts.
        for member in MEMBERS {
            let _ = std::fs::remove_dir_all(demo.dir.join(member));
        }
    }
    let output = Command::new(runner)
        .args(["lab", "--dir"])
        .arg(&demo.dir)
        .args(["up", "--fleet", &MEMBERS.join(","), "--no-databases", "--single-pool", "--nodes", "2", "--subnet", &demo.subnet.to_string()])
        .stdout(Stdio::null())
        .output()
        .map_err(|e| Failure::bad_input(format!("cannot start `runner lab up --fleet`: {e}")))?;
    if !output.status.success() {
        return Err(Failure::new(Exit::Unavailable, format!("runner lab up --fleet: {}", String::from_utf8_lossy(&output.stderr).trim())));
    }
    Ok(())
}

fn lab_down(runner: &Path, dir: &Path) {
    let _ = Command::new(runner).args(["lab", "--dir"]).arg(dir).args(["down", "--fleet"]).stdout(Stdio::null()).stderr(Stdio::null()).status();
}

/// The `runner exec` of the rollout (`resume`: `--resume RUN-ID` instead).
fn exec(runner: &Path, demo: &FleetDemo, runs_dir: &Path, resume: Option<&str>) -> Result<Child, Failure> {
    let mut command = Command::new(runner);
    command.env("RUNNER_RUNS_DIR", runs_dir).arg("exec");
    match resume {
        Some(id) => {
            command.args(["--resume", id]);
        }
        None => {
            command.arg("staged-rollout").arg("--fleet").arg(demo.dir.join(super::lab::FLEET_FILE)).args(["--allow", "cluster:*"]);
            for config in [format!("kubernetes-version={TARGET}"), "stages=dev@5s;test@5s;prod".into(), "approve-before=prod".into()] {
                command.args(["--config", &config]);
            }
            command.args(["--approval-timeout", "600s"]);
        }
    }
    command.args(["-o", "json"]).stdin(Stdio::null()).stdout(Stdio::piped()).stderr(Stdio::piped());
    command.spawn().map_err(|e| Failure::bad_input(format!("cannot start `runner exec`: {e}")))
}

/// Run one rollout to its end: approve prod from a second process when it
/// asks, or (`kill_during`) SIGKILL the runner once that stage's members
/// are being upgraded; `resume`: `runner exec --resume` that run instead.
fn rollout(
    runner: &Path,
    demo: &FleetDemo,
    runs_dir: &Path,
    resume: Option<&str>,
    kill_during: Option<&str>,
    say: &dyn Fn(String),
) -> Result<Rollout, Failure> {
    let began = Instant::now();
    let mut child = exec(runner, demo, runs_dir, resume)?;
    // Read its output as it comes: a full pipe would stall it.
    let stdout = child.stdout.take().map(|out| std::thread::spawn(move || std::io::read_to_string(out).unwrap_or_default()));
    let stderr = child.stderr.take().map(|err| std::thread::spawn(move || std::io::read_to_string(err).unwrap_or_default()));
    let mut id = resume.map(str::to_string);
    let mut approved_by = None;
    let status = loop {
        if let Some(status) = child.try_wait().map_err(|e| Failure::bad_input(format!("runner exec: {e}")))? {
            break status;
        }
        if began.elapsed() > PATIENCE {
            let _ = child.kill();
            return Err(Failure::new(Exit::PolicyFailed, format!("the rollout did not end within {} s", PATIENCE.as_secs())));
        }
        std::thread::sleep(Duration::from_millis(200));
        if id.is_none() {
            id = crate::runs::list(runs_dir).into_iter().find(|(_, state)| state.pid == child.id()).map(|(_, state)| state.id);
            continue;
        }
        let run_dir = RunDir::at(runs_dir, id.as_deref().unwrap_or_default());
        if let Some(stage) = kill_during
            && stage_running(&run_dir, stage)
        {
            // Let the member's upgrade get under way first: the resume must pick it up in flight.
            std::thread::sleep(Duration::from_secs(2));
            let _ = child.kill();
            let _ = child.wait();
            say(format!(
                "  killed the runner (SIGKILL) during stage {stage}, {:.1} s in; `runner runs` now shows it interrupted",
                began.elapsed().as_secs_f64()
            ));
            let report = json!({"outcome": "killed", "resumed": resume.is_some()});
            return Ok(Rollout { id: id.unwrap_or_default(), report, rollout: Value::Null, wall_ms: began.elapsed().as_secs_f64() * 1000.0, approved_by });
        }
        if approved_by.is_none()
            && let Some(pending) = run_dir.pending()
        {
            let approve = Command::new(runner)
                .env("RUNNER_RUNS_DIR", runs_dir)
                .args(["approve", id.as_deref().unwrap_or_default(), "--as", "runner-demo"])
                .output()
                .map_err(|e| Failure::bad_input(format!("cannot start `runner approve`: {e}")))?;
            if !approve.status.success() {
                return Err(Failure::new(Exit::PolicyFailed, format!("runner approve: {}", String::from_utf8_lossy(&approve.stderr).trim())));
            }
            say(format!("  `runner approve` from a second process answered \"{}\", {:.1} s in", pending.summary, began.elapsed().as_secs_f64()));
            approved_by = Some("runner-demo".to_string());
        }
    };
    let out = stdout.and_then(|t| t.join().ok()).unwrap_or_default();
    let err = stderr.and_then(|t| t.join().ok()).unwrap_or_default();
    let report: Value = serde_json::from_str(&out)
        .map_err(|_| Failure::new(Exit::PolicyFailed, format!("runner exec ended {status} without a report: {}", err.lines().last().unwrap_or_default())))?;
    let id = id.or_else(|| report["run_id"].as_str().map(str::to_string)).unwrap_or_default();
    let rollout = attached_rollout(&report);
    let wall_ms = began.elapsed().as_secs_f64() * 1000.0;
    say(format!(
        "  {} {id}: {} in {:.1} s{}",
        if resume.is_some() { "resumed" } else { "rollout" },
        report["outcome"].as_str().unwrap_or("?"),
        wall_ms / 1000.0,
        report["stopped"].as_str().map(|s| format!(" ({s})")).unwrap_or_default()
    ));
    Ok(Rollout { id, report, rollout, wall_ms, approved_by })
}

/// Whether the run's log shows the member group of `stage` under way.
fn stage_running(run_dir: &RunDir, stage: &str) -> bool {
    let Ok(log) = std::fs::read_to_string(run_dir.log_path()) else { return false };
    log.lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .any(|l| l["call"] == "fleet.run-group" && l["begun"].is_u64() && l["args"]["members"] == json!([stage]))
}

/// The `rollout.json` the run attached.
fn attached_rollout(report: &Value) -> Value {
    report["attachments"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|a| a["name"] == "rollout.json")
        .and_then(|a| std::fs::read_to_string(a["path"].as_str()?).ok())
        .and_then(|text| serde_json::from_str(&text).ok())
        .unwrap_or(Value::Null)
}

/// Each member's kubelet versions, read from its lab's API server.
fn member_versions(dir: &Path) -> Result<Value, Failure> {
    let rt = runtime()?;
    let mut versions = serde_json::Map::new();
    for member in MEMBERS {
        let client = LabClient::new(&LabDir::new(dir.join(member))).map_err(|e| Failure::new(Exit::Unavailable, format!("lab {member}: {e}")))?;
        let nodes = rt.block_on(client.list("/api/v1/nodes")).map_err(|e| Failure::new(Exit::Unavailable, format!("lab {member}: listing the Nodes: {e}")))?;
        let mut kubelets: Vec<Value> = nodes.iter().map(|n| n["status"]["nodeInfo"]["kubeletVersion"].clone()).collect();
        kubelets.dedup();
        versions.insert(member.to_string(), Value::Array(kubelets));
    }
    Ok(Value::Object(versions))
}

//! Issue 16 on the lab: a fleet of four lab clusters (`runner lab up
//! --fleet`), each its own API server and ARM endpoint, rolled out dev →
//! test → prod by `staged-rollout` with `aks-upgrade` on each member. One
//! test member's upgrades are blocked by the lab's ARM fault: with a budget
//! of 1 the stage completes, prod goes on, and the member is the residual
//! set, which a re-run with `members` retries and nothing else. `kubectl`
//! checks every member's Nodes as an independent client.

mod common;

use std::path::{Path, PathBuf};
use std::time::Duration;

use common::lab::{Lab, eventually};
use common::*;

const MEMBERS: [&str; 4] = ["dev", "test-1", "test-2", "prod"];

/// The labs of a fleet, stopped on drop.
struct FleetLabs {
    /// Holds the fleet's directory; its `Lab` runs `runner` with it as the default lab.
    lab: Lab,
}

impl FleetLabs {
    fn up(subnet: u8) -> FleetLabs {
        let dir = tempfile::Builder::new().prefix("runner-fleet-test-").tempdir_in("/tmp").unwrap();
        let lab = Lab { dir };
        let list = "dev,test-1:test,test-2:test,prod";
        let output = lab.runner(&[
            "lab",
            "--dir",
            path(lab.dir.path()),
            "up",
            "--fleet",
            list,
            "--no-databases",
            "--single-pool",
            "--nodes",
            "2",
            "--subnet",
            &subnet.to_string(),
            "-o",
            "json",
        ]);
        let report = json_of(&output);
        expect_exit(&output, 0);
        assert_eq!(report["members"].as_array().map(Vec::len), Some(4), "{report:#}");
        assert_eq!(report["members"][1]["subnet"], subnet + 1, "each lab on its own subnet: {report:#}");
        FleetLabs { lab }
    }

    fn file(&self) -> PathBuf {
        self.lab.dir.path().join("fleet.yaml")
    }

    fn member_dir(&self, member: &str) -> PathBuf {
        self.lab.dir.path().join(member)
    }

    /// `kubectl ARGS` against one member's API server.
    fn kubectl(&self, member: &str, args: &[&str]) -> String {
        let kubeconfig = self.member_dir(member).join("kubeconfig");
        let output = std::process::Command::new("kubectl").arg("--kubeconfig").arg(&kubeconfig).args(args).output().unwrap();
        assert!(output.status.success(), "kubectl {member} {}: {}{}", args.join(" "), stdout(&output), stderr(&output));
        stdout(&output)
    }

    /// The kubelet versions of a member's Nodes, as kubectl reads them.
    fn kubelets(&self, member: &str) -> Vec<String> {
        let mut versions: Vec<String> =
            self.kubectl(member, &["get", "nodes", "-o", "jsonpath={.items[*].status.nodeInfo.kubeletVersion}"]).split_whitespace().map(String::from).collect();
        versions.dedup();
        versions
    }

    /// `runner exec staged-rollout` over the fleet, dev → test → prod with an approval before prod, then `extra`.
    fn rollout_command(&self, extra: &[&str]) -> std::process::Command {
        let (file, attachments) = (self.file(), self.lab.dir.path().join("attachments"));
        let mut args = vec!["exec", "staged-rollout", "--fleet", path(&file), "--allow", "cluster:*", "--attachments", path(&attachments), "-o", "json"];
        for config in ["kubernetes-version=1.30.5", "stages=dev@1s;test;prod", "approve-before=prod"] {
            args.extend(["--config", config]);
        }
        args.extend_from_slice(extra);
        let mut command = self.lab.command(&args);
        command.env("RUNNER_RUNS_DIR", self.lab.dir.path().join("runs"));
        command
    }

    fn rollout(&self, extra: &[&str]) -> std::process::Output {
        self.rollout_command(&[&["--approve"], extra].concat()).output().unwrap()
    }

    /// `runner ARGS` seeing this fleet's runs.
    fn runner(&self, args: &[&str]) -> std::process::Output {
        self.lab.command(args).env("RUNNER_RUNS_DIR", self.lab.dir.path().join("runs")).output().unwrap()
    }

    fn rollout_json(&self) -> serde_json::Value {
        let text = std::fs::read_to_string(self.lab.dir.path().join("attachments/rollout.json")).unwrap();
        serde_json::from_str(&text).unwrap()
    }
}

impl Drop for FleetLabs {
    fn drop(&mut self) {
        let _ = self.lab.runner(&["lab", "--dir", path(self.lab.dir.path()), "down", "--fleet"]);
    }
}

/// Every journal line of the run at `journal` made on `member`.
fn journal_lines_on(journal: &Path, member: &str) -> Vec<serde_json::Value> {
    std::fs::read_to_string(journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["member"] == member)
        .collect()
}

#[test]
fn a_staged_rollout_upgrades_the_fleet_and_retries_exactly_its_residual_set() {
    let fleet = FleetLabs::up(180);
    for member in MEMBERS {
        assert_eq!(fleet.kubelets(member), ["v1.29.9"], "{member} starts at 1.29.9");
    }
    // test-2's AKS refuses every upgrade, as it does while deprecated APIs are in use.
    fleet.kubectl(
        "test-2",
        &["create", "configmap", "runner-lab-arm", "-n", "kube-system", "--from-literal=block-upgrades=usage has been detected on API policy/v1beta1"],
    );

    // Nobody at a terminal: prod's approval waits for `runner approve` from another process.
    let mut rollout =
        Background::spawn(fleet.rollout_command(&["--config", "stage-failure-budget=1", "--config", "run-failure-budget=1", "--approval-timeout", "600s"]));
    let run_id = eventually("the rollout waits for prod's approval", Duration::from_secs(600), || {
        assert!(rollout.try_wait().is_none(), "the rollout ended before its approval");
        let runs: serde_json::Value = serde_json::from_str(&stdout(&fleet.runner(&["runs", "-o", "json"]))).ok()?;
        let waiting = runs.as_array()?.iter().find(|r| r["state"] == "waiting-approval")?;
        assert_eq!(waiting["approval"], "start stage prod (prod)", "{runs:#}");
        waiting["id"].as_str().map(String::from)
    });
    let wrong = fleet.runner(&["reject", &run_id, "approve test"]);
    assert!(stderr(&wrong).contains("waits for an approval in step `approve prod`"), "{}", stderr(&wrong));
    assert_eq!(fleet.kubelets("prod"), ["v1.29.9"], "prod waits for its approval");
    expect_exit(&fleet.runner(&["approve", &run_id, "approve prod", "--as", "release-bot"]), 0);
    let output = rollout.wait_with_output();
    let report = json_of(&output);
    expect_exit(&output, 0);
    let runs: serde_json::Value = serde_json::from_str(&stdout(&fleet.runner(&["runs", "-o", "json"]))).unwrap();
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#}");
    for member in ["dev", "test-1", "prod"] {
        assert_eq!(fleet.kubelets(member), ["v1.30.5"], "{member} was upgraded");
    }
    assert_eq!(fleet.kubelets("test-2"), ["v1.29.9"], "test-2's upgrade was refused");
    let rollout = fleet.rollout_json();
    let residual: Vec<&str> = rollout["residual"].as_array().unwrap().iter().filter_map(|r| r["member"].as_str()).collect();
    assert_eq!(residual, ["test-2"], "{rollout:#}");
    assert_eq!(rollout["residual"][0]["state"], "Failed");
    assert_eq!(rollout["residual"][0]["target"]["kubernetes-version"], "1.30.5");
    assert_eq!(rollout["residual"][0]["target"]["pools"][0]["version"], "1.29.9", "the member's pools as found: {rollout:#}");
    let stages: Vec<&str> = rollout["stages"].as_array().unwrap().iter().filter_map(|s| s["state"].as_str()).collect();
    assert_eq!(stages, ["Completed", "Completed", "Completed"], "{rollout:#}");
    // Each member's run is reported and journaled under its name.
    let ran: Vec<&str> = report["patterns"].as_array().unwrap().iter().filter_map(|p| p["member"].as_str()).collect();
    assert_eq!(ran.len(), 4, "{ran:?}");
    let journal = PathBuf::from(report["journal"].as_str().unwrap());
    let journal_text = std::fs::read_to_string(&journal).unwrap();
    let answer = journal_text.lines().find(|l| l.contains("\"approval.answer\"")).expect("the answer is journaled");
    assert!(answer.contains("\"by\":\"release-bot\"") && answer.contains("\"via\":\"runner approve\""), "{answer}");
    let upgrades = journal_lines_on(&journal, "prod");
    assert!(upgrades.iter().any(|l| l["call"] == "cluster-write.upgrade-control-plane" && l["outcome"] == "ok"), "prod's own calls carry its name");
    assert!(journal_lines_on(&journal, "test-2").iter().any(|l| l["outcome"] != "ok" && l["call"].as_str().is_some_and(|c| c.starts_with("cluster-write."))));
    let retry = rollout["retry"].as_str().unwrap().to_string();
    assert_eq!(retry, "--config members=test-2");
    assert_eq!(rollout["retry-config"]["members"], "test-2", "{rollout:#}");
    assert_eq!(rollout["retry-config"]["kubernetes-version"], "1.30.5", "the frozen target: {rollout:#}");

    // The block lifted, `--residual` retries the residual set alone, with the run's own arguments.
    fleet.kubectl("test-2", &["delete", "configmap", "runner-lab-arm", "-n", "kube-system"]);
    let output = fleet.runner(&["exec", "staged-rollout", "--residual", &run_id, "--approve", "-o", "json"]);
    let report = json_of(&output);
    expect_exit(&output, 0);
    assert_eq!(fleet.kubelets("test-2"), ["v1.30.5"]);
    let ran: Vec<&str> = report["patterns"].as_array().unwrap().iter().filter_map(|p| p["member"].as_str()).collect();
    assert_eq!(ran, ["test-2"], "only the residual set ran: {report:#}");
    assert!(report["run_id"].as_str().is_some_and(|id| id != run_id), "a retry is a run of its own: {}", report["run_id"]);
    assert!(fleet.rollout_json()["residual"].as_array().unwrap().is_empty());
    // Nothing is left: a second retry has nothing to do.
    let retry_id = report["run_id"].as_str().unwrap();
    let nothing = fleet.runner(&["exec", "--residual", retry_id]);
    expect_exit(&nothing, 0);
    assert!(stderr(&nothing).contains("left nothing to retry"), "{}", stderr(&nothing));
}

#[test]
fn a_rollout_killed_during_test_resumes_without_running_dev_again() {
    // `runner demo fleet` does it all from processes of its own: a rollout approved by
    // `runner approve`, then one killed (SIGKILL) during the test stage and resumed.
    let dir = tempfile::Builder::new().prefix("runner-fleet-demo-").tempdir_in("/tmp").unwrap();
    let lab = Lab { dir };
    let output = lab.runner(&["demo", "fleet", "--dir", path(&lab.dir.path().join("demo")), "--subnet", "190", "-o", "json"]);
    let demo = json_of(&output);
    expect_exit(&output, 0);
    assert_eq!(demo["outcome"], "succeeded", "{demo:#}");
    let first = &demo["rollouts"][0];
    assert_eq!(first["approved_by"], "runner-demo", "{first:#}");
    let resumed = &demo["rollouts"][1]["resumed"];
    assert_eq!(resumed["resumed"], true, "{resumed:#}");
    assert_eq!(resumed["run_id"], demo["rollouts"][1]["killed"]["run_id"], "the same run, continued");
    assert_eq!(demo["rollouts"][1]["dev_run_again"], false, "{demo:#}");
    let again = demo["rollouts"][1]["members_run_again"].as_array().unwrap();
    assert!(!again.contains(&serde_json::json!("dev")) && again.contains(&serde_json::json!("prod")), "{again:?}");
    for member in resumed["members"].as_array().unwrap() {
        assert_eq!(member["state"], "Completed", "{member:#}");
        assert_eq!(member["kubelets"], serde_json::json!(["v1.30.5"]), "{member:#}");
    }
    let stages: Vec<&str> = resumed["stages"].as_array().unwrap().iter().filter_map(|s| s["state"].as_str()).collect();
    assert_eq!(stages, ["Completed", "Completed", "Completed"]);
    // The resumed attempt's journal says which answers came from the run log.
    let runs_dir = lab.dir.path().join("demo/runs");
    let run_id = resumed["run_id"].as_str().unwrap();
    let state: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(runs_dir.join(run_id).join("run.json")).unwrap()).unwrap();
    assert_eq!(state["resumed"], 1, "{state:#}");
    let journal = std::fs::read_to_string(state["journal"].as_str().unwrap()).unwrap();
    assert!(journal.lines().any(|l| l.contains("\"fleet.run-group\"") && l.contains("\"replayed\"")), "dev's stage was answered from the log");
}

#[test]
fn a_budget_of_zero_stops_the_rollout_before_prod_changes() {
    let fleet = FleetLabs::up(185);
    fleet.kubectl(
        "test-1",
        &["create", "configmap", "runner-lab-arm", "-n", "kube-system", "--from-literal=block-upgrades=usage has been detected on API extensions/v1beta1"],
    );
    let output = fleet.rollout(&[]);
    let report = json_of(&output);
    assert_ne!(output.status.code(), Some(0), "{report:#}");
    assert_eq!(fleet.kubelets("dev"), ["v1.30.5"]);
    assert_eq!(fleet.kubelets("prod"), ["v1.29.9"], "prod never started");
    let text = report.to_string();
    assert!(text.contains("more than the failure budget of 0 allows"), "{report:#}");
    let rollout = fleet.rollout_json();
    let residual: Vec<(&str, &str)> =
        rollout["residual"].as_array().unwrap().iter().map(|r| (r["member"].as_str().unwrap(), r["state"].as_str().unwrap())).collect();
    assert!(residual.contains(&("test-1", "Failed")) && residual.contains(&("prod", "NotStarted")), "{residual:?}");
    assert!(!residual.iter().any(|(m, _)| *m == "dev"));
}

#[test]
fn runner_stop_ends_a_rollout_during_its_soak_and_nothing_after_it_starts() {
    let fleet = FleetLabs::up(175);
    let mut rollout = Background::spawn(fleet.rollout_command(&["--approve", "--config", "stages=dev@60s;test;prod"]));
    let run_id = eventually("dev is upgraded and the rollout soaks", Duration::from_secs(600), || {
        assert!(rollout.try_wait().is_none(), "the rollout ended before its soak");
        let runs: serde_json::Value = serde_json::from_str(&stdout(&fleet.runner(&["runs", "-o", "json"]))).ok()?;
        let id = runs.as_array()?.first()?["id"].as_str()?.to_string();
        // The run log shows the soak begun: dev is done.
        let log = std::fs::read_to_string(fleet.lab.dir.path().join("runs").join(&id).join("calls.jsonl")).ok()?;
        let soaking = log.lines().any(|l| l.contains("\"begun\"") && l.contains("\"clock.sleep\""));
        (soaking && fleet.kubelets("dev") == ["v1.30.5"]).then_some(id)
    });
    // Within dev's soak: nothing is in flight.
    expect_exit(&fleet.runner(&["stop", &run_id]), 0);
    let asked = std::time::Instant::now();
    let output = rollout.wait_with_output();
    assert!(asked.elapsed() < Duration::from_secs(45), "the stop did not wait out the soak: {:?}", asked.elapsed());
    assert_eq!(output.status.code(), Some(3), "a stop is the sandbox stopping the run: {}", stderr(&output));
    assert!(stderr(&output).contains("stopped by `runner stop`"), "{}", stderr(&output));
    for member in ["test-1", "test-2", "prod"] {
        assert_eq!(fleet.kubelets(member), ["v1.29.9"], "{member} never started");
    }
    let runs: serde_json::Value = serde_json::from_str(&stdout(&fleet.runner(&["runs", "-o", "json"]))).unwrap();
    assert_eq!(runs[0]["state"], "stopped", "{runs:#}");
    let again = fleet.runner(&["stop", &run_id]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(stderr(&again).contains("is not running"), "{}", stderr(&again));

    // A stopped run resumes: what it did is answered from its log, the rest of the soak waited, then test and prod.
    let changed = fleet.runner(&["exec", "--resume", &run_id, "--config", "stages=dev"]);
    assert_eq!(changed.status.code(), Some(2), "a resume runs the run's own configuration: {}", stderr(&changed));
    assert!(stderr(&changed).contains("not kept"), "{}", stderr(&changed));
    let output = fleet.runner(&["exec", "--resume", &run_id, "-o", "json"]);
    let report = json_of(&output);
    expect_exit(&output, 0);
    assert_eq!(report["resumed"], true);
    assert_eq!(report["run"]["resumed"]["attempt"], 2, "{:#}", report["run"]);
    for member in MEMBERS {
        assert_eq!(fleet.kubelets(member), ["v1.30.5"], "{member}");
    }
    let ran: Vec<&str> = report["patterns"].as_array().unwrap().iter().filter_map(|p| p["member"].as_str()).collect();
    assert_eq!(ran, ["test-1", "test-2", "prod"], "dev is not run again: {report:#}");
    let runs: serde_json::Value = serde_json::from_str(&stdout(&fleet.runner(&["runs", "-o", "json"]))).unwrap();
    assert_eq!(runs[0]["state"], "succeeded", "{runs:#}");
    let finished = fleet.runner(&["exec", "--resume", &run_id]);
    assert_eq!(finished.status.code(), Some(2), "{}", stderr(&finished));
    assert!(stderr(&finished).contains("ended `succeeded`"), "{}", stderr(&finished));
}

//! The emergency failover as the seed's unplanned-failover drill, on the lab
//! (real PostgreSQL 15 servers): `runner demo failover` repeated, each time
//! the old primary rejoining, and the failover killed at every step boundary
//! and re-run until it finishes. `kubectl` and `psql` check the outcome as
//! independent clients.

mod common;

use std::time::Duration;

use common::interrupt::kill_after_mutating_steps;
use common::lab::*;
use common::*;

const PATTERN: &str = "postgres-emergency-failover";

/// The members streaming from `primary`, by application_name, as its own pg_stat_replication says.
fn streaming(lab: &Lab, primary: &str) -> Vec<String> {
    let names = lab.psql(primary, "SELECT string_agg(application_name, ' ' ORDER BY application_name) FROM pg_stat_replication WHERE state = 'streaming'");
    names.unwrap_or_default().split_whitespace().map(String::from).collect()
}

fn members(lab: &Lab) -> Vec<String> {
    lab.kubectl(&["get", "pods", "-l", "app=postgres", "-o", "jsonpath={.items[*].metadata.name}"]).split_whitespace().map(String::from).collect()
}

/// One writable primary behind the Service, every other member streaming from it
/// and holding `table`'s `rows` rows; the primary's name.
#[track_caller]
fn assert_one_primary_everyone_streaming(lab: &Lab, table: &str, rows: usize) -> String {
    let primary = lab.pg_primary();
    let selected = lab.kubectl(&["get", "svc", "postgres-primary", "-o", "jsonpath={.spec.selector.statefulset\\.kubernetes\\.io/pod-name}"]);
    assert_eq!(selected, primary, "the Service selects the primary");
    let others: Vec<String> = members(lab).into_iter().filter(|m| *m != primary).collect();
    assert_eq!(others.len(), 2, "{others:?}");
    eventually("every other member streams from the primary", Duration::from_secs(60), || (streaming(lab, &primary) == others).then_some(()));
    assert_eq!(lab.psql("svc/postgres-primary", "SHOW default_transaction_read_only").unwrap(), "off", "the primary takes writes");
    for member in &others {
        assert_eq!(lab.psql(member, "SELECT pg_is_in_recovery()").unwrap(), "t", "{member} is a standby");
        eventually(&format!("{member} replays every acknowledged row"), Duration::from_secs(30), || {
            (lab.psql(member, &format!("SELECT count(*) FROM {table}")).ok()? == rows.to_string()).then_some(())
        });
    }
    primary
}

#[test]
fn the_failover_drill_repeated_rejoins_the_old_primary_every_time() {
    let dir = tempfile::Builder::new().prefix("runner-failover-demo-").tempdir_in("/tmp").unwrap();
    // The guard brings the kept (last) lab down at the end.
    let lab = Lab { dir };
    let output = lab.runner(&["demo", "failover", "--repeat", "3", "--output", "json", "--dir", path(lab.dir.path()), "--subnet", "215", "--keep"]);
    let report = json_of(&output);
    expect_exit(&output, 0);
    assert_eq!(report["pattern"], PATTERN);
    assert_eq!(report["repeat"], 3);
    assert_eq!(report["clean_rejoins"], 3, "{report:#}");
    assert_eq!(report["lost_writes"], 0, "{report:#}");
    let runs = report["runs"].as_array().unwrap();
    assert_eq!(runs.len(), 3);
    for run in runs {
        assert_eq!(run["outcome"], "succeeded", "{run:#}");
        assert_eq!(run["kill"], "postmaster");
        assert_eq!(run["rejoined_cleanly"], true, "{run:#}");
        assert_ne!(run["killed"], run["new_primary"], "a standby took over: {run:#}");
        assert!(run["acknowledged_writes"].as_u64().unwrap() > 0, "the probe wrote through the failover: {run:#}");
        let streaming = run["final_cluster"]["streaming"].as_array().unwrap();
        assert!(streaming.contains(&run["killed"]), "{run:#}");
        let steps: Vec<&str> = run["steps"].as_array().unwrap().iter().filter_map(|s| s["name"].as_str()).collect();
        assert!(steps.iter().any(|s| s.starts_with("promote ")) && steps.iter().any(|s| s.starts_with("rejoin ")), "{steps:?}");
    }

    // The last lab, as kubectl and psql see it.
    let last = &runs[2];
    let primary = assert_one_primary_everyone_streaming(
        &lab,
        "runner_write_check",
        lab.psql("svc/postgres-primary", "SELECT count(*) FROM runner_write_check").unwrap().parse().unwrap(),
    );
    assert_eq!(primary, last["new_primary"].as_str().unwrap());
    let killed = last["killed"].as_str().unwrap();
    // The rejoined member replays a write made after the drill.
    lab.psql("svc/postgres-primary", "CREATE TABLE after_drill (n int); INSERT INTO after_drill VALUES (42)").unwrap();
    eventually(&format!("{killed} replays a new write"), Duration::from_secs(30), || {
        (lab.psql(killed, "SELECT n FROM after_drill").ok()? == "42").then_some(())
    });
}

/// Insert `n` through the Service; whether it was acknowledged.
fn acknowledged(lab: &Lab, n: usize) -> bool {
    lab.psql("svc/postgres-primary", &format!("INSERT INTO acknowledged VALUES ({n})")).is_ok()
}

#[test]
fn a_failover_killed_at_every_step_boundary_finishes_when_run_again() {
    let lab = Lab::up(&["--postgres", "--subnet", "216"]);
    let old = lab.pg_primary();
    lab.psql("svc/postgres-primary", "CREATE TABLE acknowledged (n int PRIMARY KEY)").unwrap();
    let mut written = 0;
    for _ in 0..100 {
        written += 1;
        assert!(acknowledged(&lab, written));
    }
    let pid = lab.postmaster_pid(&old).expect("the primary runs");
    // SAFETY: killing a database server this test's lab started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    // The kubelet restarts it, still a primary: the failover fences it and
    // stops it, so every step of the pattern runs (and is cut short once).
    eventually("the killed primary restarted", Duration::from_secs(60), || (lab.psql(&old, "SELECT pg_is_in_recovery()").ok()? == "f").then_some(()));

    let journal = lab.dir.path().join("failover.jsonl");
    let primary = format!("primary={old}");
    let args = ["exec", PATTERN, "--allow", "kube:*", "--allow", "postgres:*", "--approve", "--journal", path(&journal), "--config", &primary];
    let mut boundaries = Vec::new();
    let ending = loop {
        let ending = kill_after_mutating_steps(lab.command(&args), &journal, PATTERN, 1, Duration::from_secs(400));
        let text = format!("{}{}", stdout(&ending.output), stderr(&ending.output));
        // The first run asks for approval before its first change; a re-run resuming it does not ask again.
        let journaled = std::fs::read_to_string(&journal).unwrap_or_default();
        let asked = journaled
            .split_inclusive('\n')
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .any(|l| l["call"] == "approval.request" && l["outcome"] != "started");
        assert_eq!(asked, boundaries.is_empty(), "run {}: asked for approval {asked}:\n{text}", boundaries.len() + 1);
        if !boundaries.is_empty() {
            // A re-run says what it picks up before it does anything.
            // The log (stderr), not the report printed after the run.
            let said = stderr(&ending.output);
            // A kill that lands after the last change finds the failover recorded as done.
            let resuming = said
                .find("resuming an interrupted failover")
                .or_else(|| said.find("is recorded as done"))
                .unwrap_or_else(|| panic!("re-run {} does not say it resumes:\n{text}", boundaries.len()));
            let discover = said.find("discover").unwrap_or(said.len());
            assert!(resuming < discover, "the resume line comes first:\n{text}");
        }
        // Clients keep writing between the runs; what is acknowledged must survive.
        for _ in 0..5 {
            if acknowledged(&lab, written + 1) {
                written += 1;
            }
        }
        match ending.killed_after {
            Some(step) => {
                assert!(!boundaries.contains(&step) || step.starts_with("rejoin"), "{step} was reached twice: {boundaries:?}\n{text}");
                boundaries.push(step);
                assert!(boundaries.len() < 20, "the chain does not end: {boundaries:?}");
            }
            None => break ending,
        }
    };
    let text = format!("{}{}", stdout(&ending.output), stderr(&ending.output));
    assert_eq!(ending.output.status.code(), Some(0), "the last run finishes the failover:\n{text}\nkilled after: {boundaries:?}");
    // `promote` is not listed: pg_promote is sent within the harness's 10 ms after `stop` ends, so the
    // run killed there has promoted already and the re-run only finishes the promotion.
    // The kill follows the journal's step end, so on a loaded machine it can land a moment into
    // the next step and that boundary is passed by: require most of them, not each one.
    let named = ["announce", "fence", "choose", "prepare", "stop", "repoint-service", "verify-writes", "rejoin"];
    let hit = named.iter().filter(|step| boundaries.iter().any(|b| b.starts_with(*step))).count();
    eprintln!("killed after {hit} of {} named boundaries: {boundaries:?}", named.len());
    assert!(hit * 2 >= named.len(), "killed after only {hit} of the {} named boundaries: {boundaries:?}", named.len());
    let primary = assert_one_primary_everyone_streaming(&lab, "acknowledged", written);
    assert_ne!(primary, old, "a standby took over");
    assert_eq!(lab.psql(&primary, "SELECT count(*) FROM acknowledged").unwrap(), written.to_string(), "no acknowledged write lost");
    // The record on the Service says the failover is done; running it again changes nothing.
    let record = lab.kubectl(&["get", "svc", "postgres-primary", "-o", "jsonpath={.metadata.annotations.runner\\.dev/emergency-failover}"]);
    assert!(record.contains("\"phase\":\"done\""), "{record}");
    std::fs::remove_file(&journal).unwrap();
    let again = lab.runner(&args);
    let text = expect_exit(&again, 0);
    assert!(text.contains("recorded as done"), "{text}");
    let journal = std::fs::read_to_string(&journal).unwrap();
    assert!(!journal.contains("\"outcome\":\"started\""), "a re-run of a finished failover mutates nothing:\n{journal}");
}

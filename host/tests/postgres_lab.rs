//! The PostgreSQL patterns end to end on the lab (real PostgreSQL 15
//! servers): the Ferris wheel through `runner demo`, each preflight failure
//! stopping it before any change, a member killed mid-run, the emergency
//! failover after the primary is killed, bad targets, and both patterns
//! stopping at their approval when nobody can answer. `kubectl` and
//! `psql` check the outcome as independent clients.

mod common;

use std::process::Output;
use std::time::{Duration, Instant};

use common::lab::*;
use common::*;
use serde_json::Value;

const WHEEL: [&str; 8] = ["exec", "postgres-ferris-wheel", "--allow", "kube:*", "--allow", "postgres:*", "--approve", "--output=json"];

/// Journal entries of calls that changed something (or tried to).
fn mutations(journal: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["outcome"] != "started" && e["call"].as_str().is_some_and(|c| c.starts_with("kube-write.") || c.starts_with("postgres-write.")))
        .collect()
}

/// Pod -> pool of its Node, as kubectl reports them.
fn pools(lab: &Lab) -> Vec<(String, String)> {
    let pods = lab.kubectl(&["get", "pods", "-l", "app=postgres", "-o", r#"jsonpath={range .items[*]}{.metadata.name}={.spec.nodeName}{"\n"}{end}"#]);
    pods.lines()
        .filter_map(|l| l.split_once('='))
        .map(|(pod, node)| (pod.to_string(), lab.kubectl(&["get", "node", node, "-o", "jsonpath={.metadata.labels.agentpool}"]).trim().to_string()))
        .collect()
}

fn streaming_standbys(lab: &Lab, primary: &str) -> String {
    lab.psql(primary, "SELECT count(*) FROM pg_stat_replication WHERE state = 'streaming'").unwrap_or_default()
}

/// The Ferris wheel's preflight failed: exit 1, the reason printed, no mutation journaled, the cluster as it was.
#[track_caller]
fn assert_stopped_before_any_change(lab: &Lab, output: &Output, journal: &std::path::Path, reason: &str) {
    let report = expect_exit(output, 1);
    assert!(report.contains(reason), "expected `{reason}` in:\n{report}");
    assert_eq!(mutations(journal), Vec::<Value>::new(), "a failed preflight must change nothing");
    assert!(pools(lab).iter().all(|(_, pool)| pool == "nodepool1"), "{:?}", pools(lab));
    assert_eq!(lab.kubectl(&["get", "sts", "postgres-cluster", "-o", "jsonpath={.spec.replicas}"]), "3");
}

#[test]
fn the_demo_upgrades_every_member_and_loses_no_acknowledged_write() {
    let dir = tempfile::Builder::new().prefix("runner-demo-test-").tempdir_in("/tmp").unwrap();
    // The guard brings the kept lab down at the end.
    let lab = Lab { dir };
    let output = lab.runner(&["demo", "postgres", "--output", "json", "--dir", path(lab.dir.path()), "--subnet", "203", "--keep"]);
    let report = json_of(&output);
    expect_exit(&output, 0);
    assert_eq!(report["pattern"], "postgres-ferris-wheel");
    assert_eq!(report["outcome"], "succeeded");
    assert_eq!(report["lost_writes"], 0, "{report:#}");
    let acknowledged = report["acknowledged_writes"].as_u64().unwrap();
    assert!(acknowledged > 10, "the probe wrote all along: {report:#}");
    let downtime = report["downtime_ms"].as_f64().unwrap();
    assert!(downtime > 0.0 && downtime < report["wall_ms"].as_f64().unwrap(), "{report:#}");
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    for step in ["preflight", "add-member postgres-cluster-3", "promote postgres-cluster-3", "post"] {
        assert!(steps.contains(&step), "step {step} missing from {steps:?}");
    }
    assert!(report["steps"].as_array().unwrap().iter().all(|s| s["outcome"] == "succeeded" && s["ms"].as_f64().is_some()));
    assert_eq!(report["final_cluster"]["all_on_upgraded_pool"], true);
    assert_eq!(report["final_cluster"]["streaming_standbys"], 2);

    // kubectl and psql agree, as independent clients.
    let pools = pools(&lab);
    assert_eq!(pools.len(), 3, "{pools:?}");
    assert!(pools.iter().all(|(_, pool)| pool == "upgraded-pool"), "{pools:?}");
    let primary = lab.pg_primary();
    assert_eq!(streaming_standbys(&lab, &primary), "2");
    assert_eq!(lab.kubectl(&["get", "svc", "postgres-primary", "-o", "jsonpath={.spec.selector.statefulset\\.kubernetes\\.io/pod-name}"]), primary);
    let rows: u64 = lab.psql("svc/postgres-primary", "SELECT count(*) FROM runner_probe").unwrap().parse().unwrap();
    assert!(rows >= acknowledged, "every acknowledged probe row is on the primary: {rows} < {acknowledged}");
}

#[test]
fn each_failing_preflight_check_stops_the_wheel_before_any_change() {
    let lab = Lab::up(&["--postgres", "--subnet", "204"]);
    let journal = |name: &str| lab.dir.path().join(format!("{name}.jsonl"));
    let wheel = |name: &str, extra: &[&str]| {
        let journal = journal(name);
        let mut args: Vec<&str> = WHEEL.to_vec();
        args.extend(["--journal", path(&journal)]);
        args.extend_from_slice(extra);
        lab.runner(&args)
    };

    // No backup was ever taken.
    let output = wheel("no-backup", &[]);
    assert_stopped_before_any_change(&lab, &output, &journal("no-backup"), "backup Job postgres-backup: has not completed");

    // A backup, but an old one.
    assert!(lab.runner(&["lab", "--dir", path(lab.dir.path()), "backup"]).status.success());
    lab.kubectl(&["patch", "job", "postgres-backup", "--subresource=status", "--type=merge", "-p", r#"{"status":{"completionTime":"2020-01-01T00:00:00Z"}}"#]);
    let output = wheel("stale-backup", &[]);
    assert_stopped_before_any_change(&lab, &output, &journal("stale-backup"), "backup Job postgres-backup: completed");
    assert!(lab.runner(&["lab", "--dir", path(lab.dir.path()), "backup"]).status.success());

    // Too few synchronous standbys: the primary stops asking for any.
    let primary = lab.pg_primary();
    lab.psql(&primary, "ALTER SYSTEM SET synchronous_standby_names = ''").unwrap();
    lab.psql(&primary, "SELECT pg_reload_conf()").unwrap();
    eventually("standbys asynchronous", Duration::from_secs(20), || {
        (lab.psql(&primary, "SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'async'").ok()? == "2").then_some(())
    });
    let output = wheel("async", &[]);
    assert_stopped_before_any_change(&lab, &output, &journal("async"), "0 standby(s) in sync or quorum state");
    lab.psql(&primary, "ALTER SYSTEM RESET synchronous_standby_names").unwrap();
    lab.psql(&primary, "SELECT pg_reload_conf()").unwrap();
    eventually("standbys synchronous again", Duration::from_secs(20), || {
        (lab.psql(&primary, "SELECT count(*) FROM pg_stat_replication WHERE sync_state IN ('sync', 'quorum')").ok()? == "2").then_some(())
    });

    // Replay lag: one standby stops replaying while the primary writes.
    let lagging = if primary == "postgres-cluster-1" { "postgres-cluster-2" } else { "postgres-cluster-1" };
    lab.psql(lagging, "SELECT pg_wal_replay_pause()").unwrap();
    lab.psql("svc/postgres-primary", "CREATE TABLE lag_filler AS SELECT g, repeat('x', 200) AS pad FROM generate_series(1, 20000) g").unwrap();
    eventually("the lag shows on the primary", Duration::from_secs(20), || {
        let behind: i64 = lab.psql(&primary, &format!("SELECT coalesce(pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn), 0)::bigint FROM pg_stat_replication WHERE application_name = '{lagging}' OR client_addr = '{}'", lab.pod_field(lagging, ".status.podIP"))).ok()?.parse().ok()?;
        (behind > 1_000_000).then_some(())
    });
    let output = wheel("lag", &["--config", r#"preflight-input={"max-lag-bytes": 1000000}"#]);
    assert_stopped_before_any_change(&lab, &output, &journal("lag"), &format!("{lagging}: "));
    assert!(stdout(&output).contains("of WAL not replayed"), "{}", stdout(&output));
    lab.psql(lagging, "SELECT pg_wal_replay_resume()").unwrap();
}

#[test]
fn a_new_member_killed_while_it_syncs_rolls_back_with_the_cluster_serving() {
    let lab = Lab::up(&["--postgres", "--subnet", "205"]);
    assert!(lab.runner(&["lab", "--dir", path(lab.dir.path()), "backup"]).status.success());
    let primary = lab.pg_primary();
    let mut args: Vec<&str> = WHEEL.to_vec();
    args.extend(["--write-probe", "postgres-cluster", "--config", "member-timeout=15s"]);
    let mut child = lab.spawn(&args);
    // Kill the added member's server each time it starts, until the run ends.
    let deadline = Instant::now() + Duration::from_secs(240);
    let mut kills = 0;
    while child.try_wait().is_none() {
        assert!(Instant::now() < deadline, "the run did not end");
        if let Some(pid) = lab.postmaster_pid("postgres-cluster-3") {
            // SAFETY: killing a database server this test's lab started.
            unsafe { libc::kill(pid, libc::SIGKILL) };
            kills += 1;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let output = child.wait_with_output();
    let report = json_of(&output);
    assert!(kills > 0, "postgres-cluster-3 never ran: {report:#}");
    expect_exit(&output, 1);
    assert_eq!(report["outcome"], "rolled-back", "{report:#}");
    assert_eq!(report["probe"]["lost_writes"], 0, "{report:#}");
    assert_eq!(report["probe"]["verify_error"], Value::Null, "{report:#}");
    // Still serving, from the same primary, with three members.
    assert_eq!(lab.pg_primary(), primary);
    lab.psql("svc/postgres-primary", "INSERT INTO runner_probe (run, seq) VALUES ('after-rollback', 1)").unwrap();
    eventually("scaled back to 3", Duration::from_secs(60), || {
        (lab.kubectl(&["get", "pods", "-l", "app=postgres", "-o", "name"]).lines().count() == 3).then_some(())
    });
    assert_eq!(lab.kubectl(&["get", "sts", "postgres-cluster", "-o", "jsonpath={.spec.replicas}"]), "3");
}

#[test]
fn emergency_failover_after_the_primary_is_killed_keeps_every_acknowledged_write() {
    let lab = Lab::up(&["--postgres", "--subnet", "206"]);
    let old = lab.pg_primary();
    lab.psql("svc/postgres-primary", "CREATE TABLE acknowledged (n int PRIMARY KEY)").unwrap();
    // Each INSERT commits on its own: every success below is an acknowledged write.
    for batch in 0..10 {
        lab.psql("svc/postgres-primary", &format!("INSERT INTO acknowledged SELECT generate_series({}, {})", batch * 50 + 1, batch * 50 + 50)).unwrap();
    }
    let pid = lab.postmaster_pid(&old).expect("the primary runs");
    // SAFETY: killing a database server this test's lab started.
    unsafe { libc::kill(pid, libc::SIGKILL) };
    let journal = lab.dir.path().join("failover.jsonl");
    let output = lab.runner(&[
        "exec",
        "postgres-emergency-failover",
        "--allow",
        "kube:*",
        "--allow",
        "postgres:*",
        "--approve",
        "--output=json",
        "--journal",
        path(&journal),
        "--config",
        &format!("primary={old}"),
    ]);
    let report = json_of(&output);
    expect_exit(&output, 0);
    assert_eq!(report["outcome"], "succeeded", "{report:#}");
    let new = lab.pg_primary();
    assert_ne!(new, old, "a standby took over");
    assert_eq!(lab.kubectl(&["get", "svc", "postgres-primary", "-o", "jsonpath={.spec.selector.statefulset\\.kubernetes\\.io/pod-name}"]), new);
    assert_eq!(lab.psql("svc/postgres-primary", "SELECT count(*) FROM acknowledged").unwrap(), "500", "no acknowledged write lost");
    eventually("the old primary streams from the new one", Duration::from_secs(60), || {
        (lab.psql(&old, "SELECT pg_is_in_recovery()").ok()? == "t" && streaming_standbys(&lab, &new) == "2").then_some(())
    });
    assert_eq!(lab.psql(&old, "SELECT count(*) FROM acknowledged").ok().as_deref(), Some("500"));
}

#[test]
fn bad_targets_fail_clearly_and_change_nothing() {
    let lab = Lab::up(&["--postgres", "--subnet", "207"]);
    assert!(lab.runner(&["lab", "--dir", path(lab.dir.path()), "backup"]).status.success());
    let target = |name: &str, database: &str| {
        let file = lab.dir.path().join(format!("{name}.yaml"));
        std::fs::write(
            &file,
            format!(
                "kubeconfig: {}\nnamespace: default\ndatabases:\n  postgres-cluster:\n    engine: postgres\n    primaryService: postgres-primary\n{database}",
                lab.kubeconfig().display()
            ),
        )
        .unwrap();
        file
    };
    let wheel = |target: &std::path::Path, journal: &std::path::Path, extra: &[&str]| {
        let mut args: Vec<&str> = WHEEL.to_vec();
        args.extend(["--target", path(target), "--journal", path(journal)]);
        args.extend_from_slice(extra);
        lab.runner(&args)
    };

    // A StatefulSet that does not exist in the cluster.
    let missing = target("missing", "    statefulSet: pg-missing\n    credentials: {secret: postgres-credentials}\n");
    let journal = lab.dir.path().join("missing.jsonl");
    let output = wheel(&missing, &journal, &["--config", "statefulset=pg-missing"]);
    let text = expect_exit(&output, 1);
    assert!(text.contains("pg-missing") && text.contains("not-found"), "{text}");
    assert!(mutations(&journal).is_empty());

    // Members listening on a port nobody serves.
    let closed = target("closed", "    port: 5999\n    credentials: {secret: postgres-credentials}\n");
    let journal = lab.dir.path().join("closed.jsonl");
    let text = expect_exit(&wheel(&closed, &journal, &[]), 4);
    assert!(text.contains(":5999") && text.to_lowercase().contains("refused"), "{text}");
    assert!(mutations(&journal).is_empty());

    // A wrong password, from the environment.
    let wrong = target("wrong", "    credentials: {env: RUNNER_TEST_WRONG_PASSWORD}\n");
    let journal = lab.dir.path().join("wrong.jsonl");
    let output = {
        let mut args: Vec<&str> = WHEEL.to_vec();
        args.extend(["--target", path(&wrong), "--journal", path(&journal)]);
        lab.command(&args).env("RUNNER_TEST_WRONG_PASSWORD", "not-the-password").output().unwrap()
    };
    let text = expect_exit(&output, 4);
    assert!(text.contains("password authentication failed"), "{text}");
    assert!(
        !text.contains("not-the-password") && !std::fs::read_to_string(&journal).unwrap_or_default().contains("not-the-password"),
        "the password never shows"
    );
    assert!(mutations(&journal).is_empty());

    // A probe naming a database the target lacks is bad input, before anything runs.
    let text = expect_exit(&lab.runner(&["exec", "pg-healthy", "--write-probe", "mysql-cluster"]), 2);
    assert!(text.contains("no database `mysql-cluster`") && text.contains("postgres-cluster"), "{text}");

    // The cluster is as it was.
    assert!(pools(&lab).iter().all(|(_, pool)| pool == "nodepool1"));
    assert_eq!(lab.pg_primary(), "postgres-cluster-0");
}

/// The journal's outcome lines (each call as it ended), every interface.
fn journal_calls(journal: &std::path::Path) -> Vec<Value> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .filter(|e| e["outcome"] != "started")
        .collect()
}

/// Issue 14 item 9: without `--approve` and without a terminal (stdin is not
/// one here) nobody can approve, so each PostgreSQL pattern stops at its
/// question: the emergency failover before any change, the Ferris wheel
/// before its first switchover, undoing only the pin and the member it added.
/// Both end with exit 4 and say how to approve. Under `--dry-run` the
/// question is in the plan, first; on a terminal a typed `n` ends the
/// failover `rolled-back` (exit 1) with nothing changed.
#[test]
fn without_approve_or_a_terminal_the_patterns_stop_at_their_question() {
    let lab = Lab::up(&["--postgres", "--subnet", "208"]);
    assert!(lab.runner(&["lab", "--dir", path(lab.dir.path()), "backup"]).status.success());
    let primary = lab.pg_primary();
    let primary_config = format!("primary={primary}");
    let failover = |journal: &std::path::Path, extra: &[&str]| {
        let mut args = vec!["exec", "postgres-emergency-failover", "--allow", "kube:*", "--allow", "postgres:*", "--output=json", "--journal", path(journal)];
        args.extend(["--config", primary_config.as_str()]);
        args.extend_from_slice(extra);
        lab.runner(&args)
    };

    // The dry run plans the question before the first change.
    let journal = lab.dir.path().join("failover-plan.jsonl");
    let output = failover(&journal, &["--dry-run"]);
    let report = json_of(&output);
    assert_eq!(report["plan"][0]["call"], "approval.request", "{report:#}");
    assert!(report["plan"][0]["args"]["summary"].as_str().unwrap().contains(&format!("in place of failed primary {primary}")), "{report:#}");

    // The failover: the question is its first mutating call, and nothing follows it.
    let journal = lab.dir.path().join("failover.jsonl");
    let output = failover(&journal, &[]);
    let text = expect_exit(&output, 4);
    assert!(text.contains("approval needed: pass --approve or run on a terminal"), "{text}");
    let calls = journal_calls(&journal);
    let asked = calls.iter().position(|c| c["call"] == "approval.request").unwrap_or_else(|| panic!("no approval.request journaled: {calls:#?}"));
    assert_eq!(calls[asked]["outcome"], "unavailable", "{:#}", calls[asked]);
    assert_eq!(mutations(&journal), Vec::<Value>::new(), "nothing changed, before the question or after it");
    assert_eq!(lab.pg_primary(), primary);
    let annotation = lab.kubectl(&["get", "svc", "postgres-primary", "-o", "jsonpath={.metadata.annotations.runner\\.dev/emergency-failover}"]);
    assert_eq!(annotation, "", "no failover announced");

    // On a terminal (`script` gives it one) the operator types n: rolled back (exit 1), nothing changed.
    let journal = lab.dir.path().join("failover-declined.jsonl");
    let runner = assert_cmd::cargo::cargo_bin("runner");
    let line = format!(
        "{} exec postgres-emergency-failover --allow 'kube:*' --allow 'postgres:*' --journal {} --config {primary_config}",
        runner.display(),
        path(&journal)
    );
    let mut child = std::process::Command::new("script")
        .args(["-qec", &line, "/dev/null"])
        .env_remove("RUNNER_LOG")
        .env_remove("KUBECONFIG")
        .env("RUNNER_LAB_DIR", lab.dir.path())
        .env("RUNNER_CACHE_DIR", lab.dir.path().join("cache"))
        .env("RUNNER_POLICY_PATH", repo().join("policies/dist"))
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut typing = child.stdin.take().unwrap();
    std::io::Write::write_all(&mut typing, b"n\n").unwrap();
    let output = child.wait_with_output().unwrap();
    drop(typing);
    let text = String::from_utf8_lossy(&output.stdout);
    assert!(text.contains(&format!("in place of failed primary {primary}")) && text.contains("Approve? [y/N]"), "it asked: {text}");
    assert!(text.contains("the operator declined to promote"), "{text}");
    assert_eq!(output.status.code(), Some(1), "{text}");
    assert_eq!(mutations(&journal), Vec::<Value>::new(), "a no changes nothing");
    assert_eq!(lab.pg_primary(), primary);

    // The Ferris wheel: the pin and the added member before the question are undone after it; nothing else.
    let journal = lab.dir.path().join("wheel.jsonl");
    let mut args: Vec<&str> = WHEEL.iter().copied().filter(|a| *a != "--approve").collect();
    args.extend(["--journal", path(&journal)]);
    let output = lab.runner(&args);
    let text = expect_exit(&output, 4);
    assert!(text.contains("approval needed: pass --approve or run on a terminal (to promote postgres-cluster-3 and retire"), "{text}");
    let calls = journal_calls(&journal);
    let asked = calls.iter().position(|c| c["call"] == "approval.request").unwrap_or_else(|| panic!("no approval.request journaled: {calls:#?}"));
    let after: Vec<&Value> =
        calls[asked + 1..].iter().filter(|e| e["call"].as_str().is_some_and(|c| c.starts_with("kube-write.") || c.starts_with("postgres-write."))).collect();
    let described: Vec<String> = after.iter().map(|e| format!("{} {}", e["call"], e["args"])).collect();
    assert_eq!(after.len(), 3, "after the question only the pin, the added member and its slot are undone: {described:#?}");
    assert_eq!(after[0]["call"], "kube-write.patch", "{described:#?}");
    assert_eq!(after[0]["args"]["body"]["spec"]["template"]["spec"]["nodeSelector"]["agentpool"], "nodepool1", "{described:#?}");
    assert_eq!((&after[1]["call"], &after[1]["args"]["replicas"]), (&Value::from("kube-write.scale"), &Value::from(3)), "{described:#?}");
    assert!(after[2]["args"]["sql"].as_str().unwrap().contains("pg_drop_replication_slot"), "{described:#?}");
    assert_eq!(lab.pg_primary(), primary);
    assert_eq!(lab.psql(&primary, "SHOW default_transaction_read_only").unwrap(), "off", "never fenced");
    assert!(pools(&lab).iter().all(|(_, pool)| pool == "nodepool1"), "{:?}", pools(&lab));
    eventually("scaled back to 3", Duration::from_secs(60), || {
        (lab.kubectl(&["get", "pods", "-l", "app=postgres", "-o", "name"]).lines().count() == 3).then_some(())
    });
    let set: Value = serde_json::from_str(&lab.kubectl(&["get", "sts", "postgres-cluster", "-o", "json"])).unwrap();
    assert_eq!(set["spec"]["replicas"], 3);
    assert!(set["metadata"]["annotations"]["runner.dev/ferris-wheel"].is_null(), "{:#}", set["metadata"]);
}

//! Redis end to end on the lab's 6-member cluster (real redis-server
//! processes): the backend, the `redis-cluster-healthy` gate passing and
//! failing on purpose, and the `redis-rolling-replace` pattern with the
//! write probe running, including a master killed mid-run. `kubectl` and
//! `redis-cli` are the independent checks. One lab per test, subnets 220-229.

mod common;

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use common::lab::*;
use common::redis_cluster::{RedisLab, server_pid, signal};
use common::*;
use runner::backends::ErrorCode;
use runner::probe::redis::RedisProbe;
use runner::target::CredentialSource;
use serde_json::Value;

fn pod_ready(pod: &Value) -> bool {
    pod["status"]["conditions"].as_array().is_some_and(|c| c.iter().any(|c| c["type"] == "Ready" && c["status"] == "True"))
}

const PATTERN: [&str; 8] = ["exec", "redis-rolling-replace", "--allow", "kube:*", "--allow", "redis:*", "--approve", "--output"];

fn mutating_calls(journal: &Path) -> Vec<String> {
    std::fs::read_to_string(journal)
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|l| l["outcome"] != "started" && l["call"].as_str().is_some_and(|c| c.contains("-write.")))
        .map(|l| l["call"].as_str().unwrap_or_default().to_string())
        .collect()
}

#[test]
fn the_backend_reads_writes_and_maps_errors() {
    let lab = RedisLab::up("220");
    let target = lab.target();
    let redis = lab.backends(&target).redis;
    let call = |member: &str, args: &[&str]| lab.rt.block_on(redis.command(member, &args.iter().map(|a| a.to_string()).collect::<Vec<_>>()));
    let json = |member: &str, args: &[&str]| -> Value { serde_json::from_str(&call(member, args).unwrap_or_else(|e| panic!("{e}"))).unwrap() };

    assert!(json("redis-cluster-0", &["CLUSTER", "INFO"]).as_str().unwrap().contains("cluster_state:ok"));
    assert_eq!(json("redis-cluster-1", &["PING"]), "PONG");
    let role = json("redis-cluster-0", &["ROLE"]);
    assert_eq!(role[0], "master");
    assert!(role[1].is_u64() && role[2].is_array(), "{role}");
    // CLUSTER SLOTS nests arrays of numbers and strings.
    let slots = json("redis-cluster-2", &["CLUSTER", "SLOTS"]);
    assert_eq!(slots.as_array().unwrap().len(), 3, "{slots}");
    assert!(slots[0][0].is_u64() && slots[0][2][0].is_string(), "{slots}");

    // A write on the master that owns the key's slot, then read back; a missing key is null.
    let owner_of = |key: &str| -> String {
        let slot = json("redis-cluster-0", &["CLUSTER", "KEYSLOT", key]).as_u64().unwrap();
        let slots = json("redis-cluster-0", &["CLUSTER", "SLOTS"]);
        let range = slots.as_array().unwrap().iter().find(|r| r[0].as_u64().unwrap() <= slot && slot <= r[1].as_u64().unwrap()).unwrap();
        let ip = range[2][0].as_str().unwrap();
        let pods = lab.pods();
        pods.iter().find(|p| p["status"]["podIP"] == ip).unwrap()["metadata"]["name"].as_str().unwrap().to_string()
    };
    let owner = owner_of("runner-test-key");
    assert_eq!(json(&owner, &["SET", "runner-test-key", "v1"]), "OK");
    assert_eq!(json(&owner, &["GET", "runner-test-key"]), "v1");
    assert_eq!(json(&owner, &["GET", "{runner-test-key}-missing"]), Value::Null);
    let other = ["redis-cluster-0", "redis-cluster-1", "redis-cluster-2"].into_iter().find(|m| *m != owner).unwrap();
    let moved = call(other, &["GET", "runner-test-key"]).unwrap_err();
    assert_eq!(moved.code, ErrorCode::Conflict, "{moved}");
    assert!(moved.message.starts_with(&format!("member {other}: MOVED ")), "{moved}");
    let unknown = call("redis-cluster-0", &["NO-SUCH-COMMAND"]).unwrap_err();
    assert_eq!(unknown.code, ErrorCode::Invalid, "{unknown}");
    assert!(unknown.message.contains("unknown command"), "{unknown}");
    // The connection is reused after a server error.
    assert_eq!(json("redis-cluster-0", &["PING"]), "PONG");
    // redis-cli sees the write the backend made.
    assert_eq!(lab.cli(&lab.ip(&owner), &["GET", "runner-test-key"]).unwrap().trim(), "v1");

    // Unknown members: not a member name at all, or no such Pod.
    assert_eq!(call("redis-cluster-9", &["PING"]).unwrap_err().code, ErrorCode::NotFound);
    let foreign = call("postgres-cluster-0", &["PING"]).unwrap_err();
    assert_eq!(foreign.code, ErrorCode::NotFound, "{foreign}");
    assert!(foreign.message.contains("not a member of a Redis cluster"), "{foreign}");
    assert_eq!(call("redis-cluster-0", &[]).unwrap_err().code, ErrorCode::Invalid);

    // A wrong password: denied, and the password never appears in the message.
    let secret = lab.dir.path().join("wrong-redis.json");
    std::fs::write(
        &secret,
        r#"{"apiVersion":"v1","kind":"Secret","metadata":{"name":"wrong-redis","namespace":"default"},"data":{"password":"bm90LXRoZS1wYXNzd29yZA=="}}"#,
    )
    .unwrap();
    lab.kubectl(&["create", "-f", path(&secret)]);
    let mut wrong = lab.target();
    wrong
        .databases
        .iter_mut()
        .filter(|d| d.name == "redis-cluster")
        .for_each(|d| d.credentials = CredentialSource::Secret { name: "wrong-redis".into(), key: "password".into() });
    let denied = lab.rt.block_on(lab.backends(&wrong).redis.command("redis-cluster-0", &["PING".to_string()])).unwrap_err();
    assert_eq!(denied.code, ErrorCode::Denied, "{denied}");
    assert!(!denied.message.contains("not-the-password") && !denied.message.contains(&lab.password), "{denied}");

    // A closed port: unavailable.
    let mut closed = lab.target();
    closed.databases.iter_mut().filter(|d| d.name == "redis-cluster").for_each(|d| d.port = 6390);
    let refused = lab.rt.block_on(lab.backends(&closed).redis.command("redis-cluster-0", &["PING".to_string()])).unwrap_err();
    assert_eq!(refused.code, ErrorCode::Unavailable, "{refused}");
    assert!(refused.message.contains("6390"), "{refused}");

    // Through a component: the gate world refuses a write before any backend sees it.
    let journal = lab.journal("gate");
    let output = lab.runner(&["exec", "redis-cluster-healthy", "--journal", path(&journal)]);
    expect_exit(&output, 0);
    let text = std::fs::read_to_string(&journal).unwrap();
    assert!(text.contains("\"redis-read.command\""), "{text}");
    assert!(!text.contains(&lab.password), "the journal holds no password");
}

#[test]
fn the_gate_passes_and_fails_naming_the_member() {
    let lab = RedisLab::up("221");
    let output = lab.runner(&["exec", "redis-cluster-healthy", "--output", "json"]);
    expect_exit(&output, 0);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(report["outcome"], "pass", "{report}");
    assert_eq!(report["evidence"]["cluster"]["masters"], 3, "{report}");

    // A replica down (its process stopped, as a hung server): the gate fails and names it.
    let replica = lab.pods().iter().find(|p| p["metadata"]["labels"]["role"] == "replica").unwrap()["metadata"]["name"].as_str().unwrap().to_string();
    let pid = server_pid(&lab.ip(&replica));
    signal(pid, libc::SIGSTOP);
    eventually("the stopped replica to be not Ready", Duration::from_secs(30), || (!lab.ready(&replica)).then_some(()));
    let output = lab.runner(&["exec", "redis-cluster-healthy"]);
    signal(pid, libc::SIGCONT);
    let text = expect_exit(&output, 1);
    assert!(text.contains(&format!("{replica}: Pod not Ready")), "{text}");
    lab.wait_healthy();
    lab.wait_gate_passes();

    // Slots uncovered: a master forgets 100 of its slots.
    let master_ip = lab.ip("redis-cluster-0");
    lab.cli(&master_ip, &["CLUSTER", "DELSLOTSRANGE", "0", "99"]).expect("DELSLOTSRANGE");
    let output = lab.runner(&["exec", "redis-cluster-healthy"]);
    let text = expect_exit(&output, 1);
    assert!(text.contains("redis-cluster-0: cluster_state:fail"), "{text}");
    assert!(text.contains("slots 0-99 (100 slots) have no master (seen by redis-cluster-0)"), "{text}");

    // The pattern stops at its preflight gate before any change.
    let journal = lab.journal("pattern");
    let output = lab.runner(&[&PATTERN[..], &["text", "--journal", path(&journal)]].concat());
    let text = expect_exit(&output, 1);
    assert!(text.contains("gate `preflight` failed") && text.contains("nothing was changed"), "{text}");
    assert_eq!(mutating_calls(&journal), Vec::<String>::new());
    assert_eq!(lab.kubectl(&["get", "statefulset", "redis-cluster", "-o", "jsonpath={.spec.template.spec.nodeSelector.agentpool}"]).trim(), "nodepool1");

    lab.cli(&master_ip, &["CLUSTER", "ADDSLOTSRANGE", "0", "99"]).expect("ADDSLOTSRANGE");
    lab.wait_healthy();
}

/// Run the pattern with the probe writing throughout; the probe's summary and the output.
fn run_with_probe(lab: &RedisLab, during: impl FnOnce(&RedisLab)) -> (runner::probe::ProbeSummary, Output, Duration) {
    let probe = RedisProbe::start(lab.seeds(), Some(lab.password.clone()), 100).unwrap_or_else(|e| panic!("{e}"));
    let journal = lab.journal("pattern");
    let started = Instant::now();
    let child = lab
        .command(&[&PATTERN[..], &["json", "--journal", path(&journal)]].concat())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    during(lab);
    let output = child.wait_with_output().unwrap();
    let wall = started.elapsed();
    (probe.finish(), output, wall)
}

#[test]
fn the_pattern_moves_every_member_with_no_lost_write() {
    let lab = RedisLab::up("222");
    let (summary, output, wall) = run_with_probe(&lab, |_| {});
    eprintln!("redis-rolling-replace on the lab: {wall:?}; probe: {summary:?}");
    let text = expect_exit(&output, 0);
    let report: Value = serde_json::from_slice(&output.stdout).unwrap_or_else(|e| panic!("{e}: {text}"));
    assert_eq!(report["outcome"], "succeeded", "{report}");
    let steps: Vec<&str> = report["steps"].as_array().unwrap().iter().map(|s| s["name"].as_str().unwrap()).collect();
    assert_eq!(steps.iter().filter(|s| s.starts_with("failover ")).count(), 3, "{steps:?}");
    assert_eq!(steps.iter().filter(|s| s.starts_with("replace ")).count(), 6, "{steps:?}");
    assert_eq!(steps.last(), Some(&"post"), "{steps:?}");

    for pod in lab.pods() {
        assert!(pod["spec"]["nodeName"].as_str().unwrap().contains("upgradedpool"), "{} on {}", pod["metadata"]["name"], pod["spec"]["nodeName"]);
    }
    assert_eq!(lab.topology(), (3, 3, true));
    let set: Value = serde_json::from_str(&lab.kubectl(&["get", "statefulset", "redis-cluster", "-o", "json"])).unwrap();
    assert_eq!(set["spec"]["template"]["spec"]["nodeSelector"]["agentpool"], "upgraded-pool");
    assert!(set["metadata"]["annotations"]["runner.dev/redis-rolling-replace"].is_null(), "{}", set["metadata"]);

    assert!(summary.acknowledged_writes > 100, "{summary:?}");
    assert_eq!(summary.lost_writes, 0, "{summary:?}");
    assert_eq!(summary.failed_ops, 0, "{summary:?}");

    // Run again: nothing to move, still healthy.
    let output = lab.runner(&[&PATTERN[..], &["text"]].concat());
    let text = expect_exit(&output, 0);
    assert!(text.contains("nothing needed doing"), "{text}");
}

#[test]
fn a_master_killed_mid_run_loses_no_acknowledged_write() {
    let lab = RedisLab::up("223");
    let (summary, output, wall) = run_with_probe(&lab, |lab| {
        // Once the first replica runs on the upgraded pool, kill a master still on the old one.
        let victim = eventually("a replica to be moved", Duration::from_secs(120), || {
            let pods = lab.pods();
            let moved = pods.iter().any(|p| p["spec"]["nodeName"].as_str().is_some_and(|n| n.contains("upgradedpool")) && pod_ready(p));
            let master =
                pods.iter().find(|p| p["metadata"]["labels"]["role"] == "master" && p["spec"]["nodeName"].as_str().is_some_and(|n| n.contains("nodepool1")));
            if moved { master.map(|m| m["status"]["podIP"].as_str().unwrap().to_string()) } else { None }
        });
        signal(server_pid(&victim), libc::SIGKILL);
    });
    eprintln!("redis-rolling-replace with a master killed: {wall:?}; exit {:?}; probe: {summary:?}", output.status.code());
    let text = format!("{}{}", stdout(&output), stderr(&output));
    match output.status.code() {
        Some(0) => {
            for pod in lab.pods() {
                assert!(pod["spec"]["nodeName"].as_str().unwrap().contains("upgradedpool"), "{text}");
            }
        }
        // Stopped safely: it says so and what state it left.
        Some(1) | Some(4) => assert!(text.contains("stopped:") && text.contains("run the pattern again to resume"), "{text}"),
        other => panic!("exit {other:?}: {text}"),
    }
    lab.wait_healthy();
    assert_eq!(summary.lost_writes, 0, "{summary:?}");
    assert!(summary.acknowledged_writes > 100, "{summary:?}");
}

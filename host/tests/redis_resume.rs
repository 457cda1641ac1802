//! An interrupted `redis-rolling-replace` resumes at every step boundary:
//! one chain of runs over a whole rolling replacement of the lab's 6-member
//! Redis cluster, each run SIGKILLed right after its first step that changed
//! something, until a run ends by itself. A writer of the test's own (a
//! cluster-aware client, `SET` + `WAIT 1`) writes through the whole chain;
//! afterwards `redis-cli` and `kubectl`, as independent clients, check that
//! every slot is served by a master, every master has a linked replica,
//! every Pod runs on the upgraded pool, and every acknowledged write reads
//! back. Subnet 218.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::interrupt::kill_after_mutating_steps;
use common::lab::eventually;
use common::redis_cluster::{RedisLab, server_pid, signal};
use common::*;
use redis::cluster::ClusterClientBuilder;
use redis::cluster_async::ClusterConnection;
use redis::{ConnectionAddr, IntoConnectionInfo};
use serde_json::Value;

const COMPONENT: &str = "redis-rolling-replace";
const PATTERN: [&str; 9] = ["exec", COMPONENT, "--allow", "kube:*", "--allow", "redis:*", "--approve", "--output", "text"];
const RESUMING: &str = "resuming an interrupted rotation: ";
const ANNOTATION: &str = "runner.dev/redis-rolling-replace";
/// Twelve runs visit every boundary of a 3+3 cluster (pin, 6 replacements, 3 failovers, restore, and the run that ends by itself); more means a re-run did not go on.
const MAX_RUNS: usize = 16;
/// One run: the preflight may wait up to the pattern's settle-timeout (2 min), then one step.
const RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// What one run of the chain did, from its journal.
struct Run {
    /// The step after which it was killed; `None` for the run that ended by itself.
    killed_after: Option<String>,
    /// Steps of the pattern that began after that boundary: the kill came in the middle of them.
    begun_after: Vec<String>,
    /// Steps of the pattern that succeeded.
    succeeded: Vec<String>,
    /// The pattern's log lines, in order.
    logs: Vec<String>,
    /// Whether it asked for approval (`approval.request`).
    asked: bool,
}

fn journal_lines(journal: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(journal).unwrap_or_default();
    // A killed run's last line may be half written.
    text.split_inclusive('\n').filter(|l| l.ends_with('\n')).filter_map(|l| serde_json::from_str(l).ok()).collect()
}

fn read_run(journal: &Path, killed_after: Option<String>) -> Run {
    let lines: Vec<Value> = journal_lines(journal).into_iter().filter(|l| l["component"] == COMPONENT).collect();
    let step = |l: &Value, call: &str| (l["call"] == call).then(|| l["args"]["name"].as_str().unwrap_or_default().to_string());
    let succeeded = lines.iter().filter(|l| l["args"]["outcome"] == "succeeded").filter_map(|l| step(l, "report.step-end")).collect();
    let logs = lines.iter().filter(|l| l["call"] == "report.log").map(|l| l["args"]["message"].as_str().unwrap_or_default().to_string()).collect();
    let mut begun_after = Vec::new();
    if let Some(boundary) = &killed_after {
        let end = lines.iter().position(|l| step(l, "report.step-end").as_ref() == Some(boundary)).expect("the boundary's step end is in the journal");
        begun_after = lines[end..].iter().filter_map(|l| step(l, "report.step-begin")).collect();
    }
    let asked = lines.iter().any(|l| l["call"] == "approval.request");
    Run { killed_after, begun_after, succeeded, logs, asked }
}

/// The rotation's steps (neither discover, preflight nor post: every run takes those).
fn rotation_step(name: &str) -> bool {
    !["discover", "preflight", "post", "stop"].contains(&name)
}

/// The action a resumed run's first line says comes next, when it names one.
fn announced_next(line: &str) -> Option<String> {
    let (_, next) = line.rsplit_once("; next")?;
    let next = next.split_once(": ")?.1;
    if next.starts_with("replace ") || next.starts_with("failover ") {
        Some(next.to_string())
    } else if next.starts_with("nothing left to move") {
        Some("restore-update-strategy".into())
    } else {
        None
    }
}

#[test]
fn a_rolling_replacement_killed_after_every_step_resumes_and_loses_no_acknowledged_write() {
    let lab = RedisLab::up("218");
    let statefulset = |path: &str| lab.kubectl(&["get", "statefulset", "redis-cluster", "-o", &format!("jsonpath={{{path}}}")]).trim().to_string();
    let strategy_before = statefulset(".spec.updateStrategy.type");
    let annotation = || -> Option<String> {
        let set: Value = serde_json::from_str(&lab.kubectl(&["get", "statefulset", "redis-cluster", "-o", "json"])).unwrap();
        set["metadata"]["annotations"][ANNOTATION].as_str().map(String::from)
    };
    let annotated = || annotation().is_some();
    let mut kept_annotation = None;
    let members: Vec<String> = (0..6).map(|i| format!("redis-cluster-{i}")).collect();

    let writer = Writer::start(&lab.seeds(), &lab.password);
    let chain_started = Instant::now();
    let mut runs: Vec<Run> = Vec::new();
    let finished = loop {
        assert!(runs.len() < MAX_RUNS, "{MAX_RUNS} runs and the rotation is not over: a re-run did not go on from where the last one stopped");
        let n = runs.len() + 1;
        let found = annotation();
        let resuming = found.is_some();
        kept_annotation = kept_annotation.or(found);
        let journal = lab.journal(&format!("run-{n}"));
        let started = Instant::now();
        let command = lab.command(&[&PATTERN[..], &["--journal", path(&journal)]].concat());
        let ending = kill_after_mutating_steps(command, &journal, COMPONENT, 1, RUN_TIMEOUT);
        let output = format!("{}{}", stdout(&ending.output), stderr(&ending.output));
        let run = read_run(&journal, ending.killed_after);
        let mid_step = if run.begun_after.is_empty() { String::new() } else { format!(" (then it had begun: {})", run.begun_after.join(", ")) };
        match &run.killed_after {
            Some(step) => eprintln!("run {n} (resuming: {resuming}): killed after step `{step}`{mid_step}, {:.1} s", started.elapsed().as_secs_f64()),
            None => {
                eprintln!("run {n} (resuming: {resuming}): ended by itself, exit {:?}, {:.1} s", ending.output.status.code(), started.elapsed().as_secs_f64())
            }
        }
        // A run that finds an interrupted run's annotation says so first, and what comes next.
        let first_log = run.logs.first().cloned().unwrap_or_default();
        if resuming {
            assert!(first_log.starts_with(RESUMING), "run {n} found the annotation but began with `{first_log}`:\n{output}");
            assert!(first_log.contains("done: ") && first_log.contains("; next"), "{first_log}");
            assert!(output.contains(RESUMING), "the resuming line is on stderr:\n{output}");
            // The step it announces is the one it takes, when the kill fell on a boundary (not in a step under way).
            let previous_clean = runs.last().is_some_and(|r| r.begun_after.is_empty());
            if let (true, Some(next)) = (previous_clean, announced_next(&first_log)) {
                let taken = run.succeeded.iter().chain(&run.begun_after).find(|s| rotation_step(s) && *s != "pin-upgraded-pool");
                assert_eq!(taken, Some(&next), "run {n} announced `{next}`: {first_log}");
            }
            // Approved before the pin: a resumed run does not ask again.
            assert!(!run.asked, "run {n} resumed and asked for approval again:\n{output}");
            // The pin is in place: a resumed run does not patch it again.
            assert!(!run.succeeded.iter().any(|s| s == "pin-upgraded-pool"), "run {n} pinned again: {:?}", run.succeeded);
        } else {
            assert!(!output.contains(RESUMING), "run {n} found no annotation yet says it resumes:\n{output}");
            // A rotation asks before its pin; a run that finds nothing to do changes nothing and asks nothing.
            let pinned = run.succeeded.iter().any(|s| s == "pin-upgraded-pool");
            assert_eq!(run.asked, pinned, "run {n}: asked for approval {}, pinned {pinned}:\n{output}", run.asked);
        }
        let done = run.killed_after.is_none();
        runs.push(run);
        if done {
            break (ending.output, output);
        }
    };
    let chain_wall = chain_started.elapsed();
    let (finished, finished_text) = finished;
    assert_eq!(finished.status.code(), Some(0), "the last run did not succeed:\n{finished_text}");
    assert!(finished_text.contains("every member of redis-cluster runs on pool upgraded-pool"), "{finished_text}");

    // The last boundary, which a kill after the last replacement can miss (the run may get to
    // the restore before the kill lands), made by hand: every member moved, the pin and its
    // annotation still there; and a member that does not answer (its server stopped) when the
    // re-run starts, as an eviction the killed run did not live to follow leaves it. The re-run
    // says so, its preflight waits for the member instead of failing, and it puts back the
    // update strategy.
    let kept_annotation = kept_annotation.expect("a run found the annotation");
    let interrupted = serde_json::json!({"metadata": {"annotations": {ANNOTATION: kept_annotation}}, "spec": {"updateStrategy": {"type": "OnDelete", "rollingUpdate": null}}});
    lab.kubectl(&["patch", "statefulset", "redis-cluster", "--type", "merge", "-p", &interrupted.to_string()]);
    let silent = "redis-cluster-4";
    let pid = server_pid(&lab.ip(silent));
    signal(pid, libc::SIGSTOP);
    eventually(&format!("{silent} to be not Ready"), Duration::from_secs(60), || (!lab.ready(silent)).then_some(()));
    let journal = lab.journal("run-last-boundary");
    let child = lab.spawn(&[&PATTERN[..], &["--journal", path(&journal)]].concat());
    let first_log = eventually("the re-run's first line", Duration::from_secs(120), || read_run(&journal, None).logs.first().cloned());
    // The journal is written out at step ends and whenever its buffer fills: the gate's calls
    // show once it has been looking at the cluster with the member stopped for a while.
    let gate_looking = |l: &Value| l["component"] == "redis-cluster-healthy";
    eventually("the re-run's preflight gate to look", Duration::from_secs(120), || journal_lines(&journal).iter().any(gate_looking).then_some(()));
    signal(pid, libc::SIGCONT);
    let output = child.wait_with_output();
    let text = expect_exit(&output, 0);
    eprintln!("the last boundary, {silent} stopped: {first_log}");
    assert!(first_log.starts_with(RESUMING), "{first_log}");
    assert!(
        first_log.contains(&format!("not answering yet: {silent}")) && first_log.ends_with("nothing left to move, put back the update strategy"),
        "{first_log}"
    );
    let last = read_run(&journal, None);
    assert_eq!(last.succeeded.iter().filter(|s| rotation_step(s)).collect::<Vec<_>>(), ["restore-update-strategy"], "{text}");
    assert!(last.succeeded.iter().any(|s| s == "preflight"), "{text}");

    let written = writer.finish(&lab.seeds(), &lab.password);

    // The chain visited every step boundary once: each kill at a boundary no earlier run was
    // killed at, no step done twice, and every step of the rotation either the boundary of a
    // kill or under way when one came.
    let killed: Vec<&str> = runs.iter().filter_map(|r| r.killed_after.as_deref()).collect();
    eprintln!("killed after: {}", killed.join(" | "));
    assert_eq!(killed.first(), Some(&"pin-upgraded-pool"), "{killed:?}");
    assert_eq!(killed.iter().collect::<BTreeSet<_>>().len(), killed.len(), "a boundary was killed at twice: {killed:?}");
    let mut done: BTreeMap<&str, usize> = BTreeMap::new();
    for step in runs.iter().flat_map(|r| &r.succeeded).filter(|s| rotation_step(s)) {
        *done.entry(step).or_default() += 1;
    }
    assert!(done.values().all(|&n| n == 1), "a step was done again by a later run: {done:?}");
    let covered: BTreeSet<&str> = killed.iter().copied().chain(runs.iter().flat_map(|r| r.begun_after.iter().map(String::as_str))).collect();
    for member in &members {
        assert!(covered.contains(format!("replace {member}").as_str()), "no kill at or in `replace {member}`: {covered:?}");
    }
    assert_eq!(covered.iter().filter(|s| s.starts_with("failover ")).count(), 3, "{covered:?}");
    assert!(covered.contains("restore-update-strategy"), "{covered:?}");

    // Every Pod on the upgraded pool (kubectl), the StatefulSet left as it was but for the pool.
    let upgraded_nodes = lab.kubectl(&["get", "nodes", "-l", "agentpool=upgraded-pool", "-o", "jsonpath={.items[*].metadata.name}"]);
    let upgraded_nodes: BTreeSet<&str> = upgraded_nodes.split_whitespace().collect();
    let pods = lab.pods();
    assert_eq!(pods.len(), 6, "{pods:?}");
    for pod in &pods {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        assert!(upgraded_nodes.contains(node), "{} runs on {node}, not on the upgraded pool {upgraded_nodes:?}", pod["metadata"]["name"]);
    }
    assert_eq!(statefulset(".spec.template.spec.nodeSelector.agentpool"), "upgraded-pool");
    assert_eq!(statefulset(".spec.updateStrategy.type"), strategy_before);
    assert!(!annotated(), "the annotation is still there");

    // Every slot served by a master, 3 masters each with a linked replica (redis-cli).
    eventually("every slot served by a master and every master with a linked replica", Duration::from_secs(60), || {
        cluster_is_whole(&lab).map_err(|why| eprintln!("not yet: {why}")).ok()
    });

    eprintln!(
        "chain: {} runs ({} killed) in {:.1} s; writer: {} acknowledged, {} not confirmed by a replica, {} failed, longest gap between acknowledged writes {} ms, {} lost",
        runs.len(),
        killed.len(),
        chain_wall.as_secs_f64(),
        written.acknowledged,
        written.unconfirmed,
        written.failed,
        written.longest_gap.as_millis(),
        written.lost.len()
    );
    assert!(written.acknowledged >= 100, "the writer hardly wrote: {} acknowledged; errors: {:?}", written.acknowledged, written.errors);
    assert!(written.lost.is_empty(), "acknowledged writes lost: {:?} (errors: {:?})", &written.lost[..written.lost.len().min(20)], written.errors);
}

/// Every member says `cluster_state:ok`; in every member's CLUSTER NODES the
/// masters (not failing) cover all 16384 slots; 3 members answer ROLE master,
/// each with an online replica, and every replica's link is up.
fn cluster_is_whole(lab: &RedisLab) -> Result<(), String> {
    let mut masters = 0;
    for pod in lab.pods() {
        let name = pod["metadata"]["name"].as_str().unwrap_or_default();
        let ip = pod["status"]["podIP"].as_str().unwrap_or_default();
        let ask = |args: &[&str]| lab.cli(ip, args).ok_or_else(|| format!("{name}: redis-cli {} failed", args.join(" ")));
        let info = ask(&["CLUSTER", "INFO"])?;
        if !info.contains("cluster_state:ok") {
            return Err(format!("{name}: not cluster_state:ok"));
        }
        let mut covered = vec![false; 16384];
        for line in ask(&["CLUSTER", "NODES"])?.lines() {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let flags = fields.get(2).copied().unwrap_or_default();
            if !flags.split(',').any(|f| f == "master") || flags.split(',').any(|f| f == "fail" || f == "fail?") {
                continue;
            }
            for range in fields.iter().skip(8).filter(|r| !r.starts_with('[')) {
                let (a, b) = range.split_once('-').unwrap_or((range, range));
                let (a, b): (usize, usize) = (a.parse().map_err(|_| format!("slot `{range}`"))?, b.parse().map_err(|_| format!("slot `{range}`"))?);
                covered[a..=b].iter_mut().for_each(|c| *c = true);
            }
        }
        let unserved = covered.iter().filter(|c| !**c).count();
        if unserved > 0 {
            return Err(format!("{name} sees {unserved} slots without a master"));
        }
        let replication = ask(&["INFO", "replication"])?;
        if replication.contains("role:master") {
            masters += 1;
            if !replication.lines().any(|l| l.starts_with("slave0:") && l.contains("state=online")) {
                return Err(format!("{name}: a master without an online replica:\n{replication}"));
            }
        } else if !replication.contains("master_link_status:up") {
            return Err(format!("{name}: a replica whose link is not up:\n{replication}"));
        }
    }
    if masters == 3 { Ok(()) } else { Err(format!("{masters} masters, expected 3")) }
}

/// What the writer did.
struct Written {
    acknowledged: usize,
    unconfirmed: usize,
    failed: usize,
    longest_gap: Duration,
    lost: Vec<String>,
    errors: Vec<String>,
}

/// The test's own client writing through the chain, independent of the
/// runner's probe: `SET` then `WAIT 1` in one pipeline, so the WAIT goes to
/// the key's master on the SET's connection; a write counts as acknowledged
/// once a replica holds it.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: JoinHandle<(Vec<u64>, Written)>,
    nonce: String,
}

/// Writes per second.
const WRITE_RATE: f64 = 50.0;
/// How long one write keeps retrying (redirects, a failover in progress) before it counts as failed.
const WRITE_DEADLINE: Duration = Duration::from_secs(10);

fn key(n: u64) -> String {
    format!("resume-test:{n}")
}

async fn connect(seeds: &[String], password: &str) -> ClusterConnection {
    let nodes: Vec<_> = seeds
        .iter()
        .map(|s| {
            let (host, port) = s.rsplit_once(':').unwrap();
            ConnectionAddr::Tcp(host.to_string(), port.parse().unwrap()).into_connection_info().unwrap()
        })
        .collect();
    let client = ClusterClientBuilder::new(nodes)
        .password(password)
        .connection_timeout(Duration::from_secs(1))
        .response_timeout(Duration::from_secs(2))
        .retries(8)
        .build()
        .unwrap();
    client.get_async_connection().await.unwrap_or_else(|e| panic!("connect to the cluster: {e}"))
}

impl Writer {
    fn start(seeds: &[String], password: &str) -> Writer {
        let stop = Arc::new(AtomicBool::new(false));
        let nonce = format!("{:x}", std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos());
        let (seeds, password, stopping, value_of) = (seeds.to_vec(), password.to_string(), stop.clone(), nonce.clone());
        let (ready_tx, ready_rx) = std::sync::mpsc::channel();
        let thread = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
            runtime.block_on(async move {
                let mut connection = connect(&seeds, &password).await;
                ready_tx.send(()).unwrap();
                let mut written = Written { acknowledged: 0, unconfirmed: 0, failed: 0, longest_gap: Duration::ZERO, lost: Vec::new(), errors: Vec::new() };
                let mut acknowledged = Vec::new();
                let mut last_ack = Instant::now();
                let interval = Duration::from_secs_f64(1.0 / WRITE_RATE);
                let mut n = 0u64;
                while !stopping.load(Ordering::SeqCst) {
                    let next = Instant::now() + interval;
                    match write(&mut connection, &key(n), &format!("{value_of}:{n}")).await {
                        Ok(true) => {
                            acknowledged.push(n);
                            written.acknowledged += 1;
                            written.longest_gap = written.longest_gap.max(last_ack.elapsed());
                            last_ack = Instant::now();
                        }
                        Ok(false) => written.unconfirmed += 1,
                        Err(e) => {
                            written.failed += 1;
                            if written.errors.len() < 10 {
                                written.errors.push(format!("SET {}: {e}", key(n)));
                            }
                        }
                    }
                    n += 1;
                    tokio::time::sleep_until(next.max(Instant::now()).into()).await;
                }
                (acknowledged, written)
            })
        });
        ready_rx.recv().expect("the writer connects");
        Writer { stop, thread, nonce }
    }

    /// Stop writing, then read every acknowledged key back through a new
    /// client seeded with the members as they are now.
    fn finish(self, seeds: &[String], password: &str) -> Written {
        self.stop.store(true, Ordering::SeqCst);
        let (acknowledged, mut written) = self.thread.join().expect("the writer thread");
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let mut connection = connect(seeds, password).await;
            for n in acknowledged {
                let mut got = Err(String::new());
                for attempt in 0..5u64 {
                    got = redis::cmd("GET").arg(key(n)).query_async::<Option<String>>(&mut connection).await.map_err(|e| e.to_string());
                    if got.is_ok() {
                        break;
                    }
                    tokio::time::sleep(Duration::from_millis(100 * (attempt + 1))).await;
                }
                match got {
                    Ok(Some(value)) if value == format!("{}:{n}", self.nonce) => {}
                    Ok(other) => written.lost.push(format!("{} = {other:?}", key(n))),
                    Err(e) => written.lost.push(format!("{}: {e}", key(n))),
                }
            }
        });
        written
    }
}

/// One write: `Ok(true)` once a replica confirmed it, `Ok(false)` when
/// written but not confirmed within 500 ms, `Err` when it could not be made
/// within [`WRITE_DEADLINE`].
async fn write(connection: &mut ClusterConnection, key: &str, value: &str) -> Result<bool, String> {
    let started = Instant::now();
    loop {
        let mut pipe = redis::pipe();
        pipe.cmd("SET").arg(key).arg(value).arg("EX").arg(3600).cmd("WAIT").arg(1).arg(500);
        let problem = match pipe.query_async::<Vec<redis::Value>>(connection).await {
            Ok(replies) => match replies.as_slice() {
                [redis::Value::Okay, redis::Value::Int(replicas)] => return Ok(*replicas >= 1),
                other => format!("unexpected reply {other:?}"),
            },
            Err(e) => e.to_string(),
        };
        if started.elapsed() >= WRITE_DEADLINE {
            return Err(problem);
        }
        // A pipeline hands MOVED and READONLY back instead of following them: a plain GET of the
        // key is redirected by the client, which then knows the key's master again.
        let _ = redis::cmd("GET").arg(key).query_async::<Option<String>>(connection).await;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

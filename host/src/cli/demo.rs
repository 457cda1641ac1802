//! `runner demo`: the README's main job. A fresh lab, a real upgrade of its
//! database cluster by a bundled pattern, a write probe running through it,
//! and the figures that matter: how long writes were unavailable and
//! whether an acknowledged write was lost.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, Parser, ValueEnum};
use runner_lab::client::LabClient;
use runner_lab::daemon::LabDir;
use runner_lab::ops;
use serde::Serialize;
use serde_json::{Value, json};

use super::exec::{ExecArgs, Executed, execute};
use super::lab::{LabDatabase, TopologyArgs, print_status, start, stop};
use super::{CommandResult, Exit, Failure, OutputFormat, runtime};
use crate::backends::Backends;
use crate::target::Target;

#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Which cluster to upgrade.
    #[arg(value_enum)]
    database: DemoDatabase,

    /// Run the whole demo N times, each on a fresh lab, and report the medians.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,

    /// Report format; `json` prints one object (downtime_ms, lost_writes, ...).
    #[arg(long, value_enum, default_value_t)]
    output: OutputFormat,

    /// The demo lab's directory (wiped at each run; default: runner-demo in the temporary directory).
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Loopback subnet of the demo lab (127.N.x.x), apart from a lab you run yourself.
    #[arg(long, value_name = "N", default_value_t = 50, value_parser = clap::value_parser!(u8).range(1..=254))]
    subnet: u8,

    /// Leave the (last) lab running afterwards, to look at it with kubectl.
    #[arg(long)]
    keep: bool,

    /// The write probe's writes per second.
    #[arg(long, value_name = "N", default_value_t = crate::probe::DEFAULT_RATE, value_parser = clap::value_parser!(u32).range(1..=5000))]
    probe_rate: u32,
}

/// The clusters a demo can upgrade.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
enum DemoDatabase {
    /// The seed's Ferris wheel on the lab's 3-member PostgreSQL cluster.
    Postgres,
    /// The rolling replacement of the lab's 6-member Redis cluster (3 masters, 3 replicas).
    Redis,
    /// The step-down cascade on the lab's 3-member MongoDB replica set (needs `mongod`).
    Mongo,
}

impl DemoDatabase {
    fn pattern(self) -> &'static str {
        match self {
            DemoDatabase::Postgres => "postgres-ferris-wheel",
            DemoDatabase::Redis => "redis-rolling-replace",
            DemoDatabase::Mongo => "mongo-stepdown-cascade",
        }
    }

    fn lab(self) -> LabDatabase {
        match self {
            DemoDatabase::Postgres => LabDatabase::Postgres,
            DemoDatabase::Redis => LabDatabase::Redis,
            DemoDatabase::Mongo => LabDatabase::Mongo,
        }
    }

    fn database(self) -> &'static str {
        match self {
            DemoDatabase::Postgres => "postgres-cluster",
            DemoDatabase::Redis => "redis-cluster",
            DemoDatabase::Mongo => "mongo",
        }
    }

    fn allowances(self) -> &'static [&'static str] {
        match self {
            DemoDatabase::Postgres => &["kube:*", "postgres:*"],
            DemoDatabase::Redis => &["kube:*", "redis:*"],
            DemoDatabase::Mongo => &["kube:*", "mongo:*"],
        }
    }

    /// Primaries (masters) and standbys (replicas) the cluster must end with.
    fn expected(self) -> (usize, usize) {
        match self {
            DemoDatabase::Postgres => (1, 2),
            DemoDatabase::Redis => (3, 3),
            DemoDatabase::Mongo => (1, 2),
        }
    }
}

/// `exec`'s flags, so the demo runs exactly what an operator would type.
#[derive(Parser)]
struct ExecLine {
    #[command(flatten)]
    args: ExecArgs,
}

/// One run of the demo.
#[derive(Serialize)]
struct DemoRun {
    outcome: String,
    downtime_ms: f64,
    acknowledged_writes: u64,
    lost_writes: u64,
    failed_ops: u64,
    max_latency_ms: f64,
    wall_ms: f64,
    lab_up_ms: f64,
    steps: Vec<Value>,
    final_cluster: FinalCluster,
    #[serde(skip)]
    exit: Exit,
}

/// The cluster after the run, as the databases themselves tell it.
#[derive(Serialize, Default)]
struct FinalCluster {
    /// Every member runs on a Node of the upgraded pool.
    all_on_upgraded_pool: bool,
    /// PostgreSQL: members that answer `pg_is_in_recovery() = false`; Redis: masters (ROLE); MongoDB: `isWritablePrimary` (hello).
    primaries: Vec<String>,
    /// PostgreSQL: standbys streaming from the primary (pg_stat_replication); Redis: replicas whose link is `connected`;
    /// MongoDB: members SECONDARY with health 1 in the primary's replSetGetStatus.
    streaming_standbys: u64,
    /// Pods: name, node, pool, role.
    members: Vec<Value>,
    /// Set when the check itself could not be made.
    error: Option<String>,
}

impl FinalCluster {
    fn healthy(&self, (primaries, standbys): (usize, usize)) -> bool {
        self.error.is_none() && self.all_on_upgraded_pool && self.primaries.len() == primaries && self.streaming_standbys as usize == standbys && self.members.len() == primaries + standbys
    }
}

pub fn run(args: DemoArgs, cache_dir: Option<PathBuf>) -> CommandResult {
    let dir = LabDir::new(args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("runner-demo")));
    TopologyArgs::only(args.database.lab(), args.subnet).check_servers()?;
    let text = args.output == OutputFormat::Text;
    stop_on_interrupt(dir.clone());
    if text {
        println!(
            "runner demo {}: {} on the lab ({}), {} writes/s through the primary's Service meanwhile{}",
            args.database.database(),
            args.database.pattern(),
            dir.root.display(),
            args.probe_rate,
            if args.repeat > 1 { format!(", {} runs", args.repeat) } else { String::new() }
        );
    }
    let mut runs = Vec::new();
    for n in 1..=args.repeat {
        let last = n == args.repeat;
        let result = one_run(&args, &dir, cache_dir.clone(), text);
        if !(last && args.keep) || result.is_err() {
            stop(&dir);
        }
        let run = result?;
        if text {
            println!(
                "run {n}/{}: {} | longest gap between acknowledged writes {:.0} ms | slowest write {:.0} ms | {} acknowledged writes, {} LOST | {} failed (not acknowledged) | wall {:.1} s | final cluster {}",
                args.repeat,
                run.outcome,
                run.downtime_ms,
                run.max_latency_ms,
                run.acknowledged_writes,
                run.lost_writes,
                run.failed_ops,
                run.wall_ms / 1000.0,
                if run.final_cluster.healthy(args.database.expected()) { "ok" } else { "NOT as expected" }
            );
        }
        runs.push(run);
    }
    let exit = if runs.iter().all(|r| r.exit == Exit::Success && r.lost_writes == 0 && r.final_cluster.healthy(args.database.expected())) { Exit::Success } else { Exit::PolicyFailed };
    let summary = summarize(args.database.pattern(), &runs);
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default()),
        OutputFormat::Text => {
            if args.repeat > 1 {
                println!("median over {} runs: downtime {:.0} ms, wall {:.1} s; {} acknowledged writes in all, {} lost", runs.len(), summary["downtime_ms"].as_f64().unwrap_or(0.0), summary["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0, summary["acknowledged_writes"], summary["lost_writes"]);
            }
            if args.keep {
                println!("\nthe lab is still running: export KUBECONFIG={}; stop it with `runner lab --dir {} down`", dir.kubeconfig().display(), dir.root.display());
            }
            println!("{}", if exit == Exit::Success { "DEMO OK: every member upgraded, no acknowledged write lost" } else { "DEMO FAILED (see above)" });
        }
    }
    Ok(exit)
}

fn one_run(args: &DemoArgs, dir: &LabDir, cache_dir: Option<PathBuf>, text: bool) -> Result<DemoRun, Failure> {
    // A fresh cluster each time: the last run left every member upgraded.
    stop(dir);
    if dir.root.exists() {
        std::fs::remove_dir_all(&dir.root).map_err(|e| Failure::bad_input(format!("cannot clear the demo lab {}: {e}", dir.root.display())))?;
    }
    let rt = runtime()?;
    let began = Instant::now();
    let client = rt.block_on(start(dir, &TopologyArgs::only(args.database.lab(), args.subnet), Duration::from_secs(240)))?;
    let lab_up = began.elapsed();
    let rows = rt.block_on(ops::status(&client)).map_err(|e| Failure::new(Exit::Unavailable, e.to_string()))?;
    if text {
        println!("\nlab up in {:.1} s:", lab_up.as_secs_f64());
        print_status(&rows);
    }
    // `lab up` returned once every cluster was formed, its replicas in sync.
    if args.database == DemoDatabase::Postgres {
        let backup = rt.block_on(ops::backup(dir, &client)).map_err(|e| Failure::new(Exit::PolicyFailed, format!("backup: {e:#}")))?;
        if text {
            println!("backup: pg_basebackup of the primary into {}; Job postgres-backup complete\n", backup.display());
        }
    }
    drop(rt);

    let mut line = vec!["exec".to_string(), args.database.pattern().into(), "--approve".into(), "--write-probe".into(), args.database.database().into(), "--probe-rate".into(), args.probe_rate.to_string()];
    for cap in args.database.allowances() {
        line.extend(["--allow".to_string(), cap.to_string()]);
    }
    if text {
        println!("$ runner {}", line.join(" "));
    }
    let exec = ExecLine::try_parse_from(&line).map_err(|e| Failure::new(Exit::PolicyFailed, format!("the demo's exec line: {e}")))?;
    let target = Target::lab(dir.root.clone());
    let executed = execute(&exec.args, &target, cache_dir)?;
    let rt = runtime()?;
    let final_cluster = rt.block_on(async {
        match args.database {
            DemoDatabase::Postgres => final_cluster(&target, &client).await,
            DemoDatabase::Redis => final_redis_cluster(&target, &client).await,
            DemoDatabase::Mongo => final_mongo_set(&target, &client).await,
        }
    });
    if text {
        print!("{}", executed.text());
        println!("\nafter the run:");
        if let Ok(rows) = rt.block_on(ops::status(&client)) {
            print_status(&rows);
        }
    }
    Ok(demo_run(executed, final_cluster, lab_up))
}

fn demo_run(executed: Executed, final_cluster: FinalCluster, lab_up: Duration) -> DemoRun {
    let probe = executed.probe.clone().unwrap_or_default();
    DemoRun {
        outcome: executed.outcome().to_string(),
        downtime_ms: probe.downtime_ms,
        acknowledged_writes: probe.acknowledged_writes,
        lost_writes: probe.lost_writes,
        failed_ops: probe.failed_ops,
        max_latency_ms: probe.max_latency_ms,
        wall_ms: executed.wall.as_secs_f64() * 1000.0,
        lab_up_ms: lab_up.as_secs_f64() * 1000.0,
        steps: executed.record.steps.iter().map(|s| json!({"name": s.name, "outcome": s.outcome, "ms": s.ms})).collect(),
        final_cluster,
        exit: executed.exit(),
    }
}

/// The lab's Pods whose names start with `prefix`, backends to ask them, and
/// a report that already says whether they all run on the upgraded pool; the
/// report with the error when they cannot be found.
async fn survey(target: &Target, client: &LabClient, prefix: &str) -> Result<(FinalCluster, Vec<ops::PodRow>, Backends), FinalCluster> {
    let found = async {
        let rows = ops::status(client).await.map_err(|e| e.to_string())?;
        let kube = crate::backends::kube::connect(&target).await.map_err(|e| e.to_string())?;
        Ok::<_, String>((rows.into_iter().filter(|r| r.name.starts_with(prefix)).collect::<Vec<_>>(), Backends::with_kube(std::sync::Arc::new(kube), target)))
    };
    match found.await {
        Ok((members, backends)) => {
            let all_on_upgraded_pool = !members.is_empty() && members.iter().all(|r| r.pool == "upgraded-pool");
            Ok((FinalCluster { all_on_upgraded_pool, ..FinalCluster::default() }, members, backends))
        }
        Err(e) => Err(FinalCluster { error: Some(e), ..FinalCluster::default() }),
    }
}

impl FinalCluster {
    /// Record `row` with the role it answered (`unreachable`, and the error
    /// kept, when it did not); a member answering `primary_role` is a primary.
    fn member(&mut self, row: &ops::PodRow, answer: Result<&'static str, String>, primary_role: &str) {
        let role = answer.unwrap_or_else(|e| {
            self.error = Some(format!("{}: {e}", row.name));
            "unreachable"
        });
        if role == primary_role {
            self.primaries.push(row.name.clone());
        }
        self.members.push(json!({"name": row.name, "node": row.node, "pool": row.pool, "role": role}));
    }
}

/// Where every member runs and what each says it is, asked of the members themselves.
async fn final_cluster(target: &Target, client: &LabClient) -> FinalCluster {
    let (mut result, members, backends) = match survey(target, client, "postgres-cluster-").await {
        Ok(found) => found,
        Err(report) => return report,
    };
    let postgres = backends.postgres;
    for row in &members {
        let answer = postgres.query(&row.name, "SELECT pg_is_in_recovery() AS standby", &[]).await;
        result.member(row, answer.map(|json| if json.contains("\"standby\":false") { "primary" } else { "standby" }).map_err(|e| e.to_string()), "primary");
    }
    if let [primary] = result.primaries.as_slice() {
        match postgres.query(primary, "SELECT count(*) AS n FROM pg_stat_replication WHERE state = 'streaming'", &[]).await {
            Ok(json) => result.streaming_standbys = serde_json::from_str::<Value>(&json).ok().and_then(|v| v[0]["n"].as_u64()).unwrap_or(0),
            Err(e) => result.error = Some(format!("{primary}: {e}")),
        }
    }
    result
}

/// The Redis cluster after the run: masters, connected replicas, slots, pools.
async fn final_redis_cluster(target: &Target, client: &LabClient) -> FinalCluster {
    let (mut result, members, backends) = match survey(target, client, "redis-cluster-").await {
        Ok(found) => found,
        Err(report) => return report,
    };
    let redis = backends.redis;
    for row in &members {
        let answer = redis.command(&row.name, &["ROLE".to_string()]).await.map(|json| serde_json::from_str::<Value>(&json).unwrap_or_default());
        if answer.as_ref().is_ok_and(|role| role[0] != "master" && role[3] == "connected") {
            result.streaming_standbys += 1;
        }
        result.member(row, answer.map(|role| if role[0] == "master" { "master" } else { "replica" }).map_err(|e| e.to_string()), "master");
    }
    if let Some(first) = members.first() {
        match redis.command(&first.name, &["CLUSTER".to_string(), "INFO".to_string()]).await {
            Ok(info) if info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384") => {}
            Ok(info) => result.error = Some(format!("CLUSTER INFO on {}: not every slot served: {}", first.name, info.replace("\\r\\n", " "))),
            Err(e) => result.error = Some(format!("{}: {e}", first.name)),
        }
    }
    result
}

/// The MongoDB replica set after the run: each member's `hello`, and the
/// primary's `replSetGetStatus` for the secondaries' health.
async fn final_mongo_set(target: &Target, client: &LabClient) -> FinalCluster {
    let (mut result, members, backends) = match survey(target, client, "mongo-").await {
        Ok(found) => found,
        Err(report) => return report,
    };
    let mongo = backends.mongo;
    for row in &members {
        let answer = mongo.run_command(&row.name, "admin", r#"{"hello": 1}"#).await.map(|json| serde_json::from_str::<Value>(&json).unwrap_or_default());
        let role = answer.map(|hello| match (hello["isWritablePrimary"] == true, hello["secondary"] == true) {
            (true, _) => "primary",
            (_, true) => "secondary",
            _ => "other",
        });
        result.member(row, role.map_err(|e| e.to_string()), "primary");
    }
    if let [primary] = result.primaries.as_slice() {
        match mongo.run_command(primary, "admin", r#"{"replSetGetStatus": 1}"#).await {
            Ok(json) => {
                let status: Value = serde_json::from_str(&json).unwrap_or_default();
                let secondaries = status["members"].as_array().map(|m| m.iter().filter(|m| m["stateStr"] == "SECONDARY" && m["health"].as_f64() == Some(1.0)).count()).unwrap_or(0);
                result.streaming_standbys = secondaries as u64;
            }
            Err(e) => result.error = Some(format!("{primary}: {e}")),
        }
    }
    result
}

/// One JSON object: the medians of downtime and wall time, the sums of
/// writes, every run in `runs`, the steps of the last run.
fn summarize(pattern: &str, runs: &[DemoRun]) -> Value {
    let median = |pick: fn(&DemoRun) -> f64| {
        let mut values: Vec<f64> = runs.iter().map(pick).collect();
        values.sort_by(f64::total_cmp);
        values.get(values.len() / 2).copied().unwrap_or(0.0)
    };
    let last = runs.last();
    json!({
        "pattern": pattern,
        "outcome": last.map(|r| r.outcome.as_str()),
        "repeat": runs.len(),
        "downtime_ms": median(|r| r.downtime_ms),
        "acknowledged_writes": runs.iter().map(|r| r.acknowledged_writes).sum::<u64>(),
        "lost_writes": runs.iter().map(|r| r.lost_writes).sum::<u64>(),
        "failed_ops": runs.iter().map(|r| r.failed_ops).sum::<u64>(),
        "max_latency_ms": runs.iter().map(|r| r.max_latency_ms).fold(0.0, f64::max),
        "wall_ms": median(|r| r.wall_ms),
        "steps": last.map(|r| r.steps.clone()).unwrap_or_default(),
        "final_cluster": last.map(|r| &r.final_cluster),
        "runs": runs,
    })
}

/// Ctrl-C stops the demo's lab too: its daemon runs in its own process group.
fn stop_on_interrupt(dir: LabDir) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(super::lab::shutdown_signal());
        eprintln!("\ninterrupted: stopping the demo lab in {}", dir.root.display());
        stop(&dir);
        std::process::exit(130);
    });
}

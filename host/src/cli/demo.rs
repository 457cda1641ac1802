//! `runner demo`: the README's main job. A fresh lab, a real upgrade of its
//! database cluster by a bundled pattern, a write probe running through it,
//! and the figures that matter: how long writes were unavailable and
//! whether an acknowledged write was lost. `runner demo failover` is the
//! seed's unplanned-failover drill instead: the primary is killed while the
//! probe writes, a standby takes over, and the old primary must rejoin.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use runner_lab::client::LabClient;
use runner_lab::daemon::LabDir;
use runner_lab::ops;
use runner_lab::topology::{LATEST_IMAGE, NEW_VERSION, Topology};
use serde::Serialize;
use serde_json::{Value, json};

use super::render::{print_status, report_text};
use super::{CommandResult, Exit, Failure, OutputFormat};
use crate::imports::Approval;
use crate::run::lab::{check_servers, shutdown_signal, start, stop};
use crate::run::survey::{Cluster, FinalCluster, survey};
use crate::run::{DEFAULT_PROBE_TABLE, RunBuilder, RunReport, runtime};
use crate::target::Target;

/// `runner demo`'s arguments.
#[derive(Args, Debug)]
pub struct DemoArgs {
    /// Which cluster to upgrade.
    #[arg(value_enum)]
    database: DemoDatabase,

    /// Run the whole demo N times, each on a fresh lab, and report the medians.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u32).range(1..=100))]
    repeat: u32,

    /// Report format; `json` prints one object (downtime_ms, lost_writes, ...).
    #[arg(short = 'o', long, value_enum, default_value_t)]
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

    /// failover: how the primary is broken once the probe writes (default: `postmaster`).
    #[arg(long, value_enum, value_name = "HOW")]
    kill: Option<Kill>,

    /// failover: afterwards, fail back to the original primary (a second failover, the probe on again).
    #[arg(long)]
    promote_back: bool,

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
    /// The unplanned-failover drill on the lab's 3-member PostgreSQL cluster:
    /// the primary killed, postgres-emergency-failover, the old primary rejoins.
    Failover,
    /// The cluster upgrade (seed 000): a lab at 1.29 with PostgreSQL and Redis
    /// on one pool; the control plane and the pool to 1.30 by aks-upgrade,
    /// every database member leaving the pool through its own pattern.
    AksUpgrade,
    /// The emergency node-image patch (seed 001): the same lab, every pool's
    /// node image upgraded by node-image-patch, with a compliance report.
    NodeImagePatch,
    /// The staged rollout (seed 001): three lab clusters dev → test → prod,
    /// an approval from a second process, then a run killed during test and resumed.
    Fleet,
    /// The blue-green cluster switch (seed 001): blue at 1.29 with the web
    /// app, green created at 1.30, traffic moved by Traffic Manager weights
    /// under the HTTP probe; then a failing green rolled back by itself.
    BlueGreen,
}

/// How the failover drill breaks the primary.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Kill {
    /// SIGKILL of its postmaster; the kubelet restarts the server, still a primary.
    #[default]
    Postmaster,
    /// `kubectl delete pod --grace-period=1`, as the seed's drill; the StatefulSet recreates it.
    Pod,
}

impl std::fmt::Display for Kill {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Kill::Postmaster => "kill -9 of the postmaster",
            Kill::Pod => "deletion of the Pod (grace period 1 s)",
        })
    }
}

impl DemoDatabase {
    fn pattern(self) -> &'static str {
        match self {
            DemoDatabase::Postgres => "postgres-ferris-wheel",
            DemoDatabase::Redis => "redis-rolling-replace",
            DemoDatabase::Mongo => "mongo-stepdown-cascade",
            DemoDatabase::Failover => "postgres-emergency-failover",
            DemoDatabase::AksUpgrade => "aks-upgrade",
            DemoDatabase::NodeImagePatch => "node-image-patch",
            DemoDatabase::Fleet => "staged-rollout",
            DemoDatabase::BlueGreen => "blue-green-switch",
        }
    }

    /// Whether the demo upgrades the cluster itself (both databases at once).
    fn upgrades_the_cluster(self) -> bool {
        matches!(self, DemoDatabase::AksUpgrade | DemoDatabase::NodeImagePatch)
    }

    fn cluster(self) -> Cluster {
        match self {
            DemoDatabase::Postgres | DemoDatabase::Failover => Cluster::Postgres,
            DemoDatabase::Redis | DemoDatabase::AksUpgrade | DemoDatabase::NodeImagePatch | DemoDatabase::Fleet | DemoDatabase::BlueGreen => Cluster::Redis,
            DemoDatabase::Mongo => Cluster::Mongo,
        }
    }

    /// A lab of this cluster only.
    fn topology(self) -> Topology {
        let is = |d| self == d;
        Topology {
            postgres: is(DemoDatabase::Postgres) || is(DemoDatabase::Failover) || self.upgrades_the_cluster(),
            redis: is(DemoDatabase::Redis) || self.upgrades_the_cluster(),
            mongo: is(DemoDatabase::Mongo),
            single_pool: self.upgrades_the_cluster(),
            ..Topology::default()
        }
    }

    fn database(self) -> &'static str {
        match self {
            DemoDatabase::Postgres
            | DemoDatabase::Failover
            | DemoDatabase::AksUpgrade
            | DemoDatabase::NodeImagePatch
            | DemoDatabase::Fleet
            | DemoDatabase::BlueGreen => "postgres-cluster",
            DemoDatabase::Redis => "redis-cluster",
            DemoDatabase::Mongo => "mongo",
        }
    }

    /// Every database the write probes write to.
    fn probed(self) -> Vec<&'static str> {
        if self.upgrades_the_cluster() { vec!["postgres-cluster", "redis-cluster"] } else { vec![self.database()] }
    }

    /// The `--config` pairs of the demo's run.
    fn config(self) -> Vec<String> {
        match self {
            DemoDatabase::AksUpgrade => vec![format!("kubernetes-version={}", NEW_VERSION.trim_start_matches('v'))],
            _ => Vec::new(),
        }
    }

    fn allowances(self) -> &'static [&'static str] {
        match self {
            DemoDatabase::Postgres | DemoDatabase::Failover => &["kube:*", "postgres:*"],
            DemoDatabase::Redis => &["kube:*", "redis:*"],
            DemoDatabase::Mongo => &["kube:*", "mongo:*"],
            DemoDatabase::AksUpgrade | DemoDatabase::NodeImagePatch | DemoDatabase::Fleet | DemoDatabase::BlueGreen => {
                &["kube:*", "postgres:*", "redis:*", "cluster:*"]
            }
        }
    }

    /// Primaries (masters) and standbys (replicas) the cluster must end with.
    fn expected(self) -> (usize, usize) {
        match self {
            DemoDatabase::Postgres | DemoDatabase::Failover => (1, 2),
            DemoDatabase::Redis | DemoDatabase::AksUpgrade | DemoDatabase::NodeImagePatch | DemoDatabase::Fleet | DemoDatabase::BlueGreen => (3, 3),
            DemoDatabase::Mongo => (1, 2),
        }
    }

    /// Whether `run` ended as it must: every member upgraded (a failover
    /// moves no member: one primary, the others streaming, the old one among them).
    fn ended_well(self, run: &DemoRun) -> bool {
        run.exit == Exit::Success && run.lost_writes == 0 && self.cluster_ok(run)
    }

    fn cluster_ok(self, run: &DemoRun) -> bool {
        match &run.drill {
            Some(drill) => drill.rejoined_cleanly && run.final_cluster.serves(self.expected()),
            None => run.final_cluster.healthy(self.expected()),
        }
    }
}

/// What the failover drill did and how the old primary came back.
#[derive(Serialize)]
struct Drill {
    kill: Kill,
    /// The primary that was killed.
    killed: String,
    /// The member that answered as the primary after the failover.
    new_primary: Option<String>,
    /// The run succeeded, one other member is the primary, and the killed one streams from it.
    rejoined_cleanly: bool,
    /// Why not, when it did not.
    #[serde(skip_serializing_if = "Option::is_none")]
    rejoin_problem: Option<String>,
    /// `--promote-back`: the second failover, back to the killed member.
    #[serde(skip_serializing_if = "Option::is_none")]
    promote_back: Option<Value>,
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
    #[serde(skip_serializing_if = "Option::is_none", flatten)]
    drill: Option<Drill>,
    #[serde(skip)]
    exit: Exit,
}

/// Run the demo as often as asked, each on a fresh lab, and print each run and the medians;
/// exit 1 unless every run upgraded every member and lost no acknowledged write.
pub fn run(args: DemoArgs, cache_dir: Option<PathBuf>) -> CommandResult {
    if matches!(args.database, DemoDatabase::Fleet | DemoDatabase::BlueGreen) {
        if args.repeat > 1 || args.kill.is_some() || args.promote_back {
            return Err(Failure::bad_input("--repeat, --kill and --promote-back belong to the database demos"));
        }
        if args.database == DemoDatabase::BlueGreen {
            let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("runner-demo-blue-green"));
            return super::demo_blue_green::run(super::demo_blue_green::BlueGreenDemo { dir, subnet: args.subnet, keep: args.keep, output: args.output });
        }
        let dir = args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("runner-demo-fleet"));
        return super::demo_fleet::run(super::demo_fleet::FleetDemo { dir, subnet: args.subnet, keep: args.keep, output: args.output });
    }
    let dir = LabDir::new(args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("runner-demo")));
    if args.database != DemoDatabase::Failover && (args.kill.is_some() || args.promote_back) {
        return Err(Failure::bad_input("--kill and --promote-back belong to `runner demo failover`"));
    }
    check_servers(&args.database.topology())?;
    if args.database.upgrades_the_cluster() && args.repeat > 1 {
        return Err(Failure::bad_input("--repeat belongs to the database demos; a cluster upgrade demo runs once"));
    }
    let text = args.output == OutputFormat::Text;
    stop_on_interrupt(dir.clone());
    if args.database.upgrades_the_cluster() {
        let result = cluster_upgrade(&args, &dir, cache_dir, text);
        if !args.keep || result.is_err() {
            stop(&dir);
        }
        let (exit, summary) = result?;
        match args.output {
            format @ (OutputFormat::Json | OutputFormat::Yaml) => format.print(&summary),
            OutputFormat::Text => {
                if args.keep {
                    println!("\nthe lab is still running: export KUBECONFIG={}", dir.kubeconfig().display());
                }
                println!(
                    "{}",
                    if exit == Exit::Success {
                        "DEMO OK: every Node upgraded, every database member healthy, no acknowledged write lost"
                    } else {
                        "DEMO FAILED (see above)"
                    }
                );
            }
        }
        return Ok(exit);
    }
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
            if let Some(drill) = &run.drill {
                println!(
                    "run {n}/{}: {} of {}: {} took over; {} rejoined {}",
                    args.repeat,
                    drill.kill,
                    drill.killed,
                    drill.new_primary.as_deref().unwrap_or("nobody"),
                    drill.killed,
                    if drill.rejoined_cleanly { "cleanly".to_string() } else { format!("NOT cleanly: {}", drill.rejoin_problem.as_deref().unwrap_or("?")) }
                );
            }
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
                if args.database.cluster_ok(&run) { "ok" } else { "NOT as expected" }
            );
        }
        runs.push(run);
    }
    let exit = if runs.iter().all(|r| args.database.ended_well(r)) { Exit::Success } else { Exit::PolicyFailed };
    let summary = summarize(args.database.pattern(), &runs);
    match args.output {
        format @ (OutputFormat::Json | OutputFormat::Yaml) => format.print(&summary),
        OutputFormat::Text => {
            if args.repeat > 1 {
                println!(
                    "median over {} runs: downtime {:.0} ms, wall {:.1} s; {} acknowledged writes in all, {} lost{}",
                    runs.len(),
                    summary["downtime_ms"].as_f64().unwrap_or(0.0),
                    summary["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
                    summary["acknowledged_writes"],
                    summary["lost_writes"],
                    summary["clean_rejoins"].as_u64().map(|n| format!("; the old primary rejoined cleanly in {n} of {}", runs.len())).unwrap_or_default()
                );
            }
            if args.keep {
                println!(
                    "\nthe lab is still running: export KUBECONFIG={}; stop it with `runner lab --dir {} down`",
                    dir.kubeconfig().display(),
                    dir.root.display()
                );
            }
            let ok = if args.database == DemoDatabase::Failover {
                "DEMO OK: every failover kept writes, the old primary rejoined every time, no acknowledged write lost"
            } else {
                "DEMO OK: every member upgraded, no acknowledged write lost"
            };
            println!("{}", if exit == Exit::Success { ok } else { "DEMO FAILED (see above)" });
        }
    }
    Ok(exit)
}

/// The demo's lab in `dir`, wiped and started afresh for `args`' topology:
/// its client and how long it took to come up.
fn fresh_lab(args: &DemoArgs, dir: &LabDir, rt: &tokio::runtime::Runtime) -> Result<(LabClient, Duration), Failure> {
    stop(dir);
    if dir.root.exists() {
        std::fs::remove_dir_all(&dir.root).map_err(|e| Failure::bad_input(format!("cannot clear the demo lab {}: {e}", dir.root.display())))?;
    }
    let began = Instant::now();
    let client = rt.block_on(start(dir, &args.database.topology(), args.subnet, Duration::from_secs(240)))?;
    Ok((client, began.elapsed()))
}

fn one_run(args: &DemoArgs, dir: &LabDir, cache_dir: Option<PathBuf>, text: bool) -> Result<DemoRun, Failure> {
    // A fresh cluster each time: the last run left every member upgraded.
    let rt = runtime()?;
    let (client, lab_up) = fresh_lab(args, dir, &rt)?;
    let rows = rt.block_on(ops::status(&client)).map_err(|e| Failure::new(Exit::Unavailable, e.to_string()))?;
    if text {
        println!("\nlab up in {:.1} s:", lab_up.as_secs_f64());
        print_status(&rows);
    }
    if args.database == DemoDatabase::Failover {
        // The lab client's connections live on this runtime: the drill keeps using it.
        return drill(args, dir, cache_dir, text, &client, lab_up, &rt);
    }
    // `lab up` returned once every cluster was formed, its replicas in sync.
    if args.database == DemoDatabase::Postgres {
        let backup = rt.block_on(ops::backup(dir, &client)).map_err(|e| Failure::new(Exit::PolicyFailed, format!("backup: {e:#}")))?;
        if text {
            println!("backup: pg_basebackup of the primary into {}; Job postgres-backup complete\n", backup.display());
        }
    }
    drop(rt);

    let line = exec_line(args);
    if text {
        println!("$ runner {}", line.join(" "));
    }
    let target = Target::lab(dir.root.clone());
    let report = run_builder(args, target.clone(), cache_dir).run()?;
    let rt = runtime()?;
    let final_cluster = rt.block_on(survey(args.database.cluster(), &target, &client));
    if text {
        print!("{}", report_text(&report));
        println!("\nafter the run:");
        if let Ok(rows) = rt.block_on(ops::status(&client)) {
            print_status(&rows);
        }
    }
    Ok(demo_run(report, final_cluster, lab_up))
}

/// Every Node of the lab as the compliance of an upgrade reads it.
async fn nodes(client: &LabClient) -> Result<Vec<Value>, Failure> {
    let nodes = client.list("/api/v1/nodes").await.map_err(|e| Failure::new(Exit::Unavailable, format!("listing the Nodes: {e}")))?;
    Ok(nodes
        .iter()
        .map(|n| {
            json!({
                "name": n["metadata"]["name"],
                "pool": n["metadata"]["labels"]["agentpool"],
                "kubelet": n["status"]["nodeInfo"]["kubeletVersion"],
                "node_image": n["metadata"]["labels"][runner_lab::topology::IMAGE_LABEL],
                "kernel": n["status"]["nodeInfo"]["kernelVersion"],
                "unschedulable": n["spec"]["unschedulable"].as_bool().unwrap_or(false),
            })
        })
        .collect())
}

/// `runner demo aks-upgrade` and `runner demo node-image-patch`: a fresh
/// lab at 1.29 with PostgreSQL and Redis on one pool, the pattern run with a
/// write probe on each database, then every Node and member checked.
fn cluster_upgrade(args: &DemoArgs, dir: &LabDir, cache_dir: Option<PathBuf>, text: bool) -> Result<(Exit, Value), Failure> {
    let rt = runtime()?;
    let (client, lab_up) = fresh_lab(args, dir, &rt)?;
    // The readiness gate wants a recent backup, as the seed's checklist does.
    let backup = rt.block_on(ops::backup(dir, &client)).map_err(|e| Failure::new(Exit::PolicyFailed, format!("backup: {e:#}")))?;
    let before = rt.block_on(nodes(&client))?;
    if text {
        println!("\nlab up in {:.1} s (control plane and nodepool1 at {OLD}):", lab_up.as_secs_f64(), OLD = runner_lab::topology::OLD_VERSION);
        if let Ok(rows) = rt.block_on(ops::status(&client)) {
            print_status(&rows);
        }
        println!("backup: pg_basebackup of the primary into {}; Job postgres-backup complete\n", backup.display());
        println!("$ runner {}", exec_line(args).join(" "));
    }
    drop(rt);
    let target = Target::lab(dir.root.clone());
    let report = run_builder(args, target.clone(), cache_dir).run()?;
    let rt = runtime()?;
    let postgres = rt.block_on(survey(Cluster::Postgres, &target, &client));
    let redis = rt.block_on(survey(Cluster::Redis, &target, &client));
    let after = rt.block_on(nodes(&client))?;
    let control_plane = rt.block_on(client.get("/version")).ok().flatten().and_then(|v| v["gitVersion"].as_str().map(str::to_string)).unwrap_or_default();
    if text {
        print!("{}", report_text(&report));
        println!("\nafter the run (control plane {control_plane}):");
        if let Ok(rows) = rt.block_on(ops::status(&client)) {
            print_status(&rows);
        }
        for node in &after {
            println!("  node {} pool {} kubelet {} image {} kernel {}", node["name"], node["pool"], node["kubelet"], node["node_image"], node["kernel"]);
        }
    }
    let upgraded = |node: &Value| match args.database {
        DemoDatabase::AksUpgrade => node["kubelet"] == NEW_VERSION,
        _ => node["node_image"] == LATEST_IMAGE.version,
    };
    let all_nodes_upgraded = !after.is_empty() && after.iter().all(|n| upgraded(n) && n["unschedulable"] == false);
    let mut databases = serde_json::Map::new();
    for (name, probe) in args.database.probed().into_iter().zip(&report.probes) {
        databases.insert(
            name.to_string(),
            json!({
                "downtime_ms": probe.downtime_ms,
                "acknowledged_writes": probe.acknowledged_writes,
                "lost_writes": probe.lost_writes,
                "failed_ops": probe.failed_ops,
                "max_latency_ms": probe.max_latency_ms,
            }),
        );
    }
    let lost: u64 = report.probes.iter().map(|p| p.lost_writes).sum();
    let compliance_report = report.record.attachments.iter().find(|a| a.name == "compliance-report.md").map(|a| a.path.clone());
    let members_healthy = postgres.serves((1, 2)) && redis.serves((3, 3));
    let ok = report.exit() == Exit::Success
        && report.probes.len() == 2
        && lost == 0
        && members_healthy
        && all_nodes_upgraded
        && (args.database == DemoDatabase::AksUpgrade || compliance_report.is_some());
    if text {
        for (name, figures) in &databases {
            println!(
                "{name}: longest gap {:.0} ms | {} acknowledged writes, {} LOST | {} failed (not acknowledged)",
                figures["downtime_ms"].as_f64().unwrap_or(0.0),
                figures["acknowledged_writes"],
                figures["lost_writes"],
                figures["failed_ops"]
            );
        }
        println!(
            "{} | wall {:.1} s | every Node upgraded: {} | every member healthy: {}{}",
            report.outcome(),
            report.wall.as_secs_f64(),
            if all_nodes_upgraded { "yes" } else { "NO" },
            if members_healthy { "yes" } else { "NO" },
            compliance_report.as_ref().map(|p| format!(" | compliance report {}", p.display())).unwrap_or_default()
        );
    }
    let summary = json!({
        "pattern": args.database.pattern(),
        "outcome": report.outcome(),
        "wall_ms": report.wall.as_secs_f64() * 1000.0,
        "lab_up_ms": lab_up.as_secs_f64() * 1000.0,
        "databases": databases,
        "lost_writes": lost,
        "control_plane": control_plane,
        "all_nodes_upgraded": all_nodes_upgraded,
        "members_healthy": members_healthy,
        "nodes_before": before,
        "nodes": after,
        "final_clusters": {"postgres-cluster": postgres, "redis-cluster": redis},
        "steps": report.record.steps.iter().map(|s| json!({"name": s.name, "slot": s.slot_path, "outcome": s.outcome, "ms": s.ms})).collect::<Vec<_>>(),
        "compliance_report": compliance_report,
    });
    Ok((if ok { Exit::Success } else { Exit::PolicyFailed }, summary))
}

/// The Service clients write through, and the member it selects.
const PRIMARY_SERVICE: &str = "/api/v1/namespaces/default/services/postgres-primary";

async fn service_target(client: &LabClient) -> Result<String, Failure> {
    let service = client.get(PRIMARY_SERVICE).await.map_err(|e| Failure::new(Exit::Unavailable, format!("Service postgres-primary: {e}")))?;
    service
        .as_ref()
        .and_then(|s| s["spec"]["selector"]["statefulset.kubernetes.io/pod-name"].as_str())
        .map(str::to_string)
        .ok_or_else(|| Failure::new(Exit::Unavailable, "Service postgres-primary selects no member by statefulset.kubernetes.io/pod-name"))
}

/// Break `member` as `kill` says.
async fn break_primary(dir: &LabDir, client: &LabClient, member: &str, kill: Kill) -> Result<(), Failure> {
    match kill {
        Kill::Postmaster => {
            let file = dir.root.join("volumes/default").join(member).join("postmaster.pid");
            let pid: i32 = std::fs::read_to_string(&file)
                .ok()
                .and_then(|text| text.lines().next().and_then(|l| l.trim().parse().ok()))
                .ok_or_else(|| Failure::new(Exit::Unavailable, format!("{member}: no postmaster pid in {}", file.display())))?;
            // SAFETY: a signal to the database server this demo's lab started.
            if unsafe { libc::kill(pid, libc::SIGKILL) } != 0 {
                return Err(Failure::new(Exit::Unavailable, format!("{member}: kill -9 {pid}: {}", std::io::Error::last_os_error())));
            }
        }
        Kill::Pod => {
            let path = format!("/api/v1/namespaces/default/pods/{member}?gracePeriodSeconds=1");
            client.delete(&path).await.map_err(|e| Failure::new(Exit::Unavailable, format!("delete Pod {member}: {e}")))?;
        }
    }
    Ok(())
}

/// One run of the failover drill on a fresh lab: the probe writes, the
/// primary is killed, the failover runs, and the killed member must stream
/// from the new primary (then, with `--promote-back`, the same back).
fn drill(
    args: &DemoArgs,
    dir: &LabDir,
    cache_dir: Option<PathBuf>,
    text: bool,
    client: &LabClient,
    lab_up: Duration,
    rt: &tokio::runtime::Runtime,
) -> Result<DemoRun, Failure> {
    let killed = rt.block_on(service_target(client))?;
    let kill = args.kill.unwrap_or_default();
    let target = Target::lab(dir.root.clone());
    let mut line = exec_line(args);
    line.extend(["--config".into(), format!("primary={killed}")]);
    if text {
        println!("the drill: {kill} of the primary {killed} once the probe writes, then\n$ runner {}", line.join(" "));
    }
    let run = run_builder(args, target.clone(), cache_dir.clone()).config_pairs(vec![format!("primary={killed}")]);
    let report = rt.block_on(async { run.build().await?.execute_after(break_primary(dir, client, &killed, kill)).await })?;
    let final_cluster = rt.block_on(survey(args.database.cluster(), &target, client));
    if text {
        print!("{}", report_text(&report));
    }
    let new_primary = final_cluster.primaries.first().cloned();
    let rejoin_problem = if report.exit() != Exit::Success {
        Some(format!("the failover ended {}", report.outcome()))
    } else if final_cluster.primaries.len() != 1 || new_primary.as_deref() == Some(killed.as_str()) {
        Some(format!("primaries afterwards: {:?}", final_cluster.primaries))
    } else if !final_cluster.streaming.contains(&killed) {
        Some(format!(
            "{killed} does not stream from {} (streaming: {:?}; {})",
            new_primary.as_deref().unwrap_or("?"),
            final_cluster.streaming,
            final_cluster.error.as_deref().unwrap_or("no error")
        ))
    } else {
        None
    };
    let mut result = demo_run(report, final_cluster, lab_up);
    let mut promote_back = None;
    if args.promote_back && rejoin_problem.is_none() {
        let from = new_primary.clone().unwrap_or_default();
        let back = run_builder(args, target.clone(), cache_dir).config_pairs(vec![format!("primary={from}"), format!("candidate={killed}")]);
        let report = back.run()?;
        let cluster = rt.block_on(survey(args.database.cluster(), &target, client));
        if text {
            println!("\n$ runner {} --config primary={from} --config candidate={killed}", exec_line(args).join(" "));
            print!("{}", report_text(&report));
        }
        let probe = report.probe().cloned().unwrap_or_default();
        let back_ok = report.exit() == Exit::Success && cluster.primaries == [killed.clone()] && cluster.streaming.contains(&from);
        result.lost_writes += probe.lost_writes;
        result.acknowledged_writes += probe.acknowledged_writes;
        if !back_ok {
            result.exit = Exit::PolicyFailed;
        }
        promote_back = Some(json!({
            "outcome": report.outcome().to_string(),
            "ok": back_ok,
            "downtime_ms": probe.downtime_ms,
            "lost_writes": probe.lost_writes,
            "acknowledged_writes": probe.acknowledged_writes,
            "primaries": cluster.primaries,
            "streaming": cluster.streaming,
        }));
        result.final_cluster = cluster;
    }
    if text {
        println!("\nafter the run:");
        if let Ok(rows) = rt.block_on(ops::status(client)) {
            print_status(&rows);
        }
    }
    result.drill = Some(Drill { kill, killed, new_primary, rejoined_cleanly: rejoin_problem.is_none(), rejoin_problem, promote_back });
    Ok(result)
}

/// The `runner exec` line an operator would type for the demo's run.
fn exec_line(args: &DemoArgs) -> Vec<String> {
    let mut line = vec!["exec".to_string(), args.database.pattern().into(), "--approve".into()];
    for database in args.database.probed() {
        line.extend(["--write-probe".to_string(), database.into()]);
    }
    line.extend(["--probe-rate".to_string(), args.probe_rate.to_string()]);
    for pair in args.database.config() {
        line.extend(["--config".to_string(), pair]);
    }
    for cap in args.database.allowances() {
        line.extend(["--allow".to_string(), cap.to_string()]);
    }
    line
}

/// The run [`exec_line`] describes, with `exec`'s defaults for every flag it leaves out.
fn run_builder(args: &DemoArgs, target: Target, cache_dir: Option<PathBuf>) -> RunBuilder {
    let allowances = args.database.allowances().iter().map(|cap| cap.to_string()).collect();
    let mut builder = RunBuilder::new(args.database.pattern()).approval(Approval::PreApproved);
    for database in args.database.probed() {
        builder = builder.write_probe(database.into(), DEFAULT_PROBE_TABLE.into(), args.probe_rate);
    }
    builder.config_pairs(args.database.config()).allow_flags(allowances, None).target(target).limits(Default::default(), cache_dir)
}

fn demo_run(report: RunReport, final_cluster: FinalCluster, lab_up: Duration) -> DemoRun {
    let probe = report.probe().cloned().unwrap_or_default();
    DemoRun {
        outcome: report.outcome().to_string(),
        downtime_ms: probe.downtime_ms,
        acknowledged_writes: probe.acknowledged_writes,
        lost_writes: probe.lost_writes,
        failed_ops: probe.failed_ops,
        max_latency_ms: probe.max_latency_ms,
        wall_ms: report.wall.as_secs_f64() * 1000.0,
        lab_up_ms: lab_up.as_secs_f64() * 1000.0,
        steps: report.record.steps.iter().map(|s| json!({"name": s.name, "outcome": s.outcome, "ms": s.ms})).collect(),
        final_cluster,
        drill: None,
        exit: report.exit(),
    }
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
    let mut summary = json!({
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
    });
    if runs.iter().any(|r| r.drill.is_some()) {
        summary["clean_rejoins"] = json!(runs.iter().filter(|r| r.drill.as_ref().is_some_and(|d| d.rejoined_cleanly)).count());
    }
    summary
}

/// Ctrl-C stops the demo's lab too: its daemon runs in its own process group.
fn stop_on_interrupt(dir: LabDir) {
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else { return };
        rt.block_on(shutdown_signal());
        eprintln!("\ninterrupted: stopping the demo lab in {}", dir.root.display());
        stop(&dir);
        std::process::exit(130);
    });
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[test]
    fn the_printed_exec_line_is_one_an_operator_can_type() {
        for database in [
            DemoDatabase::Postgres,
            DemoDatabase::Redis,
            DemoDatabase::Mongo,
            DemoDatabase::Failover,
            DemoDatabase::AksUpgrade,
            DemoDatabase::NodeImagePatch,
            DemoDatabase::Fleet,
        ] {
            let args = DemoArgs {
                database,
                repeat: 1,
                output: OutputFormat::Text,
                dir: None,
                subnet: 50,
                keep: false,
                kill: None,
                promote_back: false,
                probe_rate: 200,
            };
            let line = std::iter::once("runner".to_string()).chain(exec_line(&args));
            if let Err(e) = super::super::Cli::try_parse_from(line) {
                panic!("{database:?}: {e}");
            }
        }
    }
}

//! `runner demo`: the README's main job. A fresh lab, a real upgrade of its
//! database cluster by a bundled pattern, a write probe running through it,
//! and the figures that matter: how long writes were unavailable and
//! whether an acknowledged write was lost.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use clap::{Args, ValueEnum};
use runner_lab::daemon::LabDir;
use runner_lab::ops;
use runner_lab::topology::Topology;
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

    fn cluster(self) -> Cluster {
        match self {
            DemoDatabase::Postgres => Cluster::Postgres,
            DemoDatabase::Redis => Cluster::Redis,
            DemoDatabase::Mongo => Cluster::Mongo,
        }
    }

    /// A lab of this cluster only.
    fn topology(self) -> Topology {
        let is = |d| self == d;
        Topology { postgres: is(DemoDatabase::Postgres), redis: is(DemoDatabase::Redis), mongo: is(DemoDatabase::Mongo), ..Topology::default() }
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

/// Run the demo as often as asked, each on a fresh lab, and print each run and the medians;
/// exit 1 unless every run upgraded every member and lost no acknowledged write.
pub fn run(args: DemoArgs, cache_dir: Option<PathBuf>) -> CommandResult {
    let dir = LabDir::new(args.dir.clone().unwrap_or_else(|| std::env::temp_dir().join("runner-demo")));
    check_servers(&args.database.topology())?;
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
    let exit = if runs.iter().all(|r| r.exit == Exit::Success && r.lost_writes == 0 && r.final_cluster.healthy(args.database.expected())) {
        Exit::Success
    } else {
        Exit::PolicyFailed
    };
    let summary = summarize(args.database.pattern(), &runs);
    match args.output {
        OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&summary).unwrap_or_default()),
        OutputFormat::Text => {
            if args.repeat > 1 {
                println!(
                    "median over {} runs: downtime {:.0} ms, wall {:.1} s; {} acknowledged writes in all, {} lost",
                    runs.len(),
                    summary["downtime_ms"].as_f64().unwrap_or(0.0),
                    summary["wall_ms"].as_f64().unwrap_or(0.0) / 1000.0,
                    summary["acknowledged_writes"],
                    summary["lost_writes"]
                );
            }
            if args.keep {
                println!(
                    "\nthe lab is still running: export KUBECONFIG={}; stop it with `runner lab --dir {} down`",
                    dir.kubeconfig().display(),
                    dir.root.display()
                );
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
    let client = rt.block_on(start(dir, &args.database.topology(), args.subnet, Duration::from_secs(240)))?;
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

/// The `runner exec` line an operator would type for the demo's run.
fn exec_line(args: &DemoArgs) -> Vec<String> {
    let mut line = vec![
        "exec".to_string(),
        args.database.pattern().into(),
        "--approve".into(),
        "--write-probe".into(),
        args.database.database().into(),
        "--probe-rate".into(),
        args.probe_rate.to_string(),
    ];
    for cap in args.database.allowances() {
        line.extend(["--allow".to_string(), cap.to_string()]);
    }
    line
}

/// The run [`exec_line`] describes, with `exec`'s defaults for every flag it leaves out.
fn run_builder(args: &DemoArgs, target: Target, cache_dir: Option<PathBuf>) -> RunBuilder {
    let allowances = args.database.allowances().iter().map(|cap| cap.to_string()).collect();
    RunBuilder::new(args.database.pattern())
        .approval(Approval::PreApproved)
        .write_probe(args.database.database().into(), DEFAULT_PROBE_TABLE.into(), args.probe_rate)
        .allow_flags(allowances, None)
        .target(target)
        .limits(Default::default(), cache_dir)
}

fn demo_run(report: RunReport, final_cluster: FinalCluster, lab_up: Duration) -> DemoRun {
    let probe = report.probe.clone().unwrap_or_default();
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
        for database in [DemoDatabase::Postgres, DemoDatabase::Redis, DemoDatabase::Mongo] {
            let args = DemoArgs { database, repeat: 1, output: OutputFormat::Text, dir: None, subnet: 50, keep: false, probe_rate: 200 };
            let line = std::iter::once("runner".to_string()).chain(exec_line(&args));
            if let Err(e) = super::super::Cli::try_parse_from(line) {
                panic!("{database:?}: {e}");
            }
        }
    }
}

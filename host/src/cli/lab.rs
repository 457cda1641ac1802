//! `runner lab`: the embedded local cluster (a Kubernetes API server whose
//! Pods are real PostgreSQL, Redis and MongoDB servers on loopback addresses).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Subcommand};
use runner_lab::client::LabClient;
use runner_lab::daemon::LabDir;
use runner_lab::ops;
use runner_lab::topology::Topology;

use super::render::print_status;
use super::{CommandResult, Exit, Failure, OutputFormat};
use crate::run::lab::{shutdown_signal, start, stop};
use crate::run::runtime;

/// `runner lab`'s arguments.
#[derive(Args, Debug)]
pub struct LabArgs {
    /// The lab's directory (state, volumes, kubeconfig).
    #[arg(long, global = true, env = "RUNNER_LAB_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,

    /// Report format.
    #[arg(short = 'o', long, global = true, value_enum, default_value_t)]
    output: OutputFormat,

    #[command(subcommand)]
    command: LabCommand,
}

/// Which database clusters a lab runs, on how many Nodes, on which loopback subnet.
#[derive(Args, Debug, Clone)]
pub struct TopologyArgs {
    /// Run the 3-member PostgreSQL StatefulSet (the default when no database is named).
    #[arg(long)]
    postgres: bool,
    /// Run the 6-member Redis cluster.
    #[arg(long)]
    redis: bool,
    /// Run a 3-member MongoDB replica set (needs `mongod`, which Debian does not package).
    #[arg(long)]
    mongo: bool,
    /// Run no database at all: Nodes and pools only (many such labs fit on one machine).
    #[arg(long, conflicts_with_all = ["postgres", "redis", "mongo"])]
    no_databases: bool,
    /// Nodes per pool (nodepool1 at the old version, upgraded-pool at the new one).
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u16).range(1..=50))]
    nodes: u16,
    /// Loopback subnet: Pods get 127.N.1.x and Services 127.N.2.x (another N lets two labs coexist).
    #[arg(long, default_value_t = 0, value_parser = clap::value_parser!(u8).range(0..=254))]
    subnet: u8,
    /// How long a Node's kubelet may stay silent before the Node is Unknown and its Pods not Ready
    /// (kube-controller-manager's --node-monitor-grace-period; the kubelet posts four times as often).
    #[arg(long, default_value = "40s", value_parser = parse_grace_period)]
    node_monitor_grace_period: Duration,
    /// Only nodepool1 (at 1.29.9), with the control plane at 1.29.9: the layout an AKS upgrade starts from
    /// (the default has upgraded-pool at 1.30.5 too, and the control plane at 1.31.2). Applies to a fresh lab.
    #[arg(long)]
    single_pool: bool,
    /// With --single-pool: the control plane and nodepool1 at this version (one the lab's AKS offers:
    /// 1.29.9, 1.30.5, 1.31.2) instead of 1.29.9, as a cluster created at it. Applies to a fresh lab.
    #[arg(long, requires = "single_pool", value_parser = parse_lab_version)]
    kubernetes_version: Option<String>,
    /// How long one AKS minute (drainTimeoutInMinutes, nodeSoakDurationInMinutes) lasts in the lab's ARM emulation.
    #[arg(long, default_value = "60s", value_parser = parse_lab_minute)]
    lab_minute: Duration,
}

impl TopologyArgs {
    fn topology(&self) -> Topology {
        let none = !self.postgres && !self.redis && !self.mongo && !self.no_databases;
        Topology {
            nodes_per_pool: self.nodes as usize,
            postgres: self.postgres || none,
            redis: self.redis,
            mongo: self.mongo,
            node_monitor_grace_period: self.node_monitor_grace_period,
            single_pool: self.single_pool,
            kubernetes_version: self.kubernetes_version.clone(),
            lab_minute: self.lab_minute,
        }
    }
}

#[derive(Subcommand, Debug)]
enum LabCommand {
    /// Start the lab in the background (or report the running one) and wait until its databases are Ready.
    Up {
        #[command(flatten)]
        topology: TopologyArgs,
        /// How long to wait for every StatefulSet to be Ready.
        #[arg(long, default_value = "180s", value_parser = parse_duration)]
        wait: Duration,
        /// Start one lab cluster per name (`dev,test,prod`; `NAME:GROUP` puts a member in a group other than its
        /// name's), each in `<dir>/<name>` with its own API server and ARM endpoint on its own subnet (--subnet,
        /// then the next ones), and write the fleet file `<dir>/fleet.yaml`.
        #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
        fleet: Vec<String>,
    },
    /// Pods, roles, nodes, pools and addresses.
    Status {
        /// The members of a fleet of labs (`runner lab up --fleet`), each in `<dir>/<name>`.
        #[arg(long, value_name = "NAME,...", value_delimiter = ',')]
        fleet: Vec<String>,
    },
    /// Take a real pg_basebackup of the primary and mark the postgres-backup Job complete.
    Backup,
    /// Stop every process the lab started; state and volumes stay for the next `up`.
    Down {
        /// Stop every lab of a fleet (`runner lab up --fleet`): those the fleet file `<dir>/fleet.yaml` names.
        #[arg(long)]
        fleet: bool,
    },
    /// Run the lab in the foreground (what `up` starts in the background). Ctrl-C stops it cleanly.
    #[command(hide = true)]
    Serve {
        #[command(flatten)]
        topology: TopologyArgs,
    },
}

impl LabArgs {
    /// Whether this runs the daemon itself (`runner lab serve`).
    pub fn is_daemon(&self) -> bool {
        matches!(self.command, LabCommand::Serve { .. })
    }
}

fn parse_duration(text: &str) -> Result<Duration, String> {
    crate::policy::config::duration_ms(text).map(Duration::from_millis).ok_or_else(|| format!("`{text}` is not a duration"))
}

/// A lab minute of at least 10 ms (a timer has to be able to run it).
fn parse_lab_minute(text: &str) -> Result<Duration, String> {
    let minute = parse_duration(text)?;
    if minute < Duration::from_millis(10) {
        return Err(format!("`{text}` is too short: a lab minute lasts 10ms or more"));
    }
    Ok(minute)
}

/// A version the lab's AKS offers (`1.30.5`; a leading `v` is dropped).
fn parse_lab_version(text: &str) -> Result<String, String> {
    let version = text.trim_start_matches('v');
    let offered = runner_lab::arm::rules::VERSIONS;
    if offered.contains(&version) { Ok(version.to_string()) } else { Err(format!("`{text}`: the lab's AKS offers {}", offered.join(", "))) }
}

/// At least two seconds: the kubelet posts at most once a second.
fn parse_grace_period(text: &str) -> Result<Duration, String> {
    let grace = parse_duration(text)?;
    if grace < Duration::from_secs(2) {
        return Err(format!("`{text}` is too short: the kubelet posts status once a second at most, so the grace period must be 2s or more"));
    }
    Ok(grace)
}

fn unavailable(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Unavailable, e.to_string())
}

/// The fleet file `runner lab up --fleet` writes in the lab directory.
pub const FLEET_FILE: &str = "fleet.yaml";

/// Start one lab per name, each on its own subnet, and write their fleet file.
async fn up_fleet(dir: &LabDir, topology: &TopologyArgs, wait: Duration, names: &[String], output: OutputFormat) -> CommandResult {
    let mut seen = std::collections::BTreeSet::new();
    let mut members = Vec::new();
    for text in names {
        let (name, group) = text.split_once(':').unwrap_or((text, text));
        crate::domain::names::label("--fleet member", name).map_err(|e| Failure::bad_input(e.to_string()))?;
        crate::domain::names::label("--fleet group", group).map_err(|e| Failure::bad_input(e.to_string()))?;
        if !seen.insert(name) {
            return Err(Failure::bad_input(format!("--fleet: `{name}` is named twice")));
        }
        members.push((name.to_string(), group.to_string()));
    }
    if usize::from(topology.subnet) + names.len() > 255 {
        return Err(Failure::bad_input(format!("--fleet: {} labs from subnet {} run past 127.254", names.len(), topology.subnet)));
    }
    // Member i runs on subnet --subnet + i.
    let subnet_of = |index: usize| topology.subnet + index as u8;
    let mut labs = Vec::new();
    for (index, (name, group)) in members.into_iter().enumerate() {
        let member = LabDir::new(dir.root.join(&name));
        start(&member, &topology.topology(), subnet_of(index), wait).await.map_err(|f| Failure::new(f.exit, format!("member {name}: {}", f.message)))?;
        labs.push((name, group, member.root));
    }
    std::fs::create_dir_all(&dir.root).map_err(|e| Failure::bad_input(format!("{}: {e}", dir.root.display())))?;
    let file = dir.root.join(FLEET_FILE);
    std::fs::write(&file, crate::target::Fleet::lab_file(&labs)).map_err(|e| Failure::bad_input(format!("{}: {e}", file.display())))?;
    match output {
        OutputFormat::Text => {
            for (index, (name, _, root)) in labs.iter().enumerate() {
                println!("{name}: {} (127.{}.0.0/16)", root.display(), subnet_of(index));
            }
            println!("\nThe fleet file: {}\n  runner exec staged-rollout --fleet {} ...", file.display(), file.display());
        }
        format => format.print(&serde_json::json!({
            "fleet": file,
            "members": labs.iter().enumerate().map(|(index, (name, group, root))| serde_json::json!({
                "name": name, "group": group, "dir": root, "subnet": subnet_of(index), "kubeconfig": LabDir::new(root).kubeconfig(),
            })).collect::<Vec<_>>(),
        })),
    }
    Ok(Exit::Success)
}

/// Run a `lab` subcommand.
pub fn run(args: LabArgs) -> CommandResult {
    let dir = LabDir::new(args.dir.clone().unwrap_or_else(LabDir::default_root));
    let rt = runtime()?;
    let output = args.output;
    match args.command {
        LabCommand::Serve { topology } => rt.block_on(async {
            runner_lab::daemon::serve(dir, topology.topology(), topology.subnet, shutdown_signal())
                .await
                .map_err(|e| Failure::new(Exit::PolicyFailed, format!("lab: {e:#}")))?;
            Ok(Exit::Success)
        }),
        LabCommand::Up { topology, wait, fleet } if !fleet.is_empty() => rt.block_on(up_fleet(&dir, &topology, wait, &fleet, output)),
        LabCommand::Up { topology, wait, .. } => rt.block_on(async {
            let client = start(&dir, &topology.topology(), topology.subnet, wait).await?;
            let rows = ops::status(&client).await.map_err(unavailable)?;
            if output == OutputFormat::Text {
                print_status(&rows);
                println!("\nThe lab is a local Kubernetes API server (not an upstream Kubernetes) whose Pods are real database processes.");
                println!("Use it with kubectl:\n  export KUBECONFIG={}", dir.kubeconfig().display());
            } else {
                output.print(&serde_json::json!({"dir": dir.root, "kubeconfig": dir.kubeconfig(), "pods": rows}));
            }
            Ok(Exit::Success)
        }),
        LabCommand::Status { fleet } if !fleet.is_empty() => rt.block_on(async {
            let mut all = serde_json::Map::new();
            for name in &fleet {
                let member = LabDir::new(dir.root.join(name));
                let client = LabClient::new(&member).map_err(unavailable)?;
                let rows = ops::status(&client).await.map_err(|e| unavailable(format!("member {name}: the lab is not running ({e})")))?;
                if output == OutputFormat::Text {
                    println!("== {name} ({})", member.root.display());
                    print_status(&rows);
                }
                all.insert(name.clone(), serde_json::to_value(&rows).unwrap_or_default());
            }
            if output != OutputFormat::Text {
                output.print(&serde_json::Value::Object(all));
            }
            Ok(Exit::Success)
        }),
        LabCommand::Status { .. } => rt.block_on(async {
            let client = LabClient::new(&dir).map_err(unavailable)?;
            let rows = ops::status(&client).await.map_err(|e| unavailable(format!("the lab is not running ({e}); start it with `runner lab up`")))?;
            match output {
                format @ (OutputFormat::Json | OutputFormat::Yaml) => format.print(&rows),
                OutputFormat::Text => print_status(&rows),
            }
            Ok(Exit::Success)
        }),
        LabCommand::Backup => rt.block_on(async {
            let client = LabClient::new(&dir).map_err(unavailable)?;
            let target = ops::backup(&dir, &client).await.map_err(|e| Failure::new(Exit::PolicyFailed, format!("backup: {e:#}")))?;
            match output {
                OutputFormat::Text => println!("backup written to {} and job postgres-backup marked complete", target.display()),
                format => format.print(&serde_json::json!({"backup": target, "job": "postgres-backup", "complete": true})),
            }
            Ok(Exit::Success)
        }),
        LabCommand::Down { fleet: true } => {
            let file = dir.root.join(FLEET_FILE);
            let fleet =
                crate::target::Fleet::read(&file).map_err(|e| Failure::bad_input(format!("{e} (was the fleet started with `runner lab up --fleet`?)")))?;
            let mut stopped = Vec::new();
            for member in &fleet.members {
                if let crate::target::Source::Lab(root) = &member.target.source {
                    stop(&LabDir::new(root));
                    stopped.push(member.name.clone());
                }
            }
            match output {
                OutputFormat::Text => println!("fleet stopped: {}", stopped.join(", ")),
                format => format.print(&serde_json::json!({"stopped": stopped})),
            }
            Ok(Exit::Success)
        }
        LabCommand::Down { .. } => {
            let reaped = stop(&dir);
            match output {
                OutputFormat::Text => {
                    println!("lab stopped{}", if reaped > 0 { format!(" ({reaped} leftover database process(es) stopped)") } else { String::new() })
                }
                format => format.print(&serde_json::json!({"stopped": true, "leftover_processes_stopped": reaped})),
            }
            Ok(Exit::Success)
        }
    }
}

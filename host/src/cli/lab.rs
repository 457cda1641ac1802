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
    /// How long one AKS minute (drainTimeoutInMinutes, nodeSoakDurationInMinutes) lasts in the lab's ARM emulation.
    #[arg(long, default_value = "60s", value_parser = parse_lab_minute)]
    lab_minute: Duration,
}

impl TopologyArgs {
    fn topology(&self) -> Topology {
        let none = !self.postgres && !self.redis && !self.mongo;
        Topology {
            nodes_per_pool: self.nodes as usize,
            postgres: self.postgres || none,
            redis: self.redis,
            mongo: self.mongo,
            node_monitor_grace_period: self.node_monitor_grace_period,
            single_pool: self.single_pool,
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
    },
    /// Pods, roles, nodes, pools and addresses.
    Status,
    /// Take a real pg_basebackup of the primary and mark the postgres-backup Job complete.
    Backup,
    /// Stop every process the lab started; state and volumes stay for the next `up`.
    Down,
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
        LabCommand::Up { topology, wait } => rt.block_on(async {
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
        LabCommand::Status => rt.block_on(async {
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
        LabCommand::Down => {
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

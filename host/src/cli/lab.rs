//! `runner lab`: the embedded local cluster (a Kubernetes API server whose
//! Pods are real PostgreSQL, Redis and MongoDB servers on loopback addresses).

use std::path::PathBuf;
use std::process::Stdio;
use std::time::Duration;

use clap::{Args, Subcommand};
use runner_lab::client::LabClient;
use runner_lab::daemon::LabDir;
use runner_lab::ops;
use runner_lab::topology::Topology;

use super::{runtime, CommandResult, Exit, Failure, OutputFormat};

#[derive(Args, Debug)]
pub struct LabArgs {
    /// The lab's directory (state, volumes, kubeconfig).
    #[arg(long, global = true, env = "RUNNER_LAB_DIR", value_name = "DIR")]
    dir: Option<PathBuf>,

    #[command(subcommand)]
    command: LabCommand,
}

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
}

/// One of the database clusters a lab can run.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum LabDatabase {
    Postgres,
    Redis,
    Mongo,
}

impl TopologyArgs {
    /// Only `database`'s cluster, on `subnet`.
    pub(super) fn only(database: LabDatabase, subnet: u8) -> Self {
        let is = |d| database == d;
        TopologyArgs { postgres: is(LabDatabase::Postgres), redis: is(LabDatabase::Redis), mongo: is(LabDatabase::Mongo), nodes: 3, subnet }
    }

    fn topology(&self) -> Topology {
        let none = !self.postgres && !self.redis && !self.mongo;
        Topology { nodes_per_pool: self.nodes as usize, postgres: self.postgres || none, redis: self.redis, mongo: self.mongo }
    }

    /// Refuse, before anything starts, a database whose server is not installed.
    pub(super) fn check_servers(&self) -> Result<(), Failure> {
        self.topology().servers_installed().map_err(|e| Failure::bad_input(format!("the lab cannot start: {e}")))
    }

    fn as_flags(&self) -> Vec<String> {
        let mut flags = vec!["--nodes".to_string(), self.nodes.to_string(), "--subnet".to_string(), self.subnet.to_string()];
        if self.postgres {
            flags.push("--postgres".into());
        }
        if self.redis {
            flags.push("--redis".into());
        }
        if self.mongo {
            flags.push("--mongo".into());
        }
        flags
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
    Status {
        #[arg(long, value_enum, default_value_t)]
        output: OutputFormat,
    },
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

fn unavailable(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Unavailable, e.to_string())
}

pub fn run(args: LabArgs) -> CommandResult {
    let dir = LabDir::new(args.dir.clone().unwrap_or_else(LabDir::default_root));
    let rt = runtime()?;
    match args.command {
        LabCommand::Serve { topology } => rt.block_on(async {
            runner_lab::daemon::serve(dir, topology.topology(), topology.subnet, shutdown_signal()).await.map_err(|e| Failure::new(Exit::PolicyFailed, format!("lab: {e:#}")))?;
            Ok(Exit::Success)
        }),
        LabCommand::Up { topology, wait } => rt.block_on(async {
            let client = start(&dir, &topology, wait).await?;
            print_status(&ops::status(&client).await.map_err(unavailable)?);
            println!("\nThe lab is a local Kubernetes API server (not an upstream Kubernetes) whose Pods are real database processes.");
            println!("Use it with kubectl:\n  export KUBECONFIG={}", dir.kubeconfig().display());
            Ok(Exit::Success)
        }),
        LabCommand::Status { output } => rt.block_on(async {
            let client = LabClient::new(&dir).map_err(unavailable)?;
            let rows = ops::status(&client).await.map_err(|e| unavailable(format!("the lab is not running ({e}); start it with `runner lab up`")))?;
            match output {
                OutputFormat::Json => println!("{}", serde_json::to_string_pretty(&rows).unwrap_or_default()),
                OutputFormat::Text => print_status(&rows),
            }
            Ok(Exit::Success)
        }),
        LabCommand::Backup => rt.block_on(async {
            let client = LabClient::new(&dir).map_err(unavailable)?;
            let target = ops::backup(&dir, &client).await.map_err(|e| Failure::new(Exit::PolicyFailed, format!("backup: {e:#}")))?;
            println!("backup written to {} and job postgres-backup marked complete", target.display());
            Ok(Exit::Success)
        }),
        LabCommand::Down => {
            let reaped = stop(&dir);
            println!("lab stopped{}", if reaped > 0 { format!(" ({reaped} leftover database process(es) stopped)") } else { String::new() });
            Ok(Exit::Success)
        }
    }
}

/// Start the lab daemon in `dir` (unless one runs) and wait until every
/// database is Ready; a client of its API server.
pub(super) async fn start(dir: &LabDir, topology: &TopologyArgs, wait: Duration) -> Result<LabClient, Failure> {
    topology.check_servers()?;
    let mut daemon = if ops::daemon_pid(dir).is_none() {
        let reaped = ops::reap_leftovers(dir);
        if reaped > 0 {
            eprintln!("stopped {reaped} database process(es) left behind by a lab that did not shut down cleanly");
        }
        std::fs::create_dir_all(&dir.root).map_err(|e| Failure::bad_input(format!("{}: {e}", dir.root.display())))?;
        let log = std::fs::OpenOptions::new().create(true).append(true).open(dir.log_file()).map_err(|e| Failure::bad_input(format!("{}: {e}", dir.log_file().display())))?;
        let exe = std::env::current_exe().map_err(|e| Failure::new(Exit::PolicyFailed, e.to_string()))?;
        let mut command = std::process::Command::new(exe);
        command.args(["lab", "--dir"]).arg(&dir.root).arg("serve").args(topology.as_flags());
        command.stdin(Stdio::null()).stdout(log.try_clone().map_err(|e| Failure::new(Exit::PolicyFailed, e.to_string()))?).stderr(log);
        // Its own process group: the daemon outlives this command and its terminal's Ctrl-C.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().map_err(|e| Failure::new(Exit::PolicyFailed, format!("cannot start the lab daemon: {e}")))?;
        eprintln!("starting the lab in {} (log: {})", dir.root.display(), dir.log_file().display());
        Some(child)
    } else {
        eprintln!("the lab in {} is already running", dir.root.display());
        None
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    let client = loop {
        if let Ok(client) = LabClient::new(dir)
            && client.alive().await
        {
            break client;
        }
        if let Some(status) = daemon.as_mut().and_then(|d| d.try_wait().ok().flatten()) {
            let log = std::fs::read_to_string(dir.log_file()).unwrap_or_default();
            let last = log.lines().rev().find(|l| !l.trim().is_empty()).unwrap_or("no output");
            return Err(Failure::new(Exit::PolicyFailed, format!("the lab daemon exited ({status}): {last}")));
        }
        if std::time::Instant::now() > deadline {
            return Err(unavailable(format!("the lab's API server did not come up; see {}", dir.log_file().display())));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    ops::wait_ready(&client, wait).await.map_err(|e| unavailable(format!("{e}; see {} and `runner lab status`", dir.log_file().display())))?;
    Ok(client)
}

/// Stop the lab daemon in `dir` and any database process it left behind;
/// how many leftovers were stopped.
pub(super) fn stop(dir: &LabDir) -> usize {
    match ops::daemon_pid(dir) {
        Some(pid) => {
            // SAFETY: asking our own daemon to shut down.
            unsafe { libc::kill(pid, libc::SIGTERM) };
            let deadline = std::time::Instant::now() + Duration::from_secs(90);
            while ops::daemon_pid(dir).is_some() && std::time::Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(100));
            }
            if ops::daemon_pid(dir).is_some() {
                // SAFETY: the daemon did not stop in time.
                unsafe { libc::kill(pid, libc::SIGKILL) };
            }
        }
        None => eprintln!("no lab daemon running in {}", dir.root.display()),
    }
    ops::reap_leftovers(dir)
}

/// The lab's Pods as a table.
pub(super) fn print_status(rows: &[ops::PodRow]) {
    println!("{:<22} {:<12} {:<6} {:<8} {:<36} {:<14} {:<8} ADDRESS", "POD", "PHASE", "READY", "ROLE", "NODE", "POOL", "VERSION");
    for r in rows {
        println!("{:<22} {:<12} {:<6} {:<8} {:<36} {:<14} {:<8} {}", r.name, r.phase, if r.ready { "1/1" } else { "0/1" }, r.role, r.node, r.pool, r.version, r.address);
    }
}

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

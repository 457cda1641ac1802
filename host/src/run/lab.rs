//! The local lab as a run's target: start its daemon (a `runner lab serve`
//! process of its own) and wait until its databases are Ready, or stop it.

use std::process::Stdio;
use std::time::Duration;

use runner_lab::client::LabClient;
use runner_lab::daemon::LabDir;
use runner_lab::ops;
use runner_lab::topology::Topology;

use super::{Exit, Failure};

fn unavailable(e: impl std::fmt::Display) -> Failure {
    Failure::new(Exit::Unavailable, e.to_string())
}

/// Refuse, before anything starts, a database whose server is not installed.
pub fn check_servers(topology: &Topology) -> Result<(), Failure> {
    topology.servers_installed().map_err(|e| Failure::bad_input(format!("the lab cannot start: {e}")))
}

/// The `runner lab serve` flags that make the daemon run `topology` on `subnet`.
fn serve_flags(topology: &Topology, subnet: u8) -> Vec<String> {
    let grace = format!("{}ms", topology.node_monitor_grace_period.as_millis());
    let mut flags = vec!["--nodes".to_string(), topology.nodes_per_pool.to_string(), "--subnet".to_string(), subnet.to_string()];
    flags.extend(["--node-monitor-grace-period".to_string(), grace]);
    flags.extend(["--lab-minute".to_string(), format!("{}ms", topology.lab_minute.as_millis())]);
    if topology.single_pool {
        flags.push("--single-pool".into());
        if let Some(version) = &topology.kubernetes_version {
            flags.extend(["--kubernetes-version".to_string(), version.clone()]);
        }
    }
    for (wanted, flag) in [(topology.postgres, "--postgres"), (topology.redis, "--redis"), (topology.mongo, "--mongo")] {
        if wanted {
            flags.push(flag.into());
        }
    }
    if !topology.postgres && !topology.redis && !topology.mongo {
        flags.push("--no-databases".into());
    }
    flags
}

/// Start the lab daemon in `dir` (unless one runs) and wait until every
/// database is Ready; a client of its API server.
pub async fn start(dir: &LabDir, topology: &Topology, subnet: u8, wait: Duration) -> Result<LabClient, Failure> {
    check_servers(topology)?;
    let mut daemon = if ops::daemon_pid(dir).is_none() {
        let reaped = ops::reap_leftovers(dir);
        if reaped > 0 {
            eprintln!("stopped {reaped} database process(es) left behind by a lab that did not shut down cleanly");
        }
        std::fs::create_dir_all(&dir.root).map_err(|e| Failure::bad_input(format!("{}: {e}", dir.root.display())))?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.log_file())
            .map_err(|e| Failure::bad_input(format!("{}: {e}", dir.log_file().display())))?;
        let exe = std::env::current_exe().map_err(|e| Failure::new(Exit::PolicyFailed, e.to_string()))?;
        let mut command = std::process::Command::new(exe);
        command.args(["lab", "--dir"]).arg(&dir.root).arg("serve").args(serve_flags(topology, subnet));
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
    let line = crate::progress::WaitLine::on_terminal();
    let ready = if topology.postgres || topology.redis || topology.mongo {
        ops::wait_ready_watching(&client, wait, |pending| line.waiting("starting the lab", pending)).await
    } else {
        // No database to wait for: the Nodes are what a run reaches.
        wait_for_nodes(&client, wait).await
    };
    line.done();
    ready.map_err(|e| unavailable(format!("{e}; see {} and `runner lab status`", dir.log_file().display())))?;
    Ok(client)
}

/// Until the lab's API server lists its Nodes.
async fn wait_for_nodes(client: &LabClient, wait: Duration) -> anyhow::Result<()> {
    let deadline = std::time::Instant::now() + wait;
    while client.list("/api/v1/nodes").await.map(|nodes| nodes.is_empty()).unwrap_or(true) {
        if std::time::Instant::now() > deadline {
            anyhow::bail!("no Node after {} s", wait.as_secs());
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    Ok(())
}

/// Stop the lab daemon in `dir` and any database process it left behind;
/// how many leftovers were stopped.
pub fn stop(dir: &LabDir) -> usize {
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

/// Resolves on Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).ok();
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = async { match terminate.as_mut() { Some(s) => { s.recv().await; } None => std::future::pending::<()>().await } } => {}
    }
}

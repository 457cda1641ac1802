//! The lab daemon: the API server and every controller in one process,
//! with its state, volumes and kubeconfig in one directory.
//!
//! ```text
//! <dir>/state/          the API server's objects (survive a restart)
//! <dir>/volumes/NS/POD  each Pod's volume (outlives the Pod)
//! <dir>/run/NS/POD      each Pod's sockets, logs and pid file
//! <dir>/backups/        `runner lab backup` output
//! <dir>/kubeconfig      for kubectl and the runner (0600: it holds the token)
//! <dir>/daemon.pid      the daemon's process id while it runs
//! <dir>/arm.json        how to reach the lab's AKS (ARM) emulation, see [`crate::arm`]
//! <dir>/arm-token       its bearer token (0600; not the Kubernetes token)
//! <dir>/arm-port        its port, kept across restarts
//! <dir>/frontdoor       the front door's URL, `http://127.N.3.1:8080` (see [`crate::frontdoor`])
//! ```

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::net::TcpListener;
use tokio::sync::watch;

use crate::apiserver::{self, Store};
use crate::controllers::deployment::Deployments;
use crate::controllers::node_lifecycle::{self, NodeLifecycle};
use crate::controllers::replicaset::ReplicaSets;
use crate::controllers::{self, kubelet::Kubelet, reconciler, scheduler::Scheduler, services::Proxies, statefulset::StatefulSets};
use crate::exec::LabExec;
use crate::net::Addresses;
use crate::topology::{self, Topology};

/// The files of a lab directory.
#[derive(Clone, Debug)]
pub struct LabDir {
    /// The directory everything of this lab lives in.
    pub root: PathBuf,
}

impl LabDir {
    /// The lab in `root`.
    pub fn new(root: impl Into<PathBuf>) -> Self {
        LabDir { root: root.into() }
    }

    /// The default: `/var/lib/runner/lab` for root (the database processes
    /// run as the `postgres` user, who cannot enter `/root`), otherwise
    /// `<state dir>/runner/lab`.
    pub fn default_root() -> PathBuf {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } == 0 {
            return PathBuf::from("/var/lib/runner/lab");
        }
        std::env::var_os("XDG_STATE_HOME")
            .map(PathBuf::from)
            .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))
            .unwrap_or_else(std::env::temp_dir)
            .join("runner/lab")
    }

    /// The kubeconfig `runner lab up` writes for kubectl and the runner.
    pub fn kubeconfig(&self) -> PathBuf {
        self.root.join("kubeconfig")
    }

    /// The lab whose kubeconfig `path` is, if it is one: a file named
    /// `kubeconfig` beside a lab's token (which outlives the daemon, so a
    /// stopped lab is still recognised as a lab).
    pub fn of_kubeconfig(path: &Path) -> Option<LabDir> {
        let dir = LabDir::new(path.parent()?);
        (path.file_name()? == "kubeconfig" && dir.token_file().is_file()).then_some(dir)
    }
    /// Holds the daemon's pid while it runs, to tell a running lab from a stale one.
    pub fn pid_file(&self) -> PathBuf {
        self.root.join("daemon.pid")
    }
    /// Where the daemon's log goes, to quote when the lab fails to come up.
    pub fn log_file(&self) -> PathBuf {
        self.root.join("daemon.log")
    }
    /// Where `runner lab backup` puts each base backup.
    pub fn backups(&self) -> PathBuf {
        self.root.join("backups")
    }
    fn state(&self) -> PathBuf {
        self.root.join("state")
    }
    fn token_file(&self) -> PathBuf {
        self.root.join("token")
    }
    fn port_file(&self) -> PathBuf {
        self.root.join("port")
    }

    /// The API server's bearer token, created on first use (mode 0600).
    pub fn token(&self) -> std::io::Result<String> {
        if let Ok(token) = std::fs::read_to_string(self.token_file()) {
            return Ok(token.trim().to_string());
        }
        let token = topology::random_password() + &topology::random_password();
        write_private(&self.token_file(), &token)?;
        Ok(token)
    }

    /// `arm.json`: the ARM endpoint, subscription, resource group, cluster
    /// name, location, CA file and token file of the lab's AKS emulation
    /// (see [`crate::arm::ArmConfig`]), written at each start.
    pub fn arm_config(&self) -> PathBuf {
        self.root.join("arm.json")
    }

    /// The file holding the ARM bearer token (0600).
    pub fn arm_token_file(&self) -> PathBuf {
        self.root.join("arm-token")
    }

    /// The port the ARM server listened on last.
    pub fn arm_port_file(&self) -> PathBuf {
        self.root.join("arm-port")
    }

    /// The ARM bearer token, created on first use (mode 0600), different
    /// from the Kubernetes token.
    pub fn arm_token(&self) -> std::io::Result<String> {
        if let Ok(token) = std::fs::read_to_string(self.arm_token_file()) {
            return Ok(token.trim().to_string());
        }
        let token = topology::random_password() + &topology::random_password();
        write_private(&self.arm_token_file(), &token)?;
        Ok(token)
    }

    /// The ARM contract the running (or last) lab wrote, if any.
    pub fn read_arm_config(&self) -> Option<crate::arm::ArmConfig> {
        serde_json::from_slice(&std::fs::read(self.arm_config()).ok()?).ok()
    }

    /// Holds the front door's URL while the lab runs (see [`crate::frontdoor`]).
    pub fn frontdoor_file(&self) -> PathBuf {
        self.root.join("frontdoor")
    }

    /// The front door's URL (`http://127.N.3.1:8080`) the running lab wrote, if any.
    pub fn frontdoor_url(&self) -> Option<String> {
        Some(std::fs::read_to_string(self.frontdoor_file()).ok()?.trim().to_string()).filter(|u| !u.is_empty())
    }

    /// The URL of the API server, once it has run.
    pub fn server_url(&self) -> Option<String> {
        let port = std::fs::read_to_string(self.port_file()).ok()?;
        Some(format!("http://127.0.0.1:{}", port.trim()))
    }
}

/// Write a file readable by its owner only.
pub fn write_private(path: &Path, text: &str) -> std::io::Result<()> {
    let partial = path.with_extension("partial");
    let mut file = std::fs::OpenOptions::new().create(true).write(true).truncate(true).mode(0o600).open(&partial)?;
    file.write_all(text.as_bytes())?;
    std::fs::rename(partial, path)
}

/// Run the lab until `shutdown` resolves; then stop every database process
/// (gracefully) and persist the state.
pub async fn serve(dir: LabDir, topology: Topology, subnet: u8, shutdown: impl std::future::Future<Output = ()>) -> anyhow::Result<()> {
    std::fs::create_dir_all(&dir.root)?;
    check_reachable(&dir.root)?;
    let token = dir.token()?;
    let arm_token = dir.arm_token()?;
    let store = Store::open(&dir.state())?;
    if store.list("v1", "Node", None, None).map(|n| n.is_empty()).unwrap_or(true) {
        for object in topology::objects(&topology, topology::random_password) {
            match store.create(object) {
                Ok(_) => {}
                // The store makes the standard namespaces itself.
                Err(e) if e.code == 409 => {}
                Err(e) => anyhow::bail!("creating the lab's objects: {e}"),
            }
        }
    }
    // Nothing runs yet: what the Pods' statuses say is from before this start.
    // Until the kubelet sees each server accept connections, no Pod is Ready
    // (so `runner lab up` waits for the real servers, not the old statuses).
    for pod in store.list("v1", "Pod", None, None).unwrap_or_default() {
        let mut stale = pod.clone();
        crate::controllers::scheduler::set_condition(&mut stale, "Ready", "False", "LabRestarted", "waiting for the lab kubelet");
        crate::controllers::scheduler::set_condition(&mut stale, "ContainersReady", "False", "LabRestarted", "waiting for the lab kubelet");
        if stale != pod
            && let Err(e) = store.update_status(stale)
        {
            tracing::warn!("pod {}: marking it not Ready until the kubelet sees it: {e}", controllers::reconciler::key(&pod));
        }
    }
    // Keep the same port across restarts so kubeconfigs stay valid.
    let previous: Option<u16> = std::fs::read_to_string(dir.port_file()).ok().and_then(|p| p.trim().parse().ok());
    let listener = match previous {
        Some(port) => match TcpListener::bind(("127.0.0.1", port)).await {
            Ok(listener) => listener,
            Err(_) => TcpListener::bind(("127.0.0.1", 0)).await?,
        },
        None => TcpListener::bind(("127.0.0.1", 0)).await?,
    };
    let port = listener.local_addr()?.port();
    std::fs::write(dir.port_file(), port.to_string())?;
    let url = format!("https://127.0.0.1:{port}");
    write_private(&dir.kubeconfig(), &apiserver::kubeconfig_with_ca(&url, &token, "default", Some(&store.ca_pem()?)))?;

    let (stop, stopped) = watch::channel(false);
    let addresses = Addresses::open(dir.root.join("addresses.json"), subnet);
    let grace_period = topology.node_monitor_grace_period;
    let kubelet = Kubelet {
        store: store.clone(),
        addresses: addresses.clone(),
        dir: dir.root.clone(),
        members: Default::default(),
        heartbeat: node_lifecycle::heartbeat_interval(grace_period),
    };
    let exec = Arc::new(LabExec { members: kubelet.members.clone() });
    let server = tokio::spawn(apiserver::serve(store.clone(), listener, token, exec, wait_for(stopped.clone())));
    let mut tasks = vec![
        tokio::spawn(reconciler::run(Scheduler, store.clone(), stopped.clone())),
        tokio::spawn(NodeLifecycle { store: store.clone(), grace_period }.run(stopped.clone())),
        tokio::spawn(reconciler::run(StatefulSets, store.clone(), stopped.clone())),
        tokio::spawn(reconciler::run(Deployments, store.clone(), stopped.clone())),
        tokio::spawn(reconciler::run(ReplicaSets, store.clone(), stopped.clone())),
        tokio::spawn(reconciler::run(Proxies::new(addresses), store.clone(), stopped.clone())),
        tokio::spawn(controllers::redis::run(store.clone(), kubelet.clone(), stopped.clone())),
        tokio::spawn(controllers::mongo::run(store.clone(), kubelet.clone(), stopped.clone())),
        tokio::spawn(reconciler::run(crate::frontdoor::Routes, store.clone(), stopped.clone())),
    ];
    let arm_files = crate::arm::ArmFiles { config: dir.arm_config(), token: dir.arm_token_file(), port: dir.arm_port_file(), state_dir: dir.state() };
    let (arm, traffic_managers) = crate::arm::serve(store.clone(), arm_files, &topology, arm_token, stopped.clone()).await?;
    // A lab without its front door still serves the rest (as a Service
    // whose address is taken does); the missing file says it is not there.
    let _ = std::fs::remove_file(dir.frontdoor_file());
    match crate::frontdoor::serve(store.clone(), traffic_managers, subnet, stopped.clone()).await {
        Ok(task) => {
            std::fs::write(dir.frontdoor_file(), format!("http://{}\n", crate::frontdoor::address(subnet)))?;
            tasks.push(task);
        }
        Err(e) => tracing::warn!("{e:#}"),
    }
    let kubelet_task = tokio::spawn(kubelet.run(stopped.clone()));
    std::fs::write(dir.pid_file(), std::process::id().to_string())?;
    tracing::info!("lab serving at {url}; kubeconfig {}", dir.kubeconfig().display());

    shutdown.await;
    tracing::info!("lab stopping: stopping every database process");
    let _ = stop.send(true);
    let _ = kubelet_task.await;
    for task in tasks {
        let _ = task.await;
    }
    let _ = server.await;
    let _ = arm.await;
    store.flush()?;
    let _ = std::fs::remove_file(dir.pid_file());
    let _ = std::fs::remove_file(dir.frontdoor_file());
    Ok(())
}

/// The database processes run as the `postgres` user when the lab runs as
/// root: every directory above the lab must let others through.
fn check_reachable(root: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Ok(());
    }
    std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o755))?;
    let root = root.canonicalize()?;
    for dir in root.ancestors().skip(1) {
        let mode = std::fs::metadata(dir)?.permissions().mode();
        anyhow::ensure!(
            mode & 0o001 != 0,
            "the lab directory {} is not reachable by the postgres user ({} is mode {:o}); choose --dir under /var/lib or /tmp",
            root.display(),
            dir.display(),
            mode & 0o777
        );
    }
    Ok(())
}

/// Resolves once `stopped` turns true.
pub async fn wait_for(mut stopped: watch::Receiver<bool>) {
    let _ = stopped.wait_for(|s| *s).await;
}

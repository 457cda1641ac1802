//! What `runner lab status`, `backup` and `down` do, through the lab's API
//! and its directory.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::client::LabClient;
use crate::daemon::LabDir;

/// One Pod as `runner lab status` shows it.
#[derive(Debug, Clone, serde::Serialize)]
pub struct PodRow {
    /// The Pod's name.
    pub name: String,
    /// Its phase, or `Terminating` while it is being deleted.
    pub phase: String,
    /// Whether its server accepts connections.
    pub ready: bool,
    /// Its `role` label, as its server reports the role (`-` before the first probe).
    pub role: String,
    /// The Node it runs on (`-` while unscheduled).
    pub node: String,
    /// That Node's pool (`-` if none).
    pub pool: String,
    /// That Node's kubelet version, the one an upgrade changes.
    pub version: String,
    /// `IP:port` to connect to it directly (`-` before it runs).
    pub address: String,
}

/// The Pods of the lab with their Nodes' pools and versions.
pub async fn status(client: &LabClient) -> anyhow::Result<Vec<PodRow>> {
    let nodes = client.list("/api/v1/nodes").await?;
    let pods = client.list("/api/v1/namespaces/default/pods").await?;
    let mut rows: Vec<PodRow> = pods
        .iter()
        .map(|pod| {
            let node_name = pod["spec"]["nodeName"].as_str().unwrap_or_default();
            let node = nodes.iter().find(|n| n["metadata"]["name"] == node_name);
            let port = pod["spec"]["containers"][0]["ports"][0]["containerPort"].as_u64().unwrap_or(0);
            PodRow {
                name: pod["metadata"]["name"].as_str().unwrap_or_default().into(),
                phase: if pod["metadata"]["deletionTimestamp"].is_null() {
                    pod["status"]["phase"].as_str().unwrap_or("Pending").into()
                } else {
                    "Terminating".into()
                },
                ready: crate::controllers::pod_ready(pod),
                role: pod["metadata"]["labels"]["role"].as_str().unwrap_or("-").into(),
                node: if node_name.is_empty() { "-".into() } else { node_name.into() },
                pool: node.and_then(|n| n["metadata"]["labels"]["agentpool"].as_str()).unwrap_or("-").into(),
                version: node.and_then(|n| n["status"]["nodeInfo"]["kubeletVersion"].as_str()).unwrap_or("-").into(),
                address: pod["status"]["podIP"].as_str().map(|ip| format!("{ip}:{port}")).unwrap_or_else(|| "-".into()),
            }
        })
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(rows)
}

/// Wait until every StatefulSet has all its replicas Ready.
pub async fn wait_ready(client: &LabClient, timeout: Duration) -> anyhow::Result<()> {
    wait_ready_watching(client, timeout, |_| {}).await
}

/// [`wait_ready`], telling `watch` after each look what is still pending
/// (`postgres-cluster (1/3 ready): postgres-cluster-1 Running, postgres-cluster-2 Pending`).
pub async fn wait_ready_watching(client: &LabClient, timeout: Duration, mut watch: impl FnMut(&str)) -> anyhow::Result<()> {
    let deadline = Instant::now() + timeout;
    loop {
        let sets = client.list("/apis/apps/v1/namespaces/default/statefulsets").await.unwrap_or_default();
        let mut pending: Vec<String> = sets
            .iter()
            .filter(|s| s["status"]["readyReplicas"].as_u64().unwrap_or(0) < s["spec"]["replicas"].as_u64().unwrap_or(0))
            .map(|s| {
                format!(
                    "{} ({}/{} ready)",
                    s["metadata"]["name"].as_str().unwrap_or("?"),
                    s["status"]["readyReplicas"].as_u64().unwrap_or(0),
                    s["spec"]["replicas"]
                )
            })
            .collect();
        for setup in [crate::controllers::setup::REDIS_CLUSTER, crate::controllers::setup::MONGO_REPLICA_SET] {
            pending.extend(sets.iter().filter(|s| setup.pending(s)).map(|s| format!("{} ({})", s["metadata"]["name"].as_str().unwrap_or("?"), setup.what)));
        }
        if !sets.is_empty() && pending.is_empty() {
            return Ok(());
        }
        let pods = client.list("/api/v1/namespaces/default/pods").await.unwrap_or_default();
        let starting: Vec<String> = pods
            .iter()
            .filter(|pod| {
                let conditions = pod["status"]["conditions"].as_array().cloned().unwrap_or_default();
                !conditions.iter().any(|c| c["type"] == "Ready" && c["status"] == "True")
            })
            .map(|pod| format!("{} {}", pod["metadata"]["name"].as_str().unwrap_or("?"), pod["status"]["phase"].as_str().unwrap_or("Pending")))
            .collect();
        watch(&if starting.is_empty() { pending.join(", ") } else { format!("{}: {}", pending.join(", "), starting.join(", ")) });
        anyhow::ensure!(Instant::now() < deadline, "not ready after {} s: {}", timeout.as_secs(), pending.join(", "));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// Take a real `pg_basebackup` of the primary, through the `postgres-primary`
/// Service, into the lab's backup directory; then mark the `postgres-backup`
/// Job complete at that time. Returns the backup's directory.
pub async fn backup(dir: &LabDir, client: &LabClient) -> anyhow::Result<std::path::PathBuf> {
    let service = client
        .get("/api/v1/namespaces/default/services/postgres-primary")
        .await?
        .ok_or_else(|| anyhow::anyhow!("the lab has no postgres-primary Service (start it with --postgres)"))?;
    let address = service["spec"]["clusterIP"].as_str().ok_or_else(|| anyhow::anyhow!("postgres-primary has no address yet"))?.to_string();
    let secret =
        client.get("/api/v1/namespaces/default/secrets/postgres-credentials").await?.ok_or_else(|| anyhow::anyhow!("secret postgres-credentials not found"))?;
    let password = {
        use base64::Engine;
        let encoded = secret["data"]["password"].as_str().unwrap_or_default();
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded)?)?
    };
    let started = crate::controllers::now();
    let target = dir.backups().join(started.replace(':', ""));
    std::fs::create_dir_all(dir.backups())?;
    let output = tokio::process::Command::new("/usr/lib/postgresql/15/bin/pg_basebackup")
        .args(["-h", &address, "-p", "5432", "-U", "replicator", "-D"])
        .arg(&target)
        .args(["-X", "stream", "-c", "fast", "--no-password"])
        .env("PGPASSWORD", &password)
        .output()
        .await?;
    anyhow::ensure!(output.status.success(), "pg_basebackup failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    let finished = crate::controllers::now();
    let status = json!({"status": {
        "startTime": started, "completionTime": finished, "succeeded": 1, "active": 0,
        "conditions": [{"type": "Complete", "status": "True", "lastProbeTime": finished, "lastTransitionTime": finished}],
    }});
    client.merge_patch("/apis/batch/v1/namespaces/default/jobs/postgres-backup/status", &status).await?;
    Ok(target)
}

/// The pid of the daemon recorded in `dir`, if that process is alive (not a
/// zombie nobody reaped, and still a runner lab daemon: pids get reused).
pub fn daemon_pid(dir: &LabDir) -> Option<i32> {
    let pid: i32 = std::fs::read_to_string(dir.pid_file()).ok()?.trim().parse().ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let state = stat.rsplit(')').next()?.split_whitespace().next()?;
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).ok()?;
    let is_lab = String::from_utf8_lossy(&cmdline).split('\0').any(|arg| arg == "serve");
    (state != "Z" && is_lab).then_some(pid)
}

/// Stop database processes a crashed daemon left behind: every pid recorded
/// in the lab's volumes (`postmaster.pid`) and run directories (`*.pid`).
/// Returns how many were stopped.
pub fn reap_leftovers(dir: &LabDir) -> usize {
    let mut pid_files = Vec::new();
    for sub in ["volumes", "run"] {
        collect_pid_files(&dir.root.join(sub), 3, &mut pid_files);
    }
    let mut stopped = 0;
    for file in pid_files {
        let Some(pid) = std::fs::read_to_string(&file).ok().and_then(|t| t.lines().next().and_then(|l| l.trim().parse::<i32>().ok())) else { continue };
        let Some(signal) = stop_signal(pid) else { continue };
        if pid <= 1 {
            continue;
        }
        // SAFETY: sending the stop signal, then SIGKILL, to a database process this lab started.
        unsafe { libc::kill(pid, signal) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline && unsafe { libc::kill(pid, 0) } == 0 {
            std::thread::sleep(Duration::from_millis(100));
        }
        if unsafe { libc::kill(pid, 0) } == 0 {
            unsafe { libc::kill(pid, libc::SIGKILL) };
        }
        stopped += 1;
    }
    stopped
}

fn collect_pid_files(dir: &std::path::Path, depth: usize, out: &mut Vec<std::path::PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else { return };
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() && depth > 0 {
            collect_pid_files(&path, depth - 1, out);
        } else if path.file_name().is_some_and(|n| n == "postmaster.pid" || n.to_string_lossy().ends_with(".pid")) {
            out.push(path);
        }
    }
}

/// The signal that stops a database process quickly: SIGINT (fast
/// shutdown) for PostgreSQL, whose SIGTERM waits for every client; SIGTERM
/// for Redis and MongoDB. `None` for anything else.
fn stop_signal(pid: i32) -> Option<i32> {
    let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?;
    if comm.starts_with("postgres") {
        Some(libc::SIGINT)
    } else if comm.starts_with("redis-server") || comm.starts_with("mongod") {
        Some(libc::SIGTERM)
    } else {
        None
    }
}

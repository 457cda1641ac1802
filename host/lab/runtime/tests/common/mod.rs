//! What the real-server tests share: a guard that owns every server a test
//! starts and kills them all when the test ends, however it ends.

#![allow(dead_code)] // Each test binary uses a different part.

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use runner_lab_runtime::{self as runtime, MemberSpec, Process, Workload};
use tempfile::TempDir;

/// A password with everything that needs quoting somewhere: a single quote
/// (SQL, postgresql.conf, conninfo), a double quote and a backslash
/// (redis.conf), spaces.
pub const PASSWORD: &str = r#"s3cr'et "pa ss\word"#;

/// How long a server may take to accept connections.
pub const READY: Duration = Duration::from_secs(30);

/// Owns a test's directories and servers. Dropping it (at the end of the
/// test, or while a failed assertion unwinds) kills every server still
/// running, then removes the directories.
pub struct Lab {
    processes: Vec<(String, Process)>,
    pub dir: TempDir,
}

impl Lab {
    pub fn new() -> Lab {
        let dir = tempfile::Builder::new().prefix("lab-runtime-").tempdir().expect("temp dir");
        // Root makes it 0700; the postgres OS user must be able to walk through it.
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod temp dir");
        Lab { processes: Vec::new(), dir }
    }

    pub fn spec(&self, name: &str, workload: Workload, ip: Ipv4Addr) -> MemberSpec {
        MemberSpec {
            name: name.to_string(),
            workload,
            ip,
            port: workload.default_port(),
            volume: self.dir.path().join("volumes").join(name),
            run_dir: self.dir.path().join("run").join(name),
            password: PASSWORD.to_string(),
        }
    }

    /// Starts a member and waits until it accepts connections.
    pub async fn start(&mut self, spec: &MemberSpec) {
        let mut process = runtime::start(spec).unwrap_or_else(|e| panic!("start {}: {e}", spec.name));
        let ready = runtime::wait_ready(spec, &mut process, READY).await;
        self.processes.push((spec.name.clone(), process));
        ready.unwrap_or_else(|e| panic!("{e}"));
    }

    /// Stops a member gracefully and returns how it exited.
    pub async fn stop(&mut self, name: &str) -> std::process::ExitStatus {
        let at = self.processes.iter().position(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} is not running"));
        let (_, mut process) = self.processes.remove(at);
        process.stop(Duration::from_secs(20)).await.unwrap_or_else(|e| panic!("stop {name}: {e}"))
    }

    pub fn process(&mut self, name: &str) -> &mut Process {
        &mut self.processes.iter_mut().find(|(n, _)| n == name).unwrap_or_else(|| panic!("{name} is not running")).1
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        // Process's own Drop SIGKILLs its group and reaps it; do it before
        // the temp dir goes, so no server writes into a removed directory.
        self.processes.clear();
    }
}

/// Polls `check` until it holds, or fails the test with `what`.
pub async fn eventually<F, Fut>(what: &str, timeout: Duration, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + timeout;
    while !check().await {
        assert!(Instant::now() < deadline, "gave up after {timeout:?} waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A SQL session as the superuser over TCP.
pub async fn sql(address: SocketAddr) -> tokio_postgres::Client {
    let mut config = tokio_postgres::Config::new();
    config.host(address.ip().to_string()).port(address.port()).user("postgres").password(PASSWORD).dbname("postgres").connect_timeout(Duration::from_secs(5));
    let (client, connection) = config.connect(tokio_postgres::NoTls).await.unwrap_or_else(|e| panic!("connect to {address}: {e}"));
    tokio::spawn(async move {
        let _ = connection.await;
    });
    client
}

/// The primary's view of its standbys: (application_name, state, sync_state).
pub async fn replication(primary: SocketAddr) -> Vec<(String, String, String)> {
    let client = sql(primary).await;
    let rows = client.query("SELECT application_name, state, sync_state FROM pg_stat_replication ORDER BY 1", &[]).await.expect("pg_stat_replication");
    rows.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect()
}

/// Whether the primary sees `standby` streaming as a quorum standby.
pub async fn streams(primary: SocketAddr, standby: &str) -> bool {
    replication(primary).await.iter().any(|(name, state, sync)| name == standby && state == "streaming" && sync == "quorum")
}

pub async fn in_recovery(address: SocketAddr) -> bool {
    sql(address).await.query_one("SELECT pg_is_in_recovery()", &[]).await.expect("pg_is_in_recovery").get(0)
}

/// The values of table `t`.
pub async fn values(address: SocketAddr) -> Vec<String> {
    let client = sql(address).await;
    match client.query("SELECT v FROM t ORDER BY v", &[]).await {
        Ok(rows) => rows.iter().map(|r| r.get(0)).collect(),
        // Not replicated yet.
        Err(_) => Vec::new(),
    }
}

/// No process's command line holds the password.
pub fn assert_password_not_in_any_command_line() {
    for entry in std::fs::read_dir("/proc").expect("/proc").flatten() {
        if let Ok(cmdline) = std::fs::read(entry.path().join("cmdline")) {
            let cmdline = String::from_utf8_lossy(&cmdline);
            assert!(!cmdline.contains(PASSWORD), "the password shows in the command line of process {}", entry.file_name().to_string_lossy());
        }
    }
}

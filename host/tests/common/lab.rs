//! A lab per test: started in a temporary directory on the test's own
//! loopback subnet, reached with `runner`, `kubectl` and `psql` as
//! independent clients, and brought down (every process stopped) on drop.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use super::{Background, path, repo, stderr, stdout};

/// A running lab.
pub struct Lab {
    pub dir: tempfile::TempDir,
}

impl Lab {
    /// `runner lab up FLAGS` in a new directory; panics with the daemon's log if it fails.
    pub fn up(flags: &[&str]) -> Lab {
        // The database processes run as the postgres user: the directory must be reachable.
        let dir = tempfile::Builder::new().prefix("runner-lab-test-").tempdir_in("/tmp").unwrap();
        let lab = Lab { dir };
        let mut args = vec!["lab", "--dir", path(lab.dir.path()), "up", "--wait", "240s"];
        args.extend_from_slice(flags);
        let output = lab.runner(&args);
        if !output.status.success() {
            panic!("lab up failed:\n{}{}\n--- daemon.log ---\n{}", stdout(&output), stderr(&output), lab.log());
        }
        lab
    }

    /// The daemon's log, for failure messages.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("daemon.log")).unwrap_or_default()
    }

    /// `runner ARGS` with this lab as `--target lab` (and the default lab of
    /// `runner lab`), a private cache and the bundled policies.
    pub fn runner(&self, args: &[&str]) -> Output {
        self.command(args).output().unwrap()
    }

    /// The same, started in the background (stdout and stderr read as it writes).
    pub fn spawn(&self, args: &[&str]) -> Background {
        Background::spawn(self.command(args))
    }

    /// The command [`Lab::runner`] runs, to adjust before running it.
    pub fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(assert_cmd::cargo::cargo_bin("runner"));
        command
            .args(args)
            .env_remove("RUNNER_LOG")
            .env_remove("KUBECONFIG")
            .env("RUNNER_LAB_DIR", self.dir.path())
            .env("RUNNER_CACHE_DIR", self.dir.path().join("cache"))
            .env("RUNNER_POLICY_PATH", repo().join("policies/dist"));
        command
    }

    /// `runner lab down`, which must succeed.
    pub fn down(&self) {
        let output = self.runner(&["lab", "--dir", path(self.dir.path()), "down"]);
        assert!(output.status.success(), "lab down: {}{}", stdout(&output), stderr(&output));
    }

    pub fn kubeconfig(&self) -> PathBuf {
        self.dir.path().join("kubeconfig")
    }

    /// `kubectl ARGS`; panics with its output unless it exits 0.
    pub fn kubectl(&self, args: &[&str]) -> String {
        let output = self.kubectl_raw(args);
        assert!(output.status.success(), "kubectl {}: {}{}", args.join(" "), stdout(&output), stderr(&output));
        stdout(&output)
    }

    /// The `items` of `kubectl get ARGS -o json`.
    pub fn items(&self, args: &[&str]) -> Vec<serde_json::Value> {
        let list: serde_json::Value = serde_json::from_str(&self.kubectl(&[&["get"], args, &["-o", "json"]].concat())).unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// `runner exec aks-upgrade` to 1.30.5 against this lab, approved and
    /// with the allowances `runner demo aks-upgrade` gives, then `extra`.
    pub fn aks_upgrade(&self, extra: &[&str]) -> Command {
        let mut args = vec!["exec", "aks-upgrade", "--target", "lab", "--approve", "--config", "kubernetes-version=1.30.5", "-o", "json"];
        for cap in ["kube:*", "postgres:*", "cluster:*"] {
            args.extend(["--allow", cap]);
        }
        args.extend_from_slice(extra);
        self.command(&args)
    }

    pub fn kubectl_raw(&self, args: &[&str]) -> Output {
        Command::new("kubectl").arg("--kubeconfig").arg(self.kubeconfig()).args(args).output().unwrap()
    }

    /// A Secret's `password` key, decoded.
    pub fn password(&self, secret: &str) -> String {
        use base64::Engine;
        let encoded = self.kubectl(&["get", "secret", secret, "-o", "jsonpath={.data.password}"]);
        String::from_utf8(base64::engine::general_purpose::STANDARD.decode(encoded.trim()).unwrap()).unwrap()
    }

    pub fn service_ip(&self, service: &str) -> String {
        self.kubectl(&["get", "svc", service, "-o", "jsonpath={.spec.clusterIP}"]).trim().to_string()
    }

    pub fn pod_field(&self, pod: &str, path: &str) -> String {
        self.kubectl(&["get", "pod", pod, "-o", &format!("jsonpath={{{path}}}")]).trim().to_string()
    }

    /// `psql -c SQL` as postgres on a member (`postgres-cluster-1`) or a Service (`svc/postgres-primary`).
    pub fn psql(&self, at: &str, sql: &str) -> Result<String, String> {
        let host = match at.strip_prefix("svc/") {
            Some(service) => self.service_ip(service),
            None => self.pod_field(at, ".status.podIP"),
        };
        psql(&host, &self.password("postgres-credentials"), sql)
    }

    /// The member that answers `pg_is_in_recovery() = false`.
    pub fn pg_primary(&self) -> String {
        eventually("one PostgreSQL primary", Duration::from_secs(30), || {
            let names = self.kubectl(&["get", "pods", "-l", "app=postgres", "-o", "jsonpath={.items[*].metadata.name}"]);
            let primaries: Vec<String> =
                names.split_whitespace().filter(|p| self.psql(p, "SELECT pg_is_in_recovery()").ok().as_deref() == Some("f")).map(String::from).collect();
            (primaries.len() == 1).then(|| primaries[0].clone())
        })
    }

    /// The pid of a PostgreSQL member's postmaster, once it runs.
    pub fn postmaster_pid(&self, pod: &str) -> Option<i32> {
        let file = self.dir.path().join("volumes/default").join(pod).join("postmaster.pid");
        let pid: i32 = std::fs::read_to_string(file).ok()?.lines().next()?.trim().parse().ok()?;
        Path::new(&format!("/proc/{pid}")).exists().then_some(pid)
    }

    /// Wait until `pod` exists again with a uid other than `old_uid` and is Ready; its new uid.
    pub fn recreated_ready(&self, pod: &str, old_uid: &str) -> String {
        eventually(&format!("{pod} recreated and Ready"), Duration::from_secs(120), || {
            let out = self.kubectl_raw(&["get", "pod", pod, "-o", r#"jsonpath={.metadata.uid} {.status.conditions[?(@.type=="Ready")].status}"#]);
            let text = stdout(&out);
            let (uid, ready) = text.trim().split_once(' ')?;
            (out.status.success() && uid != old_uid && ready == "True").then(|| uid.to_string())
        })
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        let output = self.runner(&["lab", "--dir", path(self.dir.path()), "down"]);
        if !output.status.success() {
            eprintln!("lab down: {}{}", stdout(&output), stderr(&output));
        }
    }
}

/// `psql` against `host:5432` as postgres; returns trimmed stdout.
pub fn psql(host: &str, password: &str, sql: &str) -> Result<String, String> {
    psql_at(host, 5432, password, sql)
}

/// `psql` against `host:port` as postgres; returns trimmed stdout.
pub fn psql_at(host: &str, port: u16, password: &str, sql: &str) -> Result<String, String> {
    let port = port.to_string();
    let output = Command::new("psql")
        .args(["-h", host, "-p", &port, "-U", "postgres", "-d", "postgres", "-At", "-v", "ON_ERROR_STOP=1", "-c", sql])
        .env("PGPASSWORD", password)
        .env("PGCONNECT_TIMEOUT", "5")
        .output()
        .unwrap();
    if output.status.success() { Ok(stdout(&output).trim().to_string()) } else { Err(stderr(&output)) }
}

/// Poll `check` every 250 ms until it answers, or panic after `timeout`.
pub fn eventually<T>(what: &str, timeout: Duration, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "{what}: not within {timeout:?}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

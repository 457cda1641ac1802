//! The lab with its 6-member Redis cluster, for the Redis test files: a
//! Kubernetes backend connected to it, the cluster's password, and
//! `redis-cli` and `kubectl` as the independent clients.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use runner::backends::{Backends, KubeBackend};
use runner::target::Target;
use serde_json::Value;

use super::lab::{Lab, eventually};
use super::{stderr, stdout};

/// The lab with the Redis cluster, a Kubernetes backend connected to it, and the cluster's password.
pub struct RedisLab {
    pub lab: Lab,
    pub rt: tokio::runtime::Runtime,
    pub kube: Arc<KubeBackend>,
    pub password: String,
}

impl std::ops::Deref for RedisLab {
    type Target = Lab;
    fn deref(&self) -> &Lab {
        &self.lab
    }
}

impl RedisLab {
    /// `runner lab up --redis` on `subnet`, once the cluster is whole and the gate passes.
    pub fn up(subnet: &str) -> RedisLab {
        let lab = Lab::up(&["--redis", "--subnet", subnet]);
        let rt = tokio::runtime::Runtime::new().unwrap();
        let kube = Arc::new(
            rt.block_on(runner::backends::kube::connect(&Target::lab(lab.dir.path().to_path_buf()))).unwrap_or_else(|e| panic!("connect to the lab: {e}")),
        );
        let password = lab.password("redis-credentials");
        let lab = RedisLab { lab, rt, kube, password };
        // A freshly formed cluster takes a moment (more on a busy machine) until every replica is synced and every view agrees.
        lab.wait_healthy();
        lab.wait_gate_passes();
        lab
    }

    /// Wait until `redis-cluster-healthy` passes (90 s at most).
    pub fn wait_gate_passes(&self) {
        let mut last = String::new();
        let deadline = Instant::now() + Duration::from_secs(90);
        while Instant::now() < deadline {
            let output = self.runner(&["exec", "redis-cluster-healthy"]);
            if output.status.success() {
                return;
            }
            last = format!("{}{}", stdout(&output), stderr(&output));
            std::thread::sleep(Duration::from_millis(500));
        }
        panic!("the gate did not pass on a healthy lab:\n{last}");
    }

    /// The lab as a target.
    pub fn target(&self) -> Target {
        Target::lab(self.dir.path().to_path_buf())
    }

    /// The runner's backends for `target`, on this lab's Kubernetes connection.
    pub fn backends(&self, target: &Target) -> Backends {
        Backends::with_kube(self.kube.clone(), target)
    }

    /// The Redis Pods, as kubectl lists them.
    pub fn pods(&self) -> Vec<Value> {
        let list: Value = serde_json::from_str(&self.kubectl(&["get", "pods", "-l", "app=redis", "-o", "json"])).unwrap();
        list["items"].as_array().cloned().unwrap_or_default()
    }

    /// A member's Pod address.
    pub fn ip(&self, member: &str) -> String {
        self.kubectl(&["get", "pod", member, "-o", "jsonpath={.status.podIP}"]).trim().to_string()
    }

    /// Whether a member's Pod is Ready.
    pub fn ready(&self, member: &str) -> bool {
        self.kubectl(&["get", "pod", member, "-o", "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}"]).trim() == "True"
    }

    /// `redis-cli` against one member; stdout, or `None` if it failed.
    pub fn cli(&self, ip: &str, args: &[&str]) -> Option<String> {
        let output = Command::new("redis-cli").args(["-h", ip, "-p", "6379"]).args(args).env("REDISCLI_AUTH", &self.password).output().ok()?;
        let text = stdout(&output);
        (output.status.success() && !text.starts_with("ERR") && !text.contains("Could not connect")).then_some(text)
    }

    /// A journal path in the lab's directory.
    pub fn journal(&self, name: &str) -> PathBuf {
        self.dir.path().join(format!("{name}.jsonl"))
    }

    /// `ip:6379` of every member, to seed a cluster client.
    pub fn seeds(&self) -> Vec<String> {
        self.pods().iter().filter_map(|p| p["status"]["podIP"].as_str().map(|ip| format!("{ip}:6379"))).collect()
    }

    /// Masters and replicas by ROLE, and whether every member sees all slots served.
    pub fn topology(&self) -> (usize, usize, bool) {
        let (mut masters, mut replicas, mut served) = (0, 0, true);
        for pod in self.pods() {
            let ip = pod["status"]["podIP"].as_str().unwrap_or_default().to_string();
            let role = self.cli(&ip, &["ROLE"]).unwrap_or_default();
            match role.lines().next() {
                Some("master") => masters += 1,
                Some("slave") => replicas += 1,
                _ => {}
            }
            let info = self.cli(&ip, &["CLUSTER", "INFO"]).unwrap_or_default();
            served &= info.contains("cluster_state:ok") && info.contains("cluster_slots_ok:16384");
        }
        (masters, replicas, served)
    }

    /// Wait until 3 masters and 3 replicas answer ROLE and every member serves all slots.
    pub fn wait_healthy(&self) {
        eventually("3 masters, 3 replicas, all slots served", Duration::from_secs(90), || (self.topology() == (3, 3, true)).then_some(()));
    }
}

/// The pid of the redis-server listening at `ip` (its process title names the address).
pub fn server_pid(ip: &str) -> i32 {
    let needle = format!("{ip}:6379");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else { continue };
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let cmdline = String::from_utf8_lossy(&cmdline).replace('\0', " ");
        if cmdline.contains("redis-server") && cmdline.contains(&needle) {
            return pid;
        }
    }
    panic!("no redis-server at {needle}");
}

/// Send `signal` to a process of the lab.
pub fn signal(pid: i32, signal: i32) {
    // SAFETY: kill(2) on a pid this test's own lab started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0, "kill {pid}");
}

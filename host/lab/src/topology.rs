//! The cluster a fresh lab starts with, after seed 000 (AKS): Nodes in
//! `nodepool1` at the old Kubernetes version and in `upgraded-pool` at the
//! new one, a 3-member PostgreSQL StatefulSet `postgres-cluster` behind the
//! Service `postgres-primary`, and optionally a 6-member Redis cluster and a
//! 3-member MongoDB replica set.

use serde_json::{Value, json};

/// Kubernetes version of the old pool's Nodes.
pub const OLD_VERSION: &str = "v1.29.9";
/// Kubernetes version of the upgraded pool's Nodes.
pub const NEW_VERSION: &str = "v1.30.5";
/// The old node pool.
pub const OLD_POOL: &str = "nodepool1";
/// The upgraded node pool.
pub const NEW_POOL: &str = "upgraded-pool";

/// Upstream's default `--node-monitor-grace-period` (Kubernetes 1.29 to 1.31).
pub const DEFAULT_NODE_MONITOR_GRACE_PERIOD: std::time::Duration = std::time::Duration::from_secs(40);

/// What a new lab contains.
#[derive(Clone, Debug)]
pub struct Topology {
    /// Nodes per pool.
    pub nodes_per_pool: usize,
    /// A PostgreSQL StatefulSet with its Services, PDB and backup Job.
    pub postgres: bool,
    /// A 6-member Redis cluster.
    pub redis: bool,
    /// A 3-member MongoDB replica set.
    pub mongo: bool,
    /// How long a Node's kubelet may go without posting status before the
    /// node lifecycle controller marks the Node Unknown and its Pods not
    /// Ready (kube-controller-manager's `--node-monitor-grace-period`).
    pub node_monitor_grace_period: std::time::Duration,
}

impl Default for Topology {
    fn default() -> Self {
        Topology { nodes_per_pool: 3, postgres: true, redis: false, mongo: false, node_monitor_grace_period: DEFAULT_NODE_MONITOR_GRACE_PERIOD }
    }
}

impl Topology {
    /// Whether the servers of every database it runs are installed; the
    /// missing one, where it was looked for and how to install it otherwise.
    /// Only `mongod` can be missing on a machine set up by `scripts/setup`.
    pub fn servers_installed(&self) -> Result<(), String> {
        use runner_lab_runtime::{Workload, find_server};
        let wanted = [(self.postgres, Workload::Postgres), (self.redis, Workload::Redis), (self.mongo, Workload::Mongo)];
        for (_, workload) in wanted.into_iter().filter(|(on, _)| *on) {
            find_server(workload).map_err(|e| e.to_string().trim_start_matches("member (lab): ").to_string())?;
        }
        Ok(())
    }
}

/// A Node of `pool`, numbered `index`.
pub fn node(pool: &str, index: usize, version: &str) -> Value {
    let vmss = if pool == OLD_POOL { "aks-nodepool1-12345678-vmss" } else { "aks-upgradedpool-87654321-vmss" };
    let name = format!("{vmss}{index:06}");
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {
            "name": name,
            "labels": {
                "agentpool": pool,
                "kubernetes.azure.com/agentpool": pool,
                "kubernetes.io/hostname": name,
                "kubernetes.io/os": "linux",
                "kubernetes.io/arch": "amd64",
                "node.kubernetes.io/instance-type": "Standard_D4s_v5",
                "topology.kubernetes.io/zone": format!("eastus-{}", index % 3 + 1),
            },
        },
        "spec": {"unschedulable": false},
        "status": {
            "conditions": [{"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "lab kubelet is posting ready status"}],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {"kubeletVersion": version, "kubeProxyVersion": version, "osImage": "runner lab (processes on loopback)", "containerRuntimeVersion": "runner-lab://0.1", "operatingSystem": "linux", "architecture": "amd64"},
            "capacity": {"cpu": "4", "memory": "16Gi", "pods": "110"},
            "allocatable": {"cpu": "4", "memory": "16Gi", "pods": "110"},
        },
    })
}

/// A Secret holding one generated password under `password`.
pub fn secret(name: &str, password: &str) -> Value {
    use base64::Engine;
    json!({
        "apiVersion": "v1", "kind": "Secret", "type": "Opaque",
        "metadata": {"name": name, "namespace": "default"},
        "data": {"password": base64::engine::general_purpose::STANDARD.encode(password)},
    })
}

fn database_set(name: &str, app: &str, replicas: u32, image: &str, port: u16, secret: &str, env: &str) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "StatefulSet",
        "metadata": {"name": name, "namespace": "default", "labels": {"app": app}},
        "spec": {
            "replicas": replicas,
            "serviceName": app,
            "podManagementPolicy": "OrderedReady",
            "selector": {"matchLabels": {"app": app}},
            "template": {
                "metadata": {"labels": {"app": app}},
                "spec": {
                    "nodeSelector": {"agentpool": OLD_POOL},
                    "terminationGracePeriodSeconds": 30,
                    "containers": [{
                        "name": app, "image": image,
                        "ports": [{"name": app, "containerPort": port}],
                        "env": [{"name": env, "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}],
                    }],
                },
            },
        },
    })
}

fn service(name: &str, selector: Value, port: u16) -> Value {
    json!({
        "apiVersion": "v1", "kind": "Service",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {"type": "ClusterIP", "selector": selector, "ports": [{"name": "db", "port": port, "targetPort": port, "protocol": "TCP"}]},
    })
}

fn budget(name: &str, app: &str, rule: (&str, u32)) -> Value {
    json!({
        "apiVersion": "policy/v1", "kind": "PodDisruptionBudget",
        "metadata": {"name": name, "namespace": "default"},
        "spec": {rule.0: rule.1, "selector": {"matchLabels": {"app": app}}},
    })
}

/// Every object of a new lab, in creation order. `password` generates one
/// secret password per database.
pub fn objects(topology: &Topology, mut password: impl FnMut() -> String) -> Vec<Value> {
    let mut objects = vec![json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "default"}})];
    for index in 0..topology.nodes_per_pool {
        objects.push(node(OLD_POOL, index, OLD_VERSION));
    }
    for index in 0..topology.nodes_per_pool {
        objects.push(node(NEW_POOL, index, NEW_VERSION));
    }
    if topology.postgres {
        objects.push(secret("postgres-credentials", &password()));
        objects.push(database_set("postgres-cluster", "postgres", 3, "postgres:15", 5432, "postgres-credentials", "POSTGRES_PASSWORD"));
        objects.push(service("postgres-primary", json!({"statefulset.kubernetes.io/pod-name": "postgres-cluster-0"}), 5432));
        objects.push(service("postgres-replicas", json!({"app": "postgres"}), 5432));
        objects.push(budget("postgres-pdb", "postgres", ("minAvailable", 2)));
        objects.push(json!({
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": "postgres-backup", "namespace": "default", "labels": {"app": "postgres-backup"}},
            "spec": {"template": {"spec": {"restartPolicy": "Never", "containers": [{"name": "backup", "image": "postgres:15", "command": ["pg_basebackup"]}]}}},
        }));
    }
    if topology.redis {
        objects.push(secret("redis-credentials", &password()));
        objects.push(database_set("redis-cluster", "redis", 6, "redis:7", 6379, "redis-credentials", "REDIS_PASSWORD"));
        objects.push(service("redis-cluster", json!({"app": "redis"}), 6379));
        objects.push(budget("redis-pdb", "redis", ("maxUnavailable", 1)));
    }
    if topology.mongo {
        objects.push(secret("mongo-credentials", &password()));
        objects.push(database_set("mongo", "mongo", 3, "mongo:7", 27017, "mongo-credentials", "MONGO_INITDB_ROOT_PASSWORD"));
        // Clients seed from it and discover the set's members (hello lists their addresses).
        objects.push(service("mongo", json!({"app": "mongo"}), 27017));
        objects.push(budget("mongo-pdb", "mongo", ("maxUnavailable", 1)));
    }
    objects
}

/// A random password: 24 hex digits from the kernel's generator.
pub fn random_password() -> String {
    let mut bytes = [0u8; 12];
    if let Ok(mut urandom) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = urandom.read_exact(&mut bytes);
    }
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_seed_topology() {
        let objects = objects(&Topology { nodes_per_pool: 3, postgres: true, redis: true, mongo: true, ..Topology::default() }, || "pw".into());
        let nodes: Vec<&Value> = objects.iter().filter(|o| o["kind"] == "Node").collect();
        assert_eq!(nodes.len(), 6);
        assert_eq!(
            nodes.iter().filter(|n| n["metadata"]["labels"]["agentpool"] == NEW_POOL && n["status"]["nodeInfo"]["kubeletVersion"] == NEW_VERSION).count(),
            3
        );
        let pg = objects.iter().find(|o| o["metadata"]["name"] == "postgres-cluster").unwrap();
        assert_eq!(pg["spec"]["replicas"], 3);
        assert!(objects.iter().any(|o| o["metadata"]["name"] == "postgres-primary" && o["kind"] == "Service"));
        assert!(objects.iter().any(|o| o["metadata"]["name"] == "redis-cluster" && o["spec"]["replicas"] == 6));
        let mongo = objects.iter().find(|o| o["kind"] == "StatefulSet" && o["metadata"]["name"] == "mongo").unwrap();
        assert_eq!(mongo["spec"]["template"]["spec"]["containers"][0]["image"], "mongo:7");
        assert!(objects.iter().any(|o| o["kind"] == "Secret" && o["metadata"]["name"] == "mongo-credentials"));
        assert_eq!(random_password().len(), 24);
        assert_ne!(random_password(), random_password());
    }
}

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

/// The node image a fresh lab's Nodes run (AKS's Ubuntu 22.04 gen2 image).
pub const OLD_IMAGE: NodeImage = NodeImage { version: "AKSUbuntu-2204gen2containerd-202410.15.0", kernel: "5.15.0-1073-azure", os_image: "Ubuntu 22.04.4 LTS" };
/// The newest node image the lab's AKS offers (`latestNodeImageVersion`).
pub const LATEST_IMAGE: NodeImage =
    NodeImage { version: "AKSUbuntu-2204gen2containerd-202411.12.0", kernel: "5.15.0-1074-azure", os_image: "Ubuntu 22.04.5 LTS" };

/// An AKS node image: what a Node reports of it (its label, kernel and OS).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NodeImage {
    /// `kubernetes.azure.com/node-image-version` and the pool's `nodeImageVersion`.
    pub version: &'static str,
    /// `status.nodeInfo.kernelVersion`.
    pub kernel: &'static str,
    /// `status.nodeInfo.osImage`.
    pub os_image: &'static str,
}

impl NodeImage {
    /// The image of that version (the latest one for a version the lab does not know).
    pub fn by_version(version: &str) -> NodeImage {
        [OLD_IMAGE, LATEST_IMAGE].into_iter().find(|i| i.version == version).unwrap_or(LATEST_IMAGE)
    }
}

/// The label AKS puts the node image version in.
pub const IMAGE_LABEL: &str = "kubernetes.azure.com/node-image-version";

/// How long one of AKS's minutes (drainTimeoutInMinutes, nodeSoakDurationInMinutes) lasts in the lab by default: a real minute.
pub const DEFAULT_LAB_MINUTE: std::time::Duration = std::time::Duration::from_secs(60);

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
    /// Only `nodepool1`, with the control plane at its version (1.29.9):
    /// the layout an upgrade demo starts from. Otherwise `nodepool1` at
    /// 1.29.9 and `upgraded-pool` at 1.30.5, the control plane at 1.31.2.
    pub single_pool: bool,
    /// With [`single_pool`](Topology::single_pool): the version of the
    /// control plane and of `nodepool1` (`1.30.5`, one the lab's AKS offers)
    /// instead of 1.29.9, as a cluster created at that version has.
    pub kubernetes_version: Option<String>,
    /// How long one AKS minute (drain timeout, soak) lasts in the lab's ARM
    /// emulation, so tests can use `drainTimeoutInMinutes: 1` without waiting a minute.
    pub lab_minute: std::time::Duration,
}

impl Default for Topology {
    fn default() -> Self {
        Topology {
            nodes_per_pool: 3,
            postgres: true,
            redis: false,
            mongo: false,
            node_monitor_grace_period: DEFAULT_NODE_MONITOR_GRACE_PERIOD,
            single_pool: false,
            kubernetes_version: None,
            lab_minute: DEFAULT_LAB_MINUTE,
        }
    }
}

impl Topology {
    /// The control plane's Kubernetes version in a fresh lab of this layout (`1.30.5`).
    pub fn control_plane_version(&self) -> &str {
        // Above the pools' versions by default: kubectl speaks port-forward's
        // WebSocket protocol (the only one the lab serves) to 1.31 and later.
        match (self.single_pool, &self.kubernetes_version) {
            (true, Some(version)) => version,
            (true, None) => OLD_VERSION.trim_start_matches('v'),
            (false, _) => "1.31.2",
        }
    }

    /// The kubelet version of `nodepool1`'s Nodes in a fresh lab (`v1.29.9`).
    pub fn first_pool_version(&self) -> String {
        match (self.single_pool, &self.kubernetes_version) {
            (true, Some(version)) => format!("v{version}"),
            _ => OLD_VERSION.to_string(),
        }
    }

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

/// The VMSS name prefix of a pool's Nodes, as AKS names them
/// (`aks-nodepool1-12345678-vmss`): the pool name without dashes and eight
/// digits fixed per pool.
pub fn vmss_prefix(pool: &str) -> String {
    let digits = match pool {
        OLD_POOL => 12345678,
        NEW_POOL => 87654321,
        other => other.bytes().fold(2166136261u32, |h, b| (h ^ b as u32).wrapping_mul(16777619)) % 90_000_000 + 10_000_000,
    };
    format!("aks-{}-{digits}-vmss", pool.replace('-', ""))
}

/// A Node of `pool`, numbered `index`, at the fresh lab's node image.
pub fn node(pool: &str, index: usize, version: &str) -> Value {
    aks_node(&vmss_prefix(pool), pool, index, version, &OLD_IMAGE, &serde_json::Map::new(), true)
}

/// A Node as AKS makes it: named `<vmss><index:06>`, with AKS's labels (the
/// pool's, its image's and `extra`), its kubelet version and image's kernel
/// and OS. `ready` says whether it starts Ready (a fresh lab's Nodes) or
/// waits for the kubelet to post it (a Node added later, as a VM boots).
pub fn aks_node(vmss: &str, pool: &str, index: usize, version: &str, image: &NodeImage, extra: &serde_json::Map<String, Value>, ready: bool) -> Value {
    let name = format!("{vmss}{index:06}");
    let mut labels = json!({
        "agentpool": pool,
        "kubernetes.azure.com/agentpool": pool,
        IMAGE_LABEL: image.version,
        "kubernetes.azure.com/os-sku": "Ubuntu",
        "kubernetes.azure.com/role": "agent",
        "kubernetes.io/hostname": name,
        "kubernetes.io/os": "linux",
        "kubernetes.io/arch": "amd64",
        "node.kubernetes.io/instance-type": "Standard_D4s_v5",
        "topology.kubernetes.io/zone": format!("eastus-{}", index % 3 + 1),
    });
    for (k, v) in extra {
        labels[k] = v.clone();
    }
    let condition = if ready {
        json!({"type": "Ready", "status": "True", "reason": "KubeletReady", "message": "lab kubelet is posting ready status"})
    } else {
        json!({"type": "Ready", "status": "False", "reason": "KubeletNotReady", "message": "container runtime status check may not have completed yet"})
    };
    json!({
        "apiVersion": "v1",
        "kind": "Node",
        "metadata": {"name": name, "labels": labels},
        "spec": {"unschedulable": false},
        "status": {
            "conditions": [condition],
            "addresses": [{"type": "InternalIP", "address": "127.0.0.1"}, {"type": "Hostname", "address": name}],
            "nodeInfo": {
                "kubeletVersion": version, "kubeProxyVersion": version, "osImage": image.os_image, "kernelVersion": image.kernel,
                "containerRuntimeVersion": "containerd://1.7.23-1", "operatingSystem": "linux", "architecture": "amd64",
            },
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
    let first_pool_version = topology.first_pool_version();
    for index in 0..topology.nodes_per_pool {
        objects.push(node(OLD_POOL, index, &first_pool_version));
    }
    if !topology.single_pool {
        for index in 0..topology.nodes_per_pool {
            objects.push(node(NEW_POOL, index, NEW_VERSION));
        }
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

    fn objects_of(topology: &Topology) -> Vec<Value> {
        objects(topology, || "pw".into())
    }

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
        assert_eq!(nodes[0]["metadata"]["name"], "aks-nodepool1-12345678-vmss000000");
        assert_eq!(nodes[0]["metadata"]["labels"][IMAGE_LABEL], OLD_IMAGE.version);
        assert_eq!(nodes[0]["status"]["nodeInfo"]["kernelVersion"], "5.15.0-1073-azure");
        let single = objects_of(&Topology { single_pool: true, ..Topology::default() });
        assert_eq!(single.iter().filter(|o| o["kind"] == "Node").count(), 3);
        assert!(single.iter().all(|o| o["metadata"]["labels"]["agentpool"] != NEW_POOL));
        assert_eq!(Topology { single_pool: true, ..Topology::default() }.control_plane_version(), "1.29.9");
        assert_eq!(Topology::default().control_plane_version(), "1.31.2");
        let green = Topology { single_pool: true, kubernetes_version: Some("1.30.5".into()), ..Topology::default() };
        assert_eq!(green.control_plane_version(), "1.30.5");
        assert!(objects_of(&green).iter().filter(|o| o["kind"] == "Node").all(|n| n["status"]["nodeInfo"]["kubeletVersion"] == NEW_VERSION));
        assert_eq!(vmss_prefix("userpool"), vmss_prefix("userpool"));
        assert!(vmss_prefix("userpool").starts_with("aks-userpool-") && vmss_prefix("userpool").len() == "aks-userpool-12345678-vmss".len());
        assert_ne!(random_password(), random_password());
    }
}

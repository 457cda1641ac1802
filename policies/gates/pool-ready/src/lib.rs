//! Gate `pool-ready`: is a node pool whole after its upgrade? Its Nodes
//! Ready, schedulable, at the version and image asked for, and the Pods on
//! them Ready.

use cluster_common::nodes::NodeInfo;
use cluster_common::version::{self, Version};
use runner_sdk::prelude::*;
use serde::Deserialize;

runner_sdk::manifest!(include_str!("../manifest.toml"));

#[derive(Deserialize)]
#[serde(rename_all = "kebab-case")]
struct Config {
    pool: String,
    pool_label: String,
    kubernetes_version: String,
    node_image: String,
    min_nodes: u64,
}

/// Judge the pool's Nodes and the Pods on them.
fn judge(check: &mut Check, config: &Config, target: Option<&Version>, nodes: &[NodeInfo], pods: &[Value]) {
    let ours: Vec<&NodeInfo> = nodes.iter().filter(|n| n.pool == config.pool).collect();
    if (ours.len() as u64) < config.min_nodes {
        check.fail(format!("pool {}: {} Node(s), fewer than the {} required", config.pool, ours.len(), config.min_nodes));
    }
    for node in &ours {
        if !node.ready {
            check.fail(format!("{}: not Ready", node.name));
        }
        if node.unschedulable {
            check.fail(format!("{}: cordoned (unschedulable)", node.name));
        }
        if let Some(target) = target
            && !version::reached(&node.kubelet, target)
        {
            check.fail(format!("{}: kubelet {} < {target}", node.name, if node.kubelet.is_empty() { "unknown" } else { &node.kubelet }));
        }
        if !config.node_image.is_empty() && node.node_image != config.node_image {
            check.fail(format!(
                "{}: node image {} is not {}",
                node.name,
                if node.node_image.is_empty() { "unknown" } else { &node.node_image },
                config.node_image
            ));
        }
    }
    let mut on_pool = 0;
    for pod in pods {
        let node = pod["spec"]["nodeName"].as_str().unwrap_or_default();
        if !ours.iter().any(|n| n.name == node) {
            continue;
        }
        let phase = pod["status"]["phase"].as_str().unwrap_or("Unknown");
        if matches!(phase, "Succeeded" | "Failed") {
            continue;
        }
        on_pool += 1;
        if !pod_is_ready(pod) {
            let ns = pod["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = pod["metadata"]["name"].as_str().unwrap_or("?");
            check.fail(format!("Pod {}{name} on {node}: not Ready (phase {phase})", if ns.is_empty() { String::new() } else { format!("{ns}/") }));
        }
    }
    check.note(format!("pool {}: {} Node(s), {on_pool} Pod(s) on them", config.pool, ours.len()));
    check.evidence("nodes", ours.iter().map(|n| n.to_json()).collect::<Vec<_>>());
}

struct Gate;

impl runner_sdk::gate::Guest for Gate {
    fn evaluate(config: String) -> Result<Verdict, Error> {
        let config: Config = parse_config(&config)?;
        if config.pool.is_empty() {
            return Err(Error::invalid("config `pool` is empty: name the node pool to check"));
        }
        let target = if config.kubernetes_version.is_empty() { None } else { Some(Version::parse(&config.kubernetes_version).map_err(Error::invalid)?) };
        let nodes = cluster_common::nodes::list_nodes(&config.pool_label)?;
        let pods = list_json(&ListOptions::of("v1", "Pod").in_namespace("*"))?;
        let mut check = Check::new();
        judge(&mut check, &config, target.as_ref(), &nodes, &pods);
        Ok(check.verdict())
    }
}

runner_sdk::export_gate!(Gate);

#[cfg(test)]
mod tests {
    use super::*;

    fn node(name: &str, pool: &str, kubelet: &str, ready: bool, cordoned: bool) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            pool: pool.into(),
            kubelet: kubelet.into(),
            node_image: "img-2".into(),
            ready,
            unschedulable: cordoned,
            ..Default::default()
        }
    }

    fn config() -> Config {
        Config { pool: "nodepool1".into(), pool_label: "agentpool".into(), kubernetes_version: "1.30.5".into(), node_image: String::new(), min_nodes: 2 }
    }

    #[test]
    fn every_node_and_pod_of_the_pool_is_named_when_not_ready() {
        let nodes =
            [node("n0", "nodepool1", "v1.30.5", true, false), node("n1", "nodepool1", "v1.29.9", false, true), node("x0", "other", "v1.28.0", false, false)];
        let pods = [
            json!({"metadata": {"name": "pg-0", "namespace": "db"}, "spec": {"nodeName": "n0"}, "status": {"phase": "Running", "conditions": [{"type": "Ready", "status": "False"}]}}),
            json!({"metadata": {"name": "job-1"}, "spec": {"nodeName": "n0"}, "status": {"phase": "Succeeded"}}),
            json!({"metadata": {"name": "web-0"}, "spec": {"nodeName": "x0"}, "status": {"phase": "Pending"}}),
        ];
        let target = Version::parse("1.30.5").unwrap();
        let mut check = Check::new();
        judge(&mut check, &config(), Some(&target), &nodes, &pods);
        assert_eq!(
            check.verdict().reasons,
            vec![
                "n1: not Ready",
                "n1: cordoned (unschedulable)",
                "n1: kubelet v1.29.9 < 1.30.5",
                "Pod db/pg-0 on n0: not Ready (phase Running)",
                "pool nodepool1: 2 Node(s), 1 Pod(s) on them"
            ]
        );
        let mut image = Check::new();
        let cfg = Config { node_image: "img-3".into(), min_nodes: 3, kubernetes_version: String::new(), ..config() };
        judge(&mut image, &cfg, None, &nodes[..1], &[]);
        assert_eq!(
            image.verdict().reasons,
            vec!["pool nodepool1: 1 Node(s), fewer than the 3 required", "n0: node image img-2 is not img-3", "pool nodepool1: 1 Node(s), 0 Pod(s) on them"]
        );
    }
}

//! Which node pool each Node is in.

use std::collections::BTreeMap;

use runner_sdk::prelude::*;

use crate::Pod;

/// Node name → the value of its pool label (empty when the Node has none).
#[derive(Clone, Debug, Default, PartialEq)]
pub struct NodePools(BTreeMap<String, String>);

impl NodePools {
    /// List the Nodes and read each one's `pool_label`.
    pub fn list(pool_label: &str) -> Result<NodePools, Error> {
        let nodes = list_json(&ListOptions::of("v1", "Node"))?;
        Ok(Self::from_nodes(&nodes, pool_label))
    }

    /// The pools of Node objects already read (`pool_label` on each).
    pub fn from_nodes(nodes: &[Value], pool_label: &str) -> NodePools {
        NodePools(
            nodes
                .iter()
                .filter_map(|n| {
                    Some((n["metadata"]["name"].as_str()?.to_string(), n["metadata"]["labels"][pool_label].as_str().unwrap_or_default().to_string()))
                })
                .collect(),
        )
    }

    /// The pool of the Node `pod` runs on; `None` when it runs on no Node listed.
    pub fn of(&self, pod: &Pod) -> Option<&str> {
        pod.node.as_ref().and_then(|n| self.0.get(n)).map(String::as_str)
    }

    /// The Nodes of `pool`, by name.
    pub fn nodes_in(&self, pool: &str) -> Vec<&str> {
        self.0.iter().filter(|(_, p)| *p == pool).map(|(n, _)| n.as_str()).collect()
    }

    /// Whether `pod` runs on a Node of `pool`.
    pub fn runs_on(&self, pod: &Pod, pool: &str) -> bool {
        self.of(pod) == Some(pool)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_is_in_its_nodes_pool() {
        let nodes = [json!({"metadata": {"name": "aks-old-0", "labels": {"agentpool": "old"}}}), json!({"metadata": {"name": "aks-bare"}})];
        let pools = NodePools::from_nodes(&nodes, "agentpool");
        let on = |node: Option<&str>| Pod { node: node.map(str::to_string), ..Default::default() };
        assert_eq!(pools.of(&on(Some("aks-old-0"))), Some("old"));
        assert!(pools.runs_on(&on(Some("aks-old-0")), "old"));
        assert_eq!(pools.of(&on(Some("aks-bare"))), Some(""));
        assert_eq!(pools.of(&on(Some("aks-gone"))), None);
        assert_eq!(pools.of(&on(None)), None);
        assert_eq!(pools.nodes_in("old"), vec!["aks-old-0"]);
        assert!(pools.nodes_in("new").is_empty());
    }
}

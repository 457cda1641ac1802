//! The compliance report: what was patched, when, and how the drains went,
//! as JSON (for tools) and Markdown (for the change ticket). Plain values
//! in, text out: rendered and tested natively.

use cluster_common::nodes::{NodeEvent, NodeInfo, Phase, pdb_named};
use kube_common::text::{format_timestamp_ms, millis, parse_timestamp_ms};
use serde_json::{Value, json};

/// One gate's answer, as the report lists it.
#[derive(Clone, Debug, PartialEq)]
pub struct GateRecord {
    /// The slot (`readiness`, `post`).
    pub slot: String,
    /// The pool it was about (empty for the readiness gate).
    pub pool: String,
    /// `pass`, `warn`, `fail` or `error`.
    pub outcome: String,
    /// Its reasons (or the error).
    pub reasons: Vec<String>,
}

/// One pool, before and after.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct PoolReport {
    /// The pool.
    pub name: String,
    /// `patched`, `already current`, `failed`, `planned` (dry run), `not reached`.
    pub status: String,
    /// The pool's node image before the run.
    pub image_before: String,
    /// After the run (as the pool reports it).
    pub image_after: String,
    /// The newest image its upgrade profile offered.
    pub latest_image: String,
    /// The pool's Kubernetes version (unchanged by a node-image upgrade).
    pub kubernetes_version: String,
    /// The pool's Nodes before.
    pub nodes_before: Vec<NodeInfo>,
    /// And after.
    pub nodes_after: Vec<NodeInfo>,
    /// What the run did for it (settings, database moves, upgrade).
    pub actions: Vec<String>,
}

/// Everything the report says.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Report {
    /// The run's id.
    pub run_id: String,
    /// When the run started and ended (ms since the epoch).
    pub started_ms: u64,
    /// When it ended.
    pub finished_ms: u64,
    /// `succeeded`, `failed`, `refused`, `dry run`.
    pub outcome: String,
    /// The error or refusal, if any.
    pub error: Option<String>,
    /// The maintenance window as configured (empty: none).
    pub window: String,
    /// Whether the operator overrode it.
    pub window_ignored: bool,
    /// Whether the run started inside it.
    pub in_window: bool,
    /// The upgrade settings written to the pools.
    pub settings: String,
    /// Per pool.
    pub pools: Vec<PoolReport>,
    /// The Node events of the run's Nodes since it started, oldest first.
    pub events: Vec<NodeEvent>,
    /// The gates' answers.
    pub gates: Vec<GateRecord>,
}

/// A drain that was held up: the Node, when, the budget named (if any), the message.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    /// The Node.
    pub node: String,
    /// When.
    pub time: String,
    /// The PodDisruptionBudget its message names.
    pub pdb: Option<String>,
    /// The event's message.
    pub message: String,
}

impl Report {
    /// The Node events of this run's Nodes (every Node listed before or after).
    pub fn relevant_events(all: &[NodeEvent], pools: &[PoolReport], since_ms: u64) -> Vec<NodeEvent> {
        let nodes: Vec<&str> = pools.iter().flat_map(|p| p.nodes_before.iter().chain(&p.nodes_after)).map(|n| n.name.as_str()).collect();
        // Events carry second precision; a little slack keeps the first ones.
        all.iter().filter(|e| nodes.contains(&e.node.as_str()) && e.time_ms.is_none_or(|t| t + 2000 >= since_ms)).cloned().collect()
    }

    /// The drains that were held up, from the events.
    pub fn blocks(&self) -> Vec<Block> {
        self.events
            .iter()
            .filter(|e| e.phase == Phase::Blocked)
            .map(|e| Block { node: e.node.clone(), time: e.time.clone(), pdb: pdb_named(&e.message), message: e.message.clone() })
            .collect()
    }

    /// Each Node's timeline: (phase, time) in order, the Node's Ready
    /// condition added when no event says it became Ready.
    pub fn timeline(&self, node: &NodeInfo) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> =
            self.events.iter().filter(|e| e.node == node.name && e.phase != Phase::Other).map(|e| (e.phase.name().to_string(), e.time.clone())).collect();
        let since = parse_timestamp_ms(&node.ready_since).unwrap_or(0);
        if node.ready && !out.iter().any(|(p, _)| p == "ready") && since + 2000 >= self.started_ms && !node.ready_since.is_empty() {
            out.push(("ready".into(), node.ready_since.clone()));
        }
        out
    }

    /// Total time, for people.
    pub fn total(&self) -> String {
        millis(self.finished_ms.saturating_sub(self.started_ms) as f64)
    }

    /// The report as JSON (`compliance-report.json`).
    pub fn to_json(&self) -> Value {
        let pools: Vec<Value> = self
            .pools
            .iter()
            .map(|p| {
                let nodes = |list: &[NodeInfo]| -> Vec<Value> {
                    list.iter()
                        .map(|n| {
                            let mut v = n.to_json();
                            v["timeline"] = json!(self.timeline(n).iter().map(|(phase, time)| json!({"phase": phase, "time": time})).collect::<Vec<_>>());
                            v
                        })
                        .collect()
                };
                json!({
                    "name": p.name, "status": p.status, "kubernetes_version": p.kubernetes_version,
                    "node_image_before": p.image_before, "node_image_after": p.image_after, "latest_node_image": p.latest_image,
                    "nodes_before": nodes(&p.nodes_before), "nodes_after": nodes(&p.nodes_after), "actions": p.actions,
                })
            })
            .collect();
        json!({
            "report": "node-image-patch compliance report",
            "run_id": self.run_id,
            "started": format_timestamp_ms(self.started_ms),
            "finished": format_timestamp_ms(self.finished_ms),
            "total_ms": self.finished_ms.saturating_sub(self.started_ms),
            "outcome": self.outcome,
            "error": self.error,
            "maintenance_window": {"window": self.window, "ignored": self.window_ignored, "started_inside": self.in_window},
            "upgrade_settings": self.settings,
            "pools": pools,
            "blocked_drains": self.blocks().iter().map(|b| json!({"node": b.node, "time": b.time, "pdb": b.pdb, "message": b.message})).collect::<Vec<_>>(),
            "events": self.events.iter().map(|e| json!({"node": e.node, "reason": e.reason, "phase": e.phase.name(), "time": e.time, "message": e.message})).collect::<Vec<_>>(),
            "gates": self.gates.iter().map(|g| json!({"slot": g.slot, "pool": g.pool, "outcome": g.outcome, "reasons": g.reasons})).collect::<Vec<_>>(),
        })
    }

    /// The report as Markdown (`compliance-report.md`), for a change ticket.
    pub fn to_markdown(&self) -> String {
        let cell = |s: &str| if s.is_empty() { "-".to_string() } else { s.replace('|', "\\|").replace('\n', " ") };
        let mut md = String::new();
        md.push_str("# Node image patch: compliance report\n\n");
        md.push_str("| | |\n|---|---|\n");
        md.push_str(&format!("| Run | `{}` |\n", cell(&self.run_id)));
        md.push_str(&format!("| Outcome | **{}** |\n", self.outcome));
        md.push_str(&format!("| Started | {} |\n", format_timestamp_ms(self.started_ms)));
        md.push_str(&format!("| Finished | {} |\n", format_timestamp_ms(self.finished_ms)));
        md.push_str(&format!("| Total time | {} |\n", self.total()));
        let window = if self.window.is_empty() {
            "none configured".to_string()
        } else {
            format!(
                "`{}`: started {}{}",
                self.window,
                if self.in_window { "inside" } else { "outside" },
                if self.window_ignored { " (ignore-maintenance-window: true)" } else { "" }
            )
        };
        md.push_str(&format!("| Maintenance window | {window} |\n"));
        md.push_str(&format!("| Upgrade settings | {} |\n", cell(&self.settings)));
        if let Some(e) = &self.error {
            md.push_str(&format!("\n**Error:** {}\n", e.replace('\n', " ")));
        }
        md.push_str("\n## Pools\n\n| Pool | Status | Kubernetes | Node image before | Node image after | Latest offered |\n|---|---|---|---|---|---|\n");
        for p in &self.pools {
            md.push_str(&format!(
                "| {} | {} | {} | {} | {} | {} |\n",
                cell(&p.name),
                cell(&p.status),
                cell(&p.kubernetes_version),
                cell(&p.image_before),
                cell(&p.image_after),
                cell(&p.latest_image)
            ));
        }
        for p in &self.pools {
            md.push_str(&format!("\n### Pool {}\n\n", p.name));
            for a in &p.actions {
                md.push_str(&format!("- {a}\n"));
            }
            if !p.actions.is_empty() {
                md.push('\n');
            }
            for (title, nodes) in [("Before", &p.nodes_before), ("After", &p.nodes_after)] {
                md.push_str(&format!("{title}:\n\n| Node | Node image | Kubelet | Kernel | OS image | Ready | Timeline |\n|---|---|---|---|---|---|---|\n"));
                if nodes.is_empty() {
                    md.push_str("| (none) | | | | | | |\n");
                }
                for n in nodes {
                    let timeline: Vec<String> = self.timeline(n).iter().map(|(phase, time)| format!("{phase} {time}")).collect();
                    md.push_str(&format!(
                        "| {} | {} | {} | {} | {} | {} | {} |\n",
                        cell(&n.name),
                        cell(&n.node_image),
                        cell(&n.kubelet),
                        cell(&n.kernel),
                        cell(&n.os_image),
                        if n.ready { "yes" } else { "no" },
                        cell(&timeline.join(", "))
                    ));
                }
                md.push('\n');
            }
        }
        md.push_str("## Drains held up\n\n");
        let blocks = self.blocks();
        if blocks.is_empty() {
            md.push_str("None recorded.\n");
        } else {
            md.push_str("| Node | Time | PodDisruptionBudget | Message |\n|---|---|---|---|\n");
            for b in &blocks {
                md.push_str(&format!("| {} | {} | {} | {} |\n", cell(&b.node), cell(&b.time), cell(b.pdb.as_deref().unwrap_or("")), cell(&b.message)));
            }
        }
        md.push_str("\n## Gates\n\n");
        if self.gates.is_empty() {
            md.push_str("None ran.\n");
        } else {
            md.push_str("| Gate | Pool | Outcome | Findings |\n|---|---|---|---|\n");
            for g in &self.gates {
                md.push_str(&format!("| {} | {} | {} | {} |\n", cell(&g.slot), cell(&g.pool), g.outcome, cell(&g.reasons.join("; "))));
            }
        }
        md.push_str("\n## Node events\n\n");
        if self.events.is_empty() {
            md.push_str("None recorded (the cluster kept no Node events for this run's Nodes).\n");
        } else {
            md.push_str("| Time | Node | Reason | Message |\n|---|---|---|---|\n");
            for e in &self.events {
                md.push_str(&format!("| {} | {} | {} | {} |\n", cell(&e.time), cell(&e.node), cell(&e.reason), cell(&e.message)));
            }
        }
        md
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cluster_common::nodes::node_events;

    fn node(name: &str, image: &str, kernel: &str, ready_since: &str) -> NodeInfo {
        NodeInfo {
            name: name.into(),
            pool: "nodepool1".into(),
            node_image: image.into(),
            kubelet: "v1.30.5".into(),
            kernel: kernel.into(),
            os_image: "Ubuntu 22.04.5 LTS".into(),
            ready: true,
            ready_since: ready_since.into(),
            ..Default::default()
        }
    }

    fn report() -> Report {
        let start = parse_timestamp_ms("2026-12-05T22:00:00Z").unwrap();
        let ev = |n: &str, reason: &str, message: &str, t: &str| json!({"involvedObject": {"kind": "Node", "name": n}, "reason": reason, "message": message, "lastTimestamp": t});
        let events = node_events(&[
            ev("aks-np1-0", "Cordon", "cordoned", "2026-12-05T22:01:00Z"),
            ev("aks-np1-0", "Drain", "Cannot evict pod as it would violate the pod's disruption budget postgres-pdb", "2026-12-05T22:01:30Z"),
            ev("aks-np1-0", "Drain", "drained", "2026-12-05T22:02:00Z"),
            ev("aks-np1-0", "Delete", "deleted", "2026-12-05T22:03:00Z"),
            ev("aks-np1-3", "Surge", "surge node", "2026-12-05T22:00:30Z"),
            ev("unrelated", "Drain", "drained", "2026-12-05T22:02:00Z"),
            ev("aks-np1-0", "Drain", "an older run", "2026-12-04T10:00:00Z"),
        ]);
        let pools = vec![PoolReport {
            name: "nodepool1".into(),
            status: "patched".into(),
            image_before: "AKSUbuntu-2204gen2containerd-202410.15.0".into(),
            image_after: "AKSUbuntu-2204gen2containerd-202412.01.0".into(),
            latest_image: "AKSUbuntu-2204gen2containerd-202412.01.0".into(),
            kubernetes_version: "1.30.5".into(),
            nodes_before: vec![node("aks-np1-0", "AKSUbuntu-2204gen2containerd-202410.15.0", "5.15.0-1073-azure", "2026-11-01T00:00:00Z")],
            nodes_after: vec![node("aks-np1-3", "AKSUbuntu-2204gen2containerd-202412.01.0", "5.15.0-1075-azure", "2026-12-05T22:00:50Z")],
            actions: vec!["set upgrade settings maxSurge 50%, drainTimeout 5m".into(), "upgraded the node image".into()],
        }];
        Report {
            run_id: "20261205T220000Z-node-image-patch-1".into(),
            started_ms: start,
            finished_ms: start + 4 * 60_000 + 5_000,
            outcome: "succeeded".into(),
            error: None,
            window: "Sat 22:00-06:00 UTC".into(),
            window_ignored: false,
            in_window: true,
            settings: "maxSurge 50%, drainTimeout 5m".into(),
            events: Report::relevant_events(&events, &pools, start),
            pools,
            gates: vec![GateRecord {
                slot: "readiness".into(),
                pool: String::new(),
                outcome: "pass".into(),
                reasons: vec!["postgres-pdb: allows 1 disruption(s)".into()],
            }],
        }
    }

    #[test]
    fn only_this_runs_nodes_and_time_are_reported() {
        let r = report();
        assert_eq!(r.events.len(), 5, "{:?}", r.events);
        assert!(r.events.iter().all(|e| e.node != "unrelated" && e.message != "an older run"));
        assert_eq!(r.total(), "4m 5s");
    }

    #[test]
    fn the_timeline_and_the_blocking_budget() {
        let r = report();
        let before = &r.pools[0].nodes_before[0];
        assert_eq!(
            r.timeline(before),
            vec![
                ("cordoned".to_string(), "2026-12-05T22:01:00Z".to_string()),
                ("blocked".to_string(), "2026-12-05T22:01:30Z".to_string()),
                ("drained".to_string(), "2026-12-05T22:02:00Z".to_string()),
                ("deleted".to_string(), "2026-12-05T22:03:00Z".to_string())
            ]
        );
        // The surge Node's readiness comes from its Ready condition: no event said so.
        assert_eq!(
            r.timeline(&r.pools[0].nodes_after[0]),
            vec![("surged".to_string(), "2026-12-05T22:00:30Z".to_string()), ("ready".to_string(), "2026-12-05T22:00:50Z".to_string())]
        );
        let blocks = r.blocks();
        assert_eq!(blocks.len(), 1);
        assert_eq!((blocks[0].node.as_str(), blocks[0].pdb.as_deref()), ("aks-np1-0", Some("postgres-pdb")));
    }

    #[test]
    fn json_has_every_figure() {
        let j = report().to_json();
        assert_eq!(j["started"], "2026-12-05T22:00:00Z");
        assert_eq!(j["total_ms"], 245_000);
        assert_eq!(j["pools"][0]["node_image_after"], "AKSUbuntu-2204gen2containerd-202412.01.0");
        assert_eq!(j["pools"][0]["nodes_after"][0]["kernel"], "5.15.0-1075-azure");
        assert_eq!(j["pools"][0]["nodes_before"][0]["timeline"][1]["phase"], "blocked");
        assert_eq!(j["blocked_drains"][0]["pdb"], "postgres-pdb");
        assert_eq!(j["maintenance_window"]["started_inside"], true);
        assert_eq!(j["gates"][0]["outcome"], "pass");
    }

    #[test]
    fn markdown_for_the_change_ticket() {
        let md = report().to_markdown();
        assert!(md.starts_with("# Node image patch: compliance report\n"));
        assert!(md.contains("| Total time | 4m 5s |"), "{md}");
        assert!(md.contains("| Maintenance window | `Sat 22:00-06:00 UTC`: started inside |"), "{md}");
        assert!(md.contains("| nodepool1 | patched | 1.30.5 | AKSUbuntu-2204gen2containerd-202410.15.0 | AKSUbuntu-2204gen2containerd-202412.01.0 |"), "{md}");
        assert!(md.contains("| aks-np1-3 | AKSUbuntu-2204gen2containerd-202412.01.0 | v1.30.5 | 5.15.0-1075-azure | Ubuntu 22.04.5 LTS | yes | surged 2026-12-05T22:00:30Z, ready 2026-12-05T22:00:50Z |"), "{md}");
        assert!(md.contains("| aks-np1-0 | 2026-12-05T22:01:30Z | postgres-pdb | Cannot evict pod"), "{md}");
        assert!(md.contains("| readiness | - | pass | postgres-pdb: allows 1 disruption(s) |"), "{md}");
        let mut failed = report();
        failed.outcome = "failed".into();
        failed.error = Some("stopped at pool nodepool1: UpgradeFailed: drain | blocked".into());
        failed.events.clear();
        let md = failed.to_markdown();
        assert!(md.contains("**Error:** stopped at pool nodepool1: UpgradeFailed: drain | blocked"), "{md}");
        assert!(md.contains("None recorded (the cluster kept no Node events"), "{md}");
        assert!(md.contains("## Drains held up\n\nNone recorded."), "{md}");
    }
}
